"""What the chunkwise attention kernels share: tile helpers, input checks, launch set-up, autograd.

``lablib.kernels.linear_attention``, ``gated_linear_attention``, ``gla`` and ``delta_rule`` are
four kernels with one shape: inputs q, k (B, H, T, D_k), v (B, H, T, D_v), a method's own
per-step tensors (gates, step sizes), an optional initial state S_0 and final state S_T, both
(B, H, D_k, D_v) fp32. Each module keeps its @triton.jit kernels and the few host lines that
launch them; everything they would otherwise each repeat lives here:

* the tile helpers every kernel body uses (``_load_tile``, ``_dot``, ``_store_tile``);
* the checks (``_check_qkv``, ``_check_state``, ``_check_chunk_size``, ``_check_per_step``,
  ``_check_values``) and whether the kernels are interpreted (``INTERPRETED``);
* the tiling (``_tiles``) and a call's launch set-up (``Launch``: sizes, grid, meta-parameters
  and the fp32 buffers a launch writes into);
* ``ChunkFunction``, the one autograd wrapper, and ``_apply``, the tail of every public function.

Tiling. A program owns one (batch, head), one block of at most BV = 64 value columns and one
block of at most BK = 128 key columns: the grid is (B * H, cdiv(D_v, BV), cdiv(D_k, BK)). Key
dims up to ``MAX_D_K`` = 512 (four key blocks) are accepted. Where the state's rows never mix
(linear attention, scalar gates, GLA: row d of S only ever sees key dim d), key blocks are as
independent as value blocks, so each is a program of its own. A result that sums over the key
dim (the output o, and in the backward dv and the per-token dot products of the gate gradients)
is then written as one fp32 *share* per key block, which the host adds (``Launch.shares`` and
``Launch.total``), exactly as dq and dk are written as one share per value block. With
D_k <= 128 there is one key block and o is written directly, in the input dtype. The delta rule
mixes the state's rows (its pseudo-values read S^T k over all of D_k), so its programs own every
key block and loop over them (``Launch(..., split_keys=False)``; see that module).

Kernels are compiled for CUDA tensors. On the CPU they run only under the Triton interpreter
(``TRITON_INTERPRET=1`` set before this module is imported), which is how the tests run them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from lablib._checks import check_qkv

__all__ = ["INTERPRETED", "MAX_D_K", "MAX_BK", "MAX_BV", "ChunkFunction", "Launch"]

# Triton picks compiled or interpreted when each @triton.jit runs, i.e. at import. The host checks
# read this module's flag (tests set it here to check the refusal of CPU tensors when compiled).
INTERPRETED: bool = triton.knobs.runtime.interpret

MAX_BK = 128  # key columns per program: BK x BV state tile, BT x BK query and key tiles
MAX_D_K = 512  # the widest key dim: four key blocks of MAX_BK
MAX_BV = 64  # value columns per program; wider D_v is split over programs

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# No software pipelining of the chunk loop (num_stages=1). Pipelining would prefetch the next
# chunks' tiles into shared memory, one copy per stage: with fp32 tiles and BK = 128, the
# default three stages need ~290 KB of shared memory per program, more than an H100 has (227 KB).
_LAUNCH = dict(num_warps=4, num_stages=1)


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
# Checks
# --------------------------------------------------------------------------------------------


def _check_runnable(x: torch.Tensor, pytorch_forms: str = "lablib.attention") -> None:
    if x.device.type == "cpu" and not INTERPRETED:
        raise RuntimeError(
            "lablib.kernels runs Triton kernels, which need a CUDA tensor; on the CPU set "
            "TRITON_INTERPRET=1 before importing lablib.kernels (the Triton interpreter, slow), "
            f"or use the PyTorch forms in {pytorch_forms}"
        )


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """lablib._checks.check_qkv's shape checks, without its NaN scan (a full read and a sync), plus
    what the kernels themselves need (dtype, key width, one device, a way to run)."""
    check_qkv(q, k, v, causal=True, check_values=False)
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in _DTYPES:
        raise ValueError(f"q, k, v must share a dtype, one of fp32, fp16, bf16; got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] > MAX_D_K:
        raise ValueError(
            f"the key dim D_k must be at most {MAX_D_K} ({MAX_D_K // MAX_BK} key blocks of {MAX_BK}); "
            f"got q {tuple(q.shape)}"
        )
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


def _check_chunk_size(chunk_size) -> None:
    """Chunks are tl.dot tile sides: a power of two >= 16."""
    if not isinstance(chunk_size, int) or chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two >= 16 (a tl.dot tile side); got {chunk_size!r}")


def _check_per_step(x: torch.Tensor, q: torch.Tensor, name: str, per_key: bool = False) -> None:
    """A tensor with one value per (batch, head, step), shape (B, H, T), or with ``per_key`` one per
    key dim too, (B, H, T, D_k): a gate, a step size. fp32/fp16/bf16, on q's device."""
    B, H, T, d_k = q.shape
    want, dims = ((B, H, T, d_k), "(B, H, T, D_k)") if per_key else ((B, H, T), "(B, H, T)")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape {dims} = {want}; got {type(x).__name__}")
    if tuple(x.shape) != want:
        raise ValueError(f"{name} must have shape {dims} = {want} to match q {tuple(q.shape)}; got shape {tuple(x.shape)}")
    if x.dtype not in _DTYPES:
        raise ValueError(f"{name} must be fp32, fp16 or bf16; got {x.dtype}")
    if x.device != q.device:
        raise ValueError(f"{name} must be on q's device {q.device}; got {x.device}")


