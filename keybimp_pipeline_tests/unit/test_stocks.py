"""Stock upload Bimp -> KeyCRM (R-STOCK-2..8)."""

from __future__ import annotations

import pandas as pd
import pytest

from keybimp_pipeline.rules.stocks import batches, plan_stock_upload, stock_guard

WH = {"bimp-main": 1, "bimp-shop": 2}
OFFERS = pd.DataFrame({"offer_id": [11, 12, 13, 14], "sku": ["A", "B", "C", "D"]})
NO_ACK = pd.DataFrame({"sku": [], "warehouse_id": [], "quantity": []})


def _bimp(rows: list[tuple]) -> pd.DataFrame:
    """rows: (warehouse_uuid, article, quantity, reserved)."""
    return pd.DataFrame(
        {
            "warehouse_uuid": [r[0] for r in rows],
            "nomenclature_uuid": [f"n-{r[1]}" for r in rows],
            "article": [r[1] for r in rows],
            "quantity": [float(r[2]) for r in rows],
            "reserved": [float(r[3]) for r in rows],
        }
    )


def _crm(rows: list[tuple]) -> pd.DataFrame:
    """rows: (sku, warehouse_id, quantity)."""
    offer = OFFERS.set_index("sku")["offer_id"]
    return pd.DataFrame(
        {
            "offer_id": [offer[r[0]] for r in rows],
            "sku": [r[0] for r in rows],
            "warehouse_id": [r[1] for r in rows],
            "quantity": [float(r[2]) for r in rows],
        }
    )


def _plan(bimp, crm, ack=NO_ACK, *, free_only=True, skip_zero=False, all_warehouses=False, wh=None):
    return plan_stock_upload(
        bimp,
        OFFERS,
        crm,
        ack,
        free_only=free_only,
        warehouse_map=WH if wh is None else wh,
        skip_zero=skip_zero,
        all_warehouses=all_warehouses,
    )


def _sent(plan: pd.DataFrame) -> dict[tuple[int, str], float]:
    return {(r.warehouse_id, r.sku): r.quantity for r in plan.itertuples()}


# ---------------------------------------------------------------------------------- the guide's story
def test_R_STOCK_4_guide_story_order_takes_last_two_units_keycrm_gets_zero():
    """2 units in Bimp and in KeyCRM; an order takes both; Bimp goes to 0 -> KeyCRM gets 0."""
    before = _plan(_bimp([("bimp-main", "A", 2, 0)]), _crm([("A", 1, 2)]))
    assert before.empty  # nothing changed yet
    after = _plan(_bimp([("bimp-main", "A", 0, 0)]), _crm([("A", 1, 2)]))
    assert after.to_dict("records") == [
        {"warehouse_id": 1, "sku": "A", "offer_id": 11, "quantity": 0.0, "previous": 2.0, "reason": "changed"}
    ]


def test_R_STOCK_4_guide_story_with_skip_zero_nothing_is_sent_keycrm_keeps_two():
    after = _plan(_bimp([("bimp-main", "A", 0, 0)]), _crm([("A", 1, 2)]), skip_zero=True)
    assert after.empty  # the documented risk: KeyCRM keeps showing 2


def test_R_STOCK_2_free_stock_versus_total_with_a_reserve():
    bimp = _bimp([("bimp-main", "A", 5, 2)])
    crm = _crm([("A", 1, 9)])
    assert _sent(_plan(bimp, crm, free_only=True)) == {(1, "A"): 3.0}
    assert _sent(_plan(bimp, crm, free_only=False)) == {(1, "A"): 5.0}


def test_R_STOCK_2_over_reserved_item_sends_zero_not_negative():
    assert _sent(_plan(_bimp([("bimp-main", "A", 1, 3)]), _crm([("A", 1, 1)]))) == {(1, "A"): 0.0}


def test_R_STOCK_3_only_mapped_warehouses_and_known_skus_are_sent():
    bimp = _bimp(
        [("bimp-main", "A", 4, 0), ("bimp-unmapped", "B", 7, 0), ("bimp-shop", "NOT-IN-KEYCRM", 3, 0)]
    )
    plan = _plan(bimp, _crm([]))
    assert _sent(plan) == {(1, "A"): 4.0}
    assert plan["reason"].tolist() == ["not_in_keycrm_stock"]
    assert plan["previous"].isna().all()


