"""A small demo Bimp company, used when the emulator starts without a state and as the base of test scenarios.

Uuids are derived from names (uuid5) so scenarios and tests can refer to them without reading them back.
"""

from __future__ import annotations

import uuid as uuidlib

_NS = uuidlib.UUID("0b1e6a1c-7d0e-4f5a-9a57-6b1a2c3d4e5f")

DEMO_EMAIL = "api@demo.example"
DEMO_PASSWORD = "demo-password"
DEMO_COMPANY_CODE = "000001398"


def uid(name: str) -> str:
    """The demo uuid for a name, e.g. uid("warehouse:main")."""
    return str(uuidlib.uuid5(_NS, name))


def demo_company(code: str = DEMO_COMPANY_CODE, name: str = "ТОВ Демо") -> dict:
    c = code
    return {
        "uuid": uid(f"company:{c}"), "code": c, "name": name, "createdAt": "2024-01-10T09:00:00.000Z",
        "settings": {"zero_price_control": False, "closed_before": None},
        "organizations": [{"uuid": uid(f"{c}:org:main"), "name": "ТОВ Демо"}],
        "warehouses": [{"uuid": uid(f"{c}:warehouse:main"), "name": "Основний склад", "main": True},
                       {"uuid": uid(f"{c}:warehouse:second"), "name": "Другий склад", "main": False}],
        "projects": [{"uuid": uid(f"{c}:project:main"), "name": "Основний проєкт"}],
        "linesOfBusiness": [{"uuid": uid(f"{c}:lob:main"), "name": "Роздріб"}],
        "currencies": [{"uuid": uid(f"{c}:currency:UAH"), "name": "Гривня", "code": "UAH", "symbol": "₴"}],
        "cashRegistries": [{"uuid": uid(f"{c}:cash:main"), "name": "Каса", "comment": "",
                            "currency": uid(f"{c}:currency:UAH"), "main": True, "accounting": None}],
        "bankAccounts": [{"uuid": uid(f"{c}:bank:main"), "name": "Рахунок ПриватБанк", "comment": "",
                          "bank": "ПриватБанк", "iban": "UA213223130000026007233566001", "card": "",
                          "main": True, "currency": uid(f"{c}:currency:UAH"),
                          "organization": uid(f"{c}:org:main"), "accounting": None}],
        "unitsOfMeasurement": [{"uuid": uid(f"{c}:unit:pcs"), "name": "шт"},
                               {"uuid": uid(f"{c}:unit:service"), "name": "послуга"}],
        "expenseItems": [{"uuid": uid(f"{c}:expense:refunds"), "name": "Повернення коштів", "expensesGroup": ""},
                         {"uuid": uid(f"{c}:expense:wip"), "name": "Незавершене виробництво",
                          "expensesGroup": ""}],
        "chartOfAccounts": [{"uuid": uid(f"{c}:account:23"), "name": "23 Виробництво"}],
        "users": [{"uuid": uid(f"{c}:user:api"), "firstName": "API", "lastName": "User", "patronymic": "",
                   "code": "0001"}],
        "employees": [{"uuid": uid(f"{c}:employee:manager"), "code": "0001", "comment": "", "position": "Менеджер",
                       "name": "Менеджер Демо", "user": uid(f"{c}:user:api"), "status": uid(f"{c}:empstatus"),
                       "hiredDate": "2024-01-10", "releasedDate": ""}],
        "vat": [{"uuid": uid(f"{c}:vat:none"), "name": "Без ПДВ", "percentRate": 0, "notAccountable": True},
                {"uuid": uid(f"{c}:vat:20"), "name": "ПДВ 20%", "percentRate": 20, "notAccountable": False}],
        "orderStatuses": [{"uuid": uid(f"{c}:ostatus:{n}"), "name": n, "color": col} for n, col in
                          (("Новий", "#2196f3"), ("В роботі", "#ff9800"), ("Виконано", "#4caf50"),
                           ("Скасовано", "#9e9e9e"))],
        "paymentStatuses": [{"uuid": uid(f"{c}:pstatus:paid"), "name": "Проведено", "code": "1", "active": True}],
        "nomenclatureGroups": [{"uuid": uid(f"{c}:group:shop"), "name": "Інтернет-магазин", "description": "",
                                "parentuuid": None}],
        "nomenclature": [], "counterparties": [], "contracts": [], "counterpartyExternalIds": [],
        "priceLists": [{"uuid": uid(f"{c}:pricelist:retail"), "name": "Роздрібна", "description": "",
                        "main": True, "currency": "UAH"}],
        "prices": [], "stock": [], "customerOrders": [], "salesInvoices": [], "customerPayments": [],
        "customerReturns": [], "refunds": [],
    }


def demo_state() -> dict:
    company = demo_company()
    return {"users": [{"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "companies": [company["uuid"]]}],
            "companies": [company]}
