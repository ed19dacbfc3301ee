"""pandera schemas of the staged tables (R-ORCH-4).

Validation is lazy and row-wise: the rows that fail are quarantined with the reason, the rest go on.
Every check is vectorised (text columns are pandas ``string`` dtype, so neither the dtype check nor the
length checks call Python per value): staging validates a whole backfill range, a million orders, at once.
An order with one bad line is quarantined whole — a customer order missing a line would be wrong money.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

_TS = pa.Column("datetime64[ns, UTC]", nullable=True)

STAGED_ORDERS = pa.DataFrameSchema(
    {
        "order_id": pa.Column("int64", pa.Check.gt(0), unique=True),
        "status_id": pa.Column("Int64", nullable=False),
        "created_at": pa.Column("datetime64[ns, UTC]", nullable=False),
        "updated_at": _TS,
        "currency": pa.Column("string", pa.Check.str_length(3, 3)),
        "grand_total_kop": pa.Column("Int64", pa.Check.ge(0), nullable=False),
        "discount_kop": pa.Column("Int64", pa.Check.ge(0), nullable=False),
        "shipping_price_kop": pa.Column("Int64", pa.Check.ge(0), nullable=False),
    },
    name="staged_orders",
)

STAGED_LINES = pa.DataFrameSchema(
    {
        "order_id": pa.Column("int64"),
        "line_no": pa.Column("int64", pa.Check.ge(0)),
        "quantity": pa.Column("float64", [pa.Check.gt(0), pa.Check.lt(1e7)], nullable=False),
        "price_kop": pa.Column("Int64", pa.Check.ge(0), nullable=False),
        "line_discount_kop": pa.Column("Int64", pa.Check.ge(0), nullable=False),
        "name": pa.Column("string", pa.Check.str_length(1, 1000), nullable=True),
        "sku": pa.Column("string", pa.Check.str_length(0, 255), nullable=True),
    },
    checks=[pa.Check(lambda df: df["sku"].notna() | df["offer_id"].notna() | df["name"].notna(),
                     element_wise=False, error="line has neither offer, sku nor name")],
    name="staged_order_lines",
)

STAGED_PAYMENTS = pa.DataFrameSchema(
    {
        "payment_id": pa.Column("int64", unique=True),
        "amount_kop": pa.Column("Int64", pa.Check.ge(0), nullable=False),
        "status": pa.Column("string", nullable=True),
    },
    name="staged_payments",
)


def failing_rows(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of `frame` that fail `schema`: index of `frame` → reason (column: check, value)."""
    if frame.empty:
        return pd.DataFrame({"reason": pd.Series(dtype=str)})
    try:
        schema.validate(frame, lazy=True)
        return pd.DataFrame({"reason": pd.Series(dtype=str)})
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        cases = cases[cases["index"].notna()]
        reasons = (
            cases.assign(reason=lambda c: c["column"].astype(str) + ": " + c["check"].astype(str)
                         + " (got " + c["failure_case"].astype(str).str.slice(0, 60) + ")")
            .groupby("index")["reason"].agg("; ".join)
        )
        reasons.index = reasons.index.astype(frame.index.dtype)
        return reasons.to_frame()
