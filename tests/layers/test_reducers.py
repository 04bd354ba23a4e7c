"""LastStep, MeanPool, MaxPool against the same reductions written in torch
(autograd for the gradients) and finite differences; the bidirectional
LastStep against torch.nn.LSTM's h_n; fastlstm.Dropout."""

import copy
import pickle

import numpy as np
import pytest

import fastlstm

from helpers import assert_close, central_difference, random_array, torch_dtype

DTYPES = [np.float32, np.float64]
REDUCERS = ["LastStep", "MeanPool", "MaxPool"]


def torch_reduce(torch, name, x, lengths):
    """The reduction over a time-major (T, B, F) tensor, in torch."""
    T, B, _ = x.shape
    lens = torch.as_tensor(lengths)
    if name == "LastStep":
        return x[lens - 1, torch.arange(B)]
    valid = (torch.arange(T)[:, None] < lens[None, :])[:, :, None]
    if name == "MeanPool":
        return (x * valid).sum(0) / lens[:, None].to(x.dtype)
    return x.masked_fill(~valid, float("-inf")).max(0).values


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", REDUCERS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("ragged", [False, True])
def test_forward_and_gradient_match_torch(torch, rng, dtype, name, batch_first, ragged):
    T, B, F = 5, 4, 3
    layer = getattr(fastlstm, name)(batch_first=batch_first)
    lengths = np.array([5, 2, 1, 4]) if ragged else None
    x = random_array(rng, (B, T, F) if batch_first else (T, B, F), dtype)
    dy = random_array(rng, (B, F), dtype)
    y_inf = layer(x, lengths)
    y, backward = layer.forward_train(x, lengths=lengths)
    dx = backward(dy)

    xt = torch.from_numpy(x).requires_grad_(True)
    tm = xt.transpose(0, 1) if batch_first else xt
    yt = torch_reduce(torch, name, tm, np.full(B, T) if lengths is None else lengths)
    (yt * torch.from_numpy(dy)).sum().backward()
    assert_close(y_inf, yt.detach().numpy(), dtype, "y (inference)")
    assert_close(y, yt.detach().numpy(), dtype, "y")
    assert_close(dx, xt.grad.numpy(), dtype, "dx")
    if ragged:  # nothing flows to the padding
        for b, n in enumerate(lengths):
            pad = dx[b, n:] if batch_first else dx[n:, b]
            assert not pad.any()


@pytest.mark.parametrize("name", REDUCERS)
def test_finite_differences_float64(rng, name):
    layer = getattr(fastlstm, name)()
    lengths = np.array([3, 1, 2])
    x = random_array(rng, (3, 3, 2))
    w = random_array(rng, (3, 2))

    def loss():
        return float((w * layer(x, lengths)).sum())

    _, backward = layer.forward_train(x, lengths)
    dx = backward(w)
    for index in np.ndindex(x.shape):
        fd = central_difference(loss, x, index, 1e-6)
        assert abs(dx[index] - fd) < 1e-8, index


@pytest.mark.parametrize("name", REDUCERS)
def test_unbatched(rng, name):
    layer = getattr(fastlstm, name)()
    x = random_array(rng, (4, 3))
    y, backward = layer.forward_train(x)
    batched, batched_backward = layer.forward_train(x[:, None, :])
    np.testing.assert_array_equal(y, batched[0])
    np.testing.assert_array_equal(backward(np.ones(3)), batched_backward(np.ones((1, 3)))[:, 0])
    with pytest.raises(ValueError, match="lengths: not supported with unbatched"):
        layer(x, lengths=[4])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_bidirectional_last_step_is_torch_h_n(torch, rng, dtype, batch_first):
    # forward half at each last valid step, reverse half at step 0: torch's
    # h_n of the last layer, (h_n[-2], h_n[-1]), for a packed ragged batch
    lstm = fastlstm.LSTM(
        3, 4, num_layers=2, bidirectional=True, batch_first=batch_first, dtype=dtype, seed=0
    )
    T, B = 6, 3
    lengths = np.array([2, 6, 4])
    x = random_array(rng, (B, T, 3) if batch_first else (T, B, 3), dtype)
    t = torch.nn.LSTM(
        3,
        4,
        num_layers=2,
        bidirectional=True,
        batch_first=batch_first,
        dtype=torch_dtype(torch, dtype),
    )
    t.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x),
        torch.from_numpy(lengths),
        batch_first=batch_first,
        enforce_sorted=False,
    )
    _, (h_n, _) = t(packed)
    expected = torch.cat([h_n[-2], h_n[-1]], dim=1).detach().numpy()
    out, _ = lstm(x, lengths=lengths)
    got = fastlstm.LastStep(batch_first=batch_first, bidirectional=True)(out, lengths)
    assert_close(got, expected, dtype, "last step")


