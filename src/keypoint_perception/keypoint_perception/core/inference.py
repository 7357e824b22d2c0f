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
"""Model loading and stereo keypoint inference (no ROS).

:class:`KeypointDetector` runs a trained :class:`~.model.BeliefMapNet` on a
batch of images (both views of a stereo pair in one batch) and decodes one 2D
keypoint per belief map in original image pixels.  :class:`StereoKeypointPipeline`
adds the stereo part: symmetry-consistent labelling of the two views,
triangulation into the left camera's optical frame and the rigid template fit.
"""

import dataclasses
from dataclasses import dataclass, field
import time
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from .camera import camera_center, CameraModel, project, stereo_baseline
from .checkpoint import load_checkpoint, resolve_model_path
from .completion import complete_from_template, stereo_belief_search
from .config import DEFAULT_ROI_SCALE, PipelineConfig, TEST_TIME_AUGMENTATIONS
from .distortion import unrectify_points
from .heatmaps import decode_keypoints, merge_rotated_beliefs
from .model import BeliefNetConfig, normalize_images
from .rigid import fit_template_pose, refine_pose_reprojection
from .selection import select_consistent_candidates, shape_consistent
from .symmetry import match_stereo_symmetry
from .triangulation import REASON_TEMPLATE_OUTLIER, stereo_point_sigma, triangulate_stereo


