"""One op per method, with one backend switch: the researcher's entry point to track 1.

    from lablib import ops
    r = ops.gla(q, k, v, log_alpha, output_final_state=True)
    r.out            # (B, H, T, D_v)
    r.final_state    # (B, H, D_k, D_v), or None without output_final_state
    r.backend        # which form ran: "triton" on CUDA, "vectorized" on a CPU

Ops (shapes (B, H, T, D) as everywhere in lablib; each docstring has the details):

* ``linear_attention(q, k, v, ...)``               S_t = S_{t-1} + phi(k_t) v_t^T (optional normalizer)
* ``scalar_gated_attention(q, k, v, log_decay)``   S_t = a_t S_{t-1} + k_t v_t^T (RetNet, Mamba-2)
* ``gla(q, k, v, log_alpha)``                      S_t = diag(alpha_t) S_{t-1} + k_t v_t^T
* ``delta_rule(q, k, v, beta, log_decay=None)``    DeltaNet, and Gated DeltaNet with log_decay
* ``diagonal_scan(lam, x)``                        h_t = lam_t * h_{t-1} + x_t (track 2's bridge to SSMs)

Every op returns an ``OpResult(out, final_state, backend)``, a named tuple, so the backend that
actually ran is always on the result (``out, state, backend = ops.gla(...)`` unpacks it), and
``select_backend`` answers the same question before a call, without tensors.

Backends (``backend=``):

* ``"auto"`` (default): ``"triton"`` for CUDA tensors when Triton is installed and the kernel
  takes the input (dtype fp32, fp16 or bf16, and complex64 for the scan; key dim <= 512);
  ``"vectorized"`` everywhere else (CPU, MPS, float64, wide keys). Never the interpreter.
* ``"triton"``: the kernels in ``lablib.kernels``, compiled on CUDA. On CPU tensors they run in
  the Triton interpreter (slow; for tests), which must be switched on by ``TRITON_INTERPRET=1``
  in the environment before triton's kernels are defined, i.e. before ``lablib.kernels`` (and
  best, triton) is imported; otherwise a RuntimeError says so.
* ``"vectorized"``: ``lablib.attention.vectorized``, every chunk at once (the fast PyTorch form).
* ``"chunkwise"``: the teaching forms ``lablib.attention.*_chunkwise`` (a Python loop over chunks).
* ``"recurrent"``: the references, one token at a time (the truth; also what a layer's one-token
  ``step`` uses).
* ``"scan"`` (``diagonal_scan`` only, which has no chunkwise form): the Hillis-Steele parallel
  scan of ``lablib.koopman.recurrence.diagonal_recurrence_scan``.

States. One keyword to pass a state in and one to get it out, for every op and backend:
``initial_state=`` and ``output_final_state=`` (the kernels' names). The references in
``lablib.attention`` call the latter ``return_state`` and the scan's ``h0`` / ``return_final``;
the ops unify the names here only (the forms keep theirs). States are (B, H, D_k, D_v) tensors,
except normalized linear attention's ``LinearAttentionState(kv, k_sum)`` and the scan's (..., N);
the Triton backend returns them in fp32, the PyTorch backends in the inputs' dtype.

``python -m lablib.ops --bench`` times the PyTorch backends against each other, fla's naive forms
and causal SDPA at T = 4096 on this machine's CPU and prints a table (``lablib.bench.cpu``).
"""

from __future__ import annotations

import importlib.util
from typing import Any, NamedTuple

import torch

from lablib._checks import check_qkv
from lablib.attention import delta as _delta
from lablib.attention import gated as _gated
from lablib.attention import linear as _linear
from lablib.attention import vectorized as _vec
from lablib.attention.feature_maps import FeatureMap, resolve_feature_map
from lablib.attention.linear import DEFAULT_EPS, LinearAttentionState

__all__ = [
    "OpResult",
    "BACKENDS",
    "OPS",
    "select_backend",
    "linear_attention",
    "scalar_gated_attention",
    "gla",
    "delta_rule",
    "diagonal_scan",
]

ATTENTION_BACKENDS = ("auto", "triton", "vectorized", "chunkwise", "recurrent")
SCAN_BACKENDS = ("auto", "triton", "vectorized", "scan", "recurrent")
OPS = ("linear_attention", "scalar_gated_attention", "gla", "delta_rule", "diagonal_scan")
BACKENDS = {op: SCAN_BACKENDS if op == "diagonal_scan" else ATTENTION_BACKENDS for op in OPS}

