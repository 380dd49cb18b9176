"""Step through linear attention's recurrence for one head, one token at a time.

    S_t = S_{t-1} + phi(k_t) v_t^T,    z_t = z_{t-1} + phi(k_t),
    o_t = phi(q_t)^T S_t / (phi(q_t)^T z_t + eps)

``RecurrenceStepper.from_qkv(q, k, v)`` precomputes every step in Python (with
``lablib.attention``) and the browser only draws them: a slider (or the play button) picks t,
and three heatmaps show the write phi(k_t) v_t^T, the state S_t with phi(q_t) beside it, and the
output row o_t. The colour scale of each panel is fixed across all t, so the state's growth shows.

The same widget works in JupyterLab and in marimo (which wraps any anywidget that is a cell's last
expression); static renderers (the book, GitHub) get a short HTML note instead.
"""

from __future__ import annotations

import html
import pathlib

import anywidget
import torch
import traitlets

from lablib.attention.feature_maps import FeatureMap, resolve_feature_map
from lablib.attention.linear import DEFAULT_EPS, linear_attention_recurrent
from lablib.widgets._assets import widget_module

__all__ = ["RecurrenceStepper"]

_HERE = pathlib.Path(__file__).parent
MAX_T = 64
MAX_D = 32
DECIMALS = 4


def _rounded(x: torch.Tensor):
    """A tensor as nested lists of Python floats rounded to ``DECIMALS`` (JSON-serializable)."""
    return torch.round(x.detach().to(torch.float64), decimals=DECIMALS).tolist()


def _max_abs(x: torch.Tensor) -> float:
    """The half-width of a colour scale symmetric around 0 (never 0, so the JS can divide by it)."""
    m = float(x.abs().max()) if x.numel() else 0.0
    return round(m, DECIMALS) if m > 0 else 1.0


