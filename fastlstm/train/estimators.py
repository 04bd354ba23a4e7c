"""scikit-learn style estimators over an LSTM: LSTMClassifier and
LSTMRegressor (public as fastlstm.LSTMClassifier, fastlstm.LSTMRegressor).

Input X, always batch first:

* an (N, T, F) array: N sequences of T steps of F features;
* a list of N (T_i, F) arrays of different lengths (padded inside, each
  sequence's last valid step gives its output);
* an (N, F) array: N sequences of one step each (T = 1), so that tabular
  data, scikit-learn's checks and pipelines work unchanged.

The network is ``LSTM -> LastStep -> Linear`` (sequence -> label or
value).  LSTMRegressor also maps a sequence to a sequence: targets of shape
(N, T, C), a list of (T_i[, C]) arrays, or (N, T) when X has T > 1 steps
(one value per step); an (N, k) target with any other k is k values per
sequence.  The regressor standardizes its targets for training and undoes
it in ``predict``.

scikit-learn is optional: when it is importable the estimators derive from
its BaseEstimator and mixins (so clone, Pipeline, GridSearchCV and
check_estimator see ordinary estimators); without it they carry their own
``get_params``/``set_params``/``score`` with the same behaviour.
Hyperparameters are stored by ``__init__`` as given and read only in
``fit``; fitted state ends in ``_``.  A given ``random_state`` makes
``fit`` bit-for-bit reproducible.
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._typing import Sequences, Targets
from ..layers.basic import Linear
from ..layers.lstm import LSTM
from ..layers.reducers import LastStep
from ..layers.sequential import Sequential
from .callbacks import EarlyStopping

if TYPE_CHECKING:
    from typing_extensions import Self
from .fit import _OPTIMIZERS

__all__ = ["LSTMClassifier", "LSTMRegressor"]

try:  # optional
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import ClassifierMixin as _ClassifierMixin
    from sklearn.base import RegressorMixin as _RegressorMixin
    from sklearn.exceptions import DataConversionWarning as _ColumnWarning
    from sklearn.exceptions import NotFittedError as _NotFittedError

    _HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised by the no-sklearn test
    _HAVE_SKLEARN = False

    class _NotFittedError(ValueError, AttributeError):  # type: ignore[no-redef]
        """Raised when an estimator is used before fit (as scikit-learn's)."""

    class _ColumnWarning(UserWarning):  # type: ignore[no-redef]
        """A column vector y was given where a 1-D one was expected."""

    class _Base:  # type: ignore[no-redef]
        """get_params / set_params from ``__init__``'s signature."""

        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values() if p.name != "self")

        def get_params(self, deep=True):
            out = {}
            for name in self._get_param_names():
                value = getattr(self, name)
                if deep and hasattr(value, "get_params") and not isinstance(value, type):
                    out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
                out[name] = value
            return out

        def set_params(self, **params):
            valid = self._get_param_names()
            for key, value in params.items():
                name, _, sub = key.partition("__")
                if name not in valid:
                    raise ValueError(
                        f"Invalid parameter {name!r} for estimator {self}. "
                        f"Valid parameters are: {valid!r}."
                    )
                if sub:
                    getattr(self, name).set_params(**{sub: value})
                else:
                    setattr(self, name, value)
            return self

        def __repr__(self):
            defaults = {
                p.name: p.default
                for p in inspect.signature(type(self).__init__).parameters.values()
            }
            changed = [
                f"{k}={v!r}"
                for k, v in self.get_params(deep=False).items()
                if defaults.get(k, inspect.Parameter.empty) is not v and defaults.get(k) != v
            ]
            return f"{type(self).__name__}({', '.join(changed)})"

    class _ClassifierMixin:  # type: ignore[no-redef]
        _estimator_type = "classifier"

        def score(self, X, y, sample_weight=None):
            """Mean accuracy of ``predict(X)`` against y."""
            hit = (self.predict(X) == np.asarray(y)).astype(np.float64)
            return float(np.average(hit, weights=sample_weight))

    class _RegressorMixin:  # type: ignore[no-redef]
        _estimator_type = "regressor"

        def score(self, X, y, sample_weight=None):
            """R^2 of ``predict(X)`` against y (averaged over outputs)."""
            y = np.asarray(y, np.float64)
            pred = np.asarray(self.predict(X), np.float64).reshape(y.shape)
            w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
            y2, p2 = y.reshape(len(y), -1), pred.reshape(len(y), -1)
            mean = np.average(y2, axis=0, weights=w)
            num = np.average((y2 - p2) ** 2, axis=0, weights=w)
            den = np.average((y2 - mean) ** 2, axis=0, weights=w)
            r2 = np.where(den > 0, 1 - num / np.where(den > 0, den, 1), np.where(num > 0, 0, 1))
            return float(r2.mean())


