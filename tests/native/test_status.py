"""The kernel's C statuses reach Python as exceptions with fl_strerror's
message: a bad batch_sizes is reported as such, naming the call."""
import numpy as np
import pytest

from fastlstm._native import kernels

I, H = 3, 4


def _forward(batch_sizes, dtype=np.float32, B=2):
    rng = np.random.default_rng(0)
    w_ih = rng.standard_normal((4 * H, I)).astype(dtype)
    w_hh = rng.standard_normal((4 * H, H)).astype(dtype)
    packed = np.empty(kernels.packed_size(np.dtype(dtype).char, I, H, 0), dtype)
    kernels.pack(w_ih, w_hh, None, packed)
    bs = np.asarray(batch_sizes, np.int64)
    rows = int(bs.sum())
    x = rng.standard_normal((rows, I)).astype(dtype)
    y = np.empty((rows, H), dtype)
    h_n = np.empty((B, H), dtype)
    c_n = np.empty((B, H), dtype)
    kernels.forward(x, w_ih, None, packed, None, None, y, 0, h_n, c_n,
                    None, None, None, bs, len(bs), False, 0)
    return y


def test_good_batch_sizes_run():
    assert np.isfinite(_forward([2, 2, 1])).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_sizes", [
    [2, 1, 2],   # increasing
    [1, 1],      # batch_sizes[0] != B
    [2, 0],      # an empty step
])
def test_bad_batch_sizes(batch_sizes, dtype):
    with pytest.raises(ValueError, match=r"forward: batch_sizes must be non-increasing.*status \d+"):
        _forward(batch_sizes, dtype)


def test_status_is_not_memory_error():
    # FL_EBATCH_SIZES is a ValueError, not the MemoryError of FL_ENOMEM
    with pytest.raises(ValueError) as info:
        _forward([2, 1, 2])
    assert not isinstance(info.value, MemoryError)
    assert "out of memory" not in str(info.value)
