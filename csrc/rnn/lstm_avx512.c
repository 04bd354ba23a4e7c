/* The LSTM kernel compiled for the avx512 ISA variant (flags set in setup.py). */
#define FL_ISA avx512
#include "lstm_variant.h"
