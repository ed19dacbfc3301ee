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

# Quantities are floats (KeyCRM allows fractional units, to thousandths); compare with a tolerance so
# that 0.1 + 0.2 units of free stock still cover an order of 0.3, and running sums over a million lines
# do not drift across it.
_EPS = 1e-6


def _fmt(q: pd.Series) -> pd.Series:
    """Quantities as short text for issue details ("2", "0.5"), without float noise."""
    return q.round(6).map(lambda v: f"{v:g}")


def join_per_group(text: pd.Series, key: pd.Series, sep: str = "; ") -> pd.Series:
    """``sep``-joined text per key, vectorised (object ``groupby().sum()`` runs in C, unlike ``agg(join)``).

    Rows of one key must be contiguous; the result is indexed by key in order of first appearance.
    """
    keys = key.to_numpy()
    first = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        first[1:] = keys[1:] != keys[:-1]
    prefixed = pd.Series(np.where(first, "", sep), dtype="object") + text.astype(str).to_numpy()
    return prefixed.groupby(keys, sort=False).sum()


def _prepare(lines: pd.DataFrame, free_stock: pd.DataFrame) -> pd.DataFrame:
    """Sort goods lines in consumption order and attach each item's free stock."""
    is_goods = ~lines["is_service"].fillna(False).astype(bool).to_numpy()
    goods = lines.loc[is_goods].copy()
    goods["_row"] = np.flatnonzero(is_goods)  # positions, so a duplicated caller index does no harm
    goods["quantity"] = goods["quantity"].astype("float64").clip(lower=0.0)
    free = (
        free_stock.groupby("nomenclature_uuid", sort=False)["free"].sum()
        if len(free_stock)
        else pd.Series(dtype="float64")
    )
    goods["_free"] = goods["nomenclature_uuid"].map(free).astype("float64").fillna(0.0).clip(lower=0.0)
    goods = goods.sort_values(["placed_at", "order_id", "line_no"], kind="mergesort", na_position="last")
    return goods


class _Demand:
    """One row per (order, item) in consumption order, with integer codes for fast whole-frame passes.

    An item on two lines of one order counts with both quantities.  Rows of one order are contiguous
    (``order_start`` marks where each order begins), so "every item of the order fits" is one
    ``np.logical_and.reduceat``; ``item_perm`` sorts rows by item, stably, so the running consumption
    per item is one ``np.cumsum``.
    """

    def __init__(self, goods: pd.DataFrame) -> None:
        goods = goods.assign(_seq=np.arange(len(goods)))
        frame = goods.groupby(["order_id", "nomenclature_uuid"], sort=False, dropna=False).agg(
            demand=("quantity", "sum"), free=("_free", "first"), seq=("_seq", "min")
        )
        frame = frame.reset_index()
        # an order's place in the queue is its first line's (keeps orders contiguous on odd data)
        frame["order_seq"] = frame.groupby("order_id", sort=False)["seq"].transform("min")
        frame = frame.sort_values(["order_seq", "seq"], kind="mergesort").reset_index(drop=True)
        self.frame = frame
        self.order_code, self.orders = pd.factorize(frame["order_id"], sort=False)
        self.order_start = np.flatnonzero(np.r_[True, self.order_code[1:] != self.order_code[:-1]])
        item_code, _ = pd.factorize(frame["nomenclature_uuid"], sort=False)
        self.item_perm = np.lexsort((np.arange(len(frame)), item_code))
        sorted_items = item_code[self.item_perm]
        self.item_start = np.flatnonzero(np.r_[True, sorted_items[1:] != sorted_items[:-1]])
        self.item_len = np.diff(np.r_[self.item_start, len(frame)])
        self.demand = frame["demand"].to_numpy(dtype="float64")
        self.free = frame["free"].to_numpy(dtype="float64")

    def prior(self, weight: np.ndarray) -> np.ndarray:
        """Stock of each row's item consumed by *earlier* orders with weight 1 (the row's own excluded)."""
        taken = (self.demand * weight)[self.item_perm]
        running = np.cumsum(taken)
        before_group = running[self.item_start] - taken[self.item_start]
        inclusive = running - np.repeat(before_group, self.item_len)
        out = np.empty_like(inclusive)
        out[self.item_perm] = inclusive - taken
        return out

    def order_fits(self, weight: np.ndarray) -> np.ndarray:
        """Per order: does every item fit after the weighted earlier orders' consumption?"""
        fits = self.prior(weight) + self.demand <= self.free + _EPS
        return np.logical_and.reduceat(fits, self.order_start)


def _full_mode_accept(demand: _Demand) -> np.ndarray:
    """Which orders ``full`` mode creates (bool per ``demand.orders``), as the sequential rule decides.

    Sequentially, an order is created iff, for each of its items, the demand of the *created* earlier
    orders plus its own fits in the free stock.  We keep three states -- accepted, rejected, unknown --
    and bound the unknown ones from both sides on whole frames:

    * upper bound: count every not-rejected earlier order as consuming.  An unknown order that still
      fits is certainly created (the true consumption can only be smaller);
    * lower bound: count only accepted earlier orders.  An unknown order that does not fit even then
      is certainly rejected.

    The earliest unknown order has only decided orders before it, so both bounds agree on it and
    every pass decides at least one order; typical data needs a handful of passes, heavy contention
    for the same items a few more.
    """
    state = np.zeros(len(demand.orders), dtype="int8")  # 0 unknown, 1 accepted, -1 rejected
    while (state == 0).any():
        row_state = state[demand.order_code]
        fits_upper = demand.order_fits((row_state >= 0).astype("float64"))
        state[(state == 0) & fits_upper] = 1
        row_state = state[demand.order_code]
        fits_lower = demand.order_fits((row_state == 1).astype("float64"))
        state[(state == 0) & ~fits_lower] = -1
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
        values = np.zeros(len(out))
        values[goods["_row"].to_numpy()] = reserve.to_numpy()
        out["reserve"] = values
        return out, rejected

    # full
    demand = _Demand(goods)
    accepted = _full_mode_accept(demand)
    accepted_by_order = pd.Series(accepted, index=demand.orders)
    ok_rows = goods["order_id"].map(accepted_by_order).to_numpy(dtype=bool)
    values = np.zeros(len(out))
    values[goods["_row"].to_numpy()[ok_rows]] = goods["quantity"].to_numpy()[ok_rows]
    out["reserve"] = values

    if not accepted.all():
        row_ok = accepted[demand.order_code]
        left = np.clip(demand.free - demand.prior(row_ok.astype("float64")), 0.0, None)
        frame = demand.frame.assign(left=left)
        short = frame.loc[~row_ok & (frame["demand"] > frame["left"] + _EPS)]
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
        detail = join_per_group(text, short["order_id"])
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
