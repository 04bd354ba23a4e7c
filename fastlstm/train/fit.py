"""Keras-style training of a fastlstm.Sequential: ``compile``, ``fit``,
``evaluate`` and ``predict`` (mixed into Sequential, see :class:`Trainable`).

Data is always given batch first, whatever the model's layout: X is an
(N, T, F) array, or a list of N (T_i, F) arrays of different lengths
(padded here with zeros, their lengths passed on to the layers that take
them); integer token sequences, (N, T) or a list of (T_i,), for a model
whose first layer is an Embedding.  A model with no LSTM takes X as it is
((N, F) for a Linear).  Batches are slices of the padded arrays, each cut
to its longest sequence; the per-step work is the layers' own.

Targets are batch first too: one per sequence ((N,), (N, C)) when the model
reduces the sequence (LastStep, MeanPool, MaxPool after its last LSTM),
one per step ((N, T[, C]) or a list of (T_i[, C])) when it does not; padded
steps are left out of the loss and the metrics.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._typing import Array, LossFn, Seed, Sequences, Targets
from ..layers.basic import Embedding
from ..layers.lstm import LSTM
from ..layers.reducers import _Reducer
from . import losses as _losses
from . import optim as _optim
from .callbacks import Callback, History, LearningRateScheduler

__all__ = ["Trainable", "as_padded"]

_OPTIMIZERS = {
    "sgd": _optim.SGD,
    "adam": _optim.Adam,
    "adamw": _optim.AdamW,
    "rmsprop": _optim.RMSprop,
}
_LOSS_NAMES = ("mse", "cross_entropy", "bce")
_METRICS = ("accuracy", "mse", "mae")


# ---- data -------------------------------------------------------------------
def as_padded(X, lengths=None, dtype=None, what="X"):
    """-> (array (N, T, ...) batch first, lengths (N,) int64 or None).

    A list of arrays is padded with zeros to the longest; their lengths are
    returned (None when all are equally long and ``lengths`` is not given).
    """
    if isinstance(X, (list, tuple)) and (len(X) == 0 or np.ndim(X[0]) >= 1):
        seqs = [np.asarray(x) if dtype is None else np.asarray(x, dtype) for x in X]
        if not seqs:
            raise ValueError(f"{what}: got an empty list of sequences")
        tail = {s.shape[1:] for s in seqs}
        if len(tail) != 1 or seqs[0].ndim < 1:
            raise ValueError(
                f"{what}: every sequence must be (T_i, ...) with the same trailing shape, "
                f"got {sorted(s.shape for s in seqs)[:4]}"
            )
        own = np.array([len(s) for s in seqs], np.int64)
        if lengths is not None:
            given = np.asarray(lengths)
            if given.shape != own.shape or np.any(given != own):
                raise ValueError(f"lengths: {what} is a list of sequences of lengths {own}")
        T = int(own.max())
        out = np.zeros((len(seqs), T) + seqs[0].shape[1:], np.result_type(*seqs))
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
        if lengths is None and np.all(own == T):
            return out, None
        return out, own
    out = np.asarray(X) if dtype is None else np.asarray(X, dtype)
    if lengths is None:
        return out, None
    L = np.asarray(lengths)
    if L.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {L.dtype}")
    if out.ndim < 2 or L.shape != (out.shape[0],):
        raise ValueError(f"lengths: expected shape ({out.shape[0]},) for {what} {out.shape}")
    if L.size and (L.min() < 1 or L.max() > out.shape[1]):
        raise ValueError(f"lengths: every length must be in [1, {out.shape[1]}]")
    return out, L.astype(np.int64)


def _flat_layers(model):
    for layer in getattr(model, "layers", [model]):
        if hasattr(layer, "layers") and layer is not model:
            yield from _flat_layers(layer)
        else:
            yield layer


def _structure(model):
    """(has an LSTM, its batch_first, output has a time axis, takes tokens)."""
    layers = list(_flat_layers(model))
    lstm = next((la for la in layers if isinstance(la, LSTM)), None)
    sequence = False
    for layer in layers:
        if isinstance(layer, LSTM):
            sequence = True
        elif isinstance(layer, _Reducer):
            sequence = False
    tokens = bool(layers) and isinstance(layers[0], Embedding)
    return lstm is not None, (True if lstm is None else lstm.batch_first), sequence, tokens


# ---- losses and metrics -------------------------------------------------------
def _fit_target(pred, target):
    t = np.asarray(target)
    if t.shape != pred.shape and t.size == pred.size:
        t = t.reshape(pred.shape)
    return t.astype(pred.dtype, copy=False)


class _NamedLoss:
    """A loss chosen by name, as ``(pred, target, lengths) -> (loss, grad)``
    (a class, not a closure, so that a compiled model pickles)."""

    def __init__(self, name):
        self.name = name

    def __call__(self, p, t, L):
        if self.name == "mse":
            return _losses.mse_loss(p, _fit_target(p, t), lengths=L, batch_first=True)
        if self.name == "bce":
            return _losses.binary_cross_entropy_with_logits(
                p, _fit_target(p, t), lengths=L, batch_first=True
            )
        t = np.asarray(t).astype(np.int64, copy=False)
        return _losses.cross_entropy(p, t, lengths=L, batch_first=True)


def _step_weights(pred, lengths, ndim):
    """(B, T, 1...) 0/1 weights of the valid steps of a sequence output, or None."""
    if lengths is None:
        return None
    mask = np.arange(pred.shape[1])[None, :] < lengths[:, None]
    return mask.reshape(mask.shape + (1,) * (ndim - 2))


def _metric(name, loss_name, pred, target, lengths):
    """-> (sum, count) of a metric over one batch (padding left out)."""
    pred = np.asarray(pred, np.float64)
    t = np.asarray(target)
    if name == "accuracy":
        if loss_name == "cross_entropy" or (t.ndim == pred.ndim - 1 and pred.shape[-1] > 1):
            hit = pred.argmax(axis=-1) == t.astype(np.int64)
        else:
            t = t.reshape(pred.shape) if t.size == pred.size else t
            cut = 0.0 if loss_name == "bce" else 0.5
            hit = (pred > cut) == (t > 0.5)
        w = _step_weights(hit, lengths, hit.ndim)
    else:
        t = t.reshape(pred.shape) if t.shape != pred.shape and t.size == pred.size else t
        d = pred - t.astype(np.float64)
        hit = d * d if name == "mse" else np.abs(d)
        w = _step_weights(hit, lengths, hit.ndim)
    if w is None:
        return float(hit.sum()), hit.size
    w = np.broadcast_to(w, hit.shape)
    return float(np.where(w, hit, 0).sum()), int(w.sum())


# ---- the training mixin ---------------------------------------------------------
class _Compiled:
    """What compile() chose."""

    def __init__(self):
        self.loss = self.loss_name = self.optimizer = self.metrics = self.clip_norm = None


def _progress(verbose, total, epoch, epochs):
    if verbose != 1:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=f"Epoch {epoch + 1}/{epochs}", leave=True, file=sys.stderr)


def _format_logs(logs):
    return " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())


class Trainable:
    """``compile`` / ``fit`` / ``evaluate`` / ``predict`` for a Sequential.

    ``model.compile(loss="mse", optimizer="adam", metrics=["mae"], lr=1e-3)``
    then ``history = model.fit(X, y, epochs=10, batch_size=32)``.
    """

    stop_training = False

    # ---- setup ----------------------------------------------------------------
    def compile(
        self,
        loss: str | LossFn = "mse",
        optimizer: str | _optim.Optimizer = "adam",
        metrics: list[str] | None = None,
        *,
        lr: float | None = None,
        clip_norm: float | None = None,
    ) -> None:
        """Choose the loss, the optimizer and the reported metrics.

        loss : "mse", "cross_entropy" (integer class targets, logits last),
            "bce" (binary cross-entropy on logits) or a callable
            ``(pred, target, lengths) -> (loss, grad)`` (pred batch first;
            lengths None unless the output is per step).
        optimizer : "sgd", "adam", "adamw", "rmsprop" (with ``lr``, else
            torch's default, 1e-3; SGD needs ``lr``), or a fastlstm.optim
            optimizer built over this model.
        metrics : list of "accuracy", "mse", "mae".
        clip_norm : clip the gradients' global 2-norm to this before each step.
        """
        c = _Compiled()
        if callable(loss):
            c.loss, c.loss_name = loss, getattr(loss, "__name__", "loss")
        elif loss in _LOSS_NAMES:
            c.loss, c.loss_name = _NamedLoss(loss), loss
        else:
            raise ValueError(f"loss: expected one of {_LOSS_NAMES} or a callable, got {loss!r}")
        if isinstance(optimizer, str):
            key = optimizer.lower()
            if key not in _OPTIMIZERS:
                raise ValueError(
                    f"optimizer: expected one of {sorted(_OPTIMIZERS)} or an optimizer, "
                    f"got {optimizer!r}"
                )
            if lr is None and key == "sgd":
                raise ValueError("optimizer 'sgd' needs lr")
            kwargs = {} if lr is None else {"lr": float(lr)}
            c.optimizer = _OPTIMIZERS[key]([self], **kwargs)
        elif isinstance(optimizer, _optim.Optimizer):
            if lr is not None:
                optimizer.lr = float(lr)
            c.optimizer = optimizer
        else:
            raise TypeError(
                f"optimizer: expected a name or a fastlstm.optim optimizer, "
                f"got {type(optimizer).__name__}"
            )
        metrics = list(metrics or [])
        for m in metrics:
            if m not in _METRICS:
                raise ValueError(f"metrics: expected names among {_METRICS}, got {m!r}")
        c.metrics = metrics
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"clip_norm: expected a positive number or None, got {clip_norm}")
        c.clip_norm = clip_norm
        self._compiled = c

    @property
    def optimizer(self) -> _optim.Optimizer | None:
        """The optimizer set by :meth:`compile` (None before)."""
        c = getattr(self, "_compiled", None)
        return None if c is None else c.optimizer

    def _need_compiled(self, what):
        c = getattr(self, "_compiled", None)
        if c is None:
            raise RuntimeError(f"{what}: call compile(loss=..., optimizer=...) first")
        return c

    # ---- data -------------------------------------------------------------------
    def _prepare(self, X, y, lengths=None, what="X"):
        has_lstm, _, sequence, tokens = _structure(self)
        dtype = None if tokens else (self.dtype or np.float32)
        X, L = as_padded(X, lengths, dtype, what)
        if tokens and X.dtype.kind not in "iu":
            raise TypeError(f"{what}: a model starting with an Embedding takes integer tokens")
        if not has_lstm:
            L = None
        if y is not None:
            if sequence and isinstance(y, (list, tuple)) and len(y) and np.ndim(y[0]) >= 1:
                y, _ = as_padded(y, None, None, "y")
            else:
                y = np.asarray(y)
            if len(y) != len(X):
                raise ValueError(f"y: {len(y)} targets for {len(X)} samples in {what}")
            if sequence and (y.ndim < 2 or y.shape[1] != X.shape[1]):
                raise ValueError(
                    f"y: the model's output is per step, expected targets (N, {X.shape[1]}, ...) "
                    f"or a list of per-step arrays, got {y.shape}"
                )
        return X, y, L

    def _batch(self, X, y, L, idx):
        has_lstm, batch_first, sequence, _ = _structure(self)
        lb = None if L is None else L[idx]
        xb = X[idx]
        yb = None if y is None else y[idx]
        if lb is not None:
            T = int(lb.max())
            xb = xb[:, :T]
            if sequence and yb is not None:
                yb = yb[:, :T]
        if has_lstm and not batch_first:
            xb = np.ascontiguousarray(np.swapaxes(xb, 0, 1))
        return xb, yb, lb

    def _to_batch_first(self, out):
        has_lstm, batch_first, sequence, _ = _structure(self)
        if sequence and not batch_first:
            return np.swapaxes(out, 0, 1)
        return out

    def _from_batch_first(self, grad):
        has_lstm, batch_first, sequence, _ = _structure(self)
        if sequence and not batch_first:
            grad = np.swapaxes(grad, 0, 1)
        return np.ascontiguousarray(grad)

    # ---- training -----------------------------------------------------------------
    def train_on_batch(self, X: Sequences, y: Targets, lengths: ArrayLike | None = None) -> float:
        """One optimizer step on one batch (batch first); -> the batch loss."""
        c = self._need_compiled("train_on_batch")
        X, y, L = self._prepare(X, y, lengths)
        return self._step(c, X, y, L, np.arange(len(X)))[0]

    def _step(self, c, X, y, L, idx):
        sequence = _structure(self)[2]
        xb, yb, lb = self._batch(X, y, L, idx)
        self.zero_grad()
        out, backward = self.forward_train(xb, lengths=lb)
        pred = self._to_batch_first(out)
        loss, grad = c.loss(pred, yb, lb if sequence else None)
        backward(self._from_batch_first(grad))
        if c.clip_norm is not None:
            _optim.clip_grad_norm_([self], c.clip_norm)
        c.optimizer.step()
        return float(loss), pred, yb, (lb if sequence else None)

    def fit(
        self,
        X: Sequences,
        y: Targets,
        lengths: ArrayLike | None = None,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Any, ...] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: list[Callback] | None = None,
        verbose: int = 1,
        seed: Seed = None,
        initial_epoch: int = 0,
    ) -> History:
        """Train for ``epochs`` passes over (X, y); -> a :class:`History`.

        The epoch's ``loss`` is the mean of its batch losses weighted by the
        batches' sizes; the metrics are computed over the epoch's training
        predictions (with dropout), ``val_*`` over ``validation_data``
        ``(Xv, yv)`` or ``(Xv, yv, lengths_v)``, or over the last
        ``validation_split`` fraction of (X, y), taken before shuffling.
        ``shuffle`` draws each epoch's order from ``seed``.  ``verbose``: 0
        silent, 1 a tqdm bar per epoch when tqdm is installed (else as 2),
        2 one line per epoch.  Callbacks see ``on_train_begin``,
        ``on_epoch_begin``, ``on_epoch_end`` (may set
        ``model.stop_training``) and ``on_train_end``.
        """
        c = self._need_compiled("fit")
        X, y, L = self._prepare(X, y, lengths)
        if y is None:
            raise ValueError("fit: y is required")
        epochs = int(epochs)
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data: expected (X_val, y_val[, lengths_val])")
            val = self._prepare(*validation_data[:2], *validation_data[2:], what="X_val")
        elif validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(
                    f"validation_split: expected a value in (0, 1), got {validation_split}"
                )
            n_val = int(math.floor(len(X) * validation_split))
            if n_val < 1 or n_val >= len(X):
                raise ValueError("validation_split: leaves no validation or no training sample")
            cut = len(X) - n_val
            val = (X[cut:], y[cut:], None if L is None else L[cut:])
            X, y, L = X[:cut], y[:cut], None if L is None else L[:cut]
        rng = np.random.default_rng(seed)
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected Callback objects, got {type(cb).__name__}")
            cb.set_model(self)
        history = History()
        self.history = history
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin()
        N = len(X)
        n_batches = -(-N // batch_size)
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            order = rng.permutation(N) if shuffle else np.arange(N)
            bar = _progress(verbose, n_batches, epoch, epochs)
            total = 0.0
            sums = {m: [0.0, 0] for m in c.metrics}
            for b in range(n_batches):
                idx = order[b * batch_size : (b + 1) * batch_size]
                loss, pred, yb, lb = self._step(c, X, y, L, idx)
                total += loss * len(idx)
                for m in c.metrics:
                    s, n = _metric(m, c.loss_name, pred, yb, lb)
                    sums[m][0] += s
                    sums[m][1] += n
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{total / ((b * batch_size) + len(idx)):.4g}")
            logs = {"loss": total / N}
            for m in c.metrics:
                logs[m] = sums[m][0] / max(sums[m][1], 1)
            if val is not None:
                for k, v in self._evaluate(c, *val, batch_size=max(batch_size, 256)).items():
                    logs["val_" + k] = v
            for cb in callbacks:
                if isinstance(cb, LearningRateScheduler):
                    logs.setdefault("lr", c.optimizer.lr)
            history.append(epoch, logs)
            if bar is not None:
                bar.set_postfix_str(_format_logs(logs))
                bar.close()
            elif verbose:
                print(f"Epoch {epoch + 1}/{epochs} - {_format_logs(logs)}")
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        return history

    # ---- inference --------------------------------------------------------------------
    def _forward(self, X, L, batch_size):
        sequence = _structure(self)[2]
        outs = []
        for start in range(0, len(X), batch_size):
            idx = np.arange(start, min(start + batch_size, len(X)))
            xb, _, lb = self._batch(X, None, L, idx)
            out = np.array(self._to_batch_first(self(xb, lengths=lb)))
            if sequence and lb is not None:  # padded steps hold zeros
                out[np.arange(out.shape[1])[None, :] >= lb[:, None]] = 0
            if sequence and out.shape[1] < X.shape[1]:  # back to the full padded length
                pad = np.zeros((out.shape[0], X.shape[1] - out.shape[1]) + out.shape[2:], out.dtype)
                out = np.concatenate([out, pad], axis=1)
            outs.append(out)
        return np.concatenate(outs, axis=0)

    def _evaluate(self, c, X, y, L, batch_size=256):
        pred = self._forward(X, L, batch_size)
        sequence = _structure(self)[2]
        Ls = L if sequence else None
        loss, _ = c.loss(pred, y, Ls)
        logs = {"loss": float(loss)}
        for m in c.metrics:
            s, n = _metric(m, c.loss_name, pred, y, Ls)
            logs[m] = s / max(n, 1)
        return logs

    def evaluate(
        self,
        X: Sequences,
        y: Targets,
        lengths: ArrayLike | None = None,
        batch_size: int = 256,
        verbose: int = 0,
    ) -> dict[str, float]:
        """-> {"loss": ..., metric: ...} over all of (X, y), without dropout
        (the loss over the whole set, not a mean of batch losses)."""
        c = self._need_compiled("evaluate")
        X, y, L = self._prepare(X, y, lengths)
        logs = self._evaluate(c, X, y, L, batch_size=int(batch_size))
        if verbose:
            print(_format_logs(logs))
        return logs

    def predict(
        self, X: Sequences, lengths: ArrayLike | None = None, batch_size: int = 256
    ) -> Array:
        """The model's output for X, batch first, without dropout.  A per-step
        output of variable-length input is padded with zeros to the longest."""
        X, _, L = self._prepare(X, None, lengths)
        if len(X) == 0:
            raise ValueError("predict: X holds no sample")
        return self._forward(X, L, int(batch_size))
