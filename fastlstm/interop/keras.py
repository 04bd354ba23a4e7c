"""Keras 3 models into fastlstm, without Keras: ``fastlstm.keras.load`` and
``fastlstm.keras.load_weights`` (h5py is imported when called; zipfile and
json are the standard library's).

A ``.keras`` file is a zip of ``config.json`` (the architecture) and
``model.weights.h5`` (the weights).  In the h5 file each layer's variables
sit under ``layers/<name>/vars/<k>`` (an LSTM's under ``.../cell/vars``, a
Bidirectional's under ``.../forward_layer`` and ``.../backward_layer``),
where ``<name>`` is the snake-case class name numbered in layer order
("lstm", "lstm_1", "dense"), not the layer's own name.

Keras's LSTM has torch's gate order (i, f, c, o) with transposed storage:
``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T``, ``bias_ih =
bias``, ``bias_hh = 0``.  Keras is batch-first: every layer gets
``batch_first=True``.  docs/interop.md has the table.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Mapping
from typing import Any, Union

import numpy as np

from ..layers.basic import Dropout, Embedding, Linear
from ..layers.lstm import LSTM
from ..layers.reducers import LastStep
from ..layers.sequential import Sequential

__all__ = ["load", "load_weights"]

PathLike = Union[str, "os.PathLike[str]"]
Config = Union[Mapping[str, Any], str, "os.PathLike[str]"]

# Keras 3 activation names -> the ONNX activation that is the same function,
# with its alpha, beta (given for every activation that takes one, so no
# default is involved); Keras's others (selu, relu6, gelu, silu, ...) have
# no exact equivalent among the ONNX LSTM's activations
_ACTIVATIONS: dict[str, tuple[str, tuple[float, ...], tuple[float, ...]]] = {
    "sigmoid": ("Sigmoid", (), ()),
    "tanh": ("Tanh", (), ()),
    "relu": ("Relu", (), ()),
    "linear": ("Affine", (1.0,), (0.0,)),  # also Keras's activation=None
    # Keras 3: relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1) (Keras 2's was x / 5 + 1/2)
    "hard_sigmoid": ("HardSigmoid", (1.0 / 6.0,), (0.5,)),
    "softsign": ("Softsign", (), ()),
    "softplus": ("Softplus", (), ()),
    "elu": ("Elu", (1.0,), ()),  # Keras's alpha is 1
    "leaky_relu": ("LeakyRelu", (0.2,), ()),  # Keras's negative_slope is 0.2
}
_SKIPPED = ("InputLayer",)


def _snake(name: str) -> str:
    """Keras's snake case of a class name (its weight file's group names)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _read_config(config: Config) -> dict[str, Any]:
    """A model config: a mapping, a JSON string, or a path to a config.json
    or a .keras file."""
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, str) and config.lstrip().startswith("{"):
        return json.loads(config)
    if isinstance(config, (str, os.PathLike)):
        p = os.fspath(config)
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                return json.loads(z.read("config.json"))
        with open(p) as f:
            return json.load(f)
    raise TypeError(
        "config: expected a Keras model config (a dict, a JSON string, or the path of a "
        f"config.json or .keras file), got {type(config).__name__}"
    )


