"""``python -m fastlstm demo text``: a character-level language model.

The text is Python's own standard library: the top-level ``.py`` files of
the running interpreter's ``lib/pythonX.Y`` (sorted by name, private ones
left out, the first 20 KB of each) concatenated up to a byte budget, so every machine with the same
Python trains on the same text and nothing is downloaded.  The last tenth
is held out for validation.

The model is Embedding -> LSTM -> Linear over characters, trained with
truncated backpropagation through time: the training text is cut into
``batch`` parallel streams, read ``bptt`` characters at a time, and the
LSTM's final (h, c) of one chunk is the initial state of the next (the
gradient stops at the chunk's border).  Adam, with the gradients' global
norm clipped.  It reports validation bits per character, next to the
unigram entropy (what a model that ignores context would get), and samples
new text one character at a time through ``lstm.stream(1).step``.
"""

import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

from ..layers.basic import Embedding, Linear
from ..layers.lstm import LSTM
from ..train.losses import cross_entropy
from ..train.optim import Adam, clip_grad_norm_
from .common import add_common_arguments, pyplot, save_figure

LN2 = float(np.log(2.0))


def add_arguments(p):
    add_common_arguments(p)
    p.add_argument("--kbytes", type=int, help="size of the text in KB (default 400; --fast 80)")
    p.add_argument("--steps", type=int, help="training steps (default 700; --fast 150)")
    p.add_argument("--hidden", type=int, help="LSTM hidden size (default 128)")


