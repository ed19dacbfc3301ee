"""The Dagster wiring (R-ORCH-1..3, R-CONN-5): definitions, one real materialisation, the order sensor.

`keybimp_pipeline.definitions` reads the integrations file named by $KEYBIMP_CONFIG when it is imported,
so the test sets it first and (re)loads the module.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

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

    requests = {r.partition_key: r for r in data.run_requests}
    assert set(requests) == {dg.MultiPartitionKey({"date": "2026-11-02", "integration": "demo-shop"}),
                             dg.MultiPartitionKey({"date": "2026-11-03", "integration": "demo-shop"})}
    for request in requests.values():
        assert isinstance(request.partition_key, dg.MultiPartitionKey)
        assert request.tags["keybimp/integration"] == "demo-shop"
    by_day = {r.partition_key.keys_by_dimension["date"]: r.run_key for r in data.run_requests}
    assert "2026-11-02T09:30:00" in by_day["2026-11-02"]  # the day's high-water mark
    assert "2026-11-03T10:05:00" in by_day["2026-11-03"]
    assert data.cursor.startswith("2026-11-03T10:05:00")
