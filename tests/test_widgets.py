"""RecurrenceStepper shows the numbers lablib computes, validates its inputs and ships offline JS."""

import json
import re
from pathlib import Path

import pytest
import torch
import traitlets

from lablib.attention import linear_attention_recurrent, linear_attention_reference, random_qkv, resolve_feature_map
from lablib.widgets import RecurrenceStepper
from lablib.widgets import recurrence as recurrence_module

WIDGETS_DIR = Path(recurrence_module.__file__).parent
ROUNDING = 1e-4  # data holds 4 decimals


def one_head(T=9, d_k=5, d_v=4, seed=7):
    q, k, v = random_qkv(T, d_k=d_k, d_v=d_v, seed=seed)
    return q[0, 0], k[0, 0], v[0, 0]


def prefix_states(q, k, v, **kw):
    """S_t and z_t from the library's recurrence, run on each prefix 0..t."""
    states = [
        linear_attention_recurrent(q[None, None, : t + 1], k[None, None, : t + 1], v[None, None, : t + 1],
                                   return_state=True, **kw)[1]
        for t in range(q.shape[0])
    ]
    return torch.stack([s.kv[0, 0] for s in states]), torch.stack([s.k_sum[0, 0] for s in states])


@pytest.mark.parametrize("feature_map,normalize", [("elu+1", True), ("relu", True), ("identity", False)])
def test_data_matches_the_library(feature_map, normalize):
    q, k, v = one_head()
    w = RecurrenceStepper.from_qkv(q, k, v, feature_map=feature_map, normalize=normalize)
    d = w.data
    assert (d["T"], d["d_k"], d["d_v"]) == (9, 5, 4)
    kw = dict(feature_map=feature_map, normalize=normalize)
    S, z = prefix_states(q, k, v, **kw)
    out = linear_attention_recurrent(q[None, None], k[None, None], v[None, None], **kw)[0, 0]
    ref = linear_attention_reference(q[None, None], k[None, None], v[None, None], **kw)[0, 0]
    phi = resolve_feature_map(feature_map)
    torch.testing.assert_close(torch.tensor(d["state"]), S, atol=ROUNDING, rtol=0)
    torch.testing.assert_close(torch.tensor(d["z"]), z, atol=ROUNDING, rtol=0)
    torch.testing.assert_close(torch.tensor(d["output"]), out, atol=ROUNDING, rtol=0)
    torch.testing.assert_close(torch.tensor(d["output"]), ref, atol=ROUNDING, rtol=1e-4)
    torch.testing.assert_close(torch.tensor(d["phi_q"]), phi(q), atol=ROUNDING, rtol=0)
    torch.testing.assert_close(torch.tensor(d["phi_k"]), phi(k), atol=ROUNDING, rtol=0)
    torch.testing.assert_close(torch.tensor(d["v"]), v, atol=ROUNDING, rtol=0)
    torch.testing.assert_close(torch.tensor(d["update"]), phi(k)[:, :, None] * v[:, None, :], atol=ROUNDING, rtol=0)
    # The state really grows: S_t - S_{t-1} is the write shown at step t.
    torch.testing.assert_close(torch.tensor(d["state"]).diff(dim=0), torch.tensor(d["update"])[1:], atol=3 * ROUNDING, rtol=0)


def test_data_is_json_with_four_decimals():
    w = RecurrenceStepper.from_qkv(*one_head())
    text = json.dumps(w.data)  # raises on tensors or numpy scalars
    decimals = [len(m) for m in re.findall(r"\.(\d+)", text)]
    assert decimals and max(decimals) <= 4  # (eps prints as 1e-06, which has no ".")
    scale = w.data["scale"]
    assert scale["state"] == pytest.approx(max(abs(x) for S in w.data["state"] for row in S for x in row), abs=ROUNDING)


def test_state_and_output_properties_follow_step():
    q, k, v = one_head(T=6)
    w = RecurrenceStepper.from_qkv(q, k, v)
    fq, fk = resolve_feature_map("elu+1")(q), resolve_feature_map("elu+1")(k)
    out = linear_attention_recurrent(q[None, None], k[None, None], v[None, None])[0, 0]
    for t in range(6):
        w.step = t
        S = sum(torch.outer(fk[j], v[j]) for j in range(t + 1))
        torch.testing.assert_close(w.state, S)
        torch.testing.assert_close(w.output, out[t])
        torch.testing.assert_close(w.output, (fq[t] @ S) / (fq[t] @ fk[: t + 1].sum(0) + 1e-6))
    assert w.state.shape == (5, 4) and w.output.shape == (4,)
    w.step = 2
    assert not torch.equal(w.state, RecurrenceStepper.from_qkv(q, k, v).state)  # step 0 differs


