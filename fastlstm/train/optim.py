"""Optimizers and gradient clipping over numpy arrays, updated in place.

A parameter is any float array (``lstm.named_parameters()`` hands out the
live ones); its gradient is the array the backward accumulates into (for a
layer, ``lstm.grads[name]``).  Optimizers take (parameter, gradient) pairs
and step the parameters in place, so a layer notices the change (its packed
weights are repacked on the next call).
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from .. import LSTM, LSTMCell

__all__ = ["Adam", "clip_grad_value_", "parameter_pairs"]


# a parameter or its gradient: float32 or float64, the layer's dtype
Array = NDArray[np.floating[Any]]


def parameter_pairs(layer: Union["LSTM", "LSTMCell"]) -> list[tuple[Array, Array]]:
    """[(parameter, gradient)] of a layer, in its parameters' order."""
    return [(p, layer.grads[name]) for name, p in layer.named_parameters()]


class Adam:
    """Adam (Kingma & Ba, 2015) over (parameter, gradient) array pairs.

    ``step()`` updates every parameter in place from its gradient's current
    value, with bias-corrected first and second moment estimates; the
    gradients are only read (clear them yourself, e.g. ``lstm.zero_grad()``).
    """

    def __init__(
        self,
        pairs: Iterable[tuple[Array, Array]],
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.pairs, self.lr, self.betas, self.eps = list(pairs), lr, betas, eps
        self.m = [np.zeros_like(p) for p, _ in self.pairs]
        self.v = [np.zeros_like(p) for p, _ in self.pairs]
        self.t = 0

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        for (p, g), m, v in zip(self.pairs, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.dtype)


def clip_grad_value_(grads: Iterable[Array], clip_value: float) -> None:
    """Clip every gradient array in place to [-clip_value, clip_value], as
    ``torch.nn.utils.clip_grad_value_``."""
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)
