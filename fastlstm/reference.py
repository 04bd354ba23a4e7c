"""Plain-numpy LSTM: the executable specification of what fastlstm computes.

Everything here is written for clarity, not speed.  The compiled kernels are
tested against these functions, and these functions are tested against
PyTorch's ``torch.nn.LSTM``, so a newcomer can read this file to learn exactly
what the library computes, forward and backward.  It imports numpy only.

Notation (used across the project: Python, C comments, tests)
-------------------------------------------------------------
Sizes
    T      time steps (sequence length)
    B      batch size
    I      input features
    H      hidden size (cell size)
    P      proj_size; 0 means no projection
    H_out  P if P > 0 else H: the size of h (and of each direction's output)
    D      directions: 2 if bidirectional else 1
    L      layers (num_layers)

Gate order is PyTorch's: i, f, g, o, each a block of H columns inside 4H::

    gates[:, 0:H]    -> i  (input gate)
    gates[:, H:2H]   -> f  (forget gate)
    gates[:, 2H:3H]  -> g  (cell candidate)
    gates[:, 3H:4H]  -> o  (output gate)

Names of one step (one layer, one direction)
    x        (B, I)       input at step t
    h_prev   (B, H_out)   hidden state from the previous step (h0 at the start)
    c_prev   (B, H)       cell state from the previous step (c0 at the start)
    gates    (B, 4H)      pre-activations
    i, f, g, o (B, H)     post-activations
    c        (B, H)       new cell state
    r        (B, H)       o * tanh(c), the hidden state before projection
    h        (B, H_out)   new hidden state (= r when P == 0)

Parameters (PyTorch's shapes; per layer and direction)
    weight_ih  (4H, I)       rows are [W_ii; W_if; W_ig; W_io]; for layer k > 0, I = D * H_out
    weight_hh  (4H, H_out)
    bias_ih    (4H,)         optional (bias=False drops both biases)
    bias_hh    (4H,)         optional
    weight_hr  (P, H)        only when P > 0
    weight_peephole (3H,)    only with peepholes: blocks p_i, p_f, p_o (ONNX's P is i, o, f)

Equations of one step::

    gates = x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh
    i = sigmoid(gates[:, 0:H])       f = sigmoid(gates[:, H:2H])
    g = tanh(gates[:, 2H:3H])        o = sigmoid(gates[:, 3H:4H])
    c = f * c_prev + i * g
    r = o * tanh(c)
    h = r @ weight_hr.T   if P > 0   else   r

The cell options of the ONNX ``LSTM`` operator (``peepholes``, ``clip``,
``input_forget``, ``activations``; see :func:`cell_forward`) change one step
to::

    zi = gates[:, 0:H]  + p_i * c_prev        zf = gates[:, H:2H] + p_f * c_prev
    zg = gates[:, 2H:3H]
    i = F(clip(zi))     f = 1 - i if input_forget else F(clip(zf))     g = G(clip(zg))
    c = f * c_prev + i * g
    zo = gates[:, 3H:4H] + p_o * c            o = F(clip(zo))
    r = o * Hc(c)

with F, G, Hc the three activations (default Sigmoid, Tanh, Tanh: the
equations above), clip(z) = min(max(z, -clip), clip) (none without clip; its
gradient is 0 where it clamps) and p = weight_peephole (3H,), blocks i, f, o
(0 without peepholes).  With input_forget the f pre-activation, and so the
weights and bias rows of f and p_f, are unused (their gradients are 0).

A stack of L layers feeds each layer's output, the concatenation
[forward, reverse] of its directions along the feature axis, to the next
layer (with an optional dropout mask in between, never after the last layer).

Shapes of the whole stack (PyTorch's)
    x       (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I)
    h0, h_n (L*D, B, H_out)    index = layer * D + direction; batch_first does not apply
    c0, c_n (L*D, B, H)
    output  (T, B, D*H_out), or (B, T, D*H_out) with batch_first, or (T, D*H_out)
    Parameter names: weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k},
    weight_hr_l{k}, weight_peephole_l{k}, with the suffix "_reverse" for
    direction 1.

Lengths (PyTorch's packed-sequence semantics)
    ``lengths`` is an integer array of shape (B,) with 0 <= lengths[b] <= T,
    in any order.  Sequence b is valid for t < lengths[b] and padded after.
    * At padded steps (t >= lengths[b]) the output is exactly 0 and the state
      is frozen (no update); gradients arriving at padded outputs are ignored.
    * h_n / c_n hold each sequence's state after its last valid step; a
      sequence of length 0 has h_n = c_n = 0 (ONNX Runtime's semantics for
      sequence_lens; PyTorch refuses length 0), so nothing flows back to its
      h0 and c0.
    * The reverse direction runs over each sequence's valid prefix only:
      it starts from h0/c0 at t = lengths[b] - 1 and ends at t = 0.
    ``lengths=None`` means every sequence has length T.

Every function computes in the dtype of ``x`` (float32 or float64).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "sigmoid",
    "tanh",
    "ACTIVATIONS",
    "CellOptions",
    "activation",
    "activation_grad",
    "resolve_activations",
    "parameter_shapes",
    "cell_parameter_shapes",
    "cell_forward",
    "cell_backward",
    "layer_forward",
    "layer_backward",
    "lstm_forward",
    "lstm_backward",
]

# The annotations describe what callers pass and get; the bodies rebind
# arguments to arrays as they go (x = np.asarray(x)) and are not type-checked.
# float32 or float64, the dtype of the input
_Array = NDArray[np.floating[Any]]
# what a forward keeps for its backward
_Cache = dict[str, Any]
# parameter gradients under the parameters' names
_Grads = dict[str, _Array]


# ----------------------------------------------------------------------------
# Activations
# ----------------------------------------------------------------------------


def _as_float_array(x):
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def sigmoid(x: ArrayLike) -> _Array:
    """Logistic function 1 / (1 + exp(-x)), stable for any finite x.

    exp is only ever taken of -|x| <= 0, so it cannot overflow; for very
    negative x it underflows to 0, which is the correct limit, so underflow
    is silenced locally.
    """
    x = _as_float_array(x)
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(x))  # in (0, 1]
        # x >= 0: 1 / (1 + exp(-x));   x < 0: exp(x) / (1 + exp(x))
        return np.where(x >= 0, 1, e) / (1 + e)


def tanh(x: ArrayLike) -> _Array:
    """Hyperbolic tangent, stable for any finite x.

    numpy's tanh saturates to +-1 without overflowing; underflow for tiny
    arguments (tanh(x) ~ x) is harmless and silenced.
    """
    x = _as_float_array(x)
    with np.errstate(under="ignore"):
        return np.tanh(x)


# The activations of the ONNX LSTM cell options, by ONNX's name: the
# parameters each takes (alpha, beta) with ONNX's defaults (those of the ONNX
# operators of the same name; ScaledTanh's, which ONNX leaves unset, are 1, 1:
# plain tanh).  activation_alpha / activation_beta lists are consumed in
# order by the activations that take that parameter, as ONNX Runtime does.
ACTIVATIONS: dict[str, tuple[float | None, float | None]] = {
    "Sigmoid": (None, None),
    "Tanh": (None, None),
    "Relu": (None, None),
    "HardSigmoid": (0.2, 0.5),  # min(max(alpha x + beta, 0), 1)
    "Affine": (1.0, 0.0),  # alpha x + beta
    "LeakyRelu": (0.01, None),  # x if x >= 0 else alpha x
    "ThresholdedRelu": (1.0, None),  # x if x > alpha else 0
    "ScaledTanh": (1.0, 1.0),  # alpha tanh(beta x)
    "Elu": (1.0, None),  # x if x >= 0 else alpha (exp(x) - 1)
    "Softsign": (None, None),  # x / (1 + |x|)
    "Softplus": (None, None),  # log(1 + exp(x))
}


class CellOptions(NamedTuple):
    """The ONNX cell options of one layer and direction (see the module
    docstring): peephole (3H,) or None, clip (> 0) or None, input_forget,
    and activations: three (name, alpha, beta) for F (gates i, f, o), G (the
    candidate g) and Hc (the output's squash of c), alpha/beta 0.0 where the
    activation takes none."""

    peephole: Any = None
    clip: float | None = None
    input_forget: bool = False
    activations: tuple[tuple[str, float, float], ...] = (
        ("Sigmoid", 0.0, 0.0),
        ("Tanh", 0.0, 0.0),
        ("Tanh", 0.0, 0.0),
    )


def resolve_activations(
    activations: Sequence[str] | None,
    activation_alpha: Sequence[float] | None,
    activation_beta: Sequence[float] | None,
    num_directions: int,
) -> list[tuple[tuple[str, float, float], ...]]:
    """ONNX's ``activations`` / ``activation_alpha`` / ``activation_beta``
    -> per direction, the three (name, alpha, beta) of F, G, Hc.

    activations: None (Sigmoid, Tanh, Tanh) or 3 names per direction
    (forward first), case-insensitive.  The alpha (beta) list is consumed in
    order by the activations that take an alpha (a beta); where it runs out,
    ONNX's defaults.  Anything else is a ValueError naming the argument."""
    if activations is None:
        if activation_alpha or activation_beta:
            which = "activation_alpha" if activation_alpha else "activation_beta"
            raise ValueError(f"{which}: given without activations")
        return [CellOptions().activations] * num_directions
    if isinstance(activations, str) or not isinstance(activations, Sequence):
        raise ValueError(
            f"activations: expected a list of {3 * num_directions} names, got {activations!r}"
        )
    if len(activations) != 3 * num_directions:
        raise ValueError(
            f"activations: expected {3 * num_directions} names (f, g, h per direction), "
            f"got {len(activations)}"
        )
    by_lower = {k.lower(): k for k in ACTIVATIONS}
    names = []
    for a in activations:
        if not isinstance(a, str) or a.lower() not in by_lower:
            raise ValueError(
                f"activations: unknown activation {a!r}; expected one of {', '.join(ACTIVATIONS)}"
            )
        names.append(by_lower[a.lower()])
    values = {}
    for arg, given, slot in (
        ("activation_alpha", activation_alpha, 0),
        ("activation_beta", activation_beta, 1),
    ):
        given = [] if given is None else given
        if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
            raise ValueError(f"{arg}: expected a list of floats, got {given!r}")
        takers = [k for k, n in enumerate(names) if ACTIVATIONS[n][slot] is not None]
        if len(given) > len(takers):
            raise ValueError(
                f"{arg}: {len(given)} values, but only {len(takers)} of the activations "
                f"{names} take one (the values are consumed in order by those)"
            )
        vals = []
        for v in given:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise ValueError(f"{arg}: expected floats, got {v!r}")
            if not np.isfinite(v):
                raise ValueError(f"{arg}: values must be finite, got {v!r}")
            vals.append(float(v))
        per = [0.0] * len(names)
        for k in takers:
            per[k] = float(ACTIVATIONS[names[k]][slot])
        for k, v in zip(takers, vals):
            per[k] = v
        values[slot] = per
    return [
        tuple((names[k], values[0][k], values[1][k]) for k in range(3 * d, 3 * d + 3))
        for d in range(num_directions)
    ]


def activation(name: str, alpha: float, beta: float, x: ArrayLike) -> _Array:
    """The ONNX activation ``name`` of x (see ACTIVATIONS), in x's dtype."""
    x = _as_float_array(x)
    a, b = x.dtype.type(alpha), x.dtype.type(beta)
    with np.errstate(under="ignore", over="ignore"):
        if name == "Sigmoid":
            return sigmoid(x)
        if name == "Tanh":
            return tanh(x)
        if name == "Relu":
            return np.maximum(x, 0)
        if name == "HardSigmoid":
            return np.clip(a * x + b, 0, 1)
        if name == "Affine":
            return a * x + b
        if name == "LeakyRelu":
            return np.where(x >= 0, x, a * x)
        if name == "ThresholdedRelu":
            return np.where(x > a, x, 0).astype(x.dtype)
        if name == "ScaledTanh":
            return a * tanh(b * x)
        if name == "Elu":
            return np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0)))
        if name == "Softsign":
            return x / (1 + np.abs(x))
        if name == "Softplus":
            return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
    raise ValueError(f"unknown activation {name!r}")


