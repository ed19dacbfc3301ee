"""`keybimp emulate` (`make emulate`): fresh emulators for every shop the example settings name, and a clear
word about data/'s sync state, which names records of an earlier Bimp (R-ORCH-5: see bimp_record_missing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from keybimp_pipeline.emulators import demo_shop
from keybimp_pipeline_tests.e2e.test_serve import _free_ports

ROOT = Path(__file__).resolve().parents[2]


def _emulate(data: Path, *extra: str, ports_from_env: bool = False) -> tuple[list[str], dict[str, int]]:
    """Run `keybimp emulate --demo` until ready; the printed lines and whether each shop's KeyCRM answers.
    The free ports it uses are given as options, or (`ports_from_env`) only in KEYBIMP_DEMO_PORTS."""
    kc, bimp, kc2 = _free_ports(3)
    env = {**os.environ, "KEYBIMP_DATA": str(data), "PYTHONUNBUFFERED": "1"}
    if ports_from_env:
        env["KEYBIMP_DEMO_PORTS"] = f"{kc},{bimp},{kc2}"
        options = []
    else:
        env.pop("KEYBIMP_DEMO_PORTS", None)
        options = ["--keycrm-port", str(kc), "--bimp-port", str(bimp), "--keycrm2-port", str(kc2)]
    proc = subprocess.Popen([sys.executable, "-m", "keybimp_pipeline.cli", "emulate", "--demo", "--orders", "60",
                             *options, *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=env)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "emulators ready" in line or time.monotonic() > deadline:
                break
        assert any("emulators ready" in line for line in lines), lines
        status = {}
        for shop, port, key in (("shop 1", kc, demo_shop.DEMO_KEYCRM_KEY), ("shop 2", kc2, demo_shop.DEMO_KEYCRM_KEY_2)):
            r = httpx.get(f"http://127.0.0.1:{port}/v1/order", params={"limit": 1},
                          headers={"Authorization": f"Bearer {key}"}, timeout=30)
            status[shop] = r.status_code
        return lines, status
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_emulate_starts_both_shops_fresh_and_says_what_old_sync_state_means(tmp_path: Path):
    old = [tmp_path / n for n in ("demo-shop.duckdb", "demo-shop.ledger.sqlite", "demo-shop.ledger.sqlite-wal",
                                  "demo-shop-2.duckdb")]
    for path in old:
        path.write_bytes(b"x")
    control = tmp_path / "demo-shop.control.json"  # settings history and pause state: not sync state
    control.write_text("{}")

    lines, status = _emulate(tmp_path)

    assert status == {"shop 1": 200, "shop 2": 200}  # the second shop's account of the example file too
    text = "\n".join(lines)
    assert "the emulators start fresh: the demo shops as generated" in text
    assert "holds the local sync state (DuckDB files, write ledgers) of demo-shop, demo-shop-2" in text
    assert "bimp_record_missing" in text and "make emulate RESET=1" in text
    assert all(p.exists() for p in old)  # kept unless asked

    lines, _ = _emulate(tmp_path, "--reset-data")

    assert "removed the local sync state of demo-shop, demo-shop-2" in "\n".join(lines)
    assert not any(p.exists() for p in old) and control.exists()


def test_the_example_settings_name_the_ports_and_command_make_emulate_serves(monkeypatch):
    example = (ROOT / "integrations.example.yaml").read_text()
    ports = [i["keycrm"]["url"] for i in yaml.safe_load(example)["integrations"]]
    assert ports == ["http://127.0.0.1:8801/v1", "http://127.0.0.1:8803/v1"]
    makefile = (ROOT / "Makefile").read_text()
    assert "keybimp emulate --demo --shops 2" in makefile
    from keybimp_pipeline.cli import build_parser  # the command the example and the Makefile name parses
    from keybimp_pipeline.emulators.serve import demo_ports

    args = build_parser().parse_args(["emulate", "--demo", "--shops", "2"])
    assert (args.shops, args.demo) == (2, True)
    monkeypatch.delenv("KEYBIMP_DEMO_PORTS", raising=False)
    assert demo_ports() == (8801, 8802, 8803)  # the example's, unless KEYBIMP_DEMO_PORTS moves them
    monkeypatch.setenv("KEYBIMP_DEMO_PORTS", "18801,18802,18803")
    assert demo_ports() == (18801, 18802, 18803)


def test_make_emulate_serves_on_the_ports_make_demo_moved_to(tmp_path: Path):
    """`KEYBIMP_DEMO_PORTS=… make demo` writes settings naming those ports; `make emulate` with the same variable
    must serve there, not on the example's 8801-8803."""
    _, status = _emulate(tmp_path, ports_from_env=True)
    assert status == {"shop 1": 200, "shop 2": 200}
