"""`keybimp check [NAME]`: the "check connection" of R-CONN-2, for every integration in the file.

For each integration, with its own credentials: the KeyCRM key is accepted; the Bimp login works and the
company is one the login may select; every Bimp object the settings name (warehouses, order statuses, cash
desks, bank accounts, groups, price lists, the delivery service item, expense item, ...) resolves to exactly
one object; every KeyCRM status and payment method the mappings use exists, and with payments on, every
active KeyCRM payment method is mapped to a money account.  The KeyCRM key must not have served another
Bimp company before (R-CONN-3, the registry in :mod:`keybimp_pipeline.control`).

Why a scratch store: the reference books are read into a throw-away DuckDB file and resolved there with the
very code the runs use (:func:`keybimp_pipeline.sync.resolve.resolve`), so the check sees what a run would
see, never waits on a running sync's lock, and leaves the integration's own state untouched.

Each problem is one line, starting with the integration and the settings path it concerns; no line ever
contains a secret (a KeyCRM key is shown as its fingerprint).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from keybimp_pipeline import control
from keybimp_pipeline.clients.bimp import BimpAuthError, BimpClient, BimpError, BimpTransientError
from keybimp_pipeline.clients.keycrm import KeyCRMAuthError, KeyCRMClient, KeyCRMError, KeyCRMNotFound
from keybimp_pipeline.settings import (
    Integration,
    IntegrationsFile,
    SettingsError,
    key_fingerprint,
    resolve_reference,
)
from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.sync import reference
from keybimp_pipeline.sync.orders import EXTERNAL_ID_SOURCE
from keybimp_pipeline.sync.resolve import resolve

TIMEOUT_S = 15.0


@dataclass
class CheckReport:
    """The outcome for one integration: ``problems`` (one line each) and what was confirmed (``info``)."""

    name: str
    problems: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    company_ids: list[str] = field(default_factory=list)  # the Bimp company's code and uuid, when reached

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        if self.ok:
            return [f"{self.name}: OK — " + "; ".join(self.info)]
        return [f"{self.name}: {p}" for p in self.problems]


def _keycrm(integration: Integration, base: str, store: Store, report: CheckReport) -> bool:
    try:
        key = integration.keycrm_api_key()
    except SettingsError as err:
        report.problems.extend(f"{base}.{m}" for m in err.messages)
        return False
    fp = key_fingerprint(key)
    url = integration.keycrm.url
    try:
        with KeyCRMClient(url, key, requests_per_minute=integration.keycrm.requests_per_minute, timeout=TIMEOUT_S,
                          max_retries=1, backoff_base_s=0.2, max_backoff_s=1.0) as client:
            rows = reference.refresh_keycrm(store, client)
    except KeyCRMAuthError:
        report.problems.append(f"{base}.keycrm.api_key_env: KeyCRM at {url} refused the API key in "
                               f"{integration.keycrm.api_key_env} (fingerprint {fp}): wrong or revoked key")
        return False
    except KeyCRMNotFound:
        report.problems.append(f"{base}.keycrm.url: {url} answered 404: not a KeyCRM API base URL "
                               "(it normally ends in /v1)")
        return False
    except KeyCRMError as err:
        report.problems.append(f"{base}.keycrm.url: KeyCRM at {url} is unreachable or failing: {err}")
        return False
    report.info.append(f"KeyCRM key (fingerprint {fp}) accepted ({rows} reference rows)")
    return True


def _bimp(integration: Integration, base: str, store: Store, report: CheckReport) -> bool:
    try:
        email, password = integration.bimp_credentials()
    except SettingsError as err:
        report.problems.extend(f"{base}.{m}" for m in err.messages)
        return False
    url, company = integration.bimp.url, str(integration.bimp.company)
    try:
        with BimpClient(url, email, password, company, timeout=TIMEOUT_S, max_retries=1, max_wait_s=1.0) as client:
            try:
                companies = client.companies()
            except BimpAuthError as err:
                report.problems.append(
                    f"{base}.bimp.email_env: Bimp at {url} refused the login in {integration.bimp.email_env}/"
                    f"{integration.bimp.password_env}: {err.message}")
                return False
            want = company.strip().casefold()
            hit = [c for c in companies
                   if want in (str(c.get("code", "")).casefold(), str(c.get("uuid", "")).casefold())]
            if not hit:
                listed = ", ".join(f"'{c.get('code')}' «{c.get('name')}»" for c in companies) or "(none)"
                report.problems.append(f"{base}.bimp.company: the Bimp login may not select company '{company}'; "
                                       f"its companies: {listed}")
                return False
            report.company_ids = [str(hit[0].get("code") or ""), str(hit[0].get("uuid") or "")]
            rows = reference.refresh_bimp(store, client, external_id_source=EXTERNAL_ID_SOURCE)
    except BimpAuthError as err:
        report.problems.append(f"{base}.bimp.company: Bimp refused company '{company}': {err.message}")
        return False
    except BimpTransientError as err:
        report.problems.append(f"{base}.bimp.url: Bimp at {url} is unreachable or failing: {err}")
        return False
    except BimpError as err:
        report.problems.append(f"{base}.bimp.url: Bimp at {url} failed: {err}")
        return False
    report.info.append(f"Bimp company {hit[0].get('code')} «{hit[0].get('name')}» reachable ({rows} reference rows)")
    return True


def _extra_references(integration: Integration, base: str, store: Store) -> list[str]:
    """References the run-time resolver leaves to the upload steps or the rules: checked here all the same."""
    out: list[str] = []
    cache: dict = {}

    def ref(value: str | None, kind: str, label: str, path: str) -> None:
        if value is None:
            return
        frame = reference.load(store, "bimp", kind, cache)
        try:
            resolve_reference(str(value), pd.DataFrame({"uuid": frame["id"], "name": frame["name"]}),
                              path=f"{base}.{path}", kind=label)
        except SettingsError as err:
            out.extend(err.messages)

    ref(integration.prices.price_list, "price_list", "price list", "prices.price_list")
    ref(integration.prices.product_group, "nomenclature_group", "nomenclature group", "prices.product_group")
    return out


def _keycrm_rules(integration: Integration, base: str, store: Store) -> list[str]:
    """Statuses that trigger documents exist in KeyCRM; with payments on, every active method is mapped."""
    out: list[str] = []
    statuses = reference.load(store, "keycrm", "status")
    known = set(statuses["id"]) | set(statuses["alias"].dropna()) | set(statuses["name"].dropna())
    for path, value, enabled in (("sales.on_status", integration.sales.on_status, integration.sales.enabled),
                                 ("returns.goods.on_status", integration.returns.goods.on_status,
                                  integration.returns.goods.enabled),
                                 ("returns.money.on_status", integration.returns.money.on_status,
                                  integration.returns.money.enabled)):
        if enabled and value is not None and str(value) not in known:
            out.append(f"{base}.{path}: no such KeyCRM status {value!r}")
    if integration.payments.enabled:
        methods = reference.load(store, "keycrm", "payment_method")
        mapped = {str(k) for k in integration.payments.methods}
        for row in methods.itertuples(index=False):
            if {str(row.id), str(row.name), str(row.alias)} & mapped:
                continue
            out.append(f"{base}.payments.methods: KeyCRM payment method '{row.name}' (id {row.id}) is not mapped "
                       "to a Bimp cash desk or bank account; its payments cannot be transferred")
    return out


def _resolved_problems(integration: Integration, index: int, store: Store) -> list[str]:
    resolved = resolve(store, integration, index)
    base = f"integrations[{index}]"
    out = list(resolved.problems)
    if resolved.organization is None and integration.customers.contract_defaults.organization is None:
        out.append(f"{base}.customers.contract_defaults.organization: Bimp has no main organisation; name one")
    if resolved.warehouse is None and integration.main.warehouse is None:
        out.append(f"{base}.main.warehouse: Bimp has no main warehouse; name one")
    return out


def check_integration(integration: Integration, index: int, work_dir: Path | None = None) -> CheckReport:
    """Check one integration against both systems; every problem is collected, nothing is raised."""
    report = CheckReport(integration.name)
    base = f"integrations[{index}]"
    registry = control.key_problems(IntegrationsFile.model_construct(integrations=[integration]))
    report.problems.extend(p.replace("integrations[0]", base, 1) for p in registry)
    with tempfile.TemporaryDirectory(prefix="keybimp-check-", dir=work_dir) as tmp:
        store = Store(integration.name, Path(tmp))
        keycrm_ok = _keycrm(integration, base, store, report)
        bimp_ok = _bimp(integration, base, store, report)
        if keycrm_ok and bimp_ok:
            found = _resolved_problems(integration, index, store) + _extra_references(integration, base, store)
        elif bimp_ok:  # KeyCRM names cannot be checked without KeyCRM: don't report them as missing
            found = [p for p in _resolved_problems(integration, index, store) if "KeyCRM" not in p]
            found += _extra_references(integration, base, store)
        else:
            found = []
        if keycrm_ok:
            found += _keycrm_rules(integration, base, store)
        seen: set[str] = set()
        for problem in found:
            if problem not in seen:
                seen.add(problem)
                report.problems.append(problem)
    if report.ok:
        report.info.append("all named objects resolve")
    return report


def check(settings: IntegrationsFile, names: list[str] | None = None) -> list[CheckReport]:
    """Check the named integrations (default: all); remembers the keys of those that pass (R-CONN-3)."""
    wanted = names or settings.names()
    reports = []
    for index, integration in enumerate(settings.integrations):
        if integration.name in wanted:
            reports.append(check_integration(integration, index))
    passed = IntegrationsFile.model_construct(
        integrations=[settings.get(r.name) for r in reports if r.ok])
    control.remember_keys(passed, {r.name: r.company_ids for r in reports if r.ok})
    return reports


__all__ = ["CheckReport", "check", "check_integration"]
