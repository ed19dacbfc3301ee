"""Stocks and prices flow Bimp → KeyCRM (R-STOCK, R-PRICE): snapshots, plans (pure rules), uploads.

What KeyCRM acknowledged is recorded batch by batch (`uploads_ack`), so a failed batch is retried
without re-sending the batches already acknowledged, and an unchanged figure is never sent twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd

from keybimp_pipeline.rules.prices import plan_price_upload
from keybimp_pipeline.rules.stocks import GuardResult, batches, plan_stock_upload, stock_guard
from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.sync import reference
from keybimp_pipeline.sync.resolve import Resolved

ACK_SCHEMA = """
CREATE TABLE IF NOT EXISTS stock_acks (integration VARCHAR, sku VARCHAR, warehouse_id BIGINT, quantity DOUBLE,
    acked_at TIMESTAMPTZ, PRIMARY KEY (integration, sku, warehouse_id));
CREATE TABLE IF NOT EXISTS price_acks (integration VARCHAR, sku VARCHAR, price_kop BIGINT, acked_at TIMESTAMPTZ,
    PRIMARY KEY (integration, sku));
CREATE TABLE IF NOT EXISTS snapshots (integration VARCHAR, kind VARCHAR, taken_at TIMESTAMPTZ, rows BIGINT,
    payload JSON, PRIMARY KEY (integration, kind));
