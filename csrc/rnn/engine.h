/* The time-loop engine of a recurrent layer, one direction: forward and
 * backward (BPTT), on the cell FL_CELL names (cell_lstm.h: its gate count
 * and elementwise step; see there for what a cell provides).  A second cell
 * in the same file (lstm_variant.c) defines FL_CELL_TAG, which names its
 * instance's functions in place of S.
 *
 * Dtype- and ISA-generic source.  lstm_variant.c, compiled once per ISA with
 * FL_ISA defined, includes this file twice, with REAL/S/DT = float/s/f32
 * and double/d/f64 (S names the GEMM and activation helpers, DT the public
 * types).  Notation and the packed row layout are
 * described in fastlstm.h; fastlstm/reference.py is the specification.
 *
 * Structure of a call (forward): one job of the thread team (threads.h) for
 * the whole time loop (none at all for a call too small to share).  A thread's share of the
 * work is either
 *   - batch rows, for all hidden units (split_batch: rows are independent
 *     sequences, so no barrier at all): the batch is cut into row chunks,
 *     and threads take blocks of steps of the free chunk with the most
 *     steps left, so a faster core does more of them (fl_chunks), or
 *   - hidden units, for all rows (the weights stay split between the
 *     cores' caches; one barrier per step, two with a projection);
 * The input of step t is one row [x_t | h_{t-1}] per sequence (K = I + H_out
 * values; x_t is copied in by the previous step, h_{t-1} written there by
 * it), and the packed weights stack W_ih^T over W_hh^T with all four gates
 * of a group of U units side by side.  So for each group (or gw groups at
 * once, for a small batch) a thread computes [x_t | h_{t-1}]
 * [W_ih | W_hh]^T into an L1 tile with one product, then runs the gate loop
 * on the tile (bias, sigmoid/tanh, cell update, output).  For a batch of a
 * few rows and weights beyond L2 the x_t W_ih^T part is one product per
 * block of steps instead (xproj_steps).
 * Training also keeps every input row [x_t | h_{t-1}] (xh) for backward.
 * Backward mirrors it: per step the elementwise gate gradients of a thread's
 * units (or rows), a barrier for the unit split, then dh_{t-1} = dgates W_hh
 * and (with enough rows) dx_t = dgates W_ih for its columns (or rows), while
 * dgates is in cache; afterwards dW_ih, dW_hh, dW_hr (and dx for a small
 * batch) are one big GEMM each.
 * No allocation, no Python, no I/O inside the time loop.  Each output element
 * is computed by exactly one thread in a fixed order, so results depend
 * neither on the number of threads nor on which thread ran what.
 * docs/kernel-design.md explains the design and holds the measurements
 * behind the thresholds below.
 */

#ifndef FL_CAT
#define FL_CAT_(a, b, c) a##_##b##_##c
#define FL_CAT(a, b, c) FL_CAT_(a, b, c)
#define FL_GEMM_(name, s) name##_##s
#define FL_GEMMX(name, s) FL_GEMM_(name, s)
/* The gate loops have no dependence between units (n <= H, so gate blocks
 * never overlap): let the compiler vectorize them (needs -fopenmp or
 * -fopenmp-simd, otherwise a no-op). */
#define FL_SIMD _Pragma("omp simd")
/* Row of x or y that packed row r maps to (map NULL: r itself). */
#define FL_ROW_OF(map, r) ((map) ? (size_t)(map)[r] : (size_t)(r))
/* A thread's share of a time step: rows [j0, j1) and, of the step's
 * products, [u0, u1) (forward: groups; backward: hidden units), [v0, v1)
 * (forward: projection columns; backward: columns of dh) and [x0, x1)
 * (backward: columns of dx). */
typedef struct fl_share {
    size_t j0, j1, u0, u1, v0, v1, x0, x1;
} fl_share;
#endif
#ifdef FL_CELL_TAG
#define FL_FN(name) FL_CAT(name, FL_CELL_TAG, FL_ISA)
#else
#define FL_FN(name) FL_CAT(name, S, FL_ISA)
#endif
#define GEMM FL_GEMMX(fl_gemm, DT)
#define GEMM_PACKED FL_GEMMX(fl_gemm_packed, S)
#define GEMM_PACKED_LD FL_GEMMX(fl_gemm_packed_ld, S)
#define GEMM_SPLIT FL_GEMMX(fl_gemm_split, S)
#define PACK_B FL_GEMMX(fl_pack_b, S)
#define PACKED_SIZE FL_GEMMX(fl_packed_size, S)
#define GEMM_NR FL_GEMMX(fl_gemm_nr, S)
#define SIGMOID FL_GEMMX(fl_sigmoid, S)
#define TANH FL_GEMMX(fl_tanh, S)
#define FWD_ARGS FL_GEMMX(fl_forward, DT)
#define BWD_ARGS FL_GEMMX(fl_backward, DT)

#include FL_CELL

/* Where the pieces of the packed-weights blob live (elements).  The blob
 * holds the forward's packing only: a backward packs its own products from
 * the weights (they are needed once per backward, and a blob kept for
 * inference would otherwise carry them too). */
typedef struct FL_FN(blob_layout) {
    size_t U;      /* units per group of the forward product */
    size_t groups; /* ceil(H / U) */
    size_t K;      /* I + H_out: rows of the forward product */
    size_t xh_fwd; /* [x | h] [W_ih | W_hh]^T, grouped: [i f g o] x U
                      columns per group, K = I + H_out */
    size_t hr_fwd; /* r W_hr^T:    K = H,  N = P */
    size_t total;
} FL_FN(blob_layout);

/* Units per group: the gate loop runs over U units of each gate at a time,
 * and wider groups give it more independent vectors per loop.  The widest
 * of 64, 32, 16 (or nr, if wider) that still leaves at least FL_MIN_GROUPS
 * groups to split between threads and pads H no further than nr does. */
#ifndef FL_MIN_GROUPS
#define FL_MIN_GROUPS 4
#endif
static size_t FL_FN(group_units)(size_t H, size_t nr)
{
    const size_t base = nr >= 16 ? nr : 16; /* nr is a power of two <= 64 */
    const size_t padded = (H + base - 1) / base * base;
    for (size_t U = 64; U > base; U /= 2)
        if ((H + U - 1) / U >= FL_MIN_GROUPS && (H + U - 1) / U * U == padded)
            return U;
    return base;
}

static FL_FN(blob_layout) FL_FN(layout)(size_t I, size_t H, size_t P)
{
    FL_FN(blob_layout) L;
    size_t nr = GEMM_NR(), Hout = P ? P : H;
    L.U = FL_FN(group_units)(H, nr);
    L.groups = (H + L.U - 1) / L.U;
    L.K = I + Hout;
    L.xh_fwd = 0;
    L.hr_fwd = L.xh_fwd + L.groups * FL_CELL_GATES * L.U * L.K;
    L.total = L.hr_fwd + (P ? PACKED_SIZE(H, P) : 0);
    return L;
}

static size_t FL_FN(packed_size)(size_t I, size_t H, size_t P)
{
    return FL_FN(layout)(I, H, P).total;
}

static void FL_FN(pack)(size_t I, size_t H, size_t P, const REAL *w_ih, const REAL *w_hh,
                        const REAL *w_hr, REAL *blob)
{
    FL_FN(blob_layout) L = FL_FN(layout)(I, H, P);
    const size_t Hout = P ? P : H, nr = GEMM_NR(), K = L.K;
    memset(blob, 0, L.total * sizeof(REAL));
    /* the forward product stacks W_ih^T over W_hh^T (K = I + H_out rows):
     * a panel is K rows of nr values, so packing the I rows of W_ih^T and
     * then the H_out rows of W_hh^T of the same nr columns, one after the
     * other, gives the panel of the stacked matrix */
    for (size_t g = 0; g < L.groups; g++)
        for (size_t q = 0; q < FL_CELL_GATES; q++)
            for (size_t c = g * L.U; c < (g + 1) * L.U && c < H; c += nr) {
                const size_t n = H - c < nr ? H - c : nr, row = q * H + c;
                REAL *dst = blob + L.xh_fwd + ((g * FL_CELL_GATES + q) * L.U + c - g * L.U) * K;
                PACK_B(1, I, n, w_ih + row * I, I, dst);
                PACK_B(1, Hout, n, w_hh + row * Hout, Hout, dst + I * nr);
            }
    if (P)
        PACK_B(1, H, P, w_hr, H, blob + L.hr_fwd);
}

