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
    # Linear paths between trained networks

    Train a network twice and you get two different sets of weights. Is there a *straight line* between
    them along which the network keeps working? Three lines of work say: often yes, and when not, for a
    reason that can be removed.

    * **Linear mode connectivity** (Frankle, Dziugaite, Roy & Carbin, ICML 2020): two copies of one network,
      trained from a shared checkpoint with different data orders, end up on a line of low error, once
      the checkpoint is late enough: "standard vision models become stable to SGD noise early in training".
      Two independent initializations do not.
    * **Git Re-Basin** (Ainsworth, Hayase & Srinivasa, ICLR 2023): much of the gap between independent
      networks is the permutation symmetry of hidden units. Permute the units of one network to match
      the other (*weight matching*, one linear assignment problem per layer) and the barrier shrinks,
      down to zero for wide enough networks.
    * **Wide networks evolve as linear models** (Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein &
      Pennington, NeurIPS 2019): a wide network trained by gradient descent stays close to its first-order
      Taylor expansion in the weights, a *linear model* $f_\text{lin}(x;\theta) = f(x;\theta_0) + J(x)(\theta - \theta_0)$,
      and the gap shrinks like $1/\sqrt{\text{width}}$.

    All three on small multilayer perceptrons trained on scikit-learn's bundled digits. By the end you will have

    * measured the loss and error barrier on the straight line between two networks, and the spawn test;
    * written weight matching as coordinate descent over linear assignment problems, checked that a
      permuted network computes exactly the same function, and measured how matching and width shrink the barrier;
    * trained a network and its linearization (by `torch.func.jvp`) side by side, and measured their
      gap against width; and fitted the purest linear model, random-features ridge regression, in closed form.
    """)
    return


@app.cell
def _():
    import time

    import numpy as np
    import pandas as pd
    import torch
    from threadpoolctl import threadpool_limits

    import lablib.viz  # noqa: F401  (charts that render offline in JupyterLab, the book and marimo)
    from lablib.exercises.paths import check_barrier, check_match_one_layer, check_permute_hidden
    from lablib.paths import (ALPHAS, RandomFeaturesRidge, barrier, evaluate, interpolate, linearize, load_digits_split,
                              match_objective, ntk_max_eigenvalue, path_metrics, permute, random_permutation, relu_features,
                              ridge, ridge_direct, targets, train_side_by_side, weight_matching)
    from lablib.paths.charts import gap_chart, path_chart, spawn_chart
    from lablib.paths.experiment import ADAM, LINEARIZE, independent_pair, load_results, mlp, spawn_pairs
    from lablib.paths.tables import gap_frame, loglog_slope, rebasin_frames, spawn_frame

    torch.set_num_threads(1)  # one thread: these networks are small, and the machine may be shared
    blas_limits = threadpool_limits(1)
    chapter_start = time.perf_counter()
    return (
        ADAM,
        ALPHAS,
        LINEARIZE,
        RandomFeaturesRidge,
        barrier,
        chapter_start,
        check_barrier,
        check_match_one_layer,
        check_permute_hidden,
        evaluate,
        gap_chart,
        gap_frame,
        independent_pair,
        linearize,
        load_digits_split,
        load_results,
        loglog_slope,
        match_objective,
        mlp,
        np,
        ntk_max_eigenvalue,
        path_chart,
        path_metrics,
        pd,
        permute,
        random_permutation,
        rebasin_frames,
        relu_features,
        ridge,
        ridge_direct,
        spawn_chart,
        spawn_frame,
        spawn_pairs,
        targets,
        time,
        torch,
        train_side_by_side,
        weight_matching,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. The data and the networks

    `sklearn.datasets.load_digits` ships 1,797 grey-scale 8x8 images of handwritten digits inside the
    scikit-learn wheel, so nothing is downloaded. One fixed shuffle splits them into 1,300 training and
    497 test images; each pixel is standardized with the training set's mean and standard deviation.
    The networks are ReLU MLPs, 64 pixels in, three hidden layers of a chosen width, 10 logits out (the
    Git Re-Basin MNIST MLP has three hidden layers of 512), trained with Adam on cross-entropy.
    """)
    return


