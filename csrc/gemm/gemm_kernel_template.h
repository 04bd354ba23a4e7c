/* GEMM kernels, written once for every ISA and dtype.
 *
 * A variant file (gemm_generic.c, gemm_avx2.c, gemm_avx512.c) defines the
 * vector primitives and blocking parameters below, then includes this file
 * once per dtype.  Everything here is static; the variant file exports a
 * fl_gemm_impl table of the FL_FN(...) functions.  No OpenMP in here: the
 * dispatcher splits fl_gemm_* over threads (see gemm_internal.h for the
 * numerics that make every split give identical bits).
 *
 * Parameters (all #undef'd at the end of this file):
 *   FL_ISA, FL_SFX     name tokens: functions are fl_<ISA>_<name>_<SFX>
 *   FL_T               element type (float or double)
 *   FL_V, FL_VW        vector type and its lane count
 *   FL_NV              vectors per packed row of a panel: NR = FL_VW*FL_NV
 *   FL_MR              rows of the register tile (FL_MR*FL_NV accumulators)
 *   FL_NPMAX           small-M tiles: rows*panels <= FL_NPMAX (accumulator
 *                      budget FL_NPMAX*FL_NV for M below FL_MR)
 *   FL_KC              K blocking of fl_gemm_* (fixes the summation order);
 *                      the row and column blocks MC and NC (multiples of MR
 *                      and NR) derive from the caches at run time (plans.h)
 *   FL_VLOAD(p) FL_VSTORE(p, v)  unaligned load / store of FL_VW elements
 *   FL_VBCAST(p)       all lanes = *p          FL_VSET1(x)  all lanes = x
 *   FL_VZERO()         all lanes 0             FL_VMUL(a, b)  a*b
 *   FL_VFMA(a, b, c)   a*b + c (fused where the ISA has it)
 *
 * Panel layout (shared by fl_pack_b_* and the packed A/B blocks of the
 * blocked GEMM): panel p of a kc x n matrix holds columns [p*NR, (p+1)*NR)
 * as kc rows of NR contiguous values, zero beyond n, at offset p*NR*kc.
 * Packed A blocks are the transpose: MR-row panels, element (i, k) at
 * panel[k*MR + i], zero rows beyond m.
 *
 * docs/kernel-design.md explains the design and holds the measurements
 * behind the thresholds. */

#ifndef FL_GEMM_TEMPLATE_ONCE
#define FL_GEMM_TEMPLATE_ONCE
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "cpuinfo.h"
#include "plans.h"
#include "threads.h"

#define FL_CAT3_(a, b, c, d, e) a##b##c##d##e
#define FL_CAT3(a, b, c, d, e) FL_CAT3_(a, b, c, d, e)
#define FL_FN(name) FL_CAT3(fl_, FL_ISA, _##name##_, FL_SFX, )

#if defined(__GNUC__) || defined(__clang__)
#define FL_INLINE static inline __attribute__((always_inline))
#define FL_NOINLINE static __attribute__((noinline))
#define FL_PRAGMA_(x) _Pragma(#x)
#define FL_UNROLL(n) FL_PRAGMA_(GCC unroll n)
#define FL_PREFETCH(p) __builtin_prefetch(p)
#define FL_PREFETCHW(p) __builtin_prefetch((p), 1)
#elif defined(_MSC_VER)
#define FL_INLINE static __forceinline
#define FL_NOINLINE static __declspec(noinline)
#define FL_UNROLL(n)
#define FL_PREFETCH(p) ((void)(p))
#define FL_PREFETCHW(p) ((void)(p))
#else
#define FL_INLINE static inline
#define FL_NOINLINE static
#define FL_UNROLL(n)
#define FL_PREFETCH(p) ((void)(p))
#define FL_PREFETCHW(p) ((void)(p))
#endif

#define FL_MIN(a, b) ((a) < (b) ? (a) : (b))
/* The epilogue loops of a tile: STORE once per C vector of the tile, with
 * cp its address and acc[i][p][h] its accumulator (beta == 0 must not read
 * cp; the other cases load it). */
#define FL_TILE_EPILOGUE(STORE)                                         \
    FL_UNROLL(16)                                                       \
    for (i = 0; i < mt; i++) {                                          \
        FL_UNROLL(16)                                                   \
        for (p = 0; p < np; p++) {                                      \
            FL_UNROLL(8)                                                \
            for (h = 0; h < FL_NV; h++) {                               \
                FL_T *cp = c + (size_t)i * ldc + p * FL_NR + h * FL_VW; \
                STORE;                                                  \
            }                                                           \
        }                                                               \
    }

