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
    # Decay and gates

    The state of linear attention only ever grows: $S_t = S_{t-1} + k_t v_t^\top$ adds every pair it
    sees and forgets nothing. Chapter 1 measured what that costs: a $D_k$-dimensional memory holds
    about $D_k$ pairs, and past that the crosstalk of old pairs drowns the new ones. Almost every
    recent linear-attention layer (RetNet, Mamba-2, GLA, xLSTM, gated DeltaNet) fixes this the same
    way: it multiplies the old state by a *gate* before adding the new pair, so that the memory
    fades.

    By the end you will have

    * written the family $S_t = G_t \circ S_{t-1} + k_t v_t^\top$ for four choices of the gate, and
      derived that a decayed state is attention with a *decay mask*, checked to $10^{-5}$ against
      lablib's recurrent and chunkwise forms;
    * measured how long a decayed memory remembers (its half-life), and what forgetting buys: a
      recall error that stays bounded however long the sequence;
    * dragged the decay in a widget and watched the mask and the state's size change;
    * seen why gates must be multiplied in log space, where products of small numbers underflow
      and their ratios become $0/0$;
    * run the Triton kernels for the scalar gate and for GLA's vector gate and checked their
      outputs, final states and gradients, the gates' included.

    Everything uses the references in `lablib.attention.gated` and the kernels
    `lablib.kernels.gated_linear_attention` and `lablib.kernels.gla`. As in chapter 2, the attention is unnormalized and the
    feature map (if any) is applied outside: $o_t = S_t^\top q_t$. The kernel runs in Triton's
    interpreter when there is no GPU, so this cell chooses that before the kernel module is imported.
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

    import lablib.viz  # noqa: F401  (charts that render offline in JupyterLab, the book and marimo)
    from lablib.attention import (
        gla_chunkwise,
        gla_recurrent,
        linear_attention_recurrent,
        random_qkv,
        scalar_gated_chunkwise,
        scalar_gated_recurrent,
    )
    from lablib.attention.gated import _causal_decays as causal_decays  # private: read, not called, in section 4
    from lablib.exercises.gates import check_decay_mask, check_gated_step, check_half_life
    from lablib.kernels.gated_linear_attention import INTERPRETED, chunk_scalar_gated_attention
    from lablib.kernels.gla import chunk_gla
    from lablib.testing import max_scaled_error
    from lablib.widgets import DecayExplorer

    DEVICE = "cpu" if INTERPRETED else "cuda"  # interpreted kernels take CPU tensors, compiled ones CUDA tensors
    f"Triton kernels {'interpreted on the CPU' if INTERPRETED else 'compiled for ' + torch.cuda.get_device_name()}"
    return (
        Code,
        DEVICE,
        DecayExplorer,
        alt,
        causal_decays,
        check_decay_mask,
        check_gated_step,
        check_half_life,
        chunk_gla,
        chunk_scalar_gated_attention,
        gla_chunkwise,
        gla_recurrent,
        inspect,
        linear_attention_recurrent,
        math,
        max_scaled_error,
        pd,
        random_qkv,
        scalar_gated_chunkwise,
        scalar_gated_recurrent,
        torch,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. One recurrence, four gates

    All the layers of this chapter share one recurrence. Before the new pair is written, the old
    state is multiplied, entry by entry, by a gate $G_t$ with entries in $(0, 1]$:

    $$
    S_t = G_t \circ S_{t-1} + k_t v_t^\top, \qquad o_t = S_t^\top q_t .
    $$

    They differ only in how much freedom the gate has:

    | gate $G_t$ | what it is | example |
    |---|---|---|
    | $1$ | no forgetting: plain linear attention | Katharopoulos et al., 2020 |
    | $a$, a constant per head | a fixed exponential decay | RetNet (Sun et al., 2023): $a = 1 - 2^{-5-h}$ for head $h$ |
    | $a_t = \exp(\text{log } a_t)$, computed from $x_t$ | a data-dependent scalar per step | Mamba-2 (Dao and Gu, 2024) |
    | $\alpha_t \mathbf{1}^\top$, $\alpha_t \in (0,1]^{D_k}$ from $x_t$ | a data-dependent gate per key dimension | GLA (Yang et al., 2024) |

    A scalar gate forgets the whole memory at one rate; GLA's vector gate lets each row of $S$ (what
    key feature $d$ has stored) forget at its own rate, $S_t = \operatorname{diag}(\alpha_t) S_{t-1} + k_t v_t^\top$.

    **A decayed state is attention with a decay mask.** Take the scalar gate and unroll the
    recurrence from $S_0 = 0$. The pair written at step $s$ has been multiplied by every gate after
    it, $a_{s+1}, \dots, a_t$:

    $$
    S_t = \sum_{s \le t} \Big(\prod_{r=s+1}^{t} a_r\Big)\, k_s v_s^\top
    \quad\Longrightarrow\quad
    o_t = S_t^\top q_t = \sum_{s \le t} \Big(\prod_{r=s+1}^{t} a_r\Big)\, (q_t^\top k_s)\, v_s .
    $$

    That is causal linear attention whose score $q_t^\top k_s$ is multiplied by a weight that
    shrinks with the distance from $s$ to $t$. In matrix form, with the *decay mask*
    $M_{ts} = \prod_{s < r \le t} a_r$ for $s \le t$ and $0$ above the diagonal,

    $$
    O = \big((Q K^\top) \circ M\big)\, V .
    $$

    Products are awkward (section 4 shows why), so we build $M$ from sums of logs: with the
    cumulative log decay $b_t = \sum_{r \le t} \log a_r$, $M_{ts} = \exp(b_t - b_s)$. Above the
    diagonal $b_t - b_s$ is positive, possibly huge, so it is replaced by $-\infty$ *before* the
    exponential, and comes out as an exact $0$.
    """)
    return


@app.cell
def _(torch):
    def decay_masked_attention(q, k, v, log_decay):
        """The parallel form: ((Q K^T) * M) V with M[t, s] = exp(b_t - b_s) for s <= t, 0 above the diagonal.

        q, k (B, H, T, D_k); v (B, H, T, D_v); log_decay (B, H, T), <= 0.
        """
        T = q.shape[2]
        b = log_decay.cumsum(-1)  # (B, H, T): log of the decay since the start
        log_M = b[..., :, None] - b[..., None, :]  # (B, H, T, T): log prod_{s < r <= t} a_r
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        M = log_M.masked_fill(~causal, float("-inf")).exp()  # -inf above the diagonal: exactly 0, never exp(+big)
        return ((q @ k.transpose(-1, -2)) * M) @ v

    return (decay_masked_attention,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Now four gates on the same queries, keys and values (two heads, 64 tokens, $D = 16$). The
    data-dependent gates are $\log a_t = \log \sigma(u_t)$ for a random $u_t$ around 2, standing in
    for a learned projection of the input (Mamba-2 and GLA compute theirs from $x_t$ this way, up to
    details): mostly close to 1, sometimes a strong forget. The linear-attention row compares with
    chapter 1's `linear_attention_recurrent` (identity map, unnormalized); the others with lablib's
    `scalar_gated_recurrent`, which runs the recurrence one token at a time.
    """)
    return


