"""Track 4: in-context learning as gradient descent.

A transformer shown N pairs (x_i, y_i = w^T x_i + noise) of a fresh random w, and a query x_q,
can learn to predict w^T x_q without any weight update: it learns *in context*. With linear
self-attention the algorithm it learns can be read off exactly: one layer computes one step of
(preconditioned) gradient descent on the prompt's least-squares loss, and k layers compute k steps
(von Oswald et al., 2023; Ahn et al., 2023; Mahankali et al., 2023; Zhang, Frei & Bartlett, 2023).

Modules:

* ``tasks``: the prompt distribution (``RegressionTask``, ``sample_regression_prompts``) and the
  prompt matrix Z (B, d+1, N+1) (``to_prompt_matrix``); ``random_covariance`` for skewed inputs.
* ``baselines``: least squares, ridge / the Bayes-optimal posterior mean, k steps of (preconditioned)
  GD, the optimal one-step step size and preconditioner in closed form, fitted ones for k steps.
* ``lsa``: ``LinearSelfAttention`` and ``SoftmaxSelfAttention`` layers in the Z form, stacked as
  ``LinearTransformer`` / ``SoftmaxTransformer``; ``lsa_from_gd`` sets the weights by hand.
* ``train``: ``train_lsa``, ``evaluate``, ``implied_weights``, ``compare_with_gd``.
* ``delta``: linear attention = one batch GD step; DeltaNet (track 1's delta rule) = online GD.

Sign convention: the prediction is minus the bottom-right entry of the last layer's Z (as in
the papers), so that the same hand-set weights make every layer a GD step.
"""

from lablib.icl.baselines import (
    bayes_optimal_weights,
    fit_gd_plus_plus,
    fit_preconditioners,
    fit_step_sizes,
    gd,
    gd_plus_plus,
    least_squares,
    mse,
    one_step_expected_loss,
    optimal_preconditioner,
    optimal_step_size,
    preconditioned_gd,
    predict,
    ridge,
)
from lablib.icl.delta import deltanet_icl_predict, linear_attention_icl_predict, online_gd
from lablib.icl.lsa import (
    LinearSelfAttention,
    LinearTransformer,
    PromptTransformer,
    SoftmaxSelfAttention,
    SoftmaxTransformer,
    effective_preconditioner,
    lsa_from_gd,
    lsa_from_gd_plus_plus,
)
from lablib.icl.tasks import (
    Prompts,
    RegressionTask,
    from_prompt_matrix,
    random_covariance,
    sample_regression_prompts,
    to_prompt_matrix,
)
from lablib.icl.train import compare_with_gd, evaluate, implied_weights, train_lsa

__all__ = [
    "LinearSelfAttention",
    "LinearTransformer",
    "PromptTransformer",
    "Prompts",
    "RegressionTask",
    "SoftmaxSelfAttention",
    "SoftmaxTransformer",
    "bayes_optimal_weights",
    "compare_with_gd",
    "deltanet_icl_predict",
    "effective_preconditioner",
    "evaluate",
    "fit_gd_plus_plus",
    "fit_preconditioners",
    "fit_step_sizes",
    "from_prompt_matrix",
    "gd",
    "gd_plus_plus",
    "implied_weights",
    "least_squares",
    "linear_attention_icl_predict",
    "lsa_from_gd",
    "lsa_from_gd_plus_plus",
    "mse",
    "one_step_expected_loss",
    "online_gd",
    "optimal_preconditioner",
    "optimal_step_size",
    "preconditioned_gd",
    "predict",
    "random_covariance",
    "ridge",
    "sample_regression_prompts",
    "to_prompt_matrix",
    "train_lsa",
]
