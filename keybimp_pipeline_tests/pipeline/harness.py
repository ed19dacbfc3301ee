"""A shop on both emulators and the pipeline's steps run in asset order, for pipeline tests.

`Harness.sync_day` calls exactly the steps the Dagster assets call, in lineage order; one test also runs
the real Dagster job to prove the wiring.
"""

from __future__ import annotations

import copy
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import yaml

from keybimp_pipeline.clients.bimp import BimpClient
from keybimp_pipeline.clients.keycrm import KeyCRMClient
from keybimp_pipeline.settings import load_settings
from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.sync import reference
from keybimp_pipeline.sync.documents import write_documents
from keybimp_pipeline.sync.extract import extract_day
from keybimp_pipeline.sync.issues import open_issues
from keybimp_pipeline.sync.match import match_day
from keybimp_pipeline.sync.orders import EXTERNAL_ID_SOURCE, write_customer_orders
from keybimp_pipeline.sync.resolve import resolve
from keybimp_pipeline.sync.stage import stage_day

ROOT = Path(__file__).resolve().parents[2]


def deep_update(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and value:
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def write_config(path: Path, keycrm_url: str, bimp_url: str, overrides: dict | None = None,
                 extra: list[dict] | None = None) -> Path:
    data = yaml.safe_load((ROOT / "integrations.example.yaml").read_text())
    first = data["integrations"][0]
    first["keycrm"]["url"] = keycrm_url + "/v1"
    first["bimp"]["url"] = bimp_url
    first["keycrm"]["requests_per_minute"] = 600
    data["integrations"] = [deep_update(first, overrides or {})] + (extra or [])
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path


class Harness:
    def __init__(self, config_path: Path, data_dir: Path, keycrm, bimp, name: str = "demo-shop") -> None:
        self.config_path = config_path
        self.data_dir = data_dir
        self.keycrm_server = keycrm
        self.bimp_server = bimp
        self.name = name

    @property
    def settings(self):
        stamp = self.config_path.stat().st_mtime_ns
        if getattr(self, "_stamp", None) != stamp:
            self._settings, self._stamp = load_settings(self.config_path).get(self.name), stamp
        return self._settings

    @property
    def store(self) -> Store:
        return Store(self.name, self.data_dir)

    def keycrm(self) -> KeyCRMClient:
        s = self.settings
        return KeyCRMClient(s.keycrm.url, s.keycrm_api_key(), requests_per_minute=s.keycrm.requests_per_minute)

    def bimp(self) -> BimpClient:
        s = self.settings
        email, password = s.bimp_credentials()
        return BimpClient(s.bimp.url, email, password, str(s.bimp.company))

    def refresh_reference(self) -> None:
        with self.keycrm() as k:
            reference.refresh_keycrm(self.store, k)
        with self.bimp() as b:
            reference.refresh_bimp(self.store, b, external_id_source=EXTERNAL_ID_SOURCE)

    def sync_day(self, day: date | str, *, full_refresh: bool = False, documents: bool = True,
                 run_id: str | None = None) -> dict:
        day = date.fromisoformat(day) if isinstance(day, str) else day
        s, store = self.settings, self.store
        with self.keycrm() as k:
            extract_day(store, k, day, s.timezone, full_refresh=full_refresh)
        if not (reference.is_fresh(store, "keycrm") and reference.is_fresh(store, "bimp")):
            self.refresh_reference()
        stage_day(store, day, strict_names=s.customers.strict_names)
        match_day(store, day, s)
        resolved = resolve(store, s)
        assert not resolved.problems, resolved.problems
        with self.bimp() as b:
            derived, result, _issues = write_customer_orders(store, day, s, resolved, b, run_id)
        out = {"orders": result}
        if documents:
            with self.bimp() as b:
                out["documents"], _ = write_documents(store, day, s, resolved, b, derived, run_id)
        return out

    def sync_range(self, start: date, end: date, **kw) -> list[dict]:
        return [self.sync_day(start + timedelta(days=i), **kw) for i in range((end - start).days + 1)]

    def issues(self) -> pd.DataFrame:
        return open_issues(self.store)

    def bimp_company(self) -> dict:
        state = self.bimp_server.state()
        return state["companies"][0]
