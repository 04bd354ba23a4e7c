/* The LSTM kernel compiled for the avx2 ISA variant (flags set in setup.py). */
#define FL_ISA avx2
#include "lstm_variant.h"
