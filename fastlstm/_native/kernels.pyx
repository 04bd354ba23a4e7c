# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""The boundary between Python and the C kernel (csrc/fastlstm.h).

Every function takes C-contiguous numpy arrays whose shapes it checks
against each other (a mismatch is a ValueError naming the argument, never a
read or write out of bounds), releases the GIL once for the whole C call and
turns the C status into an exception.  Arrays are allocated by the caller
(fastlstm/lstm.py); nothing here allocates inside a time loop.

Notation as in fastlstm/reference.py: packed rows (see fastlstm.h), I input
size, H hidden size, P projection size (0 = none), H_out = P or H.
"""
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp, memset
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release, PyBuffer_IsContiguous,
                             PyBUF_RECORDS_RO, PyBUF_CONTIG, PyBUF_C_CONTIGUOUS)
from cython cimport floating

import threading

import numpy as np

from fastlstm._native.capi cimport *


def isa():
    """Name of the SIMD variant chosen at import ("generic", "avx2", "avx512")."""
    return fl_init().decode("ascii")


def get_num_threads():
    return fl_get_num_threads()


_CACHE_SOURCES = {"cpuid": FL_CACHES_CPUID, "sysfs": FL_CACHES_SYSFS, "default": FL_CACHES_DEFAULT}


cdef dict _caches(const fl_cache_sizes *c):
    return {"l1d": c.l1d, "l2": c.l2, "l3": c.l3, "l3_shared": c.l3_shared}


def cpu_info():
    """The machine as the kernel read it at first use: {"model": str (may be
    ""), "l1d", "l2", "l3": bytes per core for L1d and L2, of the shared L3
    (0: absent), "l3_shared": logical CPUs sharing the L3 (0: not told),
    "caches_from": "cpuid" | "sysfs" | "default", "cpus": logical CPUs
    available}."""
    cdef fl_cpu_info info
    fl_cpu_info_get(&info)
    out = {"model": info.model.decode("utf-8", "replace")}
    out.update(_caches(&info.caches))
    out["caches_from"] = next(k for k, v in _CACHE_SOURCES.items() if v == info.caches_from)
    out["cpus"] = info.cpus
    return out


def read_caches(str source):
    """Cache sizes from one source ("cpuid", "sysfs", "default"), as in
    cpu_info(); None when that source tells nothing on this machine."""
    cdef fl_cache_sizes c
    if source not in _CACHE_SOURCES:
        raise ValueError(f"read_caches: source must be one of {sorted(_CACHE_SOURCES)}, "
                         f"got {source!r}")
    return _caches(&c) if fl_cpu_read_caches(_CACHE_SOURCES[source], &c) == 0 else None


def fma_peak(isa=None, dtype="float32", int threads=1, double seconds=0.005):
    """Measured GFLOP/s of a register-only FMA loop of an ISA variant (None:
    the one in use) on `threads` threads at once, each for about `seconds`:
    (GFLOP/s summed over the threads that ran, how many ran), or None when
    the variant is not compiled in or this CPU cannot run it."""
    cdef bytes name = None if isa is None else str(isa).encode("ascii")
    cdef const char *cname = NULL
    cdef int fp64, nth = 0
    cdef double g
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"fma_peak: dtype must be float32 or float64, got {dt}")
    if threads < 1:
        raise ValueError(f"fma_peak: threads must be >= 1, got {threads}")
    fp64 = dt == np.float64
    if name is not None:
        cname = name
    with nogil:
        g = fl_fma_peak_gflops(cname, fp64, threads, seconds, &nth)
    return None if g < 0 else (g, nth)


def plan_for(str isa, size_t l1d, size_t l2, size_t l3):
    """The kernel's cache-dependent plans for variant `isa` on a machine with
    these cache sizes in bytes (0: absent), as a dict of fl_plan's fields."""
    cdef fl_cache_sizes c
    cdef fl_plan p
    cdef bytes name = isa.encode("ascii")
    c.l1d, c.l2, c.l3, c.l3_shared = l1d, l2, l3, 0
    if fl_plan_for(name, &c, &p) != 0:
        raise ValueError(f"plan_for: variant {isa!r} is not compiled in")
    return {"kc": p.kc, "mc_f32": p.mc_f32, "nc_f32": p.nc_f32, "mc_f64": p.mc_f64,
            "nc_f64": p.nc_f64, "tile_bytes": p.tile_bytes, "far_bytes": p.far_bytes,
            "steal_min_bytes": p.steal_min_bytes, "dx_loop_max_bytes": p.dx_loop_max_bytes}


def set_num_threads(n):
    """Set the number of threads fastlstm's kernels use; 0 restores the
    default (FASTLSTM_NUM_THREADS, else the cores available).  Returns the
    count now in force.  At most max_threads(); in a process forked after a
    threaded call the count stays 1 (the OpenMP runtime's threads did not
    survive the fork)."""
    if isinstance(n, bool) or not hasattr(type(n), "__index__"):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__} {n!r}")
    n = n.__index__()
    if n < 0 or n > fl_max_threads():
        raise ValueError(f"set_num_threads: n must be in [0, {fl_max_threads()}] "
                         f"(0 = default), got {n}")
    return fl_set_num_threads(n)


def max_threads():
    """The largest thread count set_num_threads accepts."""
    return fl_max_threads()


def env_num_threads():
    """FASTLSTM_NUM_THREADS as the kernels read it: 0 unset, -1 invalid
    (ignored), else its value."""
    return fl_env_num_threads()


def forked_child():
    """True in a child process forked after a threaded call."""
    return bool(fl_forked_child())


def have_openmp():
    return bool(fl_have_openmp())


