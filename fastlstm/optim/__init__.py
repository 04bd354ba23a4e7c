"""Optimizers, gradient clipping and learning-rate schedules (the public
face of fastlstm.train.optim and fastlstm.train.lr_scheduler)::

    opt = fastlstm.optim.Adam([lstm, head], lr=2e-3)
    sched = fastlstm.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)
"""

from ..train.lr_scheduler import CosineAnnealingLR, LRScheduler, ReduceLROnPlateau, StepLR
from ..train.optim import (
    SGD,
    Adam,
    AdamW,
    Optimizer,
    RMSprop,
    clip_grad_norm_,
    clip_grad_value_,
    parameter_pairs,
)
from . import lr_scheduler

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Optimizer",
    "clip_grad_norm_",
    "clip_grad_value_",
    "parameter_pairs",
    "lr_scheduler",
    "LRScheduler",
    "StepLR",
    "CosineAnnealingLR",
    "ReduceLROnPlateau",
]
