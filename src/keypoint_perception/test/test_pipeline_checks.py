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
"""The pipeline's template checks on stubbed detections: leave-one-out outlier, completion.

These exercise StereoKeypointPipeline internals (owner: the pipeline module);
the searches themselves are tested in test_completion.py and test_selection.py.
"""

from types import SimpleNamespace

from keypoint_perception.core.inference import Detection2D, StereoKeypointPipeline
from keypoint_perception.core.objects import load_object_class
from keypoint_perception.core.rigid import fit_template_pose
from keypoint_perception.core.triangulation import triangulate_stereo
import numpy as np
import pytest
from stereo_rig import blob, board_pose, front_view_board, project, rig


def _pipeline_stub():
    """Build a StereoKeypointPipeline around a stub detector (only its object class is used)."""
    board = load_object_class('checkerboard')
    return StereoKeypointPipeline(SimpleNamespace(object_class=board)), board


@pytest.mark.parametrize('corrupt', [None, 0, 2])
def test_template_outlier_is_dropped_and_inliers_kept(corrupt):
    pipe, board = _pipeline_stub()
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
    det_l = Detection2D(uv_l.copy(), np.ones(4, np.float32), np.zeros((4, 2, 2), np.float32))
    det_r = Detection2D(uv_r.copy(), np.ones(4, np.float32), np.zeros((4, 2, 2), np.float32))
    conf = np.ones(4, np.float32)
    out = pipe._reject_template_outlier(det_l, det_r, tri, conf, left, right)
    expected = np.ones(4, bool)
    if corrupt is not None:
        expected[corrupt] = False
        assert out.reason[corrupt] == 'template_outlier'
        assert np.isnan(det_r.uv[corrupt]).all() and conf[corrupt] == 0
    np.testing.assert_array_equal(out.valid, expected)
    assert np.isfinite(out.xyz[expected]).all() and np.isnan(out.xyz[~expected]).all()


@pytest.mark.parametrize('search', ['views', 'stereo'])
def test_completion_recovers_a_corner_whose_two_peaks_disagree(search):
    """Right peak of corner 2 is 10 px low: its stereo match fails the 4 px check."""
    board, left, right, uv_l, uv_r = front_view_board()
    pipe, _ = _pipeline_stub()
    pipe.input_rectified, pipe.completion_search = True, search
    pipe.detector.config = SimpleNamespace(stride=4, input_width=256)  # 10 px cells at 640
    cells = [(uv + 0.5) * 0.1 - 0.5 for uv in (uv_l, uv_r)]
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
    det_l = Detection2D(peaks[0], np.full(4, 0.6, np.float32), beliefs[0])
    det_r = Detection2D(peaks[1], np.full(4, 0.6, np.float32), beliefs[1])
    fit = fit_template_pose(board.template, tri.xyz, tri.valid, board.symmetries)
    conf = np.where(tri.valid, 0.6, 0.0).astype(np.float32)
    _, out = pipe._complete(fit, det_l, det_r, [(640, 480)] * 2, [(0, 0)] * 2, tri, conf,
                            left, right)
    if search == 'views':
        assert not out.valid[2] and np.isnan(det_l.uv[2]).all()
        return
    assert out.valid.all() and out.reprojection_error_px[2] < 0.01
    R, t = board_pose()  # left optical frame (rectified = optical)
    truth = board.template @ R.T + t
    # 2.5 px of the 10 (blob and prior weights) at 0.6 m and f = 500 px: 3 mm
    assert np.linalg.norm(out.xyz[2] - truth[2]) < 0.006
    assert det_l.uv[2, 1] - uv_l[2, 1] == pytest.approx(2.5, abs=0.7)
    assert 0.3 < conf[2] < 0.6
