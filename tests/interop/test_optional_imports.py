"""The core needs numpy only: ``import fastlstm`` (and touching the interop
namespaces) imports none of the optional frameworks."""

import subprocess
import sys

OPTIONAL = ("onnx", "onnxruntime", "h5py", "keras", "torch")


def test_import_fastlstm_imports_no_optional_framework():
    code = (
        "import sys, fastlstm\n"
        "fastlstm.onnx.export, fastlstm.onnx.load, fastlstm.keras.load, fastlstm.from_torch\n"
        "import fastlstm.interop.onnx_export, fastlstm.interop.onnx_import\n"
        "import fastlstm.interop.keras, fastlstm.interop.torch\n"
        f"print(','.join(m for m in {OPTIONAL!r} if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"imported at import time: {r.stdout.strip()}"
