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

from keypoint_perception.core.geometry import CameraModel
from keypoint_perception.core.matching import select_consistent_candidates
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


def test_template_and_epipolar_checks_reject_a_stronger_distractor():
    left, right = _rig()
    oc = load_object_class('checkerboard')
    a = np.deg2rad(20)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    X = oc.template @ R.T + [0.02, -0.01, 0.6]
    uv_l, uv_r = _project(left.P, X), _project(right.P, X)
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
