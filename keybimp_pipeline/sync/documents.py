"""The rest of an order's life in Bimp: customer payments, sales invoices, goods returns, money refunds.

Each document is linked to its customer order through the ledger (R-CUST-9), never by searching the
customer again, so a buyer renamed in KeyCRM after the transfer orphans nothing.  A document Bimp
refuses for a business reason (goods not on hand, closed period, zero price) becomes a sync issue and
is tried again on the next sync; a transient fault fails the partition, and the re-run writes only what
is missing, because every write is in the ledger: a row left `pending` by a failed or killed run is
looked up in Bimp by its document number before anything is created again (R-ORCH-6).

Money: a Bimp sales invoice line has a unit cost and a count but no discount, so a KeyCRM line whose
amount does not divide by its quantity (3 x 33.33 with a 10 % order discount = 89.99) cannot be one
Bimp line at a two-decimal price.  :func:`sale_lines` splits such a line into two: the units at the
floor price and, deterministically, the last few units one kopiyka dearer, so the invoice's total
equals the KeyCRM order's total to the kopiyka; anything else is the sync issue ``total_mismatch``.
"""

from __future__ import annotations

import json
import logging
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd

from keybimp_pipeline.clients.bimp import BimpBusinessError, BimpNotFound, BimpValidationError
from keybimp_pipeline.rules.documents import (
    format_bimp_datetime,
    full_return_check,
    payment_dates,
    sale_dates,
)
from keybimp_pipeline.rules.issues import IssueCode
from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.storage.ledger import DONE, PENDING, Ledger, payload_hash
from keybimp_pipeline.sync.orders import Derived
from keybimp_pipeline.sync.resolve import Resolved

log = logging.getLogger(__name__)

REASON_CODES = {
    "insufficient_stock": IssueCode.SALE_INSUFFICIENT_STOCK,
    "period_closed": IssueCode.PERIOD_CLOSED,
    "zero_price": IssueCode.ZERO_PRICE,
}
DOC_ENTITIES = ["customer_payment", "sales_invoice", "customer_return", "refund"]
CANCELLED_PAYMENT = ("canceled", "cancelled")
_UNIT = Decimal("0.0001")  # Bimp line costs are written with up to 4 decimals (1 "centi-kopiyka")


def _money(kop: object) -> Decimal:
    return (Decimal(int(kop)) / 100).quantize(Decimal("0.01"))


def _cost(centi_kop: object) -> Decimal:
    """A unit cost held in 1/10 000 UAH as Decimal UAH (2 decimals when it is whole kopiyky)."""
    value = Decimal(int(centi_kop)) / 10_000
    return value.quantize(Decimal("0.01")) if int(centi_kop) % 100 == 0 else value.quantize(_UNIT)


def _count(q: float) -> int | float:
    return round(q) if abs(q - round(q)) < 1e-9 else float(q)


def _detail(entry: pd.Series) -> dict:
    d = entry["detail"]
    return json.loads(d) if isinstance(d, str) else (d or {})


def _rejected_before(entry: pd.Series | None) -> bool:
    """A pending row whose create Bimp refused: nothing exists in Bimp, no need to look it up."""
    return entry is not None and entry["state"] == PENDING and bool(_detail(entry).get("rejected"))


