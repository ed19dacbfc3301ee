"""Bad input (R-ORCH-4, R-ORCH-5): fuzzed KeyCRM orders are quarantined or become sync issues with readable
reasons, the rest of the partition goes on, nothing crashes; a broken integrations file names its path;
quotes and SQL-looking text reach Bimp unchanged.

Two layers of fuzz.  Through the KeyCRM emulator: payloads PUT into its state and read back by the real
client — the emulator refuses some shapes at load (a non-numeric quantity or price: its own 422) and
normalises others (numeric strings become numbers), so those are counted as refused, and the rest reach the
pipeline as KeyCRM would send them.  Straight to the client: raw JSON pages served by a stub transport (wrong
types, broken timestamps, lists where objects belong), which the emulator could never produce.
"""

from __future__ import annotations

import copy
import json
import os
import random
from datetime import date

import httpx
import pytest

from keybimp_pipeline import cli
from keybimp_pipeline.clients.keycrm import KeyCRMClient
from keybimp_pipeline.settings import SettingsError, load_settings
from keybimp_pipeline.sync.extract import extract_day
from keybimp_pipeline_tests.pipeline import reliability as R
from keybimp_pipeline_tests.pipeline.orders_world import COMPLETED, DAY, NEW, Shop, at

GOOD = [1, 2, 3, 4, 5]
FIGURES: dict[str, int] = {}  # read by the closing report (benchmarks/soak.py prints its own)


@pytest.fixture
def shop(emulators, tmp_path, monkeypatch) -> Shop:
    shop = Shop(emulators, tmp_path, monkeypatch)
    w = shop.world
    w.offer(1, "FZ-1", "Чашка «Тест»", 150)
    w.offer(2, "FZ-2", "Плед 'Тест'", 900)
    w.offer(3, "FZ-3", "Свічка", 80)
    w.item("Чашка «Тест»", "FZ-1", stock=500)
    w.item("Плед 'Тест'", "FZ-2", stock=500)
    w.item("Свічка", "FZ-3", stock=500)
    w.buyer(1, "Олена Петренко", phone="+380501234567", email="olena@example.com")
    for oid in GOOD:
        w.order(oid, 1, [(1 + oid % 3, 1, [150, 900, 80][oid % 3])], status=NEW if oid % 2 else COMPLETED)
    return shop


def _template(oid: int) -> dict:
    return {"id": oid, "source_id": 1, "client_id": 1, "status_id": NEW, "ordered_at": at(9, oid % 60),
            "created_at": at(9, oid % 60), "updated_at": at(9, oid % 60), "status_changed_at": at(9, oid % 60),
            "products": [{"offer": {"id": 1}, "sku": "FZ-1", "name": "Чашка «Тест»", "quantity": 1, "price": 150}],
            "payments": []}


HUGE = "Я" * 20_000
ODD = "Z\u0351\u0308a\u200b\u200dl\u202eg\u0301o 🧨\U0001F9EA \x00\x07 \ud7ff\ufeff 𝕏"


