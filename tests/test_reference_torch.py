"""The numpy reference (fastlstm.reference) against torch.nn.LSTM, against
central finite differences, and against itself (unbatched, lengths, dropout)."""

import itertools

import numpy as np
import pytest

from fastlstm import reference as ref

from helpers import assert_close, assert_results_close, central_difference, random_array

# Warnings are errors; torch's notice that it falls back from oneDNN for
# proj_size > 0 is expected and harmless.
pytestmark = pytest.mark.filterwarnings(
    "error", "ignore:LSTM with projections is not supported with oneDNN:UserWarning"
)

T, B, I, H, P = 5, 3, 4, 5, 3
RAGGED = np.array([3, 1, 4])  # unsorted, max < T so the tail is all padding


def make_params(rng, num_layers, bias, bidirectional, proj_size, dtype, I=I, H=H):
    shapes = ref.parameter_shapes(I, H, num_layers, bias, bidirectional, proj_size)
    return {name: random_array(rng, shape, dtype, 1 / np.sqrt(H)) for name, shape in shapes.items()}


def make_case(
    rng, num_layers, bidirectional, proj_size, bias, batch_first, dtype, T=T, B=B, I=I, H=H
):
    """Random inputs, non-zero initial state, and upstream gradients."""
    D = 2 if bidirectional else 1
    H_out = proj_size or H
    params = make_params(rng, num_layers, bias, bidirectional, proj_size, dtype, I, H)
    x_shape = (B, T, I) if batch_first else (T, B, I)
    out_shape = (B, T, D * H_out) if batch_first else (T, B, D * H_out)
    return dict(
        params=params,
        x=random_array(rng, x_shape, dtype),
        h0=random_array(rng, (num_layers * D, B, H_out), dtype, 0.5),
        c0=random_array(rng, (num_layers * D, B, H), dtype, 0.5),
        d_output=random_array(rng, out_shape, dtype),
        d_hn=random_array(rng, (num_layers * D, B, H_out), dtype),
        d_cn=random_array(rng, (num_layers * D, B, H), dtype),
    )


