"""Stocks and prices flow Bimp → KeyCRM: assets partitioned by integration, driven by schedules.

The stock upload plan carries a blocking asset check, the migration guard (R-STOCK-7): the first upload,
one that would zero more than `guard_zeroed_share` of KeyCRM's non-zero stocks, or one planned from an
empty or partial Bimp stock list stops there with a preview, and the upload does not run, unless the
run was launched with `confirm: true` (`keybimp stocks NAME --confirm`, or the run config in the UI).
"""

from __future__ import annotations

import json

import dagster as dg

from keybimp_pipeline import control
from keybimp_pipeline.defs.resources import Keybimp
from keybimp_pipeline.sync import reference
from keybimp_pipeline.sync.orders import EXTERNAL_ID_SOURCE
from keybimp_pipeline.sync.resolve import resolve
from keybimp_pipeline.sync.uploads import plan_stocks, price_upload, upload_stocks

UPLOADS = "keycrm_uploads"


class StockConfig(dg.Config):
    confirm: bool = False


def _resolved(keybimp: Keybimp, name: str):
    store = keybimp.store(name)
    if not reference.is_fresh(store, "bimp"):
        with keybimp.bimp(name) as bimp:
            reference.refresh_bimp(store, bimp, external_id_source=EXTERNAL_ID_SOURCE)
    if not reference.is_fresh(store, "keycrm"):
        with keybimp.keycrm(name) as keycrm:
            reference.refresh_keycrm(store, keycrm)
    resolved = resolve(store, keybimp.integration(name), keybimp.index_of(name))
    if resolved.problems:
        raise dg.Failure("settings do not resolve against Bimp:\n" + "\n".join(resolved.problems))
    return store, resolved


def build_upload_assets(partitions_def: dg.StaticPartitionsDefinition) -> tuple[list, list]:
    @dg.asset(name="stock_upload_plan", group_name=UPLOADS, partitions_def=partitions_def,
              kinds={"bimp", "keycrm", "duckdb"},
              description="Bimp stock per mapped warehouse (quantity, reserved, free) against KeyCRM's stock: "
                          "what to send, by free or total stock, skip_zero, all_warehouses, only changes "
                          "(R-STOCK-2..8). An item Bimp does not report is unknown, never zero.")
    def stock_upload_plan(context: dg.AssetExecutionContext, config: StockConfig, keybimp: Keybimp):
        name = context.partition_key
        store, resolved = _resolved(keybimp, name)
        with keybimp.bimp(name) as bimp, keybimp.keycrm(name) as keycrm:
            result = plan_stocks(store, keybimp.integration(name), resolved, bimp, keycrm, confirm=config.confirm)
        g = result.guard
        return dg.MaterializeResult(metadata={
            "changes": g.changes, "to_zero": g.to_zero, "keycrm_nonzero": g.nonzero_now,
            "zeroed_share": round(g.zeroed_share, 4), "blocked": g.blocked, "confirmed": result.confirmed,
            "preview": dg.MetadataValue.md(g.markdown())})

    @dg.asset_check(asset=stock_upload_plan, name="stock_migration_guard", blocking=True,
                    description="R-STOCK-7: stops the upload on a first run, an empty/partial Bimp list, or "
                                "too many zeros, unless confirmed.")
    def stock_migration_guard(context: dg.AssetCheckExecutionContext, keybimp: Keybimp):
        name = context.op_execution_context.partition_key if context.op_execution_context.has_partition_key \
            else None
        names = [name] if name else keybimp._settings.names()
        for n in names:
            state = keybimp.store(n).query("SELECT payload FROM snapshots WHERE integration=? AND kind='stock_plan'",
                                           [n])
            if state.empty:
                return dg.AssetCheckResult(passed=False, metadata={"reason": "no plan"})
            payload = json.loads(state["payload"].iloc[0])
            if payload["blocked"] and not payload["confirmed"]:
                return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata={
                    "reasons": "; ".join(payload["reasons"]),
                    "how_to_confirm": f"keybimp stocks {n} --confirm (or run with confirm: true)"})
        return dg.AssetCheckResult(passed=True)

    @dg.asset(name="keycrm_stock_upload", group_name=UPLOADS, partitions_def=partitions_def, kinds={"keycrm"},
              deps=[stock_upload_plan],
              description="PUT /offers/stocks, one warehouse a call, batched (fewest calls); each acknowledged "
                          "batch recorded so a retry never re-sends it (R-STOCK-8).")
    def keycrm_stock_upload(context: dg.AssetExecutionContext, keybimp: Keybimp):
        name = context.partition_key
        store = keybimp.store(name)
        plan = store.query("SELECT * FROM stock_plan")
        with store.writer(), keybimp.keycrm(name) as keycrm:
            result = upload_stocks(store, keycrm, plan)
        return dg.MaterializeResult(metadata=result)

    @dg.asset(name="keycrm_price_upload", group_name=UPLOADS, partitions_def=partitions_def,
              kinds={"bimp", "keycrm"},
              description="Prices of the chosen Bimp price list (main by default) for the product group and its "
                          "subgroups, only changed ones, PUT /offers in batches; skip_out_of_stock and "
                          "create_missing (R-PRICE-1..6). The metadata shows how many items would be created.")
    def keycrm_price_upload(context: dg.AssetExecutionContext, keybimp: Keybimp):
        name = context.partition_key
        store, resolved = _resolved(keybimp, name)
        with store.writer(), keybimp.bimp(name) as bimp, keybimp.keycrm(name) as keycrm:
            result = price_upload(store, keybimp.integration(name), resolved, bimp, keycrm)
        return dg.MaterializeResult(metadata=result)

    return [stock_upload_plan, keycrm_stock_upload, keycrm_price_upload], [stock_migration_guard]


def build_upload_schedules(settings, stock_job, price_job) -> list[dg.ScheduleDefinition]:
    out = []
    for integration in settings.integrations:
        for kind, job, every in (("stocks", stock_job, integration.stocks.every_minutes),
                                 ("prices", price_job, integration.prices.every_minutes)):
            name = integration.name
            enabled = getattr(integration, kind).enabled

            def evaluate(context: dg.ScheduleEvaluationContext, _name=name, _enabled=enabled, _kind=kind):
                if control.is_paused(_name):
                    return dg.SkipReason(f"paused: integration '{_name}' is paused (keybimp start {_name})")
                if not _enabled:
                    return dg.SkipReason(f"{_kind}.enabled is false for '{_name}'")
                return dg.RunRequest(partition_key=_name, tags={"keybimp/integration": _name})

            cron = f"*/{every} * * * *" if every < 60 else f"0 */{max(1, every // 60)} * * *"
            out.append(dg.ScheduleDefinition(
                name=f"{kind}_{name.replace('-', '_')}", job=job, cron_schedule=cron,
                execution_fn=evaluate, default_status=dg.DefaultScheduleStatus.STOPPED,
                description=f"{kind} Bimp → KeyCRM for '{name}' every {every} min; skips while paused."))
    return out
