"""In-memory business state of the KeyCRM emulator.

Why a hand-written store with indexes: benchmarks load 100,000 orders and page
through them; a list scan per request would make the emulator, not the pipeline,
the bottleneck.  Orders live in a dict by id; sorted ``(epoch, id)`` lists for
``updated_at`` and ``ordered_at`` answer the ``*_between`` filters with bisect,
and the filtered, sorted id list of a query is cached until the next write, so
paging costs one scan per (query, state version), not one per page.

Everything here is plain Python: it never imports pipeline code (EMULATOR.md).
"""

from __future__ import annotations

import bisect
import copy
import gc
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

# ---------------------------------------------------------------- helpers

LIVE_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.000000Z"


class ValidationFailed(Exception):
    """A 422 in the vendor shape: ``{"message": ..., "errors": {field: [msg]}}``."""

    def __init__(self, errors: dict[str, list[str]], message: str | None = None) -> None:
        self.errors = errors
        first = next(iter(errors.values()))[0] if errors else "The given data was invalid."
        extra = sum(len(v) for v in errors.values()) - 1
        self.message = message or (first + (f" (and {extra} more error{'s' if extra > 1 else ''})" if extra > 0 else ""))
        super().__init__(self.message)


class NotFound(Exception):
    """A 404 in the vendor shape."""


class BadQuery(Exception):
    """A 400 (Spatie query-builder style: unknown include/filter/sort)."""


def fmt_ts(dt: datetime | None) -> str | None:
    """The live timestamp form: ``2024-11-13T18:46:36.000000Z`` (UTC, microseconds always zero)."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime(LIVE_TS_FORMAT)


def parse_ts(value: Any, *, end_of_day: bool = False) -> datetime | None:
    """Accept the live ISO form, ``YYYY-MM-DD HH:MM:SS`` (UTC) or a bare date."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        value = value.isoformat()
    if not isinstance(value, str):
        raise TypeError(f"not a timestamp: {value!r}")
    s = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        d = datetime.fromisoformat(s).replace(tzinfo=UTC)
        return d + timedelta(days=1, seconds=-1) if end_of_day else d
    dt = datetime.fromisoformat(s)
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


_LIVE_RX = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000000Z")


