"""fastlstm.Embedding against torch.nn.Embedding: lookup, gradients with
repeated indices, padding_idx, initialisation; bad indices."""

import copy
import pickle

import numpy as np
import pytest

import fastlstm

from helpers import assert_close, random_array, torch_dtype

DTYPES = [np.float32, np.float64]


def torch_embedding(torch, layer):
    t = torch.nn.Embedding(
        layer.num_embeddings,
        layer.embedding_dim,
        padding_idx=layer.padding_idx,
        dtype=torch_dtype(torch, layer.dtype),
    )
    t.load_state_dict({"weight": torch.from_numpy(layer.weight.copy())})
    return t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 0, 3, -2])
@pytest.mark.parametrize("shape", [(), (7,), (4, 3), (2, 3, 2)])
def test_lookup_and_gradient_match_torch(torch, rng, dtype, padding_idx, shape):
    layer = fastlstm.Embedding(6, 4, padding_idx=padding_idx, dtype=dtype, seed=0)
    x = rng.integers(0, 6, size=shape)  # repeats, and padding indices, likely
    if x.size:
        x.flat[0] = layer.padding_idx if padding_idx is not None else 1
    dy = random_array(rng, shape + (4,), dtype)
    y_inf = layer(x)
    y, backward = layer.forward_train(x)
    assert backward(dy) is None

    t = torch_embedding(torch, layer)
    yt = t(torch.from_numpy(x))
    (yt * torch.from_numpy(dy)).sum().backward()
    assert_close(y_inf, yt.detach().numpy(), dtype, "y (inference)")
    assert_close(y, yt.detach().numpy(), dtype, "y")
    assert_close(layer.grads["weight"], t.weight.grad.numpy(), dtype, "grad", scale=True)
    if padding_idx is not None:
        assert not layer.grads["weight"][layer.padding_idx].any()


def test_padding_idx_as_torch(torch):
    layer = fastlstm.Embedding(5, 3, padding_idx=-1, seed=0)
    t = torch.nn.Embedding(5, 3, padding_idx=-1)
    assert layer.padding_idx == t.padding_idx == 4
    assert not layer.weight[4].any()  # zero at init, as torch's
    assert not t.weight[4].detach().numpy().any()
    # the row is an ordinary one for lookup: set it, it is returned
    layer.weight[4] = 1.0
    np.testing.assert_array_equal(layer(np.array([4])), np.ones((1, 3), np.float32))


def test_initialisation_standard_normal():
    layer = fastlstm.Embedding(500, 200, dtype=np.float64, seed=5)
    w = layer.weight
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01
    np.testing.assert_array_equal(fastlstm.Embedding(500, 200, dtype=np.float64, seed=5).weight, w)


def test_bad_indices_and_arguments():
    layer = fastlstm.Embedding(5, 3, seed=0)
    for bad in (np.array([0, 5]), np.array([[-1, 2]]), np.array(7)):
        with pytest.raises(ValueError, match=r"x: indices must be in \[0, num_embeddings=5\)"):
            layer(bad)
        with pytest.raises(ValueError, match="x: indices"):
            layer.forward_train(bad)
    for bad in (np.array([0.0, 1.0]), np.array([True, False])):
        with pytest.raises(TypeError, match="x: expected an integer array"):
            layer(bad)
    with pytest.raises(TypeError, match="x: expected an integer array"):
        layer("abc")
    with pytest.raises(ValueError, match="padding_idx must be in"):
        fastlstm.Embedding(5, 3, padding_idx=5)
    with pytest.raises(ValueError, match="padding_idx must be in"):
        fastlstm.Embedding(5, 3, padding_idx=-6)
    with pytest.raises(TypeError, match="padding_idx must be an integer"):
        fastlstm.Embedding(5, 3, padding_idx=1.0)
    with pytest.raises(ValueError, match="num_embeddings"):
        fastlstm.Embedding(0, 3)
    with pytest.raises(ValueError, match="embedding_dim"):
        fastlstm.Embedding(3, 0)
    with pytest.raises(TypeError, match="dtype"):
        fastlstm.Embedding(3, 2, dtype=np.int64)


def test_backward_once_and_checks(rng):
    layer = fastlstm.Embedding(5, 3, dtype=np.float64, seed=0)
    y, backward = layer.forward_train(np.array([[1, 2], [2, 4]]))
    with pytest.raises(ValueError, match=r"dy: expected the output's shape \(2, 2, 3\)"):
        backward(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="dy: expected dtype float64"):
        backward(np.zeros(y.shape, np.float32))
    backward(np.ones(y.shape))
    expected = np.zeros((5, 3))
    expected[1], expected[2], expected[4] = 1, 2, 1
    np.testing.assert_array_equal(layer.grads["weight"], expected)
    with pytest.raises(RuntimeError, match="already called"):
        backward(np.ones(y.shape))


def test_state_dict_pickle_save(torch, tmp_path):
    t = torch.nn.Embedding(6, 2, padding_idx=1)
    layer = fastlstm.Embedding(6, 2, padding_idx=1)
    layer.load_state_dict(t.state_dict())
    x = np.array([0, 1, 5])
    np.testing.assert_array_equal(layer(x), t(torch.from_numpy(x)).detach().numpy())
    for copied in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert copied.padding_idx == 1
        np.testing.assert_array_equal(copied(x), layer(x))
    fastlstm.save(tmp_path / "e.npz", layer)
    loaded = fastlstm.load(tmp_path / "e.npz")
    assert isinstance(loaded, fastlstm.Embedding) and loaded.padding_idx == 1
    np.testing.assert_array_equal(loaded.weight, layer.weight)
    assert loaded.weight.dtype == np.float32
