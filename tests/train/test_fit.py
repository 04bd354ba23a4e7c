"""Sequential.compile / fit / evaluate / predict and the callbacks: a task
that must be learnt, the same steps as torch from the same weights, the
callbacks' effects, variable-length input and round trips."""

import io
import pickle
import sys

import numpy as np
import pytest

import fastlstm
from fastlstm.callbacks import Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint


def sign_task(n=400, T=8, F=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, F)).astype(np.float32)
    return X, (X.sum(axis=(1, 2)) > 0).astype(np.int64)


def classifier(F=3, H=16, dtype=np.float32, batch_first=False):
    return fastlstm.Sequential(
        fastlstm.LSTM(F, H, batch_first=batch_first, dtype=dtype, seed=0),
        fastlstm.LastStep(batch_first=batch_first),
        fastlstm.Linear(H, 2, dtype=dtype, seed=1),
    )


def test_learns_sign_of_sum():
    X, y = sign_task(n=800, T=6)
    model = classifier()
    model.compile("cross_entropy", "adam", metrics=["accuracy"], lr=1e-2)
    history = model.fit(X[:600], y[:600], epochs=15, batch_size=32, seed=0, verbose=0)
    assert len(history["loss"]) == 15 and history["loss"][-1] < history["loss"][0]
    logs = model.evaluate(X[600:], y[600:])
    assert logs["accuracy"] > 0.95, logs
    pred = model.predict(X[600:])
    assert pred.shape == (200, 2)
    assert np.mean(pred.argmax(1) == y[600:]) == pytest.approx(logs["accuracy"])


def test_learns_per_step_regression_from_ragged_lists():
    # running sum of the first feature: per-step targets, variable lengths
    rng = np.random.default_rng(1)
    X = [rng.uniform(-1, 1, (rng.integers(3, 10), 2)) for _ in range(300)]
    y = [np.cumsum(x[:, 0])[:, None] * 0.5 for x in X]
    model = fastlstm.Sequential(
        fastlstm.LSTM(2, 16, batch_first=True, dtype=np.float64, seed=0),
        fastlstm.Linear(16, 1, dtype=np.float64, seed=1),
    )
    model.compile("mse", "adam", metrics=["mae"], lr=1e-2)
    baseline = np.mean(np.concatenate(y) ** 2)  # predicting 0
    model.fit(X[:250], y[:250], epochs=15, batch_size=25, seed=0, verbose=0)
    logs = model.evaluate(X[250:], y[250:])
    assert logs["loss"] < 0.1 * baseline, (logs, baseline)
    pred = model.predict(X[250:])
    assert pred.shape == (50, max(len(x) for x in X[250:]), 1)
    # each sequence alone gives the same steps; the padding holds zeros
    for i in (0, 7):
        alone = model.predict(X[250 + i][None])[0]
        n = len(X[250 + i])
        np.testing.assert_allclose(pred[i, :n], alone, rtol=1e-12, atol=1e-12)
        assert not pred[i, n:].any()


def test_ragged_list_equals_padded_array_with_lengths():
    rng = np.random.default_rng(2)
    X = [rng.standard_normal((n, 3)).astype(np.float32) for n in (4, 2, 6, 3)]
    y = np.array([0, 1, 1, 0])
    padded = np.full((4, 6, 3), 7.0, np.float32)  # padding never read
    for i, x in enumerate(X):
        padded[i, : len(x)] = x
    lengths = np.array([len(x) for x in X])
    a, b = classifier(), classifier()
    for m in (a, b):
        m.compile("cross_entropy", "sgd", lr=0.1)
    ha = a.fit(X, y, epochs=3, batch_size=2, seed=3, verbose=0)
    hb = b.fit(padded, y, lengths=lengths, epochs=3, batch_size=2, seed=3, verbose=0)
    assert ha["loss"] == hb["loss"]
    np.testing.assert_array_equal(a.predict(X), b.predict(padded, lengths=lengths))