@app.cell
def _(ADAM, load_digits_split, mo, torch):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        digits = load_digits_split()
        counts = torch.bincount(digits.y_train, minlength=10)
        # NBVAL_CHECK_OUTPUT
        print(f"{len(digits.y_train) + len(digits.y_test)} images: train {tuple(digits.X_train.shape)}, test {tuple(digits.X_test.shape)}; training images per class "
              f"{counts.min().item()} to {counts.max().item()}; Adam lr {ADAM.lr}, batch {ADAM.batch_size}, {ADAM.epochs} epochs "
              f"= {ADAM.total_steps(len(digits.y_train))} steps")
    return (digits,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. The straight line between two networks, and its barrier

    For two networks with parameters $\theta_A$ and $\theta_B$ (same architecture), the straight line is
    $\theta(\alpha) = (1-\alpha)\,\theta_A + \alpha\,\theta_B$, $\alpha \in [0, 1]$: every weight interpolated
    on its own. Evaluate the loss or the test error $v(\alpha)$ of the network $\theta(\alpha)$ at 25 points.
    The **barrier** is the largest rise above the chord between the endpoints (Ainsworth et al., Eq. 1):

    $$
    B = \max_{\alpha}\; v(\alpha) - \big[(1-\alpha)\, v(0) + \alpha\, v(1)\big].
    $$

    Frankle et al. measure the rise above the endpoints' *mean*, $\max_\alpha v(\alpha) - \tfrac12 (v(0) + v(1))$,
    and so do the Git Re-Basin authors' plotting scripts (`samuela/git-re-basin`, e.g.
    `src/cifar10_mlp_barrier_vs_epoch_plot.py`); the two agree when the endpoints are equally good,
    which trained networks nearly are. A barrier near zero means the two networks are *linearly mode
    connected*. Train two networks of width 64 from different initializations and data orders:
    """)
    return


@app.cell
def _(
    ADAM,
    ALPHAS,
    barrier,
    digits,
    evaluate,
    independent_pair,
    mlp,
    mo,
    path_metrics,
    time,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        net64 = mlp(64)
        _start = time.perf_counter()
        theta_a, theta_b = independent_pair(net64, digits, ADAM, seed=0)
        pair_seconds = time.perf_counter() - _start
        path_ab = path_metrics(net64, theta_a, theta_b, digits.X_test, digits.y_test)
        self_path = path_metrics(net64, theta_a, theta_a, digits.X_test, digits.y_test)
        _ends = [evaluate(net64, _p, digits.X_test, digits.y_test) for _p in (theta_a, theta_b)]
        assert abs(path_ab["error"][0] - _ends[0][1]) < 1e-9 and abs(path_ab["error"][-1] - _ends[1][1]) < 1e-9, (
            f"expected alpha = 0 and 1 to be networks A and B, measured errors {path_ab['error'][[0, -1]]} vs {_ends}")
        assert barrier(self_path["loss"]) == 0.0 and barrier(self_path["error"]) == 0.0, "expected the path from A to A to be flat"
        barrier_ab = {_m: barrier(path_ab[_m], ALPHAS) for _m in ("loss", "error")}
        assert barrier_ab["error"] > 0.2, f"expected a large error barrier between independent networks, measured {barrier_ab['error']:.3f}"
        print(f"test error A {_ends[0][1]:.3f}, B {_ends[1][1]:.3f}; at alpha = 0.5: {path_ab['error'][12]:.3f} ({len(ALPHAS)} alphas); "
              f"barrier: error {barrier_ab['error']:.3f} (mean reference {barrier(path_ab['error'], ALPHAS, 'mean'):.3f}), "
              f"loss {barrier_ab['loss']:.3f} | trained both in {pair_seconds:.1f} s")
    return barrier_ab, net64, theta_a, theta_b


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Each network alone makes a few percent errors; halfway between them the network misclassifies a
    large share of the test images. The two networks solve the task in two different basins, as far
    as straight lines can tell.

    ## 3. The spawn test: shared training, different data orders

    Frankle et al. ask *when* during training a network's outcome is fixed up to a linear path. Train
    one network for $k$ steps, copy it (weights and optimizer state), and train the two copies to the
    end with **different data orders**; the only difference between them is SGD noise. If the barrier
    between the children is near zero, the network was already *stable* at step $k$. For $k = 0$ the
    children share only their initialization:
    """)
    return


