"""The demo shop generator: deterministic, realistic, and shaped as the emulators' state format."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from keybimp_pipeline.emulators import demo_shop as ds

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000Z$")
KEYCRM_KEYS = {"api_keys", "statuses", "payment_methods", "sources", "delivery_services", "warehouses",
               "products", "offers", "stocks", "buyers", "orders"}
COMPANY_KEYS = {"uuid", "code", "name", "settings", "organizations", "warehouses", "projects", "linesOfBusiness",
                "currencies", "cashRegistries", "bankAccounts", "unitsOfMeasurement", "expenseItems",
                "chartOfAccounts", "users", "employees", "vat", "nomenclatureGroups", "nomenclature",
                "counterparties", "contracts", "counterpartyExternalIds", "priceLists", "prices",
                "orderStatuses", "paymentStatuses", "stock", "customerOrders", "salesInvoices",
                "customerPayments", "customerReturns", "refunds"}


@pytest.fixture(scope="module")
def demo() -> dict:
    return ds.generate_demo(3000)


def _digits(phone: str) -> str:
    d = re.sub(r"\D", "", phone)
    return "38" + d if d.startswith("0") else d


def _phone_style(phone: str) -> str:
    """The shape of a typed phone: digits become 9, so '+38 (067) 123-45-67' -> '+99 (999) 999-99-99'."""
    return re.sub(r"\d", "9", phone)


def test_constants_are_fake_and_shaped_like_the_real_ones():
    assert len(ds.DEMO_KEYCRM_KEY) == 50 and ds.DEMO_KEYCRM_KEY.startswith("demo")
    assert len(ds.DEMO_KEYCRM_KEY_2) == 50 and ds.DEMO_KEYCRM_KEY_2 != ds.DEMO_KEYCRM_KEY
    assert re.fullmatch(r"[A-Za-z0-9]{50}", ds.DEMO_KEYCRM_KEY)
    assert ds.DEMO_BIMP_EMAIL == "demo@keybimp.local"
    assert ds.DEMO_COMPANY_CODE == "000001398"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", ds.DEMO_COMPANY_UUID)


def test_same_seed_gives_byte_identical_json_and_another_seed_differs():
    a = json.dumps(ds.generate_demo(300), ensure_ascii=False)
    b = json.dumps(ds.generate_demo(300), ensure_ascii=False)
    c = json.dumps(ds.generate_demo(300, seed=7), ensure_ascii=False)
    assert a == b
    assert a != c


def test_all_state_keys_present(demo):
    kc, bimp = demo["keycrm"], demo["bimp"]
    assert set(kc) == KEYCRM_KEYS
    assert kc["api_keys"] == [ds.DEMO_KEYCRM_KEY]
    assert bimp["users"] == [{"email": ds.DEMO_BIMP_EMAIL, "password": ds.DEMO_BIMP_PASSWORD,
                              "companies": [ds.DEMO_COMPANY_UUID]}]
    (company,) = bimp["companies"]
    assert COMPANY_KEYS <= set(company)
    assert company["uuid"] == ds.DEMO_COMPANY_UUID and company["code"] == ds.DEMO_COMPANY_CODE
    assert company["settings"] == {"zero_price_control": False, "closed_before": None}
    for key in COMPANY_KEYS - {"uuid", "code", "name", "settings", "counterpartyExternalIds", "customerOrders",
                               "salesInvoices", "customerPayments", "customerReturns", "refunds"}:
        assert company[key], f"{key} is empty"


@pytest.mark.parametrize("orders", [10, 3000])
def test_sizes(orders):
    st = ds.generate_demo(orders)["keycrm"]
    assert len(st["orders"]) == orders
    assert [o["id"] for o in st["orders"]] == list(range(1, orders + 1))
    assert len(st["buyers"]) == max(4, round(orders * 0.4))
    assert len(st["offers"]) == 400
    assert len(st["products"]) == 120
    assert {o["client_id"] for o in st["orders"]} <= {b["id"] for b in st["buyers"]}


def test_hundred_thousand_orders_stream_and_match_the_state_content():
    """100,000 orders work (first chunk streamed), and the stream is exactly the state's orders."""
    head = list(itertools.islice(ds.iter_demo_orders(100_000), 50))
    assert [o["id"] for o in head] == list(range(1, 51))
    assert all(TS.match(o["created_at"]) for o in head)
    small = ds.generate_demo(250)["keycrm"]["orders"]
    assert list(ds.iter_demo_orders(250)) == small


