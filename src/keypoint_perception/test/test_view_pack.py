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
"""View packs and the batch prefetcher of ``keypoints-train``."""

import numpy as np
import pytest

from keypoint_perception.core.model import make_config
from keypoint_perception.training.data import ViewSet
from keypoint_perception.training.train import BatchPrefetcher, resolve_device
from keypoint_perception.training.shard_cache import ShardCache
from keypoint_perception.training.view_pack import load_view_pack, save_view_pack


def _views(n=6, size=(64, 48), seed=0):
    rng = np.random.default_rng(seed)
    w, h = size
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    images[:, h // 4:h // 2, w // 4:w // 2] = 255  # some structure besides noise
    uv = rng.uniform(5, min(w, h) - 5, (n, 4, 2)).astype(np.float32)
    vis = rng.integers(0, 3, (n, 4)).astype(np.uint8)
    scale = np.full((n, 2), 2.5, np.float32)
    diag = np.full(n, 800.0, np.float32)
    return ViewSet(images, uv, vis, scale, diag)


def test_lossless_pack_round_trips_views_and_split(tmp_path):
    views = _views()
    val = np.array([0, 1, 0, 0, 1, 0], bool)
    path = str(tmp_path / 'sub' / 'p.npz')
    assert save_view_pack(path, views, val, quality=101, object_class='checkerboard') > 0
    assert not list((tmp_path / 'sub').glob('*.partial*'))  # written then renamed
    train, held = load_view_pack(path)
    assert len(train) == 4 and len(held) == 2
    np.testing.assert_array_equal(held.images, views.images[val])
    np.testing.assert_array_equal(train.images, views.images[~val])
    np.testing.assert_array_equal(train.uv, views.uv[~val])
    np.testing.assert_array_equal(held.visibility, views.visibility[val])
    np.testing.assert_array_equal(train.scale, views.scale[~val])


def test_lossy_pack_is_close_and_much_smaller(tmp_path):
    import cv2
    views = _views(n=4, size=(256, 192))
    yy, xx = np.mgrid[:192, :256]
    board = np.where((xx // 16 + yy // 16) % 2, 230.0, 25.0)  # a rendered-like image
    noisy = board[None, :, :, None] + np.random.default_rng(1).normal(0, 4, views.images.shape)
    views.images[:] = np.clip([cv2.GaussianBlur(im, (0, 0), 1.0) for im in noisy], 0, 255)
    lossless = save_view_pack(str(tmp_path / 'a.npz'), views, np.zeros(4, bool), 101)
    lossy = save_view_pack(str(tmp_path / 'b.npz'), views, np.zeros(4, bool), 85)
    assert lossy < lossless
    train, _ = load_view_pack(str(tmp_path / 'b.npz'))
    err = np.abs(train.images.astype(int) - views.images.astype(int))
    assert err.mean() < 3.0


def test_pack_errors_name_the_problem(tmp_path):
    views = _views(n=3)
    with pytest.raises(ValueError, match='validation flags'):
        save_view_pack(str(tmp_path / 'x.npz'), views, np.zeros(2, bool))
    np.savez(tmp_path / 'other.npz', a=np.zeros(3))
    with pytest.raises(ValueError, match='not a keypoint_perception/view-pack'):
        load_view_pack(str(tmp_path / 'other.npz'))
    save_view_pack(str(tmp_path / 'v.npz'), views, np.array([0, 0, 1], bool), 101)
    cache = ShardCache([str(tmp_path / 'v.npz')], (256, 192), lambda p: False)
    with pytest.raises(ValueError, match='64x48 views, the model takes 256x192'):
        cache.refresh()
    cache = ShardCache([str(tmp_path / 'v.npz')], (64, 48), lambda p: False)
    assert cache.refresh() == 1 and cache.refresh() == 0
    train, val = cache.split()
    assert len(train) == 2 and len(val) == 1


def test_worker_processes_make_the_same_batches_as_the_trainer():
    views = _views(n=8, size=(64, 48))
    config = make_config('lite', 4, input_width=64, input_height=48)
    jobs = [(np.array([0, 3, 5]), (7, 0)), (np.array([1, 1, 2]), (7, 1)),
            (np.array([6, 7, 4]), (7, 2))]
    out = {}
    for workers in (0, 2):
        pre = BatchPrefetcher(views, [[2, 3, 0, 1]], config, 1.5, 0.5, workers)
        try:
            for idx, seed in jobs:
                pre.submit(idx, seed)
            assert len(pre) == 3 and pre.full() == (workers == 0)
            out[workers] = [pre.next() for _ in jobs]
        finally:
            pre.close()
    for (i0, im0, t0), (i2, im2, t2), (idx, _) in zip(out[0], out[2], jobs):
        np.testing.assert_array_equal(i0, idx)
        np.testing.assert_array_equal(im0, im2)
        np.testing.assert_array_equal(t0, t2)
        assert im0.shape == (3, 48, 64, 3) and im0.dtype == np.uint8
        h, w = config.heatmap_size
        assert t0.shape == (3, 2, 4, h, w)
        np.testing.assert_array_equal(t0[:, 1], t0[:, 0][:, [2, 3, 0, 1]])  # symmetric labels
    assert not np.array_equal(out[0][0][1], out[0][1][1])  # other seed, other augmentation


def test_resolve_device():
    import torch
    assert resolve_device('cpu').type == 'cpu'
    if torch.cuda.is_available():
        assert resolve_device('auto').type == 'cuda'
    else:
        assert resolve_device('auto').type == 'cpu'
        with pytest.raises(ValueError, match='no CUDA device'):
            resolve_device('cuda')