@app.cell
def _(
    decay_masked_attention,
    gla_chunkwise,
    gla_recurrent,
    linear_attention_recurrent,
    max_scaled_error,
    pd,
    random_qkv,
    scalar_gated_chunkwise,
    scalar_gated_recurrent,
    torch,
):
    T_fam, H_fam = 64, 2
    q_fam, k_fam, v_fam = random_qkv(T_fam, B=1, H=H_fam, d_k=16, seed=30)
    _g = torch.Generator().manual_seed(31)
    scalar_gates = {
        "none (linear attention)": torch.zeros(1, H_fam, T_fam),
        "fixed (RetNet)": torch.tensor([1 - 2**-5, 1 - 2**-6]).log()[None, :, None].expand(1, H_fam, T_fam).contiguous(),
        "data-dependent scalar (Mamba-2)": torch.nn.functional.logsigmoid(2 * torch.randn(1, H_fam, T_fam, generator=_g) + 2),
    }
    gla_gate = torch.nn.functional.logsigmoid(2 * torch.randn(1, H_fam, T_fam, 16, generator=_g) + 2)  # one per key dim

    family_rows = []
    for _name, _log_decay in scalar_gates.items():
        _truth = scalar_gated_recurrent(q_fam, k_fam, v_fam, _log_decay)
        _forms = {
            "parallel, decay mask": decay_masked_attention(q_fam, k_fam, v_fam, _log_decay),
            "chunkwise (C=16)": scalar_gated_chunkwise(q_fam, k_fam, v_fam, _log_decay, chunk_size=16),
            "GLA, gate equal over key dims": gla_recurrent(q_fam, k_fam, v_fam, _log_decay[..., None].expand(-1, -1, -1, 16)),
            "GLA chunkwise, gate equal over key dims": gla_chunkwise(q_fam, k_fam, v_fam, _log_decay[..., None].expand(-1, -1, -1, 16), chunk_size=16),
        }
        if _name.startswith("none"):
            _forms["chapter 1's recurrence"] = linear_attention_recurrent(q_fam, k_fam, v_fam, feature_map="identity", normalize=False)
        family_rows += [{"gate": _name, "form": _form, "max_error": max_scaled_error(_out, _truth)} for _form, _out in _forms.items()]
    _gla_truth = gla_recurrent(q_fam, k_fam, v_fam, gla_gate)
    family_rows.append(  # a real vector gate: GLA's chunkwise form against its own recurrence
        {"gate": "vector (GLA)", "form": "chunkwise (C=16)", "max_error": max_scaled_error(gla_chunkwise(q_fam, k_fam, v_fam, gla_gate, chunk_size=16), _gla_truth)}
    )
    family_check = pd.DataFrame(family_rows)
    assert family_check.max_error.max() < 1e-5, (
        f"expected every form within 1e-5 (scaled) of the token-by-token recurrence, measured worst {family_check.max_error.max():.1e}"
    )
    family_check.pivot_table(index="form", columns="gate", values="max_error", sort=False).map("{:.0e}".format, na_action="ignore").fillna("")
    return family_check, scalar_gates


