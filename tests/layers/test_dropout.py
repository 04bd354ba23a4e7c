"""Dropout between layers in LSTM.forward_train (never in inference).

References used:
* a construction that makes every dropped activation visible as an exact zero
  in the output (gives the keep rate and the masks without knowing how the
  layer draws them), then fastlstm.reference with those masks;
* the masks re-drawn from a generator with the layer's seed (init draws, then
  ``random((rows, D*H_out)) < keep`` per layer on the packed rows), then
  fastlstm.reference.lstm_forward / lstm_backward with those masks;
* central finite differences in float64 of forward_train with the layer
  re-created from the same seed at every evaluation (same masks each time).
"""

import numpy as np
import pytest

import fastlstm
from fastlstm import reference

from helpers import assert_close, central_difference


def _loss_weights(rng, out_shape, LD, B, Ho, H, unbatched=False):
    st = (LD, Ho) if unbatched else (LD, B, Ho)
    sc = (LD, H) if unbatched else (LD, B, H)
    return rng.standard_normal(out_shape), rng.standard_normal(st), rng.standard_normal(sc)


# ---- reproducibility ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_seed_same_result(rng, dtype):
    kw = dict(num_layers=3, dropout=0.4, bidirectional=True, proj_size=2, dtype=dtype)
    a = fastlstm.LSTM(3, 4, seed=123, **kw)
    b = fastlstm.LSTM(3, 4, seed=123, **kw)
    x = rng.standard_normal((6, 2, 3)).astype(dtype)
    lengths = [6, 3]
    for _ in range(2):  # and the second call of each is again the same
        oa, (ha, ca), bwa = a.forward_train(x, lengths=lengths)
        ob, (hb, cb), bwb = b.forward_train(x, lengths=lengths)
        assert np.array_equal(oa, ob) and np.array_equal(ha, hb) and np.array_equal(ca, cb)
        d = rng.standard_normal(oa.shape).astype(dtype)
        ga, gb = bwa(d), bwb(d)
        assert np.array_equal(ga[0], gb[0])
        assert np.array_equal(ga[1][0], gb[1][0]) and np.array_equal(ga[1][1], gb[1][1])
        for k in a.grads:
            assert np.array_equal(a.grads[k], b.grads[k]), k


def test_generator_seed_and_int_seed_agree(rng):
    x = rng.standard_normal((5, 2, 3))
    a = fastlstm.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=np.float64, seed=7)
    b = fastlstm.LSTM(
        3, 4, num_layers=2, dropout=0.5, dtype=np.float64, seed=np.random.default_rng(7)
    )
    assert np.array_equal(a.forward_train(x)[0], b.forward_train(x)[0])


