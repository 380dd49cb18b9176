"""The causal inner product of Park, Choe & Veitch (2024), "The Linear Representation Hypothesis
and the Geometry of Large Language Models", on a real vocabulary: the word-embedding matrix of
all-MiniLM-L6-v2 (30522 WordPiece tokens in 384 dimensions), which BERT ties to its unembedding.

The generic machinery (``causal_metric``, ``whitening``, ``causal_cosine``, ``pair_cosines``) lives
in ``lablib.probes.geometry``, where it was first run on the Othello-GPT; there the vocabulary (32
moves) is smaller than the model width (128), ``Cov(gamma)`` is singular and the "causal" geometry
degenerates to a simplex. Here the vocabulary is 80 times the width, ``Cov(gamma)`` is full rank
(condition number about 190) and the question can be asked for real.

**Which vectors are gamma(y), and a caveat that matters.** BERT predicts a masked token with
``logits = LayerNorm(GELU(dense(h))) @ E^T + b``, where ``E`` is the input word-embedding matrix
(the output layer is *tied* to it) and ``b`` a per-token bias; in a BERT trained with that loss,
``E`` = ``model.embeddings.word_embeddings.weight`` (30522, 384) is the unembedding ``gamma(y)``,
and that is what is used here. For all-MiniLM-L6-v2 this is a stand-in, for two reasons.
(1) MiniLM (Wang et al. 2020; the checkpoint ``nreimers/MiniLM-L6-H384-uncased`` named in the
shipped ``config.json``) was not pretrained with a masked-LM loss: the student learns by
imitating the teacher's last-layer self-attention distributions and value relations, so ``E`` was
only ever trained as an *input* embedding, never scored against an output state. (2) The
sentence-transformers fine-tune ships no MLM head (``dense``, its LayerNorm and ``b`` are absent)
and trained ``E`` further for sentence similarity. The paper's theorem is about the unembedding of
a next-token model; here its recipe (whiten by the vocabulary covariance, compare counterfactual
directions) is applied to a token-embedding matrix, and what comes out is an empirical question.

**The metric.** ``M = Cov(gamma)^{-1}``, with the covariance taken uniformly over the vocabulary
and vectors centred, as in the paper. By default the 994 ``[unused*]`` slots and the 5 special
tokens (``[PAD] [UNK] [CLS] [SEP] [MASK]``) are left out (``vocab="trained"``): the unused slots
never occur in text, so they carry what is left of the initialisation, not the language (their
norms average 0.46 against 1.09 for the rest), and the special tokens are not words.
``vocab="all"`` keeps everything, ``vocab="words"`` also drops the 5828 ``##`` word pieces. Which
one is used barely matters: no concept cosine moves by more than 0.001 ("all") or 0.019
("words") (``vocab_sensitivity``).

**Concepts.** A concept ``W`` (say male => female) is given by counterfactual word pairs
``(y0, y1)`` that differ only in ``W`` (king/queen, man/woman, ...), read from
``data/concept_pairs.json`` (12 concepts, 17 to 97 pairs each, every word one token of the
uncased vocabulary). Its unembedding direction is the mean of ``gamma(y1) - gamma(y0)`` over the
pairs, as in the paper; since the whitening ``A = M^{1/2}`` is linear, the whitened direction is
``A`` times this one, so the causal cosine of two directions is ``causal_cosine(u, v, M)``.

**The claim tested.** Two concepts are *causally separable* when each can be changed with the
other held fixed, so that all four combinations exist (king, kings, queen, queens). The paper
proves that under the causal inner product the unembedding directions of causally separable
concepts are orthogonal, and that the Euclidean inner product gives no such guarantee.
``SEPARABLE`` lists the pairs of concepts treated as separable here, ``NOT_SEPARABLE`` pairs that
are two values of one variable (walked vs walks vs walking: a verb form is one of them, not
several at once; bigger vs biggest), and every other pair (e.g. male => female vs verb => past:
a verb has no gender, so the four combinations do not exist) is left unlabelled.

**What is found on this model** (``geometry_report``, ``python -m lablib.encoder.geometry``,
about 15 s): the prediction holds, but the Euclidean geometry was nearly as good. Mean |cos| over
the 11 separable concept pairs is 0.076 Euclidean and 0.059 causal (a factor 1.3; in 97% of
bootstrap resamples of the word pairs the causal value is the smaller), against a floor of 0.053
(Euclidean) and 0.041 (causal) for two directions made of random token pairs. The 8 non-separable
pairs keep large cosines and even gain under the causal product (0.32 -> 0.38), so the contrast
non-separable / separable sharpens from 4.2 to 6.4. The 47 unlabelled pairs drop from 0.075 to
0.046, the random floor. The clearest single change: noun => plural vs verb => 3rd person (both
add an "s") goes from 0.36 to 0.11. Each concept's direction is reproducible (split-half cosine
0.54 to 0.90 causal, 0.71 to 0.94 Euclidean, except adult => young: 0.30 / 0.39, 17 pairs of mixed
animals and people), and separates its own pairs from random token pairs (leave-one-out
projection AUC 0.87 to 1.00).
"""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path

