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
    # Koopman with inputs, and the bridge to linear RNNs

    So far the systems ran on their own. Add an input $u_k$ (a force, a control, the next token) and
    the Koopman idea still applies: find observables $z = \psi(x)$ in which the dynamics are linear in
    $z$ *and* in $u$,

    $$
    z_{k+1} = K z_k + B u_k , \qquad x_k \approx C z_k .
    $$

    That is a linear state-space model. Diagonalize $K$ and it becomes $N$ independent scalar
    recurrences $h_{k+1} = \lambda h_k + b\,u_k$: exactly the layer at the heart of S4D, S5, LRU and Mamba.
    Linear recurrences in turn can be computed by a *parallel scan*, which is how those models
    train on long sequences, and how track 1's linear attention could be too.

    By the end you will have

    * fitted DMD with control (DMDc) and a lifted linear model $z' = Kz + Bu$, and compared their
      forecasts of a forced nonlinear oscillator under random inputs;
    * used the lifted model for model-predictive control: pushed the Duffing oscillator from one
      well to the other with bounded force, planning each step by linear least squares;
    * rewritten the fitted model in its eigen-coordinates as a diagonal complex recurrence, checked
      to $10^{-10}$;
    * derived the associative operator that turns the recurrence into a scan, checked two parallel
      scans against the loop, and run the Triton scan kernel.
    """)
    return


@app.cell
def _():
    import os

    import altair as alt
    import numpy as np
    import pandas as pd
    import torch
    from threadpoolctl import threadpool_limits

    # Before lablib.kernels is imported: interpret the kernels on a CPU, compile them on a GPU.
    os.environ.setdefault("TRITON_INTERPRET", "0" if torch.cuda.is_available() else "1")

    import lablib.viz  # noqa: F401  (charts that render offline in JupyterLab, the book and marimo)
    from lablib.exercises.koopman import check_affine_combine
    from lablib.koopman import DMDc, ForcedDuffing, FiniteKoopmanMap, MonomialDictionary, RBFDictionary
    from lablib.koopman.control import LiftedControlModel
    from lablib.koopman.recurrence import diagonal_recurrence_loop, diagonal_recurrence_scan
    from lablib.testing import max_scaled_error
    from lablib.timing import best_seconds

    blas_limits = threadpool_limits(1)  # small least-squares problems: one BLAS thread is the fast choice
    return (
        DMDc,
        FiniteKoopmanMap,
        ForcedDuffing,
        LiftedControlModel,
        MonomialDictionary,
        RBFDictionary,
        alt,
        best_seconds,
        check_affine_combine,
        diagonal_recurrence_loop,
        diagonal_recurrence_scan,
        max_scaled_error,
        np,
        pd,
        torch,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. Linear models with inputs

    **DMDc** (Proctor, Brunton and Kutz, 2016) fits $x_{k+1} \approx A x_k + B u_k$ by least squares on the
    stacked data $[X; U]$: DMD with the input as extra rows. **The lifted model** (Korda and Mezić,
    2018) does the same on lifted states $z = \psi(x)$. First the map of chapter 2 with an input on
    $x_2$: $x_1' = a x_1$, $x_2' = b x_2 + c x_1^2 + u$. On $(x_1, x_2, x_1^2)$ it is exactly linear in $z$ and $u$,
    so the lifted model is exact while DMDc, linear in $x$, is not:
    """)
    return


