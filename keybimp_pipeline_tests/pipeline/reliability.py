"""Shared equipment of the reliability tests and the soak (benchmarks/soak.py).

* `small_shop(...)`: a small, deterministic demo shop (KeyCRM + Bimp states) on a few days.
* `canonical(company)`: the final Bimp state as a comparable projection — uuids replaced by natural keys
  (counterparty name/phone/e-mail, item article, document number), server stamps and server-assigned codes
  dropped — so two runs that wrote the same things compare equal whatever uuids Bimp gave them.
* `duplicates(company)`: every natural key that occurs more than once (counterparties, contracts, items,
  documents).  The reliability claim is that this is always empty.
* `CliRunner`: real `keybimp …` processes (see cli_zygote.py) to crash, run side by side and inspect.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

from keybimp_pipeline.emulators.demo_shop import (
    DEMO_BIMP_EMAIL,
    DEMO_BIMP_PASSWORD,
    DEMO_KEYCRM_KEY,
    DEMO_KEYCRM_KEY_2,
    generate_demo,
)
from keybimp_pipeline_tests.pipeline.harness import ROOT, deep_update, write_config

NAME = "demo-shop"
# Everything the order pipeline writes is on; uploads (stocks, prices) are separate assets, not run by `sync`.
DOC_NUMBER_KEYS = {"customerOrders": "docNumber", "salesInvoices": "documentNumber",
                   "customerPayments": "number", "customerReturns": "number"}
# Server stamps and server-assigned sequence codes: never part of what the pipeline decided.
VOLATILE = {"uuid", "changeStatusTime", "createdAt", "updatedAt", "code", "integration"}
VOLATILE_BY_COLLECTION = {"contracts": {"date"}, "refunds": {"number", "name"}}


@functools.cache
def _demo(orders: int, seed: int, days: int, end: date) -> dict:
    return generate_demo(orders=orders, seed=seed, days=days, end=end)


def small_shop(orders: int = 24, *, seed: int = 20261203, days: int = 2, end: date = date(2026, 11, 3),
               only_day: str | None = None) -> tuple[dict, dict]:
    """(KeyCRM state, Bimp state) of a small demo shop whose orders fall on `days` days up to `end`;
    `only_day` keeps the orders of that one shop-local day (one partition: the cheapest CLI run)."""
    demo = copy.deepcopy(_demo(orders, seed, days, end))
    keycrm, bimp = demo["keycrm"], demo["bimp"]
    if only_day:
        keycrm["orders"] = [o for o in keycrm["orders"] if shop_days({"orders": [o]}) == [only_day]]
    return keycrm, bimp


def shop_days(keycrm: dict, tz: str = "Europe/Kyiv") -> list[str]:
    """The shop-local days the orders fall on (the partitions a sync must cover), sorted."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    days = {datetime.fromisoformat(o["ordered_at"]).astimezone(zone).date().isoformat()
            for o in keycrm["orders"]}
    return sorted(days)


def with_secrets(keycrm: dict, bimp: dict, *, keycrm_key: str, bimp_email: str, bimp_password: str
                 ) -> tuple[dict, dict]:
    """The same shop behind other credentials (the secrets test plants distinctive ones)."""
    keycrm, bimp = copy.deepcopy(keycrm), copy.deepcopy(bimp)
    keycrm["api_keys"] = [keycrm_key]
    for user in bimp["users"]:
        user["email"], user["password"] = bimp_email, bimp_password
    return keycrm, bimp


# ------------------------------------------------------------------------------------------------ projection


def _labels(company: dict) -> dict[str, str]:
    """uuid -> a natural, run-independent label for every object of the company."""
    labels: dict[str, str] = {}
    for collection, items in company.items():
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("uuid"), str):
                continue
            if collection == "counterparties":
                label = f"cp:{item.get('name')}|{item.get('phoneNumber')}|{item.get('email')}"
            elif collection == "nomenclature":
                label = f"item:{item.get('article') or ''}|{item.get('name')}"
            elif collection == "customerOrders":  # numbers are per shop: the comment names the integration
                label = f"{collection}:{item.get('docNumber')}|{item.get('comment')}"
            elif collection in DOC_NUMBER_KEYS:
                label = f"{collection}:{item.get(DOC_NUMBER_KEYS[collection])}"
            elif collection == "contracts":
                continue  # labelled from their counterparty below
            else:
                label = f"{collection}:{item.get('name') or item.get('comment') or item.get('number')}"
            labels[item["uuid"]] = label
    for item in company.get("contracts") or []:
        labels[item["uuid"]] = f"contract:{labels.get(item.get('counterparty'), item.get('counterparty'))}" \
                               f"|{item.get('name')}"
    return labels


