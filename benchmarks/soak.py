"""Reliability soak (`python -m benchmarks.soak`): the long version of keybimp_pipeline_tests/pipeline/
test_reliability_*.py.  Prints, and writes to benchmarks/out/soak.json, the figures: faults injected,
crashes survived, inputs tried, duplicates found (must be 0).

1. Crashes: a clean `python -m keybimp_pipeline.cli sync` (fresh processes, no warm parent) over a demo
   shop of a few days, then the same sync SIGKILLed `--crashes` times (default 20) on a fresh emulator
   state — half right after Bimp served a random k-th write, half after a random delay — each followed by
   the next start; a final run to completion; the Bimp state compared with the clean run's.
2. Faults on the steps the assets run: 10% 5xx on both APIs, 429 bursts with Retry-After, dropped
   connections (Bimp answers cut after the work: ambiguous writes), slow answers, Bimp tokens expired
   mid-run, all at once, runs repeated until they complete; KeyCRM at its real limit (60 a minute, counted
   per sliding minute at the emulator).
3. Input: the fuzz of the tests, with more random payloads.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from keybimp_pipeline.clients.keycrm import KeyCRMClient, reset_shared_limiters
from keybimp_pipeline.emulators.bimp.app import create_app as bimp_app
from keybimp_pipeline.emulators.demo_shop import DEMO_BIMP_EMAIL, DEMO_BIMP_PASSWORD, DEMO_KEYCRM_KEY
from keybimp_pipeline.emulators.keycrm.app import create_app as keycrm_app
from keybimp_pipeline_tests.pipeline import reliability as R
from keybimp_pipeline_tests.pipeline.harness import Harness
from keybimp_pipeline_tests.servers import ServedApp

OUT = Path(__file__).resolve().parent / "out"


def _load(keycrm, bimp, kc_state, bimp_state, keycrm_faults=None, bimp_faults=None) -> None:
    keycrm.recorder.hook = bimp.recorder.hook = None
    keycrm.put_state(kc_state)
    bimp.put_state(bimp_state)
    keycrm.post("/__admin/faults", keycrm_faults or {"requests_per_minute": 100_000})
    bimp.post("/__admin/faults", bimp_faults or {})


def crashes(keycrm, bimp, kc_state, bimp_state, days, work: Path, n: int, rng: random.Random) -> dict:
    config = R.cli_config(work / "integrations.yaml", keycrm.url, bimp.url)
    runner = R.CliRunner({}, warm=False)
    argv = R.sync_argv(days[0], days[-1])
    base_company = bimp_state["companies"][0]
    try:
        _load(keycrm, bimp, kc_state, bimp_state)
        w0 = R.bimp_writes(bimp)
        t0 = time.monotonic()
        rc = runner.run(argv, work / "clean.log", R.cli_env(config, work / "clean", work / "clean-home"))
        clean_s = time.monotonic() - t0
        assert rc == 0, (work / "clean.log").read_text()[-3000:]
        writes = R.bimp_writes(bimp) - w0
        clean = R.canonical(bimp.state()["companies"][0])
        print(f"clean run: {clean_s:.0f} s, {writes} Bimp writes", flush=True)

        # cycles: fresh state, kills until every write is done, a final run, the comparison; again until n kills
        survived, dup_seen, runs, cycles, all_equal, pending = 0, 0, 0, 0, True, 0
        while survived < n:
            cycles += 1
            _load(keycrm, bimp, kc_state, bimp_state)
            w0 = R.bimp_writes(bimp)
            env = R.cli_env(config, work / f"cycle-{cycles}", work / f"cycle-{cycles}-home")
            while survived < n and R.bimp_writes(bimp) - w0 < writes:
                done = R.bimp_writes(bimp) - w0
                pid = runner.start(argv, work / f"run-{runs}.log", env)
                runs += 1
                if survived % 2 == 0:
                    target = done + 1 + rng.randrange(max(1, min(12, writes - done - 1)))
                    how = f"after write {target}"
                    alive = R.wait_for_writes(bimp, w0 + target, runner, pid)
                else:
                    delay = rng.uniform(1.0, max(2.0, clean_s * 0.6))
                    how = f"after {delay:.1f} s"
                    deadline = time.monotonic() + delay
                    while time.monotonic() < deadline and runner.alive(pid):
                        time.sleep(0.05)
                    alive = runner.alive(pid)
                runner.kill(pid)
                rc = runner.wait(pid)
                if rc == -9 and alive:
                    survived += 1
                    dups = R.duplicate_count(bimp.state()["companies"][0], base_company)
                    dup_seen += dups
                    print(f"crash {survived:2d} (cycle {cycles}): SIGKILL {how} (Bimp writes so far "
                          f"{R.bimp_writes(bimp) - w0} of {writes}), duplicates {dups}", flush=True)
            rc = runner.run(argv, work / "final.log", env)
            assert rc == 0, (work / "final.log").read_text()[-3000:]
            runs += 1
            company = bimp.state()["companies"][0]
            differences = R.diff(clean, R.canonical(company))
            dups = R.duplicate_count(company, base_company)
            dup_seen += dups
            all_equal = all_equal and not differences
            pending += R.pending_ledger_rows(work / f"cycle-{cycles}")
            print(f"cycle {cycles} final: {'same Bimp state as the clean run' if not differences else 'DIFFERENT'}; "
                  f"duplicates {dups}", flush=True)
            for line in differences:
                print("   ", line)
        return {"crashes_survived": survived, "cycles": cycles, "cli_runs": runs + 1, "bimp_writes_clean": writes,
                "duplicates": dup_seen, "state_equal": all_equal, "pending_left": pending}
    finally:
        runner.close()


def faults(keycrm, bimp, kc_state, bimp_state, days, work: Path, rng: random.Random, rate: bool = True) -> dict:
    os.environ.update(KEYCRM_KEY_DEMO_SHOP=DEMO_KEYCRM_KEY, BIMP_EMAIL=DEMO_BIMP_EMAIL,
                      BIMP_PASSWORD=DEMO_BIMP_PASSWORD)

    def harness(tag: str, rpm: int = 600) -> Harness:
        (work / tag).mkdir()
        os.environ["KEYBIMP_DATA"] = str(work / tag)
        reset_shared_limiters()
        return Harness(R.cli_config(work / f"{tag}.yaml", keycrm.url, bimp.url,
                                    {"keycrm": {"requests_per_minute": rpm}}), work / tag, keycrm, bimp)

    _load(keycrm, bimp, kc_state, bimp_state)
    h = harness("faults-clean")
    for day in days:
        h.sync_day(day)
    clean = R.canonical(bimp.state()["companies"][0])

    counts = {"5xx": 0, "429": 0, "dropped": 0, "token_expiries": 0, "slow": 0}
    kc, bi = keycrm.recorder, bimp.recorder

    def keycrm_hook(method: str, path: str, n: int) -> None:
        if rng.random() < 0.05:
            kc.state.faults.drop_connection_next += 1
            counts["dropped"] += 1
        elif rng.random() < 0.04:
            kc.state.faults.fail_next.append({"path": "*", "status": 429, "times": 3, "method": None})

    def bimp_hook(method: str, path: str, n: int) -> None:
        emu = bi.state.emulator
        if "/auth/" in path:
            return
        roll = rng.random()
        if roll < 0.03:
            emu.faults["drop_connection_next"] = int(emu.faults.get("drop_connection_next") or 0) + 1
            counts["dropped"] += 1
        elif roll < 0.05:
            emu.faults.setdefault("fail_next", []).append({"path": path, "status": 429, "times": 2})
        elif roll < 0.06:
            for rec in emu.tokens.values():
                rec["expires"] = emu.now()
            counts["token_expiries"] += 1

    _load(keycrm, bimp, kc_state, bimp_state,
          {"requests_per_minute": 100_000, "fail_ratio": 0.1, "fail_status": 503, "retry_after_s": 0.1,
           "latency_ms": 30},
          {"fail_ratio": 0.1, "fail_status": 500, "seed": rng.randrange(1 << 30), "retry_after_s": 0.1,
           "latency_ms": 30})
    kc.hook, bi.hook = keycrm_hook, bimp_hook
    k0, b0 = len(kc.log), len(bi.log)
    h = harness("faults")
    failed_runs = 0
    for day in days:
        for _ in range(30):
            try:
                h.sync_day(day)
                break
            except Exception as exc:  # noqa: BLE001 - a failed run is what the faults may cause
                failed_runs += 1
                print(f"  {day}: run failed ({type(exc).__name__}); re-running", flush=True)
        else:
            raise SystemExit(f"{day} never completed under faults")
    kc.hook = bi.hook = None
    statuses = kc.statuses(k0) + bi.statuses(b0)
    counts["5xx"] = sum(1 for s in statuses if isinstance(s, int) and s >= 500)
    counts["429"] = sum(1 for s in statuses if s == 429)
    counts["slow"] = len(statuses)
    company = bimp.state()["companies"][0]
    differences = R.diff(clean, R.canonical(company))
    dups = R.duplicate_count(company, bimp_state["companies"][0])
    print(f"faults: {counts}; failed runs healed by a re-run: {failed_runs}; "
          f"{'same state as clean' if not differences else 'DIFFERENT'}; duplicates {dups}", flush=True)
    for line in differences:
        print("   ", line)

    result = {"faults": counts, "failed_runs_healed": failed_runs, "duplicates": dups,
              "state_equal": not differences, "keycrm_peak_per_minute": 0, "keycrm_limiter_429": 0}
    if not rate:
        return result
    # KeyCRM at its real limit: 60 a minute, every request counted per sliding minute at the emulator
    _load(keycrm, bimp, kc_state, bimp_state, {"requests_per_minute": 60, "rate_window_s": 60})
    k0 = len(kc.log)
    h = harness("rate", rpm=60)
    with KeyCRMClient(h.settings.keycrm.url, h.settings.keycrm_api_key(), requests_per_minute=60) as client:
        for _ in range(80):  # more than a minute's worth: the limit must bind
            client.count_orders_updated(datetime(2026, 11, 1, tzinfo=UTC))
    for day in days:
        h.sync_day(day)
    peak = kc.max_in_window(60.0, k0)
    limiter_429 = sum(1 for s in kc.statuses(k0) if s == 429)
    print(f"KeyCRM rate: {len(kc.log) - k0} requests, at most {peak} in any 60 s window (limit 60), "
          f"429 from the emulator's limiter: {limiter_429}", flush=True)
    return {**result, "keycrm_peak_per_minute": peak, "keycrm_limiter_429": limiter_429}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=20)
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--skip-rate", action="store_true", help="skip the minute-long rate phase")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    kc_state, bimp_state = R.small_shop(args.orders, days=args.days, end=R.date(2026, 11, 3))
    days = R.shop_days(kc_state)
    keycrm, bimp = ServedApp(R.Recorder(keycrm_app())), ServedApp(R.Recorder(bimp_app()))
    keycrm.recorder, bimp.recorder = keycrm.server.config.app, bimp.server.config.app
    started = time.monotonic()
    report: dict = {"orders": len(kc_state["orders"]), "days": days}
    with tempfile.TemporaryDirectory(prefix="keybimp-soak-") as tmp:
        work = Path(tmp)
        (work / "crash").mkdir()
        (work / "faults").mkdir()
        try:
            report["crash"] = crashes(keycrm, bimp, kc_state, bimp_state, days, work / "crash", args.crashes, rng)
            report["faults"] = faults(keycrm, bimp, kc_state, bimp_state, days, work / "faults", rng,
                                      rate=not args.skip_rate)
        finally:
            keycrm.stop()
            bimp.stop()
    report["input"] = fuzz_inputs(rng)
    report["seconds"] = round(time.monotonic() - started)
    duplicates = report["crash"]["duplicates"] + report["faults"]["duplicates"]
    injected = sum(report["faults"]["faults"][k] for k in ("5xx", "429", "dropped", "token_expiries"))
    print("\n== reliability soak ==")
    print(f"faults injected      {injected:>6}   {report['faults']['faults']}")
    print(f"crashes survived     {report['crash']['crashes_survived']:>6}   (SIGKILL, each followed by a re-run)")
    print(f"inputs tried         {report['input']['tried']:>6}   (refused by the emulator at load: "
          f"{report['input']['refused']})")
    print(f"duplicates found     {duplicates:>6}   (must be 0)")
    print(f"final state equal    {report['crash']['state_equal'] and report['faults']['state_equal']}")
    print(f"KeyCRM peak/minute   {report['faults']['keycrm_peak_per_minute']:>6}   (limit 60)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "soak.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    ok = duplicates == 0 and report["crash"]["state_equal"] and report["faults"]["state_equal"] \
        and report["faults"]["keycrm_peak_per_minute"] <= 60
    return 0 if ok else 1


def fuzz_inputs(rng: random.Random) -> dict:
    """The fuzz of test_reliability_input.py, larger: run it through pytest (its fixtures build the shop)."""
    import subprocess

    env = {**os.environ, "KEYBIMP_FUZZ_RANDOM": "400"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "keybimp_pipeline_tests/pipeline/test_reliability_input.py"],
                          check=False, cwd=R.ROOT, env=env, capture_output=True, text=True)
    figures = {}
    for line in proc.stdout.splitlines():
        if line.startswith("FUZZ-FIGURES "):
            figures = json.loads(line.split(" ", 1)[1])
    print("input fuzz: " + (proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]),
          flush=True)
    return {"tried": figures.get("tried", 0), "refused": figures.get("refused", 0),
            "passed": proc.returncode == 0}


if __name__ == "__main__":
    sys.exit(main())
