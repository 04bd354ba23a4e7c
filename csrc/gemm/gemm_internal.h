/* fastlstm GEMM internals shared by the variant files, the dispatcher and
 * the test harness.  Not part of the interface the LSTM kernels use (that is
 * gemm.h).
 *
 * Each ISA variant (generic, avx2, avx512) is one instantiation of
 * gemm_kernel_template.h and exports a table of serial entry points; the
 * dispatcher (gemm_dispatch.c) picks one table once and adds the
 * thread team's split of fl_gemm_* over M or N.
 *
 * Numerics shared by all variants (this is what makes results independent of
 * the thread count and of where an element sits in a tile):
 *   - every C element is one accumulator lane summing a(i,k)*b(k,j) for
 *     k = k0 .. k0+kc-1 in increasing k (fused multiply-add where the ISA has
 *     it), starting from zero, for each K block [k0, k0+kc) of width KC;
 *   - after each block, C = alpha*acc + beta'*C, with beta' = beta for the
 *     first block and 1 afterwards (beta' == 0: C is not read);
 *   - edge tiles run the same vector code on a scratch tile, so the
 *     arithmetic never depends on the tile an element falls into.
 * Only the K blocking (KC) fixes the order; MC, NC, MR, NR and any split of M
 * or N across threads do not change a single bit. */
#ifndef FASTLSTM_GEMM_INTERNAL_H
#define FASTLSTM_GEMM_INTERNAL_H

#include <stddef.h>

#include "isa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The K block of every variant.  It fixes the summation order, so it does
 * not follow the cache sizes: results stay the same on every machine that
 * runs a variant (and the backward's FL_DW_ROWS chunks, multiples of it,
 * give the bits of one product).  The row and column blocks MC and NC
 * change no bit and derive from the caches (plans.h). */
#define FL_GEMM_KC 256

/* The C of a general GEMM: columns [0, n1) in c1 (leading dimension ldc1),
 * [n1, N) in c2 (ldc2; unused when n1 == N), and, when sums is not NULL,
 * sums[i] += op(A)(i, k) over all k in increasing k (not scaled by alpha).
 * A plain C is {C, ldc, N, NULL, 0, NULL}. */
typedef struct fl_cout_s {
    float *c1;
    size_t ldc1, n1;
    float *c2;
    size_t ldc2;
    float *sums;
} fl_cout_s;
typedef struct fl_cout_d {
    double *c1;
    size_t ldc1, n1;
    double *c2;
    size_t ldc2;
    double *sums;
} fl_cout_d;

typedef struct fl_gemm_impl {
    const char *name;
    size_t mr_s, nr_s; /* register tile of the fp32 micro-kernel */
    size_t mr_d, nr_d; /* and of the fp64 one */
    /* Serial C = alpha*op(A)*op(B) + beta*C (C as described by c).
     * Requires M, N, K >= 1. */
    void (*gemm_s)(int transA, int transB, size_t M, size_t N, size_t K, float alpha,
                   const float *A, size_t lda, const float *B, size_t ldb, float beta,
                   const fl_cout_s *c);
    void (*gemm_d)(int transA, int transB, size_t M, size_t N, size_t K, double alpha,
                   const double *A, size_t lda, const double *B, size_t ldb, double beta,
                   const fl_cout_d *c);
    /* Same contracts as fl_pack_b_* / fl_gemm_packed_ld_* in gemm.h (the
     * packed functions require M, N, K >= 1). */
    void (*pack_b_s)(int transB, size_t K, size_t N, const float *B, size_t ldb, float *packed);
    void (*pack_b_d)(int transB, size_t K, size_t N, const double *B, size_t ldb, double *packed);
    void (*packed_s)(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *packed,
                     size_t ldp, size_t ks, float beta, float *C, size_t ldc);
    void (*packed_d)(size_t M, size_t N, size_t K, const double *A, size_t lda,
                     const double *packed, size_t ldp, size_t ks, double beta, double *C,
                     size_t ldc);
    /* gemm_s / gemm_d on nt threads sharing one packed B, splitting M
     * (M, N, K >= 1); -> 0, or -1 when it did nothing (then the caller
     * splits the product itself). */
    int (*team_s)(int transA, int transB, size_t M, size_t N, size_t K, float alpha, const float *A,
                  size_t lda, const float *B, size_t ldb, float beta, const fl_cout_s *c, int nt,
                  int small);
    int (*team_d)(int transA, int transB, size_t M, size_t N, size_t K, double alpha,
                  const double *A, size_t lda, const double *B, size_t ldb, double beta,
                  const fl_cout_d *c, int nt, int small);
} fl_gemm_impl;

