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
"""Choosing keypoint peaks that agree across the two views and with the object's template.

A belief map can peak on a distractor (a keyboard, a picture of the object).
With several peaks per keypoint and view, the stereo rig and the object's
rigid template give two independent checks:

1. epipolar: a left and a right peak can be the same 3D point only if they lie
   on the same rectified row (horizontal rig) with positive disparity;
2. shape: the triangulated keypoints must reproduce the template's pairwise
   distances (a rigid motion preserves them).

Among the combinations (one stereo candidate or none per keypoint, at least
three) whose pairwise distances all match the template within a relative
tolerance, the one with the largest summed belief wins.  This is hypothesis
selection in the spirit of RANSAC (Fischler and Bolles 1981) over the small
candidate sets the network proposes.  No ROS import.
"""

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .camera import camera_center, CameraModel, stereo_baseline
from .distortion import rectify_points
from .rigid import fit_rigid_transform
from .symmetry import SymmetryGroup
from .triangulation import stereo_point_sigma, triangulate_dlt


@dataclass(frozen=True, eq=False)
class StereoCandidate:
    """One left/right peak pair that may be a keypoint (a stereo match hypothesis).

    Attributes:
        score: belief product of the two peaks times ``cross_label_weight``
            for each peak taken from another keypoint's map (dimensionless).
        left_keypoint: index of the left belief map the left peak comes from.
        left_index: index of that peak among the left map's candidates.
        right_keypoint: index of the right belief map the right peak comes from.
        right_index: index of that peak among the right map's candidates.
        point_rect: (3,) float64 DLT triangulation of the pair in the left
            RECTIFIED frame (the frame ``P_left`` projects from), metres.
    """

    score: float
    left_keypoint: int
    left_index: int
    right_keypoint: int
    right_index: int
    point_rect: np.ndarray


#: point_rect of a candidate before its triangulation
_NOT_TRIANGULATED = np.full(3, np.nan)
_NOT_TRIANGULATED.setflags(write=False)


@dataclass(frozen=True, eq=False)
class StereoSelection:
    """Chosen peaks, per keypoint.

    Attributes:
        left_index, right_index: (J,) int candidate index in each view
            (-1 = none chosen).
        right_keypoint: (J,) int which right-view keypoint's candidates the
            match came from (differs from j when the views are labelled
            differently under a symmetry), -1 when none.
        score: summed candidate scores (:attr:`StereoCandidate.score`) of
            the chosen pairs.
        left_keypoint: (J,) int which left-view keypoint's candidates the
            match came from (differs from j only with ``interchangeable``
            keypoints), -1 when none; None means ``j``.
    """

    left_index: np.ndarray
    right_index: np.ndarray
    right_keypoint: np.ndarray
    score: float
    left_keypoint: Optional[np.ndarray] = None


