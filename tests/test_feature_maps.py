"""Feature maps: each equals its paper's definition, and every one runs through every form of linear attention.

* Taylor: phi(q).phi(k) = 1 + q.k/sqrt(D) + (q.k)^2/(2D) to float64 precision.
* Performer: the mean over many seeds approaches exp(q.k) (unbiased), the error falls as m^-1/2.
* cosFormer: the definition, the sin/cos identity phi(q_i).phi(k_j) = relu(q).relu(k) cos(pi(i-j)/2M),
  and a sequence continued in pieces (with ``at(offset)``) equal to one call.
* Hedgehog: identity-like init, and distillation lowers the cross-entropy to softmax's weights.
* Every map: lablib.attention's reference = the Triton kernel (interpreted), also with feature dims over 128
  = every ops backend = lablib.layers.LinearAttention, whose step-by-step decoding equals its forward.
"""

import math
import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lablib import ops  # noqa: E402
from lablib.attention import LinearAttentionDecoder, linear_attention_parallel, linear_attention_reference  # noqa: E402
from lablib.attention.feature_map_study import (  # noqa: E402
    attention_entropy,
    compare_feature_maps,
    loglog_slope,
    monotonicity,
    vocab_head,
)
from lablib.attention.feature_maps import (  # noqa: E402
    FEATURE_MAPS,
    CosFormerFeatureMap,
    HedgehogFeatureMap,
    PerformerFeatureMap,
    attention_cross_entropy,
    cosformer,
    distill_hedgehog,
    linear_attention_weights,
    orthogonal_gaussian_projection,
    resolve_feature_map,
    softmax_attention_weights,
    taylor,
)
from lablib.kernels.linear_attention import INTERPRETED, chunk_linear_attention  # noqa: E402
from lablib.layers import LinearAttention  # noqa: E402
from lablib.testing import assert_agree, max_scaled_error  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

DEVICE = "cpu" if INTERPRETED else "cuda"
needs_kernel = pytest.mark.skipif(not INTERPRETED and not torch.cuda.is_available(),
                                  reason="TRITON_INTERPRET=0 and no CUDA device: nothing can run the kernels")


def gaussian(*shape, seed=0, dtype=torch.float32, std=1.0):
    return std * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------- Taylor


def test_taylor_identity_to_float64_precision():
    for D in (1, 4, 16):
        q, k = gaussian(3, 2, 9, D, seed=D, dtype=torch.float64), gaussian(3, 2, 9, D, seed=D + 1, dtype=torch.float64)
        dots = q @ k.transpose(-1, -2)
        want = 1 + dots / math.sqrt(D) + dots**2 / (2 * D)
        got = taylor(q) @ taylor(k).transpose(-1, -2)
        assert taylor(q).shape[-1] == 1 + D + D * D
        assert_agree(got, want, 1e-13, f"Taylor identity at D = {D}")
        assert got.min() >= 0.5 - 1e-12  # 1 + x + x^2/2 >= 1/2


# ----------------------------------------------------------------------------- Performer


def test_orthogonal_projection_blocks_are_orthogonal_with_chi_lengths():
    W = orthogonal_gaussian_projection(20, 8, generator=torch.Generator().manual_seed(0))
    assert W.shape == (20, 8)
    for block in (W[:8], W[8:16]):
        directions = F.normalize(block, dim=1)
        assert_agree(directions @ directions.T, torch.eye(8, dtype=W.dtype), 1e-12, "directions in a block")
    # lengths are chi(8): over many rows, E|w|^2 = 8
    many = orthogonal_gaussian_projection(4000, 8, generator=torch.Generator().manual_seed(1))
    assert abs(many.pow(2).sum(1).mean().item() - 8) < 0.25
    # and each coordinate is N(0, 1): a Haar rotation times a chi length
    assert abs(many.std().item() - 1) < 0.03 and abs(many.mean().item()) < 0.03


