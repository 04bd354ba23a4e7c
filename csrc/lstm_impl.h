/* One LSTM layer, one direction: forward and backward (BPTT).
 *
 * Dtype- and ISA-generic source.  An ISA variant file (lstm_generic.c,
 * lstm_avx2.c, ...) defines FL_ISA and includes this file twice, with
 * REAL/S = float/s and double/d.  Notation and the packed row layout are
 * described in fastlstm.h; fastlstm/reference.py is the specification.
 *
 * Structure of a call (forward):
 *   1. gates = x W_ih^T for all rows: one big GEMM before the time loop.
 *   2. one OpenMP region for the whole time loop.  Per step each thread owns
 *      a range of hidden units: it multiplies h_{t-1} by its slice of the
 *      packed W_hh (all four gates of its units side by side), then runs the
 *      gate loop on that slice while it is in L1 (bias, sigmoid/tanh, cell
 *      update, output).  One barrier per step (two with a projection).
 * Backward mirrors it: per step the elementwise gate gradients of a thread's
 * units, a barrier, then dh_{t-1} = dgates W_hh for its units; afterwards
 * dW_ih, dW_hh, dW_hr and dx are one big GEMM each.
 * No allocation, no Python, no I/O inside the time loop.  Each output element
 * is computed by exactly one thread in a fixed order, so results do not
 * depend on the number of threads.
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
#endif
#define FL_FN(name) FL_CAT(name, S, FL_ISA)
#define GEMM FL_GEMMX(fl_gemm, S)
#define GEMM_PACKED FL_GEMMX(fl_gemm_packed, S)
#define PACK_B FL_GEMMX(fl_pack_b, S)
#define PACKED_SIZE FL_GEMMX(fl_packed_size, S)
#define GEMM_NR FL_GEMMX(fl_gemm_nr, S)
#define SIGMOID FL_GEMMX(fl_sigmoid, S)
#define TANH FL_GEMMX(fl_tanh, S)
#define FWD_ARGS FL_GEMMX(fl_forward, S)
#define BWD_ARGS FL_GEMMX(fl_backward, S)

/* Where the pieces of the packed-weights blob live (elements). */
typedef struct FL_FN(blob_layout) {
    size_t U;          /* units per group of the forward recurrent product */
    size_t groups;     /* ceil(H / U) */
    size_t hh_fwd;     /* h W_hh^T, grouped: [i f g o] x U columns per group */
    size_t hh_bwd;     /* dgates W_hh: K = 4H, N = H_out */
    size_t hr_fwd;     /* r W_hr^T:    K = H,  N = P */
    size_t hr_bwd;     /* dh W_hr:     K = P,  N = H */
    size_t total;
} FL_FN(blob_layout);

static FL_FN(blob_layout) FL_FN(layout)(size_t H, size_t P)
{
    FL_FN(blob_layout) L;
    size_t nr = GEMM_NR(), Hout = P ? P : H;
    L.U = nr >= 16 ? nr : 16; /* nr is a power of two <= 64 */
    L.groups = (H + L.U - 1) / L.U;
    L.hh_fwd = 0;
    L.hh_bwd = L.hh_fwd + L.groups * 4 * L.U * Hout;
    L.hr_fwd = L.hh_bwd + PACKED_SIZE(4 * H, Hout);
    L.hr_bwd = L.hr_fwd + (P ? PACKED_SIZE(H, P) : 0);
    L.total = L.hr_bwd + (P ? PACKED_SIZE(P, H) : 0);
    return L;
}

size_t FL_FN(fl_lstm_packed_size)(size_t H, size_t P)
{
    return FL_FN(layout)(H, P).total;
}

void FL_FN(fl_lstm_pack)(size_t H, size_t P, const REAL *w_hh,
                         const REAL *w_hr, REAL *blob)
{
    FL_FN(blob_layout) L = FL_FN(layout)(H, P);
    size_t Hout = P ? P : H;
    memset(blob, 0, L.total * sizeof(REAL));
    for (size_t g = 0; g < L.groups; g++) {
        size_t u0 = g * L.U, nu = H - u0 < L.U ? H - u0 : L.U;
        for (size_t q = 0; q < 4; q++)
            PACK_B(1, Hout, nu, w_hh + (q * H + u0) * Hout, Hout,
                   blob + L.hh_fwd + (g * 4 + q) * L.U * Hout);
    }
    PACK_B(0, 4 * H, Hout, w_hh, Hout, blob + L.hh_bwd);
    if (P) {
        PACK_B(1, H, P, w_hr, H, blob + L.hr_fwd);
        PACK_B(0, P, H, w_hr, H, blob + L.hr_bwd);
    }
}

