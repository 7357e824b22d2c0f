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
"""The template stages on stubbed detections: leave-one-out outlier, completion.

The searches themselves are tested in test_completion.py and
test_selection.py.  Each stage must return new values and leave its inputs
as they were.
"""

from keypoint_perception.core.config import PipelineConfig
from keypoint_perception.core.objects import load_object_class
from keypoint_perception.core.rigid import fit_template_pose
from keypoint_perception.core.roi import PixelWindow
from keypoint_perception.core.stereo_stages import StereoBeliefs, ViewBeliefs
from keypoint_perception.core.template_stages import (complete_from_fit, PairEstimate,
                                                      reject_template_outlier)
from keypoint_perception.core.triangulation import triangulate_stereo
from keypoint_perception.core.views import ViewKeypoints
import numpy as np
import pytest
from stereo_rig import blob, board_pose, front_view_board, project, rig


@pytest.mark.parametrize('corrupt', [None, 0, 2])
def test_template_outlier_is_dropped_and_inliers_kept(corrupt):
    board = load_object_class('checkerboard')
    left, right = rig()
    a = np.radians(25)
    R = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    X = board.template @ R.T + np.array([0.02, 0.01, 0.7])
    uv_l, uv_r = project(left.P, X), project(right.P, X)
    rng = np.random.default_rng(5)
    uv_l, uv_r = uv_l + rng.normal(0, 1.0, uv_l.shape), uv_r + rng.normal(0, 1.0, uv_r.shape)
    if corrupt is not None:
        uv_r[corrupt, 0] -= 45.0  # a wrong peak on the epipolar line: wrong depth
    tri = triangulate_stereo(left, right, uv_l, uv_r, points_are_rectified=True)
    assert tri.valid.all()
    estimate = PairEstimate(
        ViewKeypoints(uv_l.copy(), np.ones(4, np.float32), np.zeros((4, 2, 2), np.float32)),
        ViewKeypoints(uv_r.copy(), np.ones(4, np.float32), np.zeros((4, 2, 2), np.float32)),
        np.ones(4, np.float32), tri)
    out = reject_template_outlier(estimate, board.template, board.symmetries, left, right,
                                  max_residual_px=20.0)
    # the input is unchanged
    np.testing.assert_array_equal(estimate.right.uv, uv_r)
    assert (estimate.confidence == 1).all() and estimate.triangulation.valid.all()
    expected = np.ones(4, bool)
    if corrupt is None:
        assert out is estimate
    else:
        expected[corrupt] = False
        assert out.triangulation.reason[corrupt] == 'template_outlier'
        assert np.isnan(out.right.uv[corrupt]).all() and np.isnan(out.left.uv[corrupt]).all()
        assert out.confidence[corrupt] == 0 and out.confidence.dtype == np.float32
        np.testing.assert_array_equal(out.left.uv[expected], uv_l[expected])
    np.testing.assert_array_equal(out.triangulation.valid, expected)
    xyz = out.triangulation.xyz
    assert np.isfinite(xyz[expected]).all() and np.isnan(xyz[~expected]).all()


@pytest.mark.parametrize('search', ['views', 'stereo'])
def test_completion_recovers_a_corner_whose_two_peaks_disagree(search):
    """Right peak of corner 2 is 10 px low: its stereo match fails the 4 px check."""
    board, left, right, uv_l, uv_r = front_view_board()
    cells = [(uv + 0.5) * 0.1 - 0.5 for uv in (uv_l, uv_r)]  # 10 px cells at 640
    cells[1][2, 1] += 1.0
    beliefs = [np.stack([blob((48, 64), c, 0.6) for c in cs]).astype(np.float32)
               for cs in cells]
    peaks = [uv_l.copy(), uv_r.copy()]
    peaks[1][2, 1] += 10.0
    full = triangulate_stereo(left, right, *peaks, max_reprojection_error_px=4.0,
                              points_are_rectified=True)
    assert not full.valid[2] and full.valid[[0, 1, 3]].all()  # 5 px in each view
    for p in peaks:
        p[2] = np.nan
    tri = triangulate_stereo(left, right, *peaks, max_reprojection_error_px=4.0,
                             points_are_rectified=True)
    fit = fit_template_pose(board.template, tri.xyz, tri.valid, board.symmetries)
    conf = np.where(tri.valid, 0.6, 0.0).astype(np.float32)
    estimate = PairEstimate(ViewKeypoints(peaks[0], np.full(4, 0.6, np.float32), beliefs[0]),
                            ViewKeypoints(peaks[1], np.full(4, 0.6, np.float32), beliefs[1]),
                            conf, tri, fit)
    window = PixelWindow(0, 0, 640, 480)
    observed = StereoBeliefs(ViewBeliefs(beliefs[0], window), ViewBeliefs(beliefs[1], window),
                             cell_px=10.0, timings_ms={})
    config = PipelineConfig(input_rectified=True, completion_search=search)
    out = complete_from_fit(estimate, observed, left, right, board, config)
    # the input is unchanged
    assert np.isnan(estimate.left.uv[2]).all() and not estimate.triangulation.valid[2]
    assert estimate.confidence[2] == 0 and estimate.left.confidence[2] == np.float32(0.6)
    if search == 'views':
        assert out is estimate
        return
    assert out.triangulation.valid.all() and out.triangulation.reprojection_error_px[2] < 0.01
    R, t = board_pose()  # left optical frame (rectified = optical)
    truth = board.template @ R.T + t
    # 2.5 px of the 10 (blob and prior weights) at 0.6 m and f = 500 px: 3 mm
    assert np.linalg.norm(out.triangulation.xyz[2] - truth[2]) < 0.006
    assert out.left.uv[2, 1] - uv_l[2, 1] == pytest.approx(2.5, abs=0.7)
    assert 0.3 < out.confidence[2] < 0.6 and out.confidence.dtype == np.float32
    assert out.fit is not fit and out.fit.num_points == 4
