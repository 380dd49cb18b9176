"""DecayExplorer shows the numbers lablib computes, validates its inputs and ships offline JS."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
import traitlets

from lablib.attention import random_qkv, scalar_gated_recurrent
from lablib.widgets import DecayExplorer
from lablib.widgets import decay as decay_module

JS = Path(decay_module.__file__).parent / "decay.js"
ROUNDING = 1e-4  # data holds 4 decimals
DECAYS = (1.0, 0.9, 0.5, 1e-3)


def one_head(T=12, d_k=5, d_v=4, seed=3):
    q, k, v = random_qkv(T, d_k=d_k, d_v=d_v, seed=seed)
    return q[0, 0].double(), k[0, 0].double(), v[0, 0].double()


def test_mask_times_scores_is_the_scalar_gated_recurrence():
    q, k, v = one_head()
    w = DecayExplorer.from_kv(k, v, decays=DECAYS)
    for index, a in enumerate(DECAYS):
        w.index = index
        assert w.decay == a
        log_decay = torch.full((1, 1, k.shape[0]), math.log(a), dtype=torch.float64)
        want = scalar_gated_recurrent(q[None, None], k[None, None], v[None, None], log_decay)[0, 0]
        exact = decay_module.decay_mask(a, k.shape[0])
        assert torch.allclose(((q @ k.T) * exact) @ v, want, atol=1e-10)
        assert (w.mask - exact).abs().max() <= ROUNDING / 2 + 1e-12
        assert (w.mask.triu(1) == 0).all() and (w.mask.diagonal() == 1).all()


def test_norms_are_the_recurrence_states_norms():
    _, k, v = one_head()
    w = DecayExplorer.from_kv(k, v, decays=DECAYS)
    for index, a in enumerate(DECAYS):
        w.index = index
        for t in range(k.shape[0]):
            log_decay = torch.full((1, 1, t + 1), math.log(a), dtype=torch.float64)
            _, S = scalar_gated_recurrent(k[None, None, : t + 1], k[None, None, : t + 1], v[None, None, : t + 1],
                                          log_decay, return_state=True)
            assert abs(w.norms[t].item() - torch.linalg.matrix_norm(S[0, 0]).item()) <= ROUNDING / 2 + 1e-12
    assert w.data["norm_max"] == pytest.approx(max(max(n) for n in w.data["norms"]), abs=ROUNDING)


def test_data_is_json_and_half_lives_are_ln2_over_minus_ln_a():
    _, k, v = one_head()
    w = DecayExplorer.from_kv(k, v, decays=DECAYS)
    json.dumps(w.data)
    assert w.data["half_lives"][0] is None
    assert w.data["half_lives"][1] == pytest.approx(math.log(2) / -math.log(0.9), abs=0.01)
    assert w.step == k.shape[0] - 1 and w.index == 0


def test_tiny_decay_gives_zeros_not_nan():
    mask = decay_module.decay_mask(1e-300, 40)
    assert torch.isfinite(mask).all() and torch.allclose(mask.diagonal(-1), torch.full((39,), 1e-300, dtype=torch.float64), rtol=1e-9, atol=0)
    assert (mask.tril(-2) == 0).all()  # a^2 underflows float64 to an exact 0


@pytest.mark.parametrize("trait,bad", [("step", -1), ("step", 12), ("index", 4), ("index", -1)])
def test_sliders_outside_their_range_are_rejected(trait, bad):
    w = DecayExplorer.from_kv(*one_head()[1:], decays=DECAYS)
    with pytest.raises(traitlets.TraitError, match=trait):
        setattr(w, trait, bad)


@pytest.mark.parametrize(
    "k_shape,v_shape,decays,needle",
    [
        ((3, 4, 5), (3, 4), (0.5,), r"\(3, 4, 5\)"),
        ((6, 4), (5, 4), (0.5,), r"k \(6, 4\), v \(5, 4\)"),
        ((0, 4), (0, 4), (0.5,), r"\(0, 4\)"),
        ((65, 4), (65, 4), (0.5,), r"\(65, 4\)"),
        ((6, 65), (6, 4), (0.5,), r"\(6, 65\)"),
        ((6, 4), (6, 4), (1.5,), r"shape \(1,\)"),
        ((6, 4), (6, 4), (0.0, 0.5), r"shape \(2,\)"),
        ((6, 4), (6, 4), ((0.5, 0.5),), r"shape \(1, 2\)"),
        ((6, 4), (6, 4), (), r"shape \(0,\)"),
    ],
)
def test_bad_input_raises_value_error_naming_the_shape(k_shape, v_shape, decays, needle):
    with pytest.raises(ValueError, match=needle):
        DecayExplorer.from_kv(torch.randn(k_shape), torch.randn(v_shape), decays=decays)


def test_non_tensor_raises_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        DecayExplorer.from_kv([[1.0]], torch.ones(1, 1))


def test_an_empty_widget_has_no_data_and_says_so():
    w = DecayExplorer()
    assert w.T == 0
    with pytest.raises(RuntimeError, match="from_kv"):
        w.mask


def test_repr_mimebundle_has_widget_view_and_html_fallback():
    w = DecayExplorer.from_kv(*one_head()[1:], decays=DECAYS, title="decay")
    bundle = w._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "Interactive widget" in data["text/html"] and "decay" in data["text/html"]


def test_js_ships_with_the_package_and_needs_no_network():
    w = DecayExplorer.from_kv(*one_head()[1:], decays=DECAYS)
    source = w._esm
    assert source == (JS.parent / "common.js").read_text() + "\n" + JS.read_text()  # shared helpers, then the widget
    assert "export default rebuiltOnData(build)" in source and "render" in source
    assert "http" not in source.lower() and "//cdn" not in source
    assert not re.search(r"""\bimport\s*(\(|["'{*\w])""", source), "the widget's JS imports nothing"
    for hook in ('"ll-decay"', "data-value", "change:index", "change:step", "save_changes"):
        assert hook in source
