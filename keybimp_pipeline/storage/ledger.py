"""The write ledger: one row per external record the pipeline wrote (integration, entity, CRM id).

Every write to Bimp or KeyCRM goes through it (principle 4).  A row is `pending` from just before the
call until the vendor acknowledged it, then `done` with the vendor's uuid and the hash of the payload
that was sent.  A run killed between the call and the record leaves `pending`: the next run
reconciles it against the vendor (by external id or document number) before writing again, so no
record is ever created twice.  A payload hash that matches means "nothing changed: write nothing".

Why SQLite and not the DuckDB file: the ledger is written one row at a time, durably, between two API
calls, by whichever process runs; SQLite in WAL mode commits such a row in about a millisecond and lets
other processes read meanwhile, where opening the DuckDB file costs tens of milliseconds and locks it.
The analytical tables stay in DuckDB; reports read the ledger through `frame()`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd

from keybimp_pipeline.storage.db import Store

PENDING = "pending"
DONE = "done"
COLUMNS = ["integration", "entity", "crm_id", "bimp_uuid", "payload_hash", "state", "detail", "written_at"]


def _default(value: object) -> str:
    if isinstance(value, (Decimal, datetime)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def payload_hash(payload: object) -> str:
    """A stable hash of what we send: canonical JSON, sorted keys."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Ledger:
    def __init__(self, store: Store, run_id: str | None = None):
        """`run_id`: the Dagster run writing through this ledger; each row keeps the run that last wrote it, so
        "written this run" counts one run's writes even while another run of the integration writes too."""
        self.store = store
        self.integration = store.integration
        self.run_id = run_id
        self.path = store.directory / f"{store.integration}.ledger.sqlite"
        self._con: sqlite3.Connection | None = None
        con = self._connect()
        con.execute("""CREATE TABLE IF NOT EXISTS ledger (
            integration TEXT NOT NULL, entity TEXT NOT NULL, crm_id TEXT NOT NULL, bimp_uuid TEXT,
            payload_hash TEXT, state TEXT NOT NULL, detail TEXT, written_at TEXT NOT NULL, run_id TEXT,
            PRIMARY KEY (integration, entity, crm_id))""")
        if "run_id" not in {row[1] for row in con.execute("PRAGMA table_info(ledger)")}:
            try:  # a ledger written before the column existed (another process may be adding it right now)
                con.execute("ALTER TABLE ledger ADD COLUMN run_id TEXT")
            except sqlite3.OperationalError as err:
                if "duplicate column" not in str(err):
                    raise

    def _connect(self) -> sqlite3.Connection:
        """One connection per Ledger (SQLite in WAL mode lets other processes read and write meanwhile);
        every statement commits on its own (autocommit).  synchronous=NORMAL: in WAL mode a committed row
        survives the process being killed at any point (what the exactly-once rule is about); only a power
        loss of the whole host could drop the last commits (use FULL there if that matters more than speed)."""
        if self._con is None:
            self._con = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __del__(self) -> None:
        self.close()

    def frame(self, entity: str | None = None) -> pd.DataFrame:
        sql = f"SELECT {', '.join(COLUMNS)} FROM ledger WHERE integration=?"
        params: list = [self.integration]
        if entity is not None:
            sql += " AND entity=?"
            params.append(entity)
        return pd.read_sql_query(sql, self._connect(), params=params)

    def entries(self, entity: str, crm_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Rows of one entity, indexed by crm_id; only the given ids when `crm_ids` is passed (looked up
        by primary key, so a writer asking about one record never reads the whole ledger)."""
        cols = "crm_id, bimp_uuid, payload_hash, state, detail"
        if crm_ids is None:
            frame = self.frame(entity)[cols.split(", ")]
        else:
            wanted = sorted({str(c) for c in crm_ids})
            parts = []
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                marks = ", ".join("?" * len(chunk))
                parts.append(pd.read_sql_query(
                    f"SELECT {cols} FROM ledger WHERE integration=? AND entity=? AND crm_id IN ({marks})",
                    self._connect(), params=[self.integration, entity, *chunk]))
            frame = (pd.concat(parts, ignore_index=True) if parts
                     else pd.DataFrame(columns=cols.split(", ")))
        return frame.set_index("crm_id", drop=False)

    def _upsert(self, entity: str, crm_id: str, bimp_uuid: str | None, phash: str | None, state: str,
                detail: object | None) -> None:
        self._connect().execute(
            """INSERT INTO ledger (integration, entity, crm_id, bimp_uuid, payload_hash, state, detail, written_at,
                                   run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (integration, entity, crm_id) DO UPDATE SET
                 bimp_uuid = COALESCE(excluded.bimp_uuid, ledger.bimp_uuid),
                 payload_hash = excluded.payload_hash, state = excluded.state,
                 detail = COALESCE(excluded.detail, ledger.detail), written_at = excluded.written_at,
                 run_id = excluded.run_id""",
            [self.integration, entity, str(crm_id), bimp_uuid, phash, state,
             json.dumps(detail, ensure_ascii=False, default=_default) if detail is not None else None,
             datetime.now(UTC).isoformat(), self.run_id])

    def pending(self, entity: str, crm_id: object, phash: str, detail: object | None = None) -> None:
        """Recorded before the vendor call, so a crash after it is noticed and reconciled."""
        self._upsert(entity, str(crm_id), None, phash, PENDING, detail)

    def done(self, entity: str, crm_id: object, bimp_uuid: str, phash: str, detail: object | None = None) -> None:
        self._upsert(entity, str(crm_id), bimp_uuid, phash, DONE, detail)

    def written_by(self, run_ids: Iterable[str]) -> int:
        """Records whose last write (done) was by one of these runs."""
        ids = sorted(set(run_ids))
        if not ids:
            return 0
        marks = ", ".join("?" * len(ids))
        return int(self._connect().execute(
            f"SELECT count(*) FROM ledger WHERE integration=? AND state=? AND run_id IN ({marks})",
            [self.integration, DONE, *ids]).fetchone()[0])

    def uuid_map(self, entity: str) -> dict[str, str]:
        frame = self.entries(entity)
        frame = frame[frame["state"] == DONE]
        return dict(zip(frame["crm_id"], frame["bimp_uuid"], strict=True))
