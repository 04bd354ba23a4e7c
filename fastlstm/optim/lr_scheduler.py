"""Learning-rate schedules, as torch.optim.lr_scheduler (see
fastlstm.train.lr_scheduler)."""

from ..train.lr_scheduler import CosineAnnealingLR, LRScheduler, ReduceLROnPlateau, StepLR

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "ReduceLROnPlateau"]
