/* The LSTM cell with the options of the ONNX LSTM operator, on the time-loop
 * engine (engine.h): peepholes, clipping of the gate pre-activations,
 * coupled input and forget gates (f = 1 - i) and any of ONNX's activations,
 * with their alpha and beta, for F (gates i, f, o), G (the candidate g) and
 * Hc (the squash of c in the output).  fastlstm.h states the arithmetic and
 * fastlstm/reference.py is its specification:
 *
 *   zi = gates_i + p_i c_{t-1}     zf = gates_f + p_f c_{t-1}     zg = gates_g
 *   i = F(clip(zi))   f = input_forget ? 1 - i : F(clip(zf))   g = G(clip(zg))
 *   c_t = f c_{t-1} + i g
 *   zo = gates_o + p_o c_t         o = F(clip(zo))             r_t = o Hc(c_t)
 *
 * The same functions as cell_lstm.h, with the same gate count and therefore
 * the same packed weights and workspace; `opts` is the caller's
 * fl_cell_opts_* (checked by lstm_dispatch.c) and u0 the first unit of a
 * call's share, which places it in the peepholes (3H, blocks i, f, o).
 * Unlike cell_lstm.h, training keeps the pre-activations zi, zf, zg, zo
 * (before clipping) in `gates`: a general activation's derivative and
 * whether clip clamped both need the pre-activation, and backward
 * recomputes the activations from it.  One scalar loop with a switch per
 * activation: slower than cell_lstm.h's vector loops, which the plain LSTM
 * keeps to itself.
 *
 * Included by engine.h once per dtype, with REAL, FL_FN, SIGMOID, TANH,
 * BWD_ARGS and DT defined.
 */
#ifndef FL_CELL_GATES
#define FL_CELL_GATES 4
#endif

#define OPTS FL_GEMMX(fl_cell_opts, DT)
/* libm in REAL's precision (sizeof is a constant: one branch remains) */
#define OPT_EXP(x) (sizeof(REAL) == sizeof(float) ? (REAL)expf((float)(x)) : (REAL)exp((double)(x)))
#define OPT_EXPM1(x) \
    (sizeof(REAL) == sizeof(float) ? (REAL)expm1f((float)(x)) : (REAL)expm1((double)(x)))
#define OPT_LOG1P(x) \
    (sizeof(REAL) == sizeof(float) ? (REAL)log1pf((float)(x)) : (REAL)log1p((double)(x)))

/* Activation `kind` (FL_ACT_*) of x, with alpha a and beta b. */
static inline REAL FL_FN(opt_act)(int kind, REAL a, REAL b, REAL x)
{
    switch (kind) {
    case FL_ACT_SIGMOID:
        return SIGMOID(x);
    case FL_ACT_TANH:
        return TANH(x);
    case FL_ACT_RELU:
        return x > 0 ? x : (REAL)0;
    case FL_ACT_HARD_SIGMOID: {
        const REAL v = a * x + b;
        return v < 0 ? (REAL)0 : v > 1 ? (REAL)1 : v;
    }
    case FL_ACT_AFFINE:
        return a * x + b;
    case FL_ACT_LEAKY_RELU:
        return x >= 0 ? x : a * x;
    case FL_ACT_THRESHOLDED_RELU:
        return x > a ? x : (REAL)0;
    case FL_ACT_SCALED_TANH:
        return a * TANH(b * x);
    case FL_ACT_ELU:
        return x >= 0 ? x : a * OPT_EXPM1(x);
    case FL_ACT_SOFTSIGN:
        return x / (1 + (x < 0 ? -x : x));
    default: /* FL_ACT_SOFTPLUS: max(x, 0) + log(1 + exp(-|x|)) never overflows */
        return (x > 0 ? x : (REAL)0) + OPT_LOG1P(OPT_EXP(x < 0 ? x : -x));
    }
}

/* d act / dx at x, given y = act(x) (sigmoid's and tanh's come from y);
 * at a kink, the side the definition puts x on. */
static inline REAL FL_FN(opt_act_grad)(int kind, REAL a, REAL b, REAL x, REAL y)
{
    switch (kind) {
    case FL_ACT_SIGMOID:
        return y * (1 - y);
    case FL_ACT_TANH:
        return 1 - y * y;
    case FL_ACT_RELU:
        return x > 0 ? (REAL)1 : (REAL)0;
    case FL_ACT_HARD_SIGMOID: {
        const REAL v = a * x + b;
        return v > 0 && v < 1 ? a : (REAL)0;
    }
    case FL_ACT_AFFINE:
        return a;
    case FL_ACT_LEAKY_RELU:
        return x >= 0 ? (REAL)1 : a;
    case FL_ACT_THRESHOLDED_RELU:
        return x > a ? (REAL)1 : (REAL)0;
    case FL_ACT_SCALED_TANH: {
        const REAL t = TANH(b * x);
        return a * b * (1 - t * t);
    }
    case FL_ACT_ELU:
        return x >= 0 ? (REAL)1 : a * OPT_EXP(x);
    case FL_ACT_SOFTSIGN: {
        const REAL d = 1 + (x < 0 ? -x : x);
        return 1 / (d * d);
    }
    default: /* FL_ACT_SOFTPLUS */
        return SIGMOID(x);
    }
}

