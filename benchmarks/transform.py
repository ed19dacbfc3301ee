"""Transform: staging + matching + derivation of the demo shop at N orders, API time excluded.

Two child processes per size, so that the measured one does nothing else:

* `build`: raw_orders written straight into the integration's DuckDB file (no API): the demo shop's orders
  from `demo_shop.iter_demo_orders(N)`, each stored as the JSON `raw_orders.payload` holds, with its shop
  day, id and `updated_at`; then the reference snapshot both systems' read endpoints give, loaded by the
  pipeline's own `reference.refresh_keycrm/refresh_bimp` from emulators served in threads (the Bimp
  company is `demo_shop.bimp_state(N)`: its catalogue and counterparties grow with the shop).  Built files
  are cached in benchmarks/out/cache (keyed by N and the generator's and schema's source), because
  generating a million orders takes minutes and is not what is measured.
* `measure`: all the days in one call of each range function, `stage_days` → `match_days` →
  `derive_customer_orders_days`, as a backfill's single run (or `keybimp sync --from --to`) calls them from
  the Dagster assets, timed per step (wall and CPU); peak RSS of the process after each step.

The payload is the generator's JSON (KeyCRM's wire form) rather than `normalize_order` + `json.dumps`
(the form `extract_day` stores): both hold the same values as JSON text, staging reads both through the
same `->>`/TRY_CAST expressions, and the `check` command proves the staged tables are identical on a
sample — while normalising a million orders in Python would take longer than the benchmark itself.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import threading
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import (
    INTEGRATION,
    OUT,
    ROOT,
    cpu_seconds,
    emit,
    free_port,
    peak_rss_mib,
    write_config,
)

TZ = "Europe/Kyiv"
BATCH = 20_000
BUILD_VERSION = "1"  # bump when `build` changes what it writes (part of the cache key)


def _cache_key(orders: int) -> str:
    from keybimp_pipeline.storage.db import SCHEMA

    digest = hashlib.sha1(BUILD_VERSION.encode())
    for rel in ("keybimp_pipeline/emulators/demo_shop.py", "keybimp_pipeline/sync/reference.py"):
        digest.update((ROOT / rel).read_bytes())
    digest.update(SCHEMA.encode())  # the tables, not the rest of db.py (the Store's methods change often)
    return f"raw-{orders}-{digest.hexdigest()[:10]}"


class _Served:
    """An emulator app on an ephemeral loopback port, in a daemon thread (setup only, never timed)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="off", date_header=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _orders_frame(batch: list[dict], dumps) -> pd.DataFrame:
    ordered = pd.to_datetime(pd.Series([o.get("ordered_at") or o.get("created_at") for o in batch]), utc=True)
    return pd.DataFrame({
        "integration": INTEGRATION,
        "order_id": pd.Series([o["id"] for o in batch], dtype="int64"),
        "day": ordered.dt.tz_convert(TZ).dt.date,
        "updated_at": pd.to_datetime(pd.Series([o.get("updated_at") for o in batch]), utc=True),
        "fetched_at": pd.Timestamp.now(tz="UTC"),
        "payload": [dumps(o) for o in batch],
    })


def _insert_raw(store, frame: pd.DataFrame) -> None:
    with store.connect() as con:
        con.register("incoming", frame)
        con.execute("INSERT INTO raw_orders SELECT integration, order_id, day, updated_at, fetched_at, "
                    "payload::JSON FROM incoming")
        con.unregister("incoming")


def load_reference(store, orders: int) -> None:
    """Both systems' reference books, read through the real clients from emulators holding the demo."""
    from keybimp_pipeline.clients.bimp import BimpClient
    from keybimp_pipeline.clients.keycrm import KeyCRMClient
    from keybimp_pipeline.emulators import demo_shop
    from keybimp_pipeline.emulators.bimp.app import create_app as bimp_app
    from keybimp_pipeline.emulators.keycrm.app import create_app as keycrm_app
    from keybimp_pipeline.sync import reference
    from keybimp_pipeline.sync.orders import EXTERNAL_ID_SOURCE

    # statuses, payment methods and sources do not depend on the shop's size: a small KeyCRM state has them
    keycrm = _Served(keycrm_app(demo_shop.keycrm_state(50)))
    bimp = _Served(bimp_app(demo_shop.bimp_state(orders)))
    try:
        with KeyCRMClient(keycrm.url + "/v1", demo_shop.DEMO_KEYCRM_KEY, requests_per_minute=1_000_000) as k:
            reference.refresh_keycrm(store, k)
        with BimpClient(bimp.url, demo_shop.DEMO_BIMP_EMAIL, demo_shop.DEMO_BIMP_PASSWORD,
                        demo_shop.DEMO_COMPANY_CODE) as b:
            reference.refresh_bimp(store, b, external_id_source=EXTERNAL_ID_SOURCE)
    finally:
        keycrm.stop()
        bimp.stop()


