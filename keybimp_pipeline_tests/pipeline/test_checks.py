"""Asset checks (R-ORCH-4 pandera quarantine, reconciliation with KeyCRM and the ledger) and a partition that
fails in an API outage and succeeds on re-run, all through the real Dagster materialisation on the emulators."""

from __future__ import annotations

import copy
import sqlite3
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from keybimp_pipeline.defs.checks import build_order_checks, reconcile, reconciliation_frame
from keybimp_pipeline.defs.orders import build_order_assets
from keybimp_pipeline.defs.partitions import key, orders_partitions
from keybimp_pipeline.defs.resources import Keybimp
from keybimp_pipeline.emulators.demo_shop import (
    DEMO_BIMP_EMAIL,
    DEMO_BIMP_PASSWORD,
    DEMO_KEYCRM_KEY,
    generate_demo,
)
from keybimp_pipeline.settings import load_settings
from keybimp_pipeline_tests.pipeline.harness import write_config

DAY = date(2026, 11, 30)
DEMO = generate_demo(orders=16, days=2, end=DAY)


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch):
    """A small demo shop on both emulators (fresh state), its integrations file and a Dagster instance."""
    keycrm, bimp = emulators
    for server in (keycrm, bimp):
        server.post("/__admin/faults", {})
    keycrm.put_state(copy.deepcopy(DEMO["keycrm"]))
    bimp.put_state(copy.deepcopy(DEMO["bimp"]))
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP", DEMO_KEYCRM_KEY)
    monkeypatch.setenv("BIMP_EMAIL", DEMO_BIMP_EMAIL)
    monkeypatch.setenv("BIMP_PASSWORD", DEMO_BIMP_PASSWORD)
    monkeypatch.setenv("KEYBIMP_DATA", str(tmp_path))
    config = write_config(tmp_path / "integrations.yaml", keycrm.url, bimp.url)
    partitions = orders_partitions(load_settings(config))
    shop = Shop(keycrm, bimp, config, tmp_path, partitions)
    yield shop
    for server in (keycrm, bimp):
        server.post("/__admin/faults", {})


class Shop:
    def __init__(self, keycrm, bimp, config, data_dir, partitions):
        self.keycrm, self.bimp, self.config, self.data_dir = keycrm, bimp, config, data_dir
        self.partitions = partitions
        self.assets = build_order_assets(partitions)
        self.checks = build_order_checks(partitions)
        self.instance = dg.DagsterInstance.ephemeral()

    def materialize(self, day: date = DAY, selection=None) -> dg.ExecuteInJobResult:
        return dg.materialize(
            [*self.assets, *self.checks], partition_key=key("demo-shop", day), instance=self.instance,
            resources={"keybimp": Keybimp(config_path=str(self.config), data_dir=str(self.data_dir))},
            selection=selection, raise_on_error=False)

    def checks_of(self, result: dg.ExecuteInJobResult) -> dict[str, dg.AssetCheckEvaluation]:
        return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}

    def ledger(self) -> sqlite3.Connection:
        return sqlite3.connect(self.data_dir / "demo-shop.ledger.sqlite")


def _orders_of_day(state: dict, day: date) -> list[dict]:
    """The orders of the shop's (Europe/Kyiv) calendar day, by the moment the pipeline partitions on."""
    kyiv = ZoneInfo("Europe/Kyiv")

    def local_day(order: dict) -> date:
        moment = order.get("ordered_at") or order["created_at"]
        return datetime.fromisoformat(moment).astimezone(kyiv).date()

    return [o for o in state["orders"] if local_day(o) == day]


