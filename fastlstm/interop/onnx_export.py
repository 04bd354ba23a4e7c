"""fastlstm models as ONNX graphs: ``fastlstm.onnx.export`` (onnx is imported
when called).

One ONNX ``LSTM`` node per layer (its directions in the node), time-major
(``layout`` 0: ONNX Runtime's CPU kernel refuses ``layout`` 1, so a
batch-first model gets a Transpose before and after).  The gate blocks are
reordered at the boundary (fastlstm/torch i, f, g, o -> ONNX i, o, f, c) and
the two biases become ``B = [Wb, Rb]``.  The layers around the LSTM become
plain ONNX operators; every layer's weights are initializers.  Batch and
time are dynamic axes.  docs/interop.md has the tables.
"""

from __future__ import annotations

import os
from collections.abc import Sequence as _Seq
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from numpy.typing import DTypeLike

from ..layers.basic import Dropout, Embedding, Linear
from ..layers.lstm import LSTM
from ..layers.reducers import LastStep, MaxPool, MeanPool
from ..layers.sequential import Sequential
from ..reference import ACTIVATIONS, resolve_activations
from .onnx import IR_VERSION, OPSET, onnx_gate_order

if TYPE_CHECKING:
    import onnx as _onnx

    from ..train.estimators import LSTMClassifier, LSTMRegressor

__all__ = ["export"]

Exportable = Union[LSTM, Sequential, "LSTMClassifier", "LSTMRegressor"]

_IO_NAMES: tuple[str, ...] = ("x", "lengths", "h0", "c0", "output", "h_n", "c_n")
_IO_NAMES += ("predictions", "logits", "probabilities")
# ONNX's defaults, which need no attribute
_DEFAULT_ACTIVATIONS = ("sigmoid", "tanh", "tanh")


class _Graph:
    """The nodes and initializers of the graph being built, with fresh names."""

    def __init__(self, onnx: Any, dtype: np.dtype) -> None:
        self.onnx = onnx
        self.dtype = dtype
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        # the graph's input and output names are never given to inner tensors
        self._count: dict[str, int] = dict.fromkeys(_IO_NAMES, 1)

    def name(self, hint: str) -> str:
        n = self._count.get(hint, 0)
        self._count[hint] = n + 1
        return hint if n == 0 else f"{hint}_{n}"

    def const(self, hint: str, value: Any, dtype: DTypeLike | None = None) -> str:
        """An initializer; floats in the graph's dtype unless ``dtype`` is given."""
        a = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(a.copy(order="C"), name))
        return name

    def ints(self, hint: str, values: Any) -> str:
        return self.const(hint, values, np.int64)

    def node(self, op: str, inputs: _Seq[str], hint: str, n_out: int = 1, **attrs: Any) -> Any:
        """Add a node; returns its output name (a list of them when n_out > 1)."""
        outs = [self.name(f"{hint}_{k}" if n_out > 1 else hint) for k in range(n_out)]
        self.nodes.append(
            self.onnx.helper.make_node(
                op, list(inputs), outs, name=self.name(f"{op}_{hint}"), **attrs
            )
        )
        return outs if n_out > 1 else outs[0]


def _lstm_options(lstm: LSTM) -> dict[str, Any]:
    """The layer's ONNX cell options as the LSTM node's attributes.

    alpha and beta are written out for every activation that takes one, as
    the layer resolved them (its values, ONNX's defaults where it was given
    none): ONNX Runtime consumes each list in order by the activations that
    take that parameter, as the layer does, but reads omitted values of
    Affine, ScaledTanh and ThresholdedRelu as 0, so nothing is left to a
    default."""
    attrs: dict[str, Any] = {}
    if lstm.clip is not None:
        attrs["clip"] = float(lstm.clip)
    if lstm.input_forget:
        attrs["input_forget"] = 1
    if lstm.activations is None:
        return attrs
    per_dir = resolve_activations(
        lstm.activations, lstm.activation_alpha, lstm.activation_beta, lstm.num_directions
    )
    triples = [t for d in per_dir for t in d]
    if [n.lower() for n, _, _ in triples] == list(_DEFAULT_ACTIVATIONS) * lstm.num_directions:
        return attrs
    attrs["activations"] = [n for n, _, _ in triples]
    for key, slot in (("activation_alpha", 0), ("activation_beta", 1)):
        values = [t[slot + 1] for t in triples if ACTIVATIONS[t[0]][slot] is not None]
        if values:
            attrs[key] = [float(v) for v in values]
    return attrs