@pytest.mark.parametrize("orthogonal", [True, False], ids=["orthogonal", "iid"])
def test_performer_is_unbiased_for_exp_q_dot_k(orthogonal):
    D, m, n_seeds = 8, 16, 1500
    q, k = gaussian(D, seed=0, dtype=torch.float64, std=0.3), gaussian(D, seed=1, dtype=torch.float64, std=0.3)
    exact = math.exp(float(q @ k))
    maps = [PerformerFeatureMap(D, m, seed=s, orthogonal=orthogonal).double() for s in range(n_seeds)]
    est = torch.tensor([float(phi(q) @ phi(k)) for phi in maps], dtype=torch.float64)
    sem = est.std().item() / math.sqrt(n_seeds)
    assert abs(est.mean().item() - exact) < 4 * sem, f"mean {est.mean():.5f} vs exp(q.k) {exact:.5f} (sem {sem:.2g})"
    assert sem / exact < 0.015  # so a bias of a few percent would fail
    assert sem / exact > 1e-4  # a real spread: each draw is an estimate, not the exact value


def test_performer_error_falls_as_one_over_sqrt_m():
    D, n_seeds = 8, 60
    q, k = gaussian(16, D, seed=2, std=0.3), gaussian(16, D, seed=3, std=0.3)
    exact = torch.exp(q @ k.T)
    ms = [8, 32, 128, 512]
    rms = []
    for m in ms:
        sq = [((lambda p: p(q) @ p(k).T)(PerformerFeatureMap(D, m, seed=s)) / exact - 1).pow(2).mean().item()
              for s in range(n_seeds)]
        rms.append(math.sqrt(np.mean(sq)))
    slope, _ = loglog_slope(ms, rms)
    assert -0.6 < slope < -0.4, f"expected error ~ m^-1/2, fitted exponent {slope:.3f} (errors {rms})"


def test_performer_scale_estimates_the_softmax_kernel_and_redraw_changes_the_projection():
    D = 16
    phi = PerformerFeatureMap(D, 4096, seed=0, scale=D ** -0.25)
    q, k = gaussian(4, D, seed=4, std=0.5), gaussian(4, D, seed=5, std=0.5)
    est, want = phi(q) @ phi(k).T, torch.exp(q @ k.T / math.sqrt(D))
    relative = ((est - want) / want).abs()
    assert relative.mean() < 0.06 and relative.max() < 0.2  # m = 4096: a few percent
    assert (phi(q) > 0).all()
    before = phi.projection.clone()
    assert phi.redraw().seed == 1 and not torch.equal(before, phi.projection)
    assert torch.equal(PerformerFeatureMap(D, 4096, seed=1, scale=D ** -0.25).projection, phi.projection)
    assert "projection" in phi.state_dict() and not list(phi.parameters())  # a buffer, not trained


# ----------------------------------------------------------------------------- cosFormer


def test_cosformer_equals_its_definition_and_the_cosine_identity():
    M, T, D = 40, 13, 6
    phi = cosformer(M)
    x = gaussian(2, 3, T, D, seed=6, dtype=torch.float64)
    i = torch.arange(T, dtype=torch.float64)[:, None]
    want = torch.cat([F.relu(x) * torch.sin(math.pi * i / (2 * M)), F.relu(x) * torch.cos(math.pi * i / (2 * M))], -1)
    assert_agree(phi(x), want, 1e-14, "cosFormer definition")
    q, k = x, gaussian(2, 3, T, D, seed=7, dtype=torch.float64)
    lhs = phi(q) @ phi(k).transpose(-1, -2)
    diff = torch.arange(T, dtype=torch.float64)[:, None] - torch.arange(T, dtype=torch.float64)[None, :]
    rhs = (F.relu(q) @ F.relu(k).transpose(-1, -2)) * torch.cos(math.pi * diff / (2 * M))
    assert_agree(lhs, rhs, 1e-13, "phi(q_i).phi(k_j) = relu(q_i).relu(k_j) cos(pi (i - j) / 2M)")
    # an offset shifts every position, and the weights depend on i - j only
    assert_agree(phi(q, offset=20) @ phi(k, offset=20).transpose(-1, -2), rhs, 1e-13, "shifted positions")