cdef _expect(str name, tuple shape, tuple expected):
    if shape != expected:
        raise ValueError(f"{name}: expected shape {expected}, got {shape}")


# The statuses of the C functions (fastlstm.h), by name.
STATUS = {"OK": FL_OK, "ENOMEM": FL_ENOMEM, "EINVAL": FL_EINVAL, "ESHAPE": FL_ESHAPE,
          "EBATCH_SIZES": FL_EBATCH_SIZES, "EOPTIONS": FL_EOPTIONS}

# The activations of the cell options (fastlstm.h's FL_ACT_*), by ONNX's name.
ACTIVATIONS = {"Sigmoid": FL_ACT_SIGMOID, "Tanh": FL_ACT_TANH, "Relu": FL_ACT_RELU,
               "HardSigmoid": FL_ACT_HARD_SIGMOID, "Affine": FL_ACT_AFFINE,
               "LeakyRelu": FL_ACT_LEAKY_RELU, "ThresholdedRelu": FL_ACT_THRESHOLDED_RELU,
               "ScaledTanh": FL_ACT_SCALED_TANH, "Elu": FL_ACT_ELU, "Softsign": FL_ACT_SOFTSIGN,
               "Softplus": FL_ACT_SOFTPLUS}


def strerror(int status):
    """The C library's message for a status (fl_strerror; any int)."""
    return fl_strerror(status).decode("ascii")


cdef _raise_status(int status, str call):
    """The C status of `call` as an exception (none for FL_OK)."""
    if status == FL_OK:
        return
    message = f"fastlstm: {call}: {strerror(status)} (status {status})"
    if status == FL_ENOMEM:
        raise MemoryError(message)
    raise ValueError(message)


def packed_size(dtype_char, Py_ssize_t input_size, Py_ssize_t hidden_size,
                Py_ssize_t proj_size):
    """Elements of the packed weights blob ('f' float32, 'd' float64)."""
    if input_size < 1 or hidden_size < 1 or proj_size < 0:
        raise ValueError("input_size and hidden_size must be >= 1 and proj_size >= 0")
    if dtype_char == "f":
        return fl_lstm_packed_size_f32(input_size, hidden_size, proj_size)
    return fl_lstm_packed_size_f64(input_size, hidden_size, proj_size)


def plan_rows(const int64_t[::1] lengths, Py_ssize_t T, int64_t[::1] perm,
              int64_t[::1] inv_perm, int64_t[::1] batch_sizes, int64_t[::1] flat):
    """The packed layout of a batch with these lengths (each in [1, T]), in
    one pass: perm (B) sorted position -> batch index (longest first, ties in
    batch order), inv_perm (B) its inverse, batch_sizes[:steps] and
    flat[:rows] (packed row -> t * B + batch index).  Returns (steps, rows);
    rows == T * B means every length is T."""
    cdef Py_ssize_t B = lengths.shape[0], b, t, j, r = 0, L, steps = 0
    _expect("perm", (perm.shape[0], inv_perm.shape[0]), (B, B))
    _expect("batch_sizes", (batch_sizes.shape[0], flat.shape[0]), (T, T * B))
    for b in range(B):
        if lengths[b] < 1 or lengths[b] > T:
            raise ValueError(f"lengths: every length must be in [1, T={T}], got "
                             f"{lengths[b]} at index {b}")
    cdef int64_t *start = <int64_t *> PyMem_Malloc((T + 2) * sizeof(int64_t))
    if start == NULL:
        raise MemoryError()
    with nogil:
        # counting sort by decreasing length: start[L] = rows longer than L
        for t in range(T + 2):
            start[t] = 0
        for b in range(B):
            start[lengths[b]] += 1
            if lengths[b] > steps:
                steps = lengths[b]
        r = 0
        for L in range(T, 0, -1):
            j = start[L]
            start[L] = r
            r += j
        for b in range(B):
            j = start[lengths[b]]
            start[lengths[b]] += 1
            perm[j] = b
            inv_perm[b] = j
        # step t holds the sorted entries with length > t
        j = B
        r = 0
        for t in range(steps):
            while j > 0 and lengths[perm[j - 1]] <= t:
                j -= 1
            batch_sizes[t] = j
            for b in range(j):
                flat[r] = t * B + perm[b]
                r += 1
    PyMem_Free(start)
    return steps, r


def pack(const floating[:, ::1] w_ih, const floating[:, ::1] w_hh,
         const floating[:, ::1] w_hr, floating[::1] blob):
    """Pack weight_ih (4H, I), weight_hh (4H, H_out) and weight_hr (P, H) or
    None into blob."""
    cdef Py_ssize_t H = w_hh.shape[0] // 4, I = w_ih.shape[1]
    cdef Py_ssize_t P = 0 if w_hr is None else w_hr.shape[0]
    cdef Py_ssize_t Hout = P if P else H
    if w_hh.shape[0] != 4 * H or H < 1:
        raise ValueError(f"w_hh: first dimension must be 4*hidden_size, got {w_hh.shape[0]}")
    _expect("w_ih", (w_ih.shape[0], w_ih.shape[1]), (4 * H, I))
    _expect("w_hh", (w_hh.shape[0], w_hh.shape[1]), (4 * H, Hout))
    if P:
        _expect("w_hr", (w_hr.shape[0], w_hr.shape[1]), (P, H))
    cdef size_t need = _packed_size(I, H, P, floating is double)
    if <size_t>blob.shape[0] != need:
        raise ValueError(f"blob: expected {need} elements, got {blob.shape[0]}")
    cdef const floating *hr = _data2(w_hr)
    with nogil:
        if floating is float:
            fl_lstm_pack_f32(I, H, P, &w_ih[0, 0], &w_hh[0, 0], hr, &blob[0])
        else:
            fl_lstm_pack_f64(I, H, P, &w_ih[0, 0], &w_hh[0, 0], hr, &blob[0])


