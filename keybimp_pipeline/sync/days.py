"""Shop-local calendar days: where a partition's day begins and ends in UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def day_bounds(day: date | str, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of the shop-local day in UTC.  Days of 23 and 25 hours come out right (DST)."""
    if isinstance(day, str):
        day = date.fromisoformat(day)
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def local_day(moment: datetime, tz: str) -> date:
    return moment.astimezone(ZoneInfo(tz)).date()
