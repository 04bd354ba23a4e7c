/* fastlstm C API: one LSTM layer, one direction, forward and backward.
 *
 * Pure C99: no Python, no numpy.  The Cython module (fastlstm/_native/kernels.pyx)
 * validates arguments, allocates the arrays and calls these functions with
 * the GIL released.  Notation (fastlstm/reference.py is the specification):
 *
 *   T  steps          B  batch          I  input size
 *   H  hidden size    P  proj size (0 = no projection), H_out = P ? P : H
 *   gates are ordered i, f, g, o (PyTorch), blocks of H inside 4H.
 *
 *   gates = x_t W_ih^T + h_{t-1} W_hh^T + bias        bias = b_ih + b_hh
 *   i, f, o = sigmoid(.)   g = tanh(.)
 *   c_t = f * c_{t-1} + i * g          r_t = o * tanh(c_t)
 *   h_t = r_t                (P == 0)   h_t = r_t W_hr^T   (P > 0)
 *
 * Sequences are in "packed" layout (as PyTorch's PackedSequence): rows of
 * step t are the batch_sizes[t] first batch entries, step t's rows start at
 * row offset(t) = sum_{t' < t} batch_sizes[t'].  batch_sizes is
 * non-increasing, so the caller sorts the batch by length (longest first).
 * With batch_sizes == NULL every step has B rows: the packed layout is then
 * simply the time-major (T, B, .) array.  Row j has length
 * L_j = #{t : batch_sizes[t] > j}.  The reverse direction runs, for every
 * row j, over t = L_j - 1 down to 0.
 *
 * Functions return FL_OK or an FL_E* status; on error nothing useful is in
 * the outputs.  Sizes are size_t; the caller guarantees that every buffer
 * holds what its comment says (rows = number of packed rows).
 */
#ifndef FASTLSTM_H
#define FASTLSTM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status of every int-returning function (fl_strerror says it in words). */
enum {
    FL_OK = 0,
    FL_ENOMEM = 1,       /* a scratch allocation failed */
    FL_EINVAL = 2,       /* a required pointer is NULL (forward's packed
                            weights, the gates with xh, backward's w_ih and
                            w_hh, w_hr with P > 0, backward's x and y
                            without xh) */
    FL_ESHAPE = 3,       /* a size is 0: T, B, I and H must be >= 1 */
    FL_EBATCH_SIZES = 4, /* batch_sizes not non-increasing in [1, B] with
                           batch_sizes[0] == B */
    FL_EOPTIONS = 5      /* cell options (fl_cell_opts_*) invalid: an
                           unknown activation, clip < 0 or NaN, or with a
                           projection (P > 0) */
};

/* A static message for a status (an unknown one included). */
const char *fl_strerror(int status);

typedef struct fl_shape {
    size_t T, B, I, H, P;
    int reverse;                /* 0: t = 0..L_j-1, 1: t = L_j-1..0 */
    const int64_t *batch_sizes; /* (T) non-increasing, in [1, B]; or NULL */
} fl_shape;

/* Rows of the packed layout (sum of batch_sizes, or T*B). */
size_t fl_packed_rows(const fl_shape *sh);

/* Elements of the packed weights blob of the forward (its layout depends
 * on the ISA variant chosen at import). */
size_t fl_lstm_packed_size_f32(size_t I, size_t H, size_t P);
size_t fl_lstm_packed_size_f64(size_t I, size_t H, size_t P);

/* Pack w_ih (4H, I), w_hh (4H, H_out) and w_hr (P, H; NULL when P == 0)
 * into `blob` (fl_lstm_packed_size_* elements). */
void fl_lstm_pack_f32(size_t I, size_t H, size_t P, const float *w_ih, const float *w_hh,
                      const float *w_hr, float *blob);
void fl_lstm_pack_f64(size_t I, size_t H, size_t P, const double *w_ih, const double *w_hh,
                      const double *w_hr, double *blob);

/* The arguments of a forward call.  Start from an all-zero struct: every
 * pointer left NULL then means "absent" (or zeros), never garbage. */
