"""Dates, lines and totals of the Bimp documents derived from KeyCRM orders.

* :func:`sale_dates` -- the sales invoice's date (R-SALE-3, R-SALE-4);
* :func:`payment_dates` -- a customer payment's date (R-PAY-4);
* :func:`document_lines` -- line cost / discount / amount in integer kopiyky, the order discount spread
  so the document total equals the KeyCRM order's to the kopiyka (``total_mismatch`` otherwise);
* :func:`full_return_check` -- only full returns are automated (R-RET-3).

Times come in as UTC (KeyCRM gives UTC); Bimp document dates are written as shop-local wall time without
a zone ("YYYY-MM-DDTHH:MM:SS"), so the functions return *naive* shop-local datetimes.  The shop zone is
used only here, where a calendar day is decided.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from keybimp_pipeline.rules.issues import IssueCode
from keybimp_pipeline.rules.reserves import join_per_group

SALE_DATE_MODES = ("order_created", "shipped", "closed")
PAYMENT_DATE_SOURCES = ("status_changed", "payment_date")
SHIPPED_SAME_DAY_OFFSET = pd.Timedelta(seconds=10)  # R-SALE-4: creation time + 10 s
TOTAL_COLUMNS = ["order_id", "total_kop", "expected_total_kop", "code", "detail"]
RETURN_ISSUE_COLUMNS = ["order_id", "kind", "code", "detail"]


# --------------------------------------------------------------------------------------------- dates
def _utc(values: pd.Series) -> pd.Series:
    """A column of moments as tz-aware UTC; naive values and strings are taken as UTC (KeyCRM's zone)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    return pd.to_datetime(values, utc=True, errors="coerce", format="mixed")


def _local_naive(values: pd.Series, tz: str) -> pd.Series:
    """UTC moments as naive shop-local wall time (what a Bimp document date holds)."""
    return _utc(values).dt.tz_convert(tz).dt.tz_localize(None)


def _local_calendar_day(values: pd.Series, tz: str) -> pd.Series:
    """The shop-local calendar day (naive midnight) of a KeyCRM shipping date.

    KeyCRM's ``shipping_date`` comes either as a date only (``"2023-12-21"``) or as a timestamp.  A date
    only is already the shop's calendar date and is taken as is -- converting it as if it were UTC
    midnight would move it to the previous day west of UTC and is meaningless east of it.  A moment is
    converted to the shop's zone first.  Accepted forms:

    * tz-aware datetime64 -- a moment (converted to ``tz``);
    * naive datetime64, ``datetime.date`` objects, ``"YYYY-MM-DD"`` strings -- a calendar date;
    * other strings / ``Timestamp`` objects -- a moment, UTC when no zone is written.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.normalize()
    text = values.astype("string").str.strip()
    date_only = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    if date_only.any():
        out.loc[date_only] = pd.to_datetime(text[date_only], format="%Y-%m-%d", errors="coerce")
    moment = ~date_only & text.notna()
    if moment.any():
        moments = pd.to_datetime(text[moment], utc=True, errors="coerce", format="mixed")
        out.loc[moment] = moments.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    return out


def sale_dates(orders: pd.DataFrame, mode: str, tz: str = "Europe/Kyiv") -> pd.Series:
    """Sales-invoice date per order (R-SALE-3, R-SALE-4), naive shop-local, aligned with ``orders``.

    ``orders``: order_id, created_at, shipping_date, closed_at (UTC; NaT allowed; ``shipping_date`` in
    any form :func:`_local_calendar_day` accepts).  ``mode``:

    * ``order_created`` -- the creation moment in the shop's zone;
    * ``closed`` -- the moment the order reached its final status;
    * ``shipped`` -- when the shipping day is the creation's shop-local calendar day, creation time
      + 10 s (so the invoice follows the customer order on that day); otherwise 00:00:00 of the
      shipping day.

    A date the mode needs but the order lacks gives NaT: the caller retries / reports it.
    """
    if mode not in SALE_DATE_MODES:
        raise ValueError(f"sale date mode must be one of {SALE_DATE_MODES}, got {mode!r}")
    if mode == "order_created":
        out = _local_naive(orders["created_at"], tz)
    elif mode == "closed":
        out = _local_naive(orders["closed_at"], tz)
    else:
        created = _local_naive(orders["created_at"], tz)
        ship_day = _local_calendar_day(orders["shipping_date"], tz)
        same_day = (created.dt.normalize() == ship_day).fillna(False).astype(bool)
        out = ship_day.where(~same_day, created + SHIPPED_SAME_DAY_OFFSET)
    return pd.Series(out.to_numpy(dtype="datetime64[ns]"), index=orders.index, name="sale_date")


def payment_dates(
    payments: pd.DataFrame, source: str = "status_changed", tz: str = "Europe/Kyiv"
) -> pd.Series:
    """Customer-payment date per payment (R-PAY-4), naive shop-local, aligned with ``payments``.

    ``status_changed`` (default, the guide's behaviour): the moment the payment was marked paid in
    KeyCRM (``status_changed_at``) -- a buyer who paid yesterday, marked paid today 10:00, gives today
    10:00.  ``payment_date`` **[beyond]**: the payment's own ``payment_date``.
    """
    if source not in PAYMENT_DATE_SOURCES:
        raise ValueError(f"payment date source must be one of {PAYMENT_DATE_SOURCES}, got {source!r}")
    column = "status_changed_at" if source == "status_changed" else "payment_date"
    out = _local_naive(payments[column], tz)
    return pd.Series(out.to_numpy(dtype="datetime64[ns]"), index=payments.index, name="payment_date")


def format_bimp_datetime(values: pd.Series) -> pd.Series:
    """Naive local datetimes as Bimp's "YYYY-MM-DDTHH:MM:SS" strings (NaT stays missing)."""
    return values.dt.strftime("%Y-%m-%dT%H:%M:%S")


# --------------------------------------------------------------------------------------------- lines
def _round_half_up(values: np.ndarray) -> np.ndarray:
    """Kopiyky rounding of quantity x price: half away from zero, float noise removed first."""
    v = np.round(values.astype("float64"), 6)
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype("int64")


def document_lines(lines: pd.DataFrame, orders: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Line money for Bimp documents, with the order discount spread to the kopiyka.

    ``lines``: order_id, line_no, quantity (float), price_kop (unit price before discounts),
    line_discount_kop (the line's own total discount; missing = 0).
    ``orders``: order_id, order_discount_kop (order-level discount to spread; missing = 0),
    expected_total_kop (the goods total the document must equal; the caller decides what it holds).

    Each output line gets ``cost_kop`` (= price_kop), ``discount_kop`` (its own discount plus its share
    of the order discount) and ``amount_kop`` (= round(quantity x cost) - discount).  The order discount
    is shared in proportion to the line amounts after their own discounts, by the largest-remainder
    method: each line gets the floor of its exact share, and the kopiyky left go one each to the lines
    with the largest remainders, ties by ``line_no`` -- so the shares always sum to the order discount
    exactly and the result never depends on row order.

    Second frame, one row per order: order_id, total_kop (sum of amounts), expected_total_kop, and
    ``code`` = ``total_mismatch`` with a ``detail`` when they differ (null when they agree or nothing is
    expected).
    """
    out = lines.copy()
    order_info = orders.drop_duplicates("order_id").set_index("order_id")
    order_key = out["order_id"]

    qty = out["quantity"].astype("float64").to_numpy()
    price = out["price_kop"].astype("int64").to_numpy()
    gross = _round_half_up(qty * price)
    own = (
        out["line_discount_kop"].fillna(0).astype("int64").to_numpy()
        if "line_discount_kop" in out
        else np.zeros(len(out), dtype="int64")
    )
    base = np.clip(gross - own, 0, None)
    order_discount = (
        order_key.map(order_info["order_discount_kop"]).fillna(0).astype("int64").to_numpy()
        if "order_discount_kop" in order_info
        else np.zeros(len(out), dtype="int64")
    )
    sign = np.sign(order_discount)
    to_spread = np.abs(order_discount)
    base_sum = pd.Series(base).groupby(order_key.to_numpy(), sort=False).transform("sum").to_numpy()

    if len(out) and float(to_spread.max(initial=0)) * float(base.max(initial=0)) >= 2.0**62:
        # Exact products beyond int64: fall back to Python integers (astronomic orders only).
        num = to_spread.astype(object) * base.astype(object)
    else:
        num = to_spread * base
    safe_sum = np.where(base_sum > 0, base_sum, 1)
    share = np.where(base_sum > 0, num // safe_sum, 0).astype("int64")
    remainder = np.where(base_sum > 0, num % safe_sum, 0).astype("int64")
    spread_here = np.where(base_sum > 0, to_spread, 0)
    left = (
        spread_here - pd.Series(share).groupby(order_key.to_numpy(), sort=False).transform("sum").to_numpy()
    )

    rank_frame = pd.DataFrame(
        {"order": order_key.to_numpy(), "rem": -remainder, "line_no": out["line_no"].to_numpy()}
    ).sort_values(["order", "rem", "line_no"], kind="mergesort")
    rank = np.empty(len(out), dtype="int64")
    rank[rank_frame.index.to_numpy()] = rank_frame.groupby("order", sort=False).cumcount().to_numpy()
    share = share + (rank < left).astype("int64")

    discount = own + sign * share
    out["cost_kop"] = price
    out["discount_kop"] = discount.astype("int64")
    out["amount_kop"] = (gross - discount).astype("int64")

    totals = out.groupby("order_id", sort=False)["amount_kop"].sum()
    all_orders = pd.Index(pd.unique(pd.concat([order_key, pd.Series(order_info.index)], ignore_index=True)))
    totals = totals.reindex(all_orders, fill_value=0).astype("int64")
    expected = (
        order_info["expected_total_kop"].reindex(all_orders).astype("Int64")
        if "expected_total_kop" in order_info
        else pd.Series(pd.NA, index=all_orders, dtype="Int64")
    )
    check = pd.DataFrame(
        {"order_id": all_orders, "total_kop": totals.to_numpy(), "expected_total_kop": expected.to_numpy()}
    )
    differs = check["expected_total_kop"].notna() & (check["total_kop"] != check["expected_total_kop"])
    differs = differs.fillna(False).astype(bool)
    check["code"] = pd.Series(np.where(differs, IssueCode.TOTAL_MISMATCH.value, None), dtype="object")
    check["detail"] = pd.Series(None, index=check.index, dtype="object")
    if differs.any():
        bad = check.loc[differs]
        check.loc[differs, "detail"] = (
            "document total "
            + _uah(bad["total_kop"])
            + " UAH != KeyCRM order total "
            + _uah(bad["expected_total_kop"])
            + " UAH"
        )
    return out, check[TOTAL_COLUMNS]


def _uah(kop: pd.Series) -> pd.Series:
    """Kopiyky as "123.45" text (integer arithmetic, no float)."""
    k = kop.astype("int64")
    sign = np.where(k < 0, "-", "")
    a = k.abs()
    return sign + (a // 100).astype(str) + "." + (a % 100).astype(str).str.zfill(2)


# ------------------------------------------------------------------------------------------- returns
def full_return_check(
    sold: pd.DataFrame,
    returned: pd.DataFrame | None = None,
    money: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Orders whose return is not full (R-RET-3): they get ``partial_return_manual`` and no document.

    Inputs, all optional except ``sold``:

    * ``sold``: order_id, nomenclature_uuid, quantity -- what the order's sales invoice took off stock;
    * ``returned``: order_id, nomenclature_uuid, quantity -- what comes back, per item (e.g. the
      order's lines when it reached the return status).  ``None``: goods returns are whole-order by
      construction, nothing to check.  An order absent from ``returned`` is not checked for goods;
      for an order present, an item sold but not listed counts as returned 0;
    * ``money``: order_id, paid_kop, refunded_kop -- what was paid and what is being refunded
      (``refunded_kop`` null = the whole paid amount).

    A goods return is full when every item's returned quantity equals the sold one (more than sold is
    also not "full": a person must look); a refund is full when it equals the paid amount.
    Returns order_id, kind (``goods`` | ``money``), code, detail -- only the orders to leave to a person.
    """
    issues: list[pd.DataFrame] = []
    if returned is not None and len(returned):
        s = sold.groupby(["order_id", "nomenclature_uuid"])["quantity"].sum().rename("sold")
        r = returned.groupby(["order_id", "nomenclature_uuid"])["quantity"].sum().rename("returned")
        both = pd.concat([s, r], axis=1).reset_index()
        both = both.loc[both["order_id"].isin(returned["order_id"])].fillna({"sold": 0.0, "returned": 0.0})
        off = both.loc[(both["sold"] - both["returned"]).abs() > 1e-9]
        if len(off):
            text = (
                "item "
                + off["nomenclature_uuid"].astype(str)
                + ": sold "
                + off["sold"].round(6).map(lambda v: f"{v:g}")
                + ", returned "
                + off["returned"].round(6).map(lambda v: f"{v:g}")
            )
            detail = join_per_group(text, off["order_id"])
            issues.append(
                pd.DataFrame(
                    {
                        "order_id": detail.index,
                        "kind": "goods",
                        "code": IssueCode.PARTIAL_RETURN_MANUAL.value,
                        "detail": detail.to_numpy(),
                    }
                )
            )
    if money is not None and len(money):
        grouped = money.groupby("order_id", sort=False)
        m = pd.DataFrame(
            {
                "paid_kop": grouped["paid_kop"].sum(),
                "refunded_kop": grouped["refunded_kop"].sum(min_count=1),
            }
        )
        refunded = m["refunded_kop"].fillna(m["paid_kop"]).astype("int64")
        paid = m["paid_kop"].astype("int64")
        off = m.index[(refunded != paid).to_numpy()]
        if len(off):
            issues.append(
                pd.DataFrame(
                    {
                        "order_id": off,
                        "kind": "money",
                        "code": IssueCode.PARTIAL_RETURN_MANUAL.value,
                        "detail": (
                            "refund "
                            + _uah(refunded.loc[off])
                            + " UAH != paid "
                            + _uah(paid.loc[off])
                            + " UAH"
                        ).to_numpy(),
                    }
                )
            )
    if not issues:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in RETURN_ISSUE_COLUMNS})
    return pd.concat(issues, ignore_index=True)[RETURN_ISSUE_COLUMNS]
