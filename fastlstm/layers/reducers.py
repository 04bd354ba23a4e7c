"""Sequence reducers: from an LSTM's output (T, B, F) (or (B, T, F) with
batch_first, or an unbatched (T, F)) to one vector per sequence (B, F),
over each sequence's valid steps (``lengths``, as given to the LSTM).

fastlstm.LastStep, fastlstm.MeanPool, fastlstm.MaxPool; no parameters.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._checks import check_bool, check_lengths, checked_setting
from .._typing import Array, LayerBackward, Setting
from .base import BackwardClaim, Stateless, check_float_input, check_gradient

__all__ = ["LastStep", "MeanPool", "MaxPool"]


class _Reducer(Stateless):
    takes_lengths = True  # fastlstm.Sequential passes lengths on

    def __init__(self, batch_first: bool = False) -> None:
        self.batch_first = batch_first

    batch_first: Setting[bool] = checked_setting(
        "batch_first", check_bool, "Input laid out (B, T, F) instead of (T, B, F)."
    )

    def _config_repr(self):
        return "batch_first=True" if self.batch_first else ""

    def __repr__(self):
        return f"{type(self).__name__}({self._config_repr()})"

    def _inputs(self, x, lengths):
        """-> (x as (T, B, F) time-major view, lengths (B,) int64 in [1, T],
        unbatched flag)."""
        x = check_float_input("x", x)
        if x.ndim == 2:
            if lengths is not None:
                raise ValueError("lengths: not supported with unbatched (2-D) input")
            unbatched, xt = True, x[:, None, :]
        elif x.ndim == 3:
            unbatched, xt = False, x.transpose(1, 0, 2) if self.batch_first else x
        else:
            layout = "(B, T, F)" if self.batch_first else "(T, B, F)"
            raise ValueError(
                f"x: expected a 3-D array {layout} or an unbatched 2-D (T, F), got shape {x.shape}"
            )
        T, B = xt.shape[0], xt.shape[1]
        if T == 0:
            raise ValueError(f"x: sequence length must be >= 1, got shape {x.shape}")
        if lengths is None:
            return xt, np.full(B, T, np.int64), unbatched
        lens = check_lengths(lengths, B)
        if B and (lens.min() < 1 or lens.max() > T):
            raise ValueError(
                f"lengths: every length must be in [1, T={T}], got min {lens.min()}, "
                f"max {lens.max()}"
            )
        return xt, lens, unbatched

    def __call__(self, x: ArrayLike, lengths: ArrayLike | None = None) -> Array:
        """Inference: -> (B, F), or (F,) for unbatched input."""
        xt, lens, unbatched = self._inputs(x, lengths)
        y = self._reduce(xt, lens)[0]
        return y[0] if unbatched else y

    forward = __call__

    def forward_train(
        self, x: ArrayLike, lengths: ArrayLike | None = None
    ) -> tuple[Array, LayerBackward]:
        """-> ``(y, backward)``; ``backward(dy)`` returns dx shaped as x
        (zero on the padding steps)."""
        xt, lens, unbatched = self._inputs(x, lengths)
        y, saved = self._reduce(xt, lens)
        dt = y.dtype
        y = y[0] if unbatched else y
        claim = BackwardClaim(type(self).__name__)

        def backward(dy):
            dy = check_gradient("dy", dy, dt, y.shape)
            claim.take()
            dx = np.zeros(xt.shape, dt)  # time-major
            self._spread(dx, dy[None, :] if unbatched else dy, lens, saved)
            if unbatched:
                return dx[:, 0, :]
            if self.batch_first:
                dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
            return dx

        return y, backward


class LastStep(_Reducer):
    """The output at each sequence's last valid step: ``x[lengths[b] - 1, b]``.

    With ``bidirectional=True`` (after a bidirectional LSTM, whose features
    are [forward H | reverse H]) the forward half is taken at the last valid
    step and the reverse half at step 0, where the reverse direction has
    read the whole sequence.  That is what torch users build from
    ``output`` (``cat(out[len-1, b, :H], out[0, b, H:])``), and equals
    ``cat(h_n[-2], h_n[-1])`` of the last layer.  F must then be even.
    """

    def __init__(self, batch_first: bool = False, bidirectional: bool = False) -> None:
        super().__init__(batch_first)
        self._bidirectional = check_bool("bidirectional", bidirectional)

    @property
    def bidirectional(self) -> bool:
        """Features are [forward | reverse] halves of a bidirectional LSTM."""
        return self._bidirectional

    def _config_repr(self):
        parts = [super()._config_repr(), "bidirectional=True" if self.bidirectional else ""]
        return ", ".join(p for p in parts if p)

    def _reduce(self, xt, lens):
        B, F = xt.shape[1], xt.shape[2]
        b = np.arange(B)
        if not self.bidirectional:
            return xt[lens - 1, b], None
        if F % 2:
            raise ValueError(
                f"x: bidirectional LastStep needs an even feature count "
                f"[forward | reverse], got shape {xt.shape[2]}"
            )
        h = F // 2
        y = np.empty((B, F), xt.dtype)
        y[:, :h] = xt[lens - 1, b, :h]
        y[:, h:] = xt[0, :, h:]
        return y, None

    def _spread(self, dx, dy, lens, saved):
        b = np.arange(dx.shape[1])
        if not self.bidirectional:
            dx[lens - 1, b] = dy
            return
        h = dx.shape[2] // 2
        dx[lens - 1, b, :h] = dy[:, :h]
        dx[0, :, h:] += dy[:, h:]  # (adds: step 0 may be the last step too)


class MeanPool(_Reducer):
    """The mean over each sequence's valid steps."""

    def _reduce(self, xt, lens):
        T = xt.shape[0]
        valid = (np.arange(T)[:, None] < lens[None, :])[:, :, None]  # (T, B, 1)
        dt = xt.dtype
        total = np.where(valid, xt, dt.type(0)).sum(axis=0)
        return total / lens[:, None].astype(dt), valid

    def _spread(self, dx, dy, lens, valid):
        dx[...] = np.where(valid, (dy / lens[:, None].astype(dy.dtype))[None], dx.dtype.type(0))


class MaxPool(_Reducer):
    """The maximum over each sequence's valid steps, per feature.  The
    gradient goes to the first step holding the maximum (as torch.max over
    a dimension; a NaN is the maximum when there is one)."""

    def _reduce(self, xt, lens):
        T = xt.shape[0]
        valid = (np.arange(T)[:, None] < lens[None, :])[:, :, None]
        masked = np.where(valid, xt, xt.dtype.type(-np.inf))
        arg = np.argmax(masked, axis=0)  # (B, F); argmax takes the first NaN
        y = np.take_along_axis(masked, arg[None], axis=0)[0]
        return y, arg

    def _spread(self, dx, dy, lens, arg):
        np.put_along_axis(dx, arg[None], dy[None], axis=0)
