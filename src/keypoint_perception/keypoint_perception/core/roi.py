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
"""Pixel windows of an image: regions of interest for a second, zoomed look.

A :class:`PixelWindow` is an axis-aligned rectangle of whole pixels in an
image (OpenCV convention: x right, y down, origin at the top-left pixel's
corner).  The network sees a window resized to its input size; belief
cells then map back to image pixels through the window's offset and size.
"""

from typing import NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from .config import DEFAULT_ROI_SCALE


class PixelWindow(NamedTuple):
    """An (x0, y0, width, height) window of an image, in whole pixels.

    ``x0``, ``y0`` may be negative and the window may extend past the image
    (the outside is zero-padded when cut out, see :func:`crop_window`).

    Attributes:
        x0, y0: top-left corner in image pixels.
        width, height: size in pixels (> 0).
    """

    x0: int
    y0: int
    width: int
    height: int

    @classmethod
    def whole(cls, image: np.ndarray) -> 'PixelWindow':
        """Return the window that covers all of an (H, W[, C]) image."""
        return cls(0, 0, int(image.shape[1]), int(image.shape[0]))

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) in pixels."""
        return (self.width, self.height)

    @property
    def offset(self) -> Tuple[int, int]:
        """(x0, y0) in pixels: where the window's pixel (0, 0) lies in the image."""
        return (self.x0, self.y0)


def roi_around(points: np.ndarray, image_size: Tuple[int, int], input_size: Tuple[int, int],
               scale: float = DEFAULT_ROI_SCALE, min_gain: float = 1.25
               ) -> Optional[PixelWindow]:
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
        the :class:`PixelWindow` in image pixels (x0, y0 may be negative or
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
    side_x = max(scale * max(hi[0] - lo[0], (hi[1] - lo[1]) * aspect), float(input_size[0]))
    side_y = side_x / aspect
    if max(width, height * aspect) / side_x < min_gain:
        return None
    corner = []
    for centre, side, full in ((0.5 * (lo[0] + hi[0]), side_x, width),
                               (0.5 * (lo[1] + hi[1]), side_y, height)):
        start = centre - 0.5 * side
        corner.append(min(max(start, 0.0), full - side) if side <= full else 0.5 * (full - side))
    return PixelWindow(int(round(corner[0])), int(round(corner[1])), int(round(side_x)),
                       int(round(side_y)))


def window_overlap(window: Sequence[int], image_shape: Sequence[int]):
    """Where an (x0, y0, w, h) pixel window and an image of ``image_shape`` (H, W, ...) overlap.

    Returns:
        (image_slices, window_slices): two (rows, columns) slice pairs of
        the same size, possibly empty, indexing the shared pixels in the
        image and in the (h, w) window.
    """
    x0, y0, w, h = (int(value) for value in window)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = max(min(x0 + w, image_shape[1]), sx0), max(min(y0 + h, image_shape[0]), sy0)
    return ((slice(sy0, sy1), slice(sx0, sx1)),
            (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0)))


def network_view(image: np.ndarray, input_size: Tuple[int, int],
                 window: Optional[Sequence[int]] = None) -> np.ndarray:
    """Return what the network sees of an image: the window (or all of it) at the input size.

    The one cut-and-resize of the detector (first and second look) and of
    training's zoomed crops, so both see the same pixels: the (x0, y0, w,
    h) ``window`` cut out with :func:`crop_window` (zero-padded outside
    the image), then resized to ``input_size`` = (width, height) with area
    interpolation (``cv2.INTER_AREA``, which averages when shrinking).

    Args:
        image: (H, W[, C]) array (not changed).
        input_size: (width, height) of the result, pixels.
        window: the window, or None for the whole image.

    Returns:
        a new (height, width[, C]) array of the image's dtype.
    """
    if window is not None:
        image = crop_window(image, window)
    return cv2.resize(image, tuple(int(v) for v in input_size), interpolation=cv2.INTER_AREA)


def crop_window(image: np.ndarray, window: Sequence[int]) -> np.ndarray:
    """Cut the (x0, y0, w, h) window out of an (H, W[, C]) image, zero-padded outside.

    Returns:
        a new (h, w[, C]) array of the image's dtype.
    """
    out = np.zeros((int(window[3]), int(window[2])) + image.shape[2:], image.dtype)
    in_image, in_window = window_overlap(window, image.shape)
    out[in_window] = image[in_image]
    return out
