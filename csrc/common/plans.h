/* The kernels' plans that depend on the cache sizes: each a small pure
 * function of (cache sizes, ISA through its register tile, dtype through its
 * element size).  The kernels call them with the machine's caches
 * (fl_machine_caches, cpuinfo.h); fl_plan_for (fastlstm.h) gathers them for
 * a variant and any caches, for show_config and the tests.
 *
 * A cache level given as 0 is absent: L1d and L2 then take the defaults of
 * fl_cpu_read_caches(FL_CACHES_DEFAULT) (every core has both; 0 means the
 * source missed them), and a missing L3 makes the GEMM's B block an L2 one.
 * Sizes are clamped to what a real core has, so a wrong report cannot give
 * a zero or an absurd block.  docs/kernel-design.md ("Plans from the
 * hardware") says how each derives and what it reproduces on the machine
 * the thresholds were measured on. */
#ifndef FASTLSTM_PLANS_H
#define FASTLSTM_PLANS_H

#include <stddef.h>

#include "fastlstm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GEMM rows per block of packed A (a multiple of mr, >= mr), for register
 * tiles of mr rows, K blocks of kc and elements of elem bytes. */
size_t fl_plan_gemm_mc(const fl_cache_sizes *c, size_t mr, size_t kc, size_t elem);
/* GEMM columns per block of packed B (a multiple of nr, >= nr). */
size_t fl_plan_gemm_nc(const fl_cache_sizes *c, size_t nr, size_t kc, size_t elem);
/* Bytes of a forward product's tile (engine.h, groups_per_product). */
size_t fl_plan_tile_bytes(const fl_cache_sizes *c);
/* Packed weights of more bytes than this come from beyond the core's L2
 * (gemm_packed prefetches them a chunk ahead). */
size_t fl_plan_far_bytes(const fl_cache_sizes *c);
/* A unit split steals work when a thread's weights exceed this. */
size_t fl_plan_steal_min_bytes(const fl_cache_sizes *c);
/* Backward computes dx per step for a W_ih of at most this many bytes. */
size_t fl_plan_dx_loop_max_bytes(const fl_cache_sizes *c);

#ifdef __cplusplus
}
#endif
#endif /* FASTLSTM_PLANS_H */
