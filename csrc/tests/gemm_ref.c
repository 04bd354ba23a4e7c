/* Reference GEMM: the obvious triple loop, the specification every SIMD
 * variant is tested against.  Slow on purpose; never on a hot path.
 * Both dtypes accumulate in double (for float that makes the reference the
 * more accurate side of every comparison; for double the casts are no-ops)
 * and round once to T at the end. */
#include "gemm_internal.h"

#define A_AT(i, k) (transA ? A[(k) * lda + (i)] : A[(i) * lda + (k)])
#define B_AT(k, j) (transB ? B[(j) * ldb + (k)] : B[(k) * ldb + (j)])

#define FL_GEMM_REF(SFX, T)                                                               \
    FL_GEMM_REF_SIGNATURE(SFX, T)                                                         \
    {                                                                                     \
        size_t i, j, k;                                                                   \
        for (i = 0; i < M; i++) {                                                         \
            for (j = 0; j < N; j++) {                                                     \
                double sum = 0.0;                                                         \
                for (k = 0; k < K; k++)                                                   \
                    sum += (double)A_AT(i, k) * (double)B_AT(k, j);                       \
                if (beta == (T)0)                                                         \
                    C[i * ldc + j] = (T)((double)alpha * sum);                            \
                else                                                                      \
                    C[i * ldc + j] =                                                      \
                        (T)((double)alpha * sum + (double)beta * (double)C[i * ldc + j]); \
            }                                                                             \
        }                                                                                 \
    }

FL_GEMM_REF(s, float)
FL_GEMM_REF(d, double)
