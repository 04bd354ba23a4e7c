"""fastlstm weights as an ONNX ``LSTM`` node (onnx is imported when called).

ONNX orders the gate blocks i, o, f, c where PyTorch and fastlstm have
i, f, g, o; :func:`onnx_gate_order` converts.  Used by the benchmark to run
ONNX Runtime on the same weights; the seed of ``fastlstm.onnx.export``.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import onnx as _onnx  # for the return type only: onnx is imported when called

__all__ = ["lstm_model", "onnx_gate_order", "torch_gate_order"]

OPSET = 14
IR_VERSION = 8  # readable by any onnxruntime >= 1.10


Scalar = TypeVar("Scalar", bound=np.generic)


def onnx_gate_order(w: NDArray[Scalar]) -> NDArray[Scalar]:
    """Rows (or entries) of a (4H, ...) weight or (4H,) bias, from i, f, g, o
    blocks to ONNX's i, o, f, c."""
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g])


def lstm_model(
    params: Mapping[str, NDArray[np.floating[Any]]], input_size: int, hidden_size: int
) -> "_onnx.ModelProto":
    """One ONNX ``LSTM`` node (opset 14) holding one layer's weights.

    ``params``: a one-layer, unidirectional, float32 ``state_dict()`` with
    biases (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
    ``bias_hh_l0``).  The node has W (1, 4H, I), R (1, 4H, H) and
    B (1, 8H) = [Wb, Rb] as initializers; inputs X (T, B, I), initial_h and
    initial_c (1, B, H); outputs Y (T, 1, B, H), Y_h and Y_c (1, B, H).
    Returns a checked ``onnx.ModelProto``.
    """
    import onnx  # optional dependency: only this function needs it

    helper, TP = onnx.helper, onnx.TensorProto
    inits = [
        onnx.numpy_helper.from_array(onnx_gate_order(params["weight_ih_l0"])[None], "W"),
        onnx.numpy_helper.from_array(onnx_gate_order(params["weight_hh_l0"])[None], "R"),
        onnx.numpy_helper.from_array(
            np.concatenate(
                [onnx_gate_order(params["bias_ih_l0"]), onnx_gate_order(params["bias_hh_l0"])]
            )[None],
            "B",
        ),
    ]
    H = hidden_size
    node = helper.make_node(
        "LSTM",
        ["X", "W", "R", "B", "", "initial_h", "initial_c"],
        ["Y", "Y_h", "Y_c"],
        hidden_size=H,
    )
    graph = helper.make_graph(
        [node],
        "fastlstm_lstm",
        [
            helper.make_tensor_value_info("X", TP.FLOAT, ["T", "B", input_size]),
            helper.make_tensor_value_info("initial_h", TP.FLOAT, [1, "B", H]),
            helper.make_tensor_value_info("initial_c", TP.FLOAT, [1, "B", H]),
        ],
        [
            helper.make_tensor_value_info("Y", TP.FLOAT, ["T", 1, "B", H]),
            helper.make_tensor_value_info("Y_h", TP.FLOAT, [1, "B", H]),
            helper.make_tensor_value_info("Y_c", TP.FLOAT, [1, "B", H]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def torch_gate_order(w: NDArray[Scalar]) -> NDArray[Scalar]:
    """The inverse of :func:`onnx_gate_order`: rows (or entries) of a (4H, ...)
    weight or (4H,) bias from ONNX's i, o, f, c blocks to i, f, g, o."""
    i, o, f, c = np.split(w, 4, axis=0)
    return np.concatenate([i, f, c, o])
