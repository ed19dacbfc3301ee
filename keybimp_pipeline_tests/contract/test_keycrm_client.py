"""The KeyCRM client against the emulator.

Most tests run over a real socket: ``keycrm_emulator`` serves the app with uvicorn on
127.0.0.1 (ephemeral port) in a thread, because a synchronous httpx.Client cannot use
httpx.ASGITransport; that also makes timeouts and dropped connections real.  One test repeats
the retry path in-process through ``SyncASGITransport`` to show both routes behave alike.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from keybimp_pipeline.clients.keycrm import (
    KeyCRMAuthError,
    KeyCRMClient,
    KeyCRMNotFound,
    KeyCRMTransientError,
    KeyCRMValidationError,
    reset_shared_limiters,
)
from keybimp_pipeline.emulators.keycrm.app import create_app
from keybimp_pipeline_tests.keycrm_fixtures import (
    KEYCRM_TEST_KEY,
    KeyCRMEmulatorHandle,
    SyncASGITransport,
    keycrm_state,
)

FAST = {"requests_per_minute": 10_000, "backoff_base_s": 0.01, "max_retries": 3, "timeout": 5.0}


def client_for(emu: KeyCRMEmulatorHandle, **kw: object) -> KeyCRMClient:
    return KeyCRMClient(emu.base_url, KEYCRM_TEST_KEY, **{**FAST, **kw})  # type: ignore[arg-type]


def test_paging_through_120_orders(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    keycrm_emulator.load(keycrm_state(120))
    with client_for(keycrm_emulator) as kc:
        pages = list(kc.iter_orders())
        assert [len(p) for p in pages] == [50, 50, 20]
        assert kc.request_count == 3
    ids = [o["id"] for p in pages for o in p]
    assert ids == list(range(1, 121))
    order = pages[0][0]
    assert isinstance(order["grand_total"], Decimal) and order["created_at"].tzinfo is UTC
    assert isinstance(order["products"][0]["offer"]["price"], Decimal)
    assert order["status"]["alias"] == "new" and isinstance(order["buyer"]["full_name"], str)
    counts = keycrm_emulator.requests()["counts"]
    assert counts == {"GET /v1/order": 3}


def test_iter_orders_window_is_sent_in_utc(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    """Bounds are aware datetimes; a Kyiv-time bound is converted to UTC before it is sent."""
    from zoneinfo import ZoneInfo

    keycrm_emulator.load(keycrm_state(30))
    kyiv = ZoneInfo("Europe/Kyiv")
    lo = datetime(2026, 11, 2, 10, 5, tzinfo=kyiv)  # 08:05 UTC
    hi = datetime(2026, 11, 2, 10, 7, 59, tzinfo=kyiv)
    with client_for(keycrm_emulator) as kc:
        created = [o["id"] for p in kc.iter_orders(created_between=(lo, hi)) for o in p]
        updated = [o["id"] for p in kc.iter_orders(updated_between=(lo, hi)) for o in p]
        assert kc.count_orders_updated(lo, hi) == 3
        with pytest.raises(ValueError):
            next(kc.iter_orders(updated_between=(datetime(2026, 1, 1), hi)))
    assert created == [5, 6, 7] and updated == [5, 6, 7]


def test_429_retry_after_is_honoured(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    keycrm_emulator.faults(requests_per_minute=10_000, retry_after_s=1,
                           fail_next=[{"path": "/order/status", "status": 429, "times": 2}])
    with client_for(keycrm_emulator, backoff_base_s=5.0) as kc:
        t0 = time.monotonic()
        statuses = kc.list_order_statuses()
        elapsed = time.monotonic() - t0
        assert kc.request_count == 3
    assert len(statuses) == 5
    assert 2.0 <= elapsed < 4.0  # two waits of Retry-After: 1 s, not the 5 s back-off base
    stats = keycrm_emulator.requests()
    assert stats["counts"]["GET /v1/order/status"] == 3 and stats["status_counts"]["429"] == 2


def test_burst_of_5xx_is_retried_for_gets(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    keycrm_emulator.faults(requests_per_minute=10_000,
                           fail_next=[{"path": "/order/1", "status": 500, "times": 2},
                                      {"path": "/offers/stocks", "status": 502, "times": 1}])
    with client_for(keycrm_emulator) as kc:
        assert kc.get_order(1)["id"] == 1
        assert kc.put_offer_stocks(1, [{"sku": "DRESS-S", "quantity": 2}]) == 1  # absolute PUT: retried
        assert kc.request_count == 5
    assert keycrm_emulator.store.stocks[(10, 1)]["quantity"] == 2


def test_dropped_connection_is_retried_over_a_real_socket(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    keycrm_emulator.faults(requests_per_minute=10_000, drop_connection_next=2)
    with client_for(keycrm_emulator) as kc:
        assert [s["id"] for s in kc.list_payment_methods()] == [1, 2]
        assert kc.request_count == 3


def test_dropped_connection_is_retried_in_process() -> None:
    reset_shared_limiters()
    app = create_app(keycrm_state(3))
    transport = SyncASGITransport(app)
    app.state.faults.configure({"requests_per_minute": 10_000, "drop_connection_next": 1})
    with KeyCRMClient("http://keycrm.test/v1", KEYCRM_TEST_KEY, transport=transport, **FAST) as kc:  # type: ignore[arg-type]
        assert [o["id"] for p in kc.iter_orders() for o in p] == [1, 2, 3]
        assert kc.request_count == 2
    transport.close()


def test_post_is_not_retried_after_an_ambiguous_failure(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    """A dropped POST may have created the product: retrying could duplicate it, so the error surfaces."""
    keycrm_emulator.faults(requests_per_minute=10_000, drop_connection_next=1)
    with client_for(keycrm_emulator) as kc:
        with pytest.raises(KeyCRMTransientError) as err:
            kc.create_product({"name": "Чашка", "sku": "CUP-1", "price": Decimal("250.50")})
        assert kc.request_count == 1 and err.value.status is None
        created = kc.create_product({"name": "Чашка", "sku": "CUP-2", "price": Decimal("250.50")})
    assert created["price"] == Decimal("250.5") and isinstance(created["id"], int)


def test_error_after_retries_names_endpoint_and_status_not_the_key(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    keycrm_emulator.faults(requests_per_minute=10_000, fail_next=[{"path": "/order/2", "status": 503, "times": 99}],
                           retry_after_s=0)
    with client_for(keycrm_emulator, max_retries=2) as kc:
        with pytest.raises(KeyCRMTransientError) as err:
            kc.get_order(2)
        assert kc.request_count == 3
    text = str(err.value) + repr(err.value) + repr(err.value.args)
    assert err.value.endpoint == "GET /order/2" and err.value.status == 503
    assert "GET /order/2" in text and "503" in text
    assert KEYCRM_TEST_KEY not in text


def test_typed_errors_for_401_404_422(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    with KeyCRMClient(keycrm_emulator.base_url, "wrong-key-xyz", **FAST) as bad:  # type: ignore[arg-type]
        with pytest.raises(KeyCRMAuthError) as auth:
            bad.list_sources()
        assert "wrong-key-xyz" not in str(auth.value) and auth.value.status == 401
        assert bad.request_count == 1  # never retried
    with client_for(keycrm_emulator) as kc:
        with pytest.raises(KeyCRMNotFound):
            kc.get_order(999)
        with pytest.raises(KeyCRMValidationError) as val:
            kc.put_offer_stocks(99, [{"sku": "DRESS-S", "quantity": 1}])
        assert "warehouse_id" in val.value.errors and val.value.status == 422
        assert kc.request_count == 2


def test_rate_limiter_keeps_a_burst_under_the_emulator_limit(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    """Two clients sharing one key, 12 calls, the server allows 5 per 0.5 s window: no 429 at all."""
    keycrm_emulator.faults(requests_per_minute=5, rate_window_s=0.5)
    kw = {**FAST, "requests_per_minute": 5, "rate_window_s": 0.5}
    with client_for(keycrm_emulator, **kw) as a, client_for(keycrm_emulator, **kw) as b:
        t0 = time.monotonic()
        for i in range(6):
            a.list_sources()
            b.get_order(1 + i % 3, include="")
        elapsed = time.monotonic() - t0
        assert a.request_count == 6 and b.request_count == 6
    stats = keycrm_emulator.requests()
    assert "429" not in stats["status_counts"], stats
    assert stats["max_in_window"] <= 5
    assert elapsed >= 1.0  # 12 requests at 5 per (padded) half second need at least two waits


def test_shared_limiter_is_keyed_by_fingerprint_not_instance(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    with client_for(keycrm_emulator) as a, client_for(keycrm_emulator) as b:
        assert a._limiter is b._limiter
        assert KEYCRM_TEST_KEY not in repr(a) and a.fingerprint in repr(a)
    with KeyCRMClient(keycrm_emulator.base_url, "other-key", **FAST) as c:  # type: ignore[arg-type]
        assert c._limiter is not a._limiter


def test_page_shifting_while_paging_updated_between(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    """An order updated mid-scan leaves the window; later rows shift back a place and one is skipped.

    The client neither crashes nor loops: it returns what the server served (119 of 120 here) and
    stops at the last page.  Recovering the skipped order is the pipeline's overlap re-scan — shown
    by the second pass, which sees everything once the window covers the new updated_at.
    """
    keycrm_emulator.load(keycrm_state(120))
    store = keycrm_emulator.store
    window = (datetime(2026, 11, 2, 0, 0, tzinfo=UTC), datetime(2026, 11, 2, 23, 59, 59, tzinfo=UTC))
    keycrm_emulator.clock(now="2026-11-03T09:00:00Z")
    with client_for(keycrm_emulator) as kc:
        seen: list[int] = []
        for page_no, page in enumerate(kc.iter_orders(updated_between=window), start=1):
            seen.extend(o["id"] for o in page)
            if page_no == 1:
                # someone changes order 10's status between our page 1 and page 2
                keycrm_emulator.admin.patch("/__admin/orders/10", json={"status_id": 12}).raise_for_status()
        assert kc.request_count == 3
    assert len(seen) == len(set(seen)) == 119
    assert 51 not in seen  # order 51 slid from page 2 onto page 1 after we had read page 1
    assert store.orders[10]["updated_at"] == "2026-11-03T09:00:00.000000Z"
    with client_for(keycrm_emulator) as kc:
        wider = (window[0], datetime(2026, 11, 3, 9, 0, 1, tzinfo=UTC))
        again = {o["id"] for p in kc.iter_orders(updated_between=wider) for o in p}
    assert again == set(range(1, 121))


def test_reference_reads_offers_stocks_buyers(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    with client_for(keycrm_emulator) as kc:
        assert [s["currency_code"] for s in kc.list_sources()] == ["UAH"]
        assert {d["alias"] for d in kc.list_delivery_services()} == {"novaposhta"}
        offers = [o for p in kc.iter_offers(skus=["DRESS-S", "DRESS-M"]) for o in p]
        assert [o["id"] for o in offers] == [10, 11] and offers[0]["purchased_price"] == Decimal("370.67")
        by_id = [o for p in kc.iter_offers(ids=[11], include_product=True) for o in p]
        assert by_id[0]["product"]["name"] == "Сукня міні"
        stocks = [s for p in kc.iter_offer_stocks(details=True, skus=["DRESS-S"]) for s in p]
        assert stocks[0]["warehouse"][0] == {"id": 1, "name": "Основний", "quantity": 5, "reserve": 1}
        buyers = [b for p in kc.iter_buyers(phones=["+380501112233"]) for b in p]
        assert [b["id"] for b in buyers] == [1] and buyers[0]["created_at"].tzinfo is UTC


def test_batched_writes_count_requests(keycrm_emulator: KeyCRMEmulatorHandle) -> None:
    with client_for(keycrm_emulator) as kc:
        n = kc.put_offer_stocks(2, [{"sku": "DRESS-S", "quantity": 1}, {"id": 11, "quantity": 4},
                                    {"sku": "K-B-001", "quantity": Decimal(9)}], batch_size=2)
        assert n == 2
        assert kc.put_offers([{"sku": "DRESS-S", "price": Decimal("701.25")}]) == 1
        assert kc.put_offers([]) == 0
        stock = {s["id"]: s for p in kc.iter_offer_stocks(details=True) for s in p}
        assert stock[10]["warehouse"][1]["quantity"] == 1 and stock[11]["quantity"] == 4
        assert [o["price"] for p in kc.iter_offers(skus=["DRESS-S"]) for o in p] == [Decimal("701.25")]
