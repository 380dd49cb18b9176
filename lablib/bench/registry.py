"""The op registry: which ops and implementations the benchmark compares, and how each is called.

Each op is one recurrence of the linear-attention family; ``implementations(op)`` names the four
implementations in its table, and ``_build(name, cfg, op)`` makes one of them as an ``Impl``: a
callable ``fn(q, k, v, *gates) -> o`` taking and returning its native layout, with the op it is
checked as, its layout, chunk size and a note. The extra inputs of each op (``GATES``), in call
order, are fp32 gates (``log_decay``, ``log_alpha``) and ``beta``.

Implementations. The lablib reference is a Python loop over chunks (it also runs the input checks'
NaN scans, part of its cost). Ours are called with ``scale=1.0, chunk_size=C``. fla is imported
lazily ("not installed" when absent); its keyword names changed across versions, so the bench
inspects the installed function's signature and calls it only if it can compute the same function:
``scale`` must exist (else fla would apply 1/sqrt(D_k)), ``chunk_linear_attn`` must take
``normalize`` (passed ``False``); ``head_first=False`` is passed when the argument exists. For the
delta ops, lablib L2-normalizes the keys (not the queries) inside the call: fla's
``use_k_l2norm_in_kernel=True`` is used where it exists (the same function), else
``use_qk_l2norm_in_kernel=True`` (which also normalizes q: the delta inputs have unit-norm queries
and keys, so on them this is the same function), else no in-kernel normalization (the keys are
already unit-norm; fla then skips work that lablib does, which the ``note`` column says). Anything
else is a row "n/a (reason)": a different function is never benchmarked silently, and the
correctness check (``lablib.bench.inputs``) flags one that slipped through. fla takes (B, T, H, D)
tensors and (B, T, H[, D]) gates; its inputs are made in that layout *before* timing (no transpose
timed) and its output is transposed back only for the check. Each implementation runs in its own
``try``: an error (out of memory, not installed, no CUDA, an import failure of a kernel still being
written) records rows with status "n/a (reason)" (``NotAvailable``, ``_reason``) and the run goes on.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import torch

if TYPE_CHECKING:
    from lablib.bench.runner import Config


REF = "pytorch chunkwise (lablib reference)"
TRITON = "triton chunkwise (lablib.kernels)"
SDPA = "sdpa causal (softmax, FlashAttention path)"
PASSES = ("fwd", "fwd+bwd")

# The ops, in table order: what each computes (for the tables), the lablib reference, our kernel
# (module, function) and fla's (module, function).
OPS = ("linear", "scalar_gated", "gla", "delta", "gated_delta")
OP_TITLES = {
    "linear": "causal linear attention (identity map, unnormalized): S_t = S_{t-1} + k_t v_t^T",
    "scalar_gated": "scalar-gated linear attention (RetNet / Mamba-2 decay): S_t = a_t S_{t-1} + k_t v_t^T",
    "gla": "gated linear attention (GLA, a decay per key dim): S_t = diag(alpha_t) S_{t-1} + k_t v_t^T",
    "delta": "delta rule (DeltaNet, unit keys): S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T",
    "gated_delta": "gated delta rule (Gated DeltaNet): S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T",
}
REF_FUNCTIONS = {
    "linear": "linear_attention_chunkwise",
    "scalar_gated": "scalar_gated_chunkwise",
    "gla": "gla_chunkwise",
    "delta": "delta_rule_chunkwise",
    "gated_delta": "delta_rule_chunkwise",
}
OUR_KERNELS = {
    "linear": ("lablib.kernels.linear_attention", "chunk_linear_attention"),
    "scalar_gated": ("lablib.kernels.gated_linear_attention", "chunk_scalar_gated_attention"),
    "gla": ("lablib.kernels.gla", "chunk_gla"),
    "delta": ("lablib.kernels.delta_rule", "chunk_delta_rule"),
    "gated_delta": ("lablib.kernels.delta_rule", "chunk_delta_rule"),
}
FLA_FUNCTIONS = {
    "linear": ("fla.ops.linear_attn", "chunk_linear_attn"),
    "scalar_gated": ("fla.ops.simple_gla", "chunk_simple_gla"),
    "gla": ("fla.ops.gla", "chunk_gla"),
    "delta": ("fla.ops.delta_rule", "chunk_delta_rule"),
    "gated_delta": ("fla.ops.gated_delta_rule", "chunk_gated_delta_rule"),
}
FLA_NAMES = {op: f"fla {fn}" for op, (_, fn) in FLA_FUNCTIONS.items()}
FLA_NEEDS_CUDA = True  # fla's kernels are Triton-on-CUDA; the tests turn this off to run fake fla modules on the CPU
FLA = FLA_NAMES["linear"]
# The extra inputs of each op, in call order, and how many fp32 values per token and head they hold
# (``per_key``: D_k of them).
GATES: dict[str, tuple[str, ...]] = {
    "linear": (),
    "scalar_gated": ("log_decay",),
    "gla": ("log_alpha",),
    "delta": ("beta",),
    "gated_delta": ("log_decay", "beta"),
}
PER_KEY_GATES = {"log_alpha"}


def implementations(op: str) -> tuple[str, str, str, str]:
    """The four implementations compared for ``op``: reference, ours, SDPA, fla."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {OPS}")
    return (REF, TRITON, SDPA, FLA_NAMES[op])


