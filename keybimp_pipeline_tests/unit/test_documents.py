"""Document dates (R-SALE-3, R-SALE-4, R-PAY-4), line money and totals, full returns (R-RET-3)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from keybimp_pipeline.rules.documents import (
    document_lines,
    format_bimp_datetime,
    full_return_check,
    payment_dates,
    sale_dates,
)

UTC = "UTC"


def _orders(created: list[str | None], shipped: list, closed: list[str | None] | None = None) -> pd.DataFrame:
    n = len(created)
    return pd.DataFrame(
        {
            "order_id": range(1, n + 1),
            "created_at": pd.to_datetime(pd.Series(created, dtype="object"), utc=True),
            "shipping_date": shipped,
            "closed_at": pd.to_datetime(pd.Series(closed or [None] * n, dtype="object"), utc=True),
        }
    )


def _ts(values: list[str | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="object"), utc=True)


# ------------------------------------------------------------------------------------------ sale dates
def test_R_SALE_4_shipped_just_after_midnight_kyiv_is_another_day():
    # created 23:30 Kyiv (UTC+2 in November), shipped 00:30 Kyiv next day: midnight of the shipping day
    orders = _orders(["2026-11-01 21:30"], _ts(["2026-11-01 22:30"]))
    assert sale_dates(orders, "shipped").tolist() == [pd.Timestamp("2026-11-02 00:00:00")]


def test_R_SALE_4_shipped_same_kyiv_day_is_creation_plus_10_seconds():
    # both on 1 Nov in Kyiv although the UTC days differ (created 31 Oct 22:30 UTC = 1 Nov 00:30)
    orders = _orders(["2026-10-31 22:30"], _ts(["2026-11-01 20:00"]))
    assert sale_dates(orders, "shipped").tolist() == [pd.Timestamp("2026-11-01 00:30:10")]


def test_R_SALE_4_shipped_across_dst_change_2026_10_25():
    orders = _orders(
        [
            "2026-10-25 08:00",  # 10:00 EET (UTC+2, after the change at 04:00 local)
            "2026-10-24 21:30",  # 00:30 EEST on the 25th (UTC+3, before the change)
            "2026-10-24 20:30",  # 23:30 EEST on the 24th
        ],
        _ts(
            [
                "2026-10-25 21:30",  # 23:30 EET, still the 25th (a fixed +3 would say 00:30 on the 26th)
                "2026-10-25 21:30",  # the 25th, same day as created
                "2026-10-24 21:30",  # 00:30 on the 25th: another day
            ]
        ),
    )
    assert sale_dates(orders, "shipped").tolist() == [
        pd.Timestamp("2026-10-25 10:00:10"),
        pd.Timestamp("2026-10-25 00:30:10"),
        pd.Timestamp("2026-10-25 00:00:00"),
    ]


def test_R_SALE_4_shipping_date_as_a_date_only_is_the_shops_calendar_day():
    created = ["2026-11-01 21:30", "2026-11-01 08:00", "2026-11-01 08:00"]
    as_strings = _orders(created, ["2026-11-02", "2026-11-01", None])
    as_dates = _orders(created, [dt.date(2026, 11, 2), dt.date(2026, 11, 1), None])
    as_naive = _orders(created, pd.to_datetime(["2026-11-02", "2026-11-01", None]))
    expected = [pd.Timestamp("2026-11-02 00:00:00"), pd.Timestamp("2026-11-01 10:00:10"), pd.NaT]
    for frame in (as_strings, as_dates, as_naive):
        got = sale_dates(frame, "shipped")
        assert got.iloc[:2].tolist() == expected[:2]
        assert pd.isna(got.iloc[2])


def test_R_SALE_4_shipping_timestamp_strings_are_utc():
    orders = _orders(["2026-11-01 21:30"], ["2026-11-01T22:30:00.000000Z"])
    assert sale_dates(orders, "shipped").tolist() == [pd.Timestamp("2026-11-02 00:00:00")]


def test_R_SALE_3_order_created_and_closed_dates_are_local_wall_time():
    orders = _orders(["2026-07-01 21:30", None], _ts([None, None]), ["2026-07-03 06:00", None])
    created = sale_dates(orders, "order_created")
    closed = sale_dates(orders, "closed", tz="Europe/Kyiv")
    assert created.iloc[0] == pd.Timestamp("2026-07-02 00:30:00")  # summer: UTC+3
    assert closed.iloc[0] == pd.Timestamp("2026-07-03 09:00:00")
    assert pd.isna(created.iloc[1]) and pd.isna(closed.iloc[1])  # missing -> NaT, the caller retries
    assert created.dt.tz is None
    assert format_bimp_datetime(created).iloc[0] == "2026-07-02T00:30:00"


def test_R_SALE_3_result_is_aligned_with_the_input_index():
    orders = _orders(["2026-07-01 10:00", "2026-07-01 11:00"], _ts([None, None])).set_index(pd.Index([40, 7]))
    got = sale_dates(orders, "order_created")
    assert got.index.tolist() == [40, 7]
    assert got.loc[7] == pd.Timestamp("2026-07-01 14:00:00")


def test_R_SALE_3_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="sale date mode"):
        sale_dates(_orders(["2026-07-01 10:00"], _ts([None])), "delivered")


# --------------------------------------------------------------------------------------- payment dates
PAYMENTS = pd.DataFrame(
    {
        "payment_id": [1],
        "payment_date": _ts(["2026-03-09 15:00"]),  # the buyer paid yesterday 17:00 Kyiv
        "status_changed_at": _ts(["2026-03-10 08:00"]),  # marked paid today 10:00 Kyiv
    }
)


def test_R_PAY_4_payment_dated_when_marked_paid_not_when_paid():
    assert payment_dates(PAYMENTS, "status_changed", "Europe/Kyiv").tolist() == [
        pd.Timestamp("2026-03-10 10:00:00")
    ]


def test_R_PAY_4_payment_date_source_uses_the_payments_own_date():
    assert payment_dates(PAYMENTS, "payment_date", "Europe/Kyiv").tolist() == [
        pd.Timestamp("2026-03-09 17:00:00")
    ]


def test_R_PAY_4_unknown_source_is_refused():
    with pytest.raises(ValueError, match="payment date source"):
        payment_dates(PAYMENTS, "created", "Europe/Kyiv")


# ---------------------------------------------------------------------------------------- line money
def test_total_3_x_33_33_with_10_percent_order_discount_is_exact():
    lines = pd.DataFrame(
        {
            "order_id": [1, 1, 1],
            "line_no": [1, 2, 3],
            "quantity": [1.0, 1.0, 1.0],
            "price_kop": [3333, 3333, 3333],
            "line_discount_kop": [0, 0, 0],
        }
    )
    orders = pd.DataFrame({"order_id": [1], "order_discount_kop": [1000], "expected_total_kop": [8999]})
    out, totals = document_lines(lines, orders)
    assert out["cost_kop"].tolist() == [3333, 3333, 3333]
    assert out["discount_kop"].tolist() == [334, 333, 333]  # residual kopiyka: equal remainders, line 1
    assert out["discount_kop"].sum() == 1000
    assert out["amount_kop"].tolist() == [2999, 3000, 3000]
    assert out["amount_kop"].sum() == 8999
    assert totals.loc[0, "total_kop"] == 8999
    assert pd.isna(totals.loc[0, "code"])
    assert str(out["amount_kop"].dtype) == "int64"


def test_order_discount_spread_by_largest_remainder_and_independent_of_row_order():
    lines = pd.DataFrame(
        {
            "order_id": [5, 5, 5],
            "line_no": [3, 1, 2],
            "quantity": [2.0, 1.0, 1.5],
            "price_kop": [1000, 2999, 333],
            "line_discount_kop": [100, 0, 0],
        }
    )
    # bases: line3 2000-100=1900, line1 2999, line2 round(499.5)=500 -> 5399; spread 777
    orders = pd.DataFrame({"order_id": [5], "order_discount_kop": [777], "expected_total_kop": [None]})
    out, totals = document_lines(lines, orders)
    by_line = out.set_index("line_no")
    # exact shares: l1 431.60, l2 71.96, l3 273.44 -> floors 431 + 71 + 273 = 775; the 2 kopiyky left
    # go to the largest remainders, l2 (.96) and l1 (.60); l3 (.44) keeps its floor
    assert by_line.loc[[1, 2, 3], "discount_kop"].tolist() == [432, 72, 100 + 273]
    assert by_line["discount_kop"].sum() == 777 + 100
    assert by_line.loc[2, "amount_kop"] == 500 - 72
    shuffled, _ = document_lines(lines.iloc[[2, 0, 1]], orders)
    assert shuffled.set_index("line_no")["discount_kop"].to_dict() == by_line["discount_kop"].to_dict()
    assert pd.isna(totals.loc[0, "code"])  # nothing expected: nothing to compare


def test_total_mismatch_is_flagged_with_both_totals():
    lines = pd.DataFrame(
        {
            "order_id": [1, 2],
            "line_no": [1, 1],
            "quantity": [3.0, 1.0],
            "price_kop": [1000, 500],
            "line_discount_kop": [100, 0],
        }
    )
    orders = pd.DataFrame(
        {"order_id": [1, 2], "order_discount_kop": [0, 0], "expected_total_kop": [2901, 500]}
    )
    _, totals = document_lines(lines, orders)
    bad = totals.set_index("order_id")
    assert bad.loc[1, "code"] == "total_mismatch"
    assert bad.loc[1, "total_kop"] == 2900 and bad.loc[1, "expected_total_kop"] == 2901
    assert bad.loc[1, "detail"] == "document total 29.00 UAH != KeyCRM order total 29.01 UAH"
    assert pd.isna(bad.loc[2, "code"])


# --------------------------------------------------------------------------------------------- returns
SOLD = pd.DataFrame(
    {"order_id": [1, 1, 2, 3], "nomenclature_uuid": ["a", "b", "a", "a"], "quantity": [1.0, 2.0, 1.0, 1.0]}
)


def test_R_RET_3_partial_goods_return_is_left_to_a_person():
    returned = pd.DataFrame(
        {"order_id": [1, 1, 2], "nomenclature_uuid": ["a", "b", "a"], "quantity": [1.0, 1.0, 1.0]}
    )
    issues = full_return_check(SOLD, returned)
    assert issues["order_id"].tolist() == [1]  # 2 is full, 3 not being returned
    assert issues["code"].tolist() == ["partial_return_manual"]
    assert issues["kind"].tolist() == ["goods"]
    assert issues["detail"].tolist() == ["item b: sold 2, returned 1"]


def test_R_RET_3_item_missing_from_the_return_counts_as_zero():
    returned = pd.DataFrame({"order_id": [1], "nomenclature_uuid": ["a"], "quantity": [1.0]})
    assert full_return_check(SOLD, returned)["detail"].tolist() == ["item b: sold 2, returned 0"]


def test_R_RET_3_partial_refund_flagged_full_refund_not():
    money = pd.DataFrame(
        {"order_id": [1, 2, 3], "paid_kop": [10000, 5000, 700], "refunded_kop": [10000, 4999, None]}
    )
    issues = full_return_check(SOLD, None, money)
    assert issues.to_dict("records") == [
        {
            "order_id": 2,
            "kind": "money",
            "code": "partial_return_manual",
            "detail": "refund 49.99 UAH != paid 50.00 UAH",
        }
    ]


def test_R_RET_3_whole_order_return_without_quantities_is_full():
    issues = full_return_check(SOLD)
    assert issues.empty
    assert list(issues.columns) == ["order_id", "kind", "code", "detail"]
