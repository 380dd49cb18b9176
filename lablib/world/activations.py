"""Residual-stream activations of held-out games, with board-state labels, ready for probes.

``probe_dataset(model, games)`` runs the model over each game (all its moves, padded) and keeps,
for every real position (position t = just after move t), the residual stream after every layer
and the labels of that position (see ``data.label_games``):

* ``acts``: (n_layer + 1, P, d_model) float32; ``acts[l]`` is the stream after ``l`` blocks;
* ``board_bw`` / ``board_mt``: (P, N_SQUARES) int64 classes, black/white/empty and
  mine/theirs/empty (relative to the player to move next);
* ``legal`` (P, N_MOVES), ``to_move`` (P,), ``game`` and ``position`` (P,) indices.

``linear_probe`` / ``probe_accuracy`` fit a quick multinomial logistic regression (one weight
matrix for all squares, full-batch Adam) to check that a layer encodes the board linearly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lablib.world.data import N_MOVES, label_games
from lablib.world.model import GPT
from lablib.world.othello import N_SQUARES


@dataclass
class ProbeData:
    acts: torch.Tensor  # (n_layer + 1, P, d_model)
    board_bw: torch.Tensor  # (P, N_SQUARES)
    board_mt: torch.Tensor  # (P, N_SQUARES)
    legal: torch.Tensor  # (P, N_MOVES)
    to_move: torch.Tensor  # (P,)
    game: torch.Tensor  # (P,)
    position: torch.Tensor  # (P,)

    def __len__(self) -> int:
        return self.acts.shape[1]

    def labels(self, encoding: str) -> torch.Tensor:
        return {"bw": self.board_bw, "black_white": self.board_bw, "mt": self.board_mt, "mine_theirs": self.board_mt}[encoding]

    def split(self, frac_train: float = 0.8) -> tuple[ProbeData, ProbeData]:
        """Split by game (positions of one game stay together)."""
        n_games = int(self.game.max()) + 1
        cut = int(round(frac_train * n_games))
        tr, te = self.game < cut, self.game >= cut
        pick = lambda m: ProbeData(self.acts[:, m], *(getattr(self, f)[m] for f in
                                   ("board_bw", "board_mt", "legal", "to_move", "game", "position")))
        return pick(tr), pick(te)


@torch.no_grad()
def cache_residuals(model: GPT, tokens: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(n_layer + 1, N, T, d_model) residual streams of a (N, T) token batch."""
    model.eval()
    outs = []
    for i in range(0, len(tokens), batch_size):
        _, res = model(tokens[i : i + batch_size], return_residuals=True)
        outs.append(torch.stack(res))
    return torch.cat(outs, dim=1)


def probe_dataset(model: GPT, games: list[list[int]], batch_size: int = 500) -> ProbeData:
    """Activations after every layer and board labels for every real position of ``games``."""
    labels = label_games(games, max_len=model.cfg.block_size)
    res = cache_residuals(model, labels.tokens, batch_size)  # (L+1, N, T, D)
    v = labels.valid
    game_idx, pos_idx = v.nonzero(as_tuple=True)
    return ProbeData(
        acts=res[:, v],
        board_bw=labels.board_bw[v],
        board_mt=labels.board_mt[v],
        legal=labels.legal[v],
        to_move=labels.to_move[v],
        game=game_idx,
        position=pos_idx,
    )


def linear_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int = 3, steps: int = 300, lr: float = 0.05,
                 weight_decay: float = 1e-4, seed: int = 0) -> torch.nn.Linear:
    """Fit ``Linear(d_model, N_SQUARES * n_classes)`` by full-batch Adam on cross-entropy;
    ``x`` (P, d_model), ``y`` (P, N_SQUARES) class labels."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    probe = torch.nn.Linear(x.shape[1], y.shape[1] * n_classes)
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    xs = (x - mean) / std
    for _ in range(steps):
        logits = probe(xs).view(len(x), y.shape[1], n_classes)
        loss = F.cross_entropy(logits.reshape(-1, n_classes), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    # fold the standardisation into the weights so the probe reads raw activations
    with torch.no_grad():
        probe.weight /= std
        probe.bias -= probe.weight @ mean
    return probe


@torch.no_grad()
def probe_accuracy(probe: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor, n_classes: int = 3,
                   nonempty_only: bool = False) -> float:
    """Fraction of (position, square) labels predicted right; ``nonempty_only`` scores only occupied
    squares (empty is easy: it is read off the move history)."""
    pred = probe(x).view(len(x), y.shape[1], n_classes).argmax(-1)
    ok = pred == y
    if nonempty_only:
        return ok[y != 0].float().mean().item()
    return ok.float().mean().item()


def probe_all_layers(data: ProbeData, encodings=("bw", "mt"), steps: int = 300, frac_train: float = 0.8) -> list[dict]:
    """Train/test a linear probe per layer and encoding; rows of dicts (layer, encoding, accuracies)."""
    train, test = data.split(frac_train)
    rows = []
    for layer in range(data.acts.shape[0]):
        for enc in encodings:
            probe = linear_probe(train.acts[layer], train.labels(enc), steps=steps)
            rows.append(dict(
                layer=layer, encoding=enc,
                train_acc=probe_accuracy(probe, train.acts[layer], train.labels(enc)),
                test_acc=probe_accuracy(probe, test.acts[layer], test.labels(enc)),
                test_acc_nonempty=probe_accuracy(probe, test.acts[layer], test.labels(enc), nonempty_only=True),
            ))
    return rows
