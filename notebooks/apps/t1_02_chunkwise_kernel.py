import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import marimo as mo

    return (mo,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # The chunkwise form and your first kernel

    Chapter 1 ended with three forms of causal linear attention that compute the same numbers, and a
    measurement: the recurrent form does linear work yet is the slowest, and the chunkwise form keeps
    the linear work and drops most of the cost. This chapter asks *why*, and then writes the
    chunkwise form as a GPU kernel in [Triton](https://triton-lang.org), reading it line by line.

    By the end you will have

    * counted the work and the sequential steps of the chunkwise form for any chunk size $C$, and
      timed it on this CPU;
    * seen how the kernel splits the computation over programs that never talk to each other;
    * read every line of the forward kernel, run it, and checked its outputs, final state and
      gradients against the PyTorch form, to $10^{-5}$;
    * continued a prefill with the one-token decoding kernel.

    The kernel is `lablib.kernels.linear_attention`, in the style of flash-linear-attention (Yang et
    al., *Gated Linear Attention Transformers with Hardware-Efficient Training*, 2024). It computes the
    unnormalized form with the feature map applied outside, $o_t = S_t^\top q_t$ with
    $S_t = S_{t-1} + k_t v_t^\top$, which is what most modern linear-attention layers use.

    One thing must happen before the kernel module is imported. Triton decides when a kernel is
    *defined* whether to compile it for a GPU or to run it in its **interpreter**, which executes the
    kernel's code in Python (with NumPy) on CPU tensors. We choose the interpreter when there is no
    GPU. It is slow, far slower than the PyTorch form, so the shapes we run it on are
    tiny; on a GPU the same cells compile the kernel and run it on CUDA tensors.
    """)
    return


@app.cell
def _():
    import inspect
    import math
    import os

    import altair as alt
    import pandas as pd
    import torch
    from IPython.display import Code

    # Before lablib.kernels is imported: interpret the kernels on a CPU, compile them on a GPU.
    os.environ.setdefault("TRITON_INTERPRET", "0" if torch.cuda.is_available() else "1")

    import lablib.kernels.linear_attention as kernel_module
    import lablib.viz  # noqa: F401  (charts that render offline in JupyterLab, the book and marimo)
    from lablib.attention import linear_attention_chunkwise, random_qkv
    from lablib.bench import flops, nbytes
    from lablib.exercises.kernels import check_chunk_dv, check_chunkwise_flops, check_program_count, count_chunkwise_flops
    from lablib.kernels.linear_attention import INTERPRETED, chunk_linear_attention, fused_recurrent_step
    from lablib.testing import max_scaled_error
    from lablib.timing import best_seconds

    DEVICE = "cpu" if INTERPRETED else "cuda"  # interpreted kernels take CPU tensors, compiled ones CUDA tensors
    f"Triton kernels {'interpreted on the CPU' if INTERPRETED else 'compiled for ' + torch.cuda.get_device_name()}"
    return (
        Code,
        DEVICE,
        alt,
        best_seconds,
        check_chunk_dv,
        check_chunkwise_flops,
        check_program_count,
        chunk_linear_attention,
        count_chunkwise_flops,
        flops,
        fused_recurrent_step,
        inspect,
        kernel_module,
        linear_attention_chunkwise,
        math,
        max_scaled_error,
        nbytes,
        pd,
        random_qkv,
        torch,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. Why the recurrence is slow, and why chunks make matmuls

    The recurrence does very little per step: $S_t = S_{t-1} + k_t v_t^\top$ is a rank-1 update,
    $D_k D_v$ multiply-adds, and the read-out $S_t^\top q_t$ is a matrix-vector product. Each step
    touches every entry of $S$ once and uses it for one multiply-add, and step $t$ cannot start before
    step $t-1$ has finished. A GPU has over a hundred multiprocessors, each built to multiply tiles
    of at least $16 \times 16$; a $64 \times 64$ rank-1 update keeps almost all of them idle, $T$ times
    in a row. (On a CPU, each step is also a trip through the Python interpreter and PyTorch's
    dispatcher.)

    The chunkwise form replaces the $C$ steps inside a chunk by matrix products with $C$ rows. For a
    chunk with queries $Q$, keys $K$ (both $C \times D_k$), values $V$ ($C \times D_v$) and the
    entering state $S$:

    $$
    O = Q\,S + \operatorname{tril}(Q K^\top)\, V, \qquad S \leftarrow S + K^\top V .
    $$

    That is four products: $QK^\top$ and $\operatorname{tril}(QK^\top)V$ cost $2C^2D_k$ and
    $2C^2D_v$ FLOPs (a multiply-add is 2), $QS$ and $K^\top V$ cost $2CD_kD_v$ each. There are $T/C$
    chunks. `count_chunkwise_flops` counts those products as the kernel issues them (the masked half
    of $QK^\top$ included, because it is computed); here they are for one head at $T = 4096$,
    $D_k = D_v = 64$:
    """)
    return


@app.cell
def _(count_chunkwise_flops, math, pd):
    T_cost, D_cost = 4096, 64
    cost = pd.DataFrame(
        [
            {
                "chunk size C": _C,
                "sequential steps": math.ceil(T_cost / _C),
                "MFLOP": count_chunkwise_flops(T_cost, _C, D_cost, D_cost) / 1e6,
            }
            for _C in (1, 16, 64, T_cost)
        ]
    )
    cost["x the work of C=1"] = cost.MFLOP / cost.MFLOP[0]
    cost["MFLOP per step"] = cost.MFLOP / cost["sequential steps"]
    assert abs(cost["x the work of C=1"][2] - 2) < 0.05, (  # C = 64 = D: about twice the work of the recurrence ...
        f"expected C = 64 to do about twice the recurrence's work, measured {cost['x the work of C=1'][2]:.3f}x"
    )
    assert cost["sequential steps"][0] == 64 * cost["sequential steps"][2]  # ... in 64 times fewer steps
    assert abs(cost["MFLOP per step"][0] - 0.017) < 0.0005, (
        f"expected 0.017 MFLOP per step of the recurrence, measured {cost['MFLOP per step'][0]:.4f}"
    )
    assert abs(cost["x the work of C=1"][3] - 64) < 0.5, (  # C = T, the parallel form: quadratic work
        f"expected the parallel form (C = T) to do 64 times the recurrence's work, measured {cost['x the work of C=1'][3]:.2f}x"
    )
    cost.round(3)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    $C = 1$ is the recurrence: the least work, in 4096 steps of 0.017 MFLOP each. $C = T$ is the
    parallel form: one step, but 64 times the work. In between, the total is
    $2T\,(C D_k + C D_v + 2 D_k D_v)$: with $C = D$ the chunkwise form does about twice the
    recurrence's work, in $T/C$ steps that are each a handful of $C \times D$ matrix products.

    Is that trade worth it? Time lablib's PyTorch chunkwise form (identity map, unnormalized, the
    function the kernel computes) on one CPU thread, for one sequence of $T = 4096$ with 4 heads of
    dimension 64, as the chunk size grows. Each time is the fastest of 3 runs; the achieved rate is
    the counted FLOPs divided by that time.
    """)
    return


@app.cell
def _(
    alt,
    best_seconds,
    count_chunkwise_flops,
    linear_attention_chunkwise,
    pd,
    random_qkv,
    torch,
):
    def time_chunk_sizes(chunk_sizes, T=4096, heads=4, dim=64):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one thread: the curve shows the algorithm, not how each op parallelizes
        q, k, v = random_qkv(T, H=heads, d_k=dim, seed=0)
        rows = []
        for C in chunk_sizes:
            seconds = best_seconds(
                lambda: linear_attention_chunkwise(q, k, v, feature_map="identity", normalize=False, chunk_size=C), repeats=3
            )
            work = heads * count_chunkwise_flops(T, C, dim, dim)
            rows.append({"C": C, "seconds": seconds, "GFLOP/s": work / seconds / 1e9})
        torch.set_num_threads(threads)
        return pd.DataFrame(rows)


    chunk_timings = time_chunk_sizes([1, 4, 16, 64, 256, 1024, 4096])
    by_chunk = chunk_timings.set_index("C")
    # Timings vary from run to run: only orderings with a wide margin are asserted.
    assert by_chunk.seconds[64] < by_chunk.seconds[1] / 3, (  # chunks beat the token-by-token recurrence
        f"expected C = 64 to run over 3x faster than C = 1, measured {by_chunk.seconds[64]:.3g} s vs {by_chunk.seconds[1]:.3g} s"
    )
    assert by_chunk.seconds[64] < by_chunk.seconds[4096] / 3, (  # ... and the quadratic parallel form
        f"expected C = 64 to run over 3x faster than C = T, measured {by_chunk.seconds[64]:.3g} s vs {by_chunk.seconds[4096]:.3g} s"
    )
    assert by_chunk["GFLOP/s"][64] > 5 * by_chunk["GFLOP/s"][1], (  # because matmuls run the FLOPs faster
        f"expected C = 64 to reach over 5x the FLOP rate of C = 1, measured {by_chunk['GFLOP/s'][64]:.2f} vs {by_chunk['GFLOP/s'][1]:.2f} GFLOP/s"
    )
    alt.Chart(chunk_timings, title="PyTorch chunkwise form, T = 4096, one CPU thread").mark_line(point=True).encode(
        x=alt.X("C:Q", scale=alt.Scale(type="log", base=2), axis=alt.Axis(format="d"), title="chunk size C"),
        y=alt.Y("seconds:Q", scale=alt.Scale(type="log"), title="seconds per forward pass"),
        tooltip=["C:Q", alt.Tooltip("seconds:Q", format=".3~e"), alt.Tooltip("GFLOP/s:Q", format=".2f")],
    ).properties(width=420, height=260)
    return (chunk_timings,)


@app.cell
def _(chunk_timings):
    chunk_timings.round(4)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The curve is a valley (the times are measured here and vary from run to run; the cell asserts
    only the orderings, with wide margins). On the left, $C = 1$ does the least arithmetic and is
    slow anyway: its FLOP rate is tiny, because every step is a few small operations paid for one at
    a time. Growing $C$ raises the rate much faster than it raises the work. On the right, the work of the
    $C \times C$ blocks grows as $TC$ and takes over. The best chunk sits in between; GPU kernels
    typically use $C = 64$, where the matrix products fill the tensor cores' tiles.

    ## 2. Tiling: what one program owns

    A Triton kernel is a function run by many **programs** at once, each identified by its position
    in a launch grid, `tl.program_id(axis)`. The work has to be cut so that programs never wait for
    each other. Two axes are free: batch elements and heads are independent sequences. Time is not:
    chunk $c$ needs the state left by chunk $c-1$. The third axis comes from looking at the columns
    of the value dimension:

    $$
    O[:, j] = Q\,S[:, j] + \operatorname{tril}(QK^\top)\, V[:, j], \qquad
    S[:, j] \leftarrow S[:, j] + K^\top V[:, j].
    $$

    Column $j$ of the output and of the state needs column $j$ of $V$ and of $S$, and nothing else of
    them. So the value columns split into blocks of width $B_V$ that never interact, and the grid is
    $(B \cdot H,\ \lceil D_v / B_V \rceil)$:

    ```
                         value columns (D_v), in blocks of BV  →
                     ┌──────────────┬──────────────┬──────────────┐
      (batch, head) 0│ program (0,0)│ program (0,1)│ program (0,2)│
      (batch, head) 1│ program (1,0)│ program (1,1)│ program (1,2)│
            ...      │      ...     │      ...     │      ...     │
      (batch, head)  │              │              │              │
          B·H - 1    │              │              │              │
                     └──────────────┴──────────────┴──────────────┘

      program (bh, vb) keeps   S[:, block vb]    a BK x BV fp32 tile, in registers, for the whole sequence
      and for c = 0, 1, ..., ceil(T / C) - 1:
          loads  Q, K  (C x BK: every key column)   and   V[:, block vb]  (C x BV)
          writes O[:, block vb]                      and   updates S[:, block vb]
      at the end, writes its tile of the final state
    ```

    Every program reads all of $Q$ and $K$ for its head (each output column needs every key column),
    as one tile of up to 128 key columns. Wider keys (the kernel takes $D_k \le 512$) split like the
    values: row $d$ of $S$ only ever receives key dimension $d$, so a block of key columns can be a
    program too, a third grid axis. Its part of $O$ is then only a share,
    $Q[:, \text{block}]\,S[\text{block}, :] + \operatorname{tril}(Q[:, \text{block}]\,K[:, \text{block}]^\top)\,V$,
    and the host adds the shares. Up to $D_k = 128$ that axis has a single block, as everywhere in this
    chapter. The state never leaves the program: no other program reads it, so it never has to be
    written to memory between chunks.

    The claim that value blocks never interact is easy to check with the PyTorch form: run it on each
    block of value columns separately, put the outputs side by side, and compare with one run on all
    of them.
    """)
    return


