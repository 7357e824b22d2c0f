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
"""Tests of keypoint_perception.core.rotations (quaternions in ROS x, y, z, w order).

Oracle: OpenCV's Rodrigues formula (axis-angle -> matrix) and the
axis-angle definition of a unit quaternion, q = (sin(a/2) n, cos(a/2)).
"""

import math

import cv2
from keypoint_perception.core.rotations import matrix_from_quaternion, quaternion_from_matrix
import numpy as np
import pytest


def _axis_angle(rng):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return axis, rng.uniform(0.0, math.pi)


def test_matrix_from_quaternion_matches_rodrigues():
    rng = np.random.default_rng(1)
    for _ in range(200):
        axis, angle = _axis_angle(rng)
        q = np.r_[math.sin(angle / 2) * axis, math.cos(angle / 2)]
        expected = cv2.Rodrigues(axis * angle)[0]
        np.testing.assert_allclose(matrix_from_quaternion(q), expected, atol=1e-12)
        # any non-zero scale and the opposite sign describe the same rotation
        np.testing.assert_allclose(matrix_from_quaternion(-3.5 * q), expected, atol=1e-12)


def test_quaternion_round_trip_has_non_negative_w():
    rng = np.random.default_rng(0)
    for _ in range(200):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        R = matrix_from_quaternion(q)
        back = quaternion_from_matrix(R)
        assert back[3] >= 0.0
        np.testing.assert_allclose(back, q if q[3] >= 0 else -q, atol=1e-12)
        np.testing.assert_allclose(matrix_from_quaternion(back), R, atol=1e-12)


def test_matrix_from_quaternion_rejects_bad_input():
    for bad in ([0, 0, 0, 0], [0, 0, 1], [np.nan, 0, 0, 1]):
        with pytest.raises(ValueError):
            matrix_from_quaternion(bad)


def test_quaternion_from_matrix_matches_axis_angle():
    """Quaternions equal the axis-angle formula, including angles near pi."""
    rng = np.random.default_rng(16)
    angles = list(rng.uniform(0, math.pi, 40)) + [0.0, math.pi - 1e-9, math.pi]
    for angle in angles:
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        R = cv2.Rodrigues(axis * angle)[0]
        q = quaternion_from_matrix(R)
        expected = np.r_[axis * math.sin(angle / 2), math.cos(angle / 2)]
        if expected[3] < 0 or (abs(expected[3]) < 1e-12 and np.dot(q, expected) < 0):
            expected = -expected
        assert np.dot(q, expected) == pytest.approx(1.0, abs=1e-9)
        assert q[3] >= 0
    np.testing.assert_allclose(quaternion_from_matrix(np.eye(3)), [0, 0, 0, 1])
    np.testing.assert_allclose(quaternion_from_matrix(np.diag([1.0, -1, -1])),
                               [1, 0, 0, 0], atol=1e-12)
