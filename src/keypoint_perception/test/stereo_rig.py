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
"""A horizontal stereo rig, the checkerboard seen by it and belief blobs (test helpers)."""

import numpy as np

from keypoint_perception.core.camera import CameraModel
from keypoint_perception.core.distortion import unrectify_points
from keypoint_perception.core.objects import load_object_class

#: focal length and principal point in pixels, baseline in metres
FX, CX, CY, B = 500.0, 320.0, 240.0, 0.1


def rig():
    """Return (left, right) rectified CameraModels, 640x480, baseline B along +x."""
    K = np.array([[FX, 0, CX], [0, FX, CY], [0, 0, 1]])
    P_left = np.hstack([K, np.zeros((3, 1))])
    P_right = P_left.copy()
    P_right[0, 3] = -FX * B
    return tuple(CameraModel(width=640, height=480, K=K, D=np.zeros(5),
                             distortion_model='plumb_bob', R=np.eye(3), P=P, frame_id=frame)
                 for P, frame in ((P_left, 'l'), (P_right, 'r')))


def project(P, X):
    """Return (N, 2) pixels of (N, 3) points X under the (3, 4) projection P."""
    x = X @ P[:, :3].T + P[:, 3]
    return x[:, :2] / x[:, 2:]


def board_pose():
    """Return (R, t) of the checkerboard in the left optical frame (20 deg about y, 0.6 m)."""
    angle = np.deg2rad(20)
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                  [-np.sin(angle), 0, np.cos(angle)]])
    return R, np.array([0.02, -0.01, 0.6])


def front_view_board():
    """Checkerboard class, rig and its 4 corners seen from the printed side (rectified px)."""
    left, right = rig()
    board = load_object_class('checkerboard')
    R, t = board_pose()
    X = board.template @ R.T + t
    return board, left, right, project(left.P, X), project(right.P, X)


def blob(shape, centre, peak, sigma=1.0):
    """(h, w) Gaussian belief blob at (u, v) cells."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return peak * np.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * sigma ** 2))


def blobs_at(camera, X, shift_px=(0.0, 0.0), sigma=1.0, peak=0.5, raw=False):
    """(J, 48, 64) belief blobs of 10 px cells at the projections of (J, 3) points."""
    pixels = unrectify_points(camera, X) if raw else project(camera.P, X)
    cells = (pixels + np.asarray(shift_px) + 0.5) * 0.1 - 0.5
    return np.stack([blob((48, 64), c, peak, sigma) for c in cells])
