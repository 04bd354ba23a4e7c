"""The ONNX LSTM cell options (peepholes, clip, input_forget, activations
with alpha/beta) and sequences of length 0:

- parity with ONNX Runtime (float32, one LSTM node per case, random weights)
  for every combination of options ORT runs, every direction, initial
  states and sequence_lens with zeros;
- the compiled kernel against fastlstm.reference, forward and backward, in
  float32 and float64, through every layer feature that combines with them;
- every option's gradients against central finite differences (float64);
- bitwise the same results for 1 and 2 threads;
- the API: arguments, errors, parameters, pickle, save/load, Sequential, and
  the default path (plain sigmoid/tanh) left to the plain kernel.
"""

import copy
import itertools
import pickle

import numpy as np
import pytest

import fastlstm
from fastlstm import reference
from fastlstm._native import kernels

from helpers import all_outputs, assert_bitwise, assert_close, reference_run

ACTS = list(reference.ACTIVATIONS)
# the activations whose alpha / beta ONNX Runtime leaves at 0 when they are
# not given (ONNX's defaults, which fastlstm follows, are 1.0 for
# ThresholdedRelu's and Affine's alpha; ScaledTanh has none in ONNX and 1, 1
# here): cases against ORT give them explicitly
ORT_OTHER_DEFAULTS = ("Affine", "ScaledTanh", "ThresholdedRelu")


# ---- ONNX Runtime ------------------------------------------------------------


