"""Reserves for new Bimp customer orders (R-MAIN-3) and their release on cancellation (R-MAIN-4).

Orders handled in one run compete for the warehouse's free stock (Bimp's on hand minus reserved) in
the order they were placed: earliest ``placed_at`` first, ties broken by ``order_id``, and within an
order by ``line_no``.  Everything is computed on whole frames (sort once, ``groupby().cumsum()``):
this runs on up to a million order lines.

Modes (``main.reserve``):

* ``full`` -- every goods line reserves its whole quantity.  An order with any line that the
  remaining free stock cannot cover is **not created** (``reserve_insufficient``) and consumes
  nothing, so a later order may take that stock.  That makes the rule sequential; it is solved as a
  fixed point over whole frames (see :func:`_full_mode_accept`).
* ``available_only`` -- each line reserves ``min(ordered, remaining free)``; the order is always
  created.  Remaining free after a line is ``max(free - cumulative demand, 0)``, so no iteration.
* ``off`` -- nothing is reserved.

Services (``is_service``) never reserve and never block an order.  An item absent from ``free_stock``
has free stock 0; a negative free stock (Bimp over-reserved) counts as 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from keybimp_pipeline.rules.issues import IssueCode

RESERVE_MODES = ("full", "available_only", "off")
REJECTED_COLUMNS = ["order_id", "code", "detail"]

# Quantities are floats (KeyCRM allows fractional units); compare with a tolerance so that
# 0.1 + 0.2 units of free stock still cover an order of 0.3.
_EPS = 1e-9


def _fmt(q: pd.Series) -> pd.Series:
    """Quantities as short text for issue details ("2", "0.5"), without float noise."""
    return q.round(6).map(lambda v: f"{v:g}")


def _prepare(lines: pd.DataFrame, free_stock: pd.DataFrame) -> pd.DataFrame:
    """Sort goods lines in consumption order and attach each item's free stock."""
    goods = lines.loc[~lines["is_service"].astype(bool)].copy()
    goods["_row"] = goods.index
    goods["quantity"] = goods["quantity"].astype("float64").clip(lower=0.0)
    free = (
        free_stock.groupby("nomenclature_uuid", sort=False)["free"].sum()
        if len(free_stock)
        else pd.Series(dtype="float64")
    )
    goods["_free"] = goods["nomenclature_uuid"].map(free).astype("float64").fillna(0.0).clip(lower=0.0)
    goods = goods.sort_values(["placed_at", "order_id", "line_no"], kind="mergesort", na_position="last")
    return goods


def _order_item_demand(goods: pd.DataFrame) -> pd.DataFrame:
    """One row per (order, item) in consumption order: an item on two lines of an order counts twice."""
    goods = goods.assign(_seq=np.arange(len(goods)))
    demand = goods.groupby(["order_id", "nomenclature_uuid"], sort=False, dropna=False).agg(
        demand=("quantity", "sum"), free=("_free", "first"), seq=("_seq", "min")
    )
    return demand.reset_index().sort_values("seq", kind="mergesort").reset_index(drop=True)


def _prior_consumption(demand: pd.DataFrame, weight: np.ndarray) -> np.ndarray:
    """Stock of each (order, item) consumed by *earlier* orders whose weight is 1."""
    taken = demand["demand"].to_numpy() * weight
    inclusive = pd.Series(taken).groupby(demand["nomenclature_uuid"].to_numpy(), sort=False).cumsum()
    return inclusive.to_numpy() - taken


