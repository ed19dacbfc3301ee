"""Customers through both emulators: which Bimp counterparty each KeyCRM order lands on (R-CUST-1..9)."""

from __future__ import annotations

import pytest

from keybimp_pipeline_tests.pipeline.orders_world import COMPLETED, IN_PROGRESS, Shop


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch) -> Shop:
    shop = Shop(emulators, tmp_path, monkeypatch)
    shop.world.offer(1, "CH-1", "Стілець синій", 500)
    shop.world.item("Стілець синій", "CH-1", stock=100)
    return shop


def _counterparties(shop: Shop) -> dict[str, dict]:
    return {cp["uuid"]: cp for cp in shop.company["counterparties"]}


def test_R_CUST_6_R_CUST_4_national_phone_matches_e164_whatever_the_name(shop: Shop):
    """`067 123 45 67` typed in KeyCRM is the Bimp counterparty with `+380671234567` (R-CUST-6), and the
    order goes to it although the name differs (R-CUST-4: exactly one counterparty has the phone)."""
    w = shop.world
    anna = w.counterparty("Анна Коваль", phone="+380671234567")
    w.buyer(1, "Ганна К.", phone="067 123 45 67")
    w.buyer(2, "Ганна К.", phone="(067)1234567")
    w.order(1, 1, [(1, 1, 500)])
    w.order(2, 2, [(1, 1, 500)])
    shop.configure({"customers": {"search_by": ["phone"]}})
    shop.load()

    result = shop.sync()["orders"]

    orders = shop.orders()
    assert orders[1]["buyer"] == anna and orders[2]["buyer"] == anna
    assert result.counterparties_created == 0
    assert len(_counterparties(shop)) == 2  # the retail default and Анна: nothing new
    assert shop.issues() == {}


@pytest.mark.parametrize("criterion", ["phone", "email"])
def test_R_CUST_4_R_CUST_5_shared_value_with_creation_on_creates_a_new_counterparty(shop: Shop, criterion):
    w = shop.world
    first = w.counterparty("Марія Шевченко", phone="+380501112233", email="family@example.com")
    second = w.counterparty("Петро Шевченко", phone="+380501112233", email="family@example.com")
    w.buyer(1, "Оксана Шевченко", phone="050 111 22 33", email=" Family@Example.com ")
    w.order(1, 1, [(1, 1, 500)])
    shop.configure({"customers": {"search_by": [criterion], "allow_create": True}})
    shop.load()

    result = shop.sync()["orders"]

    buyer = shop.orders()[1]["buyer"]
    assert buyer not in (first, second)
    created = _counterparties(shop)[buyer]
    assert created["name"] == "Оксана Шевченко"
    assert created["phoneNumber"] == "+380501112233" and created["email"] == "family@example.com"
    assert result.counterparties_created == 1
    assert shop.issues() == {}


@pytest.mark.parametrize("criterion", ["phone", "email"])
def test_R_CUST_4_R_CUST_5_shared_value_with_creation_off_is_customer_ambiguous(shop: Shop, criterion):
    w = shop.world
    first = w.counterparty("Марія Шевченко", phone="+380501112233", email="family@example.com")
    second = w.counterparty("Петро Шевченко", phone="+380501112233", email="family@example.com")
    w.buyer(1, "Оксана Шевченко", phone="+38 050 111-22-33", email="family@example.com")
    w.order(1, 1, [(1, 1, 500)])
    shop.configure({"customers": {"search_by": [criterion], "allow_create": False}})
    shop.load()
    writes = shop.bimp_writes()

    shop.sync()

    assert shop.orders() == {}
    assert shop.issues() == {1: {"customer_ambiguous"}}
    detail = shop.issue_detail(1, "customer_ambiguous")
    assert first in detail and second in detail  # the message names the duplicates to merge
    assert shop.bimp_writes() == writes  # nothing written at all
    assert len(_counterparties(shop)) == 3


