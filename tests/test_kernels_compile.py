"""Every Triton kernel in lablib.kernels compiles for an H100 (sm_90), checked without a GPU.

The other kernel tests run the kernels under the Triton interpreter (TRITON_INTERPRET=1), which
never sees what only the compiler enforces: type and shape rules of tl.dot and friends, constexpr
misuse, ``None`` passed for an optional pointer reaching ``is not None`` tests in nested
@triton.jit helpers, shared memory that exceeds the device. Triton can compile for an NVIDIA
target with no GPU present (``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))``
runs the whole pipeline, ptxas included), so this file does that for every kernel.

How (all in a subprocess, since the kernels must be defined with TRITON_INTERPRET=0 and the rest
of the suite imports them interpreted; the subprocess is this file run as a script):

1. Capture. ``JITFunction.run`` (what ``kernel[grid](...)`` calls) is replaced by a recorder,
   ``lablib.kernels._base.INTERPRETED`` is set so the host code accepts CPU tensors, and the public
   functions (chunk_linear_attention, fused_recurrent_step, chunk_scalar_gated_attention,
   chunk_gla, chunk_delta_rule) are called on small CPU tensors, forward and backward. Every
   launch's real argument list and meta-parameters (_LAUNCH's num_warps / num_stages included) is
   recorded; no kernel runs (outputs stay uninitialised, which the host code does not mind).
   Each public function is called with all optional inputs given (initial_state,
   output_final_state, log_decay, gradients for all of them) and with none, plus
   chunk_delta_rule forward-only (no saved chunk states), so every optional pointer argument is
   compiled both as ``None`` and as a pointer.
2. Signature. Triton's own binder for an sm_90 backend (what a real launch would use) turns
   each recorded launch into (signature, constexprs, attrs): tensors -> "*bf16"/"*fp32",
   int -> "i32" (with the divisibility-by-16 attribute, as T = 64 here), float -> "fp32",
   None -> "constexpr" with value None, meta-parameters -> constexpr. Identical specializations
   are compiled once.
3. Compile each with ``triton.compile(..., target=GPUTarget("cuda", 90, 32))`` and the launch's
   options. Registers and spill bytes come from Triton's own ptxas -v log (ptxas-blackwell,
   --gpu-name=sm_90a; knobs.nvidia.dump_ptxas_log), kept beside the kernel in Triton's cache
   (lablib_ptxas_usage.json) for runs that find it there; shared memory from the metadata.

Configurations (chunk size 64, T = 64, B = H = 1; only the shapes matter; the delta rule with its
default chunk, 32 above D_k = 64): bf16 inputs (DOT_PRECISION "tf32") at (D_k, D_v) = (128, 128),
every kernel, every None/pointer variant; bf16 at (64, 64) and at (512, 128) (wide keys: four key
blocks of 128), every kernel, optional pointers given; fp32 inputs ("ieee") at (16, 16), every
kernel, optional pointers given. LABLIB_COMPILE_ALL=1 adds bf16 (256, 128), the None variants at
every shape, fp32 at (64, 64) and (128, 128) and every fp32 variant: compiling fp32 is
slow (the ieee dots become unrolled FMA code), ~20-40 minutes cold on one core,
_delta_bwd_kernel alone 2-10 minutes per variant. The default run's cold time is in the README's
test-time table; seconds when Triton's cache already holds the kernels.

Assertions: the captured launches cover every ``kernel[grid](...)`` launch in the modules' source
(so a new kernel cannot be missed); every optional pointer argument was compiled both ways; every
specialization compiles; and each fits the shared memory of an H100 (227 KB per block: Triton
raises OutOfResources at launch for a kernel over that). Registers and spills are only reported.

``python tests/test_kernels_compile.py [--all]`` prints the full table. Measured with triton 3.9 after
the key blocks came in (registers / spill-store bytes / shared memory, the variant with every
optional pointer given; fp32 64x64 and bf16 256x128 are compiled by ``--all`` only):

    kernel                       bf16 128x128     bf16 64x64        fp32 64x64   bf16 256x128   bf16 512x128
    _chunk_fwd_kernel           255r 72B 112K   206r 0B 64K   32r 23512B 48K  255r 60B 112K 255r 108B 112K
    _chunk_dq_kernel             255r 48B 80K   229r 0B 56K   32r 24916B 64K   255r 56B 80K   255r 52B 80K
    _chunk_dkdv_kernel         255r 820B 128K 255r 244B 80K   32r 49560B 80K 255r 776B 128K 255r 808B 128K
    _recurrent_step_kernel          93r 0B 1K     70r 0B 1K        64r 0B 1K      93r 0B 1K      93r 0B 1K
    _gated_fwd_kernel          255r 688B 128K  255r 28B 80K   32r 25564B 50K 255r 604B 128K 255r 628B 128K
    _gated_dq_kernel           255r 1016B 80K 255r 304B 64K   32r 26528B 50K 255r 1048B 80K 255r 1040B 80K
    _gated_dkdv_kernel        255r 1504B 144K 255r 772B 96K   32r 52536B 64K 255r 1980B 144K 255r 1968B 144K
    _gla_intra_scores_kernel      152r 0B 16K    114r 0B 8K       197r 0B 8K    152r 0B 16K    152r 0B 16K
    _gla_fwd_kernel            255r 1960B 96K  255r 76B 64K   32r 28448B 48K 255r 1416B 96K 255r 1440B 96K
    _gla_dq_inter_kernel       255r 1084B 48K  255r 96B 32K   32r 16976B 32K 255r 1080B 48K 255r 1096B 48K
    _gla_dkdv_kernel           255r 2098B 96K 255r 432B 64K   32r 32896B 64K 255r 2202B 96K 255r 2202B 96K
    _gla_intra_grad_kernel         237r 0B 9K    168r 0B 5K       246r 0B 9K     230r 0B 9K     232r 0B 9K
    _delta_fwd_kernel           255r 492B 48K 255r 756B 48K   32r 56292B 32K  255r 132B 48K  255r 192B 48K
    _delta_bwd_kernel          255r 3792B 96K 255r 4248B 176K       (not run) 255r 4168B 84K 255r 4348B 84K

Every kernel compiled, and every one fits. The kernels that split the key dim over programs have
the tiles of D_k = 128 at any width (BK = 128), so their wide-key figures are those of 128 x 128
(at most 144 KB). The delta rule loops over key blocks with its state in global memory: its
backward needs 96 KB at D_k = 128 and 84 KB at D_k = 256 and 512 (chunks of 32), 176 KB at
D_k = 64 (chunks of 64; 224 KB before the key loop). With chunks of 64 at D_k = 128 it would need
272 KB (192 KB at D_k = 512), over the 227 KB an H100 block can have, which is why
chunk_delta_rule keeps chunks of 32 above D_k = 64 on CUDA. The fp32 ("ieee") kernels come out
of ptxas at -O3 with 32 registers and tens of KB of spills (-O1 gives 255 registers and far
fewer), a performance matter, not asserted on.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KERNEL_DIR = REPO / "kernels"
MODULES = ["linear_attention", "gated_linear_attention", "gla", "delta_rule"]

# (input dtype, D_k, D_v, subset); chunk size 64 everywhere. DOT_PRECISION follows the dtype in the host
# code. subset None: every kernel, every None/pointer variant. "given": the launches with every
# optional input given, every kernel. "pointers": the same without SLOW_KERNELS. Whether an optional
# pointer compiles as None does not depend on the head dims, so the None/pointer variants are
# compiled at one shape (128 x 128, the largest tiles); the other shapes check what does change
# with them: tile sizes, shared memory, the delta rule's chunk (64 at D_k = 64, 32 above) and its
# key loop. Wide keys (D_k = 512: four key blocks of 128) change no tile of the kernels that split
# keys over programs, only the delta rule's loop; 256 (two blocks) runs the same code as 512 and
# is compiled only with LABLIB_COMPILE_ALL=1. fp32 ("ieee" dots, FMA loops rather than tensor
# cores) makes far bigger PTX, the more the bigger the tiles: compiled cold on one core, fp32 D=128
# takes ~30 minutes (the delta rule's backward alone ~10 minutes per variant), fp32 D=64 ~2.5 minutes
# without the delta backward, fp32 D=16 ~1 minute with it (measured). So by default fp32 ("ieee"
# dots: a dtype path of its own) is checked at D=16, every kernel, optional pointers given.
# LABLIB_COMPILE_ALL=1 compiles all.
QUICK_CONFIGS = [("bfloat16", 128, 128, None), ("bfloat16", 64, 64, "given"), ("float32", 16, 16, "given"),
                 ("bfloat16", 512, 128, "given")]
ALL_CONFIGS = [("bfloat16", 128, 128, None), ("bfloat16", 64, 64, None), ("float32", 128, 128, None),
               ("float32", 64, 64, None), ("float32", 16, 16, None), ("bfloat16", 256, 128, "given"),
               ("bfloat16", 512, 128, "given")]
SLOW_KERNELS = {"_delta_bwd_kernel"}
USAGE_FILE = "lablib_ptxas_usage.json"
CHUNK = 64
T_LEN = 64
H100_MAX_SHARED = 232448  # bytes of shared memory one block can opt in to on sm_90 (227 KB)
COMPILE_ALL = os.environ.get("LABLIB_COMPILE_ALL") == "1"
WORKER_TIMEOUT_S = 4 * 3600 if COMPILE_ALL else 1800


# --------------------------------------------------------------------------------------------
# Worker: runs in a subprocess with TRITON_INTERPRET=0 (``python tests/test_kernels_compile.py``).
# --------------------------------------------------------------------------------------------


def _ptxas_path() -> str | None:
    """The ptxas Triton uses for sm_90 (bundled as backends/nvidia/bin/ptxas-blackwell in 3.9)."""
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        path = get_ptxas(90).path
    except Exception:  # noqa: BLE001
        return None
    return path if path and os.access(path, os.X_OK) else None


def _scenarios(dtype, d_k, d_v):
    """(name, thunk) pairs; each thunk makes the host code launch kernels (forward and backward)."""
    import torch

    from lablib.kernels.delta_rule import chunk_delta_rule
    from lablib.kernels.gated_linear_attention import chunk_scalar_gated_attention
    from lablib.kernels.gla import chunk_gla
    from lablib.kernels.linear_attention import chunk_linear_attention, fused_recurrent_step

    B, H, T = 1, 1, T_LEN

    def qkv(t=T, grad=True):
        g = torch.Generator().manual_seed(0)
        q, k = (torch.randn(B, H, t, d_k, generator=g, dtype=dtype) for _ in range(2))
        v = torch.randn(B, H, t, d_v, generator=g, dtype=dtype)
        return [x.requires_grad_(grad) for x in (q, k, v)]

    def state():
        return torch.zeros(B, H, d_k, d_v, requires_grad=True)

    def log_decay():
        return torch.full((B, H, T), -0.1, requires_grad=True)

    def log_alpha():
        return torch.full((B, H, T, d_k), -0.1, requires_grad=True)

    def beta():
        return torch.full((B, H, T), 0.5, requires_grad=True)

    def backward(out):
        if isinstance(out, tuple):
            o, s = out
            (o.float().sum() + s.sum()).backward()
        else:
            out.float().sum().backward()

    kw_full = dict(initial_state=None, output_final_state=True, chunk_size=CHUNK)
    return [
        ("linear_attention: all optional inputs",
         lambda: backward(chunk_linear_attention(*qkv(), **{**kw_full, "initial_state": state()}))),
        ("linear_attention: no optional inputs", lambda: backward(chunk_linear_attention(*qkv(), chunk_size=CHUNK))),
        ("linear_attention: decoding step",
         lambda: fused_recurrent_step(*qkv(t=1, grad=False), torch.zeros(B, H, d_k, d_v))),
        ("gated_linear_attention: all optional inputs",
         lambda: backward(chunk_scalar_gated_attention(*qkv(), log_decay(), **{**kw_full, "initial_state": state()}))),
        ("gated_linear_attention: no optional inputs",
         lambda: backward(chunk_scalar_gated_attention(*qkv(), log_decay(), chunk_size=CHUNK))),
        ("gla: all optional inputs",
         lambda: backward(chunk_gla(*qkv(), log_alpha(), **{**kw_full, "initial_state": state()}))),
        ("gla: no optional inputs", lambda: backward(chunk_gla(*qkv(), log_alpha(), chunk_size=CHUNK))),
        # the delta rule with its default chunk (64, or 32 above D_k = 64: what a GPU user gets)
        ("delta_rule: all optional inputs",
         lambda: backward(chunk_delta_rule(*qkv(), beta(), log_decay=log_decay(),
                                           **{**kw_full, "initial_state": state(), "chunk_size": None}))),
        ("delta_rule: no optional inputs", lambda: backward(chunk_delta_rule(*qkv(), beta()))),
        ("delta_rule: forward only", lambda: chunk_delta_rule(*qkv(grad=False), beta().detach())),
    ]


def _capture(dtype, d_k, d_v, subset):
    """Run every scenario with JITFunction.run replaced by a recorder; return the launches."""
    import triton
    from triton.runtime.jit import JITFunction

    import lablib.kernels._base as base

    launches, errors = [], []
    original_run = JITFunction.run

    def record(self, *args, grid, warmup, **kwargs):
        # What JITFunction.run adds to the launch's kwargs before binding them.
        kwargs["debug"] = kwargs.get("debug", self.debug) or triton.knobs.runtime.debug
        for name in ("instrumentation_mode", "fpsan_homomorphic_casts"):
            if hasattr(triton.knobs.compilation, name):
                kwargs[name] = getattr(triton.knobs.compilation, name)
        launches.append((self, args, kwargs))
        return None

    JITFunction.run = record
    was_interpreted, base.INTERPRETED = base.INTERPRETED, True  # let the host checks accept CPU tensors
    try:
        for name, thunk in _scenarios(dtype, d_k, d_v):
            if subset in ("pointers", "given") and ("no optional" in name or "forward only" in name):
                continue
            try:
                thunk()
            except Exception as e:  # noqa: BLE001 - reported, and fails the test
                errors.append(f"{name}: host code raised {type(e).__name__}: {e}")
    finally:
        JITFunction.run = original_run
        base.INTERPRETED = was_interpreted
    return launches, errors


def _specialize(fn, args, kwargs, backend):
    """(signature, constexprs, attrs, options) exactly as JITFunction.run would build them."""
    from triton.runtime.jit import create_function_from_signature

    binder = create_function_from_signature(fn.signature, fn.params, backend)
    kwargs = dict(kwargs)
    bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
    return signature, constexprs, attrs, options


def _parse_ptxas_log(log):
    """(registers, spill store bytes, spill load bytes) from a ptxas -v log, or None."""
    import re

    regs = re.findall(r"Used (\d+) registers", log)
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    if not regs or not spills:
        return None
    return {"regs": int(regs[-1]), "spill_stores": int(spills[-1][0]), "spill_loads": int(spills[-1][1])}


def _ptxas_usage(kernel, fresh_log, fp_fusion):
    """Registers and spills of a compiled kernel, from Triton's own ptxas -v log.

    Triton runs ptxas (its sm_90 one, ptxas-blackwell) itself; with knobs.nvidia.dump_ptxas_log
    it prints the -v log, captured around triton.compile. A kernel found in Triton's cache is not
    re-assembled, so the numbers are kept beside it in the cache (USAGE_FILE); failing both, ptxas
    is run again here with Triton's flags (slow for the biggest kernels).
    """
    from triton.runtime.cache import get_cache_manager

    cache = get_cache_manager(kernel.hash)
    usage = _parse_ptxas_log(fresh_log)
    if usage is None:
        path = cache.get_file(USAGE_FILE)
        if path is not None:
            with open(path) as f:
                return json.load(f)
        from triton.backends.nvidia.compiler import get_ptxas

        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "k.ptx")
            with open(src, "w") as f:
                f.write(kernel.asm["ptx"])
            cmd = [get_ptxas(90).path, "-lineinfo", "-v", "--regAllocOptLevel=2", "--gpu-name=sm_90a", src,
                   "-o", os.path.join(tmp, "k.o")]
            if not fp_fusion:
                cmd.insert(1, "--fmad=false")
            usage = _parse_ptxas_log(subprocess.run(cmd, capture_output=True, text=True).stderr)
        if usage is None:
            return {}
    cache.put(json.dumps(usage), USAGE_FILE, binary=False)
    return usage


def run_worker(configs) -> dict:
    """Capture, specialize and compile every launch for sm_90; a JSON-able report."""
    assert os.environ.get("TRITON_INTERPRET", "0") in ("0", ""), "the worker needs TRITON_INTERPRET=0"
    import contextlib
    import io
    import warnings

    warnings.filterwarnings("ignore", message=".*TRITON_DEFAULT_FP_FUSION.*")
    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import JITFunction

    target = GPUTarget("cuda", 90, 32)
    backend = make_backend(target)
    triton.knobs.nvidia.dump_ptxas_log = True  # Triton prints ptxas's -v log when it assembles a kernel
    report = {"triton": triton.__version__, "rows": [], "errors": [], "kernels_by_module": {}, "configs": []}

    for mod_name in MODULES:
        mod = __import__(f"lablib.kernels.{mod_name}", fromlist=["_"])
        report["kernels_by_module"][mod_name] = sorted(
            n for n, obj in vars(mod).items() if isinstance(obj, JITFunction) and obj.module == mod.__name__
        )

    seen = set()
    for dtype_name, d_k, d_v, subset in configs:
        config = f"{'bf16' if dtype_name == 'bfloat16' else 'fp32'} D={d_k}x{d_v}"
        report["configs"].append({"config": config, "subset": subset})
        launches, errors = _capture(getattr(torch, dtype_name), d_k, d_v, subset)
        report["errors"] += [f"[{config}] {e}" for e in errors]
        for fn, args, kwargs in launches:
            row = {"kernel": fn.__name__, "module": fn.module.rsplit(".", 1)[-1], "config": config,
                   "interpreted": not isinstance(fn, JITFunction)}
            if subset == "pointers" and fn.__name__ in SLOW_KERNELS:
                continue
            try:
                signature, constexprs, attrs, options = _specialize(fn, args, kwargs, backend)
            except Exception as e:  # noqa: BLE001
                row.update(ok=False, error=f"specialization failed: {type(e).__name__}: {e}")
                report["rows"].append(row)
                continue
            names = list(signature)
            none_args = sorted(names[i] for (i,), v in constexprs.items() if v is None)
            ptr_args = sorted(n for n, s in signature.items() if s.startswith("*"))
            key = (fn.__name__, json.dumps(signature, sort_keys=True),
                   repr(sorted(constexprs.items())), repr(sorted(attrs.items())), repr(sorted(options.__dict__.items())))
            if key in seen:
                continue
            seen.add(key)
            meta = {names[i]: v for (i,), v in constexprs.items() if v is not None}
            row.update(none_args=none_args, ptr_args=ptr_args, signature=signature, meta=meta,
                       num_warps=options.num_warps, num_stages=options.num_stages)
            t0 = time.perf_counter()
            log = io.StringIO()
            try:
                with contextlib.redirect_stdout(log):
                    k = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target,
                                       options=options.__dict__)
            except Exception as e:  # noqa: BLE001
                row.update(ok=False, error=f"{type(e).__name__}: {str(e)[:6000]}")
            else:
                row.update(ok=True, shared=int(k.metadata.shared))
                row.update(_ptxas_usage(k, log.getvalue(), options.enable_fp_fusion))
            row["seconds"] = round(time.perf_counter() - t0, 1)
            report["rows"].append(row)
    return report


def format_table(report: dict) -> str:
    lines = [f"{'kernel':<26} {'config':<16} {'None args':<40} {'result':<8} {'regs':>4} {'spill st/ld':>11} "
             f"{'shared':>7} {'s':>5}"]
    for r in report["rows"]:
        none = ",".join(r.get("none_args", [])) or "-"
        if r["ok"]:
            spill = f"{r.get('spill_stores', '?')}/{r.get('spill_loads', '?')}"
            lines.append(f"{r['kernel']:<26} {r['config']:<16} {none:<40} {'ok':<8} {r.get('regs', '?'):>4} "
                         f"{spill:>11} {r['shared']:>7} {r['seconds']:>5}")
        else:
            lines.append(f"{r['kernel']:<26} {r['config']:<16} {none:<40} {'FAILED':<8} {r['error'].splitlines()[0][:200]}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Tests (in the pytest process; the kernels themselves are only touched by the worker)
# --------------------------------------------------------------------------------------------


def _nvidia_backend_missing() -> str | None:
    try:
        import triton  # noqa: F401
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.compiler import ASTSource  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return f"triton's compiler API is not importable: {e}"
    try:
        import triton.backends.nvidia.compiler  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return f"triton's NVIDIA backend is not available: {e}"
    if _ptxas_path() is None:
        return "triton's ptxas for sm_90 is missing (triton.backends.nvidia.compiler.get_ptxas(90))"
    return None


_missing = _nvidia_backend_missing()
pytestmark = [
    pytest.mark.skipif(_missing is not None, reason=f"cannot compile for sm_90 here: {_missing}"),
    pytest.mark.slow,  # ~4 minutes with a cold Triton cache
]


@pytest.fixture(scope="module")
def report():
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--json"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=WORKER_TIMEOUT_S)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        pytest.fail(f"the compile worker failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nsm_90 compile of lablib.kernels (triton {rep['triton']}), {elapsed:.0f} s:\n{format_table(rep)}")
    return rep


def _launched_kernels(path: Path) -> set[str]:
    """Names of @triton.jit functions launched as ``name[grid](...)`` in a module's source."""
    tree = ast.parse(path.read_text())
    jitted = {
        node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
        and any("jit" in ast.unparse(d) for d in node.decorator_list)
    }
    return {
        node.func.value.id for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript)
        and isinstance(node.func.value, ast.Name) and node.func.value.id in jitted
    }