def test_embedding_first_model_takes_token_lists():
    rng = np.random.default_rng(3)
    X = [rng.integers(1, 10, rng.integers(2, 7)) for _ in range(60)]
    y = np.array([int((x > 5).sum() > len(x) / 2) for x in X])
    model = fastlstm.Sequential(
        fastlstm.Embedding(10, 4, padding_idx=0, seed=0),
        fastlstm.LSTM(4, 8, seed=1),
        fastlstm.MeanPool(),
        fastlstm.Linear(8, 1, seed=2),
    )
    model.compile("bce", "adam", metrics=["accuracy"], lr=1e-2)
    h = model.fit(X, y, epochs=5, batch_size=16, seed=0, verbose=0)
    assert h["loss"][-1] < h["loss"][0]
    assert model.predict(X).shape == (60, 1)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_fit_steps_match_torch(torch, opt, batch_first):
    """Same initial weights, same batches (no shuffle): fit's epoch losses
    and final weights are torch's to float64 rounding."""
    X, y = sign_task(n=12, T=5, F=3, seed=4)
    X = X.astype(np.float64)
    model = classifier(F=3, H=4, dtype=np.float64, batch_first=batch_first)
    init = model.state_dict()
    model.compile("cross_entropy", opt, lr=0.05)
    history = model.fit(X, y, epochs=4, batch_size=5, shuffle=False, verbose=0)

    tm = torch.nn.ModuleList(
        [
            torch.nn.LSTM(3, 4, batch_first=True).double(),
            torch.nn.Identity(),
            torch.nn.Linear(4, 2).double(),
        ]
    )
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
    topt = (torch.optim.SGD if opt == "sgd" else torch.optim.Adam)(tm.parameters(), lr=0.05)
    losses = []
    for _ in range(4):
        total = 0.0
        for start in range(0, 12, 5):
            xb = torch.from_numpy(X[start : start + 5])
            yb = torch.from_numpy(y[start : start + 5])
            topt.zero_grad()
            out = tm[2](tm[0](xb)[0][:, -1])
            loss = torch.nn.functional.cross_entropy(out, yb)
            loss.backward()
            topt.step()
            total += loss.item() * len(xb)
        losses.append(total / 12)
    np.testing.assert_allclose(history["loss"], losses, rtol=1e-12)
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k], v.numpy(), rtol=1e-10, atol=1e-13)


class Recorder(Callback):
    def on_train_begin(self):
        self.weights = []

    def on_epoch_end(self, epoch, logs):
        self.weights.append(self.model.state_dict())


def test_early_stopping_restores_the_best_epochs_weights():
    X, y = sign_task(n=120, seed=5)
    model = classifier()
    model.compile("cross_entropy", "sgd", lr=2.0)  # too large: val_loss wanders
    rec = Recorder()
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    h = model.fit(
        X[:80],
        y[:80],
        epochs=30,
        validation_data=(X[80:], y[80:]),
        callbacks=[rec, stop],
        verbose=0,
        seed=0,
    )
    best = int(np.argmin(h["val_loss"]))
    assert stop.best_epoch == best
    assert len(h["loss"]) < 30 and len(h["loss"]) == best + 3  # patience epochs after the best
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, rec.weights[best][k])
    assert model.evaluate(X[80:], y[80:])["loss"] == pytest.approx(h["val_loss"][best])


def test_early_stopping_stops_after_patience():
    X, y = sign_task(n=40)
    model = classifier()
    model.compile("cross_entropy", "adam")
    stop = EarlyStopping(monitor="loss", patience=1, min_delta=1e9)
    h = model.fit(X, y, epochs=10, callbacks=[stop], verbose=0)
    assert len(h["loss"]) == 2 and stop.stopped_epoch == 1
    with pytest.raises(KeyError, match="val_loss"):
        model.fit(X, y, epochs=1, callbacks=[EarlyStopping()], verbose=0)


def test_model_checkpoint_files_load(tmp_path):
    X, y = sign_task(n=60)
    model = classifier()
    model.compile("cross_entropy", "adam", lr=1e-2)
    every = ModelCheckpoint(tmp_path / "m-{epoch}.npz", monitor="loss")
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    rec = Recorder()
    h = model.fit(
        X, y, epochs=4, validation_split=0.25, callbacks=[every, best, rec], verbose=0, seed=1
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.npz",
        "m-1.npz",
        "m-2.npz",
        "m-3.npz",
        "m-4.npz",
    ]
    last = fastlstm.load(tmp_path / "m-4.npz")
    np.testing.assert_array_equal(last(X.transpose(1, 0, 2)), model.predict(X))
    saved = fastlstm.load(tmp_path / "best.npz").state_dict()
    want = rec.weights[int(np.argmin(h["val_loss"]))]
    for k in want:
        np.testing.assert_array_equal(saved[k], want[k])


