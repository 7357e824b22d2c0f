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
"""Completing a template fit: searching the belief maps where missing keypoints must be.

When at least three keypoints are triangulated, the fitted template predicts
where the missing ones must be in both images.  :func:`complete_from_template`
looks for a (weaker) belief peak there in each view, a guided search in the
spirit of the "guided matching" step of Hartley and Zisserman (2nd ed.,
11.6) applied to belief maps; :func:`stereo_belief_search` searches 3D
points near the prediction for the one both views' beliefs agree on most.
Both return new arrays and change nothing they are given.  No ROS import.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np

from .camera import CameraModel
from .distortion import unrectify_points
from .heatmaps import heatmap_to_image, image_to_heatmap, refine_peak


@dataclass(frozen=True, eq=False)
class BeliefView:
    """One view's belief maps and where they lie in its image.

    Attributes:
        camera: the view's camera.
        beliefs: (J, h, w) float belief maps (right view relabelled to agree
            with the left).
        window_size: (width, height) in pixels of the image window the maps
            cover (the whole image or a region of interest).
        window_offset: (x0, y0) of that window in the image, pixels.
    """

    camera: CameraModel
    beliefs: np.ndarray
    window_size: Tuple[int, int]
    window_offset: Tuple[float, float]

    @property
    def map_size(self) -> Tuple[int, int]:
        """Return (w, h), the belief maps' size in cells."""
        return (self.beliefs.shape[2], self.beliefs.shape[1])

    def project(self, points_rect: np.ndarray,
                points_are_rectified: bool) -> Tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) left rectified points (metres) into this view's image and belief maps.

        Args:
            points_rect: (N, 3) points in the left rectified frame (frame of
                ``P``), metres.
            points_are_rectified: the images are rectified (use ``P``), else
                raw (:func:`~.distortion.unrectify_points`).

        Returns:
            (N, 2) float64 image pixels and (N, 2) float64 belief cells, NaN
            for points at or behind the camera.
        """
        camera = self.camera
        if points_are_rectified:
            h = points_rect @ camera.P[:, :3].T + camera.P[:, 3]
            with np.errstate(divide='ignore', invalid='ignore'):
                pixels = np.where(h[:, 2:3] > 0, h[:, :2] / h[:, 2:3], np.nan)
        else:
            pixels = unrectify_points(camera, points_rect)
        return pixels, image_to_heatmap(pixels, self.window_size, self.map_size,
                                        self.window_offset)


@dataclass(frozen=True, eq=False)
class BeliefPeak:
    """A belief peak found by :func:`local_peak`.

    Attributes:
        cell: (2,) float64 sub-cell (u, v) position in the belief map
            (pixel-centre convention of :func:`~.heatmaps.image_to_heatmap`).
        belief: the belief at the chosen (integer) cell.
    """

    cell: np.ndarray
    belief: float


@dataclass(frozen=True, eq=False)
class CompletionResult:
    """Keypoints found by a completion search, per view.

    Attributes:
        uv_left, uv_right: (J, 2) float64 image pixels (OpenCV convention,
            raw or rectified like the input images), NaN where not found.
        confidence_left, confidence_right: (J,) float32 beliefs at those
            positions, 0 where not found.
    """

    uv_left: np.ndarray
    uv_right: np.ndarray
    confidence_left: np.ndarray
    confidence_right: np.ndarray


def local_peak(belief: np.ndarray, cell: np.ndarray, radius: int) -> Optional[BeliefPeak]:
    """Return the belief peak near a predicted cell, refined to sub-cell.

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
        :class:`BeliefPeak`, or None when the window lies outside the map
        or the prediction is not finite, or the window holds no finite belief.
    """
    h, w = belief.shape
    if not np.all(np.isfinite(cell)):
        return None
    u0, v0 = int(round(cell[0])), int(round(cell[1]))
    row0, row1 = max(v0 - radius, 0), min(v0 + radius + 1, h)
    col0, col1 = max(u0 - radius, 0), min(u0 + radius + 1, w)
    if row0 >= row1 or col0 >= col1:
        return None
    rows, cols = np.mgrid[row0:row1, col0:col1]
    d2 = (cols - cell[0]) ** 2 + (rows - cell[1]) ** 2
    score = belief[row0:row1, col0:col1] * np.exp(-d2 / (2 * (max(radius, 1) / 2.0) ** 2))
    score = np.nan_to_num(score, nan=-np.inf)  # a NaN cell (a backend's overflow) is no peak
    if not np.isfinite(score).any():
        return None
    dv, du = np.unravel_index(int(np.argmax(score)), score.shape)
    u, v = col0 + int(du), row0 + int(dv)
    return BeliefPeak(cell=np.array(refine_peak(belief, u, v)), belief=float(belief[v, u]))


def complete_from_template(
        left: CameraModel, right: CameraModel, beliefs_left: np.ndarray,
        beliefs_right: np.ndarray, image_size_left: Tuple[int, int],
        image_size_right: Tuple[int, int], predicted_rect: np.ndarray, missing: np.ndarray,
        points_are_rectified: bool = False, search_radius_cells: int = 2,
        min_belief: float = 0.05, offset_left: Tuple[float, float] = (0.0, 0.0),
        offset_right: Tuple[float, float] = (0.0, 0.0)
) -> 'CompletionResult':
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
        :class:`CompletionResult` (NaN pixels and zero beliefs where not
        found).

    Raises:
        ValueError: if the belief maps or predictions do not have J rows.
    """
    predicted_rect = _check_completion_inputs(beliefs_left, beliefs_right, predicted_rect)
    views = (BeliefView(left, beliefs_left, image_size_left, offset_left),
             BeliefView(right, beliefs_right, image_size_right, offset_right))
    uv, confidence = _empty_outputs(len(predicted_rect))
    missing_idx = np.flatnonzero(np.asarray(missing, dtype=bool))
    if missing_idx.size == 0:
        return CompletionResult(uv[0], uv[1], confidence[0], confidence[1])
    peaks: List[List[Optional[BeliefPeak]]] = []
    for view in views:
        cells = view.project(predicted_rect[missing_idx], points_are_rectified)[1]
        peaks.append([local_peak(view.beliefs[j], c, search_radius_cells)
                      for j, c in zip(missing_idx, cells)])
    for n, j in enumerate(missing_idx):
        pair = (peaks[0][n], peaks[1][n])
        if any(peak is None or not peak.belief >= min_belief for peak in pair):
            continue
        for k, (view, peak) in enumerate(zip(views, pair)):
            uv[k][j] = heatmap_to_image(peak.cell, view.map_size, view.window_size,
                                        view.window_offset)
            confidence[k][j] = peak.belief
    return CompletionResult(uv[0], uv[1], confidence[0], confidence[1])


