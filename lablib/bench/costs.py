"""The cost models: FLOPs and compulsory bytes of one call, and the peaks the rates are read against.

FLOPs of one forward call (a multiply-add = 2 FLOPs; an elementwise op = 1; chunk C, and the
masked half of every C x C block is counted, as the kernels compute it; fla's chunk kernels use
C = 64). With lin = ``2 * B * H * (T*C*D_k + T*C*D_v + 2*T*D_k*D_v)``:

* ``linear``: lin. Per chunk Q K^T and the masked scores times V (C x C x D each), Q S and K^T V
  (C x D_k x D_v each).
* ``scalar_gated``: lin + ``B * H * (3*T*C + 2*T*D_k + T*D_k*D_v/C)``: per chunk the C x C decay
  matrix (segment sums, exp) and its product with the scores (3 C^2), the decay of q and k
  (2 C D_k) and of the state (D_k D_v).
* ``gla``: lin + ``B * H * (6*T*D_k + T*D_k*D_v/C)``. The model counted: the same matrix
  products as linear attention (the intra-chunk scores A as one dense C x C x D_k product, the
  decays folded into Q and K, as the sub-chunked kernels do off the diagonal), plus per token and
  key dim the gate work (cumulative sums and exponentials towards both chunk ends, scaling q and
  k: 6 T D_k) and the state's diagonal decay per chunk. Not counted: the extra exponentials of
  the exact 16 x 16 diagonal sub-blocks (about 16 D_k per token in our kernel and in fla's).
* ``delta``: ``2 * B * H * T * (3*C*D_k + 2*C*D_v + 3*D_k*D_v) + B * H * T * C^2 / 3``: per chunk
  linear attention's products with R in place of V (Q K^T, (scores) R, Q S, K^T R) plus K K^T
  (C x C x D_k), the triangular solve (I + L)^{-1} diag(beta) (~C^3/3 FLOPs: a lower-triangular
  inverse), W = T K and U = T V (C x C x D each) and R = U - W S (C x D_k x D_v). Not counted: the
  key normalization and the beta scalings (O(T D) elementwise).
* ``gated_delta``: delta + ``B * H * (4*T*C + 3*T*D_k + T*D_k*D_v/C)``: the decay matrix
  (segment sums, exp) applied to L and to the scores (4 C^2 per chunk), the decays of K in W, of
  q and of k in the state update (3 C D_k), and of the state (D_k D_v).
* SDPA causal: ``2 * B * H * T * T * (D_k + D_v) / 2`` (the causal half of Q K^T and P V).
* backward is counted as 2x forward, so forward+backward = 3x forward (a convention: the delta
  rule's backward does relatively more, so its TFLOP/s there are an underestimate).

Bytes (the compulsory traffic): forward reads q, k, v and writes o at the input dtype,
``B*H*T*(2*D_k + 2*D_v) * itemsize``, and reads the gates (G fp32 values per token and head:
scalar_gated 1, gla D_k, delta 1 (beta), gated_delta 2) ``B*H*T*G*4``; forward+backward also reads
q, k, v, do and the gates and writes dq, dk, dv and the gates' gradients:
``B*H*T*((6*D_k + 5*D_v) * itemsize + 3*G*4)`` in all. Intermediate traffic (states, scores) is
not counted, so GB/s is a lower bound on what the hardware moved.

Peak. ``torch.cuda.get_device_name`` is matched against a small table of dense bf16 tensor-core
TFLOP/s and HBM GB/s (H100 SXM 989 / 3350, H200 989 / 4800, A100 312 / 2039); the percentages are
always relative to the bf16 dense peak (fp32 inputs use TF32 or fp32 units, whose peak is lower).
Other devices, and the CPU, get "n/a".

``FLOP_TEXT`` is the same models in one line per op, for the report's header; ``device_name`` is
the name every row records and the peak is looked up by.
"""

from __future__ import annotations

import platform
from typing import Callable

import torch

from lablib.bench.registry import GATES, PER_KEY_GATES


def flops(kind: str, pass_: str, B: int, H: int, T: int, d_k: int, d_v: int, chunk: int | None) -> float:
    """FLOPs of one call of ``kind`` (an op or "softmax"; see the module docstring): backward = 2x forward."""
    BH, C = float(B * H), chunk
    if kind == "softmax":
        fwd = 2.0 * BH * T * T * (d_k + d_v) / 2
    elif kind in ("linear", "scalar_gated", "gla"):
        fwd = 2.0 * BH * (T * C * d_k + T * C * d_v + 2 * T * d_k * d_v)
        if kind == "scalar_gated":
            fwd += BH * (3 * T * C + 2 * T * d_k + T * d_k * d_v / C)
        elif kind == "gla":
            fwd += BH * (6 * T * d_k + T * d_k * d_v / C)
    elif kind in ("delta", "gated_delta"):
        fwd = 2.0 * BH * T * (3 * C * d_k + 2 * C * d_v + 3 * d_k * d_v) + BH * T * C * C / 3
        if kind == "gated_delta":
            fwd += BH * (4 * T * C + 3 * T * d_k + T * d_k * d_v / C)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return fwd if pass_ == "fwd" else 3 * fwd


def gate_values(op: str, d_k: int) -> int:
    """fp32 gate values per token and head read by ``op`` (0 for linear attention and SDPA)."""
    return sum(d_k if g in PER_KEY_GATES else 1 for g in GATES.get(op, ()))


def nbytes(pass_: str, B: int, H: int, T: int, d_k: int, d_v: int, itemsize: int, op: str = "linear") -> float:
    """Compulsory bytes of one call: q, k, v (+ gates) read and o written (+ do read, dq, dk, dv (+ d gates) written)."""
    per_token = 2 * d_k + 2 * d_v if pass_ == "fwd" else 6 * d_k + 5 * d_v
    gates = gate_values(op, d_k) * 4 * (1 if pass_ == "fwd" else 3)
    return float(B * H * T * (per_token * itemsize + gates))


FLOP_TEXT = {
    "linear": "linear lin = 2BH(TCD_k + TCD_v + 2TD_kD_v)",
    "scalar_gated": "scalar_gated lin + BH(3TC + 2TD_k + TD_kD_v/C)",
    "gla": "gla lin + BH(6TD_k + TD_kD_v/C) (A as a dense CxCxD_k product; diagonal sub-block exps not counted)",
    "delta": "delta 2BHT(3CD_k + 2CD_v + 3D_kD_v) + BHTC^2/3",
    "gated_delta": "gated_delta delta + BH(4TC + 3TD_k + TD_kD_v/C)",
}


# (test on the device name, label, dense bf16 tensor-core TFLOP/s, HBM GB/s)
PEAKS: list[tuple[Callable[[str], bool], str, float, float]] = [
    (lambda n: "H200" in n, "H200", 989.0, 4800.0),
    (lambda n: "H100" in n and "PCIE" not in n.upper() and "NVL" not in n.upper(), "H100 SXM", 989.0, 3350.0),
    (lambda n: "A100" in n, "A100 (80GB SXM figures)", 312.0, 2039.0),
]


def peak_for(device_name: str) -> tuple[str, float, float] | None:
    """(label, bf16 dense TFLOP/s, HBM GB/s) for a known GPU name, else None."""
    for test, label, tflops, gbps in PEAKS:
        if test(device_name):
            return label, tflops, gbps
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine() or 'unknown'}, {torch.get_num_threads()} threads)"
