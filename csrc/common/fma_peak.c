/* A register-only FMA loop: the floating-point peak of one ISA variant,
 * measured rather than computed from a clock that turbo and hypervisors
 * make meaningless.  Compiled once per ISA (common/isa.h) with -DFL_ISA=<isa>
 * and that variant's flags, like the GEMM variants; cpuinfo.c times it.
 *
 * Each round updates FL_FMA_ACC independent vector accumulators,
 * acc = acc * m + a (one fused multiply-add with the avx2 / avx512 flags,
 * whose -ffp-contract=fast fuses it; a multiply and an add at baseline).
 * Enough accumulators cover the FMA latency times the FMA units of every
 * core the variant runs on (4 cycles x 2 units: 8), within the 16 vector
 * registers of AVX2 and the 32 of AVX-512.  With m < 1 the accumulators
 * converge to a / (1 - m): no overflow and no subnormals. */
#include <stddef.h>

#include "cpuinfo.h"

#ifndef FL_ISA
#error "compile with -DFL_ISA=<isa> (see common/isa.h)"
#endif

#define FL_FMA_CAT_(a, b, c) a##b##c
#define FL_FMA_CAT(a, b, c) FL_FMA_CAT_(a, b, c)
#define FL_FMA_FN(sfx) FL_FMA_CAT(fl_fma_loop_, FL_ISA, sfx)

/* The vector width this file was compiled for: the widest the flags allow.
 * A variant compiled without its flags is absent (its GEMM file says so
 * too, and the dispatcher never runs it), so the loop reports 0. */
#if defined(__GNUC__) || defined(__clang__)
#if defined(__AVX512F__)
#define FL_FMA_BYTES 64
#define FL_FMA_ACC 24
#elif defined(__AVX2__) && defined(__FMA__)
#define FL_FMA_BYTES 32
#define FL_FMA_ACC 12
#else
#define FL_FMA_BYTES 16
#define FL_FMA_ACC 12
#endif
#endif

/* 1 when this object was built with the flags its variant needs. */
#define FL_FMA_ID_generic 1
#define FL_FMA_ID_avx2 (FL_FMA_BYTES == 32)
#define FL_FMA_ID_avx512 (FL_FMA_BYTES == 64)
#define FL_FMA_PRESENT FL_FMA_CAT(FL_FMA_ID_, FL_ISA, )

#if defined(FL_FMA_BYTES) && FL_FMA_PRESENT
/* fl_fma_loop_<isa>_<SFX> on vectors of T: `iters` rounds, the sum of
 * the accumulators' lanes to *sink (so the loop is not optimized away);
 * -> its floating-point operations (2 per lane per accumulator per round). */
#define FL_DEFINE_FMA_LOOP(SFX, T)                                                             \
    typedef T fl_fma_v_##SFX __attribute__((vector_size(FL_FMA_BYTES)));                       \
    double FL_FMA_FN(_##SFX)(size_t iters, T *sink)                                            \
    {                                                                                          \
        fl_fma_v_##SFX acc[FL_FMA_ACC], m, a;                                                  \
        const size_t lanes = FL_FMA_BYTES / sizeof(T);                                         \
        size_t i, r;                                                                           \
        T sum = 0;                                                                             \
        for (i = 0; i < lanes; i++) {                                                          \
            m[i] = (T)0.999;                                                                   \
            a[i] = (T)1e-3;                                                                    \
        }                                                                                      \
        for (r = 0; r < FL_FMA_ACC; r++)                                                       \
            acc[r] = a * (T)(r + 1);                                                           \
        for (i = 0; i < iters; i++) {                                                          \
            _Pragma("GCC unroll 32") for (r = 0; r < FL_FMA_ACC; r++) acc[r] = acc[r] * m + a; \
        }                                                                                      \
        for (r = 0; r < FL_FMA_ACC; r++)                                                       \
            for (i = 0; i < lanes; i++)                                                        \
                sum += acc[r][i];                                                              \
        *sink = sum;                                                                           \
        return 2.0 * (double)FL_FMA_ACC * (double)lanes * (double)iters;                       \
    }
FL_DEFINE_FMA_LOOP(s, float)
FL_DEFINE_FMA_LOOP(d, double)
#else
double FL_FMA_FN(_s)(size_t iters, float *sink)
{
    (void)iters;
    *sink = 0;
    return 0;
}
double FL_FMA_FN(_d)(size_t iters, double *sink)
{
    (void)iters;
    *sink = 0;
    return 0;
}
#endif
