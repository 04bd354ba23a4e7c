/* The kernels' cache-dependent plans (see plans.h; the measurements behind
 * each rule are in docs/kernel-design.md). */
#include "plans.h"

#include <string.h>

#include "cpuinfo.h"
#include "gemm_internal.h"

/* The share of L2 the GEMM's packed A block takes, in 1/64ths (a -D
 * override is for measurements). */
#ifndef FL_A_BLOCK_L2_64THS
#define FL_A_BLOCK_L2_64THS 18
#endif

/* The caches a plan works with: absent L1d / L2 as the defaults, every
 * size within what real cores have (an L3 no larger than L2 counts as
 * none: it cannot hold more than the core's own caches). */
static fl_cache_sizes plan_caches(const fl_cache_sizes *in)
{
    fl_cache_sizes c = *in;
    c.l1d = c.l1d ? c.l1d : FL_DEFAULT_L1D;
    c.l2 = c.l2 ? c.l2 : FL_DEFAULT_L2;
    c.l1d = c.l1d<((size_t)8 << 10) ? (size_t)8 << 10 : c.l1d>((size_t)1 << 20) ? (size_t)1 << 20
                                                                                : c.l1d;
    c.l2 = c.l2<((size_t)64 << 10) ? (size_t)64 << 10 : c.l2>((size_t)64 << 20) ? (size_t)64 << 20
                                                                                : c.l2;
    c.l3 = c.l3 <= c.l2 ? 0 : c.l3 > ((size_t)256 << 20) ? (size_t)256 << 20 : c.l3;
    return c;
}

/* The packed A block (mc x kc) stays in L2 while every packed B micro-panel
 * of the block of columns streams past it; it takes a share of L2
 * (FL_A_BLOCK_L2_64THS), the rest holding the B micro-panels on their way
 * to L1, the tiles of C and what the rest of the program keeps there. */
size_t fl_plan_gemm_mc(const fl_cache_sizes *in, size_t mr, size_t kc, size_t elem)
{
    const fl_cache_sizes c = plan_caches(in);
    const size_t rows = c.l2 / 64 * FL_A_BLOCK_L2_64THS / (kc * elem);
    return rows < mr ? mr : rows / mr * mr;
}

/* The packed B block (kc x nc) is packed once per K block and read by every
 * block of rows of A: it stays in L3, taking an eighth of it (a core's share
 * of a Zen 3 CCX's, and no more than other cores' work leaves), or half the
 * L2 without an L3. */
size_t fl_plan_gemm_nc(const fl_cache_sizes *in, size_t nr, size_t kc, size_t elem)
{
    const fl_cache_sizes c = plan_caches(in);
    const size_t cols = (c.l3 ? c.l3 / 8 : c.l2 / 2) / (kc * elem);
    return cols < nr ? nr : cols / nr * nr;
}

/* A forward product's tile stays in L1 through its gate loop: half of L1d,
 * the other half for the weights' panel chunks and the gate loop's rows. */
size_t fl_plan_tile_bytes(const fl_cache_sizes *in) { return plan_caches(in).l1d / 2; }

/* Weights beyond a core's L2 come from L3 or memory. */
size_t fl_plan_far_bytes(const fl_cache_sizes *in) { return plan_caches(in).l2; }

/* A thread's weights beyond its core's L2 come from L3 whoever multiplies
 * them, so cache ownership no longer matters and stealing pays. */
size_t fl_plan_steal_min_bytes(const fl_cache_sizes *in) { return plan_caches(in).l2; }

/* dx per step reads W_ih every step: it pays while W_ih stays within twice
 * a core's L2 (where the two cores' L2s hold it between them). */
size_t fl_plan_dx_loop_max_bytes(const fl_cache_sizes *in) { return 2 * plan_caches(in).l2; }

int fl_plan_for(const char *isa, const fl_cache_sizes *c, fl_plan *out)
{
    /* the register tiles of a variant compiled in, whether or not this CPU
     * runs it: the plans are arithmetic */
    const fl_gemm_impl *impl = fl_gemm_impl_compiled(isa);
    memset(out, 0, sizeof *out);
    if (impl == NULL)
        return -1;
    out->kc = FL_GEMM_KC;
    out->mc_f32 = fl_plan_gemm_mc(c, impl->mr_s, FL_GEMM_KC, sizeof(float));
    out->nc_f32 = fl_plan_gemm_nc(c, impl->nr_s, FL_GEMM_KC, sizeof(float));
    out->mc_f64 = fl_plan_gemm_mc(c, impl->mr_d, FL_GEMM_KC, sizeof(double));
    out->nc_f64 = fl_plan_gemm_nc(c, impl->nr_d, FL_GEMM_KC, sizeof(double));
    out->tile_bytes = fl_plan_tile_bytes(c);
    out->far_bytes = fl_plan_far_bytes(c);
    out->steal_min_bytes = fl_plan_steal_min_bytes(c);
    out->dx_loop_max_bytes = fl_plan_dx_loop_max_bytes(c);
    return 0;
}
