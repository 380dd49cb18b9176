"""The linearity score (Razzhigaev et al. 2024) and the linear stand-in for a block.

The score's invariances (orthogonal rotations of X or Y, global scale, translation), its value on
an exact linear map (1) and on independent noise (about d / n), the held-out form, the authors'
definition (pseudo-inverse, no ridge) reproduced, the orthogonal Procrustes bound, and that
``linear_replacement`` reproduces a block exactly when the block is linear. A few seconds.
"""

import numpy as np
import pytest
import torch
from torch import nn

from lablib.linearity import (
    AffineMap,
    fit_affine,
    linear_replacement,
    linearity_score,
    normalize,
    procrustes_score,
    residual_linearity_score,
    update_share,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _orthogonal(d, seed):
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


@pytest.fixture(scope="module")
def pair():
    """Y a nonlinear function of X plus noise: a score well inside (0, 1)."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(600, 12, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3.0, 12, dtype=torch.float64)
    W = torch.randn(12, 10, generator=g, dtype=torch.float64)
    Y = torch.tanh(X @ W / 3) + 0.3 * torch.randn(600, 10, generator=g, dtype=torch.float64)
    return X, Y


def test_score_is_strictly_between_zero_and_one_on_a_nonlinear_pair(pair):
    s = linearity_score(*pair)
    assert 0.3 < s < 0.95, s


def test_score_invariances(pair):
    """Rotating X or Y by an orthogonal matrix, scaling either, translating either: the same score to 1e-12."""
    X, Y = pair
    base = linearity_score(X, Y)
    variants = {
        "rotate X": (X @ _orthogonal(12, 1), Y),
        "rotate Y": (X, Y @ _orthogonal(10, 2)),
        "scale X": (1e3 * X, Y),
        "scale Y": (X, 1e-3 * Y),
        "translate X": (X + torch.randn(12, dtype=torch.float64) * 50, Y),
        "translate Y": (X, Y - 7.0),
        "all at once": (-4 * X @ _orthogonal(12, 3) + 2, 0.1 * Y @ _orthogonal(10, 4) + 5),
    }
    for name, (x, y) in variants.items():
        assert abs(linearity_score(x, y) - base) < 1e-12, (name, linearity_score(x, y), base)


def test_score_is_not_invariant_to_an_anisotropic_map_of_y(pair):
    """A control on the invariance test: stretching one column of Y reweights the error, and the score moves."""
    X, Y = pair
    stretch = torch.ones(10, dtype=torch.float64)
    stretch[0] = 10.0
    assert abs(linearity_score(X, Y * stretch) - linearity_score(X, Y)) > 0.01


def test_exact_linear_map_scores_one():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(500, 16, generator=g, dtype=torch.float64)
    A = torch.randn(16, 16, generator=g, dtype=torch.float64)
    assert linearity_score(X, X @ A) > 1 - 1e-6
    assert linearity_score(X, X @ A + 3.0, ridge=0.0) > 1 - 1e-12  # affine is linear after centring
    assert linearity_score(X, X @ A[:, :5]) > 1 - 1e-6  # a map to fewer dimensions
    assert linearity_score(X.float(), (X @ A).float()) > 1 - 1e-5  # float32 inputs are promoted


def test_independent_noise_scores_about_d_over_n():
    """In-sample least squares on noise explains about d / n of it; held out, about nothing."""
    g = torch.Generator().manual_seed(2)
    n, d = 20_000, 20
    X, Y = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2))
    s = linearity_score(X, Y)
    assert 0 <= s < 3 * d / n, f"noise scored {s:.4g}; expected about d/n = {d / n:.4g}"
    Xt, Yt = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2))
    assert abs(linearity_score(X, Y, heldout=(Xt, Yt))) < 3 * d / n


def test_matches_the_authors_pseudo_inverse_definition(pair):
    """The notebook of AIRI-Institute/LLM-Microscope: centre, divide by the Frobenius norm, A = pinv(X~) Y~
    from the SVD; 1 - ||X~ A - Y~||^2. Our ridge (1e-8) changes the score by less than 1e-7."""
    X, Y = pair
    xn, yn = normalize(X), normalize(Y)
    U, S, Vh = torch.linalg.svd(xn, full_matrices=False)
    A = Vh.T * (1 / S)[None, :] @ U.T @ yn
    theirs = float(1 - (xn @ A - yn).square().sum())
    assert abs(linearity_score(X, Y) - theirs) < 1e-7
    assert abs(linearity_score(X, Y, ridge=0.0) - theirs) < 1e-12


def test_normalize_centres_and_scales(pair):
    xn = normalize(pair[0] * 5 + 1)
    assert xn.dtype == torch.float64
    assert xn.mean(0).abs().max() < 1e-14 and abs(float(xn.norm()) - 1) < 1e-12


def test_heldout_score_equals_in_sample_on_the_same_tokens(pair):
    X, Y = pair
    assert abs(linearity_score(X, Y, heldout=(X, Y)) - linearity_score(X, Y)) < 1e-12
    assert linearity_score(X[:300], Y[:300], heldout=(X[300:], Y[300:])) < linearity_score(X[:300], Y[:300])


def test_residual_score_is_the_score_of_x_against_y_minus_x(pair):
    X, _ = pair
    Y = X + torch.tanh(X)  # a residual block whose update is nonlinear
    assert linearity_score(X, Y) > residual_linearity_score(X, Y)
    assert residual_linearity_score(X, Y) == linearity_score(X, Y - X)
    held = residual_linearity_score(X[:300], Y[:300], heldout=(X[300:], Y[300:]))
    assert held == linearity_score(X[:300], Y[:300] - X[:300], heldout=(X[300:], Y[300:] - X[300:]))


def test_update_share_links_the_raw_and_residual_scores(pair):
    """1 - raw = (1 - residual removed) * share^2, exactly with ridge 0 (the same residual either way)."""
    X, _ = pair
    for scale in (0.1, 1.0, 10.0):  # a small update makes the raw score near 1 whatever the block does
        Y = X + scale * (torch.tanh(X) + X.flip(1) ** 2 / 10)
        raw, res = linearity_score(X, Y, ridge=0.0), residual_linearity_score(X, Y, ridge=0.0)
        share = update_share(X, Y)
        assert abs((1 - raw) - (1 - res) * share**2) < 1e-10, (scale, raw, res, share)
        assert abs(linearity_score(X, Y) - raw) < 1e-6  # the default ridge barely moves it
    assert update_share(X, X + 1.0) < 1e-12  # a constant shift adds nothing once centred


def test_procrustes_score_is_one_for_a_rotation_and_a_lower_bound(pair):
    X, Y = pair
    Q = _orthogonal(12, 5)
    assert abs(procrustes_score(X, 3 * X @ Q + 1) - 1) < 1e-10
    assert procrustes_score(X, X @ torch.diag(torch.linspace(1, 5, 12, dtype=torch.float64))) < 1 - 1e-3
    Y12 = torch.cat([Y, Y[:, :2] ** 2], 1)
    assert procrustes_score(X, Y12) <= linearity_score(X, Y12) + 1e-12


def test_fit_affine_recovers_the_map_in_model_units():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(400, 8, generator=g, dtype=torch.float64) * 10 + 3
    A = torch.randn(8, 6, generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    fit = fit_affine(X, X @ A + b, ridge=0.0)
    assert (fit.A - A).abs().max() < 1e-12 and (fit.b - b).abs().max() < 1e-11
    # the default ridge (1e-8 of the trace, about 1e-8 * d of each eigenvalue here) shrinks A by about 1e-7
    shrunk = fit_affine(X, X @ A + b)
    assert 1e-9 < (shrunk.A - A).abs().max() < 1e-6
    assert fit(X.float()).dtype == torch.float32
    ident = AffineMap.identity(8)
    assert torch.equal(ident(X), X)


class ToyModel(nn.Module):
    """A stack where block 1 is linear and block 2 is not."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8), nn.Sequential(nn.Linear(8, 8), nn.GELU())])
        self.head = nn.Linear(8, 3)

    def forward(self, x, record=None):
        for block in self.blocks:
            x = block(x)
            if record is not None:
                record.append(x)
        return self.head(x)


def test_replacement_reproduces_a_linear_block_exactly():
    model = ToyModel().double()
    g = torch.Generator().manual_seed(4)
    x_fit, x_eval = (torch.randn(n, 8, generator=g, dtype=torch.float64) for n in (200, 50))
    states = []
    with torch.no_grad():
        model(x_fit, states)
        want = model(x_eval)
    # block 1 is nn.Linear: its input is the output of block 0. Plain least squares: exact to 1e-12;
    # with the default ridge (1e-8 of the trace) to 1e-6
    for ridge, tol in [(0.0, 1e-12), (1e-8, 1e-6)]:
        fit = fit_affine(states[0], states[1], ridge=ridge)
        with torch.no_grad(), linear_replacement(model.blocks[1], fit):
            got = model(x_eval)
        assert (got - want).abs().max() < tol, (ridge, float((got - want).abs().max()))
    # the nonlinear block is not reproduced by its best linear map: the replacement does act
    fit2 = fit_affine(states[1], states[2])
    with torch.no_grad(), linear_replacement(model.blocks[2], fit2):
        changed = model(x_eval)
    assert (changed - want).abs().max() > 1e-2
    # and the hook is gone afterwards
    with torch.no_grad():
        assert torch.equal(model(x_eval), want)


def test_replacement_inside_the_othello_gpt_substitutes_the_block_output():
    """On a (random-init) GPT, a block inside the replacement returns exactly fit(x) for its input x;
    the identity map makes the model equal to one with that block deleted."""
    from lablib.world.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=3, d_model=32, d_mlp=64, n_head=2)).eval()
    tokens = torch.randint(0, 32, (4, 10))
    with torch.no_grad():
        _, res = model(tokens, return_residuals=True)
        fit = fit_affine(res[1].reshape(-1, 32), res[2].reshape(-1, 32))
        with linear_replacement(model.blocks[1], fit):
            _, rep = model(tokens, return_residuals=True)
        assert torch.allclose(rep[2], fit(res[1]), atol=1e-6) and torch.equal(rep[1], res[1])
        with linear_replacement(model.blocks[1], AffineMap.identity(32)):
            skipped = model(tokens)
        x = model.tok_emb(tokens) + model.pos_emb(torch.arange(10))
        x = model.blocks[2](model.blocks[0](x))
        assert torch.allclose(skipped, model.unembed(model.ln_final(x)), atol=1e-6)