@app.cell
def _(
    ADAM,
    ALPHAS,
    barrier,
    barrier_ab,
    digits,
    mo,
    net64,
    path_metrics,
    spawn_pairs,
    time,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _start = time.perf_counter()
        child_a, child_b = spawn_pairs(net64, digits, ADAM, seed=0, ks=[0])[0]
        spawn_seconds = time.perf_counter() - _start
        path_spawn0 = path_metrics(net64, child_a, child_b, digits.X_test, digits.y_test)
        barrier_spawn0 = barrier(path_spawn0["error"], ALPHAS)
        assert barrier_spawn0 < 0.02, f"expected two children of one initialization to be linearly connected, measured {barrier_spawn0:.4f}"
        print(f"k = 0 (same init, different data orders): test error barrier {barrier_spawn0:.4f}, "
              f"loss barrier {barrier(path_spawn0['loss'], ALPHAS):.4f} (independent inits: {barrier_ab['error']:.3f}) | {spawn_seconds:.1f} s")
    return (barrier_spawn0,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Already at $k = 0$ the two children are linearly connected: sharing the initialization is enough
    here. The sweep over $k$ (8 spawn steps, 3 seeds, Adam and SGD with momentum) takes a few minutes
    on one thread, so it ships in `lablib/paths/results/spawn.json` (rebuild:
    `OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.paths.experiment spawn --out lablib/paths/results/spawn.json`).
    Its $k = 0$ Adam pair of seed 0 is the pair just trained; the cell checks that they agree.
    """)
    return


@app.cell
def _(barrier_spawn0, digits, load_results, mo, spawn_frame):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        spawn_results = load_results("spawn")
        spawn_rows = spawn_frame(spawn_results)
        _shipped0 = spawn_rows[(spawn_rows.optimizer == "adam") & (spawn_rows.seed == 0) & (spawn_rows.k == 0)]["barrier"].iloc[0]
        assert abs(_shipped0 - barrier_spawn0) < 0.01, f"expected the shipped k = 0 pair to match this run, {_shipped0:.4f} vs {barrier_spawn0:.4f}"
        _spawned = spawn_rows[spawn_rows.k != "independent"]
        _indep = spawn_rows[spawn_rows.k == "independent"]
        spawn_table = (spawn_rows.assign(k=spawn_rows.k.astype(str)).groupby(["optimizer", "k"], sort=False)["barrier"]
                       .agg(lambda s: f"{s.mean():.4f} ± {s.std():.4f}").unstack("optimizer"))
        spawn_table.index.name = "spawn step k (test error barrier, mean ± sd, 3 seeds)"
        assert _spawned["barrier"].max() < 0.02, f"expected every spawned pair below a 2% error barrier, measured max {_spawned['barrier'].max():.4f}"
        assert _indep["barrier"].min() > 0.3, f"expected every independent pair above 0.3, measured min {_indep['barrier'].min():.3f}"
        # NBVAL_CHECK_OUTPUT
        _sgd = spawn_results["config"]["train"]["sgd"]
        print(f"SGD: lr {_sgd['lr']}, momentum {_sgd['momentum']}, batch {_sgd['batch_size']}; training steps in all: {spawn_results['steps_total']}; "
              f"the sweep took {spawn_results['seconds'] / 60:.0f} min; largest spawned barrier {_spawned['barrier'].max():.4f} "
              f"(one test image is {1 / len(digits.y_test):.4f}); smallest independent barrier {_indep['barrier'].min():.3f}")
        mo.output.append(spawn_table)
    return (spawn_rows,)


@app.cell
def _(digits, spawn_chart, spawn_rows):
    # NBVAL_IGNORE_OUTPUT
    spawn_chart(spawn_rows, one_example=1 / len(digits.y_test))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    On these small MLPs the spawn test is flat: at every spawn step, from $k = 0$ on, with Adam and with
    SGD with momentum, the two children differ by at most a few test images along the whole path,
    while independently initialized pairs have barriers of tens of percent (the dashed lines). This is
    what Frankle et al. found for their smallest network, LeNet on MNIST, which was stable at
    initialization; their ResNets and VGG on CIFAR-10 and ImageNet became stable only after some
    shared training, though early in it. The cell asserts a 2% error barrier at most (about ten test images)
    for every spawned pair. The instability of larger networks at $k = 0$ is not reproduced here: it
    needs networks and training runs far beyond this chapter's minute.

    ## 4. Permutation symmetry and weight matching (Git Re-Basin)

    Why are independent networks not connected? One reason is certain: the hidden units of a layer
    have no order. Reorder the units of hidden layer $\ell$ by a permutation matrix $P_\ell$, permuting the
    rows of $W_\ell$ and the entries of $b_\ell$ and, to compensate, the columns of $W_{\ell+1}$:

    $$
    W_\ell \to P_\ell W_\ell P_{\ell-1}^\top,\qquad b_\ell \to P_\ell\, b_\ell,
    $$

    and the network computes *exactly* the same function (a ReLU commutes with a permutation), but the
    weights, and so the straight line to another network, change. There are $\prod_\ell n_\ell!$ copies of
    every solution. Check on network B with a random permutation of every hidden layer:
    """)
    return


@app.cell
def _(digits, mo, net64, permute, random_permutation, theta_b):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _shuffled = permute(net64, theta_b, random_permutation(net64, seed=1))
        weights_moved = max((_shuffled[_k] - theta_b[_k]).abs().max().item() for _k in theta_b)
        random_perm_change = (net64(_shuffled, digits.X_test) - net64(theta_b, digits.X_test)).abs().max().item()
        assert random_perm_change < 1e-5 and weights_moved > 0.5, (
            f"expected the same function from moved weights, measured output change {random_perm_change:.1e}, weights moved {weights_moved:.2f}")
        print(f"a random permutation moves weights by up to {weights_moved:.2f} and the test logits by {random_perm_change:.1e}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Weight matching** picks the permutations that bring B's weights closest to A's:
    $\min_P \sum_\ell \|W_\ell^A - P_\ell W_\ell^B P_{\ell-1}^\top\|_F^2$, which (the norms do not depend on $P$) is
    $\max_P \sum_\ell \langle W_\ell^A,\, P_\ell W_\ell^B P_{\ell-1}^\top \rangle_F$ (plus the biases). Each $P_\ell$ meets two
    layers, so the problem couples all of them; with the others held fixed, one $P_\ell$ is a **linear assignment
    problem** with the cost matrix

    $$
    C_\ell = W_\ell^A \big(W_\ell^B P_{\ell-1}^\top\big)^\top + b_\ell^A b_\ell^{B\top} + W_{\ell+1}^{A\top} \big(P_{\ell+1} W_{\ell+1}^B\big),
    $$

    $C_\ell[i, j]$ being how alike A's unit $i$ and B's unit $j$ are, solved exactly by
    `scipy.optimize.linear_sum_assignment`. The paper's algorithm (and `weight_matching` in
    `samuela/git-re-basin`): visit the layers in a random order, solve each one's assignment, repeat
    until no permutation changes. `lablib.paths.weight_matching` does the same:
    """)
    return


@app.cell
def _(
    ALPHAS,
    barrier,
    barrier_ab,
    digits,
    match_objective,
    mo,
    net64,
    path_metrics,
    permute,
    theta_a,
    theta_b,
    time,
    weight_matching,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _start = time.perf_counter()
        matching = weight_matching(net64, theta_a, theta_b, seed=0)
        match_seconds = time.perf_counter() - _start
        theta_b_matched = permute(net64, theta_b, matching)
        matched_change = (net64(theta_b_matched, digits.X_test) - net64(theta_b, digits.X_test)).abs().max().item()
        objective = (match_objective(net64, theta_a, theta_b), match_objective(net64, theta_a, theta_b_matched))
        path_matched = path_metrics(net64, theta_a, theta_b_matched, digits.X_test, digits.y_test)
        barrier_matched = {_m: barrier(path_matched[_m], ALPHAS) for _m in ("loss", "error")}
        assert matched_change < 1e-5, f"expected matched B to compute B's function to 1e-5, measured {matched_change:.1e}"
        assert objective[1] > objective[0], f"expected matching to raise <A, B>, measured {objective}"
        assert barrier_matched["error"] < barrier_ab["error"] and barrier_matched["loss"] < barrier_ab["loss"], (
            f"expected matching to lower both barriers, measured {barrier_ab} -> {barrier_matched}")
        print(f"{matching.sweeps} sweeps over the 3 hidden layers in {match_seconds:.2f} s; <A, B> {objective[0]:.1f} -> {objective[1]:.1f}; "
              f"outputs changed by {matched_change:.1e}; test error barrier {barrier_ab['error']:.3f} -> {barrier_matched['error']:.3f}, "
              f"loss barrier {barrier_ab['loss']:.3f} -> {barrier_matched['loss']:.3f}")
    return (barrier_matched,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Same function, a different straight line, and a much lower barrier. The paper's second finding is
    that the barrier after matching falls with **width** (and reaches zero for wide enough networks).
    Six widths from 16 to 512, three pairs each, take minutes here (the table's header says how many), so they ship in
    `lablib/paths/results/rebasin_width.json` (rebuild:
    `OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.paths.experiment rebasin --out lablib/paths/results/rebasin_width.json`);
    its width-64 pair of seed 0 is the pair above. Pick a width and a metric (the selectors work in the book too):
    """)
    return


