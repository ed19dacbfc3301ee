"""Status mapping R-STAT-1..2 and cancelled statuses for R-MAIN-4 (keybimp_pipeline.rules.statuses)."""

from __future__ import annotations

import pandas as pd

from keybimp_pipeline.rules.statuses import (
    cancelled_bimp_statuses,
    cancelled_status_ids,
    map_statuses,
    unknown_status_keys,
)

KEYCRM = pd.DataFrame({"id": [1, 12, 19, 7], "alias": ["new", "completed", "canceled", "materiali"],
                       "name": ["new", "Виконано", "canceled", "Матеріали"], "group_id": [1, 5, 6, 2]})
ORDERS = pd.DataFrame({"order_id": [100, 101, 102], "status_id": [1, 7, 19]})


def test_R_STAT_1_mapped_by_alias_or_id():
    out = map_statuses(ORDERS, KEYCRM, {"new": "b-new", "19": "b-cancel"}).set_index("order_id")
    assert out.loc[100, ["bimp_status_uuid", "code"]].tolist() == ["b-new", None]
    assert out.loc[102, ["bimp_status_uuid", "code"]].tolist() == ["b-cancel", None]


def test_R_STAT_2_unmapped_status_then_mapped_on_a_later_sync():
    first = map_statuses(ORDERS, KEYCRM, {"new": "b-new"}).set_index("order_id")
    assert first.loc[101, ["bimp_status_uuid", "code"]].tolist() == [None, "status_not_mapped"]
    assert first.loc[101, "detail"] == "KeyCRM status 'Матеріали' (id 7, alias materiali) is not in 'statuses'"
    # the user adds the status: the same order now maps (nothing was remembered from the first sync)
    later = map_statuses(ORDERS, KEYCRM, {"new": "b-new", "materiali": "b-work"}).set_index("order_id")
    assert later.loc[101, ["bimp_status_uuid", "code"]].tolist() == ["b-work", None]
    # or the order moves to a mapped status
    moved = map_statuses(ORDERS.assign(status_id=[1, 1, 19]), KEYCRM, {"new": "b-new"}).set_index("order_id")
    assert moved.loc[101, ["bimp_status_uuid", "code"]].tolist() == ["b-new", None]


def test_R_STAT_1_id_key_wins_over_alias_for_one_status():
    out = map_statuses(ORDERS, KEYCRM, {"new": "b-alias", "1": "b-id"}).set_index("order_id")
    assert out.loc[100, "bimp_status_uuid"] == "b-id"


def test_R_STAT_1_unknown_keys_are_reported():
    assert unknown_status_keys(KEYCRM, {"new": "a", "nope": "b", "12": "c"}) == ["nope"]


def test_R_MAIN_4_cancelled_statuses_from_keycrm_group():
    assert cancelled_status_ids(KEYCRM) == {19}
    assert cancelled_bimp_statuses(KEYCRM, {"new": "b-new", "canceled": "b-cancel"}) == {"b-cancel"}
