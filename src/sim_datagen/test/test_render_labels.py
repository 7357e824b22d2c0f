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
"""Cameras, PyBullet rendering and labels, checked against independent oracles."""

import cv2
from keypoint_perception.core.camera import CameraModel
from keypoint_perception.core.distortion import distort_pixels, rectify_points, \
    undistort_pixels, unrectify_points
import numpy as np
import pybullet as p
import pytest
from sim_datagen.generator import sample_rng, SampleGenerator
from sim_datagen.labels import keypoint_visibility
from sim_datagen.optics import distortion_maps, lens_camera, render_intrinsics
from sim_datagen.scene.camera import PinholeCamera, rot_x, rot_y, rot_z, StereoRig
from sim_datagen.scene.layout import rigid_transform

from conftest import CLEAN


def _rig(fx=520.0, cx=322.3, cy=236.9, baseline=0.1):
    K = np.array([[fx, 0, cx], [0, fx * 1.01, cy], [0, 0, 1.0]])
    return StereoRig(K, 640, 480, baseline)


def test_projection_equals_view_projection_matrices():
    """K-projection == the path through PyBullet's view/projection matrices."""
    rng = np.random.default_rng(0)
    rig = _rig()
    pts = np.c_[rng.uniform(-0.5, 0.5, (50, 2)), rng.uniform(0.3, 5.0, 50)]
    for cam in (rig.left, rig.right):
        np.testing.assert_allclose(cam.project(pts), cam.project_gl(pts), atol=1e-6)
    # a camera with an arbitrary pose, too
    T = rigid_transform(rot_z(0.3) @ rot_x(-0.2) @ rot_y(0.4), [0.1, -0.2, 0.3])
    cam = PinholeCamera(rig.K, 640, 480, T)
    pw = cam.T_world_cam[:3, :3] @ np.array([0.05, -0.02, 1.0]) + cam.T_world_cam[:3, 3]
    np.testing.assert_allclose(cam.project(pw[None]), cam.project_gl(pw[None]), atol=1e-6)
    np.testing.assert_allclose(cam.project(pw[None])[0],
                               [rig.K[0, 0] * 0.05 + rig.K[0, 2],
                                rig.K[1, 1] * -0.02 + rig.K[1, 2]], atol=1e-9)


def test_camera_info_right_projection():
    rig = _rig(baseline=0.12)
    ci = rig.camera_infos('l', 'r')
    P = np.array(ci['right']['P']).reshape(3, 4)
    assert P[0, 3] == pytest.approx(-rig.K[0, 0] * 0.12)
    pts = np.array([[0.1, -0.05, 0.8], [-0.2, 0.1, 2.0]])
    uvw = np.c_[pts, np.ones(2)] @ P.T
    np.testing.assert_allclose(uvw[:, :2] / uvw[:, 2:], rig.right.project(pts), atol=1e-9)
    assert ci['left']['frame_id'] == 'l' and ci['right']['D'] == [0.0] * 5


@pytest.fixture()
def world(generator):
    yield generator.world
    generator.world.clear()


def _centroids(seg, ids):
    out = []
    for i in ids:
        rr, cc = np.nonzero(seg == i)
        assert len(rr) > 20, 'marker not rendered'
        out.append([cc.mean(), rr.mean()])
    return np.array(out)


def test_rendered_markers_match_projection(world):
    """Small spheres rendered by PyBullet land where K projects their centres."""
    rig = _rig()
    rng = np.random.default_rng(3)
    pts = np.c_[rng.uniform(-0.25, 0.25, 8), rng.uniform(-0.18, 0.18, 8),
                rng.uniform(0.9, 1.3, 8)]
    ids = [world.add_primitive(1, rigid_transform(np.eye(3), x), 0.012, [1, 0, 0, 1]) for x in pts]
    light = dict(lightDirection=[0, -1, -1], shadow=0)
    for cam in (rig.left, rig.right):
        _, _, seg = world.render(cam, light)
        c = _centroids(seg, ids)
        # centroid of a projected sphere is displaced outward by ~r^2 effects:
        # negligible (< 0.1 px) for these sizes and positions
        np.testing.assert_allclose(c, cam.project(pts), atol=0.25)


