/* The LSTM kernel's entry points of one ISA variant (lstm_variant.c), as the
 * dispatcher (lstm_dispatch.c) sees them: the public fastlstm.h functions of
 * both dtypes, without the dispatch. */
#ifndef FASTLSTM_LSTM_VARIANT_H
#define FASTLSTM_LSTM_VARIANT_H

#include "fastlstm.h"
#include "isa.h"

typedef struct fl_lstm_variant {
    size_t (*packed_size_f32)(size_t I, size_t H, size_t P);
    void (*pack_f32)(size_t I, size_t H, size_t P, const float *w_ih, const float *w_hh,
                     const float *w_hr, float *blob);
    int (*forward_f32)(const fl_shape *sh, const fl_forward_f32 *a);
    size_t (*forward_workspace_f32)(const fl_shape *sh);
    int (*backward_f32)(const fl_shape *sh, const fl_backward_f32 *a);
    int (*opts_forward_f32)(const fl_shape *sh, const fl_forward_f32 *a,
                            const fl_cell_opts_f32 *opts);
    int (*opts_backward_f32)(const fl_shape *sh, const fl_backward_f32 *a,
                             const fl_cell_opts_f32 *opts);
    size_t (*packed_size_f64)(size_t I, size_t H, size_t P);
    void (*pack_f64)(size_t I, size_t H, size_t P, const double *w_ih, const double *w_hh,
                     const double *w_hr, double *blob);
    int (*forward_f64)(const fl_shape *sh, const fl_forward_f64 *a);
    size_t (*forward_workspace_f64)(const fl_shape *sh);
    int (*backward_f64)(const fl_shape *sh, const fl_backward_f64 *a);
    int (*opts_forward_f64)(const fl_shape *sh, const fl_forward_f64 *a,
                            const fl_cell_opts_f64 *opts);
    int (*opts_backward_f64)(const fl_shape *sh, const fl_backward_f64 *a,
                             const fl_cell_opts_f64 *opts);
} fl_lstm_variant;

#define FL_DECLARE_LSTM_VARIANT(isa) const fl_lstm_variant *fl_lstm_variant_##isa(void);
FL_FOR_EACH_ISA(FL_DECLARE_LSTM_VARIANT)
#undef FL_DECLARE_LSTM_VARIANT

#endif /* FASTLSTM_LSTM_VARIANT_H */
