"""params.yaml validation: the real file parses; typos and bad values fail with the key's name."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pipeline_lib.config import (
    DEVICE_SECTIONS,
    ConfigError,
    DemoCorpusSettings,
    FacesSettings,
    FeaturesSettings,
    FinetuneSettings,
    Params,
    PretrainSettings,
    TemporalCommon,
    cuda_available,
    load_params,
    parse_params,
)

ROOT = Path(__file__).resolve().parents[1]


def test_project_params_yaml_is_valid():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.data.source == "demo"
    assert params.window == 32
    assert params.seed == 0


def test_params_yaml_spells_out_every_demo_default():
    # The file is the documentation of the knobs: every setting appears there.
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw["data"]["demo"]) == set(DemoCorpusSettings.model_fields)


def test_params_yaml_spells_out_every_faces_default():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw["faces"]) == set(FacesSettings.model_fields)


def test_params_yaml_spells_out_every_pretrain_default():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw["pretrain"]) == set(PretrainSettings.model_fields)
    assert set(raw["finetune"]) == set(FinetuneSettings.model_fields)
    assert set(raw["features"]) == set(FeaturesSettings.model_fields)
    assert raw["finetune"]["device"] is None  # inherited from the top-level `device`
    assert Params().finetune == parse_params(raw).finetune  # the file's values are the code's defaults


def test_every_section_inherits_the_top_level_device_unless_it_names_its_own():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    sections = {".".join(path): path for path in DEVICE_SECTIONS}
    for path in DEVICE_SECTIONS:  # params.yaml leaves every one to the top level
        section = raw
        for part in path:
            section = section[part]
        assert section["device"] is None, path
    params = parse_params({"device": "cpu", "pretrain": {"device": "cpu"}})
    devices = {key: _section(params, path).device for key, path in sections.items()}
    assert devices == dict.fromkeys(sections, "cpu")
    assert set(sections) == {"faces", "pretrain", "finetune", "features", "temporal.common", "fusion", "compound"}
    assert params.temporal.resolve("va", params.window).device == "cpu"


def _section(params: Params, path: tuple[str, ...]) -> Any:
    node: Any = params
    for part in path:
        node = getattr(node, part)
    return node


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
@pytest.mark.parametrize(("raw", "key"), [({"device": "cuda"}, "device"),
                                          ({"fusion": {"device": "cuda"}}, "fusion.device"),
                                          ({"temporal": {"common": {"device": "cuda"}}}, "temporal.common.device")])
def test_cuda_where_there_is_none_is_one_line_naming_the_key(raw, key):
    with pytest.raises(ConfigError) as caught:
        parse_params(raw)
    assert str(caught.value) == (f"params.yaml: '{key}' = 'cuda': torch sees no CUDA device on this machine; "
                                 f"set it to cpu or auto")


def test_auto_takes_cuda_when_present(monkeypatch):
    import pipeline_lib.config as config

    for present, expected in ((True, "cuda"), (False, "cpu")):
        monkeypatch.setattr(config, "cuda_available", lambda present=present: present)
        params = parse_params({"device": "auto", "faces": {"device": "cpu"}, "compound": {"device": "auto"}})
        assert (params.device, params.pretrain.device, params.compound.device, params.faces.device) == (
            expected, expected, expected, "cpu")


def test_an_unknown_device_names_the_choices():
    with pytest.raises(ConfigError, match=r"^params.yaml: 'features.device' = 'gpu': expected cpu, cuda or auto"):
        parse_params({"features": {"device": "gpu"}})


def test_a_null_top_level_device_is_one_line():
    with pytest.raises(ConfigError) as caught:
        parse_params({"device": None})
    assert str(caught.value) == ("params.yaml: 'device' = None: expected cpu, cuda or auto "
                                 "(null is for a section: the top-level one)")


def test_params_yaml_spells_out_every_temporal_default():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw["temporal"]["common"]) == set(TemporalCommon.model_fields)
    assert set(raw["temporal"]) == {"common", "va", "expr", "au"}


def test_task_window_inherits_the_top_level_window_unless_set():
    params = parse_params({"window": 48, "temporal": {"va": {"window": 16, "encoder": "gru"}, "au": {"lr": 0.01}}})
    va = params.temporal.resolve("va", params.window)
    expr = params.temporal.resolve("expr", params.window)
    au = params.temporal.resolve("au", params.window)
    assert (va.window, va.encoder, va.train_stride) == (16, "gru", 8)
    assert (expr.window, expr.encoder, expr.lr, expr.train_stride) == (48, "transformer", 1e-3, 24)
    assert (au.window, au.lr, au.task) == (48, 0.01, "au")
    with pytest.raises(ConfigError, match=r"'temporal\.expr\.encoder' = 'rnn'"):
        parse_params({"temporal": {"expr": {"encoder": "rnn"}}})


def test_unknown_top_level_key_names_key_and_allowed():
    with pytest.raises(ConfigError) as err:
        parse_params({"windw": 64})
    msg = str(err.value)
    assert "unknown key 'windw'" in msg
    assert "did you mean 'window'?" in msg
    allowed = "compound, data, device, evaluate, faces, features, finetune, fusion, pretrain, seed, temporal, window"
    assert f"allowed: {allowed}" in msg
    assert "\n" not in msg


def test_unknown_nested_key_names_dotted_path():
    with pytest.raises(ConfigError, match=r"unknown key 'data\.demo\.train_vidoes' \(did you mean 'train_videos'\?\)"):
        parse_params({"data": {"demo": {"train_vidoes": 3}}})


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"window": 0}, "'window' = 0"),
        ({"seed": -1}, "'seed' = -1"),
        ({"window": "big"}, "'window' = 'big'"),
        ({"data": {"demo": {"fps": 0}}}, "'data.demo.fps' = 0"),
        ({"data": {"demo": {"width": 255}}}, "'data.demo.width' = 255"),
    ],
)
def test_out_of_range_or_wrong_type_names_key(raw, key):
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert key in str(err.value)


def test_cross_field_check():
    with pytest.raises(ConfigError, match="max_seconds .* must be >= min_seconds"):
        parse_params({"data": {"demo": {"min_seconds": 5, "max_seconds": 2}}})


def test_settings_are_frozen():
    params = parse_params({})
    with pytest.raises(ValidationError, match="frozen"):
        params.window = 3  # type: ignore[misc]


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: 0\nwindow: [1, 2\n")
    with pytest.raises(ConfigError, match=r"params\.yaml:\d+: not valid YAML"):
        load_params(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_params(bad)


def test_yaml_tags_are_not_executed(tmp_path):
    evil = tmp_path / "params.yaml"
    evil.write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(evil)


def test_fusion_section_checks_its_widths_and_names():
    with pytest.raises(ConfigError, match=r"fusion.hidden \(10\) must be divisible by fusion.heads \(4\)"):
        parse_params({"fusion": {"fusion": "attention", "hidden": 10, "heads": 4}})
    with pytest.raises(ConfigError, match="'fusion.dependency' = 'feedforward'"):
        parse_params({"fusion": {"dependency": "feedforward"}})
    with pytest.raises(ConfigError, match="unknown key 'fusion.pseudo.enable' \\(did you mean 'enabled'\\?\\)"):
        parse_params({"fusion": {"pseudo": {"enable": False}}})
    assert parse_params({"fusion": {"pseudo": {"enabled": False}}}).fusion.pseudo.enabled is False


def test_compound_and_evaluate_sections_are_spelled_out_and_checked():
    from pipeline_lib.config import CompoundSettings, EvaluateSettings, SyntheticSettings

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw["compound"]) == set(CompoundSettings.model_fields)
    assert set(raw["evaluate"]) == set(EvaluateSettings.model_fields)
    with pytest.raises(ConfigError, match="one share and one synthetic fraction per stage: 2 epochs entries, 1 share "
                                          "entries, 2 synthetic entries"):
        parse_params({"compound": {"curriculum": {"epochs": [1, 1], "share": [0.0], "synthetic": [0.0, 1.0]}}})
    with pytest.raises(ConfigError, match="compound.synthetic.mix must be \\[low, high\\]"):
        parse_params({"compound": {"synthetic": {"mix": [0.7, 0.3]}}})
    assert set(raw["compound"]["synthetic"]) == set(SyntheticSettings.model_fields)
    with pytest.raises(ConfigError, match="compound.curriculum.share"):
        parse_params({"compound": {"curriculum": {"epochs": [1], "share": [1.5]}}})
    with pytest.raises(ConfigError, match="compound.extractors lists an extractor twice"):
        parse_params({"compound": {"extractors": ["mae", "mae"]}})
    assert parse_params({"compound": {"compare": False}}).compound.curriculum.epochs == [5, 5, 3, 3]
