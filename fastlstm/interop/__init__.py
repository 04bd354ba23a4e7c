"""Interoperation with other frameworks (ONNX now; torch and Keras to come).

Each module imports its framework when called, never at import: the core
package needs numpy only."""