@app.cell
def _(DMDc, FiniteKoopmanMap, LiftedControlModel, MonomialDictionary, np, pd):
    controlled_map = FiniteKoopmanMap(a=0.9, b=0.5, c=1.0, controlled=True)
    _rng = np.random.default_rng(0)
    _x0 = controlled_map.sample_initial_conditions(40, seed=0)
    _u = _rng.uniform(-1, 1, size=(40, 20, 1))
    _traj = controlled_map.simulate(_x0, 20, u=_u)  # (40, 21, 2)
    _X, _Y, _U = _traj[:, :-1].reshape(-1, 2), _traj[:, 1:].reshape(-1, 2), _u.reshape(-1, 1)
    map_dmdc = DMDc().fit(_X.T, _Y.T, _U.T)  # DMD convention: snapshots as columns
    map_lifted = LiftedControlModel(MonomialDictionary(2, 2)).fit(_X, _Y, _U)  # rows: samples
    _xt, _ut = controlled_map.sample_initial_conditions(1, seed=5)[0], np.random.default_rng(5).uniform(-1, 1, size=(30, 1))
    _truth = controlled_map.simulate(_xt, 30, u=_ut)
    map_errors = {"DMDc (linear in x)": np.abs(map_dmdc.predict(_xt, _ut) - _truth).max(),
                  "lifted, monomials of degree 2": np.abs(map_lifted.predict(_xt, _ut) - _truth).max()}
    pd.Series(map_errors, name="max error, 30 steps under a random input").map("{:.1e}".format)
    return (map_errors,)


@app.cell
def _(map_errors, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        assert map_errors["lifted, monomials of degree 2"] < 1e-10, (
            f"expected the lifted model exact on the controlled finite map (1e-10), measured {map_errors['lifted, monomials of degree 2']:.1e}"
        )
        assert map_errors["DMDc (linear in x)"] > 0.01, f"expected DMDc off by more than 0.01, measured {map_errors['DMDc (linear in x)']:.3f}"
        # NBVAL_CHECK_OUTPUT
        print(f"DMDc, linear in x, misses the controlled finite map by up to {map_errors['DMDc (linear in x)']:.2f} over 30 steps")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Now the forced Duffing oscillator, $\ddot x = -\delta\dot x + x - x^3 + u$, with $u$ held constant over each
    step: 200 training trajectories of 50 steps under random inputs in $[-1, 1]$, and 50 test
    trajectories of 30 steps under fresh random inputs.
    """)
    return


@app.cell
def _(
    DMDc,
    ForcedDuffing,
    LiftedControlModel,
    MonomialDictionary,
    RBFDictionary,
    np,
    pd,
):
    forced = ForcedDuffing()
    _x0 = forced.sample_initial_conditions(200, seed=0)
    _u = np.random.default_rng(0).uniform(-1, 1, size=(200, 50, 1))
    _traj = forced.simulate(_x0, 50, u=_u)
    X_f, Y_f, U_f = _traj[:, :-1].reshape(-1, 2), _traj[:, 1:].reshape(-1, 2), _u.reshape(-1, 1)
    test_starts = forced.sample_initial_conditions(50, seed=9)
    test_inputs = np.random.default_rng(9).uniform(-1, 1, size=(50, 30, 1))
    _truth = forced.simulate(test_starts, 30, u=test_inputs)
    forced_models = {
        "DMDc": None,
        "lifted, monomials of degree 3": LiftedControlModel(MonomialDictionary(2, 3), ridge=1e-8).fit(X_f, Y_f, U_f),
        "lifted, 50 RBFs": LiftedControlModel(RBFDictionary.from_data(X_f, 50, 1.0, seed=0), ridge=1e-8).fit(X_f, Y_f, U_f),
    }
    _dmdc = DMDc().fit(X_f.T, Y_f.T, U_f.T)
    forced_rows = []
    for _name, _model in forced_models.items():
        _pred = np.stack([_dmdc.predict(test_starts[i], test_inputs[i]) for i in range(50)]) if _model is None else _model.predict(test_starts, test_inputs)
        forced_rows.append({"model": _name, "RMSE over 30 steps": np.sqrt(((_pred - _truth) ** 2).mean())})
    forced_table = pd.DataFrame(forced_rows)
    forced_table.round(3)
    return forced, forced_models, forced_table, test_inputs, test_starts


@app.cell
def _(forced_table):
    _f = forced_table.set_index("model")["RMSE over 30 steps"]
    assert 2 * _f["lifted, 50 RBFs"] < _f["DMDc"], (
        f"expected 50 RBFs to forecast the forced system at least 2x better than DMDc, measured RMSE {_f['lifted, 50 RBFs']:.3f} vs {_f['DMDc']:.3f}"
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. Control with a linear model of a nonlinear system

    Why bother with a linear model when the truth is nonlinear? Because planning with a linear model
    is least squares. Model-predictive control: at every step, plan inputs $u_0, \dots, u_{H-1}$ that
    bring the *predicted* state to a target over the next $H = 20$ steps,

    $$
    \min_{u}\; \sum_{k=1}^{H} \lVert C z_k - x_{\text{target}} \rVert^2 + \rho \lVert u \rVert^2,
    \qquad z_k = K^k z_0 + \sum_{j<k} K^{k-1-j} B u_j ,
    $$

    a linear least-squares problem in $u$ because $z_k$ is linear in $u$; apply the first input (clipped
    to $|u| \le 1$) to the *true* system, observe, and plan again. The task: move the oscillator from
    the bottom of the left well, $x = (-1, 0)$, to the bottom of the right one, $(1, 0)$, which needs a
    push over the hilltop.
    """)
    return


