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
    # Linear attention is an RNN

    A transformer decoding its 10,000th token reads all 9,999 keys and values before it, and must
    keep every one of them in memory. A recurrent network would carry a fixed-size state instead.
    This chapter shows, one checked step at a time, that changing a single ingredient of attention,
    the similarity between a query and a key, turns attention *exactly* into a recurrent network
    whose hidden state is a matrix.

    By the end you will have

    * derived linear attention from softmax attention with the kernel trick;
    * written causal linear attention in three forms (parallel, recurrent and chunkwise) and seen
      that they compute the same numbers, to floating-point precision;
    * read the state as a *fast-weight memory* and watched where its capacity runs out;
    * measured what each form costs on this CPU, and why decoding memory stops growing.

    The ideas are from *Transformers are RNNs* (Katharopoulos et al., 2020) and *Linear Transformers
    Are Secretly Fast Weight Programmers* (Schlag, Irie and Schmidhuber, 2021). Everything here uses
    the reference implementations in `lablib.attention`; tensors are `(B, H, T, D)`: batch, heads,
    time, feature dimension.
    """)
    return


@app.cell
def _():
    import pandas as pd
    import torch

    import lablib.viz  # noqa: F401  (charts that render offline in JupyterLab, the book and marimo)
    from lablib.attention import (
        LinearAttentionDecoder,
        SoftmaxKVCacheDecoder,
        elu_plus_one,
        linear_attention_chunkwise,
        linear_attention_parallel,
        linear_attention_recurrent,
        linear_attention_reference,
        random_qkv,
        softmax_attention,
    )
    from lablib.exercises.attention import (
        check_chunk_step,
        check_crossover_tokens,
        check_noncausal_linear_attention,
        check_recurrent_step,
    )
    from lablib.testing import max_scaled_error
    from lablib.timing import best_seconds
    from lablib.viz import error_chart, memory_chart, recall_chart, state_explorer, timing_chart
    from lablib.widgets import RecurrenceStepper

    return (
        LinearAttentionDecoder,
        RecurrenceStepper,
        SoftmaxKVCacheDecoder,
        best_seconds,
        check_chunk_step,
        check_crossover_tokens,
        check_noncausal_linear_attention,
        check_recurrent_step,
        elu_plus_one,
        error_chart,
        linear_attention_chunkwise,
        linear_attention_parallel,
        linear_attention_recurrent,
        linear_attention_reference,
        max_scaled_error,
        memory_chart,
        pd,
        random_qkv,
        recall_chart,
        softmax_attention,
        state_explorer,
        timing_chart,
        torch,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. Softmax attention, one query at a time

    Attention turns a sequence of values $v_1, \dots, v_T$ into outputs. Output $i$ is an average of
    the values, weighted by how similar query $q_i$ is to each key $k_j$:

    $$
    o_i \;=\; \frac{\sum_{j} \operatorname{sim}(q_i, k_j)\, v_j}{\sum_{j} \operatorname{sim}(q_i, k_j)},
    \qquad \operatorname{sim}(q, k) = \exp\!\left(\frac{q^\top k}{\sqrt{D}}\right).
    $$

    With this exponential similarity the weights are exactly $\operatorname{softmax}_j(q_i^\top k_j/\sqrt D)$.
    In a *causal* (decoder) layer, $j$ runs only over $j \le i$: a token may not look ahead.

    Let us check that this formula, written out by hand, is what `softmax_attention` computes.
    """)
    return


