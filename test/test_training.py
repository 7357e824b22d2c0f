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
"""End-to-end on a tiny rendered dataset (no ROS): train, resume; sampler feedback."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KP = os.path.join(ROOT, 'src', 'keypoint_perception')
SIM = os.path.join(ROOT, 'src', 'sim_datagen')


def _run(args, timeout=600, returncode=0):
    """Run ``python -m args`` (or ``python -c`` when args[0] is '-c') on the source tree."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([KP, SIM, env.get('PYTHONPATH', '')])
    env['OMP_NUM_THREADS'] = '1'
    command = [sys.executable] + (args if args[0] == '-c' else ['-m', *args])
    r = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == returncode, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def _steps(run_dir):
    with open(os.path.join(run_dir, 'metrics.csv')) as f:
        return [int(row['step']) for row in csv.DictReader(f)]


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """Four rendered checkerboard stereo samples in two shards."""
    data = tmp_path_factory.mktemp('sim') / 'ds'
    _run(['sim_datagen.cli', 'generate', '--config',
          os.path.join(SIM, 'config', 'checkerboard.yaml'), '--count', '4', '--shard-size', '2',
          '--out', str(data), '--seed', '3'])
    return data


def test_train_then_resume_from_last_checkpoint(dataset, tmp_path):
    import torch
    from keypoint_perception.core.checkpoint import load_checkpoint

    data = dataset
    run = tmp_path / 'run'
    train = ['keypoint_perception.training.train', '--data', str(data), '--out', str(run),
             '--batch', '2', '--threads', '1', '--eval-every', '2', '--hard-examples', '0.5']
    # a run "interrupted" after 2 of 4 steps: same schedule, stopped by its time budget
    _run(train + ['--steps', '4', '--minutes', '1e-6'])
    assert _steps(run) == [2]
    first = torch.load(run / 'last.pt', weights_only=True)
    assert first['step'] == 2
    assert torch.isfinite(first['sampler']['loss']).sum() >= 2  # priorities of the views drawn
    assert first['scheduler']['last_epoch'] == 2

    r = _run(train + ['--steps', '4', '--resume'])
    assert 'resuming' in r.stdout and 'at step 2' in r.stdout
    assert _steps(run) == [2, 4]  # appended, not restarted
    last = torch.load(run / 'last.pt', weights_only=True)
    assert last['step'] == 4 and last['scheduler']['last_epoch'] == 4
    changed = [not torch.equal(first['state_dict'][k], last['state_dict'][k])
               for k in first['state_dict'] if first['state_dict'][k].is_floating_point()]
    assert any(changed)  # the resumed run kept optimizing
    model, oc, ckpt = load_checkpoint(str(run / 'best.pt'))
    assert oc.name == 'checkerboard' and ckpt['meta']['step'] in (2, 4)
    assert 'synthetic only' in ckpt['meta']['trained_on']
    assert (run / 'training_curves.png').stat().st_size > 5000


#: ``keypoints-train`` killed (``os._exit``, no clean-up) right after the metrics row
#: of step 4 was written and before that step's checkpoint: the worst moment.
_KILLED_AT_STEP_4 = """
import os, sys
from keypoint_perception.training import train as trainer
save = trainer.save_checkpoint
def save_unless_step_4(path, *args, **kwargs):
    if path.endswith('last.pt') and kwargs['extra']['step'] == 4:
        os._exit(9)
    save(path, *args, **kwargs)
trainer.save_checkpoint = save_unless_step_4
trainer.main(sys.argv[1:])
"""


def _metrics_rows(run_dir):
    """metrics.csv rows without the wall-clock column."""
    with open(os.path.join(run_dir, 'metrics.csv')) as f:
        return [{k: v for k, v in row.items() if k != 'elapsed_s'} for row in csv.DictReader(f)]


