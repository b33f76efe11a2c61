"""Face-extraction quality: landmark error, jitter and eye roll at crop scale, and sample grids.

Why crop scale: the downstream encoder only ever sees the aligned 112x112 crop,
so a landmark error matters in proportion to how far it moves the crop, not in
raw frame pixels (3 px on a 400 px face is nothing; on a 40 px face it is a
misaligned crop). Every distance here is therefore mapped through the
similarity `template_transform` that makes the crop, which divides out face
size and in-plane rotation.

The demo corpus ships ground truth (`data/raw/demo_truth/<name>.npz`), so
`compare_to_truth` can score detection, false crops, landmark error and
alignment roll against it; `landmark_jitter` needs no truth at all and says
whether crops shake from frame to frame (which a temporal model would learn as
fake motion). `save_sample_grid` is the eyeball check that numbers cannot
replace.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline_lib.faces.align import CROP_SIZE, apply_matrices, template_for, template_matrices

__all__ = ["compare_to_truth", "crop_scale_distance", "crop_scale_max_distance", "eye_roll_degrees",
           "landmark_jitter", "pick_samples", "save_sample_grid"]

_LEFT_EYE: Final[int] = 0
_RIGHT_EYE: Final[int] = 1
_WITHIN_PX: Final[float] = 3.0  # "good" landmark error at 112x112: a few pixels barely moves the crop


def _check_landmarks(name: str, landmarks: np.ndarray) -> np.ndarray:
    """As float64 (T, 5, 2), or ValueError naming the argument."""
    array = np.asarray(landmarks, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (5, 2):
        raise ValueError(f"{name}: expected (T, 5, 2) landmarks, got {array.shape}")
    return array


def _finite_frames(*arrays: np.ndarray) -> np.ndarray:
    """(T,) bool: frames where every (T, 5, 2) array is entirely finite."""
    ok = np.ones(len(arrays[0]), dtype=bool)
    for array in arrays:
        ok &= np.isfinite(array).all(axis=(1, 2))
    return ok


def _crop_scale_point_distances(landmarks: np.ndarray, reference: np.ndarray, size: int) -> np.ndarray:
    """(T, 5) per-point distances in crop pixels, NaN rows where either frame is not finite."""
    landmarks = _check_landmarks("landmarks", landmarks)  # (T, 5, 2)
    reference = _check_landmarks("reference", reference)  # (T, 5, 2)
    if landmarks.shape != reference.shape:
        raise ValueError(f"landmarks {landmarks.shape} and reference {reference.shape} differ in length")
    # The crop is defined by the reference (with reference = truth, the crop
    # we *should* have made), so both sets are measured in its pixels.
    matrices = template_matrices(reference, size)  # (T, 3, 3)
    out = np.linalg.norm(apply_matrices(matrices, landmarks) - apply_matrices(matrices, reference), axis=2)  # (T, 5)
    out[~_finite_frames(landmarks, reference)] = np.nan
    return out


def crop_scale_distance(landmarks: np.ndarray, reference: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Mean landmark disagreement in pixels of the `size` x `size` crop aligned on `reference`.

    landmarks, reference: (T, 5, 2) frame pixels. Returns (T,) float64, NaN
    where either frame has any NaN (absent face), so callers choose how to
    treat absence instead of it silently counting as zero error.
    """
    with np.errstate(invalid="ignore"):
        return _crop_scale_point_distances(landmarks, reference, size).mean(axis=1)


