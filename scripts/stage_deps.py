"""Each DVC stage's code deps, computed from the imports of the command it runs, written into dvc.yaml.

    python scripts/stage_deps.py          # exit 1 and show the lines that differ when dvc.yaml is out of date
    python scripts/stage_deps.py --write  # rewrite the code deps in place (data deps and comments are kept)

`abaw <command>` runs stages/<command>.py; its code is that module's import closure under pipeline_lib/ and
stages/ (every import statement, those inside functions too, plus each package __init__ that holds more than
a docstring). A folder whose every module is in the closure is listed as the folder (it also covers the data
files beside the code, such as the demo generator's assets); other modules are listed one by one. So editing a
file re-runs exactly the stages that run it: nothing upstream, nothing missed. tests/test_structure.py fails
when dvc.yaml differs from what this writes.
"""

from __future__ import annotations

import ast
import difflib
import sys
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline_lib", "stages")
DVC_YAML = ROOT / "dvc.yaml"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """{dotted name: file} of every module of the project's packages."""
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


@cache
def imports_of(name: str) -> frozenset[str]:
    """The project modules `name` imports anywhere in its body (a name imported from a package resolves to the
    submodule when there is one)."""
    path, known = modules()[name], modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(m for m in found if m in known)


@cache
def trivial(path: Path) -> bool:
    """A package __init__ holding nothing but its docstring: importing it runs no code."""
    if path.name != "__init__.py":
        return False
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def closure(entry: str) -> set[Path]:
    """Every file (relative to the repository) that running module `entry` may execute."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imports_of(name))
        parts = name.split(".")
        todo.extend(p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p in modules())
    return {modules()[n].relative_to(ROOT) for n in seen if not trivial(modules()[n])}


def _code_in(folder: Path) -> set[Path]:
    return {p.relative_to(ROOT) for p in (ROOT / folder).rglob("*.py") if not trivial(p)}


def compress(files: set[Path]) -> list[str]:
    """The files as dvc.yaml deps: a folder when the closure holds every module under it (largest first)."""
    deps: list[str] = []
    left = set(files)
    folders = sorted({parent for f in files for parent in f.parents if parent.parts and parent.parts[0] in PACKAGES
                      and len(parent.parts) > 1}, key=lambda p: (len(p.parts), str(p)))
    for folder in folders:
        code = _code_in(folder)
        if code and code <= files and code & left:
            deps.append(str(folder))
            left -= code
    return sorted(deps + [str(f) for f in left])


def stages() -> dict[str, dict]:
    """dvc.yaml's stages, a foreach stage by its `do` body."""
    raw = yaml.safe_load(DVC_YAML.read_text(encoding="utf-8"))["stages"]
    return {name: stage.get("do", stage) for name, stage in raw.items()}


def command_module(stage: dict) -> str:
    """`abaw <command> ...` runs stages/<command>.py (stages/cli.py only routes to it)."""
    words = stage["cmd"].split()
    if words[0] != "abaw":
        raise ValueError(f"not an abaw command: {stage['cmd']!r}")
    return f"stages.{words[1]}"


def code_deps(stage: dict) -> list[str]:
    return compress(closure(command_module(stage)))


def _is_code_dep(line: str) -> bool:
    item = line.strip().removeprefix("- ").strip()
    return line.strip().startswith("- ") and item.split("/")[0] in PACKAGES


def render(text: str) -> str:
    """dvc.yaml's text with every stage's code deps replaced by the computed ones (after its data deps)."""
    computed = {name: code_deps(stage) for name, stage in stages().items()}
    out: list[str] = []
    lines = text.splitlines()
    stage_name, i = None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("  ") and not line.startswith("   ") and line.rstrip().endswith(":"):
            stage_name = line.strip()[:-1]
        if line.strip() == "deps:" and stage_name in computed:
            out.append(line)
            indent = line[: len(line) - len(line.lstrip())]
            i += 1
            block: list[str] = []
            while i < len(lines) and (lines[i].startswith(indent + "- ") or lines[i].startswith(indent + "#")):
                block.append(lines[i])
                i += 1
            trailing: list[str] = []  # comments after the last entry belong to what follows (params:)
            while block and block[-1].lstrip().startswith("#"):
                trailing.insert(0, block.pop())
            out.extend(entry for entry in block if not _is_code_dep(entry) and "# code:" not in entry)
            out.append(f"{indent}# code: the stage's import closure, written by scripts/stage_deps.py")
            out.extend(f"{indent}- {dep}" for dep in computed[stage_name])
            out.extend(trailing)
            continue
        out.append(line)
        i += 1
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    current = DVC_YAML.read_text(encoding="utf-8")
    wanted = render(current)
    if "--write" in argv:
        DVC_YAML.write_text(wanted, encoding="utf-8")
        return 0
    if wanted != current:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                                   "dvc.yaml", "dvc.yaml (computed)"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
