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
"""Stereo pair in, 3D keypoints in the left camera's optical frame out (no ROS).

:class:`StereoKeypointPipeline` chains the stages, each a function that
returns new values and changes nothing it is given:

observe (:func:`~.stereo_stages.observe_pair`) -> decode
(:func:`~.views.decode_view`) -> select across views
(:func:`~.stereo_stages.select_across_views`) -> triangulate
(:func:`~.stereo_stages.triangulate_pair`) -> verify against the template
(:func:`~.template_stages.verify_against_template`) -> complete
(:func:`~.template_stages.complete_from_fit`),

optionally twice: a second, zoomed look on a window around the object in
each view (:func:`object_windows`).  Every parameter comes from one
:class:`~.config.PipelineConfig`.
"""

from dataclasses import dataclass, field
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .camera import camera_center, CameraModel, project
from .config import PipelineConfig
from .distortion import unrectify_points
from .objects import ObjectClass
from .roi import PixelWindow, roi_around
from .stereo_stages import observe_pair, observe_pairs, select_across_views, StereoBeliefs, \
    triangulate_pair
from .template_stages import complete_from_fit, verify_against_template
from .views import decode_view, ViewKeypoints

#: Belief peaks kept per keypoint when the template check chooses among them.
TEMPLATE_CHECK_CANDIDATES = 3


@dataclass(frozen=True, eq=False)
class StereoResult:
    """Output of :meth:`StereoKeypointPipeline.process` for one object class.

    Attributes:
        left, right: :class:`~.views.ViewKeypoints` of each view; ``right``
            is relabelled to agree with ``left`` under the object's
            symmetries; original-image pixels, NaN where not accepted.
        xyz: (J, 3) float64 metres in the left camera's optical frame (NaN
            where not triangulated).
        valid: (J,) bool, triangulated and accepted.
        reprojection_error_px: (J,) float64 RMS over both views, rectified
            pixels (NaN if invalid).
        confidence: (J,) float32, min of the two views' confidences.
        pose: (4, 4) float64 object-to-left-optical transform from the
            template fit, or None.
        pose_rmse: template fit RMS residual in metres (NaN without pose).
        timings_ms: wall time per stage, milliseconds: ``preprocess``,
            ``network``, ``decode`` (decode and select across views),
            ``triangulate_fit`` (triangulate, verify, complete) and, with
            a second look configured, ``roi_pass``.
    """

    left: ViewKeypoints
    right: ViewKeypoints
    xyz: np.ndarray
    valid: np.ndarray
    reprojection_error_px: np.ndarray
    confidence: np.ndarray
    pose: Optional[np.ndarray] = None
    pose_rmse: float = float('nan')
    timings_ms: Dict[str, float] = field(default_factory=dict)


def object_windows(result: StereoResult, object_class: ObjectClass,
                   image_sizes: Sequence[Tuple[int, int]], input_size: Tuple[int, int],
                   left_camera: CameraModel, right_camera: CameraModel,
                   config: PipelineConfig) -> Optional[Tuple[PixelWindow, PixelWindow]]:
    """Second-look windows of both views (see :func:`~.roi.roi_around`), or None.

    The window of each view bounds its accepted keypoints and, with a
    fitted pose, the projections of the whole template (so that missing
    keypoints are inside).

    Args:
        result: the first look's result.
        object_class: the class (template).
        image_sizes: (W, H) of the left and right images, pixels.
        input_size: (w_in, h_in) of the network input, pixels.
        left_camera, right_camera: calibrations of the whole images.
        config: ``roi_scale`` and ``input_rectified``.

    Returns:
        the (left, right) :class:`~.roi.PixelWindow`, or None when either
        view has none.
    """
    projected = [None, None]
    if result.pose is not None:
        xyz = object_class.template @ result.pose[:3, :3].T + result.pose[:3, 3]
        xyz_rect = xyz @ left_camera.R.T + camera_center(left_camera.P)
        for k, camera in enumerate((left_camera, right_camera)):
            projected[k] = (project(camera.P, xyz_rect) if config.input_rectified
                            else unrectify_points(camera, xyz_rect))
    windows = []
    for view, size, template_uv in zip((result.left, result.right), image_sizes, projected):
        points = view.uv if template_uv is None else np.concatenate([view.uv, template_uv])
        windows.append(roi_around(points, size, input_size, config.roi_scale))
    return None if None in windows else (windows[0], windows[1])


