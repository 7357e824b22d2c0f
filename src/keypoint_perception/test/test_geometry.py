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
"""Tests of the core geometry modules (camera, distortion, triangulation, rigid, ...).

Oracles are independent of the code under test: OpenCV (projectPoints,
triangulatePoints, stereoRectify, Rodrigues, findChessboardCorners), Horn's
closed-form quaternion solution for absolute orientation, known synthetic
transforms, and OpenCV's real stereo calibration sequence.
"""

import json
import math
import os
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml

try:
    import keypoint_perception  # noqa: F401
except ImportError:  # running from the source tree without an install
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keypoint_perception.core.camera import (CalibrationError, CameraModel, project,
                                             reprojection_error, stereo_baseline)
from keypoint_perception.core.distortion import rectify_points, unrectify_points
from keypoint_perception.core.rigid import (fit_rigid_transform, fit_template_pose,
                                            refine_pose_reprojection)
from keypoint_perception.core.rotations import quaternion_from_matrix
from keypoint_perception.core.symmetry import match_stereo_symmetry
from keypoint_perception.core.triangulation import (REASON_BEHIND_CAMERA, REASON_NON_FINITE_INPUT,
                                                    REASON_REPROJECTION_ERROR, REASON_VALID,
                                                    refine_triangulation, stereo_point_sigma,
                                                    triangulate_dlt, triangulate_stereo)
from keypoint_perception.training import ground_truth as gtm

PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(PKG_DIR))
DATA_DIR = os.path.join(REPO_ROOT, 'data', 'opencv_stereo')
CONFIG_DIR = os.path.join(REPO_ROOT, 'config', 'camera_info')
CHECKERBOARD_YAML = os.path.join(PKG_DIR, 'keypoint_perception', 'objects', 'checkerboard.yaml')
SIZE = (640, 480)


