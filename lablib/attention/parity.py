"""Parity with one DeltaNet layer: the models chapter t1_04 trains, and the shipped trained weights.

Parity (is the number of 1s so far odd?) needs a state that flips, which a delta-rule transition
can do only as a reflection, beta = 2. Chapter t1_04 trains two small models on it, with beta
capped at 1 or at 2:

* :class:`DeltaNetParity`, one DeltaNet layer written out parameter by parameter;
* :class:`LayerParity`, the same task through the library layer :class:`lablib.layers.DeltaNet`.

Ten tiny models (a few hundred parameters each) took longer to train than all the rest of the
chapter takes to run (the file records each run's seconds on one thread, :func:`training_seconds`),
so their weights ship in ``results/parity_models.pt`` and the chapter loads them with
:func:`load_parity`. ``retrain=True`` trains them instead, with the same seeds
(``tests/test_parity.py`` checks that retraining reproduces the shipped weights). Rebuild the
file with

    python -m lablib.attention.parity
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from lablib.attention.delta import delta_rule_chunkwise
from lablib.layers import DeltaNet
from lablib.provenance import read_run, save_runs

__all__ = ["DeltaNetParity", "LayerParity", "random_bits", "parity_accuracy", "train_parity", "RUNS", "SHIPPED",
           "REBUILD", "build_model", "train_run", "load_parity", "training_seconds", "train_all"]

SHIPPED = Path(__file__).parent / "results" / "parity_models.pt"
REBUILD = "python -m lablib.attention.parity"


class DeltaNetParity(torch.nn.Module):
    """Embedding -> one DeltaNet layer (one head, D = 8) -> linear readout of 2 logits per position.

    beta_t = beta_max * sigmoid(w . x_t), so beta_max = 1 allows only eigenvalues in [0, 1] and
    beta_max = 2 allows [-1, 1]. bits (B, T) -> logits (B, T, 2).
    """

    def __init__(self, beta_max: float, d: int = 8, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.beta_max = beta_max
        self.embed = torch.nn.Parameter(torch.randn(2, d, generator=g))
        self.qkv = torch.nn.Parameter(torch.randn(3, d, d, generator=g) / d**0.5)
        self.w_beta = torch.nn.Parameter(torch.randn(d, generator=g) / d**0.5)
        self.S0 = torch.nn.Parameter(torch.randn(d, d, generator=g) / d**0.5)
        self.readout = torch.nn.Linear(d, 2)

    def beta(self, bits):
        return self.beta_max * torch.sigmoid(self.embed[bits] @ self.w_beta)

    def forward(self, bits):
        x = self.embed[bits]  # (B, T, d)
        q, k, v = (x @ W for W in self.qkv)
        S0 = self.S0.expand(bits.shape[0], 1, -1, -1)
        o = delta_rule_chunkwise(q[:, None], k[:, None], v[:, None], self.beta(bits)[:, None], initial_state=S0, chunk_size=64)
        return self.readout(o[:, 0])


class LayerParity(torch.nn.Module):
    """Embedding -> lablib.layers.DeltaNet (1 head, d_model 8, no short conv), learned S_0 -> readout. bits (B, T) -> (B, T, 2)."""

    def __init__(self, beta_max: float, d: int = 8):
        super().__init__()
        self.embed = torch.nn.Embedding(2, d)
        self.mixer = DeltaNet(d, n_heads=1, conv_size=0, allow_neg_eigval=beta_max == 2)
        self.S0 = torch.nn.Parameter(torch.randn(1, 1, d, d) / d**0.5)
        self.readout = torch.nn.Linear(d, 2)

    def beta(self, bits):
        beta = torch.sigmoid(self.mixer.b_proj(self.embed(bits)))[..., 0]  # what the layer computes
        return 2 * beta if self.mixer.allow_neg_eigval else beta

    def forward(self, bits):
        y, _ = self.mixer(self.embed(bits), {"attn": self.S0.expand(bits.shape[0], -1, -1, -1)})
        return self.readout(y)


def random_bits(batch: int, T: int, generator: torch.Generator):
    """(bits, parity so far), both (batch, T) int64."""
    bits = torch.randint(0, 2, (batch, T), generator=generator)
    return bits, bits.cumsum(-1) % 2


@torch.no_grad()
def parity_accuracy(model, beta_max, seed, lengths=(32, 64, 128, 256, 512, 1024)) -> list[dict]:
    """Accuracy at the last position on 256 fresh strings of each length (the same strings for every model)."""
    rows = []
    for T in lengths:
        bits, parity = random_bits(256, T, torch.Generator().manual_seed(T))
        accuracy = (model(bits).argmax(-1)[:, -1] == parity[:, -1]).float().mean().item()
        rows.append({"beta in": f"[0, {beta_max:g}]", "seed": seed, "T": T, "accuracy": accuracy})
    return rows


def train_parity(make_model, seed, steps=400, T_train=32, batch=64, lr=1e-2):
    """Adam on random T_train-bit strings, the parity at every position as the target."""
    torch.manual_seed(seed)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    data = torch.Generator().manual_seed(1000 + seed)
    for _ in range(steps):
        bits, parity = random_bits(batch, T_train, data)
        loss = F.cross_entropy(model(bits).reshape(-1, 2), parity.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


# name -> (model kind, beta_max, seed); every run trains with train_parity's defaults.
MODELS = {"written": DeltaNetParity, "layer": LayerParity}
RUNS: dict[str, tuple[str, float, int]] = {
    **{f"written/beta{b:g}/seed{s}": ("written", b, s) for b in (1.0, 2.0) for s in range(3)},
    **{f"layer/beta{b:g}/seed{s}": ("layer", b, s) for b in (1.0, 2.0) for s in range(2)},
}
TRAIN = dict(steps=400, T_train=32, batch=64, lr=1e-2)  # train_parity's arguments for every run, on one thread


def build_model(name: str) -> torch.nn.Module:
    """The untrained model of run ``name``."""
    kind, beta_max, seed = _run(name)
    return DeltaNetParity(beta_max, seed=seed) if kind == "written" else LayerParity(beta_max)


def train_run(name: str) -> torch.nn.Module:
    """Train run ``name`` from scratch on one thread (the shipped weights were made so)."""
    seed = _run(name)[2]
    with _one_thread():
        # torch.manual_seed in train_parity seeds LayerParity's initialization (the layer draws from torch's generator)
        return train_parity(lambda: build_model(name), seed, **TRAIN)


def load_parity(name: str, path: str | Path = SHIPPED, retrain: bool = False) -> torch.nn.Module:
    """The trained model of run ``name``: loaded from the shipped file, or retrained (``retrain=True``)."""
    _run(name)  # an unknown name fails here, before the file is read
    if retrain:
        return train_run(name)
    entry = read_run(path, name, _definition(name), REBUILD)
    model = build_model(name)
    model.load_state_dict(entry["state_dict"])
    return model.eval()


def training_seconds(path: str | Path = SHIPPED) -> dict[str, float]:
    """How long each shipped run took to train (seconds, one thread), as the file records."""
    return {name: entry["seconds"] for name, entry in torch.load(path, weights_only=True)["runs"].items()}


def train_all(out: str | Path = SHIPPED) -> Path:
    """Train every run and write the weights, with each run's definition and the commit, to ``out``."""
    from tqdm.auto import tqdm

    runs = {}
    for name in tqdm(RUNS, desc="parity models"):
        start = time.perf_counter()
        model = train_run(name)
        runs[name] = {"definition": _definition(name), "state_dict": model.state_dict(),
                      "seconds": time.perf_counter() - start}
    return save_runs(out, runs, __file__, REBUILD)


def _run(name: str) -> tuple[str, float, int]:
    if name not in RUNS:
        raise KeyError(f"unknown parity run {name!r}; choose one of {sorted(RUNS)}")
    return RUNS[name]


def _definition(name: str) -> str:
    kind, beta_max, seed = _run(name)
    return repr({"model": MODELS[kind].__name__, "beta_max": beta_max, "seed": seed, "train": TRAIN, "threads": 1})


@contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="train chapter t1_04's parity models and ship them")
    parser.add_argument("--out", type=Path, default=SHIPPED)
    print(f"wrote {train_all(parser.parse_args().out)}")
