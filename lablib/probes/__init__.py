"""Track 3, linear representations: probes, interventions and the causal inner product on the
Othello world model (``lablib.world``).

* ``linear``: probes over cached residual streams: ``fit_logistic_probe`` (multinomial logistic,
  L2, full-batch LBFGS or Adam), ``fit_ridge_probe`` (closed form), ``fit_mlp_probe`` (one hidden
  layer), ``probe_accuracy``, ``majority_baseline``, ``random_init_model`` (the control: same config,
  fresh init) and ``probe_table`` (per layer: black/white vs mine/theirs, linear vs MLP, trained vs
  random init) with ``format_table``. The key finding of Nanda et al. (2023), mine/theirs linearly
  decodable far better than black/white, reproduces on the shipped 6x6 model.
* ``intervene``: ``run_from_layer`` / ``run_with_edits`` (the GPT run from a layer with an edited
  residual), ``edit_residual`` (along a probe's directions: "add" or "replace"),
  ``intervention_experiment`` (flip a square's owner in the model's belief; compare its predicted
  legal moves with the engine's legal moves of the edited board, against no edit and a random
  direction of the same norm); ``single_edit`` (one such edit, its before / after move
  probabilities and legal sets, for looking at).
* ``geometry``: the causal inner product of Park, Choe & Veitch (2024): ``causal_metric``
  (``Cov(gamma)^{-1}`` of the unembedding), ``whitening``, ``causal_inner_product``,
  ``causal_cosine``, ``concept_differences`` (row / column concepts of a move) and
  ``separation_report`` (|cos| Euclidean vs causal, with random baselines), which also states why a
  32-token vocabulary in 128 dimensions makes the causal metric degenerate.
"""

from lablib.probes.geometry import (
    causal_cosine,
    causal_inner_product,
    causal_metric,
    concept_differences,
    format_report,
    pair_cosines,
    separation_report,
    unembedding_vectors,
    whitening,
)
from lablib.probes.intervene import (
    EDIT_METHODS,
    Edit,
    candidate_edits,
    class_means,
    edit_residual,
    edited_legal,
    intervention_experiment,
    run_from_layer,
    run_with_edits,
    single_edit,
)
from lablib.probes.linear import (
    PROBE_KINDS,
    LinearProbe,
    MLPProbe,
    fit_logistic_probe,
    fit_mlp_probe,
    fit_probe,
    fit_ridge_probe,
    format_table,
    majority_baseline,
    probe_accuracy,
    probe_table,
    random_init_model,
)
