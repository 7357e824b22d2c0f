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
"""Random calibrated rigs and other helpers for the geometry tests (not a test module)."""

import math
import os
from types import SimpleNamespace

import cv2
from keypoint_perception.core.camera import CameraModel
import numpy as np

PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(PKG_DIR))
DATA_DIR = os.path.join(REPO_ROOT, 'data', 'opencv_stereo')
CONFIG_DIR = os.path.join(REPO_ROOT, 'config', 'camera_info')
CHECKERBOARD_YAML = os.path.join(PKG_DIR, 'keypoint_perception', 'objects', 'checkerboard.yaml')
SIZE = (640, 480)


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
