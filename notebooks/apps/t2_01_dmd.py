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
    # DMD: the best linear map through your data

    You have snapshots of a system, $x_0, x_1, \dots, x_m$, taken at equal time steps: a simulated
    flow field, a video, the hidden states of an RNN. Dynamic mode decomposition (DMD; Schmid 2010,
    "exact DMD" of Tu et al. 2014) asks the simplest possible question of them: *which linear map
    $A$ sends each snapshot to the next one best?* Its eigenvalues then say which patterns grow,
    decay and oscillate, and at what rates; its eigenvectors (the *modes*) say what those patterns
    look like; and powers of $A$ forecast.

    This is the first chapter of the Koopman track. Koopman's insight (1931) is that *any* dynamical
    system, however nonlinear, acts linearly on functions of its state; DMD is the special case that
    only looks at the state itself. By the end you will have

    * derived DMD as least squares, then as an SVD-truncated fit in a low-dimensional basis, and
      checked lablib's implementation against the PyDMD package's to $10^{-10}$;
    * recovered the eigenvalues of a linear system exactly and read them on the unit circle;
    * found the few oscillating, decaying patterns hidden in a 64-dimensional signal, and chosen
      the rank from the singular values;
    * forecast a linear system to rounding error, and watched DMD fail on a nonlinear one, which
      sets up the next chapter.
    """)
    return


@app.cell
def _():
    import altair as alt
    import numpy as np
    import pandas as pd
    from threadpoolctl import threadpool_limits

    import lablib.viz  # noqa: F401  (charts that render offline in JupyterLab, the book and marimo)
    from lablib.exercises.koopman import check_dmd_eigenvalues
    from lablib.koopman import DMD, Duffing, LinearSystem, snapshot_pairs

    # NumPy's BLAS would start a thread per core for matrices this small, which only adds overhead
    # (least squares ran far slower with it on a busy 2-core machine). One thread is the fast choice.
    blas_limits = threadpool_limits(1)
    return (
        DMD,
        Duffing,
        LinearSystem,
        alt,
        check_dmd_eigenvalues,
        np,
        pd,
        snapshot_pairs,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. Least squares, then the SVD

    Stack the snapshots as columns: $X = [x_0, \dots, x_{m-1}]$ and $Y = [x_1, \dots, x_m]$, each
    $n \times m$. The linear map that fits $Y \approx A X$ best in the least-squares sense is

    $$
    A = Y X^{+},
    $$

    with $X^+$ the pseudo-inverse. For a state of a few dimensions that is the whole story. For a
    snapshot of $n = 10^5$ pixels, $A$ would be $n \times n$ and hopeless to form, and the data only
    spans an $r$-dimensional subspace anyway. So DMD takes the SVD $X \approx U_r S_r V_r^*$, keeps $r$
    directions, and looks at $A$ from inside them:

    $$
    \tilde A = U_r^* A U_r = U_r^* Y V_r S_r^{-1} \quad (r \times r), \qquad \tilde A w_i = \lambda_i w_i, \qquad \phi_i = Y V_r S_r^{-1} w_i .
    $$

    The $\lambda_i$ are the DMD eigenvalues and the $\phi_i$ the (exact) DMD modes: eigenvectors of
    $A_r = Y V_r S_r^{-1} U_r^*$, the rank-$r$ least-squares map. A forecast is
    $x_k \approx \sum_i b_i \lambda_i^k \phi_i$, with amplitudes $b$ fitted to $x_0$.

    Start with a linear system whose eigenvalues we choose: a rotation with slow decay, a faster
    decaying rotation, and a real decay (five dimensions, so the complex ones come in conjugate
    pairs). Four short trajectories from random starts:
    """)
    return


