"""Frame composition: warped face patches over a background, mouth and eyelids, occluders, camera effects.

A face is drawn by one resampling of its canonical RGBA patch: each frame
pixel p in the face's bounding box is mapped to patch coordinates q by the
inverse head similarity (roll, scale, translation), then to the neutral
source position by inverting the AU/pose displacement field with two
fixed-point steps (s = q - field(s)). The open mouth (AU25/26) gets a dark
cavity with teeth, a blink gets a skin-coloured lid; both are soft-edged
ellipses drawn in frame coordinates. Lighting, blur and sensor noise apply
to the whole frame last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import ndimage

from pipeline_lib.data.demo.identities import EYE_MID, PATCH_IOD, Identity
from pipeline_lib.data.demo.nuisance import HeadPath, Occluder, SceneSchedule
from pipeline_lib.data.demo.rig import Rig, displacement_field
from pipeline_lib.data.demo.timeline import Track

__all__ = ["FaceTruth", "Subject", "make_background", "render_frame", "render_portrait"]

PAN_MARGIN: Final[int] = 16  # extra background pixels on each side for the camera pan
_LANDMARK_POINTS: Final[tuple[str, ...]] = ("eye_l", "eye_r", "nose", "corner_l", "corner_r")
_CAVITY: Final[tuple[float, float, float]] = (58.0, 24.0, 28.0)
_TEETH: Final[tuple[float, float, float]] = (215.0, 210.0, 200.0)


@dataclass(frozen=True, eq=False)
class Subject:
    """Everything needed to draw one person over a video."""

    identity: Identity
    rig: Rig
    track: Track
    head: HeadPath
    occluders: tuple[Occluder, ...]
    clothing: tuple[float, float, float] = (70.0, 80.0, 110.0)


@dataclass(frozen=True)
class FaceTruth:
    """Ground truth of one subject in one frame (frame pixel coordinates)."""

    present: bool
    landmarks: np.ndarray  # (5, 2), NaN when absent
    box: np.ndarray  # (4,) x0, y0, x1, y1, NaN when absent
    occluded: bool


def make_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H + 2m, W + 2m, 3) float32 smooth indoor-ish scene: gradient, soft blobs, low-frequency texture."""
    h, w = height + 2 * PAN_MARGIN, width + 2 * PAN_MARGIN
    ys, xs = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    top = rng.uniform(50, 210) + rng.normal(0, 25, size=3)
    bottom = rng.uniform(40, 200) + rng.normal(0, 25, size=3)
    angle = rng.uniform(0, np.pi)
    ramp = np.clip(np.cos(angle) * xs + np.sin(angle) * ys, 0, 1)[..., None]
    image = top * (1 - ramp) + bottom * ramp
    for _ in range(int(rng.integers(2, 6))):  # furniture, windows, posters
        x0, y0 = rng.uniform(-0.2, 1.0, size=2)
        bw, bh = rng.uniform(0.1, 0.5, size=2)
        inside = (xs > x0) & (xs < x0 + bw) & (ys > y0) & (ys < y0 + bh)
        soft = ndimage.gaussian_filter(inside.astype(np.float64), 2.0)[..., None]
        image = image * (1 - soft) + (rng.uniform(20, 235) + rng.normal(0, 30, size=3)) * soft
    texture = ndimage.gaussian_filter(rng.normal(0, 1, size=(h, w)), 6.0)
    image += (texture / max(float(texture.std()), 1e-6) * rng.uniform(3, 10))[..., None]
    return np.clip(image, 0, 255).astype(np.float32)


