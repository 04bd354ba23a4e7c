"""``fastlstm.keras``: Keras 3 models into fastlstm, without Keras.

``load(path)`` reads a ``.keras`` file (or a ``.weights.h5`` file with its
architecture) into a fastlstm Sequential; ``load_weights(path, model)``
fills a matching fastlstm model.  Only h5py is needed (``pip install
"fastlstm[keras]"``), imported when called.  docs/interop.md has the mapping.
"""

from .interop.keras import load, load_weights

__all__ = ["load", "load_weights"]
