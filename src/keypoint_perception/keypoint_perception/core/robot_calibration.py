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
"""Markerless camera-to-robot calibration from detected robot keypoints (DREAM's problem).

Given a robot's keypoints in its base frame (forward kinematics,
:mod:`.kinematics`) and the same keypoints observed by a camera, estimate
``T_camera_base``: the (4, 4) homogeneous transform that maps base-frame
points (metres) into the camera's optical frame (REP 103: +x right, +y down,
+z forward, metres), ``x_camera = R @ x_base + t``.

* stereo (:func:`fit_camera_to_base_stereo`): triangulated keypoints (camera
  frame) against their kinematic positions: rigid Umeyama fit (Umeyama,
  IEEE TPAMI 1991) inside RANSAC (Fischler & Bolles, CACM 1981);
* stereo from both views' 2D keypoints: :mod:`.two_view_calibration`;
* mono (:func:`fit_camera_to_base_mono`): 2D keypoints (pixels), the camera's
  intrinsics and the kinematic 3D points: PnP inside RANSAC, refined by
  Levenberg-Marquardt on the inliers, as DREAM (Lee et al., "Camera-to-Robot
  Pose Estimation from a Single Image", ICRA 2020) does with OpenCV;
* many frames of a static camera: :mod:`.multi_frame_calibration`;
* ADD and its AUC as DREAM reports them: :mod:`.calibration_metrics`.

Uncertainty convention (that of ``geometry_msgs/PoseWithCovariance``): a
6x6 covariance over ``(x, y, z, rotation about X, rotation about Y,
rotation about Z)`` -- translation in metres, rotation in radians about the
*fixed* axes of the parent frame: a perturbed transform is
``(Exp(phi) @ R, t + dt)``.  Here the parent frame is the camera's optical
frame; :func:`inverse_pose_covariance` converts to the inverse transform
(the camera's pose in the base frame).  No ROS import.
"""

from dataclasses import dataclass
import itertools
import math
from typing import List, Optional, Tuple

import cv2
import numpy as np

from .arrays import as_points
from .camera import CameraModel
from .distortion import undistort_pixels
from .pose_covariance import residual_covariance
from .rigid import fit_rigid_transform

#: The kinds of estimate: from triangulated 3D keypoints (residuals in metres),
#: from both views' 2D keypoints or from one camera's (residuals in pixels).
MODES = ('stereo', 'stereo_views', 'mono')

#: Default largest 1-sigma translation uncertainty of an accepted estimate, as a
#: fraction of the base's distance from the camera
#: (:attr:`CameraToBase.relative_translation_std`).  Fits on few, nearly
#: collinear inliers can converge tens of metres away with small residuals;
#: their covariance says so (a 31 m PnP fit of a robot 0.9 m away had 9.7 m).
MAX_RELATIVE_STD = 0.25

#: Smallest ratio of the second to the first singular value of a fit's inlier
#: keypoints (base frame, centred; :func:`well_spread`).  Keypoints on a line
#: leave the rotation about it free: mono fits on 6 keypoints up to 5 mm off a
#: 0.6 m line (ratio about 0.013) were 6 degrees wrong in median, up to 1 mm off
#: (0.003) 24 degrees; at 0.06 2 degrees.  Among 4-keypoint subsets of random
#: Panda configurations, 0.04% have a ratio below 0.02.
MIN_INLIER_SPREAD = 0.02


