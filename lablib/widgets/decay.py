"""Drag a decay and watch what it does: the decay mask and the state's size over time.

For a fixed scalar decay a in (0, 1], scalar-gated linear attention is

    S_t = a S_{t-1} + k_t v_t^T,    o_t = S_t^T q_t = sum_{s <= t} a^(t-s) (q_t . k_s) v_s,

i.e. attention with the decay mask M_ts = a^(t-s) for s <= t (0 above the diagonal).
``DecayExplorer.from_kv(k, v, decays=...)`` precomputes, in Python, for every a in a grid: the
T x T mask (built in log space, as ``lablib.attention.gated`` does) and the Frobenius norm of the
state S_t at every step (from the same recurrence as ``scalar_gated_recurrent``). The browser
only draws them: one slider picks a, a second picks t; the mask is a heatmap with row t marked,
and the norm is a line with step t marked. The norm axis is fixed across all a, so you see how
a = 1 lets the state grow without bound while a < 1 holds it near a level set by 1 / (1 - a).

The same widget works in JupyterLab and in marimo; static renderers (the book, GitHub) get a
short HTML note instead.
"""

from __future__ import annotations

import html
import math

import anywidget
import torch
import traitlets

from lablib.attention.gated import _causal_decays
from lablib.widgets._assets import widget_module

__all__ = ["DecayExplorer", "decay_mask", "state_norms"]

MAX_T = 64
MAX_D = 64
MAX_DECAYS = 64
DECIMALS = 4


def _rounded(x: torch.Tensor):
    """A tensor as nested lists of Python floats rounded to ``DECIMALS`` (JSON-serializable)."""
    return torch.round(x.detach().to(torch.float64), decimals=DECIMALS).tolist()


def decay_mask(a: float, T: int) -> torch.Tensor:
    """The (T, T) decay mask of a fixed decay a: entry [t, s] = a^(t - s) for s <= t, 0 above.

    Built in log space (segment sums of log a, -inf above the diagonal, then exp), as
    ``lablib.attention.gated`` does, so a tiny a gives exact zeros, never NaN.
    """
    log_a = torch.full((1, 1, T), math.log(a), dtype=torch.float64)
    return _causal_decays(log_a)[0, 0]


def state_norms(k: torch.Tensor, v: torch.Tensor, a: float) -> torch.Tensor:
    """||S_t||_F for t = 0..T-1 of S_t = a S_{t-1} + k_t v_t^T (S_{-1} = 0); k (T, D_k), v (T, D_v) -> (T,)."""
    S = k.new_zeros(k.shape[1], v.shape[1])
    norms = []
    for t in range(k.shape[0]):
        S = a * S + torch.outer(k[t], v[t])
        norms.append(torch.linalg.matrix_norm(S))
    return torch.stack(norms)


