"""Masked autoencoder (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners") for aligned faces.

Why this model: self-supervised pretraining can use every aligned face we
have, labelled or not, and the frozen encoder then feeds the cached feature
store (DESIGN.md section 1, steps 2-3). Written from the paper, not from the
facebookresearch code (which breaks on current numpy and timm): a ViT encoder
sees only the ~25% of patches kept by a random mask, a light decoder fills in
mask tokens and predicts the pixels of every patch, and the loss scores the
masked patches only, against per-patch normalised pixels.

Sizes are named configs in a timm-style registry (`config_by_name`); the
checkpoint stores a name plus overrides, so a model is rebuilt from plain data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import torch
from timm.models.vision_transformer import Block
from torch import nn

from pipeline_lib.artifacts.checkpoints import read_checkpoint
from pipeline_lib.data.errors import CheckpointError
from pipeline_lib.models.registry import Registry

__all__ = ["IMAGE_MEAN", "IMAGE_STD", "MAE", "MAEConfig", "MAEOutput", "MODELS", "config_by_name", "list_configs",
           "load_mae",
           "read_mae_checkpoint",
           "masked_patch_loss", "normalize", "patchify", "random_masking", "register_config", "sincos_pos_embed_2d",
           "unpatchify"]

# ImageNet statistics: the usual input space of ViTs, kept so encoders stay comparable.
IMAGE_MEAN: Final[tuple[float, float, float]] = (0.485, 0.456, 0.406)
IMAGE_STD: Final[tuple[float, float, float]] = (0.229, 0.224, 0.225)
NORM_PIX_EPS: Final[float] = 1e-6

_LayerNorm = partial(nn.LayerNorm, eps=1e-6)


@dataclass(frozen=True)
class MAEConfig:
    """Architecture of one MAE; validated on construction."""

    image_size: int = 112
    patch_size: int = 16  # 112 / 16 = a 7x7 grid of patches
    width: int = 192  # encoder embedding dim
    depth: int = 6
    heads: int = 3
    decoder_width: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.image_size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} must divide image_size {self.image_size}")
        for dim, heads, what in ((self.width, self.heads, ""), (self.decoder_width, self.decoder_heads, "decoder_")):
            if heads < 1 or dim % heads:
                raise ValueError(f"{what}width {dim} must be a multiple of {what}heads {heads}")
            if dim % 4:
                raise ValueError(f"{what}width {dim} must be a multiple of 4 (2-D sine-cosine position embedding)")
        if self.depth < 1 or self.decoder_depth < 1:
            raise ValueError(f"depth {self.depth} and decoder_depth {self.decoder_depth} must be >= 1")
        _check_mask_ratio(self.mask_ratio)

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, for checkpoints and provenance; `MAEConfig(**d)` rebuilds it."""
        return dataclasses.asdict(self)


class MAEOutput(NamedTuple):
    """A tuple (so DDP and tracing see the tensors) with names."""

    loss: torch.Tensor  # () mean MSE over masked patches
    pred: torch.Tensor  # (B, N, p*p*3) predicted pixels of every patch (normalised per patch if norm_pix_loss)
    mask: torch.Tensor  # (B, N) 1 = masked (scored), 0 = kept (seen by the encoder)


# ---------------------------------------------------------------------------------------------- registry
MODELS: Registry[Callable[..., MAEConfig]] = Registry("MAE config")


def register_config(name: str) -> Callable[[Callable[..., MAEConfig]], Callable[..., MAEConfig]]:
    """Store a config factory (`**overrides -> MAEConfig`) under `name`."""
    return MODELS.register(name)


