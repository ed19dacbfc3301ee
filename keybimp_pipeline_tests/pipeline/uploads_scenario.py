"""Hand-made stock and price scenarios on both emulators, for the stock and price upload tests.

The reference books (statuses, warehouses, price lists, groups, the delivery item, ...) come from a tiny
demo shop so the example integration resolves; the catalogue, stock, reserves and prices are replaced by
the few items a test names.  ``run_stocks`` / ``run_prices`` call exactly the steps the Dagster assets
call, in their order.
"""

from __future__ import annotations

import copy
import functools
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from keybimp_pipeline.emulators.demo_shop import (
    DEMO_BIMP_EMAIL,
    DEMO_BIMP_PASSWORD,
    DEMO_KEYCRM_KEY,
    generate_demo,
)
from keybimp_pipeline.sync import uploads
from keybimp_pipeline.sync.resolve import resolve
from keybimp_pipeline_tests.pipeline.harness import Harness, write_config

WH = {"main": "Основний склад", "kyiv": "Склад Київ"}  # Bimp warehouse names, mapped to KeyCRM 1 and 2
CRM_WH = {"main": 1, "kyiv": 2}
_NS = uuidlib.UUID("5a0c2f0e-0d1b-4c55-9d7e-3b1f2a6c8e01")


def nom_uuid(sku: str) -> str:
    return str(uuidlib.uuid5(_NS, sku))


@dataclass
class Item:
    """One item as both systems see it.  ``bimp`` / ``reserved``: warehouse key → units (absent = Bimp does
    not list it there); ``crm``: KeyCRM warehouse id → units; ``crm_sku``: KeyCRM's SKU when it differs
    from Bimp's article (None with ``in_crm`` False: KeyCRM lacks the item)."""

    sku: str
    bimp: dict[str, float] = field(default_factory=dict)
    reserved: dict[str, float] = field(default_factory=dict)
    crm: dict[int, float] = field(default_factory=dict)
    price: float | None = 100          # Bimp main (retail) price list, UAH
    wholesale: float | None = None     # Bimp "Оптова" price list
    crm_price: float = 100
    crm_sku: str | None = None
    in_bimp: bool = True
    in_crm: bool = True
    group: str = "apparel"             # Bimp group key: goods | apparel | home | shop


@functools.lru_cache(maxsize=1)
def _base() -> tuple[dict, dict]:
    demo = generate_demo(orders=1)
    return demo["keycrm"], demo["bimp"]


def states(items: list[Item]) -> tuple[dict, dict]:
    """KeyCRM and Bimp emulator states holding exactly ``items`` (plus the reference books)."""
    kc_base, bimp_base = _base()
    kc = copy.deepcopy(kc_base)
    bimp = copy.deepcopy(bimp_base)
    co = bimp["companies"][0]
    wh_uuid = {k: next(w["uuid"] for w in co["warehouses"] if w["name"] == n) for k, n in WH.items()}
    groups = {g["name"]: g["uuid"] for g in co["nomenclatureGroups"]}
    group_uuid = {"goods": groups["Товари"], "apparel": groups["Одяг"], "home": groups["Дім і текстиль"],
                  "shop": groups["Інтернет-магазин"]}
    retail = next(p["uuid"] for p in co["priceLists"] if p["main"])
    wholesale = next(p["uuid"] for p in co["priceLists"] if not p["main"])
    template = next(n for n in co["nomenclature"] if n["type"] == "goods")
    services = [n for n in co["nomenclature"] if n["type"] == "service"]

    nomenclature, prices, stock, orders = list(services), [], [], []
    products, offers, crm_stocks = [], [], []
    for i, it in enumerate(items, start=1):
        if it.in_bimp:
            uid = nom_uuid(it.sku)
            nomenclature.append({**copy.deepcopy(template), "uuid": uid, "name": f"Товар {it.sku}",
                                 "fullName": f"Товар {it.sku}", "code": f"{900000 + i:09d}", "article": it.sku,
                                 "group": group_uuid[it.group]})
            if it.price is not None:
                prices.append({"nomenclatureUuid": uid, "priceListUuid": retail, "amount": it.price,
                               "date": "2026-08-01T00:00:00"})
            if it.wholesale is not None:
                prices.append({"nomenclatureUuid": uid, "priceListUuid": wholesale, "amount": it.wholesale,
                               "date": "2026-08-01T00:00:00"})
            for wh, q in it.bimp.items():
                stock.append({"warehouseUuid": wh_uuid[wh], "nomenclatureUuid": uid, "quantity": q})
            for wh, r in it.reserved.items():
                orders.append({"uuid": str(uuidlib.uuid5(_NS, f"order:{it.sku}:{wh}")), "warehouse": wh_uuid[wh],
                               "products": [{"nomenclatureUuid": uid, "count": r, "reserve": r}]})
        if it.in_crm:
            products.append({"id": i, "name": f"Товар {it.sku}", "currency_code": "UAH", "has_offers": True})
            offers.append({"id": i, "product_id": i, "sku": it.crm_sku or it.sku, "price": it.crm_price,
                           "purchased_price": 0})
            for wid, q in it.crm.items():
                crm_stocks.append({"offer_id": i, "warehouse_id": wid, "quantity": q, "reserve": 0})
    co.update(nomenclature=nomenclature, prices=prices, stock=stock, customerOrders=orders, salesInvoices=[],
              customerPayments=[], customerReturns=[], refunds=[])
    kc.update(products=products, offers=offers, stocks=crm_stocks, orders=[], buyers=[])
    return kc, bimp


