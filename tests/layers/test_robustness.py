"""The layers under hostile use: empty batches (against PyTorch), attributes
changed after construction, pickling and deep copies, weights of another
dtype, one backward called from two threads, and weights updated in place
by one thread while another runs the layer.
"""

import copy
import functools
import multiprocessing
import pickle
import threading

import numpy as np
import pytest

import fastlstm

from helpers import random_array

I, H, P, T, B = 4, 6, 3, 5, 3

CONFIGS = {
    "plain": dict(),
    "deep-bidir": dict(num_layers=2, bidirectional=True),
    "proj-batch_first": dict(proj_size=P, batch_first=True),
    "no-bias-dropout": dict(num_layers=3, bias=False, dropout=0.4),
}


def lstm_of(cfg, dtype=np.float32, seed=5):
    return fastlstm.LSTM(I, H, dtype=dtype, seed=seed, **CONFIGS[cfg])


# ---- a batch of 0 sequences -------------------------------------------------------


@pytest.mark.parametrize("cfg", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch_shapes_follow_torch(torch, cfg, dtype):
    lstm = lstm_of(cfg, dtype)
    kw = {k: v for k, v in CONFIGS[cfg].items() if k != "dropout"}
    module = torch.nn.LSTM(I, H, dtype=getattr(torch, np.dtype(dtype).name), **kw)
    x = np.zeros((0, T, I) if lstm.batch_first else (T, 0, I), dtype)
    xt = torch.from_numpy(x).requires_grad_()
    t_out, (t_h, t_c) = module(xt)
    t_out.sum().backward()

    out, (h, c) = lstm(x)
    out2, (h2, c2), cells = lstm(x, return_cells=True)
    for a, t in ((out, t_out), (h, t_h), (c, t_c), (out2, t_out), (h2, t_h), (c2, t_c)):
        assert a.shape == tuple(t.shape) and a.dtype == np.dtype(dtype)
    assert cells.shape == out.shape[:-1] + (lstm.num_directions * H,)

    lstm.zero_grad()
    out_t, (h_t, c_t), backward = lstm.forward_train(x)
    assert out_t.shape == out.shape and h_t.shape == h.shape
    dx, (dh0, dc0) = backward(np.zeros_like(out_t), (np.zeros_like(h_t), np.zeros_like(c_t)))
    assert dx.shape == tuple(xt.grad.shape) and dx.dtype == np.dtype(dtype)
    assert dh0.shape == h.shape and dc0.shape == c.shape
    assert all(not g.any() for g in lstm.grads.values())  # nothing to accumulate


def test_empty_batch_checks_its_arguments():
    lstm = lstm_of("deep-bidir")
    x = np.zeros((T, 0, I), np.float32)
    good = (np.zeros((4, 0, H), np.float32), np.zeros((4, 0, H), np.float32))
    lstm(x, good, lengths=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="h0"):
        lstm(x, (np.zeros((4, 1, H), np.float32), good[1]))
    with pytest.raises(TypeError, match="c0"):
        lstm(x, (good[0], good[1].astype(np.float64)))
    with pytest.raises(ValueError, match="lengths"):
        lstm(x, lengths=[1])
    out, _, backward = lstm.forward_train(x)
    with pytest.raises(ValueError, match="d_output"):
        backward(np.zeros((T, 1, 2 * H), np.float32))
    backward(out)
    with pytest.raises(RuntimeError, match="already called"):
        backward(out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cell_empty_batch_follows_torch(torch, dtype):
    cell = fastlstm.LSTMCell(I, H, dtype=dtype, seed=1)
    tcell = torch.nn.LSTMCell(I, H, dtype=getattr(torch, np.dtype(dtype).name))
    th, tc = tcell(torch.zeros(0, I, dtype=tcell.weight_ih.dtype))
    x = np.zeros((0, I), dtype)
    h, c = cell(x, (np.zeros((0, H), dtype), np.zeros((0, H), dtype)))
    assert h.shape == tuple(th.shape) and c.shape == tuple(tc.shape)
    cell.zero_grad()
    h, c, backward = cell.forward_train(x)
    dx, (dh, dc) = backward(h, c)
    assert dx.shape == (0, I) and dh.shape == (0, H) and dc.shape == (0, H)
    assert all(not g.any() for g in cell.grads.values())


@pytest.mark.parametrize("lengths", [[0, 3, 2], [3, 0, 1]])
def test_length_zero_gives_zeros_as_onnx_runtime(lengths):
    """A sequence of length 0 (which PyTorch refuses): zero output and zero
    final states, as ONNX Runtime's sequence_lens; the others as without it."""
    lstm = lstm_of("plain")
    x = np.ones((T, B, I), np.float32)
    hx = (np.ones((1, B, H), np.float32), np.ones((1, B, H), np.float32))
    out, (h, c) = lstm(x, hx, lengths=np.array(lengths))
    empty = lengths.index(0)
    assert not out[:, empty].any() and not h[:, empty].any() and not c[:, empty].any()
    keep = [b for b in range(B) if b != empty]
    sub, (h_sub, _) = lstm(
        x[:, keep], (hx[0][:, keep], hx[1][:, keep]), lengths=np.array(lengths)[keep]
    )
    np.testing.assert_array_equal(out[:, keep], sub)
    np.testing.assert_array_equal(h[:, keep], h_sub)


# ---- attributes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["input_size", "hidden_size", "num_layers", "proj_size", "bias", "bidirectional"]
)
def test_structural_attributes_are_read_only(name):
    lstm = lstm_of("deep-bidir")
    before = getattr(lstm, name)
    with pytest.raises(AttributeError, match=name):
        setattr(lstm, name, before + 1 if isinstance(before, int) else not before)
    assert getattr(lstm, name) == before
    with pytest.raises(AttributeError, match="dtype"):
        lstm.dtype = np.float64


@pytest.mark.parametrize("name", ["input_size", "hidden_size", "bias", "dtype"])
def test_cell_attributes_are_read_only(name):
    cell = fastlstm.LSTMCell(I, H, seed=0)
    with pytest.raises(AttributeError, match=name):
        setattr(cell, name, 2)


@pytest.mark.parametrize(
    "value, exc",
    [
        (1, ValueError),
        (1.0, ValueError),
        (-0.5, ValueError),
        (float("nan"), ValueError),
        ("0.1", TypeError),
        (None, TypeError),
        (True, TypeError),
    ],
)
def test_dropout_is_checked_when_set(value, exc):
    lstm = lstm_of("no-bias-dropout")
    with pytest.raises(exc, match="dropout"):
        lstm.dropout = value
    assert lstm.dropout == 0.4


def test_dropout_set_later_acts_like_the_constructor_argument(rng):
    a = lstm_of("no-bias-dropout", seed=3)
    b = fastlstm.LSTM(I, H, num_layers=3, bias=False, dropout=0.0, seed=3)
    b.dropout = np.float32(0.4)
    assert isinstance(b.dropout, float)
    x = random_array(rng, (T, B, I), np.float32)
    out_a = a.forward_train(x)[0]
    out_b = b.forward_train(x)[0]
    assert np.array_equal(out_a, out_b) and np.isfinite(out_b).all()


@pytest.mark.parametrize("value", [1, 1.0, "yes", None, np.array([True])])
def test_batch_first_is_checked_when_set(value):
    lstm = lstm_of("plain")
    with pytest.raises(TypeError, match="batch_first"):
        lstm.batch_first = value
    assert lstm.batch_first is False


def test_batch_first_set_later_matches_a_layer_built_with_it(rng):
    a = lstm_of("plain")
    b = fastlstm.LSTM(I, H, batch_first=True, seed=5)
    a.batch_first = np.bool_(True)
    x = random_array(rng, (B, T, I), np.float32)
    assert np.array_equal(a(x)[0], b(x)[0])


def test_backward_keeps_the_layout_of_its_forward(rng):
    lstm = lstm_of("plain")
    ref = lstm_of("plain")
    x = random_array(rng, (T, B, I), np.float32)
    d_out = random_array(rng, (T, B, H), np.float32)
    out, _, backward = lstm.forward_train(x)
    lstm.batch_first = True  # after the forward: its backward still takes (T, B, H)
    dx, _ = backward(d_out)
    want_dx, _ = ref.forward_train(x)[2](d_out)
    assert np.array_equal(dx, want_dx)
    for k, g in ref.grads.items():
        assert np.array_equal(lstm.grads[k], g), k


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(dtype=None), TypeError),
        (dict(bias="no"), TypeError),
        (dict(bias=None), TypeError),
        (dict(bias=2), TypeError),
        (dict(bidirectional="yes"), TypeError),
        (dict(batch_first=1.0), TypeError),
        (dict(dropout="0.1"), TypeError),
    ],
)
def test_loose_constructor_arguments_are_refused(kwargs, exc):
    name = next(iter(kwargs))
    with pytest.raises(exc, match=name):
        fastlstm.LSTM(I, H, **kwargs)
    if name in ("dtype", "bias"):
        with pytest.raises(exc, match=name):
            fastlstm.LSTMCell(I, H, **kwargs)


