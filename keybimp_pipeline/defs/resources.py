"""The one Dagster resource: settings, stores and vendor clients for an integration."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import dagster as dg

from keybimp_pipeline.clients.bimp import BimpClient
from keybimp_pipeline.clients.keycrm import KeyCRMClient
from keybimp_pipeline.settings import Integration, IntegrationsFile, load_settings
from keybimp_pipeline.storage.db import Store

EXAMPLE = Path(__file__).resolve().parents[2] / "integrations.example.yaml"


def settings_path() -> Path:
    """$KEYBIMP_CONFIG, else ./integrations.yaml, else -- in the project folder only -- the shipped example (so
    a fresh clone loads).  Anywhere else a missing file is an error naming the path looked for: the example's
    demo shops must not stand in for the user's integrations because `keybimp` ran in another folder."""
    if os.environ.get("KEYBIMP_CONFIG"):
        return Path(os.environ["KEYBIMP_CONFIG"])
    local = Path("integrations.yaml")
    if local.exists() or Path.cwd().resolve() != EXAMPLE.parent:
        return local
    return EXAMPLE


def load() -> IntegrationsFile:
    return load_settings(settings_path())


class Keybimp(dg.ConfigurableResource):
    """Gives assets the integration's settings, its DuckDB store and clients built from env secrets."""

    config_path: str | None = None
    data_dir: str | None = None

    @cached_property
    def _settings(self) -> IntegrationsFile:
        return load_settings(self.config_path) if self.config_path else load()

    def integration(self, name: str) -> Integration:
        return self._settings.get(name)

    def index_of(self, name: str) -> int:
        return self._settings.names().index(name)

    def store(self, name: str) -> Store:
        return Store(name, Path(self.data_dir) if self.data_dir else None)

    def keycrm(self, name: str) -> KeyCRMClient:
        s = self.integration(name)
        return KeyCRMClient(s.keycrm.url, s.keycrm_api_key(), requests_per_minute=s.keycrm.requests_per_minute)

    def confirm_company(self, name: str) -> None:
        """Bimp let this integration into its company: its KeyCRM key now serves that company (R-CONN-3's
        registry binds a key only once the company is confirmed, never from the settings file alone)."""
        from keybimp_pipeline import control

        control.remember_keys(IntegrationsFile.model_construct(integrations=[self.integration(name)]))

    def bimp(self, name: str) -> BimpClient:
        s = self.integration(name)
        email, password = s.bimp_credentials()
        return BimpClient(s.bimp.url, email, password, str(s.bimp.company))
