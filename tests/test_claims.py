"""Claims are asserts: no committed notebook shows a check that came out False, and no chapter's
nbval-checked cell states a claim by printing a boolean.

Why: nbval compares a cell's stored output with a fresh run's. If a chapter *prints* a check,
``print(f"... within 1e-5: {err < 1e-5}")``, and a regression makes it False, re-executing the
chapter stores "False" as the expected output and nbval passes forever after. A claim must be an
``assert`` whose message says what was expected and what was measured (DESIGN.md, "Claims are
asserts").

Two checks, both usable on any notebook path:

* ``output_problems(path)``: in an executed ``.ipynb``, any cell output that is an error (or a
  traceback on stderr), and the word ``False`` in the output of a cell that is marked
  ``# NBVAL_CHECK_OUTPUT`` or whose source prints a boolean expression;
* ``source_problems(path)``: in a ``.md`` chapter source or an ``.ipynb``, every
  ``# NBVAL_CHECK_OUTPUT`` cell that prints or displays a boolean expression (a comparison,
  ``bool(...)``, ``.all()``, ``allclose(...)``, ``not ...``, a name assigned one of those, ...),
  found by parsing the cell with ``ast``; and every such cell that prints a value in scientific
  notation (``f"{err:.0e}"``). A measured error of 4e-16 is rounding noise: its digits change with
  the BLAS build, the CPU or a library release, and nbval then fails a correct chapter (t5_02 did
  on a clean clone: 4e-16 stored, 3e-16 measured). A checked line states the bound its assert
  checks ("below 1e-9"); the measured value goes in the assert's message, or in an unchecked cell.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("t[0-9]_[0-9][0-9]_*.ipynb"))
SOURCES = sorted((ROOT / "notebooks").glob("t[0-9]_[0-9][0-9]_*.md"))
MARKER = "NBVAL_CHECK_OUTPUT"
FALSE = re.compile(r"\bFalse\b")

# Calls whose result is a truth value (by function name, or by method name for x.all(), np.allclose, ...).
BOOLEAN_FUNCTIONS = {"bool", "all", "any", "isinstance", "issubclass", "callable", "hasattr"}
BOOLEAN_METHODS = {
    "all", "any", "allclose", "isclose", "array_equal", "array_equiv", "equal", "equals",
    "startswith", "endswith", "isdisjoint", "issubset", "issuperset", "is_monotonic_increasing",
}
SHOWING_FUNCTIONS = {"print", "display"}
SCIENTIFIC = re.compile(r"[eE]$")  # a format spec ending in e: f"{x:.0e}", f"{x:>8.2E}"


# ---------------------------------------------------------------------------------------------
# Reading notebooks


def read_cells(path: str | Path) -> list:
    """The cells of a notebook: ``.ipynb`` with nbformat, a jupytext ``.md`` chapter source with jupytext."""
    path = Path(path)
    if path.suffix == ".md":
        import jupytext

        return jupytext.read(path).cells
    return nbformat.read(path, as_version=4).cells


def _python(source: str) -> str:
    """Cell source with IPython magics and shell escapes blanked, so that ``ast`` can parse it."""
    return re.sub(r"^\s*[%!].*$", "", source, flags=re.MULTILINE)


def _output_text(output) -> str:
    if output.output_type == "stream":
        return output.get("text", "")
    if output.output_type in ("execute_result", "display_data"):
        text = output.get("data", {}).get("text/plain", "")
        return "".join(text) if isinstance(text, list) else text
    if output.output_type == "error":
        return f"{output.get('ename', '')}: {output.get('evalue', '')}"
    return ""


# ---------------------------------------------------------------------------------------------
# Which expressions are booleans


def _boolean_names(cells) -> set[str]:
    """Names that every simple assignment in the notebook binds to a boolean expression (``ok = err < 1e-5``)."""
    verdicts: dict[str, bool] = {}
    for cell in cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_python(cell.source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        is_bool = _is_boolean(node.value, set())
                        verdicts[target.id] = verdicts.get(target.id, True) and is_bool
    return {name for name, is_bool in verdicts.items() if is_bool}


def _is_boolean(node: ast.AST, boolean_names: set[str]) -> bool:
    """Whether an expression's value is a truth value (or an array of them)."""
    if isinstance(node, ast.Compare):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return True
    if isinstance(node, ast.Constant):  # a literal True / False is a setting (RETRAIN = False), not a check
        return False
    if isinstance(node, ast.Name):
        return node.id in boolean_names
    if isinstance(node, ast.BoolOp):  # `a < 1 and b < 2`; `name or "default"` is not a boolean
        return all(_is_boolean(value, boolean_names) for value in node.values)
    if isinstance(node, ast.IfExp):
        return _is_boolean(node.body, boolean_names) and _is_boolean(node.orelse, boolean_names)
    if isinstance(node, ast.Subscript):  # (a < b)[0]
        return _is_boolean(node.value, boolean_names)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id in BOOLEAN_FUNCTIONS
        if isinstance(func, ast.Attribute):
            if func.attr in BOOLEAN_METHODS:
                return True
            if func.attr in ("item", "tolist", "numpy", "cpu"):  # (a < b).item()
                return _is_boolean(func.value, boolean_names)
    if isinstance(node, ast.Attribute) and node.attr in ("is_monotonic_increasing", "is_monotonic_decreasing", "empty"):
        return True
    return False


