"""Diagonal linear recurrences: the bridge from Koopman/DMD to state-space models (SSMs).

In DMD's eigen-coordinates a linear system is diagonal: each mode evolves alone,
h_t = lambda h_{t-1}. Add an input and you get the recurrence at the heart of S4D/S5/LRU/Mamba:

    h_t = lambda_t * h_{t-1} + v_t,     v_t = B u_t (the projected input),  h_{-1} = h0 (default 0)

elementwise over N channels, with lambda complex (|lambda| < 1 for stability) or real.
Shapes: v = u_proj (..., T, N), time on the second-to-last axis, any leading dims, e.g. (B, T, N)
or track 1's (B, H, T, D); lambda (N,) shared over time, or the same shape as u_proj, varying
over time (input-dependent, "selective" in Mamba's words). h0 (..., N). Output h like u_proj.

The sequential loop takes T dependent steps. Because each step is the affine map
h -> a h + b, and composing affine maps is associative,

    (a1, b1) then (a2, b2)  =  (a2 a1, a2 b1 + b2),

all prefixes can be computed by a parallel scan in O(log T) dependent steps:
``diagonal_recurrence_scan`` implements Hillis-Steele (log T rounds, O(T log T) work, simplest)
and Blelloch (up-sweep + down-sweep, O(T) work). Both are plain differentiable PyTorch ops.
"""

from __future__ import annotations

import math

import torch

from lablib._checks import check_finite

__all__ = ["diagonal_recurrence_loop", "diagonal_recurrence_scan", "discretize_diagonal", "combine"]