def activation_grad(name: str, alpha: float, beta: float, x: ArrayLike) -> _Array:
    """d activation(name, alpha, beta, x) / dx, elementwise (0 on the flat
    side of a kink; at a kink itself, the side the definition puts x on)."""
    x = _as_float_array(x)
    a, b = x.dtype.type(alpha), x.dtype.type(beta)
    one, zero = x.dtype.type(1), x.dtype.type(0)
    with np.errstate(under="ignore", over="ignore"):
        if name == "Sigmoid":
            s = sigmoid(x)
            return s * (1 - s)
        if name == "Tanh":
            t = tanh(x)
            return 1 - t * t
        if name == "Relu":
            return np.where(x > 0, one, zero)
        if name == "HardSigmoid":
            v = a * x + b
            return np.where((v > 0) & (v < 1), a, zero)
        if name == "Affine":
            return np.full_like(x, a)
        if name == "LeakyRelu":
            return np.where(x >= 0, one, a)
        if name == "ThresholdedRelu":
            return np.where(x > a, one, zero)
        if name == "ScaledTanh":
            t = tanh(b * x)
            return a * b * (1 - t * t)
        if name == "Elu":
            return np.where(x >= 0, one, a * np.exp(np.minimum(x, 0)))
        if name == "Softsign":
            d = 1 + np.abs(x)
            return 1 / (d * d)
        if name == "Softplus":
            return sigmoid(x)
    raise ValueError(f"unknown activation {name!r}")


