"""fastlstm.save / fastlstm.load (npz + JSON header, never pickle) and the
state_dict round trip with torch.

A loaded module must be bit-identical to the saved one; every damaged,
tampered or foreign file must be a ValueError, and nothing in a file may ever
be unpickled."""

import gc
import inspect
import io
import json
import os
import pickle
import warnings

import numpy as np
import pytest

import fastlstm

META = "__fastlstm__"

LSTM_CONFIGS = {
    "default": dict(input_size=3, hidden_size=5),
    "layers-bi": dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True),
    "proj": dict(input_size=4, hidden_size=6, proj_size=3),
    "everything": dict(
        input_size=2,
        hidden_size=5,
        num_layers=3,
        bias=False,
        batch_first=True,
        dropout=0.25,
        bidirectional=True,
        proj_size=2,
    ),
    "nobias-batchfirst": dict(input_size=3, hidden_size=4, bias=False, batch_first=True),
    "dropout": dict(input_size=3, hidden_size=4, num_layers=2, dropout=0.5),
}
# every constructor argument but dtype and seed must survive a round trip
CONFIG_KEYS = [k for k in inspect.signature(fastlstm.LSTM).parameters if k not in ("dtype", "seed")]


def _x(rng, lstm, dtype, T=4, B=3):
    shape = (B, T, lstm.input_size) if lstm.batch_first else (T, B, lstm.input_size)
    return rng.standard_normal(shape).astype(dtype)


def _assert_same_module(a, b):
    assert type(a) is type(b)
    assert a.dtype == b.dtype
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape, k
        assert sa[k].tobytes() == sb[k].tobytes(), k  # bit-exact, NaN payloads included


@pytest.mark.parametrize("cfg", list(LSTM_CONFIGS), ids=list(LSTM_CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target", ["path", "str", "fileobj"])
def test_lstm_round_trip(tmp_path, rng, cfg, dtype, target):
    kwargs = LSTM_CONFIGS[cfg]
    lstm = fastlstm.LSTM(**kwargs, dtype=dtype, seed=1)
    # odd values that must survive bit for bit
    w = lstm.weight_ih_l0
    w.flat[0] = np.finfo(dtype).tiny / 4  # subnormal
    w.flat[1] = -0.0
    if target == "fileobj":
        f = io.BytesIO()
        fastlstm.save(f, lstm)
        f.seek(0)
        loaded = fastlstm.load(f)
    else:
        p = tmp_path / "m.npz"
        fastlstm.save(p if target == "path" else str(p), lstm)
        loaded = fastlstm.load(p if target == "path" else str(p))
    assert isinstance(loaded, fastlstm.LSTM)
    _assert_same_module(lstm, loaded)
    for k in CONFIG_KEYS:
        assert getattr(loaded, k) == getattr(lstm, k), k
        assert type(getattr(loaded, k)) is type(getattr(lstm, k)), k
    assert np.signbit(loaded.weight_ih_l0.flat[1])
    x = _x(rng, lstm, dtype)
    out, (h, c) = lstm(x)
    out2, (h2, c2) = loaded(x)
    assert np.array_equal(out, out2) and np.array_equal(h, h2) and np.array_equal(c, c2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_round_trip(tmp_path, rng, dtype, bias):
    cell = fastlstm.LSTMCell(4, 3, bias=bias, dtype=dtype, seed=2)
    fastlstm.save(tmp_path / "c.npz", cell)
    loaded = fastlstm.load(tmp_path / "c.npz")
    assert isinstance(loaded, fastlstm.LSTMCell)
    _assert_same_module(cell, loaded)
    assert (loaded.input_size, loaded.hidden_size, loaded.bias) == (4, 3, bias)
    x = rng.standard_normal((2, 4)).astype(dtype)
    hx = tuple(rng.standard_normal((2, 3)).astype(dtype) for _ in range(2))
    for a, b in zip(cell(x, hx), loaded(x, hx)):
        assert np.array_equal(a, b)


def test_save_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError):
        fastlstm.save(tmp_path / "x.npz", object())
    with pytest.raises(TypeError):
        fastlstm.save(tmp_path / "x.npz", {"weight_ih_l0": np.zeros((4, 1))})


# ---- damaged and tampered files ------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    lstm = fastlstm.LSTM(3, 4, num_layers=2, proj_size=2, seed=0)
    p = tmp_path / "good.npz"
    fastlstm.save(p, lstm)
    return p


def _read(path):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays[META].tobytes().decode("utf-8"))
    return arrays, meta


def _write(path, arrays, meta=None, raw_header=None):
    arrays = dict(arrays)
    if raw_header is not None:
        arrays[META] = raw_header
    elif meta is not None:
        arrays[META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)
    return path


def test_rewritten_file_still_loads(saved, tmp_path):
    """The helpers used below do not by themselves break a file."""
    arrays, meta = _read(saved)
    loaded = fastlstm.load(_write(tmp_path / "same.npz", arrays, meta))
    _assert_same_module(fastlstm.load(saved), loaded)


# numpy's NpzFile leaks its file handle when the zip directory is unreadable;
# that leak is checked on its own in test_bad_zip_does_not_leak_file_handle
_ignore_leak = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@_ignore_leak[0]
@_ignore_leak[1]
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_file(saved, tmp_path, fraction):
    _assert_truncated_refused(saved, tmp_path, fraction)


def _assert_truncated_refused(saved, tmp_path, fraction):
    """The first ``fraction`` of the file ``saved`` does not load."""
    data = saved.read_bytes()
    p = tmp_path / "trunc.npz"
    p.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError):
        fastlstm.load(p)


