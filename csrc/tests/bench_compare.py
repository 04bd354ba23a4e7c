"""fl_gemm_f32 / fl_gemm_packed_s against numpy's matmul, in one process.

    csrc/tests/build.sh lib              # builds libfastlstm_gemm.so
    python csrc/tests/bench_compare.py /tmp/fastlstm-gemm-test/libfastlstm_gemm.so [threads]

The machine is shared and noisy, so the two libraries run in alternating
blocks on the same shape (same noise for both) and the script prints the
median (and best) GFLOP/s of each.  OPENBLAS_NUM_THREADS = threads, and
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are dropped before numpy loads OpenBLAS;
idle worker threads of both libraries sleep instead of spinning (see below).
fastlstm is called through ctypes (~1 us per call, like numpy's own call
overhead); `test_gemm bench` measures it without that overhead.
"""
import ctypes
import os
import sys

LIB = sys.argv[1]
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 1
os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)
# Idle threads of one library must not spin on the cores while the other
# library's block runs (OpenBLAS spins ~2^28 cycles by default, libgomp ~1 ms).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import time  # noqa: E402

import numpy as np  # noqa: E402

lib = ctypes.CDLL(LIB)
S, P, F, I = ctypes.c_size_t, ctypes.c_void_p, ctypes.c_float, ctypes.c_int
lib.fl_gemm_f32.argtypes = [I, I, S, S, S, F, P, S, P, S, F, P, S]
lib.fl_gemm_packed_s.argtypes = [S, S, S, P, S, P, F, P, S]
lib.fl_pack_b_s.argtypes = [I, S, S, P, S, P]
lib.fl_packed_size_s.argtypes = [S, S]
lib.fl_packed_size_s.restype = S
lib.fl_gemm_init.restype = ctypes.c_char_p
lib.fl_set_num_threads(THREADS)


def ptr(a):
    return a.ctypes.data


def compare(flops, ours, theirs, rounds=9, block=0.06):
    """alternating blocks of calls; per-call seconds -> GFLOP/s median/best"""
    res = {0: [], 1: []}
    for f in (ours, theirs):
        f(), f()
    t0 = time.perf_counter()
    ours()
    inner = max(1, int(2e-4 / max(time.perf_counter() - t0, 1e-7)))
    for _ in range(rounds):
        for which, f in ((0, ours), (1, theirs)):
            end = time.perf_counter() + block
            while time.perf_counter() < end:
                s = time.perf_counter()
                for _ in range(inner):
                    f()
                res[which].append((time.perf_counter() - s) / inner)
    out = []
    for which in (0, 1):
        t = sorted(res[which])
        out += [flops / t[len(t) // 2] * 1e-9, flops / t[0] * 1e-9]
    return out


def row(name, M, N, K, r):
    print(f"  {name:5s} M={M:5d} N={N:5d} K={K:5d}   fastlstm {r[0]:6.1f} "
          f"(best {r[1]:6.1f})   numpy {r[2]:6.1f} (best {r[3]:6.1f})   "
          f"ratio {r[0] / r[2]:4.2f}")


rng = np.random.default_rng(0)
print(f"fastlstm {lib.fl_gemm_init().decode()}, numpy {np.__version__}, "
      f"{THREADS} thread(s); GFLOP/s median")
for T, B, In, H in [(100, 32, 64, 128), (50, 64, 256, 256),
                    (100, 16, 512, 512), (35, 64, 1024, 1024)]:
    TB, G = T * B, 4 * H
    X = rng.uniform(-1, 1, (TB, In)).astype(np.float32)
    W = rng.uniform(-1, 1, (G, In)).astype(np.float32)
    dG = rng.uniform(-1, 1, (TB, G)).astype(np.float32)
    Y = np.empty((TB, G), np.float32)
    dW = np.empty((G, In), np.float32)
    fl = 2.0 * TB * G * In
    row("proj", TB, G, In, compare(
        fl, lambda: lib.fl_gemm_f32(0, 1, TB, G, In, 1.0, ptr(X), In, ptr(W),
                                  In, 0.0, ptr(Y), G),
        lambda: np.matmul(X, W.T, out=Y)))
    row("wgrad", G, In, TB, compare(
        fl, lambda: lib.fl_gemm_f32(1, 0, G, In, TB, 1.0, ptr(dG), G, ptr(X),
                                  In, 0.0, ptr(dW), In),
        lambda: np.matmul(dG.T, X, out=dW)))
if THREADS == 1:
    print("per step: A(M,K) @ W^T(K,N): fl_gemm_packed_s vs numpy (W^T contiguous)")
    for M, N, K in [(1, 512, 128), (32, 512, 128), (64, 1024, 256),
                    (16, 2048, 512), (64, 4096, 1024)]:
        A = rng.uniform(-1, 1, (M, K)).astype(np.float32)
        W = rng.uniform(-1, 1, (N, K)).astype(np.float32)
        WT = np.ascontiguousarray(W.T)
        Pk = np.empty(lib.fl_packed_size_s(K, N), np.float32)
        lib.fl_pack_b_s(1, K, N, ptr(W), K, ptr(Pk))
        C = np.empty((M, N), np.float32)
        C2 = np.empty((M, N), np.float32)
        r = compare(2.0 * M * N * K,
                    lambda: lib.fl_gemm_packed_s(M, N, K, ptr(A), K, ptr(Pk),
                                                 0.0, ptr(C), N),
                    lambda: np.matmul(A, WT, out=C2))
        assert np.allclose(C, C2, rtol=1e-4, atol=1e-3)
        row("step", M, N, K, r)