# ----------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------


def parameter_shapes(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bias: bool = True,
    bidirectional: bool = False,
    proj_size: int = 0,
    peepholes: bool = False,
) -> dict[str, tuple[int, ...]]:
    """Return {name: shape} for a stack, in PyTorch's ``state_dict()`` order.

    Order per layer k, direction d: weight_ih, weight_hh, [bias_ih, bias_hh],
    [weight_hr], [weight_peephole]; layer 0 forward, layer 0 reverse, layer
    1 forward, ...
    """
    H = hidden_size
    H_out = proj_size if proj_size > 0 else H
    D = 2 if bidirectional else 1
    shapes = {}
    for layer in range(num_layers):
        layer_input_size = input_size if layer == 0 else D * H_out
        for direction in range(D):
            suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
            shapes["weight_ih" + suffix] = (4 * H, layer_input_size)
            shapes["weight_hh" + suffix] = (4 * H, H_out)
            if bias:
                shapes["bias_ih" + suffix] = (4 * H,)
                shapes["bias_hh" + suffix] = (4 * H,)
            if proj_size > 0:
                shapes["weight_hr" + suffix] = (proj_size, H)
            if peepholes:
                shapes["weight_peephole" + suffix] = (3 * H,)
    return shapes


def cell_parameter_shapes(
    input_size: int, hidden_size: int, bias: bool = True
) -> dict[str, tuple[int, ...]]:
    """Return {name: shape} of one cell (``torch.nn.LSTMCell``'s names and order)."""
    H = hidden_size
    shapes = {"weight_ih": (4 * H, input_size), "weight_hh": (4 * H, H)}
    if bias:
        shapes["bias_ih"] = (4 * H,)
        shapes["bias_hh"] = (4 * H,)
    return shapes