def _check_completion_inputs(beliefs_left: np.ndarray, beliefs_right: np.ndarray,
                             predicted_rect: np.ndarray) -> np.ndarray:
    """Return the (J, 3) float64 predictions after checking that everything has J rows.

    Raises:
        ValueError: if the belief maps or predictions do not have J rows.
    """
    num_keypoints = beliefs_left.shape[0]
    predicted_rect = np.asarray(predicted_rect, dtype=np.float64)
    if beliefs_right.shape[0] != num_keypoints or predicted_rect.shape != (num_keypoints, 3):
        raise ValueError(f'need {num_keypoints} belief maps per view and ({num_keypoints}, 3) '
                         f'predictions, got {beliefs_right.shape} and {predicted_rect.shape}')
    return predicted_rect


def _empty_outputs(num_keypoints: int) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Return [uv_left, uv_right] (J, 2) NaN arrays and [conf_left, conf_right] (J,) zeros."""
    uv = [np.full((num_keypoints, 2), np.nan), np.full((num_keypoints, 2), np.nan)]
    confidence = [np.zeros(num_keypoints, np.float32), np.zeros(num_keypoints, np.float32)]
    return uv, confidence


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


#: Relative score difference below which :func:`stereo_belief_search` treats grid
#: points as equally good (and takes the one nearest the search's centre).
PLATEAU_TOLERANCE = 1e-6


def stereo_belief_search(
        left: CameraModel, right: CameraModel, beliefs_left: np.ndarray,
        beliefs_right: np.ndarray, image_size_left: Tuple[int, int],
        image_size_right: Tuple[int, int], predicted_rect: np.ndarray, missing: np.ndarray,
        points_are_rectified: bool = False, search_radius_cells: int = 2,
        min_belief: float = 0.05, offset_left: Tuple[float, float] = (0.0, 0.0),
        offset_right: Tuple[float, float] = (0.0, 0.0)
) -> 'CompletionResult':
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
    sixteenths); points within :data:`PLATEAU_TOLERANCE` of a level's best
    score count as equal, and the one nearest the level's centre is taken.
    The two returned pixels are projections of one 3D point,
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
        :class:`CompletionResult`: NaN pixels and zero beliefs where the
        best point has a belief below ``min_belief`` in either view (or no
        prediction, or a rig without baseline).

    Raises:
        ValueError: if the belief maps or predictions do not have J rows.
    """
    predicted_rect = _check_completion_inputs(beliefs_left, beliefs_right, predicted_rect)
    views = (BeliefView(left, beliefs_left, image_size_left, offset_left),
             BeliefView(right, beliefs_right, image_size_right, offset_right))
    uv, confidence = _empty_outputs(len(predicted_rect))
    step_px = image_size_left[0] / views[0].map_size[0]  # one left belief cell, pixels
    radius = max(int(search_radius_cells), 1)
    sigma2 = (radius / 2.0) ** 2
    M, p4 = left.P[:, :3], left.P[:, 3]
    levels = ((1.0, radius), (0.25, 4), (1.0 / 16.0, 4))
    for j in np.flatnonzero(np.asarray(missing, dtype=bool)):
        predicted = predicted_rect[j]
        left_h = M @ predicted + p4
        if not np.all(np.isfinite(predicted)) or left_h[2] <= 0:
            continue
        right_h = right.P[:, :3] @ predicted + right.P[:, 3]
        if right_h[2] <= 0:
            continue
        disparity = float(np.hypot(left_h[0] / left_h[2] - right_h[0] / right_h[2],
                                   left_h[1] / left_h[2] - right_h[1] / right_h[2]))
        if not disparity > 1e-3:
            continue
        inverse_depth = 1.0 / left_h[2]
        prior = [view.project(predicted[None], points_are_rectified)[1][0] for view in views]
        # grid coordinates: left rectified (u, v) in pixels and inverse depth
        centre = np.array([left_h[0] * inverse_depth, left_h[1] * inverse_depth, inverse_depth])
        per_step = np.array([step_px, step_px, step_px * inverse_depth / disparity])
        best = None
        for step, half in levels:
            offsets = np.arange(-half, half + 1) * step
            du, dv, ds = (g.ravel() for g in np.meshgrid(offsets, offsets, offsets,
                                                         indexing='ij'))
            offsets3 = np.stack([du, dv, ds], axis=1)
            grid = centre + offsets3 * per_step
            ahead = grid[:, 2] > 0
            offsets3, grid = offsets3[ahead], grid[ahead]
            hom = np.stack([grid[:, 0], grid[:, 1], np.ones(len(grid))], axis=1) / grid[:, 2:3]
            points = np.linalg.solve(M, (hom - p4).T).T
            score = np.ones(len(points))
            for view, prior_cell in zip(views, prior):
                cells = view.project(points, points_are_rectified)[1]
                d2 = np.nan_to_num(np.sum((cells - prior_cell) ** 2, axis=1), nan=np.inf)
                score *= sample_belief(view.beliefs[j], cells) * np.exp(-d2 / (2 * sigma2))
            if not score.size or not score.max() > 0:
                best = None
                break
            # a plateau (scores equal to PLATEAU_TOLERANCE, e.g. along a flat ridge of
            # the sampled beliefs) resolves to its point nearest the level's centre, so
            # that belief maps equal to 1e-6 (two backends) choose the same point
            near_top = np.flatnonzero(score >= score.max() * (1.0 - PLATEAU_TOLERANCE))
            top = int(near_top[np.argmin(np.sum(offsets3[near_top] ** 2, axis=1))])
            best, centre = points[top], grid[top]
        if best is None:
            continue
        found = []
        for view in views:
            pixels, cells = view.project(best[None], points_are_rectified)
            found.append((pixels[0], float(sample_belief(view.beliefs[j], cells)[0])))
        if min(found[0][1], found[1][1]) < min_belief:
            continue
        for k, (pixels, belief) in enumerate(found):
            uv[k][j], confidence[k][j] = pixels, belief
    return CompletionResult(uv[0], uv[1], confidence[0], confidence[1])
