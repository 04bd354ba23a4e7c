/* The LSTM kernel of one ISA variant: the time-loop engine (engine.h) on the
 * LSTM cell (cell_lstm.h) and on the cell with ONNX's options
 * (cell_options.h), each instantiated for float and double.  setup.py compiles this one file once
 * per ISA (common/isa.h), with -DFL_ISA=<isa> and that ISA's flags, and the dispatcher
 * (lstm_dispatch.c) takes the variant matching the GEMM's choice. */
#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "cpuinfo.h"
#include "fastlstm.h"
#include "gemm.h"
#include "lstm_rows.h"
#include "lstm_variant.h"
#include "plans.h"
#include "threads.h"

#ifndef FL_ISA
#error "compile with -DFL_ISA=<isa> (see common/isa.h)"
#endif

#define FL_CELL "cell_lstm.h"

#define REAL float
#define S s
#define DT f32
#include "engine.h"
#undef REAL
#undef S
#undef DT

#define REAL double
#define S d
#define DT f64
#include "engine.h"
#undef REAL
#undef S
#undef DT

/* the same engine on the cell with ONNX's options: its functions are named
 * name_cellopt_<s|d>_<isa> */
#undef FL_CELL
#define FL_CELL "cell_options.h"

#define REAL float
#define S s
#define DT f32
#define FL_CELL_TAG cellopt_s
#include "engine.h"
#undef REAL
#undef S
#undef DT
#undef FL_CELL_TAG

#define REAL double
#define S d
#define DT f64
#define FL_CELL_TAG cellopt_d
#include "engine.h"
#undef REAL
#undef S
#undef DT
#undef FL_CELL_TAG

/* the typed entry points of the options cell */
static int FL_CAT(opts_forward, s, FL_ISA)(const fl_shape *sh, const fl_forward_f32 *a,
                                           const fl_cell_opts_f32 *opts)
{
    return FL_CAT(forward_with, cellopt_s, FL_ISA)(sh, a, opts);
}

static int FL_CAT(opts_forward, d, FL_ISA)(const fl_shape *sh, const fl_forward_f64 *a,
                                           const fl_cell_opts_f64 *opts)
{
    return FL_CAT(forward_with, cellopt_d, FL_ISA)(sh, a, opts);
}

static int FL_CAT(opts_backward, s, FL_ISA)(const fl_shape *sh, const fl_backward_f32 *a,
                                            const fl_cell_opts_f32 *opts)
{
    return FL_CAT(backward_with, cellopt_s, FL_ISA)(sh, a, opts);
}

static int FL_CAT(opts_backward, d, FL_ISA)(const fl_shape *sh, const fl_backward_f64 *a,
                                            const fl_cell_opts_f64 *opts)
{
    return FL_CAT(backward_with, cellopt_d, FL_ISA)(sh, a, opts);
}

#define FL_VARIANT_FN_(name, isa) name##_##isa
#define FL_VARIANT_FN(name, isa) FL_VARIANT_FN_(name, isa)
#define FL_ENTRIES(s)                                                                    \
    FL_CAT(packed_size, s, FL_ISA), FL_CAT(pack, s, FL_ISA), FL_CAT(forward, s, FL_ISA), \
        FL_CAT(forward_workspace, s, FL_ISA), FL_CAT(backward, s, FL_ISA),               \
        FL_CAT(opts_forward, s, FL_ISA), FL_CAT(opts_backward, s, FL_ISA)

static const fl_lstm_variant table = {FL_ENTRIES(s), FL_ENTRIES(d)};

const fl_lstm_variant *FL_VARIANT_FN(fl_lstm_variant, FL_ISA)(void) { return &table; }
