"""Checks of user input shared by the layers (internal).

Every failure is a ValueError or TypeError whose message names the argument
and says what was expected and what came (README: "errors name the
argument").
"""

from typing import Any, Callable

import numpy as np

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype):
    """numpy.float32 or numpy.float64 as a numpy dtype, else a TypeError.

    None is refused: ``numpy.dtype(None)`` would quietly mean float64.
    """
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in _DTYPES:  # (dtype == None is True for float64)
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
    return dt


def check_int(name, value, minimum):
    """``value`` as an int >= ``minimum`` (a bool is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_bool(name, value):
    """``value`` as a bool; only True/False (or numpy booleans) are accepted:
    ``bias="no"`` or ``batch_first=1.0`` would otherwise read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_probability(name, value):
    """``value`` as a float in [0, 1) (a dropout rate)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
    if isinstance(value, np.complexfloating) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def checked_setting(name: str, check: Callable[[str, Any], Any], doc: str) -> property:
    """A settable attribute whose value is ``check(name, value)`` (which
    refuses what does not fit), stored as ``"_" + name``."""
    attr = "_" + name

    def get(self: Any) -> Any:
        return getattr(self, attr)

    def set_(self: Any, value: Any) -> None:
        setattr(self, attr, check(name, value))

    return property(get, set_, doc=doc)


def check_lengths(lengths, batch):
    """Sequence lengths as a C-contiguous int64 array of shape (batch,):
    integers, or floats with integer values; the range is the caller's check
    (the LSTM checks it in its compiled row plan)."""
    lens = np.asarray(lengths)
    if lens.ndim != 1 or lens.shape[0] != batch:
        raise ValueError(
            f"lengths: expected shape ({batch},) (one length per batch entry), got {lens.shape}"
        )
    if lens.dtype.kind not in "iu" and not (
        lens.dtype.kind == "f" and np.all(lens == np.round(lens))
    ):
        raise TypeError(f"lengths: expected an integer array, got dtype {lens.dtype}")
    return np.ascontiguousarray(lens, dtype=np.int64)


def check_array(name, a, dtype):
    """A numpy array of exactly `dtype` (C-contiguous copy only when needed).

    A different dtype is a TypeError: fastlstm never converts silently
    (a float64 array given to a float32 layer would otherwise lose precision
    without notice).
    """
    if not isinstance(a, np.ndarray):
        if hasattr(a, "__array__") or isinstance(a, (list, tuple)):
            a = np.asarray(a)
        else:
            raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(
            f"{name}: expected dtype {dtype.name} (the layer's dtype), got "
            f"{a.dtype} with shape {a.shape}; convert with "
            f".astype(numpy.{dtype.name})"
        )
    # (np.ascontiguousarray would turn a 0-d array into shape (1,), a valid
    # input of size 1: a scalar must stay a scalar and fail the shape check)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def check_pair(name, value, first, second):
    """A state tuple such as ``hx = (h0, c0)`` -> (first, second); None stays None."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name}: expected a tuple ({first}, {second}) or None")
    return value[0], value[1]


def check_state(name, value, dtype, shape, layout=None):
    """A state (h0, c0, ...) or state gradient: exactly `dtype` and `shape`.

    ``layout`` names the dimensions for the error message, e.g.
    ``"num_layers*num_directions, batch, hidden_size"``.
    """
    a = check_array(name, value, dtype)
    if a.shape != tuple(shape):
        described = f" ({layout})" if layout else ""
        raise ValueError(f"{name}: expected shape {tuple(shape)}{described}, got {a.shape}")
    return a
