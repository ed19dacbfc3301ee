"""`keybimp` as a shop owner meets it when something is wrong on their side: a secret pasted where a variable's
NAME belongs, an unknown integration name, a missing settings file, a bad date.  Each is one clear message and a
non-zero exit code, never a traceback, and never a secret.  No emulator is needed: each command stops before it
calls an API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from keybimp_pipeline import cli

PASTED_KEY = "SeCrEtKeyPasted9xQ"  # a KeyCRM key pasted into api_key_env (letters and digits only)
PASTED_PASSWORD = "Sup3r Secret Pw!"  # a password pasted into password_env
PASTED_TOKEN = "kbsecret7q2xw9vlr4tz8nq1hp6jd3fs5"  # one case, no underscore: still no variable name
SECRETS = (PASTED_KEY, PASTED_PASSWORD, PASTED_TOKEN)


def integration(name: str = "shop", **changes) -> dict:
    out = {"name": name, "start_date": "2026-09-01",
           "keycrm": {"url": "http://127.0.0.1:9/v1", "api_key_env": "KB_CLI_KEY"},
           "bimp": {"url": "http://127.0.0.1:9", "email_env": "KB_CLI_EMAIL", "password_env": "KB_CLI_PASS",
                    "company": "000001398"}}
    for section, values in changes.items():
        out[section] = {**out[section], **values} if isinstance(values, dict) else values
    return out


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user in their own folder: settings file and data folder named by the environment."""
    monkeypatch.chdir(tmp_path)
    config, data = tmp_path / "integrations.yaml", tmp_path / "data"
    monkeypatch.setenv("KEYBIMP_CONFIG", str(config))
    monkeypatch.setenv("KEYBIMP_DATA", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for var in ("KB_CLI_KEY", "KB_CLI_EMAIL", "KB_CLI_PASS"):
        monkeypatch.delenv(var, raising=False)

    def write(*integrations: dict) -> Path:
        config.write_text(yaml.safe_dump({"integrations": list(integrations)}, sort_keys=False), encoding="utf-8")
        return config

    write(integration())
    return {"dir": tmp_path, "config": config, "data": data, "write": write}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        rc = cli.main(list(argv))
    except SystemExit as exc:  # argparse
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_secret_pasted_into_an_env_name_field_is_never_echoed_or_stored(user, capsys):
    """R-CONN-6 / SPEC §2: secrets never reach CLI output or the history.  A value in api_key_env /
    email_env / password_env that is no variable name is refused without being shown, and one that an
    older version stored in the history is hidden there (on display and in the file)."""
    user["data"].mkdir()
    leaked = {"paused": True, "settings": {"keycrm.api_key_env": PASTED_KEY, "bimp.password_env": "KB_CLI_PASS"},
              "history": [{"at": "2026-12-01T10:00:00+00:00", "event": "created", "paused": True},
                          {"at": "2026-12-01T11:00:00+00:00", "event": "setting", "key": "bimp.password_env",
                           "old": "KB_CLI_PASS", "new": PASTED_PASSWORD}]}
    (user["data"] / "shop.control.json").write_text(json.dumps(leaked), encoding="utf-8")
    user["write"](integration(keycrm={"api_key_env": PASTED_KEY},
                              bimp={"email_env": PASTED_TOKEN, "password_env": PASTED_PASSWORD}))

    seen = []
    for argv in (["check"], ["check", "shop"], ["sync", "shop"], ["stocks", "shop"], ["start", "shop"],
                 ["issues", "shop"], ["history", "shop"]):
        rc, out, err = run(capsys, *argv)
        seen.append(out + err)
        if argv[0] not in ("issues", "history"):
            assert rc == 2, (argv, out, err)
    text = "\n".join(seen)
    for secret in SECRETS:
        assert secret not in text
    for path in user["data"].rglob("*"):
        if path.is_file():
            for secret in SECRETS:
                assert secret.encode() not in path.read_bytes(), path
    for where in ("keycrm.api_key_env", "bimp.email_env", "bimp.password_env"):
        assert (f"integrations[0].{where}: does not look like an environment variable name — put the secret in "
                "the environment and the variable's NAME here") in text
    history = run(capsys, "history", "shop")[1]
    assert "bimp.password_env: 'KB_CLI_PASS' → '(hidden: not an environment variable name)'" in history


@pytest.mark.parametrize("argv", [["issues", "nope"], ["issues", "nope", "--json"], ["history", "nope"],
                                  ["start", "nope"], ["pause", "nope"], ["sync", "nope"], ["stocks", "nope"],
                                  ["prices", "nope"], ["check", "nope"]])
def test_an_unknown_integration_name_is_one_error_listing_the_known_names(user, capsys, argv):
    user["write"](integration("shop-a"), integration("shop-b", keycrm={"api_key_env": "KB_CLI_KEY_B"}))
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    assert out == ""
    assert err == f"keybimp: no integration named 'nope' in {user['config']}; known: shop-a, shop-b\n"


def test_another_folder_without_settings_is_an_error_and_creates_nothing(user, capsys, monkeypatch, tmp_path):
    """Run where no integrations.yaml lies and KEYBIMP_CONFIG/KEYBIMP_DATA are unset: the file looked for and
    KEYBIMP_CONFIG are named, the exit code is 2, and no ./data folder or DuckDB file is left behind (the
    shipped example's demo shops stand in only in the project folder itself)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("KEYBIMP_CONFIG")
    monkeypatch.delenv("KEYBIMP_DATA")
    for argv in (["issues", "demo-shop"], ["history", "demo-shop"], ["check"], ["sync", "demo-shop"],
                 ["start", "demo-shop"]):
        rc, out, err = run(capsys, *argv)
        assert rc == 2, (argv, out, err)
        assert (f"{elsewhere / 'integrations.yaml'}: settings file not found (KEYBIMP_CONFIG is not set). Set "
                "KEYBIMP_CONFIG to your integrations file") in err
        assert "OK" not in out and "no open sync issues" not in out
    assert list(elsewhere.iterdir()) == []


def test_read_only_commands_never_create_the_data_folder(user, capsys):
    """`issues` and `history` of a configured integration never synced with this data folder say so, and
    leave no data folder or DuckDB file behind."""
    rc, out, _ = run(capsys, "issues", "shop")
    assert rc == 0
    assert out == (f"shop: not synced yet with this data folder: no {user['data'] / 'shop.duckdb'} (KEYBIMP_DATA "
                   "names the folder); no sync issues to show\n")
    assert run(capsys, "issues", "shop", "--json")[:2] == (0, "")
    rc, out, _ = run(capsys, "history", "shop")
    assert rc == 0 and out.startswith(f"shop: no history in {user['data']} (KEYBIMP_DATA) yet")
    assert not user["data"].exists()