def _emit_lstm(
    g: _Graph,
    lstm: LSTM,
    x: str,
    batch_first: bool,
    lengths: str | None,
    h0: str | None,
    c0: str | None,
) -> tuple[str, str, str]:
    """The LSTM's nodes from input ``x`` (in the layer's layout) to its output
    (same layout), h_n and c_n (L*D, B, H): -> (output, h_n, c_n)."""
    if lstm.proj_size:
        raise ValueError(
            f"proj_size={lstm.proj_size}: the ONNX LSTM operator has no projection (its h is "
            "o * h(c) of size hidden_size), so an LSTM with proj_size cannot be exported"
        )
    H, D, L = lstm.hidden_size, lstm.num_directions, lstm.num_layers
    params = lstm.state_dict()
    peepholes = lstm.peepholes
    options = _lstm_options(lstm)
    if batch_first:  # ONNX Runtime runs layout 0 only
        x = g.node("Transpose", [x], "time_major", perm=[1, 0, 2])
    seq_lens = g.node("Cast", [lengths], "sequence_lens", to=6) if lengths else ""  # int32
    hs, cs = [], []
    for k in range(L):
        sfx = [f"_l{k}", f"_l{k}_reverse"][:D]
        w = np.stack([onnx_gate_order(params["weight_ih" + s]) for s in sfx])
        r = np.stack([onnx_gate_order(params["weight_hh" + s]) for s in sfx])
        inputs = [x, g.const(f"W_l{k}", w), g.const(f"R_l{k}", r)]
        if lstm.bias:
            b = np.stack(
                [
                    np.concatenate(
                        [
                            onnx_gate_order(params["bias_ih" + s]),
                            onnx_gate_order(params["bias_hh" + s]),
                        ]
                    )
                    for s in sfx
                ]
            )
            inputs.append(g.const(f"B_l{k}", b))
        else:
            inputs.append("")
        inputs.append(seq_lens)
        for state, hint in ((h0, "h0"), (c0, "c0")):
            if state is None:
                inputs.append("")
            else:  # this layer's rows of the (L*D, B, H) state
                bounds = [
                    g.ints("start", [k * D]),
                    g.ints("end", [k * D + D]),
                    g.ints("axis0", [0]),
                ]
                inputs.append(g.node("Slice", [state, *bounds], f"{hint}_l{k}"))
        if peepholes:  # fastlstm's blocks i, f, o -> ONNX's i, o, f
            p = np.stack(
                [
                    np.concatenate([pi, po, pf])
                    for pi, pf, po in (np.split(params["weight_peephole" + s], 3) for s in sfx)
                ]
            )
            inputs.append(g.const(f"P_l{k}", p))
        while inputs and inputs[-1] == "":
            inputs.pop()
        attrs: dict[str, Any] = {"hidden_size": H, **options}
        if D == 2:
            attrs["direction"] = "bidirectional"
        y, y_h, y_c = g.node("LSTM", inputs, f"lstm_l{k}", n_out=3, **attrs)
        if D == 1:  # Y (T, 1, B, H) -> (T, B, H)
            x = g.node("Squeeze", [y, g.ints("axis1", [1])], f"output_l{k}")
        else:  # Y (T, 2, B, H) -> (T, B, 2, H) -> (T, B, 2H): [forward | reverse]
            yt = g.node("Transpose", [y], f"y_l{k}", perm=[0, 2, 1, 3])
            x = g.node("Reshape", [yt, g.ints("shape", [0, 0, -1])], f"output_l{k}")
        hs.append(y_h)
        cs.append(y_c)
    if batch_first:
        x = g.node("Transpose", [x], "batch_first", perm=[1, 0, 2])
    if L == 1:
        return x, hs[0], cs[0]
    return x, g.node("Concat", hs, "h_n", axis=0), g.node("Concat", cs, "c_n", axis=0)


def _valid_steps(g: _Graph, x: str, lengths: str, batch_first: bool, shift: int = 0) -> str:
    """A (T, B, 1) (batch-first: (B, T, 1)) boolean mask: step t of sequence b
    is valid (t < lengths[b]); with shift=-1 instead: t == lengths[b] - 1."""
    t_axis = 1 if batch_first else 0
    shape = g.node("Shape", [x], "shape")
    T = g.node("Gather", [shape, g.ints("t_axis", t_axis)], "T", axis=0)
    steps = g.node("Range", [g.ints("zero", 0), T, g.ints("one", 1)], "steps")
    # steps along the time axis, lengths along the batch axis
    steps = g.node("Unsqueeze", [steps, g.ints("axes", [1 - t_axis, 2])], "steps3")
    lens = g.node("Unsqueeze", [lengths, g.ints("axes", [t_axis, 2])], "lengths3")
    if shift:
        last = g.node("Sub", [lens, g.ints("one", 1)], "last_step")
        return g.node("Equal", [steps, last], "is_last")
    return g.node("Less", [steps, lens], "is_valid")


