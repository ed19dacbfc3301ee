"""The one place the Dagster definitions are assembled."""

from __future__ import annotations

import dagster as dg

from keybimp_pipeline.defs import resources
from keybimp_pipeline.defs.orders import build_order_assets
from keybimp_pipeline.defs.partitions import orders_partitions
from keybimp_pipeline.defs.sensors import build_order_sensors

SETTINGS = resources.load()
ORDERS_PARTITIONS = orders_partitions(SETTINGS)
ORDER_ASSETS = build_order_assets(ORDERS_PARTITIONS)
sync_orders = dg.define_asset_job(
    "sync_orders", selection=dg.AssetSelection.assets(*ORDER_ASSETS),
    description="KeyCRM orders of one day of one integration → Bimp customer orders.")

defs = dg.Definitions(
    assets=ORDER_ASSETS,
    jobs=[sync_orders],
    sensors=build_order_sensors(SETTINGS, sync_orders),
    resources={"keybimp": resources.Keybimp()},
)
