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

int fl_rows_init(fl_rows *rw, const fl_shape *sh)
{
    const size_t T = sh->T, B = sh->B;
    const int64_t *bs = sh->batch_sizes;
    rw->off = NULL;
    rw->len = NULL;
    if (bs) {
        if (T == 0 || bs[0] != (int64_t)B)
            return FL_EINVAL;
        for (size_t t = 0; t < T; t++)
            if (bs[t] < 1 || (t > 0 && bs[t] > bs[t - 1]))
                return FL_EINVAL;
    }
    rw->B = B;
    rw->bs = bs;
    rw->off = malloc((T + 1) * sizeof(size_t));
    rw->len = malloc((B ? B : 1) * sizeof(size_t));
    if (!rw->off || !rw->len) {
        fl_rows_free(rw);
        return FL_ENOMEM;
    }
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
    return FL_OK;
}

void fl_rows_free(fl_rows *rw)
{
    free(rw->off);
    free(rw->len);
    rw->off = NULL;
    rw->len = NULL;
}
