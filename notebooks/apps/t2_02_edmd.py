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
    # Lifting: EDMD and Koopman eigenfunctions

    The last chapter ended with DMD spiralling into the hilltop of a double well: no linear map of
    the state can have two stable rest points. Koopman's way out is to stop insisting on the state.
    For a map $x_{k+1} = F(x_k)$, the **Koopman operator** acts on *observables*, functions $g$ of the
    state, by composition:

    $$
    (\mathcal K g)(x) = g(F(x)) .
    $$

    However nonlinear $F$ is, $\mathcal K$ is linear: $\mathcal K(\alpha g + \beta h) = \alpha\, \mathcal K g + \beta\, \mathcal K h$.
    The price is dimension: $\mathcal K$ acts on a space of functions. Extended DMD (EDMD; Williams,
    Kevrekidis and Rowley, 2015) picks a finite *dictionary* of observables
    $\psi(x) = (\psi_1(x), \dots, \psi_K(x))$ and fits the best $K \times K$ matrix with
    $\psi(x_{k+1}) \approx \psi(x_k)\, \mathbf K$, by least squares over the snapshot pairs. That is DMD on
    the lifted data. Eigenvectors $\xi$ of $\mathbf K$ give approximate **Koopman eigenfunctions**
    $\varphi(x) = \psi(x)\,\xi$, which evolve by a pure multiplication: $\varphi(x_{k+1}) = \lambda\, \varphi(x_k)$.

    By the end you will have

    * lifted a nonlinear map whose Koopman operator has an exactly finite invariant subspace, and
      recovered its eigenvalues and an eigenfunction to $10^{-10}$;
    * seen which EDMD eigenvalues are real and which are artefacts of a dictionary that is not closed;
    * fitted EDMD to the Duffing oscillator with eight dictionaries and chosen between them, watching
      forecasts improve, and, with too rich a dictionary and no regularization, blow up;
    * drawn a Koopman eigenfunction of the double well whose level sets are the two basins of
      attraction.
    """)
    return


@app.cell
def _():
    import altair as alt
    import numpy as np
    import pandas as pd
    from threadpoolctl import threadpool_limits

    import lablib.viz  # noqa: F401  (charts that render offline in JupyterLab, the book and marimo)
    from lablib.exercises.koopman import check_finite_koopman_matrix
    from lablib.koopman import EDMD, Duffing, FiniteKoopmanMap, MonomialDictionary, RBFDictionary, snapshot_pairs

    blas_limits = threadpool_limits(1)  # small least-squares problems: one BLAS thread is the fast choice
    return (
        Duffing,
        EDMD,
        FiniteKoopmanMap,
        MonomialDictionary,
        RBFDictionary,
        alt,
        check_finite_koopman_matrix,
        np,
        pd,
        snapshot_pairs,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. A nonlinear map that is exactly linear

    Take $x_1' = a x_1$, $x_2' = b x_2 + c x_1^2$. It is nonlinear (the $x_1^2$), but watch the three
    observables $(x_1, x_2, x_1^2)$: $(x_1^2)' = a^2 x_1^2$, so

    $$
    \begin{pmatrix} x_1 \\ x_2 \\ x_1^2 \end{pmatrix}' = \begin{pmatrix} a & 0 & 0 \\ 0 & b & c \\ 0 & 0 & a^2 \end{pmatrix} \begin{pmatrix} x_1 \\ x_2 \\ x_1^2 \end{pmatrix} .
    $$

    The span of these three functions is invariant under $\mathcal K$, and on it $\mathcal K$ is that matrix:
    Koopman eigenvalues $a$, $b$, $a^2$, with eigenfunctions $x_1$, $x_1^2$ and
    $\varphi_b = x_2 - \tfrac{c}{a^2 - b} x_1^2$ (check: $\varphi_b(x') = b x_2 + c x_1^2 - \tfrac{c a^2}{a^2-b}x_1^2 = b\,\varphi_b(x)$).
    EDMD with all monomials up to degree 2, $\psi = (1, x_1, x_2, x_1^2, x_1x_2, x_2^2)$, on 50 short
    trajectories with $a = 0.9$, $b = 0.5$, $c = 1$:
    """)
    return


