"""Incremental extract against the KeyCRM emulator (R-ORCH-2, R-ORCH-3) and quarantine (R-ORCH-4/5).

The extract tests call `extract_day` alone: the rule is what lands in `raw_orders`, and no Bimp call is
needed to see it.  KeyCRM pages hold 50 orders, sorted by id.
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from keybimp_pipeline.emulators.demo_shop import DEMO_KEYCRM_KEY
from keybimp_pipeline.sync.extract import extract_day
from keybimp_pipeline_tests.pipeline.orders_world import DAY, IN_PROGRESS, Shop, at

THE_DAY = date.fromisoformat(DAY)


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch) -> Shop:
    """60 orders of the day (two pages), all last updated in the same second — KeyCRM's clock stands there."""
    shop = Shop(emulators, tmp_path, monkeypatch)
    w = shop.world
    w.offer(1, "CH-1", "Стілець синій", 500)
    w.item("Стілець синій", "CH-1", stock=1000)
    w.buyer(1, "Анна Коваль", phone="0671234567")
    for i in range(1, 61):
        w.order(i, 1, [(1, 1, 500)], placed=at(7, i - 1), updated_at=at(9))
    shop.load()
    # KeyCRM's clock (which stamps updated_at and answers with its Date) at the moment of the last change: a
    # cursor taken from it starts the next read where the test's orders are, not a month after them
    shop.keycrm_server.post("/__admin/clock", {"now": at(9)})
    return shop


def _extract(shop: Shop, client=None, **kw):
    with shop.h.keycrm() as k:
        return extract_day(shop.h.store, client(k) if client else k, THE_DAY, "Europe/Kyiv", **kw)


def _raw_status(shop: Shop) -> dict[int, int]:
    frame = shop.h.store.query("SELECT order_id, payload FROM raw_orders WHERE day=?", [THE_DAY])
    return {int(i): json.loads(p)["status_id"] for i, p in zip(frame["order_id"], frame["payload"], strict=True)}


def _patch(shop: Shop, order_id: int, body: dict) -> None:
    shop.keycrm_server.admin.patch(f"/__admin/orders/{order_id}", json=body).raise_for_status()


def test_R_ORCH_2_equal_updated_at_across_a_page_boundary_and_at_the_cursor(shop: Shop):
    first = _extract(shop)
    assert (first.stored, first.incremental) == (60, False)  # orders 50 and 51 share updated_at: both in

    shop.keycrm_server.post("/__admin/clock", {"now": at(12)})
    _patch(shop, 50, {"status_id": IN_PROGRESS})
    second = _extract(shop)
    assert second.incremental and second.high_water.isoformat().startswith(f"{DAY}T12:00:00")
    _patch(shop, 51, {"status_id": IN_PROGRESS})  # same second as the cursor: must not be lost
    third = _extract(shop)

    statuses = _raw_status(shop)
    assert len(statuses) == 60
    assert statuses[50] == statuses[51] == IN_PROGRESS
    assert third.incremental and third.fetched >= 2


class _Relay:
    """A KeyCRM listing relayed page by page, calling `between_pages(n)` when the reader asks for the page after
    page n (the listing's `served_at` and `shrank` pass through, as the pipeline reads them)."""

    def __init__(self, listing, between_pages) -> None:
        self.listing, self.between_pages, self.pages = listing, between_pages, 0

    @property
    def served_at(self):
        return self.listing.served_at

    @property
    def shrank(self):
        return self.listing.shrank

    def __iter__(self):
        return self

    def __next__(self):
        if self.pages:
            self.between_pages(self.pages - 1)
        page = next(self.listing)
        self.pages += 1
        return page


class _ShopChangesBetweenPages:
    """A KeyCRM client whose listings are relayed page by page, the shop changing by `between_pages(n)`."""

    def __init__(self, client, shop: Shop) -> None:
        self.client, self.shop = client, shop

    def iter_orders(self, **kw):
        return _Relay(self.client.iter_orders(**kw), self.between_pages)

    def between_pages(self, n: int) -> None:
        raise NotImplementedError


