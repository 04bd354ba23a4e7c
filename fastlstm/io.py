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

from .cell import LSTMCell
from .lstm import LSTM

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


def load(path):
    """Read a module written by :func:`save`."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"load: {path!s} is not a readable fastlstm file ({e})") from None
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
    if cls_name not in _CLASSES or not isinstance(config, dict):
        raise ValueError(f"load: unknown module class {cls_name!r} in {path!s}")
    cls, keys = _CLASSES[cls_name]
    if set(config) != set(keys):
        raise ValueError(f"load: config of {cls_name} must have keys {sorted(keys)}, "
                         f"got {sorted(config)}")
    dtype = meta.get("dtype")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"load: unsupported dtype {dtype!r}")
    try:
        module = cls(**config, dtype=np.dtype(dtype))
    except (TypeError, ValueError) as e:
        raise ValueError(f"load: invalid {cls_name} config in {path!s}: {e}") from None
    for k, a in arrays.items():
        if a.dtype != module.dtype:
            raise ValueError(f"load: {k} has dtype {a.dtype}, expected {dtype}")
    try:
        module.load_state_dict(arrays)
    except KeyError as e:
        raise ValueError(f"load: {path!s} does not match its config: {e}") from None
    return module
