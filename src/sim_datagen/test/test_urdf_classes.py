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
"""URDF object classes (mug, drawer, robots): labels against independent oracles."""

import dataclasses
import glob
import json
import os
import tempfile

import cv2
import numpy as np
import pybullet as p
import pytest
from sim_datagen import rendering
from sim_datagen.config import ConfigError, load_config
from sim_datagen.generator import SampleGenerator
from sim_datagen.scene import urdf_scene
from sim_datagen.scene.layout import rigid_transform
from sim_datagen.scene.support_plane import add_support_plane
from sim_datagen.scene.urdf_object import pose_matrix

from conftest import PKG

CLASSES = ['mug', 'drawer', 'kuka_iiwa', 'panda']

#: a clean scene: no occluders, distortion, blur or noise, object in view
CLEAN = {'bar': 0, 'n_distractors': 0, 'person': 0, 'blur_sigma': 0.0, 'motion_blur': 0.0,
         'noise_sigma': 0.0, 'distortion': 0, 'out_of_view': 0, 'support': 0,
         'center_x': 0.0, 'center_y': 0.0, 'jpeg_quality': 95}


def _small(name: str) -> dict:
    cfg = load_config(name)
    cfg['image'] = {'width': 192, 'height': 144}
    # one small size (the per-sample sizes are tested in test_robot_randomization)
    cfg['variables'] = {k: v for k, v in cfg['variables'].items() if k != 'image_size'}
    cfg['world'] = dict(cfg['world'], n_object_textures=4, n_meshes=2,
                        use_pybullet_data_textures=False, background_pad=64)
    return cfg


@pytest.fixture(scope='module', params=CLASSES)
def gen(request):
    g = SampleGenerator(_small(request.param))
    yield g
    g.world.close()


