"""Charts for the chapters, drawn offline everywhere. Importing this module calls :func:`enable`.

* :mod:`lablib.viz.renderer`: the ``"lablib"`` Altair renderer. A chart's output is one
  ``text/html`` element: a static SVG drawn by vl-convert (JupyterLab, static viewers), upgraded to
  the interactive chart where the page has vega-embed (the book); marimo draws it natively.
* :mod:`lablib.viz.bundle`: the local vega bundle the book loads (``python -m lablib.viz.bundle PATH``).
* :mod:`lablib.viz.attention`: the chart builders for chapter 1.
"""

from lablib.viz.attention import error_chart, memory_chart, recall_chart, state_explorer, timing_chart
from lablib.viz.renderer import enable, render_html

enable()


def __getattr__(name: str):
    # Imported on first use, so that `python -m lablib.viz.bundle` does not import its own module
    # twice (runpy warns when the package has already imported it).
    if name == "write_vega_bundle":
        from lablib.viz.bundle import write_vega_bundle

        return write_vega_bundle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "enable",
    "error_chart",
    "memory_chart",
    "recall_chart",
    "render_html",
    "state_explorer",
    "timing_chart",
    "write_vega_bundle",
]
