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
"""Lens distortion and stereo rectification of pixel coordinates.

The one implementation of the ROS camera model's distortion (``plumb_bob``,
``rational_polynomial``, ``equidistant``), as in ROS ``image_geometry`` and
OpenCV: the perception pipeline uses it to rectify detected keypoints, and
the simulator uses it to distort its renders and labels, so that labels and
inference cannot disagree.  Frames and pixel conventions: see
:mod:`.camera`.  No ROS import.
"""

from typing import Optional

import cv2
import numpy as np

from .arrays import as_points
from .camera import CameraModel


# Termination of OpenCV's iterative undistortion; its default is only 5
# iterations, which leaves errors of ~0.1 px for strong distortion.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)


def unrectify_points(camera: CameraModel, X_rect: np.ndarray) -> np.ndarray:
    """Project 3D points of the left rectified frame into this camera's RAW image.

    The inverse path of :func:`rectify_points` + triangulation: the point is
    moved into this camera's rectified frame (``X + M^-1 p4`` with
    ``P = [M | p4]``, zero for the left camera), rotated into its optical
    frame by ``R^T`` and projected with ``K`` and the distortion ``D``
    (``cv2.projectPoints``, or ``cv2.fisheye.projectPoints`` for
    'equidistant'), i.e. the camera model of ROS ``image_geometry``
    (``PinholeCameraModel.unrectifyPoint`` composed with ``project3dToPixel``).

    Args:
        camera: the camera whose raw image is wanted.
        X_rect: (N, 3) points in the left rectified frame (the frame of
            ``P``), metres; NaN rows allowed.

    Returns:
        (N, 2) float64 raw pixel coordinates; NaN for NaN input or points at
        or behind the camera.

    Raises:
        ValueError: if X_rect is not (N, 3).
    """
    X = as_points('X_rect', X_rect, 3)
    t = np.linalg.solve(camera.P[:, :3], camera.P[:, 3])
    x_cam = (X + t) @ camera.R  # rows: R^T @ (X + t)
    return _project_optical(camera, x_cam)


def _project_optical(camera: CameraModel, x_cam: np.ndarray) -> np.ndarray:
    """Project (N, 3) points of the camera's optical frame to (N, 2) raw pixels (K, D).

    NaN rows for non-finite points and points at or behind the camera
    (z <= 1e-9 m).
    """
    out = np.full((x_cam.shape[0], 2), np.nan)
    ok = np.all(np.isfinite(x_cam), axis=1) & (x_cam[:, 2] > 1e-9)
    if not np.any(ok):
        return out
    pts = x_cam[ok].reshape(-1, 1, 3)
    zero = np.zeros(3)
    if camera.distortion_model == 'equidistant' and camera.has_distortion:
        uv, _ = cv2.fisheye.projectPoints(pts, zero, zero, camera.K, camera.D)
    else:  # all-zero D is a pinhole in every model, as in rectification and image_geometry
        uv, _ = cv2.projectPoints(pts, zero, zero, camera.K,
                                  camera.D if camera.has_distortion else None)
    out[ok] = uv.reshape(-1, 2)
    return out


def rectify_points(camera: CameraModel, uv: np.ndarray) -> np.ndarray:
    """Map raw (distorted) pixels to pixels of the rectified image defined by P.

    For each point: normalize with K, undistort with D (iteratively, as
    ``cv2.undistortPoints`` / ``cv2.fisheye.undistortPoints`` for
    'equidistant'), rotate by R, project with ``P[:, :3]``.  Without
    distortion this is the homography ``P[:, :3] @ R @ K^-1`` (identity for a
    rectified camera whose K equals ``P[:, :3]``).

    Args:
        camera: the camera the pixels come from.
        uv: (N, 2) raw pixel coordinates (u right, v down); NaN rows allowed.

    Returns:
        (N, 2) float64 rectified pixel coordinates; NaN where the input is NaN.

    Raises:
        ValueError: if uv is not (N, 2).
    """
    return _undistort(camera, as_points('uv', uv), camera.R, camera.P)