IMPLEMENTATIONS = implementations("linear")

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# fla's ops in order of how many configs its autotuner compiles and times for them (fewest first; counted by
# ``python -m lablib.bench attention --estimate-only --grid gpu``): with ``fla_last`` fla runs in this order.
FLA_ORDER = ("linear", "gated_delta", "delta", "scalar_gated", "gla")

FLA_CHUNK = 64  # fla's chunk kernels' block size, for its FLOP count


class NotAvailable(Exception):
    """An implementation that cannot run here; the message is the row's reason."""


# A row's reason, from the exception of an implementation that cannot be built or fails.


def _short(e: BaseException, n: int = 160) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower() or "can't allocate" in str(e).lower()


def _reason(e: BaseException) -> str:
    if isinstance(e, NotAvailable):
        return str(e)
    if _is_oom(e):
        return "out of memory"
    return f"{e.__class__.__name__}: {_short(e)}"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _fla_version() -> str:
    """fla's version, under either of its distributions (flash-linear-attention, or fla-core: the ops alone)."""
    for dist in ("flash-linear-attention", "fla-core"):
        version = _version(dist)
        if version != "not installed":
            return version if dist == "flash-linear-attention" else f"{version} (fla-core)"
    return "not installed"


# Each implementation builds fn(q, k, v, *gates) -> o, taking and returning its native layout.


@dataclass
class Impl:
    name: str
    fn: Callable[..., torch.Tensor]
    kind: str  # the op (checked against its float64 lablib reference) or "softmax"
    layout: str  # "BHTD" or "BTHD" (fla): the inputs' layout, made before timing
    chunk: int | None
    note: str = ""
    uses_gates: bool = True  # False: called with q, k, v only (SDPA)
    gates_in_input_dtype: tuple[str, ...] = ()  # gates passed in q's dtype (else fp32)


def _lablib_reference(op: str, C: int) -> Callable[..., torch.Tensor]:
    """The op's PyTorch chunkwise function from lablib.attention, as fn(q, k, v, *gates)."""
    import lablib.attention as la

    if op == "linear":
        return lambda q, k, v: la.linear_attention_chunkwise(q, k, v, feature_map="identity", normalize=False, chunk_size=C)
    if op == "scalar_gated":
        return lambda q, k, v, g: la.scalar_gated_chunkwise(q, k, v, g, chunk_size=C)
    if op == "gla":
        return lambda q, k, v, g: la.gla_chunkwise(q, k, v, g, chunk_size=C)
    if op == "delta":
        return lambda q, k, v, beta: la.delta_rule_chunkwise(q, k, v, beta, chunk_size=C)
    if op == "gated_delta":
        return lambda q, k, v, g, beta: la.delta_rule_chunkwise(q, k, v, beta, log_decay=g, chunk_size=C)
    raise ValueError(f"unknown op {op!r}")


def _ours(op: str, C: int) -> Callable[..., torch.Tensor]:
    """Our Triton kernel for the op, as fn(q, k, v, *gates); NotAvailable if it does not import."""
    module, function = OUR_KERNELS[op]
    try:
        kernel = getattr(importlib.import_module(module), function)
    except Exception as e:  # e.g. a kernel module still being written
        raise NotAvailable(f"import of {module}.{function} failed: {e.__class__.__name__}: {_short(e)}") from e
    if op == "linear":
        return lambda q, k, v: kernel(q, k, v, scale=1.0, chunk_size=C)
    if op in ("scalar_gated", "gla"):
        return lambda q, k, v, g: kernel(q, k, v, g, scale=1.0, chunk_size=C)
    # The delta-rule kernel's backward overflows shared memory at D_k > 64 with chunks of 64 (see
    # lablib.kernels.delta_rule.chunk_delta_rule): it runs with chunks of 32 there (FLOPs still count C).
    delta_chunk = lambda q: min(C, 32) if q.shape[-1] > 64 else C  # noqa: E731
    if op == "delta":
        return lambda q, k, v, beta: kernel(q, k, v, beta, log_decay=None, scale=1.0, chunk_size=delta_chunk(q))
    if op == "gated_delta":
        return lambda q, k, v, g, beta: kernel(q, k, v, beta, log_decay=g, scale=1.0, chunk_size=delta_chunk(q))
    raise ValueError(f"unknown op {op!r}")