def test_capture_covers_every_launched_kernel(report):
    """Each config compiled every kernel its module launches, and nothing ran interpreted."""
    assert not report["errors"], "\n".join(report["errors"])
    assert not any(r["interpreted"] for r in report["rows"]), "the worker saw interpreted kernels"
    want = {name for m in MODULES for name in _launched_kernels(KERNEL_DIR / f"{m}.py")}
    assert want, "found no kernel launches in the sources"
    for c in report["configs"]:
        config = c["config"]
        expected = want - SLOW_KERNELS if c["subset"] == "pointers" else want
        got = {r["kernel"] for r in report["rows"] if r["config"] == config}
        assert got == expected, f"{config}: kernels launched in the source but not compiled: {sorted(expected - got)}; " \
                            f"compiled but not found in the source: {sorted(got - expected)}"
    # Every module-level jit function that is not a launched kernel must be a helper some kernel calls.
    for m in MODULES:
        launched = _launched_kernels(KERNEL_DIR / f"{m}.py")
        unlaunched_kernels = [n for n in report["kernels_by_module"][m] if n.endswith("_kernel") and n not in launched]
        assert not unlaunched_kernels, f"{m}: kernels never launched by the host code: {unlaunched_kernels}"


def test_optional_pointers_compiled_as_none_and_as_pointer(report):
    """An argument the host code passes as None somewhere is also compiled as a pointer, and vice versa."""
    for config in [c["config"] for c in report["configs"] if c["subset"] is None]:
        rows = [r for r in report["rows"] if r["config"] == config and "none_args" in r]
        for kernel in sorted({r["kernel"] for r in rows}):
            none = set().union(*(r["none_args"] for r in rows if r["kernel"] == kernel))
            ptr = set().union(*(r["ptr_args"] for r in rows if r["kernel"] == kernel))
            assert none <= ptr, f"{kernel} [{config}]: only ever compiled with None for {sorted(none - ptr)}"