/* Everything one time loop needs; shared read-only by the threads (the
 * buffers it points to are split between them as described above), except
 * the barrier. */
typedef struct FL_FN(loop) {
    const fl_shape *sh;
    const fl_rows *rw;
    FL_FN(blob_layout) L;
    size_t nr;
    const FWD_ARGS *fa;
    const BWD_ARGS *ba;
    const REAL *zeros, *pk_xh, *pk_hh, *pk_ih, *pk_hr;
    const REAL *gbias;               /* bias in group layout */
    size_t gw;                       /* groups per forward product (tile width 4U gw) */
    int split_batch;                 /* threads own batch rows (else hidden units) */
    int dx_in_loop;                  /* backward: dx per step (else one GEMM after) */
    fl_barrier *bar;                 /* the per-step barrier (unit split) */
    fl_chunks *ch;                   /* the row chunks (batch split) */
    size_t *steal;                   /* work-stealing counters (unit split), or NULL */
    size_t *join;                    /* late joins of the unit split (forward_loop), or NULL */
    size_t join_n;                   /* ... for this many threads */
    size_t xb;                       /* steps per block of the input projection, or 0 */
    size_t ks;                       /* the stacked product's sum blocked here (or 0) */
    REAL *xproj, *xrows;             /* its results (block rows x 4U groups), its
                                        gathered inputs (per thread) */
    REAL *xh, *cstate, *rstep, *tmp; /* forward state */
    REAL *dhbuf, *dcstate, *dgstep, *dhp, *drstep, /* backward state */
        *dhtot, *rstore, *dxstep;
    const void *opts; /* the cell's options (its header says what), or NULL */
} FL_FN(loop);

/* How many threads run a time loop of T steps whose per-step product is
 * B x K x N (hidden size H), and how they split it (*split_batch):
 *   - one thread for a call under FL_MIN_CALL_MACS (below it, starting the
 *     team costs more than it saves; a streaming step of I = 64, H = 128,
 *     98K MACs, is above it and gains);
 *   - split by batch rows (no barrier per step; every thread streams all the
 *     weights; row chunks taken dynamically, see plan_chunks) for
 *     H <= FL_BATCH_SPLIT_MAX_H and FL_MIN_ROWS_PER_THREAD rows per thread;
 *   - else split by hidden units (weights split between the cores' caches, a
 *     barrier per step): as many threads as have FL_MIN_STEP_MACS of work per
 *     step (about the cost of a barrier), at most `chunks`; one thread for
 *     steps under FL_SHORT_STEP_MACS while a recent call found the
 *     cores contended (fl_backing_off, threads.h).
 * FASTLSTM_SPLIT=batch|units forces the split (for measurements). */
#ifndef FL_MIN_STEP_MACS
#define FL_MIN_STEP_MACS 32768
#endif
#ifndef FL_MIN_CALL_MACS
#define FL_MIN_CALL_MACS (1u << 16)
#endif
#ifndef FL_MIN_ROWS_PER_THREAD
#define FL_MIN_ROWS_PER_THREAD 8
#endif
#ifndef FL_BATCH_SPLIT_MAX_H
#define FL_BATCH_SPLIT_MAX_H 256
#endif
/* A unit-split step of fewer multiply-adds takes a few microseconds: its
 * loop meets at a barrier that often, and a partner that is not on a core
 * stalls it for longer than the whole call would take on one thread. */
#ifndef FL_SHORT_STEP_MACS
#define FL_SHORT_STEP_MACS (1u << 20)
#endif
static int FL_FN(plan_threads)(size_t T, size_t B, size_t H, size_t K, size_t N, size_t chunks,
                               int *split_batch)
{
    const size_t want = (size_t)fl_get_num_threads();
    const int forced = fl_forced_split();
    size_t nt;
    *split_batch = 0;
    if (T * B * K * N < FL_MIN_CALL_MACS)
        return 1;
    if (forced ? forced == FL_SPLIT_BATCH
               : B >= 2 * FL_MIN_ROWS_PER_THREAD && H <= FL_BATCH_SPLIT_MAX_H) {
        const size_t most = forced ? B : B / FL_MIN_ROWS_PER_THREAD;
        nt = want < most ? want : most;
        *split_batch = nt > 1;
    } else if (B * K * N < FL_SHORT_STEP_MACS && fl_backing_off()) {
        nt = 1; /* short steps while the cores are contended (threads.h) */
    } else {
        const size_t by_work = B * K * N / FL_MIN_STEP_MACS;
        nt = want < by_work ? want : by_work;
        nt = nt < chunks ? nt : chunks;
    }
    return nt < 1 ? 1 : (int)nt;
}

/* ... and of fewer than this, a tiny one (threads.h: it wakes no sleeping
 * worker, whose wake-up would cost the caller more than the call: a stream
 * step of I = 64, H = 128, B = 1 is 98K). */
#ifndef FL_WAKE_MIN_MACS
#define FL_WAKE_MIN_MACS (1u << 19)
#endif

/* A call of fewer multiply-adds than this is a small job for the team
 * (threads.h): it runs on the workers that are awake, never waiting for a
 * sleeping one (on one thread, it takes about as long as waking one). */
#ifndef FL_SMALL_CALL_MACS
#define FL_SMALL_CALL_MACS (1u << 22)
#endif

/* The part of a loop context every call shares; rw is freed by the caller
 * (rows_mem: caller memory for it, or NULL to allocate). */
static int FL_FN(loop_init)(FL_FN(loop) *lp, fl_rows *rw, const fl_shape *sh, size_t *rows_mem)
{
    if (sh->T == 0 || sh->B == 0 || sh->I == 0 || sh->H == 0)
        return FL_ESHAPE;
    memset(lp, 0, sizeof *lp);
    lp->sh = sh;
    lp->L = FL_FN(layout)(sh->I, sh->H, sh->P);
    lp->nr = GEMM_NR();
    lp->rw = rw;
    return rows_mem ? fl_rows_init_in(rw, sh, rows_mem) : fl_rows_init(rw, sh);
}

/* Tile budget of one forward product: a thread multiplies gw groups at once
 * (tile rows x 4U gw), as many as fit this many bytes, at least one. Fewer,
 * wider products cost less per call for a small batch; for a large one a
 * group's tile stays in L1 through its gate loop (half of L1d: plans.h). */
#ifndef FL_TILE_BYTES
#define FL_TILE_BYTES fl_plan_tile_bytes(fl_machine_caches())
#endif
static size_t FL_FN(groups_per_product)(size_t rows, size_t U, size_t groups)
{
    size_t gw = FL_TILE_BYTES / (rows * FL_CELL_GATES * U * sizeof(REAL));
    return gw < 1 ? 1 : gw > groups ? groups : gw;
}

/* Row chunks of a batch split over nt threads: one more than threads when
 * each still gets FL_MIN_ROWS_PER_THREAD rows, so that a thread finishing a
 * block always finds a free chunk (see fl_chunks); and steps per block, so
 * that a block is about FL_BLOCK_MACS of products (rows x K x N per step),
 * long against the cost of a claim. */
#ifndef FL_BLOCK_MACS
#define FL_BLOCK_MACS (1u << 22)
#endif
static size_t FL_FN(plan_chunks)(size_t B, int nt, size_t K, size_t N, size_t *steps)
{
    const size_t n = B >= ((size_t)nt + 1) * FL_MIN_ROWS_PER_THREAD ? (size_t)nt + 1 : (size_t)nt;
    const size_t per_step = (B + n - 1) / n * K * N;
    *steps = (FL_BLOCK_MACS + per_step - 1) / per_step;
    return n;
}

