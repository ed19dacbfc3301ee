"""Price upload Bimp -> KeyCRM (R-PRICE-2..6): which offer prices change, which items would be created.

Matching is by exact SKU (Bimp ``article`` = KeyCRM offer ``sku``).  R-PRICE-5 warns that an SKU
differing by even one character is "not found", so with ``create_missing`` on a duplicate offer is
created.  That is the guide's behaviour and we keep it, but make it visible: every item not found is
listed in :attr:`PricePlan.not_found` whatever ``create_missing`` says (so the run metadata shows how
many items *would* be created), with a hint when a KeyCRM SKU equals it up to case, spaces and
separators.

Money is integer kopiyky throughout.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

UPDATE_COLUMNS = ["offer_id", "sku", "price_kop", "previous_kop"]
CREATE_COLUMNS = ["sku", "name", "price_kop"]
NOT_FOUND_COLUMNS = ["sku", "name", "price_kop", "similar_keycrm_sku"]
_SEPARATORS = r"[\s\-_./\\]+"


class PricePlan(NamedTuple):
    """The price upload: unpack as ``updates, to_create, not_found = plan_price_upload(...)``.

    * ``updates``: offer_id, sku, price_kop, previous_kop -- only prices that change (R-PRICE-6);
    * ``to_create``: sku, name, price_kop -- items to create in KeyCRM; empty unless ``create_missing``;
    * ``not_found``: sku, name, price_kop, similar_keycrm_sku -- every priced Bimp item (in the group)
      whose SKU KeyCRM lacks, *whether or not* creating is on: ``len(not_found)`` is the count of
      would-be creations for the run's metadata (R-PRICE-5), ``similar_keycrm_sku`` a KeyCRM SKU that
      differs only in case / spaces / separators (the likely typo), else null.
    """

    updates: pd.DataFrame
    to_create: pd.DataFrame
    not_found: pd.DataFrame


def group_with_subgroups(groups: pd.DataFrame, root: str) -> set[str]:
    """The uuid of ``root`` and of every group under it, at any depth (R-PRICE-2).

    One vectorised step per tree level; a cycle in bad data cannot loop forever because a group is
    taken once.
    """
    selected = {root}
    frontier = {root}
    parents = groups["parent_uuid"]
    while frontier:
        children = groups.loc[parents.isin(list(frontier)) & ~groups["uuid"].isin(list(selected)), "uuid"]
        frontier = set(children.dropna().astype(str))
        selected |= frontier
    return selected


def _sku_text(values: pd.Series) -> pd.Series:
    s = values.astype("string")
    return s.where(s.str.len() > 0)


def _loose(values: pd.Series) -> pd.Series:
    """SKU up to case, spaces and separators: only for the "did you mean" hint, never for matching."""
    return values.str.upper().str.replace(_SEPARATORS, "", regex=True)


def plan_price_upload(
    bimp_prices: pd.DataFrame,
    items: pd.DataFrame,
    groups: pd.DataFrame,
    keycrm_offers: pd.DataFrame,
    free_stock: pd.DataFrame,
    last_ack: pd.DataFrame,
    *,
    product_group: str | None,
    skip_out_of_stock: bool,
    create_missing: bool,
) -> PricePlan:
    """Plan the price upload.

    ``bimp_prices``: nomenclature_uuid, price_kop (the chosen price list, R-PRICE-3).  ``items``: uuid,
    name, article, group_uuid.  ``groups``: uuid, name, parent_uuid.  ``keycrm_offers``: offer_id, sku,
    price_kop.  ``free_stock``: nomenclature_uuid, free (summed over mapped warehouses).  ``last_ack``:
    sku, price_kop (last prices KeyCRM acknowledged; may be empty).

    * ``product_group`` (a resolved group uuid): only items of that group and its subgroups (R-PRICE-2);
    * items with no price, or a price of 0 or less (Bimp's "no price in this list"), are left alone: a
      missing price never wipes the shop's price;
    * several Bimp items with one article count as one SKU when they agree on the price and are left
      alone when they do not (no way to tell which is right); their free stock is summed;
    * ``skip_out_of_stock`` (R-PRICE-4): an item whose free stock is 0 keeps its KeyCRM price (an item
      absent from ``free_stock`` has free stock 0).  It applies to updates only: an item KeyCRM lacks
      has no price to keep;
    * a price is sent when it differs from the last acknowledged one or from KeyCRM's current one
      (either is enough, so a hand edit in KeyCRM is overwritten), or neither is known (R-PRICE-6);
      every KeyCRM offer carrying the SKU is updated;
    * items whose SKU no KeyCRM offer has exactly go to ``not_found`` and, with ``create_missing``,
      to ``to_create`` (R-PRICE-5).  Items without an article cannot be matched or created and are
      skipped.
    """
    catalogue = items
    if product_group is not None:
        catalogue = items.loc[items["group_uuid"].isin(list(group_with_subgroups(groups, product_group)))]

    price = bimp_prices.drop_duplicates("nomenclature_uuid", keep="last").set_index("nomenclature_uuid")[
        "price_kop"
    ]
    free = (
        free_stock.groupby("nomenclature_uuid")["free"].sum()
        if len(free_stock)
        else pd.Series(dtype="float64")
    )
    bimp = pd.DataFrame(
        {
            "sku": _sku_text(catalogue["article"]).to_numpy(),
            "name": catalogue["name"].to_numpy(),
            "price_kop": catalogue["uuid"].map(price).astype("Int64").array,
            "free": catalogue["uuid"].map(free).astype("float64").fillna(0.0).to_numpy(),
        }
    )
    bimp = bimp.loc[bimp["sku"].notna() & bimp["price_kop"].notna() & (bimp["price_kop"] > 0)]
    per_sku = bimp.groupby("sku", sort=False).agg(
        name=("name", "first"),
        price_kop=("price_kop", "first"),
        prices=("price_kop", "nunique"),
        free=("free", "sum"),
    )
    per_sku = per_sku.loc[per_sku["prices"] == 1].drop(columns="prices")
    per_sku["price_kop"] = per_sku["price_kop"].astype("int64")

    offers = pd.DataFrame(
        {
            "offer_id": keycrm_offers["offer_id"].to_numpy(),
            "sku": _sku_text(keycrm_offers["sku"]).to_numpy(),
            "previous_kop": keycrm_offers["price_kop"].astype("Int64").array,
        }
    ).dropna(subset=["sku"])

    # --- updates (R-PRICE-4, R-PRICE-6)
    matched = offers.merge(per_sku, left_on="sku", right_index=True, how="inner")
    ack = (
        last_ack.assign(sku=_sku_text(last_ack["sku"]))
        .dropna(subset=["sku"])
        .drop_duplicates("sku", keep="last")
        .set_index("sku")["price_kop"]
        .astype("Int64")
        if len(last_ack)
        else pd.Series(dtype="Int64")
    )
    acked = matched["sku"].map(ack).astype("Int64")
    new = matched["price_kop"].astype("Int64")
    prev = matched["previous_kop"]
    changed = (
        (acked.notna() & (acked != new)).fillna(False)
        | (prev.notna() & (prev != new)).fillna(False)
        | (acked.isna() & prev.isna())
    ).astype(bool)
    if skip_out_of_stock:
        changed &= (matched["free"] > 0).to_numpy()
    updates = matched.loc[changed, UPDATE_COLUMNS].sort_values(["sku", "offer_id"], kind="mergesort")
    updates = updates.reset_index(drop=True)

    # --- would-be creations (R-PRICE-5)
    missing = per_sku.loc[~per_sku.index.isin(offers["sku"])].reset_index()
    hint = (
        pd.DataFrame({"loose": _loose(offers["sku"]).to_numpy(), "sku": offers["sku"].to_numpy()})
        .drop_duplicates("loose")
        .set_index("loose")["sku"]
    )
    missing["similar_keycrm_sku"] = _loose(missing["sku"]).map(hint).to_numpy()
    not_found = missing[NOT_FOUND_COLUMNS].sort_values("sku", kind="mergesort").reset_index(drop=True)
    not_found["sku"] = not_found["sku"].astype("object")
    to_create = (
        not_found[CREATE_COLUMNS].copy()
        if create_missing
        else pd.DataFrame(
            {
                "sku": pd.Series(dtype="object"),
                "name": pd.Series(dtype="object"),
                "price_kop": pd.Series(dtype="int64"),
            }
        )
    )
    updates["sku"] = updates["sku"].astype("object")
    updates["price_kop"] = updates["price_kop"].astype("int64")
    return PricePlan(updates=updates, to_create=to_create, not_found=not_found)


__all__ = ["PricePlan", "group_with_subgroups", "plan_price_upload"]