def sale_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """Bimp sales-invoice lines (unit cost x count, no discount field) whose sums equal the KeyCRM amounts.

    ``lines``: order_id, line_no, nomenclature_uuid, quantity, amount_kop (the line's total after its
    share of every discount), is_service.  A whole quantity ``n`` with amount ``A`` kopiyky becomes
    ``n - A mod n`` units at ``A div n`` and ``A mod n`` units one kopiyka dearer (second row, only when
    needed) -- exact, and the same split on every run.  A fractional quantity (weights) stays one line at
    ``A / q`` rounded to 1/100 kopiyka; its sum is then rounded to the kopiyka (``sum_kop``).

    Out: order_id, line_no, part, nomenclature_uuid, count, cost_ck (unit cost in 1/10 000 UAH),
    sum_kop, is_service, sorted by order, line, part.
    """
    cols = ["order_id", "line_no", "part", "nomenclature_uuid", "count", "cost_ck", "sum_kop", "is_service"]
    if lines.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    q = lines["quantity"].astype("float64").to_numpy()
    amount = lines["amount_kop"].astype("int64").to_numpy()
    whole = (np.abs(q - np.round(q)) < 1e-9) & (q >= 1)
    n = np.where(whole, np.round(q), 1).astype("int64")
    base = amount // n
    extra = np.where(whole, amount - base * n, 0)
    frac_cost = np.where(q > 0, np.floor(amount * 100 / np.where(q > 0, q, 1) + 0.5), 0).astype("int64")
    keep = lines[["order_id", "line_no", "nomenclature_uuid", "is_service"]].reset_index(drop=True)
    first = keep.assign(part=0, count=np.where(whole, n - extra, q),
                        cost_ck=np.where(whole, base * 100, frac_cost))
    first["sum_kop"] = np.where(whole, (n - extra) * base,
                                np.floor(q * frac_cost / 100 + 0.5)).astype("int64")
    second = keep.assign(part=1, count=extra.astype("float64"), cost_ck=(base + 1) * 100,
                         sum_kop=extra * (base + 1))[extra > 0]
    out = pd.concat([first, second], ignore_index=True)
    out["count"] = out["count"].astype("float64")
    out["cost_ck"] = out["cost_ck"].astype("int64")
    out["sum_kop"] = out["sum_kop"].astype("int64")
    return out.sort_values(["order_id", "line_no", "part"], kind="mergesort").reset_index(drop=True)[cols]


@dataclass
class DocResult:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    issues: list[dict] = field(default_factory=list)

    def count(self, kind: str, what: str = "created") -> None:
        bucket = self.created if what == "created" else self.updated
        bucket[kind] = bucket.get(kind, 0) + 1

    def issue(self, order_id: int, entity: str, code: IssueCode | str, detail: str) -> None:
        self.issues.append({"order_id": int(order_id), "entity": entity,
                            "code": code.value if isinstance(code, IssueCode) else code, "detail": detail})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.issues, columns=["order_id", "entity", "code", "detail"])


