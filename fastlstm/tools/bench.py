"""Benchmark fastlstm against torch.nn.LSTM and ONNX Runtime on this CPU.

Run it as ``python -m fastlstm bench`` (or ``python benchmarks/run.py`` from a
checkout); ``--help`` lists the options.  torch, onnx and onnxruntime are
optional: a peer that is not installed is reported as such and skipped.

What is measured (fp32, one layer, one direction, same weights everywhere):

* forward: ``lstm(x)``; ``torch.nn.LSTM`` under ``torch.inference_mode()``;
  ONNX Runtime running one ONNX ``LSTM`` node built from the same weights.
* forward+backward: ``lstm.forward_train(x)`` then ``backward(d_output)``;
  torch autograd with ``output.backward(d_output)`` (x and the parameters
  require grad; parameter gradients accumulate in both libraries).
* streaming step (with step1): one time step from Python carrying the state:
  ``lstm.stream(B).step(x_t)``; ``torch.nn.LSTMCell``; ONNX Runtime with T=1
  and initial_h/initial_c.
* lengths: canon shape with ragged lengths summing to T*B/2: fastlstm full vs
  ragged, torch padded vs packed (``pack_padded_sequence``).
* memory: peak RSS of one training step, each system in a fresh subprocess.
* train_charlm, train_classify: end-to-end training of small models (layers,
  loss, backward, clipping, Adam) against the same model in torch, time and
  peak memory; see fastlstm/tools/bench_train.py.

Method.  Outputs (and dx for the backward) are checked against fastlstm
before anything is timed; a shape whose peer disagrees is not timed and its
row says why.  Every system is warmed up, then the systems are timed in
alternating rounds (fastlstm, torch, ORT, fastlstm, ...) so that machine noise
hits all of them alike.  A sample times a batch of calls lasting at least
``min_sample`` and records the time per call; the tables show the median over
the rounds and, after ``±``, half the interquartile range.  Before every sample
the benchmark sleeps briefly so that the previous system's spinning worker
threads (OpenMP, ORT's pool) go idle and do not steal the cores, then runs the
system untimed for another ``min_sample``: that sleep would otherwise make the
first calls of every sample first calls after an idle gap (thread pools
asleep, caches and virtual CPUs cold), which is a condition of its own, timed
on its own by ``--shapes conditions``.  The tables are warm: calls back to
back.

FLOPs count only the matrix products: forward 2*T*B*4H*(I+H), forward+backward
3x that.  Peak: measured before the shapes are timed, the fp32 GFLOP/s of a
register-only FMA loop of fastlstm's variant in use, on ``--threads`` threads
at once (kernels.fma_peak: the clock the cores really run at, turbo
included, which a nominal clock from /proc/cpuinfo is not); set
``--peak-gflops`` to override.  Ratios are peer_time / fastlstm_time, so > 1
means fastlstm is faster.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import fastlstm
from fastlstm import _machine
from fastlstm._native import kernels
from fastlstm.interop.onnx import lstm_model
from fastlstm.tools import bench_conditions, bench_train

# name -> (T, B, I, H)
SHAPES = {
    "canon": (100, 32, 64, 128),
    "stream1": (100, 1, 64, 128),
    "mid": (50, 64, 256, 256),
    "wide": (100, 16, 512, 512),
    "large": (35, 64, 1024, 1024),
    "step1": (1, 1, 64, 128),
}
TRAIN_SHAPES = tuple(bench_train.TRAIN_SHAPES)  # end-to-end training (bench_train.py)
# selectable with --shapes like the shapes
EXTRAS = ("lengths", "memory", "conditions") + TRAIN_SHAPES
LENGTHS_SHAPE = "canon"
MEMORY_SHAPES = ("canon", "large")
STREAM_SHAPE = "step1"  # the streaming-step rows go with this shape
QUICK_SHAPES = ("canon", "step1", "lengths")

FORWARD_TOL = 1e-5  # max |output - fastlstm output| (outputs are in (-1, 1))
DX_RTOL = 1e-4  # max |dx - fastlstm dx| / max |fastlstm dx|
SEED = 0


class Mismatch(Exception):
    """A peer's result differs from fastlstm's: the row is not timed."""


def _optional(name):
    """Import an optional peer; None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# ---- timing ----------------------------------------------------------------


