"""Temporal encoders over cached frame features, (B, T, D) -> (B, T, H), in a timm-style registry.

Why a registry: the temporal stage is an ablation bench (DESIGN.md section 1,
step 4). The ABAW4 winner compares transformer, LSTM and GRU encoders, the
ABAW7 recipe adds a temporal convergence front-end, and the claim "temporal >
frame-wise" needs a frame-wise baseline with the same head. Each encoder is a
class registered by name; `build_encoder(name, in_dim, **kwargs)` builds one
from plain settings, so a checkpoint can store a name plus kwargs.

One contract for every encoder: `forward(x (B, T, D), mask (B, T) bool) ->
(B, T, H)` with H = `hidden`; True in the mask is a real frame (the window
dataset's `valid`: False on padding and on face-less frames). Masked frames
are zeroed before any mixing, so their feature values never reach a real
frame, and every encoder is finite on padded rows, all-padding rows included.
Outputs at masked frames are finite and carry context from real neighbours,
but nothing supervises them: losses mask them out.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline_lib.models.registry import Registry

__all__ = ["ENCODERS", "FramewiseEncoder", "GRUEncoder", "LSTMEncoder", "TCNEncoder", "TemporalConvergence",
           "TemporalEncoder", "TemporalModel", "TransformerEncoder", "build_encoder", "kwargs_for_encoder",
           "list_encoders", "register_encoder", "sincos_pos_embed_1d"]

_DEN_EPS: Final[float] = 1e-6  # below this share of window weight on real frames, convergence outputs 0


def _valid_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Check x (B, T, D) and mask (B, T); None means every frame is real. Returns a bool (B, T) mask."""
    if x.ndim != 3:
        raise ValueError(f"expected features (B, T, D), got {tuple(x.shape)}")
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match features {tuple(x.shape)} (want (B, T))")
    return mask.to(device=x.device, dtype=torch.bool)


class TemporalEncoder(nn.Module):
    """Base of the registered encoders: in_dim and hidden (the output width), input checks, padding zeroed."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        if in_dim < 1 or hidden < 1:
            raise ValueError(f"in_dim {in_dim} and hidden {hidden} must be >= 1")
        self.in_dim, self.hidden = in_dim, hidden

    def _prepare(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x with masked frames set to 0, bool mask); `where`, not a product, so NaN padding cannot leak."""
        valid = _valid_mask(x, mask)
        if x.shape[2] != self.in_dim:
            raise ValueError(f"expected {self.in_dim} features per frame, got {x.shape[2]}")
        return torch.where(valid[..., None], x, 0.0), valid


# ---------------------------------------------------------------------------------------------- registry
ENCODERS: Registry[type[TemporalEncoder]] = Registry("temporal encoder")


def register_encoder(name: str) -> Callable[[type[TemporalEncoder]], type[TemporalEncoder]]:
    """Store an encoder class (`(in_dim, hidden=..., **settings) -> TemporalEncoder`) under `name`."""
    return ENCODERS.register(name)


