# Types of the compiled kernel module (kernels.pyx), which type checkers cannot
# read.  Internal: the layers call it, users do not.  Arrays are C-contiguous,
# of one dtype per call (float32 or float64); tests/test_stubs.py runs
# mypy.stubtest, so these signatures cannot drift from the compiled ones.
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import disjoint_base

_Float = NDArray[np.floating[Any]]
_Int64 = NDArray[np.int64]
# per layer: (w_ih, bias or None, packed weights)
_StreamLayer = tuple[_Float, _Float | None, _Float]

STATUS: dict[str, int]
ACTIVATIONS: dict[str, int]
# the cell options: (clip or None, input_forget, ((name, alpha, beta),) * 3)
_Opts = tuple[float | None, bool, tuple[tuple[str, float, float], ...]]

def strerror(status: int) -> str: ...
def isa() -> str: ...
def get_num_threads() -> int: ...
def cpu_info() -> dict[str, Any]: ...
def read_caches(source: str) -> dict[str, int] | None: ...
def fma_peak(
    isa: str | None = None, dtype: Any = "float32", threads: int = 1, seconds: float = 0.005
) -> tuple[float, int] | None: ...
def plan_for(isa: str, l1d: int, l2: int, l3: int) -> dict[str, int]: ...
def set_num_threads(n: int) -> int: ...
def max_threads() -> int: ...
def env_num_threads() -> int: ...
def forked_child() -> bool: ...
def have_openmp() -> bool: ...
def packed_size(dtype_char: str, input_size: int, hidden_size: int, proj_size: int) -> int: ...
def plan_rows(
    lengths: _Int64, T: int, perm: _Int64, inv_perm: _Int64, batch_sizes: _Int64, flat: _Int64
) -> tuple[int, int]: ...
def pack(w_ih: _Float, w_hh: _Float, w_hr: _Float | None, blob: _Float) -> None: ...
def fingerprint(a: NDArray[Any]) -> int: ...
def same_weights(saved: tuple[_Float | None, ...], current: tuple[_Float | None, ...]) -> bool: ...
def forward(
    x: _Float,
    w_ih: _Float,
    bias: _Float | None,
    packed: _Float,
    h0: _Float | None,
    c0: _Float | None,
    y: _Float,
    y_col: int,
    h_n: _Float,
    c_n: _Float,
    gates: _Float | None,
    cells: _Float | None,
    xh: _Float | None,
    batch_sizes: _Int64 | None,
    steps: int,
    reverse: bool,
    proj_size: int,
    x_rows: _Int64 | None = None,
    y_rows: _Int64 | None = None,
    opts: _Opts | None = None,
    peephole: _Float | None = None,
) -> None: ...
def backward(
    w_ih: _Float,
    w_hh: _Float,
    w_hr: _Float | None,
    c0: _Float | None,
    gates: _Float,
    cells: _Float,
    xh: _Float | None,
    dy: _Float,
    dy_col: int,
    dh_n: _Float | None,
    dc_n: _Float | None,
    dx: _Float,
    dx_accumulate: bool,
    dh0: _Float,
    dc0: _Float,
    dw_ih: _Float,
    dw_hh: _Float,
    dbias: _Float | None,
    dw_hr: _Float | None,
    batch_sizes: _Int64 | None,
    steps: int,
    reverse: bool,
    x: _Float | None = None,
    x_rows: _Int64 | None = None,
    y: _Float | None = None,
    y_col: int = 0,
    y_rows: _Int64 | None = None,
    h0: _Float | None = None,
    opts: _Opts | None = None,
    peephole: _Float | None = None,
    d_peephole: _Float | None = None,
) -> None: ...
def gemm(
    trans_a: bool, trans_b: bool, alpha: float, a: _Float, b: _Float, beta: float, c: _Float
) -> None: ...

@disjoint_base  # a compiled (cdef) class
class StreamKernel:
    @property
    def workspace_threads(self) -> int: ...
    @property
    def lock(self) -> threading.Lock: ...
    def __init__(
        self,
        layers: list[_StreamLayer],
        h: _Float,
        c: _Float,
        ys: list[_Float],
        proj_size: int,
        convert: Callable[[Any], _Float],
    ) -> None: ...
    def step(self, x: Any) -> _Float: ...
