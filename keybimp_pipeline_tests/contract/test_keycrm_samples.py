"""The client's normalisation parses every live KeyCRM body in shared/api/samples (lists and objects)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keybimp_pipeline.clients.keycrm import (
    MONEY_FIELDS,
    TIMESTAMP_FIELDS,
    normalize,
    normalize_order,
    parse_money,
    parse_timestamp,
)
from keybimp_pipeline_tests.contract.openapi_check import shared_api_dir

SAMPLES = sorted((shared_api_dir() / "samples").glob("keycrm-*.json"))


def _load(path: Path) -> Any:
    # the client parses JSON floats straight to Decimal; do the same here
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def _walk(value: Any, key: str | None = None) -> list[tuple[str | None, Any]]:
    out = [(key, value)]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_walk(v, k))
    elif isinstance(value, list):
        for v in value:
            out.extend(_walk(v, None))
    return out


def test_every_sample_is_found() -> None:
    names = {p.name for p in SAMPLES}
    assert "keycrm-order-create-response-1.json" in names
    assert len(SAMPLES) >= 8


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_normalises_with_typed_money_and_aware_utc_times(path: Path) -> None:
    raw = _load(path)
    norm = normalize(raw)
    money_seen = ts_seen = 0
    for key, value in _walk(norm):
        if key in MONEY_FIELDS and value is not None:
            assert isinstance(value, Decimal), (path.name, key, value)
            money_seen += 1
        if key in TIMESTAMP_FIELDS and value is not None:
            assert isinstance(value, datetime) and value.tzinfo is not None, (path.name, key, value)
            assert value.utcoffset().total_seconds() == 0
            ts_seen += 1
        assert not isinstance(value, float), (path.name, key, value)
    # every sample except the stock webhook (ints only) and status projections carries money or times
    if "stock-webhook" not in path.name and "statuses" not in path.name:
        assert money_seen and ts_seen, path.name


def test_order_create_response_values() -> None:
    """The live POST /order body: string money, null money, [] fiscal_result, ISO-Z timestamps."""
    raw = _load(shared_api_dir() / "samples" / "keycrm-order-create-response-1.json")
    order = normalize_order(raw)
    assert order["grand_total"] == Decimal(190)
    assert order["shipping_price"] is None and order["taxes"] is None
    assert order["fiscal_result"] is None  # [] where an object is documented
    assert order["shipping"] is None and order["payments"] == []
    assert order["created_at"] == datetime(2024, 11, 13, 18, 46, 36, tzinfo=UTC)
    assert order["buyer"]["orders_sum"] == Decimal("0.00")
    line = order["products"][0]
    assert line["price_sold"] == Decimal(190) and line["purchased_price"] == Decimal(0)
    assert line["picture"] == {"thumbnail": raw["products"][0]["picture"]["thumbnail"]}
    assert order["global_source_uuid"] is None  # unknown-to-spec keys kept


def test_offers_page_decimals_and_empty_properties_agg() -> None:
    page3 = normalize(_load(shared_api_dir() / "samples" / "keycrm-offers-list-page-3.json"))
    assert page3["data"][0]["purchased_price"] == Decimal("370.67")
    assert page3["data"][0]["price"] == Decimal(690)
    page2 = normalize(_load(shared_api_dir() / "samples" / "keycrm-offers-list-page-2.json"))
    assert page2["data"][0]["product"]["properties_agg"] is None  # PHP's [] for an empty map


def test_order_webhook_context() -> None:
    body = normalize(_load(shared_api_dir() / "samples" / "keycrm-order-webhook-1.json"))
    ctx = body["context"]
    assert ctx["grand_total"] == Decimal(1198)
    assert ctx["updated_at"] == ctx["status_changed_at"] == datetime(2026, 1, 29, 18, 53, 35, tzinfo=UTC)
    assert ctx["source_uuid"] == "№18766"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-11-13T18:46:36.000000Z", datetime(2024, 11, 13, 18, 46, 36, tzinfo=UTC)),
        ("2024-05-28 09:34:10", datetime(2024, 5, 28, 9, 34, 10, tzinfo=UTC)),
        ("2023-12-21", datetime(2023, 12, 21, tzinfo=UTC)),
        ("2026-11-02T10:00:00+02:00", datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_parse_timestamp_both_forms_are_utc(value: Any, expected: datetime | None) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(190, Decimal(190)), (Decimal("370.67"), Decimal("370.67")), (370.67, Decimal("370.67")),
     ("0.00", Decimal("0.00")), ("2.00", Decimal("2.00")), (None, None), ("", None)],
)
def test_parse_money_accepts_int_decimal_float_and_string(value: Any, expected: Decimal | None) -> None:
    assert parse_money(value) == expected


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_money("abc")
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")
    with pytest.raises(TypeError):
        parse_money(True)


def test_shipping_empty_array_and_discount_data_become_none() -> None:
    order = normalize_order({"id": 1, "shipping": [], "discount_data": [], "grand_total": "12.50",
                             "closed_at": "2024-05-28 09:34:10", "products": [{"offer": [], "price": 1}],
                             "extra_vendor_key": {"a": 1}})
    assert order["shipping"] is None and order["discount_data"] is None
    assert order["grand_total"] == Decimal("12.50")
    assert order["closed_at"] == datetime(2024, 5, 28, 9, 34, 10, tzinfo=UTC)
    assert order["products"][0]["offer"] is None and order["products"][0]["price"] == Decimal(1)
    assert order["extra_vendor_key"] == {"a": 1}
