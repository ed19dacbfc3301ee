"""`make bench`: all five benchmarks in one run, printed side by side and written to benchmarks/RESULTS.md.

    python -m benchmarks.run_all [--only extraction,requests,transform,latency,rate_limit]
    make bench [BENCH_ONLY=transform]            (BENCH_ONLY: the same comma-separated subset)

1. Extraction (~10 min) — 10k and 100k orders, emulator → DuckDB, ours (one ranged listing, as a backfill
   extracts) vs dlt's rest_api (rate limit lifted).
2. Requests (~2-3 min) — KeyCRM requests per 1,000 orders; Bimp calls per created document; a re-run with nothing
   changed.
3. Transform (~3 min; + ~5 min the first time, to build the 1M-order store, cached in benchmarks/out) —
   staging + matching + derivation at 10k, 100k, 1M orders; scaling exponent.
4. Latency (~9 min) — sensor at 30 s under `dagster dev`: 20 status changes → Bimp documents.
5. Rate limit (~3.5 min) — backfill of 10,000 orders at KeyCRM's 60 requests a minute.

A subset (for development) keeps the other sections' last figures from benchmarks/results.json (committed with
RESULTS.md), each shown with its own date and load average.  A section that fails (an exception, or a latency
change that never arrives) is written as FAILED and makes the command exit 1, after RESULTS.md is written.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
import traceback
from datetime import UTC, datetime

from benchmarks.common import ROOT, Emulators, fresh_dir, machine, run_child

# committed with RESULTS.md: every section's last figures (and the earlier figures kept for comparison), so a
# subset run, or a fresh clone's, still shows all five
RESULTS_JSON = ROOT / "benchmarks" / "results.json"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
SECTIONS = ("extraction", "requests", "transform", "latency", "rate_limit")
EXTRACTION_SIZES = (10_000, 100_000)
TRANSFORM_SIZES = (10_000, 100_000, 1_000_000)
REQUESTS_ORDERS = 300
DLT_ENV = {"RUNTIME__DLTHUB_TELEMETRY": "false", "RUNTIME__LOG_LEVEL": "ERROR"}
PAGE = 50

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

    say("[latency] history synced headless, then dagster dev + daemon, sensor at 30 s, 20 status changes of "
        "transferred orders, one every 17 s (takes ~10 minutes) …")
    return run()


BENCHES = {"extraction": bench_extraction, "requests": bench_requests, "transform": bench_transform,
           "latency": bench_latency, "rate_limit": bench_rate_limit}


# ------------------------------------------------------------------------------------------ reporting

def _f(value, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{unit}"


def _when(section: dict) -> str:
    """The section's own date, how long it took and the load average (1 min) as it started and ended: sections
    may come from different runs, and the machine may be shared."""
    load, end = section.get("_load"), section.get("_load_end")
    took = section.get("_seconds")
    return (f"_{section.get('_date', '?')}"
            + (f", took {took / 60:.1f} min" if took else "")
            + (f", load average {load[0]}" if load else "")
            + (f" → {end[0]} at the end" if end else "") + "_")


def _goal(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def _not_run(name: str) -> list[str]:
    return [f"Not run yet: `make bench BENCH_ONLY={name}`.", ""]


def _failed(section: dict) -> list[str]:
    return [f"**FAILED**: {section.get('error', 'see above')}", ""]


def _history(results: dict, name: str) -> list[dict]:
    return results.get("history", {}).get(name, [])


def render(results: dict) -> str:
    m = results["machine"]
    ran = results.get("_ran", [])
    lines = [
        "# keybimp benchmarks",
        "",
        (f"Written by `make bench` (`python -m benchmarks.run_all`) on {m['date']}: {m['cores']} cores "
         f"({m['cpu']}), {m['memory_gib']} GiB memory, Python {m['python']}. Sections run this time: "
         f"{', '.join(ran) if ran else 'none'}"
         + ("" if set(ran) >= set(SECTIONS) else "; the others show their last figures, with their own date")
         + f". Load average as the run started: {' / '.join(str(x) for x in m['load_avg'])} (1/5/15 min); each "
         "section gives its own. On a shared machine wall times are inflated by the others' work; CPU seconds "
         "(user + sys of the measured process) much less so."),
        "",
        ("Emulators run in their own process on loopback (they share the 2 cores); every measured loader or "
         "step runs in a child process of its own, so peak memory is that process's `ru_maxrss` "
         "(Python, pandas, DuckDB and the work)."),
        "",
    ]
    lines += _render_extraction(results) + _render_requests(results) + _render_transform(results)
    lines += _render_latency(results) + _render_rate_limit(results)
    lines += ["## What dominates, and what would fix it", "", findings(results)]
    return "\n".join(lines)


def _sizes(section: dict) -> list[str]:
    return [k for k in section if k.isdigit()]


def _render_extraction(results: dict) -> list[str]:
    ext = results.get("extraction")
    lines = ["## 1. Extraction: KeyCRM emulator → DuckDB (rate limit lifted)", ""]
    if not ext:
        return lines + _not_run("extraction")
    lines += [_when(ext), ""]
    if ext.get("failed"):
        return lines + _failed(ext)
    lines += ["| orders | loader | wall s | CPU s | peak MiB | requests | req / 1,000 (floor 20) | rows |",
              "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for key in _sizes(ext):
        row = ext[key]
        for loader in ("ours", "dlt"):
            r = row[loader]
            lines.append(f"| {int(key):,} | {loader} | {_f(r['seconds'])} | {_f(r.get('cpu_s'))} | "
                         f"{_f(r['peak_mib'], 0)} | {r['requests']:,} | {_f(r['requests_per_1000'])} | "
                         f"{r['rows']:,} |")
        lines.append(f"| {int(key):,} | **ours / dlt** | **{row['ratio_time']:.2f}** | "
                     f"{_f(row['ours'].get('cpu_s', 0) / max(row['dlt'].get('cpu_s', 1), 1e-9), 2)} | "
                     f"{row['ratio_memory']:.2f} | | | |")
    rows_same = all(ext[k]["ours"]["rows"] == ext[k]["dlt"]["rows"] == int(k) for k in _sizes(ext))
    half = all(ext[k]["ratio_time"] <= 0.5 for k in _sizes(ext))
    floor = all(ext[k]["ours"]["requests_per_1000"] <= 20 * 1.05 for k in _sizes(ext))
    lines += ["", (f"Goal: ours at most half of dlt's time, same rows — time {_goal(half)}, rows "
                   f"{_goal(rows_same)}; ours within 5 % of the floor of 20 requests per 1,000 — {_goal(floor)}."),
              "",
              ("Ours: `extract_days` over the demo's 92 day partitions, as a backfill's single run (and `keybimp "
               "sync --from --to`) extracts them: one `created_between` listing over the range, the orders split "
               "into shop-local days, stored in chunks, a cursor per day (first fetch of every day). dlt: "
               "`rest_api_source` with bearer auth, JSON-link paginator on `next_page_url`, `primary_key: id`, "
               "`write_disposition: merge`, `incremental` on `updated_at` through `filter[updated_between]`, "
               "DuckDB destination with dlt's defaults."), ""]
    for old in _history(results, "extraction"):
        lines += [f"Earlier ({old['label']}, {old['_date']}): " + "; ".join(
            f"{int(k):,} orders {v['seconds']:.1f} s, {v['requests']:,} requests ({v['requests_per_1000']:.1f} "
            f"per 1,000), peak {v['peak_mib']:,.0f} MiB" for k, v in old["ours"].items()) + ".", ""]
    return lines


def _render_requests(results: dict) -> list[str]:
    req, ext = results.get("requests"), results.get("extraction")
    lines = ["## 2. Requests", ""]
    if not req:
        return lines + _not_run("requests")
    lines += [_when(req), ""]
    if req.get("failed"):
        return lines + _failed(req)
    first, rerun = req["first"], req["rerun"]
    created = first["created"]
    if ext and not ext.get("failed"):
        lines += ["KeyCRM requests per 1,000 orders fetched (floor 20 at 50 a page; section 1, "
                  f"{ext.get('_date')}): " + ", ".join(
                      f"{int(k):,} orders: ours {ext[k]['ours']['requests_per_1000']:.1f}, "
                      f"dlt {ext[k]['dlt']['requests_per_1000']:.1f}" for k in _sizes(ext)) + ".", ""]
    lines += [(f"The {req['orders']}-order demo shop synced as one ranged run ({req['days']} days: KeyCRM extract "
               "and staging over the range, the Bimp writers day by day) through the pipeline's steps. First run: "
               f"KeyCRM {first['keycrm_requests']} requests (orders and the 3 reference books; floor "
               f"{math.ceil(req['orders'] / PAGE) + 3}). Bimp calls per created document:"), "",
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
    order_paths = first["phases"].get("customer_order", {}).get("by_path", {})
    lines += ["", (f"The customer-order phase also created {created.get('counterparty', 0)} counterparties, "
                   f"{created.get('contract', 0)} contracts and {created.get('product', 0)} items; their calls "
                   "are in its figure, by path: " + ", ".join(
                       f"`{p}` {n}" for p, n in sorted(order_paths.items(), key=lambda x: -x[1]))
                   + f". Bimp login calls: {first['bimp']['auth']}."), "",
              "Re-run with nothing changed (same days, reference snapshot still fresh):", "",
              "| system | requests | reads | writes |", "|---|---:|---:|---:|",
              f"| KeyCRM | {rerun['keycrm_requests']:,} | {rerun['keycrm_requests']:,} | 0 |",
              f"| Bimp | {rerun['bimp']['total']:,} | {rerun['bimp']['reads']:,} | {rerun['bimp']['writes']:,} |",
              "", (f"Goal: no writes — {_goal(rerun['bimp']['writes'] == 0)}; the fewest reads — KeyCRM "
                   f"{rerun['keycrm_requests']} where one listing that finds nothing would do "
                   f"({_goal(rerun['keycrm_requests'] <= 1)}); Bimp {rerun['bimp']['reads']} reads, "
                   f"{_waiting_reads(rerun)} of them for the orders still waiting for stock (retried by design). "
                   "The findings below say what each read is for."), ""]
    if rerun["bimp"]["total"]:
        lines += ["Bimp calls of the re-run by path: " + ", ".join(
            f"`{p}` {n}" for p, n in sorted(rerun["bimp_by_path"].items(), key=lambda x: -x[1])) + ".", ""]
    if "keycrm_listings" in rerun:
        lines += [(f"KeyCRM in the re-run: {rerun['keycrm_listings']} listing(s), {rerun['keycrm_orders_read']:,} "
                   f"orders read again (of {req['orders']:,}); the reference books were still fresh."), ""]
    return lines


def _waiting_reads(rerun: dict) -> int:
    """Bimp reads a re-run makes for orders still waiting for stock: their free stock and their buyer's contract."""
    by_path = rerun["bimp_by_path"]
    return by_path.get("/org2/nomenclature/api-readStocks", 0) + by_path.get("/org2/contract/api-readList", 0)


