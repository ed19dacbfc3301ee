"""The integrations file (CONFIG.md): defaults, validation errors with paths, secrets from the environment."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from keybimp_pipeline.settings import (
    SettingsError,
    key_fingerprint,
    load_settings,
    parse_settings,
    resolve_reference,
)

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "name": "shop-main",
    "keycrm": {"url": "https://openapi.keycrm.app/v1", "api_key_env": "KB_TEST_KEY_A"},
    "bimp": {"url": "https://app.bimpsoft.com", "email_env": "KB_TEST_EMAIL", "password_env": "KB_TEST_PASS",
             "company": "000001398"},
}


def one(**overrides) -> dict:
    integ = copy.deepcopy(BASE)
    for dotted, value in overrides.items():
        node = integ
        parts = dotted.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return integ


def errors(data: dict) -> list[str]:
    with pytest.raises(SettingsError) as info:
        parse_settings(data)
    assert str(info.value) == "\n".join(info.value.messages)
    return info.value.messages


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("KB_TEST_KEY_A", "KB_TEST_KEY_B", "KB_TEST_EMAIL", "KB_TEST_PASS", "KEYBIMP_CONFIG"):
        monkeypatch.delenv(var, raising=False)


def test_R_CONN_1_name_url_key_is_enough_and_defaults_are_config_md():
    s = parse_settings({"integrations": [BASE]}).integrations[0]
    assert s.timezone == "Europe/Kyiv" and s.start_date == date(2026, 1, 1)
    assert s.keycrm.requests_per_minute == 60
    assert (s.main.exchange_every_minutes, s.main.reserve, s.main.reload_orders, s.main.warehouse) == \
        (5, "full", False, None)
    assert (s.products.search_by, s.products.allow_create, s.products.unit) == ("sku", False, "шт")
    c = s.customers
    assert (c.fill_for_all, c.allow_create, c.search_by, c.strict_names) == (False, True, ["phone"], False)
    assert (c.contract_defaults.currency, c.contract_defaults.settlement, c.contract_defaults.cash_kind) == \
        ("UAH", "cashless", "cash_desk")
    assert s.statuses == {"new": "Новий", "in_progress": "В роботі"}
    assert (s.payments.enabled, s.payments.methods, s.payments.date_source) == (False, {}, "status_changed")
    assert (s.sales.enabled, s.sales.on_status, s.sales.date) == (False, None, "order_created")
    assert (s.returns.goods.enabled, s.returns.money.expense_item) == (False, None)
    assert (s.stocks.every_minutes, s.stocks.free_only, s.stocks.guard_zeroed_share) == (15, True, 0.5)
    assert (s.prices.every_minutes, s.prices.create_missing) == (60, False)


def test_R_PROD_2_id_search_without_creation_is_refused():
    assert errors({"integrations": [one(products={"search_by": "id"})]}) == \
        ["integrations[0].products.search_by: 'id' needs allow_create"]


def test_customers_id_search_without_creation_is_refused():
    assert errors({"integrations": [one(customers={"search_by": ["id"], "allow_create": False})]}) == \
        ["integrations[0].customers.search_by: 'id' needs allow_create"]


def test_R_CUST_1_fill_for_all_needs_both_defaults():
    assert errors({"integrations": [one(customers={"fill_for_all": True})]}) == [
        "integrations[0].customers.default_customer: required when fill_for_all is on",
        "integrations[0].customers.default_contract: required when fill_for_all is on",
    ]
    ok = parse_settings({"integrations": [one(customers={"fill_for_all": True, "default_customer": "Роздрібний",
                                                         "default_contract": "Основний"})]})
    assert ok.integrations[0].customers.fill_for_all


def test_R_SALE_R_RET_R_STOCK_switches_need_their_settings():
    data = {"integrations": [one(sales={"enabled": True}, returns={"goods": {"enabled": True},
                                                                   "money": {"enabled": True}},
                                 stocks={"enabled": True})]}
    assert errors(data) == [
        "integrations[0].sales.on_status: required when sales.enabled",
        "integrations[0].returns.goods.on_status: required when returns.goods.enabled",
        "integrations[0].returns.money.on_status: required when returns.money.enabled",
        "integrations[0].returns.money.expense_item: required when returns.money.enabled (Bimp needs it)",
        ("integrations[0].stocks.warehouses: needs at least one Bimp warehouse -> KeyCRM warehouse id when "
        "stocks.enabled"),
    ]


def test_typos_and_bad_values_are_errors_with_paths():
    data = {"integrations": [one(name="Shop Main", customers={"serch_by": ["phone"]},
                                 main={"reserve": "sometimes"}, timezone="Europe/Atlantis"),
                             one(name="b", keycrm={"url": "https://k", "api_key_env": "KB_TEST_KEY_B"},
                                 bimp={"company": 1398, "url": "https://b", "email_env": "E", "password_env": "P"})]}
    msgs = errors(data)
    assert "integrations[0].name: must be a slug of a-z, 0-9 and '-' (got 'Shop Main')" in msgs
    assert "integrations[0].customers.serch_by: unknown setting (check the spelling)" in msgs
    assert any(m.startswith("integrations[0].main.reserve: Input should be 'full', 'available_only' or 'off'")
               for m in msgs)
    assert "integrations[0].timezone: unknown time zone 'Europe/Atlantis' (use an IANA name like Europe/Kyiv)" \
        in msgs
    assert 'integrations[1].bimp.company: must be a string: quote the company code in YAML ("000001398")' in msgs
    assert len(msgs) == 5


def test_an_empty_integrations_list_is_an_error_not_nothing_to_do():
    assert errors({"integrations": []}) == [
        ("integrations: the list is empty, so there is nothing to sync; add an integration "
         "(integrations.example.yaml shows one, key by key)")]


def test_duplicate_integration_names_are_refused():
    data = {"integrations": [BASE, one(keycrm={"url": "https://k", "api_key_env": "KB_TEST_KEY_B"})]}
    assert errors(data) == ["integrations[1].name: duplicate integration name 'shop-main' (also integrations[0])"]


def test_R_CONN_3_same_key_on_two_integrations_refused_by_fingerprint(monkeypatch):
    monkeypatch.setenv("KB_TEST_KEY_A", "sekret-key-123")
    monkeypatch.setenv("KB_TEST_KEY_B", "sekret-key-123")
    other = one(name="shop-two", keycrm={"url": "https://k", "api_key_env": "KB_TEST_KEY_B"},
                bimp={"url": "https://b", "email_env": "E", "password_env": "P", "company": "OTHER"})
    msgs = errors({"integrations": [BASE, other]})
    fp = key_fingerprint("sekret-key-123")
    assert msgs == [(f"integrations[1].keycrm.api_key_env: the same KeyCRM API key (fingerprint {fp}) is already "
                    "used by integration 'shop-main' (integrations[0]); one KeyCRM account may be connected only "
                    "once (R-CONN-3)")]
    assert "sekret" not in "\n".join(msgs)
    monkeypatch.setenv("KB_TEST_KEY_B", "another-key")
    assert parse_settings({"integrations": [BASE, other]}).names() == ["shop-main", "shop-two"]


def test_R_CONN_3_unset_variables_compare_by_variable_name():
    other = one(name="shop-two")
    assert errors({"integrations": [BASE, other]}) == [
        ("integrations[1].keycrm.api_key_env: the same KeyCRM API key (variable KB_TEST_KEY_A) is already used by "
        "integration 'shop-main' (integrations[0]); one KeyCRM account may be connected only once (R-CONN-3)")]


def test_R_CONN_6_secrets_only_from_environment_missing_variable_named_without_value(monkeypatch):
    s = parse_settings({"integrations": [BASE]}).integrations[0]
    with pytest.raises(SettingsError) as info:
        s.keycrm_api_key()
    assert str(info.value) == \
        "keycrm.api_key_env: environment variable KB_TEST_KEY_A is not set (integration 'shop-main')"
    monkeypatch.setenv("KB_TEST_EMAIL", "me@shop.ua")
    with pytest.raises(SettingsError) as info:
        s.bimp_credentials()
    assert str(info.value) == \
        "bimp.password_env: environment variable KB_TEST_PASS is not set (integration 'shop-main')"
    assert "me@shop.ua" not in str(info.value)
    monkeypatch.setenv("KB_TEST_PASS", "pa55")
    monkeypatch.setenv("KB_TEST_KEY_A", "the-key")
    assert s.bimp_credentials() == ("me@shop.ua", "pa55")
    assert s.keycrm_api_key() == "the-key"
    assert s.fingerprint == key_fingerprint("the-key") and len(s.fingerprint) == 12


def test_R_CONN_6_settings_snapshot_is_flat_and_secret_free(monkeypatch):
    monkeypatch.setenv("KB_TEST_KEY_A", "the-key")
    snap = parse_settings({"integrations": [BASE]}).integrations[0].settings_snapshot()
    assert snap["customers.contract_defaults.currency"] == "UAH"
    assert snap["statuses.new"] == "Новий"
    assert snap["keycrm.api_key_env"] == "KB_TEST_KEY_A"
    assert snap["customers.search_by"] == ["phone"]
    assert snap["start_date"] == "2026-01-01"
    assert "the-key" not in repr(snap)


def test_example_file_loads_and_matches_the_demo_shop():
    f = load_settings(ROOT / "integrations.example.yaml")
    s = f.get("demo-shop")
    assert s.keycrm.url == "http://127.0.0.1:8801/v1" and s.bimp.url == "http://127.0.0.1:8802"
    assert s.bimp.company == "000001398" and s.start_date == date(2026, 9, 1)
    assert s.statuses["completed"] == "Виконано" and s.sales.on_status == "completed"
    assert s.stocks.warehouses == {"Основний склад": 1, "Склад Київ": 2}
    assert s.payments.methods["Накладений платіж"] == "Каса магазину"
    assert s.returns.money.expense_item == "Повернення коштів покупцям"


def test_load_settings_uses_env_path_and_reports_yaml_syntax_errors(tmp_path, monkeypatch):
    bad = tmp_path / "integrations.yaml"
    bad.write_text("integrations:\n  - name: x\n    keycrm: [unclosed\n", encoding="utf-8")
    monkeypatch.setenv("KEYBIMP_CONFIG", str(bad))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(f"{bad}:4:")
    assert "YAML syntax error" in str(info.value)
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path / "missing.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'missing.yaml'}: settings file not found")


def test_ints_in_yaml_keys_become_strings():
    s = parse_settings({"integrations": [one(statuses={1: "Новий"}, sales={"enabled": True, "on_status": 12})]})
    assert s.integrations[0].statuses == {"1": "Новий"}
    assert s.integrations[0].sales.on_status == "12"


CANDIDATES = pd.DataFrame({"uuid": ["w-1", "w-2", "w-3"], "name": ["Основний склад", "Склад Київ", "Склад київ"]})


def test_resolve_reference_by_name_or_uuid():
    assert resolve_reference("  основний СКЛАД ", CANDIDATES, path="main.warehouse", kind="warehouse") == "w-1"
    assert resolve_reference("w-2", CANDIDATES, path="main.warehouse", kind="warehouse") == "w-2"


def test_resolve_reference_nothing_or_several_names_the_candidates():
    with pytest.raises(SettingsError) as info:
        resolve_reference("Склад Львів", CANDIDATES, path="integrations[0].main.warehouse", kind="warehouse")
    assert str(info.value) == ("integrations[0].main.warehouse: no Bimp warehouse named 'Склад Львів'; "
                               "candidates: 'Основний склад' (w-1), 'Склад Київ' (w-2), 'Склад київ' (w-3)")
    with pytest.raises(SettingsError) as info:
        resolve_reference("склад київ", CANDIDATES, path="stocks.warehouses", kind="warehouse")
    assert str(info.value) == ("stocks.warehouses: 2 Bimp warehouse objects are named 'склад київ': "
                               "'Склад Київ' (w-2), 'Склад київ' (w-3); give the uuid instead")


def test_docs_config_md_defaults_are_the_codes():
    """docs/CONFIG.md (the reference the README and the example file point at) states each default as the
    code has it (R-CONN-1): a key left out of an integration takes exactly the value the page shows."""
    import re

    import yaml

    page = (ROOT / "docs" / "CONFIG.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", page, re.DOTALL).group(1)
    documented = yaml.safe_load(block)["integrations"][0]
    actual = parse_settings({"integrations": [BASE]}).integrations[0].model_dump()
    assert documented["keycrm"]["requests_per_minute"] == actual["keycrm"]["requests_per_minute"]
    checked = [k for k in documented if k not in ("name", "keycrm", "bimp")]
    assert {"timezone", "start_date", "main", "products", "customers", "statuses", "payments", "sales", "returns",
            "stocks", "prices"} <= set(checked)
    for key in checked:
        assert documented[key] == actual[key], key
