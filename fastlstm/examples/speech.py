"""``python -m fastlstm demo speech``: who is speaking? (Japanese Vowels)

Nine male speakers each said the Japanese vowels /ae/; every utterance is a
sequence of 7 to 29 frames of 12 LPC cepstrum coefficients (Kudo, Toyama
and Shimbo, 1999; UCI).  The task is to name the speaker: 270 training
and 370 test utterances, of different lengths, fed to LSTMClassifier as a
list of (T_i, 12) arrays (no padding by the user; the LSTM stops at each
sequence's own end).  It reports the test accuracy.

The data ships inside the wheels of ``aeon`` and ``sktime`` as ``.ts``
files (JapaneseVowels_TRAIN.ts / _TEST.ts).  This example finds them in an
installed aeon or sktime (without importing it), or in ``--data PATH``: a
directory holding the two files, or a downloaded wheel (``pip download aeon
--no-deps``), read as the zip file it is.  It reads the ``.ts`` format
itself (:func:`parse_ts`).
"""

import importlib.util
import time
import zipfile
from pathlib import Path

import numpy as np

from .common import add_common_arguments, fail, pyplot, save_figure

NAME = "JapaneseVowels"
MISSING = (
    "speech: the Japanese Vowels data was not found.  It ships inside the aeon and sktime "
    "packages; get it with\n"
    "    pip install aeon        (or: pip install sktime)\n"
    "or, without installing them, download the wheel and point --data at it:\n"
    "    pip download aeon --no-deps -d wheels && "
    "python -m fastlstm demo speech --data wheels/aeon-*.whl\n"
    "(--data also takes a directory holding JapaneseVowels_TRAIN.ts and JapaneseVowels_TEST.ts)"
)


def add_arguments(p):
    add_common_arguments(p)
    p.add_argument("--data", metavar="PATH", help="a directory with the .ts files, or a wheel")
    p.add_argument("--epochs", type=int, help="training epochs (default 60; --fast 8)")


# ---- the .ts format ---------------------------------------------------------------
class TsFormatError(ValueError):
    """A .ts text that this reader cannot read, with the line that says why."""


def parse_ts(text):
    """Read a ``.ts`` file (the time-series classification archive's format).

    Header lines start with ``@`` (``@dimensions 12``, ``@classLabel true 1 2
    ...``), comments with ``#``; after ``@data`` each line is one case: its
    dimensions separated by ``:``, each a comma-separated list of values
    (``?`` for a missing one, read as NaN), then the class label when
    ``@classLabel true``.  The dimensions of one case have the same length;
    cases may differ.

    Returns (list of (T_i, D) float64 arrays, labels as an array of str, or
    None when the file has no labels).
    """
    header = {}
    cases, labels = [], []
    in_data = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise TsFormatError(f"line {number}: expected a header line (@...) before @data")
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                in_data = True
            else:
                header[key] = value.strip()
            continue
        fields = line.split(":")
        labelled = header.get("classlabel", "false").split()[:1] == ["true"]
        if labelled:
            if len(fields) < 2:
                raise TsFormatError(f"line {number}: expected dimensions then a class label")
            labels.append(fields[-1].strip())
            fields = fields[:-1]
        dims = []
        for field in fields:
            try:
                dims.append([np.nan if v.strip() == "?" else float(v) for v in field.split(",")])
            except ValueError as e:
                raise TsFormatError(f"line {number}: {e}") from None
        if len({len(d) for d in dims}) != 1:
            raise TsFormatError(
                f"line {number}: the dimensions of one case have different lengths "
                f"{[len(d) for d in dims]}"
            )
        if "dimensions" in header and len(dims) != int(header["dimensions"]):
            raise TsFormatError(
                f"line {number}: {len(dims)} dimensions, the header says {header['dimensions']}"
            )
        cases.append(np.array(dims, np.float64).T)
    if not in_data:
        raise TsFormatError("no @data line: not a .ts file")
    return cases, (np.array(labels) if labels else None)


