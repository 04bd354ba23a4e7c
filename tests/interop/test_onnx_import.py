"""fastlstm.onnx.load / InferenceSession: ONNX graphs into fastlstm modules
that compute what ONNX Runtime (or torch, for its own exports) computes.

* one LSTM node with random weights and every attribute combination ONNX
  Runtime runs, against ONNX Runtime; layout=1 against layout 0 transposed
  (ONNX Runtime refuses layout 1 on CPU);
* the ONNX package's own LSTM node test cases (onnx.backend.test.case.node);
* graphs of torch.onnx.export, against torch;
* fastlstm.onnx.export's graphs read back.

The ONNX-only cell options (peepholes, clip, input_forget, activations) are
fastlstm.LSTM's; test_onnx_cell_options.py has them in every direction with
every activation.
"""

import io
import warnings

import numpy as np
import pytest

import fastlstm

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper, TP = onnx.helper, onnx.TensorProto

TOL32 = dict(rtol=1e-5, atol=1e-6)


def run_ort(model, feeds):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def lstm_node_model(
    rng,
    I=3,
    H=4,
    direction="forward",
    layout=0,
    bias=True,
    sequence_lens=False,
    initial=False,
    peepholes=False,
    **attrs,
):
    """One ONNX LSTM node, random W, R, B, P as initializers; graph inputs
    X, [sequence_lens], [initial_h, initial_c]; outputs Y, Y_h, Y_c."""
    D = 2 if direction == "bidirectional" else 1
    inits = [
        onnx.numpy_helper.from_array(rng.uniform(-0.6, 0.6, (D, 4 * H, I)).astype(np.float32), "W"),
        onnx.numpy_helper.from_array(rng.uniform(-0.6, 0.6, (D, 4 * H, H)).astype(np.float32), "R"),
    ]
    inputs = ["X", "W", "R", "", "", "", "", ""]
    if bias:
        inits.append(
            onnx.numpy_helper.from_array(rng.uniform(-0.6, 0.6, (D, 8 * H)).astype(np.float32), "B")
        )
        inputs[3] = "B"
    if peepholes:
        inits.append(
            onnx.numpy_helper.from_array(rng.uniform(-0.6, 0.6, (D, 3 * H)).astype(np.float32), "P")
        )
        inputs[7] = "P"
    lead = ["B", "T"] if layout else ["T", "B"]
    state = ["B", D, H] if layout else [D, "B", H]
    graph_inputs = [helper.make_tensor_value_info("X", TP.FLOAT, lead + [I])]
    if sequence_lens:
        inputs[4] = "sequence_lens"
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", TP.INT32, ["B"]))
    if initial:
        inputs[5], inputs[6] = "initial_h", "initial_c"
        for n in ("initial_h", "initial_c"):
            graph_inputs.append(helper.make_tensor_value_info(n, TP.FLOAT, state))
    while inputs[-1] == "":
        inputs.pop()
    if direction != "forward":
        attrs["direction"] = direction
    if layout:
        attrs["layout"] = 1
    node = helper.make_node(
        "LSTM", inputs, ["Y", "Y_h", "Y_c"], name="the_lstm", hidden_size=H, **attrs
    )
    y = ["B", "T", D, H] if layout else ["T", D, "B", H]
    graph = helper.make_graph(
        [node],
        "g",
        graph_inputs,
        [
            helper.make_tensor_value_info("Y", TP.FLOAT, y),
            helper.make_tensor_value_info("Y_h", TP.FLOAT, state),
            helper.make_tensor_value_info("Y_c", TP.FLOAT, state),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def node_feeds(rng, T, B, I, H, D, sequence_lens, initial, layout=0):
    feeds = {"X": rng.standard_normal((B, T, I) if layout else (T, B, I)).astype(np.float32)}
    if sequence_lens:
        lens = rng.integers(1, T + 1, B).astype(np.int32)
        lens[-1] = T
        feeds["sequence_lens"] = lens
    if initial:
        shape = (B, D, H) if layout else (D, B, H)
        feeds["initial_h"] = rng.standard_normal(shape).astype(np.float32)
        feeds["initial_c"] = rng.standard_normal(shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("sequence_lens", [False, True])
@pytest.mark.parametrize("initial", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_lstm_node_matches_onnxruntime(rng, direction, sequence_lens, initial, bias):
    I, H, D = 3, 5, 2 if direction == "bidirectional" else 1
    model = lstm_node_model(
        rng, I, H, direction, bias=bias, sequence_lens=sequence_lens, initial=initial
    )
    sess = fastlstm.onnx.InferenceSession(model)
    assert isinstance(sess.module, fastlstm.LSTM)
    for T, B in ((6, 3), (1, 1), (9, 5)):
        feeds = node_feeds(rng, T, B, I, H, D, sequence_lens, initial)
        for got, want in zip(sess.run(None, feeds), run_ort(model, feeds)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, **TOL32)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("initial", [False, True])
def test_sequence_lens_with_zeros_match_onnxruntime(rng, direction, initial):
    """A sequence of length 0: zero Y rows and zero Y_h, Y_c for it (also
    with initial states), as ONNX Runtime gives."""
    I, H, D = 3, 4, 2 if direction == "bidirectional" else 1
    model = lstm_node_model(rng, I, H, direction, sequence_lens=True, initial=initial)
    sess = fastlstm.onnx.InferenceSession(model)
    for lens in ([0, 5, 2, 0], [0, 0, 0, 0], [5, 0, 1, 5]):
        feeds = node_feeds(rng, 5, 4, I, H, D, True, initial)
        feeds["sequence_lens"] = np.array(lens, np.int32)
        got = sess.run(None, feeds)
        want = run_ort(model, feeds)
        zero = np.array(lens) == 0
        assert not np.any(got[0][:, :, zero]) and not np.any(got[1][:, zero])
        assert not np.any(got[2][:, zero])
        for a, b in zip(got, want):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, **TOL32)


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_layout_1_is_layout_0_transposed(rng, direction):
    """ONNX Runtime refuses layout=1 on CPU: the same weights in a layout-0
    graph, with the input and outputs transposed, are the reference."""
    I, H, D, T, B = 3, 4, 2 if direction == "bidirectional" else 1, 5, 3
    seed = int(rng.integers(1 << 30))
    m1 = lstm_node_model(np.random.default_rng(seed), I, H, direction, layout=1)
    m0 = lstm_node_model(np.random.default_rng(seed), I, H, direction, layout=0)
    feeds = node_feeds(rng, T, B, I, H, D, False, False, layout=1)
    y, y_h, y_c = fastlstm.onnx.InferenceSession(m1).run(None, feeds)
    r_y, r_h, r_c = run_ort(m0, {"X": feeds["X"].transpose(1, 0, 2)})
    np.testing.assert_allclose(y, r_y.transpose(2, 0, 1, 3), **TOL32)  # (B, T, D, H)
    np.testing.assert_allclose(y_h, r_h.transpose(1, 0, 2), **TOL32)  # (B, D, H)
    np.testing.assert_allclose(y_c, r_c.transpose(1, 0, 2), **TOL32)
    assert fastlstm.onnx.load(m1).batch_first


# ---- the ONNX-only cell options (fastlstm.LSTM kernel options) ----------------------


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_clip_matches_onnxruntime(rng, direction):
    model = lstm_node_model(rng, 3, 4, direction, sequence_lens=True, clip=0.7)
    assert fastlstm.onnx.load(model).clip == pytest.approx(0.7)
    feeds = node_feeds(rng, 6, 3, 3, 4, 2 if direction == "bidirectional" else 1, True, False)
    for got, want in zip(
        fastlstm.onnx.InferenceSession(model).run(None, feeds), run_ort(model, feeds)
    ):
        np.testing.assert_allclose(got, want, **TOL32)


def test_input_forget_matches_onnxruntime(rng):
    model = lstm_node_model(rng, 3, 4, "bidirectional", input_forget=1, initial=True)
    feeds = node_feeds(rng, 6, 3, 3, 4, 2, False, True)
    for got, want in zip(
        fastlstm.onnx.InferenceSession(model).run(None, feeds), run_ort(model, feeds)
    ):
        np.testing.assert_allclose(got, want, **TOL32)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_peepholes_match_onnxruntime(rng, direction):
    model = lstm_node_model(rng, 3, 4, direction, peepholes=True, sequence_lens=True, initial=True)
    lstm = fastlstm.onnx.load(model)
    assert lstm.peepholes
    feeds = node_feeds(rng, 6, 3, 3, 4, 2 if direction == "bidirectional" else 1, True, True)
    for got, want in zip(
        fastlstm.onnx.InferenceSession(model).run(None, feeds), run_ort(model, feeds)
    ):
        np.testing.assert_allclose(got, want, **TOL32)


@pytest.mark.parametrize(
    "activations, alpha, beta",
    [
        (["HardSigmoid", "Tanh", "Tanh"], [0.2], [0.5]),
        (["Sigmoid", "Relu", "Softsign"], None, None),
        (["Sigmoid", "LeakyRelu", "ScaledTanh"], [0.1, 0.8], [1.3]),
        (["Sigmoid", "Softplus", "Elu"], [1.1], None),
    ],
)
def test_activations_match_onnxruntime(rng, activations, alpha, beta):
    extra = {}
    if alpha:
        extra["activation_alpha"] = alpha
    if beta:
        extra["activation_beta"] = beta
    model = lstm_node_model(rng, 3, 4, "forward", activations=activations, **extra)
    feeds = node_feeds(rng, 6, 3, 3, 4, 1, False, False)
    for got, want in zip(
        fastlstm.onnx.InferenceSession(model).run(None, feeds), run_ort(model, feeds)
    ):
        np.testing.assert_allclose(got, want, **TOL32)


@pytest.mark.parametrize(
    "attrs, match",
    [
        ({"activations": ["Sigmoid", "Gelu", "Tanh"]}, r"activations: 'Gelu'"),
        ({"activations": ["Sigmoid", "Tanh"]}, r"activations: expected 3 names"),
        ({"clip": -1.0}, r"clip=-1.0"),
    ],
)
def test_cell_attributes_fastlstm_cannot_run_are_a_clear_error(rng, attrs, match):
    model = lstm_node_model(rng)
    node = model.graph.node[0]
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
    with pytest.raises(ValueError, match=r"node 'the_lstm' \(LSTM\): " + match):
        fastlstm.onnx.load(model)


# ---- the onnx package's own LSTM node test cases ----------------------------------


def _onnx_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():  # other operators' case generators warn
        warnings.simplefilter("ignore")
        return [c for c in collect_testcases("LSTM") if c.name.startswith("test_lstm")]


ONNX_CASES = _onnx_cases()


@pytest.mark.parametrize("case", ONNX_CASES, ids=[c.name for c in ONNX_CASES])
def test_onnx_backend_lstm_cases(case):
    assert len(ONNX_CASES) >= 6
    inputs, outputs = case.data_sets[0]
    feeds = dict(zip([i.name for i in case.model.graph.input], inputs))
    # the cases pass the weights as graph inputs: read them as constants
    weights = {k: feeds.pop(k) for k in ("W", "R", "B", "P") if k in feeds}
    sess = fastlstm.onnx.InferenceSession(case.model, constants=weights)
    got = sess.run([o.name for o in case.model.graph.output], feeds)
    for a, b in zip(got, outputs):
        np.testing.assert_allclose(a, b, rtol=case.rtol, atol=case.atol)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # and as tight as float32 allows


# ---- torch.onnx.export ----------------------------------------------------------------


def torch_export(torch, module, x, output_names, batch_first):
    f = io.BytesIO()
    axes = {0: "batch", 1: "time"} if batch_first else {0: "time", 1: "batch"}
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x,),
            f,
            dynamo=False,
            input_names=["x"],
            output_names=output_names,
            dynamic_axes={"x": axes},
            opset_version=14,
        )
    return f.getvalue()


def _torch_models(torch):
    nn = torch.nn

    class Full(nn.Module):  # output, h_n, c_n
        def __init__(self, bf, bi, L):
            super().__init__()
            self.lstm = nn.LSTM(3, 5, num_layers=L, batch_first=bf, bidirectional=bi)

        def forward(self, x):
            y, (h, c) = self.lstm(x)
            return y, h, c

    class LastHidden(nn.Module):  # a head on h_n[-1] (both directions' when bidirectional)
        def __init__(self, bf, bi, L):
            super().__init__()
            self.bi = bi
            self.lstm = nn.LSTM(3, 5, num_layers=L, batch_first=bf, bidirectional=bi)
            self.fc = nn.Linear(10 if bi else 5, 2)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.fc(torch.cat([h[-2], h[-1]], 1) if self.bi else h[-1])

    class PerStep(nn.Module):  # a head on every step
        def __init__(self, bf, bi, L):
            super().__init__()
            self.lstm = nn.LSTM(3, 5, num_layers=L, batch_first=bf, bidirectional=bi)
            self.fc = nn.Linear(10 if bi else 5, 2)

        def forward(self, x):
            return self.fc(self.lstm(x)[0])

    return {"full": Full, "last_hidden": LastHidden, "per_step": PerStep}


@pytest.mark.parametrize("kind", ["full", "last_hidden", "per_step"])
@pytest.mark.parametrize(
    "batch_first, bidirectional, num_layers",
    [
        (False, False, 1),
        (True, True, 2),
        (True, False, 3),
        (False, True, 1),
    ],
)
def test_torch_onnx_export_imports_and_matches_torch(
    torch, kind, batch_first, bidirectional, num_layers
):
    torch.manual_seed(0)
    module = _torch_models(torch)[kind](batch_first, bidirectional, num_layers).eval()
    with torch.no_grad():  # random biases too: torch's init draws them, but make sure
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
    names = ["y", "h", "c"] if kind == "full" else ["y"]
    blob = torch_export(torch, module, torch.randn(5, 2, 3), names, batch_first)
    sess = fastlstm.onnx.InferenceSession(blob)
    expected_type = fastlstm.LSTM if kind == "full" else fastlstm.Sequential
    assert isinstance(sess.module, expected_type)
    x = torch.randn(7, 4, 3)  # another batch and time size than the export's
    with torch.no_grad():
        want = module(x)
    want = want if isinstance(want, tuple) else (want,)
    for got, w in zip(sess.run(names, {"x": x.numpy()}), want):
        np.testing.assert_allclose(got, w.numpy(), **TOL32)


# ---- fastlstm's own exports ---------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_export_then_load_gives_the_same_lstm(rng, bidirectional, batch_first):
    lstm = fastlstm.LSTM(
        4, 5, num_layers=2, bidirectional=bidirectional, batch_first=batch_first, seed=0
    )
    loaded = fastlstm.onnx.load(fastlstm.onnx.export(lstm, lengths=True, initial_states=True))
    assert repr(loaded) == repr(lstm)
    for k, v in lstm.state_dict().items():
        assert np.array_equal(loaded.state_dict()[k], v), k  # the gate order round-trips exactly
    sess = fastlstm.onnx.InferenceSession(
        fastlstm.onnx.export(lstm, lengths=True, initial_states=True)
    )
    assert sess.input_names == ["x", "lengths", "h0", "c0"]
    D = lstm.num_directions
    x = rng.standard_normal((3, 6, 4) if batch_first else (6, 3, 4)).astype(np.float32)
    h0 = rng.standard_normal((2 * D, 3, 5)).astype(np.float32)
    c0 = rng.standard_normal((2 * D, 3, 5)).astype(np.float32)
    lens = np.array([6, 2, 5])
    got = sess.run(None, {"x": x, "lengths": lens, "h0": h0, "c0": c0})
    out, (h, c) = lstm(x, (h0, c0), lengths=lens)
    for a, b in zip(got, (out, h, c)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [False, True])
def test_export_then_load_gives_the_same_sequential(rng, kind, bidirectional, lengths):
    D = 2 if bidirectional else 1
    reducer = {
        "last": fastlstm.LastStep(batch_first=True, bidirectional=bidirectional),
        "mean": fastlstm.MeanPool(batch_first=True),
        "max": fastlstm.MaxPool(batch_first=True),
    }[kind]
    model = fastlstm.Sequential(
        fastlstm.Embedding(9, 4, seed=0),
        fastlstm.LSTM(4, 5, batch_first=True, bidirectional=bidirectional, seed=1),
        reducer,
        fastlstm.Linear(5 * D, 2, seed=2),
    )
    loaded = fastlstm.onnx.load(fastlstm.onnx.export(model, lengths=lengths))
    assert [type(la) for la in loaded] == [
        type(la) for la in model if not isinstance(la, fastlstm.Dropout)
    ]
    tokens = rng.integers(0, 9, (4, 6))
    lens = np.array([6, 1, 3, 5]) if lengths else None
    assert np.array_equal(loaded(tokens, lengths=lens), model(tokens, lengths=lens))


def test_load_reads_a_file_and_bytes(tmp_path):
    lstm = fastlstm.LSTM(2, 3, seed=0)
    path = tmp_path / "m.onnx"
    fastlstm.onnx.export(lstm, path)
    for source in (path, str(path), path.read_bytes()):
        assert np.array_equal(fastlstm.onnx.load(source).weight_ih_l0, lstm.weight_ih_l0)
    with pytest.raises(TypeError, match="path_or_model"):
        fastlstm.onnx.load(3)


# ---- what is not read ---------------------------------------------------------------


def test_unsupported_operator_names_the_node_and_operator(rng):
    model = fastlstm.onnx.export(fastlstm.LSTM(2, 3, seed=0))
    g = model.graph
    out = g.node[-3].output[0]  # the LSTM output before its Identity
    g.node.insert(len(g.node) - 3, helper.make_node("Sin", [out], ["sin_out"], name="the_sine"))
    for n in g.node:
        if n.op_type == "Identity" and n.input[0] == out:
            n.input[0] = "sin_out"
    with pytest.raises(ValueError, match=r"the_sine.*\(Sin\)"):
        fastlstm.onnx.load(model)


def test_data_dependent_weights_are_a_clear_error(rng):
    model = lstm_node_model(rng)
    # W as a graph input without a value
    w = [i for i in model.graph.initializer if i.name == "W"][0]
    model.graph.initializer.remove(w)
    model.graph.input.append(helper.make_tensor_value_info("W", TP.FLOAT, [1, 16, 3]))
    with pytest.raises(ValueError, match=r"the_lstm.*W must be a constant"):
        fastlstm.onnx.load(model)
    with pytest.raises(ValueError, match="constants"):
        fastlstm.onnx.load(model, constants={"nope": np.zeros(1)})


def test_session_checks_its_feeds(rng):
    sess = fastlstm.onnx.InferenceSession(lstm_node_model(rng, sequence_lens=True))
    with pytest.raises(ValueError, match="sequence_lens"):
        sess.run(None, {"X": np.zeros((2, 1, 3), np.float32)})
    with pytest.raises(ValueError, match="output_names"):
        sess.run(["nope"], {"X": np.zeros((2, 1, 3), np.float32), "sequence_lens": np.array([2])})