class _ChangesWhilePaging(_ShopChangesBetweenPages):
    """A KeyCRM client whose shop changes between its first and second page (a long paging)."""

    def between_pages(self, n: int) -> None:
        if n == 0:
            clock = self.shop.keycrm_server
            clock.post("/__admin/clock", {"advance_seconds": 300})
            _patch(self.shop, 3, {"status_id": IN_PROGRESS})  # on the page already read
            clock.post("/__admin/clock", {"advance_seconds": 300})
            _patch(self.shop, 55, {"status_id": IN_PROGRESS})  # on the page still to read


def test_R_ORCH_3_an_order_updated_while_paging_arrives_at_the_latest_on_the_next_sync(shop: Shop):
    _extract(shop)  # first fetch: cursor at KeyCRM's 09:00 on the day, so the next read holds all 60 (two pages)
    changing = _extract(shop, client=lambda k: _ChangesWhilePaging(k, shop))
    assert changing.incremental and changing.fetched == 60
    assert _raw_status(shop)[55] == IN_PROGRESS  # read after its change
    assert _raw_status(shop)[3] != IN_PROGRESS  # page 1 was read before it changed
    # the cursor stays where the read began (orders changed while it paged), not at the newest change seen
    # (order 55 at 09:10), which would start the next read after order 3's change at 09:05
    assert changing.high_water.isoformat().startswith(f"{DAY}T09:00:00")

    _extract(shop)  # the next sync, ten minutes of KeyCRM time later than order 3's change

    assert _raw_status(shop)[3] == IN_PROGRESS


def test_R_ORCH_2_full_refresh_rereads_the_whole_day(shop: Shop):
    _extract(shop)
    # an order the cursor has passed (e.g. restored from a KeyCRM backup with its old updated_at)
    late = shop.world.order(61, 1, [(1, 1, 500)], placed=at(6), updated_at=at(6, 30))
    shop.world.keycrm["orders"] = [o for o in shop.world.keycrm["orders"] if o["id"] != 10] + [late]
    shop.keycrm_server.put_state(shop.world.keycrm)

    incremental = _extract(shop)
    assert incremental.incremental and 61 not in _raw_status(shop)
    refreshed = _extract(shop, full_refresh=True)

    assert not refreshed.incremental
    ids = set(_raw_status(shop))
    assert 61 in ids and 10 not in ids and len(ids) == 60  # exactly the day as KeyCRM holds it now


# ---- quarantine -----------------------------------------------------------------------------------

@pytest.fixture
def small_shop(emulators, tmp_path, monkeypatch) -> Shop:
    shop = Shop(emulators, tmp_path, monkeypatch)
    w = shop.world
    w.offer(1, "CH-1", "Стілець синій", 500)
    w.item("Стілець синій", "CH-1", stock=100)
    w.buyer(1, "Анна Коваль", phone="0671234567")
    w.order(1, 1, [(1, 1, 500)])
    w.order(2, 1, [(1, -1, 500)])  # a negative quantity
    w.order(3, 1, [(1, 2, 500)])
    shop.load()
    return shop


def test_R_ORCH_4_negative_quantity_or_missing_created_time_is_quarantined_and_the_day_goes_on(small_shop):
    shop = small_shop
    shop.sync()
    # a source that sends no created time at all (KeyCRM's list filter cannot return it; it reaches the
    # raw table only through an older fetch, so put it there directly)
    payload = json.loads(shop.h.store.query("SELECT payload FROM raw_orders WHERE order_id=3")["payload"][0])
    payload.update(id=4, ordered_at=None, created_at=None)
    with shop.h.store.connect() as con:
        con.execute("INSERT INTO raw_orders SELECT integration, 4, day, updated_at, fetched_at, ?::JSON "
                    "FROM raw_orders WHERE order_id=3", [json.dumps(payload)])
    shop.sync()

    quarantine = shop.h.store.query("SELECT order_id, entity, reason FROM quarantine ORDER BY order_id")
    reasons = dict(zip(quarantine["order_id"], quarantine["reason"], strict=True))
    assert set(reasons) == {2, 4}
    assert "quantity" in reasons[2] and "-1" in reasons[2]
    assert "created_at" in reasons[4]
    assert sorted(shop.orders()) == [1, 3]  # the rest of the day went on
    assert shop.issues() == {2: {"order_invalid"}, 4: {"order_invalid"}}  # R-ORCH-5: each has its issue
    assert "quantity" in shop.issue_detail(2, "order_invalid")


