"""Saving and loading layers: one .npz file, config as JSON, never pickle.

``save(path, module)`` writes the parameters under their PyTorch names plus
one entry ``__fastlstm__`` holding a JSON document (format name, version,
class, constructor arguments) as bytes.  ``load(path)`` reads it back with
``allow_pickle=False``: a truncated, tampered or foreign file is a
ValueError, never code execution.  The round trip is bit-exact.
"""

import json
import zipfile

import numpy as np

from .layers.cell import LSTMCell
from .layers.lstm import LSTM
from .reference import cell_parameter_shapes, parameter_shapes

__all__ = ["save", "load"]

FORMAT, VERSION = "fastlstm", 1
_META_KEY = "__fastlstm__"
_CLASSES = {
    "LSTM": (LSTM, ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                    "dropout", "bidirectional", "proj_size")),
    "LSTMCell": (LSTMCell, ("input_size", "hidden_size", "bias")),
}


def save(path, module):
    """Write `module` (LSTM or LSTMCell) to `path` (an .npz file or file object)."""
    name = type(module).__name__
    if name not in _CLASSES or not isinstance(module, _CLASSES[name][0]):
        raise TypeError(f"save: expected an LSTM or LSTMCell, got {type(module).__name__}")
    config = {k: getattr(module, k) for k in _CLASSES[name][1]}
    meta = {"format": FORMAT, "version": VERSION, "class": name,
            "dtype": module.dtype.name, "config": config}
    arrays = module.state_dict()
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)


def _read_arrays(path):
    """All arrays of an .npz, opened by us so that a damaged file is closed."""
    def read(fh):
        f = np.load(fh, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with f:
            return {k: f[k] for k in f.files}

    try:
        if hasattr(path, "read"):
            return read(path)
        with open(path, "rb") as fh:
            return read(fh)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise ValueError(f"load: {path!s} is not a readable fastlstm file ({e})") from None


def _expected_shapes(cls_name, config):
    """Parameter shapes a config implies, computed without allocating."""
    for key, lo in (("input_size", 1), ("hidden_size", 1), ("num_layers", 1), ("proj_size", 0)):
        v = config.get(key, lo)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{key} must be an integer >= {lo}, got {v!r}")
    for key in ("bias", "bidirectional", "batch_first"):
        if not isinstance(config.get(key, False), bool):
            raise ValueError(f"{key} must be true or false, got {config[key]!r}")
    if config.get("proj_size", 0) >= config["hidden_size"]:
        raise ValueError(f"proj_size ({config['proj_size']}) must be smaller than "
                         f"hidden_size ({config['hidden_size']})")
    if cls_name == "LSTMCell":
        return cell_parameter_shapes(config["input_size"], config["hidden_size"], config["bias"])
    return parameter_shapes(config["input_size"], config["hidden_size"], config["num_layers"],
                            config["bias"], config["bidirectional"], config["proj_size"])


def load(path):
    """Read a module written by :func:`save`."""
    arrays = _read_arrays(path)
    raw = arrays.pop(_META_KEY, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"load: {path!s} has no fastlstm header: not a fastlstm file")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"load: corrupt fastlstm header in {path!s} ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"load: {path!s} is not a fastlstm file")
    if meta.get("version") != VERSION:
        raise ValueError(f"load: unsupported fastlstm file version {meta.get('version')!r}")
    cls_name, config = meta.get("class"), meta.get("config")
    if not isinstance(cls_name, str) or cls_name not in _CLASSES or not isinstance(config, dict):
        raise ValueError(f"load: unknown module class {cls_name!r} in {path!s}")
    cls, keys = _CLASSES[cls_name]
    if set(config) != set(keys):
        raise ValueError(f"load: config of {cls_name} must have keys {sorted(keys)}, "
                         f"got {sorted(config)}")
    dtype = meta.get("dtype")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"load: unsupported dtype {dtype!r}")
    # the stored arrays must be exactly what the config implies, checked
    # before anything is built (a forged header must not allocate)
    try:
        expected = _expected_shapes(cls_name, config)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"load: invalid {cls_name} config in {path!s}: {e}") from None
    if set(expected) != set(arrays):
        raise ValueError(f"load: {path!s} does not match its config: missing "
                         f"{sorted(set(expected) - set(arrays))}, unexpected "
                         f"{sorted(set(arrays) - set(expected))}")
    for k, a in arrays.items():
        if a.shape != tuple(expected[k]) or a.dtype != np.dtype(dtype):
            raise ValueError(f"load: {k} is {a.dtype} {a.shape}, the config implies "
                             f"{dtype} {tuple(expected[k])}")
    try:
        module = cls(**config, dtype=np.dtype(dtype))
    except (TypeError, ValueError) as e:
        raise ValueError(f"load: invalid {cls_name} config in {path!s}: {e}") from None
    module.load_state_dict(arrays)
    return module
