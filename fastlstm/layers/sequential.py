"""fastlstm.Sequential: layers applied one after the other, with the layer
protocol, torch's state_dict keys ("0.weight", "1.weight_ih_l0", ...) and
``lengths`` passed to the layers that take them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import ArrayLike

from .._typing import Array, SequentialBackward
from ..train.fit import Trainable
from .base import BackwardClaim, check_gradient
from .cell import LSTMCell
from .lstm import LSTM
from .reducers import LastStep, _Reducer
from .stream import LSTMStream

if TYPE_CHECKING:
    from typing_extensions import TypeAlias

    from .basic import Dropout, Embedding, Linear
    from .reducers import MaxPool, MeanPool

    _Layer: TypeAlias = Union[
        LSTM, Linear, Embedding, Dropout, LastStep, MeanPool, MaxPool, "Sequential"
    ]

__all__ = ["Sequential"]

_PROTOCOL = ("forward_train", "named_parameters", "state_dict", "load_state_dict", "zero_grad")


def _takes_lengths(layer):
    return isinstance(layer, LSTM) or getattr(layer, "takes_lengths", False)


class Sequential(Trainable):
    """``Sequential(*layers)``: ``y = layers[-1](...layers[1](layers[0](x)))``.

    Layers are fastlstm.LSTM, Linear, Embedding, Dropout, the reducers
    (LastStep, MeanPool, MaxPool), another Sequential, or any object with
    the same protocol (``__call__``, ``forward_train(x) -> (y, backward)``,
    ``named_parameters``, ``grads``, ``state_dict``...).  An LSTM passes on
    its sequence output only (its (h_n, c_n) is dropped, as a Keras LSTM
    with return_sequences=True); put a reducer after it for one vector per
    sequence.  ``lengths`` (the valid steps of each sequence) goes to every
    layer that takes it: LSTM, the reducers, and any layer whose class has
    ``takes_lengths = True``.

    Parameter names are the layer's index and its own names, as a torch
    model holding the same modules by index (``torch.nn.Sequential`` or
    ``torch.nn.ModuleList``): ``"0.weight"``, ``"1.weight_ih_l0"``; a
    parameter-less layer keeps its index.  :meth:`load_state_dict` takes
    such a torch model's ``state_dict()`` directly (tensors are fine, the
    exact-dtype rule holds).  :attr:`grads` maps the same names to the
    layers' live gradient arrays, and :meth:`named_parameters` to the live
    parameters, so an optimizer pairs them by name.

    Every layer with a dtype must have the same one (a TypeError otherwise).

    Keras-style training: ``compile(loss, optimizer, metrics)``, ``fit``,
    ``evaluate``, ``predict`` (see fastlstm.train.fit), on batch-first data.
    """

    def __init__(self, *layers: _Layer) -> None:
        for i, layer in enumerate(layers):
            if isinstance(layer, (LSTMCell, LSTMStream)) or not all(
                callable(getattr(layer, a, None)) for a in _PROTOCOL
            ):
                raise TypeError(
                    f"Sequential: layer {i} ({type(layer).__name__}) is not a sequence layer "
                    "(LSTM, Linear, Embedding, Dropout, a reducer or a Sequential)"
                )
        dtypes = {np.dtype(d) for d in (getattr(la, "dtype", None) for la in layers) if d}
        if len(dtypes) > 1:
            raise TypeError(
                "Sequential: the layers' dtypes differ: "
                + ", ".join(
                    f"{i}: {np.dtype(la.dtype).name}"
                    for i, la in enumerate(layers)
                    if getattr(la, "dtype", None)
                )
            )
        self._layers = list(layers)
        self._check_layouts()

    # ---- the container ------------------------------------------------------
    @property
    def layers(self) -> list[_Layer]:
        """The layers, in order (a new list; the layers themselves are live)."""
        return list(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, i: int) -> _Layer:
        return self._layers[i]

    def __iter__(self) -> Iterator[_Layer]:
        return iter(self._layers)

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self._layers))
        return f"Sequential({inner}\n)" if inner else "Sequential()"

    @property
    def dtype(self) -> np.dtype[np.floating[Any]] | None:
        """The layers' dtype, or None when no layer has one."""
        for layer in self._layers:
            if getattr(layer, "dtype", None):
                return np.dtype(layer.dtype)
        return None

    def _check_layouts(self):
        """A reducer reads the layout of the LSTM before it: both must agree
        on batch_first (and LastStep on bidirectional), or the steps and
        the batch would be silently confused."""
        lstm = None
        for i, layer in enumerate(self._layers):
            if isinstance(layer, LSTM):
                lstm = layer
            elif isinstance(layer, _Reducer) and lstm is not None:
                if layer.batch_first != lstm.batch_first:
                    raise ValueError(
                        f"Sequential: layer {i} ({type(layer).__name__}) has batch_first="
                        f"{layer.batch_first}, the LSTM before it batch_first={lstm.batch_first}"
                    )
                if isinstance(layer, LastStep) and layer.bidirectional != lstm.bidirectional:
                    raise ValueError(
                        f"Sequential: layer {i} (LastStep) has bidirectional="
                        f"{layer.bidirectional}, the LSTM before it "
                        f"bidirectional={lstm.bidirectional}"
                    )
                lstm = None

    # ---- parameters ---------------------------------------------------------
    def named_parameters(self) -> list[tuple[str, Array]]:
        """(name, array) pairs, names prefixed by the layer index; the
        arrays are the layers' live parameters."""
        return [
            (f"{i}.{name}", p)
            for i, layer in enumerate(self._layers)
            for name, p in layer.named_parameters()
        ]

    def parameters(self) -> list[Array]:
        return [p for _, p in self.named_parameters()]

    @property
    def grads(self) -> dict[str, Array]:
        """{prefixed name: the layer's live gradient array}, the keys of
        :meth:`named_parameters` (a new dict; the arrays are live)."""
        return {
            f"{i}.{name}": g
            for i, layer in enumerate(self._layers)
            for name, g in layer.grads.items()
        }

    def zero_grad(self) -> None:
        for layer in self._layers:
            layer.zero_grad()

    def state_dict(self) -> dict[str, Array]:
        """Copies of the parameters under prefixed names, in order."""
        return {
            f"{i}.{name}": v
            for i, layer in enumerate(self._layers)
            for name, v in layer.state_dict().items()
        }

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Load prefixed parameters (e.g. a torch model's ``state_dict()``).

        Missing or unexpected keys are a KeyError naming them (with
        strict=True), a wrong shape a ValueError, a wrong dtype a
        TypeError; nothing changes unless every layer accepts its part."""
        parts = [{} for _ in self._layers]
        unexpected = []
        for key, value in state_dict.items():
            head, dot, rest = str(key).partition(".")
            if dot and head.isdigit() and int(head) < len(self._layers) and rest:
                parts[int(head)][rest] = value
            else:
                unexpected.append(key)
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        if strict:
            unexpected += [
                f"{i}.{name}"
                for i, layer in enumerate(self._layers)
                for name in parts[i]
                if f"{i}.{name}" not in own
            ]
            if missing or unexpected:
                raise KeyError(
                    f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
                )
        done = []
        try:
            for i, layer in enumerate(self._layers):
                if parts[i] or strict:
                    before = layer.state_dict()
                    layer.load_state_dict(parts[i], strict=strict)
                    done.append((layer, before))
        except BaseException:
            for layer, before in done:  # all or nothing
                layer.load_state_dict(before)
            raise

    # ---- forward and backward ----------------------------------------------
    def _lengths_check(self, lengths):
        if lengths is not None and not any(_takes_lengths(la) for la in self._layers):
            raise ValueError("lengths: given, but no layer of this Sequential takes lengths")

    def __call__(self, x: ArrayLike, lengths: ArrayLike | None = None) -> Array:
        """Inference through every layer (Dropout is the identity)."""
        self._check_layouts()
        self._lengths_check(lengths)
        for layer in self._layers:
            if isinstance(layer, LSTM):
                x = layer(x, lengths=lengths)[0]
            elif _takes_lengths(layer):
                x = layer(x, lengths=lengths)
            else:
                x = layer(x)
        return x

    forward = __call__

    def forward_train(
        self, x: ArrayLike, lengths: ArrayLike | None = None
    ) -> tuple[Array, SequentialBackward]:
        """-> ``(y, backward)``; ``backward(dy)`` runs the layers' backwards
        in reverse order, adds every parameter gradient into the layers'
        grads and returns dx (None when the first layer is an Embedding)."""
        self._check_layouts()
        self._lengths_check(lengths)
        backwards = []
        for layer in self._layers:
            if isinstance(layer, LSTM):
                x, _, lstm_backward = layer.forward_train(x, lengths=lengths)
                backwards.append(lambda dy, b=lstm_backward: b(dy)[0])
            elif _takes_lengths(layer):
                x, b = layer.forward_train(x, lengths=lengths)
                backwards.append(b)
            else:
                x, b = layer.forward_train(x)
                backwards.append(b)
        claim = BackwardClaim("Sequential")
        y = x

        def backward(dy):
            if isinstance(y, np.ndarray) and y.dtype.kind == "f":
                dy = check_gradient("dy", dy, y.dtype, y.shape)
            claim.take()
            for b in reversed(backwards):
                dy = b(dy)
            return dy

        return x, backward
