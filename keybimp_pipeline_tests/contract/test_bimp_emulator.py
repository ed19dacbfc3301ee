"""Contract tests of the Bimp emulator: every served operation answers in the vendor's schema
(bimp-openapi.json, relaxed per EMULATOR.md), and the business rules of EMULATOR.md / bimp-notes §7.3 hold.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from keybimp_pipeline.emulators.bimp.app import create_app
from keybimp_pipeline.emulators.bimp.seed import demo_state
from keybimp_pipeline_tests.bimp_fixtures import DEMO_EMAIL, DEMO_PASSWORD, BimpAsgi, bimp_ids
from keybimp_pipeline_tests.contract.openapi_check import load_spec, validate_response

SPEC = load_spec("bimp")
ID = bimp_ids()


def ok(c: BimpAsgi, path: str, body: Any = None, **kw: Any) -> Any:
    """POST, assert 200 and the vendor schema, return ``data``."""
    r = c.post(path, body if body is not None else {}, **kw)
    assert r.status_code == 200, (path, r.status_code, r.text)
    payload = r.json()
    validate_response(SPEC, path, "post", 200, payload)
    assert payload["success"] is True
    return payload["data"]


def err(c: BimpAsgi, path: str, body: Any, status: int, details: str | None = None, **kw: Any) -> dict:
    """Assert the PROPOSED error envelope {success:false, error:{code, message, details}} (bimp-notes §7.1)."""
    r = c.post(path, body, **kw) if not isinstance(body, bytes) else c.request("POST", path, content=body, **kw)
    assert r.status_code == status, (path, r.status_code, r.text)
    payload = r.json()
    assert payload["success"] is False
    assert set(payload["error"]) >= {"code", "message", "details"}
    assert payload["error"]["code"] == status
    if details is not None:
        assert payload["error"]["details"] == details
    return payload["error"]


PAGE = {"pagination": {"offset": 0, "count": 100}}


def make_item(c: BimpAsgi, article: str, name: str | None = None, **extra: Any) -> str:
    body = {"type": "goods", "name": name or f"Item {article}", "unitOfMeasurementUuid": ID["pcs"],
            "article": article, **extra}
    return ok(c, "/org2/nomenclature/api-create", body)["uuid"]


def make_customer(c: BimpAsgi, name: str = "Іван Петренко", **extra: Any) -> str:
    body = {"name": name, "isCustomer": True, "isSupplier": False, "isSoleProprietor": False,
            "createContract": True, **extra}
    return ok(c, "/org2/counterparty/api-insert", body)["uuid"]


def receive(c: BimpAsgi, nom: str, qty: int, wh: str = ID["wh"]) -> str:
    body = {"warehouse": wh, "organization": ID["org"], "products": [{"product": nom, "warehouseCount": qty,
                                                                      "cost": 10}]}
    return ok(c, "/org2/purchaseInvoice/api-create", body)["uuid"]


def make_order(c: BimpAsgi, buyer: str, lines: list[tuple[str, Any, Any, Any]], **extra: Any) -> str:
    body = {"buyer": buyer, "detailedWarehouses": False, "warehouse": ID["wh"],
            "products": [{"nomenclature": n, "count": cnt, "reserve": res, "cost": cost}
                         for n, cnt, res, cost in lines], **extra}
    return ok(c, "/org2/invoiceForCustomerPayment/api-create", body)["uuid"]


def contract_of(c: BimpAsgi, buyer: str) -> str:
    return ok(c, "/org2/contract/api-readList", {**PAGE, "counterpartyUuid": buyer})[0]["uuid"]


def sale_body(c: BimpAsgi, buyer: str, order: str | None, lines: list[tuple[str, Any, Any]], **extra: Any) -> dict:
    body = {"counterparty": {"uuid": buyer}, "contract": {"uuid": contract_of(c, buyer)}, "VATaccounted": False,
            "project": {"uuid": ID["project"]}, "lineOfBusiness": {"uuid": ID["lob"]},
            "warehouse": {"uuid": ID["wh"]}, "currency": {"uuid": ID["uah"]}, "managerialAccounting": True,
            "bookkeperAccounting": False,
            "products": [{"product": {"uuid": n}, "count": cnt, "cost": cost, "reserve": 0} for n, cnt, cost in lines],
            **extra}
    if order:
        body["invoiceForCustomerPayment"] = {"uuid": order}
    return body


def stock_row(c: BimpAsgi, nom: str, wh: str = ID["wh"]) -> dict:
    r = c.request("GET", "/org2/inventory/api-readList", params={"orgId": ID["org"], "warehouseId": wh,
                                                                  "pageSize": 100})
    assert r.status_code == 200
    validate_response(SPEC, "/org2/inventory/api-readList", "get", 200, r.json())
    return next(row for row in r.json()["data"] if row["productId"] == nom)


def set_settings(c: BimpAsgi, **settings: Any) -> None:
    state = c.request("GET", "/__admin/state", token=None).json()
    state["companies"][0]["settings"].update(settings)
    assert c.request("PUT", "/__admin/state", json=state, token=None).status_code == 200


# ------------------------------------------------------------------------------------------------ auth
def test_auth_login_refresh_select_company_and_token_kinds(bimp_app: Any) -> None:
    c = BimpAsgi(bimp_app)
    try:
        data = ok(c, "/org2/auth/api-login", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}, token=None)
        basic, refresh = data["accessToken"], data["refreshToken"]
        companies = ok(c, "/org2/company/api-readDetailedList", None, token=basic)
        assert [x["code"] for x in companies] == ["000001398"]
        by_code = ok(c, "/org2/auth/api-selectCompany", {"code": "000001398"}, token=basic)
        by_uuid = ok(c, "/org2/auth/api-selectCompany", {"uuid": ID["company"]}, token=basic)
        assert by_code["companyAccessToken"] != by_uuid["companyAccessToken"]
        # basic token on a company endpoint: 403; no/unknown token: 401; company token on selectCompany: 403
        err(c, "/org2/warehouse/api-readList", PAGE, 403, token=basic)
        err(c, "/org2/warehouse/api-readList", PAGE, 401, token="nope")
        err(c, "/org2/auth/api-selectCompany", {"code": "000001398"}, 403, token=by_code["companyAccessToken"])
        err(c, "/org2/auth/api-selectCompany", {"code": "999"}, 403, token=basic)
        err(c, "/org2/auth/api-login", {"email": DEMO_EMAIL, "password": "wrong"}, 401, token=None)
        new = ok(c, "/org2/auth/api-refresh", {"refreshToken": refresh}, token=basic)
        assert new["refreshToken"] != refresh
        err(c, "/org2/auth/api-refresh", {"refreshToken": refresh}, 401, token=None)  # single use
    finally:
        c.close()


def test_tokens_expire_after_ttl_on_the_admin_clock_and_on_expire_tokens() -> None:
    c = BimpAsgi(create_app(demo_state(), token_ttl_s=60))
    try:
        c.request("POST", "/__admin/clock", json={"now": "2026-11-02T08:00:00Z"}, token=None)
        c.login()
        ok(c, "/org2/warehouse/api-readList", PAGE)
        c.request("POST", "/__admin/clock", json={"advance_seconds": 61}, token=None)
        assert err(c, "/org2/warehouse/api-readList", PAGE, 401)["details"] == "token_expired"
        c.login()
        ok(c, "/org2/warehouse/api-readList", PAGE)
        assert c.request("POST", "/__admin/expire_tokens", token=None).status_code == 200
        err(c, "/org2/warehouse/api-readList", PAGE, 401)
    finally:
        c.close()


# ------------------------------------------------------------------------------------------------ reference books
@pytest.mark.parametrize("path,paginated,expected", [
    ("/org2/organization/api-readList", True, 1), ("/org2/warehouse/api-readList", True, 2),
    ("/org2/project/api-readList", True, 1), ("/org2/lineOfBusiness/api-readList", True, 1),
    ("/org2/currency/api-readList", True, 1), ("/org2/cashRegistry/api-readList", True, 1),
    ("/org2/bankAccounts/api-readList", True, 1), ("/org2/unitsOfMeasurment/api-readList", True, 2),
    ("/org2/vat/api-readList", False, 2), ("/org2/expenseItems/api-readList", False, 2),
    ("/org2/chartOfAccount/api-readList", False, 1), ("/org2/user/api-readList", True, 1),
    ("/org2/employee/api-readList", True, 1), ("/org2/invoiceForCustomerPayment/api-readStatuses", False, 4),
    ("/org2/customerPayment/api-readStatuses", True, 1), ("/org2/contract/api-readTypes", False, 3),
])
def test_reference_books_match_schema(bimp_asgi: BimpAsgi, path: str, paginated: bool, expected: int) -> None:
    data = ok(bimp_asgi, path, PAGE if paginated else {})
    assert len(data) == expected


def test_pagination_count_above_100_is_refused_and_offset_pages(bimp_asgi: BimpAsgi) -> None:
    err(bimp_asgi, "/org2/warehouse/api-readList", {"pagination": {"offset": 0, "count": 101}}, 400,
        "validation: pagination.count")
    first = ok(bimp_asgi, "/org2/warehouse/api-readList", {"pagination": {"offset": 0, "count": 1}})
    second = ok(bimp_asgi, "/org2/warehouse/api-readList", {"pagination": {"offset": 1, "count": 1}})
    assert [first[0]["uuid"], second[0]["uuid"]] == [ID["wh"], ID["wh2"]]
    assert ok(bimp_asgi, "/org2/warehouse/api-readList", {**PAGE, "main": True})[0]["uuid"] == ID["wh"]


# ------------------------------------------------------------------------------------------------ catalogue
def test_nomenclature_groups_and_items_create_update_and_filters(bimp_asgi: BimpAsgi) -> None:
    c = bimp_asgi
    g = ok(c, "/org2/nomenclature-group/api-create", {"name": "Нові", "parentuuid": ID["group"]})["uuid"]
    groups = ok(c, "/org2/nomenclature-group/api-readList", {})
    assert {x["uuid"] for x in groups} == {ID["group"], g}
    assert ok(c, "/org2/nomenclature-group/api-readList", {"uuid": [g]})[0]["parentuuid"] == ID["group"]
    sys_ = "11111111-1111-4111-8111-111111111111"
    a = make_item(c, "SKU-1", "Футболка", group=g, integration={"system": sys_, "externalId": "offer-1"})
    b = make_item(c, "SKU-2", "Футболка синя")
    svc = ok(c, "/org2/nomenclature/api-create", {"type": "service", "name": "Доставка товару",
                                                 "unitOfMeasurementUuid": ID["service_unit"],
                                                 "chartOfAccountUuid": ID["account"]})["uuid"]
    lst = "/org2/nomenclature/api-readList"
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "article": "SKU-1"})] == [a]
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "name": "футболка"})] == [a]
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "nameContains": "Футболка"})] == [a, b]
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "nomenclatureUuids": [b, svc]})] == [b, svc]
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "nomenclatureGroupUuids": [g]})] == [a]
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "integration": {"system": sys_, "externalId": "offer-1"}})] == [a]
    assert ok(c, lst, {**PAGE, "integration": {"system": sys_, "externalId": "none"}}) == []
    assert ok(c, "/org2/nomenclature/api-update", {"uuid": b, "article": "SKU-2B", "name": "Сорочка"}) == {}
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "article": "SKU-2B"})] == [b]
    assert ok(c, lst, {**PAGE, "article": "SKU-2"}) == []
    err(c, "/org2/nomenclature/api-update", {"uuid": "00000000-0000-4000-8000-000000000000"}, 404)
    err(c, "/org2/nomenclature/api-create", {"type": "service", "name": "X", "unitOfMeasurementUuid": ID["pcs"]},
        400, "validation: chartOfAccountUuid")
    err(c, "/org2/nomenclature/api-create", {"type": "goods", "name": "Y", "unitOfMeasurementUuid": ID["pcs"],
                                             "integration": {"system": sys_, "externalId": "offer-1"}},
        400, "duplicate_external_id")


def test_stocks_prices_and_price_lists(bimp_asgi: BimpAsgi) -> None:
    c = bimp_asgi
    a = make_item(c, "P-1")
    receive(c, a, 7)
    stocks = ok(c, "/org2/nomenclature/api-readStocks", {**PAGE, "warehouseUuid": [ID["wh"]],
                                                        "nomenclatureUuid": [a]})
    assert stocks[0]["leftover"] == 7 and stocks[0]["reserve"] == 0 and stocks[0]["stock"] == 7
    pls = ok(c, "/org2/priceList/api-readList", PAGE)
    assert pls[0]["uuid"] == ID["pricelist"]
    assert ok(c, "/org2/priceList/api-read", {"uuid": ID["pricelist"]})["currency"] == "UAH"
    ok(c, "/org2/priceList/api-createPrice", {"nomenclatureUuid": a, "priceListUuid": ID["pricelist"],
                                              "amount": 100, "date": "2026-01-01T00:00:00"})
    ok(c, "/org2/priceList/api-createPrice", {"nomenclatureUuid": a, "priceListUuid": ID["pricelist"],
                                              "amount": 120.5, "date": "2026-06-01T00:00:00"})
    hist = ok(c, "/org2/priceList/api-readPrice", {"priceListUuid": ID["pricelist"]})
    assert [p["amount"] for p in hist[0]["prices"]] == [100, 120.5]
    rp = "/org2/nomenclature/api-readPrices"
    latest = ok(c, rp, {**PAGE, "nomenclatureUuids": [a], "periodable": None})
    assert latest[0]["priceLists"][0]["price"] == 120.5
    assert latest[0]["priceLists"][0]["currency"]["iso"] == "UAH"
    march = ok(c, rp, {**PAGE, "nomenclatureUuids": [a], "periodable": "2026-03-01T00:00:00.000Z"})
    assert march[0]["priceLists"][0]["price"] == 100
    before = ok(c, rp, {**PAGE, "nomenclatureUuids": [a], "periodable": "2025-03-01T00:00:00.000Z"})
    assert before[0]["priceLists"] is None


# ------------------------------------------------------------------------------------------------ counterparties
def test_counterparties_insert_filters_external_ids_and_contracts(bimp_asgi: BimpAsgi) -> None:
    c = bimp_asgi
    sys_ = "22222222-2222-4222-8222-222222222222"
    a = make_customer(c, "Олена Ковальчук", phoneNumber="+380 67 123 45 67", email="Olena@Example.com",
                      integration={"system": sys_, "externalId": "buyer-7"})
    b = make_customer(c, "Петро Іваненко", createContract=False)
    lst = "/org2/counterparty/api-readList"
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "phoneNumber": "+380671234567"})] == [a]
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "email": "olena@example.com"})] == [a]
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "name": "Петро Іваненко"})] == [b]
    assert [x["uuid"] for x in ok(c, lst, {**PAGE, "integration": {"system": sys_, "externalId": "buyer-7"}})] == [a]
    assert len(ok(c, lst, PAGE)) == 2
    assert ok(c, "/org2/counterparty/api-read", {"uuid": a})["email"] == "Olena@Example.com"
    assert ok(c, "/org2/counterparty/api-read", {"uuid": "00000000-0000-4000-8000-000000000000"}) is None
    assert ok(c, "/org2/counterparty/api-saveExternalId", {"counterpartyUuid": b, "source": " KeyCRM ",
                                                           "externalId": "42"}) == {"success": True}
    assert ok(c, "/org2/counterparty/api-readExternalId", {"counterpartyUuid": b, "source": "keycrm"}) == {
        "externalId": "42"}
    assert ok(c, "/org2/counterparty/api-readExternalId", {"counterpartyUuid": a, "source": "keycrm"}) is None
    assert ok(c, "/org2/counterparty/api-readByExternalId", {"source": "keycrm", "externalId": "42"})[
        "counterpartyUuid"] == b
    assert ok(c, "/org2/counterparty/api-readByExternalId", {"source": "keycrm", "externalId": "43"}) is None
    ids = ok(c, "/org2/counterparty/api-readExternalIdsList", {**PAGE, "source": "keycrm"})
    assert [(x["counterpartyUuid"], x["externalId"]) for x in ids] == [(b, "42")]
    # contracts: one made by createContract for a; create one for b
    assert len(ok(c, "/org2/contract/api-readList", {**PAGE, "counterpartyUuid": a})) == 1
    ct = ok(c, "/org2/contract/api-create", {"name": "Договір Б", "counterparty": b, "lineOfBusiness": ID["lob"],
                                             "organization": ID["org"], "project": ID["project"],
                                             "currency": ID["uah"], "contractType": 1})["uuid"]
    read = ok(c, "/org2/contract/api-read", {"uuid": ct})
    assert read["counterparty"] == b and read["currency"] == ID["uah"]
    listed = ok(c, "/org2/contract/api-readList", {**PAGE, "counterpartyUuid": b})
    assert listed[0]["counterparty"] == {"uuid": b, "name": "Петро Іваненко"}
    err(c, "/org2/contract/api-create", {"name": "X", "counterparty": b}, 400, "validation: organization")


# ------------------------------------------------------------------------------------------------ documents
def test_customer_order_create_read_list_update_status(bimp_asgi: BimpAsgi) -> None:
    c = bimp_asgi
    a = make_item(c, "O-1")
    receive(c, a, 10)
    buyer = make_customer(c)
    o = make_order(c, buyer, [(a, 2, 2, 150.25)], docNumber="KC-1001", date="2026-11-02T10:00:00")
    read = ok(c, "/org2/invoiceForCustomerPayment/api-read", {"uuid": o})
    assert read["docNumber"] == "KC-1001" and read["date"] == "2026-11-02T10:00:00"
    assert read["products"][0]["reserve"] == 2 and read["quantityOrdered"] == 2
    assert Decimal(str(read["products"][0]["amount"])) == Decimal("300.50")
    listed = ok(c, "/org2/invoiceForCustomerPayment/api-readList", PAGE)
    assert listed[0]["uuid"] == o and listed[0]["products"] == [a]
    assert ok(c, "/org2/invoiceForCustomerPayment/api-update",
              {"uuid": o, "products": [{"nomenclature": a, "count": 3, "reserve": 3, "cost": 150}]}) == {"uuid": o}
    assert stock_row(c, a)["reserved"] == 3
    assert ok(c, "/org2/invoiceForCustomerPayment/api-updateStatus",
              {"invoiceUuid": o, "statusUuid": ID["status_done"]}) == {}
    assert ok(c, "/org2/invoiceForCustomerPayment/api-readList", {**PAGE, "status": ID["status_done"]})[0][
        "uuid"] == o
    err(c, "/org2/invoiceForCustomerPayment/api-update", {"uuid": "00000000-0000-4000-8000-000000000000"}, 404)
    err(c, "/org2/invoiceForCustomerPayment/api-updateStatus",
        {"invoiceUuid": "00000000-0000-4000-8000-000000000000", "statusUuid": ID["status_done"]}, 404)
    assert ok(c, "/org2/invoiceForCustomerPayment/api-read", {"uuid": "00000000-0000-4000-8000-000000000000"}) is None


def test_reserve_larger_than_free_stock_is_refused_and_released_by_zero_reserve(bimp_asgi: BimpAsgi) -> None:
    """R-MAIN-3/R-MAIN-4 support: reserve > available refused; an update with reserve 0 releases it."""
    c = bimp_asgi
    a = make_item(c, "R-1")
    receive(c, a, 5)
    buyer = make_customer(c)
    o1 = make_order(c, buyer, [(a, 3, 3, 10)])
    row = stock_row(c, a)
    assert (row["quantity"], row["reserved"], row["available"]) == (5, 3, 2)
    err(c, "/org2/invoiceForCustomerPayment/api-create",
        {"buyer": buyer, "detailedWarehouses": False, "products": [{"nomenclature": a, "count": 3, "reserve": 3,
                                                                     "cost": 10}]}, 400, "reserve_exceeds_available")
    ok(c, "/org2/invoiceForCustomerPayment/api-update",
       {"uuid": o1, "products": [{"nomenclature": a, "count": 3, "reserve": 0, "cost": 10}]})
    assert stock_row(c, a)["available"] == 5
    make_order(c, buyer, [(a, 5, 5, 10)])
    assert stock_row(c, a)["available"] == 0


def test_sale_takes_goods_releases_reserve_and_counts_other_orders_reserves(bimp_asgi: BimpAsgi) -> None:
    """R-SALE-2/R-SALE-5: a sale consumes its order's reserve; stock reserved for other orders is unavailable."""
    c = bimp_asgi
    a = make_item(c, "S-1")
    receive(c, a, 5)
    buyer = make_customer(c)
    mine = make_order(c, buyer, [(a, 2, 2, 100)])
    make_order(c, buyer, [(a, 3, 3, 100)])  # another order reserves the rest
    # a sale without an order may not take goods reserved by both orders
    err(c, "/org2/salesInvoice/api-create", sale_body(c, buyer, None, [(a, 1, 100)]), 400, "insufficient_stock")
    # shipping 3 on my order: only my 2 are available to me
    err(c, "/org2/salesInvoice/api-create", sale_body(c, buyer, mine, [(a, 3, 100)]), 400, "insufficient_stock")
    s = ok(c, "/org2/salesInvoice/api-create", sale_body(c, buyer, mine, [(a, 2, 100)], documentNumber="KC-5"))["uuid"]
    row = stock_row(c, a)
    assert (row["quantity"], row["reserved"], row["available"]) == (3, 3, 0)
    order = ok(c, "/org2/invoiceForCustomerPayment/api-read", {"uuid": mine})
    assert order["quantityShipped"] == 2 and order["products"][0]["shiped"] == 2
    assert order["products"][0]["reserve"] == 0 and order["sumShipped"] == 200
    read = ok(c, "/org2/salesInvoice/api-read", {"uuid": s})
    assert read["documentNumber"] == "KC-5" and read["sum"] == 200 and read["products"][0]["product"]["uuid"] == a
    assert [x["uuid"] for x in ok(c, "/org2/salesInvoice/api-readList", {**PAGE, "orderUuid": mine})] == [s]
    assert ok(c, "/org2/salesInvoice/api-readList", {**PAGE, "orderUuid": ID["wh"]}) == []
    # update: ship 1 instead of 2 -> one unit back on the warehouse
    ok(c, "/org2/salesInvoice/api-update", {"uuid": s, "products": [{"product": {"uuid": a}, "count": 1,
                                                                      "cost": 100, "reserve": 0}]})
    assert stock_row(c, a)["quantity"] == 4
    err(c, "/org2/salesInvoice/api-update", {"uuid": "00000000-0000-4000-8000-000000000000"}, 404)


