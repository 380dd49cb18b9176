"""lablib.ops: every backend of every op computes the reference's function; "auto" picks as documented.

The truth is each op's "recurrent" backend (the references in lablib.attention and
lablib.koopman.recurrence) evaluated in float64 on the same fp32-valued inputs; every other
backend runs in fp32 and must agree to 1e-5 (scaled by each tensor's largest entry, see
lablib.testing.max_scaled_error) in outputs, final states and the gradients of every input,
initial state and gates included, on a length that is not a multiple of the chunk size.
Triton runs under the interpreter on CPU tensors (set before lablib.kernels is imported).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lablib.attention.vectorized as vectorized  # noqa: E402
from lablib import ops  # noqa: E402
from lablib.attention.linear import LinearAttentionState  # noqa: E402
from lablib.testing import assert_agree  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5
CHUNK = 16
T_ODD = 37  # two full chunks of 16 and a ragged one of 5

# op case -> which op, what it needs. "gla_strong" has near-resets (log gate -1000) every 7 steps,
# so gla_vectorized must take its exact (segment-sum) path; "gla" has GLA's mild gates (factored path).
CASES = ["linear", "linear_normalized", "scalar_gated", "gla", "gla_strong", "delta", "gated_delta", "scan", "scan_complex"]


def make_leaves(case, T, *, B=2, H=2, d_k=8, d_v=6, seed=0, with_state=True, device="cpu"):
    """fp32 leaf tensors (requires_grad) for one case, drawn on the CPU and moved to ``device``."""
    g = torch.Generator().manual_seed(seed)
    if case.startswith("scan"):
        shape = (B, T, d_k)
        if case == "scan_complex":
            lam = torch.polar(torch.rand(shape, generator=g) * 0.3 + 0.7, torch.randn(shape, generator=g))
            x = torch.randn(shape, generator=g, dtype=torch.complex64)
            h0 = torch.randn(B, d_k, generator=g, dtype=torch.complex64)
        else:
            lam = 2 * torch.rand(shape, generator=g) - 1  # signs and zeros-ish included
            x, h0 = torch.randn(shape, generator=g), torch.randn(B, d_k, generator=g)
        leaves = dict(lam=lam, x=x) | (dict(initial_state=h0) if with_state else {})
        return {k: t.to(device).requires_grad_() for k, t in leaves.items()}
    leaves = dict(q=torch.randn(B, H, T, d_k, generator=g), k=torch.randn(B, H, T, d_k, generator=g),
                  v=torch.randn(B, H, T, d_v, generator=g))
    if case in ("scalar_gated", "gated_delta"):
        leaves["log_decay"] = F.logsigmoid(2 * torch.randn(B, H, T, generator=g) + 3)
    if case == "gla":
        leaves["log_alpha"] = F.logsigmoid(torch.randn(B, H, T, d_k, generator=g)) / 4
    if case == "gla_strong":
        la = F.logsigmoid(2 * torch.randn(B, H, T, d_k, generator=g) + 3)
        la[:, :, ::7] = -1e3
        leaves["log_alpha"] = la
    if case in ("delta", "gated_delta"):
        leaves["beta"] = 2 * torch.rand(B, H, T, generator=g)  # negative eigenvalues exercised
    if with_state:
        if case == "linear_normalized":
            leaves["kv"] = torch.rand(B, H, d_k, d_v, generator=g)
            leaves["k_sum"] = torch.rand(B, H, d_k, generator=g) + 1.0
        else:
            leaves["initial_state"] = 0.5 * torch.randn(B, H, d_k, d_v, generator=g)
    return {k: t.to(device).requires_grad_() for k, t in leaves.items()}


def call(case, leaves, backend, chunk_size=CHUNK):
    """Run the case's op with output_final_state=True; returns the OpResult."""
    L = dict(leaves)
    common = dict(output_final_state=True, backend=backend, chunk_size=chunk_size)
    if case.startswith("scan"):
        return ops.diagonal_scan(L.pop("lam"), L.pop("x"), **L, **common)
    q, k, v = L.pop("q"), L.pop("k"), L.pop("v")
    if case == "linear":
        return ops.linear_attention(q, k, v, **L, **common)
    if case == "linear_normalized":
        state = LinearAttentionState(L.pop("kv"), L.pop("k_sum")) if "kv" in L else None
        return ops.linear_attention(q, k, v, feature_map="elu+1", normalize=True, initial_state=state, **common)
    if case == "scalar_gated":
        return ops.scalar_gated_attention(q, k, v, L.pop("log_decay"), **L, **common)
    if case.startswith("gla"):
        return ops.gla(q, k, v, L.pop("log_alpha"), **L, **common)
    return ops.delta_rule(q, k, v, L.pop("beta"), **L, **common)


