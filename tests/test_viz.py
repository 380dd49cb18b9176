"""lablib.viz: the offline Altair renderer, the local vega bundle and chapter 1's chart builders."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import warnings

import altair as alt
import numpy as np
import pandas as pd
import pytest
import torch

import lablib.viz as viz
from lablib.viz import error_chart, memory_chart, recall_chart, state_explorer, timing_chart
from lablib.viz import bundle as bundle_module
from lablib.viz.renderer import READY_EVENT, RENDERER_NAME, chart_id, render_html

# Where an http(s) address may appear in a chart's HTML: SVG/XML namespaces and the spec's
# $schema (vega-embed reads it to pick vega-lite; it never fetches it). Nothing is loaded from them.
HARMLESS_URL = re.compile(r"^https?://(www\.w3\.org/|vega\.github\.io/schema/)")


# --------------------------------------------------------------------------- data for the builders
def timings() -> pd.DataFrame:
    return pd.DataFrame(
        [{"form": form, "T": T, "seconds": c * T**p}
         for form, c, p in [("softmax", 1e-8, 2), ("linear, recurrent", 1e-4, 1), ("linear, chunkwise", 5e-6, 1)]
         for T in (128, 256, 512, 1024)]
    )


def decoding_memory() -> pd.DataFrame:
    return pd.DataFrame(
        [row for t in range(64, 513, 64)
         for row in ({"decoder": "softmax (KV cache)", "tokens": t, "bytes": t * 1024},
                     {"decoder": "linear attention (state)", "tokens": t, "bytes": 16896})]
    )


def errors() -> pd.DataFrame:
    return pd.DataFrame(
        [{"form": form, "T": T, "max_error": 1e-7 * (i + 1) * np.log2(T)}
         for i, form in enumerate(["parallel", "recurrent", "chunkwise"]) for T in (16, 64, 256)]
        + [{"form": "exact", "T": 16, "max_error": 0.0}]  # an exact zero must not break the log axis
    )


def recall() -> pd.DataFrame:
    return pd.DataFrame(
        [{"pairs": n, "d": d, "error": float(np.sqrt((n - 1) / d))} for d in (8, 16) for n in range(1, 2 * d + 1, 3)]
    )


def trajectory(T=7, d_k=4, d_v=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(T, d_k, d_v, generator=g).cumsum(0)
    outputs = torch.randn(T, d_v, generator=g)
    return states, outputs


BUILDERS = {
    "timing_chart": lambda: timing_chart(timings()),
    "memory_chart": lambda: memory_chart(decoding_memory()),
    "error_chart": lambda: error_chart(errors()),
    "recall_chart": lambda: recall_chart(recall()),
    "state_explorer": lambda: state_explorer(*trajectory()),
}


def spec_in(html: str) -> dict:
    """The vega-lite spec a chart's HTML carries for vega-embed."""
    m = re.search(r'<script type="application/json" class="lablib-vega-spec">(.*?)</script>', html, re.S)
    assert m, "no spec script in the chart's HTML"
    return json.loads(m.group(1))


def static_svg(html: str) -> str:
    """The static chart's SVG, decoded from the <img> data URI of a chart's HTML."""
    m = re.search(r'<img class="lablib-vega-static" alt="[^"]*" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)">', html)
    assert m, "no static image in the chart's HTML"
    return base64.b64decode(m.group(1)).decode()


def numbers_in_static_svg(html: str, *fields: str) -> list[dict[str, float]]:
    """The fields of every point, rect or bar in the static SVG whose aria-label names them all.

    Vega writes each mark's encoded values into its aria-label (minus signs as U+2212, thousands
    with commas); a line's path carries only its first point's, so lines are skipped.
    """
    rows = []
    for tag in re.findall(r"<(?:path|rect|circle)\b[^>]*>", static_svg(html)):
        kind = re.search(r'aria-roledescription="([^"]*)"', tag)
        label = re.search(r'aria-label="([^"]*)"', tag)
        if not kind or not label or kind.group(1) == "line mark":
            continue
        pairs = dict(kv.split(": ", 1) for kv in label.group(1).split("; ") if ": " in kv)
        if all(f in pairs for f in fields):
            rows.append({f: float(pairs[f].replace("\u2212", "-").replace(",", "")) for f in fields})
    return rows


# --------------------------------------------------------------------------- the renderer
def test_importing_lablib_viz_enables_the_renderer_idempotently():
    assert alt.renderers.active == RENDERER_NAME
    alt.renderers.enable("default")
    try:
        viz.enable()
        viz.enable()
        assert alt.renderers.active == RENDERER_NAME
        assert alt.renderers.names().count(RENDERER_NAME) == 1
    finally:
        viz.enable()