def test_closed_period_and_zero_price_refusals(bimp_asgi: BimpAsgi) -> None:
    """R-SALE-5 period_closed and R-SALE-6 zero_price, each a distinct machine-readable reason."""
    c = bimp_asgi
    a = make_item(c, "Z-1")
    receive(c, a, 5)
    buyer = make_customer(c)
    o = make_order(c, buyer, [(a, 1, 0, 0)], date="2026-11-02T10:00:00")
    set_settings(c, closed_before="2026-11-01T00:00:00", zero_price_control=True)
    err(c, "/org2/salesInvoice/api-create", sale_body(c, buyer, o, [(a, 1, 50)], date="2026-10-31T23:00:00"), 400,
        "period_closed")
    err(c, "/org2/customerPayment/api-create", {"counterparty": buyer, "currency": ID["uah"],
                                                "date": "2026-10-01T00:00:00"}, 400, "period_closed")
    err(c, "/org2/salesInvoice/api-create", sale_body(c, buyer, o, [(a, 1, 0)], date="2026-11-02T12:00:00"), 400,
        "zero_price")
    set_settings(c, zero_price_control=False)
    ok(c, "/org2/salesInvoice/api-create", sale_body(c, buyer, o, [(a, 1, 0)], date="2026-11-02T12:00:00"))


