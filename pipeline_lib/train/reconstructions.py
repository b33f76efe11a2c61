"""plots/mae_reconstructions.png: input, masked input and reconstruction, for a look by eye.

A falling loss can hide a model that paints the mean face everywhere; the
reconstructions show whether it learned to fill masked patches from the
visible ones (eyes where eyes go, the mouth's opening).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline_lib.models.mae import IMAGE_MEAN, IMAGE_STD, MAE, normalize

__all__ = ["save_reconstructions"]


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """Normalised (B, 3, H, W) -> (B, H, W, 3) uint8."""
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    pixels = (images.float() * std + mean).clamp(0, 1) * 255
    return pixels.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def save_reconstructions(model: MAE, crops: np.ndarray, path: Path, mask_ratio: float, seed: int = 0) -> None:
    """crops: (N, S, S, 3) uint8 aligned faces -> a 3-row figure (input / masked / reconstruction)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(max(2.0, 1.4 * len(crops)), 4.6))
    FigureCanvasAgg(figure)
    if len(crops) == 0:
        figure.text(0.5, 0.5, "no faces", ha="center", va="center")
        figure.savefig(path, dpi=100)
        return
    model.eval()
    device = next(model.parameters()).device  # the crops go where the model is (a CUDA-trained MAE stays there)
    with torch.inference_mode():
        images = normalize(crops).to(device)  # (N, 3, S, S)
        # The mask noise is drawn on the CPU: the same figure for a seed on any device.
        masked, rebuilt = model.reconstruct(images, mask_ratio, torch.Generator().manual_seed(seed))
    rows = [("input", crops), ("masked", _to_uint8(masked.cpu())), ("reconstruction", _to_uint8(rebuilt.cpu()))]
    axes = figure.subplots(3, len(crops), squeeze=False)
    for r, (title, pictures) in enumerate(rows):
        for c, picture in enumerate(pictures):
            axes[r][c].imshow(picture)
            axes[r][c].set_axis_off()
        axes[r][0].set_title(title, fontsize=8, loc="left")
    figure.suptitle(f"MAE reconstructions, {mask_ratio:.0%} of patches masked", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
