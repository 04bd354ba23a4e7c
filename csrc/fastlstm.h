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

enum { FL_OK = 0, FL_ENOMEM = 1, FL_EINVAL = 2 };

typedef struct fl_shape {
    size_t T, B, I, H, P;
    int reverse;                  /* 0: t = 0..L_j-1, 1: t = L_j-1..0 */
    const int64_t *batch_sizes;   /* (T) non-increasing, in [1, B]; or NULL */
} fl_shape;

/* Rows of the packed layout (sum of batch_sizes, or T*B). */
size_t fl_packed_rows(const fl_shape *sh);

#define FL_DECLARE_API(REAL, S)                                               \
                                                                              \
/* Elements of the packed weights blob (its layout depends on the ISA         \
 * variant chosen at import).  */                                             \
size_t fl_lstm_packed_size_##S(size_t I, size_t H, size_t P);                 \
/* Pack w_ih (4H, I), w_hh (4H, H_out) and w_hr (P, H; NULL when P == 0)      \
 * into `blob`. */                                                            \
void fl_lstm_pack_##S(size_t I, size_t H, size_t P, const REAL *w_ih,         \
                      const REAL *w_hh, const REAL *w_hr, REAL *blob);        \
                                                                              \
typedef struct fl_forward_##S {                                               \
    const REAL *x;  size_t ldx;   /* (rows, I) */                             \
    const REAL *w_ih;             /* (4H, I) */                               \
    const REAL *bias;             /* (4H) b_ih + b_hh, or NULL */             \
    const REAL *packed;           /* fl_lstm_pack_##S blob */                 \
    const REAL *h0, *c0;          /* (B, H_out), (B, H); NULL = zeros */      \
    REAL *y;  size_t ldy;         /* (rows, ldy): H_out columns written */    \
    REAL *h_n, *c_n;              /* (B, H_out), (B, H) */                    \
    REAL *gates;                  /* training (xh given): (rows, 4H), gets    \
                                     the post-activation gates i, f, g, o,    \
                                     as backward needs them; else unused      \
                                     (may be NULL) */                         \
    REAL *cells;                  /* (rows, H) c_t of every row, or NULL */   \
    REAL *xh;                     /* (rows, I + H_out) [x_t | h_{t-1}] of     \
                                     every row (training: backward needs it), \
                                     or NULL (inference) */                   \
    void *workspace;              /* optional scratch of workspace_bytes; a   \
                                     call with enough allocates nothing */    \
    size_t workspace_bytes;                                                   \
    const int64_t *x_rows;        /* NULL: packed row r of the input is row r \
                                     of x; else row x_rows[r] (rows entries,  \
                                     each a valid row of x): read a padded    \
                                     batch without packing it first */        \
    const int64_t *y_rows;        /* the same for y: write the output of      \
                                     packed row r to row y_rows[r] */         \
} fl_forward_##S;                                                             \
int fl_lstm_forward_##S(const fl_shape *sh, const fl_forward_##S *a);         \
/* Bytes of scratch that make fl_lstm_forward allocate nothing (at the        \
 * current thread count). */                                                  \
size_t fl_lstm_forward_workspace_##S(const fl_shape *sh);                     \
                                                                              \
typedef struct fl_backward_##S {                                              \
    const REAL *w_ih;             /* (4H, I) */                               \
    const REAL *w_hh;             /* (4H, H_out) */                           \
    const REAL *w_hr;             /* (P, H) or NULL */                        \
    const REAL *packed;           /* fl_lstm_pack_##S blob */                 \
    const REAL *c0;               /* (B, H) or NULL = zeros */                \
    REAL *gates;                  /* (rows, 4H) from forward; overwritten     \
                                     with d(pre-activation gates) */          \
    const REAL *cells, *xh;       /* from forward */                          \
    const REAL *dy; size_t lddy;  /* (rows, lddy): H_out columns read */      \
    const REAL *dh_n, *dc_n;      /* (B, H_out), (B, H); NULL = zeros */      \
    REAL *dx; size_t lddx;        /* (rows, I) or NULL */                     \
    int dx_accumulate;            /* 0: dx = ..., 1: dx += ... */             \
    REAL *dh0, *dc0;              /* (B, H_out), (B, H): written */           \
    REAL *dw_ih, *dw_hh;          /* accumulated (+=) */                      \
    REAL *dbias;                  /* (4H) accumulated, or NULL */             \
    REAL *dw_hr;                  /* (P, H) accumulated, or NULL */           \
} fl_backward_##S;                                                            \
int fl_lstm_backward_##S(const fl_shape *sh, const fl_backward_##S *a);

FL_DECLARE_API(float, s)
FL_DECLARE_API(double, d)

/* Chooses the ISA variant (once; FASTLSTM_ISA forces one) and returns its
 * name: "generic", "avx2" or "avx512". */
const char *fl_init(void);

#ifdef __cplusplus
}
#endif
#endif /* FASTLSTM_H */