def test_replacement_keeps_the_rest_of_a_tuple_output():
    class TupleBlock(nn.Module):
        def forward(self, hidden_states, extra=None):
            return torch.relu(hidden_states), "kept"

    out = None
    with linear_replacement(TupleBlock(), AffineMap.identity(4)) as block:
        out = block(hidden_states=-torch.ones(2, 4))
    assert torch.equal(out[0], -torch.ones(2, 4)) and out[1] == "kept"


@pytest.mark.parametrize("args, match", [
    ((torch.ones(5, 3), torch.ones(4, 3)), "same tokens"),
    ((torch.ones(5), torch.ones(5, 3)), "2-D"),
    ((torch.randn(5, 3), torch.full((5, 3), float("nan"))), "NaN"),
    ((torch.ones(5, 3), torch.randn(5, 3)), "constant"),
    ((torch.randn(1, 3), torch.randn(1, 3)), "at least 2 rows"),
    (("not an array", torch.randn(5, 3)), "2-D"),
])
def test_bad_inputs_raise(args, match):
    with pytest.raises(ValueError, match=match):
        linearity_score(*args)


def test_bad_arguments_raise():
    X, Y = torch.randn(20, 3), torch.randn(20, 4)
    with pytest.raises(ValueError, match="ridge"):
        linearity_score(X, Y, ridge=-1.0)
    with pytest.raises(ValueError, match="heldout"):
        linearity_score(X, Y, heldout=X)
    with pytest.raises(ValueError, match="columns"):
        linearity_score(X, Y, heldout=(torch.randn(10, 5), torch.randn(10, 4)))
    with pytest.raises(ValueError, match="equal widths"):
        residual_linearity_score(X, Y)
    with pytest.raises(ValueError, match="equal widths"):
        procrustes_score(X, Y)
    with pytest.raises(ValueError, match="equal widths"):
        update_share(X, Y)
    with pytest.raises(ValueError, match="Module"):
        with linear_replacement(lambda x: x, AffineMap.identity(3)):
            pass
    with pytest.raises(ValueError, match="AffineMap"):
        with linear_replacement(nn.Identity(), np.eye(3)):
            pass
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        AffineMap.identity(3)(torch.ones(2, 4))


