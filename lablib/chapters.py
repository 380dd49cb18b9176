"""One source per chapter, three surfaces: the tool that keeps them in step.

A chapter is written once, as MyST Markdown at ``notebooks/<id>.md`` (jupytext format: prose
as Markdown, code in ``{code-cell}`` blocks). From it this tool makes

* ``notebooks/<id>.ipynb``       the executed Jupyter notebook (outputs committed, checked by nbval);
* ``notebooks/apps/<id>.py``     the marimo app (``marimo convert`` of the same cells, where a cell
  that prints runs under ``mo.redirect_stdout()``: ``marimo run`` hides console output);
* ``book/chapters/<id>.ipynb``   a fresh execution for the Jupyter Book (not committed).

Commands (run from the repository root)::

    python -m lablib.chapters build [ID ...]   execute sources -> notebooks + marimo apps
    python -m lablib.chapters check            fail if any surface drifted from its source
    python -m lablib.chapters book             execute into book/chapters and build the HTML book

``check`` compares cell types and sources, so editing a notebook or an app by hand (instead of
the source) is caught by ``tests/test_chapters.py``. Editing the ``.ipynb`` in JupyterLab is
fine when jupytext is installed: ``notebooks/jupytext.toml`` pairs it with the ``.md``.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import shutil
import subprocess
import sys
import time
import tokenize
from pathlib import Path

__all__ = ["chapter_ids", "build", "check", "build_book", "run_app"]

CHAPTER_GLOB = "t[0-9]_[0-9][0-9]_*.md"


def _root(root: str | Path | None) -> Path:
    root = Path(root or os.getcwd()).resolve()
    if not (root / "notebooks").is_dir():
        raise SystemExit(f"{root} has no notebooks/ folder; run from the linear-lab repository root")
    return root


def chapter_ids(root: str | Path | None = None) -> list[str]:
    """Ids (file stems) of every chapter source, in reading order."""
    return sorted(p.stem for p in (_root(root) / "notebooks").glob(CHAPTER_GLOB))


def _select(root: Path, ids: list[str] | None) -> list[str]:
    known = chapter_ids(root)
    if not ids:
        return known
    chosen = []
    for wanted in ids:
        matches = [c for c in known if c == wanted or c.startswith(wanted)]
        if len(matches) != 1:
            raise SystemExit(f"chapter {wanted!r} matches {matches or 'nothing'}; chapters: {', '.join(known)}")
        chosen += matches
    return chosen


def read_source(root: Path, chapter: str):
    import jupytext

    nb = jupytext.read(root / "notebooks" / f"{chapter}.md")
    nb.metadata.pop("jupytext", None)  # the pairing info belongs to the .md, not the outputs
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return nb


def execute(nb, cwd: Path, timeout: int = 900):
    """Run every cell top to bottom in a fresh python3 kernel, in ``cwd``; raises on the first error."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def marimo_app(root: Path, chapter: str) -> str:
    """The marimo app's text for a chapter: what ``marimo convert`` makes from the source's cells.

    Called in-process (``MarimoConvert.from_ipynb(...).to_py()`` is exactly what the CLI command
    runs; marimo is pinned below 0.26 in the dev extra), which spares a Python start per chapter
    in ``check``.
    """
    import nbformat
    from marimo._convert.converters import MarimoConvert

    nb = read_source(root, chapter)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = show_prints(cell.source)
    return MarimoConvert.from_ipynb(nbformat.writes(nb)).to_py()


def _prints(tree: ast.AST) -> bool:
    """Whether the cell itself calls ``print`` (not only inside a function or class it defines)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            return True
        if _prints(node):
            return True
    return False


def _rows_inside_strings(source: str) -> set[int]:
    """1-based rows that continue a multi-line string: indenting them would change the string."""
    rows: set[int] = set()
    opened: list[int] = []  # Python 3.12 tokenizes f-strings as FSTRING_START ... FSTRING_END
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        name = tokenize.tok_name[token.type]
        if name == "STRING":
            rows.update(range(token.start[0] + 1, token.end[0] + 1))
        elif name == "FSTRING_START":
            opened.append(token.start[0])
        elif name == "FSTRING_END":
            rows.update(range(opened.pop() + 1, token.end[0] + 1))
    return rows


def _insert(lines: list[str], row: int, byte_offset: int, text: str) -> list[str]:
    """``lines`` with ``text`` inserted at an ``ast`` position (1-based row, UTF-8 byte offset)."""
    line = lines[row - 1].encode()
    return [*lines[: row - 1], (line[:byte_offset].decode() + text + line[byte_offset:].decode()), *lines[row:]]


def show_prints(source: str) -> str:
    """A code cell's source for the marimo app, with its printed lines shown to the reader.

    ``marimo run`` hides console output (stdout), so an app reader would miss every printed result
    that the notebook and the book show. A cell that prints runs inside ``with
    mo.redirect_stdout():``, which sends the lines to the cell's output area; its displayed last
    expression, if any, becomes ``mo.output.append(...)`` so that it shows below them instead of
    replacing them. A cell that does not print (or does not parse) is returned unchanged.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: marimo's converter deals with those
        return source
    if not tree.body or not _prints(tree):
        return source
    lines = source.splitlines()
    last = tree.body[-1]
    shown = isinstance(last, ast.Expr) and not (
        isinstance(last.value, ast.Call) and isinstance(last.value.func, ast.Name) and last.value.func.id == "print")
    after = lines[last.end_lineno - 1].encode()[last.end_col_offset:].decode()
    if shown and not after.lstrip().startswith(";"):  # `chart;` displays nothing in Jupyter: leave it so
        # the closing parenthesis first: on a one-line expression it leaves the opening offset valid
        lines = _insert(lines, last.end_lineno, last.end_col_offset, ")")
        lines = _insert(lines, last.lineno, last.col_offset, "mo.output.append(")
    inside = _rows_inside_strings(source)
    body = [line if row in inside or not line.strip() else "    " + line for row, line in enumerate(lines, 1)]
    return "\n".join(["with mo.redirect_stdout():  # marimo run hides printed lines; this shows them", *body])