@app.cell
def _(DMD, LinearSystem, np, pd, snapshot_pairs):
    true_eigenvalues = np.array([0.98 * np.exp(0.25j), 0.98 * np.exp(-0.25j), 0.85 * np.exp(0.9j), 0.85 * np.exp(-0.9j), 0.6])
    linear = LinearSystem.from_eigenvalues(true_eigenvalues, seed=0)
    X_lin, Y_lin = snapshot_pairs(linear.trajectories(4, 30, seed=1), layout="columns")  # (5, 120) each
    dmd_lin = DMD(rank=5).fit(X_lin, Y_lin)
    eig_error = np.abs(dmd_lin.eigenvalues - linear.eigenvalues).max()
    assert eig_error < 1e-10, f"expected DMD to recover the linear system's eigenvalues to 1e-10, measured {eig_error:.1e}"
    pd.DataFrame({"true eigenvalue": np.round(linear.eigenvalues, 6), "DMD eigenvalue": np.round(dmd_lin.eigenvalues, 6),
                  "|lambda|": np.abs(dmd_lin.eigenvalues).round(4), "angle (rad / step)": np.angle(dmd_lin.eigenvalues).round(4)})
    return X_lin, Y_lin, dmd_lin, linear


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The modulus is the decay per step and the angle the rotation per step. On the complex plane,
    eigenvalues on the unit circle are neither growing nor decaying; inside they decay; outside they
    grow. With a time step $\Delta t$, $\omega = \log(\lambda)/\Delta t$ gives the continuous-time growth
    rate (real part) and angular frequency (imaginary part):
    """)
    return


@app.cell
def _(alt, dmd_lin, linear, np, pd):
    def eigenvalue_chart(named_eigenvalues: dict, title: str) -> alt.LayerChart:
        """The unit circle and the given eigenvalues (name -> complex array) in the complex plane."""
        _t = np.linspace(0, 2 * np.pi, 200)
        circle = alt.Chart(pd.DataFrame({"re": np.cos(_t), "im": np.sin(_t), "order": np.arange(200)})).mark_line(
            color="lightgray").encode(x="re:Q", y="im:Q", order="order:Q")
        points = pd.DataFrame([{"set": name, "re": z.real, "im": z.imag, "|lambda|": abs(z)}
                               for name, values in named_eigenvalues.items() for z in np.asarray(values)])
        dots = alt.Chart(points).mark_point(size=80, filled=False, strokeWidth=2).encode(
            x=alt.X("re:Q", scale=alt.Scale(domain=[-1.1, 1.1]), title="Re lambda"),
            y=alt.Y("im:Q", scale=alt.Scale(domain=[-1.1, 1.1]), title="Im lambda"),
            color=alt.Color("set:N", title=None), shape=alt.Shape("set:N", title=None),
            tooltip=["set", alt.Tooltip("re:Q", format=".4f"), alt.Tooltip("im:Q", format=".4f"), alt.Tooltip("|lambda|:Q", format=".4f")],
        )
        return (circle + dots).properties(width=260, height=260, title=title)


    eigenvalue_chart({"true": linear.eigenvalues, "DMD": dmd_lin.eigenvalues}, "a linear system: DMD is exact")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Is our DMD the DMD everyone uses? `tests/test_koopman_dmd.py` fits PyDMD's `DMD(svd_rank=r,
    exact=True)` to the same snapshots and compares eigenvalues and normalized modes, with a bound of
    $10^{-10}$. Here is the same comparison, if PyDMD is installed; on these snapshots both agree to
    rounding error, and the cell asserts $10^{-12}$:
    """)
    return


