"""Training: optimizers and gradient clipping over numpy parameter arrays
(losses, schedules and fit/evaluate/predict are to come here)."""
