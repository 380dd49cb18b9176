"""A plain ReLU MLP as a pure function of a parameter dict, in the standard or the NTK parameterization.

Parameters are a ``dict`` of tensors, ``W0, b0, ..., WL, bL``, with ``Wl`` of shape
(sizes[l+1], sizes[l]) and ``bl`` of shape (sizes[l+1],): a dict is what interpolation, permutation
and ``torch.func`` all want. Layer ``l`` computes

* standard:  h_{l+1} = Wl h_l + bl,                              Wl ~ N(0, sigma_w^2 / n_l), bl = 0 (He init);
* NTK:       h_{l+1} = (sigma_w / sqrt(n_l)) Wl h_l + sigma_b bl,  Wl, bl ~ N(0, 1)   (Lee et al. 2019, Eq. 1),

with a ReLU between layers and none after the last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["MLP", "Params", "check_params", "clone", "evaluate"]

Params = dict[str, torch.Tensor]
PARAMETERIZATIONS = ("standard", "ntk")


@dataclass(frozen=True)
class MLP:
    """The architecture: ``sizes`` = (in, hidden..., out), e.g. (64, 128, 128, 10).

    ``net(params, x)`` maps x (N, sizes[0]) to logits (N, sizes[-1]).
    """

    sizes: tuple[int, ...]
    parameterization: str = "standard"
    sigma_w: float = math.sqrt(2.0)
    sigma_b: float = 0.1

    def __post_init__(self):
        sizes = tuple(int(s) for s in self.sizes)
        if len(sizes) < 3 or min(sizes) < 1:
            raise ValueError(f"sizes must be (in, hidden..., out) with at least one hidden layer, all >= 1; got {self.sizes}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}; got {self.parameterization!r}")
        object.__setattr__(self, "sizes", sizes)

    @property
    def n_layers(self) -> int:
        """Number of weight matrices (hidden layers + 1)."""
        return len(self.sizes) - 1

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.sizes[1:-1]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {}
        for layer in range(self.n_layers):
            out[f"W{layer}"] = (self.sizes[layer + 1], self.sizes[layer])
            out[f"b{layer}"] = (self.sizes[layer + 1],)
        return out

    def init(self, seed: int) -> Params:
        """Fresh parameters drawn from ``torch.Generator().manual_seed(seed)`` (float32)."""
        gen = torch.Generator().manual_seed(int(seed))
        params = {}
        for layer in range(self.n_layers):
            fan_out, fan_in = self.sizes[layer + 1], self.sizes[layer]
            W = torch.randn(fan_out, fan_in, generator=gen)
            if self.parameterization == "standard":
                params[f"W{layer}"] = W * (self.sigma_w / math.sqrt(fan_in))
                params[f"b{layer}"] = torch.zeros(fan_out)
            else:
                params[f"W{layer}"] = W
                params[f"b{layer}"] = torch.randn(fan_out, generator=gen)
        return params

    def __call__(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"x must have shape (N, {self.sizes[0]}); got {tuple(x.shape)}")
        h = x
        for layer in range(self.n_layers):
            W, b = params[f"W{layer}"], params[f"b{layer}"]
            if self.parameterization == "standard":
                h = h @ W.T + b
            else:
                h = (self.sigma_w / math.sqrt(W.shape[1])) * (h @ W.T) + self.sigma_b * b
            if layer < self.n_layers - 1:
                h = torch.relu(h)
        return h


def check_params(net: MLP, params: Params, name: str = "params") -> None:
    """ValueError unless ``params`` has exactly the tensors ``net`` needs, with their shapes."""
    if not isinstance(params, dict):
        raise ValueError(f"{name} must be a dict of tensors {sorted(net.shapes())}; got {type(params).__name__}")
    want = net.shapes()
    if set(params) != set(want):
        raise ValueError(f"{name} must have keys {sorted(want)}; got {sorted(params)}")
    for key, shape in want.items():
        if tuple(params[key].shape) != shape:
            raise ValueError(f"{name}[{key!r}] must have shape {shape} for sizes {net.sizes}; got {tuple(params[key].shape)}")


def clone(params: Params) -> Params:
    """Detached copies of every tensor."""
    return {k: v.detach().clone() for k, v in params.items()}


@torch.no_grad()
def evaluate(net: MLP, params: Params, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy loss, error rate) of ``net(params, X)`` on labels y (N,) int64."""
    logits = net(params, X)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},); got {tuple(y.shape)}")
    loss = torch.nn.functional.cross_entropy(logits, y).item()
    err = (logits.argmax(dim=1) != y).float().mean().item()
    return loss, err
