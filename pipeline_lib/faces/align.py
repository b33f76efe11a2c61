"""5-point similarity alignment to the ArcFace template, and its inverse.

`align_to_template` maps a face so its eyes, nose tip and mouth corners land
on the standard ArcFace 112x112 template; `unalign_points` maps crop
coordinates back to the frame. The pair round-trips (tested), so landmarks
measured on crops can be drawn on the original video.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from skimage.transform import SimilarityTransform, warp

__all__ = ["ARCFACE_TEMPLATE_112", "CROP_SIZE", "align_to_template", "template_for", "template_transform",
           "unalign_points", "align_points"]

CROP_SIZE: Final[int] = 112
# The ArcFace (insightface) 5-point template for 112x112 crops: left eye,
# right eye, nose tip, left mouth corner, right mouth corner, as (x, y).
ARCFACE_TEMPLATE_112: Final[np.ndarray] = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ARCFACE_TEMPLATE_112.flags.writeable = False


def template_for(size: int = CROP_SIZE) -> np.ndarray:
    """(5, 2) template scaled to a `size` x `size` crop."""
    return ARCFACE_TEMPLATE_112 * (size / CROP_SIZE)


def template_transform(landmarks: np.ndarray, size: int = CROP_SIZE) -> SimilarityTransform:
    """Least-squares similarity (rotation, uniform scale, translation) frame -> crop.

    landmarks: (5, 2) frame pixel coordinates (x, y) in template order.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    assert landmarks.shape == (5, 2), landmarks.shape
    if not np.all(np.isfinite(landmarks)):
        raise ValueError("landmarks must be finite")
    # from_estimate returns a falsy failure object when no transform fits.
    transform = SimilarityTransform.from_estimate(landmarks, template_for(size))
    if not transform or not np.all(np.isfinite(transform.params)):
        raise ValueError("degenerate landmarks: no similarity maps them to the template")
    return transform


def align_to_template(frame: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Aligned face crop.

    frame: (H, W, 3) uint8 RGB (or (H, W) grey, returned as 3 channels);
    landmarks: (5, 2) in frame pixels. Returns (size, size, 3) uint8; pixels
    that fall outside the frame are edge-replicated, not black, so a face at
    the border does not get a hard black wedge the encoder would learn.
    """
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    assert frame.ndim == 3 and frame.shape[2] == 3, frame.shape
    transform = template_transform(landmarks, size)
    # warp() wants the map from output (crop) coordinates to input (frame) ones.
    crop = warp(frame, transform.inverse, output_shape=(size, size), order=1, mode="edge", preserve_range=True)
    return np.clip(np.rint(crop), 0, 255).astype(np.uint8)


def align_points(points: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Frame coordinates (N, 2) -> crop coordinates, for the crop aligned on `landmarks`."""
    return template_transform(landmarks, size)(np.asarray(points, dtype=np.float64))


def unalign_points(points: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Crop coordinates (N, 2) -> frame coordinates: the inverse of `align_points`."""
    return template_transform(landmarks, size).inverse(np.asarray(points, dtype=np.float64))
