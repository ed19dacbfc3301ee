"""Stage: raw KeyCRM order JSON → typed, flattened, normalised, validated tables (one day at a time).

Flattening is one SQL statement per table over the day's raw rows (set-based, no per-order Python);
phones, e-mails and names are normalised vectorially; pandera decides what is quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd

from keybimp_pipeline.rules.normalize import normalize_email, normalize_phone
from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.storage.schemas import STAGED_LINES, STAGED_ORDERS, STAGED_PAYMENTS, failing_rows

KOP = "CAST(round(TRY_CAST({x} AS DECIMAL(18,2)) * 100) AS BIGINT)"
TS = "TRY_CAST({x} AS TIMESTAMPTZ)"


def _kop(path: str) -> str:
    return KOP.format(x=path)


def _ts(path: str) -> str:
    return TS.format(x=path)


ORDERS_SQL = f"""
SELECT r.integration, r.day, r.order_id,
  TRY_CAST(COALESCE(p->>'client_id', p->'buyer'->>'id') AS BIGINT) AS buyer_id,
  TRY_CAST(p->>'status_id' AS BIGINT) AS status_id,
  TRY_CAST(p->>'source_id' AS BIGINT) AS source_id,
  UPPER(COALESCE(src.alias, 'UAH')) AS currency,
  {_ts("COALESCE(p->>'ordered_at', p->>'created_at')")} AS created_at,
  {_ts("p->>'updated_at'")} AS updated_at,
  {_ts("p->>'status_changed_at'")} AS status_changed_at,
  {_ts("p->>'closed_at'")} AS closed_at,
  {_ts("COALESCE(p->'shipping'->>'shipping_date_actual', p->'shipping'->>'shipping_date')")} AS shipping_date,
  {_kop("p->>'grand_total'")} AS grand_total_kop,
  COALESCE({_kop("p->>'discount_amount'")}, 0) AS discount_kop,
  COALESCE({_kop("p->>'shipping_price'")}, 0) AS shipping_price_kop,
  p->>'payment_status' AS payment_status
FROM (SELECT integration, day, order_id, payload AS p FROM raw_orders WHERE integration = $1 AND day = $2) r
LEFT JOIN (SELECT id, extra->>'currency_code' AS alias FROM reference
           WHERE integration = $1 AND system = 'keycrm' AND kind = 'source') src
  ON src.id = r.p->>'source_id'
ORDER BY r.order_id
"""

LINES_SQL = f"""
SELECT r.integration, r.day, r.order_id, CAST(t.ord - 1 AS BIGINT) AS line_no,
  TRY_CAST(COALESCE(t.l->'offer'->>'id', t.l->>'offer_id') AS BIGINT) AS offer_id,
  TRY_CAST(t.l->'offer'->>'product_id' AS BIGINT) AS product_id,
  NULLIF(TRIM(COALESCE(t.l->'offer'->>'sku', t.l->>'sku')), '') AS sku,
  t.l->>'name' AS name,
  TRY_CAST(t.l->>'quantity' AS DOUBLE) AS quantity,
  {_kop("t.l->>'price'")} AS price_kop,
  GREATEST(0, COALESCE(
     CAST(round((TRY_CAST(t.l->>'price' AS DECIMAL(18,2)) - TRY_CAST(t.l->>'price_sold' AS DECIMAL(18,2)))
                * TRY_CAST(t.l->>'quantity' AS DECIMAL(18,4)) * 100) AS BIGINT),
     {_kop("t.l->>'total_discount'")}, 0)) AS line_discount_kop
FROM raw_orders r,
  unnest(CAST(CASE WHEN json_type(r.payload->'products') = 'ARRAY' THEN r.payload->'products' ELSE '[]' END
              AS JSON[])) WITH ORDINALITY AS t(l, ord)
WHERE r.integration = $1 AND r.day = $2
ORDER BY r.order_id, line_no
"""

BUYERS_SQL = f"""
SELECT r.integration, r.day, r.order_id,
  TRY_CAST(COALESCE(r.payload->'buyer'->>'id', r.payload->>'client_id') AS BIGINT) AS buyer_id,
  r.payload->'buyer'->>'full_name' AS full_name,
  r.payload->'buyer'->>'phone' AS phone,
  r.payload->'buyer'->>'email' AS email,
  {_ts("COALESCE(r.payload->>'ordered_at', r.payload->>'created_at')")} AS placed_at
FROM raw_orders r WHERE r.integration = $1 AND r.day = $2 ORDER BY r.order_id
"""

# Orders whose shape is broken before any column can be typed: fields the client could not read (it sets
# `_invalid`), lines or payments that are not lists.  Quarantined with the reason, never a failed partition.
SHAPE_SQL = """
SELECT order_id, reason FROM (
  SELECT order_id,
    concat_ws('; ',
      CASE WHEN (payload->'_invalid') IS NOT NULL THEN 'unreadable fields: ' || CAST(payload->'_invalid' AS VARCHAR) END,
      CASE WHEN json_type(payload->'products') NOT IN ('ARRAY', 'NULL') THEN 'products is not a list' END,
      CASE WHEN json_type(payload->'payments') NOT IN ('ARRAY', 'NULL') THEN 'payments is not a list' END,
      CASE WHEN json_type(payload->'buyer') NOT IN ('OBJECT', 'NULL') THEN 'buyer is not an object' END
    ) AS reason
  FROM raw_orders WHERE integration = $1 AND day = $2)