def test_cosformer_pieces_with_offsets_equal_one_call():
    M, T, D = 64, 30, 8
    phi = CosFormerFeatureMap(M)
    q, k, v = (gaussian(1, 2, T, D, seed=s) for s in (8, 9, 10))
    whole = ops.linear_attention(q, k, v, feature_map=phi, normalize=True, backend="recurrent").out
    first = ops.linear_attention(q[:, :, :11], k[:, :, :11], v[:, :, :11], feature_map=phi.at(0), normalize=True,
                                 output_final_state=True, backend="chunkwise")
    second = ops.linear_attention(q[:, :, 11:], k[:, :, 11:], v[:, :, 11:], feature_map=phi.at(11), normalize=True,
                                  initial_state=first.final_state, backend="chunkwise")
    assert_agree(torch.cat([first.out, second.out], 2), whole, 1e-5, "pieces with offsets vs one call")
    restarted = ops.linear_attention(q[:, :, 11:], k[:, :, 11:], v[:, :, 11:], feature_map=phi, normalize=True,
                                     initial_state=first.final_state, backend="chunkwise").out
    assert max_scaled_error(restarted, whole[:, :, 11:]) > 1e-3  # without the offset the positions restart


# ----------------------------------------------------------------------------- Hedgehog


def test_hedgehog_init_and_shape():
    H, D, Fd = 3, 5, 7
    hh = HedgehogFeatureMap(H, D, Fd)
    assert hh.weight.shape == (H, D, Fd) and hh.bias.shape == (H, Fd)
    assert torch.equal(hh.weight[1], torch.eye(D, Fd))
    x = gaussian(2, H, 4, D, seed=11)
    out = hh(x)
    assert out.shape == (2, H, 4, 2 * Fd)
    assert_agree(out[..., :Fd].sum(-1), torch.ones(2, H, 4), 1e-6, "each half is a softmax")
    square = HedgehogFeatureMap(H, D)
    assert_agree(square(x), torch.cat([x.softmax(-1), (-x).softmax(-1)], -1), 1e-6, "identity init")


def test_hedgehog_distillation_lowers_the_cross_entropy_also_on_held_out_sequences():
    q, k = vocab_head(4, 32, gain=1.4, data_seed=1)
    q_test, k_test = vocab_head(4, 32, gain=1.4, data_seed=2)
    hh = HedgehogFeatureMap(2, 16)
    target = softmax_attention_weights(q_test, k_test)

    def held_out():
        with torch.no_grad():
            return attention_cross_entropy(target, linear_attention_weights(q_test, k_test, hh)).item()

    before = held_out()
    losses = distill_hedgehog(hh, q, k, steps=60, lr=3e-2, progress=False)
    after, floor = held_out(), attention_entropy(target)
    assert len(losses) == 61 and losses[-1] < losses[0] - 0.3, f"training CE {losses[0]:.3f} -> {losses[-1]:.3f}"
    assert after < before - 0.3, f"held-out CE {before:.3f} -> {after:.3f}"
    assert after > floor  # the cross-entropy's floor is the target's own entropy


def test_attention_weight_helpers():
    q, k = gaussian(1, 2, 7, 4, seed=12), gaussian(1, 2, 7, 4, seed=13)
    w = linear_attention_weights(q, k, "elu+1")
    assert_agree(w.sum(-1), torch.ones(1, 2, 7), 1e-6, "rows sum to 1")
    assert (w.triu(1) == 0).all()
    s = softmax_attention_weights(q, k)
    assert_agree(s, torch.softmax((q @ k.transpose(-1, -2) / 2).masked_fill(~torch.ones(7, 7, dtype=torch.bool).tril(),
                                                                            float("-inf")), -1), 1e-6, "softmax weights")
    assert abs(attention_cross_entropy(s, s).item() - attention_entropy(s)) < 1e-5
    assert abs(monotonicity(q, k, lambda x: torch.cat([torch.ones_like(x[..., :1]), x], -1)) - 1) < 1e-12  # 1 + q.k
    assert monotonicity(q, k, "elu+1") < 0.99  # elu+1 does not rank keys by q.k