def test_optical_frame_convention(world):
    """+x right, +y down, +z forward; nothing behind the camera is drawn."""
    rig = _rig(cx=319.5, cy=239.5)
    light = dict(lightDirection=[0, -1, -1], shadow=0)
    right = world.add_primitive(1, rigid_transform(np.eye(3), [0.2, 0, 1.0]), 0.02, [1, 0, 0, 1])
    down = world.add_primitive(1, rigid_transform(np.eye(3), [0, 0.15, 1.0]), 0.02, [0, 1, 0, 1])
    behind = world.add_primitive(1, rigid_transform(np.eye(3), [0, 0, -1.0]), 0.05, [0, 0, 1, 1])
    _, depth, seg = world.render(rig.left, light)
    c = _centroids(seg, [right, down])
    assert c[0, 0] > 400 and abs(c[0, 1] - 239.5) < 1
    assert c[1, 1] > 300 and abs(c[1, 0] - 319.5) < 1
    assert not np.any(seg == behind)
    # depth buffer linearizes to optical z at the sphere's front
    z = rig.left.linear_depth(depth)[int(round(c[0, 1])), int(round(c[0, 0]))]
    assert z == pytest.approx(1.0 - 0.02, abs=3e-3)
    # the right camera sits at +baseline: the same point has a smaller u
    _, _, seg_r = world.render(rig.right, light)
    cr = _centroids(seg_r, [right])
    assert cr[0, 0] == pytest.approx(c[0, 0] - rig.K[0, 0] * rig.baseline / 1.0, abs=0.5)


def _extreme_corners(img):
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    g = cv2.GaussianBlur(g, (0, 0), 0.7)
    ok, c = cv2.findChessboardCorners(g, (9, 6), flags=cv2.CALIB_CB_ADAPTIVE_THRESH
                                      | cv2.CALIB_CB_NORMALIZE_IMAGE)
    if not ok:
        return None
    c = cv2.cornerSubPix(g, c, (5, 5), (-1, -1),
                         (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3))
    c = c.reshape(6, 9, 2)
    return np.array([c[0, 0], c[0, 8], c[5, 8], c[5, 0]], np.float64)


def test_labels_match_findChessboardCorners(generator):
    """Check the labels against OpenCV's chessboard detector.

    An independent oracle for the whole chain (pose -> mesh/UV/texture ->
    camera matrices -> TinyRenderer -> compositing -> labels): the detector
    finds the rendered board and its extreme corners match the 2D labels.
    """
    errs, found = [], 0
    n = 8
    for i in range(n):
        ov = dict(CLEAN, tilt_x=float(np.clip(15 * np.sin(i), -30, 30)),
                  tilt_y=float(20 * np.cos(i)), roll=float(-40 + 11 * i),
                  board_width_frac=0.35 + 0.05 * i, grayscale=i % 2)
        s = generator.generate(i, 123, overrides=ov)
        for view in ('left', 'right'):
            det = _extreme_corners(s[view])
            if det is None:
                continue
            found += 1
            lab = np.array(s['labels']['keypoints_2d'][view])
            assert s['labels']['visibility'][view] == [2, 2, 2, 2]
            # the detector's start corner is ambiguous (180 deg symmetry and
            # its own ordering): compare against all 4 cyclic shifts and both
            # directions of the detected quadrilateral
            cand = [np.roll(det, k, axis=0) for k in range(4)]
            cand += [np.roll(det[::-1], k, axis=0) for k in range(4)]
            e = min(np.linalg.norm(c - lab, axis=1).max() for c in cand)
            errs.append(e)
    assert found >= int(0.75 * 2 * n), f'board found in only {found} of {2 * n} views'
    errs = np.array(errs)
    assert errs.max() < 1.0, errs
    assert errs.mean() < 0.5, errs


