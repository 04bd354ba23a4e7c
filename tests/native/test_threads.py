"""Threads: results independent of fastlstm's thread count (bitwise),
concurrent calls from Python threads, the GEMM variants, and every ISA
variant the CPU supports (forced with FASTLSTM_ISA in a subprocess, since
the variant is fixed at import)."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastlstm
from fastlstm._native import kernels

from helpers import all_outputs, assert_bitwise, reference_run

DTYPES = [np.float32, np.float64]
DT_IDS = ["f32", "f64"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastlstm.__file__)))


@pytest.fixture
def restore_threads():
    n = fastlstm.get_num_threads()
    yield
    fastlstm.set_num_threads(n)
    assert fastlstm.get_num_threads() == n


def make_problem(
    rng, dtype, T, B, I, H, num_layers=1, bidirectional=False, proj_size=0, lengths=None
):
    lstm = fastlstm.LSTM(
        I,
        H,
        num_layers=num_layers,
        bidirectional=bidirectional,
        proj_size=proj_size,
        dtype=dtype,
        seed=int(rng.integers(1 << 30)),
    )
    D = 2 if bidirectional else 1
    Ho = proj_size or H
    u = lambda shape: rng.uniform(-1, 1, shape).astype(dtype)  # noqa: E731
    x = u((T, B, I))
    hx = (u((num_layers * D, B, Ho)), u((num_layers * D, B, H)))
    d_out = u((T, B, D * Ho))
    d_state = (u((num_layers * D, B, Ho)), u((num_layers * D, B, H)))
    return lstm, (x, hx, None if lengths is None else np.array(lengths), d_out, d_state)


THREAD_SHAPES = {
    # name: (T, B, I, H, extra)
    "B1-H17": (6, 1, 5, 17, {}),
    "B3-H33-bi": (5, 3, 7, 33, dict(bidirectional=True)),
    "B5-H50-ragged": (7, 5, 9, 50, dict(lengths=[3, 7, 1, 6, 7])),
    "B4-H40-proj-L2": (5, 4, 6, 40, dict(num_layers=2, proj_size=13)),
    "B32-H72": (8, 32, 64, 72, {}),  # big enough for the threaded GEMMs
    "B2-H130-bi-ragged": (6, 2, 3, 130, dict(bidirectional=True, lengths=[2, 6])),
    "B20-H256-ragged": (5, 20, 8, 256, dict(lengths=[5] * 6 + [3] * 9 + [1] * 5)),
    "B3-H320-proj": (4, 3, 8, 320, dict(proj_size=40)),  # 64-unit groups
    # batch split with more row chunks than threads, each run in several
    # blocks of steps by whichever thread is free: ragged lengths (chunks
    # finish at different steps), both directions, a projection
    "B48-H64-bi-ragged-chunks": (
        40,
        48,
        16,
        64,
        dict(bidirectional=True, lengths=[40 - (7 * j) % 37 for j in range(48)]),
    ),
    "B36-H128-proj-ragged-chunks": (
        40,
        36,
        32,
        128,
        dict(proj_size=32, lengths=[40] * 20 + [23] * 10 + [5] * 6),
    ),
    # unit split with weights beyond a core's cache: threads take each
    # other's blocks of groups when they finish early (work stealing)
    "B3-H256-steal": (6, 3, 128, 256, {}),
    "B5-H256-proj-ragged-steal": (6, 5, 256, 256, dict(proj_size=64, lengths=[6, 4, 6, 1, 3])),
    # a few rows: the input projection of blocks of steps up front (a last,
    # partial block; the reverse direction and ragged rows gathered; with
    # stealing, 2 MB of weights); 8 rows beyond 16 MB of weights
    "B1-H256-bi-proj-xproj": (40, 1, 200, 256, dict(bidirectional=True, proj_size=64)),
    "B2-H256-bi-ragged-xproj-steal": (20, 2, 256, 256, dict(bidirectional=True, lengths=[20, 13])),
    "B8-H1024-xproj": (3, 8, 1024, 1024, {}),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape", list(THREAD_SHAPES))
def test_thread_count_does_not_change_results(rng, restore_threads, shape, dtype):
    T, B, I, H, extra = THREAD_SHAPES[shape]
    lstm, args = make_problem(rng, dtype, T, B, I, H, **extra)
    assert fastlstm.set_num_threads(1) == 1
    one = all_outputs(lstm, *args)
    if fastlstm.set_num_threads(2) != 2:
        pytest.skip("built without OpenMP: one thread only")
    assert fastlstm.get_num_threads() == 2
    two = all_outputs(lstm, *args)
    assert_bitwise(one, two, "1 vs 2 threads:")
    fastlstm.set_num_threads(3)  # more threads than cores
    assert_bitwise(one, all_outputs(lstm, *args), "1 vs 3 threads:")


def run_script(script, timeout, **env):
    """Run one of this file's scripts in a subprocess with these environment
    variables (the installed fastlstm, or the checkout's) and the tests'
    directories as its argument -> the JSON of its last "RESULT " line."""
    env = dict(os.environ, **env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", script, os.path.dirname(os.path.abspath(__file__))],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


JOIN_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import fastlstm
    sys.path[:0] = [sys.argv[1], os.path.dirname(sys.argv[1])]  # tests/native, tests
    from helpers import all_outputs
    from test_threads import THREAD_SHAPES, make_problem
    rng = np.random.default_rng(5)
    differ = []
    for name, (T, B, I, H, extra) in THREAD_SHAPES.items():
        for dtype in (np.float32, np.float64):
            lstm, args = make_problem(rng, dtype, T, B, I, H, **extra)
            fastlstm.set_num_threads(1)
            one = all_outputs(lstm, *args)
            for nt in (2, 3):
                fastlstm.set_num_threads(nt)
                got = all_outputs(lstm, *args)
                differ += [[name, str(np.dtype(dtype)), nt, k]
                           for k in one if not np.array_equal(one[k], got[k])]
    print("RESULT " + json.dumps(differ))
""")