/* Variant tables.  A function returns NULL when its file was compiled
 * without the ISA flags it needs (or on a non-x86 target), so a build that
 * lacks them still links and simply never selects that variant. */
#define FL_DECLARE_GEMM_IMPL(isa) const fl_gemm_impl *fl_gemm_impl_##isa(void);
FL_FOR_EACH_ISA(FL_DECLARE_GEMM_IMPL)
#undef FL_DECLARE_GEMM_IMPL

/* Dispatcher internals (gemm_dispatch.c), exposed for the tests. */
/* The table for "generic" | "avx2" | "avx512" if compiled in and this CPU
 * can run it, else NULL. */
const fl_gemm_impl *fl_gemm_impl_by_name(const char *name);
/* The same if compiled in, whether or not this CPU can run it (its tiles,
 * for arithmetic such as the plans). */
const fl_gemm_impl *fl_gemm_impl_compiled(const char *name);
const fl_gemm_impl *fl_gemm_active(void);
/* fl_gemm_* with an explicit variant and thread count (nthreads < 1: use
 * fl_get_num_threads()). */
void fl_gemm_s_with(const fl_gemm_impl *impl, int nthreads, int transA, int transB, size_t M,
                    size_t N, size_t K, float alpha, const float *A, size_t lda, const float *B,
                    size_t ldb, float beta, float *C, size_t ldc);
void fl_gemm_d_with(const fl_gemm_impl *impl, int nthreads, int transA, int transB, size_t M,
                    size_t N, size_t K, double alpha, const double *A, size_t lda, const double *B,
                    size_t ldb, double beta, double *C, size_t ldc);
/* fl_gemm_split_* with an explicit variant and thread count. */
void fl_gemm_split_s_with(const fl_gemm_impl *impl, int nthreads, int transA, int transB, size_t M,
                          size_t N, size_t K, float alpha, const float *A, size_t lda,
                          const float *B, size_t ldb, float beta, size_t n1, float *C1, size_t ldc1,
                          float *C2, size_t ldc2, float *sums);
void fl_gemm_split_d_with(const fl_gemm_impl *impl, int nthreads, int transA, int transB, size_t M,
                          size_t N, size_t K, double alpha, const double *A, size_t lda,
                          const double *B, size_t ldb, double beta, size_t n1, double *C1,
                          size_t ldc1, double *C2, size_t ldc2, double *sums);
void fl_gemm_packed_s_with(const fl_gemm_impl *impl, size_t M, size_t N, size_t K, const float *A,
                           size_t lda, const float *packed, size_t ldp, size_t ks, float beta,
                           float *C, size_t ldc);
void fl_gemm_packed_d_with(const fl_gemm_impl *impl, size_t M, size_t N, size_t K, const double *A,
                           size_t lda, const double *packed, size_t ldp, size_t ks, double beta,
                           double *C, size_t ldc);

/* Plain loops (gemm_ref.c): the specification the variants are tested
 * against.  Same contract as fl_gemm_* (any sizes, beta == 0: C not read).
 * One signature for both dtypes: fl_gemm_ref_s (float) and fl_gemm_ref_d
 * (double). */
#define FL_GEMM_REF_SIGNATURE(SFX, T)                                                     \
    void fl_gemm_ref_##SFX(int transA, int transB, size_t M, size_t N, size_t K, T alpha, \
                           const T *A, size_t lda, const T *B, size_t ldb, T beta, T *C,  \
                           size_t ldc)
FL_GEMM_REF_SIGNATURE(s, float);
FL_GEMM_REF_SIGNATURE(d, double);

#ifdef __cplusplus
}
#endif
#endif /* FASTLSTM_GEMM_INTERNAL_H */