def _feature_half(g: _Graph, x: str, half: int, width: int) -> str:
    """x[..., :width] (half 0) or x[..., width:] (half 1)."""
    start, end = (0, width) if half == 0 else (width, 2 * width)
    return g.node(
        "Slice",
        [x, g.ints("start", [start]), g.ints("end", [end]), g.ints("axis_last", [-1])],
        "half",
    )


def _emit_reducer(
    g: _Graph, layer: LastStep | MeanPool | MaxPool, x: str, width: int, lengths: str | None
) -> str:
    """(T, B, F) or (B, T, F) -> (B, F) over each sequence's valid steps."""
    bf = layer.batch_first
    t = 1 if bf else 0
    if isinstance(layer, LastStep):
        if lengths is None:
            last = g.node("Gather", [x, g.ints("minus_one", -1)], "last", axis=t)
        else:  # the one step t == lengths - 1 of each sequence, summed with zeros: exact
            mask = _valid_steps(g, x, lengths, bf, shift=-1)
            masked = g.node("Where", [mask, x, g.const("zero_f", 0.0)], "at_last")
            last = g.node("ReduceSum", [masked, g.ints("t_axis", [t])], "last", keepdims=0)
        if not layer.bidirectional:
            return last
        # forward half at the last valid step, reverse half at step 0
        first = g.node("Gather", [x, g.ints("zero_i", 0)], "first", axis=t)
        h = width // 2
        return g.node(
            "Concat",
            [_feature_half(g, last, 0, h), _feature_half(g, first, 1, h)],
            "last_step",
            axis=-1,
        )
    if isinstance(layer, MeanPool):
        if lengths is None:
            return g.node("ReduceMean", [x], "mean", axes=[t], keepdims=0)
        mask = _valid_steps(g, x, lengths, bf)
        total = g.node(
            "ReduceSum",
            [g.node("Where", [mask, x, g.const("zero_f", 0.0)], "valid"), g.ints("t_axis", [t])],
            "total",
            keepdims=0,
        )
        count = g.node(
            "Cast",
            [g.node("Unsqueeze", [lengths, g.ints("axes", [1])], "count_i")],
            "count",
            to=_tensor_type(g.dtype),
        )
        return g.node("Div", [total, count], "mean")
    # MaxPool
    if lengths is None:
        return g.node("ReduceMax", [x], "max", axes=[t], keepdims=0)
    mask = _valid_steps(g, x, lengths, bf)
    masked = g.node("Where", [mask, x, g.const("minus_inf", -np.inf)], "valid")
    return g.node("ReduceMax", [masked], "max", axes=[t], keepdims=0)


def _tensor_type(dtype: np.dtype) -> int:
    return 1 if dtype == np.float32 else 11  # TensorProto.FLOAT / DOUBLE


def _flatten(model: Sequential) -> list[Any]:
    out: list[Any] = []
    for layer in model:
        out.extend(_flatten(layer) if isinstance(layer, Sequential) else [layer])
    return out