def hand_made(start: int) -> list[tuple[str, dict]]:
    """(label, order) pairs: the shapes the issue lists, one each."""
    cases: list[tuple[str, dict]] = []

    def case(label: str, **changes) -> None:
        order = _template(start + len(cases))
        for key, value in changes.items():
            if key.startswith("line_"):
                order["products"][0][key[5:]] = value
            elif value is _DROP:
                order.pop(key, None)
            else:
                order[key] = value
        cases.append((label, order))

    case("null status", status_id=None)
    case("unknown status id", status_id=987654)
    case("null buyer", client_id=None)
    case("unknown buyer id", client_id=424242)
    case("buyer without phone or e-mail", client_id=2)
    case("buyer with a huge name", client_id=3)
    case("buyer with odd Unicode and SQL in the name", client_id=4)
    case("no lines", products=[])
    case("missing lines", products=_DROP)
    case("negative quantity", line_quantity=-2)
    case("fractional quantity", line_quantity=0.333)
    case("zero quantity", line_quantity=0)
    case("null quantity", line_quantity=None)
    case("quantity as a numeric string", line_quantity="3")
    case("negative price", line_price=-150)
    case("null price", line_price=None)
    case("price as a numeric string", line_price="149.99")
    case("huge price", line_price=10**12)
    case("deleted offer (unknown id)", products=[{"offer": {"id": 9999}, "sku": "GONE-1", "name": "Видалений",
                                                  "quantity": 1, "price": 10}])
    case("offer-less line without sku", products=[{"name": "Без артикула", "quantity": 1, "price": 10}])
    case("line with a huge name and sku", products=[{"sku": "S" * 5000, "name": HUGE, "quantity": 1, "price": 5}])
    case("line with odd Unicode", products=[{"sku": "ЮНІ-𝕏", "name": ODD, "quantity": 1, "price": 5}])
    case("null ordered_at", ordered_at=None)
    case("null grand_total", grand_total=None)
    case("negative shipping price", shipping_price=-40)
    case("payment without method", payments=[{"id": 9000 + start, "amount": 150, "status": "paid"}])
    case("payment with negative amount", payments=[{"id": 9100 + start, "payment_method_id": 1, "amount": -150,
                                                    "status": "paid"}])
    case("payment with unknown status", payments=[{"id": 9200 + start, "payment_method_id": 1, "amount": 150,
                                                   "status": "weird"}])
    case("non-numeric quantity", line_quantity="two")  # the emulator refuses this one at load
    case("price as an object", line_price={"amount": 1})  # and this one
    return cases


class _Drop:
    pass


_DROP = _Drop()

_MUTATIONS = [
    ("status_id", [None, -1, 0, 10**9, "3"]),
    ("client_id", [None, 0, 2, 3, 4, 10**9]),
    ("grand_total", [None, -1, 0, 1e9, "12.5"]),
    ("shipping_price", [None, -5, 0.01]),
    ("line_quantity", [-1, 0, 0.5, 1e6, None, "1"]),
    ("line_price", [None, -0.01, 0, 1e10, "0.005"]),
    ("line_sku", [None, "", " FZ-1 ", "FZ-1'; DROP TABLE stg_orders;--", HUGE[:300]]),
    ("line_name", [None, "", ODD, HUGE[:3000]]),
    ("line_offer", [None, {"id": 777}, {"id": 2}]),
]


def random_cases(start: int, n: int, seed: int = 4) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        order = _template(start + i)
        picked = rng.sample(_MUTATIONS, rng.randint(1, 4))
        for key, values in picked:
            value = rng.choice(values)
            if key.startswith("line_"):
                if value is None and key == "line_offer":
                    order["products"][0].pop("offer", None)
                else:
                    order["products"][0][key[5:]] = value
            else:
                order[key] = value
        out.append((", ".join(k for k, _ in picked), order))
    return out


def _load_accepting(shop: Shop, cases: list[tuple[str, dict]]) -> tuple[list, list]:
    """Load the base shop plus every case the emulator accepts; (accepted, refused) cases."""
    base = shop.world.keycrm
    state = copy.deepcopy(base)
    state["orders"] = base["orders"] + [o for _, o in cases]
    try:
        shop.keycrm_server.put_state(state)
        accepted, refused = cases, []
    except httpx.HTTPStatusError:
        accepted, refused = [], []
        for case in cases:
            probe = copy.deepcopy(base)
            probe["orders"] = base["orders"] + [case[1]]
            try:
                shop.keycrm_server.put_state(probe)
                accepted.append(case)
            except httpx.HTTPStatusError:
                refused.append(case)
    state = copy.deepcopy(base)
    state["orders"] = base["orders"] + [o for _, o in accepted]
    shop.world.keycrm = state
    shop.load()
    return accepted, refused


def _accounted(shop: Shop) -> tuple[set[int], dict[int, str], dict[int, set[str]]]:
    """(orders in Bimp, quarantined order → reason, orders with sync issues → codes)."""
    q = shop.h.store.query("SELECT order_id, reason FROM quarantine WHERE integration='demo-shop'")
    issues = shop.h.issues()
    for _, row in issues.iterrows():
        assert str(row["message_en"]).strip() and str(row["message_uk"]).strip(), row.to_dict()
    quarantined = {int(o): str(r) for o, r in zip(q["order_id"], q["reason"], strict=True)}
    assert all(len(r.strip()) > 3 for r in quarantined.values()), quarantined
    return set(shop.orders()), quarantined, shop.issues()


