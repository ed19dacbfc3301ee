"""Bimp customer orders: derive them from the matched day (pure rules), then write them through the ledger.

Derivation decides, for every staged order, what its customer order looks like (lines, delivery line,
mapped status) or why it cannot be written (a sync issue).  Writing creates the counterparties, contracts
and items the rules decided to create, reads the warehouse's free stock for the involved items, computes
the reserves (earliest order first) and creates or updates the customer orders in placement order.
Every vendor write is recorded in the ledger as it succeeds; a pending row left by a killed run is
reconciled with Bimp before anything is written again.
"""

from __future__ import annotations

import json
import logging
import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd

from keybimp_pipeline.clients.bimp import BimpBusinessError, BimpNotFound, BimpValidationError
from keybimp_pipeline.rules.customers import counterparties_to_create
from keybimp_pipeline.rules.documents import document_lines
from keybimp_pipeline.rules.issues import IssueCode
from keybimp_pipeline.rules.reserves import compute_reserves
from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.storage.ledger import DONE, PENDING, Ledger, payload_hash
from keybimp_pipeline.sync.resolve import Resolved

log = logging.getLogger(__name__)

# The `integration.system` uuid under which keybimp stores KeyCRM ids on Bimp records (stable, ours).
KEYBIMP_SYSTEM = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, "https://keybimp.dev/keycrm"))
EXTERNAL_ID_SOURCE = "keycrm"


def external_id_source(integration: str) -> str:
    """The counterparty external-id source of one integration (R-CONN-4): KeyCRM buyer ids of two shops
    writing into one Bimp company overlap, so each integration keeps its own buyer-id map."""
    return f"{EXTERNAL_ID_SOURCE}:{integration}"
ISSUE_COLS = ["order_id", "entity", "code", "detail"]


def _money(kop: object) -> Decimal:
    return (Decimal(int(kop)) / 100).quantize(Decimal("0.01"))


@dataclass
class Derived:
    orders: pd.DataFrame      # one row per writable order
    lines: pd.DataFrame       # document lines of writable orders (delivery line included)
    issues: pd.DataFrame      # order_id, entity, code, detail
    customers: pd.DataFrame   # matched customers of writable orders
    products: pd.DataFrame    # matched products of writable orders' lines


@dataclass
class WriteResult:
    counterparties_created: int = 0
    contracts_created: int = 0
    products_created: int = 0
    orders_created: int = 0
    orders_updated: int = 0
    statuses_updated: int = 0
    reserves_released: int = 0
    unchanged: int = 0
    issues: list[dict] = field(default_factory=list)


def _issues(frame: pd.DataFrame, entity: str = "customer_order") -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=ISSUE_COLS)
    return frame.assign(entity=entity)[ISSUE_COLS]


def derive_customer_orders(store: Store, day: date, integration, resolved: Resolved) -> Derived:
    """One day partition's customer orders (what the per-day writer writes)."""
    return derive_customer_orders_days(store, [day], integration, resolved)


def derive_customer_orders_days(store: Store, days: Sequence[date], integration, resolved: Resolved) -> Derived:
    """The customer orders of every day in `days` at once (a backfill's range).

    Every order is derived on its own (issues, lines, totals, delivery line), so the result holds exactly
    the rows of deriving the days one by one.  Reserves are not derived here: the writer computes them
    against live free stock when it creates the orders (R-MAIN-3)."""
    days = sorted(set(days))
    with store.connect():  # one connection for the whole step: it makes no API call
        return _derive(store, days, integration, resolved)


_IN_DAYS = "integration=? AND day IN (SELECT UNNEST(?::DATE[]))"


def _with_columns(left: pd.DataFrame, right: pd.DataFrame, columns: list[str], how: str) -> pd.DataFrame:
    """`left.merge(right[order_id, line_no, *columns], on=[order_id, line_no], how=how)`; when both frames hold
    the same lines in the same order (the usual case: both sorted by order and line) the columns are taken
    by position instead of a hash join of a million lines."""
    keys = ["order_id", "line_no"]
    if len(left) == len(right) and all(
            np.array_equal(left[k].to_numpy("int64"), right[k].to_numpy("int64")) for k in keys):
        out = left.reset_index(drop=True)
        taken = right[columns].reset_index(drop=True)  # dtypes kept (Int64 stays Int64)
        for col in columns:
            out[col] = taken[col]
        return out
    return left.merge(right[[*keys, *columns]], on=keys, how=how)


