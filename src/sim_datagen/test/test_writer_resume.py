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
"""Shards, atomic writes, resume after a kill, reader, worker independence."""

import json
import os
import tarfile
import time

from keypoint_perception.core.dataset import iter_samples, list_shards, read_meta
import numpy as np
import pytest
from sim_datagen import cli
from sim_datagen.writer import ShardWriter

from conftest import CONFIG


def _gen(out, count, workers=1, seed=3, shard=3):
    rc = cli.main(['generate', '--config', CONFIG, '--count', str(count), '--out', str(out),
                   '--workers', str(workers), '--seed', str(seed), '--shard-size', str(shard)])
    assert rc == 0


def _digest(out):
    return [(s['key'], s['left'].tobytes(), s['right'].tobytes(),
             json.dumps(s['labels'], sort_keys=True)) for s in iter_samples(str(out))]


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp('ds')
    _gen(out, 7)
    return out


def test_shards_and_reader(dataset):
    names = sorted(os.listdir(dataset))
    assert names == ['meta.json', 'shard-000000.tar', 'shard-000001.tar', 'shard-000002.tar']
    with tarfile.open(dataset / 'shard-000000.tar') as t:
        members = t.getnames()
    assert members[:3] == ['000000000.left.jpg', '000000000.right.jpg', '000000000.json']
    samples = list(iter_samples(str(dataset)))
    assert [s['key'] for s in samples] == [f'{i:09d}' for i in range(7)]
    s = samples[0]
    assert s['left'].shape == (480, 640, 3) and s['left'].dtype == np.uint8
    assert s['kp2d_left'].shape == (4, 2) and s['kp2d_left'].dtype == np.float32
    assert s['vis_right'].shape == (4,) and s['kp3d'].shape == (4, 3)
    assert s['P_right'][0, 3] == pytest.approx(-s['K_left'][0, 0] * s['baseline'])
    meta = read_meta(str(dataset))
    assert meta['object_class'] == 'checkerboard'
    assert meta['keypoint_names'] == ['corner_0', 'corner_1', 'corner_2', 'corner_3']
    assert meta['image_size'] == [640, 480]
    assert set(meta['sampler_state']['variables']) == set(meta['config']['variables'])
    assert 'render' in meta['timing_ms']


def test_killed_run_resumes_to_the_right_count(dataset, tmp_path):
    out = tmp_path / 'resume'
    _gen(out, 7)
    ref = _digest(dataset)
    # simulate a run killed while writing shard 1: its .tmp is left behind,
    # shard 2 was never written
    os.remove(out / 'shard-000002.tar')
    os.replace(out / 'shard-000001.tar', out / 'shard-000001.tar.tmp')
    with open(out / 'shard-000001.tar.tmp', 'r+b') as f:
        f.truncate(5000)  # a broken, partial tar
    assert [os.path.basename(p) for p in list_shards(str(out))] == ['shard-000000.tar']
    assert len(list(iter_samples(str(out)))) == 3  # the reader ignores the .tmp
    mtime0 = os.path.getmtime(out / 'shard-000000.tar')
    _gen(out, 7)
    assert not any(n.endswith('.tmp') for n in os.listdir(out))
    assert os.path.getmtime(out / 'shard-000000.tar') == mtime0  # complete shard kept
    assert _digest(out) == ref  # same samples as an uninterrupted run


def test_shard_writer_abort_leaves_nothing(tmp_path):
    w = ShardWriter(str(tmp_path), 4)
    w.write('000000400', {'json': b'{}'})
    assert os.path.exists(tmp_path / 'shard-000004.tar.tmp')
    assert not os.path.exists(tmp_path / 'shard-000004.tar')
    w.abort()
    assert os.listdir(tmp_path) == []


def test_shard_files_do_not_depend_on_when_they_were_written(tmp_path, monkeypatch):
    """Same members at different times, by another user id: byte-identical shard files."""
    members = {'json': b'{"a": 1}', 'right.jpg': b'R' * 700, 'left.jpg': b'L' * 300}
    paths = []
    for i, now in enumerate((1.7e9 + 0.25, 1.8e9 + 0.5)):
        monkeypatch.setattr(time, 'time', lambda now=now: now)
        os.makedirs(tmp_path / str(i))
        w = ShardWriter(str(tmp_path / str(i)), 0)
        w.write('000000000', members if i == 0 else dict(reversed(list(members.items()))))
        paths.append(w.close())
    data = [open(p, 'rb').read() for p in paths]
    assert data[0] == data[1]
    with tarfile.open(paths[0]) as t:
        infos = t.getmembers()
    assert [i.name for i in infos] == ['000000000.left.jpg', '000000000.right.jpg',
                                       '000000000.json']
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {
        (0, 0, 0, '', '', 0o644)}


def test_same_seed_gives_byte_identical_shard_files(dataset, tmp_path):
    """A second run of the same command writes the same bytes (JPEGs, labels, tar headers)."""
    out = tmp_path / 'again'
    _gen(out, 3)
    assert (out / 'shard-000000.tar').read_bytes() == (dataset / 'shard-000000.tar').read_bytes()


def test_seed_mismatch_refuses_to_mix(dataset, tmp_path):
    out = tmp_path / 'mix'
    _gen(out, 3, seed=1)
    rc = cli.main(['generate', '--config', CONFIG, '--count', '6', '--out', str(out),
                   '--seed', '2', '--shard-size', '3'])
    assert rc == 2


def test_a_larger_count_completes_the_short_last_shard(dataset, tmp_path):
    """4 samples (shards of 3 and 1), then --count 7: the short shard is written again, whole."""
    out = tmp_path / 'grow'
    _gen(out, 4)
    _gen(out, 7)
    assert _digest(out) == _digest(dataset)
    assert read_meta(str(out))['count'] == 7
    rc = cli.main(['generate', '--config', CONFIG, '--count', '5', '--out', str(out),
                   '--seed', '3', '--shard-size', '3'])
    assert rc == 2  # fewer samples than the folder holds


def test_result_does_not_depend_on_workers(dataset, tmp_path):
    out = tmp_path / 'w2'
    _gen(out, 4, workers=2, shard=3)
    assert _digest(out) == _digest(dataset)[:4]


def test_preview_writes_pngs(dataset, tmp_path):
    import cv2
    sheet = tmp_path / 'sheet.png'
    assert cli.main(['preview', '--data', str(dataset), '--out', str(sheet), '--count', '4']) == 0
    im = cv2.imread(str(sheet))
    assert im is not None and im.shape[0] > 100
    assert cv2.imread(str(tmp_path / 'sheet_hist.png')) is not None


def test_sampler_state_file_is_used(dataset, tmp_path):
    meta = read_meta(str(dataset))
    state = meta['sampler_state']
    theta = state['variables']['hands']['theta']
    state['variables']['hands']['theta'] = [1e6, 1e-6, 1e-6, 1e-6][:len(theta)]
    p = tmp_path / 'state.json'
    p.write_text(json.dumps(state))
    out = tmp_path / 'fb'
    assert cli.main(['generate', '--config', CONFIG, '--count', '3', '--out', str(out),
                     '--seed', '3', '--shard-size', '3', '--sampler-state', str(p)]) == 0
    for s in iter_samples(str(out), decode_images=False):
        assert s['labels']['variables']['hands']['value'] == 0
    assert read_meta(str(out))['sampler_state']['variables']['hands']['theta'][0] == 1e6