def list_configs(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style wildcard, sorted."""
    return MODELS.names(pattern)


def config_by_name(name: str, **overrides: Any) -> MAEConfig:
    """The registered config `name` with `overrides` applied (None values are dropped, as timm does)."""
    factory = MODELS.lookup(name)
    overrides = {key: value for key, value in overrides.items() if value is not None}
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(MAEConfig)})
    if unknown:
        raise ValueError(f"unknown MAE config field(s) {', '.join(unknown)} for {name!r}")
    return factory(**overrides)


@register_config("mae_tiny")
def mae_tiny(**overrides: Any) -> MAEConfig:
    """ViT-Ti encoder (192 wide, 6 deep): the CPU demo default."""
    return dataclasses.replace(MAEConfig(width=192, depth=6, heads=3), **overrides)


@register_config("mae_small")
def mae_small(**overrides: Any) -> MAEConfig:
    """ViT-S encoder (384/12/6) with a 256/4/8 decoder."""
    return dataclasses.replace(MAEConfig(width=384, depth=12, heads=6, decoder_width=256, decoder_depth=4,
                                         decoder_heads=8), **overrides)


@register_config("mae_base")
def mae_base(**overrides: Any) -> MAEConfig:
    """ViT-B encoder (768/12/12) with the paper's 512/8/16 decoder."""
    return dataclasses.replace(MAEConfig(width=768, depth=12, heads=12, decoder_width=512, decoder_depth=8,
                                         decoder_heads=16), **overrides)


# ---------------------------------------------------------------------------------------------- tensor helpers
def normalize(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) RGB -> float32 (B, 3, H, W) in the ImageNet-normalised space the MAE works in."""
    pixels = torch.as_tensor(images)
    if pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (B, H, W, 3), got {pixels.dtype} {tuple(pixels.shape)}")
    mean = torch.tensor(IMAGE_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels.permute(0, 3, 1, 2).float() / 255.0 - mean) / std


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding, (grid_h * grid_w, dim) float32, rows of the grid row-major.

    Channels [0, dim/2) encode the patch's row, [dim/2, dim) its column, each
    as [sin(pos * w_k), cos(pos * w_k)] with w_k = 10000^(-k / (dim/4)).
    """
    if dim % 4:
        raise ValueError(f"dim {dim} must be a multiple of 4 (sin and cos for rows and for columns)")
    quarter = dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # (D/4,)

    def encode(positions: int) -> torch.Tensor:
        angles = torch.arange(positions, dtype=torch.float64)[:, None] * omega  # (P, D/4)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (P, D/2)

    rows = encode(grid_h)[:, None].expand(grid_h, grid_w, dim // 2)  # (H, W, D/2)
    cols = encode(grid_w)[None, :].expand(grid_h, grid_w, dim // 2)  # (H, W, D/2)
    return torch.cat([rows, cols], dim=2).reshape(grid_h * grid_w, dim).float()


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, p*p*C); patches row-major (as the patch embedding's conv), pixels (p, p, C) inside."""
    b, c, h, w = images.shape
    p = patch_size
    assert h % p == 0 and w % p == 0, (images.shape, p)
    x = images.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("bcipjq->bijpqc", x).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, height: int | None = None,
               width: int | None = None) -> torch.Tensor:
    """(B, N, p*p*C) -> (B, C, H, W): the inverse of `patchify`; a square grid unless height/width are given."""
    b, n, size = patches.shape
    p = patch_size
    gh = height // p if height is not None else math.isqrt(n)
    gw = width // p if width is not None else n // gh
    c = size // (p * p)
    assert gh * gw == n and c * p * p == size, (patches.shape, p, height, width)
    x = patches.reshape(b, gh, gw, p, p, c)
    return torch.einsum("bijpqc->bcipjq", x).reshape(b, c, gh * p, gw * p)


def _check_mask_ratio(mask_ratio: float) -> None:
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")


def random_masking(tokens: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random subset of K = max(1, int(N * (1 - mask_ratio))) tokens per sample.

    tokens: (B, N, D). Returns kept (B, K, D) (in random order), mask (B, N)
    float with 1 = masked, 0 = kept, in the original token order, and
    restore_ids (B, N) such that gathering [kept, K..N fillers] with it puts
    every token back at its original position. Vectorised: the sample's kept
    set is the K smallest of uniform noise, so no loop over the batch.
    """
    _check_mask_ratio(mask_ratio)
    b, n, d = tokens.shape
    keep = max(1, int(n * (1 - mask_ratio)))
    device = generator.device if generator is not None else tokens.device
    noise = torch.rand(b, n, generator=generator, device=device).to(tokens.device)  # (B, N)
    shuffle_ids = torch.argsort(noise, dim=1)  # (B, N): ascending noise, the first K are kept
    restore_ids = torch.argsort(shuffle_ids, dim=1)  # (B, N)
    kept = torch.gather(tokens, 1, shuffle_ids[:, :keep, None].expand(b, keep, d))  # (B, K, D)
    mask = torch.ones(b, n, device=tokens.device)
    mask[:, :keep] = 0.0
    mask = torch.gather(mask, 1, restore_ids)  # (B, N) back in the original order
    return kept, mask, restore_ids


def _patch_stats(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch mean and sqrt(var + eps), each (B, N, 1); var unbiased, as in the paper's released code."""
    return patches.mean(dim=-1, keepdim=True), (patches.var(dim=-1, keepdim=True) + NORM_PIX_EPS).sqrt()


def masked_patch_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix: bool) -> torch.Tensor:
    """Mean over masked patches of the per-patch MSE; kept patches do not count.

    pred, target: (B, N, P) (target = patchified input); mask: (B, N), 1 =
    masked. With norm_pix each target patch is first normalised by its own
    mean and variance (the paper's variant that gives better features).
    Computed in float32, so it is exact enough under bf16 autocast.
    """
    assert pred.shape == target.shape and mask.shape == pred.shape[:2], (pred.shape, target.shape, mask.shape)
    pred, target, mask = pred.float(), target.float(), mask.float()
    if norm_pix:
        mean, std = _patch_stats(target)
        target = (target - mean) / std
    per_patch = ((pred - target) ** 2).mean(dim=-1)  # (B, N)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


# ---------------------------------------------------------------------------------------------- model
class MAE(nn.Module):
    """ViT encoder on the kept patches + light transformer decoder that predicts every patch's pixels."""

    pos_embed: torch.Tensor  # registered buffers (1, 1 + N, width) and (1, 1 + N, decoder_width)
    decoder_pos_embed: torch.Tensor

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        c, grid = config, config.grid
        n = grid * grid
        # Encoder.
        self.patch_embed = nn.Conv2d(3, c.width, kernel_size=c.patch_size, stride=c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.width))
        # Fixed, not learned, so not in the state dict: rebuilt from the config. The cls token's row is zero.
        self.register_buffer("pos_embed", torch.cat([torch.zeros(1, c.width), sincos_pos_embed_2d(
            c.width, grid, grid)])[None], persistent=False)  # (1, 1 + N, width)
        # timm annotates norm_layer as a class; it only calls it, so the partial works
        self.blocks = nn.ModuleList(Block(c.width, c.heads, c.mlp_ratio, qkv_bias=True,
                                          norm_layer=_LayerNorm)  # type: ignore[arg-type]
                                    for _ in range(c.depth))
        self.norm = _LayerNorm(c.width)
        # Decoder.
        self.decoder_embed = nn.Linear(c.width, c.decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_width))
        self.register_buffer("decoder_pos_embed", torch.cat([torch.zeros(1, c.decoder_width), sincos_pos_embed_2d(
            c.decoder_width, grid, grid)])[None], persistent=False)  # (1, 1 + N, decoder_width)
        self.decoder_blocks = nn.ModuleList(
            Block(c.decoder_width, c.decoder_heads, c.mlp_ratio, qkv_bias=True,
                  norm_layer=_LayerNorm)  # type: ignore[arg-type]  # a class in timm's annotation; see above
            for _ in range(c.decoder_depth))
        self.decoder_norm = _LayerNorm(c.decoder_width)
        self.decoder_pred = nn.Linear(c.decoder_width, c.patch_size ** 2 * 3)
        self.num_patches = n
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """As in the paper: xavier-uniform Linear (and the patch conv seen as a Linear), tokens N(0, 0.02)."""
        weight = self.patch_embed.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        assert self.patch_embed.bias is not None  # the Conv2d is built with its bias (the default)
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> patch tokens with positions (B, N, width)."""
        size = self.config.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"expected images (B, 3, {size}, {size}), got {tuple(images.shape)}")
        tokens = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, N, width)
        return tokens + self.pos_embed[:, 1:]

    def _encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prepend the cls token, run the blocks and the final norm: (B, L, width) -> (B, 1 + L, width)."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)  # (B, 1, width)
        x = torch.cat([cls, tokens], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_encoder(self, images: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images (B, 3, S, S) -> latent (B, 1 + K, width), mask (B, N), restore_ids (B, N)."""
        kept, mask, restore_ids = random_masking(self._embed(images), mask_ratio, generator)
        return self._encode_tokens(kept), mask, restore_ids

    def forward_decoder(self, latent: torch.Tensor, restore_ids: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + K, width) -> pred (B, N, p*p*3) for every patch, kept or masked."""
        x = self.decoder_embed(latent)  # (B, 1 + K, dw)
        b, n = restore_ids.shape
        fill = self.mask_token.to(x.dtype).expand(b, n + 1 - x.shape[1], -1)  # (B, N - K, dw)
        patches = torch.cat([x[:, 1:], fill], dim=1)  # (B, N, dw) in shuffled order
        patches = torch.gather(patches, 1, restore_ids[..., None].expand(-1, -1, x.shape[2]))  # original order
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed  # (B, 1 + N, dw)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # (B, N, p*p*3), cls row dropped

    def forward(self, images: torch.Tensor, mask_ratio: float | None = None,
                generator: torch.Generator | None = None) -> MAEOutput:
        """images: (B, 3, S, S) normalised (see `normalize`); mask_ratio defaults to the config's."""
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, restore_ids = self.forward_encoder(images, ratio, generator)
        pred = self.forward_decoder(latent, restore_ids)
        loss = masked_patch_loss(pred, patchify(images, self.config.patch_size), mask, self.config.norm_pix_loss)
        return MAEOutput(loss, pred, mask)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen features (B, width): the encoder on all patches (no mask), mean of the normed patch tokens.

        Why the mean and not the cls token: the MAE loss only scores patch
        predictions, so the cls token is trained only indirectly, while every
        patch token is; He et al. (appendix A.1) report the encoder works
        about as well with average pooling as with the cls token. We pool;
        the features stage's linear probe is what checks the choice here.
        """
        return self._encode_tokens(self._embed(images))[:, 1:].mean(dim=1)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, mask_ratio: float | None = None,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked_images, reconstructed_images), both (B, 3, S, S) in the input's (normalised) space.

        masked: kept patches as the input, masked ones 0 (the mean colour).
        reconstructed: kept patches as the input, masked ones predicted; with
        norm_pix_loss the prediction is un-normalised with the true patch's
        mean and std, as the paper's figures do (only for looking at).
        """
        out = self(images, mask_ratio, generator)
        pred, mask = out.pred, out.mask
        target = patchify(images, self.config.patch_size)  # (B, N, p*p*3)
        if self.config.norm_pix_loss:
            mean, std = _patch_stats(target.float())
            pred = pred.float() * std + mean
        masked = mask[..., None].to(target.dtype)  # (B, N, 1)
        size, p = self.config.image_size, self.config.patch_size
        hidden = unpatchify(target * (1 - masked), p, size, size)
        filled = unpatchify(target * (1 - masked) + pred.to(target.dtype) * masked, p, size, size)
        return hidden, filled


def read_mae_checkpoint(path: Path) -> dict[str, Any]:
    """An MAE checkpoint dict (model weights, config, metadata); a missing or foreign file raises CheckpointError."""
    checkpoint = read_checkpoint(path, "missing: run `abaw pretrain` first")
    if "model" not in checkpoint or "config" not in checkpoint:
        raise CheckpointError(path, "not an MAE checkpoint (expected keys 'model' and 'config')")
    return checkpoint


def load_mae(path: Path) -> tuple[MAE, dict[str, Any]]:
    """The pretrained MAE (eval mode) and the checkpoint's metadata."""
    checkpoint = read_mae_checkpoint(path)
    try:
        model = MAE(config_by_name(checkpoint["config"]["name"], **checkpoint["config"]["overrides"]))
        model.load_state_dict(checkpoint["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(path, f"weights do not fit the stored config ({str(exc).splitlines()[0][:200]})") \
            from None
    return model.eval(), checkpoint.get("meta", {})
