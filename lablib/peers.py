"""Peer implementations lablib is checked and timed against, loaded without their heavy imports.

flash-linear-attention (the ``fla-core`` package, pinned in the dev extra) ships a plain-PyTorch ``naive`` reference beside each of its Triton ops
(``fla/ops/<op>/naive.py``). ``import fla`` would run the package's ``__init__``, which imports
every Triton kernel and the model zoo (transformers), takes ~10 s and warns that Triton does not
run on a CPU; the naive modules need only torch and einops, so ``fla_naive(op)`` loads the one
file, found through ``importlib.util.find_spec("fla")`` (which locates a package without running it).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

__all__ = ["fla_naive"]


@functools.lru_cache(maxsize=None)
def fla_naive(op: str) -> ModuleType:
    """fla-core's ``fla/ops/<op>/naive.py`` as a module, e.g. ``fla_naive("delta_rule").delta_rule_chunkwise``.

    Raises ImportError (saying what to install) when fla-core or einops is missing, and
    FileNotFoundError when this fla-core has no naive reference for ``op``.
    """
    if importlib.util.find_spec("einops") is None:  # what the naive modules import besides torch
        raise ImportError("fla's naive references need einops: pip install -e .[dev] (or pip install einops)")
    spec = importlib.util.find_spec("fla")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("flash-linear-attention is not installed; it comes with the dev extra "
                          "(fla-core): pip install -e .[dev] (or make venv)")
    path = Path(next(iter(spec.submodule_search_locations))) / "ops" / op / "naive.py"
    if not path.is_file():
        raise FileNotFoundError(f"fla-core has no {path} (a different version than pyproject.toml pins?)")
    module_spec = importlib.util.spec_from_file_location(f"fla_naive_{op}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module
