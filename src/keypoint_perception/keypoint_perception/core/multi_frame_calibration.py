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
"""Camera-to-robot calibration of a static camera over many frames, with its uncertainty.

Each frame gives an estimate of ``T_camera_base``
(:mod:`.robot_calibration`); the robot moves between frames, the camera does
not.  :func:`combine_frames` rejects the frames whose estimate is far from
the robust centre of all (a wrong detection, a joint state of another
time), fits one transform to the inlier keypoints of the remaining frames
together (Umeyama in stereo, PnP + Levenberg-Marquardt in mono, the
reprojection error of both views in stereo_views), and
reports the scatter of the single-frame estimates about it: the standard
deviation of one frame (what to expect from a single image) and, divided
by the number of frames, the covariance of the combined estimate.  Frames,
units and the covariance convention: see :mod:`.robot_calibration`.  No ROS
import.
"""

from dataclasses import dataclass
import math
from typing import Optional, Sequence

import cv2
import numpy as np

from .arrays import as_points
from .camera import CameraModel
from .distortion import rectify_points
from .pose_covariance import residual_covariance
from .rigid import fit_rigid_transform, refine_pose_reprojection
from .robot_calibration import (CameraToBase, make_transform, pinhole_observations,
                                project_pinhole, solve_pnp, transform_points)
from .two_view_calibration import stereo_reprojection_errors, two_view_residuals


@dataclass(frozen=True, eq=False)
class MultiFrameCalibration:
    """``T_camera_base`` of a static camera from many frames (:func:`combine_frames`).

    Attributes:
        T_camera_base: (4, 4) float64 joint fit over the kept frames.
        frames_used: (F,) bool, frames with an estimate that agreed with the
            others (False: no estimate, or rejected as an outlier).
        covariance: (6, 6) covariance of ``T_camera_base`` (module docstring
            convention): the scatter of the kept frames' estimates around it
            divided by their number (standard error of a mean) with 2 frames
            or more, the single frame's residual covariance otherwise.
        translation_std_m: (3,) standard deviation of one frame's translation
            about the result (x, y, z of the camera frame), metres; NaN with
            fewer than 2 frames.
        rotation_std_rad: (3,) the same for the rotation (about x, y, z),
            radians.
        rms: root-mean-square residual of the joint fit (metres or pixels).
        num_correspondences: keypoints used by the joint fit.
        mode: 'stereo', 'stereo_views' or 'mono' (that of the estimates).
    """

    T_camera_base: np.ndarray
    frames_used: np.ndarray
    covariance: np.ndarray
    translation_std_m: np.ndarray
    rotation_std_rad: np.ndarray
    rms: float
    num_correspondences: int
    mode: str


def rotation_mean(rotations: Sequence[np.ndarray]) -> np.ndarray:
    """Chordal L2 mean of rotations: the mean matrix projected onto SO(3) by SVD.

    Hartley, Trumpf, Dai & Li, "Rotation Averaging", IJCV 103, 2013, sec. 5.3.

    Args:
        rotations: (3, 3) rotation matrices (at least one).

    Returns:
        (3, 3) float64 rotation.
    """
    U, _, Vt = np.linalg.svd(np.mean(np.asarray(rotations, dtype=np.float64), axis=0))
    S = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ S @ Vt


def pose_deviation(T: np.ndarray, T_reference: np.ndarray) -> np.ndarray:
    """Return the (6,) deviation ``(dt, phi)`` of T from a reference (module docstring).

    ``dt = t - t_ref`` (metres), ``phi = log(R R_ref^T)`` (rotation vector,
    radians, about the fixed axes of the parent frame).
    """
    phi = cv2.Rodrigues(np.asarray(T)[:3, :3] @ np.asarray(T_reference)[:3, :3].T)[0].ravel()
    return np.concatenate([np.asarray(T)[:3, 3] - np.asarray(T_reference)[:3, 3], phi])


def _frame_gate(deviations: np.ndarray, sigmas: float, floor: float) -> float:
    """Largest accepted distance: ``sigmas`` times the median distance, at least ``floor``."""
    return max(sigmas * float(np.median(deviations)), floor)