@pytest.mark.skipif(not kernels.have_openmp(), reason="built without OpenMP: one thread only")
@pytest.mark.parametrize("step", [1, 3, 10**6])
def test_workers_joining_mid_call_do_not_change_results(step):
    """A worker that comes after a forward started joins its unit split at a
    step boundary (or, after the last step, not at all): results stay bitwise
    those of one thread.  FASTLSTM_JOIN_STEP makes every forward admit its
    workers at that step, whatever the timing."""
    assert run_script(JOIN_SCRIPT, 300, FASTLSTM_JOIN_STEP=str(step)) == []


def test_set_num_threads_reports(restore_threads):
    assert fastlstm.get_num_threads() >= 1
    if fastlstm.set_num_threads(2) == 2:  # 1 without OpenMP
        assert fastlstm.get_num_threads() == 2
        fastlstm.set_num_threads(1)
        assert fastlstm.get_num_threads() == 1
    # 0 / negative: back to the default, never an invalid count
    assert fastlstm.set_num_threads(0) >= 1


# ----------------------------------------------------------------------------
# Python threads
# ----------------------------------------------------------------------------
def run_in_threads(fn, n=4):
    results, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def work(k):
        try:
            barrier.wait()
            results[k] = fn(k)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_concurrent_inference(rng, dtype):
    """4 Python threads, the same layer, different inputs: each result is
    bitwise the sequential one."""
    lstm, _ = make_problem(rng, dtype, 1, 1, 6, 24, num_layers=2, bidirectional=True, proj_size=9)
    inputs = [
        (rng.uniform(-1, 1, (8, B, 6)).astype(dtype), np.arange(1, B + 1) + 2) for B in (1, 3, 5, 6)
    ]
    sequential = [lstm(x, lengths=lengths) for x, lengths in inputs]
    for _ in range(2):
        concurrent = run_in_threads(lambda k: lstm(inputs[k][0], lengths=inputs[k][1]))
        for (o1, (h1, c1)), (o2, (h2, c2)) in zip(sequential, concurrent):
            np.testing.assert_array_equal(o1, o2)
            np.testing.assert_array_equal(h1, h2)
            np.testing.assert_array_equal(c1, c2)


