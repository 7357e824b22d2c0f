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
"""Aggregate figures of a robot keypoint model on a labelled test set (issue 17).

Built on :func:`.metrics.summarize_errors` (2D) and
:mod:`~..core.calibration_metrics` (ADD, ADD AUC, pose errors as DREAM, Lee
et al. ICRA 2020, reports them); ``tools/benchmark_robots.py`` collects the
per-frame values these functions summarize.

* 2D: errors of a chosen subset of keypoints (e.g. those labelled inside the
  image), overall and per keypoint, in percent of the image diagonal and PCK
  at :data:`ROBOT_PCK_THRESHOLDS`;
* 3D: distances of triangulated keypoints to the rendered ones, millimetres;
* camera-to-base: translation and rotation errors of ``T_camera_base``, ADD
  and its AUC up to 100 mm, a frame without an estimate counting as
  ``ADD = inf`` (a miss at every threshold).

Summaries are plain dicts of floats and ints (JSON-ready except for NaN,
which marks a figure without data).
"""

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..core.calibration_metrics import add_auc, add_distance, ADD_AUC_MAX_THRESHOLD_M, pose_errors
from ..core.robot_calibration import fit_camera_to_base_mono, fit_camera_to_base_stereo
from ..core.triangulation import triangulate_stereo
from ..core.two_view_calibration import fit_camera_to_base_stereo_views
from .metrics import summarize_errors

#: PCK thresholds of the robot benchmark, percent of the image diagonal (issue 17).
ROBOT_PCK_THRESHOLDS = (1.0, 2.0, 5.0)


def summarize_selected(errors_px: np.ndarray, diagonals_px: np.ndarray, selected: np.ndarray,
                       thresholds: Sequence[float] = ROBOT_PCK_THRESHOLDS) -> Dict[str, float]:
    """:func:`.metrics.summarize_errors` over the selected entries of an (N, J) error array.

    Entries that are not selected (e.g. keypoints labelled outside the image)
    are left out altogether; a selected entry that is NaN is a missed
    keypoint (incorrect in PCK and the detection rate, not in the means).

    Args:
        errors_px: (N, J) float errors in pixels, NaN = not detected.
        diagonals_px: (N,) image diagonals in pixels.
        selected: (N, J) bool, the entries to count.
        thresholds: PCK thresholds in percent of the diagonal.

    Returns:
        ``summarize_errors``'s dict plus ``keypoints`` (the number of
        selected entries); its figures are NaN (``detected`` 0) without one.

    Raises:
        ValueError: shapes that do not agree.
    """
    errors_px = np.asarray(errors_px, dtype=np.float64)
    selected = np.asarray(selected, dtype=bool)
    diagonals = np.broadcast_to(np.asarray(diagonals_px, dtype=np.float64)[:, None],
                                errors_px.shape)
    if selected.shape != errors_px.shape:
        raise ValueError(f'selected {selected.shape} and errors {errors_px.shape} differ')
    if not selected.any():
        empty = summarize_errors(np.full((1, 1), np.nan), np.ones(1), thresholds)
        return dict({k: math.nan for k in empty}, detected=0.0, keypoints=0)
    out = summarize_errors(errors_px[selected][:, None], diagonals[selected], thresholds)
    out['keypoints'] = int(selected.sum())
    return out


def keypoint_table(errors_px: np.ndarray, diagonals_px: np.ndarray, selected: np.ndarray,
                   names: Sequence[str],
                   thresholds: Sequence[float] = ROBOT_PCK_THRESHOLDS) -> Dict[str, dict]:
    """2D figures overall and per keypoint (see :func:`summarize_selected`).

    Args:
        errors_px, diagonals_px, selected: as :func:`summarize_selected`.
        names: the J keypoint names.
        thresholds: PCK thresholds in percent of the diagonal.

    Returns:
        ``{'overall': {...}, 'per_keypoint': {name: {...}}}``.
    """
    errors_px = np.asarray(errors_px, dtype=np.float64)
    selected = np.asarray(selected, dtype=bool)
    per_keypoint = {}
    for j, name in enumerate(names):
        only_j = np.zeros_like(selected)
        only_j[:, j] = selected[:, j]
        per_keypoint[name] = summarize_selected(errors_px, diagonals_px, only_j, thresholds)
    return {'overall': summarize_selected(errors_px, diagonals_px, selected, thresholds),
            'per_keypoint': per_keypoint}


def summarize_distances_mm(errors_m: np.ndarray) -> Dict[str, float]:
    """Mean, median, 95th percentile and largest of finite 3D errors, millimetres.

    Args:
        errors_m: any-shape float distances in metres; NaN entries are left out.

    Returns:
        ``count``, ``mean_mm``, ``median_mm``, ``p95_mm``, ``max_mm`` (NaN
        without a finite entry).
    """
    e = 1000.0 * np.asarray(errors_m, dtype=np.float64).ravel()
    e = e[np.isfinite(e)]
    if not e.size:
        return {'count': 0, 'mean_mm': math.nan, 'median_mm': math.nan, 'p95_mm': math.nan,
                'max_mm': math.nan}
    return {'count': int(e.size), 'mean_mm': float(e.mean()), 'median_mm': float(np.median(e)),
            'p95_mm': float(np.percentile(e, 95)), 'max_mm': float(e.max())}