def fingerprint(object a):
    """A 64-bit digest (fl_fingerprint) of the bytes of a C-contiguous buffer:
    the layers' check that an array a backward reads was not modified in
    place since its forward.  A buffer that is not C-contiguous is a
    ValueError (numpy's own message)."""
    cdef Py_buffer v
    cdef uint64_t h
    PyObject_GetBuffer(a, &v, PyBUF_C_CONTIGUOUS)
    try:
        with nogil:
            h = fl_fingerprint(v.buf, <size_t>v.len)
    finally:
        PyBuffer_Release(&v)
    return h


def same_weights(tuple saved, tuple current):
    """True when every array of `current` holds exactly the bytes of the one
    at the same place in `saved` (None matches only None): the check of the
    packed-weights cache, once per layer call.  The buffers are compared in
    place (no array views or memoryview objects: those cost more than the
    memcmp for a small layer); a buffer that is not C-contiguous counts as
    changed, which only costs a repack."""
    cdef Py_ssize_t i, n = len(saved)
    if len(current) != n:
        return False
    for i in range(n):
        a, b = saved[i], current[i]
        if a is None or b is None:
            if a is not b:
                return False
        elif not _same_buffer(a, b):
            return False
    return True


cdef bint _same_buffer(object a, object b) except -1:
    cdef Py_buffer va, vb
    cdef int r
    try:
        PyObject_GetBuffer(a, &va, PyBUF_C_CONTIGUOUS)
    except (BufferError, ValueError):
        return False
    try:
        try:
            PyObject_GetBuffer(b, &vb, PyBUF_C_CONTIGUOUS)
        except (BufferError, ValueError):
            return False
        try:
            if va.len != vb.len:
                return False
            if va.len >= (1 << 20):  # big enough to let other threads run
                with nogil:
                    r = memcmp(va.buf, vb.buf, <size_t> va.len)
            else:
                r = memcmp(va.buf, vb.buf, <size_t> va.len)
            return r == 0
        finally:
            PyBuffer_Release(&vb)
    finally:
        PyBuffer_Release(&va)


cdef const int64_t *_row_map(str name, const int64_t[::1] rows_of, Py_ssize_t rows,
                            Py_ssize_t limit) except? NULL:
    """rows_of (rows,) with every entry in [0, limit) -> its data; None -> NULL."""
    if rows_of is None:
        return NULL
    _expect(name, (rows_of.shape[0],), (rows,))
    cdef Py_ssize_t r, bad = -1
    with nogil:
        for r in range(rows):
            if rows_of[r] < 0 or rows_of[r] >= limit:
                bad = r
                break
    if bad >= 0:
        raise ValueError(f"{name}: entry {bad} is {rows_of[bad]}, outside [0, {limit})")
    return &rows_of[0]



# ---- the C argument structs ------------------------------------------------
# fl_forward_f32 and fl_forward_f64 (and the backward pair) have the same
# fields with float or double data.  One fused helper per struct fills either
# from the arrays: _in / _out give a data pointer the type of the field it
# goes to, so each field is written once for both dtypes.  The helpers are
# also specialised for the mismatched pairs (Cython specialises every
# combination of two fused types), which the asserts rule out and no caller
# makes.  Every struct starts all-zero: a field a helper does not set is
# NULL or 0, never stack garbage.

ctypedef fused forward_args:
    fl_forward_f32
    fl_forward_f64

ctypedef fused backward_args:
    fl_backward_f32
    fl_backward_f64


cdef inline const floating *_in(const floating *field, const void *p) noexcept nogil:
    return <const floating *> p


cdef inline floating *_out(floating *field, void *p) noexcept nogil:
    return <floating *> p


cdef inline const floating *_data1(const floating[::1] v) noexcept:
    """The data of v, or NULL for None."""
    if v is None:
        return NULL
    return &v[0]


cdef inline const floating *_data2(const floating[:, ::1] v) noexcept:
    """The data of v, or NULL for None."""
    if v is None:
        return NULL
    return &v[0, 0]


cdef inline floating *_data1_out(floating[::1] v) noexcept:
    """The data of v, or NULL for None."""
    if v is None:
        return NULL
    return &v[0]


cdef inline floating *_data2_out(floating[:, ::1] v) noexcept:
    """The data of v, or NULL for None."""
    if v is None:
        return NULL
    return &v[0, 0]


cdef inline size_t _packed_size(size_t I, size_t H, size_t P, bint double) noexcept nogil:
    return fl_lstm_packed_size_f64(I, H, P) if double else fl_lstm_packed_size_f32(I, H, P)


cdef inline int _forward_call(const fl_shape *sh, const forward_args *a) noexcept nogil:
    if forward_args is fl_forward_f32:
        return fl_lstm_forward_f32(sh, a)
    else:
        return fl_lstm_forward_f64(sh, a)


cdef inline size_t _forward_workspace(const fl_shape *sh, const forward_args *a) noexcept nogil:
    """Workspace bytes of a call with a's dtype (a only selects it)."""
    if forward_args is fl_forward_f32:
        return fl_lstm_forward_workspace_f32(sh)
    else:
        return fl_lstm_forward_workspace_f64(sh)