class StereoKeypointPipeline:
    """Stereo pair in, 3D keypoints in the left optical frame out.

    Attributes:
        detector: the :class:`~.detector.KeypointDetector` (network and
            object class).
        config: the :class:`~.config.PipelineConfig`; a new config means a
            new pipeline (cheap: the detector is shared).
    """

    def __init__(self, detector, config: PipelineConfig):
        """Keep the detector and the config.

        Args:
            detector: a :class:`~.detector.KeypointDetector`.
            config: the parameters (:class:`~.config.PipelineConfig`; its
                defaults are the node's, e.g. ``input_rectified`` true).
        """
        self.detector = detector
        self.config = config

    def observe(self, left_image: np.ndarray, right_image: np.ndarray) -> StereoBeliefs:
        """Observe stage of the first look: the network on both whole images.

        For a caller that runs the network of one pair while the previous
        pair is post-processed: ``process(..., observed=observe(...))``
        equals ``process(...)``.

        Returns:
            new :class:`~.stereo_stages.StereoBeliefs`.
        """
        return observe_pair(self.detector, left_image, right_image)

    def process(self, left_image: np.ndarray, right_image: np.ndarray,
                left_camera: CameraModel, right_camera: CameraModel,
                observed: Optional[StereoBeliefs] = None) -> StereoResult:
        """Detect, match, triangulate and fit one stereo pair.

        With ``config.roi_refinement`` other than ``'off'`` (``'always'``,
        or ``'incomplete'`` when the first look left keypoints out of 3D)
        the whole chain runs a second time on a window around the object in
        each view (:func:`object_windows`), so that the network sees a small
        or far object at a higher resolution; the second look's result
        replaces the first when it triangulates at least as many keypoints;
        ``config.roi_augmentation`` false runs it without the detector's
        test-time augmentation.

        Args:
            left_image, right_image: (H, W, 3) uint8 RGB or (H, W) grey, raw or
                rectified as ``config.input_rectified`` says (not changed).
            left_camera, right_camera: calibrations of the two views.
            observed: the first look's observe stage of these images
                (:meth:`observe`), or None to run it here.

        Returns:
            a new :class:`StereoResult`; with ``roi_refinement`` its timings
            add ``roi_pass`` (milliseconds of the second look, 0 when
            skipped).
        """
        return self.process_batch([(left_image, right_image)], [(left_camera, right_camera)],
                                  None if observed is None else [observed])[0]

    def process_batch(self, pairs: Sequence[Tuple[np.ndarray, np.ndarray]],
                      cameras: Sequence[Tuple[CameraModel, CameraModel]],
                      observed: Optional[Sequence[StereoBeliefs]] = None
                      ) -> List[StereoResult]:
        """:meth:`process` for N stereo pairs, with their network passes batched.

        The first looks of all pairs run in one network batch
        (:func:`~.stereo_stages.observe_pairs`, 2N views), then each pair's
        decoding, triangulation and fit; the second looks the pairs take
        run in one more batch.  Each result is :meth:`process`'s on its
        pair alone up to the backend's batch arithmetic (float32 round-off
        in the belief maps): the batched path for a GPU or for offline
        data.

        Args:
            pairs: N (left, right) images as for :meth:`process` (not
                changed); pairs may differ in size.
            cameras: N (left_camera, right_camera) calibrations.
            observed: None, or the N pairs' first-look observe stages.

        Returns:
            N new :class:`StereoResult`; ``preprocess`` and ``network``
            timings are each pair's share of its batch.

        Raises:
            ValueError: ``cameras`` or ``observed`` of another length than
                ``pairs``.
        """
        config = self.config
        if len(cameras) != len(pairs) or (observed is not None and len(observed) != len(pairs)):
            raise ValueError(f'{len(pairs)} stereo pairs but {len(cameras)} camera pairs'
                             + ('' if observed is None else f' and {len(observed)} observed'))
        if observed is None:
            observed = observe_pairs(self.detector, pairs)
        results = [self.look(*images, *rig, observed=seen)
                   for images, rig, seen in zip(pairs, cameras, observed)]
        if config.roi_refinement == 'off':
            return results
        windows, roi_ms = [], []
        for result, images, rig in zip(results, pairs, cameras):
            t0 = time.perf_counter()
            windows.append(self.second_look_windows(result, images, rig))
            roi_ms.append((time.perf_counter() - t0) * 1e3)
        taken = [k for k, pair_windows in enumerate(windows) if pair_windows is not None]
        t0 = time.perf_counter()
        second_observed = dict(zip(taken, observe_pairs(
            self.detector, [pairs[k] for k in taken], [windows[k] for k in taken],
            config.roi_augmentation)))
        share_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(taken))
        out = []
        for k, result in enumerate(results):
            timings = dict(result.timings_ms)
            if k in second_observed:
                t0 = time.perf_counter()
                second = self.look(*pairs[k], *cameras[k], windows[k], second_observed[k])
                if second.valid.sum() >= result.valid.sum():
                    result = second
                roi_ms[k] += share_ms + (time.perf_counter() - t0) * 1e3
            timings['roi_pass'] = roi_ms[k]
            out.append(StereoResult(result.left, result.right, result.xyz, result.valid,
                                    result.reprojection_error_px, result.confidence,
                                    result.pose, result.pose_rmse, timings))
        return out

    def second_look_windows(self, result: StereoResult,
                            images: Tuple[np.ndarray, np.ndarray],
                            rig: Tuple[CameraModel, CameraModel]
                            ) -> Optional[Tuple[PixelWindow, PixelWindow]]:
        """Return the second look's windows of a pair, or None where it takes none.

        ``config.roi_refinement`` decides whether the pair wants one
        (``'always'``, or ``'incomplete'`` with keypoints left out of 3D);
        :func:`object_windows` whether it is worth it.

        Args:
            result: the pair's first look (:meth:`look` on the whole images).
            images: the (left, right) images.
            rig: the (left, right) camera models.
        """
        config = self.config
        mode = config.roi_refinement
        wanted = mode == 'always' or (mode == 'incomplete' and not result.valid.all())
        if not (wanted and result.valid.any()):
            return None
        sizes = [(image.shape[1], image.shape[0]) for image in images]
        return object_windows(result, self.detector.object_class, sizes,
                              self.detector.input_size, *rig, config)

    def look(self, left_image: np.ndarray, right_image: np.ndarray, left_camera: CameraModel,
             right_camera: CameraModel, rois: Optional[Sequence[PixelWindow]] = None,
             observed: Optional[StereoBeliefs] = None) -> StereoResult:
        """One look at a stereo pair: every stage once, on whole images or on windows.

        Args:
            left_image, right_image: the images (not changed).
            left_camera, right_camera: calibrations of the whole images.
            rois: None (whole images) or the (left, right) windows.
            observed: the observe stage's output for these images and
                windows, or None to run it here.

        Returns:
            a new :class:`StereoResult` in whole-image pixels.
        """
        config, object_class = self.config, self.detector.object_class
        rigid_template = bool(np.isfinite(object_class.template).all())
        # choosing among several peaks and the shape checks need >= 3 rigid keypoints
        template_check = (config.template_check and object_class.num_keypoints >= 3
                          and rigid_template)
        # verification and completion need a rigid template (finite positions)
        completion = config.template_completion and rigid_template
        if observed is None:
            observed = observe_pair(self.detector, left_image, right_image, rois)
        t0 = time.perf_counter()
        peaks = TEMPLATE_CHECK_CANDIDATES if template_check else 1
        left, right = (decode_view(view.beliefs, view.window, object_class.symmetries,
                                   config.peak_threshold, peaks, view.roi)
                       for view in (observed.left, observed.right))
        pair = select_across_views(left, right, left_camera, right_camera, object_class,
                                   config, observed.cell_px, template_check)
        t1 = time.perf_counter()
        triangulation = triangulate_pair(pair, left_camera, right_camera, config)
        estimate = verify_against_template(pair, triangulation, left_camera, right_camera,
                                           object_class, config, template_check, completion)
        if completion and estimate.fit is not None and not estimate.triangulation.valid.all():
            estimate = complete_from_fit(estimate, observed, left_camera, right_camera,
                                         object_class, config)
        pose, rmse = None, float('nan')
        if config.fit_pose and estimate.fit is not None:
            pose = np.eye(4)
            pose[:3, :3], pose[:3, 3] = estimate.fit.R, estimate.fit.t
            rmse = float(estimate.fit.rmse)
        t2 = time.perf_counter()
        timings = dict(observed.timings_ms, decode=(t1 - t0) * 1e3,
                       triangulate_fit=(t2 - t1) * 1e3)
        points = estimate.triangulation
        return StereoResult(estimate.left, estimate.right, points.xyz, points.valid,
                            points.reprojection_error_px, estimate.confidence, pose, rmse,
                            timings)