def test_keypoint_order_is_clockwise_from_printed_side(generator):
    s = generator.generate(0, 5, overrides=dict(CLEAN, tilt_x=0.0, tilt_y=0.0, roll=0.0))
    kp = np.array(s['labels']['keypoints_2d']['left'])
    # roll 0: corner_0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left
    assert kp[0, 0] < kp[1, 0] and kp[0, 1] < kp[3, 1]
    assert kp[2, 0] > kp[3, 0] and kp[2, 1] > kp[1, 1]
    # 3D keypoints are the projection sources; pose maps the template onto them
    T = np.array(s['labels']['object_pose'])
    sq = s['labels']['square_size']
    tmpl = np.array([[-4, -2.5, 0], [4, -2.5, 0], [4, 2.5, 0], [-4, 2.5, 0]]) * sq
    np.testing.assert_allclose(tmpl @ T[:3, :3].T + T[:3, 3],
                               s['labels']['keypoints_3d'], atol=1e-9)
    K = np.array(s['labels']['camera_info']['left']['K']).reshape(3, 3)
    X = np.array(s['labels']['keypoints_3d'])
    uv = (X @ K.T)[:, :2] / X[:, 2:]
    np.testing.assert_allclose(uv, kp, atol=1e-6)


def test_occluder_marks_keypoint_occluded(world):
    """Check that a box placed in front of keypoint 0 makes it occluded (1).

    The other keypoints stay visible (2); one outside the image is 0.
    """
    rig = _rig()
    s = 0.03
    T = rigid_transform(rot_x(0.2), [0.0, 0.0, 0.8])
    paper, backing = world.add_board(T, s, 1.0, 0.01, 0.2, world.board_texture(0, 20),
                                     [1, 1, 1, 1], [0.2, 0.2, 0.2, 1])
    kp = np.array([[-4, -2.5, 0], [4, -2.5, 0], [4, 2.5, 0], [-4, 2.5, 0]]) * s
    kpw = kp @ T[:3, :3].T + T[:3, 3]
    # occluder 5 cm in front of keypoint 0 (towards the cameras): covers it in both views
    world.add_box(rigid_transform(np.eye(3), kpw[0] - [0, 0, 0.05]), [0.02, 0.02, 0.01],
                  [0.9, 0.7, 0.6, 1])
    light = dict(lightDirection=[0, -1, -1], shadow=0)
    for cam in (rig.left, rig.right):
        _, _, seg = world.render(cam, light)
        uv = cam.project(kpw)
        z = cam.to_camera(kpw)[:, 2]
        vis = keypoint_visibility(uv, z, seg, {paper, backing})
        assert vis.tolist() == [1, 2, 2, 2]
        # the same keypoint pushed outside the image is 0
        uv_out = uv.copy()
        uv_out[1] = [-3.0, 100.0]
        assert keypoint_visibility(uv_out, z, seg, {paper, backing})[1] == 0


def test_generated_occlusion_labels_agree_with_segmentation(config):
    """In randomized samples, visibility equals what the segmentation shows."""
    cfg = dict(config, outputs={'segmentation': True})
    g = SampleGenerator(cfg, world=None)
    try:
        n_occ = 0
        for i in range(6):
            s = g.generate(i, 77, overrides={'hands': 3, 'hand_overlap': 0.059, 'distortion': 0,
                                             'bar': 1})
            seg = s['seg']
            for j, (u, v) in enumerate(s['labels']['keypoints_2d']['left']):
                vis = s['labels']['visibility']['left'][j]
                if vis == 0:
                    continue
                cls = seg[int(round(v)), int(round(u))]
                assert (cls == 1) == (vis == 2), (i, j, cls, vis)
                n_occ += vis == 1
        assert n_occ >= 1, 'no occluded keypoint in 6 samples with hands and bars'
    finally:
        g.world.close()


def test_determinism_by_seed(generator, config):
    a = generator.generate(11, 42)
    generator.generate(3, 1)  # unrelated work in between must not matter
    other = SampleGenerator(config)
    try:
        b = other.generate(11, 42)
    finally:
        other.world.close()
    np.testing.assert_array_equal(a['left'], b['left'])
    np.testing.assert_array_equal(a['right'], b['right'])
    assert a['labels'] == b['labels']
    c = generator.generate(12, 42)
    assert not np.array_equal(a['left'], c['left'])
    assert sample_rng(42, 11).random() == sample_rng(42, 11).random()


