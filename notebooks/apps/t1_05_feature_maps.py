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
    # What replaces softmax: feature maps

    Softmax attention weighs key $j$ for query $i$ by $\exp(q_i \cdot k_j / \sqrt{D})$, normalized over
    the keys. That similarity is a *kernel*: $\exp(q \cdot k) = \phi(q) \cdot \phi(k)$ for a feature map
    $\phi$ into an infinite-dimensional space. Linear attention (chapter 1) keeps the formula and swaps
    the kernel for a finite map $\phi: \mathbb{R}^D \to \mathbb{R}^F$, which is what lets the sum over keys
    collapse into a running $F \times D_v$ state. Which $\phi$? Chapter 1 used $\mathrm{elu}(x) + 1$
    because it is positive. This chapter measures five families against softmax itself:

    | map | paper | $F$ for $D = 16$ | what it is |
    |---|---|---|---|
    | $\mathrm{elu}+1$, ReLU | Katharopoulos et al. 2020; many | 16 | any positive function |
    | cosFormer | Qin et al. 2022 | 32 | ReLU, re-weighted by $\cos(\pi (i - j) / 2M)$: a locality bias |
    | Taylor | Based, Arora et al. 2024 | 273 | $\exp$ to second order: $1 + x + x^2/2$ |
    | Performer (FAVOR+) | Choromanski et al. 2021 | $m$ | random features whose dot product *estimates* $\exp(q \cdot k)$ without bias |
    | Hedgehog | Zhang et al. 2024 | 32 | a learned map $[\mathrm{softmax}(Wx), \mathrm{softmax}(-Wx)]$, trained to mimic softmax |

    By the end you will have

    * checked Based's Taylor identity to float64 precision, and seen where $1 + x + x^2/2$ stops looking
      like $e^x$;
    * checked cosFormer's cosine identity and continued a sequence in pieces with absolute positions;
    * measured that Performer's estimate is unbiased and that its error falls as $m^{-1/2}$ (fitted),
      and seen how the constant in front explodes for spiky attention;
    * measured, for every map, the two properties the Hedgehog paper says simple maps lack: low
      attention entropy ("spikiness") and monotonicity in $q \cdot k$;
    * trained a Hedgehog map in a few seconds to mimic a softmax head, and compared attention matrices
      side by side (with a dropdown that works in the static book);
    * measured each map's decoding state in a `LinearAttention` layer.

    Everything lives in `lablib.attention.feature_maps` (the maps and attention weights),
    `lablib.attention.feature_map_study` (the measurements) and `lablib.viz.feature_maps` (the charts).
    """)
    return


@app.cell
def _():
    import math
    import time

    import numpy as np
    import pandas as pd
    import torch
    import torch.nn.functional as F

    import lablib.viz  # noqa: F401  (charts that render offline in JupyterLab, the book and marimo)
    from lablib import ops
    from lablib.attention.feature_map_study import (
        attention_entropy,
        compare_feature_maps,
        loglog_slope,
        performer_errors,
        vocab_head,
    )
    from lablib.attention.feature_maps import (
        CosFormerFeatureMap,
        HedgehogFeatureMap,
        PerformerFeatureMap,
        attention_cross_entropy,
        distill_hedgehog,
        linear_attention_weights,
        softmax_attention_weights,
        taylor,
    )
    from lablib.exercises.feature_maps import (
        check_cosformer_map,
        check_linear_attention_weights,
        check_positive_random_features,
    )
    from lablib.layers import LinearAttention, SoftmaxAttention
    from lablib.viz.feature_maps import (
        attention_heatmaps,
        attention_matrix_explorer,
        map_property_chart,
        performer_error_chart,
    )

    torch.set_num_threads(1)  # small tensors: one thread is as fast and the numbers do not depend on the core count
    chapter_start = time.perf_counter()
    return (
        CosFormerFeatureMap,
        F,
        HedgehogFeatureMap,
        LinearAttention,
        PerformerFeatureMap,
        SoftmaxAttention,
        attention_cross_entropy,
        attention_entropy,
        attention_heatmaps,
        attention_matrix_explorer,
        chapter_start,
        check_cosformer_map,
        check_linear_attention_weights,
        check_positive_random_features,
        compare_feature_maps,
        distill_hedgehog,
        linear_attention_weights,
        loglog_slope,
        map_property_chart,
        math,
        np,
        ops,
        pd,
        performer_error_chart,
        performer_errors,
        softmax_attention_weights,
        taylor,
        time,
        torch,
        vocab_head,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. A softmax head to imitate

    Random Gaussian queries and keys are a poor stand-in for a trained model: a real head sees a
    finite vocabulary of token vectors, and its scores spread widely, so its attention is *spiky*. Our
    head reads sequences of 64 tokens drawn from 32 token ids, each with a random embedding, through
    fixed random projections $W_q, W_k$ (2 heads, $D = 16$); a `gain` sets the spread of the scores
    $q \cdot k / \sqrt{D}$ (`lablib.attention.feature_map_study.vocab_head`). Eight sequences train
    what needs training, eight others test.
    """)
    return


