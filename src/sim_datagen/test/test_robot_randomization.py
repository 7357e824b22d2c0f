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
"""Robot-class randomization: field of view, per-sample image size, payloads and cables."""

import hashlib
import json

import numpy as np
import pybullet as p
import pytest
from sim_datagen.config import load_config
from sim_datagen.generator import SampleGenerator
from sim_datagen.labels import SEG_ATTACHMENT, SEG_BOARD
from sim_datagen.optics import focal_from_hfov
from sim_datagen.scene.urdf_object import pose_matrix

from conftest import CONFIG

#: a clean scene: no occluders, distortion, blur or noise, object in view
CLEAN = {'bar': 0, 'n_distractors': 0, 'person': 0, 'blur_sigma': 0.0, 'motion_blur': 0.0,
         'noise_sigma': 0.0, 'distortion': 0, 'out_of_view': 0, 'support': 0,
         'center_x': 0.0, 'center_y': 0.0, 'jpeg_quality': 95, 'cable': 0, 'n_markers': 0}


def _generator(name: str, sizes: bool = False, segmentation: bool = False) -> SampleGenerator:
    """Return a fast generator of a shipped robot config (192x144 unless ``sizes``)."""
    cfg = load_config(name)
    if not sizes:
        cfg['image'] = {'width': 192, 'height': 144}
        cfg['variables'] = {k: v for k, v in cfg['variables'].items() if k != 'image_size'}
    cfg['world'] = dict(cfg['world'], n_object_textures=4, n_meshes=2,
                        use_pybullet_data_textures=False)
    cfg['outputs'] = dict(cfg['outputs'], segmentation=segmentation)
    return SampleGenerator(cfg)


@pytest.fixture(scope='module', params=['panda', 'kuka_iiwa'])
def robot(request):
    g = _generator(request.param)
    yield g
    g.world.close()


def test_focal_length_from_horizontal_field_of_view():
    """Focal length (W/2) / tan(hfov/2): 90 deg gives W/2, 60 deg at 640 px 320 sqrt(3)."""
    assert focal_from_hfov(90.0, 640) == pytest.approx(320.0, abs=1e-9)
    assert focal_from_hfov(60.0, 640) == pytest.approx(320.0 * np.sqrt(3.0), abs=1e-9)
    assert focal_from_hfov(100.0, 1280) == pytest.approx(640.0 / np.tan(np.radians(50)))
    for bad in (0.0, 180.0, -5.0):
        with pytest.raises(ValueError):
            focal_from_hfov(bad, 640)


def test_robot_configs_draw_hfov_not_fx():
    """The robot configs draw hfov 40-100 deg and image sizes; the base's fx is removed."""
    for name in ('panda', 'kuka_iiwa'):
        variables = load_config(name)['variables']
        assert 'fx' not in variables and variables['hfov']['range'] == [40, 100]
        sizes = variables['image_size']['choices']
        assert [320, 240] in sizes and [1280, 720] in sizes


def test_hfov_sets_the_camera_info():
    """A sample's CameraInfo K / P hold the focal length of its hfov at its own width."""
    g = _generator('panda', sizes=True)
    try:
        for k, hfov in ((0, 40.0), (4, 100.0), (3, 70.0)):
            s = g.generate(0, 5, overrides=dict(CLEAN, hfov=hfov, image_size=k))
            width, height = g.image_sizes[k]
            for view in ('left', 'right'):
                ci = s['labels']['camera_info'][view]
                K, P = np.reshape(ci['K'], (3, 3)), np.reshape(ci['P'], (3, 4))
                fx = (width / 2) / np.tan(np.radians(hfov) / 2)
                assert K[0, 0] == pytest.approx(fx, rel=1e-12) and P[0, 0] == K[0, 0]
                assert K[1, 1] / K[0, 0] == pytest.approx(s['labels']['variables']['aspect']
                                                          ['value'], rel=1e-12)
                assert (ci['width'], ci['height']) == (width, height)
    finally:
        g.world.close()


