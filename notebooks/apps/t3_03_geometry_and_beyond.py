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
    # Which inner product, and features that are not one direction

    The last two chapters treated a concept as a *direction* and measured angles and projections
    with the ordinary dot product. Two questions were left open, and this chapter takes them up.

    * **Which inner product?** "Orthogonal" depends on the inner product, and nothing in a network
      singles out the Euclidean one. Park, Choe and Veitch (2024) propose a *causal* inner product,
      built from the unembedding matrix, under which concepts that can vary independently come out
      orthogonal. We test it on a real vocabulary of 30,522 tokens (counted below), and say where our
      small world model cannot be used for it.
    * **Is every feature a direction?** Two counterexamples, one found and one built: days of the
      week and months lie on *circles* in the encoder's activations (Engels et al. 2024), and a small
      GRU trained to repeat a sequence stores each position's token at its own *magnitude*, "onion"
      layers that no single direction can peel (Csordás et al. 2024).
    """)
    return


@app.cell
def _():
    import json

    import altair as alt
    import numpy as np
    import pandas as pd
    import torch

    import lablib.viz  # noqa: F401  (charts that render offline in JupyterLab, the book and marimo)
    from lablib.encoder import N_LAYERS, calendar_points, circle_stats
    from lablib.encoder import geometry as word_geometry
    from lablib import onion
    from lablib.probes import separation_report
    from lablib.world.train import load_checkpoint

    torch.set_num_threads(1)
    return (
        N_LAYERS,
        alt,
        calendar_points,
        circle_stats,
        json,
        load_checkpoint,
        np,
        onion,
        pd,
        separation_report,
        torch,
        word_geometry,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. The causal inner product

    Write $\gamma(y) \in \mathbb{R}^d$ for the unembedding vector of token $y$: the model's
    logit for $y$ is $\lambda(x)^\top \gamma(y)$. A concept such as male $\Rightarrow$ female is
    represented by the differences $\gamma(\text{queen}) - \gamma(\text{king})$,
    $\gamma(\text{woman}) - \gamma(\text{man})$, ..., whose mean is the concept's direction
    $\bar\gamma_W$. Park et al. prove that if a concept's differences are to be "the same direction"
    in a sense that respects the model's probabilities, the inner product must satisfy
    $\langle \bar\gamma_W, \bar\gamma_Z \rangle = 0$ for causally separable concepts $W, Z$ (concepts
    that can change independently: king, kings, queen, queens all exist), and that one inner product
    doing so is

    $$
    \langle x, y \rangle_C = x^\top \operatorname{Cov}(\gamma)^{-1} y,
    $$

    the covariance taken over the vocabulary. Equivalently: whiten the unembeddings, then use the
    ordinary dot product.

    **Not on our world model.** Its vocabulary has 32 moves in 128 dimensions, so
    $\operatorname{Cov}(\gamma)$ has rank 31 and is not invertible. With the pseudo-inverse, the 32
    whitened unembeddings form a *regular simplex*, whatever the model learned: every difference of
    four distinct tokens is exactly orthogonal to every other, and the "test" carries no evidence.
    The table shows it: under the degenerate causal product, two differences of the *same* concept
    (row 2 vs row 3, in two different columns) are as orthogonal as a row and a column difference,
    which a real test of the theory would never allow. (`tests/test_probes.py` checks that a
    randomly initialised model gives the same numbers.)
    """)
    return


@app.cell
def _(load_checkpoint, mo, pd, separation_report):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _world_model = load_checkpoint()[0]
        world_geometry = separation_report(_world_model, ridges=(0.0,), n_random=500)
        _m = world_geometry["metrics"]
        print(f"Othello GPT: {world_geometry['n_tokens']} move tokens in d = {world_geometry['d_model']}; "
              f"rank of Cov(gamma) = {world_geometry['rank_cov']}. Mean |cos| between token differences:")
        mo.output.append(pd.DataFrame({"row vs column difference (separable)": {_k: _v["cross"] for _k, _v in _m.items()},
                      "two differences of the same concept": {_k: _v["same"] for _k, _v in _m.items()}}).rename(
            index={"euclidean": "Euclidean", "causal_ridge=0": "causal (pseudo-inverse)"}).round(3))
    return (world_geometry,)


