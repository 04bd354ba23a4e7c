"""End-to-end training benchmarks of ``python -m fastlstm bench`` (shapes
``train_charlm`` and ``train_classify``): whole training steps of small
models, fastlstm's layers, loss, clipping and Adam against the same model in
PyTorch, from the same initial weights.

* train_charlm: character-level language model, Embedding(118, 64) ->
  2-layer LSTM(64, 256) -> Linear(256, 118), batch 32, truncated BPTT of 64
  steps, the (h, c) state carried (detached) from one batch to the next;
  one timed call = one step: forward, cross-entropy over all T*B
  predictions, backward, clipping at global norm 5, Adam (lr 2e-3),
  zero_grad.
* train_classify: many-to-one classification of ragged sequences,
  Embedding(118, 64) -> LSTM(64, 256) -> last valid step -> Linear(256, 10);
  one timed call = one epoch of 128 sequences (lengths 8..100) in 4 batches
  of 32 padded to their longest; fastlstm with ``lengths=``, torch with
  ``pack_padded_sequence(enforce_sorted=False)`` and h_n.

Before timing, the first step of both systems is run from the same weights
on the same batch and the losses must agree (a Mismatch otherwise).  Peak
memory: each system runs in a fresh interpreter, builds its model, then the
peak RSS (Linux VmHWM, reset through /proc/self/clear_refs) over 3 training
steps is compared with the RSS just before them (so the delta holds the
gradients, optimizer state, activations and scratch of a step, not the
interpreter or the imports).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import numpy as np

import fastlstm

SEED = 0
LOSS_RTOL = 1e-4  # first-step loss, fastlstm vs torch

# name -> configuration, one per row
# fmt: off
TRAIN_SHAPES = {
    "train_charlm": dict(vocab=118, embed=64, hidden=256, layers=2, T=64, B=32, classes=118),
    "train_classify": dict(vocab=118, embed=64, hidden=256, layers=1, B=32, classes=10,
                           sequences=128, min_len=8, max_len=100),
}
# fmt: on
LR, MAX_NORM = 2e-3, 5.0


class Mismatch(Exception):
    pass


# ---- data ------------------------------------------------------------------


def charlm_batches(cfg, n=4, seed=SEED):
    """n (inputs, targets) pairs of int64 (T, B): a random text cut into B
    streams, targets the next character."""
    rng = np.random.default_rng(seed + 7)
    T, B = cfg["T"], cfg["B"]
    text = rng.integers(0, cfg["vocab"], size=(B, n * T + 1))
    out = []
    for k in range(n):
        chunk = text[:, k * T : (k + 1) * T + 1].T  # (T+1, B)
        out.append((np.ascontiguousarray(chunk[:-1]), np.ascontiguousarray(chunk[1:])))
    return out


def classify_batches(cfg, seed=SEED):
    """[(tokens (T_b, B) int64 padded with 0, lengths (B,) int64, labels (B,))]."""
    rng = np.random.default_rng(seed + 11)
    B, n = cfg["B"], cfg["sequences"]
    lengths = rng.integers(cfg["min_len"], cfg["max_len"] + 1, size=n)
    labels = rng.integers(0, cfg["classes"], size=n)
    out = []
    for k in range(0, n, B):
        lens = lengths[k : k + B].astype(np.int64)
        T = int(lens.max())
        tok = rng.integers(1, cfg["vocab"], size=(T, B))
        tok[np.arange(T)[:, None] >= lens[None, :]] = 0
        out.append((tok.astype(np.int64), lens, labels[k : k + B].astype(np.int64)))
    return out


# ---- fastlstm --------------------------------------------------------------


class FastCharLM:
    name = "fastlstm"

    def __init__(self, cfg):
        self.cfg = cfg
        self.emb = fastlstm.Embedding(cfg["vocab"], cfg["embed"], seed=SEED)
        self.lstm = fastlstm.LSTM(cfg["embed"], cfg["hidden"], cfg["layers"], seed=SEED + 1)
        self.head = fastlstm.Linear(cfg["hidden"], cfg["classes"], seed=SEED + 2)
        self.layers = [self.emb, self.lstm, self.head]
        self.opt = fastlstm.optim.Adam(self.layers, lr=LR)
        self.state = None

    def state_dict(self):
        """torch's keys of the same model (emb., lstm., head.)."""
        return {
            f"{p}.{k}": v
            for p, layer in zip(("emb", "lstm", "head"), self.layers)
            for k, v in layer.state_dict().items()
        }

    def step(self, x, y):
        e, emb_back = self.emb.forward_train(x)
        out, state, lstm_back = self.lstm.forward_train(e, hx=self.state)
        self.state = state  # carried; the graph is cut (truncated BPTT)
        logits, head_back = self.head.forward_train(out)
        loss, grad = fastlstm.losses.cross_entropy(logits, y)
        dx, _ = lstm_back(head_back(grad))
        emb_back(dx)
        fastlstm.optim.clip_grad_norm_(self.layers, MAX_NORM)
        self.opt.step()
        self.opt.zero_grad()
        return loss