def _project(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    uvw = np.c_[X, np.ones(len(X))] @ P.T
    return uvw[:, :2] / uvw[:, 2:]


def test_labels_are_projections_of_the_3d_keypoints(gen):
    """2D labels = stored 3D keypoints through the stored P (pinhole) / K, D (OpenCV)."""
    for index, distortion in ((0, 0), (1, 1)):
        s = gen.generate(index, 11, overrides={'distortion': distortion})
        lab = json.loads(json.dumps(s['labels']))   # what the writer stores
        X = np.array(lab['keypoints_3d'])
        assert X.shape == (len(gen.kp_names), 3) and np.all(X[:, 2] > 0)
        for n in ('left', 'right'):
            ci = lab['camera_info'][n]
            uv = np.array(lab['keypoints_2d'][n])
            vis = np.array(lab['visibility'][n])
            assert uv.shape == (len(X), 2) and set(vis.tolist()) <= {0, 1, 2}
            P = np.array(ci['P']).reshape(3, 4)
            if distortion == 0:
                np.testing.assert_allclose(uv, _project(P, X), atol=1e-6)
            else:
                K = np.array(ci['K']).reshape(3, 3)
                t = np.linalg.solve(K, P[:, 3])   # right: (-baseline, 0, 0)
                ref, _ = cv2.projectPoints(X + t, np.zeros(3), np.zeros(3), K,
                                           np.array(ci['D'], np.float64))
                np.testing.assert_allclose(uv, ref[:, 0], atol=1e-4)
        assert lab['object']['source'] in [src.name for src in gen.sources]


def _joint_origin_oracle(body: int, cid: int, link_name: str) -> np.ndarray:
    """World position of the joint whose child is ``link_name``, from getJointInfo."""
    for j in range(p.getNumJoints(body, physicsClientId=cid)):
        ji = p.getJointInfo(body, j, physicsClientId=cid)
        if ji[12].decode() != link_name:
            continue
        parent = ji[16]
        if parent < 0:
            T_par = pose_matrix(*p.getBasePositionAndOrientation(body, physicsClientId=cid))
        else:
            st = p.getLinkState(body, parent, computeForwardKinematics=1, physicsClientId=cid)
            T_par = pose_matrix(st[0], st[1])   # parent's inertial frame, as ji[14] is
        return (T_par @ pose_matrix(ji[14], ji[15]))[:3, 3]
    raise KeyError(link_name)


@pytest.mark.parametrize('name', ['kuka_iiwa', 'panda'])
def test_robot_keypoints_are_pybullet_joint_origins(name):
    """3D keypoints = joint origins from getJointInfo and link frames from getLinkState."""
    gen = SampleGenerator(_small(name))
    try:
        got = {}

        def hook(sc):
            inst = sc.instance
            got['oracle'] = np.array([_joint_origin_oracle(inst.body, inst.cid, link)
                                      for _, link, _ in gen.anchors])
            got['link_state'] = np.array([p.getLinkState(
                inst.body, inst.links[link], computeForwardKinematics=1,
                physicsClientId=inst.cid)[4] for _, link, _ in gen.anchors])
            got['q'] = {n: (p.getJointState(inst.body, j[0], physicsClientId=inst.cid)[0],
                            j[2], j[3]) for n, j in inst.joints.items()}
            return sc

        for index in range(2):
            s = gen.generate(index, 5, overrides={'distortion': 0}, scene_hook=hook)
            kp3d = np.array(s['labels']['keypoints_3d'])
            np.testing.assert_allclose(kp3d, got['oracle'], atol=1e-6)
            np.testing.assert_allclose(kp3d, got['link_state'], atol=1e-6)
            for n, spec in gen.sources[0].joints.items():   # fractions of the URDF limits
                frac = s['labels']['variables'][spec.variable]['value']
                q, lo, hi = got['q'][n]
                assert q == pytest.approx(lo + frac * (hi - lo), abs=1e-9)
                assert s['labels']['object']['joints'][n] == pytest.approx(q, abs=1e-9)
        d = np.linalg.norm(kp3d[:, None] - kp3d[None], axis=2) + np.eye(len(kp3d))
        assert d.min() > 0.02   # no two keypoints coincide
    finally:
        gen.world.close()


def test_occluder_in_front_of_a_keypoint_marks_it_occluded(gen):
    """A box put on the left camera's ray to a visible keypoint makes it occluded (1)."""
    ov = dict(CLEAN, object_size_frac=0.6)
    base = gen.generate(2, 3, overrides=ov)
    vis = np.array(base['labels']['visibility']['left'])
    X = np.array(base['labels']['keypoints_3d'])
    assert (vis == 2).any(), 'no visible keypoint to occlude'
    j = int(np.nonzero(vis == 2)[0][0])
    size = 0.04 * np.linalg.norm(X[j])

    def hook(scene):
        box = gen.world.add_box(rigid_transform(np.eye(3), 0.6 * X[j]), [size] * 3, [1, 0, 0, 1])
        return dataclasses.replace(scene, occluder_ids=scene.occluder_ids + (box,))

    occ = gen.generate(2, 3, overrides=ov, scene_hook=hook)
    np.testing.assert_allclose(occ['labels']['keypoints_3d'], X, atol=1e-12)
    v2 = np.array(occ['labels']['visibility']['left'])
    assert v2[j] == 1
    # the box is rendered where the keypoint projects
    uv = np.rint(occ['labels']['keypoints_2d']['left'][j]).astype(int)
    assert np.abs(occ['left'][uv[1], uv[0]].astype(int) - base['left'][uv[1], uv[0]]).sum() > 0


def test_determinism_by_seed_and_history(gen):
    """A sample depends on (seed, index) only, not on what was rendered before."""
    a = gen.generate(4, 9)
    gen.generate(5, 9, overrides={'color_mode': 3})   # textures a (cached) body
    gen.generate(6, 9)
    b = gen.generate(4, 9)
    assert json.dumps(a['labels'], sort_keys=True) == json.dumps(b['labels'], sort_keys=True)
    for k in ('left', 'right'):
        np.testing.assert_array_equal(a[k], b[k])
    c = gen.generate(4, 10)
    assert not np.array_equal(a['left'], c['left'])


def test_drawer_keypoints_follow_the_opening():
    """The drawer keypoints move along the cabinet's +x by the sampled opening."""
    gen = SampleGenerator(_small('drawer'))
    try:
        out = {}
        for f in (0.0, 1.0):
            s = gen.generate(7, 1, overrides=dict(CLEAN, drawer_opening=f))
            out[f] = s['labels']
        q0 = out[0.0]['object']['joints']['drawer_joint']
        q1 = out[1.0]['object']['joints']['drawer_joint']
        assert q0 == 0.0 and q1 > 0.2

        def in_object_frame(lab):   # keypoints in the cabinet's frame
            T = np.array(lab['object_pose'])
            return (np.array(lab['keypoints_3d']) - T[:3, 3]) @ T[:3, :3]

        d = in_object_frame(out[1.0]) - in_object_frame(out[0.0])
        np.testing.assert_allclose(d, np.tile([q1, 0, 0], (5, 1)), atol=1e-6)
        assert np.abs(np.subtract(out[1.0]['keypoints_2d']['left'],
                                  out[0.0]['keypoints_2d']['left'])).max() > 1.0
    finally:
        gen.world.close()


def test_segmentation_and_depth_outputs():
    """Segmentation marks the object (1); depth is set on it."""
    cfg = _small('mug')
    cfg['outputs'] = dict(cfg['outputs'], depth=True, segmentation=True)
    gen = SampleGenerator(cfg)
    try:
        s = gen.generate(0, 2, overrides=dict(CLEAN, object_size_frac=0.5))
        seg, depth = s['seg'], s['depth']
        assert seg.shape == depth.shape == (144, 192)
        assert (seg == 1).sum() > 100
        X = np.array(s['labels']['keypoints_3d'])
        assert np.all(depth[seg == 1] > 0) and depth[seg == 1].min() < 1000 * X[:, 2].max()
    finally:
        gen.world.close()


def test_all_shipped_configs_load():
    """Every config in config/ loads, its sampler builds and its class YAML parses."""
    from keypoint_perception.core.scene_sampler import SceneSampler
    names = sorted(f[:-5] for f in os.listdir(os.path.join(PKG, 'config')) if f.endswith('.yaml'))
    assert set(CLASSES) <= set(names)
    for n in names:
        cfg = load_config(n)
        SceneSampler.from_config(cfg['variables'])
        from keypoint_perception.core.objects import ObjectClass
        oc = ObjectClass.from_yaml(cfg['object_yaml'])
        assert oc.num_keypoints == len(cfg['object_def']['keypoints'])


def test_bad_config_names_file_and_field(tmp_path):
    """Config mistakes raise ConfigError naming the file and the field."""
    base = os.path.join(PKG, 'config', 'base', 'urdf_object.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text(f'extends: {base}\nobject: mug\nsources:\n'
                   '  - {name: m, urdf: procedural:mug, params: {radius: no_such_var}}\n')
    with pytest.raises(ConfigError, match=r'bad.yaml: sources\[0\].params.radius'):
        SampleGenerator(load_config(str(bad)))
    bad.write_text(f'extends: {base}\nobject: mug\nsources:\n'
                   '  - {name: m, urdf: procedural:mug, params: {radius: 0.04}}\n'
                   'visibility: {keypoints: {nose: 0.1}}\n')
    with pytest.raises(ConfigError, match=r'bad.yaml: visibility'):
        SampleGenerator(load_config(str(bad)))
    bad.write_text(f'extends: {base}\nobject: kuka_iiwa\nsources:\n'
                   '  - {name: m, urdf: procedural:mug}\n')
    temp_folders = set(glob.glob(os.path.join(tempfile.gettempdir(), 'sim_datagen_*')))
    with pytest.raises(ConfigError, match=r'link\(s\).*lbr_iiwa_link_1'):
        SampleGenerator(load_config(str(bad)))
    # the generator closed the world it had made (PyBullet client, texture folder)
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), 'sim_datagen_*'))) <= temp_folders
    bad.write_text(f'extends: {base}\nobject: mug\nsources:\n'
                   '  - {name: m, urdf: procedural:mug}\nvariables: {view_azimuth: null}\n')
    with pytest.raises(ConfigError, match=r'bad.yaml: variables: missing view_azimuth'):
        SampleGenerator(load_config(str(bad)))


