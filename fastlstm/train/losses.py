"""Loss functions over numpy arrays, each returning ``(loss, grad)``.

``grad`` is the gradient of the loss with respect to ``input`` (the
predictions or logits), ready to hand to a layer's backward; with
``reduction="none"`` the loss is per element (per sample for
cross_entropy) and ``grad`` is the gradient of its sum.  Values, reductions
and argument conventions are PyTorch's (torch.nn.functional.mse_loss,
cross_entropy, binary_cross_entropy_with_logits), except that the class
dimension of cross_entropy's logits is the *last* one, as an LSTM's output
has it: logits (N, C) with targets (N,), or (T, B, C) with (T, B).

Sequences: with ``lengths`` (B,) the input is sequence shaped, (T, B, ...)
time-major or (B, T, ...) with ``batch_first=True``, and steps t >=
lengths[b] are padding: they contribute nothing to the loss or the gradient
(their targets are not even read), and the mean is over the valid elements
only.

The computation runs in the input's dtype (float32 or float64); a scalar
loss is returned as a Python float.
"""

from typing import Any, Optional, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._native import kernels

__all__ = ["mse_loss", "cross_entropy", "binary_cross_entropy_with_logits"]

Array = NDArray[np.floating[Any]]
# a float for reduction "mean" or "sum", an array for "none"
Loss = Union[float, Array]

_REDUCTIONS = ("mean", "sum", "none")


def _float_input(x: ArrayLike, what: str) -> Array:
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        if a.dtype.kind in "biu":
            a = a.astype(np.float64)
        else:
            raise TypeError(f"{what}: expected a float32 or float64 array, got dtype {a.dtype}")
    return a


def _same_shape_inputs(input: ArrayLike, target: ArrayLike) -> tuple[Array, NDArray[Any]]:
    """(input as a float array, target as a numeric array of input's shape),
    for the element-wise losses."""
    x = _float_input(input, "input")
    y = np.asarray(target)
    if y.shape != x.shape:
        raise ValueError(f"target: expected input's shape {x.shape}, got {y.shape}")
    if y.dtype.kind not in "biuf":
        raise TypeError(f"target: expected a numeric array, got dtype {y.dtype}")
    return x, y


def _matvec(a: Array, v: Array) -> Array:
    """a (N, C) @ v (C,) on fastlstm's own GEMM and threads: numpy's BLAS
    would wake its thread pool, which keeps spinning on the cores after the
    call and slows the fastlstm kernels that follow."""
    out = np.zeros((a.shape[0], 1), a.dtype)
    if out.size and a.shape[1]:
        a = np.ascontiguousarray(a)
        kernels.gemm(
            False, False, 1.0, a, np.ascontiguousarray(v, a.dtype).reshape(-1, 1), 0.0, out
        )
    return out[:, 0]


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")


def _step_mask(
    shape: tuple[int, ...], lengths: Optional[ArrayLike], batch_first: bool, what: str
) -> Optional[NDArray[np.bool_]]:
    """(T, B) or (B, T) mask of the valid steps (the first two dims of
    ``shape``), or None without lengths."""
    if lengths is None:
        return None
    if len(shape) < 2:
        raise ValueError(
            f"lengths: {what} must be sequence shaped, (T, B, ...) or with batch_first "
            f"(B, T, ...), got shape {shape}"
        )
    L = np.asarray(lengths)
    if L.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {L.dtype}")
    B, T = (shape[0], shape[1]) if batch_first else (shape[1], shape[0])
    if L.shape != (B,):
        layout = "(B, T, ...)" if batch_first else "(T, B, ...)"
        raise ValueError(
            f"lengths: expected shape ({B},) for {what} of shape {shape} {layout}, got {L.shape}"
        )
    if L.size and (L.min() < 0 or L.max() > T):
        raise ValueError(f"lengths: every length must be in [0, {T}] (T), got {L.tolist()}")
    steps = np.arange(T)
    if batch_first:
        return steps[None, :] < L[:, None]
    return steps[:, None] < L[None, :]


def _expand(mask: NDArray[np.bool_], ndim: int) -> NDArray[np.bool_]:
    """The (T, B) mask broadcastable against an array of ``ndim`` dims."""
    return mask.reshape(mask.shape + (1,) * (ndim - 2))


def _reduce(
    loss: Array, grad: Array, reduction: str, count: Union[int, float], dtype: Any
) -> tuple[Loss, Array]:
    if reduction == "none":
        return loss, grad
    total = loss.sum(dtype=dtype)
    if reduction == "sum":
        return float(total), grad
    if count == 0:  # torch: the mean of nothing is nan
        return float("nan"), grad
    grad /= np.asarray(count, dtype)
    return float(total / np.asarray(count, dtype)), grad


def mse_loss(
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    *,
    lengths: Optional[ArrayLike] = None,
    batch_first: bool = False,
) -> tuple[Loss, Array]:
    """Mean squared error (input - target)^2, as ``torch.nn.functional.mse_loss``.
    ``target`` has input's shape."""
    _check_reduction(reduction)
    x, y = _same_shape_inputs(input, target)
    mask = _step_mask(x.shape, lengths, batch_first, "input")
    diff = x - y.astype(x.dtype, copy=False)
    count: int = x.size
    if mask is not None:  # padding may hold anything, even inf or nan
        diff = np.where(_expand(mask, x.ndim), diff, x.dtype.type(0))
        count = int(mask.sum()) * int(np.prod(x.shape[2:], dtype=np.int64))
    loss = diff * diff
    grad = np.multiply(diff, 2, out=diff)
    return _reduce(loss, grad, reduction, count, x.dtype)


