"""Recommenders for track 5, chapter t5_01: EASE, its baselines, Mult-VAE, the protocol and metrics.

* :mod:`lablib.recsys.data`       MovieLens-100K from the installed recbole wheel -> user x item matrix
* :mod:`lablib.recsys.split`      strong generalization: held-out users, 80% fed in / 20% scored
* :mod:`lablib.recsys.ease`       EASE's closed form (and a column-by-column reference solve)
* :mod:`lablib.recsys.baselines`  popularity, item-kNN (cosine)
* :mod:`lablib.recsys.multvae`    Mult-VAE (Liang et al. 2018)
* :mod:`lablib.recsys.metrics`    Recall@K (normalized), NDCG@K
* :mod:`lablib.recsys.experiment` the chapter's experiment and the shipped Mult-VAE results
* :mod:`lablib.recsys.charts`     the chapter's Altair charts
"""

from lablib.recsys.baselines import ItemKNN, Popularity
from lablib.recsys.data import Interactions, implicit_matrix, load_movielens_100k, movielens_100k_path
from lablib.recsys.ease import EASE, ease_constrained_lstsq, ease_path, ease_weights
from lablib.recsys.metrics import evaluate, ndcg_at_k, rank_items, recall_at_k
from lablib.recsys.multvae import MultVAE, MultVAEConfig, train_multvae
from lablib.recsys.split import UserSplit, n_heldout, strong_generalization_split

__all__ = [
    "EASE", "Interactions", "ItemKNN", "MultVAE", "MultVAEConfig", "Popularity", "UserSplit",
    "ease_constrained_lstsq", "ease_path", "ease_weights", "evaluate", "implicit_matrix", "load_movielens_100k",
    "movielens_100k_path", "n_heldout", "ndcg_at_k", "rank_items", "recall_at_k", "strong_generalization_split",
    "train_multvae",
]
