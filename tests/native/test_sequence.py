"""The packed layout of a ragged batch (fastlstm._native.sequence.SequencePlan) and
the kernel's row maps that read and write the padded batch in place.

* The plan (one compiled pass) against a direct numpy construction from its
  definition: sorted by decreasing length with ties in batch order, step t
  holds the sequences longer than t, packed row r is padded row t * B + b.
* The row maps: a layer on a padded batch equals the same layer run on the
  packed rows and scattered back (bitwise), and a map entry outside the
  array is a ValueError, never a read or write out of bounds.
"""

import numpy as np
import pytest

import fastlstm
from fastlstm._native.sequence import SequencePlan

from helpers import kernel_forward


def numpy_plan(T, B, lengths):
    """(perm, batch_sizes, flat) straight from the definitions."""
    perm = np.array(sorted(range(B), key=lambda b: (-lengths[b], b)), dtype=np.int64)
    steps = int(lengths.max())
    batch_sizes = np.array([np.sum(lengths > t) for t in range(steps)], dtype=np.int64)
    flat = np.array(
        [t * B + perm[j] for t in range(steps) for j in range(batch_sizes[t])], dtype=np.int64
    )
    return perm, batch_sizes, flat


def first_layer_forward(lstm, plan, x, y, x_rows, y_rows, bias=None):
    """The kernel's forward of the layer's first layer over x into y, reading
    and writing through the row maps (None: packed rows); -> (y, h_n, c_n)."""
    weights, packed = lstm._packed("_l0")
    h_n = np.empty((plan.B, lstm.hidden_size), lstm.dtype)
    c_n = np.empty((plan.B, lstm.hidden_size), lstm.dtype)
    kernel_forward(
        x,
        weights[0],
        packed,
        y,
        h_n,
        c_n,
        plan.steps,
        bias=bias,
        batch_sizes=plan.batch_sizes,
        x_rows=x_rows,
        y_rows=y_rows,
    )
    return y, h_n, c_n


@pytest.mark.parametrize("seed", range(12))
def test_plan_matches_definition(seed):
    rng = np.random.default_rng(seed)
    T, B = int(rng.integers(1, 30)), int(rng.integers(1, 40))
    # few distinct values, so ties are common
    lengths = rng.choice(rng.integers(1, T + 1, size=3), size=B)
    plan = SequencePlan(T, B, lengths)
    if np.all(lengths == T):
        assert not plan.packed and plan.rows == T * B
        return
    perm, batch_sizes, flat = numpy_plan(T, B, lengths)
    np.testing.assert_array_equal(plan.perm, perm)
    np.testing.assert_array_equal(plan.inv_perm[perm], np.arange(B))
    np.testing.assert_array_equal(plan.batch_sizes, batch_sizes)
    np.testing.assert_array_equal(plan._flat, flat)
    assert plan.steps == lengths.max() and plan.rows == lengths.sum()
    # the batch-first row of packed row r: b * T + t
    t, b = flat // B, flat % B
    np.testing.assert_array_equal(plan.padded_rows(True), b * T + t)


def test_plan_rejects_lengths_outside_range():
    for bad in ([0, 2, 3], [1, 2, 6], [-4, 2, 3]):
        with pytest.raises(ValueError, match="lengths"):
            SequencePlan(5, 3, np.array(bad))


@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_row_maps_equal_pack_and_scatter(batch_first, dtype):
    """The kernel reading x and writing y through the row maps gives the bits
    of the kernel on explicitly packed rows, scattered into zeros."""
    rng = np.random.default_rng(3)
    T, B, I, H = 7, 5, 3, 4
    lstm = fastlstm.LSTM(I, H, dtype=dtype, seed=1, batch_first=batch_first)
    lengths = np.array([3, 7, 1, 7, 5])
    plan = SequencePlan(T, B, lengths)
    x = rng.uniform(-1, 1, (B, T, I) if batch_first else (T, B, I)).astype(dtype)
    xt = x.transpose(1, 0, 2) if batch_first else x
    bias = lstm._bias("_l0")

    def run(inp, y, rows_map):
        return first_layer_forward(lstm, plan, inp, y, rows_map, rows_map, bias)

    rows = plan.padded_rows(batch_first)
    direct = run(x.reshape(T * B, I), np.zeros((T * B, H), dtype), rows)
    packed_run = run(plan.pack(xt), np.empty((plan.rows, H), dtype), None)
    scattered = np.zeros((T * B, H), dtype)
    scattered[rows] = packed_run[0]
    np.testing.assert_array_equal(direct[0], scattered)
    np.testing.assert_array_equal(direct[1], packed_run[1])
    np.testing.assert_array_equal(direct[2], packed_run[2])
    # and the layer (which uses the maps) gives the same padded output
    out, _ = lstm(x, lengths=lengths)
    assert out.shape == x.shape[:2] + (H,)
    np.testing.assert_array_equal(out.reshape(T * B, H), scattered)


def test_row_map_out_of_range_is_value_error():
    T, B, I, H = 4, 3, 2, 3
    lstm = fastlstm.LSTM(I, H, seed=0)
    plan = SequencePlan(T, B, np.array([4, 2, 1]))
    x = np.zeros((T * B, I), np.float32)
    y = np.zeros((T * B, H), np.float32)
    good = plan.padded_rows(False)
    for name, bad in (("x_rows", 0), ("y_rows", 1)):
        for value in (T * B, -1):
            maps = [good, good]
            maps[bad] = good.copy()
            maps[bad][-1] = value
            with pytest.raises(ValueError, match=name):
                first_layer_forward(lstm, plan, x, y, *maps)
    with pytest.raises(ValueError, match="x_rows"):  # one entry per packed row
        first_layer_forward(lstm, plan, x, y, good[:-1], good)
