"""fastlstm.optim.lr_scheduler against torch.optim.lr_scheduler: the same
learning rates, epoch after epoch (exactly: the same recurrences)."""

import copy
import math

import numpy as np
import pytest

import fastlstm
from fastlstm.optim import SGD, Adam
from fastlstm.optim.lr_scheduler import CosineAnnealingLR, ReduceLROnPlateau, StepLR

EPOCHS = 120


def _pair():
    return [(np.zeros(3), np.zeros(3))]


def _both(torch, lrs=(0.1,), opt="SGD"):
    """Our optimizer and torch's, with one group per lr."""
    ours = getattr(fastlstm.optim, opt)([{"params": _pair(), "lr": lr} for lr in lrs])
    tparams = [torch.zeros(3, requires_grad=True) for _ in lrs]
    theirs = getattr(torch.optim, opt)([{"params": [p], "lr": lr} for p, lr in zip(tparams, lrs)])
    return ours, theirs


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


@pytest.mark.parametrize(
    "cls,kw",
    [
        (StepLR, dict(step_size=1)),
        (StepLR, dict(step_size=7, gamma=0.5)),
        (StepLR, dict(step_size=30)),
        (CosineAnnealingLR, dict(T_max=10)),
        (CosineAnnealingLR, dict(T_max=17, eta_min=1e-3)),
        (CosineAnnealingLR, dict(T_max=1, eta_min=0.01)),
    ],
    ids=str,
)
def test_epoch_schedules_match_torch(torch, cls, kw):
    opt, topt = _both(torch, lrs=(0.1, 0.037), opt="Adam")
    sched = cls(opt, **kw)
    tsched = getattr(torch.optim.lr_scheduler, cls.__name__)(topt, **kw)
    got, want = [_lrs(opt)], [_lrs(topt)]
    for _ in range(EPOCHS):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        got.append(_lrs(opt))
        want.append(_lrs(topt))
        assert sched.get_last_lr() == tsched.get_last_lr()
    assert got == want
    assert len(set(map(tuple, got))) > 1


def test_schedule_state_dict_resumes(torch):
    opt, _ = _both(torch)
    sched = CosineAnnealingLR(opt, T_max=9, eta_min=0.001)
    for _ in range(5):
        sched.step()
    saved = copy.deepcopy(sched.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    rest = []
    for _ in range(20):
        sched.step()
        rest.append(opt.lr)
    opt2, _ = _both(torch)
    opt2.load_state_dict(saved_opt)
    sched2 = CosineAnnealingLR(opt2, T_max=9, eta_min=0.001)
    sched2.load_state_dict(saved)
    opt2.lr = saved_opt["param_groups"][0]["lr"]
    again = []
    for _ in range(20):
        sched2.step()
        again.append(opt2.lr)
    assert again == rest


# a scripted validation loss: improving, plateaus, small and large
# improvements around the threshold, noise
METRIC = (
    [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.79995, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    + [0.6999, 0.69, 0.69, 0.69, 0.69, 0.69, 0.69, 0.69, 0.69, 0.5, 0.5, 0.5, 0.5]
    + list(0.5 + 0.01 * np.sin(np.arange(40)))
    + [0.1] * 30
)

PLATEAU = [
    dict(),
    dict(patience=2),
    dict(patience=0, factor=0.5),
    dict(patience=1, cooldown=3),
    dict(patience=2, threshold=0.01, threshold_mode="abs"),
    dict(patience=1, threshold=0.0),
    dict(patience=1, min_lr=0.004),
    dict(patience=1, min_lr=[0.02, 0.0], factor=0.3),
    dict(mode="max", patience=2),
    dict(mode="max", patience=1, threshold_mode="abs", threshold=0.05, cooldown=1),
    dict(patience=0, factor=0.9, eps=1e-3),
]


@pytest.mark.parametrize("kw", PLATEAU, ids=str)
def test_reduce_on_plateau_matches_torch(torch, kw):
    opt, topt = _both(torch, lrs=(0.1, 0.05))
    sched = ReduceLROnPlateau(opt, **kw)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    got, want = [], []
    for metric in METRIC:
        opt.step()
        topt.step()
        sched.step(metric)
        tsched.step(metric)
        got.append(_lrs(opt))
        want.append(_lrs(topt))
        assert sched.get_last_lr() == tsched.get_last_lr()
        assert sched.num_bad_epochs == tsched.num_bad_epochs
        assert sched.best == tsched.best
    assert got == want
    assert len(set(map(tuple, got))) > 1


def test_schedules_drive_the_optimizer_updates(rng):
    """The scheduled lr is the one the next step uses."""
    p, g = np.ones(2), np.ones(2)
    opt = SGD([(p, g)], lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    for k in range(4):
        before = p.copy()
        opt.step()
        np.testing.assert_array_equal(before - p, 0.5**k)
        sched.step()


@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda o: StepLR(o, step_size=0), ValueError, "step_size"),
        (lambda o: CosineAnnealingLR(o, T_max=0), ValueError, "T_max"),
        (lambda o: ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
        (lambda o: ReduceLROnPlateau(o, mode="up"), ValueError, "mode"),
        (lambda o: ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold_mode"),
        (lambda o: ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), ValueError, "min_lr"),
        (lambda o: ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
        (lambda o: StepLR(object(), step_size=3), TypeError, "optimizer"),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make(Adam(_pair()))


def test_cosine_reaches_eta_min_at_t_max():
    opt = SGD(_pair(), lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=8, eta_min=0.01)
    for _ in range(8):
        sched.step()
    assert opt.lr == pytest.approx(0.01, abs=1e-15)
    assert math.isclose(sched.base_lrs[0], 0.1)
