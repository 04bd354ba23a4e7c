"""The layer API: fastlstm.LSTM, with PyTorch's arguments, parameter names,
shapes and numerics, forward for inference and for training, and backward.

Notation and exact semantics: fastlstm/reference.py.  The compiled kernel
(fastlstm._native.kernels, csrc/) runs one layer and one direction per call; this
module validates user input, lays the batch out for the kernel
(fastlstm._native.sequence), stacks layers and directions, and keeps gradients.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .._checks import (
    check_array,
    check_bool,
    check_int,
    check_lengths,
    check_pair,
    check_probability,
    check_state,
    checked_setting,
)
from .._native import kernels
from .._native.buffers import BufferPool
from .._native.params import ParameterModule, fixed_at_construction
from .._native.sequence import SequencePlan
from .._typing import Array, Backward, ReadOnly, Seed, Setting, State, StateIn
from ..reference import CellOptions, parameter_shapes, resolve_activations

if TYPE_CHECKING:
    from .stream import LSTMStream

__all__ = ["LSTM"]

_BACKWARD_TWICE = (
    "backward: this forward_train's backward was already called (its buffers are "
    "consumed); run forward_train again"
)


class LSTM(ParameterModule):
    """Multi-layer LSTM over a sequence, as ``torch.nn.LSTM``.

    Parameters
    ----------
    input_size, hidden_size : int
        Features of the input and of the hidden/cell state (H).
    num_layers : int, default 1
    bias : bool, default True
        With False, ``bias_ih_l*`` and ``bias_hh_l*`` do not exist.
    batch_first : bool, default False
        Input and output are (B, T, F) instead of (T, B, F); h/c are not
        affected (as in PyTorch).
    dropout : float, default 0.0
        Dropout on the output of every layer but the last, in
        :meth:`forward_train` only.  Masks come from the layer's generator
        (``seed``), so runs are reproducible.
    bidirectional : bool, default False
    proj_size : int, default 0
        LSTM with projection: h_t = W_hr (o * tanh(c_t)), 0 < proj_size < H.
    dtype : numpy.float32 or numpy.float64
    seed : int, numpy.random.Generator or None
        Initialisation and dropout: U(-1/sqrt(H), 1/sqrt(H)) for every
        parameter, as PyTorch.
    peepholes, clip, input_forget, activations, activation_alpha, activation_beta
        The cell options of the ONNX ``LSTM`` operator (fastlstm/reference.py
        states the arithmetic), the same for every layer, forward and
        backward; not with ``proj_size``:

        - ``peepholes=True``: parameters ``weight_peephole_l{k}`` (and
          ``..._reverse``), shape (3H,), blocks p_i, p_f, p_o (ONNX's P is
          i, o, f), initialised like the others; i and f add p * c_{t-1}, o
          adds p * c_t to their pre-activations.
        - ``clip``: a number > 0, or None; the gate pre-activations (after
          bias and peepholes) are clamped to [-clip, clip] (as ONNX Runtime
          does), with zero gradient where clamped.
        - ``input_forget=True``: f = 1 - i (f's weights, bias and peephole
          are then unused).
        - ``activations``: None (Sigmoid, Tanh, Tanh) or ONNX's list of 3
          names per direction (f for the gates, g for the candidate, h for
          the output; 6 for bidirectional, forward first), any case:
          Sigmoid, Tanh, Relu, HardSigmoid, Affine, LeakyRelu,
          ThresholdedRelu, ScaledTanh, Elu, Softsign, Softplus.
          ``activation_alpha`` / ``activation_beta``: ONNX's lists, consumed
          in order by the activations that take an alpha / a beta (as ONNX
          Runtime reads them); ONNX's defaults where they run out
          (fastlstm.reference.ACTIVATIONS).

        Layers with any of them run a slower (generic) cell of the kernel;
        the default LSTM keeps its own.  Bad values are a ValueError naming
        the argument.

    Inputs must have the layer's dtype (a TypeError says so otherwise: no
    silent conversion).  Non-contiguous and read-only arrays are accepted
    (copied once where needed).  A batch of 0 sequences gives empty outputs,
    as in PyTorch.

    The arguments that set the parameters' shapes (sizes, ``num_layers``,
    ``bias``, ``bidirectional``, ``proj_size``, ``dtype``) are read-only
    attributes; ``batch_first`` and ``dropout`` may be changed and are
    checked when set.  Layers pickle and ``copy.deepcopy`` (configuration,
    parameters, gradients and generator).

    Attributes
    ----------
    grads : dict
        Gradients, same keys and shapes as :meth:`state_dict`, accumulated by
        the ``backward`` functions that :meth:`forward_train` returns.
    """

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
        dtype: DTypeLike = np.float32,
        seed: Seed = None,
        peepholes: bool = False,
        clip: float | None = None,
        input_forget: bool = False,
        activations: Sequence[str] | None = None,
        activation_alpha: Sequence[float] | None = None,
        activation_beta: Sequence[float] | None = None,
    ) -> None:
        input_size = check_int("input_size", input_size, 1)
        hidden_size = check_int("hidden_size", hidden_size, 1)
        num_layers = check_int("num_layers", num_layers, 1)
        proj_size = check_int("proj_size", proj_size, 0)
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size ({proj_size}) must be smaller than hidden_size ({hidden_size})"
            )
        self._input_size, self._hidden_size = input_size, hidden_size
        self._num_layers, self._proj_size = num_layers, proj_size
        self._bias_terms = check_bool("bias", bias)
        self._bidirectional = check_bool("bidirectional", bidirectional)
        self._set_cell_options(
            peepholes, clip, input_forget, activations, activation_alpha, activation_beta
        )
        self.batch_first, self.dropout = batch_first, dropout
        super().__init__(dtype, seed)

    def _set_cell_options(self, peepholes, clip, input_forget, acts, alpha, beta):
        """Checks and keeps the ONNX cell options; _cell_opts: per direction,
        the kernel's options (clip, input_forget, activations), or None for
        the plain LSTM."""
        flags = []
        for name, v in (("peepholes", peepholes), ("input_forget", input_forget)):
            if isinstance(v, (bool, np.bool_)) or (
                isinstance(v, (int, np.integer)) and int(v) in (0, 1)
            ):
                flags.append(bool(v))
            else:
                raise ValueError(f"{name}: expected True or False, got {v!r}")
        if clip is not None:
            if isinstance(clip, (bool, np.bool_)) or not isinstance(
                clip, (int, float, np.integer, np.floating)
            ):
                raise ValueError(f"clip: expected a number > 0 or None, got {clip!r}")
            if not float(clip) > 0:
                raise ValueError(f"clip: expected a number > 0 or None, got {clip!r}")
            clip = float(clip)
        D = 2 if self._bidirectional else 1
        per_dir = resolve_activations(acts, alpha, beta, D)
        self._peepholes, self._input_forget = flags
        self._clip = clip
        self._activations = None if acts is None else tuple(a[0] for d in per_dir for a in d)
        self._activation_alpha = None if alpha is None else tuple(float(v) for v in alpha)
        self._activation_beta = None if beta is None else tuple(float(v) for v in beta)
        plain = (
            not self._peepholes
            and clip is None
            and not self._input_forget
            and all(d == CellOptions().activations for d in per_dir)
        )
        if not plain and self._proj_size:
            raise ValueError(
                "proj_size: the ONNX cell options (peepholes, clip, input_forget, "
                "activations) do not combine with a projection"
            )
        self._cell_opts = [None] * D if plain else [(clip, self._input_forget, d) for d in per_dir]

    def _transient_state(self):
        super()._transient_state()
        self._train_buffers = BufferPool()  # gates and cells of finished backwards

    _TRANSIENT = ParameterModule._TRANSIENT + ("_train_buffers",)

    # ---- configuration ----------------------------------------------------
    # fixed at construction (they set the parameters' shapes): read-only
    input_size: ReadOnly[int] = fixed_at_construction("input_size", "Features of the input.")
    hidden_size: ReadOnly[int] = fixed_at_construction(
        "hidden_size", "Features of the cell state (H)."
    )
    num_layers: ReadOnly[int] = fixed_at_construction("num_layers", "Stacked layers.")
    proj_size: ReadOnly[int] = fixed_at_construction(
        "proj_size", "Size of h with projection, else 0."
    )
    bidirectional: ReadOnly[bool] = fixed_at_construction("bidirectional", "Both directions.")
    bias: ReadOnly[bool] = fixed_at_construction(
        "bias", "Whether the bias_* parameters exist.", "_bias_terms"
    )
    peepholes: ReadOnly[bool] = fixed_at_construction(
        "peepholes", "Whether the weight_peephole_* parameters exist (ONNX's P)."
    )
    clip: ReadOnly[float | None] = fixed_at_construction(
        "clip", "Clamp of the gate pre-activations to [-clip, clip], or None."
    )
    input_forget: ReadOnly[bool] = fixed_at_construction(
        "input_forget", "Coupled input and forget gates: f = 1 - i."
    )
    activations: ReadOnly[tuple[str, ...] | None] = fixed_at_construction(
        "activations", "ONNX's activation names (f, g, h per direction), or None."
    )
    activation_alpha: ReadOnly[tuple[float, ...] | None] = fixed_at_construction(
        "activation_alpha", "ONNX's activation_alpha as given, or None."
    )
    activation_beta: ReadOnly[tuple[float, ...] | None] = fixed_at_construction(
        "activation_beta", "ONNX's activation_beta as given, or None."
    )
    # checked when set
    batch_first: Setting[bool] = checked_setting(
        "batch_first", check_bool, "Input and output laid out (B, T, F) instead of (T, B, F)."
    )
    dropout: Setting[float] = checked_setting(
        "dropout", check_probability, "Dropout rate between layers in forward_train, in [0, 1)."
    )

    # ---- parameters -------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _h_out(self):
        return self.proj_size or self.hidden_size

    def _parameter_shapes(self):
        return parameter_shapes(
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bias,
            self.bidirectional,
            self.proj_size,
            self.peepholes,
        )

    def _init_scale(self):
        return 1.0 / np.sqrt(self.hidden_size)

    def __repr__(self):
        extra = "".join(
            f", {k}={getattr(self, k)!r}"
            for k, dflt in (
                ("num_layers", 1),
                ("bias", True),
                ("batch_first", False),
                ("dropout", 0.0),
                ("bidirectional", False),
                ("proj_size", 0),
                ("peepholes", False),
                ("clip", None),
                ("input_forget", False),
                ("activations", None),
                ("activation_alpha", None),
                ("activation_beta", None),
            )
            if getattr(self, k) != dflt
        )
        return (
            f"LSTM({self.input_size}, {self.hidden_size}{extra}, dtype={np.dtype(self.dtype).name})"
        )

    # ---- input checking ---------------------------------------------------
    def _time_major(self, x, batch_first):
        """-> (x as (T, B, I) time-major, unbatched flag)."""
        x = check_array("x", x, self.dtype)
        I = self.input_size
        if x.ndim == 2:
            if x.shape[1] != I:
                raise ValueError(f"x: unbatched input must be (T, input_size={I}), got {x.shape}")
            if x.shape[0] == 0:
                raise ValueError(f"x: sequence length must be >= 1, got shape {x.shape}")
            return x[:, None, :], True
        if x.ndim != 3:
            layout = "(B, T, input_size)" if batch_first else "(T, B, input_size)"
            raise ValueError(
                f"x: expected a 3-D array {layout} or an unbatched 2-D "
                f"(T, input_size), got shape {x.shape}"
            )
        if batch_first:
            x = x.transpose(1, 0, 2)
        if x.shape[2] != I:
            raise ValueError(f"x: last dimension must be input_size={I}, got shape {x.shape}")
        if x.shape[0] == 0:  # a batch of 0 sequences is fine (empty outputs), as in PyTorch
            raise ValueError(f"x: sequence length must be >= 1, got shape {x.shape}")
        return x, False

    def _initial_state(self, hx, B, unbatched, plan):
        """hx -> (h0, c0) as sorted, contiguous (L*D, B, .) arrays, or (None, None)."""
        hx = check_pair("hx", hx, "h0", "c0")
        if hx is None:
            return None, None
        LD = self.num_layers * self.num_directions
        batch = "" if unbatched else "batch, "
        out = []
        for name, s, width, unit in (
            ("h0", hx[0], self._h_out, "proj_size or hidden_size"),
            ("c0", hx[1], self.hidden_size, "hidden_size"),
        ):
            want = (LD, width) if unbatched else (LD, B, width)
            s = check_state(name, s, self.dtype, want, f"num_layers*num_directions, {batch}{unit}")
            if unbatched:
                s = s[:, None, :]
            out.append(plan.to_sorted(s))
        return out[0], out[1]

    # ---- forward ----------------------------------------------------------
    # output, (h_n, c_n); with return_cells=True also every step's cell state
    @overload
    def __call__(
        self,
        x: ArrayLike,
        hx: StateIn | None = None,
        lengths: ArrayLike | None = None,
        return_cells: Literal[False] = False,
    ) -> tuple[Array, State]: ...
    @overload
    def __call__(
        self,
        x: ArrayLike,
        hx: StateIn | None = None,
        lengths: ArrayLike | None = None,
        *,
        return_cells: Literal[True],
    ) -> tuple[Array, State, Array]: ...
    @overload
    def __call__(
        self,
        x: ArrayLike,
        hx: StateIn | None = None,
        lengths: ArrayLike | None = None,
        return_cells: bool = False,
    ) -> tuple[Array, State] | tuple[Array, State, Array]: ...
    def __call__(
        self,
        x: ArrayLike,
        hx: StateIn | None = None,
        lengths: ArrayLike | None = None,
        return_cells: bool = False,
    ) -> tuple[Array, State] | tuple[Array, State, Array]:
        """Inference.

        Parameters
        ----------
        x : ndarray, (T, B, input_size), (B, T, input_size) with batch_first,
            or unbatched (T, input_size)
        hx : tuple (h0, c0) or None
            h0 (num_layers*D, B, H_out), c0 (num_layers*D, B, H); zeros when None.
        lengths : int array (B,) or None
            Valid steps of each sequence (0 <= length <= T), any order: the
            output is 0 past each length, h_n/c_n are the states at each
            sequence's last valid step (PyTorch packed-sequence semantics).
            A sequence of length 0 has zero output and zero h_n and c_n
            (ONNX Runtime's semantics for sequence_lens; PyTorch refuses
            length 0).
        return_cells : bool
            Also return the cell state of every step of the last layer,
            shaped like the output with H per direction.

        Returns
        -------
        output, (h_n, c_n)  [, cells]
        """
        out, state, cells, _ = self._forward(x, hx, lengths, train=False, return_cells=return_cells)
        return (out, state, cells) if return_cells else (out, state)

    forward = __call__

    def forward_train(
        self, x: ArrayLike, hx: StateIn | None = None, lengths: ArrayLike | None = None
    ) -> tuple[Array, State, Backward]:
        """Forward that keeps what backward needs.

        Returns ``(output, (h_n, c_n), backward)``; ``backward(d_output,
        d_state=None)`` returns ``(dx, (dh0, dc0))`` and adds every parameter
        gradient into :attr:`grads`.  ``d_state`` is ``(dh_n, dc_n)``, either
        may be None.  Each ``backward`` can be called once.  Its saved
        activations (gates and cell states, rows x 5H values per layer and
        direction) then stay with the layer for the next ``forward_train`` of
        the same shape, which reuses them instead of allocating fresh
        (zeroed-by-the-OS) memory.

        Backward also reads ``x``, ``hx``, the output and the layer's weights
        as they were: modified in place before ``backward``, they make it
        raise a RuntimeError (as PyTorch does for its saved tensors) rather
        than give wrong gradients.  So step the optimizer after ``backward``;
        weights replaced by assignment are fine (backward keeps the forward's
        arrays).
        """
        out, state, _, backward = self._forward(x, hx, lengths, train=True)
        return out, state, backward

    def _forward(self, x, hx, lengths, train, return_cells=False, layout=None):
        # once: the call must not see it change midway (layout: the caller's reading)
        batch_first = self.batch_first if layout is None else layout
        x, unbatched = self._time_major(x, batch_first)
        T, B = x.shape[0], x.shape[1]
        if unbatched and lengths is not None:
            raise ValueError("lengths: not supported with unbatched (2-D) input")
        if B == 0:
            return self._empty_batch(T, hx, lengths, train, return_cells, batch_first)
        if lengths is not None:
            lengths = check_lengths(lengths, B)
            if (lengths == 0).any() and (lengths >= 0).all():
                return self._forward_with_empty(x, hx, lengths, train, return_cells, batch_first)
        plan = SequencePlan(T, B, lengths)
        h0, c0 = self._initial_state(hx, B, unbatched, plan)
        H, P, Ho, D = self.hidden_size, self.proj_size, self._h_out, self.num_directions
        LD, rows, dt = self.num_layers * D, plan.rows, self.dtype
        h_n = np.empty((LD, B, Ho), dt)
        c_n = np.empty((LD, B, H), dt)
        # a ragged or batch-first batch: the first layer reads x where it is
        # (when C-contiguous) and the last one writes the output in the
        # caller's layout, through row maps (no pack/unpack or transposing
        # copies); layers in between work on packed rows
        x_map = y_map = None
        if not unbatched and (plan.packed or batch_first):
            y_map = plan.padded_rows(batch_first)
            x_user = x.transpose(1, 0, 2) if batch_first else x  # as given
            if x_user.flags.c_contiguous:
                x_map, inp = y_map, x_user.reshape(T * B, x.shape[2])
        if x_map is None:
            inp = plan.pack(x)
        # per layer: (input, its row map, output, its row map, [per direction:
        # gates, cells], dropout mask); backward reads the rows [x_t | h_{t-1}]
        # of its weight gradients from the input, the output and h0, so they
        # are not stored a second time
        saved = []
        # per layer/direction suffix: the weights this call ran with, the live
        # arrays (w_ih, w_hh, w_hr or None, peephole or None)
        used = {}
        cells_out = None
        pool = self._train_buffers
        for layer in range(self.num_layers):
            last = layer == self.num_layers - 1
            if y_map is None or not last:
                y = np.empty((rows, D * Ho), dt)
            else:  # the caller's layout; a ragged batch's padding stays 0
                y = (np.zeros if plan.packed else np.empty)((T * B, D * Ho), dt)
            want_cells = train or (return_cells and last)
            if return_cells and last:
                cells_out = np.empty((rows, D * H), dt)
            per_dir = []
            for d in range(D):
                k = layer * D + d
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                gates = pool.empty((rows, 4 * H), dt) if train else None
                cells = (
                    pool.empty((rows, H), dt)
                    if train
                    else np.empty((rows, H), dt)
                    if want_cells
                    else None
                )
                weights, packed = self._packed_once(sfx) if train else self._packed(sfx)
                peephole = self._params.get("weight_peephole" + sfx)
                kernels.forward(
                    inp,
                    weights[0],
                    self._bias(sfx),
                    packed,
                    None if h0 is None else h0[k],
                    None if c0 is None else c0[k],
                    y,
                    d * Ho,
                    h_n[k],
                    c_n[k],
                    gates,
                    cells,
                    None,
                    plan.batch_sizes,
                    plan.steps,
                    d == 1,
                    P,
                    x_map if layer == 0 else None,
                    y_map if last else None,
                    opts=self._cell_opts[d],
                    peephole=peephole,
                )
                if cells_out is not None:
                    cells_out[:, d * H : (d + 1) * H] = cells
                if train:  # backward packs its own products from the weights
                    used[sfx] = (*weights, peephole)
                packed = None
                per_dir.append((gates, cells))
            mask = None
            nxt = y
            if train and self.dropout > 0 and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                mask = (self._rng.random(y.shape) < keep).astype(dt) / dt.type(keep)
                nxt = y * mask  # y itself stays: backward reads h_{t-1} from it
            if train:
                saved.append(
                    (
                        inp,
                        x_map if layer == 0 else None,
                        y,
                        y_map if last else None,
                        per_dir,
                        mask,
                    )
                )
            inp = nxt

        if y_map is not None:  # y is already the output, in the caller's layout
            output = inp.reshape((B, T, -1) if batch_first else (T, B, -1))
        else:
            output = self._output_layout(plan.unpack(inp), unbatched, batch_first)
        state = (
            self._state_layout(plan.from_sorted(h_n), unbatched),
            self._state_layout(plan.from_sorted(c_n), unbatched),
        )
        cells_seq = (
            self._output_layout(plan.unpack(cells_out), unbatched, batch_first)
            if cells_out is not None
            else None
        )
        backward = None
        if train:
            # what backward reads that the caller can reach (the input, the
            # output, the initial state, the weights): modified in place
            # before backward, they would give wrong gradients, so backward
            # checks them
            shared = [saved[0][0], saved[-1][2]] + [s for s in (h0, c0) if s is not None]
            shared += [w for ws in used.values() for w in ws if w is not None]
            backward = self._make_backward(
                plan, unbatched, batch_first, x.shape, h0, c0, saved, used, _Unchanged(shared)
            )
        return output, state, cells_seq, backward

    def _forward_with_empty(self, x, hx, lengths, train, return_cells, batch_first):
        """A batch with sequences of length 0 (x time-major): the others run
        as a batch of their own; the empty ones get zero output, zero h_n and
        c_n (ONNX Runtime's semantics), and zero gradients."""
        T, B = x.shape[0], x.shape[1]
        H, Ho, D, dt = self.hidden_size, self._h_out, self.num_directions, self.dtype
        LD = self.num_layers * D
        keep = np.flatnonzero(lengths)
        hx = check_pair("hx", hx, "h0", "c0")
        if hx is not None:
            hx = tuple(
                check_state(n, s, dt, (LD, B, w), f"num_layers*num_directions, batch, {u}")
                for n, s, w, u in (
                    ("h0", hx[0], Ho, "proj_size or hidden_size"),
                    ("c0", hx[1], H, "hidden_size"),
                )
            )
        sub_x = x[:, keep]
        sub_hx = None if hx is None else (hx[0][:, keep], hx[1][:, keep])
        out_s, (h_s, c_s), cells_s, back_s = self._forward(
            sub_x.transpose(1, 0, 2) if batch_first else sub_x,
            sub_hx,
            lengths[keep],
            train,
            return_cells,
            layout=batch_first,
        )

        def widen(sub, width, time_major):
            """sub over the kept sequences -> zeros over all B, sub where kept."""
            if time_major:  # (T, B', w), or (B', T, w) with batch_first
                full = np.zeros(((B, T) if batch_first else (T, B)) + (width,), dt)
                if batch_first:
                    full[keep] = sub
                else:
                    full[:, keep] = sub
            else:  # states (LD, B', w)
                full = np.zeros((LD, B, width), dt)
                full[:, keep] = sub
            return full

        output = widen(out_s, D * Ho, True)
        state = (widen(h_s, Ho, False), widen(c_s, H, False))
        cells = widen(cells_s, D * H, True) if return_cells else None
        if not train:
            return output, state, cells, None
        shared = _Unchanged([x, output] + ([] if hx is None else list(hx)))

        def backward(d_output, d_state=None):
            d_out = check_array("d_output", d_output, dt)
            if d_out.shape != output.shape:
                raise ValueError(
                    f"d_output: expected the output's shape {output.shape}, got {d_out.shape}"
                )
            d_state = check_pair("d_state", d_state, "dh_n", "dc_n")
            sub_state = None
            if d_state is not None:
                sub_state = tuple(
                    None if s is None else check_state(n, s, dt, want.shape)[:, keep]
                    for n, s, want in zip(("dh_n", "dc_n"), d_state, state)
                )
            shared.check()
            dx_s, (dh0_s, dc0_s) = back_s(d_out[keep] if batch_first else d_out[:, keep], sub_state)
            return widen(dx_s, self.input_size, True), (
                widen(dh0_s, Ho, False),
                widen(dc0_s, H, False),
            )

        return output, state, cells, backward

    def _empty_batch(self, T, hx, lengths, train, return_cells, batch_first):
        """A batch of 0 sequences: empty outputs and states, as PyTorch gives
        (the arguments are still checked)."""
        if lengths is not None:
            check_lengths(lengths, 0)
        self._initial_state(hx, 0, False, SequencePlan(T, 0))
        H, Ho, D, dt = self.hidden_size, self._h_out, self.num_directions, self.dtype
        LD = self.num_layers * D
        lead = (0, T) if batch_first else (T, 0)
        output = np.zeros(lead + (D * Ho,), dt)
        state = (np.zeros((LD, 0, Ho), dt), np.zeros((LD, 0, H), dt))
        cells = np.zeros(lead + (D * H,), dt) if return_cells else None
        if not train:
            return output, state, cells, None
        claim = threading.Lock()

        def backward(d_output, d_state=None):
            check_state("d_output", d_output, dt, output.shape)
            d_state = check_pair("d_state", d_state, "dh_n", "dc_n")
            for name, s, want in zip(("dh_n", "dc_n"), d_state or (), state):
                if s is not None:
                    check_state(name, s, dt, want.shape)
            if not claim.acquire(blocking=False):
                raise RuntimeError(_BACKWARD_TWICE)
            return (
                np.zeros(lead + (self.input_size,), dt),
                (np.zeros((LD, 0, Ho), dt), np.zeros((LD, 0, H), dt)),
            )

        return output, state, cells, backward

    @staticmethod
    def _output_layout(out, unbatched, batch_first):
        if unbatched:
            return out[:, 0, :]
        if batch_first:
            return np.ascontiguousarray(out.transpose(1, 0, 2))
        return out

    @staticmethod
    def _state_layout(s, unbatched):
        return s[:, 0, :] if unbatched else s

    def stream(self, batch_size: int, hx: StateIn | None = None) -> LSTMStream:
        """A :class:`fastlstm.stream.LSTMStream` for step-by-step inference
        (unidirectional only): ``y_t = stream.step(x_t)``, ``stream.reset()``."""
        from .stream import LSTMStream

        return LSTMStream(self, batch_size, hx)

    # ---- backward ---------------------------------------------------------
    def _make_backward(self, plan, unbatched, batch_first, x_shape, h0, c0, saved, weights, shared):
        """weights: per suffix, (w_ih, w_hh, w_hr, peephole) the forward ran with (the
        live arrays, which ``shared`` checks are unchanged): backward must
        differentiate those."""
        # taken (never released) by the call that runs: checking a flag and
        # setting it later would let two threads both pass the check
        claim = threading.Lock()

        def backward(d_output, d_state=None):
            if claim.locked():
                raise RuntimeError(_BACKWARD_TWICE)
            H, Ho, D = self.hidden_size, self._h_out, self.num_directions
            LD, dt, B = self.num_layers * D, self.dtype, plan.B
            d_out = check_array("d_output", d_output, dt)
            out_shape = (
                (x_shape[0], D * Ho)
                if unbatched
                else (x_shape[1], x_shape[0], D * Ho)
                if batch_first
                else (x_shape[0], x_shape[1], D * Ho)
            )
            if d_out.shape != out_shape:
                raise ValueError(
                    f"d_output: expected the output's shape {out_shape}, got {d_out.shape}"
                )
            if unbatched:
                d_out = d_out[:, None, :]
            elif batch_first:
                d_out = d_out.transpose(1, 0, 2)
            dh_n = dc_n = None
            d_state = check_pair("d_state", d_state, "dh_n", "dc_n")
            if d_state is not None:
                conv = []
                for name, s, width in (("dh_n", d_state[0], Ho), ("dc_n", d_state[1], H)):
                    if s is None:
                        conv.append(None)
                        continue
                    want = (LD, width) if unbatched else (LD, B, width)
                    s = check_state(name, s, dt, want)
                    conv.append(plan.to_sorted(s[:, None, :] if unbatched else s))
                dh_n, dc_n = conv
            if claim.locked():
                raise RuntimeError(_BACKWARD_TWICE)
            shared.check()
            if not claim.acquire(blocking=False):
                raise RuntimeError(_BACKWARD_TWICE)
            with self._grad_lock:
                return self._backward(
                    plan,
                    unbatched,
                    batch_first,
                    h0,
                    c0,
                    saved,
                    weights,
                    plan.pack(d_out),
                    dh_n,
                    dc_n,
                )

        return backward

    def _backward(self, plan, unbatched, batch_first, h0, c0, saved, weights, dy, dh_n, dc_n):
        H, Ho, D = self.hidden_size, self._h_out, self.num_directions
        LD, dt, B = self.num_layers * D, self.dtype, plan.B
        dh0 = np.empty((LD, B, Ho), dt)
        dc0 = np.empty((LD, B, H), dt)
        spent = []  # the forward's buffers, for the next forward_train
        for layer in reversed(range(self.num_layers)):
            inp, x_map, y, y_map, per_dir, _ = saved[layer]
            dx = np.empty((plan.rows, inp.shape[1]), dt)  # inp may be the padded x
            for d in range(D):
                k = layer * D + d
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                gates, cells = per_dir[d]
                w_ih, w_hh, w_hr, peephole = weights[sfx]
                dbias = np.zeros(4 * H, dt) if self.bias else None
                kernels.backward(
                    w_ih,
                    w_hh,
                    w_hr,
                    None if c0 is None else c0[k],
                    gates,
                    cells,
                    None,
                    dy,
                    d * Ho,
                    None if dh_n is None else dh_n[k],
                    None if dc_n is None else dc_n[k],
                    dx,
                    d > 0,
                    dh0[k],
                    dc0[k],
                    self.grads["weight_ih" + sfx],
                    self.grads["weight_hh" + sfx],
                    dbias,
                    self.grads.get("weight_hr" + sfx),
                    plan.batch_sizes,
                    plan.steps,
                    d == 1,
                    x=inp,
                    x_rows=x_map,
                    y=y,
                    y_col=d * Ho,
                    y_rows=y_map,
                    h0=None if h0 is None else h0[k],
                    opts=self._cell_opts[d],
                    peephole=peephole,
                    d_peephole=self.grads.get("weight_peephole" + sfx),
                )
                if dbias is not None:
                    self.grads["bias_ih" + sfx] += dbias
                    self.grads["bias_hh" + sfx] += dbias
                spent.extend(per_dir[d])
                per_dir[d] = None  # consumed
            if layer > 0:
                mask = saved[layer - 1][5]
                if mask is not None:
                    dx *= mask
            dy = dx
        self._train_buffers.give(spent)
        dx_full = plan.unpack(dy)
        dx_full = (
            dx_full[:, 0, :]
            if unbatched
            else np.ascontiguousarray(dx_full.transpose(1, 0, 2))
            if batch_first
            else dx_full
        )
        dh0 = self._state_layout(plan.from_sorted(dh0), unbatched)
        dc0 = self._state_layout(plan.from_sorted(dc0), unbatched)
        return dx_full, (dh0, dc0)


class _Unchanged:
    """Fingerprints of arrays a backward will read, taken at the forward:
    ``check()`` raises if one was modified in place since, as PyTorch does
    for a saved tensor, instead of giving wrong gradients."""

    def __init__(self, arrays):
        self._arrays = arrays
        self._prints = [self._print(a) for a in arrays]

    @staticmethod
    def _print(a):
        return kernels.fingerprint(np.ascontiguousarray(a))

    def check(self):
        for a, fp in zip(self._arrays, self._prints):
            if self._print(a) != fp:
                raise RuntimeError(
                    "backward: an array this forward_train read or returned (its input x, "
                    "output, hx or the layer's weights) was modified in place before "
                    "backward, which needs them as the forward saw them; update the "
                    "weights after backward, and modify a copy of the others"
                )
