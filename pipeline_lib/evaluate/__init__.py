"""Evaluation of every model: official metrics, challenge submissions and plots."""
