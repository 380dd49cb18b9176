"""How close a linearized model is to its teacher, layer by layer and on the model's own task.

A *batch* is what the model takes: a (B, T) token tensor for the GPT, a tokenizer output (dict with
``input_ids`` and ``attention_mask``) for BERT.

* :func:`layer_metrics`: per attention layer, fed the teacher's hidden states (teacher-forced),
  the KL divergence KL(softmax || linearized) of the attention weights and the cosine of the
  per-head outputs with the teacher's; and, running the linearized model on its own, the cosine
  of each block's output token states with the teacher's (where errors compound).
* :func:`othello_metrics`: :func:`lablib.world.legal_move_metrics` on held-out games, in folds of
  games, with the standard error over folds.
* :func:`minilm_metrics`: sentence embeddings' cosine to the teacher's, and the accuracy of a
  sentiment probe fitted on the teacher's embeddings (chapter t3_02's logistic probe) when it reads
  the linearized model's embeddings.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lablib.linearize.attention import FULL_WINDOW, LinearizedAttention
from lablib.linearize.convert import attention_inputs, attention_layers, is_gpt, linearized_layers

__all__ = ["call", "layer_metrics", "minilm_metrics", "othello_metrics", "teacher_layers", "teacher_reference", "token_mask"]


def call(model: nn.Module, batch, hidden: bool = False):
    """Run ``model`` on one batch; with ``hidden`` return its list of L + 1 hidden states (B, T, d)."""
    if is_gpt(model):
        return model(batch, return_residuals=True)[1] if hidden else model(batch)
    out = model(**batch, output_hidden_states=hidden)
    return list(out.hidden_states) if hidden else out


def token_mask(model: nn.Module, batch) -> torch.Tensor:
    """(B, T) bool: the real tokens of a batch (not padding)."""
    if is_gpt(model):
        from lablib.world.data import PAD

        return batch != PAD
    return batch["attention_mask"].bool()


def teacher_layers(teacher: nn.Module) -> list[LinearizedAttention]:
    """The teacher's attention layers as :class:`LinearizedAttention` with a full window (= softmax)."""
    build = LinearizedAttention.from_gpt if is_gpt(teacher) else LinearizedAttention.from_bert
    return [build(getattr(p, a), window=FULL_WINDOW, feature_map="elu+1") for p, a in attention_layers(teacher)]


@torch.no_grad()
def teacher_reference(teacher: nn.Module, batches: list) -> dict:
    """What :func:`layer_metrics` compares with, computed once: per layer and batch the teacher's
    attention inputs, weights and per-head outputs, its hidden states, and the real-token masks."""
    if not batches:
        raise ValueError("batches must be a non-empty list")
    inputs = attention_inputs(teacher, lambda m: [call(m, b) for b in batches])
    layers = [[(x, allowed, *t_layer.heads(x, allowed)) for x, allowed in per_layer]
              for per_layer, t_layer in zip(inputs, teacher_layers(teacher))]
    return {"batches": batches, "layers": layers, "masks": [token_mask(teacher, b) for b in batches],
            "hidden": [call(teacher, b, hidden=True) for b in batches]}


@torch.no_grad()
def layer_metrics(student: nn.Module, reference: dict) -> list[dict]:
    """Rows ``{"layer", "attention_kl", "head_output_cos", "hidden_cos"}`` for layers 1..L (means over real tokens).

    student: a linearized model; reference: :func:`teacher_reference` of its teacher on some batches.
    ``attention_kl`` is KL(teacher || student) of each query's weights (mean over heads), with the
    student fed the teacher's hidden states; ``head_output_cos`` the cosine of the concatenated
    per-head outputs there; ``hidden_cos`` the cosine of each block's output token states when the
    student runs on its own.
    """
    rows = []
    for i, s_layer in enumerate(linearized_layers(student)):
        kl = cos = n = 0.0
        for (x, allowed, y_t, a_t), real in zip(reference["layers"][i], reference["masks"]):
            y_s, a_s = s_layer.heads(x, allowed)
            row_kl = (a_t * (torch.log(a_t + 1e-12) - torch.log(a_s + 1e-12))).sum(-1).mean(1)  # (B, T)
            row_cos = torch.nn.functional.cosine_similarity(_flat(y_t), _flat(y_s), dim=-1)  # (B, T)
            kl += row_kl[real].sum().item()
            cos += row_cos[real].sum().item()
            n += real.sum().item()
        rows.append({"layer": i + 1, "attention_kl": kl / n, "head_output_cos": cos / n})
    sums = torch.zeros(len(rows), dtype=torch.float64)
    n = 0
    for b, real, ht in zip(reference["batches"], reference["masks"], reference["hidden"]):
        hs = call(student, b, hidden=True)
        for i in range(len(rows)):
            sums[i] += torch.nn.functional.cosine_similarity(hs[i + 1], ht[i + 1], dim=-1)[real].double().sum()
        n += real.sum().item()
    for r, s in zip(rows, sums):
        r["hidden_cos"] = float(s) / n
    return rows