def list_encoders(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style wildcard, sorted."""
    return ENCODERS.names(pattern)


def build_encoder(name: str, in_dim: int, **kwargs: Any) -> TemporalEncoder:
    """The encoder `name` on `in_dim` features; None kwargs are dropped (as timm does), unknown ones fail clearly."""
    cls = ENCODERS.lookup(name)
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    try:
        inspect.signature(cls).bind(in_dim, **kwargs)
    except TypeError as err:
        raise ValueError(f"temporal encoder {name!r}: {err}") from None
    return cls(in_dim, **kwargs)


# ---------------------------------------------------------------------------------------------- encoders
def sincos_pos_embed_1d(dim: int, length: int) -> torch.Tensor:
    """Fixed 1-D sine-cosine positions (length, dim) float32: [sin(t * w_k), cos(t * w_k)], w_k = 10000^(-k/(dim/2))."""
    if dim % 2:
        raise ValueError(f"dim {dim} must be even (a sin and a cos per frequency)")
    half = dim // 2
    omega = 1.0 / 10000.0 ** (torch.arange(half, dtype=torch.float64) / half)  # (D/2,)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * omega  # (T, D/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()


@register_encoder("transformer")
class TransformerEncoder(TemporalEncoder):
    """Input projection, positions, pre-norm transformer layers; padding is masked out of attention as keys.

    positions: "sincos" (fixed, any T: a table up to max_len is cached, longer
    clips compute theirs), "learned" (a table of max_len, longer clips fail) or
    "none". A row with no real frame attends to all of its (zeroed) frames
    instead, since a softmax over no key at all is NaN.
    """

    def __init__(self, in_dim: int, hidden: int = 128, layers: int = 2, heads: int = 4, dropout: float = 0.1,
                 ff_mult: int = 4, positions: Literal["sincos", "learned", "none"] = "sincos",
                 max_len: int = 512) -> None:
        super().__init__(in_dim, hidden)
        if heads < 1 or hidden % heads or hidden % 2:
            raise ValueError(f"hidden {hidden} must be even and a multiple of heads {heads}")
        if positions not in ("sincos", "learned", "none"):
            raise ValueError(f"positions must be 'sincos', 'learned' or 'none', got {positions!r}")
        self.positions, self.max_len = positions, max_len
        self.input_proj = nn.Linear(in_dim, hidden)
        if positions == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, max_len, hidden))
            nn.init.normal_(self.pos_embed, std=0.02)
        elif positions == "sincos":  # fixed, so not in the state dict
            self.register_buffer("pos_embed", sincos_pos_embed_1d(hidden, max_len)[None], persistent=False)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=ff_mult * hidden, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        # No nested tensors: they would zero padded outputs in eval only, so train and eval would differ.
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(hidden), enable_nested_tensor=False)

    def _position_table(self, t: int, device: torch.device) -> torch.Tensor:
        """(1, T, H) positions for a clip of T frames."""
        if self.positions == "learned" and t > self.max_len:
            raise ValueError(f"clip of {t} frames is longer than the {self.max_len} learned positions "
                             "(max_len); use positions='sincos' or a larger max_len")
        if self.positions == "sincos" and t > self.max_len:
            return sincos_pos_embed_1d(self.hidden, t)[None].to(device)
        return self.pos_embed[:, :t]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x, valid = self._prepare(x, mask)
        h = self.input_proj(x)  # (B, T, H)
        if self.positions != "none":
            h = h + self._position_table(x.shape[1], x.device)
        padding = ~valid & ~(~valid).all(dim=1, keepdim=True)  # (B, T) True = ignored key; empty rows see all
        return self.encoder(self.dropout(h), src_key_padding_mask=padding)  # (B, T, H)


class _RecurrentEncoder(TemporalEncoder):
    """LSTM/GRU over each row's frames up to its last real one (packed), so trailing padding never enters,
    not even the backward direction; face-less frames inside are zeroed. 2*hidden is projected to hidden."""

    rnn_type: type[nn.LSTM] | type[nn.GRU]

    def __init__(self, in_dim: int, hidden: int = 128, layers: int = 1, dropout: float = 0.1,
                 bidirectional: bool = True) -> None:
        super().__init__(in_dim, hidden)
        self.bidirectional = bidirectional
        self.rnn = self.rnn_type(in_dim, hidden, num_layers=layers, batch_first=True,
                                 dropout=dropout if layers > 1 else 0.0, bidirectional=bidirectional)
        self.proj = nn.Linear(2 * hidden, hidden) if bidirectional else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x, valid = self._prepare(x, mask)
        t = x.shape[1]
        steps = torch.arange(1, t + 1, device=x.device)  # (T,)
        lengths = torch.where(valid, steps, 0).amax(dim=1).clamp_min(1)  # (B,) last real frame + 1; >= 1
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=t)  # (B, T, dirs * H)
        return self.proj(out)  # (B, T, H)


@register_encoder("lstm")
class LSTMEncoder(_RecurrentEncoder):
    """The ABAW4 winner's LSTM encoder (bidirectional by default)."""

    rnn_type = nn.LSTM


@register_encoder("gru")
class GRUEncoder(_RecurrentEncoder):
    """The ABAW4 winner's GRU encoder (bidirectional by default)."""

    rnn_type = nn.GRU


class _TCNBlock(nn.Module):
    """h + Dropout(GELU(LayerNorm(dilated conv(h with masked frames zeroed)))); LayerNorm per frame, not
    BatchNorm, whose batch statistics would let padding leak in."""

    def __init__(self, hidden: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(hidden, hidden, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        y = self.conv(torch.where(valid[..., None], h, 0.0).transpose(1, 2)).transpose(1, 2)  # (B, T, H)
        return h + self.dropout(F.gelu(self.norm(y)))


@register_encoder("tcn")
class TCNEncoder(TemporalEncoder):
    """Dilated residual 1-D convolutions, non-causal, 'same' length; dilation 1, 2, 4, ... per layer.

    Masked frames enter every convolution as zeros, exactly like the border's
    zero padding, so a padded clip gives its real frames the same outputs as
    the unpadded clip. Receptive field: 1 + (kernel - 1) * (2^layers - 1).
    """

    def __init__(self, in_dim: int, hidden: int = 128, layers: int = 3, kernel: int = 3,
                 dropout: float = 0.1) -> None:
        super().__init__(in_dim, hidden)
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel {kernel} must be odd (a symmetric, non-causal window)")
        self.input_proj = nn.Linear(in_dim, hidden)
        self.blocks = nn.ModuleList(_TCNBlock(hidden, kernel, 2 ** i, dropout) for i in range(layers))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x, valid = self._prepare(x, mask)
        h = self.input_proj(x)  # (B, T, H)
        for block in self.blocks:
            h = block(h, valid)
        return self.norm(h)


@register_encoder("framewise")
class FramewiseEncoder(TemporalEncoder):
    """No temporal mixing: Linear -> GELU -> Dropout per frame. The frame-wise baseline, with the same head."""

    def __init__(self, in_dim: int, hidden: int = 128, dropout: float = 0.1) -> None:
        super().__init__(in_dim, hidden)
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(self._prepare(x, mask)[0])  # (B, T, H)


register_encoder("identity")(FramewiseEncoder)


# ---------------------------------------------------------------------------------------------- front-end, wrapper
class TemporalConvergence(nn.Module):
    """The ABAW7 recipe's temporal convergence: each frame becomes a masked weighted mean of its k neighbours.

    out[t, c] = sum_j w[c, j] m[t+j] x[t+j, c] / sum_j w[c, j] m[t+j], j in
    [-k//2, k//2], m the valid mask: padding and face-less frames neither leak
    in nor dilute the mean, and a face-less frame with real neighbours gets
    their mean. kind "conv": w = softmax of learned per-channel logits (a
    depthwise conv that starts as the plain average); "average": w uniform.
    A frame with no real neighbour gets 0. k = 1 keeps real frames as they are.
    """

    def __init__(self, dim: int, k: int = 1, kind: Literal["conv", "average"] = "conv") -> None:
        super().__init__()
        if k < 1 or k % 2 == 0:
            raise ValueError(f"convergence window k {k} must be odd and >= 1 (1 = off)")
        if kind not in ("conv", "average"):
            raise ValueError(f"convergence kind must be 'conv' or 'average', got {kind!r}")
        self.dim, self.k, self.kind = dim, k, kind
        logits = torch.zeros(dim, 1, k)  # (D, 1, k): depthwise conv weights before the softmax
        if kind == "conv":
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits, persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), mask (B, T) bool -> (B, T, D)."""
        valid = _valid_mask(x, mask)
        if x.shape[2] != self.dim:
            raise ValueError(f"expected {self.dim} features per frame, got {x.shape[2]}")
        weights = self.logits.softmax(dim=-1).to(x.dtype)  # (D, 1, k), each channel's weights sum to 1
        xt = torch.where(valid[..., None], x, 0.0).transpose(1, 2)  # (B, D, T)
        m = valid[:, None, :].to(x.dtype).expand(-1, self.dim, -1)  # (B, D, T)
        num = F.conv1d(xt, weights, padding=self.k // 2, groups=self.dim)  # (B, D, T)
        den = F.conv1d(m, weights, padding=self.k // 2, groups=self.dim)  # (B, D, T) weight on real frames
        out = torch.where(den > _DEN_EPS, num / den.clamp_min(_DEN_EPS), 0.0)
        return out.transpose(1, 2)  # (B, T, D)


class TemporalModel(nn.Module):
    """Optional temporal convergence front-end + a registered encoder: features (B, T, D) -> hidden (B, T, H).

    `spec` holds the constructor's arguments as plain data, so
    `TemporalModel(**model.spec)` rebuilds the architecture from a checkpoint.
    """

    def __init__(self, in_dim: int, encoder: str = "transformer", hidden: int = 128, convergence: int = 1,
                 convergence_kind: Literal["conv", "average"] = "conv",
                 encoder_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        encoder_kwargs = dict(encoder_kwargs or {})
        if "hidden" in encoder_kwargs:
            raise ValueError("give hidden to TemporalModel, not in encoder_kwargs")
        self.spec: dict[str, Any] = {"in_dim": in_dim, "encoder": encoder, "hidden": hidden,
                                     "convergence": convergence, "convergence_kind": convergence_kind,
                                     "encoder_kwargs": encoder_kwargs}
        self.convergence = (TemporalConvergence(in_dim, convergence, convergence_kind) if convergence != 1
                            else None)
        self.encoder = build_encoder(encoder, in_dim, hidden=hidden, **encoder_kwargs)
        self.hidden = hidden

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """features (B, T, D), mask (B, T) bool (True = real frame; None = all) -> (B, T, hidden)."""
        if self.convergence is not None:
            features = self.convergence(features, mask)  # (B, T, D)
        return self.encoder(features, mask)  # (B, T, H)


def kwargs_for_encoder(encoder: str, *, layers: int, heads: int, dropout: float, window: int,
                       positions: str = "sincos", bidirectional: bool = True, kernel: int = 3) -> dict[str, Any]:
    """The keyword arguments encoder `encoder` takes, picked from flat settings (params sections are flat)."""
    table: dict[str, dict[str, Any]] = {
        "transformer": {"layers": layers, "heads": heads, "dropout": dropout, "positions": positions,
                        "max_len": max(512, window)},
        "lstm": {"layers": layers, "dropout": dropout, "bidirectional": bidirectional},
        "gru": {"layers": layers, "dropout": dropout, "bidirectional": bidirectional},
        "tcn": {"layers": layers, "kernel": kernel, "dropout": dropout},
        "framewise": {"dropout": dropout},
        "identity": {"dropout": dropout},
    }
    if encoder not in table:
        raise ValueError(f"unknown encoder {encoder!r}; known: {', '.join(sorted(table))}")
    return table[encoder]
