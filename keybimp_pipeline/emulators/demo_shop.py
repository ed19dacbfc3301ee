"""A realistic, deterministic demo shop: one (or two) KeyCRM accounts and the Bimp company they feed.

Why this exists: the demo, the end-to-end tests and the benchmarks all need data that looks like a real
Ukrainian online shop (messy phones, typos in names, gift lines, partly matching catalogues) without any
network access and without hand-written fixtures.  Everything is produced from a seed, so the same call
always yields byte-identical JSON, and orders can be streamed (``iter_demo_orders``) so that a benchmark can
produce a million of them without holding a state in memory.

The output follows the emulators' state format (``shared/api/EMULATOR.md``): each collection holds items with
the vendor's field names as the vendor's read endpoints return them.

This module imports nothing from the rest of ``keybimp_pipeline`` (emulators are test equipment).
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

__all__ = [
    "DEMO_BIMP_EMAIL",
    "DEMO_BIMP_PASSWORD",
    "DEMO_COMPANY_CODE",
    "DEMO_COMPANY_NAME",
    "DEMO_COMPANY_UUID",
    "DEMO_KEYCRM_KEY",
    "DEMO_KEYCRM_KEY_2",
    "bimp_state",
    "generate_demo",
    "iter_demo_orders",
    "keycrm_state",
    "shop_order_count",
]

# ---------------------------------------------------------------------------------------------------------
# Public constants (the demo runner, the example integrations file and the tests use these exact values).
# ---------------------------------------------------------------------------------------------------------

#: Fake KeyCRM API keys: 50 base64-like characters, like real keys, but obviously not secrets.
DEMO_KEYCRM_KEY = "demoKeyCrmShop1NotARealKeyForLocalEmulatorOnly0001"
DEMO_KEYCRM_KEY_2 = "demoKeyCrmShop2NotARealKeyForLocalEmulatorOnly0002"
DEMO_BIMP_EMAIL = "demo@keybimp.local"
DEMO_BIMP_PASSWORD = "demo-password-not-secret"
DEMO_COMPANY_CODE = "000001398"
DEMO_COMPANY_UUID = "d3e0c0de-1398-4b1e-8a11-000000001398"
DEMO_COMPANY_NAME = "Демо: інтернет-магазин «Затишок»"

assert len(DEMO_KEYCRM_KEY) == 50 and len(DEMO_KEYCRM_KEY_2) == 50

_NS = uuid.UUID("6f1c3d2a-0b7e-4e59-9c3a-5d4b2a1e0f98")

# Status codes used internally (index into _STATUSES).
NEW, IN_PROGRESS, DELIVERY, COMPLETED, CANCELED, RETURNED = range(6)

#: KeyCRM order statuses: (id, name, alias, group_id, is_closing_order, is_reserved).  Built-in statuses keep
#: English names equal to their alias as on live accounts; custom ones have Ukrainian names.
_STATUSES = [
    (1, "new", "new", 1, False, False),
    (3, "В роботі", "in_progress", 2, False, True),
    (8, "Доставка", "delivery", 4, False, True),
    (12, "completed", "completed", 5, True, False),
    (19, "canceled", "canceled", 6, True, False),
    (20, "Повернення", "returned", 6, True, False),
]

#: Payment methods: id, name, alias.
PM_COD, PM_CARD, PM_BANK = 1, 2, 3
_PAYMENT_METHODS = [
    (PM_COD, "Накладений платіж", "cash_on_delivery"),
    (PM_CARD, "Оплата карткою", "card"),
    (PM_BANK, "Банківський переказ", "bank_transfer"),
]

#: Order sources: id, name, alias, driver, share of orders, import lag (seconds, ordered_at -> created_at).
_SOURCES = [
    (1, "Сайт", "site", "opencart", 0.55, 90),
    (2, "Instagram", "instagram", "other", 0.20, 0),
    (3, "Rozetka", "rozetka", "rozetka", 0.10, 420),
    (4, "Prom.ua", "prom", "promua", 0.08, 300),
    (5, "Телефон", "phone", "other", 0.07, 0),
]

_DELIVERY_SERVICES = [(1, "Нова Пошта", "novaposhta"), (2, "Укрпошта", "ukrposhta"), (3, "Самовивіз", "pickup")]

_KC_WAREHOUSES = [(1, "Основний склад"), (2, "Склад Київ")]

# ---------------------------------------------------------------------------------------------------------
# Reference words
# ---------------------------------------------------------------------------------------------------------

_F_NAMES = [
    "Олена", "Ірина", "Наталія", "Тетяна", "Оксана", "Юлія", "Марія", "Анна", "Катерина", "Світлана",
    "Мар'яна", "Дар'я", "Вікторія", "Софія", "Христина", "Людмила", "Галина", "Ольга", "Алла", "Богдана",
    "Соломія", "Зоряна", "Ярослава", "Інна", "Надія", "Мар'яна", "Дар'я",
]
_M_NAMES = [
    "Олександр", "Андрій", "Сергій", "Володимир", "Дмитро", "Максим", "Іван", "Богдан", "Тарас", "Олег",
    "Юрій", "Віталій", "Назар", "Роман", "Остап", "Мар'ян", "Дем'ян", "В'ячеслав", "Петро", "Михайло",
    "Василь", "Ярослав", "Артем", "Денис", "Євген",
]
_SURNAMES = [
    "Шевченко", "Коваленко", "Бондаренко", "Ткаченко", "Кравченко", "Олійник", "Мельник", "Шевчук", "Поліщук",
    "Лисенко", "Бойко", "Ткачук", "Савченко", "Руденко", "Марченко", "Мороз", "Павленко", "Гончаренко",
    "Литвиненко", "Дем'яненко", "Лук'яненко", "П'ятничук", "Коваль", "Ковальчук", "Кузьменко", "Клименко",
    "Петренко", "Гнатюк", "Савчук", "Романюк", "Білик", "Захарченко", "Яковенко", "Кушнір", "Федорук",
]
_SURNAMES_GENDERED = [("Левицький", "Левицька"), ("Яворський", "Яворська"), ("Вишневський", "Вишневська"),
                      ("Заболотний", "Заболотна"), ("Білий", "Біла")]
_PATRONYMICS = [("Олександрович", "Олександрівна"), ("Іванович", "Іванівна"), ("Петрович", "Петрівна"),
                ("Миколайович", "Миколаївна"), ("Васильович", "Василівна")]
#: Apostrophe forms people actually type in Ukrainian names.
_APOSTROPHES = ["'", "ʼ", "’", "`"]
_APOSTROPHE_P = [0.5, 0.25, 0.2, 0.05]

_TRANSLIT = dict(zip(
    "абвгґдеєжзиіїйклмнопрстуфхцчшщьюя'ʼ’`",
    ["a", "b", "v", "h", "g", "d", "e", "ie", "zh", "z", "y", "i", "i", "i", "k", "l", "m", "n", "o", "p", "r",
     "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "iu", "ia", "", "", "", ""],
    strict=True,
))
_EMAIL_DOMAINS = ["gmail.com", "ukr.net", "i.ua", "meta.ua", "outlook.com", "icloud.com"]
_EMAIL_DOMAIN_P = [0.6, 0.25, 0.05, 0.03, 0.04, 0.03]

_OPERATORS = ["50", "66", "95", "99", "67", "68", "96", "97", "98", "63", "73", "93"]

_CITIES = [
    ("Київ", "Київ", "01001"), ("Львів", "Львівська область", "79000"), ("Харків", "Харківська область", "61000"),
    ("Одеса", "Одеська область", "65000"), ("Дніпро", "Дніпропетровська область", "49000"),
    ("Запоріжжя", "Запорізька область", "69000"), ("Вінниця", "Вінницька область", "21000"),
    ("Полтава", "Полтавська область", "36000"), ("Чернігів", "Чернігівська область", "14000"),
    ("Житомир", "Житомирська область", "10000"), ("Івано-Франківськ", "Івано-Франківська область", "76000"),
    ("Тернопіль", "Тернопільська область", "46000"), ("Ужгород", "Закарпатська область", "88000"),
    ("Рівне", "Рівненська область", "33000"), ("Луцьк", "Волинська область", "43000"),
    ("Хмельницький", "Хмельницька область", "29000"), ("Черкаси", "Черкаська область", "18000"),
    ("Суми", "Сумська область", "40000"), ("Кропивницький", "Кіровоградська область", "25000"),
    ("Миколаїв", "Миколаївська область", "54000"), ("Біла Церква", "Київська область", "09100"),
    ("Бровари", "Київська область", "07400"), ("Ірпінь", "Київська область", "08200"),
]
_CITY_P = np.array([18, 10, 8, 7, 7, 3, 4, 3, 2, 2, 4, 3, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2], dtype=float)
_CITY_P /= _CITY_P.sum()

_BUYER_COMMENTS = ["Зателефонуйте перед відправкою, будь ласка", "Подарункове пакування, будь ласка",
                   "Можна без дзвінка", "Доставка після 18:00", "Чи є інший колір?"]
_PROMOCODES = ["WINTER10", "ZATYSHOK", "FIRST50", "BLACKFRIDAY"]

# Catalogue templates: (name, sku prefix, kind, min price, max price).  kind: "apparel" (sizes x colours),
# "colour" (colours only), "bedding" (sizes only), "simple" (one offer).
_BASES = [
    ("Футболка бавовняна", "TS", "apparel", 399, 799),
    ("Чашка керамічна", "CP", "simple", 199, 349),
    ("Худі оверсайз", "HD", "apparel", 999, 1899),
    ("Плед флісовий", "PL", "colour", 499, 999),
    ("Свічка ароматична", "CN", "simple", 249, 449),
    ("Світшот", "SW", "apparel", 799, 1499),
    ("Комплект постільної білизни", "BL", "bedding", 1299, 2599),
    ("Шкарпетки, набір 3 пари", "SK", "simple", 199, 299),
    ("Сукня міні з мусліну", "DR", "apparel", 899, 1699),
    ("Подушка декоративна", "PD", "colour", 299, 599),
    ("Еко-сумка", "BG", "simple", 249, 399),
    ("Джинси прямі", "JN", "apparel", 1099, 1999),
    ("Рушник махровий", "RS", "bedding", 199, 449),
    ("Рюкзак міський", "BP", "simple", 899, 1599),
    ("Піжама фланелева", "PJ", "apparel", 699, 1299),
    ("Шапка в'язана", "HT", "colour", 299, 499),
    ("Термокухоль", "TM", "simple", 399, 699),
    ("Спортивні штани", "PT", "apparel", 699, 1199),
    ("Ароматичний дифузор", "DF", "simple", 349, 599),
    ("Лонгслів", "LS", "apparel", 499, 899),
    ("Блокнот у лінію А5", "NB", "simple", 149, 249),
    ("Сорочка лляна", "SH", "apparel", 899, 1599),
    ("Тарілка керамічна", "TP", "simple", 179, 299),
    ("Кардиган в'язаний", "KR", "apparel", 1199, 1999),
    ("Килимок для ванної", "KV", "colour", 299, 549),
]
_MODELS = ["Карпати", "Дніпро", "Львів", "Ранок", "Затишок", "Смерека", "Полтава", "Соняшник", "Калина", "Ясен",
           "Буковина", "Світанок", "Оберіг", "Мрія", "Говерла", "Тиса", "Берест", "Лелека", "Зоряна", "Верес"]
_SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
_BEDDING_SIZES = {"BL": ["полуторний", "двоспальний", "євро", "сімейний"], "RS": ["30×50", "50×90", "70×140"]}
_COLOURS = [("чорний", "BLK"), ("білий", "WHT"), ("сірий", "GRY"), ("бежевий", "BEI"), ("оливковий", "OLV"),
            ("синій", "BLU"), ("бордовий", "BRD"), ("рожевий", "PNK")]
_GIFTS = [("Подарункова листівка", "GIFT-CARD"), ("Стікерпак «Затишок»", "GIFT-STICKERS")]

_SHARED_PRODUCTS = 70  # products the second shop sells under the same SKUs as the first


# ---------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------

def _uuid(*parts: object) -> str:
    """A stable uuid for a demo object, so re-generating gives the same ids."""
    return str(uuid.uuid5(_NS, "|".join(str(p) for p in parts)))


def _money(kop: int) -> int | float:
    """KeyCRM money: an integer when whole, a two-decimal number otherwise (as live bodies send it)."""
    kop = int(kop)
    return kop // 100 if kop % 100 == 0 else round(kop / 100, 2)


def _ts(seconds: np.ndarray) -> list[str]:
    """Epoch seconds -> KeyCRM's live timestamp form ``2026-11-13T18:46:36.000000Z`` (vectorised)."""
    s = np.datetime_as_string(np.asarray(seconds, dtype="int64").astype("datetime64[s]"), unit="s")
    return [x + ".000000Z" for x in s.tolist()]


