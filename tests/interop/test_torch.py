"""fastlstm.from_torch / fastlstm.to_torch: both sides compute the same on
random inputs and weights, in float32 and float64 (dtype kept)."""

import numpy as np
import pytest

import fastlstm

from helpers import TOLERANCES

DTYPES = [np.float32, np.float64]


def randomize(torch, module):
    """Random parameters (not torch's init) so every gate block differs."""
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.6, 0.6)
    return module


def tnp(t):
    return t.detach().numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_layers": 2, "bidirectional": True},
        {"num_layers": 3, "batch_first": True, "dropout": 0.25},
        {"proj_size": 3, "bidirectional": True, "num_layers": 2},
        {"bias": False, "batch_first": True},
    ],
)
def test_lstm_both_ways(torch, rng, dtype, options):
    tdt = getattr(torch, np.dtype(dtype).name)
    module = randomize(torch, torch.nn.LSTM(4, 6, dtype=tdt, **options)).eval()
    ours = fastlstm.from_torch(module)
    assert isinstance(ours, fastlstm.LSTM) and ours.dtype == dtype
    for name in ("num_layers", "bidirectional", "batch_first", "proj_size", "bias", "dropout"):
        assert getattr(ours, name) == getattr(module, name), name
    bf = module.batch_first
    x = rng.standard_normal((3, 5, 4) if bf else (5, 3, 4)).astype(dtype)
    LD = module.num_layers * (2 if module.bidirectional else 1)
    h0 = rng.standard_normal((LD, 3, module.proj_size or 6)).astype(dtype)
    c0 = rng.standard_normal((LD, 3, 6)).astype(dtype)
    with torch.no_grad():
        want, (wh, wc) = module(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    got, (gh, gc) = ours(x, (h0, c0))
    tol = TOLERANCES["torch"][np.dtype(dtype)]
    for a, b in ((got, want), (gh, wh), (gc, wc)):
        np.testing.assert_allclose(a, tnp(b), **tol)
    back = fastlstm.to_torch(ours)
    assert type(back) is torch.nn.LSTM and back.weight_ih_l0.dtype == tdt
    for k, v in module.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    assert (back.batch_first, back.dropout, back.proj_size) == (
        bf,
        module.dropout,
        module.proj_size,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_lstm_cell_both_ways(torch, rng, dtype, bias):
    tdt = getattr(torch, np.dtype(dtype).name)
    cell = randomize(torch, torch.nn.LSTMCell(3, 5, bias=bias, dtype=tdt))
    ours = fastlstm.from_torch(cell)
    assert isinstance(ours, fastlstm.LSTMCell) and ours.dtype == dtype
    x = rng.standard_normal((4, 3)).astype(dtype)
    h = rng.standard_normal((4, 5)).astype(dtype)
    c = rng.standard_normal((4, 5)).astype(dtype)
    with torch.no_grad():
        wh, wc = cell(torch.from_numpy(x), (torch.from_numpy(h), torch.from_numpy(c)))
    gh, gc = ours(x, (h, c))
    tol = TOLERANCES["torch"][np.dtype(dtype)]
    np.testing.assert_allclose(gh, tnp(wh), **tol)
    np.testing.assert_allclose(gc, tnp(wc), **tol)
    back = fastlstm.to_torch(ours)
    assert type(back) is torch.nn.LSTMCell
    with torch.no_grad():
        bh, _ = back(torch.from_numpy(x), (torch.from_numpy(h), torch.from_numpy(c)))
    assert torch.equal(bh, wh)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequential_of_embedding_linear_dropout(torch, rng, dtype):
    tdt = getattr(torch, np.dtype(dtype).name)
    nn = torch.nn
    module = nn.Sequential(
        nn.Embedding(10, 4, padding_idx=0, dtype=tdt),
        nn.Dropout(0.2),
        nn.Linear(4, 6, dtype=tdt),
        nn.Linear(6, 2, bias=False, dtype=tdt),
    ).eval()
    randomize(torch, module)
    ours = fastlstm.from_torch(module)
    assert [type(la).__name__ for la in ours] == ["Embedding", "Dropout", "Linear", "Linear"]
    assert ours[0].padding_idx == 0 and ours[1].p == 0.2 and ours[3].bias is None
    tokens = rng.integers(0, 10, (3, 5))
    with torch.no_grad():
        want = module(torch.from_numpy(tokens))
    np.testing.assert_allclose(ours(tokens), tnp(want), **TOLERANCES["torch"][np.dtype(dtype)])
    back = fastlstm.to_torch(ours).eval()  # torch's modules start in training mode
    assert [type(m) for m in back] == [type(m) for m in module]
    with torch.no_grad():
        assert torch.equal(back(torch.from_numpy(tokens)), want)


def test_sequential_with_an_lstm(torch, rng):
    # torch's nn.Sequential cannot run an LSTM (it returns a tuple): the
    # fastlstm Sequential passes its sequence output on, as documented
    nn = torch.nn
    module = randomize(torch, nn.Sequential(nn.LSTM(3, 4, batch_first=True), nn.Linear(4, 2)))
    ours = fastlstm.from_torch(module)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    with torch.no_grad():
        y, _ = module[0](torch.from_numpy(x))
        want = module[1](y)
    np.testing.assert_allclose(ours(x), tnp(want), **TOLERANCES["torch"][np.dtype(np.float32)])


def test_unsupported_modules_and_dtypes_are_named(torch):
    nn = torch.nn
    with pytest.raises(TypeError, match="GRU"):
        fastlstm.from_torch(nn.GRU(2, 3))
    with pytest.raises(TypeError, match="float16"):
        fastlstm.from_torch(nn.Linear(2, 3).half())
    with pytest.raises(TypeError, match="module"):
        fastlstm.from_torch(np.zeros(3))
    with pytest.raises(ValueError, match="max_norm"):
        fastlstm.from_torch(nn.Embedding(4, 2, max_norm=1.0))
    with pytest.raises(TypeError, match="LastStep"):
        fastlstm.to_torch(fastlstm.Sequential(fastlstm.LSTM(2, 3), fastlstm.LastStep()))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"peepholes": True}, "peepholes"),
        ({"clip": 1.0}, "clip"),
        ({"input_forget": True}, "input_forget"),
        ({"activations": ["HardSigmoid", "Tanh", "Tanh"]}, "activations"),
        ({"peepholes": True, "clip": 2.0}, "peepholes, clip"),
    ],
)
def test_cell_options_have_no_torch_equivalent(torch, options, match):
    with pytest.raises(ValueError, match=f"torch.nn.LSTM has no {match}"):
        fastlstm.to_torch(fastlstm.LSTM(2, 3, **options))


def test_default_activations_given_explicitly_are_torchs_cell(torch, rng):
    lstm = fastlstm.LSTM(2, 3, bidirectional=True, activations=["sigmoid", "Tanh", "TANH"] * 2)
    module = fastlstm.to_torch(lstm).eval()
    x = rng.standard_normal((4, 2, 2)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x))[0]
    np.testing.assert_allclose(lstm(x)[0], tnp(want), **TOLERANCES["torch"][np.dtype(np.float32)])