typedef struct fl_forward_f32 {
    const float *x; /* (rows, ldx): I columns read */
    size_t ldx;
    const float *w_ih;    /* (4H, I) */
    const float *bias;    /* (4H) b_ih + b_hh, or NULL */
    const float *packed;  /* fl_lstm_pack_f32 blob */
    const float *h0, *c0; /* (B, H_out), (B, H); NULL = zeros */
    float *y;             /* (rows, ldy): H_out columns written */
    size_t ldy;
    float *h_n, *c_n; /* (B, H_out), (B, H) */
    float *gates;     /* training: (rows, 4H), gets the
                         post-activation gates i, f, g, o, as
                         backward needs them; NULL: inference */
    float *cells;     /* (rows, H) c_t of every row, or NULL */
    float *xh;        /* (rows, I + H_out) [x_t | h_{t-1}] of
                         every row (training, for a backward given
                         xh), or NULL: a backward can read the
                         same rows from x, y and h0 instead */
    void *workspace;  /* optional scratch of workspace_bytes; a
                         call with enough allocates nothing */
    size_t workspace_bytes;
    const int64_t *x_rows; /* NULL: packed row r of the input is row r
                              of x; else row x_rows[r] (rows entries,
                              each a valid row of x): read a padded
                              batch without packing it first */
    const int64_t *y_rows; /* the same for y: write the output of
                              packed row r to row y_rows[r] */
} fl_forward_f32;

/* fl_forward_f32 with double data. */
typedef struct fl_forward_f64 {
    const double *x;
    size_t ldx;
    const double *w_ih;
    const double *bias;
    const double *packed;
    const double *h0, *c0;
    double *y;
    size_t ldy;
    double *h_n, *c_n;
    double *gates;
    double *cells;
    double *xh;
    void *workspace;
    size_t workspace_bytes;
    const int64_t *x_rows;
    const int64_t *y_rows;
} fl_forward_f64;

int fl_lstm_forward_f32(const fl_shape *sh, const fl_forward_f32 *a);
int fl_lstm_forward_f64(const fl_shape *sh, const fl_forward_f64 *a);

/* Bytes of scratch that make fl_lstm_forward_* allocate nothing (at the
 * current thread count). */
size_t fl_lstm_forward_workspace_f32(const fl_shape *sh);
size_t fl_lstm_forward_workspace_f64(const fl_shape *sh);

/* The arguments of a backward call (start from all zeros, as forward's). */
typedef struct fl_backward_f32 {
    const float *w_ih;       /* (4H, I): the weights the forward ran */
    const float *w_hh;       /* (4H, H_out)   with (backward packs its */
    const float *w_hr;       /* (P, H) or NULL  own products from them) */
    const float *c0;         /* (B, H) or NULL = zeros */
    float *gates;            /* (rows, 4H) from forward; overwritten
                                with d(pre-activation gates) */
    const float *cells, *xh; /* from forward; xh may be NULL, then
                                its rows [x_t | h_{t-1}] are read
                                from the forward's x, y and h0: */
    const float *x;          /* (xh NULL) the forward's x, ldx, x_rows */
    size_t ldx;
    const int64_t *x_rows;
    const float *y; /* (xh NULL) the forward's output h_t: H_out
                       columns of y, ldy, y_rows, as forward */
    size_t ldy;
    const int64_t *y_rows;
    const float *h0; /* (xh NULL) (B, H_out), or NULL = zeros */
    const float *dy; /* (rows, lddy): H_out columns read */
    size_t lddy;
    const float *dh_n, *dc_n; /* (B, H_out), (B, H); NULL = zeros */
    float *dx;                /* (rows, lddx): I columns, or NULL */
    size_t lddx;
    int dx_accumulate;    /* 0: dx = ..., 1: dx += ... */
    float *dh0, *dc0;     /* (B, H_out), (B, H): written */
    float *dw_ih, *dw_hh; /* accumulated (+=) */
    float *dbias;         /* (4H) accumulated, or NULL */
    float *dw_hr;         /* (P, H) accumulated, or NULL */
} fl_backward_f32;

/* fl_backward_f32 with double data. */
typedef struct fl_backward_f64 {
    const double *w_ih;
    const double *w_hh;
    const double *w_hr;
    const double *c0;
    double *gates;
    const double *cells, *xh;
    const double *x;
    size_t ldx;
    const int64_t *x_rows;
    const double *y;
    size_t ldy;
    const int64_t *y_rows;
    const double *h0;
    const double *dy;
    size_t lddy;
    const double *dh_n, *dc_n;
    double *dx;
    size_t lddx;
    int dx_accumulate;
    double *dh0, *dc0;
    double *dw_ih, *dw_hh;
    double *dbias;
    double *dw_hr;
} fl_backward_f64;

int fl_lstm_backward_f32(const fl_shape *sh, const fl_backward_f32 *a);
int fl_lstm_backward_f64(const fl_shape *sh, const fl_backward_f64 *a);

