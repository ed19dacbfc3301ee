"""A failed `keybimp sync|stocks|prices` as the shop owner sees it: one line per problem naming what failed, the
URL (never a secret) and what to do, a pointer to the run, exit code 1 -- no Dagster log with stack traces (that
is `--verbose`), no summary table that looks like a good day's.  Ctrl-C is one line and exit code 130.

Real `keybimp` processes on the session's emulators (the warm CLI parent of reliability.py); each failure is
made the way a user meets it: a wrong password, a service that is down, a Bimp 400, an interrupt.
"""

from __future__ import annotations

import signal

import pytest

from keybimp_pipeline_tests.pipeline import reliability as R
from keybimp_pipeline_tests.servers import free_port

DAY = "2026-11-02"
WRONG_PASSWORD = "kbWrongPassw0rd-for-the-failure-test"
SUMMARY = "== demo-shop: totals"


@pytest.fixture
def world(emulators):
    world = R.cli_world(emulators)
    world.load(*R.small_shop(12, days=1, end=R.date(2026, 11, 2), only_day=DAY))
    return world


def _run(world, tmp_path, tag: str, argv: list[str], **env) -> tuple[int, list[str]]:
    log = tmp_path / f"{tag}.log"
    rc = world.runner.run(argv, log, {**world.env(tag), **env})
    lines = [line for line in log.read_text().splitlines() if not line.startswith("note: ")]
    return rc, lines


def _quiet(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert "Traceback" not in text and " - dagster - " not in text and "STEP_FAILURE" not in text
    assert SUMMARY not in text


def test_a_wrong_bimp_password_is_one_line_naming_the_url_and_the_variables(world, tmp_path):
    rc, lines = _run(world, tmp_path, "wrong-pw", R.sync_argv(DAY, DAY), BIMP_PASSWORD=WRONG_PASSWORD)
    assert rc == 1
    _quiet(lines)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"demo-shop: Bimp at {world.bimp.url} refused the login in BIMP_EMAIL/BIMP_PASSWORD "
                               "or company '000001398': ")
    assert "(step reference_data). Check both variables and bimp.company; `keybimp check demo-shop`" in lines[0]
    assert lines[1].startswith(f"sync of {DAY} FAILED: run ") and "--verbose" in lines[1]
    assert WRONG_PASSWORD not in "\n".join(lines)


