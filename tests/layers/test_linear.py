"""fastlstm.Linear against torch.nn.Linear (forward, every gradient) and
finite differences; torch's initialisation; the layer protocol."""

import copy
import io
import pickle

import numpy as np
import pytest

import fastlstm

from helpers import assert_close, central_difference, random_array, torch_dtype

DTYPES = [np.float32, np.float64]


def torch_linear(torch, layer):
    t = torch.nn.Linear(
        layer.in_features,
        layer.out_features,
        bias=layer.bias is not None,
        dtype=torch_dtype(torch, layer.dtype),
    )
    t.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lead", [(), (4,), (3, 2), (2, 3, 2), (0, 2)])
def test_forward_and_gradients_match_torch(torch, rng, dtype, bias, lead):
    layer = fastlstm.Linear(5, 3, bias=bias, dtype=dtype, seed=1)
    x = random_array(rng, lead + (5,), dtype)
    dy = random_array(rng, lead + (3,), dtype)
    y_inf = layer(x)
    y, backward = layer.forward_train(x)
    dx = backward(dy)

    t = torch_linear(torch, layer)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = t(xt)
    (yt * torch.from_numpy(dy)).sum().backward()
    assert_close(y_inf, yt.detach().numpy(), dtype, "y (inference)")
    assert_close(y, yt.detach().numpy(), dtype, "y")
    assert_close(dx, xt.grad.numpy(), dtype, "dx")
    assert set(layer.grads) == {n for n, _ in t.named_parameters()}
    for name, p in t.named_parameters():
        assert_close(layer.grads[name], p.grad.numpy(), dtype, name, scale=True)


def test_gradients_accumulate_over_backwards(rng):
    layer = fastlstm.Linear(4, 2, dtype=np.float64, seed=0)
    x = random_array(rng, (3, 4))
    dy = random_array(rng, (3, 2))
    layer.forward_train(x)[1](dy)
    once = {k: v.copy() for k, v in layer.grads.items()}
    layer.forward_train(x)[1](dy)
    for k in once:
        np.testing.assert_allclose(layer.grads[k], 2 * once[k], rtol=1e-14)
    layer.zero_grad()
    assert all(not g.any() for g in layer.grads.values())


def test_finite_differences_float64(rng):
    layer = fastlstm.Linear(4, 3, dtype=np.float64, seed=2)
    x = random_array(rng, (2, 3, 4))
    w = random_array(rng, (2, 3, 3))  # loss = sum(w * y)

    def loss():
        return float((w * layer(x)).sum())

    _, backward = layer.forward_train(x)
    dx = backward(w)
    for index in [(0, 0, 0), (1, 2, 3), (0, 1, 2)]:
        fd = central_difference(loss, x, index, 1e-6)
        assert abs(dx[index] - fd) < 1e-8, index
    for name in ("weight", "bias"):
        p = getattr(layer, name)
        for index in np.ndindex(p.shape):
            fd = central_difference(loss, p, index, 1e-6)
            assert abs(layer.grads[name][index] - fd) < 1e-8, (name, index)


def test_initialisation_as_torch():
    # torch: kaiming_uniform(a=sqrt(5)) -> U(-1/sqrt(in), 1/sqrt(in)) for the
    # weight, and the same bound for the bias
    layer = fastlstm.Linear(400, 300, seed=3)
    bound = 1 / np.sqrt(400)
    for name, p in layer.named_parameters():
        assert p.dtype == np.float32
        assert np.abs(p).max() <= bound, name
        assert np.abs(p).max() > 0.98 * bound, name
    w = layer.weight.astype(np.float64)
    assert abs(w.mean()) < 0.01 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound
    # same seed, same parameters; another seed, others
    again = fastlstm.Linear(400, 300, seed=3)
    np.testing.assert_array_equal(again.weight, layer.weight)
    assert not np.array_equal(fastlstm.Linear(400, 300, seed=4).weight, layer.weight)


def test_torch_init_has_the_same_bound(torch):
    torch.manual_seed(0)
    t = torch.nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    for _, p in t.named_parameters():
        largest = float(p.detach().abs().max())
        assert 0.98 * bound < largest <= bound


