"""lablib.recsys: EASE's closed form, the ranking metrics, the strong-generalization splitter, the data."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from lablib.recsys import (EASE, ItemKNN, MultVAEConfig, Popularity, ease_constrained_lstsq, ease_path, ease_weights,
                           implicit_matrix, n_heldout, ndcg_at_k, rank_items, recall_at_k, strong_generalization_split,
                           train_multvae)
from lablib.recsys import data as recsys_data


def _binary(n_users, n_items, density, seed):
    return (np.random.default_rng(seed).random((n_users, n_items)) < density).astype(float)


# --- EASE ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.5, 3.0, 50.0])
def test_ease_closed_form_equals_the_constrained_least_squares_solved_column_by_column(lam):
    X = _binary(40, 9, 0.3, seed=int(lam * 10))
    B = ease_weights(X, lam)
    direct = ease_constrained_lstsq(X, lam)
    assert np.abs(np.diag(B)).max() == 0.0
    assert np.abs(B - direct).max() < 1e-10, np.abs(B - direct).max()
    # the constraint matters: plain ridge regression of X on X (no zero diagonal) is a different matrix
    ridge = np.linalg.solve(X.T @ X + lam * np.eye(9), X.T @ X)
    assert np.abs(np.diag(ridge)).min() > 1e-3


def test_ease_is_a_stationary_point_of_the_lagrangian():
    """(G + lam I) B - G must be diagonal (it equals -diagMat(gamma)): the KKT condition off the diagonal."""
    X, lam = _binary(60, 12, 0.25, seed=3), 7.0
    B, G = ease_weights(X, lam), X.T @ X
    residual = (G + lam * np.eye(12)) @ B - G
    assert np.abs(residual - np.diag(np.diag(residual))).max() < 1e-10


def test_ease_path_matches_one_inverse_per_lambda_and_sparse_input():
    X = _binary(50, 15, 0.2, seed=4)
    for lam, B in ease_path(sp.csr_matrix(X), [1.0, 10.0, 100.0]):
        assert np.abs(B - ease_weights(X, lam)).max() < 1e-10
    model = EASE(10.0).fit(sp.csr_matrix(X))
    assert np.allclose(model.score(X[:3]), X[:3] @ ease_weights(X, 10.0))


def test_ease_rejects_bad_input():
    with pytest.raises(ValueError, match="lam"):
        ease_weights(np.ones((3, 3)), 0.0)
    with pytest.raises(ValueError, match="2-D"):
        ease_weights(np.ones(3), 1.0)
    with pytest.raises(ValueError, match="4 item columns"):
        EASE(1.0).fit(np.ones((3, 4))).score(np.ones((2, 5)))


# --- metrics ---------------------------------------------------------------------------------

SCORES = np.array([[0.9, 0.8, 0.8, 0.1, 0.5]])


def _row(*items, n=5):
    r = np.zeros((1, n))
    r[0, list(items)] = 1
    return r


def test_ranking_breaks_ties_by_lower_index_and_puts_seen_items_last():
    assert rank_items(SCORES).tolist() == [[0, 1, 2, 4, 3]]
    assert rank_items(SCORES, seen=_row(0)).tolist() == [[1, 2, 4, 3, 0]]


def test_recall_and_ndcg_by_hand_with_a_tie():
    # seen item 0 excluded -> ranking 1, 2 (tie with 1, higher index), 4, 3; held out: 2 and 3
    held, seen = _row(2, 3), _row(0)
    assert recall_at_k(SCORES, held, 2, seen)[0] == pytest.approx(0.5)  # one hit (item 2 at rank 2) / min(2, 2)
    dcg, idcg = 1 / math.log2(3), 1 + 1 / math.log2(3)
    assert ndcg_at_k(SCORES, held, 2, seen)[0] == pytest.approx(dcg / idcg)
    assert recall_at_k(SCORES, held, 4, seen)[0] == pytest.approx(1.0)  # both found in the top 4 / min(4, 2)
    assert ndcg_at_k(SCORES, held, 4, seen)[0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / idcg)


def test_fewer_heldout_items_than_k_normalizes_by_the_heldout_count():
    held, seen = _row(3), _row(0)  # item 3 comes 4th after excluding item 0
    assert recall_at_k(SCORES, held, 3, seen)[0] == 0.0
    assert recall_at_k(SCORES, held, 4, seen)[0] == 1.0  # 1 / min(4, 1), not 1 / 4
    assert ndcg_at_k(SCORES, held, 4, seen)[0] == pytest.approx(1 / math.log2(5))  # IDCG = 1


def test_already_seen_items_do_not_take_ranking_slots():
    held = _row(2)
    assert recall_at_k(SCORES, held, 2)[0] == 0.0  # top 2 without exclusion: items 0 and 1
    assert recall_at_k(SCORES, held, 2, seen=_row(0))[0] == 1.0  # item 0 seen: top 2 are 1 and 2


def test_metrics_are_per_user_and_reject_users_without_heldout_items():
    scores = np.vstack([SCORES, SCORES[:, ::-1]])
    held = np.vstack([_row(0), _row(0)])
    assert recall_at_k(scores, held, 1).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="no held-out item"):
        recall_at_k(scores, np.vstack([_row(0), np.zeros((1, 5))]), 1)
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(SCORES, _row(0), 0)
    assert recall_at_k(SCORES, _row(3), 6)[0] == 1.0  # K above n_items: every item is ranked


# --- splitter --------------------------------------------------------------------------------


def test_split_properties():
    X = _binary(200, 40, 0.2, seed=5)
    X[np.arange(200), np.arange(200) % 40] = 1  # every user has an item
    X[:, 39] = 0
    X[:3, 39] = 1  # a rare item
    s = strong_generalization_split(X, 30, 25, seed=11)
    users = [s.train_users, s.val_users, s.test_users]
    assert sum(map(len, users)) == 200 and len(np.unique(np.concatenate(users))) == 200  # disjoint, complete
    # item universe: the items with a training interaction
    assert s.items.tolist() == np.flatnonzero(X[s.train_users].sum(0) > 0).tolist()
    for rows, fed, out in [(s.val_users, s.val_in, s.val_out), (s.test_users, s.test_in, s.test_out)]:
        full = X[rows][:, s.items]
        fed, out = fed.toarray(), out.toarray()
        assert np.array_equal(fed + out, full)  # in and out partition each user's items
        n = full.sum(1).astype(int)
        assert out.sum(1).astype(int).tolist() == [n_heldout(k) for k in n]  # 20% (at least one)
    assert np.array_equal(s.train.toarray(), X[s.train_users][:, s.items])
    again, other = strong_generalization_split(X, 30, 25, seed=11), strong_generalization_split(X, 30, 25, seed=12)
    assert np.array_equal(again.test_users, s.test_users) and (again.test_out != s.test_out).nnz == 0
    assert not np.array_equal(other.test_users, s.test_users)


def test_n_heldout_is_twenty_percent_rounded_at_least_one():
    assert [n_heldout(n) for n in (2, 5, 7, 8, 10, 23)] == [1, 1, 1, 2, 2, 5]
    with pytest.raises(ValueError):
        n_heldout(1)
    with pytest.raises(ValueError, match="n_val"):
        strong_generalization_split(np.ones((10, 3)), 5, 5)


# --- baselines, Mult-VAE ---------------------------------------------------------------------


def test_popularity_and_item_knn():
    X = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0.0]])
    assert Popularity().fit(X).score(np.zeros((2, 4))).tolist() == [[3, 2, 2, 1]] * 2
    S = ItemKNN().fit(X).S
    norms = np.sqrt(X.sum(0))
    want = X.T @ X / np.outer(norms, norms)
    np.fill_diagonal(want, 0)
    assert np.allclose(S, want)
    S1 = ItemKNN(k=1).fit(X).S
    assert ((S1 > 0).sum(0) == 1).all() and np.allclose(S1.max(0), want.max(0))


def test_multvae_learns_two_user_groups_that_popularity_cannot_tell_apart(one_thread):
    """Two groups of users, each on its own 10 items: a trained Mult-VAE ranks the group's items first.

    A user holds 6 of their group's 10 items, so at most 6 group items are unseen: Recall@6 is 1 for a
    model that ranks the group's items first, and about one half for popularity (the groups are even)."""
    rng = np.random.default_rng(0)
    X = np.zeros((240, 20))
    for u in range(240):
        block = (u % 2) * 10
        X[u, block + rng.choice(10, 6, replace=False)] = 1
    s = strong_generalization_split(X, 20, 20, seed=0)
    config = MultVAEConfig(hidden=32, latent=8, epochs=15, batch_size=40, lr=3e-3, seed=0)
    model, history = train_multvae(s.train, s.val_in, s.val_out, config, progress=False)
    vae = recall_at_k(model.score(s.test_in), s.test_out, 6, s.test_in).mean()
    pop = recall_at_k(Popularity().fit(s.train).score(s.test_in), s.test_out, 6, s.test_in).mean()
    assert vae > 0.95 and vae > pop + 0.2, (vae, pop)
    assert len(history) == 15


