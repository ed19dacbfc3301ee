"""KeyCRM service emulator: a Starlette ASGI app speaking the vendor's /v1 API plus /__admin/.

Why: no machine here reaches the real KeyCRM (shared/api/EMULATOR.md).  The pipeline talks
to this app exactly as it would to openapi.keycrm.app — over HTTP, with a Bearer key — so
its client, retries and rate limiting are exercised for real.  Shapes follow the live
samples (shared/api/samples) where they disagree with the OpenAPI file.

Run it as a server:  ``uvicorn --factory keybimp_pipeline.emulators.keycrm.app:create_app``.
Never imports pipeline code.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import random
import re
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from keybimp_pipeline.emulators.keycrm.store import (
    BadQuery,
    Clock,
    NotFound,
    Store,
    ValidationFailed,
    _between,
    _csv,
    _epoch,
    digits,
    norm_ts,
    num,
    to_dec,
)

__all__ = ["DEFAULT_STATE", "ConnectionDropped", "create_app"]

MAX_LIMIT = 50
DEFAULT_LIMIT = 15

DEFAULT_STATE: dict = {
    "api_keys": ["keycrm-demo-key"],
    "statuses": [
        {"id": 1, "name": "new", "alias": "new", "group_id": 1},
        {"id": 4, "name": "Обробка замовлення", "alias": "obrobka_zamovlennya", "group_id": 2},
        {"id": 8, "name": "delivered_to_delivery", "alias": "delivered_to_delivery", "group_id": 4,
         "is_reserved": True},
        {"id": 12, "name": "completed", "alias": "completed", "group_id": 5, "is_closing_order": True},
        {"id": 19, "name": "canceled", "alias": "canceled", "group_id": 6, "is_closing_order": True},
    ],
    "payment_methods": [{"id": 1, "name": "Готівка", "alias": "cash"}, {"id": 2, "name": "Картка", "alias": "card"}],
    "sources": [{"id": 1, "name": "Інтернет-магазин", "alias": "shop", "driver": "other", "currency_code": "UAH"}],
    "delivery_services": [{"id": 1, "name": "Нова Пошта", "alias": "novaposhta", "source_name": "novaposhta"}],
    "warehouses": [{"id": 1, "name": "Основний", "is_active": True}],
}


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the app to simulate a dropped connection.

    In-process (httpx ASGI transport) the exception propagates to the httpx client, and as a
    subclass of ``httpx.RemoteProtocolError`` it is a transport error there.  Under uvicorn the
    response head has already been sent when it is raised, so uvicorn can only close the socket:
    the client sees ``httpx.RemoteProtocolError`` (incomplete body) — the same failure class.
    """

    def __init__(self) -> None:
        super().__init__("connection dropped by the KeyCRM emulator (fault injection)")


