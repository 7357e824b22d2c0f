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
"""Camera-to-robot calibration from both views of a stereo camera: two-view PnP.

The rigid fit of triangulated keypoints
(:func:`~.robot_calibration.fit_camera_to_base_stereo`) weighs every
coordinate alike, but a stereo point's depth error grows with the square of
the distance (``sigma_Z = Z^2 sigma_d / (f B)``); here ``T_camera_base`` is
the pose that minimizes the reprojection error in both rectified views.
Frames, the ROS stereo convention (``X_rect = R x_optical + c`` in the left
rectified frame, ``c`` the centre of ``P``) and the covariance convention:
see :mod:`.robot_calibration`.  No ROS import.
"""

import math
from typing import Optional

import numpy as np

from .arrays import as_points
from .camera import camera_center, CameraModel, project
from .distortion import rectify_points
from .pose_covariance import residual_covariance
from .rigid import refine_pose_reprojection
from .robot_calibration import (CameraToBase, fit_camera_to_base_mono,
                                fit_camera_to_base_stereo, make_transform, MAX_RELATIVE_STD,
                                MIN_INLIER_SPREAD, msac_cost, transform_points, well_determined,
                                well_spread)
from .triangulation import triangulate_stereo


def transform_between_views(left: CameraModel, right: CameraModel) -> np.ndarray:
    """Return the (4, 4) transform right optical frame -> left optical frame of a stereo rig.

    ROS stereo convention (REP 104, ``sensor_msgs/CameraInfo``): both
    rectified frames are the left rectified frame, shifted by each camera's
    centre ``c = -P[:, :3]^-1 P[:, 3]`` (:func:`~.camera.camera_center`),
    ``X_rect = R x_optical + c``; so ``x_left = R_l^T (R_r x_right + c_r - c_l)``.
    """
    c_left, c_right = camera_center(left.P), camera_center(right.P)
    return make_transform(left.R.T @ right.R, left.R.T @ (c_right - c_left))


def stereo_reprojection_errors(T: np.ndarray, points_base: np.ndarray, left: CameraModel,
                               right: CameraModel, uv_left_rect: np.ndarray,
                               uv_right_rect: np.ndarray) -> np.ndarray:
    """Per keypoint, the RMS reprojection error of its two views, rectified pixels.

    Args:
        T: (4, 4) ``T_camera_base`` (base -> left optical frame).
        points_base: (J, 3) keypoints in the base frame, metres.
        left, right: the stereo cameras (``P``, the left ``R``).
        uv_left_rect, uv_right_rect: (J, 2) observed rectified pixels, NaN
            rows = not observed in that view.

    Returns:
        (J,) float64: the RMS over the views that observe the keypoint (NaN
        where neither does, inf where the point is behind the left camera).
    """
    residuals = two_view_residuals(T, points_base, left, right, uv_left_rect, uv_right_rect)
    errors = np.linalg.norm(residuals.reshape(2, -1, 2), axis=2)  # (2, J), NaN: not observed
    seen = ~np.isnan(errors)
    with np.errstate(invalid='ignore'):
        rms = np.sqrt(np.sum(np.where(seen, errors, 0.0) ** 2, axis=0) / seen.sum(axis=0))
    in_front = transform_points(T, points_base)[:, 2] > 0
    return np.where(in_front, rms, np.where(np.isnan(rms), np.nan, np.inf))


