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
"""Completion searches: belief peaks where the fitted template predicts missing keypoints."""

import os

from keypoint_perception.core.camera import CameraModel
from keypoint_perception.core.completion import (BeliefView, complete_from_template, local_peak,
                                                 sample_belief, stereo_belief_search)
from keypoint_perception.core.distortion import rectify_points, unrectify_points
from keypoint_perception.core.triangulation import triangulate_stereo
import numpy as np
import pytest
from stereo_rig import blob, blobs_at, project, rig


def test_local_peak_prefers_the_prediction_over_a_stronger_edge_peak():
    b = np.maximum(blob((48, 64), (20.3, 10.0), 0.2), blob((48, 64), (22.0, 12.0), 0.6))
    peak = local_peak(b, np.array([20.0, 10.0]), radius=2)
    assert peak.belief == pytest.approx(b[10, 20])
    assert peak.cell[0] == pytest.approx(20.3, abs=0.15)
    assert peak.cell[1] == pytest.approx(10.0, abs=0.15)
    # without the weaker peak, the stronger one inside the window is found
    peak = local_peak(blob((48, 64), (22.0, 12.0), 0.6), np.array([20.0, 10.0]), 2)
    np.testing.assert_allclose(peak.cell, [22.0, 12.0], atol=0.05)
    assert local_peak(b, np.array([np.nan, 1.0]), 2) is None
    assert local_peak(b, np.array([200.0, 10.0]), 2) is None
    # a NaN cell (a backend's overflow) is never the peak; an all-NaN window has none
    with_nan = b.copy()
    with_nan[10, 19] = np.nan
    peak = local_peak(with_nan, np.array([20.0, 10.0]), radius=2)
    assert np.isfinite(peak.belief) and np.array_equal(peak.cell, [20.0, 10.0])  # no refinement
    assert local_peak(np.full((48, 64), np.nan), np.array([20.0, 10.0]), 2) is None


def test_complete_from_template_finds_weak_peaks_at_the_prediction():
    left, right = rig()
    X = np.array([[-0.1, -0.06, 0.8], [0.1, -0.06, 0.85], [0.1, 0.06, 0.9], [-0.1, 0.06, 0.8]])
    size, hm = (640, 480), (64, 48)
    beliefs = []
    for cam in (left, right):
        cells = (project(cam.P, X) + 0.5) * 0.1 - 0.5
        beliefs.append(np.stack([blob((48, 64), c, 0.12) for c in cells]))
    missing = np.array([False, False, True, True])
    # the prediction is 5 px off; keypoint 3's right-view belief is too weak
    beliefs[1][3] *= 0.2
    pred = X + np.array([0.004, 0.0, 0.0])
    given = [a.copy() for a in (beliefs[0], beliefs[1], pred, missing)]
    found = complete_from_template(left, right, beliefs[0], beliefs[1], size, size,
                                   pred, missing, points_are_rectified=True,
                                   search_radius_cells=2, min_belief=0.05)
    uv_left, uv_right = found.uv_left, found.uv_right
    assert np.isnan(uv_left[:2]).all() and np.isnan(uv_left[3]).all()
    assert np.isnan(uv_right[3]).all()
    np.testing.assert_allclose(uv_left[2], project(left.P, X[2:3])[0], atol=0.6)
    np.testing.assert_allclose(uv_right[2], project(right.P, X[2:3])[0], atol=0.6)
    assert found.confidence_left[2] == pytest.approx(0.12, abs=0.01)
    assert found.confidence_right[3] == 0.0
    for before, after in zip(given, (beliefs[0], beliefs[1], pred, missing)):
        np.testing.assert_array_equal(before, after)  # nothing given is changed
    assert hm == (beliefs[0].shape[2], beliefs[0].shape[1])
    with pytest.raises(ValueError):
        complete_from_template(left, right, beliefs[0], beliefs[1][:2], size, size, pred,
                               missing)


def test_sample_belief_peaks_where_the_blob_does():
    b = blob((48, 64), (20.37, 11.81), 0.8, sigma=1.0).astype(np.float32)
    # at cell centres: the map's own values; outside and NaN: 0
    got = sample_belief(b, np.array([[20.0, 12.0], [7.0, 30.0], [-5.0, 3.0], [np.nan, 1.0]]))
    np.testing.assert_allclose(got, [b[12, 20], b[30, 7], 0.0, 0.0], atol=1e-6)
    # the interpolated maximum lies at the blob's centre (bilinear: at a cell centre)
    k = np.arange(-32, 33) / 32.0
    uu, vv = np.meshgrid(20.0 + k, 12.0 + k)
    grid = np.stack([uu.ravel(), vv.ravel()], axis=1)
    best = grid[np.argmax(sample_belief(b, grid))]
    np.testing.assert_allclose(best, [20.37, 11.81], atol=0.07)


