"""``python -m lablib.bench attention --smoke`` runs end to end and writes a complete, checked table.

The Triton kernel runs in the interpreter on CPU tensors, so the variable must be set before
lablib.kernels is imported (the benchmark imports it lazily, inside ``main``).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import math  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lablib import bench  # noqa: E402
from lablib.kernels.linear_attention import INTERPRETED  # noqa: E402


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert bench.main(["attention", "--smoke", "--no-progress", "--out", out]) == 0
    return out, pd.read_csv(out / "attention.csv")


def test_one_row_per_implementation_length_dim_and_pass(smoke):
    _, df = smoke
    cfg = bench.SMOKE
    keys = df[["implementation", "T", "D", "pass"]].apply(tuple, axis=1)
    expected = {(i, T, D, p) for i in bench.IMPLEMENTATIONS for T in cfg["lengths"] for D in cfg["dims"] for p in bench.PASSES}
    assert len(df) == len(expected)
    assert set(keys) == expected
    assert (df.B * df["T"] == cfg["tokens"]).all()  # B * T fixed
    assert (df.dtype == "fp32").all()


@pytest.mark.parametrize("impl", [bench.REF, bench.TRITON])
def test_linear_attention_rows_are_timed_and_checked(smoke, impl):
    if impl == bench.TRITON and not INTERPRETED:
        pytest.skip("TRITON_INTERPRET=0: the Triton kernels cannot run on the CPU")
    _, df = smoke
    rows = df[df.implementation == impl]
    assert (rows.status == "ok").all(), rows.status.tolist()
    assert rows.ms.map(math.isfinite).all() and (rows.ms > 0).all()
    assert (rows.repeats >= 3).all()
    assert rows.tflops.map(math.isfinite).all() and (rows.gbps > 0).all()
    # checked against the float64 lablib reference before timing, the error recorded
    assert rows.check_ref.str.startswith("linear_attention_chunkwise fp64").all()
    assert (rows.max_err < 1e-4).all(), rows.max_err.tolist()


def test_sdpa_and_fla_rows_are_timed_or_say_why_not(smoke):
    _, df = smoke
    for impl in (bench.SDPA, bench.FLA):
        rows = df[df.implementation == impl]
        assert len(rows) == 2 * len(bench.SMOKE["lengths"]) * len(bench.SMOKE["dims"])
        for _, r in rows.iterrows():
            if r.status == "ok":
                assert r.ms > 0 and r.max_err < 1e-4
            else:
                assert r.status.startswith("n/a (") and len(r.status) > len("n/a ()"), r.status
                assert math.isnan(r.ms)
    # on the CPU SDPA runs (softmax, checked against lablib's softmax_attention); fla needs CUDA
    assert (df[df.implementation == bench.SDPA].status == "ok").all()
    assert df[df.implementation == bench.FLA].status.str.startswith("n/a").all()


def test_flop_counts_follow_the_documented_formulas(smoke):
    _, df = smoke
    r = df[(df.implementation == bench.TRITON) & (df["T"] == 128) & (df["pass"] == "fwd")].iloc[0]
    B, H, T, D, C = r.B, r.H, r["T"], r.D, r.chunk
    assert r.flops == 2 * B * H * (T * C * D + T * C * D + 2 * T * D * D)
    assert r.bytes == B * H * T * 4 * D * 4  # q, k, v read, o written, fp32
    s = df[(df.implementation == bench.SDPA) & (df["T"] == 128) & (df["pass"] == "fwd+bwd")].iloc[0]
    assert s.flops == 3 * 2 * B * H * T * T * (D + D) / 2


def test_markdown_and_chart_are_written(smoke):
    out, _ = smoke
    md = (out / "attention.md").read_text()
    assert md.startswith("# Attention benchmark: ") and "torch " in md and "triton " in md
    for impl in bench.IMPLEMENTATIONS:
        assert impl in md
    html = (out / "attention.html").read_text()
    assert "<html" in html.lower() and "vega" in html.lower()
    assert (out / "attention.png").stat().st_size > 0


def test_peak_table():
    assert bench.peak_for("NVIDIA H100 80GB HBM3") == ("H100 SXM", 989.0, 3350.0)
    assert bench.peak_for("NVIDIA H200")[1:] == (989.0, 4800.0)
    assert bench.peak_for("NVIDIA A100-SXM4-80GB")[1:] == (312.0, 2039.0)
    assert bench.peak_for("NVIDIA H100 PCIe") is None
    assert bench.peak_for("Tesla T4") is None
