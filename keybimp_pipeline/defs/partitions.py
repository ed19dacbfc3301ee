"""Order assets are partitioned by day (the order's shop-local creation day) × integration (R-ORCH-2)."""

from __future__ import annotations

from datetime import date

import dagster as dg

from keybimp_pipeline.settings import IntegrationsFile


def orders_partitions(settings: IntegrationsFile) -> dg.MultiPartitionsDefinition:
    start = min(i.start_date for i in settings.integrations)
    zones = {i.timezone for i in settings.integrations}
    tz = zones.pop() if len(zones) == 1 else "UTC"  # each integration's own day bounds come from its zone
    return dg.MultiPartitionsDefinition({
        "date": dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone=tz, end_offset=1),
        "integration": dg.StaticPartitionsDefinition(settings.names()),
    })


def integration_partitions(settings: IntegrationsFile) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(settings.names())


def split(context: dg.AssetExecutionContext) -> tuple[str, date]:
    pk = context.partition_key
    if isinstance(pk, dg.MultiPartitionKey):
        keys = pk.keys_by_dimension
        return keys["integration"], date.fromisoformat(keys["date"])
    day, integration = str(pk).split("|")  # dimensions are ordered alphabetically: date|integration
    return integration, date.fromisoformat(day)


def key(integration: str, day: date | str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": str(day), "integration": integration})
