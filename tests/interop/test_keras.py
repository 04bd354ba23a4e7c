"""fastlstm.keras: Keras 3 models (.keras, .weights.h5) read without Keras
compute what Keras computes (Keras's torch backend is the reference), on
random weights: biases included, so that Keras's unit_forget_bias init
cannot hide a wrong gate order."""

import os

import numpy as np
import pytest

import fastlstm

pytest.importorskip("h5py")
os.environ.setdefault("KERAS_BACKEND", "torch")  # torch 2.13.0 is the test extra's
keras = pytest.importorskip("keras")
layers = keras.layers

TOL32 = dict(rtol=1e-5, atol=1e-6)
# Keras's own warnings (its torch backend's numpy conversion) are not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")


def randomize(model, rng, scale=0.7):
    for layer in model.layers:
        layer.set_weights(
            [rng.uniform(-scale, scale, w.shape).astype(w.dtype) for w in layer.get_weights()]
        )
    return model


def keras_out(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def float_models():
    return {
        "lstm_last": lambda: [layers.LSTM(5)],
        "lstm_sequences_dense": lambda: [layers.LSTM(5, return_sequences=True), layers.Dense(2)],
        "stacked": lambda: [
            layers.LSTM(4, return_sequences=True),
            layers.Dropout(0.3),
            layers.LSTM(6, return_sequences=True),
            layers.LSTM(3),
            layers.Dense(2),
        ],
        "bidirectional": lambda: [
            layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
            layers.Bidirectional(layers.LSTM(5)),
            layers.Dense(3),
        ],
        "no_bias": lambda: [layers.LSTM(4, use_bias=False, return_sequences=True)],
        "unit_forget_bias_off": lambda: [layers.LSTM(4, unit_forget_bias=False), layers.Dense(1)],
    }


@pytest.mark.parametrize("name", sorted(float_models()))
def test_keras_file_matches_keras(tmp_path, rng, name):
    model = keras.Sequential([keras.Input((None, 3))] + float_models()[name]())
    randomize(model, rng)
    path = tmp_path / "model.keras"
    model.save(path)
    ours = fastlstm.keras.load(path)
    assert isinstance(ours, fastlstm.Sequential)
    for T, B in ((7, 4), (1, 2)):
        x = rng.standard_normal((B, T, 3)).astype(np.float32)
        np.testing.assert_allclose(ours(x), keras_out(model, x), **TOL32)


def test_functional_chain_and_embedding(tmp_path, rng):
    tokens_in = keras.Input((None,), dtype="int32")
    h = layers.Embedding(20, 4, name="my_embedding")(tokens_in)
    h = layers.Bidirectional(layers.LSTM(5, return_sequences=True), name="encoder")(h)
    h = layers.LSTM(3, name="zed")(h)  # names are not the weight file's group names
    out = layers.Dense(2, name="aaa")(h)
    model = randomize(keras.Model(tokens_in, out), rng)
    model.save(tmp_path / "f.keras")
    ours = fastlstm.keras.load(tmp_path / "f.keras")
    tokens = rng.integers(0, 20, (3, 6)).astype(np.int32)
    np.testing.assert_allclose(ours(tokens), keras_out(model, tokens), **TOL32)


def test_weights_file_with_config_or_a_matching_model(tmp_path, rng):
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            layers.LSTM(4, return_sequences=True),
            layers.Bidirectional(layers.LSTM(5)),
            layers.Dense(2),
        ]
    )
    randomize(model, rng)
    weights = tmp_path / "m.weights.h5"
    model.save_weights(weights)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    want = keras_out(model, x)
    for config in (model.to_json(), model.get_config()):
        np.testing.assert_allclose(fastlstm.keras.load(weights, config=config)(x), want, **TOL32)
    ours = fastlstm.Sequential(
        fastlstm.LSTM(3, 4, batch_first=True),
        fastlstm.LSTM(4, 5, batch_first=True, bidirectional=True),
        fastlstm.LastStep(batch_first=True, bidirectional=True),
        fastlstm.Linear(10, 2),
    )
    assert fastlstm.keras.load_weights(weights, ours) is ours
    np.testing.assert_allclose(ours(x), want, **TOL32)
    wrong = fastlstm.Sequential(fastlstm.LSTM(3, 7, batch_first=True))
    with pytest.raises(ValueError, match="layer 0"):
        fastlstm.keras.load_weights(weights, wrong)
    with pytest.raises(ValueError, match="config"):
        fastlstm.keras.load(weights)


