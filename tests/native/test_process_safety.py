"""The thread team across fork, thread-count limits and oversubscription.

Each case that could hang or abort runs in a subprocess with a timeout, so
a regression fails the test instead of stopping the suite."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastlstm

from helpers import run_python

TIMEOUT = 120


def _run(code, env=None, timeout=TIMEOUT):
    return run_python(code, env, timeout)


_FORK_PRELUDE = """
    import os, sys, numpy as np, fastlstm
    fastlstm.set_num_threads(2)
    lstm = fastlstm.LSTM(16, 64, num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((30, 24, 16)).astype(np.float32)
    want = lstm(x)[0]                        # a threaded call in the parent
    def child_work():
        out, _, backward = lstm.forward_train(x)
        backward(np.ones_like(out))
        s = lstm.stream(24)
        for t in range(x.shape[0]):
            s.step(x[t])
        return np.array_equal(lstm(x)[0], want)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_os_fork_child_after_threaded_call():
    r = _run(
        _FORK_PRELUDE
        + """
    pid = os.fork()
    if pid == 0:
        os._exit(0 if child_work() and fastlstm.get_num_threads() == 1 else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    assert np.array_equal(lstm(x)[0], want)   # the parent keeps its threads
    assert fastlstm.get_num_threads() == 2
    print("OK")
    """
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_multiprocessing_fork_pool_after_threaded_call():
    r = _run(
        _FORK_PRELUDE
        + """
    import multiprocessing as mp
    def work(_):
        return child_work()
    if __name__ == "__main__":
        with mp.get_context("fork").Pool(2) as pool:
            assert all(pool.map(work, range(4)))
        print("OK")
    """
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_before_any_threaded_call_keeps_threads():
    """A child forked before the parent ran a team may use threads."""
    r = _run("""
    import os, numpy as np, fastlstm
    fastlstm.set_num_threads(1)
    lstm = fastlstm.LSTM(16, 64, seed=0)
    x = np.ones((10, 24, 16), np.float32)
    want = lstm(x)[0]
    pid = os.fork()
    if pid == 0:
        fastlstm.set_num_threads(2)
        ok = fastlstm.get_num_threads() == 2 and np.array_equal(lstm(x)[0], want)
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    print("OK")
    """)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


@pytest.mark.parametrize("bad", [10**5, 10**9, -1])
def test_set_num_threads_out_of_range(bad):
    before = fastlstm.get_num_threads()
    with pytest.raises(ValueError, match="set_num_threads"):
        fastlstm.set_num_threads(bad)
    assert fastlstm.get_num_threads() == before


@pytest.mark.parametrize("bad", [1.5, 2.0, True, "2", None])
def test_set_num_threads_wrong_type(bad):
    before = fastlstm.get_num_threads()
    with pytest.raises(TypeError, match="set_num_threads"):
        fastlstm.set_num_threads(bad)
    assert fastlstm.get_num_threads() == before


def test_set_num_threads_takes_numpy_integers(restore_threads):
    assert fastlstm.set_num_threads(np.int64(1)) == 1
    assert fastlstm.get_num_threads() == 1


@pytest.fixture
def restore_threads():
    before = fastlstm.get_num_threads()
    yield
    fastlstm.set_num_threads(before)


def test_the_largest_count_runs(restore_threads):
    """max_threads() threads (oversubscribed on purpose) give the same
    result as one."""
    from fastlstm._native import kernels

    lstm = fastlstm.LSTM(8, 64, seed=0)
    x = np.random.default_rng(1).standard_normal((12, 40, 8)).astype(np.float32)
    fastlstm.set_num_threads(1)
    want = lstm(x)[0]
    fastlstm.set_num_threads(kernels.max_threads())
    assert np.array_equal(lstm(x)[0], want)


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", "100000", "2x"])
def test_invalid_env_thread_count_warns_and_is_ignored(value):
    r = _run(
        """
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import fastlstm
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("FASTLSTM_NUM_THREADS" in m for m in msgs), msgs
    import os
    assert fastlstm.get_num_threads() == min(os.cpu_count(), len(os.sched_getaffinity(0)))
    print("OK")
    """,
        env={"FASTLSTM_NUM_THREADS": value},
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


def test_valid_env_thread_count():
    r = _run(
        """
    import fastlstm
    print(fastlstm.get_num_threads())
    """,
        env={"FASTLSTM_NUM_THREADS": "3"},
    )
    assert r.returncode == 0 and r.stdout.split() == ["3"], r.stderr


def test_oversubscribed_processes_finish():
    """Three processes at once, each with 8 threads on this machine's cores
    (training and streaming): all finish with results equal to one thread's."""
    code = """
    import numpy as np, fastlstm
    lstm = fastlstm.LSTM(16, 96, num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((40, 6, 16)).astype(np.float32)
    fastlstm.set_num_threads(1)
    want = lstm(x)[0]
    fastlstm.set_num_threads(min(8, __import__("fastlstm")._native.kernels.max_threads()))
    for _ in range(20):
        out, _, backward = lstm.forward_train(x)
        backward(np.ones_like(out))
        assert np.array_equal(lstm(x)[0], want)
    s = lstm.stream(6)
    for t in range(40):
        s.step(x[t])
    print("OK")
    """
    env = dict(os.environ)
    env.pop("FASTLSTM_NUM_THREADS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0 and "OK" in out, err