def _project(value, labels: dict[str, str], drop: set[str]):
    if isinstance(value, dict):
        return {k: _project(v, labels, drop) for k, v in sorted(value.items()) if k not in drop}
    if isinstance(value, list):
        return [_project(v, labels, drop) for v in value]
    if isinstance(value, str):
        return labels.get(value, value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _key(item) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)


def canonical(company: dict) -> dict[str, list]:
    """The company's state minus uuids and server stamps, each collection a sorted list (a multiset)."""
    labels = _labels(company)
    out: dict[str, list] = {}
    for collection, items in company.items():
        if not isinstance(items, list):
            continue
        drop = VOLATILE | VOLATILE_BY_COLLECTION.get(collection, set())
        projected = [_project(item, labels, drop) for item in items]
        for doc in projected:  # line order inside a document is not part of its meaning
            if isinstance(doc, dict) and isinstance(doc.get("products"), list):
                doc["products"] = sorted(doc["products"], key=_key)
        out[collection] = sorted(projected, key=_key)
    return out


def diff(a: dict[str, list], b: dict[str, list], limit: int = 6) -> list[str]:
    """Readable differences between two canonical states (empty when equal)."""
    lines: list[str] = []
    for collection in sorted(set(a) | set(b)):
        ca, cb = Counter(map(_key, a.get(collection, []))), Counter(map(_key, b.get(collection, [])))
        only_a, only_b = ca - cb, cb - ca
        if only_a or only_b:
            lines.append(f"{collection}: {sum(only_a.values())} only in the first, {sum(only_b.values())} only "
                         f"in the second")
            lines += [f"  - {k[:400]}" for k in list(only_a)[:limit]]
            lines += [f"  + {k[:400]}" for k in list(only_b)[:limit]]
    return lines


def natural_keys(company: dict) -> dict[str, list[str]]:
    """What must be unique: counterparty (name, phone, e-mail), contract per counterparty, item article,
    document numbers (refunds: the KeyCRM order they refund, which is in the comment)."""
    labels = _labels(company)
    keys = {
        "counterparties": [labels[c["uuid"]] for c in company.get("counterparties") or []],
        "contracts": [labels[c["uuid"]] for c in company.get("contracts") or []],
        "nomenclature": [n.get("article") for n in company.get("nomenclature") or [] if n.get("article")],
        "counterpartyExternalIds": [f"{x.get('source')}|{x.get('externalId')}"
                                    for x in company.get("counterpartyExternalIds") or []],
        "refunds": [r.get("comment") for r in company.get("refunds") or [] if r.get("comment")],
    }
    for collection, field in DOC_NUMBER_KEYS.items():  # a number is unique per customer order (per shop)
        keys[collection] = [f"{d.get(field)}|{labels.get(_order_of(d), _order_of(d))}"
                            for d in company.get(collection) or []]
    keys["customerOrders"] = [labels[d["uuid"]] for d in company.get("customerOrders") or []]
    return keys


def _order_of(doc: dict) -> str | None:
    """The uuid of the customer order (or sale) a document belongs to."""
    for field in ("invoiceForCustomerPayment", "order", "baseDocument"):
        value = doc.get(field)
        if isinstance(value, dict):
            value = value.get("uuid")
        if value:
            return value
    return None


def duplicates(company: dict, baseline: dict | None = None) -> dict[str, dict[str, int]]:
    """Every natural key seen more than once, by collection, beyond those already doubled in `baseline` (the
    state before the run: the demo shop holds one item card twice on purpose).  Must always be empty."""
    before = natural_keys(baseline) if baseline else {}
    out = {}
    for collection, keys in natural_keys(company).items():
        old = Counter(before.get(collection, []))
        dups = {k: n - max(old[k], 1) for k, n in Counter(keys).items() if n > max(old[k], 1)}
        if dups:
            out[collection] = dups
    return out


def duplicate_count(company: dict, baseline: dict | None = None) -> int:
    """How many records are one too many (0 when nothing is duplicated)."""
    return sum(n for dups in duplicates(company, baseline).values() for n in dups.values())


# ------------------------------------------------------------------------------------------------ the CLI


def cli_config(path: Path, keycrm_url: str, bimp_url: str, overrides: dict | None = None) -> Path:
    """The example integrations file pointed at the test's emulators (the first integration only)."""
    return write_config(path, keycrm_url, bimp_url, deep_update({"keycrm": {"requests_per_minute": 600}},
                                                                overrides or {}))


