"""A small hand-made shop for the document tests (payments, sales, returns, refunds).

The reference books (statuses, payment methods, money accounts, warehouses, the delivery service, the
refund expense item) are the demo shop's, so the example integrations file resolves against them; the
catalogue, stock and orders are replaced by a few items with known stock and orders written to the
second, so every expected document date, sum and stock movement can be stated exactly.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from keybimp_pipeline.emulators import demo_shop
from keybimp_pipeline_tests.pipeline.harness import Harness, write_config
from keybimp_pipeline_tests.servers import keycrm_clock_follows_changes

# KeyCRM status ids of the demo shop
NEW, IN_PROGRESS, DELIVERY, COMPLETED, CANCELED, RETURNED = 1, 3, 8, 12, 19, 20
# KeyCRM payment methods: 1 COD -> "Каса магазину", 2 card and 3 bank -> "Основний рахунок"; 4 is not mapped
COD, CARD, BANK, BONUS = 1, 2, 3, 4

#: sku -> (name, price UAH, Bimp stock on the main warehouse)
ITEMS = {
    "DOC-A": ("Плед «Тест А»", "500", 20),
    "DOC-B": ("Чашка «Тест Б»", "300", 20),
    "DOC-C": ("Свічка «Тест В»", "33.33", 20),
    "DOC-X": ("Рюкзак «Дефіцит»", "200", 2),
    "DOC-Z": ("Листівка-подарунок", "0", 10),
    "DOC-R": ("Рушник «Закритий період»", "150", 10),
}


@cache
def _demo() -> dict:
    return demo_shop.generate_demo(orders=1)


def item_uuid(sku: str) -> str:
    return demo_shop._uuid("doc-test-item", sku)


def base_states(stock: dict[str, int] | None = None) -> tuple[dict, dict]:
    """(KeyCRM state, Bimp state) with the test catalogue and no orders."""
    demo = copy.deepcopy(_demo())
    kc, bimp = demo["keycrm"], demo["bimp"]
    kc["payment_methods"].append({"id": BONUS, "name": "Бонуси", "alias": "bonus", "is_active": True})
    kc["products"], kc["offers"], kc["stocks"], kc["buyers"], kc["orders"] = [], [], [], [], []
    co = bimp["companies"][0]
    service = [n for n in co["nomenclature"] if n["type"] == "service"]
    goods_group = co["nomenclatureGroups"][0]["uuid"]
    unit = next(u["uuid"] for u in co["unitsOfMeasurement"] if u["name"] == "шт")
    main_wh = next(w["uuid"] for w in co["warehouses"] if w.get("main"))
    co["nomenclature"], co["prices"], co["stock"] = list(service), [], []
    stock = {sku: spec[2] for sku, spec in ITEMS.items()} | (stock or {})
    for i, (sku, (name, price, _)) in enumerate(ITEMS.items(), start=1):
        kc["products"].append({"id": i, "name": name, "currency_code": "UAH", "has_offers": False})
        kc["offers"].append({"id": i, "product_id": i, "sku": sku, "price": float(price), "purchased_price": 1})
        co["nomenclature"].append({
            "uuid": item_uuid(sku), "name": name, "fullName": name, "code": f"9{i:08d}", "article": sku,
            "sku": "", "group": goods_group, "supplier": None, "unitOfMeasurementUuid": unit, "isKit": False,
            "type": "goods", "isParent": False, "isModification": False, "parent": None, "expenseAccount": "",
            "description": "", "comment": "", "picture": "", "VATaccounted": False,
            "measurements": {"height": 0, "length": 0, "width": 0, "weight": 0}})
        co["stock"].append({"warehouseUuid": main_wh, "nomenclatureUuid": item_uuid(sku), "quantity": stock[sku]})
    return kc, bimp


def offer_id(sku: str) -> int:
    return list(ITEMS).index(sku) + 1


def order(oid: int, created: str, status: int, lines: list[tuple[str, float] | tuple[str, float, str]], *,
          phone: str | None = None, name: str | None = None, shipping_price: str | None = None,
          shipping_date: str | None = None, status_changed: str | None = None, updated: str | None = None,
          payments: list[dict] | None = None, discount_amount: str | None = None) -> dict:
    """A KeyCRM order as the emulator's state holds it.  ``lines``: (sku, quantity[, price])."""
    products = []
    for ln in lines:
        sku, qty = ln[0], ln[1]
        price = ln[2] if len(ln) > 2 else ITEMS[sku][1]
        products.append({"offer": {"id": offer_id(sku)}, "sku": sku, "quantity": qty, "price": float(price)})
    status_changed = status_changed or created
    out = {
        "id": oid, "source_id": 1, "status_id": status, "ordered_at": created, "created_at": created,
        "updated_at": updated or max(created, status_changed), "status_changed_at": status_changed,
        "closed_at": status_changed if status in (COMPLETED, CANCELED, RETURNED) else None,
        "buyer": {"full_name": name or f"Покупець {oid}", "phone": phone or f"+38067{oid:07d}",
                  "email": f"buyer{oid}@example.com"},
        "products": products, "payments": payments or [],
        "shipping": {"delivery_service_id": 1, "shipping_date": shipping_date} if shipping_date else None,
    }
    if shipping_price is not None:
        out["shipping_price"] = float(shipping_price)
    if discount_amount is not None:
        out["discount_amount"] = float(discount_amount)
    return out


