"""A Bimp record the ledger points at, deleted in Bimp afterwards (R-ORCH-5, R-ORCH-6).

The ledger remembers the counterparty, contract and customer order a first sync created.  When one of them
is deleted in Bimp (here through the Bimp emulator's admin surface: the state read, the record removed, the
state put back), or the whole company is reset (a fresh `make emulate` under an old data/ folder), the
orders that need it get the sync issue `bimp_record_missing` naming the record; the run itself succeeds.
"""

from __future__ import annotations

import pytest

from keybimp_pipeline.rules.issues import IssueCode
from keybimp_pipeline.storage.ledger import DONE, Ledger
from keybimp_pipeline_tests.pipeline.orders_world import IN_PROGRESS, Shop, at


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch) -> Shop:
    shop = Shop(emulators, tmp_path, monkeypatch)
    w = shop.world
    w.item("Стілець синій", "CH-1", stock=10)
    w.offer(1, "CH-1", "Стілець синій", 500)
    w.buyer(1, "Анна Коваль", phone="0671234567")
    w.order(1, 1, [(1, 1, 500)])
    shop.load()
    return shop


def _ledger_uuid(shop: Shop, entity: str) -> str:
    frame = Ledger(shop.h.store).frame(entity)
    done = frame[frame["state"] == DONE]
    assert len(done) == 1, frame
    return str(done["bimp_uuid"].iloc[0])


def _second_order(shop: Shop) -> None:
    """The same buyer orders again in KeyCRM (the Bimp state is left as the pipeline made it)."""
    shop.world.order(2, 1, [(1, 1, 500)], placed=at(9))
    shop.keycrm_server.put_state(shop.world.keycrm)


def test_R_ORCH_5_a_contract_deleted_in_bimp_is_the_orders_sync_issue_not_a_failed_run(shop: Shop):
    first = shop.sync()["orders"]
    assert (first.orders_created, first.contracts_created) == (1, 1)
    contract = _ledger_uuid(shop, "contract")
    state = shop.bimp_server.state()
    company = state["companies"][0]
    company["contracts"] = [c for c in company["contracts"] if c["uuid"] != contract]
    shop.bimp_server.put_state(state)  # the contract is deleted in Bimp
    _second_order(shop)

    result = shop.sync(full_refresh=True)["orders"]  # no exception: the run succeeds

    assert result.orders_created == 0 and result.unchanged == 1
    assert set(shop.orders()) == {1}
    assert shop.issues() == {2: {IssueCode.BIMP_RECORD_MISSING.value}}
    assert shop.issue_detail(2, "bimp_record_missing") == f"not in Bimp any more: contract {contract}"
    issue = shop.h.issues().iloc[0]
    assert issue["message_en"] == IssueCode.BIMP_RECORD_MISSING.message_en
    assert "більше не існує в Bimp" in issue["message_uk"]

    again = shop.sync(full_refresh=True)["orders"]  # stable: the same issue, still no failure, no write
    assert again.orders_created == 0 and shop.issues() == {2: {"bimp_record_missing"}}


def test_R_ORCH_5_a_reset_bimp_company_under_an_old_ledger_gives_issues_not_a_failed_run(shop: Shop):
    """`make emulate` after `make demo`: a fresh Bimp, the old ledger.  A new order of a known buyer and a
    status change of a transferred order both name what Bimp lost; nothing is written."""
    shop.sync()
    counterparty, contract = _ledger_uuid(shop, "counterparty"), _ledger_uuid(shop, "contract")
    order_uuid = _ledger_uuid(shop, "customer_order")
    shop.bimp_server.put_state(shop.world.bimp)  # the company as it was before the first sync
    _second_order(shop)
    shop.keycrm_server.admin.patch("/__admin/orders/1", json={"status_id": IN_PROGRESS}).raise_for_status()
    writes = shop.bimp_writes()

    result = shop.sync(full_refresh=True)["orders"]

    assert (result.orders_created, result.statuses_updated) == (0, 0)
    assert shop.orders() == {}
    assert shop.issues() == {1: {"bimp_record_missing"}, 2: {"bimp_record_missing"}}
    assert shop.issue_detail(1, "bimp_record_missing") == (
        f"not in Bimp any more: counterparty {counterparty}, contract {contract}, customer order {order_uuid}")
    # the first failed write (order 1's status) found the lost records; order 2 was not even tried
    assert shop.issue_detail(2, "bimp_record_missing") == f"not in Bimp any more: counterparty {counterparty}"
    assert shop.bimp_writes() == writes + 1


def test_R_ORCH_5_a_payment_deleted_in_bimp_before_its_cancellation_is_an_issue(emulators, tmp_path, monkeypatch):
    """R-PAY-3 cancels the Bimp payment when the KeyCRM one is cancelled; if a person deleted it in Bimp
    meanwhile, the cancel finds nothing (404): that payment's issue, not a failed run."""
    import copy

    from keybimp_pipeline_tests.pipeline.documents_shop import CARD, COMPLETED, base_states, order, payment
    from keybimp_pipeline_tests.pipeline.documents_shop import shop as documents_shop

    h = documents_shop(tmp_path, emulators, monkeypatch)
    paid = order(401, "2026-10-12T07:00:00Z", COMPLETED, [("DOC-A", 1)], shipping_date="2026-10-12T09:00:00Z",
                 payments=[payment(4001, "500", CARD, paid_at="2026-10-12T07:10:00Z",
                                   marked_at="2026-10-12T07:10:00Z")])
    keycrm, bimp = base_states()
    keycrm["orders"] = [copy.deepcopy(paid)]
    emulators[0].put_state(keycrm)
    emulators[1].put_state(bimp)
    h.sync_day("2026-10-12")
    state = emulators[1].state()
    company = state["companies"][0]
    [bimp_payment] = company["customerPayments"]
    company["customerPayments"] = []
    emulators[1].put_state(state)  # deleted in Bimp
    keycrm["orders"][0]["payments"][0]["status"] = "canceled"
    emulators[0].put_state(keycrm)

    h.sync_day("2026-10-12", full_refresh=True)  # no exception

    issues = h.issues()
    [row] = issues.to_dict("records")
    assert (row["order_id"], row["entity"], row["code"]) == (401, "customer_payment", "bimp_record_missing")
    assert row["detail"].startswith(f"not in Bimp any more: customer payment {bimp_payment['uuid']}")


def test_R_ORCH_5_an_item_keybimp_created_then_lost_is_named_not_reported_as_short_stock(shop: Shop):
    """Reserve `full` (R-MAIN-3): an item the ledger says keybimp created, gone from Bimp, has no stock row;
    the order waiting for it is told the item is missing, not that the warehouse is short."""
    w = shop.world
    w.offer(2, "LAMP-7", "Лампа настільна", 800)   # not in Bimp: created by the first sync, with no stock
    w.order(3, 1, [(2, 1, 800)], placed=at(10))
    shop.keycrm_server.put_state(w.keycrm)
    shop.sync()
    assert shop.issues() == {3: {"reserve_insufficient"}}  # created item, no stock: waits (R-MAIN-3)
    item = _ledger_uuid(shop, "product")
    shop.bimp_server.put_state(shop.world.bimp)  # the company reset: the item and the counterparty are gone

    result = shop.sync(full_refresh=True)["orders"]

    assert result.orders_created == 0 and result.unchanged == 1  # order 1 needs no write: nothing to say
    assert shop.issues() == {3: {"bimp_record_missing"}}
    assert shop.issue_detail(3, "bimp_record_missing") == f"not in Bimp any more: item {item}"
