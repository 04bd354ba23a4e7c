"""fastlstm: a compiled LSTM for numpy users.

PyTorch's parameter names, shapes and numerics; fused C kernels for the
forward and backward pass.  See the README for the tour.
"""

from typing import Any

from . import callbacks, keras, losses, onnx, optim, reference
from ._native.kernels import get_num_threads, set_num_threads
from ._native.kernels import have_openmp as _have_openmp
from ._native.kernels import isa as _isa
from .interop.torch import from_torch, to_torch
from .io import load, save
from .layers.basic import Dropout, Embedding, Linear
from .layers.cell import LSTMCell
from .layers.lstm import LSTM
from .layers.reducers import LastStep, MaxPool, MeanPool
from .layers.sequential import Sequential
from .layers.stream import LSTMStream
from .train.estimators import LSTMClassifier, LSTMRegressor

__version__: str = "0.1.0"

__all__ = [
    "LSTM",
    "LSTMCell",
    "LSTMStream",
    "Linear",
    "Embedding",
    "Dropout",
    "LastStep",
    "MeanPool",
    "MaxPool",
    "Sequential",
    "LSTMClassifier",
    "LSTMRegressor",
    "save",
    "load",
    "from_torch",
    "to_torch",
    "onnx",
    "keras",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "reference",
    "losses",
    "optim",
    "callbacks",
    "__version__",
]


def show_config() -> dict[str, Any]:
    """Print and return the build/runtime configuration: SIMD variant in use,
    OpenMP on/off and the thread count."""
    import numpy

    cfg = {
        "fastlstm": __version__,
        "isa": _isa(),
        "openmp": _have_openmp(),
        "num_threads": get_num_threads(),
        "numpy": numpy.__version__,
    }
    for k, v in cfg.items():
        print(f"{k:12s} {v}")
    return cfg