/* Rows of the register tile are dispatched by a switch up to this many. */
#define FL_MR_LIMIT 16
/* Rows of a transposed A block prefetched ahead while packing. */
#define FL_PF_ROWS 8
/* fl_gemm_packed_*: packed weights of more bytes than this (a core's L2,
 * plans.h) are fetched a chunk ahead, when that takes each row tile at most
 * FL_PF_BURST cache lines (see there) */
#define FL_FAR_BYTES ((double)fl_plan_far_bytes(fl_machine_caches()))
#define FL_PF_BURST 32
#define FL_LINE 64
#endif /* FL_GEMM_TEMPLATE_ONCE */

#if FL_MR > FL_MR_LIMIT || FL_MR < 1
#error "FL_MR out of range"
#endif

#define FL_NR (FL_VW * FL_NV)
#define FL_COUT FL_CAT3(fl_cout_, FL_SFX, , , )
/* The row and column blocks of fl_gemm_* on this machine (plans.h). */
#define FL_MC fl_plan_gemm_mc(fl_machine_caches(), FL_MR, FL_KC, sizeof(FL_T))
#define FL_NC fl_plan_gemm_nc(fl_machine_caches(), FL_NR, FL_KC, sizeof(FL_T))
/* Panels per tile for a tile of m < MR rows (m >= 1). */
#define FL_NPT(m) ((m) >= FL_NPMAX ? 1 : FL_NPMAX / (m))

/* The register tile: C[mt x np*NR] (+)= alpha * A[mt x K] * B[K x np*NR].
 * A(i, k) is a[i*ars + k*acs]; panel p of B starts at b + p*bps with row k
 * at +k*NR.  mt, np and acs are compile-time constants at every call site,
 * so the loops unroll completely and acc lives in registers.  Each lane of
 * acc sums its products in increasing k, starting from zero. */
FL_INLINE void FL_FN(tile)(const int mt, const int np, const size_t acs, size_t K, const FL_T *a,
                           size_t ars, const FL_T *b, size_t bps, FL_T alpha, FL_T beta, FL_T *c,
                           size_t ldc)
{
    FL_V acc[FL_MR_LIMIT][FL_NPMAX][FL_NV];
    const FL_T *arow[FL_MR_LIMIT];
    int i, p, h;
    size_t k;

    FL_UNROLL(16)
    for (i = 0; i < mt; i++) {
        arow[i] = a + (size_t)i * ars;
        FL_UNROLL(16)
        for (p = 0; p < np; p++) {
            /* C of a big GEMM lives in DRAM: start fetching the tile now,
             * not at the epilogue */
            FL_PREFETCHW(c + (size_t)i * ldc + p * FL_NR);
            FL_PREFETCHW(c + (size_t)i * ldc + p * FL_NR + FL_NR - 1);
            FL_UNROLL(8)
            for (h = 0; h < FL_NV; h++)
                acc[i][p][h] = FL_VZERO();
        }
    }
    FL_UNROLL(2)
    for (k = 0; k < K; k++) {
        FL_UNROLL(16)
        for (p = 0; p < np; p++) {
            FL_V bv[FL_NV];
            const FL_T *bk = b + (size_t)p * bps + k * FL_NR;
            FL_UNROLL(8)
            for (h = 0; h < FL_NV; h++)
                bv[h] = FL_VLOAD(bk + h * FL_VW);
            FL_UNROLL(16)
            for (i = 0; i < mt; i++) {
                const FL_V av = FL_VBCAST(arow[i] + k * acs);
                FL_UNROLL(8)
                for (h = 0; h < FL_NV; h++)
                    acc[i][p][h] = FL_VFMA(av, bv[h], acc[i][p][h]);
            }
        }
    }
    {
        const FL_V va = FL_VSET1(alpha);
        if (beta == (FL_T)0) {
            FL_TILE_EPILOGUE(FL_VSTORE(cp, FL_VMUL(va, acc[i][p][h])));
        } else if (beta == (FL_T)1) {
            FL_TILE_EPILOGUE(FL_VSTORE(cp, FL_VFMA(va, acc[i][p][h], FL_VLOAD(cp))));
        } else {
            const FL_V vb = FL_VSET1(beta);
            FL_TILE_EPILOGUE(FL_VSTORE(cp, FL_VFMA(va, acc[i][p][h], FL_VMUL(vb, FL_VLOAD(cp)))));
        }
    }
}