def _iofc(w):
    """fastlstm's gate blocks i, f, g, o -> ONNX's i, o, f, c (axis 0)."""
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def _ort_run(lstm, x, h0, c0, lens, direction, attrs):
    """One ONNX LSTM node with lstm's weights (direction "reverse": its
    reverse direction's) -> Y (T, D, B, H), Y_h, Y_c."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    sfx = {"forward": ["_l0"], "reverse": ["_l0_reverse"]}.get(direction, ["_l0", "_l0_reverse"])
    p = lstm.state_dict()
    T, B, _ = x.shape
    H = lstm.hidden_size
    arrays = {
        "W": np.stack([_iofc(p["weight_ih" + s]) for s in sfx]),
        "R": np.stack([_iofc(p["weight_hh" + s]) for s in sfx]),
        "B": np.stack(
            [np.concatenate([_iofc(p["bias_ih" + s]), _iofc(p["bias_hh" + s])]) for s in sfx]
        ),
    }
    if lens is not None:
        arrays["seq"] = np.asarray(lens, np.int32)
    if h0 is not None:  # "reverse": the layer's second direction
        first = 1 if direction == "reverse" else 0
        arrays["h0"], arrays["c0"] = h0[first:], c0[first:]
    if lstm.peepholes:  # ONNX's P is i, o, f
        arrays["P"] = np.stack(
            [
                np.concatenate([np.split(p["weight_peephole" + s], 3)[k] for k in (0, 2, 1)])
                for s in sfx
            ]
        )
    names = ["X", "W", "R", "B", "seq", "h0", "c0", "P"]
    inputs = [n if n in arrays or n == "X" else "" for n in names]
    while inputs[-1] == "":
        inputs.pop()
    node = helper.make_node(
        "LSTM", inputs, ["Y", "Y_h", "Y_c"], hidden_size=H, direction=direction, **attrs
    )
    inits = [
        numpy_helper.from_array(a.astype(np.int32 if n == "seq" else np.float32), n)
        for n, a in arrays.items()
    ]
    graph = helper.make_graph(
        [node],
        "lstm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
            for n, shape in (
                ("Y", [T, len(sfx), B, H]),
                ("Y_h", [len(sfx), B, H]),
                ("Y_c", [len(sfx), B, H]),
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x})


def _ort_case(rng, direction, options, lens, with_state, scale=1.0, T=6, B=4, I=5, H=7):
    """fastlstm (bidirectional for "reverse": its second direction) against
    ORT on random weights in [-scale, scale], inputs and states.  (Unbounded
    activations as F let the gates exceed 1 and c grow step by step, which
    amplifies float32 rounding in both: their cases take smaller weights.)"""
    D = 2 if direction != "forward" else 1
    opts = dict(options)
    attrs = {}
    if "clip" in opts:
        attrs["clip"] = opts["clip"]
    if opts.get("input_forget"):
        attrs["input_forget"] = 1
    if "activations" in opts:
        acts = opts["activations"]
        attrs["activations"] = acts * (2 if direction == "bidirectional" else 1)
        for k in ("activation_alpha", "activation_beta"):
            if k in opts:
                attrs[k] = opts[k] * (2 if direction == "bidirectional" else 1)
        # fastlstm's layer is bidirectional for "reverse" too: the same lists twice
        opts["activations"] = acts * D
        for k in ("activation_alpha", "activation_beta"):
            if k in opts:
                opts[k] = opts[k] * D
    lstm = fastlstm.LSTM(I, H, bidirectional=D == 2, seed=int(rng.integers(1 << 30)), **opts)
    # wider than the default init: the gates leave their linear range and
    # clip clamps some pre-activations
    lstm.load_state_dict(
        {
            k: rng.uniform(-scale, scale, v.shape).astype(np.float32)
            for k, v in lstm.state_dict().items()
        }
    )
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = c0 = None
    if with_state:
        h0 = rng.standard_normal((D, B, H)).astype(np.float32)
        c0 = rng.standard_normal((D, B, H)).astype(np.float32)
    out, (h_n, c_n) = lstm(x, None if h0 is None else (h0, c0), lengths=lens)
    Y, Y_h, Y_c = _ort_run(lstm, x, h0, c0, lens, direction, attrs)
    if direction == "reverse":
        out, h_n, c_n = out[:, :, H:], h_n[1:], c_n[1:]
    got_y = Y.transpose(0, 2, 1, 3).reshape(T, B, -1)
    what = f"{direction} {options} lens={lens} state={with_state}"
    for name, a, b in (("Y", out, got_y), ("Y_h", h_n, Y_h), ("Y_c", c_n, Y_c)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"{what}: {name}")
    return lstm


# every subset of the options but activations, which the next test covers
OPTION_SETS = [
    {k: v for k, v in zip(("peepholes", "clip", "input_forget"), combo) if v}
    for combo in itertools.product((False, True), (None, 0.6), (False, True))
]
DIRECTIONS = ["forward", "reverse", "bidirectional"]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "+".join(o) or "plain")
def test_ort_parity_options(rng, direction, options):
    for lens, with_state in ((None, False), ([6, 0, 3, 1], True), ([0, 2, 6, 0], False)):
        _ort_case(rng, direction, options, lens, with_state)


def _activation_case(rng, f, g, h, most=1.5):
    """activations (f, g, h) with random alpha (at most `most`) / beta for
    each that takes one."""
    alpha = [
        round(float(rng.uniform(0.1, most)), 3)
        for n in (f, g, h)
        if reference.ACTIVATIONS[n][0] is not None
    ]
    beta = [
        round(float(rng.uniform(0.1, 1.0)), 3)
        for n in (f, g, h)
        if reference.ACTIVATIONS[n][1] is not None
    ]
    opts = {"activations": [f, g, h]}
    if alpha:
        opts["activation_alpha"] = alpha
    if beta:
        opts["activation_beta"] = beta
    return opts


@pytest.mark.parametrize("position", ["f", "g", "h"])
@pytest.mark.parametrize("name", ACTS)
def test_ort_parity_activations(rng, name, position):
    """Each activation in each place, with the other options and either
    direction, against ORT."""
    acts = ["Sigmoid", "Tanh", "Tanh"]
    acts["fgh".index(position)] = name
    opts = _activation_case(rng, *acts)
    _ort_case(rng, "bidirectional", opts, [6, 0, 2, 5], True, scale=0.5)
    _ort_case(rng, "forward", dict(opts, peepholes=True, clip=0.8), None, False, scale=0.5)
    _ort_case(rng, "reverse", dict(opts, input_forget=True), [3, 6, 1, 0], True, scale=0.5)


def test_ort_parity_activation_mix(rng):
    """Random triples of activations with all options, alpha / beta lists
    consumed in order by the activations that take them."""
    for _ in range(12):
        opts = _activation_case(rng, *rng.choice(ACTS, 3))
        opts.update(
            peepholes=True, clip=float(rng.uniform(0.5, 3)), input_forget=bool(rng.integers(2))
        )
        _ort_case(rng, DIRECTIONS[int(rng.integers(3))], opts, [6, 1, 0, 4], True, scale=0.5)


@pytest.mark.parametrize("name", ["LeakyRelu", "HardSigmoid", "Elu"])
def test_ort_parity_default_alpha_beta(rng, name):
    """Where ORT's defaults are ONNX's, omitted alpha / beta agree with it."""
    _ort_case(rng, "forward", {"activations": ["Sigmoid", name, "Tanh"]}, None, True)


def test_defaults_are_onnx_operators(rng):
    """Omitted alpha / beta take the ONNX operators' defaults (ORT differs
    for Affine, ScaledTanh and ThresholdedRelu, whose omitted ones it reads
    as 0)."""
    x = np.linspace(-2, 2, 9)
    for name, (a, b) in reference.ACTIVATIONS.items():
        (got,) = reference.resolve_activations(["Sigmoid", name, "Tanh"], None, None, 1)
        assert got[1] == (name, a or 0.0, b or 0.0)
        assert np.all(np.isfinite(reference.activation(name, got[1][1], got[1][2], x)))
    assert reference.resolve_activations(["Affine", "Affine", "Tanh"], [2.0], None, 1)[0][:2] == (
        ("Affine", 2.0, 0.0),
        ("Affine", 1.0, 0.0),
    )


# ---- the kernel against the reference -----------------------------------------

KERNEL_CASES = {
    "peepholes": dict(peepholes=True),
    "clip": dict(clip=0.5),
    "input_forget": dict(input_forget=True),
    "acts": dict(
        activations=["HardSigmoid", "Elu", "Softsign"],
        activation_alpha=[0.3, 0.8],
        activation_beta=[0.45],
    ),
    "all": dict(
        peepholes=True,
        clip=1.2,
        input_forget=True,
        activations=["Sigmoid", "ScaledTanh", "Softplus"],
        activation_alpha=[1.3],
        activation_beta=[0.7],
    ),
}
LAYOUTS = {
    "L1": dict(T=5, B=3, I=4, H=6),
    "L2-bi-ragged0-bf": dict(
        T=6,
        B=5,
        I=3,
        H=5,
        num_layers=2,
        bidirectional=True,
        batch_first=True,
        lengths=[6, 0, 2, 5, 1],
    ),
    "bi-ragged-nobias": dict(
        T=7, B=4, I=3, H=9, bidirectional=True, bias=False, lengths=[3, 7, 7, 1]
    ),
    "unbatched-L2": dict(T=4, B=None, I=3, H=4, num_layers=2),
}


def _bidir_acts(opts, D):
    opts = dict(opts)
    for k in ("activations", "activation_alpha", "activation_beta"):
        if k in opts:
            opts[k] = opts[k] * D
    return opts


def _problem(rng, dtype, layout, opts, scale=0.9):
    cfg = dict(LAYOUTS[layout])
    T, B, I, H = (cfg.pop(k) for k in ("T", "B", "I", "H"))
    lengths = cfg.pop("lengths", None)
    D = 2 if cfg.get("bidirectional") else 1
    lstm = fastlstm.LSTM(
        I, H, dtype=dtype, seed=int(rng.integers(1 << 30)), **cfg, **_bidir_acts(opts, D)
    )
    lstm.load_state_dict(
        {k: rng.uniform(-scale, scale, v.shape).astype(dtype) for k, v in lstm.state_dict().items()}
    )
    LD = lstm.num_layers * D
    if B is None:
        x = rng.standard_normal((T, I)).astype(dtype)
        hx = tuple(rng.standard_normal((LD, H)).astype(dtype) for _ in range(2))
        out_shape = (T, D * H)
    else:
        xs = (B, T, I) if lstm.batch_first else (T, B, I)
        x = rng.standard_normal(xs).astype(dtype)
        hx = tuple(rng.standard_normal((LD, B, H)).astype(dtype) for _ in range(2))
        out_shape = xs[:2] + (D * H,)
    d_out = rng.standard_normal(out_shape).astype(dtype)
    d_state = tuple(rng.standard_normal(s.shape).astype(dtype) for s in hx)
    return lstm, x, hx, lengths, d_out, d_state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("case", list(KERNEL_CASES))
def test_kernel_vs_reference(rng, dtype, layout, case):
    lstm, x, hx, lengths, d_out, d_state = _problem(rng, dtype, layout, KERNEL_CASES[case])
    lstm.zero_grad()
    out, (h_n, c_n) = lstm(x, hx, lengths=lengths)
    out_t, (h_t, c_t), backward = lstm.forward_train(x, hx, lengths=lengths)
    dx, (dh0, dc0) = backward(d_out, d_state)
    ref = reference_run(lstm, x, hx[0], hx[1], lengths, d_out, d_state)
    for name, got, want in (
        ("output", out, ref["output"]),
        ("h_n", h_n, ref["h_n"]),
        ("c_n", c_n, ref["c_n"]),
        ("dx", dx, ref["dx"]),
        ("dh0", dh0, ref["dh0"]),
        ("dc0", dc0, ref["dc0"]),
    ):
        assert_close(got, want, dtype, f"{case} {layout} {name}", against="reference")
    for a, b in ((out, out_t), (h_n, h_t), (c_n, c_t)):
        np.testing.assert_array_equal(a, b)
    assert set(lstm.grads) == set(ref["grads"])
    for name, g in ref["grads"].items():
        assert_close(
            lstm.grads[name],
            g,
            dtype,
            f"{case} {layout} grads[{name}]",
            against="reference",
            scale=True,
        )
    if lstm.input_forget:  # f's weights are unused
        H = lstm.hidden_size
        assert not lstm.grads["weight_ih_l0"][H : 2 * H].any()
        if lstm.peepholes:
            assert not lstm.grads["weight_peephole_l0"][H : 2 * H].any()


def test_every_activation_kernel_vs_reference(rng):
    """Each activation as F, G and Hc at once, forward and backward."""
    for name in ACTS:
        opts = _activation_case(rng, name, name, name, most=0.9)
        for dtype in (np.float64, np.float32):
            lstm, x, hx, lengths, d_out, d_state = _problem(
                rng, dtype, "L1", dict(opts, peepholes=True), 0.3
            )
            lstm.zero_grad()
            out, (h_n, c_n), backward = lstm.forward_train(x, hx)
            dx, (dh0, dc0) = backward(d_out, d_state)
            ref = reference_run(lstm, x, hx[0], hx[1], None, d_out, d_state)
            for what, got, want in (
                ("output", out, ref["output"]),
                ("c_n", c_n, ref["c_n"]),
                ("dx", dx, ref["dx"]),
                ("dc0", dc0, ref["dc0"]),
            ):
                # (errors relative to the largest value: with one activation
                # everywhere, Affine or Relu let values grow by orders of
                # magnitude over the steps)
                assert_close(got, want, dtype, f"{name} {what}", against="reference", scale=True)
            for k, g in ref["grads"].items():
                assert_close(
                    lstm.grads[k], g, dtype, f"{name} grads[{k}]", against="reference", scale=True
                )


# ---- finite differences (float64) ------------------------------------------------

EPS = 1e-6
FD_CASES = dict(KERNEL_CASES)
FD_CASES.update(
    {
        "act-" + n: dict(_activation_case(np.random.default_rng(k), n, n, n, 0.9), peepholes=True)
        for k, n in enumerate(ACTS)
    }
)


@pytest.mark.parametrize("case", list(FD_CASES))
def test_finite_differences(rng, case):
    """Every gradient (dx, dh0, dc0, every parameter, peepholes included) at
    a sample of entries, against central differences of a random linear
    loss of output, h_n and c_n."""
    if case in KERNEL_CASES:
        problem = _problem(rng, np.float64, "L2-bi-ragged0-bf", FD_CASES[case])
    else:  # one activation everywhere: smaller weights keep the values moderate
        problem = _problem(rng, np.float64, "L1", FD_CASES[case], 0.3)
    lstm, x, hx, lengths, d_out, d_state = problem
    h0, c0 = (a.copy() for a in hx)

    def loss():
        out, (h_n, c_n) = lstm(x, (h0, c0), lengths=lengths)
        return np.sum(out * d_out) + np.sum(h_n * d_state[0]) + np.sum(c_n * d_state[1])

    lstm.zero_grad()
    _, _, backward = lstm.forward_train(x, (h0, c0), lengths=lengths)
    dx, (dh0, dc0) = backward(d_out, d_state)
    checks = [("x", x, dx), ("h0", h0, dh0), ("c0", c0, dc0)]
    checks += [(k, p, lstm.grads[k].copy()) for k, p in lstm.named_parameters()]
    for name, array, grad in checks:
        flat = rng.choice(array.size, min(array.size, 6), replace=False)
        for k in flat:
            idx = np.unravel_index(k, array.shape)
            saved = array[idx]
            array[idx] = saved + EPS
            plus = loss()
            array[idx] = saved - EPS
            minus = loss()
            array[idx] = saved
            numeric = (plus - minus) / (2 * EPS)
            assert abs(grad[idx] - numeric) <= 1e-7 + 1e-6 * abs(numeric), (
                f"{case}: d{name}{idx}: analytic {grad[idx]!r} vs numeric {numeric!r}"
            )


# ---- threads ---------------------------------------------------------------------


@pytest.fixture
def restore_threads():
    before = fastlstm.get_num_threads()
    yield
    fastlstm.set_num_threads(before)


@pytest.mark.parametrize(
    "shape",
    [dict(T=12, B=32, I=16, H=64), dict(T=6, B=2, I=64, H=256)],
    ids=["batch-split", "unit-split"],
)
@pytest.mark.parametrize("case", ["all", "acts"])
def test_threads_bitwise(rng, restore_threads, shape, case):
    """Any thread count gives the same bits (rows or units split between
    threads; the peepholes' gradient summed on one thread)."""
    T, B, I, H = shape["T"], shape["B"], shape["I"], shape["H"]
    for dtype in (np.float32, np.float64):
        lstm = fastlstm.LSTM(
            I,
            H,
            num_layers=2,
            bidirectional=True,
            dtype=dtype,
            seed=3,
            **_bidir_acts(KERNEL_CASES[case], 2),
        )
        x = rng.standard_normal((T, B, I)).astype(dtype)
        hx = tuple(rng.standard_normal((4, B, H)).astype(dtype) for _ in range(2))
        lens = rng.integers(0, T + 1, B)
        d_out = rng.standard_normal((T, B, 2 * H)).astype(dtype)
        results = []
        for n in (1, 2):
            fastlstm.set_num_threads(n)
            results.append(all_outputs(lstm, x, hx, lens, d_out, (None, hx[1])))
        assert_bitwise(results[0], results[1], f"{case} {dtype.__name__}")


# ---- the API -----------------------------------------------------------------------


def test_plain_options_run_the_plain_kernel(rng):
    """Sigmoid, Tanh, Tanh given explicitly is the default LSTM: the same
    (plain) kernel, bitwise the same results."""
    a = fastlstm.LSTM(3, 5, bidirectional=True, seed=1)
    b = fastlstm.LSTM(3, 5, bidirectional=True, seed=1, activations=["sigmoid", "TANH", "Tanh"] * 2)
    assert b._cell_opts == [None, None] and b.activations == ("Sigmoid", "Tanh", "Tanh") * 2
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    d = rng.standard_normal((4, 2, 10)).astype(np.float32)
    assert_bitwise(
        all_outputs(a, x, None, None, d, (None, None)),
        all_outputs(b, x, None, None, d, (None, None)),
    )


def test_parameters(rng):
    lstm = fastlstm.LSTM(3, 5, num_layers=2, bidirectional=True, peepholes=True, seed=0)
    names = [k for k, _ in lstm.named_parameters()]
    peeps = [k for k in names if "peephole" in k]
    assert peeps == [
        "weight_peephole_l0",
        "weight_peephole_l0_reverse",
        "weight_peephole_l1",
        "weight_peephole_l1_reverse",
    ]
    assert names.index("weight_peephole_l0") == names.index("bias_hh_l0") + 1
    for k in peeps:
        p = getattr(lstm, k)
        assert p.shape == (15,) and p.any() and np.abs(p).max() <= 1 / np.sqrt(5)
        assert lstm.grads[k].shape == (15,) and k in lstm.state_dict()


def test_copies_and_files(rng, tmp_path):
    opts = dict(
        peepholes=True,
        clip=2.5,
        input_forget=True,
        activations=["HardSigmoid", "LeakyRelu", "Elu"] * 2,
        activation_alpha=[0.25, 0.05, 0.7, 0.3, 0.02, 1.1],
        activation_beta=[0.4, 0.6],
    )
    lstm = fastlstm.LSTM(3, 4, bidirectional=True, batch_first=True, seed=0, **opts)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    want = lstm(x, lengths=[5, 0])[0]
    fastlstm.save(tmp_path / "m.fastlstm", lstm)
    seq = fastlstm.Sequential(lstm, fastlstm.LastStep(batch_first=True, bidirectional=True))
    fastlstm.save(tmp_path / "s.fastlstm", seq)
    clones = [
        pickle.loads(pickle.dumps(lstm)),
        copy.deepcopy(lstm),
        fastlstm.load(tmp_path / "m.fastlstm"),
    ]
    clones.append(fastlstm.load(tmp_path / "s.fastlstm")[0])
    for clone in clones:
        for k in (
            "peepholes",
            "clip",
            "input_forget",
            "activations",
            "activation_alpha",
            "activation_beta",
        ):
            assert getattr(clone, k) == getattr(lstm, k), k
        np.testing.assert_array_equal(clone(x, lengths=[5, 0])[0], want)
    assert "0.weight_peephole_l0_reverse" in seq.state_dict()
    # a layer without options writes the config it always did
    from fastlstm.io import _describe

    assert "peepholes" not in _describe(fastlstm.LSTM(2, 3), "save")[1]


@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(clip=0), "clip"),
        (dict(clip=-1.0), "clip"),
        (dict(clip=float("nan")), "clip"),
        (dict(clip="1"), "clip"),
        (dict(peepholes="yes"), "peepholes"),
        (dict(input_forget=2), "input_forget"),
        (dict(activations=["Sigmoid", "Tanh"]), "activations"),
        (dict(activations=["Sigmoid", "Tanh", "Swish"]), "activations"),
        (dict(activations="Sigmoid"), "activations"),
        (
            dict(activations=["Sigmoid", "LeakyRelu", "Tanh"], activation_alpha=[0.1, 0.2]),
            "activation_alpha",
        ),
        (dict(activations=["Sigmoid", "Tanh", "Tanh"], activation_beta=[0.1]), "activation_beta"),
        (dict(activation_alpha=[0.1]), "activation_alpha"),
        (dict(activations=["Sigmoid", "Elu", "Tanh"], activation_alpha=["x"]), "activation_alpha"),
        (dict(peepholes=True, proj_size=2), "proj_size"),
        (dict(clip=1.0, proj_size=2), "proj_size"),
    ],
)
def test_bad_options(kwargs, word):
    with pytest.raises(ValueError, match=word):
        fastlstm.LSTM(3, 4, **kwargs)