def combine_frames(estimates: Sequence[Optional[CameraToBase]],
                   points_base: Sequence[np.ndarray], observations: Sequence[np.ndarray],
                   camera: Optional[CameraModel] = None, rectified: bool = False,
                   right_camera: Optional[CameraModel] = None, gate_factor: float = 3.0,
                   min_translation_gate_m: float = 0.005,
                   min_rotation_gate_rad: float = math.radians(0.5)
                   ) -> Optional[MultiFrameCalibration]:
    """Combine per-frame estimates of a static camera into one, with outlier frames rejected.

    1. Robust centre of the frames' estimates: chordal L2 mean of the
       rotations (:func:`rotation_mean`), median of the translations.
    2. A frame is kept when its translation is within ``max(gate_factor *
       median distance, min_translation_gate_m)`` of the centre and its
       rotation within ``max(gate_factor * median angle,
       min_rotation_gate_rad)``; the centre is recomputed from the kept
       frames (mean rotation, mean translation) until the set is stable.
    3. Joint fit of all inlier keypoints of the kept frames: Umeyama
       (:func:`~.rigid.fit_rigid_transform`) in stereo; Levenberg-Marquardt
       PnP from the centre in mono; in stereo_views Levenberg-Marquardt on
       the reprojection error in both views from the centre
       (:func:`~.rigid.refine_pose_reprojection`).
    4. Uncertainty: the sample covariance S of the kept frames' deviations
       (:func:`pose_deviation`) about the joint fit and the joint fit's
       residual covariance C (:func:`~.pose_covariance.residual_covariance`):
       ``covariance = S / n + C`` (the standard error of a mean of n frames,
       which has rank n - 1 at most and is 0 for identical frames, plus the
       keypoints' own noise, so no direction is reported as exactly known),
       and the per-frame standard deviations ``sqrt(diag(S))``.  With one
       frame, C and NaN standard deviations.

    Args:
        estimates: per frame, its :class:`~.robot_calibration.CameraToBase`
            or None (no estimate); all of one mode.
        points_base: per frame, (J, 3) kinematic keypoints (base frame, m).
        observations: per frame, (J, 3) triangulated keypoints (camera frame,
            m; stereo), (J, 2) detected pixels (mono) or (J, 4) detected
            pixels of the left then the right view (stereo_views).
        camera: the camera model (mono), the left camera (stereo_views).
        rectified: the pixels are of the rectified image(s).
        right_camera: the right camera (stereo_views only).
        gate_factor: outlier gate in median distances (see 2.).
        min_translation_gate_m: smallest translation gate, metres.
        min_rotation_gate_rad: smallest rotation gate, radians.

    Returns:
        :class:`MultiFrameCalibration`, or None when no frame has an
        estimate.

    Raises:
        ValueError: sequences of different lengths, estimates of several
            modes, mono without a camera, or stereo_views without both.
    """
    if not len(estimates) == len(points_base) == len(observations):
        raise ValueError(f'{len(estimates)} estimates, {len(points_base)} base point sets and '
                         f'{len(observations)} observations')
    frames = [i for i, e in enumerate(estimates) if e is not None]
    if not frames:
        return None
    modes = {estimates[i].mode for i in frames}
    if len(modes) != 1:
        raise ValueError(f'estimates of several modes: {sorted(modes)}')
    mode = modes.pop()
    if mode == 'mono' and camera is None:
        raise ValueError('mono estimates need the camera model')
    if mode == 'stereo_views' and (camera is None or right_camera is None):
        raise ValueError('stereo_views estimates need the left and the right camera models')
    transforms = {i: estimates[i].T_camera_base for i in frames}
    centre = make_transform(rotation_mean([transforms[i][:3, :3] for i in frames]),
                            np.median([transforms[i][:3, 3] for i in frames], axis=0))
    kept = list(frames)
    for _ in range(10):
        deviations = np.array([pose_deviation(transforms[i], centre) for i in frames])
        dist_t = np.linalg.norm(deviations[:, :3], axis=1)
        dist_r = np.linalg.norm(deviations[:, 3:], axis=1)
        gate_t = _frame_gate(dist_t, gate_factor, min_translation_gate_m)
        gate_r = _frame_gate(dist_r, gate_factor, min_rotation_gate_rad)
        new_kept = [i for i, dt, dr in zip(frames, dist_t, dist_r)
                    if dt <= gate_t and dr <= gate_r]
        if not new_kept:  # no agreement at all: keep the frame closest to the centre
            new_kept = [frames[int(np.argmin(dist_t / gate_t + dist_r / gate_r))]]
        centre = make_transform(rotation_mean([transforms[i][:3, :3] for i in new_kept]),
                                np.mean([transforms[i][:3, 3] for i in new_kept], axis=0))
        if new_kept == kept:
            break
        kept = new_kept

    if mode == 'stereo':
        base = np.concatenate([as_points('points_base', points_base[i], 3)[estimates[i].inliers]
                               for i in kept])
        cam = np.concatenate([as_points('observations', observations[i], 3)
                              [estimates[i].inliers] for i in kept])
        R, t, _ = fit_rigid_transform(base, cam)
        T = make_transform(R, t)
        residuals = np.linalg.norm(cam - transform_points(T, base), axis=1)
        residual_cov = residual_covariance(lambda T_: (cam - transform_points(T_, base)).ravel(),
                                           T)
    elif mode == 'stereo_views':
        base = np.concatenate([as_points('points_base', points_base[i], 3)[estimates[i].inliers]
                               for i in kept])
        views = []
        for k, view_camera in enumerate((camera, right_camera)):
            uv = [as_points('observations', observations[i], 4)[:, 2 * k:2 * k + 2]
                  for i in kept]
            if not rectified:
                uv = [rectify_points(view_camera, points) for points in uv]
            views.append(np.concatenate([points[estimates[i].inliers]
                                         for points, i in zip(uv, kept)]))
        R, t, _ = refine_pose_reprojection(base, centre[:3, :3], centre[:3, 3], camera,
                                           right_camera, views[0], views[1])
        T = make_transform(R, t)

        def two_view(T_):
            return two_view_residuals(T_, base, camera, right_camera, views[0], views[1])
        residuals = stereo_reprojection_errors(T, base, camera, right_camera, views[0],
                                               views[1])
        residual_cov = residual_covariance(two_view, T)
    else:
        base_list, uv_list = [], []
        K, T_optical_pinhole = None, None
        for i in kept:
            uv_pin, K, T_optical_pinhole = pinhole_observations(camera, observations[i],
                                                                rectified)
            base_list.append(as_points('points_base', points_base[i], 3)[estimates[i].inliers])
            uv_list.append(uv_pin[estimates[i].inliers])
        base, uv = np.concatenate(base_list), np.concatenate(uv_list)
        T_pinhole_optical = np.linalg.inv(T_optical_pinhole)
        T_pin = solve_pnp(base, uv, K, T_guess=T_pinhole_optical @ centre)
        if T_pin is None:
            T_pin = T_pinhole_optical @ centre
        T = T_optical_pinhole @ T_pin
        residuals = np.linalg.norm(project_pinhole(K, T_pin, base) - uv, axis=1)
        A = np.kron(np.eye(2), T_optical_pinhole[:3, :3])
        residual_cov = A @ residual_covariance(
            lambda T_: (project_pinhole(K, T_, base) - uv).ravel(), T_pin) @ A.T

    n = len(kept)
    if n >= 2:
        deviations = np.array([pose_deviation(transforms[i], T) for i in kept])
        spread = deviations.T @ deviations / (n - 1)
        # S has rank n - 1 at most (and is 0 for identical frames): the joint
        # fit's residual covariance keeps every direction's variance above 0
        covariance = spread / n + (residual_cov if np.isfinite(residual_cov).all() else 0.0)
        std = np.sqrt(np.diag(spread))
    else:
        covariance, std = residual_cov, np.full(6, np.nan)
    used = np.zeros(len(estimates), dtype=bool)
    used[kept] = True
    return MultiFrameCalibration(
        T_camera_base=T, frames_used=used, covariance=covariance,
        translation_std_m=std[:3], rotation_std_rad=std[3:],
        rms=float(np.sqrt(np.mean(residuals ** 2))), num_correspondences=len(residuals),
        mode=mode)
