"""The face rig: control points from 5 landmarks, the AU displacement table, the warp field.

Control points are placed relative to the identity's eyes, nose and mouth
corners in canonical patch coordinates (eyes horizontal, IOD = PATCH_IOD).
Each action unit moves some of them by a fraction of the inter-ocular
distance (DESIGN.md section 6: 0.05-0.12 reads as the intended expression,
0.2 and more distorts). Head yaw and pitch move every point by its depth
times the sine of the angle, a cheap pseudo-3D turn.

The warp is piecewise affine: the neutral points (plus fixed points on the
patch border) are triangulated once per identity, and every patch pixel's
barycentric weights are stored in a sparse matrix, so a frame's dense
displacement field is one sparse product: field = W @ displacements.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import sparse
from scipy.spatial import Delaunay

from pipeline_lib.data.demo.identities import EYE_MID, PATCH_IOD, PATCH_SIZE, load_identity
from pipeline_lib.data.labels import AU_NAMES

__all__ = ["AU_TABLE", "Rig", "build_rig", "displacement_field"]

# Per AU: control point -> (dx outward, dy down) in inter-ocular distances.
# Bilateral points ("brow_in" means brow_in_l and brow_in_r) mirror dx.
AU_TABLE: Final[dict[str, dict[str, tuple[float, float]]]] = {
    "AU1": {"brow_in": (0.0, -0.14), "brow_mid": (0.0, -0.07), "glabella": (0.0, -0.04), "lid_up": (0.0, -0.02)},
    "AU2": {"brow_out": (0.0, -0.14), "brow_mid": (0.0, -0.08), "lid_up": (0.0, -0.02)},
    "AU4": {"brow_in": (-0.07, 0.1), "brow_mid": (-0.03, 0.09), "brow_out": (0.0, 0.04), "glabella": (0.0, 0.06),
            "lid_up": (0.0, 0.025)},
    "AU6": {"cheek": (0.0, -0.08), "lid_low": (0.0, -0.045), "eye_out": (0.0, -0.02), "cheek_out": (0.01, -0.05)},
    "AU7": {"lid_low": (0.0, -0.06), "lid_up": (0.0, 0.04), "eye_out": (-0.01, 0.0)},
    "AU10": {"lip_up": (0.0, -0.09), "lip_up_side": (0.0, -0.08), "nose_wing": (0.02, -0.045), "corner": (0.0, -0.02)},
    "AU12": {"corner": (0.1, -0.11), "lip_up_side": (0.035, -0.04), "lip_low_side": (0.035, -0.03),
             "cheek": (0.0, -0.04), "cheek_out": (0.02, -0.045)},
    "AU15": {"corner": (-0.015, 0.12), "lip_low_side": (0.0, 0.035), "lip_up_side": (0.0, 0.02)},
    "AU23": {"corner": (-0.08, 0.0), "lip_up_side": (-0.035, 0.015), "lip_low_side": (-0.035, -0.015),
             "lip_up": (0.0, 0.02), "lip_low": (0.0, -0.02)},
    "AU24": {"lip_up": (0.0, 0.035), "lip_low": (0.0, -0.045), "lip_up_side": (0.0, 0.03),
             "lip_low_side": (0.0, -0.035), "corner": (-0.025, 0.0), "chin": (0.0, -0.03)},
    "AU25": {"lip_low": (0.0, 0.10), "lip_low_side": (0.0, 0.075), "lip_up": (0.0, -0.03),
             "lip_up_side": (0.0, -0.02), "chin": (0.0, 0.04)},
    "AU26": {"chin": (0.0, 0.15), "lip_low": (0.0, 0.11), "lip_low_side": (0.0, 0.085), "jaw": (0.0, 0.08),
             "corner": (0.0, 0.03)},
}
assert tuple(AU_TABLE) == AU_NAMES

# Extra depth (in IODs) of points that stick out of the face sphere.
_NOSE_DEPTH: Final[dict[str, float]] = {"nose": 0.35, "nose_wing": 0.15, "bridge": 0.2, "lip_up": 0.08,
                                        "lip_low": 0.06}
_BORDER_STEP: Final[int] = 40  # spacing of the fixed points on the patch border, px


def _base(name: str) -> str:
    """'brow_in_l' -> 'brow_in'; midline names are their own base."""
    return name[:-2] if name.endswith(("_l", "_r")) else name


def _named_points(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Control points (units: patch px) placed relative to the 5 landmarks."""
    d = PATCH_IOD
    eyes, nose, corners = landmarks[:2], landmarks[2], landmarks[3:]
    mouth = corners.mean(0)
    mid = np.array(EYE_MID)
    pts: dict[str, np.ndarray] = {"glabella": mid + (0, -0.3 * d), "bridge": mid + (0, 0.22 * d), "nose": nose,
                                  "lip_up": mouth + (0, -0.13 * d), "lip_low": mouth + (0, 0.15 * d),
                                  "chin": mouth + (0, 0.58 * d), "forehead": mid + (0, -0.8 * d)}
    for side, s in (("l", -1.0), ("r", 1.0)):
        eye = eyes[0 if s < 0 else 1]
        corner = corners[0 if s < 0 else 1]
        half = (corner + mouth) / 2
        pts |= {
            f"eye_{side}": eye,
            f"eye_in_{side}": eye + (-s * 0.22 * d, 0),
            f"eye_out_{side}": eye + (s * 0.25 * d, 0),
            f"lid_up_{side}": eye + (0, -0.09 * d),
            f"lid_low_{side}": eye + (0, 0.09 * d),
            f"brow_in_{side}": eye + (-s * 0.2 * d, -0.33 * d),
            f"brow_mid_{side}": eye + (s * 0.03 * d, -0.41 * d),
            f"brow_out_{side}": eye + (s * 0.28 * d, -0.33 * d),
            f"cheek_{side}": eye + (s * 0.05 * d, 0.42 * d),
            f"cheek_out_{side}": eye + (s * 0.38 * d, 0.6 * d),
            f"nose_wing_{side}": nose + (s * 0.19 * d, -0.02 * d),
            f"corner_{side}": corner,
            f"lip_up_side_{side}": half + (0, -0.11 * d),
            f"lip_low_side_{side}": half + (0, 0.13 * d),
            f"jaw_{side}": mouth + (s * 0.55 * d, 0.38 * d),
        }
    return pts