@app.cell
def _(
    attention_entropy,
    math,
    mo,
    softmax_attention_weights,
    torch,
    vocab_head,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        D, T, H = 16, 64, 2
        GAIN = 1.4  # the spiky head; section 4 also uses 0.35 and 0.7
        q_train, k_train = vocab_head(8, T, n_heads=H, head_dim=D, gain=GAIN, data_seed=1)
        q_test, k_test = vocab_head(8, T, n_heads=H, head_dim=D, gain=GAIN, data_seed=2)
        v_test = torch.randn(8, H, T, D, generator=torch.Generator().manual_seed(3))
        softmax_test = softmax_attention_weights(q_test, k_test, causal=False)  # (8, H, T, T), rows sum to 1
        score_spread = (q_test @ k_test.transpose(-1, -2) / math.sqrt(D)).std().item()
        softmax_entropy = attention_entropy(softmax_test)
        assert softmax_entropy < math.log(T) - 1, f"expected a spiky head (entropy well below log T = {math.log(T):.2f}), measured {softmax_entropy:.2f}"
        # NBVAL_CHECK_OUTPUT
        print(f"scores q.k/sqrt(D): sd {score_spread:.2f}; softmax attention entropy {softmax_entropy:.2f} nats "
              f"(uniform over {T} keys: {math.log(T):.2f}, i.e. about {math.exp(softmax_entropy):.0f} keys' worth of weight per query)")
    return (
        D,
        GAIN,
        H,
        T,
        k_test,
        k_train,
        q_test,
        q_train,
        softmax_entropy,
        v_test,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. Based's Taylor map: $e^x$ to second order

    With $x = q \cdot k / \sqrt{D}$, $e^x \approx 1 + x + x^2/2$, and every term is a dot product of
    features: $1 = 1 \cdot 1$, $x = (q / D^{1/4}) \cdot (k / D^{1/4})$, and
    $x^2 = (q \cdot k)^2 / D = \mathrm{vec}(qq^\top) \cdot \mathrm{vec}(kk^\top) / D$. So

    $$
    \phi(x) = \Big[\,1,\; \frac{x}{D^{1/4}},\; \frac{\mathrm{vec}(x x^\top)}{\sqrt{2}\sqrt{D}}\,\Big] \in \mathbb{R}^{1 + D + D^2},
    \qquad \phi(q)\cdot\phi(k) = 1 + \frac{q\cdot k}{\sqrt D} + \frac{(q \cdot k)^2}{2D},
    $$

    an identity, which float64 confirms to rounding:
    """)
    return


@app.cell
def _(D, k_test, math, mo, q_test, taylor):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _q, _k = q_test[0].double(), k_test[0].double()
        _x = _q @ _k.transpose(-1, -2) / math.sqrt(D)
        taylor_identity_error = ((taylor(_q) @ taylor(_k).transpose(-1, -2)) - (1 + _x + _x**2 / 2)).abs().max().item()
        assert taylor_identity_error < 1e-12, f"expected the Taylor identity to hold to 1e-12 in float64, measured {taylor_identity_error:.1e}"
        below_minus_one = (_x < -1).double().mean().item()
        print(f"Taylor: {taylor(_q).shape[-1]} features for D = {D}; identity holds to {taylor_identity_error:.0e}; "
              f"1 + x + x^2/2 vs e^x at x = -2: {1 - 2 + 2:.2f} vs {math.exp(-2):.2f}, at x = 2: {1 + 2 + 2:.2f} vs {math.exp(2):.2f}; "
              f"{below_minus_one:.0%} of this head's scores are below -1")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The quadratic is a good copy of $e^x$ near 0 and a poor one elsewhere: it is never below $1/2$
    (so the normalizer never vanishes), but it *rises again* for $x < -1$, where $e^x$ keeps falling. A
    key the query should ignore gets weight. Section 5 measures what that does to the ranking of keys.
    The price is the feature dimension: $1 + D + D^2$, which is why Based projects keys down to
    $D = 16$ first.

    ## 3. cosFormer: ReLU and a cosine

    cosFormer keeps the features non-negative with a ReLU and adds a locality bias that decomposes.
    For the token at position $i$ (of at most $M$),

    $$
    \phi(x_i) = \big[\mathrm{relu}(x_i) \sin\tfrac{\pi i}{2M},\; \mathrm{relu}(x_i)\cos\tfrac{\pi i}{2M}\big],
    \qquad \phi(q_i)\cdot\phi(k_j) = \mathrm{relu}(q_i)\cdot\mathrm{relu}(k_j)\,\cos\tfrac{\pi (i-j)}{2M},
    $$

    since $\sin a \sin b + \cos a \cos b = \cos(a - b)$. The weight peaks at $i = j$ and falls with the
    distance, yet it is still one dot product of $2D$ features, so the state form survives. The catch:
    the map needs each token's **absolute position**. Applied to a continuation on its own it would
    restart at 0, so `CosFormerFeatureMap.at(offset)` places a piece.
    """)
    return


@app.cell
def _(CosFormerFeatureMap, F, T, k_test, math, mo, ops, q_test, torch, v_test):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        cos_map = CosFormerFeatureMap(T)  # M = T
        _q, _k = q_test[:1].double(), k_test[:1].double()
        _i = torch.arange(T, dtype=torch.float64)
        _rhs = (F.relu(_q) @ F.relu(_k).transpose(-1, -2)) * torch.cos(math.pi * (_i[:, None] - _i[None, :]) / (2 * T))
        cos_identity_error = ((cos_map(_q) @ cos_map(_k).transpose(-1, -2)) - _rhs).abs().max().item()
        assert cos_identity_error < 1e-12, f"expected the cosine identity to 1e-12, measured {cos_identity_error:.1e}"

        _q, _k, _v = q_test[:1], k_test[:1], v_test[:1]
        _whole = ops.linear_attention(_q, _k, _v, feature_map=cos_map, normalize=True).out
        _first = ops.linear_attention(_q[:, :, :40], _k[:, :, :40], _v[:, :, :40], feature_map=cos_map.at(0), normalize=True,
                                      output_final_state=True)
        _second = ops.linear_attention(_q[:, :, 40:], _k[:, :, 40:], _v[:, :, 40:], feature_map=cos_map.at(40), normalize=True,
                                       initial_state=_first.final_state)
        _restart = ops.linear_attention(_q[:, :, 40:], _k[:, :, 40:], _v[:, :, 40:], feature_map=cos_map, normalize=True,
                                        initial_state=_first.final_state)
        pieces_error = (torch.cat([_first.out, _second.out], 2) - _whole).abs().max().item()
        restart_error = (_restart.out - _whole[:, :, 40:]).abs().max().item()
        assert pieces_error < 1e-5 and restart_error > 100 * pieces_error, (
            f"expected pieces with offsets to match one call (1e-5) and a restart to differ, measured {pieces_error:.1e} and {restart_error:.1e}")
        print(f"cosine identity holds to {cos_identity_error:.0e}; tokens 0-39 then 40-63 with offsets: max difference "
              f"{pieces_error:.0e}; the second piece restarted at position 0: {restart_error:.2f}")
    return (cos_map,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    `lablib.layers.LinearAttention` does exactly this: it calls a map that has an `at` method at the
    position where its state stopped, and keeps the count of tokens seen in the state, so its
    one-token `step` decoding with cosFormer equals the full forward (tested in `tests/test_feature_maps.py`).

    ## 4. Performer: an unbiased estimate of $\exp(q \cdot k)$

    For $w \sim \mathcal{N}(0, I)$, $\mathbb{E}[e^{w \cdot x}] = e^{|x|^2/2}$, hence
    $\mathbb{E}_w\big[e^{w\cdot q - |q|^2/2}\, e^{w \cdot k - |k|^2/2}\big] = e^{|q+k|^2/2 - |q|^2/2 - |k|^2/2} = e^{q\cdot k}$.
    Averaging over $m$ draws $w_1, \dots, w_m$ (the rows of $W$),

    $$
    \phi(x) = \frac{1}{\sqrt m}\exp\!\big(Wx - |x|^2/2\big) \in \mathbb{R}^m_{>0}, \qquad
    \mathbb{E}\,[\phi(q)\cdot\phi(k)] = e^{q\cdot k},
    $$

    with positive features (so normalizers stay positive, unlike the $\sin/\cos$ random Fourier
    features that came before). FAVOR+ draws the rows in blocks of $D$ orthogonal directions, each
    rescaled by a $\chi_D$ length, which keeps every row Gaussian and lowers the variance.
    `PerformerFeatureMap(D, m, scale=D**-0.25)` estimates softmax's $\exp(q\cdot k/\sqrt D)$. First the
    mean over 2,000 draws:
    """)
    return


@app.cell
def _(D, PerformerFeatureMap, math, mo, torch, vocab_head):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _q, _k = vocab_head(1, 2, n_heads=1, head_dim=D, gain=0.35, data_seed=4)  # the flat head of the next cell
        _q, _k = _q[0, 0, 0].double(), _k[0, 0, 1].double()
        exact_kernel = math.exp(float(_q @ _k) / math.sqrt(D))
        _draws = torch.tensor([float((lambda p: p(_q) @ p(_k))(PerformerFeatureMap(D, 16, seed=_s, scale=D ** -0.25).double()))
                               for _s in range(2000)])
        draw_mean, draw_sem = _draws.mean().item(), _draws.std().item() / math.sqrt(len(_draws))
        assert abs(draw_mean - exact_kernel) < 4 * draw_sem, (
            f"expected the mean of 2,000 draws within 4 standard errors of exp(q.k/sqrt D) = {exact_kernel:.4f}, measured {draw_mean:.4f} +- {draw_sem:.4f}")
        # NBVAL_CHECK_OUTPUT
        print(f"exp(q.k/sqrt D) = {exact_kernel:.4f}; m = 16: one draw ranges {_draws.min():.3f} .. {_draws.max():.3f}, "
              f"the mean of 2,000 draws is {draw_mean:.4f} +- {draw_sem:.4f} (standard error)")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Unbiased, but each draw is far off. With $q' = q/D^{1/4}$ and $k' = k/D^{1/4}$, one feature's
    relative variance is $e^{|q'+k'|^2} - 1$ (i.i.d. rows; orthogonal blocks do a little better), so the
    estimate's is that over $m$: the error falls as $m^{-1/2}$, but the constant grows *exponentially*
    with the norms. Three heads, from nearly uniform attention to the spiky one of
    section 1, 12 seeds at each $m$, the error of the whole causal attention output against exact
    softmax attention (RMS over seeds):
    """)
    return


@app.cell
def _(
    D,
    GAIN,
    H,
    T,
    attention_entropy,
    loglog_slope,
    mo,
    np,
    pd,
    performer_errors,
    softmax_attention_weights,
    torch,
    vocab_head,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        PERFORMER_MS = [16, 32, 64, 128, 256, 512, 1024, 2048]
        _rows = []
        for _gain, _label in [(0.35, "gain 0.35 (flat)"), (0.7, "gain 0.7"), (GAIN, f"gain {GAIN} (spiky, section 1)")]:
            _q, _k = vocab_head(1, T, n_heads=H, head_dim=D, gain=_gain, data_seed=4)
            _v = torch.randn(1, H, T, D, generator=torch.Generator().manual_seed(5))
            _errs = performer_errors(_q, _k, _v, PERFORMER_MS, list(range(12)))
            _entropy = attention_entropy(softmax_attention_weights(_q, _k))
            for _m, _g in _errs.groupby("m"):
                _rows.append({"head": _label, "m": _m, "error": float(np.sqrt((_g.output_error ** 2).mean())),
                              "kernel error": float(np.sqrt((_g.kernel_error ** 2).mean())), "softmax entropy": _entropy})
        performer_frame = pd.DataFrame(_rows)
        flat = performer_frame[performer_frame["head"].str.startswith("gain 0.35")]
        flat_slope, flat_constant = loglog_slope(flat.m, flat.error)
        kernel_slope, _ = loglog_slope(flat.m, flat["kernel error"])
        spiky = performer_frame[performer_frame["head"].str.contains("spiky")]
        assert abs(flat_slope + 0.5) < 0.1, f"expected the output error to fall as m^-1/2 on the flat head, fitted exponent {flat_slope:.3f}"
        assert abs(kernel_slope + 0.5) < 0.1, f"expected the kernel error to fall as m^-1/2, fitted exponent {kernel_slope:.3f}"
        assert spiky.error.min() > 0.5, f"expected Performer far from the spiky head even at m = 2048, measured error {spiky.error.min():.2f}"
        # NBVAL_CHECK_OUTPUT
        print(f"flat head: error ~ {flat_constant:.2f} m^{flat_slope:.3f} (attention output), kernel entries ~ m^{kernel_slope:.3f}; "
              f"at m = 2048 the errors are " + ", ".join(f"{h}: {e:.3f}" for h, e in performer_frame[performer_frame.m == 2048][["head", "error"]].values))
    return (performer_frame,)


@app.cell
def _(performer_error_chart, performer_frame):
    # NBVAL_IGNORE_OUTPUT
    performer_error_chart(performer_frame)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The fitted exponent is $-1/2$, as Monte Carlo promises. But on the spiky head the error at
    $m = 2048$ features (a state 128 times wider than the keys) is still of the order of the output
    itself: $e^{|q'+k'|^2}$ is astronomically large there, and a few thousand samples see none of the
    rare directions that carry the weight. Performer works when queries and keys stay small, which a
    model trained with it learns; it cannot stand in for a trained softmax head.

    ## 5. Spikiness and monotonicity, measured

    Zhang et al. (the Hedgehog paper) name two properties of softmax attention that the simple maps
    lack: its weights are **spiky** (low entropy: a query puts most of its weight on a few keys) and
    **monotone** in $q \cdot k$ (a key with a larger dot product always gets more weight). We measure
    both on the test sequences for every map: the mean entropy of the attention rows, and, per query,
    the Spearman rank correlation of $\phi(q_i)\cdot\phi(k_j)$ with $q_i \cdot k_j$ over the keys (1 for
    softmax). The Hedgehog map appears twice, as initialized and after the training of section 6.
    """)
    return


@app.cell
def _(
    D,
    H,
    HedgehogFeatureMap,
    PerformerFeatureMap,
    compare_feature_maps,
    cos_map,
    distill_hedgehog,
    k_test,
    k_train,
    q_test,
    q_train,
    time,
    v_test,
):
    hedgehog = HedgehogFeatureMap(H, D)  # per head W = I, b = 0: phi(x) = [softmax(x), softmax(-x)]
    _start = time.perf_counter()
    distill_losses = distill_hedgehog(hedgehog, q_train, k_train, steps=200, lr=3e-2, progress=False)
    distill_seconds = time.perf_counter() - _start
    MAPS = {
        "elu+1": "elu+1",
        "relu": "relu",
        "cosFormer": cos_map,
        "Taylor (Based)": "taylor",
        "Performer, m = 64": PerformerFeatureMap(D, 64, scale=D ** -0.25),
        "Performer, m = 1024": PerformerFeatureMap(D, 1024, scale=D ** -0.25),
        "Hedgehog, init": HedgehogFeatureMap(H, D),
        "Hedgehog, trained": hedgehog,
    }
    comparison = compare_feature_maps(q_test, k_test, v_test, MAPS)
    by_map = comparison.set_index("map")
    # NBVAL_CHECK_OUTPUT
    comparison.round(3)
    return MAPS, by_map, comparison, distill_losses, distill_seconds, hedgehog


@app.cell
def _(comparison, map_property_chart):
    # NBVAL_IGNORE_OUTPUT
    map_property_chart(comparison)
    return


@app.cell
def _(by_map, comparison, mo, softmax_entropy):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _simple = ["elu+1", "relu", "cosFormer"]
        assert all(by_map.loc[_s, "entropy"] > softmax_entropy + 1 for _s in _simple), (
            f"expected the simple maps' entropy over softmax's {softmax_entropy:.2f} + 1, measured {by_map.loc[_simple, 'entropy'].round(3).to_dict()}")
        assert all(by_map.loc[_s, "monotonicity"] < 0.6 for _s in _simple), (
            f"expected the simple maps' monotonicity below 0.6, measured {by_map.loc[_simple, 'monotonicity'].round(3).to_dict()}")
        assert by_map.loc["Hedgehog, init", "monotonicity"] > 0.75, f"expected Hedgehog's exponentials to rank keys well, measured {by_map.loc['Hedgehog, init', 'monotonicity']:.3f}"
        assert by_map.loc["Hedgehog, trained", "entropy"] < by_map.loc["Hedgehog, init", "entropy"] - 0.5, (
            f"expected training to make Hedgehog spikier by 0.5 nats, measured {by_map.loc['Hedgehog, init', 'entropy']:.3f} -> {by_map.loc['Hedgehog, trained', 'entropy']:.3f}")
        _maps = comparison.iloc[1:].set_index("map")
        assert _maps["cross_entropy"].idxmin() == "Hedgehog, trained" and _maps["output_error"].idxmin() == "Hedgehog, trained", (
            f"expected the trained Hedgehog closest to softmax, measured {_maps[['cross_entropy', 'output_error']].round(3).to_dict()}")
        assert _maps["cross_entropy"].idxmax() == "Performer, m = 64", f"expected Performer (m = 64) the worst cross-entropy, found {_maps['cross_entropy'].idxmax()}"
        assert by_map.loc["Taylor (Based)", "monotonicity"] < by_map.loc["Hedgehog, init", "monotonicity"] - 0.1, (
            f"expected Taylor's non-monotone quadratic to rank keys worse than Hedgehog, measured {by_map.loc['Taylor (Based)', 'monotonicity']:.3f}")
        assert by_map.loc["Performer, m = 64", "entropy"] < by_map.loc["elu+1", "entropy"] - 0.5, (
            f"expected Performer's noisy weights spikier than elu+1's, measured {by_map.loc['Performer, m = 64', 'entropy']:.3f}")
        print(f"entropy: softmax {softmax_entropy:.2f}, simple maps {by_map.loc[_simple, 'entropy'].min():.2f}-{by_map.loc[_simple, 'entropy'].max():.2f}, "
              f"Hedgehog {by_map.loc['Hedgehog, init', 'entropy']:.2f} -> {by_map.loc['Hedgehog, trained', 'entropy']:.2f} after training; "
              f"monotonicity: simple maps {by_map.loc[_simple, 'monotonicity'].min():.2f}-{by_map.loc[_simple, 'monotonicity'].max():.2f}, "
              f"Taylor {by_map.loc['Taylor (Based)', 'monotonicity']:.2f}, Hedgehog {by_map.loc['Hedgehog, trained', 'monotonicity']:.2f}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    What the table says, map by map (each number is printed above):

    * **elu+1, ReLU, cosFormer** are neither: their entropy sits close to the uniform $\log 64 = 4.16$
      and their ranking of keys is weakly related to $q \cdot k$. They are not functions of $q \cdot k$ at
      all: $\mathrm{elu}(q)+1$ dotted with $\mathrm{elu}(k)+1$ depends on the coordinates, not on the angle.
    * **Taylor** is a function of $q \cdot k$, but not a monotone one: many of this head's scores lie
      below $-1$, where $1 + x + x^2/2$ rises again (section 2), which lowers its rank correlation.
    * **Performer** has a low entropy (noisy weights are spiky too), ranks keys poorly at $m = 64$ and
      better at $m = 1024$, at 16 times the state, and has the worst cross-entropy: unbiased is not
      accurate (section 4), and a few keys given far too much weight cost a lot of cross-entropy.
    * **Hedgehog** ranks keys well from the start (its features are exponentials of projections), and
      training makes it spikier and brings it closest to softmax in cross-entropy and in the output.

    ## 6. Hedgehog: learning to be spiky

    The Hedgehog map is, per head, $\phi(x) = [\mathrm{softmax}(W x + b), \mathrm{softmax}(-W x - b)]$
    (softmax over its $F = 16$ features, so $2F = 32$ features out), initialized at $W = I, b = 0$. It
    is trained by **attention distillation**: on a softmax head's queries and keys, minimize the
    cross-entropy between the softmax weights $A_{ij}$ and the causal linear-attention weights
    $\hat A_{ij} = \phi(q_i)\cdot\phi(k_j) / \sum_{l \le i}\phi(q_i)\cdot\phi(k_l)$,
    $\;\mathcal{L} = -\frac{1}{\#\text{rows}}\sum_{i}\sum_{j \le i} A_{ij}\log \hat A_{ij}$. The cell in
    section 5 ran `distill_hedgehog` for 200 full-batch Adam steps on the 8 training sequences. On the
    8 held-out sequences (causal, as a language model sees them):
    """)
    return


@app.cell
def _(
    MAPS,
    attention_cross_entropy,
    attention_entropy,
    distill_losses,
    hedgehog,
    k_test,
    linear_attention_weights,
    mo,
    pd,
    q_test,
    softmax_attention_weights,
    torch,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        target_causal = softmax_attention_weights(q_test, k_test)  # causal
        with torch.no_grad():
            hedgehog_before = linear_attention_weights(q_test, k_test, MAPS["Hedgehog, init"])
            hedgehog_after = linear_attention_weights(q_test, k_test, hedgehog)
        distill_table = pd.DataFrame({
            "held-out, causal": ["softmax (the floor)", "Hedgehog, init", "Hedgehog, trained"],
            "cross-entropy": [attention_cross_entropy(target_causal, _w).item() for _w in (target_causal, hedgehog_before, hedgehog_after)],
            "entropy": [attention_entropy(_w) for _w in (target_causal, hedgehog_before, hedgehog_after)],
        })
        ce_before, ce_after, ce_floor = distill_table["cross-entropy"][1], distill_table["cross-entropy"][2], distill_table["cross-entropy"][0]
        assert distill_losses[-1] < distill_losses[0] - 0.4, f"expected training to lower the training CE by 0.4, measured {distill_losses[0]:.3f} -> {distill_losses[-1]:.3f}"
        assert ce_after < ce_before - 0.4, f"expected the held-out CE to fall by 0.4 too, measured {ce_before:.3f} -> {ce_after:.3f}"
        closed = (ce_before - ce_after) / (ce_before - ce_floor)
        # NBVAL_CHECK_OUTPUT
        print(f"training CE {distill_losses[0]:.3f} -> {distill_losses[-1]:.3f}; held out {ce_before:.3f} -> {ce_after:.3f} "
              f"(floor {ce_floor:.3f}: {closed:.0%} of the gap closed)")
        mo.output.append(distill_table.round(3))
    return hedgehog_after, hedgehog_before, target_causal


@app.cell
def _(
    attention_heatmaps,
    distill_seconds,
    hedgehog_after,
    hedgehog_before,
    mo,
    target_causal,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_IGNORE_OUTPUT
        print(f"200 distillation steps took {distill_seconds:.1f} s")
        N_SHOW = 24  # the first 24 tokens of one held-out sequence, head 0
        mo.output.append(attention_heatmaps({"softmax": target_causal[0, 0, :N_SHOW, :N_SHOW], "Hedgehog, init": hedgehog_before[0, 0, :N_SHOW, :N_SHOW],
                            "Hedgehog, trained": hedgehog_after[0, 0, :N_SHOW, :N_SHOW]}))
    return (N_SHOW,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The initial map spreads its weight over the whole causal prefix; the trained one puts its weight on
    many of the keys softmax picks (compare the dark cells), on a sequence it never saw: it learned
    from 8 other sequences of the same head and vocabulary. What is left is the gap between a
    32-feature kernel and $\exp$ (the printed share of the cross-entropy gap that training closed).

    Pick a map and compare its causal attention matrix with softmax's, on the same held-out sequence
    (the dropdown works in the book too):
    """)
    return


@app.cell
def _(
    D,
    HedgehogFeatureMap,
    MAPS,
    N_SHOW,
    attention_matrix_explorer,
    hedgehog,
    k_test,
    linear_attention_weights,
    q_test,
    target_causal,
    torch,
):
    # NBVAL_IGNORE_OUTPUT
    _hh_head0 = HedgehogFeatureMap(1, D)  # head 0 of the trained map, for one head's matrices
    _hh_head0.load_state_dict({"weight": hedgehog.weight[:1], "bias": hedgehog.bias[:1]})
    _one_head = {**{_name: _fm for _name, _fm in MAPS.items() if not _name.startswith("Hedgehog")},
                 "Hedgehog, init": HedgehogFeatureMap(1, D), "Hedgehog, trained": _hh_head0}
    with torch.no_grad():
        explorer_matrices = {"softmax": target_causal[0, 0, :N_SHOW, :N_SHOW]}
        explorer_matrices.update({_name: linear_attention_weights(q_test[:1, :1, :N_SHOW], k_test[:1, :1, :N_SHOW], _fm)[0, 0]
                                  for _name, _fm in _one_head.items()})
    attention_matrix_explorer(explorer_matrices, start="Hedgehog, trained")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 7. What each map costs in state

    The state of normalized linear attention is $S \in \mathbb{R}^{F \times D_v}$ and $z \in \mathbb{R}^F$
    per head: it grows with the feature dimension $F$, not with the sequence. Measured with
    `state_nbytes` on a `LinearAttention` layer ($d_\text{model} = 32$, 2 heads of 16) after 64 and
    after 4,096 tokens, next to a softmax layer's KV cache:
    """)
    return


@app.cell
def _(
    CosFormerFeatureMap,
    D,
    H,
    HedgehogFeatureMap,
    LinearAttention,
    MAPS,
    SoftmaxAttention,
    T,
    math,
    pd,
    torch,
):
    _x = torch.randn(1, 4096, 2 * D, generator=torch.Generator().manual_seed(6))
    _rows = []
    with torch.no_grad():
        for _name, _fm in {**MAPS, "softmax (KV cache)": None}.items():
            if _name == "Hedgehog, init":
                continue
            if _fm is None:
                _layer = SoftmaxAttention(2 * D, H)
            else:  # a fresh Hedgehog (its state does not depend on training); cosFormer's M must cover 4,096 positions
                _fm = HedgehogFeatureMap(H, D) if _name.startswith("Hedgehog") else CosFormerFeatureMap(4096) if _name == "cosFormer" else _fm
                _layer = LinearAttention(2 * D, H, feature_map=_fm)
            _, _short = _layer(_x[:, :T])
            _, _long = _layer(_x)
            _rows.append({"layer": _name.replace(", trained", "") if _fm is None else f"linear, {_name.replace(', trained', '')}",
                          "F": None if _fm is None else _short["attn"].kv.shape[-2],
                          "state bytes at T = 64": _layer.state_nbytes(_short), "at T = 4096": _layer.state_nbytes(_long)})
    state_table = pd.DataFrame(_rows).astype({"F": "Int64"})
    for _r in _rows[:-1]:
        _counter = 8 if "cosFormer" in _r["layer"] else 0  # cosFormer's state also counts its tokens (one int64)
        assert _r["state bytes at T = 64"] == _r["at T = 4096"] == H * _r["F"] * (D + 1) * 4 + _counter, (
            f"expected H F (D + 1) fp32 numbers at every length for {_r['layer']} (+ 8 bytes of position for cosFormer), "
            f"measured {_r['state bytes at T = 64']} and {_r['at T = 4096']}")
    cache_bytes_per_token = (_rows[-1]["at T = 4096"] - _rows[-1]["state bytes at T = 64"]) / (4096 - T)
    assert cache_bytes_per_token == 2 * H * D * 4, f"expected the KV cache to grow by 2 H D fp32 numbers a token, measured {cache_bytes_per_token}"
    state_table["softmax cache is larger from T ="] = pd.array(
        [math.floor(_r["at T = 4096"] / cache_bytes_per_token) + 1 if _r["F"] else None for _r in _rows], dtype="Int64")
    # NBVAL_CHECK_OUTPUT
    state_table
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Every linear state is $H \cdot F(D+1)$ floats whatever the length (asserted); the softmax cache grows
    by $2HD$ floats a token, and the last column says from which length it is the larger. The maps that
    approximate $\exp$ best without training (Taylor, Performer with large $m$) pay in $F$; Hedgehog gets
    its accuracy from training, with $F = 2D$.

    ## 8. Where this differs from the papers

    * **The head.** A synthetic head (random token embeddings and projections, a `gain` for spikiness)
      stands in for the trained BERT, GPT-2 and Llama heads the Hedgehog paper studies; entropy and
      monotonicity are measured on it, not on a trained model. Its spikiness is chosen, so the ranking
      of the maps, not their exact numbers, is the result.
    * **Hedgehog** is distilled on 8 fixed sequences for 200 full-batch steps, one feature map per head
      of one layer, and not then fine-tuned; the paper trains each layer's maps on real data and then
      fine-tunes the converted model. We use its code's softmax-normalized halves and identity init.
    * **Performer** draws one projection per seed and never redraws it (the paper redraws during
      training), and omits its code's max-subtraction stabilizer, which would make a key's features
      depend on the other keys and break the recurrent form. Its heads here are not trained with it.
    * **cosFormer** counts positions from 0 with $M = T$ (its code counts from 1; the weights depend only
      on $i - j$); the paper applies it inside trained models, we only compare kernels.
    * **Based** pairs the Taylor map with sliding-window softmax attention and short convolutions;
      here the map alone, on $D = 16$ as in Based.
    """)
    return


@app.cell
def _(chapter_start, mo, time):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_IGNORE_OUTPUT
        chapter_seconds = time.perf_counter() - chapter_start
        print(f"chapter computations took {chapter_seconds:.0f} s")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 9. Exercises

    **Exercise 1 (cosFormer).** `fn(x, max_len) -> phi`: for one sequence $x$ $(T, D)$ at positions
    $0, \dots, T-1$, return $[\mathrm{relu}(x_i)\sin\frac{\pi i}{2M}, \mathrm{relu}(x_i)\cos\frac{\pi i}{2M}]$, shape $(T, 2D)$.
    """)
    return


@app.cell
def _(F, check_cosformer_map, math, torch):
    def my_cosformer(x, max_len):
        angle = math.pi * torch.arange(x.shape[0], dtype=x.dtype)[:, None] / (2 * max_len)
        return torch.cat([F.relu(x) * torch.sin(angle), F.relu(x) * torch.cos(angle)], dim=-1)


    # NBVAL_CHECK_OUTPUT
    check_cosformer_map(my_cosformer)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Exercise 2 (positive random features).** `fn(x, W) -> phi`: rows $x$ $(N, D)$ and a projection $W$
    $(m, D)$; return $\exp(Wx - |x|^2/2)/\sqrt m$ for each row, shape $(N, m)$.
    """)
    return


@app.cell
def _(check_positive_random_features, math, torch):
    def my_random_features(x, W):
        return torch.exp(x @ W.T - 0.5 * (x * x).sum(-1, keepdim=True)) / math.sqrt(W.shape[0])


    # NBVAL_CHECK_OUTPUT
    check_positive_random_features(my_random_features)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Exercise 3 (the attention matrix of a feature map).** `fn(fq, fk) -> A`: from features $(T, F)$
    of one head's queries and keys, the causal weights
    $A_{ij} = \phi(q_i)\cdot\phi(k_j) / \sum_{l \le i}\phi(q_i)\cdot\phi(k_l)$ for $j \le i$ and 0 above the
    diagonal. Mask *before* normalizing.
    """)
    return


@app.cell
def _(check_linear_attention_weights):
    def my_linear_attention_weights(fq, fk):
        scores = (fq @ fk.T).tril()
        return scores / scores.sum(-1, keepdim=True)


    # NBVAL_CHECK_OUTPUT
    check_linear_attention_weights(my_linear_attention_weights)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Summary

    * A feature map turns the similarity into a dot product, $\mathrm{sim}(q, k) = \phi(q)\cdot\phi(k)$, and
      the state of linear attention has $F$ rows. Every map here runs through the same ops, Triton kernel
      and layers (`feature_map=` takes a name or a module); `tests/test_feature_maps.py` checks each one
      against the reference, and the layers' step-by-step decoding against their forward (cosFormer's
      excepted: the layer does not pass positions).
    * **Taylor** (Based): $\phi(q)\cdot\phi(k) = 1 + x + x^2/2$ exactly (float64 to rounding); good near 0,
      not monotone below $x = -1$, $F = 1 + D + D^2$.
    * **cosFormer**: ReLU times $\sin/\cos$ of the position gives $\cos(\pi(i-j)/2M)$ re-weighting; it needs
      absolute positions, so a continuation must say where it starts.
    * **Performer**: unbiased for $\exp(q\cdot k)$, error $\propto m^{-1/2}$ (fitted exponent printed in
      section 4), with a constant that grows exponentially with the norms: useless for a spiky head even at
      $m = 2048$.
    * **Spikiness and monotonicity**: the simple maps have neither; Hedgehog's exponentials rank keys well,
      and distillation (a few seconds here) makes its weights spiky and brings it closest to softmax on
      held-out sequences, with $F = 2D$.
    * Next in the track: recall versus state size (t1_06), where the state these maps fill is put to work.
    """)
    return


if __name__ == "__main__":
    app.run()
