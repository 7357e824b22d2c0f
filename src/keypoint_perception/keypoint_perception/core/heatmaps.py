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
"""Belief maps (heatmaps): Gaussian targets, peak decoding, coordinate maps.

Coordinates follow OpenCV: pixel centres at integer coordinates, (u, v) =
(column, row).  A belief map of stride ``s`` has cell ``(i, j)`` centred on
input pixel ``(s * j + (s - 1) / 2, s * i + (s - 1) / 2)``; see
:func:`heatmap_to_image`.

Decoding follows Heindl et al. 2020 (non-maximum suppression, then the highest
peak per keypoint) with sub-pixel refinement by a second-order Taylor expansion
of the log belief around the peak (Zhang et al. 2020, "Distribution-Aware
Coordinate Representation for Human Pose Estimation", DARK), which is exact
for a sampled Gaussian.
"""

from typing import Sequence, Tuple

import numpy as np

from .symmetry import check_mirror, SymmetryGroup


def gaussian_targets(uv: np.ndarray, present: np.ndarray, size: Tuple[int, int],
                     sigma: float) -> np.ndarray:
    """Render one Gaussian belief map per keypoint.

    Args:
        uv: (J, 2) float keypoint positions in belief-map cells (u = column).
        present: (J,) bool; False gives an all-zero map.
        size: (h, w) of the maps in cells.
        sigma: standard deviation in cells.

    Returns:
        (J, h, w) float32 maps with peak value 1 at the keypoint (values below
        exp(-4.5), i.e. beyond 3 sigma, are zeroed).
    """
    h, w = size
    uv = np.asarray(uv, dtype=np.float32).reshape(-1, 2)
    present = np.asarray(present, dtype=bool).reshape(-1)
    xs = np.arange(w, dtype=np.float32)[None, None, :]
    ys = np.arange(h, dtype=np.float32)[None, :, None]
    du2 = (xs - uv[:, 0, None, None]) ** 2
    dv2 = (ys - uv[:, 1, None, None]) ** 2
    maps = np.exp(-(du2 + dv2) / (2.0 * sigma * sigma))
    maps[maps < np.exp(-4.5)] = 0.0
    maps[~present | ~np.isfinite(uv).all(axis=1)] = 0.0
    return maps.astype(np.float32)


def nms_peaks(belief: np.ndarray, kernel: int = 3, threshold: float = 0.1,
              max_peaks: int = 10) -> np.ndarray:
    """Local maxima of one belief map (non-maximum suppression).

    Args:
        belief: (h, w) float belief map.
        kernel: odd side of the square neighbourhood a peak must dominate.
        threshold: minimum belief of a peak.
        max_peaks: keep at most this many, strongest first.

    Returns:
        (P, 3) float32 rows ``(u, v, belief)`` in integer cells, sorted by
        decreasing belief (P may be 0).
    """
    cells, scores = strongest_peaks(np.asarray(belief)[None], kernel, threshold, max_peaks)
    found = np.isfinite(scores[0])
    return np.concatenate([cells[0][found], scores[0][found, None]], axis=1).astype(np.float32)