@app.cell
def _(family_check, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        print(f"{len(family_check)} comparisons against the recurrence, over {family_check.gate.nunique()} gates")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Each column is one gate; each entry the largest (scaled) difference from the token-by-token
    recurrence. The decay mask is the recurrence; a GLA gate that is the same for every key
    dimension is the scalar gate (the last column is GLA with a real vector gate, its chunkwise form
    against its recurrence). Here are the three scalar masks for the first head, first 32 tokens:
    """)
    return


@app.cell
def _(alt, pd, scalar_gates, torch):
    _T = 32
    _mask_rows = []
    for _name, _log_decay in scalar_gates.items():
        _b = _log_decay[0, 0, :_T].cumsum(0)
        _M = (_b[:, None] - _b[None, :]).masked_fill(~torch.ones(_T, _T, dtype=torch.bool).tril(), float("-inf")).exp()
        _mask_rows += [{"gate": _name, "t": _t, "s": _s, "M": _M[_t, _s].item()} for _t in range(_T) for _s in range(_t + 1)]
    alt.Chart(pd.DataFrame(_mask_rows)).mark_rect().encode(
        x=alt.X("s:O", title="key position s", axis=alt.Axis(values=list(range(0, _T, 8)))),
        y=alt.Y("t:O", title="query position t", axis=alt.Axis(values=list(range(0, _T, 8)))),
        color=alt.Color("M:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="M[t, s]"),
        tooltip=["t:O", "s:O", alt.Tooltip("M:Q", format=".3f")],
    ).properties(width=200, height=200).facet(column=alt.Column("gate:N", title=None, sort=list(scalar_gates)))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Without a gate every past token counts fully. A fixed decay fades the past smoothly with the
    distance $t - s$, the same way at every position. A data-dependent gate decides *when* to
    forget: where $a_t$ is small, every key before step $t$ is largely wiped for every query from
    $t$ on, and the mask breaks into blocks.

    ## 2. What the gate does to memory

    **How long is a token remembered?** With a fixed decay $a$, the pair written at step 0 is
    multiplied by $a$ at every later step, so after $n$ steps its weight is $a^n$. It has lost half
    its weight when $a^n = 1/2$, at the *half-life*

    $$
    n_{1/2} = \frac{\ln 2}{-\ln a} \;\approx\; \frac{0.69}{1 - a} \quad (a \text{ near } 1).
    $$

    A decay of $0.99$ remembers for about 69 steps, $0.9$ for about 7. Measure it: store a pair
    $(k_0, v_0)$ at $t = 0$, then random pairs, and at every step read the memory with $k_0$ and
    see how much of $v_0$ comes back, $c_t = v_0^\top S_t^\top k_0$. The other pairs add crosstalk
    with mean zero, so we average over 512 random sequences. Each decay runs as one head of the same
    call (as in RetNet, where every head has its own $a$); keys and values are unit vectors.
    """)
    return


@app.cell
def _(math, pd, scalar_gated_chunkwise, torch):
    memory_decays = [1.0, 0.99, 0.95, 0.9, 0.8]
    _g = torch.Generator().manual_seed(20)
    _B, _T, _d, _H = 512, 200, 16, len(memory_decays)
    _k = torch.nn.functional.normalize(torch.randn(_B, 1, _T, _d, generator=_g), dim=-1).expand(-1, _H, -1, -1).contiguous()
    _v = torch.nn.functional.normalize(torch.randn(_B, 1, _T, _d, generator=_g), dim=-1).expand(-1, _H, -1, -1).contiguous()
    _q = _k[:, :, :1].expand(-1, -1, _T, -1).contiguous()  # every step reads with the first key
    _log_decay = torch.tensor(memory_decays).log()[None, :, None].expand(_B, -1, _T).contiguous()
    _o = scalar_gated_chunkwise(_q, _k, _v, _log_decay)  # (B, H, T, d)
    readback = (_o * _v[:, :, :1]).sum(-1).mean(0)  # (H, T): how much of v_0 comes back at step t

    half_lives = pd.DataFrame(
        [
            {
                "a": _a,
                "half-life ln2/-ln a": math.log(2) / -math.log(_a),
                "measured: first t with c_t < 1/2": int((readback[_h] < 0.5).nonzero()[0]),
            }
            for _h, _a in enumerate(memory_decays)
            if _a < 1
        ]
    )
    assert readback[0, 100:].mean() > 0.9, (  # no decay: the first pair is never forgotten (only drowned, see below)
        f"expected the undecayed memory to keep returning v_0 (c_t > 0.9), measured mean {readback[0, 100:].mean():.3f}"
    )
    for _a, _predicted, _measured in zip(half_lives.a, half_lives["half-life ln2/-ln a"], half_lives["measured: first t with c_t < 1/2"]):
        # the measured half-life is ln2 / -ln a, rounded up to the next whole step
        assert 0 <= _measured - _predicted <= 1, (
            f"expected the measured half-life for a = {_a} at most one step above ln2 / -ln a = {_predicted:.2f}, measured {_measured}"
        )
    half_lives.round({"half-life ln2/-ln a": 1})
    return half_lives, memory_decays, readback


