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

import os

import numpy as np
import pytest

from keypoint_perception.core.camera import CameraModel
from keypoint_perception.core.distortion import rectify_points, unrectify_points
from keypoint_perception.core.matching import distance_sigma, select_consistent_candidates
from keypoint_perception.core.objects import load_object_class
from keypoint_perception.core.rigid import fit_template_pose
from keypoint_perception.core.triangulation import stereo_point_sigma, triangulate_stereo

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


def _blobs_at(cam, X, shift_px=(0.0, 0.0), sigma=1.0, peak=0.5, raw=False):
    """(J, 48, 64) belief blobs of 10 px cells at the projections of (J, 3) points."""
    pix = unrectify_points(cam, X) if raw else _project(cam.P, X)
    cells = (pix + np.asarray(shift_px) + 0.5) * 0.1 - 0.5
    return np.stack([_blob((48, 64), c, peak, sigma) for c in cells])


def test_sample_belief_peaks_where_the_blob_does():
    from keypoint_perception.core.matching import sample_belief
    b = _blob((48, 64), (20.37, 11.81), 0.8, sigma=1.0).astype(np.float32)
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
    from keypoint_perception.core.matching import complete_from_template, stereo_belief_search
    left, right = _rig()
    X = np.array([[-0.1, -0.06, 0.8], [0.05, 0.02, 0.9]])
    bl, br = _blobs_at(left, X), _blobs_at(right, X, shift_px=(0.0, 6.0))
    missing = np.array([False, True])
    args = (left, right, bl, br, (640, 480), (640, 480), X, missing)
    kw = dict(points_are_rectified=True, search_radius_cells=2, min_belief=0.05)
    ul, ur, _, _ = complete_from_template(*args, **kw)
    assert ur[1, 1] - ul[1, 1] == pytest.approx(6.0, abs=0.5)
    ul, ur, cl, cr = stereo_belief_search(*args, **kw)
    assert np.isnan(ul[0]).all() and np.isnan(ur[0]).all() and cl[0] == cr[0] == 0.0
    true_l, true_r = _project(left.P, X[1:])[0], _project(right.P, X[1:])[0]
    assert ul[1, 1] == pytest.approx(ur[1, 1], abs=1e-6)  # same rectified row
    # maximum of two blobs (sigma 10 px, at v and v + 6) times two priors
    # (sigma 10 px, both at v): weights 1, 1, 1, 1 -> v + 6 / 4
    assert ul[1, 1] - true_l[1] == pytest.approx(1.5, abs=0.5)
    assert ul[1, 0] == pytest.approx(true_l[0], abs=0.5)
    assert ur[1, 0] == pytest.approx(true_r[0], abs=0.5)
    assert 0.3 < cl[1] < 0.5 and 0.3 < cr[1] < 0.5


def test_stereo_search_on_a_raw_distorted_rig_returns_one_3d_point():
    """The calibrated OpenCV rig (distortion, rotated rectification): exact projections."""
    from keypoint_perception.core.matching import stereo_belief_search
    cfg = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'config', 'camera_info')
    left = CameraModel.from_yaml(os.path.join(cfg, 'opencv_stereo_left.yaml'))
    right = CameraModel.from_yaml(os.path.join(cfg, 'opencv_stereo_right.yaml'))
    X_rect = np.array([[0.05, -0.03, 0.45], [-0.08, 0.06, 0.5]])
    bl = _blobs_at(left, X_rect, raw=True)
    br = _blobs_at(right, X_rect, raw=True)
    br[1] *= 0.05  # too weak in the right view
    ul, ur, cl, cr = stereo_belief_search(
        left, right, bl, br, (640, 480), (640, 480), X_rect,
        np.array([True, True]), search_radius_cells=3, min_belief=0.05)
    assert np.isnan(ul[1]).all() and np.isnan(ur[1]).all()
    np.testing.assert_allclose(ul[0], unrectify_points(left, X_rect[:1])[0], atol=0.5)
    np.testing.assert_allclose(ur[0], unrectify_points(right, X_rect[:1])[0], atol=0.5)
    rl, rr = rectify_points(left, ul[:1]), rectify_points(right, ur[:1])
    assert rl[0, 1] == pytest.approx(rr[0, 1], abs=1e-3)
    tri = triangulate_stereo(left, right, ul[:1], ur[:1], max_reprojection_error_px=4.0)
    assert tri.valid[0] and tri.reprojection_error_px[0] < 1e-3
    assert cl[0] > 0.45 and cr[0] > 0.45


@pytest.mark.parametrize('search', ['views', 'stereo'])
def test_completion_recovers_a_corner_whose_two_peaks_disagree(search):
    """Right peak of corner 2 is 10 px low: its stereo match fails the 4 px check."""
    from keypoint_perception.core.inference import Detection2D
    oc, left, right, uv_l, uv_r = _front_view_board()
    pipe, _ = _pipeline_stub()
    pipe.input_rectified, pipe.completion_search = True, search
    from types import SimpleNamespace
    pipe.detector.config = SimpleNamespace(stride=4, input_width=256)  # 10 px cells at 640
    cells = [(uv + 0.5) * 0.1 - 0.5 for uv in (uv_l, uv_r)]
    cells[1][2, 1] += 1.0
    beliefs = [np.stack([_blob((48, 64), c, 0.6) for c in cs]).astype(np.float32)
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
    fit = fit_template_pose(oc.template, tri.xyz, tri.valid, oc.symmetries)
    conf = np.where(tri.valid, 0.6, 0.0).astype(np.float32)
    _, out = pipe._complete(fit, det_l, det_r, [(640, 480)] * 2, [(0, 0)] * 2, tri, conf,
                            left, right)
    if search == 'views':
        assert not out.valid[2] and np.isnan(det_l.uv[2]).all()
        return
    assert out.valid.all() and out.reprojection_error_px[2] < 0.01
    a = np.deg2rad(20)  # _front_view_board's pose, left optical frame (rectified = optical)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    truth = oc.template @ R.T + [0.02, -0.01, 0.6]
    # 2.5 px of the 10 (blob and prior weights) at 0.6 m and f = 500 px: 3 mm
    assert np.linalg.norm(out.xyz[2] - truth[2]) < 0.006
    assert det_l.uv[2, 1] - uv_l[2, 1] == pytest.approx(2.5, abs=0.7)
    assert 0.3 < conf[2] < 0.6