def test_R_STOCK_3_bimp_items_sharing_an_article_and_warehouses_sharing_an_id_are_summed():
    bimp = _bimp([("bimp-main", "A", 4, 0), ("bimp-main", "A", 1, 0), ("bimp-second", "A", 2, 0)])
    plan = _plan(bimp, _crm([("A", 1, 0)]), wh={"bimp-main": 1, "bimp-second": 1})
    assert _sent(plan) == {(1, "A"): 7.0}


def test_R_STOCK_5_all_warehouses_zeroes_a_mapped_warehouse_lacking_the_item():
    bimp = _bimp([("bimp-main", "A", 4, 0)])  # Bimp knows A at main only
    crm = _crm([("A", 1, 4), ("A", 2, 6)])
    plan = _plan(bimp, crm, all_warehouses=True)
    assert plan.to_dict("records") == [
        {
            "warehouse_id": 2,
            "sku": "A",
            "offer_id": 11,
            "quantity": 0.0,
            "previous": 6.0,
            "reason": "absent_at_warehouse",
        }
    ]
    assert _plan(bimp, crm, all_warehouses=False).empty  # off: the shop warehouse is left alone


def test_R_STOCK_5_item_unknown_to_bimp_is_never_zeroed():
    bimp = _bimp([("bimp-main", "A", 4, 0)])
    crm = _crm([("A", 1, 4), ("B", 1, 5), ("B", 2, 5), ("C", 2, 1)])  # B and C: Bimp says nothing
    for all_wh in (False, True):
        plan = _plan(bimp, crm, all_warehouses=all_wh)
        assert not plan["sku"].isin(["B", "C"]).any()


def test_R_STOCK_8_only_changed_quantities_are_sent():
    bimp = _bimp([("bimp-main", "A", 4, 0), ("bimp-main", "B", 5, 0), ("bimp-shop", "C", 1, 0)])
    crm = _crm([("A", 1, 4), ("B", 1, 3), ("C", 2, 1)])
    assert _sent(_plan(bimp, crm)) == {(1, "B"): 5.0}


def test_R_STOCK_8_last_acknowledged_upload_counts_when_keycrm_stock_was_not_read():
    bimp = _bimp([("bimp-main", "A", 4, 0), ("bimp-main", "B", 5, 0)])
    ack = pd.DataFrame({"sku": ["A", "B"], "warehouse_id": [1, 1], "quantity": [4.0, 2.0]})
    assert _sent(_plan(bimp, _crm([]), ack)) == {(1, "B"): 5.0}


def test_R_STOCK_6_bimp_overwrites_higher_and_lower_even_after_an_ack():
    bimp = _bimp([("bimp-main", "A", 4, 0), ("bimp-main", "B", 5, 0)])
    # our last upload was acknowledged, then someone edited KeyCRM by hand: up for A, down for B
    ack = pd.DataFrame({"sku": ["A", "B"], "warehouse_id": [1, 1], "quantity": [4.0, 5.0]})
    crm = _crm([("A", 1, 10), ("B", 1, 1)])
    plan = _plan(bimp, crm, ack)
    assert _sent(plan) == {(1, "A"): 4.0, (1, "B"): 5.0}
    assert plan["previous"].tolist() == [10.0, 1.0]


# -------------------------------------------------------------------------------------------- guard
def _guard(plan, crm, *, first=False, rows=10, expected=None, share=0.5):
    return stock_guard(
        plan, crm, first_upload=first, bimp_rows=rows, bimp_expected_items=expected, guard_zeroed_share=share
    )


def test_R_STOCK_7_first_upload_is_blocked_with_a_preview():
    bimp = _bimp([("bimp-main", "A", 4, 0), ("bimp-main", "B", 0, 0)])
    crm = _crm([("A", 1, 3), ("B", 1, 5), ("C", 1, 2), ("D", 1, 1)])
    plan = _plan(bimp, crm)
    guard = _guard(plan, crm, first=True)
    assert guard.blocked
    assert guard.reasons == ["first stock upload of this integration: check the preview and confirm"]
    assert (guard.changes, guard.to_zero, guard.nonzero_now) == (2, 1, 4)
    assert guard.zeroed_share == 0.25
    assert guard.sample.to_dict("records") == [
        {"sku": "A", "warehouse_id": 1, "previous": 3.0, "quantity": 4.0},
        {"sku": "B", "warehouse_id": 1, "previous": 5.0, "quantity": 0.0},
    ]
    md = guard.markdown()
    assert "**Stock upload blocked**" in md and "| B | 1 | 5 | 0 |" in md and "to zero: 1 of 4" in md
    assert not _guard(plan, crm, first=False).blocked