def _flat(y: torch.Tensor) -> torch.Tensor:
    """(B, H, T, D) per-head outputs -> (B, T, H * D)."""
    B, H, T, D = y.shape
    return y.transpose(1, 2).reshape(B, T, H * D)


@torch.no_grad()
def othello_metrics(model: nn.Module, labels, folds: int = 10) -> dict:
    """Legal-move metrics of a GPT on ``labels`` (:func:`lablib.world.data.label_games`), computed
    on ``folds`` consecutive groups of games: the position-weighted mean of each metric (equal to one
    pass over all games) and ``<metric>_se``, the standard error over the folds."""
    from lablib.world.data import GameLabels
    from lablib.world.train import legal_move_metrics

    n = len(labels.tokens)
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= n:
        raise ValueError(f"folds must be an int in [2, {n}]; got {folds!r}")
    edges = [round(n * f / folds) for f in range(folds + 1)]
    parts = []
    for a, b in zip(edges, edges[1:]):
        sub = GameLabels(**{k: (v[a:b] if isinstance(v, torch.Tensor) and v.shape[:1] == (n,) else v)
                            for k, v in vars(labels).items()})
        parts.append(legal_move_metrics(model, sub))
    w = torch.tensor([p["positions"] for p in parts], dtype=torch.float64)
    out = {"positions": int(w.sum())}
    for key in ("top1_legal", "topk_exact", "legal_mass"):
        vals = torch.tensor([p[key] for p in parts], dtype=torch.float64)
        out[key] = float((vals * w).sum() / w.sum())
        out[f"{key}_se"] = float(vals.std() / math.sqrt(folds))
    return out


@torch.no_grad()
def minilm_metrics(model: nn.Module, texts, teacher_embeddings: torch.Tensor, probe, sentiment: torch.Tensor) -> dict:
    """Sentence-embedding metrics of a BERT model on ``texts`` (n strings).

    ``teacher_embeddings`` (n, 384): the teacher's embeddings of the same texts; ``probe``: a
    :class:`lablib.encoder.LogisticProbe` fitted on teacher embeddings of other sentences;
    ``sentiment`` (n,) labels. Returns ``cos_to_teacher`` (mean over sentences) with its standard
    error ``cos_to_teacher_se`` and minimum, and ``sentiment_probe`` (accuracy) with its binomial
    standard error."""
    from lablib.linearity.models import minilm_sentence_embeddings

    emb = minilm_sentence_embeddings(list(texts), model)
    if emb.shape != teacher_embeddings.shape or sentiment.shape != (emb.shape[0],):
        raise ValueError(f"need teacher_embeddings {tuple(emb.shape)} and sentiment ({emb.shape[0]},); got "
                         f"{tuple(teacher_embeddings.shape)} and {tuple(sentiment.shape)}")
    cos = (emb.double() * teacher_embeddings.double()).sum(1)
    acc = probe.accuracy(emb.double(), sentiment)
    return {"cos_to_teacher": float(cos.mean()), "cos_to_teacher_se": float(cos.std() / math.sqrt(len(cos))),
            "min_cos_to_teacher": float(cos.min()), "sentiment_probe": acc,
            "sentiment_probe_se": math.sqrt(acc * (1 - acc) / len(cos)), "sentences": len(cos)}