def test_compare_feature_maps_puts_softmax_first_at_the_floor():
    q, k = vocab_head(1, 24, gain=1.4)
    v = gaussian(1, 2, 24, 16, seed=14)
    table = compare_feature_maps(q, k, v, {"elu+1": "elu+1", "hedgehog": HedgehogFeatureMap(2, 16)})
    assert list(table["map"]) == ["softmax", "elu+1", "hedgehog"]
    assert list(table["features"][1:]) == [16, 32]
    assert (table["cross_entropy"][1:] > table["cross_entropy"][0]).all()
    assert table["monotonicity"][0] == 1.0 and (table["monotonicity"][1:] < 1).all()


# ----------------------------------------------------------------------------- every map, every form

D_SMALL = 8
MAPS = {  # feature dims: 8, 8, 8, 21, 16, 32, 16 (all <= 128, the kernel's key tile)
    "elu+1": lambda: "elu+1",
    "relu": lambda: "relu",
    "identity": lambda: "identity",
    "taylor": lambda: "taylor",  # on D = 4 keys: 1 + 4 + 16 = 21 features
    "cosformer": lambda: CosFormerFeatureMap(64),
    "performer": lambda: PerformerFeatureMap(D_SMALL, 32, seed=3, scale=D_SMALL ** -0.25),
    "hedgehog": lambda: HedgehogFeatureMap(2, D_SMALL),
}


def _qkv(name, T=19, seed=20):
    d_k = 4 if name == "taylor" else D_SMALL
    q, k = gaussian(1, 2, T, d_k, seed=seed), gaussian(1, 2, T, d_k, seed=seed + 1)
    return q, k, gaussian(1, 2, T, 6, seed=seed + 2)


def _normalize(name):
    return name != "identity"  # phi(q).phi(k) can be ~0 or negative without a positive map


@needs_kernel
@pytest.mark.parametrize("name", list(MAPS))
def test_every_map_agrees_across_reference_kernel_ops(name):
    fm, normalize = MAPS[name](), _normalize(name)
    q, k, v = (t.to(DEVICE) for t in _qkv(name))
    if isinstance(fm, torch.nn.Module):
        fm = fm.to(DEVICE)
    ref = linear_attention_reference(q, k, v, feature_map=fm, normalize=normalize)
    assert_agree(linear_attention_parallel(q, k, v, feature_map=fm, normalize=normalize), ref, 1e-5, f"{name}: parallel")
    phi = resolve_feature_map(fm)
    fq, fk = phi(q), phi(k)
    assert fq.shape[-1] <= 128
    v_in = torch.cat([v, torch.ones_like(v[..., :1])], -1) if normalize else v
    o, _ = chunk_linear_attention(fq, fk, v_in, scale=1.0, output_final_state=True, chunk_size=16)
    kernel_out = o[..., :-1] / (o[..., -1:] + 1e-6) if normalize else o
    assert_agree(kernel_out, ref, 1e-5, f"{name}: Triton kernel on phi(q), phi(k)")
    for backend in ("triton", "vectorized", "chunkwise", "recurrent"):
        r = ops.linear_attention(q, k, v, feature_map=fm, normalize=normalize, chunk_size=16, backend=backend)
        assert r.backend == backend
        assert_agree(r.out, ref, 1e-5, f"{name}: ops backend={backend}")


# Maps whose feature dim is wider than one key tile (128): the kernels loop over key blocks.
WIDE_MAPS = {  # name: (map, key dim of q and k, feature dim)
    "taylor on 16-d keys": (lambda: "taylor", 16, 1 + 16 + 16 * 16),  # 273: Based's map on its 16-d keys
    "performer m=160": (lambda: PerformerFeatureMap(D_SMALL, 160, seed=3, scale=D_SMALL ** -0.25), D_SMALL, 160),
    "hedgehog F=96": (lambda: HedgehogFeatureMap(2, D_SMALL, 96), D_SMALL, 192),
}