def test_R_STOCK_7_empty_bimp_list_is_blocked():
    crm = _crm([("A", 1, 3)])
    guard = _guard(_plan(_bimp([]), crm), crm, rows=0)
    assert guard.blocked and "Bimp returned no stock" in guard.reasons[0]


def test_R_STOCK_7_partial_bimp_list_is_blocked():
    crm = _crm([("A", 1, 3)])
    plan = _plan(_bimp([("bimp-main", "A", 4, 0)]), crm)
    guard = _guard(plan, crm, rows=1, expected=4)
    assert guard.blocked and guard.reasons == ["Bimp stock list is partial: 1 rows of 4 expected"]
    assert not _guard(plan, crm, rows=4, expected=4).blocked


def test_R_STOCK_7_zeroing_more_than_the_share_of_nonzero_stocks_is_blocked():
    # the guide's migration disaster: Bimp holds zeros, KeyCRM the real stock
    bimp = _bimp([("bimp-main", s, 0, 0) for s in "ABC"] + [("bimp-main", "D", 1, 0)])
    crm = _crm([("A", 1, 3), ("B", 1, 5), ("C", 1, 2), ("D", 1, 1)])
    plan = _plan(bimp, crm)
    guard = _guard(plan, crm, share=0.5)
    assert guard.blocked and guard.to_zero == 3 and guard.zeroed_share == 0.75
    assert guard.reasons == ["the upload would zero 3 of 4 non-zero KeyCRM stocks (75% > 50%)"]
    assert not _guard(plan, crm, share=0.8).blocked


def test_R_STOCK_7_warehouse_filter_limits_the_nonzero_count():
    crm = _crm([("A", 1, 3), ("B", 9, 5)])
    plan = _plan(_bimp([("bimp-main", "A", 0, 0)]), crm)
    guard = stock_guard(
        plan,
        crm,
        first_upload=False,
        bimp_rows=1,
        bimp_expected_items=None,
        guard_zeroed_share=0.9,
        warehouse_ids=[1, 2],
    )
    assert (guard.to_zero, guard.nonzero_now, guard.blocked) == (1, 1, True)


# ------------------------------------------------------------------------------------------- batches
def test_R_STOCK_8_batches_one_warehouse_per_call_at_most_500_fewest_calls():
    n = 1201
    plan = pd.DataFrame(
        {
            "warehouse_id": [1] * n + [2] * 3,
            "sku": [f"S{i:05d}" for i in range(n)] + ["X", "Y", "Z"],
            "offer_id": range(n + 3),
            "quantity": [1.0] * n + [2.0, 0.5, 0.0],
            "previous": float("nan"),
            "reason": "changed",
        }
    )
    calls = batches(plan)
    assert [(w, len(items)) for w, items in calls] == [(1, 500), (1, 500), (1, 201), (2, 3)]
    assert calls[-1][1] == [
        {"sku": "X", "quantity": 2},
        {"sku": "Y", "quantity": 0.5},
        {"sku": "Z", "quantity": 0},
    ]
    assert isinstance(calls[0][1][0]["quantity"], int)
    assert sum(len(items) for _, items in calls) == n + 3
    assert batches(plan.iloc[0:0]) == []
    with pytest.raises(ValueError):
        batches(plan, batch_size=0)


def test_R_STOCK_8_plan_of_50k_offers_x_3_warehouses_is_fast():
    import importlib.util
    import time
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_stock_plan.py"
    spec = importlib.util.spec_from_file_location("bench_stock_plan", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    WAREHOUSES = bench.WAREHOUSES

    bimp, offers, crm, ack = bench.make_data()
    started = time.perf_counter()
    plan = plan_stock_upload(
        bimp, offers, crm, ack, free_only=True, warehouse_map=WAREHOUSES, skip_zero=False, all_warehouses=True
    )
    assert time.perf_counter() - started < 5
    assert plan["warehouse_id"].isin([1, 2, 3]).all() and (plan["quantity"] >= 0).all()
    assert len(plan) > 10_000
