"""Benchmark fastlstm against torch.nn.LSTM and ONNX Runtime from a checkout.

    python benchmarks/run.py [--shapes canon,stream1,...] [--repeat N] [--threads 2]
                             [--peak-gflops X] [--markdown FILE] [--quick]

Same as ``python -m fastlstm bench``; the code lives in fastlstm/tools/bench.py so
that the installed package can run it too.  Uses the fastlstm found on
sys.path, else the checkout this script sits in (built in place).
"""

import os
import sys

try:
    import fastlstm.tools.bench as bench
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fastlstm.tools.bench as bench

if __name__ == "__main__":
    sys.exit(bench.main())
