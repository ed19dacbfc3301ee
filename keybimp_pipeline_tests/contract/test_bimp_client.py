"""BimpClient against the emulator served by uvicorn on loopback (a sync httpx client cannot use ASGITransport;
see bimp_fixtures.py).  Auth, token expiry, retries, 429, pagination, typed errors, secrets kept out of logs.
"""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal

import pytest

from keybimp_pipeline.clients.bimp import (
    BimpAuthError,
    BimpBusinessError,
    BimpClient,
    BimpNotFound,
    BimpTransientError,
    BimpValidationError,
)
from keybimp_pipeline_tests.bimp_fixtures import (
    DEMO_COMPANY_CODE,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    BimpServer,
    bimp_ids,
)

ID = bimp_ids()


def client(server: BimpServer, **kw: object) -> BimpClient:
    return BimpClient(server.url, DEMO_EMAIL, DEMO_PASSWORD, DEMO_COMPANY_CODE, timeout=5.0, **kw)  # type: ignore[arg-type]


def goods(c: BimpClient, article: str) -> str:
    return c.create_nomenclature({"type": "goods", "name": f"Item {article}", "unitOfMeasurementUuid": ID["pcs"],
                                  "article": article})


def receive(c: BimpClient, nom: str, qty: int) -> None:
    c.call("/org2/purchaseInvoice/api-create", {"warehouse": ID["wh"], "organization": ID["org"],
                                                "products": [{"product": nom, "warehouseCount": qty}]})


def test_login_and_company_selection_by_code_then_reads(bimp_server: BimpServer) -> None:
    with client(bimp_server) as c:
        assert [w["uuid"] for w in c.warehouses()] == [ID["wh"], ID["wh2"]]
        assert c.organisations()[0]["uuid"] == ID["org"]
        assert [x["code"] for x in c.companies()] == [DEMO_COMPANY_CODE]
        assert len(c.order_statuses()) == 4 and len(c.vat()) == 2 and len(c.units()) == 2
        assert c.currencies()[0]["code"] == "UAH" and c.cash_registries() and c.bank_accounts()
        assert c.projects() and c.lines_of_business() and c.users() and c.employees()
        assert c.expense_items() and c.chart_of_accounts() and c.payment_statuses() and c.price_lists()
        counts = bimp_server.admin("GET", "/__admin/requests")["by_path"]
        assert counts["POST /org2/auth/api-login"] == 1  # companies() reuses the basic token
        assert counts["POST /org2/auth/api-selectCompany"] == 1
        assert c.request_counts["/org2/warehouse/api-readList"] == 1


def test_company_selection_by_uuid_and_forbidden_company(bimp_server: BimpServer) -> None:
    with BimpClient(bimp_server.url, DEMO_EMAIL, DEMO_PASSWORD, ID["company"]) as c:
        assert c.warehouses()
    with BimpClient(bimp_server.url, DEMO_EMAIL, DEMO_PASSWORD, "999999999") as c, pytest.raises(BimpAuthError):
        c.warehouses()
    with BimpClient(bimp_server.url, DEMO_EMAIL, "wrong", DEMO_COMPANY_CODE) as c, pytest.raises(BimpAuthError):
        c.warehouses()


def test_token_expiring_mid_run_is_handled_by_one_refresh(bimp_server: BimpServer) -> None:
    with client(bimp_server) as c:
        c.warehouses()
        bimp_server.admin("POST", "/__admin/expire_tokens")
        c.projects()
        counts = bimp_server.admin("GET", "/__admin/requests")["by_path"]
        assert counts["POST /org2/auth/api-refresh"] == 1
        assert counts["POST /org2/auth/api-login"] == 1
        assert counts["POST /org2/auth/api-selectCompany"] == 2
        assert counts["POST /org2/project/api-readList"] == 2  # the 401, then the retry


def test_failed_refresh_falls_back_to_login(bimp_server: BimpServer) -> None:
    with client(bimp_server) as c:
        c.warehouses()
        bimp_server.admin("POST", "/__admin/expire_tokens", {"refresh": True})
        c.projects()
        counts = bimp_server.admin("GET", "/__admin/requests")["by_path"]
        assert counts["POST /org2/auth/api-login"] == 2


