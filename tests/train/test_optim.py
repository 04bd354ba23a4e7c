"""fastlstm.optim against torch.optim / torch.nn.utils on the same
parameters and gradients."""

import copy

import numpy as np
import pytest

import fastlstm
from fastlstm.optim import (
    SGD,
    Adam,
    AdamW,
    RMSprop,
    clip_grad_norm_,
    clip_grad_value_,
    parameter_pairs,
)

SHAPES = [(4, 3), (5,), (2, 3, 2), (1,)]
# float32: both sides round each operation to float32, in nearly the same order
TOL = {np.float32: dict(rtol=2e-6, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-14)}
STEPS = 12

VARIANTS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict()),  # the defaults
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.02, weight_decay=0.1)),
    ("Adam", dict(lr=0.02, amsgrad=True)),
    ("Adam", dict(lr=0.02, amsgrad=True, weight_decay=0.05, betas=(0.5, 0.9))),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.03, weight_decay=0.2)),
    ("AdamW", dict(lr=0.03, weight_decay=0.2, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.005, centered=True, momentum=0.5, weight_decay=0.1)),
]


def _ours(name):
    return getattr(fastlstm.optim, name)


def _step_both(torch, rng, grads, tparams, opt, topt):
    """The same random gradients into both sides, then one step of each."""
    for g, t in zip(grads, tparams):
        g[...] = rng.standard_normal(g.shape)
        t.grad = torch.from_numpy(g.copy())
    opt.step()
    topt.step()


def _run_both(torch, rng, name, kw, dtype, steps=STEPS, mk=None):
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [np.zeros_like(p) for p in params]
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    opt = (mk or _ours(name))(list(zip(params, grads)), **kw)
    topt = getattr(torch.optim, name)(tparams, **kw)
    for _ in range(steps):
        _step_both(torch, rng, grads, tparams, opt, topt)
    return params, tparams, opt, topt


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", VARIANTS, ids=[f"{n}-{kw}" for n, kw in VARIANTS])
def test_optimizer_matches_torch(torch, rng, name, kw, dtype):
    params, tparams, _, _ = _run_both(torch, rng, name, kw, dtype)
    for p, t in zip(params, tparams):
        assert p.dtype == dtype
        np.testing.assert_allclose(p, t.detach().numpy(), **TOL[dtype])


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_defaults_are_torchs(torch, name):
    import inspect

    ours = inspect.signature(_ours(name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    for arg, p in ours.items():
        if arg == "params":
            continue
        assert arg in theirs, arg
        assert p.default == theirs[arg].default, (arg, p.default, theirs[arg].default)


def test_lr_change_between_steps_follows_torch(torch, rng):
    params = [rng.standard_normal(s) for s in SHAPES]
    grads = [np.zeros_like(p) for p in params]
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    opt = Adam(list(zip(params, grads)), lr=0.1)
    topt = torch.optim.Adam(tparams, lr=0.1)
    for k in range(6):
        _step_both(torch, rng, grads, tparams, opt, topt)
        opt.lr = 0.1 / (k + 2)
        topt.param_groups[0]["lr"] = 0.1 / (k + 2)
    assert opt.param_groups[0]["lr"] == opt.lr == 0.1 / 7
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p, t.detach().numpy(), **TOL[np.float64])


def test_param_groups_with_their_own_hyperparameters(torch, rng):
    params = [rng.standard_normal(s) for s in SHAPES]
    grads = [np.zeros_like(p) for p in params]
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    pairs = list(zip(params, grads))
    opt = SGD([{"params": pairs[:2]}, {"params": pairs[2:], "lr": 0.5}], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(
        [{"params": tparams[:2]}, {"params": tparams[2:], "lr": 0.5}], lr=0.1, momentum=0.9
    )
    for _ in range(4):
        _step_both(torch, rng, grads, tparams, opt, topt)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p, t.detach().numpy(), **TOL[np.float64])


@pytest.mark.parametrize(
    "name,kw",
    [
        ("Adam", dict(lr=0.01, amsgrad=True)),
        ("SGD", dict(lr=0.1, momentum=0.9)),
        ("RMSprop", dict(centered=True, momentum=0.3)),
    ],
)
def test_state_dict_resumes_training_exactly(rng, name, kw):
    """Stop after 5 steps, save, restore into a new optimizer over copies of
    the parameters: the next 5 steps are bitwise those of an uninterrupted run."""
    params = [rng.standard_normal(s) for s in SHAPES]
    grads = [np.zeros_like(p) for p in params]
    gsteps = [[rng.standard_normal(s) for s in SHAPES] for _ in range(10)]
    opt = _ours(name)(list(zip(params, grads)), **kw)

    def run(opt, grads, steps):
        for gs in steps:
            for g, v in zip(grads, gs):
                g[...] = v
            opt.step()

    run(opt, grads, gsteps[:5])
    saved = copy.deepcopy(opt.state_dict())
    params2 = [p.copy() for p in params]
    grads2 = [np.zeros_like(p) for p in params]
    run(opt, grads, gsteps[5:])

    opt2 = _ours(name)(list(zip(params2, grads2)), lr=123.0)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == kw.get("lr", opt.defaults["lr"])
    run(opt2, grads2, gsteps[5:])
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p, q)