@_ignore_leak[0]
@_ignore_leak[1]
def test_corrupted_bytes(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = b"\xff" * 16
    p = tmp_path / "corrupt.npz"
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        fastlstm.load(p)


HEADER_EDITS = {
    "format": (lambda m: m.update(format="pytorch"), "fastlstm"),
    "format-missing": (lambda m: m.pop("format"), "fastlstm"),
    "version": (lambda m: m.update(version=2), "version"),
    "class-unknown": (lambda m: m.update({"class": "GRU"}), "GRU"),
    "class-missing": (lambda m: m.pop("class"), "class"),
    "class-list": (lambda m: m.update({"class": ["LSTM"]}), "class"),
    "config-extra-key": (lambda m: m["config"].update(nonlinearity="relu"), "nonlinearity"),
    "config-missing-key": (lambda m: m["config"].pop("proj_size"), "proj_size"),
    "config-not-dict": (lambda m: m.update(config=[3, 4]), None),
    "config-bad-value": (lambda m: m["config"].update(hidden_size=-4), "hidden_size"),
    "config-proj-too-big": (lambda m: m["config"].update(proj_size=9), "proj_size"),
    "config-disagrees-with-weights": (lambda m: m["config"].update(hidden_size=5), None),
    "config-one-layer": (lambda m: m["config"].update(num_layers=1), None),
    "dtype-float16": (lambda m: m.update(dtype="float16"), "float16"),
    "dtype-object": (lambda m: m.update(dtype="object"), "object"),
    "dtype-missing": (lambda m: m.pop("dtype"), "dtype"),
    "dtype-mismatch": (lambda m: m.update(dtype="float64"), None),
}


@pytest.mark.parametrize("edit", list(HEADER_EDITS), ids=list(HEADER_EDITS))
def test_modified_header(saved, tmp_path, edit):
    change, word = HEADER_EDITS[edit]
    arrays, meta = _read(saved)
    change(meta)
    p = _write(tmp_path / "edited.npz", arrays, meta)
    with pytest.raises(ValueError) as info:
        fastlstm.load(p)
    if word is not None:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        np.frombuffer(b"not json at all", np.uint8),
        np.frombuffer(b"\xff\xfe\x00garbage", np.uint8),
        np.frombuffer(b"[1, 2, 3]", np.uint8),
        np.frombuffer(b'"fastlstm"', np.uint8),
        np.frombuffer(b"null", np.uint8),
        np.frombuffer(b"", np.uint8),
        np.frombuffer(b'{"format": "fastlstm"}', np.uint8).astype(np.int64),
        np.frombuffer(b'{"format": "fastlstm"}', np.uint8).reshape(1, -1),
        np.array("{}"),
    ],
    ids=[
        "garbage",
        "not-utf8",
        "json-list",
        "json-string",
        "json-null",
        "empty",
        "int64-header",
        "2d-header",
        "str-header",
    ],
)
def test_broken_header(saved, tmp_path, raw):
    arrays, _ = _read(saved)
    p = _write(tmp_path / "h.npz", arrays, raw_header=raw)
    with pytest.raises(ValueError):
        fastlstm.load(p)


