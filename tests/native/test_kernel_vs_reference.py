"""The compiled layer (fastlstm.LSTM) against the numpy specification
(fastlstm.reference): forward outputs and every gradient.

The reference always runs in float64 on the very same (float32-representable)
inputs, so a float32 comparison measures only the compiled kernel's rounding.
Tolerances are relative to the scale of each compared array (a weight
gradient is a sum over T*B steps; its small entries carry the absolute error
of its large ones).
"""

import functools

import numpy as np
import pytest

from fastlstm import reference as ref

from helpers import (
    LayerProblem,
    assert_close,
    assert_results_close,
    layer_matrix,
    random_array,
    reference_run,
)

DTYPES = [np.float32, np.float64]
# the kernel against the float64 reference, each error relative to the scale
# of the compared array
assert_matches_reference = functools.partial(assert_close, against="reference", scale=True)
results_match_reference = functools.partial(assert_results_close, against="reference", scale=True)


class Case(LayerProblem):
    """One configuration with random parameters, non-zero h0/c0, inputs and
    upstream gradients, all in `dtype`."""

    def __init__(self, rng, dtype, T, B, I, H, **config):
        super().__init__(T, B, I, H, **config)
        self.dtype = dtype
        shapes = ref.parameter_shapes(
            I, H, self.num_layers, self.bias, self.bidirectional, self.proj_size
        )
        self.params = {k: random_array(rng, s, dtype, 1 / np.sqrt(H)) for k, s in shapes.items()}
        self.x = random_array(rng, self.x_shape, dtype)
        self.h0 = random_array(rng, self.h_shape, dtype, 0.8)
        self.c0 = random_array(rng, self.c_shape, dtype, 0.8)
        self.d_output = random_array(rng, self.output_shape, dtype)
        self.dh_n = random_array(rng, self.h_shape, dtype)
        self.dc_n = random_array(rng, self.c_shape, dtype)

    def layer(self):
        lstm = self.make_lstm(self.dtype, seed=0)
        lstm.load_state_dict(self.params)
        return lstm

    def reference(self, d_output, dh_n, dc_n):
        """Forward and backward of the float64 reference on the same values."""
        return reference_run(
            self, self.x, self.h0, self.c0, self.lengths, d_output, (dh_n, dc_n), self.params
        )


def check_against_reference(case, d_state_mode="both"):
    dh_n = case.dh_n if d_state_mode in ("both", "dh_only") else None
    dc_n = case.dc_n if d_state_mode in ("both", "dc_only") else None
    d_state = None if d_state_mode == "none" else (dh_n, dc_n)
    expected = case.reference(case.d_output, dh_n, dc_n)
    dt = case.dtype

    lstm = case.layer()
    out, (h_n, c_n) = lstm(case.x, (case.h0, case.c0), lengths=case.lengths)
    results_match_reference(dict(output=out, h_n=h_n, c_n=c_n), expected, dt, "inference ")

    out, (h_n, c_n), backward = lstm.forward_train(case.x, (case.h0, case.c0), lengths=case.lengths)
    results_match_reference(dict(output=out, h_n=h_n, c_n=c_n), expected, dt)
    dx, (dh0, dc0) = backward(case.d_output, d_state)
    assert set(lstm.grads) == set(case.params)
    results_match_reference(dict(dx=dx, dh0=dh0, dc0=dc0, grads=lstm.grads), expected, dt)


