"""Crashes (R-ORCH-6): `keybimp sync` SIGKILLed at random moments, then re-run, ends in the same Bimp state as
an uninterrupted run, with no duplicate counterparty, contract, item or document.

The kills land right after Bimp served the k-th write (k drawn at random from the writes an uninterrupted run
makes): the moment between the vendor's acknowledgement and the ledger's `done` is the dangerous one, and a
kill by wall-clock delay would mostly land in Dagster's start-up.  benchmarks/soak.py does 20 kills on a
larger shop, by write count and by random delay, with `python -m keybimp_pipeline.cli` started afresh.
"""

from __future__ import annotations

import random

import pytest

from keybimp_pipeline.clients.keycrm import reset_shared_limiters
from keybimp_pipeline.emulators.demo_shop import DEMO_BIMP_EMAIL, DEMO_BIMP_PASSWORD, DEMO_KEYCRM_KEY
from keybimp_pipeline_tests.pipeline import reliability as R
from keybimp_pipeline_tests.pipeline.harness import Harness

DAY = "2026-11-02"
CRASHES = 3


@pytest.fixture
def world(emulators):
    return R.cli_world(emulators)


def clean_reference(world: R.CliWorld, keycrm: dict, bimp: dict, tmp_path, monkeypatch) -> tuple[dict, int]:
    """The uninterrupted run's canonical Bimp state and its Bimp write count (the same steps the assets run,
    in process: cheaper than a CLI run and independent of it)."""
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP", DEMO_KEYCRM_KEY)
    monkeypatch.setenv("BIMP_EMAIL", DEMO_BIMP_EMAIL)
    monkeypatch.setenv("BIMP_PASSWORD", DEMO_BIMP_PASSWORD)
    monkeypatch.setenv("KEYBIMP_DATA", str(tmp_path / "clean"))
    (tmp_path / "clean").mkdir()
    reset_shared_limiters()
    world.load(keycrm, bimp)
    before = R.bimp_writes(world.bimp)
    Harness(world.config, tmp_path / "clean", world.keycrm, world.bimp).sync_day(DAY)
    company = world.company()
    assert R.duplicates(company, bimp["companies"][0]) == {}
    return R.canonical(company), R.bimp_writes(world.bimp) - before


def test_R_ORCH_6_sigkill_during_writes_then_rerun_equals_an_uninterrupted_run(world, tmp_path, monkeypatch):
    keycrm, bimp = R.small_shop(12, days=1, end=R.date(2026, 11, 2), only_day=DAY)
    clean, writes = clean_reference(world, keycrm, bimp, tmp_path, monkeypatch)
    assert writes >= 20  # counterparties, contracts, items, orders, payments, sales: enough moments to hit

    world.load(keycrm, bimp)
    base = R.bimp_writes(world.bimp)
    env = world.env("crashed")
    targets = sorted(random.Random(6).sample(range(1, writes), CRASHES))
    survived = 0
    for i, target in enumerate(targets):
        pid = world.runner.start(R.sync_argv(DAY, DAY), tmp_path / f"crash-{i}.log", env)
        hit = R.wait_for_writes(world.bimp, base + target, world.runner, pid)
        world.runner.kill(pid)
        rc = world.runner.wait(pid)
        assert hit and rc == -9, (target, rc, (tmp_path / f"crash-{i}.log").read_text()[-2000:])
        survived += 1
        # a crash never leaves a duplicate behind, even before the re-run reconciles
        assert R.duplicates(world.company(), bimp["companies"][0]) == {}

    rc = world.runner.run(R.sync_argv(DAY, DAY), tmp_path / "final.log", env)
    log = (tmp_path / "final.log").read_text()
    assert rc == 0, log[-3000:]
    company = world.company()
    assert R.duplicates(company, bimp["companies"][0]) == {}
    differences = R.diff(clean, R.canonical(company))
    assert differences == [], "\n".join(differences)
    assert R.pending_ledger_rows(world.dir / "crashed" / "data") == 0
    assert survived == CRASHES