# --------------------------------------------------------------------- helpers
def random_rotation(rng, max_angle=math.pi):
    """Return a random rotation matrix (3, 3) via cv2.Rodrigues."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    rvec = axis * rng.uniform(0.0, max_angle)
    return cv2.Rodrigues(rvec)[0]


def random_K(rng, size=SIZE):
    """Return a random plausible intrinsic matrix."""
    f = rng.uniform(400, 900)
    return np.array([[f * rng.uniform(0.98, 1.02), 0.0, size[0] / 2 + rng.uniform(-20, 20)],
                     [0.0, f, size[1] / 2 + rng.uniform(-20, 20)],
                     [0.0, 0.0, 1.0]])


def random_D(rng, model='plumb_bob'):
    """Return moderate random distortion coefficients for a model."""
    if model == 'plumb_bob':
        return np.array([rng.uniform(-0.3, 0.1), rng.uniform(-0.1, 0.1),
                         rng.uniform(-2e-3, 2e-3), rng.uniform(-2e-3, 2e-3),
                         rng.uniform(-0.02, 0.02)])
    if model == 'rational_polynomial':
        return np.array([rng.uniform(-0.3, 0.1), rng.uniform(-0.05, 0.05),
                         rng.uniform(-1e-3, 1e-3), rng.uniform(-1e-3, 1e-3),
                         rng.uniform(-0.01, 0.01), rng.uniform(-0.05, 0.05),
                         rng.uniform(-0.02, 0.02), rng.uniform(-0.01, 0.01)])
    if model == 'equidistant':
        return np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.01, 0.01),
                         rng.uniform(-0.005, 0.005), rng.uniform(-0.001, 0.001)])
    raise ValueError(model)


def random_rig(rng, model='plumb_bob', vertical=False, baseline=None):
    """Return (left, right, R, T) of a random raw stereo rig rectified by cv2.stereoRectify.

    R, T map left optical coordinates to right optical ones: X_r = R X_l + T.
    """
    K1, K2 = random_K(rng), random_K(rng)
    D1, D2 = random_D(rng, model), random_D(rng, model)
    R = random_rotation(rng, max_angle=math.radians(4))
    b = baseline if baseline is not None else rng.uniform(0.05, 0.3)
    t = np.array([-b, 0.0, 0.0]) if not vertical else np.array([0.0, -b, 0.0])
    T = t + rng.normal(scale=0.005, size=3)
    if model == 'equidistant':
        R1, R2, P1, P2, _ = cv2.fisheye.stereoRectify(
            K1, D1, K2, D2, SIZE, R, T.reshape(3, 1), flags=cv2.CALIB_ZERO_DISPARITY,
            balance=0.0)
    else:
        R1, R2, P1, P2 = cv2.stereoRectify(K1, D1, K2, D2, SIZE, R, T.reshape(3, 1),
                                           flags=cv2.CALIB_ZERO_DISPARITY, alpha=0)[:4]
    left = CameraModel(SIZE[0], SIZE[1], K1, D1, model, R1, P1, 'left_optical')
    right = CameraModel(SIZE[0], SIZE[1], K2, D2, model, R2, P2, 'right_optical')
    return left, right, R, T


def project_raw(camera, X, rvec=np.zeros(3), tvec=np.zeros(3)):
    """Project points X (N, 3) into the raw image of a camera with OpenCV (the oracle)."""
    X = np.ascontiguousarray(X, dtype=np.float64).reshape(-1, 1, 3)
    if camera.distortion_model == 'equidistant':
        uv = cv2.fisheye.projectPoints(X, rvec.reshape(1, 1, 3), tvec.reshape(1, 1, 3),
                                       camera.K, camera.D)[0]
    else:
        uv = cv2.projectPoints(X, rvec, tvec, camera.K, camera.D)[0]
    return uv.reshape(-1, 2)


def points_in_view(rng, n, left, zmin=0.5, zmax=4.0, margin=40):
    """Return (n, 3) random points in the left optical frame that fall inside the image."""
    u = rng.uniform(margin, left.width - margin, n)
    v = rng.uniform(margin, left.height - margin, n)
    z = rng.uniform(zmin, zmax, n)
    rays = np.stack([(u - left.K[0, 2]) / left.K[0, 0], (v - left.K[1, 2]) / left.K[1, 1],
                     np.ones(n)], axis=1)
    return rays * z[:, None]


def fake_camera_info(camera, frame_id='cam_optical', **overrides):
    """Return a duck-typed sensor_msgs/CameraInfo for a CameraModel."""
    fields = dict(width=camera.width, height=camera.height,
                  distortion_model=camera.distortion_model, d=list(camera.D),
                  k=camera.K.ravel().tolist(), r=camera.R.ravel().tolist(),
                  p=camera.P.ravel().tolist(), binning_x=0, binning_y=0,
                  roi=SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0,
                                      do_rectify=False),
                  header=SimpleNamespace(frame_id=frame_id))
    fields.update(overrides)
    return SimpleNamespace(**fields)


def horn_rotation(src, dst):
    """Return the rotation of absolute orientation by Horn's quaternion method (1987)."""
    a, b = src - src.mean(0), dst - dst.mean(0)
    M = a.T @ b
    sxx, sxy, sxz = M[0]
    syx, syy, syz = M[1]
    szx, szy, szz = M[2]
    N = np.array([
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz]])
    w, v = np.linalg.eigh(N)
    q0, qx, qy, qz = v[:, -1]
    return np.array([
        [q0 * q0 + qx * qx - qy * qy - qz * qz, 2 * (qx * qy - q0 * qz),
         2 * (qx * qz + q0 * qy)],
        [2 * (qy * qx + q0 * qz), q0 * q0 - qx * qx + qy * qy - qz * qz,
         2 * (qy * qz - q0 * qx)],
        [2 * (qz * qx - q0 * qy), 2 * (qz * qy + q0 * qx),
         q0 * q0 - qx * qx - qy * qy + qz * qz]])