def payment(pid: int, amount: str, method: int, *, paid_at: str, marked_at: str, status: str = "paid") -> dict:
    """``paid_at``: when the buyer paid (payment_date); ``marked_at``: when it was marked so in KeyCRM."""
    return {"id": pid, "payment_method_id": method, "amount": float(amount), "status": status,
            "payment_date": paid_at, "created_at": paid_at, "updated_at": marked_at}


def shop(tmp_path: Path, emulators, monkeypatch: pytest.MonkeyPatch, overrides: dict | None = None) -> Harness:
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP", demo_shop.DEMO_KEYCRM_KEY)
    monkeypatch.setenv("BIMP_EMAIL", demo_shop.DEMO_BIMP_EMAIL)
    monkeypatch.setenv("BIMP_PASSWORD", demo_shop.DEMO_BIMP_PASSWORD)
    monkeypatch.setenv("KEYBIMP_DATA", str(tmp_path))
    keycrm, bimp = emulators
    keycrm_clock_follows_changes(keycrm, monkeypatch)
    config = write_config(tmp_path / "integrations.yaml", keycrm.url, bimp.url, overrides or {})
    return Harness(config, tmp_path, keycrm, bimp)


def reconfigure(h: Harness, overrides: dict) -> None:
    write_config(h.config_path, h.keycrm_server.url, h.bimp_server.url, overrides)


# ---------------------------------------------------------------------------------------- Bimp reading
def dec(value: object) -> Decimal:
    return Decimal(str(value))


def by_comment(docs: list[dict], order_id: int) -> list[dict]:
    """Documents the pipeline wrote for a KeyCRM order (their comment names it)."""
    tag = f"KeyCRM order {order_id} (demo-shop)"
    return [d for d in docs if d.get("comment") == tag or str(d.get("comment", "")).startswith(tag + ",")]


def one(docs: list[dict], order_id: int) -> dict:
    found = by_comment(docs, order_id)
    assert len(found) == 1, f"order {order_id}: {len(found)} documents"
    return found[0]


def stock_of(company: dict, sku: str) -> Decimal:
    main_wh = next(w["uuid"] for w in company["warehouses"] if w.get("main"))
    return sum((dec(s["quantity"]) for s in company["stock"]
                if s["nomenclatureUuid"] == item_uuid(sku) and s["warehouseUuid"] == main_wh), Decimal(0))


def customer_order(company: dict, order_id: int) -> dict:
    found = [o for o in company["customerOrders"] if o.get("docNumber") == f"KC-{order_id}"]
    assert len(found) == 1, f"order {order_id}: {len(found)} customer orders"
    return found[0]


def issues_of(h: Harness, order_id: int) -> dict[str, str]:
    """entity -> code of the order's open sync issues."""
    frame = h.issues()
    mine = frame[frame["order_id"] == order_id]
    return dict(zip(mine["entity"], mine["code"], strict=True))
