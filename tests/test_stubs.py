"""The type stubs fastlstm ships, against the package these tests import.

* mypy.stubtest compares the types fastlstm declares (the annotated
  modules, and _native/kernels.pyi for the compiled extension) with the
  object Python imports: names, signatures, defaults, properties.  Any error
  fails.
* A small script that uses the API as the README does must pass
  ``mypy --strict`` and run; a script with typical mistakes must be rejected
  on exactly the lines that hold them (so the types are not all ``Any``).

mypy comes with the test extra (pinned in pyproject.toml, which also holds
the mypy configuration used here); without it these tests are skipped.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastlstm

pytest.importorskip("mypy", reason="mypy (in the test extra) is not installed")

TESTS = Path(__file__).resolve().parent
CONFIG = TESTS.parent / "pyproject.toml"  # [tool.mypy]
ALLOWLIST = TESTS / "stubtest_allowlist.txt"

# Uses every public entry point with the README's calling conventions.
TYPED_USE = """
import io

import numpy as np
from numpy.typing import NDArray

import fastlstm
from fastlstm import reference
from fastlstm.interop.onnx import onnx_gate_order
from fastlstm.train.optim import Adam, clip_grad_value_, parameter_pairs


def train_step(lstm: fastlstm.LSTM, opt: Adam, x: NDArray[np.float32]) -> float:
    output, (h_n, c_n), backward = lstm.forward_train(x, lengths=np.array([5, 3]))
    dx, (dh0, dc0) = backward(2 * output, (None, np.zeros_like(c_n)))
    clip_grad_value_(lstm.grads.values(), 1.0)
    opt.step()
    lstm.zero_grad()
    return float((output**2).sum()) + float(dx.sum() + dh0.sum() + dc0.sum())


rng = np.random.default_rng(0)
lstm = fastlstm.LSTM(input_size=3, hidden_size=4, num_layers=2, seed=0)
x = rng.standard_normal((5, 2, 3)).astype(np.float32)
loss = train_step(lstm, Adam(parameter_pairs(lstm), lr=1e-3), x)

output, (h_n, c_n) = lstm(x)
output, (h_n, c_n), cells = lstm(x, (h_n, c_n), return_cells=True)
lstm.weight_ih_l0 = lstm.weight_ih_l0 * 0.5
lstm.load_state_dict(lstm.state_dict())
names = [name for name, _ in lstm.named_parameters()]

stream = lstm.stream(2)
y_t = stream.step(x[0])
ys = stream.steps(x[1:])
stream.reset(stream.state)

cell = fastlstm.LSTMCell(3, 4, dtype=np.float64)
h, c = cell(x[0].astype(np.float64))
h, c, cell_backward = cell.forward_train(x[0].astype(np.float64), (h, c))
d_x, (d_h, d_c) = cell_backward(np.ones_like(h))

buffer = io.BytesIO()
fastlstm.save(buffer, lstm)
buffer.seek(0)
loaded = fastlstm.load(buffer)
assert isinstance(loaded, fastlstm.LSTM) and loaded.hidden_size == lstm.hidden_size

model = fastlstm.Sequential(
    fastlstm.Embedding(10, 3, padding_idx=0, seed=0),
    fastlstm.LSTM(3, 4, seed=1),
    fastlstm.Dropout(0.1, seed=2),
    fastlstm.LastStep(),
    fastlstm.Linear(4, 2, seed=3),
)
tokens = np.array([[1, 2], [3, 0], [4, 0]])
logits, model_backward = model.forward_train(tokens, lengths=np.array([3, 1]))
model_backward(np.ones_like(logits))
model_pairs = [(p, model.grads[name]) for name, p in model.named_parameters()]
head = fastlstm.Linear(4, 2, bias=False)
assert head.bias is None and head.weight.shape == (2, 4)
buffer = io.BytesIO()
fastlstm.save(buffer, model)
buffer.seek(0)
assert isinstance(fastlstm.load(buffer), fastlstm.Sequential) and len(model_pairs) == 7