def test_label_shapes_and_camera_infos(generator):
    s = generator.generate(5, 9)
    lab = s['labels']
    assert s['left'].shape == (480, 640, 3) and s['left'].dtype == np.uint8
    assert s['right'].shape == (480, 640, 3)
    for v in ('left', 'right'):
        assert np.array(lab['keypoints_2d'][v]).shape == (4, 2)
        assert set(lab['visibility'][v]) <= {0, 1, 2}
    assert np.array(lab['keypoints_3d']).shape == (4, 3)
    assert np.array(lab['object_pose']).shape == (4, 4)
    ci = lab['camera_info']
    assert ci['left']['K'] == ci['right']['K']
    assert ci['right']['P'][3] == pytest.approx(-ci['left']['K'][0] * lab['baseline'])
    for name, d in lab['variables'].items():
        assert set(d) == {'value', 'bin'}


def test_distorted_labels_follow_plumb_bob(generator):
    s = generator.generate(2, 31, overrides=dict(CLEAN, distortion=1, k1=-0.3))
    ci = s['labels']['camera_info']['left']
    D = np.array(ci['D'])
    assert D[0] == pytest.approx(-0.3)
    K = np.array(ci['K']).reshape(3, 3)
    X = np.array(s['labels']['keypoints_3d'])
    proj, _ = cv2.projectPoints(X, np.zeros(3), np.zeros(3), K, D)
    np.testing.assert_allclose(proj.reshape(-1, 2), s['labels']['keypoints_2d']['left'],
                               atol=1e-6)


def _camera_model(info):
    """Build the core camera model of a label's camera_info entry."""
    return CameraModel(info['width'], info['height'], info['K'], info['D'],
                       info['distortion_model'], info['R'], info['P'])


@pytest.mark.parametrize('distortion', [0, 1])
def test_labels_are_the_core_projection_of_the_camera_info(generator, distortion):
    """Labels = the core's lens model applied with the published CameraInfo, both views.

    And the inverse the pipeline applies to detections (rectify_points) maps
    the labels onto the rectified projection ``P X`` of the 3D keypoints.
    """
    s = generator.generate(3, 8, overrides=dict(CLEAN, distortion=distortion, k1=-0.3))
    lab = s['labels']
    X = np.array(lab['keypoints_3d'])
    for view in ('left', 'right'):
        camera = _camera_model(lab['camera_info'][view])
        assert camera.has_distortion == bool(distortion)
        uv = np.array(lab['keypoints_2d'][view])
        np.testing.assert_allclose(uv, unrectify_points(camera, X), atol=1e-9)
        Xh = np.c_[X, np.ones(len(X))] @ camera.P.T
        np.testing.assert_allclose(rectify_points(camera, uv), Xh[:, :2] / Xh[:, 2:], atol=1e-6)


def test_distortion_remap_follows_the_core_lens_model():
    """Each distorted pixel samples the render where the core's model puts it (< 0.02 px)."""
    K = np.array([[480.0, 0, 330.2], [0, 483.0, 236.1], [0, 0, 1]])
    for k1, k2 in ((-0.3, 0.09), (-0.12, 0.02), (0.04, 0.0)):
        camera = lens_camera(K, [k1, k2], 640, 480)
        K_render = render_intrinsics(camera)
        map_x, map_y = distortion_maps(camera, K_render)
        rng = np.random.default_rng(1)
        q = np.c_[rng.uniform(0, 639, 400), rng.uniform(0, 479, 400)]
        rows, cols = np.rint(q[:, 1]).astype(int), np.rint(q[:, 0]).astype(int)
        source = np.c_[map_x[rows, cols], map_y[rows, cols]].astype(np.float64)
        back = distort_pixels(camera, source, K_render)
        np.testing.assert_allclose(back, np.c_[cols, rows], atol=0.02)
        # the whole distorted image maps inside the render
        assert map_x.min() >= 0 and map_x.max() <= 639 and map_y.min() >= 0 \
            and map_y.max() <= 479


