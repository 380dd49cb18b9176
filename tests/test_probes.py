"""lablib.probes: linear / MLP probes, the mine/theirs vs black/white finding (Nanda et al. 2023)
with the random-init control, interventions along probe directions, and the causal inner product
(Park et al. 2024). Bars are set from measurements (in the docstrings) with margin; one thread."""

import numpy as np
import pytest
import torch

from lablib.probes import (
    LinearProbe,
    candidate_edits,
    causal_cosine,
    causal_inner_product,
    causal_metric,
    class_means,
    concept_differences,
    edit_residual,
    edited_legal,
    fit_logistic_probe,
    fit_mlp_probe,
    fit_probe,
    fit_ridge_probe,
    intervention_experiment,
    majority_baseline,
    probe_accuracy,
    probe_table,
    random_init_model,
    run_from_layer,
    run_with_edits,
    separation_report,
    single_edit,
    unembedding_vectors,
    whitening,
)
from lablib.world import MINE, N_MOVES, THEIRS, heldout_games, label_games, load_checkpoint, probe_dataset
from lablib.world.othello import N_SQUARES, OthelloState, replay


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(1)
    return load_checkpoint()[0]


@pytest.fixture(scope="module")
def games():
    return heldout_games(400)


@pytest.fixture(scope="module")
def data(shipped, games):
    torch.set_num_threads(1)
    return probe_dataset(shipped, games[:300])


# -- synthetic sanity -------------------------------------------------------------------------------
def planted(n=3000, d=20, S=4, C=3, seed=0, noise=0.3):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(S, C, d, generator=g)
    x = torch.randn(n, d, generator=g) * 2 + 5  # off-centre, scaled: the fit must standardize
    logits = torch.einsum("pd,scd->psc", x - 5, W) / noise
    y = logits.argmax(-1)
    return x, y, W


@pytest.mark.parametrize("kind", ["linear", "ridge", "mlp"])
def test_probes_recover_a_planted_linear_signal(kind):
    x, y, _ = planted()
    kw = {"linear": dict(steps=60), "ridge": {}, "mlp": dict(epochs=40, batch_size=256)}[kind]
    probe = fit_probe(kind, x[:2000], y[:2000], 3, **kw)
    acc = probe_accuracy(probe, x[2000:], y[2000:])
    assert acc > {"linear": 0.95, "ridge": 0.8, "mlp": 0.9}[kind], acc
    # labels independent of x: back to chance
    yr = torch.randint(0, 3, y.shape, generator=torch.Generator().manual_seed(1))
    probe = fit_probe(kind, x[:2000], yr[:2000], 3, **kw)
    assert probe_accuracy(probe, x[2000:], yr[2000:]) < 0.42


def test_logistic_probe_directions_read_raw_activations():
    x, y, W = planted(S=1)
    for method in ("lbfgs", "adam"):
        probe = fit_logistic_probe(x, y, 3, l2=1e-4, method=method, steps=100 if method == "lbfgs" else 300)
        assert isinstance(probe, LinearProbe) and probe.weight.shape == (1, 3, 20)
        assert probe_accuracy(probe, x, y) > 0.95
        # the learned logit differences point along the planted ones
        d_true = (W[0, 1] - W[0, 0])
        d_fit = probe.direction(0, 1) - probe.direction(0, 0)
        assert torch.nn.functional.cosine_similarity(d_true, d_fit, dim=0) > 0.9


def test_majority_baseline():
    ytr = torch.tensor([[0, 2], [0, 1], [1, 2], [2, 2]])
    yte = torch.tensor([[2, 2], [1, 1]])
    # all classes: square 0 -> 0 (wrong twice), square 1 -> 2 (right once)
    assert majority_baseline(ytr, yte, 3) == pytest.approx(0.25)
    # nonzero classes only: square 0 -> 1 (tie, first), square 1 -> 2
    assert majority_baseline(ytr, yte, 3, nonempty_only=True) == pytest.approx(0.5)


# -- the finding on the shipped checkpoint ------------------------------------------------------------
def test_mine_theirs_far_more_linear_than_black_white(shipped, data):
    """300 held-out games split 225 / 75 by game; ridge probes at every layer, scored on occupied
    squares. Measured: ridge, best layer (3) mt 0.769 vs best bw 0.556 (majority 0.559 / 0.535);
    logistic (40 LBFGS steps) at layer 3: mt 0.778, bw 0.556. The full table (1,000 games, logistic / ridge / MLP): see the report."""
    train, test = data.split(0.75)
    acc = {}
    for enc in ("bw", "mt"):
        acc[enc] = [probe_accuracy(fit_ridge_probe(train.acts[l], train.labels(enc), 3), test.acts[l],
                                   test.labels(enc), nonempty_only=True) for l in range(5)]
    best = int(np.argmax(acc["mt"]))
    assert best >= 2
    assert acc["mt"][best] > 0.72
    assert acc["mt"][best] - max(acc["bw"]) > 0.15
    p = {enc: fit_logistic_probe(train.acts[3], train.labels(enc), 3, steps=40) for enc in ("bw", "mt")}
    lg = {enc: probe_accuracy(p[enc], test.acts[3], test.labels(enc), nonempty_only=True) for enc in p}
    assert lg["mt"] > 0.74 and lg["mt"] - lg["bw"] > 0.15