def cli_env(config: Path, data: Path, dagster_home: Path, *, keycrm_key: str = DEMO_KEYCRM_KEY,
            bimp_email: str = DEMO_BIMP_EMAIL, bimp_password: str = DEMO_BIMP_PASSWORD) -> dict[str, str]:
    data.mkdir(parents=True, exist_ok=True)
    dagster_home.mkdir(parents=True, exist_ok=True)
    return {"KEYBIMP_CONFIG": str(config), "KEYBIMP_DATA": str(data), "DAGSTER_HOME": str(dagster_home),
            "KEYCRM_KEY_DEMO_SHOP": keycrm_key, "KEYCRM_KEY_DEMO_SHOP_2": DEMO_KEYCRM_KEY_2,
            "BIMP_EMAIL": bimp_email, "BIMP_PASSWORD": bimp_password, "PYTHONWARNINGS": "ignore"}


class CliRunner:
    """Starts real `keybimp` processes.  `warm=True` forks them from a pre-imported parent (cli_zygote.py:
    the same `cli.main`, without paying Dagster's import for each); `warm=False` runs `python -m
    keybimp_pipeline.cli` from scratch.  Either way the test holds the pid and may SIGKILL it."""

    def __init__(self, base_env: dict[str, str], *, warm: bool = True) -> None:
        self.warm = warm
        self.base_env = base_env
        self.started = 0
        self._popen: dict[int, tuple[subprocess.Popen, object]] = {}
        self._zygote: subprocess.Popen | None = None
        if warm:
            env = {**os.environ, **base_env}
            self._zygote = subprocess.Popen([sys.executable, "-m", "keybimp_pipeline_tests.pipeline.cli_zygote"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT,
                                            text=True, bufsize=1)
            ready = self._read(600)
            assert ready.get("ready"), ready

    def _read(self, timeout: float) -> dict:
        assert self._zygote is not None and self._zygote.stdout is not None
        ready, _, _ = select.select([self._zygote.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("the CLI parent did not answer")
        line = self._zygote.stdout.readline()
        if not line:
            raise RuntimeError("the CLI parent exited")
        return json.loads(line)

    def _send(self, cmd: dict) -> None:
        assert self._zygote is not None and self._zygote.stdin is not None
        self._zygote.stdin.write(json.dumps(cmd) + "\n")
        self._zygote.stdin.flush()

    def start(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
        self.started += 1
        full = {**self.base_env, **(env or {})}
        if self.warm:
            self._send({"op": "start", "argv": argv, "env": full, "log": str(log)})
            return int(self._read(60)["pid"])
        out = open(log, "ab")  # noqa: SIM115 - closed in wait()
        proc = subprocess.Popen([sys.executable, "-m", "keybimp_pipeline.cli", *argv], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **full}, cwd=ROOT)
        self._popen[proc.pid] = (proc, out)
        return proc.pid

    def wait(self, pid: int, timeout: float = 600) -> int:
        """The process's exit code (-9 when SIGKILLed); kills it past `timeout`."""
        if not self.warm:
            proc, out = self._popen.pop(pid)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()
            finally:
                out.close()
        self._send({"op": "wait", "pid": pid})
        try:
            return int(self._read(timeout)["rc"])
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            return int(self._read(60)["rc"])

    @staticmethod
    def kill(pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def alive(self, pid: int) -> bool:
        if not self.warm:
            return self._popen[pid][0].poll() is None
        try:  # a grandchild (forked by the warm parent): alive while /proc shows it and it is no zombie
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except (FileNotFoundError, IndexError):
            return False

    def run(self, argv: list[str], log: Path, env: dict[str, str] | None = None, timeout: float = 600) -> int:
        return self.wait(self.start(argv, log, env), timeout)

    def close(self) -> None:
        for proc, out in self._popen.values():
            proc.kill()
            proc.wait()
            out.close()
        if self._zygote is not None:
            if self._zygote.stdin:
                self._zygote.stdin.close()
            try:
                self._zygote.wait(10)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()


def bimp_writes(bimp_server) -> int:
    """Bimp write calls served since the emulator started or was reset (POSTs that are neither reads nor auth;
    a state load keeps the count, so a test waiting for its own writes adds them to a count taken before)."""
    counts = bimp_server.admin.get("/__admin/requests").json()["by_path"]
    return sum(n for path, n in counts.items()
               if path.startswith("POST ") and "api-read" not in path and "/auth/" not in path)


def wait_for_writes(bimp_server, at_least: int, runner: CliRunner, pid: int, timeout: float = 300) -> bool:
    """Poll until Bimp served `at_least` writes (True), or the process `pid` ended / time ran out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bimp_writes(bimp_server) >= at_least:
            return True
        if not runner.alive(pid):
            return False
        time.sleep(0.01)
    return False


# ------------------------------------------------------------------------------------------------ one CLI world


class CliWorld:
    """The emulators, an integrations file naming both demo shops and a warm CLI parent, shared by every
    CLI test of the session (the parent imports Dagster once).  Each test PUTs its own states and gives its
    runs their own KEYBIMP_DATA and DAGSTER_HOME."""

    def __init__(self, keycrm, bimp) -> None:
        import tempfile

        from keybimp_pipeline.emulators.keycrm.app import create_app as keycrm_app
        from keybimp_pipeline_tests.servers import ServedApp

        self.keycrm, self.bimp = keycrm, bimp
        self.keycrm2 = ServedApp(keycrm_app())
        self.dir = Path(tempfile.mkdtemp(prefix="keybimp-cli-"))
        first = yaml_first_integration()
        second = deep_update(first, {"name": NAME + "-2", "keycrm": {
            "url": self.keycrm2.url + "/v1", "account": NAME + "-2", "api_key_env": "KEYCRM_KEY_DEMO_SHOP_2"},
            "bimp": {"url": bimp.url}})
        self.config = write_config(self.dir / "integrations.yaml", keycrm.url, bimp.url,
                                   {"keycrm": {"requests_per_minute": 600}},
                                   extra=[deep_update(second, {"keycrm": {"requests_per_minute": 600}})])
        self.runner = CliRunner(cli_env(self.config, self.dir / "parent-data", self.dir / "parent-home"))

    def env(self, tag: str, **secrets: str) -> dict[str, str]:
        return cli_env(self.config, self.dir / tag / "data", self.dir / tag / "home", **secrets)

    def load(self, keycrm_state: dict, bimp_state: dict, keycrm2_state: dict | None = None) -> None:
        """Fresh states, no faults, real clocks, a generous KeyCRM rate."""
        for server, state in ((self.keycrm, keycrm_state), (self.keycrm2, keycrm2_state), (self.bimp, bimp_state)):
            if state is None:
                continue
            server.post("/__admin/clock", {"now": None})
            server.put_state(state)
            server.post("/__admin/faults", {"requests_per_minute": 100_000} if server is not self.bimp else {})

    def company(self) -> dict:
        return self.bimp.state()["companies"][0]

    def close(self) -> None:
        import shutil

        self.runner.close()
        self.keycrm2.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def yaml_first_integration() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "integrations.example.yaml").read_text())["integrations"][0]


_WORLD: CliWorld | None = None


def cli_world(emulators) -> CliWorld:
    """The session's CliWorld on the session's emulators (created on first use, closed at exit)."""
    global _WORLD
    if _WORLD is None:
        import atexit

        _WORLD = CliWorld(*emulators)
        atexit.register(_WORLD.close)
    return _WORLD


def sync_argv(day_from: str, day_to: str, name: str = NAME) -> list[str]:
    return ["sync", name, "--from", day_from, "--to", day_to]


def pending_ledger_rows(data: Path, name: str = NAME) -> int:
    """Ledger rows left `pending` (a write whose outcome was never recorded)."""
    import sqlite3

    path = data / f"{name}.ledger.sqlite"
    if not path.exists():
        return 0
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT count(*) FROM ledger WHERE state='pending'").fetchone()[0])
    finally:
        con.close()


class Recorder:
    """ASGI wrapper: logs (monotonic time, method, path, status or 'dropped') of every vendor call and calls
    `hook(method, path, n)` before passing the n-th one on (the hook flips the emulator's fault switches)."""

    def __init__(self, app) -> None:
        self.app = app
        self.state = app.state
        self.log: list[tuple[float, str, str, object]] = []
        self.hook: Callable[[str, str, int], None] | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/__admin"):
            await self.app(scope, receive, send)
            return
        if self.hook is not None:
            self.hook(scope["method"], scope["path"], len(self.log) + 1)
        status: list[object] = ["dropped"]

        async def watch(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.log.append((time.monotonic(), scope["method"], scope["path"], status[0]))

    def statuses(self, since: int = 0) -> list[object]:
        return [s for *_, s in self.log[since:]]

    def max_in_window(self, window_s: float, since: int = 0) -> int:
        stamps = [t for t, *_ in self.log[since:]]
        best, j = 0, 0
        for i, t in enumerate(stamps):
            while stamps[j] <= t - window_s:
                j += 1
            best = max(best, i - j + 1)
        return best
