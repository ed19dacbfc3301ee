"""Customer matching rules R-CUST-1..8 (keybimp_pipeline.rules.customers)."""

from __future__ import annotations

import pandas as pd

from keybimp_pipeline.rules.customers import counterparties_to_create, match_customers, search_slots
from keybimp_pipeline.settings import CustomerSettings

T0 = pd.Timestamp("2026-09-01 08:00", tz="UTC")


def buyers(*rows: tuple) -> pd.DataFrame:
    """rows: (order_id, buyer_id, full_name, phone, email); placed one minute apart in row order."""
    frame = pd.DataFrame(rows, columns=["order_id", "buyer_id", "full_name", "phone", "email"])
    frame["buyer_id"] = frame["buyer_id"].astype("Int64")
    frame["placed_at"] = [T0 + pd.Timedelta(minutes=i) for i in range(len(frame))]
    return frame


def cps(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(list(rows) or None, columns=["uuid", "name", "phone", "email"])


NO_EXT = pd.DataFrame(columns=["counterparty_uuid", "external_id"])


def run(b, c, settings, ext=NO_EXT) -> pd.DataFrame:
    return match_customers(b, c, ext, settings).set_index("order_id")


def test_R_CUST_4_phone_matches_one_counterparty_whatever_the_name():
    b = buyers((1, 10, "Зовсім Інше Ім'я", "+380671234567", "other@x.ua"))
    c = cps(("u1", "Анна Коваль", "067 123 45 67", "anna@x.ua"), ("u2", "Борис", "+380501111111", None))
    r = run(b, c, CustomerSettings(search_by=["phone", "email"]))
    assert r.loc[1, ["outcome", "counterparty_uuid", "matched_by", "code"]].tolist() == \
        ["matched", "u1", "phone", None]


def test_R_CUST_4_shared_phone_creation_on_creates_new():
    b = buyers((1, 10, "Анна", "+380671234567", None))
    c = cps(("u1", "Анна", "0671234567", None), ("u2", "Андрій", "+38 067 123-45-67", None))
    r = run(b, c, CustomerSettings(search_by=["phone"], allow_create=True))
    assert r.loc[1, ["outcome", "counterparty_uuid", "create_key", "code"]].tolist() == \
        ["create", None, "order-1", None]
    assert "u1 'Анна'" in r.loc[1, "detail"] and "u2 'Андрій'" in r.loc[1, "detail"]


def test_R_CUST_4_shared_phone_creation_off_is_customer_ambiguous():
    b = buyers((1, 10, "Анна", "+380671234567", None))
    c = cps(("u1", "Анна", "0671234567", None), ("u2", "Андрій", "+38 067 123-45-67", None))
    r = run(b, c, CustomerSettings(search_by=["phone"], allow_create=False))
    assert r.loc[1, ["outcome", "counterparty_uuid", "code"]].tolist() == \
        ["rejected", None, "customer_ambiguous"]
    assert r.loc[1, "detail"].startswith("phone +380671234567 is shared by 2 counterparties: ")
    assert "u1 'Анна'" in r.loc[1, "detail"] and "u2 'Андрій'" in r.loc[1, "detail"]


def test_R_CUST_5_email_same_logic_as_phone():
    b = buyers((1, 10, "Анна", None, "anna@x.ua"), (2, 11, "Віра", None, "shared@x.ua"))
    c = cps(("u1", "Whoever", None, " ANNA@x.ua "), ("u2", "A", None, "shared@x.ua"),
            ("u3", "B", None, "Shared@X.ua"))
    on = run(b, c, CustomerSettings(search_by=["email"], allow_create=True))
    assert on.loc[1, ["outcome", "counterparty_uuid", "matched_by"]].tolist() == ["matched", "u1", "email"]
    assert on.loc[2, ["outcome", "create_key"]].tolist() == ["create", "order-2"]
    off = run(b, c, CustomerSettings(search_by=["email"], allow_create=False))
    assert off.loc[2, ["outcome", "code"]].tolist() == ["rejected", "customer_ambiguous"]
    assert "e-mail shared@x.ua is shared by 2 counterparties" in off.loc[2, "detail"]


def test_R_CUST_7_name_and_phone_must_both_agree_anna():
    """An existing "Анна" without a phone is not the incoming "Анна" with a phone: a new one is created."""
    b = buyers((1, 10, "Анна", "+380671234567", None))
    c = cps(("u1", "Анна", None, None))
    r = run(b, c, CustomerSettings(search_by=["name", "phone"], allow_create=True))
    assert r.loc[1, ["outcome", "counterparty_uuid", "create_key"]].tolist() == ["create", None, "order-1"]
    # with name alone it would have matched
    r = run(b, c, CustomerSettings(search_by=["name"], allow_create=True))
    assert r.loc[1, ["outcome", "counterparty_uuid", "matched_by"]].tolist() == ["matched", "u1", "name"]


def test_R_CUST_7_name_and_phone_agreeing_match_and_phone_alone_does_not():
    b = buyers((1, 10, "  анна ", "+380671234567", None), (2, 11, "Борис", "+380671234567", None))
    c = cps(("u1", "Анна", "067 123 45 67", None))
    r = run(b, c, CustomerSettings(search_by=["phone", "name"], allow_create=False))
    assert r.loc[1, ["outcome", "counterparty_uuid", "matched_by"]].tolist() == ["matched", "u1", "name+phone"]
    # same phone, other name: with both criteria on that is not a match (R-CUST-7 overrides R-CUST-4)
    assert r.loc[2, ["outcome", "code"]].tolist() == ["rejected", "customer_not_found"]
    assert r.loc[2, "detail"] == "no counterparty found by name 'Борис' and phone +380671234567"


def test_R_CUST_7_search_slots_merge_name_and_phone_at_first_position():
    assert search_slots(CustomerSettings(search_by=["email", "name", "id", "phone"])) == \
        ["email", "name+phone", "id"]
    assert search_slots(CustomerSettings(search_by=["phone", "email"])) == ["phone", "email"]


def test_R_CUST_3_creation_off_not_found_is_customer_not_found():
    b = buyers((1, 10, "Анна", "+380671234567", "anna@x.ua"))
    c = cps(("u1", "Борис", "+380501111111", "b@x.ua"))
    r = run(b, c, CustomerSettings(search_by=["phone", "email"], allow_create=False))
    assert r.loc[1, ["outcome", "counterparty_uuid", "code"]].tolist() == \
        ["rejected", None, "customer_not_found"]
    assert r.loc[1, "detail"] == "no counterparty found by phone +380671234567, e-mail anna@x.ua"


def test_R_CUST_1_fill_for_all_sends_everyone_to_default():
    b = buyers((1, 10, "Анна", "+380671234567", None), (2, None, None, None, None))
    c = cps(("u1", "Анна", "0671234567", None))
    s = CustomerSettings(fill_for_all=True, default_customer="cp-default", default_contract="ct-default")
    r = run(b, c, s)
    assert r["outcome"].tolist() == ["default", "default"]
    assert r["counterparty_uuid"].tolist() == ["cp-default", "cp-default"]
    assert r["matched_by"].tolist() == ["default", "default"]
    assert r["code"].isna().all()


def test_R_CUST_2_buyer_with_nothing_to_search_is_buyer_missing():
    b = buyers((1, None, "Анна", None, "a@x.ua"))
    r = run(b, cps(), CustomerSettings(search_by=["phone"], allow_create=True))
    assert r.loc[1, ["outcome", "code", "create_key"]].tolist() == ["rejected", "buyer_missing", None]
    assert r.loc[1, "detail"] == "the buyer has no phone to search by (customers.search_by: phone)"


def test_R_CUST_3_two_orders_of_one_new_buyer_share_one_create_key():
    b = buyers((5, 10, "Анна", "+380671234567", None), (3, 10, "Анна", "+380671234567", None))
    r = run(b, cps(), CustomerSettings(search_by=["phone"], allow_create=True))
    # order 5 was placed first, so it creates; order 3 follows it
    assert r.loc[5, ["outcome", "create_key", "matched_by"]].tolist() == ["create", "order-5", None]
    assert r.loc[3, ["outcome", "create_key", "matched_by"]].tolist() == ["create", "order-5", "phone"]


def test_R_CUST_4_two_buyers_same_new_phone_in_one_run_share_one_new_counterparty():
    b = buyers((1, 10, "Анна", "+380671234567", "anna@x.ua"), (2, 11, "Андрій", "+380671234567", "and@x.ua"))
    r = run(b, cps(), CustomerSettings(search_by=["phone", "email"], allow_create=True))
    assert r["create_key"].tolist() == ["order-1", "order-1"]
    new = counterparties_to_create(match_customers(b, cps(), NO_EXT,
                                                   CustomerSettings(search_by=["phone", "email"])), b)
    assert len(new) == 1
    # R-CUST-8: the new counterparty carries the data of the order that creates it
    assert new.iloc[0][["create_key", "order_id", "buyer_id", "name", "phone", "email"]].tolist() == \
        ["order-1", 1, 10, "Анна", "+380671234567", "anna@x.ua"]


def test_R_CUST_2_email_first_two_buyers_same_phone_different_email_get_two():
    b = buyers((1, 10, "Анна", "+380671234567", "anna@x.ua"), (2, 11, "Андрій", "+380671234567", "and@x.ua"))
    r = run(b, cps(), CustomerSettings(search_by=["email"], allow_create=True))
    assert r["create_key"].tolist() == ["order-1", "order-2"]


def test_R_CUST_2_chain_through_different_criteria_is_sequential():
    """1 creates (P1,E1); 2 (P1,E2) follows 1 by phone; 3 (P3,E2) must create: order 2 made nothing."""
    b = buyers((1, 10, "A", "+380671111111", "e1@x.ua"), (2, 11, "B", "+380671111111", "e2@x.ua"),
               (3, 12, "C", "+380673333333", "e2@x.ua"))
    r = run(b, cps(), CustomerSettings(search_by=["phone", "email"], allow_create=True))
    assert r["create_key"].tolist() == ["order-1", "order-1", "order-3"]
    assert r["matched_by"].tolist() == [None, "phone", None]


def test_R_CUST_2_first_criterion_finding_exactly_one_wins():
    b = buyers((1, 10, "Анна", "+380671234567", "anna@x.ua"))
    c = cps(("u1", "A", "+380671234567", None), ("u2", "B", "+380671234567", None), ("u3", "C", None, "anna@x.ua"))
    # phone is ambiguous, e-mail finds exactly one: the e-mail wins, no new counterparty
    r = run(b, c, CustomerSettings(search_by=["phone", "email"], allow_create=True))
    assert r.loc[1, ["outcome", "counterparty_uuid", "matched_by"]].tolist() == ["matched", "u3", "email"]
    # order of priority: e-mail first, phone second, both unique but different counterparties
    c2 = cps(("u1", "A", "+380671234567", None), ("u3", "C", None, "anna@x.ua"))
    r = run(b, c2, CustomerSettings(search_by=["email", "phone"]))
    assert r.loc[1, "counterparty_uuid"] == "u3"
    r = run(b, c2, CustomerSettings(search_by=["phone", "email"]))
    assert r.loc[1, "counterparty_uuid"] == "u1"


def test_R_CUST_2_id_search_via_external_ids():
    b = buyers((1, 10, "Нове Ім'я", "+380509999999", None), (2, 11, "Анна", "+380671234567", None))
    c = cps(("u1", "Стара Назва", "+380500000000", None), ("u2", "Анна", "+380671234567", None))
    ext = pd.DataFrame({"counterparty_uuid": ["u1"], "external_id": ["10"]})
    r = run(b, c, CustomerSettings(search_by=["id", "phone"], allow_create=True), ext)
    assert r.loc[1, ["outcome", "counterparty_uuid", "matched_by"]].tolist() == ["matched", "u1", "id"]
    assert r.loc[2, ["outcome", "counterparty_uuid", "matched_by"]].tolist() == ["matched", "u2", "phone"]


def test_R_CUST_2_new_buyer_found_by_id_later_in_the_run():
    b = buyers((1, 10, "Анна", "+380671111111", None), (2, 10, "Анна", "+380672222222", None))
    r = run(b, cps(), CustomerSettings(search_by=["id", "phone"], allow_create=True))
    assert r["create_key"].tolist() == ["order-1", "order-1"]
    assert r.loc[2, "matched_by"] == "id"


def test_R_CUST_6_strict_names_exact_vs_normalised():
    b = buyers((1, 10, "Олександр ", None, None), (2, 11, "Марʼяна", None, None))
    c = cps(("u1", "Олександр", None, None), ("u2", "Мар'яна", None, None))
    loose = run(b, c, CustomerSettings(search_by=["name"], allow_create=False))
    assert loose["counterparty_uuid"].tolist() == ["u1", "u2"]
    strict = run(b, c, CustomerSettings(search_by=["name"], allow_create=False, strict_names=True))
    assert strict["code"].tolist() == ["customer_not_found", "customer_not_found"]


def test_R_CUST_8_created_counterparty_keeps_first_buyer_data():
    b = buyers((1, 10, "Анна", "+380671234567", "anna@x.ua"), (2, 10, "Анна Змінена", "+380671234567", "new@x.ua"))
    m = match_customers(b, cps(), NO_EXT, CustomerSettings(search_by=["phone"]))
    new = counterparties_to_create(m, b)
    assert new[["create_key", "name", "email"]].values.tolist() == [["order-1", "Анна", "anna@x.ua"]]


def test_output_shape_and_empty_input():
    empty = buyers()
    r = match_customers(empty, cps(), NO_EXT, CustomerSettings())
    assert list(r.columns) == ["order_id", "buyer_id", "outcome", "counterparty_uuid", "matched_by",
                               "create_key", "code", "detail"]
    assert r.empty
    b = buyers((7, None, "X", "+380671234567", None))
    r = match_customers(b, cps(), NO_EXT, CustomerSettings())
    assert str(r["buyer_id"].dtype) == "Int64" and r["order_id"].tolist() == [7]
