"""Input validation, memory layouts, numerical stability of the activations,
and the packed-weights cache.

* Every bad input is the documented exception (ValueError/TypeError/
  KeyError/RuntimeError) and its message names the argument.
* Read-only and non-contiguous inputs give bitwise the answer of contiguous
  copies.
* Gate pre-activations up to +-1e30 give finite results equal to the
  reference's, without warnings (pytest turns warnings into errors).
* Parameters changed in place or by assignment are used by the next forward.
"""

import functools
import re

import numpy as np
import pytest

import fastlstm

from helpers import all_outputs, assert_bitwise, assert_close, random_array, reference_run

DTYPES = [np.float32, np.float64]
DT_IDS = ["f32", "f64"]
T, B, I, H, P = 5, 3, 4, 6, 2
# the layer against the float64 reference
assert_matches_reference = functools.partial(assert_close, against="reference")


def make(dtype=np.float32, **kw):
    return fastlstm.LSTM(I, H, dtype=dtype, seed=7, **kw)


def uniform(rng, shape, dtype=np.float32, scale=1.0):
    return random_array(rng, shape, dtype, scale)


def raises(exc, *words):
    """pytest.raises whose message must contain every word (escaped)."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(w)})" for w in words))


# ----------------------------------------------------------------------------
# forward inputs
# ----------------------------------------------------------------------------
class TestForwardInputs:
    def test_wrong_ndim(self, rng):
        lstm = make()
        for shape in [(I,), (1, T, B, I)]:
            with raises(ValueError, "x", str(shape)):
                lstm(uniform(rng, shape))

    @pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
    def test_wrong_last_dim(self, rng, batch_first):
        lstm = make(batch_first=batch_first)
        with raises(ValueError, "x", "input_size"):
            lstm(uniform(rng, (T, B, I + 1)))
        with raises(ValueError, "x", "input_size"):
            lstm(uniform(rng, (T, I + 1)))  # unbatched
        with raises(ValueError, "x", "input_size"):
            lstm.forward_train(uniform(rng, (T, B, I - 1)))

    def test_empty_sequence(self, rng):
        # (a batch of 0 sequences is valid: tests/layers/test_robustness.py)
        lstm = make()
        for shape in [(0, B, I), (0, I)]:
            with raises(ValueError, "x", "sequence length"):
                lstm(np.zeros(shape, np.float32))
            with raises(ValueError, "x", "sequence length"):
                lstm.forward_train(np.zeros(shape, np.float32))

    def test_float64_into_float32_layer(self, rng):
        lstm = make(np.float32)
        with raises(TypeError, "x", "float32", "float64"):
            lstm(uniform(rng, (T, B, I), np.float64))
        with raises(TypeError, "x", "float32", "float64"):
            lstm.forward_train(uniform(rng, (T, B, I), np.float64))

    def test_float32_into_float64_layer(self, rng):
        lstm = make(np.float64)
        with raises(TypeError, "x", "float32", "float64"):
            lstm(uniform(rng, (T, B, I), np.float32))

    @pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.complex64, bool])
    def test_non_float_x(self, dtype):
        lstm = make()
        with raises(TypeError, "x"):
            lstm(np.ones((T, B, I), dtype=dtype))

    def test_python_list_of_wrong_dtype(self):
        with raises(TypeError, "x"):
            make()([[[1, 2, 3, 4]]])  # int list -> int array

    def test_not_an_array(self):
        with raises(TypeError, "x"):
            make()("not an array")

    @pytest.mark.parametrize("which", ["h0", "c0"])
    def test_wrong_state_shape(self, rng, which):
        lstm = make(num_layers=2, proj_size=P)
        x = uniform(rng, (T, B, I))
        good = dict(h0=uniform(rng, (2, B, P)), c0=uniform(rng, (2, B, H)))
        wrong = {
            "h0": [(1, B, P), (2, B + 1, P), (2, B, H), (2, P)],
            "c0": [(1, B, H), (2, B - 1, H), (2, B, P), (2, B, H, 1)],
        }[which]
        for shape in wrong:
            state = dict(good, **{which: uniform(rng, shape)})
            with raises(ValueError, which):
                lstm(x, (state["h0"], state["c0"]))
        # dtype of the state
        state = dict(good, **{which: good[which].astype(np.float64)})
        with raises(TypeError, which, "float64"):
            lstm(x, (state["h0"], state["c0"]))

    def test_unbatched_state_shape(self, rng):
        lstm = make()
        x = uniform(rng, (T, I))
        with raises(ValueError, "h0"):
            lstm(x, (uniform(rng, (1, 1, H)), uniform(rng, (1, H))))

    @pytest.mark.parametrize("hx", ["array", "triple", "single", "string"])
    def test_hx_not_a_pair(self, rng, hx):
        lstm = make()
        h0 = uniform(rng, (1, B, H))
        bad = {
            "array": np.stack([h0, h0]),
            "triple": (h0, h0, h0),
            "single": (h0,),
            "string": "h0c0",
        }[hx]
        with raises(TypeError, "hx"):
            lstm(uniform(rng, (T, B, I)), bad)

    @pytest.mark.parametrize(
        "lengths,exc",
        [
            ([1, 2, T + 1], ValueError),
            ([-1, 2, 3], ValueError),
            ([2, 3], ValueError),
            ([[2, 3, 1]], ValueError),
            ([1.5, 2, 3], TypeError),
            (["a", "b", "c"], TypeError),
        ],
        ids=["above-T", "negative", "short", "2-D", "fractional", "strings"],
    )
    def test_bad_lengths(self, rng, lengths, exc):
        lstm = make()
        with raises(exc, "lengths"):
            lstm(uniform(rng, (T, B, I)), lengths=np.array(lengths))
        with raises(exc, "lengths"):
            lstm.forward_train(uniform(rng, (T, B, I)), lengths=np.array(lengths))

    def test_integer_valued_float_lengths_accepted(self, rng):
        lstm = make()
        x = uniform(rng, (T, B, I))
        a = lstm(x, lengths=np.array([3.0, 1.0, 5.0]))
        b = lstm(x, lengths=np.array([3, 1, 5], dtype=np.int32))
        for u, v in zip([a[0], *a[1]], [b[0], *b[1]]):
            np.testing.assert_array_equal(u, v)

    def test_lengths_with_unbatched_input(self, rng):
        with raises(ValueError, "lengths"):
            make()(uniform(rng, (T, I)), lengths=np.array([T]))


# ----------------------------------------------------------------------------
# backward inputs
# ----------------------------------------------------------------------------
class TestBackwardInputs:
    def setup_method(self):
        self.rng = np.random.default_rng(5)
        self.lstm = make(num_layers=2, bidirectional=True, batch_first=True)
        self.x = uniform(self.rng, (B, T, I))
        self.out, _, self.backward = self.lstm.forward_train(self.x)

    def test_d_output_wrong_shape(self):
        for shape in [(T, B, 2 * H), (B, T, H), (B, T), (B, T, 2 * H, 1)]:
            with raises(ValueError, "d_output"):
                self.backward(uniform(self.rng, shape))

    def test_d_output_wrong_dtype(self):
        with raises(TypeError, "d_output", "float64"):
            self.backward(self.out.astype(np.float64))
        with raises(TypeError, "d_output"):
            self.backward(np.ones(self.out.shape, dtype=np.int64))

    def test_d_state_wrong(self):
        d = np.ones_like(self.out)
        with raises(TypeError, "d_state"):
            self.backward(d, np.zeros((4, B, H), np.float32))
        with raises(ValueError, "dh_n"):
            self.backward(d, (np.zeros((4, B, H + 1), np.float32), None))
        with raises(ValueError, "dc_n"):
            self.backward(d, (None, np.zeros((2, B, H), np.float32)))
        with raises(TypeError, "dc_n"):
            self.backward(d, (None, np.zeros((4, B, H), np.float64)))

    def test_failed_validation_does_not_consume_backward(self):
        """A rejected call leaves the backward usable, and its result right."""
        with raises(ValueError, "d_output"):
            self.backward(np.ones((B, T, H), np.float32))
        self.lstm.zero_grad()
        d = uniform(self.rng, self.out.shape)
        dx, _ = self.backward(d)
        expected = reference_run(self.lstm, self.x, d_output=d)
        assert_matches_reference(dx, expected["dx"], np.float32, "dx")
        for k, g in expected["grads"].items():
            assert_matches_reference(self.lstm.grads[k], g, np.float32, k)

    def test_backward_twice(self):
        d = np.ones_like(self.out)
        self.backward(d)
        grads = {k: v.copy() for k, v in self.lstm.grads.items()}
        with raises(RuntimeError, "backward"):
            self.backward(d)
        for k, v in grads.items():  # the refused call added nothing
            np.testing.assert_array_equal(self.lstm.grads[k], v)


# ----------------------------------------------------------------------------
# constructor
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,exc,name",
    [
        (dict(hidden_size=0), ValueError, "hidden_size"),
        (dict(hidden_size=-3), ValueError, "hidden_size"),
        (dict(hidden_size=2.5), ValueError, "hidden_size"),
        (dict(hidden_size=True), ValueError, "hidden_size"),
        (dict(input_size=0), ValueError, "input_size"),
        (dict(num_layers=0), ValueError, "num_layers"),
        (dict(proj_size=-1), ValueError, "proj_size"),
        (dict(proj_size=H), ValueError, "proj_size"),
        (dict(proj_size=H + 1), ValueError, "proj_size"),
        (dict(dropout=1.0), ValueError, "dropout"),
        (dict(dropout=-0.1), ValueError, "dropout"),
        (dict(dtype=np.int32), TypeError, "dtype"),
        (dict(dtype=int), TypeError, "dtype"),
        (dict(dtype=np.float16), TypeError, "dtype"),
        (dict(dtype="complex128"), TypeError, "dtype"),
    ],
    ids=lambda v: repr(v) if not isinstance(v, type) else v.__name__,
)
def test_bad_constructor_args(kwargs, exc, name):
    args = dict(input_size=I, hidden_size=H)
    args.update(kwargs)
    with raises(exc, name):
        fastlstm.LSTM(**args)


def test_good_constructor_edge_values():
    fastlstm.LSTM(1, 1)
    fastlstm.LSTM(I, H, proj_size=H - 1, dropout=0.999, num_layers=2)
    fastlstm.LSTM(np.int64(I), np.int32(H), dtype="float64")


# ----------------------------------------------------------------------------
# load_state_dict
# ----------------------------------------------------------------------------
class TestLoadStateDict:
    def setup_method(self):
        self.rng = np.random.default_rng(11)
        self.lstm = make(num_layers=2, bidirectional=True, proj_size=P)
        self.before = self.lstm.state_dict()
        self.x = uniform(self.rng, (T, B, I))
        self.out_before = self.lstm(self.x)[0]
        # a complete, valid, different state dict
        self.new = {k: uniform(self.rng, v.shape) for k, v in self.before.items()}

    def assert_unchanged(self):
        after = self.lstm.state_dict()
        assert list(after) == list(self.before)
        for k, v in self.before.items():
            np.testing.assert_array_equal(after[k], v, err_msg=k)
        np.testing.assert_array_equal(self.lstm(self.x)[0], self.out_before)

    def test_missing_key(self):
        del self.new["bias_hh_l1_reverse"]
        with raises(KeyError, "bias_hh_l1_reverse"):
            self.lstm.load_state_dict(self.new)
        self.assert_unchanged()

    def test_extra_key(self):
        self.new["weight_ih_l2"] = np.zeros((4 * H, 2 * P), np.float32)
        with raises(KeyError, "weight_ih_l2"):
            self.lstm.load_state_dict(self.new)
        self.assert_unchanged()

    @pytest.mark.parametrize("key", ["weight_ih_l0", "weight_hr_l1_reverse", "bias_ih_l1"])
    def test_wrong_shape(self, key):
        # keys before `key` are fine: nothing may be half-loaded
        self.new[key] = np.zeros(self.before[key].shape + (1,), np.float32)
        with raises(ValueError, key):
            self.lstm.load_state_dict(self.new)
        self.assert_unchanged()
        shape = self.before[key].shape
        self.new[key] = np.zeros(shape[:1] if len(shape) == 2 else (shape[0], 1), np.float32)
        with raises(ValueError, key):
            self.lstm.load_state_dict(self.new)
        self.assert_unchanged()

    def test_wrong_kind(self):
        self.new["weight_hh_l1"] = np.ones(self.before["weight_hh_l1"].shape, np.int64)
        with raises(TypeError, "weight_hh_l1"):
            self.lstm.load_state_dict(self.new)
        self.assert_unchanged()

    def test_valid_load_is_used(self):
        self.lstm.load_state_dict(self.new)
        sd = self.lstm.state_dict()
        for k, v in self.new.items():
            np.testing.assert_array_equal(sd[k], v)
        expected = reference_run(self.lstm, self.x)
        assert_matches_reference(self.lstm(self.x)[0], expected["output"], np.float32)

    def test_state_dict_is_a_copy(self):
        sd = self.lstm.state_dict()
        sd["weight_ih_l0"][...] = 0
        self.assert_unchanged()


# ----------------------------------------------------------------------------
# read-only and non-contiguous inputs
# ----------------------------------------------------------------------------
def strided(a, how):
    """The same values as `a`, in a non-contiguous / other-order array."""
    if how == "fortran":
        out = np.asfortranarray(a)
        assert not out.flags.c_contiguous
        return out
    if how == "step":  # every other element of a bigger buffer along the last axis
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        out = big[..., ::2]
        assert not out.flags.c_contiguous
        return out
    if how == "reversed":  # negative strides
        big = a[::-1].copy()
        return big[::-1]
    raise AssertionError(how)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("layout", ["readonly", "fortran", "step", "reversed"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
def test_layouts_bitwise(rng, layout, batch_first, dtype):
    lstm = make(dtype, num_layers=2, bidirectional=True, proj_size=P, batch_first=batch_first)
    x = uniform(rng, (B, T, I) if batch_first else (T, B, I), dtype)
    h0 = uniform(rng, (4, B, P), dtype)
    c0 = uniform(rng, (4, B, H), dtype)
    d_out = uniform(rng, (B, T, 2 * P) if batch_first else (T, B, 2 * P), dtype)
    dh_n, dc_n = uniform(rng, (4, B, P), dtype), uniform(rng, (4, B, H), dtype)
    lengths = np.array([2, T, 1])
    expected = all_outputs(lstm, x, (h0, c0), lengths, d_out, (dh_n, dc_n))

    if layout == "readonly":
        arrays = [a.copy() for a in (x, h0, c0, d_out, dh_n, dc_n, lengths)]
        for a in arrays:
            a.flags.writeable = False
    else:
        arrays = [strided(a, layout) for a in (x, h0, c0, d_out, dh_n, dc_n)] + [lengths]
    xs, h0s, c0s, ds, dhs, dcs, ls = arrays
    got = all_outputs(lstm, xs, (h0s, c0s), ls, ds, (dhs, dcs))
    assert_bitwise(got, expected)
    # nothing was written into the inputs
    for a, b in zip(arrays, (x, h0, c0, d_out, dh_n, dc_n, lengths)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_transposed_views(rng, dtype):
    """A (T, B, I) array viewed as batch-first (and the other way round)."""
    lstm_bf = make(dtype, batch_first=True, bidirectional=True)
    lstm_tm = make(dtype, batch_first=False, bidirectional=True)
    xt = uniform(rng, (T, B, I), dtype)
    view = xt.transpose(1, 0, 2)  # (B, T, I), not C-contiguous
    assert not view.flags.c_contiguous
    d_tm = uniform(rng, (T, B, 2 * H), dtype)
    for lstm, x, d in [
        (lstm_bf, view, d_tm.transpose(1, 0, 2)),
        (
            lstm_tm,
            np.ascontiguousarray(view).transpose(1, 0, 2),
            np.ascontiguousarray(d_tm.transpose(1, 0, 2)).transpose(1, 0, 2),
        ),
    ]:
        got = all_outputs(lstm, x, None, None, d, None)
        want = all_outputs(lstm, np.ascontiguousarray(x), None, None, np.ascontiguousarray(d), None)
        assert_bitwise(got, want)


def test_zero_strided_broadcast_input(rng):
    lstm = make()
    row = uniform(rng, (I,))
    x = np.broadcast_to(row, (T, B, I))
    assert not x.flags.writeable
    got = all_outputs(lstm, x, None, None, np.ones((T, B, H), np.float32), None)
    want = all_outputs(lstm, x.copy(), None, None, np.ones((T, B, H), np.float32), None)
    assert_bitwise(got, want)


# ----------------------------------------------------------------------------
# sigmoid / tanh stability
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_huge_preactivations(rng, dtype):
    """Weights scaled so the gate pre-activations reach +-1e30."""
    lstm = make(dtype, num_layers=1, bidirectional=True)
    # |gates| <= (I + H + 2) * 1e30 < float32 max
    lstm.load_state_dict(
        {k: uniform(rng, v.shape, dtype) * dtype(1e30) for k, v in lstm.state_dict().items()}
    )
    x = uniform(rng, (T, B, I), dtype)
    h0, c0 = uniform(rng, (2, B, H), dtype), uniform(rng, (2, B, H), dtype)
    d_out = uniform(rng, (T, B, 2 * H), dtype)
    dh_n, dc_n = uniform(rng, (2, B, H), dtype), uniform(rng, (2, B, H), dtype)
    pre = np.abs(x[0] @ lstm.weight_ih_l0.T.astype(np.float64))
    assert pre.max() > 1e29  # really that large

    out, (h_n, c_n), backward = lstm.forward_train(x, (h0, c0))
    dx, (dh0, dc0) = backward(d_out, (dh_n, dc_n))
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # reference clean
        expected = reference_run(lstm, x, h0, c0, d_output=d_out, d_state=(dh_n, dc_n))
    got = dict(output=out, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0)
    for k, v in got.items():
        assert np.all(np.isfinite(v)), k
        assert_matches_reference(v, expected[k], dtype, k)
    for k, g in expected["grads"].items():
        assert np.all(np.isfinite(lstm.grads[k])), k
        assert_matches_reference(lstm.grads[k], g, dtype, k)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_activations_accurate_to_rounding(dtype):
    """sigmoid and tanh of the compiled gate loop (float32: polynomial exp /
    expm1, csrc/activations.h) against float64 closed forms, relative, over
    a dense sweep: one batch row per value v, 16 units (the vector lanes)
    with every gate's pre-activation = v, c0 = 0, so c = sigmoid(v) tanh(v)
    and h = sigmoid(v) tanh(c) (where that is a normal number).  Each of
    sigmoid, tanh and the product is a few units of rounding, so 4 eps bounds
    both (a cheap approximation accurate to 1e-6 fails it)."""
    mags = np.concatenate([np.logspace(-10, np.log10(80.0), 3000), np.linspace(0, 12, 3001)[1:]])
    v = np.concatenate([mags, -mags]).astype(dtype)
    Hs = 16
    lstm = fastlstm.LSTM(1, Hs, bias=False, dtype=dtype)
    lstm.weight_ih_l0 = np.ones((4 * Hs, 1), dtype)
    lstm.weight_hh_l0 = np.zeros((4 * Hs, Hs), dtype)
    _, (h_n, c_n) = lstm(v.reshape(1, -1, 1))
    v64 = v.astype(np.float64)
    sig = (1 / (1 + np.exp(-v64)))[:, None]
    c_exact = sig * np.tanh(v64)[:, None]
    h_exact = sig * np.tanh(c_n[0].astype(np.float64))  # h given the c it got
    bound = 4 * np.finfo(dtype).eps
    for name, got, want in (("c", c_n[0], c_exact), ("h", h_n[0], h_exact)):
        normal = np.abs(want) >= np.finfo(dtype).tiny  # h of v < -50 underflows
        rel = np.where(normal, np.abs(got - want) / np.where(normal, np.abs(want), 1), 0)
        assert normal.mean() > 0.9 and rel.max() <= bound, (
            name,
            float(rel.max()),
            float(v[rel.max(axis=1).argmax()]),
        )


EDGE = [
    0.0,
    1e-30,
    1e-7,
    0.5,
    1.0,
    5.0,
    15.0,
    17.0,
    20.0,
    40.0,
    44.0,
    80.0,
    88.0,
    88.8,
    89.0,
    100.0,
    700.0,
    709.0,
    710.0,
    1000.0,
    1e4,
    1e10,
    1e20,
    1e30,
]


def edge_layer(dtype):
    """One unit per value v of +-EDGE; every gate of unit u gets the
    pre-activation v[u] (x = 1, W_ih[:, 0] = v, no bias, W_hh = 0)."""
    v = np.array([s * e for e in EDGE for s in (1, -1)], dtype=dtype)
    Hs = v.size
    lstm = fastlstm.LSTM(1, Hs, bias=False, dtype=dtype)
    w = np.zeros((4 * Hs, 1), dtype)
    w[:, 0] = np.tile(v, 4)
    lstm.weight_ih_l0 = w
    lstm.weight_hh_l0 = np.zeros((4 * Hs, Hs), dtype)
    return lstm, v


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_activation_edges_forward(dtype):
    """With c0 = v as well, c = sigmoid(v) * v + sigmoid(v) * tanh(v) and
    h = sigmoid(v) * tanh(c): sigmoid and tanh across their overflow
    thresholds (exp(88.7) overflows float32, exp(709.8) float64), up to 1e30."""
    lstm, v = edge_layer(dtype)
    x = np.ones((1, 1, 1), dtype)
    h0 = np.zeros((1, 1, v.size), dtype)
    c0 = v.reshape(1, 1, -1).copy()
    out, (h_n, c_n) = lstm(x, (h0, c0))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        expected = reference_run(lstm, x, h0, c0)
    v64 = v.astype(np.float64)
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(v64))
    sig = np.where(v64 >= 0, 1, e) / (1 + e)
    c_exact = sig * v64 + sig * np.tanh(v64)
    np.testing.assert_allclose(expected["c_n"][0, 0], c_exact, rtol=1e-14)
    for name, got in dict(output=out, h_n=h_n, c_n=c_n).items():
        assert np.all(np.isfinite(got)), name
        assert_matches_reference(got, expected[name], dtype, name)
    assert_matches_reference(c_n[0, 0], c_exact, dtype, "c_n vs closed form")
    assert np.all(np.abs(h_n) <= 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_activation_edges_backward(dtype):
    """The same pre-activations, O(1) c0: every gradient equals the reference's."""
    lstm, v = edge_layer(dtype)
    x = np.ones((1, 1, 1), dtype)
    h0 = np.zeros((1, 1, v.size), dtype)
    c0 = np.full((1, 1, v.size), 0.5, dtype)
    out, (h_n, c_n), backward = lstm.forward_train(x, (h0, c0))
    d_out, dc_n = np.ones_like(out), np.ones_like(c_n)
    dx, (dh0, dc0) = backward(d_out, (None, dc_n))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        expected = reference_run(lstm, x, h0, c0, d_output=d_out, d_state=(None, dc_n))
    for name, got in dict(output=out, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0).items():
        assert np.all(np.isfinite(got)), name
        assert_matches_reference(got, expected[name], dtype, name)
    for k, g in expected["grads"].items():
        assert_matches_reference(lstm.grads[k], g, dtype, k)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_closed_forget_gate_passes_no_gradient(dtype):
    """A forget gate saturated shut (pre-activation -1e30) must pass (almost)
    no gradient: f = sigmoid(-1e30) is 0 in float32 and float64, so
    c_n = f * c0 + i * g is 0 here and dx = 0, dc0 = 0 (the reference gives
    exactly that).  The compiled float32 sigmoid clamps its argument to
    [-87, 87] (csrc/activations.h) and returns exactly 0 below -87: without
    that, sigmoid would bottom out at 1/(1 + e^87) = 1.6e-38, and multiplied
    by c_prev = -1e30 and by the weight -1e30, dx would come out as 1.6e22
    instead of 0 (and c_n as -1.6e-8)."""
    lstm = fastlstm.LSTM(1, 1, bias=False, dtype=dtype)
    lstm.weight_ih_l0 = np.full((4, 1), -1e30, dtype)  # every gate: -1e30
    lstm.weight_hh_l0 = np.zeros((4, 1), dtype)
    x = np.ones((1, 1, 1), dtype)
    h0 = np.zeros((1, 1, 1), dtype)
    c0 = np.full((1, 1, 1), -1e30, dtype)
    out, (h_n, c_n), backward = lstm.forward_train(x, (h0, c0))
    dx, (dh0, dc0) = backward(np.zeros_like(out), (None, np.ones_like(c_n)))
    expected = reference_run(
        lstm, x, h0, c0, d_output=np.zeros_like(out), d_state=(None, np.ones_like(c_n))
    )
    assert expected["dx"].ravel()[0] == 0 and expected["c_n"].ravel()[0] == 0
    assert_matches_reference(c_n, expected["c_n"], dtype, "c_n")
    assert_matches_reference(dc0, expected["dc0"], dtype, "dc0")
    assert_matches_reference(dx, expected["dx"], dtype, "dx")


