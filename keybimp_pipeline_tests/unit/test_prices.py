"""Price upload Bimp -> KeyCRM (R-PRICE-2..6)."""

from __future__ import annotations

import pandas as pd

from keybimp_pipeline.rules.prices import group_with_subgroups, plan_price_upload

GROUPS = pd.DataFrame(
    {
        "uuid": ["furniture", "chairs", "office-chairs", "lamps", "orphan-loop-a", "orphan-loop-b"],
        "name": ["Меблі", "Стільці", "Офісні стільці", "Лампи", "a", "b"],
        "parent_uuid": [None, "furniture", "chairs", None, "orphan-loop-b", "orphan-loop-a"],
    }
)
ITEMS = pd.DataFrame(
    {
        "uuid": ["i-sofa", "i-chair", "i-office", "i-lamp", "i-noart"],
        "name": ["Диван", "Стілець синій", "Крісло офісне", "Лампа", "Без артикулу"],
        "article": ["SOFA-1", "CH-001", "OFF-7", "LAMP-1", None],
        "group_uuid": ["furniture", "chairs", "office-chairs", "lamps", "lamps"],
    }
)
PRICES = pd.DataFrame(
    {
        "nomenclature_uuid": ["i-sofa", "i-chair", "i-office", "i-lamp", "i-noart"],
        "price_kop": [1_500_000, 129_900, 450_000, 89_900, 100],
    }
)
OFFERS = pd.DataFrame(
    {
        "offer_id": [1, 2, 3, 4],
        "sku": ["SOFA-1", "CH-001", "OFF-7", "LAMP-1"],
        "price_kop": [1_500_000, 119_900, 400_000, 99_900],
    }
)
IN_STOCK = pd.DataFrame({"nomenclature_uuid": ITEMS["uuid"], "free": 3.0})
NO_ACK = pd.DataFrame({"sku": [], "price_kop": []})


def _plan(
    prices=PRICES,
    offers=OFFERS,
    free=IN_STOCK,
    ack=NO_ACK,
    *,
    group=None,
    skip_out_of_stock=False,
    create_missing=False,
):
    return plan_price_upload(
        prices,
        ITEMS,
        GROUPS,
        offers,
        free,
        ack,
        product_group=group,
        skip_out_of_stock=skip_out_of_stock,
        create_missing=create_missing,
    )


def _prices(updates: pd.DataFrame) -> dict[str, int]:
    return dict(zip(updates["sku"], updates["price_kop"]))


def test_R_PRICE_6_unchanged_prices_are_not_sent():
    updates, to_create, not_found = _plan()
    assert updates.to_dict("records") == [
        {"offer_id": 2, "sku": "CH-001", "price_kop": 129_900, "previous_kop": 119_900},
        {"offer_id": 4, "sku": "LAMP-1", "price_kop": 89_900, "previous_kop": 99_900},
        {"offer_id": 3, "sku": "OFF-7", "price_kop": 450_000, "previous_kop": 400_000},
    ]  # the sofa's price is the same: not sent
    assert to_create.empty and not_found.empty


def test_R_PRICE_6_acknowledged_price_counts_and_hand_edits_are_overwritten():
    offers = OFFERS.assign(price_kop=[1_500_000, 129_900, 450_000, 89_900])  # KeyCRM already current
    ack = pd.DataFrame({"sku": ["CH-001", "LAMP-1"], "price_kop": [129_900, 80_000]})
    updates, _, _ = _plan(offers=offers, ack=ack)
    assert _prices(updates) == {"LAMP-1": 89_900}  # ack differs: resent
    edited = offers.assign(price_kop=[1_400_000, 129_900, 450_000, 89_900])  # sofa edited by hand in KeyCRM
    updates, _, _ = _plan(offers=edited, ack=pd.DataFrame({"sku": ["SOFA-1"], "price_kop": [1_500_000]}))
    assert _prices(updates) == {"SOFA-1": 1_500_000}


