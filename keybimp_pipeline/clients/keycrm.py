"""KeyCRM Open API client: the only code in the pipeline that speaks HTTP to KeyCRM.

Why it looks like this (shared/api/keycrm-notes.md):

* KeyCRM allows 60 requests a minute per API key (maybe 20).  A process-wide limiter per key
  (pyrate-limiter, keyed by a sha256 fingerprint, never by the key itself) paces every client
  instance that uses the key, so the pipeline never causes a 429 itself.
* 429s are still honoured (``Retry-After``, else exponential back-off with jitter), and 5xx,
  timeouts and dropped connections are retried with tenacity — but only for idempotent calls:
  GETs and the absolute-set PUTs of stocks and prices.  A POST that failed ambiguously (the
  request may have been processed: a read timeout, a dropped connection, a 5xx) is NOT
  retried: KeyCRM has no idempotency key, so a retry could create a second order, payment or
  product.  POSTs are retried only when the server provably did nothing (429, connect errors).
* JSON numbers are parsed straight to Decimal; money is never float.
* Timestamps arrive as ``2024-11-13T18:46:36.000000Z`` or ``2024-05-28 09:34:10`` (UTC); both
  become aware UTC datetimes.  PHP serialises empty maps as ``[]``; those become None.
* A listing remembers the vendor's clock when it answered its first page (the response's ``Date``
  header, ``OrderListing.served_at``): the moment an incremental reader may resume from, taken from
  the vendor's clock that also stamps ``updated_at``, never from ours.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Self

import httpx
from pyrate_limiter import InMemoryBucket, Limiter, Rate
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

__all__ = [
    "KeyCRMAuthError",
    "KeyCRMClient",
    "KeyCRMError",
    "KeyCRMNotFound",
    "KeyCRMTransientError",
    "KeyCRMValidationError",
    "OrderListing",
    "key_fingerprint",
    "normalize",
    "normalize_order",
    "parse_money",
    "parse_timestamp",
]

log = logging.getLogger(__name__)

PAGE_LIMIT = 50
ORDER_INCLUDE = "buyer,products.offer,payments,shipping,status"
FILTER_TS_FORMAT = "%Y-%m-%d %H:%M:%S"

# ---------------------------------------------------------------- errors


class KeyCRMError(Exception):
    """A failed KeyCRM call.  Names the endpoint and status; never carries the API key."""

    def __init__(self, endpoint: str, status: int | None, message: str) -> None:
        self.endpoint = endpoint
        self.status = status
        self.message = message
        super().__init__(f"KeyCRM {endpoint} failed "
                         f"({f'HTTP {status}' if status is not None else 'no answer'}): {message}")


class KeyCRMAuthError(KeyCRMError):
    """401: the key is missing, wrong or revoked."""


class KeyCRMNotFound(KeyCRMError):
    """404: no such entity (or route)."""


class KeyCRMValidationError(KeyCRMError):
    """422 (and 400 query errors): the request was refused as invalid; ``errors`` holds the field messages."""

    def __init__(self, endpoint: str, status: int | None, message: str, errors: dict | None = None) -> None:
        super().__init__(endpoint, status, message)
        self.errors = errors or {}


class KeyCRMTransientError(KeyCRMError):
    """5xx, transport failures, or 429 still failing after the bounded retries."""


class _Retryable(Exception):
    """Internal: one failed attempt that may be retried; carries the server's Retry-After."""

    def __init__(self, error: KeyCRMError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


# ---------------------------------------------------------------- parsing


def parse_timestamp(value: Any) -> datetime | None:
    """KeyCRM timestamp (either live form, a bare date, or a datetime) -> aware UTC datetime; None stays None.

    Zone-less values are UTC: the vendor states every entity time is UTC (keycrm-notes 1.3).
    """
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str):
        raise TypeError(f"not a KeyCRM timestamp: {value!r}")
    text = value.strip()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a KeyCRM timestamp: {value!r}") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_money(value: Any) -> Decimal | None:
    """Money as KeyCRM sends it (int, decimal, float or numeric string like ``"0.00"``) -> Decimal."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError(f"not a money amount: {value!r}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip().replace(" ", ""))
        except InvalidOperation:
            raise ValueError(f"not a money amount: {value!r}") from None
    raise TypeError(f"not a money amount: {value!r}")


MONEY_FIELDS = frozenset({
    "grand_total", "total_discount", "discount_amount", "shipping_price", "wrap_price", "taxes", "price",
    "price_sold", "purchased_price", "amount", "actual_amount", "payments_total", "products_total",
    "margin_sum", "expenses_sum", "orders_sum", "individual_discount", "loyalty_discount", "min_price",
    "max_price", "discount_percent", "discount",
})
TIMESTAMP_FIELDS = frozenset({
    "created_at", "updated_at", "ordered_at", "status_changed_at", "closed_at", "payment_date",
    "shipping_date", "shipping_date_actual", "status_expired_at", "source_updated_at", "deleted_at",
    "last_synced_at", "tracking_code_send_at", "last_logged_at",
})
# keys documented as objects that PHP sends as [] when empty
OBJECT_FIELDS = frozenset({
    "shipping", "discount_data", "buyer", "status", "offer", "product", "fiscal_result", "picture", "warehouse",
    "properties_agg", "marketing", "manager", "company", "last_history", "delivery_service", "address_payload",
    "shipment_payload", "context",
})


def _normalize_value(key: str | None, value: Any) -> Any:
    if key in OBJECT_FIELDS and value == []:
        return None
    if key in MONEY_FIELDS and not isinstance(value, (dict, list)):
        return parse_money(value)
    if key in TIMESTAMP_FIELDS and not isinstance(value, (dict, list)):
        return parse_timestamp(value)
    if isinstance(value, dict):
        return {k: _normalize_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        # a list field holds records (or scalars) whose own keys decide their parsing
        return [_normalize_value(None, v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def normalize(payload: Any) -> Any:
    """Normalise any KeyCRM body (entity, list, paginated envelope, webhook): same keys, typed values."""
    return _normalize_value(None, payload)


def normalize_order(raw: dict) -> dict:
    """One order (with any includes): timestamps -> aware UTC datetimes, money -> Decimal, ``[]`` objects -> None.

    Unknown keys are kept; nulls stay None.
    """
    if not isinstance(raw, dict):
        raise TypeError(f"an order must be a JSON object, got {type(raw).__name__}")
    return normalize(raw)


INVALID_KEY = "_invalid"  # reasons a listed order's fields could not be read; staging quarantines such orders


def _tolerant_value(key: str | None, value: Any, path: str, problems: list[str]) -> Any:
    try:
        if isinstance(value, dict):
            return {k: _tolerant_value(k, v, f"{path}.{k}" if path else k, problems) for k, v in value.items()}
        if isinstance(value, list) and key not in OBJECT_FIELDS:
            return [_tolerant_value(None, v, f"{path}[{i}]", problems) if isinstance(v, (dict, list)) else v
                    for i, v in enumerate(value)]
        return _normalize_value(key, value)
    except (TypeError, ValueError, ArithmeticError) as exc:
        problems.append(f"{path}: {exc}"[:300])
        return None


def tolerant_order(raw: Any) -> dict | None:
    """`normalize_order` for one order of a list page: a field that cannot be read (a broken timestamp, a
    money amount that is no number) becomes None and its reason goes to ``order["_invalid"]``, so one bad
    order is quarantined downstream instead of failing the whole page.  Not an object, or no integer id:
    None (nothing could identify it) and a warning."""
    if not isinstance(raw, dict):
        log.warning("KeyCRM order list held a %s instead of an order; skipped", type(raw).__name__)
        return None
    try:
        order_id = int(raw.get("id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        log.warning("KeyCRM order without a usable id skipped")
        return None
    try:
        return normalize_order({**raw, "id": order_id})
    except (TypeError, ValueError, ArithmeticError):
        problems: list[str] = []
        order = _tolerant_value(None, {**raw, "id": order_id}, "", problems)
        order[INVALID_KEY] = problems
        return order


def key_fingerprint(api_key: str) -> str:
    """A stable, non-reversible name for a key (limiter registry, logs)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _fmt_bound(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("filter bounds must be timezone-aware datetimes")
    return value.astimezone(UTC).strftime(FILTER_TS_FORMAT)


# ---------------------------------------------------------------- shared limiter

_LIMITERS: dict[str, tuple[int, float, Limiter]] = {}
_LIMITERS_LOCK = threading.Lock()


def _shared_limiter(api_key: str, requests_per_window: int, window_s: float) -> Limiter:
    """One limiter per key per process.  A later instance asking for a stricter rate tightens it.

    The window is padded slightly: the server stamps requests on arrival, the client on departure,
    and network jitter must not squeeze N+1 arrivals into one server window.
    """
    fp = key_fingerprint(api_key)
    with _LIMITERS_LOCK:
        existing = _LIMITERS.get(fp)
        if existing is not None:
            n, w, limiter = existing
            if requests_per_window / window_s >= n / w:
                return limiter
        padded_ms = int(window_s * 1000 + max(250.0, window_s * 20))
        bucket = InMemoryBucket([Rate(requests_per_window, padded_ms)])
        limiter = Limiter(bucket, raise_when_fail=False, max_delay=padded_ms * 4, retry_until_max_delay=True)
        _LIMITERS[fp] = (requests_per_window, window_s, limiter)
        return limiter


def reset_shared_limiters() -> None:
    """Forget every shared limiter (tests)."""
    with _LIMITERS_LOCK:
        _LIMITERS.clear()


# ---------------------------------------------------------------- the client


class KeyCRMClient:
    """Synchronous KeyCRM client.  Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        requests_per_minute: int = 60,
        timeout: float = 30.0,
        max_retries: int = 5,
        transport: httpx.BaseTransport | None = None,
        rate_window_s: float = 60.0,
        backoff_base_s: float = 1.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        """``rate_window_s`` and ``backoff_base_s`` exist so tests can run the real logic on a short clock."""
        if not api_key:
            raise ValueError("KeyCRM API key is empty")
        self._key = api_key
        self.fingerprint = key_fingerprint(api_key)
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.max_backoff_s = max_backoff_s
        self.request_count = 0
        self._limiter = _shared_limiter(api_key, requests_per_minute, rate_window_s)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"KeyCRMClient(base_url={str(self._http.base_url)!r}, key=sha256:{self.fingerprint})"

    # ------------------------------------------------------------ transport

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_backoff_s)
        exp = self.backoff_base_s * (2 ** (state.attempt_number - 1))
        return min(self.max_backoff_s, random.uniform(0, exp) + exp / 2)

    def _request(self, method: str, path: str, *, params: dict | None = None, json_body: Any = None,
                 idempotent: bool | None = None) -> Any:
        """One logical call: rate-limited, retried per the policy in the module docstring."""
        return self._call(method, path, params=params, json_body=json_body, idempotent=idempotent)[0]

    def _call(self, method: str, path: str, *, params: dict | None = None, json_body: Any = None,
              idempotent: bool | None = None) -> tuple[Any, datetime | None]:
        """`_request`, also giving the vendor's clock at the answer that succeeded (its ``Date``)."""
        endpoint = f"{method} /{path.lstrip('/')}"
        if idempotent is None:
            idempotent = method == "GET"

        def attempt() -> Any:
            while not self._limiter.try_acquire(self.fingerprint):
                pass  # pyrate-limiter already waited up to max_delay; ask again
            self.request_count += 1
            try:
                resp = self._http.request(method, path.lstrip("/"), params=params, json=json_body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # nothing reached the server: safe to retry any method
                raise _Retryable(KeyCRMTransientError(endpoint, None, self._scrub(f"{type(exc).__name__}"))) from None
            except httpx.TransportError as exc:
                err = KeyCRMTransientError(endpoint, None, self._scrub(f"{type(exc).__name__}: {exc}"))
                if idempotent:
                    raise _Retryable(err) from None
                raise err from None
            return self._handle(endpoint, resp, idempotent), _served_at(resp)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            raise exc.error from None

    def _handle(self, endpoint: str, resp: httpx.Response, idempotent: bool) -> Any:
        status = resp.status_code
        if status < 400:
            if not resp.content:
                return None
            try:
                return json.loads(resp.text, parse_float=Decimal)
            except ValueError:
                err = KeyCRMTransientError(endpoint, status, "response is not JSON")
                if idempotent:
                    raise _Retryable(err) from None
                raise err from None
        message, errors = self._error_body(resp)
        if status == 429:
            raise _Retryable(KeyCRMTransientError(endpoint, status, message or "rate limited"),
                             _retry_after(resp))
        if status >= 500:
            err = KeyCRMTransientError(endpoint, status, message or resp.reason_phrase)
            if idempotent:
                raise _Retryable(err, _retry_after(resp))
            raise err
        if status == 401:
            raise KeyCRMAuthError(endpoint, status, message or "Unauthenticated")
        if status == 404:
            raise KeyCRMNotFound(endpoint, status, message or "Not found")
        if status in (400, 422):
            raise KeyCRMValidationError(endpoint, status, message or "invalid request", errors)
        raise KeyCRMError(endpoint, status, message or resp.reason_phrase)

    def _error_body(self, resp: httpx.Response) -> tuple[str, dict]:
        try:
            body = resp.json()
        except ValueError:
            return self._scrub(resp.text[:200]), {}
        if isinstance(body, dict):
            return self._scrub(str(body.get("message") or "")[:500]), body.get("errors") or {}
        return "", {}

    # ------------------------------------------------------------ paging

    def iter_pages(self, path: str, params: dict | None = None,
                   listing: OrderListing | None = None) -> Iterator[list[dict]]:
        """Yield each page's ``data`` at limit=50 until the last page.

        Pages are computed by the server at request time; if the result set shifts while paging,
        items may be skipped or repeated — callers that need completeness overlap and de-duplicate.
        The loop stops at ``last_page`` (re-read on every page), on an empty page, or on a page
        shorter than the limit, so it cannot loop forever.
        """
        base = dict(params or {})
        base["limit"] = PAGE_LIMIT
        page = 1
        while True:
            body, served_at = self._call("GET", path, params={**base, "page": page})
            if listing is not None:
                if page == 1:
                    listing.served_at = served_at
                if isinstance(body, dict) and body.get("total") is not None:
                    listing.totals.append(int(body["total"]))
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise KeyCRMError(f"GET /{path.lstrip('/')}", 200, "expected a paginated envelope")
            data = body["data"]
            if data:
                yield data
            last_page = int(body.get("last_page") or page)
            if not data or page >= last_page or len(data) < PAGE_LIMIT:
                return
            page += 1

    # ------------------------------------------------------------ orders

    def iter_orders(
        self,
        *,
        updated_between: tuple[datetime, datetime] | None = None,
        created_between: tuple[datetime, datetime] | None = None,
        include: str = ORDER_INCLUDE,
        status_ids: Iterable[int] | None = None,
    ) -> OrderListing:
        """Pages of normalised orders, sorted by id.  ``created_between`` matches ``ordered_at`` (vendor rule).

        Requested lazily, page by page, as the listing is iterated; once the first page has arrived its
        ``served_at`` is the vendor's clock when it answered (None when the vendor sent no ``Date``).
        """
        params: dict[str, Any] = {"include": include, "sort": "id"}
        if updated_between is not None:
            params["filter[updated_between]"] = f"{_fmt_bound(updated_between[0])}, {_fmt_bound(updated_between[1])}"
        if created_between is not None:
            params["filter[created_between]"] = f"{_fmt_bound(created_between[0])}, {_fmt_bound(created_between[1])}"
        if status_ids:
            params["filter[status_id]"] = ",".join(str(int(s)) for s in status_ids)
        listing = OrderListing()
        listing.pages = self._order_pages(params, listing)
        return listing

    def _order_pages(self, params: dict, listing: OrderListing) -> Iterator[list[dict]]:
        for page in self.iter_pages("order", params, listing):
            orders = [tolerant_order(o) for o in page]
            yield [o for o in orders if o is not None]

    def count_orders_updated(self, since: datetime, until: datetime | None = None) -> int:
        """How many orders changed in the window: one cheap request (limit=1) for a sensor."""
        until = until or datetime.now(UTC) + timedelta(seconds=1)
        body = self._request("GET", "order", params={
            "limit": 1, "filter[updated_between]": f"{_fmt_bound(since)}, {_fmt_bound(until)}"})
        return int(body.get("total") or 0)

    def get_order(self, order_id: int, include: str = ORDER_INCLUDE) -> dict:
        return normalize_order(self._request("GET", f"order/{int(order_id)}", params={"include": include}))

    # ------------------------------------------------------------ reference reads

    def _all(self, path: str, params: dict | None = None) -> list[dict]:
        return [normalize(x) for page in self.iter_pages(path, params) for x in page]

    def list_order_statuses(self) -> list[dict]:
        return self._all("order/status")

    def list_payment_methods(self) -> list[dict]:
        return self._all("order/payment-method")

    def list_sources(self) -> list[dict]:
        return self._all("order/source")

    def list_delivery_services(self) -> list[dict]:
        return self._all("order/delivery-service")

    def iter_buyers(self, *, phones: Iterable[str] | None = None, emails: Iterable[str] | None = None,
                    updated_between: tuple[datetime, datetime] | None = None) -> Iterator[list[dict]]:
        params: dict[str, Any] = {}
        if phones:
            params["filter[buyer_phone]"] = ",".join(phones)
        if emails:
            params["filter[buyer_email]"] = ",".join(emails)
        if updated_between is not None:
            params["filter[updated_between]"] = f"{_fmt_bound(updated_between[0])}, {_fmt_bound(updated_between[1])}"
        for page in self.iter_pages("buyer", params):
            yield [normalize(b) for b in page]

    def iter_offers(self, skus: Iterable[str] | None = None, ids: Iterable[int] | None = None,
                    include_product: bool = False) -> Iterator[list[dict]]:
        """Offers (variants).  Long sku/id lists are split so the query string stays short."""
        for params in _chunked_filters({"filter[sku]": skus, "filter[id]": ids}):
            params["sort"] = "id"
            if include_product:
                params["include"] = "product"
            for page in self.iter_pages("offers", params):
                yield [normalize(o) for o in page]

    def iter_offer_stocks(self, details: bool = True, skus: Iterable[str] | None = None) -> Iterator[list[dict]]:
        """Stock per offer; with ``details`` each row has ``warehouse[{id, name, quantity, reserve}]``."""
        for params in _chunked_filters({"filter[offers_sku]": skus}):
            if details:
                params["filter[details]"] = "true"
            for page in self.iter_pages("offers/stocks", params):
                yield [normalize(o) for o in page]

    # ------------------------------------------------------------ writes

    def put_offer_stocks(self, warehouse_id: int, stocks: list[dict], batch_size: int = 500) -> int:
        """Set absolute quantities on one warehouse; each item ``{sku|id, quantity}``.  Returns requests sent.

        Absolute, so a retry after an ambiguous failure is harmless.
        """
        sent = 0
        for i in range(0, len(stocks), batch_size):
            batch = [_jsonable(s) for s in stocks[i:i + batch_size]]
            self._request("PUT", "offers/stocks", json_body={"warehouse_id": int(warehouse_id), "stocks": batch},
                          idempotent=True)
            sent += 1
        return sent

    def put_offers(self, offers: list[dict], batch_size: int = 500) -> int:
        """Update offer prices (``{sku|id, price?, purchased_price?}``); absolute, so retried.  Returns requests sent."""
        sent = 0
        for i in range(0, len(offers), batch_size):
            batch = [_jsonable(o) for o in offers[i:i + batch_size]]
            self._request("PUT", "offers", json_body={"offers": batch}, idempotent=True)
            sent += 1
        return sent

    def create_product(self, body: dict) -> dict:
        """POST /products (not retried on ambiguous failure: it would duplicate the product)."""
        return normalize(self._request("POST", "products", json_body=_jsonable(body), idempotent=False))


class OrderListing(Iterator[list[dict]]):
    """One order listing, iterated page by page; ``served_at`` is set when the first page arrives, ``totals``
    holds the listing's size as each page reported it."""

    def __init__(self) -> None:
        self.served_at: datetime | None = None
        self.totals: list[int] = []
        self.pages: Iterator[list[dict]] = iter(())

    @property
    def shrank(self) -> bool:
        """An order left the listing while it was paged (deleted, or its date moved out of the range): the pages
        after it shifted back, so an order may have slid onto a page already read, unseen."""
        return any(t < self.totals[0] for t in self.totals[1:]) if self.totals else False

    def __next__(self) -> list[dict]:
        return next(self.pages)


def _served_at(resp: httpx.Response) -> datetime | None:
    """The vendor's clock at its answer (RFC 9110 ``Date``, whole seconds), aware UTC; None if absent or unreadable."""
    raw = resp.headers.get("date")
    if not raw:
        return None
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def _retry_after(resp: httpx.Response) -> float | None:
    raw = resp.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            return max(0.0, (parsedate_to_datetime(raw) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def _jsonable(value: Any) -> Any:
    """Decimal -> int when whole else float (KeyCRM's JSON form); datetimes -> UTC filter form."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return _fmt_bound(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _chunked_filters(filters: dict[str, Iterable | None], chunk: int = 100) -> Iterator[dict[str, Any]]:
    """One params dict per chunk of the (at most one) list filter given; one empty dict when none."""
    given = [(k, [str(v) for v in vals]) for k, vals in filters.items() if vals is not None]
    if not given:
        yield {}
        return
    for key, vals in given:
        for i in range(0, len(vals), chunk):
            yield {key: ",".join(vals[i:i + chunk])}
