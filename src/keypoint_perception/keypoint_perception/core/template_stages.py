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
"""The pipeline's last stages: verify against the template, then complete.

* :func:`verify_against_template` -- drop 3D points the object's rigid
  template contradicts (shape check of unverified peaks, leave-one-out
  outlier), then fit the template (Umeyama, :func:`~.rigid.fit_template_pose`);
* :func:`complete_from_fit` -- look for keypoints still missing where the
  fitted template predicts them and keep those that triangulate near the
  prediction.

Both return a new :class:`PairEstimate` and change nothing they are given.
Points are in the left camera's optical frame (metres) unless named
``_rect`` (left rectified frame); pixels are original-image pixels unless
named ``_rect`` (rectified pixels).
"""

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .camera import camera_center, CameraModel, project, stereo_baseline
from .completion import complete_from_template, stereo_belief_search
from .config import PipelineConfig
from .objects import ObjectClass
from .rigid import fit_template_pose, refine_poses_reprojection, TemplateFit
from .selection import shape_consistent
from .stereo_stages import StereoBeliefs, ViewPair
from .triangulation import REASON_TEMPLATE_OUTLIER, stereo_point_sigma, StereoTriangulation
from .triangulation import triangulate_stereo
from .views import ViewKeypoints

#: Largest distance of a completed keypoint from the template's prediction,
#: relative to the template's median keypoint distance.
COMPLETION_TOLERANCE = 0.15


@dataclass(frozen=True, eq=False)
class PairEstimate:
    """Keypoints of one stereo pair in 2D and 3D, and the template fitted to them.

    Attributes:
        left, right: :class:`~.views.ViewKeypoints` of each view (keypoint
            j is the same physical keypoint in both; NaN where missing).
        confidence: (J,) float32 lower belief of the two views (0 for a
            keypoint dropped as a template outlier).
        triangulation: the :class:`~.triangulation.StereoTriangulation`
            (xyz in metres, left optical frame).
        fit: the :class:`~.rigid.TemplateFit` to the valid 3D points (object
            to left optical frame), or None.
    """

    left: ViewKeypoints
    right: ViewKeypoints
    confidence: np.ndarray
    triangulation: StereoTriangulation
    fit: Optional[TemplateFit] = None


@dataclass(frozen=True, eq=False)
class TemplatePrediction:
    """The template's keypoints under a pose refined on image measurements.

    Attributes:
        xyz: (J, 3) float64 points, metres, left optical frame.
        uv_left_rect, uv_right_rect: (J, 2) float64 rectified pixels.
        rms_px: RMS reprojection error (rectified pixels) of the
            observations the pose was refined on.
    """

    xyz: np.ndarray
    uv_left_rect: np.ndarray
    uv_right_rect: np.ndarray
    rms_px: float


def _replace_rows(rows: np.ndarray, new, old: np.ndarray) -> np.ndarray:
    """Copy ``old`` with its ``rows`` ((N,) bool) taken from ``new``, in ``old``'s dtype."""
    mask = rows.reshape(rows.shape + (1,) * (old.ndim - 1))
    return np.where(mask, new, old).astype(old.dtype, copy=False)


def predict_template(fit: TemplateFit, triangulation: StereoTriangulation, keep: np.ndarray,
                     template: np.ndarray, left_camera: CameraModel,
                     right_camera: CameraModel) -> TemplatePrediction:
    """Template keypoints under the pose refined on the ``keep`` observations.

    The pose fitted to triangulated points is refined on the rectified
    pixels of the ``keep`` (J,) bool keypoints
    (:func:`~.rigid.refine_pose_reprojection`): image positions are
    measured directly, 3D points inherit the stereo depth error.

    Returns:
        a new :class:`TemplatePrediction`.
    """
    return predict_templates([fit], triangulation, keep[None], template, left_camera,
                             right_camera)[0]