@pytest.mark.parametrize(
    "layer, match",
    [
        (lambda: layers.LSTM(3, go_backwards=True), "go_backwards"),
        (lambda: layers.Bidirectional(layers.LSTM(3), merge_mode="sum"), "merge_mode"),
        (lambda: layers.GRU(3), "GRU"),
        # no exact equivalent among ONNX's LSTM activations
        (lambda: layers.LSTM(3, activation="selu", name="enc"), r"LSTM 'enc': activation='selu'"),
        (
            lambda: layers.LSTM(3, recurrent_activation="relu6", name="enc"),
            r"LSTM 'enc': recurrent_activation='relu6'",
        ),
    ],
)
def test_unsupported_layers_are_named(tmp_path, layer, match):
    model = keras.Sequential([keras.Input((None, 3)), layer()])
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match=match):
        fastlstm.keras.load(tmp_path / "m.keras")


def test_dense_activation_is_a_clear_error(tmp_path):
    model = keras.Sequential(
        [keras.Input((None, 3)), layers.LSTM(3), layers.Dense(2, activation="softmax")]
    )
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="softmax"):
        fastlstm.keras.load(tmp_path / "m.keras")


# Keras 3's activations that are an ONNX LSTM activation (lower case): exact
# equivalents (hard_sigmoid is Keras 3's x/6 + 1/2, HardSigmoid(1/6, 1/2);
# linear is Affine(1, 0); elu's alpha and leaky_relu's slope are Keras's)
KERAS_ACTIVATIONS = {
    "relu": "relu",
    "hard_sigmoid": "hardsigmoid",
    "linear": "affine",
    "elu": "elu",
    "softsign": "softsign",
    "softplus": "softplus",
    "leaky_relu": "leakyrelu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
}


@pytest.mark.parametrize(
    "activation, recurrent_activation",
    [(a, "sigmoid") for a in KERAS_ACTIVATIONS if a != "tanh"]
    + [("tanh", a) for a in KERAS_ACTIVATIONS if a != "sigmoid"]
    + [("softsign", "hard_sigmoid"), ("elu", "linear")],
)
def test_other_activations_map_to_the_activations_option(
    tmp_path, rng, activation, recurrent_activation
):
    """A unidirectional LSTM (all steps) and a Bidirectional one (last step)
    with the activations, on random weights, against Keras.  With gates
    that are not bounded by 1 (linear, elu, ...) c can grow geometrically
    and carries the rounding of every step with it: weights in [-0.4, 0.4]
    there keep the outputs O(1) (in [-0.7, 0.7], elu with linear gates
    reached 37 and used 0.8 of the float32 tolerance)."""
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            layers.LSTM(
                5,
                activation=activation,
                recurrent_activation=recurrent_activation,
                return_sequences=True,
            ),
            layers.Bidirectional(
                layers.LSTM(4, activation=activation, recurrent_activation=recurrent_activation)
            ),
        ]
    )
    bounded = recurrent_activation in ("sigmoid", "hard_sigmoid", "tanh", "softsign")
    randomize(model, rng, scale=0.7 if bounded else 0.4)
    model.save(tmp_path / "m.keras")
    ours = fastlstm.keras.load(tmp_path / "m.keras")
    for lstm, D in ((ours[0], 1), (ours[1], 2)):
        names = [KERAS_ACTIVATIONS[recurrent_activation]] + [KERAS_ACTIVATIONS[activation]] * 2
        assert [a.lower() for a in lstm.activations] == names * D
    for T, B in ((6, 3), (1, 2)):
        x = rng.standard_normal((B, T, 3)).astype(np.float32)
        np.testing.assert_allclose(ours(x), keras_out(model, x), **TOL32)


def test_keras_activations_through_onnx_export(tmp_path, rng):
    """Keras -> fastlstm -> ONNX -> ONNX Runtime computes what Keras does
    (the alpha / beta of hard_sigmoid and linear written out by export)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            layers.Bidirectional(
                layers.LSTM(4, activation="linear", recurrent_activation="hard_sigmoid")
            ),
            layers.Dense(2),
        ]
    )
    randomize(model, rng)
    model.save(tmp_path / "m.keras")
    proto = fastlstm.onnx.export(fastlstm.keras.load(tmp_path / "m.keras"))
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((3, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], keras_out(model, x), **TOL32)