def test_orders_spread_over_the_window_with_live_timestamps(demo):
    orders = demo["keycrm"]["orders"]
    created = [o["created_at"] for o in orders]
    assert created == sorted(created)  # ids grow with time
    assert created[0] >= "2026-09-03" and created[-1] < "2026-12-02"
    days = {c[:10] for c in created}
    assert len(days) >= 85
    for o in orders:
        for key in ("created_at", "ordered_at", "updated_at", "status_changed_at"):
            assert TS.match(o[key]), (o["id"], key)
        assert o["ordered_at"] <= o["created_at"] <= o["status_changed_at"] <= o["updated_at"]
        assert o["buyer"]["id"] == o["client_id"]
        assert isinstance(o["buyer"]["full_name"], str) and isinstance(o["buyer"]["phone"], str)


def test_statuses_groups_and_older_orders_mostly_completed(demo):
    kc = demo["keycrm"]
    by_alias = {s["alias"]: s for s in kc["statuses"]}
    assert {a: s["group_id"] for a, s in by_alias.items()} == {
        "new": 1, "in_progress": 2, "delivery": 4, "completed": 5, "canceled": 6, "returned": 6}
    closing = {s["id"] for s in kc["statuses"] if s["is_closing_order"]}
    old = [o for o in kc["orders"] if o["created_at"] < "2026-11-01"]
    recent = [o for o in kc["orders"] if o["created_at"] >= "2026-11-30"]
    share_completed = sum(o["status_id"] == by_alias["completed"]["id"] for o in old) / len(old)
    assert share_completed > 0.7
    assert {o["status_id"] for o in recent} & {by_alias["new"]["id"], by_alias["in_progress"]["id"]}
    assert Counter(o["status_id"] for o in kc["orders"]).keys() == {s["id"] for s in kc["statuses"]}
    for o in kc["orders"]:
        assert (o["closed_at"] is not None) == (o["status_id"] in closing)
        assert o["status_group_id"] == next(s["group_id"] for s in kc["statuses"] if s["id"] == o["status_id"])


def test_money_totals_payments_and_shipping_add_up(demo):
    kc = demo["keycrm"]
    methods = {m["name"]: m["id"] for m in kc["payment_methods"]}
    assert set(methods) == {"Накладений платіж", "Оплата карткою", "Банківський переказ"}
    completed = next(s["id"] for s in kc["statuses"] if s["alias"] == "completed")
    seen_methods, card_paid_early, discounts, shipping = set(), 0, 0, 0
    for o in kc["orders"]:
        lines = sum(Decimal(str(ln["price_sold"])) * ln["quantity"] for ln in o["products"])
        assert Decimal(str(o["products_total"])) == lines
        disc = Decimal(str(o["discount_amount"] or 0))
        ship = Decimal(str(o["shipping_price"] or 0))
        assert Decimal(str(o["grand_total"])) == lines - disc + ship
        paid = sum(Decimal(str(p["amount"])) for p in o["payments"] if p["status"] == "paid")
        assert Decimal(str(o["payments_total"])) == paid
        assert sum(Decimal(str(p["amount"])) for p in o["payments"]) == Decimal(str(o["grand_total"]))
        expected = "not_paid" if paid == 0 else "paid" if paid == Decimal(str(o["grand_total"])) else "part_paid"
        assert o["payment_status"] == expected
        if o["status_id"] == completed:
            assert o["payment_status"] == "paid"
            assert o["shipping"]["shipping_date_actual"] is not None
        for p in o["payments"]:
            seen_methods.add(p["payment_method_id"])
            if (p["payment_method_id"] == methods["Оплата карткою"] and p["status"] == "paid"
                    and o["shipping"]["shipping_date_actual"] is None):
                card_paid_early += 1
        discounts += disc > 0
        shipping += ship > 0
        assert 0 <= ship <= 120
    assert seen_methods == set(methods.values())
    assert card_paid_early > 10
    assert 50 < discounts < 600 and shipping > 500
    assert {s["currency_code"] for s in kc["sources"]} == {"UAH"}
    assert {w["id"] for w in kc["warehouses"]} == {1, 2}


def test_gift_lines_are_zero_priced(demo):
    gifts = [ln for o in demo["keycrm"]["orders"] for ln in o["products"] if ln["price_sold"] == 0]
    assert len(gifts) > 30
    assert all(ln["price"] == 0 and ln["comment"] == "Подарунок" for ln in gifts)
    assert {ln["sku"] for ln in gifts} == {"GIFT-CARD", "GIFT-STICKERS"}


