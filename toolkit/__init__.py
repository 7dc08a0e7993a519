"""bptt-toolkit: backpropagation through time vs evolutionary optimization for Elman networks."""

from toolkit.gated import GRU, LSTM
from toolkit.nets import Elman

__version__ = "0.1.0"
__all__ = ["GRU", "LSTM", "Elman", "__version__"]