@app.cell
def _(pd, random_qkv, softmax_attention, torch):
    q_small, k_small, v_small = random_qkv(6, d_k=4, seed=0)

    similarity = torch.exp(q_small @ k_small.transpose(-1, -2) / 4**0.5).tril()  # causal: zero above the diagonal
    by_hand = (similarity @ v_small) / similarity.sum(-1, keepdim=True)
    assert torch.allclose(by_hand, softmax_attention(q_small, k_small, v_small, causal=True), atol=1e-6)

    # the attention weights: row i is how much output i draws from each value j
    pd.DataFrame((similarity / similarity.sum(-1, keepdim=True))[0, 0].numpy()).round(2)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Every row of that matrix needs query $i$ against every earlier key. For $T$ tokens that is
    $O(T^2)$ work, and to produce token $T+1$ a decoder must still hold all $T$ keys and values: the
    *KV cache*.

    ## 2. The kernel trick

    Nothing in the averaging formula needs the exponential: any non-negative similarity gives a
    weighted average. Choose one that factorizes through a *feature map* $\phi$,

    $$
    \operatorname{sim}(q, k) = \phi(q)^\top \phi(k),
    $$

    and watch what happens to the sums. Because $\phi(q_i)$ does not depend on $j$, it moves out:

    $$
    o_i \;=\; \frac{\phi(q_i)^\top \sum_j \phi(k_j)\, v_j^\top}{\phi(q_i)^\top \sum_j \phi(k_j)}
    \;=\; \frac{\phi(q_i)^\top S}{\phi(q_i)^\top z},
    \qquad S = \sum_j \phi(k_j)\, v_j^\top,\quad z = \sum_j \phi(k_j).
    $$

    $S$ is a $D_k \times D_v$ matrix and $z$ a vector, and neither depends on the query. In matrix
    form this is just associativity, $(\phi(Q)\phi(K)^\top)\,V = \phi(Q)\,(\phi(K)^\top V)$: the left
    order builds a $T \times T$ matrix, the right one a $D_k \times D_v$ matrix. Softmax cannot be
    regrouped like this, because $\exp(q^\top k)$ corresponds to an infinite-dimensional $\phi$.

    We use $\phi(x) = \operatorname{elu}(x) + 1$ from Katharopoulos et al.: it is positive, so the
    weights stay a proper average. Both orders give the same outputs:
    """)
    return


@app.cell
def _(elu_plus_one, max_scaled_error, mo, random_qkv):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        q_nc, k_nc, v_nc = random_qkv(512, d_k=16, seed=1)
        fq, fk = elu_plus_one(q_nc), elu_plus_one(k_nc)

        scores = fq @ fk.transpose(-1, -2)  # (1, 1, 512, 512): the quadratic order
        quadratic = (scores @ v_nc) / scores.sum(-1, keepdim=True)
        state = fk.transpose(-1, -2) @ v_nc  # (1, 1, 16, 16): the linear order
        normalizer = fk.sum(2)  # (1, 1, 16)
        linear = (fq @ state) / (fq @ normalizer.unsqueeze(-1))

        assert max_scaled_error(linear, quadratic) < 1e-5, (
            f"expected both orders to give the same outputs to 1e-5, measured {max_scaled_error(linear, quadratic):.1e}"
        )
        print(f"T x T scores: {tuple(scores.shape)} ({scores.numel():,} numbers)")
        print(f"state S:      {tuple(state.shape)} ({state.numel():,} numbers)")
        print(f"max |difference| = {(linear - quadratic).abs().max():.1e}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 3. Causal linear attention is a recurrence

    With a causal mask the sums stop at $i$, so $S$ and $z$ become prefix sums, and a prefix sum is a
    recurrence:

    $$
    S_i = S_{i-1} + \phi(k_i)\, v_i^\top, \qquad z_i = z_{i-1} + \phi(k_i), \qquad
    o_i = \frac{\phi(q_i)^\top S_i}{\phi(q_i)^\top z_i}.
    $$

    That is a recurrent neural network. Its hidden state is the pair $(S_i, z_i)$; each step writes
    the outer product $\phi(k_i) v_i^\top$ into it, and the query reads it out. Unlike an LSTM, the
    state update is *linear* in the state, and the state is a matrix.

    Here is the whole RNN for one head, from scratch:
    """)
    return


