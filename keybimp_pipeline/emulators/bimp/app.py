"""The Bimp service emulator: a Starlette app speaking the /org2 API of bimp-openapi.json plus /__admin/.

Why: no machine here reaches the real Bimp (shared/api/EMULATOR.md).  Tests run it in-process (httpx
ASGITransport) or on loopback with uvicorn; the pipeline cannot tell it from the vendor except by URL.

Conventions the vendor leaves open follow bimp-notes §7 (PROPOSED): errors are
``{"success": false, "error": {"code", "message", "details"}}`` with 400 for validation/business refusals
(``details`` = "validation: <field>" or a reason such as "insufficient_stock"), 401 for an unknown or
expired token, 403 for the wrong kind of token, 404 for an unknown uuid on update/cancel, 429 with
``retryAfter`` and a ``Retry-After`` header past the per-company request rate.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import secrets
import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keybimp_pipeline.emulators.bimp.handlers import HANDLERS
from keybimp_pipeline.emulators.bimp.store import ApiError, Company, Store

__all__ = ["BimpEmulator", "create_app"]

REFRESH_TTL_S = 7 * 24 * 3600
REQUEST_LOG_SIZE = 10_000  # the last company-scoped requests kept for GET /__admin/requests?log=1
_AUTH_PATHS = {"/org2/auth/api-login", "/org2/auth/api-refresh", "/org2/auth/api-selectCompany",
               "/org2/company/api-readDetailedList"}


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_response(status: int, body: Any, headers: dict | None = None) -> Response:
    text = json.dumps(body, default=_json_default, ensure_ascii=False)
    return Response(text, status_code=status, media_type="application/json", headers=headers)


def error_response(status: int, message: str, details: str, extra: dict | None = None,
                   headers: dict | None = None) -> Response:
    err = {"code": status, "message": message, "details": details}
    err.update(extra or {})
    return json_response(status, {"success": False, "error": err}, headers)


class BimpEmulator:
    """Everything mutable behind the app: state, tokens, clock, faults and request counts."""

    def __init__(self, state: dict | None, token_ttl_s: int) -> None:
        self.token_ttl_s = token_ttl_s
        self.store = Store(self._normalise(state if state is not None else _default_state()))
        self.tokens: dict[str, dict] = {}
        self.refresh_tokens: dict[str, dict] = {}
        self.frozen: datetime | None = None
        self.offset = timedelta(0)
        self.faults: dict[str, Any] = {}
        self.rng = random.Random(0)
        self.windows: dict[str, deque] = defaultdict(deque)
        self.counts: dict[str, int] = defaultdict(int)
        self.per_minute: dict[str, int] = defaultdict(int)
        # method, path and body (GET: query) of company-scoped calls; auth calls are never kept (passwords)
        self.log: deque[dict] = deque(maxlen=REQUEST_LOG_SIZE)
        self.logged = 0  # entries ever logged; an entry's "n" is its place in that count

    def record(self, entry: dict) -> None:
        self.logged += 1
        self.log.append({"n": self.logged, **entry})

    @staticmethod
    def _normalise(state: dict) -> dict:
        """Round-trip through JSON so floats become Decimal and the caller's dict is never mutated."""
        return json.loads(json.dumps(state, default=_json_default), parse_float=Decimal)

    def now(self) -> datetime:
        if self.frozen is not None:
            return self.frozen
        return datetime.now(UTC) + self.offset

    def now_naive(self) -> datetime:
        return self.now().astimezone(UTC).replace(tzinfo=None, microsecond=0)

    # ------------------------------------------------------------------ tokens
    def issue(self, kind: str, email: str, company: str | None = None) -> str:
        tok = secrets.token_urlsafe(24)
        self.tokens[tok] = {"kind": kind, "email": email, "company": company,
                            "expires": self.now() + timedelta(seconds=self.token_ttl_s)}
        return tok

    def issue_refresh(self, email: str) -> str:
        tok = secrets.token_urlsafe(32)
        self.refresh_tokens[tok] = {"email": email, "expires": self.now() + timedelta(seconds=REFRESH_TTL_S)}
        return tok

    def token(self, request: Request) -> dict:
        tok = request.headers.get("access-token")
        rec = self.tokens.get(tok or "")
        if rec is None:
            raise ApiError(401, "unauthorized", "Unknown access token")
        if rec["expires"] <= self.now():
            raise ApiError(401, "token_expired", "Access token expired")
        return rec


