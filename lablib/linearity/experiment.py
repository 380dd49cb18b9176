"""The chapter's experiment: how linear is each block of MiniLM and of the Othello GPT, and what
does replacing a block by its fitted linear map cost the model?

For each model (trained, and random-weights controls from seeds 0, 1, 2):

* **scores** per block ``l`` (hidden state ``l-1`` -> ``l``, every token): the linearity score
  (raw) and the score between ``X`` and ``Y - X`` (residual removed), in-sample on all tokens (the
  paper's definition) and held out (the map fitted on one half of the sentences / games and scored
  on the other, both ways);
* **replacement** (trained models only): block ``l`` replaced by the affine map fitted on one half
  and the model's own task measured on the other half (both ways), next to skipping the block
  (identity map) and to the intact model. MiniLM: cosine of each sentence embedding with the
  intact model's, the Spearman correlation of all pairwise sentence similarities with the intact
  model's (an STS-style agreement), 10-nearest-neighbour sentiment accuracy (leave one out).
  Othello GPT: :func:`lablib.world.legal_move_metrics` (top-1 legal, as in t3_01 and its tests).
  (The kNN sentiment accuracy is a side measure, not a loss: MiniLM was not trained for sentiment,
  and skipping its last block *raises* it.)

Data: the 768 shipped sentences of ``lablib/encoder/data/sentences.json`` (8,933 tokens) and the
1,000 held-out Othello games of ``lablib.world.heldout_games`` (31,960 moves), split in halves by a
seeded permutation. The file records the run's wall time (1,224 s on a shared 2-core machine under
heavy load; the three random MiniLMs and the 24 MiniLM replacement runs dominate). The chapter
loads the results from

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.linearity.experiment --out lablib/linearity/results/linearity.json

and recomputes the trained models' scores, one random Othello GPT's and one replacement case live to check it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lablib.linearity.models import (
    TokenStates,
    minilm_blocks,
    minilm_sentence_embeddings,
    minilm_states,
    othello_blocks,
    othello_states,
    random_minilm,
)
from lablib.linearity.replace import linear_replacement
from lablib.linearity.score import AffineMap, fit_affine, linearity_score, residual_linearity_score, update_share
from lablib.memo import session_memo
from lablib.provenance import git_commit, read_results

__all__ = [
    "CONFIG",
    "RESULTS",
    "halves",
    "knn_accuracy",
    "load_results",
    "max_difference",
    "minilm_replacement",
    "othello_replacement",
    "replacement_table",
    "run",
    "score_rows",
    "score_table",
    "similarity_agreement",
]

RESULTS = Path(__file__).parent / "results" / "linearity.json"
REBUILD = ("OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.linearity.experiment "
           "--out lablib/linearity/results/linearity.json")
CONFIG = {"split_seed": 0, "random_seeds": [0, 1, 2], "n_games": 1000, "ridge": 1e-8, "knn_k": 10}
MEASURES = {"raw": linearity_score, "residual removed": residual_linearity_score}
CONDITIONS = ("linear map", "skip")


def halves(n_groups: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n_groups)`` (sentences or games) into two halves (sorted ids)."""
    if isinstance(n_groups, bool) or not isinstance(n_groups, int) or n_groups < 2:
        raise ValueError(f"n_groups must be an int >= 2; got {n_groups!r}")
    perm = torch.randperm(n_groups, generator=torch.Generator().manual_seed(seed))
    return perm[: n_groups // 2].sort().values, perm[n_groups // 2 :].sort().values


@session_memo
def score_rows(states: TokenStates, split: tuple, *, ridge: float = CONFIG["ridge"], **meta) -> list[dict]:
    """Linearity scores of every block of one model, as rows of dicts.

    states: from :func:`~lablib.linearity.models.minilm_states` or ``othello_states``; split: two
    tensors of group ids (:func:`halves`). Each row: ``meta`` (e.g. model, weights, seed), ``block``
    (1..L), ``measure`` ("raw" or "residual removed"), ``fit`` ("in-sample": the paper's score on all
    tokens; "held-out": the mean of fitting on one half and scoring on the other, both ways, the two
    in ``score_ab`` and ``score_ba``), ``score``, ``n_tokens``, and ``update_share``
    (:func:`~lablib.linearity.update_share`: the centred norm of ``Y - X`` over that of ``Y``).
    """
    a, b = states.select(split[0]).hidden, states.select(split[1]).hidden
    rows = []
    for block in range(1, states.n_blocks + 1):
        X, Y = states.hidden[block - 1].double(), states.hidden[block].double()
        common = {**meta, "block": block, "n_tokens": X.shape[0], "update_share": update_share(X, Y)}
        for measure, fn in MEASURES.items():
            rows.append({**common, "measure": measure, "fit": "in-sample", "score": fn(X, Y, ridge=ridge)})
            ab = fn(a[block - 1], a[block], ridge=ridge, heldout=(b[block - 1], b[block]))
            ba = fn(b[block - 1], b[block], ridge=ridge, heldout=(a[block - 1], a[block]))
            rows.append({**common, "measure": measure, "fit": "held-out", "score": (ab + ba) / 2,
                         "score_ab": ab, "score_ba": ba})
    return rows


def similarity_agreement(emb: torch.Tensor, ref: torch.Tensor) -> float:
    """Spearman correlation between the pairwise cosine similarities of ``emb`` and of ``ref`` (n, d), over all n(n-1)/2 pairs."""
    from scipy.stats import spearmanr

    if emb.shape != ref.shape or emb.ndim != 2:
        raise ValueError(f"emb and ref must be (n, d) of the same shape; got {tuple(emb.shape)} and {tuple(ref.shape)}")
    iu = torch.triu_indices(emb.shape[0], emb.shape[0], offset=1)

    def sims(e):
        e = torch.nn.functional.normalize(e.double(), dim=1)
        return (e @ e.T)[iu[0], iu[1]].numpy()

    return float(spearmanr(sims(emb), sims(ref)).statistic)


def knn_accuracy(emb: torch.Tensor, labels: torch.Tensor, k: int = CONFIG["knn_k"]) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (cosine; ties to the lowest label) of ``labels`` (n,) from ``emb`` (n, d)."""
    if emb.ndim != 2 or labels.shape != (emb.shape[0],) or not 1 <= k < emb.shape[0]:
        raise ValueError(f"need emb (n, d), labels (n,), 1 <= k < n; got {tuple(emb.shape)}, {tuple(labels.shape)}, k={k}")
    e = torch.nn.functional.normalize(emb.double(), dim=1)
    sims = e @ e.T
    sims.fill_diagonal_(-float("inf"))
    nearest = sims.topk(k, dim=1).indices
    votes = torch.nn.functional.one_hot(labels[nearest], int(labels.max()) + 1).sum(1)
    return float((votes.argmax(1) == labels).double().mean())


def _minilm_metrics(emb: torch.Tensor, ref: torch.Tensor, sentiment: torch.Tensor) -> dict:
    cos = (emb.double() * ref.double()).sum(1)
    return {"cos_to_original": float(cos.mean()), "min_cos_to_original": float(cos.min()),
            "similarity_spearman": similarity_agreement(emb, ref), "knn_sentiment": knn_accuracy(emb, sentiment)}


def minilm_replacement(fit_texts, eval_texts, eval_sentiment, *, ridge: float = CONFIG["ridge"], **meta) -> list[dict]:
    """Each block of the trained MiniLM in turn replaced by the affine map fitted on ``fit_texts``'
    tokens (or skipped), measured on ``eval_texts``. Rows: ``meta``, ``block`` (0 for the intact
    model), ``condition`` ("original", "linear map", "skip"), ``cos_to_original`` (mean over sentences),
    ``min_cos_to_original``, ``similarity_spearman`` (:func:`similarity_agreement`) and ``knn_sentiment``
    (:func:`knn_accuracy`), all against the intact model's embeddings of ``eval_texts``."""
    from lablib.encoder import load_encoder

    _, model = load_encoder()
    sentiment = torch.as_tensor(list(eval_sentiment))
    H = minilm_states(fit_texts).hidden.double()
    ref = minilm_sentence_embeddings(eval_texts)
    rows = [{**meta, "block": 0, "condition": "original", **_minilm_metrics(ref, ref, sentiment)}]
    for block, module in enumerate(minilm_blocks(model), start=1):
        fits = {"linear map": fit_affine(H[block - 1], H[block], ridge=ridge), "skip": AffineMap.identity(H.shape[-1])}
        for condition, fit in fits.items():
            with linear_replacement(module, fit):
                emb = minilm_sentence_embeddings(eval_texts, model)
            rows.append({**meta, "block": block, "condition": condition, **_minilm_metrics(emb, ref, sentiment)})
    return rows


def othello_replacement(gpt, fit_games, eval_games, *, ridge: float = CONFIG["ridge"], **meta) -> list[dict]:
    """Each block of the Othello GPT ``gpt`` in turn replaced by the affine map fitted on ``fit_games``'
    moves (or skipped), measured on ``eval_games`` by :func:`lablib.world.legal_move_metrics`.
    Rows: ``meta``, ``block`` (0 for the intact model), ``condition`` ("original", "linear map",
    "skip"), ``top1_legal``, ``topk_exact``, ``legal_mass``, ``positions``."""
    from lablib.world.data import label_games
    from lablib.world.train import legal_move_metrics

    keys = ("top1_legal", "topk_exact", "legal_mass", "positions")
    H = othello_states(gpt, fit_games).hidden.double()
    labels = label_games(eval_games)
    base = legal_move_metrics(gpt, labels)
    rows = [{**meta, "block": 0, "condition": "original", **{k: base[k] for k in keys}}]
    for block, module in enumerate(othello_blocks(gpt), start=1):
        fits = {"linear map": fit_affine(H[block - 1], H[block], ridge=ridge), "skip": AffineMap.identity(H.shape[-1])}
        for condition, fit in fits.items():
            with linear_replacement(module, fit):
                m = legal_move_metrics(gpt, labels)
            rows.append({**meta, "block": block, "condition": condition, **{k: m[k] for k in keys}})
    return rows


SCORE_KEYS = ("model", "weights", "seed", "block", "measure", "fit")
REPLACEMENT_KEYS = ("model", "direction", "block", "condition")


def max_difference(live: list[dict], shipped: list[dict], value: str = "score") -> float:
    """Largest ``|live - shipped|`` of column ``value`` over the rows of ``live``, matched to ``shipped``
    by their keys (model, weights, seed, block, measure, fit for scores; model, direction, block,
    condition for replacements). Raises ``KeyError`` if a live row has no shipped twin."""
    keys = SCORE_KEYS if "measure" in live[0] else REPLACEMENT_KEYS
    table = {tuple(r.get(k) for k in keys): r for r in shipped}
    worst = 0.0
    for r in live:
        key = tuple(r.get(k) for k in keys)
        if key not in table:
            raise KeyError(f"no shipped row for {dict(zip(keys, key))}")
        worst = max(worst, abs(r[value] - table[key][value]))
    return worst


def score_table(scores: list[dict]):
    """One row per (model, block): the trained model's scores (in-sample and held out, raw and
    residual removed), its update share, and the random-weights control's mean and sd over seeds."""
    import pandas as pd

    frame = pd.DataFrame(scores)
    trained = frame[frame["weights"] == "trained"]
    out = trained.pivot_table(index=["model", "block"], columns=["measure", "fit"], values="score")
    out.columns = [f"{m}, {f}" for m, f in out.columns]
    out["update share"] = trained.groupby(["model", "block"])["update_share"].first()
    rand = frame[(frame["weights"] == "random") & (frame["fit"] == "in-sample")]
    for measure in MEASURES:
        g = rand[rand["measure"] == measure].groupby(["model", "block"])["score"]
        out[f"random, {measure}"] = g.mean()
        out[f"random, {measure} (sd)"] = g.std()
    return out


def replacement_table(rows: list[dict], metrics):
    """One row per (model, block replaced) with, for each metric in ``metrics``: the intact model's
    value, the value with the block replaced by its linear map and with the block skipped (means over
    the two fit/evaluate directions), and half the difference between the directions as ``(+-)``.
    A metric a model does not report is NaN in that model's rows."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    blocks = frame[frame["condition"] != "original"]
    keys = blocks[["model", "block"]].drop_duplicates().sort_values(["model", "block"])
    out = pd.DataFrame(index=pd.MultiIndex.from_frame(keys))
    for metric in metrics:
        known = frame[frame[metric].notna()] if metric in frame else frame.iloc[:0]
        intact = known[known["condition"] == "original"].groupby("model")[metric].mean()
        g = known[known["condition"] != "original"].groupby(["model", "block", "condition"])[metric]
        mean, half = g.mean(), (g.max() - g.min()) / 2
        out[f"{metric}, intact"] = [intact.get(m, float("nan")) for m, _ in out.index]
        for condition in CONDITIONS:
            out[f"{metric}, {condition}"] = [mean.get((m, b, condition), float("nan")) for m, b in out.index]
            out[f"{metric}, {condition} (+-)"] = [half.get((m, b, condition), float("nan")) for m, b in out.index]
    return out


def run(config: dict | None = None, progress: bool = True) -> dict:
    """The whole experiment (see the module docstring); a JSON-ready dict with config, commit and rows."""
    import transformers

    from lablib.encoder import load_sentences
    from lablib.probes.linear import random_init_model
    from lablib.world.data import heldout_games
    from lablib.world.train import load_checkpoint

    cfg = {**CONFIG, **(config or {})}
    torch.set_num_threads(1)
    start = time.perf_counter()
    say = print if progress else (lambda *a, **k: None)
    sentences = load_sentences()
    texts, sentiment = list(sentences.texts), list(sentences.sentiment)
    s_split = halves(len(texts), cfg["split_seed"])
    gpt, _ = load_checkpoint()
    games = heldout_games(cfg["n_games"])
    g_split = halves(len(games), cfg["split_seed"])

    scores = []
    scores += score_rows(minilm_states(texts), s_split, ridge=cfg["ridge"], model="MiniLM", weights="trained", seed=None)
    for seed in cfg["random_seeds"]:
        scores += score_rows(minilm_states(texts, random_minilm(seed)), s_split, ridge=cfg["ridge"],
                             model="MiniLM", weights="random", seed=seed)
    say(f"MiniLM scores: {time.perf_counter() - start:.0f} s", flush=True)
    scores += score_rows(othello_states(gpt, games), g_split, ridge=cfg["ridge"], model="Othello GPT",
                         weights="trained", seed=None)
    for seed in cfg["random_seeds"]:
        scores += score_rows(othello_states(random_init_model(gpt, seed), games), g_split, ridge=cfg["ridge"],
                             model="Othello GPT", weights="random", seed=seed)
    say(f"Othello GPT scores: {time.perf_counter() - start:.0f} s", flush=True)

    replacement = []
    for direction, (fit_ids, eval_ids) in {"ab": s_split, "ba": s_split[::-1]}.items():
        replacement += minilm_replacement([texts[i] for i in fit_ids], [texts[i] for i in eval_ids],
                                          [sentiment[i] for i in eval_ids], ridge=cfg["ridge"],
                                          model="MiniLM", direction=direction)
        say(f"MiniLM replacement {direction}: {time.perf_counter() - start:.0f} s", flush=True)
    for direction, (fit_ids, eval_ids) in {"ab": g_split, "ba": g_split[::-1]}.items():
        replacement += othello_replacement(gpt, [games[i] for i in fit_ids], [games[i] for i in eval_ids],
                                           ridge=cfg["ridge"], model="Othello GPT", direction=direction)
        say(f"Othello GPT replacement {direction}: {time.perf_counter() - start:.0f} s", flush=True)
    return {
        "what": "linearity of consecutive layers (Razzhigaev et al. 2024) in all-MiniLM-L6-v2 and the Othello GPT, "
                "and the cost of replacing each block by its fitted affine map",
        "rebuild": REBUILD,
        "config": cfg,
        "data": {"sentences": len(texts), "minilm_tokens": scores[0]["n_tokens"], "games": len(games),
                 "othello_moves": next(r["n_tokens"] for r in scores if r["model"] == "Othello GPT")},
        "commit": git_commit(__file__),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seconds": round(time.perf_counter() - start, 1),
        "scores": scores,
        "replacement": replacement,
    }


def load_results(path: str | Path = RESULTS) -> dict:
    """The shipped results (see the module docstring for the command that rebuilds them)."""
    return read_results(path, REBUILD)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
