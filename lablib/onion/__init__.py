"""Beyond linear: "onion" representations in a small GRU that repeats sequences.

After Csordás, Potts, Manning & Geiger (2024), "Recurrent Neural Networks Learn to Store and
Generate Sequences using Non-Linear Representations" (arXiv 2408.10920): a GRU reads a random
token sequence and then writes it out again, autoregressively, from its state alone. How is the
sequence stored in that state? The linear-representation hypothesis says: the token at position
``i`` lives in a subspace of its own. Small GRUs instead tend to store all positions along shared
directions at different magnitudes, layered like an onion.

Modules:

* ``task``: ``sample_batch`` (variable-length sequences, train / held-out split by hash),
  ``fixed_length_batch``, ``decoder_targets``, token ids ``sos_id`` / ``eos_id`` / ``pad_id``.
* ``model``: ``RepeatConfig``, ``RepeatGRU`` (``encode``, ``decode_logits``, ``loss``,
  ``generate``, ``repeat``), ``repeat_accuracy``.
* ``train``: ``train``, ``heldout_metrics``, ``save_checkpoint`` / ``load_checkpoint``; the CLI
  ``python -m lablib.onion.train``. Shipped models: ``load_checkpoint(64)`` (the default).
* ``analysis``: ``collect_states``, ``linear_probe_accuracy``, ``position_contributions``,
  ``fit_intervention`` / ``intervention_success`` (kinds ``"subspace"``, ``"onion"``,
  ``"additive"``), ``onion_scales``, ``random_init_like``, ``analyse``,
  ``save_interventions`` / ``load_interventions`` (the shipped ones:
  ``load_interventions(model, interventions_path(DEFAULT_CHECKPOINT))``).
"""

from lablib.onion.analysis import (
    ANALYSIS_LENGTH,
    KINDS,
    AdditiveIntervention,
    States,
    SubspaceIntervention,
    analyse,
    collect_states,
    fit_intervention,
    intervention_success,
    linear_probe_accuracy,
    load_interventions,
    make_intervention,
    onion_scales,
    position_contributions,
    random_init_like,
    save_interventions,
)
from lablib.onion.model import RepeatConfig, RepeatGRU, check_hidden, repeat_accuracy
from lablib.onion.task import (
    DEFAULT_MAX_LEN,
    DEFAULT_VOCAB,
    check_tokens,
    decoder_targets,
    eos_id,
    fixed_length_batch,
    is_heldout,
    pad_id,
    sample_batch,
    sos_id,
)

# From ``train``, imported lazily so that ``python -m lablib.onion.train`` does not find its module
# already imported.
_TRAIN_NAMES = (
    "CHECKPOINT_DIR",
    "DEFAULT_CHECKPOINT",
    "heldout_metrics",
    "interventions_path",
    "load_checkpoint",
    "save_checkpoint",
)


def __getattr__(name):
    if name in _TRAIN_NAMES:
        import importlib

        return getattr(importlib.import_module("lablib.onion.train"), name)
    raise AttributeError(f"module 'lablib.onion' has no attribute {name!r}")