_DTYPE = np.float64


# ---- input checks ---------------------------------------------------------------
def _finite(a, what):
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        kind = "NaN" if np.isnan(a).any() else "infinity"
        raise ValueError(f"Input {what} contains {kind}.")


def _as_float(a, what):
    a = np.asarray(a)
    if a.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {what} has dtype {a.dtype}")
    # object arrays of numbers convert; anything else raises numpy's error
    return a.astype(_DTYPE, copy=False)


def _check_X(est, X, reset):
    """-> (X (N, T, F) float64, lengths (N,) or None); sets or checks
    n_features_in_."""
    name = type(est).__name__
    if isinstance(X, (list, tuple)) and len(X) and all(np.ndim(x) == 2 for x in X):
        seqs = [_as_float(x, "X") for x in X]
        F = {s.shape[1] for s in seqs}
        if len(F) != 1:
            raise ValueError(f"X: every sequence needs the same number of features, got {F}")
        if min(len(s) for s in seqs) < 1:
            raise ValueError("X: a sequence has no step (T_i = 0)")
        lengths = np.array([len(s) for s in seqs], np.int64)
        out = np.zeros((len(seqs), int(lengths.max()), F.pop()), _DTYPE)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
        if np.all(lengths == out.shape[1]):
            lengths = None
        given = out.shape
    else:
        if hasattr(X, "__sparse__") or type(X).__module__.startswith("scipy.sparse"):
            raise TypeError(f"{name} does not accept sparse input; pass a dense array")
        out = _as_float(X, "X")
        given = out.shape
        lengths = None
        if out.ndim == 2:
            out = out[:, None, :]
        elif out.ndim != 3:
            raise ValueError(
                f"Expected a 2D array (N, F) or 3D array (N, T, F), got {out.ndim}D array "
                "instead. Reshape your data either using array.reshape(-1, 1) if your data "
                "has a single feature or array.reshape(1, -1) if it contains a single sample."
            )
    _finite(out, "X")
    N, T, F = out.shape
    if N < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={given}) while a minimum of 1 is required."
        )
    if T < 1 or F < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={given}) while a minimum of 1 is required."
        )
    if reset:
        est.n_features_in_ = F
    elif F != est.n_features_in_:
        raise ValueError(
            f"X has {F} features, but {name} is expecting {est.n_features_in_} features as input."
        )
    return np.ascontiguousarray(out), lengths


