"""The `mesh` extractor: MediaPipe's 52 blendshapes, head pose and a compact geometry of its 478 points.

Per frame, 78 numbers (MESH_COLUMNS):
- the 52 blendshapes (0..1), the landmarker's own reading of brows, lids, cheeks, lips and jaw;
- head pose: yaw, pitch, roll (radians) and translation (cm) of the face's canonical-model transform;
- 20 distances between mesh points that action units move, in inter-ocular distances (outer eye
  corners), measured in the eye-line frame so in-plane roll does not leak in: brow raise (inner, mid,
  outer, each side), brow gap, eye opening, cheek-to-lid, mouth width and opening, lip-corner height,
  nasolabial length, upper-lip-to-nose and chin-to-lip distances.
Identity (a wide mouth, high brows) is the per-video mean, which every reader
of the feature store removes (`center_per_video`). Frames where the
landmarker finds no face are not valid, as frames without a face are.

The zero-shot AU baseline (`blendshape_au_scores`) reads the blendshape
columns through a fixed map documented in AU_BLENDSHAPES.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

import numpy as np
from scipy.spatial.transform import Rotation

from pipeline_lib.data.labels import AU_NAMES
from pipeline_lib.faces.mesh import BLENDSHAPES, FaceMesh, MeshFrames, store_blocks
from pipeline_lib.faces.store import open_face_store

__all__ = ["AU_BLENDSHAPES", "MESH", "MESH_COLUMNS", "MESH_VERSION", "blendshape_au_scores", "mesh_features",
           "mesh_store_features", "read_mesh_store"]

MESH: Final[str] = "mesh"
MESH_VERSION: Final[str] = "mediapipe-1.2.3-blend52-pose6-geo20-v1"  # provenance: bump when the features change

# MediaPipe canonical-mesh indices (image left = the subject's right).
_EYE_OUTER: Final[tuple[int, int]] = (33, 263)
# name -> (point a, point b, kind): "dist" = |a - b|, "dy" = b.y - a.y in the eye-line frame (down positive)
_GEOMETRY: Final[dict[str, tuple[int, int, str]]] = {
    "brow_inner_raise_r": (107, 133, "dy"), "brow_inner_raise_l": (336, 362, "dy"),
    "brow_mid_raise_r": (105, 159, "dy"), "brow_mid_raise_l": (334, 386, "dy"),
    "brow_outer_raise_r": (70, 33, "dy"), "brow_outer_raise_l": (300, 263, "dy"),
    "brow_gap": (107, 336, "dist"),
    "eye_open_r": (159, 145, "dy"), "eye_open_l": (386, 374, "dy"),
    "cheek_lid_r": (145, 50, "dy"), "cheek_lid_l": (374, 280, "dy"),
    "mouth_width": (61, 291, "dist"), "mouth_open": (13, 14, "dy"),
    "corner_drop_r": (13, 61, "dy"), "corner_drop_l": (13, 291, "dy"),
    "nasolabial_r": (98, 61, "dist"), "nasolabial_l": (327, 291, "dist"),
    "lip_to_nose": (1, 0, "dy"), "chin_to_lip": (17, 152, "dy"),
    "jaw_drop": (1, 152, "dy"),
}
_POSE: Final[tuple[str, ...]] = ("yaw", "pitch", "roll", "tx", "ty", "tz")
MESH_COLUMNS: Final[tuple[str, ...]] = (*BLENDSHAPES, *_POSE, *_GEOMETRY)

# The zero-shot map: each ABAW AU's score is the mean of these blendshapes (both sides where there are two),
# from the Facial Action Coding System's description of each AU and ARKit's of each blendshape, fixed before
# any scoring:
# - AU6 (cheek raiser) also reads eyeSquint: the model's cheekSquint stays at 0 on every face we ran it on
#   (real photos and the demo), and the cheek's rise shows in it as the lower lid narrowing the eye;
# - AU23 (lip tightener) thins the lip red, which ARKit calls mouthRoll (lips turned in); AU24 (lip pressor)
#   presses the lips together: mouthPress;
# - AU25 (lips part) reads the lower lip's drop as well as the jaw's; AU26 (jaw drop) the jaw alone.
AU_BLENDSHAPES: Final[dict[str, tuple[str, ...]]] = {
    "AU1": ("browInnerUp",),
    "AU2": ("browOuterUpLeft", "browOuterUpRight"),
    "AU4": ("browDownLeft", "browDownRight"),
    "AU6": ("cheekSquintLeft", "cheekSquintRight", "eyeSquintLeft", "eyeSquintRight"),
    "AU7": ("eyeSquintLeft", "eyeSquintRight"),
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),
    "AU23": ("mouthRollLower", "mouthRollUpper"),
    "AU24": ("mouthPressLeft", "mouthPressRight"),
    "AU25": ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight"),
    "AU26": ("jawOpen",),
}
assert tuple(AU_BLENDSHAPES) == AU_NAMES


def _pose(matrices: np.ndarray) -> np.ndarray:
    """(N, 6) yaw, pitch, roll (radians) and translation of (N, 4, 4) face transforms."""
    # intrinsic Y (yaw), X (pitch), Z (roll): the order that keeps a frontal face at 0, 0, 0
    angles = Rotation.from_matrix(matrices[:, :3, :3].astype(np.float64)).as_euler("YXZ")  # (N, 3)
    return np.concatenate([angles, matrices[:, :3, 3]], axis=1)


def _geometry(points: np.ndarray) -> np.ndarray:
    """(N, G) distances of _GEOMETRY over (N, 478, 3) points, in inter-ocular distances, eye-line frame."""
    xy = points[..., :2].astype(np.float64)  # (N, 478, 2)
    axis = xy[:, _EYE_OUTER[1]] - xy[:, _EYE_OUTER[0]]  # (N, 2) along the eye line
    iod = np.linalg.norm(axis, axis=1, keepdims=True)  # (N, 1)
    along = axis / iod
    down = np.stack([-along[:, 1], along[:, 0]], axis=1)  # (N, 2) perpendicular, image-down for an upright face
    columns = []
    for a, b, kind in _GEOMETRY.values():
        delta = xy[:, b] - xy[:, a]  # (N, 2)
        value = np.linalg.norm(delta, axis=1) if kind == "dist" else (delta * down).sum(1)
        columns.append(value / iod[:, 0])
    return np.stack(columns, axis=1)


def mesh_features(frames: MeshFrames) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, 78) float32 in MESH_COLUMNS order, valid (N,) bool) of the landmarker's output."""
    out = np.zeros((len(frames.found), len(MESH_COLUMNS)), np.float32)
    valid = frames.found.copy()
    if valid.any():
        rows = np.flatnonzero(valid)
        with np.errstate(invalid="ignore", divide="ignore"):  # a degenerate mesh: NaN, made invalid below
            geometry = _geometry(frames.points[rows])
        values = np.concatenate([frames.blendshapes[rows], _pose(frames.pose[rows]), geometry], axis=1)
        ok = np.isfinite(values).all(1)  # a degenerate mesh (all points on one spot) has no eye line
        out[rows[ok]] = values[ok]
        valid[rows[~ok]] = False
    return out, valid


