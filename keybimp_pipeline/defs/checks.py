"""Asset checks of the order assets: what a person wants verified after every partition, without querying DuckDB.

* The pandera schemas of the staged tables (R-ORCH-4).  The staged asset already validates lazily and
  quarantines the failing rows (a Dagster type check would carry no counts), so these checks report,
  for their partition, how many rows each schema refused, with a sample and the reasons.  Quarantine
  is the designed path, not a pipeline fault: the check warns (severity WARN), it does not fail the run.
* The reconciliation of Bimp customer orders with KeyCRM and the ledger (R-ORCH-5/6): every order of
  the day that is not held back by an open sync issue has a `done` ledger row (none left `pending`),
  and the customer order in Bimp has the KeyCRM order's total to the kopiyka.  Reading a document
  costs one Bimp call, so the totals are compared on a bounded sample (all of an ordinary day).

A run over a range of days (a single-run backfill, `keybimp sync --from --to`) evaluates each check once per
partition, recorded against that partition as a one-partition run's would be, and returns the range's
verdict (failed if any partition failed).  The totals sample is then shared out over the range's days.
"""


import math
import warnings
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import dagster as dg
import pandas as pd

from keybimp_pipeline.defs.partitions import days_by_integration, key
from keybimp_pipeline.defs.resources import Keybimp
from keybimp_pipeline.storage.db import Store
from keybimp_pipeline.storage.ledger import DONE, PENDING, Ledger
from keybimp_pipeline.sync.issues import open_issues

# staged asset → the quarantine `entity` its schema writes (keybimp_pipeline.sync.stage) and the schema's name
SCHEMA_CHECKS = {
    "staged_orders": ("order", "STAGED_ORDERS"),
    "staged_order_lines": ("order_line", "STAGED_LINES"),
    "staged_payments": ("payment", "STAGED_PAYMENTS"),
}
SAMPLE_ROWS = 10
# Bimp documents read per partition to compare totals; a demo day has ~30 orders, so usually all of them
TOTALS_SAMPLE = 50


def _md(frame: pd.DataFrame, empty: str) -> dg.MetadataValue:
    """A compact Markdown table (cells as text: no number reformatting, pipes escaped)."""
    if frame.empty:
        return dg.MetadataValue.md(empty)
    cells = frame.astype(str).replace(r"\|", "/", regex=True).replace("<NA>", "")
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False, name=None)]
    return dg.MetadataValue.md("\n".join(lines))


def quarantine_result(store: Store, day: object, entity: str, schema: str) -> dg.AssetCheckResult:
    """The partition's quarantine rows for one staged table as a check result (pure read of DuckDB)."""
    rows = store.query("SELECT order_id, reason FROM quarantine WHERE integration=? AND day=? AND entity=? "
                       "ORDER BY order_id", [store.integration, day, entity])
    failed = len(rows)
    return dg.AssetCheckResult(
        passed=failed == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(f"{schema}: every row passed" if failed == 0 else
                     f"{schema}: {failed} row(s) failed and were quarantined (their orders are not synced)"),
        metadata={
            "schema": schema,
            "failure_count": failed,
            "orders_quarantined": int(rows["order_id"].nunique()) if failed else 0,
            "sample": _md(rows.head(SAMPLE_ROWS), "_nothing quarantined_"),
        })


def _kop(value: object) -> int | None:
    if value is None:
        return None
    return int((Decimal(str(value)) * 100).quantize(Decimal(1)))


def _money(kop: pd.Series) -> pd.Series:
    return kop.map(lambda k: f"{Decimal(int(k)) / 100:.2f}" if pd.notna(k) else "")


def _document_total_kop(document: dict) -> int | None:
    """The customer order's total as Bimp reports it: the lines' amounts (count × cost − discount)."""
    lines = document.get("products") or []
    if lines and all(ln.get("amount") is not None for ln in lines):
        return sum(_kop(ln["amount"]) for ln in lines)
    return _kop(document.get("sumOrdered"))


def reconciliation_frame(store: Store, day: object) -> pd.DataFrame:
    """One row per staged order of the day: KeyCRM total, whether an open issue holds it back, ledger state."""
    orders = store.query("SELECT order_id, grand_total_kop FROM stg_orders WHERE integration=? AND day=? "
                         "ORDER BY order_id", [store.integration, day])
    partial = store.query("SELECT DISTINCT order_id FROM matched_products WHERE integration=? AND day=? "
                          "AND outcome='rejected'", [store.integration, day])["order_id"]
    issues = open_issues(store, day)  # type: ignore[arg-type]
    held = set(issues.loc[issues["entity"] == "customer_order", "order_id"].dropna().astype("int64"))
    ledger = Ledger(store).entries("customer_order", orders["order_id"].astype(str))
    frame = orders.assign(
        held_by_issue=orders["order_id"].isin(held),
        partial=orders["order_id"].isin(partial),  # R-PROD-5: a line left out, the totals differ by design
        ledger_state=orders["order_id"].astype(str).map(ledger["state"]) if len(ledger) else None,
        bimp_uuid=orders["order_id"].astype(str).map(ledger["bimp_uuid"]) if len(ledger) else None,
    )
    return frame


