"""LSTMClassifier and LSTMRegressor: learning, scikit-learn's conventions
and checks, determinism and round trips."""

import io
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastlstm
from fastlstm import LSTMClassifier, LSTMRegressor

FAST = dict(hidden_size=12, epochs=15, batch_size=16, random_state=0)


def sign_task(n=300, T=6, F=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, F))
    return X, np.where(X.sum(axis=(1, 2)) > 0, "pos", "neg")


def test_classifier_learns_sign_of_sum():
    X, y = sign_task(n=700)
    clf = LSTMClassifier(hidden_size=16, epochs=20, random_state=0).fit(X[:500], y[:500])
    assert list(clf.classes_) == ["neg", "pos"] and clf.n_features_in_ == 2
    assert clf.score(X[500:], y[500:]) > 0.95
    proba = clf.predict_proba(X[500:])
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(1), 1)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(X[500:]))
    assert len(clf.history_["loss"]) == clf.n_iter_ == 20


def test_regressor_learns_adding_problem_from_ragged_lists():
    # the sum of the values whose marker is set; marker and value per step
    rng = np.random.default_rng(1)
    X, y = [], []
    for _ in range(500):
        T = int(rng.integers(4, 10))
        x = np.zeros((T, 2))
        x[:, 0] = rng.uniform(0, 1, T)
        x[rng.choice(T, 2, replace=False), 1] = 1
        X.append(x)
        y.append(x[x[:, 1] == 1, 0].sum())
    y = np.array(y)
    reg = LSTMRegressor(hidden_size=16, epochs=30, random_state=0).fit(X[:400], y[:400])
    mse = np.mean((reg.predict(X[400:]) - y[400:]) ** 2)
    baseline = np.var(y[400:])  # predicting the mean
    assert mse < 0.2 * baseline, (mse, baseline)
    assert reg.score(X[400:], y[400:]) > 0.8


def test_regressor_sequence_to_sequence():
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, (200, 7, 1))
    y = np.cumsum(X[:, :, 0], axis=1)  # (N, T): one value per step
    reg = LSTMRegressor(hidden_size=16, epochs=25, random_state=0).fit(X[:150], y[:150])
    assert reg.sequence_output_ and reg.predict(X[150:]).shape == (50, 7)
    assert reg.score(X[150:], y[150:]) > 0.8
    # (N, T, C) targets and ragged lists of per-step targets
    reg3 = LSTMRegressor(**FAST).fit(X, np.stack([y, -y], axis=2))
    assert reg3.predict(X[:3]).shape == (3, 7, 2)
    Xl = [X[i, : 3 + i % 4] for i in range(40)]
    yl = [y[i, : 3 + i % 4] for i in range(40)]
    regl = LSTMRegressor(**FAST).fit(Xl, yl)
    pred = regl.predict(Xl)
    assert pred.shape == (40, 6) and not pred[0, 3:].any()


def test_two_d_input_is_one_step_sequences_and_multi_output():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 4))
    Y = np.stack([X[:, 0] + X[:, 1], X[:, 2] - X[:, 3]], axis=1)
    reg = LSTMRegressor(**FAST).fit(X, Y)
    assert reg.n_features_in_ == 4 and not reg.sequence_output_
    assert reg.predict(X).shape == (120, 2)
    np.testing.assert_array_equal(reg.predict(X), reg.predict(X[:, None, :]))


def test_check_estimator():
    pytest.importorskip("sklearn")
    from sklearn.utils.estimator_checks import check_estimator

    for est in (LSTMClassifier(**FAST), LSTMRegressor(**FAST)):
        # the pandas and array-API checks skip themselves (with a warning)
        # when those are not installed; every other check runs and must pass
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = check_estimator(est, on_fail="raise")
        assert all(r["status"] in ("passed", "skipped") for r in results)


