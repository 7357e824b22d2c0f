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
"""Training data: synthetic stereo shards -> per-view arrays, augmentation, targets.

Each stereo sample of a ``sim_datagen`` dataset gives two training views (left
and right image with their 2D keypoints and COCO visibility: 0 outside the
image, 1 occluded, 2 visible).  Views are resized once to the network input
size and kept in memory as uint8; augmentation and target rendering happen per
batch.  Optionally each view also gives zoomed crops around its object
(:func:`object_crop_window`), the view the detector's second look has.
"""

from dataclasses import dataclass
import os
from typing import Iterable, Mapping, Optional, Sequence, Tuple
import zlib

import cv2
import numpy as np

from ..core.camera_response import white_balance_gains
from ..core.dataset import iter_shard
from ..core.heatmaps import gaussian_targets, image_to_heatmap
from ..core.roi import network_view, PixelWindow, roi_around
from .distractors import paste_distractors


@dataclass
class ViewSet:
    """Training views resized to the network input.

    Attributes:
        images: (N, h, w, 3) uint8 RGB.
        uv: (N, J, 2) float32 keypoints in input pixels.
        visibility: (N, J) uint8 COCO visibility (0 out of view, 1 occluded,
            2 visible).
        scale: (N, 2) float32 original/input pixel ratio (x, y), to express
            errors in original pixels.
        diagonal: (N,) float32 original image diagonal in pixels.
    """

    images: np.ndarray
    uv: np.ndarray
    visibility: np.ndarray
    scale: np.ndarray
    diagonal: np.ndarray

    def __len__(self) -> int:
        """Return the number of views."""
        return len(self.images)

    @staticmethod
    def concatenate(sets: Sequence['ViewSet']) -> 'ViewSet':
        """Stack several sets (all with the same input size and J)."""
        return ViewSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in
                         ('images', 'uv', 'visibility', 'scale', 'diagonal')))


def is_validation_shard(path: str, every: int = 10) -> bool:
    """Tell whether a shard is held out for validation (model selection).

    Every ``every``-th shard by the index in its name (``shard-000009.tar``,
    ``shard-000019.tar``, ... for ``every`` = 10) is a validation shard; a
    name without an index is a training shard.
    """
    stem = os.path.basename(path).split('.')[0]
    try:
        return int(stem.split('-')[-1]) % every == every - 1
    except ValueError:
        return False


def load_shard_views(shard_path: str, input_size: Tuple[int, int]) -> ViewSet:
    """Decode one shard into a :class:`ViewSet` (left and right views).

    Args:
        shard_path: path of a ``shard-*.tar`` written by ``sim_datagen``.
        input_size: (width, height) of the network input.
    """
    return views_of_samples(iter_shard(shard_path), input_size)


def load_shard_views_and_crops(shard_path: str, input_size: Tuple[int, int], object_crops: int
                               ) -> Tuple[ViewSet, Optional[ViewSet]]:
    """Decode one shard into its views and ``object_crops`` zoomed crops per view.

    See :func:`views_and_crops`.  The crops' random generator is seeded from
    the shard's file name, so a shard always gives the same crops (a resumed
    run sees the same views).
    """
    rng = np.random.default_rng(zlib.crc32(os.path.basename(shard_path).encode()))
    return views_and_crops(iter_shard(shard_path), input_size, object_crops, rng)


#: Window side over the labelled keypoints' extent of training crops, drawn
#: log-uniformly; the detector's second look uses ``roi_scale`` (1.75).
CROP_SCALE_RANGE = (1.3, 2.6)
#: Largest shift of a crop's centre, as a share of the keypoints' extent.
CROP_MAX_SHIFT = 0.2
#: Share of crops drawn smaller than the keypoints' extent (side
#: ``TRUNCATED_CROP_SCALE_RANGE`` times it), so that the object is cut by the
#: window's border: robots partly out of the frame.  The rendered views are
#: rarely truncated (the object is placed mostly inside the image).
TRUNCATED_CROP_PROB = 0.25
TRUNCATED_CROP_SCALE_RANGE = (0.5, 1.0)
#: Probability that augmentation turns a view grey (the simulator already
#: renders half of them grey; most robot cameras are colour).
GREY_PROB = 0.2
#: Share of the colour training views given a white-balance cast
#: (:func:`~keypoint_perception.core.camera_response.white_balance_gains`):
#: renders made before the simulator drew strong casts get them here.
COLOUR_CAST_PROB = 0.5


