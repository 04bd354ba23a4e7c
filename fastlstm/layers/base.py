"""What the layers besides LSTM share (internal): the one-call claim of a
backward, the empty parameter protocol of parameter-less layers, and the
checks of a gradient against the output it belongs to."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._checks import check_array
from .._typing import Array

__all__ = ["BackwardClaim", "Stateless", "check_float_input", "check_gradient"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class BackwardClaim:
    """Taken by the first call of a backward, never released: a second call,
    from this thread or another, is a RuntimeError (a flag checked and set
    later would let two threads both pass)."""

    __slots__ = ("_lock", "_what")

    def __init__(self, what):
        self._lock = threading.Lock()
        self._what = what

    def take(self):
        if not self._lock.acquire(blocking=False):
            raise RuntimeError(
                f"backward: this {self._what}.forward_train's backward was already called; "
                "run forward_train again"
            )


def check_float_input(name, x):
    """``x`` as a float32 or float64 array (for layers without a dtype of
    their own, which keep the input's); other dtypes are a TypeError."""
    if not isinstance(x, np.ndarray):
        if hasattr(x, "__array__") or isinstance(x, (list, tuple)):
            x = np.asarray(x)
        else:
            raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if x.dtype not in _DTYPES:
        raise TypeError(
            f"{name}: expected a float32 or float64 array, got {x.dtype} with shape {x.shape}"
        )
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def check_gradient(name, dy, dtype, shape):
    """The gradient of an output: exactly the output's dtype and shape."""
    dy = check_array(name, dy, np.dtype(dtype))
    if dy.shape != tuple(shape):
        raise ValueError(f"{name}: expected the output's shape {tuple(shape)}, got {dy.shape}")
    return dy


class Stateless:
    """The parameter protocol of a layer without parameters: nothing to
    list, train or load (a state_dict is empty, as torch's)."""

    @property
    def grads(self) -> dict[str, Array]:
        """Always empty: no parameters."""
        return {}

    def named_parameters(self) -> list[tuple[str, Array]]:
        return []

    def parameters(self) -> list[Array]:
        return []

    def zero_grad(self) -> None:
        pass

    def state_dict(self) -> dict[str, Array]:
        return {}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Only an empty dict fits (with strict=False, anything is ignored)."""
        if strict and len(state_dict):
            raise KeyError(
                f"load_state_dict: {type(self).__name__} has no parameters, "
                f"unexpected keys {list(state_dict)}"
            )
