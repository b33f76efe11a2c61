"""Parts of the generator: identities, rig, timeline, annotation noise, plan, standalone clip."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline_lib.config import DemoCorpusSettings
from pipeline_lib.data.demo.annotate import annotate, file_values
from pipeline_lib.data.demo.clip import generate_clip
from pipeline_lib.data.demo.identities import (
    EYE_MID,
    PATCH_IOD,
    PATCH_SIZE,
    identity_pool,
    load_identity,
    split_identities,
)
from pipeline_lib.data.demo.plan import plan_corpus
from pipeline_lib.data.demo.rig import AU_TABLE, build_rig, displacement_field
from pipeline_lib.data.demo.timeline import AU_LABEL_THRESHOLD, make_track
from pipeline_lib.data.demo.video import read_frames
from pipeline_lib.data.labels import AU_NAMES, CLASS_INVALID, VA_INVALID


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut", "camera", "lfw_000"])
def test_identity_patch_is_canonical(name):
    ident = load_identity(name)
    assert ident.rgba.shape == (PATCH_SIZE, PATCH_SIZE, 4) and ident.rgba.dtype == np.float32
    eyes = ident.landmarks[:2]
    np.testing.assert_allclose(eyes.mean(0), EYE_MID, atol=1e-3)  # eyes centred and level, IOD fixed
    np.testing.assert_allclose(np.linalg.norm(eyes[1] - eyes[0]), PATCH_IOD, atol=1e-3)
    assert abs(eyes[1, 1] - eyes[0, 1]) < 1e-3
    assert 0.0 <= ident.rgba[..., 3].min() and ident.rgba[..., 3].max() == 1.0


def test_identity_split_is_disjoint_and_deterministic():
    pool = identity_pool(24)
    assert len(pool) == 27 and pool[0] == "grace_hopper"
    train, val = split_identities(pool, 0.3, seed=0)
    assert not set(train) & set(val) and set(train) | set(val) == set(pool)
    assert "grace_hopper" in train and len(val) == round(0.3 * 27)
    assert split_identities(pool, 0.3, seed=0) == (train, val)


def test_au_table_magnitudes_stay_in_the_readable_range():
    for au, moves in AU_TABLE.items():
        biggest = max(np.hypot(dx, dy) for dx, dy in moves.values())
        assert 0.04 <= biggest <= 0.16, au  # DESIGN.md: 0.05-0.12 of the IOD reads, 0.2 distorts


def test_rig_neutral_is_identity_and_field_interpolates_points():
    rig = build_rig("grace_hopper")
    assert np.abs(displacement_field(rig, rig.displacements(np.zeros(12)))).max() == 0.0
    disp = rig.displacements(np.ones(12), yaw=0.1, pitch=-0.05)
    field = displacement_field(rig, disp)
    for i in range(rig.n_face):  # at a control point the field equals its displacement
        x, y = rig.points[i]
        if x == int(x) and y == int(y):
            np.testing.assert_allclose(field[:, int(y), int(x)], disp[i], atol=1e-6)
    assert np.abs(disp[-4:]).max() == 0.0  # the border never moves
    smile = rig.displacements(np.eye(12)[AU_NAMES.index("AU12")])
    assert smile[rig.index("corner_l"), 1] < 0 and smile[rig.index("corner_l"), 0] < 0  # up and out (left)
    assert smile[rig.index("corner_r"), 0] > 0


def test_track_labels_are_smooth_and_frames_are_noisy():
    rng = np.random.default_rng(0)
    track = make_track(600, 15.0, "basic", rng)
    changes = np.count_nonzero(np.diff(track.expr))
    assert changes < 600 / 15  # segments last 1-4 s
    assert np.abs(np.diff(track.va, axis=0)).max() < 0.1  # smoothed valence/arousal
    assert np.all(np.abs(track.va) <= 1) and np.all(track.ce == CLASS_INVALID)
    rendered_on = track.au_render >= AU_LABEL_THRESHOLD
    assert (rendered_on != track.au_label.astype(bool)).mean() > 0.01  # twitches and jitter: frames disagree
    assert np.abs(np.diff(track.au_render, axis=0)).mean() > 3 * np.abs(np.diff(track.au_label, axis=0)).mean() / 15
    compound = make_track(600, 15.0, "compound", np.random.default_rng(1))
    assert (compound.ce >= 0).mean() > 0.2


def test_annotation_marks_absent_frames_and_shifts_line_counts():
    track = make_track(90, 15.0, "basic", np.random.default_rng(2))
    present = np.ones(90, dtype=bool)
    present[40:50] = False
    labels = annotate(track, present, 15.0, ("VA", "EXPR", "AU"), False, np.random.default_rng(3))
    assert np.all(labels.labels[40:50, :2] == VA_INVALID) and np.all(labels.labels[40:50, 2:] == CLASS_INVALID)
    assert np.all(labels.labels[present, :2] != VA_INVALID)
    assert len(file_values(labels, "VA", -2)) == 88 and len(file_values(labels, "AU", 3)) == 93


def test_plan_spreads_every_quirk_over_the_default_corpus():
    plans = plan_corpus(DemoCorpusSettings(), seed=0)
    assert len(plans) == 58 and len({p.name for p in plans}) == 58
    assert sum(p.exits for p in plans) and sum(p.cuts for p in plans) and sum(p.occluders for p in plans)
    assert sum(p.count_delta != 0 for p in plans) >= 3 and sum(p.invalid_span for p in plans) >= 3
    assert any(p.tasks not in (("VA", "EXPR", "AU"), ("CE",), ()) for p in plans)
    assert 8500 <= sum(p.n_frames for p in plans) <= 10500  # 9,499 as generated


def test_generate_clip_truth_matches_the_video(tmp_path):
    truth = generate_clip(tmp_path / "clip.mp4", seed=5, seconds=1.0, fps=10.0, width=160, height=120,
                          identity="astronaut")
    frames = read_frames(tmp_path / "clip.mp4")
    assert frames.shape == (10, 120, 160, 3) and truth.n_frames == 10
    assert truth.labels.shape == (10, 15) and truth.landmarks.shape == (10, 5, 2) and truth.box.shape == (10, 4)
    assert truth.face_present.all() and truth.identity == "astronaut"
    again = generate_clip(tmp_path / "again.mp4", seed=5, seconds=1.0, fps=10.0, width=160, height=120,
                          identity="astronaut")
    np.testing.assert_array_equal(read_frames(tmp_path / "again.mp4"), frames)
    np.testing.assert_array_equal(again.labels, truth.labels)
    with pytest.raises(ValueError, match="unknown demo identity"):
        generate_clip(tmp_path / "x.mp4", seed=0, seconds=1.0, identity="nobody")
