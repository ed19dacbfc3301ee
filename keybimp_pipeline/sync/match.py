"""Match: staged buyers and lines against Bimp's counterparties and items (the rules do the deciding).

The Bimp side is the reference snapshot plus what the ledger says the pipeline created since, so a
counterparty created by yesterday's partition is found by today's even when the snapshot predates it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import date

import pandas as pd

from keybimp_pipeline.rules.customers import match_customers
from keybimp_pipeline.rules.products import match_products
from keybimp_pipeline.storage.db import Store, transaction
from keybimp_pipeline.storage.ledger import DONE, Ledger
from keybimp_pipeline.sync import reference


def _ledger_details(ledger: Ledger, entity: str) -> pd.DataFrame:
    entries = ledger.entries(entity)
    entries = entries[entries["state"] == DONE]
    details = [json.loads(d) if isinstance(d, str) else (d or {}) for d in entries["detail"]]
    frame = pd.DataFrame(details, index=entries.index)
    frame["uuid"] = entries["bimp_uuid"].to_numpy()
    frame["crm_id"] = entries["crm_id"].to_numpy()
    return frame.reset_index(drop=True)


def bimp_counterparties(store: Store, ledger: Ledger) -> tuple[pd.DataFrame, pd.DataFrame]:
    snap = reference.load(store, "bimp", "counterparty").rename(columns={"id": "uuid"})
    created = _ledger_details(ledger, "counterparty")
    cols = ["uuid", "name", "phone", "email"]
    for col in cols:
        if col not in created:
            created[col] = None
    counterparties = pd.concat([snap[cols], created[cols]], ignore_index=True).drop_duplicates("uuid")
    ext = reference.load(store, "bimp", "counterparty_external_id")
    ext = ext.rename(columns={"id": "counterparty_uuid", "alias": "external_id"})[["counterparty_uuid", "external_id"]]
    if "buyer_id" in created:
        made = created.dropna(subset=["buyer_id"])
        ext = pd.concat([ext, pd.DataFrame({"counterparty_uuid": made["uuid"],
                                            "external_id": made["buyer_id"].astype("int64").astype(str)})],
                        ignore_index=True).drop_duplicates()
    return counterparties.reset_index(drop=True), ext.reset_index(drop=True)


def bimp_items(store: Store, ledger: Ledger) -> tuple[pd.DataFrame, pd.DataFrame]:
    snap = reference.load(store, "bimp", "nomenclature").rename(columns={"id": "uuid"})
    snap["type"] = [json.loads(e).get("type", "goods") if e else "goods" for e in snap["extra"]]
    created = _ledger_details(ledger, "product")
    for col in ["name", "sku", "offer_id"]:
        if col not in created:
            created[col] = None
    created_items = pd.DataFrame({"uuid": created["uuid"], "name": created["name"], "article": created["sku"],
                                  "type": "goods"})
    items = pd.concat([snap[["uuid", "name", "article", "type"]], created_items], ignore_index=True)
    items = items.drop_duplicates("uuid").reset_index(drop=True)
    by_offer = created.dropna(subset=["offer_id"])
    ids = pd.DataFrame({"offer_id": by_offer["offer_id"].astype("int64"), "uuid": by_offer["uuid"]})
    return items, ids.reset_index(drop=True)


def match_day(store: Store, day: date, settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Matched customers and products of the day's staged orders, stored and returned."""
    return match_days(store, [day], settings)


