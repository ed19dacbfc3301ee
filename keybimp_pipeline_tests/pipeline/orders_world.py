"""Small hand-made shops for the order pipeline tests: a KeyCRM account and the Bimp company it feeds.

Why hand-made: each rule is proved on the two or three orders that show it, so a failing test points at
the rule, not at a generated crowd.  The reference books (statuses, warehouses, money accounts, the
delivery service item...) come from the demo generator, so the shipped example integrations file resolves
against them; catalogue, buyers, counterparties, stock and orders are empty until a test adds them.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from keybimp_pipeline.clients.keycrm import reset_shared_limiters
from keybimp_pipeline.emulators.demo_shop import (
    DEMO_BIMP_EMAIL,
    DEMO_BIMP_PASSWORD,
    DEMO_KEYCRM_KEY,
    generate_demo,
)
from keybimp_pipeline_tests.pipeline.harness import Harness, deep_update, write_config
from keybimp_pipeline_tests.servers import keycrm_clock_follows_changes

DAY = "2026-11-02"
# KeyCRM status ids of the demo shop (alias in the example file's `statuses` table)
NEW, IN_PROGRESS, DELIVERY, COMPLETED, CANCELED, RETURNED = 1, 3, 8, 12, 19, 20

# Everything but customer orders switched off, so each test sees only the rule it proves.
ORDERS_ONLY = {
    "payments": {"enabled": False},
    "sales": {"enabled": False},
    "returns": {"goods": {"enabled": False}, "money": {"enabled": False}},
    "stocks": {"enabled": False},
    "prices": {"enabled": False},
}


def at(hh: int, mm: int = 0, ss: int = 0, day: str = DAY) -> str:
    """A KeyCRM timestamp (UTC) on the test day; 08:00Z is 10:00 in Kyiv, safely inside the shop day."""
    return f"{day}T{hh:02d}:{mm:02d}:{ss:02d}.000000Z"


@functools.lru_cache(maxsize=1)
def _base() -> dict:
    demo = generate_demo(orders=1)
    k, b = demo["keycrm"], demo["bimp"]
    for key in ("products", "offers", "stocks", "buyers", "orders"):
        k[key] = []
    c = b["companies"][0]
    c["nomenclature"] = [n for n in c["nomenclature"] if n.get("type") == "service"]
    retail = [cp for cp in c["counterparties"] if cp["name"] == "Роздрібний покупець"]
    c["counterparties"] = retail
    c["contracts"] = [ct for ct in c["contracts"] if ct["counterparty"] in {cp["uuid"] for cp in retail}]
    for key in ("stock", "prices", "customerOrders", "salesInvoices", "customerPayments", "customerReturns",
                "refunds", "counterpartyExternalIds"):
        c[key] = []
    return demo


@dataclass
class World:
    """The two states, built by the helpers below, then PUT to the emulators by `Shop.load`."""

    keycrm: dict = field(default_factory=lambda: copy.deepcopy(_base()["keycrm"]))
    bimp: dict = field(default_factory=lambda: copy.deepcopy(_base()["bimp"]))
    _n: int = 0

    @property
    def company(self) -> dict:
        return self.bimp["companies"][0]

    def ref(self, collection: str, name: str) -> str:
        return next(x["uuid"] for x in self.company[collection] if x["name"] == name)

    @property
    def warehouse(self) -> str:
        return self.ref("warehouses", "Основний склад")

    def _uuid(self, kind: str) -> str:
        self._n += 1
        return f"00000000-0000-4000-8000-{kind[:4].encode().hex()}{self._n:04d}"[:36]

    # ---- Bimp ----------------------------------------------------------------------------------
    def item(self, name: str, article: str = "", stock: float | None = None) -> str:
        uuid = self._uuid("item")
        self.company["nomenclature"].append({
            "uuid": uuid, "name": name, "fullName": name, "code": f"9{self._n:08d}", "article": article,
            "sku": "", "group": self.ref("nomenclatureGroups", "Товари"), "supplier": None,
            "unitOfMeasurementUuid": self.ref("unitsOfMeasurement", "шт"), "isKit": False, "type": "goods",
            "isParent": False, "isModification": False, "parent": None, "expenseAccount": "",
            "description": "", "comment": "", "picture": "", "VATaccounted": False,
            "measurements": {"height": 0, "length": 0, "width": 0, "weight": 0}})
        if stock is not None:
            self.company["stock"].append({"warehouseUuid": self.warehouse, "nomenclatureUuid": uuid,
                                          "quantity": stock})
        return uuid

    def counterparty(self, name: str, phone: str = "", email: str = "") -> str:
        uuid = self._uuid("cpty")
        self.company["counterparties"].append({
            "uuid": uuid, "name": name, "edrpou": "", "individualTaxNumber": "", "email": email,
            "phoneNumber": phone, "isCustomer": True, "isSupplier": False, "isSoleProprietor": False,
            "code": f"8{self._n:08d}", "printName": name, "addresses": []})
        return uuid

    # ---- KeyCRM --------------------------------------------------------------------------------
    def offer(self, offer_id: int, sku: str | None, name: str, price: float = 100) -> int:
        self.keycrm["products"].append({"id": offer_id, "name": name, "sku": None, "price": price,
                                        "currency_code": "UAH"})
        self.keycrm["offers"].append({"id": offer_id, "product_id": offer_id, "sku": sku, "price": price,
                                      "purchased_price": 1, "properties": []})
        return offer_id

    def buyer(self, buyer_id: int, name: str, phone: str | None = None, email: str | None = None) -> int:
        self.keycrm["buyers"].append({"id": buyer_id, "full_name": name, "phone": [phone] if phone else [],
                                      "email": [email] if email else []})
        return buyer_id

    def order(self, order_id: int, buyer_id: int | None, lines: list[tuple], *, status: int = NEW,
              placed: str | None = None, shipping_price: float | None = None, **extra) -> dict:
        """`lines`: (offer id, quantity, price) or (None, quantity, price, sku, name) for an offer-less line."""
        placed = placed or at(8, order_id % 60)
        products = []
        for line in lines:
            if line[0] is not None:
                offer = next(o for o in self.keycrm["offers"] if o["id"] == line[0])
                product = next(p for p in self.keycrm["products"] if p["id"] == offer["product_id"])
                products.append({"offer": {"id": line[0]}, "sku": offer["sku"], "name": product["name"],
                                 "quantity": line[1], "price": line[2]})
            else:
                products.append({"sku": line[3], "name": line[4], "quantity": line[1], "price": line[2]})
        order = {"id": order_id, "source_id": 1, "client_id": buyer_id, "status_id": status,
                 "ordered_at": placed, "created_at": placed, "updated_at": placed, "status_changed_at": placed,
                 "products": products, "payments": [], **extra}
        if shipping_price is not None:
            order["shipping_price"] = shipping_price
            order["shipping"] = {"delivery_service_id": 1, "recipient_full_name": "x"}
        self.keycrm["orders"].append(order)
        return order


class Shop:
    """A World on the session's emulators plus a Harness on a fresh data directory."""

    def __init__(self, emulators, tmp_path: Path, monkeypatch) -> None:
        self.keycrm_server, self.bimp_server = emulators
        self.tmp = tmp_path
        monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP", DEMO_KEYCRM_KEY)
        monkeypatch.setenv("BIMP_EMAIL", DEMO_BIMP_EMAIL)
        monkeypatch.setenv("BIMP_PASSWORD", DEMO_BIMP_PASSWORD)
        monkeypatch.setenv("KEYBIMP_DATA", str(tmp_path))
        reset_shared_limiters()
        self.world = World()
        self.config_path = tmp_path / "integrations.yaml"
        self.configure()
        self.h = Harness(self.config_path, tmp_path, self.keycrm_server, self.bimp_server)
        keycrm_clock_follows_changes(self.keycrm_server, monkeypatch)

    def configure(self, overrides: dict | None = None, *, replace: dict | None = None) -> None:
        """Write the integrations file: the example, deep-merged with `overrides`; `replace` sets whole
        top-level sections (e.g. a `statuses` table without some row, which a merge cannot express)."""
        write_config(self.config_path, self.keycrm_server.url, self.bimp_server.url,
                     deep_update(ORDERS_ONLY, overrides or {}))
        if replace:
            data = yaml.safe_load(self.config_path.read_text())
            data["integrations"][0].update(copy.deepcopy(replace))
            self.config_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))

    def load(self) -> None:
        """PUT both states, clear faults, real clocks, generous KeyCRM rate."""
        for server in (self.keycrm_server, self.bimp_server):
            server.post("/__admin/clock", {"now": None})
        self.keycrm_server.put_state(self.world.keycrm)
        self.bimp_server.put_state(self.world.bimp)
        self.keycrm_server.post("/__admin/faults", {"requests_per_minute": 100_000})
        self.bimp_server.post("/__admin/faults", {})

    def sync(self, day: str = DAY, **kw) -> dict:
        return self.h.sync_day(day, documents=False, **kw)

    # ---- looking at the result ------------------------------------------------------------------
    @property
    def company(self) -> dict:
        return self.h.bimp_company()

    def orders(self) -> dict[int, dict]:
        """Bimp customer orders by KeyCRM order id (the pipeline's docNumber KC-<id>)."""
        return {int(o["docNumber"][3:]): o for o in self.company["customerOrders"]
                if str(o.get("docNumber", "")).startswith("KC-")}

    def issues(self) -> dict[int, set[str]]:
        frame = self.h.issues()
        out: dict[int, set[str]] = {}
        for order_id, code in zip(frame["order_id"], frame["code"], strict=True):
            out.setdefault(int(order_id), set()).add(code)
        return out

    def issue_detail(self, order_id: int, code: str) -> str:
        frame = self.h.issues()
        hit = frame[(frame["order_id"] == order_id) & (frame["code"] == code)]
        assert len(hit) == 1, frame[["order_id", "code", "detail"]].to_string()
        return str(hit["detail"].iloc[0])

    def bimp_writes(self) -> int:
        """Bimp write calls served so far (every POST that is not a read or auth); compare before/after."""
        counts = self.bimp_server.admin.get("/__admin/requests").json()["by_path"]
        return sum(n for path, n in counts.items()
                   if path.startswith("POST ") and "api-read" not in path and "/auth/" not in path)

    def keycrm_requests(self) -> int:
        return int(self.keycrm_server.admin.get("/__admin/requests").json()["total"])

    def stock_row(self, item_uuid: str) -> dict:
        """The emulator's inventory row (quantity, reserved, available) of an item on the main warehouse."""
        with self.h.bimp() as b:
            rows = b.stock(self.world.ref("organizations", self.world.company["organizations"][0]["name"]),
                           self.world.warehouse)
        return next((r for r in rows if r["productId"] == item_uuid),
                    {"productId": item_uuid, "quantity": 0, "reserved": 0, "available": 0})


def new_and_existing(shop: Shop, *, shipping_price: float | None = None) -> World:
    """Order 1 needs a new counterparty (Анна) and a new item (LAMP-7) besides an existing one (CH-1, 10 in
    stock); order 2 matches an existing counterparty (Петро) and item.  Products by SKU with creation on,
    reserve available_only.  The caller adds what its test needs, then calls ``shop.load()``."""
    w = shop.world
    w.item("Стілець синій", "CH-1", stock=10)
    w.counterparty("Петро Іваненко", phone="+380509876543")
    w.offer(1, "CH-1", "Стілець синій", 500)
    w.offer(2, "LAMP-7", "Лампа настільна", 800)
    w.buyer(1, "Анна Коваль", phone="0671234567")
    w.buyer(2, "Петро Іваненко", phone="0509876543")
    extra = {} if shipping_price is None else {"shipping_price": shipping_price}
    w.order(1, 1, [(1, 2, 500), (2, 1, 800)], **extra)
    w.order(2, 2, [(1, 1, 500)])
    shop.configure({"products": {"search_by": "sku", "allow_create": True}, "main": {"reserve": "available_only"}})
    return w