# ----------------------------------------------------------------------------
# One step
# ----------------------------------------------------------------------------


def cell_forward(
    x: _Array,
    h_prev: _Array,
    c_prev: _Array,
    weight_ih: _Array,
    weight_hh: _Array,
    bias_ih: _Array | None,
    bias_hh: _Array | None,
    weight_hr: _Array | None = None,
    options: CellOptions | None = None,
) -> tuple[_Array, _Array, _Cache]:
    """One LSTM step.

    Parameters
    ----------
    x : (B, I);  h_prev : (B, H_out);  c_prev : (B, H)
    weight_ih : (4H, I);  weight_hh : (4H, H_out)
    bias_ih, bias_hh : (4H,) or None
    weight_hr : (P, H) or None
    options : CellOptions or None (the plain LSTM); not with weight_hr

    Returns
    -------
    h : (B, H_out);  c : (B, H);  cache : dict for :func:`cell_backward`
    """
    H = weight_hh.shape[0] // 4
    gates = x @ weight_ih.T + h_prev @ weight_hh.T  # (B, 4H)
    if bias_ih is not None:
        gates = gates + bias_ih
    if bias_hh is not None:
        gates = gates + bias_hh
    if options is not None:
        if weight_hr is not None:
            raise ValueError("options: the ONNX cell options do not combine with a projection")
        return _options_cell_forward(x, h_prev, c_prev, gates, options, locals())
    i = sigmoid(gates[:, 0 * H : 1 * H])
    f = sigmoid(gates[:, 1 * H : 2 * H])
    g = tanh(gates[:, 2 * H : 3 * H])
    o = sigmoid(gates[:, 3 * H : 4 * H])
    c = f * c_prev + i * g
    tanh_c = tanh(c)
    r = o * tanh_c
    h = r @ weight_hr.T if weight_hr is not None else r
    cache = {
        "x": x,
        "h_prev": h_prev,
        "c_prev": c_prev,
        "i": i,
        "f": f,
        "g": g,
        "o": o,
        "c": c,
        "tanh_c": tanh_c,
        "r": r,
        "weight_ih": weight_ih,
        "weight_hh": weight_hh,
        "weight_hr": weight_hr,
        "has_bias_ih": bias_ih is not None,
        "has_bias_hh": bias_hh is not None,
    }
    return h, c, cache


def cell_backward(dh: _Array, dc: _Array, cache: _Cache) -> tuple[_Array, _Array, _Array, _Grads]:
    """Backward of one step.

    Parameters
    ----------
    dh : (B, H_out)  gradient of the loss w.r.t. the step's h
    dc : (B, H)      gradient w.r.t. the step's c (from the next step / c_n)
    cache : from :func:`cell_forward`

    Returns
    -------
    dx : (B, I);  dh_prev : (B, H_out);  dc_prev : (B, H)
    grads : dict with keys weight_ih, weight_hh, and bias_ih, bias_hh,
        weight_hr where present in the forward call.
    """
    if cache.get("options") is not None:
        return _options_cell_backward(dh, dc, cache)
    i, f, g, o = cache["i"], cache["f"], cache["g"], cache["o"]
    tanh_c, r = cache["tanh_c"], cache["r"]
    weight_hr = cache["weight_hr"]
    grads = {}

    if weight_hr is not None:  # h = r @ weight_hr.T
        grads["weight_hr"] = dh.T @ r  # (P, H)
        dr = dh @ weight_hr  # (B, H)
    else:
        dr = dh
    # r = o * tanh(c);  c also flows on to the next step (dc).
    do = dr * tanh_c
    dc_total = dc + dr * o * (1 - tanh_c * tanh_c)
    # c = f * c_prev + i * g
    di = dc_total * g
    df = dc_total * cache["c_prev"]
    dg = dc_total * i
    dc_prev = dc_total * f
    # Through the activations, back to the pre-activation gates (B, 4H).
    dgates = np.concatenate(
        [
            di * i * (1 - i),
            df * f * (1 - f),
            dg * (1 - g * g),
            do * o * (1 - o),
        ],
        axis=1,
    )
    # gates = x @ weight_ih.T + h_prev @ weight_hh.T + bias_ih + bias_hh
    dx = dgates @ cache["weight_ih"]
    dh_prev = dgates @ cache["weight_hh"]
    grads["weight_ih"] = dgates.T @ cache["x"]
    grads["weight_hh"] = dgates.T @ cache["h_prev"]
    if cache["has_bias_ih"]:
        grads["bias_ih"] = dgates.sum(axis=0)
    if cache["has_bias_hh"]:
        grads["bias_hh"] = dgates.sum(axis=0)
    return dx, dh_prev, dc_prev, grads