@needs_kernel
@pytest.mark.parametrize("name", list(WIDE_MAPS))
def test_maps_wider_than_a_key_tile_agree_across_reference_kernel_ops(name):
    make, d_k, n_features = WIDE_MAPS[name]
    fm = make()
    if isinstance(fm, torch.nn.Module):
        fm = fm.to(DEVICE)
    q, k = (gaussian(1, 2, 13, d_k, seed=s).to(DEVICE) * 0.5 for s in (50, 51))
    v = gaussian(1, 2, 13, 6, seed=52).to(DEVICE)
    phi = resolve_feature_map(fm)
    assert phi(q).shape[-1] == n_features > 128, f"{name}: expected {n_features} features (> 128), got {phi(q).shape[-1]}"
    ref = linear_attention_reference(q, k, v, feature_map=fm, normalize=True)
    for backend in ("triton", "vectorized"):
        r = ops.linear_attention(q, k, v, feature_map=fm, normalize=True, chunk_size=16, backend=backend)
        assert r.backend == backend
        assert_agree(r.out, ref, 1e-5, f"{name}: ops backend={backend}")


@needs_kernel
def test_hedgehog_gradients_through_the_kernel_equal_the_reference():
    q, k, v = (t.to(DEVICE) for t in _qkv("hedgehog", T=17))
    grads = []
    for backend in ("triton", "recurrent"):
        hh = HedgehogFeatureMap(2, D_SMALL).to(DEVICE)
        with torch.no_grad():
            hh.weight.add_(0.3 * gaussian(*hh.weight.shape, seed=30).to(DEVICE))
        out = ops.linear_attention(q, k, v, feature_map=hh, normalize=True, chunk_size=16, backend=backend).out
        out.pow(2).sum().backward()
        grads.append((hh.weight.grad, hh.bias.grad))
    for a, b in zip(*grads):
        assert_agree(a, b, 1e-4, "Hedgehog parameter gradients, triton vs recurrent")
    assert grads[0][0].abs().max() > 1e-3


D_MODEL, HEADS, T_LAYER = 16, 2, 19


def _layer(name):
    torch.manual_seed(0)
    fm = MAPS[name]()
    kwargs = {"qk_dim": 4} if name == "taylor" else {}
    norm = "normalizer" if _normalize(name) else "rmsnorm"
    return LinearAttention(D_MODEL, HEADS, feature_map=fm, norm=norm, chunk_size=8, **kwargs)