@app.cell
def _(linear_attention_chunkwise, max_scaled_error, random_qkv, torch):
    q_tile, k_tile, v_tile = random_qkv(100, B=1, H=2, d_k=16, d_v=40, seed=1)
    _identity = dict(feature_map="identity", normalize=False, chunk_size=16)
    whole = linear_attention_chunkwise(q_tile, k_tile, v_tile, **_identity)
    _blocks = v_tile.split(16, dim=-1)
    by_blocks = torch.cat([linear_attention_chunkwise(q_tile, k_tile, _block, **_identity) for _block in _blocks], dim=-1)
    assert max_scaled_error(by_blocks, whole) < 1e-6, (
        f"expected value blocks computed apart to give the joint outputs to 1e-6, measured {max_scaled_error(by_blocks, whole):.1e}"
    )
    (f"{len(_blocks)} value blocks ({' + '.join(str(_b.shape[-1]) for _b in _blocks)} columns) computed apart: "
     f"max scaled difference {max_scaled_error(by_blocks, whole):.0e}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The kernel rounds every tile side up to a power of two of at least 16 (what `tl.arange` and
    `tl.dot` need) and picks $B_V \le 64$. Its own helper `_tiles` gives the sizes, and with them what
    one program holds:
    """)
    return


@app.cell
def _(kernel_module, pd):
    tiles = pd.DataFrame(
        [
            dict(zip(["D_k", "D_v", "BK", "BV", "value blocks"], [_dk, _dv, *kernel_module._tiles(_dk, _dv)]))
            for _dk, _dv in [(16, 24), (64, 64), (128, 128), (128, 256)]
        ]
    )
    tiles["state tile (KiB, fp32)"] = tiles.BK * tiles.BV * 4 / 1024
    tiles["programs for B=8, H=16"] = 8 * 16 * tiles["value blocks"]
    assert (tiles.BK >= tiles.D_k).all() and (tiles["value blocks"] * tiles.BV >= tiles.D_v).all(), "expected the tiles to cover D_k and D_v"
    _sides = pd.concat([tiles.BK, tiles.BV])
    assert ((_sides >= 16) & ((_sides & (_sides - 1)) == 0)).all() and (tiles.BV <= 64).all(), (
        f"expected every tile side a power of two >= 16 and BV <= 64, measured BK {tiles.BK.tolist()}, BV {tiles.BV.tolist()}"
    )
    assert kernel_module.MAX_D_K == 512 and kernel_module._tiles(512, 64).BK == 128, (
        f"expected the kernel to accept D_k up to 512 in key tiles of 128, it says {kernel_module.MAX_D_K}, BK {kernel_module._tiles(512, 64).BK}"
    )
    assert kernel_module._tiles(24, 24)[0] == 32, f"expected D_k = 24 padded to BK = 32, measured {kernel_module._tiles(24, 24)[0]}"
    tiles
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 3. Reading the kernel

    Here is the forward kernel, `_chunk_fwd_kernel`, in pieces. We take its source from the module
    itself, so what you read is what runs; the cell checks that the pieces cover every line of code.
    """)
    return


