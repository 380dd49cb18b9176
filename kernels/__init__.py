"""Triton kernels, installed as ``lablib.kernels`` (one module per method).

Kernels are tested against the PyTorch references in ``lablib`` under the Triton interpreter
(``TRITON_INTERPRET=1``) on the CPU, and run compiled on CUDA devices.
"""