def mesh_store_features(face_store: Path, blocks: Iterable[tuple[slice, MeshFrames]]) -> tuple[np.ndarray, np.ndarray]:
    """(features (T, 78) float32, valid (T,) bool) of one face store from the landmarker's output on its crops
    (`faces.mesh.store_blocks`: a generator landmarks block by block; a list lets one pass feed the overlay too)."""
    with open_face_store(face_store) as h5:
        n = len(h5["present"])
    out = np.zeros((n, len(MESH_COLUMNS)), np.float32)
    valid = np.zeros(n, bool)
    for rows, found in blocks:
        out[rows], valid[rows] = mesh_features(found)
    return out, valid


def read_mesh_store(face_store: Path, model: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`mesh_store_features` of a face store with its own landmarker, opened and closed here.

    Top-level and free of torch, so `features.workers` processes run it without importing torch (~0.5 GB
    of RSS a process spared).
    """
    with FaceMesh(model) as mesh:  # ~0.07 s to open; closed before the next video: no native threads linger
        return mesh_store_features(face_store, store_blocks(face_store, mesh))


def blendshape_au_scores(features: np.ndarray) -> np.ndarray:
    """(N, 12) zero-shot AU scores in 0..1 (AU_NAMES order) from `mesh` features (N, 78), via AU_BLENDSHAPES."""
    index = {name: i for i, name in enumerate(MESH_COLUMNS)}
    return np.stack([features[:, [index[b] for b in AU_BLENDSHAPES[au]]].astype(np.float32).mean(1)
                     for au in AU_NAMES], axis=1)
