"""Concurrency: runs that overlap never duplicate a write and never fail on a DuckDB lock.

Real `keybimp sync` processes side by side on one KEYBIMP_DATA and one DAGSTER_HOME, as a backfill and the
sensor's runs would share them: a backfill over two days while its last day runs as the sensor's run (two
runs of one partition at once, and a backfill overlapping the sensor), then the two demo shops (two
integrations, one Bimp company) at once.  The DuckDB file is only ever opened under its file lock and the vendor writes of an
integration under its writer lock (storage/db.py), so every process finishes and the Bimp state equals a
sequential run's.
"""

from __future__ import annotations

import copy

import pytest

from keybimp_pipeline.clients.keycrm import reset_shared_limiters
from keybimp_pipeline.emulators.demo_shop import (
    DEMO_BIMP_EMAIL,
    DEMO_BIMP_PASSWORD,
    DEMO_KEYCRM_KEY,
    DEMO_KEYCRM_KEY_2,
    generate_demo,
)
from keybimp_pipeline_tests.pipeline import reliability as R
from keybimp_pipeline_tests.pipeline.harness import Harness

LOCK_ERRORS = ("Could not set lock", "database is locked", "Conflicting lock", "IO Error", "Timeout",
               "Traceback", "FAILED")


@pytest.fixture
def world(emulators):
    return R.cli_world(emulators)


def _env(monkeypatch, data) -> None:
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP", DEMO_KEYCRM_KEY)
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP_2", DEMO_KEYCRM_KEY_2)
    monkeypatch.setenv("BIMP_EMAIL", DEMO_BIMP_EMAIL)
    monkeypatch.setenv("BIMP_PASSWORD", DEMO_BIMP_PASSWORD)
    monkeypatch.setenv("KEYBIMP_DATA", str(data))
    data.mkdir(parents=True, exist_ok=True)
    reset_shared_limiters()


def _run_together(world: R.CliWorld, runs: list[tuple[list[str], str]], env: dict, tmp_path) -> list[str]:
    pids = [(world.runner.start(argv, tmp_path / f"{tag}.log", env), tag) for argv, tag in runs]
    outputs = []
    for pid, tag in pids:
        rc = world.runner.wait(pid)
        text = (tmp_path / f"{tag}.log").read_text()
        assert rc == 0, f"{tag} exited {rc}:\n{text[-3000:]}"
        outputs.append(text)
    return outputs


def test_R_ORCH_2_same_partition_twice_at_once_and_an_overlapping_backfill(world, tmp_path, monkeypatch):
    keycrm, bimp = R.small_shop(12, days=2, end=R.date(2026, 11, 3))
    days = R.shop_days(keycrm)[:2]
    keycrm["orders"] = [o for o in keycrm["orders"] if R.shop_days({"orders": [o]})[0] in days]

    _env(monkeypatch, tmp_path / "sequential")
    world.load(keycrm, bimp)
    h = Harness(world.config, tmp_path / "sequential", world.keycrm, world.bimp)
    for day in days:
        h.sync_day(day)
    reference = R.canonical(world.company())

    world.load(keycrm, bimp)
    env = world.env("concurrent")
    # the backfill's last day is the sensor's partition: two runs of one partition at once, overlapping
    outputs = _run_together(world, [(R.sync_argv(days[0], days[-1]), "backfill"),
                                    (R.sync_argv(days[-1], days[-1]), "sensor-run")], env, tmp_path)
    for text in outputs:
        assert not [e for e in LOCK_ERRORS if e in text], text[-3000:]
    company = world.company()
    assert R.duplicates(company, bimp["companies"][0]) == {}
    differences = R.diff(reference, R.canonical(company))
    assert differences == [], "\n".join(differences)
    assert R.pending_ledger_rows(world.dir / "concurrent" / "data") == 0


def test_R_CONN_4_two_integrations_at_once_into_one_bimp_company(world, tmp_path, monkeypatch):
    demo = copy.deepcopy(generate_demo(orders=12, days=1, end=R.date(2026, 11, 2), shops=2))
    (k1, k2), bimp = demo["keycrm"], demo["bimp"]
    day = "2026-11-02"
    for state in (k1, k2):
        state["orders"] = [o for o in state["orders"] if R.shop_days({"orders": [o]}) == [day]]
    assert k1["orders"] and k2["orders"]

    _env(monkeypatch, tmp_path / "sequential")
    world.load(k1, bimp, k2)
    for name, server in ((R.NAME, world.keycrm), (R.NAME + "-2", world.keycrm2)):
        Harness(world.config, tmp_path / "sequential", server, world.bimp, name=name).sync_day(day)
    reference = world.company()

    world.load(k1, bimp, k2)
    env = world.env("two-shops")
    outputs = _run_together(world, [(R.sync_argv(day, day), "shop-1"),
                                    (R.sync_argv(day, day, R.NAME + "-2"), "shop-2")], env, tmp_path)
    for text in outputs:
        assert not [e for e in LOCK_ERRORS if e in text], text[-3000:]
    company = world.company()
    assert R.duplicates(company, bimp["companies"][0]) == {}
    # both shops' documents all there, as in the sequential run (stock taken by one shop's reserve may
    # differ with the interleaving, so the documents are compared by number and buyer, not reserve)
    keys, ref_keys = R.natural_keys(company), R.natural_keys(reference)
    assert {c: len(k) for c, k in keys.items()} == {c: len(k) for c, k in ref_keys.items()}
    for collection in keys:
        assert sorted(keys[collection]) == sorted(ref_keys[collection]), collection
    for pending in (R.pending_ledger_rows(world.dir / "two-shops" / "data", n) for n in (R.NAME, R.NAME + "-2")):
        assert pending == 0
