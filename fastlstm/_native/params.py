"""Parameters, gradients and state_dict for the layers (internal).

Parameters are plain C-contiguous numpy arrays under PyTorch's names,
reachable as attributes (``lstm.weight_ih_l0``) and through
``state_dict()``.  They may be updated in place (an optimizer step) or
replaced by assignment; the layers notice either (see ParameterModule._packed).
"""

import threading

import numpy as np

from .._checks import as_dtype
from . import kernels


class ParameterModule:
    """Holds named parameters, their gradients and the random generator."""

    def __init__(self, dtype, seed):
        object.__setattr__(self, "_params", {})
        self.dtype = as_dtype(dtype)
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._pack_cache = {}
        # backward calls from several Python threads accumulate into the same
        # grads (with the GIL released): one at a time
        self._grad_lock = threading.Lock()
        k = self._init_scale()
        for name, shape in self._parameter_shapes().items():
            self._params[name] = self._rng.uniform(-k, k, size=shape).astype(self.dtype)
        self.grads = {}
        self.zero_grad()

    # subclasses define _parameter_shapes() -> {name: shape} in PyTorch's order
    # and _init_scale()

    def __getattr__(self, name):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __setattr__(self, name, value):
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
        if a.dtype.kind != "f":
            raise TypeError(f"{name}: expected a floating-point array, got dtype {a.dtype}")
        self._params[name] = np.array(a, dtype=self.dtype, order="C", copy=True)

    def named_parameters(self):
        """(name, array) pairs in PyTorch's order; the arrays are the live parameters."""
        return list(self._params.items())

    def parameters(self):
        return list(self._params.values())

    def zero_grad(self):
        """Set every gradient in :attr:`grads` to zero."""
        for name, p in self._params.items():
            g = self.grads.get(name)
            if g is None or g.shape != p.shape:
                self.grads[name] = np.zeros_like(p)
            else:
                g.fill(0)

    def state_dict(self):
        """A dict of copies of the parameters, with PyTorch's keys and order."""
        return {k: v.copy() for k, v in self._params.items()}

    def load_state_dict(self, state_dict, strict=True):
        """Load parameters from a dict of arrays (e.g. a converted
        ``torch.nn.LSTM.state_dict()``).  A missing or unexpected key, or a
        wrong shape, is a KeyError/ValueError naming the key; nothing is
        changed unless everything fits."""
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
            if a.dtype.kind != "f":
                raise TypeError(
                    f"load_state_dict: {k}: expected floating-point values, got dtype {a.dtype}"
                )
            new[k] = np.array(a, dtype=self.dtype, order="C", copy=True)
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
        modified (a change replaces the entry), so a backward can keep them
        as the snapshot of what its forward used."""
        ws = tuple(
            self._params[n + sfx] if n + sfx in self._params else None
            for n in ("weight_ih", "weight_hh", "weight_hr")
        )
        entry = self._pack_cache.get(sfx)
        if entry is not None and kernels.same_weights(entry[0], ws):
            return entry
        w_ih, w_hh, w_hr = ws
        I, H, P = w_ih.shape[1], w_hh.shape[0] // 4, 0 if w_hr is None else w_hr.shape[0]
        blob = np.empty(kernels.packed_size(self.dtype.char, I, H, P), self.dtype)
        kernels.pack(w_ih, w_hh, w_hr, blob)
        entry = (tuple(None if w is None else w.copy() for w in ws), blob)
        self._pack_cache[sfx] = entry
        return entry
