"""Same settings and seed: identical annotation files and identical decoded frames, in-process or in a pool."""

from __future__ import annotations

import numpy as np

from pipeline_lib.data.demo.generate import CARD_FILE
from pipeline_lib.data.demo.video import read_frames


def _text_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for folder in ("annotations", "test_set") for p in sorted((root / folder).rglob("*.txt"))}


def test_two_runs_write_identical_annotations_and_frames(tiny_corpus, tiny_corpus_again):
    first, second = tiny_corpus.root, tiny_corpus_again.root
    files = _text_files(first)
    assert files and files == _text_files(second)
    assert (first / CARD_FILE).read_bytes() == (second / CARD_FILE).read_bytes()
    assert tiny_corpus.summary == tiny_corpus_again.summary
    videos = sorted(p.name for p in (first / "videos").glob("*.mp4"))
    assert videos == sorted(p.name for p in (second / "videos").glob("*.mp4"))
    for name in videos:  # the decoder's own yuv420p planes, bit for bit
        a = read_frames(first / "videos" / name, rgb=False)
        b = read_frames(second / "videos" / name, rgb=False)
        assert a.shape == b.shape and np.array_equal(a, b), name
