/* Standalone test and benchmark of the GEMM layer (no Python).
 *
 *   test_gemm              correctness of every variant this CPU can run
 *                          against gemm_ref.c; exit status 1 on any failure
 *   test_gemm bench [T]    GFLOP/s (median of many repeats) of fl_gemm_f32 on
 *                          the LSTM's input-projection and weight-gradient
 *                          shapes with T threads (default: fl_get_num_threads)
 *                          and of fl_gemm_packed_s on per-step shapes (1 thread)
 *
 * FASTLSTM_ISA selects the variant the public functions (and the bench) use.
 */
#define _POSIX_C_SOURCE 199309L
#include "gemm.h"
#include "gemm_internal.h"
#include "threads.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long n_checks = 0, n_failures = 0;

#define FAIL(...)                                  \
    do {                                           \
        if (n_failures++ < 20) {                   \
            fprintf(stderr, "FAIL: " __VA_ARGS__); \
            fputc('\n', stderr);                   \
        }                                          \
    } while (0)

/* deterministic pseudo-random numbers in [-1, 1) */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;
static double urand(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

/* One body per dtype: the test code is generic over T with macros. */
#define DEFINE_DTYPE_TESTS(SFX, T, EPS)                                                            \
    /* rows x cols matrix with leading dim ld; padding is NaN so that any                          \
     * read outside the matrix shows up in the result. */                                          \
    static T *rand_mat_##SFX(size_t rows, size_t cols, size_t ld)                                  \
    {                                                                                              \
        T *m = (T *)xmalloc(sizeof(T) * (rows * ld + 1));                                          \
        size_t i, j;                                                                               \
        for (i = 0; i < rows; i++)                                                                 \
            for (j = 0; j < ld; j++)                                                               \
                m[i * ld + j] = j < cols ? (T)urand() : (T)NAN;                                    \
        return m;                                                                                  \
    }                                                                                              \
                                                                                                   \
    /* Compare C (M x N, ldc) with Cref; scale(i,j) = |alpha| sum|a||b| +                          \
     * |beta||C0|; padding columns must keep the sentinel. */                                      \
    static void check_##SFX(const char *what, size_t M, size_t N, size_t K, const T *C,            \
                            const T *Cref, const T *absref, size_t ldc, size_t ldc_valid)          \
    {                                                                                              \
        size_t i, j;                                                                               \
        int bad = 0;                                                                               \
        n_checks++;                                                                                \
        for (i = 0; i < M && !bad; i++) {                                                          \
            for (j = 0; j < ldc && !bad; j++) {                                                    \
                const T c = C[i * ldc + j], r = Cref[i * ldc + j];                                 \
                if (j >= ldc_valid) {                                                              \
                    if (!(c == (T)12345)) {                                                        \
                        FAIL("%s: padding C[%zu,%zu] overwritten (%g)", what, i, j, (double)c);    \
                        bad = 1;                                                                   \
                    }                                                                              \
                } else {                                                                           \
                    const double tol =                                                             \
                        (double)(K + 4) * EPS * ((double)absref[i * ldc + j] + 1e-30);             \
                    if (!(fabs((double)c - (double)r) <= tol)) {                                   \
                        FAIL("%s: M=%zu N=%zu K=%zu C[%zu,%zu]=%.9g ref "                          \
                             "%.9g",                                                               \
                             what, M, N, K, i, j, (double)c, (double)r);                           \
                        bad = 1;                                                                   \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        (void)N;                                                                                   \
    }                                                                                              \
                                                                                                   \
    /* abs scale: |alpha| |op(A)| |op(B)| + |beta| |C0|, via the ref */                            \
    static void abs_scale_##SFX(int ta, int tb, size_t M, size_t N, size_t K, T alpha, const T *A, \
                                size_t lda, const T *B, size_t ldb, T beta, const T *C0, T *S,     \
                                size_t ldc, size_t ra, size_t ca, size_t rb, size_t cb)            \
    {                                                                                              \
        T *Aa = (T *)xmalloc(sizeof(T) * (ra * lda + 1));                                          \
        T *Ba = (T *)xmalloc(sizeof(T) * (rb * ldb + 1));                                          \
        size_t i, j;                                                                               \
        for (i = 0; i < ra; i++)                                                                   \
            for (j = 0; j < ca; j++)                                                               \
                Aa[i * lda + j] = (T)fabs((double)A[i * lda + j]);                                 \
        for (i = 0; i < rb; i++)                                                                   \
            for (j = 0; j < cb; j++)                                                               \
                Ba[i * ldb + j] = (T)fabs((double)B[i * ldb + j]);                                 \
        for (i = 0; i < M; i++)                                                                    \
            for (j = 0; j < N; j++)                                                                \
                S[i * ldc + j] = beta == (T)0 ? (T)0 : (T)fabs((double)C0[i * ldc + j]);           \
        fl_gemm_ref_##SFX(ta, tb, M, N, K, (T)fabs((double)alpha), Aa, lda, Ba, ldb,               \
                          beta == (T)0 ? (T)0 : (T)fabs((double)beta), S, ldc);                    \
        free(Aa);                                                                                  \
        free(Ba);                                                                                  \
    }                                                                                              \
                                                                                                   \
    /* fl_gemm_* of every variant (1 and 2 threads) against the ref. */                            \
    static void test_gemm_case_##SFX(const fl_gemm_impl **impls, int nimpl, int ta, int tb,        \
                                     size_t M, size_t N, size_t K, T alpha, T beta)                \
    {                                                                                              \
        const size_t ra = ta ? K : M, ca = ta ? M : K;                                             \
        const size_t rb = tb ? N : K, cb = tb ? K : N;                                             \
        const size_t lda = ca + (M % 3), ldb = cb + 2 * (N % 2);                                   \
        const size_t ldc = N + (K % 2) * 3;                                                        \
        T *A = rand_mat_##SFX(ra, ca, lda), *B = rand_mat_##SFX(rb, cb, ldb);                      \
        T *C0 = (T *)xmalloc(sizeof(T) * M * ldc);                                                 \
        T *Cref = (T *)xmalloc(sizeof(T) * M * ldc);                                               \
        T *S = (T *)xmalloc(sizeof(T) * M * ldc);                                                  \
        T *C = (T *)xmalloc(sizeof(T) * M * ldc);                                                  \
        T *C2 = (T *)xmalloc(sizeof(T) * M * ldc);                                                 \
        size_t i, j;                                                                               \
        int v, th;                                                                                 \
        char what[128];                                                                            \
        for (i = 0; i < M; i++)                                                                    \
            for (j = 0; j < ldc; j++)                                                              \
                C0[i * ldc + j] = j >= N ? (T)12345 : beta == (T)0 ? (T)NAN : (T)urand();          \
        memcpy(Cref, C0, sizeof(T) * M * ldc);                                                     \
        fl_gemm_ref_##SFX(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cref, ldc);                \
        abs_scale_##SFX(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, S, ldc, ra, ca, rb, cb); \
        for (v = 0; v < nimpl; v++) {                                                              \
            for (th = 1; th <= 2; th++) {                                                          \
                T *out = th == 1 ? C : C2;                                                         \
                memcpy(out, C0, sizeof(T) * M * ldc);                                              \
                fl_gemm_##SFX##_with(impls[v], th, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta,   \
                                     out, ldc);                                                    \
            }                                                                                      \
            snprintf(what, sizeof what, "%s gemm_%s tA=%d tB=%d a=%g b=%g", impls[v]->name, #SFX,  \
                     ta, tb, (double)alpha, (double)beta);                                         \
            check_##SFX(what, M, N, K, C, Cref, S, ldc, N);                                        \
            n_checks++;                                                                            \
            if (memcmp(C, C2, sizeof(T) * M * ldc) != 0)                                           \
                FAIL("%s M=%zu N=%zu K=%zu: 1 vs 2 threads differ", what, M, N, K);                \
        }                                                                                          \
        free(A);                                                                                   \
        free(B);                                                                                   \
        free(C0);                                                                                  \
        free(Cref);                                                                                \
        free(S);                                                                                   \
        free(C);                                                                                   \
        free(C2);                                                                                  \
    }                                                                                              \
                                                                                                   \
    /* fl_gemm_split_*: C in two matrices split at column n1 (each with its                        \
     * own leading dimension and sentinel padding) and row sums of op(A);                          \
     * every element must be bitwise what fl_gemm_* (1 thread) gives the                           \
     * whole C, the sums bitwise a plain loop in increasing k, for 1, 2                            \
     * and 3 threads. */                                                                           \
    static void test_split_case_##SFX(const fl_gemm_impl **impls, int nimpl, int ta, int tb,       \
                                      size_t M, size_t N, size_t K, size_t n1, T alpha, T beta,    \
                                      int with_sums)                                               \
    {                                                                                              \
        const size_t ra = ta ? K : M, ca = ta ? M : K;                                             \
        const size_t rb = tb ? N : K, cb = tb ? K : N;                                             \
        const size_t lda = ca + 1, ldb = cb + 3, ldc = N;                                          \
        const size_t ld1 = n1 + 2, ld2 = N - n1 + 1;                                               \
        T *A = rand_mat_##SFX(ra, ca, lda), *B = rand_mat_##SFX(rb, cb, ldb);                      \
        T *C0 = (T *)xmalloc(sizeof(T) * M * ldc);                                                 \
        T *Cw = (T *)xmalloc(sizeof(T) * M * ldc);                                                 \
        T *C1 = (T *)xmalloc(sizeof(T) * M * ld1);                                                 \
        T *C2 = (T *)xmalloc(sizeof(T) * M * ld2);                                                 \
        T *s0 = (T *)xmalloc(sizeof(T) * M), *sw = (T *)xmalloc(sizeof(T) * M);                    \
        T *sg = (T *)xmalloc(sizeof(T) * M);                                                       \
        size_t i, j, k;                                                                            \
        int v, th, bad;                                                                            \
        for (i = 0; i < M * ldc; i++)                                                              \
            C0[i] = beta == (T)0 ? (T)NAN : (T)urand();                                            \
        for (i = 0; i < M; i++)                                                                    \
            s0[i] = sw[i] = (T)urand();                                                            \
        for (i = 0; i < M; i++)                                                                    \
            for (k = 0; k < K; k++)                                                                \
                sw[i] += ta ? A[k * lda + i] : A[i * lda + k];                                     \
        for (v = 0; v < nimpl; v++) {                                                              \
            memcpy(Cw, C0, sizeof(T) * M * ldc);                                                   \
            fl_gemm_##SFX##_with(impls[v], 1, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cw,    \
                                 ldc);                                                             \
            for (th = 1; th <= 3; th++) {                                                          \
                for (i = 0; i < M; i++) {                                                          \
                    for (j = 0; j < ld1; j++)                                                      \
                        C1[i * ld1 + j] = j < n1 ? C0[i * ldc + j] : (T)12345;                     \
                    for (j = 0; j < ld2; j++)                                                      \
                        C2[i * ld2 + j] = j < N - n1 ? C0[i * ldc + n1 + j] : (T)12345;            \
                }                                                                                  \
                memcpy(sg, s0, sizeof(T) * M);                                                     \
                fl_gemm_split_##SFX##_with(impls[v], th, ta, tb, M, N, K, alpha, A, lda, B, ldb,   \
                                           beta, n1, C1, ld1, C2, ld2, with_sums ? sg : NULL);     \
                n_checks++;                                                                        \
                bad = 0;                                                                           \
                for (i = 0; i < M && !bad; i++) {                                                  \
                    for (j = 0; j < N && !bad; j++) {                                              \
                        const T *got = j < n1 ? &C1[i * ld1 + j] : &C2[i * ld2 + j - n1];          \
                        bad = memcmp(got, &Cw[i * ldc + j], sizeof(T)) != 0;                       \
                    }                                                                              \
                    bad = bad || C1[i * ld1 + n1] != (T)12345 || C2[i * ld2 + N - n1] != (T)12345; \
                    if (with_sums)                                                                 \
                        bad = bad || memcmp(&sg[i], &sw[i], sizeof(T)) != 0;                       \
                    else                                                                           \
                        bad = bad || memcmp(&sg[i], &s0[i], sizeof(T)) != 0;                       \
                }                                                                                  \
                if (bad)                                                                           \
                    FAIL("%s gemm_split_%s tA=%d tB=%d M=%zu N=%zu K=%zu "                         \
                         "n1=%zu a=%g b=%g sums=%d threads=%d: row %zu",                           \
                         impls[v]->name, #SFX, ta, tb, M, N, K, n1, (double)alpha, (double)beta,   \
                         with_sums, th, i - 1);                                                    \
            }                                                                                      \
        }                                                                                          \
        free(A);                                                                                   \
        free(B);                                                                                   \
        free(C0);                                                                                  \
        free(Cw);                                                                                  \
        free(C1);                                                                                  \
        free(C2);                                                                                  \
        free(s0);                                                                                  \
        free(sw);                                                                                  \
        free(sg);                                                                                  \
    }                                                                                              \
                                                                                                   \
    /* Packed path: pack op(B) (K x Ntot), multiply slices starting at                             \
     * panel p0, width N (not a multiple of nr), beta 0 (NaN C) and 1. */                          \
    static void test_packed_case_##SFX(const fl_gemm_impl *impl, int tb, size_t M, size_t K,       \
                                       size_t Ntot, size_t p0, size_t N)                           \
    {                                                                                              \
        const size_t nr = impl->nr_##SFX;                                                          \
        const size_t npad = (Ntot + nr - 1) / nr * nr;                                             \
        const size_t rb = tb ? Ntot : K, cb = tb ? K : Ntot;                                       \
        const size_t ldb = cb + 1, lda = K + 2, ldc = N + 3;                                       \
        T *B = rand_mat_##SFX(rb, cb, ldb);                                                        \
        T *A = rand_mat_##SFX(M, K, lda);                                                          \
        T *P = (T *)xmalloc(sizeof(T) * npad * K);                                                 \
        T *Bs = (T *)xmalloc(sizeof(T) * (K * N + 1));                                             \
        T *C0 = (T *)xmalloc(sizeof(T) * M * ldc);                                                 \
        T *C = (T *)xmalloc(sizeof(T) * M * ldc);                                                  \
        T *Cref = (T *)xmalloc(sizeof(T) * M * ldc);                                               \
        T *S = (T *)xmalloc(sizeof(T) * M * ldc);                                                  \
        size_t i, j, k;                                                                            \
        int bi;                                                                                    \
        char what[128];                                                                            \
        for (i = 0; i < npad * K; i++)                                                             \
            P[i] = (T)NAN;                                                                         \
        impl->pack_b_##SFX(tb, K, Ntot, B, ldb, P);                                                \
        n_checks++;                                                                                \
        for (i = 0; i < npad * K; i++) {                                                           \
            const size_t pnl = i / (nr * K), col = pnl * nr + i % nr;                              \
            const size_t row = (i % (nr * K)) / nr;                                                \
            const T want = col >= Ntot ? (T)0 : tb ? B[col * ldb + row] : B[row * ldb + col];      \
            if (!(P[i] == want)) {                                                                 \
                FAIL("%s pack_b_%s tB=%d K=%zu N=%zu: packed[%zu] wrong", impl->name, #SFX, tb, K, \
                     Ntot, i);                                                                     \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
        /* the slice of op(B) as a plain K x N matrix */                                           \
        for (k = 0; k < K; k++)                                                                    \
            for (j = 0; j < N; j++) {                                                              \
                const size_t col = p0 * nr + j;                                                    \
                Bs[k * N + j] = tb ? B[col * ldb + k] : B[k * ldb + col];                          \
            }                                                                                      \
        for (bi = 0; bi < 2; bi++) {                                                               \
            const T beta = (T)bi;                                                                  \
            for (i = 0; i < M; i++)                                                                \
                for (j = 0; j < ldc; j++)                                                          \
                    C0[i * ldc + j] = j >= N ? (T)12345 : bi == 0 ? (T)NAN : (T)urand();           \
            memcpy(Cref, C0, sizeof(T) * M * ldc);                                                 \
            memcpy(C, C0, sizeof(T) * M * ldc);                                                    \
            fl_gemm_ref_##SFX(0, 0, M, N, K, (T)1, A, lda, Bs, N, beta, Cref, ldc);                \
            abs_scale_##SFX(0, 0, M, N, K, (T)1, A, lda, Bs, N, beta, C0, S, ldc, M, K, K, N);     \
            fl_gemm_packed_##SFX##_with(impl, M, N, K, A, lda, P + p0 * nr * K, nr * K, 0, beta,   \
                                        C, ldc);                                                   \
            snprintf(what, sizeof what, "%s packed_%s tB=%d p0=%zu beta=%d", impl->name, #SFX, tb, \
                     p0, bi);                                                                      \
            check_##SFX(what, M, N, K, C, Cref, S, ldc, N);                                        \
            /* rows [k0, K) of the packed matrix (panel stride nr K) */                            \
            if (K > 1) {                                                                           \
                const size_t k0 = K / 3 + 1, kn = K - k0;                                          \
                memcpy(Cref, C0, sizeof(T) * M * ldc);                                             \
                memcpy(C, C0, sizeof(T) * M * ldc);                                                \
                fl_gemm_ref_##SFX(0, 0, M, N, kn, (T)1, A + k0, lda, Bs + k0 * N, N, beta, Cref,   \
                                  ldc);                                                            \
                abs_scale_##SFX(0, 0, M, N, kn, (T)1, A + k0, lda, Bs + k0 * N, N, beta, C0, S,    \
                                ldc, M, kn, kn, N);                                                \
                fl_gemm_packed_##SFX##_with(impl, M, N, kn, A + k0, lda,                           \
                                            P + p0 * nr * K + k0 * nr, nr * K, 0, beta, C, ldc);   \
                snprintf(what, sizeof what, "%s packed_%s rows %zu.. tB=%d p0=%zu beta=%d",        \
                         impl->name, #SFX, k0, tb, p0, bi);                                        \
                check_##SFX(what, M, N, kn, C, Cref, S, ldc, N);                                   \
                /* all K rows, blocked at k0: bitwise rows [0, k0) with                            \
                 * beta, then rows [k0, K) with beta 1 */                                          \
                memcpy(Cref, C0, sizeof(T) * M * ldc);                                             \
                memcpy(C, C0, sizeof(T) * M * ldc);                                                \
                fl_gemm_packed_##SFX##_with(impl, M, N, k0, A, lda, P + p0 * nr * K, nr * K, 0,    \
                                            beta, Cref, ldc);                                      \
                fl_gemm_packed_##SFX##_with(impl, M, N, kn, A + k0, lda,                           \
                                            P + p0 * nr * K + k0 * nr, nr * K, 0, (T)1, Cref,      \
                                            ldc);                                                  \
                fl_gemm_packed_##SFX##_with(impl, M, N, K, A, lda, P + p0 * nr * K, nr * K, k0,    \
                                            beta, C, ldc);                                         \
                n_checks++;                                                                        \
                for (i = 0; i < M; i++)                                                            \
                    for (j = 0; j < ldc; j++)                                                      \
                        if (memcmp(&C[i * ldc + j], &Cref[i * ldc + j], sizeof(T)) != 0) {         \
                            FAIL("%s packed_%s split at %zu tB=%d p0=%zu "                         \
                                 "beta=%d: C[%zu][%zu] not bitwise the two "                       \
                                 "products'",                                                      \
                                 impl->name, #SFX, k0, tb, p0, bi, i, j);                          \
                            i = M;                                                                 \
                            break;                                                                 \
                        }                                                                          \
            }                                                                                      \
        }                                                                                          \
        free(B);                                                                                   \
        free(A);                                                                                   \
        free(P);                                                                                   \
        free(Bs);                                                                                  \
        free(C0);                                                                                  \
        free(C);                                                                                   \
        free(Cref);                                                                                \
        free(S);                                                                                   \
    }