def test_header_with_huge_sizes(saved, tmp_path):
    """A header claiming enormous sizes must be rejected as a ValueError (the
    config disagrees with the stored arrays), not by trying to allocate it:
    here 4e14 parameters, which fails as MemoryError (refused by any x86-64
    address space, so this test cannot exhaust the machine)."""
    arrays, meta = _read(saved)
    meta["config"].update(input_size=10**7, hidden_size=10**7)
    with pytest.raises(ValueError):
        fastlstm.load(_write(tmp_path / "huge.npz", arrays, meta))


def test_tampered_weight_shape_names_key(saved, tmp_path):
    arrays, meta = _read(saved)
    arrays["weight_hh_l1"] = np.zeros((16, 3), np.float32)  # proj: should be (16, 2)
    with pytest.raises(ValueError, match="weight_hh_l1"):
        fastlstm.load(_write(tmp_path / "w.npz", arrays, meta))


def test_tampered_weight_dtype_names_key(saved, tmp_path):
    arrays, meta = _read(saved)
    arrays["weight_hr_l0"] = arrays["weight_hr_l0"].astype(np.float64)
    with pytest.raises(ValueError, match="weight_hr_l0"):
        fastlstm.load(_write(tmp_path / "w.npz", arrays, meta))
    arrays["weight_hr_l0"] = np.zeros((2, 4), np.int32)
    with pytest.raises(ValueError, match="weight_hr_l0"):
        fastlstm.load(_write(tmp_path / "w.npz", arrays, meta))


def test_missing_and_extra_arrays_name_key(saved, tmp_path):
    arrays, meta = _read(saved)
    missing = {k: v for k, v in arrays.items() if k != "bias_hh_l1"}
    with pytest.raises(ValueError, match="bias_hh_l1"):
        fastlstm.load(_write(tmp_path / "m.npz", missing, meta))
    extra = dict(arrays, weight_ih_l2=np.zeros((16, 2), np.float32))
    with pytest.raises(ValueError, match="weight_ih_l2"):
        fastlstm.load(_write(tmp_path / "e.npz", extra, meta))


def test_plain_npz_without_header(tmp_path):
    lstm = fastlstm.LSTM(3, 4, seed=0)
    p = tmp_path / "plain.npz"
    np.savez(p, **lstm.state_dict())
    with pytest.raises(ValueError, match="header"):
        fastlstm.load(p)
    np.savez(p)
    with pytest.raises(ValueError):
        fastlstm.load(p)


@_ignore_leak[0]
@_ignore_leak[1]
@pytest.mark.parametrize(
    "content",
    [b"", b"hello, not a zip file\n", b"PK\x03\x04junk", b"\x93NUMPY garbage"],
    ids=["empty", "text", "zip-magic", "npy-magic"],
)
def test_not_a_zip_file(tmp_path, content):
    p = tmp_path / "x.npz"
    p.write_bytes(content)
    with pytest.raises(ValueError):
        fastlstm.load(p)


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_bad_zip_does_not_leak_file_handle(saved, tmp_path):
    """load() of a damaged file must close what it opened (np.load hands the
    handle to NpzFile, which leaks it when zipfile raises; load can avoid
    that by opening the file itself)."""
    p = tmp_path / "trunc.npz"
    p.write_bytes(saved.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError):
            fastlstm.load(p)
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, str(leaks[0].message)


def test_plain_npy_file(tmp_path):
    """A single-array .npy file (what np.save writes) is not a fastlstm file."""
    p = tmp_path / "x.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(ValueError):
        fastlstm.load(p)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastlstm.load(tmp_path / "nope.npz")