@app.cell
def _(X_lin, Y_lin, dmd_lin, np):
    try:
        import warnings

        from pydmd import DMD as PyDMD

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyDMD comments on the data's condition number
            _peer = PyDMD(svd_rank=5, exact=True).fit(X_lin, Y_lin)
        _order = np.lexsort((np.round(np.angle(_peer.eigs), 12), -np.round(np.abs(_peer.eigs), 12)))

        def _canonical(P):  # unit norm and the largest-magnitude entry real and positive: a mode's canonical form
            P = P / np.linalg.norm(P, axis=0)
            _phase = P[np.argmax(np.abs(P), axis=0), np.arange(P.shape[1])]
            return P * (np.abs(_phase) / _phase)

        peer_difference = np.abs(_peer.eigs[_order] - dmd_lin.eigenvalues).max()
        peer_mode_difference = np.abs(_canonical(_peer.modes[:, _order]) - _canonical(dmd_lin.modes)).max()
        assert peer_difference < 1e-12 and peer_mode_difference < 1e-12, (
            f"expected lablib's eigenvalues and normalized modes to match PyDMD's to 1e-12, "
            f"measured {peer_difference:.1e} and {peer_mode_difference:.1e}"
        )
        peer_message = f"lablib vs PyDMD: eigenvalues differ by {peer_difference:.1e} at most, normalized modes by {peer_mode_difference:.1e}"
    except ImportError:
        peer_difference = peer_mode_difference = 0.0
        peer_message = "PyDMD is not installed (pip install pydmd); the test suite runs this comparison"
    peer_message
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. Patterns in a high-dimensional signal

    Now the use DMD was invented for. A signal on 64 points in space, sampled for 100 steps, made of
    two travelling waves with different wavelengths, frequencies and decay rates, plus a little noise.
    Nothing in the raw numbers says "two waves"; the singular values of $X$ say how many directions
    matter, and DMD says what they do.
    """)
    return


@app.cell
def _(alt, np, pd):
    space_grid = np.linspace(0, 2 * np.pi, 64)[:, None]
    time_grid = np.arange(101)[None, :]
    field = (np.exp(-0.005 * time_grid) * np.cos(2 * space_grid - 0.3 * time_grid)  # slow wave, barely decaying
             + 0.6 * np.exp(-0.03 * time_grid) * np.cos(5 * space_grid + 0.8 * time_grid))  # fast wave, decaying
    field = field + 0.01 * np.random.default_rng(2).standard_normal(field.shape)  # (64, 101)
    singular_values = np.linalg.svd(field[:, :-1], compute_uv=False)
    sv_drop = singular_values[3] / singular_values[4]
    assert sv_drop > 50, f"expected the singular values to drop by more than 50x after the fourth, measured {sv_drop:.0f}x"
    sv_frame = pd.DataFrame({"index": np.arange(1, 21), "singular value": singular_values[:20]})
    alt.Chart(sv_frame).mark_bar().encode(
        x=alt.X("index:O", title="singular value index"), y=alt.Y("singular value:Q", scale=alt.Scale(type="log")),
        tooltip=["index", alt.Tooltip("singular value:Q", format=".3g")],
    ).properties(width=380, height=180, title="four directions carry the signal, the rest is noise")
    return field, space_grid, time_grid


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Each travelling wave $\cos(k s - \omega t)$ is a sum of two standing patterns
    ($\cos ks \cos\omega t + \sin ks \sin \omega t$), so two waves need four directions, and the singular
    values drop by a factor of more than 50 after the fourth. DMD with $r = 4$:
    """)
    return


@app.cell
def _(DMD, field, np, pd):
    dmd_field = DMD(rank=4).fit(field)  # one trajectory: pairs are consecutive columns
    field_modes = pd.DataFrame({
        "eigenvalue": np.round(dmd_field.eigenvalues, 4),
        "decay rate (per step)": (-np.log(np.abs(dmd_field.eigenvalues))).round(4),
        "frequency (rad / step)": np.abs(np.angle(dmd_field.eigenvalues)).round(4),
    })
    field_modes
    return dmd_field, field_modes


@app.cell
def _(field_modes, mo, np):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _rates = sorted(zip(field_modes["frequency (rad / step)"], field_modes["decay rate (per step)"]))
        _frequencies, _decays = [_f for _f, _ in _rates], [_d for _, _d in _rates]
        assert np.allclose(_frequencies, [0.3, 0.3, 0.8, 0.8], atol=0.01), f"expected frequencies 0.3, 0.3, 0.8, 0.8 to 0.01, found {_frequencies}"
        assert np.allclose(_decays, [0.005, 0.005, 0.03, 0.03], atol=0.002), f"expected decay rates 0.005, 0.005, 0.03, 0.03 to 0.002, found {_decays}"
        # NBVAL_CHECK_OUTPUT
        print("frequencies (rad / step):", ", ".join(f"{_f:.2f}" for _f in _frequencies),
              "| decay rates (per step):", ", ".join(f"{_d:.3f}" for _d in _decays))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The four eigenvalues come in two conjugate pairs: angles $\pm 0.3$ and $\pm 0.8$ radians per step
    with decay rates 0.005 and 0.03, the two waves' frequencies and damping, read off noisy data
    without being told the model. The real part of each mode is the wave's shape in space:
    """)
    return


@app.cell
def _(alt, dmd_field, np, pd):
    _keep = [i for i in range(4) if np.angle(dmd_field.eigenvalues[i]) > 0]  # one of each conjugate pair
    mode_rows = [{"mode": f"angle {np.angle(dmd_field.eigenvalues[i]):.2f}", "position": _p,
                  "real part": (dmd_field.modes[_p, i] / np.abs(dmd_field.modes[:, i]).max()).real}
                 for i in _keep for _p in range(64)]
    alt.Chart(pd.DataFrame(mode_rows)).mark_line().encode(
        x=alt.X("position:Q", title="position in space"), y=alt.Y("real part:Q", title="mode (normalized)"),
        color=alt.Color("mode:N", title="eigenvalue"),
    ).properties(width=380, height=160)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    How many ranks? Too few misses a pattern; more than needed only adds spurious, strongly damped
    eigenvalues fitted to the noise. The reconstruction error against the noise-free signal tells:
    """)
    return