def test_R_PRICE_4_out_of_stock_item_keeps_its_keycrm_price_when_skipping():
    free = pd.DataFrame({"nomenclature_uuid": ["i-chair", "i-office"], "free": [0.0, 2.0]})  # lamp absent: 0
    updates, _, _ = _plan(free=free, skip_out_of_stock=True)
    assert _prices(updates) == {"OFF-7": 450_000}
    updates, _, _ = _plan(free=free, skip_out_of_stock=False)
    assert _prices(updates) == {"CH-001": 129_900, "LAMP-1": 89_900, "OFF-7": 450_000}


def test_R_PRICE_2_group_filter_includes_subgroups_at_any_depth():
    assert group_with_subgroups(GROUPS, "furniture") == {"furniture", "chairs", "office-chairs"}
    assert group_with_subgroups(GROUPS, "orphan-loop-a") == {"orphan-loop-a", "orphan-loop-b"}  # cycle ends
    updates, _, _ = _plan(group="furniture")
    assert _prices(updates) == {"CH-001": 129_900, "OFF-7": 450_000}  # no lamp
    updates, _, _ = _plan(group="chairs")
    assert _prices(updates) == {"CH-001": 129_900, "OFF-7": 450_000}
    updates, _, _ = _plan(group="lamps")
    assert _prices(updates) == {"LAMP-1": 89_900}


def test_R_PRICE_5_sku_differing_by_one_character_is_a_would_be_creation():
    offers = OFFERS.assign(sku=["SOFA-1", "CH-01", "OFF-7", "LAMP-1"])  # KeyCRM: CH-01, Bimp: CH-001
    updates, to_create, not_found = _plan(offers=offers, create_missing=True)
    assert "CH-001" not in set(updates["sku"])
    assert to_create.to_dict("records") == [{"sku": "CH-001", "name": "Стілець синій", "price_kop": 129_900}]
    assert not_found["sku"].tolist() == ["CH-001"]


def test_R_PRICE_5_would_be_creations_are_counted_even_when_creating_is_off():
    offers = OFFERS.assign(sku=["SOFA-1", "ch 001", "OFF-7", "LAMP-1"])
    _, to_create, not_found = _plan(offers=offers, create_missing=False)
    assert to_create.empty and list(to_create.columns) == ["sku", "name", "price_kop"]
    assert len(not_found) == 1  # the metadata's "would create" count
    assert not_found.to_dict("records") == [
        {"sku": "CH-001", "name": "Стілець синій", "price_kop": 129_900, "similar_keycrm_sku": "ch 001"}
    ]


def test_R_PRICE_3_items_without_price_or_article_and_ambiguous_articles_are_left_alone():
    prices = PRICES.assign(price_kop=[1_500_000, 0, 450_000, 89_900, 100])  # chair: no price in the list
    items_dup = pd.concat(
        [
            ITEMS,
            pd.DataFrame(
                {"uuid": ["i-off2"], "name": ["Дубль"], "article": ["OFF-7"], "group_uuid": ["lamps"]}
            ),
        ]
    )
    prices_dup = pd.concat([prices, pd.DataFrame({"nomenclature_uuid": ["i-off2"], "price_kop": [1]})])
    updates, to_create, not_found = plan_price_upload(
        prices_dup,
        items_dup,
        GROUPS,
        OFFERS,
        IN_STOCK,
        NO_ACK,
        product_group=None,
        skip_out_of_stock=False,
        create_missing=True,
    )
    assert _prices(updates) == {"LAMP-1": 89_900}  # chair unpriced, OFF-7 two prices, no-article item skipped
    assert to_create.empty and not_found.empty


def test_R_PRICE_6_every_offer_with_the_sku_is_updated_and_money_stays_integer():
    offers = pd.concat([OFFERS, pd.DataFrame({"offer_id": [9], "sku": ["LAMP-1"], "price_kop": [None]})])
    updates, _, _ = _plan(offers=offers)
    lamp = updates.loc[updates["sku"] == "LAMP-1"]
    assert lamp["offer_id"].tolist() == [4, 9]
    assert lamp["previous_kop"].isna().tolist() == [False, True]
    assert str(updates["price_kop"].dtype) == "int64"
