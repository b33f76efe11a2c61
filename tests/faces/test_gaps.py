"""Which absent runs may be filled, and how their boxes and landmarks are interpolated."""

import numpy as np
import pytest

from pipeline_lib.faces.gaps import fillable_gaps, interpolate_gaps, nearest_source


@pytest.mark.parametrize(("present", "max_gap", "expected"), [
    ([1, 0, 1, 0, 0, 1, 0, 0, 0, 1], 2, [(1, 2), (3, 5)]),
    ([1, 0, 1, 0, 0, 1, 0, 0, 0, 1], 3, [(1, 2), (3, 5), (6, 9)]),
    ([1, 0, 1], 0, []),
    ([0, 1, 1, 0], 5, []),  # leading and trailing runs have only one neighbour
    ([0, 0, 0], 5, []),
    ([], 5, []),
])
def test_fillable_gaps(present, max_gap, expected):
    assert fillable_gaps(np.array(present, bool), max_gap) == expected


def test_interpolation_is_linear_between_the_neighbours():
    values = np.array([[0.0, 10.0], [np.nan, np.nan], [np.nan, np.nan], [3.0, 13.0]])
    out = interpolate_gaps(values, [(1, 3)])
    np.testing.assert_allclose(out, [[0, 10], [1, 11], [2, 12], [3, 13]])
    assert np.isnan(values[1]).all()  # input untouched


def test_nearest_source_prefers_the_earlier_neighbour_on_ties():
    # gap [3, 6): neighbours 2 and 6
    assert [nearest_source(3, 6, t) for t in (3, 4, 5)] == [2, 2, 6]
    assert nearest_source(3, 4, 3) == 2
