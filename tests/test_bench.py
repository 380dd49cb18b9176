"""``python -m lablib.bench attention --smoke`` runs every op end to end and writes a complete, checked table.

The Triton kernels run in the interpreter on CPU tensors, so the variable must be set before
lablib.kernels is imported (the benchmark imports them lazily, inside ``main``). One smoke run
(all five ops, about 30 s) is shared by the tests of this module.
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


def test_one_row_per_op_implementation_length_dim_and_pass(smoke):
    _, df = smoke
    cfg = bench.SMOKE
    keys = df[["op", "implementation", "T", "D", "pass"]].apply(tuple, axis=1)
    expected = {
        (op, i, T, D, p)
        for op in bench.OPS for i in bench.implementations(op)
        for T in cfg["lengths"] for D in cfg["dims"] for p in bench.PASSES
    }
    assert len(df) == len(expected)
    assert set(keys) == expected
    assert (df.B * df["T"] == cfg["tokens"]).all()  # B * T fixed
    assert (df.dtype == "fp32").all()
    # the linear op keeps the original implementation names
    assert set(df[df.op == "linear"].implementation) == set(bench.IMPLEMENTATIONS)


@pytest.mark.parametrize("impl", [bench.REF, bench.TRITON])
@pytest.mark.parametrize("op", bench.OPS)
def test_reference_and_triton_rows_are_timed_and_checked(smoke, op, impl):
    if impl == bench.TRITON and not INTERPRETED:
        pytest.skip("TRITON_INTERPRET=0: the Triton kernels cannot run on the CPU")
    _, df = smoke
    rows = df[(df.op == op) & (df.implementation == impl)]
    assert len(rows) == 2 * len(bench.SMOKE["lengths"]) * len(bench.SMOKE["dims"])
    assert (rows.status == "ok").all(), rows.status.tolist()
    assert rows.ms.map(math.isfinite).all() and (rows.ms > 0).all()
    assert (rows.repeats >= 3).all()
    assert rows.tflops.map(math.isfinite).all() and (rows.gbps > 0).all()
    # checked against the op's float64 lablib reference before timing, the error recorded
    assert rows.check_ref.str.startswith(f"{bench.REF_FUNCTIONS[op]} fp64").all()
    assert (rows.max_err < 1e-4).all(), rows.max_err.tolist()
    assert (rows.chunk == bench.SMOKE["chunk_size"]).all()


@pytest.mark.parametrize("op", bench.OPS)
def test_sdpa_and_fla_rows_are_timed_or_say_why_not(smoke, op):
    _, df = smoke
    for impl in (bench.SDPA, bench.FLA_NAMES[op]):
        rows = df[(df.op == op) & (df.implementation == impl)]
        assert len(rows) == 2 * len(bench.SMOKE["lengths"]) * len(bench.SMOKE["dims"])
        for _, r in rows.iterrows():
            if r.status == "ok":
                assert r.ms > 0 and r.max_err < 1e-4
            else:
                assert r.status.startswith("n/a (") and len(r.status) > len("n/a ()"), r.status
                assert math.isnan(r.ms)
    # on the CPU SDPA runs (softmax, checked against lablib's softmax_attention); fla needs CUDA
    sdpa = df[(df.op == op) & (df.implementation == bench.SDPA)]
    assert (sdpa.status == "ok").all()
    assert sdpa.check_ref.str.startswith("softmax_attention fp64").all()
    fla = df[(df.op == op) & (df.implementation == bench.FLA_NAMES[op])]
    assert fla.status.isin(["n/a (not installed)", "n/a (fla's Triton kernels need CUDA)"]).all(), fla.status.tolist()


def test_flop_and_byte_columns_follow_the_documented_formulas(smoke):
    _, df = smoke
    r = df[(df.op == "linear") & (df.implementation == bench.TRITON) & (df["T"] == max(bench.SMOKE["lengths"])) & (df["pass"] == "fwd")].iloc[0]
    B, H, T, D, C = r.B, r.H, r["T"], r.D, r.chunk
    assert r.flops == 2 * B * H * (T * C * D + T * C * D + 2 * T * D * D)
    assert r.bytes == B * H * T * 4 * D * 4  # q, k, v read, o written, fp32
    s = df[(df.op == "linear") & (df.implementation == bench.SDPA) & (df["T"] == max(bench.SMOKE["lengths"])) & (df["pass"] == "fwd+bwd")].iloc[0]
    assert s.flops == 3 * 2 * B * H * T * T * (D + D) / 2
    # every row: its op's (or softmax's) formula, at the row's chunk (fla's 64)
    for _, r in df.iterrows():
        kind = "softmax" if r.implementation == bench.SDPA else r.op
        chunk = bench.SMOKE["chunk_size"] if pd.isna(r.chunk) else int(r.chunk)
        assert r.flops == pytest.approx(bench.flops(kind, r["pass"], r.B, r.H, r["T"], r.D, r.D, chunk))
        gate_op = "linear" if kind == "softmax" else r.op
        assert r.bytes == bench.nbytes(r["pass"], r.B, r.H, r["T"], r.D, r.D, 4, gate_op)
    g = df[(df.op == "gla") & (df.implementation == bench.TRITON) & (df["pass"] == "fwd")].iloc[0]
    assert g.bytes == g.B * g.H * g["T"] * (4 * g.D * 4 + g.D * 4)  # + log_alpha, fp32, D_k per token


def test_markdown_and_chart_are_written(smoke):
    out, _ = smoke
    md = (out / "attention.md").read_text()
    assert md.startswith("# Attention benchmark: ") and "torch " in md and "triton " in md
    assert "produced by: python -m lablib.bench attention --op linear,scalar_gated,gla,delta,gated_delta" in md
    positions = [md.index(f"\n## {op}: ") for op in bench.OPS]  # one section per op, in order
    assert positions == sorted(positions)
    for op in bench.OPS:
        for impl in bench.implementations(op):
            assert impl in md
    html = (out / "attention.html").read_text()
    assert "<html" in html.lower() and "vega" in html.lower()
    assert (out / "attention.png").stat().st_size > 0


def test_one_op_from_the_command_line(tmp_path):
    assert bench.main(["attention", "--smoke", "--op", "linear", "--lengths", "64", "--no-progress", "--out", tmp_path]) == 0
    df = pd.read_csv(tmp_path / "attention.csv")
    assert set(df.op) == {"linear"} and len(df) == 4 * 2
    md = (tmp_path / "attention.md").read_text()
    assert "\n## linear: " in md and "\n## gla: " not in md


def test_peak_table():
    assert bench.peak_for("NVIDIA H100 80GB HBM3") == ("H100 SXM", 989.0, 3350.0)
    assert bench.peak_for("NVIDIA H200")[1:] == (989.0, 4800.0)
    assert bench.peak_for("NVIDIA A100-SXM4-80GB")[1:] == (312.0, 2039.0)
    assert bench.peak_for("NVIDIA H100 PCIe") is None
    assert bench.peak_for("Tesla T4") is None
