"""linear-lab: linearity inside modern deep learning, as readable references, kernels and chapters.

Subpackages: ``lablib.attention`` (track 1), ``lablib.viz`` (Altair charts that work offline),
``lablib.widgets`` (anywidget controls for JupyterLab and marimo), ``lablib.kernels`` (Triton).
"""

__version__ = "0.1.0"