# ----------------------------------------------------------------------------
# parameters changed in place or by assignment (the packed-weights cache)
# ----------------------------------------------------------------------------
def check_matches_reference(lstm, x, h0=None, c0=None):
    out, (h_n, c_n) = lstm(x, None if h0 is None else (h0, c0))
    expected = reference_run(lstm, x, h0, c0)
    assert_matches_reference(out, expected["output"], lstm.dtype.type, "output")
    assert_matches_reference(h_n, expected["h_n"], lstm.dtype.type, "h_n")
    assert_matches_reference(c_n, expected["c_n"], lstm.dtype.type, "c_n")
    return out


INPLACE = {
    "imul-attr": lambda l: l.__setattr__("weight_hh_l0", l.weight_hh_l0 * 0.5),
    "imul-operator": None,  # lstm.weight_hh_l0 *= 0.5, below
    "ellipsis-assign": lambda l: l.weight_hh_l0.__setitem__(Ellipsis, l.weight_hh_l0[::-1]),
    "one-element": lambda l: l.weight_hh_l0.__setitem__((3, 1), 0.75),
    "alias-imul": lambda l: np.multiply(l.weight_hh_l0, 0.5, out=l.weight_hh_l0),
    "named_parameters-step": lambda l: [
        p.__isub__(0.1 * np.sign(p)) for _, p in l.named_parameters()
    ],
    "reverse-direction": lambda l: l.weight_hh_l1_reverse.__imul__(-1.0),
    "projection": lambda l: l.weight_hr_l1.__setitem__(Ellipsis, l.weight_hr_l1 * 2),
    "projection-one-element": lambda l: l.weight_hr_l0_reverse.__setitem__((0, 0), 3.0),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("change", list(INPLACE))
def test_parameter_changes_are_seen(rng, change, dtype):
    lstm = make(dtype, num_layers=2, bidirectional=True, proj_size=P)
    x = uniform(rng, (T, B, I), dtype)
    h0, c0 = uniform(rng, (4, B, P), dtype), uniform(rng, (4, B, H), dtype)
    before = check_matches_reference(lstm, x, h0, c0)  # fills the pack cache
    if change == "imul-operator":
        lstm.weight_hh_l0 *= 0.5
    else:
        INPLACE[change](lstm)
    after = check_matches_reference(lstm, x, h0, c0)
    assert not np.array_equal(before, after), "the change must matter"


def test_pack_cache_check_compares_every_byte():
    """The cache's check (one call per layer) against np.array_equal on the
    bytes: a change anywhere, a missing or extra array, a different size or
    a buffer it cannot read in place all count as changed."""
    from fastlstm._native import kernels

    rng = np.random.default_rng(5)
    a, b = rng.random((6, 5)).astype(np.float32), rng.random(7).astype(np.float32)
    same = kernels.same_weights
    assert same((a, b, None), (a.copy(), b.copy(), None))
    for k in (0, 61, a.nbytes - 1):  # first, a middle and the last byte
        changed = a.copy()
        changed.reshape(-1).view(np.uint8)[k] ^= 1
        assert not same((a, b, None), (changed, b, None))
    assert not same((a, b, None), (a, b, b))  # None against an array
    assert not same((a, b, b), (a, b, None))
    assert not same((a, b), (a, b, None))  # a different count
    assert not same((b,), (b[:-1].copy(),))  # a different size
    wide = np.ascontiguousarray(np.repeat(a, 2, axis=1))
    assert not same((a,), (wide[:, ::2],))  # equal values, not C-contiguous
    assert same((a,), (wide[:, ::2].copy(),))


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_backward_uses_the_weights_of_its_forward(rng, dtype):
    """Weights replaced by assignment between forward_train and backward:
    backward still differentiates the forward it belongs to."""
    lstm = make(dtype, num_layers=2, proj_size=P)
    x = uniform(rng, (T, B, I), dtype)
    d = uniform(rng, (T, B, P), dtype)
    expected = reference_run(lstm, x, d_output=d)
    out, _, backward = lstm.forward_train(x)
    lstm.weight_hh_l0 = lstm.weight_hh_l0 * 0.25
    lstm.weight_hr_l1 = np.zeros_like(lstm.weight_hr_l1)
    lstm.weight_ih_l1 = np.zeros_like(lstm.weight_ih_l1)
    dx, _ = backward(d)
    assert_matches_reference(dx, expected["dx"], dtype, "dx")
    for k, g in expected["grads"].items():
        assert_matches_reference(lstm.grads[k], g, dtype, k)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("weight_hh_l0", {"proj_size": P}),
        ("weight_ih_l1", {"proj_size": P}),
        ("weight_hr_l1", {"proj_size": P}),
        ("weight_peephole_l1", {"peepholes": True}),
    ],
)
def test_backward_refuses_weights_modified_in_place(rng, name, kw):
    """A weight modified in place between forward_train and backward (an
    optimizer step before backward): backward raises, as PyTorch does,
    instead of differentiating other weights than the forward used, and
    leaves the gradients untouched."""
    dtype = np.float64
    lstm = make(dtype, num_layers=2, **kw)
    x = uniform(rng, (T, B, I), dtype)
    d = uniform(rng, (T, B, kw.get("proj_size", H)), dtype)
    expected = reference_run(lstm, x, d_output=d)
    out, _, backward = lstm.forward_train(x)
    w = getattr(lstm, name)
    kept = w.flat[0]
    w.flat[0] = kept + 1  # one element
    with pytest.raises(RuntimeError, match="modified in place before backward"):
        backward(d)
    assert all(not g.any() for g in lstm.grads.values())
    w.flat[0] = kept  # the forward's weights again: backward runs
    dx, _ = backward(d)
    assert_matches_reference(dx, expected["dx"], dtype, "dx")