DEFINE_DTYPE_TESTS(s, float, FLT_EPSILON)
DEFINE_DTYPE_TESTS(d, double, DBL_EPSILON)

static const size_t odd_sizes[] = {1, 2, 3, 7, 17, 31, 64, 65, 130};
#define N_ODD (sizeof odd_sizes / sizeof *odd_sizes)

static int run_tests(void)
{
#define FL_ISA_NAME(isa) #isa,
    static const char *const names[] = {FL_FOR_EACH_ISA(FL_ISA_NAME)};
#undef FL_ISA_NAME
#define N_NAMES (int)(sizeof names / sizeof *names)
    const fl_gemm_impl *impls[N_NAMES];
    int nimpl = 0, v, ta, tb, ab;
    size_t a, b, c;
    /* (alpha, beta): beta 0 runs on NaN-filled C */
    static const double alphas[] = {1.0, 1.0, -0.75};
    static const double betas[] = {0.0, 1.0, 0.5};
    /* beyond the odd sizes: K > KC (K blocking), M > MC, N > NC */
    static const size_t big[][3] = {
        {150, 70, 520},  {7, 4200, 33}, {300, 41, 270}, {13, 9, 1000},
        {250, 250, 257}, {1, 300, 600}, {600, 1, 300},  {17, 2100, 70} /* threads split N */,
        {1560, 4100, 3} /* M split, N > NC: B shared per column block */};

    for (v = 0; v < N_NAMES; v++) {
        const fl_gemm_impl *impl = fl_gemm_impl_by_name(names[v]);
        if (impl == NULL) {
            printf("variant %-8s not run (CPU lacks it or not compiled in)\n", names[v]);
            continue;
        }
        printf("variant %-8s nr_s=%zu nr_d=%zu mr_s=%zu mr_d=%zu\n", impl->name, impl->nr_s,
               impl->nr_d, impl->mr_s, impl->mr_d);
        impls[nimpl++] = impl;
    }

    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++)
            for (ab = 0; ab < 3; ab++) {
                for (a = 0; a < N_ODD; a++)
                    for (b = 0; b < N_ODD; b++)
                        for (c = 0; c < N_ODD; c++) {
                            /* keep the run short: all of M x N x K for
                             * the first (alpha, beta), a diagonal-ish
                             * subset for the others */
                            if (ab > 0 && (a + b + c) % 3 != 0)
                                continue;
                            test_gemm_case_s(impls, nimpl, ta, tb, odd_sizes[a], odd_sizes[b],
                                             odd_sizes[c], (float)alphas[ab], (float)betas[ab]);
                            if ((a + b + c) % 2 == 0)
                                test_gemm_case_d(impls, nimpl, ta, tb, odd_sizes[a], odd_sizes[b],
                                                 odd_sizes[c], alphas[ab], betas[ab]);
                        }
                for (a = 0; a < sizeof big / sizeof *big; a++) {
                    test_gemm_case_s(impls, nimpl, ta, tb, big[a][0], big[a][1], big[a][2],
                                     (float)alphas[ab], (float)betas[ab]);
                    test_gemm_case_d(impls, nimpl, ta, tb, big[a][0], big[a][1], big[a][2],
                                     alphas[ab], betas[ab]);
                }
            }

    /* split C and row sums: n1 at 0, N, inside a panel and on a panel
     * edge; K > KC, N > NC (A packed once per column block: the sums must
     * count it once), thread splits over M and over N */
    {
        static const size_t sp[][4] = {
            /* M, N, K, n1 */
            {1, 1, 1, 0},         {1, 1, 1, 1},       {7, 17, 31, 5},       {17, 3, 130, 3},
            {64, 65, 300, 64},    {130, 31, 520, 16}, {13, 4200, 33, 2000}, {300, 41, 270, 1},
            {17, 2100, 70, 1000}, {600, 1, 300, 0},   {512, 192, 700, 64}};
        for (ta = 0; ta < 2; ta++)
            for (tb = 0; tb < 2; tb++)
                for (a = 0; a < sizeof sp / sizeof *sp; a++) {
                    test_split_case_s(impls, nimpl, ta, tb, sp[a][0], sp[a][1], sp[a][2], sp[a][3],
                                      1.0f, 1.0f, 1);
                    test_split_case_s(impls, nimpl, ta, tb, sp[a][0], sp[a][1], sp[a][2], sp[a][3],
                                      -0.5f, 0.0f, (int)(a % 2));
                    test_split_case_d(impls, nimpl, ta, tb, sp[a][0], sp[a][1], sp[a][2], sp[a][3],
                                      1.0, 1.0, 1);
                }
        /* alpha == 0: no product, C scaled by beta, the sums still taken */
        test_split_case_s(impls, nimpl, 1, 0, 9, 20, 11, 7, 0.0f, 0.5f, 1);
        test_split_case_d(impls, nimpl, 0, 1, 9, 20, 11, 20, 0.0, 0.0, 1);
    }

    for (v = 0; v < nimpl; v++) {
        static const size_t Ms[] = {1, 2, 3, 4, 5, 6, 7, 11, 13, 16, 32, 64, 65};
        static const size_t Ks[] = {1, 7, 64, 130, 300};
        for (tb = 0; tb < 2; tb++)
            for (a = 0; a < sizeof Ms / sizeof *Ms; a++)
                for (b = 0; b < sizeof Ks / sizeof *Ks; b++) {
                    const size_t nrs = impls[v]->nr_s, nrd = impls[v]->nr_d;
                    /* whole matrix; a slice from panel 1 ending mid-panel;
                     * a slice from panel 2 of many panels; one column */
                    test_packed_case_s(impls[v], tb, Ms[a], Ks[b], 7 * nrs + 5, 0, 7 * nrs + 5);
                    test_packed_case_s(impls[v], tb, Ms[a], Ks[b], 7 * nrs + 5, 1, 5 * nrs + 3);
                    test_packed_case_s(impls[v], tb, Ms[a], Ks[b], 12 * nrs, 2, 9 * nrs + 1);
                    test_packed_case_s(impls[v], tb, Ms[a], Ks[b], 3 * nrs, 2, 1);
                    test_packed_case_d(impls[v], tb, Ms[a], Ks[b], 7 * nrd + 3, 0, 7 * nrd + 3);
                    test_packed_case_d(impls[v], tb, Ms[a], Ks[b], 12 * nrd, 1, 9 * nrd + 2);
                }
    }

    /* the public entry points: dispatch, env var, thread-count API */
    {
        const char *isa = fl_gemm_init();
        const char *want = getenv("FASTLSTM_ISA");
        const size_t M = 333, N = 257, K = 300;
        float *A = rand_mat_s(M, K, K), *B = rand_mat_s(N, K, K);
        float *C1 = (float *)xmalloc(sizeof(float) * M * N);
        float *C2 = (float *)xmalloc(sizeof(float) * M * N);
        printf("active variant: %s (FASTLSTM_ISA=%s), openmp=%d\n", isa, want ? want : "unset",
               fl_have_openmp());
        n_checks++;
        if (want != NULL && fl_gemm_impl_by_name(want) != NULL && strcmp(want, isa) != 0)
            FAIL("FASTLSTM_ISA=%s but active variant is %s", want, isa);
        n_checks++;
        if (fl_gemm_nr_s() != fl_gemm_active()->nr_s ||
            fl_packed_size_s(3, 1) != 3 * fl_gemm_nr_s() ||
            fl_packed_size_d(2, fl_gemm_nr_d() + 1) != 4 * fl_gemm_nr_d())
            FAIL("nr / packed size inconsistent");
        fl_set_num_threads(1);
        fl_gemm_f32(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
        fl_set_num_threads(2);
        fl_gemm_f32(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
        fl_set_num_threads(0);
        n_checks++;
        if (memcmp(C1, C2, sizeof(float) * M * N) != 0)
            FAIL("fl_gemm_f32: fl_set_num_threads(1) vs (2) differ");
        free(A);
        free(B);
        free(C1);
        free(C2);
    }

    printf("%ld checks, %ld failures\n", n_checks, n_failures);
    return n_failures == 0 ? 0 : 1;
}

/* ---- benchmark ---------------------------------------------------------- */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* median seconds per call: samples of `inner` calls, ~0.6 s in total */
#define BENCH(result, flops, call)                           \
    do {                                                     \
        double t_[401], t0_;                                 \
        int n_ = 0, inner_ = 1, r_;                          \
        call;                                                \
        call;                                                \
        t0_ = now();                                         \
        call;                                                \
        if (now() - t0_ < 2e-4)                              \
            inner_ = (int)(2e-4 / (now() - t0_ + 1e-9)) + 1; \
        t0_ = now();                                         \
        while (n_ < 401 && (n_ < 11 || now() - t0_ < 0.6)) { \
            double s_ = now();                               \
            for (r_ = 0; r_ < inner_; r_++)                  \
                call;                                        \
            t_[n_++] = (now() - s_) / inner_;                \
        }                                                    \
        qsort(t_, (size_t)n_, sizeof(double), cmp_double);   \
        result = (flops) / t_[n_ / 2] * 1e-9;                \
    } while (0)

static int run_bench(int threads)
{
    static const size_t shapes[][4] = {/* T, B, I, H */
                                       {100, 32, 64, 128},
                                       {50, 64, 256, 256},
                                       {100, 16, 512, 512},
                                       {35, 64, 1024, 1024}};
    static const size_t steps[][3] = {/* M, N, K */
                                      {1, 512, 128},
                                      {32, 512, 128},
                                      {64, 1024, 256},
                                      {16, 2048, 512},
                                      {64, 4096, 1024}};
    size_t s;
    fl_set_num_threads(threads);
    printf("variant %s, fl_gemm_f32 with %d thread(s); GFLOP/s, median\n", fl_gemm_init(),
           fl_get_num_threads());
    for (s = 0; s < 4; s++) {
        const size_t T = shapes[s][0], Bt = shapes[s][1], I = shapes[s][2];
        const size_t H = shapes[s][3], TB = T * Bt, G = 4 * H;
        float *X = rand_mat_s(TB, I, I), *W = rand_mat_s(G, I, I);
        float *dG = rand_mat_s(TB, G, G);
        float *Y = (float *)xmalloc(sizeof(float) * TB * G);
        float *dW = (float *)xmalloc(sizeof(float) * G * I);
        double gp, gw;
        /* input projection: Y(TB, 4H) = X(TB, I) W(4H, I)^T */
        BENCH(gp, 2.0 * TB * G * I, fl_gemm_f32(0, 1, TB, G, I, 1.0f, X, I, W, I, 0.0f, Y, G));
        /* weight gradient: dW(4H, I) = dG(TB, 4H)^T X(TB, I) */
        BENCH(gw, 2.0 * TB * G * I, fl_gemm_f32(1, 0, G, I, TB, 1.0f, dG, G, X, I, 0.0f, dW, I));
        printf("  proj  M=%5zu N=%5zu K=%5zu  %7.1f   |  wgrad M=%5zu N=%5zu "
               "K=%5zu  %7.1f\n",
               TB, G, I, gp, G, I, TB, gw);
        free(X);
        free(W);
        free(dG);
        free(Y);
        free(dW);
    }
    printf("fl_gemm_packed_s per step (1 thread), beta=0\n");
    for (s = 0; s < 5; s++) {
        const size_t M = steps[s][0], N = steps[s][1], K = steps[s][2];
        float *A = rand_mat_s(M, K, K), *W = rand_mat_s(N, K, K);
        float *P = (float *)xmalloc(sizeof(float) * fl_packed_size_s(K, N));
        float *C = (float *)xmalloc(sizeof(float) * M * N);
        double g;
        fl_pack_b_s(1, K, N, W, K, P);
        BENCH(g, 2.0 * M * N * K, fl_gemm_packed_s(M, N, K, A, K, P, 0.0f, C, N));
        printf("  step  M=%5zu N=%5zu K=%5zu  %7.1f\n", M, N, K, g);
        free(A);
        free(W);
        free(P);
        free(C);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "bench") == 0)
        return run_bench(argc > 2 ? atoi(argv[2]) : 0);
    return run_tests();
}