class RecurrenceStepper(anywidget.AnyWidget):
    """A slider over t showing linear attention's state S_t and output o_t for one head.

    Build it with :meth:`from_qkv`. Synced traits: ``step`` (0-based t shown), ``title`` and
    ``data`` (every step precomputed, as nested lists). In Python, :attr:`state` and
    :attr:`output` are the tensors S_t and o_t at the step the slider shows.
    """

    _esm = widget_module("recurrence.js")
    _css = _HERE / "recurrence.css"

    data = traitlets.Dict({}).tag(sync=True)
    step = traitlets.Int(0).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs):
        self._tensors: dict[str, torch.Tensor] | None = None
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_qkv(
        cls,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        feature_map: str | FeatureMap = "elu+1",
        normalize: bool = True,
        title: str = "",
        eps: float = DEFAULT_EPS,
    ) -> "RecurrenceStepper":
        """Precompute every step of the causal recurrence for q, k (T, D_k) and v (T, D_v).

        1 <= T <= 64 and D_k, D_v <= 32 (the widget draws every cell). The outputs come from
        ``linear_attention_recurrent``; the states S_t from a cumulative sum of the outer products
        phi(k_t) v_t^T (the same numbers the recurrence holds after step t).
        """
        for name, x in (("q", q), ("k", k), ("v", v)):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor of shape (T, D); got {type(x).__name__}")
            if x.ndim != 2:
                raise ValueError(f"{name} must have shape (T, D) for one head; got shape {tuple(x.shape)}")
        shapes = f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        T, d_k = k.shape
        if q.shape[0] != T or v.shape[0] != T:
            raise ValueError(f"q, k and v must have the same length T (dim 0); got shapes {shapes}")
        if q.shape[1] != d_k:
            raise ValueError(f"q and k must have the same feature size D_k (dim 1); got shapes {shapes}")
        if not 1 <= T <= MAX_T:
            raise ValueError(f"T must be between 1 and {MAX_T} for the widget; got shapes {shapes}")
        if d_k > MAX_D or v.shape[1] > MAX_D or d_k < 1 or v.shape[1] < 1:
            raise ValueError(f"D_k and D_v must be between 1 and {MAX_D} for the widget; got shapes {shapes}")

        q, k, v = (x.detach().cpu() for x in (q, k, v))
        # The library's recurrence (it also validates dtype and finiteness); (T, D) -> (1, 1, T, D).
        out, final = linear_attention_recurrent(
            q[None, None], k[None, None], v[None, None],
            feature_map=feature_map, normalize=normalize, eps=eps, return_state=True,
        )
        phi = resolve_feature_map(feature_map)
        fq, fk = phi(q), phi(k)  # (T, F)
        if fk.shape[-1] > MAX_D:
            raise ValueError(f"phi(k) has {fk.shape[-1]} features; the widget draws at most {MAX_D}")
        updates = fk[:, :, None] * v[:, None, :]  # (T, F, D_v): phi(k_t) v_t^T
        states = updates.cumsum(0)  # (T, F, D_v): S_t
        z = fk.cumsum(0)  # (T, F): z_t
        den = (fq * z).sum(-1)  # (T,): phi(q_t)^T z_t
        tensors = {"phi_q": fq, "phi_k": fk, "v": v, "update": updates, "state": states,
                   "z": z, "den": den, "output": out[0, 0], "final_state": final.kv[0, 0]}
        fm_name = feature_map if isinstance(feature_map, str) else getattr(feature_map, "__name__", "phi")
        data = {
            "T": T, "d_k": int(fk.shape[-1]), "d_v": int(v.shape[-1]),
            "feature_map": fm_name, "normalize": bool(normalize), "eps": eps,
            **{key: _rounded(tensors[key]) for key in ("phi_q", "phi_k", "v", "update", "state", "z", "den", "output")},
            # One symmetric colour scale per panel, fixed over all t.
            "scale": {
                "phi": _max_abs(torch.cat([fq, fk])),
                "v": _max_abs(v),
                "update": _max_abs(updates),
                "state": _max_abs(states),
                "output": _max_abs(out),
            },
        }
        widget = cls(data=data, title=title, step=0)
        widget._tensors = tensors
        return widget

    # ------------------------------------------------------------------ traits
    @property
    def T(self) -> int:
        """Number of steps (tokens); 0 for a widget built without data."""
        return int(self.data.get("T", 0))

    @traitlets.validate("step")
    def _validate_step(self, proposal):
        value = proposal["value"]
        last = max(self.T - 1, 0)
        if not 0 <= value <= last:
            raise traitlets.TraitError(f"step must be between 0 and {last} (T = {self.T}); got {value}")
        return value

    @traitlets.observe("data")
    def _data_changed(self, change):
        self._tensors = None  # the properties now read the (rounded) synced data
        if self.step > max(self.T - 1, 0):
            self.step = max(self.T - 1, 0)

    def _tensor(self, key: str) -> torch.Tensor:
        if self._tensors is not None:
            return self._tensors[key][self.step].clone()
        if key not in self.data:
            raise RuntimeError("this RecurrenceStepper has no data; build it with RecurrenceStepper.from_qkv")
        return torch.tensor(self.data[key][self.step], dtype=torch.float32)

    @property
    def state(self) -> torch.Tensor:
        """S_t at the current step: (D_k, D_v) (D_k after the feature map)."""
        return self._tensor("state")

    @property
    def output(self) -> torch.Tensor:
        """o_t at the current step: (D_v,)."""
        return self._tensor("output")

    # ------------------------------------------------------------------ display
    def _fallback_html(self) -> str:
        T = self.T
        head = f"<strong>{html.escape(self.title)}</strong><br>" if self.title else ""
        shape = ""
        if T:
            d = self.data
            shape = (
                f"<table style='border-collapse:collapse;font-size:0.85em;margin-top:4px'>"
                f"<tr><td style='padding:0 8px 0 0'>steps T</td><td>{T}</td></tr>"
                f"<tr><td style='padding:0 8px 0 0'>state S<sub>t</sub></td><td>{d['d_k']} &times; {d['d_v']}</td></tr>"
                f"<tr><td style='padding:0 8px 0 0'>feature map</td><td>{html.escape(str(d['feature_map']))}</td></tr>"
                f"</table>"
            )
        return (
            "<div class='ll-recurrence-fallback' style='border:1px solid #ccc;border-radius:4px;"
            "padding:8px 12px;font-family:system-ui,sans-serif;color:#444;display:inline-block'>"
            f"{head}Interactive widget: run this chapter in JupyterLab or as a marimo app to step "
            f"through the recurrence (t = 0..{max(T - 1, 0)}).{shape}</div>"
        )

    def _repr_mimebundle_(self, **kwargs):
        """The widget's bundle (for a live kernel) plus a ``text/html`` note for static renderers.

        anywidget returns ``(data, metadata)`` and ipywidgets a bare ``data`` dict or ``None``;
        the same shape is returned here, with ``text/html`` added to ``data``.
        """
        bundle = super()._repr_mimebundle_(**kwargs)
        fallback = self._fallback_html()
        if bundle is None:
            return {"text/plain": repr(self), "text/html": fallback}
        if isinstance(bundle, tuple):
            data, metadata = bundle
            return {**data, "text/html": fallback}, metadata
        return {**bundle, "text/html": fallback}
