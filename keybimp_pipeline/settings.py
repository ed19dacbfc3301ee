"""The integrations file (shared/spec/CONFIG.md) as pydantic models, loaded with path-qualified errors.

Why a hand-rolled loader around pydantic: users edit this YAML by hand, so every problem in the file must
be reported at once, each line starting with where it is (``integrations[0].customers.search_by: ...``),
and cross-field rules (R-PROD-2, R-CUST-1, R-CONN-3, ...) must be refused on load, not discovered by a
failing run.  Secrets never live in the file: it names environment variables, and only
:meth:`Integration.keycrm_api_key` / :meth:`Integration.bimp_credentials` read them.  No message of this
module ever contains a secret's value; a KeyCRM key is shown, when at all, as a 12-hex-digit fingerprint.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

CONFIG_ENV = "KEYBIMP_CONFIG"
DEFAULT_CONFIG_FILE = "integrations.yaml"


class SettingsError(Exception):
    """Every problem of a settings file, one message per line, each starting with its path.

    Deliberately *not* a ValueError: raised from a pydantic validator it must propagate as itself,
    not be folded into a ValidationError.
    """

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages: list[str] = list(messages)
        super().__init__("\n".join(self.messages))

    def __str__(self) -> str:
        return "\n".join(self.messages)


def key_fingerprint(secret: str) -> str:
    """A short, non-reversible tag of a secret: lets R-CONN-3 compare keys and logs tell them apart."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# small field types
# --------------------------------------------------------------------------------------------------