@app.cell
def _(mo, world_geometry):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        # True of any model with more dimensions than tokens (a retrained world model gives the same):
        _causal = world_geometry["metrics"]["causal_ridge=0"]
        assert world_geometry["rank_cov"] == world_geometry["n_tokens"] - 1, (
            f"expected Cov(gamma) of rank n_tokens - 1 = {world_geometry['n_tokens'] - 1}; measured {world_geometry['rank_cov']}")
        assert _causal["cross"] < 1e-10 and _causal["same"] < 1e-10, (
            f"expected the pseudo-inverse causal product to make every difference of four distinct tokens orthogonal (|cos| < 1e-10); "
            f"measured {_causal['cross']:.1e} (row vs column), {_causal['same']:.1e} (same concept)")
        print("degenerate causal product: all differences of four distinct tokens orthogonal to 1e-10 (row vs column and same concept alike)")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **On a real vocabulary.** all-MiniLM-L6-v2 has 30,522 WordPiece tokens in 384 dimensions;
    its token-embedding matrix is the stand-in for $\gamma$ here (BERT ties its masked-word output
    layer to it). A caveat, stated before any number: this MiniLM was distilled by imitating a
    teacher's attention, not trained with a masked-word loss, so its embedding matrix never served
    as an unembedding. What follows applies the paper's recipe to it and asks what comes out. (The
    covariance is taken over the tokens that were trained: the `[unused*]` slots and the special
    tokens are left out; the cell below counts both.)

    The repository ships counterfactual word pairs for 12 concepts (17 to 97 pairs each, every word
    a single token): gender, adult $\Rightarrow$ young, plural, English $\Rightarrow$ French, four
    verb forms, comparative, superlative, country $\Rightarrow$ capital, country $\Rightarrow$
    nationality. Eleven concept pairs are causally separable (all four combinations exist); eight
    are *not* (two values of one variable, like comparative and superlative, or walks and walked).
    """)
    return


@app.cell
def _(alt, mo, pd, word_geometry):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        geometry = word_geometry.geometry_report()
        print(f"vocabulary: {word_geometry.unembedding().shape[0]:,} tokens in {word_geometry.unembedding().shape[1]} dimensions; "
              f"Cov(gamma) over the {geometry['n_vocab']:,} trained ones")
        _names = geometry["concepts"]
        short_names = {"male_female": "male→female", "adult_young": "adult→young", "noun_plural": "noun→plural",
                  "english_french": "English→French", "verb_3sg": "verb→3sg", "verb_ing": "verb→-ing", "verb_past": "verb→past",
                  "verb_agent": "verb→agent", "adj_comparative": "adj→comparative", "adj_superlative": "adj→superlative",
                  "country_capital": "country→capital", "country_nationality": "country→nationality"}
        _separable = {frozenset(_p) for _p in word_geometry.SEPARABLE}
        _not_separable = {frozenset(_p) for _p in word_geometry.NOT_SEPARABLE}
        _rows = []
        for _product in ("euclidean", "causal"):
            _cos = geometry[_product]["cosines"]
            for _i, _a in enumerate(_names):
                for _j, _b in enumerate(_names):
                    _key = frozenset((_a, _b))
                    _group = "same" if _i == _j else "separable" if _key in _separable else "not separable" if _key in _not_separable else "unlabelled"
                    _rows.append({"inner product": _product, "concept 1": short_names[_a], "concept 2": short_names[_b],
                                  "cosine": float(_cos[_i, _j]), "pair": _group, "i": _i, "j": _j})
        concept_cosines = pd.DataFrame(_rows)
        _product_pick = alt.param(name="product", value="causal", bind=alt.binding_radio(options=["euclidean", "causal"], name="inner product "))
        _order = [short_names[_n] for _n in _names]
        _cells = alt.Chart(concept_cosines).transform_filter(alt.datum["inner product"] == _product_pick).encode(
            x=alt.X("concept 2:N", sort=_order, title=None), y=alt.Y("concept 1:N", sort=_order, title=None))
        mo.output.append(alt.layer(
            _cells.mark_rect().encode(color=alt.Color("cosine:Q", scale=alt.Scale(scheme="redblue", domain=[-0.5, 0.5], reverse=True, clamp=True)),
                                      tooltip=["concept 1", "concept 2", "pair", alt.Tooltip("cosine:Q", format="+.2f")]),
            _cells.transform_filter(alt.datum.pair != "same").mark_text(fontSize=8).encode(
                text=alt.Text("cosine:Q", format=".2f"), color=alt.value("black")),
            _cells.transform_filter(alt.datum.pair == "separable").mark_rect(fill=None, stroke="#2f855a", strokeWidth=2),
        ).add_params(_product_pick).properties(width=380, height=380,
                                               title="cosines of concept directions (green frame: causally separable)"))
    return geometry, short_names


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Flip between the two inner products. Under both, most concept pairs are close to orthogonal:
    384 dimensions leave room. The causal one changes the picture in two places. It pulls down
    cosines between concepts that merely share a surface form: noun $\Rightarrow$ plural and verb
    $\Rightarrow$ 3rd person both add an "s", 0.36 Euclidean, 0.11 causal. And it raises the cosines
    between the verb forms (walks, walking, walked, walker are values of one variable, not
    independent concepts: all six pairs go up), and keeps comparative and superlative close (0.47
    Euclidean, 0.40 causal). The cell below checks these; then the summary over groups of pairs:
    """)
    return


