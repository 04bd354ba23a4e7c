"""``fastlstm.onnx``: ONNX export and import.

``export(model, path)`` writes a fastlstm model as an ONNX graph;
``load(path)`` reads an ONNX graph's LSTM nodes and the simple operators
around them into fastlstm modules; ``InferenceSession(path)`` runs such a
graph with fastlstm, with ONNX Runtime's calling convention.  The onnx
package is imported only when one of them is called (``pip install
"fastlstm[onnx]"``).  docs/interop.md has the mapping.
"""

from .interop.onnx_export import export
from .interop.onnx_import import InferenceSession, load

__all__ = ["export", "load", "InferenceSession"]