def _shown_booleans(node: ast.AST, boolean_names: set[str]) -> list[ast.AST]:
    """The boolean expressions whose value ends up in what ``node`` shows (directly, in an f-string, a tuple, ...)."""
    if _is_boolean(node, boolean_names):
        return [node]
    found = []
    if isinstance(node, ast.JoinedStr):
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                found += _shown_booleans(part.value, boolean_names)
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for element in node.elts:
            found += _shown_booleans(element, boolean_names)
    elif isinstance(node, ast.Dict):
        for value in node.values:
            found += _shown_booleans(value, boolean_names)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):  # "a" + str(x < 1), "%s" % (x < 1,)
        found += _shown_booleans(node.left, boolean_names) + _shown_booleans(node.right, boolean_names)
    elif isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "format":  # "{}".format(x < 1)
            for argument in [*node.args, *(keyword.value for keyword in node.keywords)]:
                found += _shown_booleans(argument, boolean_names)
        elif isinstance(func, ast.Name) and func.id in ("str", "repr", "format"):  # str(x < 1)
            for argument in node.args[:1]:
                found += _shown_booleans(argument, boolean_names)
    return found


def _is_showing_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SHOWING_FUNCTIONS


def _shown_roots(tree: ast.Module) -> list[ast.AST]:
    """What a cell shows: the arguments of every ``print``/``display`` call, and its last expression
    (displayed as the cell's result) unless that is itself such a call."""
    roots = [argument for node in ast.walk(tree) if _is_showing_call(node) for argument in node.args]
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not _is_showing_call(tree.body[-1].value):
        roots.append(tree.body[-1].value)
    return roots


def printed_booleans(source: str, boolean_names: set[str] = frozenset()) -> list[str]:
    """The boolean expressions a cell prints, displays, or leaves as its displayed last value, as source text.

    Raises SyntaxError if the cell (magics aside) is not Python.
    """
    shown = [node for root in _shown_roots(ast.parse(_python(source))) for node in _shown_booleans(root, boolean_names)]
    return [ast.unparse(node) for node in shown]


def _format_spec(node: ast.FormattedValue) -> str:
    spec = node.format_spec
    if spec is None:
        return ""
    return "".join(part.value for part in spec.values if isinstance(part, ast.Constant))


def printed_scientific(source: str) -> list[str]:
    """The values a cell prints or displays in scientific notation (``f"{err:.0e}"``), as source text.

    Only what is shown counts: an assert's message may (and should) give the measured value.
    Raises SyntaxError if the cell (magics aside) is not Python.
    """
    return [f"{{{ast.unparse(node.value)}:{_format_spec(node)}}}"
            for root in _shown_roots(ast.parse(_python(source))) for node in ast.walk(root)
            if isinstance(node, ast.FormattedValue) and SCIENTIFIC.search(_format_spec(node))]


# ---------------------------------------------------------------------------------------------
# The checks


def source_problems(path: str | Path) -> list[str]:
    """Every ``# NBVAL_CHECK_OUTPUT`` cell of a notebook or chapter source that shows a boolean, as messages."""
    path = Path(path)
    cells = read_cells(path)
    boolean_names = _boolean_names(cells)
    problems = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or MARKER not in cell.source:
            continue
        try:
            shown = printed_booleans(cell.source, boolean_names)
        except SyntaxError as error:
            problems.append(f"{path.name}, cell {index}: a {MARKER} cell that does not parse as Python ({error})")
            continue
        for expression in shown:
            problems.append(
                f"{path.name}, cell {index}: the {MARKER} cell shows the boolean `{expression}`; "
                "state the claim as an assert whose message gives the expected and the measured value"
            )
        for value in printed_scientific(cell.source):
            problems.append(
                f"{path.name}, cell {index}: the {MARKER} cell prints `{value}`, a value in scientific notation "
                "whose digits are rounding noise that differs between machines; print the bound the assert checks instead"
            )
    return problems


