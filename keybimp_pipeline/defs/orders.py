"""Order assets, in lineage order: raw → reference → staged → matched → Bimp customer orders → sync issues.
# (no `from __future__ import annotations` here: Dagster reads the config classes from real annotations)

Thin wiring: each asset calls one step in keybimp_pipeline.sync and reports what a person wants to see.

A run covers one day partition (the sensor, a re-run) or a range of them: the assets have a single-run
backfill policy, so a backfill of consecutive days of one integration is one run, and `keybimp sync
--from --to` is one run too.  Extraction lists the whole range at once, staging, matching and
derivation take the range in one call, and the writers (API-bound, one order after another anyway) go
through the days in order.  In a ranged run every partition's materialisation carries the run's figures
(`days`: how many days they cover).
"""


import dataclasses
import warnings
from collections import Counter
from datetime import date

import dagster as dg
import pandas as pd

from keybimp_pipeline.defs.partitions import days_by_integration
from keybimp_pipeline.defs.resources import Keybimp
from keybimp_pipeline.sync import reference
from keybimp_pipeline.sync.documents import DOCUMENT_ENTITIES, write_documents
from keybimp_pipeline.sync.extract import extract_days
from keybimp_pipeline.sync.issues import markdown_table, open_issues
from keybimp_pipeline.sync.match import match_days
from keybimp_pipeline.sync.orders import (
    EXTERNAL_ID_SOURCE,
    Derived,
    derive_customer_orders_days,
    write_customer_orders,
)
from keybimp_pipeline.sync.resolve import Resolved, resolve
from keybimp_pipeline.sync.stage import stage_days

RAW, REF, STAGED, MATCHED, DOCS = "keycrm_raw", "reference", "staged", "matched", "bimp_documents"
# a backfill of consecutive days is one run (its steps pay their fixed costs once, extraction lists the range)
ONE_RUN = dg.BackfillPolicy.single_run()


class ExtractConfig(dg.Config):
    full_refresh: bool = False


def resolved_settings(keybimp: Keybimp, name: str) -> Resolved:
    """The integration's settings resolved against Bimp's reference snapshot; a writer cannot go on without."""
    resolved = resolve(keybimp.store(name), keybimp.integration(name), keybimp.index_of(name))
    if resolved.problems:
        raise dg.Failure("settings do not resolve against Bimp:\n" + "\n".join(resolved.problems))
    return resolved


def _of_day(derived: Derived, day: date) -> Derived:
    """A range's derivation with the orders and document lines of one day (all the document writer reads)."""
    orders = derived.orders[pd.to_datetime(derived.orders["day"]).dt.date == day]
    return dataclasses.replace(derived, orders=orders, lines=derived.lines[derived.lines["order_id"].isin(
        orders["order_id"])])


def _span(runs: dict[str, list[date]]) -> dict:
    """What a ranged run's materialisations say about the days they cover (nothing for one partition)."""
    days = sum(len(d) for d in runs.values())
    if days == 1:
        return {}
    return {"days": days, "range": ", ".join(f"{name}: {d[0]}..{d[-1]}" for name, d in runs.items())}


def build_order_assets(partitions_def: dg.PartitionsDefinition) -> list:
    with warnings.catch_warnings():  # `backfill_policy` is "beta" in 1.13; said once here, not on every load
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _build_order_assets(partitions_def)