def test_bidirectional_needs_six_activations():
    with pytest.raises(ValueError, match="activations"):
        fastlstm.LSTM(3, 4, bidirectional=True, activations=["Sigmoid", "Elu", "Tanh"])
    fastlstm.LSTM(3, 4, bidirectional=True, activations=["Sigmoid", "Elu", "Tanh"] * 2)


def test_options_are_read_only():
    lstm = fastlstm.LSTM(3, 4, clip=1.0)
    with pytest.raises(AttributeError, match="clip"):
        lstm.clip = 2.0


def test_stream_refuses_options():
    with pytest.raises(ValueError, match="stream.*cell options"):
        fastlstm.LSTM(3, 4, peepholes=True).stream(2)
    fastlstm.LSTM(3, 4, activations=["Sigmoid", "Tanh", "Tanh"]).stream(2)  # plain: fine


def test_c_refuses_options_with_projection(rng):
    """FL_EOPTIONS from the C call (the layer refuses it before)."""
    I, H, P, B, T = 3, 4, 2, 2, 3
    w_ih = rng.standard_normal((4 * H, I)).astype(np.float32)
    w_hh = rng.standard_normal((4 * H, P)).astype(np.float32)
    w_hr = rng.standard_normal((P, H)).astype(np.float32)
    blob = np.empty(kernels.packed_size("f", I, H, P), np.float32)
    kernels.pack(w_ih, w_hh, w_hr, blob)
    x = rng.standard_normal((T * B, I)).astype(np.float32)
    y, h_n, c_n = (
        np.empty((T * B, P), np.float32),
        np.empty((B, P), np.float32),
        np.empty((B, H), np.float32),
    )
    opts = (None, True, reference.CellOptions().activations)
    with pytest.raises(ValueError, match=f"cell options.*status {kernels.STATUS['EOPTIONS']}"):
        kernels.forward(
            x,
            w_ih,
            None,
            blob,
            None,
            None,
            y,
            0,
            h_n,
            c_n,
            None,
            None,
            None,
            None,
            T,
            False,
            P,
            opts=opts,
        )


def test_length_zero_everywhere(rng):
    """All sequences empty: zeros out, zeros back."""
    lstm = fastlstm.LSTM(3, 4, peepholes=True, seed=0)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    hx = tuple(rng.standard_normal((1, 2, 4)).astype(np.float32) for _ in range(2))
    out, (h, c), backward = lstm.forward_train(x, hx, lengths=[0, 0])
    assert not out.any() and not h.any() and not c.any()
    dx, (dh0, dc0) = backward(np.ones_like(out), (np.ones_like(h), np.ones_like(c)))
    assert not dx.any() and not dh0.any() and not dc0.any()
    assert not any(g.any() for g in lstm.grads.values())