def test_cli_dataset_coco_and_ros_messages(tmp_path):
    """`generate --config drawer`, the reader, COCO export and the ROS label message work."""
    from sim_datagen.cli import main
    from sim_datagen.coco import export_coco
    from keypoint_perception.core.dataset import iter_samples, read_meta
    out = str(tmp_path / 'ds')
    assert main(['generate', '--config', 'drawer', '--count', '2', '--out', out,
                 '--shard-size', '2']) == 0
    meta = read_meta(out)
    assert meta['object_class'] == 'drawer' and len(meta['keypoint_names']) == 5
    samples = list(iter_samples(out))
    assert len(samples) == 2 and samples[0]['kp2d_left'].shape == (5, 2)
    assert samples[1]['labels']['object']['source'] == 'cabinet'
    coco = export_coco(out, str(tmp_path / 'c.json'), str(tmp_path / 'img'), ['left'], 0.0,
                       write_images=False)
    assert coco['categories'][0]['keypoints'] == meta['keypoint_names']
    pytest.importorskip('keypoint_msgs')
    from builtin_interfaces.msg import Time
    from keypoint_perception.core.scene_sampler import SceneSampler
    from sim_datagen import ros_messages as rm
    sampler = SceneSampler.from_config(meta['config']['variables'])
    msg = rm.labels_to_msg(samples[0]['labels'], sampler, Time(sec=1), 'left')
    back = rm.msg_to_labels(msg)
    np.testing.assert_allclose(back['keypoints_3d'], samples[0]['labels']['keypoints_3d'],
                               atol=1e-6)