@app.cell
def _(inspect, kernel_module):
    kernel_source = inspect.getsource(kernel_module._chunk_fwd_kernel.fn)


    def lines_between(source, first, last):
        """The lines of source from the first one containing `first` to the next one containing `last`."""
        lines = source.splitlines()
        start = next(i for i, line in enumerate(lines) if first in line)
        stop = next(i for i in range(start, len(lines)) if last in lines[i])
        return "\n".join(lines[start : stop + 1])


    kernel_pieces = {
        "signature": lines_between(kernel_source, "@triton.jit", "):"),
        "setup": lines_between(kernel_source, "bh = tl.program_id", "causal = "),
        "state": lines_between(kernel_source, "# The running state", "S = tl.zeros"),
        "loads": lines_between(kernel_source, "for c in range", "V = _load_tile"),
        "products": lines_between(kernel_source, "scores = _dot", "_store_tile(o"),
        "update": lines_between(kernel_source, "# Absorb", "S += _dot"),
        "final": lines_between(kernel_source, "if final_state is not None", "_store_tile(final_state"),
    }
    _shown = "\n".join(kernel_pieces.values()).splitlines()
    _code = [_line for _line in kernel_source.splitlines() if _line.strip() and not _line.strip().startswith("#")]
    assert all(_line in _shown for _line in _code), "a line of the kernel is not shown"
    f"{len(_code)} lines of code in the forward kernel, all shown below"
    return (kernel_pieces,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **The signature.** A kernel receives tensors as pointers to their first element, plus scalars.
    Arguments marked `tl.constexpr` are compile-time constants: the kernel is compiled once per
    distinct value, so tile sizes (`BT` is the chunk size $C$, `BK`, `BV`) can shape arrays.
    """)
    return


@app.cell
def _(Code, kernel_pieces):
    Code(kernel_pieces["signature"], language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Where am I?** The program reads its grid coordinates (the third, its block of key columns, is
    always 0 up to $D_k = 128$), moves the pointers to its own (batch, head)'s matrices (the host made
    them contiguous, shaped `(B*H, T, D)`; `o` moves on to the key block's share), and builds the
    index vectors it will use for every chunk: row offsets inside a chunk, its key columns (all of
    them up to $D_k = 128$), and its own block of value columns. The causal mask is built once, from
    the row offsets:
    `causal[i, j]` is true when $j \le i$, the $\operatorname{tril}$ of the formula.
    """)
    return


