"""The one place the Dagster definitions are assembled."""

from __future__ import annotations

import dagster as dg

from keybimp_pipeline.defs import resources
from keybimp_pipeline.defs.orders import build_order_assets
from keybimp_pipeline.defs.partitions import integration_partitions, orders_partitions
from keybimp_pipeline.defs.sensors import build_order_sensors
from keybimp_pipeline.defs.uploads import build_upload_assets, build_upload_schedules

SETTINGS = resources.load()
ORDERS_PARTITIONS = orders_partitions(SETTINGS)
INTEGRATIONS = integration_partitions(SETTINGS)
ORDER_ASSETS = build_order_assets(ORDERS_PARTITIONS)
UPLOAD_ASSETS, UPLOAD_CHECKS = build_upload_assets(INTEGRATIONS)

sync_orders = dg.define_asset_job(
    "sync_orders", selection=dg.AssetSelection.assets(*ORDER_ASSETS),
    description="KeyCRM orders of one day of one integration → Bimp documents.")
upload_stocks = dg.define_asset_job(
    "upload_stocks", selection=dg.AssetSelection.assets("stock_upload_plan", "keycrm_stock_upload"),
    description="Bimp stocks → KeyCRM, behind the migration guard.")
upload_prices = dg.define_asset_job(
    "upload_prices", selection=dg.AssetSelection.assets("keycrm_price_upload"),
    description="Bimp prices → KeyCRM.")

defs = dg.Definitions(
    assets=[*ORDER_ASSETS, *UPLOAD_ASSETS],
    asset_checks=UPLOAD_CHECKS,
    jobs=[sync_orders, upload_stocks, upload_prices],
    sensors=build_order_sensors(SETTINGS, sync_orders),
    schedules=build_upload_schedules(SETTINGS, upload_stocks, upload_prices),
    resources={"keybimp": resources.Keybimp()},
)