_KERNEL_MODULES = {
    "linear_attention": "lablib.kernels.linear_attention",
    "scalar_gated_attention": "lablib.kernels.gated_linear_attention",
    "gla": "lablib.kernels.gla",
    "delta_rule": "lablib.kernels.delta_rule",
    "diagonal_scan": "lablib.kernels.scan",
}
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_SCAN_KERNEL_DTYPES = _KERNEL_DTYPES + (torch.complex64,)
KERNEL_MAX_D_K = 512  # the attention kernels' widest key dim (four key blocks of 128: lablib.kernels._base.MAX_D_K)


class OpResult(NamedTuple):
    """What every op returns.

    out:          the output, (B, H, T, D_v) for attention, like x for the scan.
    final_state:  the state after the last token (None unless ``output_final_state=True``).
    backend:      the form that ran: "triton", "vectorized", "chunkwise", "recurrent" or "scan".
    """

    out: torch.Tensor
    final_state: Any
    backend: str


def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def select_backend(
    op: str,
    device: torch.device | str,
    backend: str = "auto",
    *,
    dtype: torch.dtype | None = None,
    d_k: int | None = None,
) -> str:
    """The backend an op will run for inputs on ``device`` (and of ``dtype``, key dim ``d_k``).

    ``"auto"`` resolves as the module docstring says: "triton" on CUDA when Triton is installed and
    the kernel takes the dtype and d_k (None: not checked), else "vectorized". A named backend is
    returned as is after checking it can run: ``"triton"`` needs Triton and, off CUDA, the
    interpreter (RuntimeError otherwise), and an attention op's kernel takes d_k <= 512 (ValueError). Needs no tensors, so it can be asked about a CUDA
    device on a machine without one. ValueError for an unknown op or backend.
    """
    if op not in BACKENDS:
        raise ValueError(f"unknown op {op!r}; choose one of {list(OPS)}")
    if backend not in BACKENDS[op]:
        raise ValueError(f"unknown backend {backend!r} for {op}; choose one of {list(BACKENDS[op])}")
    device = torch.device(device)
    if backend == "auto":
        dtypes = _SCAN_KERNEL_DTYPES if op == "diagonal_scan" else _KERNEL_DTYPES
        fits = (dtype is None or dtype in dtypes) and (d_k is None or op == "diagonal_scan" or d_k <= KERNEL_MAX_D_K)
        return "triton" if device.type == "cuda" and fits and _triton_installed() else "vectorized"
    if backend == "triton":
        if d_k is not None and op != "diagonal_scan" and d_k > KERNEL_MAX_D_K:
            raise ValueError(
                f"backend='triton': the {op} kernel takes key dims D_k up to {KERNEL_MAX_D_K}; got D_k = {d_k} "
                "(backend='auto' picks the vectorized PyTorch form for wider keys)"
            )
        if not _triton_installed():
            raise RuntimeError("backend='triton' needs the triton package (pip install triton; Linux only)")
        if device.type != "cuda":
            kernels = importlib.import_module(_KERNEL_MODULES[op])
            if not kernels.INTERPRETED:
                raise RuntimeError(
                    f"backend='triton' on {device.type} tensors runs the Triton interpreter, which was off when "
                    "lablib.kernels was imported: set TRITON_INTERPRET=1 in the environment before importing "
                    "triton or lablib.kernels (e.g. TRITON_INTERPRET=1 python ...), or use backend='auto' "
                    "(the vectorized PyTorch form on a CPU)"
                )
    return backend


def _kernel(op: str, name: str):
    return getattr(importlib.import_module(_KERNEL_MODULES[op]), name)


def _result(res, output_final_state: bool, backend: str) -> OpResult:
    """Wrap a form's ``out`` or ``(out, state)`` (forms asked for their state return a pair)."""
    out, state = res if isinstance(res, tuple) else (res, None)
    return OpResult(out, state if output_final_state else None, backend)


def _teaching_form(name: str, recurrent, chunkwise, chunk_size: int):
    """The reference loop (``"recurrent"``) or the chunkwise form with its chunk size, as one callable."""
    if name == "recurrent":
        return recurrent
    return lambda *args, **kwargs: chunkwise(*args, chunk_size=chunk_size, **kwargs)


def _pytorch_state(initial_state, q: torch.Tensor):
    """The PyTorch forms take states in the inputs' dtype (a Triton state is fp32): cast, differentiably."""
    if isinstance(initial_state, torch.Tensor) and initial_state.is_floating_point():
        return initial_state.to(q.dtype)
    return initial_state