@app.cell
def _(Code, kernel_pieces):
    Code(kernel_pieces["setup"], language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **The state**, this program's $B_K \times B_V$ slice of $S$, starts from the initial state (a
    prefix processed earlier) or from zeros. It is an ordinary variable: the compiler keeps it in
    registers, and it is written to memory only once, at the end.
    """)
    return


@app.cell
def _(Code, kernel_pieces):
    Code(kernel_pieces["state"], language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Loading a chunk.** The loop over chunks is the only sequential part of the kernel. Each
    iteration loads three tiles with `_load_tile`:
    """)
    return


@app.cell
def _(Code, inspect, kernel_module):
    Code(inspect.getsource(kernel_module._load_tile.fn), language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    `rows[:, None] * n_cols + cols[None, :]` is a whole tile of addresses, built by broadcasting, and
    `tl.load` fetches them at once. The `mask` is what makes ragged sizes work: the last chunk of
    $T = 37$ tokens with $C = 16$ has $37 - 2 \cdot 16 = 5$ real rows, and $D_k = 24$ is padded to
    $B_K = 32$ columns (the tile cell above checks `_tiles(24, 24)`).
    Masked-out entries read as `other=0.0`, and zeros are harmless: a zero key or value adds nothing
    to $S$, a zero column adds nothing to a dot product. Tiles are converted to fp32 on load. The
    scale is applied to $Q$ once, here.
    """)
    return


@app.cell
def _(Code, kernel_pieces):
    Code(kernel_pieces["loads"], language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **The products.** `_dot` is `tl.dot`, a tile matrix product that accumulates in fp32 (on a GPU,
    on tensor cores):
    """)
    return


