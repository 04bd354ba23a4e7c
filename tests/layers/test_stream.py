"""LSTMStream (lstm.stream(batch_size)): feeding a sequence step by step or in
chunks gives bit for bit the output and final state of one whole-sequence
call, from zeros or from a given (h0, c0); the stream keeps a snapshot of the
weights; bad inputs are rejected."""

import numpy as np
import pytest

import fastlstm
from fastlstm import reference

CONFIGS = {
    "1layer": dict(I=3, H=5),
    "3layers": dict(I=4, H=6, num_layers=3),
    "proj": dict(I=3, H=7, proj_size=4),
    "2layers-proj-nobias": dict(I=5, H=6, num_layers=2, proj_size=3, bias=False),
    # over 1 MB of weights: with B = 1 a call of several steps projects the
    # input of blocks of steps up front, a one-step call does not
    "2layers-xproj": dict(I=200, H=256, num_layers=2),
}
T = 9
CHUNKS = [2, 1, 4, 2]  # uneven, sums to T


def _make(cfg, dtype, seed=5, **extra):
    return fastlstm.LSTM(
        cfg["I"],
        cfg["H"],
        num_layers=cfg.get("num_layers", 1),
        bias=cfg.get("bias", True),
        proj_size=cfg.get("proj_size", 0),
        dtype=dtype,
        seed=seed,
        **extra,
    )


def _initial(rng, lstm, B, dtype):
    L, H = lstm.num_layers, lstm.hidden_size
    Ho = lstm.proj_size or H
    return (
        rng.standard_normal((L, B, Ho)).astype(dtype),
        rng.standard_normal((L, B, H)).astype(dtype),
    )


def _feed(stream, x, mode):
    if mode == "step":
        return np.stack([stream.step(x[t]) for t in range(x.shape[0])])
    if mode == "chunks":
        out, t = [], 0
        for n in CHUNKS:
            out.append(stream.steps(x[t : t + n]))
            t += n
        return np.concatenate(out)
    if mode == "mixed":
        out = [
            stream.step(x[0]),
            stream.steps(x[1:4]),
            stream.step(x[4]),
            stream.steps(x[5:6]),
            stream.steps(x[6:]),
        ]
        return np.concatenate([o[None] if o.ndim == 2 else o for o in out])
    assert mode == "whole"
    return stream.steps(x)