def test_random_init_control_stays_near_the_majority_baseline(shipped, games):
    """Same probes on a freshly initialized GPT of the same config. Measured (ridge, 300 games):
    random-init mt on occupied squares 0.482 / 0.520 / 0.522 at layers 0 / 2 / 3 vs the majority
    baseline 0.559, while the trained model reaches 0.769 (layer 0, the embeddings: 0.482 for both)."""
    rows = probe_table(shipped, games[:300], kinds=("ridge",), encodings=("mt",), layers=(0, 2, 3), frac_train=0.75)
    tr = max(r["test_acc_nonempty"] for r in rows if r["model"] == "trained")
    rnd = max(r["test_acc_nonempty"] for r in rows if r["model"] == "random_init")
    maj = rows[0]["majority_acc_nonempty"]
    assert abs(rnd - maj) < 0.08
    assert tr - rnd > 0.15


def test_random_init_model_is_fresh_and_reproducible(shipped):
    a, b = random_init_model(shipped, 0), random_init_model(shipped.cfg, 0)
    assert a.cfg == shipped.cfg
    assert torch.equal(a.unembed.weight, b.unembed.weight)
    assert not torch.equal(a.unembed.weight, shipped.unembed.weight)


# -- interventions ------------------------------------------------------------------------------------
def test_run_from_layer_and_run_with_edits_reproduce_the_forward(shipped, games):
    tok = label_games(games[:8]).tokens
    logits, res = shipped(tok, return_residuals=True)
    for l in range(5):
        assert torch.allclose(run_from_layer(shipped, res[l], l), logits, atol=1e-5)
    pos = torch.full((8,), 5)
    assert torch.allclose(run_with_edits(shipped, tok, pos, {2: lambda r: r}), logits, atol=1e-5)
    v = torch.randn(128, generator=torch.Generator().manual_seed(0))
    out = run_with_edits(shipped, tok, pos, {2: lambda r: r + v})  # (a constant shift would vanish in LayerNorm)
    assert torch.allclose(out[:, :5], logits[:, :5], atol=1e-5)  # causal: earlier positions untouched
    assert not torch.allclose(out[:, 5], logits[:, 5], atol=1e-3)


def test_edited_legal_matches_the_engine():
    moves = heldout_games(1)[0][:6]
    st = replay(moves)[-1]
    labels = label_games([moves])
    board = labels.board_mt[0, 5].numpy()
    assert (edited_legal(board, st.to_move, 0, int(board[0])) == labels.legal[0, 5].numpy()).all()
    s = int(np.flatnonzero(board == MINE)[0])
    arr = st.board().reshape(-1).copy()
    arr[s] = -arr[s]
    want = OthelloState.from_board(arr, st.to_move).legal_moves()
    got = edited_legal(board, st.to_move, s, THEIRS)
    from lablib.world.data import PLAYABLE
    assert sorted(PLAYABLE[i] for i in np.flatnonzero(got)) == sorted(want)


def test_edit_residual_flips_the_probe(data):
    y = data.labels("mt")
    probe = fit_ridge_probe(data.acts[3], y, 3)
    r = data.acts[3][:200]
    sq = torch.full((200,), 8)
    cur = probe.predict(r)[:, 8]
    tgt = torch.where(cur == MINE, THEIRS, MINE)
    new = edit_residual(r, probe, sq, cur, tgt, "add", margin=0.5)
    assert (probe.predict(new)[:, 8] == tgt).all()
    # only the square's own logit differences are moved much
    rep = edit_residual(r, probe, sq, cur, tgt, "replace", means=class_means(data.acts[3], y))
    assert rep.shape == r.shape and torch.isfinite(rep).all()