def training_problem(rng, dtype):
    lstm, _ = make_problem(rng, dtype, 1, 1, 5, 20, bidirectional=True)
    inputs = [
        (rng.uniform(-1, 1, (9, B, 5)).astype(dtype), rng.uniform(-1, 1, (9, B, 40)).astype(dtype))
        for B in (1, 2, 3, 4)
    ]

    def one(k):
        x, d = inputs[k]
        out, state, backward = lstm.forward_train(x)
        return out, state, backward(d)

    return lstm, one


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_concurrent_training_results(rng, dtype):
    """forward_train + backward from 4 threads on the same layer: outputs and
    input gradients are bitwise the sequential ones."""
    lstm, one = training_problem(rng, dtype)
    sequential = [one(k) for k in range(4)]
    for _ in range(2):
        concurrent = run_in_threads(one)
        for (o1, s1, (dx1, ds1)), (o2, s2, (dx2, ds2)) in zip(sequential, concurrent):
            for a, b in zip([o1, *s1, dx1, *ds1], [o2, *s2, dx2, *ds2]):
                np.testing.assert_array_equal(a, b)


def test_concurrent_backward_accumulates_every_gradient(restore_threads):
    """Parameter gradients that 4 concurrent backward calls add into the
    shared lstm.grads are 4x those of one call (to rounding).

    The C backward adds into grads with the GIL released (the final dW_ih /
    dW_hh / dW_hr GEMMs with beta = 1), so the layer serialises backward calls
    on its gradients (ParameterModule._grad_lock); without that, concurrent
    calls lose updates.  The shape makes the dW_ih GEMM dominate (T = 1, 1000
    rows, I = 512) and a barrier starts the 4 backward calls together; rounds
    repeat for ~1.5 s (on a 2-core machine about 40% of the rounds lost
    updates without the lock)."""
    fastlstm.set_num_threads(1)
    rng = np.random.default_rng(3)
    lstm = fastlstm.LSTM(512, 8, dtype=np.float64, seed=0)
    x = rng.uniform(-1, 1, (1, 1000, 512))
    d = rng.uniform(-1, 1, (1, 1000, 8))
    barrier = threading.Barrier(4)

    def one(k, sync=True):
        _, _, backward = lstm.forward_train(x)
        if sync:
            barrier.wait()
        backward(d)

    lstm.zero_grad()
    one(0, sync=False)
    single = {k: v.copy() for k, v in lstm.grads.items()}
    start, rounds = time.perf_counter(), 0
    while rounds < 5 or time.perf_counter() - start < 1.5:
        rounds += 1
        lstm.zero_grad()
        run_in_threads(one)
        for k, g in single.items():
            np.testing.assert_allclose(
                lstm.grads[k], 4 * g, rtol=1e-12, atol=1e-9, err_msg=f"round {rounds}: {k}"
            )


def test_kernel_releases_the_gil(restore_threads):
    """While one thread is inside a long kernel call, another Python thread
    keeps running (with the GIL held it would stall for the whole call)."""
    fastlstm.set_num_threads(1)
    lstm = fastlstm.LSTM(64, 256, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (300, 4, 64))
    t0 = time.perf_counter()
    lstm(x)
    call = time.perf_counter() - t0

    def count_while(stop):
        n = 0
        while not stop.is_set():
            n += 1
        return n

    # how far the counter gets alone in `call` seconds
    stop = threading.Event()
    timer = threading.Timer(call, stop.set)
    timer.start()
    alone = count_while(stop)

    stop = threading.Event()
    counts = []
    counter = threading.Thread(target=lambda: counts.append(count_while(stop)))
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        counter.start()
        for _ in range(3):
            lstm(x)
        stop.set()
        counter.join()
    finally:
        sys.setswitchinterval(old)
    # three calls: with the GIL released the counter runs about 3 * alone
    # (less when the machine is busy); with the GIL held close to 0.
    assert counts[0] > 0.3 * alone, (counts[0], alone)


# ----------------------------------------------------------------------------
# GEMM against numpy
# ----------------------------------------------------------------------------
GEMM_SIZES = [1, 2, 7, 17, 63, 130]