def _check_fitted(est):
    if not hasattr(est, "model_"):
        raise _NotFittedError(
            f"This {type(est).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )


def _seed(random_state):
    """An int seed (or None) from random_state; a RandomState is drawn from."""
    if random_state is None or isinstance(random_state, (numbers.Integral, np.integer)):
        return None if random_state is None else int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    raise ValueError(f"random_state: expected None, an int or a RandomState, got {random_state!r}")


class _LSTMEstimator(_Base):
    """What both estimators share: the network, the training, the checks."""

    _loss = "mse"
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
    ) -> None:
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # (N, T, F) sequences besides the usual (N, F) (read as T = 1)
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        return tags

    # ---- the network ----------------------------------------------------------------
    def _check_params(self):
        for name in ("hidden_size", "num_layers", "epochs", "batch_size", "patience"):
            v = getattr(self, name)
            if not isinstance(v, (numbers.Integral, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if not isinstance(self.optimizer, str) or self.optimizer.lower() not in _OPTIMIZERS:
            raise ValueError(
                f"optimizer: expected one of {sorted(_OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout: expected a value in [0, 1), got {self.dropout!r}")
        if not float(self.learning_rate) > 0:
            raise ValueError(
                f"learning_rate: expected a positive number, got {self.learning_rate!r}"
            )
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise ValueError(
                f"validation_fraction: expected a value in (0, 1), got {self.validation_fraction!r}"
            )

    def _build(self, n_features, n_out, sequence, seed):
        rng = np.random.default_rng(seed)
        seeds = [int(s) for s in rng.integers(0, 2**31 - 1, 3)]
        D = 2 if self.bidirectional else 1
        lstm = LSTM(
            n_features,
            int(self.hidden_size),
            num_layers=int(self.num_layers),
            batch_first=True,
            dropout=float(self.dropout) if int(self.num_layers) > 1 else 0.0,
            bidirectional=bool(self.bidirectional),
            dtype=_DTYPE,
            seed=seeds[0],
        )
        head = Linear(D * int(self.hidden_size), n_out, dtype=_DTYPE, seed=seeds[1])
        if sequence:
            model = Sequential(lstm, head)
        else:
            model = Sequential(lstm, LastStep(batch_first=True, bidirectional=D == 2), head)
        self._compile(model)
        self.model_ = model
        self._shuffle_seed = seeds[2]

    def _compile(self, model):
        """The loss and a fresh optimizer, as the hyperparameters say."""
        opt_cls = _OPTIMIZERS[self.optimizer.lower()]
        kwargs = {"lr": float(self.learning_rate)}
        if self.weight_decay:
            kwargs["weight_decay"] = float(self.weight_decay)
        model.compile(self._loss, opt_cls([model], **kwargs), clip_norm=self.clip_norm)

    def _train(self, X, y, lengths, epochs):
        """Run ``epochs`` epochs of the compiled model_ on encoded targets."""
        N = len(X)
        callbacks = []
        validation = None
        if self.early_stopping and epochs > 1:
            rng = np.random.default_rng(self._shuffle_seed)
            order = rng.permutation(N)
            n_val = max(1, int(round(N * float(self.validation_fraction))))
            if N - n_val >= 1:
                val, train = order[:n_val], order[n_val:]
                lv = None if lengths is None else lengths[val]
                validation = (X[val], y[val]) if lv is None else (X[val], y[val], lv)
                X, y = X[train], y[train]
                lengths = None if lengths is None else lengths[train]
                callbacks.append(
                    EarlyStopping(
                        "val_loss", patience=int(self.patience), restore_best_weights=True
                    )
                )
        history = self.model_.fit(
            X,
            y,
            lengths=lengths,
            epochs=epochs,
            batch_size=min(int(self.batch_size), len(X)),
            validation_data=validation,
            shuffle=True,
            callbacks=callbacks,
            verbose=int(self.verbose),
            seed=self._shuffle_seed,
        )
        self._shuffle_seed = int(np.random.default_rng(self._shuffle_seed).integers(2**31 - 1))
        old = getattr(self, "history_", None) or {}
        self.history_ = {k: list(old.get(k, [])) + list(v) for k, v in history.items()}
        self.n_iter_ = getattr(self, "n_iter_", 0) + len(history.epoch)
        self.loss_ = history["loss"][-1]

    def _output(self, X):
        _check_fitted(self)
        X, lengths = _check_X(self, X, reset=False)
        return self.model_.predict(X, lengths=lengths), lengths

    def _sample_count(self, X, y):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        if len(y if isinstance(y, (list, tuple)) else np.asarray(y)) != len(X):
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"[{len(X)}, {len(np.asarray(y)) if not isinstance(y, (list, tuple)) else len(y)}]"
            )


def _column(y):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the "
            "shape of y to (n_samples, ), for example using ravel().",
            _ColumnWarning,
            stacklevel=3,
        )
        return y.ravel()
    return y


