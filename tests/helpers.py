"""Helpers shared by the test modules: ``from helpers import assert_close``.

(tests/ is on sys.path while pytest runs: the rootdir's conftest.py puts it
there.)

TOLERANCES     the one tolerance table, by what is compared and dtype
assert_close   dtype, shape and values of a result against an expected one
random_array   Uniform(-scale, scale) arrays of a dtype
central_difference  one entry's derivative of a loss, by central differences
"""

import numpy as np

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

TOLERANCES = {
    # against torch: two implementations, each with its own summation order
    "torch": {F32: dict(rtol=1e-5, atol=1e-6), F64: dict(rtol=1e-10, atol=1e-12)},
    # the compiled kernel against the float64 reference on the same inputs:
    # in float64 only the kernel's own rounding differs
    "reference": {F32: dict(rtol=1e-5, atol=1e-6), F64: dict(rtol=1e-12, atol=1e-12)},
}


def assert_close(actual, expected, dtype, what="", against="torch", scale=False):
    """``actual`` has ``dtype``, ``expected``'s shape and its values within
    ``TOLERANCES[against]``.

    Elementwise |actual - expected| <= atol + rtol * |expected|, or with
    ``scale`` relative to the largest |expected| (for sums such as a weight
    gradient, whose small entries carry the absolute error of its large
    ones); then the values must also be finite.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    dtype = np.dtype(dtype)
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, want {dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    tol = TOLERANCES[against][dtype]
    if not scale:
        np.testing.assert_allclose(actual, expected, err_msg=what, **tol)
        return
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values"
    if not expected.size:
        return
    largest = float(np.abs(expected).max())
    err = float(np.abs(actual.astype(np.float64) - expected).max())
    bound = tol["atol"] + tol["rtol"] * largest
    assert err <= bound, f"{what}: max abs error {err:.3g} > {bound:.3g} (scale {largest:.3g})"


def random_array(rng, shape, dtype=np.float64, scale=1.0):
    """Uniform(-scale, scale) array of the given shape and dtype."""
    return rng.uniform(-scale, scale, size=shape).astype(dtype)


def central_difference(loss, array, index, eps):
    """(loss() with array[index] + eps  -  loss() with array[index] - eps) / (2 eps).

    Perturbs ``array`` in place (the loss reads it) and restores it."""
    saved = array[index]
    array[index] = saved + eps
    plus = loss()
    array[index] = saved - eps
    minus = loss()
    array[index] = saved
    return (plus - minus) / (2 * eps)
