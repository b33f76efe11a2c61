"""params.yaml states the code's defaults, no more and no less: one source of truth for every default."""

from pathlib import Path

import yaml

from pipeline_lib.config import Params, load_params

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def _keys(tree: object, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return {prefix}
    return set().union(*(_keys(value, f"{prefix}{key}.") for key, value in tree.items())) if tree else {prefix}


def test_params_yaml_equals_the_code_defaults() -> None:
    assert load_params(PARAMS) == Params()


def test_params_yaml_states_every_default_but_the_inherited_nulls() -> None:
    """Every key of the settings appears in params.yaml; a per-task temporal key may be left out (null
    inherits temporal.common, and listing all of them would hide which ones a task overrides)."""
    written = _keys(yaml.safe_load(PARAMS.read_text(encoding="utf-8")))
    defaults = Params().model_dump(mode="json")
    missing = {key for key in _keys(defaults) - written
               if not (key.startswith("temporal.") and key.split(".")[1] != "common"
                       and _lookup(defaults, key) is None)}
    assert not missing, f"params.yaml leaves out these defaults (state them there): {sorted(missing)}"
    assert not written - _keys(defaults), "params.yaml holds keys the settings do not know"


def _lookup(tree: dict, dotted: str) -> object:
    for part in dotted.strip(".").split("."):
        tree = tree[part]
    return tree