# --------------------------------------------------------------------------- linear attention


def _check_linear_state(initial_state, normalize: bool) -> None:
    if initial_state is None:
        return
    if normalize and not isinstance(initial_state, LinearAttentionState):
        raise TypeError(
            "with normalize=True, initial_state must be a LinearAttentionState(kv (B, H, D_k, D_v), k_sum (B, H, D_k)); "
            f"got {type(initial_state).__name__}"
        )
    if not normalize and not isinstance(initial_state, torch.Tensor):
        raise TypeError(
            f"with normalize=False, initial_state must be a tensor S of shape (B, H, D_k, D_v); got {type(initial_state).__name__}"
        )


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: str | FeatureMap | None = None,
    normalize: bool = False,
    eps: float = DEFAULT_EPS,
    scale: float | None = None,
    initial_state=None,
    output_final_state: bool = False,
    chunk_size: int = 64,
    backend: str = "auto",
) -> OpResult:
    """Causal linear attention: S_t = S_{t-1} + phi(k_t) v_t^T, o_t = S_t^T (scale phi(q_t)) [/ phi(q_t)^T z_t].

    q, k (B, H, T, D_k); v (B, H, T, D_v); one floating dtype. feature_map: a name from
    ``lablib.attention.FEATURE_MAPS`` or a callable applied to q and k over their last dim (None:
    used as given); it may change the key dim to F, which is then the state's. normalize: divide
    by phi(q_t)^T z_t + eps, z_t = sum_{s <= t} phi(k_s) (Katharopoulos et al.); scale then cancels.

    initial_state: S_0 (B, H, F, D_v), or with ``normalize`` a ``LinearAttentionState(kv, k_sum)``.
    Returns ``OpResult(out (B, H, T, D_v), final_state of the same kind or None, backend)``.

    On the Triton and vectorized backends the normalizer rides along as one more value column:
    with v' = [v, 1] the numerator and phi(q)^T z are one product, and the state [S | z] one tensor.
    """
    check_qkv(q, k, v, causal=True, check_values=False)
    _check_linear_state(initial_state, normalize)
    if feature_map is not None:
        phi = resolve_feature_map(feature_map)
        q, k = phi(q), phi(k)
        if q.ndim != 4 or q.shape[:3] != v.shape[:3] or q.shape != k.shape:
            raise ValueError(f"the feature map must map (B, H, T, D_k) to (B, H, T, F); got {tuple(q.shape)}")
    if scale is not None:
        q = q * scale
    name = select_backend("linear_attention", q.device, backend, dtype=q.dtype, d_k=q.shape[-1])
    B, H, _, F = q.shape
    D_v = v.shape[-1]

    if name in ("recurrent", "chunkwise"):
        if initial_state is not None and not normalize:
            initial_state = LinearAttentionState(initial_state, initial_state.new_zeros(B, H, F))
        if initial_state is not None:
            initial_state = LinearAttentionState(*(_pytorch_state(t, q) for t in initial_state))
        fn = _teaching_form(name, _linear.linear_attention_recurrent, _linear.linear_attention_chunkwise, chunk_size)
        out, state = fn(q, k, v, feature_map="identity", normalize=normalize, eps=eps,
                        initial_state=initial_state, return_state=True)
        return OpResult(out, (state if normalize else state.kv) if output_final_state else None, name)

    fn = _kernel("linear_attention", "chunk_linear_attention") if name == "triton" else _vec.linear_attention_vectorized
    if not normalize:
        if name != "triton":
            initial_state = _pytorch_state(initial_state, q)
        return _result(fn(q, k, v, initial_state=initial_state, output_final_state=output_final_state,
                          chunk_size=chunk_size), output_final_state, name)
    v_aug = torch.cat([v, v.new_ones(*v.shape[:3], 1)], dim=-1)  # (B, H, T, D_v + 1)
    S_aug = None
    if initial_state is not None:
        kv, k_sum = initial_state
        S_aug = torch.cat([kv, k_sum.unsqueeze(-1).to(kv.dtype)], dim=-1)  # (B, H, F, D_v + 1)
        S_aug = S_aug if name == "triton" else _pytorch_state(S_aug, q)
    o, S = fn(q, k, v_aug, initial_state=S_aug, output_final_state=True, chunk_size=chunk_size)
    out = (o[..., :D_v] / (o[..., D_v:] + eps)).to(v.dtype)
    final = LinearAttentionState(S[..., :D_v], S[..., D_v]) if output_final_state else None
    return OpResult(out, final, name)