# ---- a range of days in one listing (backfills, `keybimp sync --from --to`, sensor runs) -------------

RANGE = [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]


@pytest.fixture
def range_shop(emulators, tmp_path, monkeypatch) -> Shop:
    """30 orders on each of three days (90: two pages as one listing, three as a listing per day), plus
    two orders either side of a shop-local midnight (Kyiv is UTC+2 in November)."""
    shop = Shop(emulators, tmp_path, monkeypatch)
    w = shop.world
    w.offer(1, "CH-1", "Стілець синій", 500)
    w.item("Стілець синій", "CH-1", stock=1000)
    w.buyer(1, "Анна Коваль", phone="0671234567")
    n = 0
    for day in RANGE:
        for i in range(30):
            n += 1
            w.order(n, 1, [(1, 1, 500)], placed=at(8, i, day=day.isoformat()), updated_at=at(9, day=day.isoformat()))
    w.order(91, 1, [(1, 1, 500)], placed=at(21, 30, day="2026-11-01"))  # 23:30 in Kyiv: Nov 1
    w.order(92, 1, [(1, 1, 500)], placed=at(22, 30, day="2026-11-01"))  # 00:30 in Kyiv: Nov 2
    shop.load()
    # KeyCRM's clock (which stamps updated_at and answers with its Date) an hour after the last change
    shop.keycrm_server.post("/__admin/clock", {"now": at(10, day="2026-11-03")})
    return shop


def _extract_range(shop: Shop, days=RANGE, client=None, **kw):
    from keybimp_pipeline.sync.extract import extract_days

    with shop.h.keycrm() as k:
        result = extract_days(shop.h.store, client(k) if client else k, days, "Europe/Kyiv", **kw)
        return result, k.request_count


def _stored_days(shop: Shop) -> dict[int, str]:
    frame = shop.h.store.query("SELECT order_id, day FROM raw_orders")
    return {int(i): str(d)[:10] for i, d in zip(frame["order_id"], frame["day"], strict=True)}


def _cursors(shop: Shop) -> dict[str, str | None]:
    frame = shop.h.store.query("SELECT day, high_water FROM fetch_cursors ORDER BY day")
    return {str(d)[:10]: (None if hw is None or str(hw) == "NaT" else hw.isoformat())
            for d, hw in zip(frame["day"], frame["high_water"], strict=True)}


