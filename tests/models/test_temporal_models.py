"""Temporal encoders and heads: registry, shapes, padding never leaks into real frames, finite on empty rows,
gradients, positions beyond the training length, the convergence front-end, the TemporalModel wrapper."""

import math

import pytest
import torch

from pipeline_lib.data.labels import TASKS, Task
from pipeline_lib.models.heads import AUHead, ExprHead, VAHead, build_head
from pipeline_lib.models.temporal import (
    ENCODERS,
    TemporalConvergence,
    TemporalEncoder,
    TemporalModel,
    TransformerEncoder,
    build_encoder,
    list_encoders,
    register_encoder,
    sincos_pos_embed_1d,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


D, H = 6, 8
ALL = list_encoders()
# Tiny settings per encoder (the defaults are sized for real features, not for a CPU test).
TINY = {"transformer": {"heads": 2, "layers": 2}, "lstm": {"layers": 2}, "gru": {"layers": 2}, "tcn": {"layers": 3}}


def _encoder(name: str, seed: int = 0, **kwargs) -> TemporalEncoder:
    torch.manual_seed(seed)
    return build_encoder(name, D, hidden=H, **{**TINY.get(name, {}), **kwargs}).eval()


def _model(name: str, convergence: int = 1, seed: int = 0) -> TemporalModel:
    torch.manual_seed(seed)
    return TemporalModel(D, encoder=name, hidden=H, convergence=convergence,
                         encoder_kwargs=TINY.get(name, {})).eval()


def _batch(b: int = 3, t: int = 9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (B, T, D) and a mask with: row 0 all real, row 1 trailing padding and a face-less frame,
    row 2 (if any) all padding."""
    x = torch.randn(b, t, D, generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(b, t, dtype=torch.bool)
    if b > 1:
        mask[1, t // 2 + 1:] = False
        if t > 3:
            mask[1, 1] = False  # a face-less frame among the real ones
    if b > 2:
        mask[2] = False
    return x, mask


def _models() -> list[tuple[str, int]]:
    """Every registered encoder bare, and the transformer and the GRU behind a convergence front-end."""
    return [(name, 1) for name in ALL] + [("transformer", 3), ("gru", 5)]


# ------------------------------------------------------------------------------------------------ registry
def test_registry_holds_the_recipe_encoders_and_filters_with_wildcards():
    assert {"transformer", "lstm", "gru", "tcn", "framewise", "identity"} <= set(ALL)
    assert list_encoders("*ru") == ["gru"]
    assert ENCODERS["identity"] is ENCODERS["framewise"]


def test_registry_errors_are_clear():
    with pytest.raises(ValueError, match=r"unknown temporal encoder 'mamba'; known: .*transformer"):
        build_encoder("mamba", D)
    with pytest.raises(ValueError, match="'lstm'.*kernel"):
        build_encoder("lstm", D, kernel=3)
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("gru")(TransformerEncoder)
    assert build_encoder("tcn", D, hidden=H, kernel=None).blocks[0].conv.kernel_size == (3,)  # None = default
    with pytest.raises(ValueError, match="odd"):
        build_encoder("tcn", D, hidden=H, kernel=4)
    with pytest.raises(ValueError, match="multiple of heads"):
        build_encoder("transformer", D, hidden=H, heads=3)
    with pytest.raises(ValueError, match="positions"):
        build_encoder("transformer", D, hidden=H, heads=2, positions="rotary")


# ------------------------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("t", [1, 2, 7])
def test_every_encoder_keeps_t_and_outputs_hidden(name, t):
    x, mask = _batch(t=t)
    with torch.no_grad():
        out = _encoder(name)(x, mask)
        assert out.shape == (3, t, H)
        assert torch.isfinite(out).all()
        assert _encoder(name)(x).shape == (3, t, H)  # no mask = every frame real


@pytest.mark.parametrize(("name", "k"), _models())
@pytest.mark.parametrize("train", [False, True])
def test_padded_and_all_padding_rows_are_finite_even_with_nan_padding(name, k, train):
    model = _model(name, k).train(train)
    x, mask = _batch()
    x[~mask] = float("nan")
    out = model(x, mask)
    assert out.shape == (3, 9, H) and torch.isfinite(out).all()
    out.sum().backward()  # and so are the gradients
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(("name", "k"), _models())
def test_padding_values_do_not_change_real_frames(name, k):
    model = _model(name, k)
    x, mask = _batch()
    perturbed = x.clone()
    perturbed[~mask] = 100 * torch.randn(int((~mask).sum()), D)
    with torch.no_grad():
        base, moved = model(x, mask), model(perturbed, mask)
    torch.testing.assert_close(moved[mask], base[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("name", "k"), _models())
def test_trailing_padding_gives_the_real_frames_of_the_unpadded_clip(name, k):
    model = _model(name, k)
    x, _ = _batch(b=2, t=11)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, 6:] = False  # row 1 is a 6-frame clip padded to 11
    with torch.no_grad():
        padded = model(x, mask)
        alone = model(x[1:, :6])
    torch.testing.assert_close(padded[1, :6], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("name", "k"), _models())
def test_gradients_reach_every_parameter_and_no_padded_feature(name, k):
    model = _model(name, k).train()
    x, mask = _batch()
    x.requires_grad_(True)
    model(x, mask)[mask].square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0
    assert torch.all(x.grad[~mask] == 0) and x.grad[mask].abs().sum() > 0


@pytest.mark.parametrize("name", ["transformer", "tcn", "lstm", "gru"])
def test_temporal_encoders_mix_frames_and_framewise_does_not(name):
    x, _ = _batch(b=1, t=6)
    changed = x.clone()
    changed[0, 0] += 1.0  # frame 0 changes; frame 3 is within every encoder's reach
    with torch.no_grad():
        assert not torch.allclose(_encoder(name)(x)[0, 3], _encoder(name)(changed)[0, 3])
        torch.testing.assert_close(_encoder("framewise")(x)[0, 1:], _encoder("framewise")(changed)[0, 1:])


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_recurrent_width_is_hidden_both_ways(name, bidirectional):
    encoder = _encoder(name, bidirectional=bidirectional)
    assert encoder.rnn.bidirectional is bidirectional
    x, mask = _batch()
    with torch.no_grad():
        assert encoder(x, mask).shape == (3, 9, H)
        raw = encoder.rnn(x)[0]
    assert raw.shape[-1] == (2 * H if bidirectional else H)


# ------------------------------------------------------------------------------------------------ positions
def test_sincos_table_values():
    table = sincos_pos_embed_1d(4, 3)  # frequencies 1 and 1/100
    assert table.shape == (3, 4)
    torch.testing.assert_close(table[2], torch.tensor([math.sin(2), math.sin(0.02), math.cos(2), math.cos(0.02)]))
    with pytest.raises(ValueError, match="even"):
        sincos_pos_embed_1d(5, 3)


def test_sincos_positions_work_beyond_the_training_length_and_max_len():
    encoder = _encoder("transformer", max_len=16)
    x = torch.randn(2, 40, D)
    with torch.no_grad():
        out = encoder(x)
    assert out.shape == (2, 40, H) and torch.isfinite(out).all()
    torch.testing.assert_close(encoder._position_table(40, x.device)[0, :16], encoder.pos_embed[0])
    # Positions matter: one frame repeated gives other outputs at other times.
    with torch.no_grad():
        out = encoder(x[:, :1].expand(2, 3, D))
    assert not torch.allclose(out[:, 0], out[:, 2])


def test_learned_positions_fail_clearly_beyond_max_len():
    encoder = _encoder("transformer", positions="learned", max_len=8)
    assert encoder.pos_embed.requires_grad and encoder(torch.randn(1, 8, D)).shape == (1, 8, H)
    with pytest.raises(ValueError, match="longer than the 8 learned positions"):
        encoder(torch.randn(1, 9, D))


def test_shape_errors_name_the_problem():
    encoder = _encoder("gru")
    with pytest.raises(ValueError, match="features per frame"):
        encoder(torch.randn(2, 5, D + 1))
    with pytest.raises(ValueError, match="does not match"):
        encoder(torch.randn(2, 5, D), torch.ones(2, 4, dtype=torch.bool))


# ------------------------------------------------------------------------------------------------ convergence
def test_convergence_average_is_a_masked_window_mean():
    x = torch.arange(1.0, 6.0)[None, :, None].expand(1, 5, 2).clone()  # frames 1..5, two channels
    mask = torch.tensor([[True, True, False, True, True]])
    out = TemporalConvergence(2, k=3, kind="average")(x, mask)[0, :, 0]
    # Frame 0: mean(1, 2) (the border adds nothing); 1: mean(1, 2) (frame 2 is masked); 2: mean(2, 4); ...
    torch.testing.assert_close(out, torch.tensor([1.5, 1.5, 3.0, 4.5, 4.5]))
    lonely = TemporalConvergence(2, k=3, kind="average")(x, torch.tensor([[True, False, False, False, False]]))
    assert lonely[0, 3:].abs().sum() == 0  # no real neighbour -> 0


def test_convergence_conv_starts_as_the_average_and_learns():
    x, mask = _batch()
    conv, avg = TemporalConvergence(D, k=5, kind="conv"), TemporalConvergence(D, k=5, kind="average")
    torch.testing.assert_close(conv(x, mask), avg(x, mask))
    assert [n for n, _ in conv.named_parameters()] == ["logits"] and not list(avg.parameters())
    conv(x, mask).sum().backward()
    assert conv.logits.grad.abs().sum() > 0


def test_convergence_settings_are_checked():
    with pytest.raises(ValueError, match="odd"):
        TemporalConvergence(D, k=4)
    with pytest.raises(ValueError, match="kind"):
        TemporalConvergence(D, k=3, kind="max")


# ------------------------------------------------------------------------------------------------ wrapper
def test_temporal_model_spec_rebuilds_the_same_architecture():
    model = _model("transformer", convergence=3)
    assert isinstance(model.convergence, TemporalConvergence) and model.convergence.k == 3
    assert _model("transformer").convergence is None
    rebuilt = TemporalModel(**model.spec).eval()
    rebuilt.load_state_dict(model.state_dict())
    x, mask = _batch()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, mask), model(x, mask))
        assert not torch.allclose(model(x, mask), _model("transformer")(x, mask))  # the front-end matters
    with pytest.raises(ValueError, match="hidden"):
        TemporalModel(D, hidden=H, encoder_kwargs={"hidden": 4})


# ------------------------------------------------------------------------------------------------ heads
@pytest.mark.parametrize(("task", "cls"), [("va", VAHead), ("expr", ExprHead), ("au", AUHead)])
def test_heads_give_their_task_outputs(task, cls):
    head = build_head(task, H)
    assert isinstance(head, cls)
    out = head(10 * torch.randn(2, 5, H))
    assert out.shape == (2, 5, TASKS[task].outputs)
    if task == "va":
        assert out.abs().max() <= 1.0


def test_build_head_accepts_the_task_enum_and_rejects_others():
    assert isinstance(build_head(Task.EXPR, H), ExprHead)
    assert {k: s.outputs for k, s in TASKS.items()} == {"va": 2, "expr": 8, "au": 12, "ce": 7}
    with pytest.raises(ValueError, match="no head for task"):
        build_head("ce", H)
    with pytest.raises(ValueError, match="hidden width"):
        build_head("au", H)(torch.randn(2, H + 1))
