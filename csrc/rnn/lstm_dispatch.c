/* Picks the LSTM kernel variant matching the GEMM's ISA choice, once, and
 * forwards the public fastlstm.h functions to it. */
#include <string.h>

#include "fastlstm.h"
#include "gemm.h"

#define FL_DECLARE_VARIANT(REAL, S, ISA)                                       \
    size_t fl_lstm_packed_size_##S##_##ISA(size_t I, size_t H, size_t P);      \
    void fl_lstm_pack_##S##_##ISA(size_t I, size_t H, size_t P,                \
                                  const REAL *w_ih, const REAL *w_hh,          \
                                  const REAL *w_hr, REAL *blob);               \
    int fl_lstm_forward_##S##_##ISA(const fl_shape *sh,                        \
                                    const fl_forward_##S *a);                  \
    size_t fl_lstm_forward_workspace_##S##_##ISA(const fl_shape *sh);          \
    int fl_lstm_backward_##S##_##ISA(const fl_shape *sh,                       \
                                     const fl_backward_##S *a);

#define FL_DECLARE_ISA(ISA)                                                    \
    FL_DECLARE_VARIANT(float, s, ISA)                                          \
    FL_DECLARE_VARIANT(double, d, ISA)

FL_DECLARE_ISA(generic)
#ifdef FL_HAVE_AVX2
FL_DECLARE_ISA(avx2)
#endif
#ifdef FL_HAVE_AVX512
FL_DECLARE_ISA(avx512)
#endif

typedef struct fl_variant {
    const char *name;
    size_t (*packed_size_s)(size_t, size_t, size_t);
    void (*pack_s)(size_t, size_t, size_t, const float *, const float *,
                   const float *, float *);
    int (*forward_s)(const fl_shape *, const fl_forward_s *);
    size_t (*workspace_s)(const fl_shape *);
    int (*backward_s)(const fl_shape *, const fl_backward_s *);
    size_t (*packed_size_d)(size_t, size_t, size_t);
    void (*pack_d)(size_t, size_t, size_t, const double *, const double *,
                   const double *, double *);
    int (*forward_d)(const fl_shape *, const fl_forward_d *);
    size_t (*workspace_d)(const fl_shape *);
    int (*backward_d)(const fl_shape *, const fl_backward_d *);
} fl_variant;

#define FL_VARIANT(ISA)                                                        \
    {#ISA,                                                                     \
     fl_lstm_packed_size_s_##ISA, fl_lstm_pack_s_##ISA,                        \
     fl_lstm_forward_s_##ISA, fl_lstm_forward_workspace_s_##ISA,               \
     fl_lstm_backward_s_##ISA,                                                 \
     fl_lstm_packed_size_d_##ISA, fl_lstm_pack_d_##ISA,                        \
     fl_lstm_forward_d_##ISA, fl_lstm_forward_workspace_d_##ISA,               \
     fl_lstm_backward_d_##ISA}

static const fl_variant variants[] = {
    FL_VARIANT(generic),
#ifdef FL_HAVE_AVX2
    FL_VARIANT(avx2),
#endif
#ifdef FL_HAVE_AVX512
    FL_VARIANT(avx512),
#endif
};

static const fl_variant *active = NULL;

const char *fl_init(void)
{
    if (active == NULL) {
        const char *isa = fl_gemm_init();
        const fl_variant *v = &variants[0];
        for (size_t k = 0; k < sizeof variants / sizeof variants[0]; k++)
            if (strcmp(variants[k].name, isa) == 0)
                v = &variants[k];
        active = v;
    }
    return active->name;
}

#define FL_FORWARD_API(REAL, S)                                                \
    size_t fl_lstm_packed_size_##S(size_t I, size_t H, size_t P)               \
    {                                                                          \
        fl_init();                                                             \
        return active->packed_size_##S(I, H, P);                               \
    }                                                                          \
    void fl_lstm_pack_##S(size_t I, size_t H, size_t P, const REAL *w_ih,      \
                          const REAL *w_hh, const REAL *w_hr, REAL *blob)      \
    {                                                                          \
        fl_init();                                                             \
        active->pack_##S(I, H, P, w_ih, w_hh, w_hr, blob);                     \
    }                                                                          \
    int fl_lstm_forward_##S(const fl_shape *sh, const fl_forward_##S *a)       \
    {                                                                          \
        fl_init();                                                             \
        return active->forward_##S(sh, a);                                     \
    }                                                                          \
    size_t fl_lstm_forward_workspace_##S(const fl_shape *sh)                   \
    {                                                                          \
        fl_init();                                                             \
        return active->workspace_##S(sh);                                      \
    }                                                                          \
    int fl_lstm_backward_##S(const fl_shape *sh, const fl_backward_##S *a)     \
    {                                                                          \
        fl_init();                                                             \
        return active->backward_##S(sh, a);                                    \
    }

FL_FORWARD_API(float, s)
FL_FORWARD_API(double, d)
