"""Statuses, reserves and reload through both emulators (R-STAT-1/2, R-MAIN-2/3/4).

Reserves are checked in the Bimp emulator's own state: the order lines' `reserve` and the warehouse's
inventory row (`available = quantity − reserved`, computed by the emulator from the order lines).
"""

from __future__ import annotations

import json

import pytest

from keybimp_pipeline.storage.ledger import Ledger
from keybimp_pipeline_tests.pipeline.orders_world import CANCELED, DAY, DELIVERY, IN_PROGRESS, Shop, at


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


# ---- free stock reads (R-MAIN-3) --------------------------------------------------------------------------
# The Bimp emulator's request log (`GET /__admin/requests?log=1&since=N`) shows each call a sync made, with
# its body.

def _logged(shop: Shop) -> int:
    return int(shop.bimp_server.admin.get("/__admin/requests").json()["logged"])


def _calls_since(shop: Shop, n: int) -> list[dict]:
    return shop.bimp_server.admin.get("/__admin/requests", params={"log": 1, "since": n}).json()["log"]


def _stock_reads(calls: list[dict]) -> list[dict]:
    """The stock reads among `calls`, without their place in the log."""
    return [{k: v for k, v in c.items() if k != "n"} for c in calls
            if "/inventory/" in c["path"] or c["path"].endswith("/api-readStocks")]


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


# ---- reload: the rewritten order reserves what was added (R-MAIN-2 with R-MAIN-3) ------------------------

def _add_line(shop: Shop, order_id: int, offer_id: int, quantity: float, price: float) -> None:
    shop.keycrm_server.post(f"/__admin/orders/{order_id}/lines",
                            {"offer_id": offer_id, "quantity": quantity, "price": price})


def _receive(shop: Shop, item: str, quantity: float) -> None:
    """Goods arrive at the main warehouse (a Bimp purchase invoice)."""
    w = shop.world
    with shop.h.bimp() as b:
        b.call("/org2/purchaseInvoice/api-create", {
            "warehouse": w.warehouse, "organization": w.company["organizations"][0]["uuid"],
            "products": [{"product": item, "warehouseCount": quantity}]})


def _ledger_reserves(shop: Shop, order_id: int) -> dict[str, float]:
    row = Ledger(shop.h.store).entries("customer_order", [str(order_id)]).loc[str(order_id)]
    return json.loads(row["detail"])["reserves"]


@pytest.mark.parametrize("mode", ["full", "available_only"])
def test_R_MAIN_2_reload_reserves_a_line_added_to_a_transferred_order(shop: Shop, mode):
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=5)
    table = w.item("Стіл дубовий", "TB-1", stock=5)
    w.order(1, 1, [(1, 1, 500)])
    shop.configure({"main": {"reload_orders": True, "reserve": mode}})
    shop.load()
    shop.sync()
    mark = _logged(shop)

    _add_line(shop, 1, 2, 2, 3000)
    result = shop.sync()["orders"]

    # the free stock read asks only for the item the kept reserve does not cover
    assert [c["body"]["nomenclatureUuid"] for c in _stock_reads(_calls_since(shop, mark))] == [[table]]
    assert result.orders_updated == 1
    assert _reserves(shop.orders()[1]) == {chair: 1, table: 2}
    assert shop.stock_row(chair)["available"] == 4 and shop.stock_row(table)["available"] == 3
    assert _ledger_reserves(shop, 1) == {chair: 1, table: 2}
    again = shop.sync()["orders"]
    assert (again.orders_updated, again.unchanged) == (0, 1)
    assert shop.stock_row(table)["available"] == 3


def test_R_MAIN_2_available_only_reload_reserves_what_is_free_of_a_raised_quantity(shop: Shop):
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=3)
    w.order(1, 1, [(1, 1, 500)])
    w.order(2, 2, [(1, 1, 500)])
    shop.configure({"main": {"reload_orders": True, "reserve": "available_only"}})
    shop.load()
    shop.sync()
    assert shop.stock_row(chair)["available"] == 1

    _patch(shop, 1, {"products": [{"offer_id": 1, "quantity": 4, "price": 500}]})
    result = shop.sync()["orders"]

    assert result.orders_updated == 1 and shop.issues() == {}
    orders = shop.orders()
    assert _reserves(orders[1]) == {chair: 2} and _reserves(orders[2]) == {chair: 1}  # kept 1 + the free 1
    assert shop.stock_row(chair) | {"productId": None} == {
        "productId": None, "article": "CH-1", "quantity": 3, "reserved": 3, "available": 0}


