"""An Altair renderer that needs no network, for JupyterLab, the static book and marimo alike.

Altair's default renderer emits HTML that loads vega from a CDN, and JupyterLab 4 only knows the
vega-lite v3-v5 mimetypes (Altair 6 emits v6). This renderer (``"lablib"``, switched on by
:func:`enable`, which ``import lablib.viz`` calls) returns a mimebundle with exactly one key,
``text/html``, holding one element::

    <div class="lablib-vega" id="lablib-vega-<sha1 of the spec>">
      <img class="lablib-vega-static" src="data:image/svg+xml;base64,...">  the chart, drawn offline
      <script type="application/json" class="lablib-vega-spec">  the vega-lite spec, data inline
      <script>...</script>                                        the upgrade to an interactive view
    </div>

* The SVG is drawn by vl-convert in this process, so JupyterLab, ``nbconvert --to html`` and any
  static viewer show the chart with no JavaScript and no network. It is an image with a data URI,
  not inline ``<svg>``, because JupyterLab's sanitizer drops ``<svg>`` from untrusted outputs.
* The script swaps the static image for the live vega-embed view (tooltips, sliders) wherever
  ``window.vegaEmbed`` exists: at once if the page already has it, otherwise when the page fires
  the ``lablib-vega-ready`` event. The book loads one local bundle that does exactly that
  (:mod:`lablib.viz.bundle`), before or after the charts, in either order.
* marimo passes a one-key ``text/html`` bundle from an Altair chart to its own renderer, which
  draws the chart with the vega that marimo bundles: interactive there too.

Output is deterministic: the element id is a hash of the spec and the SVG's internal ids
(vl-convert numbers gradients with a process-wide counter) are renumbered per chart, so
re-executing a notebook gives byte-identical chart outputs and two charts on one page never
share an id.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import warnings
from typing import Any

import altair as alt

__all__ = ["READY_EVENT", "RENDERER_NAME", "chart_id", "enable", "render_html"]

RENDERER_NAME = "lablib"
READY_EVENT = "lablib-vega-ready"

# One chart's upgrade. It looks its boxes up by id (several if the same chart is shown twice),
# reads the spec from the JSON script inside each and embeds it next to the static SVG, which is
# removed once the live view has drawn. The bundle may load before this runs (vegaEmbed is
# there) or after (the ready event fires); `data-live` makes a second call a no-op.
_UPGRADE = """<script>(function () {
  var id = "%(id)s", event = "%(event)s";
  function upgrade() {
    if (typeof window.vegaEmbed !== "function") return;
    window.removeEventListener(event, upgrade);
    document.querySelectorAll('div.lablib-vega[id="' + id + '"]').forEach(function (box) {
      if (box.getAttribute("data-live")) return;
      box.setAttribute("data-live", "1");
      var spec = JSON.parse(box.querySelector("script.lablib-vega-spec").textContent);
      var still = box.querySelector(".lablib-vega-static"), live = document.createElement("div");
      live.className = "lablib-vega-live";
      box.insertBefore(live, box.firstChild);
      window.vegaEmbed(live, spec, {actions: false}).then(function () {
        if (still) still.remove();
      }).catch(function (err) {
        live.remove();
        box.removeAttribute("data-live");
        console.warn("lablib: the interactive chart failed, keeping the static one", err);
      });
    });
  }
  if (typeof window.vegaEmbed === "function") upgrade(); else window.addEventListener(event, upgrade);
})();</script>"""

_SVG_ID = re.compile(r'(?<![\w-])id="([^"]+)"')


def _vl_version() -> str | None:
    """The vega-lite version vl-convert should use: Altair's major.minor if vl-convert has it."""
    import vl_convert as vlc

    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return wanted if wanted in vlc.get_vegalite_versions() else None