class DecayExplorer(anywidget.AnyWidget):
    """Sliders over the decay a and the step t, showing the decay mask and the state's norm.

    Build it with :meth:`from_kv`. Synced traits: ``index`` (which decay of the grid is shown),
    ``step`` (0-based t), ``title`` and ``data`` (everything precomputed, as nested lists).
    In Python, :attr:`decay`, :attr:`mask` and :attr:`norms` are the values the sliders show.
    """

    _esm = widget_module("decay.js")

    data = traitlets.Dict({}).tag(sync=True)
    index = traitlets.Int(0).tag(sync=True)
    step = traitlets.Int(0).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_kv(
        cls,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        decays=(1.0, 0.99, 0.97, 0.95, 0.9, 0.8, 0.7, 0.5, 0.3, 0.1),
        title: str = "",
    ) -> "DecayExplorer":
        """Precompute the mask and the state norms for keys k (T, D_k), values v (T, D_v), every a in ``decays``.

        1 <= T <= 64, D_k, D_v <= 64, and 1 to 64 decays, each in (0, 1]. The widget starts at the
        first decay and the last step.
        """
        for name, x in (("k", k), ("v", v)):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor of shape (T, D); got {type(x).__name__}")
            if x.ndim != 2:
                raise ValueError(f"{name} must have shape (T, D) for one head; got shape {tuple(x.shape)}")
        shapes = f"k {tuple(k.shape)}, v {tuple(v.shape)}"
        T = k.shape[0]
        if v.shape[0] != T:
            raise ValueError(f"k and v must have the same length T (dim 0); got shapes {shapes}")
        if not 1 <= T <= MAX_T:
            raise ValueError(f"T must be between 1 and {MAX_T} for the widget; got shapes {shapes}")
        if not (1 <= k.shape[1] <= MAX_D and 1 <= v.shape[1] <= MAX_D):
            raise ValueError(f"D_k and D_v must be between 1 and {MAX_D}; got shapes {shapes}")
        if not (torch.isfinite(k).all() and torch.isfinite(v).all()):
            raise ValueError(f"k and v must be finite; got shapes {shapes}")
        grid = torch.as_tensor(decays, dtype=torch.float64)
        if grid.ndim != 1 or not 1 <= grid.numel() <= MAX_DECAYS:
            raise ValueError(f"decays must be a 1-D sequence of 1 to {MAX_DECAYS} values; got shape {tuple(grid.shape)}")
        if not ((grid > 0) & (grid <= 1)).all():
            raise ValueError(f"every decay must lie in (0, 1]; got {grid.tolist()} (shape {tuple(grid.shape)})")

        k, v = (x.detach().cpu().to(torch.float64) for x in (k, v))
        grid = [float(a) for a in grid]
        masks = torch.stack([decay_mask(a, T) for a in grid])  # (A, T, T)
        norms = torch.stack([state_norms(k, v, a) for a in grid])  # (A, T)
        data = {
            "T": T,
            "decays": grid,
            "half_lives": [None if a == 1.0 else round(math.log(2) / -math.log(a), 2) for a in grid],
            "mask": _rounded(masks),
            "norms": _rounded(norms),
            "norm_max": round(float(norms.max()), DECIMALS) or 1.0,  # one y axis for every a
        }
        return cls(data=data, title=title, index=0, step=T - 1)

    # ------------------------------------------------------------------ traits
    @property
    def T(self) -> int:
        """Number of steps; 0 for a widget built without data."""
        return int(self.data.get("T", 0))

    @traitlets.validate("step")
    def _validate_step(self, proposal):
        value, last = proposal["value"], max(self.T - 1, 0)
        if not 0 <= value <= last:
            raise traitlets.TraitError(f"step must be between 0 and {last} (T = {self.T}); got {value}")
        return value

    @traitlets.validate("index")
    def _validate_index(self, proposal):
        value, last = proposal["value"], max(len(self.data.get("decays", [])) - 1, 0)
        if not 0 <= value <= last:
            raise traitlets.TraitError(f"index must be between 0 and {last}; got {value}")
        return value

    def _require_data(self):
        if not self.T:
            raise RuntimeError("this DecayExplorer has no data; build it with DecayExplorer.from_kv")

    @property
    def decay(self) -> float:
        """The decay a the slider shows."""
        self._require_data()
        return self.data["decays"][self.index]

    @property
    def mask(self) -> torch.Tensor:
        """The (T, T) decay mask for the current a (rounded to 4 decimals, as the browser gets it)."""
        self._require_data()
        return torch.tensor(self.data["mask"][self.index], dtype=torch.float64)

    @property
    def norms(self) -> torch.Tensor:
        """||S_t||_F for t = 0..T-1 at the current a (rounded to 4 decimals)."""
        self._require_data()
        return torch.tensor(self.data["norms"][self.index], dtype=torch.float64)

    # ------------------------------------------------------------------ display
    def _fallback_html(self) -> str:
        head = f"<strong>{html.escape(self.title)}</strong><br>" if self.title else ""
        decays = ", ".join(f"{a:g}" for a in self.data.get("decays", []))
        return (
            "<div class='ll-decay-fallback' style='border:1px solid #ccc;border-radius:4px;"
            "padding:8px 12px;font-family:system-ui,sans-serif;color:#444;display:inline-block'>"
            f"{head}Interactive widget: run this chapter in JupyterLab or as a marimo app to drag the "
            f"decay a (one of {html.escape(decays) or 'none'}) over T = {self.T} steps.</div>"
        )

    def _repr_mimebundle_(self, **kwargs):
        """The widget's bundle (for a live kernel) plus a ``text/html`` note for static renderers."""
        bundle = super()._repr_mimebundle_(**kwargs)
        fallback = self._fallback_html()
        if bundle is None:
            return {"text/plain": repr(self), "text/html": fallback}
        if isinstance(bundle, tuple):
            data, metadata = bundle
            return {**data, "text/html": fallback}, metadata
        return {**bundle, "text/html": fallback}
