"""API faults, through the emulators' fault switches: the run completes (or fails, and a re-run completes)
with the same final Bimp state as a clean run, zero duplicates, and KeyCRM never asked above its limit.

These tests get their own pair of emulators, each wrapped in a recorder that logs every API request with
its answer and, from a hook, flips the emulator's own fault switches mid-run (drop the next connection,
expire the Bimp tokens, send a burst of 429): the moments fall inside the run, not before it.  The steps
are the ones the assets run (Harness); the crash and concurrency tests cover the Dagster/CLI path.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keybimp_pipeline.clients import keycrm as keycrm_client
from keybimp_pipeline.clients.keycrm import KeyCRMClient, reset_shared_limiters
from keybimp_pipeline.emulators.bimp.app import create_app as bimp_app
from keybimp_pipeline.emulators.demo_shop import DEMO_BIMP_EMAIL, DEMO_BIMP_PASSWORD, DEMO_KEYCRM_KEY
from keybimp_pipeline.emulators.keycrm.app import create_app as keycrm_app
from keybimp_pipeline_tests.pipeline import reliability as R
from keybimp_pipeline_tests.pipeline.harness import Harness
from keybimp_pipeline_tests.pipeline.reliability import Recorder
from keybimp_pipeline_tests.servers import ServedApp

FIGURES: dict[str, int] = {}


class Rig:
    def __init__(self) -> None:
        self.kc, self.bi = Recorder(keycrm_app()), Recorder(bimp_app())
        self.keycrm, self.bimp = ServedApp(self.kc), ServedApp(self.bi)
        self.keycrm_state, self.bimp_state = R.small_shop(12, days=2, end=R.date(2026, 11, 3))
        self.days = R.shop_days(self.keycrm_state)
        self.clean: dict | None = None

    def load(self, keycrm_state: dict | None = None) -> None:
        self.kc.hook = self.bi.hook = None
        self.keycrm.put_state(keycrm_state or self.keycrm_state)
        self.bimp.put_state(self.bimp_state)
        self.keycrm.post("/__admin/faults", {"requests_per_minute": 100_000})
        self.bimp.post("/__admin/faults", {})

    def quiet(self) -> None:
        """Faults off, state kept (to look at the result)."""
        self.kc.hook = self.bi.hook = None
        self.keycrm.post("/__admin/faults", {"requests_per_minute": 100_000})
        self.bimp.post("/__admin/faults", {})

    def harness(self, tmp_path, tag: str) -> Harness:
        data = tmp_path / tag
        data.mkdir()
        reset_shared_limiters()
        config = R.cli_config(tmp_path / f"{tag}.yaml", self.keycrm.url, self.bimp.url)
        return Harness(config, data, self.keycrm, self.bimp)

    def stop(self) -> None:
        self.keycrm.stop()
        self.bimp.stop()


@pytest.fixture(scope="module")
def rig():
    rig = Rig()
    yield rig
    rig.stop()


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP", DEMO_KEYCRM_KEY)
    monkeypatch.setenv("BIMP_EMAIL", DEMO_BIMP_EMAIL)
    monkeypatch.setenv("BIMP_PASSWORD", DEMO_BIMP_PASSWORD)
    monkeypatch.setenv("KEYBIMP_DATA", str(tmp_path))


def clean_state(rig: Rig, tmp_path) -> dict:
    if rig.clean is None:
        rig.load()
        h = rig.harness(tmp_path, "clean")
        for day in rig.days:
            h.sync_day(day)
        company = rig.bimp.state()["companies"][0]
        assert R.duplicates(company, rig.bimp_state["companies"][0]) == {}
        rig.clean = R.canonical(company)
    return rig.clean


def run_until_complete(h: Harness, days: list[str], attempts: int = 10) -> int:
    """Sync every day; a day that fails is re-run (as Dagster's retry or the next sensor tick would).
    Returns how many runs failed on the way."""
    failed = 0
    for day in days:
        for _ in range(attempts):
            try:
                h.sync_day(day)
                break
            except Exception:  # noqa: BLE001 - a failed run is what these faults may cause; the re-run heals
                failed += 1
        else:
            raise AssertionError(f"{day} never completed in {attempts} runs")
    return failed


def assert_same_as_clean(rig: Rig, clean: dict) -> None:
    company = rig.bimp.state()["companies"][0]
    assert R.duplicates(company, rig.bimp_state["companies"][0]) == {}
    differences = R.diff(clean, R.canonical(company))
    assert differences == [], "\n".join(differences)


def _count(figure: str, n: int) -> None:
    FIGURES[figure] = FIGURES.get(figure, 0) + n


def test_ten_percent_5xx_on_both_apis(rig: Rig, tmp_path, env):
    clean = clean_state(rig, tmp_path)
    rig.load()
    rig.keycrm.post("/__admin/faults", {"requests_per_minute": 100_000, "fail_ratio": 0.1, "fail_status": 503,
                                        "retry_after_s": 0.05})
    rig.bimp.post("/__admin/faults", {"fail_ratio": 0.1, "fail_status": 500, "seed": 7})
    k0, b0 = len(rig.kc.log), len(rig.bi.log)
    failed_runs = run_until_complete(rig.harness(tmp_path, "5xx"), rig.days)
    rig.quiet()
    injected = sum(1 for s in rig.kc.statuses(k0) + rig.bi.statuses(b0) if isinstance(s, int) and s >= 500)
    assert injected >= 5  # about one request in ten
    assert_same_as_clean(rig, clean)
    _count("faults_5xx", injected)
    _count("runs_failed_then_healed", failed_runs)


def test_429_bursts_with_retry_after_are_waited_out_without_a_failed_run(rig: Rig, tmp_path, env):
    clean = clean_state(rig, tmp_path)
    rig.load()

    def keycrm_bursts(method: str, path: str, n: int) -> None:
        if n % 9 == 0:  # every ninth call starts a burst of three 429s (Retry-After: 0.2 s)
            rig.kc.state.faults.configure({"requests_per_minute": 100_000, "retry_after_s": 0.2,
                                           "fail_next": [{"path": "*", "status": 429, "times": 3}]})

    def bimp_bursts(method: str, path: str, n: int) -> None:
        if n % 11 == 0 and "/auth/" not in path:  # writes too: a 429 is refused before any work
            rig.bi.state.emulator.faults.update(
                {"retry_after_s": 0.2, "fail_next": [{"path": path, "status": 429, "times": 2}]})

    rig.kc.hook, rig.bi.hook = keycrm_bursts, bimp_bursts
    k0, b0 = len(rig.kc.log), len(rig.bi.log)
    failed_runs = run_until_complete(rig.harness(tmp_path, "429"), rig.days, attempts=1)
    rig.quiet()
    bursts = sum(1 for s in rig.kc.statuses(k0) + rig.bi.statuses(b0) if s == 429)
    assert bursts >= 6 and failed_runs == 0
    assert_same_as_clean(rig, clean)
    _count("faults_429", bursts)


def test_dropped_connections_slow_answers_and_bimp_tokens_expiring_mid_run(rig: Rig, tmp_path, env):
    clean = clean_state(rig, tmp_path)
    rig.load()
    rig.keycrm.post("/__admin/faults", {"requests_per_minute": 100_000, "latency_ms": 20})
    rig.bimp.post("/__admin/faults", {"latency_ms": 20})
    dropped = {"keycrm": 0, "bimp": 0, "expired": 0}

    def keycrm_drops(method: str, path: str, n: int) -> None:
        if n % 4 == 0:
            rig.kc.state.faults.drop_connection_next += 1
            dropped["keycrm"] += 1

    def bimp_drops(method: str, path: str, n: int) -> None:
        emu = rig.bi.state.emulator
        if n % 15 == 0 and "/auth/" not in path:  # the answer is cut after Bimp did the work: ambiguous writes
            emu.faults["drop_connection_next"] = int(emu.faults.get("drop_connection_next") or 0) + 1
            dropped["bimp"] += 1
        elif n % 23 == 0:  # every token issued so far expires now: the client must log in again and go on
            for rec in emu.tokens.values():
                rec["expires"] = emu.now()
            dropped["expired"] += 1

    rig.kc.hook, rig.bi.hook = keycrm_drops, bimp_drops
    failed_runs = run_until_complete(rig.harness(tmp_path, "drops"), rig.days)
    rig.quiet()
    assert dropped["keycrm"] >= 1 and dropped["bimp"] >= 2 and dropped["expired"] >= 1
    assert_same_as_clean(rig, clean)
    _count("faults_dropped_connections", dropped["keycrm"] + dropped["bimp"])
    _count("faults_token_expiries", dropped["expired"])
    _count("runs_failed_then_healed", failed_runs)


def test_keycrm_rate_limit_is_never_exceeded_at_the_emulator(rig: Rig, tmp_path, env, monkeypatch):
    """The limit on a short clock: 4 requests per 1 s window at the emulator and the client set to the same
    (the client pads its window); pages of 2 orders, so the run needs enough requests for the limit to bind.  Every request is counted at the emulator: none above the limit, and no
    429 came from the emulator's limiter."""
    clean = clean_state(rig, tmp_path)
    rig.load()
    rig.keycrm.post("/__admin/faults", {"requests_per_minute": 4, "rate_window_s": 1.0})
    h = rig.harness(tmp_path, "rate")
    monkeypatch.setattr(keycrm_client, "PAGE_LIMIT", 2)
    monkeypatch.setattr(Harness, "keycrm", lambda self: KeyCRMClient(
        self.settings.keycrm.url, self.settings.keycrm_api_key(), requests_per_minute=4, rate_window_s=1.0))
    k0 = len(rig.kc.log)
    run_until_complete(h, rig.days, attempts=1)
    counted = rig.keycrm.admin.get("/__admin/requests").json()
    rig.quiet()
    assert len(rig.kc.log) - k0 >= 12  # enough requests for the limit to bind
    assert rig.kc.max_in_window(1.0, k0) <= 4
    assert counted["max_in_window"] <= 4 and counted["status_counts"].get("429", 0) == 0
    assert_same_as_clean(rig, clean)


def test_orders_change_and_pages_shift_while_paging(rig: Rig, tmp_path, env, monkeypatch):
    """Pages of 2 (the client's page size lowered for the test) and, between two page requests: a status
    change of an order already read and of one not read yet, an order moved into the day from the next
    (the following pages shift by one), a new order.  After the next run (the sensor's next tick) Bimp holds
    exactly what a clean run over the final KeyCRM data writes."""
    monkeypatch.setattr(keycrm_client, "PAGE_LIMIT", 2)
    rig.load()
    day, other = rig.days[0], rig.days[1]
    orders = sorted(rig.keycrm_state["orders"], key=lambda o: o["id"])
    first = [o["id"] for o in orders if R.shop_days({"orders": [o]}) == [day]]
    mover = next(o for o in orders if R.shop_days({"orders": [o]}) == [other])
    assert len(first) >= 5  # three pages
    admin = rig.keycrm.admin
    changes: list[Callable[[], object]] = [
        lambda: admin.patch(f"/__admin/orders/{first[0]}", json={"status_id": 3}),   # already read
        lambda: admin.patch(f"/__admin/orders/{first[-1]}", json={"status_id": 19}),  # not read yet
        lambda: admin.patch(f"/__admin/orders/{mover['id']}",
                            json={"ordered_at": f"{day}T09:30:00.000000Z", "created_at": f"{day}T09:30:00.000000Z"}),
        lambda: rig.keycrm.admin.post("/v1/order", headers={"Authorization": f"Bearer {DEMO_KEYCRM_KEY}"}, json={
            "source_id": 1, "ordered_at": f"{day} 10:00:00", "buyer": {"full_name": "Нова Покупчиня",
                                                                        "phone": "+380939998877"},
            "products": [{"sku": orders[0]["products"][0]["sku"], "quantity": 1, "price": 100}]}),
    ]
    real_call = KeyCRMClient._call  # every KeyCRM request goes through it

    def paging(self, method, path, **kw):
        out = real_call(self, method, path, **kw)
        params = kw.get("params") or {}
        if path == "order" and params.get("page") == 1 and changes and "filter[created_between]" in params:
            while changes:  # all between page 1 and page 2
                changes.pop(0)().raise_for_status()
        return out

    monkeypatch.setattr(KeyCRMClient, "_call", paging)
    h = rig.harness(tmp_path, "shifting")
    h.sync_day(day)
    assert not changes  # every change landed between two page requests
    monkeypatch.setattr(KeyCRMClient, "_call", real_call)
    for d in rig.days:  # the next tick: incremental by updated_at
        h.sync_day(d)
    final_keycrm = rig.keycrm.state()
    shifted = R.canonical(rig.bimp.state()["companies"][0])
    assert R.duplicates(rig.bimp.state()["companies"][0], rig.bimp_state["companies"][0]) == {}

    rig.load(final_keycrm)  # a clean run over the final KeyCRM data
    clean_h = rig.harness(tmp_path, "shifting-clean")
    for d in rig.days:
        clean_h.sync_day(d)
    differences = R.diff(R.canonical(rig.bimp.state()["companies"][0]), shifted)
    rig.load()
    assert differences == [], "\n".join(differences)
    _count("page_shifts", 4)