def test_R_ORCH_4_R_ORCH_5_fuzzed_orders_through_the_emulator(shop: Shop):
    w = shop.world
    w.buyer(2, "Без Контактів")
    w.buyer(3, HUGE)
    w.buyer(4, "O'Brien \"Bob\"; DROP TABLE stg_buyers;-- " + ODD, phone="+380 (67) 000-00-00 ext. ☎",
            email="not-an-email@@")
    cases = hand_made(100) + random_cases(200, int(os.environ.get("KEYBIMP_FUZZ_RANDOM", "40")))
    accepted, refused = _load_accepting(shop, cases)
    assert {label for label, _ in refused} >= {"non-numeric quantity", "price as an object"}

    shop.configure({"payments": {"enabled": True}})
    shop.h.sync_day(DAY)  # never raises: bad rows are data
    written, quarantined, issues = _accounted(shop)
    assert set(GOOD) <= written  # the rest of the partition went on
    lost = [(label, o["id"]) for label, o in accepted
            if o["id"] not in written and o["id"] not in quarantined and o["id"] not in issues]
    assert lost == [], f"orders neither written, quarantined nor reported: {lost}"
    assert R.duplicates(shop.company, shop.world.bimp["companies"][0]) == {}
    # a re-run is just as calm and writes nothing new
    writes = shop.bimp_writes()
    shop.h.sync_day(DAY)
    assert shop.bimp_writes() == writes
    FIGURES["emulator_inputs"] = len(cases)
    FIGURES["emulator_refused"] = len(refused)
    print("FUZZ-FIGURES " + json.dumps({"tried": len(cases) + len(raw_cases(_template(1))),
                                         "refused": len(refused), "quarantined": len(quarantined),
                                         "issues": len(issues)}))


def _page(orders: list) -> dict:
    return {"current_page": 1, "data": orders, "last_page": 1, "per_page": 50, "total": len(orders),
            "from": 1, "to": len(orders), "next_page_url": None}


def raw_cases(rendered: dict) -> list:
    """Payloads only a broken or changed API would send, each a copy of a rendered good order with ids 500+."""

    def t(oid: int) -> dict:
        return {**copy.deepcopy(rendered), "id": oid}

    line = rendered["products"][0]
    return [
        {**t(500), "updated_at": "yesterday-ish"},
        {**t(501), "ordered_at": "2026-13-45T99:00:00Z"},
        {**t(502), "products": {"not": "a list"}},
        {**t(503), "products": [None, "line", 7]},
        {**t(504), "buyer": ["not", "an", "object"], "client_id": "abc"},
        {**t(505), "grand_total": {"amount": 5}},
        {**t(506), "payments": "paid"},
        {**t(507), "products": [{**line, "quantity": "two", "price": "a lot", "sku": 12345, "name": ["x"]}]},
        {**t(508), "status_id": "new"},
        {**t(509), "shipping": "Нова Пошта", "shipping_price": "n/a"},
        {**t(510), "id": "510"},
        {**t(511), "products": [{**line, "offer": "FZ-1", "quantity": True, "price": False}]},
        {**t(512), "payments": [{"id": "x", "amount": "1e400", "status": None}]},
        {**t(513), "buyer": {"id": 1, "full_name": None, "phone": 380501234567, "email": ["a@b.c"]}},
        "not an order",
        {"id": None, "ordered_at": rendered["ordered_at"]},
    ]