def _check_values(x: torch.Tensor, name: str, valid: torch.Tensor, requirement: str) -> None:
    """ValueError unless ``valid`` (a boolean tensor computed from x) holds everywhere. One
    reduction and one sync with the device: the price of an error instead of silent NaNs."""
    if x.numel() and not valid.all():
        raise ValueError(
            f"{name} must {requirement}; got min {x.min().item():.4g}, max {x.max().item():.4g} "
            f"in {name} of shape {tuple(x.shape)}"
        )


def _check_log_gate(gate: torch.Tensor, q: torch.Tensor, name: str, per_key: bool = False) -> None:
    """A log gate: shape (B, H, T), or (B, H, T, D_k) with ``per_key`` (GLA); finite and <= 0."""
    _check_per_step(gate, q, name, per_key)
    # x <= 0 is False for NaN and +inf, x > -inf for -inf and NaN.
    _check_values(gate, name, (gate <= 0) & (gate > float("-inf")),
                  f"be finite and <= 0 (a decay exp({name}) in (0, 1])")


# --------------------------------------------------------------------------------------------
# Tiling and launch set-up
# --------------------------------------------------------------------------------------------


class Tiles(NamedTuple):
    """Tile sides (powers of two >= 16, what tl.arange and tl.dot need) and block counts."""

    BK: int  # key columns per program (at most MAX_BK)
    BV: int  # value columns per program (at most MAX_BV)
    NV: int  # value blocks: cdiv(D_v, BV)
    NK: int  # key blocks: cdiv(D_k, BK), 1 unless D_k > 128


def _tiles(d_k: int, d_v: int) -> Tiles:
    """(BK, BV, number of value blocks, number of key blocks). tl.dot needs every tile side >= 16."""
    BK = min(MAX_BK, max(16, triton.next_power_of_2(d_k)))
    BV = min(MAX_BV, max(16, triton.next_power_of_2(d_v)))
    return Tiles(BK, BV, triton.cdiv(d_v, BV), triton.cdiv(d_k, BK))


def _dot_precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


