#!/usr/bin/env bash
# The kernels' first compiled run and the benchmark table, in one command inside the device budget.
#
#   bash benchmarks/gpu_run.sh OUT_DIR [--smoke]
#
# Phases, each leaving its files in OUT_DIR before the next starts (a later phase that times out,
# or a kill of the whole command, loses nothing already written):
#   0. setup: a Python that imports torch; lablib from this checkout (an import shim when it is not
#      installed: `pip install --no-deps -e .` is not needed); the pure-Python wheels in .whl/
#      (fla-core, and pytest & co. if the device lacks them) whose distributions are not installed,
#      unpacked onto PYTHONPATH (no pip, no network)
#   1. versions.txt: date, host, nvidia-smi, Python, torch (CUDA), the device, Triton, fla, lablib
#   2. the compiled kernel tests (the TestCompiledOnCuda classes of tests/test_kernel_*.py,
#      TRITON_INTERPRET=0), half precision first (cheap to compile), then fp32 file by file, the
#      delta rule last (its fp32 backward takes minutes to compile), under a hard cap:
#      tests_summary.txt (first line: the summary), tests.log, tests_progress.jsonl, compiled_tests.txt
#   3. the benchmark, `python -m lablib.bench attention --grid gpu --estimate`, its --budget-s set
#      from the time left: compile_estimate.{md,csv}, attention.{csv,md} (rewritten as it goes),
#      then attention.{html,png}; bench.log, compiled_bench.txt
#   4. gpu_run.txt: what each phase did and how long it took (also printed)
#
# --smoke runs the same phases on a CPU in about a minute: the interpreter (TRITON_INTERPRET=1),
# the CUDA test classes collected (and skipped: no CUDA) beside a few interpreted kernel tests, and
# `--smoke --op linear` for the benchmark. tests/test_bench_gpu_run.py runs it and checks the files.
#
# Time plan, seconds (environment overrides): GPU_RUN_TOTAL_S (whole command; default 540, the
# device allows 600 per command), GPU_RUN_TEST_S (test cap; 150), GPU_RUN_BENCH_S (the grid's
# --budget-s at most; 330), GPU_RUN_BENCH_RESERVE_S (the bench's start, estimate and writing, on
# top of --budget-s; 60). GPU_RUN_BENCH_ARGS: extra arguments for the bench (e.g. "--op delta,gla").
# GPU_RUN_SKIP: "tests" or "bench" to leave that phase out. PYTHON: the interpreter to use.
# GPU_RUN_WHEELS: where the wheels are (default .whl/). GPU_RUN_ISOLATE=1: use the import shim and
# the wheels even where lablib and fla are installed (to try the device's setup on this machine).
# TRITON_CACHE_DIR: default ${TMPDIR:-/tmp}/linear-lab-triton-cache, kept between runs on the same
# machine (a second run finds its kernels and fla's autotuning there).

set -u -o pipefail

usage() { echo "usage: bash benchmarks/gpu_run.sh OUT_DIR [--smoke]" >&2; }
OUT="" SMOKE=0
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "gpu_run: unknown option $arg" >&2; usage; exit 2 ;;
        *) if [ -z "$OUT" ]; then OUT=$arg; else usage; exit 2; fi ;;
    esac
done
[ -n "$OUT" ] || { usage; exit 2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || { echo "gpu_run: cannot create $OUT" >&2; exit 2; }
cd "$REPO" || exit 2
START=$(date +%s)
: > "$OUT/gpu_run.log"

if [ "$SMOKE" = 1 ]; then
    TOTAL=${GPU_RUN_TOTAL_S:-300} TEST_S=${GPU_RUN_TEST_S:-120} BENCH_S=${GPU_RUN_BENCH_S:-150}
    RESERVE=${GPU_RUN_BENCH_RESERVE_S:-60}
    export TRITON_INTERPRET=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
else
    TOTAL=${GPU_RUN_TOTAL_S:-540} TEST_S=${GPU_RUN_TEST_S:-150} BENCH_S=${GPU_RUN_BENCH_S:-330}
    RESERVE=${GPU_RUN_BENCH_RESERVE_S:-60}
    export TRITON_INTERPRET=0
fi
SKIP=${GPU_RUN_SKIP:-}
export PYTHONUNBUFFERED=1
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-${TMPDIR:-/tmp}/linear-lab-triton-cache}
mkdir -p "$TRITON_CACHE_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/linear-lab-gpu-run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

