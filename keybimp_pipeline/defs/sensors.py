"""A sensor per integration: KeyCRM orders changed since the cursor → runs of exactly their day partitions.

The cursor is the highest `updated_at` seen; each read starts an overlap window before it.  Consecutive
changed days go in one run over their range (one listing, the steps' fixed costs paid once, one run to
launch instead of one per day); days apart go in runs of their own.  The run key carries each day's
high-water mark, so a later change to a day makes a new run rather than being dropped as a repeat (a
sensor's cursor advances with the tick, not with the run's success; runs are idempotent).  A paused
integration's sensor skips with the reason "paused" and sends no request (R-CONN-5).
"""


from datetime import UTC, date, datetime

import dagster as dg

from keybimp_pipeline import control
from keybimp_pipeline.clients.keycrm import KeyCRMClient
from keybimp_pipeline.defs.partitions import key, range_tags
from keybimp_pipeline.settings import Integration, IntegrationsFile
from keybimp_pipeline.sync.days import local_day
from keybimp_pipeline.sync.extract import OVERLAP, consecutive_runs, order_moment


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


def run_requests(name: str, days: dict[str, datetime]) -> list[dg.RunRequest]:
    """A run per stretch of consecutive changed days: one partition, or the range first..last."""
    requests = []
    for run in consecutive_runs(date.fromisoformat(d) for d in days):
        marks = [days[d.isoformat()].isoformat() for d in run]
        tags = {"keybimp/integration": name}
        if len(run) == 1:
            requests.append(dg.RunRequest(run_key=f"{name}|{run[0]}|{marks[0]}", partition_key=key(name, run[0]),
                                          tags=tags))
        else:
            requests.append(dg.RunRequest(run_key=f"{name}|{run[0]}..{run[-1]}|{','.join(marks)}",
                                          tags={**tags, **range_tags(name, run[0], run[-1])}))
    return requests


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
        return run_requests(name, days)

    return orders_sensor


def build_order_sensors(settings: IntegrationsFile, job) -> list[dg.SensorDefinition]:
    return [build_order_sensor(i, job) for i in settings.integrations]