@app.cell
def _(alt, forced, forced_models, np, pd):
    def plan_inputs(model, x, target, horizon=20, rho=1e-2):
        """The input sequence (horizon,) minimizing the predicted tracking cost of the lifted linear model from state x."""
        z = model.lift(x[None])[0]  # (p,)
        K, B, C = model.K, model.B[:, 0], model.C
        powers = [np.eye(len(z))]
        for _ in range(horizon):
            powers.append(K @ powers[-1])
        rows, rhs = [], []
        for k in range(1, horizon + 1):
            effect = np.zeros((C.shape[0], horizon))  # how u_j moves the predicted x_k
            for j in range(k):
                effect[:, j] = C @ powers[k - 1 - j] @ B
            rows.append(effect)
            rhs.append(target - C @ powers[k] @ z)  # what the free evolution misses
        A = np.vstack(rows + [np.sqrt(rho) * np.eye(horizon)])
        b = np.concatenate(rhs + [np.zeros(horizon)])
        return np.clip(np.linalg.lstsq(A, b, rcond=None)[0], -1.0, 1.0)


    controller = forced_models["lifted, 50 RBFs"]
    _x = np.array([-1.0, 0.0])
    target_state = np.array([1.0, 0.0])
    mpc_rows = []
    for _k in range(60):
        _u_now = plan_inputs(controller, _x, target_state)[0]
        mpc_rows.append({"step": _k, "x": _x[0], "v": _x[1], "u": _u_now})
        _x = forced.simulate(_x, 1, u=np.array([[_u_now]]))[1]  # the true nonlinear system
    mpc_rows.append({"step": 60, "x": _x[0], "v": _x[1], "u": np.nan})
    mpc = pd.DataFrame(mpc_rows)
    _long = mpc.melt(id_vars="step", value_vars=["x", "u"], var_name="signal", value_name="value")
    alt.Chart(_long).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("step:Q", title="step (dt = 0.1)"), y=alt.Y("value:Q", title=None),
        color=alt.Color("signal:N", title=None, sort=["x", "u"], legend=alt.Legend(labelExpr="datum.label == 'x' ? 'position x' : 'force u'")),
    ).properties(width=420, height=220, title="MPC with the lifted linear model, applied to the true Duffing oscillator")
    return controller, mpc, target_state


