"""fastlstm.Sequential against the same model built from torch modules held
by index (torch.nn.ModuleList, run with pack_padded_sequence for ragged
lengths): state_dict keys, loading torch's state_dict directly, outputs and
every gradient; finite differences; the name contract with optimizers;
save/load/pickle; bad inputs."""

import copy
import io
import pickle
import zipfile

import numpy as np
import pytest

import fastlstm
from fastlstm.train.optim import Adam, parameter_pairs

from helpers import assert_close, central_difference, random_array, torch_dtype

DTYPES = [np.float32, np.float64]


def build_pair(torch, dtype, batch_first=False, bidirectional=False, seed=0):
    """Sequential(Embedding, LSTM, LastStep, Linear) and the torch model with
    the same modules by index, holding the same (torch-initialised) weights."""
    td = torch_dtype(torch, dtype)
    torch.manual_seed(seed)
    D = 2 if bidirectional else 1
    mods = torch.nn.ModuleList(
        [
            torch.nn.Embedding(11, 4, padding_idx=0, dtype=td),
            torch.nn.LSTM(
                4, 5, num_layers=2, batch_first=batch_first, bidirectional=bidirectional, dtype=td
            ),
            torch.nn.Identity(),  # the LastStep's index
            torch.nn.Linear(5 * D, 3, dtype=td),
        ]
    )
    ours = fastlstm.Sequential(
        fastlstm.Embedding(11, 4, padding_idx=0, dtype=dtype),
        fastlstm.LSTM(
            4, 5, num_layers=2, batch_first=batch_first, bidirectional=bidirectional, dtype=dtype
        ),
        fastlstm.LastStep(batch_first=batch_first, bidirectional=bidirectional),
        fastlstm.Linear(5 * D, 3, dtype=dtype),
    )
    ours.load_state_dict(mods.state_dict())  # torch tensors, directly
    return ours, mods


def torch_run(torch, mods, x, lengths, batch_first, bidirectional):
    """The torch model's forward: embedding, packed LSTM, last valid step
    (forward half) / step 0 (reverse half), linear."""
    rnn = torch.nn.utils.rnn
    emb = mods[0](torch.from_numpy(x))
    T = emb.shape[1] if batch_first else emb.shape[0]
    packed = rnn.pack_padded_sequence(
        emb, torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=False
    )
    out, _ = mods[1](packed)
    out, _ = rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    tm = out.transpose(0, 1) if batch_first else out
    b = torch.arange(tm.shape[1])
    last = tm[torch.from_numpy(lengths) - 1, b]
    if bidirectional:
        H = tm.shape[2] // 2
        last = torch.cat([last[:, :H], tm[0, :, H:]], dim=1)
    return mods[3](last)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_the_torch_model(torch, rng, dtype, batch_first, bidirectional):
    ours, mods = build_pair(torch, dtype, batch_first, bidirectional)
    assert list(ours.state_dict()) == list(mods.state_dict())
    assert list(ours.grads) == [n for n, _ in ours.named_parameters()] == list(mods.state_dict())
    T, B = 6, 4
    lengths = np.array([6, 2, 4, 1])
    x = rng.integers(1, 11, size=(B, T) if batch_first else (T, B))
    for b, n in enumerate(lengths):  # padding index past each length
        (x[b, n:] if batch_first else x[n:, b])[...] = 0
    dy = random_array(rng, (B, 3), dtype)

    y_inf = ours(x, lengths=lengths)
    y, backward = ours.forward_train(x, lengths=lengths)
    assert backward(dy) is None  # the input is indices

    yt = torch_run(torch, mods, x, lengths, batch_first, bidirectional)
    (yt * torch.from_numpy(dy)).sum().backward()
    assert_close(y_inf, yt.detach().numpy(), dtype, "y (inference)")
    assert_close(y, yt.detach().numpy(), dtype, "y")
    for name, p in mods.named_parameters():
        assert_close(ours.grads[name], p.grad.numpy(), dtype, name, scale=True)
    assert not ours.grads["0.weight"][0].any()  # padding row


