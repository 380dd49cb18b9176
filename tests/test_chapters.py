"""The three surfaces of every chapter follow from its one source, and the apps are valid marimo."""

import ast
import html
import json
import re
from pathlib import Path

import nbformat
import pytest
from conftest import chapter_memo_env

from lablib import chapters

ROOT = Path(__file__).resolve().parents[1]
IDS = chapters.chapter_ids(ROOT)


def test_there_are_chapters():
    assert IDS, "no notebooks/t*_*.md chapter sources found"


def test_surfaces_in_step_with_sources():
    problems = chapters.check(ROOT)
    assert not problems, "\n".join(problems)


def test_check_catches_a_hand_edited_notebook(tmp_path):
    # Copy one chapter into a scratch repo, edit its notebook, and see check() complain.
    import shutil

    import nbformat

    chapter = IDS[0]
    (tmp_path / "notebooks" / "apps").mkdir(parents=True)
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "book" / "_toc.yml", tmp_path / "book" / "_toc.yml")
    for rel in (f"notebooks/{chapter}.md", f"notebooks/{chapter}.ipynb", f"notebooks/apps/{chapter}.py"):
        shutil.copy(ROOT / rel, tmp_path / rel)
    assert chapters.check(tmp_path) == []
    nb = nbformat.read(tmp_path / "notebooks" / f"{chapter}.ipynb", as_version=4)
    nb.cells[1].source += "\nprint('edited by hand')"
    nbformat.write(nb, tmp_path / "notebooks" / f"{chapter}.ipynb")
    app = tmp_path / "notebooks" / "apps" / f"{chapter}.py"
    app.write_text(app.read_text().replace("import torch", "import torch  # edited", 1))
    problems = chapters.check(tmp_path)
    assert any("notebook's cells differ" in p for p in problems)
    assert any("marimo app differs" in p for p in problems)


@pytest.mark.parametrize("chapter", IDS)
def test_marimo_app_parses_and_has_no_multiply_defined_names(chapter):
    """marimo refuses a notebook where two cells define the same global name; catch it here."""
    app = ROOT / "notebooks" / "apps" / f"{chapter}.py"
    ast.parse(app.read_text())
    ok, report = marimo_check(app)
    assert ok, report


def marimo_check(app: Path) -> tuple[bool, str]:
    """What ``marimo check APP`` decides (exit code 0 unless a rule errs) and prints, run in this process:
    the same lint call and default rules as the command, without a Python start per app."""
    from marimo._lint import resolve_lint_config, run_check

    messages = []
    linter = run_check((str(app),), pipe=messages.append, lint_config=resolve_lint_config(None, None))
    return not linter.errored, "\n".join(messages)


