/* AVX2 + FMA variant of the GEMM kernels (compile this file alone with
 * -mavx2 -mfma; the dispatcher only calls it on CPUs that have both).
 *
 * fp32: 6 x 16 register tile (12 ymm accumulators + 2 B vectors + 1
 * broadcast of the 16 ymm registers), panels of NR = 16.  fp64: 6 x 8.
 * KC = 256 (FL_GEMM_KC) keeps one B micro-panel (16 KiB) in a 32 KiB L1; the
 * row and column blocks MC and NC derive from the cache sizes (plans.h). */
#include "gemm_internal.h"

#if (defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)) && \
    defined(__AVX2__) && (defined(__FMA__) || defined(_MSC_VER))
#include <immintrin.h>

#define FL_ISA avx2
#define FL_NPMAX 4

#define FL_SFX s
#define FL_T float
#define FL_V __m256
#define FL_VW 8
#define FL_NV 2
#define FL_MR 6
#define FL_KC FL_GEMM_KC
#define FL_VLOAD(p) _mm256_loadu_ps(p)
#define FL_VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define FL_VBCAST(p) _mm256_broadcast_ss(p)
#define FL_VSET1(x) _mm256_set1_ps(x)
#define FL_VZERO() _mm256_setzero_ps()
#define FL_VMUL(a, b) _mm256_mul_ps((a), (b))
#define FL_VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#include "gemm_kernel_template.h"

#define FL_NPMAX 4
#define FL_SFX d
#define FL_T double
#define FL_V __m256d
#define FL_VW 4
#define FL_NV 2
#define FL_MR 6
#define FL_KC FL_GEMM_KC
#define FL_VLOAD(p) _mm256_loadu_pd(p)
#define FL_VSTORE(p, v) _mm256_storeu_pd((p), (v))
#define FL_VBCAST(p) _mm256_broadcast_sd(p)
#define FL_VSET1(x) _mm256_set1_pd(x)
#define FL_VZERO() _mm256_setzero_pd()
#define FL_VMUL(a, b) _mm256_mul_pd((a), (b))
#define FL_VFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#include "gemm_kernel_template.h"

/* clang-format off */
static const fl_gemm_impl fl_avx2_table = {
    "avx2", 6, 16, 6, 8,
    fl_avx2_gemm_s, fl_avx2_gemm_d,
    fl_avx2_pack_b_s, fl_avx2_pack_b_d,
    fl_avx2_gemm_packed_s, fl_avx2_gemm_packed_d,
    fl_avx2_gemm_team_s, fl_avx2_gemm_team_d,
};
/* clang-format on */

const fl_gemm_impl *fl_gemm_impl_avx2(void) { return &fl_avx2_table; }

#else /* compiled without AVX2/FMA (or not x86): variant absent */
const fl_gemm_impl *fl_gemm_impl_avx2(void) { return NULL; }
#endif
