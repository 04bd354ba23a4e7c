"""Saving and loading layers: one .npz file, config as JSON, never pickle.

``save(path, module)`` writes the parameters under their PyTorch names plus
one entry ``__fastlstm__`` holding a JSON document (format name, version,
class, dtype, constructor arguments) as bytes, to exactly the path given,
atomically: the file is written beside its destination under a temporary
name, flushed to disk and renamed over it, so a crash or a kill mid-save
leaves either the old file or the new one, never a broken one.

``load(path)`` checks the whole archive before it reads any array: the
header's size and JSON, the config it describes, the list of members, and
each member's declared size, dtype and shape against what the config
implies.  Only then are the arrays read, each exactly as large as the config
says.  Every damaged, truncated, tampered or foreign file raises
``ValueError`` (a missing or unreadable path raises the ``OSError`` that
opening it raises); nothing in a file is ever unpickled.  The round trip is
bit-exact.

A Sequential is saved as one file: its config lists each layer's class and
config, its arrays carry the Sequential's parameter names ("0.weight",
"1.weight_ih_l0", ...), and load checks them against the layers' configs as
for a single layer.  Layers without parameters (Dropout, the reducers) have
no arrays; a file of such a layer alone has a null dtype.

A fitted LSTMClassifier or LSTMRegressor is saved the same way: its config
holds its hyperparameters (``get_params``), its network's layers (arrays
under "model.<Sequential name>") and its fitted attributes (JSON, and the
arrays ``classes_`` or ``y_mean_`` / ``y_scale_``); load checks them as
strictly and returns an estimator that predicts bit for bit as the saved
one.  Its optimizer state is not saved: a ``partial_fit`` after ``load``
continues from the weights with a fresh optimizer, and a ``random_state``
that is a RandomState or Generator is saved as None.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import tempfile
import zipfile
from typing import TYPE_CHECKING, Union

import numpy as np

from ._typing import File
from .layers.basic import Dropout, Embedding, Linear
from .layers.cell import LSTMCell
from .layers.lstm import LSTM
from .layers.reducers import LastStep, MaxPool, MeanPool
from .layers.sequential import Sequential
from .reference import (
    CellOptions,
    cell_parameter_shapes,
    parameter_shapes,
    resolve_activations,
)

if TYPE_CHECKING:  # imported when used: the estimators import the training code
    from .train.estimators import LSTMClassifier, LSTMRegressor

# what save writes and load returns
Saveable = Union[
    LSTM,
    LSTMCell,
    Linear,
    Embedding,
    Dropout,
    LastStep,
    MeanPool,
    MaxPool,
    Sequential,
    "LSTMClassifier",
    "LSTMRegressor",
]

__all__ = ["save", "load"]

FORMAT, VERSION = "fastlstm", 1
_META_KEY = "__fastlstm__"
# class name -> (class, the constructor arguments saved as its config)
_CLASSES = {
    "LSTM": (
        LSTM,
        (
            "input_size",
            "hidden_size",
            "num_layers",
            "bias",
            "batch_first",
            "dropout",
            "bidirectional",
            "proj_size",
        ),
    ),
    "LSTMCell": (LSTMCell, ("input_size", "hidden_size", "bias")),
    "Linear": (Linear, ("in_features", "out_features", "bias")),
    "Embedding": (Embedding, ("num_embeddings", "embedding_dim", "padding_idx")),
    "Dropout": (Dropout, ("p",)),
    "LastStep": (LastStep, ("batch_first", "bidirectional")),
    "MeanPool": (MeanPool, ("batch_first",)),
    "MaxPool": (MaxPool, ("batch_first",)),
    # config {"layers": [{"class": name, "config": {...}}, ...]}; no nesting
    "Sequential": (Sequential, ("layers",)),
}
# constructor arguments a config holds only when they differ from these
# defaults (the LSTM's ONNX cell options), so that a file of a layer without
# them is what it was before they existed
_OPTIONAL = {
    "LSTM": {
        "peepholes": False,
        "clip": None,
        "input_forget": False,
        "activations": None,
        "activation_alpha": None,
        "activation_beta": None,
    }
}
# classes without parameters or a dtype of their own (Dropout's generator is not saved)
_PARAMETERLESS = ("Dropout", "LastStep", "MeanPool", "MaxPool")
# what a Sequential in a file may hold
_IN_SEQUENTIAL = ("LSTM", "Linear", "Embedding") + _PARAMETERLESS
_MIN_INT = {
    "input_size": 1,
    "hidden_size": 1,
    "num_layers": 1,
    "proj_size": 0,
    "in_features": 1,
    "out_features": 1,
    "num_embeddings": 1,
    "embedding_dim": 1,
}
_BOOLS = ("bias", "bidirectional", "batch_first")
# the scikit-learn estimators (fastlstm.train.estimators, imported when used):
# class name -> the keys of their fitted attributes in the config
_ESTIMATORS = {
    "LSTMClassifier": ("n_features_in_", "n_iter_", "loss_", "history_", "shuffle_seed")
    + ("classes_dtype",),
    "LSTMRegressor": ("n_features_in_", "n_iter_", "loss_", "history_", "shuffle_seed")
    + ("sequence_output_", "multi"),
}
_MAX_LABEL_BYTES = 1 << 12  # itemsize of a classes_ dtype (a string label of 1024 characters)
# Limits on what load reads before trusting it.
_MAX_HEADER_BYTES = 1 << 16  # the JSON header (a real one is a few hundred bytes)
_MAX_NPY_HEADER_BYTES = 1 << 12
_MAX_COMPRESSION_RATIO = 100  # for members of more than 1 MiB (save writes uncompressed)
_MAX_JSON_DEPTH = 8
# numpy >= 1.24 bounds the .npy header it parses; older ones parse any size
_NPY_HEADER_LIMIT = (
    {"max_header_size": _MAX_NPY_HEADER_BYTES}
    if "max_header_size" in inspect.signature(np.lib.format.read_array_header_1_0).parameters
    else {}
)


def save(path: File, module: Saveable) -> None:
    """Write `module` to `path`: its class and constructor arguments (for a
    Sequential, each layer's) and its parameters.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        Written exactly as given (no suffix is added).  A path is replaced
        atomically; an existing directory is an ``IsADirectoryError``.
    module : LSTM, LSTMCell, Linear, Embedding, Dropout, LastStep, MeanPool,
        MaxPool, or a Sequential of those (not LSTMCell; not nested); or a
        fitted LSTMClassifier or LSTMRegressor
        A Dropout's generator is not saved: a loaded one draws fresh masks.
        An estimator's optimizer state is not saved either (see the module's
        docstring); an unfitted one is refused (NotFittedError).
    """
    if type(module).__name__ in _ESTIMATORS and isinstance(
        module, _estimator_class(type(module).__name__)
    ):
        name, config, dtype, arrays = _describe_estimator(module)
    else:
        name, config = _describe(module, "save")
        dtype = getattr(module, "dtype", None)
        arrays = module.state_dict()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "class": name,
        "dtype": None if dtype is None else np.dtype(dtype).name,
        "config": config,
    }
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return
    _atomic_write(os.fspath(path), lambda fh: np.savez(fh, **arrays))


def _describe(module, where, inside=False):
    """-> (class name, config) of a module save can write."""
    name = type(module).__name__
    allowed = _IN_SEQUENTIAL if inside else tuple(_CLASSES)
    if name not in allowed or not isinstance(module, _CLASSES[name][0]):
        what = "a Sequential's layer" if inside else "module"
        raise TypeError(
            f"{where}: cannot write {type(module).__name__} as {what}; expected one of "
            + ", ".join(allowed)
        )
    if name == "Sequential":
        layers = []
        for layer in module:
            layer_name, layer_config = _describe(layer, where, inside=True)
            layers.append({"class": layer_name, "config": layer_config})
        return name, {"layers": layers}
    if name == "Linear":  # (its bias attribute is the parameter, as in torch)
        return name, {
            "in_features": module.in_features,
            "out_features": module.out_features,
            "bias": module.bias is not None,
        }
    config = {k: getattr(module, k) for k in _CLASSES[name][1]}
    for k, default in _OPTIONAL.get(name, {}).items():
        v = getattr(module, k)
        if v != default:
            config[k] = list(v) if isinstance(v, tuple) else v
    return name, config


def _estimator_class(name):
    from .train import estimators  # here: it imports the training code

    return getattr(estimators, name)


def _json_float(v):
    """A float for JSON: None for NaN or infinity (JSON has neither)."""
    v = float(v)
    return v if math.isfinite(v) else None


def _describe_estimator(est):
    """-> (class name, config, dtype, arrays) of a fitted estimator."""
    name = type(est).__name__
    if not hasattr(est, "model_"):
        from .train.estimators import _NotFittedError

        raise _NotFittedError(
            f"save: this {name} instance is not fitted yet; call 'fit' before saving it"
        )
    params = {}
    for key, v in est.get_params(deep=False).items():
        if isinstance(v, np.generic):
            v = v.item()
        if key == "random_state" and not (isinstance(v, int) and not isinstance(v, bool)):
            v = None  # a RandomState or Generator: its state is not saved
        if not (v is None or isinstance(v, (bool, int, str))) and not (
            isinstance(v, float) and math.isfinite(v)
        ):
            raise TypeError(
                f"save: {name} parameter {key}={v!r} cannot be saved "
                "(expected None, a bool, a finite number or a string)"
            )
        params[key] = v
    _, model_config = _describe(est.model_, "save")
    fitted = {
        "n_features_in_": int(est.n_features_in_),
        "n_iter_": int(getattr(est, "n_iter_", 0)),
        "loss_": _json_float(getattr(est, "loss_", float("nan"))),
        "history_": {
            str(k): [_json_float(x) for x in v] for k, v in getattr(est, "history_", {}).items()
        },
        "shuffle_seed": int(est._shuffle_seed),
    }
    arrays = {f"model.{k}": v for k, v in est.model_.state_dict().items()}
    if name == "LSTMClassifier":
        classes = np.asarray(est.classes_)
        if classes.dtype.kind not in "biufU" or classes.dtype.itemsize > _MAX_LABEL_BYTES:
            raise TypeError(
                f"save: {name} classes_ of dtype {classes.dtype} cannot be saved (labels must "
                "be booleans, numbers or strings, not objects)"
            )
        fitted["classes_dtype"] = classes.dtype.str
        arrays["classes_"] = classes
    else:
        fitted["sequence_output_"] = bool(est.sequence_output_)
        fitted["multi"] = bool(est._multi)
        arrays["y_mean_"] = np.asarray(est.y_mean_, np.float64)
        arrays["y_scale_"] = np.asarray(est.y_scale_, np.float64)
    config = {"params": params, "fitted": fitted, "layers": model_config["layers"]}
    return name, config, next(iter(est.model_)).dtype, arrays


def _atomic_write(path, write):
    """Write a file through `write(fileobj)` to a temporary name in `path`'s
    directory, fsync it, rename it over `path` and fsync the directory."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path!r} is a directory; give a file path")
    directory = os.path.dirname(os.path.abspath(path))
    mode = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory; the rename is done
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _new_file_mode(path):
    """The permission bits the file would get from a plain open(): the
    existing file's, else 0o666 less the process umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    umask = 0o022
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
                    break
    except (OSError, ValueError):
        pass
    return 0o666 & ~umask


class _BadFile(ValueError):
    pass


def load(path: File) -> Saveable:
    """Read a module written by :func:`save`.

    Raises
    ------
    ValueError
        For any file that is not an intact fastlstm file (truncated,
        corrupted, tampered, foreign, or describing sizes its arrays do not
        have).  Nothing is allocated beyond what the checked header implies.
    OSError
        When `path` cannot be opened (``FileNotFoundError``, ...).
    """
    where = getattr(path, "name", path)
    if hasattr(path, "read"):
        return _load_from(path, where)
    with open(path, "rb") as fh:
        return _load_from(fh, where)


def _load_from(fh, where):
    try:
        with zipfile.ZipFile(fh) as zf:
            cls_name, config, dtype, arrays = _read_checked(zf)
    except _BadFile as e:
        raise ValueError(f"load: {where!s}: {e}") from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        NotImplementedError,
        RuntimeError,
        AttributeError,
        RecursionError,
        OverflowError,
        UnicodeDecodeError,
        LookupError,
    ) as e:
        # anything the zip/npy readers raise on a damaged file
        raise ValueError(
            f"load: {where!s} is not a readable fastlstm file ({type(e).__name__}: {e})"
        ) from None
    try:
        if cls_name in _ESTIMATORS:
            return _build_estimator(cls_name, config, dtype, arrays)
        module = _build(cls_name, config, dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"load: invalid {cls_name} config in {where!s}: {e}") from None
    module.load_state_dict(arrays)
    return module


def _build_estimator(cls_name, config, dtype, arrays):
    """The estimator a checked file describes: hyperparameters (checked by
    the estimator), network and fitted attributes; compiled, so that
    partial_fit can continue (with a fresh optimizer)."""
    est = _estimator_class(cls_name)(**config["params"])
    est._check_params()
    model = _build("Sequential", {"layers": config["layers"]}, dtype)
    model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
    fitted = config["fitted"]
    est.n_features_in_ = fitted["n_features_in_"]
    est.n_iter_ = fitted["n_iter_"]
    est.loss_ = float("nan") if fitted["loss_"] is None else float(fitted["loss_"])
    est.history_ = {
        k: [float("nan") if x is None else float(x) for x in v]
        for k, v in fitted["history_"].items()
    }
    est._shuffle_seed = fitted["shuffle_seed"]
    if cls_name == "LSTMClassifier":
        est.classes_ = arrays["classes_"]
    else:
        est.sequence_output_ = fitted["sequence_output_"]
        est._multi = fitted["multi"]
        est.y_mean_, est.y_scale_ = arrays["y_mean_"], arrays["y_scale_"]
    est._compile(model)
    est.model_ = model
    return est


def _build(cls_name, config, dtype):
    cls = _CLASSES[cls_name][0]
    if cls_name == "Sequential":
        return cls(*(_build(la["class"], la["config"], dtype) for la in config["layers"]))
    if cls_name in _PARAMETERLESS:
        return cls(**config)
    return cls(**config, dtype=dtype)


def _read_checked(zf):
    members = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise _BadFile(f"unexpected member {info.filename!r} (not an .npy array)")
        if info.flag_bits & 0x1:
            raise _BadFile(f"member {info.filename!r} is encrypted")
        members[info.filename[:-4]] = info
    meta_info = members.pop(_META_KEY, None)
    if meta_info is None:
        raise _BadFile("no fastlstm header: not a fastlstm file")
    meta = _read_header(zf, meta_info)
    cls_name, config, dtype = _check_meta(meta)
    expected_count = _parameter_count(cls_name, config)
    if expected_count != len(members) and expected_count > 4 * len(members) + 64:
        # refused before listing the arrays a forged header would describe
        raise _BadFile(f"its config implies {expected_count} arrays, the file has {len(members)}")
    expected = _expected_shapes(cls_name, config)
    if set(expected) != set(members):
        raise _BadFile(
            f"does not match its config: missing "
            f"{sorted(set(expected) - set(members))}, unexpected "
            f"{sorted(set(members) - set(expected))}"
        )
    dtypes = dict.fromkeys(expected, dtype)
    if cls_name in _ESTIMATORS:  # the fitted attributes' arrays
        dtypes.update(_estimator_dtypes(cls_name, config))
    for name, info in members.items():
        _check_member_size(name, info, expected[name], dtypes[name])
    arrays = {
        name: _read_array(zf, info, name, expected[name], dtypes[name])
        for name, info in members.items()
    }
    return cls_name, config, dtype, arrays


def _read_header(zf, info):
    if info.file_size > _MAX_HEADER_BYTES:
        raise _BadFile(
            f"fastlstm header of {info.file_size} bytes (at most {_MAX_HEADER_BYTES}): corrupt"
        )
    raw = _read_array(zf, info, _META_KEY, None, np.dtype(np.uint8))
    if raw.ndim != 1:
        raise _BadFile("corrupt fastlstm header (not a byte string)")
    try:
        text = raw.tobytes().decode("utf-8")
        meta = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _BadFile(f"corrupt fastlstm header ({type(e).__name__}: {e})") from None
    if _depth(meta) > _MAX_JSON_DEPTH:
        raise _BadFile("corrupt fastlstm header (nested too deeply)")
    return meta


def _reject_constant(name):
    raise _BadFile(f"corrupt fastlstm header ({name} is not a valid value)")


def _depth(obj, level=0):
    if level > _MAX_JSON_DEPTH:
        return level
    if isinstance(obj, dict):
        return max((_depth(v, level + 1) for v in obj.values()), default=level + 1)
    if isinstance(obj, list):
        return max((_depth(v, level + 1) for v in obj), default=level + 1)
    return level


def _check_meta(meta):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _BadFile("not a fastlstm file (its header names no fastlstm format)")
    if meta.get("version") != VERSION:
        raise _BadFile(f"unsupported fastlstm file version {meta.get('version')!r}")
    cls_name, config = meta.get("class"), meta.get("config")
    if isinstance(cls_name, str) and cls_name in _ESTIMATORS:
        _check_estimator_config(cls_name, config)
        if meta.get("dtype") != "float64":
            raise _BadFile(f"unsupported {cls_name} dtype {meta.get('dtype')!r}")
        return cls_name, config, np.dtype(np.float64)
    _check_config(cls_name, config, tuple(_CLASSES))
    if cls_name == "Sequential":
        layers = config["layers"]
        if not isinstance(layers, list):
            raise _BadFile("invalid Sequential config: layers must be a list")
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict) or set(layer) != {"class", "config"}:
                raise _BadFile(
                    f"invalid Sequential config: layer {i} must be an object with keys "
                    "class and config"
                )
            _check_config(layer["class"], layer["config"], _IN_SEQUENTIAL, f"layer {i}: ")
    dtype = meta.get("dtype")
    if dtype is None and _parameter_count(cls_name, config) == 0:
        return cls_name, config, None
    if dtype not in ("float32", "float64"):
        raise _BadFile(f"unsupported dtype {dtype!r}")
    return cls_name, config, np.dtype(dtype)


def _check_config(cls_name, config, allowed, where=""):
    """The class is one of `allowed` and its config has exactly its keys,
    each of the right type and range (what the constructors will check
    again, but before any array is listed or read)."""
    if not isinstance(cls_name, str) or cls_name not in allowed:
        raise _BadFile(f"{where}unknown module class {cls_name!r}")
    if not isinstance(config, dict):
        raise _BadFile(f"{where}the config of {cls_name} is not a JSON object")
    keys = _CLASSES[cls_name][1]
    optional = _OPTIONAL.get(cls_name, {})
    if not set(keys) <= set(config) <= set(keys) | set(optional):
        extra = f" (and optionally {sorted(optional)})" if optional else ""
        raise _BadFile(
            f"{where}config of {cls_name} must have keys {sorted(keys)}{extra}, "
            f"got {sorted(config)}"
        )
    bad = f"{where}invalid {cls_name} config"
    if optional:
        _check_cell_options(config, bad)
    for key, lo in _MIN_INT.items():
        v = config.get(key, lo)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise _BadFile(f"{bad}: {key} must be an integer >= {lo}, got {v!r}")
    for key in _BOOLS:
        if not isinstance(config.get(key, False), bool):
            raise _BadFile(f"{bad}: {key} must be true or false, got {config[key]!r}")
    if cls_name == "Dropout":
        p = config["p"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise _BadFile(f"{bad}: p must be a number in [0, 1), got {p!r}")
    if cls_name == "Embedding":
        pad = config["padding_idx"]
        if pad is not None and (
            isinstance(pad, bool)
            or not isinstance(pad, int)
            or not 0 <= pad < config["num_embeddings"]
        ):
            raise _BadFile(
                f"{bad}: padding_idx must be null or an integer in [0, num_embeddings), got {pad!r}"
            )
    if config.get("proj_size", 0) >= config.get("hidden_size", 1):
        raise _BadFile(
            f"{bad}: proj_size ({config['proj_size']}) must "
            f"be smaller than hidden_size ({config['hidden_size']})"
        )


def _check_cell_options(config, bad):
    """The LSTM's ONNX cell options in a config, as the constructor would
    check them (a bad one is a _BadFile, not the constructor's error)."""
    for key in ("peepholes", "input_forget"):
        if not isinstance(config.get(key, False), bool):
            raise _BadFile(f"{bad}: {key} must be true or false, got {config[key]!r}")
    clip = config.get("clip")
    if clip is not None and (
        isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0
    ):
        raise _BadFile(f"{bad}: clip must be null or a number > 0, got {clip!r}")
    try:
        acts = resolve_activations(
            config.get("activations"),
            config.get("activation_alpha"),
            config.get("activation_beta"),
            2 if config.get("bidirectional") else 1,
        )
    except ValueError as e:
        raise _BadFile(f"{bad}: {e}") from None
    plain = not any(config.get(k) for k in ("peepholes", "clip", "input_forget")) and all(
        a == CellOptions().activations for a in acts
    )
    if not plain and config.get("proj_size"):
        raise _BadFile(f"{bad}: the cell options do not combine with proj_size")


def _check_estimator_config(cls_name, config):
    """An estimator's config: exactly its hyperparameters (JSON scalars; the
    estimator checks their values when built), fitted attributes of the
    right types, and the network the estimator builds (LSTM, LastStep,
    Linear; or LSTM, Linear for a regressor's per-step output) with sizes
    that agree with each other."""
    bad = f"invalid {cls_name} config"
    if not isinstance(config, dict) or set(config) != {"params", "fitted", "layers"}:
        raise _BadFile(f"{bad}: expected an object with keys fitted, layers and params")
    params, fitted, layers = config["params"], config["fitted"], config["layers"]
    names = set(_estimator_class(cls_name)._get_param_names())
    if not isinstance(params, dict) or set(params) != names:
        got = sorted(params) if isinstance(params, dict) else params
        raise _BadFile(f"{bad}: params must have keys {sorted(names)}, got {got!r}")
    for key, v in params.items():
        if not (v is None or isinstance(v, (bool, int, float, str))):
            raise _BadFile(f"{bad}: parameter {key} is {v!r}, not a JSON scalar")
    keys = _ESTIMATORS[cls_name]
    if not isinstance(fitted, dict) or set(fitted) != set(keys):
        got = sorted(fitted) if isinstance(fitted, dict) else fitted
        raise _BadFile(f"{bad}: fitted attributes must be {sorted(keys)}, got {got!r}")

    def integer(key, lo):
        v = fitted[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise _BadFile(f"{bad}: {key} must be an integer >= {lo}, got {v!r}")

    integer("n_features_in_", 1)
    integer("n_iter_", 0)
    integer("shuffle_seed", 0)
    loss = fitted["loss_"]
    if loss is not None and (isinstance(loss, bool) or not isinstance(loss, (int, float))):
        raise _BadFile(f"{bad}: loss_ must be a number or null, got {loss!r}")
    history = fitted["history_"]
    if not isinstance(history, dict) or not all(
        isinstance(v, list)
        and all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)) for x in v)
        for v in history.values()
    ):
        raise _BadFile(f"{bad}: history_ must map names to lists of numbers")
    if cls_name == "LSTMClassifier":
        code = fitted["classes_dtype"]
        try:
            kind_ok = isinstance(code, str) and len(code) <= 16 and np.dtype(code).kind in "biufU"
        except TypeError:
            kind_ok = False
        if not kind_ok or np.dtype(code).itemsize > _MAX_LABEL_BYTES:
            raise _BadFile(f"{bad}: classes_dtype {code!r} is not a dtype of labels")
        sequence = False
    else:
        for key in ("sequence_output_", "multi"):
            if not isinstance(fitted[key], bool):
                raise _BadFile(f"{bad}: {key} must be true or false, got {fitted[key]!r}")
        sequence = fitted["sequence_output_"]
    want = ["LSTM", "Linear"] if sequence else ["LSTM", "LastStep", "Linear"]
    if (
        not isinstance(layers, list)
        or [la.get("class") if isinstance(la, dict) else None for la in layers] != want
    ):
        raise _BadFile(f"{bad}: the network must be the layers {want}")
    for i, layer in enumerate(layers):
        if set(layer) != {"class", "config"}:
            raise _BadFile(f"{bad}: layer {i} must be an object with keys class and config")
        _check_config(layer["class"], layer["config"], _IN_SEQUENTIAL, f"layer {i}: ")
    lstm, head = layers[0]["config"], layers[-1]["config"]
    D = 2 if lstm["bidirectional"] else 1
    if not lstm["batch_first"] or lstm["proj_size"] or not head["bias"]:
        raise _BadFile(f"{bad}: not the network the estimator builds")
    if lstm["input_size"] != fitted["n_features_in_"]:
        raise _BadFile(f"{bad}: n_features_in_ differs from the LSTM's input_size")
    for key in ("hidden_size", "num_layers", "bidirectional"):
        if params[key] != lstm[key]:
            raise _BadFile(f"{bad}: parameter {key} differs from the network's")
    if head["in_features"] != D * lstm["hidden_size"]:
        raise _BadFile(f"{bad}: the Linear layer does not fit the LSTM's output")
    if not sequence and layers[1]["config"] != {"batch_first": True, "bidirectional": D == 2}:
        raise _BadFile(f"{bad}: the LastStep layer does not fit the LSTM")