def _canonical_json(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def chart_id(spec: dict) -> str:
    """``lablib-vega-<12 hex digits>``: a hash of the spec without its ``$schema`` (same chart, same id)."""
    body = {k: v for k, v in spec.items() if k != "$schema"}
    return "lablib-vega-" + hashlib.sha1(_canonical_json(body).encode()).hexdigest()[:12]


def _data_urls(node: Any) -> list[str]:
    """Every ``data.url`` in a spec: data that would have to be fetched, which offline pages cannot."""
    found = []
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            found.append(data["url"])
        for value in node.values():
            found += _data_urls(value)
    elif isinstance(node, list):
        for value in node:
            found += _data_urls(value)
    return found


def _scope_svg_ids(svg: str, prefix: str) -> str:
    """Renumber the SVG's ids (and their ``url(#..)`` / ``href="#.."`` uses) as ``prefix-0``, ``prefix-1``...

    vl-convert names legend gradients ``gradient_<n>`` from a counter that runs across the whole
    process, which would make the output depend on what was drawn before, and would make two
    charts on one page point at each other's gradients.
    """
    ids: dict[str, str] = {}
    for old in _SVG_ID.findall(svg):
        ids.setdefault(old, f"{prefix}-{len(ids)}")
    if not ids:
        return svg
    names = "|".join(re.escape(old) for old in sorted(ids, key=len, reverse=True))
    svg = re.sub(rf'(?<![\w-])id="({names})"', lambda m: f'id="{ids[m.group(1)]}"', svg)
    svg = re.sub(rf"url\(#({names})\)", lambda m: f"url(#{ids[m.group(1)]})", svg)
    return re.sub(rf'(href)="#({names})"', lambda m: f'{m.group(1)}="#{ids[m.group(2)]}"', svg)


def _script_json(text: str) -> str:
    """JSON that is safe inside a <script> element: no '<', '>' or '&' can end or confuse it."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(spec: dict) -> str:
    """The HTML for one vega-lite spec (a dict, data inline): static SVG, spec and upgrade script.

    The static SVG is an ``<img>`` with a data URI rather than inline ``<svg>``: JupyterLab's
    sanitizer removes ``<svg>`` from *untrusted* outputs (a notebook opened from disk, not yet
    re-run) but keeps images with data URIs, so the chart shows there too, and one copy serves
    every viewer.
    """
    import vl_convert as vlc

    urls = _data_urls(spec)
    if urls:
        warnings.warn(
            f"this chart loads data from {urls[:3]}, which an offline page cannot fetch; pass a DataFrame instead",
            stacklevel=3,
        )
    cid = chart_id(spec)
    try:
        svg = _scope_svg_ids(vlc.vegalite_to_svg(spec, vl_version=_vl_version()), cid)
    except Exception as err:  # still emit the spec: pages with the bundle can draw it
        warnings.warn(f"vl-convert could not draw the static chart: {err}", stacklevel=3)
        static = '<p class="lablib-vega-static"><em>(this chart needs JavaScript: no static copy)</em></p>'
    else:
        title = spec.get("title")
        label = html.escape(title if isinstance(title, str) else "chart", quote=True)
        data = base64.b64encode(svg.encode()).decode("ascii")
        static = f'<img class="lablib-vega-static" alt="{label}" src="data:image/svg+xml;base64,{data}">'
    return (
        f'<div class="lablib-vega" id="{cid}">{static}'
        f'<script type="application/json" class="lablib-vega-spec">{_script_json(_canonical_json(spec))}</script>'
        + _UPGRADE % {"id": cid, "event": READY_EVENT}
        + "</div>"
    )


def _renderer(spec: dict, **metadata: Any) -> dict[str, str]:
    # Exactly one key: marimo then draws the chart itself; JupyterLab and myst-nb show the HTML.
    return {"text/html": render_html(spec)}


def enable() -> None:
    """Register the ``"lablib"`` Altair renderer and make it the active one (idempotent)."""
    if RENDERER_NAME not in alt.renderers.names():
        alt.renderers.register(RENDERER_NAME, _renderer)
    if alt.renderers.active != RENDERER_NAME:
        alt.renderers.enable(RENDERER_NAME)