def _build_order_assets(partitions_def: dg.PartitionsDefinition) -> list:
    @dg.asset(
        name="keycrm_orders_raw", group_name=RAW, partitions_def=partitions_def, kinds={"keycrm", "duckdb"},
        backfill_policy=ONE_RUN,
        description="KeyCRM orders of one shop-local day (buyer, lines with offers, payments, shipping, status) "
                    "as received; fetched incrementally by updated_at with an overlap window, de-duplicated by id. "
                    "A range of days is one listing, split into days locally.",
    )
    def keycrm_orders_raw(context: dg.AssetExecutionContext, config: ExtractConfig, keybimp: Keybimp):
        runs = days_by_integration(context)
        fetched = stored = requests = listings = 0
        incremental, high_water = False, None
        for name, days in runs.items():
            settings = keybimp.integration(name)
            with keybimp.keycrm(name) as client:
                result = extract_days(keybimp.store(name), client, days, settings.timezone,
                                      full_refresh=config.full_refresh)
                requests += client.request_count
            fetched, stored, listings = fetched + result.fetched, stored + result.stored, listings + result.listings
            incremental = incremental or result.incremental
            if result.high_water is not None:
                high_water = max(high_water or result.high_water, result.high_water)
        return dg.MaterializeResult(metadata={
            "orders_fetched": fetched, "orders_stored": stored, "incremental": incremental,
            "keycrm_requests": requests, "high_water": str(high_water), **_span(runs),
            **({"listings": listings} if len(runs) > 1 or sum(map(len, runs.values())) > 1 else {})})

    @dg.asset(
        name="reference_data", group_name=REF, partitions_def=partitions_def, kinds={"keycrm", "bimp", "duckdb"},
        deps=[keycrm_orders_raw], backfill_policy=ONE_RUN,
        description="KeyCRM statuses, payment methods, sources; Bimp catalogue, counterparties and their external "
                    "ids, warehouses, statuses, money accounts and the rest the rules need. Re-read when older "
                    "than 10 minutes, so a backfill reads them once.",
    )
    def reference_data(context: dg.AssetExecutionContext, keybimp: Keybimp):
        meta: dict = {}
        for name in days_by_integration(context):
            store = keybimp.store(name)
            if not reference.is_fresh(store, "keycrm"):
                with keybimp.keycrm(name) as client:
                    meta["keycrm_rows"] = meta.get("keycrm_rows", 0) + reference.refresh_keycrm(store, client)
            if not reference.is_fresh(store, "bimp"):
                with keybimp.bimp(name) as client:
                    meta["bimp_rows"] = meta.get("bimp_rows", 0) + reference.refresh_bimp(
                        store, client, external_id_source=EXTERNAL_ID_SOURCE)
                keybimp.confirm_company(name)
        meta["reused_snapshot"] = not meta
        return dg.MaterializeResult(metadata=meta)

    @dg.multi_asset(
        group_name=STAGED, partitions_def=partitions_def, backfill_policy=ONE_RUN,
        specs=[
            dg.AssetSpec("staged_orders", deps=["keycrm_orders_raw", "reference_data"], kinds={"duckdb", "pandas"},
                         description="Typed, flattened orders; money in kopiyky; validated by pandera (R-ORCH-4)."),
            dg.AssetSpec("staged_order_lines", deps=["keycrm_orders_raw"], kinds={"duckdb", "pandas"},
                         description="One row per order line with offer, SKU, quantity, price and line discount."),
            dg.AssetSpec("staged_buyers", deps=["keycrm_orders_raw"], kinds={"duckdb", "pandas"},
                         description="The order's buyer: phone in E.164 (Ukrainian national forms too), e-mail "
                                     "trimmed and lower-cased, name with whitespace collapsed unless strict_names."),
            dg.AssetSpec("staged_payments", deps=["keycrm_orders_raw"], kinds={"duckdb", "pandas"},
                         description="KeyCRM payments of the orders (expenses excluded)."),
        ],
    )
    def staged(context: dg.AssetExecutionContext, keybimp: Keybimp):
        runs = days_by_integration(context)
        totals: Counter = Counter()
        samples = []
        for name, days in runs.items():
            r = stage_days(keybimp.store(name), days, strict_names=keybimp.integration(name).customers.strict_names)
            totals.update(orders=r.orders, lines=r.lines, payments=r.payments, quarantined=r.quarantined)
            samples.append(r.quarantine_sample)
        sample = pd.concat(samples, ignore_index=True) if samples else pd.DataFrame()
        quarantine = dg.MetadataValue.md(sample.to_markdown(index=False) if len(sample) else "_nothing quarantined_")
        span = _span(runs)
        yield dg.MaterializeResult(asset_key="staged_orders", metadata={
            "rows": totals["orders"], "quarantined_orders": totals["quarantined"], "quarantine": quarantine, **span})
        yield dg.MaterializeResult(asset_key="staged_order_lines", metadata={"rows": totals["lines"], **span})
        yield dg.MaterializeResult(asset_key="staged_buyers", metadata={"rows": totals["orders"], **span})
        yield dg.MaterializeResult(asset_key="staged_payments", metadata={"rows": totals["payments"], **span})

    @dg.multi_asset(
        group_name=MATCHED, partitions_def=partitions_def, backfill_policy=ONE_RUN,
        specs=[
            dg.AssetSpec("matched_customers", deps=["staged_buyers", "reference_data"], kinds={"duckdb", "pandas"},
                         description="Each order's Bimp counterparty: found by id, phone, e-mail or name in the "
                                     "configured order, the default one, or one to create (R-CUST-1..10)."),
            dg.AssetSpec("matched_products", deps=["staged_order_lines", "reference_data"],
                         kinds={"duckdb", "pandas"},
                         description="Each line's Bimp item by id, SKU, name or name+SKU, or one to create "
                                     "(R-PROD-1..8)."),
        ],
    )
    def matched(context: dg.AssetExecutionContext, keybimp: Keybimp):
        runs = days_by_integration(context)
        customers, products = [], []
        for name, days in runs.items():
            c, p = match_days(keybimp.store(name), days, keybimp.integration(name))
            customers.append(c["outcome"])
            products.append(p["outcome"])
        customers_, products_ = pd.concat(customers), pd.concat(products)
        span = _span(runs)
        yield dg.MaterializeResult(asset_key="matched_customers", metadata={
            **{f"customers_{k}": int(v) for k, v in customers_.value_counts().items()},
            "rows": len(customers_), **span})
        yield dg.MaterializeResult(asset_key="matched_products", metadata={
            **{f"lines_{k}": int(v) for k, v in products_.value_counts().items()},
            "rows": len(products_), **span})

    @dg.asset(
        name="bimp_customer_orders", group_name=DOCS, partitions_def=partitions_def, kinds={"bimp", "duckdb"},
        deps=["matched_customers", "matched_products", "staged_orders", "reference_data"], backfill_policy=ONE_RUN,
        description="Bimp customer orders (invoiceForCustomerPayment) derived from the day's orders — lines, "
                    "delivery line, reserve (R-MAIN-3), mapped status (R-STAT) — and written with the new "
                    "counterparties, contracts and items they need, each write recorded in the ledger.",
    )
    def bimp_customer_orders(context: dg.AssetExecutionContext, keybimp: Keybimp):
        runs = days_by_integration(context)
        totals: Counter = Counter()
        saved_all = []
        for name, days in runs.items():
            store, settings, resolved = keybimp.store(name), keybimp.integration(name), resolved_settings(keybimp, name)
            with keybimp.bimp(name) as bimp:
                for day in days:  # in order: a counterparty created for an earlier day serves the later ones
                    derived, result, saved = write_customer_orders(store, day, settings, resolved, bimp, context.run.run_id)
                    totals.update(orders_derived=len(derived.orders), orders_created=result.orders_created,
                                  orders_updated=result.orders_updated, statuses_updated=result.statuses_updated,
                                  reserves_released=result.reserves_released, unchanged=result.unchanged,
                                  counterparties_created=result.counterparties_created,
                                  contracts_created=result.contracts_created,
                                  products_created=result.products_created)
                    saved_all.append(saved)
        saved = pd.concat(saved_all, ignore_index=True) if saved_all else pd.DataFrame()
        keys = ["orders_derived", "orders_created", "orders_updated", "statuses_updated", "reserves_released",
                "unchanged", "counterparties_created", "contracts_created", "products_created"]
        return dg.MaterializeResult(metadata={
            **{k: totals[k] for k in keys},
            "orders_rejected": int(saved["order_id"].nunique()) if len(saved) else 0,
            "sync_issues": len(saved), "issues": dg.MetadataValue.md(markdown_table(saved)), **_span(runs)})

    doc_specs = [
        dg.AssetSpec("bimp_customer_payments", deps=["bimp_customer_orders", "staged_payments"],
                     kinds={"bimp", "duckdb"},
                     description="One Bimp customer payment per paid KeyCRM payment, into the money account mapped "
                                 "from its method, linked to the customer order through the ledger (R-PAY-1..4)."),
        dg.AssetSpec("bimp_sales_invoices", deps=["bimp_customer_orders"], kinds={"bimp", "duckdb"},
                     description="The whole order's sales invoice when it reaches the configured status, dated "
                                 "per sales.date, consuming the order's reserve (R-SALE-1..6)."),
        dg.AssetSpec("bimp_goods_returns", deps=["bimp_sales_invoices"], kinds={"bimp", "duckdb"},
                     description="Goods returns based on the order's sales invoice; full returns only (R-RET-1, 3)."),
        dg.AssetSpec("bimp_refunds", deps=["bimp_customer_payments"], kinds={"bimp", "duckdb"},
                     description="Money refunds of the paid amount from the same money account (R-RET-2, 3)."),
    ]

    @dg.multi_asset(group_name=DOCS, partitions_def=partitions_def, specs=doc_specs, backfill_policy=ONE_RUN)
    def order_documents(context: dg.AssetExecutionContext, keybimp: Keybimp):
        runs = days_by_integration(context)
        created: Counter = Counter()
        updated: Counter = Counter()
        cancelled = 0
        saved_all = []
        for name, days in runs.items():
            store, settings, resolved = keybimp.store(name), keybimp.integration(name), resolved_settings(keybimp, name)
            # the customer orders are written: derive the range once; each day's writer takes its own lines
            derived = derive_customer_orders_days(store, days, settings, resolved)
            with keybimp.bimp(name) as bimp:
                for day in days:
                    r, saved = write_documents(store, day, settings, resolved, bimp, _of_day(derived, day),
                                                   context.run.run_id)
                    created.update(r.created)
                    updated.update(r.updated)
                    cancelled += r.cancelled
                    saved_all.append(saved)
        saved = pd.concat(saved_all, ignore_index=True) if saved_all else pd.DataFrame(columns=["entity"])
        span = _span(runs)
        for asset, entity in zip(["bimp_customer_payments", "bimp_sales_invoices", "bimp_goods_returns",
                                  "bimp_refunds"], DOCUMENT_ENTITIES, strict=True):
            mine = saved[saved["entity"] == entity]
            meta = {"created": created.get(entity, 0), "updated": updated.get(entity, 0),
                    "sync_issues": len(mine), "issues": dg.MetadataValue.md(markdown_table(mine)), **span}
            if entity == "customer_payment":
                meta["cancelled"] = cancelled
            yield dg.MaterializeResult(asset_key=asset, metadata=meta)

    @dg.asset(
        name="sync_issues", group_name=DOCS, partitions_def=partitions_def, kinds={"duckdb"},
        deps=[bimp_customer_orders, "bimp_customer_payments", "bimp_sales_invoices", "bimp_goods_returns",
              "bimp_refunds"], backfill_policy=ONE_RUN,
        description="One row per order or document that could not be written: stable code, English and "
                    "Ukrainian message, what to do (R-ORCH-5). Business rejections never fail a partition.",
    )
    def sync_issues(context: dg.AssetExecutionContext, keybimp: Keybimp):
        runs = days_by_integration(context)
        frames = []
        for name, days in runs.items():
            store = keybimp.store(name)
            if len(days) == 1:
                frames.append(open_issues(store, days[0]))
            else:
                issues = open_issues(store)
                frames.append(issues[pd.to_datetime(issues["day"]).dt.date.isin(set(days))])
        issues = pd.concat(frames, ignore_index=True)
        counts = issues["code"].value_counts().to_dict() if len(issues) else {}
        return dg.MaterializeResult(metadata={
            "open_issues": len(issues), **{f"code_{k}": int(v) for k, v in counts.items()},
            "first_issues": dg.MetadataValue.md(markdown_table(issues)), **_span(runs)})

    return [keycrm_orders_raw, reference_data, staged, matched, bimp_customer_orders, order_documents, sync_issues]