@app.cell
def _(geometry, mo, word_geometry):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        def concept_cosine(product, concept_1, concept_2):
            """The cosine of two concept directions under one inner product ("euclidean" or "causal")."""
            _concepts = geometry["concepts"]
            return float(geometry[product]["cosines"][_concepts.index(concept_1), _concepts.index(concept_2)])


        _verb_pairs = [_p for _p in word_geometry.NOT_SEPARABLE if _p[0].startswith("verb_") and _p[1].startswith("verb_")]
        _plural_3sg = {_product: concept_cosine(_product, "noun_plural", "verb_3sg") for _product in ("euclidean", "causal")}
        _degree = {_product: concept_cosine(_product, "adj_comparative", "adj_superlative") for _product in ("euclidean", "causal")}
        assert (len(geometry["concepts"]), len(word_geometry.SEPARABLE), len(word_geometry.NOT_SEPARABLE), len(_verb_pairs)) == (12, 11, 8, 6), (
            f"expected 12 concepts, 11 separable and 8 non-separable pairs (6 of them verb forms); got {len(geometry['concepts'])}, "
            f"{len(word_geometry.SEPARABLE)}, {len(word_geometry.NOT_SEPARABLE)}, {len(_verb_pairs)}")
        assert abs(_plural_3sg["euclidean"] - 0.36) < 0.01 and abs(_plural_3sg["causal"] - 0.11) < 0.01, (
            f"expected noun->plural vs verb->3sg at 0.36 (Euclidean) and 0.11 (causal), +- 0.01; measured {_plural_3sg}")
        assert all(concept_cosine("causal", *_p) > concept_cosine("euclidean", *_p) for _p in _verb_pairs), (
            "expected the causal product to raise the cosine of every pair of verb forms; measured "
            + ", ".join(f"{_a}/{_b} {concept_cosine('euclidean', _a, _b):.2f} -> {concept_cosine('causal', _a, _b):.2f}" for _a, _b in _verb_pairs))
        assert _degree["causal"] > 0.35 and abs(_degree["euclidean"] - 0.47) < 0.01 and abs(_degree["causal"] - 0.40) < 0.01, (
            f"expected comparative vs superlative at 0.47 (Euclidean) and 0.40 (causal), +- 0.01; measured {_degree}")
        print(f"noun->plural vs verb->3sg: {_plural_3sg['euclidean']:.2f} Euclidean, {_plural_3sg['causal']:.2f} causal; "
              f"comparative vs superlative: {_degree['euclidean']:.2f}, {_degree['causal']:.2f}")
        print("verb forms, Euclidean -> causal:", ", ".join(
            f"{_a[5:]}/{_b[5:]} {concept_cosine('euclidean', _a, _b):.2f} -> {concept_cosine('causal', _a, _b):.2f}" for _a, _b in _verb_pairs))
    return


@app.cell
def _(geometry, pd):
    _summary = []
    for _product in ("euclidean", "causal"):
        _groups = geometry[_product]["groups"]
        _summary.append({"inner product": _product, f"separable ({_groups['n_separable']} pairs)": _groups["separable"],
                         f"not separable ({_groups['n_not_separable']})": _groups["not_separable"], f"unlabelled ({_groups['n_other']})": _groups["other"],
                         "two random token-pair directions": geometry[_product]["random_baseline"],
                         "contrast: not separable / separable": _groups["not_separable"] / _groups["separable"]})
    geometry_summary = pd.DataFrame(_summary).set_index("inner product")
    geometry_summary.round(3)
    return (geometry_summary,)


