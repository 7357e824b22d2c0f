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
"""Tests of the real sequence's ground truth (training.ground_truth) and symmetric errors."""

import json
import os

import cv2
from keypoint_perception.training import ground_truth as gtm
from keypoint_perception.training.metrics import symmetric_errors
import numpy as np
import pytest


def test_ground_truth_real_sequence(opencv_data):
    """Ground truth of the real sequence: 26 images, clockwise keypoints."""
    gt = gtm.load_opencv_stereo_ground_truth(opencv_data)
    assert len(gt) == 26
    names = list(gt)
    assert names[:2] == ['left01.jpg', 'right01.jpg']
    for name, item in gt.items():
        assert item.corners.shape == (54, 2) and item.keypoints.shape == (4, 2)
        assert set(item.keypoint_corner_indices) == {0, 8, 45, 53}
        k = item.keypoints
        # Clockwise with y down: positive shoelace sum.
        area = 0.5 * sum(k[i, 0] * k[(i + 1) % 4, 1] - k[(i + 1) % 4, 0] * k[i, 1]
                         for i in range(4))
        assert area > 0, name
        assert np.all((k >= 0) & (k < [640, 480]))
    # Independent detection of one image agrees with the stored corners.
    img = cv2.imread(os.path.join(opencv_data, 'right05.jpg'), cv2.IMREAD_GRAYSCALE)
    ok, corners = cv2.findChessboardCorners(
        img, (9, 6), flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
    assert ok
    corners = cv2.cornerSubPix(img, corners, (11, 11), (-1, -1),
                               (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    np.testing.assert_allclose(gt['right05.jpg'].corners, corners.reshape(-1, 2), atol=1e-3)
    with open(os.path.join(opencv_data, 'ground_truth.json')) as f:
        assert json.load(f)['square_size_m_assumed'] == pytest.approx(0.025)


def test_extreme_corners_counter_clockwise_traversal():
    """A counter-clockwise corner traversal is reordered clockwise."""
    grid = np.stack(np.meshgrid(np.arange(9.0), np.arange(6.0)), -1).reshape(-1, 2) * 10
    k, idx = gtm.extreme_corners_clockwise(grid)
    assert idx == (0, 8, 53, 45)
    mirrored = grid * [-1.0, 1.0] + [100.0, 0.0]  # traversal now counter-clockwise
    k, idx = gtm.extreme_corners_clockwise(mirrored)
    assert idx == (8, 0, 45, 53)
    np.testing.assert_allclose(k, [[20, 0], [100, 0], [100, 50], [20, 50]])


def test_symmetric_errors():
    """Per-keypoint error under the best symmetric permutation."""
    gt = np.array([[10.0, 10.0], [100.0, 12.0], [98.0, 80.0], [12.0, 78.0]])
    sym = [[2, 3, 0, 1]]
    pred = gt[[2, 3, 0, 1]] + [[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [3.0, 4.0]]
    np.testing.assert_allclose(symmetric_errors(pred, gt, sym), [0.0, 5.0, 1.0, 2.0])
    np.testing.assert_allclose(symmetric_errors(gt, gt, sym), 0.0)
    pred2 = gt.copy()
    pred2[1] = np.nan
    err2 = symmetric_errors(pred2, gt, sym)
    assert np.isnan(err2[1]) and np.allclose(err2[[0, 2, 3]], 0.0)
    batch = symmetric_errors(np.stack([pred, gt]), np.stack([gt, gt]), sym)
    assert batch.shape == (2, 4) and np.allclose(batch[1], 0.0)