# ----------------------------------------------------------------------------
# Reference vs torch.nn.LSTM
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("proj_size", [0, P], ids=["noproj", "proj"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_matches_torch(
    torch,
    rng,
    torch_forward_backward,
    num_layers,
    bidirectional,
    batch_first,
    proj_size,
    bias,
    use_lengths,
    dtype,
):
    case = make_case(rng, num_layers, bidirectional, proj_size, bias, batch_first, dtype)
    lengths = RAGGED if use_lengths else None
    config = dict(
        num_layers=num_layers,
        bidirectional=bidirectional,
        proj_size=proj_size,
        batch_first=batch_first,
    )

    expected = torch_forward_backward(
        torch,
        case["params"],
        case["x"],
        case["h0"],
        case["c0"],
        I,
        H,
        lengths=lengths,
        d_output=case["d_output"],
        d_hn=case["d_hn"],
        d_cn=case["d_cn"],
        **config,
    )

    output, (h_n, c_n), cache = ref.lstm_forward(
        case["x"], case["params"], h0=case["h0"], c0=case["c0"], lengths=lengths, **config
    )
    dx, dh0, dc0, grads = ref.lstm_backward(case["d_output"], case["d_hn"], case["d_cn"], cache)

    got = dict(output=output, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0, grads=grads)
    assert_results_close(got, expected, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unbatched_matches_torch(torch, rng, torch_forward_backward, dtype):
    L, D = 2, 2
    params = make_params(rng, L, True, True, P, dtype)
    x = random_array(rng, (T, I), dtype)
    h0 = random_array(rng, (L * D, P), dtype, 0.5)
    c0 = random_array(rng, (L * D, H), dtype, 0.5)
    d_output = random_array(rng, (T, D * P), dtype)
    d_hn = random_array(rng, (L * D, P), dtype)
    d_cn = random_array(rng, (L * D, H), dtype)
    expected = torch_forward_backward(
        torch, params, x, h0, c0, I, H, L, True, P, d_output=d_output, d_hn=d_hn, d_cn=d_cn
    )
    output, (h_n, c_n), cache = ref.lstm_forward(x, params, L, True, P, h0=h0, c0=c0)
    dx, dh0, dc0, grads = ref.lstm_backward(d_output, d_hn, d_cn, cache)
    for what, value in [
        ("output", output),
        ("h_n", h_n),
        ("c_n", c_n),
        ("dx", dx),
        ("dh0", dh0),
        ("dc0", dc0),
    ]:
        assert_close(value, expected[what], dtype, what)
    for name, grad in expected["grads"].items():
        assert_close(grads[name], grad, dtype, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_zero_state_matches_torch(torch, rng, torch_lstm_from_params, dtype):
    params = make_params(rng, 2, True, True, 0, dtype)
    x = random_array(rng, (T, B, I), dtype)
    module = torch_lstm_from_params(torch, params, I, H, 2, True)
    with torch.no_grad():
        out_t, (hn_t, cn_t) = module(torch.from_numpy(x))
    output, (h_n, c_n), _ = ref.lstm_forward(x, params, 2, True)
    assert_close(output, out_t.numpy(), dtype, "output")
    assert_close(h_n, hn_t.numpy(), dtype, "h_n")
    assert_close(c_n, cn_t.numpy(), dtype, "c_n")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "ragged"])
def test_dropout_masks_match_torch_composition(
    torch, rng, torch_lstm_from_params, run_torch_lstm, use_lengths, dtype
):
    """torch takes no explicit masks, so build L=2 from two single-layer
    torch LSTMs with the mask multiplied in between."""
    L, D = 2, 2
    lengths = RAGGED if use_lengths else None
    case = make_case(rng, L, True, P, True, False, dtype)
    params = case["params"]
    mask = (rng.random((T, B, D * P)) > 0.3).astype(dtype) / dtype(0.7)

    layer_params = [
        {name.replace(f"_l{k}", "_l0"): v for name, v in params.items() if f"_l{k}" in name}
        for k in range(L)
    ]
    modules = [
        torch_lstm_from_params(torch, layer_params[k], I if k == 0 else D * P, H, 1, True, P)
        for k in range(L)
    ]
    run = run_torch_lstm
    xt = torch.from_numpy(case["x"]).requires_grad_(True)
    h0t = torch.from_numpy(case["h0"]).requires_grad_(True)
    c0t = torch.from_numpy(case["c0"]).requires_grad_(True)
    y0, (hn0, cn0) = run(torch, modules[0], xt, h0t[:2], c0t[:2], lengths)
    y1, (hn1, cn1) = run(torch, modules[1], y0 * torch.from_numpy(mask), h0t[2:], c0t[2:], lengths)
    hn_t, cn_t = torch.cat([hn0, hn1]), torch.cat([cn0, cn1])
    loss = (
        (y1 * torch.from_numpy(case["d_output"])).sum()
        + (hn_t * torch.from_numpy(case["d_hn"])).sum()
        + (cn_t * torch.from_numpy(case["d_cn"])).sum()
    )
    loss.backward()

    output, (h_n, c_n), cache = ref.lstm_forward(
        case["x"],
        params,
        L,
        True,
        P,
        h0=case["h0"],
        c0=case["c0"],
        lengths=lengths,
        dropout_masks=[mask],
    )
    dx, dh0, dc0, grads = ref.lstm_backward(case["d_output"], case["d_hn"], case["d_cn"], cache)
    assert_close(output, y1.detach().numpy(), dtype, "output")
    assert_close(h_n, hn_t.detach().numpy(), dtype, "h_n")
    assert_close(c_n, cn_t.detach().numpy(), dtype, "c_n")
    assert_close(dx, xt.grad.numpy(), dtype, "dx")
    assert_close(dh0, h0t.grad.numpy(), dtype, "dh0")
    assert_close(dc0, c0t.grad.numpy(), dtype, "dc0")
    for k in range(L):
        for name, p in modules[k].named_parameters():
            assert_close(grads[name.replace("_l0", f"_l{k}")], p.grad.numpy(), dtype, name)


# ----------------------------------------------------------------------------
# Reference against itself
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "ragged"])
def test_dropout_masks_equal_manual_layer_composition(rng, use_lengths):
    L, D, dtype = 2, 2, np.float64
    lengths = RAGGED if use_lengths else None
    case = make_case(rng, L, True, P, True, False, dtype)
    params, x, h0, c0 = case["params"], case["x"], case["h0"], case["c0"]
    mask = (rng.random((T, B, D * P)) > 0.5).astype(dtype) * 2.0

    def layer(k, inputs):
        ys = []
        for d, suffix in enumerate(["", "_reverse"]):
            names = [
                f"{w}_l{k}{suffix}"
                for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
            ]
            y, _, _, _ = ref.layer_forward(
                inputs,
                h0[k * D + d],
                c0[k * D + d],
                *[params[n] for n in names],
                reverse=d == 1,
                lengths=lengths,
            )
            ys.append(y)
        return np.concatenate(ys, axis=2)

    expected = layer(1, layer(0, x) * mask)
    output, _, _ = ref.lstm_forward(
        x, params, L, True, P, h0=h0, c0=c0, lengths=lengths, dropout_masks=[mask]
    )
    np.testing.assert_array_equal(output, expected)