class FastClassifier:
    name = "fastlstm"

    def __init__(self, cfg):
        self.model = fastlstm.Sequential(
            fastlstm.Embedding(cfg["vocab"], cfg["embed"], seed=SEED),
            fastlstm.LSTM(cfg["embed"], cfg["hidden"], cfg["layers"], seed=SEED + 1),
            fastlstm.LastStep(),
            fastlstm.Linear(cfg["hidden"], cfg["classes"], seed=SEED + 2),
        )
        self.opt = fastlstm.optim.Adam([self.model], lr=LR)

    def state_dict(self):
        names = {"0": "emb", "1": "lstm", "3": "head"}
        return {
            f"{names[k.split('.', 1)[0]]}.{k.split('.', 1)[1]}": v
            for k, v in self.model.state_dict().items()
        }

    def step(self, tok, lens, labels):
        logits, backward = self.model.forward_train(tok, lengths=lens)
        loss, grad = fastlstm.losses.cross_entropy(logits, labels)
        backward(grad)
        fastlstm.optim.clip_grad_norm_([self.model], MAX_NORM)
        self.opt.step()
        self.opt.zero_grad()
        return loss


# ---- torch -----------------------------------------------------------------


def _torch_model(torch, cfg, params):
    """The same model in torch (a ModuleDict: keys emb., lstm., head.)."""
    nn = torch.nn
    model = nn.ModuleDict(
        {
            "emb": nn.Embedding(cfg["vocab"], cfg["embed"]),
            "lstm": nn.LSTM(cfg["embed"], cfg["hidden"], cfg["layers"]),
            "head": nn.Linear(cfg["hidden"], cfg["classes"]),
        }
    )
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
    return model


class _TorchTrainer:
    """torch's side of a training shape: the model with fastlstm's initial
    weights, its Adam, and the update that ends every step."""

    name = "torch"

    def __init__(self, torch, cfg, params):
        self.torch, self.cfg = torch, cfg
        self.model = _torch_model(torch, cfg, params)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)

    def _update(self, loss):
        """Backward, clip, Adam step; -> the loss as a float."""
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), MAX_NORM)
        self.opt.step()
        self.opt.zero_grad()
        return loss.item()


class TorchCharLM(_TorchTrainer):
    def __init__(self, torch, cfg, params):
        super().__init__(torch, cfg, params)
        self.state = None

    def step(self, x, y):
        torch, m = self.torch, self.model
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        out, state = m["lstm"](m["emb"](x), self.state)
        self.state = tuple(s.detach() for s in state)
        logits = m["head"](out)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.cfg["classes"]), y.reshape(-1)
        )
        return self._update(loss)


class TorchClassifier(_TorchTrainer):
    def step(self, tok, lens, labels):
        torch, m = self.torch, self.model
        rnn = torch.nn.utils.rnn
        packed = rnn.pack_padded_sequence(
            m["emb"](torch.from_numpy(tok)), torch.from_numpy(lens), enforce_sorted=False
        )
        _, (h_n, _) = m["lstm"](packed)
        loss = torch.nn.functional.cross_entropy(m["head"](h_n[-1]), torch.from_numpy(labels))
        return self._update(loss)


# ---- the experiment --------------------------------------------------------


# per training shape: fastlstm's model, torch's twin, the batches
_KINDS = {
    "train_charlm": (FastCharLM, TorchCharLM, charlm_batches),
    "train_classify": (FastClassifier, TorchClassifier, classify_batches),
}


def _systems(name, torch):
    """-> ({"fastlstm": model, "torch": the same model in torch, from the
    same initial weights (left out when torch is None)}, batches)."""
    fast_cls, torch_cls, make_batches = _KINDS[name]
    cfg = TRAIN_SHAPES[name]
    fast = fast_cls(cfg)
    systems = {"fastlstm": fast}
    if torch is not None:
        systems["torch"] = torch_cls(torch, cfg, fast.state_dict())
    return systems, make_batches(cfg)


def build(name, torch):
    """-> (systems {name: object with .step}, callables {name: one timed call},
    first-step arguments) for a training shape."""
    systems, batches = _systems(name, torch)
    if name == "train_charlm":

        def caller(system):
            it = [0]

            def call():
                x, y = batches[it[0] % len(batches)]
                it[0] += 1
                return system.step(x, y)

            return call

        calls = {n: caller(s) for n, s in systems.items()}
        return systems, calls

    def epoch_caller(system):
        def epoch():
            total = 0.0
            for b in batches:
                total += system.step(*b)
            return total / len(batches)

        return epoch

    return systems, {n: epoch_caller(s) for n, s in systems.items()}


def check_first_step(name, calls):
    """Both systems' first call from the same weights: losses must agree."""
    losses = {n: float(fn()) for n, fn in calls.items()}
    ref = losses["fastlstm"]
    for n, v in losses.items():
        if not abs(v - ref) <= LOSS_RTOL * max(abs(ref), 1e-30):
            raise Mismatch(f"{name}: first {n} loss {v!r} != fastlstm's {ref!r}")
    return losses