def widen(leaves):
    wide = {}
    for name, t in leaves.items():
        t = t.detach()
        wide[name] = (t.to(torch.complex128) if t.is_complex() else t.double()).requires_grad_()
    return wide


def outputs_and_grads(case, leaves, backend, chunk_size=CHUNK):
    """(out, final state tensors, {name: grad}) for a fixed random projection of out and final state."""
    r = call(case, leaves, backend, chunk_size)
    finals = list(r.final_state) if isinstance(r.final_state, tuple) else [r.final_state]
    g = torch.Generator().manual_seed(123)
    loss = 0
    for t in [r.out, *finals]:
        w = torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.device)
        loss = loss + (t.to(torch.complex128).real * w).sum() if t.is_complex() else loss + (t.double() * w).sum()
    loss.backward()
    return r, finals, {name: t.grad for name, t in leaves.items()}


def assert_case_agrees(case, backend, T, with_state, chunk_size=CHUNK, tol=TOL, **shape):
    leaves = make_leaves(case, T, with_state=with_state, **shape)
    truth, truth_finals, truth_grads = outputs_and_grads(case, widen(leaves), "recurrent")
    got, finals, grads = outputs_and_grads(case, leaves, backend, chunk_size)
    assert got.backend == backend
    assert got.out.dtype == leaves["v" if "v" in leaves else "x"].dtype
    assert_agree(got.out, truth.out, tol, f"{case}/{backend} outputs")
    for i, (a, b) in enumerate(zip(finals, truth_finals)):
        assert_agree(a, b, tol, f"{case}/{backend} final state [{i}]")
    for name in leaves:
        assert grads[name] is not None, f"{case}/{backend}: no gradient reached {name}"
        assert_agree(grads[name], truth_grads[name], tol, f"{case}/{backend} d{name}")


# ----------------------------------------------------------------------------- agreement


def pytorch_backends(case):
    return [b for b in ops.BACKENDS["diagonal_scan" if case.startswith("scan") else "gla"]
            if b not in ("auto", "triton", "recurrent")]


@pytest.mark.parametrize("with_state", [False, True], ids=["no_state", "initial_state"])
@pytest.mark.parametrize("case,backend", [(c, b) for c in CASES for b in pytorch_backends(c)])
def test_pytorch_backends_agree_with_the_reference(case, backend, with_state):
    assert_case_agrees(case, backend, T_ODD, with_state)


@pytest.mark.parametrize("case", ["linear", "scalar_gated", "gla", "gated_delta", "scan"])
def test_vectorized_short_sequences(case):
    """T = 1 and T < chunk: the vectorized forms shrink the chunk to T (no padding work) and stay exact."""
    for T in (1, 5):
        assert_case_agrees(case, "vectorized", T, with_state=True, chunk_size=64)


@pytest.mark.parametrize("case", ["scalar_gated", "gla", "gla_strong"])
def test_vectorized_grouped_chunk_states(case, monkeypatch):
    """Past DIRECT_CHUNKS chunks, the chunk-level recurrence is solved by groups (recursively): same result."""
    monkeypatch.setattr(vectorized, "DIRECT_CHUNKS", 2)
    assert_case_agrees(case, "vectorized", T_ODD, with_state=True, chunk_size=4)  # 10 chunks: groups of groups


def test_vectorized_strong_decay_stays_finite():
    """Gates of -30 per step (exp(+30 * 16) would overflow) give finite outputs equal to the recurrence."""
    leaves = make_leaves("gla_strong", T_ODD)
    leaves["log_alpha"] = torch.full_like(leaves["log_alpha"], -30.0).requires_grad_()
    r = call("gla_strong", leaves, "vectorized")
    truth = call("gla_strong", widen(leaves), "recurrent")
    assert torch.isfinite(r.out).all()
    assert_agree(r.out, truth.out, TOL, "gla under strong decay")


