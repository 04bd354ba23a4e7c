# The C API of csrc/fastlstm.h, declared once for Cython (kernels.pyx
# cimports it).  Keep it a field-for-field mirror of the header.
from libc.stdint cimport int64_t, uint64_t

cdef extern from "fastlstm.h" nogil:
    enum:
        FL_OK
        FL_ENOMEM
        FL_EINVAL
        FL_ESHAPE
        FL_EBATCH_SIZES
        FL_EOPTIONS

    const char *fl_strerror(int status)

    ctypedef struct fl_shape:
        size_t T, B, I, H, P
        int reverse
        const int64_t *batch_sizes

    size_t fl_packed_rows(const fl_shape *sh)

    size_t fl_lstm_packed_size_f32(size_t I, size_t H, size_t P)
    size_t fl_lstm_packed_size_f64(size_t I, size_t H, size_t P)
    void fl_lstm_pack_f32(size_t I, size_t H, size_t P, const float *w_ih,
                          const float *w_hh, const float *w_hr, float *blob)
    void fl_lstm_pack_f64(size_t I, size_t H, size_t P, const double *w_ih,
                          const double *w_hh, const double *w_hr, double *blob)

    ctypedef struct fl_forward_f32:
        const float *x
        size_t ldx
        const float *w_ih
        const float *bias
        const float *packed
        const float *h0
        const float *c0
        float *y
        size_t ldy
        float *h_n
        float *c_n
        float *gates
        float *cells
        float *xh
        void *workspace
        size_t workspace_bytes
        const int64_t *x_rows
        const int64_t *y_rows

    ctypedef struct fl_forward_f64:
        const double *x
        size_t ldx
        const double *w_ih
        const double *bias
        const double *packed
        const double *h0
        const double *c0
        double *y
        size_t ldy
        double *h_n
        double *c_n
        double *gates
        double *cells
        double *xh
        void *workspace
        size_t workspace_bytes
        const int64_t *x_rows
        const int64_t *y_rows

    int fl_lstm_forward_f32(const fl_shape *sh, const fl_forward_f32 *a)
    int fl_lstm_forward_f64(const fl_shape *sh, const fl_forward_f64 *a)
    size_t fl_lstm_forward_workspace_f32(const fl_shape *sh)
    size_t fl_lstm_forward_workspace_f64(const fl_shape *sh)

    ctypedef struct fl_backward_f32:
        const float *w_ih
        const float *w_hh
        const float *w_hr
        const float *c0
        float *gates
        const float *cells
        const float *xh
        const float *x
        size_t ldx
        const int64_t *x_rows
        const float *y
        size_t ldy
        const int64_t *y_rows
        const float *h0
        const float *dy
        size_t lddy
        const float *dh_n
        const float *dc_n
        float *dx
        size_t lddx
        int dx_accumulate
        float *dh0
        float *dc0
        float *dw_ih
        float *dw_hh
        float *dbias
        float *dw_hr

    ctypedef struct fl_backward_f64:
        const double *w_ih
        const double *w_hh
        const double *w_hr
        const double *c0
        double *gates
        const double *cells
        const double *xh
        const double *x
        size_t ldx
        const int64_t *x_rows
        const double *y
        size_t ldy
        const int64_t *y_rows
        const double *h0
        const double *dy
        size_t lddy
        const double *dh_n
        const double *dc_n
        double *dx
        size_t lddx
        int dx_accumulate
        double *dh0
        double *dc0
        double *dw_ih
        double *dw_hh
        double *dbias
        double *dw_hr

    int fl_lstm_backward_f32(const fl_shape *sh, const fl_backward_f32 *a)
    int fl_lstm_backward_f64(const fl_shape *sh, const fl_backward_f64 *a)

    enum:
        FL_ACT_SIGMOID
        FL_ACT_TANH
        FL_ACT_RELU
        FL_ACT_HARD_SIGMOID
        FL_ACT_AFFINE
        FL_ACT_LEAKY_RELU
        FL_ACT_THRESHOLDED_RELU
        FL_ACT_SCALED_TANH
        FL_ACT_ELU
        FL_ACT_SOFTSIGN
        FL_ACT_SOFTPLUS
        FL_ACT_COUNT

    ctypedef struct fl_cell_opts_f32:
        const float *peephole
        float *d_peephole
        float clip
        int input_forget
        int act[3]
        float alpha[3]
        float beta[3]

    ctypedef struct fl_cell_opts_f64:
        const double *peephole
        double *d_peephole
        double clip
        int input_forget
        int act[3]
        double alpha[3]
        double beta[3]

    int fl_lstm_opts_forward_f32(const fl_shape *sh, const fl_forward_f32 *a,
                                 const fl_cell_opts_f32 *opts)
    int fl_lstm_opts_forward_f64(const fl_shape *sh, const fl_forward_f64 *a,
                                 const fl_cell_opts_f64 *opts)
    int fl_lstm_opts_backward_f32(const fl_shape *sh, const fl_backward_f32 *a,
                                  const fl_cell_opts_f32 *opts)
    int fl_lstm_opts_backward_f64(const fl_shape *sh, const fl_backward_f64 *a,
                                  const fl_cell_opts_f64 *opts)

    const char *fl_init()

    int fl_get_num_threads()
    int fl_set_num_threads(int n)
    int fl_have_openmp()
    int fl_max_threads()
    int fl_env_num_threads()
    int fl_forked_child()

    ctypedef struct fl_cache_sizes:
        size_t l1d, l2, l3
        int l3_shared

    enum:
        FL_CACHES_CPUID
        FL_CACHES_SYSFS
        FL_CACHES_DEFAULT

    int fl_cpu_read_caches(int source, fl_cache_sizes *out)

    ctypedef struct fl_cpu_info:
        char model[64]
        fl_cache_sizes caches
        int caches_from
        int cpus

    void fl_cpu_info_get(fl_cpu_info *out)
    double fl_fma_peak_gflops(const char *isa, int fp64, int threads, double seconds, int *nth)

    ctypedef struct fl_plan:
        size_t kc
        size_t mc_f32, nc_f32
        size_t mc_f64, nc_f64
        size_t tile_bytes
        size_t far_bytes
        size_t steal_min_bytes
        size_t dx_loop_max_bytes

    int fl_plan_for(const char *isa, const fl_cache_sizes *c, fl_plan *out)

    void fl_gemm_f32(int transA, int transB, size_t M, size_t N, size_t K,
                     float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                     float beta, float *C, size_t ldc)
    void fl_gemm_f64(int transA, int transB, size_t M, size_t N, size_t K,
                     double alpha, const double *A, size_t lda, const double *B, size_t ldb,
                     double beta, double *C, size_t ldc)

    uint64_t fl_fingerprint(const void *data, size_t nbytes)