@app.cell
def _(alt, memory_decays, pd, readback):
    _curves = pd.DataFrame(
        [{"a": str(_a), "t": _t, "measured": readback[_h, _t].item(), "a^t": _a**_t} for _h, _a in enumerate(memory_decays) for _t in range(0, 200, 2)]
    )
    _base = alt.Chart(_curves).encode(
        x=alt.X("t:Q", title="steps since the pair was stored"),
        color=alt.Color("a:N", sort=[str(_a) for _a in memory_decays], title="decay a"),
    )
    alt.layer(
        _base.mark_line().encode(y=alt.Y("measured:Q", title="c_t: fraction of v_0 read back"), tooltip=["a:N", "t:Q", alt.Tooltip("measured:Q", format=".3f")]),
        _base.mark_line(strokeDash=[4, 3], opacity=0.7).encode(y="a^t:Q"),
        title="Reading the first pair back (solid: mean of 512 sequences; dashed: a^t)",
    ).properties(width=420, height=260)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The measured step is a whole number, the first one past the half-life, so it sits up to one
    step above $\ln 2 / (-\ln a)$. The measured curves follow $a^t$: a fixed decay is an exponential
    forgetting curve. Across decays,
    the memory length grows like $1/(1 - a)$, so the last few hundredths below 1 are where all the
    range is: from $a = 0.9$ to $0.99$ to $0.999$ the half-life goes from 7 to 69 to 693 steps.
    """)
    return


@app.cell
def _(alt, half_lives, math, pd):
    _quoted = {_a: round(math.log(2) / -math.log(_a)) for _a in (0.9, 0.99, 0.999)}
    assert _quoted == {0.9: 7, 0.99: 69, 0.999: 693}, f"expected half-lives of 7, 69 and 693 steps, computed {_quoted}"
    _grid = pd.DataFrame({"a": [1 - 10 ** (-_e / 8) for _e in range(3, 25)]}).assign(**{"half-life": lambda d: math.log(2) / -d.a.apply(math.log)})
    _measured = half_lives.rename(columns={"measured: first t with c_t < 1/2": "half-life"})
    alt.layer(
        alt.Chart(_grid).mark_line().encode(
            x=alt.X("one_minus_a:Q", scale=alt.Scale(type="log"), title="1 - a"),
            y=alt.Y("half-life:Q", scale=alt.Scale(type="log"), title="half-life (steps)"),
        ).transform_calculate(one_minus_a="1 - datum.a"),
        alt.Chart(_measured).mark_point(filled=True, size=70, color="#d62728").encode(
            x="one_minus_a:Q", y="half-life:Q", tooltip=["a:Q", "half-life:Q"]
        ).transform_calculate(one_minus_a="1 - datum.a"),
        title="Memory length vs decay (line: ln2 / -ln a; points: measured above)",
    ).properties(width=420, height=260)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **What forgetting buys.** Chapter 1's memory had a capacity problem: reading the pair just
    written returns it plus the crosstalk of *every* earlier pair, which grows like
    $\sqrt{(N-1)/D_k}$ after $N$ pairs. With a decay, the pair $m$ steps back enters that crosstalk
    with weight $a^m$, so its size is about

    $$
    \sqrt{\frac{1}{D_k}\sum_{m=1}^{N-1} a^{2m}} \;\le\; \sqrt{\frac{a^2}{D_k\,(1 - a^2)}},
    $$

    bounded however many pairs are stored. Measure it with $D_k = 16$: store $N$ random pairs
    (unit keys, Gaussian values) and read the most recent one back, for $a = 1, 0.9, 0.5$. Setting
    $q_t = k_t$ does this for every $N$ in one pass: $o_t = S_t^\top k_t$ is the read-back of the
    newest pair after $t + 1$ pairs.
    """)
    return


@app.cell
def _(alt, math, pd, scalar_gated_chunkwise, torch):
    recall_decays = [1.0, 0.9, 0.5]


    def recall_errors(lag, N=256, d=16, sequences=64, seed=21):
        """Relative error |o_t - v_{t-lag}| / |v_{t-lag}| of reading the pair stored `lag` steps before t,
        for each decay in recall_decays (one head each) and N stored pairs; (len(recall_decays), N - lag), mean over sequences."""
        g = torch.Generator().manual_seed(seed)
        H = len(recall_decays)
        k = torch.nn.functional.normalize(torch.randn(sequences, 1, N, d, generator=g), dim=-1).expand(-1, H, -1, -1).contiguous()
        v = torch.randn(sequences, 1, N, d, generator=g).expand(-1, H, -1, -1).contiguous()
        q = torch.cat([torch.zeros_like(k[:, :, :lag]), k[:, :, : N - lag]], dim=2)  # q_t = k_{t - lag}
        log_decay = torch.tensor(recall_decays).log()[None, :, None].expand(sequences, -1, N).contiguous()
        o = scalar_gated_chunkwise(q, k, v, log_decay)[:, :, lag:]
        return ((o - v[:, :, : N - lag]).norm(dim=-1) / v[:, :, : N - lag].norm(dim=-1)).mean(0)


    newest = recall_errors(lag=0)  # (3, 256): column n is the error after n + 1 pairs
    recall_curves = pd.DataFrame(
        [
            {"a": str(_a), "pairs stored N": _n + 1, "measured": newest[_h, _n].item(),
             "theory": math.sqrt(sum(_a ** (2 * _m) for _m in range(1, _n + 1)) / 16)}
            for _h, _a in enumerate(recall_decays)
            for _n in range(256)
        ]
    )
    assert abs(newest[0, -1] - 4) < 0.5, (  # no decay: 256 pairs in 16 dimensions, the crosstalk is ~4x the value
        f"expected the undecayed memory's error after 256 pairs near sqrt(255/16) = 4, measured {newest[0, -1]:.2f}"
    )
    assert newest[1, -1] < 1.2 * newest[1, 63], (  # a = 0.9: the error has stopped growing by N = 64 ...
        f"expected a = 0.9's error to stop growing by N = 64, measured {newest[1, 63]:.3f} at 64 and {newest[1, -1]:.3f} at 256"
    )
    assert newest[2, -1] < newest[1, -1] < newest[0, -1] / 4, (  # ... and the faster the decay, the lower it stays
        f"expected the error to fall with faster decay, measured {newest[:, -1].tolist()} for a = {recall_decays}"
    )
    for _h, _level in [(1, 0.5), (2, 0.15)]:  # the levels quoted below
        assert abs(newest[_h, -1] - _level) < _level / 5, (
            f"expected the error for a = {recall_decays[_h]} to level off near {_level}, measured {newest[_h, -1]:.3f}"
        )
    _base = alt.Chart(recall_curves).encode(
        x=alt.X("pairs stored N:Q", scale=alt.Scale(type="log", base=2), axis=alt.Axis(format="d")),
        color=alt.Color("a:N", sort=[str(_a) for _a in recall_decays], title="decay a"),
    )
    alt.layer(
        _base.mark_line().encode(y=alt.Y("measured:Q", title="recall error of the newest pair"), tooltip=["a:N", "pairs stored N:Q", alt.Tooltip("measured:Q", format=".3f")]),
        _base.mark_line(strokeDash=[4, 3], opacity=0.7).encode(y="theory:Q"),
        title="Recall of the most recent pair, D_k = 16 (dashed: the crosstalk estimate)",
    ).properties(width=420, height=260)
    return newest, recall_decays, recall_errors


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Without decay the error keeps climbing; with $a = 0.9$ it levels off near 0.5, with $a = 0.5$
    near 0.15. The price is the other side of the same coin: an old pair is not drowned but
    *forgotten*. Read the pair stored 10 steps before, after 256 pairs:
    """)
    return


@app.cell
def _(newest, pd, recall_decays, recall_errors):
    _ten_back = recall_errors(lag=10)
    trade_off = pd.DataFrame(
        {"a": recall_decays, "error, newest pair": newest[:, -1].tolist(), "error, pair 10 steps back": _ten_back[:, -1].tolist()}
    ).set_index("a")
    assert trade_off["error, pair 10 steps back"][0.5] > 0.99, (  # 0.5^10 ~ 0.001: gone
        f"expected a = 0.5 to have forgotten the pair 10 steps back (error > 0.99), measured {trade_off['error, pair 10 steps back'][0.5]:.3f}"
    )
    assert trade_off["error, pair 10 steps back"][0.9] < trade_off["error, pair 10 steps back"][1.0], (  # a = 0.9 still wins here
        f"expected a = 0.9 to recall the pair 10 steps back better than no decay, measured {trade_off['error, pair 10 steps back'].tolist()}"
    )
    trade_off.round(2)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    A fast decay recalls the last few pairs well and nothing older; no decay recalls everything,
    equally badly. Which is right depends on the input, and that is the case for a *data-dependent*
    gate: keep the memory ($a_t \approx 1$) while the context matters, wipe it ($a_t \approx 0$)
    when it stops mattering, as the Mamba-2 mask in section 1 did.

    ## 3. Drag the decay

    The widget below precomputes, for a grid of decays, the $T \times T$ mask $M_{ts} = a^{t-s}$
    and the size of the state, $\lVert S_t \rVert_F$, for 32 random unit keys and Gaussian values.
    Drag **decay** to change $a$ and **step** to move the marked row $t$ (the weights query $t$ gives
    to every earlier key) and the marked point on the norm curve. The norm axis is the same for
    every $a$, with $a = 1$ dashed: without decay the state's norm grows like $\sqrt t$ and never stops;
    with decay it settles near $\sqrt{1/(1 - a^2)}$ times the size of one write (the cell checks
    both, to 25% and 15%, on these 32 pairs).
    """)
    return