@app.cell
def _(geometry, geometry_summary, mo, pd):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _e, _c = geometry_summary.loc["euclidean"], geometry_summary.loc["causal"]
        _stated = {("causal", 0): 0.059, ("causal", 3): 0.041, ("euclidean", 0): 0.076, ("euclidean", 4): 4.1, ("causal", 4): 6.5}
        for (_product, _column), _value in _stated.items():
            _measured = geometry_summary.loc[_product].iloc[_column]
            _tolerance = 0.05 if _column == 4 else 0.001
            assert abs(_measured - _value) <= _tolerance, (
                f"expected {geometry_summary.columns[_column]} ({_product}) = {_value} +- {_tolerance}; measured {_measured:.4f}")
        assert _c.iloc[0] < _e.iloc[0] < 2 * _c.iloc[0], (
            f"expected separable pairs closer to orthogonal under the causal product, by less than a factor 2; measured {_e.iloc[0]:.3f} -> {_c.iloc[0]:.3f}")
        assert _c.iloc[4] > 1.2 * _e.iloc[4], f"expected the contrast to sharpen by more than 1.2x; measured {_e.iloc[4]:.2f} -> {_c.iloc[4]:.2f}"
        _split_half = pd.Series(geometry["causal"]["split_half"])
        _others = _split_half.drop("adult_young")
        assert _others.between(0.535, 0.905).all() and abs(_split_half["adult_young"] - 0.30) < 0.01 and geometry["n_pairs"]["adult_young"] == 17, (
            f"expected causal split-half cosines of 0.54-0.90 (+- 0.005), adult->young at 0.30 +- 0.01 with 17 pairs; "
            f"measured {_others.min():.3f}-{_others.max():.3f}, adult->young {_split_half['adult_young']:.3f} ({geometry['n_pairs']['adult_young']} pairs)")
        assert min(geometry["n_pairs"].values()) == 17 and max(geometry["n_pairs"].values()) == 97, (
            f"expected 17 to 97 pairs per concept; got {min(geometry['n_pairs'].values())} to {max(geometry['n_pairs'].values())}")
        print(f"separable pairs: mean |cos| {_e.iloc[0]:.3f} -> {_c.iloc[0]:.3f} (random directions {_c.iloc[3]:.3f} causal); "
              f"contrast {_e.iloc[4]:.1f}x -> {_c.iloc[4]:.1f}x; causal split-half {_others.min():.2f}-{_others.max():.2f}, adult->young {_split_half['adult_young']:.2f}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The mean |cosine| is the average size of the cosine over the pairs in the group. The honest
    reading: the paper's prediction holds here, separable concepts are near orthogonal under the
    causal inner product (0.059, close to the 0.041 of two random directions), but the Euclidean
    geometry of this model was nearly as good already (0.076). What the causal inner product does
    clearly is *sharpen the contrast* between concepts that can and cannot vary independently, from
    4.1x to 6.5x. Each concept's direction is a stable object, not noise: directions estimated from
    two disjoint halves of the pairs agree (cosine 0.54 to 0.90 under the causal product, except
    adult $\Rightarrow$ young, 17 mixed pairs, 0.30):
    """)
    return


@app.cell
def _(geometry, pd, short_names):
    pd.DataFrame({"pairs": geometry["n_pairs"], "split-half cosine, euclidean": geometry["euclidean"]["split_half"],
                  "split-half cosine, causal": geometry["causal"]["split_half"]}).rename(index=short_names).round(2)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. Days and months on a circle

    A direction can hold "more" or "less" of something. The days of the week have no more or less:
    Sunday is followed by Monday again. Engels et al. (2024) found such features in GPT-2 and Mistral
    lying on *circles* in a two-dimensional subspace. Here is the same experiment on the encoder:
    embed each name in a few short templates ("on Monday", "Monday morning", ...), average over the
    templates, and project the 7 (or 12) points onto their top two principal components.
    """)
    return


@app.cell
def _(N_LAYERS, alt, calendar_points, circle_stats, pd):
    _rows, _stats = [], []
    for _kind in ("days", "months"):
        for _layer in range(N_LAYERS + 1):
            _labels, _points = calendar_points(_kind, _layer)
            _s = circle_stats(_points)
            _stats.append({"names": _kind, "layer": _layer, "calendar neighbours adjacent on the circle": f"{_s['adjacent']}/{_s['n']}",
                           "permutation p": _s["p_value"], "wrap ratio (1 on a circle)": _s["wrap_ratio"],
                           "r with cyclic step": _s["r_cyclic"], "r with linear step": _s["r_linear"],
                           "variance in 2 PCs": _s["explained"], "_adjacent": _s["adjacent"], "_n": _s["n"]})
            _coords = _s["coords"].numpy()
            for _k in range(_s["n"] + 1):  # the first name again at the end closes the loop
                _rows.append({"names": _kind, "layer": _layer, "order": _k, "name": _labels[_k % _s["n"]][:3],
                              "pc 1": float(_coords[_k % _s["n"], 0]), "pc 2": float(_coords[_k % _s["n"], 1])})
    calendar = pd.DataFrame(_rows)
    circle_table = pd.DataFrame(_stats)
    _layer_pick = alt.param(name="circle_layer", value=6, bind=alt.binding_range(min=0, max=N_LAYERS, step=1, name="layer "))
    _kind_pick = alt.param(name="calendar", value="days", bind=alt.binding_radio(options=["days", "months"], name="names "))
    _ring = alt.Chart(calendar).transform_filter((alt.datum.layer == _layer_pick) & (alt.datum.names == _kind_pick)).encode(
        x=alt.X("pc 1:Q", scale=alt.Scale(zero=False)), y=alt.Y("pc 2:Q", scale=alt.Scale(zero=False)), order="order:Q")
    alt.layer(_ring.mark_line(color="#a0aec0"), _ring.mark_circle(size=60, color="#2b6cb0"),
              _ring.mark_text(dy=-10, fontSize=11).encode(text="name:N")).add_params(_layer_pick, _kind_pick).properties(
        width=320, height=300, title="top two principal components, joined in calendar order")
    return (circle_table,)


@app.cell
def _(circle_table):
    circle_table.drop(columns=["_adjacent", "_n"]).set_index(["names", "layer"]).round(3)
    return


