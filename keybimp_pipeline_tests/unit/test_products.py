"""Product matching rules R-PROD-1..6 (keybimp_pipeline.rules.products)."""

from __future__ import annotations

import pandas as pd

from keybimp_pipeline.rules.products import items_to_create, match_products, order_outcomes
from keybimp_pipeline.settings import ProductSettings


def lines(*rows: tuple) -> pd.DataFrame:
    """rows: (order_id, line_no, offer_id, sku, name)."""
    frame = pd.DataFrame(rows, columns=["order_id", "line_no", "offer_id", "sku", "name"])
    frame["offer_id"] = frame["offer_id"].astype("Int64")
    return frame


def items(*rows: tuple) -> pd.DataFrame:
    """rows: (uuid, name, article)."""
    frame = pd.DataFrame(list(rows) or None, columns=["uuid", "name", "article"])
    frame["type"] = "goods"
    return frame


NONE_CREATED = pd.DataFrame({"offer_id": pd.Series(dtype="Int64"), "uuid": pd.Series(dtype=object)})


def run(ls, its, settings, created=NONE_CREATED) -> pd.DataFrame:
    return match_products(ls, its, created, settings).set_index(["order_id", "line_no"])


def test_R_PROD_1_sku_matches_article_exactly_trimmed():
    r = run(lines((1, 1, 5, " CH-1 ", "Стілець")), items(("i1", "Інша назва", "CH-1"), ("i2", "x", "ch-1")),
            ProductSettings(search_by="sku"))
    assert r.loc[(1, 1), ["outcome", "nomenclature_uuid", "code"]].tolist() == ["matched", "i1", None]


def test_R_PROD_3_not_found_creation_on_creates_off_rejects():
    ls = lines((1, 1, 5, "NEW-1", "Новий товар"))
    on = run(ls, items(("i1", "Стілець", "CH-1")), ProductSettings(search_by="sku", allow_create=True))
    assert on.loc[(1, 1), ["outcome", "nomenclature_uuid", "create_key", "code"]].tolist() == \
        ["create", None, "sku-NEW-1", None]
    off = run(ls, items(("i1", "Стілець", "CH-1")), ProductSettings(search_by="sku", allow_create=False))
    assert off.loc[(1, 1), ["outcome", "code", "detail"]].tolist() == \
        ["rejected", "product_not_found", "no Bimp item with SKU 'NEW-1'"]
    verdict = order_outcomes(match_products(ls, items(), NONE_CREATED, ProductSettings()))
    assert verdict.iloc[0][["order_id", "ok", "code"]].tolist() == [1, False, "product_not_found"]


def test_R_PROD_6_one_sku_on_two_items_order_not_created():
    ls = lines((1, 1, 5, "CH-1", "Стілець"), (1, 2, 6, "T-1", "Стіл"), (2, 1, 6, "T-1", "Стіл"))
    its = items(("i1", "Стілець", "CH-1"), ("i2", "Стілець (копія)", "CH-1"), ("i3", "Стіл", "T-1"))
    m = match_products(ls, its, NONE_CREATED, ProductSettings(search_by="sku", allow_create=True))
    r = m.set_index(["order_id", "line_no"])
    assert r.loc[(1, 1), ["outcome", "code"]].tolist() == ["rejected", "product_ambiguous_sku"]
    assert r.loc[(1, 1), "detail"] == ("SKU 'CH-1' is on 2 Bimp items: i1 'Стілець' (article CH-1), "
                                       "i2 'Стілець (копія)' (article CH-1)")
    assert r.loc[(1, 2), ["outcome", "nomenclature_uuid"]].tolist() == ["matched", "i3"]
    verdict = order_outcomes(m).set_index("order_id")
    assert verdict.loc[1, ["ok", "code"]].tolist() == [False, "product_ambiguous_sku"]
    assert verdict.loc[2, ["ok", "code"]].tolist() == [True, None]


def test_R_PROD_5_name_and_sku_mismatch():
    its = items(("i1", "Стілець", "CH-1"), ("i2", "Стіл", "T-1"))
    ls = lines((1, 1, 5, "CH-2", "Стілець"), (1, 2, 6, "T-1", "Стіл"), (2, 1, 5, "CH-2", "Стілець"))
    m = match_products(ls, its, NONE_CREATED, ProductSettings(search_by="name_and_sku", allow_create=True))
    r = m.set_index(["order_id", "line_no"])
    assert r.loc[(1, 1), ["outcome", "nomenclature_uuid", "create_key", "code"]].tolist() == \
        ["rejected", None, None, "product_sku_mismatch"]
    assert r.loc[(1, 1), "detail"] == ("Bimp item(s) named 'Стілець' have another article than SKU 'CH-2': "
                                       "i1 'Стілець' (article CH-1)")
    assert r.loc[(1, 2), ["outcome", "nomenclature_uuid"]].tolist() == ["matched", "i2"]
    verdict = order_outcomes(m).set_index("order_id")
    # some lines mismatch: the order is created without them (the code still reports them)
    assert verdict.loc[1, ["ok", "code"]].tolist() == [True, "product_sku_mismatch"]
    # every line mismatches: the order is not created
    assert verdict.loc[2, ["ok", "code"]].tolist() == [False, "product_sku_mismatch"]


