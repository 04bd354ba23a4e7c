"""Training over numpy parameter arrays: optimizers and gradient clipping
(optim), learning-rate schedules (lr_scheduler) and loss functions
(losses), public as fastlstm.optim and fastlstm.losses."""
