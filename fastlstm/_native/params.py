"""Parameters, gradients and state_dict for the layers (internal).

Parameters are plain C-contiguous numpy arrays under PyTorch's names,
reachable as attributes (``lstm.weight_ih_l0``) and through
``state_dict()``.  They may be updated in place (an optimizer step) or
replaced by assignment; the layers notice either (see ParameterModule._packed).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._checks import as_dtype
from .._typing import Array, ReadOnly
from . import kernels


def fixed_at_construction(name: str, doc: str, attr: str | None = None) -> property:
    """A read-only attribute for a constructor argument that sets the
    parameters' shapes (changing it later would leave them inconsistent),
    stored as ``attr`` (default ``"_" + name``)."""
    attr = attr or "_" + name

    def get(self: Any) -> Any:
        return self.__dict__[attr]

    def refuse(self: Any, value: Any) -> None:
        raise AttributeError(
            f"{name} is fixed when the layer is built (it sets the parameters' shapes); "
            f"build a new {type(self).__name__} instead"
        )

    return property(get, refuse, doc=doc)


class ParameterModule:
    """Holds named parameters, their gradients and the random generator.

    Layers pickle and deep-copy with their configuration, parameters,
    gradients and generator; locks, the pack cache and buffer pools are
    rebuilt empty (see _transient_state).
    """

    dtype: ReadOnly[np.dtype[np.floating[Any]]] = fixed_at_construction(
        "dtype", "numpy.float32 or numpy.float64."
    )
    # gradients under the parameters' names
    grads: dict[str, Array]

    def __init__(self, dtype: Any, seed: Any) -> None:
        object.__setattr__(self, "_params", {})
        self._dtype = as_dtype(dtype)
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._transient_state()
        for name, shape in self._parameter_shapes().items():
            self._params[name] = self._initial_value(name, shape)
        self.grads = {}
        self.zero_grad()

    def _transient_state(self):
        """What a copy does not carry over: caches and locks."""
        self._pack_cache = {}
        # backward calls from several Python threads accumulate into the same
        # grads (with the GIL released): one at a time
        self._grad_lock = threading.Lock()

    _TRANSIENT: tuple[str, ...] = ("_pack_cache", "_grad_lock")

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._transient_state()

    # subclasses define _parameter_shapes() -> {name: shape} in PyTorch's order
    # and _init_scale(), or _initial_value() for another initialisation

    def _initial_value(self, name, shape):
        """A new parameter: U(-k, k) with k = _init_scale(), drawn from the
        layer's generator in _parameter_shapes() order."""
        k = self._init_scale()
        return self._rng.uniform(-k, k, size=shape).astype(self.dtype)

    # the parameters: lstm.weight_ih_l0, cell.bias_hh, ... (assignment checks the shape)
    def __getattr__(self, name: str) -> Array:
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            self._set_param(name, value)
        else:
            object.__setattr__(self, name, value)

    def _set_param(self, name, value):
        shape = self._parameter_shapes()[name]
        a = np.asarray(value)
        if a.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
        self._check_param_dtype(name, a)
        self._params[name] = np.array(a, order="C", copy=True)

    def _check_param_dtype(self, what, a):
        """Parameters must come in the layer's dtype: converting float64
        weights to float32 (or float16 ones up) without a word is how a
        checkpoint silently loses precision or a model runs in the wrong one."""
        if a.dtype != self.dtype:
            raise TypeError(
                f"{what}: expected dtype {self.dtype.name} (the layer's dtype), got {a.dtype}; "
                f"convert with .astype(numpy.{self.dtype.name}) or build the layer "
                f"with dtype=numpy.{a.dtype.name}"
            )

    def named_parameters(self) -> list[tuple[str, Array]]:
        """(name, array) pairs in PyTorch's order; the arrays are the live parameters."""
        return list(self._params.items())

    def parameters(self) -> list[Array]:
        return list(self._params.values())

    def zero_grad(self) -> None:
        """Set every gradient in :attr:`grads` to zero."""
        for name, p in self._params.items():
            g = self.grads.get(name)
            if g is None or g.shape != p.shape:
                self.grads[name] = np.zeros_like(p)
            else:
                g.fill(0)

    def state_dict(self) -> dict[str, Array]:
        """A dict of copies of the parameters, with PyTorch's keys and order."""
        return {k: v.copy() for k, v in self._params.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Load parameters from a dict of arrays (e.g. a converted
        ``torch.nn.LSTM.state_dict()``).  A missing or unexpected key, or a
        wrong shape, is a KeyError/ValueError naming the key, and a dtype
        other than the layer's a TypeError; nothing is changed unless
        everything fits."""
        shapes = self._parameter_shapes()
        missing = [k for k in shapes if k not in state_dict]
        extra = [k for k in state_dict if k not in shapes]
        if strict and (missing or extra):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {extra}")
        new = {}
        for k, shape in shapes.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            if hasattr(v, "detach"):  # a torch tensor: no torch import needed
                v = v.detach().cpu().numpy()
            a = np.asarray(v)
            if a.shape != tuple(shape):
                raise ValueError(
                    f"load_state_dict: {k}: expected shape {tuple(shape)}, got {a.shape}"
                )
            self._check_param_dtype(f"load_state_dict: {k}", a)
            new[k] = np.array(a, order="C", copy=True)
        self._params.update(new)

    # ---- what the kernels need, cached -----------------------------------
    def _bias(self, sfx):
        """b_ih + b_hh of one layer/direction (the kernel adds one bias), or None."""
        if "bias_ih" + sfx not in self._params:
            return None
        return self._params["bias_ih" + sfx] + self._params["bias_hh" + sfx]

    def _packed(self, sfx):
        """(weights, blob) of one layer/direction: the packed blob, and the
        weights (w_ih, w_hh, w_hr or None) exactly as it was packed from.

        Cached, and repacked when the weights changed since they were packed,
        whether replaced or updated in place (an optimizer step): the cache
        keeps a copy of the bytes it packed and compares them (memcmp, far
        cheaper than the forward pass that follows).  The copies are never
        modified (a change replaces the entry).

        The weights are copied first and packed from the copy: another thread
        may be updating them in place meanwhile, and packing the live arrays
        then copying them could record bytes other than those packed (the
        cache would then keep a stale blob that compares equal forever).
        Packed from the copy, the blob matches its snapshot by construction,
        and any later change shows up in the next comparison."""
        ws = self._weights(sfx)
        entry = self._pack_cache.get(sfx)
        if entry is not None and kernels.same_weights(entry[0], ws):
            return entry
        # the stale entry goes first: its memory is free again before the
        # new one is allocated
        self._pack_cache.pop(sfx, None)
        entry = None
        snapshot = tuple(None if w is None else w.copy() for w in ws)
        entry = (snapshot, self._pack(snapshot))
        self._pack_cache[sfx] = entry
        return entry

    def _packed_once(self, sfx):
        """(weights, blob) of one layer/direction for one training forward:
        the live weights, and a blob packed from them (the cached one when it
        still matches them).  Nothing stays cached and no copy is kept: the
        optimizer step that follows changes the weights anyway, and a copy
        would add to a training step's peak memory.  The backward reads the
        live arrays and refuses to run if they were modified in place since
        (the layer fingerprints them)."""
        ws = self._weights(sfx)
        entry = self._pack_cache.pop(sfx, None)
        if entry is not None and kernels.same_weights(entry[0], ws):
            return ws, entry[1]
        entry = None  # freed before the new blob is allocated
        return ws, self._pack(ws)

    def _weights(self, sfx):
        """(w_ih, w_hh, w_hr or None) of one layer/direction: the live arrays."""
        return tuple(
            self._params[n + sfx] if n + sfx in self._params else None
            for n in ("weight_ih", "weight_hh", "weight_hr")
        )

    def _pack(self, ws):
        """A new packed blob of the weights ws = (w_ih, w_hh, w_hr or None)."""
        w_ih, w_hh, w_hr = ws
        I, H, P = w_ih.shape[1], w_hh.shape[0] // 4, 0 if w_hr is None else w_hr.shape[0]
        blob = np.empty(kernels.packed_size(self.dtype.char, I, H, P), self.dtype)
        kernels.pack(w_ih, w_hh, w_hr, blob)
        return blob