# ---- weights of another dtype -----------------------------------------------------


@pytest.mark.parametrize(
    "layer_dtype, other",
    [(np.float32, np.float16), (np.float32, np.float64), (np.float64, np.float32)],
)
def test_weights_of_another_dtype_are_refused(layer_dtype, other):
    lstm = lstm_of("deep-bidir", layer_dtype)
    before = lstm.state_dict()
    sd = {k: v.astype(other) if k == "weight_hh_l1" else v for k, v in before.items()}
    with pytest.raises(TypeError, match=f"weight_hh_l1.*{np.dtype(layer_dtype).name}"):
        lstm.load_state_dict(sd)
    with pytest.raises(TypeError, match="weight_ih_l0"):
        lstm.weight_ih_l0 = before["weight_ih_l0"].astype(other)
    after = lstm.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


# ---- pickle and deepcopy ------------------------------------------------------


def _same_layer(a, b, rng):
    assert repr(a) == repr(b) and a.dtype == b.dtype
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert all(np.array_equal(a.grads[k], b.grads[k]) for k in a.grads)
    if isinstance(a, fastlstm.LSTM):
        shape = (B, T, I) if a.batch_first else (T, B, I)
        x = random_array(rng, shape, a.dtype)
        # same generator state: same dropout masks, bitwise the same training step
        oa, _, ba = a.forward_train(x)
        ob, _, bb = b.forward_train(x)
        assert np.array_equal(oa, ob)
        assert np.array_equal(ba(oa)[0], bb(ob)[0])
    else:
        x = random_array(rng, (B, I), a.dtype)
        assert np.array_equal(a(x)[0], b(x)[0])


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
@pytest.mark.parametrize("cfg", sorted(CONFIGS))
def test_lstm_pickles_and_deep_copies(rng, how, cfg):
    lstm = lstm_of(cfg, np.float64)
    x = random_array(rng, (B, T, I) if lstm.batch_first else (T, B, I), np.float64)
    out, _, backward = lstm.forward_train(x)  # fills the caches and the buffer pool
    backward(out)
    clone = pickle.loads(pickle.dumps(lstm)) if how == "pickle" else copy.deepcopy(lstm)
    _same_layer(lstm, clone, rng)
    lstm.weight_hh_l0 *= 2  # the copy owns its arrays
    assert not np.array_equal(lstm.weight_hh_l0, clone.weight_hh_l0)
    with pytest.raises(AttributeError):
        clone.hidden_size = 3


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_cell_pickles_and_deep_copies(rng, how):
    cell = fastlstm.LSTMCell(I, H, bias=False, seed=2)
    cell(random_array(rng, (B, I), np.float32))
    clone = pickle.loads(pickle.dumps(cell)) if how == "pickle" else copy.deepcopy(cell)
    _same_layer(cell, clone, rng)