# ----------------------------------------------------------------------------
# Sizes: T, B, I, H from {1, 2, 7, 17, 64}.  (a, b, a+b, a+2b) mod 5 is an
# orthogonal array of strength 2: every value pair appears in every pair of
# positions (so each value in each position, T=1 with B=1, H=64 with I=1, ...)
# in 25 combinations instead of 625.
# ----------------------------------------------------------------------------
VALUES = [1, 2, 7, 17, 64]
SIZES = [
    (VALUES[a], VALUES[b], VALUES[(a + b) % 5], VALUES[(a + 2 * b) % 5])
    for a in range(5)
    for b in range(5)
]
# Alternate the direction so both the forward and the reverse time loop see
# every size class.
SIZE_CASES = [(T, B, I, H, k % 2 == 1) for k, (T, B, I, H) in enumerate(SIZES)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(
    "T,B,I,H,bidirectional",
    SIZE_CASES,
    ids=[f"T{T}-B{B}-I{I}-H{H}-{'bi' if bi else 'uni'}" for T, B, I, H, bi in SIZE_CASES],
)
def test_sizes(rng, T, B, I, H, bidirectional, dtype):
    case = Case(rng, dtype, T, B, I, H, bidirectional=bidirectional)
    check_against_reference(case)


def test_size_grid_covers_every_value_in_every_position():
    for pos in range(4):
        assert {s[pos] for s in SIZES} == set(VALUES)
    assert (1, 1) in {(T, B) for T, B, _, _ in SIZES}
    assert (1, 64) in {(I, H) for _, _, I, H in SIZES}


# ----------------------------------------------------------------------------
# d_state: given, None, and partially None
# ----------------------------------------------------------------------------
# one configuration per row
# fmt: off
D_STATE_CONFIGS = {
    "1layer": dict(T=6, B=3, I=4, H=7),
    "2layer-bi-proj-ragged": dict(T=6, B=4, I=3, H=7, num_layers=2, bidirectional=True,
                                  proj_size=3, lengths=np.array([4, 1, 6, 2])),
}
# fmt: on


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("mode", ["both", "none", "dh_only", "dc_only"])
@pytest.mark.parametrize("config", list(D_STATE_CONFIGS))
def test_d_state(rng, config, mode, dtype):
    case = Case(rng, dtype, **D_STATE_CONFIGS[config])
    check_against_reference(case, mode)


# ----------------------------------------------------------------------------
# The full layer matrix
# ----------------------------------------------------------------------------
T_M, B_M, I_M, H_M, P_M = 5, 4, 3, 5, 3
RAGGED = np.array([3, 1, 5, 2])  # unsorted; a length-1 and a full-length sequence


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@layer_matrix(P_M)
def test_layer_matrix(rng, options, ragged, dtype):
    lengths = RAGGED if ragged else None
    check_against_reference(Case(rng, dtype, T_M, B_M, I_M, H_M, lengths=lengths, **options))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_lengths_all_full_equal_no_lengths(rng, dtype):
    case = Case(rng, dtype, 4, 3, 2, 5, num_layers=2, bidirectional=True)
    lstm = case.layer()
    plain = lstm(case.x, (case.h0, case.c0))
    full = lstm(case.x, (case.h0, case.c0), lengths=np.array([4, 4, 4]))
    for a, b in zip([plain[0], *plain[1]], [full[0], *full[1]]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_padded_outputs_are_exactly_zero(rng, dtype):
    case = Case(rng, dtype, T_M, B_M, I_M, H_M, num_layers=2, bidirectional=True, lengths=RAGGED)
    out, _ = case.layer()(case.x, (case.h0, case.c0), lengths=RAGGED)
    for b, n in enumerate(RAGGED):
        assert np.all(out[n:, b] == 0)
        assert np.all(out[:n, b] != 0)


# Hidden sizes whose forward groups are wider than one register panel
# (32 and 64 units per gate: group_units in csrc/rnn/engine.h), including a
# group count that is not a multiple of the thread count and a projection;
# B = 3 splits the threads by units, B = 20 by batch rows.
WIDE_GROUPS = {
    "H128-units": (3, 3, 5, 128, {}),
    "H256-batch-ragged": (
        4,
        20,
        6,
        256,
        dict(lengths=[4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]),
    ),
    "H320-proj-bi": (3, 2, 4, 320, dict(proj_size=24, bidirectional=True)),
    "H192-batch-L2": (3, 20, 7, 192, dict(num_layers=2)),
}


def check_config(rng, dtype, T, B, I, H, extra):
    check_against_reference(Case(rng, dtype, T, B, I, H, **extra))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("config", list(WIDE_GROUPS))
def test_wide_groups(rng, config, dtype):
    check_config(rng, dtype, *WIDE_GROUPS[config])


# A few rows: the kernel projects the input of a block of steps up front and
# each step multiplies only W_hh (xproj_steps in csrc/rnn/engine.h): one or
# two rows from 1 MB of weights (blocks of 16 or 8 steps, a partial last one;
# the reverse direction and ragged rows gather their inputs), eight from
# 16 MB.
XPROJ = {
    "B1-bi-proj-bfirst": (
        40,
        1,
        200,
        256,
        dict(bidirectional=True, proj_size=64, batch_first=True),
    ),
    "B2-bi-ragged-L2": (20, 2, 256, 256, dict(bidirectional=True, num_layers=2, lengths=[13, 20])),
    "B8-16MB": (3, 8, 1024, 1024, {}),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("config", list(XPROJ))
def test_input_projection_blocks(rng, config, dtype):
    check_config(rng, dtype, *XPROJ[config])


# ----------------------------------------------------------------------------
# Unbatched 2-D input
# ----------------------------------------------------------------------------
UNBATCHED = [
    dict(num_layers=1),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=2, proj_size=3, bias=False),
    dict(num_layers=1, bidirectional=True, proj_size=2, batch_first=True),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(
    "config", UNBATCHED, ids=["L1", "L2-bi", "L2-proj-nobias", "L1-bi-proj-bfirst"]
)
def test_unbatched(rng, config, dtype):
    case = Case(rng, dtype, 6, 1, 4, 5, **config)
    # unbatched arrays: drop the batch axis (batch_first does not apply to 2-D x)
    x = case.x[0] if case.batch_first else case.x[:, 0]
    h0, c0 = case.h0[:, 0], case.c0[:, 0]
    d_out = case.d_output[0] if case.batch_first else case.d_output[:, 0]
    dh_n, dc_n = case.dh_n[:, 0], case.dc_n[:, 0]
    # the reference treats 2-D x as (T, I) whatever batch_first says
    case.x = x
    case.h0, case.c0 = h0, c0
    expected_case = case.reference(d_out, dh_n, dc_n)

    lstm = case.layer()
    out, (h_n, c_n), backward = lstm.forward_train(x, (h0, c0))
    assert out.ndim == 2 and h_n.ndim == 2 and c_n.ndim == 2
    results_match_reference(dict(output=out, h_n=h_n, c_n=c_n), expected_case, dtype)
    dx, (dh0, dc0) = backward(d_out, (dh_n, dc_n))
    results_match_reference(dict(dx=dx, dh0=dh0, dc0=dc0, grads=lstm.grads), expected_case, dtype)


# ----------------------------------------------------------------------------
# return_cells
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(
    "num_layers,bidirectional,batch_first,proj_size,ragged",
    [
        (1, False, False, 0, False),
        (1, True, False, 0, True),
        (2, True, True, 0, True),
        (3, False, True, 2, True),
        (2, True, False, 3, False),
    ],
    ids=["L1-uni", "L1-bi-ragged", "L2-bi-bfirst-ragged", "L3-proj-bfirst-ragged", "L2-bi-proj"],
)
def test_return_cells(rng, num_layers, bidirectional, batch_first, proj_size, ragged, dtype):
    case = Case(
        rng,
        dtype,
        T_M,
        B_M,
        I_M,
        H_M,
        num_layers=num_layers,
        bidirectional=bidirectional,
        proj_size=proj_size,
        batch_first=batch_first,
        lengths=RAGGED if ragged else None,
    )
    expected = case.reference(case.d_output, case.dh_n, case.dc_n)
    lstm = case.layer()
    out, (h_n, c_n), cells = lstm(
        case.x, (case.h0, case.c0), lengths=case.lengths, return_cells=True
    )
    assert_matches_reference(out, expected["output"], dtype, "output")
    assert_matches_reference(c_n, expected["c_n"], dtype, "c_n")

    # expected cells, time-major (T, B, D*H), from the reference's step caches
    last = expected["cache"]["layer_caches"][-1]
    D = len(last)
    want = np.zeros((T_M, B_M, D * H_M))
    for d, layer_cache in enumerate(last):
        valid = layer_cache["valid"]
        for t in range(T_M):
            want[t, :, d * H_M : (d + 1) * H_M] = np.where(
                valid[t][:, None], layer_cache["step_caches"][t]["c"], 0
            )
    if batch_first:
        want = want.transpose(1, 0, 2)
    assert_matches_reference(cells, want, dtype, "cells")
    if ragged:
        for b, n in enumerate(RAGGED):
            idx = (b, slice(n, None)) if batch_first else (slice(n, None), b)
            assert np.all(cells[idx] == 0), "cells at padded steps must be exactly 0"
    # the last valid step's cell of the forward direction is c_n of the last layer
    LD = num_layers * D
    for b in range(B_M):
        n = RAGGED[b] if ragged else T_M
        c_last = cells[b, n - 1, :H_M] if batch_first else cells[n - 1, b, :H_M]
        np.testing.assert_array_equal(c_last, c_n[LD - D, b])


# ----------------------------------------------------------------------------
# Gradient accumulation
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_grads_accumulate_and_zero_grad(rng, dtype):
    case = Case(rng, dtype, 4, 3, 2, 5, num_layers=2, bidirectional=True, proj_size=2)
    expected = case.reference(case.d_output, case.dh_n, case.dc_n)
    lstm = case.layer()
    for _ in range(2):
        _, _, backward = lstm.forward_train(case.x, (case.h0, case.c0))
        backward(case.d_output, (case.dh_n, case.dc_n))
    for name, g in expected["grads"].items():
        assert_matches_reference(lstm.grads[name], 2 * g, dtype, f"2x grads[{name}]")
    lstm.zero_grad()
    for name, g in lstm.grads.items():
        assert g.shape == case.params[name].shape and not np.any(g)
