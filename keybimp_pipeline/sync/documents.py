"""The rest of an order's life in Bimp: customer payments, sales invoices, goods returns, money refunds.

Each document is linked to its customer order through the ledger (R-CUST-9), never by searching the
customer again, so a buyer renamed in KeyCRM after the transfer orphans nothing.  A document Bimp
refuses for a business reason (goods not on hand, closed period, zero price) becomes a sync issue and
is tried again on the next sync; a transient fault fails the partition, and the re-run writes only what
is missing, because every write is in the ledger.
"""

from __future__ import annotations

import json
import logging
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pandas as pd

from keybimp_pipeline.clients.bimp import BimpBusinessError, BimpValidationError
from keybimp_pipeline.rules.documents import format_bimp_datetime, full_return_check, payment_dates, sale_dates
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


def _money(kop: object) -> Decimal:
    return (Decimal(int(kop)) / 100).quantize(Decimal("0.01"))


def _detail(entry: pd.Series) -> dict:
    d = entry["detail"]
    return json.loads(d) if isinstance(d, str) else (d or {})


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


class DocumentWriter:
    def __init__(self, store: Store, bimp, integration, resolved: Resolved, blocked: set[int] | None = None):
        """`blocked`: orders whose customer order has its own sync issue this run; their documents wait
        silently (one issue per problem, not one per document)."""
        self.blocked = blocked or set()
        self.store = store
        self.bimp = bimp
        self.settings = integration
        self.r = resolved
        self.ledger = Ledger(store)
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
            self._rejected(err, order_id, entity, reject_code)
            return None
        self.ledger.done(entity, crm_id, uuid, phash, detail)
        self.result.count(entity)
        return uuid

    def _orders(self, order_ids) -> pd.DataFrame:
        entries = self.ledger.entries("customer_order", [str(o) for o in order_ids])
        return entries[entries["state"] == DONE]

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
            if status in ("canceled", "cancelled"):
                if entry is not None and entry["state"] == DONE and not _detail(entry).get("cancelled"):
                    self.bimp.cancel_customer_payment(entry["bimp_uuid"])
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
            order = _detail(orders.loc[str(order_id)])
            body = {"counterparty": order.get("counterparty"), "currency": self.r.currency,
                    "organization": self.r.organization, "date": p["doc_date"], "number": f"KC-P-{pid}",
                    "paymentEntity": account, "comment": f"KeyCRM order {order_id}, payment {pid}",
                    "paymentDetails": [{"invoiceForCustomerpayment": orders.loc[str(order_id), "bimp_uuid"],
                                        "payed": _money(p["amount_kop"])}]}
            if entry is not None and entry["state"] == DONE:
                if entry["payload_hash"] != payload_hash(body) and cfg.reload:  # R-PAY-1 reload
                    update = {k: v for k, v in body.items() if k not in ("counterparty", "organization")}
                    self.bimp.update_customer_payment(entry["bimp_uuid"], update)
                    self.ledger.done("customer_payment", pid, entry["bimp_uuid"], payload_hash(body),
                                     _detail(entry))
                    self.result.count("customer_payment", "updated")
                continue
            if entry is not None and entry["state"] == PENDING:
                found = [d for d in self.bimp.payments([orders.loc[str(order_id), "bimp_uuid"]])
                         if d.get("number") == body["number"]]
                if found:
                    self.ledger.done("customer_payment", pid, found[0]["uuid"], payload_hash(body),
                                     {"order_id": order_id, "account": account, "amount_kop": int(p["amount_kop"])})
                    continue
            self._create("customer_payment", pid, body, self.bimp.create_customer_payment, order_id=order_id,
                         detail={"order_id": order_id, "account": account, "amount_kop": int(p["amount_kop"])})

    # ----------------------------------------------------------------------------------- sales
    def _status_ids(self, status: str | None) -> set[int]:
        if status is None:
            return set()
        sid = self.r.status_alias.get(str(status))
        return {sid} if sid is not None else set()

    def sales(self, day: date, derived: Derived) -> None:
        """R-SALE-1..6: the whole order from its warehouse when it reaches the configured status."""
        cfg = self.settings.sales
        if not cfg.enabled:
            return
        trigger = self._status_ids(cfg.on_status)
        later = self._status_ids(self.settings.returns.goods.on_status) | self._status_ids(
            self.settings.returns.money.on_status)
        orders = self.store.query("SELECT * FROM stg_orders WHERE integration=? AND day=?",
                                  [self.store.integration, day])
        due = orders[orders["status_id"].isin(trigger | later)].copy()
        if due.empty:
            return
        for col in ("created_at", "shipping_date", "closed_at"):
            due[col] = pd.to_datetime(due[col], utc=True)
        due = due.assign(doc_date=format_bimp_datetime(sale_dates(due, cfg.date, self.settings.timezone)))
        customer_orders = self._orders(due["order_id"])
        known = self.ledger.entries("sales_invoice", due["order_id"].astype(str))
        product_uuid = self.ledger.uuid_map("product")
        lines = derived.lines.copy()
        made = lines["outcome"] == "create"
        lines.loc[made, "nomenclature_uuid"] = lines.loc[made, "create_key"].astype(str).map(product_uuid)
        for _, o in due.iterrows():
            order_id = int(o["order_id"])
            key = str(order_id)
            if key in known.index and known.loc[key, "state"] == DONE:
                continue  # a sale is created once; reload of sales rewrites only when its content changed
            if key not in customer_orders.index:
                if order_id in self.blocked:
                    continue
                self.result.issue(order_id, "sales_invoice", IssueCode.ORDER_NOT_TRANSFERRED,
                                  "the sale needs the order's customer order in Bimp")
                continue
            if pd.isna(o["doc_date"]):
                self.result.issue(order_id, "sales_invoice", IssueCode.ORDER_INVALID,
                                  f"no {cfg.date} date in KeyCRM for the sale's date")
                continue
            own = lines[lines["order_id"] == order_id]
            if own.empty or own["nomenclature_uuid"].isna().any():
                self.result.issue(order_id, "sales_invoice", IssueCode.ORDER_NOT_TRANSFERRED,
                                  "the order's lines are not all in Bimp")
                continue
            co = customer_orders.loc[key]
            co_detail = _detail(co)
            ref = {"uuid": None}
            body = {"counterparty": dict(ref, uuid=co_detail.get("counterparty")),
                    "contract": dict(ref, uuid=co_detail.get("contract")), "VATaccounted": False,
                    "project": dict(ref, uuid=self.r.project), "lineOfBusiness": dict(ref, uuid=self.r.line_of_business),
                    "warehouse": dict(ref, uuid=self.r.warehouse), "currency": dict(ref, uuid=self.r.currency),
                    "organization": dict(ref, uuid=self.r.organization), "managerialAccounting": True,
                    "bookkeperAccounting": False, "date": o["doc_date"], "documentNumber": f"KC-S-{order_id}",
                    "invoiceForCustomerPayment": dict(ref, uuid=co["bimp_uuid"]),
                    "comment": f"KeyCRM order {order_id}",
                    "products": [{"product": {"uuid": ln["nomenclature_uuid"]}, "count": float(ln["quantity"]),
                                  "reserve": 0.0 if ln["is_service"] else float(ln["quantity"]),
                                  "cost": _money(ln["amount_kop"]) / Decimal(str(ln["quantity"]))
                                  if ln["quantity"] else _money(0)}
                                 for _, ln in own.iterrows()]}
            for p in body["products"]:
                p["cost"] = p["cost"].quantize(Decimal("0.0001"))
            sold = [{"nomenclature_uuid": ln["nomenclature_uuid"], "quantity": float(ln["quantity"]),
                     "cost_kop": int(ln["amount_kop"]), "is_service": bool(ln["is_service"])}
                    for _, ln in own.iterrows()]
            self._create("sales_invoice", key, body, self.bimp.create_sales_invoice, order_id=order_id,
                         detail={"order_id": order_id, "sold": sold, "date": o["doc_date"]},
                         reject_code=IssueCode.BIMP_REJECTED)

    # --------------------------------------------------------------------------------- returns
    def returns(self, day: date, derived: Derived) -> None:
        """R-RET-1..3: full returns only; the goods return is based on the order's sales invoice."""
        goods_cfg, money_cfg = self.settings.returns.goods, self.settings.returns.money
        if not (goods_cfg.enabled or money_cfg.enabled):
            return
        orders = self.store.query("SELECT * FROM stg_orders WHERE integration=? AND day=?",
                                  [self.store.integration, day])
        if goods_cfg.enabled:
            self._goods_returns(orders[orders["status_id"].isin(self._status_ids(goods_cfg.on_status))], derived)
        if money_cfg.enabled:
            self._refunds(orders[orders["status_id"].isin(self._status_ids(money_cfg.on_status))])

    def _goods_returns(self, due: pd.DataFrame, derived: Derived) -> None:
        if due.empty:
            return
        sales = self.ledger.entries("sales_invoice", due["order_id"].astype(str))
        known = self.ledger.entries("customer_return", due["order_id"].astype(str))
        product_uuid = self.ledger.uuid_map("product")
        lines = derived.lines.copy()
        made = lines["outcome"] == "create"
        lines.loc[made, "nomenclature_uuid"] = lines.loc[made, "create_key"].astype(str).map(product_uuid)
        for _, o in due.iterrows():
            order_id, key = int(o["order_id"]), str(int(o["order_id"]))
            if key in known.index and known.loc[key, "state"] == DONE:
                continue
            if key not in sales.index or sales.loc[key, "state"] != DONE:
                if order_id in self.blocked:
                    continue
                self.result.issue(order_id, "customer_return", IssueCode.RETURN_WITHOUT_SALE,
                                  "no sales invoice was created for this order")
                continue
            sold = pd.DataFrame(_detail(sales.loc[key])["sold"])
            sold_goods = sold[~sold["is_service"]]
            current = lines[(lines["order_id"] == order_id) & (~lines["is_service"])]
            partial = full_return_check(
                sold_goods.assign(order_id=order_id)[["order_id", "nomenclature_uuid", "quantity"]],
                current[["order_id", "nomenclature_uuid", "quantity"]])
            if len(partial):
                self.result.issue(order_id, "customer_return", IssueCode.PARTIAL_RETURN_MANUAL,
                                  partial["detail"].iloc[0])
                continue
            body = {"baseDocument": sales.loc[key, "bimp_uuid"], "warehouse": self.r.warehouse,
                    "number": f"KC-R-{order_id}", "comment": f"KeyCRM order {order_id}",
                    "products": [{"nomenclature": s["nomenclature_uuid"], "count": s["quantity"],
                                  "cost": (_money(s["cost_kop"]) / Decimal(str(s["quantity"]))).quantize(
                                      Decimal("0.0001"))}
                                 for _, s in sold_goods.iterrows()]}
            self._create("customer_return", key, body, self.bimp.create_customer_return, order_id=order_id,
                         detail={"order_id": order_id})

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
            if order_id not in paid or key not in orders.index:
                continue  # nothing was paid through Bimp: nothing to refund
            amount = sum(d["amount_kop"] for d in paid[order_id])
            if int(o["grand_total_kop"]) < amount:
                self.result.issue(order_id, "refund", IssueCode.PARTIAL_RETURN_MANUAL,
                                  f"paid {_money(amount)} UAH is more than the order total")
                continue
            # Bimp accepts a caller-chosen uuid on refunds: a repeated create returns the same document
            refund_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"keybimp/{self.store.integration}/refund/{key}"))
            body = {"uuid": refund_uuid, "expenseItem": self.r.refund_expense_item,
                    "customer": _detail(orders.loc[key]).get("counterparty"), "organization": self.r.organization,
                    "paymentEntity": paid[order_id][0]["account"], "author": self.r.author,
                    "comment": f"KeyCRM order {order_id}",
                    "paymentDetails": [{"invoice": orders.loc[key, "bimp_uuid"], "refundSum": _money(amount)}]}
            self._create("refund", key, body, self.bimp.create_refund, order_id=order_id,
                         detail={"order_id": order_id, "amount_kop": amount})
