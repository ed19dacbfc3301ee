"""Bimp (BimpSoft ERP) HTTP client: login and company token, the ``{success, data}`` envelope, offset/count
pagination, typed errors and a retry policy that never duplicates a document.

Why the retry policy is split by endpoint kind: reads (every ``api-read*`` and the inventory GETs) are
safe to repeat, so transient faults (5xx, 429, transport errors) are retried with back-off.  Writes
(``api-create``, ``api-insert``, ``api-update``, ...) are retried only when the server provably did not
process them: a 429 (refused before work), a 5xx *injected before handling* cannot be told apart from one
after, so a 5xx or a timeout / dropped connection *after the request was sent* is ambiguous — Bimp has no
idempotency keys (bimp-notes §4, §6) and a blind retry could create a second customer order or payment.
Such failures raise ``BimpTransientError(ambiguous=True)`` and the caller's ledger reconciles (looks the
document up by its docNumber / external key) before trying again.  Connection failures *before* sending
(connect errors) are safe to retry for writes as well.

Secrets: the password and tokens are never logged, never put in exception messages, and the httpx
request log (which would show URLs only, never headers) is not relied upon for anything.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import httpx
from pyrate_limiter import InMemoryBucket, Limiter, Rate
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

__all__ = [
    "BimpAuthError",
    "BimpBusinessError",
    "BimpClient",
    "BimpError",
    "BimpNotFound",
    "BimpTransientError",
    "BimpValidationError",
]

log = logging.getLogger(__name__)

PAGE_SIZE = 100
TOKEN_LIFETIME_S = 3600
REFRESH_MARGIN_S = 300  # refresh at ~55 minutes (bimp-notes §5.1)
BUSINESS_REASONS = {"insufficient_stock", "reserve_exceeds_available", "period_closed", "zero_price",
                    "duplicate_external_id"}


class BimpError(Exception):
    """A Bimp call failed.  Carries the endpoint, HTTP status, server message and machine-readable details."""

    def __init__(self, endpoint: str, status: int | None, message: str, details: str | None = None) -> None:
        self.endpoint = endpoint
        self.status = status
        self.message = message
        self.details = details
        super().__init__(f"Bimp {endpoint} failed ({f'HTTP {status}' if status is not None else 'no answer'}): "
                         f"{message}"
                         + (f" [{details}]" if details else ""))


class BimpValidationError(BimpError):
    """The request was malformed or referenced something unknown (details 'validation: <field>')."""

    @property
    def field(self) -> str | None:
        d = self.details or ""
        return d.split(":", 1)[1].strip() if d.startswith("validation:") else None


class BimpBusinessError(BimpError):
    """Bimp refused on business grounds; ``reason`` is e.g. insufficient_stock, reserve_exceeds_available,
    period_closed, zero_price.  These are data (sync issues), not pipeline faults."""

    def __init__(self, endpoint: str, status: int | None, message: str, details: str | None = None) -> None:
        super().__init__(endpoint, status, message, details)
        self.reason = details or "business_rule"


class BimpNotFound(BimpError):
    """An update or cancel named a uuid Bimp does not know."""


class BimpAuthError(BimpError):
    """Login, refresh or company selection failed, or the token lacks the rights."""


class BimpTransientError(BimpError):
    """A fault of the service or the network (5xx, 429 past the retries, transport).  ``ambiguous`` is True
    when a write may have been applied although no answer arrived: reconcile before writing again."""

    def __init__(self, endpoint: str, status: int | None, message: str, details: str | None = None,
                 *, ambiguous: bool = False, retry_after: float | None = None) -> None:
        super().__init__(endpoint, status, message, details)
        self.ambiguous = ambiguous
        self.retry_after = retry_after


class _Retryable(Exception):
    """Internal: one attempt failed in a way the policy may retry."""

    def __init__(self, error: BimpError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class _TokenExpired(Exception):
    pass


def _is_read(path: str) -> bool:
    tail = path.rsplit("/", 1)[-1]
    return tail.startswith("api-read") or "/inventory/" in path


def _parse(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


class BimpClient:
    """Synchronous Bimp client.  ``company`` is a company code (e.g. "000001398") or uuid.

    ``request_count`` counts HTTP requests sent; ``request_counts`` counts them per path (benchmarks).
    ``requests_per_minute`` throttles the client itself (a sliding window) to stay under the vendor limit.
    """

    def __init__(self, base_url: str, email: str, password: str, company: str, *, timeout: float = 30.0,
                 max_retries: int = 5, requests_per_minute: int | None = None,
                 transport: httpx.BaseTransport | None = None, max_wait_s: float = 30.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                  headers={"accept-language": "uk-UA", "content-type": "application/json"})
        self._email = email
        self._password = password
        self.company = company
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.requests_per_minute = requests_per_minute
        self._rate_limiter: Limiter | None = None
        self._lock = threading.RLock()
        self._access: str | None = None
        self._refresh: str | None = None
        self._company_token: str | None = None
        self._company_expires = 0.0
        self.company_uuid: str | None = None
        self.request_count = 0
        self.request_counts: Counter[str] = Counter()

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:  # never show secrets
        return f"BimpClient(base_url={str(self._http.base_url)!r}, company={self.company!r})"

    # ------------------------------------------------------------------ raw transport
    def _throttle(self) -> None:
        """Optional client-side pacing (pyrate-limiter), when the company's rate is known."""
        if not self.requests_per_minute:
            return
        if self._rate_limiter is None:
            bucket = InMemoryBucket([Rate(self.requests_per_minute, 60_000)])
            self._rate_limiter = Limiter(bucket, raise_when_fail=False, max_delay=240_000,
                                         retry_until_max_delay=True)
        while not self._rate_limiter.try_acquire("bimp"):
            pass

    def _send(self, method: str, path: str, token: str | None, body: Any = None,
              params: dict | None = None) -> httpx.Response:
        self._throttle()
        headers = {"access-token": token} if token else {}
        self.request_count += 1
        self.request_counts[path] += 1
        content = None if body is None else json.dumps(body, default=_json_default, ensure_ascii=False)
        return self._http.request(method, path, content=content, params=params, headers=headers)

    # ------------------------------------------------------------------ auth
    def _auth_call(self, path: str, body: dict, token: str | None = None) -> dict:
        try:
            r = self._send("POST", path, token, body)
        except httpx.TransportError as e:
            raise BimpTransientError(path, None, f"transport error: {type(e).__name__}") from None
        if r.status_code >= 500 or r.status_code == 429:
            raise BimpTransientError(path, r.status_code, "service unavailable during authentication")
        try:
            payload = _parse(r)
        except ValueError:
            raise BimpTransientError(path, r.status_code, "unreadable response during authentication") from None
        if r.status_code != 200 or not isinstance(payload, dict) or payload.get("success") is not True:
            err = (payload.get("error") if isinstance(payload, dict) else None) or {}
            raise BimpAuthError(path, r.status_code, str(err.get("message") or "authentication failed"),
                                str(err.get("details") or "") or None)
        return payload.get("data") or {}

    def _login(self) -> None:
        data = self._auth_call("/org2/auth/api-login", {"email": self._email, "password": self._password})
        self._access, self._refresh = data.get("accessToken"), data.get("refreshToken")
        log.debug("Bimp login succeeded")

    def _select_company(self) -> None:
        key = "uuid" if _looks_like_uuid(self.company) else "code"
        data = self._auth_call("/org2/auth/api-selectCompany", {key: self.company}, self._access)
        self._company_token = data.get("companyAccessToken")
        self._company_expires = time.monotonic() + TOKEN_LIFETIME_S - REFRESH_MARGIN_S
        if key == "uuid":
            self.company_uuid = self.company
        log.debug("Bimp company selected")

    def _refresh_tokens(self) -> None:
        """Refresh the basic token then select the company again; log in afresh if the refresh fails."""
        try:
            if not self._refresh:
                raise BimpAuthError("/org2/auth/api-refresh", None, "no refresh token")
            data = self._auth_call("/org2/auth/api-refresh", {"refreshToken": self._refresh}, self._access)
            self._access, self._refresh = data.get("accessToken"), data.get("refreshToken")
            log.debug("Bimp token refreshed")
        except BimpAuthError:
            log.debug("Bimp refresh failed; logging in again")
            self._login()
        self._select_company()

    def _company_token_now(self) -> str:
        with self._lock:
            if self._company_token is None:
                self._login()
                self._select_company()
            elif time.monotonic() >= self._company_expires:
                self._refresh_tokens()
            assert self._company_token is not None
            return self._company_token

    def companies(self) -> list[dict]:
        """Companies the API user may select (basic token)."""
        with self._lock:
            if self._access is None:
                self._login()
            return list(self._auth_call("/org2/company/api-readDetailedList", {}, self._access) or [])

    # ------------------------------------------------------------------ core call with retries
    def call(self, path: str, body: dict | None = None, *, method: str = "POST",
             params: dict | None = None) -> Any:
        """One API call; returns ``data``.  Reads retry transient faults; writes see the module docstring."""
        if not path.startswith("/"):
            path = "/org2/" + path
        read = _is_read(path)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hinted = exc.wait if isinstance(exc, _Retryable) else None
            backoff = min(0.2 * (2 ** (state.attempt_number - 1)), 5.0)
            return min(hinted if hinted is not None else backoff, self.max_wait_s)

        retrying = Retrying(stop=stop_after_attempt(max(1, self.max_retries + 1)), wait=wait,
                            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)), reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    return self._call_once(path, body, method, params, read)
        except _Retryable as e:
            raise e.error from None
        raise AssertionError("unreachable")

    def _call_once(self, path: str, body: dict | None, method: str, params: dict | None, read: bool) -> Any:
        refreshed = False
        while True:
            token = self._company_token_now()
            try:
                r = self._send(method, path, token, body if method == "POST" else None, params)
            except httpx.TimeoutException as e:
                err = BimpTransientError(path, None, f"timeout: {type(e).__name__}", ambiguous=not read)
                if read or isinstance(e, (httpx.ConnectTimeout, httpx.PoolTimeout)):
                    raise _Retryable(err) from None
                raise err from None
            except httpx.TransportError as e:
                sent = not isinstance(e, httpx.ConnectError)
                err = BimpTransientError(path, None, f"transport error: {type(e).__name__}",
                                         ambiguous=sent and not read)
                if read or not sent:
                    raise _Retryable(err) from None
                raise err from None
            if r.status_code in (401, 498) and not refreshed:
                refreshed = True
                with self._lock:
                    if self._company_token == token:
                        self._refresh_tokens()
                continue
            return self._interpret(path, r, read)

    def _interpret(self, path: str, r: httpx.Response, read: bool) -> Any:
        status = r.status_code
        try:
            payload = _parse(r)
        except ValueError:
            err = BimpTransientError(path, status, "unreadable response body", ambiguous=not read)
            if read:
                raise _Retryable(err) from None
            raise err from None
        if status == 200 and isinstance(payload, dict) and payload.get("success") is True:
            return payload.get("data")
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            message, details = str(error.get("message") or ""), error.get("details")
        else:  # inventory 422 shape {error, message, details}
            message = str((payload or {}).get("message") or error or "") if isinstance(payload, dict) else ""
            details = payload.get("details") if isinstance(payload, dict) else None
        details = None if details is None else str(details)
        if status == 429:
            retry_after = _retry_after(r, error)
            err = BimpTransientError(path, status, message or "rate limited", details, retry_after=retry_after)
            raise _Retryable(err, retry_after)  # refused before any work: safe for writes too
        if status >= 500:
            err = BimpTransientError(path, status, message or "server error", details, ambiguous=not read)
            if read:
                raise _Retryable(err)
            raise err
        if status in (401, 403, 498):
            raise BimpAuthError(path, status, message or "not authorised", details)
        if status == 404:
            raise BimpNotFound(path, status, message or "not found", details)
        if status in (400, 409, 422) or (status == 200 and isinstance(payload, dict)):
            if details and (details in BUSINESS_REASONS or not details.startswith("validation")):
                raise BimpBusinessError(path, status, message, details)
            raise BimpValidationError(path, status, message, details)
        raise BimpError(path, status, message or "unexpected response", details)

    # ------------------------------------------------------------------ pagination
    def iter_list(self, path: str, body: dict | None = None, *, page_size: int = PAGE_SIZE) -> Iterator[list[dict]]:
        """Yield pages of an offset/count list, stopping at a short page; ``{rows, total}`` is tolerated."""
        offset = 0
        while True:
            req = dict(body or {})
            req["pagination"] = {"offset": offset, "count": page_size}
            data = self.call(path, req)
            total = None
            if isinstance(data, dict):
                total = data.get("total")
                data = data.get("rows") or []
            rows = list(data or [])
            if rows:
                yield rows
            offset += len(rows)
            if len(rows) < page_size or (total is not None and offset >= int(total)):
                return

    def list_all(self, path: str, body: dict | None = None) -> list[dict]:
        return [row for page in self.iter_list(path, body) for row in page]

    def _unpaged(self, path: str, body: dict | None = None) -> list[dict]:
        return list(self.call(path, body or {}) or [])

    # ------------------------------------------------------------------ reference books
    def organisations(self) -> list[dict]:
        return self.list_all("/org2/organization/api-readList")

    def warehouses(self) -> list[dict]:
        return self.list_all("/org2/warehouse/api-readList")

    def projects(self) -> list[dict]:
        return self.list_all("/org2/project/api-readList")

    def lines_of_business(self) -> list[dict]:
        return self.list_all("/org2/lineOfBusiness/api-readList")

    def currencies(self) -> list[dict]:
        return self.list_all("/org2/currency/api-readList")

    def cash_registries(self) -> list[dict]:
        return self.list_all("/org2/cashRegistry/api-readList")

    def bank_accounts(self) -> list[dict]:
        return self.list_all("/org2/bankAccounts/api-readList")

    def units(self) -> list[dict]:
        return self.list_all("/org2/unitsOfMeasurment/api-readList")

    def users(self) -> list[dict]:
        return self.list_all("/org2/user/api-readList")

    def employees(self) -> list[dict]:
        return self.list_all("/org2/employee/api-readList")

    def vat(self) -> list[dict]:
        return self._unpaged("/org2/vat/api-readList")

    def expense_items(self) -> list[dict]:
        return self._unpaged("/org2/expenseItems/api-readList")

    def chart_of_accounts(self) -> list[dict]:
        return self._unpaged("/org2/chartOfAccount/api-readList")

    def order_statuses(self) -> list[dict]:
        return self._unpaged("/org2/invoiceForCustomerPayment/api-readStatuses")

    def payment_statuses(self) -> list[dict]:
        return self.list_all("/org2/customerPayment/api-readStatuses")

    def contract_types(self) -> list[dict]:
        return self._unpaged("/org2/contract/api-readTypes")

    # ------------------------------------------------------------------ catalogue
    def nomenclature(self, *, article: str | None = None, name: str | None = None,
                     external_id: str | None = None, system: str | None = None,
                     uuids: list[str] | None = None, name_contains: str | None = None,
                     group_uuids: list[str] | None = None) -> list[dict]:
        """All items, or those matching the filters (integration lookup needs both system and external_id)."""
        body = _filters({"article": article, "name": name, "nameContains": name_contains,
                         "nomenclatureUuids": uuids, "nomenclatureGroupUuids": group_uuids}, system, external_id)
        return self.list_all("/org2/nomenclature/api-readList", body)

    def nomenclature_groups(self) -> list[dict]:
        return self._unpaged("/org2/nomenclature-group/api-readList")

    def create_nomenclature_group(self, name: str, parent: str | None = None) -> str:
        return _uuid_of(self.call("/org2/nomenclature-group/api-create", {"name": name, "parentuuid": parent}))

    def create_nomenclature(self, item: dict) -> str:
        """``item`` in api-create shape: type goods|service, name, unitOfMeasurementUuid, article, integration…"""
        return _uuid_of(self.call("/org2/nomenclature/api-create", item))

    def update_nomenclature(self, uuid: str, fields: dict) -> None:
        self.call("/org2/nomenclature/api-update", {"uuid": uuid, **fields})

    def _list_for(self, path: str, body: dict, key: str, uuids: list[str] | None) -> list[dict]:
        """``list_all`` filtered by ``key: uuids`` (None: unfiltered), PAGE_SIZE uuids a request."""
        if uuids is None:
            return self.list_all(path, body)
        return [row for i in range(0, len(uuids), PAGE_SIZE)
                for row in self.list_all(path, {**body, key: uuids[i:i + PAGE_SIZE]})]

    def stocks(self, nomenclature_uuids: list[str] | None = None,
               warehouse_uuids: list[str] | None = None) -> list[dict]:
        """Stock per item via nomenclature/api-readStocks (both filters arrays; the item key is singular):
        nomenclatureUuid, leftover (on hand), reserve, stock (free: leftover − reserve, bimp-notes §7.3)."""
        body = {} if warehouse_uuids is None else {"warehouseUuid": warehouse_uuids}
        return self._list_for("/org2/nomenclature/api-readStocks", body, "nomenclatureUuid", nomenclature_uuids)

    def prices(self, nomenclature_uuids: list[str] | None = None, price_list_uuids: list[str] | None = None,
               at: str | None = None) -> list[dict]:
        """Prices per item via nomenclature/api-readPrices; ``at`` an ISO instant (None: latest)."""
        body: dict[str, Any] = {"periodable": at}
        if price_list_uuids is not None:
            body["priceListUuids"] = price_list_uuids
        return self._list_for("/org2/nomenclature/api-readPrices", body, "nomenclatureUuids", nomenclature_uuids)

    def price_lists(self) -> list[dict]:
        return self.list_all("/org2/priceList/api-readList")

    def price_list(self, uuid: str) -> dict | None:
        return self.call("/org2/priceList/api-read", {"uuid": uuid})

    def price_history(self, price_list_uuid: str) -> list[dict]:
        return list(self.call("/org2/priceList/api-readPrice", {"priceListUuid": price_list_uuid}) or [])

    def create_price(self, nomenclature_uuid: str, price_list_uuid: str, amount: Decimal,
                     date: str | None = None) -> None:
        body: dict[str, Any] = {"nomenclatureUuid": nomenclature_uuid, "priceListUuid": price_list_uuid,
                                "amount": amount}
        if date:
            body["date"] = date
        self.call("/org2/priceList/api-createPrice", body)

    def stock(self, org_id: str, warehouse_id: str) -> list[dict]:
        """Stock of one warehouse (inventory/api-readList): productId, article, quantity, reserved, available."""
        out: list[dict] = []
        page = 1
        while True:
            rows = self.call("/org2/inventory/api-readList", method="GET",
                             params={"orgId": org_id, "warehouseId": warehouse_id, "page": page,
                                     "pageSize": PAGE_SIZE}) or []
            out.extend(rows)
            if len(rows) < PAGE_SIZE:
                return out
            page += 1

    # ------------------------------------------------------------------ counterparties and contracts
    def counterparties(self, *, phone: str | None = None, email: str | None = None, name: str | None = None,
                       external_id: str | None = None, system: str | None = None) -> list[dict]:
        body = _filters({"phoneNumber": phone, "email": email, "name": name}, system, external_id)
        return self.list_all("/org2/counterparty/api-readList", body)

    def counterparty(self, uuid: str) -> dict | None:
        return self.call("/org2/counterparty/api-read", {"uuid": uuid})

    def create_counterparty(self, fields: dict) -> str:
        """counterparty/api-insert; defaults isCustomer=True, isSupplier=False, isSoleProprietor=False."""
        body = {"isCustomer": True, "isSupplier": False, "isSoleProprietor": False, **fields}
        return _uuid_of(self.call("/org2/counterparty/api-insert", body))

    def save_external_id(self, counterparty_uuid: str, source: str, external_id: str) -> None:
        self.call("/org2/counterparty/api-saveExternalId",
                  {"counterpartyUuid": counterparty_uuid, "source": source, "externalId": external_id})

    def external_id(self, counterparty_uuid: str, source: str) -> str | None:
        data = self.call("/org2/counterparty/api-readExternalId",
                         {"counterpartyUuid": counterparty_uuid, "source": source})
        return None if not data else data.get("externalId")

    def counterparty_by_external_id(self, source: str, external_id: str) -> dict | None:
        return self.call("/org2/counterparty/api-readByExternalId", {"source": source, "externalId": external_id})

    def counterparty_external_ids(self, source: str | None = None) -> list[dict]:
        return self.list_all("/org2/counterparty/api-readExternalIdsList",
                             {"source": source} if source is not None else {})

    def contracts(self, counterparty_uuid: str | None = None) -> list[dict]:
        body = {"counterpartyUuid": counterparty_uuid} if counterparty_uuid else {}
        return self.list_all("/org2/contract/api-readList", body)

    def contract(self, uuid: str) -> dict | None:
        return self.call("/org2/contract/api-read", {"uuid": uuid})

    def create_contract(self, fields: dict) -> str:
        return _uuid_of(self.call("/org2/contract/api-create", fields))

    # ------------------------------------------------------------------ customer orders
    def customer_order(self, uuid: str) -> dict | None:
        return self.call("/org2/invoiceForCustomerPayment/api-read", {"uuid": uuid})

    def customer_orders(self, filters: dict | None = None) -> list[dict]:
        return self.list_all("/org2/invoiceForCustomerPayment/api-readList", filters)

    def create_customer_order(self, fields: dict) -> str:
        body = {"detailedWarehouses": False, **fields}
        return _uuid_of(self.call("/org2/invoiceForCustomerPayment/api-create", body))

    def update_customer_order(self, uuid: str, fields: dict) -> str:
        return _uuid_of(self.call("/org2/invoiceForCustomerPayment/api-update", {**fields, "uuid": uuid})) or uuid

    def update_customer_order_status(self, uuid: str, status_uuid: str) -> None:
        self.call("/org2/invoiceForCustomerPayment/api-updateStatus",
                  {"invoiceUuid": uuid, "statusUuid": status_uuid})

    # ------------------------------------------------------------------ sales invoices
    def sales_invoices(self, order_uuid: str | None = None) -> list[dict]:
        return self.list_all("/org2/salesInvoice/api-readList", {"orderUuid": order_uuid} if order_uuid else {})

    def sales_invoice(self, uuid: str) -> dict | None:
        return self.call("/org2/salesInvoice/api-read", {"uuid": uuid})

    def create_sales_invoice(self, fields: dict) -> str:
        body = {"managerialAccounting": True, "bookkeperAccounting": False, "VATaccounted": False, **fields}
        return _uuid_of(self.call("/org2/salesInvoice/api-create", body))

    def update_sales_invoice(self, uuid: str, fields: dict) -> str:
        return _uuid_of(self.call("/org2/salesInvoice/api-update", {**fields, "uuid": uuid})) or uuid

    # ------------------------------------------------------------------ payments, returns, refunds
    def payments(self, order_uuids: list[str] | None = None) -> list[dict]:
        return self.list_all("/org2/customerPayment/api-readList", {"orders": order_uuids} if order_uuids else {})

    def payment(self, uuid: str) -> dict | None:
        return self.call("/org2/customerPayment/api-read", {"uuid": uuid})

    def create_customer_payment(self, fields: dict) -> str:
        return _uuid_of(self.call("/org2/customerPayment/api-create", fields))

    def update_customer_payment(self, uuid: str, fields: dict) -> str:
        return _uuid_of(self.call("/org2/customerPayment/api-update", {**fields, "uuid": uuid})) or uuid

    def cancel_customer_payment(self, uuid: str) -> None:
        self.call("/org2/customerPayment/api-cancel", {"uuid": uuid})

    def returns(self) -> list[dict]:
        return self.list_all("/org2/customer-inventories-return/api-readList")

    def customer_return(self, uuid: str) -> dict | None:
        return self.call("/org2/customer-inventories-return/api-read", {"uuid": uuid})

    def create_customer_return(self, fields: dict) -> str:
        return _uuid_of(self.call("/org2/customer-inventories-return/api-create", fields))

    def refunds(self, customer_uuids: list[str] | None = None) -> list[dict]:
        return self.list_all("/org2/refundToCustomer/api-readList",
                             {"customers": customer_uuids} if customer_uuids else {})

    def refund(self, uuid: str) -> dict | None:
        return self.call("/org2/refundToCustomer/api-read", {"uuid": uuid})

    def create_refund(self, fields: dict) -> str:
        """refundToCustomer/api-create.  Passing your own ``uuid`` makes a repeat harmless (bimp-notes §7.2)."""
        return _uuid_of(self.call("/org2/refundToCustomer/api-create", fields))


def _filters(fields: dict[str, Any], system: str | None = None, external_id: str | None = None) -> dict[str, Any]:
    """A readList filter body: the fields given (not None), and the ``integration`` lookup
    ``{system, externalId}`` that nomenclature and counterparty lists share (bimp-notes §4) when
    an external id is asked for."""
    body = {k: v for k, v in fields.items() if v is not None}
    if external_id is not None:
        body["integration"] = {"system": system, "externalId": external_id}
    return body


def _uuid_of(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("uuid") or data.get("GUID") or "")
    return ""


def _looks_like_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def _retry_after(r: httpx.Response, error: Any) -> float | None:
    header = r.headers.get("Retry-After")
    for v in (header, error.get("retryAfter") if isinstance(error, dict) else None):
        try:
            if v is not None:
                return float(v)
        except (TypeError, ValueError):
            continue
    return None


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