def predict_templates(fits, triangulation: StereoTriangulation, keeps: np.ndarray,
                      template: np.ndarray, left_camera: CameraModel,
                      right_camera: CameraModel):
    """Return :func:`predict_template`'s predictions for several fits and subsets, in one batch.

    The B pose refinements run together
    (:func:`~.rigid.refine_poses_reprojection`); each result equals
    :func:`predict_template`'s for its fit and subset.

    Args:
        fits: B :class:`~.rigid.TemplateFit`.
        triangulation: the observations (rectified pixels of both views).
        keeps: (B, J) bool, the observations each pose is refined on.
        template: (J, 3) object-frame keypoints, metres.
        left_camera, right_camera: the stereo cameras.

    Returns:
        a list of B new :class:`TemplatePrediction`.
    """
    permuted = np.stack([template[list(fit.permutation)] for fit in fits])
    seen = keeps[:, :, None]
    rotations, translations, rms = refine_poses_reprojection(
        permuted, np.stack([fit.R for fit in fits]), np.stack([fit.t for fit in fits]),
        left_camera, right_camera, np.where(seen, triangulation.uv_left_rect, np.nan),
        np.where(seen, triangulation.uv_right_rect, np.nan))
    predictions = []
    for points, rotation, translation, error in zip(permuted, rotations, translations, rms):
        xyz = points @ rotation.T + translation
        xyz_rect = xyz @ left_camera.R.T + camera_center(left_camera.P)
        predictions.append(TemplatePrediction(xyz, project(left_camera.P, xyz_rect),
                                              project(right_camera.P, xyz_rect),
                                              float(error)))
    return predictions


def reject_3d(triangulation: StereoTriangulation, drop: np.ndarray) -> StereoTriangulation:
    """Invalidate the ``drop`` (J,) bool 3D points as template outliers.

    Returns:
        a new :class:`~.triangulation.StereoTriangulation` (NaN ``xyz`` and
        ``xyz_rect`` rows, reason ``template_outlier``).
    """
    valid = triangulation.valid & ~drop
    reason = tuple(REASON_TEMPLATE_OUTLIER if dropped else old
                   for dropped, old in zip(drop & triangulation.valid, triangulation.reason))
    return dataclasses.replace(
        triangulation, valid=valid, reason=reason,
        xyz=np.where(valid[:, None], triangulation.xyz, np.nan),
        xyz_rect=np.where(valid[:, None], triangulation.xyz_rect, np.nan))


def reject_template_outlier(estimate: PairEstimate, template: np.ndarray, symmetries,
                            left_camera: CameraModel, right_camera: CameraModel,
                            max_residual_px: float) -> PairEstimate:
    """Drop the keypoint that the template fitted to the others contradicts.

    With at least four triangulated keypoints, the pose is fitted to each
    leave-one-out subset (:func:`predict_template`); the subset whose own
    reprojection RMS is lowest is the most self-consistent, and the
    keypoint it leaves out is marked missing (in 2D and 3D, confidence 0)
    when its rectified-pixel residual under that pose exceeds
    ``max_residual_px`` in either view, so that template completion can
    look for it where it should be.

    Returns:
        a new :class:`PairEstimate` (``estimate`` itself when nothing is
        dropped); ``fit`` is not changed.
    """
    triangulation = estimate.triangulation
    subsets, fits = [], []
    for j in np.flatnonzero(triangulation.valid):
        keep = triangulation.valid.copy()
        keep[j] = False
        fit = fit_template_pose(template, triangulation.xyz, keep, symmetries)
        if fit is not None:
            subsets.append((j, keep))
            fits.append(fit)
    predictions = (predict_templates(fits, triangulation, np.stack([keep for _, keep in subsets]),
                                     template, left_camera, right_camera) if fits else [])
    best_rms, worst, worst_j = np.inf, 0.0, -1
    for (j, _), prediction in zip(subsets, predictions):
        if prediction.rms_px < best_rms:
            best_rms, worst_j = prediction.rms_px, j
            worst = max(np.linalg.norm(prediction.uv_left_rect[j]
                                       - triangulation.uv_left_rect[j]),
                        np.linalg.norm(prediction.uv_right_rect[j]
                                       - triangulation.uv_right_rect[j]))
    if worst_j < 0 or not worst > max_residual_px:
        return estimate
    drop = np.zeros(len(triangulation.valid), bool)
    drop[worst_j] = True
    # missing in 2D too, so that template completion looks for it afresh
    views = [dataclasses.replace(view, uv=_replace_rows(drop, np.nan, view.uv))
             for view in (estimate.left, estimate.right)]
    confidence = _replace_rows(drop, 0.0, estimate.confidence)
    return dataclasses.replace(estimate, left=views[0], right=views[1], confidence=confidence,
                               triangulation=reject_3d(triangulation, drop))