def gemm_for(dtype):
    """The dtype's specialisation of the fused-type kernels.gemm.  (The plain
    call picks the specialisation from `alpha`, a Python float, hence always
    double: see test_gemm_plain_call_float32.)"""
    return kernels.gemm["float" if np.dtype(dtype) == np.float32 else "double"]


ALPHA_BETA = [(1.0, 0.0), (0.7, -1.3), (-2.0, 1.0)]


def gemm_triples(sizes):
    """(M, N, K, alpha, beta): every (M, N) pair of sizes, K cycling through
    the sizes so that every (M, K) and (N, K) pair occurs too (len(sizes)
    prime or not, each size appears in each position)."""
    n = len(sizes)
    return [
        (sizes[i], sizes[j], sizes[(i + j) % n], *ALPHA_BETA[(i + 2 * j) % 3])
        for i in range(n)
        for j in range(n)
    ]


def check_gemm(dtype, trans_a, trans_b, rng, sizes=GEMM_SIZES):
    """|C - C_exact| within the classic bound
    gamma_K * (|alpha| |A| |B| + |beta| |C0|), gamma_K ~ K * eps (x2)."""
    eps = np.finfo(dtype).eps
    gemm = gemm_for(dtype)
    for M, N, K, alpha, beta in gemm_triples(sizes):
        a = rng.uniform(-1, 1, (K, M) if trans_a else (M, K)).astype(dtype)
        b = rng.uniform(-1, 1, (N, K) if trans_b else (K, N)).astype(dtype)
        c0 = rng.uniform(-1, 1, (M, N)).astype(dtype)
        c = c0.copy()
        if beta == 0:
            c[...] = np.nan  # beta == 0: C is not read
        gemm(bool(trans_a), bool(trans_b), alpha, a, b, beta, c)
        A = a.T.astype(np.float64) if trans_a else a.astype(np.float64)
        Bm = b.T.astype(np.float64) if trans_b else b.astype(np.float64)
        exact = alpha * (A @ Bm) + beta * c0.astype(np.float64)
        bound = 2 * (K + 2) * eps * (abs(alpha) * (np.abs(A) @ np.abs(Bm)) + abs(beta) * np.abs(c0))
        err = np.abs(c - exact)
        assert np.all(err <= bound), (
            f"gemm ta={trans_a} tb={trans_b} M={M} N={N} K={K} alpha={alpha} "
            f"beta={beta}: max err {err.max():.3g}"
        )


def test_gemm_triples_cover_all_pairs():
    t = gemm_triples(GEMM_SIZES)
    for p, q in [(0, 1), (0, 2), (1, 2)]:
        assert {(x[p], x[q]) for x in t} >= {(u, u) for u in GEMM_SIZES}
    assert {(x[0], x[1]) for x in t} == {(u, v) for u in GEMM_SIZES for v in GEMM_SIZES}


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize(
    "trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)], ids=["NN", "NT", "TN", "TT"]
)
def test_gemm_against_numpy(rng, trans_a, trans_b, dtype):
    check_gemm(dtype, trans_a, trans_b, rng)


@pytest.mark.parametrize("alpha_type", [float, np.float32], ids=["py-float", "np-float32"])
def test_gemm_plain_call_float32(alpha_type):
    """gemm(trans_a, trans_b, alpha, a, b, beta, c) with float32 arrays.

    The scalars are typed double, so the array arguments alone pick the
    float specialisation: alpha may be a Python float or a numpy.float32
    (once, the dispatch keyed on alpha and the float32 GEMM was reachable
    only as gemm["float"](...))."""
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(6, dtype=np.float32).reshape(3, 2)
    c = np.zeros((2, 2), np.float32)
    kernels.gemm(False, False, alpha_type(1.0), a, b, alpha_type(0.0), c)
    np.testing.assert_array_equal(c, a @ b)