def stereo_table(errors_m: np.ndarray, in_both_views: np.ndarray,
                 names: Sequence[str]) -> Dict[str, dict]:
    """3D figures of triangulated keypoints, overall and per keypoint.

    Args:
        errors_m: (N, J) distance of each triangulated keypoint to its
            rendered position (left optical frame), metres; NaN where the
            pipeline gave no 3D point.
        in_both_views: (N, J) bool, labelled inside both images.
        names: the J keypoint names.

    Returns:
        ``{'overall': {...}, 'per_keypoint': {name: {...}}}``, each
        :func:`summarize_distances_mm` (over every triangulated keypoint)
        plus ``triangulated``: the fraction of the keypoints labelled in both
        views that were triangulated (NaN without one), and
        ``triangulated_outside``: how many triangulated keypoints were not
        labelled in both views.
    """
    errors_m = np.asarray(errors_m, dtype=np.float64)
    in_both = np.asarray(in_both_views, dtype=bool)
    found = np.isfinite(errors_m)

    def summary(columns):
        out = summarize_distances_mm(errors_m[:, columns])
        labelled = in_both[:, columns]
        out['triangulated'] = (float(found[:, columns][labelled].mean()) if labelled.any()
                               else math.nan)
        out['triangulated_outside'] = int((found[:, columns] & ~labelled).sum())
        return out

    return {'overall': summary(slice(None)),
            'per_keypoint': {name: summary([j]) for j, name in enumerate(names)}}