def select_consistent_candidates(
        left: CameraModel, right: CameraModel, uv_left: np.ndarray, conf_left: np.ndarray,
        uv_right: np.ndarray, conf_right: np.ndarray, template: np.ndarray,
        symmetries: Union[SymmetryGroup, Sequence[Sequence[int]]] = (),
        points_are_rectified: bool = False,
        min_confidence: float = 0.1, epipolar_tolerance_px: float = 4.0,
        distance_tolerance: float = 0.15, max_pairs_per_keypoint: int = 4,
        max_combinations: int = 20000,
        visible_side: Optional[np.ndarray] = None,
        interchangeable: Sequence[Sequence[int]] = (),
        cross_label_weight: float = 0.5,
        localization_sigma_px: float = 0.0) -> Optional[StereoSelection]:
    """Choose one left/right peak pair per keypoint consistent with stereo and template.

    Args:
        left, right: camera models of a horizontal stereo rig.
        uv_left, uv_right: (J, K, 2) candidate pixels (raw, or rectified when
            ``points_are_rectified``), NaN-padded.
        conf_left, conf_right: (J, K) candidate beliefs.
        template: (J, 3) keypoints in the object frame, metres.
        symmetries: the object's :class:`~.symmetry.SymmetryGroup`, or its
            keypoint permutations (identity implied); right candidates of
            keypoint ``p[j]`` may match left keypoint j.
        min_confidence: candidates below this belief are ignored.
        epipolar_tolerance_px: max rectified row difference of a pair.
        distance_tolerance: max relative error of each pairwise distance
            (may be widened by ``localization_sigma_px``, see below).
        max_pairs_per_keypoint: best-scoring stereo pairs kept per keypoint.
        max_combinations: give up (return None) above this many hypotheses.
        visible_side: (3,) outward normal, in the object frame, of the only
            side the keypoints can be seen from (a printed target: its print
            side), or None.  Pairwise distances cannot tell a labelling from
            its mirror image; for a planar template the mirror image is the
            object seen from behind, which this rejects: the rigid fit
            (:func:`~.rigid.fit_rigid_transform`) must turn the normal
            towards the camera.
        interchangeable: groups of keypoints that look alike (e.g. the four
            extreme corners of a chessboard, whose identity depends on
            counting squares), so that a belief map may peak on another
            member's position.  A keypoint then also draws candidates from
            its group's other maps, with its belief scaled by
            ``cross_label_weight``, and the template's 3D shape (long side
            vs short side) decides the labels.
        cross_label_weight: score factor of a candidate from another map.
        localization_sigma_px: standard deviation of a peak's position in
            one view, pixels (the network's localization noise).  A far
            object seen with a short baseline has a small disparity, so a
            few pixels of noise move its triangulated keypoints by
            centimetres (:func:`~.triangulation.stereo_point_sigma`); a pair of
            keypoints then passes if ``|d - d_ref| <= max(distance_tolerance
            * d_ref, min(2 sigma_d, d_ref / 2))``
            (:func:`distance_sigma`).  0 disables this allowance.

    Returns:
        :class:`StereoSelection`, or None when no combination of at least
        three keypoints is consistent (or the rig is not horizontal).
    """
    P_left, P_right = left.P, right.P
    if abs(P_right[0, 3]) < abs(P_right[1, 3]):
        return None  # vertical rig: not handled here
    sign = 1.0 if P_right[0, 3] < 0 else -1.0  # right camera at +x: u_left > u_right
    num_keypoints = uv_left.shape[0]
    rect_left = _rectified_candidates(left, uv_left, points_are_rectified)
    rect_right = _rectified_candidates(right, uv_right, points_are_rectified)
    permutations = SymmetryGroup.of(symmetries, num_keypoints).permutations
    lookalikes = {j: {j} for j in range(num_keypoints)}
    for members in interchangeable:
        for j in members:
            lookalikes[int(j)] = {int(k) for k in members}
    candidates = [
        _stereo_candidates(j, permutations, lookalikes, rect_left, conf_left, rect_right,
                           conf_right, sign, min_confidence,
                           epipolar_tolerance_px, cross_label_weight,
                           max_pairs_per_keypoint)
        for j in range(num_keypoints)]
    candidates = _triangulated(candidates, rect_left, rect_right, P_left, P_right)
    num_options = [len(c) + 1 for c in candidates]  # +1: keypoint left out
    if np.prod(num_options, dtype=float) > max_combinations:
        return None
    consistent = _pairwise_consistency(candidates, template, left, right, distance_tolerance,
                                       localization_sigma_px)
    chosen, score = _best_combination(candidates, consistent, template, camera_center(P_left),
                                      visible_side)
    if chosen is None:
        return None
    left_index, right_index, left_keypoint, right_keypoint = (
        np.full(num_keypoints, -1) for _ in range(4))
    for j, c in chosen:
        candidate = candidates[j][c]
        left_keypoint[j], left_index[j] = candidate.left_keypoint, candidate.left_index
        right_keypoint[j], right_index[j] = candidate.right_keypoint, candidate.right_index
    return StereoSelection(left_index, right_index, right_keypoint, float(score), left_keypoint)