WHERE reason <> ''
ORDER BY order_id
"""

PAYMENTS_SQL = f"""
SELECT r.integration, r.day, r.order_id,
  TRY_CAST(t.pm->>'id' AS BIGINT) AS payment_id,
  TRY_CAST(t.pm->>'payment_method_id' AS BIGINT) AS method_id,
  {_kop("t.pm->>'amount'")} AS amount_kop,
  t.pm->>'status' AS status,
  {_ts("t.pm->>'payment_date'")} AS payment_date,
  {_ts("COALESCE(t.pm->>'updated_at', t.pm->>'created_at')")} AS status_changed_at
FROM raw_orders r,
  unnest(CAST(CASE WHEN json_type(r.payload->'payments') = 'ARRAY' THEN r.payload->'payments' ELSE '[]' END
              AS JSON[])) AS t(pm)
WHERE r.integration = $1 AND r.day = $2 AND COALESCE(TRY_CAST(t.pm->>'is_expense' AS BOOLEAN), false) = false
ORDER BY r.order_id, payment_id
"""


@dataclass
class StageResult:
    orders: int
    lines: int
    payments: int
    quarantined: int
    quarantine_sample: pd.DataFrame


def _utc(frame: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    for col in cols:
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def stage_day(store: Store, day: date, *, strict_names: bool = False) -> StageResult:
    with store.connect():  # one connection for the whole step: it makes no API call
        return _stage_day(store, day, strict_names)


def _stage_day(store: Store, day: date, strict_names: bool) -> StageResult:
    with store.connect() as con:
        params = [store.integration, day]
        orders = con.execute(ORDERS_SQL, params).df()
        lines = con.execute(LINES_SQL, params).df()
        buyers = con.execute(BUYERS_SQL, params).df()
        payments = con.execute(PAYMENTS_SQL, params).df()
        shapes = con.execute(SHAPE_SQL, params).df()

    orders = _utc(orders, ["created_at", "updated_at", "status_changed_at", "closed_at", "shipping_date"])
    for col in ["buyer_id", "status_id", "source_id", "grand_total_kop", "discount_kop", "shipping_price_kop"]:
        orders[col] = orders[col].astype("Int64")
    lines["offer_id"] = lines["offer_id"].astype("Int64")
    lines["product_id"] = lines["product_id"].astype("Int64")
    lines["price_kop"] = lines["price_kop"].astype("Int64")
    lines["line_discount_kop"] = lines["line_discount_kop"].astype("Int64")
    lines["quantity"] = lines["quantity"].astype("float64")
    lines["line_no"] = lines["line_no"].astype("int64")
    payments = _utc(payments, ["payment_date", "status_changed_at"])
    payments["amount_kop"] = payments["amount_kop"].astype("Int64")
    payments["method_id"] = payments["method_id"].astype("Int64")

    buyers = _utc(buyers, ["placed_at"])
    buyers["buyer_id"] = buyers["buyer_id"].astype("Int64")
    buyers["phone"] = normalize_phone(buyers["phone"])
    buyers["email"] = normalize_email(buyers["email"])
    if not strict_names:
        buyers["full_name"] = buyers["full_name"].str.strip().str.split().str.join(" ")

    bad = []
    for schema, frame, entity in ((STAGED_ORDERS, orders, "order"), (STAGED_LINES, lines, "order_line"),
                                  (STAGED_PAYMENTS, payments, "payment")):
        reasons = failing_rows(schema, frame)
        if len(reasons):
            bad.append(pd.DataFrame({"order_id": frame.loc[reasons.index, "order_id"].to_numpy(),
                                     "entity": entity, "reason": reasons["reason"].to_numpy()}))
    if len(shapes):
        bad.append(pd.DataFrame({"order_id": shapes["order_id"].to_numpy(), "entity": "order",
                                 "reason": shapes["reason"].to_numpy()}))
    payments_missing_id = payments["payment_id"].isna()
    if payments_missing_id.any():
        bad.append(pd.DataFrame({"order_id": payments.loc[payments_missing_id, "order_id"].to_numpy(),
                                 "entity": "payment", "reason": "payment without id"}))
    quarantine = (pd.concat(bad, ignore_index=True) if bad
                  else pd.DataFrame(columns=["order_id", "entity", "reason"]))
    quarantine = quarantine.drop_duplicates(["order_id", "entity"])
    bad_ids = set(quarantine["order_id"].dropna().astype("int64"))

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[~frame["order_id"].isin(bad_ids)]

    orders, lines, buyers, payments = keep(orders), keep(lines), keep(buyers), keep(payments)
    payments = payments.assign(payment_id=payments["payment_id"].astype("int64"))
    quarantine = quarantine.assign(integration=store.integration, day=day, seen_at=datetime.now(UTC))
    store.replace_partition("stg_orders", day, orders)
    store.replace_partition("stg_order_lines", day, lines)
    store.replace_partition("stg_buyers", day, buyers)
    store.replace_partition("stg_payments", day, payments)
    store.replace_partition("quarantine", day, quarantine[["integration", "day", "entity", "order_id", "reason",
                                                           "seen_at"]])
    return StageResult(orders=len(orders), lines=len(lines), payments=len(payments),
                       quarantined=len(bad_ids), quarantine_sample=quarantine.head(10))
