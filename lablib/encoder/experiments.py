"""The experiments of the encoder chapter, as functions that return plain numbers.

All of them run on the shipped sentence set (``load_sentences``) and the mean-pooled hidden
states of all-MiniLM-L6-v2 (``embed``), layer by layer (0 = embedding output, 6 = last block).

* ``splits``: a random split stratified by (sentiment, topic, predicate pair), 576 train / 192
  test, in which every phrasing occurs on both sides; and three "held-out phrasing" folds, each
  testing on the sentences of 4 of the 12 predicate pairs that its training side never saw.
* ``probe_layers``: held-out accuracy per layer of the difference-of-means probe and of the
  logistic probe for sentiment, and of the logistic probe for topic.
* ``erasure_layers``: LEACE fitted on the training side; a fresh probe on the erased data for
  sentiment and for topic; and a stricter check, a probe trained *and* tested on erased held-out
  sentences (2-fold), which asks whether the eraser removed sentiment from sentences it was not
  fitted on.
* ``steering``: add ``alpha * (mu_pos - mu_neg)`` to negative held-out sentences, either to the
  pooled embedding of a layer or inside the network (every token, at a layer, then the remaining
  blocks), and count how many a probe and a nearest-neighbour vote then call positive, with a
  random direction of the same length as a control.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lablib.encoder.leace import LeaceEraser
from lablib.encoder.model import N_LAYERS, embed, steered_embed
from lablib.encoder.probes import LogisticProbe, MeanDifferenceProbe, accuracy, stratified_split
from lablib.encoder.sentences import SentenceSet, load_sentences
from lablib.memo import session_memo

__all__ = [
    "Data",
    "erasure_layers",
    "knn_predict",
    "load_data",
    "probe_layers",
    "splits",
    "steering",
    "two_fold_accuracy",
]

PHRASING_FOLDS = ((0, 3, 6, 9), (1, 4, 7, 10), (2, 5, 8, 11))


@dataclass(frozen=True)
class Data:
    """hidden: (7, n, 384) float64 mean-pooled states; sentiment, topic, pair: (n,) int64."""

    sentences: SentenceSet
    hidden: torch.Tensor
    sentiment: torch.Tensor
    topic: torch.Tensor
    pair: torch.Tensor


@session_memo
def load_data(sentences: SentenceSet | None = None) -> Data:
    """Embed the sentence set (about 4 s on one thread the first time; cached afterwards)."""
    s = load_sentences() if sentences is None else sentences
    return Data(
        s,
        embed(s.texts).double(),
        torch.tensor(s.sentiment),
        torch.tensor(s.topic),
        torch.tensor(s.pair),
    )


def splits(data: Data, kind: str = "random", seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(train_idx, test_idx), ...]: one random stratified split (``kind="random"``, a quarter of
    every (sentiment, topic, pair) group to test) or the three held-out-phrasing folds
    (``kind="phrasings"``)."""
    if kind == "random":
        return [stratified_split(data.sentiment, data.topic, data.pair, test_fraction=0.25, seed=seed)]
    if kind == "phrasings":
        out = []
        for fold in PHRASING_FOLDS:
            test = torch.isin(data.pair, torch.tensor(fold))
            out.append((torch.nonzero(~test).flatten(), torch.nonzero(test).flatten()))
        return out
    raise ValueError(f"kind must be 'random' or 'phrasings'; got {kind!r}")


def two_fold_accuracy(x: torch.Tensor, y: torch.Tensor, strata: torch.Tensor, seed: int = 0) -> float:
    """Train a logistic probe on one half of (x, y), test on the other, and the reverse; the mean."""
    a, b = stratified_split(y, strata, test_fraction=0.5, seed=seed)
    acc_ab = LogisticProbe.fit(x[a], y[a]).accuracy(x[b], y[b])
    acc_ba = LogisticProbe.fit(x[b], y[b]).accuracy(x[a], y[a])
    return (acc_ab + acc_ba) / 2


def probe_layers(data: Data, kind: str = "random") -> list[dict]:
    """Per layer (0..6), mean over the folds of ``kind``: held-out accuracy of the sentiment
    difference-of-means probe (``sentiment_meandiff``) and logistic probe (``sentiment``), and of
    the topic logistic probe (``topic``, 4 classes, chance 0.25)."""
    rows = []
    folds = splits(data, kind)
    for layer in range(N_LAYERS + 1):
        x = data.hidden[layer]
        acc = {"sentiment_meandiff": 0.0, "sentiment": 0.0, "topic": 0.0}
        for tr, te in folds:
            md = MeanDifferenceProbe.fit(x[tr], data.sentiment[tr])
            acc["sentiment_meandiff"] += accuracy(md.predict(x[te]), data.sentiment[te]) / len(folds)
            acc["sentiment"] += LogisticProbe.fit(x[tr], data.sentiment[tr]).accuracy(x[te], data.sentiment[te]) / len(folds)
            acc["topic"] += LogisticProbe.fit(x[tr], data.topic[tr]).accuracy(x[te], data.topic[te]) / len(folds)
        rows.append({"layer": layer, **acc})
    return rows