def test_marimo_check_refuses_a_name_defined_in_two_cells(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(_APP.format(first="x = 1", second="print(x + 1)", returns="(x,)", needs="x"))
    bad.write_text(_APP.format(first="x = 1", second="x = 2", returns="(x,)", needs=""))
    assert marimo_check(good)[0], marimo_check(good)[1]
    ok, report = marimo_check(bad)
    assert not ok and "multiple" in report, report


@pytest.fixture(scope="session")
def app_processes():
    """Processes for the apps: a fork server that has imported torch, marimo, Altair and lablib's chart
    and widget modules once (chapters.APP_PRELOAD), so that each app runs in a fresh process of its own
    (isolated as under ``marimo export html``) without paying two Python starts and those imports each time."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(chapters.APP_PRELOAD)
    return context


@pytest.mark.slow
@pytest.mark.parametrize("chapter", IDS)
def test_marimo_app_runs_every_cell(chapter, tmp_path, app_processes):
    """Execute the app as ``marimo run`` does (cell-local `_names`, dependency order, outputs formatted
    for the page) and fail on any cell error.

    The notebook surface is executed by nbval; this is the same guarantee for the app surface. The
    heavy lablib calls marked @session_memo (pure functions, identical on both surfaces) reuse the
    notebook run's results when it came first (tests/conftest.py); every cell still runs.
    """
    exitcode, log = run_in_child(app_processes, chapter, ROOT, tmp_path / "app.html", chapter_memo_env(), 600)
    assert exitcode == 0, f"{chapter}'s app failed (exit code {exitcode}):\n{log[-6000:]}"
    assert (tmp_path / "app.html").stat().st_size > 10_000, "the exported page is missing or empty"
    # what the notebook prints and nbval checks, the app reader sees too (marimo run hides console output)
    shown = app_page_text((tmp_path / "app.html").read_text())
    missing = [line for line in checked_printed_lines(ROOT / "notebooks" / f"{chapter}.ipynb") if line not in shown]
    assert not missing, f"{len(missing)} checked printed lines of the notebook are not on {chapter}'s app page, e.g. {missing[:3]}"


def app_page_text(page: str) -> str:
    """The text of every cell output on an exported marimo page (not the console, which ``marimo run`` hides),
    tags removed and whitespace collapsed."""
    marker = '"session": '
    session, _ = json.JSONDecoder().raw_decode(page, page.index(marker) + len(marker))
    parts = [value for cell in session["cells"] for output in cell.get("outputs", [])
             for value in output.get("data", {}).values() if isinstance(value, str)]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", "".join(parts))).split())


def checked_printed_lines(notebook: Path) -> list[str]:
    """The non-empty stdout lines of a notebook's ``# NBVAL_CHECK_OUTPUT`` cells, whitespace collapsed."""
    lines = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            for output in cell.get("outputs", []):
                if output.output_type == "stream" and output.name == "stdout":
                    lines += [" ".join(line.split()) for line in output.text.splitlines() if line.strip()]
    return lines


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 2\nx", "x = 2\nx"),  # no print: unchanged
        ("def f():\n    print('later')", "def f():\n    print('later')"),  # prints only when called elsewhere
        ("%time y = 1\nprint(y)", "%time y = 1\nprint(y)"),  # a magic: left to marimo's converter
        ("print('a')\nchart  # the chart",
         "with mo.redirect_stdout():  # marimo run hides printed lines; this shows them\n"
         "    print('a')\n    mo.output.append(chart)  # the chart"),
        ("print('β'); 'β' + x", "with mo.redirect_stdout():  # marimo run hides printed lines; this shows them\n"
         "    print('β'); mo.output.append('β' + x)"),  # ast offsets are UTF-8 bytes
        ("print(1)\nchart;", "with mo.redirect_stdout():  # marimo run hides printed lines; this shows them\n"
         "    print(1)\n    chart;"),  # Jupyter shows nothing after `;`, and nor does the app
        ('s = """one\ntwo"""\nfor c in s:\n    print(c)',
         'with mo.redirect_stdout():  # marimo run hides printed lines; this shows them\n'
         '    s = """one\ntwo"""\n    for c in s:\n        print(c)'),  # a string's own lines keep their indent
    ],
)
def test_app_cells_that_print_show_their_lines(source, expected):
    assert chapters.show_prints(source) == expected


def run_in_child(app_processes, chapter: str, root: Path, out: Path, env: dict, timeout: int) -> tuple[int, str]:
    """(exit code, log) of chapters.run_app_logged in a process forked from the fork server; fails past ``timeout`` s."""
    log = out.with_suffix(".log")
    process = app_processes.Process(target=chapters.run_app_logged, args=(chapter, root, out, log, env))
    process.start()
    process.join(timeout=timeout)
    if process.is_alive():
        process.kill()
        process.join()
        pytest.fail(f"{chapter}'s app ran for more than {timeout} s:\n{log.read_text()[-3000:]}")
    return process.exitcode, log.read_text()


def test_app_runner_reports_a_cell_error(tmp_path, app_processes):
    """The runner above must fail on what marimo refuses: a cell-local name read by another cell."""
    (tmp_path / "notebooks" / "apps").mkdir(parents=True)
    good = tmp_path / "notebooks" / "apps" / "t0_01_good.py"
    good.write_text(_APP.format(first="x = 1", second="print(x + 1)", returns="(x,)", needs="x"))
    bad = tmp_path / "notebooks" / "apps" / "t0_02_bad.py"
    bad.write_text(_APP.format(first="_x = 1", second="print(_x + 1)", returns="", needs=""))
    results = {app.stem: run_in_child(app_processes, app.stem, tmp_path, tmp_path / f"{app.stem}.html", {}, 120)
               for app in (good, bad)}
    assert results["t0_01_good"][0] == 0, results["t0_01_good"][1]
    assert results["t0_02_bad"][0] == 1 and "_x" in results["t0_02_bad"][1], results["t0_02_bad"]


_APP = """import marimo

app = marimo.App()


@app.cell
def _():
    {first}
    return {returns}


@app.cell
def _({needs}):
    {second}
    return


if __name__ == "__main__":
    app.run()
"""
