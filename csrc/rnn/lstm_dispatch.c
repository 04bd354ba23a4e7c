/* The public LSTM functions of fastlstm.h: each forwards to the kernel
 * variant (lstm_variant.c) of the ISA the GEMM chose, picked once. */
#include <string.h>

#include "fastlstm.h"
#include "gemm.h"
#include "lstm_variant.h"

typedef struct isa_entry {
    const char *name;
    const fl_lstm_variant *(*variant)(void);
} isa_entry;

#define FL_ISA_ENTRY(isa) {#isa, fl_lstm_variant_##isa},
static const isa_entry isas[] = {FL_FOR_EACH_ISA(FL_ISA_ENTRY)};

static const fl_lstm_variant *active = NULL;
static const char *active_name = NULL;

const char *fl_init(void)
{
    if (active == NULL) {
        const char *isa = fl_gemm_init();
        size_t k = 0; /* generic, unless the GEMM's choice is listed */
        for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++)
            if (strcmp(isas[i].name, isa) == 0)
                k = i;
        active_name = isas[k].name;
        active = isas[k].variant();
    }
    return active_name;
}

static const fl_lstm_variant *variant(void)
{
    fl_init();
    return active;
}

const char *fl_strerror(int status)
{
    switch (status) {
    case FL_OK:
        return "success";
    case FL_ENOMEM:
        return "out of memory for the kernel's workspace";
    case FL_EINVAL:
        return "a required argument is missing (NULL)";
    case FL_ESHAPE:
        return "sizes T, B, I and H must all be at least 1";
    case FL_EBATCH_SIZES:
        return "batch_sizes must be non-increasing, in [1, B], with "
               "batch_sizes[0] == B";
    case FL_EOPTIONS:
        return "invalid cell options: an unknown activation, a clip below 0 or NaN, "
               "or options with a projection";
    default:
        return "unknown status";
    }
}

size_t fl_lstm_packed_size_f32(size_t I, size_t H, size_t P)
{
    return variant()->packed_size_f32(I, H, P);
}

size_t fl_lstm_packed_size_f64(size_t I, size_t H, size_t P)
{
    return variant()->packed_size_f64(I, H, P);
}

void fl_lstm_pack_f32(size_t I, size_t H, size_t P, const float *w_ih, const float *w_hh,
                      const float *w_hr, float *blob)
{
    variant()->pack_f32(I, H, P, w_ih, w_hh, w_hr, blob);
}

void fl_lstm_pack_f64(size_t I, size_t H, size_t P, const double *w_ih, const double *w_hh,
                      const double *w_hr, double *blob)
{
    variant()->pack_f64(I, H, P, w_ih, w_hh, w_hr, blob);
}

int fl_lstm_forward_f32(const fl_shape *sh, const fl_forward_f32 *a)
{
    return variant()->forward_f32(sh, a);
}

int fl_lstm_forward_f64(const fl_shape *sh, const fl_forward_f64 *a)
{
    return variant()->forward_f64(sh, a);
}

size_t fl_lstm_forward_workspace_f32(const fl_shape *sh)
{
    return variant()->forward_workspace_f32(sh);
}

size_t fl_lstm_forward_workspace_f64(const fl_shape *sh)
{
    return variant()->forward_workspace_f64(sh);
}

int fl_lstm_backward_f32(const fl_shape *sh, const fl_backward_f32 *a)
{
    return variant()->backward_f32(sh, a);
}

int fl_lstm_backward_f64(const fl_shape *sh, const fl_backward_f64 *a)
{
    return variant()->backward_f64(sh, a);
}

/* The options' checks, for either dtype: FL_EINVAL without them, FL_EOPTIONS
 * for an activation outside FL_ACT_*, clip < 0 or NaN, or a projection (the
 * options cell has none). */
#define FL_CHECK_OPTS(sh, opts)                                         \
    do {                                                                \
        if (!(opts))                                                    \
            return FL_EINVAL;                                           \
        if ((sh)->P || !((opts)->clip >= 0))                            \
            return FL_EOPTIONS;                                         \
        for (int k_ = 0; k_ < 3; k_++)                                  \
            if ((opts)->act[k_] < 0 || (opts)->act[k_] >= FL_ACT_COUNT) \
                return FL_EOPTIONS;                                     \
    } while (0)

int fl_lstm_opts_forward_f32(const fl_shape *sh, const fl_forward_f32 *a,
                             const fl_cell_opts_f32 *opts)
{
    FL_CHECK_OPTS(sh, opts);
    return variant()->opts_forward_f32(sh, a, opts);
}

int fl_lstm_opts_forward_f64(const fl_shape *sh, const fl_forward_f64 *a,
                             const fl_cell_opts_f64 *opts)
{
    FL_CHECK_OPTS(sh, opts);
    return variant()->opts_forward_f64(sh, a, opts);
}

int fl_lstm_opts_backward_f32(const fl_shape *sh, const fl_backward_f32 *a,
                              const fl_cell_opts_f32 *opts)
{
    FL_CHECK_OPTS(sh, opts);
    return variant()->opts_backward_f32(sh, a, opts);
}

int fl_lstm_opts_backward_f64(const fl_shape *sh, const fl_backward_f64 *a,
                              const fl_cell_opts_f64 *opts)
{
    FL_CHECK_OPTS(sh, opts);
    return variant()->opts_backward_f64(sh, a, opts);
}
