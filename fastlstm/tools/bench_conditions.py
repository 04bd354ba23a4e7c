"""The benchmark under real conditions (``python -m fastlstm bench --shapes
conditions``): the same forward calls and streaming step as the main tables,
fastlstm beside torch and ONNX Runtime, each condition its own table.

* warm: calls back to back (a sample times a batch of calls, as the main
  tables);
* idle 10 ms / 50 ms / 250 ms: the first call after the process slept that
  long (a server between requests, a stream between frames): thread pools
  have gone to sleep, caches and clocks have cooled;
* after numpy: the call right after a numpy product (numpy's BLAS threads
  are still spinning on the cores);
* after ORT: the call right after an ONNX Runtime call of another model (its
  pool's threads are still spinning);
* busy process: warm calls while another process keeps one core busy.

Every system meets the same condition before each timed call, in
alternating rounds; a cell is the median over the rounds.  Ratios are peer
time / fastlstm time (> 1: fastlstm faster); "vs warm" is fastlstm's
ratio under the condition divided by its warm ratio against the faster peer
(1: the condition costs fastlstm no more than the peers).
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

IDLE_GAPS = (0.01, 0.05, 0.25)
CONDITIONS = ("warm",) + tuple(f"idle {int(g * 1000)} ms" for g in IDLE_GAPS)
CONDITIONS += ("after numpy", "after ORT", "busy process")
NUMPY_SIZE = 512  # the numpy product before a call: (512 x 512) @ (512 x 512), fp32
CASES = ("canon", "stream1", "mid", "wide", "large")  # forward calls; plus the step


def _one_call(fn, before=None):
    """Seconds of one call of fn, right after before() (or nothing)."""
    if before is not None:
        before()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _busy_process():
    """Start a process that keeps one core busy until killed."""
    return subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bench_conditions(case_shapes, peers, opts, build_systems, make_inputs, measure):
    """-> {case: {condition: {system: seconds}}} for the forward of each
    (name, shape) in ``case_shapes`` and the streaming step of "step1".

    build_systems, make_inputs and measure are the main benchmark's
    (bench.py), passed in so that both time the same calls the same way.
    """
    calls = {}
    for name, shape in case_shapes:
        T, B, I, H = shape
        systems = build_systems(shape, peers, opts.threads)
        x, _ = make_inputs(T, B, I, H)
        if name == "step1":
            calls["stream step"] = {n: s.step_call(x[:1]) for n, s in systems.items()}
        else:
            calls[f"forward {name}"] = {n: s.forward_call(x) for n, s in systems.items()}
    rng = np.random.default_rng(0)
    a = rng.standard_normal((NUMPY_SIZE, NUMPY_SIZE), dtype=np.float32)
    b = rng.standard_normal((NUMPY_SIZE, NUMPY_SIZE), dtype=np.float32)
    ort_other = None
    if peers.ort is not None:
        other = build_systems((100, 32, 64, 128), peers, opts.threads)["ORT"]
        ort_other = other.forward_call(make_inputs(100, 32, 64, 128)[0])
    before = {"after numpy": lambda: a @ b, "after ORT": ort_other}
    rounds = max(3, opts.repeat)
    out = {}
    for case, systems in calls.items():
        print(f"bench: conditions, {case}", file=sys.stderr, flush=True)
        res = {c: {} for c in CONDITIONS}
        for cond in CONDITIONS:
            if cond in before and before[cond] is None:
                continue
            if cond in ("warm", "busy process"):
                proc = _busy_process() if cond == "busy process" else None
                try:
                    timed = measure(systems, rounds, opts.min_sample)
                finally:
                    if proc is not None:
                        proc.kill()
                        proc.wait()
                res[cond] = {n: t.median for n, t in timed.items()}
                continue
            samples = {n: [] for n in systems}
            gap = next((g for g in IDLE_GAPS if cond == f"idle {int(g * 1000)} ms"), None)
            for fn in systems.values():  # warm every system first
                fn()
            pre = before[cond] if gap is None else (lambda g=gap: time.sleep(g))
            for _ in range(rounds):
                for n, fn in systems.items():
                    samples[n].append(_one_call(fn, pre))
            res[cond] = {n: float(np.median(v)) for n, v in samples.items()}
        out[case] = res
    return out


def _fmt(seconds):
    """µs under 1 ms, else ms, 3-4 significant digits."""
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.3g} ms"


def conditions_tables(results, Table, cpu):
    """One table per condition: the cases' times and ratios."""
    tables = []
    for cond in CONDITIONS:
        tab = Table(
            f"Under conditions: {cond} (CPU: {cpu})",
            ["case", "fastlstm", "torch", "ORT", "torch/fl", "ORT/fl", "best/fl", "vs warm"],
        )
        for case, res in results.items():
            r = res.get(cond) or {}
            fl = r.get("fastlstm")
            if fl is None:
                continue
            peers = [r[p] for p in ("torch", "ORT") if p in r]
            best = min(peers) if peers else None
            w = res["warm"]
            warm_peers = [w[p] for p in ("torch", "ORT") if p in w]
            warm_ratio = min(warm_peers) / w["fastlstm"] if warm_peers else None
            tab.rows.append(
                [
                    case,
                    _fmt(fl),
                    _fmt(r.get("torch")),
                    _fmt(r.get("ORT")),
                    "—" if "torch" not in r else f"{r['torch'] / fl:.2f}",
                    "—" if "ORT" not in r else f"{r['ORT'] / fl:.2f}",
                    "—" if best is None else f"{best / fl:.2f}",
                    "—" if not warm_ratio or best is None else f"{best / fl / warm_ratio:.2f}",
                ]
            )
        if tab.rows:
            tables.append(tab)
    if tables:
        tables[0].notes.append(
            "each cell: median over the rounds; warm and busy process: per call over a "
            "batch of calls; the others: one call right after the condition"
        )
    return tables