cdef int _fill_forward(forward_args *a, const floating[:, ::1] x, const floating[:, ::1] w_ih,
                       const floating[::1] bias, const floating[::1] packed,
                       const floating[:, ::1] h0, const floating[:, ::1] c0,
                       floating[:, ::1] y, Py_ssize_t y_col,
                       floating[:, ::1] h_n, floating[:, ::1] c_n,
                       floating[:, ::1] gates, floating[:, ::1] cells, floating[:, ::1] xh,
                       const int64_t *x_rows, const int64_t *y_rows) except -1:
    """a = the arguments of forward() (x None: a.x left NULL, a stream sets
    it per step; no workspace: the call allocates its own)."""
    if forward_args is fl_forward_f32:
        assert floating is float
    else:
        assert floating is double
    memset(a, 0, sizeof(a[0]))
    a.x = _in(a.x, _data2(x))
    a.ldx = w_ih.shape[1]
    a.w_ih = _in(a.w_ih, &w_ih[0, 0])
    a.bias = _in(a.bias, _data1(bias))
    a.packed = _in(a.packed, &packed[0])
    a.h0 = _in(a.h0, _data2(h0))
    a.c0 = _in(a.c0, _data2(c0))
    a.y = _out(a.y, &y[0, y_col])
    a.ldy = y.shape[1]
    a.h_n = _out(a.h_n, &h_n[0, 0])
    a.c_n = _out(a.c_n, &c_n[0, 0])
    a.gates = _out(a.gates, _data2_out(gates))
    a.cells = _out(a.cells, _data2_out(cells))
    a.xh = _out(a.xh, _data2_out(xh))
    a.x_rows = x_rows
    a.y_rows = y_rows
    return 0


cdef int _backward_run(const fl_shape *sh, backward_args *a, const floating[:, ::1] w_ih,
                       const floating[:, ::1] w_hh, const floating[:, ::1] w_hr,
                       const floating[:, ::1] c0,
                       floating[:, ::1] gates, const floating[:, ::1] cells,
                       const floating[:, ::1] xh,
                       const floating[:, ::1] dy, Py_ssize_t dy_col,
                       const floating[:, ::1] dh_n, const floating[:, ::1] dc_n,
                       floating[:, ::1] dx, bint dx_accumulate,
                       floating[:, ::1] dh0, floating[:, ::1] dc0,
                       floating[:, ::1] dw_ih, floating[:, ::1] dw_hh, floating[::1] dbias,
                       floating[:, ::1] dw_hr, const floating[:, ::1] x,
                       const int64_t *x_rows, const floating[:, ::1] y, Py_ssize_t y_col,
                       const int64_t *y_rows, const floating[:, ::1] h0,
                       const void *opts) except? -1:
    """a = the arguments of backward(), then the C call (with the cell
    options opts, a fl_cell_opts_* of the same dtype, if not NULL) -> its
    status."""
    if backward_args is fl_backward_f32:
        assert floating is float
    else:
        assert floating is double
    memset(a, 0, sizeof(a[0]))
    a.w_ih = _in(a.w_ih, &w_ih[0, 0])
    a.w_hh = _in(a.w_hh, &w_hh[0, 0])
    a.w_hr = _in(a.w_hr, _data2(w_hr))
    a.c0 = _in(a.c0, _data2(c0))
    a.gates = _out(a.gates, &gates[0, 0])
    a.cells = _in(a.cells, &cells[0, 0])
    a.xh = _in(a.xh, _data2(xh))
    a.x = _in(a.x, _data2(x))
    a.ldx = w_ih.shape[1]
    a.x_rows = x_rows
    if y is not None:
        a.y = _in(a.y, &y[0, y_col])
        a.ldy = y.shape[1]
    a.y_rows = y_rows
    a.h0 = _in(a.h0, _data2(h0))
    a.dy = _in(a.dy, &dy[0, dy_col])
    a.lddy = dy.shape[1]
    a.dh_n = _in(a.dh_n, _data2(dh_n))
    a.dc_n = _in(a.dc_n, _data2(dc_n))
    a.dx = _out(a.dx, _data2_out(dx))
    a.lddx = w_ih.shape[1]
    a.dx_accumulate = dx_accumulate
    a.dh0 = _out(a.dh0, &dh0[0, 0])
    a.dc0 = _out(a.dc0, &dc0[0, 0])
    a.dw_ih = _out(a.dw_ih, &dw_ih[0, 0])
    a.dw_hh = _out(a.dw_hh, &dw_hh[0, 0])
    a.dbias = _out(a.dbias, _data1_out(dbias))
    a.dw_hr = _out(a.dw_hr, _data2_out(dw_hr))
    cdef int status
    with nogil:
        if backward_args is fl_backward_f32:
            if opts == NULL:
                status = fl_lstm_backward_f32(sh, a)
            else:
                status = fl_lstm_opts_backward_f32(sh, a, <const fl_cell_opts_f32 *> opts)
        else:
            if opts == NULL:
                status = fl_lstm_backward_f64(sh, a)
            else:
                status = fl_lstm_opts_backward_f64(sh, a, <const fl_cell_opts_f64 *> opts)
    return status


ctypedef fused cell_opts:
    fl_cell_opts_f32
    fl_cell_opts_f64