class LSTMClassifier(_ClassifierMixin, _LSTMEstimator):
    """Sequence classifier: LSTM, its last step, a linear layer to one logit
    per class, trained with cross-entropy.

    Parameters (stored as given, used by ``fit``)
    ----------------------------------------------
    hidden_size, num_layers, bidirectional, dropout : the LSTM's (dropout
        between stacked layers, so only with num_layers > 1).
    epochs, batch_size : passes over the data and samples per step.
    learning_rate, optimizer ("adam", "adamw", "sgd", "rmsprop"),
    weight_decay, clip_norm (global gradient norm clip, None for none).
    early_stopping, validation_fraction, patience : hold out that fraction
        and stop when its loss has not improved for ``patience`` epochs,
        keeping the best epoch's weights.
    random_state : None, int or RandomState: the initial weights, the
        shuffling and the held-out split.
    verbose : 0 silent, 1 progress (tqdm when installed), 2 a line per epoch.

    Attributes: ``classes_``, ``n_features_in_``, ``model_`` (the trained
    fastlstm.Sequential), ``history_``, ``n_iter_``, ``loss_``.
    """

    _loss = "cross_entropy"
    classes_: NDArray[Any]

    def _encode(self, y):
        y = _column(y)
        if y.ndim != 1:
            raise ValueError(f"y: expected a 1-D array of labels, got shape {y.shape}")
        if y.dtype.kind == "f":
            _finite(y, "y")
            if np.any(y != np.round(y)):
                raise ValueError("Unknown label type: continuous (y holds non-integer floats)")
        return y

    def fit(self, X: Sequences, y: ArrayLike) -> Self:
        """Train a new network on (X, y) from scratch; returns self."""
        self._check_params()
        X, lengths = _check_X(self, X, reset=True)
        self._sample_count(X, y)
        y = self._encode(y)
        for attr in ("history_", "n_iter_"):
            self.__dict__.pop(attr, None)
        self.classes_, codes = np.unique(y, return_inverse=True)
        self._build(X.shape[2], len(self.classes_), False, _seed(self.random_state))
        self._train(X, codes.reshape(-1).astype(np.int64), lengths, int(self.epochs))
        return self

    def partial_fit(self, X: Sequences, y: ArrayLike, classes: ArrayLike | None = None) -> Self:
        """One epoch on (X, y), continuing from the current network (built
        on the first call; ``classes`` lists every label then, as in
        scikit-learn, else y's labels are taken)."""
        first = not hasattr(self, "model_")
        if first:
            self._check_params()
        X, lengths = _check_X(self, X, reset=first)
        self._sample_count(X, y)
        y = self._encode(y)
        if first:
            self.classes_ = np.unique(y if classes is None else np.asarray(classes))
            self._build(X.shape[2], len(self.classes_), False, _seed(self.random_state))
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes: {classes} differs from the first call's {self.classes_}")
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"y: labels {np.unique(y[unknown])} are not in classes_ {self.classes_}"
            )
        codes = np.searchsorted(self.classes_, y).astype(np.int64)
        self._train(X, codes, lengths, 1)
        return self

    def predict_proba(self, X: Sequences) -> NDArray[np.float64]:
        """(N, n_classes) class probabilities (the softmax of the logits)."""
        logits, _ = self._output(X)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Sequences) -> NDArray[np.float64]:
        return np.log(self.predict_proba(X))

    def predict(self, X: Sequences) -> NDArray[Any]:
        """The most probable class of each sequence."""
        logits, _ = self._output(X)
        return self.classes_[np.argmax(logits, axis=1)]


