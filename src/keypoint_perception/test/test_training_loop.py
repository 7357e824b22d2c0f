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
"""The trainer's validation (training.loop.evaluate) against a hand-made network output."""

from keypoint_perception.core.heatmaps import gaussian_targets, image_to_heatmap
from keypoint_perception.core.model import BeliefMapNet, make_config
from keypoint_perception.training.data import ViewSet
from keypoint_perception.training.loop import evaluate
import numpy as np
import pytest


def test_missed_keypoints_count_as_wrong_and_their_views_are_kept():
    """4 views of 3 keypoints, the network exact except where it finds nothing.

    View 0: all found. View 1: keypoint 0 missed. View 2: keypoint 2 outside
    the image (not labelled), the others found. View 3: everything missed.
    Before the fix views 1 and 3 were dropped and the score was perfect.
    """
    config = make_config('lite', 3)
    model = BeliefMapNet(config)
    w, h = config.input_width, config.input_height
    hw = (w // config.stride, h // config.stride)
    rng = np.random.default_rng(0)
    uv = rng.uniform(30, 150, (4, 3, 2)).astype(np.float32)
    visibility = np.full((4, 3), 2, np.uint8)
    visibility[2, 2] = 0
    found = np.ones((4, 3), bool)
    found[1, 0] = False
    found[3] = False
    views = ViewSet(np.zeros((4, h, w, 3), np.uint8), uv, visibility,
                    np.full((4, 2), 2.5, np.float32), np.full(4, 800.0, np.float32))
    maps = np.stack([gaussian_targets(image_to_heatmap(uv[n], (w, h), hw), found[n],
                                      hw[::-1], 1.0)
                     for n in range(4)]).astype(np.float32)
    calls = []

    def forward(batch):
        calls.append(len(batch))
        return maps[:len(batch)]
    out = evaluate(model, views, (), batch_size=8, forward=forward)
    assert calls == [4]
    labelled = visibility > 0
    assert out['views'] == 4
    assert out['detected'] == pytest.approx((found & labelled).sum() / labelled.sum())  # 7/11
    assert out['pck@1'] == pytest.approx(7 / 11)
    assert out['mean_px'] < 0.5  # the found ones are exact (sub-cell refinement)
    assert model.training  # mode restored


def test_the_schedule_runs_any_length_and_refuses_a_resume_with_other_steps():
    import torch
    from keypoint_perception.cli import InputError
    from keypoint_perception.training.loop import one_cycle_schedule
    for steps in (1, 2, 20, 40, 100):  # 20 divided by zero with a 5% warm-up
        opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=1e-3)
        schedule = one_cycle_schedule(opt, 1e-3, steps)
        lrs = []
        for _ in range(steps):
            opt.step()
            schedule.step()
            lrs.append(opt.param_groups[0]['lr'])
        assert max(lrs) <= 1e-3 * (1 + 1e-9) and lrs[-1] < 1e-3 / 100, (steps, lrs)
    checkpoint = {'scheduler': schedule.state_dict(), 'optimizer': opt.state_dict()}
    opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=1e-3)
    resumed = one_cycle_schedule(opt, 1e-3, 100, checkpoint)
    assert resumed.last_epoch == 100
    with pytest.raises(InputError, match='--steps 100'):
        one_cycle_schedule(opt, 1e-3, 200, checkpoint)
    with pytest.raises(InputError, match='--lr 0.001'):
        one_cycle_schedule(opt, 5e-4, 100, checkpoint)


def test_the_stream_validation_set_round_trips_and_is_written_whole(tmp_path, monkeypatch):
    from keypoint_perception.training import stream_records
    rng = np.random.default_rng(2)
    views = ViewSet(rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8),
                    rng.uniform(0, 8, (2, 3, 2)).astype(np.float32),
                    np.full((2, 3), 2, np.uint8), np.ones((2, 2), np.float32),
                    np.full(2, 11.3, np.float32))
    path = str(tmp_path / 'stream_validation.npz')
    stream_records.save_validation(path, views, [{'light': 1}, {'light': 0}], {'light': 4})
    back, bins, num_bins = stream_records.load_validation(path)
    np.testing.assert_array_equal(back.images, views.images)
    assert bins == [{'light': 1}, {'light': 0}] and num_bins == {'light': 4}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(stream_records.np, 'savez', killed)
    with pytest.raises(KeyboardInterrupt):
        stream_records.save_validation(path, views, [], {})
    assert stream_records.load_validation(path)[2] == {'light': 4}  # the old set, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ['stream_validation.npz']