import torch

from lablib.encoder.model import load_encoder
from lablib.memo import session_memo
from lablib.probes.geometry import causal_cosine, causal_metric, pair_cosines, whitening

__all__ = [
    "CONCEPT_PAIRS_PATH",
    "NOT_SEPARABLE",
    "SEPARABLE",
    "VOCABS",
    "causal_metric_for",
    "concept_differences",
    "concept_direction",
    "concept_directions",
    "concept_names",
    "cosine_matrix",
    "format_geometry_report",
    "geometry_report",
    "load_concept_pairs",
    "pair_group_summary",
    "projection_test",
    "random_direction_baseline",
    "split_half_consistency",
    "token_ids",
    "unembedding",
    "vocab_mask",
    "vocab_sensitivity",
    "whitened_unembedding",
]

CONCEPT_PAIRS_PATH = Path(__file__).with_name("data") / "concept_pairs.json"
VOCABS = ("all", "trained", "words")
_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Pairs of concepts with all four combinations in the language (the 2 x 2 below each).
SEPARABLE: tuple[tuple[str, str], ...] = (
    ("male_female", "noun_plural"),  # king kings queen queens
    ("male_female", "adult_young"),  # man boy woman girl; stallion colt mare filly
    ("male_female", "english_french"),  # king roi queen reine
    ("adult_young", "noun_plural"),  # dog dogs puppy puppies
    ("adult_young", "english_french"),  # cat chat kitten chaton
    ("noun_plural", "english_french"),  # house houses maison maisons
    ("english_french", "verb_3sg"),  # walk walks marcher marche
    ("english_french", "verb_ing"),  # walk walking marcher marchant
    ("english_french", "verb_past"),  # walk walked marcher marcha
    ("english_french", "adj_comparative"),  # big bigger grand "plus grand"
    ("english_french", "adj_superlative"),  # big biggest grand "le plus grand"
)
# Pairs of concepts that are two values of one variable: not causally separable.
NOT_SEPARABLE: tuple[tuple[str, str], ...] = (
    ("verb_3sg", "verb_ing"),  # the form of a verb: walks / walking / walked / walker
    ("verb_3sg", "verb_past"),
    ("verb_ing", "verb_past"),
    ("verb_3sg", "verb_agent"),
    ("verb_ing", "verb_agent"),
    ("verb_past", "verb_agent"),
    ("adj_comparative", "adj_superlative"),  # the degree of an adjective
    ("country_capital", "country_nationality"),  # what is named about a country
)


