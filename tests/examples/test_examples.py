"""The examples of fastlstm.examples, each in a short run: they must learn
(beat a context-free or naive baseline), report their numbers, and say
clearly what is missing when their data or an optional package is."""

import argparse
import subprocess
import sys

import numpy as np
import pytest

from fastlstm.examples import EXAMPLES, text, timeseries


def test_demo_lists_every_example():
    out = subprocess.run(
        [sys.executable, "-m", "fastlstm", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in EXAMPLES:
        assert name in out


# ---- text ----------------------------------------------------------------------
def test_text_corpus_is_deterministic_and_ascii():
    a, files_a = text.stdlib_text(30_000)
    b, files_b = text.stdlib_text(30_000)
    assert a == b and files_a == files_b
    assert len(a) == 30_000
    assert set(a) <= {chr(c) for c in range(32, 127)} | {"\n"}


def test_text_learns_below_unigram_entropy():
    lines = []
    result = text.run(
        kbytes=40, steps=80, hidden=64, batch=16, bptt=50, eval_every=80, out=lines.append
    )
    assert result["val_bits"] < result["unigram_bits"] - 0.3, result
    assert np.isfinite(result["val_bits"])
    assert result["sample"].startswith("def ") and len(result["sample"]) == 304
    assert any("bits/char" in line for line in lines)


def test_text_main_fast_writes_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "text.png"
    args = argparse.Namespace(fast=True, png=str(png), seed=0, kbytes=20, steps=60, hidden=64)
    assert text.main(args) == 0
    assert png.stat().st_size > 0
    assert "bits/char" in capsys.readouterr().out


# ---- time series ------------------------------------------------------------------
def test_timeseries_forecast_beats_the_baselines():
    pytest.importorskip("statsmodels", reason="the sunspots data ships with statsmodels")
    lines = []
    r = timeseries.run(epochs=25, out=lines.append)
    for name in ("lstm", "naive", "seasonal_naive"):
        assert np.isfinite(r[name]["mae"]) and np.isfinite(r[name]["rmse"])
    assert r["lstm"]["mae"] < min(r["naive"]["mae"], r["seasonal_naive"]["mae"]), r
    assert len(r["forecast"]) == 40 and any("MAE" in line for line in lines)


def test_timeseries_without_statsmodels_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "statsmodels", None)  # import fails
    args = argparse.Namespace(fast=True, png=None, seed=0, epochs=None, test_years=40)
    assert timeseries.main(args) == 2
    assert "pip install statsmodels" in capsys.readouterr().err

