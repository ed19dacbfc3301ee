"""KeyCRM order status -> Bimp customer-order status (R-STAT-1..2), and which statuses mean cancelled.

The ``statuses`` table of the settings is keyed by what users can read in KeyCRM: a status id (as
text: YAML keys) or its alias (``new``, ``canceled``, ...); the status name is accepted too.  When
several keys denote one KeyCRM status the most specific wins: id, then alias, then name.  Values are
Bimp order-status uuids, already resolved from names by the caller (settings.resolve_reference).

An order whose status is not in the table is not created (``status_not_mapped``, R-STAT-2); nothing is
remembered, so once the table gains the status, or the order moves to a mapped one, the next sync
creates it.
"""

from __future__ import annotations

import pandas as pd

from keybimp_pipeline.rules.issues import IssueCode

MAP_COLUMNS = ["order_id", "bimp_status_uuid", "code", "detail"]

CANCELLED_GROUP_ID = 6  # KeyCRM status group "cancelled" (keycrm-notes: 1 new .. 5 completed, 6 cancelled)


def status_table(keycrm_statuses: pd.DataFrame, status_map: dict[str, str]) -> pd.DataFrame:
    """KeyCRM status id -> mapped Bimp status uuid (one row per mapped KeyCRM status)."""
    st = keycrm_statuses
    ids = st["id"].astype("int64")
    parts = [
        pd.DataFrame({"status_id": ids, "key": ids.astype(str), "rank": 0}),
        pd.DataFrame({"status_id": ids, "key": st["alias"].astype("string").str.strip(), "rank": 1}),
        pd.DataFrame({"status_id": ids, "key": st["name"].astype("string").str.strip(), "rank": 2}),
    ]
    keys = pd.concat(parts, ignore_index=True).dropna(subset=["key"])
    keys["key"] = keys["key"].astype(str)
    wanted = pd.DataFrame({"key": [str(k).strip() for k in status_map],
                           "bimp_status_uuid": list(status_map.values())})
    hits = keys.merge(wanted, on="key").sort_values(["status_id", "rank"]).drop_duplicates("status_id")
    return hits[["status_id", "bimp_status_uuid"]].reset_index(drop=True)


def unknown_status_keys(keycrm_statuses: pd.DataFrame, status_map: dict[str, str]) -> list[str]:
    """Keys of the ``statuses`` table that name no KeyCRM status (for the settings check)."""
    st = keycrm_statuses
    known = set(st["id"].astype("int64").astype(str)) | set(st["alias"].dropna().astype(str).str.strip()) \
        | set(st["name"].dropna().astype(str).str.strip())
    return [k for k in status_map if str(k).strip() not in known]


def map_statuses(orders: pd.DataFrame, keycrm_statuses: pd.DataFrame, status_map: dict[str, str]) -> pd.DataFrame:
    """Per order: the Bimp status uuid, or ``status_not_mapped`` naming the KeyCRM status (R-STAT-1/2)."""
    table = status_table(keycrm_statuses, status_map).set_index("status_id")["bimp_status_uuid"]
    status_id = orders["status_id"].astype("Int64")
    mapped = status_id.map(table)
    out = pd.DataFrame({"order_id": orders["order_id"].to_numpy(),
                        "bimp_status_uuid": mapped.astype(object).where(mapped.notna(), None).to_numpy()})
    unmapped = mapped.isna().to_numpy()
    st = keycrm_statuses.assign(id=keycrm_statuses["id"].astype("int64")).drop_duplicates("id").set_index("id")
    label = ("'" + status_id.map(st["name"]).astype("string").fillna("?") + "' (id "
             + status_id.astype("string").fillna("none") + ", alias "
             + status_id.map(st["alias"]).astype("string").fillna("?") + ")")
    out["code"] = None
    out["detail"] = None
    out.loc[unmapped, "code"] = IssueCode.STATUS_NOT_MAPPED.value
    out.loc[unmapped, "detail"] = ("KeyCRM status " + label[unmapped] + " is not in 'statuses'").to_numpy()
    return out[MAP_COLUMNS]


def cancelled_status_ids(keycrm_statuses: pd.DataFrame) -> set[int]:
    """KeyCRM statuses of the cancelled group: an order reaching one releases its reserve (R-MAIN-4)."""
    st = keycrm_statuses
    return set(st.loc[st["group_id"].astype("Int64").eq(CANCELLED_GROUP_ID).fillna(False), "id"].astype(int))


def cancelled_bimp_statuses(keycrm_statuses: pd.DataFrame, status_map: dict[str, str]) -> set[str]:
    """Bimp statuses that mean cancelled: those mapped from a KeyCRM status of the cancelled group.

    R-MAIN-4 says "a status mapped to a cancelled Bimp status"; Bimp's order statuses carry no such
    flag, so the meaning is taken from the KeyCRM side, whose groups do.
    """
    table = status_table(keycrm_statuses, status_map)
    cancelled = cancelled_status_ids(keycrm_statuses)
    return set(table.loc[table["status_id"].isin(cancelled), "bimp_status_uuid"])


__all__ = ["CANCELLED_GROUP_ID", "MAP_COLUMNS", "cancelled_bimp_statuses", "cancelled_status_ids",
           "map_statuses", "status_table", "unknown_status_keys"]