@pytest.mark.parametrize('workers', [0, 2])
def test_a_killed_and_resumed_run_equals_an_uninterrupted_one(dataset, tmp_path, workers):
    """Issue 16 #13: random states restored, not re-seeded; no duplicate metrics rows."""
    import torch

    train = ['--data', str(dataset), '--batch', '2', '--threads', '1', '--eval-every', '2',
             '--steps', '6', '--hard-examples', '0.5', '--workers', str(workers)]
    straight, killed = tmp_path / 'straight', tmp_path / 'killed'
    _run(['keypoint_perception.training.train', *train, '--out', str(straight)])
    _run(['-c', _KILLED_AT_STEP_4, *train, '--out', str(killed)], returncode=9)
    assert _steps(killed) == [2, 4]  # the row of step 4 ran ahead of its checkpoint
    assert torch.load(killed / 'last.pt', weights_only=True)['step'] == 2
    r = _run(['keypoint_perception.training.train', *train, '--out', str(killed), '--resume'])
    assert 'at step 2' in r.stdout and 'dropped 1 metrics rows' in r.stdout

    assert _steps(killed) == [2, 4, 6]
    assert _metrics_rows(killed) == _metrics_rows(straight)
    for name in ('last.pt', 'best.pt'):
        a = torch.load(straight / name, weights_only=True)
        b = torch.load(killed / name, weights_only=True)
        assert a['meta']['step'] == b['meta']['step']
        for key, tensor in a['state_dict'].items():
            assert torch.equal(tensor, b['state_dict'][key]), (name, key)  # bit-identical
    a = torch.load(straight / 'last.pt', weights_only=True)
    b = torch.load(killed / 'last.pt', weights_only=True)
    for index, state in a['optimizer']['state'].items():
        assert torch.equal(state['exp_avg_sq'], b['optimizer']['state'][index]['exp_avg_sq'])
    assert a['random_states']['sampler'] == b['random_states']['sampler']


def test_resume_without_a_checkpoint_says_so_and_fails(dataset, tmp_path):
    run = tmp_path / 'never_started'
    r = _run(['keypoint_perception.training.train', '--data', str(dataset), '--out', str(run),
              '--resume'], returncode=2)
    assert 'no checkpoint to resume from' in r.stderr and 'Traceback' not in r.stderr
    assert not run.exists()  # nothing started from scratch


def test_train_from_a_view_pack_with_batch_workers(dataset, tmp_path):
    from keypoint_perception.training.data import load_shard_views
    from keypoint_perception.training.view_pack import load_view_pack
    from keypoint_perception.core.dataset import list_shards

    pack = tmp_path / 'packs' / 'ds.npz'
    r = _run(['keypoint_perception.training.view_pack', '--data', str(dataset),
              '--out', str(pack), '--quality', '101'])
    assert '8 views (4 validation), 256x192' in r.stdout  # the last of 2 shards held out
    train, val = load_view_pack(str(pack))
    first, last = (load_shard_views(p, (256, 192)) for p in list_shards(str(dataset)))
    np.testing.assert_array_equal(train.images, first.images)  # lossless, in shard order
    np.testing.assert_array_equal(val.uv, last.uv)

    run = tmp_path / 'run'
    r = _run(['keypoint_perception.training.train', '--data', str(pack), '--out', str(run),
              '--batch', '2', '--threads', '1', '--eval-every', '2', '--steps', '2',
              '--workers', '2', '--device', 'cpu'])
    assert 'training on cpu with 2 batch workers' in r.stdout
    assert '4 training views, 4 validation views' in r.stdout
    assert _steps(run) == [2]
    assert (run / 'best.pt').is_file()


def test_feedback_folds_the_hardest_samples_bins_into_the_sampler(dataset, tmp_path):
    from keypoint_perception.core.dataset import iter_samples, read_meta

    out = tmp_path / 'fb'
    r = _run(['keypoint_perception.training.feedback', '--data', str(dataset), '--all-shards',
              '--worst', '0.5', '--out', str(out)])
    assert '4 samples' in r.stdout and '2 hardest counted' in r.stdout
    prior = read_meta(str(dataset))['sampler_state']['variables']
    with open(out / 'sampler_state.json') as f:
        fb = json.load(f)
    assert fb['samples'] == 4 and fb['hard_samples'] == 2
    seen = {}
    for s in iter_samples(str(dataset), decode_images=False):
        for name, d in s['labels']['variables'].items():
            seen.setdefault(name, set()).add(d['bin'])
    for name, var in fb['sampler_state']['variables'].items():
        added = np.asarray(var['theta']) - np.asarray(prior[name]['theta'])
        assert added.sum() == pytest.approx(2.0), name   # theta += counts of 2 samples
        assert set(np.flatnonzero(added > 0)) <= seen[name], name
    with open(out / 'bin_errors.csv') as f:
        rows = list(csv.DictReader(f))
    per_var = {}
    for row in rows:
        per_var[row['variable']] = per_var.get(row['variable'], 0) + int(row['samples'])
    assert set(per_var.values()) == {4}
    assert (out / 'bin_errors.png').stat().st_size > 5000