@app.cell
def _(controller, forced, mpc, np, target_state):
    _miss = np.abs(mpc.iloc[-1][["x", "v"]].to_numpy(dtype=float) - target_state).max()
    assert _miss < 0.05, f"expected the controller to end within 0.05 of the right well's bottom (1, 0), measured {_miss:.3f}"
    assert mpc.u.abs().max() <= 1.0, f"expected the force always within [-1, 1], measured up to {mpc.u.abs().max():.3f}"
    assert mpc.u.max() == 1.0 and mpc.u.min() < 0, f"expected a full-force push and a braking (negative) force, measured u in [{mpc.u.min():.2f}, {mpc.u.max():.2f}]"
    assert controller.K.shape == (53, 53) and mpc.u.notna().sum() == 60, "the text describes a 53-dimensional model and 60 solves"
    _unforced = forced.simulate(np.array([-1.0, 0.0]), 60, u=np.zeros((60, 1)))
    assert np.abs(_unforced - [-1.0, 0.0]).max() < 1e-9, "expected the unforced oscillator to stay at (-1, 0)"
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The controller pushes right at full force until the oscillator is over the hilltop, then brakes
    with a negative force and eases off as it settles into the right well, all planned with a
    53-dimensional *linear* model, 60 small least-squares solves in all. (The small force left at the
    end is the linear model's error near the target.) Without force the oscillator would simply stay
    at $(-1, 0)$.

    ## 3. Diagonal: the linear RNN inside

    Diagonalize the fitted $K = V \Lambda V^{-1}$ and change coordinates, $h = V^{-1} z$:

    $$
    h_{k+1} = \Lambda h_k + (V^{-1} B)\, u_k, \qquad \text{i.e.}\quad h_{k+1, i} = \lambda_i\, h_{k, i} + \bar b_i\, u_k \quad \text{for each } i .
    $$

    $N$ independent complex scalar recurrences, read out linearly: $x_k \approx (C V) h_k$. This is the
    diagonal state-space layer of S4D and S5, the LRU's recurrence, and, with $\lambda$ depending on
    the input, Mamba's. Koopman analysis and linear RNNs meet here: the eigenvalues DMD reads off
    data are the $\lambda$s a linear RNN learns. The same forecast, computed the diagonal way:
    """)
    return


@app.cell
def _(
    controller,
    diagonal_recurrence_loop,
    mo,
    np,
    test_inputs,
    test_starts,
    torch,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        koopman_lambdas, _V = np.linalg.eig(controller.K)
        _Vinv = np.linalg.inv(_V)
        b_bar = _Vinv @ controller.B[:, 0]  # (p,) complex
        readout = controller.C @ _V  # (2, p) complex
        _xt0, _u_seq = test_starts[0], test_inputs[0, :, 0]  # one test trajectory and its inputs
        h0 = torch.tensor(_Vinv @ controller.lift(_xt0[None])[0])  # (p,) complex128
        # h_k for k = 1..30: the recurrence h_{k} = lambda h_{k-1} + b_bar u_{k-1}, with the input projected first
        koopman_drive = torch.tensor(np.outer(_u_seq, b_bar))  # (30, p)
        h_diag = diagonal_recurrence_loop(torch.tensor(koopman_lambdas), koopman_drive, h0)  # (30, p)
        diag_forecast = (h_diag.numpy() @ readout.T).real  # (30, 2)
        dense_forecast = controller.predict(_xt0, test_inputs[0])[1:]
        diagonal_error = np.abs(diag_forecast - dense_forecast).max()
        assert diagonal_error < 1e-10, f"expected the diagonal recurrence to reproduce the dense model to 1e-10, measured {diagonal_error:.1e}"
        print(f"{len(koopman_lambdas)} diagonal complex recurrences vs the dense lifted model, 30 steps: max difference {diagonal_error:.1e}")
    return h0, koopman_drive, koopman_lambdas


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 4. A recurrence is a scan

    A loop over $T$ steps takes $T$ dependent steps, however many processors you have. But each step
    is an affine map $h \mapsto a_t h + b_t$ (here $a_t = \lambda$, $b_t = \bar b u_t$), and composing two affine
    maps gives another:

    $$
    (a_1, b_1) \text{ then } (a_2, b_2) \;=\; (a_2 a_1,\; a_2 b_1 + b_2).
    $$

    This composition is *associative*, so all prefixes $h_1, \dots, h_T$ can be computed by a parallel
    prefix scan in $O(\log T)$ dependent rounds: Hillis and Steele's (combine with the element $2^r$
    to the left in round $r$; $O(T\log T)$ work) or Blelloch's (an up-sweep and a down-sweep; $O(T)$
    work). With a time-varying $a_t$ (Mamba's selective $\lambda$, or a gate from chapter 3 of track 1)
    nothing changes. Both scans against the loop, real and complex, values and gradients (the
    gradient with respect to a fixed $\lambda$ sums $T$ terms, so errors are scaled by each tensor's size):
    """)
    return


