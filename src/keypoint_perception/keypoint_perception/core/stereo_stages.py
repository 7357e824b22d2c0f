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
"""The pipeline's first stages: observe both views, select across views, triangulate.

Each stage is a function that returns new frozen values and changes
nothing it is given:

* :func:`observe_pair` -- the network on both views (or windows of them):
  :class:`StereoBeliefs` (:func:`observe_pairs`: N pairs in one batch);
* decode -- :func:`~.views.decode_view` on each view:
  :class:`~.views.KeypointCandidates`;
* :func:`select_across_views` -- one left/right peak per keypoint that
  agrees with stereo geometry and the template's shape, or the highest
  peaks relabelled by the epipolar constraint: :class:`ViewPair`;
* :func:`triangulate_pair` -- 3D points in the left camera's optical frame
  (metres): :class:`~.triangulation.StereoTriangulation`.

The template stages that follow are in :mod:`.template_stages`.
"""

from dataclasses import dataclass
import time
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .camera import CameraModel
from .config import PipelineConfig
from .objects import ObjectClass
from .roi import PixelWindow
from .selection import select_consistent_candidates, StereoSelection
from .symmetry import match_stereo_symmetry, SymmetryGroup
from .triangulation import StereoTriangulation, triangulate_stereo
from .views import KeypointCandidates, ViewKeypoints


@dataclass(frozen=True, eq=False)
class ViewBeliefs:
    """The network's belief maps of one view (or of a window of it).

    Attributes:
        beliefs: (J, h, w) float32 last-stage belief maps, network labelling.
        window: the :class:`~.roi.PixelWindow` of the image they cover.
        roi: ``window`` for a zoomed look, None for the whole image.
    """

    beliefs: np.ndarray
    window: PixelWindow
    roi: Optional[PixelWindow] = None


@dataclass(frozen=True, eq=False)
class StereoBeliefs:
    """Output of the observe stage for one stereo pair.

    Attributes:
        left, right: each view's :class:`ViewBeliefs`.
        cell_px: side of one belief cell of the left view, in image pixels
            (the unit of the searches and tolerances of later stages).
        timings_ms: ``preprocess`` and ``network`` wall time, milliseconds.
    """

    left: ViewBeliefs
    right: ViewBeliefs
    cell_px: float
    timings_ms: Mapping[str, float]


@dataclass(frozen=True, eq=False)
class ViewPair:
    """Output of the select-across-views stage: the keypoints both views agree on.

    Attributes:
        left, right: :class:`~.views.ViewKeypoints` of each view; keypoint j
            of ``right`` is the same physical keypoint as j of ``left``
            (relabelled under the object's symmetries), NaN in both where
            the keypoint was not accepted.
        confidence: (J,) float32, the lower of the two views' beliefs.
        accepted: (J,) bool, keypoints passed on to triangulation.
        verified: True when the peaks were chosen for their agreement with
            stereo geometry and the template's shape
            (:func:`~.selection.select_consistent_candidates`), False for
            the highest peaks.
    """

    left: ViewKeypoints
    right: ViewKeypoints
    confidence: np.ndarray
    accepted: np.ndarray
    verified: bool


def observe_pair(detector, left_image: np.ndarray, right_image: np.ndarray,
                 rois: Optional[Sequence[PixelWindow]] = None,
                 augment: bool = True) -> StereoBeliefs:
    """Observe stage: the network on both views in one batch.

    Args:
        detector: a :class:`~.detector.KeypointDetector`.
        left_image, right_image: (H, W, 3) uint8 RGB or (H, W) grey images
            (not changed).
        rois: None (whole images) or the two views' windows
            (:class:`~.roi.PixelWindow`, image pixels) for a zoomed look.
        augment: False skips the detector's test-time augmentation
            (:meth:`~.detector.KeypointDetector.forward`).

    Returns:
        new :class:`StereoBeliefs`.
    """
    return observe_pairs(detector, [(left_image, right_image)], [rois], augment)[0]