/* clip(z) (clip == 0: z itself); NaN passes through. */
static inline REAL FL_FN(opt_clip)(REAL z, REAL clip)
{
    if (clip > 0) {
        z = z < -clip ? -clip : z;
        z = z > clip ? clip : z;
    }
    return z;
}

/* Whether clip(z)'s gradient passes: z within [-clip, clip], or no clip. */
static inline int FL_FN(opt_passes)(REAL z, REAL clip)
{
    return !(clip > 0) || (z >= -clip && z <= clip);
}

/* F, G or Hc (k = 0, 1, 2) of the options at x, and its derivative. */
#define OPT_ACT(op, k, x) FL_FN(opt_act)((op)->act[k], (op)->alpha[k], (op)->beta[k], x)
#define OPT_GRAD(op, k, x, y) FL_FN(opt_act_grad)((op)->act[k], (op)->alpha[k], (op)->beta[k], x, y)

/* The gate loop of one batch row over nu units (cell_lstm.h's
 * gate_forward, with the options): acc holds the product in group layout
 * (U columns per gate), bias the bias in the same layout; cs holds c_{t-1}
 * and gets c_t; r_t goes to rout and, when yout is not NULL, to yout; with gr
 * (training), the pre-activations zi, zf, zg, zo to gr in the 4H layout. */
static void FL_FN(gate_forward)(size_t nu, size_t U, size_t H, REAL *restrict acc,
                                const REAL *restrict bias, REAL *restrict gr, REAL *restrict cs,
                                REAL *restrict rout, REAL *restrict yout, const void *opts,
                                size_t u0)
{
    const OPTS *op = opts;
    const REAL *pp = op->peephole ? op->peephole + u0 : NULL; /* p_i at pp, p_f at pp + H, p_o */
    const REAL clip = op->clip;
    for (size_t k = 0; k < nu; k++) {
        const REAL cprev = cs[k];
        REAL zi = acc[k] + bias[k], zf = acc[U + k] + bias[U + k];
        const REAL zg = acc[2 * U + k] + bias[2 * U + k];
        if (pp) {
            zi += pp[k] * cprev;
            zf += pp[H + k] * cprev;
        }
        const REAL i = OPT_ACT(op, 0, FL_FN(opt_clip)(zi, clip));
        const REAL f = op->input_forget ? 1 - i : OPT_ACT(op, 0, FL_FN(opt_clip)(zf, clip));
        const REAL g = OPT_ACT(op, 1, FL_FN(opt_clip)(zg, clip));
        const REAL c = f * cprev + i * g;
        REAL zo = acc[3 * U + k] + bias[3 * U + k];
        if (pp)
            zo += pp[2 * H + k] * c;
        const REAL r = OPT_ACT(op, 0, FL_FN(opt_clip)(zo, clip)) * OPT_ACT(op, 2, c);
        cs[k] = c;
        rout[k] = r;
        if (yout)
            yout[k] = r;
        if (gr) {
            gr[k] = zi;
            gr[H + k] = zf;
            gr[2 * H + k] = zg;
            gr[3 * H + k] = zo;
        }
    }
}

/* The gate gradients of one batch row over n units (cell_lstm.h's
 * gate_backward, with the options): dr = dyr + dcr is the gradient of r_t;
 * gr holds the pre-activations zi, zf, zg, zo and is overwritten with their
 * gradients (also written to dgr); dcs carries dc from step t+1 in and to
 * step t-1 out.  With input_forget, f = 1 - i passes its gradient to i
 * (and zf's is 0); the peepholes add p dz to the gradients of the cell
 * states they read. */