@app.cell
def _(
    elu_plus_one,
    linear_attention_reference,
    max_scaled_error,
    mo,
    random_qkv,
    torch,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        def linear_attention_rnn(q, k, v):
            """Causal linear attention for one head, as an RNN. q, k: (T, D_k); v: (T, D_v) -> (T, D_v)."""
            fq, fk = elu_plus_one(q), elu_plus_one(k)
            S = torch.zeros(q.shape[1], v.shape[1])  # the state: a D_k x D_v matrix
            z = torch.zeros(q.shape[1])  # the normalizer's running sum
            outputs = []
            for t in range(q.shape[0]):
                S = S + torch.outer(fk[t], v[t])  # write: add the outer product of key and value
                z = z + fk[t]
                outputs.append((fq[t] @ S) / (fq[t] @ z))  # read: query the state
            return torch.stack(outputs)


        q_rnn, k_rnn, v_rnn = random_qkv(50, d_k=8, seed=2)
        rnn_out = linear_attention_rnn(q_rnn[0, 0], k_rnn[0, 0], v_rnn[0, 0])
        reference_out = linear_attention_reference(q_rnn, k_rnn, v_rnn, causal=True)[0, 0]
        assert max_scaled_error(rnn_out, reference_out) < 1e-5, (
            f"expected the RNN to compute the attention formula to 1e-5, measured {max_scaled_error(rnn_out, reference_out):.1e}"
        )
        print(f"RNN vs attention formula, max |difference| = {(rnn_out - reference_out).abs().max():.1e}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    `lablib.attention` has the same computation in three forms, batched over $(B, H)$:

    * **parallel**: $(\phi(Q)\phi(K)^\top \odot M)\,V$ with the causal mask $M$: quadratic, but all matmuls;
    * **recurrent**: the loop above: $O(T)$ work and an $O(1)$ state, but $T$ sequential steps;
    * **chunkwise**: the recurrence taken a chunk of $C$ tokens at a time (section 5).

    They are tested against `linear_attention_reference`, which evaluates the attention formula one
    query at a time. Here they are on lengths that are not multiples of the chunk size, for three
    feature maps (the identity map gives signed weights, so it is used without the normalizer, as
    most modern linear-attention layers do):
    """)
    return


@app.cell
def _(
    linear_attention_chunkwise,
    linear_attention_parallel,
    linear_attention_recurrent,
    linear_attention_reference,
    max_scaled_error,
    pd,
    random_qkv,
):
    forms = {
        "parallel": linear_attention_parallel,
        "recurrent": linear_attention_recurrent,
        "chunkwise": lambda *a, **kw: linear_attention_chunkwise(*a, chunk_size=16, **kw),
    }
    agreement_rows = []
    for _T in (1, 7, 64, 257):
        _q, _k, _v = random_qkv(_T, B=2, H=2, d_k=8, seed=_T)
        for _phi, _normalize in (("elu+1", True), ("relu", True), ("identity", False)):
            _reference = linear_attention_reference(_q, _k, _v, feature_map=_phi, normalize=_normalize)
            for _name, _form in forms.items():
                _out = _form(_q, _k, _v, feature_map=_phi, normalize=_normalize)
                agreement_rows.append(
                    {"T": _T, "feature map": _phi, "form": _name, "max_error": max_scaled_error(_out, _reference)}
                )
    agreement = pd.DataFrame(agreement_rows)
    assert agreement.max_error.max() < 1e-5, (
        f"expected every form to match the reference within 1e-5 (scaled), measured worst {agreement.max_error.max():.1e}"
    )
    agreement.pivot_table(index=["feature map", "T"], columns="form", values="max_error").map("{:.0e}".format)
    return agreement, forms


@app.cell
def _(agreement, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        print(f"{len(agreement)} comparisons: {agreement.form.nunique()} forms x {agreement['feature map'].nunique()} feature maps "
              f"x {agreement['T'].nunique()} lengths, each against the reference")
    return


@app.cell
def _(agreement, error_chart):
    error_chart(agreement.groupby(["form", "T"], as_index=False).max_error.max())
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The differences are rounding: the forms add the same numbers in different orders. In float64
    the rounding shrinks with the precision, and the forms agree to $10^{-12}$ (the test suite also
    checks the gradients):
    """)
    return


@app.cell
def _(forms, linear_attention_reference, max_scaled_error, random_qkv, torch):
    _q64, _k64, _v64 = random_qkv(257, B=2, H=2, d_k=8, seed=257, dtype=torch.float64)
    _reference64 = linear_attention_reference(_q64, _k64, _v64)
    float64_error = max(max_scaled_error(_form(_q64, _k64, _v64), _reference64) for _form in forms.values())
    assert float64_error < 1e-12, f"expected the three forms to agree with the reference to 1e-12 in float64, measured {float64_error:.1e}"
    f"float64, T = 257: worst scaled difference from the reference {float64_error:.0e}"
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 4. The state is a fast-weight memory

    Look at the state again: $S = \sum_j \phi(k_j) v_j^\top$ is a sum of outer products, the classic
    *associative memory* (a Hebbian "fast weight" matrix). Reading it with a key returns

    $$
    S^\top \phi(k_m) = \sum_j \big(\phi(k_j)^\top \phi(k_m)\big)\, v_j
    = \lVert \phi(k_m) \rVert^2\, v_m \;+\; \underbrace{\sum_{j \ne m} \big(\phi(k_j)^\top \phi(k_m)\big)\, v_j}_{\text{crosstalk}}.
    $$

    If the keys are orthonormal, the crosstalk vanishes and $v_m$ comes back exactly. But a
    $D_k$-dimensional space holds at most $D_k$ orthonormal keys: store more pairs than that and
    they interfere. With random unit keys the crosstalk's size grows like $\sqrt{(n-1)/D_k}$ for $n$
    stored pairs (the cell checks that every measured point from $n = 8$ on is within 20% of it). A
    linear-attention layer's memory is *finite*, and this is why (track 1 returns to it with the
    delta rule, which edits the memory instead of only adding to it).
    """)
    return


@app.cell
def _(pd, recall_chart, torch):
    def recall_error(n_pairs, d, orthogonal=False, seed=0):
        """Mean relative error of reading back each of n_pairs values stored in a d x d outer-product memory."""
        g = torch.Generator().manual_seed(seed)
        if orthogonal:
            keys = torch.linalg.qr(torch.randn(d, d, generator=g))[0][:n_pairs]  # orthonormal rows
        else:
            keys = torch.nn.functional.normalize(torch.randn(n_pairs, d, generator=g), dim=-1)
        values = torch.randn(n_pairs, d, generator=g)
        memory = keys.T @ values  # S = sum_j k_j v_j^T
        recalled = keys @ memory  # row m is S^T k_m
        return ((recalled - values).norm(dim=-1) / values.norm(dim=-1)).mean().item()


    _orthogonal_error = recall_error(16, 16, orthogonal=True)
    assert _orthogonal_error < 1e-5, f"expected d orthonormal keys to be recalled exactly (1e-5), measured {_orthogonal_error:.1e}"
    recall = pd.DataFrame(
        [{"pairs": _n, "d": _d, "error": recall_error(_n, _d, seed=_n)} for _d in (16, 32, 64) for _n in range(1, 4 * _d + 1, 3)]
    )
    _ratio = (recall.error / ((recall.pairs - 1) / recall.d) ** 0.5)[recall.pairs >= 8]
    assert _ratio.between(0.8, 1.2).all(), (
        f"expected the recall error to be sqrt((n-1)/d) within 20% for n >= 8, measured ratios {_ratio.min():.2f} to {_ratio.max():.2f}"
    )
    _overfull = recall.query("d == 64 and pairs >= 4 * 60").error.min()
    assert _overfull > 1.0, f"expected crosstalk to dominate at 4x overfull (error > 1), measured {_overfull:.2f}"
    recall_chart(recall)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Now watch the memory fill up. Drag the slider (or press play) to step through the recurrence for
    one head: the left panel is the write $\phi(k_t) v_t^\top$, the middle one the state $S_t$ it is
    added to, and the output row is what $\phi(q_t)$ reads out of it.
    """)
    return