log() { echo "[gpu_run +$(( $(date +%s) - START ))s] $*" | tee -a "$OUT/gpu_run.log" >&2; }
left() { echo $(( START + TOTAL - $(date +%s) )); }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
capped() {  # capped SECONDS CMD...: run CMD under a hard time limit (SIGTERM, then SIGKILL 20 s later)
    local s=$1; shift
    if command -v timeout > /dev/null; then timeout -k 20 "$s" "$@"; else "$@"; fi
}
snapshot() { find "$TRITON_CACHE_DIR" -name '*.cubin' 2> /dev/null | sort > "$1"; }
compiled_report() {  # compiled_report BEFORE AFTER PHASE FILE: the kernel binaries the phase added to the cache
    local new
    new=$(comm -13 "$1" "$2")
    {
        echo "$3: $(printf '%s' "$new" | grep -c .) compiled kernel binaries (new *.cubin in $TRITON_CACHE_DIR)"
        [ "$TRITON_INTERPRET" = 1 ] && echo "(TRITON_INTERPRET=1: the kernels ran in the interpreter; nothing is compiled)"
        printf '%s\n' "$new" | grep . | sed 's#.*/##; s#\.cubin$##' | sort | uniq -c | sort -rn
    } > "$4"
}
PHASES=()
phase_done() { PHASES+=("$1"); log "$1"; }

# ---------------------------------------------------------------------------------------- 0. setup
PY=""
for candidate in "${PYTHON:-}" "$REPO/.venv/bin/python" python3 python; do
    [ -n "$candidate" ] && command -v "$candidate" > /dev/null 2>&1 || continue
    if "$candidate" -c "import torch" > /dev/null 2>&1; then PY=$candidate; break; fi
done
[ -n "$PY" ] || { log "no Python that imports torch (set PYTHON)"; exit 2; }

