"""Statuses, reserves and reload through both emulators (R-STAT-1/2, R-MAIN-2/3/4).

Reserves are checked in the Bimp emulator's own state: the order lines' `reserve` and the warehouse's
inventory row (`available = quantity − reserved`, computed by the emulator from the order lines).
"""

from __future__ import annotations

import pytest

from keybimp_pipeline_tests.pipeline.orders_world import CANCELED, DELIVERY, IN_PROGRESS, Shop, at


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch) -> Shop:
    shop = Shop(emulators, tmp_path, monkeypatch)
    shop.world.buyer(1, "Анна Коваль", phone="0671234567")
    shop.world.buyer(2, "Петро Іваненко", phone="0509876543")
    shop.world.offer(1, "CH-1", "Стілець синій", 500)
    shop.world.offer(2, "TB-1", "Стіл дубовий", 3000)
    return shop


def _patch(shop: Shop, order_id: int, body: dict) -> None:
    shop.keycrm_server.admin.patch(f"/__admin/orders/{order_id}", json=body).raise_for_status()


def _reserves(order: dict) -> dict[str, float]:
    return {p["nomenclatureUuid"]: p["reserve"] for p in order["products"]}


# ---- statuses -------------------------------------------------------------------------------------

def test_R_STAT_2_unmapped_status_is_not_created_until_mapped(shop: Shop):
    w = shop.world
    w.item("Стілець синій", "CH-1", stock=10)
    w.order(1, 1, [(1, 1, 500)], status=DELIVERY)
    w.order(2, 2, [(1, 1, 500)])
    table = {"new": "Новий", "in_progress": "В роботі"}  # no "delivery"
    shop.configure(replace={"statuses": table})
    shop.load()

    shop.sync()
    assert set(shop.orders()) == {2}
    assert shop.issues() == {1: {"status_not_mapped"}}

    shop.configure(replace={"statuses": {**table, "delivery": "Відвантажено"}})
    result = shop.sync()["orders"]

    assert result.orders_created == 1
    assert shop.orders()[1]["status"] == w.ref("orderStatuses", "Відвантажено")
    assert shop.issues() == {}  # the issue is gone once the order is written


def test_R_STAT_2_created_once_the_order_moves_to_a_mapped_status(shop: Shop):
    w = shop.world
    w.item("Стілець синій", "CH-1", stock=10)
    w.order(1, 1, [(1, 1, 500)], status=DELIVERY)
    shop.configure(replace={"statuses": {"new": "Новий", "in_progress": "В роботі"}})
    shop.load()
    shop.sync()
    assert shop.orders() == {}

    _patch(shop, 1, {"status_id": IN_PROGRESS})
    shop.sync()

    assert shop.orders()[1]["status"] == w.ref("orderStatuses", "В роботі")
    assert shop.issues() == {}


def test_R_STAT_1_a_status_change_updates_the_bimp_order(shop: Shop):
    w = shop.world
    w.item("Стілець синій", "CH-1", stock=10)
    w.order(1, 1, [(1, 1, 500)])
    shop.load()
    shop.sync()
    assert shop.orders()[1]["status"] == w.ref("orderStatuses", "Новий")

    _patch(shop, 1, {"status_id": IN_PROGRESS})
    result = shop.sync()["orders"]

    assert (result.statuses_updated, result.orders_created) == (1, 0)
    assert len(shop.orders()) == 1
    assert shop.orders()[1]["status"] == w.ref("orderStatuses", "В роботі")