def test_5xx_burst_on_a_read_is_retried(bimp_server: BimpServer) -> None:
    bimp_server.admin("POST", "/__admin/faults", {"fail_next": [
        {"path": "/org2/warehouse/api-readList", "status": 503, "times": 3}]})
    with client(bimp_server) as c:
        assert len(c.warehouses()) == 2
        assert c.request_counts["/org2/warehouse/api-readList"] == 4


def test_5xx_exhausted_raises_transient(bimp_server: BimpServer) -> None:
    bimp_server.admin("POST", "/__admin/faults", {"fail_next": [
        {"path": "/org2/warehouse/api-readList", "status": 500, "times": 10}]})
    with client(bimp_server, max_retries=2) as c, pytest.raises(BimpTransientError) as exc:
        c.warehouses()
    assert exc.value.status == 500 and c.request_counts["/org2/warehouse/api-readList"] == 3


def test_create_is_not_blindly_retried_after_5xx_or_dropped_connection(bimp_server: BimpServer) -> None:
    """R-ORCH-6: an ambiguous write failure surfaces so the ledger can reconcile; no duplicate is created."""
    with client(bimp_server) as c:
        c.warehouses()
        bimp_server.admin("POST", "/__admin/faults", {"fail_next": [
            {"path": "/org2/counterparty/api-insert", "status": 502, "times": 1}]})
        with pytest.raises(BimpTransientError) as exc:
            c.create_counterparty({"name": "A"})
        assert exc.value.ambiguous and c.request_counts["/org2/counterparty/api-insert"] == 1
        bimp_server.admin("POST", "/__admin/faults", {"drop_connection_next": 1})
        with pytest.raises(BimpTransientError) as exc:
            c.create_counterparty({"name": "B"})
        assert exc.value.ambiguous and c.request_counts["/org2/counterparty/api-insert"] == 2
        # the dropped create was processed by the server: exactly one "B" exists, found by a read
        assert [x["name"] for x in c.counterparties(name="B")] == ["B"]


def test_429_with_retry_after_is_honoured(bimp_server: BimpServer) -> None:
    bimp_server.admin("POST", "/__admin/faults", {"retry_after_s": 1, "fail_next": [
        {"path": "/org2/project/api-readList", "status": 429, "times": 1}]})
    with client(bimp_server) as c:
        c.warehouses()
        t0 = time.monotonic()
        assert c.projects()
        assert time.monotonic() - t0 >= 0.95
        assert c.request_counts["/org2/project/api-readList"] == 2
        # a write refused with 429 was not processed, so it is retried too
        bimp_server.admin("POST", "/__admin/faults", {"retry_after_s": 0, "fail_next": [
            {"path": "/org2/counterparty/api-insert", "status": 429, "times": 1}]})
        assert c.create_counterparty({"name": "C"})
        assert len(c.counterparties(name="C")) == 1


def test_pagination_across_250_items(bimp_server: BimpServer) -> None:
    with client(bimp_server) as c:
        for i in range(250):
            goods(c, f"PG-{i:03d}")
        items = c.nomenclature()
        assert len(items) == 250 and len({x["uuid"] for x in items}) == 250
        assert c.request_counts["/org2/nomenclature/api-readList"] == 3
        pages = list(c.iter_list("/org2/nomenclature/api-readList", {}))
        assert [len(p) for p in pages] == [100, 100, 50]
        assert c.nomenclature(article="PG-123")[0]["name"] == "Item PG-123"


