"""Which Bimp counterparty each KeyCRM order goes to (R-CUST-1..10).

Pure and vectorised: frames and settings in, one decision row per order out.  The writer then creates
the counterparties marked ``create`` (one per ``create_key``) and the rejections become sync issues.

How the criteria combine (R-CUST-2, R-CUST-4, R-CUST-5, R-CUST-7) — one rule, applied in the priority
order of ``settings.search_by``:

* Each enabled criterion is a *slot*.  When both ``name`` and ``phone`` are enabled they form ONE slot,
  ``name+phone``, at the position of whichever of the two comes first (R-CUST-7: both must agree).  A
  candidate of that slot has the buyer's name key AND the buyer's phone, where "no phone" agrees only
  with "no phone": an existing "Анна" without a phone is not the incoming "Анна" with a phone.  A buyer
  with a phone but no name falls back to the phone alone (there is no name to disagree).
* A slot *finds* a counterparty when exactly one counterparty has the buyer's value (R-CUST-4: the order
  goes to it whatever the other fields say).  The FIRST slot in priority order that finds exactly one
  wins.  A slot whose value several counterparties share does not stop the search: a later slot may
  still find exactly one (e.g. a shared family phone but a personal e-mail).
* No slot finds exactly one:
  - some slot was ambiguous -> creation ON: a new counterparty; OFF: ``customer_ambiguous`` (R-CUST-4/5);
  - nothing found -> creation ON: a new counterparty; OFF: ``customer_not_found`` (R-CUST-3).
* A buyer with no value for any enabled criterion -> ``buyer_missing`` (creating one would duplicate it on
  every order, since nothing could find it again).
* ``fill_for_all`` -> every order to the default counterparty, nothing searched (R-CUST-1).

Orders of one run are decided *as if handled one by one in placement order*: a counterparty created for
an earlier order is a candidate for later ones.  So two orders of one new buyer, or two buyers with the
same new phone (phone searched), share one ``create_key``.  The key of a new counterparty is
``order-<order_id>`` of the order that creates it: stable across re-runs, so the writer's ledger makes the
creation exactly-once (R-ORCH-6).

The sequential semantics are computed without a loop over orders: a counterparty created earlier in the
run can only be found through a slot that found *nothing* among existing counterparties (had it found
one, the earlier order would have matched instead of creating), and at most one new counterparty carries
each such value.  So "who creates" is a fixed point: start with every order that matched nothing
as a creator; an order whose open slot meets an earlier creator's value follows that creator instead;
recompute until stable.  Each round is a merge and a groupby; the number of rounds is the length of the
longest chain of orders linked through different criteria (2-3 in practice), bounded by the order count.
Any fixed point equals the one-by-one result (by induction over placement order), so the answer does not
depend on the round count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from keybimp_pipeline.rules.issues import IssueCode
from keybimp_pipeline.rules.normalize import normalize_email, normalize_name, normalize_phone
from keybimp_pipeline.settings import CustomerSettings

OUTPUT_COLUMNS = ["order_id", "buyer_id", "outcome", "counterparty_uuid", "matched_by", "create_key", "code",
                  "detail"]
CREATE_COLUMNS = ["create_key", "order_id", "buyer_id", "name", "phone", "email"]

_SEP = "\x1f"  # joins name key and phone in the name+phone key space; never typed by people
_NP = "name+phone"
_LABEL = {"id": "buyer id", "phone": "phone", "email": "e-mail", "name": "name", _NP: "name and phone"}
_MAX_CANDIDATES = 10


def search_slots(settings: CustomerSettings) -> list[str]:
    """Enabled criteria as slots in priority order; name and phone together become one ``name+phone``."""
    crit = list(dict.fromkeys(settings.search_by))
    combined = "name" in crit and "phone" in crit
    out: list[str] = []
    for c in crit:
        if combined and c in ("name", "phone"):
            if _NP not in out:
                out.append(_NP)
        else:
            out.append(c)
    return out


def _empty_result() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in OUTPUT_COLUMNS})
    frame["order_id"] = frame["order_id"].astype("int64")
    frame["buyer_id"] = frame["buyer_id"].astype("Int64")
    return frame


def _obj(values: pd.Series) -> pd.Series:
    """object dtype, None for missing (the output contract)."""
    out = values.astype(object)
    return out.where(out.notna(), None)


def _prepared_buyers(buyers: pd.DataFrame, strict: bool) -> pd.DataFrame:
    """Buyers with comparison keys and their placement position (earliest first decides)."""
    b = buyers.reset_index(drop=True).copy()
    b["_row"] = np.arange(len(b))
    b["buyer_id"] = b["buyer_id"].astype("Int64")
    placed = pd.to_datetime(b["placed_at"], utc=True)
    # placement order: placed_at (missing last), then order id, then row — one lexsort of integer keys
    placed_key = placed.to_numpy("int64", na_value=np.iinfo(np.int64).max)
    order = np.lexsort((b["_row"].to_numpy(), b["order_id"].to_numpy(), placed_key))
    pos = np.empty(len(b), dtype="int64")
    pos[order] = np.arange(len(b))
    b["pos"] = pos
    b["k_id"] = b["buyer_id"].astype("string")
    b["k_phone"] = normalize_phone(b["phone"])  # idempotent on E.164; guards against raw input
    b["k_email"] = normalize_email(b["email"])
    b["k_name"] = normalize_name(b["full_name"], strict)
    return b


def _record_keys(frame: pd.DataFrame, spaces: set[str], owner: str) -> pd.DataFrame:
    """The (space, key) a counterparty — existing, or one a buyer would create — can be found by."""
    parts = []
    for space in sorted(spaces):
        if space == _NP:
            key = frame["k_name"].astype("string") + _SEP + frame["k_phone"].astype("string").fillna("")
        else:
            key = frame[f"k_{space}"].astype("string")
        part = pd.DataFrame({owner: frame[owner].to_numpy(), "space": space, "key": key.to_numpy()})
        parts.append(part[part["key"].notna()])
    if not parts:
        return pd.DataFrame({owner: [], "space": [], "key": []})
    return pd.concat(parts, ignore_index=True)


def _buyer_slots(b: pd.DataFrame, slots: list[str]) -> pd.DataFrame:
    """One row per (order, enabled slot with a value): pos, prio, criterion, space, key."""
    parts = []
    for prio, slot in enumerate(slots):
        if slot == _NP:
            has_name = b["k_name"].notna()
            key = (b["k_name"].astype("string") + _SEP + b["k_phone"].astype("string").fillna("")).where(
                has_name, b["k_phone"].astype("string"))
            space = pd.Series(_NP, index=b.index).where(has_name, "phone")
            criterion = space.map({_NP: _NP, "phone": "phone"})
        else:
            key = b[f"k_{slot}"].astype("string")
            space = pd.Series(slot, index=b.index)
            criterion = space
        part = pd.DataFrame({"pos": b["pos"].to_numpy(), "prio": prio, "criterion": criterion.to_numpy(),
                             "space": space.to_numpy(), "key": key.to_numpy()})
        parts.append(part[part["key"].notna()])
    if not parts:
        return pd.DataFrame({"pos": [], "prio": [], "criterion": [], "space": [], "key": []})
    out = pd.concat(parts, ignore_index=True)
    out["key"] = out["key"].astype(str)
    return out


def _existing_keys(counterparties: pd.DataFrame, external_ids: pd.DataFrame, spaces: set[str],
                   strict: bool) -> pd.DataFrame:
    """(space, key, uuid) of every existing Bimp counterparty, normalised like the buyers."""
    cp = pd.DataFrame({
        "uuid": counterparties["uuid"].astype(str).to_numpy(),
        "k_phone": normalize_phone(counterparties["phone"]).to_numpy(),
        "k_email": normalize_email(counterparties["email"]).to_numpy(),
        "k_name": normalize_name(counterparties["name"], strict).to_numpy(),
    })
    keys = _record_keys(cp, spaces - {"id"}, "uuid")
    if "id" in spaces and len(external_ids):
        ext = pd.DataFrame({"uuid": external_ids["counterparty_uuid"].astype(str).to_numpy(), "space": "id",
                            "key": external_ids["external_id"].astype("string").str.strip().to_numpy()})
        keys = pd.concat([keys, ext[ext["key"].notna() & ext["key"].ne("")]], ignore_index=True)
    if len(keys):
        keys["key"] = keys["key"].astype(str)
    return keys.drop_duplicates(["space", "key", "uuid"]).reset_index(drop=True)


def _by_pos(b: pd.DataFrame, column: str, missing: str) -> np.ndarray:
    """`column` of the buyers as an object array indexed by placement position (missing → `missing`)."""
    values = b[column].astype(object).where(b[column].notna(), missing).to_numpy(dtype=object)
    out = np.empty(len(b), dtype=object)
    out[b["pos"].to_numpy("int64")] = values
    return out


def _shown(slots: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    """Human text of what a slot searched for: `phone +380…`, `name 'Анна' and phone +380…`.

    Object arrays throughout (one C-level string concatenation per element, no per-row Python call):
    this runs on every order that creates a counterparty, most of a backfill."""
    crit = slots["criterion"].to_numpy(dtype=object)
    text = slots["criterion"].map(_LABEL).to_numpy(dtype=object) + " " + slots["key"].astype(str).to_numpy(
        dtype=object)
    is_name, is_np = crit == "name", crit == _NP
    if is_name.any() or is_np.any():
        pos = slots["pos"].to_numpy("int64")
        name = _by_pos(b, "full_name", "")[pos]
        phone = _by_pos(b, "k_phone", "no phone")[pos]
        text[is_name] = "name '" + name[is_name] + "'"
        text[is_np] = "name '" + name[is_np] + "' and phone " + phone[is_np]
    return pd.Series(text, index=slots.index, dtype=object)


def match_customers(buyers: pd.DataFrame, counterparties: pd.DataFrame, external_ids: pd.DataFrame,
                    settings: CustomerSettings, run: pd.Series | None = None) -> pd.DataFrame:
    """One decision per order: ``default`` | ``matched`` | ``create`` | ``rejected`` (see module doc).

    ``buyers``: order_id, buyer_id (Int64), full_name, phone (E.164), email, placed_at (UTC).
    ``counterparties``: uuid, name, phone, email as Bimp holds them (normalised here).
    ``external_ids``: counterparty_uuid, external_id (the KeyCRM buyer id the pipeline stored).
    With ``fill_for_all`` the ``counterparty_uuid`` is ``settings.default_customer`` as given: callers
    pass settings whose references are already resolved to uuids.
    ``run`` (optional, one value per buyer row, e.g. the day partition): orders of different runs are
    decided independently, as if each run were matched on its own — a counterparty one run would create
    is not a candidate for another run's orders.  Without it all buyers form one run.
    Returns OUTPUT_COLUMNS in the buyers' row order.
    """
    if buyers.empty:
        return _empty_result()
    n_orders = len(buyers)
    out = pd.DataFrame({
        "order_id": buyers["order_id"].to_numpy(),
        "buyer_id": buyers["buyer_id"].astype("Int64").array,
        **{col: np.full(n_orders, None, dtype=object)
           for col in ("outcome", "counterparty_uuid", "matched_by", "create_key", "code", "detail")},
    })
    if settings.fill_for_all:  # R-CUST-1
        out["outcome"] = "default"
        out["counterparty_uuid"] = settings.default_customer
        out["matched_by"] = "default"
        return out

    b = _prepared_buyers(buyers, settings.strict_names)
    slots = search_slots(settings)
    spaces = {s for s in slots} | ({"phone"} if _NP in slots else set())
    bs = _buyer_slots(b, slots)
    existing = _existing_keys(counterparties, external_ids, spaces, settings.strict_names)
    # (space, key) pairs as integers: every lookup below is then an integer map, not a string merge
    space_code = {space: i for i, space in enumerate(sorted(spaces | {"id", "phone"}))}
    key_codes, key_uniques = pd.factorize(bs["key"].to_numpy())
    key_index = pd.Index(key_uniques)

    def pair_code(frame: pd.DataFrame, codes: np.ndarray | None = None) -> np.ndarray:
        """space × key as one int64 (-1 for a key no buyer slot has: nothing can meet it)."""
        codes = key_index.get_indexer(frame["key"].to_numpy()) if codes is None else codes
        paired = codes.astype("int64") * len(space_code) + frame["space"].map(space_code).to_numpy("int64")
        return np.where(codes < 0, -1, paired)

    bs["pair"] = pair_code(bs, key_codes)
    existing_pair = pair_code(existing)
    known = existing.assign(pair=existing_pair)[existing_pair >= 0]
    stats = known.groupby("pair", sort=False).agg(n=("uuid", "nunique"), uuid=("uuid", "first"))
    bs["n"] = bs["pair"].map(stats["n"]).fillna(0).astype(int).to_numpy()
    bs["uuid"] = bs["pair"].map(stats["uuid"]).to_numpy()

    pos_order_id = b.set_index("pos")["order_id"]
    searchable = pd.Index(bs["pos"].unique())
    exist_hit = bs[bs["n"].eq(1)].sort_values(["pos", "prio"]).drop_duplicates("pos").set_index("pos")
    ambiguous = bs[bs["n"].ge(2)].sort_values(["pos", "prio"]).drop_duplicates("pos").set_index("pos")
    potential = searchable.difference(exist_hit.index)  # matched nothing existing: would create

    follow = pd.DataFrame({"prio": [], "cpos": [], "criterion": []}).rename_axis("pos")
    creators = potential
    if settings.allow_create and len(potential):
        open_slots = bs[bs["n"].eq(0)][["pos", "prio", "criterion", "pair"]]
        cand = _record_keys(b[b["pos"].isin(potential)], spaces, "pos")
        cand["key"] = cand["key"].astype(str)
        cand["pair"] = pair_code(cand)
        cand = cand[cand["pair"] >= 0]
        # the run of each position: creators are followed only within their own run
        run_codes = (pd.factorize(pd.Series(run).to_numpy())[0] if run is not None
                     else np.zeros(n_orders, dtype="int64"))
        run_of_pos = np.empty(n_orders, dtype="int64")
        run_of_pos[b["pos"].to_numpy()] = run_codes
        runs = int(run_codes.max()) + 1 if n_orders else 1
        open_slots = open_slots.assign(
            code=open_slots["pair"].to_numpy() * runs + run_of_pos[open_slots["pos"].to_numpy().astype("int64")])
        cand = pd.DataFrame({"pos": cand["pos"].to_numpy(),
                             "code": cand["pair"].to_numpy() * runs
                             + run_of_pos[cand["pos"].to_numpy().astype("int64")]})
        chains = _Chains(open_slots, cand)
        is_potential = np.zeros(n_orders, dtype=bool)
        is_potential[potential.to_numpy("int64")] = True
        is_creator = is_potential.copy()
        for _ in range(n_orders + 1):
            follow = chains.followers(is_creator)
            now = is_potential.copy()
            now[follow.index.to_numpy("int64")] = False
            if np.array_equal(now, is_creator):
                break
            is_creator = now
        creators = pd.Index(np.flatnonzero(is_creator))
        # an order with an existing hit may still meet an earlier new counterparty at a higher priority
        follow = follow[~follow.index.isin(exist_hit.index)
                        | (follow["prio"] < exist_hit["prio"].reindex(follow.index).fillna(len(slots)))]

    row_of_pos = pd.Series(b.index.to_numpy(), index=b["pos"].to_numpy())

    def rows(positions: pd.Index) -> pd.Index:
        return pd.Index(row_of_pos.reindex(positions).to_numpy())

    # buyer_missing: nothing to search by
    missing = pd.Index(b["pos"]).difference(searchable)
    r = rows(missing)
    out.loc[r, ["outcome", "code"]] = ["rejected", IssueCode.BUYER_MISSING.value]
    out.loc[r, "detail"] = ("the buyer has no " + " or ".join(_LABEL[s].replace(" and ", " or ") for s in slots)
                            + " to search by (customers.search_by: " + ", ".join(settings.search_by) + ")")

    # matched to an existing counterparty (unless an earlier new one wins at a higher priority)
    matched = exist_hit.index.difference(follow.index)
    r = rows(matched)
    out.loc[r, "outcome"] = "matched"
    out.loc[r, "counterparty_uuid"] = exist_hit.loc[matched, "uuid"].to_numpy()
    out.loc[r, "matched_by"] = exist_hit.loc[matched, "criterion"].to_numpy()

    if settings.allow_create:
        # creators: a new counterparty each
        r = rows(creators)
        out.loc[r, "outcome"] = "create"
        out.loc[r, "create_key"] = ("order-" + pos_order_id.reindex(creators).astype(str)).to_numpy()
        out.loc[r, "detail"] = _create_detail(creators, bs, ambiguous, existing, counterparties, b).to_numpy()
        # followers: the new counterparty of an earlier order in this run
        r = rows(follow.index)
        out.loc[r, "outcome"] = "create"
        out.loc[r, "matched_by"] = follow["criterion"].to_numpy()
        out.loc[r, "create_key"] = ("order-" + pos_order_id.reindex(follow["cpos"].astype(int)).astype(str)
                                    ).to_numpy()
        out.loc[r, "detail"] = ("same new counterparty as order "
                                + pos_order_id.reindex(follow["cpos"].astype(int)).astype(str)).to_numpy()
    else:
        amb = potential.intersection(ambiguous.index)
        r = rows(amb)
        out.loc[r, ["outcome", "code"]] = ["rejected", IssueCode.CUSTOMER_AMBIGUOUS.value]
        out.loc[r, "detail"] = _ambiguous_detail(amb, ambiguous, existing, counterparties, b).to_numpy()
        nf = potential.difference(ambiguous.index)
        r = rows(nf)
        out.loc[r, ["outcome", "code"]] = ["rejected", IssueCode.CUSTOMER_NOT_FOUND.value]
        out.loc[r, "detail"] = _not_found_detail(nf, bs, b).to_numpy()
    return out


class _Chains:
    """Which orders follow an EARLIER creator's new counterparty, for any set of creators (the fixed point's
    step).  ``code`` is the (space, key, run) triple as one integer in both frames.  Sorted once; each step is
    a few linear passes over arrays (no sort, no join of a million rows)."""

    def __init__(self, open_slots: pd.DataFrame, creator_keys: pd.DataFrame) -> None:
        code = creator_keys["code"].to_numpy("int64")
        pos = creator_keys["pos"].to_numpy("int64")
        order = np.lexsort((pos, code))
        self.code_sorted, self.pos_sorted = code[order], pos[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = self.code_sorted[1:] != self.code_sorted[:-1]
        self.code_id = np.cumsum(first) - 1  # dense id of each sorted row's code
        self.n_codes = int(first.sum())
        self.slots = open_slots
        self.slot_code = pd.Index(self.code_sorted[first]).get_indexer(open_slots["code"].to_numpy("int64"))
        self.slot_pos = open_slots["pos"].to_numpy("int64")

    def followers(self, is_creator: np.ndarray) -> pd.DataFrame:
        """For each order: its highest-priority open slot that meets an earlier creator's value (same run)."""
        mine = is_creator[self.pos_sorted]
        ids, pos = self.code_id[mine], self.pos_sorted[mine]
        first = np.ones(len(ids), dtype=bool)
        first[1:] = ids[1:] != ids[:-1]  # rows are sorted by (code, pos): the first of a code is the earliest
        never = np.iinfo(np.int64).max
        earliest = np.full(self.n_codes + 1, never, dtype=np.int64)  # the extra last slot: "no such code"
        earliest[ids[first]] = pos[first]
        cpos = earliest[np.where(self.slot_code >= 0, self.slot_code, self.n_codes)]
        keep = cpos < self.slot_pos
        hits = self.slots[keep].assign(cpos=cpos[keep])
        hits = hits.sort_values(["pos", "prio"]).drop_duplicates("pos")
        return hits.set_index("pos")[["prio", "cpos", "criterion"]]


