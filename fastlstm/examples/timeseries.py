"""``python -m fastlstm demo timeseries``: forecasting the sunspot numbers.

The series is the yearly mean sunspot number, 1700-2008, as shipped in
statsmodels (``statsmodels.datasets.sunspots``; ``pip install statsmodels``).
It cycles with a period of about 11 years whose length and height vary.

The last ``--test-years`` years are held out.  For each held-out year the
model sees the ``window`` years before it (observed values, as every
forecaster here) and predicts that year: a one-step-ahead forecast.  The
model is LSTM -> LastStep -> Linear trained with Sequential.fit on the
windows that end before the held-out tail, on a standardized series.  Two
baselines forecast the same years: naive (next year = this year) and
seasonal naive with the ~11-year period (next year = the year 11 years
before it).  MAE and RMSE of all three are reported, in sunspot numbers.
"""

import time

import numpy as np

from ..layers.basic import Linear
from ..layers.lstm import LSTM
from ..layers.reducers import LastStep
from ..layers.sequential import Sequential
from .common import add_common_arguments, fail, pyplot, save_figure

PERIOD = 11  # years, the solar cycle
MISSING = (
    "timeseries: this example needs statsmodels, whose datasets hold the sunspot "
    "series: pip install statsmodels"
)


def add_arguments(p):
    add_common_arguments(p)
    p.add_argument("--epochs", type=int, help="training epochs (default 200; --fast 40)")
    p.add_argument("--test-years", type=int, default=40, help="held-out tail (default 40)")


def load_sunspots():
    """-> (years, values) float64 arrays; ImportError without statsmodels."""
    from statsmodels.datasets import sunspots

    data = sunspots.load_pandas().data
    return data["YEAR"].to_numpy(np.float64), data["SUNACTIVITY"].to_numpy(np.float64)


def windows(z, ends, window):
    """(len(ends), window, 1) inputs z[e-window:e] and targets z[e]."""
    X = np.stack([z[e - window : e] for e in ends])[:, :, None]
    return X.astype(np.float32), z[ends].astype(np.float32)


def errors(pred, truth):
    d = np.asarray(pred, np.float64) - truth
    return {"mae": float(np.mean(np.abs(d))), "rmse": float(np.sqrt(np.mean(d * d)))}


def run(
    series=None,
    test_years=40,
    window=2 * PERIOD,
    hidden=32,
    epochs=200,
    batch=32,
    lr=5e-3,
    seed=0,
    out=print,
):
    """Train and forecast; returns a dict of the measured numbers and curves.
    ``series``: (years, values), the sunspots when None."""
    years, y = load_sunspots() if series is None else series
    n = len(y)
    split = n - test_years  # first held-out index
    if split <= window + 1:
        raise ValueError(f"the series ({n} values) is too short for window {window}")
    mean, std = y[:split].mean(), y[:split].std()
    z = (y - mean) / std
    X_train, y_train = windows(z, np.arange(window, split), window)
    X_test, _ = windows(z, np.arange(split, n), window)
    truth = y[split:]
    out(
        f"timeseries: {n} yearly sunspot numbers {years[0]:.0f}-{years[-1]:.0f}; training on "
        f"{len(X_train)} windows of {window} years before {years[split]:.0f}, "
        f"forecasting {years[split]:.0f}-{years[-1]:.0f} one year ahead"
    )

    model = Sequential(
        LSTM(1, hidden, batch_first=True, seed=seed),
        LastStep(batch_first=True),
        Linear(hidden, 1, seed=seed + 1),
    )
    model.compile("mse", "adam", lr=lr, clip_norm=1.0)
    t0 = time.perf_counter()
    history = model.fit(
        X_train,
        y_train,
        epochs=epochs,
        batch_size=batch,
        validation_split=0.15,
        verbose=0,
        seed=seed,
    )
    seconds = time.perf_counter() - t0
    forecast = model.predict(X_test)[:, 0].astype(np.float64) * std + mean
    naive = y[split - 1 : n - 1]
    seasonal = y[split - PERIOD : n - PERIOD]
    result = {
        "lstm": errors(forecast, truth),
        "naive": errors(naive, truth),
        "seasonal_naive": errors(seasonal, truth),
        "seconds": seconds,
        "epochs": epochs,
        "history": {k: list(v) for k, v in history.items()},
        "years": years[split:],
        "truth": truth,
        "forecast": forecast,
        "naive_forecast": naive,
        "seasonal_forecast": seasonal,
        "past_years": years[:split],
        "past": y[:split],
    }
    for name, label in (("lstm", "LSTM"), ("naive", "naive"), ("seasonal_naive", "seasonal")):
        e = result[name]
        out(f"  {label:9s} MAE {e['mae']:6.2f}   RMSE {e['rmse']:6.2f}")
    return result


def plot(result, path):
    plt = pyplot()
    if plt is None:
        return
    fig, (ax, fx) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    h = result["history"]
    ax.plot(h["loss"], label="training")
    if "val_loss" in h:
        ax.plot(h["val_loss"], label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (standardized)")
    ax.set_title("learning curve")
    ax.legend()
    fx.plot(result["past_years"][-60:], result["past"][-60:], color="gray", label="observed")
    fx.plot(result["years"], result["truth"], "k-", label="held out")
    lstm, naive = result["lstm"], result["naive"]
    fx.plot(result["years"], result["forecast"], "o-", ms=3, label=f"LSTM (MAE {lstm['mae']:.1f})")
    fx.plot(
        result["years"],
        result["naive_forecast"],
        "--",
        label=f"naive (MAE {naive['mae']:.1f})",
    )
    fx.plot(
        result["years"],
        result["seasonal_forecast"],
        ":",
        label=f"seasonal naive, {PERIOD} y (MAE {result['seasonal_naive']['mae']:.1f})",
    )
    fx.set_xlabel("year")
    fx.set_ylabel("sunspot number")
    fx.set_title("one-year-ahead forecasts of the held-out years")
    fx.legend(fontsize=8)
    save_figure(fig, path)


def main(args=None):
    fast = getattr(args, "fast", False)
    epochs = getattr(args, "epochs", None) or (40 if fast else 200)
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        return fail(MISSING)
    result = run(
        test_years=getattr(args, "test_years", 40),
        epochs=epochs,
        seed=getattr(args, "seed", 0),
    )
    lstm, naive, seasonal = result["lstm"], result["naive"], result["seasonal_naive"]
    print(
        f"held-out MAE: LSTM {lstm['mae']:.2f}, naive {naive['mae']:.2f}, seasonal naive "
        f"{seasonal['mae']:.2f}; {epochs} epochs in {result['seconds']:.1f} s"
    )
    if getattr(args, "png", None):
        plot(result, args.png)
    best = min(naive["mae"], seasonal["mae"])
    if not np.isfinite(lstm["mae"]):
        print("NOT learned: the forecast is not finite")
        return 1
    print(
        "the LSTM beats both baselines"
        if lstm["mae"] < best
        else "the LSTM does not beat the better baseline on this run"
    )
    return 0
