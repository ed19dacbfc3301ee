"""Exactly-once writes (R-ORCH-2, R-ORCH-6): re-runs write nothing; a run killed between two writes and
re-run creates no duplicate counterparty, contract, item or customer order.

The kill is real at the HTTP level: the Bimp emulator applies the create and then cuts the connection
(`drop_connection_next`), so the client never learns the uuid and the run dies with the ledger row
`pending` — exactly what a process killed after the vendor's commit leaves behind.
"""

from __future__ import annotations

import pytest

from keybimp_pipeline.clients.bimp import BimpClient, BimpTransientError
from keybimp_pipeline.storage.ledger import DONE, Ledger
from keybimp_pipeline_tests.pipeline.orders_world import IN_PROGRESS, Shop, new_and_existing


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch) -> Shop:
    """One order needing a new counterparty, a new item and a reserve; another matching existing ones."""
    shop = Shop(emulators, tmp_path, monkeypatch)
    new_and_existing(shop, shipping_price=60)
    shop.load()
    return shop


def _census(shop: Shop) -> dict[str, int]:
    c = shop.company
    return {"counterparties": len(c["counterparties"]), "contracts": len(c["contracts"]),
            "items": len(c["nomenclature"]), "orders": len(c["customerOrders"])}


def test_R_ORCH_6_rerunning_a_partition_writes_nothing(shop: Shop):
    first = shop.sync()["orders"]
    assert (first.orders_created, first.counterparties_created, first.products_created) == (2, 1, 1)
    census = _census(shop)
    writes = shop.bimp_writes()

    again = shop.sync()["orders"]
    shop.h.refresh_reference()  # a fresh snapshot that now holds what the first run created
    refreshed = shop.sync(full_refresh=True)["orders"]

    assert shop.bimp_writes() == writes
    assert again.unchanged == 2 and refreshed.unchanged == 2
    assert _census(shop) == census


def _kill_after_apply(shop: Shop, monkeypatch, method: str) -> None:
    """The next `BimpClient.<method>` call is applied by Bimp, then its connection is cut."""
    original = getattr(BimpClient, method)

    def dropped(self, *args, **kwargs):
        monkeypatch.setattr(BimpClient, method, original)
        self.currencies()  # logged in and holding a company token: the cut hits the write itself
        shop.bimp_server.post("/__admin/faults", {"drop_connection_next": 1})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BimpClient, method, dropped)


def test_R_ORCH_6_runs_killed_after_each_create_leave_no_duplicates(shop: Shop, monkeypatch):
    before = _census(shop)
    # in the order the writer makes them: each re-run gets one write further
    kills = ["create_counterparty", "create_nomenclature", "create_contract", "create_customer_order"]
    ledger = Ledger(shop.h.store)
    for method in kills:
        _kill_after_apply(shop, monkeypatch, method)
        with pytest.raises(BimpTransientError) as died:
            shop.sync()
        assert died.value.ambiguous, method  # the client knows the write may have happened: no blind retry
        pending = ledger.frame()
        assert (pending["state"] != DONE).sum() == 1, (method, pending[["entity", "crm_id", "state"]])  # exactly the interrupted write is pending

    result = shop.sync()["orders"]

    assert result.issues == []
    ledger_rows = ledger.frame()
    assert set(ledger_rows["state"]) == {DONE}
    assert _census(shop) == {"counterparties": before["counterparties"] + 1,
                             "contracts": before["contracts"] + 2,  # Анна's new one and Петро's first
                             "items": before["items"] + 1, "orders": 2}
    orders = shop.orders()
    assert sorted(orders) == [1, 2]
    # the reconciled uuids are the ones Bimp holds, and the orders point at them
    entry = ledger_rows.set_index(["entity", "crm_id"])["bimp_uuid"]
    assert orders[1]["uuid"] == entry[("customer_order", "1")]
    assert orders[1]["buyer"] == entry[("counterparty", "order-1")]
    assert {p["nomenclatureUuid"] for p in orders[1]["products"]} >= {entry[("product", "sku-LAMP-7")]}
    # and the next run still writes nothing but a real change
    writes = shop.bimp_writes()
    assert shop.sync()["orders"].unchanged == 2 and shop.bimp_writes() == writes


def test_R_ORCH_6_status_update_killed_after_apply_is_not_repeated_wrongly(shop: Shop, monkeypatch):
    shop.sync()
    shop.keycrm_server.admin.patch("/__admin/orders/2", json={"status_id": IN_PROGRESS}).raise_for_status()
    _kill_after_apply(shop, monkeypatch, "update_customer_order_status")
    with pytest.raises(BimpTransientError):
        shop.sync()

    result = shop.sync()["orders"]

    assert result.statuses_updated == 1  # the status is set again (idempotent), nothing else written
    assert shop.orders()[2]["status"] == shop.world.ref("orderStatuses", "В роботі")
    assert _census(shop)["orders"] == 2