def _candidates_text(keys: pd.DataFrame, existing: pd.DataFrame, counterparties: pd.DataFrame) -> pd.Series:
    """Per (space, key): "uuid 'Name', uuid 'Name'" of the counterparties sharing it (first few)."""
    names = pd.Series(counterparties["name"].astype("string").fillna("").to_numpy(),
                      index=counterparties["uuid"].astype(str).to_numpy())
    names = names[~names.index.duplicated()]
    cands = existing.merge(keys[["space", "key"]].drop_duplicates(), on=["space", "key"])
    cands = cands.sort_values(["space", "key", "uuid"])
    cands = cands[cands.groupby(["space", "key"]).cumcount() < _MAX_CANDIDATES]
    cands["text"] = cands["uuid"] + " '" + cands["uuid"].map(names).fillna("") + "'"
    return cands.groupby(["space", "key"])["text"].agg(", ".join)


def _ambiguous_text(positions: pd.Index, ambiguous: pd.DataFrame, existing: pd.DataFrame,
                    counterparties: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    rows = ambiguous.loc[positions].rename_axis("pos").reset_index()
    if rows.empty:
        return pd.Series([], dtype=object, index=positions)
    text = _candidates_text(rows, existing, counterparties)
    listed = pd.Series(list(zip(rows["space"], rows["key"]))).map(text).fillna("")
    shown = _shown(rows, b).reset_index(drop=True)
    detail = shown + " is shared by " + rows["n"].astype(str) + " counterparties: " + listed
    return pd.Series(detail.to_numpy(), index=positions)


def _ambiguous_detail(positions: pd.Index, ambiguous: pd.DataFrame, existing: pd.DataFrame,
                      counterparties: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    return _ambiguous_text(positions, ambiguous, existing, counterparties, b) + \
        " and creating customers is off"


def _not_found_detail(positions: pd.Index, bs: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    rows = bs[bs["pos"].isin(positions)].sort_values(["pos", "prio"])
    if rows.empty:
        return pd.Series([], dtype=object, index=positions)
    shown = _shown(rows, b).to_numpy(dtype=object)
    # join per order without a per-group Python call: rows are sorted by (pos, prio), so an order's slots are
    # consecutive; a running join per slot position within the order (at most four slots)
    pos = rows["pos"].to_numpy("int64")
    rank = rows.groupby("pos", sort=False).cumcount().to_numpy()
    slot_of = pd.Index(positions).get_indexer(pos)
    joined = np.full(len(positions), None, dtype=object)
    for r in range(int(rank.max()) + 1):
        at = rank == r
        joined[slot_of[at]] = shown[at] if r == 0 else joined[slot_of[at]] + ", " + shown[at]
    has = pd.notna(joined)
    out = np.full(len(positions), pd.NA, dtype=object)
    out[has] = "no counterparty found by " + joined[has]
    return pd.Series(out, index=positions, dtype=object)


def _create_detail(positions: pd.Index, bs: pd.DataFrame, ambiguous: pd.DataFrame, existing: pd.DataFrame,
                   counterparties: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    amb = positions.intersection(ambiguous.index)
    nf = positions.difference(ambiguous.index)
    parts = []
    if len(amb):
        parts.append(_ambiguous_text(amb, ambiguous, existing, counterparties, b)
                     + "; a new counterparty is created")
    if len(nf):
        parts.append(_not_found_detail(nf, bs, b) + "; a new counterparty is created")
    if not parts:
        return pd.Series([], dtype=object, index=positions)
    return pd.concat(parts).reindex(positions)


def counterparties_to_create(matched: pd.DataFrame, buyers: pd.DataFrame) -> pd.DataFrame:
    """One row per ``create_key``: the data the new counterparty gets (R-CUST-8: as at creation).

    The data come from the first order of the key in placement order (the order that creates it):
    name as the buyer typed it (display form, so strict name search finds it again), phone and e-mail
    normalised, and the KeyCRM buyer id to store as the counterparty's external id (the ``id`` search).
    """
    creates = matched[matched["outcome"].eq("create")][["order_id", "create_key"]]
    if creates.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CREATE_COLUMNS})
    b = buyers[["order_id", "buyer_id", "full_name", "phone", "email", "placed_at"]].copy()
    b["placed_at"] = pd.to_datetime(b["placed_at"], utc=True)
    rows = creates.merge(b, on="order_id", how="left")
    rows = rows.sort_values(["create_key", "placed_at", "order_id"], kind="stable").drop_duplicates("create_key")
    rows = rows.sort_values(["placed_at", "order_id"], kind="stable")
    return pd.DataFrame({
        "create_key": rows["create_key"].to_numpy(),
        "order_id": rows["order_id"].to_numpy(),
        "buyer_id": rows["buyer_id"].astype("Int64").array,
        "name": _obj(rows["full_name"]).to_numpy(),
        "phone": normalize_phone(rows["phone"]).to_numpy(),
        "email": normalize_email(rows["email"]).to_numpy(),
    }).reset_index(drop=True)


__all__ = ["CREATE_COLUMNS", "OUTPUT_COLUMNS", "counterparties_to_create", "match_customers", "search_slots"]
