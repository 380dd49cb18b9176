"""lablib.memo: a repeated pure call reads the first one's result; anything impure is refused."""

import operator
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lablib import memo
from lablib.memo import Unfingerprintable, fingerprint, session_memo

CALLS = []  # the bodies record their runs here (the memo does not look at this module's globals)


@session_memo
def scaled_sum(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    CALLS.append("scaled_sum")
    return x.sum() * scale


@session_memo
def shifts_in_place(x: torch.Tensor) -> torch.Tensor:
    x += 1
    return x


@session_memo
def draws_from(generator: str) -> float:
    return {"torch": lambda: torch.rand(1).item(), "numpy": lambda: np.random.rand(),
            "random": lambda: random.random()}[generator]()


@session_memo
def module_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    CALLS.append("module_output")
    with torch.no_grad():
        return model(x)


@session_memo
def apply(fn, x):
    CALLS.append("apply")
    return fn(x)


@pytest.fixture
def memo_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(memo.ENV, str(tmp_path))
    CALLS.clear()
    return tmp_path


def test_off_without_the_variable(monkeypatch):
    monkeypatch.delenv(memo.ENV, raising=False)
    CALLS.clear()
    x = torch.arange(4.0)
    assert scaled_sum(x).item() == scaled_sum(x).item() == 6.0
    assert CALLS == ["scaled_sum", "scaled_sum"]


def test_a_repeated_call_reads_the_stored_result(memo_dir):
    x = torch.arange(4.0)
    first, second = scaled_sum(x, 2.0), scaled_sum(x.clone(), 2.0)
    assert CALLS == ["scaled_sum"], "the second call with equal arguments must not run the body"
    assert torch.equal(first, second) and second.item() == 12.0
    assert len(list(memo_dir.glob("*.pt"))) == 1


def test_any_change_in_the_arguments_misses(memo_dir):
    x = torch.arange(4.0)
    scaled_sum(x)
    y = x.clone()
    y[3] = 3.0000002  # one element, one ulp-ish: another key
    scaled_sum(y)
    scaled_sum(x, 1.0000001)  # another scalar
    scaled_sum(x.double())  # another dtype
    scaled_sum(x.reshape(2, 2))  # another shape
    assert CALLS == ["scaled_sum"] * 5


def test_a_fresh_process_reads_what_another_stored(memo_dir):
    # what make test relies on: nbval's kernel stores, the marimo app's process reads
    code = ("import torch, test_memo as t; r = t.scaled_sum(torch.arange(5.0), 3.0); "
            "print(r.item(), len(t.CALLS))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent,
                           env={**os.environ, memo.ENV: str(memo_dir)}, check=True).stdout.split()
            for _ in range(2)]
    assert runs == [["30.0", "1"], ["30.0", "0"]], runs


def test_refuses_a_function_that_changes_its_arguments(memo_dir):
    with pytest.raises(RuntimeError, match="changed its arguments"):
        shifts_in_place(torch.zeros(3))
    assert not list(memo_dir.glob("*.pt"))


@pytest.mark.parametrize("generator", ["torch", "numpy", "random"])
def test_refuses_a_function_that_draws_from_a_global_generator(memo_dir, generator):
    with pytest.raises(RuntimeError, match="global random generator"):
        draws_from(generator)
    assert not list(memo_dir.glob("*.pt"))


def test_modules_are_read_by_their_parameters_and_mode_not_their_hooks(memo_dir):
    torch.manual_seed(0)
    model, x = nn.Linear(3, 2), torch.randn(4, 3)
    module_output(model, x)
    model.register_forward_pre_hook(lambda m, a: None)  # bookkeeping a library may add: same key
    module_output(model, x)
    assert CALLS == ["module_output"]
    with torch.no_grad():
        model.weight[0, 0] += 1e-6
    module_output(model, x)  # another weight
    model.eval()
    module_output(model, x)  # another mode
    assert CALLS == ["module_output"] * 3


def test_arguments_it_cannot_read_run_uncached(memo_dir):
    # a lambda's code is not in its name, so it cannot be a key: the call just runs, every time
    assert apply(lambda v: v + 1, 1) == apply(lambda v: v + 2, 0) == 2
    assert CALLS == ["apply", "apply"]
    assert not list(memo_dir.glob("*.pt"))
    # an importable function is named by module and name
    assert apply(operator.neg, 3) == apply(operator.neg, 3) == -3
    assert CALLS == ["apply"] * 3


def test_fingerprints_are_contents_not_identities():
    a = {"w": torch.ones(2, 2), "layers": [nn.Linear(2, 2) for _ in range(3)]}
    b = {"w": a["w"].clone(), "layers": [nn.Linear(2, 2) for _ in range(3)]}
    for la, lb in zip(a["layers"], b["layers"]):
        lb.load_state_dict(la.state_dict())
    assert fingerprint(a) == fingerprint(b)
    # many temporaries made and freed while hashing must not alias later objects (ids get reused)
    assert len({fingerprint(a) for _ in range(20)}) == 1
    b["layers"][2].bias.data[1] += 1
    assert fingerprint(a) != fingerprint(b)
    shared = torch.zeros(2)
    assert fingerprint([shared, shared]) != fingerprint([shared, torch.ones(2)])


def test_functions_defined_in_a_notebook_are_refused():
    namespace = {"__name__": "__main__"}
    exec("def helper(x):\n    return x\n", namespace)
    with pytest.raises(Unfingerprintable, match="__main__"):
        fingerprint(namespace["helper"])
    with pytest.raises(Unfingerprintable):
        fingerprint(object())


def test_a_tokenizer_read_back_from_disk_has_the_fresh_one_s_fingerprint():
    """A memo hit hands on an unpickled copy; its pickle shares equal strings differently from a fresh
    tokenizer's, and the key must not depend on that (else the next memoized call that takes it misses)."""
    import pickle

    from lablib.encoder.model import load_encoder
    from lablib.memo import fingerprint

    tokenizer, _ = load_encoder()
    read_back = pickle.loads(pickle.dumps(tokenizer))
    assert fingerprint(read_back) == fingerprint(tokenizer)
