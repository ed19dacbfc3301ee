"""In-memory business state of the Bimp emulator: companies, their books and documents, stock and reserves.

Why a separate module: the HTTP layer (app.py) only parses, authenticates and routes; every rule the
real Bimp enforces on data (stock, reserve, closed period, zero price, paid sums) lives here so it can be
read in one place.  Items are kept in the shape their vendor read endpoint returns (EMULATOR.md "State
format"), so exporting the state is a plain dump.  Numbers are Decimal (JSON parsed with
``parse_float=Decimal``), never float.

Reserved quantities are never stored: they follow from customer-order lines (``reserve`` on a line is the
part of the line still reserved; a sale lowers it and raises ``shiped``).  A running total per
(warehouse, nomenclature) is maintained incrementally so that reads stay O(1) per item.
"""

from __future__ import annotations

import uuid as uuidlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

Num = Decimal | int

# reference books: state key -> (readList path segment)
REF_KEYS = [
    "organizations", "warehouses", "projects", "linesOfBusiness", "currencies", "cashRegistries",
    "bankAccounts", "unitsOfMeasurement", "expenseItems", "chartOfAccounts", "users", "employees", "vat",
    "orderStatuses", "paymentStatuses", "contractTypes", "contractStatuses",
]
DOC_KEYS = [
    "nomenclatureGroups", "nomenclature", "counterparties", "contracts", "priceLists",
    "customerOrders", "salesInvoices", "customerPayments", "customerReturns", "refunds", "purchaseInvoices",
]
DOC_PREFIX = {
    "customerOrders": "ЗП", "salesInvoices": "РН", "customerPayments": "ОП", "customerReturns": "ПТ",
    "refunds": "ПК", "purchaseInvoices": "НТ",
}
DOC_TITLE = {
    "customerOrders": "Замовлення покупця", "salesInvoices": "Видаткова накладна",
    "customerPayments": "Оплата від покупця", "customerReturns": "Повернення від покупця",
    "refunds": "Повернення коштів покупцю", "purchaseInvoices": "Надходження товарів",
}
DEFAULT_CONTRACT_TYPES = [
    {"uuid": "6f1c1a52-0000-4000-8000-000000000001", "name": "З покупцем", "code": 1},
    {"uuid": "6f1c1a52-0000-4000-8000-000000000002", "name": "З постачальником", "code": 2},
    {"uuid": "6f1c1a52-0000-4000-8000-000000000003", "name": "Інше", "code": 3},
]
DEFAULT_CONTRACT_STATUSES = [{"uuid": "6f1c1a52-0000-4000-8000-000000000010", "name": "Діючий"}]


class ApiError(Exception):
    """A refusal in the PROPOSED envelope of bimp-notes §7.1; ``details`` is the machine-readable reason."""

    def __init__(self, status: int, details: str, message: str = "", extra: dict | None = None) -> None:
        super().__init__(message or details)
        self.status = status
        self.details = details
        self.message = message or details
        self.extra = extra or {}


def validation(field: str, why: str = "invalid or missing") -> ApiError:
    return ApiError(400, f"validation: {field}", f"Field '{field}': {why}")


def business(reason: str, message: str) -> ApiError:
    return ApiError(400, reason, message)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def parse_dt(value: Any) -> datetime | None:
    """Parse an ISO date or date-time; aware values become naive UTC (Bimp document dates carry no zone)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError("not a string")
    text = value.strip().replace("Z", "+00:00")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def fmt_dt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def digits(phone: Any) -> str:
    return "".join(ch for ch in str(phone or "") if ch.isdigit())


class Coll:
    """An insertion-ordered collection with an index list, so a page is an O(count) slice."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.order: list[str] = []

    def add(self, item: dict) -> dict:
        if item["uuid"] not in self.items:
            self.order.append(item["uuid"])
        self.items[item["uuid"]] = item
        return item

    def get(self, key: Any) -> dict | None:
        return self.items.get(key) if isinstance(key, str) else None

    def values(self) -> Iterable[dict]:
        items = self.items
        return (items[k] for k in self.order)

    def page(self, offset: int, count: int) -> list[dict]:
        items = self.items
        return [items[k] for k in self.order[offset:offset + count]]

    def __len__(self) -> int:
        return len(self.order)