def test_bidirectional_last_step_gradient(rng):
    layer = fastlstm.LastStep(bidirectional=True)
    x = random_array(rng, (3, 2, 4))
    lengths = np.array([1, 3])
    _, backward = layer.forward_train(x, lengths)
    dx = backward(np.ones((2, 4)))
    expected = np.zeros_like(x)
    expected[0, 0, :] = 1  # length 1: step 0 is the last one for both halves
    expected[2, 1, :2] = 1
    expected[0, 1, 2:] = 1
    np.testing.assert_array_equal(dx, expected)
    with pytest.raises(ValueError, match="even feature count"):
        layer(random_array(rng, (3, 2, 5)))


def test_max_pool_gradient_to_the_first_maximum():
    x = np.array([[[1.0]], [[3.0]], [[3.0]], [[9.0]]])  # (T=4, B=1, F=1)
    y, backward = fastlstm.MaxPool().forward_train(x, lengths=[3])
    assert y[0, 0] == 3.0
    np.testing.assert_array_equal(backward(np.ones((1, 1)))[:, 0, 0], [0, 1, 0, 0])


def test_bad_inputs(rng):
    layer = fastlstm.MeanPool()
    x = random_array(rng, (4, 2, 3))
    with pytest.raises(ValueError, match=r"lengths: expected shape \(2,\)"):
        layer(x, [1, 2, 3])
    with pytest.raises(ValueError, match=r"lengths: every length must be in \[1, T=4\]"):
        layer(x, [0, 2])
    with pytest.raises(ValueError, match=r"lengths: every length must be in \[1, T=4\]"):
        layer(x, [5, 2])
    with pytest.raises(TypeError, match="lengths: expected an integer array"):
        layer(x, [1.5, 2])
    with pytest.raises(ValueError, match="x: expected a 3-D array"):
        layer(x[0, 0])
    with pytest.raises(TypeError, match="x: expected a float32 or float64 array, got int64"):
        layer(np.zeros((4, 2, 3), np.int64))
    with pytest.raises(TypeError, match="batch_first must be True or False"):
        fastlstm.MaxPool(batch_first=1)
    y, backward = layer.forward_train(x)
    with pytest.raises(TypeError, match="dy: expected dtype float64"):
        backward(y.astype(np.float32))
    with pytest.raises(ValueError, match=r"dy: expected the output's shape \(2, 3\)"):
        backward(y[None])
    backward(y)
    with pytest.raises(RuntimeError, match="already called"):
        backward(y)
    assert layer.state_dict() == {} and layer.grads == {} and layer.named_parameters() == []
    with pytest.raises(KeyError, match="no parameters"):
        layer.load_state_dict({"weight": np.zeros(2)})


def test_reducers_pickle_and_save(tmp_path):
    for layer in (fastlstm.LastStep(True, True), fastlstm.MeanPool(True), fastlstm.MaxPool()):
        for copied in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
            assert repr(copied) == repr(layer)
        fastlstm.save(tmp_path / "r.npz", layer)
        assert repr(fastlstm.load(tmp_path / "r.npz")) == repr(layer)


# ---- Dropout ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout(rng, dtype):
    layer = fastlstm.Dropout(0.25, seed=3)
    x = random_array(rng, (200, 50), dtype) + 2  # no zeros of its own
    np.testing.assert_array_equal(layer(x), x)  # inference: identity
    y, backward = layer.forward_train(x)
    assert y.dtype == dtype
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], x[kept] / dtype(0.75), rtol=1e-6)
    dy = random_array(rng, x.shape, dtype)
    dx = backward(dy)
    np.testing.assert_array_equal(dx == 0, ~kept)
    np.testing.assert_allclose(dx[kept], dy[kept] / dtype(0.75), rtol=1e-6)
    with pytest.raises(RuntimeError, match="already called"):
        backward(dy)
    # its own generator: the same seed gives the same masks
    y_again, _ = fastlstm.Dropout(0.25, seed=3).forward_train(x)
    np.testing.assert_array_equal(y_again, y)
    # pickling carries the generator
    copied = pickle.loads(pickle.dumps(layer))
    np.testing.assert_array_equal(copied.forward_train(x)[0], layer.forward_train(x)[0])


def test_dropout_arguments():
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match="p must be in"):
            fastlstm.Dropout(bad)
    with pytest.raises(TypeError, match="p must be a number"):
        fastlstm.Dropout("0.5")
    layer = fastlstm.Dropout(0.0)
    x = np.ones((2, 2), np.float32)
    y, backward = layer.forward_train(x)
    np.testing.assert_array_equal(y, x)
    with pytest.raises(TypeError, match="x: expected a float32 or float64 array"):
        layer(np.ones(3, np.int32))
