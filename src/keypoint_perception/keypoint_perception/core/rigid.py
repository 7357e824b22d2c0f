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
"""Rigid and similarity fits of an object's keypoint template, and pose refinement.

Frames: the template is in the object frame, observations in the left
camera's optical frame (see :mod:`.camera`), metres.  No ROS import.
"""

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .arrays import as_points
from .camera import camera_center, CameraModel
from .rotations import matrices_from_rotation_vectors, quaternion_from_matrix
from .symmetry import SymmetryGroup


def fit_rigid_transform(src: np.ndarray, dst: np.ndarray, weights: Optional[np.ndarray] = None,
                        with_scale: bool = False) -> Tuple[np.ndarray, np.ndarray, float]:
    """Least-squares similarity/rigid transform with ``dst ~ s * R @ src + t``.

    Umeyama, "Least-squares estimation of transformation parameters between
    two point patterns", IEEE TPAMI 13(4), 1991 (eqs. 38-43), with optional
    non-negative weights: minimizes ``sum_i w_i ||dst_i - (s R src_i + t)||^2``.
    R is always a proper rotation (det +1): if the best orthogonal matrix is
    a reflection, the sign of the smallest singular direction is flipped
    (Umeyama's S matrix).

    Args:
        src: (N, 3) source points (e.g. template, object frame), N >= 3.
        dst: (N, 3) destination points (e.g. observed, camera frame).
        weights: (N,) non-negative weights, or None for equal weights.
        with_scale: also estimate the scale s (else s = 1).

    Returns:
        R (3, 3), t (3,), s (float).

    Raises:
        ValueError: on shape mismatch, N < 3, non-finite values, negative or
            all-zero weights, or (with_scale) coincident source points.
    """
    src = as_points('src', src, 3)
    dst = as_points('dst', dst, 3)
    if src.shape != dst.shape:
        raise ValueError(f'src {src.shape} and dst {dst.shape} differ in shape')
    if src.shape[0] < 3:
        raise ValueError(f'need at least 3 point pairs, got {src.shape[0]}')
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise ValueError('src and dst must be finite')
    if weights is None:
        w = np.full(src.shape[0], 1.0 / src.shape[0])
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape != (src.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError('weights must be (N,) finite and non-negative')
        if w.sum() <= 0:
            raise ValueError('weights must not all be zero')
        w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    src_centred, dst_centred = src - mu_s, dst - mu_d
    sigma_s = float(w @ np.sum(src_centred * src_centred, axis=1))
    cov = (dst_centred * w[:, None]).T @ src_centred  # Sigma_xy of Umeyama (x = src, y = dst)
    U, d, Vt = np.linalg.svd(cov)
    S = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2] = -1.0
    R = (U * S) @ Vt
    if with_scale:
        if sigma_s <= 0:
            raise ValueError('source points coincide: scale undefined')
        s = float(np.sum(d * S) / sigma_s)
    else:
        s = 1.0
    t = mu_d - s * R @ mu_s
    return R, t, s


@dataclass(frozen=True, eq=False)
class TemplateFit:
    """Pose of an object template fitted to observed 3D keypoints.

    Attributes:
        R: (3, 3) rotation, object frame -> observation frame.
        t: (3,) translation (object origin in the observation frame), metres.
        scale: estimated scale (1.0 unless fitted ``with_scale``).
        rmse: root-mean-square distance in metres between the transformed
            template keypoints and the observed keypoints used.
        permutation: p with ``observed[j] ~ s R template[p[j]] + t``.
        num_points: number of keypoints used.
    """

    R: np.ndarray
    t: np.ndarray
    scale: float
    rmse: float
    permutation: Tuple[int, ...]
    num_points: int

    @property
    def quaternion(self) -> np.ndarray:
        """Orientation as (x, y, z, w), ROS order."""
        return quaternion_from_matrix(self.R)


