"""Sales-invoice lines: Bimp lines have a unit cost and a count but no discount, so a KeyCRM line whose
amount does not divide by its quantity is split so the invoice still equals the order to the kopiyka."""

from __future__ import annotations

import pandas as pd

from keybimp_pipeline.sync.documents import sale_lines


def _lines(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["order_id", "line_no", "nomenclature_uuid", "quantity", "amount_kop",
                                       "is_service"])


def test_totals_odd_kopiyky_go_to_whole_units_one_kopiyka_dearer():
    out = sale_lines(_lines([(1, 0, "c", 3.0, 8999, False), (1, 1, "d", 7.0, 10_000, False)]))
    assert out[["line_no", "count", "cost_ck", "sum_kop"]].values.tolist() == [
        [0, 1.0, 299_900, 2999], [0, 2.0, 300_000, 6000],  # 1 x 29.99 + 2 x 30.00 = 89.99
        [1, 3.0, 142_800, 4284], [1, 4.0, 142_900, 5716]]  # 3 x 14.28 + 4 x 14.29 = 100.00
    assert out.groupby("order_id")["sum_kop"].sum().to_dict() == {1: 18_999}


def test_totals_divisible_amount_stays_one_line_and_the_split_ignores_row_order():
    rows = [(2, 1, "b", 2.0, 1000, False), (1, 0, "a", 3.0, 100, False), (2, 0, "s", 1.0, 6000, True)]
    out = sale_lines(_lines(rows))
    again = sale_lines(_lines(rows[::-1]))
    pd.testing.assert_frame_equal(out, again)
    assert out[["order_id", "line_no", "count", "cost_ck", "is_service"]].values.tolist() == [
        [1, 0, 2.0, 3300, False], [1, 0, 1.0, 3400, False], [2, 0, 1.0, 600_000, True], [2, 1, 2.0, 50_000, False]]


def test_totals_fractional_quantity_keeps_one_line_rounded_to_the_kopiyka():
    out = sale_lines(_lines([(1, 0, "w", 1.5, 1001, False), (1, 1, "z", 1.0, 0, False)]))
    assert out[["count", "cost_ck", "sum_kop"]].values.tolist() == [[1.5, 66_733, 1001], [1.0, 0, 0]]