def _rectified_candidates(camera: CameraModel, uv: np.ndarray,
                          points_are_rectified: bool) -> np.ndarray:
    """Return (J, K, 2) candidate pixels in the rectified image (a new array; NaN kept)."""
    flat = uv.reshape(-1, 2)
    out = np.full_like(flat, np.nan)
    ok = np.all(np.isfinite(flat), axis=1)
    if ok.any():
        out[ok] = flat[ok] if points_are_rectified else rectify_points(camera, flat[ok])
    return out.reshape(uv.shape)


def _stereo_candidates(j: int, permutations, lookalikes: Dict[int, set], rect_left: np.ndarray,
                       conf_left: np.ndarray, rect_right: np.ndarray, conf_right: np.ndarray,
                       sign: float,
                       min_confidence: float, epipolar_tolerance_px: float,
                       cross_label_weight: float, max_pairs: int) -> List[StereoCandidate]:
    """Return keypoint j's best epipolar-consistent peak pairs, highest score first.

    Left peaks come from j's own map and its look-alikes' maps, right peaks
    from the maps of j's symmetric images (``p[j]`` for every permutation p)
    and their look-alikes; a peak from another keypoint's map has its
    belief scaled by ``cross_label_weight``.  A pair must lie on the same
    rectified row (within ``epipolar_tolerance_px``) with positive disparity
    (``sign`` * (u_left - u_right) > 0).  At most ``max_pairs`` are kept (a
    stable sort: ties keep the enumeration order), not yet triangulated
    (:func:`_triangulated`).  All pairs are tested at once: enumeration order
    is left map, left peak, right map, right peak.
    """
    num_candidates = rect_left.shape[1]
    own_right = sorted({int(perm[j]) for perm in permutations})
    right_maps = sorted(set().union(*[lookalikes[k] for k in own_right]))
    left_map, a, right_map, b = (grid.ravel() for grid in np.meshgrid(
        sorted(lookalikes[j]), np.arange(num_candidates), right_maps,
        np.arange(num_candidates), indexing='ij'))
    left_uv, right_uv = rect_left[left_map, a], rect_right[right_map, b]
    left_belief, right_belief = conf_left[left_map, a], conf_right[right_map, b]
    keep = (~(left_belief < min_confidence) & np.isfinite(left_uv).all(axis=1)
            & ~(right_belief < min_confidence) & np.isfinite(right_uv).all(axis=1))
    with np.errstate(invalid='ignore'):
        keep &= ~(np.abs(left_uv[:, 1] - right_uv[:, 1]) > epipolar_tolerance_px)
        keep &= ~(sign * (left_uv[:, 0] - right_uv[:, 0]) <= 0)
    weight = (np.where(left_map == j, 1.0, cross_label_weight)
              * np.where(np.isin(right_map, own_right), 1.0, cross_label_weight))
    scores = weight * (left_belief * right_belief).astype(np.float64)
    kept = np.flatnonzero(keep)
    best = kept[np.argsort(-scores[kept], kind='stable')[:max_pairs]]
    return [StereoCandidate(score=float(scores[n]), left_keypoint=int(left_map[n]),
                            left_index=int(a[n]), right_keypoint=int(right_map[n]),
                            right_index=int(b[n]), point_rect=_NOT_TRIANGULATED)
            for n in best]


def _triangulated(candidates: List[List[StereoCandidate]], rect_left: np.ndarray,
                  rect_right: np.ndarray, P_left: np.ndarray,
                  P_right: np.ndarray) -> List[List[StereoCandidate]]:
    """Return the candidates with ``point_rect`` set: every pair by DLT, in one batch."""
    flat = [candidate for pairs in candidates for candidate in pairs]
    if not flat:
        return candidates
    points = iter(triangulate_dlt(
        P_left, P_right, np.array([rect_left[c.left_keypoint, c.left_index] for c in flat]),
        np.array([rect_right[c.right_keypoint, c.right_index] for c in flat])))
    return [[replace(candidate, point_rect=next(points)) for candidate in pairs]
            for pairs in candidates]