@app.cell
def _(EDMD, FiniteKoopmanMap, MonomialDictionary, np, pd, snapshot_pairs):
    finite_map = FiniteKoopmanMap(a=0.9, b=0.5, c=1.0)
    X_fin, Y_fin = snapshot_pairs(finite_map.trajectories(50, 10, seed=0))  # rows are samples: (500, 2)
    edmd_fin = EDMD(MonomialDictionary(2, 2)).fit(X_fin, Y_fin)
    _exact = np.array([1.0, finite_map.a, finite_map.b, finite_map.a**2])  # 1: the constant function is always an eigenfunction
    _nearest = [edmd_fin.eigenvalues[np.argmin(np.abs(edmd_fin.eigenvalues - lam))] for lam in _exact]
    finite_error = max(abs(n - lam) for n, lam in zip(_nearest, _exact))
    _is_exact = np.array([min(abs(z - lam) for lam in _exact) < 1e-9 for z in edmd_fin.eigenvalues])
    assert _is_exact.sum() == 4, f"expected four of the six EDMD eigenvalues exact (1, a, b, a^2), found {_is_exact.sum()}"
    finite_spurious = np.sort(edmd_fin.eigenvalues[~_is_exact].real)[::-1]
    assert np.allclose(finite_spurious, [0.535, 0.314], atol=1e-3), f"expected the other two near 0.535 and 0.314, found {finite_spurious}"
    pd.DataFrame({"EDMD eigenvalue": np.round(edmd_fin.eigenvalues.real, 6),
                  "exact Koopman eigenvalue?": np.where(_is_exact, "yes", "no: the dictionary is not closed")})
    return edmd_fin, finite_error, finite_map, finite_spurious


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Four of the six are exact: $1$ (the constant), $a = 0.9$, $a^2 = 0.81$ and $b = 0.5$. The other two,
    0.535 and 0.314, belong to $x_1x_2$ and $x_2^2$, whose images involve $x_1^3$ and $x_1^4$, functions
    the dictionary does not contain: on them EDMD returns the best approximation within the
    dictionary, not a Koopman eigenvalue. The dictionary's span is not invariant, and the fit says so
    (the residual $\lVert \Psi_Y - \Psi_X \mathbf K\rVert / \lVert\Psi_Y\rVert$ is not zero):
    """)
    return


@app.cell
def _(edmd_fin, finite_error, finite_map, mo, np):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _i = int(np.argmin(np.abs(edmd_fin.eigenvalues - finite_map.b)))
        _states = np.random.default_rng(3).uniform(-1, 1, size=(200, 2))
        _phi_edmd = edmd_fin.eigenfunctions(_states)[:, _i].real
        _phi_true = finite_map.eigenfunctions(_states)[:, 1]  # x2 - c/(a^2 - b) x1^2
        _scale = (_phi_edmd @ _phi_true) / (_phi_true @ _phi_true)  # eigenfunctions are defined up to scale
        eigenfunction_error = np.abs(_phi_edmd - _scale * _phi_true).max() / np.abs(_phi_edmd).max()
        assert finite_error < 1e-10, f"expected the eigenvalues 1, a, b, a^2 recovered to 1e-10, measured {finite_error:.1e}"
        assert eigenfunction_error < 1e-10, f"expected EDMD's eigenfunction for b to be x2 - c/(a^2-b) x1^2 to 1e-10, measured {eigenfunction_error:.1e}"
        assert edmd_fin.residual > 0.01, f"expected a nonzero fit residual (the dictionary is not invariant), measured {edmd_fin.residual:.3g}"
        print(f"exact eigenvalues recovered to {finite_error:.1e}; EDMD's eigenfunction for b vs x2 - c/(a^2-b) x1^2 "
              f"(up to scale) at 200 random states: {eigenfunction_error:.1e}; fit residual {edmd_fin.residual:.3f}")
    return


@app.cell
def _(finite_spurious, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        print("the two eigenvalues outside the invariant span:", ", ".join(f"{_z:.3f}" for _z in finite_spurious))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    And a forecast by matrix powers in the lifted space is exact, for as long as you like:
    """)
    return