@app.cell
def _(Code, inspect, kernel_module):
    Code(inspect.getsource(kernel_module._dot.fn), language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    `input_precision` is `"ieee"` for fp32 inputs (exact fp32 products) and `"tf32"` for fp16 and
    bf16 inputs. Then the chunk's three products are the formula, term by term: the $C \times C$
    scores, masked with `tl.where` (the $\operatorname{tril}$), and
    $O = QS + \operatorname{tril}(QK^\top)V$, stored straight away.
    """)
    return


@app.cell
def _(Code, kernel_pieces):
    Code(kernel_pieces["products"], language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    `_store_tile` is `_load_tile` in reverse: the same addresses and mask, and a cast back to the
    output's dtype. Padded rows and columns are computed but never written.
    """)
    return


@app.cell
def _(Code, inspect, kernel_module):
    Code(inspect.getsource(kernel_module._store_tile.fn), language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **The state update** comes *after* the output: the chunk's own keys already reached its queries
    through the masked scores, so they must not also come through $S$. This is $S \leftarrow S +
    K^\top V$, a $(B_K \times C)(C \times B_V)$ product.
    """)
    return


@app.cell
def _(Code, kernel_pieces):
    Code(kernel_pieces["update"], language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **The final state** is stored once, after the last chunk, if the caller asked for it: a decoder
    continues from it (section 4).
    """)
    return