/* Full MR x NR tile of the blocked GEMM, A and B both packed. */
FL_NOINLINE void FL_FN(kernel_packed_a)(size_t kc, const FL_T *a, const FL_T *b, FL_T alpha,
                                        FL_T beta, FL_T *c, size_t ldc)
{
    FL_FN(tile)(FL_MR, 1, FL_MR, kc, a, 1, b, 0, alpha, beta, c, ldc);
}

/* Tile of the packed path: mt rows of a row-major A (lda), np panels of
 * stride bps; np is 1 or FL_NPT(mt).  alpha is 1. */
FL_NOINLINE void FL_FN(kernel_rows)(int mt, int np, size_t K, const FL_T *a, size_t lda,
                                    const FL_T *b, size_t bps, FL_T beta, FL_T *c, size_t ldc)
{
#define FL_ROWS_CASE(m)                                                                 \
    case m:                                                                             \
        if ((m) <= FL_MR) {                                                             \
            if (np == 1)                                                                \
                FL_FN(tile)(m, 1, 1, K, a, lda, b, bps, (FL_T)1, beta, c, ldc);         \
            else                                                                        \
                FL_FN(tile)(m, FL_NPT(m), 1, K, a, lda, b, bps, (FL_T)1, beta, c, ldc); \
        }                                                                               \
        break;
    switch (mt) {
        FL_ROWS_CASE(1)
        FL_ROWS_CASE(2)
        FL_ROWS_CASE(3)
        FL_ROWS_CASE(4)
        FL_ROWS_CASE(5)
        FL_ROWS_CASE(6)
        FL_ROWS_CASE(7)
        FL_ROWS_CASE(8)
        FL_ROWS_CASE(9)
        FL_ROWS_CASE(10)
        FL_ROWS_CASE(11)
        FL_ROWS_CASE(12)
        FL_ROWS_CASE(13)
        FL_ROWS_CASE(14)
        FL_ROWS_CASE(15)
        FL_ROWS_CASE(16)
    default:
        break;
    }
#undef FL_ROWS_CASE
}

/* Pack the kc x n block of op(B) whose (0,0) is at B into NR-wide panels
 * (kc, n >= 1): a block of the blocked GEMM, or the whole op(B) of
 * fl_pack_b_* (the variant table's pack_b). */
static void FL_FN(pack_b)(int transB, size_t kc, size_t n, const FL_T *B, size_t ldb, FL_T *dst)
{
    size_t jr, j, k;
    for (jr = 0; jr < n; jr += FL_NR) {
        const size_t nv = FL_MIN((size_t)FL_NR, n - jr);
        if (!transB) {
            for (k = 0; k < kc; k++) {
                const FL_T *s = B + k * ldb + jr;
                FL_T *d = dst + k * FL_NR;
                if (nv == FL_NR) { /* constant size: a few vector moves */
                    memcpy(d, s, sizeof(FL_T) * FL_NR);
                    continue;
                }
                for (j = 0; j < nv; j++)
                    d[j] = s[j];
                for (; j < FL_NR; j++)
                    d[j] = (FL_T)0;
            }
        } else {
            for (j = 0; j < nv; j++) {
                const FL_T *s = B + (jr + j) * ldb;
                for (k = 0; k < kc; k++)
                    dst[k * FL_NR + j] = s[k];
            }
            for (; j < FL_NR; j++)
                for (k = 0; k < kc; k++)
                    dst[k * FL_NR + j] = (FL_T)0;
        }
        dst += kc * FL_NR;
    }
}

/* Pack the m x kc block of op(A) whose (0,0) is at A into MR-row panels;
 * sums (or NULL): sums[i] += op(A)(i, k) for k = 0 .. kc-1 in order.
 * transA: op(A) row i is column i of the stored A, so each stored row k is
 * read once, contiguously, and scattered over the panels (a panel-by-panel
 * walk would stride through memory kc times per panel). */
