"""Stage: raw KeyCRM order JSON → typed, flattened, normalised, validated tables (any set of day partitions).

Each order's JSON is parsed ONCE into a typed struct (`json_transform`, see PARSED_SQL); the staged tables are
set-based SQL over that struct, written inside DuckDB (no per-order Python, no pandas round trip for the rows);
phones, e-mails and names are normalised once per distinct value; pandera decides what is quarantined.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd

from keybimp_pipeline.rules.normalize import normalize_email, normalize_phone
from keybimp_pipeline.storage.db import Store, transaction
from keybimp_pipeline.storage.schemas import STAGED_LINES, STAGED_ORDERS, STAGED_PAYMENTS, failing_rows

KOP = "CAST(round(TRY_CAST({x} AS DECIMAL(18,2)) * 100) AS BIGINT)"
TS = "TRY_CAST({x} AS TIMESTAMPTZ)"


def _kop(path: str) -> str:
    return KOP.format(x=path)


def _ts(path: str) -> str:
    return TS.format(x=path)


_V = "VARCHAR"
LINE_STRUCT = {"offer": {"id": _V, "product_id": _V, "sku": _V}, "offer_id": _V, "sku": _V, "name": _V,
               "quantity": _V, "price": _V, "price_sold": _V, "total_discount": _V}
PAYMENT_STRUCT = {"id": _V, "payment_method_id": _V, "amount": _V, "status": _V, "payment_date": _V,
                  "updated_at": _V, "created_at": _V, "is_expense": _V}
ORDER_STRUCT = {
    "client_id": _V, "buyer": {"id": _V, "full_name": _V, "phone": _V, "email": _V}, "status_id": _V,
    "source_id": _V, "ordered_at": _V, "created_at": _V, "updated_at": _V, "status_changed_at": _V,
    "closed_at": _V, "shipping": {"shipping_date_actual": _V, "shipping_date": _V}, "grand_total": _V,
    "discount_amount": _V, "shipping_price": _V, "payment_status": _V,
    "products": [LINE_STRUCT], "payments": [PAYMENT_STRUCT]}


def _transform_type(fields) -> object:
    if isinstance(fields, dict):
        return {k: _transform_type(v) for k, v in fields.items()}
    if isinstance(fields, list):
        return [_transform_type(fields[0])]
    return fields


# ONE parse per order: the payload into a typed struct holding every field staging reads, its lines and its
# payments (`json_transform`; a value of another shape than expected becomes NULL, as `->>` gave).  Every
# staged table is then read from this struct: on a million 4 KB orders the parse is most of staging's time.
PARSED_SQL = f"""
CREATE OR REPLACE TEMP TABLE _stage_parsed AS
SELECT integration, day, order_id, o, o.products AS products, o.payments AS payments, maybe_invalid
FROM (SELECT integration, day, order_id,
             json_transform(payload, '{json.dumps(_transform_type(ORDER_STRUCT))}') AS o,
             contains(CAST(payload AS VARCHAR), '"_invalid"') AS maybe_invalid
      FROM raw_orders WHERE integration = $1 AND day IN (SELECT UNNEST($2::DATE[])))
"""

ORDERS_SQL = f"""
SELECT r.integration, r.day, r.order_id,
  TRY_CAST(COALESCE(o.client_id, o.buyer.id) AS BIGINT) AS buyer_id,
  TRY_CAST(o.status_id AS BIGINT) AS status_id,
  TRY_CAST(o.source_id AS BIGINT) AS source_id,
  UPPER(COALESCE(src.alias, 'UAH')) AS currency,
  {_ts("COALESCE(o.ordered_at, o.created_at)")} AS created_at,
  {_ts("o.updated_at")} AS updated_at,
  {_ts("o.status_changed_at")} AS status_changed_at,
  {_ts("o.closed_at")} AS closed_at,
  {_ts("COALESCE(o.shipping.shipping_date_actual, o.shipping.shipping_date)")} AS shipping_date,
  {_kop("o.grand_total")} AS grand_total_kop,
  COALESCE({_kop("o.discount_amount")}, 0) AS discount_kop,
  COALESCE({_kop("o.shipping_price")}, 0) AS shipping_price_kop,
  o.payment_status AS payment_status
FROM _stage_parsed r
LEFT JOIN (SELECT id, extra->>'currency_code' AS alias FROM reference
           WHERE integration = $1 AND system = 'keycrm' AND kind = 'source') src
  ON src.id = r.o.source_id
