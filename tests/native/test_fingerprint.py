"""kernels.fingerprint (fl_fingerprint): the digest the layers use to refuse
a backward whose saved arrays were modified in place since the forward."""

import numpy as np
import pytest

from fastlstm._native import kernels


def test_equal_bytes_equal_digest(rng):
    a = rng.standard_normal((37, 11)).astype(np.float32)
    b = a.copy()
    assert kernels.fingerprint(a) == kernels.fingerprint(b)
    b.setflags(write=False)  # read-only buffers are read too
    assert kernels.fingerprint(a) == kernels.fingerprint(b)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 31, 32, 33, 63, 64, 65, 100])
def test_every_single_byte_change_is_seen(rng, n):
    """Any one byte changed, in the 32-byte blocks or in the tail, gives
    another digest (a change confined to one lane always does)."""
    a = rng.integers(0, 256, size=n, dtype=np.uint8)
    base = kernels.fingerprint(a)
    for i in range(n):
        for delta in (1, 128):
            b = a.copy()
            b[i] ^= delta
            assert kernels.fingerprint(b) != base, (n, i, delta)


def test_length_counts():
    """Trailing zero bytes are not the same buffer."""
    digests = {kernels.fingerprint(np.zeros(n, np.uint8)) for n in range(70)}
    assert len(digests) == 70


def test_swapped_elements_are_seen(rng):
    a = rng.standard_normal(1000)
    b = a.copy()
    b[[10, 500]] = b[[500, 10]]
    assert kernels.fingerprint(a) != kernels.fingerprint(b)


def test_not_c_contiguous_is_refused(rng):
    a = rng.standard_normal((8, 8))
    with pytest.raises(ValueError, match="not C-contiguous"):
        kernels.fingerprint(a[:, ::2])