def kernel_device():
    """CPU tensors under the interpreter (TRITON_INTERPRET=1, the default here); CUDA ones if compiled."""
    from lablib.kernels.linear_attention import INTERPRETED

    if INTERPRETED:
        return "cpu"
    if not torch.cuda.is_available():
        pytest.skip("TRITON_INTERPRET=0 and no CUDA device: nothing can run the kernels")
    return "cuda"


@pytest.mark.parametrize("case", ["linear", "linear_normalized", "scalar_gated", "gla", "gated_delta", "scan"])
def test_triton_backend_agrees_with_the_reference(case):
    """The Triton kernels through the op (interpreted on a CPU): outputs, final states, gradients."""
    shape = dict(B=1, H=1, d_k=16, d_v=16, device=kernel_device())  # small: the interpreter is slow
    assert_case_agrees(case, "triton", 19, with_state=True, **shape)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CASES)
def test_auto_on_cuda_runs_triton(case):
    r = call(case, make_leaves(case, 33, d_k=16, d_v=16, device="cuda"), "auto")
    assert r.backend == "triton"


def test_state_carries_over_between_calls():
    """Two calls chained through final_state -> initial_state equal one call on the whole sequence."""
    leaves = {k: t.detach() for k, t in make_leaves("gated_delta", T_ODD, with_state=False).items()}
    whole = ops.delta_rule(leaves["q"], leaves["k"], leaves["v"], leaves["beta"], log_decay=leaves["log_decay"],
                           output_final_state=True)
    cut = 20
    first = ops.delta_rule(*(leaves[n][:, :, :cut] for n in ("q", "k", "v", "beta")),
                           log_decay=leaves["log_decay"][:, :, :cut], output_final_state=True)
    second = ops.delta_rule(*(leaves[n][:, :, cut:] for n in ("q", "k", "v", "beta")),
                            log_decay=leaves["log_decay"][:, :, cut:], initial_state=first.final_state,
                            output_final_state=True)
    assert_agree(torch.cat([first.out, second.out], dim=2), whole.out, TOL, "chained outputs")
    assert_agree(second.final_state, whole.final_state, TOL, "chained final state")


# ----------------------------------------------------------------------------- backend selection


@pytest.mark.parametrize("case", CASES)
def test_auto_on_cpu_runs_the_vectorized_form(case):
    r = call(case, make_leaves(case, 9), "auto")
    assert r.backend == "vectorized"
    op = "diagonal_scan" if case.startswith("scan") else "gla"
    assert ops.select_backend(op, "cpu") == "vectorized"


def test_auto_on_cuda_would_choose_triton_where_the_kernel_fits():
    """select_backend needs no tensors, so its CUDA branch is checked on any machine (triton is installed here)."""
    cuda = torch.device("cuda")
    for op in ops.OPS:
        assert ops.select_backend(op, cuda) == "triton", op
        assert ops.select_backend(op, cuda, dtype=torch.bfloat16) == "triton", op
        assert ops.select_backend(op, cuda, dtype=torch.float64) == "vectorized", op  # no float64 kernels
    assert ops.select_backend("gla", cuda, d_k=128) == "triton"
    assert ops.select_backend("gla", cuda, d_k=512) == "triton"  # four key blocks of 128
    assert ops.select_backend("gla", cuda, d_k=513) == "vectorized"  # wider than the kernels take
    with pytest.raises(ValueError, match=r"backend='triton': the delta_rule kernel takes key dims D_k up to 512; got D_k = 513"):
        ops.select_backend("delta_rule", cuda, "triton", d_k=513)
    assert ops.select_backend("diagonal_scan", cuda, d_k=4096) == "triton"  # the scan has no key dim
    assert ops.select_backend("diagonal_scan", cuda, dtype=torch.complex64) == "triton"
    assert ops.select_backend("diagonal_scan", cuda, dtype=torch.complex128) == "vectorized"
    assert ops.select_backend("gla", cuda, "chunkwise") == "chunkwise"  # a named backend is kept


