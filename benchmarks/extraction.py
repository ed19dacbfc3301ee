"""Extraction: KeyCRM orders from the emulator into DuckDB, by our extractor and by dlt's rest_api source.

One child process per (loader, size) runs only the load and emits wall time, peak memory and rows; the
parent counts the requests on the emulator's own `GET /__admin/requests`, so both loaders are counted
the same way.

Ours: `extract_days` over the demo window's day partitions, as a backfill's single run (or `keybimp sync
--from --to`) extracts them: one `created_between` listing over the range (first fetch of every day), orders
split into their shop-local day, normalised, stored as JSON and upserted in chunks, one cursor per day.

dlt: `rest_api_source` configured as dlt's REST API documentation recommends for a paginated endpoint
with an update timestamp: bearer auth, the JSON-link paginator on `next_page_url`, `primary_key: id`
with `write_disposition: merge`, and an `incremental` on `updated_at` passed through KeyCRM's
`filter[updated_between]` (its `convert` turns the cursor into the filter's "from, to" form).  Loaded
into a DuckDB file with dlt's defaults (nested lists become child tables).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from benchmarks.common import INTEGRATION, cpu_seconds, emit, peak_rss_mib

TZ = "Europe/Kyiv"
# The demo shop's window (demo_shop defaults: 90 days ending 2026-12-01, UTC): orders fall on these shop days.
FIRST_DAY, LAST_DAY = date(2026, 9, 2), date(2026, 12, 2)


def demo_days() -> list[date]:
    return [FIRST_DAY + timedelta(days=i) for i in range((LAST_DAY - FIRST_DAY).days + 1)]


def run_ours(keycrm_url: str, directory: Path, *, requests_per_minute: int = 1_000_000,
             with_reference: bool = False) -> dict:
    """Every demo day through one `extract_days` (what a backfill's single run or `keybimp sync --from --to`
    does); with `with_reference`, KeyCRM's reference books first (a backfill reads them once: statuses, payment
    methods, sources)."""
    from keybimp_pipeline.clients.keycrm import KeyCRMClient
    from keybimp_pipeline.emulators.demo_shop import DEMO_KEYCRM_KEY
    from keybimp_pipeline.storage.db import Store
    from keybimp_pipeline.sync import reference
    from keybimp_pipeline.sync.extract import extract_days

    store = Store(INTEGRATION, directory)
    with store.connect():
        pass  # schema created before the clock starts (the pipeline's store exists long before a backfill)
    started, cpu = time.perf_counter(), cpu_seconds()
    with KeyCRMClient(keycrm_url + "/v1", DEMO_KEYCRM_KEY, requests_per_minute=requests_per_minute) as client:
        if with_reference:
            reference.refresh_keycrm(store, client)
        result = extract_days(store, client, demo_days(), TZ)
        requests = client.request_count
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    rows = int(store.query("SELECT count(*) FROM raw_orders").iloc[0, 0])
    return {"seconds": seconds, "cpu_s": cpu, "peak_mib": peak_rss_mib(), "rows": rows, "client_requests": requests,
            "days": len(demo_days()), "listings": result.listings, "ranged": True}


def _filter_from(value: object) -> str:
    """dlt's cursor value (KeyCRM's ISO timestamp) → `filter[updated_between]` "from, to" in UTC."""
    moment = datetime.fromisoformat(str(value)).astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}, 2100-01-01 00:00:00"


def run_dlt(keycrm_url: str, directory: Path) -> dict:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    from keybimp_pipeline.clients.keycrm import ORDER_INCLUDE
    from keybimp_pipeline.emulators.demo_shop import DEMO_KEYCRM_KEY

    source = rest_api_source({
        "client": {
            "base_url": keycrm_url + "/v1/",
            "auth": {"type": "bearer", "token": DEMO_KEYCRM_KEY},
            "paginator": {"type": "json_link", "next_url_path": "next_page_url"},
        },
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge",
                              "endpoint": {"params": {"limit": 50}}},
        "resources": [{
            "name": "orders",
            "endpoint": {
                "path": "order",
                "data_selector": "data",
                "params": {"include": ORDER_INCLUDE, "sort": "id"},
                "incremental": {"start_param": "filter[updated_between]", "cursor_path": "updated_at",
                                "initial_value": "2026-01-01T00:00:00.000000Z", "convert": _filter_from},
            },
        }],
    })
    pipeline = dlt.pipeline(pipeline_name="keycrm_bench", destination=dlt.destinations.duckdb(
        str(directory / "dlt.duckdb")), dataset_name="keycrm", pipelines_dir=str(directory / "pipelines"))
    started, cpu = time.perf_counter(), cpu_seconds()
    pipeline.run(source)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    with pipeline.sql_client() as client:
        rows = int(client.execute_sql("SELECT count(*) FROM orders")[0][0])
    return {"seconds": seconds, "cpu_s": cpu, "peak_mib": peak_rss_mib(), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("loader", choices=["ours", "dlt", "backfill"])
    parser.add_argument("--keycrm-url", required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    if args.loader == "ours":
        emit(run_ours(args.keycrm_url, args.dir))
    elif args.loader == "backfill":  # at KeyCRM's real rate limit, with the reference books, as one ranged run
        emit(run_ours(args.keycrm_url, args.dir, requests_per_minute=60, with_reference=True))
    else:
        emit(run_dlt(args.keycrm_url, args.dir))


if __name__ == "__main__":
    main()
