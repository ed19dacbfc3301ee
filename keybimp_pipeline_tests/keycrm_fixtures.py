"""Reusable pytest fixtures for the KeyCRM emulator (imported by contract/conftest.py).

Two ways to reach the emulator from a *synchronous* httpx client, both used by the tests:

* ``keycrm_server`` — the real thing: uvicorn serving the app on 127.0.0.1 with an ephemeral
  port, in a daemon thread, once per session.  Dropped connections, timeouts and Retry-After
  behave exactly as over a network.  ``keycrm_emulator`` resets it before each test.
* ``SyncASGITransport`` — in-process: ``httpx.ASGITransport`` is async-only, so this adapter
  runs the app's coroutine on a private event loop thread and hands the sync client a fully
  read response.  No sockets; app exceptions (e.g. the emulator's simulated dropped
  connection, an ``httpx.RemoteProtocolError``) propagate to the client as transport errors.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from keybimp_pipeline.emulators.keycrm.app import create_app

__all__ = [
    "KEYCRM_TEST_KEY",
    "KeyCRMEmulatorHandle",
    "SyncASGITransport",
    "keycrm_emulator",
    "keycrm_server",
    "keycrm_state",
]

KEYCRM_TEST_KEY = "kc-test-key-0123456789abcdefghijklmnopqrstuvwxyzABCD"


def keycrm_state(n_orders: int = 0, *, api_keys: list[str] | None = None) -> dict:
    """A small shop: reference books, three products, stock on two warehouses, ``n_orders`` orders."""
    statuses = [
        {"id": 1, "name": "new", "alias": "new", "group_id": 1},
        {"id": 4, "name": "Обробка замовлення", "alias": "obrobka_zamovlennya", "group_id": 2},
        {"id": 8, "name": "delivered_to_delivery", "alias": "delivered_to_delivery", "group_id": 4,
         "is_reserved": True},
        {"id": 12, "name": "completed", "alias": "completed", "group_id": 5, "is_closing_order": True},
        {"id": 19, "name": "canceled", "alias": "canceled", "group_id": 6, "is_closing_order": True},
    ]
    products = [
        {"id": 1, "name": "Кіт батон 50 см", "sku": "K-B-001", "price": 190, "purchased_price": 95.5},
        {"id": 2, "name": "Сукня міні", "currency_code": "UAH"},
        {"id": 3, "name": "Flexy Planner", "sku": "FP-1", "price": 1499, "purchased_price": 700},
    ]
    offers = [
        {"id": 10, "product_id": 2, "sku": "DRESS-S", "price": 690, "purchased_price": 370.67,
         "properties": [{"name": "Розмір", "value": "s"}]},
        {"id": 11, "product_id": 2, "sku": "DRESS-M", "price": 690, "purchased_price": 391.69,
         "properties": [{"name": "Розмір", "value": "m"}]},
    ]
    buyers = [
        {"id": 1, "full_name": "Олена Петренко", "phone": ["+380501112233"], "email": ["olena@example.com"]},
        {"id": 2, "full_name": "John Doe", "phone": ["+15552341234"], "email": ["john.doe@mail.app"]},
    ]
    orders = []
    for i in range(1, n_orders + 1):
        minute = i % 60
        hour = 8 + (i // 60) % 10
        orders.append({
            "id": i, "source_id": 1, "client_id": 1 + i % 2, "status_id": 1,
            "ordered_at": f"2026-11-02T{hour:02d}:{minute:02d}:00.000000Z",
            "created_at": f"2026-11-02T{hour:02d}:{minute:02d}:30.000000Z",
            "updated_at": f"2026-11-02T{hour:02d}:{minute:02d}:30.000000Z",
            "products": [{"sku": "K-B-001", "quantity": 1 + i % 3, "price": 190},
                         {"sku": "DRESS-M", "quantity": 1, "price": 690, "discount_amount": 40}],
            "payments": [{"payment_method_id": 2, "amount": 100, "status": "paid",
                          "payment_date": "2026-11-02 09:00:00"}] if i % 4 == 0 else [],
            "shipping": {"delivery_service_id": 1, "recipient_full_name": "Олена Петренко",
                         "shipping_address_city": "Київ", "shipping_date": "2026-11-03"} if i % 2 else None,
        })
    return {
        "api_keys": api_keys or [KEYCRM_TEST_KEY],
        "statuses": statuses,
        "payment_methods": [{"id": 1, "name": "Готівка", "alias": "cash"}, {"id": 2, "name": "Картка"}],
        "sources": [{"id": 1, "name": "Shop", "alias": "shop", "driver": "other", "currency_code": "UAH"}],
        "delivery_services": [{"id": 1, "name": "Нова Пошта", "alias": "novaposhta"}],
        "warehouses": [{"id": 1, "name": "Основний"}, {"id": 2, "name": "Київ"}],
        "products": products,
        "offers": offers,
        "stocks": [{"offer_id": 10, "warehouse_id": 1, "quantity": 5, "reserve": 1},
                   {"offer_id": 11, "warehouse_id": 2, "quantity": 3, "reserve": 0},
                   {"sku": "K-B-001", "warehouse_id": 1, "quantity": 7, "reserve": 2}],
        "buyers": buyers,
        "orders": orders,
    }


class SyncASGITransport(httpx.BaseTransport):
    """Run an ASGI app in-process behind a synchronous httpx.Client (see module docstring)."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="keycrm-asgi")
        self._thread.start()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        areq = httpx.Request(request.method, request.url, headers=request.headers, content=body)

        async def call() -> tuple[int, list, bytes]:
            resp = await self._inner.handle_async_request(areq)
            data = b"".join([chunk async for chunk in resp.stream])
            return resp.status_code, resp.headers.multi_items(), data

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        status, headers, data = future.result()
        headers = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
        return httpx.Response(status, headers=headers, content=data, request=request)

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()


