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
 * recomputes the activations from it.  The elementwise work is vector
 * loops as in cell_lstm.h: per gate block one switch picks the
 * activation's loop (sigmoid and tanh are cell_lstm.h's SIGMOID and TANH),
 * clip is a clamp inside it, and the peepholes, input_forget and (backward)
 * whether there is a clip are constants of inlined loop variants.  Only
 * Softplus (libm's log1p) and, for double, the libm-based activations stay
 * scalar.
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

/* clip(z) (clip == 0: z itself); NaN passes through. */
static inline REAL FL_FN(opt_clip)(REAL z, REAL clip)
{
    if (clip > 0) {
        z = z < -clip ? -clip : z;
        z = z > clip ? clip : z;
    }
    return z;
}

/* The vector loops.  Per gate block, one switch on the activation picks a
 * loop under FL_SIMD, so each activation's loop vectorizes on its own (a
 * switch per element keeps the compiler from vectorizing any of them).
 * lo, hi bound the clamp of clip: -clip, clip, or -inf, inf without clip
 * (clamping to them is the identity, NaN included). */
#ifndef FL_CELL_OPTIONS_ONCE
#define FL_CELL_OPTIONS_ONCE
/* expm1(x) and exp(x) for x <= 0 (NaN passes): float from activations.h's
 * vectorizable exp, double from libm */
static inline float fl_opt_expm1_neg_s(float x)
{
    return fl_expm1_clamped_s(x < -87.0f ? -87.0f : x);
}
static inline double fl_opt_expm1_neg_d(double x) { return expm1(x); }
static inline float fl_opt_exp_neg_s(float x)
{
    /* below -87 exp(x) is under FLT_MIN: 0, as for the sigmoid */
    return x < -87.0f ? 0.0f : fl_exp_clamped_s(x);
}
static inline double fl_opt_exp_neg_d(double x) { return exp(x); }
#endif
#define OPT_EXPM1_NEG FL_GEMMX(fl_opt_expm1_neg, S)
#define OPT_EXP_NEG FL_GEMMX(fl_opt_exp_neg, S)
#define OPT_CLAMP(z, lo, hi) ((z) < (lo) ? (lo) : (z) > (hi) ? (hi) : (z))

/* y = act(clamp(z)) of n units (y may be z). */
static void FL_FN(opt_act_block)(int kind, REAL a, REAL b, REAL lo, REAL hi, const REAL *z, REAL *y,
                                 size_t n)
{
#define OPT_LOOP(expr)                              \
    do {                                            \
        FL_SIMD                                     \
        for (size_t k = 0; k < n; k++) {            \
            const REAL x = OPT_CLAMP(z[k], lo, hi); \
            y[k] = (expr);                          \
        }                                           \
    } while (0)
    switch (kind) {
    case FL_ACT_SIGMOID:
        OPT_LOOP(SIGMOID(x));
        break;
    case FL_ACT_TANH:
        OPT_LOOP(TANH(x));
        break;
    case FL_ACT_RELU:
        OPT_LOOP(x > 0 ? x : (REAL)0);
        break;
    case FL_ACT_HARD_SIGMOID:
        OPT_LOOP(OPT_CLAMP(a * x + b, (REAL)0, (REAL)1));
        break;
    case FL_ACT_AFFINE:
        OPT_LOOP(a * x + b);
        break;
    case FL_ACT_LEAKY_RELU:
        OPT_LOOP(x >= 0 ? x : a * x);
        break;
    case FL_ACT_THRESHOLDED_RELU:
        OPT_LOOP(x > a ? x : (REAL)0);
        break;
    case FL_ACT_SCALED_TANH:
        OPT_LOOP(a * TANH(b * x));
        break;
    case FL_ACT_ELU:
        OPT_LOOP(x >= 0 ? x : a * OPT_EXPM1_NEG(x > 0 ? (REAL)0 : x));
        break;
    case FL_ACT_SOFTSIGN:
        OPT_LOOP(x / (1 + (x < 0 ? -x : x)));
        break;
    default: /* FL_ACT_SOFTPLUS: libm's log1p and exp, scalar */
        for (size_t k = 0; k < n; k++)
            y[k] = FL_FN(opt_act)(FL_ACT_SOFTPLUS, a, b, OPT_CLAMP(z[k], lo, hi));
        break;
    }
#undef OPT_LOOP
}

/* y = act(clamp(z)) and d = act'(clamp(z)) of n units; at a kink, the side
 * the definition puts x on (whether clip's gradient passes is the caller's). */
static void FL_FN(opt_grad_block)(int kind, REAL a, REAL b, REAL lo, REAL hi, const REAL *z,
                                  REAL *restrict y, REAL *restrict d, size_t n)
{
#define OPT_LOOP(...)                               \
    do {                                            \
        FL_SIMD                                     \
        for (size_t k = 0; k < n; k++) {            \
            const REAL x = OPT_CLAMP(z[k], lo, hi); \
            __VA_ARGS__                             \
        }                                           \
    } while (0)
    switch (kind) {
    case FL_ACT_SIGMOID:
        OPT_LOOP(const REAL s = SIGMOID(x); y[k] = s; d[k] = s * (1 - s););
        break;
    case FL_ACT_TANH:
        OPT_LOOP(const REAL t = TANH(x); y[k] = t; d[k] = 1 - t * t;);
        break;
    case FL_ACT_RELU:
        OPT_LOOP(y[k] = x > 0 ? x : (REAL)0; d[k] = x > 0 ? (REAL)1 : (REAL)0;);
        break;
    case FL_ACT_HARD_SIGMOID:
        OPT_LOOP(const REAL v = a * x + b; y[k] = OPT_CLAMP(v, (REAL)0, (REAL)1);
                 d[k] = v > 0 && v < 1 ? a : (REAL)0;);
        break;
    case FL_ACT_AFFINE:
        OPT_LOOP(y[k] = a * x + b; d[k] = a;);
        break;
    case FL_ACT_LEAKY_RELU:
        OPT_LOOP(y[k] = x >= 0 ? x : a * x; d[k] = x >= 0 ? (REAL)1 : a;);
        break;
    case FL_ACT_THRESHOLDED_RELU:
        OPT_LOOP(y[k] = x > a ? x : (REAL)0; d[k] = x > a ? (REAL)1 : (REAL)0;);
        break;
    case FL_ACT_SCALED_TANH:
        OPT_LOOP(const REAL t = TANH(b * x); y[k] = a * t; d[k] = a * b * (1 - t * t););
        break;
    case FL_ACT_ELU:
        OPT_LOOP(const REAL xn = x > 0 ? (REAL)0 : x; y[k] = x >= 0 ? x : a * OPT_EXPM1_NEG(xn);
                 d[k] = x >= 0 ? (REAL)1 : a * OPT_EXP_NEG(xn););
        break;
    case FL_ACT_SOFTSIGN:
        OPT_LOOP(const REAL e = 1 + (x < 0 ? -x : x); y[k] = x / e; d[k] = 1 / (e * e););
        break;
    default: /* FL_ACT_SOFTPLUS: libm's log1p and exp, scalar; its derivative is the sigmoid */
        for (size_t k = 0; k < n; k++) {
            const REAL x = OPT_CLAMP(z[k], lo, hi);
            y[k] = FL_FN(opt_act)(FL_ACT_SOFTPLUS, a, b, x);
        }
        OPT_LOOP(d[k] = SIGMOID(x););
        break;
    }
#undef OPT_LOOP
}

/* Whether clip(z)'s gradient passes: z within [lo, hi], or no clip (then
 * NaN passes too). */
#define OPT_PASSES(z, lo, hi, noclip) ((noclip) || ((z) >= (lo) && (z) <= (hi)))

/* F, G or Hc (k = 0, 1, 2) of the options, clamped to [lo, hi], as blocks. */
#define OPT_ACTB(op, k, lo, hi, z, y, n) \
    FL_FN(opt_act_block)((op)->act[k], (op)->alpha[k], (op)->beta[k], lo, hi, z, y, n)
#define OPT_GRADB(op, k, lo, hi, z, y, d, n) \
    FL_FN(opt_grad_block)((op)->act[k], (op)->alpha[k], (op)->beta[k], lo, hi, z, y, d, n)

/* The forward's elementwise loops with the peepholes (pp, else NULL) and
 * input_forget as constants (inlined per combination: no test per element).
 * acc: the group layout (U columns per gate, nu used). */
static inline __attribute__((always_inline)) void FL_FN(opt_fwd_loops)(
    size_t nu, size_t U, size_t H, REAL *restrict acc, const REAL *restrict bias, REAL *restrict gr,
    REAL *restrict cs, REAL *restrict rout, REAL *restrict yout, const OPTS *op,
    const REAL *restrict pp, const int peep, const int coupled)
{
    const REAL lo = op->clip > 0 ? -op->clip : -(REAL)INFINITY;
    const REAL hi = op->clip > 0 ? op->clip : (REAL)INFINITY;
    REAL *ai = acc, *af = acc + U, *ag = acc + 2 * U, *ao = acc + 3 * U;
    /* the pre-activations zi, zf, zg */
    FL_SIMD
    for (size_t k = 0; k < nu; k++) {
        REAL zi = ai[k] + bias[k], zf = af[k] + bias[U + k];
        if (peep) {
            zi += pp[k] * cs[k];
            zf += pp[H + k] * cs[k];
        }
        ai[k] = zi;
        af[k] = zf;
        ag[k] = ag[k] + bias[2 * U + k];
    }
    if (gr)
        for (size_t q = 0; q < 3; q++)
            memcpy(gr + q * H, acc + q * U, nu * sizeof(REAL));
    OPT_ACTB(op, 0, lo, hi, ai, ai, nu);
    if (!coupled)
        OPT_ACTB(op, 0, lo, hi, af, af, nu);
    OPT_ACTB(op, 1, lo, hi, ag, ag, nu);
    /* c_t, and zo */
    FL_SIMD
    for (size_t k = 0; k < nu; k++) {
        const REAL f = coupled ? 1 - ai[k] : af[k];
        const REAL c = f * cs[k] + ai[k] * ag[k];
        REAL zo = ao[k] + bias[3 * U + k];
        if (peep)
            zo += pp[2 * H + k] * c;
        cs[k] = c;
        ao[k] = zo;
    }
    if (gr)
        memcpy(gr + 3 * H, ao, nu * sizeof(REAL));
    OPT_ACTB(op, 0, lo, hi, ao, ao, nu);
    /* Hc(c_t) in the block of f, no longer needed; r_t = o Hc(c_t) */
    OPT_ACTB(op, 2, -(REAL)INFINITY, (REAL)INFINITY, cs, af, nu);
    if (yout) {
        FL_SIMD
        for (size_t k = 0; k < nu; k++) {
            const REAL r = ao[k] * af[k];
            rout[k] = r;
            yout[k] = r;
        }
    } else {
        FL_SIMD
        for (size_t k = 0; k < nu; k++)
            rout[k] = ao[k] * af[k];
    }
}

/* The gate loop of one batch row over nu units (cell_lstm.h's
 * gate_forward, with the options): acc holds the product in group layout
 * (U columns per gate), bias the bias in the same layout, and acc is
 * scratch; cs holds c_{t-1} and gets c_t; r_t goes to rout and, when yout
 * is not NULL, to yout; with gr (training), the pre-activations zi, zf, zg,
 * zo to gr in the 4H layout. */
static void FL_FN(gate_forward)(size_t nu, size_t U, size_t H, REAL *restrict acc,
                                const REAL *restrict bias, REAL *restrict gr, REAL *restrict cs,
                                REAL *restrict rout, REAL *restrict yout, const void *opts,
                                size_t u0)
{
    const OPTS *op = opts;
    const REAL *pp = op->peephole ? op->peephole + u0 : NULL; /* p_i at pp, p_f at pp + H, p_o */
    if (pp) {
        if (op->input_forget)
            FL_FN(opt_fwd_loops)(nu, U, H, acc, bias, gr, cs, rout, yout, op, pp, 1, 1);
        else
            FL_FN(opt_fwd_loops)(nu, U, H, acc, bias, gr, cs, rout, yout, op, pp, 1, 0);
    } else {
        if (op->input_forget)
            FL_FN(opt_fwd_loops)(nu, U, H, acc, bias, gr, cs, rout, yout, op, pp, 0, 1);
        else
            FL_FN(opt_fwd_loops)(nu, U, H, acc, bias, gr, cs, rout, yout, op, pp, 0, 0);
    }
}

/* The backward works on chunks of this many units, with its activations
 * and derivatives in arrays on the stack. */
#define OPT_CHUNK 64

/* The backward's combining loop over one chunk of n units, with the
 * peepholes, input_forget and whether there is no clip as constants
 * (inlined per combination: a flag tested per element keeps gcc from
 * vectorizing the loop).
 * s: i, i', f, f', g, g', o, o', Hc(c), Hc'(c) (OPT_CHUNK each). */
static inline __attribute__((always_inline)) void FL_FN(opt_bwd_loop)(
    size_t n, size_t H, const REAL *restrict dyr, const REAL *restrict dcr, const REAL *restrict cp,
    REAL *restrict gr, REAL *restrict dgr, REAL *restrict dcs, const REAL *restrict s, REAL lo,
    REAL hi, const REAL *restrict pp, const int peep, const int coupled, const int noclip)
{
    FL_SIMD
    for (size_t u = 0; u < n; u++) {
        const REAL dr = dyr[u] + dcr[u];
        const REAL zi = gr[u], zf = gr[H + u], zg = gr[2 * H + u], zo = gr[3 * H + u];
        const REAL i = s[u], g = s[4 * OPT_CHUNK + u], o = s[6 * OPT_CHUNK + u],
                   hc = s[8 * OPT_CHUNK + u];
        const REAL dzo = OPT_PASSES(zo, lo, hi, noclip) ? dr * hc * s[7 * OPT_CHUNK + u] : 0;
        REAL dc = dcs[u] + dr * o * s[9 * OPT_CHUNK + u];
        if (peep)
            dc += dzo * pp[2 * H + u];
        REAL di = dc * g, dzf = 0, f;
        const REAL df = dc * cp[u];
        if (coupled) {
            di -= df;
            f = 1 - i;
        } else {
            f = s[2 * OPT_CHUNK + u];
            dzf = OPT_PASSES(zf, lo, hi, noclip) ? df * s[3 * OPT_CHUNK + u] : 0;
        }
        const REAL dzi = OPT_PASSES(zi, lo, hi, noclip) ? di * s[OPT_CHUNK + u] : 0;
        const REAL dzg = OPT_PASSES(zg, lo, hi, noclip) ? dc * i * s[5 * OPT_CHUNK + u] : 0;
        REAL dcprev = dc * f;
        if (peep)
            dcprev += dzi * pp[u] + dzf * pp[H + u];
        dcs[u] = dcprev;
        gr[u] = dgr[u] = dzi;
        gr[H + u] = dgr[H + u] = dzf;
        gr[2 * H + u] = dgr[2 * H + u] = dzg;
        gr[3 * H + u] = dgr[3 * H + u] = dzo;
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
    const int noclip = !(op->clip > 0), coupled = op->input_forget != 0;
    const REAL lo = noclip ? -(REAL)INFINITY : -op->clip;
    const REAL hi = noclip ? (REAL)INFINITY : op->clip;
    REAL s[10][OPT_CHUNK];
    for (size_t u = 0; u < n; u += OPT_CHUNK) {
        const size_t m = n - u < OPT_CHUNK ? n - u : OPT_CHUNK;
        REAL *g = gr + u;
        OPT_GRADB(op, 0, lo, hi, g, s[0], s[1], m);
        if (!coupled)
            OPT_GRADB(op, 0, lo, hi, g + H, s[2], s[3], m);
        OPT_GRADB(op, 1, lo, hi, g + 2 * H, s[4], s[5], m);
        OPT_GRADB(op, 0, lo, hi, g + 3 * H, s[6], s[7], m);
        OPT_GRADB(op, 2, -(REAL)INFINITY, (REAL)INFINITY, cr + u, s[8], s[9], m);
        const REAL *p = pp ? pp + u : NULL;
#define OPT_BWD(peep, coupled, noclip)                                                        \
    FL_FN(opt_bwd_loop)(m, H, dyr + u, dcr + u, cp + u, g, dgr + u, dcs + u, s[0], lo, hi, p, \
                        peep, coupled, noclip)
        switch ((p ? 4 : 0) + (coupled ? 2 : 0) + (noclip ? 1 : 0)) {
        case 0:
            OPT_BWD(0, 0, 0);
            break;
        case 1:
            OPT_BWD(0, 0, 1);
            break;
        case 2:
            OPT_BWD(0, 1, 0);
            break;
        case 3:
            OPT_BWD(0, 1, 1);
            break;
        case 4:
            OPT_BWD(1, 0, 0);
            break;
        case 5:
            OPT_BWD(1, 0, 1);
            break;
        case 6:
            OPT_BWD(1, 1, 0);
            break;
        default:
            OPT_BWD(1, 1, 1);
            break;
        }
#undef OPT_BWD
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
        r[u] = FL_FN(opt_act)(op->act[0], op->alpha[0], op->beta[0],
                              FL_FN(opt_clip)(gr[3 * H + u], op->clip)) *
               FL_FN(opt_act)(op->act[2], op->alpha[2], op->beta[2], cr[u]);
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
        FL_SIMD
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
#undef OPT_ACTB
#undef OPT_GRADB
#undef OPT_PASSES
#undef OPT_CLAMP
#undef OPT_EXPM1_NEG
#undef OPT_EXP_NEG
#undef OPT_CHUNK