def _use_support_plane(monkeypatch, add_plane):
    """Make the generator add support planes (as bodies) with ``add_plane`` instead."""
    monkeypatch.setattr(rendering, 'add_support_plane', add_plane)
    monkeypatch.setattr(urdf_scene, 'add_support_plane', add_plane)


def test_clipped_support_plane_matches_the_full_plane(monkeypatch):
    """The frustum-clipped support polygon renders what the 6 L wide plate rendered.

    Same depth and colour (untextured) wherever the plane is seen, up to
    edge pixels and the old plate's 5 mm rim; same labels.  The first view
    clips the square to a pentagon.  With shadows and ``raycast_shadow`` off:
    otherwise the plane is ray-cast (next tests).
    """
    cfg = _small('kuka_iiwa')
    cfg['image'] = {'width': 640, 'height': 480}
    cfg['outputs'] = dict(cfg['outputs'], depth=True, segmentation=True)
    g = SampleGenerator(cfg)
    g.raycast_shadow = False  # the plane with shadows rendered by TinyRenderer

    def full_plate(world, support, *args, **kwargs):
        return world.add_box(support.T_top @ rigid_transform(np.eye(3), [0, 0, -0.005]),
                             [support.half_size, support.half_size, 0.005], support.rgba, None)

    def clipped_untextured(world, support, *args, **kwargs):
        return add_support_plane(world, dataclasses.replace(support, texture=None), *args,
                                 **kwargs)

    try:
        for index, seed, over in [(4, 0, {'distortion': 1, 'view_elevation': 5.0}),
                                  (1, 5, {'view_elevation': 40.0}),
                                  (2, 5, {'view_elevation': 65.0, 'distortion': 1})]:
            over = {'support': 1, 'shadow': 1, 'light_specular': 0.0, **over}
            _use_support_plane(monkeypatch, clipped_untextured)
            a = g.generate(index, seed, overrides=over)
            _use_support_plane(monkeypatch, full_plate)
            b = g.generate(index, seed, overrides=over)
            da, db = a['depth'].astype(np.float64), b['depth'].astype(np.float64)
            plane = (a['seg'] == 0) & (da > 0)
            assert plane.mean() > 0.2                          # the plane is in view
            assert np.mean(np.abs(da - db) > 6) < 0.01, index
            assert a['labels']['visibility'] == b['labels']['visibility']
            grey = [cv2.cvtColor(s['left'], cv2.COLOR_RGB2GRAY)[plane].astype(np.float64)
                    for s in (a, b)]
            assert np.mean(np.abs(grey[0] - grey[1]) > 12) < 0.02, index
    finally:
        g.world.close()


