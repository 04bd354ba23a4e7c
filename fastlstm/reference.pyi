# Types of fastlstm.reference.  A stub rather than annotations in reference.py,
# which is the plain-numpy specification and rebinds its arguments to arrays
# as it goes (x = np.asarray(x)): annotations there would have to rename them.
# tests/test_stubs.py runs mypy.stubtest, so these cannot drift from the code.
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "sigmoid",
    "tanh",
    "parameter_shapes",
    "cell_parameter_shapes",
    "cell_forward",
    "cell_backward",
    "layer_forward",
    "layer_backward",
    "lstm_forward",
    "lstm_backward",
]

# float32 or float64, the dtype of the input
_Array = NDArray[np.floating[Any]]
# what a forward keeps for its backward
_Cache = dict[str, Any]
# parameter gradients under the parameters' names
_Grads = dict[str, _Array]

def sigmoid(x: ArrayLike) -> _Array: ...
def tanh(x: ArrayLike) -> _Array: ...
def parameter_shapes(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bias: bool = True,
    bidirectional: bool = False,
    proj_size: int = 0,
) -> dict[str, tuple[int, ...]]: ...
def cell_parameter_shapes(
    input_size: int, hidden_size: int, bias: bool = True
) -> dict[str, tuple[int, ...]]: ...
def cell_forward(
    x: _Array,
    h_prev: _Array,
    c_prev: _Array,
    weight_ih: _Array,
    weight_hh: _Array,
    bias_ih: _Array | None,
    bias_hh: _Array | None,
    weight_hr: _Array | None = None,
) -> tuple[_Array, _Array, _Cache]: ...
def cell_backward(
    dh: _Array, dc: _Array, cache: _Cache
) -> tuple[_Array, _Array, _Array, _Grads]: ...
def layer_forward(
    x: _Array,
    h0: _Array,
    c0: _Array,
    weight_ih: _Array,
    weight_hh: _Array,
    bias_ih: _Array | None = None,
    bias_hh: _Array | None = None,
    weight_hr: _Array | None = None,
    reverse: bool = False,
    lengths: ArrayLike | None = None,
) -> tuple[_Array, _Array, _Array, _Cache]: ...
def layer_backward(
    dy: _Array | None, dh_n: _Array | None, dc_n: _Array | None, cache: _Cache
) -> tuple[_Array, _Array, _Array, _Grads]: ...
def lstm_forward(
    x: ArrayLike,
    params: Mapping[str, ArrayLike],
    num_layers: int,
    bidirectional: bool = False,
    proj_size: int = 0,
    batch_first: bool = False,
    h0: ArrayLike | None = None,
    c0: ArrayLike | None = None,
    lengths: ArrayLike | None = None,
    dropout_masks: Sequence[ArrayLike] | None = None,
) -> tuple[_Array, tuple[_Array, _Array], _Cache]: ...
def lstm_backward(
    d_output: ArrayLike | None,
    d_hn: ArrayLike | None,
    d_cn: ArrayLike | None,
    cache: _Cache,
) -> tuple[_Array, _Array, _Array, _Grads]: ...
