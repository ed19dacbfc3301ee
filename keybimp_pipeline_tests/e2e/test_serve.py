"""The emulator runner: both emulators as real servers on loopback, the demo shop in them, a clean stop."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keybimp_pipeline.emulators import demo_shop
from keybimp_pipeline.emulators.serve import serve

ROOT = Path(__file__).resolve().parents[2]
LARAVEL_KEYS = {"current_page", "data", "first_page_url", "from", "last_page", "last_page_url", "next_page_url",
                "path", "per_page", "prev_page_url", "to", "total"}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class _Proc:
    """A child process whose output lines are collected by a reader thread (so waiting never blocks)."""

    def __init__(self, args: list[str]) -> None:
        self.p = subprocess.Popen([sys.executable, "-m", "keybimp_pipeline.emulators.serve", *args], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.p.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not printed; output so far: {self.seen}")

    def drain(self) -> list[str]:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.seen

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=10)


@pytest.fixture(scope="module")
def demo_server() -> Iterator[tuple[_Proc, int, int]]:
    kc_port, bimp_port = _free_ports(2)
    proc = _Proc(["--demo", "--orders", "200", "--keycrm-port", str(kc_port), "--bimp-port", str(bimp_port)])
    try:
        proc.wait_for("emulators ready", timeout=120)
        yield proc, kc_port, bimp_port
    finally:
        proc.kill()


def test_demo_keycrm_orders_page_in_laravel_envelope(demo_server):
    proc, kc_port, _ = demo_server
    r = httpx.get(f"http://127.0.0.1:{kc_port}/v1/order", params={"limit": 50},
                  headers={"Authorization": f"Bearer {demo_shop.DEMO_KEYCRM_KEY}"}, timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert LARAVEL_KEYS <= set(body)
    assert body["total"] == 200 and body["per_page"] == 50 and body["last_page"] == 4
    assert len(body["data"]) == 50
    assert body["next_page_url"] is not None
    generated = {o["id"]: o for o in demo_shop.iter_demo_orders(200)}
    for order in body["data"]:  # what the emulator serves is the demo shop loaded over HTTP
        source = generated[order["id"]]
        assert (order["created_at"], order["status_id"], order["client_id"], order["grand_total"]) == (
            source["created_at"], source["status_id"], source["client_id"], source["grand_total"])
    unauthorised = httpx.get(f"http://127.0.0.1:{kc_port}/v1/order", timeout=30)
    assert unauthorised.status_code == 401
    printed = "\n".join(proc.seen)
    assert f"http://127.0.0.1:{kc_port}/v1" in printed and "orders 200, buyers 80, offers 400" in printed
    assert demo_shop.DEMO_KEYCRM_KEY not in printed  # even the demo key is not printed


def test_demo_bimp_login_select_company_and_read_warehouses(demo_server):
    proc, _, bimp_port = demo_server
    base = f"http://127.0.0.1:{bimp_port}/org2"
    with httpx.Client(timeout=30) as client:
        login = client.post(f"{base}/auth/api-login",
                            json={"email": demo_shop.DEMO_BIMP_EMAIL, "password": demo_shop.DEMO_BIMP_PASSWORD})
        assert login.status_code == 200 and login.json()["success"] is True
        token = login.json()["data"]["accessToken"]
        chosen = client.post(f"{base}/auth/api-selectCompany", json={"code": demo_shop.DEMO_COMPANY_CODE},
                             headers={"access-token": token})
        assert chosen.status_code == 200
        company_token = chosen.json()["data"]["companyAccessToken"]
        wh = client.post(f"{base}/warehouse/api-readList", json={"pagination": {"offset": 0, "count": 100}},
                         headers={"access-token": company_token})
        assert wh.status_code == 200
        assert [w["name"] for w in wh.json()["data"]] == ["Основний склад", "Склад Київ"]
        wrong = client.post(f"{base}/auth/api-login", json={"email": demo_shop.DEMO_BIMP_EMAIL, "password": "x"})
        assert wrong.status_code != 200
    assert "nomenclature 382, counterparties 6, warehouses 2" in "\n".join(proc.seen)


def test_sigterm_stops_both_within_seconds_with_exit_code_0(demo_server):
    proc, kc_port, bimp_port = demo_server
    started = time.monotonic()
    proc.p.send_signal(signal.SIGTERM)
    code = proc.p.wait(timeout=10)
    assert code == 0
    assert time.monotonic() - started < 5
    assert "emulators stopped" in proc.drain()
    for port in (kc_port, bimp_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


def test_serve_in_a_thread_with_ready_and_stop_events_and_builtin_states():
    kc_port, bimp_port = _free_ports(2)
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(kc_port, bimp_port), kwargs={"ready": ready, "stop": stop},
                              daemon=True)
    thread.start()
    try:
        assert ready.wait(60)
        r = httpx.get(f"http://127.0.0.1:{kc_port}/__admin/requests", timeout=10)
        assert r.status_code == 200
        r = httpx.post(f"http://127.0.0.1:{bimp_port}/org2/auth/api-login", json={}, timeout=10)
        assert r.status_code != 404  # the Bimp emulator answers its own routes
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_taken_port_is_reported_with_a_nonzero_exit():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (other,) = _free_ports(1)
        proc = _Proc(["--keycrm-port", str(port), "--bimp-port", str(other)])
        try:
            code = proc.p.wait(timeout=60)
        finally:
            proc.kill()
    assert code != 0
    time.sleep(0.2)
    assert any("could not listen" in line and str(port) in line for line in proc.drain())