/* The cell options of the ONNX LSTM operator (fastlstm/reference.py is the
 * specification), for a layer without projection (P == 0):
 *
 *   zi = gates_i + p_i c_{t-1}     zf = gates_f + p_f c_{t-1}     zg = gates_g
 *   i = F(clip(zi))   f = input_forget ? 1 - i : F(clip(zf))   g = G(clip(zg))
 *   c_t = f c_{t-1} + i g
 *   zo = gates_o + p_o c_t         o = F(clip(zo))             r_t = o Hc(c_t)
 *
 * gates_* = the blocks of x_t W_ih^T + h_{t-1} W_hh^T + bias (order i, f,
 * g, o as everywhere); clip(z) = min(max(z, -clip), clip), whose gradient is
 * 0 where it clamps.  F, G, Hc are act[0], act[1], act[2], each an FL_ACT_*
 * with its alpha and beta (ignored by those that take none): */
enum {
    FL_ACT_SIGMOID = 0,
    FL_ACT_TANH = 1,
    FL_ACT_RELU = 2,             /* max(x, 0) */
    FL_ACT_HARD_SIGMOID = 3,     /* min(max(alpha x + beta, 0), 1) */
    FL_ACT_AFFINE = 4,           /* alpha x + beta */
    FL_ACT_LEAKY_RELU = 5,       /* x >= 0 ? x : alpha x */
    FL_ACT_THRESHOLDED_RELU = 6, /* x > alpha ? x : 0 */
    FL_ACT_SCALED_TANH = 7,      /* alpha tanh(beta x) */
    FL_ACT_ELU = 8,              /* x >= 0 ? x : alpha (exp(x) - 1) */
    FL_ACT_SOFTSIGN = 9,         /* x / (1 + |x|) */
    FL_ACT_SOFTPLUS = 10,        /* log(1 + exp(x)) */
    FL_ACT_COUNT = 11
};

typedef struct fl_cell_opts_f32 {
    const float *peephole; /* (3H) blocks p_i, p_f, p_o, or NULL: none */
    float *d_peephole;     /* backward: (3H) accumulated (+=), or NULL */
    float clip;            /* > 0: clip as above; 0: no clipping */
    int input_forget;      /* 1: f = 1 - i (gates_f and p_f unused) */
    int act[3];            /* F, G, Hc: FL_ACT_* */
    float alpha[3], beta[3];
} fl_cell_opts_f32;

/* fl_cell_opts_f32 with double data. */
typedef struct fl_cell_opts_f64 {
    const double *peephole;
    double *d_peephole;
    double clip;
    int input_forget;
    int act[3];
    double alpha[3], beta[3];
} fl_cell_opts_f64;

/* Forward and backward with the cell options: as fl_lstm_forward_* and
 * fl_lstm_backward_* (the same packed weights, workspace size and
 * arguments), except that a training forward keeps the pre-activations
 * zi, zf, zg, zo (unclipped) in `gates`, which its backward (given the same
 * options) reads, and that backward adds the peepholes' gradient to
 * opts->d_peephole.  FL_EINVAL without opts, FL_EOPTIONS for invalid ones. */
int fl_lstm_opts_forward_f32(const fl_shape *sh, const fl_forward_f32 *a,
                             const fl_cell_opts_f32 *opts);
int fl_lstm_opts_forward_f64(const fl_shape *sh, const fl_forward_f64 *a,
                             const fl_cell_opts_f64 *opts);
int fl_lstm_opts_backward_f32(const fl_shape *sh, const fl_backward_f32 *a,
                              const fl_cell_opts_f32 *opts);
int fl_lstm_opts_backward_f64(const fl_shape *sh, const fl_backward_f64 *a,
                              const fl_cell_opts_f64 *opts);

/* Chooses the ISA variant (once; FASTLSTM_ISA forces one) and returns its
 * name: "generic", "avx2" or "avx512". */
const char *fl_init(void);

/* Threads the kernels use (>= 1); fl_set_num_threads(n < 1) restores the
 * default (FASTLSTM_NUM_THREADS, else the cores available) and returns the
 * count now in force, or -1 (nothing changed) when n > fl_max_threads().
 * In a process forked after a threaded call the count stays 1: the worker
 * threads did not survive the fork (and in a build whose team is OpenMP's,
 * GNU libgomp would wait for them forever).  fl_have_openmp: 1 in a threaded
 * build (built with OpenMP). */
int fl_get_num_threads(void);
int fl_set_num_threads(int n);
int fl_have_openmp(void);
/* The largest count accepted: 4 per core available (at least 8), enough to
 * oversubscribe on purpose, far below what makes thread creation fail. */