def strongest_peaks(beliefs: np.ndarray, kernel: int = 3, threshold: float = 0.1,
                    max_peaks: int = 10) -> Tuple[np.ndarray, np.ndarray]:
    """Local maxima of several belief maps at once (non-maximum suppression).

    A peak is a cell at least as high as every cell of its ``kernel`` x
    ``kernel`` neighbourhood (cells outside the map do not count) and at
    least ``threshold``.  Equal beliefs keep row-major order.

    Args:
        beliefs: (J, h, w) float belief maps.
        kernel: odd side of the square neighbourhood a peak must dominate.
        threshold: minimum belief of a peak.
        max_peaks: K, peaks kept per map, strongest first.

    Returns:
        cells: (J, K, 2) int (u, v) cells of the peaks (column, row);
        scores: (J, K) beliefs of the peaks (the maps' dtype), -inf where a
        map has fewer than K peaks.

    Raises:
        ValueError: an even kernel.
    """
    if kernel % 2 == 0:
        raise ValueError('kernel must be odd')
    beliefs = np.asarray(beliefs)
    count, h, w = beliefs.shape
    r = kernel // 2
    padded = np.pad(beliefs, ((0, 0), (r, r), (r, r)), mode='constant',
                    constant_values=-np.inf)
    local_max = padded[:, :h, :w]
    for dy in range(kernel):
        for dx in range(kernel):
            local_max = np.maximum(local_max, padded[:, dy:dy + h, dx:dx + w])
    peak = (beliefs >= local_max) & (beliefs >= threshold)
    scores = np.where(peak, beliefs, -np.inf).reshape(count, -1)
    order = np.argsort(-scores, axis=1, kind='stable')[:, :max_peaks]
    top = np.take_along_axis(scores, order, axis=1)
    rows, columns = np.divmod(order, w)
    return np.stack([columns, rows], axis=2), top


def refine_peak(belief: np.ndarray, u: int, v: int) -> Tuple[float, float]:
    """Sub-cell position of the peak at integer cell (u, v).

    Newton step on log(belief) using central differences (DARK, Zhang et al.
    2020); falls back to the integer cell at the border, next to a NaN
    belief, or when the local Hessian is not negative definite.  The step is
    clipped to +-1 cell.

    Returns:
        (u, v) float cell coordinates.
    """
    return tuple(float(c) for c in refine_peaks(np.asarray(belief)[None], [0], [u], [v])[0])


def refine_peaks(beliefs: np.ndarray, maps, u, v) -> np.ndarray:
    """Sub-cell positions of several peaks at once, each as :func:`refine_peak`.

    Args:
        beliefs: (J, h, w) float belief maps.
        maps: (P,) int index of each peak's map.
        u, v: (P,) int cells (column, row) of the peaks.

    Returns:
        (P, 2) float64 (u, v) cell coordinates.
    """
    beliefs = np.asarray(beliefs)
    h, w = beliefs.shape[1:]
    maps, u, v = (np.asarray(a, dtype=np.intp).reshape(-1) for a in (maps, u, v))
    refined = np.stack([u, v], axis=1).astype(np.float64)
    inside = np.flatnonzero((1 <= u) & (u < w - 1) & (1 <= v) & (v < h - 1))
    if not len(inside):
        return refined
    maps, u, v = maps[inside], u[inside], v[inside]
    around = np.arange(-1, 2)
    patch = beliefs[maps[:, None, None], v[:, None, None] + around[:, None],
                    u[:, None, None] + around]
    patch = np.log(np.maximum(patch.astype(np.float64), 1e-10))
    dx = 0.5 * (patch[:, 1, 2] - patch[:, 1, 0])
    dy = 0.5 * (patch[:, 2, 1] - patch[:, 0, 1])
    dxx = patch[:, 1, 2] - 2 * patch[:, 1, 1] + patch[:, 1, 0]
    dyy = patch[:, 2, 1] - 2 * patch[:, 1, 1] + patch[:, 0, 1]
    dxy = 0.25 * (patch[:, 2, 2] - patch[:, 2, 0] - patch[:, 0, 2] + patch[:, 0, 0])
    det = dxx * dyy - dxy * dxy
    # a maximum (negative definite Hessian) of a finite neighbourhood; else the cell
    newton = np.isfinite(patch).all(axis=(1, 2)) & ~((dxx >= 0) | (det <= 1e-12))
    with np.errstate(divide='ignore', invalid='ignore'):
        off_u = -(dyy * dx - dxy * dy) / det
        off_v = -(dxx * dy - dxy * dx) / det
    rows = inside[newton]
    refined[rows, 0] = u[newton] + np.clip(off_u[newton], -1, 1)
    refined[rows, 1] = v[newton] + np.clip(off_v[newton], -1, 1)
    return refined


