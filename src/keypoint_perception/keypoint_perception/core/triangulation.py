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
"""Stereo triangulation of keypoints and its noise model.

Frames (see :mod:`.camera`): points are triangulated in the LEFT rectified
frame (the frame ``P_left`` and ``P_right`` project from) and returned in the
left camera's optical frame (+x right, +y down, +z forward, metres).  No ROS
import; all arrays are float64, NaN rows mark missing keypoints.
"""

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .arrays import as_points
from .camera import (CalibrationError, camera_center, CameraModel, point_depth,
                     reprojection_error, stereo_baseline)
from .distortion import rectify_points

#: Reasons for rejecting a triangulated point (``StereoTriangulation.reason``).
REASON_VALID = ''
REASON_NON_FINITE_INPUT = 'non_finite_input'
REASON_DEGENERATE = 'degenerate'
REASON_BEHIND_CAMERA = 'behind_camera'
REASON_REPROJECTION_ERROR = 'reprojection_error'
REASON_TEMPLATE_OUTLIER = 'template_outlier'  # set by the pipeline's leave-one-out check


def stereo_point_sigma(depth: np.ndarray, focal_px: float, baseline_m: float,
                       sigma_px: float) -> Tuple[np.ndarray, np.ndarray]:
    """Return the standard deviations (m) of a triangulated point from its pixel noise.

    First-order propagation for a rectified rig (Hartley and Zisserman, 2nd
    ed., 12.6; e.g. Chang and Chatterjee 1992): with depth ``z = f B / d``
    and independent noise ``sigma_px`` on the left and right image positions,
    the disparity ``d`` has noise ``sqrt(2) sigma_px``, so the point moves
    along its viewing ray by ``sigma_z = z^2 sqrt(2) sigma_px / (f B)`` and
    across it by ``sigma_xy = z sigma_px / f`` per axis.

    Args:
        depth: (...,) float depths z in metres (rectified left frame).
        focal_px: f, rectified focal length in pixels (``P[0, 0]``).
        baseline_m: B, stereo baseline in metres (> 0).
        sigma_px: standard deviation of one view's keypoint position, pixels.

    Returns:
        ``(sigma_z, sigma_xy)``, each (...,) float64 metres (NaN where depth
        is): along the viewing ray, and per axis across it.

    Raises:
        ValueError: if ``focal_px`` or ``baseline_m`` is not positive.
    """
    if not focal_px > 0 or not baseline_m > 0:
        raise ValueError(f'need a positive focal length and baseline, got {focal_px} px '
                         f'and {baseline_m} m')
    z = np.asarray(depth, dtype=np.float64)
    return z * z * np.sqrt(2.0) * sigma_px / (focal_px * baseline_m), \
        np.abs(z) * sigma_px / focal_px


def triangulate_dlt(P_left: np.ndarray, P_right: np.ndarray, uv_left: np.ndarray,
                    uv_right: np.ndarray) -> np.ndarray:
    """Linear (DLT) triangulation of N point pairs, vectorized.

    Homogeneous method of Hartley & Zisserman, *Multiple View Geometry*, 2nd
    ed., section 12.2: for each pair, A X = 0 with rows
    ``u p3 - p1, v p3 - p2`` of both cameras (p_i = rows of P), X the right
    singular vector of A (4, 4) for the smallest singular value.  Same
    algorithm as ``cv2.triangulatePoints``.

    Args:
        P_left, P_right: (3, 4) projection matrices (pixels per metre), both
            projecting from the same 3D frame.
        uv_left, uv_right: (N, 2) pixel coordinates in the images of P_left
            and P_right.

    Returns:
        (N, 3) float64 points in the frame the P project from, metres.  NaN
        for pairs with NaN input; inf/huge for points at infinity (W = 0).

    Raises:
        ValueError: on wrong shapes.
    """
    P1 = np.asarray(P_left, dtype=np.float64)
    P2 = np.asarray(P_right, dtype=np.float64)
    if P1.shape != (3, 4) or P2.shape != (3, 4):
        raise ValueError('P_left and P_right must be (3, 4)')
    uv1 = as_points('uv_left', uv_left)
    uv2 = as_points('uv_right', uv_right)
    if uv1.shape != uv2.shape:
        raise ValueError(f'uv_left {uv1.shape} and uv_right {uv2.shape} differ in shape')
    X = np.full((uv1.shape[0], 3), np.nan)
    ok = np.all(np.isfinite(uv1), axis=1) & np.all(np.isfinite(uv2), axis=1)
    if not np.any(ok):
        return X
    a, b = uv1[ok], uv2[ok]
    A = np.stack([a[:, :1] * P1[2] - P1[0], a[:, 1:] * P1[2] - P1[1],
                  b[:, :1] * P2[2] - P2[0], b[:, 1:] * P2[2] - P2[1]], axis=1)  # (M, 4, 4)
    _, _, vt = np.linalg.svd(A)
    Xh = vt[:, -1, :]
    with np.errstate(divide='ignore', invalid='ignore'):
        X[ok] = Xh[:, :3] / Xh[:, 3:4]
    return X