def _estimator_dtypes(cls_name, config):
    """The dtypes of an estimator's arrays of fitted attributes."""
    if cls_name == "LSTMClassifier":
        return {"classes_": np.dtype(config["fitted"]["classes_dtype"])}
    return {"y_mean_": np.dtype(np.float64), "y_scale_": np.dtype(np.float64)}


def _parameter_count(cls_name, config):
    """How many arrays the config implies, without listing them."""
    if cls_name in _ESTIMATORS:
        extra = 1 if cls_name == "LSTMClassifier" else 2
        return _parameter_count("Sequential", {"layers": config["layers"]}) + extra
    if cls_name == "Sequential":
        return sum(_parameter_count(la["class"], la["config"]) for la in config["layers"])
    if cls_name in _PARAMETERLESS:
        return 0
    if cls_name == "Linear":
        return 2 if config["bias"] else 1
    if cls_name == "Embedding":
        return 1
    per_direction = 2 + (2 if config["bias"] else 0)
    if cls_name == "LSTMCell":
        return per_direction
    per_direction += 1 if config["proj_size"] else 0
    per_direction += 1 if config.get("peepholes") else 0
    return config["num_layers"] * (2 if config["bidirectional"] else 1) * per_direction


def _expected_shapes(cls_name, config):
    if cls_name in _ESTIMATORS:
        shapes = {
            f"model.{k}": v
            for k, v in _expected_shapes("Sequential", {"layers": config["layers"]}).items()
        }
        n_out = (config["layers"][-1]["config"]["out_features"],)
        extra = ("classes_",) if cls_name == "LSTMClassifier" else ("y_mean_", "y_scale_")
        shapes.update(dict.fromkeys(extra, n_out))
        return shapes
    if cls_name == "Sequential":
        return {
            f"{i}.{name}": shape
            for i, la in enumerate(config["layers"])
            for name, shape in _expected_shapes(la["class"], la["config"]).items()
        }
    if cls_name in _PARAMETERLESS:
        return {}
    if cls_name == "Linear":
        shapes = {"weight": (config["out_features"], config["in_features"])}
        if config["bias"]:
            shapes["bias"] = (config["out_features"],)
        return shapes
    if cls_name == "Embedding":
        return {"weight": (config["num_embeddings"], config["embedding_dim"])}
    if cls_name == "LSTMCell":
        return cell_parameter_shapes(config["input_size"], config["hidden_size"], config["bias"])
    return parameter_shapes(
        config["input_size"],
        config["hidden_size"],
        config["num_layers"],
        config["bias"],
        config["bidirectional"],
        config["proj_size"],
        config.get("peepholes", False),
    )


