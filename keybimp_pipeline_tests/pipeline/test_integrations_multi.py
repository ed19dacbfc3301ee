"""Several integrations in one file: two shops into one Bimp company, shared keys, pause, history
(R-CONN-3..6).  The second shop has its own KeyCRM emulator (one emulator serves one account)."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from keybimp_pipeline import cli, control
from keybimp_pipeline import definitions as definitions_module
from keybimp_pipeline.defs.partitions import orders_partitions
from keybimp_pipeline.emulators.demo_shop import DEMO_KEYCRM_KEY, DEMO_KEYCRM_KEY_2
from keybimp_pipeline.settings import SettingsError, key_fingerprint, load_settings
from keybimp_pipeline.storage.ledger import Ledger
from keybimp_pipeline_tests.pipeline.harness import Harness
from keybimp_pipeline_tests.pipeline.two_shops import (  # noqa: F401 (keycrm2 is a fixture)
    NAMES,
    keycrm2,
    put_states,
    set_env,
    write_two_shop_config,
)

DAY = "2026-09-03"


@pytest.fixture
def shops(emulators, keycrm2, tmp_path, monkeypatch):  # noqa: F811
    keycrm, bimp = emulators
    states = put_states(keycrm, keycrm2, bimp)
    config = write_two_shop_config(tmp_path / "integrations.yaml", keycrm.url, keycrm2.url, bimp.url)
    data = tmp_path / "data"
    data.mkdir()
    set_env(monkeypatch, config, data)
    return {"keycrm": keycrm, "keycrm2": keycrm2, "bimp": bimp, "states": states, "config": config, "data": data}


def _orders_of_day(state: dict, day: str) -> dict[int, dict]:
    # 07:00Z..: the demo's orders of a Kyiv day; the day is decided in the shop's zone
    from keybimp_pipeline.sync.days import local_day

    return {o["id"]: o for o in state["orders"]
            if local_day(datetime.fromisoformat(o["created_at"]), "Europe/Kyiv").isoformat()
            == day}


def test_R_CONN_4_two_shops_in_one_bimp_company_stay_apart(shops):
    """Both shops sync the same day into one company: each store holds only its own shop's orders, each
    Bimp customer order belongs to exactly one shop's ledger, with that shop's order total."""
    h1 = Harness(shops["config"], shops["data"], shops["keycrm"], shops["bimp"], name="demo-shop")
    h2 = Harness(shops["config"], shops["data"], shops["keycrm2"], shops["bimp"], name="demo-shop-2")
    h1.sync_day(DAY, documents=False)
    h2.sync_day(DAY, documents=False)

    kc1, kc2 = shops["states"]["keycrm"]
    want1, want2 = _orders_of_day(kc1, DAY), _orders_of_day(kc2, DAY)
    assert set(want1) & set(want2), "the shops' order ids overlap: the test must prove they are kept apart"
    for h, want in ((h1, want1), (h2, want2)):
        raw = h.store.query("SELECT integration, order_id, payload FROM raw_orders")
        assert set(raw["integration"]) == {h.name}
        assert set(raw["order_id"]) == set(want)
        # the same order id, but this shop's order (totals differ between the shops)
        assert {int(r.order_id): Decimal(str(json.loads(r.payload)["grand_total"])) for r in raw.itertuples()} \
            == {i: Decimal(str(o["grand_total"])) for i, o in want.items()}
    assert (shops["data"] / "demo-shop.duckdb").exists() and (shops["data"] / "demo-shop-2.duckdb").exists()

    # one partition dimension value per integration; runs of one never touch the other's file
    parts = orders_partitions(load_settings(shops["config"]))
    assert parts.get_partitions_def_for_dimension("integration").get_partition_keys() == list(NAMES)

    company = h1.bimp_company()
    docs = {o["uuid"]: o for o in company["customerOrders"]}
    delivery = next(n["uuid"] for n in company["nomenclature"] if n["name"] == "Доставка товару")
    l1, l2 = Ledger(h1.store).frame("customer_order"), Ledger(h2.store).frame("customer_order")
    assert len(l1) and len(l2)
    assert not set(l1["bimp_uuid"]) & set(l2["bimp_uuid"]), "one Bimp order claimed by both shops"
    assert len(docs) == len(l1) + len(l2), "an order overwrote or duplicated another shop's order"
    for ledger, want, name in ((l1, want1, "demo-shop"), (l2, want2, "demo-shop-2")):
        for row in ledger.itertuples():
            doc = docs[row.bimp_uuid]
            order_id = int(row.crm_id)
            assert doc["comment"] == f"KeyCRM order {order_id} ({name})"
            lines = sum(float(p["count"]) for p in doc["products"] if p["nomenclatureUuid"] != delivery)
            assert lines == sum(float(p["quantity"]) for p in want[order_id]["products"])
    # counterparties the two shops created carry their own integration's external ids
    ours = [cp["integration"]["externalId"] for cp in company["counterparties"] if cp.get("integration")]
    assert ours and all(e.split(":")[0] in NAMES for e in ours)
    assert len(ours) == len(set(ours))


def test_R_CONN_3_one_key_on_two_integrations_is_refused(shops, monkeypatch, capsys):
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP_2", DEMO_KEYCRM_KEY)  # shop 2 configured with shop 1's key
    with pytest.raises(SettingsError) as info:
        load_settings(shops["config"])
    fp = key_fingerprint(DEMO_KEYCRM_KEY)
    assert str(info.value) == (
        f"{shops['config']}: integrations[1].keycrm.api_key_env: the same KeyCRM API key (fingerprint {fp}) is already used by "
        "integration 'demo-shop' (integrations[0]); one KeyCRM account may be connected only once (R-CONN-3)")
    assert cli.main(["check"]) == 2
    err = capsys.readouterr().err
    assert "R-CONN-3" in err and DEMO_KEYCRM_KEY not in err


def test_R_CONN_3_key_used_before_for_another_company_is_refused(shops, monkeypatch, capsys):
    """The registry remembers (integration, company, fingerprint) once Bimp confirmed the company: the key later
    pointed at another company, even under another integration name, is refused at load and at check."""
    assert cli.main(["history", "demo-shop"]) == 0
    assert control.read_registry() == []  # a settings file alone binds no key
    assert cli.main(["check"]) == 0  # Bimp lets both into company 000001398: their keys are bound to it
    registry = json.loads(control.registry_path().read_text())
    assert {(e["integration"], e["company"], e["fingerprint"]) for e in registry["keys"]} == {
        ("demo-shop", "000001398", key_fingerprint(DEMO_KEYCRM_KEY)),
        ("demo-shop-2", "000001398", key_fingerprint(DEMO_KEYCRM_KEY_2))}
    text = control.registry_path().read_text()
    assert DEMO_KEYCRM_KEY not in text and DEMO_KEYCRM_KEY_2 not in text
    capsys.readouterr()

    write_two_shop_config(shops["config"], shops["keycrm"].url, shops["keycrm2"].url, shops["bimp"].url,
                          {"demo-shop-2": {"name": "other-shop", "bimp": {"company": "000009999"}}})
    assert cli.main(["start", "other-shop"]) == 2
    err = capsys.readouterr().err
    fp2 = key_fingerprint(DEMO_KEYCRM_KEY_2)
    assert (f"integrations[1].keycrm.api_key_env: the KeyCRM API key in KEYCRM_KEY_DEMO_SHOP_2 (fingerprint {fp2}) "
            "already served Bimp company '000001398' through integration 'demo-shop-2'") in err
    assert control.is_paused("other-shop") and not (shops["data"] / "other-shop.control.json").exists()

    assert cli.main(["check", "other-shop"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("other-shop: integrations[1].keycrm.api_key_env: the KeyCRM API key in "
                               "KEYCRM_KEY_DEMO_SHOP_2") for line in out)

    # the same company named by uuid instead of code is the same company (learned from Bimp at check)
    assert cli.main(["check"]) == 1  # other-shop still wrong; demo-shop passes and its ids are learned
    uuid = shops["states"]["bimp"]["companies"][0]["uuid"]
    write_two_shop_config(shops["config"], shops["keycrm"].url, shops["keycrm2"].url, shops["bimp"].url,
                          {"demo-shop": {"name": "renamed-shop", "bimp": {"company": uuid}}})
    capsys.readouterr()
    assert cli.main(["history", "renamed-shop"]) == 0
    assert "warning" not in capsys.readouterr().err


def _code_location():
    """The real definitions module, loaded afresh under another name with this test's settings file (the
    canonical module stays as other tests imported it)."""
    spec = importlib.util.spec_from_file_location("keybimp_definitions_under_test",
                                                  Path(definitions_module.__file__))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.defs.get_repository_def()


def _evaluate_automations(repo, ticks: int) -> list[str]:
    """Several sensor ticks (with a cursor, so a started sensor asks KeyCRM what changed) and schedule ticks."""
    cursor = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    messages = []
    for _ in range(ticks):
        for sensor in repo.sensor_defs:
            data = sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, repository_def=repo))
            messages.append(f"{sensor.name}: {data.skip_message or len(data.run_requests or [])}")
        for schedule in repo.schedule_defs:
            data = schedule.evaluate_tick(dg.build_schedule_context(
                scheduled_execution_time=datetime.now(UTC), repository_def=repo))
            messages.append(f"{schedule.name}: {data.skip_message or len(data.run_requests or [])}")
    return messages


def _served(shops) -> dict[str, int]:
    return {k: shops[k].admin.get("/__admin/requests").json()["total"] for k in ("keycrm", "keycrm2", "bimp")}


def test_R_CONN_5_paused_integrations_send_no_request(shops):
    """New integrations are paused: several sensor and schedule ticks skip with "paused" and the three
    emulators count zero requests; `keybimp start` switches every automation of one integration on."""
    repo = _code_location()
    assert all(control.is_paused(n) for n in NAMES)
    before = _served(shops)
    messages = _evaluate_automations(repo, ticks=3)
    assert _served(shops) == before
    assert len(messages) == 3 * (2 + 4)
    assert all(": paused: integration '" in m for m in messages), messages

    assert cli.main(["start", "demo-shop-2"]) == 0
    messages = _evaluate_automations(repo, ticks=1)
    after = _served(shops)
    assert after["keycrm"] == before["keycrm"] and after["bimp"] == before["bimp"]
    assert after["keycrm2"] > before["keycrm2"]  # the started shop's sensor asked its KeyCRM
    started = [m for m in messages if "demo_shop_2" in m]
    assert started and not any("paused" in m for m in started)
    assert all("paused" in m for m in messages if "demo_shop_2" not in m)

    assert cli.main(["pause", "demo-shop-2"]) == 0
    before = _served(shops)
    _evaluate_automations(repo, ticks=2)
    assert _served(shops) == before


def test_R_CONN_6_settings_changes_starts_and_pauses_in_the_history(shops, capsys):
    assert cli.main(["start", "demo-shop"]) == 0
    write_two_shop_config(shops["config"], shops["keycrm"].url, shops["keycrm2"].url, shops["bimp"].url,
                          {"demo-shop": {"main": {"reserve": "off"}, "prices": {"every_minutes": 30}}})
    assert cli.main(["pause", "demo-shop"]) == 0
    capsys.readouterr()
    assert cli.main(["history", "demo-shop"]) == 0
    lines = capsys.readouterr().out.splitlines()
    body = [line.split("  ", 1)[1] for line in lines[:-1]]
    assert body == ["created (paused)", "start (by cli)", "main.reserve: 'full' → 'off'",
                    "prices.every_minutes: 60 → 30", "pause (by cli)"]
    assert lines[-1] == "demo-shop is paused now"
    stamp = lines[0].split("  ", 1)[0]
    assert datetime.fromisoformat(stamp).tzinfo is not None

    # the other integration's history has no entry of this one
    assert [e["event"] for e in control.history("demo-shop-2")] == ["created"]

    # a new key (rotation) is a settings change, shown by fingerprint only
    import os

    os.environ["KEYCRM_KEY_DEMO_SHOP"] = "rotated-" + DEMO_KEYCRM_KEY[8:]
    try:
        assert cli.main(["history", "demo-shop"]) == 0  # looking records nothing (R-CONN-6: changes, not views)
        assert "api_key_fingerprint" not in capsys.readouterr().out
        assert cli.main(["pause", "demo-shop"]) == 0  # a command that acts loads the file: the change is logged
        capsys.readouterr()
    finally:
        os.environ["KEYCRM_KEY_DEMO_SHOP"] = DEMO_KEYCRM_KEY
    assert cli.main(["history", "demo-shop"]) == 0
    out = capsys.readouterr().out
    assert (f"keycrm.api_key_fingerprint: '{key_fingerprint(DEMO_KEYCRM_KEY)}' → "
            f"'{key_fingerprint('rotated-' + DEMO_KEYCRM_KEY[8:])}'") in out
    for path in shops["data"].glob("*.json"):
        text = path.read_text()
        assert DEMO_KEYCRM_KEY[8:] not in text and "demo-password" not in text
