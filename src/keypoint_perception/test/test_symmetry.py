# Copyright 2026 The keypoint_perception authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Tests of keypoint_perception.core.symmetry: SymmetryGroup and stereo labelling."""

from geometry_helpers import project_raw, random_rig
from keypoint_perception.core.camera import project
from keypoint_perception.core.objects import load_object_class, ObjectClass
from keypoint_perception.core.symmetry import match_stereo_symmetry, SymmetryGroup
import numpy as np
import pytest


def test_match_stereo_symmetry_cyclic_and_swapped_rows():
    """Right-view relabelling is undone by the epipolar constraint."""
    rng = np.random.default_rng(18)
    left, right, R, T = random_rig(rng, baseline=0.1)
    # Three keypoints with a 3-fold symmetry (e.g. a triangle marker).
    X = np.array([[0.0, -0.05, 1.0], [0.05, 0.04, 1.02], [-0.05, 0.04, 0.98]])
    uv_l, uv_r = project_raw(left, X), project_raw(right, X @ R.T + T)
    syms = [[1, 2, 0], [2, 0, 1]]
    for q in ([0, 1, 2], [1, 2, 0], [2, 0, 1]):
        observed_r = uv_r[q]     # right-view label j is the true keypoint q[j]
        p = match_stereo_symmetry(left, right, uv_l, observed_r, syms)
        np.testing.assert_allclose(observed_r[list(p)], uv_r)
    # Two keypoints on the same row (left/right swap): the disparity sign decides.
    X2 = np.array([[-0.3, 0.0, 1.5], [0.3, 0.0, 1.5]])
    uv_l2 = project(left.P, X2)
    uv_r2 = project(right.P, X2)
    p = match_stereo_symmetry(left, right, uv_l2, uv_r2[[1, 0]], [[1, 0]],
                              points_are_rectified=True)
    assert p == (1, 0)
    p = match_stereo_symmetry(left, right, uv_l2, uv_r2, [[1, 0]],
                              points_are_rectified=True)
    assert p == (0, 1)
    # Nothing visible in both views -> identity.
    nan = np.full((2, 2), np.nan)
    assert match_stereo_symmetry(left, right, nan, uv_r2, [[1, 0]]) == (0, 1)


def test_symmetry_group_from_an_object_class_list():
    group = SymmetryGroup.from_permutations([[2, 3, 0, 1], [0, 1, 2, 3], [2, 3, 0, 1]], 4)
    assert group.permutations == ((0, 1, 2, 3), (2, 3, 0, 1))  # identity first, no repeats
    assert group.identity == (0, 1, 2, 3) and group.non_identity == ((2, 3, 0, 1),)
    assert len(group) == 2 and list(group) == list(group.permutations)
    assert group.num_keypoints == 4
    np.testing.assert_array_equal(group.index_arrays[1], [2, 3, 0, 1])
    assert group.index_arrays[1].dtype.kind == 'i'
    assert SymmetryGroup.from_permutations(None, 3).permutations == ((0, 1, 2),)
    assert SymmetryGroup.of(group, 4) is group
    assert SymmetryGroup.of([[1, 0]], 2).permutations == ((0, 1), (1, 0))
    board = load_object_class('checkerboard')
    assert board.symmetry_group.non_identity == tuple(tuple(p) for p in board.symmetries)


@pytest.mark.parametrize('permutations, message', [
    ([[0, 1, 1]], 'not a permutation of 3'),
    ([[0, 1]], 'not a permutation of 3'),
    ([[3, 1, 0]], 'not a permutation of 3'),
])
def test_symmetry_group_rejects_non_permutations(permutations, message):
    with pytest.raises(ValueError, match=message):
        SymmetryGroup.from_permutations(permutations, 3)


def test_symmetry_group_constructor_checks_its_invariants():
    with pytest.raises(ValueError, match='identity'):
        SymmetryGroup(((1, 0), (0, 1)))
    with pytest.raises(ValueError, match='distinct'):
        SymmetryGroup(((0, 1), (1, 0), (1, 0)))
    with pytest.raises(ValueError, match='at least the identity'):
        SymmetryGroup(())
    with pytest.raises(ValueError, match='2 keypoints used for 3'):
        SymmetryGroup.of(SymmetryGroup(((0, 1),)), 3)
    with pytest.raises(ValueError, match='not a permutation'):
        load_object_class_from_dict_with_bad_symmetry()


def load_object_class_from_dict_with_bad_symmetry():
    """Build an ObjectClass whose YAML symmetry repeats a keypoint (must raise)."""
    return ObjectClass.from_dict({'name': 'bad', 'keypoints': [
        {'name': 'a', 'position': [0, 0, 0]}, {'name': 'b', 'position': [1, 0, 0]}],
        'symmetries': [[1, 1]]})