# ---- never unpickle --------------------------------------------------------------


class _Evil:
    """Unpickling this creates the directory named by `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_payload_is_live(tmp_path):
    """Sanity check of the test itself: unpickling does run the payload."""
    marker = tmp_path / "sanity"
    pickle.loads(pickle.dumps(_Evil(marker)))
    assert marker.exists()


@pytest.mark.parametrize("where", ["weight", "header", "extra"])
def test_object_array_is_never_unpickled(saved, tmp_path, where):
    marker = tmp_path / "PWNED"
    evil = np.array([_Evil(marker)], dtype=object)
    arrays, meta = _read(saved)
    if where == "weight":
        arrays["weight_ih_l0"] = evil
        p = _write(tmp_path / "evil.npz", arrays, meta)
    elif where == "header":
        p = _write(tmp_path / "evil.npz", arrays, raw_header=evil)
    else:
        arrays["aaa"] = evil  # sorts before everything else
        p = _write(tmp_path / "evil.npz", arrays, meta)
    with pytest.raises(ValueError):
        fastlstm.load(p)
    assert not marker.exists()
    with np.load(p, allow_pickle=True) as f:  # the file really carries the payload
        f["aaa" if where == "extra" else META if where == "header" else "weight_ih_l0"]
    assert marker.exists()


def test_pickle_file_is_never_unpickled(tmp_path):
    marker = tmp_path / "PWNED"
    p = tmp_path / "evil.npz"
    p.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ValueError):
        fastlstm.load(p)
    assert not marker.exists()


# ---- state_dict with torch ---------------------------------------------------------

TORCH_CONFIGS = {
    "plain": dict(input_size=3, hidden_size=4),
    "L2-bi-proj": dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, proj_size=2),
    "nobias-batchfirst": dict(
        input_size=2, hidden_size=3, num_layers=2, bias=False, batch_first=True
    ),
}


@pytest.mark.parametrize("cfg", list(TORCH_CONFIGS), ids=list(TORCH_CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_torch_round_trip(torch, rng, tmp_path, cfg, dtype):
    kw = TORCH_CONFIGS[cfg]
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    torch.manual_seed(0)
    tl = torch.nn.LSTM(**kw, dtype=tdt)
    lstm = fastlstm.LSTM(**kw, dtype=dtype, seed=9)

    # torch -> fastlstm, tensors passed directly (they require grad)
    lstm.load_state_dict(tl.state_dict())
    lstm.load_state_dict(dict(tl.named_parameters()))
    for k, v in tl.state_dict().items():
        assert np.array_equal(lstm.state_dict()[k], v.numpy()), k
    x = _x(rng, lstm, dtype)
    out, (h, c) = lstm(x)
    tout, (th, tc) = tl(torch.from_numpy(x))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out, tout.detach().numpy(), **tol)
    np.testing.assert_allclose(h, th.detach().numpy(), **tol)
    np.testing.assert_allclose(c, tc.detach().numpy(), **tol)

    # fastlstm -> file -> fastlstm -> torch: bit-exact
    fastlstm.save(tmp_path / "m.npz", lstm)
    loaded = fastlstm.load(tmp_path / "m.npz")
    torch.manual_seed(1)
    tl2 = torch.nn.LSTM(**kw, dtype=tdt)
    res = tl2.load_state_dict({k: torch.from_numpy(v) for k, v in loaded.state_dict().items()})
    assert not res.missing_keys and not res.unexpected_keys
    for k, v in tl.state_dict().items():
        assert torch.equal(tl2.state_dict()[k], v), k


def test_fresh_fastlstm_to_torch(torch, rng):
    lstm = fastlstm.LSTM(3, 4, num_layers=2, proj_size=2, dtype=np.float64, seed=4)
    tl = torch.nn.LSTM(3, 4, num_layers=2, proj_size=2, dtype=torch.float64)
    tl.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    x = rng.standard_normal((5, 2, 3))
    np.testing.assert_allclose(
        lstm(x)[0], tl(torch.from_numpy(x))[0].detach().numpy(), rtol=1e-12, atol=1e-13
    )


def test_state_dict_errors_name_key(torch):
    lstm = fastlstm.LSTM(3, 4, num_layers=2, seed=0)
    good = lstm.state_dict()
    bad = dict(good, weight_hh_l1=np.zeros((16, 5), np.float32))
    with pytest.raises(ValueError, match="weight_hh_l1"):
        lstm.load_state_dict(bad)
    bad = dict(good, weight_hh_l1=torch.zeros(16, 5))
    with pytest.raises(ValueError, match="weight_hh_l1"):
        lstm.load_state_dict(bad)
    with pytest.raises(KeyError, match="bias_ih_l0"):
        lstm.load_state_dict({k: v for k, v in good.items() if k != "bias_ih_l0"})
    with pytest.raises(KeyError, match="weight_hr_l0"):
        lstm.load_state_dict(dict(good, weight_hr_l0=np.zeros((2, 4), np.float32)))
    with pytest.raises(TypeError, match="bias_hh_l0"):
        lstm.load_state_dict(dict(good, bias_hh_l0=np.zeros(16, np.int64)))
    # nothing changed by the failed loads
    for k, v in lstm.state_dict().items():
        assert np.array_equal(v, good[k]), k


# ---- exact paths, atomic replacement ----------------------------------------------


@pytest.mark.parametrize("name", ["model.bin", "model", "model.npz", "dir.d/m.weights"])
def test_save_writes_exactly_the_path_given(tmp_path, name):
    lstm = fastlstm.LSTM(3, 4, seed=0)
    p = tmp_path / name
    p.parent.mkdir(exist_ok=True)
    fastlstm.save(p, lstm)
    assert sorted(os.listdir(p.parent)) == [p.name]  # no suffix added, no temporary left
    _assert_same_module(lstm, fastlstm.load(p))
    _assert_same_module(lstm, fastlstm.load(str(p)))


def test_save_to_a_directory_is_an_error(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    with pytest.raises(IsADirectoryError):
        fastlstm.save(d, fastlstm.LSTM(3, 4, seed=0))
    assert os.listdir(tmp_path) == ["models"] and os.listdir(d) == []


def test_save_keeps_permissions_of_replaced_file(tmp_path):
    p = tmp_path / "m.npz"
    fastlstm.save(p, fastlstm.LSTM(3, 4, seed=0))
    os.chmod(p, 0o640)
    fastlstm.save(p, fastlstm.LSTM(3, 4, seed=1))
    assert os.stat(p).st_mode & 0o777 == 0o640


def test_save_of_new_file_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        fastlstm.save(tmp_path / "m.npz", fastlstm.LSTM(3, 4, seed=0))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o640


_KILLED_MID_SAVE = r"""
import os, sys
import numpy as np
import fastlstm

