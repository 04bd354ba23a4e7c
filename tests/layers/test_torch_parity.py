"""fastlstm.LSTM against a real torch.nn.LSTM holding the same weights.

Weights travel both ways: fastlstm's state_dict() loaded into torch with
torch's own load_state_dict, and torch's state_dict() (converted to numpy, or
as tensors) loaded into fastlstm.  Forward results and every gradient
(torch autograd) must agree.  Lengths go through
pack_padded_sequence(enforce_sorted=False) on the torch side.
"""

import numpy as np
import pytest

import fastlstm

from helpers import (
    LayerProblem,
    assert_close,
    assert_results_close,
    layer_cases,
    layer_matrix,
    layer_options,
    torch_dtype,
)

T, B, I, H, P = 5, 4, 3, 5, 3
RAGGED = np.array([3, 1, 5, 2])  # unsorted; a length-1 and a full-length sequence


@pytest.fixture(autouse=True, scope="module")
def torch_single_thread():
    """These problems are tiny: torch's intra-op thread pool only costs time
    (a lot of it on a busy 2-core CI machine).  Restored afterwards."""
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def torch_module(torch, lstm):
    return torch.nn.LSTM(
        lstm.input_size,
        lstm.hidden_size,
        dtype=torch_dtype(torch, lstm.dtype),
        **layer_options(lstm),
    )


def torch_run(torch, run_torch_lstm, module, x, h0, c0, lengths, d_output, dh_n, dc_n):
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h0t = torch.from_numpy(h0.copy()).requires_grad_(True)
    c0t = torch.from_numpy(c0.copy()).requires_grad_(True)
    out, (h_n, c_n) = run_torch_lstm(torch, module, xt, h0t, c0t, lengths)
    loss = (
        (out * torch.from_numpy(d_output)).sum()
        + (h_n * torch.from_numpy(dh_n)).sum()
        + (c_n * torch.from_numpy(dc_n)).sum()
    )
    module.zero_grad()
    loss.backward()
    return dict(
        output=out.detach().numpy(),
        h_n=h_n.detach().numpy(),
        c_n=c_n.detach().numpy(),
        dx=xt.grad.numpy(),
        dh0=h0t.grad.numpy(),
        dc0=c0t.grad.numpy(),
        grads={k: p.grad.numpy() for k, p in module.named_parameters()},
    )


def compare(torch, run_torch_lstm, lstm, module, rng, lengths, dtype):
    shapes = LayerProblem(T, B, I, H, lengths, **layer_options(lstm))
    u = lambda shape, s=1.0: rng.uniform(-s, s, shape).astype(dtype)  # noqa: E731
    x = u(shapes.x_shape)
    h0, c0 = u(shapes.h_shape, 0.8), u(shapes.c_shape, 0.8)
    d_out = u(shapes.output_shape)
    dh_n, dc_n = u(shapes.h_shape), u(shapes.c_shape)
    if lengths is not None:
        # torch's padded output has no gradient path at padded steps either
        for b, n in enumerate(lengths):
            if lstm.batch_first:
                d_out[b, n:] = 0
            else:
                d_out[n:, b] = 0

    expected = torch_run(torch, run_torch_lstm, module, x, h0, c0, lengths, d_out, dh_n, dc_n)
    lstm.zero_grad()
    out, (h_n, c_n), backward = lstm.forward_train(x, (h0, c0), lengths=lengths)
    assert_results_close(dict(output=out, h_n=h_n, c_n=c_n), expected, dtype)
    dx, (dh0, dc0) = backward(d_out, (dh_n, dc_n))
    assert_results_close(dict(dx=dx, dh0=dh0, dc0=dc0, grads=lstm.grads), expected, dtype)
    # inference path too
    out2, (h_n2, c_n2) = lstm(x, (h0, c0), lengths=lengths)
    assert_results_close(dict(output=out2, h_n=h_n2, c_n=c_n2), expected, dtype, "inference ")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@layer_matrix(P)
def test_fastlstm_weights_into_torch(torch, rng, run_torch_lstm, options, ragged, dtype):
    seed = int(rng.integers(1 << 30))
    lstm = LayerProblem(T, B, I, H, **options).make_lstm(dtype, seed)
    module = torch_module(torch, lstm)
    sd = lstm.state_dict()
    assert list(sd) == list(module.state_dict())  # same keys, same order
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    compare(torch, run_torch_lstm, lstm, module, rng, RAGGED if ragged else None, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("as_tensors", [False, True], ids=["numpy", "tensors"])
@layer_cases(
    [
        (1, False, False, 0, True, False),
        (1, True, True, 0, False, True),
        (2, True, False, P, True, True),
        (2, False, True, P, False, False),
        (3, True, True, 0, True, True),
        (3, False, False, P, True, True),
    ]
)
def test_torch_weights_into_fastlstm(
    torch, rng, run_torch_lstm, options, ragged, as_tensors, dtype
):
    lstm = LayerProblem(T, B, I, H, **options).make_lstm(dtype, 0)
    torch.manual_seed(int(rng.integers(1 << 30)))
    module = torch_module(torch, lstm)
    sd = module.state_dict()
    if not as_tensors:
        sd = {k: v.detach().numpy().copy() for k, v in sd.items()}
    lstm.load_state_dict(sd)
    for k, v in module.state_dict().items():
        np.testing.assert_array_equal(getattr(lstm, k), v.numpy(), err_msg=k)
    compare(torch, run_torch_lstm, lstm, module, rng, RAGGED if ragged else None, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_default_init_matches_torch_bounds(dtype):
    """U(-1/sqrt(H), 1/sqrt(H)) for every parameter, as torch."""
    Hb = 16
    lstm = fastlstm.LSTM(3, Hb, num_layers=2, bidirectional=True, proj_size=4, dtype=dtype, seed=1)
    k = 1 / np.sqrt(Hb)
    for name, v in lstm.state_dict().items():
        assert v.dtype == np.dtype(dtype)
        assert np.all(np.abs(v) <= k), name
        assert np.abs(v).max() > 0.8 * k, name  # really spread over the interval


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_unbatched_matches_torch(torch, rng, dtype):
    lstm = fastlstm.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, dtype=dtype, seed=3)
    module = torch_module(torch, lstm)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    x = rng.uniform(-1, 1, (T, I)).astype(dtype)
    h0 = rng.uniform(-1, 1, (4, P)).astype(dtype)
    c0 = rng.uniform(-1, 1, (4, H)).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_(True)
    out_t, (h_t, c_t) = module(xt, (torch.from_numpy(h0), torch.from_numpy(c0)))
    w = rng.uniform(-1, 1, out_t.shape).astype(dtype)
    (out_t * torch.from_numpy(w)).sum().backward()
    out, (h_n, c_n), backward = lstm.forward_train(x, (h0, c0))
    assert_close(out, out_t.detach().numpy(), dtype, "output")
    assert_close(h_n, h_t.detach().numpy(), dtype, "h_n")
    assert_close(c_n, c_t.detach().numpy(), dtype, "c_n")
    dx, _ = backward(w)
    assert_close(dx, xt.grad.numpy(), dtype, "dx")
