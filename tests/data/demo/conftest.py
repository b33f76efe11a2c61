"""A tiny demo corpus, generated once per test session (two copies, for the determinism test)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline_lib.config import DemoCorpusSettings
from pipeline_lib.data.demo.generate import generate_corpus
from pipeline_lib.data.demo.summary import CorpusSummary

# Every kind of video, 3 s each (long enough for a cut or a face exit to fit); two validation videos so that
# moving one's EXPR labels to training (a cross-task video) leaves EXPR a validation video.
TINY = DemoCorpusSettings(
    train_videos=2, val_videos=2, test_videos=1, unlabeled_videos=1, two_subject_videos=1, cross_task_videos=2,
    ce_train_videos=1, ce_val_videos=1, min_seconds=3.0, max_seconds=3.5, lfw_identities=4,
)
SEED = 3


@dataclass(frozen=True)
class Corpus:
    root: Path
    summary: CorpusSummary


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("demo") / "raw"
    return Corpus(root, generate_corpus(root, TINY, seed=SEED, progress=False, workers=1))


@pytest.fixture(scope="session")
def tiny_corpus_again(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """The same settings and seed, rendered by a 2-process pool."""
    root = tmp_path_factory.mktemp("demo_again") / "raw"
    return Corpus(root, generate_corpus(root, TINY, seed=SEED, progress=False, workers=2))