/* Work stealing (take_groups) for a unit split whose weights per thread
 * exceed this (a core's L2: plans.h): they do not stay in the core's cache
 * anyway. */
#ifndef FL_STEAL_MIN_BYTES
#define FL_STEAL_MIN_BYTES fl_plan_steal_min_bytes(fl_machine_caches())
#endif

/* The input projection of a small batch.  With few rows the per-step
 * product is bound by the bandwidth its weights stream at (L2, L3 or
 * memory), not by the FMAs.  Its W_ih part does not depend on the
 * recurrence: x_t W_ih^T of a block of xb steps (about FL_XPROJ_ROWS rows)
 * is then one GEMM that reads those weights once per block, and each step
 * streams only W_hh (K = H_out instead of I + H_out) and adds its rows of
 * the block.  How few rows pays depends on where the weights come from: up
 * to 2 rows from beyond L2 (1 MB of packed weights), up to 8 from beyond L3
 * (16 MB); under 1 MB never (it gains little there, and the one-step call
 * below would be slower).  The choice depends on the shape alone (not on
 * threads, nor on T).  A one-step call runs the stacked product instead,
 * with its sum over K blocked at I (ks): bitwise the projection plus the
 * W_hh product, in one pass.  And no element's sum depends on the block it
 * falls in.  So results are bitwise the same for any thread count and
 * however a stream cuts a sequence into calls.  -> steps per block, or 0. */
#ifndef FL_XPROJ_ROWS
#define FL_XPROJ_ROWS 16
#endif
static size_t FL_FN(xproj_steps)(const fl_shape *sh, const FL_FN(blob_layout) *L)
{
    const double bytes = (double)L->K * FL_CELL_GATES * (double)sh->H * sizeof(REAL);
    const size_t most = bytes >= 16e6 ? 8 : bytes >= 1e6 ? 2 : 0;
    return sh->B <= most ? (FL_XPROJ_ROWS + sh->B - 1) / sh->B : 0;
}

/* The thread plan of a forward call. */
typedef struct FL_FN(fwd_plan) {
    int nt;          /* threads */
    int split_batch; /* by batch rows (else hidden units) */
    size_t gw;       /* groups per product */
    size_t chunks;   /* row chunks (batch split; else 0) */
    size_t steps;    /* steps per block of a chunk */
    int steal;       /* unit split with work stealing (take_groups) */
    int joins;       /* unit split that workers may join late (forward_loop) */
    size_t xb;       /* steps per block of the input projection, or 0 */
    size_t ks;       /* the stacked product's sum blocked at this row, or 0 */
} FL_FN(fwd_plan);

static FL_FN(fwd_plan) FL_FN(forward_plan)(const fl_shape *sh, const FL_FN(blob_layout) *L)
{
    FL_FN(fwd_plan) p;
    const size_t K = L->K, N = FL_CELL_GATES * sh->H;
    p.nt = FL_FN(plan_threads)(sh->T, sh->B, sh->H, K, N, L->groups, &p.split_batch);
    /* a shape that uses the projection runs a one-step call (a stream's
     * step) as the stacked product, one pass, with its sum blocked at I:
     * that gives the bits of the projection plus the W_hh product */
    const size_t xb = FL_FN(xproj_steps)(sh, L);
    p.ks = xb ? sh->I : 0;
    p.xb = sh->T > 1 ? xb : 0;
    if (p.xb && p.split_batch) { /* only when forced: the projection needs the unit split */
        p.split_batch = 0;
        p.nt = p.nt < (int)L->groups ? p.nt : (int)L->groups;
    }
    p.steps = 0;
    p.chunks = p.split_batch ? FL_FN(plan_chunks)(sh->B, p.nt, K, N, &p.steps) : 0;
    const size_t rows = p.split_batch ? (sh->B + p.chunks - 1) / p.chunks : sh->B;
    p.gw = FL_FN(groups_per_product)(rows, L->U, L->groups);
    p.steal = FL_HAVE_TAKE && !p.split_batch && p.nt > 1 &&
              K * N * sizeof(REAL) / (size_t)p.nt > FL_STEAL_MIN_BYTES;
    p.joins = !p.split_batch && !p.steal && p.nt > 1 && fl_team_joinable();
    return p;
}

/* Where everything lives in a forward's workspace, for plan p: the
 * bookkeeping first (size_t's: the rows (fl_rows), the row chunks
 * (fl_chunks), the stealing counters), then, 64-byte aligned, the REAL
 * scratch.  The one place both the size and the layout come from. */
typedef struct FL_FN(fwd_workspace) {
    size_t chunks, steal, join, words; /* size_t offsets; words: the bookkeeping */
    size_t xh;                         /* (2, B, K) the input rows [x_t | h_{t-1}] of this step
                                          and the next */
    size_t cstate;                     /* (B, H) c_t */
    size_t rstep;                      /* (B, H) r_t, the projection's input (P > 0 only) */
    size_t tmp;                        /* (nt, B, gates U gw) the threads' product tiles */
    size_t gbias;                      /* (groups gates U) the bias in group layout */
    size_t xproj;                      /* (xb B, groups gates U) the input projection's block */
    size_t xrows;                      /* (nt, xb B, I) its gathered inputs */
    size_t reals;                      /* REAL offsets above are from the aligned start */
    size_t bytes;                      /* the whole workspace, alignment slack included */
} FL_FN(fwd_workspace);

static FL_FN(fwd_workspace)
    FL_FN(forward_workspace_layout)(const fl_shape *sh, const FL_FN(blob_layout) *L,
                                    const FL_FN(fwd_plan) *p)
{
    const size_t B = sh->B, H = sh->H, P = sh->P, nt = (size_t)p->nt;
    const size_t W = L->groups * FL_CELL_GATES * L->U; /* gates of all groups */
    FL_FN(fwd_workspace) w;
    w.chunks = fl_rows_mem(sh);
    w.steal = w.chunks + fl_chunks_mem(p->chunks);
    w.join = w.steal + (p->steal ? nt * FL_CTR_STRIDE : 0);
    w.words = w.join + (p->joins ? 2 * nt : 0);
    w.xh = 0;
    w.cstate = w.xh + 2 * B * L->K;
    w.rstep = w.cstate + B * H;
    w.tmp = w.rstep + (P ? B * H : 0);
    w.gbias = w.tmp + nt * B * FL_CELL_GATES * L->U * p->gw;
    w.xproj = w.gbias + W;
    w.xrows = w.xproj + p->xb * B * W;
    w.reals = w.xrows + p->xb * B * nt * sh->I;
    w.bytes = w.words * sizeof(size_t) + 64 + w.reals * sizeof(REAL);
    return w;
}

static size_t FL_FN(forward_workspace)(const fl_shape *sh)
{
    FL_FN(blob_layout) L = FL_FN(layout)(sh->I, sh->H, sh->P);
    const FL_FN(fwd_plan) p = FL_FN(forward_plan)(sh, &L);
    return FL_FN(forward_workspace_layout)(sh, &L, &p).bytes;
}

/* Copy x_t of rows [lo, hi) of step s to dst + j ld (the x part of the
 * product's input rows: dst = xh, ld = K). */
static void FL_FN(load_x)(const FL_FN(loop) *lp, size_t s, size_t lo, size_t hi, REAL *dst,
                          size_t ld)
{
    const fl_rows *rw = lp->rw;
    const FWD_ARGS *a = lp->fa;
    const size_t I = lp->sh->I;
    for (size_t j = lo; j < hi; j++)
        memcpy(dst + j * ld,
               a->x + FL_ROW_OF(a->x_rows, fl_step_row(rw, lp->sh->reverse, s, j)) * a->ldx,
               I * sizeof(REAL));
}

