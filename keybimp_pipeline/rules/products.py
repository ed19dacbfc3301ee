"""Which Bimp item each KeyCRM order line is, and whether the order can be created (R-PROD-1..6).

Pure and vectorised: lines, the Bimp catalogue and the pipeline's own creations in; one decision per
line out, then one verdict per order.

Search modes (``settings.search_by``, R-PROD-1):

* ``id`` — the item the pipeline created for the line's KeyCRM offer (``created_items``, from the
  ledger).  Only allowed with creation on (R-PROD-2, refused in settings), so "not found" means create.
* ``sku`` — the item whose article equals the line's SKU (both trimmed, case kept).  An SKU on several
  items is ``product_ambiguous_sku`` (R-PROD-6).
* ``name`` — the item whose name equals the line's name (trimmed, otherwise exact).  Several items with
  that name: ``product_ambiguous_name`` (the order is not created, like R-PROD-6).
* ``name_and_sku`` — an SKU on several items is ``product_ambiguous_sku`` first (R-PROD-6 holds in every
  mode that reads SKUs).  Then the name decides: an item with the line's name and the line's article is
  the match; items with the line's name but none with its article is ``product_sku_mismatch`` (R-PROD-5:
  no item is created for that line).  When NO item has the line's name, the SKU alone decides (exactly
  one item with the article is the match).  Why: R-PROD-4 keeps a created item's first name while KeyCRM
  may rename the offer ("Стілець синій (Акція)"); the renamed line must still find its item rather than
  create a second item with the same article, which would make that SKU ambiguous forever after.

Whatever the mode, a line found nowhere whose offer the pipeline already created (``created_items``) is
that item: this keeps exactly-once creation (R-ORCH-6) even when a rename or a new SKU hides it from the
mode's search.  Otherwise: creation on -> ``create``; off -> ``product_not_found`` (R-PROD-3).

``create_key``: one new item per key, chosen so lines that would find each other's new item when handled
one by one share it: the mode's search key (``sku-<sku>`` in sku and name_and_sku modes, ``name-<name>``
in name mode, ``offer-<id>`` in id mode), falling back to the offer, then the SKU, then the name.  One
case is not modelled: in name_and_sku mode two lines with one name but different SKUs both create (one
by one, the second would be a mismatch); KeyCRM offers of one product rarely share a name.
"""

from __future__ import annotations

import pandas as pd

from keybimp_pipeline.rules.issues import IssueCode
from keybimp_pipeline.settings import ProductSettings

LINE_COLUMNS = ["order_id", "line_no", "outcome", "nomenclature_uuid", "create_key", "code", "detail"]
ORDER_COLUMNS = ["order_id", "ok", "code", "detail"]
CREATE_COLUMNS = ["create_key", "name", "sku", "offer_id"]

_BLOCKING = [IssueCode.PRODUCT_AMBIGUOUS_SKU.value, IssueCode.PRODUCT_AMBIGUOUS_NAME.value,
             IssueCode.PRODUCT_NOT_FOUND.value]
_MAX_CANDIDATES = 10


def _key(s: pd.Series) -> pd.Series:
    """Trimmed string, None when missing or blank."""
    out = s.astype("string").str.strip()
    return out.mask(out.eq(""))