def norm_ts(value: Any) -> str | None:
    """Re-emit any accepted timestamp in the live form (seconds precision)."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 27 and _LIVE_RX.fullmatch(value):
        return value  # already live form: the common case when loading big states
    dt = parse_ts(value)
    return fmt_ts(dt.replace(microsecond=0)) if dt else None


def to_dec(value: Any, field_name: str = "value") -> Decimal | None:
    t = type(value)
    if t is int:
        return Decimal(value)
    if t is Decimal:
        return value
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationFailed({field_name: [f"The {field_name} must be a number."]})
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationFailed({field_name: [f"The {field_name} must be a number."]}) from None


def num(value: Any) -> Any:
    """Money as the live API writes it: an integer when whole, a decimal otherwise."""
    if value is None:
        return None
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if d == d.to_integral_value():
        return int(d)
    return float(d)


def digits(phone: Any) -> str:
    return re.sub(r"\D", "", str(phone or ""))


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v not in (None, "")]
    return [value]


# ---------------------------------------------------------------- clock


@dataclass
class Clock:
    """Server clock: real time, frozen, or real time plus an offset (POST /__admin/clock)."""

    frozen: datetime | None = None
    offset: timedelta = field(default_factory=timedelta)

    def now(self) -> datetime:
        base = self.frozen if self.frozen is not None else datetime.now(UTC) + self.offset
        return base.replace(microsecond=0)

    def set(self, body: dict) -> None:
        if "now" in body:
            if body["now"] is None:
                self.frozen, self.offset = None, timedelta()
            else:
                self.frozen = parse_ts(body["now"])
        if body.get("advance_seconds") is not None:
            step = timedelta(seconds=float(body["advance_seconds"]))
            if self.frozen is not None:
                self.frozen += step
            else:
                self.offset += step

    def describe(self) -> dict:
        return {"now": fmt_ts(self.now()), "frozen": self.frozen is not None}


# ---------------------------------------------------------------- sorted index


class TimeIndex:
    """Sorted ``(epoch_seconds, id)`` pairs; bisect for ranges, O(log n) find + memmove on change."""

    def __init__(self) -> None:
        self.keys: list[tuple[float, int]] = []
        self.by_id: dict[int, float] = {}

    def bulk(self, pairs: dict[int, float]) -> None:
        self.by_id = dict(pairs)
        self.keys = sorted((t, i) for i, t in pairs.items())

    def set(self, oid: int, epoch: float) -> None:
        old = self.by_id.get(oid)
        if old is not None:
            pos = bisect.bisect_left(self.keys, (old, oid))
            if pos < len(self.keys) and self.keys[pos] == (old, oid):
                del self.keys[pos]
        self.by_id[oid] = epoch
        bisect.insort(self.keys, (epoch, oid))

    def range(self, lo: float | None, hi: float | None) -> list[int]:
        start = 0 if lo is None else bisect.bisect_left(self.keys, (lo, -1))
        end = len(self.keys) if hi is None else bisect.bisect_right(self.keys, (hi, float("inf")))
        return [i for _, i in self.keys[start:end]]


# ---------------------------------------------------------------- store

ORDER_FIELDS: dict[str, Any] = {
    # the flat order row, in the live key order (samples/keycrm-order-create-response-1.json)
    "id": None, "source_uuid": None, "global_source_uuid": None, "status_on_source": None,
    "source_id": None, "client_id": None, "grand_total": 0, "total_discount": 0, "margin_sum": 0,
    "expenses_sum": 0, "discount_amount": None, "discount_percent": None, "shipping_price": None,
    "taxes": None, "register_id": None, "fiscal_result": [], "fiscal_status": None,
    "shipping_type_id": None, "status_group_id": 1, "status_id": 1, "closed_from": None,
    "status_expired_at": None, "status_changed_at": None, "parent_id": None, "manager_id": None,
    "manager_comment": None, "client_comment": None, "discount_data": None, "is_gift": False,
    "promocode": None, "wrap_price": None, "gift_wrap": False, "payment_status": "not_paid",
    "gift_message": None, "last_synced_at": None, "created_at": None, "updated_at": None,
    "closed_at": None, "ordered_at": None, "source_updated_at": None, "deleted_at": None,
    "payments_total": 0, "products_total": 0, "is_expired": False, "has_reserves": False,
    "buyer_comment": None,
}
ORDER_NESTED = ("products", "payments", "shipping", "buyer", "status")
ORDER_TS = ("status_changed_at", "created_at", "updated_at", "closed_at", "ordered_at",
            "status_expired_at", "source_updated_at", "deleted_at", "last_synced_at")
ORDER_MONEY = ("grand_total", "total_discount", "margin_sum", "expenses_sum", "discount_amount",
               "shipping_price", "taxes", "wrap_price", "payments_total", "products_total")
LINE_MONEY = ("price", "discount_amount", "individual_discount", "loyalty_discount", "total_discount",
              "purchased_price", "price_sold")
SHIPPING_FIELDS = (
    "delivery_service_id", "tracking_code", "shipping_status", "shipping_address_city",
    "shipping_address_country", "shipping_address_country_code", "shipping_address_region",
    "shipping_address_zip", "shipping_secondary_line", "shipping_receive_point", "recipient_full_name",
    "recipient_phone", "warehouse_ref", "shipping_date", "shipping_date_actual",
)
COLLECTIONS = ("statuses", "payment_methods", "sources", "delivery_services", "warehouses",
               "products", "offers", "stocks", "buyers", "orders")


class Store:
    """The emulated account.  All methods are synchronous and fast; the app serialises access."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.api_keys: list[str] = []
        self.clear()

    # ------------------------------------------------------------ lifecycle

    def clear(self) -> None:
        self.statuses: dict[int, dict] = {}
        self.payment_methods: dict[int, dict] = {}
        self.sources: dict[int, dict] = {}
        self.delivery_services: dict[int, dict] = {}
        self.warehouses: dict[int, dict] = {}
        self.products: dict[int, dict] = {}
        self.offers: dict[int, dict] = {}
        self.offer_by_sku: dict[str, int] = {}
        self.offers_by_product: dict[int, list[int]] = {}
        self.stocks: dict[tuple[int, int], dict] = {}
        self.buyers: dict[int, dict] = {}
        self.orders: dict[int, dict] = {}
        self.order_ids: list[int] = []  # ascending
        self.idx_updated = TimeIndex()
        self.idx_ordered = TimeIndex()
        self.version = 0
        self._query_cache: dict[Any, tuple[int, list[int]]] = {}
        self._next: dict[str, int] = {}
        self._line_seq = 0
        self._payment_seq = 0

    def touch(self) -> None:
        self.version += 1

    def next_id(self, kind: str, existing: dict) -> int:
        n = max(self._next.get(kind, 0), (max(existing) if existing else 0)) + 1
        self._next[kind] = n
        return n

    def now_str(self) -> str:
        return fmt_ts(self.clock.now())  # type: ignore[return-value]

    # ------------------------------------------------------------ load / dump

    def load(self, state: dict) -> None:
        """Replace everything with ``state`` (EMULATOR.md format); optional fields get defaults.

        The cyclic GC is paused meanwhile: 100k orders allocate millions of small containers and
        the collector's repeated full passes would otherwise dominate the load time.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._load(state)
        finally:
            if was_enabled:
                gc.enable()

    def _load(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise ValidationFailed({"state": ["The state must be a JSON object."]})
        keys = state.get("api_keys")
        self.clear()
        if keys is not None:
            self.api_keys = [str(k) for k in keys]
        now = self.now_str()
        for item in state.get("statuses") or []:
            self._put_ref(self.statuses, "statuses", item, {
                "alias": None, "is_active": True, "group_id": 1, "is_closing_order": False,
                "is_reserved": False, "expiration_period": None, "created_at": now, "updated_at": now,
                "deleted_at": None})
        for item in state.get("payment_methods") or []:
            self._put_ref(self.payment_methods, "payment_methods", item, {"alias": None, "is_active": True})
        for item in state.get("sources") or []:
            self._put_ref(self.sources, "sources", item, {
                "alias": None, "driver": "other", "source_uuid": None, "source_name": None,
                "currency_code": "UAH", "created_at": now, "updated_at": now})
        for item in state.get("delivery_services") or []:
            self._put_ref(self.delivery_services, "delivery_services", item, {"alias": None, "source_name": None})
        for item in state.get("warehouses") or []:
            self._put_ref(self.warehouses, "warehouses", item, {"description": None, "is_active": True})
        for s in self.statuses.values():
            s["alias"] = s["alias"] or _slug(s["name"])
        for s in list(self.payment_methods.values()) + list(self.sources.values()) + list(
                self.delivery_services.values()):
            s["alias"] = s.get("alias") or _slug(s.get("name"))
        for item in state.get("products") or []:
            self._load_product(item, now)
        for item in state.get("offers") or []:
            self._load_offer(item, now)
        # a product without offers still has one default offer (keycrm-notes 4.2)
        for p in list(self.products.values()):
            if not self.offers_by_product.get(p["id"]):
                self._new_offer(p, {"sku": p.pop("_sku", None), "price": p.pop("_price", 0),
                                    "purchased_price": p.pop("_purchased_price", 0),
                                    "barcode": p.pop("_barcode", None)}, now, is_default=True)
        for item in state.get("stocks") or []:
            oid = item.get("offer_id")
            if oid is None and item.get("sku") is not None:
                oid = self.offer_by_sku.get(str(item["sku"]))
            if oid not in self.offers:
                raise ValidationFailed({"stocks": [f"Unknown offer {item.get('offer_id') or item.get('sku')!r}."]})
            self.stocks[(int(oid), int(item["warehouse_id"]))] = {
                "quantity": to_dec(item.get("quantity", 0)) or Decimal(0),
                "reserve": to_dec(item.get("reserve", 0)) or Decimal(0)}
            self.warehouses.setdefault(int(item["warehouse_id"]), {
                "id": int(item["warehouse_id"]), "name": f"Warehouse {item['warehouse_id']}",
                "description": None, "is_active": True})
        for item in state.get("buyers") or []:
            self._load_buyer(item, now)
        upd: dict[int, float] = {}
        ordd: dict[int, float] = {}
        for item in state.get("orders") or []:
            order = self._load_order(item, now)
            upd[order["id"]] = _epoch(order["updated_at"])
            ordd[order["id"]] = _epoch(order["ordered_at"])
        self.order_ids = sorted(self.orders)
        self.idx_updated.bulk(upd)
        self.idx_ordered.bulk(ordd)
        self.touch()

    def _put_ref(self, target: dict[int, dict], kind: str, item: dict, defaults: dict) -> dict:
        rec = {"id": None, "name": None, **defaults, **item}
        if rec["id"] is None:
            rec["id"] = self.next_id(kind, target)
        rec["id"] = int(rec["id"])
        target[rec["id"]] = rec
        return rec

    def _load_product(self, item: dict, now: str) -> dict:
        rec = {
            "id": item.get("id"), "name": item.get("name") or "", "description": item.get("description"),
            "thumbnail_url": item.get("thumbnail_url"), "attachments_data": item.get("attachments_data") or [],
            "unit_type": item.get("unit_type"), "currency_code": item.get("currency_code") or "UAH",
            "weight": item.get("weight"), "length": item.get("length"), "height": item.get("height"),
            "width": item.get("width"), "is_archived": bool(item.get("is_archived", False)),
            "category_id": item.get("category_id"),
            "created_at": norm_ts(item.get("created_at")) or now,
            "updated_at": norm_ts(item.get("updated_at")) or now,
            "_sku": item.get("sku"), "_price": item.get("price", 0),
            "_purchased_price": item.get("purchased_price", 0), "_barcode": item.get("barcode"),
        }
        if rec["id"] is None:
            rec["id"] = self.next_id("products", self.products)
        rec["id"] = int(rec["id"])
        self.products[rec["id"]] = rec
        return rec

    def _load_offer(self, item: dict, now: str) -> dict:
        pid = item.get("product_id")
        if pid is None or int(pid) not in self.products:
            product = self._load_product({"id": pid, "name": item.get("name") or item.get("sku") or ""}, now)
            pid = product["id"]
        rec = {
            "id": item.get("id"), "product_id": int(pid), "sku": item.get("sku"), "barcode": item.get("barcode"),
            "thumbnail_url": item.get("thumbnail_url"),
            "price": to_dec(item.get("price", 0), "price") or Decimal(0),
            "purchased_price": to_dec(item.get("purchased_price", 0), "purchased_price") or Decimal(0),
            "weight": item.get("weight"), "length": item.get("length"), "height": item.get("height"),
            "width": item.get("width"), "properties": item.get("properties") or [],
            "is_default": bool(item.get("is_default", False)), "is_archived": bool(item.get("is_archived", False)),
            "created_at": norm_ts(item.get("created_at")) or now, "updated_at": norm_ts(item.get("updated_at")) or now,
        }
        if rec["id"] is None:
            rec["id"] = self.next_id("offers", self.offers)
        rec["id"] = int(rec["id"])
        if rec["id"] not in self.offers:
            self.offers_by_product.setdefault(rec["product_id"], []).append(rec["id"])
        self.offers[rec["id"]] = rec
        if rec["sku"]:
            self.offer_by_sku[str(rec["sku"])] = rec["id"]
        return rec

    def _new_offer(self, product: dict, fields: dict, now: str, *, is_default: bool) -> dict:
        return self._load_offer({**fields, "product_id": product["id"], "is_default": is_default,
                                 "created_at": now, "updated_at": now}, now)

    def _load_buyer(self, item: dict, now: str) -> dict:
        rec = {
            "id": item.get("id"), "company_id": item.get("company_id"), "full_name": item.get("full_name") or "",
            "birthday": item.get("birthday"), "email": _as_list(item.get("email")),
            "phone": _as_list(item.get("phone")), "note": item.get("note"), "picture": item.get("picture"),
            "image": item.get("image"), "orders_sum": item.get("orders_sum", "0.00"),
            "discount": item.get("discount", 0), "currency": item.get("currency", "UAH"),
            "orders_count": item.get("orders_count", 0), "has_duplicates": item.get("has_duplicates", 0),
            "manager_id": item.get("manager_id"), "shipping": item.get("shipping") or [],
            "deleted_at": None,
            "created_at": norm_ts(item.get("created_at")) or now, "updated_at": norm_ts(item.get("updated_at")) or now,
        }
        if rec["id"] is None:
            rec["id"] = self.next_id("buyers", self.buyers)
        rec["id"] = int(rec["id"])
        self.buyers[rec["id"]] = rec
        return rec

    def _line(self, item: dict, order_ts: str) -> dict:
        offer_id = (item.get("offer") or {}).get("id") if isinstance(item.get("offer"), dict) else None
        offer_id = offer_id or item.get("offer_id")
        sku = item.get("sku")
        offer = self.offers.get(int(offer_id)) if offer_id is not None else None
        if offer is None and sku is not None and str(sku) in self.offer_by_sku:
            offer = self.offers[self.offer_by_sku[str(sku)]]
        if offer is not None and sku is None:
            sku = offer["sku"]
        product = self.products.get(offer["product_id"]) if offer else None
        price = to_dec(item.get("price"), "products.price")
        if price is None:
            price = offer["price"] if offer else Decimal(0)
        qty = to_dec(item.get("quantity", 1), "products.quantity") or Decimal(0)
        disc_pct = to_dec(item.get("discount_percent"), "products.discount_percent") or Decimal(0)
        disc_amt = to_dec(item.get("discount_amount"), "products.discount_amount") or Decimal(0)
        price_sold = to_dec(item.get("price_sold"), "products.price_sold")
        if price_sold is None:
            price_sold = (price * (1 - disc_pct / 100) - disc_amt).quantize(Decimal("0.01"))
        purchased = to_dec(item.get("purchased_price"), "products.purchased_price")
        if purchased is None:
            purchased = offer["purchased_price"] if offer else Decimal(0)
        picture = item.get("picture")
        if isinstance(picture, str):
            picture = {"thumbnail": picture}
        if item.get("id") is None:
            self._line_seq += 1
            line_id = self._line_seq
        else:
            line_id = int(item["id"])
            self._line_seq = max(self._line_seq, line_id)
        return {
            "id": line_id, "sku": sku, "variation_id": None, "publication_source_uuid": None,
            "name": item.get("name") or (product["name"] if product else sku) or "",
            "upsale": bool(item.get("upsale", False)), "price": price,
            "discount_amount": disc_amt, "discount_percent": disc_pct,
            "individual_discount": Decimal(0), "loyalty_discount": Decimal(0),
            "total_discount": ((price - price_sold) * qty).quantize(Decimal("0.01")),
            "purchased_price": purchased, "price_sold": price_sold, "quantity": qty,
            "unit_type": item.get("unit_type"), "stock_status": None, "picture": picture,
            "comment": item.get("comment"), "properties": item.get("properties") or [],
            "product_status_id": item.get("product_status_id"),
            "shipment_type": item.get("shipment_type"),
            "created_at": norm_ts(item.get("created_at")) or order_ts,
            "updated_at": norm_ts(item.get("updated_at")) or order_ts,
            "_offer_id": offer["id"] if offer else None,
        }

    def _payment(self, order_id: int, item: dict, now: str) -> dict:
        method_id = item.get("payment_method_id")
        if method_id is None and item.get("payment_method") is not None:
            name = str(item["payment_method"]).strip().lower()
            for m in self.payment_methods.values():
                if str(m.get("name", "")).lower() == name or str(m.get("alias", "")).lower() == name:
                    method_id = m["id"]
                    break
        amount = to_dec(item.get("amount"), "amount")
        errors: dict[str, list[str]] = {}
        if amount is None:
            errors["amount"] = ["The amount field is required."]
        if method_id is None or int(method_id) not in self.payment_methods:
            errors["payment_method_id"] = ["The selected payment method id is invalid."]
        status = item.get("status") or "paid"
        if status not in ("paid", "not_paid", "canceled"):
            errors["status"] = ["The selected status is invalid."]
        if errors:
            raise ValidationFailed(errors)
        if item.get("id") is None:
            self._payment_seq += 1
            pid = self._payment_seq
        else:
            pid = int(item["id"])
            self._payment_seq = max(self._payment_seq, pid)
        source = self.sources.get(self.orders[order_id]["source_id"]) if order_id in self.orders else None
        currency = item.get("actual_currency") or (source or {}).get("currency_code") or "UAH"
        return {
            "id": pid, "destination_type": "order", "destination_id": order_id,
            "payment_method_id": int(method_id), "amount": amount, "actual_currency": currency,
            "source_currency": currency, "actual_amount": amount,
            "transaction_uuid": item.get("transaction_uuid"), "description": item.get("description"),
            "status": status, "fiscal_result": None, "fiscal_status": None, "is_expense": False,
            "payment_date": norm_ts(item.get("payment_date")) or now,
            "created_at": norm_ts(item.get("created_at")) or now,
            "updated_at": norm_ts(item.get("updated_at")) or now,
        }

    def _shipping(self, item: dict | None, now: str, old: dict | None = None) -> dict | None:
        if not item:
            return old
        rec = dict(old) if old else {k: None for k in SHIPPING_FIELDS} | {
            "shipping_price": None, "was_shipped": False, "created_at": now}
        for k, v in item.items():
            rec[k] = v
        for k in ("shipping_date", "shipping_date_actual"):
            if rec.get(k):
                rec[k] = norm_ts(rec[k])
        if rec.get("delivery_service_id") is not None:
            rec["delivery_service_id"] = int(rec["delivery_service_id"])
        rec["updated_at"] = now
        return rec

    def _load_order(self, item: dict, now: str) -> dict:
        order = {**ORDER_FIELDS, **item}  # live key order first, unknown extra keys kept after
        for k in ORDER_NESTED:
            order.pop(k, None)
        if "fiscal_result" not in item:
            order["fiscal_result"] = []
        if order["id"] is None:
            order["id"] = self.next_id("orders", self.orders)
        order["id"] = int(order["id"])
        for k in ORDER_TS:
            if order[k] is not None:
                order[k] = norm_ts(order[k])
        order["created_at"] = order["created_at"] or now
        order["ordered_at"] = order["ordered_at"] or order["created_at"]
        order["updated_at"] = order["updated_at"] or order["created_at"]
        order["status_changed_at"] = order["status_changed_at"] or order["created_at"]
        if order["source_id"] is None and self.sources:
            order["source_id"] = min(self.sources)
        buyer = item.get("buyer")
        if order["client_id"] is None and isinstance(buyer, dict):
            order["client_id"] = self._find_or_create_buyer(buyer, now)["id"]
        st = self.statuses.get(int(order["status_id"])) if order["status_id"] is not None else None
        if st:
            order["status_group_id"] = st.get("group_id", order["status_group_id"])
        for k in ORDER_MONEY:
            if order[k] is not None:
                order[k] = to_dec(order[k], k)
        order["products"] = [self._line(p, order["created_at"]) for p in item.get("products") or []]
        self.orders[order["id"]] = order
        order["payments"] = [self._payment(order["id"], p, order["created_at"]) for p in item.get("payments") or []]
        order["shipping"] = self._shipping(item.get("shipping") or None, order["created_at"])
        self._recompute(order, keep_given=item)
        return order

    def _recompute(self, order: dict, keep_given: dict | None = None) -> None:
        """Totals follow the lines and payments unless the loaded state gave them explicitly."""
        given = keep_given or {}
        lines = order["products"]
        products_total = sum((ln["price_sold"] * ln["quantity"] for ln in lines), Decimal(0))
        if "products_total" not in given:
            order["products_total"] = products_total
        discount = (order.get("discount_amount") or Decimal(0)) + (
            products_total * (to_dec(order.get("discount_percent")) or Decimal(0)) / 100)
        if "total_discount" not in given:
            order["total_discount"] = discount.quantize(Decimal("0.01"))
        if "grand_total" not in given:
            order["grand_total"] = (products_total - discount + (order.get("shipping_price") or 0)
                                    + (order.get("wrap_price") or 0)).quantize(Decimal("0.01"))
        if "margin_sum" not in given:
            cost = sum((ln["purchased_price"] * ln["quantity"] for ln in lines), Decimal(0))
            order["margin_sum"] = order["grand_total"] - cost
        paid = sum((p["amount"] for p in order["payments"] if p["status"] == "paid"), Decimal(0))
        if "payments_total" not in given:
            order["payments_total"] = paid
        if "payment_status" not in given:
            gt = order["grand_total"] or Decimal(0)
            order["payment_status"] = (
                "not_paid" if paid <= 0 else "part_paid" if paid < gt else "paid" if paid == gt else "overpaid")

    def _find_or_create_buyer(self, body: dict, now: str) -> dict:
        phones = {digits(p) for p in _as_list(body.get("phone")) if digits(p)}
        emails = {str(e).strip().lower() for e in _as_list(body.get("email"))}
        if phones or emails:
            for b in self.buyers.values():
                if phones & {digits(p) for p in b["phone"]} or emails & {str(e).lower() for e in b["email"]}:
                    return b
        if not body.get("full_name"):
            raise ValidationFailed({"buyer.full_name": ["The buyer.full name field is required."]})
        return self._load_buyer({"full_name": body.get("full_name"), "email": body.get("email"),
                                 "phone": body.get("phone"), "created_at": now, "updated_at": now}, now)

    def dump(self) -> dict:
        """The whole state in the PUT /__admin/state format."""
        return {
            "api_keys": list(self.api_keys),
            "statuses": [dict(s) for s in self.statuses.values()],
            "payment_methods": [dict(s) for s in self.payment_methods.values()],
            "sources": [dict(s) for s in self.sources.values()],
            "delivery_services": [dict(s) for s in self.delivery_services.values()],
            "warehouses": [dict(s) for s in self.warehouses.values()],
            "products": [self.render_product(p) for p in self.products.values()],
            "offers": [self.render_offer(o) for o in self.offers.values()],
            "stocks": [{"offer_id": o, "warehouse_id": w, "quantity": num(s["quantity"]),
                        "reserve": num(s["reserve"])} for (o, w), s in self.stocks.items()],
            "buyers": [self.render_buyer(b) for b in self.buyers.values()],
            "orders": [self.render_order(self.orders[i], {"products.offer", "products", "payments", "shipping"})
                       for i in self.order_ids],
        }

    # ------------------------------------------------------------ rendering

    def stock_totals(self, offer_id: int) -> tuple[Decimal, Decimal]:
        q = r = Decimal(0)
        for wid in self.warehouses:
            s = self.stocks.get((offer_id, wid))
            if s:
                q += s["quantity"]
                r += s["reserve"]
        return q, r

    def render_offer(self, o: dict, include_product: bool = False) -> dict:
        q, r = self.stock_totals(o["id"])
        out = {
            "id": o["id"], "product_id": o["product_id"], "sku": o["sku"], "barcode": o["barcode"],
            "thumbnail_url": o["thumbnail_url"], "price": num(o["price"]),
            "purchased_price": num(o["purchased_price"]), "quantity": num(q), "in_reserve": num(r),
            "weight": o["weight"], "length": o["length"], "height": o["height"], "width": o["width"],
            "properties": o["properties"], "is_default": o["is_default"], "is_archived": o["is_archived"],
            "created_at": o["created_at"], "updated_at": o["updated_at"],
        }
        if include_product:
            out["product"] = self.render_product(self.products[o["product_id"]], with_agg=True)
        return out

    def render_product(self, p: dict, with_agg: bool = False) -> dict:
        offers = [self.offers[i] for i in self.offers_by_product.get(p["id"], [])]
        q = r = Decimal(0)
        for o in offers:
            oq, orr = self.stock_totals(o["id"])
            q += oq
            r += orr
        prices = [o["price"] for o in offers] or [Decimal(0)]
        has_offers = not (len(offers) == 1 and offers[0]["is_default"]) and bool(offers)
        out = {
            "id": p["id"], "name": p["name"], "description": p["description"], "thumbnail_url": p["thumbnail_url"],
            "attachments_data": p["attachments_data"], "quantity": num(q), "unit_type": p["unit_type"],
            "in_reserve": num(r), "currency_code": p["currency_code"],
            "min_price": num(min(prices)), "max_price": num(max(prices)),
            "weight": p["weight"], "length": p["length"], "height": p["height"], "width": p["width"],
            "has_offers": has_offers, "is_archived": p["is_archived"], "category_id": p["category_id"],
            "created_at": p["created_at"], "updated_at": p["updated_at"],
        }
        if not has_offers:
            o = offers[0]
            out.update({"sku": o["sku"], "barcode": o["barcode"], "price": num(o["price"]),
                        "purchased_price": num(o["purchased_price"])})
        if with_agg:
            agg: dict[str, list] = {}
            for o in offers:
                for prop in o["properties"] or []:
                    vals = agg.setdefault(str(prop.get("name")), [])
                    if prop.get("value") not in vals:
                        vals.append(prop.get("value"))
            out["properties_agg"] = agg or []  # PHP serialises an empty map as [] (samples README note 6)
            out["sources"] = []
        return out

    def render_buyer(self, b: dict) -> dict:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    def render_order_buyer(self, b: dict | None) -> dict | None:
        if b is None:
            return None
        out = {k: v for k, v in b.items() if k != "shipping" and not k.startswith("_")}
        out["phone"] = _first(b["phone"])
        out["email"] = _first(b["email"])
        return out

    def render_line(self, ln: dict, with_offer: bool) -> dict:
        out = {k: (num(v) if k in LINE_MONEY or k in ("quantity", "discount_percent") else v)
               for k, v in ln.items() if not k.startswith("_")}
        if with_offer:
            o = self.offers.get(ln["_offer_id"]) if ln["_offer_id"] else None
            out["offer"] = self.render_offer(o) if o else None
        return out

    def render_payment(self, p: dict, with_method: bool = False) -> dict:
        out = dict(p)
        out["amount"] = num(p["amount"])
        out["actual_amount"] = num(p["actual_amount"])
        if with_method:
            out["payment_method"] = self.payment_methods.get(p["payment_method_id"])
        return out

    def render_order(self, order: dict, include: set[str]) -> dict:
        out = {k: (num(v) if k in ORDER_MONEY else v) for k, v in order.items() if k not in ORDER_NESTED}
        if "buyer" in include:
            out["buyer"] = self.render_order_buyer(self.buyers.get(order["client_id"]))
        if "products" in include or "products.offer" in include:
            out["products"] = [self.render_line(ln, "products.offer" in include) for ln in order["products"]]
        if "payments" in include:
            out["payments"] = [self.render_payment(p) for p in order["payments"]]
        if include & {"shipping", "shipping.lastHistory", "shipping.deliveryService"}:
            sh = order["shipping"]
            if sh is not None:
                sh = dict(sh)
                if "shipping.deliveryService" in include:
                    sh["delivery_service"] = self.delivery_services.get(sh.get("delivery_service_id"))
                if "shipping.lastHistory" in include:
                    sh["last_history"] = None
            out["shipping"] = sh
        if "status" in include:
            out["status"] = self.statuses.get(order["status_id"])
        return out

    # ------------------------------------------------------------ order queries

    def query_orders(self, filters: dict[str, str], sort: str) -> list[int]:
        """Ids matching the filters, sorted; cached per (filters, sort, state version)."""
        key = (tuple(sorted(filters.items())), sort)
        hit = self._query_cache.get(key)
        if hit and hit[0] == self.version:
            return hit[1]
        ids: list[int] | None = None
        if "updated_between" in filters:
            lo, hi = _between(filters["updated_between"], "updated_between")
            ids = self.idx_updated.range(lo, hi)
        if "created_between" in filters:
            lo, hi = _between(filters["created_between"], "created_between")
            cand = self.idx_ordered.range(lo, hi)
            ids = cand if ids is None else list(set(ids).intersection(cand))
        preds = []
        if "id" in filters:
            wanted = {int(x) for x in _csv(filters["id"], "id", int)}
            ids = [i for i in (ids if ids is not None else wanted) if i in wanted and i in self.orders]
        if "status_id" in filters:
            st = set(_csv(filters["status_id"], "status_id", int))
            preds.append(lambda o: o["status_id"] in st)
        if "source_id" in filters:
            src = set(_csv(filters["source_id"], "source_id", int))
            preds.append(lambda o: o["source_id"] in src)
        if "source_uuid" in filters:
            su = set(_csv(filters["source_uuid"], "source_uuid", str))
            preds.append(lambda o: str(o["source_uuid"]) in su)
        if "payment_status" in filters:
            ps = set(_csv(filters["payment_status"], "payment_status", str))
            preds.append(lambda o: o["payment_status"] in ps)
        if "buyer_phone" in filters:
            phones = {digits(p) for p in _csv(filters["buyer_phone"], "buyer_phone", str)}
            bids = {b["id"] for b in self.buyers.values() if phones & {digits(p) for p in b["phone"]}}
            preds.append(lambda o: o["client_id"] in bids)
        if "buyer_email" in filters:
            em = {e.lower() for e in _csv(filters["buyer_email"], "buyer_email", str)}
            bids2 = {b["id"] for b in self.buyers.values() if em & {str(e).lower() for e in b["email"]}}
            preds.append(lambda o: o["client_id"] in bids2)
        if "has_tracking_code" in filters:
            want = str(filters["has_tracking_code"]).lower() in ("1", "true")
            preds.append(lambda o: bool((o["shipping"] or {}).get("tracking_code")) == want)
        if "shipping_between" in filters:
            lo, hi = _between(filters["shipping_between"], "shipping_between")

            def _ship(o: dict) -> bool:
                d = (o["shipping"] or {}).get("shipping_date")
                if not d:
                    return False
                e = _epoch(d)
                return (lo is None or e >= lo) and (hi is None or e <= hi)
            preds.append(_ship)
        if ids is None:
            ids = self.order_ids if not preds and sort == "id" else list(self.order_ids)
        if preds:
            orders = self.orders
            ids = [i for i in ids if all(p(orders[i]) for p in preds)]
        field_name = sort.lstrip("-")
        desc = sort.startswith("-")
        if field_name == "id":
            if ids is not self.order_ids:
                ids = sorted(ids)
        elif field_name in ("updated_at", "ordered_at", "created_at", "status_changed_at"):
            if field_name == "updated_at":
                keyf = self.idx_updated.by_id.__getitem__
            elif field_name == "ordered_at":
                keyf = self.idx_ordered.by_id.__getitem__
            else:
                orders = self.orders

                def keyf(i: int, f: str = field_name) -> Any:
                    return orders[i][f] or ""
            ids = sorted(ids, key=lambda i: (keyf(i), i))
        if desc:
            ids = ids[::-1]
        self._query_cache = {k: v for k, v in self._query_cache.items() if v[0] == self.version}
        if len(self._query_cache) > 16:
            self._query_cache.clear()
        self._query_cache[key] = (self.version, ids)
        return ids

    def bump_order(self, order: dict, *, status_changed: bool = False) -> None:
        now = self.now_str()
        order["updated_at"] = now
        if status_changed:
            order["status_changed_at"] = now
        self.idx_updated.set(order["id"], _epoch(now))
        self.touch()

    def add_order(self, order: dict) -> None:
        oid = order["id"]
        self.orders[oid] = order
        if not self.order_ids or oid > self.order_ids[-1]:
            self.order_ids.append(oid)
        else:
            bisect.insort(self.order_ids, oid)
        self.idx_updated.set(oid, _epoch(order["updated_at"]))
        self.idx_ordered.set(oid, _epoch(order["ordered_at"]))
        self.touch()


# ---------------------------------------------------------------- small parsers

def _slug(name: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name or "").lower()).strip("_") or "item"


def _epoch(ts: str | None) -> float:
    if ts is None:
        return 0.0
    dt = datetime.fromisoformat(ts) if isinstance(ts, str) else parse_ts(ts)
    return dt.timestamp() if dt else 0.0


def _csv(value: Any, name: str, cast: type) -> list:
    parts = value if isinstance(value, list) else str(value).split(",")
    out = []
    for p in parts:
        p = str(p).strip()
        if not p:
            continue
        try:
            out.append(cast(p))
        except ValueError:
            raise ValidationFailed({f"filter.{name}": [f"The filter.{name} must be a list of {cast.__name__}."]}) \
                from None
    return out


def _between(value: str, name: str) -> tuple[float | None, float | None]:
    """``"a, b"`` with datetimes or bare dates (a bare end date covers its whole day); inclusive."""
    parts = [p.strip() for p in str(value).split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValidationFailed({f"filter.{name}": [f"The filter.{name} must be two dates separated by a comma."]})
    try:
        lo = parse_ts(parts[0])
        hi = parse_ts(parts[1], end_of_day=True)
    except (ValueError, TypeError):
        raise ValidationFailed({f"filter.{name}": [f"The filter.{name} is not a valid date range."]}) from None
    return (lo.timestamp() if lo else None, hi.timestamp() if hi else None)


def deep_copy(value: Any) -> Any:
    return copy.deepcopy(value)


def monotonic() -> float:
    return time.monotonic()