def test_gemm_rejects_bad_shapes():
    a = np.ones((3, 4))
    with pytest.raises(ValueError, match="inner"):
        kernels.gemm(False, False, 1.0, a, np.ones((5, 2)), 0.0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="c: expected shape"):
        kernels.gemm(False, False, 1.0, a, np.ones((4, 2)), 0.0, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="c: expected shape"):
        kernels.gemm(True, True, 1.0, a, np.ones((2, 3)), 0.0, np.zeros((3, 2)))


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_gemm_thread_count_bitwise(rng, restore_threads, dtype):
    a = rng.uniform(-1, 1, (300, 130)).astype(dtype)
    b = rng.uniform(-1, 1, (257, 130)).astype(dtype)
    c = {}
    for n in (1, 2):
        fastlstm.set_num_threads(n)
        c[n] = np.zeros((300, 257), dtype)
        gemm_for(dtype)(False, True, 1.0, a, b, 0.0, c[n])
    np.testing.assert_array_equal(c[1], c[2])


# ----------------------------------------------------------------------------
# ISA variants, each in its own interpreter
# ----------------------------------------------------------------------------
def cpu_flags():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def cpu_supports(isa):
    flags = cpu_flags()
    if flags is None:
        return None  # unknown: accept whatever the library reports
    need = {
        "generic": set(),
        "avx2": {"avx2", "fma"},
        "avx512": {"avx2", "fma", "avx512f", "avx512dq", "avx512vl"},
    }[isa]
    return need <= flags


VARIANT_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import fastlstm
    sys.path[:0] = [sys.argv[1], os.path.dirname(sys.argv[1])]  # tests/native, tests
    from test_threads import check_gemm, variant_lstm_errors
    rng = np.random.default_rng(1)
    isa = fastlstm.show_config()["isa"]
    for dtype in (np.float32, np.float64):
        for ta in (0, 1):
            for tb in (0, 1):
                check_gemm(dtype, ta, tb, rng, sizes=[1, 7, 17, 130])
    print("RESULT " + json.dumps({"isa": isa, "errors": variant_lstm_errors()}))
""")


def variant_lstm_errors():
    """Max error (relative to scale) of forward and every gradient against
    the float64 reference, for a few configurations; and whether 1 and 2
    threads agree bitwise.  Runs inside the variant's subprocess."""
    rng = np.random.default_rng(2)
    report = {}
    configs = [
        ("H17-B1", 5, 1, 3, 17, {}),
        (
            "H40-bi-proj-ragged",
            6,
            4,
            5,
            40,
            dict(bidirectional=True, proj_size=7, lengths=[6, 1, 4, 2]),
        ),
        ("H33-L2", 4, 3, 8, 33, dict(num_layers=2)),
    ]
    for dtype in DTYPES:
        for name, T, B, I, H, extra in configs:
            lstm, (x, hx, lengths, d_out, d_state) = make_problem(rng, dtype, T, B, I, H, **extra)
            fastlstm.set_num_threads(1)
            one = all_outputs(lstm, x, hx, lengths, d_out, d_state)
            fastlstm.set_num_threads(2)
            two = all_outputs(lstm, x, hx, lengths, d_out, d_state)
            bitwise = all(np.array_equal(one[k], two[k]) for k in one)
            r = reference_run(lstm, x, hx[0], hx[1], lengths, d_out, d_state)
            want = dict(out=r["output"], **{k: r[k] for k in ("h_n", "c_n", "dx", "dh0", "dc0")})
            want.update({"grad_" + k: v for k, v in r["grads"].items()})
            err = max(
                float(np.abs(one[k] - v).max()) / max(1.0, float(np.abs(v).max()))
                for k, v in want.items()
            )
            report[f"{np.dtype(dtype).name}-{name}"] = dict(err=err, bitwise=bitwise)
    return report


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_isa_variant(isa):
    result = run_script(VARIANT_SCRIPT, 120, FASTLSTM_ISA=isa)
    supported = cpu_supports(isa)
    if supported is False:
        # a variant the CPU cannot run falls back, and says so
        assert result["isa"] != isa
        assert cpu_supports(result["isa"]) in (True, None)
    else:
        assert result["isa"] == isa or supported is None
    for config, r in result["errors"].items():
        limit = 1e-5 if config.startswith("float32") else 1e-12
        assert r["err"] <= limit, f"{result['isa']} {config}: error {r['err']:.3g}"
        assert r["bitwise"], f"{result['isa']} {config}: 1 vs 2 threads differ"
    if supported is False:
        pytest.skip(f"CPU lacks {isa}: checked the fallback ({result['isa']}) instead")