def bench_train(name, peers, opts, measure):
    """-> {"time": {system: Timing} or reason, "loss": first losses}."""
    _, calls = build(name, peers.torch)
    try:
        losses = check_first_step(name, calls)
    except Mismatch as exc:
        print(f"bench: NOT TIMED, {exc}", file=sys.stderr, flush=True)
        return {"time": f"not timed: {exc}", "loss": None}
    return {"time": measure(calls, opts.repeat, opts.min_sample), "loss": losses}


def _rss_probe():
    with open("/proc/self/status") as fh:
        status = dict(line.split(":", 1) for line in fh)
    mib = [int(status[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")]
    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM (Linux >= 4.0)
        fh.write("5")
    return mib


def memory_child(name, system, threads, steps=3):
    """In a fresh interpreter: build ``system``'s model for training shape
    ``name``, then print JSON {"before", "peak", "delta"} (MiB) over
    ``steps`` timed calls (train_classify: steps batches, not epochs)."""
    fastlstm.set_num_threads(threads)
    torch = None
    if system == "torch":
        import torch

        torch.set_num_threads(threads)
    systems, batches = _systems(name, torch)
    sys_obj = systems[system]
    del systems  # measured alone: fastlstm's model goes when torch's is measured
    gc.collect()
    before, _ = _rss_probe()
    for k in range(steps):
        sys_obj.step(*batches[k % len(batches)])
    _, peak = _rss_probe()
    print(json.dumps({"before": before, "peak": peak, "delta": peak - before}))


def child_env():
    """os.environ with this fastlstm's package root first on PYTHONPATH, so
    that a child interpreter imports the fastlstm being benchmarked."""
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastlstm.__file__)))
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [pkg_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    )


def bench_train_memory(name, peers, opts):
    """-> {system: {"before", "peak", "delta"} or error string}."""
    if not os.path.exists("/proc/self/clear_refs"):
        return {"error": "memory: needs Linux /proc"}
    env = child_env()
    out = {}
    for system in ("fastlstm", "torch"):
        if system == "torch" and peers.torch is None:
            continue
        code = (
            "from fastlstm.tools.bench_train import memory_child; "
            f"memory_child({name!r}, {system!r}, {opts.threads})"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if proc.returncode:
            out[system] = "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
        else:
            out[system] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# ---- report ----------------------------------------------------------------

DESCRIPTION = {
    "train_charlm": "char LM: Embedding 118x64, LSTM 64->256 x2, Linear 256->118; "
    "T=64, B=32, state carried; 1 step",
    "train_classify": "classifier: Embedding 118x64, LSTM 64->256, last step, Linear 256->10; "
    "128 ragged sequences (8..100), B=32; 1 epoch",
}


def train_table(results, Table, cell, ratio):
    """results: {name: {"time", "loss", "memory"}} -> one Table."""
    tab = Table(
        "End-to-end training (forward, cross-entropy, backward, clip 5, Adam 2e-3), ms",
        [
            "shape",
            "fastlstm",
            "torch",
            "torch/fastlstm",
            "first loss (both)",
            "fastlstm peak Δ MiB",
            "torch peak Δ MiB",
            "fastlstm/torch memory",
        ],
    )
    for name, res in results.items():
        t, mem = res["time"], res.get("memory") or {}
        if isinstance(t, str):
            row = [name, t, "", "", ""]
        else:
            loss = res["loss"]
            row = [
                name,
                cell(t["fastlstm"]),
                cell(t.get("torch")),
                ratio(t.get("torch"), t["fastlstm"]),
                " / ".join(f"{loss[n]:.5f}" for n in loss),
            ]
        f, g = mem.get("fastlstm"), mem.get("torch")
        row += [
            f"{f['delta']:.1f}" if isinstance(f, dict) else str(f or mem.get("error", "—")),
            f"{g['delta']:.1f}" if isinstance(g, dict) else str(g or "—"),
            f"{f['delta'] / g['delta']:.2f}"
            if isinstance(f, dict) and isinstance(g, dict) and g["delta"] > 0
            else "—",
        ]
        tab.rows.append(row)
    for name in results:
        tab.notes.append(f"{name}: {DESCRIPTION[name]}")
    tab.notes.append(
        "torch side: the same model and initial weights (state_dict), F.cross_entropy, "
        "clip_grad_norm_, torch.optim.Adam; train_classify with pack_padded_sequence"
        "(enforce_sorted=False) and h_n; fastlstm side: its layers (Sequential for the "
        "classifier), fastlstm.losses, fastlstm.optim; 2 threads each unless --threads"
    )
    tab.notes.append(
        "first loss: both systems' loss on the first step from the same weights and batch "
        f"(must agree within rtol {LOSS_RTOL:g} or the row is not timed)"
    )
    tab.notes.append(
        "peak Δ: each system in a fresh interpreter, peak RSS (VmHWM, reset via "
        "/proc/self/clear_refs) over its first 3 steps (train_classify: 3 batches) minus "
        "the RSS just before them: gradients, optimizer state, activations and scratch, "
        "not the interpreter or imports"
    )
    return tab