def _similarity(head: HeadPath, t: int) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, 2x2 rotation, centre): patch q -> frame p = centre + scale * R (q - EYE_MID)."""
    c, s = np.cos(head.roll[t]), np.sin(head.roll[t])
    return head.iod[t] / PATCH_IOD, np.array([[c, -s], [s, c]]), np.array([head.cx[t], head.cy[t]])


def _ellipse(canvas: np.ndarray, centre: np.ndarray, axes: tuple[float, float], angle: float,
             colour: np.ndarray | tuple[float, ...], opacity: float = 1.0, rectangle: bool = False,
             soft: float = 1.0) -> None:
    """Blend a filled ellipse (or rectangle) with a `soft`-px edge into `canvas` (H, W, 3) in place."""
    a, b = max(axes[0], 0.5), max(axes[1], 0.5)
    c, s = np.cos(angle), np.sin(angle)
    if rectangle:
        reach_x, reach_y = a * abs(c) + b * abs(s) + 2, a * abs(s) + b * abs(c) + 2
    else:
        reach_x, reach_y = np.hypot(a * c, b * s) + 2, np.hypot(a * s, b * c) + 2
    x0, x1 = int(max(centre[0] - reach_x, 0)), int(min(centre[0] + reach_x + 1, canvas.shape[1]))
    y0, y1 = int(max(centre[1] - reach_y, 0)), int(min(centre[1] + reach_y + 1, canvas.shape[0]))
    if x0 >= x1 or y0 >= y1 or opacity <= 0:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xs - centre[0], ys - centre[1]
    u, v = c * dx + s * dy, -s * dx + c * dy
    if rectangle:
        edge = np.minimum(a - np.abs(u), b - np.abs(v))
    else:
        edge = (1.0 - np.sqrt((u / a) ** 2 + (v / b) ** 2)) * min(a, b)
    alpha = (np.clip(edge / soft + 0.5, 0, 1) * opacity)[..., None]
    region = canvas[y0:y1, x0:x1]
    region *= 1 - alpha
    region += alpha * np.asarray(colour, dtype=np.float32)


def _draw_face(canvas: np.ndarray, subject: Subject, t: int, shade: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite the warped face of `subject` at frame t into `canvas`; return (landmarks (5, 2), box (4,))."""
    rig, ident, head = subject.rig, subject.identity, subject.head
    disp = rig.displacements(subject.track.au_render[t], head.yaw[t], head.pitch[t])
    field = displacement_field(rig, disp)
    scale, rot, centre = _similarity(head, t)
    mid = np.array(EYE_MID)

    def to_frame(q: np.ndarray) -> np.ndarray:
        return centre + scale * (q - mid) @ rot.T

    x0, y0, x1, y1 = ident.extent
    corners = to_frame(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64))
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1 = min(int(np.ceil(corners[:, 0].max())) + 1, canvas.shape[1])
    y1 = min(int(np.ceil(corners[:, 1].max())) + 1, canvas.shape[0])
    idx = [rig.index(n) for n in _LANDMARK_POINTS]
    landmarks = to_frame(rig.points[idx] + disp[idx])
    box_shift = disp[idx].mean(0)
    box_corners = to_frame(ident.box.reshape(2, 2).astype(np.float64) + box_shift)
    box = np.concatenate([box_corners.min(0), box_corners.max(0)])
    if x0 >= x1 or y0 >= y1:
        return landmarks, box

    _draw_torso(canvas, subject, scale, centre)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    rel = np.stack([xs - centre[0], ys - centre[1]], -1) @ rot / scale  # R^T (p - c) / k
    qx, qy = rel[..., 0] + mid[0], rel[..., 1] + mid[1]
    sx, sy = qx, qy
    for _ in range(2):  # invert the forward displacement: s = q - field(s)
        fx = ndimage.map_coordinates(field[0], [sy, sx], order=1, mode="nearest")
        fy = ndimage.map_coordinates(field[1], [sy, sx], order=1, mode="nearest")
        sx, sy = qx - fx, qy - fy
    rgba = np.stack([ndimage.map_coordinates(ident.rgba[..., ch], [sy, sx], order=1, mode="constant", cval=0.0)
                     for ch in range(4)], -1)
    light = 1.0 + shade * np.clip((qx - mid[0]) / (1.5 * PATCH_IOD), -1, 1)
    alpha = rgba[..., 3:4]
    region = canvas[y0:y1, x0:x1]
    region *= 1 - alpha
    region += alpha * rgba[..., :3] * light[..., None]
    _draw_mouth_and_lids(canvas, subject, t, disp, to_frame, scale, float(np.arctan2(rot[1, 0], rot[0, 0])))
    return landmarks, box


