/* Reference GEMM: the obvious triple loop, the specification every SIMD
 * variant is tested against.  Slow on purpose; never on a hot path.
 * float accumulates in double so that the reference is the more accurate
 * side of every comparison. */
#include "gemm_internal.h"

#define A_AT(i, k) (transA ? A[(k) * lda + (i)] : A[(i) * lda + (k)])
#define B_AT(k, j) (transB ? B[(j) * ldb + (k)] : B[(k) * ldb + (j)])

void fl_gemm_ref_s(int transA, int transB, size_t M, size_t N, size_t K, float alpha,
                   const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                   size_t ldc)
{
    size_t i, j, k;
    for (i = 0; i < M; i++) {
        for (j = 0; j < N; j++) {
            double sum = 0.0;
            for (k = 0; k < K; k++)
                sum += (double)A_AT(i, k) * (double)B_AT(k, j);
            if (beta == 0.0f)
                C[i * ldc + j] = (float)((double)alpha * sum);
            else
                C[i * ldc + j] =
                    (float)((double)alpha * sum + (double)beta * (double)C[i * ldc + j]);
        }
    }
}

void fl_gemm_ref_d(int transA, int transB, size_t M, size_t N, size_t K, double alpha,
                   const double *A, size_t lda, const double *B, size_t ldb, double beta, double *C,
                   size_t ldc)
{
    size_t i, j, k;
    for (i = 0; i < M; i++) {
        for (j = 0; j < N; j++) {
            double sum = 0.0;
            for (k = 0; k < K; k++)
                sum += A_AT(i, k) * B_AT(k, j);
            if (beta == 0.0)
                C[i * ldc + j] = alpha * sum;
            else
                C[i * ldc + j] = alpha * sum + beta * C[i * ldc + j];
        }
    }
}