def test_stocks_filtered_by_item_are_read_in_chunks_of_a_page(bimp_server: BimpServer) -> None:
    """readStocks takes a `nomenclatureUuid` array: 150 uuids go as 100 + 50, one short page each."""
    with client(bimp_server) as c:
        a = goods(c, "ST-1")
        receive(c, a, 4)
        unknown = [f"00000000-0000-4000-8000-{i:012d}" for i in range(149)]
        mark = bimp_server.admin("GET", "/__admin/requests")["logged"]
        rows = c.stocks([*unknown[:120], a, *unknown[120:]], [ID["wh"]])
        assert [(r["nomenclatureUuid"], r["leftover"], r["reserve"], r["stock"]) for r in rows] == [(a, 4, 0, 4)]
        calls = bimp_server.admin("GET", f"/__admin/requests?log=1&since={mark}")["log"]
        assert [(x["path"], len(x["body"]["nomenclatureUuid"]), x["body"]["warehouseUuid"]) for x in calls] == [
            ("/org2/nomenclature/api-readStocks", 100, [ID["wh"]]),
            ("/org2/nomenclature/api-readStocks", 50, [ID["wh"]])]
        assert c.stocks([], [ID["wh"]]) == [] and c.request_counts["/org2/nomenclature/api-readStocks"] == 2
        logged = json.dumps(bimp_server.admin("GET", "/__admin/requests?log=1")["log"], ensure_ascii=False)
        assert "/auth/" not in logged and DEMO_PASSWORD not in logged  # auth calls are never logged


def test_documents_flow_and_decimal_numbers(bimp_server: BimpServer) -> None:
    with client(bimp_server) as c:
        a = goods(c, "DOC-1")
        receive(c, a, 5)
        buyer = c.create_counterparty({"name": "Покупець", "phoneNumber": "+380501112233", "createContract": True})
        c.save_external_id(buyer, "keycrm", "77")
        assert c.counterparty_by_external_id("keycrm", "77")["counterpartyUuid"] == buyer
        assert c.external_id(buyer, "keycrm") == "77"
        assert [x["externalId"] for x in c.counterparty_external_ids("keycrm")] == ["77"]
        assert c.counterparties(phone="+380501112233")[0]["uuid"] == buyer
        contract = c.contracts(buyer)[0]["uuid"]
        assert c.contract(contract)["counterparty"] == buyer
        order = c.create_customer_order({"buyer": buyer, "warehouse": ID["wh"], "docNumber": "KC-9",
                                         "products": [{"nomenclature": a, "count": 2, "reserve": 2,
                                                       "cost": Decimal("34.70")}]})
        read = c.customer_order(order)
        assert read["products"][0]["cost"] == Decimal("34.7") and isinstance(read["sumPayed"], int)
        assert isinstance(read["products"][0]["amount"], Decimal) and read["products"][0]["amount"] == Decimal("69.4")
        stock = {r["productId"]: r for r in c.stock(ID["org"], ID["wh"])}
        assert (stock[a]["quantity"], stock[a]["reserved"], stock[a]["available"]) == (5, 2, 3)
        c.update_customer_order_status(order, ID["status_done"])
        assert c.customer_orders()[0]["status"] == ID["status_done"]
        sale = c.create_sales_invoice({
            "counterparty": {"uuid": buyer}, "contract": {"uuid": contract}, "project": {"uuid": ID["project"]},
            "lineOfBusiness": {"uuid": ID["lob"]}, "warehouse": {"uuid": ID["wh"]}, "currency": {"uuid": ID["uah"]},
            "invoiceForCustomerPayment": {"uuid": order},
            "products": [{"product": {"uuid": a}, "count": 2, "cost": Decimal("34.70"), "reserve": 2}]})
        assert [s["uuid"] for s in c.sales_invoices(order)] == [sale]
        assert c.sales_invoice(sale)["sum"] == Decimal("69.4")
        pay = c.create_customer_payment({"counterparty": buyer, "currency": ID["uah"], "paymentEntity": ID["cash"],
                                         "paymentDetails": [{"invoiceForCustomerpayment": order, "payed": 50}]})
        c.update_customer_payment(pay, {"paymentDetails": [{"invoiceForCustomerpayment": order,
                                                            "payed": Decimal("69.40")}]})
        assert c.customer_order(order)["sumPayed"] == Decimal("69.4")
        assert c.payment(pay)["documentSum"] == Decimal("69.4") and c.payments([order])[0]["uuid"] == pay
        ret = c.create_customer_return({"baseDocument": sale, "products": [{"nomenclature": a, "count": 2,
                                                                            "cost": Decimal("34.70")}]})
        assert c.customer_return(ret)["baseDocument"] == sale and c.returns()[0]["uuid"] == ret
        refund = c.create_refund({"expenseItem": ID["expense"], "customer": buyer, "organization": ID["org"],
                                  "paymentEntity": ID["cash"], "author": ID["user"],
                                  "paymentDetails": [{"invoice": order, "refundSum": Decimal("69.40")}]})
        assert c.refund(refund)["documentSum"] == Decimal("69.4") and c.refunds([buyer])[0]["uuid"] == refund
        assert c.customer_order(order)["sumPayed"] == 0
        c.cancel_customer_payment(pay)
        assert c.customer_order(order)["sumPayed"] == Decimal("-69.4")
        assert c.stocks([a], [ID["wh"]])[0]["leftover"] == 5
        c.create_price(a, ID["pricelist"], Decimal("99.90"), "2026-01-01T00:00:00")
        assert c.prices([a])[0]["priceLists"][0]["price"] == Decimal("99.9")