def test_R_MAIN_2_full_mode_rewrite_waits_for_stock_for_the_added_line(shop: Shop):
    """`full`: an order is only written with every line reserved, so a rewrite the stock cannot cover is
    not made (the first version and its reserve stay; the status follows) until the goods arrive."""
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=5)
    table = w.item("Стіл дубовий", "TB-1", stock=0)
    w.order(1, 1, [(1, 1, 500)])
    shop.configure({"main": {"reload_orders": True, "reserve": "full"}})
    shop.load()
    shop.sync()

    _add_line(shop, 1, 2, 1, 3000)
    _patch(shop, 1, {"status_id": IN_PROGRESS})
    result = shop.sync()["orders"]

    assert (result.orders_updated, result.statuses_updated) == (0, 1)  # R-STAT-1: the status still follows
    assert shop.orders()[1]["status"] == w.ref("orderStatuses", "В роботі")
    assert shop.issues() == {1: {"reserve_insufficient"}}
    assert "short 1" in shop.issue_detail(1, "reserve_insufficient")
    assert _reserves(shop.orders()[1]) == {chair: 1} and shop.stock_row(chair)["available"] == 4

    _receive(shop, table, 1)
    result = shop.sync()["orders"]

    assert result.orders_updated == 1 and shop.issues() == {}
    assert _reserves(shop.orders()[1]) == {chair: 1, table: 1}
    assert shop.stock_row(table)["available"] == 0 and shop.stock_row(chair)["available"] == 4


def test_R_MAIN_3_reload_and_new_orders_take_free_stock_earliest_placed_first(shop: Shop):
    """Order 1 (placed 08:00, transferred) gets a table added; order 2 (placed 09:00, waiting for a table)
    is still new: the one table that arrives goes to the earlier placed order."""
    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=5)
    table = w.item("Стіл дубовий", "TB-1", stock=0)
    w.order(1, 1, [(1, 1, 500)], placed=at(8, 0))
    w.order(2, 2, [(2, 1, 3000)], placed=at(9, 0))
    shop.configure({"main": {"reload_orders": True, "reserve": "full"}})
    shop.load()
    shop.sync()
    assert set(shop.orders()) == {1} and shop.issues() == {2: {"reserve_insufficient"}}

    _receive(shop, table, 1)
    _add_line(shop, 1, 2, 1, 3000)
    result = shop.sync()["orders"]

    assert (result.orders_updated, result.orders_created) == (1, 0)
    assert set(shop.orders()) == {1} and _reserves(shop.orders()[1]) == {chair: 1, table: 1}
    assert shop.issues() == {2: {"reserve_insufficient"}}
    assert shop.stock_row(table)["available"] == 0



def test_keybimp_issues_names_the_short_item_by_sku_and_name_with_the_day_and_a_total(shop: Shop, monkeypatch,
                                                                                       capsys):
    """R-MAIN-3's reserve_insufficient as the shop owner reads it: the item by SKU and name (KeyCRM's, from the
    staged and matched lines), not only its Bimp uuid; the day without a time; a total line.  `--json` keeps
    the issue's fields and adds the day, the items named and when the issue was seen."""
    from keybimp_pipeline import cli

    w = shop.world
    chair = w.item("Стілець синій", "CH-1", stock=1)
    w.order(1, 1, [(1, 2, 500)])
    w.order(2, 2, [(1, 3, 500)], placed=at(11, 0))
    shop.configure({"main": {"reserve": "full"}})
    shop.load()
    shop.sync()
    assert shop.issues() == {1: {"reserve_insufficient"}, 2: {"reserve_insufficient"}}
    monkeypatch.setenv("KEYBIMP_CONFIG", str(shop.config_path))

    capsys.readouterr()
    assert cli.main(["issues", "demo-shop"]) == 0
    lines = capsys.readouterr().out.splitlines()
    message = lines[1].strip()
    assert message.startswith("Reserve mode 'full' and the warehouse lacks free stock")
    assert lines[0] == (f"{DAY}  order 1  reserve_insufficient: item SKU CH-1 «Стілець синій» ({chair}): "
                        + shop.issue_detail(1, "reserve_insufficient").split(": ", 1)[1])
    assert lines[2].startswith(f"{DAY}  order 2  reserve_insufficient: item SKU CH-1 «Стілець синій» ({chair})")
    assert "00:00:00" not in "\n".join(lines)
    assert lines[-1] == "2 open issues in 1 code: reserve_insufficient 2"

    assert cli.main(["issues", "demo-shop", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["integration"], r["order_id"], r["code"], r["day"]) for r in rows] == [
        ("demo-shop", 1, "reserve_insufficient", DAY), ("demo-shop", 2, "reserve_insufficient", DAY)]
    assert rows[0]["items"] == [{"nomenclature_uuid": chair, "sku": "CH-1", "name": "Стілець синій"}]
    assert rows[0]["message_en"] == message and rows[0]["message_uk"].startswith("Режим резерву")
    assert rows[0]["seen_at"] and rows[0]["detail"] == shop.issue_detail(1, "reserve_insufficient")
