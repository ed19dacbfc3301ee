"""Stock upload Bimp → KeyCRM through both emulators (R-STOCK-2..8): the steps the assets run, requests counted."""

from __future__ import annotations

import pytest

from keybimp_pipeline.sync import uploads
from keybimp_pipeline_tests.pipeline import uploads_scenario
from keybimp_pipeline_tests.pipeline.uploads_scenario import Item

make_shop = uploads_scenario.make_shop  # the fixture

STEADY = [Item("KEEP-1", bimp={"main": 7}, crm={1: 7}), Item("KEEP-2", bimp={"main": 4}, crm={1: 4})]


def _confirm_first(shop) -> dict:
    """The integration's first upload, read and confirmed (the guard always stops the first one)."""
    first = shop.run_stocks()
    assert first["plan"].guard.blocked and first["upload"] is None
    return shop.run_stocks(confirm=True)


def test_R_STOCK_7_first_upload_blocked_with_preview_then_confirmed_then_second_sends_nothing(make_shop):
    shop = make_shop([Item("A-1", bimp={"main": 5, "kyiv": 1}, crm={1: 2, 2: 0}),
                      Item("B-2", bimp={"main": 3}, crm={1: 3}), *STEADY])
    blocked = shop.run_stocks()
    guard = blocked["plan"].guard
    assert guard.blocked and blocked["upload"] is None
    assert any("first stock upload" in r for r in guard.reasons)
    assert guard.changes == 2  # A-1 on both warehouses; B-2 and KEEP-* already agree
    preview = guard.markdown()
    assert "Stock upload blocked" in preview and "| A-1 | 1 | 2 | 5 |" in preview and "| A-1 | 2 | 0 | 1 |" in preview
    assert shop.puts() == 0
    assert shop.crm_stock()[("A-1", 1)] == 2  # nothing written

    done = shop.run_stocks(confirm=True)
    assert done["upload"] == {"stocks_sent": 2, "requests": 2, "request_floor": 2, "warehouses": 2,
                              "batch_size": 500, "to_zero": 0}
    assert shop.puts() == 2
    assert shop.crm_stock()[("A-1", 1)] == 5 and shop.crm_stock()[("A-1", 2)] == 1

    shop.reset_requests()
    again = shop.run_stocks()  # not the first any more, nothing changed: not blocked, nothing sent
    assert not again["plan"].guard.blocked
    assert again["plan"].plan.empty and again["upload"]["requests"] == 0
    assert shop.puts() == 0


@pytest.mark.parametrize("skip_zero", [False, True])
def test_R_STOCK_4_R_STOCK_6_guide_story_order_takes_both_units(make_shop, skip_zero):
    """2 in Bimp, 2 in KeyCRM; an order takes both in Bimp, so Bimp's free stock is 0.  KeyCRM gets 0 —
    unless skip_zero is on: then it keeps showing 2 (the guide's documented risk)."""
    shop = make_shop([Item("CAT-50", bimp={"main": 2}, crm={1: 2}), *STEADY],
                     {"stocks": {"skip_zero": skip_zero}})
    _confirm_first(shop)
    assert shop.crm_stock()[("CAT-50", 1)] == 2
    shop.add_bimp_reserve("CAT-50", "main", 2)  # the order reserves both units in Bimp
    shop.reset_requests()
    out = shop.run_stocks()
    assert not out["plan"].guard.blocked  # one of three non-zero stocks zeroed: under the 50% guard
    if skip_zero:
        assert out["plan"].plan.empty and shop.puts() == 0
        assert shop.crm_stock()[("CAT-50", 1)] == 2  # the risk: KeyCRM still sells two units that are gone
    else:
        assert out["upload"]["stocks_sent"] == 1 and out["upload"]["to_zero"] == 1 and shop.puts() == 1
        assert shop.crm_stock()[("CAT-50", 1)] == 0


def test_R_STOCK_7_bimp_empty_at_first_run_guard_stops_and_nothing_is_written(make_shop):
    shop = make_shop([Item("A-1", crm={1: 5, 2: 1}), Item("B-2", crm={1: 3}), Item("C-3", crm={2: 8})])
    before = shop.crm_stock()
    out = shop.run_stocks()
    assert out["plan"].guard.blocked and out["upload"] is None
    assert any("no stock at all" in r for r in out["plan"].guard.reasons)
    assert shop.puts() == 0 and shop.crm_stock() == before
    # even a confirmation writes nothing: an item Bimp does not report is unknown, never zero
    confirmed = shop.run_stocks(confirm=True)
    assert confirmed["plan"].plan.empty and confirmed["upload"]["requests"] == 0
    assert shop.puts() == 0 and shop.crm_stock() == before


@pytest.mark.parametrize(("free_only", "sent"), [(True, 3.0), (False, 5.0)])
def test_R_STOCK_2_free_versus_total_with_a_reserve(make_shop, free_only, sent):
    shop = make_shop([Item("RES-1", bimp={"main": 5}, reserved={"main": 2}, crm={1: 0}), *STEADY],
                     {"stocks": {"free_only": free_only}})
    _confirm_first(shop)
    assert shop.crm_stock()[("RES-1", 1)] == sent