def test_return_puts_goods_back(bimp_asgi: BimpAsgi) -> None:
    c = bimp_asgi
    a = make_item(c, "RT-1")
    receive(c, a, 4)
    buyer = make_customer(c)
    o = make_order(c, buyer, [(a, 2, 2, 80)])
    s = ok(c, "/org2/salesInvoice/api-create", sale_body(c, buyer, o, [(a, 2, 80)]))["uuid"]
    assert stock_row(c, a)["quantity"] == 2
    r = ok(c, "/org2/customer-inventories-return/api-create",
           {"baseDocument": s, "number": "RET-1", "products": [{"nomenclature": a, "count": 2, "cost": 80}]})["uuid"]
    assert stock_row(c, a)["quantity"] == 4
    read = ok(c, "/org2/customer-inventories-return/api-read", {"uuid": r})
    assert read["number"] == "RET-1" and read["counterparty"] == buyer and read["documentSum"] == 160
    assert [x["uuid"] for x in ok(c, "/org2/customer-inventories-return/api-readList", PAGE)] == [r]
    err(c, "/org2/customer-inventories-return/api-create", {"baseDocument": o}, 400, "validation: baseDocument")


def test_payments_and_refunds_move_sum_payed(bimp_asgi: BimpAsgi) -> None:
    c = bimp_asgi
    a = make_item(c, "PAY-1")
    buyer = make_customer(c)
    o = make_order(c, buyer, [(a, 1, 0, 500)])
    pay = {"counterparty": buyer, "currency": ID["uah"], "paymentEntity": ID["cash"], "number": "P-1",
           "paymentDetails": [{"invoiceForCustomerpayment": o, "payed": 300}]}
    p = ok(c, "/org2/customerPayment/api-create", pay)["uuid"]

    def paid() -> Any:
        return ok(c, "/org2/invoiceForCustomerPayment/api-read", {"uuid": o})["sumPayed"]

    assert paid() == 300
    ok(c, "/org2/customerPayment/api-update", {"uuid": p, "paymentDetails": [{"invoiceForCustomerpayment": o,
                                                                               "payed": 500}]})
    assert paid() == 500
    read = ok(c, "/org2/customerPayment/api-read", {"uuid": p})
    assert read["number"] == "P-1" and read["documentSum"] == 500 and read["order"] == o
    assert [x["uuid"] for x in ok(c, "/org2/customerPayment/api-readList", {**PAGE, "orders": [o]})] == [p]
    assert ok(c, "/org2/customerPayment/api-cancel", {"uuid": p}) == {"success": True}
    assert paid() == 0
    p2 = ok(c, "/org2/customerPayment/api-create", {**pay, "number": "P-2"})["uuid"]
    assert paid() == 300
    refund = {"uuid": "33333333-3333-4333-8333-333333333333", "expenseItem": ID["expense"], "customer": buyer,
              "organization": ID["org"], "paymentEntity": ID["bank"], "author": ID["user"],
              "paymentDetails": [{"invoice": o, "refundSum": 300}]}
    first = ok(c, "/org2/refundToCustomer/api-create", refund)
    assert ok(c, "/org2/refundToCustomer/api-create", refund) == first  # same uuid: no second refund
    assert paid() == 0
    assert ok(c, "/org2/refundToCustomer/api-read", {"uuid": first["uuid"]})["documentSum"] == 300
    listed = ok(c, "/org2/refundToCustomer/api-readList", {**PAGE, "customers": [buyer]})
    assert listed["total"] == 1 and listed["rows"][0]["uuid"] == first["uuid"]
    err(c, "/org2/customerPayment/api-cancel", {"uuid": "00000000-0000-4000-8000-000000000000"}, 404)
    assert p2


