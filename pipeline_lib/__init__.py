"""ABAW affect-recognition pipeline library: pure, typed, testable without the CLI."""

__version__ = "0.1.0"