shapes: dict[str, tuple[int, ...]] = reference.parameter_shapes(3, 4, num_layers=2)
ref_out, (ref_h, ref_c), cache = reference.lstm_forward(x, lstm.state_dict(), 2)
ref_dx, ref_dh0, ref_dc0, grads = reference.lstm_backward(ref_out, None, None, cache)
onnx_w = onnx_gate_order(lstm.weight_ih_l0)
threads: int = fastlstm.set_num_threads(fastlstm.get_num_threads())
opt2 = fastlstm.optim.AdamW([lstm, cell], lr=2e-3)
sched = fastlstm.optim.lr_scheduler.ReduceLROnPlateau(opt2, patience=2)
out2, _, backward2 = lstm.forward_train(x)
mse, d_out = fastlstm.losses.mse_loss(out2, np.zeros_like(out2), lengths=np.array([5, 3]))
backward2(d_out)
norm: float = fastlstm.optim.clip_grad_norm_([lstm], 1.0)
opt2.step()
opt2.zero_grad()
sched.step(float(mse))
print(loss, y_t.shape, ys.shape, d_x.shape, len(names), sorted(shapes) == sorted(grads))
"""

# Each line marked "# E: code" must get exactly that mypy error; no other line any.
TYPED_MISTAKES = """
import numpy as np

import fastlstm

lstm = fastlstm.LSTM(3, 4)
x = np.zeros((5, 2, 3), np.float32)
output, state = lstm(x, return_cells=True)  # E: misc
output, state, backward = lstm.forward_train(x)
backward(output, None, None)  # E: call-arg
fastlstm.LSTM("3", 4)  # E: arg-type
lstm.stream(2).step(x[0]).upper()  # E: attr-defined
layers: str = lstm.num_layers  # E: assignment
fastlstm.LSTMCell(3, 4).forward_train(x[0])[2](x, x, x)  # E: call-arg
fastlstm.save("model.npz", lstm.state_dict())  # E: arg-type
fastlstm.reference.parameter_shapes(3, 4)["weight_ih_l0"] + 1  # E: operator
"""


def mypy_run(args, cwd):
    """``python -m <args>`` from `cwd`, seeing the fastlstm these tests import.

    mypy finds an installed fastlstm itself; one imported from a source tree
    (a checkout built in place, on PYTHONPATH) it finds through MYPYPATH,
    and the subprocess imports it through PYTHONPATH."""
    env = dict(os.environ)
    parent = Path(fastlstm.__file__).resolve().parent.parent
    if parent.name not in ("site-packages", "dist-packages"):
        env["MYPYPATH"] = str(parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(parent), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_stubtest_finds_no_difference(tmp_path):
    # --ignore-unused-allowlist: the allowlist's Cython names vary with Cython's version
    r = mypy_run(
        [
            "mypy.stubtest",
            "fastlstm",
            "--mypy-config-file",
            str(CONFIG),
            "--allowlist",
            str(ALLOWLIST),
            "--ignore-unused-allowlist",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success: no issues found" in r.stdout, r.stdout


def check_script(tmp_path, source):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    r = mypy_run(
        ["mypy", "--strict", "--config-file", str(CONFIG), "--no-incremental", script.name],
        tmp_path,
    )
    return script, r


def test_typed_user_script_type_checks_and_runs(tmp_path):
    script, r = check_script(tmp_path, TYPED_USE)
    assert r.returncode == 0, r.stdout + r.stderr
    run = mypy_run([script.stem], tmp_path)  # python -m script: the same sys.path
    assert run.returncode == 0, run.stdout + run.stderr


def test_typed_mistakes_are_rejected_where_they_are(tmp_path):
    script, r = check_script(tmp_path, TYPED_MISTAKES)
    lines = script.read_text().splitlines()
    expected = {
        (n, m.group(1))
        for n, line in enumerate(lines, 1)
        if (m := re.search(r"# E: ([\w-]+)$", line))
    }
    got = set(re.findall(rf"^{script.name}:(\d+): error: .*\[([\w-]+)\]$", r.stdout, re.M))
    assert {(int(n), code) for n, code in got} == expected, r.stdout + r.stderr