def _groups(items: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per key: number of items, the uuid when exactly one, and a candidates text for messages."""
    k = items[items[column].notna()]
    if k.empty:
        return pd.DataFrame({"n": pd.Series(dtype=int), "uuid": pd.Series(dtype=object),
                             "candidates": pd.Series(dtype=object)})
    k = k.sort_values([column, "uuid"])
    shown = k[k.groupby(column).cumcount() < _MAX_CANDIDATES]
    text = (shown["uuid"] + " '" + shown["name"].fillna("") + "' (article " + shown["article"].fillna("none")
            + ")").groupby(shown[column]).agg(", ".join)
    agg = k.groupby(column).agg(n=("uuid", "nunique"), uuid=("uuid", "first"))
    agg["candidates"] = text
    return agg


def match_products(lines: pd.DataFrame, items: pd.DataFrame, created_items: pd.DataFrame,
                   settings: ProductSettings) -> pd.DataFrame:
    """One decision per line: ``matched`` | ``create`` | ``rejected`` (see module doc); LINE_COLUMNS."""
    n = len(lines)
    mode = settings.search_by
    l = pd.DataFrame({
        "order_id": lines["order_id"].to_numpy(),
        "line_no": lines["line_no"].to_numpy(),
        "offer_id": lines["offer_id"].astype("Int64").array,
        "sku": _key(lines["sku"]).to_numpy(),
        "name": _key(lines["name"]).to_numpy(),
    })
    out = pd.DataFrame({
        "order_id": l["order_id"], "line_no": l["line_no"],
        "outcome": pd.Series([None] * n, dtype=object), "nomenclature_uuid": pd.Series([None] * n, dtype=object),
        "create_key": pd.Series([None] * n, dtype=object), "code": pd.Series([None] * n, dtype=object),
        "detail": pd.Series([None] * n, dtype=object),
    })
    if n == 0:
        return out
    it = pd.DataFrame({"uuid": items["uuid"].astype(str).to_numpy(),
                       "name": _key(items["name"]).to_numpy(),
                       "article": _key(items["article"]).to_numpy()})
    decided = pd.Series(False, index=l.index)

    def decide(mask: pd.Series, outcome: str, uuid=None, code: str | None = None, detail=None) -> None:
        nonlocal decided
        mask = mask & ~decided
        if not mask.any():
            return
        out.loc[mask, "outcome"] = outcome
        if uuid is not None:
            out.loc[mask, "nomenclature_uuid"] = _values(uuid, mask)
        if code is not None:
            out.loc[mask, "code"] = code
        if detail is not None:
            out.loc[mask, "detail"] = _values(detail, mask)
        decided = decided | mask

    if mode in ("sku", "name_and_sku"):
        by_sku = _groups(it, "article").reindex(l["sku"].to_numpy())
        by_sku.index = l.index
        n_sku = by_sku["n"].fillna(0).astype(int)
        decide(n_sku.ge(2), "rejected", code=IssueCode.PRODUCT_AMBIGUOUS_SKU.value,
               detail="SKU '" + l["sku"] + "' is on " + n_sku.astype(str) + " Bimp items: "
               + by_sku["candidates"].astype("string"))
        if mode == "sku":
            decide(n_sku.eq(1), "matched", uuid=by_sku["uuid"])
        else:
            named = it[it["name"].notna()]
            same = l[["name", "sku"]].reset_index().merge(named, on="name", how="inner")
            has_name = pd.Series(l.index.isin(same["index"]), index=l.index)
            agree = same[same["article"].fillna("\x00") == same["sku"].fillna("\x00")]
            agree = agree.sort_values(["index", "uuid"]).drop_duplicates("index").set_index("index")
            decide(pd.Series(l.index.isin(agree.index), index=l.index), "matched",
                   uuid=agree["uuid"].reindex(l.index))
            names_text = _groups(it, "name")["candidates"].reindex(l["name"].to_numpy())
            names_text.index = l.index
            decide(has_name, "rejected", code=IssueCode.PRODUCT_SKU_MISMATCH.value,
                   detail="Bimp item(s) named '" + l["name"] + "' have another article than SKU '"
                   + l["sku"].fillna("(none)") + "': " + names_text.astype("string"))
            decide(n_sku.eq(1), "matched", uuid=by_sku["uuid"])  # no item has the name: the SKU decides
    elif mode == "name":
        by_name = _groups(it, "name").reindex(l["name"].to_numpy())
        by_name.index = l.index
        n_name = by_name["n"].fillna(0).astype(int)
        decide(n_name.ge(2), "rejected", code=IssueCode.PRODUCT_AMBIGUOUS_NAME.value,
               detail="name '" + l["name"] + "' is on " + n_name.astype(str) + " Bimp items: "
               + by_name["candidates"].astype("string"))
        decide(n_name.eq(1), "matched", uuid=by_name["uuid"])

    # id mode, and the exactly-once fallback of every mode: items the pipeline created for the offer
    if len(created_items):
        made = pd.DataFrame({"offer_id": created_items["offer_id"].astype("Int64").array,
                             "uuid": created_items["uuid"].astype(str).to_numpy()})
        made = made.dropna(subset=["offer_id"]).drop_duplicates("offer_id").set_index("offer_id")["uuid"]
        ledger_uuid = pd.Series(made.reindex(l["offer_id"].to_numpy()).to_numpy(), index=l.index)
        decide(ledger_uuid.notna(), "matched", uuid=ledger_uuid)

    rest = ~decided
    if settings.allow_create:
        out.loc[rest, "outcome"] = "create"
        out.loc[rest, "create_key"] = _create_keys(l, mode)[rest].to_numpy()
    else:
        searched = {"sku": "SKU '" + l["sku"].fillna("(none)") + "'",
                    "name": "name '" + l["name"].fillna("(none)") + "'",
                    "name_and_sku": "name '" + l["name"].fillna("(none)") + "' or SKU '"
                    + l["sku"].fillna("(none)") + "'",
                    "id": "offer " + l["offer_id"].astype("string").fillna("(none)")}[mode]
        decide(rest, "rejected", code=IssueCode.PRODUCT_NOT_FOUND.value,
               detail="no Bimp item with " + searched)
    return out


def _values(value, mask: pd.Series):
    if isinstance(value, pd.Series):
        return value[mask].astype(object).where(value[mask].notna(), None).to_numpy()
    return value


def _create_keys(l: pd.DataFrame, mode: str) -> pd.Series:
    offer = "offer-" + l["offer_id"].astype("string")
    sku = "sku-" + l["sku"].astype("string")
    name = "name-" + l["name"].astype("string")
    order = {"id": [offer, sku, name], "sku": [sku, offer, name], "name": [name, offer, sku],
             "name_and_sku": [sku, name, offer]}[mode]
    key = order[0]
    for fallback in order[1:]:
        key = key.fillna(fallback)
    line_key = "line-" + l["order_id"].astype(str) + "-" + l["line_no"].astype(str)
    return key.fillna(line_key).astype(object)


def items_to_create(matched: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """One row per ``create_key``: the item's data as the FIRST line of the key has it (R-PROD-4).

    "First" is the earliest order (KeyCRM order ids grow with placement), then line number: the item
    keeps that name; later renames in KeyCRM never reach Bimp.
    """
    creates = matched[matched["outcome"].eq("create")][["order_id", "line_no", "create_key"]]
    if creates.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CREATE_COLUMNS})
    rows = creates.merge(lines[["order_id", "line_no", "name", "sku", "offer_id"]], on=["order_id", "line_no"],
                         how="left")
    rows = rows.sort_values(["order_id", "line_no"], kind="stable").drop_duplicates("create_key")
    return pd.DataFrame({
        "create_key": rows["create_key"].to_numpy(),
        "name": rows["name"].astype("string").str.strip().astype(object).to_numpy(),
        "sku": _key(rows["sku"]).astype(object).where(_key(rows["sku"]).notna(), None).to_numpy(),
        "offer_id": rows["offer_id"].astype("Int64").array,
    }).reset_index(drop=True)


def order_outcomes(line_matches: pd.DataFrame) -> pd.DataFrame:
    """Per order: may the customer order be created (``ok``), and the reason (``code``, ``detail``).

    * any line with an ambiguous SKU or name -> not created (R-PROD-6);
    * any line ``product_not_found`` -> not created: a customer order cannot hold goods Bimp does not
      know, and dropping the line would book a total that differs from KeyCRM's;
    * ``product_sku_mismatch`` on EVERY line -> not created (R-PROD-5); on some lines only -> created
      without those lines (the guide: "if the order consists only of this product, the order is not
      created either"), ``ok`` stays True and ``code``/``detail`` still name the dropped lines so they
      are reported.  Callers write only lines whose outcome is not ``rejected``.
    The most serious code wins: ambiguous, then not found, then mismatch.
    """
    lm = line_matches[["order_id", "line_no", "code", "detail"]].copy()
    if lm.empty:
        return pd.DataFrame({"order_id": pd.Series(dtype="int64"), "ok": pd.Series(dtype=bool),
                             "code": pd.Series(dtype=object), "detail": pd.Series(dtype=object)})
    rank_of = {code: i for i, code in enumerate(_BLOCKING + [IssueCode.PRODUCT_SKU_MISMATCH.value])}
    lm["rank"] = lm["code"].map(rank_of)
    lm["mis"] = lm["code"].eq(IssueCode.PRODUCT_SKU_MISMATCH.value).astype(int)
    lm["blk"] = lm["code"].isin(_BLOCKING)
    per = lm.groupby("order_id", sort=True).agg(
        lines=("line_no", "size"), mismatched=("mis", "sum"), blocking=("blk", "any"), rank=("rank", "min"))
    bad = lm[lm["code"].notna()].sort_values(["order_id", "rank", "line_no"])
    text = ("line " + bad["line_no"].astype(str) + ": " + bad["detail"].fillna(bad["code"])).groupby(
        bad["order_id"]).agg("; ".join)
    by_rank = {i: code for code, i in rank_of.items()}
    per["ok"] = ~(per["blocking"] | per["mismatched"].eq(per["lines"]))
    per["code"] = per["rank"].map(by_rank)
    per["detail"] = text.reindex(per.index)
    out = per.reset_index()[ORDER_COLUMNS]
    out["code"] = out["code"].astype(object).where(out["code"].notna(), None)
    out["detail"] = out["detail"].astype(object).where(out["detail"].notna(), None)
    out["ok"] = out["ok"].astype(bool)
    return out


__all__ = ["CREATE_COLUMNS", "LINE_COLUMNS", "ORDER_COLUMNS", "items_to_create", "match_products",
           "order_outcomes"]
