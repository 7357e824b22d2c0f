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
"""Camera-to-robot calibration (core): known transforms recovered from synthetic keypoints.

The robot is the Panda of pybullet_data at random joint angles (forward
kinematics from :mod:`keypoint_perception.core.kinematics`), seen from a
camera 1.6 m away with lens distortion.  Noise: 3 mm on triangulated points,
1 px on pixels; 2 of the 7 keypoints (~30%) are outliers.
"""

import math
import os

import cv2
from keypoint_perception.core.calibration_metrics import add_auc, add_distance, pose_errors
from keypoint_perception.core.camera import camera_center, CameraModel, project
from keypoint_perception.core.config import RobotCalibrationConfig
from keypoint_perception.core.distortion import rectify_points, unrectify_points
from keypoint_perception.core.kinematics import keypoint_anchors, RobotKinematics
from keypoint_perception.core.multi_frame_calibration import combine_frames, pose_deviation
from keypoint_perception.core.objects import load_object_class
from keypoint_perception.core.pose_covariance import (inverse_pose_covariance,
                                                      left_composed_pose_covariance)
from keypoint_perception.core.robot_calibration import (
    CameraToBase, fit_camera_to_base_mono, fit_camera_to_base_stereo, make_transform,
    MAX_RELATIVE_STD, transform_points, well_determined)
from keypoint_perception.core.rotations import matrices_from_rotation_vectors
from keypoint_perception.core.triangulation import triangulate_stereo
from keypoint_perception.core.two_view_calibration import (fit_camera_to_base_stereo_views,
                                                           transform_between_views)
import numpy as np
import pybullet_data
import pytest

PANDA_URDF = os.path.join(pybullet_data.getDataPath(), 'franka_panda', 'panda.urdf')


def look_at(eye, target):
    """T_camera_base of a camera at ``eye`` (base frame) looking at ``target``, image y down."""
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R_base_camera = np.stack([x, y, z], axis=1)
    return make_transform(R_base_camera.T, -R_base_camera.T @ eye)


@pytest.fixture(scope='module')
def panda():
    """(kinematics, anchors, random joint states -> (J, 3) base keypoints)."""
    kinematics = RobotKinematics(PANDA_URDF)
    anchors = keypoint_anchors(load_object_class('panda'))

    def keypoints(rng):
        q = {f'panda_joint{k}': float(rng.uniform(-1.5, 1.5)) for k in range(1, 8)}
        q['panda_joint4'] = float(rng.uniform(-2.8, -0.5))  # the Panda's elbow range
        return kinematics.keypoint_positions(q, anchors)
    return keypoints


CAMERA = CameraModel(width=640, height=480, K=[[600, 0, 322], [0, 600, 238], [0, 0, 1]],
                     D=[-0.25, 0.08, 0.001, -0.0005, 0.0], distortion_model='plumb_bob',
                     R=np.eye(3), P=[[600, 0, 322, 0], [0, 600, 238, 0], [0, 0, 1, 0]],
                     frame_id='camera_optical')
T_TRUE = look_at(np.array([1.3, -0.8, 0.7]), [0.0, 0.0, 0.4])


def _outliers(rng, count, size=7):
    return rng.choice(size, count, replace=False)


def _stereo_observation(rng, points_base, T, noise_m=0.003, num_outliers=2):
    cam = transform_points(T, points_base) + rng.normal(0, noise_m, points_base.shape)
    bad = _outliers(rng, num_outliers)
    cam[bad] += rng.uniform(0.1, 0.3, (num_outliers, 3)) * rng.choice([-1, 1], (num_outliers, 3))
    return cam, bad


def _mono_observation(rng, points_base, T, camera=CAMERA, noise_px=1.0, num_outliers=2):
    uv = unrectify_points(camera, transform_points(T, points_base))  # raw, distorted pixels
    uv += rng.normal(0, noise_px, uv.shape)
    bad = _outliers(rng, num_outliers)
    uv[bad] += rng.uniform(30, 80, (num_outliers, 2)) * rng.choice([-1, 1], (num_outliers, 2))
    return uv, bad


def test_stereo_fit_is_exact_without_noise(panda):
    rng = np.random.default_rng(0)
    base = panda(rng)
    est = fit_camera_to_base_stereo(transform_points(T_TRUE, base), base)
    np.testing.assert_allclose(est.T_camera_base, T_TRUE, atol=1e-9)
    assert est.inliers.all() and est.rms < 1e-9 and est.mode == 'stereo'