static void FL_FN(pack_a_block)(int transA, size_t m, size_t kc, const FL_T *A, size_t lda,
                                FL_T *dst, FL_T *restrict sums)
{
    const size_t mfull = m - m % FL_MR, mv = m % FL_MR;
    size_t ir, i, k;
    if (!transA) {
        for (ir = 0; ir < m; ir += FL_MR) {
            const size_t mt = FL_MIN((size_t)FL_MR, m - ir);
            for (i = 0; i < mt; i++) {
                const FL_T *s = A + (ir + i) * lda;
                for (k = 0; k < kc; k++)
                    dst[k * FL_MR + i] = s[k];
                if (sums)
                    for (k = 0; k < kc; k++)
                        sums[ir + i] += s[k];
            }
            for (; i < FL_MR; i++)
                for (k = 0; k < kc; k++)
                    dst[k * FL_MR + i] = (FL_T)0;
            dst += kc * FL_MR;
        }
        return;
    }
    for (k = 0; k < kc; k++) {
        const FL_T *s = A + k * lda;
        FL_T *d = dst + k * FL_MR;
        /* the hardware prefetcher does not follow short rows at a large
         * stride: fetch the row FL_PF_ROWS ahead ourselves */
        if (k + FL_PF_ROWS < kc)
            for (i = 0; i < m; i += 64 / sizeof(FL_T))
                FL_PREFETCH(s + FL_PF_ROWS * lda + i);
        for (ir = 0; ir < mfull; ir += FL_MR, d += kc * FL_MR)
            memcpy(d, s + ir, sizeof(FL_T) * FL_MR);
        if (sums)
            for (i = 0; i < m; i++)
                sums[i] += s[i];
        if (mv) {
            for (i = 0; i < mv; i++)
                d[i] = s[mfull + i];
            for (; i < FL_MR; i++)
                d[i] = (FL_T)0;
        }
    }
}

/* Element (i, j) of the C described by c: column j of the concatenation
 * [c1 | c2] (split at c->n1). */
#define FL_CAT_C(c, i, j) \
    ((j) < (c)->n1 ? (c)->c1 + (i) * (c)->ldc1 + (j) : (c)->c2 + (i) * (c)->ldc2 + ((j) - (c)->n1))

/* Rows [ic, ic + mc) of the (jc, pc) block of the blocked GEMM: pack them
 * of op(A) (kc deep, from row pc; their sums when c->sums and jc == 0), then
 * every register tile against the packed B block bbuf (nc columns from jc).
 * edge: a zeroed MR x NR scratch tile. */
static void FL_FN(gemm_rows)(int transA, size_t ic, size_t mc, size_t jc, size_t nc, size_t pc,
                             size_t kc, FL_T alpha, FL_T beta_k, const FL_T *A, size_t lda,
                             const FL_COUT *c, FL_T *abuf, const FL_T *bbuf, FL_T *edge)
{
    size_t jr, ir, i, j;
    FL_FN(pack_a_block)(transA, mc, kc, transA ? A + pc * lda + ic : A + ic * lda + pc, lda, abuf,
                        jc == 0 && c->sums ? c->sums + ic : NULL);
    for (jr = 0; jr < nc; jr += FL_NR) {
        const size_t nv = FL_MIN((size_t)FL_NR, nc - jr);
        const size_t col = jc + jr;
        const FL_T *bp = bbuf + jr * kc;
        /* the packed B block is in L3 (or further): each tile of this
         * column prefetches its share of the next B micro-panel */
        const FL_T *bnext = jr + FL_NR < nc ? bp + kc * FL_NR : NULL;
        const size_t pf_share = (kc * FL_NR * FL_MR + mc - 1) / mc;
        /* the tile's columns in one of the two matrices */
        FL_T *cbase = col + nv <= c->n1 ? c->c1 + col : col >= c->n1 ? c->c2 + (col - c->n1) : NULL;
        const size_t ldc = col + nv <= c->n1 ? c->ldc1 : c->ldc2;
        for (ir = 0; ir < mc; ir += FL_MR) {
            const size_t mv = FL_MIN((size_t)FL_MR, mc - ir);
            const size_t row = ic + ir;
            const FL_T *ap = abuf + ir * kc;
            if (bnext != NULL) {
                const size_t x0 = ir / FL_MR * pf_share;
                const size_t x1 = FL_MIN(x0 + pf_share, kc * FL_NR);
                size_t x;
                for (x = x0; x < x1; x += 64 / sizeof(FL_T))
                    FL_PREFETCH(bnext + x);
            }
            if (mv == FL_MR && nv == FL_NR && cbase != NULL) {
                FL_FN(kernel_packed_a)(kc, ap, bp, alpha, beta_k, cbase + row * ldc, ldc);
                continue;
            }
            if (beta_k != (FL_T)0)
                for (i = 0; i < mv; i++)
                    for (j = 0; j < nv; j++)
                        edge[i * FL_NR + j] = *FL_CAT_C(c, row + i, col + j);
            FL_FN(kernel_packed_a)(kc, ap, bp, alpha, beta_k, edge, FL_NR);
            for (i = 0; i < mv; i++)
                for (j = 0; j < nv; j++)
                    *FL_CAT_C(c, row + i, col + j) = edge[i * FL_NR + j];
        }
    }
}

