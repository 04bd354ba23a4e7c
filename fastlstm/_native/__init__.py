"""The compiled kernel's Python side: the Cython boundary, the packed layout
of a batch, buffer reuse and the parameter/pack cache (internal)."""

import os
import warnings

from . import kernels

if kernels.env_num_threads() < 0:
    warnings.warn(
        f"FASTLSTM_NUM_THREADS={os.environ.get('FASTLSTM_NUM_THREADS')!r} is not an integer in "
        f"[1, {kernels.max_threads()}]; ignored (using {kernels.get_num_threads()} threads)",
        RuntimeWarning,
        stacklevel=2,
    )