def _as_dtype(model_dtype: Any, dtype: DTypeLike | None) -> np.dtype:
    dt = np.dtype(model_dtype if dtype is None else dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected numpy.float32 or numpy.float64, got {dt}")
    return dt


def export(
    model: Exportable,
    path: str | os.PathLike[str] | None = None,
    *,
    lengths: bool = False,
    initial_states: bool = False,
    dtype: DTypeLike | None = None,
) -> _onnx.ModelProto:
    """Export a fastlstm model to an ONNX graph (opset 14), checked by
    ``onnx.checker``, and write it to ``path`` when given.

    Parameters
    ----------
    model : fastlstm.LSTM, fastlstm.Sequential (of LSTM, Linear, Embedding,
        Dropout, LastStep, MeanPool, MaxPool, nested Sequential), or a fitted
        LSTMClassifier / LSTMRegressor (its network)
    path : str, os.PathLike or None
        Where to write the model (``.onnx``); None only returns it.
    lengths : bool
        Add an int64 graph input ``lengths`` (B,): each sequence's valid steps,
        as fastlstm's ``lengths`` argument (ONNX's ``sequence_lens``; a
        length of 0 gives an LSTM's zero outputs and final states in both).
    initial_states : bool
        An LSTM only: add graph inputs ``h0`` and ``c0`` (L*D, B, H), as
        fastlstm's ``hx``.
    dtype : numpy.float32, numpy.float64 or None
        The graph's float type; None keeps the model's.  ONNX Runtime's CPU
        LSTM runs float32 only: export float64 models (the estimators') with
        ``dtype=numpy.float32`` to run them there.

    Graph inputs and outputs (batch and time are dynamic):

    * LSTM: ``x`` (T, B, I), or (B, T, I) with batch_first -> ``output``,
      ``h_n``, ``c_n`` as fastlstm returns them.
    * Sequential: ``x`` (float, or int64 indices when it starts with an
      Embedding) -> ``output``.
    * LSTMRegressor: ``x`` (N, T, F) -> ``predictions`` (as ``predict``:
      unscaled; per-step predictions are 0 past each length).
    * LSTMClassifier: ``x`` (N, T, F) -> ``logits`` and ``probabilities``
      (their softmax, as ``predict_proba``; ``classes_[argmax]`` is
      ``predict``).

    Dropout is the identity (inference).  An LSTM with ``proj_size`` is a
    ValueError: the ONNX LSTM operator has no projection.
    """
    import onnx  # optional dependency: imported when called

    from ..train.estimators import LSTMClassifier, LSTMRegressor

    est = None
    if isinstance(model, (LSTMClassifier, LSTMRegressor)):
        if not hasattr(model, "model_"):
            raise ValueError(f"model: this {type(model).__name__} is not fitted yet")
        est, model = model, model.model_
    if not isinstance(model, (LSTM, Sequential)):
        raise TypeError(
            "model: expected a fastlstm.LSTM, Sequential, LSTMClassifier or LSTMRegressor, "
            f"got {type(model).__name__}"
        )
    if initial_states and not isinstance(model, LSTM):
        raise ValueError("initial_states: only an LSTM takes initial states (h0, c0)")
    dt = _as_dtype(model.dtype or np.float32, dtype)
    g = _Graph(onnx, dt)
    helper, TP = onnx.helper, onnx.TensorProto
    ftype = _tensor_type(dt)
    inputs, outputs = [], []
    lens = "lengths" if lengths else None
    if isinstance(model, LSTM):
        I, H, LD = model.input_size, model.hidden_size, model.num_layers * model.num_directions
        lead = ["batch", "time"] if model.batch_first else ["time", "batch"]
        inputs.append(helper.make_tensor_value_info("x", ftype, lead + [I]))
        if initial_states:
            for n in ("h0", "c0"):
                inputs.append(helper.make_tensor_value_info(n, ftype, [LD, "batch", H]))
        y, h_n, c_n = _emit_lstm(
            g,
            model,
            "x",
            model.batch_first,
            lens,
            "h0" if initial_states else None,
            "c0" if initial_states else None,
        )
        for name, src, shape in (
            ("output", y, lead + [model.num_directions * H]),
            ("h_n", h_n, [LD, "batch", H]),
            ("c_n", c_n, [LD, "batch", H]),
        ):
            g.nodes.append(helper.make_node("Identity", [src], [name], name=f"Identity_{name}"))
            outputs.append(helper.make_tensor_value_info(name, ftype, shape))
    else:
        out, shape, first_type = _emit_sequential(g, _flatten(model), lens)
        inputs.append(helper.make_tensor_value_info("x", first_type[0], first_type[1]))
        if est is not None:
            out, shape = _emit_estimator_tail(g, est, out, shape, lens, outputs, ftype)
        else:
            g.nodes.append(helper.make_node("Identity", [out], ["output"], name="Identity_output"))
            outputs.append(helper.make_tensor_value_info("output", ftype, shape))
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TP.INT64, ["batch"]))
    graph = helper.make_graph(g.nodes, "fastlstm", inputs, outputs, g.initializers)
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fastlstm"
    )
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save_model(proto, os.fspath(path))
    return proto


