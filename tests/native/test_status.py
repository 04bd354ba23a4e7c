"""The kernel's C statuses reach Python as distinct, accurate errors.

Each status has its own fl_strerror message (checked here against what the
C API documents for it, not against the function's own output), and the
boundary turns each cause into its own error: a bad batch_sizes is a
ValueError naming batch_sizes and the call, a failed scratch allocation a
MemoryError saying so, and a bad shape a ValueError that the boundary raises
itself, naming the size or the array, before the C call."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastlstm._native import kernels

from helpers import kernel_forward

I, H = 3, 4
DTYPES = [np.float32, np.float64]

# What each status means (csrc/fastlstm.h), as words its message must hold.
EXPECTED = {
    "OK": ["success"],
    "ENOMEM": ["out of memory"],
    "EINVAL": ["missing", "NULL"],
    "ESHAPE": ["T, B, I and H", "at least 1"],
    "EBATCH_SIZES": ["batch_sizes", "non-increasing", "[1, B]", "batch_sizes[0] == B"],
    "EOPTIONS": ["cell options", "activation", "clip", "projection"],
}
BATCH_SIZES_MESSAGE = "batch_sizes must be non-increasing, in [1, B], with batch_sizes[0] == B"


def _weights(dtype, rng, I=I, H=H):
    w_ih = rng.standard_normal((4 * H, I)).astype(dtype)
    w_hh = rng.standard_normal((4 * H, H)).astype(dtype)
    packed = np.empty(kernels.packed_size(np.dtype(dtype).char, I, H, 0), dtype)
    kernels.pack(w_ih, w_hh, None, packed)
    return w_ih, w_hh, packed


def _forward(batch_sizes, dtype=np.float32, B=2, steps=None):
    """One forward call over rows given by batch_sizes (None: steps x B)."""
    rng = np.random.default_rng(0)
    w_ih, _, packed = _weights(dtype, rng)
    bs = None if batch_sizes is None else np.asarray(batch_sizes, np.int64)
    steps = len(bs) if steps is None else steps
    rows = int(bs.sum()) if bs is not None else steps * B
    x = rng.standard_normal((max(rows, 1), I)).astype(dtype)
    y = np.empty((max(rows, 1), H), dtype)
    h_n = np.empty((B, H), dtype)
    c_n = np.empty((B, H), dtype)
    kernel_forward(x, w_ih, packed, y, h_n, c_n, steps, batch_sizes=bs)
    return y


def _backward(batch_sizes, dtype=np.float32, B=2):
    """A backward call whose batch_sizes may differ from its forward's."""
    rng = np.random.default_rng(1)
    w_ih, w_hh, _ = _weights(dtype, rng)
    bs = np.asarray(batch_sizes, np.int64)
    rows = int(bs.sum())
    gates = rng.uniform(0, 1, (rows, 4 * H)).astype(dtype)
    cells = rng.standard_normal((rows, H)).astype(dtype)
    xh = rng.standard_normal((rows, I + H)).astype(dtype)
    dy = rng.standard_normal((rows, H)).astype(dtype)
    dh0, dc0 = np.empty((B, H), dtype), np.empty((B, H), dtype)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    kernels.backward(
        w_ih,
        w_hh,
        None,
        None,
        gates,
        cells,
        xh,
        dy,
        0,
        None,
        None,
        None,
        False,
        dh0,
        dc0,
        dw_ih,
        dw_hh,
        None,
        None,
        bs,
        len(bs),
        False,
    )


# ---- the messages -----------------------------------------------------------


