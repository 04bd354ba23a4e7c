"""Bursts of back-to-back forward calls after an idle gap (fastlstm alone).

    python benchmarks/burst.py [--shape 100,1,64,128] [--bursts 25] [--gap 0.03]
                               [--calls 20] [--threads 2]

Each burst sleeps ``--gap`` seconds (the thread team goes to sleep), then
makes ``--calls`` forward calls back to back.  Prints the median of the
bursts' first calls and the median over bursts of the median of calls 4 and
on: whether calls soon after an idle gap get the whole team again, which the
warm tables of ``python -m fastlstm bench`` (steady state) and its idle
conditions (first calls only) do not show.  Compare builds by running this
with each on PYTHONPATH, alternating, in the same minutes.
"""

import argparse
import os
import sys
import time

import numpy as np

try:
    import fastlstm
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fastlstm


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="100,1,64,128", help="T,B,I,H (default 100,1,64,128)")
    p.add_argument("--bursts", type=int, default=25)
    p.add_argument("--gap", type=float, default=0.03, help="idle seconds before a burst")
    p.add_argument("--calls", type=int, default=20, help="calls per burst (at least 4)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    T, B, I, H = (int(v) for v in a.shape.split(","))
    fastlstm.set_num_threads(a.threads)
    lstm = fastlstm.LSTM(I, H)
    x = np.random.default_rng(0).standard_normal((T, B, I), dtype=np.float32)
    for _ in range(20):
        lstm(x)
    first, rest = [], []
    for _ in range(a.bursts):
        time.sleep(a.gap)
        times = []
        for _ in range(max(4, a.calls)):
            t0 = time.perf_counter()
            lstm(x)
            times.append(time.perf_counter() - t0)
        first.append(times[0])
        rest.append(float(np.median(times[3:])))
    print(
        f"shape {T},{B},{I},{H}, {a.threads} threads, {a.bursts} bursts after {a.gap * 1e3:g} ms "
        f"idle: first call {np.median(first) * 1e3:.3f} ms, calls 4+ {np.median(rest) * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    main()
