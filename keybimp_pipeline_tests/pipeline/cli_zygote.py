"""A warm parent that forks real `keybimp …` processes for the reliability tests (crashes, concurrency, secrets).

Why: importing Dagster and the definitions costs ~10 s of CPU on this machine, and the crash tests start the
CLI many times.  This process imports `keybimp_pipeline.cli` and the definitions once (single-threaded), then
forks one child per command; the child sets its environment, redirects stdout/stderr to a file and calls
`keybimp_pipeline.cli.main(argv)` — the same entry point as `python -m keybimp_pipeline.cli` — and exits with
its return code.  The test SIGKILLs the child by pid: a real process killed mid-run, exactly as a crash.
`benchmarks/soak.py` starts `python -m keybimp_pipeline.cli` itself, without this shortcut.

Protocol (one JSON object a line on stdin, one answer a line on stdout):
  {"op": "start", "argv": [...], "env": {...}, "log": "/path"}  ->  {"pid": 1234}
  {"op": "wait", "pid": 1234}                                     ->  {"pid": 1234, "rc": 0 | -9 | ...}
"""

from __future__ import annotations

import json
import os
import sys
import warnings


def _child(argv: list[str], env: dict, log: str) -> None:
    os.setpgid(0, 0)  # a process group of its own, as a shell gives a command: Ctrl-C reaches all of it
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.update(env)
    rc = 1
    try:
        from keybimp_pipeline import cli

        rc = cli.main(argv)
    except SystemExit as exc:  # argparse errors
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the traceback goes to the log, as python -m would print it
        import traceback

        traceback.print_exc()
        rc = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def _warm_dagster() -> None:
    """Run one trivial materialisation in a scratch instance: Dagster imports its storage and executor
    lazily, and those imports would otherwise be paid again by every forked run."""
    import logging
    import tempfile

    import dagster as dg

    @dg.asset
    def warm_up() -> int:
        return 1

    home = os.environ.get("DAGSTER_HOME")
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["DAGSTER_HOME"] = scratch
        with open(os.path.join(scratch, "dagster.yaml"), "w") as f:
            f.write("telemetry:\n  enabled: false\n")
        logging.getLogger("dagster").setLevel(logging.ERROR)
        dg.materialize([warm_up], instance=dg.DagsterInstance.get(),
                       run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    if home is not None:
        os.environ["DAGSTER_HOME"] = home
    else:
        del os.environ["DAGSTER_HOME"]


def main() -> None:
    warnings.simplefilter("ignore")
    from keybimp_pipeline import cli, definitions  # noqa: F401 - warm the imports before any fork

    _warm_dagster()

    out = sys.stdout
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "start":
            pid = os.fork()
            if pid == 0:
                _child(cmd["argv"], cmd.get("env") or {}, cmd["log"])
            print(json.dumps({"pid": pid}), file=out, flush=True)
        elif cmd["op"] == "wait":
            _, status = os.waitpid(int(cmd["pid"]), 0)
            rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            print(json.dumps({"pid": cmd["pid"], "rc": rc}), file=out, flush=True)


if __name__ == "__main__":
    main()
