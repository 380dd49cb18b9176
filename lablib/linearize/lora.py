"""Low-rank adaptation (LoRA; Hu et al., 2021): ``W x + (alpha / r) B A x`` with the base ``W`` frozen.

``A`` (r, d_in) starts random (Kaiming-uniform, as the reference implementation), ``B`` (d_out, r)
starts at zero, so an adapted model begins exactly equal to its base. :func:`add_lora` wraps named
``nn.Linear`` modules in place; :func:`lora_parameters` lists the A and B matrices (the only ones a
LoRA stage trains); :func:`lora_state` / :func:`load_lora_state` save and restore them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LoRALinear", "add_lora", "load_lora_state", "lora_finetune", "lora_parameters", "lora_state"]


class LoRALinear(nn.Module):
    """``base(x) + scale * (x @ A^T) @ B^T`` with ``scale = alpha / rank``; x (..., d_in) -> (..., d_out).

    ``base`` (an ``nn.Linear``) is frozen; ``A`` (rank, d_in) and ``B`` (d_out, rank) are the
    adapter (B = 0 at the start). ``merged_weight()`` is ``W + scale B A``.
    """

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0, *, generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ValueError(f"LoRA wraps an nn.Linear; got {type(base).__name__}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(base.in_features, base.out_features):
            raise ValueError(f"rank must be an int in [1, {min(base.in_features, base.out_features)}]; got {rank!r}")
        self.base, self.rank, self.alpha = base, rank, float(alpha)
        for p in base.parameters():
            p.requires_grad_(False)
        bound = 1 / math.sqrt(base.in_features)  # kaiming_uniform_(a=sqrt(5)) of an (r, d_in) matrix
        A = (torch.rand(rank, base.in_features, generator=generator) * 2 - 1) * bound
        self.A = nn.Parameter(A.to(base.weight.dtype), requires_grad=False)
        self.B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=base.weight.dtype), requires_grad=False)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * ((x @ self.A.T) @ self.B.T)

    def merged_weight(self) -> torch.Tensor:
        """(d_out, d_in): the base weight plus the adapter's update."""
        return self.base.weight + self.scale * self.B @ self.A

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"


def add_lora(model: nn.Module, targets: list[str], rank: int = 8, alpha: float = 16.0, *, seed: int = 0) -> list[LoRALinear]:
    """Replace each named ``nn.Linear`` of ``model`` (dotted names, e.g. ``blocks.0.attn.q``) by a
    :class:`LoRALinear` around it, in place; returns the new modules. A seeded generator draws the A's."""
    if not targets:
        raise ValueError("targets must name at least one nn.Linear")
    gen = torch.Generator().manual_seed(seed)
    out = []
    for name in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        base = getattr(parent, attr, None)
        if not isinstance(base, nn.Linear):
            raise ValueError(f"{name!r} is not an nn.Linear of the model (got {type(base).__name__})")
        wrapped = LoRALinear(base, rank, alpha, generator=gen)
        setattr(parent, attr, wrapped)
        out.append(wrapped)
    return out


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The A and B matrices of every :class:`LoRALinear` in ``model``."""
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.A, m.B)]


def lora_finetune(model: nn.Module, step_loss, *, steps: int, lr: float = 1e-3, desc: str = "LoRA",
                  progress: bool = True) -> list[float]:
    """Train only the adapters of ``model`` (after :func:`add_lora`) to minimize ``step_loss(step)``,
    a scalar tensor on that step's batch; Adam(lr), a tqdm bar. Returns the loss every 10 steps."""
    from lablib.linearize.training import fit

    params = lora_parameters(model)
    if not params:
        raise ValueError("the model has no LoRA adapters (call add_lora first)")
    return fit(params, step_loss, steps=steps, lr=lr, desc=desc, progress=progress)


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of the adapters' A and B matrices only (what a LoRA stage saves)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith((".A", ".B"))}


def load_lora_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy saved A and B matrices into a model that already has its adapters (:func:`add_lora`)."""
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise ValueError(f"the model has no adapter parameters {missing[:3]}... (call add_lora first)")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)
