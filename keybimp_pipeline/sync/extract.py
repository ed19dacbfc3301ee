"""Extract: KeyCRM orders of one shop-local day into `raw_orders`, incrementally.

The first fetch of a day (or a full refresh) reads every order created that day.  Later fetches read
only the orders of that day updated since the day's high-water mark, starting an overlap window
earlier, and de-duplicate by id keeping the newest `updated_at`.  Ties at the cursor and pages that
shift between two requests (an order updated while we page) therefore never lose an order: the
moved order is updated after the fetch started, and the high-water mark never passes that moment, so
the next fetch sees it at the latest (however long the paging took).

KeyCRM's `created_between` filter matches `ordered_at`, so the partition day is the shop-local day of
`ordered_at` (falling back to `created_at` when a source leaves it empty).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import pandas as pd

from keybimp_pipeline.storage.db import Store, transaction
from keybimp_pipeline.sync.days import day_bounds, local_day

OVERLAP = timedelta(minutes=2)


class OrderSource(Protocol):
    def iter_orders(self, *, updated_between=None, created_between=None, include: str = ...): ...


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def order_moment(order: dict) -> datetime | None:
    return order.get("ordered_at") or order.get("created_at")


@dataclass
class ExtractResult:
    fetched: int
    stored: int
    high_water: datetime | None
    incremental: bool


def extract_day(store: Store, client: OrderSource, day: date, tz: str, *, full_refresh: bool = False,
                now: datetime | None = None) -> ExtractResult:
    start, end = day_bounds(day, tz)
    created = (start, end - timedelta(seconds=1))
    with store.connect() as con:
        row = con.execute("SELECT high_water FROM fetch_cursors WHERE integration=? AND day=?",
                          [store.integration, day]).fetchone()
    cursor = row[0] if row and not full_refresh else None
    started = now or datetime.now(UTC)
    if cursor is not None:
        far = started + timedelta(days=1)
        pages = client.iter_orders(created_between=created, updated_between=(cursor - OVERLAP, far))
    else:
        pages = client.iter_orders(created_between=created)

    newest: dict[int, dict] = {}
    fetched = 0
    for page in pages:
        for order in page:
            fetched += 1
            moment = order_moment(order)
            if moment is None or local_day(moment, tz) != day:
                continue  # defensive: the vendor's filter and our day disagree; the other day owns it
            seen = newest.get(order["id"])
            if seen is None or (order.get("updated_at") or start) >= (seen.get("updated_at") or start):
                newest[order["id"]] = order
    fetched_at = now or datetime.now(UTC)
    high_water = max((o["updated_at"] for o in newest.values() if o.get("updated_at")), default=None)
    if high_water is not None and high_water > started:
        # an order changed while we paged: pages already read may hold older versions of other orders
        # changed meanwhile, so the next read must start from when this one started, not from the newest
        # change seen (which may be minutes later on a long paging of a big day)
        high_water = started
    if cursor is not None and (high_water is None or cursor > high_water):
        high_water = cursor
    frame = pd.DataFrame({
        "integration": store.integration,
        "order_id": pd.Series(list(newest.keys()), dtype="int64"),
        "day": day,
        "updated_at": pd.Series([o.get("updated_at") for o in newest.values()], dtype="datetime64[ns, UTC]"),
        "fetched_at": fetched_at,
        "payload": [json.dumps(o, default=_json_default, ensure_ascii=False) for o in newest.values()],
    })
    with store.connect() as con, transaction(con):
        if full_refresh:
            con.execute("DELETE FROM raw_orders WHERE integration=? AND day=?", [store.integration, day])
        if len(frame):
            con.register("incoming", frame)
            # keep the stored copy when it is newer than what this (overlapping) read returned
            con.execute("""
                INSERT OR REPLACE INTO raw_orders
                SELECT i.integration, i.order_id, i.day, i.updated_at, i.fetched_at, i.payload::JSON
                FROM incoming i LEFT JOIN raw_orders r
                  ON r.integration = i.integration AND r.order_id = i.order_id
                WHERE r.order_id IS NULL OR r.updated_at IS NULL OR i.updated_at >= r.updated_at""")
            con.unregister("incoming")
        con.execute("INSERT OR REPLACE INTO fetch_cursors VALUES (?, ?, ?, ?)",
                    [store.integration, day, high_water, fetched_at])
    return ExtractResult(fetched=fetched, stored=len(frame), high_water=high_water, incremental=cursor is not None)
