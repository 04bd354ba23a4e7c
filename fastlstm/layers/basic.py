"""fastlstm.Linear, fastlstm.Embedding and fastlstm.Dropout: the layers
around an LSTM in a model, with torch's arguments, parameter names and
initialisation, and the layer protocol of fastlstm.LSTM (``__call__``,
``forward_train`` -> ``(y, backward)``, ``grads``, ``state_dict``)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .._checks import check_array, check_bool, check_int, check_probability, checked_setting
from .._native import kernels
from .._native.params import ParameterModule, fixed_at_construction
from .._typing import Array, EmbeddingBackward, LayerBackward, ReadOnly, Seed, Setting
from .base import BackwardClaim, Stateless, check_float_input, check_gradient

__all__ = ["Linear", "Embedding", "Dropout"]


class Linear(ParameterModule):
    """y = x @ weight.T + bias over the last dimension, as ``torch.nn.Linear``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
        Whether there is a bias.  As in torch, the attribute ``layer.bias``
        is then the parameter itself, and None without one.
    dtype : numpy.float32 or numpy.float64
    seed : int, numpy.random.Generator or None
        Initialisation as torch: weight (out_features, in_features) and bias
        (out_features,) both U(-1/sqrt(in_features), 1/sqrt(in_features))
        (torch's kaiming_uniform with a=sqrt(5) has that bound).

    ``x`` is (..., in_features) with any leading dimensions (one vector,
    a batch (B, F), or every step of a sequence (T, B, F)); the output is
    (..., out_features).  The matrix products run on fastlstm's own threaded
    GEMM (the LSTM's), not numpy's BLAS.  The backward uses the weights its
    forward ran with (a copy is kept), even if an optimizer changed them in
    between.
    """

    in_features: ReadOnly[int] = fixed_at_construction("in_features", "Features of the input.")
    out_features: ReadOnly[int] = fixed_at_construction("out_features", "Features of the output.")
    # the parameters (as torch's): ``layer.bias`` is None when bias=False
    weight: Array
    bias: Array | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: DTypeLike = np.float32,
        seed: Seed = None,
    ) -> None:
        self._in_features = check_int("in_features", in_features, 1)
        self._out_features = check_int("out_features", out_features, 1)
        self._bias_term = check_bool("bias", bias)
        super().__init__(dtype, seed)

    def __getattr__(self, name):
        if name == "bias" and not self.__dict__.get("_bias_term", True):
            return None  # as torch's Linear(bias=False).bias
        return super().__getattr__(name)

    def _parameter_shapes(self):
        shapes = {"weight": (self.out_features, self.in_features)}
        if self._bias_term:
            shapes["bias"] = (self.out_features,)
        return shapes

    def _init_scale(self):
        return 1.0 / np.sqrt(self.in_features)

    def __repr__(self):
        return (
            f"Linear({self.in_features}, {self.out_features}"
            f"{'' if self._bias_term else ', bias=False'}, dtype={self.dtype.name})"
        )

    def _rows(self, x):
        x = check_array("x", x, self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x: expected (..., in_features={self.in_features}), got shape {x.shape}"
            )
        return x.reshape(-1, self.in_features), x.shape[:-1]

    def _apply(self, x2, weight, bias):
        y = np.empty((x2.shape[0], self.out_features), self.dtype)
        if x2.shape[0] == 0:
            return y
        if bias is None:
            kernels.gemm(False, True, 1.0, x2, weight, 0.0, y)
        else:
            y[...] = bias
            kernels.gemm(False, True, 1.0, x2, weight, 1.0, y)
        return y

    def __call__(self, x: ArrayLike) -> Array:
        """Inference: (..., in_features) -> (..., out_features)."""
        x2, lead = self._rows(x)
        y = self._apply(x2, self._params["weight"], self._params.get("bias"))
        return y.reshape(lead + (self.out_features,))

    forward = __call__

    def forward_train(self, x: ArrayLike) -> tuple[Array, LayerBackward]:
        """-> ``(y, backward)``; ``backward(dy)`` returns dx and adds the
        weight (and bias) gradients into :attr:`grads`; one call each."""
        x2, lead = self._rows(x)
        weight = self._params["weight"].copy()  # what backward differentiates
        y = self._apply(x2, weight, self._params.get("bias"))
        out_shape = lead + (self.out_features,)
        claim = BackwardClaim("Linear")

        def backward(dy):
            dy2 = check_gradient("dy", dy, self.dtype, out_shape).reshape(-1, self.out_features)
            claim.take()
            dx = np.zeros((dy2.shape[0], self.in_features), self.dtype)
            if dy2.shape[0]:
                kernels.gemm(False, False, 1.0, dy2, weight, 0.0, dx)
                with self._grad_lock:
                    kernels.gemm(True, False, 1.0, dy2, x2, 1.0, self.grads["weight"])
                    if self._bias_term:
                        self.grads["bias"] += dy2.sum(axis=0)
            return dx.reshape(lead + (self.in_features,))

        return y.reshape(out_shape), backward


class Embedding(ParameterModule):
    """Rows of a table by integer index, as ``torch.nn.Embedding``.

    Parameters
    ----------
    num_embeddings, embedding_dim : int
    padding_idx : int or None
        In [-num_embeddings, num_embeddings) (a negative one counts from the
        end and is stored as the non-negative index, as torch does).  Its
        row starts as zeros and never receives a gradient.
    dtype : numpy.float32 or numpy.float64
    seed : int, numpy.random.Generator or None
        Initialisation N(0, 1), as torch.

    The input is an integer array of any shape (the output has one more
    dimension, embedding_dim); an index outside [0, num_embeddings) is a
    ValueError, a non-integer array a TypeError.  ``backward(dy)`` returns
    None: indices have no gradient.
    """

    num_embeddings: ReadOnly[int] = fixed_at_construction("num_embeddings", "Rows of the table.")
    embedding_dim: ReadOnly[int] = fixed_at_construction("embedding_dim", "Features of each row.")
    padding_idx: ReadOnly[int | None] = fixed_at_construction(
        "padding_idx", "The row kept out of training, or None."
    )

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        dtype: DTypeLike = np.float32,
        seed: Seed = None,
    ) -> None:
        n = self._num_embeddings = check_int("num_embeddings", num_embeddings, 1)
        self._embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"padding_idx must be an integer or None, got {padding_idx!r}")
            if not -n <= padding_idx < n:
                raise ValueError(
                    f"padding_idx must be in [-num_embeddings, num_embeddings) = [{-n}, {n}), "
                    f"got {padding_idx}"
                )
            padding_idx = int(padding_idx) % n
        self._padding_idx = padding_idx
        super().__init__(dtype, seed)

    def _parameter_shapes(self):
        return {"weight": (self.num_embeddings, self.embedding_dim)}

    def _initial_value(self, name, shape):
        w = self._rng.standard_normal(shape).astype(self.dtype)
        if self.padding_idx is not None:
            w[self.padding_idx] = 0
        return w

    def __repr__(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return (
            f"Embedding({self.num_embeddings}, {self.embedding_dim}{pad}, dtype={self.dtype.name})"
        )

    def _indices(self, x):
        if not isinstance(x, np.ndarray):
            if hasattr(x, "__array__") or isinstance(x, (list, tuple, int, np.integer)):
                x = np.asarray(x)
            else:
                raise TypeError(f"x: expected an integer array, got {type(x).__name__}")
        if x.dtype.kind not in "iu":
            raise TypeError(f"x: expected an integer array of indices, got dtype {x.dtype}")
        n = self.num_embeddings
        if x.size and (x.min() < 0 or x.max() >= n):
            bad = x[(x < 0) | (x >= n)].ravel()[0]
            raise ValueError(
                f"x: indices must be in [0, num_embeddings={n}), got {bad} (x of shape {x.shape})"
            )
        return x

    def __call__(self, x: ArrayLike) -> Array:
        """Inference: indices of any shape -> (*x.shape, embedding_dim)."""
        x = self._indices(x)
        return self._params["weight"][x]

    forward = __call__

    def forward_train(self, x: ArrayLike) -> tuple[Array, EmbeddingBackward]:
        """-> ``(y, backward)``; ``backward(dy)`` adds dy's rows into the
        gradient of the rows they came from (except padding_idx's) and
        returns None."""
        x = self._indices(x)
        y = self._params["weight"][x]
        claim = BackwardClaim("Embedding")
        index = x.ravel()

        def backward(dy):
            dy2 = check_gradient("dy", dy, self.dtype, y.shape).reshape(-1, self.embedding_dim)
            claim.take()
            idx, rows = index, dy2
            if self.padding_idx is not None:
                keep = idx != self.padding_idx
                idx, rows = idx[keep], rows[keep]
            with self._grad_lock:
                np.add.at(self.grads["weight"], idx, rows)
            return None

        return y, backward


class Dropout(Stateless):
    """Inverted dropout, as ``torch.nn.Dropout``: in :meth:`forward_train`
    each entry is zeroed with probability ``p`` and the rest scaled by
    1/(1-p); ``__call__`` (inference) is the identity.

    Parameters
    ----------
    p : float in [0, 1)
    seed : int, numpy.random.Generator or None
        The layer's own generator for the masks (runs are reproducible; it
        pickles with the layer, and is not saved by fastlstm.save).

    No parameters and no dtype of its own: float32 or float64 input, the
    output in the same dtype.
    """

    def __init__(self, p: float = 0.5, seed: Seed = None) -> None:
        self.p = p
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    p: Setting[float] = checked_setting(
        "p", check_probability, "The probability of zeroing an entry, in [0, 1)."
    )

    def __repr__(self):
        return f"Dropout(p={self.p})"

    def __call__(self, x: ArrayLike) -> Array:
        """Inference: x itself (checked)."""
        return check_float_input("x", x)

    forward = __call__

    def forward_train(self, x: ArrayLike) -> tuple[Array, LayerBackward]:
        """-> ``(y, backward)``; ``backward(dy)`` returns dy times the mask."""
        x = check_float_input("x", x)
        dt = x.dtype
        if self.p == 0:
            mask = None
            y = x.copy()
        else:
            keep = 1.0 - self.p
            mask = (self._rng.random(x.shape) < keep).astype(dt) / dt.type(keep)
            y = x * mask
        claim = BackwardClaim("Dropout")

        def backward(dy):
            dy = check_gradient("dy", dy, dt, x.shape)
            claim.take()
            return dy.copy() if mask is None else dy * mask

        return y, backward