@app.cell
def _(diagonal_recurrence_loop, diagonal_recurrence_scan, pd, torch):
    def scaled_difference(x, y):
        """max |x - y| / max(1, max |y|): errors of long sums scale with the sums' size (complex-safe)."""
        return ((x - y).abs().max() / max(1.0, y.abs().max().item())).item()


    scan_rows = []
    for _T in [1, 7, 64, 1000]:
        for _kind in ["real, time-varying", "complex, fixed"]:
            _g = torch.Generator().manual_seed(_T)
            if _kind.startswith("real"):
                _a = torch.rand(2, _T, 16, generator=_g, dtype=torch.float64).requires_grad_()
                _v = torch.randn(2, _T, 16, generator=_g, dtype=torch.float64).requires_grad_()
            else:
                _a = (0.99 * torch.exp(1j * torch.rand(16, generator=_g, dtype=torch.float64))).requires_grad_()
                _v = torch.randn(2, _T, 16, generator=_g, dtype=torch.complex128).requires_grad_()
            _h0 = torch.randn(2, 16, generator=_g, dtype=_v.dtype)  # a nonzero start, so lambda matters even at T = 1
            _probe = torch.randn(2, _T, 16, generator=_g, dtype=torch.float64)
            _loop = diagonal_recurrence_loop(_a, _v, _h0)
            _loop_grads = torch.autograd.grad((_loop.real * _probe).sum(), [_a, _v])
            for _method in ["hillis_steele", "blelloch"]:
                _scan = diagonal_recurrence_scan(_a, _v, _h0, method=_method)
                _scan_grads = torch.autograd.grad((_scan.real * _probe).sum(), [_a, _v])
                scan_rows.append({"T": _T, "inputs": _kind, "scan": _method,
                                  "max error (values, gradients)": max(
                                      scaled_difference(_scan, _loop), *[scaled_difference(_s, _l) for _s, _l in zip(_scan_grads, _loop_grads)])})
    scan_check = pd.DataFrame(scan_rows)
    assert scan_check.iloc[:, -1].max() < 1e-10, (
        f"expected both scans within 1e-10 (scaled) of the loop in values and gradients, measured worst {scan_check.iloc[:, -1].max():.1e}"
    )
    scan_check.pivot_table(index="T", columns=["inputs", "scan"], values="max error (values, gradients)").map("{:.0e}".format)
    return (scan_check,)


