"""The DuckDB store: one file per integration, every access serialised by a file lock.

DuckDB lets one process hold a file read-write and no other process open it at all, so every step that
touches the file takes the integration's lock for as long as it holds a connection, and never across an
API call.  Runs of two integrations use two files and never wait for each other; a backfill overlapping
the sensor's runs of the same integration waits its turn instead of failing with a lock error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
from filelock import FileLock

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_orders (
    integration VARCHAR NOT NULL, order_id BIGINT NOT NULL, day DATE NOT NULL,
    updated_at TIMESTAMPTZ, fetched_at TIMESTAMPTZ NOT NULL, payload JSON NOT NULL,
    PRIMARY KEY (integration, order_id));
CREATE TABLE IF NOT EXISTS fetch_cursors (
    integration VARCHAR NOT NULL, day DATE NOT NULL, high_water TIMESTAMPTZ, fetched_at TIMESTAMPTZ,
    PRIMARY KEY (integration, day));
CREATE TABLE IF NOT EXISTS stg_orders (
    integration VARCHAR NOT NULL, day DATE NOT NULL, order_id BIGINT NOT NULL, buyer_id BIGINT,
    status_id BIGINT, source_id BIGINT, currency VARCHAR, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,
    status_changed_at TIMESTAMPTZ, closed_at TIMESTAMPTZ, shipping_date TIMESTAMPTZ,
    grand_total_kop BIGINT, discount_kop BIGINT, shipping_price_kop BIGINT, payment_status VARCHAR,
    PRIMARY KEY (integration, order_id));
CREATE TABLE IF NOT EXISTS stg_order_lines (
    integration VARCHAR NOT NULL, day DATE NOT NULL, order_id BIGINT NOT NULL, line_no INTEGER NOT NULL,
    offer_id BIGINT, product_id BIGINT, sku VARCHAR, name VARCHAR, quantity DOUBLE, price_kop BIGINT,
    line_discount_kop BIGINT, PRIMARY KEY (integration, order_id, line_no));
CREATE TABLE IF NOT EXISTS stg_buyers (
    integration VARCHAR NOT NULL, day DATE NOT NULL, order_id BIGINT NOT NULL, buyer_id BIGINT,
    full_name VARCHAR, phone VARCHAR, email VARCHAR, placed_at TIMESTAMPTZ,
    PRIMARY KEY (integration, order_id));
CREATE TABLE IF NOT EXISTS stg_payments (
    integration VARCHAR NOT NULL, day DATE NOT NULL, order_id BIGINT NOT NULL, payment_id BIGINT NOT NULL,
    method_id BIGINT, amount_kop BIGINT, status VARCHAR, payment_date TIMESTAMPTZ,
    status_changed_at TIMESTAMPTZ, PRIMARY KEY (integration, payment_id));
CREATE TABLE IF NOT EXISTS quarantine (
    integration VARCHAR NOT NULL, day DATE NOT NULL, entity VARCHAR NOT NULL, order_id BIGINT,
    reason VARCHAR NOT NULL, seen_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS reference (
    integration VARCHAR NOT NULL, system VARCHAR NOT NULL, kind VARCHAR NOT NULL, id VARCHAR NOT NULL,
    name VARCHAR, alias VARCHAR, article VARCHAR, phone VARCHAR, email VARCHAR, parent VARCHAR,
    extra JSON, PRIMARY KEY (integration, system, kind, id));
CREATE TABLE IF NOT EXISTS reference_meta (
    integration VARCHAR NOT NULL, system VARCHAR NOT NULL, fetched_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (integration, system));
CREATE TABLE IF NOT EXISTS matched_customers (
    integration VARCHAR NOT NULL, day DATE NOT NULL, order_id BIGINT NOT NULL, buyer_id BIGINT,
    outcome VARCHAR, counterparty_uuid VARCHAR, matched_by VARCHAR, create_key VARCHAR, code VARCHAR,
    detail VARCHAR, PRIMARY KEY (integration, order_id));
CREATE TABLE IF NOT EXISTS matched_products (
    integration VARCHAR NOT NULL, day DATE NOT NULL, order_id BIGINT NOT NULL, line_no INTEGER NOT NULL,
    outcome VARCHAR, nomenclature_uuid VARCHAR, create_key VARCHAR, code VARCHAR, detail VARCHAR,
    PRIMARY KEY (integration, order_id, line_no));
CREATE TABLE IF NOT EXISTS sync_issues (
    integration VARCHAR NOT NULL, day DATE, order_id BIGINT, entity VARCHAR NOT NULL, code VARCHAR NOT NULL,
    detail VARCHAR, message_en VARCHAR, message_uk VARCHAR, seen_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS integration_state (
    integration VARCHAR NOT NULL, key VARCHAR NOT NULL, value JSON, updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (integration, key));
"""


