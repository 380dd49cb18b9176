"""anywidget widgets: the same widget in JupyterLab and in marimo (and an HTML note in static pages)."""

from lablib.widgets.decay import DecayExplorer
from lablib.widgets.recurrence import RecurrenceStepper

__all__ = ["DecayExplorer", "RecurrenceStepper"]
