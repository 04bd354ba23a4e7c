# Types of fastlstm's public API.  The layers are plain Python over a compiled
# kernel whose parameters are dynamic attributes (lstm.weight_ih_l0), so the
# package says here what type checkers see.  tests/test_stubs.py runs
# mypy.stubtest against the package as imported, so these cannot drift.
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, Literal, Protocol, TypeAlias, overload, type_check_only

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray
from typing_extensions import Self

from . import callbacks as callbacks
from . import losses as losses
from . import optim as optim
from . import reference as reference
from .train.callbacks import Callback as _Callback
from .train.callbacks import History as _History

__version__: str
__all__ = [
    "LSTM",
    "LSTMCell",
    "LSTMStream",
    "Linear",
    "Embedding",
    "Dropout",
    "LastStep",
    "MeanPool",
    "MaxPool",
    "Sequential",
    "LSTMClassifier",
    "LSTMRegressor",
    "save",
    "load",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "reference",
    "losses",
    "optim",
    "callbacks",
    "__version__",
]

# every array a layer returns has the layer's dtype, float32 or float64
_Array = NDArray[np.floating[Any]]
# (h, c)
_State = tuple[_Array, _Array]
# (h0, c0) given by the caller: arrays of the layer's dtype (a list of two works too)
_StateIn = tuple[ArrayLike, ArrayLike]
_Seed = int | np.random.Generator | None
# a path, or a binary file object open for writing (save) or reading (load)
_File = str | os.PathLike[str] | BinaryIO

@type_check_only
class _Backward(Protocol):
    # d_state: (dh_n, dc_n), either may be None
    def __call__(
        self,
        d_output: ArrayLike,
        d_state: tuple[ArrayLike | None, ArrayLike | None] | None = None,
    ) -> tuple[_Array, _State]: ...

@type_check_only
class _CellBackward(Protocol):
    def __call__(
        self, dh: ArrayLike | None, dc: ArrayLike | None = None
    ) -> tuple[_Array, _State]: ...

@type_check_only
class _Parameters:
    """Parameters under PyTorch's names, as attributes and in a state_dict."""

    @property
    def dtype(self) -> np.dtype[np.floating[Any]]: ...
    grads: dict[str, _Array]
    # the parameters: lstm.weight_ih_l0, cell.bias_hh, ... (assignment checks the shape)
    def __getattr__(self, name: str) -> _Array: ...
    def __setattr__(self, name: str, value: Any) -> None: ...
    def named_parameters(self) -> list[tuple[str, _Array]]: ...
    def parameters(self) -> list[_Array]: ...
    def zero_grad(self) -> None: ...
    def state_dict(self) -> dict[str, _Array]: ...
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None: ...

class LSTM(_Parameters):
    # fixed at construction (they set the parameters' shapes): read-only
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def proj_size(self) -> int: ...
    @property
    def bias(self) -> bool: ...
    @property
    def bidirectional(self) -> bool: ...
    # checked when set
    @property
    def batch_first(self) -> bool: ...
    @batch_first.setter
    def batch_first(self, value: bool) -> None: ...
    @property
    def dropout(self) -> float: ...
    @dropout.setter
    def dropout(self, value: float) -> None: ...
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        dtype: DTypeLike = ...,
        seed: _Seed = None,
    ) -> None: ...
    @property
    def num_directions(self) -> int: ...
    # output, (h_n, c_n); with return_cells=True also every step's cell state
    @overload
    def __call__(
        self,
        x: ArrayLike,
        hx: _StateIn | None = None,
        lengths: ArrayLike | None = None,
        return_cells: Literal[False] = False,
    ) -> tuple[_Array, _State]: ...
    @overload
    def __call__(
        self,
        x: ArrayLike,
        hx: _StateIn | None = None,
        lengths: ArrayLike | None = None,
        *,
        return_cells: Literal[True],
    ) -> tuple[_Array, _State, _Array]: ...
    @overload
    def __call__(
        self,
        x: ArrayLike,
        hx: _StateIn | None = None,
        lengths: ArrayLike | None = None,
        return_cells: bool = False,
    ) -> tuple[_Array, _State] | tuple[_Array, _State, _Array]: ...
    forward = __call__
    def forward_train(
        self, x: ArrayLike, hx: _StateIn | None = None, lengths: ArrayLike | None = None
    ) -> tuple[_Array, _State, _Backward]: ...
    def stream(self, batch_size: int, hx: _StateIn | None = None) -> LSTMStream: ...