@app.cell
def _(DMD, field, np, pd, space_grid, time_grid):
    _clean = (np.exp(-0.005 * time_grid) * np.cos(2 * space_grid - 0.3 * time_grid) + 0.6 * np.exp(-0.03 * time_grid) * np.cos(5 * space_grid + 0.8 * time_grid))
    rank_rows = [{"rank r": _r, "reconstruction error vs the clean signal":
                  np.linalg.norm(DMD(rank=_r).fit(field).reconstruct() - _clean) / np.linalg.norm(_clean)} for _r in [1, 2, 3, 4, 6, 10, 20]]
    rank_errors = pd.DataFrame(rank_rows)
    rank_errors.round(4)
    return (rank_errors,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Rank 2 captures the slow wave only; rank 3 cannot represent the second wave (it needs a
    conjugate pair) and is hardly better; rank 4 gets both, to 0.4%; extra ranks add nothing and,
    slowly, noise.
    """)
    return


@app.cell
def _(mo, rank_errors):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _by_rank = rank_errors.set_index("rank r")["reconstruction error vs the clean signal"]
        assert abs(_by_rank[4] - 0.004) < 0.001, f"expected rank 4 to reconstruct the clean signal to about 0.4%, measured {_by_rank[4]:.2%}"
        assert _by_rank[4] * 10 < _by_rank[2], f"expected rank 4 to beat rank 2 by more than 10x, measured {_by_rank[2] / _by_rank[4]:.0f}x"
        assert _by_rank[3] > 0.9 * _by_rank[2], f"expected rank 3 hardly better than rank 2, measured {_by_rank[3]:.3f} vs {_by_rank[2]:.3f}"
        assert _by_rank[[6, 10, 20]].min() > 0.99 * _by_rank[4] and _by_rank[20] > _by_rank[4], (
            f"expected extra ranks to add nothing but noise, measured {_by_rank.round(4).to_dict()}"
        )
        # NBVAL_CHECK_OUTPUT
        print(f"rank 4 reconstructs the clean signal to {_by_rank[4]:.1%}; rank 2 to {_by_rank[2]:.0%}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 3. Forecasting, and where it breaks

    A linear system is forecast exactly by powers of its eigenvalues. From a fresh initial state, 100
    steps ahead (the training trajectories were 30 steps long):
    """)
    return


