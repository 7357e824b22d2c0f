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
"""Tests of keypoint_perception.core.camera: CameraModel, its CameraInfo/YAML I/O, projection."""

import os
from types import SimpleNamespace

from geometry_helpers import CONFIG_DIR, fake_camera_info, points_in_view, project_raw, random_rig
from keypoint_perception.core.camera import (CalibrationError, CameraModel, project,
                                             reprojection_error, stereo_baseline)
from keypoint_perception.core.triangulation import triangulate_stereo
import numpy as np
import pytest
import yaml


def test_reprojection_error_known_values():
    """Hand-computed reprojection errors."""
    P = np.hstack([np.diag([500.0, 500.0, 1.0]), np.zeros((3, 1))])
    P[0, 2], P[1, 2] = 320.0, 240.0
    X = np.array([[0.0, 0.0, 2.0], [0.2, -0.1, 1.0]])
    uv = np.array([[323.0, 244.0], [420.0, 190.0]])
    np.testing.assert_allclose(reprojection_error(P, X, uv), [5.0, 0.0], atol=1e-12)


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
    ({'distortion_model': 'rational_polynomial', 'd': [0.1] * 9}, 'needs 8 or 12 or 14'),
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


def test_rational_polynomial_with_opencvs_14_coefficients():
    """depthai-ros sends 14 (8 rational + thin prism + tilt, zeros here): as the standard 8."""
    from keypoint_perception.core.distortion import rectify_points, unrectify_points
    rng = np.random.default_rng(12)
    left, _, _, _ = random_rig(rng, 'rational_polynomial')
    wide = CameraModel.from_camera_info(fake_camera_info(
        left, d=list(left.D) + [0.0] * 6))
    assert wide.D.shape == (14,)
    X = np.array([[0.1, -0.05, 1.0], [-0.3, 0.2, 2.5]])
    np.testing.assert_allclose(unrectify_points(wide, X), unrectify_points(left, X), atol=1e-9)
    raw = unrectify_points(wide, X)
    np.testing.assert_allclose(rectify_points(wide, raw), rectify_points(left, raw), atol=1e-6)
