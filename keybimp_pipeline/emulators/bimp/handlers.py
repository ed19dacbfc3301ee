"""Company-scoped Bimp endpoints: body validation, then the business rules in store.py.

Each handler takes (company, body, now) and returns the ``data`` of the ``{success, data}`` envelope, or
raises ApiError.  Field names follow bimp-openapi.json exactly (typos included).  Every malformed input
(missing field, wrong type, unknown reference) is a 400 with ``details = "validation: <field>"`` — never a
500 — because the pipeline's client types errors from that string.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from keybimp_pipeline.emulators.bimp.store import (
    ApiError,
    Company,
    business,
    digits,
    fmt_dt,
    new_uuid,
    not_found,
    parse_dt,
    validation,
)

Handler = Callable[[Company, dict, datetime], Any]
HANDLERS: dict[str, Handler] = {}


def op(path: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        HANDLERS["/org2/" + path] = fn
        return fn
    return deco


# --------------------------------------------------------------------------- field readers
def _given(b: dict, k: str, required: bool, path: str | None) -> Any:
    """``b[k]``, None when absent; a missing required field is a 400 naming it."""
    v = b.get(k)
    if v is None and required:
        raise validation(path or k, "required")
    return v


def s(b: dict, k: str, required: bool = False, path: str | None = None) -> str | None:
    v = _given(b, k, required, path)
    if v is not None and (not isinstance(v, str) or (required and not v.strip())):
        raise validation(path or k, "must be a non-empty string" if required else "must be a string")
    return v


def n(b: dict, k: str, required: bool = False, path: str | None = None, minimum: Any = None) -> Any:
    v = _given(b, k, required, path)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, Decimal)) or (isinstance(v, Decimal) and not v.is_finite()):
        raise validation(path or k, "must be a number")
    if minimum is not None and v < minimum:
        raise validation(path or k, f"must be >= {minimum}")
    return v


def bl(b: dict, k: str, required: bool = False, default: bool | None = None, path: str | None = None) -> Any:
    v = _given(b, k, required and default is None, path)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise validation(path or k, "must be a boolean")
    return v


def obj(b: dict, k: str, required: bool = False, path: str | None = None) -> dict | None:
    v = _given(b, k, required, path)
    if v is not None and not isinstance(v, dict):
        raise validation(path or k, "must be an object")
    return v


def lst(b: dict, k: str, required: bool = False, path: str | None = None) -> list | None:
    v = _given(b, k, required, path)
    if v is not None and not isinstance(v, list):
        raise validation(path or k, "must be an array")
    return v


def str_list(b: dict, k: str) -> list[str] | None:
    """An array of strings; a scalar string is accepted too (S4 sent a scalar warehouseUuid)."""
    v = b.get(k)
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise validation(k, "must be an array of strings")
    return v


def ref_obj(b: dict, k: str, required: bool = False) -> str | None:
    """A nested ``{uuid}`` reference (sales invoice style)."""
    o = obj(b, k, required)
    if o is None:
        return None
    return s(o, "uuid", True, f"{k}.uuid")


def pagination(b: dict, required: bool = True) -> tuple[int, int]:
    p = b.get("pagination")
    if p is None:
        if required:
            raise validation("pagination", "required")
        return 0, 10 ** 9
    if not isinstance(p, dict):
        raise validation("pagination", "must be an object")
    off = p.get("offset", 0)
    cnt = p.get("count", 10)
    for name, v in (("offset", off), ("count", cnt)):
        if isinstance(v, bool) or not isinstance(v, (int, Decimal)) or v < 0 or v != int(v):
            raise validation(f"pagination.{name}", "must be a non-negative integer")
    if cnt > 100:
        raise validation("pagination.count", "must be <= 100")
    return int(off), int(cnt)


def page(items: list, b: dict, required: bool = True) -> list:
    off, cnt = pagination(b, required)
    return items[off:off + cnt]


def doc_date(b: dict, now: datetime, key: str = "date") -> datetime:
    v = b.get(key)
    if v is None:
        return now
    try:
        dt = parse_dt(v)
    except (ValueError, TypeError):
        raise validation(key, "must be an ISO date-time") from None
    return dt or now


def period(v: Any, key: str) -> tuple[datetime | None, datetime | None]:
    """A ``periodable``: null, one instant, or a 2-tuple with either end null."""
    try:
        if v is None:
            return None, None
        if isinstance(v, str):
            return None, parse_dt(v)
        if isinstance(v, list) and len(v) == 2:
            return parse_dt(v[0]), parse_dt(v[1])
    except (ValueError, TypeError):
        pass
    raise validation(key, "must be null, a date-time or a [from, to] pair")


def in_period(date: Any, rng: tuple[datetime | None, datetime | None]) -> bool:
    lo, hi = rng
    if lo is None and hi is None:
        return True
    try:
        d = parse_dt(date)
    except (ValueError, TypeError):
        return False
    if d is None:
        return False
    return (lo is None or d >= lo) and (hi is None or d <= hi)


def need(co: Company, kind: str, key: str | None, field: str, required: bool = False) -> str | None:
    """Check a reference exists in a reference book or collection; 400 names the field when not."""
    if key is None:
        if required:
            raise validation(field, "required")
        return None
    found = co.ref(kind, key) if kind in co.ref_index else co.c[kind].get(key)
    if found is None:
        raise validation(field, f"unknown {kind} uuid")
    return key


def existing(co: Company, b: dict, kind: str, label: str) -> dict:
    """The record of collection ``kind`` that ``b["uuid"]`` names (an update or cancel): 404 when unknown."""
    rec = co.c[kind].get(s(b, "uuid", True))
    if rec is None:
        raise not_found(label)
    return rec


# --------------------------------------------------------------------------- reference books
def _ref_list(kind: str, paginated: bool = True, main_filter: bool = False) -> Handler:
    def handler(co: Company, b: dict, now: datetime) -> Any:
        items = co.refs[kind]
        main = bl(b, "main") if main_filter else None
        if main is not None:
            items = [i for i in items if bool(i.get("main")) == main]
        return page(items, b, required=paginated)
    return handler


for _path, _kind, _pag, _main in [
    ("organization/api-readList", "organizations", True, False),
    ("warehouse/api-readList", "warehouses", True, True),
    ("project/api-readList", "projects", True, False),
    ("lineOfBusiness/api-readList", "linesOfBusiness", True, False),
    ("currency/api-readList", "currencies", True, False),
    ("cashRegistry/api-readList", "cashRegistries", True, False),
    ("bankAccounts/api-readList", "bankAccounts", True, False),
    ("unitsOfMeasurment/api-readList", "unitsOfMeasurement", True, False),
    ("vat/api-readList", "vat", False, False),
    ("expenseItems/api-readList", "expenseItems", False, False),
    ("chartOfAccount/api-readList", "chartOfAccounts", False, False),
    ("user/api-readList", "users", True, False),
    ("employee/api-readList", "employees", True, False),
    ("invoiceForCustomerPayment/api-readStatuses", "orderStatuses", False, False),
    ("contract/api-readTypes", "contractTypes", False, False),
    ("contract/api-readStatuses", "contractStatuses", False, False),
]:
    HANDLERS["/org2/" + _path] = _ref_list(_kind, _pag, _main)


def _read_one(kind: str) -> Handler:
    """``api-read {uuid}`` of a collection: the record, or null for an unknown uuid."""
    def handler(co: Company, b: dict, now: datetime) -> Any:
        return co.c[kind].get(s(b, "uuid", True))
    return handler


for _path, _kind in [
    ("nomenclature-group/api-read", "nomenclatureGroups"),
    ("counterparty/api-read", "counterparties"),
    ("contract/api-read", "contracts"),
    ("priceList/api-read", "priceLists"),
    ("invoiceForCustomerPayment/api-read", "customerOrders"),
    ("salesInvoice/api-read", "salesInvoices"),
    ("customerPayment/api-read", "customerPayments"),
    ("customer-inventories-return/api-read", "customerReturns"),
    ("refundToCustomer/api-read", "refunds"),
]:
    HANDLERS["/org2/" + _path] = _read_one(_kind)


@op("customerPayment/api-readStatuses")
def payment_statuses(co: Company, b: dict, now: datetime) -> Any:
    name = s(b, "name")
    items = co.refs["paymentStatuses"]
    if name:
        items = [i for i in items if name.casefold() in str(i.get("name", "")).casefold()]
    return page(items, b)


# --------------------------------------------------------------------------- nomenclature groups
@op("nomenclature-group/api-readList")
def group_list(co: Company, b: dict, now: datetime) -> Any:
    wanted = str_list(b, "uuid")
    items = co.c["nomenclatureGroups"].values()
    if wanted is not None:
        ws = set(wanted)
        return [g for g in items if g["uuid"] in ws]
    return list(items)


@op("nomenclature-group/api-create")
def group_create(co: Company, b: dict, now: datetime) -> Any:
    name = s(b, "name", True)
    parent = s(b, "parentuuid")
    need(co, "nomenclatureGroups", parent, "parentuuid")
    g = {"uuid": new_uuid(), "name": name, "description": s(b, "description") or "", "parentuuid": parent}
    co.c["nomenclatureGroups"].add(g)
    return {"uuid": g["uuid"]}


# --------------------------------------------------------------------------- nomenclature
def _integration(b: dict, required: bool = False) -> tuple[str, str] | None:
    integ = obj(b, "integration", required)
    if integ is None:
        return None
    return (s(integ, "system", True, "integration.system") or "",
            s(integ, "externalId", True, "integration.externalId") or "")


@op("nomenclature/api-readList")
def nom_list(co: Company, b: dict, now: datetime) -> Any:
    noms = co.c["nomenclature"]
    off, cnt = pagination(b)
    uuids = str_list(b, "nomenclatureUuids")
    article, name, name_contains = s(b, "article"), s(b, "name"), s(b, "nameContains")
    code, parent = s(b, "code"), s(b, "parentUuid")
    groups = str_list(b, "nomenclatureGroupUuids")
    integ = _integration(b)
    candidates: list[dict] | None = None
    if integ is not None:
        u = co.nom_by_integration.get(integ)
        candidates = [noms.items[u]] if u else []
    elif uuids is not None:
        candidates = [noms.items[u] for u in uuids if u in noms.items]
    elif article is not None:
        candidates = [noms.items[u] for u in co.nom_by_article.get(article, [])]
    elif name is not None:
        candidates = [noms.items[u] for u in co.nom_by_name.get(name.casefold(), [])]
    if candidates is None and not (name_contains or code or parent or groups):
        return noms.page(off, cnt)
    src = candidates if candidates is not None else noms.values()
    gset = set(groups) if groups is not None else None
    out = []
    for it in src:
        if article is not None and it.get("article") != article:
            continue
        if name is not None and str(it.get("name", "")).casefold() != name.casefold():
            continue
        if name_contains and name_contains.casefold() not in str(it.get("name", "")).casefold():
            continue
        if code and it.get("code") != code:
            continue
        if parent and it.get("parent") != parent:
            continue
        if gset is not None and it.get("group") not in gset:
            continue
        out.append(it)
    return out[off:off + cnt]


def _measurements(b: dict) -> dict:
    m = obj(b, "measurements")
    if m is None:
        return {"height": 0, "length": 0, "width": 0, "weight": 0}
    return {k: n(m, k, path=f"measurements.{k}") or 0 for k in ("height", "length", "width", "weight")}


@op("nomenclature/api-create")
def nom_create(co: Company, b: dict, now: datetime) -> Any:
    kind = s(b, "type", True)
    if kind not in ("goods", "service"):
        raise validation("type", "must be 'goods' or 'service'")
    name = s(b, "name", True)
    unit = need(co, "unitsOfMeasurement", s(b, "unitOfMeasurementUuid", True), "unitOfMeasurementUuid", True)
    chart = None
    if kind == "service":
        chart = need(co, "chartOfAccounts", s(b, "chartOfAccountUuid", True), "chartOfAccountUuid", True)
    group = need(co, "nomenclatureGroups", s(b, "group"), "group")
    supplier = need(co, "counterparties", s(b, "supplier"), "supplier")
    is_mod = bl(b, "isModification", default=False)
    parent = s(b, "parent", required=bool(is_mod))
    need(co, "nomenclature", parent, "parent")
    integ = _integration(b)
    if integ is not None and integ in co.nom_by_integration:
        raise business("duplicate_external_id", "An item with this integration externalId already exists.")
    co.counters["nomenclatureCode"] += 1
    item = {
        "uuid": new_uuid(), "name": name, "fullName": s(b, "fullName") or name,
        "code": f"{co.counters['nomenclatureCode']:08d}", "article": s(b, "article") or "",
        "sku": s(b, "sku") or "", "group": group, "supplier": supplier, "unitOfMeasurementUuid": unit,
        "isKit": False, "type": kind, "isParent": False, "isModification": bool(is_mod), "parent": parent,
        "expenseAccount": chart or "", "description": s(b, "description") or "", "comment": s(b, "comment") or "",
        "picture": "", "VATaccounted": bl(b, "VATaccounted", default=False), "measurements": _measurements(b),
    }
    if integ is not None:
        item["integration"] = {"system": integ[0], "externalId": integ[1]}
    co.add_nomenclature(item)
    return {"uuid": item["uuid"]}


@op("nomenclature/api-update")
def nom_update(co: Company, b: dict, now: datetime) -> Any:
    item = existing(co, b, "nomenclature", "nomenclature")
    old = dict(item)
    changes: dict[str, Any] = {}
    for k in ("name", "fullName", "article", "sku", "expenseAccount", "description", "comment", "picture"):
        if k in b:
            changes[k] = s(b, k, k == "name") or ""
    if "group" in b:
        changes["group"] = need(co, "nomenclatureGroups", s(b, "group"), "group")
    if "unitOfMeasurementUuid" in b:
        changes["unitOfMeasurementUuid"] = need(co, "unitsOfMeasurement", s(b, "unitOfMeasurementUuid", True),
                                                "unitOfMeasurementUuid", True)
    if "VATaccounted" in b:
        changes["VATaccounted"] = bl(b, "VATaccounted")
    if "measurements" in b:
        changes["measurements"] = _measurements(b)
    item.update(changes)
    co.reindex_nomenclature(item, old)
    return {}


@op("nomenclature/api-readStocks")
def nom_stocks(co: Company, b: dict, now: datetime) -> Any:
    off, cnt = pagination(b)
    whs = str_list(b, "warehouseUuid")
    if whs is None:
        whs = [w["uuid"] for w in co.refs["warehouses"]]
    noms_filter = str_list(b, "nomenclatureUuid")
    if noms_filter is None:
        seen: dict[str, None] = {}
        for wh in whs:
            for nom in sorted(co.wh_noms.get(wh, ())):
                seen[nom] = None
        noms_filter = list(seen)
    out = []
    for nom in noms_filter:
        item = co.c["nomenclature"].get(nom)
        if item is None or item.get("type") == "service":
            continue
        q = sum((co.qty((wh, nom)) for wh in whs), 0)
        r = sum((co.reserved.get((wh, nom), 0) for wh in whs), 0)
        group = co.c["nomenclatureGroups"].get(item.get("group"))
        out.append({"nomenclatureUuid": nom, "stock": q - r, "article": item.get("article"),
                    "sku": item.get("sku"), "groupUuid": item.get("group"),
                    "groupName": (group or {}).get("name"), "reserve": r, "leftover": q, "primeCost": 0})
    return out[off:off + cnt]


def _currency_info(co: Company, code_or_name: Any) -> dict:
    for cur in co.refs["currencies"]:
        if code_or_name in (cur.get("code"), cur.get("name"), cur.get("uuid")):
            return {"uuid": cur.get("uuid"), "iso": cur.get("code"), "symbol": cur.get("symbol")}
    return {"uuid": None, "iso": code_or_name, "symbol": None}


@op("nomenclature/api-readPrices")
def nom_prices(co: Company, b: dict, now: datetime) -> Any:
    off, cnt = pagination(b)
    if "periodable" not in b:
        raise validation("periodable", "required")
    v = b.get("periodable")
    if isinstance(v, str):
        try:
            instant = parse_dt(v)
        except (ValueError, TypeError):
            raise validation("periodable") from None
        rng: tuple[datetime | None, datetime | None] = (None, instant.replace(microsecond=0) if instant else None)
        if rng[1] is not None:
            # the price "on" an instant includes a price dated at that very instant
            rng = (None, rng[1] + timedelta(seconds=1))
    else:
        rng = period(v, "periodable")
    pls = str_list(b, "priceListUuids")
    pl_items = [co.c["priceLists"].get(p) for p in pls] if pls is not None else list(co.c["priceLists"].values())
    pl_items = [p for p in pl_items if p]
    noms = str_list(b, "nomenclatureUuids")
    items = ([co.c["nomenclature"].get(x) for x in noms] if noms is not None
             else co.c["nomenclature"].page(off, cnt))
    if noms is not None:
        items = [i for i in items if i][off:off + cnt]
    out = []
    for it in items:
        rows = []
        for pl in pl_items:
            price = co.price_at(pl["uuid"], it["uuid"], rng[0], rng[1])
            if price is not None:
                rows.append({"uuid": pl["uuid"], "name": pl.get("name"), "price": price,
                             "currency": _currency_info(co, pl.get("currency"))})
        out.append({"uuid": it["uuid"], "name": it.get("name"), "priceLists": rows or None})
    return out


# --------------------------------------------------------------------------- counterparties
@op("counterparty/api-insert")
def cp_insert(co: Company, b: dict, now: datetime) -> Any:
    name = s(b, "name", True)
    integ = _integration(b)
    if integ is not None and integ in co.cp_by_integration:
        raise business("duplicate_external_id", "A counterparty with this integration externalId already exists.")
    for k in ("email", "phoneNumber", "edrpou", "vat", "printFormName", "AdditionalIdentifier"):
        s(b, k)
    for k in ("managerUuid", "statusUuid", "sourceOfAttractionUuid"):
        s(b, k)
    for k in ("contacts", "bankAccounts", "addresses", "additionalCharacteristics"):
        lst(b, k)
    co.counters["counterpartyCode"] += 1
    cp = {
        "uuid": new_uuid(), "name": name, "edrpou": s(b, "edrpou") or "", "individualTaxNumber": s(b, "vat") or "",
        "email": s(b, "email") or "", "phoneNumber": s(b, "phoneNumber") or "",
        "isCustomer": bl(b, "isCustomer", default=True), "isSupplier": bl(b, "isSupplier", default=False),
        "isSoleProprietor": bl(b, "isSoleProprietor", default=False),
        "code": f"{co.counters['counterpartyCode']:09d}", "printName": s(b, "printFormName") or name,
        "addresses": [{"value": a.get("value"), "isMain": i == 0, "type": {"name": "", "GUID": a.get(
            "addressTypeUuid"), "type": 0}} for i, a in enumerate(lst(b, "addresses") or []) if isinstance(a, dict)],
    }
    if integ is not None:
        cp["integration"] = {"system": integ[0], "externalId": integ[1]}
    co.add_counterparty(cp)
    if bl(b, "createContract", default=False):
        _make_contract(co, {"name": f"Договір з {name}", "counterparty": cp["uuid"]}, now, defaults=True)
    return {"uuid": cp["uuid"]}


@op("counterparty/api-readList")
def cp_list(co: Company, b: dict, now: datetime) -> Any:
    cps = co.c["counterparties"]
    off, cnt = pagination(b)
    phone, email, name = s(b, "phoneNumber"), s(b, "email"), s(b, "name")
    edrpou, itn = s(b, "edrpou"), s(b, "individualTaxNumber")
    types = str_list(b, "types")
    integ = _integration(b)
    rng = period(b.get("periodable"), "periodable") if b.get("periodable") is not None else (None, None)
    cands: list[dict] | None = None
    if integ is not None:
        u = co.cp_by_integration.get(integ)
        cands = [cps.items[u]] if u else []
    elif phone:
        cands = [cps.items[u] for u in co.cp_by_phone.get(digits(phone), [])]
    elif email:
        cands = [cps.items[u] for u in co.cp_by_email.get(email.strip().casefold(), [])]
    elif name:
        cands = [cps.items[u] for u in co.cp_by_name.get(name.strip().casefold(), [])]
    if cands is None and not (edrpou or itn or types or rng != (None, None)):
        return cps.page(off, cnt)
    out = []
    for cp in cands if cands is not None else cps.values():
        if phone and digits(cp.get("phoneNumber")) != digits(phone):
            continue
        if email and str(cp.get("email", "")).strip().casefold() != email.strip().casefold():
            continue
        if name and str(cp.get("name", "")).strip().casefold() != name.strip().casefold():
            continue
        if edrpou and cp.get("edrpou") != edrpou:
            continue
        if itn and cp.get("individualTaxNumber") != itn:
            continue
        if types and not any(cp.get(t) for t in types):
            continue
        out.append(cp)
    return out[off:off + cnt]


@op("counterparty/api-saveExternalId")
def cp_save_ext(co: Company, b: dict, now: datetime) -> Any:
    cp = need(co, "counterparties", s(b, "counterpartyUuid", True), "counterpartyUuid", True)
    source = s(b, "source", True) or ""
    ext = s(b, "externalId", True) or ""
    other = co.ext_by_source.get((source.strip().lower(), ext))
    if other is not None and other != cp:
        raise business("duplicate_external_id", "This externalId is already mapped to another counterparty.")
    co.save_ext(cp or "", source, ext)
    return {"success": True}


@op("counterparty/api-readExternalId")
def cp_read_ext(co: Company, b: dict, now: datetime) -> Any:
    cp = s(b, "counterpartyUuid", True) or ""
    ext = co.ext_ids.get((cp, (s(b, "source", True) or "").strip().lower()))
    return None if ext is None else {"externalId": ext}


@op("counterparty/api-readByExternalId")
def cp_read_by_ext(co: Company, b: dict, now: datetime) -> Any:
    source = (s(b, "source", True) or "").strip().lower()
    cp = co.ext_by_source.get((source, s(b, "externalId", True) or ""))
    if cp is None:
        return None
    return {"counterpartyUuid": cp, "name": (co.c["counterparties"].get(cp) or {}).get("name", "")}


@op("counterparty/api-readExternalIdsList")
def cp_ext_list(co: Company, b: dict, now: datetime) -> Any:
    off, cnt = pagination(b)
    source = s(b, "source")
    source = source.strip().lower() if source else None
    cp_f = s(b, "counterpartyUuid")
    rows = []
    for (cp, src), ext in co.ext_ids.items():
        if (source and src != source) or (cp_f and cp != cp_f):
            continue
        rows.append((cp, src, ext))
    cps = co.c["counterparties"]
    return [{"counterpartyUuid": cp, "name": (cps.get(cp) or {}).get("name", ""), "source": src,
             "externalId": ext} for cp, src, ext in rows[off:off + cnt]]


# --------------------------------------------------------------------------- contracts
def _make_contract(co: Company, b: dict, now: datetime, defaults: bool = False) -> dict:
    def pick(field: str, kind: str) -> str | None:
        v = s(b, field, required=not defaults)
        if v is None and defaults:
            d = co.default_ref(kind)
            return d.get("uuid") if d else None
        return need(co, kind, v, field, required=not defaults)

    name = s(b, "name", True)
    cp = need(co, "counterparties", s(b, "counterparty", True), "counterparty", True)
    org, lob = pick("organization", "organizations"), pick("lineOfBusiness", "linesOfBusiness")
    project, cur = pick("project", "projects"), pick("currency", "currencies")
    ctype = n(b, "contractType", required=not defaults)
    if ctype is None:
        ctype = 1
    if not any(t.get("code") == ctype for t in co.refs["contractTypes"]):
        raise validation("contractType", "unknown contract type code")
    date = doc_date(b, now)
    co.counters["contractCode"] += 1
    ct = {
        "uuid": new_uuid(), "date": fmt_dt(date), "counterparty": cp, "comment": s(b, "comment") or "",
        "name": name, "printName": name, "code": f"{co.counters['contractCode']:06d}", "lineOfBusiness": lob,
        "organization": org, "project": project, "priceList": need(co, "priceLists", s(b, "priceList"), "priceList"),
        "main": not co.contracts_by_cp.get(cp or ""), "manager": s(b, "manager"),
        "currency": cur, "status": s(b, "status") or (co.refs["contractStatuses"][0]["uuid"]),
        "contractType": ctype, "currencyRateSource": 0, "сurrencyRateCalculationPercentage": 0,
    }
    return co.add_contract(ct)


@op("contract/api-create")
def contract_create(co: Company, b: dict, now: datetime) -> Any:
    return {"uuid": _make_contract(co, b, now)["uuid"]}


@op("contract/api-readList")
def contract_list(co: Company, b: dict, now: datetime) -> Any:
    off, cnt = pagination(b)
    cp, cur, project = s(b, "counterpartyUuid"), s(b, "currency"), s(b, "project")
    src = ([co.c["contracts"].items[u] for u in co.contracts_by_cp.get(cp, [])] if cp
           else list(co.c["contracts"].values()))
    src = [c for c in src if (not cur or c.get("currency") == cur) and (not project or c.get("project") == project)]
    out = []
    for c in src[off:off + cnt]:
        ctype = next((t for t in co.refs["contractTypes"] if t.get("code") == c.get("contractType")), {})
        out.append({
            "uuid": c["uuid"], "name": c.get("name"), "isMain": bool(c.get("main")),
            "counterparty": co.named("counterparties", c.get("counterparty")),
            "currency": co.named("currencies", c.get("currency")),
            "settlementType": None,
            "status": co.named("contractStatuses", c.get("status")),
            "project": co.named("projects", c.get("project")),
            "contractType": {"name": ctype.get("name"), "uuid": ctype.get("uuid"),
                             "code": str(ctype.get("code")) if ctype else None},
        })
    return out


# --------------------------------------------------------------------------- price lists
@op("priceList/api-readList")
def pl_list(co: Company, b: dict, now: datetime) -> Any:
    main = bl(b, "main")
    items = [p for p in co.c["priceLists"].values() if main is None or bool(p.get("main")) == main]
    return page(items, b)


@op("priceList/api-readPrice")
def pl_read_price(co: Company, b: dict, now: datetime) -> Any:
    pl = s(b, "priceListUuid", True)
    item = co.c["priceLists"].get(pl)
    if item is None:
        return []
    out = []
    for (p, nom), rows in co.prices.items():
        if p == pl:
            out.append({"nomenclatureUuid": nom,
                        "prices": [{"amount": a, "date": d, "currency": item.get("currency")} for d, a in rows]})
    return out


@op("priceList/api-createPrice")
def pl_create_price(co: Company, b: dict, now: datetime) -> Any:
    nom = need(co, "nomenclature", s(b, "nomenclatureUuid", True), "nomenclatureUuid", True)
    pl = need(co, "priceLists", s(b, "priceListUuid", True), "priceListUuid", True)
    amount = n(b, "amount", True, minimum=0)
    co.add_price(pl or "", nom or "", amount, fmt_dt(doc_date(b, now)))
    return {}


# --------------------------------------------------------------------------- customer orders
def _order_lines(co: Company, b: dict, order: dict, detailed: bool, old_lines: list[dict]) -> list[dict]:
    products = lst(b, "products") or []
    shipped_left: dict[tuple[str, str], Any] = {}
    for ln in old_lines:
        key = co.line_key(order, ln)
        shipped_left[key] = shipped_left.get(key, 0) + (ln.get("shiped") or 0)
    lines = []
    for i, p in enumerate(products):
        f = f"products[{i}]"
        if not isinstance(p, dict):
            raise validation(f, "must be an object")
        nom = need(co, "nomenclature", s(p, "nomenclature", True, f"{f}.nomenclature"), f"{f}.nomenclature", True)
        count = n(p, "count", True, f"{f}.count", minimum=0)
        reserve = n(p, "reserve", path=f"{f}.reserve", minimum=0) or 0
        if reserve > count:
            raise validation(f"{f}.reserve", "must not exceed count")
        cost = n(p, "cost", path=f"{f}.cost", minimum=0) or 0
        discount = n(p, "discount", path=f"{f}.discount", minimum=0) or 0
        wh = s(p, "warehouse", path=f"{f}.warehouse") if detailed else None
        need(co, "warehouses", wh, f"{f}.warehouse")
        vat = s(p, "VAT", path=f"{f}.VAT")
        line = {
            "nomenclatureUuid": nom, "count": count, "VATamount": 0, "cost": cost,
            "amount": count * cost - discount, "discount": discount,
            "discountPercentage": (Decimal(discount) * 100 / Decimal(count * cost)).quantize(Decimal("0.01"))
            if count * cost else 0,
            "shiped": 0, "reserve": reserve, "modification": None, "machinery": None,
            "warehouse": wh or order.get("warehouse"), "comment": s(p, "comment", path=f"{f}.comment") or "",
            "VAT": vat,
        }
        if not co.is_goods(nom or ""):
            line["reserve"] = 0
        key = co.line_key(order, line)
        carried = min(shipped_left.get(key, 0), count)
        if carried:
            shipped_left[key] -= carried
            line["shiped"] = carried
            line["reserve"] = min(line["reserve"], count - carried)
        lines.append(line)
    return lines


def _order_header(co: Company, b: dict, order: dict, now: datetime, create: bool) -> None:
    for k, kind in (("organization", "organizations"), ("warehouse", "warehouses"),
                    ("lineOfBusiness", "linesOfBusiness"), ("project", "projects"), ("priceList", "priceLists"),
                    ("status", "orderStatuses"), ("responsible", "employees"), ("contract", "contracts"),
                    ("buyer", "counterparties")):
        if k in b or (create and k == "buyer"):
            order[k] = need(co, kind, s(b, k, create and k == "buyer"), k, create and k == "buyer")
    for k in ("comment", "TTN", "deliveryAddress", "deliveryMethod", "recipient", "recipientPhone",
              "internalNumber", "docNumber"):
        if k in b:
            order[k] = s(b, k) or ""
    if "VATaccounted" in b:
        order["VATaccounted"] = bl(b, "VATaccounted")
    if "deliveryCountry" in b:
        order["deliveryCountry"] = obj(b, "deliveryCountry")
    if "paymentEntity" in b:
        pe = s(b, "paymentEntity")
        if pe and co.ref("cashRegistries", pe) is None and co.ref("bankAccounts", pe) is None:
            raise validation("paymentEntity", "neither a cash register nor a bank account")
        order["paymentEntity"] = pe
    if "date" in b or create:
        order["date"] = fmt_dt(doc_date(b, now))


def _order_totals(co: Company, order: dict) -> None:
    lines = order.get("products") or []
    order["quantityOrdered"] = sum((ln["count"] for ln in lines), 0)
    order["quantityShipped"] = sum((ln.get("shiped") or 0 for ln in lines), 0)
    order["sumOrdered"] = sum((ln["amount"] for ln in lines), 0)


@op("invoiceForCustomerPayment/api-create")
def order_create(co: Company, b: dict, now: datetime) -> Any:
    detailed = bl(b, "detailedWarehouses", required=True)
    order: dict[str, Any] = {
        "uuid": new_uuid(), "comment": "", "TTN": "", "VATaccounted": False, "VATamount": 0, "sumPayed": 0,
        "sumShipped": 0, "detailedWarehouses": detailed, "EntryStatus": 1,
    }
    _order_header(co, b, order, now, create=True)
    for k, kind in (("organization", "organizations"), ("warehouse", "warehouses"),
                    ("lineOfBusiness", "linesOfBusiness"), ("status", "orderStatuses")):
        if not order.get(k):
            d = co.default_ref(kind)
            order[k] = d.get("uuid") if d else None
    if not order.get("contract"):
        main = [co.c["contracts"].items[u] for u in co.contracts_by_cp.get(order["buyer"], [])]
        order["contract"] = main[0]["uuid"] if main else None
    cur = co.default_ref("currencies")
    ct = co.c["contracts"].get(order.get("contract"))
    order["currency"] = (ct or {}).get("currency") or (cur or {}).get("uuid")
    co.check_period(parse_dt(order["date"]) or now)
    order["products"] = _order_lines(co, b, order, bool(detailed), [])
    co.check_reserve(None, co.contrib_of(order))
    if not order.get("docNumber"):
        order["docNumber"] = co.next_number("customerOrders")
    else:
        co.counters["customerOrders"] += 1
    order["name"] = f"Замовлення покупця {order['docNumber']} від {order['date'][:10]}"
    order["changeStatusTime"] = fmt_dt(now)
    _order_totals(co, order)
    co.c["customerOrders"].add(order)
    co.set_order_contrib(order)
    return {"uuid": order["uuid"]}


@op("invoiceForCustomerPayment/api-update")
def order_update(co: Company, b: dict, now: datetime) -> Any:
    order = existing(co, b, "customerOrders", "customer order")
    u = order["uuid"]
    draft = dict(order)
    old_status = order.get("status")
    _order_header(co, b, draft, now, create=False)
    co.check_period(parse_dt(draft["date"]) or now)
    if "products" in b:
        draft["products"] = _order_lines(co, b, draft, bool(draft.get("detailedWarehouses")),
                                         order.get("products") or [])
    co.check_reserve(u, co.contrib_of(draft))
    if draft.get("status") != old_status:
        draft["changeStatusTime"] = fmt_dt(now)
    order.clear()
    order.update(draft)
    order["name"] = f"Замовлення покупця {order['docNumber']} від {order['date'][:10]}"
    _order_totals(co, order)
    co.set_order_contrib(order)
    return {"uuid": u}


@op("invoiceForCustomerPayment/api-updateStatus")
def order_update_status(co: Company, b: dict, now: datetime) -> Any:
    order = co.c["customerOrders"].get(s(b, "invoiceUuid", True))
    status = need(co, "orderStatuses", s(b, "statusUuid", True), "statusUuid", True)
    if order is None:
        raise not_found("customer order")
    if order.get("status") != status:
        order["status"] = status
        order["changeStatusTime"] = fmt_dt(now)
    return {}


_ORDER_LIST_KEYS = ("uuid", "docNumber", "name", "status", "comment", "date", "buyer", "sumOrdered", "currency",
                    "contract", "TTN", "quantityShipped", "quantityOrdered", "sumShipped", "sumPayed",
                    "organization", "EntryStatus", "internalNumber", "changeStatusTime", "warehouse")


@op("invoiceForCustomerPayment/api-readList")
def order_list(co: Company, b: dict, now: datetime) -> Any:
    off, cnt = pagination(b)
    status = s(b, "status")
    orgs = str_list(b, "organizations")
    rng = period(b.get("periodable"), "periodable")
    crng = period(b.get("changeStatusTime"), "changeStatusTime")
    orders = co.c["customerOrders"]
    if not (status or orgs or rng != (None, None) or crng != (None, None)):
        src = orders.page(off, cnt)
    else:
        src = [o for o in orders.values()
               if (not status or o.get("status") == status) and (not orgs or o.get("organization") in orgs)
               and in_period(o.get("date"), rng) and in_period(o.get("changeStatusTime"), crng)][off:off + cnt]
    out = []
    for o in src:
        row = {k: o.get(k) for k in _ORDER_LIST_KEYS}
        row["products"] = [ln.get("nomenclatureUuid") for ln in o.get("products") or []]
        out.append(row)
    return out


# --------------------------------------------------------------------------- sales invoices
def _zero_price(co: Company, lines: list[dict], label: str) -> None:
    if not co.settings.get("zero_price_control"):
        return
    for i, ln in enumerate(lines):
        if not ln.get("cost"):
            raise business("zero_price", f"{label} line {i + 1} has a zero price and zero-price control is on "
                                         "(Inventory price).")


def _sale_lines(co: Company, b: dict) -> list[dict]:
    out = []
    for i, p in enumerate(lst(b, "products") or []):
        f = f"products[{i}]"
        if not isinstance(p, dict):
            raise validation(f, "must be an object")
        prod = need(co, "nomenclature", ref_obj(p, "product", True) if "product" in p else s(p, "product", True,
                    f"{f}.product"), f"{f}.product", True)
        cost = n(p, "cost", True, f"{f}.cost", minimum=0)
        count = n(p, "count", True, f"{f}.count", minimum=0)
        reserve = n(p, "reserve", True, f"{f}.reserve", minimum=0)
        item = co.c["nomenclature"].get(prod) or {}
        unit = (obj(p, "unitOfMeasurement") or {}).get("uuid") or item.get("unitOfMeasurementUuid")
        out.append({
            "cost": cost, "count": count, "reserve": reserve, "sum": cost * count, "VAT": 0,
            "VATamount": obj(p, "VATamount"), "unitOfMeasurement": co.named("unitsOfMeasurement", unit),
            "product": {"uuid": prod, "name": item.get("name", "")}, "parent": obj(p, "parent"),
        })
    return out


def _sale_from_body(co: Company, b: dict, sale: dict, now: datetime, create: bool) -> None:
    refs = (("counterparty", "counterparties"), ("contract", "contracts"), ("project", "projects"),
            ("lineOfBusiness", "linesOfBusiness"), ("warehouse", "warehouses"), ("currency", "currencies"),
            ("organization", "organizations"), ("responsible", "employees"), ("priceList", "priceLists"),
            ("invoiceForCustomerPayment", "customerOrders"))
    required = {"counterparty", "contract", "project", "lineOfBusiness", "warehouse", "currency"}
    for k, kind in refs:
        if k in b or (create and k in required):
            u = need(co, kind, ref_obj(b, k, create and k in required), k, create and k in required)
            sale[k] = co.named(kind, u) if u else None
    if create:
        for k in ("VATaccounted", "managerialAccounting", "bookkeperAccounting"):
            sale[k] = bl(b, k, required=True)
        if not sale.get("organization"):
            d = co.default_ref("organizations")
            sale["organization"] = co.named("organizations", d["uuid"]) if d else None
    else:
        for k in ("VATaccounted", "managerialAccounting", "bookkeperAccounting"):
            if k in b:
                sale[k] = bl(b, k)
    for k in ("TTN", "comment", "documentNumber"):
        if k in b:
            sale[k] = s(b, k) or ""
    if "date" in b or create:
        sale["date"] = fmt_dt(doc_date(b, now))
    if "products" in b or create:
        sale["products"] = _sale_lines(co, b)
    ct = co.c["contracts"].get((sale.get("contract") or {}).get("uuid"))
    if sale.get("contract") is not None:
        sale["contract"]["currency"] = co.named("currencies", (ct or {}).get("currency"))
    sale["sum"] = sum((ln["sum"] for ln in sale.get("products") or []), 0)


@op("salesInvoice/api-create")
def sale_create(co: Company, b: dict, now: datetime) -> Any:
    sale: dict[str, Any] = {"uuid": new_uuid(), "comment": "", "TTN": "", "VAT": 0, "status": None,
                            "settlementType": None, "EntryStatus": 1, "responsible": None, "priceList": None}
    _sale_from_body(co, b, sale, now, create=True)
    co.check_period(parse_dt(sale["date"]) or now)
    _zero_price(co, sale["products"], "Sales invoice")
    co.check_sale(sale)
    if not sale.get("documentNumber"):
        sale["documentNumber"] = co.next_number("salesInvoices")
    else:
        co.counters["salesInvoices"] += 1
    sale["name"] = f"Видаткова накладна {sale['documentNumber']} від {sale['date'][:10]}"
    co.c["salesInvoices"].add(sale)
    link = (sale.get("invoiceForCustomerPayment") or {}).get("uuid")
    if link:
        co.sales_by_order[link].append(sale["uuid"])
    co.apply_sale(sale, +1)
    return {"uuid": sale["uuid"]}


@op("salesInvoice/api-update")
def sale_update(co: Company, b: dict, now: datetime) -> Any:
    sale = existing(co, b, "salesInvoices", "sales invoice")
    u = sale["uuid"]
    draft = copy.deepcopy(sale)
    _sale_from_body(co, b, draft, now, create=False)
    co.check_period(parse_dt(draft["date"]) or now)
    _zero_price(co, draft.get("products") or [], "Sales invoice")
    co.apply_sale(sale, -1)
    try:
        co.check_sale(draft)
    except ApiError:
        co.apply_sale(sale, +1)
        raise
    old_link = (sale.get("invoiceForCustomerPayment") or {}).get("uuid")
    sale.clear()
    sale.update(draft)
    new_link = (sale.get("invoiceForCustomerPayment") or {}).get("uuid")
    if old_link != new_link:
        if old_link and u in co.sales_by_order.get(old_link, []):
            co.sales_by_order[old_link].remove(u)
        if new_link:
            co.sales_by_order[new_link].append(u)
    sale["name"] = f"Видаткова накладна {sale['documentNumber']} від {sale['date'][:10]}"
    co.apply_sale(sale, +1)
    return {"uuid": u}


_SALE_LIST_KEYS = ("uuid", "name", "date", "sum", "comment", "TTN", "EntryStatus", "managerialAccounting",
                   "bookkeperAccounting", "documentNumber", "counterparty", "status", "organization", "contract",
                   "currency", "responsible", "project", "invoiceForCustomerPayment", "warehouse")


@op("salesInvoice/api-readList")
def sale_list(co: Company, b: dict, now: datetime) -> Any:
    off, cnt = pagination(b)
    order = s(b, "orderUuid")
    orgs = str_list(b, "organizations")
    rng = period(b.get("periodable"), "periodable")
    sales = co.c["salesInvoices"]
    if order:
        src = [sales.items[u] for u in co.sales_by_order.get(order, [])]
    else:
        src = list(sales.values()) if (orgs or rng != (None, None)) else sales.page(off, cnt)
    if order or orgs or rng != (None, None):
        src = [x for x in src if (not orgs or (x.get("organization") or {}).get("uuid") in orgs)
               and in_period(x.get("date"), rng)][off:off + cnt]
    out = []
    for x in src:
        row = {k: x.get(k) for k in _SALE_LIST_KEYS}
        if row.get("contract"):
            row["contract"] = {"uuid": row["contract"]["uuid"], "name": row["contract"].get("name")}
        out.append(row)
    return out


# --------------------------------------------------------------------------- customer payments
def _payment_details(co: Company, b: dict, pay: dict) -> list[dict]:
    out = []
    for i, d in enumerate(lst(b, "paymentDetails") or []):
        f = f"paymentDetails[{i}]"
        if not isinstance(d, dict):
            raise validation(f, "must be an object")
        order_uuid = need(co, "customerOrders", s(d, "invoiceForCustomerpayment", True,
                                                  f"{f}.invoiceForCustomerpayment"),
                          f"{f}.invoiceForCustomerpayment", True)
        payed = n(d, "payed", True, f"{f}.payed")
        rate = n(d, "calculationRate", path=f"{f}.calculationRate") or 1
        order = co.c["customerOrders"].get(order_uuid) or {}
        out.append({"contract": order.get("contract"), "invoiceForCustomerpayment": order_uuid,
                    "currency": pay.get("currency"), "calculationRate": rate, "payed": payed,
                    "payedInContractCurrency": payed, "debt": 0, "exchangeRateDifference": 0})
    return out


def _apply_payment(co: Company, pay: dict, sign: int) -> None:
    for d in pay.get("paymentDetails") or []:
        order = co.c["customerOrders"].get(d.get("invoiceForCustomerpayment"))
        if order is not None:
            order["sumPayed"] = (order.get("sumPayed") or 0) + sign * (d.get("payed") or 0)


def _payment_entity(co: Company, b: dict) -> str | None:
    pe = s(b, "paymentEntity")
    if pe and co.ref("cashRegistries", pe) is None and co.ref("bankAccounts", pe) is None:
        raise validation("paymentEntity", "neither a cash register nor a bank account")
    return pe


@op("customerPayment/api-create")
def pay_create(co: Company, b: dict, now: datetime) -> Any:
    cp = need(co, "counterparties", s(b, "counterparty", True), "counterparty", True)
    cur = need(co, "currencies", s(b, "currency", True), "currency", True)
    org = need(co, "organizations", s(b, "organization"), "organization")
    if org is None:
        d = co.default_ref("organizations")
        org = d["uuid"] if d else None
    date = doc_date(b, now)
    co.check_period(date)
    pay: dict[str, Any] = {
        "uuid": new_uuid(), "currency": cur, "date": fmt_dt(date), "comment": s(b, "comment") or "",
        "counterparty": cp, "author": need(co, "users", s(b, "author"), "author"), "organization": org,
        "status": need(co, "paymentStatuses", s(b, "status"), "status"), "paymentEntity": _payment_entity(co, b),
        "responsible": need(co, "employees", s(b, "responsible"), "responsible"),
        "commission": n(b, "commission") or 0, "remainder": 0, "exchangeRateDifference": 0, "canceled": False,
    }
    pay["paymentDetails"] = _payment_details(co, b, pay)
    pay["number"] = s(b, "number") or co.next_number("customerPayments")
    _pay_totals(pay)
    co.c["customerPayments"].add(pay)
    for d in pay["paymentDetails"]:
        co.payments_by_order[d["invoiceForCustomerpayment"]].append(pay["uuid"])
    _apply_payment(co, pay, +1)
    return {"uuid": pay["uuid"]}


def _pay_totals(pay: dict) -> None:
    total = sum((d["payed"] for d in pay.get("paymentDetails") or []), 0)
    pay["documentSum"] = total
    pay["sum"] = total
    pay["order"] = (pay.get("paymentDetails") or [{}])[0].get("invoiceForCustomerpayment")
    pay["name"] = f"Оплата від покупця {pay['number']} від {pay['date'][:10]}"


@op("customerPayment/api-update")
def pay_update(co: Company, b: dict, now: datetime) -> Any:
    pay = existing(co, b, "customerPayments", "customer payment")
    u = pay["uuid"]
    draft = dict(pay)
    for k in ("number", "comment"):
        if k in b:
            draft[k] = s(b, k) or ""
    if "currency" in b:
        draft["currency"] = need(co, "currencies", s(b, "currency", True), "currency", True)
    for k, kind in (("responsible", "employees"), ("author", "users"), ("status", "paymentStatuses")):
        if k in b:
            draft[k] = need(co, kind, s(b, k), k)
    if "paymentEntity" in b:
        draft["paymentEntity"] = _payment_entity(co, b)
    if "commission" in b:
        draft["commission"] = n(b, "commission") or 0
    if "date" in b:
        draft["date"] = fmt_dt(doc_date(b, now))
    co.check_period(parse_dt(draft["date"]) or now)
    if "paymentDetails" in b:
        draft["paymentDetails"] = _payment_details(co, b, draft)
    if not pay.get("canceled"):
        _apply_payment(co, pay, -1)
    for d in pay.get("paymentDetails") or []:
        lst_ = co.payments_by_order.get(d["invoiceForCustomerpayment"], [])
        if u in lst_:
            lst_.remove(u)
    pay.clear()
    pay.update(draft)
    _pay_totals(pay)
    for d in pay["paymentDetails"]:
        co.payments_by_order[d["invoiceForCustomerpayment"]].append(u)
    if not pay.get("canceled"):
        _apply_payment(co, pay, +1)
    return {"uuid": u}


@op("customerPayment/api-cancel")
def pay_cancel(co: Company, b: dict, now: datetime) -> Any:
    pay = existing(co, b, "customerPayments", "customer payment")
    if not pay.get("canceled"):
        _apply_payment(co, pay, -1)
        pay["canceled"] = True
    return {"success": True}


_PAY_LIST_KEYS = ("uuid", "number", "currency", "date", "comment", "name", "counterparty", "author",
                  "organization", "status", "documentSum", "order", "canceled", "paymentEntity")


@op("customerPayment/api-readList")
def pay_list(co: Company, b: dict, now: datetime) -> Any:
    off, cnt = pagination(b)
    orders = str_list(b, "orders")
    orgs = str_list(b, "organizations")
    rng = period(b.get("periodable"), "periodable")
    pays = co.c["customerPayments"]
    if orders:
        seen: dict[str, None] = {}
        for o in orders:
            for u in co.payments_by_order.get(o, []):
                seen[u] = None
        src = [pays.items[u] for u in seen]
    elif orgs or rng != (None, None):
        src = list(pays.values())
    else:
        src = None
    if src is None:
        rows = pays.page(off, cnt)
    else:
        rows = [p for p in src if (not orgs or p.get("organization") in orgs)
                and in_period(p.get("date"), rng)][off:off + cnt]
    return [{k: p.get(k) for k in _PAY_LIST_KEYS} for p in rows]


# --------------------------------------------------------------------------- customer returns
@op("customer-inventories-return/api-create")
def return_create(co: Company, b: dict, now: datetime) -> Any:
    base = need(co, "salesInvoices", s(b, "baseDocument", True), "baseDocument", True)
    sale = co.c["salesInvoices"].get(base) or {}
    wh = need(co, "warehouses", s(b, "warehouse"), "warehouse") or (sale.get("warehouse") or {}).get("uuid")
    date = doc_date(b, now)
    co.check_period(date)
    lines = []
    for i, p in enumerate(lst(b, "products") or []):
        f = f"products[{i}]"
        if not isinstance(p, dict):
            raise validation(f, "must be an object")
        nom = need(co, "nomenclature", s(p, "nomenclature", True, f"{f}.nomenclature"), f"{f}.nomenclature", True)
        count = n(p, "count", True, f"{f}.count", minimum=0)
        cost = n(p, "cost", True, f"{f}.cost", minimum=0)
        lines.append({"nomenclature": nom, "name": (co.c["nomenclature"].get(nom) or {}).get("name", ""),
                      "count": count, "cost": cost, "sum": count * cost, "reserve": 0, "discount": 0,
                      "VAT": s(p, "VAT", path=f"{f}.VAT"), "VATamount": 0})
    ret = {
        "uuid": new_uuid(), "date": fmt_dt(date), "comment": s(b, "comment") or "",
        "number": s(b, "number") or co.next_number("customerReturns"),
        "organization": (sale.get("organization") or {}).get("uuid"),
        "counterparty": (sale.get("counterparty") or {}).get("uuid"), "warehouse": wh,
        "contract": (sale.get("contract") or {}).get("uuid"),
        "responsible": need(co, "employees", s(b, "responsible"), "responsible"),
        "priceList": (sale.get("priceList") or {}).get("uuid") if sale.get("priceList") else None,
        "currency": (sale.get("currency") or {}).get("uuid"),
        "documentSum": sum((ln["sum"] for ln in lines), 0),
        "VATaccounted": bl(b, "VATaccounted", default=False), "VATamount": 0, "baseDocument": base,
        "products": lines,
    }
    ret["name"] = f"Повернення від покупця {ret['number']} від {ret['date'][:10]}"
    co.c["customerReturns"].add(ret)
    for ln in lines:
        if co.is_goods(ln["nomenclature"]):
            co.move_stock((str(wh), ln["nomenclature"]), ln["count"])
    return {"uuid": ret["uuid"]}


@op("customer-inventories-return/api-readList")
def return_list(co: Company, b: dict, now: datetime) -> Any:
    off, cnt = pagination(b)
    rng = period(b.get("periodable"), "periodable")
    keys = ("uuid", "date", "name", "comment", "number", "organization", "counterparty", "responsible",
            "currency", "documentSum", "baseDocument")
    rets = co.c["customerReturns"]
    rows = (rets.page(off, cnt) if rng == (None, None)
            else [r for r in rets.values() if in_period(r.get("date"), rng)][off:off + cnt])
    return [{k: r.get(k) for k in keys} for r in rows]


# --------------------------------------------------------------------------- refunds
@op("refundToCustomer/api-create")
def refund_create(co: Company, b: dict, now: datetime) -> Any:
    given = s(b, "uuid")
    if given and given in co.c["refunds"].items:
        r = co.c["refunds"].items[given]
        return {"uuid": r["uuid"], "number": r["number"]}
    expense = need(co, "expenseItems", s(b, "expenseItem", True), "expenseItem", True)
    customer = need(co, "counterparties", s(b, "customer", True), "customer", True)
    org = need(co, "organizations", s(b, "organization", True), "organization", True)
    pe = s(b, "paymentEntity", True)
    if co.ref("cashRegistries", pe) is None and co.ref("bankAccounts", pe) is None:
        raise validation("paymentEntity", "neither a cash register nor a bank account")
    author = need(co, "users", s(b, "author", True), "author", True)
    details_in = lst(b, "paymentDetails", True) or []
    details = []
    for i, d in enumerate(details_in):
        f = f"paymentDetails[{i}]"
        if not isinstance(d, dict):
            raise validation(f, "must be an object")
        inv = need(co, "customerOrders", s(d, "invoice", True, f"{f}.invoice"), f"{f}.invoice", True)
        details.append({"invoice": inv, "refundSum": n(d, "refundSum", True, f"{f}.refundSum", minimum=0)})
    date = doc_date(b, now)
    co.check_period(date)
    project = need(co, "projects", s(b, "project"), "project")
    cur = co.default_ref("currencies")
    order = co.c["customerOrders"].get(details[0]["invoice"]) if details else None
    r = {
        "uuid": given or new_uuid(), "date": fmt_dt(date), "number": co.next_number("refunds"),
        "comment": s(b, "comment") or "", "customer": customer, "organization": org,
        "status": s(b, "status"), "author": author,
        "currency": (order or {}).get("currency") or (cur or {}).get("uuid"),
        "documentSum": sum((d["refundSum"] for d in details), 0), "paymentEntity": pe, "expenseItem": expense,
        "project": co.named("projects", project), "paymentDetails": details, "entryStatus": 1,
    }
    r["name"] = s(b, "name") or f"Повернення коштів покупцю {r['number']} від {r['date'][:10]}"
    co.c["refunds"].add(r)
    for d in details:
        o = co.c["customerOrders"].get(d["invoice"])
        if o is not None:
            o["sumPayed"] = (o.get("sumPayed") or 0) - d["refundSum"]
    return {"uuid": r["uuid"], "number": r["number"]}


@op("refundToCustomer/api-readList")
def refund_list(co: Company, b: dict, now: datetime) -> Any:
    off, cnt = pagination(b)
    customers = str_list(b, "customers")
    orgs = str_list(b, "organizations")
    name = s(b, "name")
    rng = period(b.get("period"), "period")
    rows = [r for r in co.c["refunds"].values()
            if (not customers or r.get("customer") in customers) and (not orgs or r.get("organization") in orgs)
            and (not name or name.casefold() in (r.get("name", "") + " " + r.get("comment", "")).casefold())
            and in_period(r.get("date"), rng)]
    keys = ("uuid", "number", "date", "name", "comment", "customer", "organization", "status", "author",
            "currency", "documentSum", "project")
    return {"total": len(rows), "rows": [{k: r.get(k) for k in keys} for r in rows[off:off + cnt]]}


# --------------------------------------------------------------------------- purchase invoices (receipts)
@op("purchaseInvoice/api-create")
def purchase_create(co: Company, b: dict, now: datetime) -> Any:
    """Receives goods: the emulator needs only warehouse and lines; the other S1-required keys are optional."""
    wh = need(co, "warehouses", s(b, "warehouse", True), "warehouse", True)
    date = doc_date(b, now)
    co.check_period(date)
    lines = []
    for i, p in enumerate(lst(b, "products", True) or []):
        f = f"products[{i}]"
        if not isinstance(p, dict):
            raise validation(f, "must be an object")
        prod = need(co, "nomenclature", s(p, "product", True, f"{f}.product"), f"{f}.product", True)
        wc = n(p, "warehouseCount", True, f"{f}.warehouseCount", minimum=0)
        cost = n(p, "cost", path=f"{f}.cost", minimum=0) or 0
        lines.append({"product": prod, "orderedCount": n(p, "orderedCount", path=f"{f}.orderedCount") or wc,
                      "warehouseCount": wc, "cost": cost, "sum": n(p, "sum", path=f"{f}.sum") or wc * cost})
    number = b.get("number")
    if number is not None and (isinstance(number, bool) or not isinstance(number, (str, int, Decimal))):
        raise validation("number")
    doc = {"uuid": new_uuid(), "number": str(number) if number is not None else co.next_number("purchaseInvoices"),
           "date": fmt_dt(date), "warehouse": wh, "organization": s(b, "organization"),
           "counterparty": s(b, "counterparty"), "comment": s(b, "comment") or "", "products": lines,
           "isConducted": True, "archive": False}
    co.c["purchaseInvoices"].add(doc)
    for ln in lines:
        if co.is_goods(ln["product"]):
            co.move_stock((str(wh), ln["product"]), ln["warehouseCount"])
    return {"uuid": doc["uuid"]}