def test_R_ORCH_2_a_range_is_one_listing_split_into_shop_local_days(range_shop: Shop):
    result, requests = _extract_range(range_shop)

    assert requests == 2  # 92 orders at 50 a page, one listing; a listing per day would take 3
    assert (result.stored, result.listings, result.incremental) == (92, 1, False)
    days = _stored_days(range_shop)
    assert days[91] == "2026-11-01" and days[92] == "2026-11-02"  # split by the shop's day, not UTC's
    assert result.by_day == {RANGE[0]: 31, RANGE[1]: 31, RANGE[2]: 30}
    assert all(days[i] == RANGE[(i - 1) // 30].isoformat() for i in range(1, 91))
    assert set(_cursors(range_shop)) == {d.isoformat() for d in RANGE}  # a cursor per day, as one-day reads keep


@pytest.mark.parametrize("chunk", [2_000, 7])
def test_R_ORCH_2_a_range_reads_the_same_orders_and_cursors_as_day_by_day(range_shop: Shop, chunk, monkeypatch):
    monkeypatch.setattr("keybimp_pipeline.sync.extract.CHUNK", chunk)  # 7: written in chunks as it is read
    _extract_range(range_shop)
    by_range, cursors = _stored_days(range_shop), _cursors(range_shop)
    with range_shop.h.store.connect() as con:
        con.execute("DELETE FROM raw_orders")
        con.execute("DELETE FROM fetch_cursors")
    for day in RANGE:
        with range_shop.h.keycrm() as k:
            extract_day(range_shop.h.store, k, day, "Europe/Kyiv")
    assert _stored_days(range_shop) == by_range
    assert _cursors(range_shop) == cursors


def test_R_ORCH_2_a_range_refetch_is_one_incremental_listing_from_the_lowest_cursor(range_shop: Shop):
    _extract_range(range_shop)
    before = _cursors(range_shop)
    range_shop.keycrm_server.post("/__admin/clock", {"now": at(12, day="2026-11-03")})
    _patch(range_shop, 5, {"status_id": IN_PROGRESS})   # Nov 1
    _patch(range_shop, 65, {"status_id": IN_PROGRESS})  # Nov 3

    result, requests = _extract_range(range_shop)

    # one listing from the days' cursor (KeyCRM's 10:00 on Nov 3, when the first read was answered) − overlap:
    # only the two orders changed since
    assert all(c.startswith("2026-11-03T10:00:00") for c in before.values())
    assert (requests, result.listings, result.incremental, result.fetched) == (1, 1, True, 2)
    statuses = _raw_status_all(range_shop)
    assert statuses[5] == statuses[65] == IN_PROGRESS and len(statuses) == 92
    # every day the listing read resumes from KeyCRM's clock at this read, Nov 2 (nothing changed) too
    assert all(c.startswith("2026-11-03T12:00:00") for c in _cursors(range_shop).values())


def test_R_ORCH_2_a_rerun_with_nothing_changed_is_one_request_for_the_whole_range(range_shop: Shop):
    days = [date(2026, 10, 30), date(2026, 10, 31), *RANGE, date(2026, 11, 4)]  # empty days on either side
    first, _ = _extract_range(range_shop, days=days)
    assert first.by_day[days[0]] == first.by_day[days[-1]] == 0 and first.stored == 92
    assert set(_cursors(range_shop)) == {d.isoformat() for d in days}  # a day read empty has its cursor too

    again, requests = _extract_range(range_shop, days=days)

    assert (requests, again.listings, again.fetched) == (1, 1, 0)


def test_R_ORCH_2_an_order_placed_later_on_a_day_read_empty_arrives(range_shop: Shop):
    empty = date(2026, 10, 31)
    first, _ = _extract_range(range_shop, days=[empty, *RANGE])
    assert first.by_day[empty] == 0
    # a minute later on KeyCRM's clock, an order is entered for Oct 31 (a phone order written up late)
    range_shop.keycrm_server.post("/__admin/clock", {"now": at(10, 1, day="2026-11-03")})
    range_shop.world.order(93, 1, [(1, 1, 500)], placed=at(9, day="2026-10-31"),
                           updated_at=at(10, 1, day="2026-11-03"))
    range_shop.keycrm_server.put_state(range_shop.world.keycrm)

    again, requests = _extract_range(range_shop, days=[empty, *RANGE])

    assert (requests, again.by_day[empty]) == (1, 1) and _stored_days(range_shop)[93] == "2026-10-31"


def test_R_ORCH_2_without_a_Date_from_KeyCRM_the_cursor_is_the_newest_change_seen(range_shop: Shop):
    _extract_range(range_shop)
    range_shop.keycrm_server.post("/__admin/clock", {"now": at(12, day="2026-11-03")})
    _patch(range_shop, 65, {"status_id": IN_PROGRESS})  # Nov 3
    range_shop.keycrm_server.post("/__admin/clock", {"now": at(12, 30, day="2026-11-03")})

    _extract_range(range_shop, client=_WithoutDate)

    after = _cursors(range_shop)
    assert after["2026-11-03"].startswith("2026-11-03T12:00:00")  # order 65's change, not KeyCRM's 12:30
    assert after["2026-11-02"].startswith("2026-11-03T10:00:00")  # nothing seen: the cursor stays


class _WithoutDate:
    """A KeyCRM that sends no `Date` (the listing's pages only)."""

    def __init__(self, client) -> None:
        self.client = client

    def iter_orders(self, **kw):
        yield from self.client.iter_orders(**kw)


def test_R_ORCH_2_equal_updated_at_across_a_page_boundary_and_at_the_cursor_in_a_range(range_shop: Shop):
    _extract_range(range_shop)
    range_shop.keycrm_server.post("/__admin/clock", {"now": at(12, day="2026-11-03")})
    _patch(range_shop, 50, {"status_id": IN_PROGRESS})  # the last order of the first page
    _extract_range(range_shop)
    _patch(range_shop, 51, {"status_id": IN_PROGRESS})  # same second as Nov 2's new cursor: must not be lost
    _patch(range_shop, 2, {"status_id": IN_PROGRESS})   # same second, another day
    third, _ = _extract_range(range_shop)

    statuses = _raw_status_all(range_shop)
    assert statuses[50] == statuses[51] == statuses[2] == IN_PROGRESS
    assert third.incremental and third.fetched >= 3


class _RangeChangesWhilePaging(_ShopChangesBetweenPages):
    """Between the first and the second page of a range listing: an order on the page already read changes,
    one on the page still to read changes, and an order outside the listing's window changes (it joins the
    listing ahead of the position read so far: the pages shift)."""

    def between_pages(self, n: int) -> None:
        if n == 0:
            clock = self.shop.keycrm_server
            clock.post("/__admin/clock", {"advance_seconds": 300})
            _patch(self.shop, 35, {"status_id": IN_PROGRESS})  # Nov 2, on the page already read
            _patch(self.shop, 3, {"status_id": IN_PROGRESS})   # Nov 1, not in the window: joins it
            clock.post("/__admin/clock", {"advance_seconds": 300})
            _patch(self.shop, 85, {"status_id": IN_PROGRESS})  # Nov 3, on the page still to read


@pytest.mark.parametrize("chunk", [2_000, 7])
def test_R_ORCH_3_an_order_updated_while_paging_a_range_arrives_at_the_latest_on_the_next_sync(range_shop: Shop,
                                                                                               chunk, monkeypatch):
    monkeypatch.setattr("keybimp_pipeline.sync.extract.CHUNK", chunk)
    _extract_range(range_shop)
    # as if the days were last read at 21:30 on Nov 1 by KeyCRM's clock, so the next read's window holds two pages
    with range_shop.h.store.connect() as con:
        con.execute("UPDATE fetch_cursors SET high_water = ?::TIMESTAMPTZ", [at(21, 30, day="2026-11-01")])
    range_shop.keycrm_server.post("/__admin/clock", {"now": at(12, day="2026-11-03")})
    # the window starts at the days' cursor (21:30 on Nov 1) − overlap: 62 orders, two pages (31..80, 81..92)
    changing, _ = _extract_range(range_shop, client=lambda k: _RangeChangesWhilePaging(k, range_shop))
    assert changing.incremental and changing.fetched >= 62
    statuses = _raw_status_all(range_shop)
    assert statuses[85] == IN_PROGRESS  # read after its change
    assert statuses[35] != IN_PROGRESS and statuses[3] != IN_PROGRESS  # changed behind the reader
    assert len(statuses) == 92  # the shift repeated an order on page 2, it hid none

    _extract_range(range_shop)  # the next sync, ten minutes of KeyCRM time later than the changes

    statuses = _raw_status_all(range_shop)
    assert statuses[35] == statuses[3] == statuses[85] == IN_PROGRESS and len(statuses) == 92


def test_R_ORCH_2_days_with_a_gap_and_days_with_and_without_cursors(range_shop: Shop):
    result, requests = _extract_range(range_shop, days=[RANGE[0], RANGE[2]])
    assert (result.listings, requests) == (2, 2)  # two runs of consecutive days: a listing each
    assert set(_stored_days(range_shop).values()) == {"2026-11-01", "2026-11-03"}  # Nov 2 left to its own run
    assert set(_cursors(range_shop)) == {"2026-11-01", "2026-11-03"}

    result, _ = _extract_range(range_shop)  # Nov 2 never read (a full listing), Nov 1 and 3 incremental
    assert result.listings == 2 and result.incremental
    assert result.by_day[RANGE[1]] == 31 and len(_stored_days(range_shop)) == 92


def test_R_ORCH_2_full_refresh_of_a_range_rereads_every_day(range_shop: Shop):
    _extract_range(range_shop)
    range_shop.world.keycrm["orders"] = [o for o in range_shop.world.keycrm["orders"] if o["id"] not in (10, 40)]
    range_shop.keycrm_server.put_state(range_shop.world.keycrm)

    refreshed, requests = _extract_range(range_shop, full_refresh=True)

    assert not refreshed.incremental and (refreshed.listings, requests) == (1, 2)
    ids = set(_stored_days(range_shop))
    assert 10 not in ids and 40 not in ids and len(ids) == 90  # exactly the days as KeyCRM holds them now


def _raw_status_all(shop: Shop) -> dict[int, int]:
    frame = shop.h.store.query("SELECT order_id, payload FROM raw_orders")
    return {int(i): json.loads(p)["status_id"] for i, p in zip(frame["order_id"], frame["payload"], strict=True)}


# ---- KeyCRM's clock stepping back; an order leaving a listing while it is paged --------------------------------


def test_R_ORCH_2_a_newer_edit_stamped_earlier_by_a_clock_stepped_back_replaces_the_stored_copy(shop: Shop):
    """KeyCRM's clock steps back a minute (an NTP correction) and an order is edited: its `updated_at` is older
    than the stored copy's, but the read that fetches it is later, so it is the fresher view and it wins."""
    _extract(shop)
    shop.keycrm_server.post("/__admin/clock", {"now": at(8, 59)})  # a minute behind the last read's 09:00
    _patch(shop, 5, {"status_id": IN_PROGRESS})

    again = _extract(shop)

    assert again.fetched >= 1 and _raw_status(shop)[5] == IN_PROGRESS


class _OrderLeavesWhilePaging(_ShopChangesBetweenPages):
    """Between the first and the second page, order 10 (page 1, already read) is moved to another day in
    KeyCRM: the listing shrinks, and order 51 slides from page 2 onto page 1, unseen."""

    def between_pages(self, n: int) -> None:
        if n == 0:
            _patch(self.shop, 10, {"ordered_at": at(9, day="2026-11-20"), "created_at": at(9, day="2026-11-20")})


def test_R_ORCH_3_an_order_that_slid_onto_a_page_already_read_arrives_on_the_next_read(shop: Shop):
    # read an hour after the orders' last change: order 51 (09:00) is older than that read's clock, so only a
    # read that does not start from it finds the order again
    shop.keycrm_server.post("/__admin/clock", {"now": at(10)})
    first = _extract(shop, client=lambda k: _OrderLeavesWhilePaging(k, shop))
    assert 51 not in _raw_status(shop) and first.fetched == 59  # the shift hid it from this read
    assert first.high_water is None  # so the day keeps no cursor: the next read is a full one

    again = _extract(shop)

    assert 51 in _raw_status(shop) and not again.incremental


class _OrderLeavesAndAnotherArrivesWhilePaging(_ShopChangesBetweenPages):
    """Between the first and the second page a minute passes: order 10 (page 1) is moved to another day and a
    new order of the day is entered in KeyCRM, so the listing's `total` stays 60 while order 51 slides onto
    page 1, unseen."""

    def between_pages(self, n: int) -> None:
        if n == 0:
            self.shop.keycrm_server.post("/__admin/clock", {"advance_seconds": 60})
            _patch(self.shop, 10, {"ordered_at": at(9, day="2026-11-20"), "created_at": at(9, day="2026-11-20")})
            self.shop.keycrm_server.admin.post(
                "/v1/order", headers={"Authorization": f"Bearer {DEMO_KEYCRM_KEY}"},
                json={"source_id": 1, "ordered_at": f"{DAY} 11:00:00", "buyer": {"full_name": "Нова Покупчиня"},
                      "products": [{"sku": "CH-1", "quantity": 1, "price": 500}]}).raise_for_status()


def test_R_ORCH_3_a_departure_hidden_by_a_newcomer_in_the_total_still_leaves_no_order_unread(shop: Shop):
    shop.keycrm_server.post("/__admin/clock", {"now": at(10)})
    first = _extract(shop, client=lambda k: _OrderLeavesAndAnotherArrivesWhilePaging(k, shop))
    assert 51 not in _raw_status(shop) and first.fetched == 60  # the total did not move; order 51 was skipped
    assert first.high_water is None  # the newcomer (changed after the listing began) keeps the day uncursored

    _extract(shop)

    assert 51 in _raw_status(shop)
