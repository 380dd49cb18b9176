"""Every form of linear attention agrees with the one-query-at-a-time reference."""

import pytest
import torch

from lablib.attention import (
    LinearAttentionDecoder,
    LinearAttentionState,
    SoftmaxKVCacheDecoder,
    linear_attention,
    linear_attention_chunkwise,
    linear_attention_parallel,
    linear_attention_recurrent,
    linear_attention_reference,
    random_qkv,
    softmax_attention,
)
from lablib.testing import assert_agree

LENGTHS = [1, 7, 64, 257]
FORMS = {
    "parallel": linear_attention_parallel,
    "recurrent": linear_attention_recurrent,
    "chunkwise": lambda *a, **kw: linear_attention_chunkwise(*a, chunk_size=16, **kw),
}
# (feature map, normalize): the identity map gives signed scores, so its normalizer can cross
# zero; it is used unnormalized, as in most modern linear-attention layers.
MAPS = [("elu+1", True), ("relu", True), ("identity", False)]


def make_qkv(T, B=2, H=2, d_k=8, d_v=6, seed=0):
    return random_qkv(T, B=B, H=H, d_k=d_k, d_v=d_v, seed=seed, requires_grad=True)


def _forward_and_grads(fn, q, k, v, probe, **kw):
    out = fn(q, k, v, **kw)
    # A random cotangent checks every output's gradient at once.
    return out, torch.autograd.grad((out * probe.to(out.dtype)).sum(), (q, k, v))


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("feature_map,normalize", MAPS)
def test_fp32_forms_match_reference_forward_and_grad(T, causal, form, feature_map, normalize):
    """fp32 forms agree with the reference to 1e-5 (scaled by the tensor's largest entry).

    The reference is evaluated in float64 on the same (fp32-valued) inputs: it is the truth,
    and the fp32 reference itself carries rounding error of the size being tested.
    """
    q, k, v = make_qkv(T)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    probe = torch.randn(2, 2, T, 6, generator=torch.Generator().manual_seed(1))
    kw = dict(feature_map=feature_map, causal=causal, normalize=normalize)
    ref, grads_ref = _forward_and_grads(linear_attention_reference, q64, k64, v64, probe, **kw)
    out, grads = _forward_and_grads(FORMS[form], q, k, v, probe, **kw)
    assert out.dtype == torch.float32 and out.shape == ref.shape == (2, 2, T, 6)
    assert_agree(out, ref, 1e-5, "outputs")
    for name, g, g_ref in zip("qkv", grads, grads_ref):
        assert_agree(g, g_ref, 1e-5, f"d/d{name}")


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("form", list(FORMS))
def test_forms_are_the_same_function_in_float64(causal, form):
    """In float64 the forms agree to 1e-12: they differ only in the order of the sums."""
    q, k, v = (t.detach().double().requires_grad_() for t in make_qkv(70))
    probe = torch.randn(2, 2, 70, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref, grads_ref = _forward_and_grads(linear_attention_reference, q, k, v, probe, causal=causal)
    out, grads = _forward_and_grads(FORMS[form], q, k, v, probe, causal=causal)
    assert_agree(out, ref, 1e-12, "outputs")
    for g, g_ref in zip(grads, grads_ref):
        assert_agree(g, g_ref, 1e-12, "gradients")


def test_reference_is_not_softmax_unless_phi_is_exp():
    # The reference formula with phi(q).phi(k) replaced by exp(q.k / sqrt(d)) is softmax attention;
    # check the generic formula really is attention by building that similarity by hand.
    q, k, v = (t.detach() for t in make_qkv(9))
    w = torch.exp(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).tril()
    manual = (w @ v) / w.sum(-1, keepdim=True)
    torch.testing.assert_close(manual, softmax_attention(q, k, v, causal=True))
    lin = linear_attention_reference(q, k, v, causal=True)
    assert (lin - manual).abs().max() > 1e-2  # a different similarity gives a different output


@pytest.mark.parametrize("chunk_size", [1, 5, 16, 64, 300])
def test_chunk_size_does_not_change_the_result(chunk_size):
    q, k, v = (t.detach() for t in make_qkv(257))
    ref = linear_attention_parallel(q, k, v)
    torch.testing.assert_close(linear_attention_chunkwise(q, k, v, chunk_size=chunk_size), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_state_carries_across_calls(form):
    q, k, v = (t.detach() for t in make_qkv(64))
    fn = FORMS[form]
    full, final = fn(q, k, v, return_state=True)
    first, mid = fn(q[:, :, :23], k[:, :, :23], v[:, :, :23], return_state=True)
    second, final2 = fn(q[:, :, 23:], k[:, :, 23:], v[:, :, 23:], initial_state=mid, return_state=True)
    torch.testing.assert_close(torch.cat([first, second], 2), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(final2.kv, final.kv, rtol=1e-5, atol=1e-5)
    # The final state is the sum of outer products phi(k_t) v_t^T.
    fk = torch.nn.functional.elu(k) + 1
    torch.testing.assert_close(final.kv, fk.transpose(-1, -2) @ v, rtol=1e-5, atol=1e-5)


def test_initial_state_gradient_matches_reference_prefix():
    # Gradient through an initial state equals the gradient through the prefix that produced it.
    q, k, v = make_qkv(20)
    out_full = linear_attention_reference(q, k, v)
    prefix_state = LinearAttentionState(
        ((torch.nn.functional.elu(k[:, :, :8]) + 1).transpose(-1, -2) @ v[:, :, :8]),
        (torch.nn.functional.elu(k[:, :, :8]) + 1).sum(2),
    )
    out_tail = linear_attention_chunkwise(q[:, :, 8:], k[:, :, 8:], v[:, :, 8:], initial_state=prefix_state, chunk_size=4)
    torch.testing.assert_close(out_tail, out_full[:, :, 8:], rtol=1e-5, atol=1e-5)
    g_ref = torch.autograd.grad(out_full[:, :, 8:].sum(), v)[0]
    g = torch.autograd.grad(out_tail.sum(), v)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)


def test_decoder_state_size_is_constant_and_outputs_match():
    B, H, d = 1, 2, 8
    q, k, v = (t.detach() for t in make_qkv(100, B=B, H=H, d_k=d, d_v=d))
    dec, cache = LinearAttentionDecoder(B, H, d, d), SoftmaxKVCacheDecoder()
    sizes, cache_sizes, outs = [], [], []
    for t in range(100):
        sl = slice(t, t + 1)
        outs.append(dec.step(q[:, :, sl], k[:, :, sl], v[:, :, sl]))
        cache.step(q[:, :, sl], k[:, :, sl], v[:, :, sl])
        sizes.append(dec.nbytes)
        cache_sizes.append(cache.nbytes)
    assert len(set(sizes)) == 1 and sizes[0] == B * H * (d * d + d) * 4
    assert cache_sizes[-1] == 100 * cache_sizes[0]  # the KV cache grows linearly
    torch.testing.assert_close(torch.cat(outs, 2), linear_attention_parallel(q, k, v), rtol=1e-5, atol=1e-5)


def test_decoder_prefill_then_step():
    q, k, v = (t.detach() for t in make_qkv(33, B=1))
    dec = LinearAttentionDecoder(1, 2, 8, 6)
    out = torch.cat([dec.prefill(q[:, :, :30], k[:, :, :30], v[:, :, :30], chunk_size=8)]
                    + [dec.step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1]) for t in range(30, 33)], 2)
    torch.testing.assert_close(out, linear_attention_parallel(q, k, v), rtol=1e-5, atol=1e-5)
    assert dec.tokens_seen == 33


