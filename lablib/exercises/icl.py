"""Exercise checks for track 4 (in-context learning as gradient descent)."""

from __future__ import annotations

import torch

from lablib.exercises import compare_on_cases
from lablib.icl import LinearTransformer, RegressionTask, gd, predict

__all__ = ["check_one_step_prediction", "check_lsa_weights_for_gd"]


def _prompt_cases(seed0: int):
    """(xs, ys, x_query, eta) for a few sizes, in float64."""
    for i, (d, N, eta) in enumerate([(3, 5, 0.5), (10, 40, 40 / 51), (4, 1, 1.0), (6, 20, 0.1)]):
        p = RegressionTask(d=d, N=N, noise_std=0.1).sample(8, torch.Generator().manual_seed(seed0 + i), dtype=torch.float64)
        yield p.xs, p.ys, p.x_query, eta


def check_one_step_prediction(fn) -> str:
    """``fn(xs, ys, x_query, eta) -> yhat``: the prediction after one GD step from w = 0.

    On L(w) = 1/(2N) sum_i (w^T x_i - y_i)^2: w_1 = eta (1/N) sum_i y_i x_i and yhat = w_1^T x_query.
    Shapes: xs (B, N, d), ys (B, N), x_query (B, d), eta a float; yhat (B,).
    """

    def expected(xs, ys, x_query, eta):
        return predict(gd(xs, ys, eta), x_query)

    return compare_on_cases("one GD step", fn, expected, _prompt_cases(0), tol=1e-6)


def check_lsa_weights_for_gd(fn) -> str:
    """``fn(d, eta) -> (W_KQ, W_PV)``: (d+1, d+1) float64 weights that make one linear self-attention
    layer (``lablib.icl.LinearSelfAttention``, prediction = minus the query's label slot) compute
    one GD step with step size eta. Checked by loading them into a layer and comparing its
    predictions with GD's on random prompts; any weights that do so pass.
    """

    def via_layer(xs, ys, x_query, eta):
        d = xs.shape[-1]
        W_KQ, W_PV = fn(d, eta)
        for name, W in (("W_KQ", W_KQ), ("W_PV", W_PV)):
            if not isinstance(W, torch.Tensor) or W.shape != (d + 1, d + 1):
                shape = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
                raise AssertionError(f"LSA weights for GD: {name} should have shape (d+1, d+1) = {(d + 1, d + 1)}; got {shape}")
        model = LinearTransformer(d, 1, init_std=0.0, dtype=torch.float64)
        model.layers[0].set_weights(W_KQ.double(), W_PV.double())
        with torch.no_grad():
            return model.predict(xs, ys, x_query)

    def expected(xs, ys, x_query, eta):
        return predict(gd(xs, ys, eta), x_query)

    return compare_on_cases("LSA weights for GD", via_layer, expected, _prompt_cases(10), tol=1e-6)
