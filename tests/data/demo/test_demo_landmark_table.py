"""The stored landmark table is what MTCNN measures on the shipped photos (it is a cache, not made-up numbers)."""

import numpy as np
import pytest

from pipeline_lib.data.demo._landmark_table import SOURCE_FACES
from pipeline_lib.data.demo.identities import measure_landmarks


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut", "camera", "lfw_000", "lfw_057"])
def test_table_matches_a_fresh_mtcnn_measurement(name):
    box, points = measure_landmarks([name])[name]
    stored_box, stored_points = SOURCE_FACES[name]
    # MTCNN on CPU is deterministic up to float noise; the table is rounded to 0.01 px.
    np.testing.assert_allclose(points, stored_points, atol=0.5)
    np.testing.assert_allclose(box, stored_box, atol=0.5)