def _emit_sequential(
    g: _Graph, layers: list[Any], lengths: str | None
) -> tuple[str, list[Any], tuple[int, list[Any]]]:
    """-> (output name, output shape, (input element type, input shape))."""
    if not layers:
        raise ValueError("model: an empty Sequential has nothing to export")
    ftype = _tensor_type(g.dtype)
    # the layout of the current tensor: names of its axes, last = feature size
    first = layers[0]
    if isinstance(first, Embedding):
        lead = _lead_for(layers)
        in_type: tuple[int, list[Any]] = (7, lead)  # int64 indices
        shape: list[Any] = list(lead)
    elif isinstance(first, LSTM):
        lead = ["batch", "time"] if first.batch_first else ["time", "batch"]
        shape = lead + [first.input_size]
        in_type = (ftype, shape)
    elif isinstance(first, Linear):
        lead = _lead_for(layers)
        shape = lead + [first.in_features]
        in_type = (ftype, shape)
    else:
        raise ValueError(
            f"model: cannot tell the input's shape from a first layer {type(first).__name__}; "
            "start with an LSTM, Linear or Embedding"
        )
    x = "x"
    for i, layer in enumerate(layers):
        if isinstance(layer, Embedding):
            x = g.node(
                "Gather", [g.const(f"embedding_{i}", layer.weight), x], f"embedded_{i}", axis=0
            )
            shape = shape + [layer.embedding_dim]
        elif isinstance(layer, LSTM):
            if len(shape) != 3:
                raise ValueError(f"model: layer {i} (LSTM) needs a sequence, got shape {shape}")
            x, _, _ = _emit_lstm(g, layer, x, layer.batch_first, lengths, None, None)
            shape = shape[:2] + [layer.num_directions * layer.hidden_size]
        elif isinstance(layer, Linear):
            w = g.const(f"linear_{i}_weight_t", np.ascontiguousarray(layer.weight.T))
            x = g.node("MatMul", [x, w], f"linear_{i}")
            if layer.bias is not None:
                x = g.node("Add", [x, g.const(f"linear_{i}_bias", layer.bias)], f"linear_{i}_out")
            shape = shape[:-1] + [layer.out_features]
        elif isinstance(layer, Dropout):
            continue  # the identity at inference
        elif isinstance(layer, (LastStep, MeanPool, MaxPool)):
            if len(shape) != 3:
                raise ValueError(
                    f"model: layer {i} ({type(layer).__name__}) needs a sequence, got shape {shape}"
                )
            x = _emit_reducer(g, layer, x, shape[-1], lengths)
            shape = ["batch", shape[-1]]
        else:
            raise TypeError(
                f"model: layer {i} ({type(layer).__name__}) has no ONNX export (LSTM, Linear, "
                "Embedding, Dropout, LastStep, MeanPool, MaxPool)"
            )
    return x, shape, in_type


def _lead_for(layers: list[Any]) -> list[str]:
    """(batch, time) or (time, batch): the layout of the first layer that has one."""
    for layer in layers:
        if isinstance(layer, (LSTM, LastStep, MeanPool, MaxPool)):
            return ["batch", "time"] if layer.batch_first else ["time", "batch"]
    return ["batch", "time"]


def _emit_estimator_tail(
    g: _Graph,
    est: Any,
    out: str,
    shape: list[Any],
    lengths: str | None,
    outputs: list[Any],
    ftype: int,
) -> tuple[str, list[Any]]:
    """What predict / predict_proba do after the network."""
    helper = g.onnx.helper
    from ..train.estimators import LSTMClassifier

    if isinstance(est, LSTMClassifier):
        g.nodes.append(helper.make_node("Identity", [out], ["logits"], name="Identity_logits"))
        g.nodes.append(
            helper.make_node("Softmax", [out], ["probabilities"], name="Softmax", axis=-1)
        )
        outputs.append(helper.make_tensor_value_info("logits", ftype, shape))
        outputs.append(helper.make_tensor_value_info("probabilities", ftype, shape))
        return out, shape
    # regressor: undo the target scaling; per-step outputs are 0 past each length
    y = g.node("Mul", [out, g.const("y_scale", est.y_scale_)], "scaled")
    y = g.node("Add", [y, g.const("y_mean", est.y_mean_)], "unscaled")
    if est.sequence_output_ and lengths is not None:
        mask = _valid_steps(g, y, lengths, batch_first=True)
        y = g.node("Where", [mask, y, g.const("zero_f", 0.0)], "zeroed")
    if not est._multi:
        y = g.node("Squeeze", [y, g.ints("axis_last", [len(shape) - 1])], "single")
        shape = shape[:-1]
    g.nodes.append(helper.make_node("Identity", [y], ["predictions"], name="Identity_predictions"))
    outputs.append(helper.make_tensor_value_info("predictions", ftype, shape))
    return y, shape
