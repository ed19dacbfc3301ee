"""R-CUST-6 [beyond]: phones, e-mails and names are normalised before customers are compared."""

from __future__ import annotations

import pandas as pd

from keybimp_pipeline.rules.normalize import normalize_email, normalize_name, normalize_phone


def test_R_CUST_6_ukrainian_phone_forms_all_equal():
    forms = ["067 123 45 67", "(067)1234567", "380671234567", "+38 067 123-45-67", "0671234567",
             "+380 (67) 123-45-67", "+380671234567", "80671234567"]
    assert normalize_phone(pd.Series(forms)).tolist() == ["+380671234567"] * len(forms)


def test_R_CUST_6_foreign_and_unparseable_phones():
    s = pd.Series(["+48 601 234 567", "0048601234567", "abc", "", None, "12", float("nan")])
    assert normalize_phone(s).tolist() == ["+48601234567", "+48601234567", None, None, None, None, None]


def test_R_CUST_6_phone_keeps_index_and_repeats():
    s = pd.Series(["067 123 45 67", None, "067 123 45 67"], index=[10, 20, 30])
    out = normalize_phone(s)
    assert out.index.tolist() == [10, 20, 30]
    assert out.tolist() == ["+380671234567", None, "+380671234567"]


def test_R_CUST_5_email_trimmed_and_lower_cased():
    s = pd.Series(["  Anna@Example.COM ", "anna@example.com", "", "   ", None])
    assert normalize_email(s).tolist() == ["anna@example.com", "anna@example.com", None, None, None]


def test_R_CUST_6_strict_names_are_exact():
    s = pd.Series(["Олександр", "Олександр ", "  ", None])
    assert normalize_name(s, strict=True).tolist() == ["Олександр", "Олександр ", None, None]


def test_R_CUST_6_names_trimmed_collapsed_case_folded():
    s = pd.Series(["Олександр", "Олександр ", "  олександр   ПЕТРЕНКО ", "Олександр Петренко"])
    out = normalize_name(s, strict=False).tolist()
    assert out[0] == out[1] == "олександр"
    assert out[2] == out[3] == "олександр петренко"


def test_R_CUST_6_apostrophe_forms_are_one_name():
    s = pd.Series(["Мар'яна", "Марʼяна", "Мар’яна", "Мар`яна", "Мар‘яна"])
    out = normalize_name(s, strict=False)
    assert out.nunique() == 1 and out.iloc[0] == "мар'яна"
    # strict mode keeps the guide's exact comparison, apostrophes included
    assert normalize_name(s, strict=True).nunique() == 5