cdef int _fill_opts(cell_opts *o, tuple opts, const floating[::1] peephole,
                    floating[::1] d_peephole, Py_ssize_t H) except -1:
    """o = the cell options: opts = (clip or None, input_forget, ((activation
    name, alpha, beta) x 3)) (fastlstm.reference.CellOptions' fields but the
    peephole), peephole (3H) or None, d_peephole (3H) or None."""
    if cell_opts is fl_cell_opts_f32:
        assert floating is float
    else:
        assert floating is double
    memset(o, 0, sizeof(o[0]))
    clip, input_forget, acts = opts
    if len(acts) != 3:
        raise ValueError(f"opts: expected 3 activations, got {len(acts)}")
    o.clip = 0 if clip is None else clip
    if not o.clip >= 0:
        raise ValueError(f"clip: expected a number > 0 or None, got {clip!r}")
    o.input_forget = bool(input_forget)
    for k in range(3):
        name, alpha, beta = acts[k]
        if name not in ACTIVATIONS:
            raise ValueError(f"opts: unknown activation {name!r}")
        o.act[k] = ACTIVATIONS[name]
        o.alpha[k] = alpha
        o.beta[k] = beta
    if peephole is not None:
        _expect("peephole", (peephole.shape[0],), (3 * H,))
        o.peephole = _in(o.peephole, &peephole[0])
    if d_peephole is not None:
        _expect("d_peephole", (d_peephole.shape[0],), (3 * H,))
        o.d_peephole = _out(o.d_peephole, &d_peephole[0])
    return 0


cdef int _shape(fl_shape *sh, Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H,
                Py_ssize_t P, bint reverse, const int64_t[::1] batch_sizes) except -1:
    if T < 1 or B < 1 or I < 1 or H < 1 or P < 0:
        raise ValueError(f"sizes must be positive: T={T}, B={B}, I={I}, H={H}, P={P}")
    memset(sh, 0, sizeof(sh[0]))
    sh.T, sh.B, sh.I, sh.H, sh.P = T, B, I, H, P
    sh.reverse = reverse
    if batch_sizes is not None:
        _expect("batch_sizes", (batch_sizes.shape[0],), (T,))
        sh.batch_sizes = &batch_sizes[0]
    return 0


def forward(const floating[:, ::1] x, const floating[:, ::1] w_ih,
            const floating[::1] bias, const floating[::1] packed,
            const floating[:, ::1] h0, const floating[:, ::1] c0,
            floating[:, ::1] y, Py_ssize_t y_col,
            floating[:, ::1] h_n, floating[:, ::1] c_n,
            floating[:, ::1] gates, floating[:, ::1] cells, floating[:, ::1] xh,
            const int64_t[::1] batch_sizes, Py_ssize_t steps, bint reverse,
            Py_ssize_t proj_size, const int64_t[::1] x_rows=None,
            const int64_t[::1] y_rows=None, tuple opts=None,
            const floating[::1] peephole=None):
    """One layer, one direction, forward.

    x (rows, I); w_ih (4H, I); bias (4H) = b_ih + b_hh or None; packed from
    pack(); h0 (B, H_out), c0 (B, H) or None; y (rows, >= y_col + H_out):
    columns [y_col, y_col + H_out) written; h_n, c_n (B, H_out), (B, H)
    written; cells (rows, H) or None; training only (else None): gates
    (rows, 4H) gets the post-activation gates, and xh (rows, I + H_out), if
    given, the input rows [x_t | h_{t-1}] (else backward reads them from x,
    y and h0).  batch_sizes
    (steps,) int64 or None (then rows = steps * B).  x_rows, y_rows (rows,)
    int64 or None: packed row r reads row x_rows[r] of x and writes row
    y_rows[r] of y (a padded batch, without packing it), else row r.
    opts: None (the plain LSTM) or the ONNX cell options (see _fill_opts),
    with peephole (3H) or None; gates then get the pre-activations.
    """
    cdef Py_ssize_t B = h_n.shape[0], H = w_ih.shape[0] // 4, I = w_ih.shape[1]
    cdef Py_ssize_t P = proj_size, Hout = proj_size if proj_size else H
    cdef fl_shape sh
    _shape(&sh, steps, B, I, H, P, reverse, batch_sizes)
    cdef Py_ssize_t rows = fl_packed_rows(&sh)
    _expect("w_ih", (w_ih.shape[0], w_ih.shape[1]), (4 * H, I))
    _expect("x", (x.shape[0], x.shape[1]), (rows if x_rows is None else x.shape[0], I))
    cdef const int64_t *xr = _row_map("x_rows", x_rows, rows, x.shape[0])
    cdef const int64_t *yr = _row_map("y_rows", y_rows, rows, y.shape[0])
    if bias is not None:
        _expect("bias", (bias.shape[0],), (4 * H,))
    need = packed_size("f" if floating is float else "d", I, H, P)
    _expect("packed", (packed.shape[0],), (need,))
    if h0 is not None:
        _expect("h0", (h0.shape[0], h0.shape[1]), (B, Hout))
    if c0 is not None:
        _expect("c0", (c0.shape[0], c0.shape[1]), (B, H))
    if (yr == NULL and y.shape[0] != rows) or y_col < 0 or y.shape[1] < y_col + Hout:
        raise ValueError(f"y: expected ({rows}, >= {y_col + Hout}), got {(y.shape[0], y.shape[1])}")
    _expect("h_n", (h_n.shape[0], h_n.shape[1]), (B, Hout))
    _expect("c_n", (c_n.shape[0], c_n.shape[1]), (B, H))
    if xh is not None and gates is None:
        raise ValueError("xh: only with gates (training)")
    if gates is not None:
        _expect("gates", (gates.shape[0], gates.shape[1]), (rows, 4 * H))
    if xh is not None:
        _expect("xh", (xh.shape[0], xh.shape[1]), (rows, I + Hout))
    if cells is not None:
        _expect("cells", (cells.shape[0], cells.shape[1]), (rows, H))

    cdef int status
    cdef fl_forward_f32 a32
    cdef fl_forward_f64 a64
    cdef fl_cell_opts_f32 o32
    cdef fl_cell_opts_f64 o64
    if opts is None and peephole is not None:
        raise ValueError("peephole: only with opts")
    if floating is float:
        _fill_forward(&a32, x, w_ih, bias, packed, h0, c0, y, y_col, h_n, c_n, gates, cells,
                      xh, xr, yr)
        if opts is None:
            with nogil:
                status = _forward_call(&sh, &a32)
        else:
            _fill_opts[fl_cell_opts_f32, float](&o32, opts, peephole, None, H)
            with nogil:
                status = fl_lstm_opts_forward_f32(&sh, &a32, &o32)
    else:
        _fill_forward(&a64, x, w_ih, bias, packed, h0, c0, y, y_col, h_n, c_n, gates, cells,
                      xh, xr, yr)
        if opts is None:
            with nogil:
                status = _forward_call(&sh, &a64)
        else:
            _fill_opts[fl_cell_opts_f64, double](&o64, opts, peephole, None, H)
            with nogil:
                status = fl_lstm_opts_forward_f64(&sh, &a64, &o64)
    _raise_status(status, "forward")