class Launch:
    """One call's sizes, launch grid and kernel meta-parameters, and the buffers its kernels fill.

    ``split_keys``: key blocks are programs of their own (grid (B*H, NV, NK)), or one program
    loops over all of them (grid (B*H, NV, 1); the delta rule).
    """

    def __init__(self, q: torch.Tensor, v: torch.Tensor, chunk_size: int, split_keys: bool = True):
        self.B, self.H, self.T, self.d_k = q.shape
        self.d_v = v.shape[-1]
        self.tiles = _tiles(self.d_k, self.d_v)
        self.key_blocks = self.tiles.NK if split_keys else 1  # programs along the key dim
        self.grid = (self.B * self.H, self.tiles.NV, self.key_blocks)
        self.precision = _dot_precision(q.dtype)
        self.meta = dict(D_K=self.d_k, D_V=self.d_v, BT=chunk_size, BK=self.tiles.BK, BV=self.tiles.BV,
                         DOT_PRECISION=self.precision, **_LAUNCH)
        self._like = q

    def state(self, wanted: bool = True) -> torch.Tensor | None:
        """An empty fp32 (B, H, D_k, D_v) state (or None when not wanted)."""
        return self._like.new_empty(self.B, self.H, self.d_k, self.d_v, dtype=torch.float32) if wanted else None

    def partials(self, n: int, *tail: int) -> torch.Tensor:
        """An empty fp32 (n, B, H, T, *tail) buffer: one share per block, added by ``total``."""
        return self._like.new_empty(n, self.B, self.H, self.T, *tail, dtype=torch.float32)

    def shares(self, like: torch.Tensor) -> torch.Tensor:
        """The buffer for a result shaped like ``like`` that sums over the key dim: ``like``'s own
        shape and dtype with one key block, else one fp32 share per key block (added by ``total``)."""
        if self.key_blocks == 1:
            return torch.empty_like(like)
        return like.new_empty(self.key_blocks, *like.shape, dtype=torch.float32)

    @staticmethod
    def total(shares: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The shares added (in fp32) and rounded once to ``like``'s dtype; a buffer already shaped
        like ``like`` (a single share) is returned as it is."""
        if shares.dim() == like.dim():
            return shares
        return shares.sum(0).to(like.dtype)


# --------------------------------------------------------------------------------------------
# Autograd and the public functions' tail
# --------------------------------------------------------------------------------------------


class ChunkFunction(torch.autograd.Function):
    """The autograd wrapper of every chunkwise kernel.

    ``apply(*inputs, initial_state, scale, output_final_state, chunk_size) -> (o, final_state)``:
    ``inputs`` are q, k, v and the method's own tensors (gates, step sizes; None allowed), all
    contiguous; initial_state is fp32 or None. A subclass supplies two static methods,

        kernel_forward(*inputs, initial_state, scale=, output_final_state=, chunk_size=, needs_grad=)
            -> (o, final_state, extras)        extras: what the backward needs besides the inputs
        kernel_backward(*inputs, initial_state, *extras, do=, d_final_state=, scale=, chunk_size=,
                        want_d_initial_state=) -> (the gradients of the inputs..., d_initial_state)

    and this class saves inputs, initial_state and extras, hands the backward contiguous output
    gradients (d_final_state in fp32), asks for d(S_0) only when autograd wants it, and gives no
    gradient to scale, output_final_state and chunk_size. The backward kernels are not
    differentiable themselves (once_differentiable). forward and backward are classmethods so that
    they find the subclass's kernels; torch calls them as it calls static ones.
    """

    @classmethod
    def forward(cls, ctx, *args):
        *inputs, initial_state, scale, output_final_state, chunk_size = args
        o, final_state, extras = cls.kernel_forward(
            *inputs, initial_state, scale=scale, output_final_state=output_final_state, chunk_size=chunk_size,
            needs_grad=any(ctx.needs_input_grad),
        )
        ctx.save_for_backward(*inputs, initial_state, *extras)
        ctx.n_inputs, ctx.scale, ctx.chunk_size = len(inputs), scale, chunk_size
        return o, final_state

    @classmethod
    @torch.autograd.function.once_differentiable
    def backward(cls, ctx, do, d_final_state):
        saved = ctx.saved_tensors
        initial_state = saved[ctx.n_inputs]
        if d_final_state is not None:
            d_final_state = d_final_state.float().contiguous()
        grads = cls.kernel_backward(
            *saved, do=do.contiguous(), d_final_state=d_final_state, scale=ctx.scale, chunk_size=ctx.chunk_size,
            want_d_initial_state=initial_state is not None and ctx.needs_input_grad[ctx.n_inputs],
        )
        return (*grads, None, None, None)


def _initial_state_fp32(initial_state, q: torch.Tensor, v: torch.Tensor):
    """Check an initial state (B, H, D_k, D_v) and return it as contiguous fp32 (None stays None)."""
    if initial_state is None:
        return None
    _check_state(initial_state, q, v, "initial_state")
    return initial_state.float().contiguous()  # differentiable: autograd sees the cast


def _apply(function: type[ChunkFunction], q, k, v, *extra_inputs, initial_state, scale, output_final_state,
           chunk_size):
    """The tail every public function shares, after its own checks: check the chunk size and the
    initial state, default the scale to 1, make the inputs contiguous (the method's own inputs
    fp32), run ``function`` and return o, or (o, final_state) with ``output_final_state``."""
    _check_chunk_size(chunk_size)
    initial_state = _initial_state_fp32(initial_state, q, v)
    scale = 1.0 if scale is None else float(scale)
    extra_inputs = [None if x is None else x.float().contiguous() for x in extra_inputs]
    o, final_state = function.apply(
        q.contiguous(), k.contiguous(), v.contiguous(), *extra_inputs, initial_state, scale, output_final_state,
        chunk_size,
    )
    return (o, final_state) if output_final_state else o
