"""How the order writer reads free stock and reserves on reload, through both emulators (R-MAIN-2, R-MAIN-3).

The Bimp emulator's request log (`GET /__admin/requests?log=1&since=N`) shows each call the pipeline made
with its body, so a test can say exactly which stock reads a sync made.
"""

from __future__ import annotations

import pytest

from keybimp_pipeline_tests.pipeline.orders_world import Shop


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch) -> Shop:
    shop = Shop(emulators, tmp_path, monkeypatch)
    shop.world.buyer(1, "Анна Коваль", phone="0671234567")
    shop.world.buyer(2, "Петро Іваненко", phone="0509876543")
    shop.world.offer(1, "CH-1", "Стілець синій", 500)
    shop.world.offer(2, "TB-1", "Стіл дубовий", 3000)
    return shop


def _logged(shop: Shop) -> int:
    return int(shop.bimp_server.admin.get("/__admin/requests").json()["logged"])


def _calls_since(shop: Shop, n: int) -> list[dict]:
    return shop.bimp_server.admin.get("/__admin/requests", params={"log": 1, "since": n}).json()["log"]


def _stock_reads(calls: list[dict]) -> list[dict]:
    """The stock reads among `calls`, without their place in the log."""
    return [{k: v for k, v in c.items() if k != "n"} for c in calls
            if "/inventory/" in c["path"] or c["path"].endswith("/api-readStocks")]


def _reserves(order: dict) -> dict[str, float]:
    return {p["nomenclatureUuid"]: p["reserve"] for p in order["products"]}


def test_R_MAIN_3_free_stock_is_read_for_the_involved_items_only(shop: Shop):
    """A warehouse of 250+ items (three inventory pages): one filtered read of the two items ordered."""
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=3)
    table = w.item("Стіл дубовий", "TB-1", stock=2)
    for i in range(250):
        w.item(f"Інший товар {i}", f"OTHER-{i}", stock=1)
    w.order(1, 1, [(1, 2, 500), (2, 1, 3000)])
    w.order(2, 2, [(1, 1, 500)])
    shop.configure({"main": {"reserve": "full"}})
    shop.load()
    mark = _logged(shop)

    shop.sync()

    assert _stock_reads(_calls_since(shop, mark)) == [{
        "method": "POST", "path": "/org2/nomenclature/api-readStocks",
        "body": {"warehouseUuid": [w.warehouse], "nomenclatureUuid": sorted([chair, table]),
                 "pagination": {"offset": 0, "count": 100}}}]
    orders = shop.orders()
    assert _reserves(orders[1]) == {chair: 2, table: 1} and _reserves(orders[2]) == {chair: 1}
    assert shop.stock_row(chair)["available"] == 0 and shop.stock_row(table)["available"] == 1


def test_R_MAIN_3_no_stock_read_when_nothing_is_new(shop: Shop):
    w = shop.world
    w.item("Стілець синій", "CH-1", stock=3)
    w.order(1, 1, [(1, 1, 500)])
    shop.load()
    shop.sync()
    mark = _logged(shop)

    again = shop.sync()["orders"]

    assert again.unchanged == 1
    assert _stock_reads(_calls_since(shop, mark)) == []
