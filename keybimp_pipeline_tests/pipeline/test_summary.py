"""The summary `keybimp sync` prints (and `make demo` shows) is one basis for every figure: totals since
the first sync from the ledger and the tables as they stand, so a second sync with nothing changed prints
the same totals and "written to Bimp this run: 0" (R-ORCH-6).

The first sync creates a counterparty and an item; after it the Bimp snapshot holds them, so the re-sync
matches them as existing ones.  Figures read from the latest match tables drifted for that reason.
"""

from __future__ import annotations

import pytest

from keybimp_pipeline.summary import format_summary, summarize
from keybimp_pipeline_tests.pipeline.orders_world import Shop, new_and_existing


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch) -> Shop:
    shop = Shop(emulators, tmp_path, monkeypatch)
    # order 1: Анна's counterparty and LAMP-7 are created; order 2: Петро and CH-1 exist
    w = new_and_existing(shop)
    w.order(3, 2, [(1, 1, 500)], status=99)            # an unmapped status: not written (R-STAT-2)
    shop.load()
    return shop


def test_R_ORCH_6_a_second_sync_prints_the_same_totals_and_writes_nothing(shop: Shop):
    shop.sync(run_id="run-1")
    first = summarize("demo-shop", run_ids=["run-1"])
    assert first["orders_seen"] == 3
    assert first["customer_orders"] == 2
    assert first["orders_not_written"] == 1
    assert (first["counterparties_created"], first["orders_to_existing_counterparties"]) == (1, 1)
    assert (first["products_created"], first["lines_with_existing_items"]) == (1, 2)
    assert first["issues_by_code"] == {"status_not_mapped": 1}
    # Анна's counterparty, a contract for each buyer (Петро's had none), the item, two customer orders
    assert first["documents"] == {"contract": 2, "counterparty": 1, "customer_order": 2, "product": 1}
    assert first["written_this_run"] == 6

    shop.h.refresh_reference()  # the snapshot now holds what the first sync created: it is matched now
    shop.sync(full_refresh=True, run_id="run-2")
    second = summarize("demo-shop", run_ids=["run-2"])
    # the drift this guards against: the re-sync's match table calls the created item and counterparty
    # "matched" (three matched lines, two matched buyers of written orders), the ledger does not
    rematched = shop.h.store.query("SELECT count(*) FROM matched_products WHERE outcome='matched'")
    assert int(rematched.iloc[0, 0]) == 4  # order 3's line too
    customers = shop.h.store.query("SELECT count(*) FROM matched_customers WHERE outcome='matched'")
    assert int(customers.iloc[0, 0]) == 3

    assert second["written_this_run"] == 0
    assert {k: v for k, v in second.items() if k != "written_this_run"} == \
        {k: v for k, v in first.items() if k != "written_this_run"}
    text = format_summary("demo-shop", second).splitlines()
    assert text[-1] == "written to Bimp this run: 0"
    assert format_summary("demo-shop", first).splitlines()[:-1] == text[:-1]


def test_R_ORCH_6_written_this_run_counts_that_runs_writes_only(shop: Shop):
    """Another run of the integration writing meanwhile (a sensor's, a second `keybimp sync`) is not counted as
    this run's: each ledger row keeps the run that last wrote it."""
    shop.sync(run_id="run-1")
    shop.world.order(4, 2, [(1, 1, 500)], updated_at="2026-11-02T09:00:00.000000Z")  # Петро again: one new order
    shop.keycrm_server.put_state(shop.world.keycrm)
    shop.sync(run_id="run-2")

    assert summarize("demo-shop", run_ids=["run-2"])["written_this_run"] == 1
    assert summarize("demo-shop", run_ids=["run-1"])["written_this_run"] == 6
    assert summarize("demo-shop", run_ids=["run-1", "run-2"])["written_this_run"] == 7
