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
# `make test` runs pytest on every core (pytest-xdist, --dist loadgroup). The cells of one
# notebook share one kernel and the tests of one file may share module-scoped fixtures (a model,
# a cache), so every file's tests go to one worker as a group; only the files listed here, whose
# tests are independent and each long (one chapter per test), are spread over the workers.
SPREAD_FILES = {"test_chapters.py"}
# Groups are handed out in collection order, so the longest come first: notebooks (each a whole
# chapter), then the chapter-app tests, the one-off compile check and the model-loading files.
LONG_FIRST = ("notebooks/", "test_chapters.py", "test_kernels_compile.py", "test_browser.py", "test_encoder")


def _rank(item) -> int:
    path = item.nodeid.split("::")[0]
    return next((i for i, prefix in enumerate(LONG_FIRST) if prefix in path), len(LONG_FIRST))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group tests per file for xdist (see above) and put the longest groups first.

    tryfirst: xdist reads the ``xdist_group`` marks in its own hook and must see ours."""
    for item in items:
        path = item.nodeid.split("::")[0]
        if path.rsplit("/", 1)[-1] not in SPREAD_FILES:
            item.add_marker(pytest.mark.xdist_group(path))
    items.sort(key=_rank)  # stable: the order inside a file is kept