class LSTMCell(_Parameters):
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def bias(self) -> bool: ...
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        dtype: DTypeLike = ...,
        seed: _Seed = None,
    ) -> None: ...
    def __call__(self, x: ArrayLike, hx: _StateIn | None = None) -> _State: ...
    forward = __call__
    # h, c, backward
    def forward_train(
        self, x: ArrayLike, hx: _StateIn | None = None
    ) -> tuple[_Array, _Array, _CellBackward]: ...

class LSTMStream:
    batch_size: int
    dtype: np.dtype[np.floating[Any]]
    input_size: int
    hidden_size: int
    num_layers: int
    proj_size: int
    def __init__(self, lstm: LSTM, batch_size: int, hx: _StateIn | None = None) -> None: ...
    def step(self, x: ArrayLike) -> _Array: ...
    def steps(self, x: ArrayLike) -> _Array: ...
    def reset(self, hx: _StateIn | None = None) -> None: ...
    @property
    def state(self) -> _State: ...
    @property
    def lock(self) -> threading.Lock: ...

@type_check_only
class _LayerBackward(Protocol):
    # dy -> dx (None for an Embedding, whose input is indices)
    def __call__(self, dy: ArrayLike) -> _Array: ...

@type_check_only
class _EmbeddingBackward(Protocol):
    def __call__(self, dy: ArrayLike) -> None: ...

@type_check_only
class _SequentialBackward(Protocol):
    def __call__(self, dy: ArrayLike) -> _Array | None: ...

class Linear(_Parameters):
    @property
    def in_features(self) -> int: ...
    @property
    def out_features(self) -> int: ...
    # the parameters (as torch's): bias is None when built with bias=False
    weight: _Array
    bias: _Array | None
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: DTypeLike = ...,
        seed: _Seed = None,
    ) -> None: ...
    def __call__(self, x: ArrayLike) -> _Array: ...
    forward = __call__
    def forward_train(self, x: ArrayLike) -> tuple[_Array, _LayerBackward]: ...

class Embedding(_Parameters):
    @property
    def num_embeddings(self) -> int: ...
    @property
    def embedding_dim(self) -> int: ...
    @property
    def padding_idx(self) -> int | None: ...
    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        dtype: DTypeLike = ...,
        seed: _Seed = None,
    ) -> None: ...
    def __call__(self, x: ArrayLike) -> _Array: ...
    forward = __call__
    def forward_train(self, x: ArrayLike) -> tuple[_Array, _EmbeddingBackward]: ...

@type_check_only
class _NoParameters:
    @property
    def grads(self) -> dict[str, _Array]: ...
    def named_parameters(self) -> list[tuple[str, _Array]]: ...
    def parameters(self) -> list[_Array]: ...
    def zero_grad(self) -> None: ...
    def state_dict(self) -> dict[str, _Array]: ...
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None: ...

class Dropout(_NoParameters):
    @property
    def p(self) -> float: ...
    @p.setter
    def p(self, value: float) -> None: ...
    def __init__(self, p: float = 0.5, seed: _Seed = None) -> None: ...
    def __call__(self, x: ArrayLike) -> _Array: ...
    forward = __call__
    def forward_train(self, x: ArrayLike) -> tuple[_Array, _LayerBackward]: ...

@type_check_only
class _Reducer(_NoParameters):
    takes_lengths: bool
    @property
    def batch_first(self) -> bool: ...
    @batch_first.setter
    def batch_first(self, value: bool) -> None: ...
    def __init__(self, batch_first: bool = False) -> None: ...
    def __call__(self, x: ArrayLike, lengths: ArrayLike | None = None) -> _Array: ...
    forward = __call__
    def forward_train(
        self, x: ArrayLike, lengths: ArrayLike | None = None
    ) -> tuple[_Array, _LayerBackward]: ...

class LastStep(_Reducer):
    @property
    def bidirectional(self) -> bool: ...
    def __init__(self, batch_first: bool = False, bidirectional: bool = False) -> None: ...

class MeanPool(_Reducer): ...
class MaxPool(_Reducer): ...

# an (N, T, F) array (or (N, T) tokens), or a list of (T_i, F) / (T_i,) arrays
_Sequences: TypeAlias = ArrayLike | list[NDArray[Any]]
_Targets: TypeAlias = ArrayLike | list[NDArray[Any]]

@type_check_only
class _LossFn(Protocol):
    # (pred, target, lengths) -> (loss, d loss / d pred)
    def __call__(
        self, pred: _Array, target: NDArray[Any], lengths: NDArray[Any] | None, /
    ) -> tuple[float, _Array]: ...