def roi_around(points: np.ndarray, image_size: Tuple[int, int], input_size: Tuple[int, int],
               scale: float = DEFAULT_ROI_SCALE, min_gain: float = 1.25
               ) -> Optional[Tuple[int, int, int, int]]:
    """Region of interest for a second, zoomed look at an object.

    The window has the network input's aspect ratio, is centred on the
    points' bounding box and ``scale`` times its larger side (in input
    aspect), at least the network input's size (no upsampling past the
    image's own pixels), and is shifted to lie inside the image where it
    fits.  The network then sees the object at up to
    ``max(W, H * aspect) / w`` times the first look's resolution, the crop
    step of top-down pose estimators (Xiao et al. 2018, "Simple Baselines
    for Human Pose Estimation and Tracking").

    Args:
        points: (N, 2) float pixels of the object's keypoints in the image
            (detected or predicted); NaN rows are ignored.
        image_size: (W, H) of the image, pixels.
        input_size: (w_in, h_in) of the network input, pixels.
        scale: window side over the points' extent (> 1 leaves context).
        min_gain: smallest resolution gain over the whole image worth a
            second look.

    Returns:
        (x0, y0, w, h) int window in image pixels (x0, y0 may be negative or
        the window larger than the image when the object is near a border
        of an image of another aspect ratio; the outside is padded), or None
        with fewer than two finite points or a gain below ``min_gain``.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) < 2:
        return None
    width, height = image_size
    aspect = input_size[0] / input_size[1]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    w = max(scale * max(hi[0] - lo[0], (hi[1] - lo[1]) * aspect), float(input_size[0]))
    h = w / aspect
    if max(width, height * aspect) / w < min_gain:
        return None
    corner = []
    for c, side, full in ((0.5 * (lo[0] + hi[0]), w, width), (0.5 * (lo[1] + hi[1]), h, height)):
        start = c - 0.5 * side
        corner.append(min(max(start, 0.0), full - side) if side <= full else 0.5 * (full - side))
    return (int(round(corner[0])), int(round(corner[1])), int(round(w)), int(round(h)))


def window_overlap(roi: Tuple[int, int, int, int], image_shape):
    """Where an (x0, y0, w, h) pixel window and an image of ``image_shape`` (H, W, ...) overlap.

    Returns:
        (image_slices, window_slices): two (rows, columns) slice pairs of
        the same size, possibly empty, indexing the shared pixels in the
        image and in the (h, w) window.
    """
    x0, y0, w, h = (int(v) for v in roi)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = max(min(x0 + w, image_shape[1]), sx0), max(min(y0 + h, image_shape[0]), sy0)
    return ((slice(sy0, sy1), slice(sx0, sx1)),
            (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0)))


def crop_window(image: np.ndarray, roi: Tuple[int, int, int, int]) -> np.ndarray:
    """Cut the (x0, y0, w, h) window out of an (H, W[, C]) image, zero-padded outside.

    Returns:
        (h, w[, C]) array of the image's dtype.
    """
    out = np.zeros((int(roi[3]), int(roi[2])) + image.shape[2:], image.dtype)
    in_image, in_window = window_overlap(roi, image.shape)
    out[in_window] = image[in_image]
    return out


@dataclass
class Detection2D:
    """Keypoints of one object class in one image.

    Attributes:
        uv: (J, 2) float64 pixel coordinates in the original image (OpenCV
            convention), NaN where the keypoint was not found.
        confidence: (J,) float32 peak belief in [0, 1].
        beliefs: (J, h, w) float32 last-stage belief maps (network resolution).
        roi: (x0, y0, w, h) int window of the image that ``beliefs`` cover,
            pixels; None for the whole image.
    """

    uv: np.ndarray
    confidence: np.ndarray
    beliefs: np.ndarray
    roi: Optional[Tuple[int, int, int, int]] = None


class KeypointDetector:
    """Belief-map network inference on batches of images (torch, CPU or CUDA)."""

    def __init__(self, model_path: str, device: str = 'cpu', num_threads: int = 0,
                 peak_threshold: float = 0.1, nms_kernel: int = 3,
                 test_time_augmentation: str = 'auto'):
        """Load weights.

        Args:
            model_path: checkpoint file or shipped model name.
            device: torch device string.
            num_threads: torch intra-op threads (0 keeps torch's default).
            peak_threshold: minimum belief of a detected keypoint.
            nms_kernel: odd NMS window in belief cells.
            test_time_augmentation: one of :data:`TEST_TIME_AUGMENTATIONS`, or
                ``'auto'`` for the one the checkpoint was validated with
                (``meta['test_time_augmentation']``, ``'none'`` if absent).
                ``'rot180'`` doubles the network's work.

        Raises:
            FileNotFoundError: unknown model.
            ValueError: unknown test-time augmentation.
        """
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        self.model_path = resolve_model_path(model_path)
        model, self.object_class, ckpt = load_checkpoint(self.model_path, device)
        self.model = model.to(device)
        self.meta = ckpt.get('meta', {})
        self.config: BeliefNetConfig = model.config
        self.device = torch.device(device)
        self.peak_threshold = peak_threshold
        self.nms_kernel = nms_kernel
        if test_time_augmentation == 'auto':
            test_time_augmentation = self.meta.get('test_time_augmentation', 'none')
        if test_time_augmentation not in TEST_TIME_AUGMENTATIONS:
            raise ValueError(f'unknown test-time augmentation {test_time_augmentation!r}; '
                             f'expected auto or one of {TEST_TIME_AUGMENTATIONS}')
        self.test_time_augmentation = test_time_augmentation

    def preprocess(self, images: Sequence[np.ndarray], rois=None) -> torch.Tensor:
        """Resize (H, W, 3) uint8 RGB (or (H, W) grey) images to the input size.

        Args:
            images: the images.
            rois: optional per-image (x0, y0, w, h) windows (None entries:
                whole image), cut out with :func:`crop_window` first.

        Returns:
            (B, 3, h_in, w_in) float32 normalized tensor on the device.
        """
        size = (self.config.input_width, self.config.input_height)
        batch = []
        for n, img in enumerate(images):
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
            if rois is not None and rois[n] is not None:
                img = crop_window(img, rois[n])
            batch.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
        arr = torch.from_numpy(np.stack(batch)).to(self.device)
        return normalize_images(arr)

    @torch.no_grad()
    def forward(self, batch: torch.Tensor) -> np.ndarray:
        """Last-stage belief maps of a preprocessed batch, with test-time augmentation.

        Args:
            batch: (B, 3, h_in, w_in) float32 tensor from :meth:`preprocess`.

        Returns:
            (B, J, h, w) float32 belief maps; with ``'rot180'`` the mean of
            the batch's and its rotated copy's maps (one forward pass of 2B).
        """
        if self.test_time_augmentation == 'rot180':
            both = torch.cat([batch, torch.rot90(batch, 2, dims=(2, 3))])
            out = self.model(both)[-1].float().cpu().numpy()
            n = len(batch)
            return merge_rotated_beliefs(out[:n], out[n:], self.object_class.symmetries)
        return self.model(batch)[-1].float().cpu().numpy()

    def infer(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Last-stage belief maps, (B, J, h, w) float32 (see :meth:`forward`)."""
        return self.forward(self.preprocess(images))

    def candidates(self, beliefs: np.ndarray, image_size, max_candidates: int = 1,
                   offset=(0.0, 0.0), peak_threshold: Optional[float] = None):
        """Peaks of one image's (J, h, w) beliefs, see :func:`~.heatmaps.decode_keypoints`.

        ``image_size`` (w, h) is the size of the image, or of the window at
        ``offset`` (x0, y0) that the beliefs cover; ``peak_threshold`` (None =
        the detector's) is the minimum belief of a peak.

        Returns:
            uv (J, K, 2) float64 image pixels, confidence (J, K) float32,
            labelling perm (J,) int.
        """
        threshold = self.peak_threshold if peak_threshold is None else peak_threshold
        return decode_keypoints(beliefs, image_size, self.object_class.symmetries,
                                max_candidates, self.nms_kernel, threshold, offset)

    def decode(self, beliefs: np.ndarray, image_size) -> Detection2D:
        """Decode (J, h, w) beliefs of one image of ``image_size`` (w, h): top peaks."""
        uv, conf, perm = self.candidates(beliefs, image_size)
        return Detection2D(uv[:, 0], conf[:, 0], beliefs[perm])

    def detect(self, images: Sequence[np.ndarray]) -> List[Detection2D]:
        """Detect keypoints in each image (one batch).

        Args:
            images: (H, W, 3) uint8 RGB or (H, W) uint8 grey arrays; sizes may
                differ.

        Returns:
            one :class:`Detection2D` per image, in original pixels.
        """
        beliefs = self.infer(images)
        return [self.decode(b, (img.shape[1], img.shape[0])) for b, img in zip(beliefs, images)]


@dataclass
class StereoResult:
    """Output of :meth:`StereoKeypointPipeline.process` for one object class.

    Attributes:
        left, right: 2D detections; ``right`` is relabelled to agree with
            ``left`` under the object's symmetries.
        xyz: (J, 3) float64 metres in the left camera's optical frame (NaN
            where not triangulated).
        valid: (J,) bool, triangulated and accepted.
        reprojection_error_px: (J,) float64 RMS over both views (NaN if
            invalid).
        confidence: (J,) float32, min of the two views' confidences.
        pose: (4, 4) float64 object-to-left-optical transform from the
            template fit, or None.
        pose_rmse: template fit RMS residual in metres (NaN without pose).
        timings_ms: per-stage wall time.
    """

    left: Detection2D
    right: Detection2D
    xyz: np.ndarray
    valid: np.ndarray
    reprojection_error_px: np.ndarray
    confidence: np.ndarray
    pose: Optional[np.ndarray] = None
    pose_rmse: float = float('nan')
    timings_ms: Dict[str, float] = field(default_factory=dict)


#: Largest distance of a completed keypoint from the template's prediction,
#: relative to the template's median keypoint distance.
COMPLETION_TOLERANCE = 0.15


class StereoKeypointPipeline:
    """Stereo pair in, 3D keypoints in the left optical frame out."""

    def __init__(self, detector: KeypointDetector, config: Optional[PipelineConfig] = None):
        """Keep the detector and the config (see :class:`~.config.PipelineConfig`).

        ``config.input_rectified`` says the images are already rectified, so
        their pixels are used with ``P`` directly (ROS ``image_rect`` topics
        carry the raw camera's CameraInfo); otherwise keypoints are undistorted
        and rectified with ``K``, ``D``, ``R``, ``P`` first.
        ``template_check`` chooses among several belief peaks per keypoint the
        ones that agree across views and with the template's shape
        (:func:`~.selection.select_consistent_candidates`), falling back to the
        highest peaks when no consistent choice exists.
        ``template_completion`` looks for keypoints still missing after
        triangulation where the template fitted to at least three others
        predicts them, accepting a belief of ``completion_min_belief`` in both
        views within ``completion_radius`` (original pixels) of the prediction
        and a triangulated point within ``completion_tolerance`` times the
        template's median keypoint distance of it.  With
        ``localization_sigma`` > 0 (a peak's standard deviation in belief
        cells, per view), both shape checks accept up to twice the
        triangulation noise this causes at the keypoints' depth when that
        exceeds the relative tolerance, capped at half the template distance
        (:func:`~.triangulation.stereo_point_sigma`,
        :func:`~.selection.distance_sigma`).  ``completion_search`` says how
        completion looks near the prediction: ``'views'`` takes each view's
        own peak, ``'stereo'`` the 3D point whose projections have the
        highest product of beliefs.  ``roi_refinement`` runs the whole
        pipeline a second time on a region of interest around the object in
        each view (:func:`roi_around` with ``roi_scale``); the second look's
        result replaces the first when it triangulates at least as many
        keypoints.

        Args:
            detector: the network.
            config: the parameters; None = :class:`~.config.PipelineConfig`'s
                defaults (the node's: ``input_rectified`` true).
        """
        config = PipelineConfig() if config is None else config
        self.config = config
        self.detector = detector
        self.completion_search = config.completion_search
        self.roi_refinement = config.roi_refinement
        self.roi_scale = config.roi_scale
        self.min_confidence = config.min_confidence
        self.peak_threshold = config.peak_threshold
        self.max_reprojection_error_px = config.max_reprojection_error
        self.min_depth_m = config.min_depth
        self.refine = config.refine_triangulation
        self.fit_pose = config.fit_pose
        self.input_rectified = config.input_rectified
        self.template_check = config.template_check
        self.template_completion = config.template_completion
        self.completion_min_belief = config.completion_min_belief
        self.completion_radius_px = config.completion_radius
        self.completion_tolerance = COMPLETION_TOLERANCE
        self.localization_sigma_cells = config.localization_sigma

    def _cell_px(self, image_width: int) -> float:
        """Size of one belief cell in original pixels, for an image (or window) this wide."""
        return self.detector.config.stride * image_width / self.detector.config.input_width

    def _object_rois(self, result: 'StereoResult', sizes, left_camera, right_camera):
        """Second-look windows of both views (see :func:`roi_around`), or None.

        The window of each view bounds its accepted keypoints and, with a
        fitted pose, the projections of the whole template (so that missing
        keypoints are inside).  ``sizes`` holds each image's (W, H) in
        pixels; the windows are (x0, y0, w, h) int pixels, and None is
        returned when either view has none.
        """
        projected = [None, None]
        if result.pose is not None:
            xyz = self.detector.object_class.template @ result.pose[:3, :3].T + result.pose[:3, 3]
            x_rect = xyz @ left_camera.R.T + camera_center(left_camera.P)
            for k, cam in enumerate((left_camera, right_camera)):
                projected[k] = (project(cam.P, x_rect) if self.input_rectified
                                else unrectify_points(cam, x_rect))
        input_size = (self.detector.config.input_width, self.detector.config.input_height)
        rois = []
        for det, size, proj in zip((result.left, result.right), sizes, projected):
            pts = det.uv if proj is None else np.concatenate([det.uv, proj])
            rois.append(roi_around(pts, size, input_size, self.roi_scale))
        return None if None in rois else rois

    @staticmethod
    def _apply_selection(sel, left: Detection2D, right: Detection2D, cl, cr, symmetries):
        """Build detections from the selected candidates (NaN where none was chosen).

        The right belief maps are relabelled with the symmetry permutation
        that agrees with most selected pairs, so that keypoint j's map means
        the same corner in both views (needed by the template completion).
        """
        j = len(sel.left_index)
        uv_l, uv_r = np.full((j, 2), np.nan), np.full((j, 2), np.nan)
        c_l, c_r = np.zeros(j, np.float32), np.zeros(j, np.float32)
        chosen = sel.left_index >= 0
        left_kp = sel.left_keypoint if sel.left_keypoint is not None else np.arange(j)
        perms = [np.arange(j)] + [np.asarray(p, dtype=int) for p in symmetries]
        perm = max(perms, key=lambda p: int(np.sum(p[chosen] == sel.right_keypoint[chosen])))
        beliefs_r = right.beliefs[perm].copy()
        beliefs_l = left.beliefs.copy()
        for k in np.flatnonzero(chosen):
            lk, a = left_kp[k], sel.left_index[k]
            uv_l[k], c_l[k] = cl[0][lk, a], cl[1][lk, a]
            rk, b = sel.right_keypoint[k], sel.right_index[k]
            uv_r[k], c_r[k] = cr[0][rk, b], cr[1][rk, b]
            beliefs_l[k] = left.beliefs[lk]
            beliefs_r[k] = right.beliefs[rk]
        return (Detection2D(uv_l, c_l, beliefs_l, left.roi),
                Detection2D(uv_r, c_r, beliefs_r, right.roi))

    def _complete(self, fit, left: Detection2D, right: Detection2D, sizes, offsets, tri, conf,
                  left_camera, right_camera):
        """Template completion (see :func:`~.completion.complete_from_template`), in place.

        Missing keypoints found near the fitted template's prediction in both
        views are triangulated and kept if they pass the reprojection check
        and lie within ``completion_tolerance`` (relative to the template's
        median pairwise distance) of the prediction; ``left``, ``right``,
        ``conf`` are updated in place and the template refitted.  The
        prediction uses the pose refined on the image measurements
        (:func:`~.rigid.refine_pose_reprojection`), not the noisier fit to
        triangulated points.

        Returns:
            the (re)fitted :class:`~.rigid.TemplateFit` and the updated
            :class:`~.triangulation.StereoTriangulation`.
        """
        oc = self.detector.object_class
        predicted = self._predict_rect(fit, tri, tri.valid, left_camera, right_camera)[0]
        predicted_rect = predicted @ left_camera.R.T + camera_center(left_camera.P)
        cell_px = self._cell_px(sizes[0][0])
        search = (stereo_belief_search if self.completion_search == 'stereo'
                  else complete_from_template)
        found = search(
            left_camera, right_camera, left.beliefs, right.beliefs, sizes[0], sizes[1],
            predicted_rect, ~tri.valid, self.input_rectified,
            search_radius_cells=max(1, int(round(self.completion_radius_px / cell_px))),
            min_belief=self.completion_min_belief, offset_left=offsets[0],
            offset_right=offsets[1])
        ul, ur, cfl, cfr = (found.uv_left, found.uv_right, found.confidence_left,
                            found.confidence_right)
        new = ~tri.valid & np.isfinite(ul).all(axis=1) & np.isfinite(ur).all(axis=1)
        if not new.any():
            return fit, tri
        t2 = triangulate_stereo(
            left_camera, right_camera, np.where(new[:, None], ul, np.nan),
            np.where(new[:, None], ur, np.nan), refine=self.refine,
            max_reprojection_error_px=self.max_reprojection_error_px,
            min_depth=self.min_depth_m, points_are_rectified=self.input_rectified)
        d_ref = np.linalg.norm(oc.template[:, None] - oc.template[None], axis=2)
        median = np.median(d_ref[np.triu_indices(len(d_ref), 1)])
        tol = self.completion_tolerance * median
        f, b = left_camera.P[0, 0], stereo_baseline(left_camera, right_camera)
        if self.localization_sigma_cells > 0 and f > 0 and b > 0:
            depth = predicted_rect[:, 2] - camera_center(left_camera.P)[2]
            sz, sxy = stereo_point_sigma(depth, f, b, self.localization_sigma_cells * cell_px)
            tol = np.clip(2.0 * np.sqrt(sz ** 2 + 2.0 * sxy ** 2), tol, max(tol, 0.5 * median))
        with np.errstate(invalid='ignore'):
            ok = new & t2.valid & (np.linalg.norm(t2.xyz - predicted, axis=1) <= tol)
        if not ok.any():
            return fit, tri
        left.uv[ok], right.uv[ok] = ul[ok], ur[ok]
        left.confidence[ok], right.confidence[ok] = cfl[ok], cfr[ok]
        conf[ok] = np.minimum(cfl[ok], cfr[ok])
        merged = {name: np.where(ok[:, None] if getattr(tri, name).ndim == 2 else ok,
                                 getattr(t2, name), getattr(tri, name))
                  for name in ('xyz', 'reprojection_error_px', 'valid', 'uv_left_rect',
                               'uv_right_rect', 'xyz_rect')}
        merged['reason'] = tuple(t2.reason[j] if ok[j] else r for j, r in enumerate(tri.reason))
        tri = dataclasses.replace(tri, **merged)
        refit = fit_template_pose(oc.template, tri.xyz, tri.valid, oc.symmetries)
        return (refit if refit is not None else fit), tri

    def _predict_rect(self, fit, tri, keep: np.ndarray, left_camera, right_camera):
        """Template keypoints under the pose refined on the ``keep`` observations.

        Returns:
            (J, 3) left optical points, (J, 2) left and (J, 2) right rectified
            pixels, and the RMS reprojection error (pixels) of the ``keep``
            observations.
        """
        template = self.detector.object_class.template[list(fit.permutation)]
        seen = keep[:, None]
        R, t, rms = refine_pose_reprojection(
            template, fit.R, fit.t, left_camera, right_camera,
            np.where(seen, tri.uv_left_rect, np.nan), np.where(seen, tri.uv_right_rect, np.nan))
        xyz = template @ R.T + t
        x_rect = xyz @ left_camera.R.T + camera_center(left_camera.P)
        return (xyz, project(left_camera.P, x_rect),
                project(right_camera.P, x_rect), rms)

    def _reject_template_outlier(self, left: Detection2D, right: Detection2D, tri, conf,
                                 left_camera, right_camera):
        """Drop a keypoint that the template fitted to the others contradicts.

        With at least four triangulated keypoints, the pose is fitted to each
        leave-one-out subset (:func:`~.rigid.refine_pose_reprojection`);
        the subset whose own reprojection RMS is lowest is the most
        self-consistent, and the keypoint it leaves out is marked missing when
        its rectified-pixel residual under that pose exceeds
        ``completion_radius_px`` in either view, so that template completion
        can look for it where it should be.  ``left``, ``right`` and ``conf``
        are updated in place.

        Returns:
            the updated :class:`~.triangulation.StereoTriangulation`.
        """
        oc = self.detector.object_class
        best_rms, worst, worst_j = np.inf, 0.0, -1
        for j in np.flatnonzero(tri.valid):
            keep = tri.valid.copy()
            keep[j] = False
            fit = fit_template_pose(oc.template, tri.xyz, keep, oc.symmetries)
            if fit is None:
                continue
            _, pl, pr, rms = self._predict_rect(fit, tri, keep, left_camera, right_camera)
            if rms < best_rms:
                best_rms, worst_j = rms, j
                worst = max(np.linalg.norm(pl[j] - tri.uv_left_rect[j]),
                            np.linalg.norm(pr[j] - tri.uv_right_rect[j]))
        if worst_j < 0 or not worst > self.completion_radius_px:
            return tri
        # missing in 2D too, so that template completion looks for it afresh
        left.uv[worst_j] = right.uv[worst_j] = np.nan
        conf[worst_j] = 0.0
        drop = np.zeros(len(tri.valid), bool)
        drop[worst_j] = True
        return self._reject_3d(tri, drop)

    @staticmethod
    def _reject_3d(tri, drop: np.ndarray):
        """Invalidate the ``drop`` (J,) bool 3D points as template outliers.

        Returns:
            a new :class:`~.triangulation.StereoTriangulation` (NaN ``xyz`` and
            ``xyz_rect`` rows, reason ``template_outlier``).
        """
        valid = tri.valid & ~drop
        reason = tuple(REASON_TEMPLATE_OUTLIER if d else r
                       for d, r in zip(drop & tri.valid, tri.reason))
        return dataclasses.replace(tri, valid=valid, reason=reason,
                                   xyz=np.where(valid[:, None], tri.xyz, np.nan),
                                   xyz_rect=np.where(valid[:, None], tri.xyz_rect, np.nan))

    def process(self, left_image: np.ndarray, right_image: np.ndarray,
                left_camera: CameraModel,
                right_camera: CameraModel) -> StereoResult:
        """Detect, match, triangulate and fit one stereo pair.

        Args:
            left_image, right_image: (H, W, 3) uint8 RGB or (H, W) grey, raw or
                rectified as described by the camera models.
            left_camera, right_camera: calibrations of the two views.

        Returns:
            :class:`StereoResult`; with ``roi_refinement`` its timings add
            ``roi_pass`` (milliseconds of the second look, 0 when skipped).
        """
        images = (left_image, right_image)
        result = self._look(images, None, left_camera, right_camera)
        if self.roi_refinement == 'off':
            return result
        t0 = time.perf_counter()
        wanted = self.roi_refinement == 'always' or not result.valid.all()
        sizes = [(im.shape[1], im.shape[0]) for im in images]
        rois = (self._object_rois(result, sizes, left_camera, right_camera)
                if wanted and result.valid.any() else None)
        timings = dict(result.timings_ms)
        if rois is not None:
            second = self._look(images, rois, left_camera, right_camera)
            if second.valid.sum() >= result.valid.sum():
                result = second
        timings['roi_pass'] = (time.perf_counter() - t0) * 1e3
        result.timings_ms = timings
        return result

    def _look(self, images, rois, left_camera: CameraModel,
              right_camera: CameraModel) -> StereoResult:
        """One look at a stereo pair: the network on both views' windows, then 3D.

        Args:
            images: (left, right) images.
            rois: None (whole images) or two (x0, y0, w, h) windows.
            left_camera, right_camera: calibrations of the whole images.

        Returns:
            :class:`StereoResult` in whole-image pixels.
        """
        oc = self.detector.object_class
        t0 = time.perf_counter()
        batch = self.detector.preprocess(images, rois)
        t1 = time.perf_counter()
        beliefs = self.detector.forward(batch)
        t2 = time.perf_counter()
        if rois is None:
            rois = [None, None]
        windows = [(0, 0, im.shape[1], im.shape[0]) if roi is None else roi
                   for im, roi in zip(images, rois)]
        sizes = [w[2:] for w in windows]
        offsets = [w[:2] for w in windows]
        check = self.template_check and oc.num_keypoints >= 3 and np.isfinite(oc.template).all()
        k = 3 if check else 1  # several peaks only when the template check chooses
        cl = self.detector.candidates(beliefs[0], sizes[0], k, offsets[0], self.peak_threshold)
        cr = self.detector.candidates(beliefs[1], sizes[1], k, offsets[1], self.peak_threshold)
        left = Detection2D(cl[0][:, 0], cl[1][:, 0], beliefs[0][cl[2]], rois[0])
        right = Detection2D(cr[0][:, 0], cr[1][:, 0], beliefs[1][cr[2]], rois[1])
        selection = None
        if check:
            cell_px = self._cell_px(sizes[0][0])
            selection = select_consistent_candidates(
                left_camera, right_camera, cl[0], cl[1], cr[0], cr[1], oc.template,
                oc.symmetries, points_are_rectified=self.input_rectified,
                min_confidence=self.peak_threshold,
                epipolar_tolerance_px=max(4.0, cell_px),
                visible_side=oc.extra.get('visible_side'),
                interchangeable=oc.extra.get('interchangeable', ()),
                max_pairs_per_keypoint=6 if oc.extra.get('interchangeable') else 4,
                localization_sigma_px=self.localization_sigma_cells * cell_px)
        if selection is not None:
            # geometrically verified peaks are kept even below min_confidence
            left, right = self._apply_selection(selection, left, right, cl, cr,
                                                oc.symmetries)
            accepted = selection.left_index >= 0
        elif oc.symmetries:
            perm = match_stereo_symmetry(
                left_camera, right_camera, left.uv, right.uv, oc.symmetries,
                points_are_rectified=self.input_rectified)
            perm = list(perm)
            right = Detection2D(right.uv[perm], right.confidence[perm], right.beliefs[perm],
                                right.roi)
        conf = np.minimum(left.confidence, right.confidence)
        if selection is None:
            accepted = conf >= self.min_confidence
        # rejected keypoints are reported as missing (NaN) in both views
        left = Detection2D(np.where(accepted[:, None], left.uv, np.nan), left.confidence,
                           left.beliefs, rois[0])
        right = Detection2D(np.where(accepted[:, None], right.uv, np.nan), right.confidence,
                            right.beliefs, rois[1])
        t3 = time.perf_counter()
        tri = triangulate_stereo(
            left_camera, right_camera, left.uv, right.uv, refine=self.refine,
            max_reprojection_error_px=self.max_reprojection_error_px,
            min_depth=self.min_depth_m, points_are_rectified=self.input_rectified)
        fit = None
        if check and selection is None and tri.valid.sum() >= 2:
            # the highest peaks, which no consistent selection vouched for: their
            # 2D detections stand, 3D points off the template's shape do not
            tri = self._reject_3d(tri, ~shape_consistent(tri.xyz, tri.valid, oc.template))
        # verification and completion need a rigid template (finite positions)
        complete = self.template_completion and bool(np.isfinite(oc.template).all())
        if complete and tri.valid.sum() >= 4:
            tri = self._reject_template_outlier(left, right, tri, conf, left_camera,
                                                right_camera)
        if (self.fit_pose or complete) and tri.valid.sum() >= 3:
            fit = fit_template_pose(oc.template, tri.xyz, tri.valid, oc.symmetries)
        if complete and fit is not None and not tri.valid.all():
            fit, tri = self._complete(fit, left, right, sizes, offsets, tri, conf,
                                      left_camera, right_camera)
        pose, rmse = None, float('nan')
        if self.fit_pose and fit is not None:
            pose = np.eye(4)
            pose[:3, :3], pose[:3, 3] = fit.R, fit.t
            rmse = float(fit.rmse)
        t4 = time.perf_counter()
        timings = {'preprocess': (t1 - t0) * 1e3, 'network': (t2 - t1) * 1e3,
                   'decode': (t3 - t2) * 1e3, 'triangulate_fit': (t4 - t3) * 1e3}
        return StereoResult(left, right, tri.xyz, tri.valid, tri.reprojection_error_px, conf,
                            pose, rmse, timings)
