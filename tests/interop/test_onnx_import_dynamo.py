"""fastlstm.onnx.load of graphs from torch.onnx.export's default exporter
(``dynamo=True``: torch.export, then onnxscript), against torch on random
weights.

torch 2.13's dynamo exporter writes an ``nn.LSTM`` as ONNX LSTM nodes (one
per layer) with Transpose / Reshape / Concat / Slice around them, the zero
initial states as constants (or Shape / Concat / Expand with a dynamic
batch), Embedding as Gather and Linear as Gemm or MatMul + Add; no Loop or
Scan and no local functions.  Unlike the TorchScript exporter, its Reshape
after a node spells the time and batch sizes as numbers when they are
static; load reads them by the sizes the graph input declares.
"""

import io
import logging
import warnings

import numpy as np
import pytest

import fastlstm

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")  # what the dynamo exporter builds its graphs with

TOL32 = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(autouse=True)
def _quiet():  # torch.export's and the exporter's progress lines
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def dynamo_export(torch, module, args, dynamic_batch):
    """``torch.onnx.export(..., dynamo=True)``'s bytes; ``dynamic_batch``:
    the batch axis of every input is dynamic (Dim.DYNAMIC)."""
    kw = {}
    if dynamic_batch:
        D = torch.export.Dim.DYNAMIC
        b = 0 if module.batch_first else 1
        kw["dynamic_shapes"] = ({b: D},) + tuple(({1: D}, {1: D}) for _ in args[1:])
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, f, dynamo=True, verbose=False, **kw)
    return f.getvalue()


def _models(torch):
    nn = torch.nn

    class Full(nn.Module):  # output, h_n, c_n; (h0, c0) when given
        def __init__(self, **kw):
            super().__init__()
            self.batch_first = kw.get("batch_first", False)
            self.lstm = nn.LSTM(3, 5, **kw)

        def forward(self, x, hc=None):
            y, (h, c) = self.lstm(x, hc)
            return y, h, c

    class EmbedLast(nn.Module):  # Embedding -> LSTM -> Linear on the last step
        def __init__(self, **kw):
            super().__init__()
            self.batch_first = kw.get("batch_first", False)
            self.embed = nn.Embedding(11, 3)
            self.lstm = nn.LSTM(3, 5, **kw)
            self.fc = nn.Linear(10 if kw.get("bidirectional") else 5, 2)

        def forward(self, x):
            y, _ = self.lstm(self.embed(x))
            return self.fc(y[:, -1] if self.batch_first else y[-1])

    class PerStep(nn.Module):  # LSTM -> Linear on every step
        def __init__(self, **kw):
            super().__init__()
            self.batch_first = kw.get("batch_first", False)
            self.lstm = nn.LSTM(3, 5, **kw)
            self.fc = nn.Linear(10 if kw.get("bidirectional") else 5, 2)

        def forward(self, x):
            return self.fc(self.lstm(x)[0])

    return {"full": Full, "embed_last": EmbedLast, "per_step": PerStep}


def _inputs(torch, kind, bf, L, D, T, B, initial):
    shape = (B, T) if bf else (T, B)
    x = torch.randint(0, 11, shape) if kind == "embed_last" else torch.randn(*shape, 3)
    if not initial:
        return (x,)
    return (x, (torch.randn(L * D, B, 5), torch.randn(L * D, B, 5)))


CONFIGS = [  # num_layers, bidirectional, batch_first, bias
    (1, False, False, True),
    (1, False, True, False),
    (2, True, False, True),
    (2, True, True, False),
    (2, False, True, True),
    (1, True, False, True),
]


def _check(torch, kind, config, initial, dynamic_batch):
    L, bi, bf, bias = config
    D = 2 if bi else 1
    torch.manual_seed(0)
    module = _models(torch)[kind](num_layers=L, bidirectional=bi, batch_first=bf, bias=bias)
    with torch.no_grad():  # random weights and biases in [-0.5, 0.5]
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
    module.eval()
    # T=7, B=3: torch.export would specialise a size it meets elsewhere
    blob = dynamo_export(
        torch, module, _inputs(torch, kind, bf, L, D, 7, 3, initial), dynamic_batch
    )
    graph = onnx.load_from_string(blob)
    ops = {n.op_type for n in graph.graph.node}
    assert "LSTM" in ops and not ops & {"Loop", "Scan"} and not graph.functions
    sess = fastlstm.onnx.InferenceSession(blob)
    assert isinstance(sess.module, fastlstm.LSTM if kind == "full" else fastlstm.Sequential)
    # run with the export's sizes, and with another batch when it is dynamic
    for T, B in [(7, 3)] + ([(7, 5)] if dynamic_batch else []):
        args = _inputs(torch, kind, bf, L, D, T, B, initial)
        with torch.no_grad():
            want = module(*args)
        want = want if isinstance(want, tuple) else (want,)
        arrays = [args[0]] + (list(args[1]) if initial else [])
        feeds = {n: a.numpy() for n, a in zip(sess.input_names, arrays)}
        got = sess.run(None, feeds)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == tuple(w.shape)
            np.testing.assert_allclose(g, w.numpy(), **TOL32)


def _id(c):
    return "L{}-bi{:d}-bf{:d}-bias{:d}".format(*c)


@pytest.mark.parametrize("dynamic_batch", [False, True], ids=["static", "dynamic_batch"])
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_lstm(torch, config, dynamic_batch):
    _check(torch, "full", config, False, dynamic_batch)


@pytest.mark.parametrize("config", CONFIGS[:4], ids=_id)
def test_lstm_with_initial_states(torch, config):
    _check(torch, "full", config, True, False)


@pytest.mark.parametrize("kind", ["embed_last", "per_step"])
@pytest.mark.parametrize("dynamic_batch", [False, True], ids=["static", "dynamic_batch"])
@pytest.mark.parametrize("config", CONFIGS[:4], ids=_id)
def test_lstm_with_heads(torch, kind, config, dynamic_batch):
    if kind == "embed_last" and config[1]:
        # y[-1] of a bidirectional LSTM: the reverse half of the last step is
        # not fastlstm's LastStep (which takes the reverse half at step 0)
        with pytest.raises(ValueError, match=r"node 'node_linear' \(Gemm\): the last step"):
            _check(torch, kind, config, False, dynamic_batch)
        return
    _check(torch, kind, config, False, dynamic_batch)