@app.cell
def _(Code, kernel_pieces):
    Code(kernel_pieces["final"], language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    On the host side, the launch is one line: index the kernel with the grid, then call it.
    """)
    return


@app.cell
def _(Code, inspect, kernel_module):
    Code(inspect.getsource(kernel_module._forward), language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The backward pass uses the same tiling in two more kernels: `_chunk_dq_kernel` replays the
    forward loop, and `_chunk_dkdv_kernel` walks the chunks in reverse carrying the gradient of the
    state. Exercise 2 derives one of its lines.

    ## 4. Running it

    `chunk_linear_attention(q, k, v, output_final_state=True, chunk_size=16)` returns the outputs and
    the final state, and is differentiable. We compare it with the PyTorch chunkwise form (identity
    map, unnormalized) on shapes chosen to hit the masks: $T = 37$ is two full chunks of 16 and a
    ragged one, and $D = 24$ is padded to 32. Gradients come from one loss that reaches both the
    outputs and the final state, through random probes.
    """)
    return


@app.cell
def _(
    DEVICE,
    chunk_linear_attention,
    linear_attention_chunkwise,
    max_scaled_error,
    pd,
    random_qkv,
    torch,
):
    def torch_chunkwise(q, k, v):
        o, state = linear_attention_chunkwise(q, k, v, feature_map="identity", normalize=False, chunk_size=16, return_state=True)
        return o, state.kv


    def triton_chunkwise(q, k, v):
        return chunk_linear_attention(q, k, v, output_final_state=True, chunk_size=16)


    def outputs_and_gradients(attention, q, k, v, probe_o, probe_s, device):
        """attention on copies of q, k, v on device: output, final state, and the gradients of q, k, v."""
        leaves = [x.detach().to(device).requires_grad_() for x in (q, k, v)]
        o, final = attention(*leaves)
        loss = (o * probe_o.to(device)).sum() + (final * probe_s.to(device)).sum()
        return [o, final, *torch.autograd.grad(loss, leaves)]


    kernel_rows = []
    for _d in (16, 24):
        _q, _k, _v = random_qkv(37, B=1, H=2, d_k=_d, seed=_d)
        _g = torch.Generator().manual_seed(_d + 1)
        _probes = torch.randn(1, 2, 37, _d, generator=_g), torch.randn(1, 2, _d, _d, generator=_g)
        _ours = outputs_and_gradients(triton_chunkwise, _q, _k, _v, *_probes, DEVICE)
        _reference = outputs_and_gradients(torch_chunkwise, _q, _k, _v, *_probes, "cpu")
        for _name, _a, _b in zip(["o", "final state", "dq", "dk", "dv"], _ours, _reference):
            kernel_rows.append({"D": _d, "tensor": _name, "max_error": max_scaled_error(_a.cpu(), _b)})
    kernel_check = pd.DataFrame(kernel_rows)
    assert kernel_check.max_error.max() < 1e-5, (
        f"expected the kernel's outputs, final state and gradients within 1e-5 of the PyTorch form, measured worst {kernel_check.max_error.max():.1e}"
    )
    kernel_check.pivot_table(index="tensor", columns="D", values="max_error", sort=False).map("{:.0e}".format).rename(columns="D = {}".format)
    return kernel_check, torch_chunkwise