@app.cell
def _(edmd_fin, finite_map, mo, np):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _x0 = np.array([0.8, -0.6])
        finite_forecast_error = np.abs(edmd_fin.predict(_x0, 60) - finite_map.simulate(_x0, 60)).max()
        assert finite_forecast_error < 1e-10, f"expected the lifted forecast exact over 60 steps to 1e-10, measured {finite_forecast_error:.1e}"
        print(f"60 steps of x_(k+1) = F(x_k) vs 60 powers of the {edmd_fin.K.shape[0]} x {edmd_fin.K.shape[1]} EDMD matrix: "
              f"max error {finite_forecast_error:.1e}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Write the map's Koopman matrix yourself in the exercise at the end.

    ## 2. Duffing: the dictionary matters

    Most systems have no finite invariant subspace, and then the dictionary decides how good the
    approximation is. Back to the Duffing double well: 100 training trajectories of 100 steps
    ($\Delta t = 0.1$) from random starts in $[-2, 2]^2$, and 100 fresh ones to test 50-step forecasts.
    Two families of dictionaries: all monomials up to a degree, and Gaussian radial basis functions
    (RBFs) centred on data points (width 1); each includes the state itself, so the forecast can be
    read off the lifted vector.
    """)
    return


@app.cell
def _(
    Duffing,
    EDMD,
    MonomialDictionary,
    RBFDictionary,
    np,
    pd,
    snapshot_pairs,
):
    duffing = Duffing()
    X_duff, Y_duff = snapshot_pairs(duffing.trajectories(100, 100, seed=0))  # (10000, 2) each
    test_trajectories = duffing.trajectories(100, 50, seed=1)  # (100, 51, 2)
    dictionaries = {
        "monomials, degree 1 (= DMD)": MonomialDictionary(2, 1),
        "monomials, degree 3": MonomialDictionary(2, 3),
        "monomials, degree 5": MonomialDictionary(2, 5),
        "monomials, degree 9": MonomialDictionary(2, 9),
        "10 RBFs": RBFDictionary.from_data(X_duff, 10, 1.0, seed=0),
        "50 RBFs": RBFDictionary.from_data(X_duff, 50, 1.0, seed=0),
        "100 RBFs": RBFDictionary.from_data(X_duff, 100, 1.0, seed=0),
        "100 RBFs, ridge 1e-6": RBFDictionary.from_data(X_duff, 100, 1.0, seed=0),
    }
    edmd_fits, forecast_rows, eigen_rows, summary_rows = {}, [], [], []
    for _name, _psi in dictionaries.items():
        _model = EDMD(_psi, ridge=1e-6 if "ridge" in _name else 0.0).fit(X_duff, Y_duff)
        edmd_fits[_name] = _model
        _pred = _model.predict(test_trajectories[:, 0], 50)  # (100, 51, 2): linear in the lifted space
        _rmse = np.sqrt(((_pred - test_trajectories) ** 2).mean(axis=(0, 2)))
        summary_rows.append({"dictionary": _name, "functions K": _psi.n_features, "RMSE, mean over 50 steps": _rmse[1:].mean(),
                             "largest |eigenvalue|": np.abs(_model.eigenvalues).max(),
                             "right well at step 50": (np.sign(_pred[:, -1, 0]) == np.sign(test_trajectories[:, -1, 0])).mean()})
        forecast_rows += [{"dictionary": _name, "step": _k, "x": _pred[0, _k, 0], "source": "EDMD forecast"} for _k in range(51)]
        eigen_rows += [{"dictionary": _name, "re": _z.real, "im": _z.imag} for _z in _model.eigenvalues]
    forecast_rows += [{"dictionary": _name, "step": _k, "x": test_trajectories[0, _k, 0], "source": "true"} for _name in dictionaries for _k in range(51)]
    edmd_summary = pd.DataFrame(summary_rows)
    assert len(dictionaries) == 8 and duffing.dt == 0.1 and X_duff.shape == (10000, 2), "the text describes 8 dictionaries, dt = 0.1, 10,000 pairs"
    assert np.abs(test_trajectories[:, 0]).max() <= 2, "expected the test trajectories to start in [-2, 2]^2"
    edmd_summary.round(3)
    return (
        X_duff,
        dictionaries,
        duffing,
        edmd_fits,
        edmd_summary,
        eigen_rows,
        forecast_rows,
    )


@app.cell
def _(edmd_fits, edmd_summary, np):
    _s = edmd_summary.set_index("dictionary")
    _rmse, _largest = _s["RMSE, mean over 50 steps"], _s["largest |eigenvalue|"]
    assert _rmse["50 RBFs"] * 2 < _rmse["monomials, degree 1 (= DMD)"], (
        f"expected 50 RBFs to forecast at least 2x better than DMD, measured RMSE {_rmse['50 RBFs']:.3f} vs {_rmse['monomials, degree 1 (= DMD)']:.3f}"
    )
    assert _rmse.idxmin() == "50 RBFs", f"expected 50 RBFs to do best, measured best {_rmse.idxmin()} ({_rmse.min():.3f})"
    assert _s.loc["monomials, degree 3", "right well at step 50"] > 0.5, "expected most cubic-monomial forecasts to reach the right well"
    assert _largest["100 RBFs"] > 1.01 and _rmse["100 RBFs"] > 1e6, (
        f"expected 100 RBFs without ridge to have an eigenvalue outside the unit circle and explode, "
        f"measured |lambda| {_largest['100 RBFs']:.3f}, RMSE {_rmse['100 RBFs']:.1e}"
    )
    assert _largest["100 RBFs, ridge 1e-6"] <= 1.01, f"expected the ridge to bring it back to the circle, measured {_largest['100 RBFs, ridge 1e-6']:.3f}"
    _dmd_eigenvalues = np.sort_complex(edmd_fits["monomials, degree 1 (= DMD)"].eigenvalues)
    assert abs(_dmd_eigenvalues[-1] - 1) < 1e-9 and np.all(np.abs(_dmd_eigenvalues[:2]) < 1) and np.all(_dmd_eigenvalues[:2].imag != 0), (
        f"expected degree 1 to give the constant's eigenvalue 1 and a complex pair inside the unit circle, found {_dmd_eigenvalues}"
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Choose a dictionary below to see its eigenvalues and the forecast of the first test trajectory.
    """)
    return