def dying_savez(fh, **arrays):
    fh.write(b"PK\x03\x04" + b"\0" * 5000)   # half an archive
    fh.flush()
    os._exit(9)                             # killed mid-save

np.savez = dying_savez
fastlstm.save(sys.argv[1], fastlstm.LSTM(3, 4, seed=1))
"""


def test_save_killed_midway_keeps_the_old_file(tmp_path):
    """A process killed while saving over a good file leaves the good file
    (and at most a hidden temporary beside it), never a broken one."""
    import subprocess
    import sys

    p = tmp_path / "good.npz"
    good = fastlstm.LSTM(3, 4, seed=0)
    fastlstm.save(p, good)
    before = p.read_bytes()
    r = subprocess.run([sys.executable, "-c", _KILLED_MID_SAVE, str(p)], timeout=120)
    assert r.returncode == 9
    assert p.read_bytes() == before
    _assert_same_module(good, fastlstm.load(p))


def test_failed_save_removes_its_temporary(tmp_path):
    p = tmp_path / "m.npz"

    class Boom(RuntimeError):
        pass

    lstm = fastlstm.LSTM(3, 4, seed=0)
    lstm.state_dict = lambda: (_ for _ in ()).throw(Boom())  # fails before writing
    with pytest.raises(Boom):
        fastlstm.save(p, lstm)
    assert os.listdir(tmp_path) == []


# ---- load validates before it allocates -----------------------------------------------


def _peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_LOAD_IN_CHILD = r"""
import resource, sys, time
import fastlstm
t = time.perf_counter()
try:
    fastlstm.load(sys.argv[1])
    print("LOADED")