def _fixed_points() -> np.ndarray:
    """Points that only move with head pose (a head-outline ring) or never (the border)."""
    d, mid = PATCH_IOD, np.array(EYE_MID)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = mid + np.stack([1.12 * d * np.cos(angles), 0.35 * d + 1.6 * d * np.sin(angles)], -1)
    edge = np.arange(0, PATCH_SIZE, _BORDER_STEP, dtype=np.float64)
    last = float(PATCH_SIZE - 1)
    border = np.concatenate([
        np.stack([edge, np.zeros_like(edge)], -1), np.stack([edge, np.full_like(edge, last)], -1),
        np.stack([np.zeros_like(edge), edge], -1), np.stack([np.full_like(edge, last), edge], -1),
        [[last, last], [last, 0.0], [0.0, last]],
    ])
    return np.concatenate([np.clip(ring, 3, PATCH_SIZE - 4), np.unique(border, axis=0)])


@dataclass(frozen=True, eq=False)
class Rig:
    """Control points of one identity and what moves them.

    points: (C, 2) neutral positions (x, y) in patch px; the first `n_face` are face points,
      then the head-outline ring, then the fixed border.
    names: names of the face points (e.g. "corner_l").
    au_basis: (12, C, 2) displacement of each point per unit AU intensity, in patch px.
    depth: (C,) pseudo-depth in patch px (0 on the border) for yaw and pitch.
    weights: sparse (PATCH_SIZE**2, C) barycentric weights of each pixel (row-major).
    """

    points: np.ndarray
    names: tuple[str, ...]
    n_face: int
    au_basis: np.ndarray
    depth: np.ndarray
    weights: sparse.csr_matrix

    def index(self, name: str) -> int:
        return self.names.index(name)

    def displacements(self, aus: np.ndarray, yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
        """(C, 2) point displacements for AU intensities `aus` (12,) and head angles (radians)."""
        disp = np.tensordot(np.asarray(aus, dtype=np.float64), self.au_basis, axes=1)
        disp[:, 0] += np.sin(yaw) * self.depth
        disp[:, 1] += np.sin(pitch) * self.depth
        return disp


def _barycentric_weights(points: np.ndarray) -> sparse.csr_matrix:
    tri = Delaunay(points)
    ys, xs = np.mgrid[0:PATCH_SIZE, 0:PATCH_SIZE]
    pixels = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float64)
    simplex = tri.find_simplex(pixels)
    simplex = np.where(simplex < 0, tri.find_simplex(np.clip(pixels, 0.01, PATCH_SIZE - 1.01)), simplex)
    simplex = np.maximum(simplex, 0)
    transform = tri.transform[simplex]  # (P, 3, 2): inverse affine then offset
    b = np.einsum("pij,pj->pi", transform[:, :2], pixels - transform[:, 2])
    bary = np.concatenate([b, 1.0 - b.sum(1, keepdims=True)], axis=1)
    rows = np.repeat(np.arange(len(pixels)), 3)
    return sparse.csr_matrix((bary.ravel(), (rows, tri.simplices[simplex].ravel())),
                             shape=(len(pixels), len(points)))


@functools.lru_cache(maxsize=256)
def build_rig(identity_name: str) -> Rig:
    """The rig of an identity (cached per process)."""
    identity = load_identity(identity_name)
    named = _named_points(identity.landmarks.astype(np.float64))
    names = tuple(named)
    face = np.clip(np.stack([named[n] for n in names]), 3, PATCH_SIZE - 4)
    fixed = _fixed_points()
    points = np.concatenate([face, fixed])
    n_face, n_ring = len(face), 16

    basis = np.zeros((len(AU_NAMES), len(points), 2))
    for a, au in enumerate(AU_NAMES):
        for base, (dx, dy) in AU_TABLE[au].items():
            for i, name in enumerate(names):
                if _base(name) == base:
                    side = -1.0 if name.endswith("_l") else 1.0 if name.endswith("_r") else 0.0
                    basis[a, i] = (side * dx * PATCH_IOD, dy * PATCH_IOD)

    rel = (points - np.array(EYE_MID)) / PATCH_IOD
    sphere = 0.9 * np.sqrt(np.clip(1.0 - (rel[:, 0] / 1.3) ** 2 - ((rel[:, 1] - 0.35) / 1.9) ** 2, 0.0, None))
    extra = np.array([_NOSE_DEPTH.get(_base(n), 0.0) for n in names]
                     + [0.0] * len(fixed))
    depth = (sphere + extra) * PATCH_IOD
    depth[n_face + n_ring:] = 0.0
    return Rig(points=points, names=names, n_face=n_face, au_basis=basis, depth=depth,
               weights=_barycentric_weights(points))


def displacement_field(rig: Rig, disp: np.ndarray) -> np.ndarray:
    """(2, PATCH_SIZE, PATCH_SIZE) dense forward displacement (dx, dy) of every patch pixel."""
    field = rig.weights @ disp  # (P, 2)
    return field.T.reshape(2, PATCH_SIZE, PATCH_SIZE)
