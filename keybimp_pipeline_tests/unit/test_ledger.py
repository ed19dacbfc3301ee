"""The write ledger's own schema: a ledger written before rows kept their run gains the column in place."""

from __future__ import annotations

import sqlite3

from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.storage.ledger import Ledger


def test_a_ledger_from_before_the_run_column_is_upgraded_and_keeps_its_rows(tmp_path):
    store = Store("shop", tmp_path)
    path = store.directory / "shop.ledger.sqlite"
    with sqlite3.connect(path) as con:  # the schema of the first sittings, one record in it
        con.execute("""CREATE TABLE ledger (
            integration TEXT NOT NULL, entity TEXT NOT NULL, crm_id TEXT NOT NULL, bimp_uuid TEXT,
            payload_hash TEXT, state TEXT NOT NULL, detail TEXT, written_at TEXT NOT NULL,
            PRIMARY KEY (integration, entity, crm_id))""")
        con.execute("INSERT INTO ledger VALUES ('shop', 'customer_order', '1', 'u-1', 'h1', 'done', NULL, "
                    "'2026-11-02T10:00:00+00:00')")
    con.close()

    ledger = Ledger(store, run_id="run-9")
    ledger.done("customer_order", 2, "u-2", "h2")

    assert ledger.uuid_map("customer_order") == {"1": "u-1", "2": "u-2"}
    assert ledger.written_by(["run-9"]) == 1  # the old row has no run: never counted as this run's
    Ledger(store)  # opening it again leaves the upgraded schema as it is
    ledger.close()