@pytest.fixture
def make_shop(emulators, tmp_path, monkeypatch):
    """``make_shop(items, overrides)`` → an :class:`UploadShop`; lifts the emulator's rate limit for the test
    (the client still throttles itself) and clears the faults afterwards."""
    keycrm, _ = emulators
    keycrm.post("/__admin/faults", {"requests_per_minute": 100_000})

    def make(items: list[Item], overrides: dict | None = None) -> UploadShop:
        return UploadShop(emulators, tmp_path, monkeypatch, items, overrides)

    yield make
    keycrm.post("/__admin/faults", {})


class UploadShop:
    """The emulators loaded with a scenario, an integrations file and the steps the assets run."""

    def __init__(self, emulators, tmp_path: Path, monkeypatch, items: list[Item], overrides: dict | None = None):
        keycrm, bimp = emulators
        monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP", DEMO_KEYCRM_KEY)
        monkeypatch.setenv("BIMP_EMAIL", DEMO_BIMP_EMAIL)
        monkeypatch.setenv("BIMP_PASSWORD", DEMO_BIMP_PASSWORD)
        monkeypatch.setenv("KEYBIMP_DATA", str(tmp_path))
        self.keycrm_server, self.bimp_server = keycrm, bimp
        self.config = write_config(tmp_path / "integrations.yaml", keycrm.url, bimp.url, overrides)
        monkeypatch.setenv("KEYBIMP_CONFIG", str(self.config))
        self.harness = Harness(self.config, tmp_path, keycrm, bimp)
        self.load(items)

    def load(self, items: list[Item]) -> None:
        kc, bimp = states(items)
        self.keycrm_server.put_state(kc)
        self.bimp_server.put_state(bimp)
        self.harness.refresh_reference()

    def set_bimp_stock(self, sku: str, warehouse: str, quantity: float | None) -> None:
        """Change one Bimp stock figure in place (None removes the row: Bimp no longer lists the item there)."""
        state = self.bimp_server.state()
        co = state["companies"][0]
        wh = next(w["uuid"] for w in co["warehouses"] if w["name"] == WH[warehouse])
        rows = [s for s in co["stock"] if not (s["warehouseUuid"] == wh and s["nomenclatureUuid"] == nom_uuid(sku))]
        if quantity is not None:
            rows.append({"warehouseUuid": wh, "nomenclatureUuid": nom_uuid(sku), "quantity": quantity})
        co["stock"] = rows
        self.bimp_server.put_state(state)

    def add_bimp_reserve(self, sku: str, warehouse: str, quantity: float) -> None:
        """A Bimp customer order reserving ``quantity`` of ``sku`` (free stock drops, on hand stays)."""
        state = self.bimp_server.state()
        co = state["companies"][0]
        wh = next(w["uuid"] for w in co["warehouses"] if w["name"] == WH[warehouse])
        n = len(co["customerOrders"]) + 1
        co["customerOrders"].append({"uuid": str(uuidlib.uuid5(_NS, f"order:{sku}:{warehouse}:{n}")),
                                     "warehouse": wh, "products": [{"nomenclatureUuid": nom_uuid(sku),
                                                                    "count": quantity, "reserve": quantity}]})
        self.bimp_server.put_state(state)

    def set_bimp_price(self, sku: str, amount: float) -> None:
        state = self.bimp_server.state()
        co = state["companies"][0]
        retail = next(p["uuid"] for p in co["priceLists"] if p["main"])
        co["prices"] = [p for p in co["prices"]
                        if not (p["nomenclatureUuid"] == nom_uuid(sku) and p["priceListUuid"] == retail)]
        co["prices"].append({"nomenclatureUuid": nom_uuid(sku), "priceListUuid": retail, "amount": amount,
                             "date": "2026-08-02T00:00:00"})
        self.bimp_server.put_state(state)

    # ---------------------------------------------------------------- the asset steps
    def resolved(self):
        if getattr(self, "_resolved", None) is None:
            self._resolved = resolve(self.harness.store, self.harness.settings)
            assert not self._resolved.problems, self._resolved.problems
        return self._resolved

    def run_stocks(self, *, confirm: bool = False) -> dict:
        """Snapshots → plan + guard → upload (only when the guard lets it through), as the assets do."""
        h, store, resolved = self.harness, self.harness.store, self.resolved()
        with h.bimp() as b, h.keycrm() as k:
            uploads.snapshot_bimp_stock(store, b, resolved)
            uploads.snapshot_keycrm_stock(store, k)
            plan = uploads.plan_stocks(store, h.settings, resolved, confirm=confirm)
            out = {"plan": plan, "upload": None}
            if plan.may_upload:
                out["upload"] = uploads.upload_stocks(store, k)
        return out

    def run_prices(self, *, dry_run: bool = False) -> dict:
        h = self.harness
        with h.bimp() as b, h.keycrm() as k:
            return uploads.price_upload(h.store, h.settings, self.resolved(), b, k, dry_run=dry_run)

    # ---------------------------------------------------------------- what KeyCRM holds
    def crm_stock(self) -> dict[tuple[str, int], float]:
        """KeyCRM quantity by (sku, warehouse id), from the emulator's state."""
        state = self.keycrm_server.state()
        sku = {o["id"]: o["sku"] for o in state["offers"]}
        return {(sku[s["offer_id"]], int(s["warehouse_id"])): float(s["quantity"]) for s in state["stocks"]}

    def crm_offers(self) -> dict[str, dict]:
        return {o["sku"]: o for o in self.keycrm_server.state()["offers"]}

    def requests(self) -> dict[str, int]:
        return self.keycrm_server.admin.get("/__admin/requests").json()["counts"]

    def reset_requests(self) -> None:
        """Zero the KeyCRM request log by re-putting the same state (PUT /__admin/state resets the counts)."""
        self.keycrm_server.put_state(self.keycrm_server.state())

    def puts(self, path: str = "/v1/offers/stocks") -> int:
        return int(self.requests().get(f"PUT {path}", 0))
