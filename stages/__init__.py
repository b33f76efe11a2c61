"""Thin typer apps, one per pipeline stage: parse options, load settings, call the library."""
