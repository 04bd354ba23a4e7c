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
            return FL_EINVAL;
        for (size_t t = 0; t < sh->T; t++)
            if (bs[t] < 1 || (t > 0 && bs[t] > bs[t - 1]))
                return FL_EINVAL;
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

size_t fl_rows_mem(const fl_shape *sh)
{
    return sh->T + 1 + (sh->B ? sh->B : 1);
}

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