def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    lengths: Optional[ArrayLike] = None,
    batch_first: bool = False,
) -> tuple[Loss, Array]:
    """Cross-entropy between logits (..., C) (classes last) and integer class
    targets (...), as ``torch.nn.functional.cross_entropy``.

    Computed from a stable log-softmax.  Samples whose target is
    ``ignore_index`` (and padded steps) contribute nothing.  ``weight`` (C,)
    rescales each class; with ``reduction="mean"`` the loss is then divided
    by the sum of the weights of the targets (torch's weighted mean).
    ``label_smoothing`` in [0, 1] mixes the one-hot target with the uniform
    distribution over the C classes."""
    _check_reduction(reduction)
    x = _float_input(input, "input")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"input: expected logits of shape (..., C) with C >= 1, got {x.shape}")
    C = x.shape[-1]
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"target: expected integer class indices, got dtype {t.dtype} "
            "(probability targets are not supported)"
        )
    if t.shape != x.shape[:-1]:
        raise ValueError(
            f"target: expected shape {x.shape[:-1]} (input's {x.shape} without the class "
            f"dimension, which is last), got {t.shape}"
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing: expected a value in [0, 1], got {label_smoothing}")
    if weight is not None:
        w = np.asarray(weight)
        if w.shape != (C,):
            raise ValueError(f"weight: expected shape ({C},) (one per class), got {w.shape}")
        w = w.astype(x.dtype)
    mask = _step_mask(x.shape, lengths, batch_first, "input")

    logits = x.reshape(-1, C)
    tf = t.reshape(-1).astype(np.int64)
    valid = tf != ignore_index
    if mask is not None:
        valid &= mask.reshape(-1)
        # padding may hold anything, even inf or nan
        logits = np.where(mask.reshape(-1, 1), logits, x.dtype.type(0))
    bad = valid & ((tf < 0) | (tf >= C))
    if bad.any():
        raise ValueError(
            f"target: class indices must be in [0, {C}) (C={C}) or ignore_index="
            f"{ignore_index}; got {tf[bad][:5].tolist()}"
        )
    tc = np.where(valid, tf, 0)
    rows = np.arange(tc.size)

    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    s = p.sum(axis=1, keepdims=True)
    logp = z - np.log(s)
    p /= s

    vf = valid.astype(x.dtype)
    wy = vf if weight is None else w[tc] * vf  # each sample's weight, 0 if ignored
    eps = label_smoothing
    loss = -logp[rows, tc] * wy
    if eps > 0:
        loss *= 1 - eps
        smooth = -(logp.sum(axis=1) if weight is None else _matvec(logp, w)) * vf
        loss += smooth * (eps / C)
    # d loss_i / d x_ic = p_ic * sum_c' a_ic' - a_ic, a_ic the target weights
    a_sum = wy * (1 - eps)
    if eps > 0:
        a_sum += vf * ((eps / C) * (C if weight is None else w.sum()))
    grad = p * a_sum[:, None]
    grad[rows, tc] -= wy * (1 - eps)
    if eps > 0:
        grad -= (vf * (eps / C))[:, None] * (1 if weight is None else w[None, :])
    count = float(wy.sum(dtype=x.dtype))
    loss_r, grad_r = _reduce(loss, grad, reduction, count, x.dtype)
    grad_r = grad_r.reshape(x.shape)
    if reduction == "none":
        return np.asarray(loss_r).reshape(t.shape), grad_r
    return loss_r, grad_r


def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    pos_weight: Optional[ArrayLike] = None,
    reduction: str = "mean",
    *,
    lengths: Optional[ArrayLike] = None,
    batch_first: bool = False,
) -> tuple[Loss, Array]:
    """Binary cross-entropy of sigmoid(input) against targets in [0, 1], as
    ``torch.nn.functional.binary_cross_entropy_with_logits``, computed
    stably from the logits.  ``weight`` (broadcast to input's shape)
    rescales each element; ``pos_weight`` (broadcast along the last, class
    dimension) weighs the positive term."""
    _check_reduction(reduction)
    x, y = _same_shape_inputs(input, target)
    y = y.astype(x.dtype, copy=False)
    extra: list[Optional[Array]] = []
    for name, v in (("weight", weight), ("pos_weight", pos_weight)):
        if v is None:
            extra.append(None)
            continue
        a = np.asarray(v)
        try:
            if np.broadcast_shapes(a.shape, x.shape) != x.shape:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{name}: shape {a.shape} does not broadcast to input's shape {x.shape}"
            ) from None
        extra.append(a.astype(x.dtype))
    w, pw = extra
    mask = _step_mask(x.shape, lengths, batch_first, "input")
    if mask is not None:  # padding may hold anything, even inf or nan
        m = _expand(mask, x.ndim)
        x = np.where(m, x, x.dtype.type(0))
        y = np.where(m, y, y.dtype.type(0))

    # softplus(-x) = -log sigmoid(x); sigmoid(-x) = exp(-x - softplus(-x))
    sp = np.log1p(np.exp(-np.abs(x)))
    sp += np.maximum(-x, 0)
    sig_neg = np.exp(-x - sp)
    one_minus_y = 1 - y
    if pw is None:
        loss = one_minus_y * x + sp
        grad = one_minus_y - sig_neg
    else:
        lw = (pw - 1) * y + 1
        loss = one_minus_y * x + lw * sp
        grad = one_minus_y - lw * sig_neg
    if w is not None:
        loss *= w
        grad *= w
    count: int = x.size
    if mask is not None:
        loss *= m
        grad *= m
        count = int(mask.sum()) * int(np.prod(x.shape[2:], dtype=np.int64))
    return _reduce(loss, grad, reduction, count, x.dtype)
