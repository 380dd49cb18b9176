"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run the test on one torch thread (steady timings on a 2-core machine; the numbers a test
    measures do not depend on the core count), restoring the previous setting afterwards.
    Use it file-wide with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def require_peer(module: str, package: str | None = None):
    """Import a peer implementation a test compares with (PyDMD, concept-erasure, fla-core, ...).

    The peers come with the ``[dev]`` extra (``make`` installs it), so a missing one is a broken
    environment, not a reason to skip: the test fails, saying what to install. ``package`` is the
    name to pip-install when it differs from the module's.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        pytest.fail(
            f"peer {module!r} is not importable ({err}): install the dev extra, which brings "
            f"{package or module}: pip install -e .[dev] (or make venv)",
            pytrace=False,
        )


# --- Parallel runs -------------------------------------------------------------------------
# `make test` runs pytest on every core (pytest-xdist, `-n auto --dist loadgroup`). The cells of
# one notebook share one kernel and the tests of one file may share module-scoped fixtures (a
# model, a cache), so every file's tests go to one worker as one unit of work; only the files
# listed here, whose tests are independent and each long (one chapter per test), are spread.
# (xdist's own loadgroup reads `xdist_group` marks by renaming node ids, which does not take
# effect with pytest 9 here, so the grouping is done by the scheduler below instead.)
SPREAD_FILES = {"test_chapters.py"}
# Units are handed out in collection order, so the longest come first (longest-processing-time
# first keeps both workers busy to the end): the sm_90 compile check (~3.5 minutes cold, one unit),
# the notebooks (each a whole chapter), the chapter-app tests, then the other long files.
LONG_FIRST = ("test_kernels_compile.py", "notebooks/", "test_chapters.py", "test_bench", "test_browser.py",
              "test_kernel_", "test_encoder")


def _file_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


def _rank(item) -> int:
    path = _file_of(item.nodeid)
    return next((i for i, prefix in enumerate(LONG_FIRST) if prefix in path), len(LONG_FIRST))


def pytest_collection_modifyitems(config, items):
    """Longest units first (stable sort: the order inside a file is kept)."""
    items.sort(key=_rank)


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # xdist comes with the dev extra; without it the suite runs serially
    LoadScopeScheduling = None

if LoadScopeScheduling is not None:

    class PerFileScheduling(LoadScopeScheduling):
        """One unit of work per file (a notebook, a test module), except SPREAD_FILES, whose
        tests are units of their own."""

        def _split_scope(self, nodeid: str) -> str:
            path = _file_of(nodeid)
            return nodeid if path.rsplit("/", 1)[-1] in SPREAD_FILES else path

    def pytest_xdist_make_scheduler(config, log):
        if config.getvalue("dist") == "loadgroup":
            # xdist's default --loadscope-reorder sorts units by their number of tests, which sent the
            # long units with few tests (the compile check: 4 tests, 213 s cold; each chapter app: 1)
            # to the end of the run, where one worker ran them alone: keep LONG_FIRST's order instead.
            config.option.loadscopereorder = False
            return PerFileScheduling(config, log)
        return None


# --- One computation for a chapter's two executions ------------------------------------------
# Every chapter runs twice: as a notebook (nbval) and as a marimo app (test_chapters.py). Their
# heavy steps are lablib functions marked @lablib.memo.session_memo (pure, checked at each call),
# which reuse a result from a directory named by LABLIB_MEMO_DIR. The suite makes one fresh
# directory per run (the controller makes it; xdist workers inherit it) and names it only to the
# chapter executions: nbval's kernels and the app runs. The unit tests always run the code.
_CHAPTER_MEMO = "LABLIB_TEST_CHAPTER_MEMO"


def pytest_configure(config):
    import os
    import tempfile

    if not hasattr(config, "workerinput") and _CHAPTER_MEMO not in os.environ:
        os.environ[_CHAPTER_MEMO] = tempfile.mkdtemp(prefix="lablib-chapter-memo-")
        config._lablib_chapter_memo = os.environ[_CHAPTER_MEMO]
    config.pluginmanager.register(_NotebookMemo(), "lablib-notebook-memo")


def pytest_unconfigure(config):
    import shutil

    folder = getattr(config, "_lablib_chapter_memo", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def chapter_memo_env() -> dict:
    """What a chapter's execution adds to its environment: lablib's memo directory (none outside the suite)."""
    import os

    from lablib import memo

    return {memo.ENV: os.environ[_CHAPTER_MEMO]} if _CHAPTER_MEMO in os.environ else {}


class _NotebookMemo:
    """nbval starts a notebook's kernel while its first cell is set up: name the memo directory to it
    then. (A plugin, not a hook of this file: this conftest's hooks see only the items under tests/.)"""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        import os

        added = chapter_memo_env() if item.nodeid.startswith("notebooks/") else {}
        os.environ.update(added)
        try:
            yield
        finally:
            for name in added:
                os.environ.pop(name, None)