def _ts1(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def shop_order_count(orders: int, shop: int) -> int:
    """How many orders shop ``shop`` holds in a demo of size ``orders`` (the second shop is half as busy)."""
    return orders if shop == 1 else max(1, orders // 2)


def _offer_target(orders: int) -> int:
    """400 offers for any normal size; more only for huge benchmark runs, so lines stay spread out."""
    return 400 if orders <= 200_000 else min(4000, orders // 500)


# ---------------------------------------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------------------------------------

@dataclass
class _Offer:
    sku: str
    product: int  # index into _Catalogue.products
    name: str  # the line name (product name plus variant values)
    properties: list[dict]
    price: int  # kopiyky
    purchased: int  # kopiyky
    gift: bool = False
    barcode: str | None = None

    @property
    def money(self) -> tuple[int | float, int | float]:
        """(price, purchased price) as KeyCRM numbers, computed once (this sits in the hot loop)."""
        cached = self.__dict__.get("_money")
        if cached is None:
            cached = self.__dict__["_money"] = (_money(self.price), _money(self.purchased))
        return cached


@dataclass
class _Product:
    name: str
    template: int
    kind: str
    category_id: int
    offers: list[int] = field(default_factory=list)
    description: str = ""


@dataclass
class _Catalogue:
    products: list[_Product]
    offers: list[_Offer]
    popularity: np.ndarray  # probability per offer of being picked for a (non-gift) line
    gift_offers: np.ndarray  # offer indices of gift items

    @property
    def sku_index(self) -> dict[str, int]:
        return {o.sku: i for i, o in enumerate(self.offers)}


def _template(i: int) -> tuple[str, str, str, int, int]:
    base, prefix, kind, lo, hi = _BASES[i % len(_BASES)]
    model = _MODELS[(i // len(_BASES)) % len(_MODELS)]
    rnd = i // (len(_BASES) * len(_MODELS))
    name = f"{base} «{model}»" + (f" {rnd + 1}" if rnd else "")
    return name, prefix, kind, lo, hi


def _variant_axes(i: int, kind: str, prefix: str, rng: np.random.Generator) -> list[list[tuple[str, str, str]]]:
    """All possible variants of template ``i`` as lists of (property name, value, sku part), shuffled."""
    colours = [_COLOURS[k] for k in sorted(rng.choice(len(_COLOURS), size=4, replace=False))]
    colour_name = "колір" if i % 37 == 11 else "Колір"  # live data: property names are free text
    if kind == "apparel":
        combos = [[(colour_name, c, cc), ("Розмір", s, s)] for c, cc in colours for s in _SIZES]
    elif kind == "colour":
        combos = [[(colour_name, c, cc)] for c, cc in colours]
    elif kind == "bedding":
        sizes = _BEDDING_SIZES[prefix]
        combos = [[("Розмір", s, f"S{k + 1}")] for k, s in enumerate(sizes)]
    else:
        combos = [[]]
    return combos


def _build_products(template_ids: list[int], n_offers: int, fixed: dict[int, int], cat_seed: int,
                    first_product_id_offset: int = 0) -> list[tuple[int, list[list[tuple[str, str, str]]]]]:
    """Choose how many variants each template gets so that the catalogue has exactly ``n_offers`` offers.

    ``fixed`` pins the variant count of templates shared with another shop (same SKUs in both).
    """
    axes = {}
    for t in template_ids:
        _, prefix, kind, _, _ = _template(t)
        axes[t] = _variant_axes(t, kind, prefix, np.random.default_rng([cat_seed, t, 1]))
    counts = {t: (fixed[t] if t in fixed else (1 if len(axes[t]) == 1 else 2)) for t in template_ids}
    free = [t for t in template_ids if t not in fixed and len(axes[t]) > 1]
    remaining = n_offers - sum(counts.values())
    rng = np.random.default_rng([cat_seed, 99, len(template_ids)])
    while remaining > 0 and free:
        open_ = [t for t in free if counts[t] < len(axes[t])]
        if not open_:
            break
        pick = open_[int(rng.integers(len(open_)))]
        counts[pick] += 1
        remaining -= 1
    out = []
    for t in template_ids:
        combos = axes[t]
        order = np.random.default_rng([cat_seed, t, 2]).permutation(len(combos))
        chosen = sorted(order[: counts[t]].tolist())
        out.append((t, [combos[k] for k in chosen]))
    return out


def _catalogue(shop: int, orders: int, seed: int) -> _Catalogue:
    """The KeyCRM catalogue of shop ``shop``; shop 2 shares its first products with shop 1."""
    n_offers = _offer_target(orders)
    n_products = max(len(_GIFTS) + 1, round(n_offers * 0.3))
    n_regular = n_products - len(_GIFTS)
    n_gift_offers = len(_GIFTS)
    if shop == 1:
        templates = list(range(n_regular))
        layout = _build_products(templates, n_offers - n_gift_offers, {}, seed)
    else:
        first = _build_products(list(range(n_regular)), n_offers - n_gift_offers, {}, seed)
        shared = first[:_SHARED_PRODUCTS]
        own = list(range(n_regular, n_regular + n_regular - len(shared)))
        fixed = {t: len(v) for t, v in shared}
        layout = _build_products([t for t, _ in shared] + own, n_offers - n_gift_offers, fixed, seed)

    rng = np.random.default_rng([seed, 11])  # prices are the same for a template in every shop
    products: list[_Product] = []
    offers: list[_Offer] = []
    for t, variants in layout:
        name, prefix, kind, lo, hi = _template(t)
        prng = np.random.default_rng([seed, t, 3])
        base_price = int(prng.integers(lo // 10, hi // 10 + 1)) * 10 - 1  # 399, 1249, ...
        p = _Product(name=name, template=t, kind=kind, category_id=1 + (t % len(_BASES)) % 5,
                     description=f"{name}. Виробник: Україна.")
        for v in variants:
            props = [{"name": pn, "value": pv} for pn, pv, _ in v]
            sku = f"{prefix}-{t + 1:04d}" + "".join(f"-{part}" for _, _, part in v)
            price = base_price + (100 if any(pv in ("XL", "XXL", "євро", "сімейний", "70×140")
                                             for _, pv, _ in v) else 0)
            purchased_pct = float(prng.uniform(0.42, 0.6))
            disp = name + (f" ({', '.join(pv for _, pv, _ in v)})" if v else "")
            barcode = f"482{int(prng.integers(10**9, 10**10 - 1)):010d}" if prng.random() < 0.6 else None
            p.offers.append(len(offers))
            offers.append(_Offer(sku=sku, product=len(products), name=disp, properties=props,
                                 price=price * 100, purchased=round(price * purchased_pct * 100),
                                 barcode=barcode))
        products.append(p)
    for gname, gsku in _GIFTS:
        p = _Product(name=gname, template=-1, kind="gift", category_id=6, description="Подарунок до замовлення.")
        p.offers.append(len(offers))
        offers.append(_Offer(sku=gsku, product=len(products), name=gname, properties=[], price=0,
                             purchased=int(rng.integers(300, 1500)), gift=True))
        products.append(p)

    # Popularity: Zipf-like over a seeded permutation of the regular offers.
    n = len(offers)
    regular = np.array([not o.gift for o in offers])
    ranks = np.random.default_rng([seed, shop, 12]).permutation(n)
    w = 1.0 / (ranks + 8.0) ** 0.9
    w[~regular] = 0.0
    return _Catalogue(products=products, offers=offers, popularity=w / w.sum(),
                      gift_offers=np.flatnonzero(~regular))


# ---------------------------------------------------------------------------------------------------------
# Buyers
# ---------------------------------------------------------------------------------------------------------

@dataclass
class _Buyers:
    full_name: list[str]
    phone: list[str]  # as typed
    phone_e164: list[str]  # +380XXXXXXXXX
    second_phone: list[str | None]
    email: list[str | None]
    manager_id: list[int | None]


_PHONE_FORMATS = (
    "+380{n}", "380{n}", "0{n}", "+38 0{op} {a} {b} {c}", "0{op} {a}-{b}-{c}", "(0{op}){a}{b}{c}",
    "+38 (0{op}) {a}-{b}-{c}", "0{op}-{a}-{b}-{c}", "+380 {op} {a} {b}{c}",
)


def _format_phone(nat9: str, style: int) -> str:
    """Render a 9-digit national number the way people type it."""
    return _PHONE_FORMATS[style].format(n=nat9, op=nat9[:2], a=nat9[2:5], b=nat9[5:7], c=nat9[7:9])


_PHONE_STYLE_P = np.array([40, 8, 15, 8, 8, 5, 8, 4, 4], dtype=float)
_PHONE_STYLE_P /= _PHONE_STYLE_P.sum()


_TRANSLIT_TABLE = str.maketrans(_TRANSLIT)


def _translit(s: str) -> str:
    return s.lower().translate(_TRANSLIT_TABLE)


def _buyer_count(orders: int) -> int:
    return max(4, round(orders * 0.4))


def _buyers(shop: int, orders: int, seed: int) -> _Buyers:
    """Buyers of one shop: Ukrainian names with real-world mess, phones typed every which way."""
    n = _buyer_count(shop_order_count(orders, shop))
    rng = np.random.default_rng([seed, shop, 21])
    female = rng.random(n) < 0.68
    fi = rng.integers(0, len(_F_NAMES), n)
    mi = rng.integers(0, len(_M_NAMES), n)
    si = rng.integers(0, len(_SURNAMES) + len(_SURNAMES_GENDERED), n)
    pi = rng.integers(0, len(_PATRONYMICS), n)
    layout = rng.choice(3, size=n, p=[0.65, 0.30, 0.05])  # "Ім'я Прізвище", "Прізвище Ім'я", with patronymic
    quirk = rng.choice(6, size=n, p=[0.92, 0.03, 0.01, 0.01, 0.015, 0.015])
    apos = rng.choice(len(_APOSTROPHES), size=n, p=_APOSTROPHE_P)
    ops = rng.integers(0, len(_OPERATORS), n)
    nums = rng.integers(0, 10**7, n)
    styles = rng.choice(len(_PHONE_STYLE_P), size=n, p=_PHONE_STYLE_P)
    has_email = rng.random(n) < 0.85
    email_style = rng.integers(0, 4, n)
    email_num = rng.integers(1, 2000, n)
    domain = rng.choice(len(_EMAIL_DOMAINS), size=n, p=_EMAIL_DOMAIN_P)
    second = rng.random(n) < 0.03
    manager = rng.integers(0, 4, n)
    typo_pos = rng.integers(1, 4, n)

    # Plain lists: element access on numpy arrays is slow in a Python loop.
    (female, fi, mi, si, pi, layout, quirk, apos, ops, nums, styles, has_email, email_style, email_num, domain,
     manager, typo_pos) = (a.tolist() for a in (female, fi, mi, si, pi, layout, quirk, apos, ops, nums, styles,
                                                has_email, email_style, email_num, domain, manager, typo_pos))
    names, phones, e164, seconds, emails, managers = [], [], [], [], [], []
    for k in range(n):
        if female[k]:
            first = _F_NAMES[fi[k]]
        else:
            first = _M_NAMES[mi[k]]
        s = int(si[k])
        surname = _SURNAMES[s] if s < len(_SURNAMES) else _SURNAMES_GENDERED[s - len(_SURNAMES)][int(female[k])]
        if layout[k] == 0:
            full = f"{first} {surname}"
        elif layout[k] == 1:
            full = f"{surname} {first}"
        else:
            full = f"{surname} {first} {_PATRONYMICS[pi[k]][int(female[k])]}"
        if "'" in full:
            full = full.replace("'", _APOSTROPHES[apos[k]])
        q = quirk[k]
        if q == 1:
            full = full + " "  # trailing space, as typed on a phone
        elif q == 2:
            full = full.replace(" ", "  ", 1)
        elif q == 3:
            full = full.lower()
        elif q == 4 and len(first) > 4:  # two letters swapped in the first name
            p = int(typo_pos[k])
            w = list(full)
            w[p], w[p + 1] = w[p + 1], w[p]
            full = "".join(w)
        elif q == 5:
            full = " " + full
        nat9 = f"{_OPERATORS[ops[k]]}{nums[k]:07d}"
        names.append(full)
        phones.append(_format_phone(nat9, int(styles[k])))
        e164.append("+380" + nat9)
        seconds.append(None)
        if has_email[k]:
            f_lat, s_lat = _translit(first), _translit(surname)
            local = [f"{f_lat}.{s_lat}", f"{s_lat}{email_num[k]}", f"{f_lat}{s_lat[:1]}{email_num[k] % 100}",
                     f"{f_lat}_{s_lat}"][email_style[k]]
            emails.append(f"{local}@{_EMAIL_DOMAINS[domain[k]]}")
        else:
            emails.append(None)
        managers.append(int(manager[k]) if manager[k] else None)

    # A few buyers share a phone with another buyer (a family ordering from one number), typed differently.
    n_shared = max(1, n // 100) if n >= 2 else 0
    for j in range(n_shared):
        a, b = 2 * j, 2 * j + 1
        if b >= n:
            break
        nat9 = e164[a][4:]
        e164[b] = e164[a]
        phones[b] = _format_phone(nat9, (int(styles[a]) + 3) % len(_PHONE_STYLE_P))
    for k in np.flatnonzero(second).tolist():
        seconds[k] = f"+380{_OPERATORS[(ops[k] + 5) % len(_OPERATORS)]}{(nums[k] * 7 + 13) % 10**7:07d}"

    if shop == 2:
        # Some people buy in both shops: copy identities from shop 1 (typed afresh).
        first_shop = _buyers(1, orders, seed)
        k = min(n // 20, len(first_shop.full_name))
        pick = np.random.default_rng([seed, 22]).choice(len(first_shop.full_name), size=k, replace=False)
        for dst, src in enumerate(sorted(pick.tolist()), start=n - k):
            names[dst] = first_shop.full_name[src].strip()
            e164[dst] = first_shop.phone_e164[src]
            phones[dst] = e164[dst]
            emails[dst] = first_shop.email[src]
    return _Buyers(names, phones, e164, seconds, emails, managers)


# ---------------------------------------------------------------------------------------------------------
# Orders (streamed in chunks; numpy draws, then plain dicts)
# ---------------------------------------------------------------------------------------------------------

_CHUNK = 5_000
# Status probabilities by order age (days): new, in_progress, delivery, completed, canceled, returned.
_AGE_EDGES = np.array([1.0, 3.0, 10.0])
_STATUS_P = np.array([
    [0.55, 0.30, 0.10, 0.00, 0.05, 0.00],
    [0.08, 0.30, 0.42, 0.12, 0.08, 0.00],
    [0.02, 0.06, 0.28, 0.54, 0.07, 0.03],
    [0.004, 0.011, 0.025, 0.82, 0.09, 0.05],
])
_STATUS_CUM = np.cumsum(_STATUS_P, axis=1)
_STATUS_CUM[:, -1] = 1.0 + 1e-9
# Share of orders per hour of day (UTC; the shop is in Kyiv, UTC+2 in winter).
_HOUR_W = np.array([4, 3, 2, 1, 1, 2, 4, 6, 7, 8, 8, 8, 8, 8, 9, 10, 11, 12, 12, 11, 9, 7, 6, 5], dtype=float)
_HOUR_W = np.roll(_HOUR_W, -2) / _HOUR_W.sum()


@dataclass
class _Plan:
    """Whole-run arrays drawn once (cheap even for a million orders): times and buyers per order."""

    n: int
    created: np.ndarray  # int64 epoch seconds, ascending (ids grow with time)
    buyer: np.ndarray  # int32 index into buyers
    now: int
    catalogue: _Catalogue
    buyers: _Buyers
    buyer_created: np.ndarray  # int64 epoch seconds per buyer
    buyer_ts: list[str] = field(default_factory=list)  # the same, formatted
    buyer_objs: list[dict] = field(default_factory=list)  # the buyer as embedded in an order


def _plan(orders: int, seed: int, days: int, end: date, shop: int) -> _Plan:
    n = shop_order_count(orders, shop)
    rng = np.random.default_rng([seed, shop, 31])
    now = _epoch(end + timedelta(days=1))
    start = now - days * 86400
    # Business grows a little over the window.
    day = np.floor(days * rng.random(n) ** 0.85).astype(np.int64)
    hour = rng.choice(24, size=n, p=_HOUR_W)
    created = start + day * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    created = np.minimum(created, now - 60)
    created.sort()
    buyers = _buyers(shop, orders, seed)
    nb = len(buyers.full_name)
    loyal = max(1, nb // 10)
    buyer = np.where(rng.random(n) < 0.3, rng.integers(0, loyal, n), rng.integers(0, nb, n)).astype(np.int32)
    # Buyers are created with their first order; buyers without orders came earlier (leads, old customers).
    first = np.full(nb, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, buyer, created)
    early = start - rng.integers(86400, 400 * 86400, nb)
    buyer_created = np.where(first == np.iinfo(np.int64).max, early, first)
    buyer_ts = _ts(buyer_created)
    buyer_objs = [
        {"id": k + 1, "company_id": None, "full_name": buyers.full_name[k], "birthday": None,
         "phone": buyers.phone[k], "email": buyers.email[k], "note": None, "manager_id": buyers.manager_id[k],
         "has_duplicates": 0, "deleted_at": None, "created_at": buyer_ts[k], "updated_at": buyer_ts[k]}
        for k in range(nb)
    ]
    return _Plan(n=n, created=created, buyer=buyer, now=now, catalogue=_catalogue(shop, orders, seed),
                 buyers=buyers, buyer_created=buyer_created, buyer_ts=buyer_ts, buyer_objs=buyer_objs)


def iter_demo_orders(orders: int = 3000, *, seed: int = 20261203, days: int = 90, end: date = date(2026, 12, 1),
                     shop: int = 1) -> Iterator[dict]:
    """Stream the KeyCRM orders of shop ``shop`` of a demo of size ``orders``, oldest first.

    Yields exactly what ``generate_demo`` puts in that shop's state (``keycrm[...]["orders"]``), but chunk by
    chunk, so a benchmark can produce a million orders without holding them all.
    """
    return _orders_of(_plan(orders, seed, days, end, shop), seed, shop)


def _orders_of(plan: _Plan, seed: int, shop: int) -> Iterator[dict]:
    line_id = 1
    pay_id = 1
    for c0 in range(0, plan.n, _CHUNK):
        c1 = min(plan.n, c0 + _CHUNK)
        # The chunk creates hundreds of thousands of small acyclic containers; the cyclic collector would
        # rescan them again and again (half the run time), so it is paused while a chunk is built.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            chunk = _order_chunk(plan, c0, c1, seed, shop, line_id, pay_id)
        finally:
            if gc_was_on:
                gc.enable()
        for o in chunk:
            line_id += len(o["products"])
            pay_id += len(o["payments"])
            yield o


def _order_chunk(plan: _Plan, c0: int, c1: int, seed: int, shop: int, line_id: int, pay_id: int) -> list[dict]:
    m = c1 - c0
    rng = np.random.default_rng([seed, shop, 41, c0])
    cat = plan.catalogue
    now = plan.now
    created = plan.created[c0:c1]
    buyer = plan.buyer[c0:c1]

    # --- header draws -----------------------------------------------------------------------------------
    src_p = np.array([s[4] for s in _SOURCES])
    src = rng.choice(len(_SOURCES), size=m, p=src_p / src_p.sum())
    lag = np.array([s[5] for s in _SOURCES])[src]
    ordered = created - (rng.random(m) * lag).astype(np.int64)
    age = (now - created) / 86400.0
    bucket = np.searchsorted(_AGE_EDGES, age, side="right")
    status = (rng.random(m)[:, None] > _STATUS_CUM[bucket]).sum(axis=1)
    status = np.minimum(status, RETURNED)

    delivery = rng.choice(3, size=m, p=[0.75, 0.15, 0.10])  # index into _DELIVERY_SERVICES
    warehouse = np.where(delivery == 2, 2, np.where(rng.random(m) < 0.2, 2, 1))
    method = rng.choice([PM_COD, PM_CARD, PM_BANK], size=m, p=[0.55, 0.35, 0.10])
    prepay = (method == PM_COD) & (delivery != 2) & (rng.random(m) < 0.07)
    card_paid = rng.random(m) < 0.92
    bank_paid_early = rng.random(m) < 0.5

    # Timeline (all clamped to the demo's "now").
    ship_day_off = rng.choice(3, size=m, p=[0.4, 0.4, 0.2])
    created_day = created // 86400 * 86400
    ship_date = created_day + ship_day_off * 86400  # midnight UTC of the shipping day
    ship_moment = np.maximum(ship_date + rng.integers(8 * 3600, 18 * 3600, m), created + 1800)
    changed = created.copy()
    changed = np.where(status == IN_PROGRESS, created + rng.integers(600, 86400, m), changed)
    changed = np.where(status == DELIVERY, ship_moment, changed)
    changed = np.where(status == COMPLETED, ship_moment + rng.integers(1, 6, m) * 86400
                       + rng.integers(-4 * 3600, 4 * 3600, m), changed)
    changed = np.where(status == CANCELED, created + rng.integers(1800, 3 * 86400, m), changed)
    changed = np.where(status == RETURNED, ship_moment + rng.integers(7, 15, m) * 86400, changed)
    late = changed > now - 30  # would lie in the future: spread it over what is left of the window instead
    changed = np.where(late, created + (rng.random(m) * np.maximum(now - 30 - created, 0)).astype(np.int64),
                       changed)
    changed = np.clip(changed, created, now - 30)
    shipped = np.isin(status, (DELIVERY, COMPLETED, RETURNED))
    ship_date = np.minimum(ship_date, changed // 86400 * 86400)
    edited = np.where(rng.random(m) < 0.2, rng.integers(1, 7200, m), 0)
    updated = np.minimum(changed + edited, now - 1)

    card_pay_at = np.minimum(created + rng.integers(60, 1800, m), now - 10)
    bank_pay_at = np.clip(created + rng.integers(7200, 36 * 3600, m), created, changed)
    cod_pay_at = np.clip(ship_moment + rng.integers(1, 4, m) * 86400, created, changed)

    shipping_cost = np.where(delivery == 2, 0, rng.choice([0, 50, 60, 70, 80, 90, 100, 120], size=m,
                                                         p=[0.4, 0.12, 0.12, 0.1, 0.1, 0.06, 0.06, 0.04]))
    order_disc_kind = rng.choice(3, size=m, p=[0.92, 0.05, 0.03])  # none, fixed amount, percent
    order_disc_fixed = rng.choice([50, 100, 150, 200], size=m)
    order_disc_pct = rng.choice([5, 10], size=m)
    promocode = rng.integers(0, len(_PROMOCODES), m)
    gift = rng.random(m) < 0.04
    gift_offer = cat.gift_offers[rng.integers(0, len(cat.gift_offers), m)]
    comment = np.where(rng.random(m) < 0.06, rng.integers(0, len(_BUYER_COMMENTS), m), -1)
    manager = rng.integers(1, 4, m)
    city = rng.choice(len(_CITIES), size=m, p=_CITY_P)
    branch = rng.integers(1, 400, m)
    postomat = rng.random(m) < 0.2
    other_recipient = rng.random(m) < 0.08
    tracking = rng.integers(10**9, 10**10, m)
    source_no = rng.integers(10**5, 10**6, m)

    # --- line draws -------------------------------------------------------------------------------------
    n_lines = rng.choice([1, 2, 3, 4], size=m, p=[0.62, 0.25, 0.09, 0.04])
    total_lines = int(n_lines.sum())
    line_offer = rng.choice(len(cat.offers), size=total_lines, p=cat.popularity)
    line_qty = rng.choice([1, 2, 3], size=total_lines, p=[0.85, 0.12, 0.03])
    line_disc_pct = np.where(rng.random(total_lines) < 0.05, rng.choice([10, 15, 20], size=total_lines), 0)
    bounds = np.concatenate([[0], np.cumsum(n_lines)])

    # Vectorised string columns.
    s_created = _ts(created)
    s_ordered = _ts(ordered)
    s_changed = _ts(changed)
    s_updated = _ts(updated)
    s_card = _ts(card_pay_at)
    s_bank = _ts(bank_pay_at)
    s_cod = _ts(cod_pay_at)
    s_ship = _ts(ship_date)

    offers = cat.offers
    b = plan.buyers
    wh_obj = {w: {"id": w, "name": n, "description": None, "is_active": True} for w, n in _KC_WAREHOUSES}
    offer_id_of = list(range(1, len(offers) + 1))
    product_id_of = [o.product + 1 for o in offers]

    # Plain Python values from here on: indexing numpy arrays element by element is several times slower.
    (status, buyer, src, prepay, card_paid, bank_paid_early, method, delivery, warehouse, shipped,
     shipping_cost, order_disc_kind, order_disc_fixed, order_disc_pct, promocode, gift, gift_offer, comment,
     manager, city, branch, postomat, other_recipient, tracking, source_no, line_offer, line_qty,
     line_disc_pct, bounds) = (
        a.tolist() for a in (status, buyer, src, prepay, card_paid, bank_paid_early, method, delivery,
                             warehouse, shipped, shipping_cost, order_disc_kind, order_disc_fixed,
                             order_disc_pct, promocode, gift, gift_offer, comment, manager, city, branch,
                             postomat, other_recipient, tracking, source_no, line_offer, line_qty,
                             line_disc_pct, bounds))

    # Per-offer line templates and per-buyer dicts: copying a prepared dict is far cheaper than building one.
    line_tpl = [_line_template(of, offer_id_of[i], product_id_of[i]) for i, of in enumerate(offers)]
    buyer_tpl = plan.buyer_objs
    wh_list = {w: wh_obj[w] for w in wh_obj}
    out: list[dict] = []
    append = out.append
    for k in range(m):
        oid = c0 + k + 1
        st = status[k]
        bi = buyer[k]
        ts_c = s_created[k]
        wh = wh_list[warehouse[k]]
        # lines
        lines = []
        seen: dict[int, dict] = {}
        products_total = 0
        purchased_total = 0
        line_disc_total = 0
        lid = line_id
        for j in range(bounds[k], bounds[k + 1]):
            oi = line_offer[j]
            q = line_qty[j]
            of = offers[oi]
            ln = seen.get(oi)
            if ln is not None:  # the same offer picked twice: one line with a larger quantity
                disc = ln["_disc"]
                ln["quantity"] += q
                products_total += (of.price - disc) * q
                purchased_total += of.purchased * q
                line_disc_total += disc * q
                if disc:
                    ln["total_discount"] = _money(disc * ln["quantity"])
                continue
            pct = line_disc_pct[j]
            ln = _new_line(line_tpl[oi], lid, q, ts_c, wh)
            lid += 1
            disc = 0
            if pct:
                disc = of.price * pct // 100
                ln["discount_amount"] = _money(disc)
                ln["discount_percent"] = pct
                ln["total_discount"] = _money(disc * q)
                ln["price_sold"] = _money(of.price - disc)
            ln["_disc"] = disc
            seen[oi] = ln
            lines.append(ln)
            products_total += (of.price - disc) * q
            purchased_total += of.purchased * q
            line_disc_total += disc * q
        if gift[k]:
            gi = gift_offer[k]
            if gi not in seen:
                ln = _new_line(line_tpl[gi], lid, 1, ts_c, wh)
                ln["comment"] = "Подарунок"
                ln["_disc"] = 0
                lid += 1
                lines.append(ln)
                purchased_total += offers[gi].purchased
        for ln in lines:
            del ln["_disc"]
        line_id = lid

        # totals (kopiyky)
        dk = order_disc_kind[k]
        if dk == 1:
            order_disc = min(order_disc_fixed[k] * 100, products_total // 2)
            disc_pct = None
        elif dk == 2:
            disc_pct = order_disc_pct[k]
            order_disc = products_total * disc_pct // 100
        else:
            order_disc, disc_pct = 0, None
        ship_kop = shipping_cost[k] * 100 if products_total < 150000 else 0
        grand = products_total - order_disc + ship_kop

        # payments
        m_id = method[k]
        if prepay[k]:
            pre = min(20000, grand)
            pre_status = "paid" if st != CANCELED else "canceled"
            rest_status = "paid" if st in (COMPLETED, RETURNED) else ("canceled" if st == CANCELED else "not_paid")
            pays = [_payment(pay_id, oid, PM_CARD, pre, pre_status, s_card[k], "Передоплата", True),
                    _payment(pay_id + 1, oid, PM_COD, grand - pre, rest_status,
                             s_cod[k] if rest_status == "paid" else ts_c, None, False)]
            paid_total = (pre if pre_status == "paid" else 0) + (grand - pre if rest_status == "paid" else 0)
        else:
            if m_id == PM_CARD:
                if st == CANCELED:
                    p_status, p_at = ("canceled" if card_paid[k] else "not_paid"), ts_c
                elif card_paid[k] or st == COMPLETED or st == RETURNED:
                    p_status, p_at = "paid", s_card[k]
                else:
                    p_status, p_at = "not_paid", ts_c
            elif m_id == PM_BANK:
                paid = st == DELIVERY or st == COMPLETED or st == RETURNED or (st == IN_PROGRESS
                                                                                and bank_paid_early[k])
                p_status = "paid" if paid else ("canceled" if st == CANCELED else "not_paid")
                p_at = s_bank[k] if paid else ts_c
            else:
                paid = st == COMPLETED or st == RETURNED
                p_status = "paid" if paid else ("canceled" if st == CANCELED else "not_paid")
                p_at = s_cod[k] if paid else ts_c
            pays = [_payment(pay_id, oid, m_id, grand, p_status, p_at, None, m_id == PM_CARD)]
            paid_total = grand if p_status == "paid" else 0
        pay_id += len(pays)
        pay_status = ("not_paid" if paid_total == 0 else "paid" if paid_total == grand
                      else "overpaid" if paid_total > grand else "part_paid")
        upd = s_updated[k]
        for p in pays:
            upd = max(upd, p["updated_at"])

        # shipping
        d = delivery[k]
        bname = b.full_name[bi]
        recipient = bname.strip() if not other_recipient[k] else "Отримувач " + bname.split()[-1]
        if d == 2:
            cname, region, zip_ = _CITIES[0]
            point = "Самовивіз зі складу Київ"
        else:
            cname, region, zip_ = _CITIES[city[k]]
            if d == 0:
                point = f"Поштомат №{branch[k] * 13}" if postomat[k] else f"Відділення №{branch[k]}"
            else:
                point = f"Відділення {zip_[:3]}{branch[k] % 100:02d}"
        shipping = _SHIPPING_TPL.copy()
        shipping["delivery_service_id"] = d + 1
        shipping["shipping_address_city"] = cname
        shipping["shipping_address_region"] = region
        shipping["shipping_address_zip"] = zip_
        shipping["shipping_receive_point"] = point
        shipping["recipient_full_name"] = recipient
        shipping["recipient_phone"] = b.phone[bi]
        if shipped[k]:
            if d == 0:
                shipping["tracking_code"] = f"2045{tracking[k]}"
            elif d == 1:
                shipping["tracking_code"] = f"0500{tracking[k] % 10**9:09d}"
            shipping["shipping_status"] = ("returned" if st == RETURNED else "delivered" if st == COMPLETED
                                           else "in_transit")
            shipping["shipping_date"] = shipping["shipping_date_actual"] = s_ship[k]

        src_id = src[k] + 1
        o = _ORDER_TPL.copy()
        o["id"] = oid
        if src_id == 1:
            o["source_uuid"] = str(source_no[k])
        elif src_id == 4:
            o["source_uuid"] = f"№{source_no[k]}"
        elif src_id == 3:
            o["source_uuid"] = str(source_no[k] * 10 + 3)
        o["source_id"] = src_id
        o["client_id"] = bi + 1
        o["grand_total"] = _money(grand)
        o["total_discount"] = _money(line_disc_total + order_disc)
        o["margin_sum"] = _money(products_total - order_disc - purchased_total)
        if order_disc:
            o["discount_amount"] = _money(order_disc)
            o["promocode"] = _PROMOCODES[promocode[k]]
        o["discount_percent"] = disc_pct
        if ship_kop:
            o["shipping_price"] = _money(ship_kop)
        o["manager_id"] = manager[k]
        o["status_group_id"] = _STATUS_GROUP_L[st]
        o["status_id"] = _STATUS_ID_L[st]
        o["status_changed_at"] = s_changed[k]
        if comment[k] >= 0:
            o["buyer_comment"] = _BUYER_COMMENTS[comment[k]]
        o["payment_status"] = pay_status
        o["created_at"] = ts_c
        o["updated_at"] = upd
        if st == COMPLETED or st == CANCELED or st == RETURNED:
            o["closed_at"] = s_changed[k]
        o["ordered_at"] = s_ordered[k]
        o["payments_total"] = _money(paid_total)
        o["products_total"] = _money(products_total)
        o["fiscal_result"] = []
        o["has_reserves"] = st == IN_PROGRESS or st == DELIVERY
        o["buyer"] = buyer_tpl[bi].copy()
        o["products"] = lines
        o["payments"] = pays
        o["shipping"] = shipping
        append(o)
    return out


_STATUS_ID_L = [s[0] for s in _STATUSES]
_STATUS_GROUP_L = [s[3] for s in _STATUSES]

#: Every key of a live order row, in the live order; the loop copies this and fills in what varies.
_ORDER_TPL: dict = {
    "id": None, "source_uuid": None, "global_source_uuid": None, "status_on_source": None, "source_id": None,
    "client_id": None, "grand_total": 0, "total_discount": 0, "margin_sum": 0, "expenses_sum": 0,
    "discount_amount": None, "discount_percent": None, "shipping_price": None, "taxes": None,
    "register_id": None, "fiscal_result": (), "fiscal_status": None, "shipping_type_id": None, "manager_id": None,
    "status_group_id": None, "status_id": None, "closed_from": None, "status_changed_at": None,
    "status_expired_at": None, "parent_id": None, "manager_comment": None, "client_comment": None,
    "buyer_comment": None, "discount_data": None, "is_gift": False, "promocode": None, "wrap_price": None,
    "gift_wrap": False, "payment_status": "not_paid", "gift_message": None, "last_synced_at": None,
    "created_at": None, "updated_at": None, "closed_at": None, "ordered_at": None, "source_updated_at": None,
    "deleted_at": None, "payments_total": 0, "products_total": 0, "is_expired": False, "has_reserves": False,
    "buyer": None, "products": None, "payments": None, "shipping": None,
}
_SHIPPING_TPL: dict = {
    "delivery_service_id": None, "tracking_code": None, "shipping_status": None, "shipping_address_city": None,
    "shipping_address_country": "Україна", "shipping_address_country_code": "UA",
    "shipping_address_region": None, "shipping_address_zip": None, "shipping_secondary_line": None,
    "shipping_receive_point": None, "recipient_full_name": None, "recipient_phone": None,
    "shipping_date": None, "shipping_date_actual": None,
}


def _line_template(of: _Offer, offer_id: int, product_id: int) -> tuple[dict, dict, list[dict]]:
    """The parts of an order line that depend only on its offer."""
    price, purchased = of.money
    line = {
        "id": None, "sku": of.sku, "variation_id": None, "publication_source_uuid": None, "name": of.name,
        "upsale": False, "price": price, "discount_amount": 0, "discount_percent": 0, "individual_discount": 0,
        "loyalty_discount": 0, "total_discount": 0, "purchased_price": purchased, "price_sold": price,
        "quantity": 1, "unit_type": None, "stock_status": None, "picture": None, "comment": None,
        "properties": None, "product_status_id": None, "shipment_type": "warehouse", "warehouse": None,
        "created_at": None, "updated_at": None, "offer": None,
    }
    offer = {
        "id": offer_id, "product_id": product_id, "sku": of.sku, "barcode": of.barcode, "price": price,
        "purchased_price": purchased, "weight": None, "length": None, "width": None, "height": None,
        "properties": None,
    }
    return line, offer, of.properties


def _new_line(tpl: tuple[dict, dict, list[dict]], lid: int, qty: int, ts: str, warehouse: dict) -> dict:
    """A fresh line (no nested object shared with another order, so states can be edited safely)."""
    line_t, offer_t, props = tpl
    ln = line_t.copy()
    offer = offer_t.copy()
    offer["properties"] = [p.copy() for p in props]
    ln["id"] = lid
    ln["quantity"] = qty
    ln["picture"] = []
    ln["properties"] = [p.copy() for p in props]
    ln["warehouse"] = warehouse.copy()
    ln["created_at"] = ln["updated_at"] = ts
    ln["offer"] = offer
    return ln


_PAYMENT_TPL: dict = {
    "id": None, "destination_id": None, "destination_type": "order", "payment_method_id": None, "amount": 0,
    "actual_amount": 0, "actual_currency": "UAH", "source_currency": "UAH", "transaction_uuid": None,
    "description": None, "status": "not_paid", "fiscal_result": (), "fiscal_status": None, "is_expense": False,
    "expense_type_id": None, "payment_date": None, "created_at": None, "updated_at": None,
}


def _payment(pid: int, order_id: int, method: int, kop: int, status: str, at: str, description: str | None,
             card: bool) -> dict:
    p = _PAYMENT_TPL.copy()
    p["id"] = pid
    p["destination_id"] = order_id
    p["payment_method_id"] = method
    p["amount"] = p["actual_amount"] = _money(kop)
    if card and status != "not_paid":
        p["transaction_uuid"] = f"liqpay-{order_id:08d}-{pid:08d}"
    p["description"] = description
    p["status"] = status
    p["fiscal_result"] = []
    p["payment_date"] = p["created_at"] = p["updated_at"] = at
    return p


# ---------------------------------------------------------------------------------------------------------
# Whole KeyCRM state
# ---------------------------------------------------------------------------------------------------------

_RESERVING = (IN_PROGRESS, DELIVERY)


def keycrm_state(orders: int = 3000, *, seed: int = 20261203, days: int = 90, end: date = date(2026, 12, 1),
                 shop: int = 1) -> dict:
    """The whole KeyCRM emulator state of one shop (EMULATOR.md format)."""
    plan = _plan(orders, seed, days, end, shop)
    cat = plan.catalogue
    order_list = list(_orders_of(plan, seed, shop))
    window_start = plan.now - days * 86400
    cat_created = _ts1(window_start - 200 * 86400)
    cat_updated = _ts1(window_start - 3 * 86400)

    # Reserves follow the open orders in reserving statuses, per (offer, warehouse).
    n_off = len(cat.offers)
    reserve = np.zeros((n_off, 2), dtype=np.int64)
    reserving_ids = {_STATUSES[s][0] for s in _RESERVING}
    for o in order_list:
        if o["status_id"] in reserving_ids:
            for ln in o["products"]:
                reserve[ln["offer"]["id"] - 1, ln["warehouse"]["id"] - 1] += ln["quantity"]
    srng = np.random.default_rng([seed, shop, 51])
    free = srng.integers(0, 45, (n_off, 2))
    free[:, 1] = np.where(srng.random(n_off) < 0.5, free[:, 1] // 2, 0)
    free[srng.random(n_off) < 0.07, 0] = 0
    qty = reserve + free

    offers_out, products_out, stocks = [], [], []
    for i, of in enumerate(cat.offers):
        offers_out.append({
            "id": i + 1,
            "product_id": of.product + 1,
            "sku": of.sku,
            "barcode": of.barcode,
            "price": _money(of.price),
            "purchased_price": _money(of.purchased),
            "quantity": int(qty[i].sum()),
            "in_reserve": int(reserve[i].sum()),
            "weight": None,
            "length": None,
            "height": None,
            "width": None,
            "properties": [dict(p) for p in of.properties],
            "is_default": len(cat.products[of.product].offers) == 1,
            "is_archived": False,
            "created_at": cat_created,
            "updated_at": cat_updated,
        })
        for w in (0, 1):
            if qty[i, w] or w == 0:
                stocks.append({"offer_id": i + 1, "warehouse_id": w + 1, "quantity": int(qty[i, w]),
                               "reserve": int(reserve[i, w])})
    for pi, p in enumerate(cat.products):
        prices = [cat.offers[k].price for k in p.offers]
        item = {
            "id": pi + 1,
            "name": p.name,
            "description": p.description,
            "thumbnail_url": None,
            "attachments_data": [],
            "quantity": int(sum(qty[k].sum() for k in p.offers)),
            "in_reserve": int(sum(reserve[k].sum() for k in p.offers)),
            "unit_type": None,
            "currency_code": "UAH",
            "min_price": _money(min(prices)),
            "max_price": _money(max(prices)),
            "weight": None,
            "length": None,
            "width": None,
            "height": None,
            "has_offers": len(p.offers) > 1,
            "is_archived": False,
            "category_id": p.category_id,
            "created_at": cat_created,
            "updated_at": cat_updated,
        }
        if len(p.offers) == 1:
            of = cat.offers[p.offers[0]]
            item.update({"sku": of.sku, "barcode": of.barcode, "price": _money(of.price),
                         "purchased_price": _money(of.purchased)})
        products_out.append(item)

    b = plan.buyers
    buyers_out = []
    for k in range(len(b.full_name)):
        ts = plan.buyer_ts[k]
        phones = [b.phone[k]] + ([b.second_phone[k]] if b.second_phone[k] else [])
        buyers_out.append({
            "id": k + 1,
            "full_name": b.full_name[k],
            "birthday": None,
            "email": [b.email[k]] if b.email[k] else [],
            "phone": phones,
            "note": None,
            "company_id": None,
            "manager_id": b.manager_id[k],
            "discount": 0,
            "created_at": ts,
            "updated_at": ts,
        })

    return {
        "api_keys": [DEMO_KEYCRM_KEY if shop == 1 else DEMO_KEYCRM_KEY_2],
        "statuses": [
            {"id": sid, "name": name, "alias": alias, "group_id": g, "is_active": True,
             "is_closing_order": closing, "is_reserved": reserved, "expiration_period": None,
             "created_at": cat_created, "updated_at": cat_created}
            for sid, name, alias, g, closing, reserved in _STATUSES
        ],
        "payment_methods": [{"id": i, "name": n, "alias": a, "is_active": True} for i, n, a in _PAYMENT_METHODS],
        "sources": [
            {"id": i, "name": n, "alias": a, "driver": drv, "source_uuid": None, "source_name": n,
             "currency_code": "UAH", "created_at": cat_created, "updated_at": cat_created}
            for i, n, a, drv, _, _ in _SOURCES
        ],
        "delivery_services": [{"id": i, "name": n, "alias": a, "source_name": n} for i, n, a in _DELIVERY_SERVICES],
        "warehouses": [{"id": i, "name": n, "is_active": True} for i, n in _KC_WAREHOUSES],
        "products": products_out,
        "offers": offers_out,
        "stocks": stocks,
        "buyers": buyers_out,
        "orders": order_list,
    }


# ---------------------------------------------------------------------------------------------------------
# Bimp state
# ---------------------------------------------------------------------------------------------------------

def _ref(kind: str, key: object) -> str:
    return _uuid("bimp", kind, key)


def bimp_state(orders: int = 3000, *, seed: int = 20261203, days: int = 90, end: date = date(2026, 12, 1),
               shops: int = 1) -> dict:
    """The Bimp company the demo shop(s) write into: reference books, a partly matching catalogue, stock,
    prices and a few existing counterparties."""
    rng = np.random.default_rng([seed, 61])
    now = _epoch(end + timedelta(days=1))
    start_day = datetime.fromtimestamp(now - days * 86400, UTC).date()
    price_date = (start_day - timedelta(days=30)).isoformat() + "T00:00:00"

    org = {"uuid": _ref("org", 1), "name": "ТОВ «Затишок Онлайн»"}
    wh_main = {"uuid": _ref("wh", 1), "name": "Основний склад", "main": True}
    wh_kyiv = {"uuid": _ref("wh", 2), "name": "Склад Київ", "main": False}
    project = {"uuid": _ref("project", 1), "name": "Інтернет-магазин"}
    lob = {"uuid": _ref("lob", 1), "name": "Роздрібна торгівля"}
    uah = {"uuid": _ref("cur", "UAH"), "name": "Гривня", "code": "UAH", "symbol": "₴"}
    usd = {"uuid": _ref("cur", "USD"), "name": "Долар США", "code": "USD", "symbol": "$"}
    accounts = [
        ("23", "23 Виробництво"), ("281", "281 Товари на складі"), ("301", "301 Готівка в національній валюті"),
        ("311", "311 Поточні рахунки в національній валюті"), ("361", "361 Розрахунки з вітчизняними покупцями"),
        ("702", "702 Дохід від реалізації товарів"), ("703", "703 Дохід від реалізації робіт і послуг"),
    ]
    chart = [{"uuid": _ref("acc", code), "name": name} for code, name in accounts]
    acc = {code: _ref("acc", code) for code, _ in accounts}
    cash = [
        {"uuid": _ref("cash", 1), "name": "Каса магазину", "comment": "", "currency": uah["uuid"], "main": True,
         "accounting": acc["301"]},
        {"uuid": _ref("cash", 2), "name": "Каса кур'єра", "comment": "Готівка від кур'єрів і самовивозу",
         "currency": uah["uuid"], "main": False, "accounting": acc["301"]},
    ]
    bank = [
        {"uuid": _ref("bank", 1), "name": "Основний рахунок", "comment": "", "bank": "АТ КБ «ПриватБанк»",
         "iban": "UA213052990000026007233566001", "card": "", "main": True, "currency": uah["uuid"],
         "organization": org["uuid"], "accounting": acc["311"]},
    ]
    unit_pcs = {"uuid": _ref("unit", "pcs"), "name": "шт"}
    unit_srv = {"uuid": _ref("unit", "srv"), "name": "послуга"}
    expense_items = [
        {"uuid": _ref("exp", 1), "name": "Незавершене виробництво", "expensesGroup": "Виробничі витрати"},
        {"uuid": _ref("exp", 2), "name": "Повернення коштів покупцям", "expensesGroup": "Розрахунки з покупцями"},
        {"uuid": _ref("exp", 3), "name": "Транспортні витрати", "expensesGroup": "Витрати на збут"},
        {"uuid": _ref("exp", 4), "name": "Оренда приміщення", "expensesGroup": "Адміністративні витрати"},
    ]
    user = {"uuid": _ref("user", 1), "firstName": "Олена", "lastName": "Демченко", "patronymic": "Іванівна",
            "code": "000000001"}
    employee = {"uuid": _ref("emp", 1), "code": "000000001", "comment": "", "position": "Менеджер з продажу",
                "name": "Демченко Олена Іванівна", "user": user["uuid"], "status": "Працює",
                "hiredDate": "2024-03-01T00:00:00", "releasedDate": None}
    vat = [
        {"uuid": _ref("vat", 0), "name": "Без ПДВ", "percentRate": 0, "notAccountable": True},
        {"uuid": _ref("vat", 20), "name": "20%", "percentRate": 20, "notAccountable": False},
        {"uuid": _ref("vat", 7), "name": "7%", "percentRate": 7, "notAccountable": False},
    ]
    g_goods = {"uuid": _ref("group", "goods"), "name": "Товари", "description": "", "parentuuid": None}
    g_shop = {"uuid": _ref("group", "shop"), "name": "Інтернет-магазин",
              "description": "Товари, створені інтеграцією з KeyCRM", "parentuuid": g_goods["uuid"]}
    g_apparel = {"uuid": _ref("group", "apparel"), "name": "Одяг", "description": "", "parentuuid": g_goods["uuid"]}
    g_home = {"uuid": _ref("group", "home"), "name": "Дім і текстиль", "description": "",
              "parentuuid": g_goods["uuid"]}
    g_services = {"uuid": _ref("group", "services"), "name": "Послуги", "description": "", "parentuuid": None}
    groups = [g_goods, g_shop, g_apparel, g_home, g_services]
    pl_retail = {"uuid": _ref("pl", "retail"), "name": "Роздрібна", "main": True, "currency": "UAH",
                 "description": ""}
    pl_whole = {"uuid": _ref("pl", "wholesale"), "name": "Оптова", "main": False, "currency": "UAH",
                "description": ""}
    order_statuses = [
        {"uuid": _ref("ostatus", n), "name": n, "color": c}
        for n, c in [("Новий", "#2196F3"), ("В роботі", "#FF9800"), ("Відвантажено", "#9C27B0"),
                     ("Виконано", "#4CAF50"), ("Скасовано", "#9E9E9E"), ("Повернено", "#F44336")]
    ]
    payment_statuses = [
        {"uuid": _ref("pstatus", c), "name": n, "code": c, "active": True}
        for n, c in [("Створено", "created"), ("Проведено", "posted"), ("Скасовано", "canceled")]
    ]
    contract_types = [
        {"uuid": _ref("ctype", 1), "name": "З покупцем", "code": 1},
        {"uuid": _ref("ctype", 2), "name": "З постачальником", "code": 2},
        {"uuid": _ref("ctype", 3), "name": "Інше", "code": 3},
    ]
    contract_statuses = [{"uuid": _ref("cstatus", 1), "name": "Діючий"}, {"uuid": _ref("cstatus", 2),
                                                                           "name": "Закритий"}]

    # --- catalogue: the union of the shops' SKUs, ~5% missing, one SKU on two items, one renamed item ----
    cats = [_catalogue(s, orders, seed) for s in range(1, shops + 1)]
    seen: dict[str, _Offer] = {}
    kinds: dict[str, str] = {}
    for cat in cats:
        for of in cat.offers:
            if of.sku not in seen:
                seen[of.sku] = of
                kinds[of.sku] = cat.products[of.product].kind
    skus = list(seen)
    regular = [s for s in skus if not seen[s].gift]
    n_missing = max(1, round(len(cats[0].offers) * 0.05))
    missing = set(rng.choice(regular[5:], size=min(n_missing, len(regular) - 5), replace=False).tolist())
    dup_sku = regular[0]  # the most ordinary SKU gets a second card in Bimp
    renamed_sku = regular[1]
    stock_rng = np.random.default_rng([seed, 62])
    # The shop received goods over the months the demo covers: Bimp's stock covers what the orders take,
    # plus a margin, except for a few short items (so reserves and sales meet real shortages, not a void).
    demand: dict[str, float] = {}
    if orders <= 200_000:
        for s in range(1, shops + 1):
            for o in iter_demo_orders(orders, seed=seed, days=days, end=end, shop=s):
                for line in o["products"]:
                    sku = (line.get("offer") or {}).get("sku") or line.get("sku")
                    demand[sku] = demand.get(sku, 0.0) + float(line.get("quantity") or 0)

    nomenclature, prices, stock = [], [], []
    code = 1

    def add_item(name: str, article: str, of: _Offer | None, group: str, key: str, service: bool = False) -> dict:
        nonlocal code
        item = {
            "uuid": _ref("nom", key),
            "name": name,
            "fullName": name,
            "code": f"{code:09d}",
            "article": article,
            "sku": (of.barcode or "") if of else "",
            "group": group,
            "supplier": None,
            "unitOfMeasurementUuid": unit_srv["uuid"] if service else unit_pcs["uuid"],
            "isKit": False,
            "type": "service" if service else "goods",
            "isParent": False,
            "isModification": False,
            "parent": None,
            "expenseAccount": expense_items[0]["uuid"] if service else "",
            "description": "",
            "comment": "",
            "picture": "",
            "VATaccounted": False,
            "measurements": {"height": 0, "length": 0, "width": 0, "weight": 0},
        }
        code += 1
        nomenclature.append(item)
        return item

    for sku in skus:
        if sku in missing:
            continue
        of = seen[sku]
        kind = kinds[sku]
        group = g_apparel["uuid"] if kind == "apparel" else g_home["uuid"] if kind != "gift" else g_goods["uuid"]
        name = of.name
        if sku == renamed_sku:
            name = name.replace("«", "\"").replace("»", "\"") + " (стара назва)"
        item = add_item(name, sku, of, group, sku)
        retail = of.price
        if not of.gift and stock_rng.random() < 0.08:  # Bimp price moved on; KeyCRM not updated yet
            retail += 5000 if stock_rng.random() < 0.5 else -2000
        prices.append({"nomenclatureUuid": item["uuid"], "priceListUuid": pl_retail["uuid"],
                       "amount": _money(retail), "date": price_date})
        if not of.gift:
            prices.append({"nomenclatureUuid": item["uuid"], "priceListUuid": pl_whole["uuid"],
                           "amount": _money(round(retail * 0.8 / 100) * 100), "date": price_date})
        q_main = int(np.ceil(demand.get(sku, 0.0))) + int(stock_rng.integers(5, 60))
        if stock_rng.random() < 0.04:
            q_main = int(stock_rng.integers(0, 2))  # short on the main warehouse
        stock.append({"warehouseUuid": wh_main["uuid"], "nomenclatureUuid": item["uuid"], "quantity": q_main})
        if stock_rng.random() < 0.5:
            stock.append({"warehouseUuid": wh_kyiv["uuid"], "nomenclatureUuid": item["uuid"],
                          "quantity": int(stock_rng.integers(0, 20))})
    dup_of = seen[dup_sku]
    dup = add_item(dup_of.name + " (стара картка)", dup_sku, dup_of, g_goods["uuid"], dup_sku + "#old")
    stock.append({"warehouseUuid": wh_main["uuid"], "nomenclatureUuid": dup["uuid"], "quantity": 2})
    delivery_item = add_item("Доставка товару", "", None, g_services["uuid"], "delivery", service=True)
    delivery_item["expenseAccount"] = expense_items[0]["uuid"]

    # --- counterparties: a few match demo buyers by phone (Bimp keeps +380...) ---------------------------
    b1 = _buyers(1, orders, seed)
    plan_buyers = np.unique(_plan(orders, seed, days, end, 1).buyer)  # buyers who ordered
    counterparties, contracts = [], []

    def add_cp(name: str, phone: str, email: str, is_customer: bool = True, supplier: bool = False) -> dict:
        k = len(counterparties) + 1
        cp = {"uuid": _ref("cp", k), "name": name, "edrpou": "", "individualTaxNumber": "", "email": email,
              "phoneNumber": phone, "isCustomer": is_customer, "isSupplier": supplier, "isSoleProprietor": False,
              "code": f"{k:09d}", "printName": name, "addresses": []}
        counterparties.append(cp)
        ctype = contract_types[1 if supplier else 0]
        # Stored as Bimp's contract/api-read returns it: references are plain uuids, the type is its code.
        contracts.append({
            "uuid": _ref("contract", k), "date": "2025-01-01T00:00:00", "counterparty": cp["uuid"],
            "comment": "", "name": f"Договір №{k:05d}", "printName": f"Договір №{k:05d}", "code": f"{k:06d}",
            "lineOfBusiness": lob["uuid"], "organization": org["uuid"], "project": project["uuid"],
            "priceList": pl_retail["uuid"], "main": True, "manager": None, "currency": uah["uuid"],
            "status": contract_statuses[0]["uuid"], "contractType": ctype["code"], "currencyRateSource": 0,
            "сurrencyRateCalculationPercentage": 0,
        })
        return cp

    add_cp("Роздрібний покупець", "", "")
    add_cp("ТОВ «Текстиль-Постач»", "+380442345678", "sales@tekstyl-postach.example", False, True)
    n_known = min(len(plan_buyers), max(2, len(b1.full_name) // 50))
    known = rng.choice(plan_buyers[plan_buyers >= 2], size=min(n_known, int((plan_buyers >= 2).sum())),
                       replace=False) if (plan_buyers >= 2).any() else np.array([], dtype=int)
    for k in sorted(int(x) for x in known):
        add_cp(" ".join(b1.full_name[k].split()), b1.phone_e164[k], (b1.email[k] or "").lower())
    # Two counterparties share one phone (buyer 1's): an ambiguous phone for R-CUST-4.
    shared_phone = b1.phone_e164[0]
    add_cp("Ковальчук Ірина", shared_phone, "")
    add_cp("Ковальчук Олег", shared_phone, "")

    company = {
        "uuid": DEMO_COMPANY_UUID,
        "code": DEMO_COMPANY_CODE,
        "name": DEMO_COMPANY_NAME,
        "createdAt": "2024-03-01T09:00:00",
        "settings": {"zero_price_control": False, "closed_before": None},
        "organizations": [org],
        "warehouses": [wh_main, wh_kyiv],
        "projects": [project],
        "linesOfBusiness": [lob],
        "currencies": [uah, usd],
        "cashRegistries": cash,
        "bankAccounts": bank,
        "unitsOfMeasurement": [unit_pcs, unit_srv],
        "expenseItems": expense_items,
        "chartOfAccounts": chart,
        "users": [user],
        "employees": [employee],
        "vat": vat,
        "nomenclatureGroups": groups,
        "nomenclature": nomenclature,
        "counterparties": counterparties,
        "contracts": contracts,
        "contractTypes": contract_types,
        "contractStatuses": contract_statuses,
        "counterpartyExternalIds": [],
        "priceLists": [pl_retail, pl_whole],
        "prices": prices,
        "orderStatuses": order_statuses,
        "paymentStatuses": payment_statuses,
        "stock": stock,
        "customerOrders": [],
        "salesInvoices": [],
        "customerPayments": [],
        "customerReturns": [],
        "refunds": [],
    }
    return {"users": [{"email": DEMO_BIMP_EMAIL, "password": DEMO_BIMP_PASSWORD, "companies": [DEMO_COMPANY_UUID]}],
            "companies": [company]}


def generate_demo(orders: int = 3000, *, seed: int = 20261203, days: int = 90, end: date = date(2026, 12, 1),
                  shops: int = 1) -> dict:
    """The whole demo: ``{"keycrm": state, "bimp": state}`` for one shop, or ``{"keycrm": [s1, s2], ...}``.

    The second shop (``shops=2``) has its own API key, half as many orders, a catalogue sharing its first
    products' SKUs with shop 1, and some buyers who also bought in shop 1; both write into one Bimp company.
    """
    if orders < 1:
        raise ValueError("orders must be at least 1")
    if shops not in (1, 2):
        raise ValueError("shops must be 1 or 2")
    kc = [keycrm_state(orders, seed=seed, days=days, end=end, shop=s) for s in range(1, shops + 1)]
    return {"keycrm": kc[0] if shops == 1 else kc,
            "bimp": bimp_state(orders, seed=seed, days=days, end=end, shops=shops)}
