"""Optimizers and gradient clipping over numpy arrays, updated in place.

An optimizer takes the layers (anything with ``named_parameters()`` and a
``grads`` dict under the same names: fastlstm.LSTM, LSTMCell, ...) whose
parameters it steps::

    opt = fastlstm.optim.Adam([lstm, head], lr=2e-3)
    ...                                   # forward, loss, backward
    fastlstm.optim.clip_grad_norm_([lstm, head], 1.0)
    opt.step()
    opt.zero_grad()

(parameter, gradient) array pairs work too (``parameter_pairs(layer)``
gives a layer's).  ``step()`` updates every parameter in place, in its own
dtype, so a layer notices the change (an LSTM repacks its weights on the
next call).  The update rules, defaults and argument checks are PyTorch's
(torch.optim.SGD, Adam, AdamW, RMSprop with ``maximize=False``); the
hyperparameters live in ``param_groups`` (a list of dicts, as in torch), so
``opt.param_groups[0]["lr"] = 1e-4`` (or ``opt.lr = 1e-4`` for every group)
changes them between steps, and the learning-rate schedules in
``fastlstm.optim.lr_scheduler`` drive them.  ``state_dict()`` and
``load_state_dict()`` save and restore the moment estimates and step counts
so that training can resume.
"""

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from .. import LSTM, LSTMCell

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Optimizer",
    "clip_grad_norm_",
    "clip_grad_value_",
    "parameter_pairs",
]


# a parameter or its gradient: float32 or float64, the layer's dtype
Array = NDArray[np.floating[Any]]


def parameter_pairs(layer: Union["LSTM", "LSTMCell"]) -> list[tuple[Array, Array]]:
    """[(parameter, gradient)] of a layer, in its parameters' order."""
    return [(p, layer.grads[name]) for name, p in layer.named_parameters()]


def _is_layer(obj: Any) -> bool:
    return hasattr(obj, "named_parameters") and hasattr(obj, "grads")


class _Slot:
    """One parameter: its layer and name (looked up at every step, so a
    layer whose arrays are replaced, e.g. by load_state_dict, is still
    followed), or a fixed (parameter, gradient) pair."""

    __slots__ = ("layer", "name", "pair")

    def __init__(self, layer: Any = None, name: str = "", pair: Optional[tuple[Any, Any]] = None):
        self.layer, self.name, self.pair = layer, name, pair

    def arrays(self) -> tuple[Array, Optional[Array]]:
        if self.pair is not None:
            return self.pair[0], self.pair[1]
        for name, p in self.layer.named_parameters():
            if name == self.name:
                return p, self.layer.grads.get(name)
        raise KeyError(f"{type(self.layer).__name__} no longer has a parameter {self.name!r}")


def _slots(items: Any, what: str) -> list[_Slot]:
    """Slots of a list of layers and/or (parameter, gradient) pairs."""
    if _is_layer(items):
        items = [items]
    if isinstance(items, np.ndarray) or not isinstance(items, Iterable):
        raise TypeError(
            f"{what}: expected a list of layers (objects with named_parameters() and grads) "
            f"or of (parameter, gradient) array pairs, got {type(items).__name__}"
        )
    slots = []
    for i, item in enumerate(items):
        if _is_layer(item):
            slots += [_Slot(layer=item, name=name) for name, _ in item.named_parameters()]
        elif (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and all(isinstance(a, np.ndarray) for a in item)
        ):
            p, g = item
            if p.shape != g.shape or p.dtype != g.dtype:
                raise ValueError(
                    f"{what}[{i}]: parameter and gradient differ: parameter {p.shape} {p.dtype}, "
                    f"gradient {g.shape} {g.dtype}"
                )
            slots.append(_Slot(pair=(p, g)))
        else:
            raise TypeError(
                f"{what}[{i}]: expected a layer (with named_parameters() and grads) or a "
                f"(parameter, gradient) pair of numpy arrays, got {type(item).__name__}"
            )
    for s in slots:
        p, _ = s.arrays()
        if not (isinstance(p, np.ndarray) and p.dtype in (np.float32, np.float64)):
            raise TypeError(
                f"{what}: parameters must be float32 or float64 numpy arrays, got "
                f"{getattr(p, 'dtype', type(p).__name__)}"
            )
    return slots


def _check(name: str, value: float, ok: bool) -> None:
    if not ok:
        raise ValueError(f"Invalid {name}: {value!r}")


