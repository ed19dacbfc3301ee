"""Integration control state outside DuckDB: paused or started, the change history, the KeyCRM key registry.

Sensors read the paused flag on every tick, so it lives in a small JSON file per integration that never
waits on a run's DuckDB lock.  A new integration is paused until someone starts it (R-CONN-5).

Every load of the integrations file (each CLI command, the Dagster code location) goes through
:func:`on_load`, which

* refuses a KeyCRM key that an integration of *another* Bimp company used before (R-CONN-3): the file
  itself can only compare the keys it holds now, so the fingerprints seen are kept in a registry file
  (``keycrm_keys.json`` in $KEYBIMP_DATA: integration, Bimp company, fingerprint — never a key).  A key
  enters the registry only once Bimp let the pipeline into that company (:func:`remember_keys`, called by a
  passed `keybimp check` and by a run's Bimp reference refresh), never from a settings file alone: a
  mistyped company code that Bimp refuses binds nothing;
* records a snapshot of each integration's settings and appends one history entry per changed key,
  old → new (R-CONN-6).  The snapshot holds variable names and key fingerprints, never a secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from keybimp_pipeline.settings import (
    NOT_A_NAME,
    Integration,
    IntegrationsFile,
    SettingsError,
    key_fingerprint,
    looks_like_env_name,
    mask_env_values,
)
from keybimp_pipeline.storage.db import data_dir

REGISTRY_FILE = "keycrm_keys.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _path(name: str, create: bool = True) -> Path:
    return data_dir(create) / f"{name}.control.json"


def _lock(path: Path) -> FileLock:
    return FileLock(str(path) + ".lock", timeout=30)


def read(name: str) -> dict:
    """The control state of an integration; an integration never seen is paused with an empty history."""
    path = _path(name, create=False)  # a reader never creates the data folder
    if not path.exists():
        return {"paused": True, "history": []}
    state = json.loads(path.read_text(encoding="utf-8"))
    state.setdefault("paused", True)
    state.setdefault("history", [])
    _scrub(state)
    return state


def _scrub(state: dict) -> bool:
    """Hide every ``*_env`` value that is no variable name (a secret pasted there, recorded by an older
    version) in the snapshot and the history; True when something was hidden."""
    changed = False
    if isinstance(state.get("settings"), dict):
        masked = mask_env_values(state["settings"])
        changed = masked != state["settings"]
        state["settings"] = masked
    for entry in state["history"]:
        if str(entry.get("key", "")).endswith("_env"):
            for side in ("old", "new"):
                if entry.get(side) is not None and not looks_like_env_name(entry[side]):
                    entry[side] = NOT_A_NAME
                    changed = True
    state["_scrubbed"] = changed
    return changed


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)  # readers (sensor ticks) see the old or the new file, never half of one


def _write(name: str, state: dict) -> None:
    _write_json(_path(name), {k: v for k, v in state.items() if k != "_scrubbed"})


def is_paused(name: str) -> bool:
    return bool(read(name).get("paused", True))


def set_paused(name: str, paused: bool, who: str = "cli") -> bool:
    """Pause or start all automations of ``name`` in one action; True when the state changed (logged)."""
    with _lock(_path(name)):
        state = read(name)
        changed = state.get("paused", True) != paused
        if changed:
            state["paused"] = paused
            state["history"].append({"at": _now(), "who": who, "event": "pause" if paused else "start"})
        _write(name, state)
        return changed


def history(name: str) -> list[dict]:
    state = read(name)
    if state.get("_scrubbed"):  # a secret an older version stored: hide it in the file too, now
        with _lock(_path(name)):
            state = read(name)
            _write(name, state)
    return list(state.get("history", []))


def record_settings(name: str, snapshot: dict) -> list[dict]:
    """Store the settings snapshot; append one history entry per changed key (old → new).

    The first snapshot of an integration is logged as its creation (paused, R-CONN-5) rather than as a
    change of every key.
    """
    with _lock(_path(name)):
        state = read(name)
        old = state.get("settings")
        fp = "keycrm.api_key_fingerprint"
        if old is not None and fp in old and fp not in snapshot:
            # this process was started without the key's variable (the UI, a helper command): the key is
            # unknown here, not removed — never log it as a change
            snapshot = {**snapshot, fp: old[fp]}
        changes: list[dict] = []
        now = _now()
        if old is None:
            state["history"].append({"at": now, "event": "created",
                                     "paused": bool(state.get("paused", True))})
        else:
            for key in sorted(set(old) | set(snapshot)):
                if old.get(key) != snapshot.get(key):
                    changes.append({"at": now, "event": "setting", "key": key,
                                    "old": old.get(key), "new": snapshot.get(key)})
        if old != snapshot or "settings" not in state or state.get("_scrubbed"):
            state["settings"] = snapshot
            state["history"].extend(changes)
            _write(name, state)
        return changes


def snapshot(integration: Integration) -> dict:
    """The settings as dotted keys, plus the KeyCRM key's fingerprint when its variable is set.

    The fingerprint makes a key rotation visible in the history without ever writing the key.
    """
    snap = integration.settings_snapshot()
    key = os.environ.get(integration.keycrm.api_key_env)
    if key:
        snap["keycrm.api_key_fingerprint"] = key_fingerprint(key)
    return snap


# --------------------------------------------------------------------------------------------------
# R-CONN-3 across time: the fingerprints seen, with the Bimp company each served
# --------------------------------------------------------------------------------------------------


def registry_path(create: bool = True) -> Path:
    return data_dir(create) / REGISTRY_FILE


def read_registry() -> list[dict]:
    path = registry_path(create=False)
    if not path.exists():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("keys", []))


def _company_ids(company: str, extra: Iterable[str] = ()) -> set[str]:
    """A company is known by its code and its uuid (Bimp gives both).  Not by the Bimp URL: the same service
    is written http://127.0.0.1:8802 in one file and http://localhost:8802 in another, and the company stays
    the same; what R-CONN-3 guards against is one key serving two *companies*."""
    return {str(c).strip().casefold() for c in [company, *extra] if c}


def _entry_ids(entry: dict) -> set[str]:
    return _company_ids(entry.get("company", ""), entry.get("company_ids", []))


def _known_ids(entries: list[dict], ids: set[str]) -> set[str]:
    """Widen ``ids`` with the aliases (code ↔ uuid) the registry learned for the same company."""
    out = set(ids)
    for entry in entries:
        eids = _entry_ids(entry)
        if eids & out:
            out |= eids
    return out


def key_problems(settings: IntegrationsFile) -> list[str]:
    """Integrations whose KeyCRM key served another Bimp company before (R-CONN-3), one line each."""
    entries = read_registry()
    out: list[str] = []
    for index, integration in enumerate(settings.integrations):
        key = os.environ.get(integration.keycrm.api_key_env)
        if not key:
            continue  # nothing to compare; the command that needs the key reports the missing variable
        fp = key_fingerprint(key)
        ids = _known_ids(entries, _company_ids(integration.bimp.company))
        for entry in entries:
            if entry.get("fingerprint") == fp and not (_entry_ids(entry) & ids):
                out.append(
                    f"integrations[{index}].keycrm.api_key_env: the KeyCRM API key in {integration.keycrm.api_key_env} "
                    f"(fingerprint {fp}) already served Bimp company '{entry.get('company')}' through integration "
                    f"'{entry.get('integration')}'; one KeyCRM key may serve only one Bimp company (R-CONN-3). "
                    f"If that account really moved, remove fingerprint {fp} from {registry_path()}")
                break
    return out


def remember_keys(settings: IntegrationsFile, company_ids: dict[str, Iterable[str]] | None = None) -> None:
    """Add each integration's (name, Bimp company, key fingerprint) to the registry.

    ``company_ids`` (integration name → the company's code and uuid, as learned from Bimp by `check`) lets a
    company named by code in one file and by uuid in another be recognised as the same one.
    """
    path = registry_path()
    with _lock(path):
        entries = read_registry()
        changed = False
        for integration in settings.integrations:
            key = os.environ.get(integration.keycrm.api_key_env)
            if not key:
                continue
            fp = key_fingerprint(key)
            found = next((e for e in entries if e.get("fingerprint") == fp and e.get("integration") == integration.name
                          and _entry_ids(e) & _company_ids(integration.bimp.company)), None)
            extra = sorted({str(x) for x in (company_ids or {}).get(integration.name, []) if x})
            if found is None:
                entries.append({"integration": integration.name, "bimp_url": integration.bimp.url,
                                "company": integration.bimp.company, "fingerprint": fp,
                                "company_ids": extra, "first_seen": _now()})
                changed = True
            elif extra and not set(extra) <= set(found.get("company_ids", [])):
                found["company_ids"] = sorted(set(found.get("company_ids", [])) | set(extra))
                changed = True
        if changed:
            _write_json(path, {"keys": entries})


def on_load(settings: IntegrationsFile) -> None:
    """What every load of the integrations file does: refuse a key of another company, log setting changes.

    Raises SettingsError (one line per integration at fault) before anything is recorded.  The keys are not
    remembered here: only a company Bimp confirmed binds a key (`remember_keys`).
    """
    problems = key_problems(settings)
    if problems:
        raise SettingsError(problems)
    for integration in settings.integrations:
        record_settings(integration.name, snapshot(integration))


__all__ = [
    "history",
    "is_paused",
    "key_problems",
    "on_load",
    "read",
    "read_registry",
    "record_settings",
    "registry_path",
    "remember_keys",
    "set_paused",
    "snapshot",
]