@app.cell
def _(circle_table, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        _days = circle_table[circle_table.names == "days"].set_index("layer")
        _months = circle_table[circle_table.names == "months"].set_index("layer")
        _random_adjacent = 7 * 2 / (7 - 1)  # a random cyclic order: each calendar pair is adjacent with probability 2 / (n - 1)
        _perfect_circle_chance = 2 * 7 / 5040  # 7 rotations x 2 directions of the 7! = 5040 orders give 7 of 7
        _expected_p = (2000 * _perfect_circle_chance + 1) / 2001  # what a perfect circle scores, on average, with 2,000 permutations
        assert (_days._adjacent == 7).all(), f"expected all 7 calendar neighbours adjacent at every layer; measured {_days._adjacent.tolist()}"
        assert (_days["permutation p"] < 2 * _expected_p).all(), (
            f"expected the days' permutation p near its floor {_expected_p:.4f} (below twice that); measured {_days['permutation p'].round(4).tolist()}")
        assert _days["wrap ratio (1 on a circle)"].between(1.05, 1.3).all(), (
            f"expected the days' wrap ratio between 1.05 and 1.3 at every layer; measured {_days['wrap ratio (1 on a circle)'].round(3).tolist()}")
        assert (_days["r with cyclic step"] > _days["r with linear step"]).all(), "expected the days' distances to follow the cyclic step more than the linear one at every layer"
        assert _months._adjacent.tolist() == [10, 12, 10, 5, 5, 9, 7], f"expected months adjacent 10, 12, 10, 5, 5, 9, 7 (layers 0-6); measured {_months._adjacent.tolist()}"
        assert _months["variance in 2 PCs"].between(0.3, 0.4).all(), (
            f"expected two components to keep about a third (0.3-0.4) of the months' variance; measured {_months['variance in 2 PCs'].round(3).tolist()}")
        print(f"days: 7 of 7 adjacent at every layer (a random order: {_random_adjacent:.1f} on average); permutation p "
              f"{_days['permutation p'].max():.4f} (a perfect circle averages {_expected_p:.4f}: one order in {1 / _perfect_circle_chance:.0f} is one)")
        print("months adjacent, layers 0-6:", " ".join(f"{_a}/12" for _a in _months._adjacent))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The days close a loop at every layer: all 7 calendar neighbours sit next to each other on the
    circle (a random order would manage 2.3 on average; the permutation test's p = 0.0035 is about the
    smallest that 7 points allow with 2,000 permutations, since one random order in 360 is a perfect
    circle too), the Sunday-Monday step is about as long as the others (wrap ratio 1.1 to 1.25,
    where a line or horseshoe would give a large number), and the
    distances in the full 384 dimensions follow the cyclic step min(|i-j|, 7-|i-j|) better than the
    linear one. The months are only partly circular: most neighbours are adjacent in the first layers (10-12
    of 12 at layers 0-2) and at layer 5 (9 of 12), the loop breaks in the middle (5 of 12 at layers
    3-4; 7 of 12 at layer 6), and two components keep only a third of the variance. A circle cannot be read by one direction: a
    linear probe for "day" sees a projection of the ring, on which Sunday and Wednesday may land
    together. The feature is two-dimensional, and its *angle* is the value.

    ## 3. Onions: a GRU that stores positions by magnitude

    The last counterexample is built, not found. Train a GRU to *repeat*: it reads a random sequence
    of up to 9 tokens (out of 30), and then, from its hidden state alone, writes the sequence out
    again, one token at a time. After the input phase, the state must hold every token *and* its
    position. The linear-representation hypothesis suggests each position gets a subspace of its
    own. Csordás et al. (2024) found that small GRUs do something else: they store every position
    along the *same* token directions, at a different *magnitude* per position, the first token
    largest, like the layers of an onion, and peel them off one by one as they generate.

    Two GRUs were trained here on the same task, one of 64 hidden units and one of 512, on one CPU
    thread; the table reads their commands, steps and times from each checkpoint's JSON file
    (`lablib/onion/checkpoints/repeat_gru_h64.json`, `..._h512.json`; the command there rebuilds the
    checkpoint). Both repeat held-out sequences almost perfectly. Everything below looks at
    sequences of length 7 and the state right after the last input token.
    """)
    return


@app.cell
def _(json, onion, pd):
    gru_info = {_hidden: json.loads((onion.CHECKPOINT_DIR / f"repeat_gru_h{_hidden}.json").read_text()) for _hidden in (64, 512)}
    pd.DataFrame({f"GRU, {_h} units": {"vocabulary": _i["config"]["vocab"], "longest sequence": _i["config"]["max_len"],
                                        "training steps": _i["steps"], "training minutes": round(_i["wall_time_s"] / 60, 1),
                                        "steps fitting the edits": _i["analysis"]["fit_steps"], "command": _i["command"]}
                  for _h, _i in gru_info.items()})
    return


@app.cell
def _(onion, pd):
    gru_models = {_hidden: onion.load_checkpoint(_hidden) for _hidden in (64, 512)}
    gru_results = {}
    for _hidden, _model in gru_models.items():
        _edits = onion.load_interventions(_model, onion.interventions_path(onion.CHECKPOINT_DIR / f"repeat_gru_h{_hidden}.pt"))
        gru_results[_hidden] = onion.analyse(_model, n_train=3000, n_test=1000, n_edit=300,  # sequences: probe training, probe test, edits
                                             interventions=_edits["interventions"], control=(_hidden == 64))
        gru_results[_hidden]["edits"] = _edits["interventions"]
    _held_out = onion.fixed_length_batch(1000, 7, split="heldout", seed=5)
    gru_cards = pd.DataFrame({f"GRU, {_h} units": {"parameters": sum(_p.numel() for _p in _m.parameters()),
                                                   "held-out length-7 sequences repeated exactly": onion.repeat_accuracy(_m, _held_out)["sequence"]}
                              for _h, _m in gru_models.items()})
    assert (gru_cards.loc["held-out length-7 sequences repeated exactly"] > 0.99).all(), (
        f"expected both GRUs to repeat more than 99% of held-out sequences exactly; measured {gru_cards.loc['held-out length-7 sequences repeated exactly'].round(3).to_dict()}")
    gru_cards.round(3)
    return gru_models, gru_results


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Reading it linearly.** For each position, fit a linear probe (closed-form ridge on one-hot
    targets) from the state to the token there, on 3,000 training sequences, and score it on 1,000
    held-out ones. The control: the same probes on a randomly initialised GRU, which keeps only its
    most recent input.
    """)
    return


