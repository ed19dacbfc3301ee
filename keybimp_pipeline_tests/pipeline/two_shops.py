"""Two demo shops (two KeyCRM accounts, two KeyCRM emulators) writing into one Bimp company (R-CONN-4).

One KeyCRM emulator serves one account, so the second shop gets its own server (`keycrm2`, once per
session, like the `emulators` fixture).  The integrations file is the shipped example with its two
integrations pointed at the test servers; each test PUTs the full states first.
"""

from __future__ import annotations

import copy
import functools
from datetime import date
from pathlib import Path

import pytest
import yaml

from keybimp_pipeline.clients.keycrm import reset_shared_limiters
from keybimp_pipeline.emulators.demo_shop import (
    DEMO_BIMP_EMAIL,
    DEMO_BIMP_PASSWORD,
    DEMO_KEYCRM_KEY,
    DEMO_KEYCRM_KEY_2,
    generate_demo,
)
from keybimp_pipeline.emulators.keycrm.app import create_app as keycrm_app
from keybimp_pipeline_tests.servers import ServedApp

ROOT = Path(__file__).resolve().parents[2]
FIRST_DAY, LAST_DAY = date(2026, 9, 2), date(2026, 9, 4)
NAMES = ("demo-shop", "demo-shop-2")


@pytest.fixture(scope="session")
def keycrm2():
    """The second shop's KeyCRM account: a second KeyCRM emulator."""
    server = ServedApp(keycrm_app())
    yield server
    server.stop()


@functools.lru_cache(maxsize=1)
def demo_states() -> dict:
    """Two small shops whose orders fall on FIRST_DAY..LAST_DAY (shop-local), and their Bimp company."""
    return generate_demo(orders=16, days=3, end=LAST_DAY, shops=2)


def put_states(keycrm, keycrm2, bimp) -> dict:
    states = copy.deepcopy(demo_states())
    keycrm.put_state(states["keycrm"][0])
    keycrm2.put_state(states["keycrm"][1])
    bimp.put_state(states["bimp"])
    reset_shared_limiters()
    return states


def write_two_shop_config(path: Path, keycrm_url: str, keycrm2_url: str, bimp_url: str,
                          changes: dict[str, dict] | None = None) -> Path:
    """The example file with both integrations pointed at the test servers; ``changes`` per integration."""
    from keybimp_pipeline_tests.pipeline.harness import deep_update

    data = yaml.safe_load((ROOT / "integrations.example.yaml").read_text(encoding="utf-8"))
    urls = {"demo-shop": keycrm_url, "demo-shop-2": keycrm2_url}
    out = []
    for integration in data["integrations"]:
        integration["keycrm"]["url"] = urls[integration["name"]] + "/v1"
        integration["keycrm"]["requests_per_minute"] = 600
        integration["bimp"]["url"] = bimp_url
        out.append(deep_update(integration, (changes or {}).get(integration["name"], {})))
    data["integrations"] = out
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def set_env(monkeypatch, config: Path, data_dir: Path) -> None:
    monkeypatch.setenv("KEYBIMP_CONFIG", str(config))
    monkeypatch.setenv("KEYBIMP_DATA", str(data_dir))
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP", DEMO_KEYCRM_KEY)
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP_2", DEMO_KEYCRM_KEY_2)
    monkeypatch.setenv("BIMP_EMAIL", DEMO_BIMP_EMAIL)
    monkeypatch.setenv("BIMP_PASSWORD", DEMO_BIMP_PASSWORD)
