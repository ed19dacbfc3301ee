"""Order assets, in lineage order: raw → reference → staged → matched → Bimp customer orders → sync issues.
# (no `from __future__ import annotations` here: Dagster reads the config classes from real annotations)

Thin wiring: each asset calls one step in keybimp_pipeline.sync and reports what a person wants to see.
"""


import dagster as dg

from keybimp_pipeline.defs.partitions import split
from keybimp_pipeline.defs.resources import Keybimp
from keybimp_pipeline.sync import reference
from keybimp_pipeline.sync.documents import DOCUMENT_ENTITIES, write_documents
from keybimp_pipeline.sync.extract import extract_day
from keybimp_pipeline.sync.issues import markdown_table, open_issues
from keybimp_pipeline.sync.match import match_day
from keybimp_pipeline.sync.orders import EXTERNAL_ID_SOURCE, derive_customer_orders, write_customer_orders
from keybimp_pipeline.sync.resolve import resolve
from keybimp_pipeline.sync.stage import stage_day

RAW, REF, STAGED, MATCHED, DOCS = "keycrm_raw", "reference", "staged", "matched", "bimp_documents"


class ExtractConfig(dg.Config):
    full_refresh: bool = False


def build_order_assets(partitions_def: dg.PartitionsDefinition) -> list:
    @dg.asset(
        name="keycrm_orders_raw", group_name=RAW, partitions_def=partitions_def, kinds={"keycrm", "duckdb"},
        description="KeyCRM orders of one shop-local day (buyer, lines with offers, payments, shipping, status) "
                    "as received; fetched incrementally by updated_at with an overlap window, de-duplicated by id.",
    )
    def keycrm_orders_raw(context: dg.AssetExecutionContext, config: ExtractConfig, keybimp: Keybimp):
        name, day = split(context)
        settings = keybimp.integration(name)
        with keybimp.keycrm(name) as client:
            result = extract_day(keybimp.store(name), client, day, settings.timezone,
                                 full_refresh=config.full_refresh)
            requests = client.request_count
        return dg.MaterializeResult(metadata={
            "orders_fetched": result.fetched, "orders_stored": result.stored,
            "incremental": result.incremental, "keycrm_requests": requests,
            "high_water": str(result.high_water)})

    @dg.asset(
        name="reference_data", group_name=REF, partitions_def=partitions_def, kinds={"keycrm", "bimp", "duckdb"},
        deps=[keycrm_orders_raw],
        description="KeyCRM statuses, payment methods, sources; Bimp catalogue, counterparties and their external "
                    "ids, warehouses, statuses, money accounts and the rest the rules need. Re-read when older "
                    "than 10 minutes, so a backfill reads them once.",
    )
    def reference_data(context: dg.AssetExecutionContext, keybimp: Keybimp):
        name, _ = split(context)
        store = keybimp.store(name)
        meta = {}
        if not reference.is_fresh(store, "keycrm"):
            with keybimp.keycrm(name) as client:
                meta["keycrm_rows"] = reference.refresh_keycrm(store, client)
        if not reference.is_fresh(store, "bimp"):
            with keybimp.bimp(name) as client:
                meta["bimp_rows"] = reference.refresh_bimp(store, client, external_id_source=EXTERNAL_ID_SOURCE)
        meta["reused_snapshot"] = not meta
        return dg.MaterializeResult(metadata=meta)

    @dg.multi_asset(
        group_name=STAGED, partitions_def=partitions_def,
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
        name, day = split(context)
        result = stage_day(keybimp.store(name), day, strict_names=keybimp.integration(name).customers.strict_names)
        quarantine = dg.MetadataValue.md(result.quarantine_sample.to_markdown(index=False)
                                         if len(result.quarantine_sample) else "_nothing quarantined_")
        yield dg.MaterializeResult(asset_key="staged_orders", metadata={
            "rows": result.orders, "quarantined_orders": result.quarantined, "quarantine": quarantine})
        yield dg.MaterializeResult(asset_key="staged_order_lines", metadata={"rows": result.lines})
        yield dg.MaterializeResult(asset_key="staged_buyers", metadata={"rows": result.orders})
        yield dg.MaterializeResult(asset_key="staged_payments", metadata={"rows": result.payments})

    @dg.multi_asset(
        group_name=MATCHED, partitions_def=partitions_def,
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
        name, day = split(context)
        customers, products = match_day(keybimp.store(name), day, keybimp.integration(name))
        yield dg.MaterializeResult(asset_key="matched_customers", metadata={
            **{f"customers_{k}": int(v) for k, v in customers["outcome"].value_counts().items()},
            "rows": len(customers)})
        yield dg.MaterializeResult(asset_key="matched_products", metadata={
            **{f"lines_{k}": int(v) for k, v in products["outcome"].value_counts().items()},
            "rows": len(products)})

    @dg.asset(
        name="bimp_customer_orders", group_name=DOCS, partitions_def=partitions_def, kinds={"bimp", "duckdb"},
        deps=["matched_customers", "matched_products", "staged_orders", "reference_data"],
        description="Bimp customer orders (invoiceForCustomerPayment) derived from the day's orders — lines, "
                    "delivery line, reserve (R-MAIN-3), mapped status (R-STAT) — and written with the new "
                    "counterparties, contracts and items they need, each write recorded in the ledger.",
    )
    def bimp_customer_orders(context: dg.AssetExecutionContext, keybimp: Keybimp):
        name, day = split(context)
        store = keybimp.store(name)
        settings = keybimp.integration(name)
        resolved = resolve(store, settings, keybimp.index_of(name))
        if resolved.problems:
            raise dg.Failure("settings do not resolve against Bimp:\n" + "\n".join(resolved.problems))
        with keybimp.bimp(name) as bimp:
            derived, result, saved = write_customer_orders(store, day, settings, resolved, bimp)
        return dg.MaterializeResult(metadata={
            "orders_derived": len(derived.orders), "orders_created": result.orders_created,
            "orders_updated": result.orders_updated, "statuses_updated": result.statuses_updated,
            "reserves_released": result.reserves_released, "unchanged": result.unchanged,
            "counterparties_created": result.counterparties_created,
            "contracts_created": result.contracts_created, "products_created": result.products_created,
            "orders_rejected": int(saved["order_id"].nunique()) if len(saved) else 0,
            "sync_issues": len(saved), "issues": dg.MetadataValue.md(markdown_table(saved))})

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

    @dg.multi_asset(group_name=DOCS, partitions_def=partitions_def, specs=doc_specs)
    def order_documents(context: dg.AssetExecutionContext, keybimp: Keybimp):
        name, day = split(context)
        store = keybimp.store(name)
        settings = keybimp.integration(name)
        resolved = resolve(store, settings, keybimp.index_of(name))
        if resolved.problems:
            raise dg.Failure("settings do not resolve against Bimp:\n" + "\n".join(resolved.problems))
        derived = derive_customer_orders(store, day, settings, resolved)
        with keybimp.bimp(name) as bimp:
            r, saved = write_documents(store, day, settings, resolved, bimp, derived)
        for asset, entity in zip(["bimp_customer_payments", "bimp_sales_invoices", "bimp_goods_returns",
                                  "bimp_refunds"], DOCUMENT_ENTITIES, strict=True):
            mine = saved[saved["entity"] == entity]
            meta = {"created": r.created.get(entity, 0), "updated": r.updated.get(entity, 0),
                    "sync_issues": len(mine), "issues": dg.MetadataValue.md(markdown_table(mine))}
            if entity == "customer_payment":
                meta["cancelled"] = r.cancelled
            yield dg.MaterializeResult(asset_key=asset, metadata=meta)

    @dg.asset(
        name="sync_issues", group_name=DOCS, partitions_def=partitions_def, kinds={"duckdb"},
        deps=[bimp_customer_orders, "bimp_customer_payments", "bimp_sales_invoices", "bimp_goods_returns",
              "bimp_refunds"],
        description="One row per order or document that could not be written: stable code, English and "
                    "Ukrainian message, what to do (R-ORCH-5). Business rejections never fail a partition.",
    )
    def sync_issues(context: dg.AssetExecutionContext, keybimp: Keybimp):
        name, day = split(context)
        issues = open_issues(keybimp.store(name), day)
        counts = issues["code"].value_counts().to_dict() if len(issues) else {}
        return dg.MaterializeResult(metadata={
            "open_issues": len(issues), **{f"code_{k}": int(v) for k, v in counts.items()},
            "first_issues": dg.MetadataValue.md(markdown_table(issues))})

    return [keycrm_orders_raw, reference_data, staged, matched, bimp_customer_orders, order_documents, sync_issues]