@app.cell
def _(alt, gru_results, pd):
    _rows = []
    for _name, _acc in [("GRU, 64 units", gru_results[64]["probe"]), ("GRU, 512 units", gru_results[512]["probe"]),
                        ("random-init GRU, 64 units", gru_results[64]["probe_random"])]:
        _rows += [{"model": _name, "position": _i + 1, "linear probe accuracy": float(_a)} for _i, _a in enumerate(_acc)]
    onion_probes = pd.DataFrame(_rows)
    _chance = alt.Chart(pd.DataFrame({"y": [1 / 30]})).mark_rule(color="gray", strokeDash=[2, 2]).encode(y="y:Q")
    (alt.Chart(onion_probes).mark_line(point=True).encode(
        x=alt.X("position:O", title="position in the input"), y=alt.Y("linear probe accuracy:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", title=None, legend=alt.Legend(orient="bottom", columns=1)),
        tooltip=["model", "position", alt.Tooltip("linear probe accuracy:Q", format=".3f")]) + _chance).properties(
        width=360, height=220, title="which token sits at position i? (gray: chance, 1/30)")
    return


@app.cell
def _(gru_results, mo, np):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _small, _large = gru_results[64]["probe"], gru_results[512]["probe"]
        assert _large.min() > 0.84, f"expected every position of the 512-unit GRU to read above 0.84; measured {np.round(_large, 3).tolist()}"
        assert _small[0] > 0.98 and abs(_small[-1] - 0.5) < 0.02 and all(0.32 <= _a <= 0.39 for _a in _small[1:-1]), (
            f"expected the 64-unit GRU's probes at 0.99 (first), about 0.5 (last), 0.32-0.39 (the five between); measured {np.round(_small, 3).tolist()}")
        print("linear probe accuracy by position, 64 units:", " ".join(f"{_a:.2f}" for _a in _small), "| 512 units:", " ".join(f"{_a:.2f}" for _a in _large))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The large GRU is linear in the ordinary sense: every position reads at 0.84 or better. The small
    one is not: the first token reads at 0.99, the last at about 0.5, and the five in between at about
    0.35, although the model itself repeats them without error. The information is there; a linear
    read-out cannot get at it.

    **The onion.** Fit the state as a sum of one vector per (position, token),
    $h \approx b + \sum_i A_i[x_i]$, by least squares, and measure how large each position's vectors are.
    The second measurement is causal: the *onion edit* changes the token at position $i$ by
    $h' = h + \gamma_i (E[\text{new}] - E[\text{old}])$, one shared token embedding $E$ and one
    learned scale $\gamma_i$ per position (fitted by gradient descent through the frozen model's
    output phase on counterfactual targets, and shipped with the checkpoint).
    """)
    return


@app.cell
def _(alt, gru_results, np, pd):
    _rows = []
    for _hidden in (64, 512):
        _res = gru_results[_hidden]
        _scales = np.asarray(_res["onion_scales"])
        for _i in range(_res["length"]):
            _rows.append({"model": f"GRU, {_hidden} units", "position": _i + 1, "measure": "size of the position's vectors A_i",
                          "relative to position 1": float(_res["contributions"]["relative"][_i])})
            _rows.append({"model": f"GRU, {_hidden} units", "position": _i + 1, "measure": "onion scale gamma_i",
                          "relative to position 1": float(_scales[_i] / _scales[0])})
    onion_sizes = pd.DataFrame(_rows)
    alt.Chart(onion_sizes).mark_line(point=True).encode(
        x=alt.X("position:O"), y=alt.Y("relative to position 1:Q", scale=alt.Scale(domain=[0, 1.3])),
        color=alt.Color("model:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["model", "measure", "position", alt.Tooltip("relative to position 1:Q", format=".2f")],
    ).properties(width=200, height=200).facet(column=alt.Column("measure:N", title=None))
    return (onion_sizes,)


@app.cell
def _(gru_results, mo, onion_sizes):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _sizes = onion_sizes.pivot_table(index="position", columns=["model", "measure"], values="relative to position 1")
        _small_sizes = _sizes["GRU, 64 units"]
        _scale_ratio = {_h: float(gru_results[_h]["onion_scales"][0] / gru_results[_h]["onion_scales"][-1]) for _h in (64, 512)}
        assert (_small_sizes.diff().iloc[1:] < 0).all().all(), f"expected both measures to fall at every position in the 64-unit GRU; measured\n{_small_sizes.round(3)}"
        assert 5.5 < _scale_ratio[64] < 7 and 1.4 < _scale_ratio[512] < 1.8, (
            f"expected the onion scale to fall about 6x (5.5-7) from first to seventh position at 64 units and about 1.6x (1.4-1.8) at 512; measured {_scale_ratio}")
        print(f"onion scale, first / seventh position: {_scale_ratio[64]:.1f}x (64 units), {_scale_ratio[512]:.1f}x (512 units)")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    In the small GRU both measures fall steadily with position: the onion scale of the first token
    is about six times that of the seventh. In the large one they fall much less (a factor 1.6),
    and its subspaces, as the probes showed, make the magnitudes unnecessary for reading.

    **Editing.** The real test of a representation is whether editing it changes the output the way
    it should. Three edits of "the token at position $i$", each judged by the model's own greedy
    output, which must be the edited sequence exactly (the new token at $i$, every other token and
    the end-of-sequence unchanged), on 300 held-out sequences, every position:

    * **subspace** (the linear hypothesis): each position owns a subspace $U_i$; replace what $h$ has
      there with the new token's code, $h' = h + U_i(c_{i,\text{new}} - U_i^\top h)$;
    * **onion**: the shared embedding at a per-position scale, as above;
    * **free additive**: a free vector per (position, token), $h' = h + A_i[\text{new}] - A_i[\text{old}]$,
      the ceiling of the onion edit (which is this one with $A_i = \gamma_i E$).

    Pick the model:
    """)
    return