def _derive(store: Store, days: list[date], integration, resolved: Resolved) -> Derived:
    params = [store.integration, days]
    # the document date (Bimp's local "YYYY-MM-DDTHH:MM:SS") formatted by DuckDB: per-row strftime in pandas
    # was a tenth of deriving a million orders
    orders = store.query("SELECT *, strftime(timezone(?, created_at), '%Y-%m-%dT%H:%M:%S') AS _doc_date "
                         f"FROM stg_orders WHERE {_IN_DAYS} ORDER BY created_at, order_id",
                         [integration.timezone, *params])
    lines = store.query("SELECT order_id, line_no, offer_id, sku, name, quantity, price_kop, line_discount_kop "
                        f"FROM stg_order_lines WHERE {_IN_DAYS} ORDER BY order_id, line_no", params)
    # a decision's detail is read only where it is an issue's text (a rejection): for a million orders the
    # "a new counterparty is created" texts alone took ~0.3 GB and nothing downstream reads them
    customers = store.query("SELECT * REPLACE (CASE WHEN code IS NOT NULL THEN detail END AS detail) "
                            f"FROM matched_customers WHERE {_IN_DAYS} ORDER BY order_id", params)
    products = store.query(f"SELECT * FROM matched_products WHERE {_IN_DAYS} ORDER BY order_id, line_no", params)
    issues: list[pd.DataFrame] = []

    # R-ORCH-4/5: a quarantined order is not written either; it gets its sync issue with the reason
    quarantined = store.query(
        "SELECT order_id, string_agg(entity || ': ' || reason, '; ' ORDER BY entity) AS detail FROM quarantine "
        f"WHERE {_IN_DAYS} AND order_id IS NOT NULL GROUP BY order_id ORDER BY order_id", params)
    issues.append(_issues(quarantined.assign(code=IssueCode.ORDER_INVALID.value)))

    # R-STAT-2: unmapped status → not created (retried when mapped)
    status_ids = orders["status_id"].dropna().unique()  # looked up once per distinct status
    orders["bimp_status_uuid"] = orders["status_id"].map({s: resolved.statuses.get(int(s)) for s in status_ids})
    unmapped = orders[orders["bimp_status_uuid"].isna()]
    issues.append(_issues(pd.DataFrame({
        "order_id": unmapped["order_id"], "code": IssueCode.STATUS_NOT_MAPPED.value,
        "detail": "KeyCRM status id " + unmapped["status_id"].astype(str) + " is not in 'statuses'"})))
    # R-CUR-1: the order's currency must be the contract's
    currencies = orders["currency"].dropna().unique()  # upper-cased once per distinct currency
    upper = orders["currency"].map({c: str(c).upper() for c in currencies})
    wrong_currency = orders[(upper != resolved.currency_code).to_numpy()]
    issues.append(_issues(pd.DataFrame({
        "order_id": wrong_currency["order_id"], "code": IssueCode.CURRENCY_MISMATCH.value,
        "detail": "order in " + wrong_currency["currency"] + ", contract in " + resolved.currency_code})))
    # customers and products: the rules' own rejections
    rejected_customers = customers[customers["code"].notna()]
    issues.append(_issues(rejected_customers[["order_id", "code", "detail"]]))
    rejected_lines = products[products["code"].notna()]
    partial = pd.DataFrame(columns=ISSUE_COLS)
    if len(rejected_lines):
        from keybimp_pipeline.rules.products import order_outcomes

        outcomes = order_outcomes(products)
        ok = outcomes["ok"].astype(bool)
        bad = outcomes[~ok]
        issues.append(_issues(bad[["order_id", "code", "detail"]]))
        # R-PROD-5: an order with only SOME mismatched lines is created without them; still reported
        partial = _issues(outcomes[ok & outcomes["code"].notna()][["order_id", "code", "detail"]])
    all_issues = pd.concat(issues, ignore_index=True)
    # an order without lines cannot become a customer order
    no_lines = orders[~orders["order_id"].isin(lines["order_id"])]
    if len(no_lines):
        all_issues = pd.concat([all_issues, _issues(pd.DataFrame({
            "order_id": no_lines["order_id"], "code": IssueCode.ORDER_INVALID.value,
            "detail": "the order has no product lines"}))], ignore_index=True)
    blocked = set(all_issues["order_id"])
    ok_orders = orders[~orders["order_id"].isin(blocked)].copy()

    ok_lines = _with_columns(lines, products, ["outcome", "nomenclature_uuid", "create_key"], how="left")
    ok_lines = ok_lines[ok_lines["order_id"].isin(ok_orders["order_id"]).to_numpy()].reset_index(drop=True)
    del lines, orders  # a million orders' frames: memory goes back before the line money is computed
    # totals: discounts spread over lines; the document must equal the KeyCRM order to the kopiyka
    ok_orders["expected_total_kop"] = ok_orders["grand_total_kop"] - ok_orders["shipping_price_kop"]
    doc_lines, totals = document_lines(
        ok_lines[["order_id", "line_no", "quantity", "price_kop", "line_discount_kop"]],
        ok_orders.rename(columns={"discount_kop": "order_discount_kop"})[
            ["order_id", "order_discount_kop", "expected_total_kop"]])
    mismatched = totals[totals["code"].notna()] if "code" in totals else totals.iloc[0:0]
    if len(mismatched):
        all_issues = pd.concat([all_issues, _issues(mismatched[["order_id", "code", "detail"]])], ignore_index=True)
        ok_orders = ok_orders[~ok_orders["order_id"].isin(mismatched["order_id"])]
    doc_lines = _with_columns(doc_lines, ok_lines, ["outcome", "nomenclature_uuid", "create_key", "sku", "name",
                                                    "offer_id"], how="inner")
    del ok_lines
    doc_lines = doc_lines[doc_lines["order_id"].isin(ok_orders["order_id"])]
    # R-PROD-5: a line whose name matches an item with another article is left out of a created order.
    # Money was checked on the whole order above (discounts spread over every line), so the document
    # holds exactly the KeyCRM lines it keeps; dropping before the check would fail every such order.
    doc_lines = doc_lines[doc_lines["outcome"] != "rejected"]
    partial = partial[partial["order_id"].isin(ok_orders["order_id"])]
    if len(partial):
        all_issues = pd.concat([all_issues, partial], ignore_index=True)
    doc_lines["is_service"] = False

    # R-PROD-7: the shipping cost becomes a line with the delivery service item
    shipped = ok_orders[ok_orders["shipping_price_kop"] > 0]
    if len(shipped) and resolved.delivery_service:
        delivery = pd.DataFrame({
            "order_id": shipped["order_id"].to_numpy(), "line_no": 10_000, "quantity": 1.0,
            "cost_kop": shipped["shipping_price_kop"].to_numpy(), "discount_kop": 0,
            "amount_kop": shipped["shipping_price_kop"].to_numpy(), "outcome": "matched",
            "nomenclature_uuid": resolved.delivery_service, "create_key": None, "sku": None,
            "name": "Доставка товару", "offer_id": pd.NA, "is_service": True})
        doc_lines = pd.concat([doc_lines, delivery], ignore_index=True)
    elif len(shipped):
        all_issues = pd.concat([all_issues, _issues(pd.DataFrame({
            "order_id": shipped["order_id"], "code": IssueCode.DELIVERY_SERVICE_MISSING.value,
            "detail": "shipping " + (shipped["shipping_price_kop"] / 100).map("{:.2f}".format) + " UAH"}))],
            ignore_index=True)
    ok_orders["cancelled"] = ok_orders["status_id"].isin(resolved.cancelled_status_ids)
    ok_orders["doc_date"] = ok_orders.pop("_doc_date")  # = format_bimp_datetime(local created_at)
    return Derived(orders=ok_orders.reset_index(drop=True),
                   lines=doc_lines.sort_values(["order_id", "line_no"]).reset_index(drop=True),
                   issues=all_issues.reset_index(drop=True),
                   customers=customers[customers["order_id"].isin(ok_orders["order_id"])],
                   products=products)