def test_state_dict_goes_back_into_torch(torch, rng):
    ours, mods = build_pair(torch, np.float64)
    for _, p in ours.named_parameters():
        p += random_array(rng, p.shape)  # in place: the live arrays
    mods.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x, lengths = rng.integers(1, 11, size=(5, 2)), np.array([5, 3])
    assert_close(
        ours(x, lengths), torch_run(torch, mods, x, lengths, False, False).detach().numpy(),
        np.float64, "y",
    )  # fmt: skip


def test_finite_differences_float64(rng):
    model = fastlstm.Sequential(
        fastlstm.Linear(3, 4, dtype=np.float64, seed=1),
        fastlstm.LSTM(4, 3, batch_first=True, dtype=np.float64, seed=2),
        fastlstm.Dropout(0.3, seed=0),
        fastlstm.MaxPool(batch_first=True),
        fastlstm.Linear(3, 2, dtype=np.float64, seed=3),
    )
    model[2].p = 0.0  # deterministic for the differences
    x = random_array(rng, (2, 4, 3))
    lengths = np.array([4, 2])
    w = random_array(rng, (2, 2))

    def loss():
        return float((w * model(x, lengths)).sum())

    model.zero_grad()
    _, backward = model.forward_train(x, lengths)
    dx = backward(w)
    for index in [(0, 0, 0), (0, 3, 2), (1, 1, 1), (1, 3, 0)]:
        assert abs(dx[index] - central_difference(loss, x, index, 1e-6)) < 1e-7, index
    assert not dx[1, 2:].any()
    for name, p in model.named_parameters():
        for index in list(np.ndindex(p.shape))[:: max(1, p.size // 5)]:
            fd = central_difference(loss, p, index, 1e-6)
            assert abs(model.grads[name][index] - fd) < 1e-7, (name, index)


def test_live_parameters_and_gradients_for_an_optimizer(rng):
    model = fastlstm.Sequential(
        fastlstm.LSTM(3, 4, seed=0), fastlstm.MeanPool(), fastlstm.Linear(4, 1, seed=1)
    )
    for name, p in model.named_parameters():
        i, _, own = name.partition(".")
        assert p is getattr(model[int(i)], own)
        assert model.grads[name] is model[int(i)].grads[own]
    x = random_array(rng, (5, 2, 3), np.float32)
    before = model(x)
    opt = Adam(parameter_pairs(model), lr=0.1)
    y, backward = model.forward_train(x)
    backward(np.ones_like(y))
    assert all(g.any() for g in model.grads.values())
    opt.step()
    assert not np.array_equal(model(x), before)  # the layers see the step
    model.zero_grad()
    assert not any(g.any() for g in model.grads.values())


@pytest.mark.parametrize("dtype", DTYPES)
def test_save_load_pickle_round_trips(rng, tmp_path, dtype):
    model = fastlstm.Sequential(
        fastlstm.Embedding(7, 3, padding_idx=2, dtype=dtype, seed=0),
        fastlstm.LSTM(3, 4, bidirectional=True, batch_first=True, dtype=dtype, seed=1),
        fastlstm.Dropout(0.5),
        fastlstm.LastStep(batch_first=True, bidirectional=True),
        fastlstm.Linear(8, 2, bias=False, dtype=dtype, seed=2),
    )
    x, lengths = rng.integers(0, 7, size=(3, 5)), np.array([5, 1, 3])
    y = model(x, lengths)
    fastlstm.save(tmp_path / "m.npz", model)
    buf = io.BytesIO()
    fastlstm.save(buf, model)
    buf.seek(0)
    for copied in (
        fastlstm.load(tmp_path / "m.npz"),
        fastlstm.load(buf),
        pickle.loads(pickle.dumps(model)),
        copy.deepcopy(model),
    ):
        assert repr(copied) == repr(model)
        sd = copied.state_dict()
        assert list(sd) == list(model.state_dict())
        for k, v in model.state_dict().items():
            assert sd[k].dtype == v.dtype
            np.testing.assert_array_equal(sd[k], v)
        np.testing.assert_array_equal(copied(x, lengths), y)


def test_load_checks_the_layers_against_the_arrays(tmp_path):
    model = fastlstm.Sequential(fastlstm.Linear(3, 4), fastlstm.Linear(4, 2))
    fastlstm.save(tmp_path / "m.npz", model)
    # a file whose arrays do not match its layers: 1.weight swapped for another shape
    with zipfile.ZipFile(tmp_path / "m.npz") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    other = io.BytesIO()
    np.save(other, np.zeros((2, 5), np.float32))
    members["1.weight.npy"] = other.getvalue()
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    with pytest.raises(ValueError, match="1.weight"):
        fastlstm.load(tmp_path / "bad.npz")
    with pytest.raises(TypeError, match="cannot write Sequential as a Sequential's layer"):
        fastlstm.save(tmp_path / "n.npz", fastlstm.Sequential(model))


def test_load_state_dict_errors_change_nothing(rng):
    model = fastlstm.Sequential(fastlstm.Linear(3, 4, seed=0), fastlstm.Linear(4, 2, seed=1))
    saved = model.state_dict()
    good = {k: v + 1 for k, v in saved.items()}
    missing = dict(good)
    del missing["1.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['1.bias'\]"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['2.weight'\]"):
        model.load_state_dict({**good, "2.weight": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match=r"bias: expected shape \(2,\)"):
        model.load_state_dict({**good, "1.bias": np.zeros(3, np.float32)})
    with pytest.raises(TypeError, match="expected dtype float32"):
        model.load_state_dict({**good, "1.bias": np.zeros(2)})
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, saved[k])  # layer 0 was not half-loaded
    model.load_state_dict(missing, strict=False)
    np.testing.assert_array_equal(model[0].weight, good["0.weight"])


def test_bad_construction_and_inputs(rng):
    with pytest.raises(TypeError, match="layers' dtypes differ"):
        fastlstm.Sequential(fastlstm.Linear(2, 2), fastlstm.Linear(2, 2, dtype=np.float64))
    with pytest.raises(TypeError, match="layer 0 .LSTMCell. is not a sequence layer"):
        fastlstm.Sequential(fastlstm.LSTMCell(2, 2))
    with pytest.raises(TypeError, match="layer 1 .str. is not a sequence layer"):
        fastlstm.Sequential(fastlstm.Linear(2, 2), "relu")
    with pytest.raises(ValueError, match="batch_first=True, the LSTM before it batch_first=False"):
        fastlstm.Sequential(fastlstm.LSTM(2, 2), fastlstm.MeanPool(batch_first=True))
    with pytest.raises(ValueError, match="bidirectional=False, the LSTM before it"):
        fastlstm.Sequential(fastlstm.LSTM(2, 2, bidirectional=True), fastlstm.LastStep())
    model = fastlstm.Sequential(fastlstm.LSTM(2, 3), fastlstm.LastStep())
    model[0].batch_first = True  # changed afterwards: caught at the call
    with pytest.raises(ValueError, match="batch_first"):
        model(np.zeros((3, 2, 2), np.float32))
    model[0].batch_first = False
    with pytest.raises(ValueError, match="lengths: given, but no layer"):
        fastlstm.Sequential(fastlstm.Linear(2, 2))(np.zeros((1, 2), np.float32), [1])
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        model(np.zeros((3, 2, 2)))
    x = random_array(rng, (3, 2, 2), np.float32)
    y, backward = model.forward_train(x, lengths=[3, 1])
    assert y.shape == (2, 3)
    with pytest.raises(ValueError, match=r"dy: expected the output's shape \(2, 3\)"):
        backward(np.zeros((3, 2), np.float32))
    dx = backward(np.ones((2, 3), np.float32))
    assert dx.shape == x.shape and not dx[1:, 1].any()
    with pytest.raises(RuntimeError, match="already called"):
        backward(np.ones((2, 3), np.float32))