"""


def _ensure(store: Store) -> None:
    with store.connect() as con:
        con.execute(ACK_SCHEMA)


def _kop(value: object) -> int | None:
    if value is None:
        return None
    return int((Decimal(str(value)) * 100).to_integral_value())


@dataclass
class StockSnapshot:
    bimp: pd.DataFrame            # warehouse_uuid, nomenclature_uuid, article, quantity, reserved
    keycrm_offers: pd.DataFrame   # offer_id, sku, price_kop
    keycrm_stock: pd.DataFrame    # offer_id, sku, warehouse_id, quantity
    bimp_rows_by_warehouse: dict[str, int] = field(default_factory=dict)


def bimp_stock(bimp, resolved: Resolved, warehouses: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    frames, counts = [], {}
    for wh in warehouses:
        rows = bimp.stock(resolved.organization, wh)
        counts[wh] = len(rows)
        frame = pd.DataFrame(rows, columns=["productId", "article", "quantity", "reserved", "available"])
        frames.append(pd.DataFrame({
            "warehouse_uuid": wh, "nomenclature_uuid": frame["productId"], "article": frame["article"],
            "quantity": frame["quantity"].astype(float), "reserved": frame["reserved"].fillna(0).astype(float)}))
    cols = ["warehouse_uuid", "nomenclature_uuid", "article", "quantity", "reserved"]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)), counts


def keycrm_catalogue(keycrm) -> tuple[pd.DataFrame, pd.DataFrame]:
    offers, stock = [], []
    for page in keycrm.iter_offer_stocks(details=True):
        for item in page:
            offers.append({"offer_id": int(item["id"]), "sku": item.get("sku"), "price_kop": _kop(item.get("price"))})
            for wh in item.get("warehouse") or []:
                stock.append({"offer_id": int(item["id"]), "sku": item.get("sku"), "warehouse_id": int(wh["id"]),
                              "quantity": float(wh.get("quantity") or 0)})
    offers_frame = pd.DataFrame(offers, columns=["offer_id", "sku", "price_kop"])
    offers_frame["price_kop"] = offers_frame["price_kop"].astype("Int64")
    return offers_frame, pd.DataFrame(stock, columns=["offer_id", "sku", "warehouse_id", "quantity"])


@dataclass
class StockPlanResult:
    plan: pd.DataFrame
    guard: GuardResult
    confirmed: bool


def plan_stocks(store: Store, integration, resolved: Resolved, bimp, keycrm, *, confirm: bool = False
                ) -> StockPlanResult:
    _ensure(store)
    cfg = integration.stocks
    bimp_frame, counts = bimp_stock(bimp, resolved, list(resolved.warehouses))
    offers, kc_stock = keycrm_catalogue(keycrm)
    acks = store.query("SELECT sku, warehouse_id, quantity FROM stock_acks WHERE integration=?", [store.integration])
    plan = plan_stock_upload(bimp_frame, offers[["offer_id", "sku"]], kc_stock, acks, free_only=cfg.free_only,
                             warehouse_map=resolved.warehouses, skip_zero=cfg.skip_zero,
                             all_warehouses=cfg.all_warehouses)
    previous = store.query("SELECT rows FROM snapshots WHERE integration=? AND kind='bimp_stock'",
                           [store.integration])
    expected = int(previous["rows"].iloc[0] * 0.5) if len(previous) else None  # half of last time: partial
    guard = stock_guard(plan, kc_stock, first_upload=acks.empty, bimp_rows=len(bimp_frame),
                        bimp_expected_items=expected, guard_zeroed_share=cfg.guard_zeroed_share,
                        warehouse_ids=list(resolved.warehouses.values()))
    with store.connect() as con:
        con.execute("INSERT OR REPLACE INTO snapshots VALUES (?, 'stock_plan', ?, ?, ?)",
                    [store.integration, datetime.now(UTC), len(plan),
                     json.dumps({"blocked": guard.blocked, "confirmed": confirm, "reasons": guard.reasons})])
        con.register("plan_in", plan)
        con.execute("CREATE OR REPLACE TABLE stock_plan AS SELECT * FROM plan_in")
        con.unregister("plan_in")
        if not guard.blocked or confirm:
            con.execute("INSERT OR REPLACE INTO snapshots VALUES (?, 'bimp_stock', ?, ?, NULL)",
                        [store.integration, datetime.now(UTC), len(bimp_frame)])
    return StockPlanResult(plan=plan, guard=guard, confirmed=confirm)


def upload_stocks(store: Store, keycrm, plan: pd.DataFrame, batch_size: int = 500) -> dict:
    """One warehouse a call, batched; each acknowledged batch is recorded before the next is sent."""
    _ensure(store)
    sent = requests = 0
    for warehouse_id, stocks in batches(plan, batch_size):
        keycrm.put_offer_stocks(warehouse_id, stocks, batch_size=batch_size)
        requests += 1
        ack = pd.DataFrame({"integration": store.integration, "sku": [s["sku"] for s in stocks],
                            "warehouse_id": warehouse_id, "quantity": [float(s["quantity"]) for s in stocks],
                            "acked_at": datetime.now(UTC)})
        with store.connect() as con:
            con.register("ack_in", ack)
            con.execute("INSERT OR REPLACE INTO stock_acks SELECT * FROM ack_in")
            con.unregister("ack_in")
        sent += len(stocks)
    floor = sum(-(-n // batch_size) for n in plan.groupby("warehouse_id").size()) if len(plan) else 0
    return {"stocks_sent": sent, "requests": requests, "request_floor": int(floor)}


def price_upload(store: Store, integration, resolved: Resolved, bimp, keycrm, *, dry_run: bool = False) -> dict:
    _ensure(store)
    cfg = integration.prices
    lists = reference.load(store, "bimp", "price_list")
    price_list = None
    if cfg.price_list:
        hit = lists[(lists["id"] == cfg.price_list) | (lists["name"] == cfg.price_list)]
        price_list = hit["id"].iloc[0] if len(hit) else None
    else:
        mains = [i for i, e in zip(lists["id"], lists["extra"], strict=True) if json.loads(e).get("main")]
        price_list = mains[0] if mains else None
    if price_list is None:
        raise ValueError(f"price list {cfg.price_list or '(main)'} not found in Bimp")
    rows = []
    for item in bimp.prices(price_list_uuids=[price_list]):
        for pl in item.get("priceLists") or []:
            if pl.get("uuid") == price_list and pl.get("price") is not None:
                rows.append({"nomenclature_uuid": item["uuid"], "price_kop": _kop(pl["price"])})
    bimp_prices = pd.DataFrame(rows, columns=["nomenclature_uuid", "price_kop"])
    items = reference.load(store, "bimp", "nomenclature")
    items = pd.DataFrame({"uuid": items["id"], "name": items["name"], "article": items["article"],
                          "group_uuid": items["parent"]})
    groups = reference.load(store, "bimp", "nomenclature_group")
    groups = pd.DataFrame({"uuid": groups["id"], "name": groups["name"], "parent_uuid": groups["parent"]})
    group = None
    if cfg.product_group:
        hit = groups[(groups["uuid"] == cfg.product_group) | (groups["name"] == cfg.product_group)]
        group = hit["uuid"].iloc[0] if len(hit) else None
    offers, _ = keycrm_catalogue(keycrm)
    stock, _ = bimp_stock(bimp, resolved, list(resolved.warehouses) or [resolved.warehouse])
    free = pd.DataFrame({"nomenclature_uuid": stock["nomenclature_uuid"],
                         "free": (stock["quantity"] - stock["reserved"]).clip(lower=0)})
    acks = store.query("SELECT sku, price_kop FROM price_acks WHERE integration=?", [store.integration])
    plan = plan_price_upload(bimp_prices, items, groups, offers, free, acks, product_group=group,
                             skip_out_of_stock=cfg.skip_out_of_stock, create_missing=cfg.create_missing)
    result = {"price_list": price_list, "updates": len(plan.updates), "would_create": len(plan.not_found),
              "to_create": len(plan.to_create), "requests": 0, "created": 0,
              "similar_skus": int(plan.not_found["similar_keycrm_sku"].notna().sum()) if len(plan.not_found) else 0}
    if dry_run:
        return result
    if len(plan.updates):
        payload = [{"id": int(r.offer_id), "price": Decimal(int(r.price_kop)) / 100}
                   for r in plan.updates.itertuples()]
        result["requests"] += keycrm.put_offers(payload)
        _ack_prices(store, plan.updates[["sku", "price_kop"]])
    for r in plan.to_create.itertuples():
        keycrm.create_product({"name": r.name, "sku": r.sku, "price": Decimal(int(r.price_kop)) / 100})
        result["requests"] += 1
        result["created"] += 1
        _ack_prices(store, pd.DataFrame({"sku": [r.sku], "price_kop": [int(r.price_kop)]}))
    return result


def _ack_prices(store: Store, frame: pd.DataFrame) -> None:
    ack = pd.DataFrame({"integration": store.integration, "sku": frame["sku"].astype(str),
                        "price_kop": frame["price_kop"].astype("int64"), "acked_at": datetime.now(UTC)})
    ack = ack.drop_duplicates("sku", keep="last")
    with store.connect() as con:
        con.register("ack_in", ack)
        con.execute("INSERT OR REPLACE INTO price_acks SELECT * FROM ack_in")
        con.unregister("ack_in")
