"""Why a `keybimp sync|stocks|prices` run failed, one line per problem, for the person at the console.

Dagster records a failed step as an error chain (its own wrapper, then the pipeline's exception as the
cause).  The console should not show that chain: it shows what failed (KeyCRM or Bimp, the step), where (the
URL from the settings, never a secret: the settings hold variable names, keys show as fingerprints) and what
to do.  The full log stays in the run (the Dagster UI) and on the console with `--verbose`.

Works on the error's class name and text only (that is what Dagster keeps of an exception), and only on the
pipeline's own exception classes, whose texts never hold a secret (see the clients' docstrings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from keybimp_pipeline.settings import Integration, key_fingerprint

INTERRUPTED = "interrupted"
# Ctrl-C reaches a step as Python's KeyboardInterrupt, as Dagster's wrapper of it, or -- inside a DuckDB query,
# which checks for signals itself -- as DuckDB's InterruptException
_INTERRUPTS = ("KeyboardInterrupt", "DagsterExecutionInterruptedError", "InterruptException")
_DAGSTER_WRAPPERS = ("DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError",
                     "DagsterResourceFunctionError", "DagsterExecutionInterruptedError")


@dataclass(frozen=True)
class Failure:
    """One problem of a failed run: the step, the root error's class and message."""

    step: str | None
    cls_name: str
    message: str


def root_errors(result) -> list[Failure]:
    """The root cause of each failed step (or of the run, when no step failed) of an in-process result."""
    out: list[Failure] = []
    events = list(result.get_step_failure_events())
    for event in events:
        error = event.event_specific_data.error if event.event_specific_data is not None else None
        out.append(_root(event.step_key, error))
    if not events:
        failure = result.get_run_failure_event()
        data = failure.event_specific_data if failure is not None else None
        error = getattr(data, "error", None)
        message = (failure.message if failure is not None else "") or "the run failed"
        if error is None and "interrupt" in message.casefold():
            out.append(Failure(None, INTERRUPTED, "interrupted"))
        else:
            out.append(_root(None, error) if error is not None else Failure(None, "", message))
    return out


def _root(step: str | None, error) -> Failure:
    if error is None:
        return Failure(step, "", "the step failed")
    chain = [error]
    while chain[-1].cause is not None:
        chain.append(chain[-1].cause)
    if any(e.cls_name in _INTERRUPTS for e in chain):
        return Failure(step, INTERRUPTED, "interrupted")
    ours = [e for e in chain if e.cls_name not in _DAGSTER_WRAPPERS]
    root = ours[0] if ours else chain[-1]
    message = (root.message or "").strip()
    head, sep, rest = message.partition(": ")
    if sep and root.cls_name and head.split(".")[-1] == root.cls_name:  # "pkg.module.Class: text" -> "text"
        message = rest
    return Failure(step, root.cls_name or "", message)


def interrupted(failures: list[Failure], result=None) -> bool:
    """Ctrl-C: a root error of the interrupt's kinds, or Dagster's own word for it in the run's events (an
    interrupt that reached no step, or one that a step's code turned into another error)."""
    if any(f.cls_name == INTERRUPTED for f in failures):
        return True
    events = result.all_events if result is not None else []
    return any("interrupt" in (event.message or "").casefold() for event in events
               if event.event_type_value in ("ENGINE_EVENT", "RUN_FAILURE", "STEP_FAILURE"))


def _fingerprint(integration: Integration) -> str:
    key = os.environ.get(integration.keycrm.api_key_env)
    return f" (fingerprint {key_fingerprint(key)})" if key else ""


def _detail(message: str) -> str:
    """The server's or transport's words after "Bimp /path failed (HTTP 401): " (the path is kept apart)."""
    return message.split("): ", 1)[1] if "): " in message else message


def _endpoint(message: str) -> str:
    parts = message.split(" ", 2)
    return parts[1] if len(parts) > 2 and parts[1].startswith("/") else ""


def explain(failure: Failure, integration: Integration) -> str:
    """One line: what failed, where, what to do.  Never a secret (see the module docstring)."""
    name, cls, msg = integration.name, failure.cls_name, failure.message
    step = f" (step {failure.step})" if failure.step else ""
    check = f"`keybimp check {name}` tests the connection"
    k, b = integration.keycrm, integration.bimp
    first_line = msg.splitlines()[0] if msg else ""
    if cls == "SettingsError":
        return f"{name}: {'; '.join(msg.splitlines())}: set it in the environment of this command, then run again"
    if cls == INTERRUPTED:
        return f"{name}: interrupted{step}"
    if cls == "KeyCRMAuthError":
        return (f"{name}: KeyCRM at {k.url} refused the API key in {k.api_key_env}{_fingerprint(integration)}: "
                f"a wrong or revoked key{step}. Put the shop's current key in {k.api_key_env}; {check}")
    if cls == "BimpAuthError":
        return (f"{name}: Bimp at {b.url} refused the login in {b.email_env}/{b.password_env} or company "
                f"'{b.company}': {_detail(first_line)}{step}. Check both variables and bimp.company; {check}")
    if cls in ("KeyCRMTransientError", "BimpTransientError"):
        system, url, setting = ("KeyCRM", k.url, "keycrm.url") if cls.startswith("KeyCRM") else ("Bimp", b.url,
                                                                                                 "bimp.url")
        if "(no answer)" in first_line:
            return (f"{name}: {system} at {url} did not answer ({_detail(first_line)}){step}. Is it running and is "
                    f"{setting} right? Then run again; {check}")
        return (f"{name}: {system} at {url} is failing ({_detail(first_line)}){step}. Run again later: nothing is "
                "written twice (the write ledger)")
    if cls.startswith(("KeyCRM", "Bimp")):
        system, url = ("KeyCRM", k.url) if cls.startswith("KeyCRM") else ("Bimp", b.url)
        where = _endpoint(first_line)
        return (f"{name}: {system} at {url} refused {where or 'a request'}: {_detail(first_line)}{step}. "
                f"{check}; if it passes, this is a fault of keybimp: report it with the run's log")
    what = f"{cls}: {first_line}" if cls else first_line
    return f"{name}: {what}{step}"


def explain_all(failures: list[Failure], integration: Integration) -> list[str]:
    lines: list[str] = []
    for failure in failures:
        line = explain(failure, integration)
        if line not in lines:
            lines.append(line)
    return lines


__all__ = ["INTERRUPTED", "Failure", "explain", "explain_all", "interrupted", "root_errors"]