@app.cell
def _(barrier_ab, barrier_matched, load_results, pd, rebasin_frames):
    rebasin_results = load_results("rebasin")
    rebasin_paths, rebasin_barriers = rebasin_frames(rebasin_results)
    _row = next(_r for _r in rebasin_results["rows"] if _r["width"] == 64 and _r["seed"] == 0)
    assert abs(_row["test_error_barrier_naive"] - barrier_ab["error"]) < 0.05 and abs(_row["test_error_barrier_matched"] - barrier_matched["error"]) < 0.05, (
        f"expected the shipped width-64 pair to match this run, {_row['test_error_barrier_naive']:.3f}/{_row['test_error_barrier_matched']:.3f} "
        f"vs {barrier_ab['error']:.3f}/{barrier_matched['error']:.3f}")
    barrier_wide = rebasin_barriers.pivot_table(index=["width", "seed"], columns=["metric", "kind"], values="barrier")
    barrier_summary = rebasin_barriers[rebasin_barriers.metric.isin(["test error", "test loss"])].groupby(
        ["width", "metric", "kind"])["barrier"].agg(lambda s: f"{s.mean():.3f} ± {s.std():.3f}").unstack(["metric", "kind"])
    _errors = pd.DataFrame(rebasin_results["rows"]).groupby("width")[["test_error_a", "test_error_b"]].mean().mean(axis=1)
    barrier_summary[("endpoints", "test error of A and B")] = _errors.map(lambda v: f"{v:.3f}")
    barrier_summary.columns.name = f"mean ± sd over 3 pairs (sweep: {rebasin_results['seconds'] / 60:.0f} min)"
    # NBVAL_CHECK_OUTPUT
    barrier_summary
    return barrier_wide, rebasin_barriers, rebasin_paths, rebasin_results


@app.cell
def _(path_chart, rebasin_barriers, rebasin_paths):
    # NBVAL_IGNORE_OUTPUT
    path_chart(rebasin_paths, rebasin_barriers, width=64)
    return


