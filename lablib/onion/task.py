"""The repeat task: read a sequence of random tokens, then write it out again.

A batch is a pair ``(tokens, lengths)``:

* ``tokens``: ``int64`` tensor of shape ``(B, T)`` with ``T = max_len``; row ``b`` holds its
  sequence in ``tokens[b, :lengths[b]]`` and :data:`PAD` after it.
* ``lengths``: ``int64`` tensor of shape ``(B,)`` with values in ``1..T``.

Content tokens are ``0 .. vocab - 1``. Three special ids sit just above them (they depend on the
vocabulary size, so they are functions rather than constants): ``sos_id(vocab)`` starts the output
phase, ``eos_id(vocab)`` ends it, ``pad_id(vocab)`` fills unused slots.

Train / held-out split: sequences of length >= :data:`SPLIT_MIN_LEN` are split by a fixed hash
(:func:`is_heldout`, about one in :data:`SPLIT_MODULUS`); the training sampler never emits a
held-out sequence. Shorter sequences are too few to split (30 tokens give only 900 sequences of
length 2), so every short sequence may appear in training.
"""

from __future__ import annotations

import torch

__all__ = [
    "DEFAULT_VOCAB",
    "DEFAULT_MAX_LEN",
    "SPLIT_MIN_LEN",
    "SPLIT_MODULUS",
    "sos_id",
    "eos_id",
    "pad_id",
    "check_tokens",
    "is_heldout",
    "sample_batch",
    "fixed_length_batch",
    "decoder_targets",
]

DEFAULT_VOCAB = 30
DEFAULT_MAX_LEN = 9
SPLIT_MIN_LEN = 4
SPLIT_MODULUS = 10


def sos_id(vocab: int) -> int:
    """Id of the start-of-output token (fed to the decoder first)."""
    return vocab


def eos_id(vocab: int) -> int:
    """Id of the end-of-output token (the last target of the output phase)."""
    return vocab + 1


def pad_id(vocab: int) -> int:
    """Id used to fill ``tokens`` after a sequence's end."""
    return vocab + 2