def _pairwise_consistency(candidates: List[List[StereoCandidate]], template: np.ndarray,
                          left: CameraModel, right: CameraModel, distance_tolerance: float,
                          localization_sigma_px: float) -> Dict[Tuple[int, int], np.ndarray]:
    """Return, per keypoint pair (j, k), j < k, an (n_j, n_k) bool table of consistent pairs.

    Candidates c of j and d of k agree when the distance of their points is
    within the tolerance of the template's distance (see
    :func:`select_consistent_candidates`, ``localization_sigma_px``).
    """
    num_keypoints = len(candidates)
    d_ref = np.linalg.norm(template[:, None] - template[None], axis=2)
    centre_left = camera_center(left.P)
    points = [np.array([c.point_rect for c in cands]).reshape(-1, 3) for cands in candidates]
    focal, baseline = left.P[0, 0], stereo_baseline(left, right)
    noisy = localization_sigma_px > 0 and focal > 0 and baseline > 0
    consistent = {}
    for j in range(num_keypoints):
        for k in range(j + 1, num_keypoints):
            d = np.linalg.norm(points[j][:, None] - points[k][None], axis=2)
            allowed = distance_tolerance * d_ref[j, k]
            if noisy:
                # capped: beyond half the distance a shape check tells nothing apart
                # (and one peak offered to two keypoints, distance 0, never passes)
                allowed = np.clip(2.0 * distance_sigma(points[j] - centre_left,
                                                       points[k] - centre_left, focal,
                                                       baseline, localization_sigma_px),
                                  allowed, max(allowed, 0.5 * d_ref[j, k]))
            consistent[j, k] = np.abs(d - d_ref[j, k]) <= allowed
    return consistent


def _best_combination(candidates: List[List[StereoCandidate]],
                      consistent: Dict[Tuple[int, int], np.ndarray], template: np.ndarray,
                      centre_left: np.ndarray, visible_side: Optional[np.ndarray]
                      ) -> Tuple[Optional[List[Tuple[int, int]]], float]:
    """Return the highest-scoring consistent combination and its summed score.

    The combination is a list of (keypoint, candidate index) pairs, keypoints
    in increasing order.

    Depth-first over keypoints in ``itertools.product`` order (leave a
    keypoint out first), pruned by shape consistency and by the best score
    still reachable; at least three keypoints, and with ``visible_side`` the
    fit must face the camera (:func:`faces_camera`).  ``(None, -inf)`` if
    no combination qualifies.  Ties keep the first combination found.
    """
    num_keypoints = len(candidates)
    scores = [[c.score for c in cands] for cands in candidates]
    reachable = np.cumsum([max(s, default=0.0) for s in scores][::-1])[::-1].tolist() + [0.0]
    best: List = [None, -np.inf]

    def visit(j, chosen, score):
        if j == num_keypoints:
            if len(chosen) >= 3 and score > best[1]:
                keypoints = [k for k, _ in chosen]
                points = np.array([candidates[k][c].point_rect for k, c in chosen])
                if visible_side is None or faces_camera(template[keypoints],
                                                        points - centre_left, visible_side):
                    best[0], best[1] = list(chosen), score
            return
        if score + reachable[j] <= best[1] or len(chosen) + (num_keypoints - j) < 3:
            return
        visit(j + 1, chosen, score)
        for c in range(len(candidates[j])):
            if all(consistent[k, j][ck, c] for k, ck in chosen):
                visit(j + 1, chosen + [(j, c)], score + scores[j][c])

    visit(0, [], 0.0)
    return best[0], best[1]