@app.cell
def _(mo, scan_check):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        print(f"{len(scan_check)} scan-vs-loop comparisons (float64, values and gradients): {scan_check['T'].nunique()} lengths "
              f"x {scan_check.inputs.nunique()} kinds of input x {scan_check.scan.nunique()} scans")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    What does it buy in PyTorch on a CPU? The loop issues $T$ tiny operations from Python; the scans
    issue $O(\log T)$ large ones (16 channels, batch 8, one thread, fastest of 3):
    """)
    return


@app.cell
def _(
    alt,
    best_seconds,
    diagonal_recurrence_loop,
    diagonal_recurrence_scan,
    pd,
    torch,
):
    _threads = torch.get_num_threads()
    torch.set_num_threads(1)
    scan_timing_rows = []
    for _T in [256, 1024, 4096]:
        _a = torch.rand(8, _T, 16, generator=torch.Generator().manual_seed(1))
        _v = torch.randn(8, _T, 16, generator=torch.Generator().manual_seed(2))
        for _name, _fn in [("loop", lambda: diagonal_recurrence_loop(_a, _v)),
                           ("Hillis-Steele scan", lambda: diagonal_recurrence_scan(_a, _v, method="hillis_steele")),
                           ("Blelloch scan", lambda: diagonal_recurrence_scan(_a, _v, method="blelloch"))]:
            scan_timing_rows.append({"method": _name, "T": _T, "ms": 1e3 * best_seconds(_fn, repeats=3)})
    torch.set_num_threads(_threads)
    scan_timing = pd.DataFrame(scan_timing_rows)
    _longest = scan_timing[scan_timing["T"] == 4096].set_index("method").ms
    assert _longest["Blelloch scan"] < _longest["loop"] / 2 and _longest["Hillis-Steele scan"] < _longest["loop"], (
        f"expected at T = 4096 Blelloch's scan over 2x faster than the loop and Hillis-Steele's faster (timings vary), "
        f"measured {_longest.round(2).to_dict()} ms"
    )
    alt.Chart(scan_timing).mark_line(point=True).encode(
        x=alt.X("T:Q", scale=alt.Scale(type="log", base=2), title="sequence length T"),
        y=alt.Y("ms:Q", scale=alt.Scale(type="log"), title="milliseconds (fastest of 3, 1 thread)"),
        color=alt.Color("method:N", title=None), tooltip=["method", "T", alt.Tooltip("ms:Q", format=".2f")],
    ).properties(width=380, height=220)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The times are measured here and vary from run to run (the cell asserts only that at $T = 4096$
    both scans beat the loop, Blelloch's by more than a factor of 2; Hillis and Steele's does
    $O(T \log T)$ work and gains less). On one CPU thread the scans win only because they make
    fewer, larger PyTorch calls; their real advantage is on parallel hardware, where the
    $O(\log T)$ depth is what counts. That is the next section's kernel.

    ## 5. The scan as a Triton kernel

    `lablib.kernels.scan.diagonal_scan(lmbda, x, h0=..., return_final=True)` computes the same
    recurrence in Triton. Each program owns a block of channels of one sequence and walks time in
    chunks of `chunk_size` steps; inside a chunk, `tl.associative_scan` runs the combine above over
    the chunk's (a, b) pairs in parallel, and the state carried between chunks is one more affine
    step. Complex $\lambda$ (the Koopman case) is handled as pairs of real numbers with the complex
    multiply written out. The backward pass is the same scan run backwards in time:
    $g_t = \partial L/\partial h_t + \bar\lambda_{t+1} g_{t+1}$, then $\partial L/\partial x_t = g_t$ and
    $\partial L/\partial \lambda_t = g_t \bar h_{t-1}$ (the module docstring derives it). Checked against the
    loop with autograd, on the complex recurrence of section 3 and on real, time-varying gates:
    """)
    return


