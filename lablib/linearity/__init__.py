"""Track 5, how linear is a transformer: the linearity score between consecutive layers
(Razzhigaev et al. 2024, "Your Transformer is Secretly Linear") and linear stand-ins for blocks.

* ``score``: :func:`linearity_score` (centre, Frobenius-normalize, ``1 - min_A ||X~A - Y~||^2``,
  least squares with a 1e-8 ridge; in-sample as in the paper, or held out),
  :func:`residual_linearity_score` (``X`` against ``Y - X``), :func:`update_share` (how much of
  the output the block added, which links the two scores), :func:`procrustes_score` (the
  orthogonal-map version), :func:`fit_affine` -> :class:`AffineMap`.
* ``replace``: :func:`linear_replacement`, a context manager that makes a block return its
  fitted map of its input (a forward hook).
* ``models``: token states at every layer of all-MiniLM-L6-v2 and of the Othello GPT, random-weights
  controls, MiniLM's sentence embeddings.
* ``experiment``: the chapter's measurements; ``python -m lablib.linearity.experiment`` writes
  ``results/linearity.json``.
* ``charts``: the chapter's Altair charts.
"""

from lablib.linearity.replace import linear_replacement
from lablib.linearity.score import (
    DEFAULT_RIDGE,
    AffineMap,
    fit_affine,
    linearity_score,
    normalize,
    procrustes_score,
    residual_linearity_score,
    update_share,
)

__all__ = [
    "DEFAULT_RIDGE",
    "AffineMap",
    "fit_affine",
    "linear_replacement",
    "linearity_score",
    "normalize",
    "procrustes_score",
    "residual_linearity_score",
    "update_share",
]