_Layer: TypeAlias = (
    "LSTM | Linear | Embedding | Dropout | LastStep | MeanPool | MaxPool | Sequential"
)

class Sequential:
    def __init__(self, *layers: _Layer) -> None: ...
    @property
    def layers(self) -> list[_Layer]: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> _Layer: ...
    def __iter__(self) -> Iterator[_Layer]: ...
    @property
    def dtype(self) -> np.dtype[np.floating[Any]] | None: ...
    def named_parameters(self) -> list[tuple[str, _Array]]: ...
    def parameters(self) -> list[_Array]: ...
    @property
    def grads(self) -> dict[str, _Array]: ...
    def zero_grad(self) -> None: ...
    def state_dict(self) -> dict[str, _Array]: ...
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None: ...
    def __call__(self, x: ArrayLike, lengths: ArrayLike | None = None) -> _Array: ...
    forward = __call__
    def forward_train(
        self, x: ArrayLike, lengths: ArrayLike | None = None
    ) -> tuple[_Array, _SequentialBackward]: ...
    # Keras-style training (fastlstm.train.fit); data batch first
    stop_training: bool
    def compile(
        self,
        loss: str | _LossFn = "mse",
        optimizer: str | optim.Optimizer = "adam",
        metrics: list[str] | None = None,
        *,
        lr: float | None = None,
        clip_norm: float | None = None,
    ) -> None: ...
    @property
    def optimizer(self) -> optim.Optimizer | None: ...
    def train_on_batch(
        self, X: _Sequences, y: _Targets, lengths: ArrayLike | None = None
    ) -> float: ...
    def fit(
        self,
        X: _Sequences,
        y: _Targets,
        lengths: ArrayLike | None = None,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Any, ...] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: list[_Callback] | None = None,
        verbose: int = 1,
        seed: _Seed = None,
        initial_epoch: int = 0,
    ) -> _History: ...
    def evaluate(
        self,
        X: _Sequences,
        y: _Targets,
        lengths: ArrayLike | None = None,
        batch_size: int = 256,
        verbose: int = 0,
    ) -> dict[str, float]: ...
    def predict(
        self, X: _Sequences, lengths: ArrayLike | None = None, batch_size: int = 256
    ) -> _Array: ...

# scikit-learn estimators (fastlstm.train.estimators); derive from sklearn's
# BaseEstimator and mixins when sklearn is importable
class _LSTMEstimator:
    hidden_size: int
    num_layers: int
    bidirectional: bool
    dropout: float
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    weight_decay: float
    clip_norm: float | None
    validation_fraction: float
    early_stopping: bool
    patience: int
    random_state: int | np.random.RandomState | None
    verbose: int
    # fitted
    n_features_in_: int
    model_: Sequential
    history_: dict[str, list[float]]
    n_iter_: int
    loss_: float
    def __init__(
        self,
        hidden_size: int = 32,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        epochs: int = 50,
        batch_size: int = 32,
        learning_rate: float = 0.01,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
        validation_fraction: float = 0.1,
        early_stopping: bool = False,
        patience: int = 5,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None: ...
    def get_params(self, deep: bool = True) -> dict[str, Any]: ...
    def set_params(self, **params: Any) -> Self: ...
    def score(
        self, X: _Sequences, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> float: ...

class LSTMClassifier(_LSTMEstimator):
    classes_: NDArray[Any]
    def fit(self, X: _Sequences, y: ArrayLike) -> Self: ...
    def partial_fit(
        self, X: _Sequences, y: ArrayLike, classes: ArrayLike | None = None
    ) -> Self: ...
    def predict(self, X: _Sequences) -> NDArray[Any]: ...
    def predict_proba(self, X: _Sequences) -> NDArray[np.float64]: ...
    def predict_log_proba(self, X: _Sequences) -> NDArray[np.float64]: ...

class LSTMRegressor(_LSTMEstimator):
    sequence_output_: bool
    y_mean_: NDArray[np.float64]
    y_scale_: NDArray[np.float64]
    def fit(self, X: _Sequences, y: _Targets) -> Self: ...
    def partial_fit(self, X: _Sequences, y: _Targets) -> Self: ...
    def predict(self, X: _Sequences) -> NDArray[np.float64]: ...

_Saveable = LSTM | LSTMCell | _Layer | LSTMClassifier | LSTMRegressor

def save(path: _File, module: _Saveable) -> None: ...
def load(path: _File) -> _Saveable: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> int: ...
def show_config() -> dict[str, Any]: ...