def test_R_ORCH_4_raw_payloads_the_emulator_cannot_produce_never_crash_the_partition(shop: Shop):
    """Served straight to the real client by a stub transport; every step after extract runs for real.
    Found two partition-killing bugs (a broken timestamp failed the whole page; `products` that is not a
    list failed staging); both fixed."""
    from keybimp_pipeline.clients.keycrm import ORDER_INCLUDE
    from keybimp_pipeline.sync.match import match_day
    from keybimp_pipeline.sync.orders import write_customer_orders
    from keybimp_pipeline.sync.resolve import resolve
    from keybimp_pipeline.sync.stage import stage_day

    shop.load()
    shop.h.refresh_reference()
    rendered = shop.keycrm_server.admin.get(
        "/v1/order", params={"include": ORDER_INCLUDE, "limit": 50},
        headers={"Authorization": f"Bearer {shop.h.settings.keycrm_api_key()}"}).json()["data"]
    cases = raw_cases(rendered[0])
    payload = rendered + cases

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_page(payload))

    day = date.fromisoformat(DAY)
    with KeyCRMClient("http://stub/v1", "stub-key", transport=httpx.MockTransport(handler)) as client:
        result = extract_day(shop.h.store, client, day, "Europe/Kyiv")
    assert result.stored == len(GOOD) + len(cases) - 2  # the string and the id-less object identify nothing
    s = shop.h.settings
    stage_day(shop.h.store, day)
    match_day(shop.h.store, day, s)
    with shop.h.bimp() as b:
        write_customer_orders(shop.h.store, day, s, resolve(shop.h.store, s), b)
    written, quarantined, issues = _accounted(shop)
    assert set(GOOD) <= written
    bad_ids = {int(c["id"]) for c in cases if isinstance(c, dict) and c.get("id") is not None}
    lost = sorted(i for i in bad_ids if i not in written | set(quarantined) | set(issues))
    assert lost == []
    assert "unreadable fields" in quarantined[500] and "updated_at" in quarantined[500]
    assert "products is not a list" in quarantined[502]
    FIGURES["raw_inputs"] = len(cases)


BROKEN_FILES = {
    "not yaml": "integrations: [\n  - name: x\n    keycrm: {url: ",
    "not a mapping": "- just\n- a list\n",
    "empty": "",
    "no integrations": "something_else: 1\n",
    "wrong types": "integrations:\n  - name: 12\n    timezone: 5\n    start_date: never\n",
    "missing required keys": "integrations:\n  - name: shop-a\n",
    "bad slug": "integrations:\n  - name: 'Bad Name!'\n",
}


@pytest.mark.parametrize("label", list(BROKEN_FILES))
def test_R_CONN_broken_integrations_file_gives_a_clear_error_naming_the_path(label, tmp_path, monkeypatch, capsys):
    path = tmp_path / f"broken-{label.replace(' ', '-')}.yaml"
    path.write_text(BROKEN_FILES[label])
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(path) in str(err.value)
    monkeypatch.setenv("KEYBIMP_CONFIG", str(path))
    monkeypatch.setenv("KEYBIMP_DATA", str(tmp_path))
    assert cli.main(["stocks", "shop-a"]) == 2
    out = capsys.readouterr()
    assert str(path) in out.err and "Traceback" not in out.err + out.out


def test_R_CONN_missing_integrations_file_names_the_path(tmp_path, monkeypatch, capsys):
    path = tmp_path / "nowhere" / "integrations.yaml"
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(path) in str(err.value)


def test_quotes_and_sql_looking_text_reach_bimp_unchanged(shop: Shop):
    """Parameterised SQL everywhere: names with quotes, semicolons and SQL keywords are data."""
    w = shop.world
    name = "Д'Артаньян \"Шарль\" O'Neil; DROP TABLE raw_orders; --"
    item = "Кружка 'Robert'); DELETE FROM ledger WHERE ('1'='1"
    sku = "Q'1\";--"
    w.offer(50, sku, item, 99)
    w.buyer(50, name, phone="+380661112233", email="o'neil@example.com")
    w.order(50, 50, [(50, 1, 99)])
    shop.configure({"main": {"reserve": "off"}})  # the item is created by the run: no stock to reserve
    shop.load()
    shop.sync()
    assert 50 in shop.orders(), (shop.issues(), shop.h.store.query("SELECT * FROM quarantine").to_dict("records"))
    order = shop.orders()[50]
    cps = {c["uuid"]: c for c in shop.company["counterparties"]}
    assert cps[order["buyer"]]["name"] == name
    assert cps[order["buyer"]]["email"] == "o'neil@example.com"
    created = [n for n in shop.company["nomenclature"] if n.get("article") == sku]
    assert len(created) == 1 and created[0]["name"] == item
    assert shop.h.store.query("SELECT count(*) AS n FROM raw_orders")["n"][0] == len(GOOD) + 1
    assert len(shop.orders()) == len(GOOD) + 1