@app.cell
def _(barrier_wide, mo):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _mean = barrier_wide.groupby("width").mean()
        widths_rb = sorted(_mean.index)
        for _metric in ("test error", "test loss", "train loss"):
            assert (barrier_wide[(_metric, "matched")] < barrier_wide[(_metric, "naive")]).all(), f"expected matching to lower the {_metric} barrier of every pair"
        _err_m, _loss_m = _mean[("test error", "matched")], _mean[("test loss", "matched")]
        assert _err_m[512] < _err_m[16] / 3 and _loss_m[512] < _loss_m[16] / 1.5, (
            f"expected the matched barriers to fall with width, measured test error {_err_m.round(3).to_dict()}, test loss {_loss_m.round(3).to_dict()}")
        assert _loss_m[512] > 0.2, f"expected a nonzero matched loss barrier at width 512 on digits, measured {_loss_m[512]:.3f}"
        _ratio = _mean[("test error", "naive")] / _mean[("test error", "matched")]
        # NBVAL_CHECK_OUTPUT
        print(f"test error barrier after matching: {_err_m[16]:.3f} at width 16 -> {_err_m[512]:.3f} at 512; "
              f"test loss barrier {_loss_m[16]:.3f} -> {_loss_m[512]:.3f}; matching divides the error barrier by "
              f"{_ratio.min():.1f} to {_ratio.max():.1f}; the naive error barrier falls with width too "
              f"({_mean[('test error', 'naive')][16]:.3f} -> {_mean[('test error', 'naive')][512]:.3f})")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Both of Git Re-Basin's findings show up: matching lowers the barrier for every pair at every width,
    and the matched barrier falls steadily with width. But it does not reach zero here: at width 512 the
    matched error barrier is still several percent and the loss barrier stays well above zero, where the paper
    reports essentially zero-barrier connectivity for its MNIST MLP (3 x 512, 60,000 training images, 100
    epochs). This run has 1,300 training images and 400 steps; Ainsworth et al. also found that the
    barrier after matching falls with training time, and a wider net (the trend above) would help too.
    (Part of what remains is a known effect, the collapse of the variance of hidden activations at the
    midpoint of two networks, which Jordan et al.'s REPAIR (ICLR 2023) corrects after interpolating.)

    ## 5. Wide networks evolve as linear models

    Now the other straight line: not between two networks, but the one from the initialization. The
    first-order Taylor expansion of the network in its **weights** around $\theta_0$,

    $$
    f_\text{lin}(x;\theta) = f(x;\theta_0) + J(x)\,(\theta - \theta_0), \qquad J(x) = \frac{\partial f(x;\theta)}{\partial \theta}\Big|_{\theta_0},
    $$

    is a linear model in $\theta$ (not in $x$: its features $J(x)$ are those of the network at init). Lee et al.
    train it and the network side by side with the same gradient descent and find them close, the
    closer the wider, in the **NTK parameterization**: layer $\ell$ computes
    $h_{\ell+1} = \frac{\sigma_w}{\sqrt{n_\ell}} W_\ell h_\ell + \sigma_b b_\ell$ with $W_\ell, b_\ell \sim \mathcal N(0, 1)$, so the
    learning rate need not shrink with width. $J(x)(\theta - \theta_0)$ is a Jacobian-vector product, computed
    by forward-mode autodiff (`torch.func.jvp`) without ever forming $J$; the gradient of $f_\text{lin}$'s loss
    is $J^\top r$, a vector-Jacobian product at $\theta_0$ (`torch.func.vjp`).

    The loss is Lee et al.'s mean squared error $\frac{1}{2N}\sum_i \|f(x_i) - y_i\|^2$ on one-hot targets
    centred to $0.9/-0.1$, minimized by full-batch gradient descent. On $f_\text{lin}$ that is gradient descent
    on a linear least-squares problem whose kernel is the empirical **neural tangent kernel**
    $\Theta = J J^\top$; it converges when the learning rate is below $2/\lambda_{\max}(\Theta/N)$. Three checks
    on a network of width 64 with one hidden layer: $f_\text{lin} = f$ at $\theta_0$; the same gradient there;
    and after one gradient step, a gap that is second order in the step (halve the step, quarter the gap):
    """)
    return


@app.cell
def _(
    LINEARIZE,
    digits,
    linearize,
    mlp,
    mo,
    ntk_max_eigenvalue,
    targets,
    torch,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        lin_cfg = dict(LINEARIZE)
        ntk64 = mlp(64, lin_cfg["depth"], parameterization="ntk", sigma_w=lin_cfg["sigma_w"], sigma_b=lin_cfg["sigma_b"])
        theta0 = ntk64.init(0)
        f_lin64 = linearize(ntk64, theta0)
        Y_train = targets(digits.y_train)
        init_gap = (f_lin64(theta0, digits.X_test) - ntk64(theta0, digits.X_test)).abs().max().item()
        _mse = lambda f: lambda p: 0.5 * ((f(p, digits.X_train) - Y_train) ** 2).sum(1).mean()  # noqa: E731
        grad_net, grad_lin = torch.func.grad(_mse(ntk64))(theta0), torch.func.grad(_mse(f_lin64))(theta0)
        grad_gap = max((grad_net[_k] - grad_lin[_k]).abs().max().item() for _k in theta0)
        # one gradient step from theta_0, in float64 so that rounding does not hide a gap of 1e-8
        _p64 = {_k: _v.double() for _k, _v in theta0.items()}
        _X64, _Xt64, _Y64 = digits.X_train.double(), digits.X_test.double(), Y_train.double()
        _f_lin_64 = linearize(ntk64, _p64)
        _g64 = torch.func.grad(lambda p: 0.5 * ((ntk64(p, _X64) - _Y64) ** 2).sum(1).mean())(_p64)
        step_gaps = {}
        for _lr in (0.006, 0.003, 0.0015, lin_cfg["lr"]):
            _theta1 = {_k: _p64[_k] - _lr * _g64[_k] for _k in _p64}
            _gap = ntk64(_theta1, _Xt64) - _f_lin_64(_theta1, _Xt64)
            step_gaps[_lr] = (_gap.abs().max().item(), (_gap.norm() / (ntk64(_theta1, _Xt64) - ntk64(_p64, _Xt64)).norm()).item())
        lam_max = ntk_max_eigenvalue(ntk64, theta0, digits.X_train)
        assert init_gap == 0.0 and grad_gap < 1e-6, f"expected f_lin = f and equal gradients at theta_0, measured {init_gap:.1e}, {grad_gap:.1e}"
        _r = [step_gaps[0.006][0] / step_gaps[0.003][0], step_gaps[0.003][0] / step_gaps[0.0015][0]]
        assert all(3.5 < _q < 4.5 for _q in _r), f"expected halving the step to quarter the gap (second order), measured ratios {_r}"
        assert step_gaps[lin_cfg["lr"]][1] < 0.1, f"expected one training step to move f_lin within 10% of f's change, measured {step_gaps[lin_cfg['lr']][1]:.3f}"
        assert lin_cfg["lr"] < 2 / lam_max, f"expected the learning rate {lin_cfg['lr']} below the critical 2 / lambda_max = {2 / lam_max:.2f}"
        print(f"at theta_0: |f_lin - f| = {init_gap:.0e}, |grad difference| = {grad_gap:.1e}; after one step of lr 0.006, 0.003, 0.0015: "
              f"max |f - f_lin| = " + ", ".join(f"{step_gaps[_l][0]:.2e}" for _l in (0.006, 0.003, 0.0015)) + f" (ratios {_r[0]:.2f}, {_r[1]:.2f}); "
              f"after one step of the training lr {lin_cfg['lr']}: |f - f_lin| is {step_gaps[lin_cfg['lr']][1]:.1%} of |f(theta_1) - f(theta_0)|; "
              f"lambda_max(Theta / N) = {lam_max:.3f}, so lr {lin_cfg['lr']} < 2 / lambda_max = {2 / lam_max:.1f}")
    return Y_train, lin_cfg, ntk64, theta0


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    (The ratio is 4 only for steps too small to flip the sign of any ReLU's input; a flipped unit is a
    kink the Taylor expansion cannot see, and large steps flip many. Even a full training step leaves
    the two within a small fraction of the step's change, the cell prints it.) Now train both, from the same
    $\theta_0$ with the same learning rate, at width 64 and one seed (the cell prints the configuration):
    """)
    return


