/* Packed-layout row bookkeeping (lstm_rows.h). */
#include "lstm_rows.h"

#include <stdlib.h>

size_t fl_packed_rows(const fl_shape *sh)
{
    if (!sh->batch_sizes)
        return sh->T * sh->B;
    size_t rows = 0;
    for (size_t t = 0; t < sh->T; t++)
        rows += (size_t)sh->batch_sizes[t];
    return rows;
}

static int check_batch_sizes(const fl_shape *sh)
{
    const int64_t *bs = sh->batch_sizes;
    if (bs) {
        if (sh->T == 0 || bs[0] != (int64_t)sh->B)
            return FL_EBATCH_SIZES;
        for (size_t t = 0; t < sh->T; t++)
            if (bs[t] < 1 || (t > 0 && bs[t] > bs[t - 1]))
                return FL_EBATCH_SIZES;
    }
    return FL_OK;
}

static void fill(fl_rows *rw, const fl_shape *sh)
{
    const size_t T = sh->T, B = sh->B;
    const int64_t *bs = sh->batch_sizes;
    rw->B = B;
    rw->bs = bs;
    rw->off[0] = 0;
    for (size_t t = 0; t < T; t++)
        rw->off[t + 1] = rw->off[t] + (bs ? (size_t)bs[t] : B);
    rw->rows = rw->off[T];
    for (size_t j = 0; j < B; j++)
        rw->len[j] = 0;
    for (size_t t = 0; t < T; t++) {
        size_t nb = bs ? (size_t)bs[t] : B;
        for (size_t j = 0; j < nb; j++)
            rw->len[j]++;
    }
}

size_t fl_rows_mem(const fl_shape *sh) { return sh->T + 1 + (sh->B ? sh->B : 1); }

int fl_rows_init_in(fl_rows *rw, const fl_shape *sh, size_t *mem)
{
    rw->off = rw->len = NULL;
    rw->owned = 0;
    int status = check_batch_sizes(sh);
    if (status != FL_OK)
        return status;
    rw->off = mem;
    rw->len = mem + sh->T + 1;
    fill(rw, sh);
    return FL_OK;
}

int fl_rows_init(fl_rows *rw, const fl_shape *sh)
{
    rw->off = rw->len = NULL;
    rw->owned = 1;
    int status = check_batch_sizes(sh);
    if (status != FL_OK)
        return status;
    rw->off = malloc(fl_rows_mem(sh) * sizeof(size_t));
    if (!rw->off)
        return FL_ENOMEM;
    rw->len = rw->off + sh->T + 1;
    fill(rw, sh);
    return FL_OK;
}

void fl_rows_free(fl_rows *rw)
{
    if (rw->owned)
        free(rw->off);
    rw->off = NULL;
    rw->len = NULL;
}

size_t fl_chunks_mem(size_t n) { return 4 * n + 1; }

void fl_chunks_init(fl_chunks *ch, const fl_rows *rw, size_t T, size_t n, size_t steps,
                    int backward, size_t *mem)
{
    ch->n = n;
    ch->steps = steps ? steps : 1;
    ch->lo = mem;
    ch->next = mem + n + 1;
    ch->end = ch->next + n;
    ch->busy = ch->end + n;
    ch->lock = 0;
    for (size_t c = 0; c < n; c++) {
        size_t hi;
        fl_split_rows(rw, (int)n, (int)c, &ch->lo[c], &hi);
        ch->lo[c + 1] = hi;
        /* an empty chunk (more chunks than rows) has no steps */
        const size_t len = ch->lo[c] < hi ? rw->len[ch->lo[c]] : 0;
        ch->next[c] = backward ? T - len : 0;
        ch->end[c] = backward ? T : len;
        ch->busy[c] = 0;
    }
}

/* The chunks' table is read and changed under one short lock. */
#if defined(__GNUC__) || defined(__clang__)
static void chunks_lock(fl_chunks *ch)
{
    while (__atomic_exchange_n(&ch->lock, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&ch->lock, __ATOMIC_RELAXED)) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
}
static void chunks_unlock(fl_chunks *ch) { __atomic_store_n(&ch->lock, 0, __ATOMIC_RELEASE); }
#define FL_CHUNKS_LOCKED(ch, body) \
    do {                           \
        chunks_lock(ch);           \
        body;                      \
        chunks_unlock(ch);         \
    } while (0)
#elif defined(_OPENMP) /* the OpenMP team of builds without GCC atomics */
#define FL_CHUNKS_LOCKED(ch, body)                   \
    do {                                             \
        _Pragma("omp critical(fl_chunks)") { body; } \
    } while (0)
#else
#define FL_CHUNKS_LOCKED(ch, body) \
    do {                           \
        body;                      \
    } while (0)
#endif

static int chunks_take(fl_chunks *ch, size_t *c, size_t *s0, size_t *s1)
{
    int got = 0;
    {
        size_t best = ch->n, left = 0;
        for (size_t k = 0; k < ch->n; k++) {
            const size_t l = ch->end[k] - ch->next[k];
            if (!ch->busy[k] && l > 0 && (l > left || (l == left && k == *c))) {
                best = k;
                left = l;
            }
        }
        if (best < ch->n) {
            ch->busy[best] = 1;
            *c = best;
            *s0 = ch->next[best];
            *s1 = left < ch->steps ? ch->end[best] : *s0 + ch->steps;
            ch->next[best] = *s1;
            got = 1;
        }
    }
    return got;
}

int fl_chunks_claim(fl_chunks *ch, size_t *c, size_t *s0, size_t *s1)
{
    int got;
    FL_CHUNKS_LOCKED(ch, got = chunks_take(ch, c, s0, s1));
    return got;
}

void fl_chunks_release(fl_chunks *ch, size_t c) { FL_CHUNKS_LOCKED(ch, ch->busy[c] = 0); }