/* The input projection (xproj_steps) of the block of steps starting at sb,
 * groups [g0, g1): x_t [W_ih]^T of every row of those steps, one GEMM over
 * the I rows of the stacked packed weights, into lp->xproj (row j of step s
 * at row off[s] - off[sb] + j: steps in loop order, as forward_groups reads
 * them).  Rows of x in that order are read in place when they are (forward
 * direction, no row map), else gathered first into the thread's buffer. */
static void FL_FN(project_block)(const FL_FN(loop) *lp, size_t sb, size_t g0, size_t g1, int tid)
{
    const fl_shape *sh = lp->sh;
    const fl_rows *rw = lp->rw;
    const FWD_ARGS *a = lp->fa;
    const size_t I = sh->I, U = lp->L.U, K = lp->L.K;
    const size_t se = sb + lp->xb < sh->T ? sb + lp->xb : sh->T;
    const REAL *A = a->x + rw->off[sb] * a->ldx;
    size_t lda = a->ldx;
    if (g1 <= g0)
        return;
    if (sh->reverse || a->x_rows) {
        REAL *buf = lp->xrows + (size_t)tid * lp->xb * sh->B * I;
        for (size_t s = sb; s < se; s++)
            FL_FN(load_x)(lp, s, 0, fl_batch(rw, s), buf + (rw->off[s] - rw->off[sb]) * I, I);
        A = buf;
        lda = I;
    }
    const size_t GU = FL_CELL_GATES * U; /* columns of a group */
    GEMM_PACKED_LD(rw->off[se] - rw->off[sb], GU * (g1 - g0), I, A, lda, lp->pk_xh + g0 * GU * K,
                   lp->nr * K, 0, (REAL)0, lp->xproj + g0 * GU, lp->L.groups * GU);
}

/* Groups [g, g + ng) of time step s for rows [j0, nb): the tile
 * [x_t | h_{t-1}] [W_ih | W_hh]^T of those groups, then the gate loop (which
 * adds the bias) of each group of each row. */
static void FL_FN(forward_groups)(const FL_FN(loop) *lp, size_t s, size_t j0, size_t nb, size_t g,
                                  size_t ng, REAL *tile)
{
    const fl_shape *sh = lp->sh;
    const fl_rows *rw = lp->rw;
    const FWD_ARGS *a = lp->fa;
    const size_t T = sh->T, B = sh->B, I = sh->I, H = sh->H, P = sh->P;
    const size_t Hout = P ? P : H, GH = FL_CELL_GATES * H, U = lp->L.U, K = lp->L.K;
    const size_t GU = FL_CELL_GATES * U; /* columns of a group */
    const size_t W = GU * lp->gw;        /* tile row stride */
    const int rev = sh->reverse;
    REAL *gates = a->gates, *y = a->y, *cells = a->cells;
    const int train = gates != NULL;
    const size_t nb_next = s + 1 < T ? fl_batch(rw, s + 1) : 0;
    const REAL *xc = lp->xh + (s & 1) * B * K;
    REAL *xn = lp->xh + ((s + 1) & 1) * B * K;
    REAL *acc = tile; /* the product, row j at (j - j0) ldt */
    size_t ldt = W;
    if (lp->xb) { /* h_{t-1} W_hh^T added to this step's rows of the projection */
        ldt = lp->L.groups * GU;
        acc = lp->xproj + (rw->off[s] - rw->off[s - s % lp->xb] + j0) * ldt + g * GU;
        GEMM_PACKED_LD(nb - j0, GU * ng, K - I, xc + j0 * K + I, K,
                       lp->pk_xh + g * GU * K + I * lp->nr, lp->nr * K, 0, (REAL)1, acc, ldt);
    } else { /* the stacked product (its sum blocked at lp->ks, if not 0) */
        GEMM_PACKED_LD(nb - j0, GU * ng, K, xc + j0 * K, K, lp->pk_xh + g * GU * K, lp->nr * K,
                       lp->ks, (REAL)0, tile, W);
    }
    for (size_t j = j0; j < nb; j++) {
        const size_t row = fl_step_row(rw, rev, s, j);
        const int last = j >= nb_next;
        for (size_t gg = g; gg < g + ng; gg++) {
            const size_t u0 = gg * U, nu = H - u0 < U ? H - u0 : U;
            /* r_t: to the next input row's h part (and to y), or, with a
             * projection, to the projection's input */
            REAL *rout = P ? lp->rstep + j * H + u0 : xn + j * K + I + u0;
            REAL *yout = P ? NULL : y + FL_ROW_OF(a->y_rows, row) * a->ldy + u0;
            REAL *cs = lp->cstate + j * H + u0;
            FL_FN(gate_forward)(nu, U, H, acc + (j - j0) * ldt + (gg - g) * GU, lp->gbias + gg * GU,
                                train ? gates + row * GH + u0 : NULL, cs, rout, yout, lp->opts, u0);
            if (cells)
                memcpy(cells + row * H + u0, cs, nu * sizeof(REAL));
            if (last)
                memcpy(a->c_n + j * H + u0, cs, nu * sizeof(REAL));
            if (last && !P)
                memcpy(a->h_n + j * Hout + u0, rout, nu * sizeof(REAL));
        }
    }
}

/* Work stealing in the unit split, for weights too big for a core's L2
 * (lp->steal): the weights come from L3 or memory every step whoever
 * multiplies them, so a thread that has done its own blocks of gw groups
 * takes the blocks another thread has not started, and a step waits less
 * for the slower core.  Thread v's blocks are numbered by its counter
 * (FL_CTR_STRIDE apart), s n_v .. (s + 1) n_v - 1 in step s (fl_take); the
 * barrier that ends a step orders its writes before the next step's reads.
 * -> 1 with the next block [*g, *g + *ng), or 0 when the step has none left. */
static int FL_FN(take_groups)(const FL_FN(loop) *lp, size_t s, int tid, int nth, size_t *g,
                              size_t *ng)
{
    const size_t gw = lp->gw;
    for (int k = 0; k < nth; k++) {
        const int v = (tid + k) % nth; /* my own first */
        size_t lo, hi, i;
        fl_split(lp->L.groups, 1, nth, v, &lo, &hi);
        if (hi > lo &&
            fl_take(lp->steal + (size_t)v * FL_CTR_STRIDE, s, (hi - lo + gw - 1) / gw, &i)) {
            *g = lo + i * gw;
            *ng = hi - *g < gw ? hi - *g : gw;
            return 1;
        }
    }
    return 0;
}

/* Time step s of a thread's share `my` (of its rows, those active at s);
 * tile is the thread's scratch (row j at (j - j0) W).  With the unit split
 * (sync) the threads meet at a barrier before the projection. */