def _undistort(camera: CameraModel, uv: np.ndarray, R: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Map (N, 2) raw pixels to the pinhole image of rotation R (3, 3) and projection P (3, x).

    ``P[:, :3]`` is used (a (3, 3) K or a (3, 4) P); NaN rows stay NaN.
    """
    out = np.full(uv.shape, np.nan)
    ok = np.all(np.isfinite(uv), axis=1)
    if not np.any(ok):
        return out
    pts = uv[ok]
    if not camera.has_distortion:
        H = P[:, :3] @ R @ np.linalg.inv(camera.K)
        H = H / H[2, 2]
        if np.allclose(H, np.eye(3), rtol=0.0, atol=1e-12):
            out[ok] = pts
            return out
        h = pts @ H[:, :2].T + H[:, 2]
        out[ok] = h[:, :2] / h[:, 2:3]
        return out
    src = pts.reshape(-1, 1, 2)
    if camera.distortion_model == 'equidistant':
        try:
            dst = cv2.fisheye.undistortPoints(src, camera.K, camera.D, R=R, P=P,
                                              criteria=_UNDISTORT_CRITERIA)
        except TypeError:  # OpenCV < 4.7 has no criteria argument
            dst = cv2.fisheye.undistortPoints(src, camera.K, camera.D, R=R, P=P)
    else:
        undistort = getattr(cv2, 'undistortPointsIter', None)  # OpenCV 4.x spelling
        if undistort is not None:
            dst = undistort(src, camera.K, camera.D, R, P, _UNDISTORT_CRITERIA)
        else:
            dst = cv2.undistortPoints(src, camera.K, camera.D, R=R, P=P,
                                      criteria=_UNDISTORT_CRITERIA)
    out[ok] = dst.reshape(-1, 2)
    return out


def distort_pixels(camera: CameraModel, uv_pinhole: np.ndarray,
                   K_pinhole: Optional[np.ndarray] = None) -> np.ndarray:
    """Map pixels of an ideal pinhole image to the camera's raw (distorted) image.

    The forward lens model of ROS ``sensor_msgs/CameraInfo`` (OpenCV's
    ``projectPoints`` with ``K`` and ``D``; ``cv2.fisheye.projectPoints`` for
    'equidistant'): a pinhole pixel is turned into a viewing ray of the
    camera's optical frame with ``K_pinhole^-1``, then projected with ``K``
    and ``D``.  ``R`` and ``P`` are not used (no rectification).  The
    simulator uses this to place labels on distorted renders.

    Args:
        camera: the camera whose raw image is wanted.
        uv_pinhole: (N, 2) pixels of the undistorted image with intrinsics
            ``K_pinhole`` (u right, v down); NaN rows allowed.
        K_pinhole: (3, 3) intrinsics of that image; default ``camera.K``.

    Returns:
        (N, 2) float64 raw pixel coordinates; NaN where the input is NaN.

    Raises:
        ValueError: if uv_pinhole is not (N, 2) or K_pinhole is not (3, 3).
    """
    uv = as_points('uv_pinhole', uv_pinhole)
    K = camera.K if K_pinhole is None else np.asarray(K_pinhole, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f'K_pinhole must be (3, 3), got {K.shape}')
    rays = np.c_[uv, np.ones(len(uv))] @ np.linalg.inv(K).T  # rows: K^-1 @ [u, v, 1]
    return _project_optical(camera, rays / rays[:, 2:3])


def undistort_pixels(camera: CameraModel, uv_raw: np.ndarray,
                     K_pinhole: Optional[np.ndarray] = None) -> np.ndarray:
    """Map raw (distorted) pixels to pixels of an ideal pinhole image (inverse of distortion).

    The inverse of :func:`distort_pixels`: normalize with ``K``, undistort
    with ``D`` iteratively (``cv2.undistortPointsIter``, or
    ``cv2.fisheye.undistortPoints`` for 'equidistant'), project with
    ``K_pinhole``.  No rectification rotation (``R`` is not used; see
    :func:`rectify_points` for the rectified image).

    Args:
        camera: the camera the pixels come from.
        uv_raw: (N, 2) raw pixel coordinates; NaN rows allowed.
        K_pinhole: (3, 3) intrinsics of the pinhole image; default ``camera.K``.

    Returns:
        (N, 2) float64 pinhole pixel coordinates; NaN where the input is NaN.

    Raises:
        ValueError: if uv_raw is not (N, 2) or K_pinhole is not (3, 3).
    """
    K = camera.K if K_pinhole is None else np.asarray(K_pinhole, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f'K_pinhole must be (3, 3), got {K.shape}')
    return _undistort(camera, as_points('uv_raw', uv_raw), np.eye(3), K)
