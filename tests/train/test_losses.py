"""fastlstm.losses against torch.nn.functional (values by torch, gradients
by torch autograd), against central differences in float64, and the
masking of padded steps against torch on the valid steps only."""

import numpy as np
import pytest

from fastlstm.losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss

TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-11, atol=1e-13)}
REDUCTIONS = ["mean", "sum", "none"]


def _torch_loss_and_grad(torch, fn, x, *args, **kw):
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    loss = fn(xt, *args, **kw)
    loss.sum().backward()
    return loss.detach().numpy(), xt.grad.numpy()


def _check(loss, grad, tloss, tgrad, dtype):
    assert grad.dtype == dtype
    if isinstance(loss, float):
        assert np.ndim(tloss) == 0
    else:
        assert loss.dtype == dtype and loss.shape == tloss.shape
    np.testing.assert_allclose(loss, tloss, **TOL[dtype])
    np.testing.assert_allclose(grad, tgrad, **TOL[dtype])


def _central_difference(f, x, h=1e-6):
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = np.sum(f(x))
        flat[i] = old - h
        down = np.sum(f(x))
        flat[i] = old
        gf[i] = (up - down) / (2 * h)
    return g


def _t(torch, a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ---- mean squared error ----------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_torch(torch, rng, dtype, reduction):
    x = rng.standard_normal((5, 3, 2)).astype(dtype)
    y = rng.standard_normal((5, 3, 2)).astype(dtype)
    loss, grad = mse_loss(x, y, reduction=reduction)
    F = torch.nn.functional
    tloss, tgrad = _torch_loss_and_grad(torch, F.mse_loss, x, _t(torch, y), reduction=reduction)
    _check(loss, grad, tloss, tgrad, dtype)


# ---- cross-entropy -----------------------------------------------------------
CE_CASES = [
    dict(),
    dict(ignore_index=2),
    dict(weight=True),
    dict(weight=True, ignore_index=1),
    dict(label_smoothing=0.2),
    dict(label_smoothing=0.1, weight=True),
    dict(label_smoothing=0.3, weight=True, ignore_index=0),
    dict(label_smoothing=1.0),
]


def _ce_args(rng, dtype, case, C):
    kw = dict(case)
    if kw.get("weight"):
        kw["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    return kw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CE_CASES, ids=str)
def test_cross_entropy_matches_torch(torch, rng, dtype, reduction, case):
    N, C = 13, 5
    x = (rng.standard_normal((N, C)) * 3).astype(dtype)
    y = rng.integers(0, C, N)
    kw = _ce_args(rng, dtype, case, C)
    loss, grad = cross_entropy(x, y, reduction=reduction, **kw)
    tkw = {k: (_t(torch, v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    tloss, tgrad = _torch_loss_and_grad(
        torch, torch.nn.functional.cross_entropy, x, _t(torch, y), reduction=reduction, **tkw
    )
    _check(loss, grad, tloss, tgrad, dtype)


def test_cross_entropy_is_stable_for_huge_logits(torch):
    x = np.array([[1000.0, -1000.0, 0.0], [-5e3, 5e3, 1.0]])
    y = np.array([1, 1])
    loss, grad = cross_entropy(x, y)
    tloss, tgrad = _torch_loss_and_grad(torch, torch.nn.functional.cross_entropy, x, _t(torch, y))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, tloss, rtol=1e-12)
    np.testing.assert_allclose(grad, tgrad, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CE_CASES, ids=str)
def test_cross_entropy_gradient_by_finite_differences(rng, reduction, case):
    N, C = 6, 4
    x = rng.standard_normal((N, C))
    y = rng.integers(0, C, N)
    kw = _ce_args(rng, np.float64, case, C)
    _, grad = cross_entropy(x, y, reduction=reduction, **kw)
    fd = _central_difference(lambda z: cross_entropy(z, y, reduction=reduction, **kw)[0], x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_cross_entropy_all_ignored_mean_is_nan_like_torch(torch):
    x = np.zeros((2, 3))
    y = np.array([-100, -100])
    loss, grad = cross_entropy(x, y)
    tloss, _ = _torch_loss_and_grad(torch, torch.nn.functional.cross_entropy, x, _t(torch, y))
    assert np.isnan(loss) and np.isnan(tloss)
    assert not grad.any()


# ---- binary cross-entropy from logits ----------------------------------------
BCE_CASES = [dict(), dict(weight=True), dict(pos_weight=True), dict(weight=True, pos_weight=True)]


def _bce_args(rng, dtype, case, shape):
    kw = {}
    if case.get("weight"):
        kw["weight"] = rng.uniform(0.2, 2.0, shape).astype(dtype)
    if case.get("pos_weight"):
        kw["pos_weight"] = rng.uniform(0.2, 3.0, shape[-1]).astype(dtype)
    return kw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", BCE_CASES, ids=str)
def test_bce_with_logits_matches_torch(torch, rng, dtype, reduction, case):
    shape = (4, 3, 5)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x.flat[:2] = [60.0, -60.0]  # far in the tails: the stable form matters
    y = rng.random(shape).astype(dtype)
    y.flat[5:9] = [0, 1, 0, 1]
    kw = _bce_args(rng, dtype, case, shape)
    loss, grad = binary_cross_entropy_with_logits(x, y, reduction=reduction, **kw)
    tkw = {k: _t(torch, v) for k, v in kw.items()}
    tloss, tgrad = _torch_loss_and_grad(
        torch,
        torch.nn.functional.binary_cross_entropy_with_logits,
        x,
        _t(torch, y),
        reduction=reduction,
        **tkw,
    )
    _check(loss, grad, tloss, tgrad, dtype)


@pytest.mark.parametrize("case", BCE_CASES, ids=str)
def test_bce_gradient_by_finite_differences(rng, case):
    shape = (3, 4)
    x = rng.standard_normal(shape) * 2
    y = rng.random(shape)
    kw = _bce_args(rng, np.float64, case, shape)
    _, grad = binary_cross_entropy_with_logits(x, y, **kw)
    fd = _central_difference(lambda z: binary_cross_entropy_with_logits(z, y, **kw)[0], x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_mse_gradient_by_finite_differences(rng):
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    _, grad = mse_loss(x, y)
    fd = _central_difference(lambda z: mse_loss(z, y)[0], x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


# ---- padded sequences --------------------------------------------------------
def _valid_steps(a, lengths, batch_first):
    """Concatenate the valid steps of a (T, B, ...) / (B, T, ...) array."""
    parts = [(a[b, :n] if batch_first else a[:n, b]) for b, n in enumerate(lengths) if n > 0]
    return np.concatenate(parts, axis=0)


def _poison_padding(a, lengths, batch_first, value):
    a = a.copy()
    for b, n in enumerate(lengths):
        if batch_first:
            a[b, n:] = value
        else:
            a[n:, b] = value
    return a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss_name", ["mse", "ce", "ce_weighted_smoothed", "bce"])
def test_lengths_mask_padding_as_torch_on_the_valid_steps(
    torch, rng, dtype, batch_first, reduction, loss_name
):
    T, B, C = 6, 4, 3
    lengths = np.array([6, 2, 0, 4])
    shape = (B, T, C) if batch_first else (T, B, C)
    F = torch.nn.functional
    x = rng.standard_normal(shape).astype(dtype)
    # padding holds garbage, even non-finite values: it must not matter
    x = _poison_padding(x, lengths, batch_first, np.nan)
    opts = dict(reduction=reduction, lengths=lengths, batch_first=batch_first)
    if loss_name == "mse":
        y = rng.standard_normal(shape).astype(dtype)
        loss, grad = mse_loss(x, y, **opts)
        tfn, targs, tkw = F.mse_loss, [_t(torch, _valid_steps(y, lengths, batch_first))], {}
    elif loss_name.startswith("ce"):
        y = rng.integers(0, C, shape[:2])
        y = _poison_padding(y, lengths, batch_first, 99)  # out of range: never read
        kw = {}
        if loss_name == "ce_weighted_smoothed":
            kw = dict(weight=rng.uniform(0.5, 2.0, C).astype(dtype), label_smoothing=0.15)
        loss, grad = cross_entropy(x, y, **kw, **opts)
        tfn = F.cross_entropy
        targs = [_t(torch, _valid_steps(y, lengths, batch_first))]
        tkw = {k: (_t(torch, v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    else:
        y = rng.random(shape).astype(dtype)
        pw = rng.uniform(0.5, 2.0, C).astype(dtype)
        loss, grad = binary_cross_entropy_with_logits(x, y, pos_weight=pw, **opts)
        tfn = F.binary_cross_entropy_with_logits
        targs = [_t(torch, _valid_steps(y, lengths, batch_first))]
        tkw = dict(pos_weight=_t(torch, pw))
    xv = _valid_steps(x, lengths, batch_first)
    tloss, tgrad = _torch_loss_and_grad(torch, tfn, xv, *targs, reduction=reduction, **tkw)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, tloss, **TOL[dtype])
    np.testing.assert_allclose(_valid_steps(grad, lengths, batch_first), tgrad, **TOL[dtype])
    padding = _poison_padding(np.zeros(shape, bool), lengths, batch_first, True)
    assert not grad[padding].any(), "padded steps got a gradient"


def test_lengths_with_reduction_none_zero_the_padding(rng):
    x = rng.standard_normal((5, 2, 3))
    y = rng.integers(0, 3, (5, 2))
    loss, grad = cross_entropy(x, y, reduction="none", lengths=[5, 2])
    assert loss.shape == (5, 2)
    assert not loss[2:, 1].any() and not grad[2:, 1].any()
    full, _ = cross_entropy(x, y, reduction="none")
    np.testing.assert_array_equal(loss[:, 0], full[:, 0])


# ---- bad input ---------------------------------------------------------------
@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: mse_loss(np.zeros((2, 3)), np.zeros((3, 2))), ValueError, r"target.*\(2, 3\)"),
        (lambda: mse_loss(np.zeros(3), np.zeros(3), reduction="avg"), ValueError, "reduction"),
        (lambda: mse_loss(np.array(["a"]), np.zeros(1)), TypeError, "input"),
        (lambda: cross_entropy(np.zeros((4, 3)), np.zeros(4)), TypeError, "target.*integer"),
        (
            lambda: cross_entropy(np.zeros((4, 3)), np.zeros((4, 3), int)),
            ValueError,
            r"target.*\(4,\)",
        ),
        (lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError, r"\[0, 3\)"),
        (lambda: cross_entropy(np.zeros((2, 3)), np.array([0, -1])), ValueError, "target"),
        (
            lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(2)),
            ValueError,
            r"weight.*\(3,\)",
        ),
        (
            lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5),
            ValueError,
            "label_smoothing",
        ),
        (
            lambda: cross_entropy(np.zeros((4, 2, 3)), np.zeros((4, 2), int), lengths=[4]),
            ValueError,
            r"lengths.*\(2,\)",
        ),
        (
            lambda: cross_entropy(np.zeros((4, 2, 3)), np.zeros((4, 2), int), lengths=[4, 5]),
            ValueError,
            r"lengths.*\[0, 4\]",
        ),
        (
            lambda: mse_loss(np.zeros((4, 2)), np.zeros((4, 2)), lengths=[1.5, 2.0]),
            TypeError,
            "lengths",
        ),
        (
            lambda: mse_loss(np.zeros(4), np.zeros(4), lengths=[4]),
            ValueError,
            "sequence shaped",
        ),
        (
            lambda: binary_cross_entropy_with_logits(
                np.zeros((2, 3)), np.zeros((2, 3)), pos_weight=np.ones(2)
            ),
            ValueError,
            r"pos_weight.*\(2,\).*\(2, 3\)",
        ),
        (
            lambda: binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros(3)),
            ValueError,
            "target",
        ),
    ],
)
def test_bad_input_raises_naming_argument_and_shapes(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_public_module():
    import fastlstm
    import fastlstm.losses

    assert fastlstm.losses.cross_entropy is cross_entropy
