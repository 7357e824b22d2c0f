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
"""Choosing keypoint peaks that agree across views and with the object's template.

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
candidate sets the network proposes.

When at least three keypoints are triangulated, the fitted template predicts
where the missing ones must be in both images;
:func:`complete_from_template` looks for a (weaker) belief peak there, a
guided search in the spirit of the "guided matching" step of Hartley and
Zisserman (2nd ed., 11.6) applied to belief maps.
"""

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .camera import camera_center, CameraModel, stereo_baseline
from .distortion import rectify_points, unrectify_points
from .heatmaps import heatmap_to_image, image_to_heatmap, refine_peak
from .rigid import fit_rigid_transform
from .symmetry import SymmetryGroup
from .triangulation import stereo_point_sigma, triangulate_dlt


@dataclass
class StereoSelection:
    """Chosen peaks, per keypoint.

    Attributes:
        left_index, right_index: (J,) int candidate index in each view
            (-1 = none chosen).
        right_keypoint: (J,) int which right-view keypoint's candidates the
            match came from (differs from j when the views are labelled
            differently under a symmetry), -1 when none.
        score: summed belief product of the chosen candidates.
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
    P_l, P_r = left.P, right.P
    if abs(P_r[0, 3]) < abs(P_r[1, 3]):
        return None  # vertical rig: not handled here
    sign = 1.0 if P_r[0, 3] < 0 else -1.0  # right camera at +x: u_left > u_right
    j_count, k_count = uv_left.shape[:2]

    def rect(cam, uv):
        flat = uv.reshape(-1, 2)
        out = np.full_like(flat, np.nan)
        ok = np.all(np.isfinite(flat), axis=1)
        if ok.any():
            out[ok] = flat[ok] if points_are_rectified else rectify_points(cam, flat[ok])
        return out.reshape(uv.shape)

    rl, rr = rect(left, uv_left), rect(right, uv_right)
    perms = SymmetryGroup.of(symmetries, j_count).permutations
    group = {j: {j} for j in range(j_count)}
    for g in interchangeable:
        for j in g:
            group[int(j)] = {int(k) for k in g}
    pairs = []  # per keypoint: list of (score, left_keypoint, a, right_keypoint, b, X)
    for j in range(j_count):
        own_right = {int(p[j]) for p in perms}
        right_maps = sorted(set().union(*[group[k] for k in own_right]))
        cands = []
        for lk in sorted(group[j]):
            for a in range(k_count):
                if conf_left[lk, a] < min_confidence or not np.isfinite(rl[lk, a]).all():
                    continue
                for rk in right_maps:
                    w = (1.0 if lk == j else cross_label_weight) * \
                        (1.0 if rk in own_right else cross_label_weight)
                    for b in range(k_count):
                        if conf_right[rk, b] < min_confidence or \
                                not np.isfinite(rr[rk, b]).all():
                            continue
                        if abs(rl[lk, a, 1] - rr[rk, b, 1]) > epipolar_tolerance_px or \
                                sign * (rl[lk, a, 0] - rr[rk, b, 0]) <= 0:
                            continue
                        cands.append((w * float(conf_left[lk, a] * conf_right[rk, b]),
                                      lk, a, rk, b))
        cands.sort(key=lambda c: -c[0])
        cands = cands[:max_pairs_per_keypoint]
        if cands:
            X = triangulate_dlt(P_l, P_r, np.array([rl[c[1], c[2]] for c in cands]),
                                np.array([rr[c[3], c[4]] for c in cands]))
            cands = [c + (X[i],) for i, c in enumerate(cands)]
        pairs.append(cands)
    n_options = [len(c) + 1 for c in pairs]  # +1: keypoint left out
    if np.prod(n_options, dtype=float) > max_combinations:
        return None
    d_ref = np.linalg.norm(template[:, None] - template[None], axis=2)
    c_left = camera_center(P_l)
    # pairwise shape consistency of candidate pairs, one table per keypoint pair
    X = [np.array([c[5] for c in cands]).reshape(-1, 3) for cands in pairs]
    f, b = P_l[0, 0], stereo_baseline(left, right)
    noisy = localization_sigma_px > 0 and f > 0 and b > 0
    consistent = {}
    for j in range(j_count):
        for k in range(j + 1, j_count):
            d = np.linalg.norm(X[j][:, None] - X[k][None], axis=2)
            allowed = distance_tolerance * d_ref[j, k]
            if noisy:
                # capped: beyond half the distance a shape check tells nothing apart
                # (and one peak offered to two keypoints, distance 0, never passes)
                allowed = np.clip(2.0 * distance_sigma(X[j] - c_left, X[k] - c_left, f, b,
                                                       localization_sigma_px),
                                  allowed, max(allowed, 0.5 * d_ref[j, k]))
            consistent[j, k] = np.abs(d - d_ref[j, k]) <= allowed
    scores = [[c[0] for c in cands] for cands in pairs]
    rest = np.cumsum([max(sc, default=0.0) for sc in scores][::-1])[::-1].tolist() + [0.0]
    best = [None, -np.inf]

    def visit(j, chosen, score):
        # depth-first over keypoints in itertools.product order (leave out first),
        # pruned by shape consistency and by the best reachable score
        if j == j_count:
            if len(chosen) >= 3 and score > best[1]:
                idx = [k for k, _ in chosen]
                pts = np.array([X[k][c] for k, c in chosen])
                if visible_side is None or faces_camera(template[idx], pts - c_left,
                                                        visible_side):
                    best[0], best[1] = list(chosen), score
            return
        if score + rest[j] <= best[1] or len(chosen) + (j_count - j) < 3:
            return
        visit(j + 1, chosen, score)
        for c in range(len(pairs[j])):
            if all(consistent[k, j][ck, c] for k, ck in chosen):
                visit(j + 1, chosen + [(j, c)], score + scores[j][c])

    visit(0, [], 0.0)
    if best[0] is None:
        return None
    li, ri, lk, rk = (np.full(j_count, -1) for _ in range(4))
    for j, c in best[0]:
        _, lk[j], li[j], rk[j], ri[j], _ = pairs[j][c]
    return StereoSelection(li, ri, rk, float(best[1]), lk)


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


def local_peak(belief: np.ndarray, cell: np.ndarray, radius: int
               ) -> Tuple[Optional[np.ndarray], float]:
    """Belief peak near a predicted cell, refined to sub-cell.

    Within ``radius`` cells of ``cell`` the cell maximizing
    ``belief * exp(-d^2 / (2 sigma^2))``, ``sigma = radius / 2`` and ``d``
    the distance to the prediction, is chosen (the maximum a posteriori
    position under a Gaussian prior of the prediction's error), so that a
    weaker peak at the prediction beats a stronger one at the window's edge.

    Args:
        belief: (h, w) float belief map.
        cell: (2,) float (u, v) cell coordinates of the predicted position.
        radius: half-size of the square search window, cells (>= 1).

    Returns:
        ((2,) float64 refined (u, v) cells, belief at the chosen cell) or
        (None, 0.0) when the window lies outside the map or the prediction
        is not finite.
    """
    h, w = belief.shape
    if not np.all(np.isfinite(cell)):
        return None, 0.0
    u0, v0 = int(round(cell[0])), int(round(cell[1]))
    r0, r1 = max(v0 - radius, 0), min(v0 + radius + 1, h)
    c0, c1 = max(u0 - radius, 0), min(u0 + radius + 1, w)
    if r0 >= r1 or c0 >= c1:
        return None, 0.0
    vv, uu = np.mgrid[r0:r1, c0:c1]
    d2 = (uu - cell[0]) ** 2 + (vv - cell[1]) ** 2
    score = belief[r0:r1, c0:c1] * np.exp(-d2 / (2 * (max(radius, 1) / 2.0) ** 2))
    dv, du = np.unravel_index(int(np.argmax(score)), score.shape)
    u, v = c0 + int(du), r0 + int(dv)
    return np.array(refine_peak(belief, u, v)), float(belief[v, u])


def complete_from_template(
        left: CameraModel, right: CameraModel, beliefs_left: np.ndarray,
        beliefs_right: np.ndarray, image_size_left: Tuple[int, int],
        image_size_right: Tuple[int, int], predicted_rect: np.ndarray, missing: np.ndarray,
        points_are_rectified: bool = False, search_radius_cells: int = 2,
        min_belief: float = 0.05, offset_left: Tuple[float, float] = (0.0, 0.0),
        offset_right: Tuple[float, float] = (0.0, 0.0)
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Look for missing keypoints where the fitted template predicts them.

    Each missing keypoint's predicted 3D position is projected into both
    images (:func:`~.distortion.unrectify_points`, or ``P`` directly for
    rectified input), mapped to belief cells, and the highest belief within
    ``search_radius_cells`` is taken (sub-cell refined) if it reaches
    ``min_belief`` in BOTH views.  The caller triangulates the result and
    checks it against the prediction.

    Args:
        left, right: the stereo cameras.
        beliefs_left, beliefs_right: (J, h, w) float belief maps, labelled
            alike (right relabelled to agree with left).
        image_size_left, image_size_right: (width, height) of the image
            window each view's belief maps cover (the whole image, or a
            region of interest).
        predicted_rect: (J, 3) float predicted keypoints in the left
            rectified frame (frame of ``P``), metres.
        missing: (J,) bool, the keypoints to look for.
        points_are_rectified: the images are rectified (use ``P``).
        search_radius_cells: half-size of the search window, belief cells.
        min_belief: lowest belief accepted, in both views.
        offset_left, offset_right: (x0, y0) of each window in its image,
            pixels.

    Returns:
        uv_left, uv_right: (J, 2) float64 image pixels, NaN where not found.
        conf_left, conf_right: (J,) float32 beliefs (0 where not found).

    Raises:
        ValueError: if the belief maps or predictions do not have J rows.
    """
    predicted_rect, uv, conf = _completion_outputs(beliefs_left, beliefs_right, predicted_rect)
    views = ((left, beliefs_left, image_size_left, offset_left),
             (right, beliefs_right, image_size_right, offset_right))
    idx = np.flatnonzero(np.asarray(missing, dtype=bool))
    if idx.size == 0:
        return uv[0], uv[1], conf[0], conf[1]
    found = []
    for view in views:
        cells = _view_cells(view, predicted_rect[idx], points_are_rectified)[1]
        found.append([local_peak(view[1][j], c, search_radius_cells)
                      for j, c in zip(idx, cells)])
    for n, j in enumerate(idx):
        (cl, bl), (cr, br) = found[0][n], found[1][n]
        if cl is None or cr is None or min(bl, br) < min_belief:
            continue
        for k, (c, b) in enumerate(((cl, bl), (cr, br))):
            _, beliefs, size, offset = views[k]
            uv[k][j] = heatmap_to_image(c, (beliefs.shape[2], beliefs.shape[1]), size, offset)
            conf[k][j] = b
    return uv[0], uv[1], conf[0], conf[1]


def _completion_outputs(beliefs_left: np.ndarray, beliefs_right: np.ndarray,
                        predicted_rect: np.ndarray):
    """Check a completion search's inputs and make its empty outputs.

    Returns:
        (J, 3) float64 predictions, [uv_left, uv_right] (J, 2) NaN arrays and
        [conf_left, conf_right] (J,) float32 zeros.

    Raises:
        ValueError: if the belief maps or predictions do not have J rows.
    """
    j_count = beliefs_left.shape[0]
    predicted_rect = np.asarray(predicted_rect, dtype=np.float64)
    if beliefs_right.shape[0] != j_count or predicted_rect.shape != (j_count, 3):
        raise ValueError(f'need {j_count} belief maps per view and ({j_count}, 3) '
                         f'predictions, got {beliefs_right.shape} and {predicted_rect.shape}')
    uv = [np.full((j_count, 2), np.nan), np.full((j_count, 2), np.nan)]
    conf = [np.zeros(j_count, np.float32), np.zeros(j_count, np.float32)]
    return predicted_rect, uv, conf


def _view_cells(view, X_rect: np.ndarray, points_are_rectified: bool):
    """Project (N, 3) left rectified points (metres) into one view and its belief map.

    Args:
        view: (camera, (J, h, w) beliefs, (width, height) window size in
            pixels, (x0, y0) window offset in pixels).
        X_rect: (N, 3) points in the left rectified frame (frame of ``P``).
        points_are_rectified: the images are rectified (use ``P``), else
            raw (:func:`~.distortion.unrectify_points`).

    Returns:
        (N, 2) float64 image pixels and (N, 2) float64 belief cells, NaN for
        points at or behind the camera.
    """
    camera, beliefs, size, offset = view
    if points_are_rectified:
        h = X_rect @ camera.P[:, :3].T + camera.P[:, 3]
        with np.errstate(divide='ignore', invalid='ignore'):
            pix = np.where(h[:, 2:3] > 0, h[:, :2] / h[:, 2:3], np.nan)
    else:
        pix = unrectify_points(camera, X_rect)
    return pix, image_to_heatmap(pix, size, (beliefs.shape[2], beliefs.shape[1]), offset)


def sample_belief(belief: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Bicubic belief at sub-cell positions, 0 outside the map.

    Bicubic (``cv2.remap`` with ``INTER_CUBIC``, cubic convolution after
    Keys 1981; positions quantized to 1/32 cell) rather than bilinear
    interpolation, whose maxima snap to cell centres: a belief blob a few
    cells wide then peaks within a few hundredths of a cell of its true
    centre.

    Args:
        belief: (h, w) float belief map.
        cells: (N, 2) float (u, v) cell coordinates (pixel-centre
            convention of :func:`~.heatmaps.image_to_heatmap`); NaN allowed.

    Returns:
        (N,) float64 beliefs; 0 for NaN positions and outside the map
        (values within two cells of the border blend with zeros).
    """
    cells = np.asarray(cells, dtype=np.float64).reshape(-1, 2)
    if not len(cells):
        return np.zeros(0)
    maps = np.nan_to_num(cells, nan=-1e4, posinf=-1e4, neginf=-1e4)
    maps = np.clip(maps, -1e4, 1e4).astype(np.float32)
    out = cv2.remap(np.ascontiguousarray(belief, dtype=np.float32), maps[:, :1].copy(),
                    maps[:, 1:].copy(), cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=0.0)
    return out.reshape(-1).astype(np.float64)


def stereo_belief_search(
        left: CameraModel, right: CameraModel, beliefs_left: np.ndarray,
        beliefs_right: np.ndarray, image_size_left: Tuple[int, int],
        image_size_right: Tuple[int, int], predicted_rect: np.ndarray, missing: np.ndarray,
        points_are_rectified: bool = False, search_radius_cells: int = 2,
        min_belief: float = 0.05, offset_left: Tuple[float, float] = (0.0, 0.0),
        offset_right: Tuple[float, float] = (0.0, 0.0)
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Look for missing keypoints as the 3D point both views' beliefs agree on most.

    A drop-in for :func:`complete_from_template` (same arguments and
    outputs), but instead of taking each view's own peak near the
    prediction (two peaks whose stereo match may then fail the reprojection
    check), the search runs over 3D points near the prediction: the point
    maximizing

        b_L(pi_L(X)) g(pi_L(X)) * b_R(pi_R(X)) g(pi_R(X)),

    with ``b`` the belief sampled by :func:`sample_belief`, ``pi`` the
    projection into each view's belief map and ``g`` the Gaussian prior of
    :func:`local_peak` (sigma half the search radius, centred on the
    prediction's projection).
    It is the per-view criterion of :func:`local_peak` restricted to pairs
    that satisfy the epipolar constraint, i.e. the fusion of two views' heat
    maps along epipolar lines (Qiu et al., "Cross View Fusion for 3D Human
    Pose Estimation", ICCV 2019; the product of independent per-view
    likelihoods).  The points are parametrized by left rectified pixel
    (u, v) and inverse depth, so that one grid step moves each projection by
    about one belief cell; the search is coarse to fine (+-radius cells in
    steps of one cell, then +-1 cell in quarter cells, then +-1/4 cell in
    sixteenths).  The two returned pixels are projections of one 3D point,
    so their stereo reprojection error is zero up to rounding; the caller
    still checks that point against the prediction.

    Args:
        left, right: the stereo cameras (a rig with a baseline).
        beliefs_left, beliefs_right: (J, h, w) float belief maps, labelled
            alike (right relabelled to agree with left).
        image_size_left, image_size_right: (width, height) in pixels of the
            image window each view's belief maps cover.
        predicted_rect: (J, 3) float predicted keypoints in the left
            rectified frame (frame of ``P``), metres.
        missing: (J,) bool, the keypoints to look for.
        points_are_rectified: the images are rectified (use ``P``).
        search_radius_cells: half-size of the coarse search, in left belief
            cells along each of u, v and disparity.
        min_belief: lowest belief accepted at the point's projection, in
            both views.
        offset_left, offset_right: (x0, y0) of each window in its image,
            pixels.

    Returns:
        uv_left, uv_right: (J, 2) float64 image pixels, NaN where the best
        point has a belief below ``min_belief`` in either view (or no
        prediction, or a rig without baseline).
        conf_left, conf_right: (J,) float32 beliefs there (0 where not found).

    Raises:
        ValueError: if the belief maps or predictions do not have J rows.
    """
    predicted_rect, uv, conf = _completion_outputs(beliefs_left, beliefs_right, predicted_rect)
    views = ((left, beliefs_left, image_size_left, offset_left),
             (right, beliefs_right, image_size_right, offset_right))
    hm_size = (beliefs_left.shape[2], beliefs_left.shape[1])
    step_px = image_size_left[0] / hm_size[0]  # one left belief cell, pixels
    radius = max(int(search_radius_cells), 1)
    sigma2 = (radius / 2.0) ** 2
    M, p4 = left.P[:, :3], left.P[:, 3]
    levels = ((1.0, radius), (0.25, 4), (1.0 / 16.0, 4))
    for j in np.flatnonzero(np.asarray(missing, dtype=bool)):
        x0 = predicted_rect[j]
        h0 = M @ x0 + p4
        if not np.all(np.isfinite(x0)) or h0[2] <= 0:
            continue
        hr = right.P[:, :3] @ x0 + right.P[:, 3]
        if hr[2] <= 0:
            continue
        disparity = float(np.hypot(h0[0] / h0[2] - hr[0] / hr[2], h0[1] / h0[2] - hr[1] / hr[2]))
        if not disparity > 1e-3:
            continue
        s0 = 1.0 / h0[2]
        prior = [_view_cells(view, x0[None], points_are_rectified)[1][0] for view in views]
        centre = np.array([h0[0] * s0, h0[1] * s0, s0])
        per_step = np.array([step_px, step_px, step_px * s0 / disparity])
        best = None
        for step, half in levels:
            k = np.arange(-half, half + 1) * step
            a, b_, c = (g.ravel() for g in np.meshgrid(k, k, k, indexing='ij'))
            grid = centre + np.stack([a, b_, c], axis=1) * per_step
            grid = grid[grid[:, 2] > 0]
            hom = np.stack([grid[:, 0], grid[:, 1], np.ones(len(grid))], axis=1) / grid[:, 2:3]
            X = np.linalg.solve(M, (hom - p4).T).T
            score = np.ones(len(X))
            for view, c0 in zip(views, prior):
                cells = _view_cells(view, X, points_are_rectified)[1]
                d2 = np.nan_to_num(np.sum((cells - c0) ** 2, axis=1), nan=np.inf)
                score *= sample_belief(view[1][j], cells) * np.exp(-d2 / (2 * sigma2))
            if not score.size or not score.max() > 0:
                best = None
                break
            top = int(np.argmax(score))
            best, centre = X[top], grid[top]
        if best is None:
            continue
        found = []
        for view in views:
            pix, cells = _view_cells(view, best[None], points_are_rectified)
            found.append((pix[0], float(sample_belief(view[1][j], cells)[0])))
        if min(found[0][1], found[1][1]) < min_belief:
            continue
        for k, (pix, belief) in enumerate(found):
            uv[k][j], conf[k][j] = pix, belief
    return uv[0], uv[1], conf[0], conf[1]
