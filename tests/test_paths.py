"""lablib.paths: permutations, interpolation and barriers, weight matching, linearization, random-features ridge."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lablib.paths import (ALPHAS, MLP, RandomFeaturesRidge, TrainConfig, barrier, evaluate, interpolate,
                          linearize, load_digits_split, match_objective, mse_grad, ntk_max_eigenvalue, path_metrics,
                          permute, random_permutation, relu_features, ridge, ridge_direct, start, targets,
                          train_side_by_side, train_steps, weight_matching)
from lablib.paths.charts import gap_chart, path_chart, spawn_chart
from lablib.paths.experiment import FILES, load_results, spawn_pairs
from lablib.paths.mlp import check_params
from lablib.paths.tables import loglog_slope

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def _x(n=50, d=6, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


# --- data ------------------------------------------------------------------------------------


def test_digits_split_is_fixed_and_standardized(digits):
    assert digits.X_train.shape == (1300, 64) and digits.X_test.shape == (497, 64)
    assert digits.y_train.dtype == torch.int64 and set(digits.y_test.tolist()) == set(range(10))
    assert digits.X_train.mean(0).abs().max() < 1e-5
    sd = digits.X_train.std(0, unbiased=False)
    assert ((sd - 1).abs() < 1e-4).sum() == 61  # 3 pixels are constant on the training set: centred only
    again = load_digits_split()
    assert torch.equal(again.X_test, digits.X_test) and torch.equal(again.y_train, digits.y_train)


# --- permutations and weight matching ----------------------------------------------------------


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
@pytest.mark.parametrize("hidden", [(7,), (5, 9), (8, 8, 8)])
def test_a_permutation_of_hidden_units_leaves_the_function_unchanged(parameterization, hidden):
    net = MLP((6, *hidden, 3), parameterization=parameterization)
    params, x = net.init(1), _x()
    perms = random_permutation(net, seed=2)
    assert any((p != np.arange(len(p))).any() for p in perms)
    moved = permute(net, params, perms)
    assert max((moved[k] - params[k]).abs().max() for k in params) > 0.1  # the weights did move
    assert (net(moved, x) - net(params, x)).abs().max() < 1e-5


def test_forgetting_the_next_layer_columns_changes_the_function():
    """The planted bug the permutation test must catch: permute rows of W_l but not the columns of W_{l+1}."""
    net = MLP((6, 8, 3))
    params, x = net.init(0), _x()
    perm = torch.as_tensor(random_permutation(net, 1)[0])
    wrong = dict(params, W0=params["W0"][perm], b0=params["b0"][perm])
    assert (net(wrong, x) - net(params, x)).abs().max() > 1e-2


def test_weight_matching_undoes_a_permutation_exactly():
    net = MLP((6, 10, 12, 10, 3))
    a = net.init(0)
    b = permute(net, a, random_permutation(net, seed=5))
    perms = weight_matching(net, a, b, seed=0)
    back = permute(net, b, perms)
    assert max((back[k] - a[k]).abs().max() for k in a) == 0.0


def test_weight_matching_keeps_the_function_and_raises_the_objective():
    net = MLP((6, 16, 16, 16, 3))
    a, b, x = net.init(0), net.init(1), _x()
    perms = weight_matching(net, a, b, seed=0)
    matched = permute(net, b, perms)
    assert (net(matched, x) - net(b, x)).abs().max() < 1e-5
    assert match_objective(net, a, matched) > match_objective(net, a, b) + 1.0
    assert perms.sweeps >= 2  # coupled layers: more than one sweep of coordinate descent
    # at convergence no single layer's assignment can be improved by another sweep
    again = weight_matching(net, a, matched, seed=3)
    assert all((p == np.arange(len(p))).all() for p in again) and again.sweeps == 1


def test_one_hidden_layer_matching_is_the_exact_assignment_optimum():
    net = MLP((3, 5, 2))
    a, b = net.init(0), net.init(1)
    perms = weight_matching(net, a, b)
    best = max(itertools.permutations(range(5)),
               key=lambda p: match_objective(net, a, permute(net, b, [np.array(p)])))
    assert tuple(perms[0]) == best and perms.sweeps <= 2


# --- interpolation and barriers ---------------------------------------------------------------


def test_interpolation_reproduces_the_endpoints_and_is_linear():
    net = MLP((6, 8, 3))
    a, b = net.init(0), net.init(1)
    for k in a:
        assert torch.equal(interpolate(a, b, 0.0)[k], a[k]) and torch.equal(interpolate(a, b, 1.0)[k], b[k])
        assert torch.allclose(interpolate(a, b, 0.25)[k], 0.75 * a[k] + 0.25 * b[k])


def test_path_metrics_endpoints_are_the_networks(digits):
    net = MLP((64, 12, 10))
    a, b = net.init(0), net.init(1)
    path = path_metrics(net, a, b, digits.X_test, digits.y_test)
    assert path["alpha"].tolist() == ALPHAS.tolist()
    assert (path["loss"][0], path["error"][0]) == pytest.approx(evaluate(net, a, digits.X_test, digits.y_test), abs=1e-7)
    assert (path["loss"][-1], path["error"][-1]) == pytest.approx(evaluate(net, b, digits.X_test, digits.y_test), abs=1e-7)


def test_the_barrier_of_a_network_with_itself_is_zero(digits):
    net = MLP((64, 12, 12, 10))
    gen = torch.Generator().manual_seed(0)
    a = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in net.init(3).items()}  # arbitrary floats
    path = path_metrics(net, a, a, digits.X_test, digits.y_test)
    for metric in ("loss", "error"):
        assert barrier(path[metric], ALPHAS) == 0.0 and barrier(path[metric], ALPHAS, "mean") == 0.0


def test_barrier_definitions_on_known_curves():
    alphas = np.linspace(0, 1, 5)
    assert barrier([0.1, 0.2, 0.3, 0.4, 0.5], alphas) == pytest.approx(0.0, abs=1e-12)  # on the chord
    assert barrier([0.1, 0.2, 0.3, 0.4, 0.5], alphas, "mean") == pytest.approx(0.2)  # mean ref: v(1) - mean
    bump = [0.0, 0.5, 1.0, 0.5, 0.2]
    assert barrier(bump, alphas) == pytest.approx(1.0 - 0.1)
    assert barrier(bump, alphas, "mean") == pytest.approx(1.0 - 0.1)
    assert barrier([0.2, 0.9, 0.3, 0.3, 0.0], alphas) == pytest.approx(0.9 - 0.15)  # max rise not at the middle
    assert barrier([0.2, 0.9, 0.3, 0.3, 0.0], alphas, "mean") == pytest.approx(0.9 - 0.1)


# --- training ---------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_steps_equal_torch_optim(digits, optimizer):
    net = MLP((64, 16, 10))
    config = TrainConfig(optimizer=optimizer, lr=0.01 if optimizer == "sgd" else 1e-3, batch_size=50, epochs=1)
    ours = train_steps(net, start(net, net.init(0)), digits.X_train, digits.y_train, config, 30, order_seed=4)
    params = {k: v.clone().requires_grad_(True) for k, v in net.init(0).items()}
    opt = (torch.optim.SGD(params.values(), lr=0.01, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam(params.values(), lr=1e-3))
    from lablib.paths.train import epoch_order

    for step in range(30):
        idx = epoch_order(1300, 4, step // 26)[(step % 26) * 50:(step % 26 + 1) * 50]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(params, digits.X_train[idx]), digits.y_train[idx]).backward()
        opt.step()
    assert ours.step == 30
    assert max((ours.params[k] - params[k].detach()).abs().max() for k in params) < 1e-6


def test_training_resumes_exactly_and_spawn_at_the_end_gives_twins(digits):
    net = MLP((64, 8, 8, 10))
    config = TrainConfig(optimizer="adam", lr=1e-3, batch_size=100, epochs=2)  # 26 steps
    s0 = start(net, net.init(0))
    whole = train_steps(net, s0, digits.X_train, digits.y_train, config, 26, order_seed=0)
    split = train_steps(net, train_steps(net, s0, digits.X_train, digits.y_train, config, 9, 0),
                        digits.X_train, digits.y_train, config, 17, 0)
    assert all(torch.equal(whole.params[k], split.params[k]) for k in whole.params)
    pairs = spawn_pairs(net, digits, config, seed=0, ks=[0, 26])
    assert all(torch.equal(pairs[26][0][k], whole.params[k]) for k in whole.params)  # k = T: both are A
    assert max((pairs[0][0][k] - pairs[0][1][k]).abs().max() for k in whole.params) > 1e-3  # k = 0: orders differ


# --- linearization ----------------------------------------------------------------------------


def test_the_linearized_model_equals_the_network_at_init_and_is_linear_in_theta():
    net = MLP((6, 32, 32, 3), parameterization="ntk")
    p0, x = net.init(0), _x()
    f_lin = linearize(net, p0)
    assert torch.equal(f_lin(p0, x), net(p0, x))
    delta = {k: 0.1 * torch.randn_like(v, generator=None) for k, v in p0.items()}
    step = lambda t: {k: p0[k] + t * delta[k] for k in p0}  # noqa: E731
    one, three = f_lin(step(1.0), x) - net(p0, x), f_lin(step(3.0), x) - net(p0, x)
    assert (three - 3 * one).abs().max() < 1e-4 * one.abs().max()


def test_the_jvp_is_the_directional_derivative():
    net = MLP((4, 16, 2), parameterization="ntk")
    p0 = {k: v.double() for k, v in net.init(0).items()}
    x = _x(10, 4).double()
    delta = {k: torch.randn(v.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) for k, v in p0.items()}
    eps = 1e-6
    fd = (net({k: p0[k] + eps * delta[k] for k in p0}, x) - net({k: p0[k] - eps * delta[k] for k in p0}, x)) / (2 * eps)
    lin = linearize(net, p0)({k: p0[k] + delta[k] for k in p0}, x) - net(p0, x)
    assert (lin - fd).abs().max() < 1e-6


def test_a_gradient_step_of_the_linearized_model_matches_the_network_to_first_order():
    net = MLP((6, 64, 3), parameterization="ntk")
    p0 = {k: v.double() for k, v in net.init(0).items()}
    X, Y = _x(40).double(), targets(torch.arange(40) % 3, 3).double()
    f_lin = linearize(net, p0)
    loss = lambda f: lambda p: 0.5 * ((f(p, X) - Y) ** 2).sum(1).mean()  # noqa: E731
    g_net, g_lin = torch.func.grad(loss(net))(p0), torch.func.grad(loss(f_lin))(p0)
    assert max((g_net[k] - g_lin[k]).abs().max() for k in p0) < 1e-12  # same gradient at theta_0
    # Below the step at which any ReLU changes sign the network is exactly quadratic along the step, so the
    # gap f - f_lin is second order: halving the learning rate quarters it. (Larger steps flip units, and the
    # kinks make the gap's worst case closer to first order; see the chapter.)
    gaps, relative = [], []
    for lr in (2e-3, 1e-3, 5e-4):
        p1 = {k: p0[k] - lr * g_net[k] for k in p0}
        gap = net(p1, X) - f_lin(p1, X)
        gaps.append(gap.abs().max().item())
        relative.append((gap.norm() / (net(p1, X) - net(p0, X)).norm()).item())
    assert 3.5 < gaps[0] / gaps[1] < 4.5 and 3.5 < gaps[1] / gaps[2] < 4.5, gaps
    assert relative[-1] < 1e-4 and 1.8 < relative[0] / relative[1] < 2.2, relative  # gap / change of f ~ lr


def test_side_by_side_linear_model_follows_the_closed_form_kernel_dynamics():
    """GD on f_lin with MSE: f_t = Y + (I - lr Theta / N)^t (f_0 - Y) on the training points, Theta = J J^T."""
    net = MLP((6, 8, 2), parameterization="ntk")
    p0, X = net.init(0), _x(20)
    Y = targets(torch.arange(20) % 2, 2)
    lr, steps = 0.5, 15
    run = train_side_by_side(net, p0, X, Y, lr, steps, X, torch.arange(20) % 2)
    J = torch.func.jacrev(lambda p: net(p, X))(p0)
    J = torch.cat([J[k].reshape(40, -1) for k in p0], dim=1).double()
    theta = J @ J.T
    M = torch.eye(40, dtype=torch.float64) - lr * theta / 20
    r0 = (net(p0, X) - Y).reshape(-1).double()
    want = Y.reshape(-1).double() + torch.linalg.matrix_power(M, steps) @ r0
    got = linearize(net, p0)(run.params_lin, X).reshape(-1).double()
    assert (got - want).abs().max() < 1e-4
    assert run.history[0]["rms_gap"] == 0.0 and run.history[-1]["step"] == steps
    assert ntk_max_eigenvalue(net, p0, X, iters=100) == pytest.approx(torch.linalg.eigvalsh(theta / 20).max().item(), rel=1e-3)


def test_mse_grad_is_the_gradient_of_the_mse():
    out, Y = torch.randn(7, 3, requires_grad=True), torch.randn(7, 3)
    (0.5 * ((out - Y) ** 2).sum(1).mean()).backward()
    assert torch.allclose(out.grad, mse_grad(out.detach(), Y))


# --- random features ---------------------------------------------------------------------------


@pytest.mark.parametrize("p", [10, 60])  # primal (p < N) and dual (p > N) forms
def test_random_features_ridge_matches_the_direct_solve(p):
    rng = np.random.default_rng(p)
    X, Y = rng.standard_normal((30, 5)), rng.standard_normal((30, 3))
    Phi = relu_features(X, rng.standard_normal((p, 5)), rng.standard_normal(p))
    for lam in (1e-3, 1.0):
        assert np.abs(ridge(Phi, Y, lam) - ridge_direct(Phi, Y, lam)).max() < 1e-8
    # the normal equations hold
    beta = ridge(Phi, Y, 0.1)
    assert np.abs(Phi.T @ (Phi @ beta - Y) + 0.1 * beta).max() < 1e-9


def test_random_features_ridge_model_is_seeded_and_fits(digits):
    X, Y = digits.X_train.double().numpy(), targets(digits.y_train).double().numpy()
    model = RandomFeaturesRidge(256, lam=1e-3, seed=0).fit(X, Y)
    again = RandomFeaturesRidge(256, lam=1e-3, seed=0).fit(X, Y)
    assert np.array_equal(model.predict(X[:5]), again.predict(X[:5]))
    err = (model.predict(digits.X_test.double().numpy()).argmax(1) != digits.y_test.numpy()).mean()
    assert err < 0.05, err


def test_loglog_slope_recovers_a_power_law():
    widths = np.array([32, 64, 128, 256, 512])
    assert loglog_slope(widths, 3.0 / np.sqrt(widths)) == pytest.approx(-0.5, abs=1e-12)
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1, 2], [0.0, 1.0])


# --- bad input ---------------------------------------------------------------------------------


def test_bad_inputs_raise_value_errors():
    net = MLP((6, 8, 3))
    params = net.init(0)
    with pytest.raises(ValueError, match="at least one hidden layer"):
        MLP((6, 3))
    with pytest.raises(ValueError, match="parameterization"):
        MLP((6, 8, 3), parameterization="mup")
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        net(params, torch.zeros(4, 5))
    with pytest.raises(ValueError, match="W0"):
        check_params(net, {**params, "W0": torch.zeros(8, 5)})
    with pytest.raises(ValueError, match="keys"):
        check_params(net, {"W0": params["W0"]})
    with pytest.raises(ValueError, match="permutation of range"):
        permute(net, params, [np.array([0, 0, 1, 2, 3, 4, 5, 6])])
    with pytest.raises(ValueError, match="one permutation per hidden layer"):
        permute(net, params, [])
    with pytest.raises(ValueError, match="same keys"):
        interpolate(params, {"W0": params["W0"]}, 0.5)
    with pytest.raises(ValueError, match="increase from 0 to 1"):
        barrier([0.1, 0.2, 0.3], [0.0, 0.7, 0.5])
    with pytest.raises(ValueError, match="reference"):
        barrier([0.1, 0.2, 0.3], reference="max")
    with pytest.raises(ValueError, match="1-D"):
        barrier([[0.1, 0.2]])
    with pytest.raises(ValueError, match="lam"):
        ridge(np.ones((3, 2)), np.ones((3, 1)), 0.0)
    with pytest.raises(ValueError, match="share N"):
        ridge(np.ones((3, 2)), np.ones((4, 1)), 1.0)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="Y must have shape"):
        train_side_by_side(net, params, torch.zeros(5, 6), torch.zeros(5, 2), 0.1, 1, torch.zeros(2, 6), torch.zeros(2))
    with pytest.raises(ValueError, match="name must be one of"):
        load_results("nothing")
    with pytest.raises(ValueError, match="needs columns"):
        gap_chart(pd.DataFrame({"width": [1]}))


# --- shipped results and charts ----------------------------------------------------------------


def test_shipped_results_hold_every_configuration():
    rebasin, spawn, lin = load_results("rebasin"), load_results("spawn"), load_results("linearize")
    for res, name in ((rebasin, "rebasin"), (spawn, "spawn"), (lin, "linearize")):
        assert res["rebuild"].endswith(f"lablib/paths/results/{FILES[name]}") and res["commit"] and res["config"]["seeds"]
    cfg = rebasin["config"]
    assert {(r["width"], r["seed"]) for r in rebasin["rows"]} == set(itertools.product(cfg["widths"], cfg["seeds"]))
    assert max(r["function_change"] for r in rebasin["rows"]) < 1e-4  # matching never changed a network's outputs
    assert len(spawn["rows"]) == len(spawn["config"]["train"]) * len(spawn["config"]["seeds"]) * (len(spawn["config"]["ks"]) + 1)
    assert {(r["width"], r["seed"]) for r in lin["rows"]} == set(itertools.product(lin["config"]["widths"], lin["config"]["seeds"]))


def test_charts_build_from_tidy_frames():
    paths = pd.DataFrame([{"width": w, "seed": s, "kind": k, "metric": "test error", "alpha": a, "value": a * (1 - a)}
                          for w in (16, 32) for s in (0, 1) for k in ("naive", "matched") for a in (0.0, 0.5, 1.0)])
    bars = paths.groupby(["width", "seed", "kind", "metric"], as_index=False)["value"].max().rename(columns={"value": "barrier"})
    assert "hconcat" in path_chart(paths, bars).to_dict()
    spawn = pd.DataFrame({"optimizer": ["adam"] * 3, "seed": [0] * 3, "k": [0, 5, "independent"], "barrier": [0.0, 0.01, 0.3]})
    assert "hconcat" in spawn_chart(spawn, one_example=0.002).to_dict()
    gaps = pd.DataFrame({"width": [32, 64, 32, 64], "seed": [0, 0, 1, 1], "metric": ["rms output gap"] * 4,
                         "value": [0.1, 0.07, 0.11, 0.08]})
    assert "layer" in gap_chart(gaps).to_dict()