# What every app imports, for a process that forks one child per app (tests/test_chapters.py): torch,
# the chart and widget stacks, and the marimo machinery run_app uses (names that do not import are skipped).
APP_PRELOAD = ["torch", "pandas", "altair", "marimo", "lablib.chapters", "lablib.memo", "lablib.viz", "lablib.widgets",
               "marimo._export.file", "marimo._session.session", "marimo._session.managers.kernel",
               "marimo._runtime.runtime", "marimo._output.formatters.formatters", "marimo._output.md",
               "marimo._convert.converters", "narwhals.stable.v1", "pymdownx.arithmatex", "pymdownx.blocks",
               "pygments.formatters.html"]


def run_app(chapter: str, root: str | Path | None = None, out: str | Path | None = None) -> bool:
    """Execute a chapter's marimo app as ``marimo run`` serves it and export the page as HTML.

    Returns True when every cell ran (errors are printed to stderr). The kernel runs on a thread of
    this process, as under ``marimo run``; ``marimo export html`` would start a Python process for
    it (edit mode), which costs a second start and every import again. What marimo checks is the
    same: cell-local ``_names``, dependency order, every output formatted for the page. Uses
    marimo's export internals (marimo is pinned below 0.26 in the dev extra). Run it in a
    process of its own: the chapter's code runs in this one.
    """
    import asyncio

    from marimo._export.file import export_html
    from marimo._export.requests import HTMLFileExportRequest, NotebookExecutionOptions
    from marimo._schemas.export_options import HTMLExportOptions
    from marimo._session.model import SessionMode
    from marimo._session.session import SessionImpl
    from marimo._utils.marimo_path import MarimoPath

    app = _root(root) / "notebooks" / "apps" / f"{chapter}.py"
    if not app.is_file():
        raise FileNotFoundError(f"no marimo app {app}; make it with: python -m lablib.chapters build {chapter}")
    create = SessionImpl.create.__func__

    async def create_in_run_mode(cls, *args, **kwargs):  # export_html asks for edit mode: a kernel process
        return await create(cls, *args, **{**kwargs, "mode": SessionMode.RUN})

    SessionImpl.create = classmethod(create_in_run_mode)
    try:
        result = asyncio.run(export_html(HTMLFileExportRequest(
            path=MarimoPath(str(app)), options=HTMLExportOptions(files=(), include_code=True),
            execution=NotebookExecutionOptions(cli_args={}, argv=[], persist_session=False))))
    finally:
        SessionImpl.create = classmethod(create)
    if out is not None:
        Path(out).write_bytes(result.bytez)
    return not result.did_error


def run_app_logged(chapter: str, root: str | Path, out: str | Path, log: str | Path, env: dict | None = None) -> None:
    """:func:`run_app` as the whole job of a child process (``tests/test_chapters.py`` forks one per
    app): stdout and stderr go to ``log``, ``env`` is added to the environment, the working folder is
    notebooks/ (as for a reader's ``marimo run``); exits with 0 when every cell ran, 1 otherwise."""
    root = _root(root)  # before the chdir below: a relative root names the caller's folder
    with open(log, "wb") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    os.environ.update(env or {})
    os.chdir(root / "notebooks")
    sys.exit(0 if run_app(chapter, root, out) else 1)


