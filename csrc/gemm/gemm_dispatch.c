/* The public GEMM functions (gemm.h): pick one ISA variant once, and split
 * fl_gemm_* over the thread team (threads.h).
 *
 * The split is over rows (M) or columns (N) of C, never over K, so every
 * element keeps the summation order fixed by the variant's K blocking and
 * the result is bitwise the same for any thread count (gemm_internal.h). */
#include "gemm.h"
#include "gemm_internal.h"
#include "isa.h"
#include "threads.h"

#include <stdlib.h>
#include <string.h>

/* Below this many multiply-adds one thread is faster than waking others;
 * below FL_SMALL_GEMM_WORK a product is a small job for the team (it runs
 * on the workers that are awake: see fl_team_run in threads.h). */
#define FL_PARALLEL_MIN_WORK (1.0 * (1 << 20))
#define FL_SMALL_GEMM_WORK (1.0 * (1 << 22))
#define FL_MIN_SIZE(a, b) ((a) < (b) ? (a) : (b))

/* ---- variant choice ----------------------------------------------------- */
typedef struct isa_entry {
    const char *name;
    const fl_gemm_impl *(*impl)(void); /* NULL when built without the flags */
    int (*cpu_runs)(void);
} isa_entry;

#define FL_ISA_ENTRY(isa) {#isa, fl_gemm_impl_##isa, fl_cpu_runs_##isa},
static const isa_entry isas[] = {FL_FOR_EACH_ISA(FL_ISA_ENTRY)};
#define FL_N_ISAS (sizeof isas / sizeof isas[0])

static const isa_entry *isa_named(const char *name)
{
    for (size_t i = 0; name != NULL && i < FL_N_ISAS; i++)
        if (strcmp(name, isas[i].name) == 0)
            return &isas[i];
    return NULL;
}

const fl_gemm_impl *fl_gemm_impl_compiled(const char *name)
{
    const isa_entry *e = isa_named(name);
    return e ? e->impl() : NULL;
}

const fl_gemm_impl *fl_gemm_impl_by_name(const char *name)
{
    const isa_entry *e = isa_named(name);
    return e && e->cpu_runs() ? e->impl() : NULL;
}

static const fl_gemm_impl *choose_variant(void)
{
    const fl_gemm_impl *impl = fl_gemm_impl_by_name(getenv("FASTLSTM_ISA"));
    for (size_t i = FL_N_ISAS; impl == NULL && i > 0; i--) /* best first */
        impl = fl_gemm_impl_by_name(isas[i - 1].name);
    return impl;
}

/* Every thread that races here computes the same pointer, so a plain
 * store would do; the atomics only keep sanitizers quiet. */
static const fl_gemm_impl *fl_active = NULL;

const fl_gemm_impl *fl_gemm_active(void)
{
#if defined(__GNUC__) || defined(__clang__)
    const fl_gemm_impl *impl = __atomic_load_n(&fl_active, __ATOMIC_ACQUIRE);
    if (impl == NULL) {
        impl = choose_variant();
        __atomic_store_n(&fl_active, impl, __ATOMIC_RELEASE);
    }
#else
    const fl_gemm_impl *impl = fl_active;
    if (impl == NULL) {
        impl = choose_variant();
        fl_active = impl;
    }
#endif
    return impl;
}

const char *fl_gemm_init(void) { return fl_gemm_active()->name; }

size_t fl_gemm_nr_s(void) { return fl_gemm_active()->nr_s; }
size_t fl_gemm_nr_d(void) { return fl_gemm_active()->nr_d; }

static size_t packed_size(size_t K, size_t N, size_t nr) { return (N + nr - 1) / nr * nr * K; }
size_t fl_packed_size_s(size_t K, size_t N) { return packed_size(K, N, fl_gemm_nr_s()); }
size_t fl_packed_size_d(size_t K, size_t N) { return packed_size(K, N, fl_gemm_nr_d()); }