def _check_int(x, name: str, lo: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise ValueError(f"{name} must be an int; got {type(x).__name__}")
    if x < lo:
        raise ValueError(f"{name} must be >= {lo}; got {x}")
    return x


def check_tokens(tokens, lengths=None, *, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a batch and return ``(tokens, lengths)``.

    ``tokens`` must be an integer tensor of shape ``(B, T)``; ``lengths`` an integer tensor of
    shape ``(B,)`` with values in ``1..T`` (``None`` means every row is full, length ``T``). Every
    token inside a sequence must be a content token ``0..vocab-1``; slots after the end are ignored.
    Raises ``ValueError`` (``TypeError`` for non-tensors) naming the problem.
    """
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"tokens must be a torch.Tensor of shape (B, T); got {type(tokens).__name__}")
    if tokens.ndim != 2:
        raise ValueError(f"tokens must have shape (B, T); got shape {tuple(tokens.shape)}")
    if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"tokens must be an integer tensor (torch.long); got dtype {tokens.dtype}")
    B, T = tokens.shape
    if B == 0 or T == 0:
        raise ValueError(f"tokens must be non-empty; got shape {tuple(tokens.shape)}")
    tokens = tokens.long()
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.long, device=tokens.device)
    else:
        if not isinstance(lengths, torch.Tensor):
            raise TypeError(f"lengths must be a torch.Tensor of shape (B,); got {type(lengths).__name__}")
        if lengths.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},) to match tokens {tuple(tokens.shape)}; got {tuple(lengths.shape)}")
        if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be an integer tensor; got dtype {lengths.dtype}")
        lengths = lengths.long()
        if (lengths < 1).any() or (lengths > T).any():
            raise ValueError(f"lengths must lie in 1..{T}; got min {lengths.min().item()}, max {lengths.max().item()}")
    inside = torch.arange(T, device=tokens.device)[None, :] < lengths[:, None]
    bad = inside & ((tokens < 0) | (tokens >= vocab))
    if bad.any():
        b, t = bad.nonzero()[0].tolist()
        raise ValueError(
            f"tokens must be content tokens in 0..{vocab - 1} inside each sequence; "
            f"tokens[{b}, {t}] = {tokens[b, t].item()}"
        )
    return tokens, lengths


def is_heldout(tokens: torch.Tensor, lengths: torch.Tensor, vocab: int = DEFAULT_VOCAB) -> torch.Tensor:
    """Boolean ``(B,)``: which sequences belong to the held-out split (a fixed hash of the content).

    Only sequences of length >= ``SPLIT_MIN_LEN`` can be held out.
    """
    tokens, lengths = check_tokens(tokens, lengths, vocab=vocab)
    T = tokens.shape[1]
    inside = torch.arange(T)[None, :] < lengths[:, None]
    # a polynomial hash mod a prime, with position-dependent multipliers; deterministic everywhere
    mult = torch.tensor([(7919 * (t + 1) ** 2 + 104729 * (t + 3)) % 1_000_003 for t in range(T)], dtype=torch.long)
    h = ((tokens + 1) * mult[None, :] * inside).sum(1) + 31 * lengths
    h = (h * 2654435761) % 4_294_967_291
    return (h % SPLIT_MODULUS == 0) & (lengths >= SPLIT_MIN_LEN)


def sample_batch(
    batch_size: int,
    *,
    vocab: int = DEFAULT_VOCAB,
    max_len: int = DEFAULT_MAX_LEN,
    min_len: int = 1,
    split: str = "train",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences of uniformly random length in ``min_len..max_len`` and i.i.d. uniform tokens.

    Returns ``tokens`` ``(batch_size, max_len)`` (``PAD`` after each end) and ``lengths``
    ``(batch_size,)``. ``split="train"`` never returns a held-out sequence; ``split="heldout"``
    returns only held-out ones (so then ``min_len`` must be >= ``SPLIT_MIN_LEN``); ``split="any"``
    does not filter.
    """
    _check_int(batch_size, "batch_size", 1)
    _check_int(vocab, "vocab", 2)
    _check_int(max_len, "max_len", 1)
    _check_int(min_len, "min_len", 1)
    if min_len > max_len:
        raise ValueError(f"min_len must be <= max_len; got min_len={min_len}, max_len={max_len}")
    if split not in ("train", "heldout", "any"):
        raise ValueError(f"split must be 'train', 'heldout' or 'any'; got {split!r}")
    if split == "heldout" and min_len < SPLIT_MIN_LEN:
        raise ValueError(f"held-out sequences have length >= {SPLIT_MIN_LEN}; got min_len={min_len}")
    out_tok, out_len, have = [], [], 0
    while have < batch_size:
        n = 2 * (batch_size - have) + 16 if split != "heldout" else 12 * (batch_size - have) + 64
        lengths = torch.randint(min_len, max_len + 1, (n,), generator=generator)
        tokens = torch.randint(0, vocab, (n, max_len), generator=generator)
        tokens[torch.arange(max_len)[None, :] >= lengths[:, None]] = pad_id(vocab)
        if split != "any":
            held = is_heldout(tokens, lengths, vocab)
            keep = held if split == "heldout" else ~held
            tokens, lengths = tokens[keep], lengths[keep]
        out_tok.append(tokens)
        out_len.append(lengths)
        have += len(lengths)
    return torch.cat(out_tok)[:batch_size], torch.cat(out_len)[:batch_size]


def fixed_length_batch(
    n: int,
    length: int = DEFAULT_MAX_LEN,
    *,
    vocab: int = DEFAULT_VOCAB,
    split: str = "heldout",
    seed: int = 0,
) -> torch.Tensor:
    """``n`` sequences, all of length ``length``: an ``int64`` tensor of shape ``(n, length)``.

    The analysis works on one length at a time, so that "position i" means the same thing in
    every row. Default: held-out sequences (never seen in training), from a fixed ``seed``.
    """
    _check_int(n, "n", 1)
    _check_int(length, "length", 1)
    g = torch.Generator().manual_seed(seed)
    tokens, _ = sample_batch(n, vocab=vocab, max_len=length, min_len=length, split=split, generator=g)
    return tokens


def decoder_targets(tokens: torch.Tensor, lengths: torch.Tensor, vocab: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forcing inputs and targets for the output phase.

    Returns ``(dec_in, dec_target, mask)``, each ``(B, T + 1)``:
    ``dec_in = [SOS, x_1, ..., x_T]``, ``dec_target = [x_1, ..., x_L, EOS, ...]`` and ``mask``
    marks the ``L + 1`` target slots that count (the sequence and its EOS).
    """
    tokens, lengths = check_tokens(tokens, lengths, vocab=vocab)
    B, T = tokens.shape
    sos = torch.full((B, 1), sos_id(vocab), dtype=torch.long)
    inside = torch.arange(T)[None, :] < lengths[:, None]
    clean = torch.where(inside, tokens, torch.full_like(tokens, pad_id(vocab)))
    dec_in = torch.cat([sos, clean], 1)
    dec_target = torch.cat([clean, torch.full((B, 1), pad_id(vocab), dtype=torch.long)], 1)
    dec_target[torch.arange(B), lengths] = eos_id(vocab)
    mask = torch.arange(T + 1)[None, :] <= lengths[:, None]
    return dec_in, dec_target, mask