def _to_str(value: Any) -> Any:
    """YAML reads `12: ...` or `on_status: 12` as int; KeyCRM ids are keys/strings to us."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


def _keys_to_str(value: Any) -> Any:
    if isinstance(value, dict):
        return {_to_str(k): _to_str(v) for k, v in value.items()}
    return value


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Kyiv)") from exc
    return value


def _check_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https:// (got {value!r})")
    return value.rstrip("/")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
NOT_A_NAME = "(hidden: not an environment variable name)"  # what history and messages show instead


def looks_like_env_name(value: Any) -> bool:
    """True for a plausible environment variable NAME (``KEYCRM_KEY_SHOP``), False for what looks like a
    secret pasted into a ``*_env`` field by mistake: anything outside [A-Za-z_][A-Za-z0-9_]*, mixed case
    (``SeCrEtKey42``: names are written in one case), or a long run of letters and digits without an
    underscore (a token).  Such a value is never echoed anywhere."""
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        return False
    if value != value.upper() and value != value.lower():
        return False
    return not (len(value) >= 24 and "_" not in value and any(ch.isdigit() for ch in value))


def shown_env_name(value: Any) -> str:
    """The variable name as messages may show it: a value that is no name (a secret?) is never shown."""
    return str(value) if looks_like_env_name(value) else NOT_A_NAME


def _check_env_name(value: str) -> str:
    if not looks_like_env_name(value):
        # never echo the value: it may be the secret itself, pasted where its variable's name belongs
        raise ValueError("does not look like an environment variable name — put the secret in the environment "
                         "and the variable's NAME here (like KEYCRM_KEY_SHOP)")
    return value


StrKey = Annotated[str, BeforeValidator(_to_str)]
OptStr = Annotated[str | None, BeforeValidator(_to_str)]
Url = Annotated[str, AfterValidator(_check_url)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
StrMap = Annotated[dict[str, str], BeforeValidator(_keys_to_str)]
def _check_slug(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9-]{1,64}", value):
        raise ValueError(f"must be a slug of a-z, 0-9 and '-' (got {value!r})")
    return value


def _check_company(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        # ValueError, not TypeError: pydantic turns only ValueError into a located validation message
        raise ValueError("must be a string: quote the company code in YAML (\"000001398\")")  # noqa: TRY004
    return value


Slug = Annotated[str, AfterValidator(_check_slug)]
Minutes = Annotated[int, Field(ge=1, le=24 * 60)]


class _Model(BaseModel):
    """Unknown keys are errors (a typo must not silently fall back to a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------


class KeyCRMSettings(_Model):
    url: Url
    account: str | None = None  # display only
    api_key_env: EnvName
    requests_per_minute: Annotated[int, Field(ge=1, le=600)] = 60


class BimpSettings(_Model):
    url: Url
    email_env: EnvName
    password_env: EnvName
    company: Annotated[str, BeforeValidator(_check_company), Field(min_length=1)]  # company code or uuid; quote codes in YAML ("000001398")


class MainSettings(_Model):
    exchange_every_minutes: Minutes = 5  # R-MAIN-1
    reserve: Literal["full", "available_only", "off"] = "full"  # R-MAIN-3
    reload_orders: bool = False  # R-MAIN-2
    warehouse: OptStr = None  # R-PROD-8; None: Bimp's main warehouse


class ProductSettings(_Model):
    search_by: Literal["id", "sku", "name", "name_and_sku"] = "sku"  # R-PROD-1
    allow_create: bool = False  # R-PROD-3
    new_products_group: OptStr = None
    delivery_service: OptStr = None  # R-PROD-7
    unit: str = "шт"


class ContractDefaults(_Model):
    """R-CUST-10: written on every contract the pipeline creates and on its documents."""

    project: OptStr = None
    line_of_business: OptStr = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "UAH"
    organization: OptStr = None
    settlement: Literal["cashless", "cash"] = "cashless"
    cash_kind: Literal["cash_desk", "card"] = "cash_desk"
    cash_desk: OptStr = None


CustomerCriterion = Literal["id", "phone", "email", "name"]


class CustomerSettings(_Model):
    fill_for_all: bool = False  # R-CUST-1
    default_customer: OptStr = None
    default_contract: OptStr = None
    allow_create: bool = True  # R-CUST-3
    search_by: list[CustomerCriterion] = Field(default_factory=lambda: ["phone"])  # R-CUST-2, ordered
    strict_names: bool = False  # R-CUST-6
    contract_defaults: ContractDefaults = Field(default_factory=ContractDefaults)


class PaymentSettings(_Model):
    enabled: bool = False  # R-PAY-1
    reload: bool = False
    methods: StrMap = Field(default_factory=dict)  # KeyCRM method (id or name) -> Bimp money account
    date_source: Literal["status_changed", "payment_date"] = "status_changed"  # R-PAY-4


class SalesSettings(_Model):
    enabled: bool = False  # R-SALE-1
    reload: bool = False
    on_status: OptStr = None  # R-SALE-2
    date: Literal["order_created", "shipped", "closed"] = "order_created"  # R-SALE-3


class GoodsReturnSettings(_Model):
    enabled: bool = False  # R-RET-1
    on_status: OptStr = None


class MoneyRefundSettings(_Model):
    enabled: bool = False  # R-RET-2
    on_status: OptStr = None
    expense_item: OptStr = None  # Bimp needs an expense item on a refund


class ReturnsSettings(_Model):
    goods: GoodsReturnSettings = Field(default_factory=GoodsReturnSettings)
    money: MoneyRefundSettings = Field(default_factory=MoneyRefundSettings)


class StockSettings(_Model):
    enabled: bool = False  # R-STOCK-1
    every_minutes: Minutes = 15
    free_only: bool = True  # R-STOCK-2
    warehouses: dict[StrKey, int] = Field(default_factory=dict)  # Bimp warehouse -> KeyCRM id (R-STOCK-3)
    skip_zero: bool = False  # R-STOCK-4
    all_warehouses: bool = False  # R-STOCK-5
    guard_zeroed_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5  # R-STOCK-7 (a share, not money)


class PriceSettings(_Model):
    enabled: bool = False  # R-PRICE-1
    every_minutes: Minutes = 60
    product_group: OptStr = None  # R-PRICE-2
    price_list: OptStr = None  # R-PRICE-3
    skip_out_of_stock: bool = False  # R-PRICE-4
    create_missing: bool = False  # R-PRICE-5


def _default_statuses() -> dict[str, str]:
    return {"new": "Новий", "in_progress": "В роботі"}


# --------------------------------------------------------------------------------------------------
# one integration
# --------------------------------------------------------------------------------------------------


class Integration(_Model):
    """One KeyCRM account connected to one Bimp company (R-CONN-1); ``name`` is the partition key."""

    name: Slug
    keycrm: KeyCRMSettings
    bimp: BimpSettings
    timezone: Annotated[str, AfterValidator(_check_zone)] = "Europe/Kyiv"
    start_date: date = date(2026, 1, 1)
    main: MainSettings = Field(default_factory=MainSettings)
    products: ProductSettings = Field(default_factory=ProductSettings)
    customers: CustomerSettings = Field(default_factory=CustomerSettings)
    statuses: StrMap = Field(default_factory=_default_statuses)  # R-STAT-1
    payments: PaymentSettings = Field(default_factory=PaymentSettings)
    sales: SalesSettings = Field(default_factory=SalesSettings)
    returns: ReturnsSettings = Field(default_factory=ReturnsSettings)
    stocks: StockSettings = Field(default_factory=StockSettings)
    prices: PriceSettings = Field(default_factory=PriceSettings)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Integration:
        problems = self.problems()
        if problems:
            raise SettingsError(problems)
        return self

    def problems(self) -> list[str]:
        """Cross-field rules of CONFIG.md, as messages relative to this integration."""
        out: list[str] = []
        if self.products.search_by == "id" and not self.products.allow_create:
            out.append("products.search_by: 'id' needs allow_create")  # R-PROD-2
        c = self.customers
        if c.fill_for_all:
            if not c.default_customer:
                out.append("customers.default_customer: required when fill_for_all is on")  # R-CUST-1
            if not c.default_contract:
                out.append("customers.default_contract: required when fill_for_all is on")  # R-CUST-1
        else:
            if not c.search_by:
                out.append("customers.search_by: needs at least one criterion unless fill_for_all is on")
            dup = sorted({x for x in c.search_by if c.search_by.count(x) > 1})
            if dup:
                out.append(f"customers.search_by: {', '.join(repr(x) for x in dup)} listed twice")
            if "id" in c.search_by and not c.allow_create:
                # the id is stored only on counterparties the pipeline created (mirrors R-PROD-2)
                out.append("customers.search_by: 'id' needs allow_create")
        if self.sales.enabled and not self.sales.on_status:
            out.append("sales.on_status: required when sales.enabled")
        if self.returns.goods.enabled and not self.returns.goods.on_status:
            out.append("returns.goods.on_status: required when returns.goods.enabled")
        if self.returns.money.enabled and not self.returns.money.on_status:
            out.append("returns.money.on_status: required when returns.money.enabled")
        if self.returns.money.enabled and not self.returns.money.expense_item:
            out.append("returns.money.expense_item: required when returns.money.enabled (Bimp needs it)")
        if self.stocks.enabled and not self.stocks.warehouses:
            out.append("stocks.warehouses: needs at least one Bimp warehouse -> KeyCRM warehouse id "
                       "when stocks.enabled")
        return out

    # ---- derived values -------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        """The shop's calendar: used only where a calendar day is decided."""
        return ZoneInfo(self.timezone)

    def keycrm_api_key(self) -> str:
        """The KeyCRM key from the environment; the error names the variable, never a value."""
        return _read_env(self.keycrm.api_key_env, "keycrm.api_key_env", self.name)

    def bimp_credentials(self) -> tuple[str, str]:
        """(e-mail, password) for Bimp from the environment."""
        missing = [
            (var, where)
            for var, where in ((self.bimp.email_env, "bimp.email_env"),
                               (self.bimp.password_env, "bimp.password_env"))
            if not os.environ.get(var)
        ]
        if missing:
            raise SettingsError(_missing_env_message(var, where, self.name) for var, where in missing)
        return os.environ[self.bimp.email_env], os.environ[self.bimp.password_env]

    @property
    def fingerprint(self) -> str:
        """Fingerprint of this integration's KeyCRM key (R-CONN-3, R-CONN-6); raises if the var is unset."""
        return key_fingerprint(self.keycrm_api_key())

    def settings_snapshot(self) -> dict[str, Any]:
        """All settings flattened to dotted keys (``customers.contract_defaults.currency``), JSON values.

        For the change history (R-CONN-6): diffing two snapshots gives "what changed: old -> new".  The
        file holds no secrets (only variable names), so nothing here is secret either.
        """
        flat: dict[str, Any] = {}
        _flatten(self.model_dump(mode="json"), "", flat)
        return mask_env_values(flat)


def mask_env_values(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted settings with every ``*_env`` value that is no variable name (a pasted secret) hidden."""
    return {k: (shown_env_name(v) if k.endswith("_env") and v is not None else v) for k, v in flat.items()}


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value


def _missing_env_message(var: str, where: str, integration: str) -> str:
    if not looks_like_env_name(var):
        return (f"{where}: does not look like an environment variable name — put the secret in the environment "
                f"and the variable's NAME here (integration '{integration}')")
    return f"{where}: environment variable {var} is not set (integration '{integration}')"


def _read_env(var: str, where: str, integration: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise SettingsError([_missing_env_message(var, where, integration)])
    return value


# --------------------------------------------------------------------------------------------------
# the file
# --------------------------------------------------------------------------------------------------


class IntegrationsFile(_Model):
    integrations: list[Integration]

    @model_validator(mode="after")
    def _file_rules(self) -> IntegrationsFile:
        problems = _file_problems(enumerate(self.integrations))
        if problems:
            raise SettingsError(problems)
        return self

    def get(self, name: str) -> Integration:
        for integration in self.integrations:
            if integration.name == name:
                return integration
        raise KeyError(f"no integration named {name!r}; known: {', '.join(self.names()) or '(none)'}")

    def names(self) -> list[str]:
        """Integration names in file order (the integration partition keys)."""
        return [i.name for i in self.integrations]


def _file_problems(entries: Iterable[tuple[int, Any]]) -> list[str]:
    """Duplicate names and R-CONN-3 (one KeyCRM key, one integration) across the file.

    ``entries`` are (index, Integration or raw mapping): raw mappings let these checks run even for an
    integration that has other errors, so the user sees every problem at once.
    """
    out: list[str] = []
    seen_names: dict[str, int] = {}
    seen_keys: dict[str, int] = {}  # fingerprint -> index
    seen_env: dict[str, int] = {}  # env var name -> index (the fallback when a variable is unset)
    names: dict[int, str] = {}
    for i, item in entries:
        name, env = _name_and_env(item)
        if name is not None:
            names[i] = name
            if name in seen_names:
                out.append(f"integrations[{i}].name: duplicate integration name '{name}' "
                           f"(also integrations[{seen_names[name]}])")
            else:
                seen_names[name] = i
        if env is None:
            continue
        secret = os.environ.get(env)
        other: int | None = None
        shown = ""
        if secret:
            fp = key_fingerprint(secret)
            if fp in seen_keys:
                other, shown = seen_keys[fp], f"fingerprint {fp}"
            else:
                seen_keys[fp] = i
        if other is None and env in seen_env:
            other, shown = seen_env[env], f"variable {env}"
        seen_env.setdefault(env, i)
        if other is not None:
            out.append(
                f"integrations[{i}].keycrm.api_key_env: the same KeyCRM API key ({shown}) is already used "
                f"by integration '{names.get(other, '?')}' (integrations[{other}]); one KeyCRM account "
                "may be connected only once (R-CONN-3)"
            )
    return out


def _name_and_env(item: Any) -> tuple[str | None, str | None]:
    if isinstance(item, Integration):
        return item.name, item.keycrm.api_key_env
    if not isinstance(item, dict):
        return None, None
    name = item.get("name") if isinstance(item.get("name"), str) else None
    keycrm = item.get("keycrm")
    env = keycrm.get("api_key_env") if isinstance(keycrm, dict) else None
    return name, env if looks_like_env_name(env) else None  # a pasted secret is never compared or shown


def _loc_to_path(loc: Iterable[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


_MESSAGES = {
    "extra_forbidden": "unknown setting (check the spelling)",
    "missing": "required",
}


def _validation_messages(exc: ValidationError, prefix: str = "") -> list[str]:
    out: list[str] = []
    for err in exc.errors(include_url=False):
        loc = _loc_to_path(err["loc"])
        path = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "(file)")
        msg = _MESSAGES.get(err["type"], err["msg"])
        msg = msg.removeprefix("Value error, ")
        if err["type"].startswith("date") and isinstance(err.get("input"), str):  # a date is never a secret
            msg = f"{err['input']!r} is not a date: {err.get('ctx', {}).get('error', msg)} (write YYYY-MM-DD)"
        out.append(f"{path}: {msg}")
    return out


def parse_settings(data: Any) -> IntegrationsFile:
    """Validate an already-parsed settings mapping; every problem at once in one SettingsError."""
    if not isinstance(data, dict):
        raise SettingsError(["(file): must be a mapping with an 'integrations' list"])
    problems: list[str] = []
    for key in data:
        if key != "integrations":
            problems.append(f"{key}: unknown setting (check the spelling)")
    raw_list = data.get("integrations")
    if raw_list is None:
        problems.append("integrations: required")
        raw_list = []
    elif not isinstance(raw_list, list):
        problems.append("integrations: must be a list")
        raw_list = []
    elif not raw_list:  # a file that syncs nothing is a mistake, not a configuration
        problems.append("integrations: the list is empty, so there is nothing to sync; add an integration "
                        "(integrations.example.yaml shows one, key by key)")
    valid: list[tuple[int, Integration]] = []
    for i, raw in enumerate(raw_list):
        prefix = f"integrations[{i}]"
        try:
            valid.append((i, Integration.model_validate(raw)))
        except ValidationError as exc:
            problems.extend(_validation_messages(exc, prefix))
        except SettingsError as exc:
            problems.extend(f"{prefix}.{m}" for m in exc.messages)
    problems.extend(_file_problems(enumerate(raw_list)))
    if problems:
        raise SettingsError(problems)
    return IntegrationsFile.model_validate({"integrations": [integ for _, integ in valid]})


class _Loader(yaml.SafeLoader):
    """YAML's safe loader without its date resolver: `start_date: 2026-09-31` stays text, so pydantic refuses
    it with the file and the setting's path, instead of PyYAML raising a bare ValueError while reading."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def default_settings_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


def load_settings(path: str | Path | None = None) -> IntegrationsFile:
    """Read and validate the integrations file (default: $KEYBIMP_CONFIG, else ./integrations.yaml)."""
    p = Path(path) if path is not None else default_settings_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        named = f"{CONFIG_ENV} names it" if os.environ.get(CONFIG_ENV) else f"{CONFIG_ENV} is not set"
        raise SettingsError([(f"{p.absolute()}: settings file not found ({named}). Set {CONFIG_ENV} to your "
                              "integrations file, or run keybimp in the folder holding integrations.yaml")]) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader, minus dates (see _Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(p)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SettingsError([f"{where}: YAML syntax error: {problem}"]) from None
    if data is None:
        raise SettingsError([f"{p}: the file is empty; it needs an 'integrations' list"])
    try:
        return parse_settings(data)
    except SettingsError as err:  # every message names the file, so a user with several knows which one
        raise SettingsError([f"{p}: {m}" for m in err.messages]) from None


# --------------------------------------------------------------------------------------------------
# Bimp references given by name or uuid
# --------------------------------------------------------------------------------------------------


def _norm_ref(value: Any) -> str:
    return " ".join(str(value).split()).casefold()


def resolve_reference(value: str, candidates: pd.DataFrame, *, path: str, kind: str) -> str:
    """The uuid of the Bimp object ``value`` names (by uuid, else by case-insensitive trimmed name).

    Nothing or several matching is a SettingsError naming ``path`` and the candidates, so the user can
    pick the right spelling or give the uuid.
    """
    want = _norm_ref(value)
    uuids = candidates["uuid"].astype("string")
    by_uuid = candidates[uuids.str.strip().str.casefold() == want]
    if len(by_uuid) >= 1:
        return str(by_uuid["uuid"].iloc[0])
    names = candidates["name"].astype("string").fillna("")
    norm = names.map(_norm_ref)
    hits = candidates[norm == want]
    if len(hits) == 1:
        return str(hits["uuid"].iloc[0])
    if len(hits) > 1:
        listed = _list_candidates(hits)
        raise SettingsError(
            [f"{path}: {len(hits)} Bimp {kind} objects are named {value!r}: {listed}; give the uuid instead"]
        )
    listed = _list_candidates(candidates) if len(candidates) else "(none exist)"
    raise SettingsError([f"{path}: no Bimp {kind} named {value!r}; candidates: {listed}"])


def _list_candidates(frame: pd.DataFrame, limit: int = 30) -> str:
    shown = [f"'{n}' ({u})" for u, n in zip(frame["uuid"].head(limit), frame["name"].head(limit))]
    more = f", ... {len(frame) - limit} more" if len(frame) > limit else ""
    return ", ".join(shown) + more


__all__ = [
    "BimpSettings",
    "ContractDefaults",
    "CustomerSettings",
    "GoodsReturnSettings",
    "Integration",
    "IntegrationsFile",
    "KeyCRMSettings",
    "MainSettings",
    "MoneyRefundSettings",
    "PaymentSettings",
    "PriceSettings",
    "ProductSettings",
    "ReturnsSettings",
    "SalesSettings",
    "SettingsError",
    "StockSettings",
    "default_settings_path",
    "key_fingerprint",
    "load_settings",
    "looks_like_env_name",
    "mask_env_values",
    "parse_settings",
    "resolve_reference",
    "shown_env_name",
]