# --- the shipped results file and the charts ------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    from lablib.linearity.experiment import load_results

    return load_results()


def test_shipped_results_are_complete_and_documented(shipped):
    """Every (model, weights, seed, block, measure, fit) row is there, and the replacement grid is whole."""
    import pandas as pd

    assert shipped["rebuild"].startswith("OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.linearity.experiment")
    assert shipped["config"]["random_seeds"] == [0, 1, 2] and shipped["commit"] and shipped["seconds"] > 0
    assert shipped["data"] == {"sentences": 768, "minilm_tokens": 8933, "games": 1000, "othello_moves": 31960}
    scores = pd.DataFrame(shipped["scores"])
    counts = scores.groupby(["model", "weights"]).size().to_dict()
    # blocks x 2 measures x 2 fits, times 1 trained or 3 random seeds
    assert counts == {("MiniLM", "trained"): 24, ("MiniLM", "random"): 72,
                      ("Othello GPT", "trained"): 16, ("Othello GPT", "random"): 48}, counts
    assert scores["score"].between(0, 1).all()
    rep = pd.DataFrame(shipped["replacement"])
    assert rep.groupby("model").size().to_dict() == {"MiniLM": 2 * (1 + 6 * 2), "Othello GPT": 2 * (1 + 4 * 2)}


