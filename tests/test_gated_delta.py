"""Gated linear attention (scalar gate, GLA) and the delta rule: chunkwise forms agree with the recurrences.

The recurrences are the truth; they are evaluated in float64 on the same (fp32-valued) inputs, and
the fp32 chunkwise forms must agree with them to 1e-5 (scaled by each tensor's largest entry, see
lablib.testing.max_scaled_error) in outputs, final states and every gradient.
"""

import pytest
import torch
import torch.nn.functional as F

from lablib.attention import linear_attention_chunkwise, linear_attention_recurrent, random_qkv
from lablib.attention.delta import delta_rule_chunkwise, delta_rule_recurrent
from lablib.attention.gated import gla_chunkwise, gla_recurrent, scalar_gated_chunkwise, scalar_gated_recurrent
from lablib.testing import assert_agree

FAMILIES = ["scalar", "gla", "delta", "gated_delta"]
GATED = ["scalar", "gla", "gated_delta"]
RECURRENT = {
    "scalar": scalar_gated_recurrent,
    "gla": gla_recurrent,
    "delta": delta_rule_recurrent,
    "gated_delta": delta_rule_recurrent,
}
CHUNKWISE = {
    "scalar": scalar_gated_chunkwise,
    "gla": gla_chunkwise,
    "delta": delta_rule_chunkwise,
    "gated_delta": delta_rule_chunkwise,
}
LENGTHS = [1, 7, 64, 65, 257]