def test_catalogue_has_variants_and_stocks_per_warehouse(demo):
    kc = demo["keycrm"]
    per_product = Counter(of["product_id"] for of in kc["offers"])
    assert max(per_product.values()) >= 5 and min(per_product.values()) == 1
    assert any({p["name"] for p in of["properties"]} == {"Колір", "Розмір"} for of in kc["offers"])
    stocks = {(s["offer_id"], s["warehouse_id"]): s for s in kc["stocks"]}
    assert {w for _, w in stocks} == {1, 2}
    assert all(s["quantity"] >= s["reserve"] >= 0 for s in kc["stocks"])
    assert {of["id"] for of in kc["offers"]} == {o for o, _ in stocks}
    for o in kc["orders"][:200]:
        for ln in o["products"]:
            assert ln["offer"]["sku"] == ln["sku"]
            assert kc["offers"][ln["offer"]["id"] - 1]["sku"] == ln["sku"]


def test_R_CUST_6_phones_typed_in_varied_forms_and_names_with_mess(demo):
    buyers = demo["keycrm"]["buyers"]
    phones = [b["phone"][0] for b in buyers]
    styles = Counter(_phone_style(p) for p in phones)
    assert {"+999999999999", "999999999999", "9999999999", "+99 999 999 99 99", "(999)9999999",
            "+99 (999) 999-99-99"} <= set(styles)
    assert all(re.fullmatch(r"380\d{9}", _digits(p)) for p in phones)
    names = [b["full_name"] for b in buyers]
    assert any(n != n.strip() for n in names)  # trailing or leading spaces
    apostrophes = {ch for n in names for ch in n if ch in "'ʼ’`"}
    assert {"'", "ʼ", "’"} <= apostrophes
    assert any(re.match(r"Мар.яна", n) for n in names)
    assert sum(bool(b["email"]) for b in buyers) / len(buyers) > 0.75


def test_R_CUST_4_some_buyers_share_a_phone(demo):
    buyers = demo["keycrm"]["buyers"]
    by_phone: dict[str, list[int]] = {}
    for b in buyers:
        by_phone.setdefault(_digits(b["phone"][0]), []).append(b["id"])
    shared = [ids for ids in by_phone.values() if len(ids) > 1]
    assert 1 <= len(shared) <= len(buyers) // 20
    ordered = {o["client_id"] for o in demo["keycrm"]["orders"]}
    assert any(set(ids) <= ordered for ids in shared)


def test_R_PROD_6_bimp_catalogue_mostly_matches_with_one_sku_on_two_items(demo):
    kc_skus = {of["sku"] for of in demo["keycrm"]["offers"]}
    company = demo["bimp"]["companies"][0]
    goods = [n for n in company["nomenclature"] if n["type"] == "goods"]
    articles = Counter(n["article"] for n in goods)
    assert [a for a, c in articles.items() if c > 1] == [next(a for a, c in articles.items() if c == 2)]
    missing = kc_skus - set(articles)
    assert 0.03 <= len(missing) / len(kc_skus) <= 0.07
    ordered_missing = {ln["sku"] for o in demo["keycrm"]["orders"] for ln in o["products"]} & missing
    assert ordered_missing  # some orders need an item Bimp does not have (R-PROD-3)
    names = {of["sku"]: ln["name"] for o in demo["keycrm"]["orders"] for ln in o["products"]
             for of in [ln["offer"]]}
    renamed = [n for n in goods if n["article"] in names and articles[n["article"]] == 1
               and n["name"] != names[n["article"]]]
    assert len(renamed) == 1


def test_bimp_reference_books_and_prices(demo):
    co = demo["bimp"]["companies"][0]
    assert [(w["name"], w["main"]) for w in co["warehouses"]] == [("Основний склад", True), ("Склад Київ", False)]
    assert {c["name"] for c in co["cashRegistries"]} >= {"Каса магазину"} and len(co["cashRegistries"]) == 2
    assert [b["name"] for b in co["bankAccounts"]] == ["Основний рахунок"]
    assert {u["name"] for u in co["unitsOfMeasurement"]} == {"шт", "послуга"}
    assert {"Незавершене виробництво", "Повернення коштів покупцям"} <= {e["name"] for e in co["expenseItems"]}
    assert {c["code"] for c in co["currencies"]} == {"UAH", "USD"}
    assert [s["name"] for s in co["orderStatuses"]] == ["Новий", "В роботі", "Відвантажено", "Виконано",
                                                        "Скасовано", "Повернено"]
    groups = {g["name"]: g for g in co["nomenclatureGroups"]}
    assert groups["Інтернет-магазин"]["parentuuid"] == groups["Товари"]["uuid"]
    (delivery,) = [n for n in co["nomenclature"] if n["name"] == "Доставка товару"]
    assert delivery["type"] == "service"
    units = {u["uuid"]: u["name"] for u in co["unitsOfMeasurement"]}
    assert units[delivery["unitOfMeasurementUuid"]] == "послуга"
    lists = {p["name"]: p for p in co["priceLists"]}
    assert lists["Роздрібна"]["main"] and not lists["Оптова"]["main"]
    priced = Counter(p["priceListUuid"] for p in co["prices"])
    assert priced[lists["Роздрібна"]["uuid"]] > 300 and priced[lists["Оптова"]["uuid"]] > 300
    main_wh = co["warehouses"][0]["uuid"]
    main_stock = [s["quantity"] for s in co["stock"] if s["warehouseUuid"] == main_wh]
    assert sum(q <= 1 for q in main_stock) >= 10  # some items are short
    noms = {n["uuid"] for n in co["nomenclature"]}
    assert all(s["nomenclatureUuid"] in noms for s in co["stock"])
    assert all(c["counterparty"] in {cp["uuid"] for cp in co["counterparties"]} for c in co["contracts"])


