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


def show_config(measure_peak: bool = True) -> dict[str, Any]:
    """Print and return the build/runtime configuration: the CPU model, the
    SIMD variant in use, the cache sizes the kernel read and the plans it
    derived from them, CPUs and threads, OpenMP on/off, and (unless
    ``measure_peak`` is false) the FMA peak measured now by a register-only
    loop of the variant in use (a few tens of milliseconds)."""
    import numpy

    from . import _machine
    from ._native import kernels

    info = kernels.cpu_info()
    threads = get_num_threads()
    cfg: dict[str, Any] = {
        "fastlstm": __version__,
        "numpy": numpy.__version__,
        "cpu": info["model"] or "unknown",
        "isa": _isa(),
        "caches": {k: info[k] for k in ("l1d", "l2", "l3", "l3_shared", "caches_from")},
        "cpus": info["cpus"],
        "num_threads": threads,
        "openmp": _have_openmp(),
        "fma_peak": _machine.fma_peaks(threads) if measure_peak else None,
        "plans": _machine.active_plan(),
    }
    lines = {
        "fastlstm": cfg["fastlstm"],
        "numpy": cfg["numpy"],
        "cpu": cfg["cpu"],
        "isa": cfg["isa"],
        "caches": _machine.caches_text(info),
        "cpus": f"{info['cpus']} available; {threads} threads in use",
        "openmp": cfg["openmp"],
        "fma peak": "not measured"
        if cfg["fma_peak"] is None
        else _machine.peak_text(cfg["fma_peak"], threads),
        "plans": _machine.plan_text(cfg["plans"]),
    }
    for k, v in lines.items():
        print(f"{k:12s} {v}")
    return cfg
