"""Reuse a pure function's result inside one test session: a chapter runs twice, compute once.

``make test`` executes every chapter twice: as a notebook (nbval) and as a marimo app (the app
test checks marimo's semantics: cell-local ``_names``, dependency order, outputs that render).
The heavy steps inside a chapter are lablib functions (evaluating a trained model, embedding
sentences, fitting probes) whose bodies are identical on both surfaces, so the second execution
may read the first one's result. ``@session_memo`` does that, and nothing else:

- It is **off** unless ``LABLIB_MEMO_DIR`` names a directory. Only the test suite sets it
  (``tests/conftest.py``: a fresh directory per session, for the chapter executions only, not for
  the unit tests, which always run the code). A reader running a chapter never meets it.
- The key is the function's module and name, the lablib source tree's digest and a fingerprint of
  every argument: tensors, arrays and sparse matrices by dtype, shape and bytes; modules and lablib objects by
  their type and attributes; containers element by element. An argument it cannot fingerprint
  (a function, a foreign object) means no memo: the function just runs.
- It refuses functions that are not pure, loudly: a call that changes its arguments, or draws
  from the global torch / NumPy / ``random`` generators (each seeded afresh in every process),
  raises ``RuntimeError``: skipping the call on the next execution would lose that effect.
- A hit returns a fresh copy (``torch.load`` of what the first call returned).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import random
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

__all__ = ["ENV", "session_memo", "fingerprint", "Unfingerprintable"]

ENV = "LABLIB_MEMO_DIR"
_PACKAGE = Path(__file__).resolve().parent


class Unfingerprintable(TypeError):
    """An argument the memo cannot turn into a key; the call then runs uncached."""


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """sha256 of every lablib and kernels source file (path and text): a result is never reused across code versions."""
    import importlib.util

    kernels = importlib.util.find_spec("lablib.kernels")  # kernels/ at the top level, installed as lablib.kernels
    roots = [_PACKAGE, *[Path(p) for p in (kernels.submodule_search_locations or [])]] if kernels else [_PACKAGE]
    h = hashlib.sha256()
    for root in dict.fromkeys(roots):
        for path in sorted(root.rglob("*.py")):
            h.update(f"{root.name}/{path.relative_to(root)}".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _feed(h, obj, seen: dict) -> None:
    """Feed ``obj``'s type and content into the hash ``h`` (recursively; ``seen`` breaks cycles)."""
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
        return
    if isinstance(obj, (torch.dtype, torch.device)):
        h.update(f"{type(obj).__name__}:{obj};".encode())
        return
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        h.update(f"function:{_importable_name(obj)};".encode())  # its code is fixed for the session
        return
    if id(obj) in seen:  # a shared or cyclic reference: name it by its first position
        h.update(f"ref:{seen[id(obj)][0]};".encode())
        return
    seen[id(obj)] = (len(seen), obj)  # holding obj keeps its id from being reused by a later temporary
    if isinstance(obj, torch.Tensor):
        if obj.layout != torch.strided:
            raise Unfingerprintable(f"a {obj.layout} tensor")
        t = obj.detach().resolve_conj().resolve_neg().cpu().contiguous()
        h.update(f"tensor:{t.dtype}:{tuple(t.shape)}:{obj.requires_grad};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise Unfingerprintable("a NumPy array of Python objects")
        h.update(f"ndarray:{obj.dtype.str}:{obj.shape};".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
        return
    if isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}:{len(obj)}[".encode())
        for item in obj:
            _feed(h, item, seen)
        h.update(b"]")
        return
    if isinstance(obj, dict):
        h.update(f"{type(obj).__name__}:{len(obj)}{{".encode())
        for key, value in obj.items():
            _feed(h, key, seen)
            _feed(h, value, seen)
        h.update(b"}")
        return
    if isinstance(obj, (set, frozenset)):
        h.update(f"{type(obj).__name__}:".encode())
        _feed(h, sorted(fingerprint(item) for item in obj), seen)
        return
    if type(obj).__module__.startswith("scipy.sparse"):
        csr = obj.tocsr()
        h.update(f"sparse:{csr.dtype.str}:{csr.shape};".encode())
        for part in (csr.data, csr.indices, csr.indptr):
            _feed(h, np.asarray(part), seen)
        return
    import pandas as pd

    if isinstance(obj, (pd.DataFrame, pd.Series)):
        h.update(f"{type(obj).__name__}:{obj.shape};".encode())
        _feed(h, [str(c) for c in (obj.columns if isinstance(obj, pd.DataFrame) else [obj.name])], seen)
        _feed(h, [str(d) for d in (obj.dtypes if isinstance(obj, pd.DataFrame) else [obj.dtype])], seen)
        _feed(h, pd.util.hash_pandas_object(obj, index=True).to_numpy(), seen)
        return
    kind = type(obj)
    if isinstance(obj, torch.nn.Module):
        # what a module computes: its type, mode, parameters, buffers, submodules and public attributes
        # (hooks are not read: libraries install bookkeeping hooks on a first forward)
        h.update(f"module:{kind.__module__}.{kind.__qualname__}:{obj.training}{{".encode())
        _feed(h, {name: value for name, value in vars(obj).items()
                  if name in ("_parameters", "_buffers", "_modules") or not name.startswith("_")}, seen)
        h.update(b"}")
        return
    # Objects whose behaviour is their attributes: lablib's own classes.
    if kind.__module__.split(".")[0] == "lablib":
        if not hasattr(obj, "__dict__") or hasattr(kind, "__slots__") and kind.__slots__:
            raise Unfingerprintable(f"a {kind.__qualname__} with __slots__")
        h.update(f"object:{kind.__module__}.{kind.__qualname__}{{".encode())
        _feed(h, vars(obj), seen)
        h.update(b"}")
        return
    if kind.__module__.split(".")[0] in PICKLED:
        _feed_pickle(h, obj)
        return
    raise Unfingerprintable(f"an object of type {kind.__module__}.{kind.__qualname__}")


# Foreign objects read through their pickle (equal pickles: equal objects): a model's config and
# tokenizer from transformers. A set inside may pickle in another order in another process; that
# costs a miss, never a wrong hit.
PICKLED = {"transformers", "tokenizers"}


class _Pickler(pickle.Pickler):
    """A pickler that refuses what a pickle names but does not contain: functions and classes
    defined in a notebook or app (``__main__``, marimo's cell modules), whose code may differ
    between two chapters under the same name."""

    def reducer_override(self, obj):
        if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
            _importable_name(obj)
        return NotImplemented


def _feed_pickle(h, obj) -> None:
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, protocol=4).dump(obj)
    except Unfingerprintable:
        raise
    except Exception as err:
        raise Unfingerprintable(f"{type(obj).__qualname__} does not pickle ({err})") from None
    # Hash the pickle of the object's unpickled copy, not its own: a pickle also records which equal
    # strings are one object, and a fresh tokenizer shares them differently from one read back from
    # disk (which is what a memo hit hands on), so their pickles differ while the objects are equal.
    # After one round trip both are built the same way, and pickle the same.
    canonical = io.BytesIO()
    _Pickler(canonical, protocol=4).dump(pickle.loads(buffer.getvalue()))
    h.update(f"pickle:{type(obj).__module__}.{type(obj).__qualname__}:".encode())
    h.update(canonical.getvalue())


def _importable_name(fn) -> str:
    """``module.qualname`` of a function importable by that name; Unfingerprintable for a lambda, a
    closure or a function defined in a notebook or app (``__main__``, marimo's cell modules), whose
    code two chapters may define differently under one name."""
    module, name = getattr(fn, "__module__", None) or "", getattr(fn, "__qualname__", "")
    if module.startswith("__") or module not in sys.modules or "<" in name:
        raise Unfingerprintable(f"{fn!r}, defined in {module or 'no module'}")
    return f"{module}.{name}"


def fingerprint(*args, **kwargs) -> str:
    """A hex digest of the arguments' types and contents; ``Unfingerprintable`` for what it cannot read."""
    h = hashlib.sha256()
    _feed(h, (args, kwargs), {})
    return h.hexdigest()


def _global_random_states():
    return torch.random.get_rng_state(), np.random.get_state(), random.getstate()


def _same_random_states(a, b) -> bool:
    return torch.equal(a[0], b[0]) and all(np.array_equal(x, y) for x, y in zip(a[1], b[1])) and a[2] == b[2]


def session_memo(fn):
    """Decorate a pure lablib function so that, with ``LABLIB_MEMO_DIR`` set, a repeated call with
    equal arguments reads the first call's result from that directory. Without it: a plain call."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        folder = os.environ.get(ENV)
        if not folder:
            return fn(*args, **kwargs)
        try:
            before = fingerprint(*args, **kwargs)
        except Unfingerprintable:
            return fn(*args, **kwargs)
        key = hashlib.sha256(f"{fn.__module__}.{fn.__qualname__}:{_source_digest()}:{before}".encode()).hexdigest()
        path = Path(folder) / f"{fn.__module__}.{fn.__qualname__}.{key[:32]}.pt"
        if path.is_file():
            return torch.load(path, weights_only=False)
        randomness = _global_random_states()
        result = fn(*args, **kwargs)
        if not _same_random_states(randomness, _global_random_states()):
            raise RuntimeError(f"{fn.__qualname__} draws from a global random generator: it is not pure, so "
                               f"@session_memo would skip that draw on a repeated call; remove the decorator")
        try:
            after = fingerprint(*args, **kwargs)
        except Unfingerprintable:
            after = None
        if after != before:
            raise RuntimeError(f"{fn.__qualname__} changed its arguments: it is not pure, so @session_memo "
                               f"would skip that change on a repeated call; remove the decorator")
        buffer = io.BytesIO()
        try:
            torch.save(result, buffer)
        except Exception:  # a result that does not pickle (a lambda inside): just not stored
            return result
        Path(folder).mkdir(parents=True, exist_ok=True)
        # write then rename: another process reading the same key sees the whole file or none
        with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as tmp:
            tmp.write(buffer.getvalue())
        os.replace(tmp.name, path)
        return result

    return wrapper
