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
"""The vectorized hot path (issue 19 item 3) equals the per-keypoint loops it replaced."""

import math

import cv2
from geometry_helpers import random_rig, random_rotation
from keypoint_perception.core.camera import project
from keypoint_perception.core.heatmaps import (decode_candidates, nms_peaks, refine_peak,
                                               refine_peaks, strongest_peaks)
from keypoint_perception.core.model import normalize_image_array, normalize_images
from keypoint_perception.core.rigid import refine_pose_reprojection, refine_poses_reprojection
from keypoint_perception.core.rotations import matrices_from_rotation_vectors
import numpy as np
import torch


def _reference_peaks(belief, kernel, threshold, max_peaks):
    """Non-maximum suppression written out cell by cell: the definition."""
    h, w = belief.shape
    r = kernel // 2
    peaks = []
    for v in range(h):
        for u in range(w):
            window = belief[max(0, v - r):v + r + 1, max(0, u - r):u + r + 1]
            if belief[v, u] >= window.max() and belief[v, u] >= threshold:
                peaks.append((u, v, belief[v, u]))
    peaks.sort(key=lambda peak: -peak[2])  # stable: row-major order among equals
    return peaks[:max_peaks]


def _reference_refine(belief, u, v):
    """Compute DARK's Newton step on the log belief at one peak, scalar by scalar."""
    h, w = belief.shape
    if not (1 <= u < w - 1 and 1 <= v < h - 1):
        return float(u), float(v)
    patch = np.log(np.maximum(belief[v - 1:v + 2, u - 1:u + 2].astype(np.float64), 1e-10))
    dx = 0.5 * (patch[1, 2] - patch[1, 0])
    dy = 0.5 * (patch[2, 1] - patch[0, 1])
    dxx = patch[1, 2] - 2 * patch[1, 1] + patch[1, 0]
    dyy = patch[2, 1] - 2 * patch[1, 1] + patch[0, 1]
    dxy = 0.25 * (patch[2, 2] - patch[2, 0] - patch[0, 2] + patch[0, 0])
    det = dxx * dyy - dxy * dxy
    if dxx >= 0 or det <= 1e-12:
        return float(u), float(v)
    return (float(u + np.clip(-(dyy * dx - dxy * dy) / det, -1, 1)),
            float(v + np.clip(-(dxx * dy - dxy * dx) / det, -1, 1)))


def _maps(rng, count=5, size=(24, 32)):
    """Random smooth belief maps with plateaus (equal neighbours) and border peaks."""
    maps = rng.random((count,) + size).astype(np.float32)
    maps = cv2.GaussianBlur(maps.transpose(1, 2, 0), (5, 5), 1.2).transpose(2, 0, 1).copy()
    maps[0, 5:7, 5:7] = 0.9  # a plateau: four equal maxima
    maps[1, 0, 10] = 0.95  # a peak on the border
    maps[2] = 0.0  # no peak above any threshold
    return maps


def test_strongest_peaks_is_non_maximum_suppression_cell_by_cell():
    rng = np.random.default_rng(5)
    maps = _maps(rng)
    for kernel, threshold, max_peaks in ((3, 0.1, 4), (5, 0.3, 10), (3, 0.0, 50)):
        cells, scores = strongest_peaks(maps, kernel, threshold, max_peaks)
        for index, belief in enumerate(maps):
            expected = _reference_peaks(belief, kernel, threshold, max_peaks)
            found = np.isfinite(scores[index])
            assert found.sum() == len(expected)
            assert [tuple(c) for c in cells[index][found]] == [(u, v) for u, v, _ in expected]
            assert scores[index][found].tolist() == [float(s) for _, _, s in expected]
        single = nms_peaks(maps[0], kernel, threshold, max_peaks)
        np.testing.assert_array_equal(single[:, :2], cells[0][np.isfinite(scores[0])])


def test_refine_peaks_is_the_scalar_newton_step():
    rng = np.random.default_rng(6)
    maps = _maps(rng)
    maps[3, 7:10, 7:10] = [[0.2, 0.3, 0.2], [0.3, 0.2, 0.3], [0.2, 0.3, 0.2]]  # a saddle
    index, v, u = np.unravel_index(np.arange(maps.size), maps.shape)
    refined = refine_peaks(maps, index, u, v)
    expected = [_reference_refine(maps[k], uu, vv) for k, uu, vv in zip(index, u, v)]
    np.testing.assert_array_equal(refined, np.array(expected))
    assert refine_peak(maps[4], 5, 6) == _reference_refine(maps[4], 5, 6)


