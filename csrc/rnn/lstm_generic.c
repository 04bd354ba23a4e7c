/* The LSTM kernel compiled for the generic ISA variant (flags set in setup.py). */
#define FL_ISA generic
#include "lstm_variant.h"