# ------------------------------------------------------------ real data setup
@pytest.fixture(scope='session')
def opencv_data():
    """Make sure data/opencv_stereo holds the images and ground_truth.json.

    Fetches with tools/fetch_data.sh when missing (never skips silently); fails
    with a clear message when that is impossible.
    """
    needed = ['stereo_calib.xml', 'left01.jpg', 'right14.jpg']
    if not all(os.path.isfile(os.path.join(DATA_DIR, f)) for f in needed):
        script = os.path.join(REPO_ROOT, 'tools', 'fetch_data.sh')
        proc = subprocess.run(['bash', script], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail('OpenCV stereo data missing and tools/fetch_data.sh failed '
                        f'(rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}')
    if not os.path.isfile(os.path.join(DATA_DIR, 'ground_truth.json')):
        script = os.path.join(REPO_ROOT, 'tools', 'calibrate_opencv_stereo.py')
        proc = subprocess.run([sys.executable, script, '--ground-truth-only'],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail('tools/calibrate_opencv_stereo.py --ground-truth-only failed:\n'
                        f'{proc.stdout}\n{proc.stderr}')
    return DATA_DIR


@pytest.fixture(scope='session')
def real_rig():
    """Left and right models of the calibrated real rig (committed YAML files)."""
    left = CameraModel.from_yaml(os.path.join(CONFIG_DIR, 'opencv_stereo_left.yaml'),
                                 frame_id='left_optical')
    right = CameraModel.from_yaml(os.path.join(CONFIG_DIR, 'opencv_stereo_right.yaml'),
                                  frame_id='right_optical')
    return left, right


# ----------------------------------------------------------- triangulation
def test_triangulate_dlt_matches_cv2_triangulate_points():
    """DLT equals cv2.triangulatePoints on random cameras with noisy pixels."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        K1, K2 = random_K(rng), random_K(rng)
        R2 = random_rotation(rng, 0.5)
        t2 = rng.normal(size=3)
        R1 = random_rotation(rng, 0.2)
        P1 = K1 @ np.hstack([R1, rng.normal(scale=0.1, size=(3, 1))])
        P2 = K2 @ np.hstack([R2, t2[:, None]])
        X = rng.uniform(-1, 1, size=(50, 3)) + np.array([0.0, 0.0, 6.0])
        uv1 = project(P1, X) + rng.normal(scale=1.0, size=(50, 2))
        uv2 = project(P2, X) + rng.normal(scale=1.0, size=(50, 2))
        Xh = cv2.triangulatePoints(P1, P2, uv1.T.copy(), uv2.T.copy())
        expected = (Xh[:3] / Xh[3]).T
        got = triangulate_dlt(P1, P2, uv1, uv2)
        assert got.shape == (50, 3) and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-9)


def test_triangulate_dlt_noise_free_exact_and_nan_rows():
    """Noise-free DLT is exact; NaN input rows give NaN; shape errors raise."""
    rng = np.random.default_rng(1)
    P1 = random_K(rng) @ np.hstack([np.eye(3), np.zeros((3, 1))])
    P2 = random_K(rng) @ np.hstack([random_rotation(rng, 0.3), [[-0.2], [0.01], [0.02]]])
    X = points_in_view(rng, 30, SimpleNamespace(K=P1[:, :3], width=640, height=480))
    uv1, uv2 = project(P1, X), project(P2, X)
    uv1[3] = np.nan
    got = triangulate_dlt(P1, P2, uv1, uv2)
    assert np.all(np.isnan(got[3]))
    mask = np.arange(30) != 3
    np.testing.assert_allclose(got[mask], X[mask], rtol=1e-9)
    with pytest.raises(ValueError):
        triangulate_dlt(P1, P2, uv1[:5], uv2)


def test_refine_triangulation_reduces_reprojection_error():
    """LM never increases the error and ends at a stationary point."""
    rng = np.random.default_rng(2)
    P1 = random_K(rng) @ np.hstack([np.eye(3), np.zeros((3, 1))])
    P2 = random_K(rng) @ np.hstack([random_rotation(rng, 0.3), [[-0.3], [0.0], [0.0]]])
    X = points_in_view(rng, 200, SimpleNamespace(K=P1[:, :3], width=640, height=480))
    uv1 = project(P1, X) + rng.normal(scale=2.0, size=(200, 2))
    uv2 = project(P2, X) + rng.normal(scale=2.0, size=(200, 2))
    X0 = triangulate_dlt(P1, P2, uv1, uv2)
    X1 = refine_triangulation(P1, P2, uv1, uv2, X0)

    def cost(Y):
        return reprojection_error(P1, Y, uv1) ** 2 + reprojection_error(P2, Y, uv2) ** 2

    c0, c1 = cost(X0), cost(X1)
    assert np.all(c1 <= c0 + 1e-9)
    assert c1.sum() < c0.sum()
    # Optimality: the gradient of the reprojection cost vanishes (finite differences).
    eps = 1e-7
    for k in range(3):
        d = np.zeros(3)
        d[k] = eps
        grad = (cost(X1 + d) - cost(X1 - d)) / (2 * eps)
        grad0 = (cost(X0 + d) - cost(X0 - d)) / (2 * eps)
        assert np.max(np.abs(grad)) < 1e-2 * np.max(np.abs(grad0)) + 1e-3


def test_reprojection_error_known_values():
    """Hand-computed reprojection errors."""
    P = np.hstack([np.diag([500.0, 500.0, 1.0]), np.zeros((3, 1))])
    P[0, 2], P[1, 2] = 320.0, 240.0
    X = np.array([[0.0, 0.0, 2.0], [0.2, -0.1, 1.0]])
    uv = np.array([[323.0, 244.0], [420.0, 190.0]])
    np.testing.assert_allclose(reprojection_error(P, X, uv), [5.0, 0.0], atol=1e-12)


# ------------------------------------------------------------- undistortion
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


# ---------------------------------------------------------- stereo pipeline
@pytest.mark.parametrize('model', ['plumb_bob', 'rational_polynomial', 'equidistant'])
def test_triangulate_stereo_raw_rig_recovers_left_optical_points(model):
    """Raw distorted rig: known points come back in the left optical frame."""
    rng = np.random.default_rng(6)
    for _ in range(5):
        left, right, R, T = random_rig(rng, model)
        assert not np.allclose(left.R, np.eye(3), atol=1e-3)  # the frame change matters
        X = points_in_view(rng, 60, left, zmin=0.4, zmax=5.0, margin=60)
        Xr = X @ R.T + T
        uv_l, uv_r = project_raw(left, X), project_raw(right, Xr)
        inside = (uv_r[:, 0] > 0) & (uv_r[:, 0] < 640) & (uv_r[:, 1] > 0) & (uv_r[:, 1] < 480)
        X, uv_l, uv_r = X[inside], uv_l[inside], uv_r[inside]
        res = triangulate_stereo(left, right, uv_l, uv_r)
        assert res.valid.all(), set(res.reason)
        assert res.reason == ('',) * len(X)
        rel = np.linalg.norm(res.xyz - X, axis=1) / np.linalg.norm(X, axis=1)
        assert rel.max() < 1e-6
        assert res.reprojection_error_px.max() < 1e-5
        # The rectified-frame result is rotated by R_left: differs from the optical one.
        np.testing.assert_allclose(res.xyz_rect, X @ left.R.T, rtol=1e-6, atol=1e-9)
        # Baseline from P agrees with the rig's translation.
        assert stereo_baseline(left, right) == pytest.approx(np.linalg.norm(T), rel=1e-9)
        if model == 'plumb_bob':
            # Same rig fed rectified pixels (keypoints found in image_rect).
            rect_l = project(left.P, X @ left.R.T)
            rect_r = project(right.P, X @ left.R.T)
            res2 = triangulate_stereo(left, right, rect_l, rect_r,
                                      points_are_rectified=True)
            np.testing.assert_allclose(res2.xyz, X, rtol=1e-8, atol=1e-10)


def test_triangulate_stereo_under_noise():
    """With pixel noise the depth error matches first-order stereo theory."""
    rng = np.random.default_rng(7)
    left, right, R, T = random_rig(rng, baseline=0.12)
    X = points_in_view(rng, 400, left, zmin=0.8, zmax=2.0, margin=80)
    Xr = X @ R.T + T
    sigma = 0.5
    uv_l = project_raw(left, X) + rng.normal(scale=sigma, size=(len(X), 2))
    uv_r = project_raw(right, Xr) + rng.normal(scale=sigma, size=(len(X), 2))
    res = triangulate_stereo(left, right, uv_l, uv_r, max_reprojection_error_px=3.0)
    res_dlt = triangulate_stereo(left, right, uv_l, uv_r, refine=False,
                                 max_reprojection_error_px=3.0)
    assert res.valid.mean() > 0.99
    err = np.linalg.norm(res.xyz - X, axis=1)[res.valid]
    z = X[res.valid, 2]
    fx = left.P[0, 0]
    # First-order depth error: sigma_z = z^2 / (f B) * sigma_d, sigma_d = sqrt(2) sigma.
    sigma_z = z ** 2 / (fx * 0.12) * math.sqrt(2) * sigma
    assert np.median(err / sigma_z) < 1.5
    assert np.percentile(err / sigma_z, 99) < 5.0
    # Reprojection RMS over 2 views ~ sigma/sqrt(2)-ish for the 1 dof removed; bounded.
    assert 0.1 * sigma < np.median(res.reprojection_error_px) < 2 * sigma
    assert np.mean(res.reprojection_error_px) < np.mean(res_dlt.reprojection_error_px)


def test_triangulate_stereo_rejections():
    """Missing, non-finite, off-epipolar and behind-camera points are rejected."""
    rng = np.random.default_rng(8)
    left, right, R, T = random_rig(rng, baseline=0.1)
    X = points_in_view(rng, 6, left, zmin=1.0, zmax=2.0, margin=100)
    uv_l, uv_r = project_raw(left, X), project_raw(right, X @ R.T + T)
    uv_l[1] = np.nan                       # missing in the left view
    uv_r[2, 0] = np.inf                    # garbage in the right view
    uv_r[3, 1] += 30.0                     # breaks the epipolar constraint
    uv_l[4], uv_r[4] = uv_r[4].copy(), uv_l[4].copy()  # swapped: negative disparity
    res = triangulate_stereo(left, right, uv_l, uv_r, max_reprojection_error_px=2.0)
    assert res.reason[0] == REASON_VALID and res.valid[0]
    assert res.reason[1] == REASON_NON_FINITE_INPUT
    assert res.reason[2] == REASON_NON_FINITE_INPUT
    assert res.reason[3] == REASON_REPROJECTION_ERROR
    assert res.reason[4] == REASON_BEHIND_CAMERA
    assert res.reason[5] == REASON_VALID
    assert res.valid.tolist() == [True, False, False, False, False, True]
    assert np.all(np.isnan(res.xyz[~res.valid]))
    assert np.isnan(res.reprojection_error_px[1]) and res.reprojection_error_px[3] > 2.0
    # min_depth: a valid point closer than min_depth is rejected.
    res2 = triangulate_stereo(left, right, uv_l, uv_r, min_depth=X[0, 2] + 0.5,
                              max_reprojection_error_px=2.0)
    assert res2.reason[0] == REASON_BEHIND_CAMERA
    # A point behind the rig (projected through the camera centre) is rejected.
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    Pl = np.hstack([K, np.zeros((3, 1))])
    Pr = np.hstack([K, [[-50.0], [0], [0]]])
    cl = CameraModel(640, 480, K, np.zeros(5), 'plumb_bob', np.eye(3), Pl)
    cr = CameraModel(640, 480, K, np.zeros(5), 'plumb_bob', np.eye(3), Pr)
    Xb = np.array([[0.1, 0.05, -2.0], [0.1, 0.05, 2.0]])
    res3 = triangulate_stereo(cl, cr, project(Pl, Xb), project(Pr, Xb))
    assert res3.reason == (REASON_BEHIND_CAMERA, REASON_VALID)
    with pytest.raises(CalibrationError):
        triangulate_stereo(cl, cl, np.zeros((1, 2)), np.zeros((1, 2)))


def test_stereo_baseline_horizontal_and_vertical():
    """Baseline from P for horizontal and vertical rigs."""
    K = np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]])
    Pl = np.hstack([K, np.zeros((3, 1))])
    left = CameraModel(640, 480, K, [], '', np.eye(3), Pl)
    right_h = CameraModel(640, 480, K, [], '', np.eye(3),
                          np.hstack([K, [[-500.0 * 0.12], [0], [0]]]))
    right_v = CameraModel(640, 480, K, [], '', np.eye(3),
                          np.hstack([K, [[0.0], [-510.0 * 0.07], [0]]]))
    assert stereo_baseline(left, right_h) == pytest.approx(0.12)
    assert stereo_baseline(left, right_v) == pytest.approx(0.07)
    rng = np.random.default_rng(9)
    lv, rv, R, T = random_rig(rng, vertical=True, baseline=0.2)
    assert abs(rv.P[1, 3]) > abs(rv.P[0, 3])
    assert stereo_baseline(lv, rv) == pytest.approx(np.linalg.norm(T), rel=1e-9)
    X = points_in_view(rng, 20, lv, zmin=1.0, zmax=3.0, margin=120)
    uv_r = project_raw(rv, X @ R.T + T)
    ok = np.all((uv_r > 0) & (uv_r < [640, 480]), axis=1)
    res = triangulate_stereo(lv, rv, project_raw(lv, X)[ok], uv_r[ok])
    np.testing.assert_allclose(res.xyz, X[ok], rtol=1e-6)


def test_stereo_point_sigma_matches_monte_carlo_triangulation():
    """Noise along and across the ray against cv2.triangulatePoints on noisy pixels."""
    f, b, sigma_px = 500.0, 0.06, 0.4  # first order holds while noise << disparity (12 px)
    K = np.array([[f, 0, 320], [0, f, 240], [0, 0, 1]])
    Pl = np.hstack([K, np.zeros((3, 1))])
    Pr = np.hstack([K, [[-f * b], [0], [0]]])
    rng = np.random.default_rng(4)
    X = np.array([0.3, -0.2, 2.5])
    n = 4000
    uv = [(P @ np.append(X, 1))[:2] / (P @ np.append(X, 1))[2] for P in (Pl, Pr)]
    noisy = [np.repeat(u[None], n, 0) + rng.normal(0, sigma_px, (n, 2)) for u in uv]
    h = cv2.triangulatePoints(Pl, Pr, noisy[0].T, noisy[1].T)
    pts = (h[:3] / h[3]).T
    ray = X / np.linalg.norm(X)
    along = (pts - X) @ ray
    across = (pts - X) - along[:, None] * ray
    sz, sxy = stereo_point_sigma(X[2], f, b, sigma_px)
    assert np.std(along) == pytest.approx(sz / ray[2], rel=0.08)  # depth noise along the ray
    assert np.sqrt(np.mean(np.sum(across ** 2, axis=1)) / 2) == pytest.approx(sxy, rel=0.15)
    np.testing.assert_allclose(stereo_point_sigma(np.array([1.0, 2.0]), f, b, 1.0)[0],
                               [np.sqrt(2) / 30, 4 * np.sqrt(2) / 30])  # grows with z^2
    with pytest.raises(ValueError):
        stereo_point_sigma(1.0, f, 0.0, 1.0)


# ------------------------------------------------------------ camera models
def test_camera_info_round_trip_and_frame_id():
    """Duck-typed CameraInfo parsing, round trip and frame_id."""
    rng = np.random.default_rng(10)
    left, right, _, _ = random_rig(rng)
    msg = fake_camera_info(right, frame_id='right_cam_optical')
    cam = CameraModel.from_camera_info(msg)
    assert cam.frame_id == 'right_cam_optical'
    assert (cam.width, cam.height, cam.distortion_model) == (640, 480, 'plumb_bob')
    np.testing.assert_array_equal(cam.K, right.K)
    np.testing.assert_array_equal(cam.P, right.P)
    assert cam.K.dtype == np.float64 and cam.P.shape == (3, 4) and cam.D.shape == (5,)
    d = cam.to_camera_info_dict()
    fields = {k: v for k, v in d.items() if k != 'frame_id'}
    cam2 = CameraModel.from_camera_info(SimpleNamespace(
        header=SimpleNamespace(frame_id=d['frame_id']), **fields))
    np.testing.assert_array_equal(cam2.R, cam.R)
    assert cam2.frame_id == 'right_cam_optical'
    assert not cam.is_rectified
    # numpy arrays (as rclpy gives) work too, and the model does not alias them.
    k = right.K.ravel().copy()
    cam3 = CameraModel.from_camera_info(fake_camera_info(right, k=k))
    k[0] = 1.0
    assert cam3.K[0, 0] == right.K[0, 0]
    # All-zero R (monocular drivers) means identity.
    cam4 = CameraModel.from_camera_info(fake_camera_info(right, r=[0.0] * 9))
    np.testing.assert_array_equal(cam4.R, np.eye(3))


@pytest.mark.parametrize('override, message', [
    ({'k': [0.0] * 9}, 'K is all zeros'),
    ({'p': [0.0] * 12}, 'P is all zeros'),
    ({'d': [0.1, 0.0, 0.0]}, 'needs 5 coefficients'),
    ({'k': [500.0, 0, 320, 0, float('nan'), 240, 0, 0, 1]}, 'non-finite'),
    ({'d': [0.1, float('inf'), 0, 0, 0]}, 'non-finite'),
    ({'k': [500.0, 0, 320, 0, 500, 240, 0, 0]}, 'must have 9 values'),
    ({'p': [500.0] * 11}, 'must have 12 values'),
    ({'distortion_model': 'kannala_brandt'}, 'unsupported distortion model'),
    ({'r': [1.0, 0, 0, 0, 2.0, 0, 0, 0, 1]}, 'not a rotation'),
    ({'width': 0}, 'image size'),
    ({'roi': SimpleNamespace(x_offset=10, y_offset=0, width=100, height=100)},
     'region of interest'),
])
def test_camera_info_errors(override, message):
    """Malformed CameraInfo raises CalibrationError naming the problem."""
    rng = np.random.default_rng(11)
    left, _, _, _ = random_rig(rng)
    with pytest.raises(CalibrationError, match=message):
        CameraModel.from_camera_info(fake_camera_info(left, **override))


def test_camera_info_missing_field():
    """An object without the CameraInfo fields is rejected."""
    msg = SimpleNamespace(width=640, height=480, k=[1.0] * 9)
    with pytest.raises(CalibrationError, match='no field'):
        CameraModel.from_camera_info(msg)
    assert issubclass(CalibrationError, ValueError)


def test_scaled_and_binning_follow_resize_pixel_convention():
    """scaled() and binning follow the cv2.resize pixel-centre convention."""
    rng = np.random.default_rng(12)
    left, right, R, T = random_rig(rng)
    X = points_in_view(rng, 50, left)
    for sx, sy in ((0.5, 0.5), (0.25, 0.3), (2.0, 1.5)):
        s = right.scaled(sx, sy)
        # Oracle: pixel u maps to sx * (u + 0.5) - 0.5 in the resized image.
        for P_orig, P_new in ((right.P, s.P), (right.K @ np.eye(3, 4), s.K @ np.eye(3, 4))):
            uv = project(P_orig, X)
            expected = np.stack([sx * (uv[:, 0] + 0.5) - 0.5, sy * (uv[:, 1] + 0.5) - 0.5], 1)
            np.testing.assert_allclose(project(P_new, X), expected, atol=1e-9)
        assert (s.width, s.height) == (round(640 * sx), round(480 * sy))
        assert stereo_baseline(left.scaled(sx, sy), s) == pytest.approx(
            stereo_baseline(left, right))
    binned = CameraModel.from_camera_info(fake_camera_info(left, binning_x=2, binning_y=2))
    np.testing.assert_allclose(binned.K, left.scaled(0.5, 0.5).K)
    assert (binned.width, binned.height) == (320, 240)
    with pytest.raises(ValueError):
        left.scaled(0, 1)


def test_yaml_written_by_calibration_tool(real_rig, tmp_path):
    """The committed camera_info YAML files load and follow ROS conventions."""
    left, right = real_rig
    with open(os.path.join(CONFIG_DIR, 'opencv_stereo_right.yaml')) as f:
        raw = yaml.safe_load(f)
    assert raw['camera_name'] == 'right' and raw['distortion_model'] == 'plumb_bob'
    for key, shape in (('camera_matrix', (3, 3)), ('distortion_coefficients', (1, 5)),
                       ('rectification_matrix', (3, 3)), ('projection_matrix', (3, 4))):
        assert (raw[key]['rows'], raw[key]['cols']) == shape
    assert (left.width, left.height) == (640, 480) and left.frame_id == 'left_optical'
    assert left.P[0, 3] == 0.0 and right.P[0, 3] < 0.0
    baseline = stereo_baseline(left, right)
    assert baseline == pytest.approx(-right.P[0, 3] / right.P[0, 0], rel=1e-9)
    assert 0.05 < baseline < 0.15   # with the assumed 25 mm squares
    np.testing.assert_allclose(left.P[:, :3], right.P[:, :3])  # CALIB_ZERO_DISPARITY
    # Round trip through to_yaml_dict.
    path = tmp_path / 'cam.yaml'
    path.write_text(yaml.safe_dump(right.to_yaml_dict('right')))
    again = CameraModel.from_yaml(str(path))
    for a in ('K', 'D', 'R', 'P'):
        np.testing.assert_array_equal(getattr(again, a), getattr(right, a))
    bad = dict(right.to_yaml_dict('right'))
    bad['distortion_coefficients'] = {'rows': 1, 'cols': 5, 'data': [0.0] * 4}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(CalibrationError, match='rows \\* cols'):
        CameraModel.from_yaml(str(path))


# --------------------------------------------------------------- rigid fits
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


# ---------------------------------------------------------------- symmetry
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


# ----------------------------------------------------- real data (OpenCV)
def test_ground_truth_real_sequence(opencv_data):
    """Ground truth of the real sequence: 26 images, clockwise keypoints."""
    gt = gtm.load_opencv_stereo_ground_truth(opencv_data)
    assert len(gt) == 26
    names = list(gt)
    assert names[:2] == ['left01.jpg', 'right01.jpg']
    for name, item in gt.items():
        assert item.corners.shape == (54, 2) and item.keypoints.shape == (4, 2)
        assert set(item.keypoint_corner_indices) == {0, 8, 45, 53}
        k = item.keypoints
        # Clockwise with y down: positive shoelace sum.
        area = 0.5 * sum(k[i, 0] * k[(i + 1) % 4, 1] - k[(i + 1) % 4, 0] * k[i, 1]
                         for i in range(4))
        assert area > 0, name
        assert np.all((k >= 0) & (k < [640, 480]))
    # Independent detection of one image agrees with the stored corners.
    img = cv2.imread(os.path.join(opencv_data, 'right05.jpg'), cv2.IMREAD_GRAYSCALE)
    ok, corners = cv2.findChessboardCorners(
        img, (9, 6), flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
    assert ok
    corners = cv2.cornerSubPix(img, corners, (11, 11), (-1, -1),
                               (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    np.testing.assert_allclose(gt['right05.jpg'].corners, corners.reshape(-1, 2), atol=1e-3)
    with open(os.path.join(opencv_data, 'ground_truth.json')) as f:
        assert json.load(f)['square_size_m_assumed'] == pytest.approx(0.025)


def test_extreme_corners_counter_clockwise_traversal():
    """A counter-clockwise corner traversal is reordered clockwise."""
    grid = np.stack(np.meshgrid(np.arange(9.0), np.arange(6.0)), -1).reshape(-1, 2) * 10
    k, idx = gtm.extreme_corners_clockwise(grid)
    assert idx == (0, 8, 53, 45)
    mirrored = grid * [-1.0, 1.0] + [100.0, 0.0]  # traversal now counter-clockwise
    k, idx = gtm.extreme_corners_clockwise(mirrored)
    assert idx == (8, 0, 45, 53)
    np.testing.assert_allclose(k, [[20, 0], [100, 0], [100, 50], [20, 50]])


def test_real_rig_triangulates_the_board(opencv_data, real_rig):
    """End to end on real images: board geometry from the calibrated rig."""
    left, right = real_rig
    gt = gtm.load_opencv_stereo_ground_truth(opencv_data)
    with open(CHECKERBOARD_YAML) as f:
        board = yaml.safe_load(f)
    template = np.array([kp['position'] for kp in board['keypoints']])
    symmetries = board['symmetries']
    square = 0.025
    pairs = [(n, 'right' + n[4:]) for n in gt if n.startswith('left')]
    assert len(pairs) == 13
    spacing, fit_rmse = [], []
    for ln, rn in pairs:
        res = triangulate_stereo(left, right, gt[ln].corners, gt[rn].corners,
                                 max_reprojection_error_px=3.0)
        assert res.valid.mean() > 0.9, (ln, set(res.reason))
        grid = res.xyz.reshape(6, 9, 3)
        d = np.r_[np.linalg.norm(np.diff(grid, axis=1), axis=2).ravel(),
                  np.linalg.norm(np.diff(grid, axis=0), axis=2).ravel()]
        spacing.append(np.nanmedian(d))
        assert 0.15 < np.nanmedian(res.xyz[:, 2]) < 1.0       # metres, in front of the rig
        # 4 keypoints: match labels across views, triangulate, fit the template.
        perm = match_stereo_symmetry(left, right, gt[ln].keypoints, gt[rn].keypoints,
                                     symmetries)
        assert perm == (0, 1, 2, 3)  # OpenCV ordered both views consistently
        shuffled = gt[rn].keypoints[[2, 3, 0, 1]]
        assert match_stereo_symmetry(left, right, gt[ln].keypoints, shuffled,
                                     symmetries) == (2, 3, 0, 1)
        kp = triangulate_stereo(left, right, gt[ln].keypoints, gt[rn].keypoints,
                                max_reprojection_error_px=3.0)
        fit = fit_template_pose(template, kp.xyz, kp.valid, symmetries)
        assert fit is not None
        fit_rmse.append(fit.rmse)
        # The board's +z (into the board) points away from the camera.
        assert fit.R[2, 2] > 0
    # Assumed 25 mm squares: the calibration is self-consistent to ~1 %.
    assert np.median(spacing) == pytest.approx(square, rel=0.01)
    assert np.median(fit_rmse) < 0.002


def test_symmetric_errors():
    """Per-keypoint error under the best symmetric permutation."""
    from keypoint_perception.training.metrics import symmetric_errors
    gt = np.array([[10.0, 10.0], [100.0, 12.0], [98.0, 80.0], [12.0, 78.0]])
    sym = [[2, 3, 0, 1]]
    pred = gt[[2, 3, 0, 1]] + [[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [3.0, 4.0]]
    np.testing.assert_allclose(symmetric_errors(pred, gt, sym), [0.0, 5.0, 1.0, 2.0])
    np.testing.assert_allclose(symmetric_errors(gt, gt, sym), 0.0)
    pred2 = gt.copy()
    pred2[1] = np.nan
    err2 = symmetric_errors(pred2, gt, sym)
    assert np.isnan(err2[1]) and np.allclose(err2[[0, 2, 3]], 0.0)
    batch = symmetric_errors(np.stack([pred, gt]), np.stack([gt, gt]), sym)
    assert batch.shape == (2, 4) and np.allclose(batch[1], 0.0)


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