def test_stereo_search_finds_an_epipolar_consistent_point_between_two_peaks():
    """Right peak 6 px low: each view's own peak breaks the epipolar constraint."""
    left, right = rig()
    X = np.array([[-0.1, -0.06, 0.8], [0.05, 0.02, 0.9]])
    bl, br = blobs_at(left, X), blobs_at(right, X, shift_px=(0.0, 6.0))
    missing = np.array([False, True])
    args = (left, right, bl, br, (640, 480), (640, 480), X, missing)
    kw = dict(points_are_rectified=True, search_radius_cells=2, min_belief=0.05)
    per_view = complete_from_template(*args, **kw)
    assert per_view.uv_right[1, 1] - per_view.uv_left[1, 1] == pytest.approx(6.0, abs=0.5)
    given = [a.copy() for a in (bl, br, X, missing)]
    found = stereo_belief_search(*args, **kw)
    ul, ur = found.uv_left, found.uv_right
    cl, cr = found.confidence_left, found.confidence_right
    assert np.isnan(ul[0]).all() and np.isnan(ur[0]).all() and cl[0] == cr[0] == 0.0
    true_l, true_r = project(left.P, X[1:])[0], project(right.P, X[1:])[0]
    assert ul[1, 1] == pytest.approx(ur[1, 1], abs=1e-6)  # same rectified row
    # maximum of two blobs (sigma 10 px, at v and v + 6) times two priors
    # (sigma 10 px, both at v): weights 1, 1, 1, 1 -> v + 6 / 4
    assert ul[1, 1] - true_l[1] == pytest.approx(1.5, abs=0.5)
    assert ul[1, 0] == pytest.approx(true_l[0], abs=0.5)
    assert ur[1, 0] == pytest.approx(true_r[0], abs=0.5)
    assert 0.3 < cl[1] < 0.5 and 0.3 < cr[1] < 0.5
    for before, after in zip(given, (bl, br, X, missing)):
        np.testing.assert_array_equal(before, after)  # nothing given is changed


def test_stereo_search_on_a_raw_distorted_rig_returns_one_3d_point():
    """The calibrated OpenCV rig (distortion, rotated rectification): exact projections."""
    cfg = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'config', 'camera_info')
    left = CameraModel.from_yaml(os.path.join(cfg, 'opencv_stereo_left.yaml'))
    right = CameraModel.from_yaml(os.path.join(cfg, 'opencv_stereo_right.yaml'))
    X_rect = np.array([[0.05, -0.03, 0.45], [-0.08, 0.06, 0.5]])
    bl = blobs_at(left, X_rect, raw=True)
    br = blobs_at(right, X_rect, raw=True)
    br[1] *= 0.05  # too weak in the right view
    found = stereo_belief_search(
        left, right, bl, br, (640, 480), (640, 480), X_rect,
        np.array([True, True]), search_radius_cells=3, min_belief=0.05)
    ul, ur = found.uv_left, found.uv_right
    cl, cr = found.confidence_left, found.confidence_right
    assert np.isnan(ul[1]).all() and np.isnan(ur[1]).all()
    np.testing.assert_allclose(ul[0], unrectify_points(left, X_rect[:1])[0], atol=0.5)
    np.testing.assert_allclose(ur[0], unrectify_points(right, X_rect[:1])[0], atol=0.5)
    rl, rr = rectify_points(left, ul[:1]), rectify_points(right, ur[:1])
    assert rl[0, 1] == pytest.approx(rr[0, 1], abs=1e-3)
    tri = triangulate_stereo(left, right, ul[:1], ur[:1], max_reprojection_error_px=4.0)
    assert tri.valid[0] and tri.reprojection_error_px[0] < 1e-3
    assert cl[0] > 0.45 and cr[0] > 0.45


def test_belief_view_projects_to_pixels_and_cells():
    left, _ = rig()
    X = np.array([[0.1, -0.05, 1.0], [0.0, 0.0, -1.0]])  # the second point is behind
    beliefs = np.zeros((2, 48, 64), np.float32)
    view = BeliefView(left, beliefs, (320, 240), (100.0, 50.0))  # a window of the image
    pixels, cells = view.project(X, points_are_rectified=True)
    np.testing.assert_allclose(pixels[0], project(left.P, X[:1])[0])
    assert np.isnan(pixels[1]).all() and np.isnan(cells[1]).all()
    # 5 px per cell in that window, pixel-centre convention, offset removed
    np.testing.assert_allclose(cells[0], (pixels[0] - [100.0, 50.0] + 0.5) / 5.0 - 0.5)
    assert view.map_size == (64, 48)
