"""Property tests of the attention references' shape and length handling (hypothesis).

The example-based tests fix B = H = 2, D_k = 8, D_v = 6, a feature map that keeps D_k, and, for
non-causal attention, as many queries as keys. Here hypothesis draws the sizes instead: B, H from
1 to 3, T from 0 (an empty sequence) to 20, T_q != T for non-causal attention, D_k and D_v from 1
to 5, any chunk size from 1 to 24 (shorter or longer than T, dividing it or not), a feature map
that doubles the key dim, initial states, and the decoders' prompt lengths. Float64 throughout,
so every form must agree with the reference to 1e-10. Derandomized and without an example
database: every run tries the same examples.

Found by it: ``linear_attention_reference`` raised on T = 0 where every other form returns an
empty (B, H, 0, D_v) (fixed).
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lablib.attention import (
    LinearAttentionDecoder,
    LinearAttentionState,
    SoftmaxKVCacheDecoder,
    delta_rule_chunkwise,
    delta_rule_recurrent,
    gla_chunkwise,
    gla_recurrent,
    linear_attention_chunkwise,
    linear_attention_parallel,
    linear_attention_recurrent,
    linear_attention_reference,
    scalar_gated_chunkwise,
    scalar_gated_recurrent,
    softmax_attention,
)
from lablib.testing import assert_agree

pytestmark = pytest.mark.usefixtures("one_thread")

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = 1e-10


def doubled_relu(x):
    """A feature map R^D -> R^2D (positive, so normalizers stay away from 0): the state's key dim is F = 2 D_k."""
    return torch.cat([F.relu(x), F.relu(-x)], dim=-1) + 0.1


def randn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.float64)


sizes = dict(B=st.integers(1, 3), H=st.integers(1, 3), T=st.integers(0, 20), d_k=st.integers(1, 5),
             d_v=st.integers(1, 5), seed=st.integers(0, 2**16))


@PROPERTY
@given(**sizes, T_q=st.integers(0, 9), chunk=st.integers(1, 24), causal=st.booleans(), with_state=st.booleans(),
       fmap=st.sampled_from([("elu+1", True), ("relu", False), ("identity", False), (doubled_relu, True)]))
def test_linear_attention_forms_agree_for_any_sizes(B, H, T, d_k, d_v, seed, T_q, chunk, causal, with_state, fmap):
    feature_map, normalize = fmap
    g = torch.Generator().manual_seed(seed)
    T_q = T if causal else T_q
    q, k, v = randn(g, B, H, T_q, d_k), randn(g, B, H, T, d_k), randn(g, B, H, T, d_v)
    kw = dict(feature_map=feature_map, causal=causal, normalize=normalize)
    ref = linear_attention_reference(q, k, v, **kw)
    assert ref.shape == (B, H, T_q, d_v)
    assert_agree(linear_attention_parallel(q, k, v, **kw), ref, TOL, "parallel vs reference")
    assert_agree(linear_attention_recurrent(q, k, v, **kw), ref, TOL, "recurrent vs reference")
    assert_agree(linear_attention_chunkwise(q, k, v, chunk_size=chunk, **kw), ref, TOL, "chunkwise vs reference")
    # with a state: the recurrent and chunkwise forms agree on outputs and on both final states
    F_dim = 2 * d_k if feature_map is doubled_relu else d_k
    state = LinearAttentionState(randn(g, B, H, F_dim, d_v), randn(g, B, H, F_dim).abs() + 1) if with_state else None
    o_r, s_r = linear_attention_recurrent(q, k, v, initial_state=state, return_state=True, **kw)
    o_c, s_c = linear_attention_chunkwise(q, k, v, initial_state=state, return_state=True, chunk_size=chunk, **kw)
    assert s_r.kv.shape == (B, H, F_dim, d_v) and s_r.k_sum.shape == (B, H, F_dim)
    assert_agree(o_c, o_r, TOL, "chunkwise vs recurrent with a state")
    assert_agree(s_c.kv, s_r.kv, TOL, "final kv")
    assert_agree(s_c.k_sum, s_r.k_sum, TOL, "final k_sum")


@PROPERTY
@given(**sizes, chunk=st.integers(1, 24), with_state=st.booleans(), scale=st.sampled_from([None, 0.5]),
       family=st.sampled_from(["scalar", "gla", "delta", "gated_delta"]), normalize_keys=st.booleans())
