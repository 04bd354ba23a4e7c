"""One stream used from several threads at once.

Stepping a stream from two threads used to corrupt memory (both wrote the
same state and scratch).  Each case runs in a subprocess with a timeout, so
a crash or a hang fails the test instead of stopping the suite."""

from helpers import run_python

TIMEOUT = 180


def _run(code):
    return run_python(code, timeout=TIMEOUT)


def _ok(r):
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), (r.returncode, r.stderr[-3000:])


def test_steps_from_four_threads_take_turns():
    """Every thread steps the same input, so whatever the order, N steps in
    all must leave the state of N steps taken one after another, bitwise."""
    _ok(
        _run(
            """
    import threading, numpy as np, fastlstm
    fastlstm.set_num_threads(2)
    lstm = fastlstm.LSTM(64, 512, num_layers=2, seed=0)
    x = np.ones((2, 64), np.float32)
    shared = lstm.stream(2)
    n, per = 4, 400
    def work():
        for _ in range(per):
            y = shared.step(x)
            assert y.shape == (2, 512) and np.isfinite(y).all()
    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
    alone = lstm.stream(2)
    for _ in range(n * per):
        alone.step(x)
    for a, b in zip(shared.state, alone.state):
        assert np.array_equal(a, b)
    print("OK")
    """
        )
    )


def test_step_reset_chunks_and_thread_count_changes_at_once():
    """step, steps, reset, state and set_num_threads (which resizes the
    stream's scratch on its next step) from five threads: no crash, no hang,
    only finite values and the documented shapes."""
    _ok(
        _run(
            """
    import threading, numpy as np, fastlstm
    lstm = fastlstm.LSTM(32, 256, num_layers=2, proj_size=64, seed=1)
    s = lstm.stream(3)
    x = np.random.default_rng(0).standard_normal((5, 3, 32)).astype(np.float32)
    stop = threading.Event()
    errors = []
    def guard(f):
        def run():
            try:
                while not stop.is_set():
                    f()
            except BaseException as e:
                errors.append(repr(e)); stop.set()
        return run
    def stepper():
        assert s.step(x[0]).shape == (3, 64)
    def chunker():
        assert s.steps(x).shape == (5, 3, 64)
    def resetter():
        s.reset((np.zeros((2, 3, 64), np.float32), np.ones((2, 3, 256), np.float32)))
        s.reset()
    def reader():
        h, c = s.state
        assert np.isfinite(h).all() and np.isfinite(c).all()
    def threads_changer():
        fastlstm.set_num_threads(1); fastlstm.set_num_threads(2)
    workers = [threading.Thread(target=guard(f)) for f in
               (stepper, stepper, chunker, resetter, reader, threads_changer)]
    for t in workers: t.start()
    import time; time.sleep(2); stop.set()
    for t in workers: t.join()
    assert not errors, errors
    print("OK")
    """
        )
    )
