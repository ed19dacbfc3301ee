"""Match: staged buyers and lines against Bimp's counterparties and items (the rules do the deciding).

The Bimp side is the reference snapshot plus what the ledger says the pipeline created since, so a
counterparty created by yesterday's partition is found by today's even when the snapshot predates it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

import pandas as pd

from keybimp_pipeline.rules.customers import match_customers
from keybimp_pipeline.rules.products import match_products
from keybimp_pipeline.storage.db import Store
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


def _match_days(store: Store, days: list[date], settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    ledger = Ledger(store)
    params = [store.integration, days]
    buyers = store.query("SELECT * FROM stg_buyers WHERE integration=? AND day IN (SELECT UNNEST(?::DATE[])) "
                         "ORDER BY day, order_id", params)
    lines = store.query("SELECT * FROM stg_order_lines WHERE integration=? AND day IN (SELECT UNNEST(?::DATE[])) "
                        "ORDER BY order_id, line_no", params)
    buyers["buyer_id"] = buyers["buyer_id"].astype("Int64")
    buyers["placed_at"] = pd.to_datetime(buyers["placed_at"], utc=True)
    lines["offer_id"] = lines["offer_id"].astype("Int64")
    counterparties, external_ids = bimp_counterparties(store, ledger)
    customers = match_customers(buyers, counterparties, external_ids, settings.customers, run=buyers["day"])
    items, created_items = bimp_items(store, ledger)
    products = match_products(lines[["order_id", "line_no", "offer_id", "sku", "name"]], items, created_items,
                              settings.products)
    customers = customers.assign(integration=store.integration, day=buyers["day"].to_numpy())
    products = products.assign(integration=store.integration, day=lines["day"].to_numpy())
    store.replace_days("matched_customers", days, customers[[
        "integration", "day", "order_id", "buyer_id", "outcome", "counterparty_uuid", "matched_by", "create_key",
        "code", "detail"]])
    store.replace_days("matched_products", days, products[[
        "integration", "day", "order_id", "line_no", "outcome", "nomenclature_uuid", "create_key", "code",
        "detail"]])
    return customers, products