def test_learning_rate_schedules():
    X, y = sign_task(n=40)
    model = classifier()
    model.compile("cross_entropy", "sgd", lr=1.0)
    h = model.fit(
        X, y, epochs=4, callbacks=[LearningRateScheduler(lambda e, lr: 0.1 * 0.5**e)], verbose=0
    )
    assert h["lr"] == [0.1, 0.05, 0.025, 0.0125]
    assert model.optimizer.lr == 0.0125

    model.compile("cross_entropy", "sgd", lr=0.1)
    sched = fastlstm.optim.lr_scheduler.StepLR(model.optimizer, step_size=2, gamma=0.1)
    h = model.fit(X, y, epochs=5, callbacks=[LearningRateScheduler(sched)], verbose=0)
    np.testing.assert_allclose(h["lr"], [0.1, 0.1, 0.01, 0.01, 0.001])

    other = fastlstm.optim.SGD([classifier()], lr=0.1)
    foreign = fastlstm.optim.lr_scheduler.StepLR(other, step_size=1)
    with pytest.raises(ValueError, match="another optimizer"):
        model.fit(X, y, epochs=1, callbacks=[LearningRateScheduler(foreign)], verbose=0)


def test_verbose_output(capsys):
    X, y = sign_task(n=40)
    model = classifier()
    model.compile("cross_entropy", "adam", metrics=["accuracy"])
    model.fit(X, y, epochs=2, validation_split=0.25, verbose=0)
    model.evaluate(X, y)
    model.predict(X)
    assert capsys.readouterr() == ("", "")
    model.fit(X, y, epochs=3, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("Epoch 1/3 - loss: ")
    assert "accuracy" in lines[0]


def test_fit_is_deterministic_given_seed():
    X, y = sign_task(n=64)
    runs = []
    for _ in range(2):
        model = classifier()
        model.compile("cross_entropy", "adam", lr=1e-2)
        h = model.fit(X, y, epochs=2, batch_size=8, seed=7, verbose=0)
        runs.append((h["loss"], model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][k], runs[1][1][k])


def test_fitted_model_round_trips():
    X, y = sign_task(n=40)
    model = classifier()
    model.compile("cross_entropy", "adam", lr=1e-2)
    model.fit(X, y, epochs=2, verbose=0)
    buffer = io.BytesIO()
    fastlstm.save(buffer, model)
    buffer.seek(0)
    loaded = fastlstm.load(buffer)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(copy.predict(X), model.predict(X))
    # the pickled copy keeps its compiled optimizer and trains on
    copy.fit(X, y, epochs=1, verbose=0)


def test_errors():
    X, y = sign_task(n=10)
    model = classifier()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(X, y)
    with pytest.raises(ValueError, match="loss"):
        model.compile("hinge")
    with pytest.raises(ValueError, match="optimizer"):
        model.compile("mse", "lbfgs")
    with pytest.raises(ValueError, match="metrics"):
        model.compile("mse", metrics=["f1"])
    model.compile("cross_entropy")
    with pytest.raises(ValueError, match="targets"):
        model.fit(X, y[:5])
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(X, y, validation_split=1.5)


def test_custom_loss_callable():
    X, y = sign_task(n=40)
    calls = []

    def loss(pred, target, lengths):
        calls.append(pred.shape)
        return fastlstm.losses.cross_entropy(pred, target)

    model = classifier()
    model.compile(loss, "adam")
    model.fit(X, y, epochs=1, batch_size=40, verbose=0)
    assert calls == [(40, 2)]


def test_verbose_one_uses_tqdm_when_installed(monkeypatch, capsys):
    import types

    bars = []

    class FakeBar:
        def __init__(self, total, desc, **kwargs):
            self.total, self.desc, self.updates, self.post = total, desc, 0, ""
            bars.append(self)

        def update(self, n):
            self.updates += n

        def set_postfix(self, **kwargs):
            pass

        def set_postfix_str(self, s):
            self.post = s

        def close(self):
            pass

    X, y = sign_task(n=40)
    model = classifier()
    model.compile("cross_entropy", "adam")
    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeBar))
    model.fit(X, y, epochs=2, batch_size=16, verbose=1)
    assert [(b.desc, b.total, b.updates) for b in bars] == [
        ("Epoch 1/2", 3, 3),
        ("Epoch 2/2", 3, 3),
    ]
    assert bars[0].post.startswith("loss: ") and capsys.readouterr().out == ""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # not installed: a line per epoch
    model.fit(X, y, epochs=2, verbose=1)
    assert len(capsys.readouterr().out.splitlines()) == 2
