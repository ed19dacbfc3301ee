"""Products through both emulators: which Bimp item each KeyCRM line is, created or refused (R-PROD-1..7)."""

from __future__ import annotations

import pytest

from keybimp_pipeline.settings import SettingsError, load_settings
from keybimp_pipeline_tests.pipeline.orders_world import Shop, at


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch) -> Shop:
    shop = Shop(emulators, tmp_path, monkeypatch)
    shop.world.buyer(1, "Анна Коваль", phone="0671234567")
    return shop


def _items(shop: Shop) -> dict[str, dict]:
    return {n["uuid"]: n for n in shop.company["nomenclature"]}


def _lines(order: dict) -> list[tuple[str, float]]:
    return sorted((p["nomenclatureUuid"], p["count"]) for p in order["products"])


def test_R_PROD_5_name_and_sku_mismatch_refuses_the_line_and_an_order_of_only_such_lines(shop: Shop):
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=10)
    table = w.item("Стіл дубовий", "TB-1", stock=10)
    w.offer(1, "CH-2", "Стілець синій", 500)  # same name, another article
    w.offer(2, "TB-1", "Стіл дубовий", 3000)
    w.order(1, 1, [(1, 1, 500)])
    w.order(2, 1, [(1, 1, 500), (2, 1, 3000)])
    shop.configure({"products": {"search_by": "name_and_sku", "allow_create": True}})
    shop.load()

    result = shop.sync()["orders"]

    orders = shop.orders()
    assert 1 not in orders  # its only line failed
    assert _lines(orders[2]) == [(table, 1)]  # created without the mismatched line
    assert result.products_created == 0  # no item is created for a mismatched line
    assert set(_items(shop)) == {chair, table, w.ref("nomenclature", "Доставка товару")}
    issues = shop.issues()
    assert issues[1] == {"product_sku_mismatch"}
    assert "CH-2" in shop.issue_detail(1, "product_sku_mismatch")
    assert issues.get(2) == {"product_sku_mismatch"}  # the dropped line is reported too


def test_R_PROD_6_one_sku_on_two_items_is_ambiguous_and_the_order_is_not_created(shop: Shop):
    w = shop.world
    a = w.item("Стілець синій", "CH-1", stock=10)
    b = w.item("Стілець синій (старий)", "CH-1", stock=10)
    w.offer(1, "CH-1", "Стілець синій", 500)
    w.order(1, 1, [(1, 1, 500)])
    shop.configure({"products": {"search_by": "sku", "allow_create": True}})
    shop.load()
    writes = shop.bimp_writes()

    shop.sync()

    assert shop.orders() == {}
    assert shop.issues() == {1: {"product_ambiguous_sku"}}
    detail = shop.issue_detail(1, "product_ambiguous_sku")
    assert a in detail and b in detail
    assert shop.bimp_writes() == writes  # not even the counterparty is created for a refused order


def test_R_PROD_2_id_search_without_allow_create_is_refused_with_a_clear_message(shop: Shop):
    shop.configure({"products": {"search_by": "id", "allow_create": False}})
    with pytest.raises(SettingsError) as err:
        load_settings(shop.config_path)
    assert "products.search_by: 'id' needs allow_create" in str(err.value)


@pytest.mark.parametrize("allow", [True, False])
def test_R_PROD_3_unknown_product_is_created_in_the_group_or_is_product_not_found(shop: Shop, allow):
    w = shop.world
    w.offer(1, "LAMP-7", "Лампа настільна", 800)
    w.order(1, 1, [(1, 2, 800)])
    shop.configure({"products": {"search_by": "sku", "allow_create": allow,
                                 "new_products_group": "Інтернет-магазин"}, "main": {"reserve": "off"}})
    shop.load()

    result = shop.sync()["orders"]

    before = {w.ref("nomenclature", "Доставка товару")}
    if allow:
        created = [n for u, n in _items(shop).items() if u not in before]
        assert len(created) == 1 and result.products_created == 1
        item = created[0]
        assert (item["name"], item["article"], item["type"]) == ("Лампа настільна", "LAMP-7", "goods")
        assert item["group"] == w.ref("nomenclatureGroups", "Інтернет-магазин")
        assert _lines(shop.orders()[1]) == [(item["uuid"], 2)]
        assert shop.issues() == {}
    else:
        assert set(_items(shop)) == before
        assert shop.orders() == {}
        assert shop.issues() == {1: {"product_not_found"}}
        assert "LAMP-7" in shop.issue_detail(1, "product_not_found")


@pytest.mark.parametrize("mode", ["id", "name"])  # sku finds it trivially; name_and_sku: unit tests
def test_R_PROD_4_created_item_keeps_its_name_after_a_keycrm_rename(shop: Shop, mode):
    """Created as "Стілець синій", renamed in KeyCRM to "Стілець синій (Акція)": Bimp keeps the first name,
    and neither the renamed old order nor a new order with the new name creates a second item."""
    w = shop.world
    w.offer(1, "CH-1", "Стілець синій", 500)
    w.order(1, 1, [(1, 1, 500)])
    shop.configure({"products": {"search_by": mode, "allow_create": True}, "main": {"reserve": "off"}})
    shop.load()
    shop.sync()
    item = shop.orders()[1]["products"][0]["nomenclatureUuid"]

    # KeyCRM renames the offer: the transferred order's line and a new order both carry the new name
    first = w.keycrm["orders"][0]
    first["products"][0]["name"] = "Стілець синій (Акція)"
    first["updated_at"] = at(12)
    second = w.order(2, 1, [(1, 1, 500)], placed=at(11))
    second["products"][0]["name"] = "Стілець синій (Акція)"
    shop.keycrm_server.put_state(w.keycrm)
    result = shop.sync()["orders"]

    assert result.products_created == 0
    goods = [n for n in shop.company["nomenclature"] if n["type"] == "goods"]
    assert [(n["uuid"], n["name"]) for n in goods] == [(item, "Стілець синій")]
    assert {o["products"][0]["nomenclatureUuid"] for o in shop.orders().values()} == {item}
    assert len(shop.orders()) == 2


def test_R_PROD_7_shipping_cost_is_a_line_with_the_delivery_service(shop: Shop):
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=10)
    w.offer(1, "CH-1", "Стілець синій", 500)
    w.order(1, 1, [(1, 2, 500)], shipping_price=75)
    shop.configure({"products": {"delivery_service": "Доставка товару"}})
    shop.load()

    shop.sync()

    order = shop.orders()[1]
    service = w.ref("nomenclature", "Доставка товару")
    lines = {p["nomenclatureUuid"]: p for p in order["products"]}
    assert set(lines) == {chair, service}
    assert (lines[service]["count"], lines[service]["cost"], lines[service]["reserve"]) == (1, 75, 0)
    assert order["sumOrdered"] == 1075
    assert shop.issues() == {}


def test_R_PROD_7_without_a_delivery_service_the_order_is_created_without_the_line(shop: Shop):
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=10)
    w.offer(1, "CH-1", "Стілець синій", 500)
    w.order(1, 1, [(1, 2, 500)], shipping_price=75)
    shop.configure({"products": {"delivery_service": None}})
    shop.load()

    shop.sync()

    order = shop.orders()[1]
    assert _lines(order) == [(chair, 2)] and order["sumOrdered"] == 1000
    assert shop.issues() == {1: {"delivery_service_missing"}}
    assert "75.00" in shop.issue_detail(1, "delivery_service_missing")
