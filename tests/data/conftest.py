"""Fixtures of the ingest tests: tiny real video files and the fixture folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def write_tiny_video(path: Path, n_frames: int = 10, fps: int = 25, size: int = 32) -> Path:
    """Encode `n_frames` flat grey frames with mpeg4 (in any container PyAV knows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for i in range(n_frames):
            image = np.full((size, size, 3), (i * 23) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder's delayed frames
    return path


@pytest.fixture(scope="session")
def make_video() -> Callable[..., Path]:
    """`make_video(path, n_frames=10, fps=25, size=32)` writes a decodable video."""
    return write_tiny_video


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
