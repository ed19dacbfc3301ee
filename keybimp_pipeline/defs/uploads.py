"""Stocks and prices flow Bimp → KeyCRM: assets partitioned by integration, driven by schedules.

Stocks: ``bimp_stock_snapshot`` and ``keycrm_stock_snapshot`` → ``stock_upload_plan`` (a pure rule) →
``keycrm_stock_upload``.  The plan carries a blocking asset check, the migration guard (R-STOCK-7): the
first upload, one that would zero more than ``guard_zeroed_share`` of KeyCRM's non-zero stocks, or one
planned from an empty or partial Bimp stock list stops there with a preview, and the upload does not
run, unless the run was launched with ``confirm: true`` (``keybimp stocks NAME --confirm``, or the run
config of ``stock_upload_plan`` in the UI).  Prices: ``keycrm_price_upload`` (R-PRICE-1..6).
"""
# (no `from __future__ import annotations` here: Dagster reads the config classes from real annotations)

import warnings

import dagster as dg

from keybimp_pipeline import control
from keybimp_pipeline.defs.resources import Keybimp
from keybimp_pipeline.sync import reference
from keybimp_pipeline.sync.orders import EXTERNAL_ID_SOURCE
from keybimp_pipeline.sync.resolve import resolve
from keybimp_pipeline.sync.uploads import (
    guard_verdict,
    plan_stocks,
    price_upload,
    snapshot_bimp_stock,
    snapshot_keycrm_stock,
    upload_stocks,
)

UPLOADS = "keycrm_uploads"
STOCK_ASSETS = ["bimp_stock_snapshot", "keycrm_stock_snapshot", "stock_upload_plan", "keycrm_stock_upload"]
PRICE_ASSETS = ["keycrm_price_upload"]


class StockConfig(dg.Config):
    confirm: bool = False  # let one upload the migration guard stopped through (after reading the preview)


class PriceConfig(dg.Config):
    dry_run: bool = False  # plan and report (how many items would be created) without writing


def _resolved(keybimp: Keybimp, name: str):
    """The integration's store and its settings resolved against fresh Bimp/KeyCRM reference books."""
    store = keybimp.store(name)
    if not reference.is_fresh(store, "bimp"):
        with keybimp.bimp(name) as bimp:
            reference.refresh_bimp(store, bimp, external_id_source=EXTERNAL_ID_SOURCE)
        keybimp.confirm_company(name)
    if not reference.is_fresh(store, "keycrm"):
        with keybimp.keycrm(name) as keycrm:
            reference.refresh_keycrm(store, keycrm)
    resolved = resolve(store, keybimp.integration(name), keybimp.index_of(name))
    if resolved.problems:
        raise dg.Failure("settings do not resolve against Bimp:\n" + "\n".join(resolved.problems))
    return store, resolved


