"""The benchmark's time limits, order and partial outputs, and its count of Triton compiles.

A GPU run has minutes of device time, most of it Triton compiling and fla autotuning, so
``lablib.bench`` can stop its grid at ``budget_s`` (the cases left become rows "n/a (not run
...)"), cap one case at ``case_timeout``, stop cleanly on SIGTERM, put fla last, write the rows
so far as it goes, and count beforehand the kernels a grid will compile
(``lablib.bench_compile``). The timing cases here replace the work of a case by a sleep, so they
test the bookkeeping in well under a second each.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lablib import bench, bench_compile  # noqa: E402
from lablib.kernels.linear_attention import INTERPRETED  # noqa: E402


def _cfg(**kw):
    base = dict(device=torch.device("cpu"), dtype=torch.float32, tokens=64, lengths=[32, 64], heads=1, dims=[16],
                chunk_size=16, warmup=1, repeats=3, budget=0.1, ref_max_chunks=256, progress=False, ops=["linear"])
    return bench.Config(**{**base, **kw})


@pytest.fixture
def fake_case(monkeypatch):
    """Replace a case's work by ``plan[implementation](add)``; default: both passes 'ok' at once."""
    plan = {}

    def no_fla(op, cfg):
        raise bench.NotAvailable("left out of this test")  # (and fla's import, seconds, with it)

    def run_case(cfg, op, T, D, name, impl, B, add, state, tol, dtype_name):
        step = plan.get(name)
        if step is not None:
            step(add)
        for p in bench.PASSES:
            add(p, "ok", ms=1.0, repeats=3)

    monkeypatch.setattr(bench, "_run_case", run_case)
    monkeypatch.setattr(bench, "_fla", no_fla)
    return plan


def test_budget_stops_the_grid_and_marks_the_rest_not_run(fake_case):
    fake_case[bench.REF] = lambda add: time.sleep(0.3)  # every reference case takes 0.3 s
    df = bench.run_attention(_cfg(budget_s=0.45))
    fwd = df[df["pass"] == "fwd"]
    assert list(zip(fwd["T"], fwd.implementation)) == [(T, i) for T in (32, 64) for i in bench.implementations("linear")]
    status = df.set_index(["T", "implementation", "pass"]).status
    # T = 32: the reference (0.3 s) and the three quick cases run; T = 64: the reference starts at
    # 0.3 s with 0.15 s left and is stopped, and every case after it is not run
    assert all(status[32, i, p] == "ok" for i in bench.implementations("linear") for p in bench.PASSES)
    assert all(status[64, bench.REF, p] == "n/a (timed out: --budget-s 0.45 s used up)" for p in bench.PASSES)
    for i in bench.implementations("linear")[1:]:
        assert all(status[64, i, p] == "n/a (not run: --budget-s 0.45 s used up)" for p in bench.PASSES)
    assert len(df) == 2 * 4 * 2


def test_case_timeout_keeps_the_passes_done_and_the_grid_goes_on(fake_case):
    def slow_backward(add):
        add("fwd", "ok", ms=1.0, repeats=3)  # the forward is measured, then the case hangs
        time.sleep(5)

    fake_case[bench.TRITON] = slow_backward
    t0 = time.monotonic()
    df = bench.run_attention(_cfg(case_timeout=0.2, lengths=[32]))
    assert time.monotonic() - t0 < 2
    ours = df[df.implementation == bench.TRITON].set_index("pass").status
    assert ours["fwd"] == "ok" and ours["fwd+bwd"] == "n/a (timed out after 0.2 s (--case-timeout))"
    assert (df[df.implementation != bench.TRITON].status == "ok").all()  # the cases after it ran


def test_sigterm_stops_the_grid_and_returns_what_was_measured(fake_case):
    def terminate(add):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    fake_case[bench.SDPA] = terminate
    before = signal.getsignal(signal.SIGTERM)
    df = bench.run_attention(_cfg(lengths=[32, 64]))
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the run's only
    s = df.set_index(["T", "implementation", "pass"]).status.sort_index()
    assert (s[32, bench.REF] == "ok").all() and (s[32, bench.TRITON] == "ok").all()
    assert (s[32, bench.SDPA] == "n/a (stopped by SIGTERM)").all()
    assert (s.loc[64] == "n/a (not run: stopped by SIGTERM)").all() and len(df) == 16


def test_checkpoint_receives_the_rows_so_far(fake_case):
    sizes = []
    df = bench.run_attention(_cfg(), checkpoint=lambda partial: sizes.append(len(partial)), checkpoint_every_s=0)
    assert sizes == list(range(2, len(df) + 1, 2))  # after every case, two rows (passes) more each time


def test_partial_outputs_are_the_csv_and_table_only(tmp_path, fake_case):
    df = bench.run_attention(_cfg(lengths=[32]))
    written = bench.write_outputs(df, ["# header"], tmp_path, chart=False)
    assert set(written) == {"csv", "md"} and sorted(p.name for p in tmp_path.iterdir()) == ["attention.csv", "attention.md"]
    assert pd.read_csv(tmp_path / "attention.csv").shape[0] == len(df)


def test_fla_last_runs_fla_after_everything_else_in_fla_order():
    cfg = _cfg(ops=list(bench.OPS), lengths=[32, 64], dims=[16, 32], fla_last=True)
    jobs = bench.jobs(cfg)
    assert sorted(jobs) == sorted(bench.jobs(_cfg(ops=list(bench.OPS), lengths=[32, 64], dims=[16, 32])))
    fla = [j for j in jobs if j[3] == bench.FLA_NAMES[j[0]]]
    assert jobs[-len(fla):] == fla and len(fla) == 5 * 2 * 2
    assert [j[0] for j in fla[::4]] == list(bench.FLA_ORDER)  # op by op, 4 sizes each
    assert sorted(bench.FLA_ORDER) == sorted(bench.OPS)


