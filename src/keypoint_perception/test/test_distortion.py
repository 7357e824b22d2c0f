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
"""Tests of keypoint_perception.core.distortion (oracle: OpenCV projectPoints/undistortPoints)."""

import cv2
from geometry_helpers import points_in_view, project_raw, random_K, random_rig, random_rotation
from keypoint_perception.core.camera import CameraModel, project
from keypoint_perception.core.distortion import (distort_pixels, rectify_points,
                                                 undistort_pixels, unrectify_points)
import numpy as np
import pytest


@pytest.mark.parametrize('model', ['plumb_bob', 'rational_polynomial', 'equidistant'])
def test_rectify_points_matches_forward_projection(model):
    """Raw pixels from cv2.projectPoints map to the pinhole projection of R X with P."""
    rng = np.random.default_rng(3)
    for _ in range(5):
        left, right, R, T = random_rig(rng, model)
        X = points_in_view(rng, 100, left, margin=10)
        raw = project_raw(left, X)
        expected = project(left.P, X @ left.R.T)  # rectified pinhole of R X
        got = rectify_points(left, raw)
        np.testing.assert_allclose(got, expected, atol=1e-6)
        # Right camera: points in its own optical frame.
        Xr = X @ R.T + T
        raw_r = project_raw(right, Xr)
        expected_r = project(right.P[:, :3] @ np.hstack([right.R, np.zeros((3, 1))]),
                             Xr)
        np.testing.assert_allclose(rectify_points(right, raw_r), expected_r, atol=1e-6)


def test_rectify_points_vs_cv2_undistort_points():
    """Agreement with cv2.undistortPoints (converged; default is 5 iterations)."""
    rng = np.random.default_rng(4)
    left, _, _, _ = random_rig(rng)
    uv = np.stack([rng.uniform(0, 640, 300), rng.uniform(0, 480, 300)], axis=1)
    got = rectify_points(left, uv)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    if hasattr(cv2, 'undistortPointsIter'):  # OpenCV 4 (apt ROS users); 5 adds criteria below
        ref = cv2.undistortPointsIter(uv.reshape(-1, 1, 2), left.K, left.D, left.R, left.P,
                                      crit).reshape(-1, 2)
    else:
        ref = cv2.undistortPoints(uv.reshape(-1, 1, 2), left.K, left.D, R=left.R, P=left.P,
                                  criteria=crit).reshape(-1, 2)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    # OpenCV's default (5 iterations) is close but not exact.
    ref5 = cv2.undistortPoints(uv.reshape(-1, 1, 2), left.K, left.D, R=left.R,
                               P=left.P).reshape(-1, 2)
    assert np.max(np.abs(got - ref5)) < 2.0


def test_rectify_points_identity_homography_and_nan():
    """Rectified cameras are the identity; no distortion is a homography."""
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    P = np.hstack([K, np.zeros((3, 1))])
    cam = CameraModel(640, 480, K, np.zeros(5), 'plumb_bob', np.eye(3), P)
    assert cam.is_rectified
    uv = np.array([[1.5, 2.5], [np.nan, 3.0], [600.25, 470.0]])
    out = rectify_points(cam, uv)
    np.testing.assert_array_equal(out[[0, 2]], uv[[0, 2]])
    assert np.all(np.isnan(out[1]))
    # No distortion but a rotation and new K: exact homography.
    rng = np.random.default_rng(5)
    R = random_rotation(rng, 0.05)
    P2 = np.hstack([random_K(rng), np.zeros((3, 1))])
    cam2 = CameraModel(640, 480, K, [], '', R, P2)
    assert not cam2.is_rectified
    X = points_in_view(rng, 20, cam2)
    np.testing.assert_allclose(rectify_points(cam2, project(P, X)),
                               project(P2, X @ R.T), atol=1e-9)
    with pytest.raises(ValueError):
        rectify_points(cam, np.zeros((3, 3)))


