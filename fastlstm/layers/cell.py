"""fastlstm.LSTMCell: one LSTM step, as ``torch.nn.LSTMCell``.

It runs the same compiled kernel as fastlstm.LSTM with one time step; the
parameters are named ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .._checks import check_array, check_bool, check_int, check_pair, check_state
from .._native import kernels
from .._native.params import ParameterModule, fixed_at_construction
from .._typing import Array, CellBackward, ReadOnly, Seed, State, StateIn
from ..reference import cell_parameter_shapes

__all__ = ["LSTMCell"]

_BACKWARD_TWICE = "backward: already called for this forward_train"


class LSTMCell(ParameterModule):
    """One LSTM step: ``(h, c) = cell(x, (h_prev, c_prev))``.

    Parameters
    ----------
    input_size, hidden_size : int
    bias : bool, default True
    dtype : numpy.float32 or numpy.float64
    seed : int, numpy.random.Generator or None
        Initialisation U(-1/sqrt(H), 1/sqrt(H)), as PyTorch.

    Inputs are (B, input_size) or unbatched (input_size,); states (B, H) or
    (H,); B may be 0 (empty outputs, as in PyTorch).  Gradients from
    :meth:`forward_train`'s backward accumulate into :attr:`grads`.  The
    constructor's arguments are read-only attributes; cells pickle and
    ``copy.deepcopy``.
    """

    input_size: ReadOnly[int] = fixed_at_construction("input_size", "Features of the input.")
    hidden_size: ReadOnly[int] = fixed_at_construction(
        "hidden_size", "Features of the cell state (H)."
    )
    bias: ReadOnly[bool] = fixed_at_construction(
        "bias", "Whether the bias_* parameters exist.", "_bias_terms"
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        dtype: DTypeLike = np.float32,
        seed: Seed = None,
    ) -> None:
        self._input_size = check_int("input_size", input_size, 1)
        self._hidden_size = check_int("hidden_size", hidden_size, 1)
        self._bias_terms = check_bool("bias", bias)
        super().__init__(dtype, seed)

    def _parameter_shapes(self):
        return cell_parameter_shapes(self.input_size, self.hidden_size, self.bias)

    def _init_scale(self):
        return 1.0 / np.sqrt(self.hidden_size)

    def __repr__(self):
        return (
            f"LSTMCell({self.input_size}, {self.hidden_size}"
            f"{'' if self.bias else ', bias=False'}, dtype={self.dtype.name})"
        )

    def _inputs(self, x, hx):
        x = check_array("x", x, self.dtype)
        I, H = self.input_size, self.hidden_size
        unbatched = x.ndim == 1
        if unbatched:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != I:
            raise ValueError(f"x: expected (B, input_size={I}) or ({I},), got {x.shape}")
        B = x.shape[0]
        hx = check_pair("hx", hx, "h_prev", "c_prev")
        if hx is None:
            return x, None, None, unbatched
        want = (H,) if unbatched else (B, H)
        states = [
            np.ascontiguousarray(check_state(name, s, self.dtype, want).reshape(B, H))
            for name, s in (("h_prev", hx[0]), ("c_prev", hx[1]))
        ]
        return x, states[0], states[1], unbatched

    def _step(self, x, h_prev, c_prev, train):
        B, H = x.shape[0], self.hidden_size
        h = np.empty((B, H), self.dtype)
        c = np.empty((B, H), self.dtype)
        h_n = np.empty((B, H), self.dtype)
        gates = np.empty((B, 4 * H), self.dtype) if train else None
        cells = np.empty((B, H), self.dtype) if train else None
        xh = np.empty((B, self.input_size + H), self.dtype) if train else None
        weights, packed = self._packed("")
        if B == 0:  # nothing to compute (the kernel wants at least one row)
            return h, c, (gates, cells, xh, weights, packed)
        kernels.forward(
            x,
            weights[0],
            self._bias(""),
            packed,
            h_prev,
            c_prev,
            h,
            0,
            h_n,
            c,
            gates,
            cells,
            xh,
            None,
            1,
            False,
            0,
        )
        return h, c, (gates, cells, xh, weights, packed)

    def __call__(self, x: ArrayLike, hx: StateIn | None = None) -> State:
        """One step: returns (h, c), each (B, H) (or (H,) for unbatched x)."""
        x, h_prev, c_prev, unbatched = self._inputs(x, hx)
        h, c, _ = self._step(x, h_prev, c_prev, train=False)
        return (h[0], c[0]) if unbatched else (h, c)

    forward = __call__

    # h, c, backward
    def forward_train(
        self, x: ArrayLike, hx: StateIn | None = None
    ) -> tuple[Array, Array, CellBackward]:
        """Returns ``(h, c, backward)``; ``backward(dh, dc=None)`` returns
        ``(dx, (dh_prev, dc_prev))`` and adds the parameter gradients into
        :attr:`grads`.  Each backward can be called once."""
        x, h_prev, c_prev, unbatched = self._inputs(x, hx)
        # saved holds the weights snapshot the packed blob was made from
        h, c, saved = self._step(x, h_prev, c_prev, train=True)
        # taken (never released) by the call that runs, so that two threads
        # cannot both pass the check
        claim = threading.Lock()
        B, H = x.shape[0], self.hidden_size

        def backward(dh, dc=None):
            if claim.locked():
                raise RuntimeError(_BACKWARD_TWICE)
            want = (H,) if unbatched else (B, H)
            grads = [
                None
                if g is None
                else np.ascontiguousarray(check_state(name, g, self.dtype, want).reshape(B, H))
                for name, g in (("dh", dh), ("dc", dc))
            ]
            if not claim.acquire(blocking=False):
                raise RuntimeError(_BACKWARD_TWICE)
            dy = grads[0] if grads[0] is not None else np.zeros((B, H), self.dtype)
            dx = np.empty(x.shape, self.dtype)
            dh_prev = np.empty((B, H), self.dtype)
            dc_prev = np.empty((B, H), self.dtype)
            with self._grad_lock:
                if B:
                    self._backward_kernel(saved, c_prev, dy, grads[1], dx, dh_prev, dc_prev)
            if unbatched:
                return dx[0], (dh_prev[0], dc_prev[0])
            return dx, (dh_prev, dc_prev)

        return ((h[0], c[0]) if unbatched else (h, c)) + (backward,)

    def _backward_kernel(self, saved, c_prev, dy, dc, dx, dh_prev, dc_prev):
        """saved: what _step kept for training (gates, cells, xh, and the
        weights snapshot with its packed blob)."""
        gates, cells, xh, weights, packed = saved
        H = self.hidden_size
        dbias = np.zeros(4 * H, self.dtype) if self.bias else None
        kernels.backward(
            weights[0],
            weights[1],
            None,
            c_prev,
            gates,
            cells,
            xh,
            dy,
            0,
            None,
            dc,
            dx,
            False,
            dh_prev,
            dc_prev,
            self.grads["weight_ih"],
            self.grads["weight_hh"],
            dbias,
            None,
            None,
            1,
            False,
        )
        if dbias is not None:
            self.grads["bias_ih"] += dbias
            self.grads["bias_hh"] += dbias
