/* The ISA variants: the one list every dispatcher walks.
 *
 * Each variant is the GEMM micro-kernels (gemm/gemm_<isa>.c: register tile,
 * vector type, intrinsics) plus the LSTM kernel (rnn/lstm_variant.c, one
 * source compiled once per ISA with -DFL_ISA=<isa>), both built with the
 * ISA's flags (ISA_FLAGS in csrc/build_flags.py, which setup.py and
 * csrc/tests/build.sh both read).
 * The dispatchers choose one variant once, the best whose CPU check passes
 * (FASTLSTM_ISA forces one, if this CPU runs it).
 *
 * Adding an ISA: its X(...) entry and fl_cpu_runs_<isa>() below, its flags in
 * csrc/build_flags.py, and its gemm_<isa>.c. */
#ifndef FASTLSTM_ISA_H
#define FASTLSTM_ISA_H

/* X(isa) for every variant, worst first (the dispatchers try them from the
 * end).  generic needs nothing beyond the target's baseline. */
#define FL_FOR_EACH_ISA(X) X(generic) X(avx2) X(avx512)

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define FL_X86 1
#else
#define FL_X86 0
#endif

/* ---- CPU checks: 1 when this CPU and OS can run the variant ------------- */
static inline int fl_cpu_runs_generic(void) { return 1; }

#if FL_X86 && (defined(__GNUC__) || defined(__clang__))
/* libgcc / compiler-rt also check that the OS saves the ymm / zmm state. */
static inline int fl_cpu_runs_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static inline int fl_cpu_runs_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && fl_cpu_runs_avx2();
}
#elif FL_X86 && defined(_MSC_VER)
#include <intrin.h>
#include <immintrin.h>
static inline int fl_cpu_xcr0_has(unsigned long long mask)
{
    int r[4];
    __cpuid(r, 1);
    if (!(r[2] & (1 << 27))) /* OSXSAVE */
        return 0;
    return (_xgetbv(0) & mask) == mask;
}
static inline int fl_cpu_runs_avx2(void)
{
    int r1[4], r7[4];
    __cpuid(r1, 0);
    if (r1[0] < 7)
        return 0;
    __cpuid(r1, 1);
    __cpuidex(r7, 7, 0);
    return (r1[2] & (1 << 12)) /* FMA */ && (r1[2] & (1 << 28)) /* AVX */ &&
           (r7[1] & (1 << 5)) /* AVX2 */ && fl_cpu_xcr0_has(0x6);
}
static inline int fl_cpu_runs_avx512(void)
{
    int r7[4];
    if (!fl_cpu_runs_avx2())
        return 0;
    __cpuidex(r7, 7, 0);
    return (r7[1] & (1 << 16)) /* F */ && (r7[1] & (1 << 17)) /* DQ */ &&
           (r7[1] & (1 << 31)) /* VL */ && fl_cpu_xcr0_has(0xe6);
}
#else
static inline int fl_cpu_runs_avx2(void) { return 0; }
static inline int fl_cpu_runs_avx512(void) { return 0; }
#endif

#endif /* FASTLSTM_ISA_H */
