"""Shared fixtures and helpers for the fastlstm test suite.

Fixtures
    rng                   a seeded numpy Generator (fresh per test)
    torch                 the torch module; skips with "torch not installed" when absent
    make_lstm_params      -> make_lstm_params(rng, input_size, hidden_size, ...)
    torch_lstm_from_params -> torch_lstm_from_params(torch, params, ...)
    run_torch_lstm        -> run_torch_lstm(torch, module, x, h0, c0, lengths)
    torch_forward_backward -> torch_forward_backward(torch, params, x, h0, c0, I, H, ...)

The helpers are also plain module-level functions; the fixtures just hand
them out so test files need not import conftest.
"""

import os

import numpy as np
import pytest

from helpers import random_array, torch_dtype


def make_lstm_params(
    rng,
    input_size,
    hidden_size,
    num_layers=1,
    bias=True,
    bidirectional=False,
    proj_size=0,
    dtype=np.float64,
    scale=None,
):
    """Random parameters under PyTorch's names, in ``state_dict()`` order.

    ``scale=None`` uses PyTorch's init bound 1/sqrt(hidden_size).
    """
    # Imported here so that conftest loads even when fastlstm itself is broken.
    from fastlstm.reference import parameter_shapes

    if scale is None:
        scale = 1.0 / np.sqrt(hidden_size)
    shapes = parameter_shapes(input_size, hidden_size, num_layers, bias, bidirectional, proj_size)
    return {name: random_array(rng, shape, dtype, scale) for name, shape in shapes.items()}


def torch_lstm_from_params(
    torch,
    params,
    input_size,
    hidden_size,
    num_layers=1,
    bidirectional=False,
    proj_size=0,
    batch_first=False,
):
    """A torch.nn.LSTM whose parameters are copies of the numpy ``params``.

    ``bias`` is inferred from the presence of ``bias_ih_l0``; the dtype from
    ``weight_ih_l0``.
    """
    dtype = torch_dtype(torch, params["weight_ih_l0"].dtype)
    module = torch.nn.LSTM(
        input_size,
        hidden_size,
        num_layers=num_layers,
        bias="bias_ih_l0" in params,
        batch_first=batch_first,
        bidirectional=bidirectional,
        proj_size=proj_size,
        dtype=dtype,
    )
    own = dict(module.named_parameters())
    if set(own) != set(params):
        raise ValueError(f"parameter names differ: torch {sorted(own)} vs {sorted(params)}")
    with torch.no_grad():
        for name, value in params.items():
            own[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module


def run_torch_lstm(torch, module, x, h0=None, c0=None, lengths=None):
    """Run ``module`` on torch tensors; with ``lengths`` go through
    pack_padded_sequence(enforce_sorted=False) and pad back to the full T
    (padding 0).  Returns (output, (h_n, c_n)) as tensors."""
    hx = None if h0 is None else (h0, c0)
    if lengths is None:
        return module(x, hx)
    rnn_utils = torch.nn.utils.rnn
    batch_first = module.batch_first
    T = x.shape[1] if batch_first else x.shape[0]
    packed = rnn_utils.pack_padded_sequence(
        x,
        torch.as_tensor(np.asarray(lengths), dtype=torch.int64),
        batch_first=batch_first,
        enforce_sorted=False,
    )
    packed_out, (h_n, c_n) = module(packed, hx)
    output, _ = rnn_utils.pad_packed_sequence(packed_out, batch_first=batch_first, total_length=T)
    return output, (h_n, c_n)


def torch_forward_backward(
    torch, params, x, h0, c0, *layer, lengths=None, d_output=None, d_hn=None, d_cn=None, **options
):
    """Forward and (if any upstream gradient is given) backward through torch,
    with the module ``torch_lstm_from_params(torch, params, *layer, **options)``
    (input_size, hidden_size and the layer options).

    All inputs are numpy arrays.  Returns a dict of numpy arrays: output,
    h_n, c_n, and with gradients dx, dh0, dc0 and grads (a dict keyed by
    parameter name).
    """
    module = torch_lstm_from_params(torch, params, *layer, **options)
    xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
    h0t = torch.from_numpy(np.ascontiguousarray(h0)).requires_grad_(True)
    c0t = torch.from_numpy(np.ascontiguousarray(c0)).requires_grad_(True)
    output, (h_n, c_n) = run_torch_lstm(torch, module, xt, h0t, c0t, lengths)
    result = {
        "output": output.detach().numpy(),
        "h_n": h_n.detach().numpy(),
        "c_n": c_n.detach().numpy(),
    }
    upstream = [(output, d_output), (h_n, d_hn), (c_n, d_cn)]
    upstream = [(t, d) for t, d in upstream if d is not None]
    if upstream:
        loss = sum((t * torch.from_numpy(np.ascontiguousarray(d))).sum() for t, d in upstream)
        loss.backward()
        result["dx"] = xt.grad.numpy()
        result["dh0"] = h0t.grad.numpy()
        result["dc0"] = c0t.grad.numpy()
        result["grads"] = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return result


def pytest_sessionstart(session):
    """Say where fastlstm is imported from (even with -q): CI checks that it
    is the installed package (site-packages), not the checkout."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    try:
        import fastlstm
    except ImportError as exc:  # the tests will say more
        reporter.write_line(f"fastlstm not importable: {exc}")
        return
    reporter.write_line(f"fastlstm imported from {os.path.dirname(fastlstm.__file__)}")


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture(scope="session")
def torch():
    try:
        import torch as torch_module
    except ImportError:
        pytest.skip("torch not installed")
    # tiny problems: torch's thread pool only adds latency on a busy 2-core box
    torch_module.set_num_threads(1)
    return torch_module


def _handed_out(helper):
    """A fixture, named like ``helper``, that hands it out."""
    return pytest.fixture(name=helper.__name__)(lambda: helper)


_make_lstm_params_fixture = _handed_out(make_lstm_params)
_torch_lstm_from_params_fixture = _handed_out(torch_lstm_from_params)
_run_torch_lstm_fixture = _handed_out(run_torch_lstm)
_torch_forward_backward_fixture = _handed_out(torch_forward_backward)
