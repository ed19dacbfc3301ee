"""A backfill's range functions give exactly what the day partitions give one by one.

`stage_days`, `match_days` and `derive_customer_orders_days` (what a single-run backfill calls) against a loop
of `stage_day` → `match_day` → `derive_customer_orders` over the same days, on two copies of one store: every
staged, quarantine and matched table and every derived frame must be equal, row for row.

The world: four days of the demo shop (its reference books, a partly matching Bimp catalogue, repeat buyers),
extracted from the emulators, plus hand-made raw orders that exercise the rules a range could get wrong:

* R-ORCH-4/5: an order whose `products` is not a list and an order with a zero quantity line are quarantined
  on their own day, with their reasons, and derive into `order_invalid` issues;
* R-CUST-9 (orders of one run decided one by one in placement order): a new buyer ordering on two days
  creates one counterparty per day's run (each day is matched as its own run; the per-day writer re-matches
  and finds the first day's creation in the ledger), and two orders of one day share one `create_key`;
* R-CUST-6: phones, e-mails and names normalised once per distinct value give the per-row results;
* R-PROD-3/4: a new item's `create_key` is the same on every day it appears.
"""

from __future__ import annotations

import copy
import json
import shutil
from datetime import date, timedelta

import pandas as pd
import pytest

from keybimp_pipeline.clients.keycrm import reset_shared_limiters
from keybimp_pipeline.emulators import demo_shop
from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.sync.extract import extract_days
from keybimp_pipeline.sync.match import match_day, match_days
from keybimp_pipeline.sync.orders import derive_customer_orders, derive_customer_orders_days
from keybimp_pipeline.sync.resolve import resolve
from keybimp_pipeline.sync.stage import stage_day, stage_days
from keybimp_pipeline_tests.pipeline.harness import Harness, write_config

END = date(2026, 11, 30)
DAYS = [END - timedelta(days=i) for i in range(3, -1, -1)]
ORDERS = 240  # over 4 days: ~60 orders a day
TABLES = ["stg_orders", "stg_order_lines", "stg_buyers", "stg_payments", "quarantine", "matched_customers",
          "matched_products"]
NEW_PHONE = "+38 (099) 111-22-33"  # one new buyer, typed differently on each order


def _raw(store: Store, day: date) -> dict:
    """A template payload of the day (any order of it)."""
    payload = store.query("SELECT payload FROM raw_orders WHERE day=? ORDER BY order_id LIMIT 1", [day])
    return json.loads(payload["payload"].iloc[0])


def _add(store: Store, order: dict, day: date) -> None:
    with store.connect() as con:
        con.execute("INSERT INTO raw_orders VALUES (?, ?, ?, now(), now(), ?::JSON)",
                    [store.integration, order["id"], day, json.dumps(order, ensure_ascii=False)])


def _crafted(store: Store) -> None:
    """Hand-made orders on top of the extracted demo days (ids far above the demo's)."""
    d1, d2 = DAYS[1], DAYS[2]
    base = _raw(store, d1)

    def order(oid: int, day: date, hour: int) -> dict:
        o = copy.deepcopy(base)
        o["id"] = oid
        stamp = f"{day.isoformat()}T{hour:02d}:00:00.000000Z"
        o["ordered_at"] = o["created_at"] = stamp
        for i, payment in enumerate(o.get("payments") or []):
            payment["id"] = oid * 10 + i  # payment ids are unique in KeyCRM (and the staged table's key)
        return o

    broken = order(900_001, d1, 8)
    broken["products"] = {"not": "a list"}  # R-ORCH-4: shape quarantine
    zero = order(900_002, d2, 8)
    zero["products"][0]["quantity"] = 0  # R-ORCH-4: pandera (quantity > 0)
    _add(store, broken, d1)
    _add(store, zero, d2)
    for oid, day, hour, phone, name in ((900_003, d1, 9, NEW_PHONE, "  Зоряна   Нова "),
                                         (900_004, d1, 10, "0991112233", "Зоряна Нова"),
                                         (900_005, d2, 9, "+380991112233", "Зоряна Нова")):
        o = order(oid, day, hour)
        o["client_id"] = 777_001
        o["buyer"] = dict(o.get("buyer") or {}, id=777_001, full_name=name, phone=phone,
                          email=" Zoryana@Example.COM ")
        _add(store, o, day)


