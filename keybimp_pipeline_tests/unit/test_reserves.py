"""Reserves for new customer orders (R-MAIN-3) and their release (R-MAIN-4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keybimp_pipeline.rules.reserves import compute_reserves, release_reserves

T0 = pd.Timestamp("2026-03-02 09:00", tz="UTC")


def _lines(rows: list[tuple]) -> pd.DataFrame:
    """rows: (order_id, line_no, item, quantity, minutes after T0, is_service)."""
    return pd.DataFrame(
        {
            "order_id": [r[0] for r in rows],
            "line_no": [r[1] for r in rows],
            "nomenclature_uuid": [r[2] for r in rows],
            "quantity": [float(r[3]) for r in rows],
            "placed_at": [T0 + pd.Timedelta(minutes=r[4]) for r in rows],
            "is_service": [r[5] for r in rows],
        }
    )


def _free(**items: float) -> pd.DataFrame:
    return pd.DataFrame({"nomenclature_uuid": list(items), "free": [float(v) for v in items.values()]})


def _reserve(lines: pd.DataFrame) -> dict[tuple[int, int], float]:
    return {(r.order_id, r.line_no): r.reserve for r in lines.itertuples()}


SHORT = _lines([(1, 1, "chair", 3, 0, False), (1, 2, "table", 1, 0, False)])


def test_R_MAIN_3_full_mode_short_stock_rejects_order_and_reserves_nothing():
    lines, rejected = compute_reserves(SHORT, _free(chair=2, table=5), "full")
    assert _reserve(lines) == {(1, 1): 0.0, (1, 2): 0.0}
    assert rejected["order_id"].tolist() == [1]
    assert rejected["code"].tolist() == ["reserve_insufficient"]
    assert rejected["detail"].iloc[0] == "item chair: ordered 3, free 2, short 1"


def test_R_MAIN_3_full_mode_enough_stock_reserves_whole_quantity():
    lines, rejected = compute_reserves(SHORT, _free(chair=3, table=1), "full")
    assert _reserve(lines) == {(1, 1): 3.0, (1, 2): 1.0}
    assert rejected.empty
    assert list(rejected.columns) == ["order_id", "code", "detail"]


def test_R_MAIN_3_available_only_reserves_what_is_free_and_always_creates():
    lines, rejected = compute_reserves(SHORT, _free(chair=2), "available_only")
    assert _reserve(lines) == {(1, 1): 2.0, (1, 2): 0.0}  # table absent from free stock -> 0
    assert rejected.empty


def test_R_MAIN_3_off_reserves_nothing():
    lines, rejected = compute_reserves(SHORT, _free(chair=10, table=10), "off")
    assert (lines["reserve"] == 0).all()
    assert rejected.empty


def test_R_MAIN_3_two_orders_compete_for_last_unit_earliest_wins_full():
    # order 20 placed later but listed first: placing time decides, not row order
    lines = _lines([(20, 1, "lamp", 1, 5, False), (10, 1, "lamp", 1, 1, False)])
    out, rejected = compute_reserves(lines, _free(lamp=1), "full")
    assert _reserve(out) == {(20, 1): 0.0, (10, 1): 1.0}
    assert rejected["order_id"].tolist() == [20]
    assert "item lamp: ordered 1, free 0, short 1" == rejected["detail"].iloc[0]


def test_R_MAIN_3_two_orders_compete_for_last_unit_earliest_wins_available_only():
    lines = _lines([(20, 1, "lamp", 1, 5, False), (10, 1, "lamp", 1, 1, False)])
    out, rejected = compute_reserves(lines, _free(lamp=1), "available_only")
    assert _reserve(out) == {(20, 1): 0.0, (10, 1): 1.0}
    assert rejected.empty


def test_R_MAIN_3_same_placing_time_ties_broken_by_order_id():
    lines = _lines([(8, 1, "lamp", 1, 0, False), (7, 1, "lamp", 1, 0, False)])
    out, rejected = compute_reserves(lines, _free(lamp=1), "full")
    assert _reserve(out) == {(8, 1): 0.0, (7, 1): 1.0}
    assert rejected["order_id"].tolist() == [8]


def test_R_MAIN_3_rejected_earlier_order_leaves_stock_to_later_one():
    # order 1 wants 2 lamps + a sofa that is missing: rejected, consumes nothing,
    # so order 2 (later) gets both lamps; order 3 then finds none left.
    lines = _lines(
        [
            (1, 1, "lamp", 2, 0, False),
            (1, 2, "sofa", 1, 0, False),
            (2, 1, "lamp", 2, 10, False),
            (3, 1, "lamp", 1, 20, False),
        ]
    )
    out, rejected = compute_reserves(lines, _free(lamp=2, sofa=0), "full")
    assert _reserve(out) == {(1, 1): 0.0, (1, 2): 0.0, (2, 1): 2.0, (3, 1): 0.0}
    assert rejected.set_index("order_id")["detail"].to_dict() == {
        1: "item sofa: ordered 1, free 0, short 1",
        3: "item lamp: ordered 1, free 0, short 1",
    }


def test_R_MAIN_3_chain_of_rejections_is_the_sequential_answer():
    """A chain where each decision flips the next one: the fixed point must equal a plain loop."""
    rng = np.random.default_rng(3)
    rows = []
    for order in range(1, 301):
        for line in range(1, rng.integers(1, 4) + 1):
            rows.append((order, line, f"i{rng.integers(0, 6)}", int(rng.integers(1, 4)), order, False))
    lines = _lines(rows)
    free = {f"i{k}": float(rng.integers(5, 40)) for k in range(6)}
    out, rejected = compute_reserves(lines, _free(**free), "full")

    left = dict(free)  # reference: the rule as a person would apply it, order by order
    expected_rejected = []
    for order, grp in lines.groupby("order_id", sort=True):
        need = grp.groupby("nomenclature_uuid")["quantity"].sum()
        if all(left[i] >= q for i, q in need.items()):
            for i, q in need.items():
                left[i] -= q
        else:
            expected_rejected.append(order)
    assert sorted(rejected["order_id"].tolist()) == expected_rejected
    assert 0 < len(expected_rejected) < 300
    created = ~out["order_id"].isin(expected_rejected)
    assert (out.loc[created, "reserve"] == out.loc[created, "quantity"]).all()
    assert (out.loc[~created, "reserve"] == 0).all()


def test_R_MAIN_3_services_are_never_reserved_and_never_block():
    lines = _lines([(1, 1, "delivery", 1, 0, True), (1, 2, "lamp", 1, 0, False)])
    for mode in ("full", "available_only"):
        out, rejected = compute_reserves(lines, _free(lamp=1), mode)
        assert _reserve(out) == {(1, 1): 0.0, (1, 2): 1.0}
        assert rejected.empty


def test_R_MAIN_3_same_item_on_two_lines_of_one_order_counts_both():
    lines = _lines([(1, 1, "lamp", 1, 0, False), (1, 2, "lamp", 1, 0, False)])
    out, rejected = compute_reserves(lines, _free(lamp=1), "full")
    assert rejected["detail"].tolist() == ["item lamp: ordered 2, free 1, short 1"]
    out, _ = compute_reserves(lines, _free(lamp=1), "available_only")
    assert _reserve(out) == {(1, 1): 1.0, (1, 2): 0.0}


def test_R_MAIN_3_negative_free_stock_counts_as_none_and_fractions_fit():
    lines = _lines([(1, 1, "cable", 0.3, 0, False), (2, 1, "fuse", 1, 1, False)])
    out, rejected = compute_reserves(lines, _free(cable=0.1 + 0.2, fuse=-3), "full")
    assert _reserve(out) == {(1, 1): 0.3, (2, 1): 0.0}
    assert rejected["order_id"].tolist() == [2]


def test_R_MAIN_3_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="reserve mode"):
        compute_reserves(SHORT, _free(), "partial")


def test_R_MAIN_4_cancellation_releases_every_reserve():
    out, _ = compute_reserves(SHORT, _free(chair=3, table=1), "full")
    released = release_reserves(out)
    assert (released["reserve"] == 0).all()
    assert released["quantity"].tolist() == [3.0, 1.0]
    assert out["reserve"].tolist() == [3.0, 1.0]  # the input is not modified


def test_R_MAIN_3_full_mode_on_100k_lines_is_fast():
    import time

    rng = np.random.default_rng(1)
    n = 100_000
    lines = pd.DataFrame(
        {
            "order_id": np.arange(n) // 2,
            "line_no": np.arange(n) % 2 + 1,
            "nomenclature_uuid": rng.integers(0, 2000, n).astype(str),
            "quantity": rng.integers(1, 4, n).astype("float64"),
            "placed_at": T0 + pd.to_timedelta(np.arange(n) // 2, unit="s"),
            "is_service": False,
        }
    )
    free = pd.DataFrame({"nomenclature_uuid": np.arange(2000).astype(str), "free": 40.0})
    started = time.perf_counter()
    out, rejected = compute_reserves(lines, free, "full")
    assert time.perf_counter() - started < 10
    assert 0 < len(rejected) < n // 2
    assert (out.groupby("nomenclature_uuid")["reserve"].sum() <= 40).all()


def test_R_MAIN_3_caller_index_is_kept_even_when_duplicated():
    lines = _lines([(1, 1, "lamp", 1, 0, False), (2, 1, "lamp", 1, 1, False)]).set_index(pd.Index([5, 5]))
    for mode in ("full", "available_only"):
        out, _ = compute_reserves(lines, _free(lamp=1), mode)
        assert out.index.tolist() == [5, 5]
        assert out["reserve"].tolist() == [1.0, 0.0]