/* Blocked GEMM (Goto/BLIS loop order: NC columns, KC depth, MC rows, then
 * NR x MR register tiles) with caller-provided pack buffers of
 * mc_cap x min(K, KC) and min(K, KC) x nc_cap elements.  C is described
 * by c (an fl_cout_*, gemm_internal.h: two column blocks and row sums); the
 * row sums of op(A) are taken while the first column block packs A, so every
 * element of A is added once. */
static void FL_FN(gemm_blocked)(int transA, int transB, size_t M, size_t N, size_t K, FL_T alpha,
                                const FL_T *A, size_t lda, const FL_T *B, size_t ldb, FL_T beta,
                                const FL_COUT *c, FL_T *abuf, size_t mc_cap, FL_T *bbuf,
                                size_t nc_cap)
{
    FL_T edge[FL_MR * FL_NR]; /* scratch tile for partial tiles */
    size_t jc, pc, ic;

    memset(edge, 0, sizeof edge);
    for (jc = 0; jc < N; jc += nc_cap) {
        const size_t nc = FL_MIN(nc_cap, N - jc);
        for (pc = 0; pc < K; pc += FL_KC) {
            const size_t kc = FL_MIN((size_t)FL_KC, K - pc);
            const FL_T beta_k = pc == 0 ? beta : (FL_T)1;
            FL_FN(pack_b)(transB, kc, nc, transB ? B + jc * ldb + pc : B + pc * ldb + jc, ldb,
                          bbuf);
            for (ic = 0; ic < M; ic += mc_cap)
                FL_FN(gemm_rows)(transA, ic, FL_MIN(mc_cap, M - ic), jc, nc, pc, kc, alpha, beta_k,
                                 A, lda, c, abuf, bbuf, edge);
        }
    }
}

/* Used only when malloc fails: same arithmetic, one register tile of
 * packed A and one panel of packed B at a time, on the stack.  Kept out of
 * line so the common path does not reserve this stack. */
FL_NOINLINE void FL_FN(gemm_small_buffers)(int transA, int transB, size_t M, size_t N, size_t K,
                                           FL_T alpha, const FL_T *A, size_t lda, const FL_T *B,
                                           size_t ldb, FL_T beta, const FL_COUT *c)
{
    FL_T abuf[FL_MR * FL_KC], bbuf[FL_KC * FL_NR];
    FL_FN(gemm_blocked)(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, c, abuf, FL_MR, bbuf,
                        FL_NR);
}

/* Pack buffers of the blocked GEMM, 64-byte aligned: one B block of
 * min(K, KC) x nc_cap (*bbuf) and n A blocks of mc_cap x min(K, KC), block i
 * at *bbuf + *bsize + i * *asize.  -> the pointer to free, or NULL. */
static void *FL_FN(pack_buffers)(size_t K, size_t mc_cap, size_t nc_cap, int n, FL_T **bbuf,
                                 size_t *bsize, size_t *asize)
{
    const size_t kc = FL_MIN(K, (size_t)FL_KC);
    void *raw;
    *bsize = (kc * nc_cap + 15) / 16 * 16; /* keeps the A blocks aligned */
    *asize = (mc_cap * kc + 15) / 16 * 16;
    raw = malloc((*bsize + (size_t)n * *asize) * sizeof(FL_T) + 64);
    if (raw != NULL)
        *bbuf = (FL_T *)((uintptr_t)((char *)raw + 63) & ~(uintptr_t)63);
    return raw;
}