def _default_state() -> dict:
    from keybimp_pipeline.emulators.bimp.seed import demo_state
    return demo_state()


async def _body(request: Request) -> dict:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "validation: body", "Malformed JSON body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "validation: body", "The body must be a JSON object")
    return body


class _DropConnection(Exception):
    pass


class FaultMiddleware:
    """Cuts the connection after the request was processed (the ambiguous case a client must not retry blindly).

    Under uvicorn the response announces a longer Content-Length than it sends, so the server closes the
    socket mid-body and the client sees a protocol error; in-process the body arrives truncated.
    """

    def __init__(self, app: ASGIApp, emu: BimpEmulator) -> None:
        self.app = app
        self.emu = emu

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/org2/"):
            await self.app(scope, receive, send)
            return
        faults = self.emu.faults
        if int(faults.get("drop_connection_next") or 0) <= 0:
            await self.app(scope, receive, send)
            return
        faults["drop_connection_next"] = int(faults["drop_connection_next"]) - 1
        start: dict[str, Message] = {}

        async def cut(message: Message) -> None:
            if message["type"] == "http.response.start":
                start["m"] = message
                return
            if message["type"] == "http.response.body" and not message.get("more_body"):
                body = message.get("body", b"")
                headers = [(k, v) for k, v in start["m"].get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body) + 64).encode()))
                await send({"type": "http.response.start", "status": start["m"]["status"], "headers": headers})
                await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": False})

        await self.app(scope, receive, cut)


