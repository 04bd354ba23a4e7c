"""Property-based fuzzing of every public entry point (hypothesis).

Valid calls must agree with ``fastlstm.reference`` (forward, backward and
every gradient); invalid calls must raise the documented ``TypeError`` or
``ValueError`` -- never another exception, a crash or a silent answer.

The normal suite runs a small sample of examples per property.  A dedicated
run sets ``FASTLSTM_FUZZ_EXAMPLES`` (examples per property), e.g.::

    FASTLSTM_FUZZ_EXAMPLES=1500 python -m pytest -q tests/test_fuzz.py

and reports how many examples ran in total (``-s`` prints the count).
"""

import functools
import os
import threading

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastlstm  # noqa: E402
from fastlstm import reference  # noqa: E402
from fastlstm._native import kernels  # noqa: E402

EXAMPLES = int(os.environ.get("FASTLSTM_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 25,
    suppress_health_check=list(HealthCheck),
    database=None,
)
TOL = {
    np.dtype(np.float32): dict(rtol=2e-4, atol=2e-5),
    np.dtype(np.float64): dict(rtol=1e-9, atol=1e-11),
}

_counts = {}
_count_lock = threading.Lock()


def _count(name):
    with _count_lock:
        _counts[name] = _counts.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    if EXAMPLES > 25:
        total = sum(_counts.values())
        print(
            f"\nfuzz examples run: {total} "
            + ", ".join(f"{k}={v}" for k, v in sorted(_counts.items()))
        )


def _close(actual, desired, dtype, what):
    np.testing.assert_allclose(actual, desired, err_msg=what, **TOL[np.dtype(dtype)])


# ---- strategies ---------------------------------------------------------------


@st.composite
def lstm_configs(draw):
    hidden = draw(st.integers(1, 24))
    return dict(
        input_size=draw(st.integers(1, 12)),
        hidden_size=hidden,
        num_layers=draw(st.integers(1, 3)),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        proj_size=draw(st.integers(0, hidden - 1)) if hidden > 1 and draw(st.booleans()) else 0,
        dtype=draw(st.sampled_from([np.float32, np.float64])),
    )


@st.composite
def lstm_calls(draw):
    cfg = draw(lstm_configs())
    T = draw(st.integers(1, 9))
    unbatched = draw(st.integers(0, 5)) == 0
    B = 1 if unbatched else draw(st.integers(1, 11))
    seed = draw(st.integers(0, 2**32 - 1))
    ragged = not unbatched and draw(st.booleans())
    lengths = (
        np.array(draw(st.lists(st.integers(1, T), min_size=B, max_size=B))) if ragged else None
    )
    layout = draw(st.sampled_from(["contiguous", "strided", "readonly"]))
    with_state = draw(st.booleans())
    return cfg, T, B, unbatched, lengths, layout, with_state, seed


def _make_input(rng, cfg, T, B, unbatched, layout):
    dtype, I = cfg["dtype"], cfg["input_size"]
    shape = (T, I) if unbatched else ((B, T, I) if cfg["batch_first"] else (T, B, I))
    x = (rng.standard_normal(shape) * 1.5).astype(dtype)
    if layout == "strided":
        wide = np.zeros(shape[:-1] + (2 * I,), dtype)
        wide[..., ::2] = x
        x = wide[..., ::2]
    elif layout == "readonly":
        x.setflags(write=False)
    return x


def _make_state(rng, lstm, B, unbatched):
    LD = lstm.num_layers * lstm.num_directions
    lead = (LD,) if unbatched else (LD, B)
    h0 = rng.standard_normal(lead + (lstm.proj_size or lstm.hidden_size,)).astype(lstm.dtype)
    c0 = rng.standard_normal(lead + (lstm.hidden_size,)).astype(lstm.dtype)
    return h0, c0


# ---- valid calls agree with the reference ------------------------------------------


@FUZZ
@given(lstm_calls(), st.integers(1, 2))
def test_lstm_forward_backward_match_reference(call, threads):
    cfg, T, B, unbatched, lengths, layout, with_state, seed = call
    _count("lstm")
    rng = np.random.default_rng(seed)
    dtype = cfg.pop("dtype")
    lstm = fastlstm.LSTM(**cfg, dtype=dtype, seed=seed)
    cfg["dtype"] = dtype
    x = _make_input(rng, cfg, T, B, unbatched, layout)
    hx = _make_state(rng, lstm, B, unbatched) if with_state else None
    before = fastlstm.get_num_threads()
    fastlstm.set_num_threads(threads)
    try:
        out, (h_n, c_n) = lstm(x, hx, lengths=lengths)
        out_t, (h_t, c_t), backward = lstm.forward_train(x, hx, lengths=lengths)
        d_out = rng.standard_normal(out.shape).astype(dtype)
        d_h = rng.standard_normal(h_n.shape).astype(dtype)
        d_c = rng.standard_normal(c_n.shape).astype(dtype)
        lstm.zero_grad()
        dx, (dh0, dc0) = backward(d_out, (d_h, d_c))
    finally:
        fastlstm.set_num_threads(before)
    params = lstm.state_dict()
    r_out, (r_h, r_c), cache = reference.lstm_forward(
        x,
        params,
        lstm.num_layers,
        lstm.bidirectional,
        lstm.proj_size,
        lstm.batch_first,
        None if hx is None else hx[0],
        None if hx is None else hx[1],
        lengths,
    )
    r_dx, r_dh0, r_dc0, r_grads = reference.lstm_backward(d_out, d_h, d_c, cache)
    for name, a, r in (
        ("output", out, r_out),
        ("h_n", h_n, r_h),
        ("c_n", c_n, r_c),
        ("dx", dx, r_dx),
        ("dh0", dh0, r_dh0),
        ("dc0", dc0, r_dc0),
    ):
        assert a.shape == r.shape and a.dtype == np.dtype(dtype), name
        _close(a, r, dtype, name)
    assert np.array_equal(out_t, out) and np.array_equal(h_t, h_n) and np.array_equal(c_t, c_n)
    for name, g in r_grads.items():
        _close(lstm.grads[name], g, dtype, f"grad {name}")


@FUZZ
@given(
    st.integers(1, 10),
    st.integers(1, 20),
    st.booleans(),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 6),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_cell_matches_reference(I, H, bias, dtype, B, with_state, seed):
    _count("cell")
    rng = np.random.default_rng(seed)
    cell = fastlstm.LSTMCell(I, H, bias=bias, dtype=dtype, seed=seed)
    unbatched = B == 0
    x = rng.standard_normal((I,) if unbatched else (B, I)).astype(dtype)
    lead = () if unbatched else (B,)
    hx = (
        (
            rng.standard_normal(lead + (H,)).astype(dtype),
            rng.standard_normal(lead + (H,)).astype(dtype),
        )
        if with_state
        else None
    )
    h, c = cell(x, hx)
    p = cell.state_dict()
    xb = x[None] if unbatched else x
    h0 = np.zeros((xb.shape[0], H), dtype) if hx is None else (hx[0][None] if unbatched else hx[0])
    c0 = np.zeros((xb.shape[0], H), dtype) if hx is None else (hx[1][None] if unbatched else hx[1])
    r_h, r_c, cache = reference.cell_forward(
        xb, h0, c0, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh")
    )
    if unbatched:
        r_h, r_c = r_h[0], r_c[0]
    _close(h, r_h, dtype, "h")
    _close(c, r_c, dtype, "c")
    h2, c2, backward = cell.forward_train(x, hx)
    assert np.array_equal(h2, h) and np.array_equal(c2, c)
    dh = rng.standard_normal(h.shape).astype(dtype)
    dc = rng.standard_normal(c.shape).astype(dtype)
    cell.zero_grad()
    dx, (dh0, dc0) = backward(dh, dc)
    grads = reference.cell_backward(
        dh[None] if unbatched else dh, dc[None] if unbatched else dc, cache
    )
    r_dx, r_dh0, r_dc0, r_g = grads
    if unbatched:
        r_dx, r_dh0, r_dc0 = r_dx[0], r_dh0[0], r_dc0[0]
    _close(dx, r_dx, dtype, "dx")
    _close(dh0, r_dh0, dtype, "dh0")
    _close(dc0, r_dc0, dtype, "dc0")
    for name, g in r_g.items():
        _close(cell.grads[name], g, dtype, f"grad {name}")


@FUZZ
@given(
    lstm_configs(), st.integers(1, 8), st.integers(1, 6), st.booleans(), st.integers(0, 2**32 - 1)
)
def test_stream_equals_whole_sequence(cfg, T, B, with_state, seed):
    _count("stream")
    cfg = dict(cfg, bidirectional=False)
    rng = np.random.default_rng(seed)
    dtype = cfg.pop("dtype")
    lstm = fastlstm.LSTM(**cfg, dtype=dtype, seed=seed)
    x = rng.standard_normal((T, B, lstm.input_size)).astype(dtype)
    hx = _make_state(rng, lstm, B, False) if with_state else None
    saved = lstm.batch_first
    lstm.batch_first = False
    try:
        want, (h_n, c_n) = lstm(x, hx)
    finally:
        lstm.batch_first = saved
    s = lstm.stream(B, hx)
    got = np.stack([s.step(x[t]) for t in range(T)])
    assert np.array_equal(got, want)
    h, c = s.state
    assert np.array_equal(h, h_n) and np.array_equal(c, c_n)


# ---- invalid calls raise the documented exceptions ----------------------------------

_GARBAGE = [
    None,
    "x",
    3,
    2.5,
    [],
    [["a"]],
    {"a": 1},
    object(),
    np.array("s"),
    np.zeros((2, 2), np.int32),
    np.zeros((2, 2), np.complex64),
    np.zeros((2, 2), np.float16),
    np.zeros(0),
    np.float32(1.0),
]


def _corrupt_call(draw, lstm, T, B):
    """(x, hx, lengths) with exactly one thing wrong."""
    rng = np.random.default_rng(0)
    dtype = lstm.dtype
    I = lstm.input_size
    x = rng.standard_normal((T, B, I)).astype(dtype)
    hx, lengths = None, None
    what = draw(
        st.sampled_from(
            [
                "x-dtype",
                "x-garbage",
                "x-ndim",
                "x-features",
                "x-empty",
                "hx-shape",
                "hx-dtype",
                "hx-type",
                "hx-garbage",
                "lengths-range",
                "lengths-shape",
                "lengths-dtype",
                "lengths-garbage",
                "x-nan-lengths",
            ]
        )
    )
    other = np.float64 if dtype == np.float32 else np.float32
    if what == "x-dtype":
        x = x.astype(draw(st.sampled_from([other, np.int64, np.float16, np.complex128, np.bool_])))
    elif what == "x-garbage":
        x = draw(st.sampled_from(_GARBAGE))
    elif what == "x-ndim":
        x = np.zeros(draw(st.sampled_from([(), (I,), (1, 1, 1, I), (2, 1, 1, 1, I)])), dtype)
    elif what == "x-features":
        x = np.zeros((T, B, I + draw(st.integers(1, 5))), dtype)
    elif what == "x-empty":
        x = np.zeros((0, B, I), dtype)
    elif what.startswith("hx"):
        LD = lstm.num_layers * lstm.num_directions
        h0 = np.zeros((LD, B, lstm.proj_size or lstm.hidden_size), dtype)
        c0 = np.zeros((LD, B, lstm.hidden_size), dtype)
        if what == "hx-shape":
            k = draw(st.integers(0, 2))
            bad = list(h0.shape)
            bad[k] += draw(st.integers(1, 3))
            h0 = np.zeros(bad, dtype)
            hx = draw(st.sampled_from([(h0, c0), (c0[:, :, :0], c0)]))
        elif what == "hx-dtype":
            hx = (h0.astype(other), c0)
        elif what == "hx-type":
            hx = draw(st.sampled_from([(h0,), (h0, c0, c0), h0, [h0]]))
        else:
            hx = (draw(st.sampled_from(_GARBAGE)), c0)
    elif what == "lengths-range":
        lengths = np.full(B, T, np.int64)
        lengths[draw(st.integers(0, B - 1))] = draw(st.sampled_from([T + 1, -1, 2**40, -(2**62)]))
    elif what == "lengths-shape":
        lengths = np.full(draw(st.sampled_from([B + 1, max(B - 1, 0)])), T)
        if len(lengths) == B:
            lengths = lengths[None]
    elif what == "lengths-dtype":
        # (integer-valued floats are accepted: tests/layers/test_validation.py)
        lengths = np.full(B, T, draw(st.sampled_from([np.float64, np.complex64, np.bool_, object])))
        if lengths.dtype == np.float64:
            lengths[-1] = T - 0.5
        elif lengths.dtype == np.bool_:
            lengths[:] = True
    elif what == "lengths-garbage":
        lengths = draw(st.sampled_from(["abc", 3.5, object(), [[1]], {"a": 1}]))
    else:
        lengths = np.full(B, np.nan)
    return what, x, hx, lengths


def _time_major_layer(cfg):
    return fastlstm.LSTM(**dict(cfg, batch_first=False), seed=0)


@FUZZ
@given(lstm_configs(), st.integers(1, 5), st.integers(1, 5), st.data())
def test_invalid_lstm_calls_raise_documented_errors(cfg, T, B, data):
    _count("invalid-call")
    lstm = _time_major_layer(cfg)
    what, x, hx, lengths = _corrupt_call(data.draw, lstm, T, B)
    for call in (
        lambda: lstm(x, hx, lengths=lengths),
        lambda: lstm.forward_train(x, hx, lengths=lengths),
    ):
        with pytest.raises((TypeError, ValueError)):
            call()


@FUZZ
@given(lstm_configs(), st.integers(1, 4), st.integers(1, 4), st.data())
def test_invalid_backward_arguments(cfg, T, B, data):
    _count("invalid-backward")
    lstm = _time_major_layer(cfg)
    dtype = lstm.dtype
    x = np.ones((T, B, lstm.input_size), dtype)
    out, (h_n, c_n), backward = lstm.forward_train(x)
    other = np.float64 if np.dtype(dtype) == np.float32 else np.float32
    bad = data.draw(
        st.sampled_from(
            [
                (out.astype(other), None),
                (out[:-1] if T > 1 else out[:, :0], None),
                (np.zeros(out.shape[:-1] + (out.shape[-1] + 1,), dtype), None),
                (out, (h_n[:, :, :0], None)),
                (out, (None, c_n.astype(other))),
                (out, h_n),
                (out, (h_n,)),
                ("garbage", None),
                (None, (None, np.zeros(3, dtype))),
            ]
        )
    )
    with pytest.raises((TypeError, ValueError)):
        backward(*bad)


_BAD_CTOR = [
    dict(input_size=0),
    dict(input_size=-1),
    dict(input_size=2.5),
    dict(input_size="3"),
    dict(input_size=None),
    dict(input_size=True),
    dict(hidden_size=0),
    dict(hidden_size=1.0),
    dict(num_layers=0),
    dict(num_layers=1.5),
    dict(proj_size=-1),
    dict(proj_size=4),
    dict(proj_size=7),
    dict(dropout=1.0),
    dict(dropout=-0.1),
    dict(dropout=float("nan")),
    dict(dropout="0.1"),
    dict(dropout=None),
    dict(dtype=np.int32),
    dict(dtype=np.float16),
    dict(dtype="complex64"),
    dict(dtype=None),
    dict(bias="no"),
    dict(bias=None),
    dict(bias=2),
    dict(bidirectional="yes"),
    dict(batch_first=1.0),
    dict(seed="abc"),
    dict(seed=-1),
    dict(seed=1.5),
]


@pytest.mark.parametrize("bad", _BAD_CTOR, ids=[repr(b) for b in _BAD_CTOR])
def test_invalid_constructor_arguments(bad):
    kwargs = dict(input_size=3, hidden_size=4)
    kwargs.update(bad)
    with pytest.raises((TypeError, ValueError)):
        fastlstm.LSTM(**kwargs)


@FUZZ
@given(lstm_configs(), st.data())
def test_invalid_state_dicts(cfg, data):
    _count("invalid-state-dict")
    dtype = cfg.pop("dtype")
    lstm = fastlstm.LSTM(**cfg, dtype=dtype, seed=0)
    sd = lstm.state_dict()
    key = data.draw(st.sampled_from(sorted(sd)))
    what = data.draw(
        st.sampled_from(["missing", "extra", "shape", "int", "garbage", "other-float"])
    )
    if what == "missing":
        del sd[key]
    elif what == "extra":
        sd[key + "_x"] = sd[key]
    elif what == "shape":
        sd[key] = np.zeros(sd[key].shape + (1,), dtype)
    elif what == "int":
        sd[key] = sd[key].astype(np.int64)
    elif what == "garbage":
        sd[key] = data.draw(st.sampled_from(["abc", None, object()]))
    else:
        sd[key] = sd[key].astype(np.float16 if np.dtype(dtype) == np.float32 else np.float32)
    before = {k: v.copy() for k, v in lstm.state_dict().items()}
    with pytest.raises((TypeError, ValueError, KeyError)):
        lstm.load_state_dict(sd)
    after = lstm.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # nothing changed


@FUZZ
@given(lstm_configs(), st.integers(0, 2**32 - 1))
def test_save_load_round_trip(tmp_path_factory, cfg, seed):
    _count("save-load")
    dtype = cfg.pop("dtype")
    lstm = fastlstm.LSTM(**cfg, dtype=dtype, seed=seed)
    p = tmp_path_factory.mktemp("fuzz") / "m.fastlstm"
    fastlstm.save(p, lstm)
    loaded = fastlstm.load(p)
    a, b = lstm.state_dict(), loaded.state_dict()
    assert list(a) == list(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)
    data = bytearray(p.read_bytes())
    rng = np.random.default_rng(seed)
    for _ in range(4):
        bad = bytearray(data)
        pos = int(rng.integers(len(bad)))
        bad[pos] = (bad[pos] + int(rng.integers(1, 256))) % 256
        p.write_bytes(bytes(bad))
        try:
            fastlstm.load(p)
        except ValueError:
            pass


@FUZZ
@given(st.integers(1, 6), st.integers(1, 8), st.sampled_from([np.float32, np.float64]), st.data())
def test_invalid_cell_calls(I, H, dtype, data):
    _count("invalid-cell")
    cell = fastlstm.LSTMCell(I, H, dtype=dtype, seed=0)
    other = np.float64 if np.dtype(dtype) == np.float32 else np.float32
    B = data.draw(st.integers(1, 4))
    x = np.ones((B, I), dtype)
    state = np.zeros((B, H), dtype)
    bad = data.draw(
        st.sampled_from(
            [
                (x.astype(other), None),
                (np.ones((B, I + 1), dtype), None),
                (np.ones((B, 1, I), dtype), None),
                (data.draw(st.sampled_from(_GARBAGE)), None),
                (x, (state,)),
                (x, state),
                (x, (state[:, :-1], state)),
                (x, (state, state.astype(other))),
                (x, (state, data.draw(st.sampled_from(_GARBAGE)))),
                (x, (state[:0], state[:0])),
            ]
        )
    )
    for call in (cell, cell.forward_train):
        with pytest.raises((TypeError, ValueError)):
            call(*bad)


@FUZZ
@given(lstm_configs(), st.integers(1, 4), st.data())
def test_invalid_stream_calls(cfg, B, data):
    _count("invalid-stream")
    dtype = cfg.pop("dtype")
    cfg["bidirectional"] = False
    lstm = fastlstm.LSTM(**cfg, dtype=dtype, seed=0)
    I, L = lstm.input_size, lstm.num_layers
    other = np.float64 if np.dtype(dtype) == np.float32 else np.float32
    s = lstm.stream(B)
    y0 = s.step(np.ones((B, I), dtype))
    what = data.draw(st.sampled_from(["step", "steps", "reset"]))
    if what == "step":
        bad = data.draw(
            st.sampled_from(
                [
                    np.ones((B, I), other),
                    np.ones((B + 1, I), dtype),
                    np.ones((B, I + 1), dtype),
                    np.ones((1, B, I), dtype),
                    np.ones(I, dtype),
                ]
                + _GARBAGE
            )
        )
        call = functools.partial(s.step, bad)
    elif what == "steps":
        bad = data.draw(
            st.sampled_from(
                [
                    np.ones((2, B, I), other),
                    np.ones((0, B, I), dtype),
                    np.ones((2, B + 1, I), dtype),
                    np.ones((B, I), dtype),
                ]
                + _GARBAGE
            )
        )
        call = functools.partial(s.steps, bad)
    else:
        h = np.zeros((L, B, lstm.proj_size or lstm.hidden_size), dtype)
        c = np.zeros((L, B, lstm.hidden_size), dtype)
        bad = data.draw(
            st.sampled_from(
                [
                    (h,),
                    h,
                    (h[:, :0], c),
                    (h, c.astype(other)),
                    (c[:, :, :, None], c),
                    ("garbage", c),
                ]
            )
        )
        call = functools.partial(s.reset, bad)
    state = s.state
    with pytest.raises((TypeError, ValueError)):
        call()
    # a refused call leaves the stream as it was
    assert all(np.array_equal(a, b) for a, b in zip(s.state, state))
    assert s.step(np.ones((B, I), dtype)).shape == y0.shape
    with pytest.raises((TypeError, ValueError)):
        lstm.stream(data.draw(st.sampled_from([0, -1, 1.5, "2", None])))


@FUZZ
@given(
    st.one_of(
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=True),
        st.text(max_size=3),
        st.none(),
        st.booleans(),
    )
)
def test_set_num_threads_accepts_only_a_bounded_integer(value):
    _count("threads")
    before = fastlstm.get_num_threads()
    valid = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value <= kernels.max_threads()
    )
    try:
        if valid:
            fastlstm.set_num_threads(value)
            assert fastlstm.get_num_threads() >= 1
        else:
            with pytest.raises((TypeError, ValueError)):
                fastlstm.set_num_threads(value)
            assert fastlstm.get_num_threads() == before
    finally:
        fastlstm.set_num_threads(before)