def distance_sigma(points_a: np.ndarray, points_b: np.ndarray, focal_px: float,
                   baseline_m: float, sigma_px: float) -> np.ndarray:
    """Return the standard deviation (m) of the distance between two triangulated points.

    Each point's noise (:func:`~.triangulation.stereo_point_sigma`) is large
    along its viewing ray and small across it; only its component along
    the unit vector ``u`` joining the two points changes their distance, so

        sigma_d^2 = sum over both points of
                    (u . r)^2 sigma_z^2 + (1 - (u . r)^2) sigma_xy^2

    with ``r`` the point's unit viewing ray.  Both points' noise is taken at
    the nearer point's depth: a point triangulated too far away (a wrong
    match) must not widen its own allowance.  Two keypoints of a board seen
    face-on (``u`` across the rays) keep their distance however noisy
    their depths are.

    Args:
        points_a: (N, 3) float points, camera at the origin, metres.
        points_b: (M, 3) float points in the same frame.
        focal_px, baseline_m, sigma_px: as in
            :func:`~.triangulation.stereo_point_sigma`.

    Returns:
        (N, M) float64 standard deviations in metres.
    """
    a = np.asarray(points_a, dtype=np.float64)[:, None]
    b = np.asarray(points_b, dtype=np.float64)[None]
    u = b - a
    u = u / np.maximum(np.linalg.norm(u, axis=2, keepdims=True), 1e-12)
    sz, sxy = stereo_point_sigma(np.minimum(a[..., 2], b[..., 2]), focal_px, baseline_m,
                                 sigma_px)
    var = 0.0
    for p in (a, b):
        cos2 = np.sum(u * p, axis=2) ** 2 / np.maximum(np.sum(p * p, axis=2), 1e-24)
        var = var + cos2 * sz ** 2 + (1.0 - cos2) * sxy ** 2
    return np.sqrt(var)


def shape_consistent(points: np.ndarray, valid: np.ndarray, template: np.ndarray,
                     distance_tolerance: float = 0.15) -> np.ndarray:
    """Drop triangulated keypoints until all pairwise distances match the template.

    Used where no peak selection vouched for the points (its fallback to the
    highest peaks): while some pair of valid keypoints has a distance off by
    more than ``distance_tolerance`` (relative) from the template's, the
    keypoint in the most such pairs (ties: the larger summed relative error)
    is dropped.

    Args:
        points: (J, 3) float triangulated keypoints, metres (any frame).
        valid: (J,) bool, which rows hold a keypoint.
        template: (J, 3) float template keypoints, metres.
        distance_tolerance: max relative error of a pairwise distance.

    Returns:
        (J,) bool, the keypoints kept (a subset of ``valid``).
    """
    keep = np.asarray(valid, dtype=bool).copy()
    d = np.linalg.norm(points[:, None] - points[None], axis=2)
    d_ref = np.linalg.norm(template[:, None] - template[None], axis=2)
    with np.errstate(invalid='ignore', divide='ignore'):
        rel = np.abs(d - d_ref) / d_ref
    while keep.sum() >= 2:
        pair = keep[:, None] & keep[None] & ~np.eye(len(keep), dtype=bool)
        bad = pair & ~(rel <= distance_tolerance)
        if not bad.any():
            break
        count = bad.sum(axis=1)
        excess = np.where(bad, rel, 0.0).sum(axis=1)
        keep[np.lexsort((-excess, -count))[0]] = False
    return keep


def faces_camera(template: np.ndarray, points: np.ndarray, visible_side: np.ndarray) -> bool:
    """Whether the object side ``visible_side`` faces a camera at the origin.

    Args:
        template: (N >= 3, 3) object-frame keypoints, metres.
        points: (N, 3) the same keypoints in a camera frame (camera centre at
            the origin, e.g. the left rectified frame), metres.
        visible_side: (3,) outward normal of the visible side, object frame.

    Returns:
        True when the fitted rotation turns ``visible_side`` towards the
        camera (negative dot product with the ray to the points' centroid).
    """
    R, t, _ = fit_rigid_transform(template, points)
    return float((R @ np.asarray(visible_side, dtype=np.float64)) @ points.mean(axis=0)) < 0
