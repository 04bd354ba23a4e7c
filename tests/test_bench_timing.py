"""The benchmark's timing helper (fastlstm.tools.bench.measure): its warm
tables time calls back to back, not the first calls after its own settle.

A fake system sleeps 2 ms per call, and 200 ms for a call that comes more than
5 ms after its previous one (a thread pool that went to sleep, say).  The
settle before every sample is such a gap, so without the untimed warm-up a
sample of two calls would read about 100 ms per call.  The margins are wide
(a loaded machine oversleeps by a few ms, not by 50)."""

import time

from fastlstm.tools import bench

CALL_S, COLD_S, GAP_S = 0.002, 0.2, 0.005


class ColdAfterGap:
    def __init__(self):
        self.last = None
        self.calls = 0
        self.cold_calls = 0

    def __call__(self):
        now = time.perf_counter()
        cold = self.last is not None and now - self.last > GAP_S
        time.sleep(COLD_S if cold else CALL_S)
        self.cold_calls += cold
        self.calls += 1
        self.last = time.perf_counter()


def test_samples_time_calls_back_to_back():
    fn = ColdAfterGap()
    timing = bench.measure({"fake": fn}, rounds=3, min_sample=2 * CALL_S)["fake"]
    assert fn.cold_calls >= 3  # every sample's settle made the next call cold
    assert len(timing.samples) == 3
    assert max(timing.samples) < 10 * CALL_S, timing.samples


def test_without_warmup_the_settle_shows():
    # the same helper with the warm-up turned off times the cold call: the
    # fake system above really is what the first test says it is
    fn = ColdAfterGap()
    timing = bench.measure({"fake": fn}, rounds=3, min_sample=2 * CALL_S, warmup=0.0)["fake"]
    assert min(timing.samples) > COLD_S / 4, timing.samples
