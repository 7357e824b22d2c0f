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
"""The robot benchmark (tools/benchmark_robots.py) and the figures it aggregates.

The aggregation (percent of the diagonal, PCK, detection rate, 3D errors,
ADD, ADD AUC, pose errors) is checked against hand-computed examples; the
script runs end to end on a shard of two rendered Panda samples, once with
an untrained network and once with the detector and the stereo pipeline
replaced by the renderer's labels, where both camera-to-base fits must
recover the true transform.
"""

import hashlib
import json
import math
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'tools'))
sys.path.insert(0, os.path.join(ROOT, 'src', 'sim_datagen'))

import benchmark_robots  # noqa: E402
from keypoint_perception.core.checkpoint import save_checkpoint  # noqa: E402
from keypoint_perception.core.dataset import iter_shard, list_shards  # noqa: E402
from keypoint_perception.core.model import BeliefMapNet, make_config  # noqa: E402
from keypoint_perception.core.objects import load_object_class  # noqa: E402
from keypoint_perception.core.pipeline import StereoResult  # noqa: E402
from keypoint_perception.core.views import ViewKeypoints  # noqa: E402
from keypoint_perception.training.robot_metrics import (add_curve,  # noqa: E402
                                                        camera_to_base_summary, json_ready,
                                                        keypoint_table, met,
                                                        noisy_keypoints, stereo_table,
                                                        summarize_selected)

NAN = math.nan


def test_percent_of_diagonal_pck_and_detection_rate():
    # view 0: 600x800 (diagonal 1000 px); view 1: 300x400 (diagonal 500 px)
    errors = np.array([[5.0, 15.0, NAN], [15.0, 30.0, 4.0]])
    diagonals = np.array([1000.0, 500.0])
    selected = np.array([[True, True, True], [True, False, True]])
    # selected: 0.5%, 1.5%, missed, 3.0%, 0.8% of their view's diagonal
    s = summarize_selected(errors, diagonals, selected)
    assert s['keypoints'] == 5
    assert s['detected'] == pytest.approx(4 / 5)
    assert s['mean_pct_diag'] == pytest.approx((0.5 + 1.5 + 3.0 + 0.8) / 4)
    assert s['mean_px'] == pytest.approx((5 + 15 + 15 + 4) / 4)
    assert s['pck@1'] == pytest.approx(2 / 5)  # the missed one is incorrect
    assert s['pck@2'] == pytest.approx(3 / 5)
    assert s['pck@5'] == pytest.approx(4 / 5)
    table = keypoint_table(errors, diagonals, selected, ['a', 'b', 'c'])
    assert table['overall'] == s
    a, b, c = (table['per_keypoint'][k] for k in 'abc')
    assert a['keypoints'] == 2 and a['mean_pct_diag'] == pytest.approx((0.5 + 3.0) / 2)
    assert b['keypoints'] == 1 and b['mean_pct_diag'] == pytest.approx(1.5)
    assert b['pck@1'] == 0.0 and b['pck@2'] == 1.0
    assert c['detected'] == 0.5 and c['mean_pct_diag'] == pytest.approx(0.8)
    assert c['pck@1'] == 0.5
    none = summarize_selected(errors, diagonals, np.zeros_like(selected))
    assert none['keypoints'] == 0 and none['detected'] == 0.0 and math.isnan(none['pck@1'])


def test_stereo_table_counts_triangulated_keypoints():
    errors = np.array([[0.001, NAN], [0.003, 0.010]])
    in_both = np.array([[True, True], [False, True]])
    t = stereo_table(errors, in_both, ['a', 'b'])
    assert t['overall']['count'] == 3
    assert t['overall']['mean_mm'] == pytest.approx((1 + 3 + 10) / 3)
    assert t['overall']['median_mm'] == pytest.approx(3.0)
    assert t['overall']['triangulated'] == pytest.approx(2 / 3)
    assert t['overall']['triangulated_outside'] == 1
    assert t['per_keypoint']['a']['triangulated'] == 1.0
    assert t['per_keypoint']['b']['triangulated'] == 0.5
    assert t['per_keypoint']['b']['max_mm'] == pytest.approx(10.0)