def test_decode_candidates_is_the_reference_per_map():
    rng = np.random.default_rng(7)
    maps = _maps(rng)
    uv, confidence = decode_candidates(maps, 3, 3, 0.2)
    for index, belief in enumerate(maps):
        peaks = _reference_peaks(belief, 3, 0.2, 3)
        for rank in range(3):
            if rank < len(peaks):
                u, v, score = peaks[rank]
                assert tuple(uv[index, rank]) == _reference_refine(belief, u, v)
                assert confidence[index, rank] == score
            else:
                assert np.isnan(uv[index, rank]).all() and confidence[index, rank] == 0


def test_rotation_vectors_are_opencvs_rodrigues():
    rng = np.random.default_rng(8)
    vectors = np.concatenate([rng.normal(0, 1.5, (50, 3)), np.zeros((1, 3)),
                              [[1e-20, 0, 0], [math.pi, 0, 0], [0, 1e-6, 0]]])
    matrices = matrices_from_rotation_vectors(vectors)
    for vector, matrix in zip(vectors, matrices):
        np.testing.assert_allclose(matrix, cv2.Rodrigues(vector)[0], rtol=0, atol=1e-15)


def test_refining_poses_together_equals_refining_each_alone():
    rng = np.random.default_rng(9)
    left, right, _, _ = random_rig(rng, 'plumb_bob', baseline=0.1)
    template = np.array([[-0.1, -0.06, 0], [0.1, -0.06, 0], [0.1, 0.06, 0], [-0.1, 0.06, 0],
                         [0.0, 0.0, 0.03]])
    problems = []
    for n in range(6):
        R_true = random_rotation(rng, math.radians(40))
        t_true = np.array([0.05, -0.02, 0.7 + 0.1 * n])
        X = (template @ R_true.T + t_true) @ left.R.T
        rect_l = project(left.P, X) + rng.normal(0, 0.3, (5, 2))
        rect_r = project(right.P, X) + rng.normal(0, 0.3, (5, 2))
        rect_l[:n % 3] = np.nan  # 5, 4 or 3 observed points, or too few below
        if n == 5:
            rect_r[2:4] = np.nan
        R0 = cv2.Rodrigues(rng.normal(0, 0.05, 3))[0] @ R_true
        problems.append((R0, t_true + rng.normal(0, 0.02, 3), rect_l, rect_r))
    rotations, translations, rms = refine_poses_reprojection(
        np.stack([template] * 6), np.stack([p[0] for p in problems]),
        np.stack([p[1] for p in problems]), left, right, np.stack([p[2] for p in problems]),
        np.stack([p[3] for p in problems]))
    for n, (R0, t0, rect_l, rect_r) in enumerate(problems):
        R, t, error = refine_pose_reprojection(template, R0, t0, left, right, rect_l, rect_r)
        np.testing.assert_allclose(rotations[n], R, atol=1e-12)
        np.testing.assert_allclose(translations[n], t, atol=1e-12)
        assert np.isnan(error) == np.isnan(rms[n]) and (np.isnan(error) or
                                                        abs(error - rms[n]) < 1e-12)
    assert np.isnan(rms[5]) and np.array_equal(rotations[5], problems[5][0])  # 1 point left
    assert 0.1 < np.nanmax(rms) < 1.0  # the noise: refined, not the initial poses
    # nothing given is changed
    assert np.isfinite(problems[0][2]).all()


def test_image_normalization_in_numpy_equals_torch_bit_for_bit():
    images = np.random.default_rng(10).integers(0, 256, (3, 12, 16, 3), dtype=np.uint8)
    images[0, 0, :, 0] = np.arange(16) * 17  # 0 and 255 included
    expected = normalize_images(torch.from_numpy(images)).numpy()
    actual = normalize_image_array(images)
    assert actual.flags.c_contiguous and actual.dtype == np.float32
    assert np.array_equal(actual, expected)