@app.cell
def _(DecayExplorer, math, torch):
    _g = torch.Generator().manual_seed(22)
    _k = torch.nn.functional.normalize(torch.randn(32, 8, generator=_g), dim=-1)
    _v = torch.randn(32, 8, generator=_g)
    decay_widget = DecayExplorer.from_kv(_k, _v, decays=[round(1 - 0.05 * _i, 2) for _i in range(11)], title="scalar decay a, one head")
    _norms_by_decay = dict(zip(decay_widget.data["decays"], torch.tensor(decay_widget.data["norms"])))
    _write = _v.norm(dim=-1).pow(2).mean().sqrt()  # the size of one write |k v^T| = |v|, root mean square
    assert _norms_by_decay[1.0][-1] > 2 * _norms_by_decay[0.5][-1], "expected a = 1 to end far above a = 0.5"
    _sqrt_t = _norms_by_decay[1.0][3:] / (_write * torch.arange(4, 33).sqrt())
    assert _sqrt_t.sub(1).abs().max() < 0.25, (
        f"expected the undecayed norm within 25% of sqrt(t) writes from t = 4 on, measured ratios {_sqrt_t.min():.2f} to {_sqrt_t.max():.2f}"
    )
    for _a in (0.9, 0.7, 0.5):
        _settled = _norms_by_decay[_a][-8:].mean() / (_write / math.sqrt(1 - _a**2))
        assert abs(_settled - 1) < 0.15, (
            f"expected the norm for a = {_a} to settle within 15% of sqrt(1 / (1 - a^2)) writes, measured ratio {_settled:.2f}"
        )
    decay_widget
    return (decay_widget,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The same two panels as a chart whose slider works without a running kernel (for instance in the
    published book): the mask is computed in the browser as $a^{t-s}$, the norm curves are the
    widget's precomputed ones.
    """)
    return


@app.cell
def _(alt, decay_widget, pd):
    _decay = alt.param(name="decay", value=0.9, bind=alt.binding_range(min=0.5, max=1.0, step=0.05, name="decay a "))
    _T = decay_widget.T
    _pairs = pd.DataFrame([{"t": _t, "s": _s} for _t in range(_T) for _s in range(_t + 1)])
    _norms = pd.DataFrame(
        [{"a": _a, "t": _t, "norm": _n} for _a, _row in zip(decay_widget.data["decays"], decay_widget.data["norms"]) for _t, _n in enumerate(_row)]
    )
    _mask_chart = alt.Chart(_pairs, title="decay mask a^(t - s)").mark_rect().transform_calculate(
        M="pow(decay, datum.t - datum.s)"
    ).encode(
        x=alt.X("s:O", title="key position s", axis=alt.Axis(values=list(range(0, _T, 8)))),
        y=alt.Y("t:O", title="query position t", axis=alt.Axis(values=list(range(0, _T, 8)))),
        color=alt.Color("M:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="M[t, s]"),
        tooltip=["t:O", "s:O", alt.Tooltip("M:Q", format=".3f")],
    ).properties(width=240, height=240)
    _norm_chart = alt.layer(
        alt.Chart(_norms).transform_filter("datum.a == 1").mark_line(strokeDash=[4, 3], color="gray").encode(
            x=alt.X("t:Q", title="step t", scale=alt.Scale(domain=[0, _T - 1])), y=alt.Y("norm:Q", title="state norm ||S_t||")
        ),
        alt.Chart(_norms).transform_filter("abs(datum.a - decay) < 0.001").mark_line(point=True).encode(
            x="t:Q", y="norm:Q", tooltip=["a:Q", "t:Q", alt.Tooltip("norm:Q", format=".3f")]
        ),
        title="state norm (dashed: a = 1)",
    ).properties(width=280, height=240)
    alt.hconcat(_mask_chart, _norm_chart).add_params(_decay)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 4. Why the gates live in log space

    The mask multiplies many gates together, and products of numbers below 1 shrink exponentially.
    Take a strong gate, $a = e^{-20} \approx 2 \times 10^{-9}$ (a near-reset, which learned gates do
    produce), for 200 steps. The decay over any *one* step is a perfectly ordinary float32 number.
    But the cumulative product $\prod_{r \le t} a_r = e^{-20 t}$ is below float32's smallest number
    ($1.4 \times 10^{-45}$) once $t > 5$ ($e^{-120}$ at $t = 6$) and is stored as 0; the decay from
    step $s$ to $t$, computed as a ratio of two cumulative products, is then $0/0$:
    """)
    return


