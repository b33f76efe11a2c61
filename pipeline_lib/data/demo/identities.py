"""Identity photos of the demo corpus, their 5 MTCNN landmarks, and the train/val split.

Sources (all ship inside installed packages, no download):
matplotlib's ``sample_data/grace_hopper.jpg``, scikit-image's ``astronaut``
and ``camera``, and the first 100 images of ``lfw_subset`` (25x25 grey faces,
upscaled here to 100x100). Landmarks and boxes were measured once with
facenet-pytorch's MTCNN (`measure_landmarks`) and are stored in
`_landmark_table.py`, so generation needs no torch and is bit-stable across
machines.

Each identity is turned into a canonical *face patch*: an RGBA float32 image
of PATCH_SIZE pixels, rotated so the eyes are horizontal, scaled so the
inter-ocular distance is PATCH_IOD pixels, with the eye midpoint at
EYE_MID. The alpha channel is a feathered head ellipse (cut to the valid
area of the source photo). Grey photos get a per-identity skin tint.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import ndimage

from pipeline_lib.data.demo._landmark_table import SOURCE_FACES

__all__ = [
    "EYE_MID", "PATCH_IOD", "PATCH_SIZE", "Identity", "identity_pool", "load_identity", "load_source_image",
    "measure_landmarks", "source_names", "split_identities",
]

PATCH_IOD: Final[float] = 36.0  # inter-ocular distance in patch pixels
PATCH_SIZE: Final[int] = 160
EYE_MID: Final[tuple[float, float]] = (80.0, 68.0)  # (x, y) of the eye midpoint in the patch
LFW_SIZE: Final[int] = 100  # lfw_subset faces (25x25) are upscaled to this
# Head ellipse (alpha mask): centre (x, y) relative to the eye midpoint and half axes, in IODs.
_HEAD: Final[tuple[tuple[float, float], tuple[float, float]]] = ((0.0, 0.35), (1.25, 1.75))
# camera's face is a small 3/4 profile behind a camera: keep most of the photo around it.
_HEAD_OVERRIDES: Final[dict[str, tuple[tuple[float, float], tuple[float, float]]]] = {
    "camera": ((-0.3, 0.4), (2.1, 2.2)),
}
_FEATHER: Final[float] = 0.12  # alpha ramp width, in IODs
# lfw faces MTCNN finds too rarely once animated (measured: 3 clips x 15 frames each with
# tests' nuisance; lfw_013, a dark low-contrast face, 84%; every other face >= 93%).
HARD_TO_DETECT: Final[frozenset[str]] = frozenset({"lfw_013"})


def source_names(n_lfw: int = 100) -> list[str]:
    """All identity names in a fixed order: the three big photos, then lfw_000.."""
    return ["grace_hopper", "astronaut", "camera"] + [f"lfw_{i:03d}" for i in range(n_lfw)]


def load_source_image(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB source photo of `name` (lfw faces upscaled to 100x100)."""
    import skimage.data

    if name == "grace_hopper":
        import matplotlib.cbook
        from PIL import Image

        with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
            return np.asarray(im.convert("RGB"))
    if name == "astronaut":
        return skimage.data.astronaut()
    if name == "camera":
        return np.repeat(skimage.data.camera()[:, :, None], 3, axis=2)
    if name.startswith("lfw_"):
        from skimage.transform import resize

        face = _lfw_faces()[int(name[4:])]
        big = resize(face, (LFW_SIZE, LFW_SIZE), order=3, mode="edge", anti_aliasing=False)
        grey = np.clip(np.rint(big * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    raise KeyError(f"unknown demo identity {name!r}")


@functools.lru_cache(maxsize=1)
def _lfw_faces() -> np.ndarray:
    import skimage.data

    return skimage.data.lfw_subset()


def _enhance_lfw(image: np.ndarray) -> np.ndarray:
    """Half-strength contrast stretch and a mild unsharp mask: 25 px faces upscaled 4x are flat and soft."""
    low, high = np.percentile(image, [2, 98])
    stretched = 0.5 * image + 0.5 * ((image - low) / max(high - low, 1.0) * 210.0 + 25.0)
    soft = ndimage.gaussian_filter(stretched, sigma=(1.2, 1.2, 0))
    return np.clip(stretched + 0.35 * (stretched - soft), 0, 255)


def measure_landmarks(names: list[str]) -> dict[str, tuple[list[float], list[list[float]]]]:
    """Run MTCNN on each source photo: name -> (box [x0, y0, x1, y1], 5 landmarks (x, y)).

    Used to (re)build `_landmark_table.py`; small lfw faces are padded with grey
    first (MTCNN misses faces that touch the border). Photos without a face are left out.
    """
    from facenet_pytorch import MTCNN

    detector = MTCNN(keep_all=True, device="cpu")
    found: dict[str, tuple[list[float], list[list[float]]]] = {}
    for name in names:
        image = load_source_image(name)
        pad = 30 if name.startswith("lfw_") else 0
        canvas = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), constant_values=128)
        boxes, probs, points = detector.detect(canvas, landmarks=True)
        if boxes is None:
            continue
        best = int(np.argmax(probs))
        found[name] = (
            [round(float(v) - pad, 2) for v in boxes[best]],
            [[round(float(x) - pad, 2), round(float(y) - pad, 2)] for x, y in points[best]],
        )
    return found