@dataclass
class KeyCRMEmulatorHandle:
    """A running emulator: ``base_url`` for the client (…/v1), ``admin`` for /__admin/ calls."""

    root_url: str
    app: Any
    admin: httpx.Client

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def store(self) -> Any:
        return self.app.state.store

    def load(self, state: dict) -> None:
        self.admin.put("/__admin/state", json=state).raise_for_status()

    def faults(self, **faults: Any) -> dict:
        resp = self.admin.post("/__admin/faults", json=faults)
        resp.raise_for_status()
        return resp.json()

    def requests(self) -> dict:
        return self.admin.get("/__admin/requests").json()

    def clock(self, **body: Any) -> dict:
        return self.admin.post("/__admin/clock", json=body).json()


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
def keycrm_server() -> Iterator[KeyCRMEmulatorHandle]:
    """The emulator under uvicorn on an ephemeral loopback port, for the whole session."""
    app = create_app(keycrm_state())
    sock = _free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off", date_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="keycrm-uvicorn")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("KeyCRM emulator did not start")
        time.sleep(0.01)
    root = f"http://127.0.0.1:{port}"
    admin = httpx.Client(base_url=root, timeout=30)
    try:
        yield KeyCRMEmulatorHandle(root, app, admin)
    finally:
        admin.close()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def keycrm_emulator(keycrm_server: KeyCRMEmulatorHandle) -> Iterator[KeyCRMEmulatorHandle]:
    """The session server with a fresh small shop (5 orders), clean faults, a generous rate and real time."""
    from keybimp_pipeline.clients.keycrm import reset_shared_limiters

    reset_shared_limiters()
    keycrm_server.load(keycrm_state(5))
    keycrm_server.faults(requests_per_minute=100_000)
    keycrm_server.clock(now=None)
    yield keycrm_server
    keycrm_server.faults(requests_per_minute=100_000)
