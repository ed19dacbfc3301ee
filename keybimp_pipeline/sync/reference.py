"""Reference data from both systems, kept in the `reference` table and refreshed when stale.

A backfill of ninety days reads the Bimp catalogue once, not ninety times: a snapshot younger than
`max_age` is reused.  What the pipeline itself created since the snapshot is known from the ledger,
and the matching step adds it, so a stale snapshot never causes a duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd

from keybimp_pipeline.storage.db import Store, transaction

REFERENCE_MAX_AGE = timedelta(minutes=10)
COLUMNS = ["integration", "system", "kind", "id", "name", "alias", "article", "phone", "email", "parent", "extra"]


def _default(value: object) -> str:
    if isinstance(value, (Decimal, datetime)):
        return str(value)
    raise TypeError(type(value).__name__)


def rows(kind: str, items: Iterable[dict], *, id: str = "uuid", name: str = "name", alias: str | None = None,
         article: str | None = None, phone: str | None = None, email: str | None = None,
         parent: str | None = None) -> list[dict]:
    """Project vendor items onto the generic reference row; the whole item is kept in `extra`."""
    out = []
    for item in items:
        if item.get(id) is None:
            continue
        out.append({
            "kind": kind, "id": str(item[id]), "name": item.get(name),
            "alias": None if alias is None or item.get(alias) is None else str(item.get(alias)),
            "article": item.get(article) if article else None,
            "phone": item.get(phone) if phone else None,
            "email": item.get(email) if email else None,
            "parent": item.get(parent) if parent else None,
            "extra": json.dumps(item, default=_default, ensure_ascii=False),
        })
    return out


def is_fresh(store: Store, system: str, max_age: timedelta = REFERENCE_MAX_AGE) -> bool:
    frame = store.query("SELECT fetched_at FROM reference_meta WHERE integration=? AND system=?",
                        [store.integration, system])
    if frame.empty:
        return False
    return datetime.now(UTC) - frame["fetched_at"].iloc[0].to_pydatetime() < max_age


def save(store: Store, system: str, items: list[dict]) -> int:
    frame = pd.DataFrame(items, columns=COLUMNS[2:])
    frame.insert(0, "system", system)
    frame.insert(0, "integration", store.integration)
    frame = frame.drop_duplicates(["kind", "id"], keep="last")
    with store.connect() as con, transaction(con):
        con.execute("DELETE FROM reference WHERE integration=? AND system=?", [store.integration, system])
        con.register("incoming", frame)
        con.execute(f"INSERT INTO reference ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM incoming")
        con.unregister("incoming")
        con.execute("INSERT OR REPLACE INTO reference_meta VALUES (?, ?, ?)",
                    [store.integration, system, datetime.now(UTC)])
    return len(frame)


def load_all(store: Store, system: str) -> pd.DataFrame:
    return store.query(
        "SELECT kind, id, name, alias, article, phone, email, parent, extra FROM reference "
        "WHERE integration=? AND system=? ORDER BY kind, id", [store.integration, system])


def load(store: Store, system: str, kind: str, cache: dict | None = None) -> pd.DataFrame:
    """One kind of reference rows; with `cache`, the whole system is read once and sliced."""
    if cache is None:
        return store.query(
            "SELECT id, name, alias, article, phone, email, parent, extra FROM reference "
            "WHERE integration=? AND system=? AND kind=? ORDER BY id", [store.integration, system, kind])
    if system not in cache:
        cache[system] = load_all(store, system)
    frame = cache[system]
    return frame[frame["kind"] == kind].drop(columns="kind").reset_index(drop=True)


def refresh_keycrm(store: Store, client) -> int:
    items = (rows("status", client.list_order_statuses(), id="id", alias="alias", parent="group_id")
             + rows("payment_method", client.list_payment_methods(), id="id", alias="alias")
             + rows("source", client.list_sources(), id="id", alias="alias"))
    return save(store, "keycrm", items)


def refresh_bimp(store: Store, client, *, external_id_source: str) -> int:
    items: list[dict] = []
    items += rows("organization", client.organisations())
    items += rows("warehouse", client.warehouses())
    items += rows("project", client.projects())
    items += rows("line_of_business", client.lines_of_business())
    items += rows("currency", client.currencies(), alias="code")
    items += rows("cash_registry", client.cash_registries())
    items += rows("bank_account", client.bank_accounts())
    items += rows("unit", client.units())
    items += rows("expense_item", client.expense_items())
    items += rows("chart_of_account", client.chart_of_accounts())
    items += rows("user", client.users(), name="firstName")
    items += rows("employee", client.employees())
    items += rows("price_list", client.price_lists())
    items += rows("order_status", client.order_statuses())
    items += rows("contract_type", client.contract_types())
    items += rows("nomenclature_group", client.nomenclature_groups(), parent="parentuuid")
    items += rows("nomenclature", client.nomenclature(), article="article", parent="group")
    items += rows("counterparty", client.counterparties(), phone="phoneNumber", email="email")
    # each integration keeps its own buyer-id map (R-CONN-4): KeyCRM buyer ids of two shops overlap
    items += rows("counterparty_external_id",
                  client.counterparty_external_ids(source=f"{external_id_source}:{store.integration}"),
                  id="counterpartyUuid", alias="externalId")
    return save(store, "bimp", items)
