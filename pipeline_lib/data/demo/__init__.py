"""The embedded demo corpus: real face photos animated by action-unit warps.

`generate_corpus` writes a small corpus in the official Aff-Wild2 layout (plus a
`demo_truth/` side folder and `corpus_card.md`); `generate_clip` renders one
standalone labelled clip. See DESIGN.md section 6 and docs/architecture.md.
The entry points are imported lazily so that importing a submodule stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClipTruth", "CorpusSummary", "generate_clip", "generate_corpus"]

_HOMES = {
    "CorpusSummary": "pipeline_lib.data.demo.summary",
    "generate_corpus": "pipeline_lib.data.demo.generate",
    "ClipTruth": "pipeline_lib.data.demo.clip",
    "generate_clip": "pipeline_lib.data.demo.clip",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