def test_intervention_beats_no_edit_and_random_direction(shipped, data, games):
    """Ridge mine/theirs probes (300 games) at layers 2, 3, 4; 200 edits on 100 other games
    (flip an occupied square's owner; only edits that change the legal set), step 3x the minimal
    flip. Measured (probe / none / random direction of the same norm): follow (the changed moves'
    log-probs move the edited board's way) 0.925 / - / 0.52; thresholded prediction closer to the
    edited legal set than to the original ("better") 0.40 / 0.235 / 0.24; top-k exact on the edited
    set 0.255 / 0.195 / 0.14; top-k errors 2.40 / 2.50 / 3.36."""
    y = data.labels("mt")
    probes = {l: fit_ridge_probe(data.acts[l], y, 3) for l in (2, 3, 4)}
    r = intervention_experiment(shipped, probes, games[300:], n_edits=200, scale=3.0, seed=0)
    c = r["conditions"]
    assert r["n"] == 200 and r["probe_flip_rate"] > 0.95
    assert c["probe"]["follow"] > 0.85 and c["random"]["follow"] < 0.62
    assert c["probe"]["better"] > c["none"]["better"] + 0.1
    assert c["probe"]["better"] > c["random"]["better"] + 0.1
    assert c["probe"]["exact_topk"] > c["none"]["exact_topk"] + 0.03
    assert c["probe"]["exact_topk"] > c["random"]["exact_topk"] + 0.05
    assert c["probe"]["errors_topk"] < c["random"]["errors_topk"] - 0.5


def test_single_edit_matches_the_experiment_s_bookkeeping(shipped, data, games):
    """single_edit (the chapter's viewer) uses the same legal sets as candidate_edits, its
    "before" is the plain forward pass, scale 0 changes nothing, and the edit moves most changed
    moves the edited board's way (summed over 10 edits: the same statistic as "follow")."""
    y = data.labels("mt")
    probes = {l: fit_ridge_probe(data.acts[l], y, 3) for l in (2, 3, 4)}
    edits, _ = candidate_edits(games[300:], 10, seed=3)
    followed = changed = 0
    for e in edits:
        game = games[300 + e.game]
        out = single_edit(shipped, probes, game, e.position, e.square)
        np.testing.assert_array_equal(out["legal_before"], e.legal_orig)
        np.testing.assert_array_equal(out["legal_after"], e.legal_edit)
        assert out["current"] == e.current and out["target"] == e.target
        tok = label_games([game], shipped.cfg.block_size).tokens[:1]
        plain = shipped(tok)[0, e.position, :N_MOVES].softmax(-1).detach().numpy()
        np.testing.assert_allclose(out["probs_before"], plain, rtol=1e-5, atol=1e-7)
        unedited = single_edit(shipped, probes, game, e.position, e.square, scale=0.0)
        np.testing.assert_allclose(unedited["probs_after"], out["probs_before"], rtol=1e-5, atol=1e-7)
        moved = (np.log(out["probs_after"]) - np.log(out["probs_before"])) * (e.legal_edit.astype(float) - e.legal_orig)
        followed += int((moved > 0).sum())
        changed += int((e.legal_edit != e.legal_orig).sum())
    assert followed / changed > 0.75
    e = edits[0]
    empty = int(np.flatnonzero(label_games([games[300 + e.game]]).board_mt[0, e.position].numpy() == 0)[0])
    with pytest.raises(ValueError, match="empty"):
        single_edit(shipped, probes, games[300 + e.game], e.position, empty)
    with pytest.raises(ValueError, match="position"):
        single_edit(shipped, probes, games[300 + e.game], len(games[300 + e.game]) - 1, e.square)


def test_candidate_edits_change_the_legal_set(games):
    edits, counts = candidate_edits(games[:20], 30, seed=1)
    assert len(edits) == counts["kept"] == 30
    for e in edits:
        assert e.current in (MINE, THEIRS) and e.target != e.current
        assert (e.legal_orig != e.legal_edit).any() and e.legal_edit.any()