def fit_camera_to_base_stereo_views(uv_left: np.ndarray, uv_right: np.ndarray,
                                    points_base: np.ndarray, left: CameraModel,
                                    right: CameraModel, rectified: bool = False,
                                    inlier_threshold_px: float = 8.0, min_inliers: int = 3,
                                    inlier_threshold_m: float = 0.1,
                                    max_relative_std: float = MAX_RELATIVE_STD
                                    ) -> Optional[CameraToBase]:
    """Estimate ``T_camera_base`` from both views' 2D keypoints: two-view PnP.

    The rigid fit of triangulated keypoints (:func:`fit_camera_to_base_stereo`)
    weighs every coordinate alike, but a stereo point's depth error grows
    with the square of the distance (``sigma_Z = Z^2 sigma_d / (f B)``):
    with robots 1-6 m away and baselines of 4-15 cm it is tens of
    centimetres for a pixel of disparity error, far more than the lateral
    error.  Here the pose minimizes the reprojection error in both views
    instead, as a bundle adjustment of one rigid body would (Hartley &
    Zisserman, 2nd ed., 18.1):

    1. hypotheses: PnP + RANSAC on each view alone
       (:func:`fit_camera_to_base_mono`, the right view's estimate moved
       into the left optical frame with :func:`transform_between_views`) and
       the rigid fit of the triangulated keypoints (3D inlier threshold
       ``inlier_threshold_m``);
    2. for each, a Levenberg-Marquardt refinement of the pose on its inliers
       observed in both views (:func:`~.rigid.refine_pose_reprojection`),
       then new inliers (RMS reprojection error of the two views below
       ``inlier_threshold_px``, :func:`stereo_reprojection_errors`) and
       again, until they no longer change (or would fall below
       ``min_inliers``: the last refinement stands);
    3. the refined hypothesis with the lowest MSAC cost wins.

    Args:
        uv_left, uv_right: (J, 2) detected keypoints of each view, pixels
            (raw images unless ``rectified``); NaN rows = not detected.
        points_base: (J, 3) kinematic keypoints in the base frame, metres.
        left, right: the stereo cameras; ``right.P`` projects from the left
            rectified frame (ROS stereo convention).
        rectified: the pixels are of the rectified images.
        inlier_threshold_px: largest reprojection error of an inlier,
            rectified pixels.
        min_inliers: fewest inliers observed in both views (>= 3).
        inlier_threshold_m: 3D inlier threshold of the triangulated
            hypothesis, metres.
        max_relative_std: largest relative translation uncertainty of the
            result (:func:`~.robot_calibration.well_determined`; the
            hypotheses are not gated).

    Returns:
        :class:`CameraToBase` (mode 'stereo_views', residuals = the RMS
        reprojection error of the two views in rectified pixels, covariance
        from the reprojection residuals of both views) in the left optical
        frame, or None without ``min_inliers`` consistent keypoints or with
        a translation too uncertain.

    Raises:
        ValueError: on shape mismatch or ``min_inliers < 3``.
    """
    base = as_points('points_base', points_base, 3)
    uv_left, uv_right = as_points('uv_left', uv_left), as_points('uv_right', uv_right)
    if not len(uv_left) == len(uv_right) == len(base):
        raise ValueError(f'{len(uv_left)} and {len(uv_right)} pixels, {len(base)} base points')
    if min_inliers < 3:
        raise ValueError(f'min_inliers must be >= 3, got {min_inliers}')
    rect = [uv.copy() if rectified else rectify_points(camera, uv)
            for uv, camera in ((uv_left, left), (uv_right, right))]
    known = np.all(np.isfinite(base), axis=1)
    both = known & np.all(np.isfinite(rect[0]), axis=1) & np.all(np.isfinite(rect[1]), axis=1)
    if both.sum() < min_inliers:
        return None

    hypotheses = []  # (T, its own inliers)
    for uv, camera, T_left_view in ((uv_left, left, np.eye(4)),
                                    (uv_right, right, transform_between_views(left, right))):
        mono = fit_camera_to_base_mono(uv, base, camera, rectified,
                                       inlier_threshold_px=inlier_threshold_px,
                                       max_relative_std=math.inf)
        if mono is not None:
            hypotheses.append((T_left_view @ mono.T_camera_base, mono.inliers))
    points = triangulate_stereo(left, right, rect[0], rect[1], points_are_rectified=True,
                                max_reprojection_error_px=np.inf)
    rigid = fit_camera_to_base_stereo(np.where(points.valid[:, None], points.xyz, np.nan),
                                      base, inlier_threshold_m=inlier_threshold_m,
                                      max_relative_std=math.inf)
    if rigid is not None:
        hypotheses.append((rigid.T_camera_base, rigid.inliers))

    def errors_of(T):
        return stereo_reprojection_errors(T, base, left, right, rect[0], rect[1])

    best, best_cost = None, np.inf
    for T, inliers in hypotheses:
        inliers = inliers & both
        for _ in range(10):
            if np.count_nonzero(inliers) < min_inliers:
                break
            R, t, _ = refine_pose_reprojection(base[inliers], T[:3, :3], T[:3, 3], left, right,
                                               rect[0][inliers], rect[1][inliers])
            T = make_transform(R, t)
            new_inliers = both & (np.nan_to_num(errors_of(T), nan=np.inf) < inlier_threshold_px)
            if np.count_nonzero(new_inliers) < min_inliers or np.array_equal(new_inliers,
                                                                             inliers):
                break
            inliers = new_inliers
        if (np.count_nonzero(inliers) < min_inliers
                or not well_spread(base[inliers], MIN_INLIER_SPREAD)):
            continue
        errors = errors_of(T)
        cost = msac_cost(errors[~np.isnan(errors)], inlier_threshold_px)
        if cost < best_cost:
            best, best_cost = (T, inliers, errors), cost
    if best is None:
        return None
    T, inliers, errors = best

    def residuals(T_):
        return two_view_residuals(T_, base[inliers], left, right, rect[0][inliers],
                                  rect[1][inliers])

    return well_determined(
        CameraToBase(T_camera_base=T, inliers=inliers, residuals=errors,
                     rms=float(np.sqrt(np.mean(residuals(T) ** 2) * 2)),
                     covariance=residual_covariance(residuals, T), mode='stereo_views'),
        max_relative_std)


def two_view_residuals(T: np.ndarray, points_base: np.ndarray, left: CameraModel,
                       right: CameraModel, uv_left_rect: np.ndarray,
                       uv_right_rect: np.ndarray) -> np.ndarray:
    """Return the (4 N,) reprojection residuals of N base points in both rectified views.

    Order: the left view's (N, 2) residuals (projected - observed, pixels),
    then the right view's, each flattened row by row.  ``T``: (4, 4)
    ``T_camera_base``, base -> left optical frame.
    """
    X_rect = transform_points(T, points_base) @ left.R.T + camera_center(left.P)
    return np.concatenate([(project(camera.P, X_rect) - uv).ravel()
                           for camera, uv in ((left, uv_left_rect), (right, uv_right_rect))])