"""

LINES_SQL = f"""
SELECT integration, day, order_id, line_no,
  TRY_CAST(COALESCE(l.offer.id, l.offer_id) AS BIGINT) AS offer_id,
  TRY_CAST(l.offer.product_id AS BIGINT) AS product_id,
  NULLIF(TRIM(COALESCE(l.offer.sku, l.sku)), '') AS sku,
  l.name AS name,
  TRY_CAST(l.quantity AS DOUBLE) AS quantity,
  {_kop("l.price")} AS price_kop,
  GREATEST(0, COALESCE(
     CAST(round((TRY_CAST(l.price AS DECIMAL(18,2)) - TRY_CAST(l.price_sold AS DECIMAL(18,2)))
                * TRY_CAST(l.quantity AS DECIMAL(18,4)) * 100) AS BIGINT),
     {_kop("l.total_discount")}, 0)) AS line_discount_kop
FROM (SELECT integration, day, order_id, CAST(generate_subscripts(products, 1) - 1 AS BIGINT) AS line_no,
             unnest(products) AS l
      FROM _stage_parsed)
"""

BUYERS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _stage_buyers AS
SELECT integration, day, order_id,
  TRY_CAST(COALESCE(o.buyer.id, o.client_id) AS BIGINT) AS buyer_id,
  o.buyer.full_name AS full_name,
  o.buyer.phone AS phone,
  o.buyer.email AS email,
  {_ts("COALESCE(o.ordered_at, o.created_at)")} AS placed_at
FROM _stage_parsed
"""

PAYMENTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _stage_payments AS
SELECT integration, day, order_id,
  TRY_CAST(p.id AS BIGINT) AS payment_id,
  TRY_CAST(p.payment_method_id AS BIGINT) AS method_id,
  {_kop("p.amount")} AS amount_kop,
  p.status AS status,
  {_ts("p.payment_date")} AS payment_date,
  {_ts("COALESCE(p.updated_at, p.created_at)")} AS status_changed_at
FROM (SELECT integration, day, order_id, unnest(payments) AS p FROM _stage_parsed)
WHERE COALESCE(TRY_CAST(p.is_expense AS BOOLEAN), false) = false
"""

# Orders whose shape is broken before any column can be typed: fields the client could not read (it sets
# `_invalid`), lines or payments that are not lists, a buyer that is not an object.  Quarantined with the
# reason, never a failed partition.  Only orders whose parsed struct leaves the question open (no products
# or payments list, no buyer field, the text `"_invalid"` in the payload) are looked at again in the raw JSON.
SHAPE_SQL = """
SELECT day, order_id, reason FROM (
  SELECT day, order_id,
    concat_ws('; ',
      CASE WHEN t[4] IS NOT NULL THEN 'unreadable fields: ' || CAST(payload->'_invalid' AS VARCHAR) END,
      CASE WHEN t[1] NOT IN ('ARRAY', 'NULL') THEN 'products is not a list' END,
      CASE WHEN t[2] NOT IN ('ARRAY', 'NULL') THEN 'payments is not a list' END,
      CASE WHEN t[3] NOT IN ('OBJECT', 'NULL') THEN 'buyer is not an object' END
    ) AS reason
  FROM (SELECT day, order_id, payload, json_type(payload, ['$.products', '$.payments', '$.buyer', '$._invalid']) AS t
        FROM raw_orders WHERE integration = $1 AND order_id IN (
          SELECT order_id FROM _stage_parsed
          WHERE o IS NULL OR o.products IS NULL OR o.payments IS NULL OR maybe_invalid
             OR (o.buyer.id IS NULL AND o.buyer.full_name IS NULL AND o.buyer.phone IS NULL
                 AND o.buyer.email IS NULL))))
