/* Numerically stable sigmoid and tanh for the gate loops.
 *
 * float: branch-free, built on one exp (sigmoid) or expm1 (tanh) each, which
 * compilers vectorize inside the gate loops; within ~3 units of float
 * rounding (relative) everywhere (tests/layers/test_validation.py checks it).
 * double: libm (double exists for exact checks).
 * Inputs are clamped before exp, so nothing overflows and nothing is NaN for
 * any finite input (|x| up to FLT_MAX / DBL_MAX); NaN in gives NaN out.
 */
#ifndef FASTLSTM_ACTIVATIONS_H
#define FASTLSTM_ACTIVATIONS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* x = n ln2 + r with n integral and |r| <= ln2/2 (Cody-Waite: ln2 in two
 * parts, so r is exact to float rounding); 2^n from the exponent bits.
 * For x in [-87, 87], 2^n is a normal float. */
static inline float fl_exp_reduce_s(float x, float *r)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;
    const float ln2_lo = 1.42860682030941723212e-6f;
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: rounds to integer */
    float n = (x * log2e + round_magic) - round_magic;
    *r = (x - n * ln2_hi) - n * ln2_lo;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale;
}

/* (e^r - 1 - r) / r^2 for |r| <= ln2/2: degree 4, coefficients fitted for
 * the least maximum relative error of e^r (2e-9, far under float rounding;
 * the Taylor series needs degree 5 for that). */
static inline float fl_expm1_tail_s(float r)
{
    float q = 0.0013843650231137872f;
    q = q * r + 0.008374156430363655f;
    q = q * r + 0.04166800156235695f;
    q = q * r + 0.16666431725025177f;
    return q * r + 0.4999999403953552f;
}

/* exp(x) for x in [-87, 87] (caller clamps). */
static inline float fl_exp_clamped_s(float x)
{
    float r, scale = fl_exp_reduce_s(x, &r);
    return ((r * r) * fl_expm1_tail_s(r) + r + 1.0f) * scale;
}

/* exp(x) - 1 for x in [-87, 0] (caller clamps), without the cancellation of
 * exp(x) - 1 near 0: 2^n (e^r - 1) + (2^n - 1), where e^r - 1 = r + r^2 q(r)
 * and both 2^n (e^r - 1) and 2^n - 1 (n <= 0) are exact in float. */
static inline float fl_expm1_clamped_s(float x)
{
    float r, scale = fl_exp_reduce_s(x, &r);
    float em = (r * r) * fl_expm1_tail_s(r) + r;
    return scale * em + (scale - 1.0f);
}

/* lo <= x <= hi; NaN passes through (both comparisons are false for it). */
static inline float fl_clamp_s(float x, float lo, float hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

static inline float fl_sigmoid_s(float x)
{
    /* Below -87 the true value is under FLT_MIN: return exactly 0 (as
     * 1/(1+inf) does), so a closed gate passes no signal and no gradient. */
    float s = 1.0f / (1.0f + fl_exp_clamped_s(-fl_clamp_s(x, -87.0f, 87.0f)));
    return x < -87.0f ? 0.0f : s;
}

static inline float fl_tanh_s(float x)
{
    /* tanh|x| = -m / (2 + m) with m = expm1(-2|x|) in (-1, 0]: relative
     * accuracy at every |x| (near 0, m ~ -2|x| carries it), one division;
     * beyond |x| = 43.5 m rounds to -1 and the result to 1 */
    float t = -2.0f * fabsf(x);
    float m = fl_expm1_clamped_s(t < -87.0f ? -87.0f : t);
    return copysignf(-m / (2.0f + m), x);
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