def test_per_sample_image_sizes_agree_with_camera_info_and_labels():
    """Every image_size choice: images and CameraInfo agree, 2D labels = P X (1e-6 px)."""
    g = _generator('kuka_iiwa', sizes=True)
    try:
        assert g.image_sizes == [(320, 240), (640, 360), (640, 480), (848, 480), (1280, 720)]
        for k, (width, height) in enumerate(g.image_sizes):
            s = g.generate(k, 3, overrides=dict(CLEAN, image_size=k, cx_offset=20.0,
                                                cy_offset=-10.0))
            lab = json.loads(json.dumps(s['labels']))   # what the writer stores
            X = np.array(lab['keypoints_3d'])
            for view in ('left', 'right'):
                assert s[view].shape == (height, width, 3) and s[view].dtype == np.uint8
                ci = lab['camera_info'][view]
                assert (ci['width'], ci['height']) == (width, height)
                K, P = np.reshape(ci['K'], (3, 3)), np.reshape(ci['P'], (3, 4))
                # principal-point offsets are px at 640x480, scaled with the size
                assert K[0, 2] == pytest.approx((width - 1) / 2 + 20.0 * width / 640, abs=1e-9)
                assert K[1, 2] == pytest.approx((height - 1) / 2 - 10.0 * height / 480,
                                                abs=1e-9)
                uvw = np.c_[X, np.ones(len(X))] @ P.T
                np.testing.assert_allclose(lab['keypoints_2d'][view], uvw[:, :2] / uvw[:, 2:],
                                           atol=1e-6)
            assert ((np.array(lab['visibility']['left']) > 0).sum() >= 3)
    finally:
        g.world.close()


def _payload_pose(g: SampleGenerator, overrides: dict) -> tuple:
    """Generate with ``overrides``; return (labels, T_link_payload measured in the world)."""
    seen = {}

    def hook(scene):
        payload = scene.extra_labels['attachments']['payload']
        T_world_link = scene.instance.link_frame(payload['link'])
        pos, q = p.getBasePositionAndOrientation(scene.attachment_ids[0],
                                                 physicsClientId=g.world.cid)
        seen['T'] = np.linalg.inv(T_world_link) @ pose_matrix(pos, q)
        return scene

    s = g.generate(1, 4, overrides=overrides, scene_hook=hook)
    return s['labels'], seen['T']


def test_payload_stays_attached_to_the_flange_and_keypoints_do_not_change(robot):
    """Each payload kind keeps its pose in the flange frame for two joint configurations."""
    kinds = robot.urdf_class.attachments.payload_kinds
    joints_a = {f'q{i}': 0.2 + 0.07 * i for i in range(1, 8)}
    joints_b = {f'q{i}': 0.8 - 0.09 * i for i in range(1, 8)}
    for k, kind in enumerate(kinds):
        if kind == 'none':
            continue
        ov = dict(CLEAN, payload=k, payload_size=0.1)
        lab_a, T_a = _payload_pose(robot, dict(ov, **joints_a))
        lab_b, T_b = _payload_pose(robot, dict(ov, **joints_b))
        label_T = np.array(lab_a['attachments']['payload']['T_link_payload'])
        assert lab_a['attachments']['payload']['kind'] == kind
        np.testing.assert_allclose(T_a, label_T, atol=1e-6)
        np.testing.assert_allclose(T_b, label_T, atol=1e-6)
        assert lab_a['object']['joints'] != lab_b['object']['joints']
        # the keypoints are the joint origins: the payload does not move them
        none = robot.generate(1, 4, overrides=dict(ov, payload=0, **joints_a))['labels']
        assert 'payload' not in none['attachments']
        np.testing.assert_allclose(none['keypoints_3d'], lab_a['keypoints_3d'], atol=1e-12)
        np.testing.assert_allclose(none['keypoints_2d']['left'], lab_a['keypoints_2d']['left'],
                                   atol=1e-9)


def test_payload_covering_grasp_marks_it_occluded():
    """A box centred on the panda's grasp point occludes it (1) and is segmentation class 4."""
    g = _generator('panda', segmentation=True)
    try:
        j = g.kp_names.index('grasp')
        ov = dict(CLEAN, payload=1, payload_size=0.15, object_size_frac=0.7, cable=0)
        at_grasp = []
        for index in range(3):
            s = g.generate(index, 8, overrides=ov)
            lab = s['labels']
            assert lab['attachments']['payload']['kind'] == 'box'
            for view in ('left', 'right'):
                assert lab['visibility'][view][j] == 1, (index, view)
            # at the grasp pixel: the box, or the hand / fingers in front of it
            u, v = np.rint(lab['keypoints_2d']['left'][j]).astype(int)
            at_grasp.append(int(s['seg'][v, u]))
            assert at_grasp[-1] in (SEG_BOARD, SEG_ATTACHMENT)
            assert (s['seg'] == SEG_ATTACHMENT).any()
            none = g.generate(index, 8, overrides=dict(ov, payload=0))
            assert 'payload' not in none['labels']['attachments']
            np.testing.assert_allclose(none['labels']['keypoints_2d']['left'],
                                       lab['keypoints_2d']['left'], atol=1e-9)
        assert SEG_ATTACHMENT in at_grasp
    finally:
        g.world.close()


