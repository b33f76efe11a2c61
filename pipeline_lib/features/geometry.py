"""The `landmarks` extractor: face-shape geometry from the face stage's 5 points, no network.

Each frame's landmarks are mapped into the aligned crop by the same
similarity fit that made the crop (so head position, size and in-plane
roll are gone) and the template is subtracted: what is left is how this
face's eyes, nose tip and mouth corners sit relative to the canonical
face, in crop fractions. A smile pulls the mouth corners up and apart,
an open mouth narrows them, and so on; identity lives in the per-video
mean, which every downstream reader removes (`center_per_video`).

Geometric cues are a standard complement to appearance features in
affect recognition. Five points see only part of a face (no brows, no
wrinkles), so on real video they back up the encoders rather than
replace them; on the demo corpus, whose expressions are drawn by moving
facial points, they are unusually strong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np

from pipeline_lib.faces.align import CROP_SIZE, apply_matrices, template_for, template_matrices
from pipeline_lib.faces.store import open_face_store

__all__ = ["GEOMETRY_VERSION", "LANDMARKS", "landmark_features", "landmark_store_features"]

LANDMARKS: Final[str] = "landmarks"
GEOMETRY_VERSION: Final[str] = "5pt-aligned-residual-v1"  # part of the provenance: bump when the features change
WIDTH: Final[int] = 10


def landmark_features(landmarks: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features (T, 10) float32, valid (T,) bool): aligned landmarks minus the template, in crop fractions.

    landmarks: (T, 5, 2) frame pixels (NaN where absent); present: (T,) bool. Rows without a face, or
    whose points admit no similarity fit, are zero and not valid.
    """
    present = np.asarray(present, bool) & np.isfinite(landmarks).all(axis=(1, 2))
    out = np.zeros((len(present), WIDTH), np.float32)
    if present.any():
        points = landmarks[present].astype(np.float64)  # (N, 5, 2)
        aligned = apply_matrices(template_matrices(points), points)  # (N, 5, 2) crop pixels
        residual = (aligned - template_for()) / CROP_SIZE  # (N, 5, 2)
        ok = np.isfinite(residual).all(axis=(1, 2))  # a degenerate fit (all points equal) gives NaN
        rows = np.flatnonzero(present)  # (N,)
        out[rows[ok]] = residual[ok].reshape(-1, WIDTH)
        present[rows[~ok]] = False
    return out, present


def landmark_store_features(face_store: Path) -> tuple[np.ndarray, np.ndarray]:
    """(features (T, 10) float32, valid (T,) bool) of one face store."""
    with open_face_store(face_store) as h5:
        present = h5["present"][...].astype(bool)  # (T,)
        landmarks = h5["landmarks"][...]  # (T, 5, 2)
    return landmark_features(landmarks, present)