@dataclass(frozen=True, eq=False)
class CameraToBase:
    """One estimate of ``T_camera_base`` from the keypoints of one frame.

    Attributes:
        T_camera_base: (4, 4) float64, base frame -> camera optical frame,
            metres.
        inliers: (J,) bool, keypoints consistent with the estimate.
        residuals: (J,) float64 per keypoint: the 3D distance in metres
            (stereo, :func:`fit_camera_to_base_stereo`), the RMS
            reprojection error of the two views in rectified pixels (stereo,
            :func:`~.two_view_calibration.fit_camera_to_base_stereo_views`) or the reprojection
            error in pixels of the camera's undistorted image (mono); NaN
            where the keypoint was not observed.
        rms: root-mean-square residual over the inliers (metres or pixels).
        covariance: (6, 6) float64 first-order covariance of the estimate,
            from the inliers' residuals (see the module docstring for the
            order and convention): ``s^2 (J^T J)^-1`` with ``s^2`` the
            residual variance (Hartley & Zisserman, 2nd ed., A5.2).
        mode: 'stereo' (:func:`fit_camera_to_base_stereo`), 'stereo_views'
            (:func:`~.two_view_calibration.fit_camera_to_base_stereo_views`) or
            'mono'.
    """

    T_camera_base: np.ndarray
    inliers: np.ndarray
    residuals: np.ndarray
    rms: float
    covariance: np.ndarray
    mode: str

    @property
    def num_inliers(self) -> int:
        """Return the number of inlier keypoints."""
        return int(np.count_nonzero(self.inliers))

    @property
    def relative_translation_std(self) -> float:
        """``sqrt(trace(C_t)) / |t|``: translation uncertainty over the base's distance.

        ``C_t`` is the (3, 3) translation block of :attr:`covariance` (m^2)
        and ``t`` the base origin in the camera frame (m); unitless.  inf
        when the covariance is not finite (a degenerate fit) or ``t`` is 0.
        A trace below 0 by round-off (an exact fit's covariance is ~1e-12
        m^2 with either sign) counts as 0.
        """
        variance = float(np.trace(self.covariance[:3, :3]))
        distance = float(np.linalg.norm(self.T_camera_base[:3, 3]))
        if not (np.isfinite(variance) and distance > 0):
            return math.inf
        return math.sqrt(max(variance, 0.0)) / distance

    @property
    def rotation_std_rad(self) -> float:
        """``sqrt(trace(C_phi))``: 1-sigma rotation uncertainty, radians (inf if not finite).

        ``C_phi`` is the (3, 3) rotation block of :attr:`covariance`.
        """
        variance = float(np.trace(self.covariance[3:, 3:]))
        return math.sqrt(max(variance, 0.0)) if np.isfinite(variance) else math.inf

    def describe_uncertainty(self) -> str:
        """One phrase for logs: the translation and rotation 1-sigma of the estimate."""
        return (f'translation 1-sigma {self.relative_translation_std:.3g} of the distance, '
                f'rotation 1-sigma {math.degrees(self.rotation_std_rad):.3g} deg')


def well_determined(estimate: Optional[CameraToBase], max_relative_std: float
                    ) -> Optional[CameraToBase]:
    """Return ``estimate`` unless its translation is too uncertain to use (then None).

    The rotation is not gated by its covariance: with few keypoints far
    away (4 of them, 3 px noise, 4 m) its first-order 1-sigma says little
    about the error, and a bound on it dropped better fits than it kept.
    Nearly collinear inliers, which leave the rotation about their line
    free, are refused by the fits themselves (:data:`MIN_INLIER_SPREAD`).

    Args:
        estimate: a fit's estimate, or None.
        max_relative_std: largest :attr:`CameraToBase.relative_translation_std`
            accepted (> 0; inf accepts every finite covariance and more).

    Raises:
        ValueError: ``max_relative_std <= 0``.
    """
    if not max_relative_std > 0:
        raise ValueError(f'max_relative_std must be > 0, got {max_relative_std}')
    if estimate is None or not estimate.relative_translation_std <= max_relative_std:
        return None
    return estimate


