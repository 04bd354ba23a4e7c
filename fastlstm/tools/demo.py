"""``python -m fastlstm demo``: train an LSTM on the adding problem.

The adding problem (Hochreiter & Schmidhuber, 1997; Le et al., 2015): each
step carries a value in [0, 1) and a marker; exactly two steps are marked,
one in each half of the sequence, and the target is the sum of the two
marked values.  Predicting the mean gives MSE = Var = 1/6 ~ 0.167; solving it
means remembering two values across tens of steps.  The demo trains
fastlstm.LSTM + a linear head on h_n with Adam, using only numpy and the
library's forward_train/backward, and exits non-zero if it did not learn.
"""

import time

import numpy as np

from ..layers.lstm import LSTM
from ..train.losses import mse_loss
from ..train.optim import Adam, clip_grad_value_


def adding_problem(rng, T, B, dtype=np.float32):
    """x (T, B, 2): [value, marker]; y (B,) the sum of the two marked values."""
    values = rng.random((T, B))
    marks = np.zeros((T, B))
    first = rng.integers(0, T // 2, size=B)
    second = rng.integers(T // 2, T, size=B)
    marks[first, np.arange(B)] = 1.0
    marks[second, np.arange(B)] = 1.0
    x = np.stack([values, marks], axis=-1).astype(dtype)
    y = (values * marks).sum(axis=0).astype(dtype)
    return x, y


def train(T=50, hidden=32, batch=64, steps=1000, seed=0, log_every=100, out=print):
    """Train on the adding problem; returns (test MSE, baseline MSE, seconds)."""
    rng = np.random.default_rng(seed)
    lstm = LSTM(2, hidden, seed=seed)
    w = (rng.standard_normal((hidden,)) / np.sqrt(hidden)).astype(np.float32)
    b = np.zeros(1, np.float32)
    dw, db = np.zeros_like(w), np.zeros_like(b)
    head = [(w, dw), (b, db)]  # the linear head: (parameter, gradient) pairs
    opt = Adam([lstm, *head], lr=1e-2)
    x_test, y_test = adding_problem(np.random.default_rng(seed + 1), T, 1000)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = adding_problem(rng, T, batch)
        out_seq, (h_n, c_n), backward = lstm.forward_train(x)
        pred = h_n[0] @ w + b[0]
        loss, d_pred = mse_loss(pred, y)
        opt.zero_grad()
        dw[...] = h_n[0].T @ d_pred
        db[...] = d_pred.sum()
        dh_n = (d_pred[:, None] * w[None, :])[None].astype(np.float32)
        backward(np.zeros_like(out_seq), (dh_n, None))
        clip_grad_value_([lstm, *head], 1.0)  # keeps early training stable
        opt.step()
        if log_every and step % log_every == 0:
            out(f"step {step:5d}  train MSE {loss:.5f}")
    seconds = time.perf_counter() - t0
    _, (h_n, _) = lstm(x_test)
    test_mse = float(np.mean((h_n[0] @ w + b[0] - y_test) ** 2))
    baseline = float(np.mean((y_test - y_test.mean()) ** 2))
    return test_mse, baseline, seconds


def main(args=None):
    T = getattr(args, "length", 50)
    steps = getattr(args, "steps", 1000)
    print(f"fastlstm demo: adding problem, T={T}, LSTM(2, 32) + linear head, Adam")
    mse, base, sec = train(T=T, steps=steps)
    print(
        f"test MSE {mse:.5f}  (predicting the mean: {base:.5f});  "
        f"{steps} training steps in {sec:.1f} s"
    )
    solved = mse < 0.1 * base
    print("solved" if solved else "NOT solved: test MSE is not below 10% of the baseline")
    return 0 if solved else 1