def _usable_lfw() -> list[str]:
    return [n for n in source_names() if n.startswith("lfw_") and n in SOURCE_FACES and n not in HARD_TO_DETECT]


def identity_pool(lfw_identities: int) -> list[str]:
    """Names used by labelled videos: the three big photos plus the first `lfw_identities` usable lfw faces."""
    return [n for n in source_names(0) if n in SOURCE_FACES] + _usable_lfw()[:lfw_identities]


def spare_identities(lfw_identities: int) -> list[str]:
    """Usable lfw faces left out of the pool (used only by unlabelled videos)."""
    return _usable_lfw()[lfw_identities:]


def split_identities(pool: list[str], val_share: float, seed: int) -> tuple[list[str], list[str]]:
    """Disjoint (train, val) identity lists; Grace Hopper always trains, each side gets >= 1."""
    rng = np.random.default_rng([seed, 7001])
    rest = [n for n in pool if n != "grace_hopper"]
    order = [rest[i] for i in rng.permutation(len(rest))]
    n_val = min(max(1, round(val_share * len(pool))), len(order))
    val = sorted(order[:n_val])
    train = [n for n in pool if n not in val]
    if not train:  # a pool of one: nothing to hold out
        return list(pool), list(pool)
    return train, val


@dataclass(frozen=True, eq=False)
class Identity:
    """One face photo in canonical patch coordinates (see the module docstring).

    rgba: (PATCH_SIZE, PATCH_SIZE, 4) float32, colour 0..255 and alpha 0..1.
    landmarks: (5, 2) float32 (x, y), MTCNN order: eyes, nose, mouth corners (image-left first).
    box: (4,) float32 MTCNN box [x0, y0, x1, y1] in patch coordinates.
    skin, lid: RGB float32 mean colours of the cheek and the upper eyelid.
    extent: (4,) float32 [x0, y0, x1, y1] around the pixels with alpha > 0, plus a margin for pose warps.
    """

    name: str
    rgba: np.ndarray
    landmarks: np.ndarray
    box: np.ndarray
    skin: np.ndarray
    lid: np.ndarray
    extent: np.ndarray


