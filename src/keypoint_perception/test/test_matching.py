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
"""Stereo + template consistent choice among several belief peaks."""

import numpy as np
import pytest

from keypoint_perception.core.geometry import CameraModel
from keypoint_perception.core.matching import distance_sigma, select_consistent_candidates
from keypoint_perception.core.objects import load_object_class

FX, CX, CY, B = 500.0, 320.0, 240.0, 0.1


def _rig():
    K = np.array([[FX, 0, CX], [0, FX, CY], [0, 0, 1]])
    P_l = np.hstack([K, np.zeros((3, 1))])
    P_r = P_l.copy()
    P_r[0, 3] = -FX * B
    mk = lambda P, f: CameraModel(width=640, height=480, K=K, D=np.zeros(5),  # noqa: E731
                                  distortion_model='plumb_bob', R=np.eye(3), P=P, frame_id=f)
    return mk(P_l, 'l'), mk(P_r, 'r')


def _project(P, X):
    x = X @ P[:, :3].T + P[:, 3]
    return x[:, :2] / x[:, 2:]


def _front_view_board():
    """Checkerboard class, rig and its 4 corners seen from the printed side (rectified px)."""
    left, right = _rig()
    oc = load_object_class('checkerboard')
    a = np.deg2rad(20)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    X = oc.template @ R.T + [0.02, -0.01, 0.6]
    return oc, left, right, _project(left.P, X), _project(right.P, X)


def test_template_and_epipolar_checks_reject_a_stronger_distractor():
    oc, left, right, uv_l, uv_r = _front_view_board()
    # candidate 0 of keypoint 2 is a stronger distractor (a stereo-consistent point
    # elsewhere in the scene); keypoint 1's right view is labelled as keypoint 3
    cand_l = np.full((4, 2, 2), np.nan)
    cand_r = np.full((4, 2, 2), np.nan)
    conf_l = np.zeros((4, 2), np.float32)
    conf_r = np.zeros((4, 2), np.float32)
    distractor = np.array([[-0.2, 0.15, 0.9]])
    for j in range(4):
        cand_l[j, 0], conf_l[j, 0] = uv_l[j], 0.6
        cand_r[j, 0], conf_r[j, 0] = uv_r[j], 0.6
    cand_l[2, 1], cand_l[2, 0] = uv_l[2], _project(left.P, distractor)[0]
    cand_r[2, 1], cand_r[2, 0] = uv_r[2], _project(right.P, distractor)[0]
    conf_l[2], conf_r[2] = [0.9, 0.4], [0.9, 0.4]
    cand_r[[1, 3]] = cand_r[[3, 1]]  # the right view uses the symmetric labelling
    sel = select_consistent_candidates(left, right, cand_l, conf_l, cand_r, conf_r,
                                       oc.template, oc.symmetries, points_are_rectified=True)
    assert sel is not None
    assert sel.left_index.tolist() == [0, 0, 1, 0]      # distractor rejected
    assert sel.right_index.tolist() == [0, 0, 1, 0]
    assert sel.right_keypoint.tolist() == [0, 3, 2, 1]  # relabelled across views


def test_no_consistent_combination_returns_none():
    left, right = _rig()
    oc = load_object_class('checkerboard')
    X = oc.template * 3 + [0, 0, 1.0]  # three times too large: not this board
    uv_l, uv_r = _project(left.P, X), _project(right.P, X)
    conf = np.full((4, 1), 0.9, np.float32)
    sel = select_consistent_candidates(left, right, uv_l[:, None], conf, uv_r[:, None], conf,
                                       oc.template, oc.symmetries, points_are_rectified=True)
    assert sel is None


def _blob(shape, centre, peak, sigma=1.0):
    """(h, w) Gaussian belief blob at (u, v) cells."""
    vv, uu = np.mgrid[0:shape[0], 0:shape[1]]
    return peak * np.exp(-((uu - centre[0]) ** 2 + (vv - centre[1]) ** 2) / (2 * sigma ** 2))


def test_local_peak_prefers_the_prediction_over_a_stronger_edge_peak():
    from keypoint_perception.core.matching import local_peak
    b = np.maximum(_blob((48, 64), (20.3, 10.0), 0.2), _blob((48, 64), (22.0, 12.0), 0.6))
    uv, belief = local_peak(b, np.array([20.0, 10.0]), radius=2)
    assert belief == pytest.approx(b[10, 20])
    assert uv[0] == pytest.approx(20.3, abs=0.15) and uv[1] == pytest.approx(10.0, abs=0.15)
    # without the weaker peak, the stronger one inside the window is found
    uv, belief = local_peak(_blob((48, 64), (22.0, 12.0), 0.6), np.array([20.0, 10.0]), 2)
    np.testing.assert_allclose(uv, [22.0, 12.0], atol=0.05)
    assert local_peak(b, np.array([np.nan, 1.0]), 2) == (None, 0.0)
    assert local_peak(b, np.array([200.0, 10.0]), 2) == (None, 0.0)


