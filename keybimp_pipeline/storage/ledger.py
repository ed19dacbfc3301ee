"""The write ledger: one row per external record the pipeline wrote (integration, entity, CRM id).

Every write to Bimp or KeyCRM goes through it (principle 4).  A row is `pending` from just before the
call until the vendor acknowledged it, then `done` with the vendor's uuid and the hash of the payload
that was sent.  A run killed between the call and the record leaves `pending`: the next run
reconciles it against the vendor (by external id or document number) before writing again, so no
record is ever created twice.  A payload hash that matches means "nothing changed: write nothing".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd

from keybimp_pipeline.storage.db import Store

PENDING = "pending"
DONE = "done"


def _default(value: object) -> str:
    if isinstance(value, (Decimal, datetime)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def payload_hash(payload: object) -> str:
    """A stable hash of what we send: canonical JSON, sorted keys."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Ledger:
    def __init__(self, store: Store):
        self.store = store
        self.integration = store.integration

    def entries(self, entity: str, crm_ids: Iterable[str] | None = None) -> pd.DataFrame:
        sql = "SELECT crm_id, bimp_uuid, payload_hash, state, detail FROM ledger WHERE integration=? AND entity=?"
        params: list = [self.integration, entity]
        frame = self.store.query(sql, params)
        if crm_ids is not None:
            wanted = {str(c) for c in crm_ids}
            frame = frame[frame["crm_id"].isin(wanted)]
        return frame.set_index("crm_id", drop=False)

    def _upsert(self, entity: str, crm_id: str, bimp_uuid: str | None, phash: str | None, state: str,
                detail: object | None) -> None:
        with self.store.connect() as con:
            con.execute(
                """INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (integration, entity, crm_id) DO UPDATE SET
                     bimp_uuid = COALESCE(excluded.bimp_uuid, ledger.bimp_uuid),
                     payload_hash = excluded.payload_hash, state = excluded.state,
                     detail = COALESCE(excluded.detail, ledger.detail), written_at = excluded.written_at""",
                [self.integration, entity, str(crm_id), bimp_uuid, phash, state,
                 json.dumps(detail, ensure_ascii=False, default=_default) if detail is not None else None,
                 datetime.now(UTC)],
            )

    def pending(self, entity: str, crm_id: object, phash: str, detail: object | None = None) -> None:
        """Recorded before the vendor call, so a crash after it is noticed and reconciled."""
        self._upsert(entity, str(crm_id), None, phash, PENDING, detail)

    def done(self, entity: str, crm_id: object, bimp_uuid: str, phash: str, detail: object | None = None) -> None:
        self._upsert(entity, str(crm_id), bimp_uuid, phash, DONE, detail)

    def uuid_map(self, entity: str) -> dict[str, str]:
        frame = self.entries(entity)
        frame = frame[frame["state"] == DONE]
        return dict(zip(frame["crm_id"], frame["bimp_uuid"], strict=True))
