"""The examples of fastlstm.examples, each in a short run: they must learn
(beat a context-free or naive baseline), report their numbers, and say
clearly what is missing when their data or an optional package is."""

import argparse
import subprocess
import sys

import numpy as np
import pytest

from fastlstm.examples import EXAMPLES, speech, text, timeseries


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


# ---- speech ---------------------------------------------------------------------------
TS = """# a comment
@problemName Tiny
@dimensions 2
@equalLength false
@classLabel true a b
@data
1,2,3:4,5,6:a
0.5,?:1e-3,-2:b
"""


def test_ts_parser_reads_variable_length_cases():
    cases, labels = speech.parse_ts(TS)
    assert [c.shape for c in cases] == [(3, 2), (2, 2)]
    np.testing.assert_array_equal(cases[0], [[1, 4], [2, 5], [3, 6]])
    assert np.isnan(cases[1][1, 0]) and cases[1][0, 1] == 1e-3
    assert list(labels) == ["a", "b"]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("@data\n1,2:3\n", "different lengths"),
        ("1,2\n", "header"),
        ("@classLabel false\n", "@data"),
        ("@dimensions 3\n@classLabel true a\n@data\n1:2:a\n", "header says 3"),
    ],
)
def test_ts_parser_rejects_what_it_cannot_read(bad, message):
    with pytest.raises(speech.TsFormatError, match=message):
        speech.parse_ts(bad)


def test_speech_reads_a_directory_and_a_wheel(tmp_path):
    data = tmp_path / "JapaneseVowels"
    data.mkdir()
    for split in ("TRAIN", "TEST"):
        (data / f"JapaneseVowels_{split}.ts").write_text(TS)
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    import zipfile

    with zipfile.ZipFile(wheel, "w") as z:
        for split in ("TRAIN", "TEST"):
            z.writestr(f"pkg/datasets/data/JapaneseVowels/JapaneseVowels_{split}.ts", TS)
    for source in (data, wheel):
        X_train, y_train, X_test, y_test = speech.load(source)
        assert len(X_train) == len(X_test) == 2 and list(y_test) == ["a", "b"]


def test_speech_without_the_data_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setattr(speech, "_package_dir", lambda name: None)
    args = argparse.Namespace(fast=True, png=None, seed=0, epochs=None, data=None)
    assert speech.main(args) == 2
    err = capsys.readouterr().err
    assert "Japanese Vowels data was not found" in err
    assert "pip install aeon" in err and "--data" in err
