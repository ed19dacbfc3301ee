"""Shared plumbing of the benchmarks: the machine, peak memory, child processes, the served emulators.

Why every measurement runs in a child process: peak memory (``ru_maxrss``) is a high-water mark of the
whole process, so a figure is only honest when the process did nothing but the measured work (plus the
imports every run of the pipeline pays anyway).  The emulators run in a process of their own as well, so
their CPU and memory never count towards ours (they still share the 2 cores, as they would on a laptop).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"  # git-ignored: caches and scratch stores
INTEGRATION = "demo-shop"


def demo_env() -> dict[str, str]:
    """The demo's fake credentials in the environment, as `make demo` sets them."""
    from keybimp_pipeline.emulators import demo_shop

    return {"KEYCRM_KEY_DEMO_SHOP": demo_shop.DEMO_KEYCRM_KEY, "BIMP_EMAIL": demo_shop.DEMO_BIMP_EMAIL,
            "BIMP_PASSWORD": demo_shop.DEMO_BIMP_PASSWORD}


def machine() -> dict[str, Any]:
    """Cores, memory and the load while the benchmark started (this machine is shared: say so)."""
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1), "cpu": cpu,
            "python": platform.python_version(), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far: far less sensitive than wall time to
    other work on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def emit(result: dict) -> None:
    """A child's result: one JSON line on stdout, prefixed so that stray prints never confuse the parent."""
    print("BENCH-RESULT " + json.dumps(result, default=str), flush=True)


def run_child(module: str, args: list[str], *, timeout: float = 3600, env: dict | None = None) -> dict:
    """Run `python -m module args…` and return the dict it emitted; its stderr passes through."""
    full_env = {**os.environ, **demo_env(), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                          text=True, timeout=timeout, check=False)
    results = [json.loads(line[len("BENCH-RESULT "):]) for line in proc.stdout.splitlines()
               if line.startswith("BENCH-RESULT ")]
    if proc.returncode != 0 or not results:
        tail = "\n".join(proc.stdout.splitlines()[-20:])
        raise RuntimeError(f"{module} {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return results[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_dir(name: str) -> Path:
    path = OUT / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


class Emulators:
    """Both emulators holding the demo shop of `orders` orders, served by `benchmarks.emulators` in a child.

    The state is built inside that child and handed to `create_app` directly: pushing 100,000 orders
    through `PUT /__admin/state` as JSON would only measure the loader.
    """

    def __init__(self, orders: int, *, keycrm_rpm: int | None = 1_000_000, bimp_rpm: int | None = None,
                 keycrm_port: int | None = None, bimp_port: int | None = None) -> None:
        self.orders = orders
        self.keycrm_port = keycrm_port or free_port()
        self.bimp_port = bimp_port or free_port()
        self.keycrm_url = f"http://127.0.0.1:{self.keycrm_port}"
        self.bimp_url = f"http://127.0.0.1:{self.bimp_port}"
        args = [sys.executable, "-m", "benchmarks.emulators", "--orders", str(orders),
                "--keycrm-port", str(self.keycrm_port), "--bimp-port", str(self.bimp_port)]
        if keycrm_rpm:
            args += ["--keycrm-rpm", str(keycrm_rpm)]
        if bimp_rpm:
            args += ["--bimp-rpm", str(bimp_rpm)]
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **demo_env()}, start_new_session=True,
                                     stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 900
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if line.startswith("READY"):
                break
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"the benchmark emulators exited (code {self.proc.returncode})")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the benchmark emulators did not start in time")

    def admin(self, system: str, method: str, path: str, body: dict | None = None) -> Any:
        import httpx

        url = (self.keycrm_url if system == "keycrm" else self.bimp_url) + path
        response = httpx.request(method, url, json=body, timeout=600)
        response.raise_for_status()
        return response.json() if response.content else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_config(path: Path, keycrm_url: str, bimp_url: str, *, requests_per_minute: int = 600,
                 exchange_every_minutes: int = 5) -> Path:
    """The example integrations file pointed at `keycrm_url`/`bimp_url` (the benchmark's emulators)."""
    import yaml

    data = yaml.safe_load((ROOT / "integrations.example.yaml").read_text())
    first = data["integrations"][0]
    first["keycrm"]["url"] = keycrm_url + "/v1"
    first["bimp"]["url"] = bimp_url
    first["keycrm"]["requests_per_minute"] = requests_per_minute
    first["main"]["exchange_every_minutes"] = exchange_every_minutes
    data["integrations"] = [first]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path