def output_problems(path: str | Path) -> list[str]:
    """In an executed notebook: error outputs, tracebacks, and checks whose stored output says False."""
    path = Path(path)
    cells = read_cells(path)
    boolean_names = _boolean_names(cells)
    problems = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        for output in outputs:
            if output.output_type == "error":
                problems.append(f"{path.name}, cell {index}: stored output is an error, {_output_text(output)}")
            elif output.output_type == "stream" and output.get("name") == "stderr" and "Traceback" in output.get("text", ""):
                problems.append(f"{path.name}, cell {index}: stored output has a traceback on stderr")
        try:
            prints_boolean = bool(printed_booleans(cell.source, boolean_names))
        except SyntaxError:
            prints_boolean = False
        if MARKER in cell.source or prints_boolean:
            for line in "".join(_output_text(output) for output in outputs).splitlines():
                if FALSE.search(line):
                    problems.append(f"{path.name}, cell {index}: a check's stored output says False: {line.strip()!r}")
    return problems


def claim_problems(path: str | Path) -> list[str]:
    """Both checks for an ``.ipynb`` (outputs and sources); the source check for a ``.md`` chapter."""
    path = Path(path)
    return (output_problems(path) if path.suffix == ".ipynb" else []) + source_problems(path)


# ---------------------------------------------------------------------------------------------
# The repository's chapters


def test_there_are_chapters_to_check():
    assert NOTEBOOKS and SOURCES, "no notebooks/t*_*.ipynb or .md chapters found"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_shows_no_failed_check(notebook):
    problems = output_problems(notebook)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_chapter_states_checked_claims_as_asserts(source):
    problems = source_problems(source)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# The checks themselves: they fail on planted cases and pass on clean ones


def _code_cell(source: str, *outputs):
    cell = nbformat.v4.new_code_cell(source)
    cell.execution_count = 1
    cell.outputs = list(outputs)
    return cell


def _printed(text: str):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def _write(tmp_path: Path, name: str, *cells) -> Path:
    path = tmp_path / name
    nbformat.write(nbformat.v4.new_notebook(cells=list(cells)), path)
    return path


def test_check_catches_a_stored_false(tmp_path):
    # what re-executing a chapter stores after a regression: the check printed False, and nbval would accept it
    path = _write(
        tmp_path, "planted_false.ipynb",
        _code_cell("errors = [3e-7, 2e-4]\nworst = max(errors)"),
        _code_cell("# NBVAL_CHECK_OUTPUT\nprint(f\"2 comparisons, all within 1e-5: {worst < 1e-5}\")",
                   _printed("2 comparisons, all within 1e-5: False\n")),
    )
    problems = claim_problems(path)
    assert any("says False" in p and "all within 1e-5: False" in p for p in problems), problems
    assert any("shows the boolean `worst < 1e-05`" in p for p in problems), problems


def test_check_catches_a_printed_comparison_that_came_out_true(tmp_path):
    # True today is no better: the day it turns False, nbval records False as the expected output
    path = _write(
        tmp_path, "planted_comparison.ipynb",
        _code_cell("# NBVAL_CHECK_OUTPUT\nerror = 4e-8\nprint('delta rule vs one GD step, to 1e-6:', error < 1e-6)",
                   _printed("delta rule vs one GD step, to 1e-6: True\n")),
    )
    problems = claim_problems(path)
    assert len(problems) == 1 and "error < 1e-06" in problems[0], problems


def test_check_catches_a_false_outside_checked_cells_when_the_source_prints_a_boolean(tmp_path):
    path = _write(
        tmp_path, "planted_unmarked.ipynb",
        _code_cell("ok = 0.3 < 0.02\nprint('rank 4 within 2%:', ok)", _printed("rank 4 within 2%: False\n")),
    )
    assert any("says False" in p for p in output_problems(path))


def test_check_catches_an_error_output(tmp_path):
    error = nbformat.v4.new_output("error", ename="AssertionError", evalue="expected 1e-5, measured 2e-4", traceback=[])
    path = _write(tmp_path, "planted_error.ipynb", _code_cell("assert 2e-4 < 1e-5, 'expected 1e-5, measured 2e-4'", error))
    problems = output_problems(path)
    assert len(problems) == 1 and "AssertionError" in problems[0], problems