def build(orders: int, directory: Path) -> dict:
    """The integration's DuckDB file: N raw orders and the reference snapshot (from the cache when there)."""
    import orjson

    from keybimp_pipeline.emulators.demo_shop import iter_demo_orders
    from keybimp_pipeline.storage.db import Store

    target = directory / f"{INTEGRATION}.duckdb"
    cached = OUT / "cache" / f"{_cache_key(orders)}.duckdb"
    started = time.perf_counter()
    if cached.exists():
        shutil.copyfile(cached, target)
        return {"orders": orders, "cached": True, "seconds": time.perf_counter() - started}
    store = Store(INTEGRATION, directory)

    def dumps(order: dict) -> str:
        return orjson.dumps(order).decode()

    batch: list[dict] = []
    for order in iter_demo_orders(orders):
        batch.append(order)
        if len(batch) >= BATCH:
            _insert_raw(store, _orders_frame(batch, dumps))
            batch = []
    if batch:
        _insert_raw(store, _orders_frame(batch, dumps))
    load_reference(store, orders)
    with store.connect() as con:
        con.execute("CHECKPOINT")
    cached.parent.mkdir(parents=True, exist_ok=True)
    for old in cached.parent.glob(f"raw-{orders}-*.duckdb"):
        old.unlink()
    shutil.copyfile(target, cached)
    return {"orders": orders, "cached": False, "seconds": time.perf_counter() - started}


def _settings(directory: Path):
    from keybimp_pipeline.settings import load_settings

    # the steps measured here make no API call: the URLs only have to be valid
    config = write_config(directory / "integrations.yaml", "http://127.0.0.1:9", "http://127.0.0.1:9")
    return load_settings(config).get(INTEGRATION)


def measure(directory: Path) -> dict:
    """Stage, match and derive every day partition of the store in `directory` in ONE call per step (the range
    functions a single-run backfill calls); seconds and CPU seconds per step, peak RSS."""
    from keybimp_pipeline.storage.db import Store
    from keybimp_pipeline.sync.match import match_days
    from keybimp_pipeline.sync.orders import derive_customer_orders_days
    from keybimp_pipeline.sync.resolve import resolve
    from keybimp_pipeline.sync.stage import stage_days

    settings = _settings(directory)
    store = Store(INTEGRATION, directory)
    days = [d.date() if hasattr(d, "date") else d for d in
            store.query("SELECT DISTINCT day FROM raw_orders ORDER BY day")["day"]]
    rss_before = peak_rss_mib()
    started, cpu = time.perf_counter(), cpu_seconds()
    steps: dict[str, float] = {}
    cpu_steps: dict[str, float] = {}
    peak_after: dict[str, float] = {}  # the process's high-water mark once each step is done (where it peaks)

    def timed(name: str, fn, *args, **kw):
        t0, c0 = time.perf_counter(), cpu_seconds()
        out = fn(*args, **kw)
        steps[name], cpu_steps[name] = time.perf_counter() - t0, cpu_seconds() - c0
        peak_after[name] = peak_rss_mib()
        return out

    resolved = timed("resolve", resolve, store, settings)
    assert not resolved.problems, resolved.problems
    staged = timed("stage", stage_days, store, days, strict_names=settings.customers.strict_names)
    customers, products = timed("match", match_days, store, days, settings)
    counts = {"staged_orders": staged.orders, "lines": staged.lines, "quarantined": staged.quarantined,
              "customers_to_create": int((customers["outcome"] == "create").sum()),
              "items_to_create": int((products["outcome"] == "create").sum())}
    del customers, products  # as between the Dagster assets: each step's frames are gone before the next
    derived = timed("derive", derive_customer_orders_days, store, days, settings, resolved)
    counts.update(derived_orders=len(derived.orders), issues=len(derived.issues))
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {"seconds": seconds, "cpu_s": cpu, "steps": steps, "cpu_steps": cpu_steps, "peak_mib_after": peak_after,
            "days": len(days),
            "peak_mib": peak_rss_mib(), "baseline_mib": rss_before, **counts}