def test_inventory_pages_cursor_and_422(bimp_asgi: BimpAsgi) -> None:
    c = bimp_asgi
    noms = sorted(make_item(c, f"INV-{i}") for i in range(5))
    for n in noms:
        receive(c, n, 1)
    pages = []
    for page in (1, 2, 3):
        r = c.request("GET", "/org2/inventory/api-readList", params={"orgId": ID["org"], "warehouseId": ID["wh"],
                                                                      "page": page, "pageSize": 2})
        validate_response(SPEC, "/org2/inventory/api-readList", "get", 200, r.json())
        pages.append([x["productId"] for x in r.json()["data"]])
    assert pages == [noms[:2], noms[2:4], noms[4:]]
    r = c.request("GET", "/org2/inventory/api-readList/cursor", params={"orgId": ID["org"], "warehouseId": ID["wh"],
                                                                         "limit": 3})
    validate_response(SPEC, "/org2/inventory/api-readList/cursor", "get", 200, r.json())
    first = r.json()["data"]
    r = c.request("GET", "/org2/inventory/api-readList/cursor", params={"orgId": ID["org"], "warehouseId": ID["wh"],
                                                                         "limit": 3, "lastId": first["next_cursor"]})
    assert [x["productId"] for x in first["items"] + r.json()["data"]["items"]] == noms
    assert r.json()["data"]["next_cursor"] is None
    bad = c.request("GET", "/org2/inventory/api-readList", params={"warehouseId": ID["wh"]})
    assert bad.status_code == 422
    validate_response(SPEC, "/org2/inventory/api-readList", "get", 422, bad.json())