def test_pipeline_grid_search_and_cross_val_score():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = sign_task(n=120, T=1)
    X2 = X[:, 0, :]
    pipe = make_pipeline(StandardScaler(), LSTMClassifier(**FAST))
    scores = cross_val_score(pipe, X2, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    grid = GridSearchCV(
        LSTMClassifier(**FAST), {"hidden_size": [4, 8], "learning_rate": [0.01, 0.05]}, cv=2
    )
    grid.fit(X[:, :, :], y)
    assert set(grid.best_params_) == {"hidden_size", "learning_rate"}
    assert grid.best_estimator_.hidden_size in (4, 8)
    assert cross_val_score(LSTMRegressor(**FAST), X2, X2.sum(1), cv=2).shape == (2,)


def test_params_are_stored_unmodified():
    clf = LSTMClassifier(hidden_size=7, optimizer="sgd", clip_norm=1.5, random_state=3)
    params = clf.get_params()
    assert params["hidden_size"] == 7 and params["optimizer"] == "sgd"
    assert params["clip_norm"] == 1.5 and params["random_state"] == 3
    assert set(params) == {
        "hidden_size", "num_layers", "bidirectional", "dropout", "epochs", "batch_size",
        "learning_rate", "optimizer", "weight_decay", "clip_norm", "validation_fraction",
        "early_stopping", "patience", "random_state", "verbose",
    }  # fmt: skip
    assert clf.set_params(num_layers=2) is clf and clf.num_layers == 2
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(hidden=3)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(num_layers=2, dropout=0.2, bidirectional=True),
        dict(optimizer="sgd", clip_norm=1.0, early_stopping=True, validation_fraction=0.2),
        dict(optimizer="adamw", weight_decay=0.1),
    ],
)
def test_same_random_state_same_model(kwargs):
    X, y = sign_task(n=80)
    a = LSTMClassifier(**{**FAST, **kwargs}).fit(X, y)
    b = LSTMClassifier(**{**FAST, **kwargs}).fit(X, y)
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])
    c = LSTMClassifier(**{**FAST, **kwargs, "random_state": 1}).fit(X, y)
    assert not np.array_equal(c.model_.state_dict()["2.weight"], sa["2.weight"])


def test_early_stopping_and_partial_fit():
    X, y = sign_task(n=200)
    clf = LSTMClassifier(**{**FAST, "epochs": 200}, early_stopping=True, patience=2).fit(X, y)
    assert clf.n_iter_ < 200 and "val_loss" in clf.history_
    inc = LSTMClassifier(**FAST)
    for start in range(0, 200, 50):
        inc.partial_fit(X[start : start + 50], y[start : start + 50], classes=["neg", "pos"])
    assert inc.n_iter_ == 4 and list(inc.classes_) == ["neg", "pos"]
    with pytest.raises(ValueError, match="features"):
        inc.partial_fit(X[:, :, :1], y)


def test_fitted_estimators_round_trip(tmp_path):
    X, y = sign_task(n=80)
    clf = LSTMClassifier(**FAST).fit(X, y)
    reg = LSTMRegressor(**FAST).fit(X, X.sum(axis=(1, 2)))
    for est in (clf, reg):
        copy = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(copy.predict(X), est.predict(X))
        # the trained network alone, through fastlstm's own format
        buffer = io.BytesIO()
        fastlstm.save(buffer, est.model_)
        buffer.seek(0)
        net = fastlstm.load(buffer)
        np.testing.assert_array_equal(net.predict(X), est.model_.predict(X))
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(clf)).predict_proba(X), clf.predict_proba(X)
    )


def test_verbose_zero_is_silent(capsys):
    X, y = sign_task(n=40)
    LSTMClassifier(**FAST).fit(X, y).predict(X)
    assert capsys.readouterr() == ("", "")
    LSTMClassifier(**{**FAST, "epochs": 2}, verbose=2).fit(X, y)
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_not_fitted_and_bad_input():
    with pytest.raises(AttributeError, match="not fitted"):
        LSTMRegressor().predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMRegressor(hidden_size=0).fit(np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        LSTMRegressor().fit(np.full((4, 3), np.nan), np.zeros(4))


def test_works_without_scikit_learn(tmp_path):
    """The package imports and the estimators fit, predict, score and clone
    their parameters when sklearn cannot be imported."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["sklearn"] = None  # import sklearn -> ImportError
        import numpy as np
        import fastlstm
        X = np.random.default_rng(0).standard_normal((60, 4, 2))
        y = (X.sum(axis=(1, 2)) > 0).astype(int)
        clf = fastlstm.LSTMClassifier(hidden_size=8, epochs=10, random_state=0).fit(X, y)
        assert clf.score(X, y) > 0.7, clf.score(X, y)
        assert clf.get_params()["hidden_size"] == 8
        assert clf.set_params(epochs=3).epochs == 3
        assert "hidden_size=8" in repr(clf)
        reg = fastlstm.LSTMRegressor(hidden_size=8, epochs=10, random_state=0)
        print(reg.fit(X, X.sum(axis=(1, 2))).score(X, X.sum(axis=(1, 2))))
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert float(r.stdout) > 0.5