def create_app(state: dict | None = None, *, token_ttl_s: int = 3600) -> Starlette:
    """Build the emulator app; ``state=None`` loads the demo company (seed.py). ``app.state.emulator`` is it."""
    emu = BimpEmulator(state, token_ttl_s)

    # ------------------------------------------------------------------ /org2 dispatcher
    async def org2(request: Request) -> Response:
        path = request.url.path
        method = request.method
        now = emu.now()
        emu.counts[f"{method} {path}"] += 1
        emu.per_minute[now.strftime("%Y-%m-%dT%H:%M")] += 1
        faults = emu.faults
        try:
            latency = faults.get("latency_ms") or 0
            if latency:
                await asyncio.sleep(float(latency) / 1000)
            injected = _injected_fault(emu, path)
            if injected is not None:
                return injected
            if path in _AUTH_PATHS:
                body = await _body(request) if method == "POST" else {}
                return json_response(200, {"success": True, "data": _auth(emu, request, path, body)})
            rec = emu.token(request)
            if rec["kind"] != "company":
                raise ApiError(403, "forbidden", "A company token is required (call auth/api-selectCompany)")
            co = emu.store.companies.get(rec["company"])
            if co is None:
                raise ApiError(401, "unauthorized", "The token's company no longer exists")
            limited = _rate_limit(emu, co.uuid)
            if limited is not None:
                return limited
            if method == "GET":
                emu.record({"method": method, "path": path, "query": dict(request.query_params)})
                return _inventory(emu, co, request)
            handler = HANDLERS.get(path)
            if handler is None:
                raise ApiError(404, "not_found", f"Unknown endpoint {path}")
            emu.record({"method": method, "path": path, "raw": await request.body()})  # as sent: immutable
            body = await _body(request)
            data = handler(co, body, emu.now_naive())
            return json_response(200, {"success": True, "data": data})
        except ApiError as e:
            headers = {"Retry-After": str(e.extra["retryAfter"])} if "retryAfter" in e.extra else None
            return error_response(e.status, e.message, e.details, e.extra, headers)
        except Exception as e:  # noqa: BLE001 - an emulator bug must still answer in the envelope, not a traceback
            return error_response(400, f"Unprocessable request ({type(e).__name__})", "validation: body")

    # ------------------------------------------------------------------ admin
    async def admin_reset(request: Request) -> Response:
        users = emu.store.users
        emu.store = Store({"users": users, "companies": []})
        emu.counts.clear()
        emu.per_minute.clear()
        emu.log.clear()
        emu.logged = 0
        emu.windows.clear()
        return json_response(200, {"ok": True})

    async def admin_state(request: Request) -> Response:
        if request.method == "GET":
            return json_response(200, emu.store.export())
        try:
            raw = json.loads(await request.body(), parse_float=Decimal)
            if not isinstance(raw, dict):
                raise TypeError("state must be an object")
            emu.store = Store(raw)
        except Exception as e:  # noqa: BLE001 - a bad scenario file is the caller's error
            return error_response(400, f"Bad state: {type(e).__name__}: {e}", "validation: state")
        return json_response(200, {"ok": True, "companies": len(emu.store.companies)})

    async def admin_clock(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            if "now" in body:
                emu.frozen = None if body["now"] is None else _aware(body["now"])
                if body["now"] is None:
                    emu.offset = timedelta(0)
            if "advance_seconds" in body:
                d = timedelta(seconds=float(body["advance_seconds"]))
                if emu.frozen is not None:
                    emu.frozen += d
                else:
                    emu.offset += d
        except Exception as e:  # noqa: BLE001
            return error_response(400, f"Bad clock request: {e}", "validation: clock")
        return json_response(200, {"now": emu.now().isoformat().replace("+00:00", "Z"),
                                   "frozen": emu.frozen is not None})

    async def admin_faults(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise TypeError("faults must be an object")
        except Exception as e:  # noqa: BLE001
            return error_response(400, f"Bad faults: {e}", "validation: faults")
        emu.faults = body
        emu.faults["fail_next"] = [dict(f) for f in body.get("fail_next") or []]
        if "seed" in body:
            emu.rng = random.Random(body["seed"])
        emu.windows.clear()
        return json_response(200, emu.faults)

    async def admin_requests(request: Request) -> Response:
        """Counts per method and path; ``logged``: company-scoped calls so far.  ``?log=1`` adds the last
        REQUEST_LOG_SIZE of them (n, method, path, body or query); ``&since=N`` only those after the N-th."""
        out = {"total": sum(emu.counts.values()), "by_path": dict(emu.counts), "per_minute": dict(emu.per_minute),
               "logged": emu.logged}
        if request.query_params.get("log") in ("1", "true"):
            since = int(request.query_params.get("since") or 0)
            out["log"] = [_logged(rec) for rec in emu.log if rec["n"] > since]
        return json_response(200, out)

    async def admin_expire(request: Request) -> Response:
        """Force every issued access token to expire now; ``{"refresh": true}`` expires refresh tokens too."""
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = {}
        past = emu.now() - timedelta(seconds=1)
        for rec in emu.tokens.values():
            rec["expires"] = past
        if isinstance(body, dict) and body.get("refresh"):
            for rec in emu.refresh_tokens.values():
                rec["expires"] = past
        return json_response(200, {"expired": len(emu.tokens)})

    routes = [
        Route("/__admin/reset", admin_reset, methods=["POST"]),
        Route("/__admin/state", admin_state, methods=["GET", "PUT"]),
        Route("/__admin/clock", admin_clock, methods=["POST"]),
        Route("/__admin/faults", admin_faults, methods=["POST"]),
        Route("/__admin/requests", admin_requests, methods=["GET"]),
        Route("/__admin/expire_tokens", admin_expire, methods=["POST"]),
        Route("/org2/{rest:path}", org2, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emu
    app.add_middleware(FaultMiddleware, emu=emu)
    return app


def _aware(text: str) -> datetime:
    dt = datetime.fromisoformat(str(text))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _injected_fault(emu: BimpEmulator, path: str) -> Response | None:
    faults = emu.faults
    retry_after = faults.get("retry_after_s", 1)
    for f in faults.get("fail_next") or []:
        if f.get("path") in (path, path.removeprefix("/org2")) and int(f.get("times", 1)) > 0:
            f["times"] = int(f.get("times", 1)) - 1
            return _fault_response(int(f.get("status", 500)), retry_after)
    ratio = float(faults.get("fail_ratio") or 0)
    if ratio and emu.rng.random() < ratio:
        return _fault_response(int(faults.get("fail_status") or 503), retry_after)
    return None


def _fault_response(status: int, retry_after: Any) -> Response:
    if status == 429:
        return error_response(429, "Too many requests", "rate_limited", {"retryAfter": retry_after},
                              {"Retry-After": str(retry_after)})
    return error_response(status, "Injected fault", "injected_fault")


def _rate_limit(emu: BimpEmulator, company: str) -> Response | None:
    limit = emu.faults.get("requests_per_minute")
    if not limit:
        return None
    window = emu.windows[company]
    now = time.monotonic()
    while window and now - window[0] >= 60:
        window.popleft()
    if len(window) >= int(limit):
        wait = max(1, math.ceil(60 - (now - window[0])))
        return error_response(429, "Too many requests", "rate_limited", {"retryAfter": wait},
                              {"Retry-After": str(wait)})
    window.append(now)
    return None


def _auth(emu: BimpEmulator, request: Request, path: str, body: dict) -> Any:
    if path == "/org2/auth/api-login":
        email, password = body.get("email"), body.get("password")
        if not isinstance(email, str) or not isinstance(password, str):
            raise ApiError(400, "validation: email", "email and password are required strings")
        user = emu.store.user(email)
        if user is None or user.get("password") != password:
            raise ApiError(401, "invalid_credentials", "Wrong e-mail or password")
        return {"accessToken": emu.issue("basic", user["email"]), "refreshToken": emu.issue_refresh(user["email"])}
    if path == "/org2/auth/api-refresh":
        rt = body.get("refreshToken")
        rec = emu.refresh_tokens.pop(rt, None) if isinstance(rt, str) else None
        if rec is None or rec["expires"] <= emu.now():
            raise ApiError(401, "invalid_refresh_token", "Unknown or expired refresh token")
        return {"accessToken": emu.issue("basic", rec["email"]), "refreshToken": emu.issue_refresh(rec["email"])}
    rec = emu.token(request)
    if rec["kind"] != "basic":
        raise ApiError(403, "forbidden", "A basic (login) token is required")
    user = emu.store.user(rec["email"]) or {}
    allowed = set(user.get("companies") or [])
    if path == "/org2/company/api-readDetailedList":
        return [{"name": c.name, "uuid": c.uuid, "code": c.code, "createdAt": c.createdAt}
                for c in emu.store.companies.values() if c.uuid in allowed]
    # selectCompany
    u, code = body.get("uuid"), body.get("code")
    if not isinstance(u, str) and not isinstance(code, str):
        raise ApiError(400, "validation: uuid", "uuid or code is required")
    co: Company | None = emu.store.company_by(u if isinstance(u, str) else None,
                                              code if isinstance(code, str) else None)
    if co is None or co.uuid not in allowed:
        raise ApiError(403, "company_forbidden", "No such company for this user")
    return {"companyAccessToken": emu.issue("company", rec["email"], co.uuid)}


def _logged(rec: dict) -> dict:
    """A request-log entry as JSON: the POST body parsed (or as text when it was not JSON)."""
    if "raw" not in rec:
        return rec
    out = {k: v for k, v in rec.items() if k != "raw"}
    try:
        out["body"] = json.loads(rec["raw"] or b"{}")
    except (ValueError, UnicodeDecodeError):
        out["body"] = rec["raw"].decode("utf-8", "replace")
    return out


def _unprocessable(message: str, details: str) -> Response:
    return json_response(422, {"error": "Unprocessable Entity", "message": message, "details": details})


def _inventory(emu: BimpEmulator, co: Company, request: Request) -> Response:
    path = request.url.path
    q = request.query_params
    org, wh = q.get("orgId"), q.get("warehouseId")
    if not org or co.ref("organizations", org) is None:
        return _unprocessable("orgId is required and must be an organization uuid", "orgId")
    if not wh or co.ref("warehouses", wh) is None:
        return _unprocessable("warehouseId is required and must be a warehouse uuid", "warehouseId")
    if path == "/org2/inventory/api-readList":
        try:
            pg = int(q.get("page", "1"))
            size = int(q.get("pageSize", "50"))
        except ValueError:
            return _unprocessable("page and pageSize must be integers", "page")
        if pg < 1 or not 1 <= size <= 100:
            return _unprocessable("page >= 1 and 1 <= pageSize <= 100", "pageSize")
        sort_by = q.get("sortBy", "productId")
        direction = q.get("sortDirection", "asc")
        if sort_by not in ("productId", "quantity", "reserved", "available") or direction not in ("asc", "desc"):
            return _unprocessable("bad sortBy or sortDirection", "sortBy")
        rows = co.inventory_rows(wh, sort_by, direction == "desc")
        return json_response(200, {"success": True, "data": rows[(pg - 1) * size: pg * size]})
    if path == "/org2/inventory/api-readList/cursor":
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            return _unprocessable("limit must be an integer", "limit")
        if not 1 <= limit <= 200:
            return _unprocessable("1 <= limit <= 200", "limit")
        rows = co.inventory_rows(wh)
        last = q.get("lastId")
        start = 0
        if last:
            import bisect
            start = bisect.bisect_right([r["productId"] for r in rows], last)
        items = rows[start:start + limit]
        nxt = items[-1]["productId"] if len(items) == limit and start + limit < len(rows) else None
        return json_response(200, {"success": True, "data": {"items": items, "next_cursor": nxt}})
    return error_response(404, f"Unknown endpoint {path}", "not_found")