class Optimizer:
    """Common machinery: parameter groups, per-parameter state, scratch
    buffers, zero_grad and state_dict.  Subclasses set ``defaults``, check
    hyperparameters in ``_validate`` and update one parameter in
    ``_update``."""

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self._validate(self.defaults)
        items = list(params) if not _is_layer(params) else [params]
        if not items:
            raise ValueError("params: the optimizer got an empty parameter list")
        if all(isinstance(g, Mapping) for g in items):
            groups = [dict(g) for g in items]
        else:
            groups = [{"params": items}]
        self.param_groups: list[dict[str, Any]] = []
        self._slots: list[list[_Slot]] = []
        for k, group in enumerate(groups):
            if "params" not in group:
                raise ValueError(f"param_groups[{k}]: a parameter group needs a 'params' entry")
            slots = _slots(group.pop("params"), f"param_groups[{k}]['params']")
            unknown = set(group) - set(self.defaults) - {"initial_lr"}
            if unknown:
                raise ValueError(f"param_groups[{k}]: unknown hyperparameters {sorted(unknown)}")
            full = {**self.defaults, **group}
            self._validate(full)
            start = sum(map(len, self._slots))
            full["params"] = list(range(start, start + len(slots)))
            self.param_groups.append(full)
            self._slots.append(slots)
        # per parameter index: its state (step count, moment estimates)
        self.state: dict[int, dict[str, Any]] = {}
        self._scratch: dict[tuple[str, int], Array] = {}

    # ---- hyperparameters --------------------------------------------------
    def _validate(self, group: Mapping[str, Any]) -> None:
        _check("learning rate", group["lr"], group["lr"] >= 0.0)

    @property
    def lr(self) -> float:
        """The first group's learning rate; setting it sets every group's."""
        return float(self.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        _check("learning rate", value, value >= 0.0)
        for group in self.param_groups:
            group["lr"] = float(value)

    # ---- stepping ---------------------------------------------------------
    def _tmp(self, p: Array, k: int) -> Array:
        """Scratch array ``k`` shaped and typed like ``p``: a view of one flat
        buffer per dtype and ``k``, as large as the largest parameter, shared
        by all parameters (they are updated one after another).  Only the
        ``k`` an update uses exists, so the scratch adds one parameter's
        worth to a training step's memory, not one per shape."""
        key = (p.dtype.str, k)
        buf = self._scratch.get(key)
        if buf is None or buf.size < p.size:
            buf = self._scratch[key] = np.empty(p.size, p.dtype)
        return buf[: p.size].reshape(p.shape)

    def step(self) -> None:
        """Update every parameter in place from its gradient's current value
        (a parameter without a gradient is skipped).  Gradients are only read."""
        for group, slots in zip(self.param_groups, self._slots):
            self._validate(group)
            for index, slot in zip(group["params"], slots):
                p, g = slot.arrays()
                if g is None:
                    continue
                if g.shape != p.shape:
                    raise ValueError(
                        f"parameter {index}: gradient shape {g.shape} != parameter shape {p.shape}"
                    )
                state = self.state.get(index)
                if state is None:
                    state = self.state[index] = self._init_state(p)
                self._update(group, p, g, state)

    def _init_state(self, p: Array) -> dict[str, Any]:
        raise NotImplementedError

    def _update(self, group: Mapping[str, Any], p: Array, g: Array, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Set every gradient to zero (layers through their own zero_grad())."""
        seen: set[int] = set()
        for slots in self._slots:
            for slot in slots:
                if slot.pair is not None:
                    slot.pair[1].fill(0)
                elif id(slot.layer) not in seen:
                    seen.add(id(slot.layer))
                    slot.layer.zero_grad()

    # ---- saving and resuming ----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {...}}, "param_groups": [{hyperparameters, "params": [indices]}]}
        as torch's: copies, parameters referred to by their index."""
        state = {
            i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
            for i, s in self.state.items()
        }
        groups = [{**g, "params": list(g["params"])} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what ``state_dict()`` gave (of an optimizer of the same kind
        over parameters of the same shapes, in the same order)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"load_state_dict: {len(groups)} parameter groups, the optimizer has "
                f"{len(self.param_groups)}"
            )
        mapping: dict[Any, int] = {}
        for k, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(
                    f"load_state_dict: param_groups[{k}] has {len(saved['params'])} parameters, "
                    f"the optimizer's has {len(own['params'])}"
                )
            mapping.update(zip(saved["params"], own["params"]))
        arrays = {
            i: slot.arrays()[0]
            for group, slots in zip(self.param_groups, self._slots)
            for i, slot in zip(group["params"], slots)
        }
        new_state: dict[int, dict[str, Any]] = {}
        for key, s in state_dict["state"].items():
            if key not in mapping:
                raise ValueError(f"load_state_dict: state for unknown parameter {key!r}")
            i = mapping[key]
            p = arrays[i]
            entry: dict[str, Any] = {}
            for name, v in s.items():
                if isinstance(v, np.ndarray) or hasattr(v, "shape"):
                    a = np.asarray(v)
                    if a.shape != p.shape:
                        raise ValueError(
                            f"load_state_dict: state[{key}][{name!r}] has shape {a.shape}, "
                            f"parameter {i} has shape {p.shape}"
                        )
                    entry[name] = np.array(a, dtype=p.dtype, order="C", copy=True)
                else:
                    entry[name] = v
            new_state[i] = entry
        for saved, own in zip(groups, self.param_groups):
            hyper = {k: v for k, v in saved.items() if k != "params"}
            merged = {**own, **hyper}
            self._validate(merged)
            own.update(hyper)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for k, g in enumerate(self.param_groups):
            lines.append(f"  group {k}: {len(g['params'])} parameters")
            lines += [f"    {name}: {v}" for name, v in g.items() if name != "params"]
        return "\n".join(lines + [")"])


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``:
    g = grad + weight_decay * p; buf = momentum * buf + (1 - dampening) * g
    (buf = g at the first step); g = g + momentum * buf if nesterov else buf;
    p -= lr * g."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        super().__init__(params, defaults)

    def _validate(self, group: Mapping[str, Any]) -> None:
        super()._validate(group)
        _check("momentum value", group["momentum"], group["momentum"] >= 0.0)
        _check("weight_decay value", group["weight_decay"], group["weight_decay"] >= 0.0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _init_state(self, p: Array) -> dict[str, Any]:
        return {"momentum_buffer": None}

    def _update(self, group: Mapping[str, Any], p: Array, g: Array, state: dict[str, Any]) -> None:
        lr, wd = group["lr"], group["weight_decay"]
        mom, damp = group["momentum"], group["dampening"]
        d = None  # the working gradient, in scratch 0 once it is not g itself
        if wd != 0:
            d = np.multiply(p, wd, out=self._tmp(p, 0))
            d += g
            g = d
        if mom != 0:
            buf = state["momentum_buffer"]
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mom
                t = np.multiply(g, 1 - damp, out=self._tmp(p, 1))
                buf += t
            if group["nesterov"]:
                t = np.multiply(buf, mom, out=self._tmp(p, 1))
                if d is None:
                    d = np.add(g, t, out=self._tmp(p, 0))
                else:
                    d += t
                g = d
            else:
                g = buf
        t = np.multiply(g, lr, out=self._tmp(p, 1))
        p -= t


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as ``torch.optim.Adam``: ``weight_decay``
    adds weight_decay * p to the gradient (L2), ``amsgrad`` keeps the
    running maximum of the second moment estimate."""

    _decoupled = False

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )
        super().__init__(params, defaults)

    def _validate(self, group: Mapping[str, Any]) -> None:
        super()._validate(group)
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"Invalid betas: expected a pair (beta1, beta2), got {betas!r}")
        _check("epsilon value", group["eps"], group["eps"] >= 0.0)
        _check("beta parameter at index 0", betas[0], 0.0 <= betas[0] < 1.0)
        _check("beta parameter at index 1", betas[1], 0.0 <= betas[1] < 1.0)
        _check("weight_decay value", group["weight_decay"], group["weight_decay"] >= 0.0)

    def _init_state(self, p: Array) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": 0,
            "exp_avg": np.zeros_like(p),
            "exp_avg_sq": np.zeros_like(p),
        }
        return state

    def _update(self, group: Mapping[str, Any], p: Array, g: Array, state: dict[str, Any]) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        b1, b2 = group["betas"]
        state["step"] += 1
        step = state["step"]
        if wd != 0:
            if self._decoupled:
                p *= 1 - lr * wd
            else:
                d = np.multiply(p, wd, out=self._tmp(p, 0))
                d += g
                g = d
        m, v = state["exp_avg"], state["exp_avg_sq"]
        t = self._tmp(p, 1)
        # m <- m + (1 - b1) (g - m); v <- b2 v + (1 - b2) g^2
        np.subtract(g, m, out=t)
        t *= 1 - b1
        m += t
        v *= b2
        np.multiply(g, 1 - b2, out=t)
        t *= g
        v += t
        bias_correction1 = 1 - b1**step
        bias_correction2_sqrt = math.sqrt(1 - b2**step)
        step_size = lr / bias_correction1
        if group["amsgrad"]:
            vmax = state.get("max_exp_avg_sq")
            if vmax is None:
                vmax = state["max_exp_avg_sq"] = np.zeros_like(p)
            np.maximum(vmax, v, out=vmax)
            v = vmax
        np.sqrt(v, out=t)
        t /= bias_correction2_sqrt
        t += eps
        np.divide(m, t, out=t)
        t *= step_size
        p -= t


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as
    ``torch.optim.AdamW``: p *= 1 - lr * weight_decay before the Adam step."""

    _decoupled = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``: the square average
    v = alpha v + (1 - alpha) g^2 (``centered`` subtracts the squared mean
    gradient), p -= lr * g / (sqrt(v) + eps), with optional momentum."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )
        super().__init__(params, defaults)

    def _validate(self, group: Mapping[str, Any]) -> None:
        super()._validate(group)
        _check("epsilon value", group["eps"], group["eps"] >= 0.0)
        _check("momentum value", group["momentum"], group["momentum"] >= 0.0)
        _check("weight_decay value", group["weight_decay"], group["weight_decay"] >= 0.0)
        _check("alpha value", group["alpha"], group["alpha"] >= 0.0)

    def _init_state(self, p: Array) -> dict[str, Any]:
        return {"step": 0, "square_avg": np.zeros_like(p)}

    def _update(self, group: Mapping[str, Any], p: Array, g: Array, state: dict[str, Any]) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        alpha, mom = group["alpha"], group["momentum"]
        state["step"] += 1
        if wd != 0:
            d = np.multiply(p, wd, out=self._tmp(p, 0))
            d += g
            g = d
        v = state["square_avg"]
        t = self._tmp(p, 1)
        v *= alpha
        np.multiply(g, 1 - alpha, out=t)
        t *= g
        v += t
        if group["centered"]:
            ga = state.get("grad_avg")
            if ga is None:
                ga = state["grad_avg"] = np.zeros_like(p)
            np.subtract(g, ga, out=t)
            t *= 1 - alpha
            ga += t
            # sqrt(v - ga^2) + eps
            np.multiply(ga, -1.0, out=t)
            t *= ga
            t += v
            np.sqrt(t, out=t)
        else:
            np.sqrt(v, out=t)
        t += eps
        if mom > 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.zeros_like(p)
            buf *= mom
            np.divide(g, t, out=t)
            buf += t
            np.multiply(buf, lr, out=t)
        else:
            np.divide(g, t, out=t)
            t *= lr
        p -= t


# ---- gradient clipping ----------------------------------------------------
def _gradients(items: Any, what: str) -> list[Array]:
    """The gradient arrays of layers, (parameter, gradient) pairs or bare
    gradient arrays (lstm.grads.values())."""
    if _is_layer(items) or isinstance(items, np.ndarray):
        items = [items]
    grads: list[Array] = []
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            grads.append(item)
        elif _is_layer(item):
            grads += [item.grads[n] for n, _ in item.named_parameters() if n in item.grads]
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            grads.append(item[1])
        else:
            raise TypeError(
                f"{what}[{i}]: expected a layer, a (parameter, gradient) pair or a gradient "
                f"array, got {type(item).__name__}"
            )
    return grads


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale every gradient in place so that their total norm (the
    ``norm_type``-norm of all gradients together) is at most ``max_norm``,
    as ``torch.nn.utils.clip_grad_norm_``: the scale is
    max_norm / (total_norm + 1e-6), clamped to 1.  Returns the total norm
    before clipping.  ``parameters``: layers, (parameter, gradient) pairs or
    gradient arrays."""
    grads = _gradients(parameters, "parameters")
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    if norm_type == math.inf:
        norms = [float(np.max(np.abs(g))) if g.size else 0.0 for g in grads]
        total = max(norms)
    elif norm_type <= 0:
        raise ValueError(f"norm_type: expected a positive number or inf, got {norm_type}")
    else:
        norms = [
            float(np.sum(np.abs(g.astype(np.float64, copy=False)) ** norm_type))
            ** (1.0 / norm_type)
            for g in grads
        ]
        total = float(np.sum(np.asarray(norms) ** norm_type) ** (1.0 / norm_type))
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= coef
    return total


def clip_grad_value_(parameters: Any, clip_value: float) -> None:
    """Clip every gradient in place to [-clip_value, clip_value], as
    ``torch.nn.utils.clip_grad_value_``.  ``parameters``: layers,
    (parameter, gradient) pairs or gradient arrays (``lstm.grads.values()``)."""
    for g in _gradients(parameters, "parameters"):
        np.clip(g, -clip_value, clip_value, out=g)