def _clip(z, clip):
    """-> (clip(z), the mask where its gradient passes)."""
    if clip is None:
        return z, np.ones(z.shape, bool)
    c = z.dtype.type(clip)
    return np.clip(z, -c, c), (z >= -c) & (z <= c)


def _options_cell_forward(x, h_prev, c_prev, gates, options, args):
    """cell_forward with the ONNX cell options (see the module docstring)."""
    H = gates.shape[1] // 4
    (fn, fa, fb), (gn, ga, gb), (hn, ha, hb) = options.activations
    p = options.peephole
    zi, zf, zg = gates[:, 0:H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H]
    if p is not None:
        zi = zi + p[0:H] * c_prev
        zf = zf + p[H : 2 * H] * c_prev
    ai, mi = _clip(zi, options.clip)
    af, mf = _clip(zf, options.clip)
    ag, mg = _clip(zg, options.clip)
    i = activation(fn, fa, fb, ai)
    f = 1 - i if options.input_forget else activation(fn, fa, fb, af)
    g = activation(gn, ga, gb, ag)
    c = f * c_prev + i * g
    zo = gates[:, 3 * H : 4 * H]
    if p is not None:
        zo = zo + p[2 * H : 3 * H] * c
    ao, mo = _clip(zo, options.clip)
    o = activation(fn, fa, fb, ao)
    hc = activation(hn, ha, hb, c)
    r = o * hc
    cache = dict(
        x=x,
        h_prev=h_prev,
        c_prev=c_prev,
        i=i,
        f=f,
        g=g,
        o=o,
        c=c,
        r=r,
        hc=hc,
        ai=ai,
        af=af,
        ag=ag,
        ao=ao,
        mi=mi,
        mf=mf,
        mg=mg,
        mo=mo,
        options=options,
        weight_ih=args["weight_ih"],
        weight_hh=args["weight_hh"],
        weight_hr=None,
        has_bias_ih=args["bias_ih"] is not None,
        has_bias_hh=args["bias_hh"] is not None,
    )
    return r, c, cache


def _options_cell_backward(dh, dc, cache):
    """cell_backward with the ONNX cell options."""
    options = cache["options"]
    (fn, fa, fb), (gn, ga, gb), (hn, ha, hb) = options.activations
    i, f, g, o, c, c_prev = (cache[k] for k in ("i", "f", "g", "o", "c", "c_prev"))
    H = c.shape[1]
    p = options.peephole
    dr = dh
    # r = o * Hc(c);  o = F(clip(zo)), zo = ... + p_o c
    dzo = dr * cache["hc"] * activation_grad(fn, fa, fb, cache["ao"]) * cache["mo"]
    dc_total = dc + dr * o * activation_grad(hn, ha, hb, c)
    if p is not None:
        dc_total = dc_total + dzo * p[2 * H : 3 * H]
    # c = f * c_prev + i * g, with f = 1 - i under input_forget
    di = dc_total * g
    df = dc_total * c_prev
    dg = dc_total * i
    if options.input_forget:
        di = di - df
    dzi = di * activation_grad(fn, fa, fb, cache["ai"]) * cache["mi"]
    if options.input_forget:
        dzf = np.zeros_like(df)
    else:
        dzf = df * activation_grad(fn, fa, fb, cache["af"]) * cache["mf"]
    dzg = dg * activation_grad(gn, ga, gb, cache["ag"]) * cache["mg"]
    dc_prev = dc_total * f
    if p is not None:
        dc_prev = dc_prev + dzi * p[0:H] + dzf * p[H : 2 * H]
    dgates = np.concatenate([dzi, dzf, dzg, dzo], axis=1)
    grads = {
        "weight_ih": dgates.T @ cache["x"],
        "weight_hh": dgates.T @ cache["h_prev"],
    }
    if cache["has_bias_ih"]:
        grads["bias_ih"] = dgates.sum(axis=0)
    if cache["has_bias_hh"]:
        grads["bias_hh"] = dgates.sum(axis=0)
    if p is not None:
        grads["weight_peephole"] = np.concatenate(
            [(dzi * c_prev).sum(axis=0), (dzf * c_prev).sum(axis=0), (dzo * c).sum(axis=0)]
        )
    dx = dgates @ cache["weight_ih"]
    dh_prev = dgates @ cache["weight_hh"]
    return dx, dh_prev, dc_prev, grads