def backward(const floating[:, ::1] w_ih,
             const floating[:, ::1] w_hh, const floating[:, ::1] w_hr,
             const floating[:, ::1] c0,
             floating[:, ::1] gates, const floating[:, ::1] cells,
             const floating[:, ::1] xh,
             const floating[:, ::1] dy, Py_ssize_t dy_col,
             const floating[:, ::1] dh_n, const floating[:, ::1] dc_n,
             floating[:, ::1] dx, bint dx_accumulate,
             floating[:, ::1] dh0, floating[:, ::1] dc0,
             floating[:, ::1] dw_ih, floating[:, ::1] dw_hh, floating[::1] dbias,
             floating[:, ::1] dw_hr,
             const int64_t[::1] batch_sizes, Py_ssize_t steps, bint reverse,
             const floating[:, ::1] x=None, const int64_t[::1] x_rows=None,
             const floating[:, ::1] y=None, Py_ssize_t y_col=0,
             const int64_t[::1] y_rows=None, const floating[:, ::1] h0=None,
             tuple opts=None, const floating[::1] peephole=None,
             floating[::1] d_peephole=None):
    """One layer, one direction, backward (BPTT) after forward() kept
    gates/cells (and xh, or None); w_ih, w_hh, w_hr: the weights that
    forward ran with (backward packs its products from them).  gates is overwritten (with the gate
    gradients).  dw_ih, dw_hh, dbias, dw_hr are accumulated (+=); dx (rows,
    I) is assigned or accumulated; dh0, dc0 written.  dh_n, dc_n, dx, dbias,
    dw_hr may be None.  Without xh, the rows [x_t | h_{t-1}] come from the
    forward's x, x_rows, y, y_col, y_rows (as forward() got them; y holding
    its output) and h0 (or None: zeros).  opts, peephole: the cell options
    the forward ran with (None: the plain LSTM); d_peephole (3H) gets the
    peepholes' gradient added, or None."""
    cdef Py_ssize_t B = dh0.shape[0], H = w_ih.shape[0] // 4, I = w_ih.shape[1]
    cdef Py_ssize_t P = 0 if w_hr is None else w_hr.shape[0]
    cdef Py_ssize_t Hout = P if P else H
    cdef fl_shape sh
    _shape(&sh, steps, B, I, H, P, reverse, batch_sizes)
    cdef Py_ssize_t rows = fl_packed_rows(&sh)
    _expect("w_ih", (w_ih.shape[0], w_ih.shape[1]), (4 * H, I))
    _expect("w_hh", (w_hh.shape[0], w_hh.shape[1]), (4 * H, Hout))
    if P:
        _expect("w_hr", (w_hr.shape[0], w_hr.shape[1]), (P, H))
        if dw_hr is None:
            raise ValueError("dw_hr is required with a projection")
        _expect("dw_hr", (dw_hr.shape[0], dw_hr.shape[1]), (P, H))
    if c0 is not None:
        _expect("c0", (c0.shape[0], c0.shape[1]), (B, H))
    _expect("gates", (gates.shape[0], gates.shape[1]), (rows, 4 * H))
    _expect("cells", (cells.shape[0], cells.shape[1]), (rows, H))
    cdef const int64_t *xr = NULL
    cdef const int64_t *yr = NULL
    if xh is not None:
        _expect("xh", (xh.shape[0], xh.shape[1]), (rows, I + Hout))
    else:
        if x is None or y is None:
            raise ValueError("x and y: required without xh")
        _expect("x", (x.shape[0], x.shape[1]), (rows if x_rows is None else x.shape[0], I))
        xr = _row_map("x_rows", x_rows, rows, x.shape[0])
        yr = _row_map("y_rows", y_rows, rows, y.shape[0])
        if (yr == NULL and y.shape[0] != rows) or y_col < 0 or y.shape[1] < y_col + Hout:
            raise ValueError(
                f"y: expected ({rows}, >= {y_col + Hout}), got {(y.shape[0], y.shape[1])}")
        if h0 is not None:
            _expect("h0", (h0.shape[0], h0.shape[1]), (B, Hout))
    if dy.shape[0] != rows or dy_col < 0 or dy.shape[1] < dy_col + Hout:
        raise ValueError(f"dy: expected ({rows}, >= {dy_col + Hout}), got {(dy.shape[0], dy.shape[1])}")
    if dh_n is not None:
        _expect("dh_n", (dh_n.shape[0], dh_n.shape[1]), (B, Hout))
    if dc_n is not None:
        _expect("dc_n", (dc_n.shape[0], dc_n.shape[1]), (B, H))
    if dx is not None:
        _expect("dx", (dx.shape[0], dx.shape[1]), (rows, I))
    _expect("dh0", (dh0.shape[0], dh0.shape[1]), (B, Hout))
    _expect("dc0", (dc0.shape[0], dc0.shape[1]), (B, H))
    _expect("dw_ih", (dw_ih.shape[0], dw_ih.shape[1]), (4 * H, I))
    _expect("dw_hh", (dw_hh.shape[0], dw_hh.shape[1]), (4 * H, Hout))
    if dbias is not None:
        _expect("dbias", (dbias.shape[0],), (4 * H,))

    cdef fl_backward_f32 a32
    cdef fl_backward_f64 a64
    cdef fl_cell_opts_f32 o32
    cdef fl_cell_opts_f64 o64
    cdef int status
    if opts is None and (peephole is not None or d_peephole is not None):
        raise ValueError("peephole, d_peephole: only with opts")
    if floating is float:
        if opts is not None:
            _fill_opts(&o32, opts, peephole, d_peephole, H)
        status = _backward_run(&sh, &a32, w_ih, w_hh, w_hr, c0, gates, cells, xh, dy,
                               dy_col, dh_n, dc_n, dx, dx_accumulate, dh0, dc0, dw_ih, dw_hh,
                               dbias, dw_hr, x, xr, y, y_col, yr, h0,
                               NULL if opts is None else <void *> &o32)
    else:
        if opts is not None:
            _fill_opts(&o64, opts, peephole, d_peephole, H)
        status = _backward_run(&sh, &a64, w_ih, w_hh, w_hr, c0, gates, cells, xh, dy,
                               dy_col, dh_n, dc_n, dx, dx_accumulate, dh0, dc0, dw_ih, dw_hh,
                               dbias, dw_hr, x, xr, y, y_col, yr, h0,
                               NULL if opts is None else <void *> &o64)
    _raise_status(status, "backward")