@app.cell
def _(RecurrenceStepper, random_qkv):
    q_w, k_w, v_w = random_qkv(12, d_k=6, seed=3)
    stepper = RecurrenceStepper.from_qkv(q_w[0, 0], k_w[0, 0], v_w[0, 0], title="causal linear attention, one head")
    stepper
    return k_w, q_w, v_w


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The same trajectory as a chart whose slider works without a running kernel (for instance in the
    published book):
    """)
    return


@app.cell
def _(k_w, linear_attention_recurrent, q_w, state_explorer, torch, v_w):
    _, trajectory_state = linear_attention_recurrent(q_w, k_w, v_w, return_state=True)
    trajectory = torch.stack(
        [linear_attention_recurrent(q_w[:, :, : _t + 1], k_w[:, :, : _t + 1], v_w[:, :, : _t + 1], return_state=True)[1].kv[0, 0] for _t in range(12)]
    )
    assert torch.allclose(trajectory[-1], trajectory_state.kv[0, 0]), "expected the last prefix's state to be the full run's final state"
    state_explorer(trajectory, linear_attention_recurrent(q_w, k_w, v_w)[0, 0])
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 5. The chunkwise form: matmuls and a short recurrence

    The two forms we have pull in opposite directions. The parallel form is all matrix products,
    which hardware loves, but its work grows as $T^2$. The recurrent form does $O(T)$ work, but as
    $T$ tiny sequential steps, each too small to keep a processor busy.

    The chunkwise form splits the sequence into chunks of $C$ tokens. Within a chunk it uses the
    parallel form; between chunks it carries the state. For chunk $c$ with (feature-mapped) queries
    $Q_c$, keys $K_c$, values $V_c$, and the state $S$ left by the chunks before it:

    $$
    O_c = \underbrace{Q_c\, S}_{\text{all earlier chunks}} + \underbrace{(Q_c K_c^\top \odot M_C)\, V_c}_{\text{inside the chunk}},
    \qquad S \leftarrow S + K_c^\top V_c .
    $$

    (The normalizer follows the same pattern with $z$.) Now there are only $T / C$ sequential steps,
    each a handful of $C \times D$ matmuls, and the total work is $O(T C D + T D^2)$. $C = 1$ is the
    recurrent form, $C \ge T$ the parallel one. The chunk size changes nothing but speed:
    """)
    return