def _check_inputs(lmbda, u_proj, h0):
    for name, x in (("lmbda", lmbda), ("u_proj", u_proj)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
        if not (x.is_floating_point() or x.is_complex()):
            raise ValueError(f"{name} must be a real or complex floating tensor; got dtype {x.dtype}")
        check_finite(x, name)
    if u_proj.ndim < 2:
        raise ValueError(f"u_proj must have shape (..., T, N), e.g. (batch, T, N); got {tuple(u_proj.shape)}")
    T, N = u_proj.shape[-2:]
    if T < 1:
        raise ValueError(f"u_proj must have at least one time step; got shape {tuple(u_proj.shape)}")
    if lmbda.shape not in ((N,), u_proj.shape):
        raise ValueError(f"lmbda must have shape (N,) = ({N},) or u_proj's {tuple(u_proj.shape)}; got {tuple(lmbda.shape)}")
    if h0 is not None:
        want = u_proj.shape[:-2] + (N,)
        if not isinstance(h0, torch.Tensor) or h0.shape != want:
            raise ValueError(f"h0 must be a tensor of shape (..., N) = {tuple(want)}; got {getattr(h0, 'shape', type(h0))}")
        check_finite(h0, "h0")
    dtype = torch.promote_types(lmbda.dtype, u_proj.dtype)
    if h0 is not None:
        dtype = torch.promote_types(dtype, h0.dtype)
    return dtype


def diagonal_recurrence_loop(lmbda: torch.Tensor, u_proj: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """Reference: h_t = lmbda_t * h_{t-1} + u_proj_t for t = 0..T-1, one step at a time.

    lmbda (N,) or like u_proj, u_proj (..., T, N), h0 (..., N) or None (zeros).
    Returns h (..., T, N) in the promoted dtype (complex if either input is).
    """
    dtype = _check_inputs(lmbda, u_proj, h0)
    lam = lmbda.to(dtype).expand(u_proj.shape)
    v = u_proj.to(dtype)
    h = torch.zeros(v.shape[:-2] + v.shape[-1:], dtype=dtype, device=v.device) if h0 is None else h0.to(dtype)
    out = []
    for t in range(v.shape[-2]):
        h = lam[..., t, :] * h + v[..., t, :]
        out.append(h)
    return torch.stack(out, dim=-2)


def combine(a1, b1, a2, b2):
    """Compose two affine steps: first h -> a1 h + b1, then h -> a2 h + b2, gives (a2 a1, a2 b1 + b2)."""
    return a2 * a1, a2 * b1 + b2


def _hillis_steele(a, b):
    # Round d: element t absorbs the summary of the 2^d elements before it. After ceil(log2 T)
    # rounds element t summarizes 0..t, so b[t] is h_t (with h_{-1} = 0 folded into b[0]).
    T = a.shape[-2]
    offset = 1
    while offset < T:
        # out-of-place updates (torch.cat), so autograd sees every round and reads stay consistent
        a_prev, b_prev = a[..., :-offset, :], b[..., :-offset, :]
        a_new, b_new = combine(a_prev, b_prev, a[..., offset:, :], b[..., offset:, :])
        a = torch.cat([a[..., :offset, :], a_new], dim=-2)
        b = torch.cat([b[..., :offset, :], b_new], dim=-2)
        offset *= 2
    return b


def _blelloch(a, b):
    # Work-efficient scan on a length padded to a power of two with identity steps (a=1, b=0).
    T = a.shape[-2]
    L = 1 << max(0, math.ceil(math.log2(T)))
    if L > T:
        pad = a.shape[:-2] + (L - T, a.shape[-1])
        a = torch.cat([a, torch.ones(pad, dtype=a.dtype, device=a.device)], dim=-2)
        b = torch.cat([b, torch.zeros(pad, dtype=b.dtype, device=b.device)], dim=-2)
    # Up-sweep: a tree of partial compositions. Level d keeps one summary per block of 2^d steps.
    levels = [(a, b)]
    while a.shape[-2] > 1:
        a, b = combine(a[..., 0::2, :], b[..., 0::2, :], a[..., 1::2, :], b[..., 1::2, :])
        levels.append((a, b))
    # Down-sweep: the exclusive prefix (everything strictly before a block) flows from the root
    # down; the prefix before the left child is the parent's, before the right child it is the
    # parent's prefix composed with the left child. Start from the identity step at the root.
    pa = torch.ones_like(levels[-1][0])
    pb = torch.zeros_like(levels[-1][1])
    for la, lb in reversed(levels[:-1]):
        left_a, left_b = la[..., 0::2, :], lb[..., 0::2, :]
        right_pa, right_pb = combine(pa, pb, left_a, left_b)
        pa = torch.stack([pa, right_pa], dim=-2).reshape(la.shape)  # interleave left, right
        pb = torch.stack([pb, right_pb], dim=-2).reshape(lb.shape)
    # inclusive prefix = exclusive prefix, then the element itself
    a0, b0 = levels[0]
    _, h = combine(pa, pb, a0, b0)
    return h[..., :T, :]


def diagonal_recurrence_scan(
    lmbda: torch.Tensor, u_proj: torch.Tensor, h0: torch.Tensor | None = None, *, method: str = "hillis_steele"
) -> torch.Tensor:
    """The same h (..., T, N) as ``diagonal_recurrence_loop``, by a parallel prefix scan over time (axis -2).

    Element t is the affine step (a_t, b_t) = (lmbda_t, u_proj_t); h0 is folded into the first one
    as b_0 = lmbda_0 h0 + u_proj_0. ``method``: "hillis_steele" (default) or "blelloch".
    Differentiable; gradients equal the loop's.
    """
    dtype = _check_inputs(lmbda, u_proj, h0)
    if method not in ("hillis_steele", "blelloch"):
        raise ValueError(f"method must be 'hillis_steele' or 'blelloch'; got {method!r}")
    a = lmbda.to(dtype).expand(u_proj.shape)
    b = u_proj.to(dtype)
    if h0 is not None:
        b = torch.cat([b[..., :1, :] + a[..., :1, :] * h0.to(dtype).unsqueeze(-2), b[..., 1:, :]], dim=-2)
    return _hillis_steele(a, b) if method == "hillis_steele" else _blelloch(a, b)


def discretize_diagonal(omega: torch.Tensor, B: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-order-hold discretization of the diagonal ODE h' = omega * h + B u (as in S4D / S5).

    omega (N,) continuous-time eigenvalues (e.g. DMD's log(lambda)/dt), B (N, n_input).
    Returns lmbda = exp(omega dt) (N,) and B_bar = (lmbda - 1) / omega * B (N, n_input), so that
    h_t = lmbda h_{t-1} + B_bar u_t is exact when u is constant over each step (B_bar -> dt B as omega -> 0).
    """
    if not isinstance(omega, torch.Tensor) or omega.ndim != 1:
        raise ValueError(f"omega must be a 1-D tensor (N,); got {getattr(omega, 'shape', type(omega))}")
    if not isinstance(B, torch.Tensor) or B.ndim != 2 or B.shape[0] != omega.shape[0]:
        raise ValueError(f"B must be a tensor of shape (N={omega.shape[0]}, n_input); got {getattr(B, 'shape', type(B))}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite positive number; got {dt!r}")
    lam = torch.exp(omega * dt)
    # (exp(omega dt) - 1) / omega, with its limit dt where omega = 0 (expm1 keeps small omega accurate)
    safe = torch.where(omega == 0, torch.ones_like(omega), omega)
    gain = torch.where(omega == 0, torch.full_like(omega, dt), torch.expm1(omega * dt) / safe)
    return lam, gain[:, None] * B.to(gain.dtype)