def test_masks_differ_across_calls(rng):
    lstm = fastlstm.LSTM(3, 8, num_layers=2, dropout=0.5, dtype=np.float64, seed=1)
    x = rng.standard_normal((6, 4, 3))
    o1 = lstm.forward_train(x)[0]
    o2 = lstm.forward_train(x)[0]
    assert not np.allclose(o1, o2)
    # and each differs from the dropout-free result
    assert not np.allclose(o1, lstm(x)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inference_never_drops(rng, dtype):
    kw = dict(num_layers=3, bidirectional=True, dtype=dtype)
    drop = fastlstm.LSTM(3, 5, dropout=0.6, seed=2, **kw)
    plain = fastlstm.LSTM(3, 5, dropout=0.0, seed=99, **kw)
    plain.load_state_dict(drop.state_dict())
    x = rng.standard_normal((5, 3, 3)).astype(dtype)
    out1, (h1, c1) = drop(x)
    drop.forward_train(x)  # consumes the generator
    out2, (h2, c2) = drop(x)
    ref, (rh, rc) = plain(x)
    ref_train = plain.forward_train(x)[0]
    for a, b in (
        (out1, ref),
        (out2, ref),
        (h1, rh),
        (c1, rc),
        (h2, rh),
        (c2, rc),
        (ref_train, ref),
    ):
        assert np.array_equal(a, b)
    # and the values are the reference's without masks
    r, _, _ = reference.lstm_forward(x.astype(np.float64), drop.state_dict(), 3, bidirectional=True)
    assert_close(out1, r, dtype, "output", against="reference")


def test_single_layer_has_no_dropout(rng):
    lstm = fastlstm.LSTM(3, 4, num_layers=1, dropout=0.9, dtype=np.float64, seed=0)
    x = rng.standard_normal((4, 2, 3))
    assert np.array_equal(lstm.forward_train(x)[0], lstm(x)[0])


# ---- keep rate and scaling, observed without knowing how masks are drawn -------


def _zero_revealing_lstm(H, p, seed):
    """2 layers, T=1, zero state, no bias, W_hh = 0, and layer 1's unit j reads
    only layer 0's unit j (with weight 3 into every gate).  Then layer 1's
    output j is exactly 0 iff the dropout mask zeroed unit j, and otherwise
    nonzero (o * tanh(i * tanh(3 y / keep)) with y != 0)."""
    lstm = fastlstm.LSTM(4, H, num_layers=2, bias=False, dropout=p, dtype=np.float64, seed=seed)
    lstm.weight_ih_l1 = np.tile(3.0 * np.eye(H), (4, 1))
    lstm.weight_hh_l1 = np.zeros((4 * H, H))
    return lstm


def test_keep_rate_and_scaling(rng):
    H, B, p = 16, 1000, 0.3
    lstm = _zero_revealing_lstm(H, p, seed=5)
    x = rng.standard_normal((1, B, 4))
    y0 = reference.lstm_forward(
        x, {k: v for k, v in lstm.state_dict().items() if k.endswith("l0")}, 1
    )[0]
    assert np.all(y0 != 0)
    out, (h_n, c_n), backward = lstm.forward_train(x)
    dropped = out == 0
    n = dropped.size
    rate = dropped.mean()
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(rate - p) < 5 * sigma, (rate, p)
    # per unit too: no unit is (almost) always or never dropped
    per_unit = dropped.reshape(B, H).mean(axis=0)
    assert np.all(np.abs(per_unit - p) < 5 * np.sqrt(p * (1 - p) / B))
    # the kept activations are scaled by 1/keep: the reference with the
    # observed mask reproduces the output, and the backward
    mask = (~dropped).astype(np.float64) / (1 - p)
    ref, (rh, rc), cache = reference.lstm_forward(x, lstm.state_dict(), 2, dropout_masks=[mask])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n, rh, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_n, rc, rtol=1e-12, atol=1e-14)
    d_out, d_h, d_c = _loss_weights(rng, out.shape, 2, B, H, H)
    dx, (dh0, dc0) = backward(d_out, (d_h, d_c))
    rdx, rdh0, rdc0, rgrads = reference.lstm_backward(d_out, d_h, d_c, cache)
    for got, want in ((dx, rdx), (dh0, rdh0), (dc0, rdc0)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for k, g in rgrads.items():
        np.testing.assert_allclose(lstm.grads[k], g, rtol=1e-10, atol=1e-12, err_msg=k)


def test_keep_rate_consecutive_calls_independent(rng):
    """Across calls the dropped sets are fresh draws: overlap ~ p^2."""
    H, B, p = 16, 500, 0.5
    lstm = _zero_revealing_lstm(H, p, seed=6)
    x = rng.standard_normal((1, B, 4))
    d1 = lstm.forward_train(x)[0] == 0
    d2 = lstm.forward_train(x)[0] == 0
    both = (d1 & d2).mean()
    assert abs(both - p * p) < 5 * np.sqrt(p * p * (1 - p * p) / d1.size)


# ---- masks re-drawn from the seed: forward and backward vs the reference -------


def _packed_rows(T, B, lengths):
    """(t, b) of every packed row: batch sorted by length (stable, longest
    first), time-major over the valid entries (PyTorch's PackedSequence)."""
    if lengths is None:
        return np.repeat(np.arange(T), B), np.tile(np.arange(B), T)
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    t, j = np.nonzero(np.arange(T)[:, None] < lengths[order][None, :])
    return t, order[j]


def _redraw_masks(seed, lstm, T, B, lengths):
    g = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(lstm.hidden_size)
    shapes = reference.parameter_shapes(
        lstm.input_size,
        lstm.hidden_size,
        lstm.num_layers,
        lstm.bias,
        lstm.bidirectional,
        lstm.proj_size,
    )
    assert list(shapes) == list(lstm.state_dict())
    for shape in shapes.values():
        g.uniform(-k, k, size=shape)
    keep = 1.0 - lstm.dropout
    t_idx, b_idx = _packed_rows(T, B, lengths)
    width = lstm.num_directions * (lstm.proj_size or lstm.hidden_size)
    masks = []
    for _ in range(lstm.num_layers - 1):
        drawn = g.random((t_idx.size, width)) < keep
        m = np.zeros((T, B, width))
        m[t_idx, b_idx] = drawn / keep
        masks.append(m)
    return masks


# one case per row
# fmt: off
CASES = {
    "L2": dict(T=5, B=3, I=3, H=4, num_layers=2),
    "L3-bi-proj": dict(T=4, B=2, I=2, H=5, num_layers=3, bidirectional=True, proj_size=3),
    "L2-lengths": dict(T=6, B=4, I=3, H=4, num_layers=2, lengths=[3, 6, 1, 4]),
    "L3-bi-lengths-nobias-bf": dict(T=5, B=3, I=2, H=3, num_layers=3, bidirectional=True,
                                    bias=False, batch_first=True, lengths=[5, 2, 4]),
    "L2-unbatched": dict(T=5, B=1, I=3, H=4, num_layers=2, unbatched=True),
}
# fmt: on


def _build(case, dtype, seed, dropout):
    c = CASES[case]
    return fastlstm.LSTM(
        c["I"],
        c["H"],
        num_layers=c["num_layers"],
        bias=c.get("bias", True),
        batch_first=c.get("batch_first", False),
        dropout=dropout,
        bidirectional=c.get("bidirectional", False),
        proj_size=c.get("proj_size", 0),
        dtype=dtype,
        seed=seed,
    )


def _inputs(rng, case, lstm):
    c = CASES[case]
    T, B, I, H = c["T"], c["B"], c["I"], c["H"]
    Ho, LD = lstm.proj_size or H, lstm.num_layers * lstm.num_directions
    if c.get("unbatched"):
        x = rng.standard_normal((T, I))
        h0, c0 = rng.standard_normal((LD, Ho)), rng.standard_normal((LD, H))
    else:
        x = rng.standard_normal((B, T, I) if c.get("batch_first") else (T, B, I))
        h0, c0 = rng.standard_normal((LD, B, Ho)), rng.standard_normal((LD, B, H))
    return x, h0 * 0.5, c0 * 0.5


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("p", [0.25, 0.6])
def test_against_reference_with_redrawn_masks(rng, case, p):
    c, seed = CASES[case], 31
    lstm = _build(case, np.float64, seed, p)
    x, h0, c0 = _inputs(rng, case, lstm)
    lengths = c.get("lengths")
    masks = _redraw_masks(seed, lstm, c["T"], c["B"], lengths)
    if c.get("unbatched"):
        masks = [m[:, 0] for m in masks]
    out, (h_n, c_n), backward = lstm.forward_train(x, (h0, c0), lengths=lengths)
    ref, (rh, rc), cache = reference.lstm_forward(
        x,
        lstm.state_dict(),
        lstm.num_layers,
        lstm.bidirectional,
        lstm.proj_size,
        lstm.batch_first,
        h0,
        c0,
        lengths,
        dropout_masks=masks,
    )
    for got, want in ((out, ref), (h_n, rh), (c_n, rc)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
    d_out, d_h, d_c = _loss_weights(
        rng,
        out.shape,
        lstm.num_layers * lstm.num_directions,
        c["B"],
        lstm.proj_size or c["H"],
        c["H"],
        c.get("unbatched", False),
    )
    dx, (dh0, dc0) = backward(d_out, (d_h, d_c))
    rdx, rdh0, rdc0, rgrads = reference.lstm_backward(d_out, d_h, d_c, cache)
    for name, got, want in (("dx", dx, rdx), ("dh0", dh0, rdh0), ("dc0", dc0, rdc0)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=name)
    assert set(rgrads) == set(lstm.grads)
    for k, g in rgrads.items():
        np.testing.assert_allclose(lstm.grads[k], g, rtol=1e-10, atol=1e-12, err_msg=k)


# ---- finite differences, the layer re-created from the seed every time ----------


@pytest.mark.parametrize("case", ["L2-lengths", "L3-bi-proj", "L2-unbatched"])
def test_finite_differences_with_dropout(rng, case):
    c, seed, p, eps = CASES[case], 17, 0.5, 1e-6
    lengths = c.get("lengths")
    proto = _build(case, np.float64, seed, p)
    params = {k: v.copy() for k, v in proto.state_dict().items()}
    x, h0, c0 = _inputs(rng, case, proto)
    out, (h_n, c_n), backward = proto.forward_train(x, (h0, c0), lengths=lengths)
    W, Wh, Wc = (rng.standard_normal(a.shape) for a in (out, h_n, c_n))
    dx, (dh0, dc0) = backward(W, (Wh, Wc))

    def loss():
        layer = _build(case, np.float64, seed, p)  # same seed: same masks
        layer.load_state_dict(params)
        o, (h, cc), _ = layer.forward_train(x, (h0, c0), lengths=lengths)
        return float((o * W).sum() + (h * Wh).sum() + (cc * Wc).sum())

    # the masks really are active: the loss differs from the dropout-free one
    o_plain, (hp, cp) = proto(x, (h0, c0), lengths=lengths)
    assert abs(loss() - float((o_plain * W).sum() + (hp * Wh).sum() + (cp * Wc).sum())) > 1e-3

    pick = np.random.default_rng(0)
    targets = [("x", x, dx), ("h0", h0, dh0), ("c0", c0, dc0)]
    targets += [(k, params[k], proto.grads[k]) for k in params]
    for name, arr, grad in targets:
        flat = arr.reshape(-1)
        idx = np.unique(np.r_[0, flat.size - 1, pick.integers(0, flat.size, 4)])
        for i in idx:
            num = central_difference(loss, flat, i, eps)
            assert abs(grad.reshape(-1)[i] - num) <= 1e-6 * abs(num) + 1e-7, (name, i)