_INITIALISED: set[Path] = set()  # files whose schema this process has already ensured


def memory_limit() -> str:
    """DuckDB's memory limit: $KEYBIMP_DUCKDB_MEMORY (e.g. `4GB`), else 1.5 GB."""
    value = os.environ.get("KEYBIMP_DUCKDB_MEMORY", "1.5GB").strip()
    if not value.replace(".", "").replace(" ", "").isalnum():
        raise ValueError(f"KEYBIMP_DUCKDB_MEMORY must look like 1.5GB, got {value!r}")
    return value


def data_dir(create: bool = True) -> Path:
    """Where DuckDB files live: $KEYBIMP_DATA, else ./data (git-ignored).  ``create=False`` for readers, which
    must not leave an empty data folder behind (a command run in the wrong folder)."""
    path = Path(os.environ.get("KEYBIMP_DATA", "data")).resolve()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def sync_state_files(directory: Path | None = None) -> dict[str, list[Path]]:
    """Each integration's local sync state by name: its DuckDB file and write ledger (with their WAL and
    lock files).  They describe one Bimp company's records: against a fresh Bimp they point at nothing.
    Settings history and pause state (`<name>.control.json`) are not part of it."""
    directory = directory or data_dir()
    found: dict[str, list[Path]] = {}
    for suffix in (".duckdb", ".ledger.sqlite"):
        for path in sorted(directory.glob(f"*{suffix}*")):
            name = path.name.split(suffix, 1)[0]
            found.setdefault(name, []).append(path)
    return {name: found[name] for name in sorted(found)}


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


class Store:
    """One integration's DuckDB file.  Open it only through `connect()`, briefly."""

    def __init__(self, integration: str, directory: Path | None = None, lock_timeout_s: float = 600.0):
        self.integration = integration
        self.directory = directory or data_dir()
        self.path = self.directory / f"{integration}.duckdb"
        self._lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout_s)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._writer_lock = FileLock(str(self.path) + ".writer.lock", timeout=lock_timeout_s)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection under the file lock.  Re-entrant: a step that makes no API call wraps its whole
        body in one `connect()` and every inner query reuses that connection (opening costs ~25 ms)."""
        if self._con is not None:
            yield self._con
            return
        with self._lock:
            con = duckdb.connect(str(self.path))
            try:
                con.execute("SET TimeZone = 'UTC'")
                # DuckDB's own memory (its cache of the file's blocks, intermediate results) stays bounded, so
                # a backfill of a million orders fits a laptop; beyond it DuckDB spills to <file>.tmp
                con.execute(f"SET memory_limit = '{memory_limit()}'")
                if self.path not in _INITIALISED:
                    con.execute(SCHEMA)
                    _INITIALISED.add(self.path)
                self._con = con
                yield con
            finally:
                self._con = None
                con.close()

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Held by a step that writes to the vendors for this integration: one writer at a time."""
        with self._writer_lock:
            yield

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(sql, params or []).df()

    def replace_partition(self, table: str, day: object, frame: pd.DataFrame) -> None:
        """Delete the partition's rows of `table` and insert `frame` (columns named as the table's)."""
        with self.connect() as con, transaction(con):
            con.execute(f"DELETE FROM {table} WHERE integration = ? AND day = ?", [self.integration, day])
            if len(frame):
                con.register("frame_in", frame)
                cols = ", ".join(frame.columns)
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM frame_in")
                con.unregister("frame_in")

    def replace_days(self, table: str, days: Sequence[object], frame: pd.DataFrame) -> None:
        """Delete the rows of every day in `days` from `table` and insert `frame` (one transaction): the
        ranged form of `replace_partition`, for steps that handle a backfill's days in one go."""
        with self.connect() as con, transaction(con):
            con.execute(f"DELETE FROM {table} WHERE integration = ? AND day IN (SELECT UNNEST(?::DATE[]))",
                        [self.integration, list(days)])
            if len(frame):
                con.register("frame_in", frame)
                cols = ", ".join(frame.columns)
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM frame_in")
                con.unregister("frame_in")