def object_crop_window(uv: np.ndarray, visibility: np.ndarray, image_size: Tuple[int, int],
                       input_size: Tuple[int, int], rng: np.random.Generator
                       ) -> Optional[PixelWindow]:
    """Draw a random zoomed window around a view's labelled keypoints (the second look's).

    The window is :func:`~..core.roi.roi_around` the keypoints labelled in
    the image (visibility > 0), with a side of ``CROP_SCALE_RANGE`` times
    their extent and the centre shifted by up to ``CROP_MAX_SHIFT`` of it,
    so that the network also learns the object at the resolution of the
    detector's second look (top-down crops, Xiao et al. 2018); with
    probability ``TRUNCATED_CROP_PROB`` the side is
    ``TRUNCATED_CROP_SCALE_RANGE`` times the extent instead, which cuts an
    object larger than the network input at the window's border (the
    keypoints outside are unlabelled; a window is never smaller than the
    input).

    Args:
        uv: (J, 2) keypoints in image pixels.
        visibility: (J,) COCO visibility.
        image_size: (W, H) of the image, pixels.
        input_size: (w_in, h_in) of the network input.
        rng: random generator (scale and shift).

    Returns:
        the window, or None when fewer than two keypoints are labelled or
        the window would not zoom in (the whole view already shows it).
    """
    pts = np.asarray(uv, np.float64)[np.asarray(visibility) > 0]
    if len(pts) < 2:
        return None
    extent = np.ptp(pts, axis=0)
    truncated = rng.random() < TRUNCATED_CROP_PROB
    scales = TRUNCATED_CROP_SCALE_RANGE if truncated else CROP_SCALE_RANGE
    scale = float(np.exp(rng.uniform(*np.log(scales))))
    shift = rng.uniform(-CROP_MAX_SHIFT, CROP_MAX_SHIFT, 2) * extent
    return roi_around(pts + shift, image_size, input_size, scale=scale, min_gain=1.1)


def views_of_samples(samples: Iterable[Mapping], input_size: Tuple[int, int]) -> ViewSet:
    """Left and right views of stereo samples, resized to the network input.

    Args:
        samples: dicts with ``left``/``right`` (H, W, 3) uint8 RGB images,
            ``kp2d_left``/``kp2d_right`` (J, 2) float32 keypoints in pixels and
            ``vis_left``/``vis_right`` (J,) COCO visibility, as read from a
            shard (:func:`~..core.dataset.iter_shard`) or a stream
            (:class:`~.stream_dataset.StreamDataset`).
        input_size: (width, height) of the network input.

    Returns:
        the views in order left, right of sample 0, left, right of sample 1, ...
    """
    return views_and_crops(samples, input_size, 0, None)[0]


def _view_set(views: Sequence[tuple]) -> ViewSet:
    images, uvs, vis, scales, diags = zip(*views)
    return ViewSet(np.stack(images), np.asarray(uvs, np.float32), np.asarray(vis, np.uint8),
                   np.asarray(scales, np.float32), np.asarray(diags, np.float32))


def views_and_crops(samples: Iterable[Mapping], input_size: Tuple[int, int],
                    object_crops: int, rng: Optional[np.random.Generator]
                    ) -> Tuple[ViewSet, Optional[ViewSet]]:
    """Return the views of :func:`views_of_samples` and zoomed crops of each view's object.

    Args:
        samples: as :func:`views_of_samples`.
        input_size: (width, height) of the network input.
        object_crops: crops per view (:func:`object_crop_window`; 0 = none).
            A crop's keypoints outside its window get visibility 0, its
            ``scale`` is window/input pixels and its ``diagonal`` the whole
            image's.
        rng: random generator of the crops (required when ``object_crops``).

    Returns:
        (views, crops): the views as :func:`views_of_samples` returns them,
        and the crops in sample order (as many as could be taken; None when
        none could).

    Raises:
        ValueError: ``object_crops`` > 0 without ``rng``, or no samples.
    """
    if object_crops and rng is None:
        raise ValueError('object_crops needs a random generator (rng)')
    w_in, h_in = input_size
    full, crops = [], []
    for sample in samples:
        for view in ('left', 'right'):
            img, uv, vis = sample[view], sample[f'kp2d_{view}'], sample[f'vis_{view}']
            h0, w0 = img.shape[:2]
            full.append((network_view(img, input_size),
                         image_to_heatmap(uv, (w0, h0), (w_in, h_in)), vis,
                         (w0 / w_in, h0 / h_in), np.hypot(w0, h0)))
            for _ in range(object_crops):
                window = object_crop_window(uv, vis, (w0, h0), input_size, rng)
                if window is None:
                    continue
                uv_in = image_to_heatmap(uv, window.size, (w_in, h_in), window.offset)
                inside = ((uv_in >= -0.5) & (uv_in <= (w_in - 0.5, h_in - 0.5))).all(axis=1)
                crops.append((network_view(img, input_size, window), uv_in,
                              np.where(inside, vis, 0),
                              (window.width / w_in, window.height / h_in), np.hypot(w0, h0)))
    if not full:
        raise ValueError('no samples to take views of')
    return _view_set(full), (_view_set(crops) if crops else None)