def _fla_kwargs(op: str, params: Mapping[str, inspect.Parameter]) -> tuple[dict, str]:
    """Keyword arguments that make the installed fla function compute the op with scale 1, and a note.

    ``params`` is ``inspect.signature(fla_function).parameters``. Raises NotAvailable when this
    version cannot be called to compute the same function as the lablib reference.
    """
    function = FLA_FUNCTIONS[op][1]
    if "scale" not in params:
        raise NotAvailable(f"installed fla's {function} has no scale argument; it would apply 1/sqrt(D_k)")
    kwargs: dict = dict(scale=1.0)
    note = ""
    if op == "linear":
        if "normalize" not in params:
            raise NotAvailable("installed fla's chunk_linear_attn has no normalize=False; it would compute another function")
        kwargs["normalize"] = False
    for gate in GATES[op]:
        arg = "beta" if gate == "beta" else "g"  # fla's names: g (log gates, scalar or per key dim), beta
        if arg not in params:
            raise NotAvailable(f"installed fla's {function} has no {arg!r} argument")
    if op in ("delta", "gated_delta"):
        if "use_k_l2norm_in_kernel" in params:
            kwargs["use_k_l2norm_in_kernel"] = True
            if "use_q_l2norm_in_kernel" in params:
                kwargs["use_q_l2norm_in_kernel"] = False
            note = "keys L2-normalized in the kernel (as lablib)"
        elif "use_qk_l2norm_in_kernel" in params:
            kwargs["use_qk_l2norm_in_kernel"] = True
            note = "q and k L2-normalized in the kernel (q is unit-norm here, so the same function)"
        else:
            note = "no in-kernel L2 norm (keys are unit-norm already; lablib normalizes them, fla does not)"
    if "head_first" in params:
        kwargs["head_first"] = False
    return kwargs, note


def _fla(op: str, cfg: "Config") -> Impl:
    module, function = FLA_FUNCTIONS[op]
    name = FLA_NAMES[op]
    try:
        fn = getattr(importlib.import_module(module), function)
    except ImportError as e:
        if importlib.util.find_spec("fla") is None:
            raise NotAvailable("not installed") from e
        raise NotAvailable(f"import of {module}.{function} failed: {e.__class__.__name__}: {_short(e)}") from e
    except Exception as e:  # installed but broken here (e.g. needs a GPU at import)
        raise NotAvailable(f"import failed: {e.__class__.__name__}: {_short(e)}") from e
    kwargs, note = _fla_kwargs(op, inspect.signature(fn).parameters)
    if FLA_NEEDS_CUDA and cfg.device.type != "cuda":
        raise NotAvailable("fla's Triton kernels need CUDA")

    def first(out):
        return out[0] if isinstance(out, tuple) else out

    if op == "linear":
        call = lambda q, k, v: first(fn(q, k, v, **kwargs))  # noqa: E731
    elif op in ("scalar_gated", "gla"):
        call = lambda q, k, v, g: first(fn(q, k, v, g=g, **kwargs))  # noqa: E731
    elif op == "delta":
        call = lambda q, k, v, beta: first(fn(q, k, v, beta=beta, **kwargs))  # noqa: E731
    else:
        call = lambda q, k, v, g, beta: first(fn(q, k, v, g=g, beta=beta, **kwargs))  # noqa: E731
    note = ", ".join(x for x in (f"fla {_fla_version()}, (B,T,H,D) inputs", note) if x)
    return Impl(name, call, op, "BTHD", FLA_CHUNK, note, gates_in_input_dtype=("beta",))


def _build(name: str, cfg: "Config", op: str = "linear") -> Impl:
    """The callable for one implementation of ``op``, or NotAvailable with the reason."""
    C = cfg.chunk_size
    if name == REF:
        return Impl(name, _lablib_reference(op, C), op, "BHTD", C, gates_in_input_dtype=GATES[op])

    if name == TRITON:
        from lablib.kernels.linear_attention import INTERPRETED

        if cfg.device.type != "cuda" and not INTERPRETED:
            raise NotAvailable("no CUDA; set TRITON_INTERPRET=1")
        if cfg.device.type == "cuda" and INTERPRETED:
            raise NotAvailable("TRITON_INTERPRET=1 on a CUDA run; unset it to time compiled kernels")
        return Impl(name, _ours(op, C), op, "BHTD", C, "Triton interpreter" if INTERPRETED else "")

    if name == SDPA:
        import torch.nn.functional as F

        def sdpa(q, k, v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        return Impl(name, sdpa, "softmax", "BHTD", None, uses_gates=False)

    if name == FLA_NAMES[op]:
        return _fla(op, cfg)

    raise ValueError(f"unknown implementation {name!r} for op {op!r}")
