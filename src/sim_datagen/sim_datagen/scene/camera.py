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
"""Pinhole cameras, a rectified stereo rig and exact PyBullet matrices.

Frames
------
*Optical frame* (REP 103): +x right, +y down, +z forward, metres.  The
simulation world frame **is the left camera's optical frame**, so every pose
in this package is directly a pose in the left optical frame.

*OpenGL eye frame* (what PyBullet's view matrix maps to): +x right, +y up,
the camera looks along -z.  Therefore ``T_gl_optical = diag(1, -1, -1)``.

Pixels follow OpenCV: pixel ``(u, v)`` has its centre at integer
coordinates, ``u = fx * x / z + cx``, ``v = fy * y / z + cy``.

Projection matrix
-----------------
PyBullet's TinyRenderer samples pixel ``(i, j)`` at integer window
coordinates (not ``i + 0.5``) and flips rows (``row = H - 1 - j``).  With
``x_w = u`` and ``y_w = H - 1 - v`` the clip-space matrix (row-major, acting
on OpenGL eye coordinates) is::

    [ 2fx/W      0        1 - 2cx/W              0          ]
    [   0      2fy/H      2(cy + 1)/H - 1         0          ]
    [   0        0       -(f + n)/(f - n)   -2 f n/(f - n)    ]
    [   0        0            -1                  0          ]

with near ``n`` and far ``f`` in metres (defaults 0.02 m and 20 m; the
depth buffer is ``d = (1/n - 1/z) / (1/n - 1/f)`` so ``z = f n / (f - (f - n)
d)``).  The half-pixel terms were verified against ``cv2.findChessboardCorners``
on rendered boards (bias < 0.01 px; see test_render_labels.py).  PyBullet
takes matrices as 16 floats in column-major order (``M.T.ravel()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import numpy as np

#: optical frame -> OpenGL eye frame
T_GL_OPTICAL = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class PinholeCamera:
    """An ideal pinhole camera.

    Attributes:
        K: (3, 3) float64 intrinsic matrix, pixels.
        width, height: image size in pixels.
        T_world_cam: (4, 4) float64 pose of the camera optical frame in the
            world (= left optical) frame.
        near, far: clip planes in metres.
    """

    K: np.ndarray
    width: int
    height: int
    T_world_cam: np.ndarray = field(default_factory=lambda: np.eye(4))
    near: float = 0.02
    far: float = 20.0

    def view_matrix(self) -> np.ndarray:
        """(4, 4) world -> OpenGL eye matrix (row-major)."""
        return T_GL_OPTICAL @ np.linalg.inv(self.T_world_cam)

    def projection_matrix(self) -> np.ndarray:
        """(4, 4) OpenGL projection built exactly from ``K`` (see module doc)."""
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        w, h, n, f = self.width, self.height, self.near, self.far
        P = np.zeros((4, 4))
        P[0, 0] = 2.0 * fx / w
        P[0, 1] = -2.0 * self.K[0, 1] / w
        P[0, 2] = 1.0 - 2.0 * cx / w
        P[1, 1] = 2.0 * fy / h
        P[1, 2] = 2.0 * (cy + 1.0) / h - 1.0
        P[2, 2] = -(f + n) / (f - n)
        P[2, 3] = -2.0 * f * n / (f - n)
        P[3, 2] = -1.0
        return P

    def pybullet_matrices(self):
        """``(viewMatrix, projectionMatrix)`` as column-major 16-float lists."""
        return (self.view_matrix().T.ravel().tolist(),
                self.projection_matrix().T.ravel().tolist())

    def to_camera(self, pts_world: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) points in this camera's optical frame."""
        T = np.linalg.inv(self.T_world_cam)
        return pts_world @ T[:3, :3].T + T[:3, 3]

    def project(self, pts_world: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 2) float64 pixels (OpenCV convention).

        Points with ``z <= 0`` give NaN.
        """
        pc = self.to_camera(np.asarray(pts_world, dtype=np.float64))
        z = pc[:, 2:3]
        with np.errstate(divide='ignore', invalid='ignore'):
            uv = (pc @ self.K.T)[:, :2] / z
        uv[(z[:, 0] <= 0)] = np.nan
        return uv

    def project_gl(self, pts_world: np.ndarray) -> np.ndarray:
        """Project through the view/projection matrices as the rasterizer does.

        Independent of :meth:`project` (used by the tests): clip -> NDC ->
        TinyRenderer window coordinates -> image pixels.  Returns (N, 2).
        """
        ph = np.c_[np.asarray(pts_world, dtype=np.float64), np.ones(len(pts_world))]
        clip = ph @ (self.projection_matrix() @ self.view_matrix()).T
        ndc = clip[:, :3] / clip[:, 3:4]
        x_w = (ndc[:, 0] + 1.0) * 0.5 * self.width
        y_w = (ndc[:, 1] + 1.0) * 0.5 * self.height
        return np.c_[x_w, self.height - 1.0 - y_w]

    def linear_depth(self, zbuf: np.ndarray) -> np.ndarray:
        """Convert a PyBullet depth buffer (H, W) in [0, 1] to optical z in metres."""
        n, f = self.near, self.far
        return f * n / (f - (f - n) * zbuf)


@dataclass
class StereoRig:
    """Rectified stereo rig.

    Identical ``K``, right camera at ``+baseline`` along the left optical
    frame's +x axis, no rotation between the cameras.
    """

    K: np.ndarray
    width: int
    height: int
    baseline: float
    near: float = 0.02
    far: float = 20.0

    @property
    def left(self) -> PinholeCamera:
        """Left camera (at the world origin)."""
        return PinholeCamera(self.K, self.width, self.height, np.eye(4), self.near, self.far)

    @property
    def right(self) -> PinholeCamera:
        """Right camera, ``T_world_right = translation(baseline, 0, 0)``."""
        T = np.eye(4)
        T[0, 3] = self.baseline
        return PinholeCamera(self.K, self.width, self.height, T, self.near, self.far)

    def camera_infos(self, left_frame: str, right_frame: str, distortion=None
                     ) -> Dict[str, dict]:
        """ROS ``sensor_msgs/CameraInfo``-like dicts for both views.

        ``P_right[0, 3] = -fx * baseline``; ``R = I``; ``D`` plumb_bob
        (5 zeros unless ``distortion`` is given).
        """
        D = [0.0] * 5 if distortion is None else [float(x) for x in distortion]
        D = (D + [0.0] * 5)[:max(5, len(D))]  # plumb_bob: k1, k2, p1, p2, k3
        out = {}
        for name, frame, tx in (('left', left_frame, 0.0),
                                ('right', right_frame, -self.K[0, 0] * self.baseline)):
            P = np.zeros((3, 4))
            P[:, :3] = self.K
            P[0, 3] = tx
            out[name] = {'frame_id': frame, 'width': int(self.width),
                         'height': int(self.height), 'distortion_model': 'plumb_bob',
                         'D': D, 'K': self.K.ravel().tolist(),
                         'R': np.eye(3).ravel().tolist(), 'P': P.ravel().tolist()}
        return out


def rot_x(a: float) -> np.ndarray:
    """(3, 3) rotation about x by ``a`` radians."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    """(3, 3) rotation about y by ``a`` radians."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a: float) -> np.ndarray:
    """(3, 3) rotation about z by ``a`` radians."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