def build_upload_assets(partitions_def: dg.StaticPartitionsDefinition) -> tuple[list, list]:
    @dg.asset(name="bimp_stock_snapshot", group_name=UPLOADS, partitions_def=partitions_def, kinds={"bimp", "duckdb"},
              description="Bimp stock of every mapped warehouse (R-STOCK-3): quantity, reserved and free per item. "
                          "Items Bimp does not list are unknown, never zero.")
    def bimp_stock_snapshot(context: dg.AssetExecutionContext, keybimp: Keybimp):
        name = context.partition_key
        store, resolved = _resolved(keybimp, name)
        with keybimp.bimp(name) as bimp:
            summary = snapshot_bimp_stock(store, bimp, resolved)
        return dg.MaterializeResult(metadata={
            "rows": summary["rows"], "items": summary["items"], "quantity": summary["quantity"],
            "reserved": summary["reserved"], "free": summary["free"],
            "rows_per_warehouse": dg.MetadataValue.json(summary["per_warehouse"])})

    @dg.asset(name="keycrm_stock_snapshot", group_name=UPLOADS, partitions_def=partitions_def,
              kinds={"keycrm", "duckdb"},
              description="KeyCRM offers and their stock per warehouse (GET /offers/stocks?filter[details]=true).")
    def keycrm_stock_snapshot(context: dg.AssetExecutionContext, keybimp: Keybimp):
        name = context.partition_key
        store = keybimp.store(name)
        with keybimp.keycrm(name) as keycrm:
            summary = snapshot_keycrm_stock(store, keycrm)
        return dg.MaterializeResult(metadata={
            "offers": summary["offers"], "stock_rows": summary["stock_rows"],
            "nonzero_per_warehouse": dg.MetadataValue.json(summary["nonzero_per_warehouse"])})

    @dg.asset(name="stock_upload_plan", group_name=UPLOADS, partitions_def=partitions_def, kinds={"duckdb"},
              deps=[bimp_stock_snapshot, keycrm_stock_snapshot],
              description="What to send: by free or total stock, skip_zero, all_warehouses, only changes "
                          "(R-STOCK-2..8), and the migration guard's preview (R-STOCK-7). Run config "
                          "`confirm: true` lets a blocked upload through.")
    def stock_upload_plan(context: dg.AssetExecutionContext, config: StockConfig, keybimp: Keybimp):
        name = context.partition_key
        store, resolved = _resolved(keybimp, name)
        result = plan_stocks(store, keybimp.integration(name), resolved, confirm=config.confirm)
        g = result.guard
        if g.blocked and not config.confirm:
            context.log.warning(f"stock upload of '{name}' blocked by the migration guard: " + "; ".join(g.reasons))
        preview = g.markdown()
        if g.blocked and config.confirm:
            preview = preview.replace("**Stock upload blocked** (confirm to let it through)",
                                      "**Stock upload confirmed** (the guard would have stopped it)", 1)
        return dg.MaterializeResult(metadata={
            "changes": g.changes, "to_zero": g.to_zero, "keycrm_nonzero": g.nonzero_now,
            "zeroed_share": round(g.zeroed_share, 4), "blocked": g.blocked, "confirmed": result.confirmed,
            "preview": dg.MetadataValue.md(preview)})

    def stock_migration_guard(context: dg.AssetCheckExecutionContext, keybimp: Keybimp):
        name = context.partition_key
        verdict = guard_verdict(keybimp.store(name))
        if verdict["passed"]:
            return dg.AssetCheckResult(passed=True, metadata={
                "confirmed": bool(verdict.get("confirmed")), "reasons": "; ".join(verdict.get("reasons") or [])})
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata={
            "reasons": "; ".join(verdict.get("reasons") or []),
            "changes": int(verdict.get("changes") or 0), "to_zero": int(verdict.get("to_zero") or 0),
            "how_to_confirm": f"keybimp stocks {name} --confirm (or run with stock_upload_plan config confirm: true)"})

    with warnings.catch_warnings():  # a partitioned check is a Dagster preview feature; we rely on it knowingly
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        stock_migration_guard = dg.asset_check(
            asset=stock_upload_plan, name="stock_migration_guard", blocking=True, partitions_def=partitions_def,
            description="R-STOCK-7: stops the upload on a first run, an empty/partial Bimp list, or too many "
                        "zeros, unless the run was confirmed.")(stock_migration_guard)

    @dg.asset(name="keycrm_stock_upload", group_name=UPLOADS, partitions_def=partitions_def, kinds={"keycrm"},
              deps=[stock_upload_plan],
              description="PUT /offers/stocks, one warehouse a call, batched (fewest calls); each acknowledged "
                          "batch recorded so a retry never re-sends it (R-STOCK-8).")
    def keycrm_stock_upload(context: dg.AssetExecutionContext, keybimp: Keybimp):
        name = context.partition_key
        store = keybimp.store(name)
        with store.writer(), keybimp.keycrm(name) as keycrm:
            result = upload_stocks(store, keycrm)
        return dg.MaterializeResult(metadata=result)

    @dg.asset(name="keycrm_price_upload", group_name=UPLOADS, partitions_def=partitions_def,
              kinds={"bimp", "keycrm"},
              description="Prices of the chosen Bimp price list (main by default) for the product group and its "
                          "subgroups, only changed ones, PUT /offers in batches; skip_out_of_stock and "
                          "create_missing (R-PRICE-1..6). The metadata shows how many items would be created.")
    def keycrm_price_upload(context: dg.AssetExecutionContext, config: PriceConfig, keybimp: Keybimp):
        name = context.partition_key
        store, resolved = _resolved(keybimp, name)
        with store.writer(), keybimp.bimp(name) as bimp, keybimp.keycrm(name) as keycrm:
            result = price_upload(store, keybimp.integration(name), resolved, bimp, keycrm, dry_run=config.dry_run)
        meta = {k: v for k, v in result.items() if k != "not_found_preview"}
        meta["not_found_preview"] = dg.MetadataValue.md(result["not_found_preview"])
        return dg.MaterializeResult(metadata=meta)

    assets = [bimp_stock_snapshot, keycrm_stock_snapshot, stock_upload_plan, keycrm_stock_upload,
              keycrm_price_upload]
    return assets, [stock_migration_guard]


def cron_for(every_minutes: int) -> str:
    """A cron for "every N minutes": */N under an hour, whole hours from 60 (rounded down, at least 1)."""
    if every_minutes < 60:
        return f"*/{max(1, every_minutes)} * * * *"
    hours = max(1, every_minutes // 60)
    return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"


def _upload_schedule(name: str, kind: str, job, every: int, enabled: bool) -> dg.ScheduleDefinition:
    @dg.schedule(name=f"{kind}_{name.replace('-', '_')}", job=job, cron_schedule=cron_for(every),
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"{kind} Bimp → KeyCRM for '{name}' every {every} min; skips while paused.")
    def upload_schedule(context: dg.ScheduleEvaluationContext):
        if control.is_paused(name):
            return dg.SkipReason(f"paused: integration '{name}' is paused (keybimp start {name})")
        if not enabled:
            return dg.SkipReason(f"{kind}.enabled is false for '{name}'")
        return dg.RunRequest(partition_key=name, tags={"keybimp/integration": name, "keybimp/trigger": "schedule"})

    return upload_schedule


def build_upload_schedules(settings, stock_job, price_job) -> list[dg.ScheduleDefinition]:
    """One stock and one price schedule per integration, on its every_minutes (15 and 60 by default).

    They start stopped (like the order sensors) and, while running, skip with "paused" until the
    integration is started (`keybimp start NAME`), and skip while the upload is switched off.
    """
    return [_upload_schedule(i.name, kind, job, getattr(i, kind).every_minutes, getattr(i, kind).enabled)
            for i in settings.integrations
            for kind, job in (("stocks", stock_job), ("prices", price_job))]
