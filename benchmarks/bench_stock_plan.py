"""Benchmark of the stock upload plan (R-STOCK-2..8): 50,000 offers x 3 warehouses.

Run: ``.venv/bin/python benchmarks/bench_stock_plan.py``.  Prints the seconds the plan (plus the guard
and the batching) takes; the target is under 5 s.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from keybimp_pipeline.rules.stocks import batches, plan_stock_upload, stock_guard

OFFERS = 50_000
WAREHOUSES = {"wh-a": 1, "wh-b": 2, "wh-c": 3}


def make_data(seed: int = 7) -> tuple[pd.DataFrame, ...]:
    """A shop where Bimp reports ~90% of items per warehouse and KeyCRM lags behind on ~20% of stocks."""
    rng = np.random.default_rng(seed)
    skus = np.array([f"SKU-{i:06d}" for i in range(OFFERS)], dtype=object)
    offers = pd.DataFrame({"offer_id": np.arange(1, OFFERS + 1), "sku": skus})
    bimp_parts, crm_parts = [], []
    for uuid, wid in WAREHOUSES.items():
        present = rng.random(OFFERS) < 0.9
        qty = rng.integers(0, 50, OFFERS).astype("float64")
        reserved = np.minimum(rng.integers(0, 3, OFFERS), qty)
        bimp_parts.append(
            pd.DataFrame(
                {
                    "warehouse_uuid": uuid,
                    "nomenclature_uuid": [f"n-{i}" for i in np.flatnonzero(present)],
                    "article": skus[present],
                    "quantity": qty[present],
                    "reserved": reserved[present],
                }
            )
        )
        crm_qty = np.where(rng.random(OFFERS) < 0.8, qty - reserved, qty + 1)
        crm_parts.append(
            pd.DataFrame(
                {"offer_id": offers["offer_id"], "sku": skus, "warehouse_id": wid, "quantity": crm_qty}
            )
        )
    bimp = pd.concat(bimp_parts, ignore_index=True)
    crm = pd.concat(crm_parts, ignore_index=True)
    ack = crm.sample(frac=0.5, random_state=seed)[["sku", "warehouse_id", "quantity"]]
    return bimp, offers, crm, ack


def main() -> None:
    bimp, offers, crm, ack = make_data()
    started = time.perf_counter()
    plan = plan_stock_upload(
        bimp, offers, crm, ack, free_only=True, warehouse_map=WAREHOUSES, skip_zero=False, all_warehouses=True
    )
    guard = stock_guard(
        plan, crm, first_upload=False, bimp_rows=len(bimp), bimp_expected_items=None, guard_zeroed_share=0.5
    )
    calls = batches(plan)
    elapsed = time.perf_counter() - started
    print(f"stock plan: {len(plan)} changes, {len(calls)} calls, blocked={guard.blocked}")
    print(f"{elapsed:.3f} s (target < 5 s)")


if __name__ == "__main__":
    main()