/* Serial fl_gemm_split_*: M, N, K >= 1. */
static void FL_FN(gemm)(int transA, int transB, size_t M, size_t N, size_t K, FL_T alpha,
                        const FL_T *A, size_t lda, const FL_T *B, size_t ldb, FL_T beta,
                        const FL_COUT *c)
{
    const size_t mc = FL_MC, nc = FL_NC;
    const size_t mc_cap = FL_MIN(mc, (M + FL_MR - 1) / FL_MR * FL_MR);
    const size_t nc_cap = FL_MIN(nc, (N + FL_NR - 1) / FL_NR * FL_NR);
    size_t nb, na;
    FL_T *bbuf;
    void *raw = FL_FN(pack_buffers)(K, mc_cap, nc_cap, 1, &bbuf, &nb, &na);

    if (raw == NULL) {
        FL_FN(gemm_small_buffers)(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, c);
        return;
    }
    FL_FN(gemm_blocked)(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, c, bbuf + nb, mc_cap,
                        bbuf, nc_cap);
    free(raw);
}

/* Rows per block of A that the threads of gemm_team take: at most FL_MC,
 * and few enough that each thread gets about FL_TEAM_BLOCKS of them. */
#ifndef FL_TEAM_BLOCKS
#define FL_TEAM_BLOCKS 3
#endif

/* fl_gemm_split_* on nt threads that share one packed B (BLIS style), for a
 * product whose M is split (M, N, K >= 1).  Per (NC, KC) block of B the
 * threads pack its panels between them into one buffer, meet, take blocks
 * of rows of A from a shared counter (so a faster core takes more of them:
 * on a shared or hybrid CPU one core is often much slower for a whole call,
 * and a fixed half each would wait for it), and meet again before the next
 * block is packed.  Each C element still gets its K chunks in order, each
 * from one thread, so the result is bitwise the serial one.  The threads are
 * the team's (threads.h; `small`: see fl_team_run).  -> 0, or -1 (nothing
 * done) when the buffers cannot be allocated or the build has no atomics. */
/* What the threads of one gemm_team call share. */
typedef struct FL_FN(team_job) {
    int transA, transB;
    size_t M, N, K, lda, ldb, mc_cap, nc_cap, nblk, nb, na;
    FL_T alpha, beta;
    const FL_T *A, *B;
    const FL_COUT *c;
    FL_T *bbuf;
    fl_barrier bar;
    size_t ctr;
} FL_FN(team_job);

static void FL_FN(team_part)(void *job, int tid, int nth)
{
    FL_FN(team_job) *j = (FL_FN(team_job) *)job;
    const size_t M = j->M, N = j->N, K = j->K, mc_cap = j->mc_cap, nc_cap = j->nc_cap;
    FL_T *bbuf = j->bbuf, *abuf = j->bbuf + j->nb + (size_t)tid * j->na;
    FL_T edge[FL_MR * FL_NR];
    size_t jc, pc, b, it = 0, round = 0;
    memset(edge, 0, sizeof edge);
    for (jc = 0; jc < N; jc += nc_cap) {
        const size_t nc = FL_MIN(nc_cap, N - jc);
        const size_t npan = (nc + FL_NR - 1) / FL_NR;
        const size_t p0 = npan * (size_t)tid / (size_t)nth;
        const size_t p1 = npan * (size_t)(tid + 1) / (size_t)nth;
        for (pc = 0; pc < K; pc += FL_KC, it++) {
            const size_t kc = FL_MIN((size_t)FL_KC, K - pc);
            const FL_T beta_k = pc == 0 ? j->beta : (FL_T)1;
            if (p1 > p0) { /* my panels of the shared B block */
                const size_t j0 = jc + p0 * FL_NR;
                FL_FN(pack_b)(j->transB, kc, FL_MIN(p1 * FL_NR, nc) - p0 * FL_NR,
                              j->transB ? j->B + j0 * j->ldb + pc : j->B + pc * j->ldb + j0, j->ldb,
                              bbuf + p0 * FL_NR * kc);
            }
            fl_barrier_wait(&j->bar, &round, nth);
            while (fl_take(&j->ctr, it, j->nblk, &b))
                FL_FN(gemm_rows)(j->transA, b * mc_cap, FL_MIN(mc_cap, M - b * mc_cap), jc, nc, pc,
                                 kc, j->alpha, beta_k, j->A, j->lda, j->c, abuf, bbuf, edge);
            fl_barrier_wait(&j->bar, &round, nth); /* before B is packed again */
        }
    }
}

