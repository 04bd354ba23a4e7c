"""fastlstm.onnx.export: the graph passes onnx.checker and ONNX Runtime gives
fastlstm's outputs (float32), at batch and time sizes other than any used
while exporting; float64 graphs are checked with onnx's reference evaluator.
Weights are random (fastlstm's init, and random biases), so a wrong gate
order or bias split cannot pass."""

import numpy as np
import pytest

import fastlstm

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL32 = dict(rtol=1e-5, atol=1e-6)


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def lstm_inputs(rng, lstm, T, B, dtype=np.float32):
    I, H, LD = lstm.input_size, lstm.hidden_size, lstm.num_layers * lstm.num_directions
    x = rng.standard_normal((B, T, I) if lstm.batch_first else (T, B, I)).astype(dtype)
    h0 = rng.standard_normal((LD, B, H)).astype(dtype)
    c0 = rng.standard_normal((LD, B, H)).astype(dtype)
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    return x, h0, c0, lengths


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("initial_states", [False, True])
def test_lstm_runs_in_onnxruntime_as_in_fastlstm(
    rng, num_layers, bidirectional, batch_first, lengths, initial_states
):
    lstm = fastlstm.LSTM(
        5, 6, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, seed=1
    )
    model = fastlstm.onnx.export(lstm, lengths=lengths, initial_states=initial_states)
    sess = session(model)
    for T, B in ((7, 3), (2, 1), (11, 4)):  # dynamic axes: any batch and time size
        x, h0, c0, lens = lstm_inputs(rng, lstm, T, B)
        feeds = {"x": x}
        if lengths:
            feeds["lengths"] = lens
        if initial_states:
            feeds.update(h0=h0, c0=c0)
        got = sess.run(["output", "h_n", "c_n"], feeds)
        out, (h_n, c_n) = lstm(
            x, (h0, c0) if initial_states else None, lengths=lens if lengths else None
        )
        for a, b in zip(got, (out, h_n, c_n)):
            np.testing.assert_allclose(a, b, **TOL32)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_lengths_of_zero_run_in_onnxruntime_as_in_fastlstm(rng, bidirectional, batch_first):
    """Sequences of length 0: zero outputs and final states in both."""
    lstm = fastlstm.LSTM(
        4, 5, num_layers=2, bidirectional=bidirectional, batch_first=batch_first, seed=3
    )
    sess = session(fastlstm.onnx.export(lstm, lengths=True, initial_states=True))
    for lens in ([0, 6, 3], [0, 0, 0]):
        x, h0, c0, _ = lstm_inputs(rng, lstm, 6, 3)
        lens = np.array(lens)
        got = sess.run(None, {"x": x, "lengths": lens, "h0": h0, "c0": c0})
        out, (h_n, c_n) = lstm(x, (h0, c0), lengths=lens)
        assert not np.any(h_n[:, lens == 0]) and not np.any(c_n[:, lens == 0])
        for a, b in zip(got, (out, h_n, c_n)):
            np.testing.assert_allclose(a, b, **TOL32)


def test_lstm_without_bias(rng):
    lstm = fastlstm.LSTM(3, 4, num_layers=2, bias=False, bidirectional=True, seed=2)
    x, *_ = lstm_inputs(rng, lstm, 5, 2)
    got = session(fastlstm.onnx.export(lstm)).run(None, {"x": x})
    np.testing.assert_allclose(got[0], lstm(x)[0], **TOL32)


def test_export_writes_the_file_and_checker_accepts_it(tmp_path, rng):
    lstm = fastlstm.LSTM(3, 4, seed=0)
    path = tmp_path / "lstm.onnx"
    returned = fastlstm.onnx.export(lstm, path)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.SerializeToString() == returned.SerializeToString()
    dims = [d.dim_param for d in loaded.graph.input[0].type.tensor_type.shape.dim[:2]]
    assert dims == ["time", "batch"]  # dynamic axes
    assert {n.op_type for n in loaded.graph.node} >= {"LSTM"}
    (node,) = [n for n in loaded.graph.node if n.op_type == "LSTM"]
    layout = [a.i for a in node.attribute if a.name == "layout"]
    assert layout in ([], [0])  # ONNX Runtime's CPU LSTM runs layout 0 only


def _reducer(kind, batch_first, bidirectional):
    if kind == "last":
        return fastlstm.LastStep(batch_first=batch_first, bidirectional=bidirectional)
    return (fastlstm.MeanPool if kind == "mean" else fastlstm.MaxPool)(batch_first=batch_first)