# --------------------------------------------------------------------------- gated


def scalar_gated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    *,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
    backend: str = "auto",
) -> OpResult:
    """Scalar-gated linear attention: S_t = exp(log_decay_t) S_{t-1} + k_t v_t^T, o_t = S_t^T (scale q_t).

    q, k (B, H, T, D_k); v (B, H, T, D_v); log_decay (B, H, T), finite and <= 0 (one gate per head
    and step: RetNet's fixed decay, Mamba-2's data-dependent one); initial_state (B, H, D_k, D_v).
    scale defaults to 1. Returns ``OpResult(out (B, H, T, D_v), S_T (B, H, D_k, D_v) or None, backend)``.
    """
    return _gated_op("scalar_gated_attention", q, k, v, log_decay, scale, initial_state, output_final_state,
                     chunk_size, backend)


def gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_alpha: torch.Tensor,
    *,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
    backend: str = "auto",
) -> OpResult:
    """Gated linear attention (GLA): S_t = diag(exp(log_alpha_t)) S_{t-1} + k_t v_t^T, o_t = S_t^T (scale q_t).

    q, k (B, H, T, D_k); v (B, H, T, D_v); log_alpha (B, H, T, D_k), finite and <= 0 (a decay per
    key dim); initial_state (B, H, D_k, D_v). scale defaults to 1.
    Returns ``OpResult(out (B, H, T, D_v), S_T (B, H, D_k, D_v) or None, backend)``.
    """
    return _gated_op("gla", q, k, v, log_alpha, scale, initial_state, output_final_state, chunk_size, backend)


# (kernel function, vectorized form, reference loop, chunkwise form) of each gated op
_GATED_FORMS = {
    "scalar_gated_attention": ("chunk_scalar_gated_attention", _vec.scalar_gated_vectorized,
                               _gated.scalar_gated_recurrent, _gated.scalar_gated_chunkwise),
    "gla": ("chunk_gla", _vec.gla_vectorized, _gated.gla_recurrent, _gated.gla_chunkwise),
}


def _gated_op(op, q, k, v, log_gate, scale, initial_state, output_final_state, chunk_size, backend) -> OpResult:
    """The dispatch the scalar-gated and GLA ops share (their gates differ in shape, not in handling)."""
    check_qkv(q, k, v, causal=True, check_values=False)
    name = select_backend(op, q.device, backend, dtype=q.dtype, d_k=q.shape[-1])
    kernel, vectorized, recurrent, chunkwise = _GATED_FORMS[op]
    if name == "triton":
        res = _kernel(op, kernel)(q, k, v, log_gate, scale=scale, initial_state=initial_state,
                                  output_final_state=output_final_state, chunk_size=chunk_size)
        return _result(res, output_final_state, name)
    initial_state = _pytorch_state(initial_state, q)
    if name == "vectorized":
        res = vectorized(q, k, v, log_gate, scale=scale, initial_state=initial_state,
                         output_final_state=output_final_state, chunk_size=chunk_size)
    else:
        fn = _teaching_form(name, recurrent, chunkwise, chunk_size)
        res = fn(q, k, v, log_gate, initial_state=initial_state, return_state=output_final_state, scale=scale)
    return _result(res, output_final_state, name)


def delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    normalize_keys: bool = True,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int | None = None,
    backend: str = "auto",
) -> OpResult:
    """The delta rule (DeltaNet), or with ``log_decay`` Gated DeltaNet:

        S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   a_t = exp(log_decay_t) (1 if None)
        o_t = S_t^T (scale q_t)

    q, k (B, H, T, D_k); v (B, H, T, D_v); beta (B, H, T) in [0, 2] (above 1: negative eigenvalues);
    log_decay (B, H, T), finite and <= 0, or None; initial_state (B, H, D_k, D_v). Keys are
    L2-normalized over D_k when ``normalize_keys``; scale defaults to 1. chunk_size: None is 64 for
    the PyTorch forms and the kernel's own default for Triton (64, or 32 for D_k > 64).
    Returns ``OpResult(out (B, H, T, D_v), S_T (B, H, D_k, D_v) or None, backend)``.
    """
    check_qkv(q, k, v, causal=True, check_values=False)
    name = select_backend("delta_rule", q.device, backend, dtype=q.dtype, d_k=q.shape[-1])
    common = dict(log_decay=log_decay, normalize_keys=normalize_keys, scale=scale)
    if name == "triton":
        res = _kernel("delta_rule", "chunk_delta_rule")(q, k, v, beta, initial_state=initial_state,
                                                        output_final_state=output_final_state,
                                                        chunk_size=chunk_size, **common)
        return _result(res, output_final_state, name)
    initial_state = _pytorch_state(initial_state, q)
    chunk_size = 64 if chunk_size is None else chunk_size
    if name == "vectorized":
        res = _vec.delta_rule_vectorized(q, k, v, beta, initial_state=initial_state,
                                         output_final_state=output_final_state, chunk_size=chunk_size, **common)
    else:
        fn = _teaching_form(name, _delta.delta_rule_recurrent, _delta.delta_rule_chunkwise, chunk_size)
        res = fn(q, k, v, beta, initial_state=initial_state, return_state=output_final_state, **common)
    return _result(res, output_final_state, name)


# --------------------------------------------------------------------------- diagonal scan


def diagonal_scan(
    lam: torch.Tensor,
    x: torch.Tensor,
    *,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
    backend: str = "auto",
) -> OpResult:
    """The diagonal linear recurrence h_t = lam_t * h_{t-1} + x_t, over time (axis -2), per channel.

    x (..., T, N), any leading dims; lam (N,) (one eigenvalue per channel: S4D, LRU, DMD modes) or
    x's shape (a gate per step: Mamba's selective A-bar); initial_state h_{-1} (..., N), zeros if
    None. Real or complex; promoted as PyTorch does (the kernel: fp32, fp16, bf16, complex64).
    Backends: "triton" (``lablib.kernels.scan``), "vectorized" (chunks of ``chunk_size`` at once),
    "scan" (Hillis-Steele) and "recurrent" (the loop, the truth). For "triton" chunk_size must be a
    power of two <= 1024. Returns ``OpResult(h (..., T, N), h_{T-1} (..., N) or None, backend)``.
    """
    if not isinstance(lam, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise TypeError(f"lam and x must be torch.Tensors; got {type(lam).__name__} and {type(x).__name__}")
    name = select_backend("diagonal_scan", x.device, backend, dtype=torch.promote_types(lam.dtype, x.dtype))
    if name == "triton":
        res = _kernel("diagonal_scan", "diagonal_scan")(lam, x, h0=initial_state, return_final=output_final_state,
                                                        chunk_size=chunk_size)
        return _result(res, output_final_state, name)
    if name == "vectorized":
        res = _vec.diagonal_scan_vectorized(lam, x, initial_state=initial_state,
                                            output_final_state=output_final_state, chunk_size=chunk_size)
        return _result(res, output_final_state, name)
    from lablib.koopman.recurrence import diagonal_recurrence_loop, diagonal_recurrence_scan

    h = diagonal_recurrence_loop(lam, x, initial_state) if name == "recurrent" else diagonal_recurrence_scan(
        lam, x, initial_state, method="hillis_steele")
    return OpResult(h, h[..., -1, :] if output_final_state else None, name)


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lablib.ops", description=__doc__.split("\n")[0])
    parser.add_argument("--bench", action="store_true", help="time the PyTorch backends on this CPU")
    parser.add_argument("--T", type=int, default=4096)
    parser.add_argument("--B", type=int, default=1)
    parser.add_argument("--H", type=int, default=4)
    parser.add_argument("--D", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--backward", action="store_true", help="time forward + backward instead of forward")
    parser.add_argument("--both", action="store_true", help="time forward, then forward + backward")
    parser.add_argument("--no-fla", action="store_true", help="leave out fla's naive forms")
    parser.add_argument("--out", default=None, help="also write the tables as Markdown (e.g. benchmarks/cpu/ops.md)")
    args = parser.parse_args(argv)
    if not args.bench:
        parser.print_help()
        return
    import sys

    from lablib.bench.cpu import run_cpu_bench, write_cpu_bench

    tables = []
    for backward in ([False, True] if args.both else [args.backward]):
        _, table = run_cpu_bench(args.T, args.B, args.H, args.D, threads=args.threads, backward=backward,
                                 fla=not args.no_fla)
        print(table + "\n", flush=True)
        tables.append(table)
    if args.out:
        write_cpu_bench(args.out, tables, "python -m lablib.ops " + " ".join(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
