/* Row bookkeeping of the packed sequence layout (see fastlstm.h), shared by
 * every dtype and ISA variant of the LSTM kernel. */
#ifndef FASTLSTM_LSTM_ROWS_H
#define FASTLSTM_LSTM_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "fastlstm.h"

typedef struct fl_rows {
    size_t B;
    size_t rows;       /* total packed rows */
    size_t *off;       /* (T + 1) first row of step t */
    size_t *len;       /* (B) steps of batch row j */
    const int64_t *bs; /* batch_sizes or NULL */
    int owned;         /* off/len malloc'ed here (else caller memory) */
} fl_rows;

/* FL_OK, FL_EBATCH_SIZES (batch_sizes not non-increasing in [1, B] with
 * batch_sizes[0] == B) or FL_ENOMEM. */
int fl_rows_init(fl_rows *rw, const fl_shape *sh);
/* The same in caller memory of fl_rows_mem(sh) size_t's (never fails with
 * FL_ENOMEM; fl_rows_free is then a no-op). */
size_t fl_rows_mem(const fl_shape *sh);
int fl_rows_init_in(fl_rows *rw, const fl_shape *sh, size_t *mem);
void fl_rows_free(fl_rows *rw);

static inline size_t fl_row(const fl_rows *rw, size_t t, size_t j) { return rw->off[t] + j; }

/* Row of batch entry j at step s of a time loop: the reverse direction runs
 * each sequence from its own last step. */
static inline size_t fl_step_row(const fl_rows *rw, int reverse, size_t s, size_t j)
{
    return fl_row(rw, reverse ? rw->len[j] - 1 - s : s, j);
}

static inline size_t fl_batch(const fl_rows *rw, size_t t)
{
    return rw->bs ? (size_t)rw->bs[t] : rw->B;
}

/* Split [0, n) into nth contiguous ranges whose bounds are multiples of
 * `align` (except the end, n); range `tid` -> [*lo, *hi). */
static inline void fl_split(size_t n, size_t align, int nth, int tid, size_t *lo, size_t *hi)
{
    size_t blocks = (n + align - 1) / align;
    size_t b0 = blocks * (size_t)tid / (size_t)nth;
    size_t b1 = blocks * (size_t)(tid + 1) / (size_t)nth;
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

/* Rows [*lo, *hi) of part tid of nth when the batch is cut into parts (the
 * row chunks below): contiguous ranges holding about equal numbers of tokens
 * (rows are sorted longest first, so with ragged lengths the first part gets
 * fewer rows). */
static inline void fl_split_rows(const fl_rows *rw, int nth, int tid, size_t *lo, size_t *hi)
{
    size_t want_lo = rw->rows * (size_t)tid / (size_t)nth;
    size_t want_hi = rw->rows * (size_t)(tid + 1) / (size_t)nth;
    size_t cum = 0, j = 0;
    while (j < rw->B && cum + rw->len[j] / 2 < want_lo) /* nearest boundary */
        cum += rw->len[j++];
    *lo = tid == 0 ? 0 : j;
    while (j < rw->B && cum + rw->len[j] / 2 < want_hi)
        cum += rw->len[j++];
    *hi = tid == nth - 1 ? rw->B : j;
}

/* The rows of a step's first n that thread tid copies (its input rows, its
 * kept rows): its own [j0, j1) when threads own rows, else its share of
 * all n. */
static inline void fl_copy_rows(int own_rows, size_t n, size_t j0, size_t j1, int nth, int tid,
                                size_t *lo, size_t *hi)
{
    if (own_rows) {
        *lo = j0;
        *hi = n < j1 ? n : j1;
    } else {
        fl_split(n, 1, nth, tid, lo, hi);
    }
}

/* Dynamic row chunks, for the batch split.  Rows are independent sequences,
 * so any thread can advance any of them; with a fixed share per thread a call
 * waits for the slowest, and on a shared or hybrid CPU one core often runs
 * much slower than the other for a whole call.  So the batch is cut into n
 * chunks of about equal tokens (one more than threads when the rows allow),
 * and a thread repeatedly takes the free chunk with the most steps left and
 * runs it for up to `steps` steps: a faster core just runs more blocks, and
 * the chunks finish together.  A row's results do not depend on which thread
 * ran it or on the tile it was in, so they do not depend on the schedule.
 * Claims and releases (one per block, far apart) go through one
 * lock, which also makes an owner's writes of a chunk's
 * state visible to its next owner. */
typedef struct fl_chunks {
    size_t n;     /* chunks */
    size_t steps; /* steps per block */
    size_t *lo;   /* (n + 1) chunk c is rows [lo[c], lo[c + 1]) */
    size_t *next; /* (n) first step of the loop not yet taken */
    size_t *end;  /* (n) the loop's steps end here for chunk c */
    size_t *busy; /* (n) 1 while a thread holds chunk c */
    int lock;     /* held while the table is read or changed */
} fl_chunks;

/* size_t's of caller memory fl_chunks_init needs for n chunks. */
size_t fl_chunks_mem(size_t n);
/* n chunks of rw's rows (token-balanced), blocks of `steps`; each chunk's
 * loop steps are those where its first (longest) row is active: [0, len)
 * for a forward loop, [T - len, T) for a backward one (backward != 0). */
void fl_chunks_init(fl_chunks *ch, const fl_rows *rw, size_t T, size_t n, size_t steps,
                    int backward, size_t *mem);
/* Take a block: the free chunk with the most steps left (on a tie *c, the
 * caller's previous chunk); -> 1 with *c and its steps [*s0, *s1), or 0
 * when every chunk is finished or held by another thread (so nothing is left
 * that this thread could run alongside them). */
int fl_chunks_claim(fl_chunks *ch, size_t *c, size_t *s0, size_t *s1);
/* Give chunk c back after running its block. */
void fl_chunks_release(fl_chunks *ch, size_t c);

#endif