def _transform(angle_z_deg=0.0, t=(0.0, 0.0, 0.0)):
    a = math.radians(angle_z_deg)
    T = np.eye(4)
    T[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    T[:3, 3] = t
    return T


def test_camera_to_base_add_auc_and_failures():
    points = np.array([[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]])
    truth = _transform(t=(0.0, 0.0, 1.0))
    estimates = [_transform(t=(0.01, 0.0, 1.0)),  # ADD 10 mm, 10 mm, 0 deg
                 _transform(180.0, (0.0, 0.0, 1.0)),  # each point moves 200 mm, 180 deg
                 None]  # no estimate: ADD = inf
    s = camera_to_base_summary(estimates, [truth] * 3, [points] * 3)
    assert s['frames'] == 3 and s['failures'] == 1
    # AUC up to 100 mm: mean of max(0, 1 - ADD / 100 mm) = (0.9 + 0 + 0) / 3
    assert s['add_auc'] == pytest.approx(0.3)
    assert s['add_mean_mm'] == pytest.approx(105.0)
    assert s['add_median_all_mm'] == pytest.approx(200.0)
    assert s['translation_mean_mm'] == pytest.approx(5.0)
    assert s['rotation_mean_deg'] == pytest.approx(90.0)
    assert s['add_mm'][:2] == pytest.approx([10.0, 200.0]) and s['add_mm'][2] == math.inf
    x, y = add_curve(np.array(s['add_mm']) / 1000.0)
    assert y[0] == 0.0 and y[-1] == pytest.approx(1 / 3)
    assert y[np.searchsorted(x, 0.02)] == pytest.approx(1 / 3)
    # the curve's normalized area is the AUC (trapezoid rule, fine grid)
    x, y = add_curve([0.01, 0.05, math.inf], steps=2001)
    area = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x))) / 0.1
    assert area == pytest.approx((0.9 + 0.5 + 0.0) / 3, abs=1e-3)
    assert json.dumps(json_ready(s), allow_nan=False)  # inf becomes null
    assert json_ready(s)['add_mm'][2] is None


def test_noisy_keypoints_have_the_requested_mean_error():
    rng = np.random.default_rng(0)
    uv = np.tile([[100.0, 50.0], [NAN, NAN]], (20000, 1))
    noisy = noisy_keypoints(uv, 0.5, 800.0, rng)  # mean error 4 px
    seen = np.isfinite(uv).all(axis=1)
    assert np.isnan(noisy[~seen]).all()
    lengths = np.linalg.norm(noisy[seen] - uv[seen], axis=1)
    assert lengths.mean() == pytest.approx(4.0, rel=0.02)
    assert abs(np.mean(noisy[seen] - uv[seen])) < 0.05  # unbiased
    np.testing.assert_array_equal(noisy_keypoints(uv[:2], 0.0, 800.0, rng), uv[:2])
    with pytest.raises(ValueError, match='mean_error_pct_diag'):
        noisy_keypoints(uv, -1.0, 800.0, rng)
    with pytest.raises(ValueError, match='uv'):
        noisy_keypoints(np.zeros((3, 3)), 1.0, 800.0, rng)


def test_met():
    assert met(0.8, 1.0, higher_is_better=False) == 'met'
    assert met(1.2, 1.0, higher_is_better=False) == 'not met'
    assert met(0.91, 0.9, higher_is_better=True) == 'met'
    assert met(NAN, 0.9, higher_is_better=True) == 'not met'


@pytest.fixture(scope='module')
def panda_shard(tmp_path_factory):
    """A dataset folder with one shard of two Panda renders, and an untrained checkpoint."""
    from sim_datagen.config import load_config
    from sim_datagen.generator import SampleGenerator
    from sim_datagen.writer import encode_sample, ShardWriter
    folder = tmp_path_factory.mktemp('panda_test')
    gen = SampleGenerator(load_config(os.path.join(ROOT, 'src', 'sim_datagen', 'config',
                                                   'panda.yaml')))
    writer = ShardWriter(str(folder), 0)
    try:
        for i in range(2):
            sample = gen.generate(i, seed=5, overrides={'out_of_view': 0, 'person': 0,
                                                        'n_distractors': 0})
            writer.write(f'{i:09d}', encode_sample(sample))
        writer.close()
    finally:
        gen.world.close()
    object_class = load_object_class('panda')
    model = str(folder / 'panda_untrained.pt')
    save_checkpoint(model, BeliefMapNet(make_config('lite', object_class.num_keypoints)),
                    object_class)
    return str(folder), model


def _run(tmp_path, data, model, name):
    doc = tmp_path / f'{name}.md'
    doc.write_text('# Benchmarks\n\nkept\n')
    rc = benchmark_robots.main(['--model', model, '--data', data, '--backend', 'torch',
                                '--threads', '1', '--images', str(tmp_path / name),
                                '--doc', str(doc), '--json', str(tmp_path / f'{name}.json'),
                                '--write-doc'])
    assert rc == 0
    return json.loads((tmp_path / f'{name}.json').read_text()), doc.read_text()


