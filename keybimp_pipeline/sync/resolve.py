"""Bimp objects named in the settings (by name or uuid) resolved to uuids against the reference snapshot."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from keybimp_pipeline.settings import SettingsError, resolve_reference
from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.sync import reference


@dataclass
class Resolved:
    organization: str | None = None
    warehouse: str | None = None
    project: str | None = None
    line_of_business: str | None = None
    currency: str | None = None
    currency_code: str = "UAH"
    unit: str | None = None
    service_unit: str | None = None
    new_products_group: str | None = None
    delivery_service: str | None = None
    default_customer: str | None = None
    default_contract: str | None = None
    cash_desk: str | None = None
    author: str | None = None
    contract_type: object | None = None
    refund_expense_item: str | None = None
    statuses: dict[int, str] = field(default_factory=dict)   # KeyCRM status id -> Bimp order status uuid
    cancelled_status_ids: set[int] = field(default_factory=set)  # KeyCRM statuses in the cancelled group
    status_alias: dict[str, int] = field(default_factory=dict)  # KeyCRM alias/name/id -> id
    payment_accounts: dict[int, str] = field(default_factory=dict)  # KeyCRM method id -> Bimp money account
    warehouses: dict[str, int] = field(default_factory=dict)  # Bimp warehouse uuid -> KeyCRM warehouse id
    problems: list[str] = field(default_factory=list)


def _candidates(store: Store, kind: str, cache: dict) -> pd.DataFrame:
    frame = reference.load(store, "bimp", kind, cache)
    return pd.DataFrame({"uuid": frame["id"], "name": frame["name"]})


def _main(store: Store, kind: str, cache: dict) -> str | None:
    frame = reference.load(store, "bimp", kind, cache)
    if frame.empty:
        return None
    mains = [i for i, e in zip(frame["id"], frame["extra"], strict=True) if json.loads(e).get("main")]
    return mains[0] if mains else (frame["id"].iloc[0] if len(frame) == 1 else None)


CANCELLED_GROUP = 6  # KeyCRM's status group "canceled" (R-MAIN-4)


def _group(value: object) -> int | None:
    """A status group id as stored in the reference table ("6", "6.0", 6 or null: the frame may float it)."""
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return None


def resolve(store: Store, integration, index: int = 0) -> Resolved:
    """Every reference the rules and writers need; problems are collected, not raised (check reports all)."""
    out = Resolved()
    base = f"integrations[{index}]"
    cache: dict = {}  # the reference snapshot, read once
    with store.connect():
        cache["bimp"] = reference.load_all(store, "bimp")
        cache["keycrm"] = reference.load_all(store, "keycrm")

    def ref(value: str | None, kind: str, path: str) -> str | None:
        if value is None:
            return None
        try:
            return resolve_reference(str(value), _candidates(store, kind, cache), path=f"{base}.{path}", kind=kind)
        except SettingsError as err:
            out.problems.extend(err.messages)
            return None

    cust = integration.customers
    defaults = cust.contract_defaults
    out.organization = ref(defaults.organization, "organization", "customers.contract_defaults.organization") \
        or _main(store, "organization", cache)
    out.warehouse = ref(integration.main.warehouse, "warehouse", "main.warehouse") or _main(store, "warehouse", cache)
    out.project = ref(defaults.project, "project", "customers.contract_defaults.project") or _main(store, "project", cache)
    out.line_of_business = ref(defaults.line_of_business, "line_of_business",
                               "customers.contract_defaults.line_of_business") or _main(store, "line_of_business", cache)
    currencies = reference.load(store, "bimp", "currency", cache)
    code = (defaults.currency or "UAH").upper()
    match = currencies[(currencies["alias"].str.upper() == code) | (currencies["name"].str.upper() == code)
                       | (currencies["id"] == defaults.currency)]
    out.currency = match["id"].iloc[0] if len(match) else None
    out.currency_code = match["alias"].iloc[0].upper() if len(match) and match["alias"].iloc[0] else code
    if out.currency is None:
        out.problems.append(f"{base}.customers.contract_defaults.currency: '{defaults.currency}' not found in Bimp")
    units = _candidates(store, "unit", cache)
    out.unit = ref(integration.products.unit, "unit", "products.unit")
    service = units[units["name"].str.lower().isin(["послуга", "послуги", "service"])]
    out.service_unit = service["uuid"].iloc[0] if len(service) else out.unit
    out.new_products_group = ref(integration.products.new_products_group, "nomenclature_group",
                                 "products.new_products_group")
    out.delivery_service = ref(integration.products.delivery_service, "nomenclature", "products.delivery_service")
    out.default_customer = ref(cust.default_customer, "counterparty", "customers.default_customer")
    out.default_contract = cust.default_contract  # a contract uuid or name; resolved by the writer if needed
    out.cash_desk = ref(defaults.cash_desk, "cash_registry", "customers.contract_defaults.cash_desk")
    users = reference.load(store, "bimp", "user", cache)
    out.author = users["id"].iloc[0] if len(users) else None
    types = reference.load(store, "bimp", "contract_type", cache)
    if len(types):
        out.contract_type = json.loads(types["extra"].iloc[0]).get("code", 1)
    out.refund_expense_item = ref(integration.returns.money.expense_item, "expense_item",
                                  "returns.money.expense_item")

    keycrm_statuses = reference.load(store, "keycrm", "status", cache)
    for _, row in keycrm_statuses.iterrows():
        for key in (row["id"], row["alias"], row["name"]):
            if key is not None:
                out.status_alias[str(key)] = int(row["id"])
        if _group(row["parent"]) == CANCELLED_GROUP:
            out.cancelled_status_ids.add(int(row["id"]))
    for crm_status, bimp_status in integration.statuses.items():
        status_id = out.status_alias.get(str(crm_status))
        if status_id is None:
            out.problems.append(f"{base}.statuses.{crm_status}: no such KeyCRM status")
            continue
        uuid = ref(bimp_status, "order_status", f"statuses.{crm_status}")
        if uuid:
            out.statuses[status_id] = uuid

    methods = reference.load(store, "keycrm", "payment_method", cache)
    accounts = pd.concat([_candidates(store, "cash_registry", cache), _candidates(store, "bank_account", cache)],
                         ignore_index=True)
    for crm_method, account in integration.payments.methods.items():
        hit = methods[(methods["id"] == str(crm_method)) | (methods["name"] == str(crm_method))
                      | (methods["alias"] == str(crm_method))]
        if hit.empty:
            out.problems.append(f"{base}.payments.methods.{crm_method}: no such KeyCRM payment method")
            continue
        try:
            out.payment_accounts[int(hit["id"].iloc[0])] = resolve_reference(
                str(account), accounts, path=f"{base}.payments.methods.{crm_method}", kind="money account")
        except SettingsError as err:
            out.problems.extend(err.messages)
    for bimp_wh, crm_wh in integration.stocks.warehouses.items():
        uuid = ref(bimp_wh, "warehouse", f"stocks.warehouses.{bimp_wh}")
        if uuid:
            out.warehouses[uuid] = int(crm_wh)
    return out