@app.cell
def _(Y_train, digits, lin_cfg, mo, ntk64, theta0, time, train_side_by_side):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _start = time.perf_counter()
        side64 = train_side_by_side(ntk64, theta0, digits.X_train, Y_train, lin_cfg["lr"], lin_cfg["steps"], digits.X_test, digits.y_test,
                                    record=tuple(lin_cfg["record"]))
        side_seconds = time.perf_counter() - _start
        side_end = side64.history[-1]
        print(f"{lin_cfg['steps']} steps of full-batch GD, lr {lin_cfg['lr']}, sigma_w {lin_cfg['sigma_w']}, sigma_b {lin_cfg['sigma_b']}, one hidden layer "
              f"of 64: test error network {side_end['error']:.3f}, linearized {side_end['error_lin']:.3f}; they disagree on "
              f"{side_end['disagree']:.1%} of the test images; RMS output gap {side_end['rms_gap']:.4f}; "
              f"||theta - theta_0|| / ||theta_0|| = {side_end['weight_change']:.3f} | {side_seconds:.1f} s")
    return (side_end,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The sweep over widths 32 to 4,096 (three seeds each) is the slowest part of the chapter's results,
    so it ships in `lablib/paths/results/linearize_width.json` (rebuild:
    `OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.paths.experiment linearize --out lablib/paths/results/linearize_width.json`);
    its width-64 seed-0 row is the run above. Lee et al.'s prediction: the gap between the network and
    its linearization, and the relative change of the weights, both fall like $1/\sqrt{\text{width}}$ (the
    grey guide; pick the metric):
    """)
    return


@app.cell
def _(gap_frame, load_results, loglog_slope, mo, np, pd, side_end):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        lin_results = load_results("linearize")
        gaps = gap_frame(lin_results)
        _shipped = gaps[(gaps.width == 64) & (gaps.seed == 0)].iloc[0]
        assert abs(_shipped["rms_gap"] - side_end["rms_gap"]) < 0.1 * side_end["rms_gap"], (
            f"expected the shipped width-64 run to match this one, rms gap {_shipped['rms_gap']:.4f} vs {side_end['rms_gap']:.4f}")
        gap_long = pd.concat([gaps.assign(metric="RMS output gap |f - f_lin|", value=gaps["rms_gap"]),
                              gaps.assign(metric="weight change ||theta - theta_0|| / ||theta_0||", value=gaps["weight_change"])])
        slopes = {_m: [loglog_slope(_g["width"], _g["value"]) for _, _g in gap_long[gap_long.metric == _m].groupby("seed")]
                  for _m in gap_long.metric.unique()}
        gap_table = gaps.groupby("width").agg(
            rms_gap=("rms_gap", lambda s: f"{s.mean():.4f} ± {s.std():.4f}"),
            error=("error", lambda s: f"{s.mean():.3f} ± {s.std():.3f}"),
            error_lin=("error_lin", lambda s: f"{s.mean():.3f} ± {s.std():.3f}"),
            disagree=("disagree", lambda s: f"{s.mean():.3f} ± {s.std():.3f}"),
            weight_change=("weight_change", lambda s: f"{s.mean():.4f} ± {s.std():.4f}"))
        gap_table.columns = ["RMS output gap", "test error, network", "test error, linearized", "share of test images they disagree on",
                             "||theta - theta_0|| / ||theta_0||"]
        # NBVAL_CHECK_OUTPUT
        print("; ".join(f"log-log slope of {_m.split(' ')[0] + ' ' + _m.split(' ')[1]} against width: {np.mean(_s):.3f} ± {np.std(_s, ddof=1):.3f}"
                        for _m, _s in slopes.items()) + f" (3 seeds; Lee et al.: -0.5) | sweep: {lin_results['seconds'] / 60:.0f} min")
        mo.output.append(gap_table)
    return gap_long, gaps, slopes


@app.cell
def _(gap_chart, gap_long):
    # NBVAL_IGNORE_OUTPUT
    gap_chart(gap_long[["width", "seed", "metric", "value"]])
    return


@app.cell
def _(gaps, mo, slopes):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        _by_width = gaps.groupby("width").mean(numeric_only=True)
        _wmin, _wmax = _by_width.index.min(), _by_width.index.max()
        _err_gap = (gaps["error"] - gaps["error_lin"]).abs().groupby(gaps["width"]).mean()
        for _m, _s in slopes.items():
            assert all(-0.7 < _v < -0.35 for _v in _s), f"expected {_m} to fall roughly like width^-1/2, measured slopes {_s}"
        assert _by_width["disagree"][_wmax] < _by_width["disagree"][_wmin] / 3, (
            f"expected the two models to disagree far less at width {_wmax} than at {_wmin}, measured {_by_width['disagree'].round(4).to_dict()}")
        assert _err_gap[_wmax] < 0.01, f"expected the test errors to agree within 0.01 at width {_wmax}, measured {_err_gap[_wmax]:.4f}"
        # NBVAL_CHECK_OUTPUT
        print(f"|test error difference|: {_err_gap[_wmin]:.3f} at width {_wmin} -> {_err_gap[_wmax]:.4f} at {_wmax}; "
              f"predictions disagree on {_by_width['disagree'][_wmin]:.1%} -> {_by_width['disagree'][_wmax]:.1%} of the test images")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The prediction holds on digits: the output gap and the relative weight change fall with width at a
    log-log slope close to $-1/2$ (the cell prints each with its spread over seeds; the output gap falls a
    little faster than the guide, the weight change right on it), and at the largest
    width the network and its linearization make almost the same predictions and the same test error.
    A wide network trained this way *is*, to a good approximation, a linear model in its parameters.

    ## 6. The linear model in its purest form: random-features ridge regression

    Freeze the first layer at its random initialization and train only the last: the features
    $\phi(x) = \mathrm{relu}(\frac{\sigma_w}{\sqrt d} W x + \sigma_b b)/\sqrt p$ are fixed, and the readout is
    ridge regression, solved in closed form,
    $\beta = (\Phi^\top\Phi + \lambda I)^{-1}\Phi^\top Y = \Phi^\top(\Phi\Phi^\top + \lambda I)^{-1} Y$ (the second
    form when there are more features $p$ than training images $N$). It is the readout part of $f_\text{lin}$
    with the hidden layer held at $\theta_0$, the random-features model (Rahimi & Recht 2007) whose
    infinite-width limit is a kernel machine. First the closed form against a direct least-squares
    solve of the stacked system $[\Phi;\ \sqrt\lambda I]\,\beta = [Y;\ 0]$:
    """)
    return