def test_state_dict_is_a_copy_and_load_checks_shapes(rng):
    lstm = fastlstm.LSTM(3, 4, seed=0)
    opt = Adam([lstm], lr=0.1)
    lstm.grads["weight_ih_l0"][...] = 1.0
    opt.step()
    sd = opt.state_dict()
    assert sd["state"][0]["step"] == 1
    sd["state"][0]["exp_avg"][...] = 7.0
    assert not np.any(opt.state[0]["exp_avg"] == 7.0)
    other = Adam([fastlstm.LSTM(3, 5, seed=0)])
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="parameters"):
        Adam([fastlstm.LSTM(3, 4, num_layers=2)]).load_state_dict(opt.state_dict())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_over_layers_uses_the_layers_grads(torch, rng, dtype):
    lstm = fastlstm.LSTM(3, 4, num_layers=2, dtype=dtype, seed=1)
    cell = fastlstm.LSTMCell(2, 3, dtype=dtype, seed=2)
    named = lstm.named_parameters() + cell.named_parameters()
    tparams = [torch.tensor(p.copy(), requires_grad=True) for _, p in named]
    opt = AdamW([lstm, cell], lr=0.01)
    topt = torch.optim.AdamW(tparams, lr=0.01)
    for _ in range(3):
        lstm.zero_grad()
        cell.zero_grad()
        grads = list(lstm.grads.values()) + list(cell.grads.values())
        for g, t in zip(grads, tparams):
            g += rng.standard_normal(g.shape).astype(dtype)
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    for (name, p), t in zip(lstm.named_parameters() + cell.named_parameters(), tparams):
        assert p.dtype == dtype
        np.testing.assert_allclose(p, t.detach().numpy(), err_msg=name, **TOL[dtype])
    opt.zero_grad()
    assert all(not g.any() for g in list(lstm.grads.values()) + list(cell.grads.values()))