def test_every_kernel_compiles_for_sm90(report):
    failed = [r for r in report["rows"] if not r["ok"]]
    assert not failed, "kernels that do not compile for sm_90:\n" + "\n\n".join(
        f"{r['kernel']} [{r['config']}; None: {', '.join(r.get('none_args', [])) or '-'}]\n{r['error']}" for r in failed
    )


def test_shared_memory_fits_an_h100(report):
    """A kernel needing more shared memory than a block can have fails at launch (OutOfResources)."""
    over = [r for r in report["rows"] if r["ok"] and r["shared"] > H100_MAX_SHARED]
    assert not over, "\n".join(f"{r['kernel']} [{r['config']}]: {r['shared']} bytes > {H100_MAX_SHARED}" for r in over)


if __name__ == "__main__":
    os.environ.setdefault("TRITON_INTERPRET", "0")
    t0 = time.perf_counter()
    rep = run_worker(ALL_CONFIGS if COMPILE_ALL or "--all" in sys.argv else QUICK_CONFIGS)
    if "--json" in sys.argv:
        print(json.dumps(rep))
    else:
        print(format_table(rep))
        for e in rep["errors"]:
            print("ERROR:", e)
        for r in rep["rows"]:
            if not r["ok"]:
                print(f"\n{r['kernel']} [{r['config']}]:\n{r['error']}")
        print(f"{time.perf_counter() - t0:.0f} s")
