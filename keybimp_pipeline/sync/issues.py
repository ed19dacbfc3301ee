"""Sync issues: stored per (integration, day, entity), replaced on every run of that day and entity.

An issue that no longer occurs disappears on the next run of its day: the table holds what is open.
"""

from __future__ import annotations

import re
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


ITEM_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def item_names(store: Store, details: pd.Series) -> dict[str, dict]:
    """Bimp items named by uuid in issue details (``reserve_insufficient``: "item <uuid>: ordered ..."), with
    the SKU and name a person knows them by: KeyCRM's, from the order lines matched to them (staged and
    matched tables), else Bimp's article and name from the reference snapshot; a warehouse named by uuid
    (``sale_insufficient_stock``) gets its Bimp name the same way."""
    uuids = sorted({u for text in details.dropna().astype(str) for u in ITEM_UUID.findall(text)})
    if not uuids:
        return {}
    with store.connect() as con:
        rows = con.execute(
            "SELECT m.nomenclature_uuid, min(l.sku), min(l.name), 0 AS rank FROM matched_products m "
            "JOIN stg_order_lines l ON l.integration=m.integration AND l.order_id=m.order_id "
            "AND l.line_no=m.line_no WHERE m.integration=? AND m.nomenclature_uuid IN (SELECT UNNEST(?)) GROUP BY 1 "
            "UNION ALL SELECT id, article, name, 1 FROM reference WHERE integration=? AND system='bimp' "
            "AND kind IN ('nomenclature', 'warehouse') AND id IN (SELECT UNNEST(?)) ORDER BY 4",
            [store.integration, uuids, store.integration, uuids]).fetchall()
    out: dict[str, dict] = {}
    for uuid, sku, name, _ in rows:
        out.setdefault(uuid, {"nomenclature_uuid": uuid, "sku": sku, "name": name})
    return out


def name_items(detail: str | None, items: dict[str, dict]) -> str:
    """The detail with each known item uuid followed by its SKU and name: "item 3f2…(SKU-1 «Чашка»)"."""
    if not detail:
        return ""

    def named(match: re.Match) -> str:
        item = items.get(match.group(0))
        if item is None:
            return match.group(0)
        label = " ".join(x for x in (item["sku"] and f"SKU {item['sku']}", item["name"] and f"«{item['name']}»") if x)
        return f"{label} ({match.group(0)})" if label else match.group(0)

    return ITEM_UUID.sub(named, detail)


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