def observe_pairs(detector, pairs: Sequence[Tuple[np.ndarray, np.ndarray]],
                  rois: Optional[Sequence[Optional[Sequence[PixelWindow]]]] = None,
                  augment: bool = True) -> List[StereoBeliefs]:
    """Observe stage of N stereo pairs: the network on their 2N views in one batch.

    One forward pass for all views (2N, or 4N with a doubling test-time
    augmentation) is what keeps a GPU busy; each view's maps are those of
    :func:`observe_pair` on its pair alone, up to the backend's batch
    arithmetic (float32 round-off).

    Args:
        detector: a :class:`~.detector.KeypointDetector`.
        pairs: N (left, right) images, (H, W, 3) uint8 RGB or (H, W) grey
            (not changed); pairs may differ in size.
        rois: None (whole images) or, per pair, None or its two windows.
        augment: as for :func:`observe_pair`.

    Returns:
        N new :class:`StereoBeliefs`; their ``timings_ms`` are the batch's
        preprocess and network wall time divided by N (each pair's share).

    Raises:
        ValueError: ``rois`` of another length than ``pairs``, or a pair's
            windows other than two.
    """
    if rois is None:
        rois = [None] * len(pairs)
    if len(rois) != len(pairs):
        raise ValueError(f'{len(rois)} window pairs for {len(pairs)} stereo pairs')
    if any(pair_rois is not None and len(pair_rois) != 2 for pair_rois in rois):
        raise ValueError('each stereo pair takes None or two windows (left, right)')
    if not pairs:
        return []
    images = [image for pair in pairs for image in pair]
    windows = [roi for pair_rois in rois
               for roi in ((None, None) if pair_rois is None else tuple(pair_rois))]
    t0 = time.perf_counter()
    batch = detector.preprocess(images, windows)
    t1 = time.perf_counter()
    beliefs = detector.forward(batch, augment)
    t2 = time.perf_counter()
    share = {'preprocess': (t1 - t0) * 1e3 / len(pairs), 'network': (t2 - t1) * 1e3 / len(pairs)}
    views = [ViewBeliefs(maps, PixelWindow.whole(img) if roi is None else PixelWindow(*roi), roi)
             for maps, img, roi in zip(beliefs, images, windows)]
    return [StereoBeliefs(views[2 * k], views[2 * k + 1],
                          detector.cell_size_px(views[2 * k].window.width), dict(share))
            for k in range(len(pairs))]


def select_across_views(left: KeypointCandidates, right: KeypointCandidates,
                        left_camera: CameraModel, right_camera: CameraModel,
                        object_class: ObjectClass, config: PipelineConfig, cell_px: float,
                        template_check: bool) -> ViewPair:
    """Select-across-views stage: one left and one right position per keypoint.

    With ``template_check``, the candidates that agree across views
    (epipolar constraint) and with the template's pairwise distances are
    chosen (:func:`~.selection.select_consistent_candidates`; such
    geometrically verified peaks are kept even below ``min_confidence``).
    Otherwise, or when no consistent choice exists, each view's highest
    peaks are taken, the right view relabelled by the epipolar constraint
    (:func:`~.symmetry.match_stereo_symmetry`), and keypoints whose lower
    belief is below ``config.min_confidence`` are rejected.  Rejected
    keypoints are NaN in both views.

    Args:
        left, right: each view's decoded candidates (not changed).
        left_camera, right_camera: calibrations of the whole images.
        object_class: the class (template, symmetries, ``visible_side`` and
            ``interchangeable`` hints).
        config: ``input_rectified``, ``peak_threshold``, ``min_confidence``,
            ``localization_sigma`` (belief cells).
        cell_px: belief cell side in image pixels (epipolar tolerance and
            localization noise scale).
        template_check: choose among candidates by stereo and template
            consistency.

    Returns:
        new :class:`ViewPair`.
    """
    hints = object_class.extra
    selection = None
    if template_check:
        selection = select_consistent_candidates(
            left_camera, right_camera, left.uv, left.confidence, right.uv, right.confidence,
            object_class.template, object_class.symmetries,
            points_are_rectified=config.input_rectified,
            min_confidence=config.peak_threshold,
            epipolar_tolerance_px=max(4.0, cell_px),
            visible_side=hints.get('visible_side'),
            interchangeable=hints.get('interchangeable', ()),
            max_pairs_per_keypoint=6 if hints.get('interchangeable') else 4,
            localization_sigma_px=config.localization_sigma * cell_px)
    if selection is not None:
        left_view, right_view = _selected_views(selection, left, right,
                                                object_class.symmetry_group)
        accepted = selection.left_index >= 0
    else:
        left_view, right_view = left.best(), right.best()
        if object_class.symmetries:
            labelling = list(match_stereo_symmetry(
                left_camera, right_camera, left_view.uv, right_view.uv,
                object_class.symmetries, points_are_rectified=config.input_rectified))
            right_view = ViewKeypoints(right_view.uv[labelling], right_view.confidence[labelling],
                                       right_view.beliefs[labelling], right_view.roi)
    confidence = np.minimum(left_view.confidence, right_view.confidence)
    if selection is None:
        accepted = confidence >= config.min_confidence
    # rejected keypoints are reported as missing (NaN) in both views
    left_view = ViewKeypoints(np.where(accepted[:, None], left_view.uv, np.nan),
                              left_view.confidence, left_view.beliefs, left.roi)
    right_view = ViewKeypoints(np.where(accepted[:, None], right_view.uv, np.nan),
                               right_view.confidence, right_view.beliefs, right.roi)
    return ViewPair(left_view, right_view, confidence, accepted, selection is not None)