def make_transform(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Return the (4, 4) homogeneous transform of a rotation (3, 3) and translation (3,)."""
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, np.asarray(t, dtype=np.float64).ravel()
    return T


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (4, 4) transform to (N, 3) points; returns new (N, 3) float64 points."""
    points = as_points('points', points, 3)
    return points @ np.asarray(T)[:3, :3].T + np.asarray(T)[:3, 3]


def _hypotheses(valid_indices: np.ndarray, size: int, max_hypotheses: int,
                seed: int) -> List[Tuple[int, ...]]:
    """Minimal sets of ``size`` keypoints: all of them when few, else random ones."""
    n = len(valid_indices)
    if math.comb(n, size) <= max_hypotheses:
        return [tuple(c) for c in itertools.combinations(valid_indices, size)]
    rng = np.random.default_rng(seed)
    return [tuple(rng.choice(valid_indices, size, replace=False)) for _ in range(max_hypotheses)]


def msac_cost(residuals: np.ndarray, threshold: float) -> float:
    """MSAC score (Torr & Zisserman, CVIU 2000): truncated squared residuals, lower is better."""
    return float(np.sum(np.minimum(residuals, threshold) ** 2))


def well_spread(points: np.ndarray, tolerance: float = 1e-3) -> bool:
    """Whether (N, 3) points are not (nearly) collinear.

    True when the second singular value of the centred points is at least
    ``tolerance`` times the first: a pose from collinear points leaves the
    rotation about their line free (rigid fit, PnP and the two-view fit alike).
    """
    sv = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
    return bool(sv[0] > 0 and sv[1] >= tolerance * sv[0])


def fit_camera_to_base_stereo(points_camera: np.ndarray, points_base: np.ndarray,
                              inlier_threshold_m: float = 0.02, min_inliers: int = 3,
                              max_hypotheses: int = 500, seed: int = 0,
                              max_relative_std: float = MAX_RELATIVE_STD
                              ) -> Optional[CameraToBase]:
    """Robust rigid fit of triangulated keypoints to their kinematic positions.

    RANSAC over minimal sets of 3 keypoints (every set when there are at
    most ``max_hypotheses``, as for a robot's 7 keypoints: 35 sets; random
    ones otherwise), each fitted with Umeyama's closed form
    (:func:`~.rigid.fit_rigid_transform`, no scale) and scored by MSAC;
    the best set's inliers (3D distance below ``inlier_threshold_m``) are
    refitted until they no longer change.

    Args:
        points_camera: (J, 3) triangulated keypoints in the camera's optical
            frame, metres; NaN rows = not observed.
        points_base: (J, 3) the same keypoints in the base frame (forward
            kinematics), metres; NaN rows allowed.
        inlier_threshold_m: largest 3D distance of an inlier, metres.
        min_inliers: fewest inliers (>= 3) of an accepted estimate.
        max_hypotheses: most minimal sets tried.
        seed: seed of the random sets (used only with many keypoints).
        max_relative_std: see :func:`well_determined`.

    Returns:
        :class:`CameraToBase` (mode 'stereo', residuals in metres), or None
        with fewer than ``min_inliers`` consistent, non-collinear keypoints
        or a translation too uncertain (:func:`well_determined`).

    Raises:
        ValueError: on shape mismatch or ``min_inliers < 3``.
    """
    cam = as_points('points_camera', points_camera, 3)
    base = as_points('points_base', points_base, 3)
    if cam.shape != base.shape:
        raise ValueError(f'points_camera {cam.shape} and points_base {base.shape} differ')
    if min_inliers < 3:
        raise ValueError(f'min_inliers must be >= 3, got {min_inliers}')
    valid = np.all(np.isfinite(cam), axis=1) & np.all(np.isfinite(base), axis=1)
    indices = np.flatnonzero(valid)
    if len(indices) < min_inliers:
        return None

    def residuals_of(T):
        out = np.full(len(cam), np.nan)
        out[valid] = np.linalg.norm(cam[valid] - transform_points(T, base[valid]), axis=1)
        return out

    best, best_cost = None, np.inf
    for sample in _hypotheses(indices, 3, max_hypotheses, seed):
        sample = list(sample)
        if not well_spread(base[sample]):
            continue
        R, t, _ = fit_rigid_transform(base[sample], cam[sample])
        cost = msac_cost(residuals_of(make_transform(R, t))[valid], inlier_threshold_m)
        if cost < best_cost:
            best, best_cost = make_transform(R, t), cost
    if best is None:
        return None
    T, inliers = best, np.zeros(len(cam), dtype=bool)
    for _ in range(10):
        new_inliers = valid & (np.nan_to_num(residuals_of(T), nan=np.inf) < inlier_threshold_m)
        if (np.count_nonzero(new_inliers) < min_inliers
                or not well_spread(base[new_inliers], MIN_INLIER_SPREAD)):
            return None
        if np.array_equal(new_inliers, inliers):
            break
        inliers = new_inliers
        R, t, _ = fit_rigid_transform(base[inliers], cam[inliers])
        T = make_transform(R, t)
    residuals = residuals_of(T)
    covariance = residual_covariance(
        lambda T_: (cam[inliers] - transform_points(T_, base[inliers])).ravel(), T)
    return well_determined(CameraToBase(T_camera_base=T, inliers=inliers, residuals=residuals,
                                        rms=float(np.sqrt(np.mean(residuals[inliers] ** 2))),
                                        covariance=covariance, mode='stereo'),
                           max_relative_std)


def pinhole_observations(camera: CameraModel, uv: np.ndarray, rectified: bool = False
                         ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn detected pixels into an ideal pinhole camera's pixels for PnP.

    Args:
        camera: the camera's model (ROS CameraInfo).
        uv: (J, 2) keypoints in pixels (OpenCV convention); NaN rows allowed.
        rectified: the pixels are of the rectified image (``image_rect``,
            model ``P``) instead of the raw one (``image_raw``, ``K`` and
            ``D``).

    Returns:
        ``(uv_pinhole (J, 2), K (3, 3), T_optical_pinhole (4, 4))``: raw
        pixels are undistorted into the image of ``K``
        (:func:`~.distortion.undistort_pixels`), the frame of PnP is then the
        optical frame (identity); rectified pixels are used as they are with
        ``K = P[:, :3]``, and ``T_optical_pinhole`` maps the frame of that K
        to the optical frame: a rotation by ``R^T``, no translation.  (ROS
        convention: ``P`` projects points of the first camera's rectified
        frame, ``X_rect = R x_optical + c`` with ``c`` the centre of ``P``;
        ``P [X_rect; 1] = P[:, :3] R x_optical``, so the pinhole frame is the
        camera's own optical frame rotated by ``R``, wherever the camera
        sits in the rig.)
    """
    uv = as_points('uv', uv)
    if not rectified:
        return undistort_pixels(camera, uv), camera.K.copy(), np.eye(4)
    K = camera.P[:, :3] / camera.P[2, 2]
    return uv.copy(), K, make_transform(camera.R.T, np.zeros(3))


def project_pinhole(K: np.ndarray, T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Project (N, 3) points with the pinhole ``K`` (3, 3) after the (4, 4) transform T.

    Returns (N, 2) float64 pixels (inf/NaN for points at depth 0).
    """
    x = transform_points(T, points) @ K.T
    with np.errstate(divide='ignore', invalid='ignore'):
        return x[:, :2] / x[:, 2:3]


def solve_pnp(points: np.ndarray, uv: np.ndarray, K: np.ndarray,
              T_guess: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """Least-squares PnP of N >= 4 correspondences, no lens distortion.

    SQPnP (Terzakis & Lourakis, ECCV 2020: the global minimum) without a
    guess, then Levenberg-Marquardt (``cv2.solvePnPRefineLM``) from it or
    from ``T_guess``.

    Args:
        points: (N, 3) points of the object (base) frame, metres.
        uv: (N, 2) their pixels in the pinhole image of ``K``.
        K: (3, 3) intrinsics.
        T_guess: (4, 4) start of the refinement, or None.

    Returns:
        (4, 4) float64 transform object frame -> camera frame of K, or None
        when OpenCV fails.
    """
    obj = np.ascontiguousarray(points.reshape(-1, 1, 3))
    img = np.ascontiguousarray(uv.reshape(-1, 1, 2))
    try:
        if T_guess is None:
            ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_SQPNP)
            if not ok:
                return None
        else:
            rvec, tvec = cv2.Rodrigues(T_guess[:3, :3])[0], T_guess[:3, 3].reshape(3, 1).copy()
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, None, rvec, tvec)
    except cv2.error:
        return None
    T = make_transform(cv2.Rodrigues(rvec)[0], tvec.ravel())
    return T if np.all(np.isfinite(T)) else None


def fit_camera_to_base_mono(uv: np.ndarray, points_base: np.ndarray, camera: CameraModel,
                            rectified: bool = False, inlier_threshold_px: float = 8.0,
                            min_inliers: int = 4, max_hypotheses: int = 500, seed: int = 0,
                            max_relative_std: float = MAX_RELATIVE_STD
                            ) -> Optional[CameraToBase]:
    """Estimate ``T_camera_base`` from one image's 2D keypoints: PnP with RANSAC.

    Lepetit-style PnP (EPnP: Lepetit et al., IJCV 2009; here OpenCV's SQPnP,
    Terzakis & Lourakis, ECCV 2020, which returns the global least-squares
    optimum) on minimal sets of 4 keypoints, scored by MSAC on the
    reprojection error of all keypoints, then Levenberg-Marquardt
    (``cv2.solvePnPRefineLM``) on the inliers until they no longer change
    -- DREAM's mono pipeline.  Every 4-set is tried when there are at most
    ``max_hypotheses`` (35 for 7 keypoints): ``cv2.solvePnPRansac`` stops
    after an iteration count computed for sampling with replacement, which
    with 7 keypoints and 2 outliers misses the one clean 5-set in 21 on a
    large share of frames.  Hypotheses that put an inlier behind the camera
    are refused.

    Args:
        uv: (J, 2) detected keypoints in pixels; NaN rows = not detected.
        points_base: (J, 3) kinematic keypoints in the base frame, metres.
        camera: the camera (intrinsics ``K``, ``D``; ``P``, ``R`` if
            ``rectified``).
        rectified: see :func:`pinhole_observations`.
        inlier_threshold_px: largest reprojection error of an inlier,
            pixels of the undistorted image.
        min_inliers: fewest inliers (>= 4) of an accepted estimate.
        max_hypotheses: most minimal sets tried.
        seed: seed of the random sets (used only with many keypoints).
        max_relative_std: see :func:`well_determined`.

    Returns:
        :class:`CameraToBase` (mode 'mono', residuals in pixels) in the
        camera's optical frame, or None with fewer than ``min_inliers``
        consistent keypoints or a translation too uncertain
        (:func:`well_determined`).

    Raises:
        ValueError: on shape mismatch or ``min_inliers < 4``.
    """
    base = as_points('points_base', points_base, 3)
    uv_pin, K, T_optical_pinhole = pinhole_observations(camera, uv, rectified)
    if uv_pin.shape[0] != base.shape[0]:
        raise ValueError(f'{uv_pin.shape[0]} pixels and {base.shape[0]} base points')
    if min_inliers < 4:
        raise ValueError(f'min_inliers must be >= 4, got {min_inliers}')
    valid = np.all(np.isfinite(uv_pin), axis=1) & np.all(np.isfinite(base), axis=1)
    indices = np.flatnonzero(valid)
    if len(indices) < min_inliers:
        return None

    def residuals_of(T):
        out = np.full(len(base), np.nan)
        uv_hat = project_pinhole(K, T, base[valid])
        in_front = transform_points(T, base[valid])[:, 2] > 0
        out[valid] = np.where(in_front, np.linalg.norm(uv_hat - uv_pin[valid], axis=1), np.inf)
        return out

    best, best_cost = None, np.inf
    for sample in _hypotheses(indices, 4, max_hypotheses, seed):
        sample = list(sample)
        T = solve_pnp(base[sample], uv_pin[sample], K)
        if T is None or np.any(transform_points(T, base[sample])[:, 2] <= 0):
            continue
        cost = msac_cost(residuals_of(T)[valid], inlier_threshold_px)
        if cost < best_cost:
            best, best_cost = T, cost
    if best is None:
        return None
    T, inliers = best, np.zeros(len(base), dtype=bool)
    for _ in range(10):
        new_inliers = valid & (np.nan_to_num(residuals_of(T), nan=np.inf) < inlier_threshold_px)
        if np.count_nonzero(new_inliers) < min_inliers:
            return None
        if np.array_equal(new_inliers, inliers):
            break
        inliers = new_inliers
        refined = solve_pnp(base[inliers], uv_pin[inliers], K, T_guess=T)
        if refined is None:
            return None
        T = refined
    if not well_spread(base[inliers], MIN_INLIER_SPREAD):
        return None
    residuals = residuals_of(T)
    covariance = residual_covariance(
        lambda T_: (project_pinhole(K, T_, base[inliers]) - uv_pin[inliers]).ravel(), T)
    # from the frame of K (or P) to the optical frame: rotate the covariance with it
    A = np.kron(np.eye(2), T_optical_pinhole[:3, :3])
    return well_determined(CameraToBase(T_camera_base=T_optical_pinhole @ T, inliers=inliers,
                                        residuals=residuals,
                                        rms=float(np.sqrt(np.mean(residuals[inliers] ** 2))),
                                        covariance=A @ covariance @ A.T, mode='mono'),
                           max_relative_std)
