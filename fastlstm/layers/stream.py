"""Streaming inference: feed a (multi-layer, unidirectional) LSTM one step or
one chunk at a time, carrying (h, c) between calls.

``stream = lstm.stream(batch_size)`` snapshots the layer's weights (packed
once) and preallocates every buffer, so a step does no weight validation, no
packing and no allocation but its output.  Weights changed on the layer
afterwards are not seen by an existing stream: make a new one.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .._checks import check_array, check_int, check_pair, check_state
from .._typing import Array, State, StateIn

if TYPE_CHECKING:
    from .lstm import LSTM
from .._native import kernels

__all__ = ["LSTMStream"]


class LSTMStream(kernels.StreamKernel):
    """State-carrying step/chunk inference over an :class:`fastlstm.LSTM`.

    Use :meth:`step` for one time step ``x_t`` of shape (B, input_size) and
    :meth:`steps` for a chunk (T, B, input_size) (time-major, whatever the
    layer's batch_first); both return the top layer's output and advance the
    state.  :meth:`reset` restarts from zeros or a given ``(h0, c0)``.

    ``step(x)`` is the compiled kernel's own method (this class extends it):
    x (B, input_size) -> the top layer's h_t, (B, H_out), a new array.  No
    Python frame runs between the caller and the C step, which matters at a
    few microseconds a step; an input that is not already a C-contiguous
    array of the stream's dtype goes through the same checks as everywhere
    else (a TypeError or ValueError naming ``x``).

    A stream may be shared between threads: its calls take turns on
    :attr:`lock` (a few tens of nanoseconds when nobody else holds it), so
    each step sees a whole state; which thread's step comes first is up to
    the scheduler.
    """

    batch_size: int
    dtype: np.dtype[np.floating[Any]]
    input_size: int
    hidden_size: int
    num_layers: int
    proj_size: int

    def __init__(self, lstm: LSTM, batch_size: int, hx: StateIn | None = None) -> None:
        if lstm.bidirectional:
            raise ValueError(
                "stream: a bidirectional LSTM needs the whole sequence; "
                "streaming supports unidirectional LSTMs only"
            )
        if any(o is not None for o in lstm._cell_opts):
            raise ValueError(
                "stream: the ONNX cell options (peepholes, clip, input_forget, activations) "
                "are not supported by streaming; run the layer on each chunk with its state "
                "instead (lstm(x_chunk, hx) returns the state to pass on)"
            )
        self.batch_size, self.dtype = check_int("batch_size", batch_size, 1), lstm.dtype
        self.input_size, self.num_layers = lstm.input_size, lstm.num_layers
        self.hidden_size, self.proj_size = lstm.hidden_size, lstm.proj_size
        B, H, Ho, dt = (
            self.batch_size,
            lstm.hidden_size,
            lstm.proj_size or lstm.hidden_size,
            lstm.dtype,
        )
        self._layers = []
        for layer in range(lstm.num_layers):  # the pack cache's snapshot: never modified
            sfx = f"_l{layer}"
            weights, packed = lstm._packed(sfx)
            self._layers.append((weights[0], lstm._bias(sfx), packed))
        self._h = np.zeros((lstm.num_layers, B, Ho), dt)
        self._c = np.zeros((lstm.num_layers, B, H), dt)
        self._ys = [np.empty((B, Ho), dt) for _ in range(lstm.num_layers)]
        # convert: x as the kernel reads it, or a clear TypeError / ValueError
        # (a partial, not a bound method: no reference cycle through self)
        super().__init__(
            self._layers,
            self._h,
            self._c,
            self._ys,
            lstm.proj_size,
            functools.partial(check_array, "x", dtype=dt),
        )
        self.reset(hx)

    @property
    def state(self) -> State:
        """(h, c): copies of the current state, (num_layers, B, H_out) and (num_layers, B, H)."""
        with self.lock:
            return self._h.copy(), self._c.copy()

    def reset(self, hx: StateIn | None = None) -> None:
        """Start again from zeros, or from ``hx = (h0, c0)`` shaped as :attr:`state`."""
        hx = check_pair("hx", hx, "h0", "c0")
        if hx is None:
            with self.lock:
                self._h.fill(0)
                self._c.fill(0)
            return
        # both checked before either is written: a refused reset changes nothing
        h0 = check_state("h0", hx[0], self.dtype, self._h.shape)
        c0 = check_state("c0", hx[1], self.dtype, self._c.shape)
        with self.lock:
            self._h[...] = h0
            self._c[...] = c0

    def steps(self, x: ArrayLike) -> Array:
        """A chunk: x (T, B, input_size) -> top layer's output (T, B, H_out)."""
        x = check_array("x", x, self.dtype)
        B, I = self.batch_size, self.input_size
        if x.ndim != 3 or x.shape[1:] != (B, I) or x.shape[0] == 0:
            raise ValueError(f"x: expected shape (T, {B}, {I}), got {x.shape}")
        T = x.shape[0]
        with self.lock:
            return self._run_chunk(x.reshape(T * B, I), T)

    def _run_chunk(self, inp, T):
        B = self.batch_size
        for k, (w_ih, bias, packed) in enumerate(self._layers):
            y = np.empty((T * B, self._h.shape[2]), self.dtype)
            kernels.forward(
                inp,
                w_ih,
                bias,
                packed,
                self._h[k],
                self._c[k],
                y,
                0,
                self._h[k],
                self._c[k],
                None,
                None,
                None,
                None,
                T,
                False,
                self.proj_size,
            )
            inp = y
        return inp.reshape(T, B, -1)
