"""Document dates on the day Kyiv leaves summer time (2026-10-25: 04:00 EEST becomes 03:00 EET, 01:00 UTC).

Sales are dated by the shipping rule (R-SALE-4), payments by the payment's own date (R-PAY-4 [beyond],
``date_source: payment_date``).  Each order is chosen so that a fixed UTC+3 offset, or a UTC calendar
day, would give a different answer than the shop's real calendar.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from keybimp_pipeline_tests.pipeline.documents_shop import (
    CARD,
    COMPLETED,
    base_states,
    dec,
    one,
    order,
    payment,
    shop,
)

DAY = "2026-10-25"


@pytest.fixture(scope="module")
def dst_day(emulators, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    h = shop(tmp_path_factory.mktemp("documents-dst"), emulators, mp,
             {"payments": {"date_source": "payment_date"}, "sales": {"date": "shipped"}})
    keycrm, bimp = base_states()
    keycrm["orders"] = [
        # 00:30 EEST on the 25th (21:30 UTC on the 24th); shipped "2026-10-25"; paid 03:30 EEST
        order(201, "2026-10-24T21:30:00Z", COMPLETED, [("DOC-B", 1)], shipping_date="2026-10-25",
              updated="2026-10-26T09:00:00Z",
              payments=[payment(2001, "300", CARD, paid_at="2026-10-25T00:30:00Z",
                                marked_at="2026-10-26T09:00:00Z")]),
        # 23:30 EET on the 25th; shipped 00:30 EET on the 26th (22:30 UTC on the 25th);
        # paid 03:30 EET -- the repeated hour's second pass (01:30 UTC)
        order(202, "2026-10-25T21:30:00Z", COMPLETED, [("DOC-B", 1)], shipping_date="2026-10-25T22:30:00Z",
              updated="2026-10-26T09:00:00Z",
              payments=[payment(2002, "300", CARD, paid_at="2026-10-25T01:30:00Z",
                                marked_at="2026-10-26T09:00:00Z")]),
        # 04:00 EET, after the change (02:00 UTC); shipped 22:00 EET the same day
        order(203, "2026-10-25T02:00:00Z", COMPLETED, [("DOC-B", 1)], shipping_date="2026-10-25T20:00:00Z"),
    ]
    emulators[0].put_state(keycrm)
    emulators[1].put_state(bimp)
    h.sync_day(DAY)
    yield h, h.bimp_company()
    mp.undo()


def test_R_SALE_4_dst_day_shipped_same_kyiv_day_before_the_change_gives_creation_plus_10_s(dst_day):
    _, co = dst_day
    assert one(co["salesInvoices"], 201)["date"] == "2026-10-25T00:30:10"


def test_R_SALE_4_dst_day_shipped_after_midnight_kyiv_gives_midnight_of_the_shipping_day(dst_day):
    _, co = dst_day
    assert one(co["salesInvoices"], 202)["date"] == "2026-10-26T00:00:00"


def test_R_SALE_4_dst_day_creation_after_the_change_is_read_in_winter_time(dst_day):
    _, co = dst_day
    assert one(co["salesInvoices"], 203)["date"] == "2026-10-25T04:00:10"  # not 05:00:10 (UTC+3)


def test_R_PAY_4_payment_date_source_uses_the_payment_own_date_across_the_dst_change(dst_day):
    h, co = dst_day
    first, second = one(co["customerPayments"], 201), one(co["customerPayments"], 202)
    assert first["date"] == "2026-10-25T03:30:00"  # 00:30 UTC, summer time
    assert second["date"] == "2026-10-25T03:30:00"  # 01:30 UTC, winter time: the same wall clock
    assert dec(first["documentSum"]) == dec(second["documentSum"]) == Decimal(300)
    assert h.issues().empty