def test_triton_on_cpu_without_the_interpreter_is_refused_clearly(monkeypatch):
    """Each kernel module records at import whether Triton's interpreter was on (INTERPRETED); the op reads it.

    Here the flag is set as an import without TRITON_INTERPRET=1 would have left it."""
    import lablib.kernels.gla as gla_kernels

    monkeypatch.setattr(gla_kernels, "INTERPRETED", False)
    q = torch.randn(1, 1, 16, 16)
    with pytest.raises(RuntimeError, match="set TRITON_INTERPRET=1 in the environment before importing triton"):
        ops.gla(q, q, q, torch.zeros_like(q), backend="triton")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        ops.select_backend("gla", "cpu", "triton")
    assert ops.select_backend("gla", "cpu") == "vectorized"  # auto never needs the interpreter


# ----------------------------------------------------------------------------- results and errors


def test_result_names_its_parts():
    leaves = {k: t.detach() for k, t in make_leaves("scalar_gated", 9, with_state=False).items()}
    r = ops.scalar_gated_attention(leaves["q"], leaves["k"], leaves["v"], leaves["log_decay"])
    out, final_state, backend = r
    assert out is r.out and final_state is None and backend == r.backend == "vectorized"
    assert out.shape == (2, 2, 9, 6)


def test_bad_inputs_raise_clear_errors():
    q = torch.randn(1, 2, 9, 8)
    gate = torch.zeros(1, 2, 9)
    with pytest.raises(ValueError, match=r"unknown backend 'fast'.*choose one of"):
        ops.linear_attention(q, q, q, backend="fast")
    with pytest.raises(ValueError, match="unknown backend 'chunkwise' for diagonal_scan"):
        ops.diagonal_scan(torch.rand(8), torch.randn(9, 8), backend="chunkwise")
    with pytest.raises(ValueError, match="unknown op"):
        ops.select_backend("softmax", "cpu")
    with pytest.raises(ValueError, match=r"\(B, H, T, D\); got shape \(2, 9, 8\)"):
        ops.gla(q[0], q[0], q[0], q[0])
    with pytest.raises(ValueError, match=r"log_decay must have shape .*got shape \(1, 2, 8\)"):
        ops.scalar_gated_attention(q, q, q, gate[:, :, :8])
    with pytest.raises(ValueError, match=r"log_alpha must have shape \(B, H, T, D_k\)"):
        ops.gla(q, q, q, gate)
    with pytest.raises(ValueError, match="floating-point"):
        ops.delta_rule(q.long(), q.long(), q.long(), gate)
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 2\]"):
        ops.delta_rule(q, q, q, gate + 3)
    with pytest.raises(ValueError, match=r"initial_state must have shape \(B, H, D_k, D_v\) = \(1, 2, 8, 8\); got shape \(1, 2, 8, 7\)"):
        ops.scalar_gated_attention(q, q, q, gate, initial_state=torch.zeros(1, 2, 8, 7))
    with pytest.raises(TypeError, match="LinearAttentionState"):
        ops.linear_attention(q, q, q, normalize=True, initial_state=torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"lam must have shape \(N,\) = \(8,\)"):
        ops.diagonal_scan(torch.rand(7), torch.randn(9, 8))
    with pytest.raises(ValueError, match="must be <= 0"):
        ops.gla(q, q, q, torch.ones_like(q))


def test_bench_prints_and_writes_a_table_beside_fla_and_sdpa(capsys, tmp_path):
    out = tmp_path / "ops.md"
    ops.main(["--bench", "--T", "64", "--H", "1", "--D", "8", "--both", "--out", str(out)])
    printed = capsys.readouterr().out
    written = out.read_text()
    assert "forward + backward" in written and "machine: " in written and "python -m lablib.ops --bench" in written
    for row in ("linear_attention", "gla", "gated delta_rule", "diagonal_scan", "softmax (SDPA, causal)"):
        lines = [line for line in printed.splitlines() if line.startswith(f"| {row} |")]
        assert len(lines) == 2, f"expected a forward and a backward row for {row}:\n{printed}"
    rows = [line.split("|") for line in written.splitlines() if line.startswith("| delta_rule |")]
    assert rows and all(r[-2].strip() == "delta_rule_chunkwise" and r[-3].strip().endswith("x") for r in rows), written
    with pytest.raises(ValueError, match="multiple of 64"):
        ops.main(["--bench", "--T", "40"])
