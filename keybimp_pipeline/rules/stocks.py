"""Stock upload Bimp -> KeyCRM (R-STOCK-2..8): what to send, whether it is safe to send, in which calls.

Bimp is the master of stock (R-STOCK-6): whatever KeyCRM shows, higher or lower, is overwritten by
Bimp's figure.  Three things keep that from doing harm:

* an item whose stock Bimp does not report is **unknown**, never zero -- it is not touched at all, so
  a partial or failed Bimp read cannot wipe the CRM (the guide's migration disaster);
* ``all_warehouses`` (R-STOCK-5) sends 0 only for items Bimp *does* report at some mapped warehouse,
  at the mapped warehouses where they are absent -- items wholly unknown to Bimp stay as they are;
* :func:`stock_guard` (R-STOCK-7) stops the first upload, an upload from an empty or partial Bimp
  list, and an upload that would zero more than a set share of KeyCRM's non-zero stocks, and gives a
  preview; the caller lets it through only on explicit confirmation.

Everything is matched by SKU (Bimp ``article`` = KeyCRM offer ``sku``, exact string).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PLAN_COLUMNS = ["warehouse_id", "sku", "offer_id", "quantity", "previous", "reason"]
REASON_CHANGED = "changed"  # KeyCRM (or our last acknowledged upload) holds another figure
REASON_UNKNOWN_IN_KEYCRM = "not_in_keycrm_stock"  # no current figure and nothing uploaded before
REASON_ABSENT = "absent_at_warehouse"  # R-STOCK-5: Bimp knows the item, not at this warehouse
KEYCRM_BATCH_LIMIT = 500  # KeyCRM declares 10000 per PUT /offers/stocks; 500 is what works in practice
_EPS = 1e-9


def _sku_text(values: pd.Series) -> pd.Series:
    """SKUs as exact strings; blank ones are no SKU (they can match nothing)."""
    s = values.astype("string")
    return s.where(s.str.len() > 0)


def plan_stock_upload(
    bimp_stock: pd.DataFrame,
    keycrm_offers: pd.DataFrame,
    keycrm_stock: pd.DataFrame,
    last_ack: pd.DataFrame,
    *,
    free_only: bool,
    warehouse_map: dict[str, int],
    skip_zero: bool,
    all_warehouses: bool,
) -> pd.DataFrame:
    """The stocks to send to KeyCRM: warehouse_id, sku, offer_id, quantity, previous, reason.

    ``bimp_stock``: warehouse_uuid, nomenclature_uuid, article, quantity, reserved -- rows only for the
    items Bimp reports.  ``keycrm_offers``: offer_id, sku.  ``keycrm_stock``: offer_id, sku,
    warehouse_id, quantity (KeyCRM's current, may be empty).  ``last_ack``: sku, warehouse_id, quantity
    (last upload KeyCRM acknowledged, may be empty).  ``warehouse_map``: Bimp warehouse uuid -> KeyCRM
    warehouse id (R-STOCK-3); Bimp warehouses not in it are ignored, and several Bimp warehouses mapped
    to one KeyCRM warehouse are summed.

    * value = on hand - reserved when ``free_only`` else on hand (R-STOCK-2), never below 0; Bimp items
      sharing one article are summed (one KeyCRM offer per SKU);
    * a Bimp item whose article is no KeyCRM SKU is skipped (creating offers is the price upload's job);
    * ``all_warehouses`` (R-STOCK-5): 0 at each mapped warehouse where a Bimp-known item is absent;
    * ``skip_zero`` (R-STOCK-4): zero values are not sent -- the documented risk: KeyCRM keeps its
      last non-zero figure and managers keep selling what is gone;
    * only changes are sent (R-STOCK-8): a value is sent when it differs from the last acknowledged
      upload for that sku/warehouse, or from KeyCRM's current figure -- either one differing is enough,
      so a figure edited by hand in KeyCRM after our upload is still overwritten (R-STOCK-6) -- or when
      neither is known.

    ``previous`` is KeyCRM's current figure (NaN when unknown).  Sorted by warehouse, then SKU.
    """
    offers = pd.DataFrame(
        {"offer_id": keycrm_offers["offer_id"].to_numpy(), "sku": _sku_text(keycrm_offers["sku"]).to_numpy()}
    )
    offers = offers.dropna(subset=["sku"]).sort_values("offer_id", kind="mergesort")
    offers = offers.drop_duplicates("sku").set_index("sku")["offer_id"]

    wh = bimp_stock["warehouse_uuid"].map(warehouse_map)
    mapped = bimp_stock.loc[wh.notna()]
    quantity = mapped["quantity"].astype("float64").fillna(0.0)
    if free_only:
        quantity = quantity - mapped["reserved"].astype("float64").fillna(0.0)
    bimp = pd.DataFrame(
        {
            "warehouse_id": wh.loc[wh.notna()].astype("int64").to_numpy(),
            "sku": _sku_text(mapped["article"]).to_numpy(),
            "quantity": quantity.clip(lower=0.0).to_numpy(),
        }
    )
    bimp = bimp.loc[bimp["sku"].isin(offers.index)]
    plan = bimp.groupby(["warehouse_id", "sku"], sort=False)["quantity"].sum()
    reason = pd.Series(REASON_CHANGED, index=plan.index, dtype="object")

    if all_warehouses and len(plan):
        warehouses = sorted({int(v) for v in warehouse_map.values()})
        known = pd.unique(plan.index.get_level_values("sku"))
        grid = pd.MultiIndex.from_product([warehouses, known], names=["warehouse_id", "sku"])
        reason = reason.reindex(grid, fill_value=REASON_ABSENT)
        plan = plan.reindex(grid, fill_value=0.0)

    plan = pd.DataFrame({"quantity": plan, "reason": reason}).reset_index()
    if skip_zero:
        plan = plan.loc[plan["quantity"] > _EPS]

    current = _per_sku_warehouse(keycrm_stock, keycrm_offers)
    acked = _per_sku_warehouse(last_ack, None)
    key = pd.MultiIndex.from_frame(plan[["warehouse_id", "sku"]])
    previous = current.reindex(key).to_numpy()
    ack = acked.reindex(key).to_numpy()
    value = plan["quantity"].to_numpy()
    known_prev = ~np.isnan(previous)
    known_ack = ~np.isnan(ack)
    changed = (
        (known_ack & (np.abs(value - np.where(known_ack, ack, 0.0)) > _EPS))
        | (known_prev & (np.abs(value - np.where(known_prev, previous, 0.0)) > _EPS))
        | (~known_ack & ~known_prev)
    )
    plan = plan.assign(previous=previous)
    plan.loc[~known_ack & ~known_prev & (plan["reason"] == REASON_CHANGED), "reason"] = (
        REASON_UNKNOWN_IN_KEYCRM
    )
    plan = plan.loc[changed]
    plan["offer_id"] = plan["sku"].map(offers).to_numpy()
    plan = plan.sort_values(["warehouse_id", "sku"], kind="mergesort").reset_index(drop=True)
    plan["warehouse_id"] = plan["warehouse_id"].astype("int64")
    plan["sku"] = plan["sku"].astype("object")
    plan["quantity"] = plan["quantity"].astype("float64")
    plan["previous"] = plan["previous"].astype("float64")
    return plan[PLAN_COLUMNS]


def _per_sku_warehouse(frame: pd.DataFrame, offers: pd.DataFrame | None) -> pd.Series:
    """Quantity by (warehouse_id, sku) from a KeyCRM stock or acknowledgement frame (float, NaN-free)."""
    if frame is None or frame.empty:
        index = pd.MultiIndex.from_arrays([[], []], names=["warehouse_id", "sku"])
        return pd.Series([], index=index, dtype="float64")
    sku = _sku_text(frame["sku"]) if "sku" in frame else pd.Series(pd.NA, index=frame.index, dtype="string")
    if offers is not None and "offer_id" in frame:
        by_offer = offers.dropna(subset=["sku"]).drop_duplicates("offer_id").set_index("offer_id")["sku"]
        sku = sku.fillna(frame["offer_id"].map(by_offer).astype("string"))
    out = pd.DataFrame(
        {
            "warehouse_id": frame["warehouse_id"].astype("int64").to_numpy(),
            "sku": sku.to_numpy(),
            "quantity": frame["quantity"].astype("float64").to_numpy(),
        }
    ).dropna(subset=["sku", "quantity"])
    return out.groupby(["warehouse_id", "sku"], sort=False)["quantity"].sum()


# ---------------------------------------------------------------------------------------------- guard
@dataclass
class GuardResult:
    """Whether the stock upload may go (R-STOCK-7), with the numbers and a preview for the run metadata."""

    blocked: bool
    reasons: list[str]
    changes: int
    to_zero: int
    nonzero_now: int
    zeroed_share: float
    sample: pd.DataFrame = field(repr=False)

    def markdown(self) -> str:
        """A short preview for Dagster metadata: verdict, counts, reasons, the first changes."""
        head = (
            "**Stock upload blocked** (confirm to let it through)"
            if self.blocked
            else "**Stock upload ready**"
        )
        lines = [
            head,
            "",
            f"- changes: {self.changes}",
            f"- to zero: {self.to_zero} of {self.nonzero_now} non-zero KeyCRM stocks ({self.zeroed_share:.0%})",
        ]
        lines += [f"- {r}" for r in self.reasons]
        if len(self.sample):
            shown = f"all {self.changes} changes" if len(self.sample) >= self.changes else \
                f"the first {len(self.sample)} of {self.changes} changes"
            lines += ["", f"{shown}:", "", "| sku | warehouse | KeyCRM now | Bimp sends |", "|---|---|---|---|"]
            for row in self.sample.itertuples(index=False):
                prev = "?" if pd.isna(row.previous) else f"{row.previous:g}"
                sku = str(row.sku).replace("|", "\\|")
                lines.append(f"| {sku} | {row.warehouse_id} | {prev} | {row.quantity:g} |")
        return "\n".join(lines)


def stock_guard(
    plan: pd.DataFrame,
    keycrm_stock: pd.DataFrame,
    *,
    first_upload: bool,
    bimp_rows: int,
    bimp_expected_items: int | None,
    guard_zeroed_share: float,
    warehouse_ids: list[int] | None = None,
) -> GuardResult:
    """Migration guard (R-STOCK-7): block instead of wiping the CRM's stocks.

    Blocked when this is the integration's first upload, when Bimp's stock list is empty
    (``bimp_rows`` == 0) or partial (fewer rows than ``bimp_expected_items``, when known), or when the
    plan would turn more than ``guard_zeroed_share`` of KeyCRM's currently non-zero stocks into zero.
    ``warehouse_ids`` (the mapped KeyCRM warehouses) limits the non-zero count to stocks the upload
    could touch; ``None`` counts every row of ``keycrm_stock``.  The caller lets a blocked upload
    through only on explicit confirmation.
    """
    now = keycrm_stock
    if warehouse_ids is not None and len(now):
        now = now.loc[now["warehouse_id"].isin(list(warehouse_ids))]
    nonzero_now = int((now["quantity"].astype("float64") > _EPS).sum()) if len(now) else 0
    to_zero = int(((plan["quantity"] <= _EPS) & (plan["previous"] > _EPS)).sum())
    share = to_zero / nonzero_now if nonzero_now else 0.0

    reasons: list[str] = []
    if first_upload:
        reasons.append("first stock upload of this integration: check the preview and confirm")
    if bimp_rows <= 0:
        reasons.append("Bimp returned no stock at all: nothing is sent from an empty list")
    elif bimp_expected_items is not None and bimp_rows < bimp_expected_items:
        reasons.append(f"Bimp stock list is partial: {bimp_rows} rows of {bimp_expected_items} expected")
    if share > guard_zeroed_share:
        reasons.append(
            f"the upload would zero {to_zero} of {nonzero_now} non-zero KeyCRM stocks "
            f"({share:.0%} > {guard_zeroed_share:.0%})"
        )
    sample = plan[["sku", "warehouse_id", "previous", "quantity"]].head(20).reset_index(drop=True)
    return GuardResult(
        blocked=bool(reasons),
        reasons=reasons,
        changes=len(plan),
        to_zero=to_zero,
        nonzero_now=nonzero_now,
        zeroed_share=share,
        sample=sample,
    )


# -------------------------------------------------------------------------------------------- batches
def batches(plan: pd.DataFrame, batch_size: int = KEYCRM_BATCH_LIMIT) -> list[tuple[int, list[dict]]]:
    """``PUT /offers/stocks`` payloads: one warehouse per call, at most ``batch_size`` stocks each.

    The fewest calls possible: ceil(n / batch_size) per warehouse.  Whole quantities go as integers
    (KeyCRM's handling of fractional stock is unconfirmed; fractions are sent as they are).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    out: list[tuple[int, list[dict]]] = []
    ordered = plan.sort_values(["warehouse_id", "sku"], kind="mergesort")
    for warehouse_id, group in ordered.groupby("warehouse_id", sort=True):
        q = group["quantity"].astype("float64").to_numpy()
        whole = np.abs(q - np.round(q)) <= _EPS
        values = np.where(whole, np.round(q), q).astype(object)
        values[whole] = np.round(q[whole]).astype("int64").astype(object)
        payload = [
            {"sku": s, "quantity": v} for s, v in zip(group["sku"].astype(str).tolist(), values.tolist())
        ]
        for start in range(0, len(payload), batch_size):
            out.append((int(warehouse_id), payload[start : start + batch_size]))
    return out