@pytest.mark.parametrize(
    "shapes,match",
    [
        (((2, 8), (2, 2, 8, 4), (2, 2, 8, 4)), r"q must have shape \(B, H, T, D\); got shape \(2, 8\)"),
        (((2, 2, 8, 4), (2, 2, 8, 5), (2, 2, 8, 4)), r"share the key dim.*\(2, 2, 8, 4\).*\(2, 2, 8, 5\)"),
        (((2, 2, 8, 4), (2, 2, 8, 4), (2, 2, 9, 4)), r"share the length T.*\(2, 2, 9, 4\)"),
        (((2, 2, 8, 4), (2, 3, 8, 4), (2, 3, 8, 4)), r"batch and head.*\(2, 3, 8, 4\)"),
        (((2, 2, 5, 4), (2, 2, 8, 4), (2, 2, 8, 4)), r"causal attention needs as many queries.*\(2, 2, 5, 4\)"),
    ],
)
@pytest.mark.parametrize("form", ["reference", "parallel", "recurrent", "chunkwise"])
def test_bad_shapes_raise_value_error_naming_the_shape(shapes, match, form):
    q, k, v = (torch.randn(*s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        linear_attention(q, k, v, form=form)
    if form == "reference":
        with pytest.raises(ValueError, match=match):
            softmax_attention(q, k, v, causal=True)


def test_bad_values_and_arguments():
    q, k, v = (t.detach().clone() for t in make_qkv(8))
    with pytest.raises(ValueError, match="integer|floating-point"):
        linear_attention_parallel(q.long(), k.long(), v.long())
    q[0, 0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="q contains NaN"):
        linear_attention_recurrent(q, k, v)
    q = q.nan_to_num()
    with pytest.raises(ValueError, match="unknown feature map 'softplus'"):
        linear_attention_parallel(q, k, v, feature_map="softplus")
    with pytest.raises(ValueError, match="chunk_size must be a positive int; got 0"):
        linear_attention_chunkwise(q, k, v, chunk_size=0)
    with pytest.raises(ValueError, match="unknown form"):
        linear_attention(q, k, v, form="magic")
    bad_state = LinearAttentionState.zeros(2, 2, 7, 6)
    with pytest.raises(ValueError, match=r"initial_state shapes.*\(2, 2, 7, 6\)"):
        linear_attention_recurrent(q, k, v, initial_state=bad_state)
    with pytest.raises(ValueError, match=r"one token.*\(2, 2, 8, 8\)"):
        LinearAttentionDecoder(2, 2, 8, 6).step(q, k, v)
