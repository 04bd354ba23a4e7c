"""ONNX graphs into fastlstm modules: ``fastlstm.onnx.load`` and
``fastlstm.onnx.InferenceSession`` (onnx is imported when called).

The graph is read by abstract interpretation: every tensor gets an abstract
value, and each node maps its inputs' values to its outputs'.

* ``_Const``: known now (initializers, Constant nodes, and any node whose
  inputs are all known, computed by onnx's reference evaluator).
* ``_Dims``: a shape vector whose entries are numbers or the symbolic batch
  and time sizes (``Shape`` of the data and what is sliced and concatenated
  from it); ``_Fill``: a tensor of one value whose shape is such a vector
  (``ConstantOfShape``, ``Expand``: the zero initial states torch exports).
* ``_Data``: a tensor computed from the data input by a *program*, the
  fastlstm stages so far (an LSTM stack, Linear, Embedding, a reducer).  It
  records the layout the program produces (``native``: what the fastlstm
  module returns) and the layout the graph sees (``view``), each a list of
  axes, an axis a tuple of atoms (label, size).  Transpose, Reshape,
  Squeeze and Unsqueeze change only the view: the same numbers, laid out
  differently.  A stage reads the native layout, so an operator that maps to
  a stage checks that the view it sees is the native one or one the stage's
  settings cover (a batch-first input with a Transpose before a time-major
  ONNX LSTM is ``batch_first=True``).
* The masks of ragged batches (``Range`` over the time axis against
  ``lengths``) and their ``Where`` / ``ReduceSum`` / ``ReduceMax`` /
  ``Div``: the reducers LastStep, MeanPool, MaxPool over each sequence's
  valid steps.

Consecutive ONNX LSTM nodes, each reading the previous one's whole output,
become one multi-layer ``fastlstm.LSTM`` (then ``Concat`` of their Y_h is
``h_n``).  Sizes of 1 are dropped from the atoms, so a unidirectional
LSTM's ``Squeeze`` of the direction axis and the bidirectional
Transpose+Reshape both come out as fastlstm's (T, B, D*H).

Anything the interpretation cannot place (an operator outside the list, a
data-dependent operand, two data paths) is a ValueError naming the node and
its operator.  docs/interop.md lists what is read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from numpy.typing import ArrayLike

from ..layers.basic import Embedding, Linear
from ..layers.lstm import LSTM
from ..layers.reducers import LastStep, MaxPool, MeanPool
from ..layers.sequential import Sequential
from ..reference import ACTIVATIONS
from .onnx import torch_gate_order

if TYPE_CHECKING:
    import onnx as _onnx

__all__ = ["load", "InferenceSession"]

Atom = tuple[str, Optional[int]]  # (label, size); size None: the batch or time size
Axis = tuple[Atom, ...]  # () is an axis of size 1
Layout = tuple[Axis, ...]

_DEFAULT_ACTIVATIONS = ["sigmoid", "tanh", "tanh"]
# ONNX Runtime's values of an omitted activation_alpha / activation_beta
# (measured: tests/interop/test_onnx_import.py): the ONNX operators' defaults
# (fastlstm.reference.ACTIVATIONS, which fastlstm.LSTM uses) except for
# Affine, ScaledTanh and ThresholdedRelu, whose omitted values it reads as 0
_ORT_DEFAULTS: dict[str, tuple[float | None, float | None]] = {
    name: (
        (None if a is None else 0.0, None if b is None else 0.0)
        if name in ("Affine", "ScaledTanh", "ThresholdedRelu")
        else (a, b)
    )
    for name, (a, b) in ACTIVATIONS.items()
}


def _decimal(value: float) -> float:
    """A float attribute (ONNX stores float32) as the shortest decimal that
    is that float32: ``clip=0.4`` reads back as 0.4, not 0.4000000059604645
    (the same float32, so a float32 layer computes the same either way)."""
    return float(str(np.float32(value)))


# ---- abstract values -----------------------------------------------------------


@dataclass(frozen=True)
class _Const:
    value: np.ndarray


@dataclass(frozen=True)
class _Dims:
    """A 1-D int64 vector (or a scalar, ``scalar=True``) whose entries are
    ints or symbolic sizes (atom labels of the data's batch/time axes)."""

    entries: tuple[Any, ...]
    scalar: bool = False


def _numeric(v: Any) -> bool:
    """A shape vector whose entries are all numbers (no batch or time size)."""
    return isinstance(v, _Dims) and all(isinstance(e, (int, np.integer)) for e in v.entries)


@dataclass(frozen=True)
class _Fill:
    value: float


@dataclass(frozen=True)
class _Input:
    """A graph input whose role is not known yet (data, lengths or a state)."""

    name: str
    elem_type: int
    rank: int
    last: int | None


@dataclass(frozen=True)
class _State:
    """Rows [r0, r1) of a state graph input along its direction axis."""

    name: str
    r0: int
    r1: int | None


@dataclass(frozen=True)
class _Lens:
    """The lengths input (+ offset), its batch axis at ``axes.index('B')`` of
    a tensor of ``len(axes)`` dims (others of size 1); ``float``: cast."""

    name: str
    offset: int = 0
    axes: tuple[str, ...] = ("B",)
    as_float: bool = False


@dataclass(frozen=True)
class _Steps:
    """Range(0, T): step indices along the time axis at ``axes.index('T')``."""

    time: str
    axes: tuple[str, ...] = ("T",)


@dataclass(frozen=True)
class _Mask:
    kind: str  # "valid" (t < lengths) or "last" (t == lengths - 1)
    lens: str
    axes: tuple[str, ...]  # 'T', 'B', '1' by position


@dataclass(frozen=True)
class _Masked:
    data: _Data
    mask: _Mask
    fill: float


@dataclass(frozen=True)
class _MaskedSum:
    data: _Data
    lens: str


@dataclass(frozen=True)
class _Picked:
    """data's step (last valid or first) over features [f0, f1)."""

    data: _Data
    which: str  # "last" or "first"
    f0: int
    f1: int
    lens: str | None


# the program: stages, each an immutable record turned into a module at the end
@dataclass(frozen=True, eq=False)
class _LayerSpec:
    node: str
    params: dict[str, np.ndarray]
    input_size: int
    hidden_size: int
    directions: int
    has_bias: bool
    options: dict[str, Any]
    h0: Any  # _State or None
    c0: Any
    lengths: str | None
    reverse_only: bool = False


@dataclass(frozen=True, eq=False)
class _Stack:
    layers: tuple[_LayerSpec, ...]
    batch_first: bool

    @property
    def D(self) -> int:
        return self.layers[0].directions

    @property
    def H(self) -> int:
        return self.layers[0].hidden_size


@dataclass(frozen=True, eq=False)
class _Stage:
    kind: str  # "linear", "embedding", "laststep", "meanpool", "maxpool"
    arrays: tuple[Any, ...] = ()
    batch_first: bool = False
    bidirectional: bool = False
    lengths: str | None = None


@dataclass(frozen=True)
class _Data:
    program: tuple[Any, ...]  # _Stack / _Stage
    tap: tuple[Any, ...]  # ("x",) ("seq",) ("y",) ("h"|"c", k0, k1)
    native: Layout
    view: Layout
    integer: bool = False

    def with_view(self, view: Layout) -> _Data:
        return replace(self, view=tuple(tuple(a for a in ax if a[1] != 1) for ax in view))


def _atoms(layout: Layout) -> list[Atom]:
    return [a for ax in layout for a in ax]


def _size(axis: Axis) -> int | None:
    n = 1
    for _, s in axis:
        if s is None:
            return None
        n *= s
    return n


# ---- the interpreter -------------------------------------------------------------


@dataclass
class _Result:
    module: Any
    stack_only: bool
    data_input: str
    lengths_input: str | None
    state_layers: list[tuple[Any, Any]]  # per layer: (h0 _State|None, c0 _State|None)
    outputs: dict[str, _Data]
    data_native: Layout
    hidden: int = 0
    directions: int = 1  # the ONNX nodes' (1 for a reverse-only stack)
    reverse_only: bool = False


class _Reader:
    def __init__(self, onnx: Any, model: Any, constants: Mapping[str, ArrayLike]) -> None:
        self.onnx = onnx
        self.model = model
        self.values: dict[str, Any] = {}
        self.data_input: str | None = None
        self.lengths_input: str | None = None
        self.node_desc = ""
        self.time_labels: set[str] = {"T"}  # atom labels an LSTM read as its time axis
        # the sizes a graph input declares for its axes (atom label -> size):
        # a graph exported with static shapes spells the batch or time axis
        # as that number in a Reshape (torch.onnx.export(dynamo=True))
        self.declared: dict[str, int] = {}
        g = model.graph
        nph = onnx.numpy_helper
        for init in g.initializer:
            self.values[init.name] = _Const(nph.to_array(init))
        for inp in g.input:
            if inp.name in self.values:
                continue
            if inp.name in constants:
                self.values[inp.name] = _Const(np.asarray(constants[inp.name]))
                continue
            tt = inp.type.tensor_type
            dims = list(tt.shape.dim)
            last = dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None
            for k, dim in enumerate(dims):
                if dim.HasField("dim_value"):
                    self.declared[f"{inp.name}:{k}"] = dim.dim_value
            self.values[inp.name] = _Input(inp.name, tt.elem_type, len(dims), last)
        unknown = set(constants) - {i.name for i in g.input}
        if unknown:
            raise ValueError(f"constants: {sorted(unknown)} are not inputs of the graph")

    # -- errors --
    def fail(self, why: str) -> ValueError:
        return ValueError(f"fastlstm.onnx.load: {self.node_desc}: {why}")

    # -- value helpers --
    def get(self, name: str) -> Any:
        if name == "":
            return None
        if name not in self.values:
            raise self.fail(f"input {name!r} is not produced by any node before it")
        return self.values[name]

    def const(self, v: Any, what: str) -> np.ndarray:
        if isinstance(v, _Const):
            return v.value
        if isinstance(v, _Dims) and all(isinstance(e, (int, np.integer)) for e in v.entries):
            return np.array(v.entries[0] if v.scalar else v.entries, np.int64)
        raise self.fail(f"{what} must be a constant (it depends on the data)")

    def data(self, v: Any, what: str = "input") -> _Data:
        if isinstance(v, _Input):
            return self.as_data(v)
        if isinstance(v, _Picked):
            return self.materialize(v)
        if not isinstance(v, _Data):
            raise self.fail(f"{what} must be the data path, got {type(v).__name__.strip('_')}")
        return v

    def as_data(self, v: _Input) -> _Data:
        """A graph input read as the data (the first one read so is the data input)."""
        if self.data_input not in (None, v.name):
            raise self.fail(
                f"a second data input {v.name!r} (the data input is {self.data_input!r}); "
                "fastlstm modules take one input"
            )
        self.data_input = v.name
        integer = v.elem_type in (6, 7)  # int32, int64: indices for an Embedding
        if v.rank < 1:
            raise self.fail(f"the data input {v.name!r} has no dimensions")
        axes: list[Axis] = [((f"{v.name}:{k}", None),) for k in range(v.rank)]
        if not integer:  # the feature axis
            axes[-1] = (("I", v.last),) if v.last != 1 else ()
        layout = tuple(axes)
        d = _Data((), ("x",), layout, layout, integer)
        self.values[v.name] = d
        return d

    def lens(self, v: Any) -> _Lens:
        if isinstance(v, _Lens):
            return v
        if isinstance(v, _Input):
            if self.lengths_input not in (None, v.name):
                raise self.fail(f"a second lengths input {v.name!r}")
            self.lengths_input = v.name
            lens = _Lens(v.name)
            self.values[v.name] = lens
            return lens
        raise self.fail("sequence lengths must come from a graph input")

    # -- the graph --
    def run(self) -> _Result:
        for node in self.model.graph.node:
            self.node_desc = f"node {node.name or '(unnamed)'!r} ({node.op_type})"
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(f"operator domain {node.domain!r} is not supported")
            handler = getattr(self, f"op_{node.op_type}", None)
            args = [self.get(n) for n in node.input]
            attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type != "LSTM" and all(
                a is None or isinstance(a, _Const) or _numeric(a) for a in args
            ):  # known now: shape arithmetic on numbers only (the dynamo exporter's D*H)
                outs = self.fold(
                    node, [_Const(self.const(a, "")) if _numeric(a) else a for a in args]
                )
            elif handler is None:
                raise self.fail(
                    "operator not supported on the data path (fastlstm reads LSTM and the "
                    "simple operators around it: see docs/interop.md)"
                )
            else:
                outs = handler(args, attrs, node)
            if not isinstance(outs, list):
                outs = [outs]
            for name, v in zip(node.output, outs):
                if name:
                    self.values[name] = v
        self.node_desc = "graph outputs"
        results: dict[str, _Data] = {}
        for o in self.model.graph.output:
            v = self.values.get(o.name)
            if isinstance(v, _Picked):
                v = self.materialize(v)
            if not isinstance(v, _Data):
                raise self.fail(
                    f"output {o.name!r} does not depend on the data input "
                    f"({type(v).__name__.strip('_')})"
                )
            results[o.name] = v
        return self.assemble(results)

    def fold(self, node: Any, args: list[Any]) -> list[Any]:
        if node.op_type == "Constant":
            attr = node.attribute[0]
            value = self.onnx.helper.get_attribute_value(attr)
            if attr.name == "value":
                return [_Const(self.onnx.numpy_helper.to_array(value))]
            return [_Const(np.asarray(value))]
        from onnx.reference import ReferenceEvaluator

        feeds = {n: a.value for n, a in zip(node.input, args) if n}
        try:
            res = ReferenceEvaluator(node).run(None, feeds)
        except Exception as e:  # pragma: no cover - the reference's own message
            raise self.fail(f"cannot compute it from its constant inputs: {e}") from e
        return [_Const(np.asarray(r)) for r in res]

    # ---- operators ------------------------------------------------------------
    def op_Identity(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        return args[0]

    def op_Dropout(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        if len(node.output) > 1 and node.output[1]:
            raise self.fail("its mask output is not supported (inference: identity)")
        return self.data(args[0])

    def op_Cast(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        v, to = args[0], attrs["to"]
        if isinstance(v, _Lens) or (
            isinstance(v, _Input) and v.elem_type in (6, 7) and v.rank == 1
        ):
            lens = self.lens(v)
            return replace(lens, as_float=to in (1, 10, 11, 16)) if to not in (6, 7) else lens
        if isinstance(v, _Dims):
            return v
        d = self.data(v)
        if d.integer != (to in (6, 7)):
            raise self.fail("a cast between integer and float data is not supported")
        return d

    def op_Shape(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        d = self.data(args[0])
        entries: list[Any] = []  # sizes, or the labels of the batch and time axes
        for ax in d.view:
            n = _size(ax)
            if n is not None:
                entries.append(n)
            elif len(ax) == 1:
                entries.append(ax[0][0])
            else:
                raise self.fail("the shape of a merged batch/time axis")
        start, end = attrs.get("start", 0), attrs.get("end", len(entries))
        return _Dims(tuple(entries[start:end]))

    def op_Gather(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        src, idx = args[0], args[1]
        axis = attrs.get("axis", 0)
        if isinstance(src, _Dims):
            i = self.const(idx, "the index")
            e = list(src.entries)
            if i.ndim == 0:
                return _Dims((e[int(i)],), scalar=True)
            return _Dims(tuple(e[int(k)] for k in i.ravel()))
        if isinstance(src, _Const):  # an embedding table indexed by the data
            x = self.data(idx, "indices")
            if not x.integer:
                raise self.fail("the indices of an embedding table must be integers")
            w = src.value
            if axis != 0 or w.ndim != 2:
                raise self.fail("only a 2-D table gathered along axis 0 is an Embedding")
            stage = _Stage("embedding", (w,))
            feat: Axis = (("E", w.shape[1]),) if w.shape[1] != 1 else ()
            return _Data(x.program + (stage,), ("seq",), x.native + (feat,), x.view + (feat,))
        if isinstance(src, _Data) and src.tap[0] in ("h", "c"):
            return self.gather_state(src, self.const(idx, "the index"), axis)
        d = self.data(src)
        i = self.const(idx, "the index")
        axis = axis % len(d.view)
        role = self.role(d, axis)
        if role != "T" or i.ndim != 0:
            raise self.fail(
                "only a single step along the time axis is read (the last or the first)"
            )
        which = "last" if int(i) == -1 else "first" if int(i) == 0 else None
        if which is None:
            raise self.fail(f"step {int(i)} of the time axis (only the first or last step)")
        f = _size(d.view[-1]) or 1
        return _Picked(d, which, 0, f, None)

    def gather_state(self, d: _Data, idx: np.ndarray, axis: int) -> Any:
        """Y_h / h_n rows: the last layer's final states are LastStep's."""
        if axis != 0 or idx.ndim != 0 or d.tap[0] != "h":
            raise self.fail("only one row of h_n (a layer's direction) along axis 0 is read")
        stack = d.program[-1]
        k0, k1 = d.tap[1], d.tap[2]
        D = stack.D
        rows = (k1 - k0) * D
        r = int(idx) % rows
        layer, direction = k0 + r // D, r % D
        if layer != len(stack.layers) - 1:
            raise self.fail("the final state of an inner layer (only the last layer's are read)")
        lens = stack.layers[-1].lengths
        y = _Data(
            d.program,
            ("y",),
            self.stack_native(stack),
            self.stack_native(stack),
        )
        H = stack.H
        return _Picked(
            y, "last" if direction == 0 else "first", direction * H, (direction + 1) * H, lens
        )

    def role(self, d: _Data, axis: int, native: bool = False) -> str:
        """ "T" (time), "B" (batch) or "F" (features) of an axis of d's view
        (or native layout).  Time is what an LSTM read as time."""
        ax = (d.native if native else d.view)[axis]
        if len(ax) == 1 and ax[0][1] is None and ax[0][0] != "I":
            return "T" if ax[0][0] in self.time_labels else "B"
        return "F"

    def op_Unsqueeze(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        v = args[0]
        axes = attrs.get("axes")
        if axes is None:
            axes = self.const(args[1], "axes").tolist()
        axes = [int(a) for a in np.atleast_1d(axes)]
        if isinstance(v, _Dims):
            if v.scalar and axes == [0]:
                return _Dims(v.entries)
            raise self.fail("unsqueeze of a shape vector")
        if isinstance(v, (_Lens, _Steps)):
            labels = list(v.axes)
            n = len(labels) + len(axes)
            for a in sorted(a % n for a in axes):
                labels.insert(a, "1")
            return replace(v, axes=tuple(labels))
        if isinstance(v, _Input) and v.elem_type in (6, 7) and v.rank == 1:
            return self.op_Unsqueeze([self.lens(v)] + args[1:], attrs, node)
        d = self.data(v)
        view = list(d.view)
        n = len(view) + len(axes)
        for a in sorted(a % n for a in axes):
            view.insert(a, ())
        return d.with_view(tuple(view))

    def op_Squeeze(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        d = self.data(args[0])
        axes = attrs.get("axes")
        if axes is None and len(args) > 1 and args[1] is not None:
            axes = self.const(args[1], "axes").tolist()
        n = len(d.view)
        if axes is None:
            axes = [k for k, ax in enumerate(d.view) if ax == ()]
        axes = [int(a) % n for a in np.atleast_1d(axes)]
        for a in axes:
            if d.view[a] != ():
                raise self.fail(f"axis {a} is not of size 1")
        return d.with_view(tuple(ax for k, ax in enumerate(d.view) if k not in axes))

    def op_Transpose(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        d = self.data(args[0])
        perm = attrs.get("perm", list(reversed(range(len(d.view)))))
        return d.with_view(tuple(d.view[p] for p in perm))

    def op_Reshape(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        d = self.data(args[0])
        shape = args[1]
        if isinstance(shape, _Dims):
            entries = list(shape.entries)
        else:
            entries = self.const(shape, "the shape").tolist()
        if attrs.get("allowzero", 0) and 0 in entries:
            raise self.fail("allowzero=1 with a 0 in the shape")
        return d.with_view(self.regroup(d.view, entries))

    def regroup(self, view: Layout, entries: list[Any]) -> Layout:
        """The axes of a Reshape: atoms stay in order, only their grouping
        changes.  Entries: 0 (copy that axis), -1 (the rest), 1 (an axis of
        size 1), a size, or a symbolic size."""
        atoms = _atoms(view)
        starts = np.cumsum([0] + [len(ax) for ax in view]).tolist()
        out: list[Axis | None] = [None] * len(entries)

        def take(entry: Any, pos: int, k: int, step: int) -> int:
            if entry == 0:
                ax = view[k]
                if (step > 0 and pos != starts[k]) or (step < 0 and pos != starts[k + 1]):
                    raise self.fail("a 0 (copy) entry that does not line up with its axis")
                out[k] = ax
                return pos + step * len(ax)
            if entry == 1:
                out[k] = ()
                return pos
            if isinstance(entry, str):
                a = atoms[pos] if step > 0 else atoms[pos - 1]
                if a[0] != entry:
                    raise self.fail("a reshape that mixes the batch and time axes")
                out[k] = (a,)
                return pos + step
            got: list[Atom] = []
            n = 1
            at = pos if step > 0 else pos - 1
            first = atoms[at] if 0 <= at < len(atoms) else None
            if first and first[1] is None and self.declared.get(first[0]) == entry:
                # the batch or time axis by the size the graph input declares
                out[k] = (first,)
                return pos + step
            while n < entry:
                a = atoms[pos] if step > 0 else atoms[pos - 1]
                if a[1] is None:
                    raise self.fail("a reshape that merges the batch or time axis with others")
                got.append(a)
                n *= a[1]
                pos += step
            if n != entry:
                raise self.fail(f"a reshape to {entry} that splits an axis")
            out[k] = tuple(got) if step > 0 else tuple(reversed(got))
            return pos

        if entries.count(-1) > 1:
            raise self.fail("two -1 entries")
        split = entries.index(-1) if -1 in entries else len(entries)
        pos = 0
        for k in range(split):
            pos = take(entries[k], pos, k, 1)
        end = len(atoms)
        for k in range(len(entries) - 1, split, -1):
            end = take(entries[k], end, k, -1)
        if split < len(entries):
            out[split] = tuple(atoms[pos:end])
        elif pos != len(atoms):
            raise self.fail("a reshape that drops axes")
        return tuple(ax for ax in out if ax is not None)

    def op_Concat(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        axis = attrs["axis"]
        if all(isinstance(a, (_Dims, _Const)) for a in args):
            entries: list[Any] = []
            for a in args:
                entries.extend(
                    a.entries if isinstance(a, _Dims) else self.const(a, "").ravel().tolist()
                )
            return _Dims(tuple(entries))
        if all(isinstance(a, _Data) and a.tap[0] in ("h", "c") for a in args):
            return self.concat_states(args, axis)
        if all(isinstance(a, _Picked) for a in args):
            return self.concat_picked(args, axis)
        raise self.fail("concatenation of data tensors other than final states or steps")

    def concat_states(self, args: list[_Data], axis: int) -> _Data:
        """Y_h of consecutive layers along axis 0: h_n of the stack."""
        first = args[0]
        if axis % len(first.view) != 0:
            raise self.fail("final states concatenated along an axis other than 0")
        kind, k0 = first.tap[0], first.tap[1]
        k = first.tap[2]
        prog = first.program
        for a in args[1:]:
            if a.tap[0] != kind or a.tap[1] != k:
                raise self.fail("final states of non-consecutive layers")
            k = a.tap[2]
            if len(a.program[-1].layers) >= len(prog[-1].layers):
                prog = a.program
        stack = prog[-1]
        view = self.state_native(stack, k0, k)
        return _Data(prog, (kind, k0, k), view, view)

    def concat_picked(self, args: list[_Picked], axis: int) -> Any:
        """[forward half at the last step | reverse half at the first]: a
        bidirectional LastStep."""
        if len(args) != 2:
            raise self.fail("only the two halves of a bidirectional output are concatenated")
        a, b = args
        if not (a.which == "last" and b.which == "first" and a.f0 == 0 and a.f1 == b.f0):
            raise self.fail("steps concatenated other than [forward last | reverse first]")
        width = _size(a.data.view[-1])
        if b.f1 != width or a.f1 * 2 != width or a.lens != b.lens and b.lens is not None:
            raise self.fail("the halves do not cover a bidirectional output")
        stack = a.data.program[-1] if a.data.program else None
        if not isinstance(stack, _Stack) or stack.D != 2:
            raise self.fail("a bidirectional last step of something else than a bidirectional LSTM")
        return self.reduce_stage(a.data, "laststep", a.lens, bidirectional=True)

    def op_Slice(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        v = args[0]
        starts = self.const(args[1], "starts").ravel().tolist()
        ends = self.const(args[2], "ends").ravel().tolist()
        axes = (
            self.const(args[3], "axes").ravel().tolist()
            if len(args) > 3 and args[3] is not None
            else list(range(len(starts)))
        )
        steps = (
            self.const(args[4], "steps").ravel().tolist()
            if len(args) > 4 and args[4] is not None
            else [1] * len(starts)
        )
        if any(s != 1 for s in steps):
            raise self.fail("slices with steps other than 1")
        if isinstance(v, _Fill):
            return v
        if isinstance(v, _Dims):
            e = list(v.entries)
            return _Dims(tuple(e[starts[0] : ends[0]]))
        if isinstance(v, (_Input, _State)):  # the rows of a layer's initial state
            if axes != [0] or len(starts) != 1:
                raise self.fail("an initial state sliced along an axis other than 0")
            base = v if isinstance(v, _State) else _State(v.name, 0, None)
            r0 = base.r0 + int(starts[0])
            r1 = base.r0 + int(ends[0])
            return _State(base.name, r0, r1)
        if isinstance(v, _Picked):
            if len(axes) != 1 or axes[0] not in (-1, len(v.data.view) - 2):
                raise self.fail("a step sliced along another axis than the features")
            width = v.f1 - v.f0
            lo, hi = max(0, min(int(starts[0]), width)), max(0, min(int(ends[0]), width))
            return replace(v, f0=v.f0 + lo, f1=v.f0 + hi)
        raise self.fail("slices of the data (only of final steps' features and initial states)")

    def op_ConstantOfShape(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        value = attrs.get("value")
        fill = (
            float(self.onnx.numpy_helper.to_array(value).ravel()[0]) if value is not None else 0.0
        )
        return _Fill(fill)

    def op_Expand(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        v = args[0]
        if isinstance(v, _Fill):
            return v
        if isinstance(v, _Const) and v.value.size and np.all(v.value == v.value.ravel()[0]):
            return _Fill(float(v.value.ravel()[0]))
        raise self.fail("expanding anything but a constant value")

    def op_Range(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        start, limit, delta = args
        if not (isinstance(limit, _Dims) and limit.scalar and isinstance(limit.entries[0], str)):
            raise self.fail("a range up to anything but the time size")
        if int(self.const(start, "start")) != 0 or int(self.const(delta, "delta")) != 1:
            raise self.fail("a range other than 0, 1, ..., T-1")
        return _Steps(limit.entries[0])

    def op_Sub(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        a, b = args
        if isinstance(a, (_Input, _Lens)) and isinstance(b, _Const):
            lens = self.lens(a)
            return replace(lens, offset=lens.offset - int(b.value))
        raise self.fail("subtraction on the data path (only lengths - 1)")

    def op_Less(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        return self.mask(args, "valid", 0)

    def op_Equal(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        return self.mask(args, "last", -1)

    def mask(self, args: list[Any], kind: str, offset: int) -> _Mask:
        steps, lens = args
        if not isinstance(steps, _Steps) or not isinstance(lens, _Lens) or lens.offset != offset:
            raise self.fail("a comparison other than steps < lengths or steps == lengths - 1")
        if len(steps.axes) != len(lens.axes):
            raise self.fail("steps and lengths of different ranks")
        axes = []
        for s, l in zip(steps.axes, lens.axes):
            if s == "T" and l == "1":
                axes.append("T")
            elif s == "1" and l == "B":
                axes.append("B")
            elif s == "1" and l == "1":
                axes.append("1")
            else:
                raise self.fail("steps and lengths that do not broadcast to (time, batch)")
        return _Mask(kind, lens.name, tuple(axes))

    def op_Where(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        mask, x, fill = args
        if not isinstance(mask, _Mask):
            raise self.fail("a condition other than a mask of valid steps")
        d = self.data(x)
        f = self.const(fill, "the fill value")
        if f.size != 1:
            raise self.fail("a fill value that is not a scalar")
        if len(mask.axes) != len(d.view):
            raise self.fail("a mask of another rank than the data")
        for m, k in zip(mask.axes, range(len(d.view))):
            role = self.role(d, k)
            if (
                (m == "T" and role != "T")
                or (m == "B" and role != "B")
                or (m == "1" and role != "F")
            ):
                raise self.fail("a mask whose time and batch axes are not the data's")
        return _Masked(d, mask, float(f.ravel()[0]))

    def time_axis(self, d: _Data, axes: list[int], keepdims: int) -> int:
        if len(axes) != 1 or keepdims:
            raise self.fail("a reduction other than over the time axis (keepdims=0)")
        t = axes[0] % len(d.view)
        if self.role(d, t) != "T":
            raise self.fail("a reduction over an axis other than time")
        return t

    def reduce_axes(self, args: list[Any], attrs: dict[str, Any]) -> list[int]:
        if "axes" in attrs:
            return list(attrs["axes"])
        if len(args) > 1 and args[1] is not None:
            return self.const(args[1], "axes").ravel().tolist()
        raise self.fail("a reduction over all axes")

    def op_ReduceSum(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        v = args[0]
        axes = self.reduce_axes(args, attrs)
        if not isinstance(v, _Masked) or v.fill != 0:
            raise self.fail("a sum other than over valid steps")
        self.time_axis(v.data, axes, attrs.get("keepdims", 1))
        if v.mask.kind == "last":
            f = _size(v.data.view[-1]) or 1
            return _Picked(v.data, "last", 0, f, v.mask.lens)
        return _MaskedSum(v.data, v.mask.lens)

    def op_ReduceMean(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        d = self.data(args[0])
        self.time_axis(d, self.reduce_axes(args, attrs), attrs.get("keepdims", 1))
        return self.reduce_stage(d, "meanpool", None)

    def op_ReduceMax(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        v = args[0]
        axes = self.reduce_axes(args, attrs)
        if isinstance(v, _Masked):
            if v.mask.kind != "valid" or v.fill != -np.inf:
                raise self.fail("a maximum over masked steps other than valid ones (fill -inf)")
            self.time_axis(v.data, axes, attrs.get("keepdims", 1))
            return self.reduce_stage(v.data, "maxpool", v.mask.lens)
        d = self.data(v)
        self.time_axis(d, axes, attrs.get("keepdims", 1))
        return self.reduce_stage(d, "maxpool", None)

    def op_Div(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        a, b = args
        if isinstance(a, _MaskedSum) and isinstance(b, _Lens) and b.as_float:
            if b.name != a.lens or b.offset != 0 or b.axes != ("B", "1"):
                raise self.fail("a mean divided by something other than the lengths")
            return self.reduce_stage(a.data, "meanpool", a.lens)
        raise self.fail("division on the data path (only a masked sum by the lengths)")

    def reduce_stage(
        self, d: _Data, kind: str, lens: str | None, bidirectional: bool = False
    ) -> _Data:
        """A reducer stage reading ``d``'s native layout."""
        native = d.native
        if len(native) != 3:
            raise self.fail("a reduction over a sequence that is not (time, batch, features)")
        roles = [self.role(d, k, native=True) for k in range(3)]
        if roles[2] != "F" or sorted(roles[:2]) != ["B", "T"]:
            raise self.fail("a sequence whose features are not the last axis")
        if d.view[-1] != native[-1]:
            raise self.fail("features laid out differently from the module's output")
        bf = roles[0] == "B"
        stage = _Stage(kind, (), bf, bidirectional, lens)
        if lens is not None:
            self.lengths_input = lens
        out = (native[1 - int(bf)], native[2])
        return _Data(d.program + (stage,), ("seq",), out, out)

    def materialize(self, p: _Picked) -> _Data:
        """A step read on its own: LastStep (unidirectional output, whole features)."""
        stack = p.data.program[-1] if p.data.program else None
        width = _size(p.data.view[-1])
        if p.which != "last" or p.f0 != 0 or p.f1 != width:
            raise self.fail("a first step or part of a step on its own (LastStep reads the last)")
        if isinstance(stack, _Stack) and stack.D == 2:
            raise self.fail(
                "the last step of a bidirectional LSTM's output: fastlstm's LastStep takes the "
                "forward half at the last step and the reverse half at step 0"
            )
        return self.reduce_stage(p.data, "laststep", p.lens)

    def op_MatMul(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        d = self.data(args[0])
        w = self.const(args[1], "the weight")
        return self.linear(d, w.T, None)

    def op_Gemm(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        d = self.data(args[0])
        if attrs.get("transA", 0):
            raise self.fail("transA=1")
        w = self.const(args[1], "B")
        w = w if attrs.get("transB", 0) else w.T
        w = w * attrs.get("alpha", 1.0) if attrs.get("alpha", 1.0) != 1.0 else w
        b = None
        if len(args) > 2 and args[2] is not None:
            b = self.const(args[2], "C")
            b = b * attrs.get("beta", 1.0) if attrs.get("beta", 1.0) != 1.0 else b
        return self.linear(d, w, b)

    def linear(self, d: _Data, weight: np.ndarray, bias: np.ndarray | None) -> _Data:
        """weight (out, in) as torch's."""
        if weight.ndim != 2:
            raise self.fail("a weight that is not a matrix")
        if d.integer:
            raise self.fail("a product of integer data")
        if _size(d.view[-1]) not in (weight.shape[1], None) or d.view[-1] != d.native[-1]:
            raise self.fail(f"the features of its input do not match the weight {weight.shape}")
        if bias is not None:
            bias = np.broadcast_to(bias, (weight.shape[0],)).astype(weight.dtype)
        if len(d.native) != len(d.view):
            raise self.fail("a product over a reshaped sequence")
        out: Axis = (("F", weight.shape[0]),) if weight.shape[0] != 1 else ()
        stage = _Stage("linear", (np.ascontiguousarray(weight), bias))
        return _Data(d.program + (stage,), ("seq",), d.native[:-1] + (out,), d.view[:-1] + (out,))

    def op_Add(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        a, b = args
        if isinstance(b, _Data) and isinstance(a, _Const):
            a, b = b, a
        if isinstance(a, _Data) and isinstance(b, _Const) and a.program:
            last = a.program[-1]
            if isinstance(last, _Stage) and last.kind == "linear" and last.arrays[1] is None:
                w = last.arrays[0]
                bias = np.broadcast_to(b.value, (w.shape[0],))
                if b.value.size not in (1, w.shape[0]) or b.value.ndim > 1:
                    raise self.fail("a bias that is not a vector over the features")
                stage = replace(last, arrays=(w, bias.astype(w.dtype)))
                return replace(a, program=a.program[:-1] + (stage,))
        raise self.fail("addition on the data path (only a bias after a product)")

    # ---- LSTM -----------------------------------------------------------------
    def op_LSTM(self, args: list[Any], attrs: dict[str, Any], node: Any) -> Any:
        args = list(args) + [None] * (8 - len(args))
        x = self.data(args[0], "X")
        W = self.const(args[1], "W")
        R = self.const(args[2], "R")
        if W.dtype not in (np.float32, np.float64):
            raise self.fail(f"weights of dtype {W.dtype} (fastlstm runs float32 and float64)")
        D = W.shape[0]
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction not in ("forward", "reverse", "bidirectional"):
            raise self.fail(f"direction={direction!r}")
        if (direction == "bidirectional") != (D == 2):
            raise self.fail(f"direction={direction!r} with W of {D} directions")
        H = int(attrs["hidden_size"]) if "hidden_size" in attrs else int(R.shape[-1])
        I = W.shape[2]
        layout = int(attrs.get("layout", 0))
        # X: (T, B, I) with layout 0, (B, T, I) with layout 1
        if len(x.view) != 3 or _size(x.view[2]) not in (I, None):
            raise self.fail(f"X must be (time, batch, {I}) or (batch, time, {I}) (layout 1)")
        t_ax, b_ax = (1, 0) if layout else (0, 1)
        t_atom, b_atom = x.view[t_ax], x.view[b_ax]
        if len(t_atom) != 1 or len(b_atom) != 1 or t_atom[0][1] is not None:
            raise self.fail("X's time and batch axes are not the data's")
        self.time_labels.add(t_atom[0][0])
        for label, atom in (("T", t_atom), ("B", b_atom)):  # the output's axes' declared sizes
            if atom[0][0] in self.declared:
                self.declared[label] = self.declared[atom[0][0]]
        # the module reads the native layout: the same atoms, time and batch in either order
        if x.native[2] != x.view[2]:
            raise self.fail("X's features laid out differently from the module's output")
        if x.native[:2] == (t_atom, b_atom):
            batch_first = False
        elif x.native[:2] == (b_atom, t_atom):
            batch_first = True
        else:
            raise self.fail("X is not a (time, batch) or (batch, time) view of the data")
        Bv = self.const(args[3], "B") if args[3] is not None else np.zeros((D, 8 * H), W.dtype)
        P = self.const(args[7], "P") if args[7] is not None else None
        options = self.lstm_options(attrs, D, P)
        # a reverse-only node is the reverse half of a bidirectional fastlstm
        # layer whose forward half has zero weights (with the default
        # activations its output is exactly 0: i = f = o = 1/2, g = 0, so c
        # and h stay 0); the session drops that half, and a layer above has
        # zero weights for it
        reverse_only = direction == "reverse"
        if reverse_only:  # the same activations for the (unused) forward half
            for key in ("activations", "activation_alpha", "activation_beta"):
                if key in options:
                    options[key] = list(options[key]) * 2
        params: dict[str, np.ndarray] = {}
        for d in range(D):
            sfx = "_reverse" if (d or reverse_only) else ""
            params["weight_ih" + sfx] = torch_gate_order(W[d])
            params["weight_hh" + sfx] = torch_gate_order(R[d])
            params["bias_ih" + sfx] = torch_gate_order(Bv[d, : 4 * H])
            params["bias_hh" + sfx] = torch_gate_order(Bv[d, 4 * H :])
            if P is not None:  # ONNX's i, o, f -> fastlstm's i, f, o
                pi, po, pf = np.split(P[d], 3)
                params["weight_peephole" + sfx] = np.concatenate([pi, pf, po])
        params = {k: v.astype(W.dtype) for k, v in params.items()}
        seq = args[4]
        lens = None
        if seq is not None:
            lv = self.lens(seq)
            if lv.offset or lv.axes != ("B",):
                raise self.fail("sequence_lens other than the lengths input")
            lens = lv.name
        states: list[_State | None] = []
        for s, what in ((args[5], "initial_h"), (args[6], "initial_c")):
            if s is None or (isinstance(s, _Fill) and s.value == 0):
                states.append(None)
            elif isinstance(s, _Const) and not np.any(s.value):
                states.append(None)
            elif isinstance(s, _Input):
                states.append(_State(s.name, 0, None))
                self.values[s.name] = states[-1]
            elif isinstance(s, _State):
                states.append(s)
            else:
                raise self.fail(f"{what} that is neither zero nor a graph input")
            if layout and states[-1] is not None:
                raise self.fail(f"{what} given with layout=1 (read: with layout 0)")
        spec = _LayerSpec(
            node.name,
            params,
            I,
            H,
            D,
            args[3] is not None,
            options,
            states[0],
            states[1],
            lens,
            reverse_only,
        )
        joins = self.extends(x, spec)
        stack = (
            _Stack(x.program[-1].layers + (spec,), x.program[-1].batch_first)
            if joins
            else (_Stack((spec,), batch_first))
        )
        prog = (x.program[:-1] if joins else x.program) + (stack,)
        k = len(stack.layers) - 1
        native = self.stack_native(stack)
        T_, B_ = native[int(stack.batch_first)], native[1 - int(stack.batch_first)]
        Dax: Axis = (("D", D),) if D != 1 else ()
        Hax: Axis = (("H", H),) if H != 1 else ()
        y_view = (B_, T_, Dax, Hax) if layout else (T_, Dax, B_, Hax)
        y = _Data(prog, ("y",), native, tuple(y_view))
        hn = self.state_native(stack, k, k + 1)
        h_view = (hn[1], hn[0], hn[2]) if layout else hn
        return [
            y,
            _Data(prog, ("h", k, k + 1), hn, h_view),
            _Data(prog, ("c", k, k + 1), hn, h_view),
        ]

    def extends(self, x: _Data, spec: _LayerSpec) -> bool:
        """x is the whole output of an LSTM stack this layer can join."""
        if not x.program or x.tap != ("y",) or not isinstance(x.program[-1], _Stack):
            return False
        top = x.program[-1].layers[-1]
        return (
            top.directions == spec.directions
            and top.reverse_only == spec.reverse_only
            and top.hidden_size == spec.hidden_size
            and top.options == spec.options
            and top.lengths == spec.lengths
            and spec.input_size == top.directions * top.hidden_size
        )

    def stack_native(self, stack: _Stack) -> Layout:
        D, H = stack.D, stack.H
        T_: Axis = (("T", None),)
        B_: Axis = (("B", None),)
        feat: Axis = tuple(a for a in (("D", D), ("H", H)) if a[1] != 1)
        return (B_, T_, feat) if stack.batch_first else (T_, B_, feat)

    def state_native(self, stack: _Stack, k0: int, k1: int) -> Layout:
        rows: Axis = tuple(a for a in (("L", k1 - k0), ("D", stack.D)) if a[1] != 1)
        Hax: Axis = (("H", stack.H),) if stack.H != 1 else ()
        return (rows, (("B", None),), Hax)

    def lstm_options(self, attrs: dict[str, Any], D: int, P: np.ndarray | None) -> dict[str, Any]:
        """The ONNX-only cell attributes as fastlstm.LSTM keyword arguments.

        ``activation_alpha`` / ``activation_beta`` are read as ONNX Runtime
        reads them (what the graph computes there): consumed in order by the
        activations that take that parameter, values past those ignored, and
        omitted ones ONNX Runtime's defaults (``_ORT_DEFAULTS``).  The layer
        gets every value explicitly."""
        opts: dict[str, Any] = {}
        if P is not None and np.any(P):
            opts["peepholes"] = True
        if "clip" in attrs:
            clip = _decimal(attrs["clip"])
            if not clip > 0:
                raise self.fail(f"clip={clip}: the clip must be > 0")
            opts["clip"] = clip
        if attrs.get("input_forget", 0):
            opts["input_forget"] = True
        acts = attrs.get("activations")
        if acts is None:  # Sigmoid, Tanh, Tanh: no alpha or beta is read
            return opts
        acts = [a.decode() if isinstance(a, bytes) else a for a in acts]
        if len(acts) != 3 * D:
            raise self.fail(
                f"activations: expected {3 * D} names (f, g, h per direction), got {len(acts)}"
            )
        by_lower = {k.lower(): k for k in ACTIVATIONS}
        names = []
        for a in acts:
            if a.lower() not in by_lower:
                raise self.fail(
                    f"activations: {a!r} is not one of the LSTM activations fastlstm runs "
                    f"({', '.join(ACTIVATIONS)})"
                )
            names.append(by_lower[a.lower()])
        if [n.lower() for n in names] == _DEFAULT_ACTIVATIONS * D:
            return opts
        opts["activations"] = names
        for key, slot in (("activation_alpha", 0), ("activation_beta", 1)):
            given = [_decimal(v) for v in attrs.get(key, [])]
            takers = [n for n in names if ACTIVATIONS[n][slot] is not None]
            given = given[: len(takers)]
            values = given + [_ORT_DEFAULTS[n][slot] for n in takers[len(given) :]]
            if values:
                opts[key] = values
        return opts

    # ---- the result -------------------------------------------------------------
    def assemble(self, outs: dict[str, _Data]) -> _Result:
        if self.data_input is None:
            raise self.fail("no output depends on a data input")
        progs = [d.program for d in outs.values()]
        final = max(
            progs,
            key=lambda p: (len(p), len(p[-1].layers) if p and isinstance(p[-1], _Stack) else 0),
        )
        for name, d in outs.items():
            if not self.prefix_of(d.program, final):
                raise self.fail(
                    f"output {name!r} is on another branch of the graph than the others"
                )
        modules = [self.build(st) for st in final]
        stack_only = len(final) == 1 and isinstance(final[0], _Stack)
        for name, d in outs.items():
            if d.tap[0] in ("h", "c") and not stack_only:
                raise self.fail(f"output {name!r}: the final state of an LSTM inside a model")
            if d.tap == ("y",) and len(d.program[-1].layers) != len(final[-1].layers):
                raise self.fail(f"output {name!r}: the output of an inner LSTM layer")
            if len(d.program) != len(final) and not stack_only:
                raise self.fail(f"output {name!r}: an intermediate result of the model")
        data_native = self.values_native()
        states: list[tuple[Any, Any]] = []
        if stack_only:
            states = [(sp.h0, sp.c0) for sp in final[0].layers]
            module: Any = modules[0]
            stack = final[0]
            hidden, D, reverse_only = stack.H, stack.D, stack.layers[0].reverse_only
        else:
            for st in final:
                if isinstance(st, _Stack) and any(sp.h0 or sp.c0 for sp in st.layers):
                    raise self.fail("initial states of an LSTM inside a model (only of an LSTM)")
            if any(isinstance(st, _Stack) and st.layers[0].reverse_only for st in final):
                raise self.fail("a reverse-only LSTM inside a model (read: on its own)")
            module = Sequential(*modules)
            hidden, D, reverse_only = 0, 1, False
        return _Result(
            module,
            stack_only,
            self.data_input,
            self.lengths_input,
            states,
            outs,
            data_native,
            hidden,
            D,
            reverse_only,
        )

    def values_native(self) -> Layout:
        v = self.values[self.data_input]  # type: ignore[index]
        return v.native if isinstance(v, _Data) else ()

    @staticmethod
    def prefix_of(p: tuple[Any, ...], final: tuple[Any, ...]) -> bool:
        if len(p) > len(final):
            return False
        for a, b in zip(p, final):
            if a is b:
                continue
            if isinstance(a, _Stack) and isinstance(b, _Stack) and a is p[-1]:
                if b.layers[: len(a.layers)] == a.layers and a.batch_first == b.batch_first:
                    continue
            return False
        return True

    def build(self, st: Any) -> Any:
        if isinstance(st, _Stack):
            return self.build_stack(st)
        if st.kind == "linear":
            w, b = st.arrays
            lin = Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=w.dtype)
            lin.load_state_dict({"weight": w} if b is None else {"weight": w, "bias": b})
            return lin
        if st.kind == "embedding":
            (w,) = st.arrays
            if w.dtype not in (np.float32, np.float64):
                raise self.fail(f"an embedding table of dtype {w.dtype}")
            emb = Embedding(w.shape[0], w.shape[1], dtype=w.dtype)
            emb.load_state_dict({"weight": w})
            return emb
        if st.kind == "laststep":
            return LastStep(batch_first=st.batch_first, bidirectional=st.bidirectional)
        if st.kind == "meanpool":
            return MeanPool(batch_first=st.batch_first)
        return MaxPool(batch_first=st.batch_first)

    def build_stack(self, st: _Stack) -> LSTM:
        first = st.layers[0]
        dtype = first.params["weight_ih" + ("_reverse" if first.reverse_only else "")].dtype
        bias = any(sp.has_bias for sp in st.layers)
        lstm = LSTM(
            first.input_size,
            first.hidden_size,
            num_layers=len(st.layers),
            bias=bias,
            batch_first=st.batch_first,
            bidirectional=first.directions == 2 or first.reverse_only,
            dtype=dtype,
            **first.options,
        )
        state = {k: np.zeros_like(v) for k, v in lstm.state_dict().items()}
        H = first.hidden_size
        for k, sp in enumerate(st.layers):
            for name, a in sp.params.items():
                base, rev = (name[:-8], "_reverse") if name.endswith("_reverse") else (name, "")
                key = f"{base}_l{k}{rev}"
                if base.startswith("bias") and not bias:
                    continue
                if a.dtype != dtype:
                    raise self.fail(
                        f"node {sp.node!r}: weights of another dtype than the first layer's"
                    )
                if sp.reverse_only and k and base == "weight_ih":
                    # the layer below's zero forward half comes first in its output
                    state[key][:, H:] = a
                else:
                    state[key] = a
        lstm.load_state_dict(state)
        return lstm


# ---- entry points -------------------------------------------------------------


def _model_proto(onnx: Any, path_or_model: Any) -> Any:
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    if isinstance(path_or_model, (bytes, bytearray)):
        return onnx.load_model_from_string(bytes(path_or_model))
    if isinstance(path_or_model, (str, os.PathLike)) or hasattr(path_or_model, "read"):
        return onnx.load_model(path_or_model)
    raise TypeError(
        "path_or_model: expected a path, a file object, bytes or an onnx.ModelProto, got "
        f"{type(path_or_model).__name__}"
    )


def _read(path_or_model: Any, constants: Mapping[str, ArrayLike] | None) -> _Result:
    import onnx  # optional dependency: imported when called

    model = _model_proto(onnx, path_or_model)
    reader = _Reader(onnx, model, dict(constants or {}))
    return reader.run()


def load(
    path_or_model: str | os.PathLike[str] | bytes | _onnx.ModelProto,
    *,
    constants: Mapping[str, ArrayLike] | None = None,
) -> LSTM | Sequential:
    """Read an ONNX graph into fastlstm modules that compute the same function.

    Parameters
    ----------
    path_or_model : path, bytes or onnx.ModelProto
    constants : mapping of graph input name -> array, optional
        Values for graph inputs that hold weights (ONNX's own test models
        pass W, R, B as inputs): they are read as initializers.

    Returns
    -------
    fastlstm.LSTM
        When the graph is LSTM nodes (stacked: one multi-layer LSTM) with the
        layout operators around them; its output is the graph's Y (and Y_h,
        Y_c) laid out as fastlstm returns them.
    fastlstm.Sequential
        When there are other layers (Embedding from Gather, Linear from
        MatMul+Add or Gemm, the reducers from their masks, Dropout/Identity
        dropped).

    A graph input that is ``sequence_lens`` is the ``lengths`` argument (a
    length of 0 gives zero outputs and zero final states for that sequence,
    as ONNX Runtime does).
    :class:`InferenceSession` runs the graph with the returned module and
    gives the outputs in the graph's own names and layouts.  Anything
    outside what is read is a ValueError naming the node and its operator.
    """
    return _read(path_or_model, constants).module


class InferenceSession:
    """An ONNX graph run by fastlstm, called like ``onnxruntime.InferenceSession``.

    ``session.run(output_names, feeds)``: ``feeds`` maps graph input names to
    arrays (the data input, and the lengths and initial states where the
    graph has them); returns the outputs named (all when None), laid out as
    the graph declares them.  ``session.module`` is the fastlstm module
    (:func:`load`'s result).
    """

    def __init__(
        self,
        path_or_model: str | os.PathLike[str] | bytes | _onnx.ModelProto,
        *,
        constants: Mapping[str, ArrayLike] | None = None,
    ) -> None:
        self._r = _read(path_or_model, constants)
        self.module: LSTM | Sequential = self._r.module

    @property
    def output_names(self) -> list[str]:
        return list(self._r.outputs)

    @property
    def input_names(self) -> list[str]:
        r = self._r
        names = [r.data_input]
        if r.lengths_input:
            names.append(r.lengths_input)
        for pair in r.state_layers:
            for s in pair:
                if s is not None and s.name not in names:
                    names.append(s.name)
        return names

    def run(
        self, output_names: Sequence[str] | None, feeds: Mapping[str, ArrayLike]
    ) -> list[np.ndarray]:
        r = self._r
        if not isinstance(feeds, Mapping):
            raise TypeError(
                f"feeds: expected a mapping of input names to arrays, got {type(feeds).__name__}"
            )
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(
                f"feeds: missing inputs {missing} (the graph reads {self.input_names})"
            )
        x = np.asarray(feeds[r.data_input])
        lengths = None if r.lengths_input is None else np.asarray(feeds[r.lengths_input])
        names = list(r.outputs) if output_names is None else list(output_names)
        for n in names:
            if n not in r.outputs:
                raise ValueError(
                    f"output_names: {n!r} is not an output (outputs: {list(r.outputs)})"
                )
        if r.stack_only:
            lstm = r.module
            hx = self._initial_states(feeds, x)
            y, (h, c) = lstm(x, hx, lengths=lengths)
            if r.reverse_only:  # the reverse halves (the forward ones have zero weights)
                y, h, c = y[..., r.hidden :], h[1::2], c[1::2]
            got = {"y": y, "h": h, "c": c}
        else:
            got = {"seq": r.module(x, lengths=lengths)}
        out = []
        for n in names:
            d = r.outputs[n]
            a = got[d.tap[0]]
            if d.tap[0] in ("h", "c"):
                D = r.directions
                a = a[d.tap[1] * D : d.tap[2] * D]
            out.append(_relayout(a, d.native, d.view))
        return out

    def _initial_states(self, feeds: Mapping[str, ArrayLike], x: np.ndarray) -> Any:
        r = self._r
        if all(h is None and c is None for h, c in r.state_layers):
            return None
        lstm = r.module
        D, H = r.directions, lstm.hidden_size
        B = x.shape[0] if lstm.batch_first else x.shape[1]
        zeros = np.zeros((D, B, H), lstm.dtype)
        parts: list[list[np.ndarray]] = [[], []]
        for pair in r.state_layers:
            for j, s in enumerate(pair):
                a = zeros if s is None else np.asarray(feeds[s.name])
                rows = a if s is None else a[s.r0 : s.r1 if s.r1 is not None else s.r0 + D]
                if r.reverse_only:  # the zero forward half's state first
                    rows = np.concatenate([np.zeros_like(rows), rows])
                parts[j].append(rows)
        return np.concatenate(parts[0]), np.concatenate(parts[1])


def _relayout(a: np.ndarray, native: Layout, view: Layout) -> np.ndarray:
    """The module's array (laid out as ``native``) as the graph's (``view``):
    split the axes into atoms, permute them, group them again."""
    sizes: dict[Atom, int] = {}
    for ax, n in zip(native, a.shape):
        if len(ax) == 1:
            sizes[ax[0]] = n
        else:
            for atom in ax:
                sizes[atom] = atom[1] or 0
    src = _atoms(native)
    dst = _atoms(view)
    if sorted(map(str, src)) != sorted(map(str, dst)):
        raise ValueError("internal: an output's layout is not a rearrangement of the module's")
    split = a.reshape([sizes[t] for t in src]) if src else a.reshape(())
    perm = [src.index(t) for t in dst]
    moved = split.transpose(perm) if perm else split
    return np.ascontiguousarray(
        moved.reshape([int(np.prod([sizes[t] for t in ax])) if ax else 1 for ax in view])
    )