@pytest.mark.parametrize("bad", [-1, 6, 100])
def test_step_outside_0_to_T_minus_1_is_rejected(bad):
    w = RecurrenceStepper.from_qkv(*one_head(T=6))
    with pytest.raises(traitlets.TraitError, match="step"):
        w.step = bad
    assert w.step == 0
    w.step = 5  # the last step is fine
    assert w.step == 5


def test_from_qkv_works_for_a_single_token_and_tensors_with_grad():
    q, k, v = random_qkv(1, d_k=3, d_v=2, seed=1, requires_grad=True)
    w = RecurrenceStepper.from_qkv(q[0, 0], k[0, 0], v[0, 0], title="one token")
    assert w.data["T"] == 1 and w.title == "one token"
    with pytest.raises(traitlets.TraitError):
        w.step = 1


@pytest.mark.parametrize(
    "shapes,needle",
    [
        (((2, 5, 4), (5, 4), (5, 3)), r"\(2, 5, 4\)"),  # q not 2-D
        (((5, 4), (5, 4), (6, 3)), r"\(6, 3\)"),  # different T
        (((5, 4), (5, 3), (5, 3)), r"q \(5, 4\), k \(5, 3\)"),  # q and k differ in D
        (((65, 4), (65, 4), (65, 3)), r"\(65, 4\)"),  # T too long
        (((0, 4), (0, 4), (0, 3)), r"\(0, 4\)"),  # T == 0
        (((5, 33), (5, 33), (5, 3)), r"\(5, 33\)"),  # D_k too big
        (((5, 4), (5, 4), (5, 40)), r"\(5, 40\)"),  # D_v too big
    ],
)
def test_bad_shapes_raise_value_error_naming_the_shape(shapes, needle):
    q, k, v = (torch.randn(*s) for s in shapes)
    with pytest.raises(ValueError, match=needle):
        RecurrenceStepper.from_qkv(q, k, v)


def test_repr_mimebundle_has_widget_view_and_html_fallback():
    w = RecurrenceStepper.from_qkv(*one_head(T=6), title="a <title>")
    bundle = w._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "text/html" in data
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]
    assert "JupyterLab" in html and "marimo" in html and "t = 0..5" in html
    assert "a &lt;title&gt;" in html  # escaped


def test_repr_mimebundle_when_the_parent_returns_none(monkeypatch):
    w = RecurrenceStepper.from_qkv(*one_head(T=3))
    monkeypatch.setattr(RecurrenceStepper.__mro__[1], "_repr_mimebundle_", lambda self, **kw: None)
    data = w._repr_mimebundle_()
    assert "text/html" in data and "text/plain" in data


def test_js_and_css_ship_with_the_package_and_need_no_network():
    js, css = WIDGETS_DIR / "recurrence.js", WIDGETS_DIR / "recurrence.css"
    assert js.is_file() and css.is_file()
    w = RecurrenceStepper.from_qkv(*one_head(T=3))
    common = WIDGETS_DIR / "common.js"
    assert w._esm == common.read_text() + "\n" + js.read_text()  # the shared helpers, then the widget
    assert w._css == css.read_text()
    source = w._esm
    assert "export default rebuiltOnData(build)" in source and "render" in source
    for text in (source, css.read_text()):
        assert "http" not in text.lower(), "no URLs: the widget must work offline"
        assert "//cdn" not in text and "@import" not in text
    assert not re.search(r"""\bimport\s*(\(|["'{*\w])""", source), "the widget's JS imports nothing"
    # What the browser test and the chapter rely on.
    for hook in ('"ll-step"', "ll-output", "data-value", "change:step", "save_changes"):
        assert hook in source


def test_package_data_lists_the_js_and_css():
    pyproject = (WIDGETS_DIR.parents[1] / "pyproject.toml").read_text()
    assert re.search(r'"lablib.widgets"\s*=\s*\[\s*"\*\.js",\s*"\*\.css"\s*\]', pyproject)