class Company:
    """One Bimp company: reference books, catalogue, documents, stock, and the indexes that keep reads fast."""

    def __init__(self, raw: dict) -> None:
        self.uuid: str = str(raw["uuid"])
        self.code: str = str(raw.get("code") or "")
        self.name: str = str(raw.get("name") or "")
        self.createdAt: str = str(raw.get("createdAt") or "2024-01-01T00:00:00.000Z")
        settings = raw.get("settings") or {}
        self.settings: dict = {
            "zero_price_control": bool(settings.get("zero_price_control", False)),
            "closed_before": settings.get("closed_before"),
        }
        self.refs: dict[str, list[dict]] = {k: list(raw.get(k) or []) for k in REF_KEYS}
        if not self.refs["contractTypes"]:
            self.refs["contractTypes"] = [dict(t) for t in DEFAULT_CONTRACT_TYPES]
        if not self.refs["contractStatuses"]:
            self.refs["contractStatuses"] = [dict(t) for t in DEFAULT_CONTRACT_STATUSES]
        self.ref_index: dict[str, dict[str, dict]] = {
            k: {str(i.get("uuid")): i for i in v} for k, v in self.refs.items()
        }
        self.c: dict[str, Coll] = {k: Coll() for k in DOC_KEYS}
        # indexes
        self.nom_by_article: dict[str, list[str]] = defaultdict(list)
        self.nom_by_name: dict[str, list[str]] = defaultdict(list)
        self.nom_by_integration: dict[tuple[str, str], str] = {}
        self.cp_by_phone: dict[str, list[str]] = defaultdict(list)
        self.cp_by_email: dict[str, list[str]] = defaultdict(list)
        self.cp_by_name: dict[str, list[str]] = defaultdict(list)
        self.cp_by_integration: dict[tuple[str, str], str] = {}
        self.contracts_by_cp: dict[str, list[str]] = defaultdict(list)
        self.sales_by_order: dict[str, list[str]] = defaultdict(list)
        self.payments_by_order: dict[str, list[str]] = defaultdict(list)
        self.ext_ids: dict[tuple[str, str], str] = {}          # (counterpartyUuid, source) -> externalId
        self.ext_by_source: dict[tuple[str, str], str] = {}    # (source, externalId) -> counterpartyUuid
        self.prices: dict[tuple[str, str], list[tuple[str, Num]]] = defaultdict(list)  # (pl, nom) -> [(date, amt)]
        self.stock: dict[tuple[str, str], Num] = {}
        self.reserved: dict[tuple[str, str], Num] = defaultdict(int)
        self.wh_noms: dict[str, set[str]] = defaultdict(set)
        self.order_contrib: dict[str, dict[tuple[str, str], Num]] = {}
        self.sale_release: dict[str, dict[str, Num]] = {}  # sale uuid -> {nom: reserve released}
        self.counters: dict[str, int] = defaultdict(int)
        self.stock_version = 0
        self._inventory_cache: dict[tuple, list[dict]] = {}

        for g in raw.get("nomenclatureGroups") or []:
            self.c["nomenclatureGroups"].add(g)
        for item in raw.get("nomenclature") or []:
            self.add_nomenclature(item)
        for cp in raw.get("counterparties") or []:
            self.add_counterparty(cp)
        for ct in raw.get("contracts") or []:
            self.add_contract(ct)
        for e in raw.get("counterpartyExternalIds") or []:
            self.save_ext(str(e["counterpartyUuid"]), str(e["source"]), str(e["externalId"]))
        for pl in raw.get("priceLists") or []:
            self.c["priceLists"].add(pl)
        for p in raw.get("prices") or []:
            self.add_price(str(p["priceListUuid"]), str(p["nomenclatureUuid"]), p["amount"],
                           str(p.get("date") or "2024-01-01T00:00:00"))
        for s in raw.get("stock") or []:
            key = (str(s["warehouseUuid"]), str(s["nomenclatureUuid"]))
            self.stock[key] = s.get("quantity") or 0
            self.wh_noms[key[0]].add(key[1])
        for key in ("customerOrders", "salesInvoices", "customerPayments", "customerReturns", "refunds",
                    "purchaseInvoices"):
            for doc in raw.get(key) or []:
                self.c[key].add(doc)
                self.counters[key] += 1
        for order in self.c["customerOrders"].values():
            self.set_order_contrib(order)
        for sale in self.c["salesInvoices"].values():
            link = (sale.get("invoiceForCustomerPayment") or {}).get("uuid")
            if link:
                self.sales_by_order[link].append(sale["uuid"])
        for pay in self.c["customerPayments"].values():
            for d in pay.get("paymentDetails") or []:
                self.payments_by_order[str(d.get("invoiceForCustomerpayment"))].append(pay["uuid"])

    # ------------------------------------------------------------------ export
    def export(self) -> dict:
        out: dict[str, Any] = {
            "uuid": self.uuid, "code": self.code, "name": self.name, "createdAt": self.createdAt,
            "settings": dict(self.settings),
        }
        for k in REF_KEYS:
            out[k] = self.refs[k]
        for k in DOC_KEYS:
            out[k] = list(self.c[k].values())
        out["counterpartyExternalIds"] = [
            {"counterpartyUuid": cp, "source": src, "externalId": ext} for (cp, src), ext in self.ext_ids.items()
        ]
        out["prices"] = [
            {"priceListUuid": pl, "nomenclatureUuid": nom, "amount": amt, "date": date}
            for (pl, nom), rows in self.prices.items() for date, amt in rows
        ]
        out["stock"] = [
            {"warehouseUuid": wh, "nomenclatureUuid": nom, "quantity": q} for (wh, nom), q in self.stock.items()
        ]
        return out

    # ------------------------------------------------------------------ helpers
    def ref(self, kind: str, key: Any) -> dict | None:
        return self.ref_index[kind].get(key) if isinstance(key, str) else None

    def default_ref(self, kind: str) -> dict | None:
        items = self.refs[kind]
        for i in items:
            if i.get("main"):
                return i
        return items[0] if items else None

    def named(self, kind: str, key: Any) -> dict | None:
        """A ``{uuid, name}`` reference as document reads return them (None when unset)."""
        if not key:
            return None
        item = self.ref(kind, key) if kind in self.ref_index else None
        if item is None and kind in self.c:
            item = self.c[kind].get(key)
        return {"uuid": key, "name": (item or {}).get("name") or ""}

    def next_number(self, kind: str) -> str:
        self.counters[kind] += 1
        return f"{DOC_PREFIX[kind]}-{self.counters[kind]:06d}"

    def check_period(self, date: datetime) -> None:
        closed = self.settings.get("closed_before")
        if not closed:
            return
        try:
            closed_dt = parse_dt(closed)
        except (ValueError, TypeError):
            return
        if closed_dt is not None and date < closed_dt:
            raise business("period_closed",
                           f"The document date {fmt_dt(date)} falls in the closed period (before {closed}).")

    # ------------------------------------------------------------------ catalogue
    def add_nomenclature(self, item: dict) -> dict:
        self.c["nomenclature"].add(item)
        u = item["uuid"]
        if item.get("article"):
            self.nom_by_article[str(item["article"])].append(u)
        if item.get("name"):
            self.nom_by_name[str(item["name"]).casefold()].append(u)
        integ = item.get("integration")
        if isinstance(integ, dict) and integ.get("externalId"):
            self.nom_by_integration[(str(integ.get("system")), str(integ["externalId"]))] = u
        return item

    def reindex_nomenclature(self, item: dict, old: dict) -> None:
        u = item["uuid"]
        if old.get("article") != item.get("article"):
            if old.get("article"):
                lst = self.nom_by_article[str(old["article"])]
                if u in lst:
                    lst.remove(u)
            if item.get("article"):
                self.nom_by_article[str(item["article"])].append(u)
        if old.get("name") != item.get("name"):
            if old.get("name"):
                lst = self.nom_by_name[str(old["name"]).casefold()]
                if u in lst:
                    lst.remove(u)
            if item.get("name"):
                self.nom_by_name[str(item["name"]).casefold()].append(u)
        self._inventory_cache.clear()

    def is_goods(self, nom: str) -> bool:
        item = self.c["nomenclature"].get(nom)
        return bool(item) and item.get("type", "goods") != "service"

    def add_counterparty(self, cp: dict) -> dict:
        self.c["counterparties"].add(cp)
        u = cp["uuid"]
        if cp.get("phoneNumber"):
            self.cp_by_phone[digits(cp["phoneNumber"])].append(u)
        if cp.get("email"):
            self.cp_by_email[str(cp["email"]).strip().casefold()].append(u)
        if cp.get("name"):
            self.cp_by_name[str(cp["name"]).strip().casefold()].append(u)
        integ = cp.get("integration")
        if isinstance(integ, dict) and integ.get("externalId"):
            self.cp_by_integration[(str(integ.get("system")), str(integ["externalId"]))] = u
        return cp

    def add_contract(self, ct: dict) -> dict:
        self.c["contracts"].add(ct)
        if ct.get("counterparty"):
            self.contracts_by_cp[str(ct["counterparty"])].append(ct["uuid"])
        return ct

    def save_ext(self, cp: str, source: str, ext: str) -> None:
        source = source.strip().lower()
        old = self.ext_ids.get((cp, source))
        if old is not None:
            self.ext_by_source.pop((source, old), None)
        self.ext_ids[(cp, source)] = ext
        self.ext_by_source[(source, ext)] = cp

    def add_price(self, pl: str, nom: str, amount: Num, date: str) -> None:
        rows = self.prices[(pl, nom)]
        rows.append((date, amount))
        rows.sort(key=lambda r: r[0])

    def price_at(self, pl: str, nom: str, begin: datetime | None, end: datetime | None) -> Num | None:
        """The latest price dated in [begin, end) (either end open)."""
        best = None
        for date, amt in self.prices.get((pl, nom), ()):
            try:
                d = parse_dt(date)
            except (ValueError, TypeError):
                continue
            if d is None or (begin is not None and d < begin) or (end is not None and d >= end):
                continue
            best = amt
        return best

    # ------------------------------------------------------------------ stock and reserves
    def qty(self, key: tuple[str, str]) -> Num:
        return self.stock.get(key, 0)

    def _touch(self, key: tuple[str, str]) -> None:
        self.wh_noms[key[0]].add(key[1])
        self.stock_version += 1
        self._inventory_cache.clear()

    def move_stock(self, key: tuple[str, str], delta: Num) -> None:
        self.stock[key] = self.qty(key) + delta
        self._touch(key)

    @staticmethod
    def line_key(order: dict, line: dict) -> tuple[str, str]:
        return (str(line.get("warehouse") or order.get("warehouse") or ""), str(line.get("nomenclatureUuid")))

    def contrib_of(self, order: dict, lines: list[dict] | None = None) -> dict[tuple[str, str], Num]:
        out: dict[tuple[str, str], Num] = defaultdict(int)
        for line in order.get("products") or [] if lines is None else lines:
            r = line.get("reserve") or 0
            if r and self.is_goods(str(line.get("nomenclatureUuid"))):
                out[self.line_key(order, line)] += r
        return dict(out)

    def set_order_contrib(self, order: dict) -> None:
        old = self.order_contrib.get(order["uuid"], {})
        new = self.contrib_of(order)
        for key, q in old.items():
            self.reserved[key] -= q
            self._touch(key)
        for key, q in new.items():
            self.reserved[key] += q
            self._touch(key)
        self.order_contrib[order["uuid"]] = new

    def check_reserve(self, order_uuid: str | None, new: dict[tuple[str, str], Num]) -> None:
        """Refuse a reserve larger than the free stock; stock reserved by this same order is its own."""
        old = self.order_contrib.get(order_uuid or "", {})
        for key, q in new.items():
            own = old.get(key, 0)
            if q <= own:
                continue
            free = self.qty(key) - (self.reserved.get(key, 0) - own)
            if q > free:
                raise business(
                    "reserve_exceeds_available",
                    f"Reserve {q} of item {key[1]} exceeds the free stock {free} on warehouse {key[0]}.",
                )

    def available(self, key: tuple[str, str]) -> Num:
        return self.qty(key) - self.reserved.get(key, 0)

    # ------------------------------------------------------------------ sales
    def sale_needs(self, sale: dict) -> dict[tuple[str, str], Num]:
        wh = (sale.get("warehouse") or {}).get("uuid")
        out: dict[tuple[str, str], Num] = defaultdict(int)
        for line in sale.get("products") or []:
            nom = str((line.get("product") or {}).get("uuid"))
            if self.is_goods(nom):
                out[(str(wh), nom)] += line.get("count") or 0
        return dict(out)

    def check_sale(self, sale: dict) -> None:
        order_uuid = (sale.get("invoiceForCustomerPayment") or {}).get("uuid")
        own_all = self.order_contrib.get(order_uuid or "", {})
        for key, q in self.sale_needs(sale).items():
            own = own_all.get(key, 0)
            avail = self.qty(key) - (self.reserved.get(key, 0) - own)
            if q > avail:
                raise business(
                    "insufficient_stock",
                    f"Item {key[1]}: {q} to ship but only {avail} on hand and not reserved for other "
                    f"documents on warehouse {key[0]}.",
                )

    def apply_sale(self, sale: dict, sign: int) -> None:
        """sign=+1 ships (stock down, order reserve released); sign=-1 undoes a previous shipment."""
        for key, q in self.sale_needs(sale).items():
            self.move_stock(key, -sign * q)
        order = self.c["customerOrders"].get((sale.get("invoiceForCustomerPayment") or {}).get("uuid"))
        if order is None:
            return
        released = self.sale_release.setdefault(sale["uuid"], {}) if sign > 0 else self.sale_release.pop(
            sale["uuid"], {})
        for sline in sale.get("products") or []:
            nom = str((sline.get("product") or {}).get("uuid"))
            remaining = sline.get("count") or 0
            lines = [ln for ln in order.get("products") or [] if str(ln.get("nomenclatureUuid")) == nom]
            if sign > 0:
                for ln in lines:
                    if remaining <= 0:
                        break
                    take = min(remaining, max((ln.get("count") or 0) - (ln.get("shiped") or 0), 0))
                    ln["shiped"] = (ln.get("shiped") or 0) + take
                    remaining -= take
                    cap = max((ln.get("count") or 0) - ln["shiped"], 0)
                    if (ln.get("reserve") or 0) > cap:
                        released[nom] = released.get(nom, 0) + (ln["reserve"] - cap)
                        ln["reserve"] = cap
            else:
                back = released.get(nom, 0)
                for ln in reversed(lines):
                    if remaining <= 0:
                        break
                    take = min(remaining, ln.get("shiped") or 0)
                    ln["shiped"] = (ln.get("shiped") or 0) - take
                    remaining -= take
                    if back:
                        add = min(back, take)
                        ln["reserve"] = (ln.get("reserve") or 0) + add
                        back -= add
        order["quantityShipped"] = sum((ln.get("shiped") or 0) for ln in order.get("products") or [])
        order["sumShipped"] = (order.get("sumShipped") or 0) + sign * (sale.get("sum") or 0)
        self.set_order_contrib(order)

    # ------------------------------------------------------------------ inventory view
    def inventory_rows(self, wh: str, sort_by: str = "productId", desc: bool = False) -> list[dict]:
        cache_key = (wh, sort_by, desc)
        rows = self._inventory_cache.get(cache_key)
        if rows is not None:
            return rows
        noms = self.c["nomenclature"]
        rows = []
        for nom in self.wh_noms.get(wh, ()):
            item = noms.get(nom)
            if item is None or item.get("type") == "service":
                continue
            q = self.qty((wh, nom))
            r = self.reserved.get((wh, nom), 0)
            rows.append({"productId": nom, "article": item.get("article"), "quantity": q, "reserved": r,
                         "available": q - r})
        rows.sort(key=lambda x: (x[sort_by], x["productId"]), reverse=desc)
        self._inventory_cache[cache_key] = rows
        return rows


class Store:
    """All companies plus the users who may select them."""

    def __init__(self, raw: dict | None = None) -> None:
        raw = raw or {}
        self.users: list[dict] = list(raw.get("users") or [])
        self.companies: dict[str, Company] = {}
        for c in raw.get("companies") or []:
            co = Company(c)
            self.companies[co.uuid] = co

    def export(self) -> dict:
        return {"users": self.users, "companies": [c.export() for c in self.companies.values()]}

    def user(self, email: str) -> dict | None:
        for u in self.users:
            if str(u.get("email", "")).casefold() == email.casefold():
                return u
        return None

    def company_by(self, uuid: str | None = None, code: str | None = None) -> Company | None:
        if uuid:
            return self.companies.get(uuid)
        for c in self.companies.values():
            if code and c.code == code:
                return c
        return None
