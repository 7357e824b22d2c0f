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
"""Stereo + template consistent choice among several belief peaks (core.selection)."""

from keypoint_perception.core.objects import load_object_class
from keypoint_perception.core.selection import (distance_sigma, select_consistent_candidates,
                                                shape_consistent)
from keypoint_perception.core.triangulation import stereo_point_sigma
import numpy as np
import pytest
from stereo_rig import front_view_board, project, rig


def test_template_and_epipolar_checks_reject_a_stronger_distractor():
    board, left, right, uv_l, uv_r = front_view_board()
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
    cand_l[2, 1], cand_l[2, 0] = uv_l[2], project(left.P, distractor)[0]
    cand_r[2, 1], cand_r[2, 0] = uv_r[2], project(right.P, distractor)[0]
    conf_l[2], conf_r[2] = [0.9, 0.4], [0.9, 0.4]
    cand_r[[1, 3]] = cand_r[[3, 1]]  # the right view uses the symmetric labelling
    given = [a.copy() for a in (cand_l, conf_l, cand_r, conf_r, board.template)]
    sel = select_consistent_candidates(left, right, cand_l, conf_l, cand_r, conf_r,
                                       board.template, board.symmetries, points_are_rectified=True)
    assert sel is not None
    for before, after in zip(given, (cand_l, conf_l, cand_r, conf_r, board.template)):
        np.testing.assert_array_equal(before, after)  # nothing given is changed
    # the symmetry group type gives the same choice as the class's permutation list
    grouped = select_consistent_candidates(left, right, cand_l, conf_l, cand_r, conf_r,
                                           board.template, board.symmetry_group,
                                           points_are_rectified=True)
    np.testing.assert_array_equal(grouped.right_keypoint, sel.right_keypoint)
    assert grouped.score == sel.score
    assert sel.left_index.tolist() == [0, 0, 1, 0]      # distractor rejected
    assert sel.right_index.tolist() == [0, 0, 1, 0]
    assert sel.right_keypoint.tolist() == [0, 3, 2, 1]  # relabelled across views


def test_no_consistent_combination_returns_none():
    left, right = rig()
    board = load_object_class('checkerboard')
    X = board.template * 3 + [0, 0, 1.0]  # three times too large: not this board
    uv_l, uv_r = project(left.P, X), project(right.P, X)
    conf = np.full((4, 1), 0.9, np.float32)
    sel = select_consistent_candidates(left, right, uv_l[:, None], conf, uv_r[:, None], conf,
                                       board.template, board.symmetries, points_are_rectified=True)
    assert sel is None


def test_visible_side_rejects_the_mirror_labelling():
    board, left, right, uv_l, uv_r = front_view_board()
    mirror = [1, 0, 3, 2]  # same pairwise distances: the board seen from behind
    conf = np.full((4, 1), 0.9, np.float32)
    args = (left, right, uv_l[mirror][:, None], conf, uv_r[mirror][:, None], conf,
            board.template, board.symmetries)
    sel = select_consistent_candidates(*args, points_are_rectified=True)
    assert sel is not None and (sel.left_index >= 0).all()  # distances cannot tell
    assert select_consistent_candidates(*args, points_are_rectified=True,
                                        visible_side=board.extra['visible_side']) is None
    # the true labelling passes the check
    ok = select_consistent_candidates(left, right, uv_l[:, None], conf, uv_r[:, None], conf,
                                      board.template, board.symmetries, points_are_rectified=True,
                                      visible_side=board.extra['visible_side'])
    assert ok is not None and (ok.left_index >= 0).all()


def test_interchangeable_keypoints_take_peaks_from_each_others_maps():
    board, left, right, uv_l, uv_r = front_view_board()
    cand_l = np.full((4, 1, 2), np.nan)
    conf_l = np.zeros((4, 1), np.float32)
    # left maps 0 and 1 fire on corners 3 and 0; map 2 is right; map 3 is empty
    for ch, corner in ((0, 3), (1, 0), (2, 2)):
        cand_l[ch, 0], conf_l[ch, 0] = uv_l[corner], 0.8
    conf_r = np.full((4, 1), 0.8, np.float32)
    args = (left, right, cand_l, conf_l, uv_r[:, None], conf_r, board.template, board.symmetries)
    assert select_consistent_candidates(*args, points_are_rectified=True) is None
    sel = select_consistent_candidates(*args, points_are_rectified=True,
                                       interchangeable=board.extra['interchangeable'])
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
    board = load_object_class('checkerboard')
    left, right = rig()
    a = np.deg2rad(35)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    X = board.template @ R.T + [0.0, 0.0, 2.0]  # disparity 25 px at 2 m, 0.1 m baseline
    uv_l, uv_r = project(left.P, X), project(right.P, X)
    uv_r[2, 0] += 1.0  # keypoint 2's disparity 1 px short: 8 cm too far
    conf = np.full((4, 1), 0.8, np.float32)
    args = (left, right, uv_l[:, None], conf, uv_r[:, None], conf, board.template,
            board.symmetries)
    strict = select_consistent_candidates(*args, points_are_rectified=True)
    # the 15% check leaves one keypoint of the inconsistent pair out
    assert strict is not None and (strict.left_index == -1).sum() == 1
    noisy = select_consistent_candidates(*args, points_are_rectified=True,
                                         localization_sigma_px=1.0)
    assert noisy is not None and (noisy.left_index == 0).all()
    # the allowance is no blank cheque: a gross depth error (60 cm) is still rejected
    uv_r[2, 0] += 5.0
    gross = select_consistent_candidates(left, right, uv_l[:, None], conf, uv_r[:, None], conf,
                                         board.template, board.symmetries,
                                         points_are_rectified=True, localization_sigma_px=1.0)
    assert gross is not None and gross.left_index[2] == -1 and (gross.left_index == 0).sum() == 3


def test_one_peak_is_never_two_keypoints():
    """Look-alike pooling offers a map's peak to every keypoint; only one may take it.

    Even where depth noise would excuse any distance, the allowance is capped
    below the template distance, which two keypoints on one peak never match.
    """
    board = load_object_class('checkerboard')
    left, right = rig()
    X = np.array([[0.0, 0.0, 20.0]])  # one far peak: depth noise swamps any shape check
    cand_l = np.full((4, 1, 2), np.nan)
    cand_r = np.full((4, 1, 2), np.nan)
    conf = np.zeros((4, 1), np.float32)
    cand_l[0, 0], cand_r[0, 0], conf[0, 0] = project(left.P, X)[0], project(right.P, X)[0], 0.9
    sel = select_consistent_candidates(left, right, cand_l, conf, cand_r, conf, board.template,
                                       board.symmetries, points_are_rectified=True,
                                       interchangeable=[[0, 1, 2, 3]], localization_sigma_px=5.0)
    assert sel is None  # fewer than three distinct peaks


def test_shape_consistent_drops_the_point_off_the_template():
    board = load_object_class('checkerboard')
    X = board.template + [0.1, 0.0, 0.8]
    valid = np.ones(4, bool)
    assert shape_consistent(X, valid, board.template).all()
    bad = X.copy()
    bad[2] += [0.0, 0.06, 0.0]  # one corner 6 cm off: 2 of its 3 distances break
    np.testing.assert_array_equal(shape_consistent(bad, valid, board.template),
                                  [True, True, False, True])
    # missing rows stay missing; two points at the wrong distance: one is dropped
    np.testing.assert_array_equal(shape_consistent(bad, [True, False, True, False],
                                                   board.template).sum(), 1)
    np.testing.assert_array_equal(shape_consistent(X, [True, False, True, False], board.template),
                                  [True, False, True, False])
