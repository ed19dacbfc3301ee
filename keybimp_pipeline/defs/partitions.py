"""Order assets are partitioned by day (the order's shop-local creation day) × integration (R-ORCH-2).

A run covers one partition (the sensor, a re-run from the UI) or a range of them (a backfill: the order
assets have a single-run backfill policy; `keybimp sync --from --to`).  `days_by_integration` reads either
from the run's context as {integration: its days, sorted}.  A backfill of several integrations' days may
come as one run holding the same day of each integration (that is how Dagster cuts a two-dimensional
selection into ranges), hence the grouping.
"""

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


def _parts(pk: object) -> tuple[str, date]:
    if isinstance(pk, dg.MultiPartitionKey):
        keys = pk.keys_by_dimension
        return keys["integration"], date.fromisoformat(keys["date"])
    day, integration = str(pk).split("|")  # dimensions are ordered alphabetically: date|integration
    return integration, date.fromisoformat(day)


def days_by_integration(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext
                        ) -> dict[str, list[date]]:
    """The run's partitions as {integration: sorted days}: one day for a one-partition run, the range for a
    ranged one."""
    op = context.op_execution_context if isinstance(context, dg.AssetCheckExecutionContext) else context
    keys = [op.partition_key] if op.has_partition_key else op.partition_keys
    out: dict[str, list[date]] = {}
    for pk in keys:
        name, day = _parts(pk)
        out.setdefault(name, []).append(day)
    return {name: sorted(set(days)) for name, days in sorted(out.items())}


def split(context: dg.AssetExecutionContext) -> tuple[str, date]:
    """The one partition of a one-partition run."""
    return _parts(context.partition_key)


def key(integration: str, day: date | str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": str(day), "integration": integration})


def range_tags(integration: str, first: date | str, last: date | str) -> dict[str, str]:
    """Run tags of one run over the partitions first..last of one integration (what a single-run backfill
    of that range gets): Dagster records a materialisation of every partition in the range.  Such a run
    has no `dagster/partition/integration` tag; the `keybimp/integration` tag the sensor and the command
    line add keeps it under the instance's one-run-per-integration limit (dagster.yaml)."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    return {ASSET_PARTITION_RANGE_START_TAG: str(key(integration, first)),
            ASSET_PARTITION_RANGE_END_TAG: str(key(integration, last))}