def verify_against_template(pair: ViewPair, triangulation: StereoTriangulation,
                            left_camera: CameraModel, right_camera: CameraModel,
                            object_class: ObjectClass, config: PipelineConfig,
                            shape_check: bool, leave_one_out: bool) -> PairEstimate:
    """Verify-against-the-template stage: drop contradicted 3D points, fit the template.

    1. ``shape_check`` and peaks the select stage did not verify: 3D points
       off the template's shape are dropped
       (:func:`~.selection.shape_consistent`); their 2D detections stand.
    2. ``leave_one_out`` and at least four 3D points: the worst leave-one-out
       outlier is dropped (:func:`reject_template_outlier`, residual limit
       ``config.completion_radius`` pixels).
    3. ``config.fit_pose`` or ``leave_one_out`` (completion needs the fit),
       and at least three 3D points: the template is fitted
       (:func:`~.rigid.fit_template_pose`, Umeyama 1991).

    Returns:
        a new :class:`PairEstimate`.
    """
    template, symmetries = object_class.template, object_class.symmetries
    if shape_check and not pair.verified and triangulation.valid.sum() >= 2:
        # the highest peaks, which no consistent selection vouched for: their
        # 2D detections stand, 3D points off the template's shape do not
        triangulation = reject_3d(triangulation, ~shape_consistent(
            triangulation.xyz, triangulation.valid, template))
    estimate = PairEstimate(pair.left, pair.right, pair.confidence, triangulation)
    if leave_one_out and triangulation.valid.sum() >= 4:
        estimate = reject_template_outlier(estimate, template, symmetries, left_camera,
                                           right_camera, config.completion_radius)
    valid = estimate.triangulation.valid
    if (config.fit_pose or leave_one_out) and valid.sum() >= 3:
        fit = fit_template_pose(template, estimate.triangulation.xyz, valid, symmetries)
        estimate = dataclasses.replace(estimate, fit=fit)
    return estimate