@pytest.mark.parametrize("cfg", list(CONFIGS), ids=list(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("mode", ["step", "chunks", "mixed", "whole"])
@pytest.mark.parametrize("hx_given", [False, True])
def test_stream_equals_whole_call(rng, cfg, dtype, B, mode, hx_given):
    cfg = CONFIGS[cfg]
    lstm = _make(cfg, dtype)
    x = rng.standard_normal((T, B, cfg["I"])).astype(dtype)
    hx = _initial(rng, lstm, B, dtype) if hx_given else None
    out, (h_n, c_n) = lstm(x, hx)

    stream = lstm.stream(B, hx)
    got = _feed(stream, x, mode)
    assert got.dtype == np.dtype(dtype) and got.shape == out.shape
    assert np.array_equal(got, out)
    h, c = stream.state
    assert np.array_equal(h, h_n) and np.array_equal(c, c_n)

    # restart: reset() -> zeros, reset(hx) -> given state
    other = _initial(rng, lstm, B, dtype)
    stream.reset(other)
    ref_out, (ref_h, ref_c) = lstm(x, other)
    assert np.array_equal(_feed(stream, x, mode), ref_out)
    assert np.array_equal(stream.state[0], ref_h) and np.array_equal(stream.state[1], ref_c)
    stream.reset()
    assert not stream.state[0].any() and not stream.state[1].any()
    ref_out, (ref_h, ref_c) = lstm(x)
    assert np.array_equal(_feed(stream, x, mode), ref_out)
    assert np.array_equal(stream.state[0], ref_h) and np.array_equal(stream.state[1], ref_c)


def test_stream_matches_reference(rng):
    """Independent check of the values (not only consistency with lstm())."""
    lstm = _make(CONFIGS["2layers-proj-nobias"], np.float64)
    x = rng.standard_normal((T, 2, 5))
    h0, c0 = _initial(rng, lstm, 2, np.float64)
    ref, (rh, rc), _ = reference.lstm_forward(x, lstm.state_dict(), 2, proj_size=3, h0=h0, c0=c0)
    s = lstm.stream(2)
    s.reset((h0, c0))
    np.testing.assert_allclose(_feed(s, x, "mixed"), ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s.state[0], rh, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s.state[1], rc, rtol=1e-12, atol=1e-14)


def test_stream_batch_first_layer_is_time_major(rng):
    lstm = fastlstm.LSTM(3, 4, num_layers=2, batch_first=True, dtype=np.float64, seed=1)
    x = rng.standard_normal((2, T, 3))  # (B, T, I)
    out, _ = lstm(x)
    s = lstm.stream(2)
    assert np.array_equal(s.steps(x.transpose(1, 0, 2)), out.transpose(1, 0, 2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_accepts_any_layout_and_rejects_bad_input(rng, dtype):
    """step reads a C-contiguous array in place and copies anything else
    (Fortran order, a strided view, a list); a wrong dtype, shape or type is
    a clear error that leaves the state untouched."""
    lstm = fastlstm.LSTM(3, 4, dtype=dtype, seed=2)
    x = rng.standard_normal((6, 2, 3)).astype(dtype)
    want = lstm(x)[0]
    s = lstm.stream(2)
    inputs = [
        x[0],
        np.asfortranarray(x[1]),
        np.repeat(x[2], 2, axis=1)[:, ::2],
        x[3].tolist() if dtype == np.float64 else x[3],
        x[4].copy(),
        x[5],
    ]
    got = []
    for t, xt in enumerate(inputs):
        for bad, err in [
            (x[t].astype(np.float16), TypeError),
            (x[t][:1], ValueError),
            (x[t][0], ValueError),
            ("x", TypeError),
        ]:
            with pytest.raises(err, match="x"):
                s.step(bad)
        got.append(s.step(xt))
    np.testing.assert_array_equal(np.stack(got), want)


def test_state_is_a_copy(rng):
    lstm = _make(CONFIGS["1layer"], np.float64)
    s = lstm.stream(2)
    s.step(rng.standard_normal((2, 3)))
    h, c = s.state
    h[...] = 99
    c[...] = 99
    assert not np.array_equal(s.state[0], h) and not np.array_equal(s.state[1], c)


def test_step_output_is_not_overwritten(rng):
    for cfg in ("1layer", "3layers", "proj"):
        lstm = _make(CONFIGS[cfg], np.float32)
        s = lstm.stream(3)
        x = rng.standard_normal((3, 3, CONFIGS[cfg]["I"])).astype(np.float32)
        y0 = s.step(x[0])
        y0_saved = y0.copy()
        y1 = s.step(x[1])
        s.steps(x[2:])
        assert np.array_equal(y0, y0_saved)
        assert not np.array_equal(y0, y1)
        y0[...] = 0  # writing to an output must not touch the stream
        ref, _ = lstm(x)
        s.reset()
        assert np.array_equal(s.step(x[0]), ref[0])


@pytest.mark.parametrize("how", ["in_place", "assign", "load_state_dict"])
def test_stream_keeps_weight_snapshot(rng, how):
    cfg = CONFIGS["2layers-proj-nobias"]
    lstm = _make(cfg, np.float64)
    x = rng.standard_normal((T, 2, cfg["I"]))
    before, _ = lstm(x)
    s_old = lstm.stream(2)
    assert np.array_equal(s_old.steps(x[:3]), before[:3])  # packs/uses the weights once

    new = {k: rng.uniform(-0.4, 0.4, v.shape) for k, v in lstm.state_dict().items()}
    if how == "in_place":
        for k, v in lstm.named_parameters():
            v[...] = new[k]
    elif how == "assign":
        for k, v in new.items():
            setattr(lstm, k, v)
    else:
        lstm.load_state_dict(new)
    after, _ = lstm(x)
    assert not np.allclose(after, before)

    # the old stream still computes with the old weights
    assert np.array_equal(
        np.concatenate([s_old.steps(x[3:5]), s_old.step(x[5])[None], s_old.steps(x[6:])]),
        before[3:],
    )
    s_old.reset()
    assert np.array_equal(_feed(s_old, x, "step"), before)
    # a new stream sees the new ones
    s_new = lstm.stream(2)
    assert np.array_equal(_feed(s_new, x, "chunks"), after)


def test_two_streams_are_independent(rng):
    lstm = _make(CONFIGS["3layers"], np.float32)
    x1 = rng.standard_normal((T, 1, 4)).astype(np.float32)
    x2 = rng.standard_normal((T, 1, 4)).astype(np.float32)
    s1, s2 = lstm.stream(1), lstm.stream(1)
    y1 = [s1.step(x1[t]) for t in range(T) if s2.step(x2[t]) is not None]
    assert np.array_equal(np.stack(y1), lstm(x1)[0])
    assert np.array_equal(s2.state[0], lstm(x2)[1][0])


def test_thread_count_changed_after_creation(rng):
    """A stream made at one thread and stepped at two (a step of this size
    is shared between threads, and its scratch depends on the count): the
    stream resizes its scratch once, rather than each step allocating its
    own, and the results stay those of one whole-sequence call."""
    before = fastlstm.get_num_threads()
    try:
        fastlstm.set_num_threads(1)
        lstm = _make(dict(I=64, H=128), np.float32)
        x = rng.standard_normal((T, 1, 64)).astype(np.float32)
        stream = lstm.stream(1)
        assert stream.workspace_threads == 1
        got = [stream.step(x[0])]
        two = fastlstm.set_num_threads(2)  # 1 without OpenMP
        got += [stream.step(x[t]) for t in range(1, T)]
        assert stream.workspace_threads == two
        assert np.array_equal(np.stack(got), lstm(x)[0])
    finally:
        fastlstm.set_num_threads(before)


def test_stream_accepts_noncontiguous_and_readonly(rng):
    lstm = _make(CONFIGS["1layer"], np.float64)
    x = rng.standard_normal((T, 2, 6))[:, :, ::2]  # non-contiguous (T, 2, 3)
    x.flags.writeable = False
    ref, _ = lstm(np.ascontiguousarray(x))
    assert np.array_equal(lstm.stream(2).steps(x), ref)
    s = lstm.stream(2)
    assert np.array_equal(np.stack([s.step(x[t]) for t in range(T)]), ref)


# ---- errors -------------------------------------------------------------------


def test_bidirectional_rejected():
    lstm = fastlstm.LSTM(3, 4, bidirectional=True, seed=0)
    with pytest.raises(ValueError, match="bidirectional"):
        lstm.stream(1)
    with pytest.raises(ValueError, match="bidirectional"):
        fastlstm.LSTMStream(lstm, 1)


@pytest.mark.parametrize("bs", [0, -1, 1.5, True, "2"])
def test_bad_batch_size(bs):
    with pytest.raises(ValueError, match="batch_size"):
        fastlstm.LSTM(3, 4, seed=0).stream(bs)


@pytest.mark.parametrize("shape", [(2, 4), (3, 3), (1, 3), (3,), (1, 2, 3), (2, 3, 1)])
def test_step_bad_shape(shape):
    s = fastlstm.LSTM(3, 4, num_layers=2, seed=0).stream(2)
    with pytest.raises(ValueError, match="x"):
        s.step(np.zeros(shape, np.float32))
    assert not s.state[0].any()  # nothing advanced


@pytest.mark.parametrize("shape", [(4, 2, 4), (4, 3, 3), (0, 2, 3), (2, 3), (4, 2, 3, 1)])
def test_steps_bad_shape(shape):
    s = fastlstm.LSTM(3, 4, seed=0).stream(2)
    with pytest.raises(ValueError, match="x"):
        s.steps(np.zeros(shape, np.float32))


def test_bad_dtype():
    s = fastlstm.LSTM(3, 4, seed=0).stream(2)
    with pytest.raises(TypeError, match="x"):
        s.step(np.zeros((2, 3), np.float64))
    with pytest.raises(TypeError, match="x"):
        s.steps(np.zeros((4, 2, 3), np.float64))
    with pytest.raises(TypeError, match="x"):
        s.step(np.zeros((2, 3), np.int64))
    with pytest.raises(TypeError):
        s.step(object())


def test_bad_reset():
    lstm = fastlstm.LSTM(3, 4, num_layers=2, proj_size=2, seed=0)
    s = lstm.stream(2)
    h0, c0 = np.zeros((2, 2, 2), np.float32), np.zeros((2, 2, 4), np.float32)
    s.reset((h0, c0))
    with pytest.raises(TypeError, match="hx"):
        s.reset(h0)
    with pytest.raises(ValueError, match="h0"):
        s.reset((np.zeros((2, 2, 4), np.float32), c0))
    with pytest.raises(ValueError, match="c0"):
        s.reset((h0, np.zeros((1, 2, 4), np.float32)))
    with pytest.raises(TypeError, match="h0"):
        s.reset((h0.astype(np.float64), c0))
    with pytest.raises(ValueError, match="h0"):
        lstm.stream(3, (h0, c0))


def test_dropped_stream_is_freed_without_the_garbage_collector():
    """A stream holds a weight snapshot and buffers: dropping it must free
    them at once, not when a gc pass finds a reference cycle."""
    import gc
    import weakref

    lstm = fastlstm.LSTM(4, 5)
    stream = lstm.stream(2)
    stream.step(np.ones((2, 4), np.float32))
    ref = weakref.ref(stream)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del stream
        assert ref() is None
    finally:
        if was_enabled:
            gc.enable()
