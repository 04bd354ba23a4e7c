/* The machine fastlstm runs on: CPU model, data cache sizes, CPUs available
 * (read once, at first use), and a measured FMA peak per ISA variant (on
 * request only).  The public part (fl_cpu_info, fl_cpu_read_caches,
 * fl_fma_peak_gflops) is declared in fastlstm.h; the kernels' plans that
 * derive from the cache sizes are in plans.h. */
#ifndef FASTLSTM_CPUINFO_H
#define FASTLSTM_CPUINFO_H

#include <stddef.h>

#include "fastlstm.h"
#include "isa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The cache sizes of fl_cpu_read_caches(FL_CACHES_DEFAULT): those of the
 * machine the plans were measured on (a Zen 3). */
#define FL_DEFAULT_L1D ((size_t)32 << 10)
#define FL_DEFAULT_L2 ((size_t)512 << 10)
#define FL_DEFAULT_L3 ((size_t)32 << 20)

/* The machine's cache sizes, fl_cpu_info's (read once, thread-safe, by the
 * first caller): what the kernels pass to the plans (plans.h, which take
 * the defaults for an absent L1d or L2). */
const fl_cache_sizes *fl_machine_caches(void);

/* One ISA variant's register-only FMA loop (common/fma_peak.c, compiled once
 * per ISA with its flags): `iters` rounds over the loop's independent
 * accumulators; returns the floating-point operations it did, or 0 when the
 * file was compiled without the variant's flags (the variant is absent). */
#define FL_DECLARE_FMA_LOOP(isa)                             \
    double fl_fma_loop_##isa##_s(size_t iters, float *sink); \
    double fl_fma_loop_##isa##_d(size_t iters, double *sink);
FL_FOR_EACH_ISA(FL_DECLARE_FMA_LOOP)
#undef FL_DECLARE_FMA_LOOP

#ifdef __cplusplus
}
#endif
#endif /* FASTLSTM_CPUINFO_H */