def test_typed_business_validation_and_not_found_errors(bimp_server: BimpServer) -> None:
    with client(bimp_server) as c:
        a = goods(c, "ERR-1")
        receive(c, a, 1)
        buyer = c.create_counterparty({"name": "X", "createContract": True})
        with pytest.raises(BimpBusinessError) as exc:
            c.create_customer_order({"buyer": buyer, "products": [{"nomenclature": a, "count": 2, "reserve": 2,
                                                                   "cost": 1}]})
        assert exc.value.reason == "reserve_exceeds_available" and exc.value.status == 400
        with pytest.raises(BimpValidationError) as vexc:
            c.create_customer_order({"buyer": "00000000-0000-4000-8000-000000000000", "products": []})
        assert vexc.value.field == "buyer"
        with pytest.raises(BimpNotFound):
            c.update_customer_order("00000000-0000-4000-8000-000000000000", {"comment": "x"})
        assert c.customer_order("00000000-0000-4000-8000-000000000000") is None
        state = bimp_server.admin("GET", "/__admin/state")
        state["companies"][0]["settings"]["closed_before"] = "2026-01-01"
        bimp_server.admin("PUT", "/__admin/state", state)
    with client(bimp_server) as c, pytest.raises(BimpBusinessError) as exc:
        c.create_customer_payment({"counterparty": buyer, "currency": ID["uah"], "date": "2025-12-31T10:00:00"})
    assert exc.value.reason == "period_closed"


def test_no_password_or_token_in_exceptions_or_logs(bimp_server: BimpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "keybimp_pipeline"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    secret = "s3cret-Pa55word!"
    state = bimp_server.admin("GET", "/__admin/state")
    state["users"].append({"email": "other@demo.example", "password": secret, "companies": [ID["company"]]})
    bimp_server.admin("PUT", "/__admin/state", state)
    messages: list[str] = []
    with BimpClient(bimp_server.url, "other@demo.example", secret, DEMO_COMPANY_CODE, max_retries=0) as c:
        c.warehouses()
        bimp_server.admin("POST", "/__admin/expire_tokens")
        c.projects()
        tokens = [t for t in (c._access, c._refresh, c._company_token) if t]
        messages.append(repr(c))
        bimp_server.admin("POST", "/__admin/faults", {"fail_next": [
            {"path": "/org2/project/api-readList", "status": 500, "times": 1}]})
        for fn in (c.projects, lambda: c.update_customer_order("00000000-0000-4000-8000-000000000000", {})):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - collecting every message
                messages.extend([str(e), repr(e), repr(e.args)])
    with BimpClient(bimp_server.url, "other@demo.example", secret + "x", DEMO_COMPANY_CODE) as c:
        try:
            c.warehouses()
        except BimpAuthError as e:
            messages.extend([str(e), repr(e)])
    assert len(tokens) == 3 and len(messages) >= 7
    logged = [r.getMessage() + " " + repr(r.args) for r in caplog.records]
    assert any("api-refresh" in m for m in logged)  # httpx's request log was captured
    for text in messages + logged:
        assert secret not in text
        for t in tokens:
            assert t not in text