@pytest.mark.parametrize("kind", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths", [False, True])
def test_sequential_with_embedding_reducer_and_head(rng, kind, bidirectional, batch_first, lengths):
    D = 2 if bidirectional else 1
    model = fastlstm.Sequential(
        fastlstm.Embedding(13, 4, seed=0),
        fastlstm.LSTM(
            4, 5, num_layers=2, bidirectional=bidirectional, batch_first=batch_first, seed=1
        ),
        fastlstm.Dropout(0.3),
        _reducer(kind, batch_first, bidirectional),
        fastlstm.Linear(D * 5, 3, seed=2),
    )
    sess = session(fastlstm.onnx.export(model, lengths=lengths))
    for T, B in ((6, 4), (3, 1)):
        tokens = rng.integers(0, 13, (B, T) if batch_first else (T, B))
        lens = rng.integers(1, T + 1, B)
        feeds = {"x": tokens}
        if lengths:
            feeds["lengths"] = lens
        (got,) = sess.run(None, feeds)
        np.testing.assert_allclose(got, model(tokens, lengths=lens if lengths else None), **TOL32)


def test_sequential_of_float_input_and_per_step_head(rng):
    model = fastlstm.Sequential(
        fastlstm.Linear(3, 4, seed=0),
        fastlstm.LSTM(4, 5, batch_first=True, seed=1),
        fastlstm.Linear(5, 2, bias=False, seed=2),
        fastlstm.Sequential(fastlstm.Linear(2, 3, seed=3)),  # nested: flattened
    )
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    (got,) = session(fastlstm.onnx.export(model)).run(None, {"x": x})
    np.testing.assert_allclose(got, model(x), **TOL32)


def test_float64_export_matches_onnx_reference_evaluator(rng):
    # ONNX Runtime's LSTM runs float32 only; onnx's reference evaluator runs float64
    from onnx.reference import ReferenceEvaluator

    lstm = fastlstm.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    model = fastlstm.onnx.export(lstm, initial_states=True)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x, h0, c0, _ = lstm_inputs(rng, lstm, 6, 3, np.float64)
    got = ReferenceEvaluator(model).run(None, {"x": x, "h0": h0, "c0": c0})
    out, (h_n, c_n) = lstm(x, (h0, c0))
    for a, b in zip(got, (out, h_n, c_n)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_dtype_argument_exports_float64_model_as_float32(rng):
    lstm = fastlstm.LSTM(3, 4, dtype=np.float64, seed=4)
    model = fastlstm.onnx.export(lstm, dtype=np.float32)
    x = rng.standard_normal((5, 2, 3))
    (got,) = session(model).run(["output"], {"x": x.astype(np.float32)})
    np.testing.assert_allclose(got, lstm(x)[0], rtol=1e-4, atol=1e-5)


def _sequences(rng, n=40, features=3):
    X = [rng.standard_normal((int(t), features)) for t in rng.integers(3, 9, n)]
    return X


def _padded(X):
    lens = np.array([len(x) for x in X])
    out = np.zeros((len(X), lens.max(), X[0].shape[1]), np.float32)
    for i, x in enumerate(X):
        out[i, : len(x)] = x
    return out, lens


def test_fitted_classifier_exports_logits_and_probabilities(rng):
    X = _sequences(rng)
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    clf = fastlstm.LSTMClassifier(hidden_size=6, epochs=2, random_state=0).fit(X, y)
    padded, lens = _padded(X)
    got_logits, got_proba = session(fastlstm.onnx.export(clf, lengths=True, dtype=np.float32)).run(
        None, {"x": padded, "lengths": lens}
    )
    np.testing.assert_allclose(got_proba, clf.predict_proba(X), rtol=1e-4, atol=1e-5)
    assert np.array_equal(clf.classes_[got_logits.argmax(1)], clf.predict(X))


@pytest.mark.parametrize("per_step", [False, True])
def test_fitted_regressor_exports_its_predictions(rng, per_step):
    X = _sequences(rng)
    if per_step:
        y = [np.cumsum(x[:, 0]) for x in X]
    else:
        y = np.array([[x[:, 0].sum(), x[:, 1].mean()] for x in X])
    reg = fastlstm.LSTMRegressor(hidden_size=5, epochs=2, random_state=0).fit(X, y)
    padded, lens = _padded(X)
    (got,) = session(fastlstm.onnx.export(reg, lengths=True, dtype=np.float32)).run(
        None, {"x": padded, "lengths": lens}
    )
    np.testing.assert_allclose(got, reg.predict(X), rtol=1e-4, atol=1e-4)


def test_proj_size_is_a_clear_error():
    with pytest.raises(ValueError, match="proj_size"):
        fastlstm.onnx.export(fastlstm.LSTM(3, 4, proj_size=2))


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="model"):
        fastlstm.onnx.export(fastlstm.Linear(2, 3))
    with pytest.raises(ValueError, match="initial_states"):
        fastlstm.onnx.export(fastlstm.Sequential(fastlstm.LSTM(2, 3)), initial_states=True)
    with pytest.raises(TypeError, match="dtype"):
        fastlstm.onnx.export(fastlstm.LSTM(2, 3), dtype=np.int32)
    with pytest.raises(ValueError, match="not fitted"):
        fastlstm.onnx.export(fastlstm.LSTMClassifier())

    from fastlstm.layers.base import Stateless

    class Custom(Stateless):  # a layer of the protocol that export does not know
        def __call__(self, x):
            return x

        def forward_train(self, x):
            return x, lambda dy: dy

    with pytest.raises(TypeError, match="layer 1 \\(Custom\\)"):
        fastlstm.onnx.export(fastlstm.Sequential(fastlstm.LSTM(2, 3), Custom()))


@pytest.mark.parametrize(
    "options",
    [
        {"clip": 0.6},
        {"input_forget": True},
        {"peepholes": True},
        {
            "activations": ["HardSigmoid", "Tanh", "Softsign"] * 2,
            "activation_alpha": [0.2] * 2,
            "activation_beta": [0.5] * 2,
        },
    ],
    ids=["clip", "input_forget", "peepholes", "activations"],
)
def test_cell_options_export_to_onnxruntime(rng, options):
    lstm = fastlstm.LSTM(3, 4, num_layers=2, bidirectional=True, seed=5, **options)
    if options.get("peepholes"):  # random, not the init's, so a wrong i/f/o order shows
        lstm.load_state_dict(
            {
                k: rng.uniform(-0.5, 0.5, v.shape).astype(np.float32)
                for k, v in lstm.state_dict().items()
            }
        )
    x, h0, c0, lens = lstm_inputs(rng, lstm, 6, 3)
    got = session(fastlstm.onnx.export(lstm, lengths=True, initial_states=True)).run(
        None, {"x": x, "lengths": lens, "h0": h0, "c0": c0}
    )
    out, (h_n, c_n) = lstm(x, (h0, c0), lengths=lens)
    for a, b in zip(got, (out, h_n, c_n)):
        np.testing.assert_allclose(a, b, **TOL32)