def _run_in_worker(lstm, x):
    return lstm(x)[0]


def test_layer_goes_to_a_spawn_worker(rng):
    lstm = lstm_of("deep-bidir")
    x = random_array(rng, (T, B, I), np.float32)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.apply(_run_in_worker, (lstm, x))
    assert np.array_equal(got, lstm(x)[0])


# ---- one backward, two threads ------------------------------------------------


def _race(call, expected, n=2):
    """Run call() in n threads released together -> (results, messages of
    the `expected` exceptions raised)."""
    start = threading.Barrier(n)
    results, errors = [], []

    def run():
        start.wait()
        try:
            results.append(call())
        except expected as e:
            errors.append(str(e))

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


@pytest.mark.parametrize("layer", ["lstm", "cell"])
def test_backward_from_two_threads_runs_once(rng, layer):
    for _ in range(30):
        if layer == "lstm":
            m = lstm_of("deep-bidir")
            x = random_array(rng, (T, B, I), np.float32)
        else:
            m = fastlstm.LSTMCell(I, H, seed=0)
            x = random_array(rng, (B, I), np.float32)
        m.zero_grad()
        first, *_, backward = m.forward_train(x)
        d = random_array(rng, first.shape, np.float32)
        results, errors = _race(functools.partial(backward, d), RuntimeError)
        assert len(results) == 1 and len(errors) == 1 and "already called" in errors[0]
        grads = {k: g.copy() for k, g in m.grads.items()}
        m.zero_grad()
        want = m.forward_train(x)[-1](d)
        assert np.array_equal(results[0][0], want[0])
        assert all(np.array_equal(grads[k], m.grads[k]) for k in grads)


