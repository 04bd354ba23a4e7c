"""Callbacks for ``Sequential.fit`` (public as fastlstm.callbacks), and the
History that ``fit`` returns.

A callback subclasses :class:`Callback` and overrides any of
``on_train_begin()``, ``on_epoch_begin(epoch)``, ``on_epoch_end(epoch,
logs)`` and ``on_train_end()``; ``self.model`` is the model being trained,
and setting ``self.model.stop_training = True`` ends training after the
epoch.  ``logs`` holds the epoch's "loss", the metrics and their "val_"
counterparts.
"""

import math
import os

import numpy as np

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler"]


class History(dict):
    """{"loss": [...], "val_loss": [...], metric: [...]}: one entry per
    epoch run.  ``history.epoch`` lists the epochs' indices and
    ``history.history`` is the dict itself (as Keras has it)."""

    def __init__(self):
        super().__init__()
        self.epoch = []

    @property
    def history(self):
        return self

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.setdefault(k, []).append(v)


class Callback:
    """Base class: every hook does nothing."""

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self):
        pass

    def on_epoch_begin(self, epoch):
        pass

    def on_epoch_end(self, epoch, logs):
        pass

    def on_train_end(self):
        pass


def _mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if monitor.endswith("accuracy") else "min"
    return mode


def _read(logs, monitor, who):
    if monitor not in logs:
        raise KeyError(f"{who}: monitor {monitor!r} is not among the logs {sorted(logs)}")
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs in a row (Keras' rule: after the best epoch, at most
    ``patience`` more are run).  With ``restore_best_weights``, the model ends
    training (stopped or not) with the parameters of its best epoch."""

    def __init__(
        self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto", restore_best_weights=False
    ):
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = abs(float(min_delta))
        self.mode = _mode(monitor, mode)
        self.restore_best_weights = bool(restore_best_weights)

    def on_train_begin(self):
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.best_weights = None
        self.stopped_epoch = None

    def _better(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs):
        value = _read(logs, self.monitor, "EarlyStopping")
        if self._better(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: np.array(v) for k, v in self.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model with fastlstm.save after every epoch, or with
    ``save_best_only`` only when ``monitor`` improved.  ``path`` may hold
    ``{epoch}`` (1-based) and the logs' names, formatted per epoch."""

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        self.path = os.fspath(path)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = _mode(monitor, mode)

    def on_train_begin(self):
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs):
        from ..io import save

        if self.save_best_only:
            value = _read(logs, self.monitor, "ModelCheckpoint")
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        save(self.path.format(epoch=epoch + 1, **logs), self.model)


class LearningRateScheduler(Callback):
    """Set the learning rate every epoch: ``schedule(epoch, lr) -> lr``
    called before the epoch (Keras' convention), or a fastlstm.optim
    lr_scheduler built on the model's optimizer, stepped after the epoch
    (ReduceLROnPlateau with ``logs[monitor]``, falling back to "loss")."""

    def __init__(self, schedule, monitor="val_loss"):
        if not callable(schedule) and not hasattr(schedule, "step"):
            raise TypeError("schedule: expected a function (epoch, lr) -> lr or an lr_scheduler")
        self.schedule = schedule
        self.monitor = monitor

    def _scheduler(self):
        return hasattr(self.schedule, "step") and hasattr(self.schedule, "optimizer")

    def on_train_begin(self):
        if self._scheduler() and self.schedule.optimizer is not self.model.optimizer:
            raise ValueError(
                "LearningRateScheduler: the lr_scheduler drives another optimizer than the "
                "model's (build it on model.optimizer)"
            )

    def on_epoch_begin(self, epoch):
        if not self._scheduler():
            opt = self.model.optimizer
            opt.lr = float(self.schedule(epoch, opt.lr))

    def on_epoch_end(self, epoch, logs):
        if not self._scheduler():
            return
        from .lr_scheduler import ReduceLROnPlateau

        if isinstance(self.schedule, ReduceLROnPlateau):
            key = self.monitor if self.monitor in logs else "loss"
            self.schedule.step(float(logs[key]))
        else:
            self.schedule.step()