# ----------------------------------------------------------------------------
# One layer, one direction
# ----------------------------------------------------------------------------


def _check_lengths(lengths, T, B):
    lengths = np.asarray(lengths)
    if lengths.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},), got {lengths.shape}")
    if not np.issubdtype(lengths.dtype, np.integer):
        if not np.all(lengths == np.round(lengths)):
            raise ValueError("lengths must be integers")
    lengths = lengths.astype(np.int64)
    if np.any(lengths < 0) or np.any(lengths > T):
        raise ValueError(f"lengths must be in [0, T={T}], got {lengths.tolist()}")
    return lengths


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
    options: CellOptions | None = None,
) -> tuple[_Array, _Array, _Array, _Cache]:
    """Run one layer in one direction over a time-major sequence.

    Parameters
    ----------
    x : (T, B, I);  h0 : (B, H_out);  c0 : (B, H)
    weight_ih, weight_hh, bias_ih, bias_hh, weight_hr : see :func:`cell_forward`
    reverse : process t = T-1 ... 0 (each sequence from its own last valid step)
    lengths : (B,) ints or None (see the module docstring)
    options : CellOptions or None (see :func:`cell_forward`)

    Returns
    -------
    y : (T, B, H_out)  h at every step, exactly 0 where t >= lengths[b]
    h_n : (B, H_out);  c_n : (B, H)   state after each sequence's last valid step
    cache : dict for :func:`layer_backward`
    """
    dtype = x.dtype
    T, B = x.shape[0], x.shape[1]
    valid = np.ones((T, B), dtype=bool)
    if lengths is not None:
        lengths = _check_lengths(lengths, T, B)
        valid = np.arange(T)[:, None] < lengths[None, :]  # (T, B)

    h, c = h0, c0
    y = np.zeros((T, B, h0.shape[1]), dtype=dtype)
    step_caches = [None] * T
    time_order = range(T - 1, -1, -1) if reverse else range(T)
    for t in time_order:
        h_new, c_new, step_caches[t] = cell_forward(
            x[t], h, c, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, options
        )
        m = valid[t][:, None]  # (B, 1)
        # Valid rows take the new state; padded rows keep the old one.  In the
        # reverse direction this means a sequence starts from h0/c0 at its
        # own last valid step, since every later step left the state alone.
        h = np.where(m, h_new, h)
        c = np.where(m, c_new, c)
        y[t] = np.where(m, h_new, 0)
    empty = ~valid.any(axis=0)[:, None]  # (B, 1): sequences of length 0
    h = np.where(empty, 0, h).astype(dtype)
    c = np.where(empty, 0, c).astype(dtype)

    cache = {
        "step_caches": step_caches,
        "valid": valid,
        "reverse": reverse,
        "x_shape": x.shape,
        "h0_shape": h0.shape,
        "c0_shape": c0.shape,
        "dtype": dtype,
    }
    return y, h, c, cache


def layer_backward(
    dy: _Array | None, dh_n: _Array | None, dc_n: _Array | None, cache: _Cache
) -> tuple[_Array, _Array, _Array, _Grads]:
    """Backward of :func:`layer_forward`.

    Parameters
    ----------
    dy : (T, B, H_out) or None;  dh_n : (B, H_out) or None;  dc_n : (B, H) or None
        Gradients w.r.t. y, h_n and c_n (None means zero).  Entries of dy at
        padded steps are ignored.
    cache : from :func:`layer_forward`

    Returns
    -------
    dx : (T, B, I);  dh0 : (B, H_out);  dc0 : (B, H)
    grads : dict with keys weight_ih, weight_hh, and bias_ih, bias_hh,
        weight_hr where present in the forward call, summed over time.
    """
    dtype = cache["dtype"]
    T = cache["x_shape"][0]
    valid = cache["valid"]
    dx = np.zeros(cache["x_shape"], dtype=dtype)
    dh = np.zeros(cache["h0_shape"], dtype=dtype) if dh_n is None else dh_n
    dc = np.zeros(cache["c0_shape"], dtype=dtype) if dc_n is None else dc_n
    empty = ~valid.any(axis=0)[:, None]  # length 0: h_n, c_n are constant zeros
    dh, dc = np.where(empty, 0, dh), np.where(empty, 0, dc)
    if dy is None:
        dy = np.zeros((T,) + tuple(cache["h0_shape"]), dtype=dtype)

    grads = {}
    # Walk the steps in the opposite order of the forward pass.
    time_order = range(T) if cache["reverse"] else range(T - 1, -1, -1)
    for t in time_order:
        m = valid[t][:, None]
        # The step's new state reached y[t] and the carried state only on
        # valid rows; on padded rows the carried state came from h_prev.
        dh_new = np.where(m, dy[t] + dh, 0)
        dc_new = np.where(m, dc, 0)
        dx[t], dh_prev, dc_prev, step_grads = cell_backward(dh_new, dc_new, cache["step_caches"][t])
        dh = dh_prev + np.where(m, 0, dh)
        dc = dc_prev + np.where(m, 0, dc)
        for name, value in step_grads.items():
            grads[name] = grads[name] + value if name in grads else value
    return dx, dh, dc, grads


