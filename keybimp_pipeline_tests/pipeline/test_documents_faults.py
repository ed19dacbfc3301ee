"""Faults while writing documents: the run fails, the re-run writes only what is missing (R-ORCH-6).

A 5xx on a create is a fault of the API, not a business rejection: the partition fails (R-ORCH-5) and
the next run tries the document again alone.  A create that Bimp applied but whose answer was lost
(the connection dropped) leaves the ledger row pending; the next run finds the document by its number
instead of creating it again.
"""

from __future__ import annotations

import copy

import pytest

from keybimp_pipeline.clients.bimp import BimpClient, BimpTransientError
from keybimp_pipeline.storage.ledger import Ledger
from keybimp_pipeline_tests.pipeline.documents_shop import (
    CARD,
    COMPLETED,
    base_states,
    by_comment,
    customer_order,
    one,
    order,
    payment,
    shop,
    stock_of,
)

DAY = "2026-10-12"


PAID = order(301, "2026-10-12T07:00:00Z", COMPLETED, [("DOC-A", 1)], shipping_date="2026-10-12T09:00:00Z",
             payments=[payment(3001, "500", CARD, paid_at="2026-10-12T07:10:00Z", marked_at="2026-10-12T07:10:00Z")])
SOLD = order(302, "2026-10-12T08:00:00Z", COMPLETED, [("DOC-B", 2)], shipping_date="2026-10-12T09:00:00Z")


@pytest.fixture
def faulty(emulators, tmp_path, monkeypatch):
    h = shop(tmp_path, emulators, monkeypatch)

    def load(*orders: dict) -> None:
        keycrm, bimp = base_states()
        keycrm["orders"] = [copy.deepcopy(o) for o in orders]
        emulators[0].put_state(keycrm)
        emulators[1].put_state(bimp)

    yield h, load
    emulators[1].post("/__admin/faults", {})  # the emulators are shared by the session


def test_R_ORCH_6_payment_create_5xx_fails_the_run_and_the_rerun_creates_it_once(faulty, emulators):
    h, load = faulty
    load(PAID)
    emulators[1].post("/__admin/faults", {"fail_next": [
        {"path": "/org2/customerPayment/api-create", "status": 500, "times": 1}]})
    with pytest.raises(BimpTransientError) as failed:
        h.sync_day(DAY)
    assert failed.value.status == 500
    co = h.bimp_company()
    assert len(co["customerOrders"]) == 1 and co["customerPayments"] == [] and co["salesInvoices"] == []

    h.sync_day(DAY)  # the re-run: the payment alone, then the sale that was never reached
    co = h.bimp_company()
    assert len(co["customerOrders"]) == 1  # the customer order was not written again
    pay = one(co["customerPayments"], 301)
    assert pay["paymentDetails"][0]["invoiceForCustomerpayment"] == customer_order(co, 301)["uuid"]
    assert len(by_comment(co["salesInvoices"], 301)) == 1
    assert stock_of(co, "DOC-A") == 19
    assert h.issues().empty


def test_R_ORCH_6_sale_applied_but_answer_lost_is_found_by_number_not_created_twice(faulty, emulators,
                                                                                      monkeypatch):
    h, load = faulty
    load(SOLD)
    original = BimpClient.create_sales_invoice

    def applied_then_lost(self, fields):
        original(self, fields)  # Bimp creates it ...
        raise BimpTransientError("/org2/salesInvoice/api-create", None, "transport error: ReadError",
                                 ambiguous=True)  # ... but the answer never arrives

    monkeypatch.setattr(BimpClient, "create_sales_invoice", applied_then_lost)
    with pytest.raises(BimpTransientError):
        h.sync_day(DAY)
    monkeypatch.setattr(BimpClient, "create_sales_invoice", original)
    assert len(by_comment(h.bimp_company()["salesInvoices"], 302)) == 1

    h.sync_day(DAY)
    co = h.bimp_company()
    assert len(by_comment(co["salesInvoices"], 302)) == 1  # found by its number, not created again
    assert stock_of(co, "DOC-B") == 18
    entry = Ledger(h.store).entries("sales_invoice", ["302"])  # the ledger knows the Bimp uuid now
    assert entry["state"].tolist() == ["done"]
    assert entry["bimp_uuid"].tolist() == [one(co["salesInvoices"], 302)["uuid"]]