def reconcile(frame: pd.DataFrame, bimp, sample: int = TOTALS_SAMPLE) -> dg.AssetCheckResult:
    """Ledger completeness on every order, totals against Bimp on up to `sample` transferred orders."""
    expected = frame[~frame["held_by_issue"]]
    missing = expected[expected["ledger_state"].isna()]
    pending = expected[expected["ledger_state"] == PENDING]
    transferred = frame[(frame["ledger_state"] == DONE) & ~frame["partial"]]
    compared = transferred.sort_values("order_id").head(sample)
    bimp_totals = {}
    for order_id, uuid in zip(compared["order_id"], compared["bimp_uuid"], strict=True):
        document = bimp.customer_order(uuid)
        bimp_totals[order_id] = None if not document else _document_total_kop(document)
    compared = compared.assign(bimp_total_kop=compared["order_id"].map(bimp_totals))
    absent = compared[compared["bimp_total_kop"].isna()]
    differ = compared[compared["bimp_total_kop"].notna()
                      & (compared["bimp_total_kop"] != compared["grand_total_kop"])]

    problems = pd.concat([
        missing.assign(problem="no ledger row: the order was neither written nor reported as a sync issue"),
        pending.assign(problem="ledger row still pending: a write was interrupted; the next run reconciles it"),
        absent.assign(problem="in the ledger, but Bimp has no such customer order"),
        differ.assign(problem="Bimp total differs from the KeyCRM total"),
    ], ignore_index=True)
    table = pd.DataFrame({
        "order": problems["order_id"].astype("Int64") if len(problems) else [],
        "keycrm_total": _money(problems["grand_total_kop"]) if len(problems) else [],
        "bimp_total": _money(problems["bimp_total_kop"]) if "bimp_total_kop" in problems else "",
        "problem": problems["problem"] if len(problems) else []})
    passed = problems.empty
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=("every transferred order is in the ledger and its Bimp total equals KeyCRM's" if passed else
                     f"{len(problems)} order(s) do not reconcile"),
        metadata={
            "orders_staged": len(frame),
            "orders_held_by_sync_issues": int(frame["held_by_issue"].sum()),
            "orders_expected_in_ledger": len(expected),
            "missing_from_ledger": len(missing),
            "pending_in_ledger": len(pending),
            "partial_orders_not_compared": int((frame["partial"] & (frame["ledger_state"] == DONE)).sum()),
            "totals_compared": len(compared),
            "totals_transferred": len(transferred),
            "missing_in_bimp": len(absent),
            "totals_differ": len(differ),
            "problems": _md(table.head(20), "_every order reconciles_"),
        })


def evaluate_per_partition(context: dg.AssetCheckExecutionContext, asset: str, check_name: str,
                           evaluate: Callable[[str, list[date]], dict[date, dg.AssetCheckResult]]
                           ) -> dg.AssetCheckResult:
    """`evaluate(integration, days)` → a result per day.  One partition: its result.  A range: each day's result
    recorded against its partition, and the range's verdict returned."""
    runs = days_by_integration(context)
    results = {key(name, day): result for name, days in runs.items() for day, result in evaluate(name, days).items()}
    if len(results) == 1:
        return next(iter(results.values()))
    op = context.op_execution_context
    for pk, r in results.items():
        op.log_event(dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(asset), check_name=check_name, passed=r.passed, metadata=r.metadata,
            severity=r.severity, description=r.description, partition=str(pk)))
    failed = [str(pk) for pk, r in results.items() if not r.passed]
    return dg.AssetCheckResult(
        passed=not failed, severity=next(iter(results.values())).severity,
        description=(f"all {len(results)} partitions of the run passed" if not failed else
                     f"{len(failed)} of {len(results)} partitions failed: {', '.join(failed[:10])}"
                     + (" …" if len(failed) > 10 else "")),
        metadata={"partitions": len(results), "partitions_failed": len(failed)})


def _schema_check(asset: str, entity: str, schema: str, partitions_def: dg.PartitionsDefinition
                  ) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset, name="pandera_schema", partitions_def=partitions_def,
        description=f"Rows of the partition refused by the pandera schema {schema} (R-ORCH-4): count, sample "
                    "and reasons. They are quarantined, never silently dropped; the check warns when any.",
    )
    def pandera_schema(context: dg.AssetCheckExecutionContext, keybimp: Keybimp) -> dg.AssetCheckResult:
        def evaluate(name: str, days: list[date]) -> dict[date, dg.AssetCheckResult]:
            store = keybimp.store(name)
            with store.connect():  # one connection for a range's days (opening one costs ~25 ms)
                return {day: quarantine_result(store, day, entity, schema) for day in days}

        return evaluate_per_partition(context, asset, "pandera_schema", evaluate)

    return pandera_schema


def build_order_checks(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    with warnings.catch_warnings():  # partitioned checks are "preview" in 1.13; said once here, not per load
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _build_order_checks(partitions_def)


def _build_order_checks(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    checks = [_schema_check(asset, entity, schema, partitions_def)
              for asset, (entity, schema) in SCHEMA_CHECKS.items()]

    @dg.asset_check(
        asset="bimp_customer_orders", name="reconciles_with_keycrm", partitions_def=partitions_def,
        description="Every order of the day not held back by a sync issue has a done ledger row (none pending), "
                    f"and Bimp's customer order total equals the KeyCRM order's (up to {TOTALS_SAMPLE} read per "
                    "run, shared out over a range's days; orders with a line left out under R-PROD-5 are not "
                    "compared).",
    )
    def reconciles_with_keycrm(context: dg.AssetCheckExecutionContext, keybimp: Keybimp) -> dg.AssetCheckResult:
        def evaluate(name: str, days: list[date]) -> dict[date, dg.AssetCheckResult]:
            store = keybimp.store(name)
            sample = math.ceil(TOTALS_SAMPLE / len(days))  # a range shares one partition's reads out over its days
            with store.connect():  # one connection for a range's days, released before the Bimp reads
                frames = {day: reconciliation_frame(store, day) for day in days}
            with keybimp.bimp(name) as bimp:
                return {day: reconcile(frame, bimp, sample) for day, frame in frames.items()}

        return evaluate_per_partition(context, "bimp_customer_orders", "reconciles_with_keycrm", evaluate)

    checks.append(reconciles_with_keycrm)
    return checks