def test_R_ORCH_4_R_ORCH_6_checks_pass_on_a_clean_day_and_reconciliation_catches_drift(shop):
    """Clean day: every check passes and every transferred order reconciles.  Then a Bimp total edited by
    hand and a ledger row lost are both reported by the reconciliation check (ERROR), order by order."""
    result = shop.materialize()
    assert result.success
    checks = shop.checks_of(result)
    assert set(checks) == {"staged_orders:pandera_schema", "staged_order_lines:pandera_schema",
                           "staged_payments:pandera_schema", "bimp_customer_orders:reconciles_with_keycrm"}
    for name in ("staged_orders", "staged_order_lines", "staged_payments"):
        check = checks[f"{name}:pandera_schema"]
        assert check.passed, name
        assert check.metadata["failure_count"].value == 0
    rec = checks["bimp_customer_orders:reconciles_with_keycrm"]
    assert rec.passed, rec.metadata["problems"].value
    meta = {k: v.value for k, v in rec.metadata.items()}
    done = shop.ledger().execute("SELECT COUNT(*) FROM ledger WHERE entity='customer_order' AND state='done'"
                                 ).fetchone()[0]
    assert done > 0
    assert meta["orders_staged"] == meta["orders_held_by_sync_issues"] + meta["orders_expected_in_ledger"]
    assert meta["orders_expected_in_ledger"] == done  # only this day was synced
    assert meta["totals_compared"] == done - meta["partial_orders_not_compared"]
    assert meta["missing_from_ledger"] == meta["pending_in_ledger"] == meta["totals_differ"] == 0
    # the materialisations a person reads instead of querying DuckDB
    mats = {e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert mats["staged_orders"]["rows"].value == meta["orders_staged"]
    assert mats["bimp_customer_orders"]["orders_created"].value == done
    assert mats["bimp_customer_orders"]["orders_rejected"].value == meta["orders_held_by_sync_issues"]
    assert "| order | code |" in mats["sync_issues"]["first_issues"].value or \
        mats["sync_issues"]["open_issues"].value == 0

    # then someone edits a customer order in Bimp by hand and an order's ledger row is lost
    ledger = shop.ledger()
    rows = ledger.execute("SELECT crm_id, bimp_uuid FROM ledger WHERE entity='customer_order' AND state='done' "
                          "ORDER BY CAST(crm_id AS INTEGER)").fetchall()
    (tampered_id, tampered_uuid), (lost_id, _) = rows[0], rows[1]
    state = shop.bimp.state()
    found = 0
    for company in state["companies"]:
        for order in company.get("customerOrders", []):
            if order["uuid"] == tampered_uuid:
                order["products"][0]["amount"] = float(order["products"][0]["amount"]) + 1
                found += 1
    assert found == 1
    shop.bimp.put_state(state)
    ledger.execute("DELETE FROM ledger WHERE entity='customer_order' AND crm_id=?", [lost_id])
    ledger.commit()

    # the check's own code, without re-running the asset (which would write the lost order again)
    keybimp = Keybimp(config_path=str(shop.config), data_dir=str(shop.data_dir))
    with keybimp.bimp("demo-shop") as bimp:
        check = reconcile(reconciliation_frame(keybimp.store("demo-shop"), DAY), bimp)
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["totals_differ"].value == 1
    assert check.metadata["missing_from_ledger"].value == 1
    problems = check.metadata["problems"].value
    row = next(line for line in problems.splitlines() if line.startswith(f"| {tampered_id} |"))
    _, _, keycrm_total, bimp_total, problem, _ = row.split("|")
    assert Decimal(bimp_total) - Decimal(keycrm_total) == Decimal("1.00")
    assert "Bimp total differs" in problem
    assert f"| {lost_id} |" in problems and "no ledger row" in problems


def test_R_ORCH_4_pandera_check_warns_with_count_and_sample_of_quarantined_rows(shop):
    state = copy.deepcopy(DEMO["keycrm"])
    day_orders = _orders_of_day(state, DAY)
    bad_line, bad_total = day_orders[0], day_orders[1]
    bad_line["products"][0]["quantity"] = 0            # STAGED_LINES: quantity > 0
    bad_total["grand_total"] = -10                      # STAGED_ORDERS: grand_total_kop >= 0
    shop.keycrm.put_state(state)
    result = shop.materialize(selection=dg.AssetSelection.assets(  # up to the staged tables and their checks
        "keycrm_orders_raw", "reference_data", "staged_orders", "staged_order_lines", "staged_buyers",
        "staged_payments"))
    assert result.success  # quarantine is not a pipeline fault (R-ORCH-5)
    checks = shop.checks_of(result)
    assert set(checks) == {"staged_orders:pandera_schema", "staged_order_lines:pandera_schema",
                           "staged_payments:pandera_schema"}
    lines = checks["staged_order_lines:pandera_schema"]
    orders = checks["staged_orders:pandera_schema"]
    for check, order_id, reason in ((lines, bad_line["id"], "quantity"), (orders, bad_total["id"], "grand_total_kop")):
        assert not check.passed
        assert check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["failure_count"].value == 1
        assert check.metadata["orders_quarantined"].value == 1
        sample = check.metadata["sample"].value
        assert str(order_id) in sample and reason in sample
    assert checks["staged_payments:pandera_schema"].passed
    staged = {e.asset_key.to_user_string(): e.materialization.metadata
              for e in result.get_asset_materialization_events()}["staged_orders"]
    assert staged["quarantined_orders"].value == 2
    assert staged["rows"].value == len(day_orders) - 2
    # a quarantined order is held back by no sync issue, so reconciliation must not expect it in the ledger
    frame = reconciliation_frame(Keybimp(config_path=str(shop.config), data_dir=str(shop.data_dir))
                                 .store("demo-shop"), DAY)
    assert not {bad_line["id"], bad_total["id"]} & set(frame["order_id"])


def test_R_ORCH_2_partition_failed_in_an_api_outage_is_failed_then_succeeds_on_rerun(shop):
    pk = key("demo-shop", DAY)
    outage = {"fail_ratio": 1.0, "fail_status": 503, "retry_after_s": 0}
    shop.keycrm.post("/__admin/faults", outage)
    shop.bimp.post("/__admin/faults", outage)
    failed = shop.materialize()
    assert not failed.success
    status = shop.instance.get_status_by_partition(dg.AssetKey("keycrm_orders_raw"), [pk], shop.partitions)
    assert status == {pk: dg.AssetPartitionStatus.FAILED}
    # the outage ends; the same partition is re-run (the UI's "re-execute" / backfill of failed partitions)
    shop.keycrm.post("/__admin/faults", {})
    shop.bimp.post("/__admin/faults", {})
    again = shop.materialize()
    assert again.success
    for asset in ("keycrm_orders_raw", "bimp_customer_orders", "sync_issues"):
        status = shop.instance.get_status_by_partition(dg.AssetKey(asset), [pk], shop.partitions)
        assert status == {pk: dg.AssetPartitionStatus.MATERIALIZED}, asset
    assert shop.checks_of(again)["bimp_customer_orders:reconciles_with_keycrm"].passed


def test_loaded_definitions_carry_the_checks_and_a_freshness_policy_on_every_asset(tmp_path, monkeypatch):
    """Freshness is applied once in definitions.py: an integration that stopped syncing shows stale assets."""
    import importlib

    monkeypatch.setenv("KEYBIMP_DATA", str(tmp_path))
    monkeypatch.delenv("KEYBIMP_CONFIG", raising=False)
    definitions = importlib.import_module("keybimp_pipeline.definitions")
    graph = definitions.defs.resolve_asset_graph()
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert {"staged_orders:pandera_schema", "staged_order_lines:pandera_schema", "staged_payments:pandera_schema",
            "bimp_customer_orders:reconciles_with_keycrm"} <= checks
    for asset_key in graph.get_all_asset_keys():
        node = graph.get(asset_key)
        assert node.freshness_policy is not None, asset_key
        assert node.group_name in {"keycrm_raw", "reference", "staged", "matched", "bimp_documents",
                                   "keycrm_uploads"}, asset_key
    raw = graph.get(dg.AssetKey("keycrm_orders_raw"))
    assert raw.freshness_policy.fail_window.to_timedelta().total_seconds() == 24 * 3600
    assert {"keycrm", "duckdb"} <= set(raw.kinds)