def test_unbatched_equals_batch_of_one(rng):
    L, D, dtype = 2, 2, np.float64
    case = make_case(rng, L, True, P, True, False, dtype, B=1)
    mask = (rng.random((T, 1, D * P)) > 0.5).astype(dtype) * 2.0
    args = (case["params"], L, True, P)
    out_b, (hn_b, cn_b), cache_b = ref.lstm_forward(
        case["x"], *args, h0=case["h0"], c0=case["c0"], dropout_masks=[mask]
    )
    grads_b = ref.lstm_backward(case["d_output"], case["d_hn"], case["d_cn"], cache_b)
    out_u, (hn_u, cn_u), cache_u = ref.lstm_forward(
        case["x"][:, 0], *args, h0=case["h0"][:, 0], c0=case["c0"][:, 0], dropout_masks=[mask[:, 0]]
    )
    grads_u = ref.lstm_backward(
        case["d_output"][:, 0], case["d_hn"][:, 0], case["d_cn"][:, 0], cache_u
    )
    assert out_u.shape == (T, D * P) and hn_u.shape == (L * D, P) and cn_u.shape == (L * D, H)
    np.testing.assert_array_equal(out_u, out_b[:, 0])
    np.testing.assert_array_equal(hn_u, hn_b[:, 0])
    np.testing.assert_array_equal(cn_u, cn_b[:, 0])
    for unbatched, batched in zip(grads_u[:3], grads_b[:3]):
        np.testing.assert_array_equal(unbatched, batched[:, 0])
    for name in grads_b[3]:
        np.testing.assert_array_equal(grads_u[3][name], grads_b[3][name])


def test_full_lengths_equal_no_lengths(rng):
    case = make_case(rng, 2, True, P, True, True, np.float64)
    args = (case["params"], 2, True, P, True)
    a = ref.lstm_forward(case["x"], *args, h0=case["h0"], c0=case["c0"])
    b = ref.lstm_forward(case["x"], *args, h0=case["h0"], c0=case["c0"], lengths=np.full(B, T))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1][0], b[1][0])
    np.testing.assert_array_equal(a[1][1], b[1][1])


