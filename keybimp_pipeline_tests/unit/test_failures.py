"""The one line a failed run is told in (keybimp_pipeline/failures.py), from the error chain Dagster keeps:
what failed, the URL from the settings, what to do -- never a secret."""

from __future__ import annotations

import pytest
from dagster._utils.error import SerializableErrorInfo

from keybimp_pipeline.failures import Failure, _root, explain
from keybimp_pipeline.settings import key_fingerprint, parse_settings

KEY = "kbSECRETkeyForTheFailureLines0123456789abcdefghijk"


@pytest.fixture
def shop(monkeypatch):
    monkeypatch.setenv("KB_FAIL_KEY", KEY)
    return parse_settings({"integrations": [{
        "name": "shop", "keycrm": {"url": "https://openapi.keycrm.app/v1", "api_key_env": "KB_FAIL_KEY"},
        "bimp": {"url": "https://app.bimpsoft.com", "email_env": "KB_FAIL_EMAIL", "password_env": "KB_FAIL_PASS",
                 "company": "000001398"}}]}).get("shop")


def _chain(cls_name: str, message: str) -> SerializableErrorInfo:
    """What Dagster records of a step's exception: its wrapper, with ours as the cause."""
    ours = SerializableErrorInfo(f"keybimp_pipeline.clients.x.{cls_name}: {message}\n", [], cls_name)
    return SerializableErrorInfo('Error occurred while executing op "keycrm_orders_raw":\n', [],
                                 "DagsterExecutionStepExecutionError", cause=ours)


def test_the_root_error_is_ours_with_its_text_not_dagsters_wrapper():
    failure = _root("keycrm_orders_raw", _chain("KeyCRMAuthError", "KeyCRM /order failed (HTTP 401): Unauthenticated"))
    assert failure == Failure("keycrm_orders_raw", "KeyCRMAuthError", "KeyCRM /order failed (HTTP 401): Unauthenticated")
    assert _root("x", _chain("InterruptException", "INTERRUPT Error: Interrupted!")).cls_name == "interrupted"


def test_each_kind_of_failure_is_one_line_with_the_url_and_what_to_do(shop):
    fp = key_fingerprint(KEY)
    lines = {cls: explain(Failure("keycrm_orders_raw", cls, message), shop) for cls, message in (
        ("KeyCRMAuthError", "KeyCRM /order failed (HTTP 401): Unauthenticated"),
        ("KeyCRMTransientError", "KeyCRM /order failed (no answer): ConnectError: [Errno 111] Connection refused"),
        ("BimpTransientError", "Bimp /org2/x failed (HTTP 503): server error"),
        ("BimpValidationError", "Bimp /org2/customerOrder/api-create failed (HTTP 400): bad field [validation: x]"),
        ("SettingsError", "bimp.password_env: environment variable KB_FAIL_PASS is not set (integration 'shop')"),
        ("ValueError", "something else\nsecond line"))}
    assert lines["KeyCRMAuthError"] == (
        f"shop: KeyCRM at https://openapi.keycrm.app/v1 refused the API key in KB_FAIL_KEY (fingerprint {fp}): a "
        "wrong or revoked key (step keycrm_orders_raw). Put the shop's current key in KB_FAIL_KEY; `keybimp check "
        "shop` tests the connection")
    assert lines["KeyCRMTransientError"].startswith(
        "shop: KeyCRM at https://openapi.keycrm.app/v1 did not answer (ConnectError: [Errno 111] Connection "
        "refused) (step keycrm_orders_raw). Is it running and is keycrm.url right?")
    assert lines["BimpTransientError"].startswith(
        "shop: Bimp at https://app.bimpsoft.com is failing (server error) (step keycrm_orders_raw). Run again later")
    assert lines["BimpValidationError"].startswith(
        "shop: Bimp at https://app.bimpsoft.com refused /org2/customerOrder/api-create: bad field [validation: x]")
    assert lines["SettingsError"].startswith("shop: bimp.password_env: environment variable KB_FAIL_PASS is not set")
    assert lines["ValueError"] == "shop: ValueError: something else (step keycrm_orders_raw)"
    for line in lines.values():
        assert KEY not in line and "\n" not in line