def test_a_service_that_is_down_is_named_with_its_url_for_sync_stocks_and_prices(world, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = R.cli_config(tmp_path / "down.yaml", world.keycrm.url, down)
    for command, what in (("sync", f"sync of {DAY}"), ("stocks", "stock upload"), ("prices", "price upload")):
        argv = R.sync_argv(DAY, DAY) if command == "sync" else [command, "demo-shop"]
        rc, lines = _run(world, tmp_path, f"down-{command}", argv, KEYBIMP_CONFIG=str(config))
        assert rc == 1, (command, lines)
        _quiet(lines)
        assert len(lines) == 2, lines
        assert lines[0].startswith(f"demo-shop: Bimp at {down} did not answer (transport error: ConnectError) "
                                   "(step "), lines
        assert lines[0].endswith("Is it running and is bimp.url right? Then run again; `keybimp check demo-shop` "
                                 "tests the connection")
        assert "HTTP None" not in lines[0]
        assert lines[1].startswith(f"{what} FAILED: run ")


def test_a_bimp_400_names_the_endpoint_and_verbose_shows_dagsters_log(world, tmp_path):
    fault = {"fail_next": [{"path": "/org2/organization/api-readList", "status": 400, "times": 50}]}
    world.bimp.post("/__admin/faults", fault)
    try:
        rc, lines = _run(world, tmp_path, "bimp-400", R.sync_argv(DAY, DAY))
        assert rc == 1
        _quiet(lines)
        assert lines[0].startswith(f"demo-shop: Bimp at {world.bimp.url} refused /org2/organization/api-readList: ")
        assert "(step reference_data). `keybimp check demo-shop` tests the connection" in lines[0]
        world.bimp.post("/__admin/faults", fault)
        rc, lines = _run(world, tmp_path, "bimp-400-verbose", [*R.sync_argv(DAY, DAY), "--verbose"])
        assert rc == 1
        assert any("STEP_FAILURE" in line for line in lines)  # Dagster's own log, on request
    finally:
        world.bimp.post("/__admin/faults", {})


def test_ctrl_c_is_one_line_and_exit_code_130(world, tmp_path):
    world.bimp.post("/__admin/faults", {"latency_ms": 300})  # a run slow enough to interrupt mid-way
    try:
        log = tmp_path / "ctrl-c.log"
        # the emulator counts requests since it started (a state load keeps the count): this run's first write
        # is one more than now, else an earlier test's writes would send Ctrl-C before the run began
        base = R.bimp_writes(world.bimp)
        pid = world.runner.start(R.sync_argv(DAY, DAY), log, world.env("ctrl-c"))
        assert R.wait_for_writes(world.bimp, base + 1, world.runner, pid), log.read_text()
        import os

        # a terminal's Ctrl-C: SIGINT to the command's whole process group (the helpers Dagster starts too)
        os.killpg(pid, signal.SIGINT)
        rc = world.runner.wait(pid, timeout=120)
        assert rc == 130, log.read_text()
    finally:
        world.bimp.post("/__admin/faults", {})
    lines = [line for line in log.read_text().splitlines() if not line.startswith("note: ")]
    _quiet(lines)
    assert lines == [("keybimp sync: interrupted (Ctrl-C). What was written is in the write ledger; running the "
                      "command again goes on from there")]



REEXECUTE = """
import json, sys
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.execution.api import execute_run
from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

# what the UI's Re-execute all (*) does (dagster_graphql's launch_reexecution_from_parent_run): the job found in
# the workspace by the failed run's origin, a re-executed run created from the parent with the parent's tags;
# then run here, as the instance's run launcher would run it
with dg.DagsterInstance.get() as instance:
    [failed] = instance.get_runs()
    origin = failed.remote_job_origin
    with WorkspaceProcessContext(instance, WorkspaceFileTarget([sys.argv[2]])) as workspace:
        context = workspace.create_request_context()
        location = context.get_code_location(origin.repository_origin.code_location_origin.location_name)
        remote_job = location.get_job(JobSubsetSelector(
            location_name=location.name, repository_name=origin.repository_origin.repository_name,
            job_name=failed.job_name, op_selection=None, asset_selection=failed.asset_selection,
            asset_check_selection=failed.asset_check_selection))
        run = instance.create_reexecuted_run(request_context=context, parent_run=failed, code_location=location,
                                             remote_job=remote_job, strategy=ReexecutionStrategy.ALL_STEPS,
                                             use_parent_run_tags=True)
    job = ReconstructableRepository.for_module("keybimp_pipeline.definitions", "defs").get_reconstructable_job(
        run.job_name)
    result = execute_run(job, run, instance)
    status = instance.get_status_by_partition(dg.AssetKey("bimp_customer_orders"), [sys.argv[1]],
                                              job.get_definition().partitions_def)
    print(json.dumps({"failed": [failed.run_id, failed.job_name, failed.status.value, dict(failed.tags)],
                      "success": result.success, "errors": [
                          f"{e.step_key}: {e.step_failure_data.error.message}" for e in result.all_events
                          if e.is_step_failure][:3] + [e.message for e in result.all_events if e.is_failure][:3],
                      "parent": instance.get_run_by_id(result.run_id).parent_run_id,
                      "tags": dict(instance.get_run_by_id(result.run_id).tags),
                      "bimp_customer_orders": {k: v.value for k, v in (status or {}).items()}}))
"""


def test_a_sync_that_failed_in_an_outage_is_a_sync_orders_run_the_ui_re_executes(world, tmp_path):
    """#9: a day `keybimp sync` failed (KeyCRM down) is re-run from its failed run's page, as the UI's Re-execute
    does it: possible because the run is one of the code location's own `sync_orders` job and names the code
    location workspace.yaml loads as its origin (the UI refuses a run without one, as `execute_in_process` and
    `materialize` record them)."""
    import json
    import os
    import subprocess
    import sys

    world.keycrm.post("/__admin/faults", {"fail_ratio": 1.0, "fail_status": 503, "retry_after_s": 0,
                                          "requests_per_minute": 100_000})
    try:
        rc, lines = _run(world, tmp_path, "outage", R.sync_argv(DAY, DAY))
    finally:
        world.keycrm.post("/__admin/faults", {"requests_per_minute": 100_000})
    assert rc == 1 and lines[-1].startswith(f"sync of {DAY} FAILED: run "), lines

    partition = f"{DAY}|demo-shop"
    done = subprocess.run([sys.executable, "-c", REEXECUTE, partition, str(R.ROOT / "workspace.yaml")],
                          env={**os.environ, **world.env("outage")},
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    failed_id, job_name, status, tags = out["failed"]
    assert (job_name, status, tags["dagster/partition"], tags["keybimp/trigger"]) == (
        "sync_orders", "FAILURE", partition, "cli")
    assert out["success"] is True, out["errors"]
    assert (out["parent"], out["tags"]["dagster/partition"]) == (failed_id, partition)
    assert out["bimp_customer_orders"] == {partition: "MATERIALIZED"}