@pytest.mark.parametrize("name", [n for n in MAPS if n != "cosformer"])
def test_layer_forward_equals_reference_and_step_by_step_decoding(name):
    layer = _layer(name)
    x = gaussian(2, T_LAYER, D_MODEL, seed=40)
    with torch.no_grad():
        y, state = layer(x)
        steps, s = [], None
        for t in range(T_LAYER):
            y_t, s = layer.step(x[:, t], s)
            steps.append(y_t)
        q, k, v = layer._heads(layer.q_proj(x)), layer._heads(layer.k_proj(x)), layer._heads(layer.v_proj(x))
        o = linear_attention_reference(q, k, v, feature_map=layer.feature_map, normalize=layer.norm == "normalizer")
        o = o if layer.o_norm is None else layer.o_norm(o)
        want = layer.o_proj(layer._merge(o))
    assert_agree(y, want, 1e-5, f"{name}: layer forward vs reference")
    assert_agree(torch.stack(steps, 1), y, 1e-5, f"{name}: step-by-step vs forward")
    F_out = resolve_feature_map(layer.feature_map)(q[..., :1, :]).shape[-1]
    per_head = F_out * (D_MODEL // HEADS) + (F_out if layer.norm == "normalizer" else 0)
    assert layer.state_nbytes(state) == 2 * HEADS * per_head * 4


def test_layer_with_cosformer_forward_equals_reference():
    layer = _layer("cosformer")
    x = gaussian(2, T_LAYER, D_MODEL, seed=41)
    with torch.no_grad():
        y, _ = layer(x)
        q, k, v = layer._heads(layer.q_proj(x)), layer._heads(layer.k_proj(x)), layer._heads(layer.v_proj(x))
        want = layer.o_proj(layer._merge(linear_attention_reference(q, k, v, feature_map=layer.feature_map)))
    assert_agree(y, want, 1e-5, "cosformer: layer forward vs reference")


def test_layer_step_decoding_with_cosformer():
    layer = _layer("cosformer")
    x = gaussian(1, T_LAYER, D_MODEL, seed=42)
    with torch.no_grad():
        y, _ = layer(x)
        steps, s = [], None
        for t in range(T_LAYER):
            y_t, s = layer.step(x[:, t], s)
            steps.append(y_t)
    assert_agree(torch.stack(steps, 1), y, 1e-5, "cosformer: step-by-step vs forward")


def test_hedgehog_trains_inside_a_layer():
    layer = _layer("hedgehog")
    names = [n for n, _ in layer.named_parameters()]
    assert "feature_map.weight" in names and "feature_map.bias" in names
    y, _ = layer(gaussian(1, 9, D_MODEL, seed=43))
    y.pow(2).sum().backward()
    assert layer.feature_map.weight.grad.abs().max() > 0


def test_decoder_takes_cosformer_and_performer():
    for fm in (CosFormerFeatureMap(16), PerformerFeatureMap(D_SMALL, 24)):
        q, k, v = (gaussian(1, 2, 5, D_SMALL, seed=s) for s in (50, 51, 52))
        dec = LinearAttentionDecoder(1, 2, D_SMALL, D_SMALL, feature_map=fm)
        want = linear_attention_reference(q[:, :, :1], k[:, :, :1], v[:, :, :1], feature_map=fm)
        assert_agree(dec.step(q[:, :, :1], k[:, :, :1], v[:, :, :1]), want, 1e-6, "first decoding step")


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="max_len"):
        CosFormerFeatureMap(0)
    with pytest.raises(ValueError, match="max_len M = 8"):
        CosFormerFeatureMap(8)(torch.zeros(1, 1, 9, 4))
    with pytest.raises(ValueError, match="offset 5"):
        CosFormerFeatureMap(8)(torch.zeros(1, 1, 4, 4), offset=5)
    with pytest.raises(ValueError, match="offset must be"):
        CosFormerFeatureMap(8)(torch.zeros(1, 1, 4, 4), offset=-1)
    with pytest.raises(ValueError, match="floating-point"):
        CosFormerFeatureMap(8)(torch.zeros(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="built for D = 8"):
        PerformerFeatureMap(8, 16)(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="n_features"):
        PerformerFeatureMap(8, 0)
    with pytest.raises(ValueError, match="scale"):
        PerformerFeatureMap(8, 16, scale=-1.0)
    with pytest.raises(ValueError, match=r"H=2, T, D=4"):
        HedgehogFeatureMap(2, 4)(torch.zeros(1, 3, 5, 4))
    with pytest.raises(ValueError, match=r"H=2, T, D=4"):
        HedgehogFeatureMap(2, 4)(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="feature_dim"):
        HedgehogFeatureMap(2, 4, 0)
    with pytest.raises(TypeError, match="HedgehogFeatureMap"):
        distill_hedgehog(PerformerFeatureMap(4, 8), torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match="share"):
        distill_hedgehog(HedgehogFeatureMap(2, 4), torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 5))
    with pytest.raises(ValueError, match="steps"):
        distill_hedgehog(HedgehogFeatureMap(2, 4), torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), steps=0)
    with pytest.raises(ValueError, match="as many queries"):
        linear_attention_weights(torch.zeros(1, 3, 4), torch.zeros(1, 5, 4), "relu")
    with pytest.raises(ValueError, match="one shape"):
        attention_cross_entropy(torch.zeros(3, 3), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="unknown feature map"):
        resolve_feature_map("cosformer")
    with pytest.raises(ValueError, match="the feature map must map"):  # a map that drops the head axis
        ops.linear_attention(*(torch.zeros(1, 2, 3, 4) for _ in range(3)), feature_map=lambda x: x.sum(1))
    assert set(FEATURE_MAPS) == {"elu+1", "relu", "identity", "taylor"}  # the parameter-free ones
    with pytest.raises(ValueError, match="gain"):
        vocab_head(1, 4, gain=0.0)
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1, 2], [1, 0])