def random_affine(rng: np.random.Generator, size: Tuple[int, int], max_rotation_deg=20.0,
                  scale_range=(0.75, 1.25), max_shift=0.12) -> np.ndarray:
    """Random (2, 3) similarity about the image centre, ``size`` = (w, h)."""
    w, h = size
    angle = rng.uniform(-max_rotation_deg, max_rotation_deg)
    scale = np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1])))
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    m[:, 2] += rng.uniform(-max_shift, max_shift, 2) * (w, h)
    return m


def warp_view(image: np.ndarray, uv: np.ndarray, visibility: np.ndarray, m: np.ndarray):
    """Warp one view and its keypoints by an affine map (the geometric augmentation).

    Args:
        image: (h, w, 3) uint8.
        uv: (J, 2) pixels (OpenCV convention).
        visibility: (J,) uint8 COCO visibility.
        m: (2, 3) affine map from old to new pixels.

    Returns:
        (image, uv, visibility): the warped (h, w, 3) uint8 image, black
        where it shows what was outside the image (as the detector's zoomed
        window pads; a mirrored border would show unlabelled copies of an
        object near the edge), the mapped (J, 2) keypoints and their
        visibility, 0 for those now outside the image.
    """
    h, w = image.shape[:2]
    image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    uv = uv @ m[:, :2].T + m[:, 2]
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    return image, uv, np.where(inside, visibility, 0).astype(np.uint8)


def augment_view(image: np.ndarray, uv: np.ndarray, visibility: np.ndarray,
                 rng: np.random.Generator, distractor_prob: float = 0.0):
    """Geometric and photometric augmentation of one view.

    A random similarity (black borders), optional clutter, then a grey copy
    (:data:`GREY_PROB`) or a white-balance cast (:data:`COLOUR_CAST_PROB`),
    brightness, contrast, gamma, blur and Gaussian noise.

    Args:
        image: (h, w, 3) uint8.
        uv: (J, 2) input pixels.
        visibility: (J,) uint8 COCO visibility.
        rng: random generator.
        distractor_prob: probability of pasting procedural clutter away from
            the keypoints (:func:`~.distractors.paste_distractors`).

    Returns:
        (image, uv, visibility) augmented; keypoints pushed outside the image
        get visibility 0 (:func:`warp_view`).
    """
    h, w = image.shape[:2]
    image, uv, visibility = warp_view(image, uv, visibility, random_affine(rng, (w, h)))
    if distractor_prob > 0 and rng.random() < distractor_prob:
        image = paste_distractors(image, uv, visibility, rng)
    img = image.astype(np.float32)
    if rng.random() < GREY_PROB:
        img = np.repeat(img @ np.float32([[0.299], [0.587], [0.114]]), 3, axis=2)
    elif rng.random() < COLOUR_CAST_PROB:
        img = img * white_balance_gains(rng).astype(np.float32)
    img = img * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40)
    gamma = np.exp(rng.uniform(-0.4, 0.4))
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** gamma
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    img += rng.normal(0, rng.uniform(0, 6), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), uv.astype(np.float32), visibility


def symmetric_targets(uv: np.ndarray, visibility: np.ndarray, symmetries, heatmap_size,
                      stride: int, sigma: float) -> np.ndarray:
    """Gaussian targets for every labelling of a symmetric object (one view).

    Args:
        uv: (J, 2) input pixels; visibility: (J,) COCO visibility.
        symmetries: the object's symmetry permutations (identity implied).
        heatmap_size: (h, w) belief cells; stride: input pixels per cell.
        sigma: Gaussian sigma in cells.

    Returns:
        (P, J, h, w) float32, P = 1 + len(symmetries); entry 0 is the
        identity labelling.
    """
    h, w = heatmap_size
    cells = image_to_heatmap(uv, (w * stride, h * stride), (w, h))
    base = gaussian_targets(cells, visibility > 0, heatmap_size, sigma)
    perms = [np.arange(len(uv))] + [np.asarray(p, dtype=int) for p in symmetries]
    return np.stack([base[p] for p in perms])
