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
"""First-order covariance of an estimated rigid transform, and its propagation.

Convention (that of ``geometry_msgs/PoseWithCovariance``): a 6x6 covariance
over ``(x, y, z, rotation about X, rotation about Y, rotation about Z)`` --
translation in metres, rotation in radians about the *fixed* axes of the
parent frame: a perturbed transform ``T = (R, t)`` is
``(Exp(phi) @ R, t + dt)`` for ``delta = (dt, phi)``.  Used by the
camera-to-robot fits (:mod:`.robot_calibration`,
:mod:`.two_view_calibration`, :mod:`.multi_frame_calibration`).  No ROS
import.
"""

import cv2
import numpy as np

#: ``J^T J`` of a fit whose smallest eigenvalue is at most this fraction of its
#: largest is singular (:func:`residual_covariance`).  Exactly collinear
#: keypoints give about 1e-20 (finite-difference round-off); keypoints 1 mm
#: off a line over a metre about 1e-6, whose covariance is honest and is
#: judged by :func:`~.robot_calibration.well_determined`.
SINGULAR_RCOND = 1e-12


def _perturbed(T: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``(Exp(phi) R, t + dt)`` for ``delta = (dt, phi)`` (module docstring)."""
    perturbed = np.eye(4)
    perturbed[:3, :3] = cv2.Rodrigues(np.asarray(delta[3:], dtype=np.float64))[0] @ T[:3, :3]
    perturbed[:3, 3] = T[:3, 3] + delta[:3]
    return perturbed


def residual_covariance(residual_fn, T: np.ndarray, num_params: int = 6) -> np.ndarray:
    """First-order covariance ``s^2 (J^T J)^-1`` of a least-squares estimate T.

    Hartley & Zisserman, 2nd ed., A5.2: J is the central-difference Jacobian
    of the residuals with respect to the perturbation ``(dt, phi)`` of T
    (module docstring), ``s^2 = r.r / (m - 6)`` the residual variance.

    Args:
        residual_fn: maps a (4, 4) transform to the (m,) residual vector.
        T: (4, 4) the estimate (a minimum of the residuals' squared sum).
        num_params: 6.

    Returns:
        (6, 6) float64 covariance, symmetric positive semi-definite; all NaN
        when m <= 6 or J^T J is singular (its smallest eigenvalue at most
        :data:`SINGULAR_RCOND` times its largest: e.g. collinear keypoints,
        about whose line the rotation is free).
    """
    r0 = residual_fn(T)
    dof = r0.size - num_params
    if dof <= 0:
        return np.full((6, 6), np.nan)
    J = np.empty((r0.size, num_params))
    for k in range(num_params):
        step = np.zeros(num_params)
        step[k] = 1e-6
        J[:, k] = (residual_fn(_perturbed(T, step)) - residual_fn(_perturbed(T, -step))) / 2e-6
    if not np.isfinite(J).all():
        return np.full((6, 6), np.nan)
    # the inverse from the eigen-decomposition: np.linalg.inv of a numerically
    # singular J^T J returns huge entries of either sign instead of failing
    eigenvalues, eigenvectors = np.linalg.eigh(J.T @ J)
    if not eigenvalues[-1] > 0 or eigenvalues[0] <= SINGULAR_RCOND * eigenvalues[-1]:
        return np.full((6, 6), np.nan)
    info_inv = (eigenvectors / eigenvalues) @ eigenvectors.T
    return float(r0 @ r0) / dof * info_inv


def inverse_pose_covariance(T: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Covariance of ``T^-1`` from that of T (both in the module docstring's convention).

    With ``T = (R, t)`` perturbed to ``(Exp(phi) R, t + dt)``, the inverse
    ``(R^T, -R^T t)`` moves by ``dp = -R^T dt - R^T [t]x phi`` and
    ``phi' = -R^T phi`` to first order, so ``cov' = A cov A^T`` with
    ``A = [[-R^T, -R^T [t]x], [0, -R^T]]``.  Used to publish the camera's
    pose in the base frame (``geometry_msgs/PoseWithCovarianceStamped``).

    Args:
        T: (4, 4) transform (e.g. ``T_camera_base``).
        covariance: (6, 6) covariance of T.

    Returns:
        (6, 6) float64 covariance of ``T^-1``.
    """
    R, t = np.asarray(T)[:3, :3], np.asarray(T)[:3, 3]
    t_cross = np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])
    A = np.zeros((6, 6))
    A[:3, :3], A[:3, 3:], A[3:, 3:] = -R.T, -R.T @ t_cross, -R.T
    return A @ np.asarray(covariance, dtype=np.float64) @ A.T


def left_composed_pose_covariance(F: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Covariance of ``F @ T`` for an exact transform F, from that of T (module convention).

    ``F @ (Exp(phi) R, t + dt) = (Exp(R_F phi) R_F R, R_F t + t_F + R_F dt)``,
    so ``cov' = B cov B^T`` with ``B = diag(R_F, R_F)``.  Used to publish the
    camera's pose in a parent frame fixed to the URDF's root link.

    Args:
        F: (4, 4) exact transform (e.g. ``T_world_base`` of a fixed URDF link).
        covariance: (6, 6) covariance of T.

    Returns:
        (6, 6) float64 covariance of ``F @ T``.
    """
    B = np.zeros((6, 6))
    B[:3, :3] = B[3:, 3:] = np.asarray(F, dtype=np.float64)[:3, :3]
    return B @ np.asarray(covariance, dtype=np.float64) @ B.T
