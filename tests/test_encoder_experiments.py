"""The encoder chapter's claims, with bars set from measurements (measured values in the
docstrings; ``python -m lablib.encoder`` prints them all): sentiment is linearly decodable from
all-MiniLM-L6-v2, also for phrasings the probe never saw; LEACE drives a fresh probe to chance
while topic survives (and, honestly, does not carry over to new phrasings); adding the
class-mean difference steers a negative sentence to positive where a random direction of the
same length does not; days of the week lie on a circle in calendar order."""

import pytest
import torch

from lablib.encoder.circular import calendar_points, circle_stats, cyclic_adjacency
from lablib.encoder.experiments import erasure_layers, load_data, probe_layers, splits, steering


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return load_data()  # about 4 s: 768 sentences, one forward pass each, cached


def test_splits_are_disjoint_and_hold_out_phrasings(data):
    (tr, te), = splits(data, "random")
    assert len(tr) == 576 and len(te) == 192 and not set(tr.tolist()) & set(te.tolist())
    for tr, te in splits(data, "phrasings"):
        assert len(tr) == 512 and len(te) == 256
        assert not set(data.pair[tr].tolist()) & set(data.pair[te].tolist())


def test_sentiment_probe_accuracy_per_layer(data):
    """Held-out accuracy. Random split: logistic 1.000 at every layer; topic 1.000. Held-out
    phrasings (3 folds): logistic 0.943-0.986 (best: layer 3), difference of means 0.777 at the
    embedding layer rising to 0.947 at layer 6: deeper layers make the class-mean direction
    itself the sentiment read-out."""
    rand = probe_layers(data, "random")
    assert max(r["sentiment"] for r in rand) >= 0.97
    assert min(r["topic"] for r in rand) >= 0.97
    held = probe_layers(data, "phrasings")
    assert max(r["sentiment"] for r in held) >= 0.95
    assert min(r["sentiment"] for r in held) >= 0.85
    assert held[6]["sentiment_meandiff"] >= 0.88
    assert held[6]["sentiment_meandiff"] - held[0]["sentiment_meandiff"] >= 0.08


def test_leace_erases_sentiment_and_keeps_topic(data):
    """Random split, eraser fitted on the training side (with shrinkage). Fresh probe trained on
    erased training data: sentiment 0.500 at every layer (it collapses to a constant), topic
    1.000 (drop 0.000). Probe trained and tested within the erased test side (2-fold): 0.536 to
    0.630, against 0.979 to 1.000 before erasure."""
    rows = erasure_layers(data, "random")
    for r in rows:
        assert abs(r["sentiment_after"] - 0.5) <= 0.03, r
        assert r["sentiment_before"] >= 0.97, r
        assert r["topic_after"] >= r["topic_before"] - 0.02, r
        assert r["sentiment_after_2fold"] <= 0.70, r
        assert r["sentiment_before_2fold"] >= 0.95, r


def test_leace_does_not_carry_over_to_new_phrasings(data):
    """The limit of the guarantee: LEACE equalises the class means of the data it was fitted on.
    Fitted on 8 phrasings, it leaves sentiment decodable among sentences with the 4 others (a
    probe trained and tested on them after erasure: 0.993 at layer 3, 0.988-1.000 over layers),
    even though the standard protocol reads 0.500."""
    (r,) = erasure_layers(data, "phrasings", layers=[3])
    assert abs(r["sentiment_after"] - 0.5) <= 0.03
    assert r["sentiment_after_2fold"] >= 0.9


def test_steering_the_pooled_state(data):
    """Negative test sentences (96), layer 6, delta = mu_pos - mu_neg. Share called positive by
    the probe / 10-NN: alpha 0: 0.000 / 0.115; 0.5: 0.573 / 0.500; 1: 0.969 / 0.760;
    2: 1.000 / 0.938; topic stays 1.000. A random direction of the same length: at most
    0.000 / 0.135."""
    rows = {r["alpha"]: r for r in steering(data, 6, alphas=(0.0, 1.0, 2.0))}
    assert rows[0.0]["positive_probe"] <= 0.05 and rows[0.0]["positive_knn"] <= 0.25
    assert rows[1.0]["positive_probe"] >= 0.9
    assert rows[2.0]["positive_probe"] >= 0.97 and rows[2.0]["positive_knn"] >= 0.85
    for r in rows.values():
        assert r["topic"] >= 0.97
        assert r["control_positive_probe"] <= 0.05 and r["control_positive_knn"] <= 0.3


def test_steering_inside_the_network(data):
    """delta of layer 3 added to every token there, blocks 4-6 run, read out at layer 6. Probe /
    10-NN: alpha 1: 0.177 / 0.417; 2: 0.979 / 0.792; 4: 1.000 / 0.938 (topic 1.000);
    the random control at alpha 4: 0.000 / 0.125. About 2 s."""
    rows = {r["alpha"]: r for r in steering(data, 3, alphas=(2.0, 4.0), inside=True)}
    assert rows[2.0]["positive_probe"] >= 0.9
    assert rows[4.0]["positive_probe"] >= 0.97 and rows[4.0]["positive_knn"] >= 0.85
    assert rows[4.0]["topic"] >= 0.97
    assert rows[4.0]["control_positive_probe"] <= 0.05 and rows[4.0]["control_positive_knn"] <= 0.3


def test_cyclic_adjacency_counts():
    angles = torch.linspace(0, 6, 7)
    assert cyclic_adjacency(angles) == 7
    assert cyclic_adjacency(-angles) == 7  # either direction around the circle
    assert cyclic_adjacency(angles[[0, 2, 4, 6, 1, 3, 5]]) == 0


def test_days_of_the_week_lie_on_a_circle():
    """Top-2 PCA of the template-mean embeddings, layer 6: angular order = calendar order (7/7,
    permutation p = 0.0035 from 2000 random relabellings; exactly, 14 of the 5040 orders of 7
    names are perfect, p = 0.0028);
    it is a closed loop, not a horseshoe: Sunday-Monday is 1.12 times the median step between
    consecutive days, and pairwise distances follow the cyclic step (r = 0.84) more than the
    linear one (0.49). (Every layer 0-6 scores 7/7.)"""
    _, points = calendar_points("days", 6)
    s = circle_stats(points)
    assert s["adjacent"] == 7 and s["p_value"] < 0.01
    assert s["wrap_ratio"] < 1.5
    assert s["r_cyclic"] > s["r_linear"] + 0.2


def test_months_form_a_rougher_circle():
    """Months, layer 1: 12/12 (p 0.0005, the floor with 2000 relabellings), wrap ratio 0.92, r cyclic 0.47 vs linear 0.18. Not at
    every layer: 5/12 at layers 3 and 4 (p 0.05), 7/12 at layer 6."""
    _, points = calendar_points("months", 1)
    s = circle_stats(points)
    assert s["adjacent"] >= 10 and s["p_value"] < 0.01
    assert s["wrap_ratio"] < 1.5
    assert s["r_cyclic"] > s["r_linear"] + 0.15
