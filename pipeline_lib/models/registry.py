"""A name -> item table filled by a decorator, as timm registers its models.

The MAE sizes, the temporal encoders and the feature extractors are each one
`Registry`: interchangeable by name from params.yaml or a checkpoint, listed
by wildcard, and an unknown name fails with the known ones in the message.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(dict[str, T]):
    """A dict of registered items whose `kind` ("MAE config", "temporal encoder", ...) names them in errors."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator storing its argument under `name`; a name is registered once."""
        def add(item: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = item
            return item
        return add

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        return sorted(fnmatch.filter(self, pattern))

    def lookup(self, name: str) -> T:
        """The item under `name`; an unknown name raises ValueError listing the known ones."""
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self[name]