def test_R_CUST_7_name_and_phone_must_both_agree(shop: Shop):
    """An existing "Анна" without a phone is not the incoming "Анна" with a phone: a new one is created;
    an incoming "Анна" without a phone is the existing one."""
    w = shop.world
    anna = w.counterparty("Анна")
    w.buyer(1, "Анна", phone="0671234567")
    w.buyer(2, "Анна")
    w.order(1, 1, [(1, 1, 500)])
    w.order(2, 2, [(1, 1, 500)])
    shop.configure({"customers": {"search_by": ["name", "phone"], "allow_create": True}})
    shop.load()

    result = shop.sync()["orders"]

    orders = shop.orders()
    assert orders[2]["buyer"] == anna
    assert orders[1]["buyer"] != anna
    created = _counterparties(shop)[orders[1]["buyer"]]
    assert (created["name"], created["phoneNumber"]) == ("Анна", "+380671234567")
    assert result.counterparties_created == 1


def test_R_CUST_3_creation_off_and_nobody_found_is_customer_not_found(shop: Shop):
    w = shop.world
    w.counterparty("Інша Людина", phone="+380509999999")
    w.buyer(1, "Анна Коваль", phone="0671234567", email="anna@example.com")
    w.order(1, 1, [(1, 1, 500)])
    shop.configure({"customers": {"search_by": ["phone", "email"], "allow_create": False}})
    shop.load()
    writes = shop.bimp_writes()

    shop.sync()

    assert shop.orders() == {}
    assert shop.issues() == {1: {"customer_not_found"}}
    detail = shop.issue_detail(1, "customer_not_found")
    assert "+380671234567" in detail and "anna@example.com" in detail
    assert shop.bimp_writes() == writes


def test_R_CUST_1_fill_for_all_sends_every_order_to_the_default_counterparty(shop: Shop):
    w = shop.world
    retail = w.ref("counterparties", "Роздрібний покупець")
    retail_contract = next(c["uuid"] for c in w.company["contracts"] if c["counterparty"] == retail)
    w.counterparty("Анна Коваль", phone="+380671234567")  # would match by phone: not searched
    w.buyer(1, "Анна Коваль", phone="0671234567")
    w.buyer(2, "Новий Покупець", phone="0509876543")
    w.order(1, 1, [(1, 1, 500)])
    w.order(2, 2, [(1, 2, 500)])
    shop.configure({"customers": {"fill_for_all": True, "default_customer": "Роздрібний покупець",
                                  "default_contract": "Договір №00001"}})
    shop.load()

    result = shop.sync()["orders"]

    orders = shop.orders()
    assert {o["buyer"] for o in orders.values()} == {retail}
    assert {o["contract"] for o in orders.values()} == {retail_contract}
    assert (result.counterparties_created, result.contracts_created) == (0, 0)
    assert len(_counterparties(shop)) == 2


def test_R_CUST_8_R_CUST_9_buyer_renamed_after_transfer_breaks_nothing(shop: Shop):
    """Searched by name: the buyer is renamed in KeyCRM after the order was transferred.  No new counterparty,
    the counterparty keeps its first name, the order's later status change and its sale (linked through the
    ledger, never by re-searching the customer) go through."""
    w = shop.world
    w.buyer(1, "Олена Петренко", phone="0501112233")
    w.order(1, 1, [(1, 2, 500)])
    shop.configure({"customers": {"search_by": ["name"], "allow_create": True},
                    "sales": {"enabled": True, "on_status": "completed", "date": "order_created"}})
    shop.load()
    shop.sync()
    first = shop.orders()[1]
    assert _counterparties(shop)[first["buyer"]]["name"] == "Олена Петренко"

    shop.keycrm_server.admin.patch("/__admin/orders/1", json={
        "buyer": {"full_name": "Олена Коваленко"}, "status_id": IN_PROGRESS}).raise_for_status()
    second = shop.sync()["orders"]
    assert second.counterparties_created == 0 and second.statuses_updated == 1
    assert shop.orders()[1]["status"] == w.ref("orderStatuses", "В роботі")

    shop.keycrm_server.admin.patch("/__admin/orders/1", json={"status_id": COMPLETED}).raise_for_status()
    out = shop.h.sync_day("2026-11-02")  # with documents: the sale
    assert out["orders"].counterparties_created == 0
    assert out["documents"].created.get("sales_invoice") == 1, out["documents"]
    sales = shop.company["salesInvoices"]
    assert len(sales) == 1 and sales[0]["invoiceForCustomerPayment"]["uuid"] == first["uuid"]
    cps = _counterparties(shop)
    assert len(cps) == 2 and cps[first["buyer"]]["name"] == "Олена Петренко"  # R-CUST-8
    assert shop.issues() == {}