# ---- reserves -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, created, reserve, available", [
    ("full", False, None, 1),
    ("available_only", True, 1, 0),
    ("off", True, 0, 1),
])
def test_R_MAIN_3_reserve_modes_with_short_stock(shop: Shop, mode, created, reserve, available):
    """One chair on hand, two ordered (plus a table fully in stock)."""
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=1)
    table = w.item("Стіл дубовий", "TB-1", stock=5)
    w.order(1, 1, [(1, 2, 500), (2, 1, 3000)])
    shop.configure({"main": {"reserve": mode}})
    shop.load()

    shop.sync()

    orders = shop.orders()
    if created:
        assert _reserves(orders[1]) == {chair: reserve, table: 0 if mode == "off" else 1}
        assert shop.issues() == {}
    else:
        assert orders == {}
        assert shop.issues() == {1: {"reserve_insufficient"}}
        assert "short 1" in shop.issue_detail(1, "reserve_insufficient")
    assert shop.stock_row(chair)["available"] == available
    assert shop.stock_row(table)["available"] == (5 if mode == "off" or not created else 4)


def test_R_MAIN_3_earliest_placed_order_wins_the_last_unit(shop: Shop):
    """Order 5 was placed after order 9 (ids do not follow placement): order 9 gets the last chair."""
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=1)
    w.order(5, 1, [(1, 1, 500)], placed=at(9, 30))
    w.order(9, 2, [(1, 1, 500)], placed=at(9, 0))
    shop.configure({"main": {"reserve": "full"}})
    shop.load()

    shop.sync()

    orders = shop.orders()
    assert set(orders) == {9}
    assert _reserves(orders[9]) == {chair: 1}
    assert shop.issues() == {5: {"reserve_insufficient"}}
    assert shop.stock_row(chair)["available"] == 0


def test_R_MAIN_3_available_only_consumes_free_stock_earliest_first(shop: Shop):
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=3)
    w.order(5, 1, [(1, 2, 500)], placed=at(9, 30))
    w.order(9, 2, [(1, 2, 500)], placed=at(9, 0))
    shop.configure({"main": {"reserve": "available_only"}})
    shop.load()

    shop.sync()

    orders = shop.orders()
    assert _reserves(orders[9]) == {chair: 2} and _reserves(orders[5]) == {chair: 1}
    assert shop.stock_row(chair) | {"productId": None} == {
        "productId": None, "article": "CH-1", "quantity": 3, "reserved": 3, "available": 0}


def test_R_MAIN_4_cancellation_releases_the_reserve(shop: Shop):
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=5)
    w.order(1, 1, [(1, 2, 500)])
    shop.load()
    shop.sync()
    assert shop.stock_row(chair)["available"] == 3

    _patch(shop, 1, {"status_id": CANCELED})
    result = shop.sync()["orders"]

    order = shop.orders()[1]
    assert result.reserves_released == 1
    assert _reserves(order) == {chair: 0}
    assert order["status"] == w.ref("orderStatuses", "Скасовано")
    assert shop.stock_row(chair)["available"] == 5
    again = shop.sync()["orders"]  # released once: a re-run writes nothing
    assert (again.reserves_released, again.unchanged) == (0, 1)


# ---- reload ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("reload", [True, False])
def test_R_MAIN_2_reload_rewrites_an_order_when_a_line_is_added(shop: Shop, reload):
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=5)
    table = w.item("Стіл дубовий", "TB-1", stock=5)
    w.order(1, 1, [(1, 1, 500)])
    shop.configure({"main": {"reload_orders": reload}})
    shop.load()
    shop.sync()
    uuid = shop.orders()[1]["uuid"]

    shop.keycrm_server.post("/__admin/orders/1/lines", {"offer_id": 2, "quantity": 1, "price": 3000})
    result = shop.sync()["orders"]

    order = shop.orders()[1]
    assert order["uuid"] == uuid and len(shop.orders()) == 1
    lines = {p["nomenclatureUuid"]: p["count"] for p in order["products"]}
    if reload:
        assert result.orders_updated == 1
        assert lines == {chair: 1, table: 1} and order["sumOrdered"] == 3500
    else:
        assert result.orders_updated == 0
        assert lines == {chair: 1} and order["sumOrdered"] == 500
    assert shop.stock_row(chair)["available"] == 4  # the first reserve is kept either way