static void FL_FN(forward_step)(const FL_FN(loop) *lp, size_t s, const fl_share *my, REAL *tile,
                                int tid, int nth, size_t *round)
{
    const size_t j0 = my->j0, j1 = my->j1, g0 = my->u0, g1 = my->u1;
    const size_t p0 = my->v0, p1 = my->v1;
    const fl_shape *sh = lp->sh;
    const fl_rows *rw = lp->rw;
    const FWD_ARGS *a = lp->fa;
    const size_t T = sh->T, B = sh->B, I = sh->I, H = sh->H, P = sh->P;
    const size_t Hout = P ? P : H, K = lp->L.K;
    const int rev = sh->reverse, sync = !lp->split_batch;
    REAL *y = a->y;
    const int keep_xh = a->xh != NULL;
    /* my rows of this step: [j0, nb); the product's input rows
     * [x_t | h_{t-1}] are xc, and h_t goes to the h part of xn */
    const size_t nb = fl_batch(rw, s) < j1 ? fl_batch(rw, s) : j1;
    const size_t nb_next = s + 1 < T ? fl_batch(rw, s + 1) : 0;
    const REAL *xc = lp->xh + (s & 1) * B * K;
    REAL *xn = lp->xh + ((s + 1) & 1) * B * K;
    if (keep_xh) { /* keep the input rows for backward */
        size_t lo, hi;
        fl_copy_rows(lp->split_batch, fl_batch(rw, s), j0, j1, nth, tid, &lo, &hi);
        for (size_t j = lo; j < hi; j++)
            memcpy(a->xh + fl_step_row(rw, rev, s, j) * K, xc + j * K, K * sizeof(REAL));
    }
    if (lp->xb && s % lp->xb == 0) { /* the input projection of steps s .. s + xb - 1 */
        FL_FN(project_block)(lp, s, g0, g1, tid);
        if (lp->steal) /* others may take my groups' blocks */
            fl_barrier_wait(lp->bar, round, nth);
    }

    if (nb > j0 && lp->steal) { /* my groups' blocks, then the others' */
        size_t g, ng;
        while (FL_FN(take_groups)(lp, s, tid, nth, &g, &ng))
            FL_FN(forward_groups)(lp, s, j0, nb, g, ng, tile);
    } else if (nb > j0) {
        for (size_t g = g0; g < g1; g += lp->gw)
            FL_FN(forward_groups)(lp, s, j0, nb, g, g1 - g < lp->gw ? g1 - g : lp->gw, tile);
    }
    if (P) { /* h_t = r_t W_hr^T, my columns of it */
        if (sync)
            fl_barrier_wait(lp->bar, round, nth);
        if (p1 > p0 && nb > j0) {
            GEMM_PACKED(nb - j0, p1 - p0, H, lp->rstep + j0 * H, H, lp->pk_hr + p0 * H, (REAL)0,
                        xn + j0 * K + I + p0, K);
            for (size_t j = j0; j < nb; j++) {
                const size_t row = fl_step_row(rw, rev, s, j);
                const REAL *hj = xn + j * K + I + p0;
                const size_t n = (p1 - p0) * sizeof(REAL);
                memcpy(y + FL_ROW_OF(a->y_rows, row) * a->ldy + p0, hj, n);
                if (j >= nb_next)
                    memcpy(a->h_n + j * Hout + p0, hj, n);
            }
        }
    }
    if (nb_next && (keep_xh || !lp->xb)) { /* x_{t+1} of the next step's rows */
        size_t lo, hi;
        fl_copy_rows(lp->split_batch, nb_next, j0, j1, nth, tid, &lo, &hi);
        FL_FN(load_x)(lp, s + 1, lo, hi, xn, K);
    }
}

/* The batch split of a time loop: a thread runs blocks of steps of
 * whichever row chunk fl_chunks gives it, until none is left for it (no
 * barrier: the chunks' rows are independent).  step(lp, k, share, tile, tid,
 * nth, round) runs loop step k. */
typedef void (*FL_FN(step_fn))(const FL_FN(loop) *, size_t, const fl_share *, REAL *, int, int,
                               size_t *);
static void FL_FN(run_chunks)(const FL_FN(loop) *lp, FL_FN(step_fn) step, fl_share *my, REAL *tile,
                              int tid, int nth)
{
    fl_chunks *ch = lp->ch;
    size_t c = (size_t)tid, k0, k1, round = 0;
    while (fl_chunks_claim(ch, &c, &k0, &k1)) {
        my->j0 = ch->lo[c];
        my->j1 = ch->lo[c + 1];
        for (size_t k = k0; k < k1; k++)
            step(lp, k, my, tile, tid, nth, &round);
        fl_chunks_release(ch, c);
    }
}

/* Late joins of the forward's unit split (lp->join; threads.h, joinable
 * jobs).  A worker that takes its tid after the call started joins at a
 * step boundary: at the end of each step the caller admits the workers
 * that have taken a tid since (fl_team_taken: tids 1 .. that, in order) to
 * the next step, storing in join[join_n + w] the barrier count that ends
 * this step and then, with release, the step in join[w] (SIZE_MAX before);
 * the worker waits for its step (or for the caller's end, join[0] = 1, when
 * it came too late), then for that barrier count, and runs from there.  The
 * threads of step s are the caller and the workers admitted at or before s:
 * every thread that runs s computes the same set, since an admission made
 * during s is for s + 1 and is ordered before s's barrier.  Each step splits
 * its work between those threads (rank, n), so until a worker comes its
 * share is run by the others; results do not depend on the split. */
static int FL_FN(step_rank)(const FL_FN(loop) *lp, size_t s, int tid, int nth, int *n)
{
    int rank = 0, count = 1;
    for (int w = 1; w < nth; w++)
        if (fl_word_load(&lp->join[w]) <= s) {
            rank += w < tid;
            count++;
        }
    *n = count;
    return tid ? rank + 1 : 0;
}

/* A worker's wait to be admitted: -> the step it starts at (and its barrier
 * count in *round), or T when the call ended without it. */
static size_t FL_FN(join_wait)(const FL_FN(loop) *lp, int tid, size_t *round)
{
    size_t at;
    while ((at = fl_word_load(&lp->join[tid])) == SIZE_MAX) {
        if (fl_word_load(&lp->join[0])) {
            at = fl_word_load(&lp->join[tid]);
            if (at == SIZE_MAX)
                return lp->sh->T;
            break;
        }
        fl_spin_pause();
    }
    *round = lp->join[lp->join_n + (size_t)tid];
    while (fl_word_load(&lp->bar->count) < *round)
        fl_spin_pause();
    return at;
}

/* The caller admits the workers that came (tids admitted + 1 .. taken) to
 * step s, whose threads start at barrier count `round`. -> admitted now. */
static int FL_FN(join_admit)(const FL_FN(loop) *lp, size_t s, size_t round, int nth, int admitted)
{
    const int taken = s < fl_forced_join_step() ? 0 : fl_team_taken();
    for (int w = admitted + 1; w <= taken && w < nth; w++) {
        lp->join[lp->join_n + (size_t)w] = round;
        fl_word_store(&lp->join[w], s);
        admitted = w;
    }
    return admitted;
}

static void FL_FN(forward_loop)(const FL_FN(loop) *lp, int tid, int nth)
{
    const size_t T = lp->sh->T;
    REAL *tile = lp->tmp + (size_t)tid * lp->sh->B * FL_CELL_GATES * lp->L.U * lp->gw;
    fl_share my = {0, lp->sh->B, 0, lp->L.groups, 0, lp->sh->P, 0, 0};
    size_t round = 0, s0 = 0;
    if (lp->split_batch) {
        FL_FN(run_chunks)(lp, FL_FN(forward_step), &my, tile, tid, nth);
        return;
    }
    /* split by units: my groups (and projection columns), every row, a
     * barrier per step */
    const int joins = lp->join && nth > 1;
    int admitted = 0, rank = tid, n = nth;
    if (joins && tid > 0 && (s0 = FL_FN(join_wait)(lp, tid, &round)) >= T)
        return;
    if (joins && tid == 0)
        admitted = FL_FN(join_admit)(lp, 0, 0, nth, 0);
    for (size_t s = s0; s < T; s++) {
        if (joins || s == s0) {
            if (joins)
                rank = FL_FN(step_rank)(lp, s, tid, nth, &n);
            fl_split(lp->L.groups, 1, n, rank, &my.u0, &my.u1);
            fl_split(lp->sh->P, lp->nr, n, rank, &my.v0, &my.v1);
        }
        FL_FN(forward_step)(lp, s, &my, tile, rank, n, &round);
        if (s + 1 < T) { /* after the last step: the region's end */
            if (joins && tid == 0 && admitted < nth - 1)
                admitted = /* (a barrier of one thread counts nothing) */
                    FL_FN(join_admit)(lp, s + 1, round + (n > 1 ? (size_t)n : 0), nth, admitted);
            fl_barrier_wait(lp->bar, &round, n);
        }
    }
    if (joins && tid == 0)
        fl_word_store(&lp->join[0], 1);
}

static void FL_FN(forward_job)(void *lp, int tid, int nth)
{
    FL_FN(forward_loop)((const FL_FN(loop) *)lp, tid, nth);
}