def _layers(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The model's layers in order, checking that a functional model is a chain."""
    cls = config.get("class_name")
    inner = config.get("config", config)
    if cls not in (None, "Sequential", "Functional", "Model"):
        raise ValueError(f"config: a {cls} is not a Sequential or a functional model")
    layers = inner.get("layers")
    if not isinstance(layers, list):
        raise ValueError("config: no list of layers in the model config")
    previous = None
    for layer in layers:
        nodes = layer.get("inbound_nodes")
        if nodes and previous is not None:  # functional: one input, the layer before
            args = nodes[0].get("args", []) if len(nodes) == 1 else []
            hist = args[0].get("config", {}).get("keras_history") if len(args) == 1 else None
            if not hist or hist[0] != previous:
                raise ValueError(
                    f"config: layer {layer.get('name')!r} does not read the layer before it; "
                    "only a chain of layers is read"
                )
        previous = layer.get("name", layer.get("config", {}).get("name"))
    return layers


def _dtype(layer_config: Mapping[str, Any]) -> Any:
    dt = layer_config.get("dtype", "float32")
    if isinstance(dt, Mapping):
        dt = dt.get("config", {}).get("name", "float32")
    if dt not in ("float32", "float64"):
        raise ValueError(f"dtype policy {dt!r}: fastlstm runs float32 and float64")
    return np.dtype(dt)


def _activation_options(cfg: Mapping[str, Any], directions: int) -> dict[str, Any]:
    """Keras's (recurrent_activation, activation) as fastlstm's ONNX-style
    ``activations`` (f, g, h per direction); empty for sigmoid/tanh."""
    gate, act = cfg.get("recurrent_activation", "sigmoid"), cfg.get("activation", "tanh")
    gate, act = ("linear" if a is None else a for a in (gate, act))  # Keras: None is linear
    if (gate, act) == ("sigmoid", "tanh"):
        return {}
    names: list[str] = []
    alpha: list[float] = []
    beta: list[float] = []
    for which, a in (("recurrent_activation", gate), ("activation", act), ("activation", act)):
        if not isinstance(a, str) or a not in _ACTIVATIONS:
            raise ValueError(
                f"LSTM {cfg.get('name')!r}: {which}={a!r} is none of the ONNX LSTM "
                f"activations fastlstm runs (Keras activations read: {', '.join(_ACTIVATIONS)})"
            )
        onnx_name, al, be = _ACTIVATIONS[a]
        names.append(onnx_name)
        alpha.extend(al)
        beta.extend(be)
    opts: dict[str, Any] = {"activations": names * directions}
    if alpha:
        opts["activation_alpha"] = alpha * directions
    if beta:
        opts["activation_beta"] = beta * directions
    return opts


def _check_lstm_config(cfg: Mapping[str, Any], inside_bidirectional: bool) -> None:
    name = cfg.get("name")
    for key in ("return_state", "stateful"):
        if cfg.get(key):
            raise ValueError(f"LSTM {name!r}: {key}=True is not supported")
    if cfg.get("go_backwards") and not inside_bidirectional:
        raise ValueError(
            f"LSTM {name!r}: go_backwards=True outside a Bidirectional (fastlstm has no "
            "reverse-only LSTM; a Bidirectional's backward layer is read)"
        )


class _Weights:
    """The h5 weight file's groups, by Keras's numbered class names."""

    def __init__(self, h5: Any) -> None:
        self.h5 = h5
        self.counts: dict[str, int] = {}

    def next_group(self, class_name: str) -> Any:
        base = _snake(class_name)
        n = self.counts.get(base, 0)
        self.counts[base] = n + 1
        name = base if n == 0 else f"{base}_{n}"
        path = f"layers/{name}"
        if path not in self.h5:
            raise ValueError(f"weights: no group {path!r} for a {class_name} layer")
        return self.h5[path]


def _vars(group: Any, count: int, what: str) -> list[np.ndarray]:
    if "vars" not in group:
        raise ValueError(f"weights: {group.name!r} has no vars ({what})")
    v = group["vars"]
    keys = sorted(v.keys(), key=int)
    if len(keys) != count:
        raise ValueError(f"weights: {group.name!r} holds {len(keys)} arrays, {what} has {count}")
    return [np.asarray(v[k]) for k in keys]


def _lstm_params(group: Any, cfg: Mapping[str, Any], sfx: str, dt: Any) -> dict[str, np.ndarray]:
    use_bias = cfg.get("use_bias", True)
    arrays = _vars(group["cell"] if "cell" in group else group, 3 if use_bias else 2, "an LSTM")
    kernel, recurrent = arrays[0], arrays[1]
    out = {
        f"weight_ih_l0{sfx}": kernel.T.astype(dt),
        f"weight_hh_l0{sfx}": recurrent.T.astype(dt),
    }
    if use_bias:  # one Keras bias; fastlstm's two add up
        out[f"bias_ih_l0{sfx}"] = arrays[2].astype(dt)
        out[f"bias_hh_l0{sfx}"] = np.zeros_like(arrays[2], dtype=dt)
    return out


def _convert(layers: list[dict[str, Any]], h5: Any) -> Sequential:
    weights = _Weights(h5)
    out: list[Any] = []
    for layer in layers:
        cls, cfg = layer.get("class_name"), layer.get("config", {})
        name = cfg.get("name")
        if cls in _SKIPPED:
            continue
        if cls in ("LSTM", "Bidirectional"):
            bidir = cls == "Bidirectional"
            if bidir:
                merge = cfg.get("merge_mode", "concat")
                if merge != "concat":
                    raise ValueError(
                        f"Bidirectional {name!r}: merge_mode={merge!r} (fastlstm concatenates "
                        "[forward | reverse])"
                    )
                inner = cfg["layer"]
                if inner.get("class_name") != "LSTM":
                    raise ValueError(
                        f"Bidirectional {name!r}: wraps a {inner.get('class_name')}, not an LSTM"
                    )
                lcfg = inner["config"]
            else:
                lcfg = cfg
            _check_lstm_config(lcfg, bidir)
            group = weights.next_group(cls)
            dt = _dtype(lcfg)
            D = 2 if bidir else 1
            if bidir:
                if lcfg.get("go_backwards"):
                    raise ValueError(f"Bidirectional {name!r}: its forward layer goes backwards")
                params = _lstm_params(group["forward_layer"], lcfg, "", dt)
                params.update(_lstm_params(group["backward_layer"], lcfg, "_reverse", dt))
            else:
                params = _lstm_params(group, lcfg, "", dt)
            units = int(lcfg["units"])
            lstm = LSTM(
                params["weight_ih_l0"].shape[1],
                units,
                bias=bool(lcfg.get("use_bias", True)),
                batch_first=True,
                bidirectional=bidir,
                dtype=dt,
                **_activation_options(lcfg, D),
            )
            lstm.load_state_dict(params)
            out.append(lstm)
            if not lcfg.get("return_sequences", False):
                out.append(LastStep(batch_first=True, bidirectional=bidir))
        elif cls == "Dense":
            act = cfg.get("activation", "linear")
            if act not in ("linear", None):
                raise ValueError(
                    f"Dense {name!r}: activation={act!r} (fastlstm's Linear has none; "
                    "apply it to the output)"
                )
            dt = _dtype(cfg)
            use_bias = cfg.get("use_bias", True)
            arrays = _vars(weights.next_group(cls), 2 if use_bias else 1, "a Dense")
            lin = Linear(arrays[0].shape[0], arrays[0].shape[1], bias=use_bias, dtype=dt)
            state = {"weight": arrays[0].T.astype(dt)}
            if use_bias:
                state["bias"] = arrays[1].astype(dt)
            lin.load_state_dict(state)
            out.append(lin)
        elif cls == "Embedding":
            if cfg.get("mask_zero"):
                raise ValueError(
                    f"Embedding {name!r}: mask_zero=True (Keras masking is not converted: "
                    "pass fastlstm the lengths of the sequences instead)"
                )
            dt = _dtype(cfg)
            (table,) = _vars(weights.next_group(cls), 1, "an Embedding")
            emb = Embedding(table.shape[0], table.shape[1], dtype=dt)
            emb.load_state_dict({"weight": table.astype(dt)})
            out.append(emb)
        elif cls == "Dropout":  # the identity at inference; no weights
            out.append(Dropout(float(cfg.get("rate", 0.0))))
        else:
            raise ValueError(
                f"layer {name!r}: Keras {cls} has no fastlstm equivalent (LSTM, Bidirectional "
                "LSTM, Dense, Embedding, Dropout)"
            )
    if not out:
        raise ValueError("config: the model has no layers to convert")
    return Sequential(*out)


def _open_h5(source: Any) -> Any:
    try:
        import h5py  # optional dependency: imported when called
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("reading Keras weights needs h5py: pip install 'fastlstm[keras]'") from e
    return h5py.File(source, "r")


def load(path: PathLike, *, config: Config | None = None) -> Sequential:
    """A Keras 3 model (``.keras`` file, or ``.weights.h5`` with its config)
    as a fastlstm Sequential that computes the same function, batch-first.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.keras`` file, or a ``.weights.h5`` file (``model.save_weights``).
    config : dict, JSON string or path, optional
        The architecture for a ``.weights.h5`` file: ``model.get_config()``,
        ``model.to_json()``, or the path of a ``config.json`` or ``.keras``.

    Supported layers: LSTM (its activation and recurrent_activation any of
    sigmoid, tanh, relu, linear, hard_sigmoid, softsign, softplus, elu,
    leaky_relu: the others through fastlstm.LSTM's ``activations``),
    Bidirectional LSTM (merge_mode "concat"), Dense without activation,
    Embedding (not mask_zero), Dropout; an LSTM with
    ``return_sequences=False`` is followed by a LastStep.  A Sequential or a
    functional chain.  Anything else is a ValueError naming
    the layer.
    """
    p = os.fspath(path)
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ValueError(
                    f"path: {p!r} is not a .keras file (config.json, model.weights.h5)"
                )
            cfg = json.loads(z.read("config.json"))
            blob = io.BytesIO(z.read("model.weights.h5"))
        if config is not None:
            cfg = _read_config(config)
        with _open_h5(blob) as h5:
            return _convert(_layers(cfg), h5)
    if config is None:
        raise ValueError(
            f"config: {p!r} holds only weights; pass the architecture (config=, e.g. "
            "model.to_json() or its .keras file), or use load_weights with a matching "
            "fastlstm model"
        )
    with _open_h5(p) as h5:
        return _convert(_layers(_read_config(config)), h5)


def load_weights(path: PathLike, model: Sequential) -> Sequential:
    """Load a Keras ``.weights.h5`` (or ``.keras``) file's weights into a
    matching fastlstm Sequential, in place, and return it.

    The model's layers pair with Keras's in order, by kind: an LSTM with
    Keras's next LSTM (a bidirectional one with the next Bidirectional), a
    Linear with the next Dense, an Embedding with the next Embedding (the
    weight file numbers each kind in layer order).  Shapes must match (a
    ValueError names the layer otherwise); nothing changes unless all do.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a fastlstm.Sequential, got {type(model).__name__}")
    p = os.fspath(path)
    source: Any = p
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            source = io.BytesIO(z.read("model.weights.h5"))
    state: dict[str, np.ndarray] = {}
    with _open_h5(source) as h5:
        weights = _Weights(h5)
        for i, layer in enumerate(model):
            if isinstance(layer, LSTM):
                if layer.num_layers != 1 or layer.proj_size:
                    raise ValueError(
                        f"model: layer {i} is an LSTM of {layer.num_layers} layers or with "
                        "proj_size; a Keras LSTM is one layer"
                    )
                cfg = {"use_bias": layer.bias}
                if layer.bidirectional:
                    g = weights.next_group("Bidirectional")
                    params = _lstm_params(g["forward_layer"], cfg, "", layer.dtype)
                    params.update(_lstm_params(g["backward_layer"], cfg, "_reverse", layer.dtype))
                else:
                    params = _lstm_params(weights.next_group("LSTM"), cfg, "", layer.dtype)
            elif isinstance(layer, Linear):
                arrays = _vars(weights.next_group("Dense"), 2 if layer.bias is not None else 1, "")
                params = {"weight": arrays[0].T.astype(layer.dtype)}
                if layer.bias is not None:
                    params["bias"] = arrays[1].astype(layer.dtype)
            elif isinstance(layer, Embedding):
                (table,) = _vars(weights.next_group("Embedding"), 1, "an Embedding")
                params = {"weight": table.astype(layer.dtype)}
            else:
                continue
            own = layer.state_dict()
            for k, v in params.items():
                if own[k].shape != v.shape:
                    raise ValueError(
                        f"model: layer {i} ({type(layer).__name__}) {k} has shape "
                        f"{own[k].shape}, the Keras weights {v.shape}"
                    )
                state[f"{i}.{k}"] = v
    model.load_state_dict(state)
    return model
