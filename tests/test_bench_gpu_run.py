"""benchmarks/gpu_run.sh, the one prepared command for a GPU machine, checked here before any GPU minute.

``bash benchmarks/gpu_run.sh OUT --smoke`` runs every phase of the GPU run on this CPU (Triton
interpreter, the CUDA test classes collected and skipped, a few interpreted kernel tests, the
benchmark's smoke grid for one op) and must write the same files a GPU run returns. Plus the
summary of a test run cut by the time cap, and the order the half-precision tests run in.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import pytest_progress  # noqa: E402

from lablib import bench  # noqa: E402

SMOKE_TIMEOUT_S = 400


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_run")
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "GPU_RUN_SKIP", "GPU_RUN_BENCH_ARGS")}
    env["PYTHON"] = sys.executable
    env["TRITON_CACHE_DIR"] = str(out / "triton-cache")  # the script's cache, not the suite's
    run = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_run.sh"), str(out / "run"), "--smoke"],
                         capture_output=True, text=True, env=env, timeout=SMOKE_TIMEOUT_S, cwd="/")
    return run, out / "run"


@pytest.mark.slow
def test_smoke_run_succeeds_and_summarizes_every_phase(smoke):
    run, out = smoke
    assert run.returncode == 0, run.stdout + run.stderr
    summary = (out / "gpu_run.txt").read_text()
    assert summary.startswith(f"gpu_run.sh --smoke -> {out}: ") and ", exit 0" in summary.splitlines()[0]
    for phase in ("versions: versions.txt", "tests: compiled kernel tests", "bench: exit 0"):
        assert phase in summary, summary
    assert summary == run.stdout  # also printed
    assert (out / "gpu_run.log").read_text().count("[gpu_run +") >= 4


@pytest.mark.slow
def test_smoke_versions_file(smoke):
    _, out = smoke
    text = (out / "versions.txt").read_text()
    for key in ("date", "host", "mode", "nvidia-smi", "python", "torch", "device", "triton", "fla", "lablib"):
        assert re.search(rf"^{key}: \S", text, re.M), (key, text)
    assert "TRITON_INTERPRET=1" in text and "no CUDA device" in text


@pytest.mark.slow
def test_smoke_test_phase_selects_the_cuda_classes_and_runs_interpreted_tests(smoke):
    _, out = smoke
    lines = (out / "tests_summary.txt").read_text().splitlines()
    m = re.match(r"compiled kernel tests \(TRITON_INTERPRET=1, -k \"TestCompiledOnCuda or .*\"\): (\d+) selected, "
                 r"(\d+) passed, 0 failed, 0 errors, (\d+) skipped, 0 not run; \d+ s in tests; pytest exit 0$", lines[0])
    assert m, lines[0]
    selected, passed, skipped = map(int, m.groups())
    assert passed >= 4 and selected == passed + skipped
    collected = next(json.loads(x) for x in (out / "tests_progress.jsonl").read_text().splitlines()
                     if json.loads(x)["event"] == "collected")["nodeids"]
    cuda = [n for n in collected if "::TestCompiledOnCuda::" in n]
    assert len(cuda) == skipped >= 30  # every CUDA class, each file's
    for name in ("scan", "linear_attention", "gated_linear_attention", "gla", "delta_rule"):
        assert any(n.startswith(f"tests/test_kernel_{name}.py::TestCompiledOnCuda::") for n in cuda), name
    # the order a GPU run takes: half precision first, then fp32 file by file, the delta rule last
    first_fp32 = next(i for i, n in enumerate(cuda) if not any(s in n for s in ("bf16", "fp16", "fused")))
    assert all(any(s in n for s in ("bf16", "fp16", "fused")) for n in cuda[:first_fp32])
    assert "test_kernel_scan" in cuda[first_fp32] and "test_kernel_delta_rule" in cuda[-1]
    assert any(x.startswith("PASSED tests/test_kernel_") for x in lines)
    assert "0 compiled kernel binaries" in (out / "compiled_tests.txt").read_text()


@pytest.mark.slow
def test_smoke_benchmark_files(smoke):
    _, out = smoke
    df = pd.read_csv(out / "attention.csv")
    expected_columns = [
        "op", "implementation", "pass", "device", "dtype", "B", "T", "H", "D", "chunk", "layout", "ms", "ms_min",
        "repeats", "flops", "bytes", "tflops", "gbps", "tflops_pct_peak", "gbps_pct_peak", "max_err", "max_abs_err",
        "check_ref", "peak_mem_gib", "status", "note",
    ]
    assert list(df.columns) == expected_columns
    assert set(df.implementation) == set(bench.implementations("linear"))  # every backend has rows
    assert set(df.op) == {"linear"} and len(df) == 4 * len(bench.SMOKE["lengths"]) * len(bench.SMOKE["dims"]) * 2
    ran = df[df.implementation != bench.FLA]
    assert (ran.status == "ok").all() and (ran.ms > 0).all() and (ran.max_err < 1e-4).all()
    fla = df[df.implementation == bench.FLA]
    assert fla.status.isin(["n/a (not installed)", "n/a (fla's Triton kernels need CUDA)"]).all()
    md = (out / "attention.md").read_text()
    assert md.startswith("# Attention benchmark: ") and "\n## linear: " in md
    assert "- run: grid budget " in md and "--budget-s " in md and "--fla-last" in md
    assert "<html" in (out / "attention.html").read_text().lower()
    assert (out / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    estimate = (out / "compile_estimate.md").read_text()
    assert estimate.startswith("# Triton kernels this grid compiles") and "| ours | 3 | 0 |" in estimate
    est = pd.read_csv(out / "compile_estimate.csv")
    assert est[est.owner == "ours"].compiles.sum() == 3  # linear attention at one D: fwd, dq, dkdv
    assert "0 compiled kernel binaries" in (out / "compiled_bench.txt").read_text()
    assert "wrote " in (out / "bench.log").read_text()


# ----------------------------------------------------------------------------- the test summary


def _events(path, events):
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def _report(nodeid, when, outcome, reason=""):
    return dict(event="report", nodeid=nodeid, when=when, outcome=outcome, duration=2.0, reason=reason)


def test_summary_of_a_run_cut_by_the_time_cap(tmp_path):
    a, b, c, d = (f"tests/t.py::Test::test_{x}" for x in "abcd")
    _events(tmp_path / "p.jsonl", [
        dict(event="collected", nodeids=[a, b, c, d]),
        dict(event="start", nodeid=a), _report(a, "setup", "passed"), _report(a, "call", "passed"),
        _report(a, "teardown", "passed"),
        dict(event="start", nodeid=b), _report(b, "setup", "passed"), _report(b, "call", "failed", "assert 2 > 1"),
        _report(b, "teardown", "passed"),
        dict(event="start", nodeid=c), _report(c, "setup", "passed"),
    ])
    with (tmp_path / "p.jsonl").open("a") as f:
        f.write('{"event": "rep')  # a line cut by the kill
    line, detail = pytest_progress.summarize(str(tmp_path / "p.jsonl"), cap_s=150, rc=124)
    assert line == (f"4 selected, 1 passed, 1 failed, 0 errors, 0 skipped, 2 not run (time cap 150 s reached while "
                    f"running {c}); 14 s in tests; pytest exit 124")
    assert f"FAILED {b}: assert 2 > 1" in detail and f"NOT RUN {c}" in detail and f"NOT RUN {d}" in detail


def test_summary_of_a_finished_run_and_of_no_run(tmp_path):
    a, b = "t.py::test_a", "t.py::test_b"
    _events(tmp_path / "p.jsonl", [
        dict(event="collected", nodeids=[a, b]),
        dict(event="start", nodeid=a), _report(a, "setup", "skipped", "Skipped: no CUDA"),
        dict(event="start", nodeid=b), _report(b, "setup", "failed", "fixture broke"), dict(event="finished"),
    ])
    line, detail = pytest_progress.summarize(str(tmp_path / "p.jsonl"), rc=1)
    assert line.startswith("2 selected, 0 passed, 0 failed, 1 errors, 1 skipped, 0 not run; ")
    assert "SKIPPED x1: Skipped: no CUDA" in detail and f"ERROR {b}: fixture broke" in detail
    line, _ = pytest_progress.summarize(str(tmp_path / "missing.jsonl"), cap_s=10)
    assert line.startswith("0 selected, 0 passed") and "no collection recorded" in line


def test_priority_order_puts_half_precision_first(monkeypatch):
    names = ["f_scan.py::T::test_fp32", "f_delta.py::T::test_bf16[64]", "f_lin.py::T::test_fp32",
             "f_lin.py::T::test_bf16[64]", "f_delta.py::T::test_fp32", "f_scan.py::T::test_half[fp16]"]
    items = [SimpleNamespace(nodeid=n) for n in names]
    monkeypatch.setenv("PYTEST_PROGRESS_ORDER", "bf16,fp16,f_scan,f_lin,f_delta")
    pytest_progress.pytest_collection_modifyitems(None, None, items)
    assert [i.nodeid for i in items] == [
        "f_delta.py::T::test_bf16[64]", "f_lin.py::T::test_bf16[64]", "f_scan.py::T::test_half[fp16]",
        "f_scan.py::T::test_fp32", "f_lin.py::T::test_fp32", "f_delta.py::T::test_fp32",
    ]
    monkeypatch.delenv("PYTEST_PROGRESS_ORDER")
    pytest_progress.pytest_collection_modifyitems(None, None, items[::-1])  # no order: unchanged, no error