class LSTMRegressor(_RegressorMixin, _LSTMEstimator):
    """Sequence regressor: LSTM, its last step, a linear layer to the
    outputs (mean squared error on standardized targets); or, for per-step
    targets, the linear layer at every step.  Parameters and attributes as
    :class:`LSTMClassifier`'s (without ``classes_``)."""

    _loss = "mse"
    sequence_output_: bool
    y_mean_: NDArray[np.float64]
    y_scale_: NDArray[np.float64]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, X, lengths, y):
        """-> (y as (N, k) or (N, T, C) float64, sequence?, the shape of one
        prediction for predict)."""
        if (
            isinstance(y, (list, tuple))
            and len(y)
            and all(isinstance(t, np.ndarray) and t.ndim in (1, 2) for t in y)
        ):  # per-step targets of each sequence, (T_i,) or (T_i, C)
            seqs = [_as_float(t, "y") for t in y]
            for s in seqs:
                _finite(s, "y")
            multi = seqs[0].ndim == 2
            seqs = [t.reshape(len(t), -1) for t in seqs]
            own = np.array([len(t) for t in seqs])
            steps = np.full(len(X), X.shape[1]) if lengths is None else lengths
            if len(seqs) != len(X) or np.any(own != steps):
                raise ValueError("y: per-step targets must be as long as their sequences in X")
            out = np.zeros((len(seqs), X.shape[1], seqs[0].shape[1]), _DTYPE)
            for i, t in enumerate(seqs):
                out[i, : len(t)] = t
            return out, True, multi
        y = _as_float(y, "y")
        _finite(y, "y")
        if y.ndim == 3 or (y.ndim == 2 and X.shape[1] > 1 and y.shape[1] == X.shape[1]):
            if y.shape[:2] != X.shape[:2]:
                raise ValueError(f"y: per-step targets must be (N, T[, C]) = {X.shape[:2]}")
            return (y if y.ndim == 3 else y[:, :, None]), True, y.ndim == 3
        if y.ndim == 2 and y.shape[1] == 1:
            y = _column(y)
        if y.ndim == 1:
            return y[:, None], False, False
        if y.ndim == 2:
            return y, False, True
        raise ValueError(f"y: expected (N,), (N, k) or (N, T[, C]) targets, got {y.shape}")

    def _scale_fit(self, y, lengths, sequence):
        flat = y.reshape(-1, y.shape[-1])
        if sequence and lengths is not None:
            mask = (np.arange(y.shape[1])[None, :] < lengths[:, None]).reshape(-1)
            flat = flat[mask]
        self.y_mean_ = flat.mean(axis=0)
        scale = flat.std(axis=0)
        self.y_scale_ = np.where(scale > 0, scale, 1.0)

    def fit(self, X: Sequences, y: Targets) -> Self:
        """Train a new network on (X, y) from scratch; returns self."""
        self._check_params()
        X, lengths = _check_X(self, X, reset=True)
        self._sample_count(X, y)
        for attr in ("history_", "n_iter_"):
            self.__dict__.pop(attr, None)
        y, sequence, multi = self._targets(X, lengths, y)
        self.sequence_output_ = sequence
        self._multi = multi
        self._scale_fit(y, lengths, sequence)
        self._build(X.shape[2], y.shape[-1], sequence, _seed(self.random_state))
        self._train(X, (y - self.y_mean_) / self.y_scale_, lengths, int(self.epochs))
        return self

    def partial_fit(self, X: Sequences, y: Targets) -> Self:
        """One epoch on (X, y), continuing from the current network (built,
        with the target scaling, on the first call)."""
        first = not hasattr(self, "model_")
        if first:
            self._check_params()
        X, lengths = _check_X(self, X, reset=first)
        self._sample_count(X, y)
        y, sequence, multi = self._targets(X, lengths, y)
        if first:
            self.sequence_output_ = sequence
            self._multi = multi
            self._scale_fit(y, lengths, sequence)
            self._build(X.shape[2], y.shape[-1], sequence, _seed(self.random_state))
        elif sequence != self.sequence_output_ or y.shape[-1] != len(self.y_mean_):
            raise ValueError("y: its kind or number of outputs differs from the first call's")
        self._train(X, (y - self.y_mean_) / self.y_scale_, lengths, 1)
        return self

    def predict(self, X: Sequences) -> NDArray[np.float64]:
        """(N,) or (N, k) values per sequence; (N, T[, C]) per step, padded
        steps of variable-length input set to 0."""
        out, lengths = self._output(X)
        out = out * self.y_scale_ + self.y_mean_
        if self.sequence_output_:
            if lengths is not None:
                out[np.arange(out.shape[1])[None, :] >= lengths[:, None]] = 0
            return out if self._multi else out[..., 0]
        return out if self._multi else out[:, 0]
