"""Deterministic H.264 mp4 writing (and reading back) with PyAV.

libx264 with one thread, a fixed preset and a constant QP gives byte-identical streams
for identical input frames, so two corpus runs decode to identical pixels.
The RGB <-> YUV 4:2:0 conversion (BT.601, limited range) is done here in
numpy: FFmpeg's swscale, which PyAV would use, was seen to give different
pixels on its first use in a process than on later ones.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from pipeline_lib.files import partial_path

__all__ = ["VideoWriter", "read_frames", "rgb_to_yuv420p", "yuv420p_to_rgb"]

_RGB_TO_YUV = np.array([[0.257, 0.504, 0.098], [-0.148, -0.291, 0.439], [0.439, -0.368, -0.071]], np.float32)
_YUV_OFFSET = np.array([16.0, 128.0, 128.0], np.float32)


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3H/2, W) uint8 planar Y, U, V (BT.601 limited range, 2x2 chroma means)."""
    h, w = frame.shape[:2]
    yuv = frame.astype(np.float32) @ _RGB_TO_YUV.T + _YUV_OFFSET
    chroma = yuv[:, :, 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    planes = np.concatenate([yuv[:, :, 0].ravel(), chroma[..., 0].ravel(), chroma[..., 1].ravel()])
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def yuv420p_to_rgb(planes: np.ndarray) -> np.ndarray:
    """(3H/2, W) uint8 planar YUV 4:2:0 (BT.601 limited range) -> (H, W, 3) uint8 RGB."""
    h, w = planes.shape[0] * 2 // 3, planes.shape[1]
    flat = planes.ravel()
    y = flat[: h * w].reshape(h, w).astype(np.float32) - 16.0
    u = flat[h * w: h * w * 5 // 4].reshape(h // 2, w // 2).astype(np.float32) - 128.0
    v = flat[h * w * 5 // 4:].reshape(h // 2, w // 2).astype(np.float32) - 128.0
    u, v = (np.repeat(np.repeat(c, 2, axis=0), 2, axis=1) for c in (u, v))
    rgb = np.stack([1.164 * y + 1.596 * v, 1.164 * y - 0.392 * u - 0.813 * v, 1.164 * y + 2.017 * u], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """Context manager: `write(frame)` appends one (H, W, 3) uint8 RGB frame.

    Frames are encoded as yuv420p H.264 (constant `qp`, preset veryfast, threads=1) in
    an mp4 written to a temporary name and moved into place on a clean exit.
    """

    def __init__(self, path: Path, fps: float, width: int, height: int, qp: int = 23) -> None:
        self.path = Path(path)
        self._tmp = partial_path(self.path, keep_suffix=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        # Without this the mp4 muxer stamps the wall-clock creation time into the file.
        self._container.metadata["creation_time"] = "1970-01-01T00:00:00Z"
        stream = self._container.add_stream("libx264", rate=_rate(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.codec_context.thread_type = "NONE"
        # Constant QP without adaptive quantisation, macroblock tree or psy
        # tuning: those use float maths (libm exp/log/pow) whose last bits
        # change with which libraries the process loaded (importing torch
        # did), and one bit there changes the whole stream.
        stream.options = {
            "qp": str(qp), "preset": "veryfast", "threads": "1", "x264-params": "aq-mode=0:mbtree=0:psy=0",
        }
        self._stream = stream
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3, frame.shape
        video_frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
        video_frame.pts = self.frames
        self._container.mux(self._stream.encode(video_frame))
        self.frames += 1

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self._container.mux(self._stream.encode())  # flush delayed frames
        finally:
            self._container.close()
        if exc_type is None:
            self._tmp.replace(self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def read_frames(path: Path, every: int = 1, rgb: bool = True) -> np.ndarray:
    """Decode every `every`-th frame of `path`: (N, H, W, 3) uint8 RGB, or with rgb=False the decoder's
    own yuv420p planes (N, 3H/2, W), which are what two identical streams must share bit for bit."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        for i, frame in enumerate(container.decode(stream)):
            if i % every:
                continue
            if frame.format.name != "yuv420p":
                frames.append(frame.to_ndarray(format="rgb24"))
                continue
            planes = frame.to_ndarray()
            frames.append(yuv420p_to_rgb(planes) if rgb else planes)
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