@app.cell
def _(kernel_check, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        print(f"{len(kernel_check)} comparisons (T=37, chunk 16, D=16 and 24: outputs, final state and three gradients) against the PyTorch form")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    For generating text one token at a time, the chunk machinery is overkill: `fused_recurrent_step`
    is the recurrence itself, one rank-1 update and one matrix-vector product in a single kernel
    (no `tl.dot`, so any $D$ works). A decoder *prefills* the prompt with the chunkwise kernel, keeps
    its final state, and then steps. The steps must continue exactly where the prefill stopped:
    """)
    return


@app.cell
def _(
    DEVICE,
    chunk_linear_attention,
    fused_recurrent_step,
    max_scaled_error,
    pd,
    random_qkv,
    torch_chunkwise,
):
    q_dec, k_dec, v_dec = (x.to(DEVICE) for x in random_qkv(28, B=1, H=2, d_k=16, d_v=24, seed=7))
    full_out, full_state = torch_chunkwise(*(x.cpu() for x in (q_dec, k_dec, v_dec)))  # all 28 tokens at once

    _, decode_state = chunk_linear_attention(q_dec[:, :, :20], k_dec[:, :, :20], v_dec[:, :, :20], output_final_state=True, chunk_size=16)
    decoding_rows = []
    for _t in range(20, 28):
        _tok = slice(_t, _t + 1)
        _o_t, decode_state = fused_recurrent_step(q_dec[:, :, _tok], k_dec[:, :, _tok], v_dec[:, :, _tok], decode_state)
        decoding_rows.append({"token": _t, "max_error of o_t": max_scaled_error(_o_t.cpu(), full_out[:, :, _tok])})
    decoding = pd.DataFrame(decoding_rows)
    assert decoding["max_error of o_t"].max() < 1e-5, (
        f"expected every decoded output within 1e-5 of the full sequence's, measured worst {decoding['max_error of o_t'].max():.1e}"
    )
    decode_state_error = max_scaled_error(decode_state.cpu(), full_state)  # the same state as absorbing all 28 at once
    assert decode_state_error < 1e-5, f"expected the decoder's final state within 1e-5 of the full sequence's, measured {decode_state_error:.1e}"
    decoding.assign(**{"max_error of o_t": decoding["max_error of o_t"].map("{:.0e}".format)}).set_index("token").T.rename(columns="token {}".format)
    return decoding, q_dec


@app.cell
def _(decoding, mo, q_dec):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        print(f"prefill {q_dec.shape[2] - len(decoding)} tokens, decode {len(decoding)}: "
              f"each output and the final state compared with the full sequence of {q_dec.shape[2]}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 5. Where the speed comes from, and what we have not measured

    On a CPU we can check the kernel but not time it: the interpreter runs each tile operation as
    NumPy calls, so its times say nothing about the compiled kernel. What we can say without a GPU
    is where its speed should come from:

    * **Programs run side by side.** The grid has $B \cdot H \cdot \lceil D_v/B_V\rceil$ independent
      programs; only the $T/C$ chunks inside each program are sequential.
    * **Matmuls on tensor cores.** Each chunk is four `tl.dot`s on $C \times 64$-sized tiles, the
      shapes those units are built for, instead of $C$ rank-1 updates.
    * **The state stays on chip.** $S$ lives in registers for the whole sequence. In the forward
      pass each element of $q, k, v$ is read from memory once and each element of $o$ is written
      once; the state is written only at the end.

    The last point matters more than it looks. A GPU can do far more FLOPs per second than it can
    move bytes to and from its memory, so a kernel runs at the speed of its arithmetic only if it does
    many FLOPs per byte it moves: its *arithmetic intensity*. Count both for one head with
    $D_k = D_v = 64$ and bf16 inputs, per token, using `lablib.bench`'s FLOP and byte counts: once as
    the kernel does it (the state stays on chip: $q, k, v$ read and $o$ written once), and once for a
    kernel that would write the fp32 state to memory and read it back between chunks. $C = 1$ in the
    second column is the token-by-token recurrence with its state in memory.
    """)
    return


