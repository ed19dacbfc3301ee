"""Latency: a status change in KeyCRM → the customer order with the mapped status in Bimp, under `dagster dev`.

Both emulators hold the demo shop (KeyCRM at its real 60 requests a minute).  The shop's history is first
transferred headless (`keybimp sync demo-shop`, recorded in the same Dagster instance), as a shop that has been
running for a while has it; then `dagster dev` serves `benchmarks.latency_defs` (the project's definitions,
order sensor at 30 s, running) with its daemon, its own DAGSTER_HOME (the project's dagster.yaml: queued runs,
one run per integration at a time) and its own data directory.  Once the sensor's first tick has set its
cursor, the benchmark changes the status of exactly `changes` orders that the pipeline has transferred (their
`KC-<id>` customer order is in Bimp; new → in progress, in progress → delivery, both mapped to another Bimp
status) through KeyCRM's `PUT /order/{id}`, one every `spacing` seconds (not a divisor of 30 s, so the
changes land at every phase of the sensor's cycle), and polls the Bimp emulator's state once a second for
the customer order `KC-<id>` carrying the Bimp status the settings map the new status to.
Latency = first poll that sees it − the moment of the change.  A change that never arrives (within
`timeout_after_last` of the last change) is a failure of the benchmark, listed by order id — never dropped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.common import ROOT, Emulators, demo_env, free_port, fresh_dir, write_config

NEXT_STATUS = {1: 3, 3: 8}  # new → in progress, in progress → delivery (both mapped, both reserving)
ALIAS = {1: "new", 3: "in_progress", 8: "delivery"}


def _sensor_ready(home: Path) -> bool:
    """True once the order sensor has ticked once (its cursor is set)."""
    import dagster as dg

    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            for state in instance.all_instigator_state():
                data = state.instigator_data
                if state.name.startswith("orders_") and getattr(data, "cursor", None):
                    return True
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old
    return False


def _sensor_ready_safe(home: Path) -> bool:
    try:
        return _sensor_ready(home)
    except Exception:  # noqa: BLE001 - the daemon may hold the SQLite storage for a moment
        return False


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run(changes: int = 20, spacing: float = 17.0, orders: int = 1000, timeout_after_last: float = 240) -> dict:
    import yaml

    from keybimp_pipeline.emulators.demo_shop import DEMO_KEYCRM_KEY

    base = fresh_dir("latency")
    home, data = base / "dagster_home", base / "data"
    home.mkdir()
    data.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    with Emulators(orders, keycrm_rpm=60) as emu:
        config = write_config(base / "integrations.yaml", emu.keycrm_url, emu.bimp_url, requests_per_minute=60)
        mapping = yaml.safe_load(config.read_text())["integrations"][0]["statuses"]
        env = {**os.environ, **demo_env(), "DAGSTER_HOME": str(home), "KEYBIMP_DATA": str(data),
               "KEYBIMP_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
        # the shop's history first, headless (not timed): the changes are then status changes of orders the
        # pipeline has transferred, whatever the stock (an order rightly left out, `reserve_insufficient`,
        # would never arrive and say nothing about latency)
        presync_started = time.monotonic()
        subprocess.run([sys.executable, "-m", "keybimp_pipeline.cli", "sync", "demo-shop", "--quiet"], cwd=ROOT,
                       env=env, check=True, stdout=subprocess.DEVNULL)
        presync_s = time.monotonic() - presync_started
        # integrations start paused (R-CONN-5): start it as a person would
        subprocess.run([sys.executable, "-m", "keybimp_pipeline.cli", "start", "demo-shop"], cwd=ROOT, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        _sensor_ready(home)  # creates the instance's storage now: two processes migrating it at once corrupt it
        log = open(base / "dagster-dev.log", "w")  # noqa: SIM115 - closed in finally
        dagster = Path(sys.executable).with_name("dagster")
        proc = subprocess.Popen([str(dagster), "dev", "-m", "benchmarks.latency_defs", "-h", "127.0.0.1",
                                 "-p", str(free_port())], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            started = time.monotonic()
            while not _sensor_ready_safe(home):
                if proc.poll() is not None:
                    raise RuntimeError(f"dagster dev exited (code {proc.returncode}); see {base}/dagster-dev.log")
                if time.monotonic() - started > 600:
                    raise RuntimeError("the order sensor did not tick within 10 minutes")
                time.sleep(2)
            ready_after = time.monotonic() - started
            kc_state = emu.admin("keycrm", "GET", "/__admin/state")
            bimp_state = emu.admin("bimp", "GET", "/__admin/state")
            status_uuid = {s["name"]: s["uuid"] for s in bimp_state["companies"][0]["orderStatuses"]}
            transferred = {o.get("docNumber") for o in bimp_state["companies"][0].get("customerOrders", [])}
            candidates = sorted((o for o in kc_state["orders"]
                                 if o["status_id"] in NEXT_STATUS and f"KC-{o['id']}" in transferred),
                                key=lambda o: o["id"], reverse=True)[:changes]
            del kc_state, bimp_state, transferred
            if len(candidates) < changes:
                raise RuntimeError(f"only {len(candidates)} transferred orders can change status")
            keycrm = httpx.Client(base_url=emu.keycrm_url + "/v1",
                                  headers={"Authorization": f"Bearer {DEMO_KEYCRM_KEY}"}, timeout=30)
            pending: dict[int, str] = {}   # order id -> the Bimp status uuid awaited
            changed: dict[int, float] = {}
            seen: dict[int, float] = {}

            def poll() -> None:
                company = emu.admin("bimp", "GET", "/__admin/state")["companies"][0]
                now = time.time()
                by_number = {o.get("docNumber"): o.get("status") for o in company.get("customerOrders", [])}
                for order_id, wanted in list(pending.items()):
                    if by_number.get(f"KC-{order_id}") == wanted:
                        seen[order_id] = now
                        del pending[order_id]

            for order in candidates:
                target = NEXT_STATUS[order["status_id"]]
                changed[order["id"]] = time.time()
                keycrm.put(f"/order/{order['id']}", json={"status_id": target}).raise_for_status()
                pending[order["id"]] = status_uuid[mapping[ALIAS[target]]]
                end = time.monotonic() + spacing
                while time.monotonic() < end:
                    poll()
                    time.sleep(1)
            deadline = time.monotonic() + timeout_after_last
            while pending and time.monotonic() < deadline:
                poll()
                time.sleep(1)
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # dagster dev stops its webserver, daemon and code servers on Ctrl-C
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of its process group is left
            proc.wait()
            log.close()
    values = sorted(seen[k] - changed[k] for k in seen)
    return {"changes": changes, "spacing_s": spacing, "sensor_s": 30, "ready_after_s": round(ready_after, 1),
            "presync_s": round(presync_s, 1), "orders": orders, "timeout_after_last_s": timeout_after_last,
            "n": len(values), "missing": len(pending), "missing_ids": sorted(pending),
            "failed": bool(pending) or len(values) != changes,
            "p50": _percentile(values, 0.5) if values else None,
            "p95": _percentile(values, 0.95) if values else None,
            "max": values[-1] if values else None, "mean": statistics.fmean(values) if values else None,
            "latencies": [round(v, 1) for v in values]}