static int FL_FN(gemm_team)(int transA, int transB, size_t M, size_t N, size_t K, FL_T alpha,
                            const FL_T *A, size_t lda, const FL_T *B, size_t ldb, FL_T beta,
                            const FL_COUT *c, int nt, int small)
{
    FL_FN(team_job) j = {.transA = transA,
                         .transB = transB,
                         .M = M,
                         .N = N,
                         .K = K,
                         .lda = lda,
                         .ldb = ldb,
                         .alpha = alpha,
                         .beta = beta,
                         .A = A,
                         .B = B,
                         .c = c}; /* the rest zero */
    if (!FL_HAVE_TAKE)            /* its threads take blocks through fl_take */
        return -1;
    const size_t per = (M + (size_t)nt * FL_TEAM_BLOCKS - 1) / ((size_t)nt * FL_TEAM_BLOCKS);
    const size_t mc = FL_MC, nc = FL_NC;
    j.mc_cap = FL_MIN(mc, (per + FL_MR - 1) / FL_MR * FL_MR);
    j.nc_cap = FL_MIN(nc, (N + FL_NR - 1) / FL_NR * FL_NR);
    j.nblk = (M + j.mc_cap - 1) / j.mc_cap;
    void *raw = FL_FN(pack_buffers)(K, j.mc_cap, j.nc_cap, nt, &j.bbuf, &j.nb, &j.na);
    if (raw == NULL)
        return -1;
    fl_barrier_init(&j.bar, nt);
    fl_team_run(FL_FN(team_part), &j, nt, small);
    free(raw);
    return 0;
}

/* Rows of the K chunk that starts at k0: chunks of FL_KC rows from 0, and
 * again from ks when 0 < ks < K (see fl_gemm_packed_ld_* in gemm.h). */
FL_INLINE size_t FL_FN(chunk_rows)(size_t k0, size_t ks, size_t K)
{
    return FL_MIN((size_t)FL_KC, (k0 < ks ? ks : K) - k0);
}

/* fl_gemm_packed_*: C[M x N] = A * P + beta*C, M, N, K >= 1; panel j of P
 * starts at P + j*ldp (ldp >= NR*K: P may be rows [k0, k0 + K) of a packed
 * matrix of more rows) and K chunks restart at ks (see fl_gemm_packed_ld_*
 * in gemm.h).
 * Columns go in groups of FL_NPMAX panels, and K in chunks of FL_KC so that
 * one panel chunk (KC x NR) stays in L1 while every full MR-row tile sweeps
 * it; the M % MR leftover rows then take wider tiles (np panels at once) so
 * that small M (e.g. M = 1) still keeps enough independent accumulators in
 * flight.  The last, partial panel goes through a scratch tile, so C is
 * written only in its N columns.  Every element sums its K chunks in order
 * (beta for the first, then accumulating), whatever M or the column range. */
