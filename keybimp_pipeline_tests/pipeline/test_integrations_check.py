"""`keybimp check` (R-CONN-2): both APIs called with each integration's credentials, one line per problem."""

from __future__ import annotations

import pytest
import yaml

from keybimp_pipeline import cli
from keybimp_pipeline.emulators.demo_shop import DEMO_KEYCRM_KEY
from keybimp_pipeline.settings import key_fingerprint
from keybimp_pipeline_tests.pipeline.two_shops import (  # noqa: F401 (keycrm2 is a fixture)
    keycrm2,
    put_states,
    set_env,
    write_two_shop_config,
)


@pytest.fixture
def shops(emulators, keycrm2, tmp_path, monkeypatch):  # noqa: F811
    keycrm, bimp = emulators
    put_states(keycrm, keycrm2, bimp)
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "integrations.yaml"

    def configure(changes: dict | None = None):
        return write_two_shop_config(config, keycrm.url, keycrm2.url, bimp.url, changes)

    configure()
    set_env(monkeypatch, config, data)
    return {"keycrm": keycrm, "keycrm2": keycrm2, "bimp": bimp, "configure": configure}


def test_R_CONN_2_check_passes_for_two_shops_into_one_company(shops, capsys):
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3, out
    assert out[0].startswith(f"demo-shop: OK — KeyCRM key (fingerprint {key_fingerprint(DEMO_KEYCRM_KEY)}) accepted")
    assert out[1].startswith("demo-shop-2: OK — KeyCRM key ")
    assert all("Bimp company 000001398" in line and "all named objects resolve" in line for line in out[:2])
    assert out[2] == "check passed: 2 integration(s)"


def test_R_CONN_2_check_reports_wrong_key_unknown_warehouse_and_unmapped_method(shops, monkeypatch, capsys):
    """Three faults, three lines: shop 1's key is wrong; shop 2 names a warehouse Bimp lacks and leaves a
    KeyCRM payment method unmapped.  Nothing else is reported (e.g. no KeyCRM status 'missing' because
    KeyCRM could not be read), and no line holds a secret."""
    wrong = "not-the-key-" + DEMO_KEYCRM_KEY[12:]
    monkeypatch.setenv("KEYCRM_KEY_DEMO_SHOP", wrong)
    config = shops["configure"]({"demo-shop-2": {"main": {"warehouse": "Склад Марс"}}})
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    del data["integrations"][1]["payments"]["methods"]["Банківський переказ"]
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    before = shops["keycrm2"].admin.get("/__admin/requests").json()["total"]
    assert cli.main(["check"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 3, lines
    assert lines[0] == (f"demo-shop: integrations[0].keycrm.api_key_env: KeyCRM at {shops['keycrm'].url}/v1 refused "
                        f"the API key in KEYCRM_KEY_DEMO_SHOP (fingerprint {key_fingerprint(wrong)}): "
                        "wrong or revoked key")
    assert lines[1].startswith("demo-shop-2: integrations[1].main.warehouse: no Bimp warehouse named 'Склад Марс'; "
                               "candidates: ")
    assert "'Основний склад' (" in lines[1] and "'Склад Київ' (" in lines[1]
    assert lines[2] == ("demo-shop-2: integrations[1].payments.methods: KeyCRM payment method 'Банківський переказ' "
                        "(id 3) is not mapped to a Bimp cash desk or bank account; its payments cannot be transferred")
    assert captured.err.strip() == "check failed: 3 problem(s) in 2 integration(s)"
    assert wrong not in captured.out + captured.err
    assert shops["keycrm2"].admin.get("/__admin/requests").json()["total"] > before  # shop 2 was really asked


def test_R_CONN_2_check_names_a_wrong_company_and_checks_one_integration(shops, capsys):
    shops["configure"]({"demo-shop-2": {"bimp": {"company": "000000007"}}})
    assert cli.main(["check", "demo-shop-2"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [("demo-shop-2: integrations[1].bimp.company: the Bimp login may not select company '000000007'; "
                   "its companies: '000001398' «Демо: інтернет-магазин «Затишок»»")]
    assert cli.main(["check", "nope"]) == 2
    assert "no integration named 'nope'" in capsys.readouterr().err