# ----------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=4)
def _read_pairs(path: str) -> dict:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("concepts"), dict):
        raise ValueError(f"{path}: expected an object with a 'concepts' object")
    out = {}
    for name, entry in data["concepts"].items():
        pairs = entry.get("pairs") if isinstance(entry, dict) else None
        ok = bool(pairs) and all(isinstance(p, list) and len(p) == 2 and all(isinstance(w, str) for w in p) for p in pairs)
        if not ok:
            raise ValueError(f"{path}: concept {name!r} needs a non-empty list of [base, target] word pairs")
        out[name] = tuple((a, b) for a, b in pairs)
    return out


def load_concept_pairs(path: str | Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """``{concept: [(base, target), ...]}`` from ``data/concept_pairs.json`` (or ``path``), in file
    order. Raises ``ValueError`` for a malformed file."""
    pairs = _read_pairs(str(path or CONCEPT_PAIRS_PATH))
    return {k: list(v) for k, v in pairs.items()}


def concept_names() -> list[str]:
    """The concepts in ``data/concept_pairs.json``, in file order."""
    return list(load_concept_pairs())


def _pairs_for(concept: str, pairs=None) -> list[tuple[str, str]]:
    if pairs is not None:
        pairs = list(pairs)
        if not pairs:
            raise ValueError(f"no word pairs given for {concept!r}")
        return pairs
    table = load_concept_pairs()
    if concept not in table:
        raise ValueError(f"unknown concept {concept!r}; known: {', '.join(table)}")
    return table[concept]


def token_ids(words) -> torch.Tensor:
    """(len(words),) int64 vocabulary ids of words that are each exactly one WordPiece token of
    the uncased tokenizer (it lower-cases and strips accents: "Père" -> "pere").
    Raises ``ValueError`` listing every word that is split into several pieces or unknown."""
    if isinstance(words, str):
        raise ValueError("words must be a sequence of strings, not a single string")
    tokenizer, _ = load_encoder()
    ids, bad = [], []
    for w in words:
        pieces = tokenizer.tokenize(w) if isinstance(w, str) else []
        if len(pieces) != 1 or pieces[0] == tokenizer.unk_token:
            bad.append(f"{w!r} -> {pieces}")
        else:
            ids.append(tokenizer.convert_tokens_to_ids(pieces[0]))
    if bad:
        raise ValueError("not single tokens of the vocabulary: " + ", ".join(bad))
    return torch.tensor(ids, dtype=torch.long)


@functools.lru_cache(maxsize=1)
def _embedding_matrix() -> torch.Tensor:
    _, model = load_encoder()
    return model.embeddings.word_embeddings.weight.detach().double().clone()


def unembedding() -> torch.Tensor:
    """(30522, 384) float64: ``gamma(y)`` for every token id ``y``, the word-embedding matrix of
    all-MiniLM-L6-v2 (tied to the unembedding in BERT; see the module docstring for why it is
    only a stand-in for one here). Cached; a copy is not
    made, so do not modify it in place."""
    return _embedding_matrix()


def vocab_mask(vocab: str = "trained") -> torch.Tensor:
    """(30522,) bool: the tokens over which ``Cov(gamma)`` is taken.

    ``"all"``: every token; ``"trained"``: all but the 994 ``[unused*]`` slots and the 5 special
    tokens (29523); ``"words"``: also without the 5828 ``##`` continuation pieces (23695)."""
    if vocab not in VOCABS:
        raise ValueError(f"vocab must be one of {VOCABS}; got {vocab!r}")
    tokenizer, _ = load_encoder()
    toks = tokenizer.convert_ids_to_tokens(list(range(unembedding().shape[0])))
    keep = torch.ones(len(toks), dtype=torch.bool)
    if vocab in ("trained", "words"):
        keep &= torch.tensor([not (t.startswith("[unused") or t in _SPECIAL) for t in toks])
    if vocab == "words":
        keep &= torch.tensor([not t.startswith("##") for t in toks])
    return keep


@functools.lru_cache(maxsize=len(VOCABS))
def _metric(vocab: str) -> torch.Tensor:
    return causal_metric(unembedding()[vocab_mask(vocab)])


def causal_metric_for(vocab: str = "trained") -> torch.Tensor:
    """(384, 384) float64 ``M = Cov(gamma)^{-1}``, the covariance over the tokens of
    ``vocab_mask(vocab)`` (uniform weights, centred). Full rank: no ridge is needed. Cached."""
    if vocab not in VOCABS:
        raise ValueError(f"vocab must be one of {VOCABS}; got {vocab!r}")
    return _metric(vocab)


def whitened_unembedding(vocab: str = "trained") -> torch.Tensor:
    """(n, 384) ``g(y) = A (gamma(y) - mean)`` with ``A = M^{1/2}``, for the ``n`` tokens of
    ``vocab_mask(vocab)``: identity covariance, so Euclidean geometry of ``g`` is the causal
    geometry of ``gamma``."""
    gamma = unembedding()[vocab_mask(vocab)]
    return (gamma - gamma.mean(0)) @ whitening(causal_metric_for(vocab))  # A is symmetric


# ----------------------------------------------------------------------------- directions


def concept_differences(concept: str, pairs=None) -> torch.Tensor:
    """(m, 384) float64 ``gamma(target) - gamma(base)`` for the m word pairs of ``concept`` (or
    for ``pairs``, a list of (base, target), when given). Raises ``ValueError`` for an unknown
    concept or a word that is not a single token."""
    pairs = _pairs_for(concept, pairs)
    gamma = unembedding()
    base = token_ids([a for a, _ in pairs])
    target = token_ids([b for _, b in pairs])
    return gamma[target] - gamma[base]


def concept_direction(concept: str, pairs=None) -> torch.Tensor:
    """(384,) the mean of ``concept_differences`` (not normalised: cosines do not need it)."""
    return concept_differences(concept, pairs).mean(0)


def concept_directions(concepts=None) -> tuple[list[str], torch.Tensor]:
    """``(names, D)``: D is (k, 384), one mean-difference direction per concept (all concepts of
    the JSON file when ``concepts`` is None)."""
    names = concept_names() if concepts is None else list(concepts)
    if not names:
        raise ValueError("no concepts given")
    return names, torch.stack([concept_direction(c) for c in names])


def cosine_matrix(concepts=None, metric: torch.Tensor | None = None) -> tuple[list[str], torch.Tensor]:
    """``(names, C)``: C is (k, k) float64, the cosines between concept directions under
    ``metric`` (Euclidean when None; pass ``causal_metric_for()`` for the causal one)."""
    names, D = concept_directions(concepts)
    return names, pair_cosines(D, D, metric)


def split_half_consistency(
    concept: str, metric: torch.Tensor | None = None, n_splits: int = 50, seed: int = 0, pairs=None
) -> float:
    """Mean over ``n_splits`` random splits of the pairs into two disjoint halves of the cosine
    (under ``metric``; Euclidean when None) between the directions estimated from each half. Near 1:
    the pairs agree on one direction; near 0: no shared direction. ``pairs`` (a list of (base,
    target)) replaces the concept's pairs, e.g. for a random-pair control."""
    diffs = concept_differences(concept, pairs)
    m = diffs.shape[0]
    if m < 4:
        raise ValueError(f"{concept!r} has {m} pairs; a split-half check needs at least 4")
    g = torch.Generator().manual_seed(seed)
    cos = []
    for _ in range(n_splits):
        p = torch.randperm(m, generator=g)
        cos.append(causal_cosine(diffs[p[: m // 2]].mean(0), diffs[p[m // 2 :]].mean(0), metric))
    return torch.stack(cos).mean().item()


def projection_test(
    concept: str, metric: torch.Tensor | None = None, n_random: int = 5000, seed: int = 0, pairs=None
) -> dict:
    """The paper's "counterfactual pairs vs random pairs" check of one concept direction.

    Each pair's difference is projected (inner product under ``metric``) on the unit direction
    estimated from the *other* pairs (leave one out); ``n_random`` differences of two random
    tokens (of the ``"trained"`` vocabulary) are projected on the full direction. Returns
    ``{"pairs": (m,) projections, "random": (n_random,) projections, "auc": P(pair > random),
    "frac_above_random_q99": share of pairs above the random 99th percentile}``. ``pairs``
    replaces the concept's pairs, as in ``split_half_consistency``."""
    diffs = concept_differences(concept, pairs)
    m, d = diffs.shape
    if m < 3:
        raise ValueError(f"{concept!r} has {m} pairs; the leave-one-out test needs at least 3")
    M = torch.eye(d, dtype=torch.float64) if metric is None else metric.double()

    def unit(v):
        return v / (v @ M @ v).sqrt()

    total = diffs.sum(0)
    proj = torch.stack([diffs[i] @ M @ unit((total - diffs[i]) / (m - 1)) for i in range(m)])
    g = torch.Generator().manual_seed(seed)
    ids = torch.nonzero(vocab_mask("trained")).squeeze(1)
    a = ids[torch.randint(len(ids), (n_random,), generator=g)]
    b = ids[torch.randint(len(ids), (n_random,), generator=g)]
    gamma = unembedding()
    rnd = (gamma[b] - gamma[a]) @ M @ unit(total / m)
    auc = (proj[:, None] > rnd[None, :]).double().mean().item()
    q99 = torch.quantile(rnd, 0.99)
    return {"pairs": proj, "random": rnd, "auc": auc, "frac_above_random_q99": (proj > q99).double().mean().item()}


def random_direction_baseline(metric: torch.Tensor | None = None, n_pairs: int = 40, n_draws: int = 500, seed: int = 0) -> float:
    """Mean |cos| (under ``metric``) between two "concepts" made of ``n_pairs`` random token pairs
    each (mean of random differences, tokens of the ``"trained"`` vocabulary): the level a
    concept-pair cosine has to be compared with. In 384 dimensions two isotropic random directions
    give about sqrt(2 / (pi * 384)) = 0.041; the causal metric makes random token differences
    isotropic, the Euclidean one does not (they lean on the top principal directions of gamma)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.nonzero(vocab_mask("trained")).squeeze(1)
    gamma = unembedding()

    def draw():
        a = ids[torch.randint(len(ids), (n_draws, n_pairs), generator=g)]
        b = ids[torch.randint(len(ids), (n_draws, n_pairs), generator=g)]
        return (gamma[b] - gamma[a]).mean(1)  # (n_draws, 384)

    return causal_cosine(draw(), draw(), metric).abs().mean().item()


# ----------------------------------------------------------------------------- summaries


def pair_group_summary(names: list[str], C: torch.Tensor) -> dict:
    """From a (k, k) cosine matrix over ``names``: ``{"separable", "not_separable", "other"}`` ->
    mean |cos| over the pairs of concepts in ``SEPARABLE``, ``NOT_SEPARABLE`` and all remaining
    off-diagonal pairs, plus ``"n_*"`` counts. Only pairs whose two concepts are in ``names``
    count."""
    if C.shape != (len(names), len(names)):
        raise ValueError(f"C must be ({len(names)}, {len(names)}); got {tuple(C.shape)}")
    idx = {n: i for i, n in enumerate(names)}
    sep = {frozenset(p) for p in SEPARABLE}
    non = {frozenset(p) for p in NOT_SEPARABLE}
    groups = {"separable": [], "not_separable": [], "other": []}
    for a, b in itertools.combinations(names, 2):
        key = frozenset((a, b))
        group = "separable" if key in sep else "not_separable" if key in non else "other"
        groups[group].append(C[idx[a], idx[b]].abs().item())
    out = {}
    for k, v in groups.items():
        out[k] = sum(v) / len(v) if v else float("nan")
        out[f"n_{k}"] = len(v)
    return out


def vocab_sensitivity() -> dict:
    """Largest change of any causal concept cosine when ``Cov(gamma)`` is taken over ``"all"`` or
    ``"words"`` instead of ``"trained"``: ``{"all": float, "words": float}``."""
    _, ref = cosine_matrix(metric=causal_metric_for("trained"))
    return {v: (cosine_matrix(metric=causal_metric_for(v))[1] - ref).abs().max().item() for v in ("all", "words")}


@session_memo
def geometry_report(vocab: str = "trained", n_splits: int = 50, seed: int = 0) -> dict:
    """Every number of the experiment, Euclidean (``M = I``) against causal (``M = Cov^{-1}``).

    Returns ``{"concepts": names, "n_pairs": {concept: m}, "vocab": vocab, "n_vocab": n,
    "condition_number": cond(Cov), "euclidean": part, "causal": part}`` with each ``part`` =
    ``{"cosines": (k, k) tensor, "split_half": {concept: float}, "groups": pair_group_summary,
    "random_baseline": random_direction_baseline, "projection_auc": {concept: float}}``."""
    names = concept_names()
    M = causal_metric_for(vocab)
    ev = torch.linalg.eigvalsh(M)
    out = {
        "concepts": names,
        "n_pairs": {c: len(p) for c, p in load_concept_pairs().items()},
        "vocab": vocab,
        "n_vocab": int(vocab_mask(vocab).sum()),
        "condition_number": (ev.max() / ev.min()).item(),
    }
    for label, metric in (("euclidean", None), ("causal", M)):
        _, C = cosine_matrix(names, metric)
        out[label] = {
            "cosines": C,
            "split_half": {c: split_half_consistency(c, metric, n_splits, seed) for c in names},
            "groups": pair_group_summary(names, C),
            "random_baseline": random_direction_baseline(metric, seed=seed),
            "projection_auc": {c: projection_test(c, metric, seed=seed)["auc"] for c in names},
        }
    return out


def format_geometry_report(report: dict) -> str:
    """The report as text: both cosine matrices, the group means, the per-concept checks."""
    names = report["concepts"]
    short = [n[:8] for n in names]
    lines = [f"Cov(gamma) over {report['n_vocab']} tokens ({report['vocab']}), condition number {report['condition_number']:.0f}"]
    for label in ("euclidean", "causal"):
        part = report[label]
        lines.append(f"\n{label} cosines between concept directions")
        lines.append(" " * 20 + " ".join(f"{s:>8s}" for s in short))
        for i, n in enumerate(names):
            lines.append(f"{n:>20s}" + " ".join(f"{part['cosines'][i, j]:+8.2f}" for j in range(len(names))))
        g = part["groups"]
        lines.append(
            f"mean |cos|: separable {g['separable']:.3f} ({g['n_separable']} pairs), not separable "
            f"{g['not_separable']:.3f} ({g['n_not_separable']}), other {g['other']:.3f} ({g['n_other']}); "
            f"random-token baseline {part['random_baseline']:.3f}"
        )
    lines.append(f"\n{'concept':>20s} {'pairs':>5s} {'half E':>7s} {'half C':>7s} {'auc E':>6s} {'auc C':>6s}")
    for n in names:
        e, c = report["euclidean"], report["causal"]
        lines.append(
            f"{n:>20s} {report['n_pairs'][n]:5d} {e['split_half'][n]:7.2f} {c['split_half'][n]:7.2f} "
            f"{e['projection_auc'][n]:6.3f} {c['projection_auc'][n]:6.3f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import time

    torch.set_num_threads(1)
    t0 = time.time()
    print(format_geometry_report(geometry_report()))
    print("vocab sensitivity (max |change| of a causal cosine):", vocab_sensitivity())
    print(f"{time.time() - t0:.1f} s")