/* A forward call on the cell with its options (NULL for cell_lstm.h). */
static int FL_FN(forward_with)(const fl_shape *sh, const FWD_ARGS *a, const void *opts)
{
    const size_t B = sh->B, I = sh->I, H = sh->H, P = sh->P;
    const size_t Hout = P ? P : H;
    if (!a->packed || (a->xh && !a->gates))
        return FL_EINVAL;
    /* the plan fixes the scratch size: the caller's workspace when it is
     * big enough, else malloc */
    const FL_FN(blob_layout) L = FL_FN(layout)(I, H, P);
    const FL_FN(fwd_plan) plan = FL_FN(forward_plan)(sh, &L);
    const int nt = plan.nt;
    const FL_FN(fwd_workspace) wl = FL_FN(forward_workspace_layout)(sh, &L, &plan);
    const int own = !(a->workspace && a->workspace_bytes >= wl.bytes);
    char *mem = own ? malloc(wl.bytes) : a->workspace;
    if (!mem)
        return FL_ENOMEM;
    FL_FN(loop) lp;
    fl_rows rw;
    int status = FL_FN(loop_init)(&lp, &rw, sh, (size_t *)mem);
    if (status != FL_OK) {
        if (own)
            free(mem);
        return status;
    }
    lp.fa = a;
    lp.opts = opts;
    lp.split_batch = plan.split_batch;
    lp.gw = plan.gw;
    const size_t U = L.U, K = L.K;
    fl_barrier bar;
    fl_barrier_init(&bar, nt);
    lp.bar = &bar;
    fl_chunks ch;
    if (plan.split_batch) {
        fl_chunks_init(&ch, &rw, sh->T, plan.chunks, plan.steps, 0, (size_t *)mem + wl.chunks);
        lp.ch = &ch;
    }
    if (plan.steal) {
        lp.steal = (size_t *)mem + wl.steal;
        memset(lp.steal, 0, (size_t)nt * FL_CTR_STRIDE * sizeof(size_t));
    }
    lp.join = NULL;
    if (plan.joins) { /* not closed, nobody admitted */
        lp.join = (size_t *)mem + wl.join;
        lp.join_n = (size_t)nt;
        lp.join[0] = 0;
        for (size_t t = 1; t < (size_t)nt; t++)
            lp.join[t] = SIZE_MAX;
    }

    /* the REAL scratch (none is allocated inside the loop) */
    uintptr_t at = (uintptr_t)((size_t *)mem + wl.words);
    REAL *ws = (REAL *)((at + 63) & ~(uintptr_t)63);
    lp.xh = ws + wl.xh;
    lp.cstate = ws + wl.cstate;
    lp.rstep = P ? ws + wl.rstep : NULL;
    lp.tmp = ws + wl.tmp;
    REAL *gb = ws + wl.gbias; /* the bias in group layout, 0 in padding */
    memset(gb, 0, (wl.xproj - wl.gbias) * sizeof(REAL));
    lp.xb = plan.xb;
    lp.ks = plan.ks;
    lp.xproj = ws + wl.xproj;
    lp.xrows = ws + wl.xrows;
    if (a->bias)
        for (size_t g = 0; g < lp.L.groups; g++)
            for (size_t q = 0; q < FL_CELL_GATES; q++)
                memcpy(gb + (g * FL_CELL_GATES + q) * U, a->bias + q * H + g * U,
                       (H - g * U < U ? H - g * U : U) * sizeof(REAL));
    lp.gbias = gb;
    /* the first step's input rows [x_0 | h0] */
    FL_FN(load_x)(&lp, 0, 0, B, lp.xh, K);
    for (size_t j = 0; j < B; j++)
        for (size_t k = 0; k < Hout; k++)
            lp.xh[j * K + I + k] = a->h0 ? a->h0[j * Hout + k] : (REAL)0;
    for (size_t k = 0; k < B * H; k++)
        lp.cstate[k] = a->c0 ? a->c0[k] : (REAL)0;
    lp.pk_xh = a->packed + lp.L.xh_fwd;
    lp.pk_hr = P ? a->packed + lp.L.hr_fwd : NULL;

    /* a small job (threads.h): a short call, or a loop of short steps
     * that meets at a barrier every step */
    const double macs = (double)sh->T * (double)B * (double)K * (double)(FL_CELL_GATES * H);
    const int small = macs < FL_SMALL_CALL_MACS ||
                      (!plan.split_batch && B * K * FL_CELL_GATES * H < FL_SHORT_STEP_MACS);
    /* the batch split is joinable as it is (a worker that comes late takes
     * the chunks left), the unit split with lp.join */
    fl_team_run(FL_FN(forward_job), &lp, nt,
                (small ? FL_JOB_SMALL : 0) | (macs < FL_WAKE_MIN_MACS ? FL_JOB_TINY : 0) |
                    (plan.split_batch || plan.joins ? FL_JOB_JOINABLE : 0));
    if (!plan.split_batch)
        fl_note_contention(&bar, sh->T);

    fl_rows_free(&rw);
    if (own)
        free(mem);
    return FL_OK;
}

/* Step k of the backward loop (time step s = T - 1 - k) of a thread's share
 * `my` (of its rows, those active at s).  With the unit split (sync) the
 * threads meet at a barrier after the gate gradients (and, with a
 * projection, before them). */
static void FL_FN(backward_step)(const FL_FN(loop) *lp, size_t k, const fl_share *my, REAL *tile,
                                 int tid, int nth, size_t *round)
{
    (void)tile; /* the forward's signature (run_chunks) */
    (void)tid;
    const fl_shape *sh = lp->sh;
    const fl_rows *rw = lp->rw;
    const BWD_ARGS *a = lp->ba;
    const size_t T = sh->T, B = sh->B, I = sh->I, H = sh->H, P = sh->P;
    const size_t Hout = P ? P : H, GH = FL_CELL_GATES * H;
    const size_t j0 = my->j0, j1 = my->j1, u0 = my->u0, u1 = my->u1;
    const size_t v0 = my->v0, v1 = my->v1, x0 = my->x0, x1 = my->x1;
    const int rev = sh->reverse, sync = !lp->split_batch;
    REAL *gates = a->gates;
    const REAL *cells = a->cells, *dy = a->dy;
    const REAL beta_dx = a->dx_accumulate ? (REAL)1 : (REAL)0;
    const size_t s = T - 1 - k;
    const size_t nb = fl_batch(rw, s) < j1 ? fl_batch(rw, s) : j1; /* rows [j0, nb) */
    const REAL *dcur = lp->dhbuf + (k & 1) * B * Hout;
    REAL *dnext = lp->dhbuf + ((k + 1) & 1) * B * Hout;
    REAL *dg = lp->dgstep + (k & 1) * B * GH;

    if (P) { /* dh of this step = upstream + carried, then dr = dh W_hr */
        for (size_t j = j0; j < nb; j++) {
            const size_t row = fl_step_row(rw, rev, s, j);
            for (size_t p = v0; p < v1; p++) {
                REAL v = dy[row * a->lddy + p] + dcur[j * Hout + p];
                lp->dhp[j * P + p] = v;
                lp->dhtot[row * P + p] = v;
            }
        }
        if (sync)
            fl_barrier_wait(lp->bar, round, nth);
        if (u1 > u0 && nb > j0)
            GEMM_PACKED(nb - j0, u1 - u0, P, lp->dhp + j0 * P, P, lp->pk_hr + u0 * P, (REAL)0,
                        lp->drstep + j0 * H + u0, H);
    }
    for (size_t j = j0; j < nb; j++) {
        const size_t t = rev ? rw->len[j] - 1 - s : s;
        const size_t row = fl_row(rw, t, j);
        const int first = rev ? t == rw->len[j] - 1 : t == 0;
        const REAL *cp = first ? (a->c0 ? a->c0 + j * H : lp->zeros)
                               : cells + fl_row(rw, rev ? t + 1 : t - 1, j) * H;
        /* d r_t = upstream dy + carried dh (P == 0), or dh W_hr (P) */
        const REAL *dyr = P ? lp->drstep + j * H : dy + row * a->lddy;
        const REAL *dcr = P ? lp->zeros : dcur + j * Hout;
        const REAL *cr = cells + row * H;
        if (P && u1 > u0) /* the projection's input r_t, for dW_hr after the loop */
            FL_FN(cell_output)(u1 - u0, H, gates + row * GH + u0, cr + u0,
                               lp->rstore + row * H + u0, lp->opts, u0);
        if (u1 > u0)
            FL_FN(gate_backward)(u1 - u0, H, dyr + u0, dcr + u0, cr + u0, cp + u0,
                                 gates + row * GH + u0, dg + j * GH + u0, lp->dcstate + j * H + u0,
                                 lp->opts, u0);
    }
    if (sync)
        fl_barrier_wait(lp->bar, round, nth);
    if (v1 > v0 && nb > j0) /* dh_{t-1} = dgates W_hh for my columns */
        GEMM_PACKED(nb - j0, v1 - v0, GH, dg + j0 * GH, GH, lp->pk_hh + v0 * GH, (REAL)0,
                    dnext + j0 * Hout + v0, Hout);
    if (x1 > x0 && nb > j0) { /* dx_t = dgates W_ih for my columns */
        if (!lp->dxstep) {    /* the step's rows are consecutive in dx */
            const size_t row0 = fl_step_row(rw, rev, s, j0);
            GEMM_PACKED(nb - j0, x1 - x0, GH, dg + j0 * GH, GH, lp->pk_ih + x0 * GH, beta_dx,
                        a->dx + row0 * a->lddx + x0, a->lddx);
        } else { /* ragged reverse: through a buffer, then to each row */
            GEMM_PACKED(nb - j0, x1 - x0, GH, dg + j0 * GH, GH, lp->pk_ih + x0 * GH, (REAL)0,
                        lp->dxstep + j0 * I + x0, I);
            for (size_t j = j0; j < nb; j++) {
                const REAL *src = lp->dxstep + j * I + x0;
                REAL *dst = a->dx + fl_step_row(rw, rev, s, j) * a->lddx + x0;
                for (size_t c = 0; c < x1 - x0; c++)
                    dst[c] = beta_dx * dst[c] + src[c];
            }
        }
    }
    /* rows >= nb have not started yet (backward runs from each
     * sequence's end): both buffers still hold their dh_n */
}

