/* The LSTM cell on the time-loop engine (engine.h): its gate count and the
 * elementwise work of a step, forward and backward.  Everything else (the
 * products, the thread split, the row bookkeeping, the workspace) is the
 * engine's.  A variant cell (cell_options.h: peepholes, clipping, coupled
 * input-forget gates, ONNX's activations; later LayerNorm) is another
 * header with the same four functions and FL_CELL_GATES.  Each function
 * takes the cell's options (`opts`, the engine passes what its caller gave,
 * NULL for this cell) and the first unit of its share (u0), which this
 * cell does not need.
 *
 * Included by engine.h once per dtype, after it has defined REAL, FL_FN,
 * SIGMOID, TANH and FL_SIMD.  Gates are i, f, g, o (PyTorch's order); a
 * row's gates are FL_CELL_GATES blocks of H (the 4H layout of `gates`) or,
 * on the forward product's tile, of U units (the group layout).
 *
 *   i, f, o = sigmoid(.)   g = tanh(.)
 *   c_t = f * c_{t-1} + i * g          r_t = o * tanh(c_t)
 */
#ifndef FL_CELL_GATES
#define FL_CELL_GATES 4
#endif

/* The fused gate loop of one batch row over nu units (all four gates of
 * them).  acc holds the product [x_t | h_{t-1}] [W_ih | W_hh]^T in group
 * layout (U columns per gate), bias the bias in the same layout; acc gets
 * the activations, the new cell state goes to cs, r = o * tanh(c) to rout
 * and, when yout is not NULL, to yout (stored in the same loop: a memcpy
 * call per row and group costs more than the stores), and, when gr is not
 * NULL (training), the activations to gr in the 4H layout. */
static void FL_FN(gate_forward)(size_t nu, size_t U, size_t H, REAL *restrict acc,
                                const REAL *restrict bias, REAL *restrict gr, REAL *restrict cs,
                                REAL *restrict rout, REAL *restrict yout, const void *opts,
                                size_t u0)
{
    (void)opts;
    (void)u0;
    /* one loop per activation: each keeps its constants in registers (one
     * fused loop spills them to the stack) */
    FL_SIMD
    for (size_t k = 0; k < nu; k++)
        acc[k] = SIGMOID(acc[k] + bias[k]);
    FL_SIMD
    for (size_t k = 0; k < nu; k++)
        acc[U + k] = SIGMOID(acc[U + k] + bias[U + k]);
    FL_SIMD
    for (size_t k = 0; k < nu; k++)
        acc[2 * U + k] = TANH(acc[2 * U + k] + bias[2 * U + k]);
    FL_SIMD
    for (size_t k = 0; k < nu; k++)
        acc[3 * U + k] = SIGMOID(acc[3 * U + k] + bias[3 * U + k]);
    if (yout) {
        FL_SIMD
        for (size_t k = 0; k < nu; k++) {
            REAL c = acc[U + k] * cs[k] + acc[k] * acc[2 * U + k];
            REAL r = acc[3 * U + k] * TANH(c);
            cs[k] = c;
            rout[k] = r;
            yout[k] = r;
        }
    } else {
        FL_SIMD
        for (size_t k = 0; k < nu; k++) {
            REAL c = acc[U + k] * cs[k] + acc[k] * acc[2 * U + k];
            cs[k] = c;
            rout[k] = acc[3 * U + k] * TANH(c);
        }
    }
    if (gr)
        for (size_t q = 0; q < FL_CELL_GATES; q++)
            memcpy(gr + q * H, acc + q * U, nu * sizeof(REAL));
}

/* The gate gradients of one batch row over n units: dr = dyr + dcr is the
 * gradient of r_t = o * tanh(c_t); gr holds the activations i, f, g, o and is
 * overwritten with the pre-activation gradients (also written to dgr); dcs
 * carries dc from step t+1 in and to step t-1 out. */
static void FL_FN(gate_backward)(size_t n, size_t H, const REAL *restrict dyr,
                                 const REAL *restrict dcr, const REAL *restrict cr,
                                 const REAL *restrict cp, REAL *restrict gr, REAL *restrict dgr,
                                 REAL *restrict dcs, const void *opts, size_t u0)
{
    (void)opts;
    (void)u0;
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

/* r_t = o * tanh(c_t) of n units, from the activations gr (4H layout) and
 * c_t (cr): the projection's input, which backward recomputes for dW_hr. */
static void FL_FN(cell_output)(size_t n, size_t H, const REAL *restrict gr, const REAL *restrict cr,
                               REAL *restrict r, const void *opts, size_t u0)
{
    (void)opts;
    (void)u0;
    for (size_t u = 0; u < n; u++)
        r[u] = gr[3 * H + u] * TANH(cr[u]);
}

/* After the backward loop: the gradients of the cell's own parameters, from
 * the gate gradients (a->gates), the cell states and c0 of every row (rw, and
 * zeros: H zeros).  The plain LSTM has none. */
static void FL_FN(cell_grads)(const fl_shape *sh, const fl_rows *rw, const BWD_ARGS *a,
                              const REAL *zeros, const void *opts)
{
    (void)sh;
    (void)rw;
    (void)a;
    (void)zeros;
    (void)opts;
}