WHERE reason <> ''
ORDER BY order_id
"""

# what pandera validates (R-ORCH-4): only the columns the schemas check, in the order the rows are reported
_IN_DAYS = "integration = $1 AND day IN (SELECT UNNEST($2::DATE[]))"
VALIDATE_SQL = {
    "order": "SELECT day, order_id, status_id, created_at, updated_at, currency, grand_total_kop, discount_kop, "
             f"shipping_price_kop FROM stg_orders WHERE {_IN_DAYS} ORDER BY order_id",
    "order_line": "SELECT day, order_id, line_no, offer_id, sku, name, quantity, price_kop, line_discount_kop "
                  f"FROM stg_order_lines WHERE {_IN_DAYS} ORDER BY order_id, line_no",
    "payment": "SELECT day, order_id, payment_id, amount_kop, status FROM _stage_payments "
               "ORDER BY order_id, payment_id",
}
_INT64 = {"order": ["status_id", "grand_total_kop", "discount_kop", "shipping_price_kop"],
          "order_line": ["offer_id", "price_kop", "line_discount_kop"], "payment": ["amount_kop"]}
_STRING = {"order": ["currency"], "order_line": ["sku", "name"], "payment": ["status"]}


@dataclass
class StageResult:
    orders: int
    lines: int
    payments: int
    quarantined: int
    quarantine_sample: pd.DataFrame


def _utc(frame: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """UTC timestamps in the schemas' unit (nanoseconds; DuckDB gives microseconds).  A timestamp beyond the
    nanosecond range (after 2262) keeps its unit: its column then fails the dtype check as a whole (reported
    without a row, so nothing is quarantined for it), as before this conversion."""
    for col in cols:
        values = pd.to_datetime(frame[col], utc=True)
        try:
            values = values.astype("datetime64[ns, UTC]")
        except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
            pass
        frame[col] = values
    return frame


def stage_day(store: Store, day: date, *, strict_names: bool = False) -> StageResult:
    """One day partition: `stage_days` of that day alone."""
    return stage_days(store, [day], strict_names=strict_names)


def stage_days(store: Store, days: Sequence[date], *, strict_names: bool = False) -> StageResult:
    """Stage every day of `days` at once (a backfill's range), replacing exactly those days' staged rows.

    Every order is staged on its own (nothing depends on other orders), so the result equals staging the
    days one by one."""
    days = sorted(set(days))
    with store.connect():  # one connection for the whole step: it makes no API call
        return _stage_days(store, days, strict_names)


def _stage_days(store: Store, days: list[date], strict_names: bool) -> StageResult:
    with store.connect() as con:
        params = [store.integration, days]
        con.execute(PARSED_SQL, params)
        con.execute(BUYERS_SQL)
        con.execute(PAYMENTS_SQL)
        shapes = con.execute(SHAPE_SQL, [store.integration]).df()
        normalised = _normalised_buyers(con, strict_names)
        with transaction(con):
            for table in ("stg_orders", "stg_order_lines", "stg_buyers", "stg_payments", "quarantine"):
                con.execute(f"DELETE FROM {table} WHERE {_IN_DAYS}", params)
            # orders, lines and buyers go straight into their tables (no key can clash there); the rare
            # quarantined order is deleted again below.  Payments wait: a missing or repeated payment id
            # would break the table's key, so they are inserted once validated.
            con.execute(f"INSERT INTO stg_orders BY NAME {ORDERS_SQL}", [store.integration])
            con.execute(f"INSERT INTO stg_order_lines BY NAME {LINES_SQL}")
            con.execute(f"INSERT INTO stg_buyers BY NAME SELECT {_BUYER_COLUMNS} FROM _stage_buyers {_BUYER_JOINS}")
            con.execute("DROP TABLE _stage_parsed")
            con.execute("DROP TABLE _stage_buyers")
            quarantine = _quarantine(con, params, shapes, store.integration)
            bad_ids = pd.DataFrame({"order_id": quarantine["order_id"].dropna().astype("int64").unique()})
            con.register("_stage_bad", bad_ids)
            if len(bad_ids):
                for table in ("stg_orders", "stg_order_lines", "stg_buyers"):
                    con.execute(f"DELETE FROM {table} WHERE {_IN_DAYS} AND order_id IN (SELECT order_id FROM "
                                "_stage_bad)", params)
            con.execute("INSERT INTO stg_payments BY NAME SELECT * FROM _stage_payments "
                        "WHERE order_id NOT IN (SELECT order_id FROM _stage_bad)")
            if len(quarantine):
                con.register("_stage_quarantine", quarantine)
                con.execute("INSERT INTO quarantine (integration, day, entity, order_id, reason, seen_at) "
                            "SELECT integration, day, entity, order_id, reason, seen_at FROM _stage_quarantine")
                con.unregister("_stage_quarantine")
            counts = {table: con.execute(f"SELECT count(*) FROM {table} WHERE {_IN_DAYS}", params).fetchone()[0]
                      for table in ("stg_orders", "stg_order_lines", "stg_payments")}
        con.unregister("_stage_bad")
        con.execute("DROP TABLE _stage_payments")
        for name in normalised:
            con.unregister(name)
    return StageResult(orders=counts["stg_orders"], lines=counts["stg_order_lines"],
                       payments=counts["stg_payments"], quarantined=len(bad_ids),
                       quarantine_sample=quarantine.head(10))


def _quarantine(con, params: list, shapes: pd.DataFrame, integration: str) -> pd.DataFrame:
    """The quarantine rows of the staged days: pandera's failures (R-ORCH-4), broken shapes, payments without
    an id; one row per (order, entity), the first reason in row order."""
    frames = {entity: con.execute(sql, params if "$1" in sql else []).df() for entity, sql in VALIDATE_SQL.items()}
    frames["order"] = _utc(frames["order"], ["created_at", "updated_at"])
    for entity, cols in _INT64.items():
        for col in cols:
            frames[entity][col] = frames[entity][col].astype("Int64")
    for entity, cols in _STRING.items():
        for col in cols:
            frames[entity][col] = frames[entity][col].astype("string")
    frames["order_line"]["quantity"] = frames["order_line"]["quantity"].astype("float64")
    frames["order_line"]["line_no"] = frames["order_line"]["line_no"].astype("int64")
    payments = frames["payment"]
    bad = []
    for schema, entity in ((STAGED_ORDERS, "order"), (STAGED_LINES, "order_line"), (STAGED_PAYMENTS, "payment")):
        frame = frames[entity]
        reasons = failing_rows(schema, frame)
        if len(reasons):
            bad.append(pd.DataFrame({"day": frame.loc[reasons.index, "day"].to_numpy(),
                                     "order_id": frame.loc[reasons.index, "order_id"].to_numpy(),
                                     "entity": entity, "reason": reasons["reason"].to_numpy()}))
    if len(shapes):
        bad.append(pd.DataFrame({"day": shapes["day"].to_numpy(), "order_id": shapes["order_id"].to_numpy(),
                                 "entity": "order", "reason": shapes["reason"].to_numpy()}))
    payments_missing_id = payments["payment_id"].isna()
    if payments_missing_id.any():
        bad.append(pd.DataFrame({"day": payments.loc[payments_missing_id, "day"].to_numpy(),
                                 "order_id": payments.loc[payments_missing_id, "order_id"].to_numpy(),
                                 "entity": "payment", "reason": "payment without id"}))
    quarantine = (pd.concat(bad, ignore_index=True) if bad
                  else pd.DataFrame(columns=["day", "order_id", "entity", "reason"]))
    quarantine = quarantine.drop_duplicates(["order_id", "entity"])
    return quarantine.assign(integration=integration, seen_at=datetime.now(UTC))


_BUYER_COLUMNS = ("_stage_buyers.integration, _stage_buyers.day, _stage_buyers.order_id, buyer_id, "
                  "COALESCE(n.full_name, _stage_buyers.full_name) AS full_name, ph.phone AS phone, "
                  "em.email AS email, placed_at")
_BUYER_JOINS = ("LEFT JOIN _stage_names n ON n.raw = _stage_buyers.full_name "
                "LEFT JOIN _stage_phones ph ON ph.raw = _stage_buyers.phone "
                "LEFT JOIN _stage_emails em ON em.raw = _stage_buyers.email")


def _normalised_buyers(con, strict_names: bool) -> list[str]:
    """Phones, e-mails and (unless strict) names normalised once per DISTINCT raw value (R-CUST-6), registered
    as raw → normalised maps that the insert joins: a million orders of a hundred thousand buyers cost a
    hundred thousand normalisations."""
    maps = {}
    for column, name, fn in (("phone", "_stage_phones", normalize_phone), ("email", "_stage_emails", normalize_email),
                             ("full_name", "_stage_names", _collapse_spaces)):
        raw = con.execute(f"SELECT DISTINCT {column} AS raw FROM _stage_buyers WHERE {column} IS NOT NULL").df()["raw"]
        if column == "full_name" and strict_names:
            raw = raw.iloc[0:0]
        maps[name] = pd.DataFrame({"raw": raw.astype(object), column: fn(raw).astype(object)})
        con.register(name, maps[name])
    return list(maps)


def _collapse_spaces(names: pd.Series) -> pd.Series:
    """Names trimmed, inner whitespace runs collapsed to one space (the display form; R-CUST-6)."""
    return names.str.strip().str.split().str.join(" ")
