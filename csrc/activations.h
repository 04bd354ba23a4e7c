/* Numerically stable sigmoid and tanh for the gate loops.
 *
 * float: a branch-free exp (range reduction to [-ln2/2, ln2/2], degree-7
 * polynomial, exponent built from bits) that compilers vectorize inside the
 * gate loops; ~1 ulp.  double: libm (double exists for exact checks).
 * Inputs are clamped before exp, so nothing overflows and nothing is NaN for
 * any finite input (|x| up to FLT_MAX / DBL_MAX); NaN in gives NaN out.
 */
#ifndef FASTLSTM_ACTIVATIONS_H
#define FASTLSTM_ACTIVATIONS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) for x in [-87, 87] (caller clamps). */
static inline float fl_exp_clamped_s(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;
    const float ln2_lo = 1.42860682030941723212e-6f;
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: rounds to integer */
    float n = (x * log2e + round_magic) - round_magic;
    float r = (x - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float fl_clamp_s(float x, float lo, float hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

static inline float fl_sigmoid_s(float x)
{
    /* NaN passes through: the comparisons in fl_clamp_s are false for NaN.
     * Below -87 the true value is under FLT_MIN: return exactly 0 (as
     * 1/(1+inf) does), so a closed gate passes no signal and no gradient. */
    float s = 1.0f / (1.0f + fl_exp_clamped_s(fl_clamp_s(-x, -87.0f, 87.0f)));
    return x < -87.0f ? 0.0f : s;
}

static inline float fl_tanh_s(float x)
{
    float ax = fabsf(x);
    /* large |x|: 1 - 2/(exp(2|x|)+1) written with e = exp(-2|x|) <= 0.61,
     * so 1 - e has no cancellation */
    float e = fl_exp_clamped_s(fl_clamp_s(-2.0f * ax, -87.0f, 87.0f));
    float big = (1.0f - e) / (1.0f + e);
    /* small |x| < 0.25: odd Taylor series, error < 1e-10 */
    float x2 = x * x;
    float small = -1382.0f / 155925.0f;
    small = small * x2 + 62.0f / 2835.0f;
    small = small * x2 - 17.0f / 315.0f;
    small = small * x2 + 2.0f / 15.0f;
    small = small * x2 - 1.0f / 3.0f;
    small = x + x * x2 * small;
    float res = ax < 0.25f ? small : copysignf(big, x);
    return x != x ? x : res;
}

static inline double fl_sigmoid_d(double x)
{
    /* exp of a non-positive argument never overflows */
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return x != x ? x : e / (1.0 + e);
}

static inline double fl_tanh_d(double x) { return tanh(x); }

#endif /* FASTLSTM_ACTIVATIONS_H */
