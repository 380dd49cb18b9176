"""Interventions: edit the residual stream along a linear probe's directions and see whether the
model's next-move predictions follow the edited board (Li et al. 2023; Nanda et al. 2023).

The world model is causal in the sense that matters if changing the model's *belief* about one
square, and nothing else, changes its predicted legal moves to those of the board with that square
changed. The recipe:

1. a mine/theirs ``LinearProbe`` per layer gives, for square ``s``, directions ``w[s, c]`` whose
   dot products with the residual are the class logits;
2. at a position ``t`` where ``s`` is occupied, the residual at the chosen layer(s) is edited so
   that the probe reads the other owner (``edit_residual``: ``"add"`` moves along
   ``w[s, target] - w[s, current]`` just far enough to flip the probe's argmax with a margin, then
   ``scale`` times that; ``"replace"`` swaps the component in the square's probe subspace for the
   target class's mean component);
3. the model runs on from that layer (``run_with_edits`` calls the blocks directly; only position
   ``t`` is edited, earlier positions are the earlier boards);
4. the engine computes the *true* legal moves of the edited board (square ``s`` flipped,
   same player to move), and the model's predicted legal set is compared with it and with the
   original board's legal set.

Baselines: no intervention, and a random direction with the same norm as the edit at each layer.
Only edits that change the legal set (and leave the player to move a move) are used: the others
cannot tell the three conditions apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from lablib.world.data import MINE, N_MOVES, PAD, PLAYABLE, THEIRS, label_games
from lablib.world.model import GPT
from lablib.world.othello import BLACK, CENTER, N_SQUARES, OthelloState

from lablib.probes.linear import LinearProbe

__all__ = [
    "run_from_layer",
    "run_with_edits",
    "edit_residual",
    "class_means",
    "Edit",
    "candidate_edits",
    "edited_legal",
    "intervention_experiment",
    "single_edit",
    "EDIT_METHODS",
]

EDIT_METHODS = ("add", "replace")


def _check_layer(model: GPT, layer: int) -> None:
    if not isinstance(layer, int) or not 0 <= layer <= model.cfg.n_layer:
        raise ValueError(f"layer must be an int in 0..{model.cfg.n_layer}; got {layer!r}")


def _check_probes(model: GPT, probes: dict) -> None:
    """``probes`` must map at least one valid layer to a ``LinearProbe``."""
    if not probes:
        raise ValueError("probes must map at least one layer to a LinearProbe")
    for l, p in probes.items():
        _check_layer(model, l)
        if not isinstance(p, LinearProbe):
            raise ValueError(f"probes[{l}] must be a LinearProbe; got {type(p).__name__}")


@torch.no_grad()
def run_from_layer(model: GPT, resid: torch.Tensor, layer: int) -> torch.Tensor:
    """Logits from a residual stream ``resid`` (B, T, d) taken *after* ``layer`` blocks
    (``layer = 0``: the embeddings): runs ``blocks[layer:]``, the final LayerNorm and the unembedding.
    ``run_from_layer(model, residuals[l], l)`` reproduces ``model(tokens)``."""
    _check_layer(model, layer)
    if resid.ndim != 3 or resid.shape[-1] != model.cfg.d_model:
        raise ValueError(f"resid must be (B, T, {model.cfg.d_model}); got {tuple(resid.shape)}")
    x = resid
    for block in model.blocks[layer:]:
        x = block(x)
    return model.unembed(model.ln_final(x))


@torch.no_grad()
def run_with_edits(model: GPT, tokens: torch.Tensor, positions: torch.Tensor, edits: dict) -> torch.Tensor:
    """Logits (B, T, vocab) of ``tokens`` (B, T) with the residual of sequence ``b`` at position
    ``positions[b]`` replaced, after each layer ``l`` in ``edits``, by ``edits[l](r)`` (``r`` the
    (B, d) residuals there, after the earlier edits have propagated)."""
    if tokens.ndim != 2 or positions.shape != (len(tokens),):
        raise ValueError(f"tokens must be (B, T) and positions (B,); got {tuple(tokens.shape)}, {tuple(positions.shape)}")
    for l in edits:
        _check_layer(model, l)
    B, T = tokens.shape
    if (positions < 0).any() or (positions >= T).any():
        raise ValueError(f"positions must lie in 0..{T - 1}")
    model.eval()
    x = model.tok_emb(tokens) + model.pos_emb(torch.arange(T))
    rows = torch.arange(B)
    for l in range(model.cfg.n_layer + 1):
        if l in edits:
            x = x.clone()
            x[rows, positions] = edits[l](x[rows, positions])
        if l < model.cfg.n_layer:
            x = model.blocks[l](x)
    return model.unembed(model.ln_final(x))


def class_means(acts: torch.Tensor, labels: torch.Tensor, n_classes: int = 3) -> torch.Tensor:
    """(S, C, d) mean activation over the examples where output ``s`` has class ``c`` (``acts``
    (P, d), ``labels`` (P, S)); the overall mean where a class never occurs."""
    if acts.ndim != 2 or labels.ndim != 2 or len(acts) != len(labels):
        raise ValueError(f"acts (P, d) and labels (P, S) expected; got {tuple(acts.shape)}, {tuple(labels.shape)}")
    onehot = torch.nn.functional.one_hot(labels.long(), n_classes).float()  # (P, S, C)
    counts = onehot.sum(0)  # (S, C)
    sums = torch.einsum("psc,pd->scd", onehot, acts.float())
    means = sums / counts.clamp(min=1)[..., None]
    return torch.where(counts[..., None] > 0, means, acts.float().mean(0))


def edit_residual(r: torch.Tensor, probe: LinearProbe, square: torch.Tensor, current: torch.Tensor,
                  target: torch.Tensor, method: str = "add", scale: float = 1.0, margin: float = 1.0,
                  means: torch.Tensor | None = None) -> torch.Tensor:
    """The edited residuals (B, d) so that ``probe`` reads class ``target[b]`` at ``square[b]``.

    * ``"add"``: ``r + a * u``, ``u`` the unit vector along ``w[s, target] - w[s, current]`` and
      ``a`` the smallest step making the target logit beat every other class by ``margin``, times
      ``scale`` (``a >= 0``; no step where the probe already reads the target with that margin).
    * ``"replace"``: ``r - Q Q^T r + Q Q^T means[s, target]`` with ``Q`` an orthonormal basis of the
      span of the square's logit differences ``w[s, c] - w[s, 0]`` (the probe's whole view of the
      square), then ``scale`` applied to the change.
    """
    if method not in EDIT_METHODS:
        raise ValueError(f"method must be one of {EDIT_METHODS}; got {method!r}")
    if r.ndim != 2 or r.shape[1] != probe.weight.shape[2]:
        raise ValueError(f"r must be (B, {probe.weight.shape[2]}); got {tuple(r.shape)}")
    if scale < 0:
        raise ValueError(f"scale must be >= 0; got {scale}")
    W = probe.weight[square]  # (B, C, d)
    if method == "add":
        wt = W[torch.arange(len(r)), target]
        u = wt - W[torch.arange(len(r)), current]
        u = u / u.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        logits = torch.einsum("bd,bcd->bc", r, W) + probe.bias[square]
        gap = logits.gather(1, target[:, None]) - logits  # (B, C): l_t - l_j
        slope = torch.einsum("bd,bcd->bc", u, wt[:, None] - W)  # d(l_t - l_j)/da
        need = torch.where(slope > 1e-9, (margin - gap) / slope.clamp(min=1e-9), torch.zeros_like(gap))
        need.scatter_(1, target[:, None], 0.0)
        a = need.max(1).values.clamp(min=0)
        return r + (scale * a)[:, None] * u
    if means is None:
        raise ValueError("method 'replace' needs means (S, C, d) from class_means")
    D = W[:, 1:] - W[:, :1]  # (B, C-1, d)
    Q, _ = torch.linalg.qr(D.transpose(1, 2))  # (B, d, C-1)
    mu = means[square, target]  # (B, d)
    change = torch.einsum("bdk,bk->bd", Q, torch.einsum("bdk,bd->bk", Q, mu - r))
    return r + scale * change


# -- the experiment ---------------------------------------------------------------------------------
@dataclass
class Edit:
    game: int
    position: int  # position t (after move t); the model's prediction there is move t + 1
    square: int
    current: int  # MINE or THEIRS
    target: int
    legal_orig: np.ndarray  # (N_MOVES,) bool
    legal_edit: np.ndarray  # (N_MOVES,) bool


def edited_legal(board_mt: np.ndarray, to_move: int, square: int, target: int) -> np.ndarray:
    """(N_MOVES,) legal-move mask (token order) of the board ``board_mt`` (N_SQUARES,) in the
    mine/theirs/empty classes, relative to ``to_move``, with ``square`` set to class ``target``;
    the same player moves (computed with the engine, ``OthelloState.from_board``)."""
    b = np.asarray(board_mt).copy()
    if b.shape != (N_SQUARES,):
        raise ValueError(f"board_mt must have {N_SQUARES} entries; got shape {b.shape}")
    b[square] = target
    mine_sign = 1 if to_move == BLACK else -1  # +1 black, -1 white in from_board
    arr = np.where(b == MINE, mine_sign, np.where(b == THEIRS, -mine_sign, 0))
    moves = OthelloState.from_board(arr, to_move).legal_moves()
    mask = np.zeros(N_SQUARES, dtype=bool)
    mask[moves] = True
    return mask[list(PLAYABLE)]


def candidate_edits(games: list[list[int]], n_edits: int, seed: int = 0, include_center: bool = True,
                    to_empty: bool = False) -> tuple[list[Edit], dict]:
    """Up to ``n_edits`` edits, at most one per position, drawn at random among positions that have
    a next move: flip an occupied square's owner (``to_empty``: empty a non-centre occupied square
    instead), keeping those whose edited board changes the legal set and leaves the player a move.
    Returns the edits and the counts of candidates seen / kept."""
    if n_edits < 1:
        raise ValueError(f"n_edits must be >= 1; got {n_edits}")
    labels = label_games(games)
    rng = random.Random(seed)
    slots = [(g, t) for g, t in zip(*[v.tolist() for v in labels.has_next.nonzero(as_tuple=True)])]
    rng.shuffle(slots)
    edits, tried = [], 0
    for g, t in slots:
        board = labels.board_mt[g, t].numpy()
        occ = [s for s in range(N_SQUARES) if board[s] != 0 and (include_center or s not in CENTER)]
        if to_empty:
            occ = [s for s in occ if s not in CENTER]
        rng.shuffle(occ)
        legal = labels.legal[g, t].numpy()
        for s in occ:
            tried += 1
            cur = int(board[s])
            tgt = 0 if to_empty else (THEIRS if cur == MINE else MINE)
            le = edited_legal(board, int(labels.to_move[g, t]), s, tgt)
            if le.any() and (le != legal).any():
                edits.append(Edit(g, t, s, cur, tgt, legal.copy(), le))
                break
        if len(edits) >= n_edits:
            break
    return edits, dict(positions_seen=len(slots), squares_tried=tried, kept=len(edits))


def _set_metrics(probs: torch.Tensor, lo: torch.Tensor, le: torch.Tensor, threshold: float) -> dict:
    """Per-edit metrics of next-move probabilities (B, N_MOVES) against the original / edited legal sets."""
    k = le.sum(-1)
    ranks = probs.argsort(-1, descending=True).argsort(-1)
    topk = ranks < k[:, None]
    topo = ranks < lo.sum(-1)[:, None]
    pred = probs > threshold
    err_e = (pred != le).sum(-1)
    err_o = (pred != lo).sum(-1)
    return dict(
        exact_topk=(topk == le).all(-1).float(),  # top-|L_edit| moves are exactly the edited legal set
        exact_topk_orig=(topo == lo).all(-1).float(),  # top-|L_orig| moves are exactly the original legal set
        errors_topk=(topk != le).sum(-1).float(),  # Li et al.'s error count (false pos + false neg)
        exact_thr=(pred == le).all(-1).float(),
        better=(err_e < err_o).float(),  # thresholded set closer to the edited legal set than the original
        legal_mass_edit=(probs * le).sum(-1),
        legal_mass_orig=(probs * lo).sum(-1),
    )


@torch.no_grad()
def intervention_experiment(model: GPT, probes: dict, games: list[list[int]], n_edits: int = 300,
                            method: str = "add", scale: float = 1.0, margin: float = 1.0,
                            means: dict | None = None, threshold: float = 0.05, seed: int = 0,
                            include_center: bool = True, to_empty: bool = False, batch_size: int = 256) -> dict:
    """Edit the residual after every layer in ``probes`` ({layer: mine/theirs LinearProbe}) at
    ``n_edits`` random (position, square) edits of ``games`` (held out from the probes' training),
    and score the model's next-move distribution in three conditions: ``none`` (no edit),
    ``probe`` (the edit), ``random`` (a random direction with the norm of the edit, per layer).

    Returns {"n": edits used, "counts": candidate counts, "conditions": {condition: {metric:
    mean}}}; metrics (see ``_set_metrics``): ``exact_topk``, ``errors_topk``, ``exact_thr``,
    ``better`` (the thresholded prediction is closer to the edited legal set than to the original
    one), ``legal_mass_edit`` / ``legal_mass_orig``, and for the edited conditions ``follow`` (the
    fraction of the moves whose legality the edit changes whose log-probability moved the way the
    edited board says, relative to no edit; 0.5 is chance); plus ``probe_flip_rate`` (the probe reads the
    target after the edit, at the first edited layer).
    """
    _check_probes(model, probes)
    if method == "replace" and (means is None or set(means) < set(probes)):
        raise ValueError("method 'replace' needs means={layer: class_means(...)} for every edited layer")
    if method not in EDIT_METHODS:
        raise ValueError(f"method must be one of {EDIT_METHODS}; got {method!r}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1); got {threshold}")
    edits, counts = candidate_edits(games, n_edits, seed, include_center, to_empty)
    if not edits:
        raise ValueError("no usable edit in these games")
    labels = label_games(games, model.cfg.block_size)
    gen = torch.Generator().manual_seed(seed + 1)
    sums: dict = {}
    flips = 0.0
    first = min(probes)
    for i in range(0, len(edits), batch_size):
        chunk = edits[i : i + batch_size]
        tok = labels.tokens[[e.game for e in chunk]]
        pos = torch.tensor([e.position for e in chunk])
        sq = torch.tensor([e.square for e in chunk])
        cur = torch.tensor([e.current for e in chunk])
        tgt = torch.tensor([e.target for e in chunk])
        lo = torch.from_numpy(np.stack([e.legal_orig for e in chunk]))
        le = torch.from_numpy(np.stack([e.legal_edit for e in chunk]))
        norms = {}

        def probe_edit(l):
            def f(r):
                new = edit_residual(r, probes[l], sq, cur, tgt, method, scale, margin,
                                    None if means is None else means.get(l))
                norms[l] = (new - r).norm(dim=-1)
                return new
            return f

        def random_edit(l):
            def f(r):
                v = torch.randn(r.shape, generator=gen)
                return r + v / v.norm(dim=-1, keepdim=True) * norms[l][:, None]
            return f

        rows = torch.arange(len(chunk))
        out = {}
        out["none"] = model(tok)[rows, pos, :PAD].softmax(-1)
        out["probe"] = run_with_edits(model, tok, pos, {l: probe_edit(l) for l in probes})[rows, pos, :PAD].softmax(-1)
        out["random"] = run_with_edits(model, tok, pos, {l: random_edit(l) for l in probes})[rows, pos, :PAD].softmax(-1)
        changed = lo != le  # the moves whose legality the edit changes
        for cond in ("probe", "random"):
            # the model's log-probability of each changed move moves the way the edited board says
            step = (out[cond].clamp(min=1e-12).log() - out["none"].clamp(min=1e-12).log()) * (le.float() - lo.float())
            follow = ((step > 0) & changed).sum(-1).float() / changed.sum(-1)
            sums.setdefault(cond, {}).setdefault("follow", 0.0)
            sums[cond]["follow"] += follow.sum().item()
        # did the edit flip the probe's reading at the first edited layer?
        _, res = model(tok, return_residuals=True)
        r = res[first][rows, pos]
        new = edit_residual(r, probes[first], sq, cur, tgt, method, scale, margin,
                            None if means is None else means.get(first))
        flips += (probes[first].predict(new)[rows, sq] == tgt).float().sum().item()
        for cond, probs in out.items():
            for k, v in _set_metrics(probs, lo, le, threshold).items():
                sums.setdefault(cond, {}).setdefault(k, 0.0)
                sums[cond][k] += v.sum().item()
    n = len(edits)
    conds = {c: {k: v / n for k, v in m.items()} for c, m in sums.items()}
    return dict(n=n, counts=counts, probe_flip_rate=flips / n, conditions=conds)


@torch.no_grad()
def single_edit(model: GPT, probes: dict, game: list[int], position: int, square: int,
                scale: float = 3.0, margin: float = 1.0) -> dict:
    """One edit, for looking at: after move ``position`` of ``game`` (0-based: the board after
    ``position + 1`` moves), flip the owner of the occupied ``square`` along each probe's "add"
    direction at every layer in ``probes`` ({layer: mine/theirs LinearProbe}).

    Returns numpy arrays over the N_MOVES move tokens: ``probs_before`` / ``probs_after`` (the
    model's next-move distribution without / with the edit), ``legal_before`` / ``legal_after``
    (the engine's legal moves of the true and the edited board), and ``board_mt`` (N_SQUARES,)
    the true board in mine/theirs classes, ``current`` / ``target`` the square's class before / after.
    (tests/test_probes.py: over 10 random edits on held-out games, all 19 moves whose legality an
    edit changed moved the edited board's way.)
    """
    labels = label_games([game], model.cfg.block_size)
    if not 0 <= position < len(game) - 1:
        raise ValueError(f"position must be in 0..{len(game) - 2} (a move must follow it); got {position}")
    board = labels.board_mt[0, position].numpy()
    if not 0 <= square < N_SQUARES or board[square] == 0:
        raise ValueError(f"square {square} is empty or off the board after move {position + 1}; pick an occupied square")
    _check_probes(model, probes)
    current = int(board[square])
    target = THEIRS if current == MINE else MINE
    tok = labels.tokens[:1]
    pos = torch.tensor([position])
    sq, cur, tgt = torch.tensor([square]), torch.tensor([current]), torch.tensor([target])
    edits = {l: (lambda r, p=p: edit_residual(r, p, sq, cur, tgt, "add", scale, margin)) for l, p in probes.items()}
    before = model(tok)[0, position, :PAD].softmax(-1)
    after = run_with_edits(model, tok, pos, edits)[0, position, :PAD].softmax(-1)
    return dict(probs_before=before.numpy(), probs_after=after.numpy(), legal_before=labels.legal[0, position].numpy(),
                legal_after=edited_legal(board, int(labels.to_move[0, position]), square, target),
                board_mt=board, current=current, target=target)
