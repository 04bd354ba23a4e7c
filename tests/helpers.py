"""Helpers shared by the test modules: ``from helpers import assert_close``.

(tests/ is on sys.path while pytest runs: the rootdir's conftest.py puts it
there.)

TOLERANCES     the one tolerance table, by what is compared and dtype
assert_close   dtype, shape and values of a result against an expected one
assert_results_close  assert_close over a dict of results (outputs, gradients)
random_array   Uniform(-scale, scale) arrays of a dtype
central_difference  one entry's derivative of a loss, by central differences
reference_run  fastlstm.reference in float64 for a layer's configuration
torch_dtype    the torch dtype of a numpy float dtype
layer_options  the options an LSTM shares with torch.nn.LSTM, read off an object
LayerProblem   a layer configuration and the shapes of its arrays
layer_cases    parametrize ``options, ragged`` over rows of layer options
layer_matrix   layer_cases over every combination of the layer options
all_outputs    every output and gradient of a layer's inference and training step
assert_bitwise two such dicts are bitwise equal
kernel_forward the compiled kernel's forward, its optional arrays None unless given
"""

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

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


def assert_results_close(got, expected, dtype, prefix="", **kw):
    """assert_close(got[k], expected[k], ...) for every k of ``got`` (output,
    h_n, c_n, dx, ...); ``got["grads"]``, if there, must have the parameter
    names of ``expected["grads"]`` and each gradient close to its entry.
    ``prefix`` starts every message; ``kw`` goes to assert_close."""
    for k, v in got.items():
        if k != "grads":
            assert_close(v, expected[k], dtype, prefix + k, **kw)
            continue
        assert set(v) == set(expected["grads"]), f"{prefix}grads: {sorted(v)}"
        for name, g in expected["grads"].items():
            assert_close(v[name], g, dtype, f"{prefix}grads[{name}]", **kw)


def torch_dtype(torch, dtype):
    """torch.float32 or torch.float64 for numpy's float32 or float64."""
    return {F32: torch.float32, F64: torch.float64}[np.dtype(dtype)]


# the constructor options of fastlstm.LSTM and torch.nn.LSTM besides the
# sizes, with their defaults
LAYER_DEFAULTS = dict(num_layers=1, bias=True, batch_first=False, bidirectional=False, proj_size=0)
LAYER_OPTIONS = tuple(LAYER_DEFAULTS)


def layer_options(obj):
    """{option: value} of ``LAYER_OPTIONS``, read off a layer (or anything
    with those attributes), to build another layer configured the same."""
    return {k: getattr(obj, k) for k in LAYER_OPTIONS}


