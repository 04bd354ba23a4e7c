"""The ONNX LSTM cell options (peepholes, clip, input_forget, activations
with activation_alpha / activation_beta) through fastlstm.onnx, against
ONNX Runtime, on random weights, inputs and initial states:

* an ONNX graph -> fastlstm.onnx.load gives ONNX Runtime's numbers;
* a fastlstm.LSTM -> fastlstm.onnx.export -> ONNX Runtime gives fastlstm's;
* export -> load gives the same layer back (options, parameters, numbers).

alpha / beta: ONNX Runtime consumes each list in order by the activations
that take that parameter (as fastlstm.LSTM does) and ignores values past
those; it reads omitted values as the ONNX operators' defaults except for
Affine, ScaledTanh and ThresholdedRelu, which get 0 (fastlstm.LSTM keeps
ONNX's defaults: Affine 1, 0; ScaledTanh 1, 1; ThresholdedRelu 1).  Export
therefore writes every value; import reads a graph as ONNX Runtime runs it.
The tests below measure those facts on ONNX Runtime itself.

Tolerance: float32, rtol 1e-5, atol 1e-6 throughout.
"""

import numpy as np
import pytest

import fastlstm
from fastlstm.reference import ACTIVATIONS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper, TP = onnx.helper, onnx.TensorProto

TOL32 = dict(rtol=1e-5, atol=1e-6)
DIRECTIONS = ["forward", "reverse", "bidirectional"]
# random alpha / beta of each activation that takes them, away from the
# defaults: (low, high) of a uniform draw
PARAM_RANGES = {
    "HardSigmoid": ((0.1, 0.45), (0.3, 0.7)),
    "Affine": ((0.4, 1.4), (-0.5, 0.5)),
    "LeakyRelu": ((0.05, 0.5), None),
    "ThresholdedRelu": ((0.05, 0.4), None),
    "ScaledTanh": ((0.5, 1.6), (0.4, 1.6)),
    "Elu": ((0.3, 1.7), None),
}