@app.cell
def _(alt, gru_results, pd):
    edit_labels = {"subspace": "subspace (linear)", "onion": "onion (shared, scaled)", "additive": "free additive"}
    _rows = []
    for _hidden in (64, 512):
        for _kind, _res in gru_results[_hidden]["interventions"].items():
            _rows += [{"model": f"{_hidden} units", "edit": edit_labels[_kind], "position": _i + 1, "success": float(_v)}
                      for _i, _v in enumerate(_res["success"])]
    onion_edits = pd.DataFrame(_rows)
    _model_pick = alt.param(name="gru", value="64 units", bind=alt.binding_radio(options=["64 units", "512 units"], name="GRU "))
    alt.Chart(onion_edits).transform_filter(alt.datum.model == _model_pick).mark_bar().encode(
        x=alt.X("position:O"), xOffset=alt.XOffset("edit:N", sort=list(edit_labels.values())),
        y=alt.Y("success:Q", scale=alt.Scale(domain=[0, 1]), title="edits that produce exactly the edited sequence"),
        color=alt.Color("edit:N", sort=list(edit_labels.values()), title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["edit", "position", alt.Tooltip("success:Q", format=".2f")],
    ).add_params(_model_pick).properties(width=400, height=220)
    return edit_labels, onion_edits


@app.cell
def _(edit_labels, onion_edits):
    onion_summary = onion_edits.groupby(["model", "edit"]).success.mean().unstack("edit")[list(edit_labels.values())]
    onion_summary.round(3)
    return (onion_summary,)


@app.cell
def _(gru_results, mo, np, onion_summary):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _small, _large = onion_summary.loc["64 units"], onion_summary.loc["512 units"]
        _small_by_position = {_kind: np.asarray(_res["success"]) for _kind, _res in gru_results[64]["interventions"].items()}
        _stated = {("64 units", "subspace (linear)"): 0.13, ("64 units", "onion (shared, scaled)"): 0.53,
                   ("64 units", "free additive"): 0.86, ("512 units", "subspace (linear)"): 0.42}
        for (_model, _edit), _value in _stated.items():
            assert abs(onion_summary.loc[_model, _edit] - _value) < 0.01, (
                f"expected the {_edit} edit of the {_model} GRU to succeed at {_value} +- 0.01 on average; measured {onion_summary.loc[_model, _edit]:.3f}")
        assert _small["onion (shared, scaled)"] > 3 * _small["subspace (linear)"], "expected the onion edit to succeed at least 3x as often as the subspace edit at 64 units"
        assert 3.0 < _large["subspace (linear)"] / _small["subspace (linear)"] < 3.6, (
            f"expected the 512-unit subspace edit to work about 3.3x as often as the 64-unit one; measured {_large['subspace (linear)'] / _small['subspace (linear)']:.2f}x")
        assert _small_by_position["subspace"][:5].max() <= 0.02 + 1e-9, (
            f"expected the 64-unit subspace edit to succeed at most 0.02 at positions 1-5; measured {np.round(_small_by_position['subspace'][:5], 3).tolist()}")
        assert _small_by_position["subspace"][-1] > 0.7, f"expected the 64-unit subspace edit to work for the last position (> 0.7); measured {_small_by_position['subspace'][-1]:.3f}"
        assert int(np.argmin(_small_by_position["onion"])) == 0, f"expected the onion edit to be weakest at position 1; measured {np.round(_small_by_position['onion'], 3).tolist()}"
        print(f"64 units: subspace {_small['subspace (linear)']:.2f} (at most {_small_by_position['subspace'][:5].max():.2f} for positions 1-5), "
              f"onion {_small['onion (shared, scaled)']:.2f} (weakest at position 1: {_small_by_position['onion'][0]:.2f}), free additive {_small['free additive']:.2f}; "
              f"512 units: subspace {_large['subspace (linear)']:.2f}, {_large['subspace (linear)'] / _small['subspace (linear)']:.1f}x the small GRU's")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    And one edit to look at: a held-out sequence, position 3 changed to another token, and what the
    small GRU then writes out under each edit.
    """)
    return


@app.cell
def _(edit_labels, gru_models, gru_results, mo, onion, torch):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _model = gru_models[64]
        _tokens = onion.fixed_length_batch(1, 7, split="heldout", seed=11)
        _old = int(_tokens[0, 2])
        _new = (_old + 7) % 30
        with torch.no_grad():
            _h = _model.encode(_tokens)
            _args = (torch.tensor([2]), torch.tensor([_old]), torch.tensor([_new]))
            _outputs = {"no edit": _model.generate(_h, 8)}
            for _kind, _label in edit_labels.items():
                _outputs[_label] = _model.generate(gru_results[64]["edits"][_kind](_h, *_args), 8)
        _wanted = _tokens[0].clone()
        _wanted[2] = _new
        print("input:           ", _tokens[0].tolist(), f"-> wanted after the edit: {_wanted.tolist()}")
        for _label, _out in _outputs.items():
            print(f"{_label:>22}: {_out[0, :7].tolist()}  then: {'end of sequence' if int(_out[0, 7]) == onion.eos_id(30) else int(_out[0, 7])}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The small GRU's state is not a set of slots: no subspace holds "the token at position 3", so
    replacing a subspace's content fails (0.13 on average, and at most 0.02 for positions 1-5, even
    for position 1, which a linear probe reads at 0.99; only the last token, the one the state holds
    most recently, is editable that way). Adding the token difference at the position's magnitude
    works about half the time (0.53), and a free vector per (position, token) 86% of the time, so
    what the onion edit misses is mostly the approximation of one shared embedding, not the idea.
    Notice where the onion edit is weakest: position 1, the outermost layer, which the probe reads
    best. The large GRU is more linear: its probes read every position, and its subspace edit works
    3.3 times as often (0.42). (Its budgets were smaller, so compare its numbers with care: the
    512-unit model was trained for 2,000 steps and its edits fitted for 300 steps, against 30,000
    and 1,500 for the small one; the table of training runs above reads them from the checkpoints.) The forms of the three edits are our reading of the paper's; the
    numbers are measured here.

    ## Summary

    * The causal inner product needs a vocabulary larger than the model's width; on the Othello GPT
      (32 tokens, 128 dimensions) it degenerates into a simplex and proves nothing. On MiniLM's
      30,522 token embeddings, causally separable concepts are near orthogonal under it (mean |cos|
      0.059, random directions 0.041) but nearly as much under the Euclidean product (0.076); what
      it clearly does is separate concepts that can vary independently from those that cannot
      (contrast 4.1x Euclidean, 6.5x causal) and remove surface-form overlaps (plural vs 3rd
      person: 0.36 to 0.11).
    * Days of the week lie on a closed circle in every layer of the encoder (7 of 7 neighbours
      adjacent, wrap ratio 1.1 to 1.25); months only partly (5 to 12 of 12 by layer). A circular
      feature has no single direction; its angle is the value.
    * A 64-unit GRU that repeats sequences stores positions by magnitude: linear probes read only the
      first token well (0.99, then 0.33-0.49), subspace edits fail (0.13), and an edit that adds a shared
      token embedding at a per-position scale succeeds about half the time (0.53), its scales falling 6x from first to
      last position. A 512-unit GRU is closer to linear.
    """)
    return


if __name__ == "__main__":
    app.run()
