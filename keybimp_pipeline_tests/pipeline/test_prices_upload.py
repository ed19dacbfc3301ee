"""Price upload Bimp → KeyCRM through both emulators (R-PRICE-2..6), requests counted."""

from __future__ import annotations

import pytest

from keybimp_pipeline.sync import uploads
from keybimp_pipeline_tests.pipeline import uploads_scenario
from keybimp_pipeline_tests.pipeline.uploads_scenario import Item

make_shop = uploads_scenario.make_shop  # the fixture


def _prices(shop) -> dict[str, float]:
    return {sku: float(o["price"]) for sku, o in shop.crm_offers().items()}


def test_R_PRICE_6_only_changed_prices_in_batches_and_a_second_upload_sends_nothing(make_shop):
    items = [Item(f"P-{i}", price=100 + i, crm_price=100) for i in range(5)]  # P-0 already agrees
    shop = make_shop(items)
    h = shop.harness
    with h.bimp() as b, h.keycrm() as k:
        result = uploads.price_upload(h.store, h.settings, shop.resolved(), b, k, batch_size=2)
    assert result["updates"] == 4 and result["requests"] == 2  # 4 changes, 2 a batch: the floor
    assert shop.puts("/v1/offers") == 2
    assert _prices(shop) == {"P-0": 100, "P-1": 101, "P-2": 102, "P-3": 103, "P-4": 104}
    shop.reset_requests()
    again = shop.run_prices()
    assert again["updates"] == 0 and again["requests"] == 0 and shop.puts("/v1/offers") == 0
    shop.set_bimp_price("P-3", 99.5)
    third = shop.run_prices()
    assert third["updates"] == 1 and _prices(shop)["P-3"] == 99.5


@pytest.mark.parametrize("skip_out_of_stock", [False, True])
def test_R_PRICE_4_price_change_on_an_out_of_stock_item(make_shop, skip_out_of_stock):
    shop = make_shop([Item("GONE", bimp={"main": 2}, reserved={"main": 2}, price=150, crm_price=120),
                      Item("HERE", bimp={"main": 3}, price=80, crm_price=70)],
                     {"prices": {"skip_out_of_stock": skip_out_of_stock}})
    result = shop.run_prices()
    prices = _prices(shop)
    assert prices["HERE"] == 80
    if skip_out_of_stock:  # free stock 0 (2 on hand, 2 reserved): KeyCRM keeps its price
        assert result["updates"] == 1 and prices["GONE"] == 120
    else:
        assert result["updates"] == 2 and prices["GONE"] == 150


@pytest.mark.parametrize("create_missing", [False, True])
def test_R_PRICE_5_sku_one_character_off_is_not_found_and_the_duplicate_shows_in_the_metadata(
        make_shop, create_missing):
    shop = make_shop([Item("TS-001-BLK", price=499, crm_sku="TS-001_BLK", crm_price=450),
                      Item("MUG-7", price=200, crm_price=200)],
                     {"prices": {"create_missing": create_missing}})
    preview = shop.run_prices(dry_run=True)  # what the run's metadata shows before anything is written
    assert preview["would_create"] == 1 and preview["similar_skus"] == 1
    assert "| TS-001-BLK |" in preview["not_found_preview"] and "| TS-001_BLK |" in preview["not_found_preview"]
    assert preview["to_create"] == (1 if create_missing else 0) and preview["requests"] == 0
    assert shop.requests().get("POST /v1/products", 0) == 0

    result = shop.run_prices()
    offers = shop.crm_offers()
    assert result["would_create"] == 1
    if create_missing:  # the guide's documented duplicate: a second product next to the one-char-off SKU
        assert result["created"] == 1 and shop.requests()["POST /v1/products"] == 1
        assert float(offers["TS-001-BLK"]["price"]) == 499 and float(offers["TS-001_BLK"]["price"]) == 450
        shop.reset_requests()
        again = shop.run_prices()  # found by SKU now: nothing created, nothing sent
        assert (again["would_create"], again["created"], again["requests"]) == (0, 0, 0)
        assert shop.requests().get("POST /v1/products", 0) == 0
    else:
        assert result["created"] == 0 and "TS-001-BLK" not in offers
        assert float(offers["TS-001_BLK"]["price"]) == 450


def test_R_PRICE_2_product_group_filter_includes_subgroups(make_shop):
    items = [Item("APP-1", price=300, crm_price=1, group="apparel"),  # Товари › Одяг
             Item("HOME-1", price=400, crm_price=1, group="home"),    # Товари › Дім і текстиль
             Item("ROOT-1", price=500, crm_price=1, group="goods")]   # Товари
    shop = make_shop(items, {"prices": {"product_group": "Одяг"}})
    assert shop.run_prices()["updates"] == 1
    assert _prices(shop) == {"APP-1": 300, "HOME-1": 1, "ROOT-1": 1}
    uploads_scenario.write_config(shop.config, shop.keycrm_server.url, shop.bimp_server.url,
                                  {"prices": {"product_group": "Товари"}})
    assert shop.run_prices()["updates"] == 2  # the root group and every subgroup
    assert _prices(shop) == {"APP-1": 300, "HOME-1": 400, "ROOT-1": 500}


def test_R_PRICE_2_unknown_product_group_fails_instead_of_sending_every_price(make_shop):
    shop = make_shop([Item("APP-1", price=300, crm_price=1)], {"prices": {"product_group": "Одяг2"}})
    with pytest.raises(ValueError, match="Одяг2"):
        shop.run_prices()
    assert shop.puts("/v1/offers") == 0


def test_R_PRICE_3_the_chosen_price_list_is_sent(make_shop):
    shop = make_shop([Item("W-1", price=300, wholesale=240, crm_price=300)], {"prices": {"price_list": "Оптова"}})
    result = shop.run_prices()
    assert result["updates"] == 1 and _prices(shop)["W-1"] == 240