@app.cell
def _(dmd_lin, linear, mo, np):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _x0 = linear.sample_initial_conditions(1, seed=5)[0]
        truth_linear = linear.simulate(_x0, 100)  # (101, 5)
        forecast_linear = dmd_lin.predict(_x0, 100)
        linear_forecast_error = np.abs(forecast_linear - truth_linear).max()
        assert linear_forecast_error < 1e-8, f"expected the linear system's forecast exact to 1e-8, measured {linear_forecast_error:.1e}"
        print(f"linear system, 100 steps ahead: max error {linear_forecast_error:.1e}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Now a nonlinear system: the damped Duffing oscillator $\ddot x = -\delta \dot x + x - x^3$, a double
    well with stable rest points at $x = \pm 1$. Fit DMD (rank 2: the state is $(x, \dot x)$) on 100
    trajectories and forecast a fresh one:
    """)
    return


@app.cell
def _(DMD, Duffing, alt, np, pd, snapshot_pairs):
    duffing = Duffing()
    X_duff, Y_duff = snapshot_pairs(duffing.trajectories(100, 100, seed=0), layout="columns")
    dmd_duff = DMD(rank=2, dt=duffing.dt).fit(X_duff, Y_duff)
    _x0 = np.array([1.9, 0.5])
    truth_duff = duffing.simulate(_x0, 150)
    forecast_duff = dmd_duff.predict(_x0, 150)
    duffing_rows = ([{"source": "true (Duffing)", "step": k, "x": truth_duff[k, 0], "v": truth_duff[k, 1]} for k in range(151)]
                    + [{"source": "DMD forecast", "step": k, "x": forecast_duff[k, 0], "v": forecast_duff[k, 1]} for k in range(151)])
    _frame = pd.DataFrame(duffing_rows)
    _phase = alt.Chart(_frame).mark_line().encode(
        x=alt.X("x:Q", title="position x"), y=alt.Y("v:Q", title="velocity v"), color=alt.Color("source:N", title=None), order="step:Q",
    ).properties(width=220, height=220, title="phase plane")
    _series = alt.Chart(_frame).mark_line().encode(
        x=alt.X("step:Q", title="step (dt = 0.1)"), y=alt.Y("x:Q", title="position x"), color=alt.Color("source:N", title=None),
    ).properties(width=240, height=220, title="position over time")
    (_phase | _series)
    return dmd_duff, duffing, forecast_duff, truth_duff


@app.cell
def _(dmd_duff, duffing, forecast_duff, mo, np, truth_duff):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        assert duffing.dt == 0.1, f"the charts say dt = 0.1; the system's dt is {duffing.dt}"
        hilltop_crossings = int(np.sum(np.diff(np.sign(truth_duff[:, 0])) != 0))
        assert hilltop_crossings == 1 and abs(truth_duff[-1, 0] + 1) < 0.05, (
            f"expected the true trajectory to cross the hilltop once and settle near x = -1, "
            f"measured {hilltop_crossings} crossings, final x {truth_duff[-1, 0]:+.3f}"
        )
        assert np.all(np.abs(dmd_duff.eigenvalues) < 1) and np.all(dmd_duff.eigenvalues.imag != 0), (
            f"expected DMD's eigenvalues a complex pair inside the unit circle (a spiral into the origin), found {dmd_duff.eigenvalues}"
        )
        assert abs(forecast_duff[-1, 0]) < 0.2 and abs(forecast_duff[-1, 0] - truth_duff[-1, 0]) > 0.5, (
            f"expected the DMD forecast to end near the hilltop x = 0, far from the true well, measured {forecast_duff[-1, 0]:+.3f}"
        )
        print(f"Duffing: DMD eigenvalues {np.round(dmd_duff.eigenvalues, 4)}; final position true {truth_duff[-1, 0]:+.3f}, "
              f"DMD {forecast_duff[-1, 0]:+.3f}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The trajectory crosses the hilltop once and settles into the left well at $x = -1$. A
    linear map of the state can only have one fixed point, the origin, so the DMD forecast spirals
    towards $x = 0$, which is the *unstable* hilltop between the wells. No choice of $A$ can fix that: the two wells are a nonlinear fact. The
    fix is not a better fit of the state but a better choice of what to fit: functions of the state
    (such as $x^2$, $x^3$, $x\dot x$), on which the dynamics can be linear. That is the Koopman operator,
    and the next chapter.

    ## 4. Exercise

    **Exercise (DMD eigenvalues).** `fn(X, Y, r) -> eigenvalues`: truncate the SVD of $X$ to rank $r$,
    form $\tilde A = U_r^* Y V_r S_r^{-1}$ and return its $r$ eigenvalues in any order. The check
    compares them with `lablib.koopman.DMD` on three linear systems.
    """)
    return


@app.cell
def _(check_dmd_eigenvalues, np):
    def my_dmd_eigenvalues(X, Y, r):
        U, s, Vh = np.linalg.svd(X, full_matrices=False)
        U, s, V = U[:, :r], s[:r], Vh[:r].conj().T
        return np.linalg.eigvals(U.conj().T @ Y @ V / s)  # dividing columns by s is right-multiplying by S^-1


    # NBVAL_CHECK_OUTPUT
    check_dmd_eigenvalues(my_dmd_eigenvalues)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Summary

    * DMD is the best linear map between consecutive snapshots, $A = YX^+$, computed inside the top
      $r$ singular directions: $\tilde A = U_r^* Y V_r S_r^{-1}$; eigenvalues $\lambda_i$, exact modes
      $\phi_i = Y V_r S_r^{-1} w_i$, forecast $\sum_i b_i \lambda_i^k \phi_i$. lablib's agrees with PyDMD's.
    * Modulus and angle of an eigenvalue are decay and frequency per step; the unit circle separates
      growth from decay.
    * On a 64-dimensional noisy signal the singular values showed four directions, and rank-4 DMD
      recovered both waves' frequencies and decay rates and reconstructed the clean signal within 2%.
    * Linear systems are forecast to rounding error; the Duffing oscillator is not: a linear map of
      the state has one fixed point and cannot represent two wells. Lifting the state fixes that.
    """)
    return


if __name__ == "__main__":
    app.run()
