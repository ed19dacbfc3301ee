"""`make bench`: every benchmark in one run, printed side by side and written to benchmarks/RESULTS.md.

    python -m benchmarks.run_all [--latency] [--rate-limit] [--only extraction,requests,transform]

1. Extraction — 10k and 100k orders, emulator → DuckDB, ours vs dlt's rest_api (rate limit lifted).
2. Requests — KeyCRM requests per 1,000 orders; Bimp calls per created document; a re-run with nothing changed.
3. Transform — staging + matching + derivation at 10k, 100k, 1M orders; scaling exponent.
4. Latency (`--latency`, ~17 min) — sensor at 30 s under `dagster dev`: status change → Bimp document.
5. Rate limit (`--rate-limit`, ~5 min) — backfill of 10,000 orders at KeyCRM's 60 requests a minute.

Sections not run this time keep their last figures (benchmarks/results.json, a local cache; the optional
sections also in the committed benchmarks/results-optional.json), each with its own date, so RESULTS.md
always shows all five.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time

from benchmarks.common import ROOT, Emulators, fresh_dir, machine, run_child

RESULTS_JSON = ROOT / "benchmarks" / "results.json"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
# Sections that `make bench` does not run by default (and the pre-fix transform figures): committed, so that a
# fresh clone's RESULTS.md still shows their last figures; results.json itself is a local cache.
OPTIONAL_JSON = ROOT / "benchmarks" / "results-optional.json"
OPTIONAL_SECTIONS = ("latency", "rate_limit", "transform_before")
EXTRACTION_SIZES = (10_000, 100_000)
TRANSFORM_SIZES = (10_000, 100_000, 1_000_000)
REQUESTS_ORDERS = 300
DLT_ENV = {"RUNTIME__DLTHUB_TELEMETRY": "false", "RUNTIME__LOG_LEVEL": "ERROR"}
PAGE = 50

FINDINGS = """\
**Transform (issue A).** A backfill stages, matches and derives its whole range in one call of each step
(`stage_days`, `match_days`, `derive_customer_orders_days`; the per-day functions are the range of one day, and a
test proves the range gives the per-day loop's tables). 1M orders: 353 s → 53 s wall (61 CPU s, load ~2.4; a build
one step earlier took 87 s at load 5-6, when other work holds one of the two cores), peak 3.2 GiB (DuckDB capped
at 1.5 GB, `KEYBIMP_DUCKDB_MEMORY`). What was done, and where the time goes now at 1M (CPU s):

