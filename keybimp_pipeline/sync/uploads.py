"""Stocks and prices flow Bimp → KeyCRM (R-STOCK, R-PRICE): snapshots, plans (pure rules), uploads.

Stocks run in four steps, one asset each, so a person can see each stage in the lineage:

1. :func:`snapshot_bimp_stock` — Bimp's stock per *mapped* warehouse (quantity, reserved, free);
2. :func:`snapshot_keycrm_stock` — KeyCRM's offers and per-warehouse stock;
3. :func:`plan_stocks` — the pure rule (:func:`rules.stocks.plan_stock_upload`) plus the migration guard
   (R-STOCK-7); it makes no API call, it reads the two snapshots;
4. :func:`upload_stocks` — ``PUT /offers/stocks``, one warehouse a call, batched, each acknowledged batch
   recorded (``stock_acks``) before the next is sent, so a failed upload is resumed without re-sending
   and an unchanged figure is never sent twice (R-STOCK-8).  It refuses a plan the guard blocked and
   nobody confirmed, whoever calls it.

Every DuckDB access is short and never spans an API call (the store's lock rule).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd

from keybimp_pipeline.rules.prices import plan_price_upload
from keybimp_pipeline.rules.stocks import (
    KEYCRM_BATCH_LIMIT,
    GuardResult,
    batches,
    plan_stock_upload,
    stock_guard,
)
from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.sync import reference
from keybimp_pipeline.sync.resolve import Resolved

PARTIAL_SHARE = 0.5  # a Bimp list with fewer than half the rows of the last accepted one is "partial"

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock_acks (integration VARCHAR, sku VARCHAR, warehouse_id BIGINT, quantity DOUBLE,
    acked_at TIMESTAMPTZ, PRIMARY KEY (integration, sku, warehouse_id));
CREATE TABLE IF NOT EXISTS price_acks (integration VARCHAR, sku VARCHAR, price_kop BIGINT, acked_at TIMESTAMPTZ,
    PRIMARY KEY (integration, sku));
CREATE TABLE IF NOT EXISTS upload_state (integration VARCHAR, key VARCHAR, taken_at TIMESTAMPTZ, rows BIGINT,
    payload JSON, PRIMARY KEY (integration, key));
CREATE TABLE IF NOT EXISTS bimp_stock_snapshot (integration VARCHAR, warehouse_uuid VARCHAR,
    keycrm_warehouse_id BIGINT, nomenclature_uuid VARCHAR, article VARCHAR, quantity DOUBLE, reserved DOUBLE,
    free DOUBLE);
CREATE TABLE IF NOT EXISTS keycrm_offers_snapshot (integration VARCHAR, offer_id BIGINT, sku VARCHAR,
    price_kop BIGINT);
CREATE TABLE IF NOT EXISTS keycrm_stock_snapshot (integration VARCHAR, offer_id BIGINT, sku VARCHAR,
    warehouse_id BIGINT, quantity DOUBLE, reserve DOUBLE);
CREATE TABLE IF NOT EXISTS stock_plan (integration VARCHAR, warehouse_id BIGINT, sku VARCHAR, offer_id BIGINT,
    quantity DOUBLE, previous DOUBLE, reason VARCHAR);
"""

BIMP_COLUMNS = ["warehouse_uuid", "keycrm_warehouse_id", "nomenclature_uuid", "article", "quantity", "reserved",
                "free"]
OFFER_COLUMNS = ["offer_id", "sku", "price_kop"]
KC_STOCK_COLUMNS = ["offer_id", "sku", "warehouse_id", "quantity", "reserve"]
PLAN_COLUMNS = ["warehouse_id", "sku", "offer_id", "quantity", "previous", "reason"]


class StockUploadBlocked(RuntimeError):
    """The migration guard stopped this plan and nobody confirmed it (R-STOCK-7)."""


_ENSURED: set[str] = set()  # store files whose upload tables this process has created


def _ensure(store: Store) -> None:
    key = str(store.path)
    if key in _ENSURED and store.path.exists():
        return
    with store.connect() as con:
        con.execute(SCHEMA)
    _ENSURED.add(key)


def _kop(value: object) -> int | None:
    """Money to integer kopiyky via Decimal (never float arithmetic)."""
    if value is None or value == "":
        return None
    return int((Decimal(str(value)) * 100).to_integral_value())


def _now() -> datetime:
    return datetime.now(UTC)


