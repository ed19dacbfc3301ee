"""Control state (R-CONN-3, R-CONN-5, R-CONN-6): paused by default, history, the KeyCRM key registry."""

from __future__ import annotations

import json

import pytest

from keybimp_pipeline import control
from keybimp_pipeline.settings import SettingsError, key_fingerprint, parse_settings


def _file(*integrations: tuple[str, str, str], bimp_url: str = "http://b.test") -> object:
    """(name, key env var, Bimp company) per integration."""
    return parse_settings({"integrations": [
        {"name": n, "keycrm": {"url": "http://k.test/v1", "api_key_env": env},
         "bimp": {"url": bimp_url, "email_env": "B_EMAIL", "password_env": "B_PASS", "company": company}}
        for n, env, company in integrations]})


@pytest.fixture(autouse=True)
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYBIMP_DATA", str(tmp_path))
    monkeypatch.setenv("KEY_A", "secret-key-a-0123456789")
    monkeypatch.setenv("KEY_B", "secret-key-b-0123456789")
    return tmp_path


def test_R_CONN_5_new_integration_is_paused_and_start_pause_are_logged():
    assert control.is_paused("shop") and control.history("shop") == []
    assert control.set_paused("shop", False) is True
    assert control.set_paused("shop", False) is False  # no second "start" for a no-op
    assert not control.is_paused("shop")
    control.set_paused("shop", True, who="ui")
    assert [(e["event"], e["who"]) for e in control.history("shop")] == [("start", "cli"), ("pause", "ui")]
    assert control.is_paused("shop") and control.is_paused("other")


def test_R_CONN_6_on_load_records_creation_then_each_changed_key_old_to_new(monkeypatch):
    control.on_load(_file(("shop", "KEY_A", "001")))
    assert [e["event"] for e in control.history("shop")] == ["created"]
    control.on_load(_file(("shop", "KEY_A", "001")))
    assert len(control.history("shop")) == 1  # an unchanged file adds nothing
    monkeypatch.setenv("KEY_A", "secret-key-a-rotated")
    changed = parse_settings({"integrations": [
        {"name": "shop", "keycrm": {"url": "http://k.test/v1", "api_key_env": "KEY_A"},
         "bimp": {"url": "http://b.test", "email_env": "B_EMAIL", "password_env": "B_PASS", "company": "001"},
         "main": {"reserve": "off"}}]})
    control.on_load(changed)
    settings = [(e["key"], e["old"], e["new"]) for e in control.history("shop") if e["event"] == "setting"]
    assert settings == [
        ("keycrm.api_key_fingerprint", key_fingerprint("secret-key-a-0123456789"),
         key_fingerprint("secret-key-a-rotated")),
        ("main.reserve", "full", "off")]
    text = control._path("shop").read_text()
    assert "secret-key-a" not in text


def test_R_CONN_3_a_settings_file_alone_binds_no_key_to_a_company(data):
    """A first load with a mistyped company code (which Bimp then refuses) must not bind the key to it: only a
    company Bimp confirmed (a passed check, a run's reference refresh) enters the registry."""
    control.on_load(_file(("shop-a", "KEY_A", "0019")))  # the typo: Bimp has 001
    assert control.read_registry() == []
    control.on_load(_file(("shop-a", "KEY_A", "001")))  # corrected: nothing to refuse
    control.remember_keys(_file(("shop-a", "KEY_A", "001")))  # Bimp let it in
    assert [e["company"] for e in control.read_registry()] == ["001"]


def test_R_CONN_3_a_key_that_served_another_company_is_refused_before_anything_is_recorded(data):
    control.remember_keys(_file(("shop-a", "KEY_A", "001"), ("shop-b", "KEY_B", "001")))  # both confirmed
    registry = json.loads(control.registry_path().read_text())["keys"]
    assert {(e["integration"], e["company"], e["fingerprint"]) for e in registry} == {
        ("shop-a", "001", key_fingerprint("secret-key-a-0123456789")),
        ("shop-b", "001", key_fingerprint("secret-key-b-0123456789"))}
    assert "secret-key" not in control.registry_path().read_text()

    with pytest.raises(SettingsError) as info:
        control.on_load(_file(("shop-c", "KEY_A", "002")))
    fp = key_fingerprint("secret-key-a-0123456789")
    assert info.value.messages == [
        (f"integrations[0].keycrm.api_key_env: the KeyCRM API key in KEY_A (fingerprint {fp}) already served Bimp "
        f"company '001' through integration 'shop-a'; one KeyCRM key may serve only one Bimp company (R-CONN-3). "
        f"If that account really moved, remove fingerprint {fp} from {control.registry_path()}")]
    assert not control._path("shop-c").exists()

    # a rename within the same company is fine; so is the company named by uuid once check learned it
    control.on_load(_file(("shop-renamed", "KEY_A", "001")))
    settings = _file(("shop-a", "KEY_A", "001"))
    control.remember_keys(settings, {"shop-a": ["001", "uuid-of-001"]})
    control.on_load(_file(("shop-a", "KEY_A", "UUID-of-001")))
    with pytest.raises(SettingsError):
        control.on_load(_file(("shop-a", "KEY_A", "uuid-of-002")))


def test_R_CONN_3_the_same_company_under_another_spelling_of_the_bimp_url_is_the_same_company(data):
    """The company is what R-CONN-3 compares (its code, and the uuid check learned), not the URL's text:
    127.0.0.1 and localhost, a trailing slash or https are the same Bimp company; a key pointed at another
    company through any URL is still refused."""
    control.on_load(_file(("shop-a", "KEY_A", "001"), bimp_url="http://127.0.0.1:8802"))
    control.remember_keys(_file(("shop-a", "KEY_A", "001")), {"shop-a": ["001", "uuid-of-001"]})
    for url in ("http://localhost:8802", "http://127.0.0.1:8802/", "https://app.bimpsoft.com"):
        control.on_load(_file(("shop-a", "KEY_A", "001"), bimp_url=url))
        control.on_load(_file(("shop-a", "KEY_A", "uuid-of-001"), bimp_url=url))
    assert len(control.read_registry()) == 1  # one key, one company: one entry, however the URL was written
    for url in ("http://localhost:8802", "http://127.0.0.1:8802"):
        with pytest.raises(SettingsError) as info:
            control.on_load(_file(("shop-a", "KEY_A", "002"), bimp_url=url))
        assert "already served Bimp company '001' through integration 'shop-a'" in str(info.value)