static void FL_FN(backward_loop)(const FL_FN(loop) *lp, int tid, int nth)
{
    const size_t T = lp->sh->T, H = lp->sh->H, P = lp->sh->P;
    const size_t Hout = P ? P : H, I = lp->dx_in_loop ? lp->sh->I : 0;
    /* my rows, hidden units, columns of dh (H_out) and of dx (I): as
     * forward_loop */
    fl_share my = {0, lp->sh->B, 0, H, 0, Hout, 0, I};
    size_t round = 0;
    if (lp->split_batch) {
        FL_FN(run_chunks)(lp, FL_FN(backward_step), &my, NULL, tid, nth);
        return;
    }
    fl_split(H, lp->nr, nth, tid, &my.u0, &my.u1);
    fl_split(Hout, lp->nr, nth, tid, &my.v0, &my.v1);
    fl_split(I, lp->nr, nth, tid, &my.x0, &my.x1);
    /* No barrier between steps (unlike forward_loop), because what a step
     * reads first is what this thread wrote:
     *   - step k+1 starts on dh_t = dhbuf[(k+1) & 1] in its own columns
     *     only: its units (P == 0; units and dh columns are then the same
     *     split of H) or its projection columns (P > 0, before the step's
     *     first barrier), exactly the columns its dh product of step k
     *     wrote; dcstate and the gates' rows, in its units, likewise;
     *   - what is read across threads is ordered by the barriers inside a
     *     step: dgates (dgstep, all 4H columns, read by every thread's dh
     *     and dx products) after the barrier that follows the gate
     *     gradients, and dhp (all P columns, read by the dr product) after
     *     the projection's barrier;
     *   - the buffers those shared reads use are not overwritten until every
     *     thread is past them: step k+1 writes the other dgstep buffer, step
     *     k+2 (which writes this one again) can only start once every thread
     *     has passed step k+1's barrier, i.e. finished step k; step k+1
     *     writes dhp only after step k's gate barrier, which every thread
     *     reaches after its dr product of step k. */
    for (size_t k = 0; k < T; k++)
        FL_FN(backward_step)(lp, k, &my, NULL, tid, nth, &round);
}

/* dx = dgates W_ih per step needs FL_MIN_DX_ROWS rows per thread and a W_ih
 * of at most FL_MAX_DX_LOOP_BYTES (twice a core's L2: plans.h): a larger one
 * comes from L3 every step, and one GEMM after the loop is faster. */
#ifndef FL_MIN_DX_ROWS
#define FL_MIN_DX_ROWS 8
#endif
#ifndef FL_MAX_DX_LOOP_BYTES
#define FL_MAX_DX_LOOP_BYTES fl_plan_dx_loop_max_bytes(fl_machine_caches())
#endif

/* Without a stored xh, the weight gradients gather the rows [x_t | h_{t-1}]
 * from the forward's x, y and h0, FL_DW_ROWS rows at a time, and run one
 * product per chunk, so the scratch is a chunk, not all rows.  The chunks
 * start at multiples of the GEMM's K block (KC = 256 in every variant and
 * dtype, gemm_<isa>.c): each K block of a call sums from zero and is added
 * to C (alpha = beta = 1), and the bias sums run through the rows in order,
 * so the chunked products give bitwise the one product over all rows. */
#ifndef FL_DW_ROWS
#define FL_DW_ROWS 256
#endif

/* Rows [r0, r1) of [x_t | h_{t-1}] (K = I + H_out each) into buf: what the
 * forward's xh would hold.  *t: the step of row r0 or an earlier one (a
 * cursor that only moves forward, from 0). */
static void FL_FN(gather_xh)(const FL_FN(loop) *lp, size_t r0, size_t r1, size_t *t, REAL *buf)
{
    const fl_shape *sh = lp->sh;
    const fl_rows *rw = lp->rw;
    const BWD_ARGS *a = lp->ba;
    const size_t I = sh->I, Hout = sh->P ? sh->P : sh->H, K = I + Hout;
    const int rev = sh->reverse;
    for (size_t r = r0; r < r1; r++) {
        while (r >= rw->off[*t + 1])
            (*t)++;
        const size_t s = *t, j = r - rw->off[s];
        const int first = rev ? s == rw->len[j] - 1 : s == 0;
        const REAL *h =
            first ? (a->h0 ? a->h0 + j * Hout : lp->zeros)
                  : a->y + FL_ROW_OF(a->y_rows, fl_row(rw, rev ? s + 1 : s - 1, j)) * a->ldy;
        REAL *dst = buf + (r - r0) * K;
        memcpy(dst, a->x + FL_ROW_OF(a->x_rows, r) * a->ldx, I * sizeof(REAL));
        memcpy(dst + I, h, Hout * sizeof(REAL));
    }
}

static void FL_FN(backward_job)(void *lp, int tid, int nth)
{
    FL_FN(backward_loop)((const FL_FN(loop) *)lp, tid, nth);
}