# ----------------------------------------------------------------------------
# The whole stack, PyTorch's interface
# ----------------------------------------------------------------------------


def _suffix(layer, direction):
    return f"_l{layer}" + ("_reverse" if direction == 1 else "")


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
    clip: float | None = None,
    input_forget: bool = False,
    activations: Sequence[str] | None = None,
    activation_alpha: Sequence[float] | None = None,
    activation_beta: Sequence[float] | None = None,
) -> tuple[_Array, tuple[_Array, _Array], _Cache]:
    """Forward of a stacked (optionally bidirectional, projected) LSTM.

    Parameters
    ----------
    x : (T, B, I), (B, T, I) if batch_first, or unbatched (T, I)
    params : dict of PyTorch-named arrays (see :func:`parameter_shapes`);
        biases are used when ``bias_ih_l0`` is present.
    num_layers, bidirectional, proj_size, batch_first : as in torch.nn.LSTM
    h0 : (L*D, B, H_out) or None (zeros);  (L*D, H_out) for unbatched x
    c0 : (L*D, B, H) or None (zeros);      (L*D, H) for unbatched x
    lengths : (B,) ints or None
    dropout_masks : None or a list of L-1 arrays of shape (T, B, D*H_out)
        (time-major whatever batch_first is; (T, D*H_out) for unbatched x),
        already scaled (mask / (1 - p)); mask k multiplies layer k's output
        before it enters layer k+1.
    clip, input_forget, activations, activation_alpha, activation_beta :
        the ONNX cell options (module docstring, :func:`resolve_activations`),
        the same for every layer; peepholes are used when ``params`` holds
        ``weight_peephole_l0``.  Not with proj_size.

    Returns
    -------
    output : (T, B, D*H_out) (or batch_first / unbatched layout), exactly 0
        at padded steps
    (h_n, c_n) : shapes of h0, c0
    cache : dict for :func:`lstm_backward`
    """
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    x = x.astype(dtype, copy=False)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[:, None, :]  # (T, 1, I); batch_first is moot
    elif x.ndim != 3:
        raise ValueError(f"x must be 2-D or 3-D, got shape {x.shape}")
    elif batch_first:
        x = x.transpose(1, 0, 2)  # -> (T, B, I)
    T, B, I = x.shape

    D = 2 if bidirectional else 1
    H = np.asarray(params["weight_hh_l0"]).shape[0] // 4
    H_out = proj_size if proj_size > 0 else H
    bias = "bias_ih_l0" in params
    peepholes = "weight_peephole_l0" in params
    expected = parameter_shapes(I, H, num_layers, bias, bidirectional, proj_size, peepholes)
    for name, shape in expected.items():
        if name not in params:
            raise ValueError(f"params is missing {name!r}")
        if tuple(np.shape(params[name])) != shape:
            raise ValueError(
                f"params[{name!r}] has shape {np.shape(params[name])}, expected {shape}"
            )
    weights = {name: np.asarray(params[name], dtype=dtype) for name in expected}
    acts = resolve_activations(activations, activation_alpha, activation_beta, D)
    if clip is not None and not clip > 0:
        raise ValueError(f"clip: expected a number > 0 or None, got {clip!r}")
    plain = (
        not peepholes
        and clip is None
        and not input_forget
        and all(a == CellOptions().activations for a in acts)
    )
    if not plain and proj_size > 0:
        raise ValueError("the ONNX cell options do not combine with proj_size")

    def initial_state(state, size, label):
        if state is None:
            return np.zeros((num_layers * D, B, size), dtype=dtype)
        state = np.asarray(state, dtype=dtype)
        if unbatched:
            state = state[:, None, :]
        if state.shape != (num_layers * D, B, size):
            raise ValueError(
                f"{label} must have shape {(num_layers * D, B, size)} "
                f"(batched form), got {state.shape}"
            )
        return state

    h0 = initial_state(h0, H_out, "h0")
    c0 = initial_state(c0, H, "c0")

    if dropout_masks is None:
        dropout_masks = []
    dropout_masks = [np.asarray(m, dtype=dtype) for m in dropout_masks]
    if unbatched:
        dropout_masks = [m[:, None, :] if m.ndim == 2 else m for m in dropout_masks]
    if dropout_masks and len(dropout_masks) != num_layers - 1:
        raise ValueError(
            f"dropout_masks must hold num_layers-1 = {num_layers - 1} "
            f"arrays, got {len(dropout_masks)}"
        )
    for m in dropout_masks:
        if m.shape != (T, B, D * H_out):
            raise ValueError(
                f"each dropout mask must have shape {(T, B, D * H_out)}, got {m.shape}"
            )

    h_n = np.zeros_like(h0)
    c_n = np.zeros_like(c0)
    layer_caches = []
    layer_input = x
    for layer in range(num_layers):
        outputs, caches = [], []
        for direction in range(D):
            s = _suffix(layer, direction)
            k = layer * D + direction
            y, h_n[k], c_n[k], cache = layer_forward(
                layer_input,
                h0[k],
                c0[k],
                weights["weight_ih" + s],
                weights["weight_hh" + s],
                weights.get("bias_ih" + s),
                weights.get("bias_hh" + s),
                weights.get("weight_hr" + s),
                reverse=direction == 1,
                lengths=lengths,
                options=None
                if plain
                else CellOptions(
                    weights.get("weight_peephole" + s), clip, bool(input_forget), acts[direction]
                ),
            )
            outputs.append(y)
            caches.append(cache)
        layer_caches.append(caches)
        layer_input = np.concatenate(outputs, axis=2)  # (T, B, D*H_out)
        if layer < num_layers - 1 and dropout_masks:
            layer_input = layer_input * dropout_masks[layer]

    output = layer_input
    if unbatched:
        output, h_n, c_n = output[:, 0], h_n[:, 0], c_n[:, 0]
    elif batch_first:
        output = output.transpose(1, 0, 2)

    cache = {
        "layer_caches": layer_caches,
        "dropout_masks": dropout_masks,
        "num_layers": num_layers,
        "num_directions": D,
        "H_out": H_out,
        "H": H,
        "batch_first": batch_first,
        "unbatched": unbatched,
        "shape": (T, B, I),
        "dtype": dtype,
    }
    return output, (h_n, c_n), cache