def _source_to_patch(eyes: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Similarity source -> patch: (scale, angle, translation) aligning the eyes."""
    left, right = eyes
    delta = right - left
    scale = PATCH_IOD / float(np.hypot(*delta))
    angle = float(np.arctan2(delta[1], delta[0]))
    return scale, angle, (left + right) / 2.0


def _skin_tint(name: str) -> np.ndarray:
    """A per-identity RGB multiplier for grey photos (pale to darker skin)."""
    rng = np.random.default_rng([abs(hash_name(name)), 31])
    warmth = rng.uniform(0.55, 1.0)
    return np.array([1.0 + 0.10 * warmth, 1.0 - 0.02 * warmth, 1.0 - 0.16 * warmth], dtype=np.float32)


def hash_name(name: str) -> int:
    """A stable (process-independent) integer for a name; Python's hash() is salted."""
    return int.from_bytes(name.encode("utf-8")[:16].ljust(16, b"\0"), "little") % (2**63)


@functools.lru_cache(maxsize=256)
def load_identity(name: str) -> Identity:
    """Build (and cache per process) the canonical face patch of `name`."""
    box_src, points_src = (np.asarray(a, dtype=np.float64) for a in SOURCE_FACES[name])
    image = load_source_image(name).astype(np.float32)
    if name.startswith("lfw_"):
        image = _enhance_lfw(image)
    if name == "camera" or name.startswith("lfw_"):
        image = image * _skin_tint(name)
    scale, angle, centre = _source_to_patch(points_src[:2])
    cos, sin = np.cos(angle), np.sin(angle)

    # Inverse map: patch pixel -> source pixel.
    ys, xs = np.mgrid[0:PATCH_SIZE, 0:PATCH_SIZE].astype(np.float64)
    px, py = (xs - EYE_MID[0]) / scale, (ys - EYE_MID[1]) / scale
    sx = centre[0] + cos * px - sin * py
    sy = centre[1] + sin * px + cos * py
    channels = [ndimage.map_coordinates(image[:, :, c], [sy, sx], order=1, mode="nearest") for c in range(3)]
    rgb = np.stack(channels, axis=-1)

    # Alpha: feathered head ellipse, times a feathered "inside the photo" mask.
    d = PATCH_IOD
    (hx, hy), (ax, ay) = _HEAD_OVERRIDES.get(name, _HEAD)
    ex, ey = (xs - EYE_MID[0] - hx * d) / (ax * d), (ys - EYE_MID[1] - hy * d) / (ay * d)
    radius = np.sqrt(ex**2 + ey**2)
    alpha = np.clip((1.0 - radius) / (_FEATHER * 1.2), 0.0, 1.0)
    h, w = image.shape[:2]
    margin = np.minimum.reduce([sx, sy, (w - 1) - sx, (h - 1) - sy]) * scale  # distance to the edge, patch px
    alpha *= np.clip(margin / (_FEATHER * d), 0.0, 1.0)

    def to_patch(p: np.ndarray) -> np.ndarray:
        q = (p - centre) * scale
        return np.stack([cos * q[..., 0] + sin * q[..., 1], -sin * q[..., 0] + cos * q[..., 1]], -1) + EYE_MID

    landmarks = to_patch(points_src).astype(np.float32)
    corners = to_patch(np.array([[box_src[0], box_src[1]], [box_src[2], box_src[1]],
                                 [box_src[0], box_src[3]], [box_src[2], box_src[3]]]))
    box = np.array([*corners.min(0), *corners.max(0)], dtype=np.float32)

    def mean_colour(x: float, y: float, r: int = 3) -> np.ndarray:
        xi, yi = int(round(x)), int(round(y))
        return rgb[yi - r: yi + r + 1, xi - r: xi + r + 1].reshape(-1, 3).mean(0).astype(np.float32)

    skin = mean_colour(EYE_MID[0], (landmarks[2, 1] + EYE_MID[1]) / 2 + 4)  # between nose and eyes
    lid = (mean_colour(landmarks[0, 0], landmarks[0, 1] - 0.2 * d, 2)
           + mean_colour(landmarks[1, 0], landmarks[1, 1] - 0.2 * d, 2)) / 2
    rgba = np.concatenate([np.clip(rgb, 0, 255), alpha[..., None]], axis=-1).astype(np.float32)
    rows, cols = np.flatnonzero(alpha.max(1) > 0), np.flatnonzero(alpha.max(0) > 0)
    margin = 0.2 * d
    extent = np.clip([cols[0] - margin, rows[0] - margin, cols[-1] + margin, rows[-1] + margin], 0, PATCH_SIZE)
    extent = extent.astype(np.float32)
    for array in (rgba, landmarks, box, skin, lid, extent):
        array.setflags(write=False)
    return Identity(name=name, rgba=rgba, landmarks=landmarks, box=box, skin=skin, lid=lid, extent=extent)
