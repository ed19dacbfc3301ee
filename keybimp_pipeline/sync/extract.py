"""Extract: KeyCRM orders of shop-local days into `raw_orders`, incrementally; a range of days in one listing.

The first fetch of a day (or a full refresh) reads every order created that day.  Later fetches read
only the orders of that day updated since the day's high-water mark, starting an overlap window
earlier, and de-duplicate by id keeping the newest `updated_at`.  Ties at the cursor and pages that
shift between two requests (an order updated while we page) therefore never lose an order: the
moved order is updated after the fetch started, and the high-water mark never passes that moment, so
the next fetch sees it at the latest (however long the paging took).

A range of days (a backfill, `keybimp sync --from --to`, a sensor run of several changed days) is read
with as few listings as the cursors allow, not one listing per day (a day of ~110 orders ends on a
partly filled page, so per-day listings cost ~20 % over the floor of one request per 50 orders):

* the days never fetched (or all of them on a full refresh): one `created_between` listing per run of
  consecutive days, from the first day's start to the last day's end;
* the days already fetched: one listing over their span, `created_between` the span and
  `updated_between` from the lowest of their cursors − overlap.  Each day's own cursor is at or after
  that lowest one, so every day's window is covered.

Orders are split into their shop-local day here (`local_day`); an order of a day outside the requested
ones (a gap in the span) is left to that day's own run.  The cursors stay per day and follow the same
rules as a one-day fetch.  A day's high-water mark is the vendor's clock when its listing answered the
first page (the `Date` KeyCRM sends, `OrderListing.served_at`): every change before that moment was
in the listing when it was read, every later one carries a later `updated_at`, so the next read resumes
there (less the overlap, which also covers the seconds the vendor took to answer) — for days without
an order too, so a re-run with nothing changed costs one request for the whole range.  Where the vendor
sends no `Date`, the mark is the newest `updated_at` of the day's orders seen, never past the moment
the read started (our clock).  Either way it never goes behind the day's previous cursor.  Pages are sorted by id, and
neither listing ever loses a member while it is read (`ordered_at` does not change, an update only
moves `updated_at` forward, new orders get higher ids): a change during the paging can only push an
order already read onto the next page (read twice, de-duplicated), never pull an unread one back onto
a page already read — the same as for one day, only the pages are fuller.  When a member does leave (an
order deleted, or its date edited out of the range), an unread order may slide onto a page already read.
A listing where that may have happened keeps its days' previous cursors, so the next read covers them
again: its `total` dropped between two pages, or it holds an order changed or created while it was paged
(`updated_at` after the listing's `served_at`, to the second; a newcomer can hide a departure in the
`total`).  A long range is written as it
is read, `CHUNK` orders at a time (the upsert keeps the newer copy of an order written twice, as the
de-duplication would); the cursors are written last, so a read cut short moves no cursor.

KeyCRM's `created_between` filter matches `ordered_at`, so the partition day is the shop-local day of
`ordered_at` (falling back to `created_at` when a source leaves it empty).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Protocol

import pandas as pd

from keybimp_pipeline.storage.db import Store, transaction
from keybimp_pipeline.sync.days import day_bounds, local_day

OVERLAP = timedelta(minutes=2)
CHUNK = 2_000  # orders read before they are written: a long range never sits in memory whole


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
    listings: int = 1
    by_day: dict[date, int] = field(default_factory=dict)  # orders stored per day


def _upsert(con, integration: str, orders: dict[int, dict], day_of: dict[int, date], fetched_at: datetime) -> None:
    """Insert or replace the orders in `raw_orders`, keeping a stored copy that is newer than the one read.

    Newer means read later (`fetched_at`, the start of the read, on this host's clock): a later read saw
    KeyCRM later, whatever `updated_at` says (KeyCRM's clock stepped back stamps a newer edit with an older
    time); a slower concurrent read that started earlier never overwrites a later one.  Within one read (an
    order written twice when a page shift repeats it) the newer `updated_at` wins."""
    if not orders:
        return
    ids = list(orders)
    frame = pd.DataFrame({
        "integration": integration,
        "order_id": pd.Series(ids, dtype="int64"),
        "day": pd.Series([day_of[i] for i in ids], dtype="object"),
        "updated_at": pd.Series([orders[i].get("updated_at") for i in ids], dtype="datetime64[ns, UTC]"),
        "fetched_at": fetched_at,
        "payload": [json.dumps(orders[i], default=_json_default, ensure_ascii=False) for i in ids],
    })
    con.register("incoming", frame)
    con.execute("""
        INSERT OR REPLACE INTO raw_orders
        SELECT i.integration, i.order_id, i.day::DATE, i.updated_at, i.fetched_at, i.payload::JSON
        FROM incoming i LEFT JOIN raw_orders r
          ON r.integration = i.integration AND r.order_id = i.order_id
        WHERE r.order_id IS NULL OR r.fetched_at IS NULL OR i.fetched_at > r.fetched_at
           OR (i.fetched_at = r.fetched_at AND (r.updated_at IS NULL OR i.updated_at >= r.updated_at))""")
    con.unregister("incoming")


def consecutive_runs(days: Iterable[date]) -> list[list[date]]:
    """Sorted distinct days cut into runs of consecutive days."""
    runs: list[list[date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _created(first: date, last: date, tz: str) -> tuple[datetime, datetime]:
    return day_bounds(first, tz)[0], day_bounds(last, tz)[1] - timedelta(seconds=1)


def extract_day(store: Store, client: OrderSource, day: date, tz: str, *, full_refresh: bool = False,
                now: datetime | None = None) -> ExtractResult:
    """One day: the listing and the cursor rules of `extract_days` for a range of one."""
    return extract_days(store, client, [day], tz, full_refresh=full_refresh, now=now)


def extract_days(store: Store, client: OrderSource, days: Sequence[date], tz: str, *, full_refresh: bool = False,
                 now: datetime | None = None) -> ExtractResult:
    wanted = sorted(set(days))
    if not wanted:
        return ExtractResult(fetched=0, stored=0, high_water=None, incremental=False, listings=0)
    cursors: dict[date, datetime] = {}
    if not full_refresh:
        with store.connect() as con:
            rows = con.execute("SELECT day, high_water FROM fetch_cursors WHERE integration=? "
                               "AND day BETWEEN ? AND ? AND high_water IS NOT NULL",
                               [store.integration, wanted[0], wanted[-1]]).fetchall()
        cursors = {d: hw for d, hw in rows if d in set(wanted)}
    started = now or datetime.now(UTC)
    far = started + timedelta(days=1)

    # each listing with the days it reads; a listing is requested only when its turn comes
    listings: list[tuple[list[date], Callable[[], Iterator[list[dict]]]]] = [
        (run, partial(client.iter_orders, created_between=_created(run[0], run[-1], tz)))
        for run in consecutive_runs(d for d in wanted if d not in cursors)]
    if cursors:
        again = sorted(cursors)
        listings.append((again, partial(client.iter_orders, created_between=_created(again[0], again[-1], tz),
                                        updated_between=(min(cursors.values()) - OVERLAP, far))))

    wanted_set = set(wanted)
    newest: dict[int, dict] = {}  # the orders read and not yet written (at most CHUNK)
    day_of: dict[int, date] = {}  # every order stored by this read, with its day
    marks: dict[date, datetime] = {}  # per day, the newest updated_at read
    fetched = 0
    fetched_at = now or datetime.now(UTC)
    flushes = 0
    floor = datetime.min.replace(tzinfo=UTC)

    def flush(cursor_rows: pd.DataFrame | None = None) -> None:
        nonlocal flushes
        with store.connect() as con, transaction(con):
            if full_refresh and flushes == 0:
                # the days are read anew: their old rows go, and so do their cursors until this read is complete
                # (a read cut short then leaves the next one a full read, never an incremental one over a gap)
                for table in ("raw_orders", "fetch_cursors"):
                    con.execute(f"DELETE FROM {table} WHERE integration=? AND day IN (SELECT UNNEST(?::DATE[]))",
                                [store.integration, wanted])
            _upsert(con, store.integration, newest, day_of, fetched_at)
            if cursor_rows is not None:
                con.register("cursors", cursor_rows)
                con.execute("INSERT OR REPLACE INTO fetch_cursors "
                            "SELECT integration, day::DATE, high_water, fetched_at FROM cursors")
                con.unregister("cursors")
        newest.clear()
        flushes += 1

    served: dict[date, datetime] = {}  # per day, the vendor's clock when its listing answered
    shifted: set[date] = set()  # days of a listing whose members may have moved while it was paged
    for listing_days, listing in listings:
        pages = listing()
        for page in pages:
            started_paging = getattr(pages, "served_at", None)
            for order in page:
                fetched += 1
                moment = order_moment(order)
                day = local_day(moment, tz) if moment is not None else None
                if day not in wanted_set:
                    continue  # another day owns it (a gap in the span, or the vendor's filter disagrees)
                seen = newest.get(order["id"])
                updated = order.get("updated_at")
                if seen is None or (updated or floor) >= (seen.get("updated_at") or floor):
                    newest[order["id"]] = order
                    day_of[order["id"]] = day
                if updated is not None and (day not in marks or updated > marks[day]):
                    marks[day] = updated
                if started_paging is not None and updated is not None and updated > started_paging:
                    shifted.update(listing_days)  # changed or created while this listing was paged
            if len(newest) >= CHUNK:
                # a long range is written as it is read: memory stays bounded.  Writing an order twice (a page
                # shift repeats it in the next chunk) keeps the newer copy, exactly as de-duplicating here would
                flush()
        served_at = getattr(pages, "served_at", None)
        if served_at is not None:
            served.update(dict.fromkeys(listing_days, served_at))
        if getattr(pages, "shrank", False):
            shifted.update(listing_days)

    high_waters: dict[date, datetime | None] = {}
    for day in wanted:
        if day in shifted:
            # an order may have slid unseen onto a page already read: the day keeps its previous cursor (none
            # on a first read), so the next read covers that order again
            high_waters[day] = cursors.get(day)
            continue
        mark = served.get(day) or marks.get(day)
        if day not in served and mark is not None and mark > started:
            # an order changed while we paged: pages already read may hold older versions of other orders
            # changed meanwhile, so the next read must start from when this one started, not from the newest
            # change seen (which may be minutes later on a long paging of a big range)
            mark = started
        cursor = cursors.get(day)
        if cursor is not None and (mark is None or cursor > mark):
            mark = cursor
        high_waters[day] = mark
    flush(pd.DataFrame({
        "integration": store.integration, "day": pd.Series(wanted, dtype="object"),
        "high_water": pd.Series([high_waters[d] for d in wanted], dtype="datetime64[ns, UTC]"),
        "fetched_at": fetched_at}))
    stored_per_day = Counter(day_of.values())
    by_day = {d: stored_per_day.get(d, 0) for d in wanted}
    high_water = max((m for m in high_waters.values() if m is not None), default=None)
    return ExtractResult(fetched=fetched, stored=len(day_of), high_water=high_water, incremental=bool(cursors),
                         listings=len(listings), by_day=by_day)