def _full_mode_accept(demand: pd.DataFrame) -> pd.Series:
    """Which orders ``full`` mode creates, as the sequential greedy rule would decide them.

    Sequentially, an order is created iff, for each of its items, the demand of the *created* earlier
    orders plus its own fits in the free stock.  We keep three states -- accepted, rejected, unknown --
    and bound the unknown ones from both sides on whole frames:

    * upper bound: count every not-rejected earlier order as consuming.  An unknown order that still
      fits is certainly created (the true consumption can only be smaller);
    * lower bound: count only accepted earlier orders.  An unknown order that does not fit even then
      is certainly rejected.

    The earliest unknown order has only decided orders before it, so both bounds agree on it and
    every pass decides at least one order; in practice two or three passes decide everything.
    """
    orders = pd.unique(demand["order_id"])
    state = pd.Series(0, index=orders, dtype="int8")  # 0 unknown, 1 accepted, -1 rejected
    order_ids = demand["order_id"]
    demand_q = demand["demand"].to_numpy()
    free_q = demand["free"].to_numpy()
    while (state == 0).any():
        per_row = order_ids.map(state).to_numpy()
        upper = _prior_consumption(demand, (per_row >= 0).astype("float64"))
        fits_upper = pd.Series(upper + demand_q <= free_q + _EPS).groupby(order_ids.to_numpy()).all()
        newly_ok = fits_upper.index[fits_upper.to_numpy() & (state.loc[fits_upper.index] == 0).to_numpy()]
        state.loc[newly_ok] = 1

        per_row = order_ids.map(state).to_numpy()
        lower = _prior_consumption(demand, (per_row == 1).astype("float64"))
        fits_lower = pd.Series(lower + demand_q <= free_q + _EPS).groupby(order_ids.to_numpy()).all()
        newly_bad = fits_lower.index[~fits_lower.to_numpy() & (state.loc[fits_lower.index] == 0).to_numpy()]
        state.loc[newly_bad] = -1
    return state == 1


def compute_reserves(
    lines: pd.DataFrame, free_stock: pd.DataFrame, mode: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reserve per line for new customer orders (R-MAIN-3).

    ``lines``: order_id, line_no, nomenclature_uuid, quantity (float), placed_at (UTC), is_service.
    ``free_stock``: nomenclature_uuid, free (Bimp available at the orders' warehouse).
    ``mode``: ``full`` | ``available_only`` | ``off``.

    Returns ``(lines + reserve column, rejected orders: order_id, code, detail)``.  Only ``full`` mode
    rejects; the lines of a rejected order are returned with reserve 0 (the caller does not create it).
    """
    if mode not in RESERVE_MODES:
        raise ValueError(f"reserve mode must be one of {RESERVE_MODES}, got {mode!r}")
    out = lines.copy()
    out["reserve"] = 0.0
    rejected = pd.DataFrame({c: pd.Series(dtype="object") for c in REJECTED_COLUMNS})
    if mode == "off" or out.empty:
        return out, rejected

    goods = _prepare(out, free_stock)
    if goods.empty:
        return out, rejected

    if mode == "available_only":
        before = goods.groupby("nomenclature_uuid", sort=False)["quantity"].cumsum() - goods["quantity"]
        remaining = (goods["_free"] - before).clip(lower=0.0)
        reserve = np.minimum(goods["quantity"], remaining)
        out.loc[goods["_row"], "reserve"] = reserve.to_numpy()
        return out, rejected

    # full
    demand = _order_item_demand(goods)
    accepted = _full_mode_accept(demand)
    ok_rows = goods["order_id"].map(accepted).fillna(True).to_numpy(dtype=bool)
    out.loc[goods["_row"].to_numpy()[ok_rows], "reserve"] = goods["quantity"].to_numpy()[ok_rows]

    bad_orders = accepted.index[~accepted.to_numpy()]
    if len(bad_orders):
        weight = demand["order_id"].map(accepted).to_numpy(dtype=bool).astype("float64")
        left = demand["free"].to_numpy() - _prior_consumption(demand, weight)
        demand = demand.assign(left=np.clip(left, 0.0, None))
        short = demand.loc[demand["order_id"].isin(bad_orders) & (demand["demand"] > demand["left"] + _EPS)]
        text = (
            "item "
            + short["nomenclature_uuid"].astype(str)
            + ": ordered "
            + _fmt(short["demand"])
            + ", free "
            + _fmt(short["left"])
            + ", short "
            + _fmt(short["demand"] - short["left"])
        )
        detail = text.groupby(short["order_id"].to_numpy(), sort=False).agg("; ".join)
        rejected = pd.DataFrame(
            {
                "order_id": detail.index,
                "code": IssueCode.RESERVE_INSUFFICIENT.value,
                "detail": detail.to_numpy(),
            }
        )
    return out, rejected


def release_reserves(lines: pd.DataFrame) -> pd.DataFrame:
    """Lines of a cancelled order with every reserve released (R-MAIN-4): reserve 0 on each line."""
    out = lines.copy()
    out["reserve"] = 0.0
    return out
