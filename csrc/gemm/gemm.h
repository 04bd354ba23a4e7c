/* fastlstm internal GEMM interface.
 *
 * Everything the LSTM kernels need from matrix multiplication goes through
 * this header, so the implementation (plain C reference, AVX2, AVX-512) can be
 * replaced without touching the LSTM kernel.  Pure C99: no Python, no numpy.
 *
 * All matrices are row-major with an explicit leading dimension (elements).
 * "op(X)" is X or X^T depending on the trans flag.
 *
 * Two entry kinds:
 *   1. fl_gemm_f32/f64: C = alpha * op(A) * op(B) + beta * C for large problems
 *      (input projection over all T*B rows, weight gradients, dx).  May use
 *      the thread team (threads.h) when called outside a team job; the
 *      summation order of every C element is fixed (independent of the thread
 *      count), so results are bitwise identical for any number of threads.
 *   2. The packed path for the per-step recurrent product: op(B) is packed
 *      once (fl_pack_b_*) into column panels of width fl_gemm_nr_*(); then
 *      fl_gemm_packed_* multiplies a small A by any panel-aligned column
 *      range of it.  Single-threaded: the LSTM kernel calls it from inside its
 *      own parallel region, each thread on its own column range.
 */
#ifndef FASTLSTM_GEMM_H
#define FASTLSTM_GEMM_H

#include <stddef.h>

#include "fastlstm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- general GEMM ------------------------------------------------------ */
/* fl_gemm_f32 / fl_gemm_f64 (fastlstm.h): as in BLAS, beta == 0 means C is
 * not read (it may hold NaN); K == 0 or alpha == 0 only scales C by beta (A
 * and B are not read). */

/* fl_gemm_* with the columns of C in two matrices, plus row sums of op(A):
 * columns [0, n1) of C are C1 (ldc1), columns [n1, N) are C2 (ldc2), with
 * 0 <= n1 <= N (C2 unused when n1 == N); when sums is not NULL,
 * sums[i] += op(A)(i, k) for k = 0 .. K-1 in that order (not scaled by
 * alpha), read off the same pass over A.  Every C element is bitwise what
 * fl_gemm_* gives it.  For weight gradients of stacked inputs [x | h]: one
 * product gives dW_ih and dW_hh, and its read of dgates the bias gradient. */
void fl_gemm_split_s(int transA, int transB, size_t M, size_t N, size_t K, float alpha,
                     const float *A, size_t lda, const float *B, size_t ldb, float beta, size_t n1,
                     float *C1, size_t ldc1, float *C2, size_t ldc2, float *sums);
void fl_gemm_split_d(int transA, int transB, size_t M, size_t N, size_t K, double alpha,
                     const double *A, size_t lda, const double *B, size_t ldb, double beta,
                     size_t n1, double *C1, size_t ldc1, double *C2, size_t ldc2, double *sums);

/* ---- packed B ---------------------------------------------------------- */
/* Panel width (columns of op(B) per panel) of the active ISA variant. */
size_t fl_gemm_nr_s(void);
size_t fl_gemm_nr_d(void);

/* Number of elements the packed copy of a K x N op(B) needs (N rounded up to
 * a multiple of the panel width; padding columns are zero). */
size_t fl_packed_size_s(size_t K, size_t N);
size_t fl_packed_size_d(size_t K, size_t N);

/* Pack op(B) (K x N) into `packed`.  transB=0: B is K x N (ldb >= N);
 * transB=1: B is N x K (ldb >= K), i.e. the product is A * B^T.
 * Panel p (columns [p*nr, (p+1)*nr)) starts at packed + p*nr*K and holds
 * row k of those columns at + k*nr (nr values, zero beyond N).  So rows
 * [k0, k1) of a panel are exactly the packed copy of rows [k0, k1) of
 * those columns: matrices stacked along K can be packed piece by piece. */
void fl_pack_b_s(int transB, size_t K, size_t N, const float *B, size_t ldb, float *packed);
void fl_pack_b_d(int transB, size_t K, size_t N, const double *B, size_t ldb, double *packed);

/* C[M x N] = A[M x K] * P + beta * C, where P is the packed op(B) restricted
 * to columns [n0, n0 + N); `packed` must point at panel start
 * (packed_base + (n0/nr)*nr*K, n0 a multiple of nr).  beta is 0 or 1
 * (with beta == 0, C is not read, so it may hold garbage).  N need not be a
 * multiple of nr: only N columns of C are written. Single-threaded. */
void fl_gemm_packed_s(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *packed,
                      float beta, float *C, size_t ldc);
void fl_gemm_packed_d(size_t M, size_t N, size_t K, const double *A, size_t lda,
                      const double *packed, double beta, double *C, size_t ldc);

/* The same for rows [k0, k0 + K) of a packed op(B) of Ktot rows (the part of
 * a stacked matrix that multiplies one of its inputs): `packed` points at
 * row k0 of the first panel (packed_base + (n0/nr)*nr*Ktot + k0*nr) and
 * ldp = nr*Ktot is the distance between panels.  With 0 < ks < K the sum
 * over K is blocked as two products, rows [0, ks) with beta and then rows
 * [ks, K) with beta = 1, and gives their bits in one pass (a stacked matrix
 * whose parts are also multiplied separately elsewhere).  fl_gemm_packed_*
 * is this with k0 = 0, Ktot = K, ks = 0. */
void fl_gemm_packed_ld_s(size_t M, size_t N, size_t K, const float *A, size_t lda,
                         const float *packed, size_t ldp, size_t ks, float beta, float *C,
                         size_t ldc);
void fl_gemm_packed_ld_d(size_t M, size_t N, size_t K, const double *A, size_t lda,
                         const double *packed, size_t ldp, size_t ks, double beta, double *C,
                         size_t ldc);

/* ---- ISA dispatch -------------------------------------------------------- */
/* Chooses the variant once (first call, or fl_gemm_init).  The environment
 * variable FASTLSTM_ISA=generic|avx2|avx512 forces a variant (a variant the
 * CPU cannot run falls back to the best one it can).  Returns the name of the
 * variant in use. */
const char *fl_gemm_init(void);

#ifdef __cplusplus
}
#endif
#endif /* FASTLSTM_GEMM_H */
