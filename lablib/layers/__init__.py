"""Token mixers as ``torch.nn.Module`` layers, and a small ``LanguageModel`` that stacks any of them.

Every mixer maps x (B, T, d_model) to y (B, T, d_model) causally, ``forward(x, state=None) ->
(y, state)``, decodes one token with ``step(x_t, state) -> (y_t, state)`` (equal to ``forward``
token by token), and reports ``state_nbytes(state)``, the bytes of its state's tensors:

* ``SoftmaxAttention``      causal SDPA; its state is the KV cache (grows with T)
* ``LinearAttention``       a feature map, then the normalizer or TransNormer's output RMSNorm
* ``GatedLinearAttention``  GLA's low-rank vector gate, or a scalar gate per head
* ``DeltaNet``              L2-normalized q, k; beta = sigmoid (or 2 sigmoid: negative eigenvalues)
* ``GatedDeltaNet``         DeltaNet with a Mamba-2 decay gate and an output gate
* ``MixtureOfMemories``     M DeltaNet memories behind a top-k token router (MoM)

each multi-head, with an optional short causal convolution (``conv_size=4``; on by default for
the DeltaNets, as in their papers). The math runs in ``lablib.ops`` (``backend="auto"``: Triton on
CUDA, the vectorized PyTorch forms on a CPU; ``layer.last_backend`` says which ran).
"""

from lablib.layers.common import ShortConvolution, TokenMixer, state_nbytes, state_tensors
from lablib.layers.delta import DeltaNet, GatedDeltaNet
from lablib.layers.gated import GatedLinearAttention
from lablib.layers.linear import LinearAttention
from lablib.layers.memories import MixtureOfMemories
from lablib.layers.model import MIXERS, LanguageModel, LMConfig
from lablib.layers.softmax import SoftmaxAttention

__all__ = [
    "DeltaNet",
    "GatedDeltaNet",
    "GatedLinearAttention",
    "LMConfig",
    "LanguageModel",
    "LinearAttention",
    "MIXERS",
    "MixtureOfMemories",
    "ShortConvolution",
    "SoftmaxAttention",
    "TokenMixer",
    "state_nbytes",
    "state_tensors",
]
