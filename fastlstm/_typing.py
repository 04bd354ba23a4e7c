"""Types of the public API (internal): the aliases and call signatures the
layers' annotations share.  Type checkers read the annotations in the modules
themselves (the package ships py.typed); these names exist at run time too,
written so that Python 3.9 can evaluate them."""

import os
from typing import Any, BinaryIO, NoReturn, Optional, Protocol, TypeVar, Union, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__: list[str] = []

# every array a layer returns has the layer's dtype, float32 or float64
Array = NDArray[np.floating[Any]]
# (h, c)
State = tuple[Array, Array]
# (h0, c0) given by the caller: arrays of the layer's dtype (a list of two works too)
StateIn = tuple[ArrayLike, ArrayLike]
Seed = Union[int, np.random.Generator, None]
# a path, or a binary file object open for writing (save) or reading (load)
File = Union[str, "os.PathLike[str]", BinaryIO]

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class ReadOnly(Protocol[_T_co]):
    """A read-only attribute of type _T_co (fastlstm._native.params.fixed_at_construction)."""

    @overload
    def __get__(self, obj: None, owner: Any, /) -> Any: ...
    @overload
    def __get__(self, obj: object, owner: Any, /) -> _T_co: ...
    # setting it raises AttributeError: a type checker refuses any value
    def __set__(self, obj: Any, value: NoReturn, /) -> None: ...


class Setting(ReadOnly[_T], Protocol[_T]):
    """An attribute of type _T checked when set (fastlstm._checks.checked_setting)."""

    def __set__(self, obj: Any, value: _T, /) -> None: ...


class Backward(Protocol):
    """An LSTM's backward: d_state is (dh_n, dc_n), either may be None."""

    def __call__(
        self,
        d_output: ArrayLike,
        d_state: Optional[tuple[Optional[ArrayLike], Optional[ArrayLike]]] = None,
    ) -> tuple[Array, State]: ...


class CellBackward(Protocol):
    def __call__(
        self, dh: Optional[ArrayLike], dc: Optional[ArrayLike] = None
    ) -> tuple[Array, State]: ...


class LayerBackward(Protocol):
    """dy -> dx."""

    def __call__(self, dy: ArrayLike) -> Array: ...


class EmbeddingBackward(Protocol):
    """dy -> None: an Embedding's input is indices."""

    def __call__(self, dy: ArrayLike) -> None: ...


class SequentialBackward(Protocol):
    """dy -> dx, or None when the first layer is an Embedding."""

    def __call__(self, dy: ArrayLike) -> Optional[Array]: ...


# an (N, T, F) array (or (N, T) tokens), or a list of (T_i, F) / (T_i,) arrays
Sequences = Union[ArrayLike, list[NDArray[Any]]]
Targets = Union[ArrayLike, list[NDArray[Any]]]


class LossFn(Protocol):
    """(pred, target, lengths) -> (loss, d loss / d pred)."""

    def __call__(
        self, pred: Array, target: NDArray[Any], lengths: Optional[NDArray[Any]], /
    ) -> tuple[float, Array]: ...