# ---- the data --------------------------------------------------------------
def stdlib_text(max_bytes, lib_dir=None, per_file=20_000):
    """-> (text, list of file names): the standard library's top-level
    sources, in name order, at most ``per_file`` characters of each (so the
    text spans many modules), until ``max_bytes`` characters."""
    lib = Path(lib_dir or sysconfig.get_paths()["stdlib"])
    parts, names, size = [], [], 0
    for path in sorted(lib.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            src = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        # printable ASCII and newlines only: a small, fixed alphabet
        src = "".join(ch if (" " <= ch <= "~" or ch == "\n") else "?" for ch in src)
        src = src.replace("\t", "    ")
        take = src[: min(per_file, max_bytes - size)]
        parts.append(take)
        names.append(path.name)
        size += len(take)
        if size >= max_bytes:
            break
    if not parts:
        raise RuntimeError(f"no readable .py sources in {lib}")
    return "".join(parts), names


class Vocabulary:
    """Characters <-> integer ids."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        return np.array([self.index[ch] for ch in text], np.int64)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


def unigram_bits(train_ids, val_ids, size):
    """Bits per character of the best context-free model (train's character
    frequencies, add-one smoothed) on the validation text."""
    counts = np.bincount(train_ids, minlength=size) + 1.0
    p = counts / counts.sum()
    return float(-np.mean(np.log2(p[val_ids])))


def streams(ids, batch):
    """(L, batch): the text cut into ``batch`` contiguous streams, column b
    continuing where column b left off in the previous chunk."""
    L = len(ids) // batch
    return np.ascontiguousarray(ids[: L * batch].reshape(batch, L).T)


# ---- the model -----------------------------------------------------------------
class CharModel:
    """Embedding -> LSTM -> Linear; (T, B) ids -> (T, B, V) logits."""

    def __init__(self, vocab, embed=32, hidden=128, seed=0):
        self.embed = Embedding(vocab, embed, seed=seed)
        self.lstm = LSTM(embed, hidden, seed=seed + 1)
        self.head = Linear(hidden, vocab, seed=seed + 2)
        self.layers = [self.embed, self.lstm, self.head]

    def forward_train(self, x, state):
        e, back_embed = self.embed.forward_train(x)
        h, new_state, back_lstm = self.lstm.forward_train(e, state)
        logits, back_head = self.head.forward_train(h)

        def backward(d_logits):
            dh = back_head(d_logits)
            de, _ = back_lstm(dh)
            back_embed(de)

        return logits, new_state, backward

    def __call__(self, x, state):
        out, state = self.lstm(self.embed(x), state)
        return self.head(out), state


def evaluate_bits(model, ids, batch, bptt):
    """Bits per character of ``model`` on ``ids``, state carried through."""
    data = streams(ids, batch)
    state, total, count = None, 0.0, 0
    for start in range(0, len(data) - 1, bptt):
        x = data[start : start + bptt]
        y = data[start + 1 : start + 1 + bptt]
        x = x[: len(y)]
        logits, state = model(x, state)
        loss, _ = cross_entropy(logits, y, reduction="sum")
        total += float(loss)
        count += y.size
    return total / count / LN2


def sample(model, vocab, prime, length, rng, temperature=0.8):
    """Text generated one character at a time through ``lstm.stream(1)``."""
    stream = model.lstm.stream(1)
    emb = model.embed.weight
    out = list(prime)
    h = None
    for ch in prime:
        h = stream.step(emb[vocab.index[ch]][None])
    for _ in range(length):
        logits = model.head(h)[0].astype(np.float64) / temperature
        p = np.exp(logits - logits.max())
        p /= p.sum()
        i = int(rng.choice(len(p), p=p))
        out.append(vocab.chars[i])
        h = stream.step(emb[i][None])
    return "".join(out)


# ---- training ---------------------------------------------------------------------
def run(
    kbytes=400,
    steps=700,
    hidden=128,
    batch=32,
    bptt=100,
    lr=3e-3,
    clip=1.0,
    eval_every=150,
    seed=0,
    out=print,
):
    """Train and evaluate; returns a dict of the measured numbers and curves."""
    text, files = stdlib_text(kbytes * 1000)
    vocab = Vocabulary(text)
    ids = vocab.encode(text)
    n_val = len(ids) // 10
    train_ids, val_ids = ids[:-n_val], ids[-n_val:]
    unigram = unigram_bits(train_ids, val_ids, len(vocab))
    out(
        f"text: {len(text) / 1000:.0f} KB of Python {sys.version_info[0]}.{sys.version_info[1]}'s"
        f" standard library ({len(files)} files, {files[0]} .. {files[-1]}), "
        f"{len(vocab)} distinct characters; validation: the last {n_val} characters"
    )
    out(f"unigram entropy (no context): {unigram:.3f} bits/char")

    model = CharModel(len(vocab), hidden=hidden, seed=seed)
    opt = Adam(model.layers, lr=lr)
    data = streams(train_ids, batch)
    chunks = list(range(0, len(data) - 1, bptt))
    curve = {"step": [], "train_bits": [], "val_step": [], "val_bits": []}
    state, pos, running = None, 0, []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        if pos == len(chunks):  # a new pass over the text starts from zero state
            pos, state = 0, None
        start = chunks[pos]
        pos += 1
        y = data[start + 1 : start + 1 + bptt]
        x = data[start : start + len(y)]
        logits, state, backward = model.forward_train(x, state)
        loss, d_logits = cross_entropy(logits, y)
        opt.zero_grad()
        backward(d_logits)
        clip_grad_norm_(model.layers, clip)
        opt.step()
        running.append(float(loss) / LN2)
        if step % 25 == 0 or step == steps:
            curve["step"].append(step)
            curve["train_bits"].append(float(np.mean(running)))
            running = []
        if step % eval_every == 0 or step == steps:
            bits = evaluate_bits(model, val_ids, batch, bptt)
            curve["val_step"].append(step)
            curve["val_bits"].append(bits)
            out(
                f"step {step:5d}  train {curve['train_bits'][-1]:.3f}  "
                f"validation {bits:.3f} bits/char  ({time.perf_counter() - t0:.0f} s)"
            )
    seconds = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    generated = sample(model, vocab, "def ", 300, rng)
    return {
        "val_bits": curve["val_bits"][-1],
        "unigram_bits": unigram,
        "seconds": seconds,
        "sample": generated,
        "curve": curve,
        "chars": len(text),
        "tokens_seen": steps * batch * bptt,
    }


def plot(result, path):
    plt = pyplot()
    if plt is None:
        return
    c = result["curve"]
    fig, (ax, tx) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax.plot(c["step"], c["train_bits"], label="training")
    ax.plot(c["val_step"], c["val_bits"], "o-", label="validation")
    ax.axhline(result["unigram_bits"], color="gray", ls="--", label="unigram entropy")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.set_title("character-level LSTM on Python's standard library")
    ax.legend()
    tx.axis("off")
    tx.set_title("sampled through lstm.stream(1).step")
    tx.text(0, 1, result["sample"][:600], family="monospace", fontsize=7, va="top", wrap=True)
    save_figure(fig, path)


def main(args=None):
    fast = getattr(args, "fast", False)

    def opt(name, full, quick):
        v = getattr(args, name, None)
        return v if v is not None else (quick if fast else full)

    result = run(
        kbytes=opt("kbytes", 400, 80),
        steps=opt("steps", 700, 150),
        hidden=opt("hidden", 128, 128),
        eval_every=50 if fast else 150,
        seed=getattr(args, "seed", 0),
    )
    print("--- sample (temperature 0.8) ---")
    print(result["sample"])
    print("---")
    print(
        f"validation {result['val_bits']:.3f} bits/char (unigram entropy "
        f"{result['unigram_bits']:.3f}); {result['tokens_seen']} characters trained on "
        f"in {result['seconds']:.1f} s"
    )
    if getattr(args, "png", None):
        plot(result, args.png)
    learned = result["val_bits"] < result["unigram_bits"]
    if not learned:
        print("NOT learned: validation bits/char is not below the unigram entropy")
    return 0 if learned else 1