@app.cell
def _(
    diagonal_recurrence_loop,
    h0,
    koopman_drive,
    koopman_lambdas,
    max_scaled_error,
    pd,
    torch,
):
    from lablib.kernels.scan import INTERPRETED, diagonal_scan

    DEVICE = "cpu" if INTERPRETED else "cuda"  # interpreted kernels take CPU tensors, compiled ones CUDA tensors


    def loop_and_kernel(lmbda, x, h0, probe):
        """h, final state and the gradients of (lmbda, x, h0), from the loop (complex128/float64) and from the kernel."""
        results = []
        for use_kernel in (False, True):
            wide = torch.complex128 if x.is_complex() else torch.float64
            leaves = [t.detach().clone().to(DEVICE if use_kernel else "cpu") for t in (lmbda, x, h0)]
            if not use_kernel:
                leaves = [t.to(wide) for t in leaves]
            leaves = [t.requires_grad_() for t in leaves]
            if use_kernel:
                h, final = diagonal_scan(*leaves[:2], h0=leaves[2], return_final=True, chunk_size=16)
            else:
                h = diagonal_recurrence_loop(*leaves)
                final = h[..., -1, :]
            loss = (h * probe.to(h.device, h.dtype)).real.sum() + final.abs().pow(2).sum()
            results.append([h, final, *torch.autograd.grad(loss, leaves)])
        return results


    _g = torch.Generator().manual_seed(40)
    kernel_cases = {
        "complex, fixed lambda (section 3's model)": (torch.tensor(koopman_lambdas, dtype=torch.complex64), koopman_drive[None].to(torch.complex64),
                                                      h0[None].to(torch.complex64)),
        "real, time-varying gates": (torch.rand(3, 45, 24, generator=_g), torch.randn(3, 45, 24, generator=_g), torch.randn(3, 24, generator=_g)),
    }
    kernel_rows = []
    for _name, (_a, _x, _h0) in kernel_cases.items():
        _probe = torch.randn(_x.shape, generator=_g, dtype=torch.float64)
        _reference, _ours = loop_and_kernel(_a, _x, _h0, _probe)
        for _what, _r, _o in zip(["h", "final state", "d lambda", "d x", "d h0"], _reference, _ours):
            kernel_rows.append({"case": _name, "tensor": _what, "max error": max_scaled_error(_o.detach().cpu(), _r.detach())})
    scan_kernel_check = pd.DataFrame(kernel_rows)
    assert scan_kernel_check["max error"].max() < 1e-5, (
        f"expected the Triton scan within 1e-5 of the loop in values, final state and every gradient, "
        f"measured worst {scan_kernel_check['max error'].max():.1e}"
    )
    scan_kernel_check.pivot_table(index="tensor", columns="case", values="max error", sort=False).map("{:.0e}".format)
    return (scan_kernel_check,)


@app.cell
def _(mo, scan_kernel_check):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_CHECK_OUTPUT
        print(f"Triton scan vs the loop: {len(scan_kernel_check)} comparisons (values, final state, every gradient) on "
              f"{scan_kernel_check.case.nunique()} cases")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The kernel ran in Triton's interpreter unless a GPU was found: this shows it is correct, not
    that it is fast. No GPU has been available to this project yet, so we quote no GPU timings.

    ## 6. Exercise

    **Exercise (the combine operator).** `fn(a1, b1, a2, b2) -> (a, b)`: the affine step equal to
    applying $h \mapsto a_1 h + b_1$ first and then $h \mapsto a_2 h + b_2$. The check tests it on random
    real and complex tensors and checks that a scan built from it matches the loop.
    """)
    return


@app.cell
def _(check_affine_combine):
    def my_combine(a1, b1, a2, b2):
        return a2 * a1, a2 * b1 + b2  # a2 (a1 h + b1) + b2


    # NBVAL_CHECK_OUTPUT
    check_affine_combine(my_combine)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Summary

    * With inputs, Koopman's linear model is a state-space model $z' = Kz + Bu$. On lifted coordinates
      it was exact for the controlled finite map and forecast forced Duffing more than twice as well
      as DMDc.
    * Planning with the linear model is least squares: receding-horizon MPC moved the oscillator
      between wells with $|u| \le 1$.
    * Diagonalized, the model is $N$ independent complex recurrences $h \leftarrow \lambda h + \bar b u$ (to
      $10^{-10}$): the diagonal SSM / linear RNN layer, whose $\lambda$s are Koopman eigenvalues.
    * The recurrence is a scan over the associative composition of affine maps; two parallel scans
      match the loop in values and gradients, and the Triton kernel runs one per block of channels.
    """)
    return


if __name__ == "__main__":
    app.run()