@pytest.mark.parametrize('model', ['plumb_bob', 'rational_polynomial', 'equidistant'])
def test_unrectify_points_matches_opencv_projection(model):
    """Left-rectified 3D points land where cv2.projectPoints puts them in each raw image."""
    rng = np.random.default_rng(21)
    for _ in range(3):
        left, right, R, T = random_rig(rng, model)
        X = points_in_view(rng, 40, left, zmin=0.5, zmax=4.0, margin=60)
        X_rect = X @ left.R.T  # left optical -> left rectified (C_left = 0)
        np.testing.assert_allclose(unrectify_points(left, X_rect), project_raw(left, X),
                                   atol=1e-6)
        np.testing.assert_allclose(unrectify_points(right, X_rect),
                                   project_raw(right, X @ R.T + T), atol=1e-6)
    behind = unrectify_points(left, np.array([[0.0, 0.0, -1.0], [np.nan, 0, 1]]))
    assert np.isnan(behind).all()


@pytest.mark.parametrize('model', ['plumb_bob', 'rational_polynomial', 'equidistant'])
def test_distort_pixels_matches_opencv_and_undistort_inverts_it(model):
    """Pinhole pixels -> raw pixels equals cv2 projection of the same rays; inverse round trip."""
    rng = np.random.default_rng(31)
    left, _, _, _ = random_rig(rng, model)
    X = points_in_view(rng, 50, left, zmin=0.5, zmax=4.0, margin=60)  # left optical frame
    pinhole = X[:, :2] / X[:, 2:3] @ left.K[:2, :2].T + left.K[:2, 2]  # K, no distortion
    raw = distort_pixels(left, pinhole)
    np.testing.assert_allclose(raw, project_raw(left, X), atol=1e-6)
    np.testing.assert_allclose(undistort_pixels(left, raw), pinhole, atol=1e-6)
    # another pinhole camera (e.g. a wider render) and NaN rows
    K_render = left.K.copy()
    K_render[:2, :2] *= 0.8
    pinhole_render = X[:, :2] / X[:, 2:3] @ K_render[:2, :2].T + K_render[:2, 2]
    np.testing.assert_allclose(distort_pixels(left, pinhole_render, K_render), raw, atol=1e-6)
    np.testing.assert_allclose(undistort_pixels(left, raw, K_render), pinhole_render, atol=1e-6)
    with_nan = np.vstack([pinhole[:1], [[np.nan, 1.0]]])
    assert np.isnan(distort_pixels(left, with_nan)[1]).all()
    assert np.isnan(undistort_pixels(left, with_nan)[1]).all()
    with pytest.raises(ValueError):
        distort_pixels(left, pinhole, K_render[:2])


def test_distortion_functions_are_consistent_with_rectification():
    """undistort_pixels then the rectifying homography equals rectify_points."""
    rng = np.random.default_rng(32)
    left, _, _, _ = random_rig(rng, 'plumb_bob')
    raw = project_raw(left, points_in_view(rng, 30, left, zmin=0.5, zmax=4.0, margin=60))
    pinhole = undistort_pixels(left, raw)
    H = left.P[:, :3] @ left.R @ np.linalg.inv(left.K)
    h = np.c_[pinhole, np.ones(len(pinhole))] @ H.T
    np.testing.assert_allclose(h[:, :2] / h[:, 2:], rectify_points(left, raw), atol=1e-6)
    # an undistorted camera leaves pixels where they are
    ideal = CameraModel(left.width, left.height, left.K, np.zeros(5), 'plumb_bob', np.eye(3),
                        np.hstack([left.K, np.zeros((3, 1))]))
    np.testing.assert_allclose(distort_pixels(ideal, pinhole), pinhole, atol=1e-9)
    np.testing.assert_allclose(undistort_pixels(ideal, pinhole), pinhole, atol=1e-9)


@pytest.mark.parametrize('model', ['plumb_bob', 'rational_polynomial', 'equidistant'])
def test_all_zero_distortion_is_a_pinhole_both_ways(model):
    """D = 0: projection and rectification agree (fisheye with D = 0 was r = f theta one way)."""
    coefficients = {'plumb_bob': 5, 'rational_polynomial': 8, 'equidistant': 4}[model]
    K = [[500, 0, 320], [0, 500, 240], [0, 0, 1]]
    camera = CameraModel(width=640, height=480, K=K, D=np.zeros(coefficients),
                         distortion_model=model, R=np.eye(3), P=np.hstack([K, np.zeros((3, 1))]))
    X = np.array([[0.5, 0.3, 1.0], [-0.2, 0.1, 2.0]])
    raw = unrectify_points(camera, X)
    np.testing.assert_allclose(raw, [[570.0, 390.0], [270.0, 265.0]], atol=1e-9)
    np.testing.assert_allclose(rectify_points(camera, raw), raw, atol=1e-9)
