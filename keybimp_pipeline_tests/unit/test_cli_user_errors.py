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


def test_an_impossible_start_date_is_a_path_qualified_settings_error(user, capsys):
    """`start_date: 2026-09-31` (unquoted, as users write dates): the file, the setting's path, the value and
    what is wrong, exit 2 -- not PyYAML's bare ValueError from reading the file."""
    user["config"].write_text(yaml.safe_dump({"integrations": [integration()]}, sort_keys=False)
                              .replace("start_date: '2026-09-01'", "start_date: 2026-09-31"), encoding="utf-8")
    assert "start_date: 2026-09-31\n" in user["config"].read_text()
    rc, _, err = run(capsys, "check")
    assert rc == 2
    assert err == (f"keybimp: settings error:\n{user['config']}: integrations[0].start_date: '2026-09-31' is not a "
                   "date: day value is outside expected range (write YYYY-MM-DD)\n")


def test_a_valid_unquoted_start_date_still_loads(user):
    from keybimp_pipeline.settings import load_settings

    user["config"].write_text(user["config"].read_text().replace("'2026-09-01'", "2026-09-01"), encoding="utf-8")
    assert str(load_settings(user["config"]).get("shop").start_date) == "2026-09-01"


@pytest.mark.parametrize("value", ["2026/11/01", "01.11.2026", "20261101", "2026-11-31"])
def test_sync_dates_must_be_written_yyyy_mm_dd(user, capsys, value):
    rc, out, err = run(capsys, "sync", "shop", "--from", value)
    assert rc == 2 and out == ""
    assert err.splitlines()[-1] == (f"keybimp sync: error: argument --from: {value!r} is not a date: expected "
                                    "YYYY-MM-DD, like 2026-11-01")


def test_sync_from_in_the_future_or_before_start_date_says_what_to_do(user, capsys):
    from datetime import UTC, datetime, timedelta

    from keybimp_pipeline.sync.days import local_day

    today = local_day(datetime.now(UTC), "Europe/Kyiv")
    later = today + timedelta(days=30)
    rc, _, err = run(capsys, "sync", "shop", "--from", str(later))
    assert rc == 2
    assert err.splitlines()[-1] + "\n" == (f"keybimp: --from {later} is in the future (today is {today} in Europe/Kyiv, the shop's time "
                   "zone): there is nothing to sync yet\n")  # not "--to … is before --from": --to was not given
    rc, _, err = run(capsys, "sync", "shop", "--from", "2026-08-15")
    assert rc == 2
    # README: older days are "a backfill away" -- the message says how to get there
    assert err.splitlines()[-1] + "\n" == (f"keybimp: --from 2026-08-15 is before the first day partition 2026-09-01 (the earliest "
                   f"start_date in {user['config']}). To sync older days, lower start_date of 'shop' in that file "
                   "to 2026-08-15 or earlier: the older days then become day partitions like the others, synced "
                   "by this command or backfilled in the Dagster UI\n")


def test_every_option_of_the_shop_commands_has_a_help_text():
    """`keybimp sync --help` and the others describe every option (`emulate`, test equipment, has its own)."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = [f"{name} {action.dest}" for name, sub in commands.items() if name != "emulate"
               for action in sub._actions if action.dest != "help" and not action.help]
    assert missing == []
    assert "--full-refresh" in commands["sync"].format_help() and "cursor" in commands["sync"].format_help()