static void FL_FN(gemm_packed)(size_t M, size_t N, size_t K, const FL_T *A, size_t lda,
                               const FL_T *P, size_t ldp, size_t ks, FL_T beta, FL_T *C, size_t ldc)
{
    const size_t panel = ldp;
    const size_t nfull = N / FL_NR, rem = N % FL_NR;
    /* Rows in tiles of MR and a tail, or, when the tail is short but M
     * splits into tiles of at least FL_NPMAX rows each, in equal tiles
     * (M = 16 with MR = 6: 6 + 5 + 5, not 6 + 6 + 4; a 4-row tile has too
     * few accumulators to keep the FMA units busy). */
    const size_t ntiles = (M + FL_MR - 1) / FL_MR;
    const int even = M > FL_MR && M % FL_MR != 0 && M / ntiles >= FL_NPMAX;
    const size_t mfull = even ? M : M - M % FL_MR;
    const int mtail = even ? 0 : (int)(M % FL_MR);
    const size_t nptail = mtail ? (size_t)FL_NPT(mtail) : 1;
    /* Weights beyond a core's L2 come from L3 or DRAM, and the hardware
     * prefetcher does not run far ahead of the first tile that reads a
     * panel chunk: the tiles of each chunk fetch the next chunk, each its
     * share, so the whole chunk time hides its latency.  With few tiles the
     * shares are bursts that stall on the core's outstanding misses, so only
     * when each tile's share is at most FL_PF_BURST lines. */
    const size_t ntile_full = even ? ntiles : mfull / FL_MR;
    const size_t chunk_lines = FL_MIN((size_t)FL_KC, K) * FL_NR * sizeof(FL_T) / FL_LINE;
    const int far = ntile_full > 0 && chunk_lines <= ntile_full * FL_PF_BURST &&
                    (double)K * (double)N * sizeof(FL_T) > FL_FAR_BYTES;
    size_t g, p, i, j, k0, k1;

    for (g = 0; g < nfull; g += FL_NPMAX) {
        const size_t gend = FL_MIN(g + FL_NPMAX, nfull);
        for (k0 = 0; k0 < K; k0 = k1) {
            const size_t kc = FL_FN(chunk_rows)(k0, ks, K);
            k1 = k0 + kc;
            const FL_T beta_k = k0 == 0 ? beta : (FL_T)1;
            const FL_T *Pk = P + k0 * FL_NR, *Ak = A + k0;
            for (p = g; p < gend; p++) {
                size_t t = 0, mt;
                /* the chunk after this one, as (panel, first K row): the
                 * group's next panel, the group's next K chunk, or the
                 * next group's first */
                size_t pn = p + 1, kn = k0;
                if (pn == gend) {
                    pn = g;
                    kn = k1;
                    if (kn >= K) {
                        pn = gend;
                        kn = 0;
                    }
                }
                const FL_T *next = far && pn < nfull ? P + pn * panel + kn * FL_NR : NULL;
                const size_t lines =
                    next ? FL_FN(chunk_rows)(kn, ks, K) * FL_NR * sizeof(FL_T) / FL_LINE : 0;
                const size_t share = next ? (lines + ntile_full - 1) / ntile_full : 0;
                for (i = 0; i < mfull; i += mt, t++) {
                    mt = even ? M / ntiles + (t < M % ntiles) : (size_t)FL_MR;
                    if (next != NULL) {
                        const size_t l0 = t * share, l1 = FL_MIN(l0 + share, lines);
                        size_t l;
                        for (l = l0; l < l1; l++)
                            FL_PREFETCH((const char *)next + l * FL_LINE);
                    }
                    FL_FN(kernel_rows)((int)mt, 1, kc, Ak + i * lda, lda, Pk + p * panel, panel,
                                       beta_k, C + i * ldc + p * FL_NR, ldc);
                }
            }
            if (mtail) {
                const FL_T *Am = Ak + mfull * lda;
                FL_T *Cm = C + mfull * ldc;
                for (p = g; p + nptail <= gend; p += nptail)
                    FL_FN(kernel_rows)(mtail, (int)nptail, kc, Am, lda, Pk + p * panel, panel,
                                       beta_k, Cm + p * FL_NR, ldc);
                for (; p < gend; p++)
                    FL_FN(kernel_rows)(mtail, 1, kc, Am, lda, Pk + p * panel, panel, beta_k,
                                       Cm + p * FL_NR, ldc);
            }
        }
    }
    if (rem) {
        FL_T edge[FL_MR * FL_NR];
        const FL_T *pp = P + nfull * panel;
        memset(edge, 0, sizeof edge);
        for (i = 0; i < M; i += FL_MR) {
            const size_t mv = FL_MIN((size_t)FL_MR, M - i);
            FL_T *cp = C + i * ldc + nfull * FL_NR;
            size_t r;
            if (beta != (FL_T)0)
                for (r = 0; r < mv; r++)
                    for (j = 0; j < rem; j++)
                        edge[r * FL_NR + j] = cp[r * ldc + j];
            for (k0 = 0; k0 < K; k0 = k1) {
                k1 = k0 + FL_FN(chunk_rows)(k0, ks, K);
                FL_FN(kernel_rows)((int)mv, 1, k1 - k0, A + i * lda + k0, lda, pp + k0 * FL_NR,
                                   panel, k0 == 0 ? beta : (FL_T)1, edge, FL_NR);
            }
            for (r = 0; r < mv; r++)
                for (j = 0; j < rem; j++)
                    cp[r * ldc + j] = edge[r * FL_NR + j];
        }
    }
}

#undef FL_NR
#undef FL_NPT
#undef FL_CAT_C
#undef FL_COUT
#undef FL_SFX
#undef FL_T
#undef FL_V
#undef FL_VW
#undef FL_NV
#undef FL_MR
#undef FL_NPMAX
#undef FL_KC
#undef FL_MC
#undef FL_NC
#undef FL_VLOAD
#undef FL_VSTORE
#undef FL_VBCAST
#undef FL_VSET1
#undef FL_VZERO
#undef FL_VMUL
#undef FL_VFMA
