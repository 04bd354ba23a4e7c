/* fl_fingerprint: a 64-bit digest of a byte buffer (declared in fastlstm.h).
 *
 * It tells whether an array a backward will read was modified in place
 * since its forward: the layer fingerprints its inputs, outputs and weights
 * at the forward and compares at the backward (fastlstm/layers/lstm.py).
 * Not a cryptographic hash: a detector of accidental changes, fast enough
 * to run over a training step's weights every step.
 *
 * Four independent lanes each take every fourth 8-byte word through
 * lane = (rotl(lane, 27) ^ word) * K, a bijection of the lane for a given
 * word: a change confined to one lane always changes that lane's final
 * value, and the lanes are mixed by bijective finalisers and summed, so it
 * always changes the digest.  The lanes keep four multiply chains in
 * flight, which is memory speed on current cores. */
#include <string.h>

#include "fastlstm.h"

#define FL_FP_K1 0x9E3779B97F4A7C15ull /* odd: multiplying by it is a bijection */
#define FL_FP_K2 0xC2B2AE3D27D4EB4Full

static uint64_t rotl64(uint64_t v, unsigned r) { return (v << r) | (v >> (64u - r)); }

static uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v); /* any alignment; the compiler emits one load */
    return v;
}

/* a bijective 64-bit finaliser (xor-shift / odd multiply rounds) */
static uint64_t mix64(uint64_t v)
{
    v ^= v >> 33;
    v *= FL_FP_K2;
    v ^= v >> 29;
    v *= FL_FP_K1;
    v ^= v >> 32;
    return v;
}

uint64_t fl_fingerprint(const void *data, size_t nbytes)
{
    const unsigned char *p = (const unsigned char *)data;
    uint64_t lane[4] = {FL_FP_K1, FL_FP_K2, ~FL_FP_K1, ~FL_FP_K2};
    size_t n = nbytes;
    while (n >= 32) {
        for (int j = 0; j < 4; j++)
            lane[j] = (rotl64(lane[j], 27) ^ load64(p + 8 * (size_t)j)) * FL_FP_K1;
        p += 32;
        n -= 32;
    }
    /* the last 0..31 bytes, zero-padded to whole words; the length below
     * tells a buffer from the same one with zeros appended */
    unsigned char tail[32] = {0};
    memcpy(tail, p, n);
    for (int j = 0; j < 4; j++)
        lane[j] = (rotl64(lane[j], 27) ^ load64(tail + 8 * (size_t)j)) * FL_FP_K1;
    uint64_t h = (uint64_t)nbytes * FL_FP_K2;
    for (int j = 0; j < 4; j++)
        h += rotl64(mix64(lane[j] + (uint64_t)j), (unsigned)(13 * j + 1));
    return mix64(h);
}