int fl_max_threads(void);
/* FASTLSTM_NUM_THREADS: 0 unset or empty, -1 not an integer in
 * [1, fl_max_threads()] (then ignored), else its value. */
int fl_env_num_threads(void);
/* 1 in a child forked after a threaded call (see fl_set_num_threads). */
int fl_forked_child(void);

/* ---- the machine and the plans that derive from it ---------------------- */
/* Data cache sizes in bytes as one core sees them: its L1d and L2, and the
 * L3 it shares (the whole size of one L3) with l3_shared logical CPUs (0:
 * not told).  A level of size 0 is absent. */
typedef struct fl_cache_sizes {
    size_t l1d, l2, l3;
    int l3_shared;
} fl_cache_sizes;

/* Where cache sizes come from: cpuid (x86: leaf 4, or 0x8000001D on AMD),
 * sysfs (Linux: /sys/devices/system/cpu/cpu0/cache), or the defaults (32 KiB,
 * 512 KiB, 32 MiB: the machine whose measurements set the plans). */
enum { FL_CACHES_CPUID = 1, FL_CACHES_SYSFS = 2, FL_CACHES_DEFAULT = 3 };

/* The cache sizes one source gives on this machine: -> 0, or -1 (and *out
 * zeroed) when it tells nothing (not x86, no sysfs, a sandbox). */
int fl_cpu_read_caches(int source, fl_cache_sizes *out);

typedef struct fl_cpu_info {
    char model[64];        /* cpuid brand string, else /proc/cpuinfo's model
                              name, else "" */
    fl_cache_sizes caches; /* from the first source that tells, in the
                              order cpuid, sysfs, defaults */
    int caches_from;       /* that source: FL_CACHES_* */
    int cpus;              /* logical CPUs this process may run on */
} fl_cpu_info;

/* The machine, read at the first call (once, thread-safe; the kernels'
 * plans use its caches). */
void fl_cpu_info_get(fl_cpu_info *out);

/* GFLOP/s of a register-only FMA loop of ISA variant `isa` ("generic",
 * "avx2", "avx512"; NULL: the variant in use) in fp32 (fp64 = 0) or fp64, on
 * `threads` threads of the team at once, each for about `seconds` (<= 0:
 * 5 ms) in runs that start together, each thread's best run: the sum over
 * the *nth threads that ran (fewer than asked when the team is busy with
 * another caller).  -> -1 when the variant is not compiled in or this CPU
 * cannot run it.  Takes that long: for reports, never called by the kernels. */
double fl_fma_peak_gflops(const char *isa, int fp64, int threads, double seconds, int *nth);

/* The kernels' cache-dependent plans for ISA variant `isa` on a machine with
 * caches *c (docs/kernel-design.md, "Plans from the hardware"). */
typedef struct fl_plan {
    size_t kc;                /* GEMM K block: fixed, it fixes the summation order */
    size_t mc_f32, nc_f32;    /* GEMM row and column blocks, fp32 */
    size_t mc_f64, nc_f64;    /* and fp64 */
    size_t tile_bytes;        /* forward: product tile budget (L1) */
    size_t far_bytes;         /* packed product: weights beyond this are
                                 prefetched a chunk ahead (L2) */
    size_t steal_min_bytes;   /* unit split: work stealing for a thread's
                                 weights beyond this (L2) */
    size_t dx_loop_max_bytes; /* backward: dx per step for a W_ih up to this */
} fl_plan;
/* -> 0, or -1 when the variant is not compiled in. */
int fl_plan_for(const char *isa, const fl_cache_sizes *c, fl_plan *out);

/* C = alpha op(A) op(B) + beta C with the active variant's GEMM (row-major,
 * leading dimensions in elements; beta == 0: C is not read).  The kernels'
 * own products go through it; exposed for the tests. */
void fl_gemm_f32(int transA, int transB, size_t M, size_t N, size_t K, float alpha, const float *A,
                 size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);
void fl_gemm_f64(int transA, int transB, size_t M, size_t N, size_t K, double alpha,
                 const double *A, size_t lda, const double *B, size_t ldb, double beta, double *C,
                 size_t ldc);

/* A 64-bit digest of nbytes bytes at data (any alignment): equal buffers
 * give equal digests, and a buffer modified in place almost surely a
 * different one.  The layers use it to refuse a backward whose saved
 * arrays were modified since the forward; not a cryptographic hash. */
uint64_t fl_fingerprint(const void *data, size_t nbytes);

#ifdef __cplusplus
}
#endif
#endif /* FASTLSTM_H */