@app.cell
def _(Y_train, digits, mo, np, relu_features, ridge, ridge_direct):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        X_np, Y_np = digits.X_train.double().numpy(), Y_train.double().numpy()
        _rng = np.random.default_rng(0)
        ridge_check = {}
        for _p in (200, 2000):  # fewer and more features than the 1,300 training images
            _Phi = relu_features(X_np, _rng.standard_normal((_p, 64)), _rng.standard_normal(_p), sigma_w=1.0)
            ridge_check[_p] = np.abs(ridge(_Phi, Y_np, 1e-3) - ridge_direct(_Phi, Y_np, 1e-3)).max()
        assert max(ridge_check.values()) < 1e-8, f"expected the closed form to equal the direct solve to 1e-8, measured {ridge_check}"
        print("closed form vs direct least squares, max |difference|: " + ", ".join(f"p = {_p}: {_e:.0e}" for _p, _e in ridge_check.items()))
    return X_np, Y_np


@app.cell
def _(
    RandomFeaturesRidge,
    X_np,
    Y_np,
    digits,
    gaps,
    lin_cfg,
    mo,
    np,
    pd,
    rebasin_results,
    time,
):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        RF_LAMBDA = 1e-3
        _start = time.perf_counter()
        rf_rows = []
        for _p in (64, 256, 1024, 4096):
            for _seed in (0, 1, 2):
                _model = RandomFeaturesRidge(_p, RF_LAMBDA, seed=_seed, sigma_w=1.0).fit(X_np, Y_np)
                rf_rows.append({"features": _p, "seed": _seed,
                                "test error": float((_model.predict(digits.X_test.double().numpy()).argmax(1) != digits.y_test.numpy()).mean())})
        rf_seconds = time.perf_counter() - _start
        rf_errors = pd.DataFrame(rf_rows).groupby("features")["test error"].agg(["mean", "std"])
        mlp512_error = float(np.mean([(_r["test_error_a"] + _r["test_error_b"]) / 2 for _r in rebasin_results["rows"] if _r["width"] == 512]))
        assert rf_errors["mean"].iloc[-1] < rf_errors["mean"].iloc[0] / 5, f"expected many random features to beat few, measured {rf_errors['mean'].to_dict()}"
        assert rf_errors["mean"].iloc[-1] < mlp512_error, (
            f"expected ridge on 4,096 random features to beat the trained 3 x 512 MLPs, measured {rf_errors['mean'].iloc[-1]:.4f} vs {mlp512_error:.4f}")
        print(f"random-features ridge (lambda {RF_LAMBDA:g}), test error: " + ", ".join(
            f"p = {_p}: {_r['mean']:.3f} ± {_r['std']:.3f}" for _p, _r in rf_errors.iterrows())
              + f" | trained 3 x 512 MLPs (shipped): {mlp512_error:.3f}; network after {lin_cfg['steps']} GD steps at width 4096: "
              f"{gaps[gaps.width == 4096]['error'].mean():.3f} | {rf_seconds:.1f} s")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    On this small, clean dataset the purest linear model wins: ridge regression on a few thousand
    frozen random ReLU features, fitted in one linear solve, makes fewer test errors than the
    three-layer MLPs trained with Adam above. (The gradient-descent runs of section 5 are not trained
    to convergence, so their error says nothing about the limit: their point was the *gap*.)

    ## 7. Where this differs from the papers

    * **Data and networks.** 1,300 digits images (8x8) instead of MNIST (60,000 images) or CIFAR-10 and
      ImageNet; MLPs of 3 hidden layers (widths 16 to 512) instead of LeNet, VGG and ResNets. Everything
      runs on one CPU thread.
    * **Training.** Adam, learning rate $10^{-3}$, batch 64, 400 steps, as a short version of the Git Re-Basin
      MNIST MLP runs (their `mnist_mlp_train.py`: 3 x 512, batch 500, 100 epochs). The spawn test also runs
      with SGD with momentum (lr 0.02, batch 32, 600 steps); Frankle et al. use longer schedules with warmup
      and learning-rate drops. No data augmentation, no weight decay.
    * **The spawn test** spawns at steps 0 to 200 of 400 (or 600), three seeds; Frankle et al. use more
      spawn points and also study pruned subnetworks (the lottery-ticket part), not done here.
    * **Barrier.** The chord reference of Ainsworth et al.'s Eq. 1 on 25 points; their scripts and
      Frankle et al. subtract the endpoints' mean (computed too, and nearly identical here).
    * **Weight matching** is the paper's algorithm (random layer order, exact assignments, stop when no
      permutation changes, at most 100 sweeps); the activation-matching and straight-through estimator
      variants are not implemented.
    * **Linearization.** One hidden layer (widths 32 to 4,096; the paper also uses deeper and
      convolutional networks and larger widths), $\sigma_w = 1$, $\sigma_b = 0.1$, learning rate 4 (below the
      critical value, measured above), 250 full-batch steps on MSE, not trained to convergence. The
      paper's infinite-width predictions (the NTK's closed form) are not computed.

    ## 8. Exercises

    **Exercise 1 (the barrier).** `fn(values, alphas) -> float`: the largest rise of `values` above the
    chord between the endpoints, $\max_\alpha v(\alpha) - [(1-\alpha)v(0) + \alpha v(1)]$; `alphas` need not be
    evenly spaced. (The rise above the endpoints' mean is a different number when they differ.)
    """)
    return


@app.cell
def _(check_barrier, np):
    def my_barrier(values, alphas):
        chord = (1 - alphas) * values[0] + alphas * values[-1]
        return float(np.max(values - chord))


    # NBVAL_CHECK_OUTPUT
    check_barrier(my_barrier)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Exercise 2 (a permutation that changes nothing).** `fn(params, perms) -> params`: move hidden unit
    `perms[l][i]` of layer $l$ to place $i$: rows of `W{l}`, entries of `b{l}`, and the columns of `W{l+1}`.
    The check asks for lablib's result exactly and unchanged outputs.
    """)
    return