@pytest.mark.parametrize("lengths", [None, [2, T, 1]], ids=["full", "ragged"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_training_steps_reuse_buffers(rng, dtype, lengths):
    """A training step reuses the buffers of the previous one (still holding
    its values) and gives what a fresh layer gives; two forward_trains in
    flight never share buffers."""
    lstm = make(dtype, num_layers=2, bidirectional=True, proj_size=P)
    steps = [(uniform(rng, (T, B, I), dtype), uniform(rng, (T, B, 2 * P), dtype)) for _ in range(3)]
    lens = None if lengths is None else np.array(lengths)

    def step(layer, x, d):
        layer.zero_grad()
        out, _, backward = layer.forward_train(x, lengths=lens)
        dx, _ = backward(d)
        return [out, dx] + [g.copy() for g in layer.grads.values()]

    for x, d in steps:
        fresh = make(dtype, num_layers=2, bidirectional=True, proj_size=P)
        want = step(fresh, x, d)
        kept = {id(a) for arrays in lstm._train_buffers._free.values() for a in arrays}
        got = step(lstm, x, d)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    assert kept, "the previous step gave its buffers back"
    # two steps in flight: the second allocates its own
    _, _, back1 = lstm.forward_train(steps[0][0], lengths=lens)
    _, _, back2 = lstm.forward_train(steps[1][0], lengths=lens)
    lstm.zero_grad()
    back2(steps[1][1])
    g2 = [g.copy() for g in lstm.grads.values()]
    lstm.zero_grad()
    back1(steps[0][1])
    g1 = [g.copy() for g in lstm.grads.values()]
    for (x, d), got in ((steps[0], g1), (steps[1], g2)):
        want = step(make(dtype, num_layers=2, bidirectional=True, proj_size=P), x, d)[2:]
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_parameter_assignment(rng, dtype):
    lstm = make(dtype, bidirectional=True)
    x = uniform(rng, (T, B, I), dtype)
    check_matches_reference(lstm, x)
    other = np.float32 if dtype == np.float64 else np.float64
    with raises(TypeError, "weight_ih_l0", np.dtype(dtype).name):  # no silent conversion
        lstm.weight_ih_l0 = uniform(rng, (4 * H, I), other)
    new = uniform(rng, (4 * H, I), dtype)
    lstm.weight_ih_l0 = new
    assert lstm.weight_ih_l0.dtype == np.dtype(dtype)
    assert lstm.weight_ih_l0.flags.c_contiguous
    np.testing.assert_array_equal(lstm.weight_ih_l0, new)
    assert lstm.weight_ih_l0 is not new
    check_matches_reference(lstm, x)
    new_hh = uniform(rng, (H, 4 * H), dtype).T  # a non-contiguous view
    lstm.weight_hh_l0_reverse = new_hh
    np.testing.assert_array_equal(lstm.weight_hh_l0_reverse, new_hh)
    check_matches_reference(lstm, x)
    new_hh[...] = 0  # the layer holds its own copy
    assert np.any(lstm.weight_hh_l0_reverse)

    before = lstm.state_dict()
    with raises(ValueError, "weight_ih_l0", str((4 * H, I))):
        lstm.weight_ih_l0 = np.zeros((4 * H, I + 1), dtype)
    with raises(ValueError, "bias_hh_l0"):
        lstm.bias_hh_l0 = np.zeros((4 * H, 1), dtype)
    with raises(TypeError, "weight_hh_l0"):
        lstm.weight_hh_l0 = np.zeros((4 * H, H), np.int32)
    for k, v in lstm.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    check_matches_reference(lstm, x)


@pytest.mark.parametrize("what", ["output", "x", "h0", "c0"])
def test_backward_refuses_arrays_modified_in_place(rng, what):
    """Backward reads the input and the output as the forward saw them (they
    are not copied), and hx too unless the forward took a copy: modified in
    place in between, it raises rather than give wrong gradients (the
    output and x always; hx only when used in place), and once they hold
    their values again it gives the right ones."""
    lstm = make(np.float64, num_layers=2, bidirectional=True)
    x = uniform(rng, (T, B, I), np.float64)
    hx = (uniform(rng, (4, B, H), np.float64), uniform(rng, (4, B, H), np.float64))
    out, _, backward = lstm.forward_train(x, hx=hx, lengths=np.array([T, 2, 1]))
    d = np.ones_like(out)
    expected = reference_run(lstm, x, h0=hx[0], c0=hx[1], lengths=[T, 2, 1], d_output=d)
    a = {"output": out, "x": x, "h0": hx[0], "c0": hx[1]}[what]
    kept = a[0, 0, 0].copy()
    a[0, 0, 0] += 1.0
    try:
        dx, _ = backward(d)
    except RuntimeError as e:
        assert "modified in place before backward" in str(e)
        a[0, 0, 0] = kept
        dx, _ = backward(d)  # the refused call did not use the backward up
    else:
        assert what in ("h0", "c0"), f"a modified {what} was not noticed"
    assert_matches_reference(dx, expected["dx"], np.float64, "dx")
    for k, g in expected["grads"].items():
        assert_matches_reference(lstm.grads[k], g, np.float64, k)