def test_script_end_to_end(panda_shard, tmp_path):
    data, model = panda_shard
    result, doc = _run(tmp_path, data, model, 'untrained')
    figures, info = result['figures'], result['info']
    assert figures['pairs'] == 2 and figures['views'] == 4 and info['samples'] == [
        '000000000', '000000001']
    samples = list(iter_shard(list_shards(data)[0]))
    vis = np.array([s[f'vis_{v}'] for s in samples for v in ('left', 'right')])
    k2 = figures['keypoints_2d']
    assert k2['in_image']['overall']['keypoints'] == int((vis > 0).sum())
    assert k2['visible']['overall']['keypoints'] == int((vis == 2).sum())
    assert k2['labelled_outside_image'] == int((vis == 0).sum())
    for mode in ('mono', 'stereo', 'stereo_rigid'):
        c2b = figures['camera_to_base'][mode]
        assert c2b['frames'] == 2 and len(c2b['add_mm']) == 2
    assert set(figures['speed']) == {'detector_view', 'pipeline_pair', 'kinematics',
                                     'fit_mono', 'fit_stereo', 'fit_stereo_rigid'}
    # error budget: the labels without noise give the true pose to every fit
    budget = figures['error_budget']
    assert [row['level_pct_diag'] for row in budget] == list(benchmark_robots.BUDGET_LEVELS)
    for mode in ('mono', 'stereo', 'stereo_rigid'):
        assert budget[0][mode]['failures'] == 0
        assert budget[0][mode]['add_auc'] == pytest.approx(1.0, abs=1e-4)
        assert budget[-1][mode]['add_auc'] < 0.95  # 2% of the diagonal: centimetres off
    assert figures['speed']['detector_view']['count'] == 4
    assert info['threads'] == 1
    begin, end = benchmark_robots.markers('panda')
    assert doc.startswith('# Benchmarks\n\nkept\n') and doc.count(begin) == 1
    section = doc[doc.index(begin):doc.index(end)]
    assert 'python tools/benchmark_robots.py --model' in section
    assert '| 2D mean error <= 1% of the diagonal' in section
    for path in result['images'].values():
        assert os.path.getsize(path) > 1000


def _key(image):
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def test_script_with_perfect_detections(panda_shard, tmp_path, monkeypatch):
    """Detector and pipeline replaced by the labels: no error, both fits find the true pose."""
    data, model = panda_shard
    samples = list(iter_shard(list_shards(data)[0]))
    labels = {_key(s[v]): s[f'kp2d_{v}'].astype(np.float64)
              for s in samples for v in ('left', 'right')}
    points_3d = {_key(s['left']): s['kp3d'].astype(np.float64) for s in samples}

    def detect(self, images, *options, **keywords):
        uv = labels[_key(images[0])]
        return [ViewKeypoints(uv=uv, confidence=np.ones(len(uv), np.float32),
                              beliefs=np.zeros((len(uv), 1, 1), np.float32))]

    def process(self, left_image, right_image, left_camera, right_camera):
        xyz = points_3d[_key(left_image)]
        left, right = (detect(None, [image])[0] for image in (left_image, right_image))
        return StereoResult(left, right, xyz, np.ones(len(xyz), bool), np.zeros(len(xyz)),
                            np.ones(len(xyz), np.float32))

    monkeypatch.setattr(benchmark_robots.KeypointDetector, 'detect', detect)
    monkeypatch.setattr(benchmark_robots.StereoKeypointPipeline, 'process', process)
    result, doc = _run(tmp_path, data, model, 'oracle')
    figures = result['figures']
    k2 = figures['keypoints_2d']['in_image']['overall']
    assert k2['mean_pct_diag'] == pytest.approx(0.0, abs=1e-6)
    assert k2['pck@1'] == 1.0 and k2['detected'] == 1.0
    mono = figures['camera_to_base']['mono']
    assert mono['failures'] == 0
    assert mono['add_auc'] == pytest.approx(1.0, abs=1e-4)
    assert mono['translation_mean_mm'] < 0.1 and mono['rotation_mean_deg'] < 0.01
    for mode in ('stereo', 'stereo_rigid'):
        stereo = figures['camera_to_base'][mode]
        assert stereo['failures'] == 0 and stereo['add_auc'] == pytest.approx(1.0, abs=1e-4)
        assert stereo['translation_mean_mm'] < 0.1 and stereo['rotation_mean_deg'] < 0.01
    s3 = figures['stereo_3d']['overall']
    assert s3['count'] == 2 * 7 and s3['max_mm'] == 0.0
    begin, _ = benchmark_robots.markers('panda')
    assert '| 2D mean error <= 1% of the diagonal (labelled in the image) | 0.00% | met |' \
        in doc[doc.index(begin):]
    assert '| ADD AUC mono >= 0.85 | 1.000 | met |' in doc
    assert '| ADD AUC stereo >= 0.9 | 1.000 | met |' in doc