# ---- in-place updates racing with inference -------------------------------------


def _serve(lstm, x, stop):
    while not stop.is_set():
        lstm(x)


def test_weights_updated_during_inference_are_never_left_stale(rng):
    """One thread serves lstm(x) while another runs in-place SGD steps; once
    the updates stop, the layer must agree with a fresh layer holding the
    same weights (the pack cache may not keep a snapshot older than them)."""
    lstm = fastlstm.LSTM(64, 256, num_layers=2, seed=0)
    x = random_array(rng, (4, 2, 64), np.float32)
    grads = {k: random_array(rng, v.shape, np.float32) for k, v in lstm.state_dict().items()}
    stale = 0
    for _ in range(30):
        stop = threading.Event()
        server = threading.Thread(target=_serve, args=(lstm, x, stop))
        server.start()
        for _ in range(20):
            for name, p in lstm.named_parameters():
                p -= np.float32(1e-3) * grads[name]
        stop.set()
        server.join()
        fresh = fastlstm.LSTM(64, 256, num_layers=2, seed=1)
        fresh.load_state_dict(lstm.state_dict())
        stale += not np.array_equal(lstm(x)[0], fresh(x)[0])
    assert stale == 0


# ---- found by the fuzz suite ----------------------------------------------------


def test_a_scalar_is_not_an_input_of_size_one():
    """np.ascontiguousarray turned a 0-d input into shape (1,), which a layer
    with input_size 1 took as an unbatched step."""
    cell = fastlstm.LSTMCell(1, 2, seed=0)
    lstm = fastlstm.LSTM(1, 2, seed=0)
    for x in (np.float32(1.0), np.array(1.0, np.float32)):
        with pytest.raises(ValueError, match="x"):
            cell(x)
        with pytest.raises(ValueError, match="x"):
            lstm(x)
        with pytest.raises(ValueError, match="h_prev"):
            cell(np.ones(1, np.float32), (np.float32(0.0), np.zeros(2, np.float32)))


def test_refused_stream_reset_changes_nothing(rng):
    """reset((good h0, bad c0)) wrote h0 before refusing c0."""
    lstm = fastlstm.LSTM(I, H, num_layers=2, seed=0)
    s = lstm.stream(B)
    s.step(random_array(rng, (B, I), np.float32))
    before = s.state
    good_h = random_array(rng, (2, B, H), np.float32)
    with pytest.raises(TypeError, match="c0"):
        s.reset((good_h, np.zeros((2, B, H), np.float64)))
    with pytest.raises(ValueError, match="c0"):
        s.reset((good_h, np.zeros((2, B, H + 1), np.float32)))
    assert all(np.array_equal(a, b) for a, b in zip(s.state, before))
