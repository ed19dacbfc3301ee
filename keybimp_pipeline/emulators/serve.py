"""Run the KeyCRM and Bimp emulators as real HTTP servers on loopback (``keybimp emulate``, the demo, the UI).

Why one process with two uvicorn servers in one event loop: the demo and the end-to-end tests need both
services up together and stopped together, by one Ctrl-C or one SIGTERM, with exit code 0.

With ``demo=True`` the demo shop (``demo_shop.generate_demo``) is loaded through each emulator's own admin
endpoint, ``PUT /__admin/state``, over HTTP, so the emulators are filled exactly as any client would fill
them.  The load goes through a short-lived listener on an ephemeral port first; the requested ports open
only once the data is in, so whoever waits for the ports (``make demo``) never sees an empty shop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn

__all__ = ["main", "serve"]


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to ``serve`` (two servers share one process and one Ctrl-C)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn releases
        return None


async def _serve_task(server: _Server) -> None:
    """Run one server; uvicorn reports a failed bind with ``sys.exit``, which must not escape the event loop."""
    try:
        await server.serve()
    except SystemExit as exc:
        raise RuntimeError(f"could not listen on {server.config.host}:{server.config.port} "
                           f"(uvicorn exit code {exc.code}; is the port in use?)") from None


DEFAULT_PORTS = (8801, 8802, 8803)  # KeyCRM shop 1, Bimp, KeyCRM shop 2: the example settings' URLs


def demo_ports() -> tuple[int, int, int]:
    """KEYBIMP_DEMO_PORTS="18801,18802,18803" moves the demo's emulators off the example's ports (another demo, a
    test): `make demo` and `make emulate` both read it."""
    raw = os.environ.get("KEYBIMP_DEMO_PORTS")
    if not raw:
        return DEFAULT_PORTS
    try:
        ports = tuple(int(p) for p in raw.split(","))
    except ValueError:
        ports = ()
    if len(ports) != 3 or len(set(ports)) != 3:
        raise SystemExit(f"KEYBIMP_DEMO_PORTS must be three different ports (KeyCRM, Bimp, KeyCRM shop 2), "
                         f"got {raw!r}")
    return ports  # type: ignore[return-value]


def _server(app: Any, host: str, port: int) -> _Server:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                            date_header=False,
                            timeout_graceful_shutdown=2)
    return _Server(config)


async def _wait_started(server: _Server, task: asyncio.Task) -> None:
    """Wait until ``server`` listens; a server that fails to bind ends its task (uvicorn exits) instead."""
    while not server.started:
        if task.done():
            exc = task.exception()
            raise SystemExit(f"an emulator could not start: {exc}" if exc else "an emulator could not start")
        await asyncio.sleep(0.02)


async def _load_over_http(app: Any, state: dict, host: str) -> dict:
    """PUT ``state`` into ``app`` through its admin endpoint, served for the moment on an ephemeral port."""
    loader = _server(app, host, 0)
    task = asyncio.create_task(_serve_task(loader))
    try:
        await _wait_started(loader, task)
        port = loader.servers[0].sockets[0].getsockname()[1]
        body = json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        async with httpx.AsyncClient(timeout=600.0) as client:
            response = await client.put(f"http://{_url_host(host)}:{port}/__admin/state", content=body,
                                        headers={"content-type": "application/json"})
        if response.status_code != 200:
            raise SystemExit(f"loading the demo state was refused: HTTP {response.status_code} {response.text[:300]}")
        return response.json()
    finally:
        loader.should_exit = True
        with contextlib.suppress(Exception):
            await task


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _summary(kc: dict, bimp: dict) -> tuple[str, str]:
    company = (bimp.get("companies") or [{}])[0]
    kc_text = (f"orders {len(kc.get('orders') or [])}, buyers {len(kc.get('buyers') or [])}, "
               f"offers {len(kc.get('offers') or [])}")
    bimp_text = (f"company {company.get('code', '?')} «{company.get('name', '')}»: "
                 f"nomenclature {len(company.get('nomenclature') or [])}, "
                 f"counterparties {len(company.get('counterparties') or [])}, "
                 f"warehouses {len(company.get('warehouses') or [])}")
    return kc_text, bimp_text


async def _read_states(host: str, keycrm_port: int, bimp_port: int) -> tuple[dict, dict]:
    """What the emulators hold, read back over HTTP (used when they start with their built-in state)."""
    async with httpx.AsyncClient(timeout=60.0) as client:
        h = _url_host(host)
        kc = (await client.get(f"http://{h}:{keycrm_port}/__admin/state")).json()
        bimp = (await client.get(f"http://{h}:{bimp_port}/__admin/state")).json()
    return kc, bimp


async def _run(keycrm_port: int, bimp_port: int, demo: bool, orders: int, host: str,
               ready: threading.Event | None, stop: threading.Event | None, stopping: threading.Event,
               servers: list[_Server], shops: int = 1, keycrm2_port: int = 8803) -> None:
    from keybimp_pipeline.emulators.bimp.app import create_app as bimp_app
    from keybimp_pipeline.emulators.keycrm.app import create_app as keycrm_app

    kc_app = keycrm_app()
    b_app = bimp_app()
    # A second shop is a second KeyCRM account: one emulator serves one account, so it gets its own server.
    kc2_app = keycrm_app() if shops == 2 else None
    kc2_text = ""
    counts: tuple[str, str] | None = None
    if demo:
        from keybimp_pipeline.emulators import demo_shop

        print(f"generating the demo shop ({orders} orders) …", flush=True)
        state = await asyncio.to_thread(demo_shop.generate_demo, orders, shops=shops)
        if stopping.is_set():
            return
        print("loading it into the emulators through PUT /__admin/state …", flush=True)
        shop_states = state["keycrm"] if shops == 2 else [state["keycrm"]]
        await asyncio.gather(_load_over_http(kc_app, shop_states[0], host),
                             _load_over_http(b_app, state["bimp"], host),
                             *([_load_over_http(kc2_app, shop_states[1], host)] if kc2_app is not None else []))
        counts = _summary(shop_states[0], state["bimp"])
        if kc2_app is not None:
            kc2_text = _summary(shop_states[1], state["bimp"])[0]
        del state
    if stopping.is_set():
        return

    kc_server = _server(kc_app, host, keycrm_port)
    b_server = _server(b_app, host, bimp_port)
    started = [kc_server, b_server] + ([_server(kc2_app, host, keycrm2_port)] if kc2_app is not None else [])
    servers.extend(started)
    if stopping.is_set():  # a signal arrived while the servers were being built
        return
    tasks = [asyncio.create_task(_serve_task(srv)) for srv in started]
    try:
        for srv, task in zip(started, tasks, strict=True):
            await _wait_started(srv, task)
    except SystemExit:
        for srv in started:
            srv.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if counts is None:
        counts = _summary(*await _read_states(host, keycrm_port, bimp_port))
    h = _url_host(host)
    print(f"KeyCRM emulator: http://{h}:{keycrm_port}/v1  ({counts[0]})", flush=True)
    print(f"Bimp emulator:   http://{h}:{bimp_port}  ({counts[1]})", flush=True)
    if kc2_app is not None:
        print(f"KeyCRM emulator (shop 2): http://{h}:{keycrm2_port}/v1  ({kc2_text or 'second account'})",
              flush=True)
    if demo:
        print("demo credentials: KeyCRM key and Bimp login are the fake constants in "
              "keybimp_pipeline/emulators/demo_shop.py", flush=True)
    print("emulators ready; Ctrl-C or SIGTERM stops them", flush=True)
    if ready is not None:
        ready.set()

    async def watch_stop() -> None:
        while not all(s.should_exit for s in servers):
            if stop is not None and stop.is_set():
                for s in servers:
                    s.should_exit = True
            # A server that ended by itself (e.g. a crash) takes the other one down too.
            if any(t.done() for t in tasks):
                for s in servers:
                    s.should_exit = True
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_stop())
    results = await asyncio.gather(*tasks, return_exceptions=True)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    print("emulators stopped", flush=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise SystemExit(f"an emulator failed: {failures[0]!r}")


def serve(keycrm_port: int = 8801, bimp_port: int = 8802, *, demo: bool = False, orders: int = 3000,
          host: str = "127.0.0.1", ready: threading.Event | None = None,
          stop: threading.Event | None = None, shops: int = 1, keycrm2_port: int = 8803) -> None:
    """Serve both emulators until Ctrl-C / SIGTERM (main thread) or until ``stop`` is set (any thread).

    ``ready`` is set once both listen (and hold the demo shop, when ``demo``).
    """
    servers: list[_Server] = []
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stopping.is_set() and signum == signal.SIGINT:
            for s in servers:
                s.force_exit = True
        stopping.set()
        for s in servers:
            s.should_exit = True

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        asyncio.run(_run(keycrm_port, bimp_port, demo, orders, host, ready, stop, stopping, servers,
                         shops=shops, keycrm2_port=keycrm2_port))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """``python -m keybimp_pipeline.emulators.serve [--demo] [--orders N] [--keycrm-port P] ...``"""
    parser = argparse.ArgumentParser(prog="keybimp emulate",
                                     description="Run the KeyCRM and Bimp emulators on loopback.")
    parser.add_argument("--keycrm-port", type=int, default=8801, help="KeyCRM emulator port (default 8801)")
    parser.add_argument("--bimp-port", type=int, default=8802, help="Bimp emulator port (default 8802)")
    parser.add_argument("--demo", action="store_true", help="load the demo shop into both emulators")
    parser.add_argument("--orders", type=int, default=3000, help="demo shop size in orders (default 3000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--shops", type=int, choices=(1, 2), default=1,
                        help="demo shops (KeyCRM accounts) writing into the one Bimp company (default 1)")
    parser.add_argument("--keycrm2-port", type=int, default=8803,
                        help="the second shop's KeyCRM emulator port, with --shops 2 (default 8803)")
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error("--orders must be at least 1")
    if args.keycrm_port == args.bimp_port:
        parser.error("--keycrm-port and --bimp-port must differ")
    if args.shops == 2 and args.keycrm2_port in (args.keycrm_port, args.bimp_port):
        parser.error("--keycrm2-port must differ from --keycrm-port and --bimp-port")
    serve(args.keycrm_port, args.bimp_port, demo=args.demo, orders=args.orders, host=args.host,
          shops=args.shops, keycrm2_port=args.keycrm2_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