class LayerProblem:
    """A layer configuration: sizes T, B, I, H, the ``LAYER_OPTIONS``
    (defaults ``LAYER_DEFAULTS``) and ``lengths`` (an int array, or None),
    with the shapes of the arrays a call of such a layer takes and gives.
    Test cases subclass it to add their data."""

    def __init__(self, T, B, I, H, lengths=None, **options):
        unknown = set(options) - set(LAYER_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown layer options {sorted(unknown)}")
        self.T, self.B, self.I, self.H = T, B, I, H
        for k, default in LAYER_DEFAULTS.items():
            setattr(self, k, options.get(k, default))
        self.lengths = None if lengths is None else np.asarray(lengths)
        self.D = 2 if self.bidirectional else 1
        self.Ho = self.proj_size or H
        self.LD = self.num_layers * self.D

    def seq_shape(self, width):
        """A sequence of ``width`` features: (B, T, width) or (T, B, width)."""
        return (self.B, self.T, width) if self.batch_first else (self.T, self.B, width)

    @property
    def x_shape(self):
        return self.seq_shape(self.I)

    @property
    def output_shape(self):
        return self.seq_shape(self.D * self.Ho)

    @property
    def h_shape(self):
        return (self.LD, self.B, self.Ho)

    @property
    def c_shape(self):
        return (self.LD, self.B, self.H)

    def make_lstm(self, dtype, seed):
        """A fastlstm.LSTM(I, H) of this configuration."""
        import fastlstm  # here: conftest imports helpers before fastlstm

        return fastlstm.LSTM(self.I, self.H, dtype=dtype, seed=seed, **layer_options(self))


# the order of a row of layer_cases
LAYER_CASE_FIELDS = ("num_layers", "bidirectional", "batch_first", "proj_size", "bias", "ragged")


def layer_cases(rows):
    """pytest parametrization of ``options`` (a dict of ``LAYER_OPTIONS``)
    and ``ragged`` (full or ragged lengths: the test picks them), one case
    per row of ``LAYER_CASE_FIELDS`` values, with ids such as
    ``L2-bi-bfirst-proj-nobias-ragged``."""
    cases, ids = [], []
    for row in rows:
        options = dict(zip(LAYER_CASE_FIELDS, row))
        ragged = options.pop("ragged")
        cases.append((options, ragged))
        ids.append(
            f"L{options['num_layers']}-{'bi' if options['bidirectional'] else 'uni'}-"
            f"{'bfirst' if options['batch_first'] else 'tmajor'}-"
            f"{'proj' if options['proj_size'] else 'noproj'}-"
            f"{'bias' if options['bias'] else 'nobias'}-{'ragged' if ragged else 'full'}"
        )
    return pytest.mark.parametrize("options,ragged", cases, ids=ids)


def layer_matrix(proj_size):
    """layer_cases over every combination of num_layers 1-3,
    uni/bidirectional, time-major/batch-first, no projection or
    ``proj_size``, with/without bias, and full/ragged lengths."""
    return layer_cases(
        itertools.product(
            (1, 2, 3), (False, True), (False, True), (0, proj_size), (True, False), (False, True)
        )
    )


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


def reference_run(
    layer, x, h0=None, c0=None, lengths=None, d_output=None, d_state=(None, None), params=None
):
    """fastlstm.reference in float64 on the values given, for ``layer``'s
    configuration (num_layers, bidirectional, proj_size, batch_first, and the
    ONNX cell options if it has them: an LSTM or anything with those
    attributes) and its current parameters, or
    ``params``.  Forward, and backward too when ``d_output`` is given
    (``d_state`` = (dh_n, dc_n), either may be None).

    -> dict of output, h_n, c_n and the reference's cache; with d_output also
    dx, dh0, dc0 and grads (by parameter name).
    """
    from fastlstm import reference  # here: conftest imports helpers before fastlstm

    f64 = lambda a: None if a is None else np.asarray(a, np.float64)  # noqa: E731
    params = layer.state_dict() if params is None else params
    out, (h_n, c_n), cache = reference.lstm_forward(
        f64(x),
        {k: f64(v) for k, v in params.items()},
        layer.num_layers,
        layer.bidirectional,
        layer.proj_size,
        layer.batch_first,
        f64(h0),
        f64(c0),
        lengths,
        **cell_options(layer),
    )
    result = dict(output=out, h_n=h_n, c_n=c_n, cache=cache)
    if d_output is not None:
        dx, dh0, dc0, grads = reference.lstm_backward(
            f64(d_output), f64(d_state[0]), f64(d_state[1]), cache
        )
        result.update(dx=dx, dh0=dh0, dc0=dc0, grads=grads)
    return result


def cell_options(layer):
    """The ONNX cell options of ``layer`` as fastlstm.reference.lstm_forward
    takes them (none for a layer without them)."""
    keys = ("clip", "input_forget", "activations", "activation_alpha", "activation_beta")
    return {k: getattr(layer, k) for k in keys if getattr(layer, k, None) is not None}


def all_outputs(lstm, x, hx, lengths, d_output, d_state):
    """Every output of inference, of forward_train and of its backward, and
    copies of the parameter gradients, as one dict (gradients zeroed first)."""
    lstm.zero_grad()
    out, (h_n, c_n) = lstm(x, hx, lengths=lengths)
    out_t, (h_t, c_t), backward = lstm.forward_train(x, hx, lengths=lengths)
    dx, (dh0, dc0) = backward(d_output, d_state)
    res = dict(out=out, h_n=h_n, c_n=c_n, out_t=out_t, h_t=h_t, c_t=c_t, dx=dx, dh0=dh0, dc0=dc0)
    res.update({"grad_" + k: v.copy() for k, v in lstm.grads.items()})
    return res


def assert_bitwise(a, b, what=""):
    """Two dicts of arrays with the same keys and bitwise equal arrays."""
    assert a.keys() == b.keys(), what
    for k in a:
        assert a[k].shape == b[k].shape, f"{what} {k}"
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what} {k}")


# the optional arguments of the compiled kernel's forward, as an inference
# call without a state, batch_sizes or row maps passes them
KERNEL_FORWARD_OPTIONS = dict(
    bias=None,
    h0=None,
    c0=None,
    y_col=0,
    gates=None,
    cells=None,
    xh=None,
    batch_sizes=None,
    reverse=False,
    proj_size=0,
)


def kernel_forward(x, w_ih, packed, y, h_n, c_n, steps, **options):
    """fastlstm._native.kernels.forward over ``steps`` steps; any other
    argument by name (``KERNEL_FORWARD_OPTIONS`` unless given)."""
    from fastlstm._native import kernels

    options = {**KERNEL_FORWARD_OPTIONS, **options}
    kernels.forward(x=x, w_ih=w_ih, packed=packed, y=y, h_n=h_n, c_n=c_n, steps=steps, **options)


def run_python(code, env=None, timeout=120):
    """Run `code` (dedented) in a fresh interpreter with FASTLSTM_NUM_THREADS
    unset (plus `env`), for cases that could crash or hang: a regression then
    fails the test (or times out) instead of stopping the suite."""
    full_env = dict(os.environ)
    full_env.pop("FASTLSTM_NUM_THREADS", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