@app.cell
def _(flops, nbytes, pd):
    _state_bytes = 64 * 64 * 4  # one head's fp32 state
    intensity = pd.DataFrame(
        [
            {
                "chunk size C": _C,
                "FLOPs per token": flops("linear", "fwd", 1, 1, 1, 64, 64, _C),
                "bytes per token, state on chip": nbytes("fwd", 1, 1, 1, 64, 64, 2),
                "bytes per token, state to memory": nbytes("fwd", 1, 1, 1, 64, 64, 2) + 2 * _state_bytes / _C,
            }
            for _C in (1, 16, 64)
        ]
    ).set_index("chunk size C")
    intensity["FLOPs per byte, on chip"] = intensity["FLOPs per token"] / intensity["bytes per token, state on chip"]
    intensity["FLOPs per byte, to memory"] = intensity["FLOPs per token"] / intensity["bytes per token, state to memory"]
    assert intensity["FLOPs per byte, to memory"][1] < 1, (  # the recurrence, state in memory: under one FLOP per byte
        f"expected the recurrence with its state in memory under 1 FLOP per byte, measured {intensity['FLOPs per byte, to memory'][1]:.2f}"
    )
    assert 10 <= intensity["FLOPs per byte, on chip"][64] < 100, (  # tens of FLOPs per byte
        f"expected C = 64 with the state on chip at tens of FLOPs per byte, measured {intensity['FLOPs per byte, on chip'][64]:.1f}"
    )
    assert intensity["FLOPs per byte, on chip"][64] > 50 * intensity["FLOPs per byte, to memory"][1]
    intensity.round(2)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Keeping the state in registers and working a chunk at a time moves the kernel from under one
    FLOP per byte to tens of FLOPs per byte. (Larger chunks raise it further, but through the
    $C \times C$ score blocks, whose work grows with $C$: the valley of section 1 again.)

    Whether that intensity turns into speed is a measurement, and **we have not made it yet**. The
    benchmark that makes it is `python -m lablib.bench attention` (`lablib/bench/`): on a GPU it
    times this kernel's forward and forward+backward against the PyTorch chunkwise form, torch's
    `scaled_dot_product_attention` (softmax attention on its FlashAttention path) and
    flash-linear-attention's `chunk_linear_attn`, after checking each one's output against a float64
    reference, and writes a table and a chart. It has not been run on a GPU machine for this book,
    so this chapter quotes no GPU timings; when it has been, the results go here. (On a CPU,
    `TRITON_INTERPRET=1 python -m lablib.bench attention --smoke` checks that the benchmark runs, in
    seconds; its times are the interpreter's.)

    ## 6. Exercises

    Each exercise has a check that runs your function against the library. The solutions are filled
    in so that the chapter runs top to bottom: delete a function's body, write your own, and run the
    check.

    **Exercise 1 (FLOPs of the chunkwise forward).** For one head, with $T$ a multiple of $C$ and
    possibly $D_k \ne D_v$, how many FLOPs does the chunkwise forward take? Count a multiply-add as 2
    and include the masked half of the score block. The check compares with
    `count_chunkwise_flops`, which counts the products one chunk issues.
    """)
    return


@app.cell
def _(check_chunkwise_flops):
    def my_chunkwise_flops(T, C, d_k, d_v):
        # per chunk: Q K^T (2 C^2 d_k), tril(.) V (2 C^2 d_v), Q S and K^T V (2 C d_k d_v each); T / C chunks
        return (T // C) * (2 * C * C * d_k + 2 * C * C * d_v + 4 * C * d_k * d_v)


    # NBVAL_CHECK_OUTPUT
    check_chunkwise_flops(my_chunkwise_flops)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Exercise 2 (the backward of one chunk, for $V$).** A chunk computes
    $O = QS + \operatorname{tril}(QK^\top)V$ and passes on $S' = S + K^\top V$. Given the gradient
    `dO` reaching $O$ and `dS` reaching $S'$ (from the chunks after this one), return the gradient
    of $V$. Shapes: `Q, K` $(C, D_k)$, `V, dO` $(C, D_v)$, `dS` $(D_k, D_v)$. The check compares
    with autograd. (Hint: $V$ enters twice. Which mask does the transpose of a lower-triangular
    matrix have?)
    """)
    return


@app.cell
def _(check_chunk_dv):
    def my_chunk_dv(Q, K, V, dO, dS):
        # through S' = S + K^T V: K dS;  through tril(Q K^T) V: tril(Q K^T)^T dO = triu(K Q^T) dO
        return K @ dS + (K @ Q.T).triu() @ dO


    # NBVAL_CHECK_OUTPUT
    check_chunk_dv(my_chunk_dv)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Compare with the line `dV = ...` in `kernel_module._chunk_dkdv_kernel`: it is this formula, on
    tiles.

    **Exercise 3 (how many programs?).** The forward kernel is launched for a batch of $B$ sequences
    with $H$ heads and value dimension $D_v$, with value blocks of width $B_V$. How many programs
    run? The check records the grid the kernel really launches (without running it).
    """)
    return


@app.cell
def _(check_program_count, math):
    def my_program_count(B, H, d_v, BV):
        return B * H * math.ceil(d_v / BV)  # one per (batch, head) and value block; the last block may be partial


    # NBVAL_CHECK_OUTPUT
    check_program_count(my_program_count)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Summary

    * The recurrence is $T$ dependent rank-1 updates: little work per step, and none of it in the
      matrix-product shapes that hardware is fast at. The chunkwise form does about
      $2T(CD_k + CD_v + 2D_kD_v)$ FLOPs in $T/C$ steps of small matrix products; on this CPU the
      time is a valley in $C$, with the recurrence and the parallel form at its two ends.
    * The kernel's grid is $(B \cdot H, \lceil D_v/B_V \rceil)$: value blocks never interact, so
      programs never wait for each other, and each keeps its slice of the state in registers.
    * Each chunk is masked loads, $QK^\top$ with the $\operatorname{tril}$ mask, two more products
      into $O$, then $S \leftarrow S + K^\top V$, all in fp32. The kernel agrees with the PyTorch form
      in outputs, final state and gradients, and its decoding step continues a prefill exactly.
    * How fast it is on a GPU is measured by `python -m lablib.bench attention`, not yet run for this
      book. Next: gates and the delta rule, in the same chunkwise shape.
    """)
    return


if __name__ == "__main__":
    app.run()