def _draw_torso(canvas: np.ndarray, subject: Subject, scale: float, centre: np.ndarray) -> None:
    """Neck and shoulders under the head (they follow the head's position, not its rotation)."""
    d = PATCH_IOD * scale
    neck = np.array(subject.identity.skin) * 0.8
    shoulders = centre + np.array([0.0, 3.0 * d])
    _ellipse(canvas, shoulders, (1.9 * d, 0.9 * d), 0.0, subject.clothing, soft=1.5)
    body = max((canvas.shape[0] - shoulders[1]) / 2 + 1, 0.5)
    _ellipse(canvas, shoulders + np.array([0.0, body]), (1.9 * d, body), 0.0, subject.clothing, rectangle=True,
             soft=1.5)
    _ellipse(canvas, centre + np.array([0.0, 1.85 * d]), (0.42 * d, 0.65 * d), 0.0, neck, rectangle=True, soft=1.5)


def _draw_mouth_and_lids(canvas: np.ndarray, subject: Subject, t: int, disp: np.ndarray, to_frame, scale: float,
                         roll: float) -> None:
    rig, d = subject.rig, PATCH_IOD
    up, low = rig.index("lip_up"), rig.index("lip_low")
    left, right = rig.index("corner_l"), rig.index("corner_r")
    opening = disp[low, 1] - disp[up, 1]  # patch px
    if opening > 0.02 * d:
        mouth = (rig.points[left] + rig.points[right]) / 2
        centre = to_frame(mouth + (disp[up] + disp[low]) / 2 + np.array([0.0, 0.01 * d]))
        width = np.hypot(*((rig.points[right] + disp[right]) - (rig.points[left] + disp[left])))
        a, b = 0.4 * width * scale, 0.45 * opening * scale
        fade = min(1.0, (opening - 0.02 * d) / (0.03 * d))
        _ellipse(canvas, centre, (a, b), roll, _CAVITY, 0.95 * fade, soft=1.5)
        if opening > 0.06 * d:  # upper teeth
            teeth_centre = centre + np.array([np.sin(roll), -np.cos(roll)]) * 0.5 * b
            _ellipse(canvas, teeth_centre, (0.72 * a, 0.4 * b), roll, _TEETH, 0.85 * fade, soft=1.2)
    blink = float(subject.track.blink[t])
    if blink > 0.05:
        for side in ("l", "r"):
            eye = rig.index(f"eye_{side}")
            centre = to_frame(rig.points[eye] + disp[eye])
            _ellipse(canvas, centre, (0.26 * d * scale, 0.13 * d * scale), roll, subject.identity.lid, blink)
            _ellipse(canvas, centre + np.array([-np.sin(roll), np.cos(roll)]) * 0.05 * d * scale,
                     (0.22 * d * scale, 0.6), roll, subject.identity.lid * 0.45, blink)


def _draw_occluder(canvas: np.ndarray, occluder: Occluder, head: HeadPath, t: int) -> None:
    scale, rot, centre = _similarity(head, t)
    d = PATCH_IOD * scale
    where = centre + rot @ (np.array(occluder.offset) * d)
    angle = occluder.angle + float(head.roll[t])
    axes = (occluder.size[0] * d, occluder.size[1] * d)
    if occluder.kind == "hand":
        _ellipse(canvas, where, axes, angle, occluder.colour)
        _ellipse(canvas, where + rot @ np.array([0.0, 0.35 * axes[1]]), (0.8 * axes[0], 0.3 * axes[1]), angle,
                 np.array(occluder.colour) * 0.8, 0.6)
    else:
        _ellipse(canvas, where, axes, angle, occluder.colour, rectangle=True)


