"""The shared name -> item registry behind MAE configs, temporal encoders and extractors."""

import pytest

from pipeline_lib.features.encode import EXTRACTORS, build_extractor
from pipeline_lib.models.registry import Registry


def test_register_list_and_lookup():
    things = Registry[int]("thing")
    assert things.register("b")(2) == 2 and things.register("a")(1) == 1
    assert things.names() == ["a", "b"] and things.names("b*") == ["b"] and things.lookup("a") == 1
    with pytest.raises(ValueError, match=r"^thing 'a' is already registered$"):
        things.register("a")(3)
    assert things["a"] == 1
    with pytest.raises(ValueError, match=r"^unknown thing 'c'; known: a, b$"):
        things.lookup("c")


def test_extractors_use_it(tmp_path):
    assert EXTRACTORS.names() == ["finetuned_au", "finetuned_expr", "finetuned_va", "landmarks", "mae", "mesh",
                                  "random"]
    with pytest.raises(ValueError, match=r"^unknown extractor 'pixels'; known: finetuned_au, finetuned_expr, "
                                         r"finetuned_va, landmarks, mae, mesh, random$"):
        build_extractor("pixels", tmp_path / "none.pt", 0)
