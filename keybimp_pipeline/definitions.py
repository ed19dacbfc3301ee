"""The one place the Dagster definitions are assembled."""

from __future__ import annotations

import warnings
from datetime import timedelta

import dagster as dg

from keybimp_pipeline import control
from keybimp_pipeline.defs import resources
from keybimp_pipeline.defs.checks import build_order_checks
from keybimp_pipeline.defs.orders import build_order_assets
from keybimp_pipeline.defs.partitions import integration_partitions, orders_partitions
from keybimp_pipeline.defs.sensors import build_order_sensors
from keybimp_pipeline.defs.uploads import STOCK_ASSETS, build_upload_assets, build_upload_schedules

# the code location's name, as workspace.yaml gives it: runs `keybimp sync` executes name it as their origin, so
# the UI finds their job there and re-executes them like its own
CODE_LOCATION = "keybimp"

SETTINGS = resources.load()
control.on_load(SETTINGS)  # R-CONN-3 key registry, R-CONN-6 settings history: on every code-location load
ORDERS_PARTITIONS = orders_partitions(SETTINGS)
INTEGRATIONS = integration_partitions(SETTINGS)
ORDER_ASSETS = build_order_assets(ORDERS_PARTITIONS)
ORDER_CHECKS = build_order_checks(ORDERS_PARTITIONS)
UPLOAD_ASSETS, UPLOAD_CHECKS = build_upload_assets(INTEGRATIONS)

# Freshness (policy applied once, here): an integration that stopped syncing shows its assets as stale.
# Order assets materialise whenever the sensor finds changed orders; a shop with no order change in a
# day has most likely stopped syncing.  Uploads run on schedules: stale after a few missed ticks.
_UPLOAD_EVERY = max(max(i.stocks.every_minutes, i.prices.every_minutes) for i in SETTINGS.integrations)
ORDERS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=24), warn_window=timedelta(hours=6))
UPLOADS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=max(6 * _UPLOAD_EVERY, 120)),
                                                   warn_window=timedelta(minutes=3 * _UPLOAD_EVERY))

# Every job runs its steps in one process (the Definitions' executor below).  Dagster's default multiprocess
# executor starts a Python process per step that imports Dagster and the pipeline (~4 s each): a one-day run of
# the order assets took 45-50 s that way, a few seconds in process.  The steps form a chain, so running them in
# parallel processes gained nothing.
EXECUTOR = dg.in_process_executor

sync_orders = dg.define_asset_job(
    "sync_orders", selection=dg.AssetSelection.assets(*ORDER_ASSETS), executor_def=EXECUTOR,
    description="KeyCRM orders of one day, or of a range of days, of one integration → Bimp documents.")
upload_stocks = dg.define_asset_job(
    "upload_stocks", selection=dg.AssetSelection.assets(*STOCK_ASSETS),
    description="Bimp stocks → KeyCRM, behind the migration guard.")
upload_prices = dg.define_asset_job(
    "upload_prices", selection=dg.AssetSelection.assets("keycrm_price_upload"),
    description="Bimp prices → KeyCRM.")


def _build_definitions() -> dg.Definitions:
    """The one Definitions of the code location; a function so no second Definitions sits at module scope
    (dagster dev refuses a module holding two unless workspace.yaml names one)."""
    base = dg.Definitions(
        assets=[*ORDER_ASSETS, *UPLOAD_ASSETS],
        asset_checks=[*ORDER_CHECKS, *UPLOAD_CHECKS],
        jobs=[sync_orders, upload_stocks, upload_prices],
        sensors=build_order_sensors(SETTINGS, sync_orders),
        schedules=build_upload_schedules(SETTINGS, upload_stocks, upload_prices),
        resources={"keybimp": resources.Keybimp()},
        executor=EXECUTOR,  # also the UI's "Materialize" and its backfills (the implicit asset job)
    )
    with warnings.catch_warnings():  # freshness policies applied once at the root are "preview" in 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return base.map_resolved_asset_specs(
            func=lambda spec: dg.apply_freshness_policy(spec, ORDERS_FRESHNESS),
            selection=dg.AssetSelection.assets(*ORDER_ASSETS),
        ).map_resolved_asset_specs(
            func=lambda spec: dg.apply_freshness_policy(spec, UPLOADS_FRESHNESS),
            selection=dg.AssetSelection.assets(*UPLOAD_ASSETS),
        )


defs = _build_definitions()
