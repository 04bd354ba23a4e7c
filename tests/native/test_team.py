"""The thread team: its workers sleep between calls (they do not keep a core
busy), and calls that race each other, sleep between each other and mix
small jobs (a stream's steps) with large ones give bitwise the results of
the same calls made one after another."""

import json
import os
import random
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastlstm
from fastlstm._native import kernels

pytestmark = pytest.mark.skipif(
    not kernels.have_openmp() or (os.cpu_count() or 1) < 2,
    reason="needs a threaded build and 2 CPUs",
)


def test_workers_sleep_between_calls():
    """After a call that ran on the team, the process uses (almost) no CPU
    while it sleeps: the workers spin briefly, then sleep."""
    script = textwrap.dedent(
        """
        import json, os, time
        import numpy as np
        import fastlstm
        fastlstm.set_num_threads(2)
        lstm = fastlstm.LSTM(64, 128, seed=0)
        x = np.random.default_rng(0).standard_normal((100, 32, 64)).astype(np.float32)
        for _ in range(5):
            lstm(x)
        tasks = len(os.listdir("/proc/self/task"))
        c0 = time.process_time()
        time.sleep(0.5)
        print(json.dumps({"tasks": tasks, "cpu": time.process_time() - c0}))
        """
    )
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("needs /proc/self/task")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["tasks"] >= 2, "the call did not start a worker thread"
    # a worker that kept spinning would use about 0.5 s of CPU here
    assert res["cpu"] < 0.1, res


def test_tiny_calls_do_not_wake_sleeping_workers():
    """A stream step (a tiny job: shorter than a wake-up costs its caller)
    after the worker went to sleep runs without waking it; a stream1 forward
    (a small job of 100 steps) wakes it, which the same measurement sees: the
    workers' CPU time (schedstat, ns) over 150 calls, each after 1 ms idle
    (longer than the workers' spin)."""
    script = textwrap.dedent(
        """
        import json, os, threading, time
        import numpy as np
        import fastlstm
        fastlstm.set_num_threads(2)
        lstm = fastlstm.LSTM(64, 128, seed=0)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((100, 1, 64)).astype(np.float32)
        lstm(x)  # starts the worker
        main = threading.get_native_id()
        def workers_ns():
            total = 0
            for tid in os.listdir("/proc/self/task"):
                if int(tid) != main:
                    with open(f"/proc/self/task/{tid}/schedstat") as fh:
                        total += int(fh.read().split()[0])
            return total
        def run(call):
            time.sleep(0.01)
            t0 = workers_ns()
            for _ in range(150):
                time.sleep(0.001)
                call()
            return workers_ns() - t0
        stream = lstm.stream(1)
        step = lambda: stream.step(x[0])
        print(json.dumps({"tiny": run(step), "small": run(lambda: lstm(x))}))
        """
    )
    if not os.path.exists("/proc/self/schedstat"):
        pytest.skip("needs /proc/<pid>/task/<tid>/schedstat")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    # a woken worker spins at least 100 µs per call: 15 ms over 150 calls
    assert res["small"] > 10e6, res
    assert res["tiny"] < 3e6, res


def _problems(seed):
    rng = np.random.default_rng(seed)
    small = fastlstm.LSTM(16, 48, seed=1)  # stream steps: small jobs
    mid = fastlstm.LSTM(32, 96, num_layers=2, seed=2)  # whole sequences: the team
    xs = rng.standard_normal((40, 2, 16)).astype(np.float32)
    xm = rng.standard_normal((30, 24, 32)).astype(np.float32)
    dy = rng.standard_normal((30, 24, 96)).astype(np.float32)
    return small, mid, xs, xm, dy


def _stream_run(small, xs):
    s = small.stream(2)
    return np.stack([s.step(x).copy() for x in xs])


def _train_run(mid, xm, dy):
    mid.zero_grad()
    y, _, backward = mid.forward_train(xm)
    dx = backward(dy)[0]
    return [y, dx] + [g.copy() for g in mid.grads.values()]


def test_racing_sleeping_mixed_calls_are_bitwise(request):
    before = fastlstm.get_num_threads()
    request.addfinalizer(lambda: fastlstm.set_num_threads(before))
    fastlstm.set_num_threads(2)
    small, mid, xs, xm, dy = _problems(0)
    want_stream = _stream_run(small, xs)
    want_fwd = mid(xm)[0]
    # training needs one model per thread (gradients accumulate in the model)
    trainers = [_problems(0)[1] for _ in range(2)]
    want_train = _train_run(trainers[0], xm, dy)
    errors = []

    def work(k):
        r = random.Random(k)
        try:
            for _ in range(12):
                what = r.randrange(3)
                if what == 0:
                    got = [_stream_run(small, xs)]
                    want = [want_stream]
                elif what == 1:
                    got, want = [mid(xm)[0]], [want_fwd]
                elif k < 2:
                    got, want = _train_run(trainers[k], xm, dy), want_train
                else:
                    continue
                for g, w in zip(got, want):
                    if not np.array_equal(g, w):
                        errors.append((k, what))
                # idle gaps of every length around the workers' spin time
                threading.Event().wait(r.choice([0, 0, 5e-5, 2e-4, 1e-3, 5e-3]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a call hung"
    assert errors == []
