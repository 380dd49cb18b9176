"""The diagonal linear recurrence h_t = lambda_t * h_{t-1} + x_t in Triton, forward and backward.

What is computed. Elementwise over N channels, for t = 0 .. T-1,

    h_t = lambda_t * h_{t-1} + x_t,          h_{-1} = h0 (default 0)

with x (..., T, N), lambda either (N,) (one eigenvalue per channel for all time: S4D, LRU, a
Koopman/DMD model in eigen-coordinates) or the same shape as x (a gate per step and channel:
Mamba's selective A-bar, GLA's forget gates). ``lablib.koopman.recurrence`` holds the PyTorch
references: ``diagonal_recurrence_loop`` (one step at a time) and ``diagonal_recurrence_scan``
(Hillis-Steele and Blelloch in plain PyTorch). This module is the same computation as one fused
kernel: every input is read once, every h written once, nothing T-sized is materialised twice.

Why the recurrence is a scan. Step t is the affine map f_t(h) = a_t h + b_t (a_t = lambda_t,
b_t = x_t), and h_t = f_t(f_{t-1}(... f_0(h0))). Composing two affine maps gives an affine map,

    (a1, b1) then (a2, b2)  =  (a2 a1, a2 b1 + b2)        h -> a2 (a1 h + b1) + b2

and composition is associative (it is function composition), though not commutative. A prefix
"sum" under any associative operator is a scan, so all T prefixes F_t = f_t o ... o f_0 can be
computed by a parallel scan: ceil(log2 T) dependent rounds instead of T, with O(T) total work
for a work-efficient (Blelloch-style) tree, or O(T log T) for the simpler Hillis-Steele one.
Then h_t = A_t h0 + B_t, where (A_t, B_t) = F_t: A_t = lambda_t ... lambda_0 and B_t is h_t
started from h0 = 0. The operator is exactly ``combine`` in lablib.koopman.recurrence, and
``_combine_real`` / ``_combine_complex`` below.

Tiling: what each program instance owns. One program owns one row (a flattened leading index,
e.g. one batch element) and one block of BN channels. Channels never interact, so the grid is
(rows, cdiv(N, BN)) and only time is sequential. Along time the program walks chunks of BT
steps. Within a chunk the BT steps are scanned in parallel with ``tl.associative_scan`` over
axis 0 of the (BT x BN) tiles of (a, b), which the compiler lowers to a log-depth tree within
and across warps; across chunks a single state vector h (BN,) is carried in registers:

    (A, B) = inclusive scan of the chunk's (a_t, b_t)     A_t = prod of a within the chunk so far
    h_t    = A_t * h_carry + B_t                          for every t of the chunk at once
    h_carry <- h at the chunk's last step

so the dependent chain has T / BT + log2 BT links instead of T. (A whole-sequence scan, with no
chunk loop, would shorten it further, but a tile must fit in registers; T is unbounded.) The
arithmetic is trivial either way: the kernel is memory-bound, and what matters is that lambda, x
and h each cross memory once, in coalesced rows (channels are the contiguous axis).

Ragged sizes. ``tl.arange`` needs powers of two, so the last chunk and the last channel block
are padded. Padding steps load the identity map (a = 1, b = 0), which leaves a scan's prefixes
unchanged, so the carry out of a padded chunk is still the state at its last real step; stores
are masked.

Backward. Let dh_t be the gradient reaching h_t from the loss (through the output h, and for the
last step also through the returned final state). h_t feeds the loss directly and through
h_{t+1} = lambda_{t+1} h_t + x_{t+1}, so the total gradient g_t = dL/dh_t obeys

    g_t = dh_t + lambda_{t+1} g_{t+1},     g_T = 0   (or the final state's gradient, see below)

the same diagonal recurrence, run backwards in time with the coefficients shifted by one step.
From g:  dx_t = g_t,  dlambda_t = g_t h_{t-1} (summed over rows and time when lambda is (N,)),
dh0 = lambda_0 g_0. ``_scan_bwd_kernel`` is the forward kernel walking the chunks last to first,
and each chunk's steps last to first (it loads the chunk through reversed time indices, so the
very same forward scan runs the reversed sequence; ``tl.associative_scan(..., reverse=True)``
would do too). The shifted coefficient past the end, lambda_T, reads as 1: then the carry that
enters the reversal, the gradient of the returned final state (= h_{T-1}), is added to g_{T-1}
exactly as dh_{T-1} is. The saved output h supplies h_{t-1}; nothing is recomputed.

Complex lambda (Koopman eigenvalues come in conjugate pairs, LRU/S5 use complex diagonals).
complex64 tensors are viewed as (re, im) pairs of fp32 (``torch.view_as_real``) and the kernel
does the complex products itself, scanning four fp32 tiles instead of two. PyTorch's convention
for the gradient of a real loss with respect to a complex z is dL/dRe z + i dL/dIm z, which makes
the backward the complex-conjugate recurrence: g_t = dh_t + conj(lambda_{t+1}) g_{t+1},
dlambda_t = g_t conj(h_{t-1}), dh0 = conj(lambda_0) g_0.

Precision. Loads are converted to fp32 and all arithmetic, the carried state included, is fp32;
h is rounded once to the output dtype. Half-precision inputs therefore err less than a PyTorch
loop in the same dtype, which rounds h at every step (the tests assert at most twice its error).
The backward reads the saved h, rounded to the output dtype, for dlambda; dlambda for a shared
(N,) lambda is summed in fp32.

Kernels are compiled for CUDA tensors. On the CPU they run only under the Triton interpreter
(``TRITON_INTERPRET=1`` set before this module is imported), which is how the tests run them.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lablib.kernels._base import INTERPRETED, _check_runnable

__all__ = ["diagonal_scan", "INTERPRETED"]

MAX_CHUNK = 1024  # BT x BN tiles live in registers


# --------------------------------------------------------------------------------------------
# The associative operator: (a1, b1) then (a2, b2) = (a2 a1, a2 b1 + b2). tl.associative_scan
# calls it with the earlier element first.
# --------------------------------------------------------------------------------------------


@triton.jit
def _combine_real(a1, b1, a2, b2):
    return a2 * a1, a2 * b1 + b2


@triton.jit
def _cmul(xr, xi, yr, yi):
    """(xr + i xi)(yr + i yi) as a (re, im) pair."""
    return xr * yr - xi * yi, xr * yi + xi * yr


@triton.jit
def _combine_complex(a1r, a1i, b1r, b1i, a2r, a2i, b2r, b2i):
    ar, ai = _cmul(a2r, a2i, a1r, a1i)
    br, bi = _cmul(a2r, a2i, b1r, b1i)
    return ar, ai, br + b2r, bi + b2i


@triton.jit
def _row_at(tile, steps, step):
    """tile[step, :] as a (BN,) vector (a masked sum: Triton tensors cannot be indexed)."""
    return tl.sum(tl.where(steps[:, None] == step, tile, 0.0), axis=0)


# --------------------------------------------------------------------------------------------
# Loads and stores. Every tensor is contiguous, (rows, T, N) or (N,) or (rows, N), and complex
# ones are their real views, with the (re, im) pair as a trailing axis of 2: element e of a
# complex tensor is at 2e (re) and 2e + 1 (im).
# --------------------------------------------------------------------------------------------


@triton.jit
def _load(ptr, offs, mask, other, IS_COMPLEX: tl.constexpr):
    """(re, im) as fp32; for real tensors im is 0.0 (a scalar, never used)."""
    if IS_COMPLEX:
        re = tl.load(ptr + 2 * offs, mask=mask, other=other).to(tl.float32)
        im = tl.load(ptr + 2 * offs + 1, mask=mask, other=0.0).to(tl.float32)
    else:
        re = tl.load(ptr + offs, mask=mask, other=other).to(tl.float32)
        im = 0.0
    return re, im


@triton.jit
def _store(ptr, offs, mask, re, im, IS_COMPLEX: tl.constexpr):
    if IS_COMPLEX:
        tl.store(ptr + 2 * offs, re.to(ptr.dtype.element_ty), mask=mask)
        tl.store(ptr + 2 * offs + 1, im.to(ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(ptr + offs, re.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _load_lambda(lam, row, t, cols, T, N, lam_shared_re, lam_shared_im,
                 LAM_PER_STEP: tl.constexpr, IS_COMPLEX: tl.constexpr):
    """lambda at steps t (BT,) and channels cols (BN,) as (BT, BN) tiles; 1 wherever t is outside
    [0, T) or the channel outside [0, N): the identity step, what padding must be."""
    inside = ((t >= 0) & (t < T))[:, None] & (cols < N)[None, :]
    if LAM_PER_STEP:
        offs = (row * T + t)[:, None] * N + cols[None, :]
        ar, ai = _load(lam, offs, inside, 1.0, IS_COMPLEX)
    else:
        # the (N,) lambda was loaded once, before the time loop; broadcast it over the chunk
        ar = tl.where(inside, lam_shared_re[None, :], 1.0)
        if IS_COMPLEX:
            ai = tl.where(inside, lam_shared_im[None, :], 0.0)
        else:
            ai = 0.0
    return ar, ai


# --------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------


@triton.jit
def _scan_fwd_kernel(
    lam, x, h,  # lam (N,) or (rows, T, N); x, h (rows, T, N); complex: real views (..., 2)
    h0, h_final,  # (rows, N), fp32 final state; each may be None
    T, N,
    LAM_PER_STEP: tl.constexpr, IS_COMPLEX: tl.constexpr,
    BT: tl.constexpr, BN: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)  # int64: row * T * N may pass 2^31
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    steps = tl.arange(0, BT)
    col_ok = cols < N

    # A shared lambda is loaded once; per-step lambdas are loaded with each chunk.
    lam_re, lam_im = 0.0, 0.0
    if not LAM_PER_STEP:
        lam_re, lam_im = _load(lam, cols, col_ok, 1.0, IS_COMPLEX)

    # The carried state h_{t-1} (fp32, this program's channels).
    if h0 is not None:
        hr, hi = _load(h0, row * N + cols, col_ok, 0.0, IS_COMPLEX)
    else:
        hr, hi = tl.zeros([BN], dtype=tl.float32), 0.0
    if IS_COMPLEX:
        hi = hi + tl.zeros([BN], dtype=tl.float32)  # a (BN,) tensor in both cases: loop-carried

    for c in range(0, tl.cdiv(T, BT)):
        t = c * BT + steps
        mask = (t < T)[:, None] & col_ok[None, :]
        offs = (row * T + t)[:, None] * N + cols[None, :]
        ar, ai = _load_lambda(lam, row, t, cols, T, N, lam_re, lam_im, LAM_PER_STEP, IS_COMPLEX)
        br, bi = _load(x, offs, mask, 0.0, IS_COMPLEX)  # padding: b = 0
        if IS_COMPLEX:
            Ar, Ai, Br, Bi = tl.associative_scan((ar, ai, br, bi), 0, _combine_complex)
            Hr, Hi = _cmul(Ar, Ai, hr[None, :], hi[None, :])
            Hr, Hi = Hr + Br, Hi + Bi
            hi = _row_at(Hi, steps, BT - 1)
        else:
            Ar, Br = tl.associative_scan((ar, br), 0, _combine_real)
            Hr, Hi = Ar * hr[None, :] + Br, 0.0
        hr = _row_at(Hr, steps, BT - 1)  # padding steps are identities: the last real step's h
        _store(h, offs, mask, Hr, Hi, IS_COMPLEX)

    if h_final is not None:
        _store(h_final, row * N + cols, col_ok, hr, hi, IS_COMPLEX)


# --------------------------------------------------------------------------------------------
# Backward: the same scan over reversed time, g_t = dh_t + conj(lambda_{t+1}) g_{t+1}
# --------------------------------------------------------------------------------------------


@triton.jit
def _scan_bwd_kernel(
    lam, h, dh, dx, dlam,  # like the forward's; dlam (rows, T, N), or (rows, N) fp32 partial sums
    h0, d_final, dh0,  # (rows, N) each, or None; d_final and dh0 fp32
    T, N,
    LAM_PER_STEP: tl.constexpr, IS_COMPLEX: tl.constexpr,
    BT: tl.constexpr, BN: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    steps = tl.arange(0, BT)
    col_ok = cols < N

    lam_re, lam_im = 0.0, 0.0
    if not LAM_PER_STEP:
        lam_re, lam_im = _load(lam, cols, col_ok, 1.0, IS_COMPLEX)
    # h_{-1} = h0 (or 0), needed for dlambda_0
    if h0 is not None:
        h0r, h0i = _load(h0, row * N + cols, col_ok, 0.0, IS_COMPLEX)
    else:
        h0r, h0i = tl.zeros([BN], dtype=tl.float32), 0.0
    if IS_COMPLEX:
        h0i = h0i + tl.zeros([BN], dtype=tl.float32)

    # Carried gradient g_{t+1}, starting from the final state's gradient (g_T, see the docstring).
    if d_final is not None:
        gr, gi = _load(d_final, row * N + cols, col_ok, 0.0, IS_COMPLEX)
    else:
        gr, gi = tl.zeros([BN], dtype=tl.float32), 0.0
    if IS_COMPLEX:
        gi = gi + tl.zeros([BN], dtype=tl.float32)
    dlam_sum_r = tl.zeros([BN], dtype=tl.float32)  # shared lambda: sum_t of this row's dlambda_t
    dlam_sum_i = tl.zeros([BN], dtype=tl.float32)

    n_chunks = tl.cdiv(T, BT)
    for i in range(0, n_chunks):
        c = n_chunks - 1 - i  # last chunk first
        t = c * BT + (BT - 1 - steps)  # and each chunk's steps last first: the scan runs backwards
        mask = (t < T)[:, None] & col_ok[None, :]
        offs = (row * T + t)[:, None] * N + cols[None, :]
        # coefficient of g_{t+1} in g_t: conj(lambda_{t+1}); 1 at t = T - 1 and in the padding
        ar, ai = _load_lambda(lam, row, t + 1, cols, T, N, lam_re, lam_im, LAM_PER_STEP, IS_COMPLEX)
        br, bi = _load(dh, offs, mask, 0.0, IS_COMPLEX)
        # h_{t-1}: the saved output one step back, h0 at t = 0
        prev = mask & (t >= 1)[:, None]
        pr, pi = _load(h, offs - N, prev, 0.0, IS_COMPLEX)
        first = (t == 0)[:, None] & col_ok[None, :]
        pr = tl.where(first, h0r[None, :], pr)
        if IS_COMPLEX:
            Ar, Ai, Br, Bi = tl.associative_scan((ar, -ai, br, bi), 0, _combine_complex)
            Gr, Gi = _cmul(Ar, Ai, gr[None, :], gi[None, :])
            Gr, Gi = Gr + Br, Gi + Bi
            pi = tl.where(first, h0i[None, :], pi)
            Dr, Di = _cmul(Gr, Gi, pr, -pi)  # g_t conj(h_{t-1})
            gi = _row_at(Gi, steps, BT - 1)
        else:
            Ar, Br = tl.associative_scan((ar, br), 0, _combine_real)
            Gr, Gi = Ar * gr[None, :] + Br, 0.0
            Dr, Di = Gr * pr, 0.0
        gr = _row_at(Gr, steps, BT - 1)  # the chunk's earliest step: g at t = c * BT
        _store(dx, offs, mask, Gr, Gi, IS_COMPLEX)
        # Padding steps carry the incoming gradient (a = 1) but must add nothing to dlambda.
        Dr = tl.where(mask, Dr, 0.0)
        if IS_COMPLEX:
            Di = tl.where(mask, Di, 0.0)
        if LAM_PER_STEP:
            _store(dlam, offs, mask, Dr, Di, IS_COMPLEX)
        else:
            dlam_sum_r += tl.sum(Dr, axis=0)
            if IS_COMPLEX:
                dlam_sum_i += tl.sum(Di, axis=0)

    if not LAM_PER_STEP:
        _store(dlam, row * N + cols, col_ok, dlam_sum_r, dlam_sum_i, IS_COMPLEX)
    if dh0 is not None:
        # dh0 = conj(lambda_0) g_0; gr, gi now hold g_0
        steps0 = tl.zeros([1], dtype=tl.int32)
        l0r, l0i = _load_lambda(lam, row, steps0, cols, T, N, lam_re, lam_im, LAM_PER_STEP, IS_COMPLEX)
        if IS_COMPLEX:
            d0r, d0i = _cmul(l0r, -l0i, gr[None, :], gi[None, :])
            _store(dh0, row * N + cols[None, :], col_ok[None, :], d0r, d0i, IS_COMPLEX)
        else:
            _store(dh0, row * N + cols[None, :], col_ok[None, :], l0r * gr[None, :], 0.0, IS_COMPLEX)


# --------------------------------------------------------------------------------------------
# Host side: checks, launches, autograd
# --------------------------------------------------------------------------------------------

_REAL = (torch.float32, torch.float16, torch.bfloat16)
_DTYPES = _REAL + (torch.complex64,)

# No software pipelining (num_stages=1): the chunk loop carries a dependence through h anyway,
# and the tiles are small. Four warps cover a 64 x 32 tile with 16 elements per thread.
_LAUNCH = dict(num_warps=4, num_stages=1)


def _block_n(n: int, is_complex: bool) -> int:
    """Channels per program: up to 32 (16 complex, whose scan holds twice the tiles)."""
    return min(16 if is_complex else 32, triton.next_power_of_2(n))


def _check_inputs(lmbda, x, h0, chunk_size) -> torch.dtype:
    """Shape, dtype and device checks (ValueError); returns the output dtype. No NaN scan: a full
    read of the inputs (and a GPU sync) would cost as much as the kernel itself."""
    for name, t in (("lmbda", lmbda), ("x", x), ("h0", h0)):
        if t is None and name == "h0":
            continue
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
        if t.dtype not in _DTYPES:
            raise ValueError(
                f"{name} must be float32, float16, bfloat16 or complex64; got {t.dtype} "
                "(float64 and complex128: use lablib.koopman.recurrence.diagonal_recurrence_scan)"
            )
    if x.ndim < 2:
        raise ValueError(f"x must have shape (..., T, N), e.g. (batch, T, N); got {tuple(x.shape)}")
    T, N = x.shape[-2:]
    if T < 1 or N < 1 or x.numel() == 0:
        raise ValueError(f"x must have at least one row, time step and channel; got shape {tuple(x.shape)}")
    if lmbda.shape not in ((N,), x.shape):
        raise ValueError(
            f"lmbda must have shape (N,) = ({N},) or x's {tuple(x.shape)}; got {tuple(lmbda.shape)}"
        )
    if h0 is not None and h0.shape != x.shape[:-2] + (N,):
        raise ValueError(
            f"h0 must have shape (..., N) = {tuple(x.shape[:-2] + (N,))}; got {tuple(h0.shape)}"
        )
    devices = {t.device for t in (lmbda, x, h0) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"lmbda, x and h0 must be on one device; got {sorted(map(str, devices))}")
    if (not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or not 1 <= chunk_size <= MAX_CHUNK
            or chunk_size & (chunk_size - 1)):
        raise ValueError(f"chunk_size must be a power of two from 1 to {MAX_CHUNK}; got {chunk_size!r}")
    _check_runnable(x, pytorch_forms="lablib.koopman.recurrence")
    dtype = torch.promote_types(lmbda.dtype, x.dtype)
    return dtype if h0 is None else torch.promote_types(dtype, h0.dtype)


def _forward(lam, x, h0, want_final, is_complex, chunk_size):
    rows, T, N = x.shape[:3]
    BN = _block_n(N, is_complex)
    h = torch.empty_like(x)
    h_final = x.new_empty(x[:, 0].shape, dtype=torch.float32) if want_final else None  # (rows, N[, 2])
    _scan_fwd_kernel[(rows, triton.cdiv(N, BN))](
        lam, x, h, h0, h_final, T, N,
        LAM_PER_STEP=lam.dim() > 1 + is_complex, IS_COMPLEX=is_complex, BT=chunk_size, BN=BN, **_LAUNCH,
    )
    return h, h_final


def _backward(lam, x, h, h0, dh, d_final, want_dh0, is_complex, chunk_size):
    rows, T, N = x.shape[:3]
    BN = _block_n(N, is_complex)
    per_step = lam.dim() > 1 + is_complex
    dx = torch.empty_like(x)
    # Shared lambda: each row writes its sum over time; the rows are added here, in fp32.
    dlam = torch.empty_like(lam) if per_step else x.new_empty((rows,) + lam.shape, dtype=torch.float32)
    dh0 = x.new_empty(h0.shape, dtype=torch.float32) if want_dh0 else None
    _scan_bwd_kernel[(rows, triton.cdiv(N, BN))](
        lam, h, dh, dx, dlam, h0, d_final, dh0, T, N,
        LAM_PER_STEP=per_step, IS_COMPLEX=is_complex, BT=chunk_size, BN=BN, **_LAUNCH,
    )
    if not per_step:
        dlam = dlam.sum(0).to(lam.dtype)
    if dh0 is not None:
        dh0 = dh0.to(h0.dtype)
    return dlam, dx, dh0


class DiagonalScan(torch.autograd.Function):
    """Autograd wrapper on flattened, contiguous, real(-viewed) tensors: lam (N,) or (rows, T, N),
    x (rows, T, N), h0 (rows, N) or None; complex ones with a trailing (re, im) axis of 2. Saves
    the output h for the backward, which needs h_{t-1}."""

    @staticmethod
    def forward(ctx, lam, x, h0, want_final, is_complex, chunk_size):
        h, h_final = _forward(lam, x, h0, want_final, is_complex, chunk_size)
        ctx.save_for_backward(lam, x, h, h0)
        ctx.is_complex, ctx.chunk_size = is_complex, chunk_size
        return h, h_final

    @staticmethod
    @torch.autograd.function.once_differentiable  # the backward kernel is not differentiable itself
    def backward(ctx, dh, d_final):
        lam, x, h, h0 = ctx.saved_tensors
        if d_final is not None:
            d_final = d_final.float().contiguous()
        dh = torch.zeros_like(h) if dh is None else dh.contiguous()
        dlam, dx, dh0 = _backward(
            lam, x, h, h0, dh, d_final, h0 is not None and ctx.needs_input_grad[2], ctx.is_complex, ctx.chunk_size
        )
        return dlam, dx, dh0, None, None, None


def diagonal_scan(
    lmbda: torch.Tensor,
    x: torch.Tensor,
    *,
    h0: torch.Tensor | None = None,
    return_final: bool = False,
    chunk_size: int = 64,
):
    """h_t = lmbda_t * h_{t-1} + x_t over time (axis -2), elementwise over channels, in Triton.

    x: (..., T, N), any leading dims (flattened to rows). lmbda: (N,), one value per channel for
    all steps, or x's shape, one per step and channel. h0: (..., N), the state before step 0
    (default zeros). Dtypes: float32, float16, bfloat16, mixed as PyTorch promotes them, or
    complex64 (then every input is taken as complex64); arithmetic is fp32.
    return_final: also return h_{T-1} as an fp32 (complex64) (..., N) tensor, unrounded, to
    continue the recurrence in a later call (as its h0).
    chunk_size: time steps per in-register parallel scan, a power of two <= 1024.

    Returns h (..., T, N) in the promoted dtype, or (h, final). Differentiable in lmbda, x and
    h0, including through final. Matches ``lablib.koopman.recurrence.diagonal_recurrence_loop``.
    """
    dtype = _check_inputs(lmbda, x, h0, chunk_size)
    is_complex = dtype.is_complex
    T, N = x.shape[-2:]
    lead = x.shape[:-2]

    def prep(t, shape):
        # differentiable casts and views: autograd maps the kernel's gradients back to the inputs
        t = t.to(dtype).reshape(shape)
        return (torch.view_as_real(t) if is_complex else t).contiguous()

    lam = prep(lmbda, (N,) if lmbda.dim() == 1 else (-1, T, N))
    h0_in = None if h0 is None else prep(h0, (-1, N))
    h, h_final = DiagonalScan.apply(lam, prep(x, (-1, T, N)), h0_in, return_final, is_complex, chunk_size)
    if is_complex:
        h = torch.view_as_complex(h)
        h_final = None if h_final is None else torch.view_as_complex(h_final)
    h = h.reshape(x.shape)
    if not return_final:
        return h
    return h, h_final.reshape(lead + (N,))
