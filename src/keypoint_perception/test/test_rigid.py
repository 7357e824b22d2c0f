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
"""Tests of keypoint_perception.core.rigid (oracle: Horn's closed-form quaternion solution)."""

import math

import cv2
from geometry_helpers import horn_rotation, random_rig, random_rotation
from keypoint_perception.core.camera import project
from keypoint_perception.core.rigid import (fit_rigid_transform, fit_template_pose,
                                            refine_pose_reprojection)
from keypoint_perception.core.rotations import quaternion_from_matrix
import numpy as np
import pytest


def test_fit_rigid_transform_recovers_known_transforms():
    """Umeyama recovers known rotations, translations and scales."""
    rng = np.random.default_rng(13)
    for trial in range(50):
        src = rng.normal(size=(int(rng.integers(3, 30)), 3))
        R = random_rotation(rng)
        t = rng.normal(size=3)
        s = rng.uniform(0.2, 5.0)
        dst = s * src @ R.T + t
        R_, t_, s_ = fit_rigid_transform(src, dst, with_scale=True)
        np.testing.assert_allclose(R_, R, atol=1e-9)
        np.testing.assert_allclose(t_, t, atol=1e-8)
        assert s_ == pytest.approx(s, rel=1e-9)
        R_, t_, s_ = fit_rigid_transform(src, src @ R.T + t)
        np.testing.assert_allclose(R_, R, atol=1e-9)
        assert s_ == 1.0
        assert np.linalg.det(R_) == pytest.approx(1.0)


def test_fit_rigid_transform_weights_and_planar_points():
    """Zero weights ignore outliers; planar points work; bad input raises."""
    rng = np.random.default_rng(14)
    src = np.c_[rng.normal(size=(10, 2)), np.zeros(10)]  # planar (like the chessboard)
    R, t = random_rotation(rng), rng.normal(size=3)
    dst = src @ R.T + t
    dst[0] += 10.0                                       # outlier with zero weight
    w = np.ones(10)
    w[0] = 0.0
    R_, t_, _ = fit_rigid_transform(src, dst, weights=w)
    np.testing.assert_allclose(R_, R, atol=1e-9)
    np.testing.assert_allclose(t_, t, atol=1e-9)
    with pytest.raises(ValueError):
        fit_rigid_transform(src[:2], dst[:2])
    with pytest.raises(ValueError):
        fit_rigid_transform(src, dst, weights=-w)
    with pytest.raises(ValueError):
        fit_rigid_transform(src, dst[:5])


def test_fit_rigid_transform_reflection_returns_best_proper_rotation():
    """Reflected data gives the best proper rotation (Horn oracle)."""
    rng = np.random.default_rng(15)
    for _ in range(20):
        src = rng.normal(size=(12, 3)) * [3.0, 2.0, 1.0]
        M = random_rotation(rng) @ np.diag([1.0, 1.0, -1.0])  # an improper "rotation"
        dst = src @ M.T + rng.normal(size=3) + rng.normal(scale=0.01, size=(12, 3))
        R_, t_, _ = fit_rigid_transform(src, dst)
        assert np.linalg.det(R_) == pytest.approx(1.0)
        np.testing.assert_allclose(R_, horn_rotation(src, dst), atol=1e-7)
        # Naive Kabsch (no correction) would return the reflection.
        U, _, Vt = np.linalg.svd((dst - dst.mean(0)).T @ (src - src.mean(0)))
        assert np.linalg.det(U @ Vt) < 0


def test_fit_template_pose_symmetries_and_degenerate_input():
    """Template fit finds the symmetric labelling; degenerate input gives None."""
    rng = np.random.default_rng(17)
    template = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.05, 0.0],
                         [0.02, 0.03, 0.04]])
    symmetries = [[1, 0, 2, 3]]
    R, t = random_rotation(rng), np.array([0.1, -0.2, 1.0])
    perm = [1, 0, 2, 3]
    observed = template[perm] @ R.T + t
    fit = fit_template_pose(template, observed, symmetries=symmetries)
    assert fit.permutation == (1, 0, 2, 3)
    assert fit.rmse < 1e-9 and fit.num_points == 4
    np.testing.assert_allclose(fit.R, R, atol=1e-9)
    np.testing.assert_allclose(fit.t, t, atol=1e-9)
    # Identity labelling + a missing keypoint.
    observed = template @ R.T + t
    observed[3] = np.nan
    fit = fit_template_pose(template, observed, symmetries=symmetries)
    assert fit.permutation == (0, 1, 2, 3) and fit.num_points == 3 and fit.rmse < 1e-9
    q = fit.quaternion
    assert np.dot(q, quaternion_from_matrix(R)) == pytest.approx(1.0)
    # Fewer than 3 valid points, or collinear ones -> None.
    assert fit_template_pose(template, observed, valid=[True, True, False, True]) is None
    line = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    assert fit_template_pose(line, line + 1.0) is None
    with pytest.raises(ValueError):
        fit_template_pose(template, observed, symmetries=[[0, 0, 1, 2]])


def test_refine_pose_reprojection_recovers_pose_from_three_points():
    """Noise-free stereo observations of 3 template points pull a perturbed pose back."""
    rng = np.random.default_rng(22)
    left, right, R_rig, T_rig = random_rig(rng, 'plumb_bob', baseline=0.08)
    template = np.array([[-0.1, -0.06, 0], [0.1, -0.06, 0], [0.1, 0.06, 0], [-0.1, 0.06, 0]])
    R_true = random_rotation(rng, math.radians(40))
    t_true = np.array([0.05, -0.02, 0.9])
    X = template @ R_true.T + t_true
    rect_l = project(left.P, X @ left.R.T)
    rect_r = project(right.P, X @ left.R.T)
    rect_l[3] = rect_r[3] = np.nan  # the fourth keypoint is not observed
    R0 = cv2.Rodrigues(np.array([0.05, -0.04, 0.03]))[0] @ R_true
    t0 = t_true + np.array([0.01, -0.01, 0.06])
    R, t, rms = refine_pose_reprojection(template, R0, t0, left, right, rect_l, rect_r)
    assert rms < 1e-4
    np.testing.assert_allclose(t, t_true, atol=1e-6)
    np.testing.assert_allclose(R, R_true, atol=1e-6)
    # the unobserved keypoint is predicted exactly
    np.testing.assert_allclose(template[3] @ R.T + t, X[3], atol=1e-6)
    # fewer than 3 observed points: the initial pose comes back unchanged
    rect_l[2] = np.nan
    R1, t1, rms1 = refine_pose_reprojection(template, R0, t0, left, right, rect_l, rect_r)
    assert np.isnan(rms1) and np.array_equal(R1, R0) and np.array_equal(t1, t0)
