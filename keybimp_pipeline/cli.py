"""`keybimp …`: the headless face of the pipeline.  Runs are recorded in the Dagster instance
($DAGSTER_HOME), so the UI shows what the command line did."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from keybimp_pipeline.settings import SettingsError


def _dagster_home() -> None:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    source = Path(__file__).resolve().parents[1] / "dagster.yaml"
    if not target.exists() and source.exists():
        target.write_text(source.read_text())


def _instance():
    """The Dagster instance of $DAGSTER_HOME.  Its first opening creates and migrates the SQLite storages, and
    two commands doing that at once (a backfill started next to another sync) collide in the migration, so
    the opening is serialised by a file lock; runs themselves then go side by side.

    Runs started here do not capture their steps' stdout/stderr for the UI (their events, errors and
    metadata are all in the run's event log): Dagster's capture runs a `tail` and a watcher process per step in
    the terminal's process group, and Ctrl-C printed the watchers' tracebacks under the command's one line."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef
    from filelock import FileLock

    home = os.environ["DAGSTER_HOME"]
    with FileLock(str(Path(home) / ".instance.lock"), timeout=600):
        return dg.DagsterInstance.from_ref(InstanceRef.from_dir(home, overrides={"compute_logs": {
            "module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}}))


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def cmd_sync(args: argparse.Namespace) -> int:
    """One run of the `sync_orders` job over the whole range (one listing of KeyCRM, each step's fixed cost paid
    once), recorded in the instance as a single-run backfill of those partitions is: the UI shows the run and
    every day of the range materialised (or failed, when the run failed).  Being a run of the job the code
    location defines (not an ad-hoc materialisation), a failed one is re-executed from the UI: the Partitions
    tab names it, its page offers Re-execute."""
    from keybimp_pipeline.defs.resources import load, settings_path
    from keybimp_pipeline.sync.days import local_day

    settings = load()  # the range is checked before Dagster and the definitions are imported (seconds)
    integration = settings.get(args.name)
    today = local_day(datetime.now(UTC), integration.timezone)
    start = args.date_from or integration.start_date
    end = args.date_to or today
    first_partition = min(i.start_date for i in settings.integrations)
    zone = f"today is {today} in {integration.timezone}, the shop's time zone"
    if start > today:
        raise UsageError(f"--from {start} is in the future ({zone}): there is nothing to sync yet")
    if end > today:
        raise UsageError(f"--to {end} is in the future ({zone}): leave --to out to sync up to today")
    if start < first_partition:
        raise UsageError(
            f"--from {start} is before the first day partition {first_partition} (the earliest start_date in "
            f"{settings_path()}). To sync older days, lower start_date of '{args.name}' in that file to {start} "
            "or earlier: the older days then become day partitions like the others, synced by this command or "
            "backfilled in the Dagster UI")
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")
    _credentials(integration)
    _dagster_home()

    from keybimp_pipeline.defs.partitions import key, range_tags
    instance = _instance()
    run_config = {"ops": {"keycrm_orders_raw": {"config": {"full_refresh": bool(args.full_refresh)}}},
                  "loggers": _console(args)}
    tags = {"keybimp/integration": args.name, "keybimp/trigger": "cli"}
    days = _days(start, end)
    if len(days) > 1:
        tags.update(range_tags(args.name, start, end))
    result = _run_job(instance, "sync_orders", partition_key=key(args.name, start) if len(days) == 1 else None,
                      run_config=run_config, tags=tags)
    span = str(start) if len(days) == 1 else f"{start}..{end} ({len(days)} days)"
    if not result.success:  # the reason, not a summary that looks like any other day's
        return _failed(result, args.name, f"sync of {span}")
    if not args.quiet:
        print(f"{span}: ok", flush=True)
    from keybimp_pipeline.summary import format_summary, summarize

    print(format_summary(args.name, summarize(args.name, run_ids=[result.run_id])))
    from keybimp_pipeline import control

    if control.is_paused(args.name):  # said once, where it matters: this sync ran, the automations will not
        print(f"{args.name}'s automations are paused (new integrations start so): its sensor and schedules "
              f"skip until `keybimp start {args.name}`")
    return 0


def _run_job(instance, job_name: str, *, partition_key: str | None, run_config: dict, tags: dict):
    """A run of the code location's own job, executed here in this process and recorded with the code location
    as its origin (the location and repository workspace.yaml loads), so the UI re-executes it as one it launched
    itself: from the failed run's page (which the Partitions tab names) with *Re-execute*.  An ad-hoc
    materialisation, or `execute_in_process`, records no origin, and the UI refuses to re-execute such a run."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.execution.api import execute_run
    from dagster._core.execution.execute_in_process import merge_run_tags
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    from keybimp_pipeline import definitions

    module = definitions.__name__
    recon = ReconstructableRepository.for_module(module, "defs").get_reconstructable_job(job_name)
    job = recon.get_definition()
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=module, attribute="defs"),
        location_name=definitions.CODE_LOCATION)
    origin = RemoteJobOrigin(repository_origin=RemoteRepositoryOrigin(
        code_location_origin=location, repository_name=definitions.defs.get_repository_def().name), job_name=job_name)
    run = instance.create_run_for_job(
        job_def=job, run_config=run_config, tags=merge_run_tags(job, partition_key, tags, None, instance, run_config),
        remote_job_origin=origin, job_code_origin=recon.get_python_origin())
    return execute_run(recon, run, instance)


def _console(args: argparse.Namespace) -> dict:
    """Dagster's console log: its step errors come with stack traces (100+ lines a failure), so it stays off
    unless --verbose; a failure is told in one line per problem (`_failed`), the run keeps the full log."""
    return {"console": {"config": {"log_level": "INFO" if getattr(args, "verbose", False) else "CRITICAL"}}}


def _failed(result, name: str, what: str) -> int:
    """A failed run: one line per problem (what, the URL, what to do), where to read more; exit 1 (130 when
    interrupted)."""
    from keybimp_pipeline import failures
    from keybimp_pipeline.defs.resources import load

    found = failures.root_errors(result)
    if failures.interrupted(found, result):
        raise KeyboardInterrupt
    for line in failures.explain_all(found, load().get(name)):
        print(line, file=sys.stderr)
    print(f"{what} FAILED: run {result.run_id}; `--verbose` prints Dagster's log here, the Dagster UI shows the "
          "run", file=sys.stderr)
    return 1


def _credentials(integration) -> None:
    """Every variable the run reads is set (a SettingsError naming the unset ones, never a value): told in
    a second, not by a failed run after Dagster started."""
    problems = []
    for read in (integration.keycrm_api_key, integration.bimp_credentials):
        try:
            read()
        except SettingsError as err:
            problems += err.messages
    if problems:
        raise SettingsError([*problems, "set them in the environment of this command, then run again"])


def _upload_run(args: argparse.Namespace, job_name: str, run_config: dict | None = None):
    """A run of the upload job for one integration, recorded like a scheduled one (re-executable from the UI)."""
    name = args.name
    from keybimp_pipeline.defs.resources import load

    _credentials(load().get(name))
    _dagster_home()
    return _run_job(_instance(), job_name, partition_key=name,
                    run_config={"loggers": _console(args), **(run_config or {})},
                    tags={"keybimp/integration": name, "keybimp/trigger": "cli"})


def _asset_metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def cmd_stocks(args: argparse.Namespace) -> int:
    """Snapshot, plan, guard and upload stocks; a blocked plan prints its preview and uploads nothing (exit 3)."""
    # the guard's stop is expected and explained below: no Dagster stack trace on the console for it
    result = _upload_run(args, "upload_stocks",
                                 {"ops": {"stock_upload_plan": {"config": {"confirm": bool(args.confirm)}}}})
    plan = _asset_metadata(result, "stock_upload_plan")
    if plan:
        print(plan.get("preview", ""))
    upload = _asset_metadata(result, "keycrm_stock_upload")
    if upload:
        if upload["stocks_sent"]:
            print(f"uploaded {upload['stocks_sent']} stocks in {upload['requests']} PUT /offers/stocks requests "
                  f"(floor {upload['request_floor']}: one warehouse a call, {upload['batch_size']} a batch)")
        else:
            print("nothing to upload: KeyCRM already shows Bimp's stock (0 requests)")
        return 0
    if plan.get("blocked") and not args.confirm:
        print(f"\nnothing uploaded: the migration guard stopped it. Check the preview, then "
              f"`keybimp stocks {args.name} --confirm`.")
        return 3
    return _failed(result, args.name, "stock upload")


def cmd_prices(args: argparse.Namespace) -> int:
    """Upload changed prices (and create missing items when create_missing); --dry-run only reports."""
    dry_run = bool(getattr(args, "dry_run", False))
    result = _upload_run(args, "upload_prices",
                                 {"ops": {"keycrm_price_upload": {"config": {"dry_run": dry_run}}}})
    meta = _asset_metadata(result, "keycrm_price_upload")
    if not result.success or not meta:
        return _failed(result, args.name, "price upload")
    if meta["would_create"] and (dry_run or meta["created"]):  # the list, when asked for or acted on
        print(meta["not_found_preview"])
    sent = (f"would update {meta['updates']} prices (--dry-run: nothing sent)" if dry_run else
            f"prices updated: {meta['updates']} in {meta['requests'] - meta['created']} PUT /offers requests")
    lacking = f"Bimp items KeyCRM lacks by SKU: {meta['would_create']} (of which {meta['similar_skus']} look " \
              "like a typo of an existing SKU)"
    if meta["would_create"] and not dry_run and not meta["created"]:
        lacking += f"; `keybimp prices {args.name} --dry-run` lists them"
    print(f"{sent}; items created in KeyCRM: {meta['created']}; {lacking}")
    return 0


def cmd_issues(args: argparse.Namespace) -> int:
    import pandas as pd

    from keybimp_pipeline.storage.db import Store, data_dir
    from keybimp_pipeline.sync.issues import ITEM_UUID, item_names, name_items, open_issues

    store = Store(args.name, data_dir(create=False))
    if not store.path.exists():  # never synced with this data folder: say so, and create nothing
        if not args.json:
            print(f"{args.name}: not synced yet with this data folder: no {store.path} (KEYBIMP_DATA names the "
                  "folder); no sync issues to show")
        return 0
    frame = open_issues(store)
    items = item_names(store, frame["detail"])
    if args.json:  # one object a line: the issue's own fields, its day, and the items it names
        for row in frame.itertuples(index=False):
            named = [items[u] for u in dict.fromkeys(ITEM_UUID.findall(row.detail or "")) if u in items]
            print(json.dumps({"integration": row.integration, "day": _iso_day(row.day),
                              "order_id": None if pd.isna(row.order_id) else int(row.order_id),
                              "code": row.code, "entity": row.entity, "detail": row.detail, "items": named,
                              "message_en": row.message_en, "message_uk": row.message_uk,
                              "seen_at": _iso(row.seen_at)}, ensure_ascii=False))
        return 0
    if frame.empty:
        print(f"{args.name}: no open sync issues")
        return 0
    for row in frame.itertuples(index=False):
        order = "" if pd.isna(row.order_id) else f"  order {int(row.order_id)}"
        print(f"{_iso_day(row.day)}{order}  {row.code}: {name_items(row.detail, items)}\n    {row.message_en}")
    codes = frame["code"].value_counts()
    print(f"\n{len(frame)} open issue{'s' if len(frame) != 1 else ''} in {len(codes)} code"
          f"{'s' if len(codes) != 1 else ''}: " + ", ".join(f"{code} {n}" for code, n in codes.items()))
    return 0


def _iso_day(value) -> str | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else pd.Timestamp(value).date().isoformat()


def _iso(value) -> str | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def cmd_emulate(args: argparse.Namespace) -> int:
    """The emulators hold nothing of an earlier run: say so, and what that means for data/'s sync state."""
    from keybimp_pipeline.emulators import serve  # test equipment, started on request only
    from keybimp_pipeline.storage.db import data_dir, sync_state_files

    # unset ports: KEYBIMP_DEMO_PORTS's (as `make demo` used them), else the example settings' 8801-8803
    ports = [given or default for given, default in
             zip((args.keycrm_port, args.bimp_port, args.keycrm2_port), serve.demo_ports(), strict=True)]
    argv = ["--keycrm-port", str(ports[0]), "--bimp-port", str(ports[1]),
            "--shops", str(args.shops), "--keycrm2-port", str(ports[2])]
    if args.demo:
        argv.append("--demo")
    if args.orders:
        argv += ["--orders", str(args.orders)]
    print("the emulators start fresh: " + (f"the demo shop{'s' if args.shops == 2 else ''} as generated, "
          if args.demo else "empty, ") + "nothing of an earlier run (no Bimp record an earlier sync wrote)",
          flush=True)
    state = sync_state_files()
    if state and args.reset_data:
        for paths in state.values():
            for path in paths:
                path.unlink(missing_ok=True)
        print(f"removed the local sync state of {', '.join(state)} from {data_dir()} (DuckDB files and "
              "write ledgers): the next sync starts afresh", flush=True)
    elif state:
        print(f"note: {data_dir()} holds the local sync state (DuckDB files, write ledgers) of "
              f"{', '.join(state)} from syncs against an earlier Bimp. This fresh Bimp lacks the records those "
              "ledgers name, so a sync reports the orders that need them as `bimp_record_missing`. To start "
              "over, stop the emulators and run `make emulate RESET=1` (`keybimp emulate --demo --reset-data`).",
              flush=True)
    return serve.main(argv) or 0


def cmd_start_pause(args: argparse.Namespace) -> int:
    from keybimp_pipeline import control
    from keybimp_pipeline.defs.resources import load

    load().get(args.name)  # refuses unknown names
    control.set_paused(args.name, args.command == "pause")
    print(f"{args.name}: {'paused' if args.command == 'pause' else 'started'}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """R-CONN-6: when, and what changed (old → new); starts and pauses.  Never a secret: fingerprints only."""
    from keybimp_pipeline import control

    entries = control.history(args.name)
    if not entries:
        from keybimp_pipeline.storage.db import data_dir

        print(f"{args.name}: no history in {data_dir(create=False)} (KEYBIMP_DATA) yet: the integration was never "
              "loaded with this data folder")
    for entry in entries:
        if entry.get("event") == "setting":
            print(f"{entry['at']}  {entry['key']}: {entry['old']!r} → {entry['new']!r}")
        elif entry.get("event") == "created":
            print(f"{entry['at']}  created ({'paused' if entry.get('paused', True) else 'started'})")
        else:
            who = f" (by {entry['who']})" if entry.get("who") else ""
            print(f"{entry['at']}  {entry['event']}{who}")
    state = "paused" if control.is_paused(args.name) else "started"
    print(f"{args.name} is {state} now")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """R-CONN-2/3: the file is valid, both APIs answer with each integration's credentials, names resolve."""
    from keybimp_pipeline import check
    from keybimp_pipeline.defs.resources import load

    settings = load()
    if args.name and args.name not in settings.names():
        print(f"keybimp: no integration named {args.name!r}; known: {', '.join(settings.names())}", file=sys.stderr)
        return 2
    reports = check.check(settings, [args.name] if args.name else None)
    problems = 0
    for report in reports:
        for line in report.lines():
            print(line, flush=True)
        problems += len(report.problems)
    if problems:
        print(f"check failed: {problems} problem(s) in {sum(not r.ok for r in reports)} integration(s)",
              file=sys.stderr)
        return 1
    print(f"check passed: {len(reports)} integration(s)")
    return 0


_NO_SETTINGS = {"emulate"}  # commands that never read the integrations file
_SETTINGS_OPTIONAL = {"history", "issues"}  # these still work when the file is broken
_READ_ONLY = {"history", "issues"}  # never create the data folder or a DuckDB file


class UsageError(Exception):
    """A mistake on the command line or in the environment: one message, exit code 2, no traceback."""


def _on_load(args: argparse.Namespace) -> None:
    """Every command that reads the integrations file refuses a KeyCRM key that served another Bimp company
    (R-CONN-3; `check` reports that refusal itself) and, unless it only reads (`history`, `issues`), records
    settings changes in the history (R-CONN-6): looking at the history with another settings file at hand
    must not write that file's differences into it."""
    if args.command in _NO_SETTINGS:
        return
    from keybimp_pipeline import control
    from keybimp_pipeline.defs.resources import load
    from keybimp_pipeline.storage.db import data_dir

    settings = None
    try:
        settings = load()
        if args.command in _READ_ONLY:
            problems = control.key_problems(settings) if data_dir(create=False).exists() else []
            if problems:
                raise SettingsError(problems)
        else:
            control.on_load(settings)
    except SettingsError as err:
        if args.command in _SETTINGS_OPTIONAL:
            print(f"keybimp: warning: the settings file was not loaded:\n{err}", file=sys.stderr)
            _known_name(args, None)
            return
        if args.command == "check" and "R-CONN-3" in str(err):
            _known_name(args, settings)
            return  # check prints it per integration, next to its other problems
        raise
    _known_name(args, settings)


def _known_name(args: argparse.Namespace, settings) -> None:
    """The integration a command names must exist: in the settings file, or -- when the file is broken and
    the command only reads -- in the data folder.  Otherwise one message listing the known names (exit 2)."""
    name = getattr(args, "name", None)
    if not name:
        return
    from keybimp_pipeline.defs.resources import settings_path

    if settings is not None:
        if name in settings.names():
            return
        raise UsageError(f"no integration named {name!r} in {settings_path()}; known: "
                         f"{', '.join(settings.names()) or '(none)'}")
    from keybimp_pipeline.storage.db import data_dir, sync_state_files

    folder = data_dir(create=False)
    known = sorted((set(sync_state_files(folder)) if folder.exists() else set())
                   | {p.name.removesuffix(".control.json") for p in folder.glob("*.control.json")})
    if name not in known:
        raise UsageError(f"no integration named {name!r}: the settings file did not load and {folder} "
                         f"(KEYBIMP_DATA) holds no state of it; known there: {', '.join(known) or '(none)'}")


def _day(text: str) -> date:
    """An argparse type: a calendar day written YYYY-MM-DD (a wrong one is a usage error, not a traceback)."""
    import re

    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: expected YYYY-MM-DD, like 2026-11-01") from None


NAME_HELP = "the integration, as named in the settings file"
VERBOSE_HELP = "also print Dagster's own log of the run (step events; a failure's stack trace)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keybimp", description="KeyCRM ⇄ Bimp pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sync", help="materialise the order assets of an integration for a range of days",
                       description="Sync KeyCRM orders of a range of days into Bimp (customer orders, payments, "
                                   "sales, returns) in one run recorded in the Dagster instance ($DAGSTER_HOME).")
    p.add_argument("name", help=NAME_HELP)
    p.add_argument("--from", dest="date_from", type=_day, metavar="YYYY-MM-DD",
                   help="first day to sync, in the shop's time zone (default: the integration's start_date)")
    p.add_argument("--to", dest="date_to", type=_day, metavar="YYYY-MM-DD",
                   help="last day to sync, inclusive (default: today in the shop's time zone)")
    p.add_argument("--full-refresh", action="store_true",
                   help="read every order of the days from KeyCRM again, instead of only those changed since "
                        "the last sync (each day's cursor), and replace the stored copies of those days (orders "
                        "deleted in KeyCRM drop out). Use it when KeyCRM changed without updated_at moving. Bimp "
                        "is written as usual: the write ledger keeps a document from being created twice")
    p.add_argument("--quiet", action="store_true", help="no 'ok' line on success (the summary still prints)")
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("issues", help="open sync issues of an integration")
    p.add_argument("name", help=NAME_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object a line (for scripts), no text")
    p.set_defaults(func=cmd_issues)
    p = sub.add_parser("emulate", help="start the KeyCRM and Bimp emulators on loopback")
    p.add_argument("--keycrm-port", type=int, help="default 8801, or the first of $KEYBIMP_DEMO_PORTS")
    p.add_argument("--bimp-port", type=int, help="default 8802, or the second of $KEYBIMP_DEMO_PORTS")
    p.add_argument("--demo", action="store_true", help="load the demo shop(s) into the emulators")
    p.add_argument("--shops", type=int, choices=(1, 2), default=2,
                   help="demo shops (KeyCRM accounts) writing into the one Bimp company, as in "
                        "integrations.example.yaml (default 2)")
    p.add_argument("--keycrm2-port", type=int,
                   help="the second shop's KeyCRM emulator port, with --shops 2 (default 8803, or the third of "
                        "$KEYBIMP_DEMO_PORTS)")
    p.add_argument("--orders", type=int, default=0)
    p.add_argument("--reset-data", action="store_true",
                   help="remove the local sync state in $KEYBIMP_DATA (DuckDB files, write ledgers) first: "
                        "it names records of an earlier Bimp that the fresh emulator lacks")
    p.set_defaults(func=cmd_emulate)
    p = sub.add_parser("stocks", help="upload Bimp stocks to KeyCRM (behind the migration guard)")
    p.add_argument("name", help=NAME_HELP)
    p.add_argument("--confirm", action="store_true", help="let an upload the guard stopped through")
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.set_defaults(func=cmd_stocks)
    p = sub.add_parser("prices", help="upload Bimp prices to KeyCRM")
    p.add_argument("name", help=NAME_HELP)
    p.add_argument("--dry-run", action="store_true", help="report what would change and be created, write nothing")
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.set_defaults(func=cmd_prices)
    for name in ("start", "pause"):
        p = sub.add_parser(name, help=f"{name} all automations of an integration")
        p.add_argument("name", help=NAME_HELP)
        p.set_defaults(func=cmd_start_pause)
    p = sub.add_parser("history", help="settings changes, starts and pauses of an integration")
    p.add_argument("name", help=NAME_HELP)
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("check", help="validate the file, then call both APIs with each integration's "
                                     "credentials and resolve every named object")
    p.add_argument("name", nargs="?", help="only this integration (default: all)")
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "verbose", False):
        import logging

        # Ctrl-C while Dagster closes its SQLite storage: SQLAlchemy logs the interrupted close with a trace
        logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    try:
        _on_load(args)
        return args.func(args)
    except SettingsError as err:
        print(f"keybimp: settings error:\n{err}", file=sys.stderr)
        return 2
    except UsageError as err:
        print(f"keybimp: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `keybimp issues x | head`: the reader left; no traceback for that
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"keybimp {args.command}: interrupted (Ctrl-C). What was written is in the write ledger; running "
              "the command again goes on from there", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