/* ---- one body for both dtypes ------------------------------------------- */
/* C = beta*C for the cases with nothing to multiply (K == 0, alpha == 0);
 * beta == 0 writes zeros without reading C.  The sums of op(A) still come
 * out (an empty sum for K == 0). */
#define FL_DEFINE_SCALE(SFX, T)                                                                    \
    static void scale_part_##SFX(size_t M, size_t N, T beta, T *C, size_t ldc)                     \
    {                                                                                              \
        size_t i, j;                                                                               \
        if (beta == (T)1)                                                                          \
            return;                                                                                \
        for (i = 0; i < M; i++)                                                                    \
            for (j = 0; j < N; j++)                                                                \
                C[i * ldc + j] = beta == (T)0 ? (T)0 : beta * C[i * ldc + j];                      \
    }                                                                                              \
    static void no_product_##SFX(int transA, size_t M, size_t N, size_t K, const T *A, size_t lda, \
                                 T beta, const fl_cout_##SFX *c)                                   \
    {                                                                                              \
        size_t i, k;                                                                               \
        scale_part_##SFX(M, c->n1, beta, c->c1, c->ldc1);                                          \
        if (c->n1 < N)                                                                             \
            scale_part_##SFX(M, N - c->n1, beta, c->c2, c->ldc2);                                  \
        if (c->sums)                                                                               \
            for (i = 0; i < M; i++)                                                                \
                for (k = 0; k < K; k++)                                                            \
                    c->sums[i] += transA ? A[k * lda + i] : A[i * lda + k];                        \
    }

/* The dimension with more register tiles is split.  Rows go to the
 * variant's team product (one packed B shared by the threads, blocks of
 * rows taken dynamically: gemm_team in gemm_kernel_template.h).  Columns,
 * or rows when that cannot allocate its buffers, go in chunks that each
 * pack their own copy of the other operand, so one chunk per thread is the
 * least traffic (more chunks repack a large operand more often).  A chunk
 * of rows takes its rows of both C matrices and of the sums; a chunk of
 * columns its columns of C1 and / or C2, and only the first chunk the sums
 * (every chunk reads all of A). */
/* clang-format off */
#define FL_DEFINE_SPLIT_JOB(SFX, T)                                          \
    typedef struct split_job_##SFX {                                         \
        const fl_gemm_impl *impl;                                            \
        int transA, transB, split_m;                                         \
        size_t M, N, K, lda, ldb, tiles, unit, extent, nch;                  \
        T alpha, beta;                                                       \
        const T *A, *B;                                                      \
        const fl_cout_##SFX *c;                                              \
    } split_job_##SFX;                                                       \
    static void split_part_##SFX(void *job, int tid, int nth)                \
    {                                                                        \
        const split_job_##SFX *j = (const split_job_##SFX *)job;             \
        const fl_cout_##SFX *c = j->c;                                       \
        size_t ch;                                                           \
        for (ch = (size_t)tid; ch < j->nch; ch += (size_t)nth) {             \
            const size_t x0 = j->tiles * ch / j->nch * j->unit;              \
            const size_t x1 = FL_MIN_SIZE(                                   \
                j->tiles * (ch + 1) / j->nch * j->unit, j->extent);          \
            fl_cout_##SFX cc = *c;                                           \
            if (x1 <= x0)                                                    \
                continue;                                                    \
            if (j->split_m) {                                                \
                if (c->n1 > 0)                                               \
                    cc.c1 = c->c1 + x0 * c->ldc1;                            \
                if (c->n1 < j->N)                                            \
                    cc.c2 = c->c2 + x0 * c->ldc2;                            \
                if (c->sums)                                                 \
                    cc.sums = c->sums + x0;                                  \
                j->impl->gemm_##SFX(j->transA, j->transB, x1 - x0, j->N,     \
                                    j->K, j->alpha,                          \
                                    j->transA ? j->A + x0                    \
                                              : j->A + x0 * j->lda,          \
                                    j->lda, j->B, j->ldb, j->beta, &cc);     \
            } else {                                                         \
                cc.n1 = x0 >= c->n1 ? 0 : FL_MIN_SIZE(c->n1, x1) - x0;       \
                cc.c1 = x0 < c->n1 ? c->c1 + x0 : NULL;                      \
                cc.c2 = x1 > c->n1                                           \
                            ? c->c2 + (x0 > c->n1 ? x0 - c->n1 : 0)          \
                            : NULL;                                          \
                cc.sums = x0 == 0 ? c->sums : NULL;                          \
                j->impl->gemm_##SFX(j->transA, j->transB, j->M, x1 - x0,     \
                                    j->K, j->alpha, j->A, j->lda,            \
                                    j->transB ? j->B + x0 * j->ldb           \
                                              : j->B + x0,                   \
                                    j->ldb, j->beta, &cc);                   \
            }                                                                \
        }                                                                    \
    }

