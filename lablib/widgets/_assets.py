"""The front-end code of the widgets: each widget's ES module, with the shared helpers in front."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).parent


def widget_module(filename: str) -> str:
    """``common.js`` followed by the widget's own file (anywidget takes one self-contained module)."""
    return (_HERE / "common.js").read_text() + "\n" + (_HERE / filename).read_text()