def gemm(bint trans_a, bint trans_b, double alpha, const floating[:, ::1] a,
         const floating[:, ::1] b, double beta, floating[:, ::1] c):
    """c = alpha * op(a) @ op(b) + beta * c with the active GEMM variant (tests)."""
    cdef Py_ssize_t M = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t K = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t Kb = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t N = b.shape[0] if trans_b else b.shape[1]
    if K != Kb:
        raise ValueError(f"gemm: inner dimensions differ: {K} vs {Kb}")
    _expect("c", (c.shape[0], c.shape[1]), (M, N))
    if M == 0 or N == 0 or K == 0:
        raise ValueError("gemm: empty operands")
    with nogil:
        if floating is float:
            fl_gemm_f32(trans_a, trans_b, M, N, K, <float>alpha, &a[0, 0], a.shape[1],
                      &b[0, 0], b.shape[1], <float>beta, &c[0, 0], c.shape[1])
        else:
            fl_gemm_f64(trans_a, trans_b, M, N, K, alpha, &a[0, 0], a.shape[1],
                      &b[0, 0], b.shape[1], beta, &c[0, 0], c.shape[1])


# ---- the stream's layer loop, for either dtype (args: L structs) -----------

cdef size_t _most_workspace(const forward_args *args, Py_ssize_t L, fl_shape sh) noexcept nogil:
    """The largest workspace a layer's one-step call needs."""
    cdef size_t most = 0, need
    cdef Py_ssize_t k
    for k in range(L):
        sh.I = args[k].ldx
        need = _forward_workspace(&sh, args)
        most = need if need > most else most
    return most


cdef void _share_workspace(forward_args *args, Py_ssize_t L, void *ws, size_t nbytes) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(L):
        args[k].workspace = ws
        args[k].workspace_bytes = nbytes


cdef int _stream_step(forward_args *args, Py_ssize_t L, fl_shape sh, const void *x,
                      void *out) noexcept nogil:
    """One step of the stack: layer 0 reads x, layer k reads layer k-1's
    output, the top layer writes out -> status of the first failing call."""
    cdef Py_ssize_t k
    cdef int status = FL_OK
    args[0].x = _in(args[0].x, x)
    args[L - 1].y = _out(args[L - 1].y, out)
    for k in range(L):
        sh.I = args[k].ldx
        status = _forward_call(&sh, &args[k])
        if status != FL_OK:
            break
    return status


