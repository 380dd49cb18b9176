"""Track 1 meets track 4: linear attention is batch GD, the delta rule is online GD.

Feed a prompt's examples to a recurrent layer as keys k_t = x_t and values v_t = y_t, and read
it with the query q = x_q. The state S (d, 1) is a weight vector w = S[:, 0]:

* Linear attention adds k_t v_t^T: S_N = sum_i x_i y_i = N h (h = X^T y / N), and reading gives
  x_q^T S_N. Scaled by eta / N that is x_q^T (eta h): one *batch* GD step from w = 0, the same
  thing one layer of linear self-attention computes (``linear_attention_icl_predict``).

* The delta rule writes only the correction, S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T:

      w_t = w_{t-1} - eta grad_w 1/2 (w^T x_t - y_t)^2 |_{w_{t-1}}      (beta_t = eta)

  one SGD step per example, in order: *online* GD (``online_gd``), and DeltaNet read with x_q
  after t tokens predicts w_t^T x_q (``deltanet_icl_predict``).

For small eta the two agree to first order, with online step eta matching batch step N eta:
w_N = eta sum_i y_i x_i + O(eta^2). Beyond that, online GD has seen each example's residual
*after* the earlier updates, which is why a single pass of it fits better than one batch step.

The delta rule in ``lablib.attention`` takes beta in [0, 2] (the range that keeps the update
stable for unit keys); here keys are the raw x_t (``normalize_keys=False``), for which online
GD is stable only if eta ||x_t||^2 < 2, i.e. eta well below 2/d for x ~ N(0, I_d).
"""

from __future__ import annotations

import math

import torch

from lablib.attention.delta import BETA_MAX, delta_rule_recurrent
from lablib.attention.linear import linear_attention_recurrent
from lablib.icl.tasks import check_prompts

__all__ = ["online_gd", "deltanet_icl_predict", "linear_attention_icl_predict"]


def _check_eta(eta, *, upper: float | None = None) -> float:
    try:
        eta = float(eta)
    except (TypeError, ValueError):
        raise ValueError(f"eta must be a number; got {eta!r}") from None
    if not math.isfinite(eta) or eta < 0:
        raise ValueError(f"eta must be a finite, non-negative number; got {eta!r}")
    if upper is not None and eta > upper:
        raise ValueError(
            f"eta = {eta:g} is outside [0, {upper:g}], the range delta_rule_recurrent accepts for beta "
            f"(with raw keys x_t, online GD needs eta ||x_t||^2 < 2 to be stable anyway)"
        )
    return eta


def online_gd(xs: torch.Tensor, ys: torch.Tensor, eta: float, *, return_path: bool = False) -> torch.Tensor:
    """One pass of SGD over the examples in order, from w = 0: w_t = w_{t-1} + eta x_t (y_t - w_{t-1}^T x_t).

    xs (B, N, d), ys (B, N). Returns w_N (B, d), or with ``return_path=True`` every w_t (B, N, d)
    (row t is the weight after examples 1..t+1).
    """
    B, N, d = check_prompts(xs, ys)
    eta = _check_eta(eta)
    w = xs.new_zeros(B, d)
    path = []
    for t in range(N):
        x_t = xs[:, t]
        residual = ys[:, t] - (w * x_t).sum(-1)  # y_t - w^T x_t: minus the loss's gradient factor
        w = w + eta * residual[:, None] * x_t
        path.append(w)
    return torch.stack(path, dim=1) if return_path else w


def deltanet_icl_predict(xs: torch.Tensor, ys: torch.Tensor, x_query: torch.Tensor, eta: float, *,
                         return_curve: bool = False) -> torch.Tensor:
    """Predictions (B,) of a DeltaNet fed k_t = x_t, v_t = y_t, beta_t = eta and read with q_t = x_q.

    Uses ``lablib.attention.delta_rule_recurrent`` with one head, D_k = d, D_v = 1 and
    ``normalize_keys=False``: the state is (d, 1), the online-GD weight. The query is the same at
    every step, so output t is the prediction after t+1 examples; ``return_curve=True`` returns
    all of them (B, N), the last column being the default return value.
    xs (B, N, d), ys (B, N), x_query (B, d); eta in [0, 2].
    """
    B, N, d = check_prompts(xs, ys, x_query)
    eta = _check_eta(eta, upper=BETA_MAX)
    k = xs[:, None]  # (B, 1, N, d): one head
    v = ys[:, None, :, None]  # (B, 1, N, 1)
    q = x_query[:, None, None, :].expand(B, 1, N, d)
    beta = xs.new_full((B, 1, N), eta)
    out = delta_rule_recurrent(q, k, v, beta, normalize_keys=False)  # (B, 1, N, 1)
    curve = out[:, 0, :, 0]
    return curve if return_curve else curve[:, -1]


def linear_attention_icl_predict(xs: torch.Tensor, ys: torch.Tensor, x_query: torch.Tensor, eta: float) -> torch.Tensor:
    """Predictions (B,) of unnormalized linear attention over k = x_i, v = y_i, read with x_q, times eta / N.

    ``lablib.attention.linear_attention_recurrent`` with the identity feature map and no
    normalizer returns x_q^T sum_i x_i y_i; scaled by eta / N it is one batch GD step with step eta
    (= ``baselines.predict(baselines.gd(xs, ys, eta), x_query)``).
    """
    B, N, d = check_prompts(xs, ys, x_query)
    eta = _check_eta(eta)
    out = linear_attention_recurrent(
        x_query[:, None, None, :], xs[:, None], ys[:, None, :, None], feature_map="identity", normalize=False, causal=False
    )  # (B, 1, 1, 1)
    return eta / N * out[:, 0, 0, 0]
