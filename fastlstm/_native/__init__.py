"""The compiled kernel's Python side: the Cython boundary, the packed layout
of a batch, buffer reuse and the parameter/pack cache (internal)."""

import os
import warnings

# GNU libgomp's idle workers spin for GOMP_SPINCOUNT iterations after every
# parallel region before they sleep: about 10 ms of a core with its default
# (measured), during which numpy's BLAS or another thread pool called right
# after fastlstm runs on fewer cores.  Unless the user chose a wait policy,
# the runtime is loaded with a short spin (it reads the variable once, when
# the extension loads it); the variable is then removed again, so other
# OpenMP runtimes and child processes see the user's environment unchanged.
# No effect if the process had already loaded the same libgomp.
_SPIN_SET = not any(k in os.environ for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"))
if _SPIN_SET:
    os.environ["GOMP_SPINCOUNT"] = "10000"
try:
    from . import kernels
finally:
    if _SPIN_SET:
        del os.environ["GOMP_SPINCOUNT"]

if kernels.env_num_threads() < 0:
    warnings.warn(
        f"FASTLSTM_NUM_THREADS={os.environ.get('FASTLSTM_NUM_THREADS')!r} is not an integer in "
        f"[1, {kernels.max_threads()}]; ignored (using {kernels.get_num_threads()} threads)",
        RuntimeWarning,
        stacklevel=2,
    )