def test_raycast_support_plane_matches_the_rendered_one():
    """The ray-cast shadowless support plane: same depth, labels, similar colour."""
    cfg = _small('drawer')
    cfg['image'] = {'width': 320, 'height': 240}
    cfg['outputs'] = dict(cfg['outputs'], depth=True, segmentation=True)
    g = SampleGenerator(cfg)
    try:
        for index in range(4):
            over = {'support': 1, 'shadow': 0, 'light_specular': 0.0,
                    'view_elevation': 10.0 + 18 * index, 'distortion': index % 2}
            g.raycast_support = True
            a = g.generate(index, 3, overrides=over)
            g.raycast_support = False
            b = g.generate(index, 3, overrides=over)
            da, db = a['depth'].astype(np.float64), b['depth'].astype(np.float64)
            plane = (a['seg'] == 0) & (da > 0)
            assert plane.mean() > 0.1, index
            assert np.mean(np.abs(da - db) > 6) < 0.01, index
            assert (a['seg'] == b['seg']).mean() > 0.99, index
            assert a['labels']['visibility'] == b['labels']['visibility']
            grey = [np.median(cv2.cvtColor(s['left'], cv2.COLOR_RGB2GRAY)[plane])
                    for s in (a, b)]
            assert abs(float(grey[0]) - float(grey[1])) < 25, (index, grey)
    finally:
        g.world.close()


def test_raycast_shadowed_support_plane_matches_the_rendered_one(monkeypatch):
    """With shadows the ray-cast plane (own shadow map) keeps depth, labels and colour.

    Untextured planes; the shadows themselves differ (TinyRenderer's shadow
    frustum is centred on the camera, ours on the object), but darken only
    the diffuse term by 0.8, so the plane's median grey stays close.
    """
    cfg = _small('drawer')
    cfg['image'] = {'width': 320, 'height': 240}
    cfg['outputs'] = dict(cfg['outputs'], depth=True, segmentation=True)
    g = SampleGenerator(cfg)

    def untextured(scene):
        if scene.support is None:
            return scene
        return dataclasses.replace(scene,
                                   support=dataclasses.replace(scene.support, texture=None))

    def add_untextured(world, support, *args, **kwargs):
        return add_support_plane(world, dataclasses.replace(support, texture=None), *args,
                                 **kwargs)

    _use_support_plane(monkeypatch, add_untextured)
    try:
        drawn = 0
        for index in range(4):
            over = {'support': 1, 'shadow': 1, 'light_specular': 0.0, 'n_distractors': 0,
                    'view_elevation': 10.0 + 18 * index, 'distortion': index % 2}
            g.raycast_shadow = True
            a = g.generate(index, 3, overrides=over, scene_hook=untextured)
            g.raycast_shadow = False
            b = g.generate(index, 3, overrides=over, scene_hook=untextured)
            da, db = a['depth'].astype(np.float64), b['depth'].astype(np.float64)
            plane = (a['seg'] == 0) & (da > 0)
            drawn += int(plane.mean() > 0.1)
            assert np.mean(np.abs(da - db) > 6) < 0.01, index
            assert (a['seg'] == b['seg']).mean() > 0.99, index
            assert a['labels']['visibility'] == b['labels']['visibility']
            grey = [cv2.cvtColor(s['left'], cv2.COLOR_RGB2GRAY)[plane].astype(np.float64)
                    for s in (a, b)]
            assert np.mean(np.abs(grey[0] - grey[1]) > 12) < 0.05, index
        assert drawn >= 3
    finally:
        g.world.close()


def test_decimated_panda_keeps_labels_and_silhouette(tmp_path, monkeypatch):
    """Panda rendered from decimated visual meshes: same keypoints, silhouette IoU > 0.98."""
    import copy
    monkeypatch.setenv('SIM_DATAGEN_CACHE', str(tmp_path))
    cfg = _small('panda')
    cfg['image'] = {'width': 320, 'height': 240}
    cfg['outputs'] = dict(cfg['outputs'], depth=True, segmentation=True)
    assert cfg['sources'][0]['visual_decimation'] > 0
    full_cfg = copy.deepcopy(cfg)
    full_cfg['sources'][0]['visual_decimation'] = 0.0
    full, dec = SampleGenerator(full_cfg), SampleGenerator(cfg)
    try:
        for index in range(3):
            a, b = full.generate(index, 2), dec.generate(index, 2)
            for k in ('keypoints_2d', 'keypoints_3d', 'object_pose'):
                assert a['labels'][k] == b['labels'][k]
            ma, mb = a['seg'] == 1, b['seg'] == 1
            assert (ma & mb).sum() / max((ma | mb).sum(), 1) > 0.98, index
    finally:
        full.world.close()
        dec.world.close()
