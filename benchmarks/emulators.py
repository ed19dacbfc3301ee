"""Serve both emulators with the demo shop of N orders for a benchmark (a child process of the benchmark).

`python -m benchmarks.emulators --orders 100000 --keycrm-port P --bimp-port Q [--keycrm-rpm R]` prints
`READY` once both listen.  The demo state goes straight into `create_app(state)` (no JSON round trip); the
rate limit is then set through each emulator's own admin surface, `POST /__admin/faults`, as any client
would set it.  SIGTERM stops both.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import httpx
import uvicorn

from keybimp_pipeline.emulators import demo_shop
from keybimp_pipeline.emulators.bimp.app import create_app as bimp_app
from keybimp_pipeline.emulators.keycrm.app import create_app as keycrm_app


async def _serve(orders: int, keycrm_port: int, bimp_port: int, keycrm_rpm: int | None,
                 bimp_rpm: int | None) -> None:
    state = demo_shop.generate_demo(orders)
    apps = [keycrm_app(state["keycrm"]), bimp_app(state["bimp"])]
    del state
    servers = [uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                             access_log=False, lifespan="off", timeout_keep_alive=30,
                                             date_header=False))
               for app, port in zip(apps, (keycrm_port, bimp_port), strict=True)]
    for server in servers:
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            raise SystemExit("an emulator could not start")
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(timeout=60) as client:
        # the KeyCRM emulator limits every key to 60/min by default; "lifted" = far above what loopback reaches
        await client.post(f"http://127.0.0.1:{keycrm_port}/__admin/faults",
                          json={"requests_per_minute": keycrm_rpm or 60})
        if bimp_rpm:
            await client.post(f"http://127.0.0.1:{bimp_port}/__admin/faults", json={"requests_per_minute": bimp_rpm})
    print("READY", flush=True)
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--keycrm-port", type=int, required=True)
    parser.add_argument("--bimp-port", type=int, required=True)
    parser.add_argument("--keycrm-rpm", type=int, default=None)
    parser.add_argument("--bimp-rpm", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(_serve(args.orders, args.keycrm_port, args.bimp_port, args.keycrm_rpm, args.bimp_rpm))


if __name__ == "__main__":
    main()
