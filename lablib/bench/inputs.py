"""The inputs of one (op, T, D) case, in each implementation's layout, and their correctness check.

Inputs (made on the device before timing; one seed per op, T and D). q, k ~ N(0, 1/sqrt(D)) (so
q.k ~ N(0, 1)) and v ~ N(0, 1), D_k = D_v = D; for the delta ops q and k are L2-normalized rows
(DeltaNet's convention, and what makes fla's q-and-k normalization agree with lablib's). Gates are
fp32 tensors: log_decay = logsigmoid(randn + 3) (B, H, T) and log_alpha = logsigmoid(randn + 3)
(B, H, T, D_k), decays around 0.95 per step; beta = sigmoid(randn) in [0, 1] (B, H, T). Their
values are first rounded to the input dtype, so every implementation sees exactly the same gates:
ours get them in fp32, the lablib reference in the input dtype (its checks require q's dtype),
fla fp32 gates and beta in the input dtype (as its documentation shows). For forward+backward the
gates and beta are leaves that require grad too (as in training), so every implementation also
computes their gradients.

Correctness. Before timing a (op, T, D) configuration, each implementation's forward output is
compared with a float64 lablib reference on batch element 0: the op's chunkwise lablib function
(``lablib.bench.registry``) in float64 over all T rows; SDPA against
``lablib.attention.softmax_attention(causal=True)`` on the first min(T, 2048) query rows (causal
rows t < R depend only on keys and values t < R, so the prefix is an exact check that needs no
T x T matrix). ``max_err`` = max |out - ref| / max |ref|
(``max_abs_err`` unscaled). A row whose ``max_err`` exceeds the dtype's tolerance (fp32 1e-2,
fp16 3e-2, bf16 1e-1: loose enough for TF32 and half-precision rounding, far below the O(1) error
of a different function or layout) is still timed but gets status "inaccurate (...)", not "ok".
Half precision: ``torch.linalg.solve_triangular`` has no fp16/bf16 CPU kernel, so in fp16/bf16
on the CPU the delta references are "n/a (NotImplementedError ...)"; use fp32 there. On CUDA the
solve goes to cuBLAS trsm, which may lack half precision too: if so, the row says so in the same
way (the float64 correctness references are unaffected).
"""

from __future__ import annotations

import torch

from lablib.bench.registry import GATES, OPS, Impl, _lablib_reference


CHECK_TOL = {torch.float32: 1e-2, torch.float16: 3e-2, torch.bfloat16: 1e-1}

SOFTMAX_CHECK_ROWS = 2048  # SDPA is checked on this many leading query rows (a T x T reference is too big)


def _seed(op: str, T: int, D: int) -> int:
    return (OPS.index(op) * 1_000_003 + T * 1009 + D) % (2**31)


def _inputs(B, H, T, D, dtype, device, seed=0, op="linear"):
    """q, k, v (B, H, T, D) in ``dtype`` and the op's gates (fp32, values representable in ``dtype``).

    q, k ~ N(0, 1/sqrt(D)) (unit-norm rows for the delta ops), v ~ N(0, 1);
    log_decay = logsigmoid(randn + 3) (B, H, T); log_alpha the same, (B, H, T, D);
    beta = sigmoid(randn) (B, H, T). Made on the device.
    """
    import torch.nn.functional as F

    g = torch.Generator(device=device).manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=g, device=device, dtype=torch.float32)  # noqa: E731
    q, k, v = (randn(B, H, T, D) for _ in range(3))
    if op in ("delta", "gated_delta"):
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    else:
        s = D**-0.25
        q, k = q * s, k * s
    gates = {}
    for name in GATES[op]:
        if name == "log_decay":
            x = F.logsigmoid(randn(B, H, T) + 3)
        elif name == "log_alpha":
            x = F.logsigmoid(randn(B, H, T, D) + 3)
        else:  # beta
            x = torch.sigmoid(randn(B, H, T))
        gates[name] = x.to(dtype).float()  # the same values for every implementation, whatever dtype it takes
    return q.to(dtype), k.to(dtype), v.to(dtype), gates


def _to_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """(B, H, T, ...) -> the implementation's layout ((B, T, H, ...) for fla), contiguous."""
    return x.transpose(1, 2).contiguous() if layout == "BTHD" else x


def _from_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    return x.transpose(1, 2) if layout == "BTHD" else x


def _impl_gates(impl: Impl, op: str, gates: dict[str, torch.Tensor], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """The op's gates as ``impl`` takes them: its layout, fp32 or (where it needs) the input dtype."""
    if not impl.uses_gates:
        return ()
    return tuple(
        _to_layout(gates[n].to(dtype) if n in impl.gates_in_input_dtype else gates[n], impl.layout) for n in GATES[op]
    )


def _references(q, k, v, chunk_size: int, op: str = "linear", gates: dict | None = None) -> dict[str, tuple[torch.Tensor, int]]:
    """float64 references on batch element 0: kind (the op, "softmax") -> (output rows checked, number of rows)."""
    from lablib.attention import softmax_attention

    q0, k0, v0 = (x[:1].double() for x in (q, k, v))
    g0 = tuple(gates[n][:1].double() for n in GATES[op]) if gates else ()
    T = q.shape[2]
    R = min(T, SOFTMAX_CHECK_ROWS)
    with torch.no_grad():
        ref = _lablib_reference(op, chunk_size)(q0, k0, v0, *g0)
        soft = softmax_attention(q0[:, :, :R], k0[:, :, :R], v0[:, :, :R], causal=True)
    return {op: (ref, T), "softmax": (soft, R)}


def _errors(out: torch.Tensor, ref: torch.Tensor, rows: int) -> tuple[float, float]:
    diff = (out[:1, :, :rows].double() - ref).abs().max().item()
    scale = ref.abs().max().item()
    return diff / scale if scale > 0 else diff, diff
