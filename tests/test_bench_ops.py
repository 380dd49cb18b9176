"""Unit tests of the benchmark's pieces: FLOP and byte models, ``--op`` parsing, and the fla adapters.

fla is not installed here (and needs CUDA), so its adapters are exercised against fake
``fla.ops.*`` modules written in PyTorch on top of the lablib references, in fla's (B, T, H, D)
layout and with the keyword names of several fla versions. Our Triton kernels are left out of
those runs (they have their own tests, and the smoke run in test_bench.py times them).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import inspect  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lablib.attention as la  # noqa: E402
from lablib import bench  # noqa: E402

# ------------------------------------------------------------------------------------ cost model


def test_flops_linear_and_softmax():
    B, H, T, Dk, Dv, C = 2, 3, 256, 32, 16, 64
    lin = 2 * B * H * (T * C * Dk + T * C * Dv + 2 * T * Dk * Dv)
    assert bench.flops("linear", "fwd", B, H, T, Dk, Dv, C) == lin
    assert bench.flops("linear", "fwd+bwd", B, H, T, Dk, Dv, C) == 3 * lin
    assert bench.flops("softmax", "fwd", B, H, T, Dk, Dv, None) == B * H * T * T * (Dk + Dv)


def test_flops_gated_ops_add_their_elementwise_work():
    B, H, T, Dk, Dv, C = 2, 3, 256, 32, 16, 64
    lin = bench.flops("linear", "fwd", B, H, T, Dk, Dv, C)
    assert bench.flops("scalar_gated", "fwd", B, H, T, Dk, Dv, C) == lin + B * H * (3 * T * C + 2 * T * Dk + T * Dk * Dv / C)
    assert bench.flops("gla", "fwd", B, H, T, Dk, Dv, C) == lin + B * H * (6 * T * Dk + T * Dk * Dv / C)
    for op in ("scalar_gated", "gla"):
        assert bench.flops(op, "fwd+bwd", B, H, T, Dk, Dv, C) == 3 * bench.flops(op, "fwd", B, H, T, Dk, Dv, C)


def test_flops_delta_rule_by_its_matrix_products():
    B, H, T, Dk, Dv, C = 1, 2, 128, 32, 16, 64
    n = T // C  # chunks
    per_chunk = (
        2 * C * C * Dk  # K K^T
        + C**3 / 3  # (I + L)^{-1} diag(beta), a triangular inverse
        + 2 * C * C * Dk + 2 * C * C * Dv  # W = T K, U = T V
        + 2 * C * Dk * Dv  # R = U - W S
        + 2 * C * C * Dk + 2 * C * C * Dv + 2 * C * Dk * Dv  # Q K^T, (scores) R, Q S
        + 2 * C * Dk * Dv  # K^T R, the state update
    )
    delta = B * H * n * per_chunk
    assert bench.flops("delta", "fwd", B, H, T, Dk, Dv, C) == pytest.approx(delta, rel=1e-12)
    gated = delta + B * H * (4 * T * C + 3 * T * Dk + T * Dk * Dv / C)
    assert bench.flops("gated_delta", "fwd", B, H, T, Dk, Dv, C) == pytest.approx(gated, rel=1e-12)
    assert bench.flops("delta", "fwd+bwd", B, H, T, Dk, Dv, C) == pytest.approx(3 * delta, rel=1e-12)
    # a tiny case by hand: B = H = 1, T = C = D = 16
    assert bench.flops("delta", "fwd", 1, 1, 16, 16, 16, 16) == pytest.approx(2 * 16 * 8 * 256 + 16**3 / 3)


def test_flops_unknown_kind():
    with pytest.raises(ValueError, match="unknown kind"):
        bench.flops("mamba", "fwd", 1, 1, 64, 16, 16, 16)


def test_bytes_count_the_gates_as_fp32():
    B, H, T, Dk, Dv = 2, 3, 64, 32, 16
    qkvo = B * H * T * (2 * Dk + 2 * Dv) * 2  # bf16
    assert bench.nbytes("fwd", B, H, T, Dk, Dv, 2) == qkvo
    assert bench.nbytes("fwd", B, H, T, Dk, Dv, 2, "scalar_gated") == qkvo + B * H * T * 4
    assert bench.nbytes("fwd", B, H, T, Dk, Dv, 2, "gla") == qkvo + B * H * T * Dk * 4
    assert bench.nbytes("fwd", B, H, T, Dk, Dv, 2, "gated_delta") == qkvo + B * H * T * 2 * 4
    both = B * H * T * (6 * Dk + 5 * Dv) * 2
    assert bench.nbytes("fwd+bwd", B, H, T, Dk, Dv, 2, "delta") == both + 3 * B * H * T * 4  # beta read twice, d beta written


# ------------------------------------------------------------------------------------ command line


def _args(*argv):
    return bench._parser().parse_args(["attention", *argv])


def test_op_flag():
    assert _args().op == list(bench.OPS)  # default: every op
    assert _args("--op", "all").op == list(bench.OPS)
    assert _args("--op", "delta,gla").op == ["gla", "delta"]  # table order, not argument order
    assert _args("--op", "gated_delta").op == ["gated_delta"]
    assert _args("--op", "linear,linear").op == ["linear"]
    for bad in ("softmax", "gla,mamba", ","):
        with pytest.raises(SystemExit):
            _args("--op", bad)
    cfg = bench._config(_args("--smoke", "--op", "scalar_gated"))
    assert cfg.ops == ["scalar_gated"] and cfg.device.type == "cpu" and cfg.dtype == torch.float32
    assert "--op scalar_gated" in bench._header(cfg)[-1]


def test_implementations_per_op():
    assert bench.IMPLEMENTATIONS == (bench.REF, bench.TRITON, bench.SDPA, "fla chunk_linear_attn")
    assert bench.implementations("gated_delta")[-1] == "fla chunk_gated_delta_rule"
    with pytest.raises(ValueError):
        bench.implementations("mamba")


# ------------------------------------------------------------------------------------ fla adapters


def _params(fn):
    return inspect.signature(fn).parameters


def test_fla_kwargs_follow_the_installed_signature():
    def linear_new(q, k, v, scale=None, initial_state=None, output_final_state=False, normalize=True, cu_seqlens=None, **kw):
        pass

    def linear_old(q, k, v, scale=None, initial_state=None, output_final_state=False, normalize=True, head_first=True):
        pass

    def linear_no_normalize(q, k, v, scale=None, initial_state=None, output_final_state=False):
        pass

    def delta_no_scale(q, k, v, beta, BT, initial_state=None, output_final_state=False):
        pass

    def delta_qk(q, k, v, beta, scale=None, use_qk_l2norm_in_kernel=False, head_first=False):
        pass

    def delta_split(q, k, v, g, beta, scale=None, use_q_l2norm_in_kernel=False, use_k_l2norm_in_kernel=False):
        pass

    def delta_plain(q, k, v, beta, scale=None, initial_state=None, output_final_state=False):
        pass

    def gla_without_g(q, k, v, gk, scale=None):
        pass

    assert bench._fla_kwargs("linear", _params(linear_new)) == (dict(scale=1.0, normalize=False), "")
    assert bench._fla_kwargs("linear", _params(linear_old))[0] == dict(scale=1.0, normalize=False, head_first=False)
    with pytest.raises(bench.NotAvailable, match="normalize=False"):
        bench._fla_kwargs("linear", _params(linear_no_normalize))
    with pytest.raises(bench.NotAvailable, match="no scale argument"):
        bench._fla_kwargs("delta", _params(delta_no_scale))
    kw, note = bench._fla_kwargs("delta", _params(delta_qk))
    assert kw == dict(scale=1.0, use_qk_l2norm_in_kernel=True, head_first=False) and "q and k" in note
    kw, note = bench._fla_kwargs("gated_delta", _params(delta_split))
    assert kw == dict(scale=1.0, use_k_l2norm_in_kernel=True, use_q_l2norm_in_kernel=False) and "as lablib" in note
    kw, note = bench._fla_kwargs("delta", _params(delta_plain))
    assert kw == dict(scale=1.0) and "no in-kernel L2 norm" in note
    with pytest.raises(bench.NotAvailable, match="no 'g' argument"):
        bench._fla_kwargs("gla", _params(gla_without_g))
    with pytest.raises(bench.NotAvailable, match="no 'beta' argument"):
        bench._fla_kwargs("delta", _params(gla_without_g))


def _bhtd(x):
    """fla's (B, T, H, ...) -> lablib's (B, H, T, ...)."""
    return x.transpose(1, 2)


def _fla_out(o):
    return o.transpose(1, 2), None  # fla returns (o, final_state), o in (B, T, H, D)


def _scaled_q(q, scale):
    return _bhtd(q) * (q.shape[-1] ** -0.5 if scale is None else scale)


def chunk_linear_attn(q, k, v, scale=None, initial_state=None, output_final_state=False, normalize=True, head_first=False):
    assert head_first is False
    o = la.linear_attention_chunkwise(_scaled_q(q, scale), _bhtd(k), _bhtd(v), feature_map="identity", normalize=normalize)
    return _fla_out(o)


def chunk_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None, output_final_state=False, **kwargs):
    if "head_first" in kwargs:  # as recent fla versions do
        raise DeprecationWarning("head_first has been removed")
    return _fla_out(la.scalar_gated_chunkwise(_scaled_q(q, scale), _bhtd(k), _bhtd(v), _bhtd(g).to(q.dtype)))


def chunk_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None, head_first=False):
    assert head_first is False
    return _fla_out(la.gla_chunkwise(_scaled_q(q, scale), _bhtd(k), _bhtd(v), _bhtd(g).to(q.dtype)))


def chunk_delta_rule(q, k, v, beta, scale=None, initial_state=None, output_final_state=False,
                     use_qk_l2norm_in_kernel=False, cu_seqlens=None, head_first=False):
    if use_qk_l2norm_in_kernel:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    o = la.delta_rule_chunkwise(_scaled_q(q, scale), _bhtd(k), _bhtd(v), _bhtd(beta), normalize_keys=False)
    return _fla_out(o)


def chunk_gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
                           use_q_l2norm_in_kernel=False, use_k_l2norm_in_kernel=False, cu_seqlens=None):
    if use_q_l2norm_in_kernel:
        q = F.normalize(q, dim=-1)
    o = la.delta_rule_chunkwise(_scaled_q(q, scale), _bhtd(k), _bhtd(v), _bhtd(beta), log_decay=_bhtd(g).to(q.dtype),
                                normalize_keys=use_k_l2norm_in_kernel)
    return _fla_out(o)


FAKES = {
    "fla.ops.linear_attn": chunk_linear_attn,
    "fla.ops.simple_gla": chunk_simple_gla,
    "fla.ops.gla": chunk_gla,
    "fla.ops.delta_rule": chunk_delta_rule,
    "fla.ops.gated_delta_rule": chunk_gated_delta_rule,
}


@pytest.fixture
def fake_fla(monkeypatch):
    """Fake fla modules in sys.modules, runnable on the CPU; our Triton kernels left out of the run."""
    for name in ("fla", "fla.ops"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    for name, fn in FAKES.items():
        module = types.ModuleType(name)
        setattr(module, fn.__name__, fn)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(bench, "FLA_NEEDS_CUDA", False)

    def no_kernel(op, C):
        raise bench.NotAvailable("left out of this test")

    monkeypatch.setattr(bench, "_ours", no_kernel)
    return sys.modules


def _tiny(ops):
    return bench.Config(
        device=torch.device("cpu"), dtype=torch.float32, tokens=64, lengths=[32, 64], heads=2, dims=[16],
        chunk_size=16, warmup=1, repeats=3, budget=0.2, ref_max_chunks=256, progress=False, ops=list(ops),
    )


def test_fla_adapters_compute_the_same_functions(fake_fla):
    df = bench.run_attention(_tiny(bench.OPS))
    for op in bench.OPS:
        rows = df[(df.op == op) & (df.implementation == bench.FLA_NAMES[op])]
        assert len(rows) == 2 * 2  # 2 lengths x 2 passes
        assert (rows.status == "ok").all(), rows.status.tolist()  # fwd and fwd+bwd (gates are leaves too) ran
        assert (rows.max_err < 1e-5).all(), rows.max_err.tolist()
        assert (rows.layout == "BTHD").all() and (rows.chunk == bench.FLA_CHUNK).all()
        assert (df[(df.op == op) & (df.implementation == bench.REF)].status == "ok").all()
        assert (df[(df.op == op) & (df.implementation == bench.TRITON)].status == "n/a (left out of this test)").all()
    notes = df.groupby("op").note.apply(lambda s: " ".join(set(s.dropna())))
    assert "q and k L2-normalized" in notes["delta"] and "as lablib" in notes["gated_delta"]


def test_a_different_function_is_flagged_not_passed_off(fake_fla, monkeypatch):
    def chunk_simple_gla(q, k, v, g=None, scale=None, initial_state=None, output_final_state=False):
        return chunk_linear_attn(q, k, v, scale=scale, normalize=False)  # ignores the gate: another function

    monkeypatch.setattr(sys.modules["fla.ops.simple_gla"], "chunk_simple_gla", chunk_simple_gla)
    df = bench.run_attention(_tiny(["scalar_gated"]))
    rows = df[df.implementation == "fla chunk_simple_gla"]
    assert rows.status.str.startswith("inaccurate (max_err").all(), rows.status.tolist()
    assert (rows.max_err > bench.CHECK_TOL[torch.float32]).all()


def test_a_kernel_that_does_not_import_is_a_row_not_a_crash(monkeypatch):
    from lablib.kernels.linear_attention import INTERPRETED

    if not INTERPRETED:
        pytest.skip("TRITON_INTERPRET=0: the Triton rows are n/a for another reason on the CPU")
    monkeypatch.setitem(bench.OUR_KERNELS, "gla", ("lablib.kernels.not_written_yet", "chunk_gla"))
    with pytest.raises(bench.NotAvailable, match="import of lablib.kernels.not_written_yet.chunk_gla failed"):
        bench._build(bench.TRITON, _tiny(["gla"]), "gla")


def test_fla_not_installed_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "fla", None)  # import fla -> ImportError
    for name in [n for n in sys.modules if n.startswith("fla.")]:  # a real fla imported by an earlier test
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(bench.NotAvailable) as e:
        bench._build(bench.FLA_NAMES["delta"], _tiny(["delta"]), "delta")
    assert str(e.value) == "not installed"


def test_inputs_share_gate_values_across_dtypes():
    q, k, v, gates = bench._inputs(2, 3, 40, 16, torch.bfloat16, torch.device("cpu"), seed=1, op="gated_delta")
    assert q.dtype == k.dtype == v.dtype == torch.bfloat16
    assert torch.allclose(q.float().norm(dim=-1), torch.ones(2, 3, 40), atol=1e-2)  # unit-norm q and k for the delta ops
    for name, x in gates.items():
        assert x.dtype == torch.float32 and x.shape == (2, 3, 40)
        assert torch.equal(x.to(torch.bfloat16).float(), x)  # representable in bf16: the reference sees the same values
    assert (gates["log_decay"] <= 0).all() and ((gates["beta"] >= 0) & (gates["beta"] <= 1)).all()
    _, _, _, gla = bench._inputs(1, 2, 8, 16, torch.float32, torch.device("cpu"), op="gla")
    assert gla["log_alpha"].shape == (1, 2, 8, 16)