def decode_beliefs(beliefs: np.ndarray, nms_kernel: int = 3,
                   threshold: float = 0.1) -> Tuple[np.ndarray, np.ndarray]:
    """Decode the highest NMS peak of each belief map with sub-cell refinement.

    Args:
        beliefs: (J, h, w) float belief maps in [0, 1].
        nms_kernel: odd NMS neighbourhood in cells.
        threshold: peaks below this belief are not detections.

    Returns:
        uv: (J, 2) float64 positions in cells, NaN where no peak passed.
        confidence: (J,) float32 peak belief in [0, 1] (0 where no peak).
    """
    uv, conf = decode_candidates(beliefs, 1, nms_kernel, threshold)
    return uv[:, 0], conf[:, 0]


def image_to_heatmap(uv: np.ndarray, image_size: Tuple[int, int],
                     heatmap_size: Tuple[int, int],
                     offset: Tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Map image pixel coordinates to belief-map cell coordinates.

    Args:
        uv: (..., 2) pixel coordinates.
        image_size: (width, height) of the image window the belief map
            covers, pixels.
        heatmap_size: (width, height) of the belief map.
        offset: (x0, y0) pixel position of that window in the image (a
            region of interest; (0, 0) for the whole image).

    Returns:
        (..., 2) float64 cell coordinates (pixel-centre convention on both).
    """
    uv = np.asarray(uv, dtype=np.float64) - np.asarray(offset, dtype=np.float64)
    scale = np.array([heatmap_size[0] / image_size[0], heatmap_size[1] / image_size[1]])
    return (uv + 0.5) * scale - 0.5


def heatmap_to_image(uv: np.ndarray, heatmap_size: Tuple[int, int],
                     image_size: Tuple[int, int],
                     offset: Tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Inverse of :func:`image_to_heatmap` (sizes are (width, height)).

    Returns:
        (..., 2) float64 image pixels: the window's pixels plus ``offset``.
    """
    return image_to_heatmap(uv, heatmap_size, image_size) + np.asarray(offset, dtype=np.float64)


def canonical_symmetry_order(uv: np.ndarray, symmetries) -> np.ndarray:
    """Choose, among an object's symmetry permutations, a view-defined labelling.

    A symmetric object (e.g. a chessboard under 180 degree rotation) has several
    equally correct keypoint labellings.  Training targets and decoded
    detections use the one whose vector from keypoint 0 to keypoint 1 points
    most towards the lower right of the image (largest dot product with
    (1, 1)), so the labels depend on the image only.  For a chessboard whose
    keypoints 0 -> 1 run along its long side this puts the label switch at
    diagonal board orientations (long side at -45 degrees), away from both
    landscape (0.0 -> 1 pointing right) and portrait (pointing down) poses.
    When keypoint 0 or 1 is missing (NaN) the labelling with the smallest
    ``u + v`` of the first finite keypoints in order is used instead.

    Args:
        uv: (J, 2) pixel or cell coordinates (NaN allowed).
        symmetries: a :class:`~.symmetry.SymmetryGroup` of J keypoints, or
            permutations (J,) int with the identity implied.

    Returns:
        (J,) int permutation ``p`` such that ``uv[p]`` is the canonical
        labelling.
    """
    uv = np.asarray(uv, dtype=np.float64)
    j = len(uv)
    perms = SymmetryGroup.of(symmetries, j).index_arrays
    if j < 2:
        return perms[0]
    diagonal = uv[:, 0] + uv[:, 1]  # position along the (1, 1) image diagonal
    scores = [diagonal[p[1]] - diagonal[p[0]] for p in perms]
    if np.all(np.isfinite(scores)):
        return perms[int(np.argmax(scores))]
    key = np.nan_to_num(diagonal, nan=np.inf)
    return min(perms, key=lambda p: tuple(key[p]))


def decode_candidates(beliefs: np.ndarray, max_candidates: int = 3, nms_kernel: int = 3,
                      threshold: float = 0.1):
    """Return the strongest NMS peaks of each belief map, refined to sub-cell positions.

    Used when a later stage (stereo and template consistency) chooses among
    several peaks instead of trusting the highest one.

    Args:
        beliefs: (J, h, w) float belief maps in [0, 1].
        max_candidates: K, peaks kept per map.
        nms_kernel: odd NMS neighbourhood in cells.
        threshold: minimum belief of a peak.

    Returns:
        uv: (J, K, 2) float64 cell coordinates, strongest first, NaN-padded.
        confidence: (J, K) float32 peak beliefs, 0-padded.
    """
    beliefs = np.asarray(beliefs)
    if beliefs.ndim != 3:
        raise ValueError(f'beliefs must be (J, h, w), got shape {beliefs.shape}')
    cells, scores = strongest_peaks(beliefs, nms_kernel, threshold, max_candidates)
    found = np.isfinite(scores)
    uv = np.full(scores.shape + (2,), np.nan)
    confidence = np.zeros(scores.shape, np.float32)
    maps, ranks = np.nonzero(found)
    uv[maps, ranks] = refine_peaks(beliefs, maps, cells[maps, ranks, 0], cells[maps, ranks, 1])
    confidence[found] = scores[found]
    return uv, confidence


def decode_keypoints(beliefs: np.ndarray, image_size: Tuple[int, int], symmetries=(),
                     max_candidates: int = 1, nms_kernel: int = 3, threshold: float = 0.1,
                     offset: Tuple[float, float] = (0.0, 0.0)):
    """Peaks of one image's belief maps in image pixels, canonically labelled.

    Chains :func:`decode_candidates`, :func:`heatmap_to_image` and, for a
    symmetric object whose strongest peaks are all found,
    :func:`canonical_symmetry_order` on the strongest peaks.

    Args:
        beliefs: (J, h, w) float belief maps of one image.
        image_size: (width, height) of the image (or image window) the
            belief maps cover.
        symmetries: the object's :class:`~.symmetry.SymmetryGroup`, or its
            symmetry permutations (identity implied).
        max_candidates: K, peaks kept per keypoint, strongest first.
        nms_kernel: odd NMS neighbourhood in cells.
        threshold: minimum belief of a peak.
        offset: (x0, y0) of that window in the image, pixels.

    Returns:
        uv: (J, K, 2) float64 image pixels (OpenCV convention), NaN-padded.
        confidence: (J, K) float32 peak beliefs, 0-padded.
        perm: (J,) int labelling applied, ``uv[j]`` comes from map ``perm[j]``.
    """
    cells, conf = decode_candidates(beliefs, max_candidates, nms_kernel, threshold)
    h, w = np.asarray(beliefs).shape[1:]
    uv = heatmap_to_image(cells, (w, h), image_size, offset)
    perm = np.arange(len(uv))
    group = SymmetryGroup.of(symmetries, len(uv))
    if len(group) > 1 and np.isfinite(uv[:, 0]).all():
        perm = canonical_symmetry_order(uv[:, 0], group)
    return uv[perm], conf[perm], perm


def merge_mirrored_beliefs(beliefs: np.ndarray, mirrored_beliefs: np.ndarray,
                           mirror: Sequence[int]) -> np.ndarray:
    """Average belief maps with those of the same images mirrored left to right.

    The flip test of stacked hourglass and HRNet pose networks (Newell et
    al. 2016; Sun et al. 2019, ``flip_back``).  A mirror maps pixel (u, v)
    of a W-wide image to (W - 1 - u, v) and, with the pixel-centre
    convention of :func:`image_to_heatmap`, cell (j, i) of a w-wide map to
    (w - 1 - j, i).  In the mirrored image keypoint ``k`` of the object
    looks like keypoint ``mirror[k]`` (a person's left eye looks like a
    right eye; a robot's joints stay themselves: the identity), so channel
    ``mirror[k]`` of the mirrored maps, flipped back, is keypoint ``k``'s.

    Args:
        beliefs: (B, J, h, w) float belief maps of the images.
        mirrored_beliefs: (B, J, h, w) float belief maps of the mirrored
            images, as the network returned them (not flipped back).
        mirror: (J,) int permutation, an involution (mirroring twice is the
            identity), see :attr:`~.objects.ObjectClass.mirror`.

    Returns:
        (B, J, h, w) float32 mean belief maps, in the frame of ``beliefs``.

    Raises:
        ValueError: the arrays differ in shape or are not 4-D, or ``mirror``
            is not an involutive permutation of the J keypoints.
    """
    beliefs = np.asarray(beliefs, dtype=np.float32)
    mirrored_beliefs = np.asarray(mirrored_beliefs, dtype=np.float32)
    if beliefs.ndim != 4 or beliefs.shape != mirrored_beliefs.shape:
        raise ValueError(f'beliefs must be two (B, J, h, w) arrays of one shape, got '
                         f'{beliefs.shape} and {mirrored_beliefs.shape}')
    mirror = check_mirror(mirror, beliefs.shape[1])
    return 0.5 * (beliefs + mirrored_beliefs[:, mirror, :, ::-1])


def merge_rotated_beliefs(beliefs: np.ndarray, rotated_beliefs: np.ndarray,
                          symmetries=()) -> np.ndarray:
    """Average belief maps with those of the same images rotated by 180 degrees.

    Test-time augmentation in the manner of the flip test of stacked
    hourglass and HRNet pose networks (Newell et al. 2016; Sun et al. 2019,
    ``flip_back``), with an in-plane rotation instead of a mirror, for
    object classes whose appearance does not depend on the image's "up"
    (a board on a table, seen from any side).  A 180 degree rotation maps
    pixel (u, v) of a W x H image to (W - 1 - u, H - 1 - v) and, with the
    pixel-centre convention of :func:`image_to_heatmap`, cell (j, i) of a
    w x h map to (w - 1 - j, h - 1 - i), so the rotated maps are rotated back
    cell for cell.  A network trained with the min-over-labellings loss of a
    symmetric object may label the rotated view with another symmetry
    permutation; per image, the permutation (identity or one of
    ``symmetries``) whose maps overlap most with ``beliefs`` is used.
    Averaging two looks cancels any position bias that turns with the image
    and lowers the noise of the peaks.

    Args:
        beliefs: (B, J, h, w) float belief maps of the images.
        rotated_beliefs: (B, J, h, w) float belief maps of the images rotated
            by 180 degrees, as the network returned them (not rotated back).
        symmetries: the object's :class:`~.symmetry.SymmetryGroup`, or its
            symmetry permutations, each (J,) int (identity implied).

    Returns:
        (B, J, h, w) float32 mean belief maps, in the frame of ``beliefs``.

    Raises:
        ValueError: the two arrays differ in shape or are not 4-D.
    """
    beliefs = np.asarray(beliefs, dtype=np.float32)
    rotated_beliefs = np.asarray(rotated_beliefs, dtype=np.float32)
    if beliefs.ndim != 4 or beliefs.shape != rotated_beliefs.shape:
        raise ValueError(f'beliefs must be two (B, J, h, w) arrays of one shape, got '
                         f'{beliefs.shape} and {rotated_beliefs.shape}')
    back = rotated_beliefs[:, :, ::-1, ::-1]
    perms = SymmetryGroup.of(symmetries, beliefs.shape[1]).index_arrays
    # (P, B) overlap of each relabelling with the unrotated maps
    overlap = np.stack([np.einsum('bjyx,bjyx->b', beliefs, back[:, p]) for p in perms])
    best = np.argmax(overlap, axis=0)
    aligned = np.stack([back[b, perms[k]] for b, k in enumerate(best)])
    return 0.5 * (beliefs + aligned)
