"""Optimizers, gradient clipping and learning-rate schedules (the public
face of fastlstm.train.optim and fastlstm.train.lr_scheduler)::

    opt = fastlstm.optim.Adam([lstm, head], lr=2e-3)
    sched = fastlstm.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)
"""

from ..train.lr_scheduler import CosineAnnealingLR, LRScheduler, ReduceLROnPlateau, StepLR

# every public name of train.optim, with its __all__ (imported as itself so
# that type checkers count those names as exported here too)
from ..train.optim import *  # noqa: F403
from ..train.optim import __all__ as __all__
from . import lr_scheduler

__all__ = [
    *__all__,
    "lr_scheduler",
    "LRScheduler",
    "StepLR",
    "CosineAnnealingLR",
    "ReduceLROnPlateau",
]