static void FL_FN(gate_backward)(size_t n, size_t H, const REAL *restrict dyr,
                                 const REAL *restrict dcr, const REAL *restrict cr,
                                 const REAL *restrict cp, REAL *restrict gr, REAL *restrict dgr,
                                 REAL *restrict dcs, const void *opts, size_t u0)
{
    const OPTS *op = opts;
    const REAL *pp = op->peephole ? op->peephole + u0 : NULL;
    const REAL clip = op->clip;
    for (size_t u = 0; u < n; u++) {
        const REAL dr = dyr[u] + dcr[u];
        const REAL zi = gr[u], zf = gr[H + u], zg = gr[2 * H + u], zo = gr[3 * H + u];
        const REAL ai = FL_FN(opt_clip)(zi, clip), ag = FL_FN(opt_clip)(zg, clip);
        const REAL ao = FL_FN(opt_clip)(zo, clip);
        const REAL i = OPT_ACT(op, 0, ai), g = OPT_ACT(op, 1, ag), o = OPT_ACT(op, 0, ao);
        const REAL c = cr[u], hc = OPT_ACT(op, 2, c);
        const REAL dzo = FL_FN(opt_passes)(zo, clip) ? dr * hc * OPT_GRAD(op, 0, ao, o) : 0;
        REAL dc = dcs[u] + dr * o * OPT_GRAD(op, 2, c, hc);
        if (pp)
            dc += dzo * pp[2 * H + u];
        REAL di = dc * g, dzf = 0, f;
        const REAL df = dc * cp[u];
        if (op->input_forget) {
            di -= df;
            f = 1 - i;
        } else {
            const REAL af = FL_FN(opt_clip)(zf, clip);
            f = OPT_ACT(op, 0, af);
            if (FL_FN(opt_passes)(zf, clip))
                dzf = df * OPT_GRAD(op, 0, af, f);
        }
        const REAL dzi = FL_FN(opt_passes)(zi, clip) ? di * OPT_GRAD(op, 0, ai, i) : 0;
        const REAL dzg = FL_FN(opt_passes)(zg, clip) ? dc * i * OPT_GRAD(op, 1, ag, g) : 0;
        REAL dcprev = dc * f;
        if (pp)
            dcprev += dzi * pp[u] + dzf * pp[H + u];
        dcs[u] = dcprev;
        gr[u] = dgr[u] = dzi;
        gr[H + u] = dgr[H + u] = dzf;
        gr[2 * H + u] = dgr[2 * H + u] = dzg;
        gr[3 * H + u] = dgr[3 * H + u] = dzo;
    }
}

/* r_t = o Hc(c_t) of n units from the pre-activations gr (4H layout) and
 * c_t (cr), as cell_lstm.h's (the engine calls it for a projection only,
 * which lstm_dispatch.c refuses with options). */
static void FL_FN(cell_output)(size_t n, size_t H, const REAL *restrict gr, const REAL *restrict cr,
                               REAL *restrict r, const void *opts, size_t u0)
{
    const OPTS *op = opts;
    (void)u0;
    for (size_t u = 0; u < n; u++)
        r[u] = OPT_ACT(op, 0, FL_FN(opt_clip)(gr[3 * H + u], op->clip)) * OPT_ACT(op, 2, cr[u]);
}

/* The peepholes' gradient, after the backward loop: over every row, in
 * ascending order on one thread (so the same bits for any thread count),
 * dp_i += dzi c_{t-1}, dp_f += dzf c_{t-1}, dp_o += dzo c_t, from the gate
 * gradients the loop left in a->gates and the cell states (c_{t-1} of a
 * sequence's first step: c0, or zeros, H of them). */
static void FL_FN(cell_grads)(const fl_shape *sh, const fl_rows *rw, const BWD_ARGS *a,
                              const REAL *zeros, const void *opts)
{
    const OPTS *op = opts;
    if (!op || !op->peephole || !op->d_peephole)
        return;
    const size_t H = sh->H, GH = FL_CELL_GATES * H;
    const int rev = sh->reverse;
    REAL *restrict dp = op->d_peephole;
    size_t t = 0; /* the step of row r */
    for (size_t r = 0; r < rw->rows; r++) {
        while (r >= rw->off[t + 1])
            t++;
        const size_t j = r - rw->off[t];
        const int first = rev ? t == rw->len[j] - 1 : t == 0;
        const REAL *cprev = first ? (a->c0 ? a->c0 + j * H : zeros)
                                  : a->cells + fl_row(rw, rev ? t + 1 : t - 1, j) * H;
        const REAL *c = a->cells + r * H, *dz = a->gates + r * GH;
        for (size_t u = 0; u < H; u++) {
            dp[u] += dz[u] * cprev[u];
            dp[H + u] += dz[H + u] * cprev[u];
            dp[2 * H + u] += dz[3 * H + u] * c[u];
        }
    }
}

#undef OPTS
#undef OPT_EXP
#undef OPT_EXPM1
#undef OPT_LOG1P
#undef OPT_ACT
#undef OPT_GRAD
