"""Interoperation with other frameworks: ONNX (``onnx_export``,
``onnx_import``; public as ``fastlstm.onnx``), torch (``torch``;
``fastlstm.from_torch`` / ``to_torch``) and Keras 3 files (``keras``;
``fastlstm.keras``).

Each module imports its framework when called, never at import: the core
package needs numpy only.  docs/interop.md has the mappings."""