def refine_triangulation(P_left: np.ndarray, P_right: np.ndarray, uv_left: np.ndarray,
                         uv_right: np.ndarray, X0: np.ndarray, iterations: int = 10,
                         tol_px: float = 1e-8) -> np.ndarray:
    """Refine triangulated points by minimizing the reprojection error in both views.

    Levenberg-Marquardt (Hartley & Zisserman, 2nd ed., A6.2) on the 4
    residuals ``project(P_v, X) - uv_v`` of each point independently,
    vectorized over points, starting from X0 (e.g. :func:`triangulate_dlt`).
    A step is kept only where it lowers that point's squared error.

    Args:
        P_left, P_right: (3, 4) projection matrices.
        uv_left, uv_right: (N, 2) observed pixels.
        X0: (N, 3) initial points, metres.
        iterations: maximum number of LM iterations.
        tol_px: stop once every step changes the reprojection of every point
            by less than this (pixels).

    Returns:
        (N, 3) refined points; rows with non-finite input or X0 are returned
        unchanged.
    """
    Ps = np.stack([np.asarray(P_left, dtype=np.float64), np.asarray(P_right, dtype=np.float64)])
    uv = np.stack([as_points('uv_left', uv_left), as_points('uv_right', uv_right)], axis=1)
    X = as_points('X0', X0, 3).copy()
    ok = np.all(np.isfinite(X), axis=1) & np.all(np.isfinite(uv), axis=(1, 2))
    if not np.any(ok):
        return X
    x, obs = X[ok], uv[ok]  # (M, 3), (M, 2, 2)

    def residuals_and_jacobian(pts):
        h = np.einsum('vij,mj->mvi', Ps[:, :, :3], pts) + Ps[:, :, 3]  # (M, 2, 3)
        w = h[..., 2:3]
        with np.errstate(divide='ignore', invalid='ignore'):
            proj = h[..., :2] / w
            # d(h_i / w) / dX = (P[i, :3] - proj_i * P[2, :3]) / w
            jac = (Ps[None, :, :2, :3] - proj[..., None] * Ps[None, :, 2:3, :3]) / w[..., None]
        r = (proj - obs).reshape(-1, 4)
        return r, jac.reshape(-1, 4, 3)

    r, J = residuals_and_jacobian(x)
    cost = np.sum(r * r, axis=1)
    lam = np.full(x.shape[0], 1e-3)
    for _ in range(int(iterations)):
        JtJ = np.einsum('mki,mkj->mij', J, J)
        Jtr = np.einsum('mki,mk->mi', J, r)
        A = JtJ + lam[:, None, None] * np.eye(3) * np.diagonal(JtJ, axis1=1, axis2=2)[:, None, :]
        good = np.all(np.isfinite(A), axis=(1, 2)) & np.all(np.isfinite(Jtr), axis=1)
        step = np.zeros_like(x)
        if np.any(good):
            try:
                step[good] = -np.linalg.solve(A[good], Jtr[good][..., None])[..., 0]
            except np.linalg.LinAlgError:
                step[good] = -(np.linalg.pinv(A[good]) @ Jtr[good][..., None])[..., 0]
        cand = x + step
        r_new, J_new = residuals_and_jacobian(cand)
        cost_new = np.sum(r_new * r_new, axis=1)
        better = np.isfinite(cost_new) & (cost_new < cost)
        x[better], r[better], J[better], cost[better] = (
            cand[better], r_new[better], J_new[better], cost_new[better])
        lam = np.clip(np.where(better, lam * 0.1, lam * 10.0), 1e-12, 1e12)
        moved = np.max(np.abs(np.einsum('mki,mi->mk', J, step)), axis=1)
        if not np.any(moved >= tol_px):  # NaN counts as converged (nothing to do)
            break
    X[ok] = x
    return X


@dataclass(frozen=True, eq=False)
class StereoTriangulation:
    """Result of :func:`triangulate_stereo` for N keypoints.

    Attributes:
        xyz: (N, 3) float64 points in metres in the LEFT camera's optical
            frame (``left.frame_id``: +x right, +y down, +z forward); NaN where
            ``valid`` is False.
        reprojection_error_px: (N,) root-mean-square of the two views'
            reprojection errors in rectified pixels; NaN for non-finite input
            or degenerate points.
        valid: (N,) bool.
        reason: (N,) tuple of str, ``REASON_VALID`` ('') for valid points,
            else the first failed check: ``REASON_NON_FINITE_INPUT``,
            ``REASON_DEGENERATE`` (triangulation at infinity), ``REASON_BEHIND_CAMERA``
            (depth <= min_depth in either camera), ``REASON_REPROJECTION_ERROR``.
        uv_left_rect, uv_right_rect: (N, 2) the rectified pixels that were
            triangulated.
        xyz_rect: (N, 3) the points in the left RECTIFIED frame (the frame
            P_left projects from), NaN where ``valid`` is False.
    """

    xyz: np.ndarray
    reprojection_error_px: np.ndarray
    valid: np.ndarray
    reason: Tuple[str, ...]
    uv_left_rect: np.ndarray
    uv_right_rect: np.ndarray
    xyz_rect: np.ndarray


