"""Track 4, exact parts: hand-set linear self-attention *is* gradient descent, closed forms, DeltaNet = online GD.

Everything here is float64 and training-free (a few seconds in all); the trained models are in
test_icl_training.py.
"""

import math

import pytest
import torch

from lablib.icl import (
    LinearTransformer,
    RegressionTask,
    SoftmaxTransformer,
    bayes_optimal_weights,
    deltanet_icl_predict,
    effective_preconditioner,
    fit_preconditioners,
    fit_step_sizes,
    from_prompt_matrix,
    gd,
    gd_plus_plus,
    implied_weights,
    least_squares,
    linear_attention_icl_predict,
    lsa_from_gd,
    lsa_from_gd_plus_plus,
    mse,
    one_step_expected_loss,
    online_gd,
    optimal_preconditioner,
    optimal_step_size,
    preconditioned_gd,
    predict,
    random_covariance,
    ridge,
    sample_regression_prompts,
    to_prompt_matrix,
    train_lsa,
)
from lablib.testing import assert_agree

D, N = 5, 12


def prompts(batch=64, *, N=N, d=D, seed=0, **kw):
    return sample_regression_prompts(batch, N, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64, **kw)


def random_gamma(d=D, seed=1):
    return 0.3 * torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------- prompts


def test_prompt_shapes_and_matrix_round_trip():
    p = prompts(batch=3)
    assert p.xs.shape == (3, N, D) and p.ys.shape == (3, N) and p.x_query.shape == (3, D)
    assert p.y_query.shape == (3,) and p.w.shape == (3, D)
    assert_agree(p.ys, torch.einsum("bnd,bd->bn", p.xs, p.w), 1e-12, "noiseless labels")
    Z = to_prompt_matrix(p.xs, p.ys, p.x_query)
    assert Z.shape == (3, D + 1, N + 1)
    assert (Z[:, D, N] == 0).all(), "the query's label slot starts at 0"
    for a, b in zip(from_prompt_matrix(Z), (p.xs, p.ys, p.x_query)):
        assert torch.equal(a, b)