@app.cell
def _(math, pd, torch):
    log_a_strong = torch.full((200,), -20.0)  # float32, a = e^-20 at every step
    cumulative_products = log_a_strong.cumsum(0).exp()  # prod_{r <= t} a_r = exp(sum log a)
    naive_decay = cumulative_products[150] / cumulative_products[149]  # the decay over step 150, as a ratio
    log_space_decay = log_a_strong[150:151].sum()  # the same decay as a segment sum of logs: sum_{149 < r <= 150} log a_r
    _smallest = torch.tensor(2.0**-149)  # float32's smallest (subnormal) positive number
    assert _smallest > 0 and _smallest / 2 == 0 and abs(_smallest.item() - 1.4e-45) < 0.01e-45, "expected float32's smallest number 1.4e-45"
    assert abs(math.exp(-20) - 2e-9) < 0.1e-9, f"expected e^-20 ~ 2e-9, computed {math.exp(-20):.2e}"
    assert cumulative_products[4] > 0 and (cumulative_products[5:] == 0).all(), (  # exp(-120) and below: underflow after 5 steps
        f"expected the product to survive 5 steps and underflow to 0 from the 6th, measured {cumulative_products[3:7].tolist()}"
    )
    assert torch.isnan(naive_decay), f"expected the ratio of two underflowed products to be 0/0 = nan, measured {naive_decay.item()}"  # 0 / 0
    assert torch.isfinite(log_space_decay) and math.isclose(log_space_decay.exp().item(), math.exp(-20), rel_tol=1e-6), (
        f"expected the segment sum to give the one-step decay e^-20, measured {log_space_decay.exp().item():.6e}"
    )
    pd.Series(
        {
            "prod of 200 gates, exp(sum log a)": cumulative_products[-1].item(),
            "decay over one step, ratio of products": naive_decay.item(),
            "decay over one step, exp(segment sum of logs)": log_space_decay.exp().item(),
        }
    ).to_frame("float32 value")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    So the mask is formed from log decays: the log of a product is a sum, and a sum of negative
    numbers is fine at any length. Section 1 did that with $M_{ts} = \exp(b_t - b_s)$. One trap is
    left, and lablib's references and kernel avoid it too. $b_t - b_s$ subtracts two cumulative
    sums; after one very strong gate (say $\log a = -1000$) both are near $-1000$, where float32's
    spacing is $6 \times 10^{-5}$, and the difference of two such numbers is off by about that much.
    The decays *after* the reset, which involve only mild gates, come out off by up to about that
    spacing, relative, and the outputs miss our $10^{-5}$ bar:
    """)
    return


@app.cell
def _(
    decay_masked_attention,
    max_scaled_error,
    pd,
    random_qkv,
    scalar_gated_chunkwise,
    scalar_gated_recurrent,
    torch,
):
    q_reset, k_reset, v_reset = random_qkv(64, B=1, H=2, d_k=16, seed=40)
    _g = torch.Generator().manual_seed(41)
    log_decay_reset = torch.nn.functional.logsigmoid(torch.randn(1, 2, 64, generator=_g) + 4)  # mild gates ...
    log_decay_reset[..., 10] = -1000.0  # ... and one near-reset at step 10
    _truth = scalar_gated_recurrent(q_reset, k_reset, v_reset, log_decay_reset)
    reset_errors = pd.Series(
        {
            "parallel, exp(b_t - b_s) (section 1)": max_scaled_error(decay_masked_attention(q_reset, k_reset, v_reset, log_decay_reset), _truth),
            "lablib chunkwise, segment sums": max_scaled_error(scalar_gated_chunkwise(q_reset, k_reset, v_reset, log_decay_reset, chunk_size=16), _truth),
        }
    ).to_frame("max error vs the recurrence")
    assert reset_errors.iloc[0, 0] > 1e-5 > reset_errors.iloc[1, 0], (  # the difference of cumulative sums misses the bar
        f"expected exp(b_t - b_s) to miss the 1e-5 bar and segment sums to meet it, measured {reset_errors.iloc[:, 0].tolist()}"
    )
    _spacing = (torch.nextafter(torch.tensor(-1000.0), torch.tensor(0.0)) + 1000).item()  # float32's spacing near -1000
    assert abs(_spacing - 6e-5) < 0.2e-5, f"expected float32's spacing near 1000 to be ~6e-5, measured {_spacing:.2e}"
    _b32, _b64 = log_decay_reset.cumsum(-1), log_decay_reset.double().cumsum(-1)
    _after_reset = torch.ones(64, 64, dtype=torch.bool).tril() & (torch.arange(64) >= 10)  # t >= s >= 10: mild gates only
    _exact_M = (_b64[..., :, None] - _b64[..., None, :]).exp()
    _decay_error = ((_b32[..., :, None] - _b32[..., None, :]).exp().double() - _exact_M).abs().div(_exact_M)[..., _after_reset].max().item()
    assert _spacing / 2 < _decay_error < 2 * _spacing, (
        f"expected the decays after the reset off by about float32's spacing ({_spacing:.1e}) relative, measured up to {_decay_error:.1e}"
    )
    reset_errors.map("{:.1e}".format)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The fix is to never subtract: form $\log M_{ts} = \sum_{s < r \le t} \log a_r$ directly, as a
    *segment sum*, which adds only the gates that actually lie between $s$ and $t$. Build a
    $T \times T$ matrix whose entry $(r, s)$ is $\log a_r$ below the diagonal and 0 elsewhere;
    its cumulative sum down each column is exactly the segment sums (the "segsum" of the Mamba-2
    reference code). Then mask the upper triangle to $-\infty$ and exponentiate: nothing positive is
    ever exponentiated, nothing is subtracted, every entry is in $[0, 1]$. This is lablib's
    `_causal_decays`, used by `scalar_gated_chunkwise`, `gla_chunkwise` and, tile by tile, by the
    Triton kernel:
    """)
    return


