/* AVX-512 variant of the GEMM kernels (compile this file alone with
 * -mavx512f -mavx512dq -mavx512vl -mfma; the dispatcher only calls it on CPUs
 * with AVX512F/DQ/VL and OS support for the zmm state).
 *
 * The same template as the AVX2 variant, with zmm vectors: fp32 12 x 32
 * register tile (24 of the 32 zmm registers accumulate), panels of NR = 32;
 * fp64 12 x 16.  Small-M tiles may use up to 8 panels.  KC = 256
 * (FL_GEMM_KC) keeps one B micro-panel (32 KiB) in a 48 KiB L1; the row and
 * column blocks MC and NC derive from the cache sizes (plans.h). */
#include "gemm_internal.h"

#if (defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)) && \
    defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#include <immintrin.h>

#define FL_ISA avx512
#define FL_NPMAX 8

#define FL_SFX s
#define FL_T float
#define FL_V __m512
#define FL_VW 16
#define FL_NV 2
#define FL_MR 12
#define FL_KC FL_GEMM_KC
#define FL_VLOAD(p) _mm512_loadu_ps(p)
#define FL_VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define FL_VBCAST(p) _mm512_set1_ps(*(p))
#define FL_VSET1(x) _mm512_set1_ps(x)
#define FL_VZERO() _mm512_setzero_ps()
#define FL_VMUL(a, b) _mm512_mul_ps((a), (b))
#define FL_VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#include "gemm_kernel_template.h"

#define FL_NPMAX 8
#define FL_SFX d
#define FL_T double
#define FL_V __m512d
#define FL_VW 8
#define FL_NV 2
#define FL_MR 12
#define FL_KC FL_GEMM_KC
#define FL_VLOAD(p) _mm512_loadu_pd(p)
#define FL_VSTORE(p, v) _mm512_storeu_pd((p), (v))
#define FL_VBCAST(p) _mm512_set1_pd(*(p))
#define FL_VSET1(x) _mm512_set1_pd(x)
#define FL_VZERO() _mm512_setzero_pd()
#define FL_VMUL(a, b) _mm512_mul_pd((a), (b))
#define FL_VFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#include "gemm_kernel_template.h"

/* clang-format off */
static const fl_gemm_impl fl_avx512_table = {
    "avx512", 12, 32, 12, 16,
    fl_avx512_gemm_s, fl_avx512_gemm_d,
    fl_avx512_pack_b_s, fl_avx512_pack_b_d,
    fl_avx512_gemm_packed_s, fl_avx512_gemm_packed_d,
    fl_avx512_gemm_team_s, fl_avx512_gemm_team_d,
};
/* clang-format on */

const fl_gemm_impl *fl_gemm_impl_avx512(void) { return &fl_avx512_table; }

#else /* compiled without AVX-512 flags (or not x86): variant absent */
const fl_gemm_impl *fl_gemm_impl_avx512(void) { return NULL; }
#endif