def triangulate_stereo(left: CameraModel, right: CameraModel, uv_left: np.ndarray,
                       uv_right: np.ndarray, refine: bool = True,
                       max_reprojection_error_px: float = 5.0, min_depth: float = 0.0,
                       points_are_rectified: bool = False) -> StereoTriangulation:
    """Triangulate corresponding keypoints of a stereo pair into the left optical frame.

    Steps: (1) raw pixels -> rectified pixels with :func:`rectify_points`
    (skipped when ``points_are_rectified``, i.e. keypoints detected in
    ``image_rect``); (2) DLT (:func:`triangulate_dlt`) with ``left.P`` and
    ``right.P``, which gives X_rect in the left RECTIFIED frame; (3) optional
    LM refinement (:func:`refine_triangulation`); (4) checks; (5) change of
    frame to the left camera's optical frame::

        xyz = R_left^T @ (X_rect - C_left)

    where ``R_left = left.R`` (optical -> rectified) and ``C_left`` is the
    centre of ``left.P`` (zero for ROS, where ``P_left[:, 3] = 0``).  The
    result is expressed in ``left.frame_id``, the frame of the left
    CameraInfo header.  (``stereo_image_proc`` point clouds skip this
    rotation, so they are in the rectified frame; the two differ by R_left,
    typically a fraction of a degree to a few degrees.)

    Args:
        left, right: the two cameras; ``right.P`` must project from the left
            rectified frame (ROS stereo convention).
        uv_left, uv_right: (N, 2) pixels of the same N keypoints in each view
            (raw pixels unless ``points_are_rectified``); NaN rows = missing.
        refine: run the LM refinement after the DLT.
        max_reprojection_error_px: reject points whose RMS reprojection error
            over the two views exceeds this (rectified pixels).
        min_depth: reject points whose depth in either camera is <= this
            (metres); 0 rejects points at or behind a camera.
        points_are_rectified: the pixels are already in the rectified images.

    Returns:
        :class:`StereoTriangulation`.

    Raises:
        ValueError: on wrong shapes.
        CalibrationError: if the baseline is zero (same P for both views).
    """
    uv_l = as_points('uv_left', uv_left)
    uv_r = as_points('uv_right', uv_right)
    if uv_l.shape != uv_r.shape:
        raise ValueError(f'uv_left {uv_l.shape} and uv_right {uv_r.shape} differ in shape')
    if stereo_baseline(left, right) <= 1e-12:
        raise CalibrationError('left and right P have the same centre: zero stereo baseline')
    n = uv_l.shape[0]
    finite_in = np.all(np.isfinite(uv_l), axis=1) & np.all(np.isfinite(uv_r), axis=1)
    if points_are_rectified:
        rect_l, rect_r = uv_l.copy(), uv_r.copy()
    else:
        rect_l, rect_r = rectify_points(left, uv_l), rectify_points(right, uv_r)
    finite_in &= np.all(np.isfinite(rect_l), axis=1) & np.all(np.isfinite(rect_r), axis=1)
    rect_l[~finite_in] = np.nan
    rect_r[~finite_in] = np.nan

    X = triangulate_dlt(left.P, right.P, rect_l, rect_r)
    if refine:
        X = refine_triangulation(left.P, right.P, rect_l, rect_r, X)
    finite_x = finite_in & np.all(np.isfinite(X), axis=1)
    with np.errstate(invalid='ignore', over='ignore'):
        depth = np.minimum(point_depth(left.P, X), point_depth(right.P, X))
        err = np.sqrt(0.5 * (reprojection_error(left.P, X, rect_l) ** 2
                             + reprojection_error(right.P, X, rect_r) ** 2))
    err[~finite_x] = np.nan

    reason = np.full(n, REASON_VALID, dtype=object)
    with np.errstate(invalid='ignore'):
        reason[finite_in & ~finite_x] = REASON_DEGENERATE
        reason[finite_x & ~(depth > min_depth)] = REASON_BEHIND_CAMERA
        reason[finite_x & (depth > min_depth) & ~(err <= max_reprojection_error_px)] = \
            REASON_REPROJECTION_ERROR
    reason[~finite_in] = REASON_NON_FINITE_INPUT
    valid = reason == REASON_VALID

    X_rect = np.where(valid[:, None], X, np.nan)
    xyz = (X_rect - camera_center(left.P)) @ left.R  # rows: R^T @ (X - C)
    return StereoTriangulation(xyz=xyz, reprojection_error_px=err, valid=valid.astype(bool),
                               reason=tuple(str(r) for r in reason), uv_left_rect=rect_l,
                               uv_right_rect=rect_r, xyz_rect=X_rect)