def test_shipped_scores_satisfy_the_update_share_identity(shipped):
    """1 - raw = (1 - residual removed) * share^2 on every in-sample row of the file (the ridge: 1e-4 relative)."""
    import pandas as pd

    s = pd.DataFrame(shipped["scores"])
    s = s[s.fit == "in-sample"].pivot_table(index=["model", "weights", "seed", "block"], columns="measure",
                                            values=["score", "update_share"], dropna=False).dropna()
    lhs = 1 - s[("score", "raw")]
    rhs = (1 - s[("score", "residual removed")]) * s[("update_share", "raw")] ** 2
    assert ((lhs - rhs).abs() / lhs).max() < 1e-4


def test_charts_build_with_their_controls(shipped):
    import pandas as pd

    from lablib.linearity.charts import replacement_chart, score_chart

    spec = score_chart(pd.DataFrame(shipped["scores"])).to_dict()
    params = {p["name"]: p for p in spec["params"]}
    assert set(params) == {"fit", "zoom_0", "zoom_1"}, set(params)
    assert params["fit"]["bind"]["options"] == ["in-sample", "held-out"] and params["zoom_0"]["bind"] == "scales"
    rep = pd.DataFrame(shipped["replacement"])
    spec = replacement_chart(rep, "Othello GPT", {"top1_legal": "top-1", "topk_exact": "exact"}).to_dict()
    assert any(p.get("name") == "metric" and p["bind"]["options"] == ["top-1", "exact"] for p in spec["params"])
    with pytest.raises(ValueError, match="lacks columns"):
        score_chart(pd.DataFrame({"model": ["MiniLM"]}))
    with pytest.raises(ValueError, match="no rows"):
        replacement_chart(rep, "GPT-2", {"top1_legal": "top-1"})


def test_token_states_of_both_models():
    """Every non-padding token, in order, with its sentence / game; MiniLM's sentence embeddings equal
    the normalized mean of lablib.encoder.embed's last layer (the loader of chapter t3_02)."""
    from lablib.encoder import embed
    from lablib.linearity.models import minilm_sentence_embeddings, minilm_states, othello_states
    from lablib.world.data import heldout_games
    from lablib.world.model import GPT, GPTConfig

    games = heldout_games(3)
    torch.manual_seed(0)
    states = othello_states(GPT(GPTConfig(n_layer=2, d_model=16, d_mlp=32, n_head=2)).eval(), games, batch_size=2)
    assert states.hidden.shape == (3, sum(len(g) for g in games), 16)
    assert states.group.tolist() == [i for i, g in enumerate(games) for _ in g]
    assert states.select([1]).hidden.shape[1] == len(games[1])

    texts = ["The soup was wonderful.", "Honestly, the flight to Lisbon ruined my day.", "Rain."]
    mini = minilm_states(texts, batch_size=2)
    assert mini.hidden.shape[0] == 7 and mini.hidden.shape[2] == 384 and mini.group.unique().tolist() == [0, 1, 2]
    assert mini.group.tolist().count(2) == 4  # [CLS] rain . [SEP]
    ours = minilm_sentence_embeddings(texts, batch_size=2)
    theirs = torch.nn.functional.normalize(embed(texts, layer=6, cache=False), dim=-1)
    assert (ours - theirs).abs().max() < 1e-5
    with pytest.raises(ValueError, match="non-empty"):
        minilm_states([])
    with pytest.raises(ValueError, match="games"):
        othello_states(None, [])
