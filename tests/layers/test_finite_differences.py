"""Central finite differences on the compiled float64 layer, for every
gradient it returns or accumulates: dx, dh0, dc0 and every parameter.

The loss is a random linear functional of the forward results,
    L = <W_out, output> + <W_h, h_n> + <W_c, c_n>,
so backward(d_output=W_out, d_state=(W_h, W_c)) must return dL/d(inputs) and
accumulate dL/d(parameters) into lstm.grads.  Tiny arrays are checked entry
by entry; bigger ones at a fixed sample of entries including the first and
the last.
"""

import numpy as np
import pytest

from helpers import LayerProblem

EPS = 1e-6
# central differences: O(EPS^2) truncation, O(1e-16 * |L| / EPS) rounding
RTOL, ATOL = 1e-6, 1e-7
MAX_ENTRIES = 10  # per array; arrays up to this size are checked completely

CONFIGS = {
    "single": dict(T=4, B=2, I=3, H=4),
    "L2-bi": dict(T=3, B=2, I=2, H=3, num_layers=2, bidirectional=True),
    "proj": dict(T=4, B=2, I=3, H=5, proj_size=2),
    "L2-bi-proj": dict(T=3, B=2, I=2, H=4, num_layers=2, bidirectional=True, proj_size=3),
    "ragged": dict(T=5, B=3, I=2, H=3, bidirectional=True, lengths=[3, 5, 1]),
    "L2-ragged-proj": dict(T=4, B=3, I=2, H=3, num_layers=2, proj_size=2, lengths=[2, 1, 4]),
    "batch_first": dict(T=4, B=3, I=2, H=3, num_layers=2, batch_first=True),
    "batch_first-bi-ragged-nobias": dict(
        T=4, B=3, I=2, H=3, bidirectional=True, batch_first=True, bias=False, lengths=[4, 2, 3]
    ),
}


def sample_indices(shape, rng):
    """Every flat index of a small array, else first, last and a fixed sample."""
    n = int(np.prod(shape))
    if n <= MAX_ENTRIES:
        flat = np.arange(n)
    else:
        flat = np.unique(
            np.concatenate([[0, n - 1], rng.choice(n, MAX_ENTRIES - 2, replace=False)])
        )
    return [np.unravel_index(k, shape) for k in flat]


class Problem(LayerProblem):
    def __init__(self, rng, T, B, I, H, **config):
        super().__init__(T, B, I, H, **config)
        self.lstm = self.make_lstm(np.float64, seed=rng.integers(1 << 30))
        # larger-than-default weights so the gates are not all near-linear
        self.lstm.load_state_dict(
            {k: rng.uniform(-0.8, 0.8, v.shape) for k, v in self.lstm.state_dict().items()}
        )
        self.x = rng.uniform(-1, 1, self.x_shape)
        self.h0 = rng.uniform(-0.8, 0.8, self.h_shape)
        self.c0 = rng.uniform(-0.8, 0.8, self.c_shape)
        self.w_out = rng.uniform(-1, 1, self.output_shape)
        self.w_h = rng.uniform(-1, 1, self.h_shape)
        self.w_c = rng.uniform(-1, 1, self.c_shape)

    def loss(self, x=None, h0=None, c0=None):
        out, (h_n, c_n) = self.lstm(
            self.x if x is None else x,
            (self.h0 if h0 is None else h0, self.c0 if c0 is None else c0),
            lengths=self.lengths,
        )
        return np.sum(self.w_out * out) + np.sum(self.w_h * h_n) + np.sum(self.w_c * c_n)

    def analytic(self):
        self.lstm.zero_grad()
        _, _, backward = self.lstm.forward_train(self.x, (self.h0, self.c0), lengths=self.lengths)
        dx, (dh0, dc0) = backward(self.w_out, (self.w_h, self.w_c))
        return dict(x=dx, h0=dh0, c0=dc0), {k: v.copy() for k, v in self.lstm.grads.items()}


def assert_fd(name, analytic, numeric):
    err = abs(analytic - numeric)
    assert err <= ATOL + RTOL * abs(numeric), (
        f"{name}: analytic {analytic!r} vs central difference {numeric!r}"
    )


@pytest.mark.parametrize("config", list(CONFIGS))
def test_input_gradients(rng, config):
    prob = Problem(rng, **CONFIGS[config])
    grads, _ = prob.analytic()
    for arg in ("x", "h0", "c0"):
        base = getattr(prob, arg)
        assert grads[arg].shape == base.shape
        for idx in sample_indices(base.shape, rng):
            plus, minus = base.copy(), base.copy()
            plus[idx] += EPS
            minus[idx] -= EPS
            numeric = (prob.loss(**{arg: plus}) - prob.loss(**{arg: minus})) / (2 * EPS)
            assert_fd(f"d{arg}{tuple(int(i) for i in idx)}", grads[arg][idx], numeric)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_parameter_gradients(rng, config):
    prob = Problem(rng, **CONFIGS[config])
    _, param_grads = prob.analytic()
    state = prob.lstm.state_dict()
    assert set(param_grads) == set(state)
    for name, value in state.items():
        assert param_grads[name].shape == value.shape
        for idx in sample_indices(value.shape, rng):
            losses = []
            for step in (EPS, -EPS):
                moved = dict(state)
                moved[name] = value.copy()
                moved[name][idx] += step
                prob.lstm.load_state_dict(moved)
                losses.append(prob.loss())
            numeric = (losses[0] - losses[1]) / (2 * EPS)
            assert_fd(f"grads[{name}]{tuple(int(i) for i in idx)}", param_grads[name][idx], numeric)
        prob.lstm.load_state_dict(state)


def test_padded_inputs_have_zero_gradient(rng):
    """x at padded steps does not influence anything: dx there is exactly 0
    (the finite difference is exactly 0 too)."""
    prob = Problem(rng, **CONFIGS["ragged"])
    grads, _ = prob.analytic()
    for b, n in enumerate(prob.lengths):
        assert np.all(grads["x"][n:, b] == 0)
        x = prob.x.copy()
        x[n:, b] += 1.0
        assert prob.loss(x=x) == prob.loss()