@app.cell
def _(
    linear_attention_chunkwise,
    linear_attention_parallel,
    max_scaled_error,
    pd,
    random_qkv,
):
    q_c, k_c, v_c = random_qkv(257, B=2, H=4, d_k=16, seed=4)
    parallel_out = linear_attention_parallel(q_c, k_c, v_c)
    chunk_errors = pd.DataFrame(
        [{"chunk size C": _C, "chunks": -(-257 // _C), "max_error": max_scaled_error(linear_attention_chunkwise(q_c, k_c, v_c, chunk_size=_C), parallel_out)} for _C in (1, 8, 64, 100, 300)]
    )
    assert chunk_errors.max_error.max() < 1e-5, (
        f"expected every chunk size to give the parallel form's outputs to 1e-5, measured worst {chunk_errors.max_error.max():.1e}"
    )
    chunk_errors
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    This is the form that fast kernels use: the next chapter writes it as a Triton kernel.

    ## 6. What each form costs, measured

    Time one forward pass of each form on one CPU thread, for one sequence with 4 heads of dimension
    32, as the length grows. (Each time is the fastest of 5 runs, the estimate least disturbed by whatever
    else the machine is doing; your numbers will differ, the slopes should not.)
    """)
    return


@app.cell
def _(
    best_seconds,
    linear_attention_chunkwise,
    linear_attention_parallel,
    linear_attention_recurrent,
    pd,
    random_qkv,
    softmax_attention,
    timing_chart,
    torch,
):
    def time_forms(lengths, heads=4, dim=32):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one thread: the slopes then show the algorithms, not how each op parallelizes
        rows = []
        for T in lengths:
            q, k, v = random_qkv(T, H=heads, d_k=dim, seed=T)
            runs = {
                "softmax": lambda: softmax_attention(q, k, v, causal=True),
                "linear, parallel": lambda: linear_attention_parallel(q, k, v),
                "linear, recurrent": lambda: linear_attention_recurrent(q, k, v),
                "linear, chunkwise (C=64)": lambda: linear_attention_chunkwise(q, k, v, chunk_size=64),
            }
            rows += [{"form": name, "T": T, "seconds": best_seconds(fn, repeats=5)} for name, fn in runs.items()]
        torch.set_num_threads(threads)
        return pd.DataFrame(rows)


    timings = time_forms([128, 256, 512, 1024, 2048, 4096])
    timing_chart(timings)
    return (timings,)


@app.cell
def _(pd, timings, torch):
    # The exponent p in time ~ T^p, fitted over the longest lengths
    def growth_exponent(df, form):
        sub = df[(df.form == form) & (df["T"] >= 1024)]
        x, y = torch.tensor(sub["T"].values).double().log(), torch.tensor(sub.seconds.values).double().log()
        return (((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()).item()


    exponents = pd.DataFrame({"form": timings.form.unique()}).assign(exponent=lambda d: [round(growth_exponent(timings, f), 2) for f in d.form])
    longest = timings[timings["T"] == timings["T"].max()].set_index("form").seconds
    assert longest["linear, chunkwise (C=64)"] < longest["linear, parallel"] / 2, (  # linear beats quadratic at T=4096
        f"expected the chunkwise form to take under half the parallel form's time at T=4096, measured "
        f"{longest['linear, chunkwise (C=64)']:.3g} s vs {longest['linear, parallel']:.3g} s"
    )
    # quadratic grows faster than linear (compared with each other, so a busy machine cannot fake it)
    for _quadratic, _linear_form in [("linear, parallel", "linear, chunkwise (C=64)"), ("softmax", "linear, recurrent")]:
        _gap = growth_exponent(timings, _quadratic) - growth_exponent(timings, _linear_form)
        assert _gap > 0.5, f"expected {_quadratic}'s time to grow with an exponent at least 0.5 above {_linear_form}'s, measured {_gap:.2f}"
    exponents
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The exponents are measured on this machine and vary from run to run, so the cell asserts only
    that each quadratic form's exponent is at least 0.5 above a linear form's. In theory they are 2
    for the quadratic forms and 1 for the linear ones; at these lengths fixed per-call costs still
    flatten the measured curves, the linear forms' most. The recurrent form pays a large constant for its $T$ little Python steps; the chunkwise form keeps the
    linear growth and removes most of that constant, which is why it is the form used in practice.

    Decoding is where the recurrence shines. To generate one more token, softmax attention needs the
    keys and values of every earlier token; linear attention needs only $(S, z)$:
    """)
    return


@app.cell
def _(
    LinearAttentionDecoder,
    SoftmaxKVCacheDecoder,
    memory_chart,
    pd,
    random_qkv,
):
    decoding_rows = []
    _B, _H, _d = 1, 4, 32
    _linear, _cache = LinearAttentionDecoder(_B, _H, _d, _d), SoftmaxKVCacheDecoder()
    _q, _k, _v = random_qkv(1024, H=_H, d_k=_d, seed=5)
    for _t in range(1024):
        _tok = slice(_t, _t + 1)
        _linear.step(_q[:, :, _tok], _k[:, :, _tok], _v[:, :, _tok])
        _cache.step(_q[:, :, _tok], _k[:, :, _tok], _v[:, :, _tok])
        if (_t + 1) % 64 == 0:
            decoding_rows += [
                {"decoder": "softmax (KV cache)", "tokens": _t + 1, "bytes": _cache.nbytes},
                {"decoder": "linear attention (state)", "tokens": _t + 1, "bytes": _linear.nbytes},
            ]
    decoding_memory = pd.DataFrame(decoding_rows)
    linear_bytes = decoding_memory[decoding_memory.decoder.str.startswith("linear")].bytes
    assert linear_bytes.nunique() == 1 and linear_bytes.iloc[0] == _B * _H * (_d * _d + _d) * 4, (
        f"expected a constant state of B H (d^2 + d) float32s = {_B * _H * (_d * _d + _d) * 4} bytes, measured {sorted(linear_bytes.unique())}"
    )
    assert decoding_memory.bytes.max() == 1024 * _B * _H * 2 * _d * 4, (
        f"expected the KV cache to hold 2 d float32s per head per token, {1024 * _B * _H * 2 * _d * 4} bytes after 1024 tokens, "
        f"measured {decoding_memory.bytes.max()}"
    )
    memory_chart(decoding_memory)
    return decoding_memory, linear_bytes


@app.cell
def _(decoding_memory, linear_bytes, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        print(f"linear-attention state: {linear_bytes.iloc[0]:,} bytes at every step; "
              f"KV cache after 1024 tokens: {decoding_memory.bytes.max():,} bytes")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 7. Exercises

    Each exercise has a check that runs your function on random inputs against the library. The
    solutions are filled in so that the chapter runs top to bottom: delete a function's body, write
    your own, and run the check.

    **Exercise 1 (the decoding step).** Write one step of the RNN with the state passed in and
    returned, as a decoder needs it: `step(S, z, q_t, k_t, v_t) -> (o_t, S, z)`, with
    $\phi = \operatorname{elu}+1$ and the normalizer.
    """)
    return


@app.cell
def _(check_recurrent_step, elu_plus_one, torch):
    def my_recurrent_step(S, z, q_t, k_t, v_t):
        fq_t, fk_t = elu_plus_one(q_t), elu_plus_one(k_t)
        S = S + torch.outer(fk_t, v_t)
        z = z + fk_t
        return (fq_t @ S) / (fq_t @ z + 1e-6), S, z


    # NBVAL_CHECK_OUTPUT
    check_recurrent_step(my_recurrent_step)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Exercise 2 (non-causal in linear time).** Non-causal linear attention for one head, without
    ever building a $T \times T$ matrix: `fn(q, k, v)` with `q, k` of shape `(T, D_k)`, `v` of shape
    `(T, D_v)`.
    """)
    return


@app.cell
def _(check_noncausal_linear_attention, elu_plus_one):
    def my_noncausal_linear_attention(q, k, v):
        fq, fk = elu_plus_one(q), elu_plus_one(k)
        S, z = fk.T @ v, fk.sum(0)  # (D_k, D_v) and (D_k,): the whole sequence, summarized
        return (fq @ S) / (fq @ z + 1e-6).unsqueeze(-1)


    # NBVAL_CHECK_OUTPUT
    check_noncausal_linear_attention(my_noncausal_linear_attention)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Exercise 3 (one chunk).** Write the body of the chunkwise loop: given the state $(S, z)$ and a
    chunk's feature-mapped `Qc, Kc` of shape `(C, F)` and `Vc` of shape `(C, D_v)`, return the chunk's
    normalized outputs and the updated state. Remember the causal mask inside the chunk.
    """)
    return


@app.cell
def _(check_chunk_step):
    def my_chunk_step(S, z, Qc, Kc, Vc):
        scores = (Qc @ Kc.T).tril()  # within the chunk: query i sees keys 0..i
        numerator = Qc @ S + scores @ Vc
        denominator = Qc @ z + scores.sum(-1)
        return numerator / (denominator + 1e-6).unsqueeze(-1), S + Kc.T @ Vc, z + Kc.sum(0)


    # NBVAL_CHECK_OUTPUT
    check_chunk_step(my_chunk_step)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Exercise 4 (when does the KV cache lose?).** For one head with key and value dimension $d$
    (float32), a softmax KV cache holds $2d$ numbers per token while the linear-attention state holds
    $d^2 + d$ numbers in all. From how many tokens on is the cache the larger one? Return that token
    count as a function of $d$; the check compares with the two decoders' measured memory.
    """)
    return


@app.cell
def _(check_crossover_tokens):
    def my_crossover_tokens(d):
        # the cache is larger once 2 d T > d^2 + d, i.e. T > (d + 1) / 2
        return (d + 1) // 2 + 1


    # NBVAL_CHECK_OUTPUT
    check_crossover_tokens(my_crossover_tokens)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Summary

    * Attention is a similarity-weighted average. With a factorized similarity
      $\phi(q)^\top\phi(k)$ the sum over keys regroups, and the cost drops from $O(T^2)$ to $O(T)$.
    * Causal linear attention is an RNN with a matrix state $S_t = S_{t-1} + \phi(k_t)v_t^\top$; its
      parallel, recurrent and chunkwise forms are the same function, to rounding.
    * The state is an outer-product associative memory: at most $D_k$ pairs fit without crosstalk.
    * Decoding with the state takes constant memory per step; the chunkwise form trains in linear
      time with matmuls. The next chapter turns it into a Triton kernel.
    """)
    return


if __name__ == "__main__":
    app.run()
