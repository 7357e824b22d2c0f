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
"""Tests of keypoint_perception.core.triangulation (oracles: OpenCV, Monte Carlo, real images)."""

import math
from types import SimpleNamespace

import cv2
from geometry_helpers import (CHECKERBOARD_YAML, points_in_view, project_raw, random_K, random_rig,
                              random_rotation)
from keypoint_perception.core.camera import (CalibrationError, CameraModel, project,
                                             reprojection_error, stereo_baseline)
from keypoint_perception.core.rigid import fit_template_pose
from keypoint_perception.core.symmetry import match_stereo_symmetry
from keypoint_perception.core.triangulation import (REASON_BEHIND_CAMERA, REASON_NON_FINITE_INPUT,
                                                    REASON_REPROJECTION_ERROR, REASON_VALID,
                                                    refine_triangulation, stereo_point_sigma,
                                                    triangulate_dlt, triangulate_stereo)
from keypoint_perception.training import ground_truth as gtm
import numpy as np
import pytest
import yaml


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