def test_bundle_is_one_text_html_key_with_svg_and_the_data():
    chart = timing_chart(timings())
    bundle = chart._repr_mimebundle_()
    assert isinstance(bundle, dict) and list(bundle) == ["text/html"], "marimo draws the chart itself only for one key"
    html = bundle["text/html"]
    assert html.startswith('<div class="lablib-vega" id="lablib-vega-') and html.endswith("</div>")
    assert static_svg(html).startswith("<svg") and static_svg(html).rstrip().endswith("</svg>")
    # The data travels inside the spec...
    spec = spec_in(html)
    assert spec == json.loads(json.dumps(chart.to_dict()))
    rows = next(iter(spec["datasets"].values()))
    assert {"form": "linear, chunkwise", "T": 512, "seconds": pytest.approx(5e-6 * 512)} in rows
    # ...and is what the static SVG shows (legend labels, one point per row).
    assert "linear, chunkwise" in static_svg(html)
    drawn = numbers_in_static_svg(html, "sequence length T", "seconds per forward pass")
    drawn = sorted((r["sequence length T"], r["seconds per forward pass"]) for r in drawn)
    wanted = sorted(zip(timings()["T"], timings().seconds))
    assert [T for T, _ in drawn] == [T for T, _ in wanted]
    assert [s for _, s in drawn] == pytest.approx([s for _, s in wanted], rel=1e-2)


def test_html_loads_nothing_from_the_network():
    for name, build in BUILDERS.items():
        html = build()._repr_mimebundle_()["text/html"]
        srcs = re.findall(r'src="([^":]*:[^,]*,)', html)
        assert srcs == ["data:image/svg+xml;base64,"], (name, srcs)  # only the inline static image
        for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs", "esm.sh", "googleapis"):
            assert cdn not in html, (name, cdn)
        urls = re.findall(r"https?://[^\s\"'<>)]+", html)
        assert all(HARMLESS_URL.match(u) for u in urls), (name, [u for u in urls if not HARMLESS_URL.match(u)])
        assert spec_in(html).get("data", {}).get("url") is None


def test_same_chart_gives_identical_html_whatever_was_drawn_before():
    first = render_html(state_explorer(*trajectory()).to_dict())  # has gradient legends
    render_html(error_chart(errors()).to_dict())  # move vl-convert's id counters on
    render_html(state_explorer(*trajectory(seed=1)).to_dict())
    again = state_explorer(*trajectory())._repr_mimebundle_()["text/html"]
    assert again == first
    cid = re.match(r'<div class="lablib-vega" id="(lablib-vega-[0-9a-f]{12})"', first).group(1)
    assert cid == chart_id(state_explorer(*trajectory()).to_dict())
    other = render_html(state_explorer(*trajectory(seed=1)).to_dict())
    assert re.match(r'<div class="lablib-vega" id="([^"]+)"', other).group(1) != cid


def test_svg_ids_are_scoped_to_the_chart():
    html = render_html(state_explorer(*trajectory()).to_dict())
    cid = chart_id(state_explorer(*trajectory()).to_dict())
    svg = static_svg(html)
    ids = re.findall(r'(?<![\w-])id="([^"]+)"', svg)
    assert ids, "expected gradient ids in a chart with colour legends"
    assert all(i.startswith(cid + "-") for i in ids), ids
    for ref in re.findall(r"url\(#([^)]+)\)", svg):
        assert ref in ids, f"url(#{ref}) points at no id in this chart"


def test_static_chart_is_one_image_jupyterlabs_sanitizer_keeps():
    """Untrusted JupyterLab outputs lose <svg> and <script> but keep <img> with a data URI."""
    html = render_html(memory_chart(decoding_memory()).to_dict())
    assert "<svg" not in html.replace(static_svg(html), "")  # one copy of the chart, as the image
    assert html.count("data:image/svg+xml;base64,") == 1
    assert 'alt="Memory' in html or 'alt="chart"' in html


def test_spec_cannot_break_out_of_its_script_tag():
    df = pd.DataFrame({"form": ["</script><script>alert(1)</script> & <!--"], "T": [1], "seconds": [1.0]})
    html = render_html(timing_chart(df).to_dict())
    block = re.search(r'class="lablib-vega-spec">(.*?)</script>', html, re.S).group(1)
    assert "<" not in block and ">" not in block
    assert spec_in(html)["datasets"]
    assert next(iter(spec_in(html)["datasets"].values()))[0]["form"] == df.form[0]


def test_upgrade_script_handles_both_load_orders():
    html = render_html(memory_chart(decoding_memory()).to_dict())
    script = html[html.rindex("<script>"):]
    assert "window.vegaEmbed" in script and f'"{READY_EVENT}"' in script
    assert "addEventListener(event, upgrade)" in script  # bundle loaded after the chart
    assert re.search(r'typeof window\.vegaEmbed === "function"\) upgrade\(\)', script)  # ...or before
    assert "actions: false" in script


