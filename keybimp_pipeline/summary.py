"""What `keybimp sync` (and so `make demo`) prints after a run: an integration's totals, one basis for all.

Every figure is a total since the integration's first sync, read from the write ledger (what was written to
Bimp, and to which counterparty) and from the tables as they stand (orders seen, quarantine, open sync
issues).  None is read from the latest run's match tables alone: a re-sync re-matches its days, and an item
keybimp created on the first sync is "matched" on the second, so such a figure would drift from run to run
while nothing changed.  Re-syncing with nothing changed in KeyCRM therefore prints the same summary, and
"written to Bimp this run" says 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd

from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.storage.ledger import DONE, Ledger

__all__ = ["format_summary", "summarize"]


def _detail(raw: object) -> dict:
    return json.loads(raw) if isinstance(raw, str) and raw else {}


def summarize(name: str, run_ids: Iterable[str] | None = None) -> dict:
    """The integration's totals; with `run_ids` also the records those runs wrote (their last write was theirs:
    another run writing meanwhile, a sensor's, is not counted)."""
    store = Store(name)
    q = store.query

    def one(sql: str, params: list | None = None) -> int:
        return int(q(sql, params or [name]).iloc[0, 0] or 0)

    book = Ledger(store)
    ledger = book.frame()
    done = ledger[ledger["state"] == DONE]
    orders = done[done["entity"] == "customer_order"]
    details = [_detail(d) for d in orders["detail"]]
    sold = set(done.loc[done["entity"] == "sales_invoice", "crm_id"])
    # still held: reserves of customer orders neither cancelled nor sold (a sale consumes them)
    reserved = sum(sum(float(v) for v in (d.get("reserves") or {}).values())
                   for crm_id, d in zip(orders["crm_id"], details, strict=True)
                   if not d.get("released") and crm_id not in sold)
    created_counterparties = set(done.loc[done["entity"] == "counterparty", "bimp_uuid"])
    created_items = sorted(set(done.loc[done["entity"] == "product", "bimp_uuid"].dropna()))
    to_existing = sum(1 for d in details if d.get("counterparty") and d["counterparty"] not in created_counterparties)
    # lines of the transferred orders whose item was in Bimp already (not one keybimp created)
    lines_existing = one(
        "SELECT count(*) FROM matched_products WHERE integration=? AND outcome='matched' "
        "AND order_id IN (SELECT UNNEST(?::BIGINT[])) AND nomenclature_uuid NOT IN (SELECT UNNEST(?::VARCHAR[]))",
        [name, [int(c) for c in orders["crm_id"]], created_items])
    issues = q("SELECT code, count(*) AS n, count(DISTINCT order_id) AS orders FROM sync_issues "
               "WHERE integration=? GROUP BY code ORDER BY n DESC, code", [name])
    unwritten = one("SELECT count(DISTINCT order_id) FROM sync_issues WHERE integration=? "
                    "AND entity='customer_order' AND order_id NOT IN (SELECT UNNEST(?::BIGINT[]))",
                    [name, [int(c) for c in orders["crm_id"]]])
    written = None if run_ids is None else book.written_by(run_ids)
    return {
        "orders_seen": one("SELECT count(*) FROM raw_orders WHERE integration=?"),
        "orders_quarantined": one("SELECT count(DISTINCT order_id) FROM quarantine WHERE integration=?"),
        "customer_orders": len(orders),
        "orders_not_written": unwritten,
        "counterparties_created": len(created_counterparties),
        "contracts_created": int((done["entity"] == "contract").sum()),
        "orders_to_existing_counterparties": to_existing,
        "products_created": len(created_items),
        "lines_with_existing_items": lines_existing,
        "reserved_units": round(reserved, 3),
        "issues_by_code": dict(zip(issues["code"], issues["n"].astype(int), strict=True)),
        "documents": done["entity"].value_counts().sort_index().astype(int).to_dict(),
        **_document_counts(done),
        "written_this_run": written,
    }


def _document_counts(done: pd.DataFrame) -> dict:
    """Bimp documents written after the customer orders (R-PAY, R-SALE, R-RET), from the ledger."""
    pays = done[done["entity"] == "customer_payment"]
    cancelled = sum(bool(_detail(d).get("cancelled")) for d in pays["detail"])
    return {"payments": {"created": len(pays), "cancelled": int(cancelled)},
            "sales_invoices": int((done["entity"] == "sales_invoice").sum()),
            "goods_returns": int((done["entity"] == "customer_return").sum()),
            "refunds": int((done["entity"] == "refund").sum())}


def _quantity(value: float) -> int | float:
    """465.0 units print as 465; 2.5 kg as 2.5."""
    return int(value) if float(value).is_integer() else value


def format_summary(name: str, s: dict) -> str:
    lines = [f"== {name}: totals since the first sync (Bimp writes from the ledger, issues open now) ==",
             f"orders seen in KeyCRM        {s['orders_seen']:>7}   (quarantined: {s['orders_quarantined']})",
             (f"Bimp customer orders         {s['customer_orders']:>7}   "
              f"(orders not written, with an open issue: {s['orders_not_written']})"),
             (f"counterparties created       {s['counterparties_created']:>7}   "
              f"(orders written to an existing counterparty: {s['orders_to_existing_counterparties']})"),
             (f"contracts created            {s['contracts_created']:>7}   "
              "(a buyer without a contract gets one from the contract defaults)"),
             (f"products created             {s['products_created']:>7}   "
              f"(order lines written with an existing item: {s['lines_with_existing_items']})"),
             f"units reserved (open orders) {_quantity(s['reserved_units']):>7}",
             (f"customer payments            {s['payments']['created']:>7}   "
              f"(cancelled: {s['payments']['cancelled']})"),
             f"sales invoices               {s['sales_invoices']:>7}",
             f"goods returns                {s['goods_returns']:>7}",
             f"money refunds                {s['refunds']:>7}"]
    if s["issues_by_code"]:
        lines.append("open sync issues: " + ", ".join(f"{k} {v}" for k, v in s["issues_by_code"].items())
                     + f"   (keybimp issues {name})")
    else:
        lines.append("open sync issues: none")
    if s.get("written_this_run") is not None:
        lines.append(f"written to Bimp this run: {s['written_this_run']}")
    return "\n".join(lines)
