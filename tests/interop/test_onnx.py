"""fastlstm.interop.onnx: the core never imports onnx; the ONNX LSTM node
holds the same weights (ONNX Runtime gives fastlstm's outputs)."""

import subprocess
import sys

import numpy as np
import pytest

import fastlstm


def test_onnx_is_imported_only_when_used():
    code = (
        "import sys, fastlstm, fastlstm.interop.onnx, fastlstm.tools.bench; "
        "sys.exit('onnx' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_onnx_gate_order():
    from fastlstm.interop.onnx import onnx_gate_order

    w = np.repeat(np.arange(4.0), 2)  # blocks i, f, g, o of H = 2
    assert onnx_gate_order(w).tolist() == [0, 0, 3, 3, 1, 1, 2, 2]  # i, o, f, c


def test_onnxruntime_runs_the_same_lstm(rng):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from fastlstm.interop.onnx import lstm_model

    T, B, I, H = 5, 3, 4, 6
    lstm = fastlstm.LSTM(I, H, seed=0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = rng.standard_normal((1, B, H)).astype(np.float32)
    c0 = rng.standard_normal((1, B, H)).astype(np.float32)
    model = lstm_model(lstm.state_dict(), I, H)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, h_n, c_n = session.run(None, {"X": x, "initial_h": h0, "initial_c": c0})
    out, (fh, fc) = lstm(x, (h0, c0))
    np.testing.assert_allclose(y[:, 0], out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_n, fh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_n, fc, rtol=1e-5, atol=1e-6)