* *Staging ~36:* each payload is parsed once into a typed struct (`json_transform`, ~21 — the floor: a bare parse
  is ~4, filling the struct's 44 fields the rest; parallel on both cores), orders/lines/buyers inserted from it inside
  DuckDB (~6, plus ~1 s of commit I/O), pandera over the whole range on `string` dtypes (vectorised; fetching the
  checked columns ~2, the checks ~1.3; a datetime unit mismatch that made the dtype check fail column-wide, and
  scan every value, is fixed), phones/e-mails/names normalised once per distinct value (~1.6).
* *Matching ~15:* customers in pandas (~11) on integer (space, key) codes, the creator fixed point on arrays sorted
  once, texts on object arrays; products decided once per distinct (offer, SKU, name) — ~4k for 1.6M lines — and
  joined to the lines in DuckDB, on a second cursor in parallel with the customers.
* *Derivation ~10:* reading ~5M rows into pandas (~5; the document date formatted by DuckDB), the line money and
  the checks (~5). It peaks the memory (3.2 GiB): a million orders' frames with their strings.

Left for more headroom: the parse (a slimmer stored payload, or typed columns written at extraction, would cut
most of it), and matching customers in DuckDB rather than pandas.

**Extraction.** Ours takes 0.33-0.40 of dlt's time with the same rows and a fraction of its memory; dlt's peak
(3.6 GB at 10k, 16.7 GB at 100k orders) is its process with its DuckDB loader at default settings (DuckDB may use
80 % of RAM). Requests: dlt pages through one listing and sits exactly on the floor (20 per 1,000); ours reads each
day partition separately, so every day ends with a partly filled page: 24.4 per 1,000 at 10k (110 orders a day),
20.5 at 100k (within 5 %). The same fragmentation puts the rate-limited backfill 21 % over its floor (section 5).
*Fixed for backfills* (section 5): a ranged extract — one `created_between` listing over the whole range, orders
split into day partitions locally (`local_day`) and stored per day with the same cursors — reaches the floor at
any size. Section 1 still measures `extract_day` per day partition (a sensor run of one day).

**Requests.** Payments, sales invoices, returns and refunds cost one Bimp call each (the floor). A customer order
costs ~3.9 calls: the document, plus for new buyers a counterparty, its external id and a contract (each read
first), plus the warehouse's free stock, read whole (4 pages of 100) once per day partition that creates orders.
A re-run with nothing changed writes nothing; KeyCRM reads one page per day partition; Bimp reads free stock again
only on the days holding orders still waiting for stock (`reserve_insufficient`, retried by design) — 4 pages each
time. *Fix:* read free stock only for the items of the orders to create (`stocks(nomenclature_uuids)`: one page).

**Latency.** A run of one day partition under `dagster dev` took 45-50 s, of which the steps themselves took a few
seconds: Dagster's default multiprocess executor started a Python process per step (~11 steps) that imported
Dagster and the pipeline (~4 s each), and runs of one integration are serialised, so changes queued up (p50 was
72.7 s). Now every job runs its steps in process (`dg.in_process_executor`): a run's steps take 5-13 s, launched
~2-8 s after the tick, and the sensor asks for one run per stretch of consecutive changed days instead of one per
day. What is left is mostly the wait for the next tick (≤ 30 s). The missing changes are orders the pipeline rightly
does not create (not enough free stock to reserve: `reserve_insufficient`).

**Backfill at 60 requests a minute.** The client paces exactly (no 429, never more than 60 in a window). A listing
per day partition put it 21 % over its floor (the partly filled last page of every ~110-order day); a backfill is
now one run (`BackfillPolicy.single_run()`, `keybimp sync --from --to`) whose extract lists the whole range once
(`extract_days`: one `created_between` listing, orders split into shop-local days, per-day cursors): 203 requests,
exactly the floor. It writes the range in chunks of 2,000 orders as it reads, so memory stays bounded.
"""


def say(text: str) -> None:
    print(text, flush=True)


def _requests_delta(emu: Emulators, before: dict) -> int:
    return emu.admin("keycrm", "GET", "/__admin/requests")["total"] - before["total"]


def bench_extraction(sizes=EXTRACTION_SIZES) -> dict:
    out = {}
    for n in sizes:
        say(f"[extraction] starting the emulators with {n:,} orders …")
        with Emulators(n) as emu:
            row = {"orders": n, "floor_requests": math.ceil(n / PAGE)}
            for loader in ("ours", "dlt"):
                say(f"[extraction] {loader}: {n:,} orders …")
                before = emu.admin("keycrm", "GET", "/__admin/requests")
                result = run_child("benchmarks.extraction", [loader, "--keycrm-url", emu.keycrm_url, "--dir",
                                                             str(fresh_dir(f"extract-{loader}-{n}"))], env=DLT_ENV)
                result["requests"] = _requests_delta(emu, before)
                result["requests_per_1000"] = result["requests"] / n * 1000
                row[loader] = result
                say(f"[extraction] {loader}: {result['seconds']:.1f} s, {result['peak_mib']:.0f} MiB, "
                    f"{result['requests']} requests, {result['rows']:,} rows")
            row["ratio_time"] = row["ours"]["seconds"] / row["dlt"]["seconds"]
            row["ratio_memory"] = row["ours"]["peak_mib"] / row["dlt"]["peak_mib"]
            out[str(n)] = row
    return out


def bench_requests(orders=REQUESTS_ORDERS) -> dict:
    say(f"[requests] full sync of the {orders}-order demo, then a re-run with nothing changed …")
    with Emulators(orders) as emu:
        before = emu.admin("keycrm", "GET", "/__admin/requests")
        result = run_child("benchmarks.requests", ["--keycrm-url", emu.keycrm_url, "--bimp-url", emu.bimp_url,
                                                   "--dir", str(fresh_dir("requests"))])
        result["keycrm_server_total"] = _requests_delta(emu, before)
    result["orders"] = orders
    return result


def bench_transform(sizes=TRANSFORM_SIZES) -> dict:
    out = {}
    say("[transform] check: the wire-form payload stages exactly as extract.py's stored form …")
    out["check"] = run_child("benchmarks.transform", ["check", "--orders", "300", "--dir",
                                                      str(fresh_dir("transform-check"))])
    for n in sizes:
        directory = fresh_dir(f"transform-{n}")
        say(f"[transform] {n:,} orders: building raw_orders + reference (cached after the first time) …")
        built = run_child("benchmarks.transform", ["build", "--orders", str(n), "--dir", str(directory)],
                          timeout=7200)
        say(f"[transform] {n:,} orders: built in {built['seconds']:.0f} s (cached={built['cached']}); measuring …")
        load = [round(x, 2) for x in os.getloadavg()]
        result = run_child("benchmarks.transform", ["measure", "--dir", str(directory)], timeout=7200)
        result["build"] = built
        result["load_avg"] = load  # as this size started: the machine is shared, wall time depends on it
        out[str(n)] = result
        steps = result["steps"]
        say(f"[transform] {n:,}: {result['seconds']:.1f} s (stage {steps['stage']:.1f}, match {steps['match']:.1f}, "
            f"derive {steps['derive']:.1f}), cpu {result['cpu_s']:.1f} s, peak {result['peak_mib']:.0f} MiB")
    keys = [str(n) for n in sizes if str(n) in out]
    out["exponents"] = {f"{a}->{b}": math.log(out[b]["seconds"] / out[a]["seconds"]) / math.log(int(b) / int(a))
                        for a, b in itertools.pairwise(keys)}
    out["fit"] = fit_overhead(out, keys)
    return out


def fit_overhead(out: dict, keys: list[str]) -> dict | None:
    """t ≈ days·a + orders·b by least squares over the sizes: a = fixed cost per day partition (the steps'
    per-call overhead), b = cost per order.  Says which of the two dominates at each size."""
    if len(keys) < 2:
        return None
    xs = [(out[k]["days"], int(k)) for k in keys]
    ys = [out[k]["seconds"] for k in keys]
    s11 = sum(d * d for d, _ in xs)
    s12 = sum(d * n for d, n in xs)
    s22 = sum(n * n for _, n in xs)
    t1 = sum(d * y for (d, _), y in zip(xs, ys))
    t2 = sum(n * y for (_, n), y in zip(xs, ys))
    det = s11 * s22 - s12 * s12
    if det == 0:
        return None
    a = (t1 * s22 - t2 * s12) / det
    b = (s11 * t2 - s12 * t1) / det
    return {"per_day_s": a, "per_order_ms": b * 1000}


def bench_rate_limit(orders: int = 10_000) -> dict:
    say(f"[rate limit] backfilling {orders:,} orders at 60 requests a minute (takes 4-5 minutes) …")
    with Emulators(orders, keycrm_rpm=60) as emu:
        before = emu.admin("keycrm", "GET", "/__admin/requests")
        result = run_child("benchmarks.extraction", ["backfill", "--keycrm-url", emu.keycrm_url, "--dir",
                                                     str(fresh_dir("rate-limit"))])
        result["ranged"] = True  # one `extract_days` over the whole range, as a backfill's single run does
        stats = emu.admin("keycrm", "GET", "/__admin/requests")
        result["requests"] = stats["total"] - before["total"]
        result["status_counts"] = stats["status_counts"]
        result["max_in_window"] = stats["max_in_window"]
    floor = math.ceil(orders / PAGE) + 3  # + statuses, payment methods, sources
    # over the floor in requests (what the goal counts); the wall time sits near the floor too, a little under
    # it when the limiter lets the first minute's 60 requests go at once
    result.update({"orders": orders, "floor_requests": floor, "floor_seconds": floor,
                   "over_floor": result["requests"] / floor - 1,
                   "seconds_over_floor": result["seconds"] / floor - 1})
    return result


def bench_latency() -> dict:
    from benchmarks.latency import run

    say("[latency] dagster dev + daemon, sensor at 30 s, 20 status changes (takes ~15-20 minutes) …")
    return run()


# ------------------------------------------------------------------------------------------ reporting

def _f(value, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{unit}"


def _when(section: dict, default: str) -> str:
    """The section's own date (and the load average as it started): sections may come from earlier runs."""
    load = section.get("_load")
    return f"_{section.get('_date', default)}" + (f", load average {load[0]}_" if load else "_")


def _goal(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def render(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# keybimp benchmarks",
        "",
        (f"Generated by `make bench` (`python -m benchmarks.run_all`) on {m['date']}: {m['cores']} cores "
        f"({m['cpu']}), {m['memory_gib']} GiB memory, Python {m['python']}. Load average when it started: "
        f"{' / '.join(str(x) for x in m['load_avg'])} (1/5/15 min) — this machine is shared; wall times taken "
        "under load are inflated, CPU seconds (user + sys of the measured process) much less so."),
        "",
        ("Emulators run in their own process on loopback (they share the 2 cores); every measured loader or "
        "step runs in a child process of its own, so peak memory is that process's `ru_maxrss` "
        "(Python, pandas, DuckDB and the work)."),
        "",
    ]
    ext = results.get("extraction")
    if ext:
        lines += ["## 1. Extraction: KeyCRM emulator → DuckDB (rate limit lifted)", "",
                  _when(ext, m['date']), "",
                  "| orders | loader | wall s | CPU s | peak MiB | requests | req / 1,000 (floor 20) | rows |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for key, row in ext.items():
            if key.startswith("_"):
                continue
            for loader in ("ours", "dlt"):
                r = row[loader]
                lines.append(f"| {int(key):,} | {loader} | {_f(r['seconds'])} | {_f(r.get('cpu_s'))} | "
                             f"{_f(r['peak_mib'], 0)} | {r['requests']:,} | {_f(r['requests_per_1000'])} | "
                             f"{r['rows']:,} |")
            lines.append(f"| {int(key):,} | **ours / dlt** | **{row['ratio_time']:.2f}** | "
                         f"{_f(row['ours'].get('cpu_s', 0) / max(row['dlt'].get('cpu_s', 1), 1e-9), 2)} | "
                         f"{row['ratio_memory']:.2f} | | | |")
        rows_same = all(r["ours"]["rows"] == r["dlt"]["rows"] for k, r in ext.items() if not k.startswith("_"))
        half = all(r["ratio_time"] <= 0.5 for k, r in ext.items() if not k.startswith("_"))
        lines += ["", (f"Goal: ours at most half of dlt's time, same rows — time {_goal(half)}, rows "
                      f"{_goal(rows_same)}."), ""]
        lines += [("dlt: `rest_api_source` with bearer auth, JSON-link paginator on `next_page_url`, "
                  "`primary_key: id`, `write_disposition: merge`, `incremental` on `updated_at` through "
                  "`filter[updated_between]`, DuckDB destination with dlt's defaults. Ours: `extract_day` for "
                  "each of the demo's 92 day partitions (first fetch of each day)."), ""]
    req = results.get("requests")
    if req:
        first, rerun = req["first"], req["rerun"]
        created = first["created"]
        lines += ["## 2. Requests", "", _when(req, m['date']), ""]
        if ext:
            lines += ["KeyCRM requests per 1,000 orders fetched (floor 20 at 50 a page): " + ", ".join(
                f"{int(k):,} orders: ours {r['ours']['requests_per_1000']:.1f}, dlt {r['dlt']['requests_per_1000']:.1f}"
                for k, r in ext.items() if not k.startswith("_")) + ".", ""]
        lines += [(f"Bimp calls per created document — the {req['orders']}-order demo shop synced "
                  f"{'as one ranged run' if req.get('ranged') else 'day by day'} ({req['days']} days) through the "
                  "pipeline's steps, first run:"), "",
                  "| phase | created | Bimp calls | reads | writes | calls per created |",
                  "|---|---:|---:|---:|---:|---:|"]
        entity_created = {"customer_order": created.get("customer_order", 0),
                          "customer_payment": created.get("customer_payment", 0),
                          "sales_invoice": created.get("sales_invoice", 0),
                          "customer_return+refund": created.get("customer_return", 0) + created.get("refund", 0)}
        for name, c in first["phases"].items():
            n = entity_created.get(name)
            per = c["total"] / n if n else None
            lines.append(f"| {name} | {n if n is not None else '–'} | {c['total']:,} | {c['reads']:,} | "
                         f"{c['writes']:,} | {_f(per, 2)} |")
        lines += ["", f"The customer-order phase also created {created.get('counterparty', 0)} counterparties, "
                      f"{created.get('contract', 0)} contracts and {created.get('product', 0)} items; their calls "
                      "are in its figure. Bimp login calls: " + str(first["bimp"]["auth"]) + ".", "",
                  "Re-run with nothing changed (same days, reference snapshot still fresh):", "",
                  "| system | requests | reads | writes |", "|---|---:|---:|---:|",
                  f"| KeyCRM | {rerun['keycrm_requests']:,} | {rerun['keycrm_requests']:,} | 0 |",
                  f"| Bimp | {rerun['bimp']['total']:,} | {rerun['bimp']['reads']:,} | {rerun['bimp']['writes']:,} |",
                  "", (f"Goal: no writes — {_goal(rerun['bimp']['writes'] == 0)}; the fewest reads: KeyCRM "
                      + (f"{rerun['keycrm_requests']} for the {req['days']} day partitions (one incremental listing "
                         "over the range, as one ranged run reads them)" if req.get("ranged") else
                         f"{rerun['keycrm_requests'] / req['days']:.2f} per day partition (one incremental page)")
                      + f", Bimp {rerun['bimp']['reads'] / req['days']:.2f} per day partition."), ""]
        if rerun["bimp"]["total"]:
            lines += ["Bimp calls of the re-run by path: " + ", ".join(
                f"`{p}` {n}" for p, n in sorted(rerun["bimp_by_path"].items(), key=lambda x: -x[1])) + ".", ""]
    tr = results.get("transform")
    if tr:
        lines += ["## 3. Transform: staging + matching + derivation (API time excluded)", "",
                  _when(tr, m['date']), "",
                  "| orders | days | wall s | CPU s | stage s | match s | derive s | peak MiB | derived orders | load |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for key in (k for k in tr if k.isdigit()):
            r = tr[key]
            s = r["steps"]
            load = r.get("load_avg")
            lines.append(f"| {int(key):,} | {r['days']} | {_f(r['seconds'])} | {_f(r.get('cpu_s'))} | "
                         f"{_f(s['stage'])} | {_f(s['match'])} | {_f(s['derive'])} | {_f(r['peak_mib'], 0)} | "
                         f"{r['derived_orders']:,} | {load[0] if load else '–'} |")
        exps = tr.get("exponents", {})
        lines += ["", "Scaling exponent (log t₂/t₁ ÷ log n₂/n₁): " + ", ".join(
            f"{k.replace('->', ' → ')}: {v:.2f}" for k, v in exps.items()) + " (goal ≤ 1.1).", ""]
        big = tr.get("1000000")
        if big:
            lines += [(f"Goal 1M under 60 s and 4 GB: {_f(big['seconds'])} s "
                      f"({_goal(big['seconds'] < 60)}), {_f(big['peak_mib'] / 1024, 2)} GiB "
                      f"({_goal(big['peak_mib'] < 4096)})."), ""]
        if big and big.get("cpu_steps"):
            cs, pk = big["cpu_steps"], big.get("peak_mib_after", {})
            lines += [("At 1M, CPU seconds per step (DuckDB runs on both cores, so CPU may exceed wall): "
                      + ", ".join(f"{k} {_f(cs[k])}" for k in ("stage", "match", "derive"))
                      + (("; process peak after each step: " + ", ".join(
                          f"{k} {_f(pk[k], 0)} MiB" for k in ("stage", "match", "derive"))) if pk else "")
                      + "."), ""]
        fit = tr.get("fit")
        if fit:
            lines += [(f"Least-squares fit t ≈ days × {fit['per_day_s']:.2f} s + orders × {fit['per_order_ms']:.3f} ms "
                      "(all days in one call of each range function, so the first term is the run's fixed cost "
                      "spread over its days, not a cost per day partition)."), ""]
        before = results.get("transform_before")
        if before:
            lines += [("Before the range functions (`stage_day` → `match_day` → `derive_customer_orders` looped over "
                      f"the 91 day partitions), same machine, {before.get('_date', '')}:"), "",
                      "| orders | wall s | CPU s | stage s | match s | derive s | peak MiB |",
                      "|---:|---:|---:|---:|---:|---:|---:|"]
            for key in (k for k in before if k.isdigit()):
                r, st = before[key], before[key]["steps"]
                lines.append(f"| {int(key):,} | {_f(r['seconds'])} | {_f(r.get('cpu_s'))} | {_f(st['stage'])} | "
                             f"{_f(st['match'])} | {_f(st['derive'])} | {_f(r['peak_mib'], 0)} |")
            lines.append("")
    lat = results.get("latency")
    lines += ["## 4. Latency: KeyCRM status change → document in Bimp (`dagster dev`, sensor at 30 s)", ""]
    if lat:
        lines += [_when(lat, m['date']), "",
                  (f"{lat['n']} of {lat['changes']} changes arrived (one every {lat['spacing_s']} s): "
                  f"p50 **{_f(lat['p50'])} s**, p95 **{_f(lat['p95'])} s**, max {_f(lat['max'])} s, "
                  f"mean {_f(lat['mean'])} s; missing {lat['missing']}. Goal p50 ≤ 45 s: "
                  f"{_goal(lat['p50'] is not None and lat['p50'] <= 45)}."), "",
                  "All latencies (s): " + ", ".join(str(v) for v in lat["latencies"]) + ".", ""]
        if lat.get("_load_end"):
            lines += [f"Load average at the end: {lat['_load_end'][0]} (the machine is shared).", ""]
        before = lat.get("before")
        if before:
            lines += [(f"Before (Dagster's multiprocess executor, a run per changed day, {before['_date']}, load "
                      f"average {before.get('_load', ['?'])[0]}): {before['n']} of {before['changes']} arrived, "
                      f"p50 {_f(before['p50'])} s, p95 {_f(before['p95'])} s, max {_f(before['max'])} s."), ""]
    else:
        lines += ["Not run yet: `python -m benchmarks.run_all --latency`.", ""]
    rl = results.get("rate_limit")
    lines += ["## 5. Backfill at the real rate limit (60 requests a minute)", ""]
    if rl:
        over = rl["requests"] / rl["floor_requests"] - 1
        lines += [_when(rl, m['date']), "",
                  (f"{rl['orders']:,} orders ({rl['days']} day partitions, "
                  f"{'one ranged extract' if rl.get('ranged') else 'a listing per day'}) + KeyCRM reference "
                  f"books: **{rl['requests']:,} requests in {rl['seconds']:.0f} s**; floor "
                  f"{rl['floor_requests']} requests (ceil({rl['orders']:,} / 50) + 3 reference) = "
                  f"{rl['floor_seconds']} s at 60 a minute. Over the floor: {over * 100:+.1f} % in requests "
                  f"(goal within 10 %: {_goal(over <= 0.10)}), {(rl['seconds'] / rl['floor_seconds'] - 1) * 100:+.0f} "
                  f"% in time. Rows stored {rl['rows']:,}; peak memory {_f(rl.get('peak_mib'), 0)} MiB; "
                  f"429s {rl['status_counts'].get('429', 0)}; most requests in any 60 s window "
                  f"{rl['max_in_window']}."), ""]
        before = rl.get("before")
        if before:
            lines += [(f"Before (a listing per day partition, {before['_date']}): {before['requests']} requests in "
                      f"{before['seconds']:.0f} s, {(before['requests'] / before['floor_requests'] - 1) * 100:+.0f} % "
                      f"over the floor; peak {_f(before.get('peak_mib'), 0)} MiB."), ""]
    else:
        lines += ["Not run yet: `python -m benchmarks.run_all --rate-limit`.", ""]
    lines += ["## What dominates, and what would fix it", "", FINDINGS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all")
    parser.add_argument("--latency", action="store_true", help="also run the dagster dev latency benchmark")
    parser.add_argument("--rate-limit", action="store_true", help="also backfill 10,000 orders at 60/min")
    parser.add_argument("--only", default="extraction,requests,transform",
                        help="comma-separated subset of the default sections")
    parser.add_argument("--transform-sizes", default=",".join(str(n) for n in TRANSFORM_SIZES))
    args = parser.parse_args(argv)
    started = time.monotonic()
    previous = json.loads(OPTIONAL_JSON.read_text()) if OPTIONAL_JSON.exists() else {}
    if RESULTS_JSON.exists():
        previous.update(json.loads(RESULTS_JSON.read_text()))
    results = dict(previous)
    results["machine"] = machine()
    stamp = results["machine"]["date"]
    say(f"machine: {results['machine']}")
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    plan = []
    if "extraction" in sections:
        plan.append(("extraction", bench_extraction))
    if "requests" in sections:
        plan.append(("requests", bench_requests))
    if "transform" in sections:
        sizes = tuple(int(x) for x in args.transform_sizes.split(","))
        plan.append(("transform", lambda: bench_transform(sizes)))
    if args.rate_limit:
        plan.append(("rate_limit", bench_rate_limit))
    if args.latency:
        plan.append(("latency", bench_latency))
    for name, fn in plan:
        section_started = time.monotonic()
        load = [round(x, 2) for x in os.getloadavg()]
        results[name] = fn()
        results[name]["_load"] = load
        results[name]["_date"] = stamp
        results[name]["_seconds"] = time.monotonic() - section_started
        RESULTS_JSON.write_text(json.dumps(results, indent=1, default=str))
    text = render(results)
    RESULTS_MD.write_text(text + "\n")
    RESULTS_JSON.write_text(json.dumps(results, indent=1, default=str))
    optional = {k: results[k] for k in OPTIONAL_SECTIONS if k in results}
    OPTIONAL_JSON.write_text(json.dumps(optional, indent=1, default=str) + "\n")
    say("\n" + text)
    say(f"\n(benchmarks took {time.monotonic() - started:.0f} s; written to {RESULTS_MD.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