def camera_to_base_summary(estimates: Sequence[Optional[np.ndarray]],
                           truths: Sequence[np.ndarray], points_base: Sequence[np.ndarray],
                           max_threshold_m: float = ADD_AUC_MAX_THRESHOLD_M) -> dict:
    """Errors of estimated ``T_camera_base`` over frames, as DREAM reports them.

    Args:
        estimates: per frame the (4, 4) estimate, or None where the fit failed.
        truths: per frame the (4, 4) true ``T_camera_base`` (base frame ->
            camera optical frame, metres).
        points_base: per frame the (J, 3) keypoints in the base frame (forward
            kinematics), metres.
        max_threshold_m: upper end of the ADD AUC (DREAM: 0.1 m).

    Returns:
        ``frames``, ``failures`` (no estimate: ADD = inf), ``add_auc``
        (:func:`~..core.calibration_metrics.add_auc`, failures as misses),
        ``add_mean_mm`` / ``add_median_mm`` over the frames with an estimate,
        ``add_median_all_mm`` over all frames (inf when failures are half or
        more), ``translation_mean_mm``, ``translation_median_mm``,
        ``rotation_mean_deg``, ``rotation_median_deg`` (frames with an
        estimate), ``add_mm`` (per frame, inf = failure).  NaN marks a
        figure without data.

    Raises:
        ValueError: lists of different lengths.
    """
    if not len(estimates) == len(truths) == len(points_base):
        raise ValueError('estimates, truths and points_base must have one entry per frame')
    add = np.array([add_distance(T, T_true, pts)
                    for T, T_true, pts in zip(estimates, truths, points_base)], dtype=np.float64)
    pose = np.array([pose_errors(T, T_true) for T, T_true in zip(estimates, truths)
                     if T is not None], dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(add)

    def stat(fn, values, scale=1.0):
        return float(scale * fn(values)) if len(values) else math.nan

    return {
        'frames': len(add),
        'failures': int(sum(T is None for T in estimates)),
        'add_auc': add_auc(add, max_threshold_m) if len(add) else math.nan,
        'add_auc_max_threshold_mm': 1000.0 * max_threshold_m,
        'add_mean_mm': stat(np.mean, add[ok], 1000.0),
        'add_median_mm': stat(np.median, add[ok], 1000.0),
        'add_median_all_mm': stat(np.median, np.where(np.isnan(add), np.inf, add), 1000.0),
        'translation_mean_mm': stat(np.mean, pose[:, 0], 1000.0),
        'translation_median_mm': stat(np.median, pose[:, 0], 1000.0),
        'rotation_mean_deg': stat(np.mean, np.degrees(pose[:, 1])),
        'rotation_median_deg': stat(np.median, np.degrees(pose[:, 1])),
        'add_mm': [1000.0 * float(a) for a in add],
    }


def noisy_keypoints(uv: np.ndarray, mean_error_pct_diag: float, diagonal_px: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Return 2D keypoints with isotropic Gaussian noise of a given mean error.

    The error budget of ``tools/benchmark_robots.py``: what a detector whose
    mean 2D error is ``mean_error_pct_diag`` percent of the image diagonal
    would give the camera-to-base fits.  The error length of isotropic 2D
    Gaussian noise of per-axis standard deviation sigma is Rayleigh
    distributed with mean ``sigma * sqrt(pi / 2)``, so
    ``sigma = mean_error * sqrt(2 / pi)``.

    Args:
        uv: (J, 2) pixels; NaN rows (not labelled) stay NaN.
        mean_error_pct_diag: mean error length, percent of ``diagonal_px`` (>= 0).
        diagonal_px: the image diagonal, pixels.
        rng: the random generator (its state advances by 2 J normals).

    Returns:
        a new (J, 2) float64 array.

    Raises:
        ValueError: ``uv`` not (J, 2) or a negative error.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f'uv must be (J, 2), got {uv.shape}')
    if not mean_error_pct_diag >= 0:
        raise ValueError(f'mean_error_pct_diag must be >= 0, got {mean_error_pct_diag}')
    sigma = mean_error_pct_diag / 100.0 * diagonal_px * math.sqrt(2.0 / math.pi)
    return uv + sigma * rng.standard_normal(uv.shape)


#: The camera-to-base fits of the robot benchmark: mono PnP on the left view,
#: two-view PnP on both views' 2D keypoints, the rigid fit of triangulated ones.
CALIBRATION_FITS = ('mono', 'stereo', 'stereo_rigid')


def calibration_error_budget(labels, cameras, points_base, truths, levels,
                             seed: int = 0) -> list:
    """Camera-to-base accuracy that labels with noise of each mean 2D error would give.

    For each level (mean 2D error, % of the image diagonal) the labelled
    keypoints get isotropic Gaussian noise of that mean length
    (:func:`noisy_keypoints`, independent per view, the same draws for every
    level's seed), then each fit of :data:`CALIBRATION_FITS` (the rigid
    fit's points triangulated without a reprojection limit).  Level 0 checks
    the geometry (labels, kinematics, fits) on its own.

    Args:
        labels: per frame (uv_left, uv_right), (J, 2) pixels of the raw
            images, NaN rows = not labelled in the image.
        cameras: per frame the (left, right) :class:`~..core.camera.CameraModel`.
        points_base: per frame the (J, 3) kinematic keypoints, metres.
        truths: per frame the (4, 4) true ``T_camera_base``.
        levels: mean 2D errors, percent of the image diagonal.
        seed: seed of the noise.

    Returns:
        one dict per level: ``level_pct_diag`` and per fit the
        :func:`camera_to_base_summary` without ``add_mm``.
    """
    rows = []
    for level in levels:
        rng = np.random.default_rng(seed)
        estimates = {mode: [] for mode in CALIBRATION_FITS}
        for (left_uv, right_uv), (left, right), base in zip(labels, cameras, points_base):
            noisy = [noisy_keypoints(uv, level, math.hypot(cam.width, cam.height), rng)
                     for uv, cam in ((left_uv, left), (right_uv, right))]
            points = triangulate_stereo(left, right, noisy[0], noisy[1],
                                        max_reprojection_error_px=np.inf)
            fits = {'mono': fit_camera_to_base_mono(noisy[0], base, left),
                    'stereo': fit_camera_to_base_stereo_views(noisy[0], noisy[1], base, left,
                                                              right),
                    'stereo_rigid': fit_camera_to_base_stereo(
                        np.where(points.valid[:, None], points.xyz, np.nan), base)}
            for mode, fit in fits.items():
                estimates[mode].append(None if fit is None else fit.T_camera_base)
        row = {'level_pct_diag': float(level)}
        for mode, values in estimates.items():
            summary = camera_to_base_summary(values, truths, points_base)
            summary.pop('add_mm')
            row[mode] = summary
        rows.append(row)
    return rows


def add_curve(add_m: Sequence[float], max_threshold_m: float = ADD_AUC_MAX_THRESHOLD_M,
              steps: int = 201) -> Tuple[np.ndarray, np.ndarray]:
    """Return the ADD accuracy-threshold curve (its normalized area is the ADD AUC).

    Args:
        add_m: per frame ADD in metres (inf or NaN = failure, never counted).
        max_threshold_m: largest threshold, metres.
        steps: number of thresholds from 0 to ``max_threshold_m``.

    Returns:
        ``(thresholds (steps,) metres, fraction (steps,) of frames with ADD
        <= threshold)``, float64; the fraction is all zero for no frames.
    """
    add = np.asarray(add_m, dtype=np.float64).ravel()
    add = np.where(np.isfinite(add), add, np.inf)
    thresholds = np.linspace(0.0, max_threshold_m, steps)
    if not add.size:
        return thresholds, np.zeros(steps)
    return thresholds, (add[None, :] <= thresholds[:, None]).mean(axis=1)


def json_ready(value):
    """Return a copy of nested dicts / lists / numbers with NaN and infinity as None.

    JSON has neither; numpy scalars and arrays become Python numbers and lists.
    """
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(v) for v in (value.tolist() if isinstance(value, np.ndarray)
                                        else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def met(value: float, target: float, higher_is_better: bool) -> str:
    """Return ``'met'`` or ``'not met'`` for a figure against its target (NaN: not met)."""
    if math.isnan(value):
        return 'not met'
    return 'met' if (value >= target if higher_is_better else value <= target) else 'not met'
