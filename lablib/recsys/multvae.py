"""Mult-VAE (Liang, Krishnan, Hoffman and Jebara 2018, "Variational Autoencoders for Collaborative Filtering").

A user's item set x (n_items,) is L2-normalized, dropped out (p = 0.5) and encoded by an MLP
n_items -> hidden -> 2 * latent (tanh) into q(z | x) = N(mu, diag(sigma^2)); the decoder
latent -> hidden -> n_items (tanh) gives logits whose softmax is the multinomial pi(z). Training
maximizes the annealed ELBO per user,

    sum_i x_i log pi_i(z)  -  beta * KL(q(z | x) || N(0, I)),   z ~ q (one sample, reparameterized),

with beta raised linearly from 0 to ``anneal_cap`` over ``anneal_steps`` updates (the paper's
KL annealing), Adam, and the epoch kept that scores best on the validation users (NDCG@100).
At prediction time the dropout is off and z = mu.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lablib.recsys._checks import as_dense
from lablib.recsys.metrics import ndcg_at_k

__all__ = ["MultVAE", "MultVAEConfig", "train_multvae"]


@dataclass(frozen=True)
class MultVAEConfig:
    """Training settings. The paper: hidden 600, latent 200, batch 500, lr 1e-3, cap 0.2, 200 epochs (ML-20M)."""

    hidden: int = 600
    latent: int = 200
    dropout: float = 0.5
    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    anneal_cap: float = 0.2
    anneal_steps: int | None = None  # None: reach the cap at 80% of all updates
    seed: int = 0


class MultVAE(nn.Module):
    """Encoder n_items -> hidden -> 2 latent, decoder latent -> hidden -> n_items; ``forward`` gives logits."""

    def __init__(self, n_items: int, hidden: int = 600, latent: int = 200, dropout: float = 0.5):
        super().__init__()
        if n_items < 2 or hidden < 1 or latent < 1:
            raise ValueError(f"need n_items >= 2, hidden >= 1, latent >= 1; got {n_items}, {hidden}, {latent}")
        self.n_items, self.latent = n_items, latent
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Sequential(nn.Linear(n_items, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, n_items))
        for layer in (*self.encoder, *self.decoder):
            if isinstance(layer, nn.Linear):  # Xavier weights, small normal biases, as in the paper's code
                nn.init.xavier_uniform_(layer.weight)
                nn.init.normal_(layer.bias, std=0.001)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (batch, n_items) float -> (logits (batch, n_items), mu (batch, latent), logvar (batch, latent))."""
        if x.ndim != 2 or x.shape[1] != self.n_items:
            raise ValueError(f"x must be (batch, {self.n_items}); got shape {tuple(x.shape)}")
        h = self.drop(nn.functional.normalize(x, dim=1))
        mu, logvar = self.encoder(h).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar

    @torch.no_grad()
    def score(self, X_in) -> np.ndarray:
        """Scores (n_users, n_items), float64 logits, for fed-in rows X_in (n_users, n_items); eval mode."""
        was = self.training
        self.eval()
        logits = self(torch.as_tensor(as_dense(X_in, "X_in", self.n_items), dtype=torch.float32))[0]
        self.train(was)
        return logits.double().numpy()


def _loss(model: MultVAE, x: torch.Tensor, beta: float) -> torch.Tensor:
    logits, mu, logvar = model(x)
    nll = -(torch.log_softmax(logits, dim=1) * x).sum(dim=1).mean()
    kl = 0.5 * (torch.exp(logvar) + mu**2 - 1 - logvar).sum(dim=1).mean()
    return nll + beta * kl


def train_multvae(train, val_in, val_out, config: MultVAEConfig = MultVAEConfig(), *, progress: bool = True):
    """Train a Mult-VAE on ``train`` (n_users, n_items) and keep the epoch with the best validation NDCG@100.

    ``val_in``/``val_out`` (n_val, n_items): validation users' fed-in and held-out items.
    Returns ``(model, history)``, history a list of dicts (epoch, beta, loss, val NDCG@100).
    Seeded by ``config.seed`` (torch and the batch order).
    """
    from tqdm.auto import tqdm

    X = torch.as_tensor(as_dense(train, "train"), dtype=torch.float32)
    val_in, val_out = as_dense(val_in, "val_in", X.shape[1]), as_dense(val_out, "val_out", X.shape[1])
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = MultVAE(X.shape[1], config.hidden, config.latent, config.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    batches = -(-X.shape[0] // config.batch_size)
    anneal_steps = config.anneal_steps or max(1, int(0.8 * config.epochs * batches))
    step, best, best_state, history = 0, -np.inf, None, []
    bar = tqdm(range(config.epochs), desc=f"Mult-VAE (seed {config.seed})", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.as_tensor(rng.permutation(X.shape[0]))
        total = 0.0
        for b in range(batches):
            beta = min(config.anneal_cap, step / anneal_steps)
            loss = _loss(model, X[order[b * config.batch_size:(b + 1) * config.batch_size]], beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            total += float(loss.detach())
        ndcg = float(ndcg_at_k(model.score(val_in), val_out, 100, val_in).mean())
        history.append({"epoch": epoch + 1, "beta": beta, "loss": total / batches, "val NDCG@100": ndcg})
        if ndcg > best:
            best, best_state = ndcg, {k: v.clone() for k, v in model.state_dict().items()}
        bar.set_postfix(ndcg=f"{ndcg:.3f}")
    model.load_state_dict(best_state)
    model.eval()
    return model, history