class _DropResponse(Response):
    """Sends a response head promising a body, then raises: a socket closed mid-response."""

    def __init__(self) -> None:
        super().__init__(content=b"", status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
        raise ConnectionDropped()


def _json(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_default).encode()
    return Response(data, status_code=status, media_type="application/json", headers=headers)


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return num(o)
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def _msg(status: int, message: str, **extra: Any) -> Response:
    return _json({"message": message, **extra}, status)


# ---------------------------------------------------------------- faults, rate limit, counters


@dataclass
class Faults:
    requests_per_minute: int = 60
    rate_window_s: float = 60.0  # extension for fast tests; the vendor's window is one minute
    latency_ms: float = 0
    fail_next: list[dict] = field(default_factory=list)
    fail_ratio: float = 0.0
    fail_status: int = 503
    retry_after_s: float = 1
    drop_connection_next: int = 0

    def configure(self, body: dict) -> None:
        fresh = Faults()
        for k in ("requests_per_minute", "rate_window_s", "latency_ms", "fail_ratio", "fail_status",
                  "retry_after_s", "drop_connection_next"):
            if k in body and body[k] is not None:
                setattr(fresh, k, type(getattr(fresh, k))(body[k]))
        fresh.fail_next = [
            {"path": str(f.get("path", "*")), "status": int(f.get("status", 500)),
             "times": int(f.get("times", 1)), "method": (f.get("method") or "").upper() or None}
            for f in body.get("fail_next") or []]
        self.__dict__.update(fresh.__dict__)

    def describe(self) -> dict:
        return dict(self.__dict__)


class Traffic:
    """Per-key sliding-window limiter and the request log behind GET /__admin/requests."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.windows: dict[str, deque[float]] = defaultdict(deque)
        self.accepted: dict[str, list[float]] = defaultdict(list)
        self.counts: dict[str, int] = defaultdict(int)
        self.status_counts: dict[str, int] = defaultdict(int)
        self.per_minute: dict[str, int] = defaultdict(int)

    def admit(self, key: str, limit: int, window: float) -> float | None:
        """None when admitted; else seconds until a slot frees."""
        now = time.monotonic()
        dq = self.windows[key]
        while dq and dq[0] <= now - window:
            dq.popleft()
        if len(dq) >= limit:
            return max(0.0, dq[0] + window - now)
        dq.append(now)
        self.accepted[key].append(now)
        self.per_minute[datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ")] += 1
        return None

    def max_in_window(self, window: float) -> int:
        best = 0
        for stamps in self.accepted.values():
            j = 0
            for i, t in enumerate(stamps):
                while stamps[j] <= t - window:
                    j += 1
                best = max(best, i - j + 1)
        return best


# ---------------------------------------------------------------- query helpers


def _query(request: Request) -> tuple[dict[str, str], dict[str, str]]:
    """Plain params and ``filter[...]`` params (deepObject style)."""
    plain: dict[str, str] = {}
    filters: dict[str, str] = {}
    for k, v in parse_qsl(request.url.query, keep_blank_values=True):
        m = re.fullmatch(r"filter\[([^\]]+)\](\[\])?", k)
        if m:
            name = m.group(1)
            filters[name] = f"{filters[name]},{v}" if name in filters else v
        else:
            plain[k] = v
    return plain, filters


def _int_param(plain: dict, name: str, default: int, lo: int, hi: int | None) -> int:
    raw = plain.get(name)
    if raw is None or raw == "":
        return default
    try:
        val = int(raw)
    except ValueError:
        raise ValidationFailed({name: [f"The {name} must be an integer."]}) from None
    if val < lo:
        raise ValidationFailed({name: [f"The {name} must be at least {lo}."]})
    if hi is not None and val > hi:
        raise ValidationFailed({name: [f"The {name} must not be greater than {hi}."]})
    return val


def _includes(plain: dict, allowed: set[str]) -> set[str]:
    names = {p.strip() for p in plain.get("include", "").split(",") if p.strip()}
    bad = sorted(names - allowed)
    if bad:
        raise BadQuery(f"Requested include(s) `{', '.join(bad)}` are not allowed. "
                       f"Allowed include(s) are `{', '.join(sorted(allowed))}`.")
    return names


def _check_filters(filters: dict, allowed: set[str]) -> None:
    bad = sorted(set(filters) - allowed)
    if bad:
        raise BadQuery(f"Requested filter(s) `{', '.join(bad)}` are not allowed. "
                       f"Allowed filter(s) are `{', '.join(sorted(allowed))}`.")


def _where_in(items: list[dict], filters: dict, name: str, key: str, cast: type = int) -> list[dict]:
    """The items whose ``key`` is among filter ``name``'s comma-separated values (all of them without it)."""
    if name not in filters:
        return items
    wanted = set(_csv(filters[name], name, cast))
    return [x for x in items if x[key] in wanted]


def _archived(items: list[dict], filters: dict) -> list[dict]:
    """``filter[is_archived]``: 1/true keeps archived items, anything else the others."""
    if "is_archived" not in filters:
        return items
    want = str(filters["is_archived"]).lower() in ("1", "true")
    return [x for x in items if x["is_archived"] == want]


def _sort(plain: dict, allowed: set[str], default: str) -> str:
    s = plain.get("sort") or default
    if s.lstrip("-") not in allowed:
        raise BadQuery(f"Requested sort(s) `{s}` is not allowed. Allowed sort(s) are `{', '.join(sorted(allowed))}`.")
    return s


def _paginate(request: Request, items: list, render: Callable[[Any], dict], plain: dict) -> dict:
    """The full Laravel LengthAwarePaginator envelope, as the live /offers sample shows it."""
    limit = _int_param(plain, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    page = _int_param(plain, "page", 1, 1, None)
    total = len(items)
    last_page = max(1, math.ceil(total / limit))
    start = (page - 1) * limit
    chunk = items[start:start + limit]
    path = f"{str(request.base_url).rstrip('/')}{request.url.path}"
    kept = [p for p in request.url.query.split("&") if p and not p.startswith("page=")]
    prefix = f"{path}?{'&'.join(kept) + '&' if kept else ''}page="
    return {
        "current_page": page,
        "data": [render(x) for x in chunk],
        "first_page_url": f"{prefix}1",
        "from": start + 1 if chunk else None,
        "last_page": last_page,
        "last_page_url": f"{prefix}{last_page}",
        "next_page_url": f"{prefix}{page + 1}" if page < last_page else None,
        "path": path,
        "per_page": limit,
        "prev_page_url": f"{prefix}{page - 1}" if page > 1 else None,
        "to": start + len(chunk) if chunk else None,
        "total": total,
    }


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed({"body": ["The request body must be valid JSON."]}, "Malformed JSON body.") from None


def _obj(body: Any) -> dict:
    if not isinstance(body, dict):
        raise ValidationFailed({"body": ["The request body must be a JSON object."]})
    return body


def _id(raw: str, what: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise NotFound(f"{what} not found.") from None


# ---------------------------------------------------------------- the vendor API

ORDER_INCLUDES = {
    "buyer", "products", "products.offer", "manager", "tags", "status", "marketing", "payments", "shipping",
    "shipping.lastHistory", "shipping.deliveryService", "expenses", "custom_fields", "customFields", "assigned",
    "attachments", "attachments.file",
}
ORDER_FILTERS = {"status_id", "source_id", "source_uuid", "buyer_phone", "buyer_email", "created_between",
                 "updated_between", "shipping_between", "payment_status", "has_tracking_code", "id"}
ORDER_SORTS = {"id", "updated_at", "created_at", "ordered_at", "status_changed_at"}
# GET /order/<name> reference books: (route name, Store attribute)
REF_BOOKS = [("status", "statuses"), ("payment-method", "payment_methods"), ("source", "sources"),
             ("delivery-service", "delivery_services")]


class KeyCRMApi:
    """Handlers of the /v1 routes.  Each returns a Response or raises a vendor-shaped error."""

    def __init__(self, store: Store) -> None:
        self.s = store
        self.routes: list[tuple[str, re.Pattern, Callable[..., Awaitable[Response]]]] = []
        for method, pattern, fn in [
            ("GET", r"/order", self.list_orders),
            ("POST", r"/order", self.create_order),
            *[("GET", f"/order/{name}", functools.partial(self._ref_list, book=book)) for name, book in REF_BOOKS],
            ("GET", r"/order/(?P<oid>[^/]+)", self.get_order),
            ("PUT", r"/order/(?P<oid>[^/]+)", self.update_order),
            ("POST", r"/order/(?P<oid>[^/]+)/payment", self.create_payment),
            ("PUT", r"/order/(?P<oid>[^/]+)/payment/(?P<pid>[^/]+)", self.update_payment),
            ("GET", r"/buyer", self.list_buyers),
            ("POST", r"/buyer", self.create_buyer),
            ("GET", r"/buyer/(?P<bid>[^/]+)", self.get_buyer),
            ("PUT", r"/buyer/(?P<bid>[^/]+)", self.update_buyer),
            ("GET", r"/offers", self.list_offers),
            ("PUT", r"/offers", self.update_offers),
            ("GET", r"/offers/stocks", self.list_stocks),
            ("PUT", r"/offers/stocks", self.update_stocks),
            ("GET", r"/products", self.list_products),
            ("POST", r"/products", self.create_product),
            ("GET", r"/products/(?P<pid>[^/]+)", self.get_product),
        ]:
            self.routes.append((method, re.compile(pattern + r"/?"), fn))

    def match(self, method: str, path: str) -> tuple[Callable[..., Awaitable[Response]] | None, dict, bool]:
        """(handler, path params, path exists with another method)."""
        other = False
        for m, rx, fn in self.routes:
            mt = rx.fullmatch(path)
            if mt:
                if m == method:
                    return fn, mt.groupdict(), False
                other = True
        return None, {}, other

    # ---------------- orders

    def _order(self, raw: str) -> dict:
        order = self.s.orders.get(_id(raw, "Order"))
        if order is None:
            raise NotFound("Order not found.")
        return order

    async def list_orders(self, request: Request) -> Response:
        plain, filters = _query(request)
        _check_filters(filters, ORDER_FILTERS)
        include = _includes(plain, ORDER_INCLUDES)
        sort = _sort(plain, ORDER_SORTS, "id")
        ids = self.s.query_orders(filters, sort)
        orders = self.s.orders
        return _json(_paginate(request, ids, lambda i: self.s.render_order(orders[i], include), plain))

    async def get_order(self, request: Request, oid: str) -> Response:
        plain, _ = _query(request)
        include = _includes(plain, ORDER_INCLUDES)
        return _json(self.s.render_order(self._order(oid), include))

    async def create_order(self, request: Request) -> Response:
        body = _obj(await _body(request))
        errors: dict[str, list[str]] = {}
        src = body.get("source_id")
        if src is None:
            errors["source_id"] = ["The source id field is required."]
        elif not isinstance(src, int) or src not in self.s.sources:
            errors["source_id"] = ["The selected source id is invalid."]
        buyer = body.get("buyer")
        if buyer is not None and not isinstance(buyer, dict):
            errors["buyer"] = ["The buyer must be an object."]
        for i, p in enumerate(body.get("products") or []):
            if not isinstance(p, dict):
                errors[f"products.{i}"] = ["The product must be an object."]
            elif p.get("quantity") is not None and (to_dec(p.get("quantity"), f"products.{i}.quantity") or 0) <= 0:
                errors[f"products.{i}.quantity"] = ["The quantity must be greater than 0."]
        if not isinstance(body.get("products", []), list) or not isinstance(body.get("payments", []), list):
            errors["products"] = ["The products and payments must be arrays."]
        if errors:
            raise ValidationFailed(errors)
        now = self.s.now_str()
        item = {k: v for k, v in body.items() if k not in ("buyer", "marketing", "custom_fields", "id")}
        item.update({"created_at": now, "updated_at": now, "status_changed_at": now, "status_id": 1})
        if self.s.statuses and 1 not in self.s.statuses:
            item["status_id"] = min(self.s.statuses)
        item["ordered_at"] = norm_ts(body.get("ordered_at")) or now
        if buyer:
            item["client_id"] = self.s._find_or_create_buyer(buyer, now)["id"]
        item["id"] = self.s.next_id("orders", self.s.orders)
        payments = item.pop("payments", None) or []
        order = self.s._load_order(item, now)
        for p in payments:
            order["payments"].append(self.s._payment(order["id"], _obj(p), now))
        self.s._recompute(order)
        self.s.add_order(order)
        out = self.s.render_order(order, {"products", "buyer", "shipping", "payments"})
        return _json(out, 201)

    async def update_order(self, request: Request, oid: str) -> Response:
        order = self._order(oid)
        body = _obj(await _body(request))
        errors: dict[str, list[str]] = {}
        new_status = body.get("status_id")
        if new_status is not None and (not isinstance(new_status, int) or new_status not in self.s.statuses):
            errors["status_id"] = ["The selected status id is invalid."]
        line_updates = []
        for i, p in enumerate(body.get("products") or []):
            if not isinstance(p, dict):
                errors[f"products.{i}"] = ["The product must be an object."]
                continue
            target = None
            for ln in order["products"]:
                if (p.get("id") is not None and ln["id"] == p.get("id")) or (
                        p.get("id") is None and p.get("sku") is not None and ln["sku"] == p.get("sku")):
                    target = ln
                    break
            if target is None:
                errors[f"products.{i}"] = ["The order has no such product line; lines cannot be added by PUT."]
            else:
                line_updates.append((target, p))
        if body.get("shipping") is not None and not isinstance(body["shipping"], dict):
            errors["shipping"] = ["The shipping must be an object."]
        if errors:
            raise ValidationFailed(errors)
        now = self.s.now_str()
        for k in ("buyer_comment", "manager_comment", "manager_id"):
            if k in body:
                order[k] = body[k]
        for k in ("discount_percent", "discount_amount"):
            if k in body:
                order[k] = to_dec(body[k], k)
        for target, p in line_updates:
            merged = {**self.s.render_line(target, False), **p, "_offer_id": None}
            merged.pop("price_sold", None) if ("price" in p or "discount_amount" in p
                                                or "discount_percent" in p) else None
            if target["_offer_id"]:
                merged["offer_id"] = target["_offer_id"]
            merged["updated_at"] = now
            target.update(self.s._line(merged, now))
        if body.get("shipping"):
            order["shipping"] = self.s._shipping(body["shipping"], now, order["shipping"])
        status_changed = new_status is not None and new_status != order["status_id"]
        if status_changed:
            self._set_status(order, new_status, now)
        self.s._recompute(order)
        self.s.bump_order(order, status_changed=status_changed)
        return _json(self.s.render_order(order, set()), 202)

    def _set_status(self, order: dict, status_id: int, now: str) -> None:
        st = self.s.statuses[status_id]
        order["status_id"] = status_id
        order["status_group_id"] = st.get("group_id")
        order["closed_at"] = now if st.get("is_closing_order") else None

    async def create_payment(self, request: Request, oid: str) -> Response:
        order = self._order(oid)
        body = _obj(await _body(request))
        now = self.s.now_str()
        payment = self.s._payment(order["id"], body, now)
        order["payments"].append(payment)
        self.s._recompute(order)
        self.s.bump_order(order)
        return _json(self.s.render_payment(payment, with_method=True), 201)

    async def update_payment(self, request: Request, oid: str, pid: str) -> Response:
        order = self._order(oid)
        pay_id = _id(pid, "Payment")
        payment = next((p for p in order["payments"] if p["id"] == pay_id), None)
        if payment is None:
            raise NotFound("Payment not found.")
        body = _obj(await _body(request))
        if "status" in body and body["status"] not in ("paid", "not_paid", "canceled"):
            raise ValidationFailed({"status": ["The selected status is invalid."]})
        for k in ("status", "description"):
            if k in body:
                payment[k] = body[k]
        payment["updated_at"] = self.s.now_str()
        self.s._recompute(order)
        self.s.bump_order(order)
        return _json(self.s.render_payment(payment, with_method=True), 202)

    # ---------------- references

    async def _ref_list(self, request: Request, *, book: str) -> Response:
        """A reference book (REF_BOOKS): no filters, sorted by id."""
        plain, filters = _query(request)
        _check_filters(filters, set())
        sort = _sort(plain, {"id"}, "id")
        items = sorted(getattr(self.s, book).values(), key=lambda x: x["id"], reverse=sort.startswith("-"))
        return _json(_paginate(request, items, dict, plain))

    # ---------------- buyers

    def _buyer(self, raw: str) -> dict:
        b = self.s.buyers.get(_id(raw, "Buyer"))
        if b is None:
            raise NotFound("Buyer not found.")
        return b

    async def list_buyers(self, request: Request) -> Response:
        plain, filters = _query(request)
        _check_filters(filters, {"buyer_id", "buyer_phone", "buyer_email", "created_between", "updated_between"})
        _includes(plain, {"manager", "shipping", "company", "loyalty", "custom_fields"})
        items = _where_in(list(self.s.buyers.values()), filters, "buyer_id", "id")
        if "buyer_phone" in filters:
            ph = {digits(p) for p in _csv(filters["buyer_phone"], "buyer_phone", str)}
            items = [b for b in items if ph & {digits(p) for p in b["phone"]}]
        if "buyer_email" in filters:
            em = {e.lower() for e in _csv(filters["buyer_email"], "buyer_email", str)}
            items = [b for b in items if em & {str(e).lower() for e in b["email"]}]
        for name, fld in (("created_between", "created_at"), ("updated_between", "updated_at")):
            if name in filters:
                lo, hi = _between(filters[name], name)
                items = [b for b in items if (lo is None or _epoch(b[fld]) >= lo) and (hi is None or _epoch(b[fld]) <= hi)]
        items.sort(key=lambda b: b["id"])
        return _json(_paginate(request, items, self.s.render_buyer, plain))

    async def get_buyer(self, request: Request, bid: str) -> Response:
        return _json(self.s.render_buyer(self._buyer(bid)))

    def _buyer_fields(self, body: dict, target: dict, now: str) -> None:
        for k in ("full_name", "birthday", "note", "discount", "company_id", "manager_id", "shipping"):
            if k in body:
                target[k] = body[k]
        for k in ("email", "phone"):
            if k in body:
                v = body[k]
                target[k] = [x for x in (v if isinstance(v, list) else [v]) if x not in (None, "")]
        target["updated_at"] = now

    async def create_buyer(self, request: Request) -> Response:
        body = _obj(await _body(request))
        if not body.get("full_name") or not isinstance(body.get("full_name"), str):
            raise ValidationFailed({"full_name": ["The full name field is required."]})
        now = self.s.now_str()
        b = self.s._load_buyer({"full_name": body["full_name"], "created_at": now, "updated_at": now}, now)
        self._buyer_fields(body, b, now)
        self.s.touch()
        return _json(self.s.render_buyer(b), 201)

    async def update_buyer(self, request: Request, bid: str) -> Response:
        b = self._buyer(bid)
        body = _obj(await _body(request))
        if "full_name" in body and (not body["full_name"] or not isinstance(body["full_name"], str)):
            raise ValidationFailed({"full_name": ["The full name must be a non-empty string."]})
        self._buyer_fields(body, b, self.s.now_str())
        self.s.touch()
        return _json(self.s.render_buyer(b), 202)

    # ---------------- offers and stocks

    def _offer_ref(self, item: Any, prefix: str, errors: dict) -> int | None:
        if not isinstance(item, dict):
            errors[prefix] = ["Each item must be an object."]
            return None
        if item.get("id") is not None:
            if not isinstance(item["id"], int) or item["id"] not in self.s.offers:
                errors[f"{prefix}.id"] = ["The selected id is invalid."]
                return None
            return item["id"]
        if item.get("sku") not in (None, ""):
            oid = self.s.offer_by_sku.get(str(item["sku"]))
            if oid is None:
                errors[f"{prefix}.sku"] = ["The selected sku is invalid."]
            return oid
        errors[f"{prefix}.id"] = ["The id field is required when sku is not present."]
        return None

    async def list_offers(self, request: Request) -> Response:
        plain, filters = _query(request)
        _check_filters(filters, {"id", "sku", "product_id", "is_archived"})
        include = _includes(plain, {"product"})
        sort = _sort(plain, {"id"}, "-id")  # live: without sort, newest first (samples page-2)
        if "sku" in filters:
            items = [self.s.offers[i] for s in _csv(filters["sku"], "sku", str)
                     if (i := self.s.offer_by_sku.get(s)) is not None]
        elif "id" in filters:
            items = [self.s.offers[i] for i in _csv(filters["id"], "id", int) if i in self.s.offers]
        else:
            items = list(self.s.offers.values())
        items = _where_in(items, filters, "id", "id")
        items = _archived(_where_in(items, filters, "product_id", "product_id"), filters)
        items = sorted({o["id"]: o for o in items}.values(), key=lambda o: o["id"], reverse=sort.startswith("-"))
        return _json(_paginate(request, items, lambda o: self.s.render_offer(o, "product" in include), plain))

    async def update_offers(self, request: Request) -> Response:
        body = _obj(await _body(request))
        offers = body.get("offers")
        errors: dict[str, list[str]] = {}
        if not isinstance(offers, list) or not offers:
            raise ValidationFailed({"offers": ["The offers field is required."]})
        if len(offers) > 10000:
            raise ValidationFailed({"offers": ["The offers may not have more than 10000 items."]})
        plan = []
        for i, item in enumerate(offers):
            oid = self._offer_ref(item, f"offers.{i}", errors)
            if oid is None:
                continue
            changes = {}
            for k in ("price", "purchased_price"):
                if k in item:
                    try:
                        v = to_dec(item[k], f"offers.{i}.{k}")
                    except ValidationFailed as exc:
                        errors.update(exc.errors)
                        continue
                    if v is None or v < 0:
                        errors[f"offers.{i}.{k}"] = [f"The offers.{i}.{k} must be at least 0."]
                        continue
                    changes[k] = v
            for k in ("weight", "height", "length", "width"):
                if k in item:
                    changes[k] = item[k]
            if "image_url" in item:
                changes["thumbnail_url"] = item["image_url"]
            plan.append((oid, changes))
        if errors:
            raise ValidationFailed(errors)
        now = self.s.now_str()
        for oid, changes in plan:
            self.s.offers[oid].update(changes)
            self.s.offers[oid]["updated_at"] = now
        self.s.touch()
        return _json({"status": True}, 202)

    async def list_stocks(self, request: Request) -> Response:
        plain, filters = _query(request)
        _check_filters(filters, {"offers_id", "offers_sku", "details"})
        details = str(filters.get("details", "")).lower() in ("1", "true")
        items = _where_in(list(self.s.offers.values()), filters, "offers_id", "id")
        items = _where_in(items, filters, "offers_sku", "sku", str)
        items.sort(key=lambda o: o["id"])

        def render(o: dict) -> dict:
            q, r = self.s.stock_totals(o["id"])
            out = {"id": o["id"], "sku": o["sku"], "price": num(o["price"]),
                   "purchased_price": num(o["purchased_price"]), "quantity": num(q), "reserve": num(r)}
            if details:
                out["warehouse"] = []
                for wid, w in sorted(self.s.warehouses.items()):
                    st = self.s.stocks.get((o["id"], wid)) or {"quantity": 0, "reserve": 0}
                    out["warehouse"].append({"id": wid, "name": w.get("name"), "quantity": num(st["quantity"]),
                                             "reserve": num(st["reserve"])})
            return out

        return _json(_paginate(request, items, render, plain))

    async def update_stocks(self, request: Request) -> Response:
        body = _obj(await _body(request))
        errors: dict[str, list[str]] = {}
        wid = body.get("warehouse_id")
        if wid is None:
            errors["warehouse_id"] = ["The warehouse id field is required."]
        elif not isinstance(wid, int) or wid not in self.s.warehouses:
            errors["warehouse_id"] = ["The selected warehouse id is invalid."]
        stocks = body.get("stocks")
        if not isinstance(stocks, list) or not stocks:
            errors["stocks"] = ["The stocks field is required."]
            stocks = []
        elif len(stocks) > 10000:
            errors["stocks"] = ["The stocks may not have more than 10000 items."]
        plan = []
        for i, item in enumerate(stocks):
            oid = self._offer_ref(item, f"stocks.{i}", errors)
            if not isinstance(item, dict):
                continue
            q = item.get("quantity")
            if q is None or isinstance(q, bool) or not isinstance(q, (int, float)):
                errors[f"stocks.{i}.quantity"] = ["The quantity field is required and must be a number."]
                continue
            if q < 0:
                errors[f"stocks.{i}.quantity"] = ["The quantity must be at least 0."]
                continue
            if oid is not None:
                plan.append((oid, to_dec(q)))
        if errors:
            raise ValidationFailed(errors)
        for oid, q in plan:
            rec = self.s.stocks.setdefault((oid, wid), {"quantity": Decimal(0), "reserve": Decimal(0)})
            rec["quantity"] = q  # absolute set, as the vendor's stock-movement document does
        self.s.touch()
        return _json({"status": True}, 202)

    # ---------------- products

    async def list_products(self, request: Request) -> Response:
        plain, filters = _query(request)
        _check_filters(filters, {"product_id", "category_id", "is_archived"})
        _includes(plain, {"custom_fields"})
        items = _where_in(list(self.s.products.values()), filters, "product_id", "id")
        items = _archived(_where_in(items, filters, "category_id", "category_id"), filters)
        items.sort(key=lambda p: p["id"])
        return _json(_paginate(request, items, self.s.render_product, plain))

    async def get_product(self, request: Request, pid: str) -> Response:
        p = self.s.products.get(_id(pid, "Product"))
        if p is None:
            raise NotFound("Product not found.")
        return _json(self.s.render_product(p))

    async def create_product(self, request: Request) -> Response:
        body = _obj(await _body(request))
        errors: dict[str, list[str]] = {}
        if not body.get("name") or not isinstance(body.get("name"), str):
            errors["name"] = ["The name field is required."]
        sku = body.get("sku")
        if sku is not None and str(sku) in self.s.offer_by_sku:
            errors["sku"] = ["The sku has already been taken."]
        for k in ("price", "purchased_price"):
            if body.get(k) is not None:
                try:
                    v = to_dec(body[k], k)
                    if v is not None and v < 0:
                        errors[k] = [f"The {k} must be at least 0."]
                except ValidationFailed as exc:
                    errors.update(exc.errors)
        if errors:
            raise ValidationFailed(errors)
        now = self.s.now_str()
        pics = body.get("pictures") or []
        product = self.s._load_product({**{k: v for k, v in body.items() if k != "id"},
                                        "thumbnail_url": pics[0] if pics else None,
                                        "attachments_data": pics, "created_at": now, "updated_at": now}, now)
        for k in ("_sku", "_price", "_purchased_price", "_barcode"):
            product.pop(k, None)
        self.s._new_offer(product, {"sku": sku, "price": body.get("price") or 0,
                                    "purchased_price": body.get("purchased_price") or 0,
                                    "barcode": body.get("barcode"), "weight": body.get("weight"),
                                    "length": body.get("length"), "height": body.get("height"),
                                    "width": body.get("width")}, now, is_default=True)
        self.s.touch()
        return _json(self.s.render_product(product), 201)


# ---------------------------------------------------------------- the admin surface


class Admin:
    def __init__(self, store: Store, faults: Faults, traffic: Traffic) -> None:
        self.s, self.faults, self.traffic = store, faults, traffic

    async def handle(self, request: Request, path: str) -> Response:
        method = request.method
        if path == "reset" and method == "POST":
            self.s.clear()
            self.traffic.reset()
            return _json({"status": True})
        if path == "state" and method == "PUT":
            self.s.load(_obj(await _body(request)))
            self.traffic.reset()
            return _json({"status": True, "orders": len(self.s.orders)})
        if path == "state" and method == "GET":
            return _json(self.s.dump())
        if path == "clock" and method == "POST":
            body = _obj(await _body(request))
            try:
                self.s.clock.set(body)
            except (ValueError, TypeError):
                raise ValidationFailed({"now": ["Use an ISO timestamp, null, or advance_seconds."]}) from None
            return _json(self.s.clock.describe())
        if path == "clock" and method == "GET":
            return _json(self.s.clock.describe())
        if path == "faults" and method == "POST":
            try:
                self.faults.configure(_obj(await _body(request)))
            except (ValueError, TypeError, AttributeError):
                raise ValidationFailed({"faults": ["Invalid fault configuration."]}) from None
            return _json(self.faults.describe())
        if path == "faults" and method == "GET":
            return _json(self.faults.describe())
        if path == "requests" and method == "GET":
            window = self.faults.rate_window_s
            return _json({
                "counts": dict(self.traffic.counts),
                "total": sum(self.traffic.counts.values()),
                "status_counts": dict(self.traffic.status_counts),
                "per_minute": dict(self.traffic.per_minute),
                "max_in_window": self.traffic.max_in_window(window),
                "window_s": window,
                "requests_per_minute": self.faults.requests_per_minute,
            })
        m = re.fullmatch(r"orders/(\d+)/lines", path)
        if m and method == "POST":
            return self._add_line(int(m.group(1)), _obj(await _body(request)))
        m = re.fullmatch(r"orders/(\d+)", path)
        if m and method == "PATCH":
            return self._patch_order(int(m.group(1)), _obj(await _body(request)))
        m = re.fullmatch(r"buyers/(\d+)", path)
        if m and method == "PATCH":
            b = self.s.buyers.get(int(m.group(1)))
            if b is None:
                raise NotFound("Buyer not found.")
            KeyCRMApi(self.s)._buyer_fields(_obj(await _body(request)), b, self.s.now_str())
            self.s.touch()
            return _json(self.s.render_buyer(b))
        return _msg(404, f"Admin route {method} /__admin/{path} not found.")

    def _add_line(self, oid: int, body: dict) -> Response:
        """Test-scenario helper: the real API cannot add a line through PUT /order/{id}."""
        order = self.s.orders.get(oid)
        if order is None:
            raise NotFound("Order not found.")
        if body.get("sku") is None and body.get("offer_id") is None and not isinstance(body.get("offer"), dict):
            raise ValidationFailed({"sku": ["The sku or offer_id field is required."]})
        now = self.s.now_str()
        order["products"].append(self.s._line({**body, "created_at": now, "updated_at": now}, now))
        self.s._recompute(order)
        self.s.bump_order(order)
        return _json(self.s.render_order(order, {"products", "buyer", "payments", "shipping"}), 201)

    def _patch_order(self, oid: int, body: dict) -> Response:
        """Set arbitrary fields (buyer rename, shipping dates, status, totals...) and bump updated_at."""
        order = self.s.orders.get(oid)
        if order is None:
            raise NotFound("Order not found.")
        now = self.s.now_str()
        status_changed = False
        for k, v in body.items():
            if k in ("id", "updated_at"):
                continue
            if k == "buyer" and isinstance(v, dict):
                b = self.s.buyers.get(order["client_id"])
                if b is None:
                    order["client_id"] = self.s._find_or_create_buyer(v, now)["id"]
                else:
                    KeyCRMApi(self.s)._buyer_fields(v, b, now)
            elif k == "shipping":
                order["shipping"] = self.s._shipping(v, now, order["shipping"]) if v else None
            elif k == "status_id":
                if v not in self.s.statuses:
                    raise ValidationFailed({"status_id": ["The selected status id is invalid."]})
                if v != order["status_id"]:
                    KeyCRMApi(self.s)._set_status(order, v, now)
                    status_changed = True
            elif k == "products" and isinstance(v, list):
                order["products"] = [self.s._line(p, now) for p in v]
            elif k == "payments" and isinstance(v, list):
                order["payments"] = [self.s._payment(oid, p, now) for p in v]
            elif k in ("ordered_at", "created_at", "closed_at", "status_changed_at"):
                order[k] = norm_ts(v)
            elif k in ("grand_total", "total_discount", "discount_amount", "shipping_price", "wrap_price",
                       "taxes", "payments_total", "products_total", "margin_sum", "expenses_sum"):
                order[k] = to_dec(v, k)
            else:
                order[k] = v
        given = {k: True for k in body if k in ("grand_total", "total_discount", "products_total",
                                                "payments_total", "payment_status", "margin_sum")}
        self.s._recompute(order, keep_given=given)
        self.s.bump_order(order, status_changed=status_changed)
        if "ordered_at" in body:
            self.s.idx_ordered.set(oid, _epoch(order["ordered_at"]))
        if "status_changed_at" in body:
            order["status_changed_at"] = norm_ts(body["status_changed_at"])
        return _json(self.s.render_order(order, {"products", "buyer", "payments", "shipping"}))


# ---------------------------------------------------------------- assembly


def create_app(state: dict | None = None) -> Starlette:
    """Build an emulator.  ``state`` in the /__admin/state format; None loads DEFAULT_STATE (demo key)."""
    store = Store(Clock())
    store.load(DEFAULT_STATE if state is None else state)
    faults = Faults()
    traffic = Traffic()
    api = KeyCRMApi(store)
    admin = Admin(store, faults, traffic)
    lock = asyncio.Lock()

    async def dispatch(request: Request) -> Response:
        response = await _guarded(request)
        if request.url.path.startswith("/v1/") and not isinstance(response, _DropResponse):
            traffic.status_counts[str(response.status_code)] += 1
            # the server's clock, the one that stamps updated_at (servers serving this app turn uvicorn's own
            # Date off, which would tell the real time even when the emulator's clock is frozen or shifted)
            response.headers["date"] = format_datetime(store.clock.now(), usegmt=True)
        return response

    async def _guarded(request: Request) -> Response:
        try:
            return await _dispatch(request)
        except ValidationFailed as exc:
            return _msg(422, exc.message, errors=exc.errors)
        except NotFound as exc:
            return _msg(404, str(exc) or "Not found.")
        except BadQuery as exc:
            return _msg(400, str(exc))
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
            # bad input that slipped past explicit validation (e.g. a malformed timestamp): still a 422
            return _msg(422, "The given data was invalid.", errors={"body": [type(exc).__name__]})
        except Exception:  # noqa: BLE001 - the emulator must never leak a traceback
            return _msg(500, "Server Error")

    async def _dispatch(request: Request) -> Response:
        path = request.url.path
        if path.startswith("/__admin/"):
            async with lock:
                return await admin.handle(request, path[len("/__admin/"):].strip("/"))
        if not path.startswith("/v1/"):
            return _msg(404, "Not Found")
        sub = "/" + path[len("/v1/"):].strip("/")
        handler, params, other = api.match(request.method, sub)
        key_label = f"{request.method} /v1{sub}"
        if handler is None:
            if other:
                return _msg(405, f"The {request.method} method is not supported for route v1{sub}.")
            return _msg(404, f"The route v1{sub} could not be found.")
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        traffic.counts[key_label] += 1
        if not key or key not in store.api_keys:
            return _msg(401, "Unauthenticated.")
        wait = traffic.admit(key, max(1, faults.requests_per_minute), faults.rate_window_s)
        if wait is not None:
            return _json({"message": "Too Many Attempts."}, 429, headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.drop_connection_next > 0:
            faults.drop_connection_next -= 1
            traffic.status_counts["dropped"] += 1
            return _DropResponse()
        injected = _injected_failure(request.method, sub)
        if injected is not None:
            headers = {"Retry-After": str(faults.retry_after_s).removesuffix(".0")} if injected in (429, 503) else None
            message = "Too Many Attempts." if injected == 429 else "Service Unavailable" if injected == 503 \
                else "Server Error"
            return _json({"message": message}, injected, headers=headers)
        async with lock:
            return await handler(request, **params)

    def _injected_failure(method: str, sub: str) -> int | None:
        for f in faults.fail_next:
            if f["times"] <= 0:
                continue
            if f["method"] and f["method"] != method:
                continue
            p = f["path"].removeprefix("/v1")
            if p in ("*", sub) or (p.endswith("*") and sub.startswith(p[:-1])):
                f["times"] -= 1
                return f["status"]
        if faults.fail_ratio and random.random() < faults.fail_ratio:
            return faults.fail_status
        return None

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", dispatch, methods=methods)])
    app.state.store = store
    app.state.faults = faults
    app.state.traffic = traffic
    return app