def test_check_passes_a_clean_notebook(tmp_path):
    path = _write(
        tmp_path, "clean.ipynb",
        _code_cell("errors = [3e-7, 2e-7]\nworst = max(errors)\n"
                   "assert worst < 1e-5, f'expected all within 1e-5, measured worst {worst:.1e}'"),
        _code_cell("# NBVAL_CHECK_OUTPUT\nprint(f'{len(errors)} comparisons against the reference')",
                   _printed("2 comparisons against the reference\n")),
        # a False in an unchecked cell that prints no boolean is data, not a verdict
        _code_cell("print({'requires_grad': False})", _printed("{'requires_grad': False}\n")),
        _code_cell("# NBVAL_CHECK_OUTPUT\nn = 3\nprint(f\"{n} pair{'s' if n > 1 else ''}, {sum(e > 0 for e in errors)} positive\")",
                   _printed("3 pairs, 2 positive\n")),
    )
    assert claim_problems(path) == []


def test_check_catches_rounding_noise_in_a_checked_line(tmp_path):
    # the t5_02 case: a clean clone measured 3e-16 where the notebook had stored 4e-16, and nbval failed
    path = _write(
        tmp_path, "planted_noise.ipynb",
        _code_cell("row_error = 3.3e-16\nassert row_error < 1e-9, f'expected rows summing to 1, off by {row_error:.1e}'\n"
                   "# NBVAL_CHECK_OUTPUT\nprint(f'rows sum to 1 (max error {row_error:.0e})')",
                   _printed("rows sum to 1 (max error 3e-16)\n")),
        _code_cell("# NBVAL_CHECK_OUTPUT\nprint(f'rows sum to 1 (to within 1e-9); first row {[0.52, 0.04]}')",
                   _printed("rows sum to 1 (to within 1e-9); first row [0.52, 0.04]\n")),
        _code_cell("print(f'measured {3.3e-16:.0e}')", _printed("measured 3e-16\n")),  # unchecked: nbval ignores it
    )
    problems = claim_problems(path)
    assert len(problems) == 1 and "cell 0" in problems[0] and "{row_error:.0e}" in problems[0], problems


def test_check_reads_chapter_sources(tmp_path):
    source = tmp_path / "t9_99_planted.md"
    source.write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n---\n\n# Planted\n\n"
        "```{code-cell} ipython3\nerror = 1e-7\n```\n\n"
        "```{code-cell} ipython3\n# NBVAL_CHECK_OUTPUT\nprint(f\"exact to 1e-6: {bool(error < 1e-6)}\")\n```\n\n"
        "```{code-cell} ipython3\nprint(f\"not checked by nbval: {error < 1e-6}\")\n```\n"
    )
    problems = claim_problems(source)
    assert len(problems) == 1 and "cell 2" in problems[0] and "bool(error < 1e-06)" in problems[0], problems


@pytest.mark.parametrize(
    "source",
    [
        "print(bool(x))",
        "print('worst:', x < 1e-5)",
        "print(f'{(a == b).all()}')",
        "print('{}'.format(a > b))",
        "print('ok: ' + str(a > b))",
        "print(np.allclose(a, b))",
        "print(f'{math.isclose(a, b, rel_tol=1e-6)}')",
        "print(f'{not failed}')",
        "print(f'{a < 1 and b < 2}')",
        "print(f'{(a < b).item()}')",
        "ok = a < b\nprint(ok)",
        "x < 1e-5",
        "f'exact: {x < 1e-5}'",
        "(a < 1, b < 2)",
        "display(torch.equal(a, b))",
    ],
)
def test_printed_booleans_are_found(source):
    assert printed_booleans(source, _boolean_names([nbformat.v4.new_code_cell(source)]))


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("print(f'max error {err:.0e}')", ["{err:.0e}"]),
        ("print(f'{a:.2f} and {b:>9.1E}')", ["{b:>9.1E}"]),
        ("print(f\"{'tiny' if e < 1e-6 else f'{e:.0e}'}\")", ["{e:.0e}"]),
        ("f'{err:.1e}'", ["{err:.1e}"]),
        ("assert err < 1e-9, f'measured {err:.1e}'\nprint(f'{err:.3f}')", []),
        ("print(f'{n:,} rows, {share:.1%}, {x:g}')", []),
    ],
)
def test_scientific_values_are_found_only_where_shown(source, found):
    assert printed_scientific(source) == found


@pytest.mark.parametrize(
    "source",
    [
        "print(f'max error {err:.1e}')",
        "print(f'{(x > 0).sum()} positive')",
        "print(f\"{n} pair{'s' if n > 1 else ''}\")",
        "print(f'{len([v for v in xs if v > 0])} positive')",
        "assert err < 1e-5, f'expected 1e-5, measured {err:.1e}'",
        "ok = err < 1e-5",
        "print(name or 'unnamed')",
        "check_delta_step(my_delta_step)",
        "%time x = 1\nprint(x)",
    ],
)
def test_other_cells_are_not_flagged(source):
    assert printed_booleans(source, _boolean_names([nbformat.v4.new_code_cell(source)])) == []
