"""Requests: Bimp calls per created document, per document type, and what a re-run with nothing changed costs.

A child process syncs every day of the demo shop (N orders) through the very steps the Dagster assets call,
as one run over the whole range does (extract the range in one listing → reference → stage the range →
resolve → per day: customer orders (matching inside) → payments → sales → returns/refunds), against both
emulators, counting the Bimp client's requests per path around each phase.
Then it syncs the same days again with nothing changed in KeyCRM and counts every request of both
systems, split into reads and writes.

Per document type, "calls per created" is every Bimp request made in that phase (searches, the free-stock
read, counterparties/contracts/items created for the orders, the documents themselves) divided by the
documents the phase created.  Returns and refunds are one phase (`DocumentWriter.returns`), so they share
one figure.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from benchmarks.common import INTEGRATION, emit, write_config
from benchmarks.extraction import demo_days

AUTH = "auth"


def _is_write(path: str) -> bool:
    from keybimp_pipeline.clients.bimp import _is_read

    return not _is_read(path) and AUTH not in path.lower()


def _bucket(delta: Counter) -> dict:
    reads = sum(n for p, n in delta.items() if not _is_write(p) and AUTH not in p.lower())
    writes = sum(n for p, n in delta.items() if _is_write(p))
    auth = sum(n for p, n in delta.items() if AUTH in p.lower())
    return {"total": sum(delta.values()), "reads": reads, "writes": writes, "auth": auth}


def sync_all(settings, store, keycrm, bimp, phases: dict[str, Counter], created: Counter):
    """Every demo day through the pipeline's steps; Bimp requests per phase accumulate in `phases`.  Returns
    the extract's result (its listings and the orders it read)."""
    from keybimp_pipeline.sync import reference
    from keybimp_pipeline.sync.documents import DOCUMENT_ENTITIES, DocumentWriter
    from keybimp_pipeline.sync.extract import extract_days
    from keybimp_pipeline.sync.issues import open_issues, save_issues
    from keybimp_pipeline.sync.orders import EXTERNAL_ID_SOURCE, write_customer_orders
    from keybimp_pipeline.sync.resolve import resolve
    from keybimp_pipeline.sync.stage import stage_days

    def phase(name: str, fn, *args):
        before = Counter(bimp.request_counts)
        out = fn(*args)
        phases.setdefault(name, Counter()).update(Counter(bimp.request_counts) - before)
        return out

    days = demo_days()
    extracted = extract_days(store, keycrm, days, settings.timezone)
    if not reference.is_fresh(store, "keycrm"):
        reference.refresh_keycrm(store, keycrm)
    if not reference.is_fresh(store, "bimp"):
        phase("reference", lambda: reference.refresh_bimp(store, bimp, external_id_source=EXTERNAL_ID_SOURCE))
    stage_days(store, days, strict_names=settings.customers.strict_names)
    resolved = resolve(store, settings)
    assert not resolved.problems, resolved.problems
    for day in days:
        derived, result, _ = phase("customer_order", write_customer_orders, store, day, settings, resolved, bimp)
        created["customer_order"] += result.orders_created
        created["customer_order_updated"] += result.orders_updated + result.statuses_updated \
            + result.reserves_released
        created["counterparty"] += result.counterparties_created
        created["contract"] += result.contracts_created
        created["product"] += result.products_created
        with store.writer():
            open_now = open_issues(store, day)
            blocked = set(open_now.loc[open_now["entity"] == "customer_order", "order_id"].dropna().astype(int))
            writer = DocumentWriter(store, bimp, settings, resolved, blocked)
            phase("customer_payment", writer.payments, day)
            phase("sales_invoice", writer.sales, day, derived)
            phase("customer_return+refund", writer.returns, day, derived)
        save_issues(store, day, DOCUMENT_ENTITIES,
                    pd.DataFrame(writer.result.issues, columns=["order_id", "entity", "code", "detail"]))
        for entity, n in writer.result.created.items():
            created[entity] += n
        for entity, n in writer.result.updated.items():
            created[f"{entity}_updated"] += n
    return extracted


def run(keycrm_url: str, bimp_url: str, directory: Path) -> dict:
    from keybimp_pipeline.clients.bimp import BimpClient
    from keybimp_pipeline.clients.keycrm import KeyCRMClient
    from keybimp_pipeline.settings import load_settings
    from keybimp_pipeline.storage.db import Store

    settings = load_settings(write_config(directory / "integrations.yaml", keycrm_url, bimp_url)).get(INTEGRATION)
    store = Store(INTEGRATION, directory)
    email, password = settings.bimp_credentials()
    out: dict = {}
    for run_name in ("first", "rerun"):
        phases: dict[str, Counter] = {}
        created: Counter = Counter()
        started = time.perf_counter()
        with KeyCRMClient(settings.keycrm.url, settings.keycrm_api_key(), requests_per_minute=1_000_000) as k, \
                BimpClient(settings.bimp.url, email, password, str(settings.bimp.company)) as b:
            extracted = sync_all(settings, store, k, b, phases, created)
            out[run_name] = {
                "keycrm_listings": extracted.listings, "keycrm_orders_read": extracted.fetched,
                "seconds": time.perf_counter() - started, "keycrm_requests": k.request_count,
                "bimp": _bucket(Counter(b.request_counts)), "bimp_by_path": dict(b.request_counts),
                "phases": {name: {**_bucket(c), "by_path": dict(c)} for name, c in phases.items()},
                "created": dict(created)}
    out["days"] = len(demo_days())
    out["ranged"] = True  # extract and staging over the whole range at once, the writers day by day
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keycrm-url", required=True)
    parser.add_argument("--bimp-url", required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    emit(run(args.keycrm_url, args.bimp_url, args.dir))


if __name__ == "__main__":
    main()