def test_complete_from_template_finds_weak_peaks_at_the_prediction():
    from keypoint_perception.core.matching import complete_from_template
    left, right = _rig()
    X = np.array([[-0.1, -0.06, 0.8], [0.1, -0.06, 0.85], [0.1, 0.06, 0.9], [-0.1, 0.06, 0.8]])
    size, hm = (640, 480), (64, 48)
    beliefs = []
    for cam in (left, right):
        cells = (_project(cam.P, X) + 0.5) * 0.1 - 0.5
        beliefs.append(np.stack([_blob((48, 64), c, 0.12) for c in cells]))
    missing = np.array([False, False, True, True])
    # the prediction is 5 px off; keypoint 3's right-view belief is too weak
    beliefs[1][3] *= 0.2
    pred = X + np.array([0.004, 0.0, 0.0])
    ul, ur, cl, cr = complete_from_template(left, right, beliefs[0], beliefs[1], size, size,
                                            pred, missing, points_are_rectified=True,
                                            search_radius_cells=2, min_belief=0.05)
    assert np.isnan(ul[:2]).all() and np.isnan(ul[3]).all() and np.isnan(ur[3]).all()
    np.testing.assert_allclose(ul[2], _project(left.P, X[2:3])[0], atol=0.6)
    np.testing.assert_allclose(ur[2], _project(right.P, X[2:3])[0], atol=0.6)
    assert cl[2] == pytest.approx(0.12, abs=0.01) and cr[3] == 0.0
    assert hm == (beliefs[0].shape[2], beliefs[0].shape[1])
    with pytest.raises(ValueError):
        complete_from_template(left, right, beliefs[0], beliefs[1][:2], size, size, pred,
                               missing)


def _pipeline_stub():
    """Build a StereoKeypointPipeline around a stub detector (only its object class is used)."""
    from types import SimpleNamespace
    from keypoint_perception.core.inference import StereoKeypointPipeline
    oc = load_object_class('checkerboard')
    return StereoKeypointPipeline(SimpleNamespace(object_class=oc)), oc


@pytest.mark.parametrize('corrupt', [None, 0, 2])
def test_template_outlier_is_dropped_and_inliers_kept(corrupt):
    from keypoint_perception.core.geometry import triangulate_stereo
    from keypoint_perception.core.inference import Detection2D
    pipe, oc = _pipeline_stub()
    left, right = _rig()
    a = np.radians(25)
    R = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    X = oc.template @ R.T + np.array([0.02, 0.01, 0.7])
    uv_l, uv_r = _project(left.P, X), _project(right.P, X)
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


def test_visible_side_rejects_the_mirror_labelling():
    oc, left, right, uv_l, uv_r = _front_view_board()
    mirror = [1, 0, 3, 2]  # same pairwise distances: the board seen from behind
    conf = np.full((4, 1), 0.9, np.float32)
    args = (left, right, uv_l[mirror][:, None], conf, uv_r[mirror][:, None], conf,
            oc.template, oc.symmetries)
    sel = select_consistent_candidates(*args, points_are_rectified=True)
    assert sel is not None and (sel.left_index >= 0).all()  # distances cannot tell
    assert select_consistent_candidates(*args, points_are_rectified=True,
                                        visible_side=oc.extra['visible_side']) is None
    # the true labelling passes the check
    ok = select_consistent_candidates(left, right, uv_l[:, None], conf, uv_r[:, None], conf,
                                      oc.template, oc.symmetries, points_are_rectified=True,
                                      visible_side=oc.extra['visible_side'])
    assert ok is not None and (ok.left_index >= 0).all()


def test_interchangeable_keypoints_take_peaks_from_each_others_maps():
    oc, left, right, uv_l, uv_r = _front_view_board()
    cand_l = np.full((4, 1, 2), np.nan)
    conf_l = np.zeros((4, 1), np.float32)
    # left maps 0 and 1 fire on corners 3 and 0; map 2 is right; map 3 is empty
    for ch, corner in ((0, 3), (1, 0), (2, 2)):
        cand_l[ch, 0], conf_l[ch, 0] = uv_l[corner], 0.8
    conf_r = np.full((4, 1), 0.8, np.float32)
    args = (left, right, cand_l, conf_l, uv_r[:, None], conf_r, oc.template, oc.symmetries)
    assert select_consistent_candidates(*args, points_are_rectified=True) is None
    sel = select_consistent_candidates(*args, points_are_rectified=True,
                                       interchangeable=oc.extra['interchangeable'])
    assert sel is not None
    assert sel.left_keypoint.tolist() == [1, -1, 2, 0]
    assert sel.right_keypoint.tolist() == [0, -1, 2, 3]
    assert sel.left_index.tolist() == [0, -1, 0, 0]