def _selected_views(selection: StereoSelection, left: KeypointCandidates,
                    right: KeypointCandidates, symmetry_group: SymmetryGroup):
    """Both views' keypoints from the selected candidates (NaN where none was chosen).

    The right belief maps are relabelled with the symmetry permutation
    that agrees with most selected pairs, so that keypoint j's map means
    the same corner in both views (needed by the template completion).

    Returns:
        new (left, right) :class:`~.views.ViewKeypoints`.
    """
    num_keypoints = len(selection.left_index)
    uv_left = np.full((num_keypoints, 2), np.nan)
    uv_right = np.full((num_keypoints, 2), np.nan)
    conf_left = np.zeros(num_keypoints, np.float32)
    conf_right = np.zeros(num_keypoints, np.float32)
    chosen = selection.left_index >= 0
    left_keypoint = (selection.left_keypoint if selection.left_keypoint is not None
                     else np.arange(num_keypoints))
    labelling = max(symmetry_group.index_arrays,
                    key=lambda p: int(np.sum(p[chosen] == selection.right_keypoint[chosen])))
    beliefs_right = right.beliefs[labelling].copy()
    beliefs_left = left.beliefs.copy()
    for k in np.flatnonzero(chosen):
        source, peak = left_keypoint[k], selection.left_index[k]
        uv_left[k], conf_left[k] = left.uv[source, peak], left.confidence[source, peak]
        beliefs_left[k] = left.beliefs[source]
        source, peak = selection.right_keypoint[k], selection.right_index[k]
        uv_right[k], conf_right[k] = right.uv[source, peak], right.confidence[source, peak]
        beliefs_right[k] = right.beliefs[source]
    return (ViewKeypoints(uv_left, conf_left, beliefs_left, left.roi),
            ViewKeypoints(uv_right, conf_right, beliefs_right, right.roi))


def triangulate_pair(pair: ViewPair, left_camera: CameraModel, right_camera: CameraModel,
                     config: PipelineConfig) -> StereoTriangulation:
    """Triangulate stage: the accepted keypoints in the left camera's optical frame.

    :func:`~.triangulation.triangulate_stereo` (DLT, optional Gauss-Newton
    refinement, reprojection and depth checks) with the config's
    ``refine_triangulation``, ``max_reprojection_error`` (pixels),
    ``min_depth`` (metres) and ``input_rectified``.

    Returns:
        a new :class:`~.triangulation.StereoTriangulation` (xyz in metres,
        left optical frame; NaN where not triangulated).
    """
    return triangulate_stereo(
        left_camera, right_camera, pair.left.uv, pair.right.uv,
        refine=config.refine_triangulation,
        max_reprojection_error_px=config.max_reprojection_error,
        min_depth=config.min_depth, points_are_rectified=config.input_rectified)