@app.cell
def _(alt, dictionaries, eigen_rows, forecast_rows, np, pd):
    dictionary_pick = alt.param(name="dictionary", value="50 RBFs",
                                bind=alt.binding_select(options=list(dictionaries), name="dictionary "))
    _axis = alt.Scale(domain=[-1.2, 1.2])
    _t = np.linspace(0, 2 * np.pi, 200)
    _circle = alt.Chart(pd.DataFrame({"re": np.cos(_t), "im": np.sin(_t), "order": np.arange(200)})).mark_line(color="lightgray").encode(
        x=alt.X("re:Q", scale=_axis, title="Re lambda"), y=alt.Y("im:Q", scale=_axis, title="Im lambda"), order="order:Q")
    _eigs = alt.Chart(pd.DataFrame(eigen_rows)).transform_filter(alt.datum.dictionary == dictionary_pick).mark_point(
        size=40, filled=True, clip=True).encode(x=alt.X("re:Q", scale=_axis), y=alt.Y("im:Q", scale=_axis),
                                                tooltip=[alt.Tooltip("re:Q", format=".4f"), alt.Tooltip("im:Q", format=".4f")])
    _forecast = alt.Chart(pd.DataFrame(forecast_rows)).transform_filter(alt.datum.dictionary == dictionary_pick).mark_line(clip=True).encode(
        x=alt.X("step:Q", title="step (dt = 0.1)"), y=alt.Y("x:Q", scale=alt.Scale(domain=[-2.2, 2.2]), title="position x"),
        color=alt.Color("source:N", title=None))
    alt.hconcat((_circle + _eigs).properties(width=210, height=210, title="EDMD eigenvalues"),
                _forecast.properties(width=230, height=210, title="one test trajectory")).add_params(dictionary_pick)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Degree 1 is DMD (plus the constant function, whose eigenvalue is 1): DMD's pair of eigenvalues
    inside the unit circle, and a forecast into the hilltop. Cubic monomials already contain
    the force term $x^3$ and most forecasts reach the right well; 50 RBFs do best here. Richer is not
    always better: with 100 RBFs of width 1 on 10,000 samples the least-squares problem is so badly
    conditioned that some eigenvalues leave the unit circle, and a forecast by matrix powers explodes
    (the table's RMSE is astronomically large). A tiny ridge term, $\mathbf K = (G + 10^{-6} I)^{-1} A$ with
    $G = \Psi_X^\top \Psi_X / m$, tames it. No dictionary makes the forecast exact: the double well
    has no finite invariant subspace that contains the state, so EDMD is always an approximation.
    Chapter 3 learns the observables instead of choosing them.

    ## 3. An eigenfunction you can see

    An eigenfunction with eigenvalue $\lambda = 1$ is *conserved*: $\varphi(x_{k+1}) = \varphi(x_k)$ along every
    trajectory. The constant function is one. A double well has another: any function that is one
    value on the basin of the left well and another on the right is conserved, because no
    trajectory changes basin. EDMD with 50 RBFs has a second eigenvalue next to 1; draw its
    eigenfunction on a grid of the phase plane (centred at its median: eigenfunctions with
    eigenvalue 1 are only defined up to adding the constant one):
    """)
    return


@app.cell
def _(X_duff, alt, duffing, edmd_fits, np, pd):
    _model = edmd_fits["50 RBFs"]
    _near_one = np.argsort(np.abs(_model.eigenvalues - 1.0))[:2]  # the two eigenvalues nearest 1
    assert np.abs(_model.eigenvalues[_near_one] - 1).max() < 0.01, f"expected two eigenvalues next to 1, found {_model.eigenvalues[_near_one]}"


    def _relative_variation(i):
        """std / |mean| of eigenfunction i over training states: ~0 for the constant function."""
        phi = _model.eigenfunctions(X_duff[:2000])[:, i].real
        return np.std(phi) / np.abs(np.mean(phi))


    _psi_nonconst = max(_near_one, key=_relative_variation)
    _grid = np.stack(np.meshgrid(np.linspace(-2, 2, 41), np.linspace(-2, 2, 41)), axis=-1).reshape(-1, 2)
    _phi = _model.eigenfunctions(_grid)[:, _psi_nonconst].real
    # Conserved functions can mix with the constant (both have eigenvalue ~1), so centre at the median.
    _phi = _phi - np.median(_phi)
    basin_value = _phi / np.abs(_phi).max()
    _well = np.sign(duffing.simulate(_grid, 300)[:, -1, 0])  # where each grid point really ends up: -1 or +1 well
    basin_agreement = max(np.mean(np.sign(basin_value) == _well), np.mean(np.sign(basin_value) == -_well))  # eigenfunctions have no sign
    basin_frame = pd.DataFrame({"x": _grid[:, 0], "v": _grid[:, 1], "eigenfunction": basin_value})
    alt.Chart(basin_frame).mark_rect().encode(
        x=alt.X("x:O", title="position x", axis=alt.Axis(values=[-2.0, -1.0, 0.0, 1.0, 2.0], format=".0f")),
        y=alt.Y("v:O", title="velocity v", sort="descending", axis=alt.Axis(values=[-2.0, -1.0, 0.0, 1.0, 2.0], format=".0f")),
        color=alt.Color("eigenfunction:Q", scale=alt.Scale(scheme="redblue", domainMid=0), title="phi (scaled)"),
        tooltip=[alt.Tooltip("x:Q", format=".2f"), alt.Tooltip("v:Q", format=".2f"), alt.Tooltip("eigenfunction:Q", format=".3f")],
    ).properties(width=260, height=260, title=f"EDMD eigenfunction, lambda = {_model.eigenvalues[_psi_nonconst].real:.4f}")
    return basin_agreement, basin_frame


@app.cell
def _(basin_agreement, basin_frame, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        assert basin_agreement > 0.8, f"expected the near-1 eigenfunction's sign to mark the basin at more than 80% of grid points, measured {basin_agreement:.1%}"
        print(f"the eigenfunction's sign agrees with the well each grid point ends in (300 steps of the true dynamics) "
              f"at {basin_agreement:.1%} of {len(basin_frame)} points")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The two colours interleave in the spiral arms of the basins of attraction: points that start
    with enough energy cross the hilltop before settling, so which well they end in alternates
    with the starting energy. A single linear-algebra computation on snapshot pairs drew that
    nonlinear partition. (It is approximate: near the boundaries, where the basins are thin, 50 RBFs
    of width 1 cannot resolve it.)

    ## 4. Exercise

    **Exercise (the finite Koopman matrix).** `fn(a, b, c) -> K`: the $3 \times 3$ matrix with
    $g(F(x)) = K g(x)$ for $g(x) = (x_1, x_2, x_1^2)$ and the map of section 1. The check applies it to
    lifted random states.
    """)
    return