@app.cell
def _(Code, causal_decays, inspect):
    Code(inspect.getsource(causal_decays), language="python")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 5. The kernel

    `chunk_scalar_gated_attention(q, k, v, log_decay, output_final_state=True, chunk_size=16)` is
    chapter 2's chunkwise kernel with the gate added: per chunk it builds the decay tile from segment
    sums as above, scales the incoming state's contribution by $\exp(b_i)$, and decays the state to
    the chunk's end. Its backward pass also returns the gradient of the log gates (its module
    docstring derives it). We check all of it against `scalar_gated_recurrent` with autograd, on
    $T = 37$ (two chunks of 16 and a ragged one) and $D = 16$, for mild gates and for strong ones
    (log gates down to $-20$), through one loss that reaches both the outputs and the final state.
    """)
    return


@app.cell
def _(
    DEVICE,
    chunk_scalar_gated_attention,
    max_scaled_error,
    pd,
    random_qkv,
    scalar_gated_recurrent,
    torch,
):
    def gated_outputs_and_gradients(attention, q, k, v, log_decay, probe_o, probe_s, device):
        """attention on copies of q, k, v, log_decay on device: output, final state and the gradients of all four."""
        leaves = [x.detach().to(device).requires_grad_() for x in (q, k, v, log_decay)]
        o, final = attention(*leaves)
        loss = (o * probe_o.to(device)).sum() + (final * probe_s.to(device)).sum()
        return [o, final, *torch.autograd.grad(loss, leaves)]


    def triton_gated(q, k, v, log_decay):
        return chunk_scalar_gated_attention(q, k, v, log_decay, output_final_state=True, chunk_size=16)


    def torch_gated(q, k, v, log_decay):
        return scalar_gated_recurrent(q, k, v, log_decay, return_state=True)


    q_kern, k_kern, v_kern = random_qkv(37, B=1, H=2, d_k=16, seed=50)
    _g = torch.Generator().manual_seed(51)
    kernel_gates = {
        "mild": torch.nn.functional.logsigmoid(torch.randn(1, 2, 37, generator=_g) + 3),
        "strong": -20 * torch.rand(1, 2, 37, generator=_g),
    }
    kernel_probes = torch.randn(1, 2, 37, 16, generator=_g), torch.randn(1, 2, 16, 16, generator=_g)
    gated_kernel_rows = []
    for _name, _log_decay in kernel_gates.items():
        _ours = gated_outputs_and_gradients(triton_gated, q_kern, k_kern, v_kern, _log_decay, *kernel_probes, DEVICE)
        _reference = gated_outputs_and_gradients(torch_gated, q_kern, k_kern, v_kern, _log_decay, *kernel_probes, "cpu")
        for _tensor, _a, _b in zip(["o", "final state", "dq", "dk", "dv", "d log_decay"], _ours, _reference):
            gated_kernel_rows.append({"gates": _name, "tensor": _tensor, "max_error": max_scaled_error(_a.cpu(), _b)})
    gated_kernel_check = pd.DataFrame(gated_kernel_rows)
    assert gated_kernel_check.max_error.max() < 1e-5, (
        f"expected the gated kernel within 1e-5 of the recurrence in every tensor, measured worst {gated_kernel_check.max_error.max():.1e}"
    )
    gated_kernel_check.pivot_table(index="tensor", columns="gates", values="max_error", sort=False).map("{:.0e}".format)
    return (
        gated_kernel_check,
        gated_outputs_and_gradients,
        k_kern,
        kernel_probes,
        q_kern,
        v_kern,
    )


@app.cell
def _(gated_kernel_check, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        print(f"{len(gated_kernel_check)} comparisons (T=37, chunk 16, D=16, mild and strong gates: outputs, final state, "
              f"four gradients) against the recurrence")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    GLA's vector gate has its own kernel, `lablib.kernels.gla.chunk_gla`. Its new difficulty is
    that the decay no longer factors out of $QK^\top$: it builds each chunk's score matrix from
    $16 \times 16$ blocks, decaying queries and keys towards a reference row between the two blocks
    so that every exponent stays $\le 0$, and computes the diagonal blocks exactly (its module
    docstring explains the construction). The same check, with a gate per key dimension and a chunk
    of 32 so that both kinds of block occur:
    """)
    return