def crop_scale_max_distance(landmarks: np.ndarray, reference: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Like `crop_scale_distance` but the worst of the 5 points: one wild point hides in a mean."""
    return _crop_scale_point_distances(landmarks, reference, size).max(axis=1)


def landmark_jitter(landmarks: np.ndarray, present: np.ndarray, size: int = CROP_SIZE) -> float:
    """Frame-to-frame landmark noise in crop pixels, without ground truth.

    Uses the second difference L[t+1] - 2 L[t] + L[t-1] over runs of three
    present (and finite) frames: it is zero for motion at constant velocity, so
    a moving head scores ~0 while detector noise (which the aligned crops turn
    into shaking) scores high. Each frame's second difference is scaled by the
    similarity scale of the crop aligned on L[t], then the 5 point norms are
    averaged; the result is the mean over such frames, NaN if there are none.
    An alternating +/-e px noise gives 4 e times that scale.
    """
    landmarks = _check_landmarks("landmarks", landmarks)  # (T, 5, 2)
    present = np.asarray(present, dtype=bool)  # (T,)
    if present.shape != landmarks.shape[:1]:
        raise ValueError(f"present {present.shape} does not match landmarks {landmarks.shape}")
    usable = present & _finite_frames(landmarks)  # (T,)
    if len(usable) < 3:
        return math.nan
    middle = np.flatnonzero(usable[:-2] & usable[1:-1] & usable[2:]) + 1  # (M,) frames t with t-1, t+1 usable
    if middle.size == 0:
        return math.nan
    second = landmarks[middle + 1] - 2.0 * landmarks[middle] + landmarks[middle - 1]  # (M, 5, 2) frame px
    matrices = template_matrices(landmarks[middle], size)  # (M, 3, 3)
    scales = np.hypot(matrices[:, 0, 0], matrices[:, 1, 0])  # (M,) crop px / frame px
    per_frame = np.linalg.norm(second, axis=2).mean(axis=1) * scales  # (M,) crop px
    return float(per_frame.mean())


def _eye_angle_deg(points: np.ndarray) -> float:
    """Angle of the left->right eye vector of (5, 2) points, degrees, image axes (y down)."""
    dx, dy = points[_RIGHT_EYE] - points[_LEFT_EYE]
    return math.degrees(math.atan2(dy, dx))


def eye_roll_degrees(landmarks: np.ndarray, reference: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Roll of the `reference` eye line inside the crop aligned on `landmarks`, degrees.

    With reference = ground truth and landmarks = detections this answers "are
    the true eyes level in the crops we actually made?": a detector that is
    accurate on average but rotates the crop shows up here, not in a distance.

    0 means the reference eyes lie parallel to the template's eye line (the
    ArcFace template's own eye line is about -0.32 deg from horizontal; we
    measure relative to it so that a perfect alignment reads exactly 0).
    Sign, in image coordinates (y down): positive = the right eye (index 1,
    larger x) sits lower in the crop than the template puts it, i.e. the face
    appears rotated clockwise on screen. Returns (T,) float64, NaN where either
    frame is not entirely finite. Angles are wrapped to (-180, 180].
    """
    landmarks = _check_landmarks("landmarks", landmarks)  # (T, 5, 2)
    reference = _check_landmarks("reference", reference)  # (T, 5, 2)
    if landmarks.shape != reference.shape:
        raise ValueError(f"landmarks {landmarks.shape} and reference {reference.shape} differ in length")
    level = _eye_angle_deg(template_for(size))
    eyes = apply_matrices(template_matrices(landmarks, size), reference[:, [_LEFT_EYE, _RIGHT_EYE]])  # (T, 2, 2)
    delta = eyes[:, 1] - eyes[:, 0]  # (T, 2)
    angle = np.degrees(np.arctan2(delta[:, 1], delta[:, 0])) - level
    out = -((-angle + 180.0) % 360.0 - 180.0)  # wrap to (-180, 180]
    out[~_finite_frames(landmarks, reference)] = np.nan
    return out


def _json_number(value: float) -> float | None:
    """Rounded plain float, None for NaN/inf so the result is strict JSON."""
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None


def compare_to_truth(present: np.ndarray, filled: np.ndarray, landmarks: np.ndarray, truth_present: np.ndarray,
                     truth_landmarks: np.ndarray, size: int = CROP_SIZE) -> dict[str, float | int | None]:
    """Score one subject's face track against the demo corpus ground truth.

    present, filled (T,) bool and landmarks (T, 5, 2) frame px come from the
    `FaceTrack`; truth_present (T',) bool and truth_landmarks (T', 5, 2) from
    the truth npz (`face_present`, `landmarks`). Decoded and truth lengths can
    differ by a few frames (container vs generator frame counts), so only the
    common prefix is compared.

    Filled frames count as crops (they are fed to the encoder, so a filled crop
    on a face-less frame is a false crop) but not as detections, and landmark
    error, roll and jitter use detected frames only: filled landmarks are
    interpolated and would flatter the detector. Floats are rounded to 4
    decimals; a metric with no frames to average is None, not NaN, so the dict
    is JSON-able as is.
    """
    n = min(len(present), len(filled), len(landmarks), len(truth_present), len(truth_landmarks))
    present = np.asarray(present, dtype=bool)[:n]  # (n,)
    filled = np.asarray(filled, dtype=bool)[:n]  # (n,)
    face = np.asarray(truth_present, dtype=bool)[:n]  # (n,)
    landmarks = _check_landmarks("landmarks", landmarks)[:n]  # (n, 5, 2)
    truth_landmarks = _check_landmarks("truth_landmarks", truth_landmarks)[:n]  # (n, 5, 2)

    detected = present & ~filled & face  # (n,)
    face_frames, n_detected = int(face.sum()), int(detected.sum())
    faceless = ~face

    distance = crop_scale_distance(landmarks, truth_landmarks, size)[detected]  # (D,)
    distance = distance[np.isfinite(distance)]
    roll = np.abs(eye_roll_degrees(landmarks, truth_landmarks, size)[detected])  # (D,)
    roll = roll[np.isfinite(roll)]
    return {
        "face_frames": face_frames,
        "detected": n_detected,
        "detection_rate": _json_number(n_detected / face_frames if face_frames else math.nan),
        "faceless_frames": int(faceless.sum()),
        "false_crops": int((present & faceless).sum()),
        "landmark_error_px": _json_number(distance.mean() if distance.size else math.nan),
        "landmark_within_3px": _json_number((distance <= _WITHIN_PX).mean() if distance.size else math.nan),
        "eye_roll_deg_mean_abs": _json_number(roll.mean() if roll.size else math.nan),
        "eye_roll_deg_p95_abs": _json_number(np.percentile(roll, 95) if roll.size else math.nan),
        "jitter_px": _json_number(landmark_jitter(landmarks, detected, size)),
        # The truth's own second difference on the same frames: real head motion
        # is not perfectly linear, so this is the floor jitter_px is read against.
        "truth_jitter_px": _json_number(landmark_jitter(truth_landmarks, detected, size)),
    }


def pick_samples(present: np.ndarray, k: int, rng_seed: int = 0) -> np.ndarray:
    """Up to k sorted frame indices spread evenly over the present frames.

    The present frames are cut into k equal consecutive strata and one frame is
    drawn from each with a seeded generator: the sample covers the whole video
    (a problem confined to one scene is not missed) without always landing on
    the same phase of each stratum, and the same seed gives the same frames.
    Returns (min(k, n_present),) int64.
    """
    candidates = np.flatnonzero(np.asarray(present, dtype=bool))  # (P,)
    if k <= 0 or candidates.size == 0:
        return np.zeros(0, dtype=np.int64)
    if candidates.size <= k:
        return candidates.astype(np.int64)
    rng = np.random.default_rng(rng_seed)
    edges = np.linspace(0, candidates.size, k + 1).astype(np.int64)  # (k+1,) strictly increasing as P > k
    chosen = [candidates[rng.integers(lo, hi)] for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return np.asarray(chosen, dtype=np.int64)


def save_sample_grid(crops: list[np.ndarray], crop_landmarks: list[np.ndarray | None], titles: list[str],
                     path: Path, columns: int = 8) -> None:
    """PNG grid of aligned crops with their landmarks (dots) over the template points (faint crosses).

    crops: (S, S, 3) uint8 each; crop_landmarks: (5, 2) in crop pixels or None.
    A dot far from its cross is a misaligned crop at a glance. Uses a bare
    `Figure` + Agg canvas, never pyplot, so no global figure state leaks into
    a long-running stage. Zero crops still writes a figure saying "no faces",
    so a report always has its image.
    """
    if not len(crops) == len(crop_landmarks) == len(titles):
        raise ValueError(f"{len(crops)} crops, {len(crop_landmarks)} landmark sets, {len(titles)} titles")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not crops:
        figure = Figure(figsize=(3.0, 1.5))
        FigureCanvasAgg(figure)
        figure.text(0.5, 0.5, "no faces", ha="center", va="center", fontsize=14)
        figure.savefig(path, dpi=100)
        return

    columns = max(1, min(columns, len(crops)))
    rows = math.ceil(len(crops) / columns)
    figure = Figure(figsize=(1.6 * columns, 1.8 * rows))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)  # (rows, columns)
    for index, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if index >= len(crops):
            continue
        crop = np.asarray(crops[index])
        size = crop.shape[0]
        ax.imshow(crop, interpolation="nearest")
        template = template_for(size)  # (5, 2)
        ax.scatter(template[:, 0], template[:, 1], marker="x", s=14, c="white", alpha=0.45, linewidths=0.8)
        points = crop_landmarks[index]
        if points is not None:
            points = np.asarray(points, dtype=np.float64)  # (5, 2)
            ax.scatter(points[:, 0], points[:, 1], s=6, c="lime", edgecolors="none")
        ax.set_xlim(-0.5, size - 0.5)
        ax.set_ylim(size - 0.5, -0.5)
        ax.set_title(titles[index], fontsize=6)
    figure.tight_layout(pad=0.3)
    figure.savefig(path, dpi=100)
