"""5-point similarity alignment to the ArcFace template, and its inverse.

`align_to_template` maps a face so its eyes, nose tip and mouth corners land
on the standard ArcFace 112x112 template; `unalign_points` maps crop
coordinates back to the frame. The pair round-trips (tested), so landmarks
measured on crops can be drawn on the original video.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from PIL import Image
from skimage.transform import SimilarityTransform, warp

__all__ = ["ARCFACE_TEMPLATE_112", "CROP_SIZE", "align_points", "align_to_template", "apply_matrices", "template_for",
           "template_matrices", "template_transform", "unalign_points"]

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
    assert isinstance(transform, SimilarityTransform)  # the failure object was refused just above
    return transform


def template_matrices(landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """`template_transform` for many frames at once: (T, 5, 2) -> (T, 3, 3) frame -> crop matrices.

    Closed-form least-squares similarity in complex numbers (crop = a * frame + b),
    the same fit as Umeyama's without reflection; NaN matrices where a frame is
    not finite. Metrics over thousands of frames use this instead of a loop.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    source = points[..., 0] + 1j * points[..., 1]  # (T, 5)
    target = template_for(size) @ np.array([1, 1j])  # (5,)
    src_c = source - source.mean(axis=1, keepdims=True)
    dst_c = target - target.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (np.conj(src_c) * dst_c).sum(axis=1) / (np.abs(src_c) ** 2).sum(axis=1)  # (T,)
    b = target.mean() - a * source.mean(axis=1)  # (T,)
    matrices = np.zeros((len(points), 3, 3))
    matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 0, 2] = a.real, -a.imag, b.real
    matrices[:, 1, 0], matrices[:, 1, 1], matrices[:, 1, 2] = a.imag, a.real, b.imag
    matrices[:, 2, 2] = 1.0
    return matrices


def apply_matrices(matrices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply (T, 3, 3) affine matrices to (T, N, 2) points -> (T, N, 2)."""
    return np.einsum("tij,tnj->tni", matrices[:, :2, :2], points) + matrices[:, None, :2, 2]


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
    inverse = np.linalg.inv(transform.params)  # crop (x, y, 1) -> frame
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], np.float64)
    reach = corners @ inverse.T  # (4, 3): where the crop's corner pixels sample the frame
    height, width = frame.shape[:2]
    if frame.dtype == np.uint8 and (reach[:, :2] >= 0).all() and (reach[:, 0] <= width - 1).all() \
            and (reach[:, 1] <= height - 1).all():
        # Fast path (about 10x cheaper than warp()): the crop samples only inside the frame, so no edge
        # handling is needed. PIL puts pixel centres at +0.5, hence the half-pixel shifts.
        to_pil = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
        from_pil = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
        shift = to_pil @ inverse @ from_pil
        coefficients = tuple(shift[:2].ravel())
        return np.asarray(Image.fromarray(frame).transform((size, size), Image.Transform.AFFINE, coefficients,
                                                            resample=Image.Resampling.BILINEAR))
    # warp() wants the map from output (crop) coordinates to input (frame) ones.
    crop = warp(frame, transform.inverse, output_shape=(size, size), order=1, mode="edge", preserve_range=True)
    return np.clip(np.rint(crop), 0, 255).astype(np.uint8)


def align_points(points: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Frame coordinates (N, 2) -> crop coordinates, for the crop aligned on `landmarks`."""
    return template_transform(landmarks, size)(np.asarray(points, dtype=np.float64))


def unalign_points(points: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Crop coordinates (N, 2) -> frame coordinates: the inverse of `align_points`."""
    return template_transform(landmarks, size).inverse(np.asarray(points, dtype=np.float64))