@pytest.fixture(scope="module")
def world(emulators, tmp_path_factory):
    keycrm, bimp = emulators
    mp = pytest.MonkeyPatch()
    mp.setenv("KEYCRM_KEY_DEMO_SHOP", demo_shop.DEMO_KEYCRM_KEY)
    mp.setenv("BIMP_EMAIL", demo_shop.DEMO_BIMP_EMAIL)
    mp.setenv("BIMP_PASSWORD", demo_shop.DEMO_BIMP_PASSWORD)
    reset_shared_limiters()
    for server in (keycrm, bimp):
        server.post("/__admin/clock", {"now": None})
    keycrm.put_state(demo_shop.keycrm_state(ORDERS, days=len(DAYS), end=END + timedelta(days=1)))
    bimp.put_state(demo_shop.bimp_state(ORDERS, days=len(DAYS), end=END + timedelta(days=1)))
    keycrm.post("/__admin/faults", {"requests_per_minute": 100_000})
    bimp.post("/__admin/faults", {})
    root = tmp_path_factory.mktemp("ranges")
    source = root / "source"
    source.mkdir()
    config = write_config(root / "integrations.yaml", keycrm.url, bimp.url)
    h = Harness(config, source, keycrm, bimp)
    with h.keycrm() as k:
        extract_days(h.store, k, DAYS, h.settings.timezone)
    h.refresh_reference()
    _crafted(h.store)
    out = {}
    for mode in ("loop", "range"):
        directory = root / mode
        directory.mkdir()
        shutil.copyfile(source / "demo-shop.duckdb", directory / "demo-shop.duckdb")
        store, settings = Store("demo-shop", directory), h.settings
        resolved = resolve(store, settings)
        assert not resolved.problems, resolved.problems
        if mode == "loop":
            parts = []
            for day in DAYS:
                stage_day(store, day, strict_names=settings.customers.strict_names)
                match_day(store, day, settings)
                parts.append(derive_customer_orders(store, day, settings, resolved))
            derived = {k: pd.concat([getattr(p, k) for p in parts], ignore_index=True)
                       for k in ("orders", "lines", "issues", "customers", "products")}
        else:
            stage_days(store, DAYS, strict_names=settings.customers.strict_names)
            match_days(store, DAYS, settings)
            d = derive_customer_orders_days(store, DAYS, settings, resolved)
            derived = {k: getattr(d, k) for k in ("orders", "lines", "issues", "customers", "products")}
        tables = {t: store.query(f"SELECT * EXCLUDE (seen_at) FROM {t} ORDER BY ALL" if t == "quarantine"
                                 else f"SELECT * FROM {t} ORDER BY ALL") for t in TABLES}
        out[mode] = {"tables": tables, "derived": derived}
    mp.undo()
    return out


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in one order whatever the frame's own order (text form: NA/None/NaN compare alike)."""
    text = frame.astype(object).where(frame.notna(), None).astype(str)
    return text.sort_values(list(text.columns)).reset_index(drop=True)


@pytest.mark.parametrize("table", TABLES)
def test_range_tables_equal_the_day_by_day_tables(world, table):
    loop, rng = world["loop"]["tables"][table], world["range"]["tables"][table]
    assert len(loop) > 0
    pd.testing.assert_frame_equal(rng, loop)


@pytest.mark.parametrize("part", ["orders", "lines", "issues", "customers", "products"])
def test_range_derivation_equals_the_day_by_day_derivation(world, part):
    loop, rng = world["loop"]["derived"][part], world["range"]["derived"][part]
    assert len(loop) > 0
    pd.testing.assert_frame_equal(_canonical(rng[loop.columns]), _canonical(loop))


def test_R_ORCH_4_quarantine_on_the_order_s_own_day(world):
    q = world["range"]["tables"]["quarantine"]
    rows = {(int(r.order_id), r.entity): (pd.Timestamp(r.day).date(), r.reason) for r in q.itertuples()}
    assert rows[(900_001, "order")] == (DAYS[1], "products is not a list")
    assert rows[(900_002, "order_line")][0] == DAYS[2]
    assert rows[(900_002, "order_line")][1].startswith("quantity: greater_than(0)")
    issues = world["range"]["derived"]["issues"].set_index("order_id")
    assert issues.loc[900_001, "code"] == "order_invalid"
    assert issues.loc[900_002, "code"] == "order_invalid"


def test_R_CUST_9_each_day_is_its_own_run(world):
    """The new buyer's two orders of day 1 share one new counterparty; day 2 creates its own (per-day runs)."""
    m = world["range"]["tables"]["matched_customers"].set_index("order_id")
    assert m.loc[900_003, "outcome"] == m.loc[900_004, "outcome"] == m.loc[900_005, "outcome"] == "create"
    assert m.loc[900_003, "create_key"] == m.loc[900_004, "create_key"] == "order-900003"
    assert m.loc[900_005, "create_key"] == "order-900005"
    b = world["range"]["tables"]["stg_buyers"].set_index("order_id")
    # R-CUST-6: three spellings of one phone, one e-mail, the name's spaces collapsed
    assert set(b.loc[[900_003, 900_004, 900_005], "phone"]) == {"+380991112233"}
    assert set(b.loc[[900_003, 900_004, 900_005], "email"]) == {"zoryana@example.com"}
    assert b.loc[900_003, "full_name"] == "Зоряна Нова"


def test_R_PROD_4_new_items_keep_one_key_across_days(world):
    p = world["range"]["tables"]["matched_products"]
    created = p[p["outcome"] == "create"]
    per_key = created.groupby("create_key")["day"].nunique()
    assert (per_key > 1).any()  # some new item is ordered on several days, under one key