# ---- finding the data ------------------------------------------------------------
def _package_dir(name):
    """The directory of an installed package, without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def read_split(source, split):
    """The text of JapaneseVowels_<split>.ts from a directory or a zip/wheel."""
    member = f"{NAME}_{split}.ts"
    source = Path(source)
    if source.is_dir():
        return (source / member).read_text(encoding="utf-8")
    with zipfile.ZipFile(source) as z:
        names = [n for n in z.namelist() if n.endswith(f"/{member}") or n == member]
        if not names:
            raise FileNotFoundError(f"{source} holds no {member}")
        return z.read(sorted(names)[0]).decode("utf-8")


def find_data(data=None):
    """-> a directory or wheel holding the two files, or None."""
    if data:
        return Path(data)
    for package in ("aeon", "sktime"):
        root = _package_dir(package)
        if root is not None:
            d = root / "datasets" / "data" / NAME
            if (d / f"{NAME}_TRAIN.ts").is_file() and (d / f"{NAME}_TEST.ts").is_file():
                return d
    return None


def load(source):
    """-> (X_train, y_train, X_test, y_test): lists of (T_i, 12) arrays, labels."""
    X_train, y_train = parse_ts(read_split(source, "TRAIN"))
    X_test, y_test = parse_ts(read_split(source, "TEST"))
    return X_train, y_train, X_test, y_test


# ---- the example --------------------------------------------------------------------
def run(source, epochs=60, hidden=64, seed=0, out=print):
    from ..train.estimators import LSTMClassifier

    X_train, y_train, X_test, y_test = load(source)
    lengths = [len(x) for x in X_train + X_test]
    out(
        f"speech: {len(X_train)} training and {len(X_test)} test utterances of "
        f"{min(lengths)}-{max(lengths)} frames x {X_train[0].shape[1]} coefficients, "
        f"{len(set(y_train))} speakers (from {source})"
    )
    frames = np.concatenate(X_train)
    mean, std = frames.mean(axis=0), frames.std(axis=0)
    scale = [((x - mean) / std).astype(np.float32) for x in X_train]
    scale_test = [((x - mean) / std).astype(np.float32) for x in X_test]
    clf = LSTMClassifier(
        hidden_size=hidden,
        epochs=epochs,
        batch_size=16,
        learning_rate=5e-3,
        clip_norm=1.0,
        random_state=seed,
    )
    t0 = time.perf_counter()
    clf.fit(scale, y_train)
    seconds = time.perf_counter() - t0
    pred = clf.predict(scale_test)
    accuracy = float(np.mean(pred == y_test))
    majority = float(np.max(np.unique(y_test, return_counts=True)[1]) / len(y_test))
    classes = list(clf.classes_)
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    for t, p in zip(y_test, pred):
        confusion[classes.index(t), classes.index(p)] += 1
    out(f"test accuracy {accuracy:.3f} (the most frequent speaker: {majority:.3f})")
    return {
        "accuracy": accuracy,
        "majority": majority,
        "seconds": seconds,
        "epochs": epochs,
        "loss": list(clf.history_["loss"]),
        "classes": classes,
        "confusion": confusion,
    }


def plot(result, path):
    plt = pyplot()
    if plt is None:
        return
    fig, (ax, cx) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax.plot(result["loss"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("training cross-entropy")
    ax.set_title("learning curve")
    cx.imshow(result["confusion"], cmap="Blues")
    ticks = range(len(result["classes"]))
    cx.set_xticks(ticks, result["classes"])
    cx.set_yticks(ticks, result["classes"])
    cx.set_xlabel("predicted speaker")
    cx.set_ylabel("speaker")
    cx.set_title(f"test set: accuracy {result['accuracy']:.3f}")
    save_figure(fig, path)


def main(args=None):
    source = find_data(getattr(args, "data", None))
    if source is None:
        return fail(MISSING)
    if not source.exists():
        return fail(f"speech: --data {source} does not exist.\n{MISSING}")
    epochs = getattr(args, "epochs", None) or (8 if getattr(args, "fast", False) else 60)
    result = run(source, epochs=epochs, seed=getattr(args, "seed", 0))
    print(f"{epochs} epochs in {result['seconds']:.1f} s")
    if getattr(args, "png", None):
        plot(result, args.png)
    learned = result["accuracy"] > result["majority"]
    if not learned:
        print("NOT learned: no better than naming the most frequent speaker")
    return 0 if learned else 1