# ------------------------------------------------------------------------------------------------ robustness
@pytest.mark.parametrize("path,body", [
    ("/org2/warehouse/api-readList", b"{not json"),
    ("/org2/warehouse/api-readList", b"[1, 2]"),
    ("/org2/warehouse/api-readList", {"pagination": {"offset": "a", "count": 5}}),
    ("/org2/warehouse/api-readList", {"pagination": 5}),
    ("/org2/nomenclature/api-create", {"type": "goods", "name": 5}),
    ("/org2/nomenclature/api-readList", {"pagination": {"offset": 0, "count": 5}, "nomenclatureUuids": [1]}),
    ("/org2/counterparty/api-insert", {"name": ["x"]}),
    ("/org2/invoiceForCustomerPayment/api-create", {"buyer": 1, "detailedWarehouses": False}),
    ("/org2/invoiceForCustomerPayment/api-create", {"detailedWarehouses": "no"}),
    ("/org2/salesInvoice/api-create", {"counterparty": "not-an-object"}),
    ("/org2/customerPayment/api-create", {"counterparty": None, "currency": True}),
    ("/org2/refundToCustomer/api-create", {"paymentDetails": "x"}),
    ("/org2/customer-inventories-return/api-create", {"baseDocument": {"uuid": 1}}),
    ("/org2/nomenclature/api-readPrices", {"pagination": {"offset": 0, "count": 5}, "periodable": 7}),
    ("/org2/priceList/api-createPrice", {"nomenclatureUuid": [], "priceListUuid": 1, "amount": "x"}),
    ("/org2/purchaseInvoice/api-create", {"warehouse": "nope", "products": {}}),
    ("/org2/no/such-endpoint", {}),
])
def test_bad_requests_never_500(bimp_asgi: BimpAsgi, path: str, body: Any) -> None:
    r = (bimp_asgi.request("POST", path, content=body) if isinstance(body, bytes) else bimp_asgi.post(path, body))
    assert r.status_code in (400, 404), r.text
    payload = r.json()
    assert payload["success"] is False and payload["error"]["details"]
    assert "Traceback" not in r.text


