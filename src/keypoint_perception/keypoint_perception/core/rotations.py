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
"""Rotation conversions: the one place for quaternions in this workspace.

Quaternions are ``(x, y, z, w)``, the field order of ROS
``geometry_msgs/Quaternion`` (and of PyBullet), Hamilton convention, unit
norm; a rotation matrix ``R`` (3, 3) maps vectors of the rotated frame into
the reference frame (``v_ref = R @ v_rot``).  No ROS import.
"""

import math
from typing import Sequence

import numpy as np


def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """Convert a rotation matrix (3, 3) to a unit quaternion (x, y, z, w), ROS order.

    Shepperd's method (S. W. Shepperd, "Quaternion from rotation matrix",
    Journal of Guidance and Control 1(3), 1978: numerically stable branch on
    the largest of the trace and the diagonal terms); the result has w >= 0.

    Args:
        R: (3, 3) rotation matrix (orthonormal, det +1).

    Returns:
        (4,) float64 unit quaternion ``(x, y, z, w)`` with ``w >= 0``.

    Raises:
        ValueError: if R is not a finite (3, 3) array.
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.all(np.isfinite(R)):
        raise ValueError('R must be a finite (3, 3) matrix')
    tr = np.trace(R)
    diag = np.diag(R)
    k = int(np.argmax(diag))
    if tr >= diag[k]:
        w = 0.5 * math.sqrt(max(1.0 + tr, 0.0))
        f = 0.25 / w
        q = [(R[2, 1] - R[1, 2]) * f, (R[0, 2] - R[2, 0]) * f, (R[1, 0] - R[0, 1]) * f, w]
    else:
        i, j, m = k, (k + 1) % 3, (k + 2) % 3
        largest = 0.5 * math.sqrt(max(1.0 + R[i, i] - R[j, j] - R[m, m], 0.0))
        f = 0.25 / largest
        q = [0.0, 0.0, 0.0, (R[m, j] - R[j, m]) * f]
        q[i] = largest
        q[j] = (R[j, i] + R[i, j]) * f
        q[m] = (R[m, i] + R[i, m]) * f
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def matrix_from_quaternion(q: Sequence[float]) -> np.ndarray:
    """Convert a quaternion (x, y, z, w), ROS order, to a (3, 3) rotation matrix.

    The quaternion is normalized first, so any non-zero scale is accepted;
    ``q`` and ``-q`` give the same matrix (Shoemake 1985, "Animating rotation
    with quaternion curves", the standard unit-quaternion rotation matrix).

    Args:
        q: 4 numbers ``(x, y, z, w)``, the field order of
            ``geometry_msgs/Quaternion`` and of PyBullet.

    Returns:
        (3, 3) float64 rotation matrix.

    Raises:
        ValueError: if q does not have 4 finite values or is all zero.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,) or not np.all(np.isfinite(q)) or not np.any(q):
        raise ValueError(f'q must be 4 finite values, not all zero, got {q.tolist()}')
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrices_from_rotation_vectors(rotation_vectors: np.ndarray) -> np.ndarray:
    """Rotation matrices of axis-angle vectors, vectorized (Rodrigues' formula).

    ``R = cos(theta) I + (1 - cos(theta)) k k^T + sin(theta) [k]_x`` with
    ``theta = |r|``, ``k = r / theta`` (the identity for ``theta`` below
    machine epsilon), the formula and order of operations of OpenCV's
    ``cv2.Rodrigues`` (which it equals to about 1e-16).

    Args:
        rotation_vectors: (M, 3) float rotation vectors, radians.

    Returns:
        (M, 3, 3) float64 rotation matrices.
    """
    vectors = np.asarray(rotation_vectors, dtype=np.float64).reshape(-1, 3)
    theta = np.sqrt(np.sum(vectors * vectors, axis=1))
    small = theta < np.finfo(np.float64).eps
    axis = vectors / np.where(small, 1.0, theta)[:, None]
    cos, sin = np.cos(theta), np.sin(theta)
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = np.zeros_like(x)
    cross = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=1).reshape(-1, 3, 3)
    matrices = (cos[:, None, None] * np.eye(3) + (1.0 - cos)[:, None, None]
                * (axis[:, :, None] * axis[:, None, :]) + sin[:, None, None] * cross)
    matrices[small] = np.eye(3)
    return matrices