def lstm_backward(
    d_output: ArrayLike | None,
    d_hn: ArrayLike | None,
    d_cn: ArrayLike | None,
    cache: _Cache,
) -> tuple[_Array, _Array, _Array, _Grads]:
    """Backward of :func:`lstm_forward`.

    Parameters
    ----------
    d_output : like ``output`` (same layout) or None (zero); entries at
        padded steps are ignored.
    d_hn, d_cn : like ``h_n``, ``c_n`` or None (zero)
    cache : from :func:`lstm_forward`

    Returns
    -------
    dx : like x;  dh0 : like h0;  dc0 : like c0 (also when h0/c0 were None)
    grads : dict keyed by PyTorch parameter name
    """
    dtype = cache["dtype"]
    T, B, I = cache["shape"]
    L, D = cache["num_layers"], cache["num_directions"]
    H, H_out = cache["H"], cache["H_out"]
    unbatched, batch_first = cache["unbatched"], cache["batch_first"]

    def batched_time_major(grad, shape):
        if grad is None:
            return np.zeros(shape, dtype=dtype)
        grad = np.asarray(grad, dtype=dtype)
        return grad.reshape(shape) if unbatched else grad

    if d_output is not None and batch_first and not unbatched:
        d_output = np.asarray(d_output).transpose(1, 0, 2)
    d_layer_output = batched_time_major(d_output, (T, B, D * H_out))
    d_hn = batched_time_major(d_hn, (L * D, B, H_out))
    d_cn = batched_time_major(d_cn, (L * D, B, H))

    dh0 = np.zeros((L * D, B, H_out), dtype=dtype)
    dc0 = np.zeros((L * D, B, H), dtype=dtype)
    grads = {}
    for layer in range(L - 1, -1, -1):
        if layer < L - 1 and cache["dropout_masks"]:
            d_layer_output = d_layer_output * cache["dropout_masks"][layer]
        d_layer_input = 0
        for direction in range(D):
            s = _suffix(layer, direction)
            k = layer * D + direction
            dy = d_layer_output[:, :, direction * H_out : (direction + 1) * H_out]
            dx, dh0[k], dc0[k], layer_grads = layer_backward(
                dy, d_hn[k], d_cn[k], cache["layer_caches"][layer][direction]
            )
            d_layer_input = d_layer_input + dx
            for name, value in layer_grads.items():
                grads[name + s] = value
        d_layer_output = d_layer_input  # the layer below produced our input

    dx = d_layer_output
    if unbatched:
        dx, dh0, dc0 = dx[:, 0], dh0[:, 0], dc0[:, 0]
    elif batch_first:
        dx = dx.transpose(1, 0, 2)
    return dx, dh0, dc0, grads
