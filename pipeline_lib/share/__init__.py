"""Sharing caches with a team through a DVC remote: remote checks with one-line errors, push and pull."""
