"""Video files damaged after `abaw corpus` listed them (truncated, zero bytes, not a video, corrupt in the
middle) and a video without any face: `abaw faces` decodes what it can, stores the rest as absent, lists each
damaged file under `problems` in its report and warns once per file; the later stages run on the result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline_lib.faces.store import read_faces
from tests.data.conftest import write_tiny_video
from tests.faults.conftest import Project, error_line, warnings_of

FRAMES = 20  # every demo video of the faults corpus: 2 s at 10 fps
DAMAGED = ("truncated", "zero", "garbage", "middle")


def _damage(videos: Path) -> None:
    data = (videos / "truncated.mp4").read_bytes()
    (videos / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (videos / "zero.mp4").write_bytes(b"")
    (videos / "garbage.mp4").write_bytes(b"\x00not a video" * 500)
    middle = bytearray((videos / "middle.mp4").read_bytes())
    middle[len(middle) // 2: len(middle) // 2 + 2000] = bytes(2000)
    (videos / "middle.mp4").write_bytes(bytes(middle))


@pytest.fixture(scope="module")
def damaged(reference: Project, tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    """The reference's demo videos imported as an Aff-Wild2 copy with five unlabelled extras (copies of a
    demo video, and a face-less one), the four copies damaged once imported; then `abaw faces`. (project,
    its output)."""
    root = tmp_path_factory.mktemp("damaged")
    source = root / "source"
    for part in ("videos", "annotations", "test_set"):
        shutil.copytree(reference.raw / part, source / part)
    for name in DAMAGED:
        shutil.copy(source / "videos" / "video_000.mp4", source / "videos" / f"{name}.mp4")
    write_tiny_video(source / "videos" / "noface.mp4", n_frames=FRAMES, fps=10, size=64)
    project = Project.create(root / "project", reference.read_params())
    params = project.read_params()
    params["data"]["source"] = str(source)
    project.write_params(params)
    project.check("corpus")
    _damage(source / "videos")
    result = project.invoke("faces")
    assert result.exit_code == 0, result.output
    return project, result.output


def test_each_damaged_file_is_reported_once_and_the_stage_goes_on(damaged):
    project, output = damaged
    problems = json.loads((project.metrics / "faces.json").read_text())["problems"]
    assert sorted(problems) == sorted(f"{name}.mp4" for name in DAMAGED)  # not noface.mp4, not the demo videos
    for name in ("truncated", "zero", "garbage"):
        first, missing = problems[f"{name}.mp4"]
        assert first.startswith(f"{name}.mp4: decoding stopped after 0 frames: ")
        assert missing == f"{FRAMES} of {FRAMES} frames missing"
    first, missing = problems["middle.mp4"]
    decoded = int(first.removeprefix("middle.mp4: decoding stopped after ").split(" ")[0])
    assert 0 < decoded < FRAMES and missing == f"{FRAMES - decoded} of {FRAMES} frames missing"
    assert sorted(warnings_of(output)) == sorted(
        [f"warning: {k}: {'; '.join(v)}" for k, v in problems.items()]
        + [f"warning: noface: no face in any of its {FRAMES} frames (every frame of it is invalid downstream)"])


def test_frames_past_the_damage_are_stored_as_absent(damaged):
    project, _ = damaged
    for name in ("truncated", "zero", "garbage", "noface"):
        track = read_faces(project.faces / f"{name}.h5")
        assert track.n_frames == FRAMES and not track.present.any() and not track.crops.any()
    middle = read_faces(project.faces / "middle.h5")
    decoded = json.loads((project.metrics / "faces_videos.json").read_text())["middle.mp4"]["report"]["video"][
        "frames_decoded"]
    assert middle.n_frames == FRAMES and not middle.present[decoded:].any() and middle.present[:decoded].any()


def test_a_video_without_faces_is_recorded_in_the_per_video_report(damaged):
    project, _ = damaged
    videos = json.loads((project.metrics / "faces_videos.json").read_text())
    assert videos["noface.mp4"]["problems"] == []
    assert videos["noface.mp4"]["subjects"]["noface"] == {"frames": FRAMES, "present": 0, "filled": 0,
                                                          "jitter_px": None}


def test_strict_mode_fails_in_one_line_after_writing_the_report(damaged, tmp_path: Path):
    project, _ = damaged
    params = project.read_params()
    params["faces"]["strict"] = True
    strict = Project.create(tmp_path / "strict", params)
    shutil.copytree(project.raw, strict.raw)
    shutil.copytree(project.faces, strict.faces)  # finished stores are reused: only the report is redone
    problems = json.loads((project.metrics / "faces.json").read_text())["problems"]
    first = sorted(problems)[0]
    assert error_line(strict.invoke("faces")) == (
        f"error: {strict.metrics / 'faces.json'}: 4 video file(s) had problems and faces.strict is on "
        f"(first: {first}: {'; '.join(problems[first])}); see the report")
    assert json.loads((strict.metrics / "faces.json").read_text())["problems"] == problems


def test_features_and_temporal_run_on_the_damaged_corpus(damaged, reference: Project):
    project, _ = damaged
    shutil.copytree(reference.mae, project.mae)
    project.check("features")
    from pipeline_lib.features.store import FeatureStore

    store = FeatureStore(project.features, mode="r")
    for name in ("truncated", "zero", "garbage", "noface"):
        features, valid = store.read("mae", name)
        assert features.shape[0] == FRAMES and not valid.any() and not features.any()
    assert store.read("mae", "middle")[1].any()
    output = project.check("temporal")
    assert "temporal expr (transformer, window 8): val f1_macro" in output
    assert np.isfinite(json.loads((project.metrics / "temporal" / "expr.json").read_text())["temporal"]["f1_macro"])
