"""torch modules to fastlstm and back: ``fastlstm.from_torch`` and
``fastlstm.to_torch`` (torch is imported when called).

fastlstm keeps torch's parameter names, shapes and gate order, so a module
converts by its constructor arguments and a copy of its ``state_dict``.  The
dtype is kept (float32 or float64; others are a TypeError).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ..layers.basic import Dropout, Embedding, Linear
from ..layers.cell import LSTMCell
from ..layers.lstm import LSTM
from ..layers.sequential import Sequential

if TYPE_CHECKING:
    import torch as _torch

__all__ = ["from_torch", "to_torch"]

Converted = Union[LSTM, LSTMCell, Linear, Embedding, Dropout, Sequential]

_DTYPES = ("float32", "float64")


def _numpy_state(module: Any) -> dict[str, np.ndarray]:
    """The module's parameters as numpy copies, dtype kept."""
    out = {}
    for name, t in module.state_dict().items():
        a = t.detach().cpu().numpy().copy()
        if a.dtype.name not in _DTYPES:
            raise TypeError(
                f"module: parameter {name!r} has dtype {a.dtype}; fastlstm runs float32 and "
                "float64 (convert the module with .float() or .double() first)"
            )
        out[name] = a
    return out


def _dtype_of(state: dict[str, np.ndarray], default: Any = np.float32) -> np.dtype:
    dtypes = {a.dtype for a in state.values()}
    if len(dtypes) > 1:
        raise TypeError(f"module: parameters of several dtypes {sorted(map(str, dtypes))}")
    return dtypes.pop() if dtypes else np.dtype(default)


def from_torch(module: _torch.nn.Module) -> Converted:
    """A fastlstm copy of a torch module: same configuration, same weights.

    Supported: ``nn.LSTM`` (every option: num_layers, bias, batch_first,
    dropout, bidirectional, proj_size), ``nn.LSTMCell``, ``nn.Linear``,
    ``nn.Embedding`` (with padding_idx; not max_norm or sparse),
    ``nn.Dropout``, and ``nn.Sequential`` of them (where an LSTM passes on
    its sequence output, as fastlstm.Sequential does).  Other modules are a
    TypeError naming them.
    """
    import torch  # optional dependency: imported when called

    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    if isinstance(module, nn.Sequential):
        # an LSTMCell in it is refused by Sequential itself
        return Sequential(*(from_torch(m) for m in module))  # type: ignore[arg-type]
    state = _numpy_state(module)
    dt = _dtype_of(state)
    out: Converted
    if type(module) is nn.LSTM:
        if getattr(module, "mode", "LSTM") != "LSTM":
            raise TypeError(f"module: an RNN of mode {module.mode!r}, not an LSTM")
        out = LSTM(
            module.input_size,
            module.hidden_size,
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=float(module.dropout),
            bidirectional=module.bidirectional,
            proj_size=module.proj_size,
            dtype=dt,
        )
    elif type(module) is nn.LSTMCell:
        out = LSTMCell(module.input_size, module.hidden_size, bias=module.bias, dtype=dt)
    elif type(module) is nn.Linear:
        out = Linear(
            module.in_features, module.out_features, bias=module.bias is not None, dtype=dt
        )
    elif type(module) is nn.Embedding:
        if module.max_norm is not None or module.sparse or module.scale_grad_by_freq:
            raise ValueError(
                "module: nn.Embedding with max_norm, sparse or scale_grad_by_freq has no "
                "fastlstm equivalent"
            )
        out = Embedding(
            module.num_embeddings, module.embedding_dim, padding_idx=module.padding_idx, dtype=dt
        )
    elif type(module) is nn.Dropout:
        return Dropout(float(module.p))
    else:
        raise TypeError(
            f"module: {type(module).__name__} has no fastlstm equivalent (LSTM, LSTMCell, "
            "Linear, Embedding, Dropout, Sequential of them)"
        )
    out.load_state_dict(state)
    return out


def to_torch(model: Converted) -> _torch.nn.Module:
    """A torch copy of a fastlstm module: same configuration, same weights,
    same dtype.

    Supported: LSTM (not the ONNX-only cell options, which torch lacks),
    LSTMCell, Linear, Embedding, Dropout and a Sequential of them (as an
    ``nn.Sequential``; the reducers LastStep, MeanPool and MaxPool have no
    torch module and are a TypeError).
    """
    import torch  # optional dependency: imported when called

    nn = torch.nn
    if isinstance(model, Sequential):
        # a reducer in the Sequential is refused by the call on it
        return nn.Sequential(*(to_torch(m) for m in model))  # type: ignore[arg-type]
    if isinstance(model, Dropout):
        return nn.Dropout(model.p)
    if not isinstance(model, (LSTM, LSTMCell, Linear, Embedding)):
        raise TypeError(
            f"model: {type(model).__name__} has no torch equivalent (LSTM, LSTMCell, Linear, "
            "Embedding, Dropout, Sequential of them)"
        )
    dt = getattr(torch, np.dtype(model.dtype).name)
    out: Any
    if isinstance(model, LSTM):
        extra = [k for k in ("peepholes", "input_forget") if getattr(model, k)]
        extra += ["clip"] if model.clip is not None else []
        acts = model.activations
        if acts is not None and [a.lower() for a in acts] != ["sigmoid", "tanh", "tanh"] * (
            model.num_directions
        ):  # Sigmoid, Tanh, Tanh given explicitly are torch's cell
            extra.append("activations")
        if extra:
            raise ValueError(f"model: torch.nn.LSTM has no {', '.join(extra)}")
        out = nn.LSTM(
            model.input_size,
            model.hidden_size,
            num_layers=model.num_layers,
            bias=model.bias,
            batch_first=model.batch_first,
            dropout=float(model.dropout),
            bidirectional=model.bidirectional,
            proj_size=model.proj_size,
            dtype=dt,
        )
    elif isinstance(model, LSTMCell):
        out = nn.LSTMCell(model.input_size, model.hidden_size, bias=model.bias, dtype=dt)
    elif isinstance(model, Linear):
        out = nn.Linear(
            model.in_features, model.out_features, bias=model.bias is not None, dtype=dt
        )
    else:
        out = nn.Embedding(
            model.num_embeddings, model.embedding_dim, padding_idx=model.padding_idx, dtype=dt
        )
    out.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    return out