def _replace(store: Store, table: str, frame: pd.DataFrame, columns: list[str]) -> None:
    """Replace this integration's rows of a snapshot table with ``frame`` (typed by the table)."""
    with store.connect() as con:
        con.execute(f"DELETE FROM {table} WHERE integration = ?", [store.integration])
        if len(frame):
            con.register("frame_in", frame[columns])
            cols = ", ".join(columns)
            con.execute(f"INSERT INTO {table} (integration, {cols}) SELECT ?, {cols} FROM frame_in",
                        [store.integration])
            con.unregister("frame_in")


def _read(store: Store, table: str, columns: list[str]) -> pd.DataFrame:
    return store.query(f"SELECT {', '.join(columns)} FROM {table} WHERE integration = ?", [store.integration])


def _put_state(store: Store, key: str, rows: int, payload: dict) -> None:
    with store.connect() as con:
        con.execute("INSERT OR REPLACE INTO upload_state VALUES (?, ?, ?, ?, ?)",
                    [store.integration, key, _now(), int(rows), json.dumps(payload, default=str)])


def get_state(store: Store, key: str) -> dict | None:
    """The stored state ``key`` (``stock_plan``, ``stock_upload``, ``bimp_baseline``, ...) or None."""
    _ensure(store)
    frame = store.query("SELECT taken_at, rows, payload FROM upload_state WHERE integration=? AND key=?",
                        [store.integration, key])
    if frame.empty:
        return None
    payload = json.loads(frame["payload"].iloc[0] or "{}")
    return {"taken_at": frame["taken_at"].iloc[0], "rows": int(frame["rows"].iloc[0]), **payload}