/* Free everything in a NULL-terminated list of allocations. */
static void FL_FN(free_all)(void **ptrs, size_t n)
{
    for (size_t k = 0; k < n; k++)
        free(ptrs[k]);
}

/* The fused gate loop of one batch row over nu units (all four gates of
 * them): pre-activations = recurrent product (acc, group layout: U columns
 * per gate) + input projection (gr, 4H layout) + bias; writes the activations
 * back into gr, the new cell state into cs, r = o * tanh(c) into rout. */
static void FL_FN(gate_forward)(size_t nu, size_t U, size_t H,
                                const REAL *restrict acc,
                                const REAL *restrict bias, REAL *restrict gr,
                                REAL *restrict cs, REAL *restrict rout)
{
    FL_SIMD
    for (size_t k = 0; k < nu; k++) {
        REAL ig = SIGMOID(acc[k] + gr[k] + bias[k]);
        REAL fg = SIGMOID(acc[U + k] + gr[H + k] + bias[H + k]);
        REAL gg = TANH(acc[2 * U + k] + gr[2 * H + k] + bias[2 * H + k]);
        REAL og = SIGMOID(acc[3 * U + k] + gr[3 * H + k] + bias[3 * H + k]);
        REAL c = fg * cs[k] + ig * gg;
        cs[k] = c;
        gr[k] = ig;
        gr[H + k] = fg;
        gr[2 * H + k] = gg;
        gr[3 * H + k] = og;
        rout[k] = og * TANH(c);
    }
}

/* The gate gradients of one batch row over n units: dr = dyr + dcr is the
 * gradient of r_t = o * tanh(c_t); gr holds the activations i, f, g, o and is
 * overwritten with the pre-activation gradients (also written to dgr); dcs
 * carries dc from step t+1 in and to step t-1 out. */
static void FL_FN(gate_backward)(size_t n, size_t H, const REAL *restrict dyr,
                                 const REAL *restrict dcr,
                                 const REAL *restrict cr,
                                 const REAL *restrict cp, REAL *restrict gr,
                                 REAL *restrict dgr, REAL *restrict dcs)
{
    FL_SIMD
    for (size_t u = 0; u < n; u++) {
        REAL dr = dyr[u] + dcr[u];
        REAL ig = gr[u], fg = gr[H + u], gg = gr[2 * H + u], og = gr[3 * H + u];
        REAL tc = TANH(cr[u]);
        REAL dc = dcs[u] + dr * og * ((REAL)1 - tc * tc);
        REAL di = dc * gg * ig * ((REAL)1 - ig);
        REAL df = dc * cp[u] * fg * ((REAL)1 - fg);
        REAL dgg = dc * ig * ((REAL)1 - gg * gg);
        REAL dout = dr * tc * og * ((REAL)1 - og);
        dcs[u] = dc * fg;
        gr[u] = dgr[u] = di;
        gr[H + u] = dgr[H + u] = df;
        gr[2 * H + u] = dgr[2 * H + u] = dgg;
        gr[3 * H + u] = dgr[3 * H + u] = dout;
    }
}