def test_padding_is_zero_and_its_gradient_ignored(rng):
    dtype = np.float64
    lengths = np.array([0, 2, 5])  # includes an empty sequence
    case = make_case(rng, 2, True, 0, True, False, dtype)
    output, (h_n, c_n), cache = ref.lstm_forward(
        case["x"], case["params"], 2, True, h0=case["h0"], c0=case["c0"], lengths=lengths
    )
    padded = np.arange(T)[:, None] >= lengths[None, :]  # (T, B)
    assert np.all(output[padded] == 0)
    assert np.all(output[~padded] != 0)
    # The empty sequence ends in zero states (ONNX Runtime's sequence_lens
    # semantics), whatever its initial state.
    assert np.all(h_n[:, 0] == 0) and np.all(c_n[:, 0] == 0)

    d_output = case["d_output"].copy()
    clean = ref.lstm_backward(
        np.where(padded[..., None], 0, d_output), case["d_hn"], case["d_cn"], cache
    )
    d_output[padded] = 1e6
    noisy = ref.lstm_backward(d_output, case["d_hn"], case["d_cn"], cache)
    for a, b in zip(clean[:3], noisy[:3]):
        np.testing.assert_array_equal(a, b)
    for name in clean[3]:
        np.testing.assert_array_equal(clean[3][name], noisy[3][name])
    # No input gradient reaches padded steps.
    assert np.all(clean[0][padded] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(rng, dtype):
    case = make_case(rng, 2, True, P, True, False, dtype)
    output, (h_n, c_n), cache = ref.lstm_forward(
        case["x"], case["params"], 2, True, P, h0=case["h0"], c0=case["c0"]
    )
    dx, dh0, dc0, grads = ref.lstm_backward(case["d_output"], None, None, cache)
    for array in [output, h_n, c_n, dx, dh0, dc0, *grads.values()]:
        assert array.dtype == np.dtype(dtype)


# ----------------------------------------------------------------------------
# Central finite differences (float64)
# ----------------------------------------------------------------------------


def assert_matches_finite_differences(loss, inputs, analytic, eps=1e-6, max_entries=12):
    """``loss()`` -> float computed from ``inputs``; ``analytic[name]`` is
    d loss / d inputs[name].  Checks every input array: all its entries, or a
    fixed random subset of ``max_entries`` (always with the first and last)
    to keep the run short.  Perturbs ``inputs`` in place and restores them."""
    picker = np.random.default_rng(7)
    for name, array in inputs.items():
        assert analytic[name].shape == array.shape, name
        flat = np.arange(array.size)
        if array.size > max_entries:
            flat = np.unique(
                np.concatenate(
                    [[0, array.size - 1], picker.choice(array.size, max_entries - 2, replace=False)]
                )
            )
        for index in map(lambda k: np.unravel_index(k, array.shape), flat):
            numeric = central_difference(loss, array, index, eps)
            np.testing.assert_allclose(
                analytic[name][index], numeric, rtol=1e-6, atol=1e-8, err_msg=f"{name}{index}"
            )


@pytest.mark.parametrize(
    "proj_size, reverse, use_lengths, bias",
    [
        (proj_size, reverse, use_lengths, True)
        for proj_size, reverse, use_lengths in itertools.product(
            [0, P], [False, True], [False, True]
        )
    ]
    + [(0, True, True, False), (P, False, True, False)],
)
def test_layer_backward_finite_differences(rng, proj_size, reverse, use_lengths, bias):
    H_out = proj_size or H
    lengths = RAGGED if use_lengths else None
    r = lambda *shape: random_array(rng, shape, np.float64)  # noqa: E731
    inputs = dict(
        x=r(T, B, I), h0=r(B, H_out), c0=r(B, H), weight_ih=r(4 * H, I), weight_hh=r(4 * H, H_out)
    )
    if bias:
        inputs.update(bias_ih=r(4 * H), bias_hh=r(4 * H))
    if proj_size:
        inputs.update(weight_hr=r(proj_size, H))
    dy, dh_n, dc_n = r(T, B, H_out), r(B, H_out), r(B, H)

    def run():
        return ref.layer_forward(reverse=reverse, lengths=lengths, **inputs)

    def loss():
        y, h_n, c_n, _ = run()
        return np.sum(y * dy) + np.sum(h_n * dh_n) + np.sum(c_n * dc_n)

    _, _, _, cache = run()
    dx, dh0, dc0, grads = ref.layer_backward(dy, dh_n, dc_n, cache)
    assert sorted(grads) == sorted(k for k in inputs if k not in ("x", "h0", "c0"))
    assert_matches_finite_differences(loss, inputs, dict(grads, x=dx, h0=dh0, c0=dc0))


@pytest.mark.parametrize(
    "num_layers, bidirectional, proj_size, batch_first, use_lengths, use_dropout",
    [
        (1, False, 0, False, False, False),
        (2, True, P, False, True, True),
        (2, True, 0, True, True, False),
        (3, False, P, True, False, True),
    ],
)
def test_lstm_backward_finite_differences(
    rng, num_layers, bidirectional, proj_size, batch_first, use_lengths, use_dropout
):
    small_T, small_B, small_I, small_H = 3, 3, 2, 3
    proj_size = min(proj_size, small_H - 1)
    D = 2 if bidirectional else 1
    H_out = proj_size or small_H
    lengths = np.array([2, 3, 1]) if use_lengths else None
    case = make_case(
        rng,
        num_layers,
        bidirectional,
        proj_size,
        True,
        batch_first,
        np.float64,
        T=small_T,
        B=small_B,
        I=small_I,
        H=small_H,
    )
    masks = None
    if use_dropout:
        masks = [
            (rng.random((small_T, small_B, D * H_out)) > 0.4) / 0.6 for _ in range(num_layers - 1)
        ]
    params = case["params"]
    config = dict(
        num_layers=num_layers,
        bidirectional=bidirectional,
        proj_size=proj_size,
        batch_first=batch_first,
        lengths=lengths,
        dropout_masks=masks,
    )
    inputs = dict(params, x=case["x"], h0=case["h0"], c0=case["c0"])

    def run():
        return ref.lstm_forward(inputs["x"], params, h0=inputs["h0"], c0=inputs["c0"], **config)

    def loss():
        output, (h_n, c_n), _ = run()
        return (
            np.sum(output * case["d_output"])
            + np.sum(h_n * case["d_hn"])
            + np.sum(c_n * case["d_cn"])
        )

    _, _, cache = run()
    dx, dh0, dc0, grads = ref.lstm_backward(case["d_output"], case["d_hn"], case["d_cn"], cache)
    assert sorted(grads) == sorted(params)
    assert_matches_finite_differences(loss, inputs, dict(grads, x=dx, h0=dh0, c0=dc0))


def test_cell_backward_finite_differences(rng):
    r = lambda *shape: random_array(rng, shape, np.float64)  # noqa: E731
    inputs = dict(
        x=r(B, I),
        h_prev=r(B, P),
        c_prev=r(B, H),
        weight_ih=r(4 * H, I),
        weight_hh=r(4 * H, P),
        bias_ih=r(4 * H),
        bias_hh=r(4 * H),
        weight_hr=r(P, H),
    )
    dh, dc = r(B, P), r(B, H)

    def loss():
        h, c, _ = ref.cell_forward(**inputs)
        return np.sum(h * dh) + np.sum(c * dc)

    _, _, cache = ref.cell_forward(**inputs)
    dx, dh_prev, dc_prev, grads = ref.cell_backward(dh, dc, cache)
    assert_matches_finite_differences(
        loss, inputs, dict(grads, x=dx, h_prev=dh_prev, c_prev=dc_prev)
    )


# ----------------------------------------------------------------------------
# Stable activations
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_are_stable(dtype):
    x = np.array([-1e30, -1e4, -1.0, 0.0, 1.0, 1e4, 1e30], dtype=dtype)
    with np.errstate(all="raise"):
        s = ref.sigmoid(x)
        t = ref.tanh(x)
    assert s.dtype == np.dtype(dtype) and t.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(t))
    np.testing.assert_array_equal(s[[0, 1, 3, 5, 6]], np.array([0, 0, 0.5, 1, 1], dtype))
    np.testing.assert_array_equal(t[[0, 1, 3, 5, 6]], np.array([-1, -1, 0, 1, 1], dtype))
    rtol = 1e-6 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(s[[2, 4]], [1 / (1 + np.e), 1 / (1 + 1 / np.e)], rtol=rtol)
    np.testing.assert_allclose(t[[2, 4]], [-np.tanh(1.0), np.tanh(1.0)], rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_symmetry_and_range(dtype):
    x = np.linspace(-60, 60, 1201).astype(dtype)
    with np.errstate(all="raise"):
        s = ref.sigmoid(x)
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(s + ref.sigmoid(-x), 1, rtol=2 * np.finfo(dtype).eps)
    assert np.all(np.diff(s) >= 0)


def test_huge_preactivations_give_finite_states(rng):
    case = make_case(rng, 2, True, 0, True, False, np.float32)
    params = {k: v * np.float32(1e30) for k, v in case["params"].items()}
    with np.errstate(all="raise"):
        output, (h_n, c_n), cache = ref.lstm_forward(
            case["x"], params, 2, True, h0=case["h0"], c0=case["c0"]
        )
    assert np.all(np.abs(output) <= 1) and np.all(np.isfinite(c_n))


def test_parameter_shapes_match_torch_order(torch):
    for L, bi, proj, bias in itertools.product([1, 2], [False, True], [0, 2], [False, True]):
        module = torch.nn.LSTM(I, H, L, bias=bias, bidirectional=bi, proj_size=proj)
        shapes = ref.parameter_shapes(I, H, L, bias, bi, proj)
        assert list(shapes.items()) == [(n, tuple(p.shape)) for n, p in module.state_dict().items()]