# ------------------------------------------------------------------------------------------- snapshots
def bimp_stock(bimp, resolved: Resolved, warehouses: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Bimp's stock rows of the given warehouses and the row count per warehouse (the partial check)."""
    frames, counts = [], {}
    for wh in warehouses:
        rows = bimp.stock(resolved.organization, wh)
        counts[wh] = len(rows)
        frame = pd.DataFrame(rows, columns=["productId", "article", "quantity", "reserved", "available"])
        frames.append(pd.DataFrame({
            "warehouse_uuid": wh, "nomenclature_uuid": frame["productId"].astype("object"),
            "article": frame["article"].astype("object"),
            "quantity": pd.to_numeric(frame["quantity"]).astype("float64").fillna(0.0),
            "reserved": pd.to_numeric(frame["reserved"]).astype("float64").fillna(0.0)}))
    cols = ["warehouse_uuid", "nomenclature_uuid", "article", "quantity", "reserved"]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    return out, counts


def snapshot_bimp_stock(store: Store, bimp, resolved: Resolved) -> dict:
    """Read Bimp's stock of every mapped warehouse (R-STOCK-3) and keep it: quantity, reserved, free."""
    _ensure(store)
    frame, counts = bimp_stock(bimp, resolved, list(resolved.warehouses))
    frame["keycrm_warehouse_id"] = frame["warehouse_uuid"].map(resolved.warehouses).astype("int64")
    frame["free"] = (frame["quantity"] - frame["reserved"]).clip(lower=0.0)
    summary = {"rows": len(frame), "items": int(frame["nomenclature_uuid"].nunique()),
               "per_warehouse": counts, "quantity": float(frame["quantity"].sum()),
               "reserved": float(frame["reserved"].sum()), "free": float(frame["free"].sum())}
    with store.connect():  # one connection for both writes (after the API calls, never across them)
        _replace(store, "bimp_stock_snapshot", frame, BIMP_COLUMNS)
        _put_state(store, "bimp_stock", len(frame), summary)
    return summary


def keycrm_catalogue(keycrm) -> tuple[pd.DataFrame, pd.DataFrame]:
    """KeyCRM offers (id, sku, price in kopiyky) and their stock per warehouse, from GET /offers/stocks."""
    offers, stock = [], []
    for page in keycrm.iter_offer_stocks(details=True):
        for item in page:
            offers.append({"offer_id": int(item["id"]), "sku": item.get("sku"), "price_kop": _kop(item.get("price"))})
            for wh in item.get("warehouse") or []:
                stock.append({"offer_id": int(item["id"]), "sku": item.get("sku"), "warehouse_id": int(wh["id"]),
                              "quantity": float(wh.get("quantity") or 0), "reserve": float(wh.get("reserve") or 0)})
    offers_frame = pd.DataFrame(offers, columns=OFFER_COLUMNS)
    offers_frame["price_kop"] = offers_frame["price_kop"].astype("Int64")
    stock_frame = pd.DataFrame(stock, columns=KC_STOCK_COLUMNS)
    return offers_frame, stock_frame.astype({"offer_id": "int64", "warehouse_id": "int64",
                                             "quantity": "float64", "reserve": "float64"})


def snapshot_keycrm_stock(store: Store, keycrm) -> dict:
    """Read KeyCRM's offers and per-warehouse stock and keep them (what the plan diffs against)."""
    _ensure(store)
    offers, stock = keycrm_catalogue(keycrm)
    per_wh = stock.groupby("warehouse_id")["quantity"].apply(lambda q: int((q > 0).sum())) if len(stock) else {}
    summary = {"offers": len(offers), "stock_rows": len(stock),
               "nonzero_per_warehouse": {str(k): int(v) for k, v in dict(per_wh).items()}}
    with store.connect():
        _replace(store, "keycrm_offers_snapshot", offers, OFFER_COLUMNS)
        _replace(store, "keycrm_stock_snapshot", stock, KC_STOCK_COLUMNS)
        _put_state(store, "keycrm_stock", len(stock), summary)
    return summary


# ------------------------------------------------------------------------------------------------ plan
@dataclass
class StockPlanResult:
    plan: pd.DataFrame
    guard: GuardResult
    confirmed: bool

    @property
    def may_upload(self) -> bool:
        return not self.guard.blocked or self.confirmed


def _partial_reasons(counts: dict[str, int], baseline: dict | None, names: dict[str, str]) -> list[str]:
    """A mapped warehouse that had rows at the last accepted upload and now has none is a partial list."""
    if not baseline:
        return []
    before = baseline.get("per_warehouse") or {}
    return [f"Bimp returned no stock for warehouse {names.get(wh, wh)} (it had {before[wh]} rows at the last "
            f"upload): the list looks partial"
            for wh, n in counts.items() if n == 0 and int(before.get(wh) or 0) > 0]


def plan_stocks(store: Store, integration, resolved: Resolved, *, confirm: bool = False) -> StockPlanResult:
    """The stock upload plan from the two snapshots, and the migration guard's verdict (R-STOCK-2..8).

    The first upload is the first one never *completed* (a confirmed upload of nothing counts as done).
    "Partial": fewer than half the Bimp rows of the last accepted upload, or a mapped warehouse empty
    that was not.  ``confirm`` lets a blocked plan through once; the verdict is stored for the check and
    for :func:`upload_stocks`.
    """
    _ensure(store)
    with store.connect():  # no API call in here: one connection for the whole step
        cfg = integration.stocks
        bimp = _read(store, "bimp_stock_snapshot", BIMP_COLUMNS)
        offers = _read(store, "keycrm_offers_snapshot", OFFER_COLUMNS)
        kc_stock = _read(store, "keycrm_stock_snapshot", KC_STOCK_COLUMNS)
        acks = store.query("SELECT sku, warehouse_id, quantity FROM stock_acks WHERE integration=?", [store.integration])
        plan = plan_stock_upload(bimp, offers[["offer_id", "sku"]], kc_stock, acks, free_only=cfg.free_only,
                                 warehouse_map=resolved.warehouses, skip_zero=cfg.skip_zero,
                                 all_warehouses=cfg.all_warehouses)
        baseline = get_state(store, "bimp_baseline")
        bimp_state = get_state(store, "bimp_stock") or {}
        expected = int(baseline["rows"] * PARTIAL_SHARE) if baseline else None
        first = get_state(store, "stock_upload") is None and acks.empty
        guard = stock_guard(plan, kc_stock, first_upload=first, bimp_rows=len(bimp), bimp_expected_items=expected,
                            guard_zeroed_share=cfg.guard_zeroed_share, warehouse_ids=list(resolved.warehouses.values()))
        extra = _partial_reasons(bimp_state.get("per_warehouse") or {}, baseline, {})
        if extra and len(bimp):
            guard.reasons.extend(extra)
            guard.blocked = True
        _replace(store, "stock_plan", plan, PLAN_COLUMNS)
        _put_state(store, "stock_plan", len(plan), {
            "blocked": guard.blocked, "confirmed": bool(confirm), "reasons": guard.reasons,
            "changes": guard.changes, "to_zero": guard.to_zero, "nonzero_now": guard.nonzero_now,
            "bimp_rows": len(bimp), "bimp_per_warehouse": bimp_state.get("per_warehouse") or {}})
    return StockPlanResult(plan=plan, guard=guard, confirmed=bool(confirm))


def guard_verdict(store: Store) -> dict:
    """The stored verdict of the last plan: ``{"passed": bool, "reasons": [...], ...}`` (the asset check)."""
    state = get_state(store, "stock_plan")
    if state is None:
        return {"passed": False, "reasons": ["no stock upload plan yet"]}
    return {**state, "passed": (not state["blocked"]) or bool(state["confirmed"])}


# ---------------------------------------------------------------------------------------------- upload
def request_floor(plan: pd.DataFrame, batch_size: int = KEYCRM_BATCH_LIMIT) -> int:
    """The fewest PUT /offers/stocks calls a plan can take: ceil(n / batch) per warehouse with a change."""
    if plan.empty:
        return 0
    return int(sum(-(-int(n) // batch_size) for n in plan.groupby("warehouse_id").size()))


def upload_stocks(store: Store, keycrm, batch_size: int = KEYCRM_BATCH_LIMIT) -> dict:
    """Send the stored plan: one warehouse a call, batched; each acknowledged batch recorded before the next.

    Refuses (:class:`StockUploadBlocked`) a plan the guard blocked and nobody confirmed.  A failed batch
    raises; the batches before it stay acknowledged, so the next run's plan no longer contains them.
    """
    _ensure(store)
    with store.connect():
        verdict = guard_verdict(store)
        plan = _read(store, "stock_plan", PLAN_COLUMNS)
    if not verdict["passed"]:
        raise StockUploadBlocked("the migration guard stopped this stock upload: " + "; ".join(verdict["reasons"]))
    sent = requests = 0
    for warehouse_id, stocks in batches(plan, batch_size):
        requests += keycrm.put_offer_stocks(warehouse_id, stocks, batch_size=batch_size)
        ack = pd.DataFrame({"integration": store.integration, "sku": [s["sku"] for s in stocks],
                            "warehouse_id": int(warehouse_id), "quantity": [float(s["quantity"]) for s in stocks],
                            "acked_at": _now()})
        with store.connect() as con:
            con.register("ack_in", ack)
            con.execute("INSERT OR REPLACE INTO stock_acks SELECT * FROM ack_in")
            con.unregister("ack_in")
        sent += len(stocks)
    result = {"stocks_sent": sent, "requests": requests, "request_floor": request_floor(plan, batch_size),
              "warehouses": int(plan["warehouse_id"].nunique()) if len(plan) else 0, "batch_size": batch_size,
              "to_zero": int((plan["quantity"] <= 0).sum()) if len(plan) else 0}
    with store.connect():
        _put_state(store, "stock_upload", sent, result)
        bimp_state = get_state(store, "bimp_stock")
        if bimp_state is not None:  # the Bimp list this upload trusted is the baseline for "partial" next time
            _put_state(store, "bimp_baseline", bimp_state["rows"],
                       {"per_warehouse": bimp_state.get("per_warehouse") or {}})
    return result


# ---------------------------------------------------------------------------------------------- prices
def _price_list(store: Store, wanted: str | None) -> str:
    lists = reference.load(store, "bimp", "price_list")
    if wanted:
        hit = lists[(lists["id"] == wanted) | (lists["name"] == wanted)]
        if len(hit) != 1:
            raise ValueError(f"prices.price_list: '{wanted}' matches {len(hit)} Bimp price lists "
                             f"(candidates: {', '.join(lists['name'].astype(str))})")
        return str(hit["id"].iloc[0])
    mains = [i for i, e in zip(lists["id"], lists["extra"], strict=True) if json.loads(e or "{}").get("main")]
    if not mains:
        raise ValueError("prices.price_list is empty and Bimp has no main price list: name one")
    return str(mains[0])


def _not_found_markdown(not_found: pd.DataFrame, limit: int = 20) -> str:
    if not_found.empty:
        return "every priced Bimp item is found in KeyCRM by SKU"
    lines = [(f"**{len(not_found)} Bimp items have no KeyCRM offer with the same SKU** (with create_missing each "
             "becomes a new KeyCRM product; an SKU differing by one character makes a duplicate)"), "",
             (f"the first {limit} of {len(not_found)}:" if len(not_found) > limit else f"all {len(not_found)}:"), "",
             "| Bimp SKU | name | price | KeyCRM SKU that looks the same |", "|---|---|---|---|"]
    for row in not_found.head(limit).itertuples(index=False):
        similar = row.similar_keycrm_sku if isinstance(row.similar_keycrm_sku, str) else ""
        lines.append(f"| {str(row.sku).replace('|', '/')} | {str(row.name).replace('|', '/')} "
                     f"| {Decimal(int(row.price_kop)) / 100} | {similar} |")
    return "\n".join(lines)


def price_upload(store: Store, integration, resolved: Resolved, bimp, keycrm, *, dry_run: bool = False,
                 batch_size: int = KEYCRM_BATCH_LIMIT) -> dict:
    """Prices of the chosen Bimp price list → KeyCRM offers (R-PRICE-2..6).

    Only changed prices are sent, by offer id, in ``PUT /offers`` batches; with ``create_missing`` the
    items KeyCRM lacks by SKU are created (``POST /products``, one each: the only call that returns the
    id).  ``would_create`` and ``not_found_preview`` are computed before anything is written, so the run's
    metadata shows the would-be duplicates; ``dry_run`` stops there.
    """
    _ensure(store)
    cfg = integration.prices
    price_list = _price_list(store, cfg.price_list)
    rows = []
    for item in bimp.prices(price_list_uuids=[price_list]):
        for pl in item.get("priceLists") or []:
            if pl.get("uuid") == price_list and pl.get("price") is not None:
                rows.append({"nomenclature_uuid": item["uuid"], "price_kop": _kop(pl["price"])})
    bimp_prices = pd.DataFrame(rows, columns=["nomenclature_uuid", "price_kop"])
    nomenclature = reference.load(store, "bimp", "nomenclature")
    items = pd.DataFrame({"uuid": nomenclature["id"], "name": nomenclature["name"],
                          "article": nomenclature["article"], "group_uuid": nomenclature["parent"]})
    groups_ref = reference.load(store, "bimp", "nomenclature_group")
    groups = pd.DataFrame({"uuid": groups_ref["id"], "name": groups_ref["name"], "parent_uuid": groups_ref["parent"]})
    group = None
    if cfg.product_group:
        hit = groups[(groups["uuid"] == cfg.product_group) | (groups["name"] == cfg.product_group)]
        if len(hit) != 1:  # never fall back to "all items" on a typo
            raise ValueError(f"prices.product_group: '{cfg.product_group}' matches {len(hit)} Bimp groups "
                             f"(candidates: {', '.join(groups['name'].astype(str))})")
        group = str(hit["uuid"].iloc[0])
    offers, _ = keycrm_catalogue(keycrm)
    if cfg.skip_out_of_stock:
        warehouses = list(resolved.warehouses) or [resolved.warehouse]
        stock, _ = bimp_stock(bimp, resolved, [w for w in warehouses if w])
        free = pd.DataFrame({"nomenclature_uuid": stock["nomenclature_uuid"],
                             "free": (stock["quantity"] - stock["reserved"]).clip(lower=0)})
    else:
        free = pd.DataFrame({"nomenclature_uuid": pd.Series(dtype="object"), "free": pd.Series(dtype="float64")})
    acks = store.query("SELECT sku, price_kop FROM price_acks WHERE integration=?", [store.integration])
    plan = plan_price_upload(bimp_prices, items, groups, offers, free, acks, product_group=group,
                             skip_out_of_stock=cfg.skip_out_of_stock, create_missing=cfg.create_missing)
    result = {"price_list": price_list, "bimp_prices": len(bimp_prices), "updates": len(plan.updates),
              "would_create": len(plan.not_found), "to_create": len(plan.to_create),
              "similar_skus": int(plan.not_found["similar_keycrm_sku"].notna().sum()),
              "requests": 0, "created": 0, "dry_run": bool(dry_run),
              "not_found_preview": _not_found_markdown(plan.not_found)}
    if dry_run:
        return result
    if len(plan.updates):
        updates = plan.updates
        for start in range(0, len(updates), batch_size):
            chunk = updates.iloc[start:start + batch_size]
            payload = [{"id": int(o), "price": Decimal(int(p)) / 100}
                       for o, p in zip(chunk["offer_id"], chunk["price_kop"], strict=True)]
            result["requests"] += keycrm.put_offers(payload, batch_size=batch_size)
            _ack_prices(store, chunk[["sku", "price_kop"]])
    for r in plan.to_create.itertuples(index=False):
        keycrm.create_product({"name": r.name, "sku": r.sku, "price": Decimal(int(r.price_kop)) / 100})
        result["requests"] += 1
        result["created"] += 1
        _ack_prices(store, pd.DataFrame({"sku": [r.sku], "price_kop": [int(r.price_kop)]}))
    _put_state(store, "price_upload", result["updates"] + result["created"],
               {k: v for k, v in result.items() if k != "not_found_preview"})
    return result


def _ack_prices(store: Store, frame: pd.DataFrame) -> None:
    ack = pd.DataFrame({"integration": store.integration, "sku": frame["sku"].astype(str).to_numpy(),
                        "price_kop": frame["price_kop"].astype("int64").to_numpy(), "acked_at": _now()})
    ack = ack.drop_duplicates("sku", keep="last")
    with store.connect() as con:
        con.register("ack_in", ack)
        con.execute("INSERT OR REPLACE INTO price_acks SELECT * FROM ack_in")
        con.unregister("ack_in")