def test_gpu_grid_preset_and_flags():
    args = bench._parser().parse_args(["attention", "--grid", "gpu", "--device", "cpu"])
    cfg = bench._config(args)
    assert cfg.lengths == [1024, 2048, 4096, 8192, 16384, 32768] and cfg.dims == [64, 128] and cfg.heads == 16
    assert cfg.dtype == torch.bfloat16 and cfg.tokens == 32768 and cfg.ops == list(bench.OPS)
    assert (cfg.budget_s, cfg.case_timeout, cfg.fla_last, cfg.autotune_rep_ms) == (330.0, 150.0, True, 20.0)
    assert cfg.ref_max_chunks == 64
    text = bench._argv_text(cfg)
    assert "--budget-s 330 --case-timeout 150 --fla-last --autotune-rep-ms 20" in text
    # explicit flags override the preset
    cfg = bench._config(bench._parser().parse_args(
        ["attention", "--grid", "gpu", "--device", "cpu", "--budget-s", "60", "--no-fla-last", "--lengths", "4096"]))
    assert (cfg.budget_s, cfg.fla_last, cfg.lengths) == (60.0, False, [4096])
    # the full grid has no limits
    cfg = bench._config(bench._parser().parse_args(["attention", "--device", "cpu"]))
    assert (cfg.budget_s, cfg.case_timeout, cfg.fla_last, cfg.autotune_rep_ms) == (None, None, False, None)
    with pytest.raises(SystemExit):
        bench._config(bench._parser().parse_args(["attention", "--device", "cpu", "--budget-s", "0"]))


def test_shorten_autotuning_replaces_the_benchmarker_of_a_packages_autotuners(monkeypatch):
    import triton
    import triton.language as tl

    @triton.autotune(configs=[triton.Config({"BLOCK": 16}), triton.Config({"BLOCK": 32})], key=["n"])
    @triton.jit
    def kernel(x, n, BLOCK: tl.constexpr):
        pass

    module = types.ModuleType("fakefla.ops")
    module.kernel = kernel
    module.other = object()
    monkeypatch.setitem(sys.modules, "fakefla.ops", module)
    assert bench.shorten_autotuning(20.0, package="fakefla") == (1, 1)
    calls = []
    monkeypatch.setattr("triton.testing.do_bench", lambda fn, warmup, rep, quantiles: calls.append((warmup, rep)))
    kernel.do_bench(lambda: None, quantiles=(0.5,))
    assert calls == [(5.0, 20.0)]


# ----------------------------------------------------------------------------- compile estimate


@pytest.mark.skipif(not INTERPRETED, reason="the recorder is tested here on the interpreter's launches")
def test_estimate_counts_each_specialization_once(monkeypatch):
    """Our linear-attention kernel: 1 forward and 2 backward kernels per head dim. T = 32 and 64 are both
    multiples of 16, so the second length compiles nothing new; T = 40 is not: all three again.
    (fla's autotuned launches are counted in the smoke run of benchmarks/gpu_run.sh, where fla is installed.)"""
    monkeypatch.setattr(bench, "_fla", lambda op, cfg: (_ for _ in ()).throw(bench.NotAvailable("left out")))
    cfg = _cfg(lengths=[32, 64, 40], dims=[16, 32])
    df = bench_compile.estimate(cfg)
    ours = df[df.owner == "ours"]
    assert set(ours.kernel) == {"_chunk_fwd_kernel", "_chunk_dq_kernel", "_chunk_dkdv_kernel"}
    assert not ours.error.any()
    new = ours.groupby(["T", "D"]).compiles.sum()
    assert new[32, 16] == new[32, 32] == 3 and new[64, 16] == new[64, 32] == 0 and new[40, 16] == new[40, 32] == 3
    fwd = ours[ours["pass"] == "fwd"]
    assert set(fwd.kernel) == {"_chunk_fwd_kernel"}
    summary = bench_compile.summarize(df, cfg)
    row = summary[(summary.owner == "ours") & (summary.D == 16)].iloc[0]
    assert row.compiles == 6 and row.kernels == 3 and row.est_s > 0
    fla = df[df.owner == "fla"]
    assert len(fla) == 3 * 2 and (fla.error == "not available: left out").all() and (fla.compiles == 0).all()


def test_estimate_writes_its_table(tmp_path, monkeypatch):
    df = pd.DataFrame([
        dict(op="linear", implementation=bench.TRITON, owner="ours", **{"pass": "fwd"}, T=64, D=16, B=1,
             kernel="_chunk_fwd_kernel", kind="jit", configs=1, compiles=1, autotuned_configs=0, error=""),
        dict(op="linear", implementation=bench.FLA_NAMES["linear"], owner="fla", **{"pass": "fwd"}, T=64, D=16, B=1,
             kernel="chunk_fwd_kernel_h", kind="autotune", configs=48, compiles=48, autotuned_configs=48, error=""),
    ])
    cfg = _cfg(dtype=torch.bfloat16, autotune_rep_ms=20.0)
    written = bench_compile.write_estimate(df, cfg, tmp_path)
    md = written["md"].read_text()
    assert "| ours | 1 | 0 | 4 |" in md  # 3.5 s
    fla_s = 48 * bench_compile.SECONDS["fla"] + 48 * ((5 + 20) / 1e3 + bench_compile.SECONDS["autotune_overhead"])
    assert f"| fla | 48 | 48 | {fla_s:.0f} |" in md and "| all | 49 | 48 |" in md
    assert pd.read_csv(written["csv"]).shape == (2, 13)
