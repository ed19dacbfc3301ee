"""Sync-issue reason codes: one home for every code, its English and Ukrainian message and the fix.

A business rejection is data, not an exception (R-ORCH-5): rules emit rows with one of these codes and
the pipeline stores them in the sync-issues table.  Codes are stable strings: users filter on them.
"""

from __future__ import annotations

from enum import Enum
from typing import Self

import pandas as pd


class IssueCode(str, Enum):
    """Each member carries (message_en, message_uk): what happened and what to do."""

    def __new__(cls, value: str, message_en: str, message_uk: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.message_en = message_en  # type: ignore[attr-defined]
        member.message_uk = message_uk  # type: ignore[attr-defined]
        return member

    # --- customers (R-CUST) ---
    CUSTOMER_NOT_FOUND = (
        "customer_not_found",
        ("No Bimp counterparty matches the buyer and creating customers is off. "
        "Create the counterparty in Bimp or turn on customers.allow_create."),
        ("Контрагента покупця не знайдено в Bimp, а створення покупців вимкнене. "
        "Створіть контрагента в Bimp або увімкніть customers.allow_create."),
    )
    CUSTOMER_AMBIGUOUS = (
        "customer_ambiguous",
        ("Several Bimp counterparties share the buyer's phone or e-mail and creating customers is off. "
        "Merge the duplicates in Bimp or turn on customers.allow_create."),
        ("Кілька контрагентів у Bimp мають той самий телефон або e-mail, а створення покупців вимкнене. "
        "Об'єднайте дублікати в Bimp або увімкніть customers.allow_create."),
    )
    BUYER_MISSING = (
        "buyer_missing",
        ("The KeyCRM order has no buyer details to search by (no phone, e-mail or name). "
        "Fill in the buyer in KeyCRM or use fill_for_all with a default customer."),
        ("У замовленні KeyCRM немає даних покупця для пошуку (телефону, e-mail чи імені). "
        "Заповніть покупця в KeyCRM або використайте fill_for_all з покупцем за замовчуванням."),
    )
    # --- products (R-PROD) ---
    PRODUCT_NOT_FOUND = (
        "product_not_found",
        ("A line's product was not found in Bimp and creating products is off. "
        "Create the item in Bimp with this SKU or turn on products.allow_create."),
        ("Товар рядка не знайдено в Bimp, а створення товарів вимкнене. "
        "Створіть номенклатуру в Bimp з цим артикулом або увімкніть products.allow_create."),
    )
    PRODUCT_SKU_MISMATCH = (
        "product_sku_mismatch",
        ("A Bimp item has the line's name but a different article (name_and_sku search). "
        "Correct the article in Bimp or the SKU in KeyCRM."),
        ("У Bimp є товар з такою назвою, але з іншим артикулом (пошук name_and_sku). "
        "Виправте артикул у Bimp або SKU в KeyCRM."),
    )
    PRODUCT_AMBIGUOUS_SKU = (
        "product_ambiguous_sku",
        ("Several Bimp items share the line's SKU, so the order was not created. "
        "Leave the article on one item only."),
        ("Кілька товарів у Bimp мають однаковий артикул, тож замовлення не створено. "
        "Залиште артикул лише на одному товарі."),
    )
    PRODUCT_AMBIGUOUS_NAME = (
        "product_ambiguous_name",
        ("Several Bimp items have the line's name (name search), so the order was not created. "
        "Rename the duplicates in Bimp or search products by SKU."),
        ("Кілька товарів у Bimp мають таку саму назву (пошук за назвою), тож замовлення не створено. "
        "Перейменуйте дублікати в Bimp або шукайте товари за артикулом."),
    )
    DELIVERY_SERVICE_MISSING = (
        "delivery_service_missing",
        ("The order has a shipping cost but no delivery service item is configured; it was created without "
        "the delivery line. Create a service item 'Доставка товару' (type service, expense item 'work in "
        "progress', unit 'service') and set products.delivery_service."),
        ("Замовлення має вартість доставки, але послугу доставки не налаштовано; його створено без рядка "
        "доставки. Створіть послугу «Доставка товару» (тип послуга, стаття витрат «незавершене "
        "виробництво», одиниця «послуга») і вкажіть products.delivery_service."),
    )
    # --- statuses, currency, reserves (R-STAT, R-CUR, R-MAIN) ---
    STATUS_NOT_MAPPED = (
        "status_not_mapped",
        ("The order's KeyCRM status is not mapped to a Bimp status; it will be created once the status is "
        "mapped in 'statuses' or the order moves to a mapped status."),
        ("Статус замовлення KeyCRM не зіставлено зі статусом Bimp; замовлення буде створено, щойно статус "
        "додадуть у 'statuses' або замовлення перейде в зіставлений статус."),
    )
    CURRENCY_MISMATCH = (
        "currency_mismatch",
        ("The order's currency differs from the contract's; nothing was written. "
        "Use a contract in the order's currency or change the source currency in KeyCRM."),
        ("Валюта замовлення відрізняється від валюти договору; нічого не записано. "
        "Використайте договір у валюті замовлення або змініть валюту джерела в KeyCRM."),
    )
    RESERVE_INSUFFICIENT = (
        "reserve_insufficient",
        ("Reserve mode 'full' and the warehouse lacks free stock for a line, so the customer order was not "
        "created. Receive the goods, or switch main.reserve to available_only."),
        ("Режим резерву «повний», а на складі бракує вільного залишку для рядка, тож замовлення покупця не "
        "створено. Оприбуткуйте товар або змініть main.reserve на available_only."),
    )
    ORDER_INVALID = (
        "order_invalid",
        "The KeyCRM order failed validation and was quarantined; see the reason. Fix the order in KeyCRM.",
        ("Замовлення KeyCRM не пройшло перевірку і відкладене в карантин; див. причину. Виправте замовлення "
        "в KeyCRM."),
    )
    BIMP_REJECTED = (
        "bimp_rejected",
        "Bimp refused the document; see the reason. Correct the data and it is retried on the next sync.",
        ("Bimp відхилив документ; див. причину. Виправте дані — спроба повториться під час наступної "
        "синхронізації."),
    )
    BIMP_RECORD_MISSING = (
        "bimp_record_missing",
        ("A Bimp record this order needs, which keybimp created or found earlier (named in the detail: a "
        "counterparty, contract, item or customer order), no longer exists in Bimp: it was deleted there, or "
        "the Bimp company was reset. Nothing was written for this order. Restore the record in Bimp; if the whole "
        "company was reset (e.g. a fresh emulator), remove the integration's sync state (data/<name>.duckdb "
        "and data/<name>.ledger.sqlite; `make emulate RESET=1` does it for the emulators) and sync again."),
        ("Запис Bimp, потрібний цьому замовленню, який keybimp раніше створив або знайшов (див. деталі: "
        "контрагент, договір, товар чи замовлення покупця), більше не існує в Bimp: його видалили або "
        "компанію Bimp очищено. Для цього замовлення нічого не записано. Відновіть запис у Bimp; якщо очищено всю "
        "компанію (наприклад, новий емулятор), видаліть стан синхронізації інтеграції "
        "(data/<назва>.duckdb і data/<назва>.ledger.sqlite; для емуляторів це робить `make emulate RESET=1`) "
        "і синхронізуйте знову."),
    )
    # --- payments (R-PAY) ---
    PAYMENT_METHOD_NOT_MAPPED = (
        "payment_method_not_mapped",
        ("The payment's KeyCRM method is not mapped to a Bimp cash desk or bank account. "
        "Add it to payments.methods."),
        ("Спосіб оплати KeyCRM не зіставлено з касою чи банківським рахунком Bimp. "
        "Додайте його в payments.methods."),
    )
    ORDER_NOT_TRANSFERRED = (
        "order_not_transferred",
        ("The document needs the order's Bimp customer order, which has not been created yet; it is retried "
        "once the order is transferred."),
        ("Документ потребує замовлення покупця в Bimp, яке ще не створено; спроба повториться після "
        "перенесення замовлення."),
    )
    # --- sales (R-SALE) ---
    SALE_INSUFFICIENT_STOCK = (
        "sale_insufficient_stock",
        ("The goods are not on hand at the sale's date (stock reserved for other documents counts as "
        "unavailable). Receive the goods in Bimp; the sale is retried on the next sync."),
        ("На дату реалізації товару немає в наявності (залишок, зарезервований під інші документи, "
        "недоступний). Оприбуткуйте товар у Bimp; реалізацію буде повторено під час наступної синхронізації."),
    )
    PERIOD_CLOSED = (
        "period_closed",
        ("The document's date falls in a closed period in Bimp. Open the period; it is retried on the next "
        "sync."),
        ("Дата документа потрапляє в закритий період у Bimp. Відкрийте період; спроба повториться під час "
        "наступної синхронізації."),
    )
    ZERO_PRICE = (
        "zero_price",
        "A line has price 0 and zero-price control is on in Bimp. Turn the control off or set a price.",
        ("Рядок має нульову ціну, а в Bimp увімкнено контроль нульових цін. Вимкніть контроль або вкажіть "
        "ціну."),
    )
    TOTAL_MISMATCH = (
        "total_mismatch",
        ("The Bimp document's total would differ from the KeyCRM order's total; nothing was written. "
        "Check the order's discounts and line prices in KeyCRM."),
        ("Сума документа Bimp відрізнялася б від суми замовлення KeyCRM; нічого не записано. "
        "Перевірте знижки та ціни рядків замовлення в KeyCRM."),
    )
    # --- returns (R-RET) ---
    PARTIAL_RETURN_MANUAL = (
        "partial_return_manual",
        ("A partial return (fewer goods or less money than sold or paid) is not automated. "
        "Create the return in Bimp by hand."),
        ("Часткове повернення (менше товару чи коштів, ніж продано або сплачено) не автоматизоване. "
        "Створіть повернення в Bimp вручну."),
    )
    RETURN_WITHOUT_SALE = (
        "return_without_sale",
        "A goods return needs the order's sales invoice, which does not exist. Nothing was created.",
        "Повернення товару потребує реалізації замовлення, якої немає. Нічого не створено.",
    )


ISSUE_COLUMNS = ["integration", "order_id", "entity", "code", "detail", "message_en", "message_uk"]


def issue_frame(rows: pd.DataFrame, code_column: str = "code") -> pd.DataFrame:
    """Fill message_en / message_uk from the code column of a frame of issue rows (vectorised)."""
    out = rows.copy()
    en = {c.value: c.message_en for c in IssueCode}
    uk = {c.value: c.message_uk for c in IssueCode}
    out["message_en"] = out[code_column].map(en)
    out["message_uk"] = out[code_column].map(uk)
    return out