def test_each_status_has_its_own_value_and_message():
    values = kernels.STATUS
    assert set(values) == set(EXPECTED)
    assert values["OK"] == 0
    assert len(set(values.values())) == len(values), "two statuses share a value"
    messages = {name: kernels.strerror(v) for name, v in values.items()}
    assert len(set(messages.values())) == len(messages), messages
    for name, words in EXPECTED.items():
        for w in words:
            assert w in messages[name], f"{name}: {messages[name]!r} lacks {w!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_message_names_no_other_cause(name):
    """Each message is about its own cause only: none carries the words that
    identify another status (FL_EINVAL used to be reported as a batch_sizes
    problem whatever its cause)."""
    message = kernels.strerror(kernels.STATUS[name])
    for other, words in EXPECTED.items():
        if other != name:
            assert words[0] not in message, f"{name}: {message!r} reads like {other}"


@pytest.mark.parametrize("status", [-1, 6, 99, 2**31 - 1])
def test_unknown_status(status):
    assert kernels.strerror(status) == "unknown status"


# ---- bad batch_sizes: FL_EBATCH_SIZES from the C call -------------------------


def test_good_batch_sizes_run():
    assert np.isfinite(_forward([2, 2, 1])).all()


BAD_BATCH_SIZES = [
    [2, 1, 2],  # increasing
    [1, 1],  # batch_sizes[0] != B
    [2, 0],  # an empty step
    [3, 2],  # more rows than B
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_sizes", BAD_BATCH_SIZES)
def test_bad_batch_sizes(batch_sizes, dtype):
    with pytest.raises(ValueError) as info:
        _forward(batch_sizes, dtype)
    assert type(info.value) is ValueError
    assert str(info.value) == (
        f"fastlstm: forward: {BATCH_SIZES_MESSAGE} (status {kernels.STATUS['EBATCH_SIZES']})"
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_sizes", BAD_BATCH_SIZES)
def test_bad_batch_sizes_backward(batch_sizes, dtype):
    with pytest.raises(ValueError) as info:
        _backward(batch_sizes, dtype)
    assert str(info.value) == (
        f"fastlstm: backward: {BATCH_SIZES_MESSAGE} (status {kernels.STATUS['EBATCH_SIZES']})"
    )


def test_status_is_not_memory_error():
    # FL_EBATCH_SIZES is a ValueError, not the MemoryError of FL_ENOMEM
    with pytest.raises(ValueError) as info:
        _forward([2, 1, 2])
    assert not isinstance(info.value, MemoryError)
    assert "out of memory" not in str(info.value)


# ---- bad shapes: refused at the boundary, before the C call ----------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_steps_is_a_size_error(dtype):
    """T = 0 (C: FL_ESHAPE) is refused by the boundary with the sizes."""
    with pytest.raises(ValueError) as info:
        _forward(None, dtype, steps=0)
    message = str(info.value)
    assert message.startswith("sizes must be positive: T=0, B=2")
    assert "batch_sizes" not in message and "status" not in message


def test_wrong_array_shape_names_the_array():
    rng = np.random.default_rng(2)
    w_ih, _, packed = _weights(np.float32, rng)
    x = np.zeros((6, I + 1), np.float32)  # one column too many
    y = np.empty((6, H), np.float32)
    h_n, c_n = np.empty((2, H), np.float32), np.empty((2, H), np.float32)
    with pytest.raises(ValueError) as info:
        kernel_forward(x, w_ih, packed, y, h_n, c_n, 3)
    assert str(info.value) == f"x: expected shape (6, {I}), got (6, {I + 1})"


def test_missing_training_array_is_named():
    """xh without gates (C: FL_EINVAL) is refused by the boundary by name
    (gates without xh is a training forward whose backward reads x and y)."""
    rng = np.random.default_rng(3)
    w_ih, _, packed = _weights(np.float64, rng)
    x, y = np.zeros((4, I)), np.empty((4, H))
    h_n, c_n = np.empty((2, H)), np.empty((2, H))
    with pytest.raises(ValueError, match=r"^xh: only with gates"):
        kernel_forward(x, w_ih, packed, y, h_n, c_n, 2, xh=np.empty((4, I + H)))


# ---- a failed allocation: FL_ENOMEM as MemoryError ---------------------------

ENOMEM_SCRIPT = textwrap.dedent("""
    import resource
    import numpy as np
    from fastlstm._native import kernels

    kernels.set_num_threads(1)     # no thread team to start under the limit
    dtype = np.{dtype}
    T, B, I, H = 1, 20000, 64, 64  # scratch of tens of MB per call
    rng = np.random.default_rng(0)
    w_ih = rng.uniform(-1, 1, (4 * H, I)).astype(dtype)
    w_hh = rng.uniform(-1, 1, (4 * H, H)).astype(dtype)
    packed = np.empty(kernels.packed_size(np.dtype(dtype).char, I, H, 0), dtype)
    kernels.pack(w_ih, w_hh, None, packed)
    x = rng.uniform(-1, 1, (T * B, I)).astype(dtype)
    y = np.empty((T * B, H), dtype)
    h_n, c_n = np.empty((B, H), dtype), np.empty((B, H), dtype)
    gates, cells = np.empty((T * B, 4 * H), dtype), np.empty((T * B, H), dtype)
    xh = np.empty((T * B, I + H), dtype)
    dy = rng.uniform(-1, 1, (T * B, H)).astype(dtype)
    dh0, dc0 = np.empty((B, H), dtype), np.empty((B, H), dtype)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)

    def forward():
        kernels.forward(x, w_ih, None, packed, None, None, y, 0, h_n, c_n,
                        gates, cells, xh, None, T, False, 0)

    def backward():
        kernels.backward(w_ih, w_hh, None, None, gates, cells, xh, dy, 0,
                         None, None, None, False, dh0, dc0, dw_ih, dw_hh, None, None,
                         None, T, False)

    forward()
    backward()
    with open("/proc/self/status") as fh:
        vm = next(int(l.split()[1]) for l in fh if l.startswith("VmSize:")) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm + (8 << 20), hard))
    for call in (forward, backward):
        try:
            call()
        except MemoryError as e:
            print(call.__name__, "MemoryError", e)
        except Exception as e:
            print(call.__name__, type(e).__name__, e)
        else:
            print(call.__name__, "ran")
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    forward()
    backward()
    print("after the limit: ran")
""")


@pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="limits the address space through /proc and RLIMIT_AS",
)
@pytest.mark.skipif(
    "libasan" in os.environ.get("LD_PRELOAD", ""),
    reason="AddressSanitizer's shadow memory does not fit under an address-space cap",
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_failed_allocation_is_memory_error(dtype):
    """With the address space capped just above what the process holds, the
    kernel's scratch allocation fails: a MemoryError saying so, naming the
    call and the status; once the cap is lifted the same calls run."""
    run = subprocess.run(
        [sys.executable, "-c", ENOMEM_SCRIPT.format(dtype=dtype)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    status = kernels.STATUS["ENOMEM"]
    assert run.stdout.splitlines() == [
        (
            f"forward MemoryError fastlstm: forward: out of memory for the kernel's "
            f"workspace (status {status})"
        ),
        (
            f"backward MemoryError fastlstm: backward: out of memory for the kernel's "
            f"workspace (status {status})"
        ),
        "after the limit: ran",
    ]


def test_backward_without_xh_needs_x_and_y():
    """A backward given no xh reads its rows from x and y: both required (C:
    FL_EINVAL), refused by the boundary by name."""
    rng = np.random.default_rng(4)
    w_ih, w_hh, _ = _weights(np.float64, rng)
    B = 2
    rows = 2 * B
    with pytest.raises(ValueError, match=r"^x and y: required without xh"):
        kernels.backward(
            w_ih,
            w_hh,
            None,
            None,
            np.zeros((rows, 4 * H)),
            np.zeros((rows, H)),
            None,
            np.zeros((rows, H)),
            0,
            None,
            None,
            None,
            False,
            np.empty((B, H)),
            np.empty((B, H)),
            np.zeros_like(w_ih),
            np.zeros_like(w_hh),
            None,
            None,
            None,
            2,
            False,
            x=np.zeros((rows, I)),
        )
