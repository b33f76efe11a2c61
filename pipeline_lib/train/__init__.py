"""Training: the MAE pretraining loop (and, later, losses, sampling, pseudo-labels, curriculum)."""