def match_days(store: Store, days: Sequence[date], settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`match_day` of every day in `days` at once, stored and returned (a backfill's range).

    The Bimp side (snapshot + ledger) is loaded once.  Each day stays its own matching *run* (R-CUST-9:
    a counterparty created for an earlier order of the run is a candidate for later ones): the per-day
    writer re-matches each day before it writes, and sees the previous days' creations in the ledger, so
    the range gives exactly the tables that matching the days one by one gives."""
    days = sorted(set(days))
    with store.connect():  # one connection for the whole step: it makes no API call
        return _match_days(store, days, settings)


_IN_DAYS = "integration=? AND day IN (SELECT UNNEST(?::DATE[]))"
_SAME_LINE_KEY = ("l.offer_id IS NOT DISTINCT FROM k.offer_id AND l.sku IS NOT DISTINCT FROM k.sku "
                  "AND l.name IS NOT DISTINCT FROM k.name")
_PRODUCT_COLUMNS = ["integration", "day", "order_id", "line_no", "outcome", "nomenclature_uuid", "create_key",
                    "code", "detail"]


def _match_days(store: Store, days: list[date], settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    ledger = Ledger(store)
    params = [store.integration, days]
    items, created_items = bimp_items(store, ledger)
    with store.connect() as con, ThreadPoolExecutor(max_workers=1) as pool:
        # products are matched mostly inside DuckDB (which releases the GIL) on a cursor of their own, while
        # customers are matched in pandas on this thread: the two use both cores
        cursor = con.cursor()
        lines_done = pool.submit(_match_lines, cursor, store.integration, days, settings, items, created_items)
        try:
            buyers = store.query(f"SELECT * FROM stg_buyers WHERE {_IN_DAYS} ORDER BY day, order_id", params)
            buyers["buyer_id"] = buyers["buyer_id"].astype("Int64")
            buyers["placed_at"] = pd.to_datetime(buyers["placed_at"], utc=True)
            counterparties, external_ids = bimp_counterparties(store, ledger)
            customers = match_customers(buyers, counterparties, external_ids, settings.customers,
                                        run=buyers["day"])
            customers = customers.assign(integration=store.integration, day=buyers["day"].to_numpy())
            store.replace_days("matched_customers", days, customers[[
                "integration", "day", "order_id", "buyer_id", "outcome", "counterparty_uuid", "matched_by",
                "create_key", "code", "detail"]])
            products = lines_done.result()
        finally:
            wait([lines_done])
            cursor.close()
    return customers, products


def _match_lines(con, integration: str, days: list[date], settings, items: pd.DataFrame,
                 created_items: pd.DataFrame) -> pd.DataFrame:
    """Matched products of the days' lines, decided once per DISTINCT (offer, SKU, name), stored and returned.

    A line's decision depends on nothing but its offer, SKU and name (and, for a line with none of them, its
    own position: `line-<order>-<line>`), so the rules run on the few thousand distinct combinations of a
    million lines; the decisions reach the lines by a join inside DuckDB.  `con` is this step's own cursor."""
    params = [integration, days]
    con.execute("CREATE OR REPLACE TEMP TABLE _match_keys AS SELECT (row_number() OVER () - 1) AS gid, * FROM "
                f"(SELECT DISTINCT offer_id, sku, name FROM stg_order_lines WHERE {_IN_DAYS})", params)
    keys = con.execute("SELECT gid, offer_id, sku, name FROM _match_keys ORDER BY gid").df()
    keys["offer_id"] = keys["offer_id"].astype("Int64")
    decided = match_products(
        pd.DataFrame({"order_id": keys["gid"].to_numpy("int64"), "line_no": 0, "offer_id": keys["offer_id"],
                      "sku": keys["sku"], "name": keys["name"]}),
        items, created_items, settings.products)
    decided = decided.assign(gid=keys["gid"].to_numpy("int64"))
    # a line with no offer, SKU or name gets a key of its own line (products.py `_create_keys`)
    own_key = decided["create_key"].astype("string").str.startswith("line-").fillna(False).to_numpy(bool)
    decided["own_key"] = own_key
    con.register("_match_decided", decided.drop(columns=["order_id", "line_no"]))
    lines = f"""
        SELECT l.integration, l.day, l.order_id, l.line_no, d.outcome, d.nomenclature_uuid,
               CASE WHEN d.own_key THEN 'line-' || l.order_id || '-' || l.line_no ELSE d.create_key END
                 AS create_key, d.code, d.detail
        FROM stg_order_lines l JOIN _match_keys k ON {_SAME_LINE_KEY} JOIN _match_decided d ON d.gid = k.gid
        WHERE l.{_IN_DAYS.replace(" day IN", " l.day IN")}"""
    with transaction(con):
        con.execute(f"DELETE FROM matched_products WHERE {_IN_DAYS}", params)
        con.execute(f"INSERT INTO matched_products ({', '.join(_PRODUCT_COLUMNS)}) {lines}", params)
    # the returned frame: positions of the lines (integers only) and the distinct decisions taken by position
    placed = con.execute(f"""
        SELECT l.day, l.order_id, l.line_no, k.gid FROM stg_order_lines l JOIN _match_keys k ON {_SAME_LINE_KEY}
        WHERE l.{_IN_DAYS.replace(" day IN", " l.day IN")} ORDER BY l.order_id, l.line_no""", params).df()
    con.unregister("_match_decided")
    con.execute("DROP TABLE _match_keys")
    at = placed["gid"].to_numpy("int64")
    out = pd.DataFrame({"order_id": placed["order_id"].to_numpy("int64"),
                        "line_no": placed["line_no"].to_numpy("int64")})
    for col in ["outcome", "nomenclature_uuid", "create_key", "code", "detail"]:
        out[col] = decided[col].to_numpy(dtype=object)[at]
    own = own_key[at]
    if own.any():
        out.loc[own, "create_key"] = ("line-" + out.loc[own, "order_id"].astype(str) + "-"
                                      + out.loc[own, "line_no"].astype(str)).to_numpy()
    return out.assign(integration=integration, day=placed["day"].to_numpy())