def test_cable_is_drawn_as_an_attachment(robot):
    """Both cable kinds add one body of class SEG_ATTACHMENT in view or below the robot."""
    for k, kind in enumerate(robot.urdf_class.attachments.cable_kinds):
        if kind == 'none':
            continue
        seen = {}

        def hook(scene):
            seen['ids'] = scene.attachment_ids
            return scene

        s = robot.generate(2, 6, overrides=dict(CLEAN, payload=0, cable=k), scene_hook=hook)
        assert s['labels']['attachments']['cable']['kind'] == kind
        assert len(seen['ids']) == 1
        radius = s['labels']['attachments']['cable']['radius']
        assert 0.004 <= radius <= 0.008


def test_markers_lie_on_the_robot_surface_and_leave_the_keypoints_alone(robot):
    """Each marker sits on the collision surface facing out, as labelled in its link."""
    from sim_datagen.scene.attachments import MARKER_SINK, MARKER_THICKNESS
    seen = {}

    def hook(scene):
        cid = robot.world.cid
        seen['poses'] = [pose_matrix(*p.getBasePositionAndOrientation(b, physicsClientId=cid))
                         for b in scene.attachment_ids]
        markers = scene.extra_labels['attachments']['markers']
        seen['links'] = [scene.instance.link_frame(m['link']) for m in markers]
        seen['hits'] = []
        for T in seen['poses']:   # a ray along the marker's -z axis, from 5 cm out
            z, c = T[:3, 2], T[:3, 3]
            hit = p.rayTest((c + 0.05 * z).tolist(), (c - 0.05 * z).tolist(),
                            physicsClientId=cid)[0]
            body, fraction = hit[0], hit[2]
            seen['hits'].append((body == scene.instance.body, 0.1 * fraction))
        return scene

    ov = dict(CLEAN, payload=0, cable=0, n_markers=4, marker_size=0.08)
    s = robot.generate(3, 9, overrides=ov, scene_hook=hook)
    markers = s['labels']['attachments']['markers']
    assert 2 <= len(markers) <= 4 and len(seen['poses']) == len(markers)
    for m, T, T_link, hit in zip(markers, seen['poses'], seen['links'], seen['hits']):
        on_robot, distance = hit
        assert m['kind'] in ('fiducial', 'tape', 'dot') and m['size'] == pytest.approx(0.08)
        np.testing.assert_allclose(T_link @ np.array(m['T_link_marker']), T, atol=1e-6)
        assert on_robot
        # the centre lies MARKER_SINK - thickness / 2 behind the surface (inside the link)
        assert distance == pytest.approx(0.05 - MARKER_SINK + MARKER_THICKNESS / 2, abs=2e-3)
    none = robot.generate(3, 9, overrides=dict(ov, n_markers=0))['labels']
    assert 'markers' not in none['attachments']
    np.testing.assert_allclose(none['keypoints_2d']['left'], s['labels']['keypoints_2d']['left'],
                               atol=1e-9)


#: SHA-256 of the labels (JSON, sorted keys) of samples 0 and 1 of seed 7 of
#: checkerboard.yaml: the chessboard output must not change with the robot
#: randomization (images were compared bit for bit when it was added)
CHECKERBOARD_LABELS_SHA256 = 'be6fbf6dd9488654d366628b10be5ac780db9704d59c6449b6d6c77233b3e9cf'


def test_checkerboard_labels_are_unchanged():
    """Checkerboard samples (fx, fixed size, no attachments) keep their exact labels."""
    g = SampleGenerator(load_config(CONFIG))
    try:
        h = hashlib.sha256()
        for index in range(2):
            s = g.generate(index, 7)
            assert s['left'].shape == (480, 640, 3)
            h.update(json.dumps(s['labels'], sort_keys=True).encode())
        assert h.hexdigest() == CHECKERBOARD_LABELS_SHA256
    finally:
        g.world.close()