@dataclass
class Timing:
    """Per-call seconds of every sample of one system."""

    samples: list[float]
    calls_per_sample: int

    @property
    def median(self):
        return float(np.median(self.samples))

    @property
    def half_iqr(self):
        q1, q3 = np.percentile(self.samples, [25, 75])
        return float(q3 - q1) / 2


def wait_idle(slice_s=0.01, max_s=1.0):
    """Sleep until this process's own threads have gone idle.

    Thread pools keep spinning on the cores after their work is done
    (libgomp about 10 ms, ONNX Runtime's pool 60 ms and more, measured here);
    a system timed right after another would share the cores with those
    spinning threads.  So: sleep in slices until a slice passes with (almost)
    no CPU time used by the process, at most ``max_s``."""
    deadline = time.perf_counter() + max_s
    while True:
        c0 = time.process_time()
        time.sleep(slice_s)
        if time.process_time() - c0 < 0.1 * slice_s or time.perf_counter() > deadline:
            return


def measure(
    calls: dict[str, Callable[[], object]],
    rounds: int,
    min_sample: float,
    settle: float = 0.01,
    warmup: float | None = None,
) -> dict[str, Timing]:
    """Time every callable in alternating rounds; the one timing helper of
    the benchmark.

    Each callable is warmed up (at least 2 calls and 50 ms) and gets the
    batch size that makes one sample last ``min_sample`` seconds; then each
    round takes one sample of every callable in turn.  Before a sample: the
    settle (the previous callable's threads go idle, ``wait_idle``), then
    untimed calls of this one for ``warmup`` seconds (default ``min_sample``,
    at least one call; none for 0), so that the sample times calls back to
    back.
    """
    warmup = min_sample if warmup is None else warmup
    batch = {}
    for name, fn in calls.items():
        start, n, fastest = time.perf_counter(), 0, float("inf")
        while n < 2 or time.perf_counter() - start < 0.05:
            t0 = time.perf_counter()
            fn()
            fastest = min(fastest, time.perf_counter() - t0)
            n += 1
        batch[name] = max(1, int(np.ceil(min_sample / max(fastest, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            wait_idle(settle)
            n = batch[name]
            untimed = max(1, int(np.ceil(n * warmup / min_sample))) if warmup > 0 else 0
            for _ in range(untimed):
                fn()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    return {name: Timing(samples[name], batch[name]) for name in calls}


# ---- the systems -----------------------------------------------------------
# Each system turns prepared inputs into a no-argument callable (what is
# timed) that returns the output (forward), dx (train) or h (step).


class FastSystem:
    name = "fastlstm"

    def __init__(self, lstm):
        self.lstm = lstm

    def forward_call(self, x, lengths=None):
        lstm = self.lstm
        return lambda: lstm(x, lengths=lengths)[0]

    def train_call(self, x, d_output, lengths=None):
        lstm = self.lstm

        def train_step():
            _, _, backward = lstm.forward_train(x, lengths=lengths)
            return backward(d_output)[0]

        return train_step

    def step_call(self, x_t):
        """x_t: (1, B, I): ``lstm.stream(B).step(x_t[0])``, the state carried."""
        stream = self.lstm.stream(x_t.shape[1])
        return lambda: stream.step(x_t[0])


class TorchSystem:
    name = "torch"

    def __init__(self, torch, params, input_size, hidden_size):
        self.torch = torch
        self.module = torch.nn.LSTM(input_size, hidden_size)
        with torch.no_grad():
            for k, v in params.items():
                getattr(self.module, k).copy_(torch.from_numpy(v))

    def _run(self, xt, lengths):
        if lengths is None:
            return self.module(xt)[0]
        rnn = self.torch.nn.utils.rnn
        packed = rnn.pack_padded_sequence(xt, lengths, enforce_sorted=False)
        return rnn.pad_packed_sequence(self.module(packed)[0], total_length=xt.shape[0])[0]

    def forward_call(self, x, lengths=None):
        torch, xt = self.torch, self.torch.from_numpy(x)
        lengths = None if lengths is None else torch.from_numpy(lengths)

        def forward():
            with torch.inference_mode():
                return self._run(xt, lengths)

        return forward

    def train_call(self, x, d_output, lengths=None):
        torch = self.torch
        xt = torch.from_numpy(x.copy()).requires_grad_()
        dy = torch.from_numpy(d_output)
        lengths = None if lengths is None else torch.from_numpy(lengths)

        def train_step():
            xt.grad = None  # a fresh dx per call, as fastlstm returns
            self._run(xt, lengths).backward(dy)
            return xt.grad

        return train_step

    def step_call(self, x_t):
        torch, m = self.torch, self.module
        cell = torch.nn.LSTMCell(m.input_size, m.hidden_size)
        with torch.no_grad():
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, k).copy_(getattr(m, k + "_l0"))
        xt, state = torch.from_numpy(x_t[0]), [None]

        def step():
            with torch.inference_mode():
                state[0] = cell(xt, state[0])
            return state[0][0]

        return step


class OrtSystem:
    name = "ORT"

    def __init__(self, ort, params, input_size, hidden_size, threads):
        self.hidden_size = hidden_size
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        model = lstm_model(params, input_size, hidden_size)
        self.session = ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )

    def _feeds(self, x):
        zeros = np.zeros((1, x.shape[1], self.hidden_size), np.float32)
        return {"X": x, "initial_h": zeros, "initial_c": zeros.copy()}

    def forward_call(self, x):
        run, feeds = self.session.run, self._feeds(x)
        return lambda: run(["Y"], feeds)[0][:, 0]

    def step_call(self, x_t):
        run, feeds = self.session.run, self._feeds(x_t)

        def step():
            feeds["initial_h"], feeds["initial_c"] = run(["Y_h", "Y_c"], feeds)
            return feeds["initial_h"][0]

        return step


# ---- inputs and checks -----------------------------------------------------


def make_inputs(T, B, I, H, seed=SEED):
    """x (T, B, I) and d_output (T, B, H), float32, reproducible."""
    rng = np.random.default_rng(seed + 1)
    return (
        rng.standard_normal((T, B, I), dtype=np.float32),
        rng.standard_normal((T, B, H), dtype=np.float32),
    )


def half_lengths(T, B, seed=SEED):
    """Lengths in [1, T] spread evenly with sum T*B//2, in a fixed seeded order."""
    lengths = np.round(np.linspace(1, T - 1, B)).astype(np.int64)
    lengths[np.argmax(lengths)] += T * B // 2 - lengths.sum()
    assert lengths.sum() == T * B // 2 and lengths.min() >= 1 and lengths.max() <= T
    return np.random.default_rng(seed).permutation(lengths)


def check_close(what, got, ref, tol, relative=False):
    """Raise Mismatch unless max|got - ref| <= tol (times max|ref| if relative)."""
    got = got.detach().numpy() if hasattr(got, "detach") else np.asarray(got)
    if got.shape != ref.shape:
        raise Mismatch(f"{what}: shape {got.shape} != fastlstm's {ref.shape}")
    err = float(np.max(np.abs(got - ref)))
    limit = tol * max(float(np.max(np.abs(ref))), 1e-30) if relative else tol
    if not err <= limit:
        raise Mismatch(f"{what} differs from fastlstm: max|diff| = {err:.3g} > {limit:.3g}")


def compare_and_time(calls, what, opts, tol=FORWARD_TOL, relative=False):
    """Check every call's result against fastlstm's call of the same variant
    ('torch ragged' against 'fastlstm ragged', 'ORT' against 'fastlstm'), then
    time them all.  -> {name: Timing}, or the reason they were not timed."""

    def reference(name):
        variant = name.partition(" ")[2]
        return f"fastlstm {variant}" if variant else "fastlstm"

    try:
        refs = {n: np.asarray(fn()) for n, fn in calls.items() if reference(n) == n}
        for name, fn in calls.items():
            if reference(name) != name:
                check_close(f"{name} {what}", fn(), refs[reference(name)], tol, relative)
    except Mismatch as exc:
        print(f"bench: NOT TIMED, {exc}", file=sys.stderr, flush=True)
        return f"not timed: {exc}"
    return measure(calls, opts.repeat, opts.min_sample)


# ---- the experiments -------------------------------------------------------


@dataclass
class Peers:
    """The optional peer modules (None when not installed)."""

    torch: object = None
    onnx: object = None
    ort: object = None

    @classmethod
    def load(cls, threads):
        torch, onnx, ort = _optional("torch"), _optional("onnx"), _optional("onnxruntime")
        if torch is not None:
            torch.set_num_threads(threads)
        if onnx is None or ort is None:
            onnx = ort = None
        return cls(torch, onnx, ort)


def build_systems(shape, peers, threads):
    """fastlstm, torch, ORT layers with the same weights (missing peers left out)."""
    _, _, I, H = shape
    lstm = fastlstm.LSTM(I, H, dtype=np.float32, seed=SEED)
    params = lstm.state_dict()
    systems = {"fastlstm": FastSystem(lstm)}
    if peers.torch is not None:
        systems["torch"] = TorchSystem(peers.torch, params, I, H)
    if peers.ort is not None:
        systems["ORT"] = OrtSystem(peers.ort, params, I, H, threads)
    return systems


def bench_shape(shape, peers, opts, stream=False):
    """-> {"forward": {system: Timing}, "train": {...}[, "step": {...}]}, a
    pass whose results disagree holds the reason instead (see compare_and_time);
    "step" (the streaming step, from the first time step of x) with ``stream``."""
    T, B, I, H = shape
    systems = build_systems(shape, peers, opts.threads)
    x, dy = make_inputs(T, B, I, H)
    result = {
        "forward": compare_and_time(
            {n: s.forward_call(x) for n, s in systems.items()}, "output", opts
        )
    }
    result["train"] = compare_and_time(
        {n: s.train_call(x, dy) for n, s in systems.items() if hasattr(s, "train_call")},
        "dx",
        opts,
        DX_RTOL,
        relative=True,
    )
    if stream:
        result["step"] = compare_and_time(
            {n: s.step_call(x[:1]) for n, s in systems.items()}, "streaming step", opts
        )
    return result


def bench_lengths(peers, opts):
    """-> {"forward"/"train": {label: Timing} or why not timed} for full vs
    ragged batches."""
    T, B, I, H = SHAPES[LENGTHS_SHAPE]
    systems = build_systems(SHAPES[LENGTHS_SHAPE], Peers(torch=peers.torch), opts.threads)
    x, dy = make_inputs(T, B, I, H)
    lengths = half_lengths(T, B)
    result = {}
    for mode in ("forward", "train"):

        def call(system, lens, mode=mode):
            return (
                system.forward_call(x, lens)
                if mode == "forward"
                else system.train_call(x, dy, lens)
            )

        full = {f"{n} full": call(s, None) for n, s in systems.items()}
        ragged = {f"{n} ragged": call(s, lengths) for n, s in systems.items()}
        result[mode] = (
            compare_and_time({**full, **ragged}, "output", opts)
            if mode == "forward"
            else compare_and_time({**full, **ragged}, "dx", opts, DX_RTOL, relative=True)
        )
    return result


def _rss_probe():
    """(current RSS, peak RSS since the last reset) in MiB; resets the peak."""
    with open("/proc/self/status") as fh:
        status = dict(line.split(":", 1) for line in fh)
    mib = [int(status[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")]
    try:  # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return mib


def memory_child(system, T, B, I, H, threads):
    """Run in a fresh interpreter: one training step of ``system``; prints
    JSON {"before": RSS after imports and setup, "peak": peak RSS during the
    step, "delta": peak - before}, in MiB."""
    fastlstm.set_num_threads(threads)
    torch = None
    if system == "torch":  # import only what this system needs: it is in the RSS
        import torch

        torch.set_num_threads(threads)
    systems = build_systems((T, B, I, H), Peers(torch=torch), threads)
    x, dy = make_inputs(T, B, I, H)
    train_step = systems[system].train_call(x, dy)
    gc.collect()
    before, _ = _rss_probe()
    train_step()
    _, peak = _rss_probe()
    print(json.dumps({"before": before, "peak": peak, "delta": peak - before}))


def bench_memory(peers, opts):
    """-> {shape: {system: {"before", "peak", "delta"} or error string}}."""
    if not os.path.exists("/proc/self/status"):
        return {"error": "memory: needs Linux /proc"}
    env = bench_train.child_env()
    out = {}
    for shape_name in MEMORY_SHAPES:
        out[shape_name] = {}
        for system in ("fastlstm", "torch"):
            if system == "torch" and peers.torch is None:
                continue
            args = [system, *SHAPES[shape_name], opts.threads]
            code = (
                "import sys; from fastlstm.tools.bench import memory_child; "
                f"memory_child(*{args!r})"
            )
            proc = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env
            )
            if proc.returncode:
                out[shape_name][system] = "failed: " + proc.stderr.strip().splitlines()[-1]
            else:
                out[shape_name][system] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# ---- report ----------------------------------------------------------------


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def forward_flops(T, B, I, H):
    return 2.0 * T * B * 4 * H * (I + H)


def _cell(timing, scale=1e3):
    """'median ±half-IQR' in ms (scale 1e3) or µs (1e6), 4 significant digits."""
    if timing is None:
        return "—"
    med = timing.median * scale
    decimals = max(0, 3 - int(np.floor(np.log10(med)))) if med > 0 else 0
    return f"{med:.{decimals}f} ±{timing.half_iqr * scale:.{decimals}f}"


def _ratio(peer, ref):
    return "—" if peer is None or ref is None else f"{peer.median / ref.median:.2f}"


def _speed(flops, timing, peak):
    gflops = flops / timing.median / 1e9
    return f"{gflops:.1f}", ("n/a" if not peak else f"{100 * gflops / peak:.0f}%")


def shape_tables(results, peers, peak):
    """The forward, forward+backward and streaming-step tables."""
    missing = [n for n, m in (("torch", peers.torch), ("ORT", peers.ort)) if m is None]
    fwd = Table(
        "Forward (inference), ms",
        [
            "shape",
            "T,B,I,H",
            "fastlstm",
            "torch",
            "ORT",
            "GFLOP/s",
            "% peak",
            "vs torch",
            "vs ORT",
            "vs best",
        ],
    )
    train = Table(
        "Forward+backward (training step), ms",
        ["shape", "T,B,I,H", "fastlstm", "torch", "GFLOP/s", "% peak", "vs torch"],
    )
    step = Table(
        "Streaming step from Python (1 step, state carried), µs",
        ["shape", "B,I,H", "fastlstm", "torch LSTMCell", "ORT (T=1)", "vs torch", "vs ORT"],
    )
    for name, res in results.items():
        shape = SHAPES[name]
        dims = ",".join(map(str, shape))
        f = res["forward"]
        if isinstance(f, str):
            fwd.rows.append([name, dims, f] + [""] * 7)
        else:
            fast, tor, ort = f["fastlstm"], f.get("torch"), f.get("ORT")
            peers_t = [t for t in (tor, ort) if t is not None]
            best = min(peers_t, key=lambda t: t.median) if peers_t else None
            fwd.rows.append(
                [
                    name,
                    dims,
                    _cell(fast),
                    _cell(tor),
                    _cell(ort),
                    *_speed(forward_flops(*shape), fast, peak),
                    _ratio(tor, fast),
                    _ratio(ort, fast),
                    _ratio(best, fast),
                ]
            )
        t = res["train"]
        if isinstance(t, str):
            train.rows.append([name, dims, t] + [""] * 4)
        else:
            train.rows.append(
                [
                    name,
                    dims,
                    _cell(t["fastlstm"]),
                    _cell(t.get("torch")),
                    *_speed(3 * forward_flops(*shape), t["fastlstm"], peak),
                    _ratio(t.get("torch"), t["fastlstm"]),
                ]
            )
        s = res.get("step")
        if isinstance(s, str):
            step.rows.append([name, dims.split(",", 1)[1], s] + [""] * 4)
        elif s is not None:
            step.rows.append(
                [
                    name,
                    dims.split(",", 1)[1],
                    _cell(s["fastlstm"], 1e6),
                    _cell(s.get("torch"), 1e6),
                    _cell(s.get("ORT"), 1e6),
                    _ratio(s.get("torch"), s["fastlstm"]),
                    _ratio(s.get("ORT"), s["fastlstm"]),
                ]
            )
    if missing:
        fwd.notes.append("not installed: " + ", ".join(missing))
    step.notes.append("fastlstm: lstm.stream(B).step(x_t)")
    return [t for t in (fwd, train, step) if t.rows]


def lengths_table(res):
    T, B, I, H = SHAPES[LENGTHS_SHAPE]
    tab = Table(
        f"Ragged lengths ({LENGTHS_SHAPE} {T},{B},{I},{H}; lengths sum to T*B/2), ms",
        [
            "pass",
            "fastlstm full",
            "fastlstm ragged",
            "ragged/full",
            "torch padded",
            "torch packed",
            "packed/padded",
            "torch packed / fastlstm ragged",
        ],
    )
    for mode, label in (("forward", "forward"), ("train", "forward+backward")):
        r = res[mode]
        if isinstance(r, str):
            tab.rows.append([label, r] + [""] * 6)
            continue
        fr, tp = r["fastlstm ragged"], r.get("torch ragged")
        tab.rows.append(
            [
                label,
                _cell(r["fastlstm full"]),
                _cell(fr),
                _ratio(fr, r["fastlstm full"]),
                _cell(r.get("torch full")),
                _cell(tp),
                _ratio(tp, r.get("torch full")),
                _ratio(tp, fr),
            ]
        )
    tab.notes.append(
        "torch packed = pack_padded_sequence(enforce_sorted=False) + LSTM + "
        "pad_packed_sequence, all timed; torch padded ignores the lengths"
    )
    return tab


def memory_table(res):
    tab = Table(
        "Memory of one training step (fresh process each), MiB",
        [
            "shape",
            "T,B,I,H",
            "fastlstm peak RSS",
            "fastlstm step Δ",
            "torch peak RSS",
            "torch step Δ",
            "torch Δ / fastlstm Δ",
        ],
    )
    if "error" in res:
        tab.rows.append(["", res["error"]] + [""] * 5)
        return tab
    for name, per in res.items():
        cells = []
        for system in ("fastlstm", "torch"):
            m = per.get(system)
            cells += (
                [m, ""]
                if isinstance(m, str)
                else ["—", "—"]
                if m is None
                else [f"{m['peak']:.0f}", f"{m['delta']:.1f}"]
            )
        f, t = per.get("fastlstm"), per.get("torch")
        ratio = (
            f"{t['delta'] / f['delta']:.1f}"
            if isinstance(f, dict) and isinstance(t, dict) and f["delta"] > 0
            else "—"
        )
        tab.rows.append([name, ",".join(map(str, SHAPES[name])), *cells, ratio])
    tab.notes.append(
        "peak RSS includes the interpreter and imports (torch's import is "
        "large); step Δ = peak RSS during forward_train+backward minus RSS "
        "just before it (first step: includes first touch of gradient buffers)"
    )
    return tab


def load_average():
    """1-minute load average, or None where the OS does not tell."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def cpu_model():
    """The CPU's model name as fastlstm read it (cpuid, else /proc/cpuinfo),
    else what platform tells."""
    return kernels.cpu_info()["model"] or platform.processor() or platform.machine()


def environment(started, peers, threads, peak, peak_note, loads):
    """Lines describing the run, the machine, its load and the libraries."""
    info = kernels.cpu_info()
    versions = [f"fastlstm {fastlstm.__version__} ({fastlstm._isa()})", f"numpy {np.__version__}"]
    for name, mod in (("torch", peers.torch), ("onnx", peers.onnx), ("onnxruntime", peers.ort)):
        versions.append(f"{name} {mod.__version__}" if mod is not None else f"{name} not installed")
    return [
        f"date: {started.isoformat(timespec='seconds')}",
        f"CPU: {cpu_model()}, {info['cpus']} logical CPUs; threads: {threads} (every system)",
        f"caches: {_machine.caches_text(info)}; fastlstm variant {fastlstm._isa()}",
        f"peak: {peak_note}" if peak else f"peak: unknown ({peak_note}; use --peak-gflops)",
        f"python {platform.python_version()}; " + ", ".join(versions),
        "1-min load average before/after: "
        + " / ".join("n/a" if v is None else f"{v:.2f}" for v in loads)
        + (" (other processes were busy: expect noise)" if (loads[0] or 0) > 0.5 else ""),
    ]


def measured_peak_gflops(threads, seconds=0.02):
    """-> (GFLOP/s, explanation): the fp32 FMA loop of the variant in use on
    ``threads`` threads at once, or (None, reason)."""
    got = kernels.fma_peak(None, "float32", threads, seconds)
    if got is None:
        return None, f"no FMA loop for variant {fastlstm._isa()}"
    gflops, ran = got
    return gflops, (
        f"{gflops:.0f} GFLOP/s = fp32 register-only FMA loop ({fastlstm._isa()}) measured "
        f"on {ran} thread{'s' if ran > 1 else ''} at once"
    )


def render_text(tables):
    out = []
    for tab in tables:
        widths = [max(len(r[i]) for r in [tab.header] + tab.rows) for i in range(len(tab.header))]
        out += ["", tab.title, "  ".join(h.ljust(w) for h, w in zip(tab.header, widths))]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in tab.rows]
        out += ["  " + n for n in tab.notes]
    return "\n".join(out)


def render_markdown(tables, env_lines, method):
    out = ["# fastlstm benchmark", ""] + [f"- {l}" for l in env_lines] + ["", method]
    for tab in tables:
        out += [
            "",
            f"### {tab.title}",
            "",
            "| " + " | ".join(tab.header) + " |",
            "|" + "|".join("---" for _ in tab.header) + "|",
        ]
        out += ["| " + " | ".join(r) + " |" for r in tab.rows]
        out += [""] + [f"*{n}*  " for n in tab.notes] if tab.notes else []
    return "\n".join(out) + "\n"


# ---- command line ----------------------------------------------------------


def add_arguments(parser):
    """The ``bench`` options (shared by ``python -m fastlstm bench`` and main())."""
    names = ",".join(list(SHAPES) + list(EXTRAS))
    parser.add_argument(
        "--shapes",
        default=None,
        help=f"comma-separated subset of {names} (default: all; "
        f"with --quick: {','.join(QUICK_SHAPES)})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        metavar="N",
        help="timing rounds per system (default 15; 3 with --quick)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="threads for every system (default 2)"
    )
    parser.add_argument(
        "--peak-gflops",
        type=float,
        default=None,
        help="fp32 peak for the %% column (default: measured by an FMA loop)",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables as markdown")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few rounds, short samples, small shape set (CI smoke test)",
    )
    return parser


def run(args):
    """Run the benchmark described by parsed ``args``; returns an exit code."""
    selected = (
        args.shapes.split(",")
        if args.shapes
        else list(QUICK_SHAPES)
        if args.quick
        else list(SHAPES) + list(EXTRAS)
    )
    unknown = [s for s in selected if s not in SHAPES and s not in EXTRAS]
    if unknown:
        print(
            f"--shapes: unknown {', '.join(unknown)}; choose from "
            f"{', '.join(list(SHAPES) + list(EXTRAS))}",
            file=sys.stderr,
        )
        return 2
    args.repeat = args.repeat or (3 if args.quick else 15)
    args.min_sample = 0.005 if args.quick else 0.02
    started, load_before = datetime.datetime.now(), load_average()
    if (load_before or 0) > 0.5:
        print(
            f"bench: warning: load average {load_before:.2f} before starting; other "
            "processes compete for the cores and the timings will be noisy",
            file=sys.stderr,
        )
    fastlstm.set_num_threads(args.threads)
    peers = Peers.load(args.threads)
    peak, peak_note = (
        (args.peak_gflops, f"{args.peak_gflops:g} GFLOP/s (--peak-gflops)")
        if args.peak_gflops
        else measured_peak_gflops(args.threads)
    )

    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    results = {}
    for name in (s for s in selected if s in SHAPES):
        progress(f"bench: {name} {SHAPES[name]}")
        results[name] = bench_shape(SHAPES[name], peers, args, stream=name == STREAM_SHAPE)
    tables = shape_tables(results, peers, peak)
    if "lengths" in selected:
        progress("bench: lengths")
        tables.append(lengths_table(bench_lengths(peers, args)))
    if "memory" in selected:
        progress("bench: memory (subprocesses)")
        tables.append(memory_table(bench_memory(peers, args)))
    if "conditions" in selected:
        names = [s for s in selected if s in SHAPES] or list(SHAPES)
        res = bench_conditions.bench_conditions(
            [(n, SHAPES[n]) for n in names], peers, args, build_systems, make_inputs, measure
        )
        tables += bench_conditions.conditions_tables(res, Table, cpu_model())
    train_results = {}
    for name in (s for s in selected if s in TRAIN_SHAPES):
        progress(f"bench: {name}")
        train_results[name] = bench_train.bench_train(name, peers, args, measure)
        progress(f"bench: {name} memory (subprocesses)")
        train_results[name]["memory"] = bench_train.bench_train_memory(name, peers, args)
    if train_results:
        tables.append(bench_train.train_table(train_results, Table, _cell, _ratio))

    env_lines = environment(
        started, peers, args.threads, peak, peak_note, (load_before, load_average())
    )
    method = (
        f"Median over {args.repeat} alternating rounds, ± half the interquartile range; "
        "ratios are peer time / fastlstm time (> 1: fastlstm faster); "
        "GFLOP/s counts 2·T·B·4H·(I+H) per forward, 3x for forward+backward. "
        "fp32, 1 layer, unidirectional, same weights in every system."
    )
    print("\n".join(env_lines) + "\n" + method + "\n" + render_text(tables) + "\n")
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(render_markdown(tables, env_lines, method))
        progress(f"bench: wrote {args.markdown}")
    return 0


def main(argv=None):
    """``fastlstm bench`` as a stand-alone program (benchmarks/run.py)."""
    parser = add_arguments(
        argparse.ArgumentParser(prog="fastlstm bench", description=__doc__.split("\n\n")[0])
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