def run_ort(model, feeds):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def node_model(rng, I, H, direction, peepholes=False, **attrs):
    """One LSTM node: random W, R, B (and P) initializers; graph inputs X,
    sequence_lens, initial_h, initial_c; outputs Y, Y_h, Y_c."""
    D = 2 if direction == "bidirectional" else 1
    arrays = {
        "W": rng.uniform(-0.6, 0.6, (D, 4 * H, I)),
        "R": rng.uniform(-0.6, 0.6, (D, 4 * H, H)),
        "B": rng.uniform(-0.6, 0.6, (D, 8 * H)),
    }
    if peepholes:
        arrays["P"] = rng.uniform(-0.6, 0.6, (D, 3 * H))
    inits = [onnx.numpy_helper.from_array(a.astype(np.float32), k) for k, a in arrays.items()]
    inputs = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c"]
    inputs += ["P"] if peepholes else []
    node = helper.make_node(
        "LSTM",
        inputs,
        ["Y", "Y_h", "Y_c"],
        name="cell_lstm",
        hidden_size=H,
        direction=direction,
        **attrs,
    )
    state = [D, "B", H]
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("X", TP.FLOAT, ["T", "B", I]),
            helper.make_tensor_value_info("sequence_lens", TP.INT32, ["B"]),
            helper.make_tensor_value_info("initial_h", TP.FLOAT, state),
            helper.make_tensor_value_info("initial_c", TP.FLOAT, state),
        ],
        [
            helper.make_tensor_value_info("Y", TP.FLOAT, ["T", D, "B", H]),
            helper.make_tensor_value_info("Y_h", TP.FLOAT, state),
            helper.make_tensor_value_info("Y_c", TP.FLOAT, state),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def node_feeds(rng, T, B, I, H, D):
    """X, sequence_lens (with a 0 and a full length), initial states."""
    lens = rng.integers(0, T + 1, B).astype(np.int32)
    lens[0], lens[-1] = 0, T
    return {
        "X": rng.standard_normal((T, B, I)).astype(np.float32),
        "sequence_lens": lens,
        "initial_h": rng.standard_normal((D, B, H)).astype(np.float32),
        "initial_c": rng.standard_normal((D, B, H)).astype(np.float32),
    }


def assert_outputs_close(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **TOL32)


def random_params(rng, names):
    """alpha and beta lists for ``names`` (ONNX's convention: one value per
    activation that takes the parameter, in order), drawn away from the defaults."""
    alpha, beta = [], []
    for n in names:
        ranges = PARAM_RANGES.get(n)
        if ranges is None:
            continue
        alpha.append(float(rng.uniform(*ranges[0])))
        if ranges[1] is not None:
            beta.append(float(rng.uniform(*ranges[1])))
    return alpha, beta


def node_attr(model, name):
    """An attribute of the (first) LSTM node."""
    node = [n for n in model.graph.node if n.op_type == "LSTM"][0]
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def randomize(lstm, rng, scale=0.6):
    lstm.load_state_dict(
        {
            k: rng.uniform(-scale, scale, v.shape).astype(v.dtype)
            for k, v in lstm.state_dict().items()
        }
    )
    return lstm


# ---- every activation, with alpha / beta other than the defaults ---------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_with_its_alpha_beta_round_trips(rng, name, direction):
    """The activation in all three places of the forward (or only) direction
    and as g of the reverse one, each with its own random alpha / beta: a
    list read in another order, or with another default, gives other numbers.
    ORT's graph -> load -> export -> ORT and export -> load all agree."""
    I, H, T, B = 3, 4, 6, 4
    D = 2 if direction == "bidirectional" else 1
    acts = [name] * 3 + (["Sigmoid", name, "Tanh"] if D == 2 else [])
    alpha, beta = random_params(rng, acts)
    attrs = {"activations": acts}
    if alpha:
        attrs["activation_alpha"] = alpha
    if beta:
        attrs["activation_beta"] = beta
    model = node_model(rng, I, H, direction, **attrs)
    feeds = node_feeds(rng, T, B, I, H, D)
    want = run_ort(model, feeds)

    # an ONNX graph into fastlstm
    sess = fastlstm.onnx.InferenceSession(model)
    assert_outputs_close(sess.run(None, feeds), want)
    lstm = sess.module
    n_acts = 3 * D if direction != "reverse" else 6  # reverse-only: a bidirectional layer
    assert len(lstm.activations) == n_acts

    # and out again: the graph fastlstm writes runs the same in ORT
    exported = fastlstm.onnx.export(lstm, lengths=True, initial_states=True)
    onnx.checker.check_model(exported, full_check=True)
    x, lens = feeds["X"], feeds["sequence_lens"]
    h0, c0 = feeds["initial_h"], feeds["initial_c"]
    if direction == "reverse":  # the module's zero forward half: states of zeros
        h0 = np.concatenate([np.zeros_like(h0), h0])
        c0 = np.concatenate([np.zeros_like(c0), c0])
    out, (h_n, c_n) = lstm(x, (h0, c0), lengths=lens)
    got = run_ort(exported, {"x": x, "lengths": lens.astype(np.int64), "h0": h0, "c0": c0})
    assert_outputs_close(got, [out, h_n, c_n])

    # export -> load: the same options, parameters and numbers
    back = fastlstm.onnx.load(exported)
    assert back.activations == lstm.activations
    assert back.activation_alpha == pytest.approx(lstm.activation_alpha)
    assert back.activation_beta == pytest.approx(lstm.activation_beta)
    for k, v in lstm.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v), k
    b_out, (b_h, b_c) = back(x, (h0, c0), lengths=lens)
    for a, b in zip((b_out, b_h, b_c), (out, h_n, c_n)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_of_a_layer_exports_to_onnxruntime(rng, name):
    """fastlstm.LSTM with the activation as f, g and h of both directions
    (random alpha / beta, different per place and direction), two layers,
    lengths with a 0 and initial states -> export -> ORT.  Weights in
    [-0.2, 0.2]: with an unbounded gate activation (Affine, Softplus) as f,
    wider ones let c grow past 88 over two layers, where ORT's Softplus
    overflows to inf (log(1 + exp(x))) and fastlstm's does not."""
    acts = [name] * 6
    alpha, beta = random_params(rng, acts)
    lstm = fastlstm.LSTM(
        3,
        4,
        num_layers=2,
        bidirectional=True,
        activations=acts,
        activation_alpha=alpha or None,
        activation_beta=beta or None,
        seed=0,
    )
    randomize(lstm, rng, scale=0.2)
    model = fastlstm.onnx.export(lstm, lengths=True, initial_states=True)
    onnx.checker.check_model(model, full_check=True)
    assert node_attr(model, "activation_alpha") == pytest.approx(alpha or None)
    assert node_attr(model, "activation_beta") == pytest.approx(beta or None)
    x = rng.standard_normal((7, 4, 3)).astype(np.float32)
    lens = np.array([7, 0, 3, 1])
    h0, c0 = (rng.standard_normal((4, 4, 4)).astype(np.float32) for _ in range(2))
    out, (h_n, c_n) = lstm(x, (h0, c0), lengths=lens)
    got = run_ort(model, {"x": x, "lengths": lens, "h0": h0, "c0": c0})
    assert_outputs_close(got, [out, h_n, c_n])


# ---- omitted and extra values: ONNX Runtime's reading ------------------------------


@pytest.mark.parametrize(
    "acts, alpha, beta, read_alpha, read_beta",
    [
        # omitted: ORT reads 0 for Affine, ScaledTanh, ThresholdedRelu
        (["Sigmoid", "Affine", "Tanh"], None, None, [0.0], [0.0]),
        (["Sigmoid", "ScaledTanh", "ScaledTanh"], [1.2], None, [1.2, 0.0], [0.0, 0.0]),
        (["Sigmoid", "Tanh", "ThresholdedRelu"], None, None, [0.0], None),
        # omitted: ONNX's defaults for the others
        (["HardSigmoid", "LeakyRelu", "Elu"], [0.3], None, [0.3, 0.01, 1.0], [0.5]),
        # values past the activations that take one are ignored
        (["Sigmoid", "Tanh", "Tanh"], [0.3, 0.4, 0.5], [0.1, 0.2, 0.3], None, None),
        (["HardSigmoid", "Softplus", "Tanh"], [0.3, 0.4, 0.5], [0.6, 0.2], [0.3], [0.6]),
    ],
)
def test_omitted_and_extra_alpha_beta_are_read_as_onnxruntime_runs_them(
    rng, acts, alpha, beta, read_alpha, read_beta
):
    attrs = {"activations": acts}
    if alpha is not None:
        attrs["activation_alpha"] = alpha
    if beta is not None:
        attrs["activation_beta"] = beta
    model = node_model(rng, 3, 4, "forward", **attrs)
    feeds = node_feeds(rng, 6, 3, 3, 4, 1)
    sess = fastlstm.onnx.InferenceSession(model)
    assert_outputs_close(sess.run(None, feeds), run_ort(model, feeds))
    if read_alpha is None and read_beta is None:  # only extras: the default cell
        assert sess.module.activations is None
        return
    assert sess.module.activation_alpha == pytest.approx(read_alpha)
    assert sess.module.activation_beta == pytest.approx(read_beta)


def test_onnx_defaults_of_the_layer_are_written_out(rng):
    """fastlstm.LSTM's omitted alpha / beta are ONNX's operator defaults;
    export writes them, so ORT (which would read 0) computes the same."""
    acts = ["Sigmoid", "Affine", "ScaledTanh", "Sigmoid", "ScaledTanh", "ThresholdedRelu"]
    lstm = fastlstm.LSTM(3, 4, bidirectional=True, activations=acts, seed=0)
    randomize(lstm, rng)
    model = fastlstm.onnx.export(lstm)
    assert node_attr(model, "activation_alpha") == [1.0, 1.0, 1.0, 1.0]
    assert node_attr(model, "activation_beta") == [0.0, 1.0, 1.0]
    x = rng.standard_normal((6, 3, 3)).astype(np.float32)
    out, (h_n, c_n) = lstm(x)
    assert_outputs_close(run_ort(model, {"x": x}), [out, h_n, c_n])
    # the same graph without the values: ORT computes something else
    (node,) = [n for n in model.graph.node if n.op_type == "LSTM"]
    for a in [a for a in node.attribute if a.name.startswith("activation_")]:
        node.attribute.remove(a)
    assert not np.allclose(run_ort(model, {"x": x})[0], out, **TOL32)


# ---- peepholes, clip, input_forget, with activations, lengths, both ways -------------


OPTION_SETS = {
    "peepholes": {"peepholes": True},
    "clip": {"clip": 0.4},
    "input_forget": {"input_forget": True},
    "peepholes+clip+input_forget": {"peepholes": True, "clip": 0.9, "input_forget": True},
    "clip+activations": {
        "clip": 0.7,
        "activations": ["HardSigmoid", "LeakyRelu", "Softsign"],
        "activation_alpha": [0.3, 0.15],
        "activation_beta": [0.45],
    },
}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("options", list(OPTION_SETS), ids=list(OPTION_SETS))
def test_options_of_an_onnx_node_load_as_onnxruntime_runs_them(rng, options, direction):
    attrs = dict(OPTION_SETS[options])
    peepholes = attrs.pop("peepholes", False)
    if attrs.pop("input_forget", False):
        attrs["input_forget"] = 1
    D = 2 if direction == "bidirectional" else 1
    if "activations" in attrs and D == 2:  # other activations for the reverse direction
        attrs["activations"] = attrs["activations"] + ["Sigmoid", "Elu", "ScaledTanh"]
        attrs["activation_alpha"] = attrs["activation_alpha"] + [0.8, 1.3]
        attrs["activation_beta"] = attrs["activation_beta"] + [0.7]
    model = node_model(rng, 3, 5, direction, peepholes=peepholes, **attrs)
    sess = fastlstm.onnx.InferenceSession(model)
    lstm = sess.module
    assert lstm.peepholes == peepholes
    assert lstm.clip == (pytest.approx(attrs["clip"]) if "clip" in attrs else None)
    assert lstm.input_forget == bool(attrs.get("input_forget"))
    for T, B in ((6, 4), (1, 2), (9, 3)):
        feeds = node_feeds(rng, T, B, 3, 5, D)
        assert_outputs_close(sess.run(None, feeds), run_ort(model, feeds))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("options", list(OPTION_SETS), ids=list(OPTION_SETS))
def test_options_of_a_layer_export_to_onnxruntime_and_load_back(
    rng, options, bidirectional, batch_first
):
    opts = dict(OPTION_SETS[options])
    if "activations" in opts and bidirectional:  # other activations for the reverse direction
        opts["activations"] = opts["activations"] + ["Sigmoid", "Elu", "ScaledTanh"]
        opts["activation_alpha"] = opts["activation_alpha"] + [0.8, 1.3]
        opts["activation_beta"] = opts["activation_beta"] + [0.7]
    lstm = fastlstm.LSTM(
        3, 5, num_layers=2, bidirectional=bidirectional, batch_first=batch_first, seed=0, **opts
    )
    randomize(lstm, rng)  # random peepholes too, so a wrong i/f/o order shows
    model = fastlstm.onnx.export(lstm, lengths=True, initial_states=True)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    back = fastlstm.onnx.load(model)
    assert repr(back) == repr(lstm)
    for k, v in lstm.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v), k
    LD = 2 * lstm.num_directions
    for T, B in ((7, 4), (2, 3)):
        x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3)).astype(np.float32)
        lens = rng.integers(0, T + 1, B)
        lens[0], lens[-1] = 0, T
        h0, c0 = (rng.standard_normal((LD, B, 5)).astype(np.float32) for _ in range(2))
        want = lstm(x, (h0, c0), lengths=lens)
        want = [want[0], *want[1]]
        assert_outputs_close(sess.run(None, {"x": x, "lengths": lens, "h0": h0, "c0": c0}), want)
        got = back(x, (h0, c0), lengths=lens)
        for a, b in zip([got[0], *got[1]], want):
            np.testing.assert_array_equal(a, b)