int FL_FN(fl_lstm_forward)(const fl_shape *sh, const FWD_ARGS *a)
{
    const size_t T = sh->T, B = sh->B, I = sh->I, H = sh->H, P = sh->P;
    const size_t Hout = P ? P : H, G4 = 4 * H;
    const int rev = sh->reverse;
    if (T == 0 || B == 0 || I == 0 || H == 0 || (P && !a->packed))
        return FL_EINVAL;
    FL_FN(blob_layout) L = FL_FN(layout)(H, P);
    const size_t U = L.U, nr = GEMM_NR();
    fl_rows rw;
    int status = fl_rows_init(&rw, sh);
    if (status != FL_OK)
        return status;
    int nt = fl_get_num_threads();
    if ((size_t)nt > L.groups)
        nt = (int)L.groups;

    REAL *hbuf = malloc(2 * B * Hout * sizeof(REAL));
    REAL *cstate = malloc(B * H * sizeof(REAL));
    REAL *rstep = P ? malloc(B * H * sizeof(REAL)) : NULL;
    REAL *tmp = malloc((size_t)nt * B * 4 * U * sizeof(REAL));
    REAL *zeros = a->bias ? NULL : calloc(G4, sizeof(REAL));
    void *owned[] = {hbuf, cstate, rstep, tmp, zeros};
    if (!hbuf || !cstate || (P && !rstep) || !tmp || (!a->bias && !zeros)) {
        FL_FN(free_all)(owned, 5);
        fl_rows_free(&rw);
        return FL_ENOMEM;
    }
    for (size_t k = 0; k < B * Hout; k++)
        hbuf[k] = a->h0 ? a->h0[k] : (REAL)0;
    for (size_t k = 0; k < B * H; k++)
        cstate[k] = a->c0 ? a->c0[k] : (REAL)0;
    if (a->hprev) /* h_{t-1} of each sequence's first step is h0 */
        for (size_t j = 0; j < B; j++)
            memcpy(a->hprev + fl_row(&rw, rev ? rw.len[j] - 1 : 0, j) * Hout,
                   hbuf + j * Hout, Hout * sizeof(REAL));

    /* 1. input projection: gates = x W_ih^T, (rows, 4H) */
    GEMM(0, 1, rw.rows, G4, I, (REAL)1, a->x, a->ldx, a->w_ih, I, (REAL)0,
         a->gates, G4);

    const REAL *pk_hh = a->packed + L.hh_fwd;
    const REAL *pk_hr = P ? a->packed + L.hr_fwd : NULL;
    REAL *gates = a->gates, *y = a->y, *cells = a->cells, *hprev = a->hprev;
    const REAL *bias = a->bias ? a->bias : zeros;

    /* 2. the time loop */
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        size_t g0, g1, p0 = 0, p1 = 0;
        fl_split(L.groups, 1, nth, tid, &g0, &g1);
        if (P)
            fl_split(P, nr, nth, tid, &p0, &p1);
        REAL *my_tmp = tmp + (size_t)tid * B * 4 * U;

        for (size_t s = 0; s < T; s++) {
            const size_t nb = fl_batch(&rw, s);
            const size_t nb_next = s + 1 < T ? fl_batch(&rw, s + 1) : 0;
            const REAL *hc = hbuf + (s & 1) * B * Hout;
            REAL *hn = hbuf + ((s + 1) & 1) * B * Hout;

            for (size_t g = g0; g < g1; g++) {
                const size_t u0 = g * U, nu = H - u0 < U ? H - u0 : U;
                GEMM_PACKED(nb, 4 * U, Hout, hc, Hout, pk_hh + g * 4 * U * Hout,
                            (REAL)0, my_tmp, 4 * U);
                for (size_t j = 0; j < nb; j++) {
                    const size_t t = rev ? rw.len[j] - 1 - s : s;
                    const size_t row = fl_row(&rw, t, j);
                    const int last = j >= nb_next;
                    const int has_next = !last && hprev;
                    const size_t nrow = has_next ? fl_row(&rw, rev ? t - 1 : t + 1, j) : 0;
                    REAL *rout = P ? rstep + j * H + u0 : hn + j * Hout + u0;
                    FL_FN(gate_forward)(nu, U, H, my_tmp + j * 4 * U, bias + u0,
                                        gates + row * G4 + u0, cstate + j * H + u0,
                                        rout);
                    const REAL *cs = cstate + j * H + u0;
                    if (cells)
                        memcpy(cells + row * H + u0, cs, nu * sizeof(REAL));
                    if (last)
                        memcpy(a->c_n + j * H + u0, cs, nu * sizeof(REAL));
                    if (!P) {
                        memcpy(y + row * a->ldy + u0, rout, nu * sizeof(REAL));
                        if (has_next)
                            memcpy(hprev + nrow * Hout + u0, rout, nu * sizeof(REAL));
                        if (last)
                            memcpy(a->h_n + j * Hout + u0, rout, nu * sizeof(REAL));
                    }
                }
            }
            if (P) {
#ifdef _OPENMP
#pragma omp barrier
#endif
                if (p1 > p0) {
                    GEMM_PACKED(nb, p1 - p0, H, rstep, H, pk_hr + p0 * H, (REAL)0,
                                hn + p0, Hout);
                    for (size_t j = 0; j < nb; j++) {
                        const size_t t = rev ? rw.len[j] - 1 - s : s;
                        const size_t row = fl_row(&rw, t, j);
                        const REAL *hj = hn + j * Hout + p0;
                        const size_t n = (p1 - p0) * sizeof(REAL);
                        memcpy(y + row * a->ldy + p0, hj, n);
                        if (j >= nb_next)
                            memcpy(a->h_n + j * Hout + p0, hj, n);
                        else if (hprev)
                            memcpy(hprev + fl_row(&rw, rev ? t - 1 : t + 1, j) * Hout + p0,
                                   hj, n);
                    }
                }
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
    }
    FL_FN(free_all)(owned, 5);
    fl_rows_free(&rw);
    return FL_OK;
}

int FL_FN(fl_lstm_backward)(const fl_shape *sh, const BWD_ARGS *a)
{
    const size_t T = sh->T, B = sh->B, I = sh->I, H = sh->H, P = sh->P;
    const size_t Hout = P ? P : H, G4 = 4 * H;
    const int rev = sh->reverse;
    if (T == 0 || B == 0 || I == 0 || H == 0 || (P && !a->w_hr))
        return FL_EINVAL;
    FL_FN(blob_layout) L = FL_FN(layout)(H, P);
    const size_t nr = GEMM_NR();
    fl_rows rw;
    int status = fl_rows_init(&rw, sh);
    if (status != FL_OK)
        return status;
    const size_t rows = rw.rows;
    int nt = fl_get_num_threads();
    if ((size_t)nt > (H + nr - 1) / nr)
        nt = (int)((H + nr - 1) / nr);

    REAL *dhbuf = malloc(2 * B * Hout * sizeof(REAL));
    REAL *dcstate = malloc(B * H * sizeof(REAL));
    REAL *dgstep = malloc(2 * B * G4 * sizeof(REAL));
    REAL *dhp = P ? malloc(B * P * sizeof(REAL)) : NULL;      /* dh of the step */
    REAL *drstep = P ? malloc(B * H * sizeof(REAL)) : NULL;   /* d r of the step */
    REAL *dhtot = P ? malloc(rows * P * sizeof(REAL)) : NULL; /* for dW_hr */
    REAL *rstore = P ? malloc(rows * H * sizeof(REAL)) : NULL;
    REAL *zeros = calloc(H, sizeof(REAL)); /* c0 = 0, or no carried dh (P) */
    void *owned[] = {dhbuf, dcstate, dgstep, dhp, drstep, dhtot, rstore, zeros};
    if (!dhbuf || !dcstate || !dgstep || !zeros ||
        (P && (!dhp || !drstep || !dhtot || !rstore))) {
        FL_FN(free_all)(owned, 8);
        fl_rows_free(&rw);
        return FL_ENOMEM;
    }
    for (size_t k = 0; k < B * Hout; k++)
        dhbuf[k] = dhbuf[B * Hout + k] = a->dh_n ? a->dh_n[k] : (REAL)0;
    for (size_t k = 0; k < B * H; k++)
        dcstate[k] = a->dc_n ? a->dc_n[k] : (REAL)0;

    const REAL *pk_hh = a->packed + L.hh_bwd;
    const REAL *pk_hr = P ? a->packed + L.hr_bwd : NULL;
    REAL *gates = a->gates;
    const REAL *cells = a->cells, *c0 = a->c0, *dy = a->dy;

#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        size_t u0, u1, v0, v1; /* my hidden units; my columns of dh (H_out) */
        fl_split(H, nr, nth, tid, &u0, &u1);
        fl_split(Hout, nr, nth, tid, &v0, &v1);

        for (size_t k = 0; k < T; k++) {
            const size_t s = T - 1 - k;
            const size_t nb = fl_batch(&rw, s);
            const REAL *dcur = dhbuf + (k & 1) * B * Hout;
            REAL *dnext = dhbuf + ((k + 1) & 1) * B * Hout;
            REAL *dg = dgstep + (k & 1) * B * G4;

            if (P) { /* dh of this step = upstream + carried, then dr = dh W_hr */
                for (size_t j = 0; j < nb; j++) {
                    const size_t t = rev ? rw.len[j] - 1 - s : s;
                    const size_t row = fl_row(&rw, t, j);
                    for (size_t p = v0; p < v1; p++) {
                        REAL v = dy[row * a->lddy + p] + dcur[j * Hout + p];
                        dhp[j * P + p] = v;
                        dhtot[row * P + p] = v;
                    }
                }
#ifdef _OPENMP
#pragma omp barrier
#endif
                if (u1 > u0)
                    GEMM_PACKED(nb, u1 - u0, P, dhp, P, pk_hr + u0 * P, (REAL)0,
                                drstep + u0, H);
            }
            for (size_t j = 0; j < nb; j++) {
                const size_t t = rev ? rw.len[j] - 1 - s : s;
                const size_t row = fl_row(&rw, t, j);
                const int first = rev ? t == rw.len[j] - 1 : t == 0;
                const REAL *cp =
                    first ? (c0 ? c0 + j * H : zeros)
                          : cells + fl_row(&rw, rev ? t + 1 : t - 1, j) * H;
                /* d r_t = upstream dy + carried dh (P == 0), or dh W_hr (P) */
                const REAL *dyr = P ? drstep + j * H : dy + row * a->lddy;
                const REAL *dcr = P ? zeros : dcur + j * Hout;
                const REAL *cr = cells + row * H;
                if (P) /* r_t = o * tanh(c_t), for dW_hr after the loop */
                    for (size_t u = u0; u < u1; u++)
                        rstore[row * H + u] = gates[row * G4 + 3 * H + u] * TANH(cr[u]);
                if (u1 > u0)
                    FL_FN(gate_backward)(u1 - u0, H, dyr + u0, dcr + u0, cr + u0, cp + u0,
                                         gates + row * G4 + u0, dg + j * G4 + u0,
                                         dcstate + j * H + u0);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
            if (v1 > v0) /* dh_{t-1} = dgates W_hh for my columns */
                GEMM_PACKED(nb, v1 - v0, G4, dg, G4, pk_hh + v0 * G4, (REAL)0,
                            dnext + v0, Hout);
            /* rows >= nb have not started yet (backward runs from each
             * sequence's end): both buffers still hold their dh_n */
        }
    }
    memcpy(a->dh0, dhbuf + (T & 1) * B * Hout, B * Hout * sizeof(REAL));
    memcpy(a->dc0, dcstate, B * H * sizeof(REAL));

    /* weight gradients and dx: one GEMM each over all rows */
    GEMM(1, 0, G4, I, rows, (REAL)1, gates, G4, a->x, a->ldx, (REAL)1, a->dw_ih, I);
    GEMM(1, 0, G4, Hout, rows, (REAL)1, gates, G4, a->hprev, Hout, (REAL)1,
         a->dw_hh, Hout);
    if (P)
        GEMM(1, 0, P, H, rows, (REAL)1, dhtot, P, rstore, H, (REAL)1, a->dw_hr, H);
    if (a->dx)
        GEMM(0, 0, rows, I, G4, (REAL)1, gates, G4, a->w_ih, I,
             a->dx_accumulate ? (REAL)1 : (REAL)0, a->dx, a->lddx);
    if (a->dbias) {
        REAL *db = a->dbias;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) if (nt > 1 && rows * G4 > 65536) schedule(static)
#endif
        for (size_t cb = 0; cb < G4; cb += 64) { /* fixed order: rows ascending */
            size_t ce = cb + 64 < G4 ? cb + 64 : G4;
            for (size_t r = 0; r < rows; r++)
                for (size_t c = cb; c < ce; c++)
                    db[c] += gates[r * G4 + c];
        }
    }
    FL_FN(free_all)(owned, 8);
    fl_rows_free(&rw);
    return FL_OK;
}

#undef FL_FN
#undef GEMM
#undef GEMM_PACKED
#undef PACK_B
#undef PACKED_SIZE
#undef GEMM_NR
#undef SIGMOID
#undef TANH
#undef FWD_ARGS
#undef BWD_ARGS