#define FL_PARALLEL_GEMM(SFX, T)                                             \
    if (nt > 1 && !fl_in_team() &&                                          \
        (double)M * (double)N * (double)K >= FL_PARALLEL_MIN_WORK) {         \
        const size_t mr = impl->mr_##SFX, nr = impl->nr_##SFX;               \
        const size_t mtiles = (M + mr - 1) / mr, ntiles = (N + nr - 1) / nr; \
        const int split_m = mtiles >= ntiles;                                \
        const size_t tiles = split_m ? mtiles : ntiles;                      \
        const int small =                                                    \
            (double)M * (double)N * (double)K < FL_SMALL_GEMM_WORK;          \
        if (tiles >= 2 && split_m &&                                         \
            impl->team_##SFX(transA, transB, M, N, K, alpha, A, lda, B, ldb, \
                             beta, c, nt, small) == 0)                       \
            return;                                                          \
        if (tiles >= 2) {                                                    \
            split_job_##SFX j = {                                            \
                .impl = impl, .transA = transA, .transB = transB,            \
                .split_m = split_m, .M = M, .N = N, .K = K, .lda = lda,      \
                .ldb = ldb, .tiles = tiles, .unit = split_m ? mr : nr,       \
                .extent = split_m ? M : N,                                   \
                .nch = FL_MIN_SIZE(tiles, (size_t)nt), .alpha = alpha,       \
                .beta = beta, .A = A, .B = B, .c = c};                       \
            fl_team_run(split_part_##SFX, &j, (int)j.nch, small);            \
            return;                                                          \
        }                                                                    \
    }
/* clang-format on */

