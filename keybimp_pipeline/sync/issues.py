"""Sync issues: stored per (integration, day, entity), replaced on every run of that day and entity.

An issue that no longer occurs disappears on the next run of its day: the table holds what is open.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from keybimp_pipeline.rules.issues import issue_frame
from keybimp_pipeline.storage.db import Store, transaction

COLUMNS = ["integration", "day", "order_id", "entity", "code", "detail", "message_en", "message_uk", "seen_at"]


def save_issues(store: Store, day: date, entities: list[str], issues: pd.DataFrame) -> pd.DataFrame:
    frame = issue_frame(issues) if len(issues) else pd.DataFrame(columns=COLUMNS)
    frame = frame.assign(integration=store.integration, day=day, seen_at=datetime.now(UTC))
    for col in COLUMNS:
        if col not in frame:
            frame[col] = None
    frame = frame[COLUMNS]
    with store.connect() as con, transaction(con):
        con.execute("DELETE FROM sync_issues WHERE integration=? AND day=? AND entity IN (SELECT UNNEST(?))",
                    [store.integration, day, entities])
        if len(frame):
            con.register("incoming", frame)
            con.execute(f"INSERT INTO sync_issues ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM incoming")
            con.unregister("incoming")
    return frame


def open_issues(store: Store, day: date | None = None) -> pd.DataFrame:
    sql = "SELECT * FROM sync_issues WHERE integration=?"
    params: list = [store.integration]
    if day is not None:
        sql += " AND day=?"
        params.append(day)
    return store.query(sql + " ORDER BY day, order_id, entity, code", params)


def markdown_table(frame: pd.DataFrame, limit: int = 20) -> str:
    if frame.empty:
        return "_no sync issues_"
    head = frame.head(limit)
    lines = ["| order | code | detail | what to do |", "|---|---|---|---|"]
    for _, row in head.iterrows():
        detail = str(row.get("detail") or "").replace("|", "/")[:120]
        lines.append(f"| {row['order_id']} | `{row['code']}` | {detail} | {str(row['message_en']).replace('|', '/')} |")
    if len(frame) > limit:
        lines.append(f"| … | {len(frame) - limit} more | | |")
    return "\n".join(lines)
