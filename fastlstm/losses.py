"""Loss functions returning (loss, gradient) (see fastlstm.train.losses)."""

from .train.losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss

__all__ = ["mse_loss", "cross_entropy", "binary_cross_entropy_with_logits"]
