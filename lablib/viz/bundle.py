"""One local copy of vega, vega-lite and vega-embed for pages with no network (the book).

``python -m lablib.viz.bundle PATH`` (or :func:`write_vega_bundle`) writes it; the book copies it
into ``_static`` and every page loads it with a plain ``<script src="vega-bundle.js">``.

It is a *classic* script, not an ES module. vl-convert's ``javascript_bundle`` returns code with
no ``import``/``export`` statements (everything is inlined), but written as module-scope code:
hundreds of top-level ``const``/``function`` names that a classic script would put on ``window``
(and clash with other scripts). So the bundle is wrapped in a strict-mode function, which gives it
the scope and the strictness it would have had as a module. A classic script also works from
``file://``, where Chromium refuses ``type="module"`` scripts.

When it runs it sets ``window.vegaEmbed``, ``window.vega`` and ``window.vegaLite`` and fires the
``lablib-vega-ready`` event on ``window``: charts already on the page upgrade on the event,
charts that come later find ``window.vegaEmbed`` (see :mod:`lablib.viz.renderer`). So it can be
loaded in ``<head>`` or at the end of ``<body>``, plain, ``defer`` or ``async``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from lablib.viz.renderer import READY_EVENT, _vl_version

__all__ = ["is_es_module", "vega_bundle", "write_vega_bundle"]

SNIPPET = (
    "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"
    f" window.dispatchEvent(new Event({READY_EVENT!r}));"
)

# A static import or export statement at the start of a line or after ; { } (a dynamic import(...)
# is allowed in classic scripts and does not count).
_MODULE_SYNTAX = re.compile(
    r"(?:^|[;{}])\s*(?:import\s*(?:[\w$]+\s*(?:,|from\b)|[{*]|[\"'])"
    r"|export\s*(?:[{*]|default\b|(?:const|let|var|function|class|async)\b))",
    re.M,
)


def is_es_module(js: str) -> bool:
    """Whether ``js`` has ES-module-only syntax (static import/export, ``import.meta``)."""
    return "import.meta" in js or _MODULE_SYNTAX.search(js) is not None


def vega_bundle() -> str:
    """The bundle's text: vl-convert's vega + vega-lite + vega-embed, wrapped as a classic script."""
    import vl_convert as vlc

    js = vlc.javascript_bundle(SNIPPET, vl_version=_vl_version())
    if is_es_module(js):  # the wrapper below would be a syntax error around module code
        raise RuntimeError("vl-convert returned an ES module; load it with <script type='module'> unwrapped")
    return (
        "/* vega, vega-lite and vega-embed, bundled by vl-convert for lablib (python -m lablib.viz.bundle) */\n"
        '(function () {\n"use strict";\n' + js + "\n})();\n"
    )


def write_vega_bundle(path: str | Path) -> Path:
    """Write :func:`vega_bundle` to ``path`` (creating its folder); returns the path. About 0.9 MB."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(vega_bundle(), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m lablib.viz.bundle PATH   (writes the offline vega bundle to PATH)", file=sys.stderr)
        return 2
    print(write_vega_bundle(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
