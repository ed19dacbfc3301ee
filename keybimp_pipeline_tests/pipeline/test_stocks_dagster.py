"""The stock assets in Dagster: the blocking migration guard (R-STOCK-7) and the upload schedules (R-STOCK-1,
R-PRICE-1, R-ORCH-3)."""

from __future__ import annotations

import dagster as dg

from keybimp_pipeline import control
from keybimp_pipeline.defs.resources import Keybimp
from keybimp_pipeline.defs.uploads import STOCK_ASSETS, build_upload_assets, build_upload_schedules, cron_for
from keybimp_pipeline.settings import load_settings
from keybimp_pipeline_tests.pipeline import uploads_scenario
from keybimp_pipeline_tests.pipeline.uploads_scenario import Item

make_shop = uploads_scenario.make_shop  # the fixture


def _materialize(shop, tmp_path, confirm: bool | None):
    assets, checks = build_upload_assets(dg.StaticPartitionsDefinition(["demo-shop"]))
    run_config = {} if confirm is None else {"ops": {"stock_upload_plan": {"config": {"confirm": confirm}}}}
    return dg.materialize(assets + checks, selection=STOCK_ASSETS, partition_key="demo-shop",
                          resources={"keybimp": Keybimp(config_path=str(shop.config), data_dir=str(tmp_path))},
                          run_config=run_config, raise_on_error=False, instance=dg.DagsterInstance.ephemeral())


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def _check(result) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e.event_specific_data for e in result.all_events
                     if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return evaluation


def test_R_STOCK_7_blocking_check_stops_the_upload_asset_until_run_config_confirm_true(make_shop, tmp_path):
    shop = make_shop([Item("A-1", bimp={"main": 5}, reserved={"main": 1}, crm={1: 2}),
                      Item("B-2", bimp={"kyiv": 3}, crm={2: 0})])
    blocked = _materialize(shop, tmp_path, confirm=None)
    assert _materialized(blocked) == {"bimp_stock_snapshot", "keycrm_stock_snapshot", "stock_upload_plan"}
    check = _check(blocked)
    assert check.passed is False and "first stock upload" in check.metadata["reasons"].value
    plan_meta = next(e for e in blocked.get_asset_materialization_events()
                     if e.asset_key.to_user_string() == "stock_upload_plan").materialization.metadata
    assert plan_meta["blocked"].value is True and plan_meta["changes"].value == 2
    assert "| A-1 | 1 | 2 | 4 |" in plan_meta["preview"].value  # free stock 5 - 1 reserved
    assert shop.puts() == 0 and shop.crm_stock()[("A-1", 1)] == 2

    confirmed = _materialize(shop, tmp_path, confirm=True)
    assert confirmed.success and "keycrm_stock_upload" in _materialized(confirmed)
    assert _check(confirmed).passed is True
    upload = next(e for e in confirmed.get_asset_materialization_events()
                  if e.asset_key.to_user_string() == "keycrm_stock_upload").materialization.metadata
    assert upload["requests"].value == upload["request_floor"].value == 2 and shop.puts() == 2
    assert shop.crm_stock()[("A-1", 1)] == 4 and shop.crm_stock()[("B-2", 2)] == 3

    shop.reset_requests()
    again = _materialize(shop, tmp_path, confirm=None)  # not the first any more: passes, sends nothing
    assert again.success and "keycrm_stock_upload" in _materialized(again) and shop.puts() == 0


def _schedules(config_path):
    settings = load_settings(config_path)
    job = dg.define_asset_job("j", selection=STOCK_ASSETS)
    return {s.name: s for s in build_upload_schedules(settings, job, job)}


def _tick(schedule):
    """The schedule's own verdict for a tick (direct invocation: a RunRequest or a SkipReason)."""
    return schedule(dg.build_schedule_context())


def test_R_ORCH_3_schedules_skip_while_paused_and_request_the_integration_partition_when_started(make_shop):
    shop = make_shop([Item("A-1", bimp={"main": 1})])
    schedules = _schedules(shop.config)
    assert set(schedules) == {"stocks_demo_shop", "prices_demo_shop"}
    assert schedules["stocks_demo_shop"].cron_schedule == "*/15 * * * *"  # R-STOCK-1 default 15 min
    assert schedules["prices_demo_shop"].cron_schedule == "0 * * * *"  # R-PRICE-1 default 60 min
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in schedules.values())

    control.set_paused("demo-shop", True)
    for schedule in schedules.values():
        skip = _tick(schedule)
        assert isinstance(skip, dg.SkipReason) and "paused" in skip.skip_message

    control.set_paused("demo-shop", False)
    for schedule in schedules.values():
        request = _tick(schedule)
        assert isinstance(request, dg.RunRequest)
        assert request.partition_key == "demo-shop" and request.tags["keybimp/integration"] == "demo-shop"


def test_R_STOCK_1_R_PRICE_1_disabled_upload_skips_and_every_minutes_sets_the_cron(make_shop, tmp_path):
    shop = make_shop([Item("A-1", bimp={"main": 1})],
                     {"stocks": {"enabled": False, "every_minutes": 5}, "prices": {"every_minutes": 180}})
    control.set_paused("demo-shop", False)
    schedules = _schedules(shop.config)
    assert schedules["stocks_demo_shop"].cron_schedule == "*/5 * * * *"
    assert schedules["prices_demo_shop"].cron_schedule == "0 */3 * * *"
    skip = _tick(schedules["stocks_demo_shop"])
    assert isinstance(skip, dg.SkipReason) and "stocks.enabled is false" in skip.skip_message
    assert isinstance(_tick(schedules["prices_demo_shop"]), dg.RunRequest)
    assert (cron_for(15), cron_for(60), cron_for(90)) == ("*/15 * * * *", "0 * * * *", "0 * * * *")
