"""`make demo`: emulators up with the demo shop, the demo integration synced for its whole history, a summary.

This is a demo driver, not pipeline code: it starts the emulators as a separate process (they meet the
pipeline only on the wire) and then calls `keybimp sync` exactly as a user would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tenacity import RetryError, retry, retry_if_result, stop_after_delay, wait_fixed

from keybimp_pipeline.emulators.serve import DEFAULT_PORTS, demo_ports

ROOT = Path(__file__).resolve().parents[1]


KEYCRM_PORT, BIMP_PORT, KEYCRM2_PORT = demo_ports()  # one KeyCRM emulator per shop: one serves one account


def _settings_for_ports(data: Path) -> Path:
    """The example settings, or a copy of them in the data folder pointing at the demo's own ports."""
    example = ROOT / "integrations.example.yaml"
    if (KEYCRM_PORT, BIMP_PORT, KEYCRM2_PORT) == DEFAULT_PORTS:
        return example
    text = example.read_text()
    for old, new in zip(DEFAULT_PORTS, (KEYCRM_PORT, BIMP_PORT, KEYCRM2_PORT), strict=True):
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    moved = data / "demo-settings.yaml"
    moved.write_text(text)
    return moved


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_ready(proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll until all three emulator ports accept connections (tenacity does the waiting)."""

    @retry(stop=stop_after_delay(timeout), wait=wait_fixed(0.3), retry=retry_if_result(lambda ok: not ok))
    def ready() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"the emulators exited early (code {proc.returncode})")
        return _port_open(KEYCRM_PORT) and _port_open(BIMP_PORT) and _port_open(KEYCRM2_PORT)

    try:
        ready()
    except RetryError:
        raise SystemExit("the emulators did not start in time") from None


def main() -> int:
    from keybimp_pipeline.emulators import demo_shop  # the demo's fake credentials

    for port in (KEYCRM_PORT, BIMP_PORT, KEYCRM2_PORT):
        if _port_open(port):
            print(f"port {port} is in use: stop whatever listens there (an earlier `make emulate`?)",
                  file=sys.stderr)
            return 2
    env = dict(os.environ)
    env["KEYCRM_KEY_DEMO_SHOP"] = demo_shop.DEMO_KEYCRM_KEY
    env["KEYCRM_KEY_DEMO_SHOP_2"] = demo_shop.DEMO_KEYCRM_KEY_2  # the second shop: its own KeyCRM account
    env["BIMP_EMAIL"] = demo_shop.DEMO_BIMP_EMAIL
    env["BIMP_PASSWORD"] = demo_shop.DEMO_BIMP_PASSWORD
    data = Path(env.setdefault("KEYBIMP_DATA", str(ROOT / "data")))
    data.mkdir(parents=True, exist_ok=True)
    for old in data.glob("demo-shop*"):
        old.unlink()  # the emulators start from a fresh demo shop, so the local state starts fresh too
    env.setdefault("KEYBIMP_CONFIG", str(_settings_for_ports(data)))

    print("starting the KeyCRM and Bimp emulators with two demo shops writing into one Bimp company …", flush=True)
    emulators = subprocess.Popen([sys.executable, "-m", "keybimp_pipeline.emulators.serve", "--demo",
                                  "--keycrm-port", str(KEYCRM_PORT), "--bimp-port", str(BIMP_PORT),
                                  "--shops", "2", "--keycrm2-port", str(KEYCRM2_PORT)],
                                 env=env, start_new_session=True)
    try:
        _wait_ready(emulators)
        keybimp = [sys.executable, "-m", "keybimp_pipeline.cli"]
        print("\nchecking both integrations against both systems (`keybimp check`) …", flush=True)
        checked = subprocess.call(keybimp + ["check"], env=env)
        if checked != 0:
            print(f"`keybimp check` failed (exit {checked}): fix the lines above first", file=sys.stderr)
            return checked
        for shop in ("demo-shop", "demo-shop-2"):  # new integrations are paused (R-CONN-5)
            subprocess.call(keybimp + ["start", shop], env=env)
        first = "2026-09-01"
        print(f"\nsyncing demo-shop from {first}: one run over every day partition (one KeyCRM listing, each step "
              "once over the range), recorded in $DAGSTER_HOME …", flush=True)
        code = subprocess.call(keybimp + ["sync", "demo-shop", "--from", first, "--quiet"], env=env)
        recent = "2026-11-18"
        print(f"\nsyncing the last two weeks again (from {recent}): nothing changed in KeyCRM, so the summary "
              "stays the same and nothing is written …", flush=True)
        code = subprocess.call(keybimp + ["sync", "demo-shop", "--from", recent, "--quiet"], env=env) or code
        print(f"\nsyncing the second shop, demo-shop-2, into the same Bimp company (from {recent}; older days "
              "are a backfill away) …", flush=True)
        code = subprocess.call(keybimp + ["sync", "demo-shop-2", "--from", recent, "--quiet"], env=env) or code
        print("\nstocks Bimp → KeyCRM: the first upload stops at the migration guard with a preview …", flush=True)
        guard = subprocess.call(keybimp + ["stocks", "demo-shop"], env=env)
        if guard != 3:  # 3 = stopped by the guard, as the first upload must be
            print(f"expected the migration guard to stop the first stock upload (exit {guard})", file=sys.stderr)
            code = code or 1
        print("\nthe preview is what we expect, so confirm it: `keybimp stocks demo-shop --confirm` …", flush=True)
        code = subprocess.call(keybimp + ["stocks", "demo-shop", "--confirm"], env=env) or code
        print("\nuploading stocks again right away: nothing changed, so nothing is sent …", flush=True)
        code = subprocess.call(keybimp + ["stocks", "demo-shop"], env=env) or code
        print("\nprices Bimp → KeyCRM (Bimp's main price list, only changed prices) …", flush=True)
        code = subprocess.call(keybimp + ["prices", "demo-shop"], env=env) or code
        print("\nprices again right away: nothing changed, so nothing is sent …", flush=True)
        code = subprocess.call(keybimp + ["prices", "demo-shop"], env=env) or code
        print("\nthe second shop's history (settings changes, starts, pauses): `keybimp history demo-shop-2`",
              flush=True)
        subprocess.call(keybimp + ["history", "demo-shop-2"], env=env)
        config = "" if env["KEYBIMP_CONFIG"] == str(ROOT / "integrations.example.yaml") else \
            f"KEYBIMP_CONFIG={env['KEYBIMP_CONFIG']} "
        ports = "" if (KEYCRM_PORT, BIMP_PORT, KEYCRM2_PORT) == DEFAULT_PORTS else \
            f"KEYBIMP_DEMO_PORTS={KEYCRM_PORT},{BIMP_PORT},{KEYCRM2_PORT} "
        print(f"\nthe emulators stop now; the data stays in {data} and $DAGSTER_HOME:"
              f"\n  open sync issues, with what to do:  {config}.venv/bin/keybimp issues demo-shop"
              f"\n  the Dagster UI on the same runs:     {config}make ui   (then http://127.0.0.1:3000; "
              "UI_PORT=… make ui for another port)"
              f"\n  sensors and uploads need the emulators running: `{ports}make emulate RESET=1` in another "
              "terminal starts them\n  fresh and clears this data (it names records of these emulators' Bimp), "
              "then sync again; the demo's\n  environment values are in the README (\"The demo's settings\")")
        return code
    finally:
        emulators.send_signal(signal.SIGTERM)
        try:
            emulators.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(emulators.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