def fit_template_pose(template: np.ndarray, observed: np.ndarray,
                      valid: Optional[np.ndarray] = None,
                      symmetries: Union[SymmetryGroup, Sequence[Sequence[int]]] = (),
                      with_scale: bool = False,
                      collinear_tol: float = 1e-3) -> Optional[TemplateFit]:
    """Fit the object's keypoint template to observed 3D keypoints, trying its symmetries.

    For each permutation p (identity first, then ``symmetries``), fits
    ``observed[j] ~ R template[p[j]] + t`` over the valid keypoints with
    :func:`fit_rigid_transform` and keeps the lowest RMSE (ties keep the
    earlier permutation).

    Args:
        template: (J, 3) keypoints in the object frame, metres.
        observed: (J, 3) keypoints in the camera frame, metres (NaN allowed).
        valid: (J,) bool, or None for "all finite rows".
        symmetries: a :class:`~.symmetry.SymmetryGroup` of J keypoints, or
            permutations of range(J) (identity implied).
        with_scale: also fit a scale factor.
        collinear_tol: the points count as collinear when the second singular
            value of the centred points is below ``collinear_tol`` times the
            first.

    Returns:
        :class:`TemplateFit`, or None when fewer than 3 valid keypoints
        remain or they are (nearly) collinear.

    Raises:
        ValueError: on shape mismatch or a symmetry that is not a permutation.
    """
    template = as_points('template', template, 3)
    observed = as_points('observed', observed, 3)
    if template.shape != observed.shape:
        raise ValueError(f'template {template.shape} and observed {observed.shape} differ')
    num = template.shape[0]
    mask = np.all(np.isfinite(observed), axis=1)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool).ravel()
        if valid.shape != (num,):
            raise ValueError(f'valid must be ({num},), got {valid.shape}')
        mask &= valid
    if mask.sum() < 3:
        return None
    obs = observed[mask]
    sv = np.linalg.svd(obs - obs.mean(axis=0), compute_uv=False)
    if sv[0] <= 0 or sv[1] < collinear_tol * sv[0]:
        return None
    best = None
    for perm in SymmetryGroup.of(symmetries, num):
        src = template[list(perm)][mask]
        if not np.all(np.isfinite(src)):
            continue
        sv = np.linalg.svd(src - src.mean(axis=0), compute_uv=False)
        if sv[0] <= 0 or sv[1] < collinear_tol * sv[0]:
            continue
        R, t, s = fit_rigid_transform(src, obs, with_scale=with_scale)
        res = obs - (s * src @ R.T + t)
        rmse = float(np.sqrt(np.mean(np.sum(res * res, axis=1))))
        if best is None or rmse < best.rmse:
            best = TemplateFit(R=R, t=t, scale=s, rmse=rmse, permutation=perm,
                               num_points=int(mask.sum()))
    return best


def refine_pose_reprojection(template: np.ndarray, R: np.ndarray, t: np.ndarray,
                             left: CameraModel, right: CameraModel, uv_left_rect: np.ndarray,
                             uv_right_rect: np.ndarray, iterations: int = 15
                             ) -> Tuple[np.ndarray, np.ndarray, float]:
    """Refine an object pose by minimizing its reprojection error in both views.

    A pose fitted to triangulated points (:func:`fit_template_pose`) inherits
    the stereo depth error, which grows with the square of the distance; the
    image positions are measured directly.  This minimizes
    ``sum_j ||P_left x_j - uv_left_j||^2 + ||P_right x_j - uv_right_j||^2``
    with ``x_j = R_rect (R template_j + t) + C_left`` (left rectified frame)
    over the 6 pose parameters by Levenberg-Marquardt with a numeric
    Jacobian (Hartley & Zisserman, 2nd ed., A6.2; rotation updated by a
    left-multiplied Rodrigues vector).

    Args:
        template: (N, 3) object-frame points (already permuted to match the
            observations), metres.
        R: (3, 3) initial rotation, object -> left optical frame.
        t: (3,) initial translation, metres.
        left, right: the stereo cameras (``P`` and the left ``R``).
        uv_left_rect, uv_right_rect: (N, 2) observed rectified pixels; rows
            with NaN in either view are ignored.
        iterations: most LM iterations.

    Returns:
        (R (3, 3), t (3,), RMS reprojection error in pixels); the initial
        pose when fewer than 3 points are observed in both views.

    Raises:
        ValueError: on shape mismatch.
    """
    template = as_points('template', template, 3)
    uv_l = as_points('uv_left_rect', uv_left_rect)
    uv_r = as_points('uv_right_rect', uv_right_rect)
    if not (len(template) == len(uv_l) == len(uv_r)):
        raise ValueError(f'{len(template)} template points, {len(uv_l)} and {len(uv_r)} '
                         'observations')
    rotations, translations, rms = refine_poses_reprojection(
        template[None], np.asarray(R, dtype=np.float64)[None],
        np.asarray(t, dtype=np.float64).reshape(1, 3), left, right, uv_l[None], uv_r[None],
        iterations)
    return rotations[0], translations[0], float(rms[0])