def test_R_CUST_4_bimp_counterparties_match_buyers_by_phone_and_two_share_one(demo):
    co = demo["bimp"]["companies"][0]
    cp_phones = Counter(cp["phoneNumber"] for cp in co["counterparties"] if cp["phoneNumber"])
    assert all(re.fullmatch(r"\+380\d{9}", p) for p in cp_phones)  # Bimp's own formatting
    assert [p for p, c in cp_phones.items() if c == 2]  # two counterparties share one phone
    buyer_phones = {"+" + _digits(b["phone"][0]) for b in demo["keycrm"]["buyers"]}
    assert len(set(cp_phones) & buyer_phones) >= 10


def test_names_match_the_example_integrations_file(demo):
    """The example integrations file refers to Bimp objects by name; each name exists exactly once."""
    example = Path(__file__).resolve().parents[2] / "integrations.example.yaml"
    cfg = yaml.safe_load(example.read_text(encoding="utf-8"))["integrations"][0]
    co = demo["bimp"]["companies"][0]
    kc = demo["keycrm"]

    def one(key: str, name: str) -> None:
        assert [i["name"] for i in co[key]].count(name) == 1, (key, name)

    for name in cfg["statuses"].values():
        one("orderStatuses", name)
    assert set(cfg["statuses"]) <= {s["alias"] for s in kc["statuses"]}
    for method, account in cfg["payments"]["methods"].items():
        assert method in {m["name"] for m in kc["payment_methods"]}
        assert [i["name"] for i in co["cashRegistries"] + co["bankAccounts"]].count(account) == 1
    for wh in cfg["stocks"]["warehouses"]:
        one("warehouses", wh)
    one("nomenclatureGroups", cfg["products"]["new_products_group"])
    one("nomenclature", cfg["products"]["delivery_service"])
    one("unitsOfMeasurement", cfg["products"]["unit"])
    one("expenseItems", cfg["returns"]["money"]["expense_item"])
    assert cfg["bimp"]["company"] == ds.DEMO_COMPANY_CODE


def test_R_CONN_4_two_shops_write_into_one_company():
    st = ds.generate_demo(400, shops=2)
    one, two = st["keycrm"]
    assert one["api_keys"] == [ds.DEMO_KEYCRM_KEY] and two["api_keys"] == [ds.DEMO_KEYCRM_KEY_2]
    assert len(one["orders"]) == 400 and len(two["orders"]) == 200
    skus1, skus2 = {o["sku"] for o in one["offers"]}, {o["sku"] for o in two["offers"]}
    assert len(two["offers"]) == 400
    assert 100 < len(skus1 & skus2) < 400 and skus2 - skus1  # partly different catalogues
    (company,) = st["bimp"]["companies"]
    articles = {n["article"] for n in company["nomenclature"]}
    assert len((skus2 - skus1) & articles) > 0.9 * len(skus2 - skus1)
    # The single-shop call keeps returning one dict, and shop 1 is the same in both.
    single = ds.generate_demo(400)
    assert isinstance(single["keycrm"], dict)
    assert single["keycrm"] == one
    phones1 = {_digits(b["phone"][0]) for b in one["buyers"]}
    assert any(_digits(b["phone"][0]) in phones1 for b in two["buyers"])  # people who buy in both shops


def test_other_window_and_bad_arguments():
    st = ds.generate_demo(50, days=7, end=date(2026, 3, 15))["keycrm"]
    assert all("2026-03-09" <= o["created_at"][:10] <= "2026-03-15" for o in st["orders"])
    with pytest.raises(ValueError):
        ds.generate_demo(0)
    with pytest.raises(ValueError):
        ds.generate_demo(10, shops=3)