#define FL_DEFINE_GEMM(SFX, T)                                                                     \
    FL_DEFINE_SCALE(SFX, T)                                                                        \
    void fl_gemm_split_##SFX##_with(const fl_gemm_impl *impl, int nthreads, int transA,            \
                                    int transB, size_t M, size_t N, size_t K, T alpha, const T *A, \
                                    size_t lda, const T *B, size_t ldb, T beta, size_t n1, T *C1,  \
                                    size_t ldc1, T *C2, size_t ldc2, T *sums)                      \
    {                                                                                              \
        int nt = nthreads >= 1 ? nthreads : fl_get_num_threads();                                  \
        fl_cout_##SFX cout_, *c = &cout_;                                                          \
        cout_.c1 = C1;                                                                             \
        cout_.ldc1 = ldc1;                                                                         \
        cout_.n1 = n1 < N ? n1 : N;                                                                \
        cout_.c2 = C2;                                                                             \
        cout_.ldc2 = ldc2;                                                                         \
        cout_.sums = sums;                                                                         \
        if (M == 0)                                                                                \
            return;                                                                                \
        if (N == 0 || K == 0 || alpha == (T)0) {                                                   \
            no_product_##SFX(transA, M, N, K, A, lda, beta, c);                                    \
            return;                                                                                \
        }                                                                                          \
        FL_PARALLEL_GEMM(SFX, T)                                                                   \
        impl->gemm_##SFX(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, c);                 \
    }                                                                                              \
    void fl_gemm_split_##SFX(int transA, int transB, size_t M, size_t N, size_t K, T alpha,        \
                             const T *A, size_t lda, const T *B, size_t ldb, T beta, size_t n1,    \
                             T *C1, size_t ldc1, T *C2, size_t ldc2, T *sums)                      \
    {                                                                                              \
        fl_gemm_split_##SFX##_with(fl_gemm_active(), 0, transA, transB, M, N, K, alpha, A, lda, B, \
                                   ldb, beta, n1, C1, ldc1, C2, ldc2, sums);                       \
    }                                                                                              \
    void fl_gemm_##SFX##_with(const fl_gemm_impl *impl, int nthreads, int transA, int transB,      \
                              size_t M, size_t N, size_t K, T alpha, const T *A, size_t lda,       \
                              const T *B, size_t ldb, T beta, T *C, size_t ldc)                    \
    {                                                                                              \
        fl_gemm_split_##SFX##_with(impl, nthreads, transA, transB, M, N, K, alpha, A, lda, B, ldb, \
                                   beta, N, C, ldc, NULL, 0, NULL);                                \
    }                                                                                              \
    void fl_pack_b_##SFX(int transB, size_t K, size_t N, const T *B, size_t ldb, T *packed)        \
    {                                                                                              \
        if (K == 0 || N == 0)                                                                      \
            return;                                                                                \
        fl_gemm_active()->pack_b_##SFX(transB, K, N, B, ldb, packed);                              \
    }                                                                                              \
    void fl_gemm_packed_##SFX##_with(const fl_gemm_impl *impl, size_t M, size_t N, size_t K,       \
                                     const T *A, size_t lda, const T *packed, size_t ldp,          \
                                     size_t ks, T beta, T *C, size_t ldc)                          \
    {                                                                                              \
        if (M == 0 || N == 0)                                                                      \
            return;                                                                                \
        if (K == 0) {                                                                              \
            scale_part_##SFX(M, N, beta, C, ldc);                                                  \
            return;                                                                                \
        }                                                                                          \
        impl->packed_##SFX(M, N, K, A, lda, packed, ldp, ks < K ? ks : 0, beta, C, ldc);           \
    }                                                                                              \
    void fl_gemm_packed_##SFX(size_t M, size_t N, size_t K, const T *A, size_t lda,                \
                              const T *packed, T beta, T *C, size_t ldc)                           \
    {                                                                                              \
        const fl_gemm_impl *impl = fl_gemm_active();                                               \
        fl_gemm_packed_##SFX##_with(impl, M, N, K, A, lda, packed, impl->nr_##SFX * K, 0, beta, C, \
                                    ldc);                                                          \
    }                                                                                              \
    void fl_gemm_packed_ld_##SFX(size_t M, size_t N, size_t K, const T *A, size_t lda,             \
                                 const T *packed, size_t ldp, size_t ks, T beta, T *C, size_t ldc) \
    {                                                                                              \
        fl_gemm_packed_##SFX##_with(fl_gemm_active(), M, N, K, A, lda, packed, ldp, ks, beta, C,   \
                                    ldc);                                                          \
    }

FL_DEFINE_SPLIT_JOB(s, float)
FL_DEFINE_SPLIT_JOB(d, double)
FL_DEFINE_GEMM(s, float)
FL_DEFINE_GEMM(d, double)

void fl_gemm_f32(int transA, int transB, size_t M, size_t N, size_t K, float alpha, const float *A,
                 size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    fl_gemm_s_with(fl_gemm_active(), 0, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C,
                   ldc);
}

void fl_gemm_f64(int transA, int transB, size_t M, size_t N, size_t K, double alpha,
                 const double *A, size_t lda, const double *B, size_t ldb, double beta, double *C,
                 size_t ldc)
{
    fl_gemm_d_with(fl_gemm_active(), 0, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C,
                   ldc);
}