def test_distance_sigma_only_counts_noise_along_the_joining_line():
    f, b, sigma_px = 500.0, 0.06, 3.0
    from keypoint_perception.core.geometry import stereo_point_sigma
    sz, sxy = stereo_point_sigma(2.0, f, b, sigma_px)
    # pair along the optical axis: both depth noises add up (at the nearer depth)
    in_depth = distance_sigma(np.array([[0, 0, 2.0]]), np.array([[0, 0, 2.2]]), f, b,
                              sigma_px)
    assert in_depth.shape == (1, 1)
    assert in_depth[0, 0] == pytest.approx(np.sqrt(2) * sz, rel=1e-9)
    # face-on pair: the joining line is nearly across both rays -> mostly lateral noise
    face_on = distance_sigma(np.array([[-0.1, 0, 2.0]]), np.array([[0.1, 0, 2.0]]), f, b,
                             sigma_px)[0, 0]
    assert np.sqrt(2) * sxy < face_on < 0.1 * in_depth[0, 0]
    # Monte Carlo on a tilted pair, noise along each ray and across it (first order
    # holds while the noise is small against the points' separation)
    sigma_px = 0.3
    rng = np.random.default_rng(2)
    a, c = np.array([-0.1, 0.05, 1.9]), np.array([0.1, -0.05, 2.1])
    d = []
    s_z, s_xy = stereo_point_sigma(1.9, f, b, sigma_px)  # the nearer depth
    for _ in range(4000):
        pts = []
        for p in (a, c):
            r = p / np.linalg.norm(p)
            e = rng.normal(0, s_xy, 3)
            e -= (e @ r) * r
            pts.append(p + e + rng.normal(0, s_z) * r)
        d.append(np.linalg.norm(pts[1] - pts[0]))
    expected = distance_sigma(a[None], c[None], f, b, sigma_px)[0, 0]
    assert np.std(d) == pytest.approx(expected, rel=0.1)


def test_localization_sigma_keeps_a_far_board_with_noisy_depth():
    """Far board, short baseline: disparity noise breaks the 15% distance check."""
    oc = load_object_class('checkerboard')
    left, right = _rig()
    a = np.deg2rad(35)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    X = oc.template @ R.T + [0.0, 0.0, 2.0]  # disparity 25 px at 2 m, 0.1 m baseline
    uv_l, uv_r = _project(left.P, X), _project(right.P, X)
    uv_r[2, 0] += 1.0  # keypoint 2's disparity 1 px short: 8 cm too far
    conf = np.full((4, 1), 0.8, np.float32)
    args = (left, right, uv_l[:, None], conf, uv_r[:, None], conf, oc.template,
            oc.symmetries)
    strict = select_consistent_candidates(*args, points_are_rectified=True)
    # the 15% check leaves one keypoint of the inconsistent pair out
    assert strict is not None and (strict.left_index == -1).sum() == 1
    noisy = select_consistent_candidates(*args, points_are_rectified=True,
                                         localization_sigma_px=1.0)
    assert noisy is not None and (noisy.left_index == 0).all()
    # the allowance is no blank cheque: a gross depth error (60 cm) is still rejected
    uv_r[2, 0] += 5.0
    gross = select_consistent_candidates(left, right, uv_l[:, None], conf, uv_r[:, None], conf,
                                         oc.template, oc.symmetries, points_are_rectified=True,
                                         localization_sigma_px=1.0)
    assert gross is not None and gross.left_index[2] == -1 and (gross.left_index == 0).sum() == 3


def test_one_peak_is_never_two_keypoints():
    """Look-alike pooling offers a map's peak to every keypoint; only one may take it.

    Even where depth noise would excuse any distance, the allowance is capped
    below the template distance, which two keypoints on one peak never match.
    """
    oc = load_object_class('checkerboard')
    left, right = _rig()
    X = np.array([[0.0, 0.0, 20.0]])  # one far peak: depth noise swamps any shape check
    cand_l = np.full((4, 1, 2), np.nan)
    cand_r = np.full((4, 1, 2), np.nan)
    conf = np.zeros((4, 1), np.float32)
    cand_l[0, 0], cand_r[0, 0], conf[0, 0] = _project(left.P, X)[0], _project(right.P, X)[0], 0.9
    sel = select_consistent_candidates(left, right, cand_l, conf, cand_r, conf, oc.template,
                                       oc.symmetries, points_are_rectified=True,
                                       interchangeable=[[0, 1, 2, 3]], localization_sigma_px=5.0)
    assert sel is None  # fewer than three distinct peaks


def test_shape_consistent_drops_the_point_off_the_template():
    from keypoint_perception.core.matching import shape_consistent
    oc = load_object_class('checkerboard')
    X = oc.template + [0.1, 0.0, 0.8]
    valid = np.ones(4, bool)
    assert shape_consistent(X, valid, oc.template).all()
    bad = X.copy()
    bad[2] += [0.0, 0.06, 0.0]  # one corner 6 cm off: 2 of its 3 distances break
    np.testing.assert_array_equal(shape_consistent(bad, valid, oc.template),
                                  [True, True, False, True])
    # missing rows stay missing; two points at the wrong distance: one is dropped
    np.testing.assert_array_equal(shape_consistent(bad, [True, False, True, False],
                                                   oc.template).sum(), 1)
    np.testing.assert_array_equal(shape_consistent(X, [True, False, True, False], oc.template),
                                  [True, False, True, False])