@pytest.mark.parametrize('mode', ['stereo', 'mono'])
def test_outliers_without_noise_are_rejected_exactly(panda, mode):
    """2 of 7 keypoints far off, the others exact: the transform is recovered exactly."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        base = panda(rng)
        if mode == 'stereo':
            obs, bad = _stereo_observation(rng, base, T_TRUE, noise_m=0.0)
            est = fit_camera_to_base_stereo(obs, base)
        else:
            obs, bad = _mono_observation(rng, base, T_TRUE, noise_px=0.0)
            est = fit_camera_to_base_mono(obs, base, CAMERA)
        np.testing.assert_allclose(est.T_camera_base, T_TRUE, atol=1e-6)
        assert est.inliers.sum() == 5 and not est.inliers[bad].any()


def test_stereo_fit_recovers_the_transform_with_noise_and_outliers(panda):
    """3 mm noise, 2 of 7 outliers, sometimes a keypoint missing (40 frames).

    Tolerances: every frame's outliers rejected and ADD under 20 mm; median
    errors under 10 mm and 1.5 degrees (the translation error is at the
    base's origin, up to a metre from the keypoints, hence above the ADD).
    """
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(40):
        base = panda(rng)
        cam, bad = _stereo_observation(rng, base, T_TRUE)
        if rng.random() < 0.3:  # a keypoint not seen in one view
            cam[[j for j in range(7) if j not in bad][0]] = np.nan
        est = fit_camera_to_base_stereo(cam, base, inlier_threshold_m=0.02)
        assert est is not None and not est.inliers[bad].any()
        assert add_distance(est.T_camera_base, T_TRUE, base) < 0.020
        assert np.isfinite(est.covariance).all() and est.rms < 0.01
        errors.append(pose_errors(est.T_camera_base, T_TRUE))
    median_t, median_r = np.median(errors, axis=0)
    assert median_t < 0.010 and math.degrees(median_r) < 1.5, (median_t, median_r)


def test_mono_fit_recovers_the_transform_with_noise_and_outliers(panda):
    """1 px noise, 2 of 7 outliers (30-80 px off), distorted lens, 1.6 m away (40 frames).

    With 5 inliers PnP's depth is weakly determined, so the tolerances are
    statistical: outliers rejected in at least 90% of the frames, median
    ADD under 15 mm, ADD AUC (DREAM) above 0.75.
    """
    rng = np.random.default_rng(3)
    adds, rejected = [], 0
    for _ in range(40):
        base = panda(rng)
        uv, bad = _mono_observation(rng, base, T_TRUE)
        est = fit_camera_to_base_mono(uv, base, CAMERA, inlier_threshold_px=8.0)
        assert est is not None and est.inliers.sum() >= 4
        rejected += not est.inliers[bad].any()
        adds.append(add_distance(est.T_camera_base, T_TRUE, base))
    assert rejected >= 36
    assert np.median(adds) < 0.015 and add_auc(adds) > 0.75, (np.median(adds), add_auc(adds))


def test_mono_fit_on_rectified_pixels_of_a_rotated_camera(panda):
    """Pixels of P (rectified image) with R != I give the optical frame's transform.

    The camera is the right one of a rig (``P[0, 3] != 0``): ROS's P projects
    points of the left rectified frame, where this camera's optical frame
    sits at the centre of P, rotated by R.
    """
    R_rect = cv2.Rodrigues(np.array([0.02, -0.03, 0.01]))[0]
    camera = CameraModel(width=640, height=480, K=CAMERA.K, D=CAMERA.D,
                         distortion_model='plumb_bob', R=R_rect,
                         P=[[580, 0, 330, -580 * 0.1], [0, 580, 240, 0], [0, 0, 1, 0]])
    rng = np.random.default_rng(4)
    base = panda(rng)
    x_optical = transform_points(T_TRUE, base)
    X_rect = x_optical @ R_rect.T + camera_center(camera.P)
    uv = project(camera.P, X_rect)
    est = fit_camera_to_base_mono(uv, base, camera, rectified=True)
    np.testing.assert_allclose(est.T_camera_base, T_TRUE, atol=1e-6)


def test_too_few_keypoints_give_none(panda):
    rng = np.random.default_rng(5)
    base = panda(rng)
    cam = transform_points(T_TRUE, base)
    cam[:5] = np.nan
    assert fit_camera_to_base_stereo(cam, base) is None
    uv, _ = _mono_observation(rng, base, T_TRUE, noise_px=0.0, num_outliers=0)
    uv[:4] = np.nan
    assert fit_camera_to_base_mono(uv, base, CAMERA) is None
    with pytest.raises(ValueError):
        fit_camera_to_base_stereo(cam[:3], base)


@pytest.mark.parametrize('mode', ['stereo', 'stereo_views', 'mono'])
def test_combining_frames_shrinks_the_error_and_rejects_a_wrong_frame(panda, mode):
    """30 frames: the joint estimate beats the typical single frame; a bad frame is dropped."""
    rng = np.random.default_rng({'stereo': 6, 'mono': 7, 'stereo_views': 9}[mode])
    left, right = stereo_rig() if mode == 'stereo_views' else (CAMERA, None)
    estimates, bases, observations, single_errors = [], [], [], []
    for i in range(30):
        base = panda(rng)
        T = T_TRUE
        if i == 4:  # a frame whose joint state belongs to another time: 12 cm off
            T = make_transform(cv2.Rodrigues(np.array([0.0, 0.0, 0.2]))[0], [0.12, 0, 0]) @ T
        if mode == 'stereo':
            obs, _ = _stereo_observation(rng, base, T, noise_m=0.005, num_outliers=1)
            est = fit_camera_to_base_stereo(obs, base)
        elif mode == 'stereo_views':
            obs = np.hstack(_stereo_pixels(left, right, base, T)) + rng.normal(0, 2.0, (7, 4))
            obs[_outliers(rng, 1)] += 60.0
            est = fit_camera_to_base_stereo_views(obs[:, :2], obs[:, 2:], base, left, right)
        else:
            obs, _ = _mono_observation(rng, base, T, noise_px=2.0, num_outliers=1)
            est = fit_camera_to_base_mono(obs, base, CAMERA)
        estimates.append(est)
        bases.append(base)
        observations.append(obs)
        if i != 4:
            single_errors.append(pose_errors(est.T_camera_base, T_TRUE)[0])
    result = combine_frames(estimates, bases, observations, camera=left, right_camera=right)
    assert result.mode == mode
    assert not result.frames_used[4] and result.frames_used.sum() >= 20
    dt, dr = pose_errors(result.T_camera_base, T_TRUE)
    assert dt < 0.5 * np.median(single_errors), (dt, np.median(single_errors))
    # the reported uncertainty is honest: the true error within 4 standard errors per axis
    deviation = pose_deviation(T_TRUE, result.T_camera_base)
    sigma = np.sqrt(np.diag(result.covariance))
    assert np.all(np.abs(deviation) < 4 * sigma + 1e-4), (deviation, sigma)
    assert np.all(result.translation_std_m > 0) and np.all(result.rotation_std_rad > 0)
    # one frame alone: the residual covariance, no spread
    alone = combine_frames(estimates[:1], bases[:1], observations[:1], camera=left,
                           right_camera=right)
    np.testing.assert_allclose(alone.covariance, estimates[0].covariance, rtol=1e-3,
                               atol=1e-12)
    assert np.isnan(alone.translation_std_m).all()
    assert combine_frames([None], bases[:1], observations[:1]) is None


def test_inverse_pose_covariance_matches_sampling():
    """Monte Carlo: perturb T by samples of its covariance, invert, measure the spread."""
    rng = np.random.default_rng(8)
    L = np.tril(rng.normal(0, 0.01, (6, 6))) + np.eye(6) * 0.005
    cov = L @ L.T
    samples = rng.multivariate_normal(np.zeros(6), cov, 20000)
    T_inv = np.linalg.inv(T_TRUE)
    devs = []
    for s in samples:
        T = make_transform(cv2.Rodrigues(s[3:])[0] @ T_TRUE[:3, :3], T_TRUE[:3, 3] + s[:3])
        devs.append(pose_deviation(np.linalg.inv(T), T_inv))
    empirical = np.cov(np.array(devs).T)
    np.testing.assert_allclose(inverse_pose_covariance(T_TRUE, cov), empirical,
                               atol=0.05 * np.abs(empirical).max())


def test_add_and_add_auc_by_hand():
    """ADD of a 10 mm shift is 10 mm; the AUC of hand-picked ADDs, exact and numeric."""
    points = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.5]], float)
    shifted = make_transform(np.eye(3), [0.006, 0.008, 0.0])  # 10 mm
    assert add_distance(shifted, np.eye(4), points) == pytest.approx(0.010)
    assert add_distance(None, np.eye(4), points) == math.inf
    # a rotation by 90 degrees about z through the origin: distances 0, sqrt(2), sqrt(2)*1
    rot = make_transform(cv2.Rodrigues(np.array([0, 0, math.pi / 2]))[0], [0, 0, 0])
    assert add_distance(rot, np.eye(4), points) == pytest.approx(2 * math.sqrt(2) / 3)
    # F(d) for ADDs 0, 50, 100, 200 mm and one failure: area 1*0.1 + 0.5*0.05 ... / 0.1
    # = (0.1 + 0.05 + 0 + 0 + 0) / 0.1 / 5 = 0.3
    values = [0.0, 0.05, 0.1, 0.2, math.inf]
    assert add_auc(values) == pytest.approx(0.3)
    assert add_auc([0.025] * 4) == pytest.approx(0.75)
    # DREAM's numeric integration over a fine threshold grid agrees
    grid = np.linspace(0, 0.1, 100001)
    accuracy = [(np.asarray(values) <= d).mean() for d in grid[::100]]
    trapezoid = getattr(np, 'trapezoid', None) or np.trapz  # numpy 1.26 has trapz only
    numeric = trapezoid(accuracy, grid[::100]) / 0.1
    assert add_auc(values) == pytest.approx(numeric, abs=1e-3)
    with pytest.raises(ValueError):
        add_auc([-0.1])


def stereo_rig(baseline=0.1):
    """(left, right) raw, distorted cameras whose rectification rotations differ."""
    Kp = np.array([[580.0, 0, 318], [0, 580.0, 241], [0, 0, 1]])
    cameras = []
    for frame, rotation, D, tx in (
            ('left_optical', [0.01, -0.02, 0.005], [-0.2, 0.05, 0.001, 0.0, 0.0], 0.0),
            ('right_optical', [-0.015, 0.01, -0.004], [-0.18, 0.04, 0.0, 0.001, 0.0],
             -580.0 * baseline)):
        cameras.append(CameraModel(
            width=640, height=480, K=[[600, 0, 322], [0, 602, 238], [0, 0, 1]], D=D,
            distortion_model='plumb_bob',
            R=matrices_from_rotation_vectors(np.array([rotation]))[0],
            P=np.hstack([Kp, [[tx], [0.0], [0.0]]]), frame_id=frame))
    return cameras[0], cameras[1]


def _stereo_pixels(left, right, points_base, T):
    """Raw pixels of base points in both views of the rig (T: base -> left optical)."""
    X_rect = transform_points(T, points_base) @ left.R.T  # left rectified frame (c_left = 0)
    return unrectify_points(left, X_rect), unrectify_points(right, X_rect)


def test_transform_between_views_maps_the_right_optical_frame():
    """A left-frame point moved into the right optical frame projects where the rig says."""
    left, right = stereo_rig()
    x_left = np.array([[0.3, -0.2, 2.5], [-0.5, 0.1, 1.2]])
    T_left_right = transform_between_views(left, right)
    x_right = transform_points(np.linalg.inv(T_left_right), x_left)
    uv, _ = cv2.projectPoints(x_right, np.zeros(3), np.zeros(3), right.K, right.D)
    np.testing.assert_allclose(uv.reshape(-1, 2), _stereo_pixels(left, right, x_left,
                                                                 np.eye(4))[1], atol=1e-6)
    # the right camera sits about one baseline along the left camera's x axis
    assert abs(np.linalg.norm(T_left_right[:3, 3]) - 0.1) < 1e-9
    assert T_left_right[0, 3] > 0.09


def test_two_view_fit_is_exact_and_rejects_outliers(panda):
    """Exact pixels in both views, 2 outliers in the left view and 1 in the right."""
    left, right = stereo_rig()
    rng = np.random.default_rng(5)
    for _ in range(10):
        base = panda(rng)
        uv_left, uv_right = _stereo_pixels(left, right, base, T_TRUE)
        bad_left = _outliers(rng, 2)
        bad_right = rng.choice([j for j in range(7) if j not in bad_left], 1)
        uv_left[bad_left] += rng.uniform(30, 80, (2, 2))
        uv_right[bad_right] -= rng.uniform(30, 80, (1, 2))
        est = fit_camera_to_base_stereo_views(uv_left, uv_right, base, left, right)
        np.testing.assert_allclose(est.T_camera_base, T_TRUE, atol=1e-6)
        assert est.mode == 'stereo_views' and est.inliers.sum() == 4
        assert not est.inliers[bad_left].any() and not est.inliers[bad_right].any()
        assert est.rms < 1e-4 and np.isfinite(est.covariance).all()


def test_two_view_fit_beats_the_rigid_and_mono_fits_far_away(panda):
    """3.5 m away, 10 cm baseline, 1.5 px noise (40 frames): depth is the weak coordinate.

    The rigid fit of triangulated points inherits the depth error (about
    30 cm per pixel of disparity at 3.5 m), the mono fit has half the
    observations: the two-view fit's median ADD must be below both.
    """
    left, right = stereo_rig()
    T = look_at(np.array([2.8, -1.9, 1.0]), [0.0, 0.0, 0.4])
    rng = np.random.default_rng(3)
    add = {'views': [], 'rigid': [], 'mono': []}
    for _ in range(40):
        base = panda(rng)
        uv_left, uv_right = (uv + rng.normal(0, 1.5, uv.shape)
                             for uv in _stereo_pixels(left, right, base, T))
        points = triangulate_stereo(left, right, uv_left, uv_right,
                                    max_reprojection_error_px=np.inf)
        fits = {'views': fit_camera_to_base_stereo_views(uv_left, uv_right, base, left, right),
                'rigid': fit_camera_to_base_stereo(points.xyz, base, inlier_threshold_m=0.3),
                'mono': fit_camera_to_base_mono(uv_left, base, left)}
        for name, fit in fits.items():
            add[name].append(np.inf if fit is None else
                             add_distance(fit.T_camera_base, T, base))
    median = {name: float(np.median(values)) for name, values in add.items()}
    assert median['views'] < 0.7 * median['mono'], median
    assert median['views'] < 0.5 * median['rigid'], median
    assert np.isfinite(add['views']).all()


def test_two_view_fit_needs_three_keypoints_in_both_views(panda):
    left, right = stereo_rig()
    base = panda(np.random.default_rng(0))
    uv_left, uv_right = _stereo_pixels(left, right, base, T_TRUE)
    # 3 left (joint_4, joint_7, grasp; the last three keypoints, joint_7, flange and
    # grasp, lie on the flange axis: collinear, no pose), all 7 right: fine; then
    # one fewer in the right view
    uv_left[[0, 1, 3, 5]] = np.nan
    assert fit_camera_to_base_stereo_views(uv_left, uv_right, base, left, right) is not None
    uv_right[4] = np.nan
    assert fit_camera_to_base_stereo_views(uv_left, uv_right, base, left, right) is None
    with pytest.raises(ValueError, match='min_inliers'):
        fit_camera_to_base_stereo_views(uv_left, uv_right, base, left, right, min_inliers=2)


def test_two_view_fit_on_rectified_pixels_and_the_right_views_mono_start(panda):
    """Rectified pixels (image_rect): exact recovery, and the right view's start.

    The right view's mono fit alone must land on the true pose once moved
    into the left optical frame (a start one baseline off would be rescued
    by the refinement, so it is checked on its own).
    """
    left, right = stereo_rig()
    rng = np.random.default_rng(12)
    base = panda(rng)
    raw_left, raw_right = _stereo_pixels(left, right, base, T_TRUE)
    uv_left, uv_right = rectify_points(left, raw_left), rectify_points(right, raw_right)
    est = fit_camera_to_base_stereo_views(uv_left, uv_right, base, left, right, rectified=True)
    np.testing.assert_allclose(est.T_camera_base, T_TRUE, atol=1e-6)
    mono_right = fit_camera_to_base_mono(uv_right, base, right, rectified=True)
    np.testing.assert_allclose(transform_between_views(left, right)
                               @ mono_right.T_camera_base, T_TRUE, atol=1e-6)


def test_left_composed_pose_covariance_is_the_linear_map_of_perturbations():
    """cov(F @ T) from cov(T): the map of (dt, phi) perturbations, checked numerically."""
    rng = np.random.default_rng(5)
    F = np.eye(4)
    F[:3, :3] = cv2.Rodrigues(rng.normal(size=3))[0]
    F[:3, 3] = rng.normal(size=3)
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rng.normal(size=3))[0]
    T[:3, 3] = rng.normal(size=3)
    A = rng.normal(size=(6, 6))
    covariance = A @ A.T
    eps, J = 1e-3, np.zeros((6, 6))  # the map is exact (not first order) for both parts
    FT = F @ T
    for k in range(6):  # column k: F @ (T perturbed along coordinate k), as (dt', phi')
        d = np.zeros(6)
        d[k] = eps
        Tp = T.copy()
        Tp[:3, :3] = cv2.Rodrigues(d[3:])[0] @ T[:3, :3]
        Tp[:3, 3] += d[:3]
        FTp = F @ Tp
        J[:3, k] = (FTp[:3, 3] - FT[:3, 3]) / eps
        J[3:, k] = cv2.Rodrigues(FTp[:3, :3] @ FT[:3, :3].T)[0].ravel() / eps
    np.testing.assert_allclose(left_composed_pose_covariance(F, covariance),
                               J @ covariance @ J.T, rtol=1e-5, atol=1e-6)


def test_relative_translation_std_and_the_gate_by_hand():
    T = make_transform(np.eye(3), [0.0, 0.0, 2.8])
    covariance = np.diag([0.04, 0.09, 0.36, 1e-4, 1e-4, 1e-4])  # sqrt(0.49) = 0.7 m
    est = CameraToBase(T, np.ones(4, bool), np.zeros(4), 0.0, covariance, 'mono')
    assert est.relative_translation_std == pytest.approx(0.25)
    assert well_determined(est, 0.2501) is est and well_determined(est, 0.2499) is None
    degenerate = CameraToBase(T, np.ones(4, bool), np.zeros(4), 0.0,
                              np.full((6, 6), np.nan), 'mono')
    assert degenerate.relative_translation_std == math.inf
    assert well_determined(degenerate, 10.0) is None
    exact = CameraToBase(T, np.ones(4, bool), np.zeros(4), 0.0,
                         np.diag([-5e-13, 1e-13, 1e-13, 0, 0, 0]), 'mono')  # round-off
    assert exact.relative_translation_std == 0.0 and well_determined(exact, 0.25) is exact
    assert well_determined(degenerate, math.inf) is degenerate
    assert well_determined(None, 1.0) is None
    with pytest.raises(ValueError, match='max_relative_std'):
        well_determined(est, 0.0)


def test_the_node_and_the_fits_share_one_default_bound():
    assert RobotCalibrationConfig().max_relative_std == MAX_RELATIVE_STD


def test_uncertain_mono_fits_are_the_wrong_ones_and_are_dropped(panda):
    """4 keypoints, 3 px noise, 4 m away: PnP's depth is poorly determined.

    The gate (default 0.25) drops exactly the fits whose covariance says
    their translation is uncertain beyond a quarter of the distance, and
    those are far worse than the ones it keeps.
    """
    rng = np.random.default_rng(11)
    T_far = look_at(np.array([3.4, -2.0, 1.2]), [0.0, 0.0, 0.4])
    kept, dropped = [], []
    for _ in range(60):
        base = panda(rng)
        uv, _ = _mono_observation(rng, base, T_far, noise_px=3.0, num_outliers=0)
        uv[rng.choice(7, 3, replace=False)] = np.nan
        free = fit_camera_to_base_mono(uv, base, CAMERA, max_relative_std=math.inf)
        if free is None:
            continue
        gated = fit_camera_to_base_mono(uv, base, CAMERA)
        add = add_distance(free.T_camera_base, T_far, base)
        if free.relative_translation_std <= MAX_RELATIVE_STD:
            assert gated is not None
            np.testing.assert_allclose(gated.T_camera_base, free.T_camera_base)
            kept.append(add)
        else:
            assert gated is None
            dropped.append(add)
    assert len(dropped) >= 3 and len(kept) >= 30, (len(dropped), len(kept))
    assert np.median(dropped) > 2 * np.median(kept), (np.median(dropped), np.median(kept))