def make_inputs(family, T, *, B=2, H=2, d_k=8, d_v=6, seed=0, log_gate=None):
    """Leaf tensors (requires_grad) for one family: q, k, v, its gates, and a nonzero initial state.

    Log gates are log(sigmoid(2 x + 3)) for standard-normal x: mostly mild decay (a ~ 0.95)
    with some strong steps. ``log_gate`` replaces them: a number fills every step with it;
    "mixed" keeps the random gates but makes every 10th step -1e3 (a near-total reset).
    beta is uniform on [0, 2], so transitions with negative eigenvalues are exercised.
    """
    q, k, v = random_qkv(T, B=B, H=H, d_k=d_k, d_v=d_v, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    gates = {}
    gate_shape = (B, H, T, d_k) if family == "gla" else (B, H, T)
    if family in GATED:
        log_g = F.logsigmoid(2 * torch.randn(*gate_shape, generator=g) + 3)
        if log_gate == "mixed":
            log_g[:, :, ::10] = -1e3
        elif log_gate is not None:
            log_g = torch.full(gate_shape, float(log_gate))
        gates["log_alpha" if family == "gla" else "log_decay"] = log_g
    if family in ("delta", "gated_delta"):
        gates["beta"] = 2 * torch.rand(B, H, T, generator=g)
    state = 0.5 * torch.randn(B, H, d_k, d_v, generator=g)
    leaves = dict(q=q, k=k, v=v, **gates, initial_state=state)
    return {name: t.requires_grad_() for name, t in leaves.items()}


def as_float64(inputs):
    return {name: t.detach().double().requires_grad_() for name, t in inputs.items()}


def run(fn, inputs, probes, **kw):
    """Output, final state and the gradients of <out, p_out> + <state, p_state> w.r.t. every input."""
    out, state = fn(**inputs, return_state=True, **kw)
    p_out, p_state = (p.to(out.dtype) for p in probes)
    loss = (out * p_out).sum() + (state * p_state).sum()
    grads = torch.autograd.grad(loss, list(inputs.values()))
    return out, state, dict(zip(inputs, grads))


def make_probes(inputs, seed=7):
    """Random cotangents for the output (B, H, T, D_v) and the final state (B, H, D_k, D_v)."""
    g = torch.Generator().manual_seed(seed)
    B, H, T, d_v = inputs["v"].shape
    d_k = inputs["k"].shape[-1]
    return torch.randn(B, H, T, d_v, generator=g), torch.randn(B, H, d_k, d_v, generator=g)


def check_chunkwise_against_float64_recurrence(family, inputs, chunk_size, tol=1e-5):
    probes = make_probes(inputs)
    ref, ref_state, ref_grads = run(RECURRENT[family], as_float64(inputs), probes)
    out, state, grads = run(CHUNKWISE[family], inputs, probes, chunk_size=chunk_size)
    assert out.dtype == inputs["q"].dtype and out.shape == ref.shape
    assert_agree(out, ref, tol, "outputs")
    assert_agree(state, ref_state, tol, "final states")
    for name in inputs:
        assert_agree(grads[name], ref_grads[name], tol, f"d/d{name}")
    return out, state, grads


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("chunk_size", [16, 64])
@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("family", FAMILIES)
def test_fp32_chunkwise_matches_float64_recurrence(family, T, chunk_size):
    """Forward, final state and gradients w.r.t. q, k, v, gates, beta and the initial state."""
    inputs = make_inputs(family, T)
    check_chunkwise_against_float64_recurrence(family, inputs, chunk_size)


@pytest.mark.parametrize("family", FAMILIES)
def test_fp32_recurrence_matches_float64_recurrence(family):
    """The fp32 recurrence is as accurate as the chunkwise form is required to be (sanity for the tolerance)."""
    inputs = make_inputs(family, 257)
    probes = make_probes(inputs)
    ref, ref_state, _ = run(RECURRENT[family], as_float64(inputs), probes)
    out, state, _ = run(RECURRENT[family], inputs, probes)
    assert_agree(out, ref, 1e-5, "outputs")
    assert_agree(state, ref_state, 1e-5, "final states")


@pytest.mark.parametrize("chunk_size", [1, 5, 16, 300])
@pytest.mark.parametrize("family", FAMILIES)
def test_float64_chunkwise_equals_recurrence(family, chunk_size):
    """In float64 the two forms are the same function: they differ only in rounding."""
    inputs = as_float64(make_inputs(family, 70, seed=3))
    probes = make_probes(inputs)
    ref, ref_state, ref_grads = run(RECURRENT[family], inputs, probes)
    out, state, grads = run(CHUNKWISE[family], inputs, probes, chunk_size=chunk_size)
    assert_agree(out, ref, 1e-10, "outputs")
    assert_agree(state, ref_state, 1e-10, "final states")
    for name in inputs:
        assert_agree(grads[name], ref_grads[name], 1e-10, f"d/d{name}")


@pytest.mark.parametrize("family", FAMILIES)
def test_head_dims_that_are_not_powers_of_two(family):
    inputs = make_inputs(family, 65, B=1, d_k=24, d_v=40, seed=5)
    out, state, _ = check_chunkwise_against_float64_recurrence(family, inputs, 16)
    assert out.shape == (1, 2, 65, 40) and state.shape == (1, 2, 24, 40)


@pytest.mark.parametrize("log_decay", [False, True])
def test_delta_rule_without_key_normalization(log_decay):
    """normalize_keys=False uses the keys as given (here short enough, |k| ~ 0.35, to keep beta |k|^2 < 2)."""
    inputs = as_float64(make_inputs("gated_delta" if log_decay else "delta", 40, seed=4))
    with torch.no_grad():
        inputs["k"].mul_(0.125)
    probes = make_probes(inputs)
    ref, ref_state, ref_grads = run(delta_rule_recurrent, inputs, probes, normalize_keys=False)
    out, state, grads = run(delta_rule_chunkwise, inputs, probes, normalize_keys=False, chunk_size=16)
    assert_agree(out, ref, 1e-10, "outputs")
    assert_agree(state, ref_state, 1e-10, "final states")
    for name in inputs:
        assert_agree(grads[name], ref_grads[name], 1e-10, f"d/d{name}")
    normalized = delta_rule_recurrent(**{n: t.detach() for n, t in inputs.items()})
    assert (normalized - ref).abs().max() > 1e-2  # the flag really changes the keys


@pytest.mark.parametrize("scale", [None, 0.3])
@pytest.mark.parametrize("family", FAMILIES)
def test_scale_multiplies_the_queries(family, scale):
    inputs = {n: t.detach() for n, t in make_inputs(family, 20).items()}
    out = CHUNKWISE[family](**inputs, scale=scale, chunk_size=8)
    ref = RECURRENT[family](**{**inputs, "q": inputs["q"] * (1.0 if scale is None else scale)})
    assert_agree(out, ref, 1e-6, "outputs")


# --------------------------------------------------------------------------- strong decay


@pytest.mark.parametrize("chunk_size", [16, 64])
@pytest.mark.parametrize("log_gate", [-20.0, -1e3, "mixed"])
@pytest.mark.parametrize("family", GATED)
def test_strong_decay_stays_finite_and_matches(family, log_gate, chunk_size):
    """log gates of -20 (or -1e3) per step over 200 steps: exp(-b_j) would be exp(+4000) = inf.

    Masking before exponentiating keeps every factor in [0, 1]: outputs, states and gradients stay
    finite and agree with the recurrence. "mixed" (mild gates with a -1e3 step every 10 steps)
    catches log ratios formed as differences of cumulative sums, b_i - b_j: after the strong step
    both are ~ -1e3 and cancel in fp32 (outputs were off by up to 2e-4 that way).
    """
    inputs = make_inputs(family, 200, log_gate=log_gate)
    out, state, grads = check_chunkwise_against_float64_recurrence(family, inputs, chunk_size)
    assert torch.isfinite(out).all() and torch.isfinite(state).all()
    for name, g in grads.items():
        assert torch.isfinite(g).all(), f"d/d{name} is not finite"
    detached = {n: t.detach() for n, t in inputs.items()}
    assert torch.isfinite(RECURRENT[family](**detached)).all()
    if log_gate == -1e3:
        # exp(-1e3) is 0 in any float type: the state forgets everything but the current token,
        # so o_t = (q_t . k_t) v_t (with the delta rule: beta_t (q_t . k_t / |k_t|) v_t).
        q, k, v = detached["q"], detached["k"], detached["v"]
        if family == "gated_delta":
            k = detached["beta"].unsqueeze(-1) * F.normalize(k, dim=-1)
        assert_agree(out, (q * k).sum(-1, keepdim=True) * v, 1e-5, "outputs vs the current token alone")


# --------------------------------------------------------------------------- special cases


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_scalar_gate_of_one_is_plain_linear_attention(form):
    q, k, v = random_qkv(37, B=2, H=2, d_k=8, d_v=6, seed=11)
    zero = torch.zeros(2, 2, 37)
    plain = linear_attention_recurrent(q, k, v, feature_map="identity", normalize=False)
    if form == "recurrent":
        assert torch.equal(scalar_gated_recurrent(q, k, v, zero), plain)
    else:
        out = scalar_gated_chunkwise(q, k, v, zero, chunk_size=16)
        assert_agree(out, plain, 1e-6, "outputs")
        assert_agree(out, linear_attention_chunkwise(q, k, v, feature_map="identity", normalize=False, chunk_size=16),
                     1e-6, "outputs")


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_gla_with_equal_gates_is_the_scalar_gate(form):
    inputs = {n: t.detach() for n, t in make_inputs("scalar", 50, seed=12).items()}
    log_decay = inputs.pop("log_decay")
    log_alpha = log_decay.unsqueeze(-1).expand(-1, -1, -1, 8).contiguous()
    if form == "recurrent":
        out, state = gla_recurrent(**inputs, log_alpha=log_alpha, return_state=True)
        ref, ref_state = scalar_gated_recurrent(**inputs, log_decay=log_decay, return_state=True)
        assert torch.equal(out, ref) and torch.equal(state, ref_state)
    else:
        out, state = gla_chunkwise(**inputs, log_alpha=log_alpha, return_state=True, chunk_size=16)
        ref, ref_state = scalar_gated_chunkwise(**inputs, log_decay=log_decay, return_state=True, chunk_size=16)
        assert_agree(out, ref, 1e-6, "outputs")
        assert_agree(state, ref_state, 1e-6, "final states")


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_delta_rule_with_beta_zero_leaves_the_state_unchanged(form):
    inputs = {n: t.detach() for n, t in make_inputs("delta", 30, seed=13).items()}
    inputs["beta"] = torch.zeros_like(inputs["beta"])
    fn = delta_rule_recurrent if form == "recurrent" else lambda **kw: delta_rule_chunkwise(**kw, chunk_size=8)
    out, state = fn(**inputs, return_state=True)
    assert torch.equal(state, inputs["initial_state"])
    assert_agree(out, inputs["q"] @ inputs["initial_state"], 1e-6, "outputs")  # every query reads S_0


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_delta_rule_with_beta_one_stores_the_value(form, gated):
    """One step with beta = 1 and a unit key: S^T k = v afterwards, whatever S held (and however it decayed)."""
    inputs = as_float64(make_inputs("gated_delta" if gated else "delta", 1, seed=14))
    inputs = {n: t.detach() for n, t in inputs.items()}
    inputs["beta"] = torch.ones_like(inputs["beta"])
    fn = delta_rule_recurrent if form == "recurrent" else delta_rule_chunkwise
    _, state = fn(**inputs, return_state=True)
    k_unit = F.normalize(inputs["k"][:, :, 0], dim=-1)  # (B, H, D_k)
    recalled = (k_unit.unsqueeze(-1) * state).sum(-2)  # S^T k: (B, H, D_v)
    assert_agree(recalled, inputs["v"][:, :, 0], 1e-12, "S^T k vs v")
    before = (k_unit.unsqueeze(-1) * inputs["initial_state"]).sum(-2)
    assert (before - inputs["v"][:, :, 0]).abs().max() > 0.1  # it did not hold v before


def test_empty_sequence_returns_the_initial_state():
    for family in FAMILIES:
        inputs = {n: t.detach() for n, t in make_inputs(family, 0).items()}
        for fn in (RECURRENT[family], CHUNKWISE[family]):
            out, state = fn(**inputs, return_state=True)
            assert out.shape == (2, 2, 0, 6) and torch.equal(state, inputs["initial_state"])


# --------------------------------------------------------------------------- states across calls


@pytest.mark.parametrize("family", FAMILIES)
def test_initial_state_gradient_matches_recurrence(family):
    """d/d initial_state of the chunkwise form equals the recurrence's (float64 reference)."""
    inputs = make_inputs(family, 41, seed=15)
    probes = make_probes(inputs)
    _, _, ref_grads = run(RECURRENT[family], as_float64(inputs), probes)
    _, _, grads = run(CHUNKWISE[family], inputs, probes, chunk_size=16)
    assert grads["initial_state"].abs().max() > 0
    assert_agree(grads["initial_state"], ref_grads["initial_state"], 1e-5, "d/d initial_state")


@pytest.mark.parametrize("family", FAMILIES)
def test_state_carries_across_calls_with_gradients(family):
    """Prefix then suffix, the prefix's final state passed on (and differentiated through), equals one call."""
    inputs = make_inputs(family, 50, seed=16)
    inputs.pop("initial_state")
    inputs64 = as_float64(inputs)
    full = RECURRENT[family](**inputs64)
    g_full = torch.autograd.grad((full * full.detach()).sum(), list(inputs64.values()))

    head = {n: t[:, :, :23] for n, t in inputs.items()}
    tail = {n: t[:, :, 23:] for n, t in inputs.items()}
    first, mid = CHUNKWISE[family](**head, return_state=True, chunk_size=8)
    second = CHUNKWISE[family](**tail, initial_state=mid, chunk_size=8)
    out = torch.cat([first, second], 2)
    assert_agree(out, full, 1e-5, "outputs")
    grads = torch.autograd.grad((out * full.detach().float()).sum(), list(inputs.values()))
    for name, g, g_ref in zip(inputs, grads, g_full):
        assert_agree(g, g_ref, 1e-5, f"d/d{name}")


# --------------------------------------------------------------------------- bad inputs


def _bad_gate_cases():
    # (family, which input, replacement shape, message regex)
    return [
        ("scalar", "log_decay", (2, 2, 8, 1), r"log_decay must have shape \(B, H, T\).*got shape \(2, 2, 8, 1\)"),
        ("scalar", "log_decay", (2, 2, 9), r"log_decay must have shape.*\(2, 2, 8\).*got shape \(2, 2, 9\)"),
        ("gla", "log_alpha", (2, 2, 8), r"log_alpha must have shape \(B, H, T, D_k\).*got shape \(2, 2, 8\)"),
        ("gla", "log_alpha", (2, 2, 8, 7), r"log_alpha must have shape.*\(2, 2, 8, 8\).*got shape \(2, 2, 8, 7\)"),
        ("delta", "beta", (2, 2, 8, 1), r"beta must have shape \(B, H, T\).*got shape \(2, 2, 8, 1\)"),
        ("gated_delta", "log_decay", (2, 1, 8), r"log_decay must have shape.*got shape \(2, 1, 8\)"),
        ("gated_delta", "initial_state", (2, 2, 6, 8), r"initial_state must have shape.*\(2, 2, 8, 6\).*got shape \(2, 2, 6, 8\)"),
    ]


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
@pytest.mark.parametrize("family,name,shape,match", _bad_gate_cases())
def test_wrong_shapes_raise_value_error_naming_the_shape(family, name, shape, match, form):
    inputs = {n: t.detach() for n, t in make_inputs(family, 8).items()}
    inputs[name] = torch.zeros(shape)
    fn = RECURRENT[family] if form == "recurrent" else CHUNKWISE[family]
    with pytest.raises(ValueError, match=match):
        fn(**inputs)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
@pytest.mark.parametrize(
    "family,name,value,match",
    [
        ("scalar", "log_decay", 0.25, r"log_decay must be <= 0.*got max 0\.25.*\(2, 2, 8\)"),
        ("gla", "log_alpha", 1.5, r"log_alpha must be <= 0.*got max 1\.5.*\(2, 2, 8, 8\)"),
        ("gated_delta", "log_decay", 0.25, r"log_decay must be <= 0.*got max 0\.25"),
        ("delta", "beta", 2.5, r"beta must lie in \[0, 2\].*2\.5.*\(2, 2, 8\)"),
        ("delta", "beta", -0.1, r"beta must lie in \[0, 2\].*-0\.1"),
        ("scalar", "q", float("nan"), r"q contains NaN"),
        ("gla", "log_alpha", float("nan"), r"log_alpha contains NaN"),
        ("gated_delta", "log_decay", float("-inf"), r"log_decay contains NaN or Inf"),
        ("delta", "beta", float("nan"), r"beta contains NaN"),
        ("delta", "v", float("inf"), r"v contains NaN or Inf"),
        ("scalar", "initial_state", float("nan"), r"initial_state contains NaN"),
    ],
)
def test_bad_values_raise_value_error(family, name, value, match, form):
    inputs = {n: t.detach().clone() for n, t in make_inputs(family, 8).items()}
    inputs[name].view(-1)[3] = value  # one bad entry is enough
    fn = RECURRENT[family] if form == "recurrent" else CHUNKWISE[family]
    with pytest.raises(ValueError, match=match):
        fn(**inputs)


def test_bad_arguments():
    inputs = {n: t.detach() for n, t in make_inputs("gated_delta", 8).items()}
    with pytest.raises(ValueError, match="chunk_size must be a positive int; got 0"):
        delta_rule_chunkwise(**inputs, chunk_size=0)
    with pytest.raises(ValueError, match=r"beta must have q's dtype torch.float32; got torch.float64"):
        delta_rule_recurrent(**{**inputs, "beta": inputs["beta"].double()})
    with pytest.raises(ValueError, match=r"share the key dim.*\(2, 2, 8, 8\).*\(2, 2, 8, 5\)"):
        scalar_gated_chunkwise(inputs["q"], inputs["k"][..., :5], inputs["v"], inputs["log_decay"])
    with pytest.raises(TypeError, match="initial_state must be a torch.Tensor"):
        gla_recurrent(inputs["q"], inputs["k"], inputs["v"], torch.zeros(2, 2, 8, 8), initial_state=[0.0])