def test_admin_faults_rate_limit_and_request_counts(bimp_asgi: BimpAsgi) -> None:
    c = bimp_asgi
    admin = {"token": None}
    c.request("POST", "/__admin/reset", **admin)
    c.request("PUT", "/__admin/state", json=demo_state(), **admin)
    c.login()
    c.request("POST", "/__admin/faults", json={"fail_next": [{"path": "/org2/warehouse/api-readList",
                                                              "status": 503, "times": 2}]}, **admin)
    assert [c.post("/org2/warehouse/api-readList", PAGE).status_code for _ in range(3)] == [503, 503, 200]
    c.request("POST", "/__admin/faults", json={"requests_per_minute": 2}, **admin)
    codes = [c.post("/org2/project/api-readList", PAGE) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].json()["error"]["retryAfter"] >= 1 and int(codes[2].headers["Retry-After"]) >= 1
    validate_response(SPEC, "/org2/inventory/api-readList", "get", 429, codes[2].json())
    c.request("POST", "/__admin/faults", json={}, **admin)
    counts = c.request("GET", "/__admin/requests", **admin).json()
    assert counts["by_path"]["POST /org2/warehouse/api-readList"] == 3
    assert counts["by_path"]["POST /org2/project/api-readList"] == 3
    assert sum(counts["per_minute"].values()) == counts["total"]
    assert not any("__admin" in k for k in counts["by_path"])