def check(orders: int, directory: Path) -> dict:
    """Staging the wire-form payload gives the same tables as staging extract.py's normalised form; and the range
    functions `measure` times give the tables and derivation of the per-day path (`range_equals_days`)."""
    import json

    import orjson

    from keybimp_pipeline.clients.keycrm import normalize_order
    from keybimp_pipeline.emulators.demo_shop import iter_demo_orders
    from keybimp_pipeline.storage.db import Store
    from keybimp_pipeline.sync.extract import _json_default
    from keybimp_pipeline.sync.stage import stage_day

    sample = list(iter_demo_orders(orders))
    tables = {}
    for form in ("wire", "stored"):
        sub = directory / form
        sub.mkdir(parents=True, exist_ok=True)
        store = Store(INTEGRATION, sub)
        if form == "wire":
            frame = _orders_frame(sample, lambda o: orjson.dumps(o).decode())
        else:
            frame = _orders_frame(sample, lambda o: json.dumps(normalize_order(o), default=_json_default,
                                                               ensure_ascii=False))
        _insert_raw(store, frame)
        load_reference(store, orders)
        for day in sorted(set(frame["day"])):
            stage_day(store, day)
        tables[form] = {t: store.query(f"SELECT * EXCLUDE (integration) FROM {t} ORDER BY ALL")
                        for t in ("stg_orders", "stg_order_lines", "stg_buyers", "stg_payments")}
    for table, frame in tables["wire"].items():
        pd.testing.assert_frame_equal(frame, tables["stored"][table], check_dtype=False)
    ranged = range_equals_days(directory / "wire", directory / "ranged")
    return {"orders": orders, "identical": True, "range_equals_days": ranged,
            "rows": {t: len(f) for t, f in tables["wire"].items()}}


RANGE_TABLES = ("stg_orders", "stg_order_lines", "stg_buyers", "stg_payments", "quarantine", "matched_customers",
                "matched_products")


def range_equals_days(source: Path, directory: Path) -> dict:
    """What `measure` times (the range functions over all days) gives the tables and derivation of the per-day
    path (`stage_day` → `match_day` → `derive_customer_orders` day by day), on a copy of the store in `source`."""
    from keybimp_pipeline.storage.db import Store
    from keybimp_pipeline.sync.match import match_day, match_days
    from keybimp_pipeline.sync.orders import derive_customer_orders, derive_customer_orders_days
    from keybimp_pipeline.sync.resolve import resolve
    from keybimp_pipeline.sync.stage import stage_day, stage_days

    out = {}
    for mode in ("days", "range"):
        sub = directory / mode
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / f"{INTEGRATION}.duckdb", sub / f"{INTEGRATION}.duckdb")
        settings, store = _settings(sub), Store(INTEGRATION, sub)
        days = [d.date() if hasattr(d, "date") else d for d in
                store.query("SELECT DISTINCT day FROM raw_orders ORDER BY day")["day"]]
        resolved = resolve(store, settings)
        if mode == "days":
            parts = []
            for day in days:
                stage_day(store, day, strict_names=settings.customers.strict_names)
                match_day(store, day, settings)
                parts.append(derive_customer_orders(store, day, settings, resolved))
            derived = {k: pd.concat([getattr(p, k) for p in parts], ignore_index=True)
                       for k in ("orders", "lines", "issues", "customers")}
        else:
            stage_days(store, days, strict_names=settings.customers.strict_names)
            match_days(store, days, settings)
            whole = derive_customer_orders_days(store, days, settings, resolved)
            derived = {k: getattr(whole, k) for k in ("orders", "lines", "issues", "customers")}
        tables = {t: store.query(f"SELECT * EXCLUDE (seen_at) FROM {t} ORDER BY ALL" if t == "quarantine"
                                 else f"SELECT * FROM {t} ORDER BY ALL") for t in RANGE_TABLES}
        for k, frame in derived.items():
            text = frame.astype(object).where(frame.notna(), None).astype(str)
            tables[f"derived_{k}"] = text.sort_values(list(text.columns)).reset_index(drop=True)
        out[mode] = tables
    for name, frame in out["days"].items():
        pd.testing.assert_frame_equal(out["range"][name][frame.columns], frame)
    return {name: len(frame) for name, frame in out["days"].items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["build", "measure", "check"])
    parser.add_argument("--orders", type=int, default=0)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "build":
        emit(build(args.orders, args.dir))
    elif args.command == "measure":
        emit(measure(args.dir))
    else:
        emit(check(args.orders, args.dir))


if __name__ == "__main__":
    main()
