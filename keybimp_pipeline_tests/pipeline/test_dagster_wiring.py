"""The Dagster wiring (R-ORCH-1..3, R-CONN-5): definitions, one real materialisation, the order sensor.

`keybimp_pipeline.definitions` reads the integrations file named by $KEYBIMP_CONFIG when it is imported,
so the test sets it first and (re)loads the module.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from keybimp_pipeline import control
from keybimp_pipeline.defs.resources import Keybimp
from keybimp_pipeline_tests.pipeline.orders_world import DAY, Shop, at

ORDER_ASSET_KEYS = {
    "keycrm_orders_raw", "reference_data", "staged_orders", "staged_order_lines", "staged_buyers",
    "staged_payments", "matched_customers", "matched_products", "bimp_customer_orders",
    "bimp_customer_payments", "bimp_sales_invoices", "bimp_goods_returns", "bimp_refunds", "sync_issues"}
UPLOAD_ASSET_KEYS = {"bimp_stock_snapshot", "keycrm_stock_snapshot", "stock_upload_plan", "keycrm_stock_upload",
                     "keycrm_price_upload"}


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch) -> Shop:
    shop = Shop(emulators, tmp_path, monkeypatch)
    w = shop.world
    w.offer(1, "CH-1", "Стілець синій", 500)
    w.item("Стілець синій", "CH-1", stock=100)
    w.buyer(1, "Анна Коваль", phone="0671234567")
    w.order(1, 1, [(1, 1, 500)], placed=at(8), updated_at=at(9))
    w.order(2, 1, [(1, 2, 500)], placed=at(8, 30), updated_at=at(9, 30))
    w.order(3, 1, [(1, 1, 500)], placed=at(10, day="2026-11-03"), updated_at=at(10, 5, day="2026-11-03"))
    w.order(4, 1, [(1, 1, 500)], placed=at(10, day="2026-11-01"), updated_at=at(10, 5, day="2026-11-01"))
    shop.load()
    monkeypatch.setenv("KEYBIMP_CONFIG", str(shop.config_path))
    return shop


@pytest.fixture
def definitions(shop):
    import keybimp_pipeline.definitions as module

    return importlib.reload(module)


def test_R_ORCH_1_definitions_hold_every_asset_job_sensor_and_schedule(definitions):
    repo = definitions.defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys >= ORDER_ASSET_KEYS | UPLOAD_ASSET_KEYS
    assert {"sync_orders", "upload_stocks", "upload_prices"} <= {j.name for j in repo.get_all_jobs()}
    assert {s.name for s in repo.sensor_defs} == {"orders_demo_shop"}
    assert {s.name for s in repo.schedule_defs} == {"stocks_demo_shop", "prices_demo_shop"}
    sync_orders = repo.get_job("sync_orders")
    assert {k.to_user_string() for k in sync_orders.asset_layer.executable_asset_keys} == ORDER_ASSET_KEYS
    # lineage: raw → staged → matched → documents → issues
    graph = repo.asset_graph
    upstream = {k.to_user_string() for k in graph.get(dg.AssetKey("bimp_customer_orders")).parent_keys}
    assert {"matched_customers", "matched_products", "staged_orders"} <= upstream
    assert "keycrm_orders_raw" in {k.to_user_string()
                                   for k in graph.get(dg.AssetKey("staged_orders")).parent_keys}


def test_R_ORCH_2_one_partition_materialises_for_real_with_its_metadata(definitions, shop: Shop):
    key = dg.MultiPartitionKey({"date": DAY, "integration": "demo-shop"})
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            definitions.ORDER_ASSETS, partition_key=key, instance=instance,
            resources={"keybimp": Keybimp(config_path=str(shop.config_path), data_dir=str(shop.tmp))})
        assert result.success
        meta = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node(
            "bimp_customer_orders")}["bimp_customer_orders"]
        assert meta["orders_created"].value == 2
        assert meta["counterparties_created"].value == 1
        assert meta["sync_issues"].value == 0
        raw = result.asset_materializations_for_node("keycrm_orders_raw")[0].metadata
        assert raw["orders_stored"].value == 2 and raw["incremental"].value is False
        issues = result.asset_materializations_for_node("sync_issues")[0].metadata
        assert issues["open_issues"].value == 0
        materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert materialised == ORDER_ASSET_KEYS
        assert result.get_asset_materialization_events()[0].partition == key
    assert sorted(shop.orders()) == [1, 2]


def _sensor(definitions):
    """The wired order sensor of the integration, as the Dagster daemon would run it."""
    repo = definitions.defs.get_repository_def()
    return repo, repo.get_sensor_def("orders_demo_shop")


def test_R_CONN_5_paused_integration_sensor_skips_without_a_request(definitions, shop: Shop):
    repo, sensor = _sensor(definitions)
    before = shop.keycrm_requests()
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(cursor=at(8).replace(".000000Z", "+00:00"), instance=instance,
                                          repository_def=repo)
        data = sensor.evaluate_tick(context)

    assert control.is_paused("demo-shop")  # a new integration starts paused
    assert not data.run_requests
    assert "paused" in (data.skip_message or "")
    assert shop.keycrm_requests() == before


def test_R_ORCH_3_started_sensor_requests_exactly_the_changed_days(definitions, shop: Shop):
    control.set_paused("demo-shop", False)
    repo, sensor = _sensor(definitions)
    cursor = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)  # after order 4's change, before the others'
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(cursor=cursor.isoformat(), instance=instance, repository_def=repo)
        data = sensor.evaluate_tick(context)

    # Nov 2 and Nov 3 changed (not Nov 1): consecutive days, so one run over their range
    [request] = data.run_requests
    assert request.partition_key is None
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-02|demo-shop"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-03|demo-shop"
    assert request.tags["keybimp/integration"] == "demo-shop"  # the one-run-per-integration limit (dagster.yaml)
    # each day's high-water mark is in the run key: a later change to either day makes a new run
    assert request.run_key == "demo-shop|2026-11-02..2026-11-03|2026-11-02T09:30:00+00:00,2026-11-03T10:05:00+00:00"
    assert data.cursor.startswith("2026-11-03T10:05:00")


def test_R_ORCH_3_days_apart_get_runs_of_their_own_and_a_lone_day_a_partition_run():
    from keybimp_pipeline.defs.sensors import run_requests

    hw = {d: datetime.fromisoformat(f"{d}T12:00:00+00:00") for d in ("2026-11-01", "2026-11-02", "2026-11-05")}
    first, lone = run_requests("demo-shop", hw)
    assert (first.tags["dagster/asset_partition_range_start"], first.tags["dagster/asset_partition_range_end"]) \
        == ("2026-11-01|demo-shop", "2026-11-02|demo-shop")
    assert lone.partition_key == dg.MultiPartitionKey({"date": "2026-11-05", "integration": "demo-shop"})
    assert lone.run_key == "demo-shop|2026-11-05|2026-11-05T12:00:00+00:00"
    assert "dagster/asset_partition_range_start" not in lone.tags


RANGE_KEYS = {f"2026-11-0{d}|demo-shop" for d in (1, 2, 3)}


def test_R_ORCH_2_a_range_is_one_run_and_every_partition_of_it_materialises(definitions, shop: Shop):
    from keybimp_pipeline.defs.partitions import range_tags

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*definitions.ORDER_ASSETS, *definitions.ORDER_CHECKS], instance=instance,
            tags=range_tags("demo-shop", "2026-11-01", "2026-11-03"),
            resources={"keybimp": Keybimp(config_path=str(shop.config_path), data_dir=str(shop.tmp))})
        assert result.success
        assert len(instance.get_runs()) == 1
        for asset in ORDER_ASSET_KEYS:
            assert set(instance.get_materialized_partitions(dg.AssetKey(asset))) == RANGE_KEYS, asset
        raw = result.asset_materializations_for_node("keycrm_orders_raw")[0].metadata
        assert (raw["orders_stored"].value, raw["days"].value, raw["listings"].value) == (4, 3, 1)
        assert raw["keycrm_requests"].value == 1  # the three days in one listing
        orders = result.asset_materializations_for_node("bimp_customer_orders")[0].metadata
        assert orders["orders_created"].value == 4
        # each check evaluated once per partition, against that partition
        evaluations = [e for e in result.get_asset_check_evaluations() if e.partition is not None]
        by_check = {}
        for e in evaluations:
            by_check.setdefault(e.check_name, set()).add(e.partition)
        assert by_check == {"pandera_schema": RANGE_KEYS, "reconciles_with_keycrm": RANGE_KEYS}
        assert all(e.passed for e in evaluations)
    assert sorted(shop.orders()) == [1, 2, 3, 4]


def test_R_ORCH_2_keybimp_sync_of_a_range_is_one_run_recorded_in_the_instance(definitions, shop: Shop, tmp_path,
                                                                              monkeypatch, capsys):
    from keybimp_pipeline import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert cli.main(["sync", "demo-shop", "--from", "2026-11-01", "--to", "2026-11-03"]) == 0
    printed = capsys.readouterr()
    assert "2026-11-01..2026-11-03 (3 days): ok" in printed.out
    # a new integration is paused (R-CONN-5): said once, after the summary, not before every command
    lines = printed.out.splitlines()
    assert lines[-1] == ("demo-shop's automations are paused (new integrations start so): its sensor and "
                         "schedules skip until `keybimp start demo-shop`")
    assert sum("paused" in line for line in lines) == 1 and "paused" not in printed.err
    assert lines[-2].startswith("written to Bimp this run: ") and lines[-2] != "written to Bimp this run: 0"
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        assert run.is_success and run.tags["keybimp/trigger"] == "cli"
        # a run of the code location's own job, naming it as workspace.yaml loads it: the UI can re-execute it
        import yaml

        [workspace] = yaml.safe_load((Path(__file__).resolve().parents[2] / "workspace.yaml").read_text())["load_from"]
        origin = run.remote_job_origin.repository_origin
        assert (run.job_name, origin.code_location_origin.location_name, origin.repository_name) == (
            "sync_orders", workspace["python_module"]["location_name"], "__repository__")
        # what the UI's Partitions tab reads: every day of the range materialised, none failed
        for asset in ("keycrm_orders_raw", "bimp_customer_orders", "sync_issues"):
            assert set(instance.get_materialized_partitions(dg.AssetKey(asset))) == RANGE_KEYS
        status = instance.get_status_by_partition(
            dg.AssetKey("keycrm_orders_raw"), sorted(RANGE_KEYS), definitions.ORDERS_PARTITIONS)
        assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
    assert sorted(shop.orders()) == [1, 2, 3, 4]
    # R-CONN-3: the run logged into the Bimp company, so the key is now bound to it
    assert [(e["integration"], e["company"]) for e in control.read_registry()] == [("demo-shop", "000001398")]

    assert cli.main(["start", "demo-shop"]) == 0
    capsys.readouterr()
    assert cli.main(["sync", "demo-shop", "--from", "2026-11-01", "--to", "2026-11-03"]) == 0
    again = capsys.readouterr()
    assert again.out.splitlines()[-1] == "written to Bimp this run: 0"  # R-ORCH-6; started: no paused line
    assert "paused" not in again.out + again.err


@pytest.mark.parametrize("target", [["-w", "workspace.yaml"], ["-m", "keybimp_pipeline.definitions"]],
                         ids=["workspace.yaml", "module"])
def test_code_location_loads_as_dagster_dev_loads_it(target, tmp_path):
    """`make ui` (dagster dev -w workspace.yaml) and a bare `-m` load find exactly one Definitions: a second one
    at module scope once left the UI empty while every in-process test passed."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path),
           "KEYBIMP_CONFIG": str(repo / "integrations.example.yaml"), "KEYBIMP_DATA": str(tmp_path / "data")}
    (tmp_path / "dagster.yaml").write_text("")
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run([str(dagster), "definitions", "validate", *target], check=False, cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "All code locations passed validation" in done.stdout + done.stderr
