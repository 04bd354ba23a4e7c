"""A small forward / backward / stream / cell / save-load workload for
valgrind memcheck (.ci/memcheck runs it): every kernel path once, float32
and float64, one and two threads, ragged and full batches, projections."""

import os
import tempfile

import numpy as np

import fastlstm

rng = np.random.default_rng(0)
for threads in (1, 2):
    fastlstm.set_num_threads(threads)
    for dtype in (np.float32, np.float64):
        for kw in (
            dict(),
            dict(num_layers=2, bidirectional=True),
            dict(proj_size=5),
            dict(batch_first=True, bias=False),
        ):
            lstm = fastlstm.LSTM(7, 17, dtype=dtype, seed=1, **kw)
            x = rng.standard_normal((9, 6, 7)).astype(dtype)
            if lstm.batch_first:
                x = np.ascontiguousarray(x.transpose(1, 0, 2))
            lengths = None if lstm.batch_first else np.array([9, 3, 5, 1, 9, 2])
            for lens in (None, lengths):
                out, (h, c) = lstm(x, lengths=lens)
                out, (h, c), backward = lstm.forward_train(x, lengths=lens)
                dx, (dh0, dc0) = backward(np.ones_like(out), (np.ones_like(h), None))
                assert np.isfinite(dx).all() and np.isfinite(dh0).all()
            if not lstm.bidirectional and not lstm.batch_first:
                s = lstm.stream(6)
                for t in range(9):
                    s.step(x[t])
        cell = fastlstm.LSTMCell(7, 17, dtype=dtype, seed=2)
        h, c, backward = cell.forward_train(rng.standard_normal((4, 7)).astype(dtype))
        backward(np.ones_like(h), np.ones_like(c))
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "m.bin")
            fastlstm.save(p, lstm)
            fastlstm.load(p)
print("workload done")
