"""A sensor per integration: KeyCRM orders changed since the cursor → runs of exactly their day partitions.

The cursor is the highest `updated_at` seen; each read starts an overlap window before it.  The run key
carries the high-water mark, so a later change to the same day makes a new run rather than being dropped
as a repeat (a sensor's cursor advances with the tick, not with the run's success; runs are idempotent).
A paused integration's sensor skips with the reason "paused" and sends no request (R-CONN-5).
"""


from datetime import UTC, datetime, timedelta

import dagster as dg

from keybimp_pipeline import control
from keybimp_pipeline.clients.keycrm import KeyCRMClient
from keybimp_pipeline.defs.partitions import key
from keybimp_pipeline.settings import Integration, IntegrationsFile
from keybimp_pipeline.sync.days import local_day
from keybimp_pipeline.sync.extract import OVERLAP, order_moment


def changed_partitions(client: KeyCRMClient, since: datetime, now: datetime, integration: Integration
                       ) -> tuple[dict[str, datetime], datetime | None]:
    """Days holding orders updated in [since − overlap, now], with each day's newest updated_at."""
    days: dict[str, datetime] = {}
    newest = None
    for page in client.iter_orders(updated_between=(since - OVERLAP, now), include="status"):
        for order in page:
            moment = order_moment(order)
            updated = order.get("updated_at")
            if moment is None or updated is None:
                continue
            day = local_day(moment, integration.timezone)
            if day < integration.start_date:
                continue  # R-MAIN-5: history before start_date only by an explicit backfill
            d = day.isoformat()
            days[d] = max(days.get(d, updated), updated)
            newest = updated if newest is None else max(newest, updated)
    return days, newest


def build_order_sensor(integration: Integration, job) -> dg.SensorDefinition:
    name = integration.name

    @dg.sensor(name=f"orders_{name.replace('-', '_')}", job=job,
               minimum_interval_seconds=integration.main.exchange_every_minutes * 60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description=f"Asks KeyCRM which orders of '{name}' changed and runs exactly their day partitions.")
    def orders_sensor(context: dg.SensorEvaluationContext):
        if control.is_paused(name):
            return dg.SkipReason(f"paused: integration '{name}' is paused (keybimp start {name})")
        now = datetime.now(UTC)
        if not context.cursor:
            # the first tick only marks where to start: enabling never silently imports history (R-MAIN-5)
            context.update_cursor(now.isoformat())
            return dg.SkipReason("cursor initialised; older orders need a backfill")
        since = datetime.fromisoformat(context.cursor)
        client = KeyCRMClient(integration.keycrm.url, integration.keycrm_api_key(),
                              requests_per_minute=integration.keycrm.requests_per_minute)
        with client:
            days, newest = changed_partitions(client, since, now, integration)
        if newest is not None:
            # never past the moment this read started: an order changed on a page already read, while a
            # later page showed a newer change, is then still inside the next read's window
            context.update_cursor(min(max(newest, since), now).isoformat())
        if not days:
            return dg.SkipReason("no order changed")
        return [dg.RunRequest(run_key=f"{name}|{d}|{hw.isoformat()}", partition_key=key(name, d),
                              tags={"keybimp/integration": name})
                for d, hw in sorted(days.items())]

    return orders_sensor


def build_order_sensors(settings: IntegrationsFile, job) -> list[dg.SensorDefinition]:
    return [build_order_sensor(i, job) for i in settings.integrations]