def test_optimizer_follows_a_layer_whose_arrays_were_replaced(rng):
    lstm = fastlstm.LSTM(2, 3, seed=0)
    opt = SGD([lstm], lr=1.0)
    lstm.load_state_dict({k: np.ones_like(v) for k, v in lstm.state_dict().items()})
    lstm.grads["bias_hh_l0"][...] = 0.25
    opt.step()
    np.testing.assert_array_equal(lstm.bias_hh_l0, np.full(12, 0.75, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stepping_a_real_lstm_changes_its_outputs_as_a_fresh_one(rng, dtype):
    """The packed-weights cache follows the optimizer's in-place updates:
    after each step the trained LSTM computes exactly (bitwise) what a fresh
    LSTM loaded with the stepped weights does."""
    lstm = fastlstm.LSTM(3, 5, num_layers=2, dtype=dtype, seed=3)
    opt = Adam([lstm], lr=0.05)
    x = rng.standard_normal((6, 2, 3)).astype(dtype)
    before, _ = lstm(x)
    for _ in range(3):
        lstm.zero_grad()
        out, _, backward = lstm.forward_train(x)
        backward(2 * out)
        opt.step()
        got, (h, c) = lstm(x)
        fresh = fastlstm.LSTM(3, 5, num_layers=2, dtype=dtype, seed=99)
        fresh.load_state_dict(lstm.state_dict())
        want, (h2, c2) = fresh(x)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(h, h2)
        np.testing.assert_array_equal(c, c2)
    assert not np.array_equal(before, got)
    assert float((got**2).sum()) < float((before**2).sum())


def test_updates_allocate_no_parameter_sized_arrays_per_step(rng):
    """After the first step, steps reuse the state and scratch arrays."""
    params = [rng.standard_normal((50, 40))]
    grads = [rng.standard_normal((50, 40))]
    opt = Adam(list(zip(params, grads)), weight_decay=0.1, amsgrad=True)
    opt.step()
    ids = {k: id(v) for k, v in opt.state[0].items() if isinstance(v, np.ndarray)}
    scratch = {k: id(a) for k, a in opt._scratch.items()}
    opt.step()
    assert ids == {k: id(v) for k, v in opt.state[0].items() if isinstance(v, np.ndarray)}
    assert scratch == {k: id(a) for k, a in opt._scratch.items()}


def test_scratch_is_one_buffer_the_size_of_the_largest_parameter(rng):
    """Parameters of several shapes share one scratch buffer per use (not one
    per shape): it adds one parameter's worth to a training step's memory.
    The updates through it equal those of optimizers stepping each
    parameter alone."""
    shapes = [(7,), (30, 20), (3, 5), (40, 40), (2,)]
    params = [rng.standard_normal(s) for s in shapes]
    grads = [rng.standard_normal(s) for s in shapes]
    alone = [(p.copy(), g) for p, g in zip(params, grads)]
    opt = Adam(list(zip(params, grads)), lr=0.1)
    singles = [Adam([pg], lr=0.1) for pg in alone]
    for _ in range(3):
        opt.step()
        for o in singles:
            o.step()
    for p, (q, _) in zip(params, alone):
        np.testing.assert_array_equal(p, q)
    assert [a.size for a in opt._scratch.values()] == [40 * 40]


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda ps: SGD(ps, lr=-0.1), "learning rate"),
        (lambda ps: SGD(ps, momentum=-0.5), "momentum"),
        (lambda ps: SGD(ps, weight_decay=-1.0), "weight_decay"),
        (lambda ps: SGD(ps, nesterov=True), "Nesterov"),
        (lambda ps: SGD(ps, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
        (lambda ps: Adam(ps, lr=-1e-3), "learning rate"),
        (lambda ps: Adam(ps, betas=(1.0, 0.999)), "beta parameter at index 0"),
        (lambda ps: Adam(ps, betas=(0.9, -0.1)), "beta parameter at index 1"),
        (lambda ps: Adam(ps, betas=(0.9,)), "betas"),
        (lambda ps: Adam(ps, eps=-1e-8), "epsilon"),
        (lambda ps: Adam(ps, weight_decay=-0.1), "weight_decay"),
        (lambda ps: AdamW(ps, betas=(0.9, 1.5)), "beta parameter at index 1"),
        (lambda ps: RMSprop(ps, alpha=-0.9), "alpha"),
        (lambda ps: RMSprop(ps, eps=-1.0), "epsilon"),
        (lambda ps: RMSprop(ps, momentum=-1.0), "momentum"),
        (lambda ps: RMSprop(ps, lr=-0.01), "learning rate"),
        (lambda ps: SGD([], lr=0.1), "empty"),
        (lambda ps: SGD([{"params": ps, "lrr": 0.1}]), "lrr"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(make, match):
    ps = [(np.zeros(3), np.zeros(3))]
    with pytest.raises(ValueError, match=match):
        make(ps)


def test_bad_parameters_raise_type_or_value_error():
    with pytest.raises(TypeError, match=r"params.*\[0\]"):
        SGD(["weight"])
    with pytest.raises(TypeError, match="float32 or float64"):
        SGD([(np.zeros(3, np.int64), np.zeros(3, np.int64))])
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        SGD([(np.zeros(3), np.zeros(4))])
    opt = SGD([(np.zeros(3), np.zeros(3))])
    with pytest.raises(ValueError, match="learning rate"):
        opt.lr = -1.0


def test_parameter_pairs_are_the_live_arrays():
    lstm = fastlstm.LSTM(3, 4, seed=0)
    pairs = parameter_pairs(lstm)
    assert [p is q for (p, _), (_, q) in zip(pairs, lstm.named_parameters())] == [True] * 4
    assert all(g is lstm.grads[n] for (_, g), (n, _) in zip(pairs, lstm.named_parameters()))


def _grads_and_torch(torch, rng, dtype, scale=3.0):
    grads = [(rng.standard_normal(s) * scale).astype(dtype) for s in SHAPES]
    tparams = [torch.zeros(s, dtype=torch.from_numpy(grads[0]).dtype) for s in SHAPES]
    for p, g in zip(tparams, grads):
        p.requires_grad_(True)
        p.grad = torch.from_numpy(g.copy())
    return grads, tparams


def test_clip_grad_value_matches_torch(torch, rng):
    grads, tparams = _grads_and_torch(torch, rng, np.float64)
    clip_grad_value_(grads, 1.5)
    torch.nn.utils.clip_grad_value_(tparams, 1.5)
    for g, p in zip(grads, tparams):
        np.testing.assert_array_equal(g, p.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(torch, rng, dtype, norm_type, max_norm):
    grads, tparams = _grads_and_torch(torch, rng, dtype)
    total = clip_grad_norm_([(np.zeros_like(g), g) for g in grads], max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(total, float(ttotal), **tol)
    for g, p in zip(grads, tparams):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, p.grad.numpy(), **tol)
    if max_norm < total:
        clipped = clip_grad_norm_(grads, max_norm, norm_type)
        assert clipped == pytest.approx(max_norm, rel=1e-5)


def test_clipping_a_layer_clips_its_grads(rng):
    lstm = fastlstm.LSTM(2, 3, dtype=np.float64, seed=0)
    for g in lstm.grads.values():
        g[...] = rng.standard_normal(g.shape)
    total = clip_grad_norm_([lstm], 1.0)
    assert total > 1.0
    after = np.sqrt(sum(float((g**2).sum()) for g in lstm.grads.values()))
    assert after == pytest.approx(1.0, rel=1e-5)
    clip_grad_value_([lstm], 0.01)
    assert max(float(np.abs(g).max()) for g in lstm.grads.values()) <= 0.01
    with pytest.raises(TypeError, match="parameters"):
        clip_grad_norm_(["x"], 1.0)