@app.cell
def _(
    DEVICE,
    chunk_gla,
    gated_outputs_and_gradients,
    gla_recurrent,
    k_kern,
    kernel_probes,
    max_scaled_error,
    pd,
    q_kern,
    torch,
    v_kern,
):
    def triton_gla(q, k, v, log_alpha):
        return chunk_gla(q, k, v, log_alpha, output_final_state=True, chunk_size=32)


    def torch_gla(q, k, v, log_alpha):
        return gla_recurrent(q, k, v, log_alpha, return_state=True)


    _g = torch.Generator().manual_seed(52)
    gla_kernel_gates = {
        "mild": torch.nn.functional.logsigmoid(torch.randn(1, 2, 37, 16, generator=_g) + 3),
        "strong": -20 * torch.rand(1, 2, 37, 16, generator=_g),
    }
    gla_kernel_rows = []
    for _name, _log_alpha in gla_kernel_gates.items():
        _ours = gated_outputs_and_gradients(triton_gla, q_kern, k_kern, v_kern, _log_alpha, *kernel_probes, DEVICE)
        _reference = gated_outputs_and_gradients(torch_gla, q_kern, k_kern, v_kern, _log_alpha, *kernel_probes, "cpu")
        for _tensor, _a, _b in zip(["o", "final state", "dq", "dk", "dv", "d log_alpha"], _ours, _reference):
            gla_kernel_rows.append({"gates": _name, "tensor": _tensor, "max_error": max_scaled_error(_a.cpu(), _b)})
    gla_kernel_check = pd.DataFrame(gla_kernel_rows)
    assert gla_kernel_check.max_error.max() < 1e-5, (
        f"expected the GLA kernel within 1e-5 of its recurrence in every tensor, measured worst {gla_kernel_check.max_error.max():.1e}"
    )
    gla_kernel_check.pivot_table(index="tensor", columns="gates", values="max_error", sort=False).map("{:.0e}".format)
    return (gla_kernel_check,)


@app.cell
def _(gla_kernel_check, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        print(f"GLA kernel: {len(gla_kernel_check)} comparisons (T=37, chunk 32, D=16, mild and strong vector gates: outputs, "
              f"final state, four gradients) against the recurrence")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    On this machine the kernels ran in Triton's interpreter unless a GPU was found, so these
    numbers say that they are *correct*, not that they are fast. We have not yet measured the gated kernel's
    speed on a GPU, and quote no GPU timings here; `python -m lablib.bench attention` on a GPU
    machine is where they will come from. The gate adds little work to chapter 2's kernel (a
    $C \times C$ scan and elementwise scalings per chunk, next to four $C \times D$ matmuls), so it
    should run at nearly the same speed; that is a prediction, not a measurement.

    ## 6. Exercises

    Each exercise has a check that runs your function on random inputs against the library. The
    solutions are filled in so that the chapter runs top to bottom: delete a function's body, write
    your own, and run the check.

    **Exercise 1 (one gated step).** Write one step of the scalar-gated recurrence for one head,
    `step(S, q_t, k_t, v_t, log_a_t) -> (o_t, S)`: decay the state by $a_t = \exp(\log a_t)$, write
    $k_t v_t^\top$, read with $q_t$. Only the *old* state is decayed.
    """)
    return


@app.cell
def _(check_gated_step, torch):
    def my_gated_step(S, q_t, k_t, v_t, log_a_t):
        S = log_a_t.exp() * S + torch.outer(k_t, v_t)  # forget, then write
        return q_t @ S, S  # read: o_t = S_t^T q_t


    # NBVAL_CHECK_OUTPUT
    check_gated_step(my_gated_step)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Exercise 2 (the mask, in log space).** Given log gates `log_a` of shape `(T,)`, return the
    $T \times T$ decay mask $M_{ts} = \prod_{s < r \le t} a_r$ ($s \le t$), 0 above the diagonal. The
    check includes gates of $-30$ (ratios of products are $0/0$) and one near-reset of $-1000$
    (differences of cumulative sums lose digits): use segment sums.
    """)
    return


@app.cell
def _(check_decay_mask, torch):
    def my_decay_mask(log_a):
        T = log_a.shape[0]
        below = torch.ones(T, T, dtype=torch.bool).tril(-1)  # r > s
        segsum = log_a[:, None].expand(T, T).masked_fill(~below, 0.0).cumsum(0)  # [t, s] = sum_{s < r <= t} log a_r
        return segsum.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).exp()


    # NBVAL_CHECK_OUTPUT
    check_decay_mask(my_decay_mask)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Exercise 3 (half-life).** Return the half-life of a fixed decay $a \in (0, 1)$: the number of
    steps $n$, not necessarily whole, after which a stored pair has half its weight.
    """)
    return


@app.cell
def _(check_half_life, math):
    def my_half_life(a):
        return math.log(2) / -math.log(a)  # a^n = 1/2


    # NBVAL_CHECK_OUTPUT
    check_half_life(my_half_life)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Summary

    * Gated linear attention is one recurrence, $S_t = G_t \circ S_{t-1} + k_t v_t^\top$: no gate,
      a fixed decay (RetNet), a data-dependent scalar (Mamba-2), a data-dependent vector over the key
      dimensions (GLA).
    * Unrolled, a scalar gate is attention with a decay mask,
      $o_t = \sum_{s \le t} \big(\prod_{r=s+1}^{t} a_r\big)(q_t^\top k_s)\, v_s$; the parallel, recurrent and
      chunkwise forms agree to $10^{-5}$, and GLA with equal gates is the scalar gate.
    * A fixed decay forgets exponentially, with half-life $\ln 2 / (-\ln a)$. Forgetting bounds the
      crosstalk, so recent pairs stay readable however long the sequence; the price is that old
      pairs are gone. A data-dependent gate chooses when to pay it.
    * Products of gates underflow and their ratios become $0/0$: decays are formed in log space, as
      segment sums (never differences of cumulative sums), masked to $-\infty$ before the exponential.
    * The Triton kernels for the scalar gate and for GLA match their recurrences in outputs, state
      and gradients, the gates' included. Their GPU speed has not been measured yet.
    """)
    return


if __name__ == "__main__":
    app.run()