# --- data ------------------------------------------------------------------------------------


def test_implicit_matrix_thresholds_ratings_and_users():
    users = np.array([1, 1, 1, 2, 2, 3, 3, 3, 3])
    items = np.array([10, 20, 20, 10, 30, 10, 20, 30, 40])
    ratings = np.array([5, 4, 4, 5, 5, 4, 5, 3, 4])
    d = implicit_matrix(users, items, ratings, min_rating=4, min_items=2)
    # user 1: items 10, 20 (20 twice, counted once); user 2: 10, 30; user 3: 10, 20, 40 (30 rated 3)
    assert d.user_ids.tolist() == [1, 2, 3] and d.item_ids.tolist() == [10, 20, 30, 40]
    assert d.X.toarray().tolist() == [[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 1]]
    d3 = implicit_matrix(users, items, ratings, min_rating=4, min_items=3)
    assert d3.user_ids.tolist() == [3] and d3.item_ids.tolist() == [10, 20, 40]
    with pytest.raises(ValueError, match="equal length"):
        implicit_matrix(users, items[:-1], ratings)


def test_movielens_100k_comes_from_the_recbole_wheel():
    path = recsys_data.movielens_100k_path()
    assert path.name == "ml-100k.inter" and "recbole" in path.parts
    d = recsys_data.load_movielens_100k()
    assert d.shape == (938, 1447) and d.X.nnz == 55361
    assert np.asarray(d.X.sum(1)).min() >= 5


def test_a_missing_recbole_fails_with_the_install_command(monkeypatch):
    monkeypatch.setattr(recsys_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps recbole==\d"):
        recsys_data.movielens_100k_path()


def test_the_shipped_multvae_results_match_todays_splits():
    from lablib.recsys.experiment import load_multvae_results, make_split

    results = load_multvae_results()
    X = recsys_data.load_movielens_100k().X
    assert len(results["rows"]) >= 5
    for row in results["rows"]:
        assert make_split(X, row["seed"]).test_users.tolist() == row["test_users"], row["seed"]
        assert set(row["test"]) == {"Recall@20", "Recall@50", "NDCG@100"}