def test_R_PROD_5_name_and_sku_same_name_same_sku_matches_and_renamed_line_found_by_sku():
    its = items(("i1", "Стілець синій", "CH-1"), ("i9", "Стілець синій", "CH-9"))
    ls = lines((1, 1, 5, "CH-1", "Стілець синій"), (1, 2, 5, "CH-1", "Стілець синій (Акція)"),
               (1, 3, 7, "NEW", "Диван"))
    r = run(ls, its, ProductSettings(search_by="name_and_sku", allow_create=True))
    assert r.loc[(1, 1), ["outcome", "nomenclature_uuid"]].tolist() == ["matched", "i1"]
    assert r.loc[(1, 2), ["outcome", "nomenclature_uuid"]].tolist() == ["matched", "i1"]
    assert r.loc[(1, 3), ["outcome", "create_key"]].tolist() == ["create", "sku-NEW"]


def test_R_PROD_1_name_mode_exact_name_and_ambiguous_name():
    its = items(("i1", "Стілець", None), ("i2", "Стіл", None), ("i3", "Стіл", None))
    ls = lines((1, 1, 5, None, "Стілець "), (2, 1, 6, None, "Стіл"), (3, 1, 7, None, "стілець"))
    m = match_products(ls, its, NONE_CREATED, ProductSettings(search_by="name", allow_create=False))
    r = m.set_index(["order_id", "line_no"])
    assert r.loc[(1, 1), ["outcome", "nomenclature_uuid"]].tolist() == ["matched", "i1"]
    assert r.loc[(2, 1), ["outcome", "code"]].tolist() == ["rejected", "product_ambiguous_name"]
    assert r.loc[(3, 1), ["outcome", "code"]].tolist() == ["rejected", "product_not_found"]
    assert order_outcomes(m)["ok"].tolist() == [True, False, False]


def test_R_PROD_2_id_mode_uses_items_the_pipeline_created():
    created = pd.DataFrame({"offer_id": pd.array([5], dtype="Int64"), "uuid": ["i-made"]})
    its = items(("i-made", "Стілець синій", "CH-1"), ("i-other", "Стілець синій (Акція)", "CH-1X"))
    ls = lines((1, 1, 5, "CH-1X", "Стілець синій (Акція)"), (1, 2, 6, "T-1", "Стіл"))
    r = run(ls, its, ProductSettings(search_by="id", allow_create=True), created)
    # found by offer id although another item now has the line's name and SKU
    assert r.loc[(1, 1), ["outcome", "nomenclature_uuid"]].tolist() == ["matched", "i-made"]
    assert r.loc[(1, 2), ["outcome", "create_key"]].tolist() == ["create", "offer-6"]


def test_R_PROD_4_created_item_keeps_name_at_creation():
    ls = lines((1, 1, 5, "CH-1", "Стілець синій"), (2, 1, 5, "CH-1", "Стілець синій (Акція)"))
    m = match_products(ls, items(), NONE_CREATED, ProductSettings(search_by="id", allow_create=True))
    assert m["create_key"].tolist() == ["offer-5", "offer-5"]
    new = items_to_create(m, ls)
    assert new[["create_key", "name", "sku"]].values.tolist() == [["offer-5", "Стілець синій", "CH-1"]]
    assert new["offer_id"].tolist() == [5]
    # a later run: the ledger knows offer 5, the renamed line goes to the same item, nothing is created
    created = pd.DataFrame({"offer_id": pd.array([5], dtype="Int64"), "uuid": ["i-made"]})
    later = run(lines((3, 1, 5, "CH-1", "Стілець синій (Акція)")), items(("i-made", "Стілець синій", "CH-1")),
                ProductSettings(search_by="name", allow_create=True), created)
    assert later.loc[(3, 1), ["outcome", "nomenclature_uuid"]].tolist() == ["matched", "i-made"]


def test_R_PROD_3_lines_sharing_a_new_sku_share_one_new_item():
    ls = lines((1, 1, 5, "NEW", "Товар"), (2, 1, 8, "NEW", "Товар інший офер"), (2, 2, None, None, "Без коду"))
    m = match_products(ls, items(), NONE_CREATED, ProductSettings(search_by="sku", allow_create=True))
    assert m["create_key"].tolist() == ["sku-NEW", "sku-NEW", "name-Без коду"]
    assert len(items_to_create(m, ls)) == 2
