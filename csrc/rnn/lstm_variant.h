/* Instantiates the LSTM kernel (lstm_impl.h) for float and double under the
 * ISA name FL_ISA, defined by the including file (lstm_<isa>.c), which is
 * compiled with that ISA's flags. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "activations.h"
#include "fastlstm.h"
#include "gemm.h"
#include "lstm_rows.h"
#include "threads.h"

#define REAL float
#define S s
#include "lstm_impl.h"
#undef REAL
#undef S

#define REAL double
#define S d
#include "lstm_impl.h"
#undef REAL
#undef S
