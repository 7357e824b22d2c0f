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
"""Keypoints of one view, and the decode stage that finds them in belief maps.

:func:`decode_view` is the pipeline's *decode* stage: belief maps of one
image (or of a window of it) in, :class:`KeypointCandidates` (several peaks
per keypoint) out; :class:`ViewKeypoints` holds one chosen 2D position per
keypoint.  Pixels are original-image pixels (OpenCV convention: x right,
y down, pixel centres at integers).
"""

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .heatmaps import decode_keypoints
from .roi import PixelWindow

#: Non-maximum suppression window of the decode stage, in belief cells (odd).
NMS_KERNEL = 3


@dataclass(frozen=True, eq=False)
class ViewKeypoints:
    """One chosen 2D position per keypoint of one object class in one image.

    Attributes:
        uv: (J, 2) float64 pixel coordinates in the original image (OpenCV
            convention), NaN where the keypoint was not found or rejected.
        confidence: (J,) float32 peak belief in [0, 1] (0 where none).
        beliefs: (J, h, w) float32 last-stage belief maps at network
            resolution, in the keypoint order of ``uv`` (relabelled under
            the object's symmetries).
        roi: the :class:`~.roi.PixelWindow` of the image that ``beliefs``
            cover; None for the whole image.
    """

    uv: np.ndarray
    confidence: np.ndarray
    beliefs: np.ndarray
    roi: Optional[PixelWindow] = None

    @property
    def found(self) -> np.ndarray:
        """(J,) bool: the keypoints that have a position (finite ``uv``)."""
        return np.isfinite(self.uv).all(axis=1)


@dataclass(frozen=True, eq=False)
class KeypointCandidates:
    """Several belief peaks per keypoint of one view, the decode stage's output.

    Attributes:
        uv: (J, K, 2) float64 original-image pixels of the K highest peaks
            per keypoint, best first; NaN where there are fewer peaks above
            the threshold.
        confidence: (J, K) float32 belief of each peak (0 where none).
        labelling: (J,) int symmetry permutation applied to the network's
            maps so that keypoint j means the same corner in every image
            (:func:`~.heatmaps.canonical_symmetry_order`).
        beliefs: (J, h, w) float32 belief maps in that labelling.
        window: the :class:`~.roi.PixelWindow` the maps cover.
        roi: ``window``, or None when it is the whole image.
    """

    uv: np.ndarray
    confidence: np.ndarray
    labelling: np.ndarray
    beliefs: np.ndarray
    window: PixelWindow
    roi: Optional[PixelWindow] = None

    def best(self) -> ViewKeypoints:
        """Return the highest peak of each keypoint as :class:`ViewKeypoints`."""
        return ViewKeypoints(self.uv[:, 0], self.confidence[:, 0], self.beliefs, self.roi)


def decode_view(beliefs: np.ndarray, window: PixelWindow, symmetries: Sequence,
                peak_threshold: float, max_candidates: int = 1,
                roi: Optional[PixelWindow] = None) -> KeypointCandidates:
    """Decode stage: the peaks of one view's belief maps in original-image pixels.

    Non-maximum suppression (:data:`NMS_KERNEL` cells), sub-cell refinement
    and the symmetry labelling are :func:`~.heatmaps.decode_keypoints`'s
    (peaks then the highest per keypoint, as in Heindl et al. 2020).

    Args:
        beliefs: (J, h, w) float32 belief maps of the window (not changed).
        window: the :class:`~.roi.PixelWindow` of the image the maps cover
            (the whole image for a first look).
        symmetries: the object class's symmetry permutations (or its
            :class:`~.symmetry.SymmetryGroup`).
        peak_threshold: minimum belief of a peak, in [0, 1].
        max_candidates: K, peaks kept per keypoint.
        roi: the window to report (None for the whole image).

    Returns:
        new :class:`KeypointCandidates`.
    """
    uv, confidence, labelling = decode_keypoints(beliefs, window.size, symmetries,
                                                 max_candidates, NMS_KERNEL, peak_threshold,
                                                 window.offset)
    return KeypointCandidates(uv, confidence, labelling, beliefs[labelling], window, roi)
