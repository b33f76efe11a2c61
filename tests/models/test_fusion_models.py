"""Fusion model registry: shapes, ranges, which inputs each dependency framework reads, rebuild from spec."""

import pytest
import torch

from pipeline_lib.models.fusion import DEPENDENCIES, FUSIONS, PREDICTION_WIDTH, FusionModel

WIDTHS = [6, 4, 4, 4]  # frame features, then the va / expr / au hidden features
KWARGS = {"transformer": {"layers": 1, "heads": 2, "dropout": 0.0, "positions": "sincos", "max_len": 64}}


def _model(fusion: str, dependency: str) -> FusionModel:
    torch.manual_seed(0)
    return FusionModel(WIDTHS, fusion, dependency, hidden=8, encoder="transformer",
                       encoder_kwargs=KWARGS["transformer"], heads=2).eval()


def test_registries_hold_the_named_variants():
    assert FUSIONS.names() == ["attention", "concat"]
    assert DEPENDENCIES.names() == ["feature_feedback", "feedback", "independent"]
    with pytest.raises(ValueError, match="unknown fusion 'sum'; known: attention, concat"):
        FusionModel(WIDTHS, "sum")


@pytest.mark.parametrize("fusion", ["concat", "attention"])
@pytest.mark.parametrize("dependency", ["independent", "feedback", "feature_feedback"])
def test_every_variant_predicts_every_task(fusion, dependency):
    model = _model(fusion, dependency)
    x, mask = torch.randn(3, 10, sum(WIDTHS)), torch.ones(3, 10, dtype=torch.bool)
    mask[1, 6:] = False
    outputs, streams = model(x, mask)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {"va": (3, 10, 2), "expr": (3, 10, 8),
                                                               "au": (3, 10, 12)}
    assert {k: tuple(v.shape) for k, v in streams.items()} == {t: (3, 10, 8) for t in ("va", "expr", "au")}
    assert outputs["va"].abs().max() <= 1 and all(torch.isfinite(v).all() for v in outputs.values())
    rebuilt = FusionModel(**model.spec).eval()
    rebuilt.load_state_dict(model.state_dict())
    again, _ = rebuilt(x, mask)
    assert all(torch.equal(outputs[k], again[k]) for k in outputs)


def _heads_reading(dependency: str) -> dict[str, bool]:
    """Whether expression and arousal change when only the AU stream changes."""
    model = _model("concat", dependency)
    streams = {t: torch.randn(2, 5, 8) for t in ("va", "expr", "au")}
    base = model.heads(streams)
    moved = model.heads({**streams, "au": streams["au"] + 1.0})
    return {"expr": not torch.allclose(base["expr"], moved["expr"]),
            "arousal": not torch.allclose(base["va"][..., 1], moved["va"][..., 1]),
            "valence": not torch.allclose(base["va"][..., 0], moved["va"][..., 0])}


def test_independent_heads_read_only_their_own_stream():
    assert _heads_reading("independent") == {"expr": False, "arousal": False, "valence": False}


@pytest.mark.parametrize("dependency", ["feedback", "feature_feedback"])
def test_dependent_heads_feed_au_into_arousal_and_expression_only(dependency):
    assert _heads_reading(dependency) == {"expr": True, "arousal": True, "valence": False}


def test_feedback_reads_predictions_and_feature_feedback_reads_features():
    feedback, features = _model("concat", "feedback"), _model("concat", "feature_feedback")
    assert feedback.heads.expr[1].in_features == 8 + 1 + 12  # own stream + valence + 12 AU probabilities
    assert features.heads.expr[1].in_features == 8 + 2 * 8  # own stream + valence and AU streams


def test_concatenated_width_is_checked():
    model = _model("attention", "independent")
    with pytest.raises(ValueError, match="expected 18 input features"):
        model.fuse(torch.randn(1, 4, 17), torch.ones(1, 4, dtype=torch.bool))


def _predictions(b: int, t: int) -> torch.Tensor:
    """(B, T, 22) what task models write: VA values, EXPR probabilities, AU probabilities."""
    torch.manual_seed(1)
    va = torch.rand(b, t, 2) * 2 - 1
    expr = torch.randn(b, t, 8).softmax(-1)
    au = torch.rand(b, t, 12) * 0.98 + 0.01
    return torch.cat([va, expr, au], dim=-1)


@pytest.mark.parametrize("fusion", ["concat", "attention"])
@pytest.mark.parametrize("dependency", ["independent", "feedback", "feature_feedback"])
def test_residual_model_starts_from_the_task_models_predictions(fusion, dependency):
    widths = [*WIDTHS, PREDICTION_WIDTH]
    model = FusionModel(widths, fusion, dependency, hidden=8, encoder="transformer",
                        encoder_kwargs=KWARGS["transformer"], heads=2, residual=True).eval()
    model.set_stats(torch.randn(sum(widths)), torch.rand(sum(widths)) + 0.5)  # standardising must not touch the base
    base = _predictions(2, 6)
    x = torch.cat([torch.randn(2, 6, sum(WIDTHS)), base], dim=-1)
    outputs, _ = model(x, torch.ones(2, 6, dtype=torch.bool))
    torch.testing.assert_close(outputs["va"], base[..., :2])
    torch.testing.assert_close(outputs["expr"].softmax(-1), base[..., 2:10])
    torch.testing.assert_close(outputs["au"].sigmoid(), base[..., 10:], atol=1e-5, rtol=1e-4)
    # ... and learns corrections: once the heads move, so do the outputs
    with torch.no_grad():
        for layer in model.heads.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.bias.fill_(0.5)
    moved, _ = model(x, torch.ones(2, 6, dtype=torch.bool))
    assert not torch.allclose(moved["au"], outputs["au"]) and moved["va"].abs().max() <= 1
    assert FusionModel(**model.spec).spec["residual"]


def test_residual_model_needs_the_predictions_as_last_source():
    with pytest.raises(ValueError, match="needs the task-model predictions \\(22 columns\\) as its last source"):
        FusionModel(WIDTHS, residual=True)
