"""Integration control state outside DuckDB: paused or started, and the change history (R-CONN-5/6).

Sensors read it on every tick, so it lives in a small JSON file per integration that never waits on a
run's DuckDB lock.  A new integration is paused until someone starts it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from keybimp_pipeline.storage.db import data_dir


def _path(name: str) -> Path:
    return data_dir() / f"{name}.control.json"


def read(name: str) -> dict:
    path = _path(name)
    if not path.exists():
        return {"paused": True, "history": [], "fingerprints": {}}
    return json.loads(path.read_text())


def _write(name: str, state: dict) -> None:
    path = _path(name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1, default=str))
    os.replace(tmp, path)


def is_paused(name: str) -> bool:
    return bool(read(name).get("paused", True))


def set_paused(name: str, paused: bool, who: str = "cli") -> None:
    with FileLock(str(_path(name)) + ".lock"):
        state = read(name)
        if state.get("paused", True) != paused:
            state["paused"] = paused
            state["history"].append({"at": datetime.now(UTC).isoformat(), "who": who,
                                     "event": "pause" if paused else "start"})
        _write(name, state)


def record_settings(name: str, snapshot: dict) -> list[dict]:
    """Store the settings snapshot; append one history entry per changed key (old → new)."""
    with FileLock(str(_path(name)) + ".lock"):
        state = read(name)
        old = state.get("settings")
        changes = []
        if old is not None:
            for key in sorted(set(old) | set(snapshot)):
                if old.get(key) != snapshot.get(key):
                    changes.append({"at": datetime.now(UTC).isoformat(), "event": "setting", "key": key,
                                    "old": old.get(key), "new": snapshot.get(key)})
        state["settings"] = snapshot
        state["history"].extend(changes)
        _write(name, state)
        return changes