@session_memo
def erasure_layers(data: Data, kind: str = "random", *, shrinkage: bool = True, layers=None) -> list[dict]:
    """Per layer, mean over the folds of ``kind``, with a LEACE eraser for sentiment fitted on the
    training side of each fold:

    * ``sentiment_before`` / ``topic_before``: logistic probes on the raw states (train -> test);
    * ``sentiment_after`` / ``topic_after``: *fresh* probes trained on the erased training side,
      tested on the erased test side (the standard protocol);
    * ``sentiment_after_2fold`` and ``sentiment_before_2fold``: probes trained and tested within
      the (erased / raw) test side, 2-fold, so that the eraser never saw the probe's data.
    """
    rows = []
    folds = splits(data, kind)
    layers = range(N_LAYERS + 1) if layers is None else layers
    for layer in layers:
        x = data.hidden[layer]
        acc = dict.fromkeys(
            ("sentiment_before", "sentiment_after", "topic_before", "topic_after",
             "sentiment_before_2fold", "sentiment_after_2fold"), 0.0)
        for tr, te in folds:
            ys, yt = data.sentiment, data.topic
            xe = LeaceEraser.fit(x[tr], ys[tr], shrinkage=shrinkage)(x)
            w = 1 / len(folds)
            acc["sentiment_before"] += w * LogisticProbe.fit(x[tr], ys[tr]).accuracy(x[te], ys[te])
            acc["topic_before"] += w * LogisticProbe.fit(x[tr], yt[tr]).accuracy(x[te], yt[te])
            acc["sentiment_after"] += w * LogisticProbe.fit(xe[tr], ys[tr]).accuracy(xe[te], ys[te])
            acc["topic_after"] += w * LogisticProbe.fit(xe[tr], yt[tr]).accuracy(xe[te], yt[te])
            acc["sentiment_before_2fold"] += w * two_fold_accuracy(x[te], ys[te], yt[te])
            acc["sentiment_after_2fold"] += w * two_fold_accuracy(xe[te], ys[te], yt[te])
        rows.append({"layer": layer, **acc})
    return rows


def knn_predict(train_x: torch.Tensor, train_y: torch.Tensor, x: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Majority label among the k training points of highest cosine similarity (ties -> lowest label)."""
    a = torch.nn.functional.normalize(train_x.double(), dim=1)
    b = torch.nn.functional.normalize(x.double(), dim=1)
    nearest = (b @ a.T).topk(k, dim=1).indices  # (m, k)
    votes = torch.nn.functional.one_hot(train_y[nearest], int(train_y.max()) + 1).sum(1)
    return votes.argmax(1)


@session_memo
def steering(
    data: Data,
    layer: int,
    alphas=(0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
    *,
    inside: bool = False,
    seed: int = 0,
) -> list[dict]:
    """Steer the negative test sentences of the random split towards positive.

    The direction is delta = mu_pos - mu_neg of the pooled states at ``layer`` on the training
    side; ``alpha = 1`` moves a sentence by the whole gap between the class means. With
    ``inside=False`` the pooled state at ``layer`` itself is moved and read out there; with
    ``inside=True`` delta is added to every token's hidden state at ``layer`` and the pooled state
    of the last layer is read out after the remaining blocks have run. Read-outs: the logistic
    probe and the 10-nearest-neighbour vote (cosine, training sentences) of the read-out layer,
    and the topic probe there. The control adds a random direction of the same length.
    Returns one dict per alpha: ``positive_probe``, ``positive_knn``, ``topic``, and
    ``control_positive_probe``, ``control_positive_knn``, ``control_topic``.
    """
    tr, te = splits(data, "random")[0]
    ys, yt = data.sentiment, data.topic
    neg = te[ys[te] == 0]
    delta = data.hidden[layer][tr][ys[tr] == 1].mean(0) - data.hidden[layer][tr][ys[tr] == 0].mean(0)
    gen = torch.Generator().manual_seed(seed)
    control = torch.randn(delta.shape, generator=gen, dtype=torch.float64)
    control *= delta.norm() / control.norm()
    out_layer = N_LAYERS if inside else layer
    xo = data.hidden[out_layer]
    sent_probe = LogisticProbe.fit(xo[tr], ys[tr])
    topic_probe = LogisticProbe.fit(xo[tr], yt[tr])
    texts = [data.sentences.texts[i] for i in neg.tolist()]

    def read(x):
        return (
            sent_probe.predict(x).double().mean().item(),
            knn_predict(xo[tr], ys[tr], x).double().mean().item(),
            topic_probe.accuracy(x, yt[neg]),
        )

    rows = []
    for alpha in alphas:
        row = {"alpha": float(alpha)}
        for name, v in (("", delta), ("control_", control)):
            if inside:
                x = steered_embed(texts, layer, (alpha * v).float()).double()
            else:
                x = data.hidden[layer][neg] + alpha * v
            p, k, t = read(x)
            row.update({f"{name}positive_probe": p, f"{name}positive_knn": k, f"{name}topic": t})
        rows.append(row)
    return rows
