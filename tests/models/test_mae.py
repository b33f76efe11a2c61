"""MAE: patch round trip, masking invariants, position embedding, loss on masked patches, overfit, registry, reload."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline_lib.models.mae import (
    IMAGE_MEAN,
    IMAGE_STD,
    MAE,
    MODELS,
    MAEConfig,
    config_by_name,
    list_configs,
    masked_patch_loss,
    normalize,
    patchify,
    random_masking,
    sincos_pos_embed_2d,
    unpatchify,
)

# 32 px, 8 px patches: a 4x4 grid, N = 16; 75% masking keeps K = 4.
TINY = MAEConfig(image_size=32, patch_size=8, width=32, depth=2, heads=2, decoder_width=32, decoder_depth=1,
                 decoder_heads=2)
N, K = 16, 4


def _model(config: MAEConfig = TINY, seed: int = 0) -> MAE:
    torch.manual_seed(seed)
    return MAE(config).eval()


def _images(b: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ patches
def test_patchify_unpatchify_round_trip_exactly_in_conv_order():
    images = torch.randn(2, 3, 16, 24)
    patches = patchify(images, 8)
    assert patches.shape == (2, 6, 8 * 8 * 3)
    assert torch.equal(unpatchify(patches, 8, 16, 24), images)
    square = torch.randn(2, 3, 32, 32)
    assert torch.equal(unpatchify(patchify(square, 8), 8), square)
    # Row-major patches, (p, p, C) pixels inside: patch 4 of a 2x3 grid is row 1, column 1.
    assert torch.equal(patches[1, 4], images[1, :, 8:16, 8:16].permute(1, 2, 0).reshape(-1))


# ------------------------------------------------------------------------------------------------ masking
def test_random_masking_keeps_k_per_sample_and_restore_ids_put_tokens_back():
    tokens = torch.arange(8 * N * 3, dtype=torch.float32).reshape(8, N, 3)  # every token distinct
    kept, mask, restore = random_masking(tokens, 0.75, torch.Generator().manual_seed(0))
    assert kept.shape == (8, K, 3) and mask.shape == (8, N) and restore.shape == (8, N)
    assert torch.equal(mask.sum(dim=1), torch.full((8,), float(N - K)))
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert len({tuple(row) for row in mask.tolist()}) > 1  # samples get their own masks
    # What the decoder does: append fillers, gather with restore_ids -> kept tokens at their own positions.
    full = torch.gather(torch.cat([kept, torch.full((8, N - K, 3), -1.0)], dim=1), 1,
                        restore[..., None].expand(-1, -1, 3))
    visible = (mask == 0)[..., None].expand_as(tokens)
    assert torch.equal(full[visible], tokens[visible])
    assert torch.all(full[~visible] == -1.0)


def test_random_masking_is_reproducible_from_the_generator_and_keeps_at_least_one():
    tokens = torch.randn(4, N, 5)
    first = random_masking(tokens, 0.75, torch.Generator().manual_seed(7))[1]
    assert torch.equal(first, random_masking(tokens, 0.75, torch.Generator().manual_seed(7))[1])
    assert not torch.equal(first, random_masking(tokens, 0.75, torch.Generator().manual_seed(8))[1])
    kept, mask, _ = random_masking(tokens, 0.99, torch.Generator().manual_seed(0))
    assert kept.shape == (4, 1, 5) and torch.all(mask.sum(dim=1) == N - 1)
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(tokens, 1.0)


# ------------------------------------------------------------------------------------------------ position embedding
def test_sincos_pos_embed_rows_share_the_first_half_columns_the_second():
    embed = sincos_pos_embed_2d(32, 3, 4)
    assert embed.shape == (12, 32) and embed.dtype == torch.float32
    grid = embed.view(3, 4, 32)
    for j in range(4):
        assert torch.equal(grid[:, j, :16], grid[:, 0, :16])  # same row -> same row half
    for i in range(3):
        assert torch.equal(grid[i, :, 16:], grid[0, :, 16:])  # same column -> same column half
    # Channel 0 is sin(row * 1), channel 8 cos(row * 1); channel 16 sin(column * 1).
    torch.testing.assert_close(grid[:, 0, 0], torch.sin(torch.arange(3.0)))
    torch.testing.assert_close(grid[:, 0, 8], torch.cos(torch.arange(3.0)))
    torch.testing.assert_close(grid[0, :, 16], torch.sin(torch.arange(4.0)))
    assert torch.equal(grid[0, 0], torch.tensor([0.0] * 8 + [1.0] * 8 + [0.0] * 8 + [1.0] * 8))
    assert len({tuple(row) for row in embed.tolist()}) == 12  # every patch its own code
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_pos_embed_2d(30, 2, 2)


def test_model_pos_embeds_are_fixed_buffers_with_a_zero_cls_row():
    model = _model()
    buffers, parameters = dict(model.named_buffers()), dict(model.named_parameters())
    for name, width in (("pos_embed", 32), ("decoder_pos_embed", 32)):
        assert name in buffers and name not in parameters
        assert buffers[name].shape == (1, 1 + N, width)
        assert torch.equal(buffers[name][0, 0], torch.zeros(width))
        assert torch.equal(buffers[name][0, 1:], sincos_pos_embed_2d(width, 4, 4))
    assert torch.equal(_model(seed=1).pos_embed, model.pos_embed)  # not random


def test_initialisation_follows_the_paper():
    model = MAE(config_by_name("mae_tiny", depth=1, decoder_depth=1))
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):  # xavier-uniform fills its +-sqrt(6 / (fan_in + fan_out)) range
            bound = math.sqrt(6 / sum(module.weight.shape))
            assert 0.95 * bound < module.weight.abs().max() <= bound, name
            assert torch.all(module.bias == 0), name
        elif isinstance(module, torch.nn.LayerNorm):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), name
    weight = model.patch_embed.weight  # (192, 3, 16, 16) seen as a Linear
    bound = math.sqrt(6 / (192 + 3 * 16 * 16))
    assert 0.95 * bound < weight.abs().max() <= bound
    for token in (model.cls_token, model.mask_token):
        assert 0.01 < token.std() < 0.03  # N(0, 0.02)


# ------------------------------------------------------------------------------------------------ loss
def test_loss_ignores_kept_patches_and_matches_a_hand_computed_value():
    target = torch.zeros(1, 3, 2)
    pred = torch.tensor([[[1.0, 1.0], [5.0, 5.0], [2.0, 2.0]]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    loss = masked_patch_loss(pred, target, mask, norm_pix=False)
    assert loss.ndim == 0 and loss.item() == 2.5  # (1 + 4) / 2 masked patches; the kept 25 does not count
    moved = pred.clone()
    moved[0, 1] = -100.0
    assert torch.equal(masked_patch_loss(moved, target, mask, norm_pix=False), loss)
    many = torch.randn(2, N, 12), torch.randn(2, N, 12)
    mask = random_masking(torch.zeros(2, N, 1), 0.75, torch.Generator().manual_seed(0))[1]
    noisy = many[0] + (1 - mask)[..., None] * torch.randn(2, N, 12)  # errors only on kept patches
    assert torch.equal(masked_patch_loss(noisy, many[1], mask, True), masked_patch_loss(many[0], many[1], mask, True))


def test_norm_pix_target_is_the_patch_normalised_by_its_own_mean_and_unbiased_var():
    target = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [10.0, 10.0, 10.0, 10.0]]])
    mask = torch.ones(1, 2)
    std = math.sqrt(np.var([1, 2, 3, 4], ddof=1) + 1e-6)
    normed = torch.tensor([[[-1.5, -0.5, 0.5, 1.5], [0.0, 0.0, 0.0, 0.0]]]) / torch.tensor([[[std], [1.0]]])
    assert masked_patch_loss(normed, target, mask, norm_pix=True).item() < 1e-12
    expected = (5.0 / std ** 2 / 4 + 0.0) / 2  # zeros vs the normalised patch; the flat patch's target is 0
    assert masked_patch_loss(torch.zeros(1, 2, 4), target, mask, norm_pix=True).item() == pytest.approx(expected,
                                                                                                         rel=1e-6)


# ------------------------------------------------------------------------------------------------ model
def test_forward_shapes_and_a_finite_scalar_loss():
    output = _model()(_images(), generator=torch.Generator().manual_seed(0))
    assert output.pred.shape == (2, N, 8 * 8 * 3) and output.mask.shape == (2, N)
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    assert torch.equal(output.mask.sum(dim=1), torch.full((2,), float(N - K)))
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        _model()(torch.zeros(1, 3, 48, 48))


def test_encode_uses_every_patch_and_no_randomness():
    model = _model()
    images = _images()
    torch.manual_seed(1)
    first = model.encode(images)
    torch.manual_seed(2)
    assert first.shape == (2, 32) and torch.equal(model.encode(images), first)
    changed = images.clone()
    changed[:, :, 24:, 24:] += 1.0  # the last patch only: no mask can hide it from `encode`
    assert not torch.allclose(model.encode(changed), first)


def test_encode_is_the_mean_of_the_final_normed_patch_tokens_and_knows_where_patches_are():
    model, images = _model(), _images()
    seen: dict[str, torch.Tensor] = {}
    handle = model.norm.register_forward_hook(lambda module, args, out: seen.setdefault("tokens", out))
    features = model.encode(images)
    handle.remove()
    assert seen["tokens"].shape == (2, 1 + N, 32)  # cls + every patch
    torch.testing.assert_close(features, seen["tokens"][:, 1:].mean(dim=1), rtol=0, atol=0)
    patches = patchify(images, 8)
    swapped = unpatchify(patches[:, [1, 0, *range(2, N)]], 8)  # two patches trade places
    assert not torch.allclose(model.encode(swapped), features, atol=1e-4)  # positions matter, not just content


def test_decoder_puts_kept_latents_at_their_patches_and_the_mask_token_elsewhere():
    model = _model()
    latent, mask, restore = model.forward_encoder(_images(), 0.75, torch.Generator().manual_seed(0))
    assert latent.shape == (2, 1 + K, 32)
    seen: dict[str, torch.Tensor] = {}
    hooks = [model.decoder_blocks[0].register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0])),
             model.decoder_pred.register_forward_hook(lambda module, args, out: seen.setdefault("out", out))]
    pred = model.forward_decoder(latent, restore)
    for hook in hooks:
        hook.remove()
    assert torch.equal(pred, seen["out"][:, 1:])  # the cls row is the one dropped
    slots = seen["x"][:, 1:] - model.decoder_pos_embed[:, 1:]  # (B, N, dw) what each patch position got
    kept_at = torch.argsort(restore, dim=1)[:, :K]  # (B, K) positions of the kept tokens, in their order
    assert torch.equal(torch.sort(kept_at, dim=1).values, (mask == 0).nonzero()[:, 1].view(2, K))
    torch.testing.assert_close(torch.gather(slots, 1, kept_at[..., None].expand(-1, -1, 32)),
                               model.decoder_embed(latent)[:, 1:])
    torch.testing.assert_close(slots[mask == 1], model.mask_token[0].expand(2 * (N - K), -1))


def test_reconstruct_shows_kept_patches_as_input_and_unnormalised_predictions_elsewhere():
    model, images = _model(), _images()
    masked, rebuilt = model.reconstruct(images, 0.75, torch.Generator().manual_seed(3))
    output = model(images, 0.75, torch.Generator().manual_seed(3))
    kept = (output.mask == 0)[..., None].expand(-1, -1, 192)
    target, hidden, filled = patchify(images, 8), patchify(masked, 8), patchify(rebuilt, 8)
    assert masked.shape == rebuilt.shape == images.shape
    assert torch.equal(hidden[kept], target[kept]) and torch.all(hidden[~kept] == 0)
    assert torch.equal(filled[kept], target[kept])
    mean, std = target.mean(-1, keepdim=True), (target.var(-1, keepdim=True) + 1e-6).sqrt()
    torch.testing.assert_close(filled[~kept], (output.pred * std + mean)[~kept])


def test_thirty_steps_overfit_four_images():
    """Halves the loss on 4 random smooth images (white noise cannot be predicted in 30 steps at this lr)."""
    config = MAEConfig(image_size=32, patch_size=8, width=64, depth=2, heads=2, decoder_width=64, decoder_depth=1,
                       decoder_heads=2)
    model = _model(config).train()
    corners = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    images = F.interpolate(corners, size=32, mode="bilinear", align_corners=True)  # random colour gradients
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    masks = torch.Generator().manual_seed(0)  # a new mask every step, as in pretraining
    losses = []
    for _ in range(30):
        loss = model(images, generator=masks).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


# ------------------------------------------------------------------------------------------------ registry, io
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_config_builds_and_gives_documented_shapes(name):
    config = config_by_name(name, depth=1, decoder_depth=1)  # one block each: the widths and heads are what count
    model = _model(config)
    with torch.inference_mode():
        output = model(torch.zeros(1, 3, 112, 112))
        features = model.encode(torch.zeros(1, 3, 112, 112))
    assert output.pred.shape == (1, 49, 16 * 16 * 3) and features.shape == (1, config.width)


def test_registry_sizes_overrides_and_errors():
    assert list_configs() == ["mae_base", "mae_small", "mae_tiny"] and list_configs("*_s*") == ["mae_small"]
    assert config_by_name("mae_tiny") == MAEConfig()
    small, base = config_by_name("mae_small"), config_by_name("mae_base")
    assert (small.width, small.depth, small.heads, small.decoder_width, small.decoder_depth, small.decoder_heads) == (
        384, 12, 6, 256, 4, 8)
    assert (base.width, base.depth, base.heads, base.decoder_width, base.decoder_depth, base.decoder_heads) == (
        768, 12, 12, 512, 8, 16)
    assert config_by_name("mae_tiny", mask_ratio=0.5, image_size=None).mask_ratio == 0.5  # None = keep the default
    with pytest.raises(ValueError, match="unknown MAE config 'mae_huge'; known: mae_base, mae_small, mae_tiny"):
        config_by_name("mae_huge")
    with pytest.raises(ValueError, match="field.*widht"):
        config_by_name("mae_tiny", widht=8)
    with pytest.raises(ValueError, match="patch_size 10 must divide image_size 112"):
        config_by_name("mae_tiny", patch_size=10)
    with pytest.raises(ValueError, match="heads"):
        MAEConfig(width=192, heads=5)
    assert MAEConfig(**json.loads(json.dumps(TINY.as_dict()))) == TINY


def test_normalize_uint8_channels_last_to_normalised_channels_first():
    pixels = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    images = normalize(pixels)
    assert images.shape == (2, 3, 4, 5) and images.dtype == torch.float32
    expected = (pixels[1, 2, 3, 0] / 255 - IMAGE_MEAN[0]) / IMAGE_STD[0]
    assert images[1, 0, 2, 3].item() == pytest.approx(expected, abs=1e-6)
    assert torch.equal(normalize(torch.from_numpy(pixels)), images)
    with pytest.raises(ValueError, match="uint8"):
        normalize(pixels.astype(np.float32))


def test_state_dict_round_trip_weights_only_gives_identical_features(tmp_path):
    model, images = _model(seed=0), _images()
    torch.save(model.state_dict(), tmp_path / "mae.pt")
    fresh = _model(seed=1)
    assert not torch.equal(fresh.encode(images), model.encode(images))
    fresh.load_state_dict(torch.load(tmp_path / "mae.pt", weights_only=True))
    assert torch.equal(fresh.encode(images), model.encode(images))
