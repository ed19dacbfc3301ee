"""Pytest fixtures for the Bimp emulator and client.

Why a real loopback server: ``BimpClient`` is synchronous and httpx's ``ASGITransport`` only serves async
clients, so client tests run the emulator with uvicorn in a daemon thread on 127.0.0.1 and an ephemeral
port (one server per test module, state reset per test through the admin surface).  Emulator contract
tests use the in-process ``ASGITransport`` through a small synchronous wrapper (``BimpAsgi``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from keybimp_pipeline.emulators.bimp.app import create_app
from keybimp_pipeline.emulators.bimp.seed import (
    DEMO_COMPANY_CODE,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    demo_state,
    uid,
)

__all__ = [
    "DEMO_COMPANY_CODE",
    "DEMO_EMAIL",
    "DEMO_PASSWORD",
    "BimpAsgi",
    "BimpServer",
    "bimp_app",
    "bimp_asgi",
    "bimp_ids",
    "bimp_server",
    "bimp_server_module",
    "bimp_state",
]


def bimp_ids(code: str = DEMO_COMPANY_CODE) -> dict[str, str]:
    """Uuids of the demo company's reference books (see emulators/bimp/seed.py)."""
    c = code
    return {
        "company": uid(f"company:{c}"), "org": uid(f"{c}:org:main"), "wh": uid(f"{c}:warehouse:main"),
        "wh2": uid(f"{c}:warehouse:second"), "project": uid(f"{c}:project:main"), "lob": uid(f"{c}:lob:main"),
        "uah": uid(f"{c}:currency:UAH"), "cash": uid(f"{c}:cash:main"), "bank": uid(f"{c}:bank:main"),
        "pcs": uid(f"{c}:unit:pcs"), "service_unit": uid(f"{c}:unit:service"),
        "expense": uid(f"{c}:expense:refunds"), "account": uid(f"{c}:account:23"), "user": uid(f"{c}:user:api"),
        "employee": uid(f"{c}:employee:manager"), "status_new": uid(f"{c}:ostatus:Новий"),
        "status_done": uid(f"{c}:ostatus:Виконано"), "status_cancel": uid(f"{c}:ostatus:Скасовано"),
        "pstatus": uid(f"{c}:pstatus:paid"), "pricelist": uid(f"{c}:pricelist:retail"),
        "group": uid(f"{c}:group:shop"),
    }


class BimpAsgi:
    """A synchronous facade over an async httpx client with ASGITransport (in-process emulator)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bimp.test")
        self.token: str | None = None

    def request(self, method: str, path: str, *, json: Any = None, content: bytes | None = None,
                params: dict | None = None, token: str | None = "company") -> httpx.Response:
        headers = {}
        tok = self.token if token == "company" else token
        if tok:
            headers["access-token"] = tok
        return self.loop.run_until_complete(
            self.client.request(method, path, json=json, content=content, params=params, headers=headers))

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, json=body, **kw)

    def login(self, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD,
              code: str = DEMO_COMPANY_CODE) -> str:
        basic = self.post("/org2/auth/api-login", {"email": email, "password": password}, token=None)
        basic_token = basic.json()["data"]["accessToken"]
        sel = self.post("/org2/auth/api-selectCompany", {"code": code}, token=basic_token)
        self.token = sel.json()["data"]["companyAccessToken"]
        return self.token

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


class BimpServer:
    """The emulator served by uvicorn on loopback in a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(app, log_level="warning", http="h11", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def emulator(self) -> Any:
        return self.app.state.emulator

    def start(self) -> BimpServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self._sock.close()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, self.url + path, json=body, timeout=10)
        r.raise_for_status()
        return r.json()


@pytest.fixture
def bimp_state() -> dict:
    """A fresh demo state (one company, one API user)."""
    return demo_state()


@pytest.fixture
def bimp_app(bimp_state: dict) -> Any:
    return create_app(bimp_state)


@pytest.fixture
def bimp_asgi(bimp_app: Any) -> Iterator[BimpAsgi]:
    client = BimpAsgi(bimp_app)
    client.login()
    yield client
    client.close()


@pytest.fixture(scope="module")
def bimp_server_module() -> Iterator[BimpServer]:
    server = BimpServer(create_app(demo_state())).start()
    yield server
    server.stop()


@pytest.fixture
def bimp_server(bimp_server_module: BimpServer) -> BimpServer:
    """The loopback emulator, its state, faults, clock and counters reset for each test."""
    s = bimp_server_module
    s.admin("POST", "/__admin/faults", {})
    s.admin("POST", "/__admin/clock", {"now": None})
    s.admin("POST", "/__admin/reset")  # clears the request counters (keeps users, drops companies)
    s.admin("PUT", "/__admin/state", demo_state())
    return s