SHIM=""
lablib_at=$("$PY" -c "import importlib.util as u; s = u.find_spec('lablib'); print(s.origin if s else '')" 2> /dev/null)
ISOLATE=${GPU_RUN_ISOLATE:-0}
if [ "$ISOLATE" = 1 ] || [ "$lablib_at" != "$REPO/lablib/__init__.py" ] \
        || ! "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('lablib.kernels') is None)" 2> /dev/null; then
    # lablib is not installed from this checkout: a package folder of links (lablib/* and kernels/ as lablib/kernels)
    SHIM="$WORK/shim"
    mkdir -p "$SHIM/lablib"
    for f in "$REPO"/lablib/*; do ln -s "$f" "$SHIM/lablib/"; done
    ln -s "$REPO/kernels" "$SHIM/lablib/kernels"
    export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
    # python -m / -c put the working directory (this checkout, whose lablib/ has no kernels/) first on
    # sys.path, ahead of the shim; PYTHONSAFEPATH (Python >= 3.11) leaves it out
    export PYTHONSAFEPATH=1
fi
export PYTHONPATH="$REPO/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
# pure-Python wheels carried for what this Python lacks (fla-core; pytest, pluggy, iniconfig if need be):
# each one whose distribution is not installed is unpacked onto PYTHONPATH (no pip, no network)
WHEELS=${GPU_RUN_WHEELS:-$REPO/.whl}
for wheel in "$WHEELS"/*.whl; do
    [ -f "$wheel" ] || continue
    dist=$(basename "$wheel" | cut -d- -f1)
    if [ "$ISOLATE" != 1 ] && "$PY" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$dist" 2> /dev/null; then
        continue
    fi
    mkdir -p "$WORK/site"
    "$PY" -m zipfile -e "$wheel" "$WORK/site" && log "unpacked $(basename "$wheel") (not installed here)"
done
[ -d "$WORK/site" ] && export PYTHONPATH="$WORK/site:$PYTHONPATH"
log "python $PY; lablib ${SHIM:+via an import shim of }$REPO; TRITON_INTERPRET=$TRITON_INTERPRET; TRITON_CACHE_DIR=$TRITON_CACHE_DIR"

# ------------------------------------------------------------------------------------- 1. versions
t0=$(date +%s)
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(uname -srm) ($(nproc 2> /dev/null || echo '?') CPUs)"
    if commit=$(git -C "$REPO" rev-parse --short HEAD 2> /dev/null); then
        git -C "$REPO" diff --quiet HEAD 2> /dev/null || commit="$commit, with uncommitted changes"
    else
        commit="unknown: no git metadata here"
    fi
    echo "repo: $REPO (commit $commit)"
    echo "mode: $([ "$SMOKE" = 1 ] && echo 'smoke (CPU, Triton interpreter)' || echo 'GPU (compiled)'); TRITON_INTERPRET=$TRITON_INTERPRET"
    if command -v nvidia-smi > /dev/null; then
        echo "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -n 4 | tr '\n' ';')"
    else
        echo "nvidia-smi: not found"
    fi
    capped 120 "$PY" - << 'EOF'
import importlib.metadata as md
import importlib.util
import platform

import torch

def version(*dists):
    for d in dists:
        try:
            return f"{md.version(d)} ({d})"
        except md.PackageNotFoundError:
            pass
    spec = importlib.util.find_spec(dists[0].split("-")[0]) if dists else None
    return "not installed" if spec is None else f"importable from {spec.origin}"

print(f"python: {platform.python_version()} ({platform.python_implementation()})")
print(f"torch: {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device: {torch.cuda.get_device_name(0)}, sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, "
          f"{p.total_memory / 2**30:.1f} GiB, {torch.cuda.device_count()} device(s)")
else:
    print("device: no CUDA device (torch.cuda.is_available() is False)")
try:
    import triton
    print(f"triton: {triton.__version__}")
except Exception as e:  # noqa: BLE001
    print(f"triton: not importable ({e.__class__.__name__}: {e})")
fla = importlib.util.find_spec("fla")
print(f"fla: {version('flash-linear-attention', 'fla-core') if fla else 'not installed'}"
      f"{'' if fla is None else ' at ' + str(fla.origin)}")
print(f"einops: {version('einops')}; packaging: {version('packaging')}; pytest: {version('pytest')}")
import lablib
print(f"lablib: {lablib.__version__} at {lablib.__file__}")
# what the phases import: the tests (numpy, pandas, scipy via lablib.koopman for the scan kernel's
# tests; pytest), the bench (pandas; tqdm, altair and vl_convert optional: progress bar, chart)
wanted = ["numpy", "pandas", "scipy", "pytest", "packaging", "einops", "fla", "tqdm", "altair", "vl_convert"]
missing = [m for m in wanted if importlib.util.find_spec(m) is None]
print(f"missing: {', '.join(missing) if missing else 'none'} (of {', '.join(wanted)})")
EOF
} > "$OUT/versions.txt" 2>&1
phase_done "versions: versions.txt ($(( $(date +%s) - t0 )) s)"
cat "$OUT/versions.txt" >&2

# ----------------------------------------------------------------------------- 2. compiled tests
STATUS=0
TEST_FILES=(tests/test_kernel_scan.py tests/test_kernel_linear_attention.py tests/test_kernel_gated_linear_attention.py
            tests/test_kernel_gla.py tests/test_kernel_delta_rule.py)
if [ "$SMOKE" = 1 ]; then
    # the CUDA classes are collected (and skipped: no CUDA), beside a few kernel tests in the interpreter
    SELECT="TestCompiledOnCuda or test_defaults_no_state_in_or_out or test_fused_step_matches_recurrent_form"
else
    SELECT="TestCompiledOnCuda"
fi
if [[ " $SKIP " == *" tests "* ]]; then
    echo "compiled kernel tests: left out (GPU_RUN_SKIP=$SKIP)" > "$OUT/tests_summary.txt"
    phase_done "tests: left out"
else
    t0=$(date +%s)
    cap=$(min "$TEST_S" $(( $(left) - 60 )))
    [ "$cap" -ge 10 ] || cap=10
    snapshot "$WORK/cubins0"
    rm -f "$OUT/tests_progress.jsonl"
    PYTEST_PROGRESS_FILE="$OUT/tests_progress.jsonl" \
    PYTEST_PROGRESS_ORDER="bf16,fp16,fused,test_kernel_scan,test_kernel_linear_attention,test_kernel_gated_linear_attention,test_kernel_gla,test_kernel_delta_rule" \
        capped "$cap" "$PY" -m pytest -p pytest_progress -p no:cacheprovider -v -rA --continue-on-collection-errors \
        -k "$SELECT" "${TEST_FILES[@]}" \
        > "$OUT/tests.log" 2>&1
    rc=$?
    snapshot "$WORK/cubins1"
    compiled_report "$WORK/cubins0" "$WORK/cubins1" "tests" "$OUT/compiled_tests.txt"
    "$PY" benchmarks/pytest_progress.py "$OUT/tests_progress.jsonl" --cap-s "$cap" --rc "$rc" \
        --label "compiled kernel tests (TRITON_INTERPRET=$TRITON_INTERPRET, -k \"$SELECT\")" > "$OUT/tests_summary.txt"
    [ "$rc" = 0 ] || STATUS=1
    phase_done "tests: $(head -n 1 "$OUT/tests_summary.txt") [$(head -n 1 "$OUT/compiled_tests.txt" | cut -d' ' -f2) compiled; $(( $(date +%s) - t0 )) s]"
fi

# ---------------------------------------------------------------------------------- 3. benchmark
if [[ " $SKIP " == *" bench "* ]]; then
    phase_done "bench: left out"
else
    t0=$(date +%s)
    budget=$(min "$BENCH_S" $(( $(left) - RESERVE )))
    if [ "$budget" -lt 20 ]; then
        phase_done "bench: not run ($(left) s left of GPU_RUN_TOTAL_S=$TOTAL)"
        STATUS=1
    else
        if [ "$SMOKE" = 1 ]; then
            GRID=(--smoke --op linear --case-timeout 60 --fla-last)
        else
            GRID=(--grid gpu --device cuda)
        fi
        # shellcheck disable=SC2206 # word splitting of the extra arguments is wanted
        EXTRA=(${GPU_RUN_BENCH_ARGS:-})
        snapshot "$WORK/cubins0"
        capped $(( budget + RESERVE )) "$PY" -m lablib.bench attention "${GRID[@]}" --estimate --no-progress \
            --budget-s "$budget" --out "$OUT" "${EXTRA[@]}" > "$OUT/bench.log" 2>&1
        rc=$?
        snapshot "$WORK/cubins1"
        compiled_report "$WORK/cubins0" "$WORK/cubins1" "bench" "$OUT/compiled_bench.txt"
        rows=$("$PY" - "$OUT/attention.csv" << 'EOF' 2>&1
import sys
import pandas as pd
try:
    df = pd.read_csv(sys.argv[1])
except FileNotFoundError:
    print("no attention.csv")
    sys.exit()
ok = df.status.eq("ok")
by = df.assign(ok=ok).groupby("implementation", sort=False).ok.agg(["sum", "size"])
print(f"{int(ok.sum())} of {len(df)} rows ok (" + "; ".join(f"{i}: {int(r['sum'])}/{int(r['size'])}" for i, r in by.iterrows()) + ")")
EOF
)
        [ "$rc" = 0 ] || STATUS=1
        phase_done "bench: exit $rc, --budget-s $budget; $rows [$(head -n 1 "$OUT/compiled_bench.txt" | cut -d' ' -f2) compiled; $(( $(date +%s) - t0 )) s]"
    fi
fi

# ------------------------------------------------------------------------------------ 4. summary
{
    echo "gpu_run.sh $([ "$SMOKE" = 1 ] && echo --smoke) -> $OUT: $(( $(date +%s) - START )) s, exit $STATUS"
    printf '%s\n' "${PHASES[@]}"
    echo "files: $(cd "$OUT" && ls | tr '\n' ' ')"
} > "$OUT/gpu_run.txt"
cat "$OUT/gpu_run.txt"
exit "$STATUS"