# -- geometry ------------------------------------------------------------------------------------------
def test_whitening_turns_the_causal_inner_product_euclidean(shipped):
    gamma = unembedding_vectors(shipped)
    g = torch.Generator().manual_seed(0)
    for ridge in (0.0, 0.1):
        M = causal_metric(gamma, ridge)
        A = whitening(M)
        assert torch.allclose(A.T @ A, M, atol=1e-8 * M.abs().max())
        x = torch.randn(10, 128, generator=g, dtype=torch.float64)
        y = torch.randn(10, 128, generator=g, dtype=torch.float64)
        assert torch.allclose(causal_inner_product(x, y, M), ((x @ A.T) * (y @ A.T)).sum(-1), rtol=1e-8, atol=1e-8)
    # pseudo-inverse: the whitened, centered unembeddings have identity covariance on their span,
    # i.e. they form a regular simplex (Gram = n (I - 11^T / n))
    A = whitening(causal_metric(gamma))
    w = (gamma - gamma.mean(0)) @ A.T
    n = len(gamma)
    assert torch.allclose(w @ w.T, n * torch.eye(n, dtype=torch.float64) - 1, atol=1e-6)
    # full-rank case: an exact inverse, and whitened vectors have identity covariance
    big = torch.randn(500, 16, generator=g, dtype=torch.float64) @ torch.randn(16, 16, generator=g, dtype=torch.float64)
    M = causal_metric(big)
    c = big - big.mean(0)
    assert torch.allclose(M, torch.linalg.inv(c.T @ c / 500), rtol=1e-6)
    wb = c @ whitening(M).T
    assert torch.allclose(wb.T @ wb / 500, torch.eye(16, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(causal_cosine(big[:3], big[3:6], M), torch.nn.functional.cosine_similarity(
        big[:3] @ whitening(M).T, big[3:6] @ whitening(M).T, dim=-1), atol=1e-10)


def test_concept_separation_numbers(shipped):
    """Measured on the shipped model (mean |cos|): Euclidean cross (row- vs column-difference, 4
    distinct tokens) 0.024, same-concept 0.046, random token differences 0.033, Gaussian 0.072;
    causal (pseudo-inverse): cross 0.000, same 0.000, random tokens 0.000, one shared token 0.500.
    The causal zeros are the regular-simplex identity (32 tokens, rank-31 covariance), not a
    finding: same-concept and random pairs are zero too."""
    rep = separation_report(shipped, ridges=(0.0, 1.0), n_random=500)
    e, c = rep["metrics"]["euclidean"], rep["metrics"]["causal_ridge=0"]
    assert rep["rank_cov"] == 31
    assert e["cross"] < 0.05 and e["random_tokens"] < 0.06 and e["same"] < 0.08
    assert e["random_gaussian"] == pytest.approx(np.sqrt(2 / (np.pi * 128)), abs=0.01)
    assert c["cross"] < 1e-6 and c["same"] < 1e-6 and c["random_tokens"] < 1e-6
    assert c["cross_shared"] == pytest.approx(0.5, abs=1e-6)
    assert rep["metrics"]["causal_ridge=1"]["cross"] < e["cross"]
    cd = concept_differences(unembedding_vectors(shipped))
    assert len(cd["row"][0]) == len(cd["col"][0]) == 72


# -- bad inputs ----------------------------------------------------------------------------------------
def test_bad_inputs_raise(shipped, data):
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10, 2))
    with pytest.raises(ValueError):
        fit_logistic_probe(x, y[:5])
    with pytest.raises(ValueError):
        fit_logistic_probe(x.long(), y)
    with pytest.raises(ValueError):
        fit_ridge_probe(x, y.float())
    with pytest.raises(ValueError):
        fit_mlp_probe(x, y, n_classes=2)  # label 2 with 2 classes
    with pytest.raises(ValueError):
        fit_logistic_probe(torch.full((10, 4), float("nan")), y)
    with pytest.raises(ValueError):
        fit_probe("svm", x, y)
    with pytest.raises(ValueError):
        fit_logistic_probe(x, y, method="sgd")
    with pytest.raises(ValueError):
        probe_accuracy(fit_ridge_probe(x, y, 3), x, y[:, :1])
    with pytest.raises(ValueError):
        probe_table(shipped, data=data, control=True)
    with pytest.raises(ValueError):
        probe_table(shipped, heldout_games(5), kinds=("svm",))
    with pytest.raises(ValueError):
        probe_table(shipped, heldout_games(5), layers=(7,))
    with pytest.raises(ValueError):
        run_from_layer(shipped, torch.randn(1, 3, 128), 9)
    with pytest.raises(ValueError):
        run_from_layer(shipped, torch.randn(1, 3, 64), 1)
    probe = fit_ridge_probe(data.acts[3][:500], data.labels("mt")[:500], 3)
    with pytest.raises(ValueError):
        edit_residual(torch.randn(2, 128), probe, torch.tensor([1, 2]), torch.tensor([1, 1]), torch.tensor([2, 2]), "rotate")
    with pytest.raises(ValueError):
        edit_residual(torch.randn(2, 128), probe, torch.tensor([1, 2]), torch.tensor([1, 1]), torch.tensor([2, 2]), "replace")
    with pytest.raises(ValueError):
        intervention_experiment(shipped, {}, heldout_games(5))
    with pytest.raises(ValueError):
        intervention_experiment(shipped, {3: probe}, heldout_games(5), threshold=1.5)
    with pytest.raises(ValueError):
        intervention_experiment(shipped, {3: probe}, heldout_games(5), method="replace")
    with pytest.raises(ValueError):
        causal_metric(torch.randn(1, 4))
    with pytest.raises(ValueError):
        causal_metric(torch.randn(5, 4), ridge=-1)
    with pytest.raises(ValueError):
        whitening(torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64))
    with pytest.raises(ValueError):
        whitening(-torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError):
        causal_inner_product(torch.randn(3), torch.randn(4), torch.eye(3))
    with pytest.raises(ValueError):
        concept_differences(torch.randn(10, 4))
    with pytest.raises(ValueError):
        candidate_edits(heldout_games(2), 0)
    with pytest.raises(ValueError):
        edited_legal(np.zeros(10), 0, 0, 1)