def test_a_chart_that_fetches_its_data_warns():
    chart = alt.Chart(alt.Data(url="data/somewhere.csv")).mark_point().encode(x="a:Q")
    with pytest.warns(UserWarning, match="offline page cannot fetch"):
        render_html(chart.to_dict())


# --------------------------------------------------------------------------- the vega bundle
@pytest.fixture(scope="module")
def written_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("static") / "sub" / "vega-bundle.js"
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "lablib.viz.bundle", str(path)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(path)
    return path


def test_write_vega_bundle_writes_a_classic_script_with_vega_embed(written_bundle):
    js = written_bundle.read_text(encoding="utf-8")
    assert written_bundle.stat().st_size > 500_000
    assert "vegaEmbed" in js and READY_EVENT in js
    assert "window.vegaEmbed" in js and "window.vega" in js and "window.vegaLite" in js
    assert not bundle_module.is_es_module(js), "load it with a classic <script>: it must have no import/export"
    assert js.rstrip().endswith("})();")
    assert "cdn.jsdelivr" not in js and "unpkg.com" not in js


def test_is_es_module_tells_modules_from_scripts():
    assert bundle_module.is_es_module('import x from "y";\nx();')
    assert bundle_module.is_es_module("const a = 1;export { a };")
    assert bundle_module.is_es_module("export default 3")
    assert bundle_module.is_es_module("console.log(import.meta.url)")
    assert not bundle_module.is_es_module('const m = await import("./m.js");')
    assert not bundle_module.is_es_module("var exported = 1; function important() {}")


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the bundle")
def test_bundle_runs_as_a_classic_script_and_announces_itself(written_bundle, tmp_path):
    runner = tmp_path / "run.js"
    runner.write_text(
        "const fs = require('fs'); const fired = [];\n"
        "globalThis.window = {dispatchEvent: (e) => fired.push(e.type)};\n"
        "globalThis.Event = class { constructor(type) { this.type = type; } };\n"
        "(0, eval)(fs.readFileSync(process.argv[2], 'utf8'));\n"  # global eval: how a <script> runs
        "console.log(JSON.stringify({embed: typeof window.vegaEmbed, vega: typeof window.vega,\n"
        "  vl: typeof window.vegaLite, fired, leaked: typeof globalThis.t}));\n"
    )
    done = subprocess.run(["node", str(runner), str(written_bundle)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"embed": "function", "vega": "object", "vl": "object", "fired": [READY_EVENT], "leaked": "undefined"}


def test_write_vega_bundle_makes_folders_and_cli_usage(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_module, "vega_bundle", lambda: "/* js */")
    path = viz.write_vega_bundle(tmp_path / "a" / "b" / "vega-bundle.js")
    assert path.read_text() == "/* js */"
    assert bundle_module.main([]) == 2
    assert bundle_module.main(["--help"]) == 2


# --------------------------------------------------------------------------- the chart builders
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_builder_gives_a_valid_chart_that_renders(name):
    chart = BUILDERS[name]()
    assert isinstance(chart, alt.TopLevelMixin)
    spec = chart.to_dict(validate=True)  # raises if the spec does not match the vega-lite schema
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v6")
    assert "datasets" in spec and all(spec["datasets"].values())
    assert chart.to_dict() == spec, "building twice must give the same spec"
    html = render_html(spec)
    assert static_svg(html).startswith("<svg") and "no static copy" not in html


def test_timing_chart_is_log_log_with_title_colour_and_tooltip():
    spec = timing_chart(timings()).to_dict()
    assert spec["title"] == "Time per forward pass vs sequence length"
    enc = spec["encoding"]
    assert enc["x"]["scale"]["type"] == "log" and enc["y"]["scale"]["type"] == "log"
    assert enc["color"]["field"] == "form" and {t["field"] for t in enc["tooltip"]} == {"form", "T", "seconds"}
    assert spec["mark"]["point"] is True
    with pytest.raises(ValueError, match="> 0"):
        timing_chart(timings().assign(seconds=0.0))


def test_memory_chart_shows_kib():
    df = decoding_memory()
    html = render_html(memory_chart(df).to_dict())
    drawn = numbers_in_static_svg(html, "tokens decoded", "KiB kept (KV cache or state)")
    assert len(drawn) == len(df)
    assert sorted(r["KiB kept (KV cache or state)"] for r in drawn) == pytest.approx(sorted(df.bytes / 1024), rel=1e-3)


def test_error_chart_is_log_y_and_survives_exact_zeros():
    spec = error_chart(errors()).to_dict()
    y = spec["layer"][0]["encoding"]["y"]
    assert y["scale"]["type"] == "log"
    low, high = y["scale"]["domain"]
    rows = next(v for v in spec["datasets"].values() if "max_error" in v[0])
    assert min(r["shown"] for r in rows) == low > 0  # the zero sits on the floor, not at -inf
    assert min(r["max_error"] for r in rows) == 0  # and its tooltip still says 0
    assert high >= 1e-4  # the 1e-5 tolerance rule is inside the plot
    assert "0 (exact)" in render_html(spec)  # the floor's tick label
    assert "0 (exact)" not in render_html(error_chart(errors().query("max_error > 0")).to_dict())
    with pytest.raises(ValueError, match=">= 0"):
        error_chart(errors().assign(max_error=-1.0))


def test_recall_chart_has_one_line_per_state_dim():
    spec = recall_chart(recall()).to_dict()
    assert spec["layer"][0]["encoding"]["color"]["field"] == "d"
    html = render_html(spec)
    assert re.search(r">\s*8\s*<", static_svg(html)) and re.search(r">\s*16\s*<", static_svg(html))  # legend entries


def test_builders_name_missing_columns():
    with pytest.raises(ValueError, match="seconds"):
        timing_chart(timings().drop(columns="seconds"))
    with pytest.raises(ValueError, match="bytes"):
        memory_chart(decoding_memory().rename(columns={"bytes": "b"}))
    with pytest.raises(ValueError, match="max_error"):
        error_chart(errors().drop(columns="max_error"))
    with pytest.raises(ValueError, match="pairs"):
        recall_chart(recall().drop(columns="pairs"))


# --------------------------------------------------------------------------- state_explorer
def test_state_explorer_has_a_t_slider_over_every_step():
    T = 7
    spec = state_explorer(*trajectory(T=T)).to_dict()
    params = {p["name"]: p for p in spec["params"]}
    assert set(params) == {"t"}
    t = params["t"]
    assert t["bind"]["input"] == "range"
    assert (t["bind"]["min"], t["bind"]["max"], t["bind"]["step"]) == (0, T - 1, 1)
    assert t["value"] == 0
    assert len(spec["hconcat"]) == 2
    for panel in spec["hconcat"]:
        assert {"filter": "(datum.t === t)"} in panel["transform"]
    heat = spec["hconcat"][0]
    assert heat["mark"]["type"] == "rect"
    scale = heat["encoding"]["color"]["scale"]
    assert scale["domainMid"] == 0 and scale["scheme"] in {"blueorange", "redblue"}
    states, _ = trajectory(T=T)
    assert scale["domain"] == pytest.approx([-states.abs().max().item(), states.abs().max().item()], abs=1e-4)


@pytest.mark.parametrize("t", [0, 4, 6])
def test_state_explorer_static_picture_shows_s_t_and_o_t(t):
    states, outputs = trajectory(T=7, d_k=4, d_v=3)
    html = render_html(state_explorer(states, outputs, start=t).to_dict())
    cells = numbers_in_static_svg(html, "key dim i", "value dim j", "S_t[i, j]")
    assert len(cells) == 4 * 3
    for c in cells:
        assert c["S_t[i, j]"] == pytest.approx(states[t, int(c["key dim i"]), int(c["value dim j"])].item(), abs=1e-4)
    bars = numbers_in_static_svg(html, "value dim j", "o_t[j]")
    assert sorted((int(b["value dim j"]), b["o_t[j]"]) for b in bars) == [
        (j, pytest.approx(outputs[t, j].item(), abs=1e-4)) for j in range(3)
    ]
    assert f"state S_t at t = {t}" in static_svg(html)


def test_state_explorer_takes_torch_numpy_and_checks_its_inputs():
    states, outputs = trajectory()
    assert state_explorer(states, outputs).to_dict() == state_explorer(states.numpy(), outputs.numpy()).to_dict()
    assert state_explorer(states.requires_grad_(), outputs).to_dict()  # tensors that need grad are fine
    with pytest.raises(ValueError, match=r"\(T, D_k, D_v\)"):
        state_explorer(states[0], outputs)
    with pytest.raises(ValueError, match=r"\(T, D_v\)"):
        state_explorer(states, outputs[:, :2])
    with pytest.raises(ValueError, match="at most"):
        state_explorer(torch.zeros(65, 2, 2), torch.zeros(65, 2))
    with pytest.raises(ValueError, match="at most"):
        state_explorer(torch.zeros(3, 17, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="start"):
        state_explorer(states, outputs, start=len(states))
    with pytest.raises(ValueError, match="NaN"):
        state_explorer(states.detach().clone().fill_(float("nan")), outputs)


def test_state_explorer_at_the_size_limit_stays_small():
    states = torch.linspace(-1, 1, 64 * 16 * 16).reshape(64, 16, 16)
    spec = state_explorer(states, states[:, 0, :]).to_dict()  # no MaxRowsError: one data row per step
    assert len(json.dumps(spec)) < 400_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert static_svg(render_html(spec)).startswith("<svg")