def _render_transform(results: dict) -> list[str]:
    tr = results.get("transform")
    lines = ["## 3. Transform: staging + matching + derivation (API time excluded)", ""]
    if not tr:
        return lines + _not_run("transform")
    lines += [_when(tr), ""]
    if tr.get("failed"):
        return lines + _failed(tr)
    lines += ["| orders | days | wall s | CPU s | stage s | match s | derive s | peak MiB | derived orders | load |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in _sizes(tr):
        r = tr[key]
        st = r["steps"]
        load = r.get("load_avg")
        lines.append(f"| {int(key):,} | {r['days']} | {_f(r['seconds'])} | {_f(r.get('cpu_s'))} | "
                     f"{_f(st['stage'])} | {_f(st['match'])} | {_f(st['derive'])} | {_f(r['peak_mib'], 0)} | "
                     f"{r['derived_orders']:,} | {load[0] if load else '–'} |")
    exps = tr.get("exponents", {})
    lines += ["", "Scaling exponent (log t₂/t₁ ÷ log n₂/n₁): " + ", ".join(
        f"{k.replace('->', ' → ')}: {v:.2f}" for k, v in exps.items())
        + f" (goal ≤ 1.1: {_goal(all(v <= 1.1 for v in exps.values()) if exps else None)}).", ""]
    big = tr.get("1000000")
    if big:
        load = big.get("load_avg") or ["?"]
        lines += [(f"Goal 1M under 60 s and 4 GB: {_f(big['seconds'])} s wall "
                   f"({_goal(big['seconds'] < 60)}; {_f(big.get('cpu_s'))} CPU s, load average {load[0]} as it "
                   f"started on {results['machine']['cores']} cores), {_f(big['peak_mib'] / 1024, 2)} GiB "
                   f"({_goal(big['peak_mib'] < 4096)})."), ""]
        if big.get("cpu_steps"):
            cs, pk = big["cpu_steps"], big.get("peak_mib_after", {})
            lines += [("At 1M, CPU seconds per step (DuckDB runs on both cores, so CPU may exceed wall): "
                       + ", ".join(f"{k} {_f(cs[k])}" for k in ("stage", "match", "derive"))
                       + (("; process peak after each step: " + ", ".join(
                           f"{k} {_f(pk[k], 0)} MiB" for k in ("stage", "match", "derive"))) if pk else "")
                       + "."), ""]
    else:
        lines += ["Goal 1M under 60 s and 4 GB: not measured in this run (no 1M size).", ""]
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
        for key in _sizes(before):
            r, st = before[key], before[key]["steps"]
            lines.append(f"| {int(key):,} | {_f(r['seconds'])} | {_f(r.get('cpu_s'))} | {_f(st['stage'])} | "
                         f"{_f(st['match'])} | {_f(st['derive'])} | {_f(r['peak_mib'], 0)} |")
        lines.append("")
    return lines


def _render_latency(results: dict) -> list[str]:
    lat = results.get("latency")
    lines = ["## 4. Latency: KeyCRM status change → document in Bimp (`dagster dev`, sensor at 30 s)", ""]
    if not lat:
        return lines + _not_run("latency")
    lines += [_when(lat), ""]
    if lat.get("error"):
        return lines + _failed(lat)
    arrived_all = lat["n"] == lat["changes"] and not lat["missing"]
    lines += [(f"{lat['n']} of {lat['changes']} status changes of orders already transferred arrived (one every "
               f"{lat['spacing_s']:g} s; the shop's {lat.get('orders', 1000):,}-order history synced headless first, "
               f"in {_f(lat.get('presync_s'), 0)} s, not timed): p50 **{_f(lat['p50'])} s**, "
               f"p95 **{_f(lat['p95'])} s**, max {_f(lat['max'])} s, mean {_f(lat['mean'])} s. "
               f"Goal p50 ≤ 45 s over 20 changes: "
               f"{_goal(arrived_all and lat['p50'] is not None and lat['p50'] <= 45)}."), ""]
    if not arrived_all:
        lines += [(f"**FAILED**: {lat['missing']} change(s) never arrived within {lat.get('timeout_after_last_s')} s "
                   f"of the last one: orders {', '.join(str(i) for i in lat.get('missing_ids', []))}."), ""]
    lines += ["All latencies (s): " + ", ".join(str(v) for v in lat["latencies"]) + ".", ""]
    for old in _history(results, "latency"):
        lines += [(f"Earlier ({old['label']}, {old['_date']}, load average {old['_load'][0]}): {old['n']} of "
                   f"{old['changes']} arrived, p50 {_f(old['p50'])} s, p95 {_f(old['p95'])} s, "
                   f"max {_f(old['max'])} s."), ""]
    return lines


def _render_rate_limit(results: dict) -> list[str]:
    rl = results.get("rate_limit")
    lines = ["## 5. Backfill at the real rate limit (60 requests a minute)", ""]
    if not rl:
        return lines + _not_run("rate_limit")
    lines += [_when(rl), ""]
    if rl.get("failed"):
        return lines + _failed(rl)
    over = rl["requests"] / rl["floor_requests"] - 1
    lines += [(f"{rl['orders']:,} orders ({rl['days']} day partitions, one ranged extract) + KeyCRM reference "
               f"books: **{rl['requests']:,} requests in {rl['seconds']:.0f} s**; floor "
               f"{rl['floor_requests']} requests (ceil({rl['orders']:,} / 50) + 3 reference) = "
               f"{rl['floor_seconds']} s at 60 a minute. Over the floor: {over * 100:+.1f} % in requests "
               f"(goal within 10 %: {_goal(over <= 0.10)}), {(rl['seconds'] / rl['floor_seconds'] - 1) * 100:+.0f} "
               f"% in time. Rows stored {rl['rows']:,}; peak memory {_f(rl.get('peak_mib'), 0)} MiB; "
               f"429s {rl['status_counts'].get('429', 0)}; most requests in any 60 s window "
               f"{rl['max_in_window']}."), ""]
    for old in _history(results, "rate_limit"):
        lines += [(f"Earlier ({old['label']}, {old['_date']}): {old['requests']} requests in "
                   f"{old['seconds']:.0f} s, {(old['requests'] / old['floor_requests'] - 1) * 100:+.0f} % "
                   f"over the floor; peak {_f(old.get('peak_mib'), 0)} MiB."), ""]
    return lines


def _ok(section: dict | None) -> bool:
    return bool(section) and not section.get("failed") and not section.get("error")


def findings(results: dict) -> str:
    """What dominates each section and what would fix it, with this run's figures (a section without figures
    says what it measures only)."""
    parts = [_findings_transform(results), _findings_extraction(results), _findings_requests(results),
             _findings_latency(results), _findings_rate_limit(results)]
    return "\n\n".join(p for p in parts if p) + "\n"


def _findings_transform(results: dict) -> str:
    tr, before = results.get("transform"), results.get("transform_before", {})
    big = tr.get("1000000") if _ok(tr) else None
    head = ("**Transform.** A backfill stages, matches and derives its whole range in one call of each step "
            "(`stage_days`, `match_days`, `derive_customer_orders_days`; the per-day functions are the range of one "
            "day, and `benchmarks.transform check` proves the range gives the per-day loop's tables).")
    if big:
        head += (f" 1M orders: {before.get('1000000', {}).get('seconds', '?')} s with the per-day loop → "
                 f"{big['seconds']:.1f} s wall ({big.get('cpu_s', 0):.1f} CPU s, load {big.get('load_avg', ['?'])[0]}), "
                 f"peak {big['peak_mib'] / 1024:.2f} GiB (DuckDB capped at 1.5 GB, `KEYBIMP_DUCKDB_MEMORY`).")
    return head + """ Where the CPU goes at 1M (profiled on 2026-12-03; this run's CPU per step is in section 3):

* *Staging:* each payload is parsed once into a typed struct (`json_transform`, most of the step — a bare parse
  is a fifth of it, filling the struct's 44 fields the rest; parallel on both cores), orders/lines/buyers
  inserted from it inside DuckDB, pandera over the whole range on `string` dtypes (vectorised),
  phones/e-mails/names normalised once per distinct value.
* *Matching:* customers in pandas on integer (space, key) codes, the creator fixed point on arrays sorted once;
  products decided once per distinct (offer, SKU, name) — ~4k for 1.6M lines — and joined to the lines in
  DuckDB, on a second cursor in parallel with the customers.
* *Derivation:* reading ~5M rows into pandas (the document date formatted by DuckDB), the line money and the
  checks. It sets the memory peak: a million orders' frames with their strings.

Left for more headroom: the parse (a slimmer stored payload, or typed columns written at extraction, would cut
most of it), and matching customers in DuckDB rather than pandas."""


def _findings_extraction(results: dict) -> str:
    ext = results.get("extraction")
    text = "**Extraction.** "
    if _ok(ext):
        sizes = _sizes(ext)
        ratios = [ext[k]["ratio_time"] for k in sizes]
        dlt_peaks = ", ".join(f"{ext[k]['dlt']['peak_mib'] / 1024:.1f} GiB at {int(k) // 1000}k" for k in sizes)
        span = f"{min(ratios):.2f}" if f"{min(ratios):.2f}" == f"{max(ratios):.2f}" else \
            f"{min(ratios):.2f}–{max(ratios):.2f}"
        text += (f"Ours takes {span} of dlt's time with the same rows and a fraction "
                 f"of its memory; dlt's peak ({dlt_peaks} orders) is its process with its DuckDB loader at default "
                 "settings (DuckDB may use 80 % of RAM). Requests: both read one listing, so both sit on the floor "
                 "(ours " + ", ".join(f"{ext[k]['ours']['requests_per_1000']:.1f}" for k in sizes)
                 + " per 1,000; dlt " + ", ".join(f"{ext[k]['dlt']['requests_per_1000']:.1f}" for k in sizes)
                 + "). ")
    return text + ("Ours is measured as a backfill extracts (`extract_days`: one `created_between` listing over "
                   "the range, orders split into shop-local days, a cursor per day). Before it, each day partition "
                   "had its own listing and every day ended on a partly filled page: 24.4 requests per 1,000 at 10k "
                   "(~110 orders a day), 20.5 at 100k (2026-12-03). A sensor run of one changed day still reads "
                   "one listing for that day, by design.")


def _findings_requests(results: dict) -> str:
    req = results.get("requests")
    if not _ok(req):
        return ""
    first, rerun = req["first"], req["rerun"]
    created = first["created"]
    phase = first["phases"]["customer_order"]
    paths = phase["by_path"]
    orders = created.get("customer_order", 0) or 1
    stocks = paths.get("/org2/nomenclature/api-readStocks", 0)
    buyer_paths = ("/org2/counterparty/api-insert", "/org2/counterparty/api-saveExternalId",
                   "/org2/contract/api-readList", "/org2/contract/api-create")
    buyer_calls = sum(paths.get(p, 0) for p in buyer_paths)
    text = (f"**Requests.** Payments, sales invoices, returns and refunds cost one Bimp call each (the floor). A "
            f"customer order costs {phase['total'] / orders:.2f} calls: the document (1); for the "
            f"{created.get('counterparty', 0)} new buyers a counterparty, its external id, a contract read and a "
            f"contract create ({buyer_calls} calls, {buyer_calls / orders:.2f} per order); the "
            f"{created.get('product', 0)} items created; and the free stock, read for the items of the orders being "
            f"written only (`nomenclature/api-readStocks`, 100 items a request): {stocks} requests, one per day "
            "partition that writes orders. It used to be `inventory/api-readList` over the whole warehouse (4 pages "
            "of 100 a day: 3.92 calls per order on 2026-12-03). Left: the stock could be read once per ranged run "
            "for the whole range's items (the writers go day by day and consume it in order of placement), saving "
            f"~{max(stocks - 1, 0)} reads here.")
    waiting = _waiting_reads(rerun)
    text += (f"\n\nA re-run with nothing changed writes nothing. Bimp: {rerun['bimp']['reads']} reads (and "
             f"{rerun['bimp']['auth']} login calls), {waiting} of them the free stock and the buyer's contract on the "
             "days holding orders still waiting for stock (`reserve_insufficient`, retried by design, R-MAIN-3).")
    if "keycrm_listings" in rerun and rerun["keycrm_requests"] <= 1:
        text += (f" KeyCRM: {rerun['keycrm_requests']} request, {rerun['keycrm_orders_read']:,} orders read: every day "
                 "of the range (those without orders too) keeps as its cursor KeyCRM's own clock when its listing "
                 "was answered (the response's `Date`), so the re-run lists the range once from there − 2 min and "
                 "finds nothing. Before (2026-12-04 09:06 UTC), a day's cursor was the newest `updated_at` of its "
                 "own orders and a day without orders kept none: 11 requests here, 298 of the 300 orders read again "
                 "(192 requests, 9,530 orders for the 10,000-order backfill of section 5).")
    elif "keycrm_listings" in rerun:
        text += (f" KeyCRM: {rerun['keycrm_requests']} requests where one would do (nothing changed), and it "
                 f"re-reads {rerun['keycrm_orders_read']:,} of the {req['orders']:,} orders "
                 f"({rerun['keycrm_listings']} listings): see `sync/extract.py` for how the days' cursors are kept.")
    return text


def _findings_latency(results: dict) -> str:
    lat = results.get("latency")
    text = ("**Latency.** With Dagster's default multiprocess executor a run of one day partition took 45-50 s "
            "under `dagster dev`, a Python process per step (~11 steps) importing Dagster and the pipeline (~4 s "
            "each), and runs of one integration are serialised, so changes queued up (p50 72.7 s, 2026-12-03). Every "
            "job now runs its steps in process (`dg.in_process_executor`) and the sensor asks for one run per "
            "stretch of consecutive changed days.")
    if lat and not lat.get("error") and lat.get("p50") is not None:
        text += (f" Now p50 {lat['p50']:.1f} s, p95 {lat['p95']:.1f} s over {lat['n']} of {lat['changes']} changes: "
                 "the wait for the sensor's next tick (0-30 s, 15 s on average), the run's launch and its steps.")
    return text + (" The benchmark changes orders the pipeline has transferred (the history synced first), so every "
                   "change must arrive; earlier runs changed the newest orders whether transferred or not, and 3 of "
                   "20 never arrived because the pipeline rightly did not create them (not enough free stock to "
                   "reserve: `reserve_insufficient`). A change that does not arrive now fails the benchmark.")


def _findings_rate_limit(results: dict) -> str:
    rl = results.get("rate_limit")
    text = ("**Backfill at 60 requests a minute.** A backfill is one run (`BackfillPolicy.single_run()`, "
            "`keybimp sync --from --to`) whose extract lists the whole range once; it writes the range in chunks of "
            "2,000 orders as it reads, so memory stays bounded. A listing per day partition was 247 requests, +22 % "
            "over the floor (2026-12-03).")
    if _ok(rl):
        text += (f" Now {rl['requests']} requests for a floor of {rl['floor_requests']}; the client paces exactly "
                 f"({rl['status_counts'].get('429', 0)} 429s, at most {rl['max_in_window']} requests in any 60 s).")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all")
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY") or ",".join(SECTIONS),
                        help="comma-separated subset of " + ", ".join(SECTIONS) + " (default: all; env BENCH_ONLY; "
                             "'none' only writes RESULTS.md again from results.json)")
    parser.add_argument("--transform-sizes", default=",".join(str(n) for n in TRANSFORM_SIZES))
    parser.add_argument("--extraction-sizes", default=",".join(str(n) for n in EXTRACTION_SIZES))
    args = parser.parse_args(argv)
    # "none": run nothing, only write RESULTS.md again from results.json
    sections = [s.strip().replace("-", "_") for s in args.only.split(",") if s.strip() and s.strip() != "none"]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    started = time.monotonic()
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    results["machine"] = machine()
    to_run = [s for s in SECTIONS if s in sections]
    if to_run:
        results["_ran"] = to_run
    say(f"machine: {results['machine']}")
    say(f"sections: {', '.join(to_run) or 'none (RESULTS.md written again from results.json)'}")
    sizes = {"transform": tuple(int(x) for x in args.transform_sizes.split(",")),
             "extraction": tuple(int(x) for x in args.extraction_sizes.split(","))}
    for name in to_run:
        section_started = time.monotonic()
        load = [round(x, 2) for x in os.getloadavg()]
        section_date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        try:
            section = BENCHES[name](sizes[name]) if name in sizes else BENCHES[name]()
        except Exception as exc:  # noqa: BLE001 - written down as the section's result; the others still run
            traceback.print_exc()
            section = {"failed": True, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        section.update({"_load": load, "_load_end": [round(x, 2) for x in os.getloadavg()], "_date": section_date,
                        "_seconds": time.monotonic() - section_started})
        results[name] = section
        RESULTS_JSON.write_text(json.dumps(results, indent=1, default=str) + "\n")
        say(f"[{name}] done in {section['_seconds']:.0f} s" + (" — FAILED" if section.get("failed") else ""))
    text = render(results)
    RESULTS_MD.write_text(text + "\n")
    RESULTS_JSON.write_text(json.dumps(results, indent=1, default=str) + "\n")
    say("\n" + text)
    failed = [name for name in to_run if results[name].get("failed")]
    say(f"\n(benchmarks took {time.monotonic() - started:.0f} s; written to {RESULTS_MD.relative_to(ROOT)}"
        f" and {RESULTS_JSON.relative_to(ROOT)})")
    if failed:
        say(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