def refine_poses_reprojection(templates: np.ndarray, rotations: np.ndarray,
                              translations: np.ndarray, left: CameraModel, right: CameraModel,
                              uv_left_rect: np.ndarray, uv_right_rect: np.ndarray,
                              iterations: int = 15
                              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refine B object poses at once, each as :func:`refine_pose_reprojection` does.

    The B Levenberg-Marquardt problems run in lockstep, each with its own
    damping and stopping rule, so each result is the one the problem would
    get alone; the numeric Jacobian's 12 central differences and every
    problem's residuals are evaluated as one array expression per iteration
    instead of one call per parameter and problem.

    Args:
        templates: (B, N, 3) object-frame points, metres.
        rotations: (B, 3, 3) initial rotations, object -> left optical frame.
        translations: (B, 3) initial translations, metres.
        left, right: the stereo cameras (``P`` and the left ``R``).
        uv_left_rect, uv_right_rect: (B, N, 2) observed rectified pixels;
            rows with NaN in either view are ignored.
        iterations: most LM iterations.

    Returns:
        (rotations (B, 3, 3), translations (B, 3), RMS reprojection errors
        (B,) in pixels), new arrays; a problem with fewer than 3 points
        observed in both views keeps its initial pose and has RMS NaN.
    """
    templates = np.asarray(templates, dtype=np.float64)
    uv_l = np.asarray(uv_left_rect, dtype=np.float64)
    uv_r = np.asarray(uv_right_rect, dtype=np.float64)
    rotations = np.array(rotations, dtype=np.float64)
    translations = np.array(translations, dtype=np.float64).reshape(-1, 3)
    rms = np.full(len(templates), np.nan)
    ok = np.all(np.isfinite(uv_l), axis=2) & np.all(np.isfinite(uv_r), axis=2)
    counts = ok.sum(axis=1)
    for count in np.unique(counts[counts >= 3]):  # same number of observations: one batch
        group = np.flatnonzero(counts == count)
        seen = ok[group]
        points = templates[group][seen].reshape(len(group), count, 3)
        observed = np.concatenate([uv_l[group][seen].reshape(len(group), count, 2),
                                   uv_r[group][seen].reshape(len(group), count, 2)], axis=1)
        rotations[group], translations[group], rms[group] = _levenberg_marquardt_poses(
            points, rotations[group], translations[group], observed.reshape(len(group), -1),
            left, right, iterations)
    return rotations, translations, rms


def _levenberg_marquardt_poses(points, rotations, translations, observed, left, right,
                               iterations):
    """LM of :func:`refine_poses_reprojection` on (b, n, 3) points all observed (b, 4n).

    Each iteration evaluates the candidate step and the 12 central
    differences around it in one batch: if the step is accepted they are the
    next Jacobian, if not the Jacobian stays the one of the unchanged pose.
    """
    # both cameras' projection of a point y in the left optical frame:
    # P [R_left y + C_left; 1] = (P_3x3 R_left) y + (P_3x3 C_left + p_4)
    center = camera_center(left.P)
    projections = [np.asarray(camera.P, dtype=np.float64) for camera in (left, right)]
    linear = np.concatenate([P[:, :3] @ left.R for P in projections])  # (6, 3)
    offset = np.concatenate([P[:, :3] @ center + P[:, 3] for P in projections])  # (6,)
    count = points.shape[1]

    def residuals(members, params):
        """(k, M, 4n) residuals of M parameter vectors (k, M, 6) of the ``members`` problems."""
        problems, samples = params.shape[:2]
        turned = matrices_from_rotation_vectors(params[..., :3]).reshape(problems, samples, 3, 3)
        turned = turned @ rotations[members][:, None]
        y = (points[members][:, None] @ np.swapaxes(turned, 2, 3)
             + translations[members][:, None, None] + params[:, :, None, 3:])
        h = (y @ linear.T + offset).reshape(problems, samples, count, 2, 3)
        with np.errstate(divide='ignore', invalid='ignore'):
            uv = h[..., :2] / h[..., 2:3]  # (k, M, n, camera, 2)
        return np.swapaxes(uv, 2, 3).reshape(problems, samples, -1) - observed[members][:, None]

    def jacobian(around):
        """(k, 4n, 6) central differences from (k, 12, 4n) residuals at +-1e-6."""
        return np.swapaxes((around[:, 0::2] - around[:, 1::2]) / 2e-6, 1, 2)

    # the pose itself, then +-1e-6 on each of the 6 parameters
    samples = np.concatenate([np.zeros((1, 6)), np.repeat(np.eye(6) * 1e-6, 2, axis=0)])
    samples[2::2] *= -1.0
    problems = len(points)
    everyone = np.arange(problems)
    params, damping = np.zeros((problems, 6)), np.full(problems, 1e-3)
    first = residuals(everyone, params[:, None] + samples)
    err, jacobians = first[:, 0], jacobian(first[:, 1:])
    active = np.ones(problems, bool)
    for _ in range(iterations):
        members = np.flatnonzero(active)
        if not len(members):
            break
        current, J = params[members], jacobians[members]
        J_t = np.swapaxes(J, 1, 2)
        normal = J_t @ J
        gradient = (J_t @ err[members][..., None])[..., 0]
        diagonal = np.diagonal(normal, axis1=1, axis2=2) + 1e-12
        lhs = normal + damping[members, None, None] * (diagonal[:, :, None] * np.eye(6))
        step = -np.linalg.solve(lhs, gradient[..., None])[..., 0]
        trial = residuals(members, (current + step)[:, None] + samples)
        new_err = trial[:, 0]
        better = (np.einsum('ki,ki->k', new_err, new_err)
                  < np.einsum('ki,ki->k', err[members], err[members]))
        accepted = members[better]
        params[accepted] = current[better] + step[better]
        err[accepted] = new_err[better]
        jacobians[accepted] = jacobian(trial[better, 1:])
        damping[accepted] *= 0.3
        damping[members[~better]] *= 10.0
        active[members[better & (np.linalg.norm(step, axis=1) < 1e-10)]] = False
    refined = matrices_from_rotation_vectors(params[:, :3]) @ rotations
    rms = np.sqrt(np.mean(err.reshape(problems, -1, 2) ** 2, axis=(1, 2)) * 2)
    return refined, translations + params[:, 3:], rms