def test_backward_uses_the_weights_its_forward_ran_with(rng):
    layer = fastlstm.Linear(3, 2, dtype=np.float64, seed=0)
    x, dy = random_array(rng, (4, 3)), random_array(rng, (4, 2))
    w = layer.weight.copy()
    _, backward = layer.forward_train(x)
    layer.weight *= 3.0  # an optimizer step in place, before backward
    dx = backward(dy)
    np.testing.assert_allclose(dx, dy @ w, rtol=1e-13)


def test_backward_once_and_its_checks(rng):
    layer = fastlstm.Linear(3, 2, seed=0)
    x = random_array(rng, (4, 3), np.float32)
    _, backward = layer.forward_train(x)
    with pytest.raises(ValueError, match=r"dy: expected the output's shape \(4, 2\)"):
        backward(np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match="dy: expected dtype float32"):
        backward(np.zeros((4, 2), np.float64))
    backward(np.zeros((4, 2), np.float32))  # a bad dy did not use the call up
    with pytest.raises(RuntimeError, match="already called"):
        backward(np.zeros((4, 2), np.float32))


def test_bad_arguments():
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="in_features"):
            fastlstm.Linear(bad, 2)
        with pytest.raises(ValueError, match="out_features"):
            fastlstm.Linear(2, bad)
    with pytest.raises(TypeError, match="bias"):
        fastlstm.Linear(2, 2, bias=1)
    with pytest.raises(TypeError, match="dtype"):
        fastlstm.Linear(2, 2, dtype=np.float16)
    layer = fastlstm.Linear(3, 2)
    with pytest.raises(
        TypeError, match=r"x: expected dtype float32 .* float64 with shape \(4, 3\)"
    ):
        layer(np.zeros((4, 3)))
    with pytest.raises(
        ValueError, match=r"x: expected \(\.\.\., in_features=3\), got shape \(4, 2\)"
    ):
        layer(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="x: expected"):
        layer(np.float32(1.0))
    with pytest.raises(AttributeError, match="fixed"):
        layer.in_features = 4
    with pytest.raises(ValueError, match=r"weight: expected shape \(2, 3\)"):
        layer.weight = np.zeros((3, 2), np.float32)
    with pytest.raises(TypeError, match="weight: expected dtype float32"):
        layer.weight = np.zeros((2, 3))


def test_non_contiguous_input(rng):
    layer = fastlstm.Linear(3, 2, dtype=np.float64, seed=0)
    x = random_array(rng, (3, 5))
    np.testing.assert_allclose(layer(x.T), x.T @ layer.weight.T + layer.bias, rtol=1e-13)


def test_state_dict_from_torch_and_pickle_and_save(torch, rng, tmp_path):
    t = torch.nn.Linear(4, 3, dtype=torch.float64)
    layer = fastlstm.Linear(4, 3, dtype=np.float64)
    layer.load_state_dict(t.state_dict())  # tensors directly
    x = random_array(rng, (2, 4))
    assert_close(layer(x), t(torch.from_numpy(x)).detach().numpy(), np.float64, "y")
    with pytest.raises(TypeError, match="float64"):
        fastlstm.Linear(4, 3).load_state_dict(t.state_dict())
    _, backward = layer.forward_train(x)
    backward(np.ones((2, 3)))
    for copied in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        np.testing.assert_array_equal(copied(x), layer(x))
        for k in layer.grads:
            np.testing.assert_array_equal(copied.grads[k], layer.grads[k])
    path = tmp_path / "linear.npz"
    fastlstm.save(path, layer)
    loaded = fastlstm.load(path)
    assert isinstance(loaded, fastlstm.Linear) and loaded.dtype == np.float64
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
    buf = io.BytesIO()
    fastlstm.save(buf, fastlstm.Linear(2, 5, bias=False, seed=1))
    buf.seek(0)
    loaded = fastlstm.load(buf)
    assert loaded.bias is None and list(loaded.state_dict()) == ["weight"]
    assert fastlstm.Linear(2, 5).bias.shape == (5,)