def build(ids: list[str] | None = None, root: str | Path | None = None) -> None:
    """Execute chapter sources into committed notebooks and write their marimo apps."""
    import nbformat

    root = _root(root)
    (root / "notebooks" / "apps").mkdir(exist_ok=True)
    for chapter in _select(root, ids):
        start = time.perf_counter()
        nb = execute(read_source(root, chapter), root / "notebooks")
        nbformat.write(nb, root / "notebooks" / f"{chapter}.ipynb")
        (root / "notebooks" / "apps" / f"{chapter}.py").write_text(marimo_app(root, chapter))
        print(f"built {chapter}: executed in {time.perf_counter() - start:.1f} s", flush=True)


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def check(root: str | Path | None = None) -> list[str]:
    """Every way a surface can drift from its source, as readable messages (empty when in step)."""
    import nbformat

    root = _root(root)
    problems = []
    toc = (root / "book" / "_toc.yml").read_text() if (root / "book" / "_toc.yml").exists() else ""
    for chapter in chapter_ids(root):
        source = _cells(read_source(root, chapter))
        ipynb = root / "notebooks" / f"{chapter}.ipynb"
        app = root / "notebooks" / "apps" / f"{chapter}.py"
        if not ipynb.exists():
            problems.append(f"{chapter}: notebooks/{chapter}.ipynb is missing (run `make chapters`)")
        else:
            nb = nbformat.read(ipynb, as_version=4)
            if _cells(nb) != source:
                problems.append(f"{chapter}: the notebook's cells differ from notebooks/{chapter}.md (run `make chapters`)")
            code = [c for c in nb.cells if c.cell_type == "code"]
            if any(c.execution_count is None for c in code):
                problems.append(f"{chapter}: the notebook has unexecuted cells (run `make chapters`)")
        if not app.exists():
            problems.append(f"{chapter}: notebooks/apps/{chapter}.py is missing (run `make chapters`)")
        elif app.read_text() != marimo_app(root, chapter):
            problems.append(f"{chapter}: the marimo app differs from notebooks/{chapter}.md (run `make chapters`)")
        if f"chapters/{chapter}" not in toc:
            problems.append(f"{chapter}: book/_toc.yml has no entry `chapters/{chapter}`")
    for stray in sorted((root / "notebooks").glob("t[0-9]_*.ipynb")):
        if stray.stem not in chapter_ids(root):
            problems.append(f"{stray.name} has no source notebooks/{stray.stem}.md")
    return problems


def write_static_assets(static: Path) -> None:
    """Copy what the offline book needs into its _static folder: the vega bundle and MathJax."""
    import importlib.util

    from lablib.viz.bundle import write_vega_bundle

    static.mkdir(parents=True, exist_ok=True)
    write_vega_bundle(static / "vega-bundle.js")
    spec = importlib.util.find_spec("mathjax")  # from the django-static-mathjax wheel: MathJax 3, no Django needed
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("MathJax not found: pip install django-static-mathjax (see pyproject.toml [dev])")
    tex_svg = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5" / "tex-svg.js"
    (static / "mathjax").mkdir(exist_ok=True)
    shutil.copy(tex_svg, static / "mathjax" / "tex-svg.js")  # self-contained: SVG output needs no font files


def build_book(root: str | Path | None = None, execute_chapters: bool = True) -> Path:
    """Execute every chapter into book/chapters and build the static HTML under book/_build/html."""
    import nbformat

    root = _root(root)
    book = root / "book"
    chapters = book / "chapters"
    chapters.mkdir(exist_ok=True)
    for chapter in chapter_ids(root):
        start = time.perf_counter()
        if execute_chapters:
            nb = execute(read_source(root, chapter), root / "notebooks")
        else:
            nb = nbformat.read(root / "notebooks" / f"{chapter}.ipynb", as_version=4)
        nbformat.write(nb, chapters / f"{chapter}.ipynb")
        print(f"book: {chapter} ready in {time.perf_counter() - start:.1f} s", flush=True)
    write_static_assets(book / "_static")
    jb = Path(sys.executable).with_name("jupyter-book")  # the venv's, whatever PATH says
    subprocess.run([str(jb), "build", str(book)], check=True)
    html = book / "_build" / "html"
    print(f"book built: {html / 'index.html'}")
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lablib.chapters", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="execute chapter sources into notebooks/ and notebooks/apps/")
    p_build.add_argument("ids", nargs="*", help="chapter ids or prefixes (default: all)")
    sub.add_parser("check", help="fail if a notebook, app or toc entry drifted from its source")
    p_book = sub.add_parser("book", help="execute every chapter and build the HTML book")
    p_book.add_argument("--no-execute", action="store_true", help="use the committed notebooks' outputs")
    sub.add_parser("list", help="print the chapter ids")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.ids)
    elif args.command == "check":
        problems = check()
        print("\n".join(problems) or f"all {len(chapter_ids())} chapters in step with their sources")
        return 1 if problems else 0
    elif args.command == "book":
        build_book(execute_chapters=not args.no_execute)
    elif args.command == "list":
        print("\n".join(chapter_ids()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