def test_state_round_trip_and_reserved_not_stored(bimp_asgi: BimpAsgi) -> None:
    c = bimp_asgi
    a = make_item(c, "ST-1")
    receive(c, a, 5)
    make_order(c, make_customer(c), [(a, 2, 2, 10)])
    state = c.request("GET", "/__admin/state", token=None).json()
    co = state["companies"][0]
    assert co["stock"] == [{"warehouseUuid": ID["wh"], "nomenclatureUuid": a, "quantity": 5}]
    assert "reserved" not in str(co["stock"])
    c.request("PUT", "/__admin/state", json=state, token=None)
    assert stock_row(c, a)["reserved"] == 2  # derived again from the order's lines
    c.request("POST", "/__admin/reset", token=None)
    assert c.request("GET", "/__admin/state", token=None).json()["users"][0]["email"] == DEMO_EMAIL


def test_large_state_loads_fast_and_lists_are_not_quadratic() -> None:
    state = demo_state()
    co = state["companies"][0]
    co["nomenclature"] = [{"uuid": f"00000000-0000-4000-8000-{i:012d}", "name": f"Item {i}", "article": f"A{i}",
                           "type": "goods", "unitOfMeasurementUuid": ID["pcs"]} for i in range(50_000)]
    co["stock"] = [{"warehouseUuid": ID["wh"], "nomenclatureUuid": x["uuid"], "quantity": 3}
                   for x in co["nomenclature"][:10_000]]
    co["counterparties"] = [{"uuid": f"10000000-0000-4000-8000-{i:012d}", "name": f"C {i}"} for i in range(1000)]
    co["customerOrders"] = [{"uuid": f"20000000-0000-4000-8000-{i:012d}", "buyer": co["counterparties"][i % 1000][
        "uuid"], "warehouse": ID["wh"], "date": "2026-11-01T10:00:00", "docNumber": f"N{i}",
        "products": [{"nomenclatureUuid": co["nomenclature"][i]["uuid"], "count": 1, "reserve": 1, "cost": 5}]}
        for i in range(10_000)]
    t0 = time.monotonic()
    c = BimpAsgi(create_app(state))
    try:
        c.login()
        load_s = time.monotonic() - t0
        t1 = time.monotonic()
        seen = 0
        for off in range(0, 50_000, 100):
            seen += len(ok_fast(c, "/org2/nomenclature/api-readList", {"pagination": {"offset": off, "count": 100}}))
        pages_s = time.monotonic() - t1
        assert seen == 50_000
        assert ok_fast(c, "/org2/nomenclature/api-readList", {**PAGE, "article": "A49999"})[0]["name"] == "Item 49999"
        r = c.request("GET", "/org2/inventory/api-readList", params={"orgId": ID["org"], "warehouseId": ID["wh"],
                                                                      "page": 1, "pageSize": 1})
        assert r.json()["data"][0]["reserved"] == 1
    finally:
        c.close()
    assert load_s < 10 and pages_s < 15, (load_s, pages_s)


def ok_fast(c: BimpAsgi, path: str, body: dict) -> Any:
    r = c.post(path, body)
    assert r.status_code == 200
    return r.json()["data"]