@app.cell
def _(check_permute_hidden):
    def my_permute(params, perms):
        out = dict(params)
        for layer, perm in enumerate(perms):
            out[f"W{layer}"] = out[f"W{layer}"][perm]
            out[f"b{layer}"] = out[f"b{layer}"][perm]
            out[f"W{layer + 1}"] = out[f"W{layer + 1}"][:, perm]
        return out


    # NBVAL_CHECK_OUTPUT
    check_permute_hidden(my_permute)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Exercise 3 (weight matching, one hidden layer).** With one hidden layer there is one permutation
    and one linear assignment problem: build the cost $C = W_0^A W_0^{B\top} + b_0^A b_0^{B\top} + W_1^{A\top} W_1^B$
    and maximize $\sum_i C[i, \pi(i)]$ with `scipy.optimize.linear_sum_assignment(C, maximize=True)`.
    """)
    return


@app.cell
def _(check_match_one_layer, torch):
    from scipy.optimize import linear_sum_assignment


    def my_match(params_a, params_b):
        cost = (params_a["W0"] @ params_b["W0"].T + torch.outer(params_a["b0"], params_b["b0"])
                + params_a["W1"].T @ params_b["W1"])
        return linear_sum_assignment(cost.numpy(), maximize=True)[1]


    # NBVAL_CHECK_OUTPUT
    check_match_one_layer(my_match)
    return


@app.cell
def _(chapter_start, mo, time):
    with mo.redirect_stdout():  # marimo run hides printed lines; this shows them
        # NBVAL_IGNORE_OUTPUT
        print(f"chapter executed in {time.perf_counter() - chapter_start:.0f} s")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Summary

    * The barrier on the straight line between two networks is the largest rise of the loss or error
      above the chord between the endpoints. Independent small MLPs on digits have large barriers;
      copies spawned from a shared checkpoint, even from the initialization itself, have none (Frankle
      et al.'s LeNet result; their larger networks need some shared training first).
    * Permuting hidden units leaves a network's function unchanged (checked to $10^{-5}$). Weight matching,
      coordinate descent over one linear assignment problem per hidden layer, finds the permutation that
      aligns B with A; it lowers the barrier of every pair, and the matched barrier falls with width, as
      Git Re-Basin found, though on this small dataset it does not reach zero by width 512.
    * A network and its first-order Taylor expansion in the weights, trained side by side in the NTK
      parameterization, drift apart less the wider they are: output gap and weight change both fall
      roughly like $1/\sqrt{\text{width}}$, as Lee et al. predicted.
    * Ridge regression on frozen random ReLU features, in closed form, beats the trained MLPs here.
    """)
    return


if __name__ == "__main__":
    app.run()
