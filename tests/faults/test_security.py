"""Security basics over the whole code base, read from its source: checkpoints only through the weights-only
loader, YAML only through safe loaders, no eval/exec and no pickle of user data. (The faults tests show the
same at work: a checkpoint carrying code is refused, a `!!python` tag is refused, unsafe names stop the import.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "pipeline_lib").rglob("*.py"), *(ROOT / "stages").rglob("*.py")])
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "_UniqueKeyLoader"}

FORBIDDEN = {
    r"(?<![\w.])eval\(": "eval",
    r"(?<![\w.])exec\(": "exec",
    r"\b(c?pickle|marshal|dill|joblib)\.loads?\(": "unpickling",
    r"\bshelve\.open\(": "shelve",
    r"\byaml\.(unsafe_load|full_load|load_all|unsafe_load_all)\(": "an unsafe YAML loader",
    r"\b(Unsafe|Full)Loader\b|Loader=yaml\.Loader\b": "an unsafe YAML loader",
    r"allow_pickle\s*=\s*True": "numpy unpickling",
}


def _calls(text: str, name: str) -> list[str]:
    """The argument text of every call to `name(...)`, up to its matching parenthesis."""
    found = []
    for match in re.finditer(re.escape(name) + r"\(", text):
        depth, end = 1, match.end()
        while depth and end < len(text):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        found.append(text[match.end():end - 1])
    return found


def _unsafe(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = [what for pattern, what in FORBIDDEN.items() if re.search(pattern, text)]
    found += [f"torch.load({a})" for a in _calls(text, "torch.load") if "weights_only=True" not in a]
    for arguments in _calls(text, "yaml.load"):
        loader = re.search(r"Loader=(?:yaml\.)?(\w+)", arguments)
        if not (loader and loader.group(1) in SAFE_YAML_LOADERS):
            found.append(f"yaml.load({arguments})")
    return [f"{path.relative_to(ROOT)}: {what}" for what in found]


def test_no_unsafe_deserialisation_anywhere():
    assert len(SOURCES) > 50 and [problem for path in SOURCES for problem in _unsafe(path)] == []


def test_the_params_loader_is_a_safe_loader():
    from pipeline_lib.config import _UniqueKeyLoader

    assert issubclass(_UniqueKeyLoader, yaml.SafeLoader)
