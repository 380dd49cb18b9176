"""A pytest plugin for time-capped runs, and the summary of what such a run did.

Plugin (``-p pytest_progress`` with this folder on PYTHONPATH): with ``PYTEST_PROGRESS_FILE``
set, every collected test, every start and every phase's outcome is appended to that file as one
JSON line and flushed at once, so a run killed by ``timeout`` still says what passed, what failed
and which test was running. With ``PYTEST_PROGRESS_ORDER`` set (comma-separated substrings), the
collected tests run in that priority: those whose node id contains the first substring first,
and so on; ties keep pytest's order (files in command-line order). benchmarks/gpu_run.sh uses it
to run the half-precision tests, cheap to compile, before the fp32 ones.

Summary: ``python benchmarks/pytest_progress.py FILE [--cap-s S] [--rc RC]`` prints one line
(selected, passed, failed, errors, skipped, not run, which test was running when the cap hit),
then the failures with their one-line reasons, the skip reasons and the tests not run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

try:
    import pytest

    _trylast = pytest.hookimpl(trylast=True)
except ImportError:  # the summary (python pytest_progress.py FILE) needs no pytest
    def _trylast(f):
        return f

_file = None


def _write(**event) -> None:
    if _file is not None:
        _file.write(json.dumps(event) + "\n")
        _file.flush()


def pytest_configure(config):
    global _file
    path = os.environ.get("PYTEST_PROGRESS_FILE")
    if path and _file is None:
        _file = open(path, "a", buffering=1)


def pytest_unconfigure(config):
    global _file
    if _file is not None:
        _write(event="finished", t=time.time())
        _file.close()
        _file = None


@_trylast  # after the suite's own ordering (tests/conftest.py)
def pytest_collection_modifyitems(session, config, items):
    order = [x for x in os.environ.get("PYTEST_PROGRESS_ORDER", "").split(",") if x]
    if not order:
        return

    def rank(item):
        return next((i for i, x in enumerate(order) if x in item.nodeid), len(order))

    items[:] = sorted(items, key=rank)  # stable: pytest's order within a rank


def pytest_collection_finish(session):
    _write(event="collected", nodeids=[item.nodeid for item in session.items], t=time.time())


def pytest_collectreport(report):
    if report.failed:  # a test file that does not import (run with --continue-on-collection-errors)
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1:]
        _write(event="collect_error", nodeid=report.nodeid, reason=" ".join(str(reason).split())[:300], t=time.time())


def pytest_runtest_logstart(nodeid, location):
    _write(event="start", nodeid=nodeid, t=time.time())


def pytest_runtest_logreport(report):
    reason = ""
    if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
    elif report.outcome == "failed":
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = crash.message if crash is not None else str(report.longrepr)
        reason = " ".join(reason.split())[:300]
    _write(event="report", nodeid=report.nodeid, when=report.when, outcome=report.outcome,
           duration=round(report.duration, 3), reason=reason, t=time.time())


# ----------------------------------------------------------------------------------------- summary


def summarize(path: str, cap_s: float | None = None, rc: int | None = None) -> tuple[str, list[str]]:
    """(the one-line summary, the detail lines) of a progress file."""
    collected: list[str] = []
    started: list[str] = []
    phases: dict[str, list[dict]] = collections.defaultdict(list)
    collect_errors: dict[str, str] = {}
    finished = False
    try:
        with open(path) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                if e["event"] == "collected":
                    collected += e["nodeids"]
                elif e["event"] == "start":
                    started.append(e["nodeid"])
                elif e["event"] == "report":
                    phases[e["nodeid"]].append(e)
                elif e["event"] == "collect_error":
                    collect_errors[e["nodeid"]] = e["reason"]
                elif e["event"] == "finished":
                    finished = True
    except FileNotFoundError:
        pass

    outcome: dict[str, tuple[str, str]] = {}
    seconds = 0.0
    for nodeid, reports in phases.items():
        seconds += sum(r["duration"] for r in reports)
        by_when = {r["when"]: r for r in reports}
        if any(r["outcome"] == "skipped" for r in reports):
            r = next(r for r in reports if r["outcome"] == "skipped")
            outcome[nodeid] = ("skipped", r["reason"])
        elif by_when.get("setup", {}).get("outcome") == "failed":
            outcome[nodeid] = ("error", by_when["setup"]["reason"])
        elif by_when.get("call", {}).get("outcome") == "failed":
            outcome[nodeid] = ("failed", by_when["call"]["reason"])
        elif by_when.get("teardown", {}).get("outcome") == "failed":
            outcome[nodeid] = ("error", by_when["teardown"]["reason"])
        elif by_when.get("call", {}).get("outcome") == "passed":
            outcome[nodeid] = ("passed", "")
    running = [n for n in started if n not in outcome]  # started, no outcome: the one the cap stopped
    not_run = [n for n in collected if n not in outcome]
    counts = collections.Counter(o for o, _ in outcome.values())
    parts = [f"{len(collected)} selected", f"{counts['passed']} passed", f"{counts['failed']} failed",
             f"{counts['error']} errors", f"{counts['skipped']} skipped", f"{len(not_run)} not run"]
    if collect_errors:
        parts.append(f"{len(collect_errors)} files not collected")
    line = ", ".join(parts)
    if not_run and not finished:
        cap = f" (time cap {cap_s:g} s reached" if cap_s else " (stopped"
        line += cap + (f" while running {running[-1]})" if running else ")")
    elif not collected and not finished:
        line += " (no collection recorded: pytest did not start or was killed while collecting)"
    line += f"; {seconds:.0f} s in tests"
    if rc is not None:
        line += f"; pytest exit {rc}"
    detail = [f"NOT COLLECTED {n}: {r}" for n, r in collect_errors.items()]
    detail += [f"{o.upper()} {n}: {r}" for n, (o, r) in outcome.items() if o in ("failed", "error")]
    skips = collections.Counter(r for o, r in outcome.values() if o == "skipped")
    detail += [f"SKIPPED x{c}: {r}" for r, c in skips.items()]
    detail += [f"NOT RUN {n}" for n in not_run]
    detail += [f"PASSED {n}" for n, (o, _) in outcome.items() if o == "passed"]
    return line, detail


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file")
    p.add_argument("--cap-s", type=float)
    p.add_argument("--rc", type=int)
    p.add_argument("--label", default="tests")
    args = p.parse_args(argv)
    line, detail = summarize(args.file, args.cap_s, args.rc)
    print(f"{args.label}: {line}")
    for d in detail:
        print(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