cdef class StreamKernel:
    """Step-by-step forward of a unidirectional stack, with every buffer and
    pointer prepared once, so a step costs one buffer check, the C calls and
    the new output array.

    layers: list of (w_ih (4H, I_k), bias (4H) or None, packed) per layer;
    h (L, B, H_out) and c (L, B, H): the state, updated in place;
    ys: list of L (B, H_out) output buffers (the top one is only a template:
    each step writes a new array like it);
    convert: x -> an array step accepts, or raises; used when x is not
    already a C-contiguous buffer of the dtype.
    All arrays are C-contiguous of one dtype and are kept alive here.

    A stream is one state: step holds ``lock`` (a threading.Lock) while it
    runs, and anything else that touches the state or the shared scratch
    (reset, chunked steps) must hold it too.  Two threads stepping one stream
    then take turns instead of writing the same buffers at once.
    """
    cdef readonly object lock
    cdef list _keep
    cdef bint _double
    cdef Py_ssize_t L, B, I
    cdef fl_shape sh0
    cdef void *args        # L fl_forward_f64 (_double) or fl_forward_f32
    cdef void *ws          # one scratch shared by the layers' calls
    cdef size_t ws_bytes
    cdef readonly int workspace_threads  # the thread count ws was sized for
    cdef object _empty, _out_shape, _out_dtype, _convert

    def __cinit__(self):
        self.args = NULL
        self.ws = NULL
        self.ws_bytes = 0
        self.lock = threading.Lock()

    def __dealloc__(self):
        PyMem_Free(self.args)
        PyMem_Free(self.ws)

    def __init__(self, list layers, h, c, list ys, Py_ssize_t proj_size, convert):
        cdef Py_ssize_t L = len(layers), k
        if L < 1 or len(ys) != L:
            raise ValueError("StreamKernel: one (w_ih, bias, packed) and one output per layer")
        self._keep = [layers, h, c, ys]
        self._double = h.dtype.char == "d"
        self.L, self.B = L, h.shape[1]
        self.I = layers[0][0].shape[1]
        H = c.shape[2]
        Hout = h.shape[2]
        if h.shape != (L, self.B, Hout) or c.shape != (L, self.B, H):
            raise ValueError("StreamKernel: inconsistent state shapes")
        self._empty = np.empty
        self._out_shape, self._out_dtype = ys[L - 1].shape, ys[L - 1].dtype
        self._convert = convert
        memset(&self.sh0, 0, sizeof(self.sh0))
        self.sh0.T, self.sh0.B, self.sh0.H, self.sh0.P = 1, self.B, H, proj_size
        self.args = PyMem_Malloc(L * (sizeof(fl_forward_f64) if self._double
                                      else sizeof(fl_forward_f32)))
        if self.args == NULL:
            raise MemoryError()
        for k in range(L):
            w_ih, bias, packed = layers[k]
            I_k = w_ih.shape[1]
            if w_ih.shape != (4 * H, I_k) or (k > 0 and I_k != Hout) or \
                    ys[k].shape != (self.B, Hout) or \
                    packed.shape[0] != packed_size(h.dtype.char, I_k, H, proj_size):
                raise ValueError(f"StreamKernel: layer {k} has inconsistent shapes")
            # h0, c0 are read before h_n, c_n (the same arrays) are written;
            # layer 0's x is set per step
            x_prev = None if k == 0 else ys[k - 1]
            if self._double:
                _fill_forward[fl_forward_f64, double](
                    &(<fl_forward_f64 *> self.args)[k], x_prev, w_ih, bias, packed, h[k], c[k],
                    ys[k], 0, h[k], c[k], None, None, None, NULL, NULL)
            else:
                _fill_forward[fl_forward_f32, float](
                    &(<fl_forward_f32 *> self.args)[k], x_prev, w_ih, bias, packed, h[k], c[k],
                    ys[k], 0, h[k], c[k], None, None, None, NULL, NULL)
        self._size_workspace()

    cdef _size_workspace(self):
        """One scratch big enough for every layer's step at the current
        thread count (the plan, and so the scratch, depends on it), given to
        every layer's call.  Called again by a step after the count changed,
        so that no step mallocs its own."""
        cdef size_t most
        cdef void *mem
        self.workspace_threads = fl_get_num_threads()
        if self._double:
            most = _most_workspace(<fl_forward_f64 *> self.args, self.L, self.sh0)
        else:
            most = _most_workspace(<fl_forward_f32 *> self.args, self.L, self.sh0)
        if most > self.ws_bytes:  # ws_bytes is 0 while ws is NULL
            mem = PyMem_Malloc(most)
            if mem == NULL:
                raise MemoryError()
            PyMem_Free(self.ws)
            self.ws, self.ws_bytes = mem, most
        if self._double:
            _share_workspace(<fl_forward_f64 *> self.args, self.L, self.ws, self.ws_bytes)
        else:
            _share_workspace(<fl_forward_f32 *> self.args, self.L, self.ws, self.ws_bytes)

    def step(self, x):
        """Advance one step with x (B, I); returns the top layer's output
        (B, H_out), a new array.  x that is not a C-contiguous buffer of the
        stack's dtype goes through convert first."""
        lock = self.lock
        # uncontended: one C call; else wait with the GIL released
        if not lock.acquire(False):
            lock.acquire()
        try:
            return self._step(x)
        except (BufferError, TypeError):
            pass
        finally:
            lock.release()
        x = self._convert(x)  # outside the lock: it may run the caller's code
        if not lock.acquire(False):
            lock.acquire()
        try:
            return self._step(x)
        finally:
            lock.release()

    cdef object _step(self, x):
        cdef Py_buffer view, outview
        cdef int status = FL_OK
        cdef char want = ord("d") if self._double else ord("f")
        if fl_get_num_threads() != self.workspace_threads:
            self._size_workspace()
        out = self._empty(self._out_shape, self._out_dtype)
        # the buffer protocol directly: a typed memoryview costs an object
        # per call, a sizeable part of a step this small
        PyObject_GetBuffer(x, &view, PyBUF_RECORDS_RO)
        try:
            if not PyBuffer_IsContiguous(&view, b"C"):
                raise BufferError("x: not C-contiguous")
            if view.ndim != 2 or view.shape[0] != self.B or view.shape[1] != self.I:
                raise ValueError(f"x: expected shape ({self.B}, {self.I}), "
                                 f"got {tuple(view.shape[i] for i in range(view.ndim))}")
            if view.format == NULL or view.format[0] != want or view.format[1] != 0:
                raise TypeError(f"x: expected {'float64' if self._double else 'float32'} "
                                f"data, got format {view.format!r}")
            PyObject_GetBuffer(out, &outview, PyBUF_CONTIG)
            with nogil:
                if self._double:
                    status = _stream_step(<fl_forward_f64 *> self.args, self.L, self.sh0,
                                          view.buf, outview.buf)
                else:
                    status = _stream_step(<fl_forward_f32 *> self.args, self.L, self.sh0,
                                          view.buf, outview.buf)
            PyBuffer_Release(&outview)
        finally:
            PyBuffer_Release(&view)
        _raise_status(status, "stream step")
        return out
