"""The three surfaces of every chapter follow from its one source, and the apps are valid marimo."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import chapter_env

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
    result = subprocess.run(
        [sys.executable, "-m", "marimo", "check", str(app)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("chapter", IDS)
def test_marimo_app_runs_every_cell(chapter, tmp_path):
    """Execute the app as marimo does (cell-local `_names`, dependency order) and fail on any cell error.

    The notebook surface is executed by nbval; this is the same guarantee for the app surface. The
    heavy lablib calls marked @session_memo (pure functions, identical on both surfaces) reuse the
    notebook run's results when it came first (tests/conftest.py); every cell still runs.
    """
    result = subprocess.run(
        [sys.executable, "-m", "marimo", "export", "html", f"apps/{chapter}.py", "-o", str(tmp_path / "app.html")],
        cwd=ROOT / "notebooks", capture_output=True, text=True, timeout=600, env=chapter_env(),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