def test_render_covers_edges_that_bulge_between_corner_and_centre():
    """Strong barrel distortion: every border pixel samples inside the render.

    An edge's undistorted image bulges out between its corner and its centre,
    so checking only those (the first version) left pixels near the top edge
    sampling 0.8 px outside the render (2% of the simulator's distorted
    samples).
    """
    fx = 304.3
    K = np.array([[fx, 0, 319.5], [0, fx, 239.5], [0, 0, 1]])
    camera = lens_camera(K, [-0.2236, 0.0325], 640, 480)
    K_render = render_intrinsics(camera)
    xs, ys = np.arange(640.0), np.arange(480.0)
    border = np.concatenate([np.c_[xs, np.zeros(640)], np.c_[xs, np.full(640, 479.0)],
                             np.c_[np.zeros(480), ys], np.c_[np.full(480, 639.0), ys]])
    source = undistort_pixels(camera, border, K_render)
    assert np.isfinite(source).all()
    assert source.min() >= 0 and source[:, 0].max() <= 639 and source[:, 1].max() <= 479
    # and it does not shrink the render more than needed: some border pixel comes within
    # 1% of the render's edge
    margin = np.minimum.reduce([source[:, 0], 639 - source[:, 0], source[:, 1],
                                479 - source[:, 1]])
    assert margin.min() < 0.01 * 480


def test_distorted_images_match_their_labels(generator):
    """Check distorted renders against their labels with OpenCV's chessboard detector.

    The oracle for the distortion remap: a pre-release version shifted the
    distorted image 7 px against its labels, which the projection test above
    cannot see (it checks the labels, not the pixels).
    """
    errs = []
    for i, k1 in enumerate((-0.25, -0.12, 0.03)):
        s = generator.generate(10 + i, 57, overrides=dict(
            CLEAN, distortion=1, k1=k1, tilt_x=10.0, tilt_y=-15.0, roll=20.0 * i,
            board_width_frac=0.5, center_x=0.0, center_y=0.0))
        for view in ('left', 'right'):
            det = _extreme_corners(s[view])
            if det is None:
                continue
            lab = np.array(s['labels']['keypoints_2d'][view])
            cand = [np.roll(det, k, 0) for k in range(4)]
            cand += [np.roll(det[::-1], k, 0) for k in range(4)]
            errs.append(min(np.linalg.norm(c - lab, axis=1).max() for c in cand))
    assert len(errs) >= 4, f'board found in only {len(errs)} of 6 distorted views'
    assert max(errs) < 1.5, errs  # the detector's own error grows with k1


def test_pybullet_client_is_direct(generator):
    info = p.getConnectionInfo(generator.world.cid)
    assert info['isConnected'] == 1 and info['connectionMethod'] == p.DIRECT


def test_depth_output_matches_keypoint_depth(config):
    """The optional uint16 mm depth map agrees with the 3D labels at visible keypoints."""
    g = SampleGenerator(dict(config, outputs={'depth': True, 'segmentation': True}))
    try:
        checked = 0
        for i in range(4):
            s = g.generate(i, 19, overrides={'distortion': 0})
            assert s['depth'].dtype == np.uint16 and s['depth'].shape == (480, 640)
            assert s['seg'].dtype == np.uint8
            for (u, v), vis, X in zip(s['labels']['keypoints_2d']['left'],
                                      s['labels']['visibility']['left'],
                                      s['labels']['keypoints_3d']):
                if vis == 2:
                    d = s['depth'][int(round(v)), int(round(u))]
                    # flat board: depth at the nearest pixel centre differs from the
                    # keypoint's by at most the plane's slope over half a pixel
                    assert abs(float(d) - 1000 * X[2]) < 4 + 0.01 * 1000 * X[2]
                    checked += 1
        assert checked >= 8
    finally:
        g.world.close()