def _present(landmarks: np.ndarray, box: np.ndarray, height: int, width: int) -> bool:
    """A face counts as present when its 5 landmarks are inside and >= 70% of its box is."""
    inside = np.all((landmarks >= 0) & (landmarks < [width, height]))
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)
    cut = max(min(box[2], width) - max(box[0], 0), 0) * max(min(box[3], height) - max(box[1], 0), 0)
    return bool(inside and cut / area >= 0.7)


def render_frame(t: int, background: np.ndarray, cut_background: np.ndarray, scene: SceneSchedule,
                 subjects: list[Subject], rng: np.random.Generator) -> tuple[np.ndarray, list[FaceTruth]]:
    """Frame t as (H, W, 3) uint8 RGB, and the truth of each subject."""
    height, width = background.shape[0] - 2 * PAN_MARGIN, background.shape[1] - 2 * PAN_MARGIN
    ox, oy = (PAN_MARGIN + np.clip(np.rint(scene.pan[t]), -PAN_MARGIN, PAN_MARGIN)).astype(int)
    source = cut_background if scene.cut[t] else background
    canvas = source[oy:oy + height, ox:ox + width].copy()
    truths: list[FaceTruth] = []
    for subject in subjects:
        if scene.cut[t]:
            nan = np.full((5, 2), np.nan, np.float32)
            truths.append(FaceTruth(False, nan, np.full(4, np.nan, np.float32), False))
            continue
        landmarks, box = _draw_face(canvas, subject, t, float(scene.shade[t]))
        present = _present(landmarks, box, height, width)
        occluded = False
        for occluder in subject.occluders:
            if occluder.start <= t < occluder.end:
                _draw_occluder(canvas, occluder, subject.head, t)
                occluded = present
        if not present:
            landmarks, box = np.full((5, 2), np.nan), np.full(4, np.nan)
        truths.append(FaceTruth(present, landmarks.astype(np.float32), box.astype(np.float32), occluded))

    image = np.power(np.clip(canvas, 0, 255) / 255.0, scene.gamma) * 255.0
    image *= scene.gain[t] * scene.cast[t]
    if scene.blur[t] >= 0.3:
        image = ndimage.gaussian_filter(image, sigma=(scene.blur[t], scene.blur[t], 0))
    image += rng.normal(0.0, scene.noise[t], size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), truths


def render_portrait(identity: Identity, rig: Rig, aus: np.ndarray, size: int = 160,
                    blink: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(image (size, size, 3) uint8, landmarks (5, 2) float32 px): the identity upright and frontal on grey,
    showing AU intensities `aus` (12,); the landmarks are the eyes, nose tip and mouth corners as drawn.

    The frame compositor's own face drawing (warp, mouth cavity, lids) without scene, camera or noise: how one
    expression looks to a face model, e.g. to check that each AU's warp moves what the AU moves on a real face.
    """
    one = np.zeros(1, np.float32)
    track = Track(expr=np.full(1, -1), ce=np.full(1, -1), au_label=np.zeros((1, len(aus)), np.int64),
                  va=np.zeros((1, 2), np.float32), au_render=np.asarray(aus, np.float32)[None],
                  blink=np.full(1, blink, np.float32), intensity=one)
    head = HeadPath(yaw=one, pitch=one, roll=one, cx=np.full(1, size / 2), cy=np.full(1, 0.42 * size),
                    iod=np.full(1, 0.3 * size))
    still = Subject(identity, rig, track, head, occluders=())
    canvas = np.full((size, size, 3), 128.0, np.float32)
    landmarks, _ = _draw_face(canvas, still, 0, 0.0)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), landmarks.astype(np.float32)
