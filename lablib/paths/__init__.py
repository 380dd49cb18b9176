"""Linear paths between trained networks: track 5, chapter t5_04.

* :mod:`lablib.paths.data`            scikit-learn's bundled digits, one fixed standardized split
* :mod:`lablib.paths.mlp`             a ReLU MLP as a pure function of a parameter dict (standard or NTK parameterization)
* :mod:`lablib.paths.train`           minibatch SGD / Adam with a copyable state (for the spawn test)
* :mod:`lablib.paths.interpolate`     the straight line between two networks and its barrier (Frankle et al. 2020)
* :mod:`lablib.paths.rebasin`         Git Re-Basin's weight matching (Ainsworth et al. 2023) and permutations
* :mod:`lablib.paths.linearize`       a network's first-order Taylor expansion, trained side by side (Lee et al. 2019)
* :mod:`lablib.paths.random_features` random-features ridge regression in closed form
* :mod:`lablib.paths.experiment`      the sweeps behind the shipped results
* :mod:`lablib.paths.charts`          the chapter's Altair charts
"""

from lablib.paths.data import Digits, load_digits_split
from lablib.paths.interpolate import ALPHAS, barrier, interpolate, path_metrics
from lablib.paths.linearize import SideBySide, linearize, mse_grad, ntk_max_eigenvalue, targets, train_side_by_side
from lablib.paths.mlp import MLP, check_params, clone, evaluate
from lablib.paths.random_features import RandomFeaturesRidge, relu_features, ridge, ridge_direct
from lablib.paths.rebasin import Matching, match_objective, permute, random_permutation, weight_matching
from lablib.paths.train import TrainConfig, TrainState, start, train, train_steps

__all__ = [
    "ALPHAS", "Digits", "MLP", "Matching", "RandomFeaturesRidge", "SideBySide", "TrainConfig", "TrainState", "barrier",
    "check_params", "clone", "evaluate", "interpolate", "linearize", "load_digits_split", "match_objective", "mse_grad",
    "ntk_max_eigenvalue", "path_metrics", "permute", "random_permutation", "relu_features", "ridge", "ridge_direct",
    "start", "targets", "train", "train_side_by_side", "train_steps", "weight_matching",
]