def test_gated_and_delta_chunkwise_equal_recurrent_for_any_sizes(B, H, T, d_k, d_v, seed, chunk, with_state, scale,
                                                                 family, normalize_keys):
    g = torch.Generator().manual_seed(seed)
    q, k, v = randn(g, B, H, T, d_k), randn(g, B, H, T, d_k), randn(g, B, H, T, d_v)
    s0 = randn(g, B, H, d_k, d_v) if with_state else None
    log_decay = F.logsigmoid(randn(g, B, H, T) + 1)
    log_alpha = F.logsigmoid(randn(g, B, H, T, d_k) + 1)
    beta = torch.rand(B, H, T, generator=g, dtype=torch.float64) * 2
    if family == "scalar":
        pair = (scalar_gated_recurrent, scalar_gated_chunkwise, (q, k, v, log_decay), {})
    elif family == "gla":
        pair = (gla_recurrent, gla_chunkwise, (q, k, v, log_alpha), {})
    else:
        keys = k if normalize_keys else F.normalize(k, dim=-1)  # unnormalized keys must be unit-size already
        pair = (delta_rule_recurrent, delta_rule_chunkwise, (q, keys, v, beta),
                dict(normalize_keys=normalize_keys, log_decay=log_decay if family == "gated_delta" else None))
    recurrent, chunkwise, args, extra = pair
    o_r, s_r = recurrent(*args, initial_state=s0, return_state=True, scale=scale, **extra)
    o_c, s_c = chunkwise(*args, initial_state=s0, return_state=True, scale=scale, chunk_size=chunk, **extra)
    assert o_r.shape == (B, H, T, d_v) and s_r.shape == (B, H, d_k, d_v)
    assert_agree(o_c, o_r, TOL, f"{chunkwise.__name__} vs {recurrent.__name__}")
    assert_agree(s_c, s_r, TOL, "final states")


@PROPERTY
@given(**sizes, T_q=st.integers(1, 9), causal=st.booleans(), scale=st.sampled_from([None, 0.3]))
def test_softmax_attention_matches_torch_sdpa(B, H, T, d_k, d_v, seed, T_q, causal, scale):
    g = torch.Generator().manual_seed(seed)
    T = max(T, 1)  # softmax over no keys is undefined
    T_q = T if causal else T_q
    q, k, v = randn(g, B, H, T_q, d_k), randn(g, B, H, T, d_k), randn(g, B, H, T, d_v)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    assert_agree(softmax_attention(q, k, v, causal=causal, scale=scale), expected, TOL, "softmax vs SDPA")


@PROPERTY
@given(**sizes, prompt=st.integers(0, 20), chunk=st.integers(1, 8),
       fmap=st.sampled_from([("elu+1", True), ("identity", False), (doubled_relu, True)]))
def test_decoders_reproduce_causal_attention(B, H, T, d_k, d_v, seed, prompt, chunk, fmap):
    """Prefill a prompt of any length (0 included), then decode token by token: the linear decoder's
    outputs are causal linear attention's, the KV-cache decoder's are causal softmax attention's
    (whose outputs no example-based test compares), and the linear state's size never changes."""
    feature_map, normalize = fmap
    g = torch.Generator().manual_seed(seed)
    T = max(T, 1)
    prompt = min(prompt, T)
    q, k, v = randn(g, B, H, T, d_k), randn(g, B, H, T, d_k), randn(g, B, H, T, d_v)
    linear = LinearAttentionDecoder(B, H, d_k, d_v, feature_map=feature_map, normalize=normalize, dtype=torch.float64)
    nbytes = linear.nbytes
    cache = SoftmaxKVCacheDecoder(scale=0.7)
    outs = [linear.prefill(q[:, :, :prompt], k[:, :, :prompt], v[:, :, :prompt], chunk_size=chunk)]
    soft = []
    for t in range(T):
        step = (x[:, :, t:t + 1] for x in (q, k, v))
        if t >= prompt:
            outs.append(linear.step(*step))
            step = (x[:, :, t:t + 1] for x in (q, k, v))
        soft.append(cache.step(*step))
    assert linear.tokens_seen == T and cache.tokens_seen == T and linear.nbytes == nbytes
    expected = linear_attention_parallel(q, k, v, feature_map=feature_map, normalize=normalize)
    assert_agree(torch.cat(outs, dim=2), expected, TOL, "linear decoder vs causal linear attention")
    assert_agree(torch.cat(soft, dim=2), softmax_attention(q, k, v, causal=True, scale=0.7), TOL,
                 "KV-cache decoder vs causal softmax attention")