class DocumentWriter:
    """Writes one day's payments, sales, returns and refunds.  Call in this order: payments, sales,
    returns (a refund reads the payments just written, a return the sale)."""

    def __init__(self, store: Store, bimp, integration, resolved: Resolved, blocked: set[int] | None = None,
                 run_id: str | None = None):
        """`blocked`: orders whose customer order has its own sync issue this run; their documents wait
        silently (one issue per problem, not one per document)."""
        self.blocked = {int(b) for b in (blocked or set())}
        self.store = store
        self.bimp = bimp
        self.settings = integration
        self.r = resolved
        self.ledger = Ledger(store, run_id)
        self.result = DocResult()

    # ---------------------------------------------------------------------------------- shared
    def _rejected(self, err: Exception, order_id: int, entity: str, default: IssueCode) -> None:
        reason = getattr(err, "reason", None) or ""
        code = REASON_CODES.get(reason, default)
        if entity != "sales_invoice" and code is IssueCode.SALE_INSUFFICIENT_STOCK:
            code = default
        self.result.issue(order_id, entity, code, f"Bimp: {getattr(err, 'message', str(err))}"[:300])

    def _create(self, entity: str, crm_id: str, body: dict, create, *, order_id: int, detail: dict,
                reject_code: IssueCode = IssueCode.BIMP_REJECTED) -> str | None:
        phash = payload_hash(body)
        self.ledger.pending(entity, crm_id, phash, detail)
        try:
            uuid = create(body)
        except (BimpBusinessError, BimpValidationError) as err:
            # nothing was created: say so in the ledger, so the next run need not look it up in Bimp
            self.ledger.pending(entity, crm_id, phash, dict(detail, rejected=getattr(err, "reason", "validation")))
            self._rejected(err, order_id, entity, reject_code)
            return None
        self.ledger.done(entity, crm_id, uuid, phash, detail)
        self.result.count(entity)
        return uuid

    def _update(self, entity: str, order_id: int, write, *args) -> bool:
        """An update or cancel of a document already in Bimp; a business refusal is a sync issue."""
        try:
            write(*args)
        except (BimpBusinessError, BimpValidationError) as err:
            self._rejected(err, order_id, entity, IssueCode.BIMP_REJECTED)
            return False
        except BimpNotFound as err:  # the document the ledger names was deleted in Bimp (R-ORCH-5)
            self.result.issue(order_id, entity, IssueCode.BIMP_RECORD_MISSING,
                              f"not in Bimp any more: {entity.replace('_', ' ')} {args[0] if args else ''}"
                              f" ({err.message})"[:300])
            return False
        return True

    def _orders(self, order_ids) -> pd.DataFrame:
        entries = self.ledger.entries("customer_order", [str(o) for o in order_ids])
        return entries[entries["state"] == DONE]

    def _day_orders(self, day: date) -> pd.DataFrame:
        return self.store.query("SELECT * FROM stg_orders WHERE integration=? AND day=? ORDER BY created_at, order_id",
                                [self.store.integration, day])

    def _tag(self, order_id: int) -> str:
        """Document comment naming the KeyCRM order and the shop (several shops may write to one company)."""
        return f"KeyCRM order {order_id} ({self.store.integration})"

    def _status_ids(self, status: str | None) -> set[int]:
        if status is None:
            return set()
        sid = self.r.status_alias.get(str(status))
        return {sid} if sid is not None else set()

    def _local(self, moments: pd.Series) -> pd.Series:
        """UTC moments as Bimp's shop-local "YYYY-MM-DDTHH:MM:SS" (missing stays missing)."""
        values = pd.to_datetime(moments, utc=True)
        return format_bimp_datetime(values.dt.tz_convert(self.settings.timezone).dt.tz_localize(None))

    def _lines_with_items(self, derived: Derived) -> pd.DataFrame:
        """Derived document lines with the uuids of items the pipeline created filled in from the ledger."""
        lines = derived.lines.copy()
        if lines.empty:
            return lines
        product_uuid = self.ledger.uuid_map("product")
        made = lines["outcome"] == "create"
        lines.loc[made, "nomenclature_uuid"] = lines.loc[made, "create_key"].astype(str).map(product_uuid)
        return lines

    # -------------------------------------------------------------------------------- payments
    def payments(self, day: date) -> None:
        """R-PAY-1..4: one Bimp payment per paid KeyCRM payment; cancelled after transfer → cancelled."""
        cfg = self.settings.payments
        if not cfg.enabled:
            return
        pays = self.store.query("SELECT * FROM stg_payments WHERE integration=? AND day=? ORDER BY payment_id",
                                [self.store.integration, day])
        if pays.empty:
            return
        pays["payment_date"] = pd.to_datetime(pays["payment_date"], utc=True)
        pays["status_changed_at"] = pd.to_datetime(pays["status_changed_at"], utc=True)
        pays["doc_date"] = format_bimp_datetime(payment_dates(pays, cfg.date_source, self.settings.timezone))
        known = self.ledger.entries("customer_payment", pays["payment_id"].astype(str))
        orders = self._orders(pays["order_id"].unique())
        for _, p in pays.iterrows():
            pid, order_id = str(int(p["payment_id"])), int(p["order_id"])
            entry = known.loc[pid] if pid in known.index else None
            status = str(p["status"] or "")
            if status in CANCELLED_PAYMENT:
                if entry is not None and entry["state"] == DONE and not _detail(entry).get("cancelled"):
                    if not self._update("customer_payment", order_id,
                                        self.bimp.cancel_customer_payment, entry["bimp_uuid"]):
                        continue
                    self.ledger.done("customer_payment", pid, entry["bimp_uuid"], entry["payload_hash"],
                                     dict(_detail(entry), cancelled=True))
                    self.result.cancelled += 1
                continue
            if status != "paid":
                continue  # R-PAY-3: only paid payments
            if str(order_id) not in orders.index:
                if order_id in self.blocked:
                    continue
                self.result.issue(order_id, "customer_payment", IssueCode.ORDER_NOT_TRANSFERRED,
                                  f"payment {pid}: the order's customer order is not in Bimp yet")
                continue
            method = None if pd.isna(p["method_id"]) else int(p["method_id"])
            account = self.r.payment_accounts.get(method) if method is not None else None
            if account is None:
                self.result.issue(order_id, "customer_payment", IssueCode.PAYMENT_METHOD_NOT_MAPPED,
                                  f"payment {pid}: KeyCRM payment method {method} is not in payments.methods")
                continue
            if pd.isna(p["doc_date"]):
                self.result.issue(order_id, "customer_payment", IssueCode.ORDER_INVALID,
                                  f"payment {pid}: no {cfg.date_source} date in KeyCRM for the payment's date")
                continue
            order_uuid = orders.loc[str(order_id), "bimp_uuid"]
            order = _detail(orders.loc[str(order_id)])
            body = {"counterparty": order.get("counterparty"), "currency": self.r.currency,
                    "organization": self.r.organization, "date": p["doc_date"], "number": f"KC-P-{pid}",
                    "paymentEntity": account, "comment": f"{self._tag(order_id)}, payment {pid}",
                    "paymentDetails": [{"invoiceForCustomerpayment": order_uuid, "payed": _money(p["amount_kop"])}]}
            detail = {"order_id": order_id, "account": account, "amount_kop": int(p["amount_kop"]),
                      "date": p["doc_date"]}
            if entry is not None and entry["state"] == DONE:
                if _detail(entry).get("cancelled"):
                    continue  # a payment cancelled in Bimp stays cancelled; a person re-books it
                if entry["payload_hash"] != payload_hash(body) and cfg.reload:  # R-PAY-1 reload
                    update = {k: v for k, v in body.items() if k not in ("counterparty", "organization")}
                    if not self._update("customer_payment", order_id,
                                        self.bimp.update_customer_payment, entry["bimp_uuid"], update):
                        continue
                    self.ledger.done("customer_payment", pid, entry["bimp_uuid"], payload_hash(body), detail)
                    self.result.count("customer_payment", "updated")
                continue
            if entry is not None and entry["state"] == PENDING and not _rejected_before(entry):
                found = [d for d in self.bimp.payments([order_uuid]) if d.get("number") == body["number"]]
                if found:  # an earlier run created it but did not live to record it
                    self.ledger.done("customer_payment", pid, found[0]["uuid"], payload_hash(body), detail)
                    continue
            self._create("customer_payment", pid, body, self.bimp.create_customer_payment, order_id=order_id,
                         detail=detail)

    # ----------------------------------------------------------------------------------- sales
    def sales(self, day: date, derived: Derived) -> None:
        """R-SALE-1..6: the whole order from its warehouse when it reaches the configured status.

        An order first seen already in a return status gets its sale first (the return is based on it).
        """
        cfg = self.settings.sales
        if not cfg.enabled:
            return
        trigger = self._status_ids(cfg.on_status)
        later = set()
        if self.settings.returns.goods.enabled:
            later |= self._status_ids(self.settings.returns.goods.on_status)
        if self.settings.returns.money.enabled:
            later |= self._status_ids(self.settings.returns.money.on_status)
        orders = self._day_orders(day)
        due = orders[orders["status_id"].isin(trigger | later)].copy()
        if due.empty:
            return
        for col in ("created_at", "shipping_date", "closed_at"):
            due[col] = pd.to_datetime(due[col], utc=True)
        due = due.assign(doc_date=format_bimp_datetime(sale_dates(due, cfg.date, self.settings.timezone)))
        customer_orders = self._orders(due["order_id"])
        known = self.ledger.entries("sales_invoice", due["order_id"].astype(str))
        lines = self._lines_with_items(derived)
        own_lines = lines[lines["order_id"].isin(due["order_id"])]
        split = sale_lines(own_lines[["order_id", "line_no", "nomenclature_uuid", "quantity", "amount_kop",
                                      "is_service"]]) if len(own_lines) else sale_lines(pd.DataFrame())
        for _, o in due.iterrows():
            order_id, key = int(o["order_id"]), str(int(o["order_id"]))
            entry = known.loc[key] if key in known.index else None
            done = entry is not None and entry["state"] == DONE
            if done and not cfg.reload:
                continue  # R-SALE-1: the first version transferred stays
            if order_id in self.blocked:
                continue  # the customer order's own issue says why
            if key not in customer_orders.index:
                self.result.issue(order_id, "sales_invoice", IssueCode.ORDER_NOT_TRANSFERRED,
                                  "the sale needs the order's customer order in Bimp")
                continue
            if pd.isna(o["doc_date"]):
                if not done:
                    self.result.issue(order_id, "sales_invoice", IssueCode.ORDER_INVALID,
                                      f"no {cfg.date} date in KeyCRM for the sale's date (sales.date: {cfg.date})")
                continue
            mine = split[split["order_id"] == order_id]
            if mine.empty or mine["nomenclature_uuid"].isna().any():
                self.result.issue(order_id, "sales_invoice", IssueCode.ORDER_NOT_TRANSFERRED,
                                  "the order's lines are not all in Bimp")
                continue
            total = int(mine["sum_kop"].sum())
            if total != int(o["grand_total_kop"]):  # never a silently different document
                self.result.issue(order_id, "sales_invoice", IssueCode.TOTAL_MISMATCH,
                                  f"sales invoice total {_money(total)} UAH != KeyCRM order total "
                                  f"{_money(o['grand_total_kop'])} UAH")
                continue
            co = customer_orders.loc[key]
            body, sold = self._sale_body(order_id, o["doc_date"], co, mine)
            detail = {"order_id": order_id, "sold": sold, "date": o["doc_date"], "total_kop": total}
            if done:  # reload on: rewrite only when the content changed
                if entry["payload_hash"] != payload_hash(body):
                    if not self._update("sales_invoice", order_id,
                                        self.bimp.update_sales_invoice, entry["bimp_uuid"], body):
                        continue
                    self.ledger.done("sales_invoice", key, entry["bimp_uuid"], payload_hash(body), detail)
                    self.result.count("sales_invoice", "updated")
                continue
            if entry is not None and entry["state"] == PENDING and not _rejected_before(entry):
                found = [s for s in self.bimp.sales_invoices(co["bimp_uuid"])
                         if s.get("documentNumber") == body["documentNumber"]]
                if found:  # an earlier run created it but did not live to record it
                    self.ledger.done("sales_invoice", key, found[0]["uuid"], payload_hash(body), detail)
                    continue
            self._create("sales_invoice", key, body, self.bimp.create_sales_invoice, order_id=order_id,
                         detail=detail)

    def _sale_body(self, order_id: int, doc_date: str, co: pd.Series, mine: pd.DataFrame) -> tuple[dict, list]:
        """The invoice (linked to the customer order: R-CUST-9) and what it sold, for the return later.

        Each goods line takes from the order's reserve what the customer order reserved for its item
        (nothing once the reserve was released), so the sale consumes the reserve (R-SALE-2)."""
        co_detail = _detail(co)
        reserves = {} if co_detail.get("released") else dict(co_detail.get("reserves") or {})
        products, sold = [], []
        for ln in mine.itertuples(index=False):
            count = _count(ln.count)
            reserve = 0.0
            if not ln.is_service:
                reserve = min(float(ln.count), float(reserves.get(ln.nomenclature_uuid, 0.0)))
                reserves[ln.nomenclature_uuid] = float(reserves.get(ln.nomenclature_uuid, 0.0)) - reserve
            products.append({"product": {"uuid": ln.nomenclature_uuid}, "count": count,
                             "reserve": _count(reserve), "cost": _cost(ln.cost_ck)})
            sold.append({"nomenclature_uuid": ln.nomenclature_uuid, "quantity": float(ln.count),
                         "cost_ck": int(ln.cost_ck), "sum_kop": int(ln.sum_kop), "is_service": bool(ln.is_service)})
        r = self.r
        body = {"counterparty": {"uuid": co_detail.get("counterparty")},
                "contract": {"uuid": co_detail.get("contract")}, "VATaccounted": False,
                "project": {"uuid": r.project}, "lineOfBusiness": {"uuid": r.line_of_business},
                "warehouse": {"uuid": r.warehouse}, "currency": {"uuid": r.currency},
                "organization": {"uuid": r.organization}, "managerialAccounting": True,
                "bookkeperAccounting": False, "date": doc_date, "documentNumber": f"KC-S-{order_id}",
                "invoiceForCustomerPayment": {"uuid": co["bimp_uuid"]}, "comment": self._tag(order_id),
                "products": products}
        return body, sold

    # --------------------------------------------------------------------------------- returns
    def returns(self, day: date, derived: Derived) -> None:
        """R-RET-1..3: full returns only; the goods return is based on the order's sales invoice."""
        goods_cfg, money_cfg = self.settings.returns.goods, self.settings.returns.money
        if not (goods_cfg.enabled or money_cfg.enabled):
            return
        orders = self._day_orders(day)
        orders = orders.assign(doc_date=self._local(orders["status_changed_at"].fillna(orders["updated_at"])))
        if goods_cfg.enabled:
            self._goods_returns(orders[orders["status_id"].isin(self._status_ids(goods_cfg.on_status))], derived)
        if money_cfg.enabled:
            self._refunds(orders[orders["status_id"].isin(self._status_ids(money_cfg.on_status))])

    def _goods_returns(self, due: pd.DataFrame, derived: Derived) -> None:
        if due.empty:
            return
        sales = self.ledger.entries("sales_invoice", due["order_id"].astype(str))
        known = self.ledger.entries("customer_return", due["order_id"].astype(str))
        lines = self._lines_with_items(derived)
        for _, o in due.iterrows():
            order_id, key = int(o["order_id"]), str(int(o["order_id"]))
            entry = known.loc[key] if key in known.index else None
            if entry is not None and entry["state"] == DONE:
                continue
            if order_id in self.blocked:
                continue
            if key not in sales.index or sales.loc[key, "state"] != DONE:
                self.result.issue(order_id, "customer_return", IssueCode.RETURN_WITHOUT_SALE,
                                  "no sales invoice was created for this order; nothing was returned")
                continue
            sale = _detail(sales.loc[key])
            sold = pd.DataFrame(sale["sold"])
            if "cost_ck" not in sold:  # a sale recorded before lines were split: one line per item
                sold["sum_kop"] = sold["cost_kop"].astype("int64")
                sold["cost_ck"] = (sold["sum_kop"] * 100 / sold["quantity"]).round().astype("int64")
            sold_goods = sold[~sold["is_service"].astype(bool)]
            current = lines[(lines["order_id"] == order_id) & (~lines["is_service"].astype(bool))]
            partial = full_return_check(
                sold_goods.assign(order_id=order_id)[["order_id", "nomenclature_uuid", "quantity"]],
                current[["order_id", "nomenclature_uuid", "quantity"]].assign(order_id=order_id))
            if len(partial):  # R-RET-3
                self.result.issue(order_id, "customer_return", IssueCode.PARTIAL_RETURN_MANUAL,
                                  partial["detail"].iloc[0])
                continue
            doc_date = max(str(o["doc_date"]) if pd.notna(o["doc_date"]) else "", str(sale.get("date") or ""))
            body = {"baseDocument": sales.loc[key, "bimp_uuid"], "warehouse": self.r.warehouse,
                    "date": doc_date or None, "number": f"KC-R-{order_id}", "comment": self._tag(order_id),
                    "products": [{"nomenclature": s["nomenclature_uuid"], "count": _count(s["quantity"]),
                                  "cost": _cost(s["cost_ck"])} for _, s in sold_goods.iterrows()]}
            if body["date"] is None:
                body.pop("date")
            detail = {"order_id": order_id, "total_kop": int(sold_goods["sum_kop"].sum()), "date": doc_date}
            if entry is not None and entry["state"] == PENDING and not _rejected_before(entry):
                found = [r for r in self.bimp.returns() if r.get("number") == body["number"]
                         and r.get("baseDocument") == body["baseDocument"]]
                if found:
                    self.ledger.done("customer_return", key, found[0]["uuid"], payload_hash(body), detail)
                    continue
            self._create("customer_return", key, body, self.bimp.create_customer_return, order_id=order_id,
                         detail=detail)

    def _refunds(self, due: pd.DataFrame) -> None:
        if due.empty:
            return
        payments = self.ledger.entries("customer_payment")
        payments = payments[payments["state"] == DONE]
        paid: dict[int, list[dict]] = {}
        for _, p in payments.iterrows():
            d = _detail(p)
            if not d.get("cancelled"):
                paid.setdefault(int(d.get("order_id", -1)), []).append(d)
        known = self.ledger.entries("refund", due["order_id"].astype(str))
        orders = self._orders(due["order_id"])
        for _, o in due.iterrows():
            order_id, key = int(o["order_id"]), str(int(o["order_id"]))
            if key in known.index and known.loc[key, "state"] == DONE:
                continue
            if order_id in self.blocked or order_id not in paid or key not in orders.index:
                continue  # nothing was paid through Bimp: nothing to refund
            amount = sum(int(d["amount_kop"]) for d in paid[order_id])
            if int(o["grand_total_kop"]) < amount:
                self.result.issue(order_id, "refund", IssueCode.PARTIAL_RETURN_MANUAL,
                                  f"paid {_money(amount)} UAH is more than the order total "
                                  f"{_money(o['grand_total_kop'])} UAH: refund by hand")
                continue
            # Bimp accepts a caller-chosen uuid on refunds: a repeated create returns the same document
            refund_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"keybimp/{self.store.integration}/refund/{key}"))
            body = {"uuid": refund_uuid, "expenseItem": self.r.refund_expense_item,
                    "customer": _detail(orders.loc[key]).get("counterparty"), "organization": self.r.organization,
                    "paymentEntity": paid[order_id][0]["account"], "author": self.r.author,
                    "comment": self._tag(order_id),
                    "paymentDetails": [{"invoice": orders.loc[key, "bimp_uuid"], "refundSum": _money(amount)}]}
            if pd.notna(o["doc_date"]):
                body["date"] = max(str(o["doc_date"]), *(str(d.get("date") or "") for d in paid[order_id]))
            self._create("refund", key, body, self.bimp.create_refund, order_id=order_id,
                         detail={"order_id": order_id, "amount_kop": amount, "account": body["paymentEntity"]})


DOCUMENT_ENTITIES = ["customer_payment", "sales_invoice", "customer_return", "refund"]


def write_documents(store: Store, day: date, integration, resolved: Resolved, bimp, derived: Derived,
                    run_id: str | None = None) -> tuple[DocResult, pd.DataFrame]:
    """Payments, sales, returns and refunds of one day, under the integration's writer lock; the day's
    document sync issues are stored and returned.  Orders whose customer order has its own open issue
    wait silently: one issue per problem."""
    from keybimp_pipeline.sync.issues import open_issues, save_issues

    with store.writer():
        open_now = open_issues(store, day)
        blocked = set(open_now.loc[open_now["entity"] == "customer_order", "order_id"].dropna().astype(int))
        writer = DocumentWriter(store, bimp, integration, resolved, blocked, run_id)
        writer.payments(day)
        writer.sales(day, derived)
        writer.returns(day, derived)
    issues = pd.DataFrame(writer.result.issues, columns=["order_id", "entity", "code", "detail"])
    return writer.result, save_issues(store, day, DOCUMENT_ENTITIES, issues)
