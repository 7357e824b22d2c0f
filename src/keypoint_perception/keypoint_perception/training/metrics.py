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
"""Keypoint accuracy metrics: pixel error, percent of image diagonal, PCK.

PCK@a (percentage of correct keypoints) counts a keypoint as correct when its
error is at most ``a`` percent of the image diagonal; Heindl et al. 2020 report
the mean error in percent of the diagonal.
"""

from typing import Dict, Sequence

import numpy as np

#: PCK thresholds in percent of the image diagonal (DESIGN.md section 5).
PCK_THRESHOLDS = (0.5, 1.0, 2.0)


def summarize_errors(errors_px: np.ndarray, diagonals_px: np.ndarray,
                     thresholds: Sequence[float] = PCK_THRESHOLDS) -> Dict[str, float]:
    """Summary statistics of 2D keypoint errors.

    Args:
        errors_px: (N, J) float errors in original image pixels; NaN marks a
            missed keypoint (counted as incorrect in PCK and detection rate,
            excluded from the mean and max).
        diagonals_px: (N,) image diagonals in pixels.
        thresholds: PCK thresholds in percent of the diagonal.

    Returns:
        dict with ``mean_px``, ``median_px``, ``max_px``, ``mean_pct_diag``,
        ``max_pct_diag``, ``detected`` (fraction of keypoints found) and
        ``pck@<a>`` (fraction in [0, 1]).
    """
    errors_px = np.asarray(errors_px, dtype=np.float64)
    pct = 100.0 * errors_px / np.asarray(diagonals_px, dtype=np.float64)[:, None]
    found = np.isfinite(errors_px)
    out = {'detected': float(found.mean()) if errors_px.size else 0.0}
    if found.any():
        e, p = errors_px[found], pct[found]
        out.update(mean_px=float(e.mean()), median_px=float(np.median(e)), max_px=float(e.max()),
                   mean_pct_diag=float(p.mean()), max_pct_diag=float(p.max()))
    else:
        out.update(mean_px=np.nan, median_px=np.nan, max_px=np.nan, mean_pct_diag=np.nan,
                   max_pct_diag=np.nan)
    for a in thresholds:
        out[f'pck@{a:g}'] = float(np.where(found, pct <= a, False).mean())
    return out


def symmetric_errors(pred: np.ndarray, gt: np.ndarray, symmetries=()) -> np.ndarray:
    """Per-keypoint errors under the labelling that fits best.

    A symmetric object's keypoints are correct up to its symmetry
    permutations; for each sample the permutation of ``pred`` with the lowest
    mean error over jointly finite keypoints is used.

    Args:
        pred: (N, J, 2) or (J, 2) predicted pixels (NaN = missed).
        gt: same shape, ground-truth pixels.
        symmetries: permutations (J,) int, identity implied.

    Returns:
        (N, J) or (J,) float64 Euclidean errors in pixels (NaN where missed).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    single = pred.ndim == 2
    if single:
        pred, gt = pred[None], gt[None]
    j = pred.shape[1]
    perms = [np.arange(j)] + [np.asarray(p, dtype=int) for p in symmetries]
    errs = np.stack([np.linalg.norm(pred[:, p] - gt, axis=2) for p in perms])  # (P, N, J)
    score = np.where(np.isfinite(errs), errs, 1e9).mean(axis=2)  # missed = large
    best = errs[np.argmin(score, axis=0), np.arange(pred.shape[0])]
    return best[0] if single else best
