"""Normalising phones, e-mails and names before customers are compared (R-CUST-6 [beyond]).

People type the same phone as `067 123 45 67`, `(067)1234567`, `380671234567` or `+38 067 123-45-67`,
and the same name as "Мар'яна" or "Марʼяна".  Comparing raw strings would split one customer into
several counterparties, so both sides (KeyCRM buyers, Bimp counterparties) go through these functions.

Everything here is vectorised over pandas Series: the buyer frame may hold a million rows.  The only
per-value Python work (the `phonenumbers` parser) runs once per *distinct* pre-cleaned digit string.
Missing or unusable values come back as None, so "no phone" never equals "no phone" by accident in a
merge (callers drop None keys before joining).
"""

from __future__ import annotations

import re

import pandas as pd
import phonenumbers

DEFAULT_REGION = "UA"

# Apostrophe look-alikes typed in Ukrainian names: modifier letter apostrophe, right/left single quotes,
# backtick, acute accent, prime, fullwidth apostrophe, modifier letter prime.  All become "'".
_APOSTROPHES = "[\u02bc\u2019\u2018`\u00b4\u2032\uff07\u02b9\u02bb]"


def _as_object(values: pd.Series) -> pd.Series:
    """object dtype with None for missing: the documented output contract of this module."""
    out = values.astype(object)
    return out.where(values.notna(), None)


def normalize_phone(s: pd.Series, region: str = DEFAULT_REGION) -> pd.Series:
    """Phones to E.164 (`+380671234567`); unparseable or impossible numbers become None.

    Work is done once per *distinct* raw value (`pd.factorize`) and spread back by position, so a
    million orders from a hundred thousand buyers cost a hundred thousand conversions.  Values already
    in canonical Ukrainian E.164 are recognised by one vectorised regex and kept.  Ukrainian national
    forms (`0XXXXXXXXX`, `80XXXXXXXXX`, `380XXXXXXXXX`, with or without `+`, any punctuation) are
    completed by plain string work: a 9-digit Ukrainian national number is always a *possible* number,
    so they need no parser.  Only the rest (foreign numbers, odd lengths) goes through `phonenumbers`
    (region UA when there is no country code); a number must be possible (right length for its
    country), not necessarily assigned, so test data and new operator prefixes still match.
    """
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    if len(uniques) == 0:
        return pd.Series([None] * len(s), index=s.index, dtype=object)
    raw = pd.Series(uniques, dtype=object).astype(str)
    canonical = raw.str.fullmatch(r"\+380\d{9}").to_numpy(dtype=bool)
    values = raw.to_numpy(dtype=object).copy()
    todo = ~canonical
    if todo.any():
        values[todo] = [_phone_one(v, region) for v in values[todo]]
    result = values.take(codes, mode="clip")  # missing values (code -1) are set below
    result[codes < 0] = None
    return pd.Series(result, index=s.index, dtype=object)


_NON_DIGIT = re.compile(r"\D")


def _phone_one(value: str, region: str) -> str | None:
    """One distinct raw phone to E.164 (see normalize_phone)."""
    text = value.strip()
    digits = _NON_DIGIT.sub("", text)
    international = text.startswith("+")
    if not international and text.startswith("00"):
        digits, international = digits[2:], True
    n = len(digits)
    if n == 12 and digits.startswith("380"):
        return "+" + digits
    if not international:
        if n == 11 and digits.startswith("80"):
            return "+3" + digits
        if n == 10 and digits.startswith("0"):
            return "+38" + digits
    if n < 5:
        return None
    return _e164("+" + digits if international else digits, region)


def _e164(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _per_distinct(s: pd.Series, fn) -> pd.Series:
    """`fn` applied to the distinct non-missing values of `s` only, spread back by position (object dtype,
    None for missing): a million buyers' rows hold far fewer distinct e-mails or names."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    if len(uniques) == 0:
        return pd.Series([None] * len(s), index=s.index, dtype=object)
    values = _as_object(fn(pd.Series(uniques, dtype=object))).to_numpy(dtype=object)
    result = values.take(codes, mode="clip")
    result[codes < 0] = None
    return pd.Series(result, index=s.index, dtype=object)


def normalize_email(s: pd.Series) -> pd.Series:
    """Trimmed and lower-cased e-mails (R-CUST-5/6); empty becomes None.  Once per distinct value."""
    return _per_distinct(s, _email_key)


def _email_key(s: pd.Series) -> pd.Series:
    out = s.astype("string").str.strip().str.lower()
    return out.mask(out.eq(""))


def normalize_name(s: pd.Series, strict: bool) -> pd.Series:
    """The comparison key of a full name (R-CUST-6).

    ``strict`` keeps the guide's exact match: the string is returned as it is ("Олександр" and
    "Олександр " differ); only missing or blank names become None.  Otherwise the key is NFC-normalised,
    apostrophes unified, whitespace trimmed and collapsed, and case folded.  It is a *key*: callers keep
    the original string for display and for the counterparty they create.
    """
    return _per_distinct(s, lambda u: _name_key(u, strict))


def _name_key(s: pd.Series, strict: bool) -> pd.Series:
    text = s.astype("string")
    blank = text.isna() | text.str.strip().eq("")
    if strict:
        return text.mask(blank)
    key = (
        text.str.normalize("NFC")
        .str.replace(_APOSTROPHES, "'", regex=True)
        .str.replace(r"\s+", " ", regex=True)
        .str.strip()
        .str.casefold()
    )
    return key.mask(blank)


__all__ = ["normalize_email", "normalize_name", "normalize_phone"]