except ValueError as e:
    print("ValueError", time.perf_counter() - t,
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, str(e)[:200])
"""


def _load_in_child(path):
    """(seconds, peak RSS MiB, message) of load(path) in a fresh process."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_CHILD, str(path)],
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    words = out.stdout.split(maxsplit=3)
    assert words[0] == "ValueError", out.stdout
    return float(words[1]), float(words[2]), words[3] if len(words) > 3 else ""


def _baseline_rss_mib():
    import subprocess
    import sys

    code = (
        "import resource, fastlstm; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    return float(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
        ).stdout
    )


@pytest.mark.parametrize("num_layers", [10**6, 10**7, 10**12])
def test_forged_layer_count_is_refused_before_allocating(saved, tmp_path, num_layers):
    arrays, meta = _read(saved)
    meta["config"]["num_layers"] = num_layers
    p = _write(tmp_path / "forged.npz", arrays, meta)
    seconds, rss, msg = _load_in_child(p)
    assert "arrays" in msg
    assert seconds < 1.0
    assert rss < _baseline_rss_mib() + 20


def test_compressed_bomb_is_refused_before_decompressing(saved, tmp_path):
    """Two extra members of 1 GiB of zeros, compressed to a few MB."""
    import zipfile

    p = tmp_path / "bomb.npz"
    p.write_bytes(saved.read_bytes())
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, np.float32))
    header["shape"] = (1 << 28,)
    with zipfile.ZipFile(p, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in ("bomb_a.npy", "bomb_b.npy"):
            with zf.open(name, "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_1_0(fh, header)
                chunk = bytes(1 << 24)
                for _ in range(64):
                    fh.write(chunk)
    assert p.stat().st_size < 8 << 20
    seconds, rss, msg = _load_in_child(p)
    assert "bomb_a" in msg or "arrays" in msg
    assert rss < _baseline_rss_mib() + 20


def test_bomb_in_place_of_a_weight_is_refused(saved, tmp_path):
    """A weight member whose declared size is far beyond its shape."""
    import zipfile

    arrays, meta = _read(saved)
    arrays.pop("weight_ih_l0")
    p = _write(tmp_path / "w.npz", arrays, meta)
    header = np.lib.format.header_data_from_array_1_0(np.zeros((16, 3), np.float32))
    with zipfile.ZipFile(p, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("weight_ih_l0.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            for _ in range(32):
                fh.write(bytes(1 << 24))
    seconds, rss, msg = _load_in_child(p)
    assert "weight_ih_l0" in msg
    assert rss < _baseline_rss_mib() + 20


def test_deeply_nested_header_is_a_value_error(saved, tmp_path):
    arrays, _ = _read(saved)
    deep = b"[" * 100000 + b"]" * 100000
    with pytest.raises(ValueError):
        fastlstm.load(
            _write(tmp_path / "deep.npz", arrays, raw_header=np.frombuffer(deep, np.uint8))
        )
    nested = {
        "format": "fastlstm",
        "version": 1,
        "class": "LSTM",
        "dtype": "float32",
        "config": {"x": [[[[[[[[[[1]]]]]]]]]]},
    }
    with pytest.raises(ValueError):
        fastlstm.load(_write(tmp_path / "nested.npz", arrays, nested))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constants_in_header(saved, tmp_path, value):
    arrays, meta = _read(saved)
    text = json.dumps(meta).replace('"dropout": 0.0', f'"dropout": {value}')
    assert value in text
    with pytest.raises(ValueError):
        fastlstm.load(
            _write(tmp_path / "c.npz", arrays, raw_header=np.frombuffer(text.encode(), np.uint8))
        )


def test_member_without_npy_suffix(saved, tmp_path):
    import zipfile

    p = tmp_path / "m.npz"
    p.write_bytes(saved.read_bytes())
    with zipfile.ZipFile(p, "a") as zf:
        zf.writestr("README", b"hello")
    with pytest.raises(ValueError, match="README"):
        fastlstm.load(p)


def test_every_single_byte_corruption_is_a_value_error(tmp_path):
    """Each byte of a small file in turn set to another value (a sample of
    positions, every one in the zip directory and headers): load either
    returns a module or raises ValueError, never anything else."""
    lstm = fastlstm.LSTM(2, 3, seed=0)
    p = tmp_path / "small.npz"
    fastlstm.save(p, lstm)
    data = p.read_bytes()
    rng = np.random.default_rng(0)
    positions = sorted(set(range(0, len(data), 7)) | set(range(len(data) - 400, len(data))))
    q = tmp_path / "bad.npz"
    for pos in positions:
        for value in (data[pos] ^ 0xFF, int(rng.integers(256))):
            bad = bytearray(data)
            bad[pos] = value
            q.write_bytes(bytes(bad))
            try:
                fastlstm.load(q)
            except ValueError:
                pass


@pytest.mark.parametrize(
    "damage", [(b"), }", b",  }"), (b"'descr'", b"'descr("), (b"'shape': (", b"'shape': [")]
)
def test_damaged_npy_header_text_is_a_value_error(saved, tmp_path, damage):
    """The text of a member's .npy header altered so numpy's parser fails
    (an unbalanced bracket raised tokenize.TokenError through load)."""
    import zipfile

    old, new = damage
    p = tmp_path / "m.npz"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(p, "w") as dst:
        hit = False
        for info in src.infolist():
            data = src.read(info)
            if not hit and info.filename.startswith("weight_") and old in data[:128]:
                data = data.replace(old, new, 1)
                hit = True
            dst.writestr(info, data)
    assert hit
    with pytest.raises(ValueError, match="weight_"):
        fastlstm.load(p)


# ---- fitted estimators -----------------------------------------------------------


def _sequences(rng, n=40):
    return [rng.standard_normal((int(t), 3)) for t in rng.integers(2, 9, n)]


@pytest.mark.parametrize("labels", ["int", "str"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_round_trip(tmp_path, rng, labels, bidirectional):
    """A loaded classifier predicts bit for bit as the saved one (labels,
    probabilities), with the same hyperparameters and fitted attributes,
    and can go on training."""
    X = _sequences(rng)
    y = np.array([int(x[:, 0].sum() > 0) + 2 * int(len(x) > 5) for x in X])
    if labels == "str":
        y = np.array(["neg", "pos", "long neg", "long pos"])[y]
    clf = fastlstm.LSTMClassifier(
        hidden_size=6, num_layers=2, bidirectional=bidirectional, epochs=2, random_state=0
    ).fit(X, y)
    p = tmp_path / "clf.fastlstm"
    fastlstm.save(p, clf)
    got = fastlstm.load(p)
    assert type(got) is fastlstm.LSTMClassifier
    assert got.get_params() == clf.get_params()
    assert got.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(got.classes_, clf.classes_)
    assert (got.n_features_in_, got.n_iter_, got.loss_) == (
        clf.n_features_in_,
        clf.n_iter_,
        clf.loss_,
    )
    assert got.history_ == clf.history_
    Xt = _sequences(np.random.default_rng(5), 17)
    np.testing.assert_array_equal(got.predict(Xt), clf.predict(Xt))
    assert_bitwise = np.testing.assert_array_equal
    assert_bitwise(got.predict_proba(Xt), clf.predict_proba(Xt))
    assert_bitwise(got.predict_proba(np.zeros((4, 3))), clf.predict_proba(np.zeros((4, 3))))
    got.partial_fit(X, y)  # compiled on load: training continues
    assert got.n_iter_ == clf.n_iter_ + 1


@pytest.mark.parametrize("target", ["scalar", "multi", "per_step", "per_step_ragged"])
def test_regressor_round_trip(tmp_path, rng, target):
    """A loaded regressor predicts bit for bit as the saved one, sequence to
    value and sequence to sequence (with the target standardisation)."""
    if target.startswith("per_step"):
        X = _sequences(rng) if target.endswith("ragged") else rng.standard_normal((30, 7, 3))
        y = [np.cumsum(x, axis=0)[:, :2] for x in X]
        if not target.endswith("ragged"):
            y = np.stack(y)
    else:
        X = rng.standard_normal((30, 5, 3))
        y = X.sum(axis=(1, 2)) * 10 + 3
        if target == "multi":
            y = np.stack([y, -2 * y], axis=1)
    reg = fastlstm.LSTMRegressor(hidden_size=5, epochs=2, random_state=1).fit(X, y)
    p = tmp_path / "reg.fastlstm"
    fastlstm.save(p, reg)
    got = fastlstm.load(p)
    assert type(got) is fastlstm.LSTMRegressor
    assert got.get_params() == reg.get_params()
    assert got.sequence_output_ == reg.sequence_output_ == target.startswith("per_step")
    np.testing.assert_array_equal(got.y_mean_, reg.y_mean_)
    np.testing.assert_array_equal(got.y_scale_, reg.y_scale_)
    for a, b in zip(got.predict(X), reg.predict(X)):
        np.testing.assert_array_equal(a, b)


def test_unfitted_estimator_is_refused(tmp_path):
    for est in (fastlstm.LSTMClassifier(), fastlstm.LSTMRegressor()):
        with pytest.raises(ValueError, match="not fitted yet"):
            fastlstm.save(tmp_path / "e.fastlstm", est)
        assert not (tmp_path / "e.fastlstm").exists()


@pytest.fixture
def saved_classifier(tmp_path, rng):
    X = _sequences(rng, 12)
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    clf = fastlstm.LSTMClassifier(hidden_size=4, epochs=1, random_state=0).fit(X, y)
    p = tmp_path / "clf.npz"
    fastlstm.save(p, clf)
    return p


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["config"]["params"].update(hidden_size=5),  # disagrees with the network
        lambda m: m["config"]["params"].update(optimizer="nope"),
        lambda m: m["config"]["params"].update(unknown=1),
        lambda m: m["config"]["params"].update(epochs=[1]),
        lambda m: m["config"]["fitted"].update(n_features_in_=4),
        lambda m: m["config"]["fitted"].update(classes_dtype="O"),
        lambda m: m["config"]["fitted"].update(classes_dtype="float32"),  # not the array's
        lambda m: m["config"]["fitted"].update(history_={"loss": ["x"]}),
        lambda m: m["config"]["fitted"].pop("shuffle_seed"),
        lambda m: m["config"]["layers"].pop(1),
        lambda m: m["config"]["layers"][0]["config"].update(batch_first=False),
        lambda m: m["config"]["layers"][2]["config"].update(out_features=3),
        lambda m: m.update(dtype="float32"),
        lambda m: m.update(**{"class": "LSTMRegressor"}),
    ],
)
def test_tampered_estimator_header(saved_classifier, tmp_path, edit):
    arrays, meta = _read(saved_classifier)
    edit(meta)
    with pytest.raises(ValueError, match="load: "):
        fastlstm.load(_write(tmp_path / "bad.npz", arrays, meta))


@pytest.mark.parametrize("how", ["shape", "dtype", "object", "missing"])
def test_tampered_estimator_arrays(saved_classifier, tmp_path, how):
    marker = tmp_path / "PWNED"
    arrays, meta = _read(saved_classifier)
    if how == "shape":
        arrays["classes_"] = np.arange(3)
    elif how == "dtype":
        arrays["classes_"] = arrays["classes_"].astype(np.float64)
    elif how == "object":
        arrays["classes_"] = np.array([_Evil(marker), 1], dtype=object)
    else:
        del arrays["classes_"]
    with pytest.raises(ValueError, match="load: "):
        fastlstm.load(_write(tmp_path / "bad.npz", arrays, meta))
    assert not marker.exists()


@_ignore_leak[0]
@_ignore_leak[1]
@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_estimator_file(saved_classifier, tmp_path, fraction):
    _assert_truncated_refused(saved_classifier, tmp_path, fraction)