def _check_member_size(name, info, shape, dtype):
    """The member's declared sizes agree with the shape the config implies
    (before anything is decompressed or allocated)."""
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if not nbytes <= info.file_size <= nbytes + _MAX_NPY_HEADER_BYTES:
        raise _BadFile(
            f"{name} holds {info.file_size} bytes; the config implies a {dtype.name} "
            f"array of shape {tuple(shape)} ({nbytes} bytes of data)"
        )
    if info.file_size > (1 << 20) and info.file_size > _MAX_COMPRESSION_RATIO * max(
        info.compress_size, 1
    ):
        raise _BadFile(
            f"{name} expands {info.file_size / max(info.compress_size, 1):.0f}-fold "
            "when decompressed: refused"
        )


def _read_array(zf, info, name, shape, dtype):
    """One .npy member, its header checked against (shape, dtype) before its
    data is read (shape None: any 1-d or other shape of `dtype`, for the
    header, whose size was bounded by the caller)."""
    fmt = np.lib.format
    with zf.open(info) as fp:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            read_header = fmt.read_array_header_1_0
        elif version in ((2, 0), (3, 0)):
            read_header = fmt.read_array_header_2_0
        else:
            raise _BadFile(f"{name}: unsupported .npy version {version}")
        try:
            got_shape, fortran, got_dtype = read_header(fp, **_NPY_HEADER_LIMIT)
        except Exception as e:  # numpy's header parser on damaged text: any exception
            raise _BadFile(f"{name}: unreadable .npy header ({type(e).__name__}: {e})") from None
        if got_dtype != dtype or got_dtype.hasobject:
            what = "the header" if shape is None else f"{name}"
            raise _BadFile(
                f"{what} is {got_dtype} {got_shape}, the config implies "
                f"{dtype.name} {tuple(shape) if shape is not None else ''}".rstrip()
            )
        if shape is not None and tuple(got_shape) != tuple(shape):
            raise _BadFile(
                f"{name} is {got_dtype} {got_shape}, the config implies {dtype.name} {tuple(shape)}"
            )
        count = int(np.prod(got_shape, dtype=object))
        nbytes = count * got_dtype.itemsize
        if nbytes > info.file_size:
            raise _BadFile(f"{name}: its .npy header claims more data than the member holds")
        data = fp.read(nbytes)
        if len(data) != nbytes:
            raise _BadFile(f"{name}: truncated")
    a = np.frombuffer(data, dtype=got_dtype, count=count)
    return a.reshape(got_shape, order="F" if fortran else "C").copy(order="C")
