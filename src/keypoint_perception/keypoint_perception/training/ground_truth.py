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
"""Ground truth of the real test sequence (OpenCV chessboard corners).

The real test data is OpenCV's stereo calibration sequence (13 pairs of
640x480 images of a chessboard with 9 x 6 inner corners), fetched by
``tools/fetch_data.sh`` into ``data/opencv_stereo/``; the corners detected by
OpenCV are written to ``ground_truth.json`` by
``tools/calibrate_opencv_stereo.py`` (``--ground-truth-only`` for just that).

The checkerboard object class has 4 keypoints, the extreme inner corners of
the grid, clockwise in the image (y down) with keypoint 0 -> 1 along the
9-corner (long) side, matching ``objects/checkerboard.yaml``.
"""

from collections import OrderedDict
from dataclasses import dataclass
import json
import os
from typing import Dict

import numpy as np


#: Inner corners of the board: per row (along the long side), rows.
PATTERN_SIZE = (9, 6)


@dataclass(frozen=True, eq=False)
class ChessboardGroundTruth:
    """Ground truth of one image of the sequence.

    Attributes:
        image: file name, e.g. ``'left01.jpg'``.
        camera: ``'left'`` or ``'right'``.
        path: absolute path of the image.
        corners: (54, 2) float64 inner corners in OpenCV's row-major order
            (9 per row), pixels (origin at the centre of the top-left pixel).
        keypoints: (4, 2) float64 extreme inner corners, clockwise in the
            image (y down), keypoint 0 -> 1 along the 9-corner side.
        keypoint_corner_indices: indices into ``corners`` of ``keypoints``.
    """

    image: str
    camera: str
    path: str
    corners: np.ndarray
    keypoints: np.ndarray
    keypoint_corner_indices: tuple


def extreme_corners_clockwise(corners: np.ndarray, pattern_size=PATTERN_SIZE):
    """Return the 4 extreme corners of a chessboard grid clockwise in the image.

    OpenCV orders corners row-major: ``corners[0]`` .. ``corners[c-1]`` is the
    first row (c = pattern_size[0]), ``corners[c*(r-1)]`` starts the last.
    With y down, the traversal first-row-start -> first-row-end -> last-row-end
    -> last-row-start is clockwise iff the 2D cross product
    ``(c_end - c_0) x (c_last_start - c_0)`` is positive.  If it is not, the
    clockwise order starting on the long side is first-row-end, first-row-start,
    last-row-start, last-row-end.

    Args:
        corners: (c * r, 2) corners in OpenCV's order, pixels.
        pattern_size: (c, r) inner corners per row and number of rows.

    Returns:
        ((4, 2) float64 keypoints, tuple of the 4 corner indices used).

    Raises:
        ValueError: if corners does not have c * r rows of 2 values.
    """
    cols, rows = pattern_size
    corners = np.asarray(corners, dtype=np.float64)
    if corners.shape != (cols * rows, 2):
        raise ValueError(f'expected ({cols * rows}, 2) corners, got {corners.shape}')
    i0, i1, i2, i3 = 0, cols - 1, cols * rows - 1, cols * (rows - 1)
    a, b = corners[i1] - corners[i0], corners[i3] - corners[i0]
    if a[0] * b[1] - a[1] * b[0] > 0:
        idx = (i0, i1, i2, i3)
    else:
        idx = (i1, i0, i3, i2)
    return corners[list(idx)], idx


def load_opencv_stereo_ground_truth(data_dir: str) -> Dict[str, ChessboardGroundTruth]:
    """Load the chessboard ground truth of OpenCV's stereo sequence.

    Args:
        data_dir: folder with the images and ``ground_truth.json``
            (``data/opencv_stereo``).

    Returns:
        Ordered mapping image file name -> :class:`ChessboardGroundTruth`, in
        the order of ``stereo_calib.xml`` (left01, right01, left02, ...); only
        images where the board was found.

    Raises:
        FileNotFoundError: if ``ground_truth.json`` is missing (with the
            commands that create it).
        ValueError: on malformed content.
    """
    path = os.path.join(data_dir, 'ground_truth.json')
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: run tools/fetch_data.sh and then '
            'tools/calibrate_opencv_stereo.py (or --ground-truth-only)')
    with open(path, 'r', encoding='utf-8') as f:
        data = json.load(f)
    pattern = tuple(int(v) for v in data.get('pattern_size', PATTERN_SIZE))
    out = OrderedDict()
    for name, entry in data.get('images', {}).items():
        if not entry.get('found', True):
            continue
        corners = np.asarray(entry['corners'], dtype=np.float64)
        if corners.shape != (pattern[0] * pattern[1], 2) or not np.all(np.isfinite(corners)):
            raise ValueError(f'{path}: {name}: expected {pattern[0] * pattern[1]} finite '
                             f'corners, got shape {corners.shape}')
        keypoints, idx = extreme_corners_clockwise(corners, pattern)
        out[name] = ChessboardGroundTruth(
            image=name, camera=entry.get('camera', 'left' if 'left' in name else 'right'),
            path=os.path.abspath(os.path.join(data_dir, name)), corners=corners,
            keypoints=keypoints, keypoint_corner_indices=idx)
    return out