class OrderWriter:
    """Writes one day's derived customer orders.  Holds the integration's writer lock while it runs."""

    def __init__(self, store: Store, bimp, integration, resolved: Resolved, run_id: str | None = None):
        self.store = store
        self.bimp = bimp
        self.settings = integration
        self.resolved = resolved
        self.ledger = Ledger(store, run_id)
        self.result = WriteResult()
        self._contracts: dict[str, tuple[str, str | None]] = {}
        self._missing: dict[str, str] = {}  # Bimp uuid -> what it was: records found deleted this run

    # ---- catalogue records -------------------------------------------------------------------
    def _ensure(self, entity: str, create_key: str, data: dict, body: dict, external: str,
                find: Callable[..., list[dict]], create: Callable[[dict], str], counter: str,
                then: Callable[[str], None] | None = None) -> str:
        """A catalogue record the rules decided to create, created once: the ledger holds it; a pending row
        (a killed run) is first looked up in Bimp by the record's `integration` external id.  `then` runs
        on the record before the ledger marks it done (so a failure there is retried)."""
        entry = self.ledger.entries(entity, [create_key])
        state = entry["state"].iloc[0] if len(entry) else None
        if state == DONE:
            return entry["bimp_uuid"].iloc[0]
        body = {**body, "integration": {"system": KEYBIMP_SYSTEM, "externalId": external}}
        phash = payload_hash(body)
        uuid = None
        if state == PENDING:  # a killed run may have created it already
            found = find(system=KEYBIMP_SYSTEM, external_id=external)
            uuid = found[0]["uuid"] if found else None
        if uuid is None:
            self.ledger.pending(entity, create_key, phash, data)
            uuid = create(body)
            setattr(self.result, counter, getattr(self.result, counter) + 1)
        if then is not None:
            then(uuid)
        self.ledger.done(entity, create_key, uuid, phash, data)
        return uuid

    def _ensure_counterparty(self, create_key: str, data: dict) -> str:
        body = {"name": data.get("name") or "Покупець KeyCRM", "isCustomer": True, "isSupplier": False,
                "isSoleProprietor": False}
        if data.get("phone"):
            body["phoneNumber"] = data["phone"]
        if data.get("email"):
            body["email"] = data["email"]

        def save_buyer_id(uuid: str) -> None:
            if data.get("buyer_id") is None:
                return
            try:
                self.bimp.save_external_id(uuid, external_id_source(self.store.integration), str(data["buyer_id"]))
            except BimpBusinessError as err:
                # the buyer already has a counterparty (R-CUST-4: a changed phone splits the history);
                # the `id` search keeps finding the first one, as documented
                log.info("buyer %s keeps its first counterparty's external id: %s", data["buyer_id"], err.reason)

        external = f"{self.store.integration}:keycrm-buyer-{create_key}"  # per integration (R-CONN-4)
        return self._ensure("counterparty", create_key, data, body, external, self.bimp.counterparties,
                            self.bimp.create_counterparty, "counterparties_created", save_buyer_id)

    def _contract_for(self, counterparty_uuid: str) -> tuple[str | None, str | None]:
        """The counterparty's contract (uuid, currency code); created from the defaults when it has none."""
        if counterparty_uuid in self._contracts:
            return self._contracts[counterparty_uuid]
        r = self.resolved
        if self.settings.customers.fill_for_all and r.default_contract:
            found = self.bimp.contracts(counterparty_uuid=counterparty_uuid)
            chosen = [c for c in found if r.default_contract in (c.get("uuid"), c.get("name"))]
            result = (chosen[0]["uuid"], r.currency_code) if chosen else (r.default_contract, r.currency_code)
            self._contracts[counterparty_uuid] = result
            return result
        entry = self.ledger.entries("contract", [counterparty_uuid])
        if len(entry) and entry["state"].iloc[0] == DONE:
            result = (entry["bimp_uuid"].iloc[0], r.currency_code)
        else:
            found = self.bimp.contracts(counterparty_uuid=counterparty_uuid)
            if found:
                c = found[0]
                cur = c.get("currency")
                cur_uuid = cur.get("uuid") if isinstance(cur, dict) else cur
                if cur_uuid and cur_uuid == r.currency:
                    code = r.currency_code
                elif isinstance(cur, dict):
                    code = cur.get("code") or cur.get("iso") or cur.get("name")
                else:
                    code = None
                result = (c["uuid"], str(code or r.currency_code).upper())
                if len(entry):  # a killed run created it: reconciled, so later runs need not ask again
                    self.ledger.done("contract", counterparty_uuid, c["uuid"], entry["payload_hash"].iloc[0])
            else:
                body = {"name": "Договір з покупцем KeyCRM", "counterparty": counterparty_uuid,
                        "lineOfBusiness": r.line_of_business, "organization": r.organization,
                        "project": r.project, "currency": r.currency, "contractType": r.contract_type or 1}
                self.ledger.pending("contract", counterparty_uuid, payload_hash(body))
                uuid = self.bimp.create_contract(body)
                self.ledger.done("contract", counterparty_uuid, uuid, payload_hash(body))
                self.result.contracts_created += 1
                result = (uuid, r.currency_code)
        self._contracts[counterparty_uuid] = result
        return result

    def _ensure_product(self, create_key: str, data: dict) -> str:
        body = {"type": "goods", "name": data["name"] or data.get("sku") or f"KeyCRM {create_key}",
                "unitOfMeasurementUuid": self.resolved.unit}
        if data.get("sku"):
            body["article"] = data["sku"]
        if self.resolved.new_products_group:
            body["group"] = self.resolved.new_products_group
        external = f"{self.store.integration}:keycrm-offer-{create_key}"  # per integration (R-CONN-4)
        return self._ensure("product", create_key, data, body, external, self.bimp.nomenclature,
                            self.bimp.create_nomenclature, "products_created")

    # ---- documents ---------------------------------------------------------------------------
    def _find_order_by_number(self, doc_number: str, comment: str) -> str | None:
        """A killed run's order; the comment names the integration, so another shop's KC-<same id> is not it."""
        for doc in self.bimp.customer_orders():
            if doc.get("docNumber") == doc_number and doc.get("comment") == comment:
                return doc["uuid"]
        return None

    def write(self, derived: Derived) -> WriteResult:
        r = self.resolved
        orders, lines = derived.orders, derived.lines.copy()
        if orders.empty:
            return self.result
        customers = derived.customers.set_index("order_id")
        buyers = self.store.query("SELECT order_id, buyer_id, full_name, phone, email, placed_at FROM stg_buyers "
                                  "WHERE integration=? AND order_id IN (SELECT UNNEST(?))",
                                  [self.store.integration, orders["order_id"].tolist()])
        # 1. counterparties the rules decided to create (one per create_key, the first order's data: R-CUST-8)
        cp_for_order: dict[int, str] = {}
        for order_id, row in customers.iterrows():
            if row["outcome"] == "default":
                cp_for_order[order_id] = r.default_customer
            elif row["outcome"] == "matched":
                cp_for_order[order_id] = row["counterparty_uuid"]
        new = counterparties_to_create(customers.reset_index(), buyers)
        uuid_for_key: dict[str, str] = {}
        for row in new.itertuples(index=False):
            uuid_for_key[row.create_key] = self._ensure_counterparty(str(row.create_key), {
                "name": row.name, "phone": row.phone, "email": row.email,
                "buyer_id": None if pd.isna(row.buyer_id) else int(row.buyer_id)})
        creates = customers[customers["outcome"] == "create"]
        for order_id, key in creates["create_key"].items():
            cp_for_order[order_id] = uuid_for_key[key]
        # 2. items the rules decided to create (R-PROD-3/4: named as the line was at creation)
        to_create = lines[lines["outcome"] == "create"].drop_duplicates("create_key")
        item_for_key: dict[str, str] = {}
        for _, line in to_create.iterrows():
            item_for_key[line["create_key"]] = self._ensure_product(str(line["create_key"]), {
                "name": line["name"], "sku": line["sku"],
                "offer_id": None if pd.isna(line["offer_id"]) else int(line["offer_id"])})
        created_mask = lines["outcome"] == "create"
        lines.loc[created_mask, "nomenclature_uuid"] = lines.loc[created_mask, "create_key"].map(item_for_key)

        # 3. ledger state of the day's orders.  Reserves against live free stock (R-MAIN-3) for the goods of
        #    new orders and, on reload (R-MAIN-2), for what a rewritten order's kept reserve does not cover
        #    (an added line, a raised quantity); all of them compete for the stock earliest placed first.
        known = self.ledger.entries("customer_order", orders["order_id"].astype(str))
        new_ids = set(orders["order_id"]) - {int(c) for c in known.index[known["state"] == DONE]}
        lines_of = {int(k): v for k, v in lines.groupby("order_id", sort=False)}
        reloads = self._reloads(orders, lines_of, known, cp_for_order)
        kept_of = reloads.set_index(["order_id", "line_no"])["kept"].to_dict()
        new_goods = lines[(~lines["is_service"]) & lines["order_id"].isin(new_ids)]
        goods = pd.concat([new_goods, reloads.loc[~reloads["is_service"]].assign(
            quantity=reloads["quantity"] - reloads["kept"])], ignore_index=True)
        placed = orders.set_index("order_id")["created_at"]
        wanted = goods.loc[goods["quantity"] > 0, "nomenclature_uuid"]
        free = self._free_stock(wanted.dropna().unique().tolist())
        # an item without a stock row may be one the ledger names that Bimp lost: its orders are told so
        # (below), not that the warehouse is short; they stay out of the reserve computation
        lost = self._lost_items(set(wanted.dropna()) - set(free["nomenclature_uuid"]))
        goods = goods[~goods["order_id"].isin(goods.loc[goods["nomenclature_uuid"].isin(lost), "order_id"])]
        reserve_in = goods.assign(placed_at=goods["order_id"].map(placed))[
            ["order_id", "line_no", "nomenclature_uuid", "quantity", "placed_at", "is_service"]]
        reserved, rejected = compute_reserves(reserve_in, free, self.settings.main.reserve)
        reserve_of = reserved.set_index(["order_id", "line_no"])["reserve"].to_dict()
        rejected_ids = set(rejected["order_id"])
        for _, rej in rejected.iterrows():
            self.result.issues.append({"order_id": int(rej["order_id"]), "entity": "customer_order",
                                       "code": rej["code"], "detail": rej["detail"]})

        # 4. customer orders in placement order; a rewrite that `full` mode cannot reserve waits (the status
        #    still follows), like a new order that is not created
        for _, order in orders.iterrows():
            order_id = int(order["order_id"])
            if order_id in rejected_ids and order_id in new_ids:
                continue
            counterparty = cp_for_order.get(order_id)
            if counterparty is None:
                continue
            order_lines = lines_of.get(order_id, lines.iloc[0:0])
            entry = known.loc[str(order_id)] if str(order_id) in known.index else None
            refs = self._references(counterparty, None, order_lines, entry)
            try:
                if self._known_missing(order_id, refs):
                    continue
                contract, contract_currency = self._contract_for(counterparty)
                refs = self._references(counterparty, contract, order_lines, entry)
                if self._known_missing(order_id, refs):
                    continue
                if contract_currency and contract_currency != str(order["currency"]).upper():
                    self.result.issues.append({
                        "order_id": order_id, "entity": "customer_order", "code": IssueCode.CURRENCY_MISMATCH.value,
                        "detail": f"order in {order['currency']}, contract in {contract_currency}"})
                    continue
                self._write_order(order, order_lines, counterparty, contract, entry, reserve_of, kept_of,
                                  may_reload=order_id not in rejected_ids)
            except BimpBusinessError as err:  # e.g. a closed period: data, not a fault (R-ORCH-5); retried
                code = {"period_closed": IssueCode.PERIOD_CLOSED,
                        "reserve_exceeds_available": IssueCode.RESERVE_INSUFFICIENT}.get(err.reason,
                                                                                         IssueCode.BIMP_REJECTED)
                self.result.issues.append({"order_id": order_id, "entity": "customer_order", "code": code.value,
                                           "detail": f"Bimp: {err.message}"[:300]})
            except (BimpValidationError, BimpNotFound) as err:
                # a record the ledger points at was deleted in Bimp (or the company reset): that order's
                # issue, not every run's failure (R-ORCH-5).  Anything else Bimp refuses as malformed is ours.
                gone = self._confirm_missing(refs)
                if not gone:
                    raise
                # the issue says it (and the summary counts it): no console line per lost record
                log.info("order %s: %s no longer in Bimp (%s)", order_id, ", ".join(gone), err.message)
                self._missing_issue(order_id, gone)
        return self.result

    def _references(self, counterparty: str, contract: str | None, lines: pd.DataFrame,
                    entry: pd.Series | None) -> dict[str, str]:
        """The Bimp records an order's write names, by uuid: what each is (for the issue's detail)."""
        refs = {counterparty: "counterparty"}
        if contract:
            refs[contract] = "contract"
        for item in lines.loc[~lines["is_service"].astype(bool), "nomenclature_uuid"].dropna().unique():
            refs[str(item)] = "item"
        if entry is not None and entry["state"] == DONE and entry["bimp_uuid"]:
            refs[str(entry["bimp_uuid"])] = "customer order"
        return refs

    def _known_missing(self, order_id: int, refs: dict[str, str]) -> bool:
        """True (and the order's issue recorded) when a record it needs was found deleted this run: no call."""
        gone = [f"{kind} {uuid}" for uuid, kind in refs.items() if uuid in self._missing]
        if gone:
            self._missing_issue(order_id, gone)
        return bool(gone)

    def _lost_items(self, unstocked: set[str]) -> set[str]:
        """Of the items the stock read did not return, those Bimp does not have at all (one list call)."""
        if not unstocked:
            return set()
        present = {str(i.get("uuid")) for i in self.bimp.nomenclature(uuids=sorted(unstocked))}
        lost = unstocked - present
        self._missing.update(dict.fromkeys(lost, "item"))
        return lost

    def _confirm_missing(self, refs: dict[str, str]) -> list[str]:
        """Which of `refs` Bimp no longer has (read by uuid; items in one list call); remembered for the run."""
        readers = {"counterparty": self.bimp.counterparty, "contract": self.bimp.contract,
                   "customer order": self.bimp.customer_order}
        items = [u for u, kind in refs.items() if kind == "item"]
        present_items = {str(i.get("uuid")) for i in self.bimp.nomenclature(uuids=items)} if items else set()
        for uuid, kind in refs.items():
            exists = uuid in present_items if kind == "item" else readers[kind](uuid) is not None
            if not exists:
                self._missing[uuid] = kind
        return [f"{kind} {uuid}" for uuid, kind in refs.items() if uuid in self._missing]

    def _missing_issue(self, order_id: int, gone: list[str]) -> None:
        self.result.issues.append({"order_id": order_id, "entity": "customer_order",
                                   "code": IssueCode.BIMP_RECORD_MISSING.value,
                                   "detail": ("not in Bimp any more: " + ", ".join(gone))[:300]})

    def _reloads(self, orders: pd.DataFrame, lines_of: dict[int, pd.DataFrame], known: pd.DataFrame,
                 cp_for_order: dict[int, str]) -> pd.DataFrame:
        """Lines of the transferred, not cancelled orders this run rewrites (R-MAIN-2), each with the reserve
        it keeps (``kept``): the order's reserve per item as last written (none once released), spread over
        the item's lines in line order and capped at each line's quantity.  The rest is reserved anew."""
        cols = ["order_id", "line_no", "nomenclature_uuid", "quantity", "is_service", "kept"]
        none = pd.DataFrame({"order_id": pd.Series(dtype="int64"), "line_no": pd.Series(dtype="int64"),
                             "nomenclature_uuid": pd.Series(dtype=object), "quantity": pd.Series(dtype=float),
                             "is_service": pd.Series(dtype=bool), "kept": pd.Series(dtype=float)})
        done = known[known["state"] == DONE]
        if not self.settings.main.reload_orders or done.empty:
            return none
        parts = []
        for _, order in orders[orders["order_id"].astype(str).isin(done.index) & ~orders["cancelled"]].iterrows():
            order_id = int(order["order_id"])
            counterparty = cp_for_order.get(order_id)
            if counterparty is None or order_id not in lines_of:
                continue
            contract, currency = self._contract_for(counterparty)
            if currency and currency != str(order["currency"]).upper():
                continue
            entry = done.loc[str(order_id)]
            if entry["payload_hash"] == payload_hash(self._content(lines_of[order_id], counterparty, contract)):
                continue
            detail = _detail(entry["detail"])
            held = {} if detail.get("released") else detail.get("reserves") or {}
            order_lines = lines_of[order_id][cols[:-1]]
            parts.append(order_lines.assign(
                held=order_lines["nomenclature_uuid"].map(lambda n, h=held: float(h.get(n) or 0.0))))
        if not parts:
            return none
        frame = pd.concat(parts, ignore_index=True)
        frame["quantity"] = frame["quantity"].astype(float)
        before = frame.groupby(["order_id", "nomenclature_uuid"], sort=False)["quantity"].cumsum() - frame["quantity"]
        frame["kept"] = (frame["held"] - before).clip(lower=0.0).clip(upper=frame["quantity"])
        frame.loc[frame["is_service"].astype(bool), "kept"] = 0.0
        return frame[cols]

    def _free_stock(self, items: list[str]) -> pd.DataFrame:
        """Free stock of the involved items only, on the orders' warehouse: nomenclature/api-readStocks takes
        the item and warehouse filters (inventory/api-readList would page through the whole warehouse)."""
        if not items or self.settings.main.reserve == "off":
            return pd.DataFrame({"nomenclature_uuid": pd.Series(dtype=str), "free": pd.Series(dtype=float)})
        rows = self.bimp.stocks(sorted(items), [self.resolved.warehouse])
        frame = pd.DataFrame(rows, columns=["nomenclatureUuid", "stock"])
        frame = frame[frame["nomenclatureUuid"].isin(items)]
        return pd.DataFrame({"nomenclature_uuid": frame["nomenclatureUuid"].astype(str),
                             "free": frame["stock"].astype(float)})

    def _content(self, lines: pd.DataFrame, counterparty: str, contract: str | None) -> dict:
        """What a customer order says, as hashed into the ledger: a change rewrites it on reload (R-MAIN-2)."""
        return {
            "buyer": counterparty, "contract": contract, "warehouse": self.resolved.warehouse,
            "products": [{"nomenclature": ln["nomenclature_uuid"], "count": float(ln["quantity"]),
                          "cost": _money(ln["cost_kop"]), "discount": _money(ln["discount_kop"])}
                         for _, ln in lines.iterrows()],
        }

    def _write_order(self, order: pd.Series, lines: pd.DataFrame, counterparty: str, contract: str | None,
                     entry: pd.Series | None, reserve_of: dict, kept_of: dict, *, may_reload: bool = True) -> None:
        r = self.resolved
        order_id = int(order["order_id"])
        cancelled = bool(order["cancelled"])
        content = self._content(lines, counterparty, contract)
        chash = payload_hash(content)
        status = order["bimp_status_uuid"]
        doc_number = f"KC-{order_id}"
        if entry is not None and entry["state"] == DONE:
            detail = _detail(entry["detail"])
            uuid = entry["bimp_uuid"]
            was_released = bool(detail.get("released"))
            changed = entry["payload_hash"] != chash
            if cancelled and not was_released:  # R-MAIN-4: release the reserve
                body = {"status": status, "products": [dict(p, reserve=0) for p in content["products"]]}
                self.bimp.update_customer_order(uuid, body)
                self.ledger.done("customer_order", order_id, uuid, chash,
                                 dict(detail, status=status, released=True))
                self.result.reserves_released += 1
                return
            if changed and self.settings.main.reload_orders and may_reload:  # R-MAIN-2, reserves R-MAIN-3
                products, reserves = [], {}
                for p, line_no in zip(content["products"], lines["line_no"], strict=True):
                    key = (order_id, line_no)
                    reserve = 0.0 if cancelled else float(kept_of.get(key, 0.0)) + float(reserve_of.get(key, 0.0))
                    reserves[p["nomenclature"]] = reserves.get(p["nomenclature"], 0.0) + reserve
                    products.append(dict(p, reserve=reserve))
                self.bimp.update_customer_order(uuid, {"status": status, "products": products})
                self.ledger.done("customer_order", order_id, uuid, chash,
                                 dict(detail, status=status, reserves=reserves, released=cancelled))
                self.result.orders_updated += 1
                return
            if detail.get("status") != status:  # R-STAT-1: the mapped status on every later sync
                self.bimp.update_customer_order_status(uuid, status)
                self.ledger.done("customer_order", order_id, uuid, entry["payload_hash"], dict(detail, status=status))
                self.result.statuses_updated += 1
                return
            self.result.unchanged += 1
            return
        products = []
        reserves: dict[str, float] = {}
        for p, line_no in zip(content["products"], lines["line_no"], strict=True):
            reserve = 0.0 if cancelled else float(reserve_of.get((order_id, line_no), 0.0))
            reserves[p["nomenclature"]] = reserves.get(p["nomenclature"], 0.0) + reserve
            products.append(dict(p, reserve=reserve))
        body = {"buyer": counterparty, "detailedWarehouses": False, "organization": r.organization,
                "contract": contract, "warehouse": r.warehouse, "lineOfBusiness": r.line_of_business,
                "project": r.project, "status": status, "date": order["doc_date"], "docNumber": doc_number,
                "internalNumber": str(order_id), "comment": f"KeyCRM order {order_id} ({self.store.integration})",
                "products": products}
        uuid = None
        if entry is not None and entry["state"] == PENDING:
            uuid = self._find_order_by_number(doc_number, body["comment"])
        if uuid is None:
            self.ledger.pending("customer_order", order_id, chash, {"status": status})
            uuid = self.bimp.create_customer_order(body)
            self.result.orders_created += 1
        self.ledger.done("customer_order", order_id, uuid, chash,
                         {"status": status, "reserves": reserves, "released": cancelled,
                          "doc_number": doc_number, "counterparty": counterparty, "contract": contract})


def _detail(raw: object) -> dict:
    """A ledger row's detail (JSON text or already a dict)."""
    return json.loads(raw) if isinstance(raw, str) else dict(raw or {})


def write_customer_orders(store: Store, day: date, integration, resolved: Resolved, bimp, run_id: str | None = None
                          ) -> tuple[Derived, WriteResult, pd.DataFrame]:
    """Derive and write one day's customer orders under the integration's writer lock.

    Matching is repeated inside the lock (it is cheap and reads the ledger), so a counterparty or item
    that a concurrent run of the same integration created a moment ago is found instead of created twice.
    Returns the derivation, the write result and the day's customer-order sync issues as stored.
    """
    from keybimp_pipeline.sync.issues import save_issues
    from keybimp_pipeline.sync.match import match_day

    with store.writer():
        match_day(store, day, integration)
        derived = derive_customer_orders(store, day, integration, resolved)
        result = OrderWriter(store, bimp, integration, resolved, run_id).write(derived)
    issues = pd.concat([derived.issues, pd.DataFrame(result.issues, columns=ISSUE_COLS)], ignore_index=True)
    saved = save_issues(store, day, ["customer_order"], issues)
    return derived, result, saved