def complete_from_fit(estimate: PairEstimate, observed: StereoBeliefs,
                      left_camera: CameraModel, right_camera: CameraModel,
                      object_class: ObjectClass, config: PipelineConfig) -> PairEstimate:
    """Complete stage: look for missing keypoints where the fitted template predicts them.

    The prediction uses the pose refined on the image measurements
    (:func:`predict_template`), not the noisier fit to triangulated points.
    Missing keypoints are searched within ``config.completion_radius``
    pixels of the prediction in both views' belief maps
    (``config.completion_search``: each view's own peak,
    :func:`~.completion.complete_from_template`, or the 3D point both
    views' beliefs agree on, :func:`~.completion.stereo_belief_search`),
    triangulated, and kept if they pass the reprojection check and lie
    within :data:`COMPLETION_TOLERANCE` times the template's median pairwise
    distance of the prediction.  With ``config.localization_sigma`` > 0 the
    tolerance grows to twice the stereo noise at the predicted depth
    (:func:`~.triangulation.stereo_point_sigma`), capped at half the median
    distance.  The template is refitted to the completed points.

    Args:
        estimate: the verified estimate; needs a ``fit``.
        observed: the observe stage's output (the windows the beliefs
            cover, the belief cell size).
        left_camera, right_camera: calibrations of the whole images.
        object_class: the class (template, symmetries).
        config: the parameters named above, ``input_rectified``,
            ``completion_min_belief`` and the triangulation limits.

    Returns:
        a new :class:`PairEstimate` (``estimate`` itself when nothing is
        completed).
    """
    template = object_class.template
    triangulation, fit = estimate.triangulation, estimate.fit
    missing = ~triangulation.valid
    predicted = predict_template(fit, triangulation, triangulation.valid, template, left_camera,
                                 right_camera).xyz
    predicted_rect = predicted @ left_camera.R.T + camera_center(left_camera.P)
    cell_px = observed.cell_px
    search = (stereo_belief_search if config.completion_search == 'stereo'
              else complete_from_template)
    found = search(
        left_camera, right_camera, estimate.left.beliefs, estimate.right.beliefs,
        observed.left.window.size, observed.right.window.size, predicted_rect, missing,
        config.input_rectified,
        search_radius_cells=max(1, int(round(config.completion_radius / cell_px))),
        min_belief=config.completion_min_belief, offset_left=observed.left.window.offset,
        offset_right=observed.right.window.offset)
    new = (missing & np.isfinite(found.uv_left).all(axis=1)
           & np.isfinite(found.uv_right).all(axis=1))
    if not new.any():
        return estimate
    completed = triangulate_stereo(
        left_camera, right_camera, np.where(new[:, None], found.uv_left, np.nan),
        np.where(new[:, None], found.uv_right, np.nan), refine=config.refine_triangulation,
        max_reprojection_error_px=config.max_reprojection_error,
        min_depth=config.min_depth, points_are_rectified=config.input_rectified)
    distances = np.linalg.norm(template[:, None] - template[None], axis=2)
    median = np.median(distances[np.triu_indices(len(distances), 1)])
    tolerance = COMPLETION_TOLERANCE * median
    focal, baseline = left_camera.P[0, 0], stereo_baseline(left_camera, right_camera)
    if config.localization_sigma > 0 and focal > 0 and baseline > 0:
        depth = predicted_rect[:, 2] - camera_center(left_camera.P)[2]
        sigma_z, sigma_xy = stereo_point_sigma(depth, focal, baseline,
                                               config.localization_sigma * cell_px)
        tolerance = np.clip(2.0 * np.sqrt(sigma_z ** 2 + 2.0 * sigma_xy ** 2), tolerance,
                            max(tolerance, 0.5 * median))
    with np.errstate(invalid='ignore'):
        ok = new & completed.valid & (np.linalg.norm(completed.xyz - predicted, axis=1)
                                      <= tolerance)
    if not ok.any():
        return estimate
    left = dataclasses.replace(
        estimate.left, uv=_replace_rows(ok, found.uv_left, estimate.left.uv),
        confidence=_replace_rows(ok, found.confidence_left, estimate.left.confidence))
    right = dataclasses.replace(
        estimate.right, uv=_replace_rows(ok, found.uv_right, estimate.right.uv),
        confidence=_replace_rows(ok, found.confidence_right, estimate.right.confidence))
    confidence = _replace_rows(ok, np.minimum(found.confidence_left, found.confidence_right),
                               estimate.confidence)
    rows = ok[:, None]
    merged = {name: np.where(rows if getattr(triangulation, name).ndim == 2 else ok,
                             getattr(completed, name), getattr(triangulation, name))
              for name in ('xyz', 'reprojection_error_px', 'valid', 'uv_left_rect',
                           'uv_right_rect', 'xyz_rect')}
    merged['reason'] = tuple(completed.reason[j] if ok[j] else old
                             for j, old in enumerate(triangulation.reason))
    triangulation = dataclasses.replace(triangulation, **merged)
    refit = fit_template_pose(template, triangulation.xyz, triangulation.valid,
                              object_class.symmetries)
    return PairEstimate(left, right, confidence, triangulation,
                        refit if refit is not None else fit)