@pytest.mark.parametrize("all_warehouses", [False, True])
def test_R_STOCK_5_all_warehouses_zeroes_a_mapped_warehouse_lacking_the_item(make_shop, all_warehouses):
    shop = make_shop([Item("ONLY-MAIN", bimp={"main": 4}, crm={1: 1, 2: 3}),
                      Item("UNKNOWN", in_bimp=False, crm={1: 6, 2: 2}), *STEADY],
                     {"stocks": {"all_warehouses": all_warehouses}})
    _confirm_first(shop)
    crm = shop.crm_stock()
    assert crm[("ONLY-MAIN", 1)] == 4
    assert crm[("ONLY-MAIN", 2)] == (0 if all_warehouses else 3)
    assert (crm[("UNKNOWN", 1)], crm[("UNKNOWN", 2)]) == (6, 2)  # Bimp never listed it: unknown, untouched


def test_R_STOCK_7_upload_zeroing_more_than_the_share_is_blocked_until_confirmed(make_shop):
    items = [Item(f"Z-{i}", bimp={"main": 3}, crm={1: 3}) for i in range(4)]
    shop = make_shop(items, {"stocks": {"guard_zeroed_share": 0.5}})
    _confirm_first(shop)
    for i in range(3):
        shop.set_bimp_stock(f"Z-{i}", "main", 0)
    shop.reset_requests()
    out = shop.run_stocks()
    guard = out["plan"].guard
    assert guard.blocked and guard.to_zero == 3 and guard.nonzero_now == 4
    assert any("would zero 3 of 4" in r for r in guard.reasons)
    assert shop.puts() == 0 and shop.crm_stock()[("Z-0", 1)] == 3
    confirmed = shop.run_stocks(confirm=True)
    assert confirmed["upload"]["stocks_sent"] == 3 and shop.crm_stock()[("Z-0", 1)] == 0


def test_R_STOCK_7_partial_bimp_list_a_mapped_warehouse_gone_empty_is_blocked(make_shop):
    shop = make_shop([Item("P-1", bimp={"main": 2, "kyiv": 5}, crm={1: 2, 2: 5}),
                      Item("P-2", bimp={"main": 1, "kyiv": 4}, crm={1: 1, 2: 4})])
    _confirm_first(shop)
    shop.set_bimp_stock("P-1", "kyiv", None)
    shop.set_bimp_stock("P-2", "kyiv", None)
    shop.set_bimp_stock("P-1", "main", 1)
    out = shop.run_stocks()
    assert out["plan"].guard.blocked
    assert any("no stock for warehouse" in r for r in out["plan"].guard.reasons)
    assert shop.crm_stock()[("P-1", 1)] == 2  # nothing written, not even the one real change


def test_R_STOCK_8_fewest_requests_one_warehouse_a_call_batched(make_shop):
    """505 changes on one warehouse and 30 on the other: 2 + 1 PUT /offers/stocks calls at 500 a batch."""
    items = [Item(f"N-{i:04d}", bimp={"main": 1 + i % 7, **({"kyiv": 2} if i < 30 else {})}, crm={})
             for i in range(505)]
    shop = make_shop(items)
    out = _confirm_first(shop)
    assert out["upload"]["stocks_sent"] == 535
    assert out["upload"]["requests"] == out["upload"]["request_floor"] == 3
    assert shop.puts() == 3
    shop.reset_requests()
    assert shop.run_stocks()["upload"]["requests"] == 0 and shop.puts() == 0


class _FailingSecondPut:
    """A KeyCRM client whose second PUT /offers/stocks fails (as a network or vendor fault would)."""

    def __init__(self, client):
        self.client, self.calls = client, 0

    def put_offer_stocks(self, warehouse_id, stocks, batch_size=500):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("connection reset")
        return self.client.put_offer_stocks(warehouse_id, stocks, batch_size=batch_size)


def test_R_STOCK_8_failed_batch_resumes_without_resending_acknowledged_batches(make_shop):
    shop = make_shop([Item(f"R-{i}", bimp={"main": 10 + i}, crm={1: 0}) for i in range(5)])
    shop.run_stocks()  # the first upload: blocked
    h = shop.harness
    plan = uploads.plan_stocks(h.store, h.settings, shop.resolved(), confirm=True)
    assert len(plan.plan) == 5
    with h.keycrm() as k, pytest.raises(RuntimeError):
        uploads.upload_stocks(h.store, _FailingSecondPut(k), batch_size=2)
    assert shop.puts() == 1  # batch 1 acknowledged, batch 2 failed
    shop.reset_requests()
    resumed = shop.run_stocks()  # acks exist, so this is not a first upload any more
    assert list(resumed["plan"].plan["sku"]) == ["R-2", "R-3", "R-4"]
    assert resumed["upload"]["stocks_sent"] == 3 and shop.puts() == 1
    assert [shop.crm_stock()[(f"R-{i}", 1)] for i in range(5)] == [10, 11, 12, 13, 14]


def test_R_STOCK_7_upload_refuses_a_blocked_unconfirmed_plan_whoever_calls_it(make_shop):
    shop = make_shop([Item("A-1", bimp={"main": 5}, crm={1: 2})])
    assert shop.run_stocks()["plan"].guard.blocked
    with shop.harness.keycrm() as k, pytest.raises(uploads.StockUploadBlocked, match="first stock upload"):
        uploads.upload_stocks(shop.harness.store, k)
    assert shop.puts() == 0
