"""fastlstm.LSTMCell against torch.nn.LSTMCell (same weights, both directions of
transfer), against central finite differences in float64, and its input
validation.

The loss for gradients is a random linear functional L = <W_h, h> + <W_c, c>,
so backward(dh=W_h, dc=W_c) must return dL/dx, dL/dh_prev, dL/dc_prev and
accumulate dL/dparam into cell.grads.
"""

import numpy as np
import pytest

import fastlstm

from helpers import assert_close, central_difference, torch_dtype

NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _torch_cell(torch, I, H, bias, dtype):
    torch.manual_seed(7)
    return torch.nn.LSTMCell(I, H, bias=bias, dtype=torch_dtype(torch, dtype))


def _pair(torch, I, H, bias, dtype, direction):
    """A fastlstm cell and a torch cell holding the same weights.

    direction "from_torch": torch's state_dict (tensors, passed directly) is
    loaded into fastlstm; "to_torch": fastlstm's state_dict (numpy arrays) is
    loaded into torch."""
    tcell = _torch_cell(torch, I, H, bias, dtype)
    cell = fastlstm.LSTMCell(I, H, bias=bias, dtype=dtype, seed=3)
    if direction == "from_torch":
        before = {k: v.copy() for k, v in cell.state_dict().items()}
        cell.load_state_dict(tcell.state_dict())
        for k, v in cell.state_dict().items():
            assert not np.array_equal(v, before[k])
    else:
        tcell.load_state_dict({k: torch.from_numpy(v) for k, v in cell.state_dict().items()})
    sd_t = tcell.state_dict()
    sd_f = cell.state_dict()
    assert list(sd_f) == list(sd_t) == list(NAMES if bias else NAMES[:2])
    for k in sd_f:
        assert sd_f[k].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(sd_f[k], sd_t[k].numpy())
    return cell, tcell


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("direction", ["from_torch", "to_torch"])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("hx_given", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dc_given", [True, False])
def test_cell_matches_torch(torch, rng, dtype, direction, batched, hx_given, bias, dc_given):
    B, I, H = 3, 5, 7
    cell, tcell = _pair(torch, I, H, bias, dtype, direction)
    lead = (B,) if batched else ()
    x = rng.standard_normal(lead + (I,)).astype(dtype)
    h0 = rng.standard_normal(lead + (H,)).astype(dtype) * 0.5
    c0 = rng.standard_normal(lead + (H,)).astype(dtype) * 0.5
    if not hx_given:
        h0 = np.zeros_like(h0)
        c0 = np.zeros_like(c0)
    W_h = rng.standard_normal(lead + (H,)).astype(dtype)
    W_c = rng.standard_normal(lead + (H,)).astype(dtype)

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h0t = torch.from_numpy(h0.copy()).requires_grad_(True)
    c0t = torch.from_numpy(c0.copy()).requires_grad_(True)
    ht, ct = tcell(xt, (h0t, c0t))
    loss = (ht * torch.from_numpy(W_h)).sum()
    if dc_given:
        loss = loss + (ct * torch.from_numpy(W_c)).sum()
    loss.backward()

    hx = (h0, c0) if hx_given else None
    h_inf, c_inf = cell(x, hx)
    h, c, backward = cell.forward_train(x, hx)
    for got, ref in ((h_inf, ht), (c_inf, ct), (h, ht), (c, ct)):
        assert_close(got, ref.detach().numpy(), dtype)
    np.testing.assert_array_equal(h, h_inf)
    np.testing.assert_array_equal(c, c_inf)

    dx, (dh_prev, dc_prev) = backward(W_h, W_c if dc_given else None)
    for got, ref in ((dx, xt.grad), (dh_prev, h0t.grad), (dc_prev, c0t.grad)):
        assert_close(got, ref.numpy(), dtype)
    tparams = dict(tcell.named_parameters())
    assert set(cell.grads) == set(tparams)
    for name, p in tparams.items():
        assert_close(cell.grads[name], p.grad.numpy(), dtype, name)


def test_cell_grads_accumulate_and_zero(torch, rng):
    cell, tcell = _pair(torch, 3, 4, True, np.float64, "from_torch")
    x = rng.standard_normal((2, 3))
    dh = rng.standard_normal((2, 4))
    for _ in range(2):
        _, _, bw = cell.forward_train(x)
        bw(dh)
        h, _ = tcell(torch.from_numpy(x))
        (h * torch.from_numpy(dh)).sum().backward()
    for name, p in tcell.named_parameters():
        np.testing.assert_allclose(cell.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-12)
    cell.zero_grad()
    assert all(not g.any() for g in cell.grads.values())


def test_cell_matches_reference(rng):
    """Independent of torch: fastlstm.reference.cell_forward."""
    from fastlstm import reference

    cell = fastlstm.LSTMCell(4, 6, dtype=np.float64, seed=1)
    x = rng.standard_normal((3, 4))
    h0, c0 = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
    h, c = cell(x, (h0, c0))
    out = reference.cell_forward(
        x, h0, c0, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    )
    np.testing.assert_allclose(h, out[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c, out[1], rtol=1e-12, atol=1e-14)


# ---- finite differences ----------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_finite_differences(rng, bias, batched):
    B, I, H, eps = 2, 3, 4, 1e-6
    lead = (B,) if batched else ()
    cell = fastlstm.LSTMCell(I, H, bias=bias, dtype=np.float64, seed=11)
    x = rng.standard_normal(lead + (I,))
    h0 = rng.standard_normal(lead + (H,))
    c0 = rng.standard_normal(lead + (H,))
    W_h = rng.standard_normal(lead + (H,))
    W_c = rng.standard_normal(lead + (H,))

    def loss():
        h, c = cell(x, (h0, c0))
        return float((h * W_h).sum() + (c * W_c).sum())

    _, _, bw = cell.forward_train(x, (h0, c0))
    dx, (dh0, dc0) = bw(W_h, W_c)
    targets = [("x", x, dx), ("h0", h0, dh0), ("c0", c0, dc0)]
    targets += [(n, p, cell.grads[n]) for n, p in cell.named_parameters()]
    for name, arr, grad in targets:
        num = np.empty_like(arr)
        for idx in np.ndindex(arr.shape):
            num[idx] = central_difference(loss, arr, idx, eps)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8, err_msg=name)


# ---- validation --------------------------------------------------------------


@pytest.fixture
def cell32():
    return fastlstm.LSTMCell(3, 4, dtype=np.float32, seed=0)


@pytest.mark.parametrize("shape", [(2, 5), (5,), (2, 3, 1), (0, 4), ()])
def test_cell_bad_x_shape(cell32, shape):
    with pytest.raises(ValueError, match="x"):
        cell32(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="x"):
        cell32.forward_train(np.zeros(shape, np.float32))


def test_cell_bad_dtypes(cell32):
    with pytest.raises(TypeError, match="x"):
        cell32(np.zeros((2, 3), np.float64))
    with pytest.raises(TypeError, match="x"):
        cell32(np.zeros((2, 3), np.int32))
    with pytest.raises(TypeError, match="h_prev"):
        cell32(np.zeros((2, 3), np.float32), (np.zeros((2, 4)), np.zeros((2, 4), np.float32)))
    with pytest.raises(TypeError, match="c_prev"):
        cell32(np.zeros((2, 3), np.float32), (np.zeros((2, 4), np.float32), np.zeros((2, 4))))
    with pytest.raises(TypeError):
        cell32("not an array")


@pytest.mark.parametrize(
    "hx",
    [
        np.zeros((2, 4), np.float32),
        [np.zeros((2, 4), np.float32)],
        (np.zeros((2, 4), np.float32),) * 3,
        5,
    ],
)
def test_cell_bad_hx_type(cell32, hx):
    with pytest.raises(TypeError, match="hx"):
        cell32(np.zeros((2, 3), np.float32), hx)


def test_cell_bad_state_shapes(cell32):
    x = np.zeros((2, 3), np.float32)
    ok = np.zeros((2, 4), np.float32)
    for bad in (
        np.zeros((3, 4), np.float32),
        np.zeros((2, 5), np.float32),
        np.zeros((4,), np.float32),
    ):
        with pytest.raises(ValueError, match="h_prev"):
            cell32(x, (bad, ok))
        with pytest.raises(ValueError, match="c_prev"):
            cell32(x, (ok, bad))
    # unbatched x with batched states
    with pytest.raises(ValueError, match="h_prev"):
        cell32(np.zeros(3, np.float32), (np.zeros((1, 4), np.float32), np.zeros(4, np.float32)))


def test_cell_backward_validation(cell32):
    x = np.ones((2, 3), np.float32)
    _, _, bw = cell32.forward_train(x)
    with pytest.raises(ValueError, match="dh"):
        bw(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="dh"):
        bw(np.zeros((2, 4), np.float64))
    with pytest.raises(ValueError, match="dc"):
        bw(np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32))
    # the failed calls did not consume the backward
    before = {k: v.copy() for k, v in cell32.grads.items()}
    assert all(not g.any() for g in before.values())
    bw(np.ones((2, 4), np.float32))
    with pytest.raises(RuntimeError):
        bw(np.ones((2, 4), np.float32))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_size=0, hidden_size=3),
        dict(input_size=3, hidden_size=0),
        dict(input_size=2.0, hidden_size=3),
        dict(input_size=True, hidden_size=3),
    ],
)
def test_cell_bad_constructor(kwargs):
    with pytest.raises(ValueError):
        fastlstm.LSTMCell(**kwargs)


def test_cell_bad_dtype_constructor():
    with pytest.raises(TypeError):
        fastlstm.LSTMCell(3, 4, dtype=np.float16)


def test_cell_load_state_dict_errors_name_key(cell32, torch):
    sd = cell32.state_dict()
    sd["weight_hh"] = np.zeros((16, 5), np.float32)
    with pytest.raises(ValueError, match="weight_hh"):
        cell32.load_state_dict(sd)
    sd = cell32.state_dict()
    del sd["bias_hh"]
    with pytest.raises(KeyError, match="bias_hh"):
        cell32.load_state_dict(sd)