def test_same_seed_same_prompts_in_every_dtype():
    a = sample_regression_prompts(4, 6, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    b = sample_regression_prompts(4, 6, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float32)
    assert_agree(b.xs, a.xs, 1e-6, "float32 vs float64 prompts")


def test_covariance_and_noise_are_what_was_asked_for():
    cov = random_covariance(4, condition=10.0, seed=3)
    assert torch.allclose(cov, cov.T) and math.isclose(torch.trace(cov).item(), 4.0, rel_tol=1e-12)
    eig = torch.linalg.eigvalsh(cov)
    assert math.isclose((eig.max() / eig.min()).item(), 10.0, rel_tol=1e-9)
    p = prompts(batch=20000, N=4, d=4, covariance=cov, noise_std=0.5, seed=2)
    x = p.xs.reshape(-1, 4)
    assert_agree(x.T @ x / x.shape[0], cov, 0.03, "empirical vs asked covariance")
    residual = p.ys - torch.einsum("bnd,bd->bn", p.xs, p.w)
    assert math.isclose(residual.std().item(), 0.5, rel_tol=0.02)


# ----------------------------------------------------------------------------- LSA with hand-set weights = GD


@pytest.mark.parametrize("gamma", ["plain", "preconditioned"])
def test_hand_set_lsa_is_one_gd_step(gamma):
    p = prompts()
    G = 0.37 if gamma == "plain" else random_gamma()
    model = lsa_from_gd(D, G)
    w_gd = gd(p.xs, p.ys, G) if gamma == "plain" else preconditioned_gd(p.xs, p.ys, G)
    # yhat = x_q^T Gamma (1/N) sum_i y_i x_i, written out directly
    h = torch.einsum("bnd,bn->bd", p.xs, p.ys) / N
    G_mat = G * torch.eye(D, dtype=torch.float64) if gamma == "plain" else G
    by_hand = torch.einsum("bd,de,be->b", p.x_query, G_mat, h)
    assert_agree(model.predict(p.xs, p.ys, p.x_query), predict(w_gd, p.x_query), 1e-10, "LSA vs one GD step")
    assert_agree(predict(w_gd, p.x_query), by_hand, 1e-10, "GD vs x_q^T Gamma h")
    assert_agree(implied_weights(model, p.xs, p.ys), w_gd, 1e-10, "implied weights vs GD's w")
    assert_agree(effective_preconditioner(model.layers[0]), G_mat, 1e-12, "effective preconditioner")


def test_hand_set_k_layers_are_k_gd_steps():
    p = prompts()
    gammas = [0.3, random_gamma(seed=2), 0.8 * torch.eye(D, dtype=torch.float64)]
    model = lsa_from_gd(D, gammas)
    for k in (1, 2, 3):  # the first k layers are the first k steps
        sub = LinearTransformer(D, k, dtype=torch.float64)
        sub.load_state_dict({name: t for name, t in model.state_dict().items() if int(name.split(".")[1]) < k})
        w = preconditioned_gd(p.xs, p.ys, gammas[:k])
        assert_agree(sub.predict(p.xs, p.ys, p.x_query), predict(w, p.x_query), 1e-10, f"{k}-layer LSA vs {k} GD steps")
    # the training tokens' label slots hold the residuals y_i - w_k^T x_i after k layers
    Z = model(to_prompt_matrix(p.xs, p.ys, p.x_query))
    residual = p.ys - torch.einsum("bnd,bd->bn", p.xs, preconditioned_gd(p.xs, p.ys, gammas))
    assert_agree(Z[:, D, :N], residual, 1e-10, "label row vs residuals")


def test_restricted_layer_is_gd_by_construction():
    model = LinearTransformer(D, 2, restricted=True, init_std=0.3, seed=4, dtype=torch.float64)
    p = prompts()
    gammas = [layer.gamma.detach() for layer in model.layers]
    assert_agree(model.predict(p.xs, p.ys, p.x_query), predict(preconditioned_gd(p.xs, p.ys, gammas), p.x_query),
                 1e-10, "restricted LSA vs preconditioned GD")


def test_hand_set_lsa_is_gd_plus_plus():
    p = prompts()
    etas, gammas = [0.5, 1.3, 2.0], [0.3, 0.7, 0.1]
    model = lsa_from_gd_plus_plus(D, etas, gammas)
    assert_agree(model.predict(p.xs, p.ys, p.x_query), gd_plus_plus(p.xs, p.ys, p.x_query, etas, gammas), 1e-10,
                 "LSA vs GD++")
    # gamma = 0 is plain GD
    assert_agree(gd_plus_plus(p.xs, p.ys, p.x_query, etas, [0, 0, 0]), predict(gd(p.xs, p.ys, etas, 3), p.x_query),
                 1e-10, "GD++ with gamma = 0 vs GD")


def test_deep_lsa_is_linear_in_the_query():
    """Any LSA stack predicts w_eff^T x_q exactly (the query never feeds keys/values); softmax does not."""
    p = prompts(batch=8)
    model = LinearTransformer(D, 3, init_std=0.4, seed=1, dtype=torch.float64)
    w_eff = implied_weights(model, p.xs, p.ys)
    for seed in range(3):
        xq = torch.randn(8, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert_agree(model.predict(p.xs, p.ys, xq), predict(w_eff, xq), 1e-10, "LSA vs w_eff^T x_q")
    soft = SoftmaxTransformer(D, 1, init_std=0.4, seed=1, dtype=torch.float64)
    w_soft = implied_weights(soft, p.xs, p.ys, p.x_query)
    xq = 2 * p.x_query
    assert (soft.predict(p.xs, p.ys, xq) - predict(w_soft, xq)).abs().max() > 1e-3


# ----------------------------------------------------------------------------- closed forms and solvers


def test_optimal_step_size_isotropic():
    for d, n, noise in [(5, 20, 0.0), (10, 40, 0.0), (3, 7, 0.5)]:
        task = RegressionTask(d=d, N=n, noise_std=noise)
        assert math.isclose(optimal_step_size(task), n / (n + d + 1 + noise**2), rel_tol=1e-12)
        assert_agree(optimal_preconditioner(task), optimal_step_size(task) * torch.eye(d, dtype=torch.float64), 1e-12,
                     "isotropic Gamma* vs eta* I")
        # closed-form expected loss: d (d+1 + noise^2) / (N + d + 1 + noise^2) + noise^2 for Sigma = I
        expected = d * (d + 1 + noise**2) / (n + d + 1 + noise**2) + noise**2
        assert math.isclose(one_step_expected_loss(task, optimal_step_size(task)), expected, rel_tol=1e-12)


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_closed_forms_match_monte_carlo_and_are_minima(noise):
    task = RegressionTask(d=D, N=N, noise_std=noise, covariance=random_covariance(D, condition=10.0))
    p = task.sample(100_000, torch.Generator().manual_seed(11), dtype=torch.float64)
    G = optimal_preconditioner(task)
    mc = mse(predict(preconditioned_gd(p.xs, p.ys, G), p.x_query), p.y_query).item()
    assert math.isclose(mc, one_step_expected_loss(task, G), rel_tol=0.02)
    eta = optimal_step_size(task)
    mc_eta = mse(predict(gd(p.xs, p.ys, eta), p.x_query), p.y_query).item()
    assert math.isclose(mc_eta, one_step_expected_loss(task, eta), rel_tol=0.02)
    # minima: every perturbation of Gamma* (and of eta*) raises the closed-form loss
    best = one_step_expected_loss(task, G)
    for seed in range(5):
        assert one_step_expected_loss(task, G + 0.05 * random_gamma(seed=seed)) > best
    assert one_step_expected_loss(task, eta * 1.05) > one_step_expected_loss(task, eta)
    assert one_step_expected_loss(task, eta * 0.95) > one_step_expected_loss(task, eta)
    assert best < one_step_expected_loss(task, eta), "a matrix preconditioner beats a scalar step for skewed inputs"


@pytest.mark.parametrize("c", [3.0, 0.5])
def test_closed_forms_for_a_scaled_identity_are_exact(c):
    """Sigma = c I, so tr(Sigma) = c d != d, with noise and w_std != 1: E[S^2] = (N+1)/N c^2 I + c^2 d/N I
    gives eta* = N / (c (N + d + 1) + sigma^2/tau^2) and the loss tau^2 c d (1 - c eta*) + sigma^2.
    (Every other test's covariance has trace d, where tr(Sigma) and d cannot be told apart.)"""
    d, n, noise, w_std = 4, 9, 0.4, 1.5
    task = RegressionTask(d=d, N=n, noise_std=noise, w_std=w_std, covariance=c * torch.eye(d, dtype=torch.float64))
    eta = n / (c * (n + d + 1) + noise**2 / w_std**2)
    assert math.isclose(optimal_step_size(task), eta, rel_tol=1e-12)
    assert_agree(optimal_preconditioner(task), eta * torch.eye(d, dtype=torch.float64), 1e-12, "Gamma* vs eta* I")
    expected = w_std**2 * c * d * (1 - c * eta) + noise**2
    assert math.isclose(one_step_expected_loss(task, eta), expected, rel_tol=1e-12)


@pytest.mark.parametrize("c", [3.0, 0.5])
def test_closed_forms_match_monte_carlo_when_trace_is_not_d(c):
    """Anisotropic diagonal Sigma with tr(Sigma) = c d, noise 0.3, w_std 1.5; 100k prompts. The closed-form
    loss matches the Monte Carlo loss (for Gamma*, a perturbed Gamma and eta*), and Gamma*, eta* match the
    empirical minimizers: the step b / a of the sample quadratic a eta^2 - 2 b eta + ..., and the
    preconditioner fitted by least squares on the features x_q (x) h (the loss is quadratic in Gamma).
    Measured: losses within 0.5%, eta* 0.1%, Gamma* 1.5% (Frobenius); with d in place of tr(Sigma) the
    losses are off by 19-88%, eta* by 17%, Gamma* by 25-34%."""
    d, n = 4, 10
    cov = c * torch.diag(torch.tensor([1.6, 1.2, 0.7, 0.5], dtype=torch.float64))
    task = RegressionTask(d=d, N=n, noise_std=0.3, covariance=cov, w_std=1.5)
    assert math.isclose(torch.trace(task.sigma).item(), c * d)
    p = task.sample(100_000, torch.Generator().manual_seed(0), dtype=torch.float64)
    G, eta = optimal_preconditioner(task), optimal_step_size(task)
    perturbed = G + 0.1 * random_gamma(d, seed=1)
    for gamma in (G, perturbed):
        mc = mse(predict(preconditioned_gd(p.xs, p.ys, gamma), p.x_query), p.y_query).item()
        assert math.isclose(mc, one_step_expected_loss(task, gamma), rel_tol=0.02)
    mc_eta = mse(predict(gd(p.xs, p.ys, eta), p.x_query), p.y_query).item()
    assert math.isclose(mc_eta, one_step_expected_loss(task, eta), rel_tol=0.02)
    h = torch.einsum("bnd,bn->bd", p.xs, p.ys) / n  # yhat = x_q^T Gamma h
    read = (p.x_query * h).sum(-1)
    assert math.isclose((read * p.y_query).mean().item() / read.square().mean().item(), eta, rel_tol=0.02)
    features = (p.x_query[:, :, None] * h[:, None, :]).reshape(-1, d * d)  # x_q^T Gamma h = <x_q h^T, Gamma>
    fitted = torch.linalg.lstsq(features, p.y_query[:, None]).solution.reshape(d, d)
    assert (fitted - G).norm() / G.norm() < 0.05


def test_fitted_one_step_preconditioner_approaches_closed_form():
    task = RegressionTask(d=4, N=10, covariance=random_covariance(4, condition=5.0))
    fitted = fit_preconditioners(task.sample(20_000, torch.Generator().manual_seed(0), dtype=torch.float64), 1)[0]
    G = optimal_preconditioner(task)
    assert (fitted - G).norm() / G.norm() < 0.06
    fitted_eta = fit_step_sizes(task.sample(20_000, torch.Generator().manual_seed(1), dtype=torch.float64), 1)
    assert math.isclose(fitted_eta.item(), optimal_step_size(task), rel_tol=0.03)


def test_fitted_step_sizes_break_the_symmetry():
    """k scalar GD steps commute; the fit must still find distinct, increasing steps (not the symmetric saddle)."""
    p = RegressionTask(d=D, N=20).sample(4000, torch.Generator().manual_seed(7), dtype=torch.float64)
    etas = fit_step_sizes(p, 2)
    assert etas[1] > 1.5 * etas[0]
    same = mse(predict(gd(p.xs, p.ys, etas.mean(), 2), p.x_query), p.y_query)
    assert mse(predict(gd(p.xs, p.ys, etas, 2), p.x_query), p.y_query) < 0.9 * same


def test_least_squares_ridge_and_bayes():
    p = prompts(N=20)  # N > d, noiseless: least squares recovers w
    assert_agree(least_squares(p.xs, p.ys), p.w, 1e-10, "least squares vs true w")
    q = prompts(N=3)  # N < d: the minimum-norm interpolant
    w = least_squares(q.xs, q.ys)
    assert_agree(torch.einsum("bnd,bd->bn", q.xs, w), q.ys, 1e-10, "interpolates")
    assert_agree(ridge(q.xs, q.ys, 1e-9), w, 1e-6, "ridge -> least squares as lam -> 0")
    task = RegressionTask(d=D, N=N, noise_std=0.5, w_std=2.0)
    r = task.sample(16, torch.Generator().manual_seed(3), dtype=torch.float64)
    lam = 0.5**2 / 2.0**2
    X, y = r.xs, r.ys
    posterior_mean = torch.linalg.inv(X.transpose(1, 2) @ X + lam * torch.eye(D, dtype=torch.float64)) @ (
        X.transpose(1, 2) @ y[..., None])
    assert_agree(bayes_optimal_weights(X, y, task), posterior_mean[..., 0], 1e-10, "posterior mean")
    # the posterior mean beats the optimal one-step GD on average
    big = task.sample(20_000, torch.Generator().manual_seed(4), dtype=torch.float64)
    bayes = mse(predict(bayes_optimal_weights(big.xs, big.ys, task), big.x_query), big.y_query)
    one_step = mse(predict(gd(big.xs, big.ys, optimal_step_size(task)), big.x_query), big.y_query)
    assert bayes < one_step


# ----------------------------------------------------------------------------- track 1: linear attention and DeltaNet


def test_deltanet_is_online_gd():
    p = prompts(N=30)
    eta = 0.07
    path = online_gd(p.xs, p.ys, eta, return_path=True)  # (B, N, d)
    # online GD written out once more, step by step
    w = torch.zeros(p.xs.shape[0], D, dtype=torch.float64)
    for t in range(30):
        w = w - eta * (torch.einsum("bd,bd->b", w, p.xs[:, t]) - p.ys[:, t])[:, None] * p.xs[:, t]
    assert_agree(path[:, -1], w, 1e-12, "online_gd vs the SGD loop")
    curve = deltanet_icl_predict(p.xs, p.ys, p.x_query, eta, return_curve=True)
    assert_agree(curve, torch.einsum("bnd,bd->bn", path, p.x_query), 1e-10, "DeltaNet readout vs online GD, every t")
    assert_agree(deltanet_icl_predict(p.xs, p.ys, p.x_query, eta), predict(w, p.x_query), 1e-10, "final prediction")


def test_linear_attention_is_one_batch_gd_step_and_online_gd_agrees_to_first_order():
    p = prompts(N=30)
    assert_agree(linear_attention_icl_predict(p.xs, p.ys, p.x_query, 0.8), predict(gd(p.xs, p.ys, 0.8), p.x_query),
                 1e-10, "linear attention vs one GD step")
    # online step eta ~ batch step N eta: w differs by O(eta^2) while w itself is O(eta), so the
    # relative gap shrinks in proportion to eta
    gaps = []
    for eta in (1e-3, 5e-4):
        online = online_gd(p.xs, p.ys, eta)
        batch = gd(p.xs, p.ys, 30 * eta)
        gaps.append(((online - batch).norm() / batch.norm()).item())
    assert gaps[0] < 0.05 and 1.8 < gaps[0] / gaps[1] < 2.2


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors():
    p = prompts(batch=4)
    nan_xs = p.xs.clone()
    nan_xs[0, 0, 0] = float("nan")
    cases = [
        (lambda: sample_regression_prompts(0, 5, 3), "batch must be a positive integer"),
        (lambda: sample_regression_prompts(2, 0, 3), "N must be a positive integer"),
        (lambda: sample_regression_prompts(2, 5, -1), "d must be a positive integer"),
        (lambda: sample_regression_prompts(2, 5, 3, noise_std=-0.1), "noise_std"),
        (lambda: sample_regression_prompts(2, 5, 3, noise_std=float("nan")), "noise_std"),
        (lambda: sample_regression_prompts(2, 5, 3, covariance=torch.eye(4)), r"covariance must have shape \(d, d\)"),
        (lambda: sample_regression_prompts(2, 5, 2, covariance=torch.tensor([[1.0, 2.0], [0.0, 1.0]])), "symmetric"),
        (lambda: sample_regression_prompts(2, 5, 2, covariance=torch.tensor([[1.0, 2.0], [2.0, 1.0]])),
         "positive semi-definite"),
        (lambda: RegressionTask(d=0, N=3), "d must be a positive integer"),
        (lambda: to_prompt_matrix(nan_xs, p.ys, p.x_query), "xs contains NaN"),
        (lambda: to_prompt_matrix(p.xs, p.ys[:, :-1], p.x_query), r"ys must have shape \(B, N\)"),
        (lambda: to_prompt_matrix(p.xs, p.ys, p.x_query[:, :-1]), r"x_query must have shape \(B, d\)"),
        (lambda: to_prompt_matrix(p.xs[0], p.ys, p.x_query), r"xs must have shape \(B, N, d\)"),
        (lambda: gd(p.xs, p.ys, 0.1, steps=0), "steps must be a positive integer"),
        (lambda: gd(p.xs, p.ys, float("nan")), "eta must be finite"),
        (lambda: gd(p.xs, p.ys, [0.1, 0.2], steps=3), "one step size per step"),
        (lambda: preconditioned_gd(p.xs, p.ys, torch.eye(D + 1)), r"must be a \(d, d\)"),
        (lambda: ridge(p.xs, p.ys, -1.0), "lam must be"),
        (lambda: fit_step_sizes(p, 0), "steps must be a positive integer"),
        (lambda: lsa_from_gd(D, float("inf")), "must be finite"),
        (lambda: LinearTransformer(D, 0), "n_layers must be a positive integer"),
        (lambda: LinearTransformer(D)(torch.zeros(2, D, N + 1)), "d\\+1 = 6 rows"),
        (lambda: LinearTransformer(D + 1).predict(p.xs.float(), p.ys.float(), p.x_query.float()), "built for d = 6"),
        (lambda: deltanet_icl_predict(p.xs, p.ys, p.x_query, 2.5), r"outside \[0, 2\]"),
        (lambda: online_gd(p.xs, p.ys, -0.1), "eta must be a finite, non-negative"),
        (lambda: train_lsa(LinearTransformer(D), RegressionTask(d=D + 1, N=3), 5, progress=False), "task has d = 6"),
        (lambda: train_lsa(LinearTransformer(D), RegressionTask(d=D, N=3), 0, progress=False), "steps must be"),
        (lambda: train_lsa(LinearTransformer(D), RegressionTask(d=D, N=3), 5, lr=-1, progress=False), "lr must be"),
        (lambda: one_step_expected_loss(RegressionTask(d=D, N=3), torch.eye(D + 1)), "gamma must be a finite"),
    ]
    for fn, message in cases:
        with pytest.raises(ValueError, match=message):
            fn()


def test_train_lsa_is_reproducible_and_lowers_the_loss():
    task = RegressionTask(d=3, N=8)
    histories = []
    for _ in range(2):
        model = LinearTransformer(3, 1, init_std=0.1, seed=0)
        histories.append(train_lsa(model, task, 60, lr=0.03, batch=64, seed=0, progress=False))
    assert torch.equal(histories[0], histories[1])
    assert histories[0].shape == (60,) and torch.isfinite(histories[0]).all()
    assert histories[0][-10:].mean() < 0.8 * histories[0][:10].mean()
