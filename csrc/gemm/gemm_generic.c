/* Portable variant of the GEMM kernels: baseline flags only, runs on any
 * CPU.  With GCC/Clang the kernels use the compilers' generic 16-byte vector
 * extension (SSE2 on x86-64, NEON on arm64); other compilers get plain
 * scalars through the same template.
 *
 * fp32: 4 x 8 register tile (8 xmm accumulators; no FMA at baseline, so the
 * multiply and add need spare registers), panels of NR = 8.  fp64: 4 x 4. */
#include "gemm_internal.h"

#include <string.h>

#define FL_ISA generic

#if defined(__GNUC__) || defined(__clang__)
typedef float fl_generic_v4sf __attribute__((vector_size(16)));
typedef double fl_generic_v2df __attribute__((vector_size(16)));

/* Unaligned load and store (memcpy) and broadcast of one vector type V of T,
 * as fl_generic_load_<SFX>, fl_generic_store_<SFX>, fl_generic_set1_<SFX>. */
#define FL_GENERIC_VECTOR_OPS(SFX, T, V)                                              \
    static inline V fl_generic_load_##SFX(const T *p)                                 \
    {                                                                                 \
        V v;                                                                          \
        memcpy(&v, p, sizeof v);                                                      \
        return v;                                                                     \
    }                                                                                 \
    static inline void fl_generic_store_##SFX(T *p, V v) { memcpy(p, &v, sizeof v); } \
    static inline V fl_generic_set1_##SFX(T x)                                        \
    {                                                                                 \
        V v;                                                                          \
        size_t lane;                                                                  \
        for (lane = 0; lane < sizeof v / sizeof x; lane++)                            \
            v[lane] = x;                                                              \
        return v;                                                                     \
    }
FL_GENERIC_VECTOR_OPS(s, float, fl_generic_v4sf)
FL_GENERIC_VECTOR_OPS(d, double, fl_generic_v2df)

#define FL_NPMAX 4
#define FL_SFX s
#define FL_T float
#define FL_V fl_generic_v4sf
#define FL_VW 4
#define FL_NV 2
#define FL_MR 4
#define FL_KC FL_GEMM_KC
#define FL_VLOAD(p) fl_generic_load_s(p)
#define FL_VSTORE(p, v) fl_generic_store_s((p), (v))
#define FL_VBCAST(p) fl_generic_set1_s(*(p))
#define FL_VSET1(x) fl_generic_set1_s(x)
#define FL_VZERO() fl_generic_set1_s(0.0f)
#define FL_VMUL(a, b) ((a) * (b))
#define FL_VFMA(a, b, c) ((a) * (b) + (c))
#include "gemm_kernel_template.h"

#define FL_NPMAX 4
#define FL_SFX d
#define FL_T double
#define FL_V fl_generic_v2df
#define FL_VW 2
#define FL_NV 2
#define FL_MR 4
#define FL_KC FL_GEMM_KC
#define FL_VLOAD(p) fl_generic_load_d(p)
#define FL_VSTORE(p, v) fl_generic_store_d((p), (v))
#define FL_VBCAST(p) fl_generic_set1_d(*(p))
#define FL_VSET1(x) fl_generic_set1_d(x)
#define FL_VZERO() fl_generic_set1_d(0.0)
#define FL_VMUL(a, b) ((a) * (b))
#define FL_VFMA(a, b, c) ((a) * (b) + (c))
#include "gemm_kernel_template.h"

#define FL_GENERIC_NR_S 8
#define FL_GENERIC_NR_D 4

#else /* scalar: VW = 1, four "vectors" per panel row */

#define FL_NPMAX 4
#define FL_SFX s
#define FL_T float
#define FL_V float
#define FL_VW 1
#define FL_NV 4
#define FL_MR 4
#define FL_KC FL_GEMM_KC
#define FL_VLOAD(p) (*(p))
#define FL_VSTORE(p, v) (*(p) = (v))
#define FL_VBCAST(p) (*(p))
#define FL_VSET1(x) (x)
#define FL_VZERO() 0.0f
#define FL_VMUL(a, b) ((a) * (b))
#define FL_VFMA(a, b, c) ((a) * (b) + (c))
#include "gemm_kernel_template.h"

#define FL_NPMAX 4
#define FL_SFX d
#define FL_T double
#define FL_V double
#define FL_VW 1
#define FL_NV 4
#define FL_MR 4
#define FL_KC FL_GEMM_KC
#define FL_VLOAD(p) (*(p))
#define FL_VSTORE(p, v) (*(p) = (v))
#define FL_VBCAST(p) (*(p))
#define FL_VSET1(x) (x)
#define FL_VZERO() 0.0
#define FL_VMUL(a, b) ((a) * (b))
#define FL_VFMA(a, b, c) ((a) * (b) + (c))
#include "gemm_kernel_template.h"

#define FL_GENERIC_NR_S 4
#define FL_GENERIC_NR_D 4
#endif

/* clang-format off */
static const fl_gemm_impl fl_generic_table = {
    "generic", 4, FL_GENERIC_NR_S, 4, FL_GENERIC_NR_D,
    fl_generic_gemm_s, fl_generic_gemm_d,
    fl_generic_pack_b_s, fl_generic_pack_b_d,
    fl_generic_gemm_packed_s, fl_generic_gemm_packed_d,
    fl_generic_gemm_team_s, fl_generic_gemm_team_d,
};
/* clang-format on */

const fl_gemm_impl *fl_gemm_impl_generic(void) { return &fl_generic_table; }
