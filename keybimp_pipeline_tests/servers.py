"""Emulators served for real on loopback (uvicorn in a daemon thread, ephemeral port) for pipeline tests."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedApp:
    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
                                date_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("emulator did not start")
            time.sleep(0.02)
        self.admin = httpx.Client(base_url=self.url, timeout=120)

    def put_state(self, state: dict) -> None:
        r = self.admin.put("/__admin/state", json=state)
        r.raise_for_status()

    def state(self) -> dict:
        return self.admin.get("/__admin/state").json()

    def post(self, path: str, body: dict) -> dict:
        r = self.admin.post(path, json=body)
        r.raise_for_status()
        return r.json() if r.content else {}

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def keycrm_clock_follows_changes(keycrm_server: ServedApp, monkeypatch) -> None:
    """For one test (monkeypatch undoes it; the clock starts real): every PUT of a KeyCRM state stands KeyCRM's clock at the state's
    newest order `updated_at` (never back).  A test edits its world and stamps each change as the moment it
    happens (`updated_at=at(12)`); KeyCRM's clock, which answers every read with its `Date` (the pipeline's
    next cursor), must stand there too, not at today's real date a month after the test day: a change stamped
    before the clock of an earlier read is one real KeyCRM never makes."""
    from keybimp_pipeline.clients.keycrm import parse_timestamp

    put = type(keycrm_server).put_state

    def put_state(state: dict) -> None:
        put(keycrm_server, state)
        stamps = [o["updated_at"] for o in state.get("orders", []) if o.get("updated_at")]
        if not stamps:
            return
        newest = max(parse_timestamp(s) for s in stamps)
        clock = keycrm_server.admin.get("/__admin/clock").json()
        if not clock["frozen"] or parse_timestamp(clock["now"]) < newest:
            keycrm_server.post("/__admin/clock", {"now": newest.isoformat().replace("+00:00", "Z")})

    keycrm_server.post("/__admin/clock", {"now": None})  # an earlier test's frozen clock is not this test's
    monkeypatch.setattr(keycrm_server, "put_state", put_state)