/* A backward call on the cell with its options (NULL for cell_lstm.h). */
static int FL_FN(backward_with)(const fl_shape *sh, const BWD_ARGS *a, const void *opts)
{
    const size_t T = sh->T, B = sh->B, I = sh->I, H = sh->H, P = sh->P;
    const size_t Hout = P ? P : H, GH = FL_CELL_GATES * H;
    if (!a->w_ih || !a->w_hh || (P && !a->w_hr) || (!a->xh && (!a->x || !a->y)))
        return FL_EINVAL;
    FL_FN(loop) lp;
    fl_rows rw;
    int status = FL_FN(loop_init)(&lp, &rw, sh, NULL);
    if (status != FL_OK)
        return status;
    /* the gathered rows of a chunk of the weight gradients (without xh) */
    const size_t K = I + Hout, n_chunk = rw.rows < FL_DW_ROWS ? rw.rows : FL_DW_ROWS;
    REAL *xh_chunk = NULL;
    if (!a->xh) {
        if (K > SIZE_MAX / sizeof(REAL) / n_chunk ||
            !(xh_chunk = malloc(n_chunk * K * sizeof(REAL)))) {
            fl_rows_free(&rw);
            return FL_ENOMEM;
        }
    }
    lp.ba = a;
    lp.opts = opts;
    const size_t rows = rw.rows;
    const int nt = FL_FN(plan_threads)(T, B, H, GH, Hout, (H + lp.nr - 1) / lp.nr, &lp.split_batch);
    fl_barrier bar;
    fl_barrier_init(&bar, nt);
    lp.bar = &bar;
    /* per step: dh (K = 4H, N = H_out) and maybe dx (N = I); blocks are
     * counted on dh alone */
    size_t steps = 0;
    const size_t chunks = lp.split_batch ? FL_FN(plan_chunks)(B, nt, GH, Hout, &steps) : 0;

    const size_t n_dh = 2 * B * Hout, n_dc = B * H, n_dg = 2 * B * GH, n_zero = H;
    const size_t n_dhp = P ? B * P : 0, n_dr = P ? B * H : 0;
    const size_t n_tot = P ? rows * P : 0, n_rs = P ? rows * H : 0;
    /* dx = dgates W_ih: per step, while dgates is in cache, unless each
     * thread's step has too few rows to be worth streaming W_ih again or
     * W_ih does not stay in cache between steps */
    lp.dx_in_loop = a->dx && (lp.split_batch ? B / chunks : B) >= FL_MIN_DX_ROWS &&
                    GH * I * sizeof(REAL) <= FL_MAX_DX_LOOP_BYTES;
    const size_t n_dx = lp.dx_in_loop && sh->reverse && sh->batch_sizes ? B * I : 0;
    /* the per-step products' packed weights: dh = dgates W_hh, dx = dgates
     * W_ih (per step only), dr = dh W_hr (P) */
    const size_t n_phh = PACKED_SIZE(GH, Hout), n_pih = lp.dx_in_loop ? PACKED_SIZE(GH, I) : 0;
    const size_t n_phr = P ? PACKED_SIZE(P, H) : 0;
    REAL *ws =
        malloc((n_dh + n_dc + n_dg + n_zero + n_dhp + n_dr + n_tot + n_rs + n_dx) * sizeof(REAL));
    size_t *ch_mem = malloc(fl_chunks_mem(chunks) * sizeof(size_t));
    REAL *pk = NULL;
    if (n_pih <= SIZE_MAX - n_phh && n_phr <= SIZE_MAX - n_phh - n_pih &&
        n_phh + n_pih + n_phr <= SIZE_MAX / sizeof(REAL))
        pk = malloc((n_phh + n_pih + n_phr) * sizeof(REAL));
    if (!ws || !ch_mem || !pk) {
        free(ws);
        free(ch_mem);
        free(pk);
        free(xh_chunk);
        fl_rows_free(&rw);
        return FL_ENOMEM;
    }
    fl_chunks ch;
    if (lp.split_batch) {
        fl_chunks_init(&ch, &rw, T, chunks, steps, 1, ch_mem);
        lp.ch = &ch;
    }
    lp.dhbuf = ws;
    lp.dcstate = lp.dhbuf + n_dh;
    lp.dgstep = lp.dcstate + n_dc;
    REAL *zeros = lp.dgstep + n_dg; /* c0 = 0, or no carried dh (P) */
    memset(zeros, 0, n_zero * sizeof(REAL));
    lp.zeros = zeros;
    lp.dhp = P ? zeros + n_zero : NULL;
    lp.drstep = P ? lp.dhp + n_dhp : NULL;
    lp.dhtot = P ? lp.drstep + n_dr : NULL;
    lp.rstore = P ? lp.dhtot + n_tot : NULL;
    lp.dxstep = n_dx ? zeros + n_zero + n_dhp + n_dr + n_tot + n_rs : NULL;
    for (size_t k = 0; k < B * Hout; k++)
        lp.dhbuf[k] = lp.dhbuf[B * Hout + k] = a->dh_n ? a->dh_n[k] : (REAL)0;
    for (size_t k = 0; k < B * H; k++)
        lp.dcstate[k] = a->dc_n ? a->dc_n[k] : (REAL)0;
    lp.pk_hh = pk;
    PACK_B(0, GH, Hout, a->w_hh, Hout, pk);
    lp.pk_ih = n_pih ? pk + n_phh : NULL;
    if (n_pih)
        PACK_B(0, GH, I, a->w_ih, I, pk + n_phh);
    lp.pk_hr = P ? pk + n_phh + n_pih : NULL;
    if (P)
        PACK_B(0, P, H, a->w_hr, H, pk + n_phh + n_pih);

    fl_team_run(FL_FN(backward_job), &lp, nt,
                (double)T * (double)B * (double)GH * (double)(Hout + (lp.dx_in_loop ? I : 0)) <
                        FL_SMALL_CALL_MACS ||
                    (!lp.split_batch && B * GH * Hout < FL_SHORT_STEP_MACS));
    if (!lp.split_batch)
        fl_note_contention(&bar, T);

    memcpy(a->dh0, lp.dhbuf + (T & 1) * B * Hout, B * Hout * sizeof(REAL));
    memcpy(a->dc0, lp.dcstate, B * H * sizeof(REAL));

    /* weight gradients (and dx, when not per step): GEMMs over all rows.
     * [dW_ih | dW_hh] = dgates^T [x | h_{t-1}] is one product over the
     * stored xh, split by columns into the two matrices, and the bias
     * gradient (column sums of dgates, rows ascending) comes from its
     * packing of dgates: dgates is read once, not three times */
    REAL *dG = a->gates;
    if (a->xh) {
        GEMM_SPLIT(1, 0, GH, K, rows, (REAL)1, dG, GH, a->xh, K, (REAL)1, I, a->dw_ih, I, a->dw_hh,
                   Hout, a->dbias);
    } else { /* the same product in chunks of gathered rows (FL_DW_ROWS) */
        size_t t = 0;
        for (size_t r0 = 0; r0 < rows; r0 += n_chunk) {
            const size_t n = rows - r0 < n_chunk ? rows - r0 : n_chunk;
            FL_FN(gather_xh)(&lp, r0, r0 + n, &t, xh_chunk);
            GEMM_SPLIT(1, 0, GH, K, n, (REAL)1, dG + r0 * GH, GH, xh_chunk, K, (REAL)1, I, a->dw_ih,
                       I, a->dw_hh, Hout, a->dbias);
        }
    }
    if (a->dx && !lp.dx_in_loop)
        GEMM(0, 0, rows, I, GH, (REAL)1, dG, GH, a->w_ih, I, a->dx_accumulate ? (REAL)1 : (REAL)0,
             a->dx, a->lddx);
    if (P)
        GEMM(1, 0, P, H, rows, (REAL)1, lp.dhtot, P, lp.rstore, H, (REAL)1, a->dw_hr, H);
    FL_FN(cell_grads)(sh, &rw, a, lp.zeros, lp.opts);
    free(ws);
    free(ch_mem);
    free(pk);
    free(xh_chunk);
    fl_rows_free(&rw);
    return FL_OK;
}

static int FL_FN(forward)(const fl_shape *sh, const FWD_ARGS *a)
{
    return FL_FN(forward_with)(sh, a, NULL);
}

static int FL_FN(backward)(const fl_shape *sh, const BWD_ARGS *a)
{
    return FL_FN(backward_with)(sh, a, NULL);
}

#undef FL_FN
#undef GEMM
#undef GEMM_PACKED
#undef GEMM_PACKED_LD
#undef GEMM_SPLIT
#undef PACK_B
#undef PACKED_SIZE
#undef GEMM_NR
#undef SIGMOID
#undef TANH
#undef FWD_ARGS
#undef BWD_ARGS
