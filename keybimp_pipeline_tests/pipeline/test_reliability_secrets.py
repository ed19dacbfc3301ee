"""Secrets never leave the environment (SPEC §2: "never written to the history, logs, DuckDB or run metadata in
clear text"; the working rule: never in logs or exception messages).

A real `keybimp sync` runs with distinctive fake secrets the emulators were loaded with, then two more fail on
a wrong KeyCRM key and a wrong Bimp password (so the Dagster event log holds exception texts).  Every byte of
every file under KEYBIMP_DATA and DAGSTER_HOME (DuckDB, the SQLite ledger, Dagster's SQLite event and run
storage, control files), every VARCHAR value inside the DuckDB file (DuckDB may compress strings, so bytes
alone prove nothing there), the processes' output, captured Python logs and the texts of the clients'
exceptions are searched for each secret.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pytest

from keybimp_pipeline.clients.bimp import BimpClient, BimpError
from keybimp_pipeline.clients.keycrm import KeyCRMClient, KeyCRMError, reset_shared_limiters
from keybimp_pipeline_tests.pipeline import reliability as R
from keybimp_pipeline_tests.pipeline.harness import Harness

DAY = "2026-11-02"
KEY = "kbSECRETkeycrm7Q2xW9vLr4Tz8Nq1Hp6Jd3Fs5Gk0Ym2Ub9Xe"  # 50 characters, like a real KeyCRM key
PASSWORD = "kbSECRETbimp-Pw#7t!Qz'; DROP TABLE x;--"
EMAIL = "secret-owner@keybimp.test"
WRONG_KEY = "kbSECRETwrongKey0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q"
WRONG_PASSWORD = "kbSECRETwrong-password-42"
SECRETS = (KEY, PASSWORD, WRONG_KEY, WRONG_PASSWORD)


def _leaks_in_bytes(data: bytes) -> list[str]:
    return [s for s in SECRETS if s.encode() in data or s.encode("utf-16-le") in data]


def _file_leaks(root: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hits = _leaks_in_bytes(path.read_bytes())
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def _duckdb_leaks(path: Path) -> list[str]:
    """Every text value of every table, read through DuckDB itself."""
    hits = []
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                              "WHERE data_type IN ('VARCHAR', 'JSON')").fetchall()
        for table, column in columns:
            for secret in SECRETS:
                n = con.execute(f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS VARCHAR) LIKE ?',
                                [f"%{secret}%"]).fetchone()[0]
                if n:
                    hits.append(f"{table}.{column}: {secret[:12]}…")
        return hits
    finally:
        con.close()


@pytest.fixture
def world(emulators):
    return R.cli_world(emulators)


def test_secrets_never_in_files_event_log_output_or_exceptions(world, tmp_path, monkeypatch, caplog):
    keycrm, bimp = R.with_secrets(*R.small_shop(12, days=1, end=R.date(2026, 11, 2), only_day=DAY),
                                  keycrm_key=KEY, bimp_email=EMAIL, bimp_password=PASSWORD)
    world.load(keycrm, bimp)
    good = world.env("secrets-ok", keycrm_key=KEY, bimp_email=EMAIL, bimp_password=PASSWORD)
    wrong_key = world.env("secrets-wrong-key", keycrm_key=WRONG_KEY, bimp_email=EMAIL, bimp_password=PASSWORD)
    wrong_pw = world.env("secrets-wrong-pw", keycrm_key=KEY, bimp_email=EMAIL, bimp_password=WRONG_PASSWORD)
    logs = tmp_path / "logs"
    logs.mkdir()

    assert world.runner.run(R.sync_argv(DAY, DAY), logs / "ok.log", good) == 0
    assert world.runner.run(R.sync_argv(DAY, DAY), logs / "wrong-key.log", wrong_key) == 1
    assert world.runner.run(R.sync_argv(DAY, DAY), logs / "wrong-pw.log", wrong_pw) == 1
    assert "FAILED" in (logs / "wrong-key.log").read_text()
    assert len(world.company()["customerOrders"]) >= 8  # the good run really wrote

    # in-process: logs at DEBUG and the texts of the clients' errors
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP", KEY)
    monkeypatch.setenv("BIMP_EMAIL", EMAIL)
    monkeypatch.setenv("BIMP_PASSWORD", PASSWORD)
    monkeypatch.setenv("KEYBIMP_DATA", str(tmp_path / "inproc"))
    (tmp_path / "inproc").mkdir()
    reset_shared_limiters()
    Harness(world.config, tmp_path / "inproc", world.keycrm, world.bimp).refresh_reference()
    texts = [caplog.text]
    with KeyCRMClient(world.keycrm.url + "/v1", WRONG_KEY, max_retries=0) as k:
        with pytest.raises(KeyCRMError) as e:
            k.get_order(1)
        texts += [str(e.value), repr(e.value), repr(k)]
    world.keycrm.post("/__admin/faults", {"fail_next": [{"path": "*", "status": 500, "times": 1}]})
    with KeyCRMClient(world.keycrm.url + "/v1", KEY, max_retries=0) as k:
        with pytest.raises(KeyCRMError) as e:
            k.get_order(1)
        texts += [str(e.value), repr(e.value), repr(k)]
    with BimpClient(world.bimp.url, EMAIL, WRONG_PASSWORD, "000001398", max_retries=0) as b:
        with pytest.raises(BimpError) as e:
            b.call("organization/api-readList", {})
        texts += [str(e.value), repr(e.value), repr(b)]
    with BimpClient(world.bimp.url, EMAIL, PASSWORD, "000001398", max_retries=0) as b:
        world.bimp.post("/__admin/faults", {"fail_next": [{"path": "/org2/counterparty/api-insert", "status": 500}]})
        with pytest.raises(BimpError) as e:
            b.call("counterparty/api-insert", {"name": "x"})
        texts += [str(e.value), repr(e.value), repr(b)]
    texts.append(caplog.text)

    leaks = {f"text {i}": _leaks_in_bytes(t.encode()) for i, t in enumerate(texts) if _leaks_in_bytes(t.encode())}
    for tag in ("secrets-ok", "secrets-wrong-key", "secrets-wrong-pw"):
        leaks.update({f"{tag}/{k}": v for k, v in _file_leaks(world.dir / tag).items()})
        for db in (world.dir / tag / "data").glob("*.duckdb"):
            if hits := _duckdb_leaks(db):
                leaks[f"{tag}/{db.name} (values)"] = hits
    leaks.update({f"inproc/{k}": v for k, v in _file_leaks(tmp_path / "inproc").items()})
    leaks.update({f"logs/{k}": v for k, v in _file_leaks(logs).items()})
    assert leaks == {}
    # the search itself works: the event logs and DuckDB files exist and are non-trivial
    homes = list((world.dir / "secrets-ok" / "home").rglob("*.db"))
    assert homes and sum(p.stat().st_size for p in homes) > 10_000
    assert (world.dir / "secrets-ok" / "data" / "demo-shop.duckdb").stat().st_size > 10_000
