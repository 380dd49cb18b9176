"""Chunkwise causal linear attention in Triton: forward, backward, and a one-token decoding step.

What is computed (no feature map and no normalizer: apply phi and the scale outside, as the
chapter does; q and k are used as given):

    S_t = S_{t-1} + k_t v_t^T        the (D_k x D_v) state; S_0 is the initial state
    o_t = scale * S_t^T q_t

``lablib.attention.linear_attention_chunkwise`` is the PyTorch form of the algorithm ported
here. For one chunk of C tokens, with queries Q, keys K, values V (one row per token) and the
state S that enters the chunk:

    O  = scale * (Q S + tril(Q K^T) V)      the past through S, this chunk in parallel form
    S <- S + K^T V

Why chunks. Token by token, the recurrence is T dependent rank-1 updates, each far too small
to keep a GPU busy. A chunk turns each step into (C x D) @ (D x D) and (C x C) @ (C x D) matrix
products, which is what tensor cores are built for, and leaves only T / C sequential steps.

Tiling: what each program instance owns. One program owns one (batch, head) pair and one block
of BV value columns. It keeps those columns of the state, S[:, block] (a BK x BV fp32 tile, BK
covering all of D_k), in registers for the whole sequence; walks over the chunks in time order;
and writes O[..., block]. Column j of O needs only column j of S, so value blocks never
interact: the grid is (B * H, cdiv(D_v, BV)), no program reads what another writes, and time is
the only sequential axis.

Ragged sizes. ``tl.arange`` needs a power-of-two length, so every tile is rounded up (the last
chunk to BT rows, D_k to BK, D_v to BV) and the loads past the tensor's edge read 0. Zeros are
harmless: a zero key or value adds nothing to S, a zero column adds nothing to a dot product,
and the stores are masked, so the padding is never written.

Backward. With dO the gradient of the output and dS_T that of the final state:

    dq_t = scale * S_t dO_t                   needs the states in time order
    G_t  = dS_T + scale * sum_{i >= t} q_i dO_i^T   the gradient reaching k_t v_t^T, summed
                                              backwards in time
    dk_t = G_t v_t,   dv_t = G_t^T k_t,   d(S_0) = G_1

``_chunk_dq_kernel`` replays the forward recurrence (recomputing S costs the forward's flops but
saves storing T / C states) and computes, per chunk,

    dQ = scale * (dO S^T + tril(dO V^T) K)

``_chunk_dkdv_kernel`` walks the chunks in reverse carrying dS, the gradient from the chunks
after this one (initialised from dS_T), and computes, with Q' = scale * Q,

    dK = V dS^T + triu(V dO^T) Q'           triu: token t receives from queries i >= t
    dV = K dS   + triu(K Q'^T) dO
    dS <- dS + Q'^T dO

The dS left after the first chunk is d(S_0). Both backward kernels use the forward's tiling; dq
and dk are sums over all of D_v, so each value block writes a partial sum and PyTorch adds the
blocks (one block, nothing to add, whenever D_v <= 64).

Precision. Tiles are loaded as fp32 and every product accumulates in fp32, as does the state.
fp32 inputs use IEEE fp32 dots, so they agree with a float64 reference to ~1e-6; fp16 and
bf16 inputs use TF32 dots (tensor cores; fp16 and bf16 values are exact in TF32, only the fp32
state and scores are rounded when they enter a product). Outputs take the input dtype; states
and their gradients are fp32.

Kernels are compiled for CUDA tensors. On the CPU they run only under the Triton interpreter
(``TRITON_INTERPRET=1`` set before this module is imported), which is how the tests run them.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lablib._checks import check_qkv

__all__ = ["chunk_linear_attention", "fused_recurrent_step", "INTERPRETED"]

# Triton picks compiled or interpreted when each @triton.jit below runs, i.e. at import.
INTERPRETED: bool = triton.knobs.runtime.interpret

MAX_D_K = 128  # the whole key dim lives in one tile: BK x BV state, BT x BK query and key tiles
MAX_BV = 64  # value columns per program; wider D_v is split over programs


# --------------------------------------------------------------------------------------------
# Tile helpers. Every matrix is row-major and contiguous, so element (r, c) of an
# (n_rows x n_cols) matrix sits at base + r * n_cols + c.
# --------------------------------------------------------------------------------------------


@triton.jit
def _load_tile(base, rows, cols, n_rows, n_cols):
    """base[rows, cols] as an fp32 tile; entries outside the (n_rows x n_cols) matrix read as 0."""
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    tile = tl.load(base + rows[:, None] * n_cols + cols[None, :], mask=mask, other=0.0)
    return tile.to(tl.float32)


@triton.jit
def _dot(a, b, precision: tl.constexpr):
    """a @ b accumulated in fp32; precision "ieee" (exact fp32 products) or "tf32" (tensor cores)."""
    return tl.dot(a, b, input_precision=precision)


@triton.jit
def _store_tile(base, rows, cols, n_rows, n_cols, tile):
    """Write tile to base[rows, cols] in base's dtype, skipping entries outside the matrix."""
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    tl.store(base + rows[:, None] * n_cols + cols[None, :], tile.to(base.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------


@triton.jit
def _chunk_fwd_kernel(
    q, k, v, o,  # (B*H, T, D_K), (B*H, T, D_K), (B*H, T, D_V), (B*H, T, D_V)
    initial_state, final_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)  # which (batch, head); int64 so bh * T * D cannot overflow
    vb = tl.program_id(1)  # which block of value columns
    # Move every pointer to this (batch, head)'s matrices.
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    o += bh * T * D_V

    t_in_chunk = tl.arange(0, BT)
    kcols = tl.arange(0, BK)  # all key columns (padded to BK)
    vcols = vb * BV + tl.arange(0, BV)  # this program's value columns
    causal = t_in_chunk[:, None] >= t_in_chunk[None, :]  # query i sees keys j <= i

    # The running state S[:, vcols], in registers for the whole sequence.
    if initial_state is not None:
        S = _load_tile(initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)

    for c in range(0, tl.cdiv(T, BT)):
        rows = c * BT + t_in_chunk  # this chunk's time steps; rows >= T are padding
        Q = _load_tile(q, rows, kcols, T, D_K) * scale
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)

        scores = _dot(Q, tl.trans(K), DOT_PRECISION)  # (BT, BT)
        scores = tl.where(causal, scores, 0.0)
        # Past chunks through the state, plus this chunk in parallel (quadratic) form.
        O = _dot(Q, S, DOT_PRECISION) + _dot(scores, V, DOT_PRECISION)
        _store_tile(o, rows, vcols, T, D_V, O)

        # Absorb the chunk only after reading: its own keys were counted by the causal scores.
        S += _dot(tl.trans(K), V, DOT_PRECISION)

    if final_state is not None:
        _store_tile(final_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, S)


# --------------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------------


@triton.jit
def _chunk_dq_kernel(
    k, v, do, dq_partial,  # (B*H, T, D_K), (B*H, T, D_V), (B*H, T, D_V), (NV, B*H, T, D_K) fp32
    initial_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dQ = scale * (dO S^T + tril(dO V^T) K): the forward loop with dO in the role of Q."""
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    k += bh * T * D_K
    v += bh * T * D_V
    do += bh * T * D_V
    # This value block's share of dq: dq sums over all value columns, the host adds the shares.
    dq_partial += (vb * tl.num_programs(0) + bh) * T * D_K

    t_in_chunk = tl.arange(0, BT)
    kcols = tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)
    causal = t_in_chunk[:, None] >= t_in_chunk[None, :]

    if initial_state is not None:
        S = _load_tile(initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)

    for c in range(0, tl.cdiv(T, BT)):
        rows = c * BT + t_in_chunk
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)
        dO = _load_tile(do, rows, vcols, T, D_V)

        dscores = tl.where(causal, _dot(dO, tl.trans(V), DOT_PRECISION), 0.0)  # (BT, BT)
        dQ = _dot(dO, tl.trans(S), DOT_PRECISION)
        dQ += _dot(dscores, K, DOT_PRECISION)
        _store_tile(dq_partial, rows, kcols, T, D_K, dQ * scale)

        S += _dot(tl.trans(K), V, DOT_PRECISION)


@triton.jit
def _chunk_dkdv_kernel(
    q, k, v, do,  # (B*H, T, D_K), (B*H, T, D_K), (B*H, T, D_V), (B*H, T, D_V)
    dk_partial, dv,  # (NV, B*H, T, D_K) fp32, (B*H, T, D_V)
    d_final_state, d_initial_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dK = V dS^T + triu(V dO^T) Q',  dV = K dS + triu(K Q'^T) dO,  chunks in reverse time order."""
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    do += bh * T * D_V
    dv += bh * T * D_V
    dk_partial += (vb * tl.num_programs(0) + bh) * T * D_K

    t_in_chunk = tl.arange(0, BT)
    kcols = tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)
    # The transposed causal mask: key/value j receives gradient from the queries i >= j.
    anticausal = t_in_chunk[:, None] <= t_in_chunk[None, :]

    # dS[:, vcols]: gradient of the loss w.r.t. the state, from everything after this chunk.
    if d_final_state is not None:
        dS = _load_tile(d_final_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        dS = tl.zeros([BK, BV], dtype=tl.float32)

    n_chunks = tl.cdiv(T, BT)
    for i in range(0, n_chunks):
        c = n_chunks - 1 - i  # last chunk first
        rows = c * BT + t_in_chunk
        Q = _load_tile(q, rows, kcols, T, D_K) * scale
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)
        dO = _load_tile(do, rows, vcols, T, D_V)

        # Within the chunk, (j, i) pairs with i >= j: key j scored query i, value j fed output i.
        kq = tl.where(anticausal, _dot(K, tl.trans(Q), DOT_PRECISION), 0.0)
        vdo = tl.where(anticausal, _dot(V, tl.trans(dO), DOT_PRECISION), 0.0)
        dV = _dot(K, dS, DOT_PRECISION) + _dot(kq, dO, DOT_PRECISION)
        dK = _dot(V, tl.trans(dS), DOT_PRECISION) + _dot(vdo, Q, DOT_PRECISION)
        _store_tile(dv, rows, vcols, T, D_V, dV)
        _store_tile(dk_partial, rows, kcols, T, D_K, dK)

        # This chunk's queries read the state that the earlier chunks wrote: pass their gradient back.
        dS += _dot(tl.trans(Q), dO, DOT_PRECISION)

    if d_initial_state is not None:
        _store_tile(d_initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, dS)


# --------------------------------------------------------------------------------------------
# Decoding: one token, the recurrence itself
# --------------------------------------------------------------------------------------------


@triton.jit
def _recurrent_step_kernel(
    q, k, v, o,  # (B*H, D_K), (B*H, D_K), (B*H, D_V), (B*H, D_V)
    state, new_state,  # (B*H, D_K, D_V) fp32
    scale,
    D_K: tl.constexpr, D_V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    kcols = tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)
    kmask, vmask = kcols < D_K, vcols < D_V

    q_t = tl.load(q + bh * D_K + kcols, mask=kmask, other=0.0).to(tl.float32) * scale
    k_t = tl.load(k + bh * D_K + kcols, mask=kmask, other=0.0).to(tl.float32)
    v_t = tl.load(v + bh * D_V + vcols, mask=vmask, other=0.0).to(tl.float32)
    S = _load_tile(state + bh * D_K * D_V, kcols, vcols, D_K, D_V)

    # One token is a rank-1 update and a matrix-vector product: no tl.dot, so any D works.
    S += k_t[:, None] * v_t[None, :]  # absorb first: o_t attends to k_t itself
    o_t = tl.sum(q_t[:, None] * S, axis=0)  # S^T q_t

    tl.store(o + bh * D_V + vcols, o_t.to(o.dtype.element_ty), mask=vmask)
    _store_tile(new_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, S)


# --------------------------------------------------------------------------------------------
# Host side: checks, launches, autograd
# --------------------------------------------------------------------------------------------

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check_runnable(x: torch.Tensor) -> None:
    if x.device.type == "cpu" and not INTERPRETED:
        raise RuntimeError(
            "lablib.kernels runs Triton kernels, which need a CUDA tensor; on the CPU set "
            "TRITON_INTERPRET=1 before importing lablib.kernels (the Triton interpreter, slow), "
            "or use the PyTorch forms in lablib.attention"
        )


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """lablib._checks.check_qkv's shape checks, without its NaN scan (a full read and a sync), plus
    what the kernel itself needs (dtype, tile size, one device, a way to run)."""
    check_qkv(q, k, v, causal=True, check_values=False)
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in _DTYPES:
        raise ValueError(f"q, k, v must share a dtype, one of fp32, fp16, bf16; got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] > MAX_D_K:
        raise ValueError(f"the key dim D_k must be at most {MAX_D_K} (one tile); got q {tuple(q.shape)}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device; got {q.device}, {k.device}, {v.device}")
    _check_runnable(q)


def _check_state(state: torch.Tensor, q: torch.Tensor, v: torch.Tensor, name: str) -> None:
    B, H, _, d_k = q.shape
    want = (B, H, d_k, v.shape[-1])
    if not isinstance(state, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape (B, H, D_k, D_v) = {want}; got {type(state).__name__}")
    if tuple(state.shape) != want:
        raise ValueError(f"{name} must have shape (B, H, D_k, D_v) = {want}; got shape {tuple(state.shape)}")
    if state.device != q.device:
        raise ValueError(f"{name} must be on q's device {q.device}; got {state.device}")


def _tiles(d_k: int, d_v: int) -> tuple[int, int, int]:
    """(BK, BV, number of value blocks). tl.dot needs every tile side >= 16."""
    BK = max(16, triton.next_power_of_2(d_k))
    BV = min(MAX_BV, max(16, triton.next_power_of_2(d_v)))
    return BK, BV, triton.cdiv(d_v, BV)


def _dot_precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


# No software pipelining of the chunk loop (num_stages=1). Pipelining would prefetch the next
# chunks' tiles into shared memory, one copy per stage: with fp32 tiles and D_k = 128, the
# default three stages need ~290 KB of shared memory per program, more than an H100 has (227 KB).
_LAUNCH = dict(num_warps=4, num_stages=1)


def _forward(q, k, v, initial_state, scale, output_final_state, chunk_size):
    B, H, T, d_k = q.shape
    d_v = v.shape[-1]
    BK, BV, NV = _tiles(d_k, d_v)
    o = torch.empty_like(v)
    final_state = q.new_empty(B, H, d_k, d_v, dtype=torch.float32) if output_final_state else None
    _chunk_fwd_kernel[(B * H, NV)](
        q, k, v, o, initial_state, final_state, scale, T,
        D_K=d_k, D_V=d_v, BT=chunk_size, BK=BK, BV=BV, DOT_PRECISION=_dot_precision(q.dtype), **_LAUNCH,
    )
    return o, final_state


def _backward(q, k, v, do, initial_state, d_final_state, scale, chunk_size, want_d_initial_state):
    B, H, T, d_k = q.shape
    d_v = v.shape[-1]
    BK, BV, NV = _tiles(d_k, d_v)
    meta = dict(D_K=d_k, D_V=d_v, BT=chunk_size, BK=BK, BV=BV, DOT_PRECISION=_dot_precision(q.dtype), **_LAUNCH)

    dq_partial = q.new_empty(NV, B, H, T, d_k, dtype=torch.float32)
    _chunk_dq_kernel[(B * H, NV)](k, v, do, dq_partial, initial_state, scale, T, **meta)

    dk_partial = q.new_empty(NV, B, H, T, d_k, dtype=torch.float32)
    dv = torch.empty_like(v)
    d_initial_state = q.new_empty(B, H, d_k, d_v, dtype=torch.float32) if want_d_initial_state else None
    _chunk_dkdv_kernel[(B * H, NV)](
        q, k, v, do, dk_partial, dv, d_final_state, d_initial_state, scale, T, **meta
    )
    # Add the value blocks' shares of dq and dk (in fp32), then round once to the input dtype.
    return dq_partial.sum(0).to(q.dtype), dk_partial.sum(0).to(k.dtype), dv, d_initial_state


class ChunkLinearAttention(torch.autograd.Function):
    """Autograd wrapper: saves q, k, v (and S_0) and recomputes the states in backward."""

    @staticmethod
    def forward(ctx, q, k, v, initial_state, scale, output_final_state, chunk_size):
        o, final_state = _forward(q, k, v, initial_state, scale, output_final_state, chunk_size)
        ctx.save_for_backward(q, k, v, initial_state)
        ctx.scale, ctx.chunk_size = scale, chunk_size
        return o, final_state

    @staticmethod
    @torch.autograd.function.once_differentiable  # the backward kernels are not differentiable themselves
    def backward(ctx, do, d_final_state):
        q, k, v, initial_state = ctx.saved_tensors
        if d_final_state is not None:
            d_final_state = d_final_state.float().contiguous()
        dq, dk, dv, d_initial_state = _backward(
            q, k, v, do.contiguous(), initial_state, d_final_state, ctx.scale, ctx.chunk_size,
            want_d_initial_state=initial_state is not None and ctx.needs_input_grad[3],
        )
        return dq, dk, dv, d_initial_state, None, None, None


def _check_chunk_size(chunk_size) -> None:
    """Chunks are tl.dot tile sides: a power of two >= 16."""
    if not isinstance(chunk_size, int) or chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two >= 16 (a tl.dot tile side); got {chunk_size!r}")


def _initial_state_fp32(initial_state, q: torch.Tensor, v: torch.Tensor):
    """Check an initial state (B, H, D_k, D_v) and return it as contiguous fp32 (None stays None)."""
    if initial_state is None:
        return None
    _check_state(initial_state, q, v, "initial_state")
    return initial_state.float().contiguous()  # differentiable: autograd sees the cast


def chunk_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
):
    """Causal linear attention o_t = scale * S_t^T q_t, S_t = S_{t-1} + k_t v_t^T, chunkwise in Triton.

    q, k: (B, H, T, D_k) with D_k <= 128; v: (B, H, T, D_v); fp32, fp16 or bf16, one dtype.
    scale: multiplies q (default 1.0: apply feature maps and scaling before calling).
    initial_state: (B, H, D_k, D_v), the state S_0 from an earlier prefix (kept in fp32).
    output_final_state: also return S_T, (B, H, D_k, D_v) fp32.
    chunk_size: tokens per chunk, a power of two >= 16.

    Returns o (B, H, T, D_v) in the input dtype, or (o, final_state). Differentiable in q, k, v
    and initial_state, including through final_state.
    """
    _check_qkv(q, k, v)
    _check_chunk_size(chunk_size)
    initial_state = _initial_state_fp32(initial_state, q, v)
    scale = 1.0 if scale is None else float(scale)
    o, final_state = ChunkLinearAttention.apply(
        q.contiguous(), k.contiguous(), v.contiguous(), initial_state, scale, output_final_state, chunk_size
    )
    return (o, final_state) if output_final_state else o


def fused_recurrent_step(
    q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor, state: torch.Tensor, *, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step: S' = S + k_t v_t^T, o_t = scale * S'^T q_t, in a single kernel.

    q_t, k_t: (B, H, 1, D_k); v_t: (B, H, 1, D_v); state: (B, H, D_k, D_v), kept in fp32.
    Returns (o_t (B, H, 1, D_v) in the input dtype, new_state (B, H, D_k, D_v) fp32); ``state``
    itself is not modified. Forward only (decoding needs no gradients).
    """
    _check_qkv(q_t, k_t, v_t)
    if q_t.shape[2] != 1:
        raise ValueError(f"q_t, k_t, v_t must hold one token, shape (B, H, 1, D); got q_t {tuple(q_t.shape)}")
    _check_state(state, q_t, v_t, "state")
    B, H, _, d_k = q_t.shape
    d_v = v_t.shape[-1]
    state = state.float().contiguous()
    o_t = torch.empty_like(v_t)
    new_state = torch.empty_like(state)
    BK, BV = triton.next_power_of_2(d_k), min(MAX_BV, triton.next_power_of_2(d_v))
    _recurrent_step_kernel[(B * H, triton.cdiv(d_v, BV))](
        q_t.contiguous(), k_t.contiguous(), v_t.contiguous(), o_t, state, new_state, float(scale),
        D_K=d_k, D_V=d_v, BK=BK, BV=BV, **_LAUNCH,
    )
    return o_t, new_state