@app.cell
def _(check_finite_koopman_matrix, np):
    def my_finite_koopman_matrix(a, b, c):
        return np.array([[a, 0.0, 0.0],
                         [0.0, b, c],  # x2' = b x2 + c x1^2
                         [0.0, 0.0, a**2]])  # (x1^2)' = a^2 x1^2


    # NBVAL_CHECK_OUTPUT
    check_finite_koopman_matrix(my_finite_koopman_matrix)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Summary

    * The Koopman operator $(\mathcal K g)(x) = g(F(x))$ is linear for any dynamics; EDMD approximates
      it on a dictionary $\psi$ by least squares, $\psi(x_{k+1}) \approx \psi(x_k)\mathbf K$, and its eigenvectors
      give eigenfunctions $\varphi = \psi\,\xi$ with $\varphi(x_{k+1}) = \lambda\varphi(x_k)$.
    * When the dictionary spans an invariant subspace the result is exact: for
      $x_1' = ax_1$, $x_2' = bx_2 + cx_1^2$ EDMD recovered $1, a, b, a^2$ and $\varphi_b$ to $10^{-10}$; eigenvalues of
      dictionary functions outside the invariant span are approximations.
    * On the Duffing double well the dictionary decides everything: 50 RBFs forecast more than twice
      as well as DMD; 100 RBFs without regularization have unstable eigenvalues and explode; a
      small ridge fixes them.
    * An eigenfunction with eigenvalue near 1 is conserved, and its sign marks the basins of attraction.
    """)
    return


if __name__ == "__main__":
    app.run()
