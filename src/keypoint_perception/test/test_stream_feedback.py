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
"""Streaming feedback without DDS: worst-sample selection, bin counts, prior restoring."""

import numpy as np
import pytest

from keypoint_perception.core.scene_sampler import BinnedVariable, SceneSampler
from keypoint_perception.training import train
from keypoint_perception.training.stream_records import (log_priors, ThroughputMeter,
                                                         truncate_rows)
from keypoint_perception.training.stream_sources import (feedback_counts, restoring_counts,
                                                         sampler_from_state)


def test_worst_quantile_and_bin_counts_match_a_hand_computed_example():
    # six validation samples; tilt has 3 bins, hands 4 (categorical)
    bins = [{'tilt': 0, 'hands': 3},
            {'tilt': 2, 'hands': 0},
            {'tilt': 2, 'hands': 3},
            {'tilt': 1, 'hands': 1},
            {'tilt': 2, 'hands': 3},
            {'tilt': 0, 'hands': 2}]
    losses = [0.10, 0.90, 0.70, float('nan'), 0.80, 0.20]
    # 5 finite losses, quantile 0.5 -> ceil(2.5) = 3 worst: samples 1 (0.9), 4 (0.8), 2 (0.7)
    worst, counts = feedback_counts(bins, losses, {'tilt': 3, 'hands': 4}, 0.5)
    assert worst.tolist() == [1, 4, 2]
    np.testing.assert_array_equal(counts['tilt'], [0, 0, 3])
    np.testing.assert_array_equal(counts['hands'], [1, 0, 0, 2])
    # the NaN sample is never chosen, even when every sample is asked for
    worst, counts = feedback_counts(bins, losses, {'tilt': 3, 'hands': 4}, 1.0)
    assert sorted(worst.tolist()) == [0, 1, 2, 4, 5]
    np.testing.assert_array_equal(counts['tilt'], [2, 0, 3])
    with pytest.raises(ValueError):
        feedback_counts(bins, losses, {'tilt': 3}, 0.0)


def test_counts_applied_by_the_conjugate_update_shift_the_bin_probabilities():
    state = SceneSampler([BinnedVariable('tilt', -60, 60, 3)]).state_dict()
    sampler = sampler_from_state(state)
    _, counts = feedback_counts([{'tilt': 2}, {'tilt': 2}, {'tilt': 0}], [3.0, 2.0, 1.0],
                                {'tilt': 3}, 2 / 3)
    sampler.update(counts)
    # alpha = (1, 1, 1) + (0, 0, 2) -> probabilities (1/5, 1/5, 3/5)
    np.testing.assert_allclose(sampler['tilt'].bin_probabilities(), [0.2, 0.2, 0.6])


def test_restoring_counts_bring_a_node_back_to_the_checkpoint_or_refuse():
    current = {'variables': {'tilt': {'theta': [1.0, 1.0, 1.0]}, 'roll': {'theta': [2.0, 1.0]}}}
    target = {'variables': {'tilt': {'theta': [1.0, 4.0, 2.0]}, 'roll': {'theta': [2.0, 1.0]}}}
    counts = restoring_counts(current, target)
    assert list(counts) == ['tilt']  # roll is already there
    np.testing.assert_array_equal(counts['tilt'], [0.0, 3.0, 1.0])
    with pytest.raises(ValueError, match='more feedback'):
        restoring_counts(target, current)
    with pytest.raises(ValueError, match='bins'):
        restoring_counts({'variables': {'tilt': {'theta': [1.0]}}}, target)


def test_priors_log_has_one_row_per_source_and_variable(tmp_path):
    path = str(tmp_path / 'priors.csv')
    state = {'num_updates': 2, 'variables': {'tilt': {'theta': [1.0, 3.5]}}}
    log_priors(path, 10, {'/b': state, '/a': state})
    log_priors(path, 20, {'/a': state})
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines == ['step,namespace,num_updates,variable,alpha', '10,/a,2,tilt,1 3.5',
                     '10,/b,2,tilt,1 3.5', '20,/a,2,tilt,1 3.5']


@pytest.mark.parametrize('args, message', [
    ([], '--data: required'),
    (['--stream'], '--stream: no source'),
    (['--stream', '--sim-workers', '1', '--feedback-to', '/elsewhere'], 'are not sources'),
    (['--stream', '--stream-namespaces', '/kp_sim0', '--sim-workers', '1'], 'distinct'),
])
def test_stream_options_are_checked_before_anything_starts(tmp_path, capsys, args, message):
    status = train.main(['--out', str(tmp_path / 'run'), *args])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith('keypoints-train: error: ') and message in err, err
    assert '\n' not in err
    assert not (tmp_path / 'run').exists()


def test_a_resumed_run_drops_the_rows_written_after_its_checkpoint(tmp_path):
    path = str(tmp_path / 'priors.csv')
    state = {'num_updates': 0, 'variables': {'tilt': {'theta': [1.0, 1.0]}}}
    for step in (0, 4, 8):
        log_priors(path, step, {'/a': state})
    assert truncate_rows(path, 4) == 1
    with open(path) as f:
        assert [line.split(',')[0] for line in f.read().splitlines()] == ['step', '0', '4']
    assert truncate_rows(str(tmp_path / 'missing.csv'), 4) == 0


def test_the_trainer_says_when_the_simulators_cannot_keep_up():
    now = [0.0]
    meter = ThroughputMeter(window=10, starved_share=0.5, warn_every_s=30.0,
                            clock=lambda: now[0])
    for _ in range(10):  # a step every 2 s, 0.5 s of it waiting for samples: fed
        now[0] += 2.0
        meter.step(0.5)
    assert meter.steps_per_s() == pytest.approx(0.5)
    assert meter.wait_share() == pytest.approx(0.25)
    assert meter.starved(4.0, 8) is None
    for _ in range(10):  # now 1.5 s of every 2 s waiting
        now[0] += 2.0
        meter.step(1.5)
    warning = meter.starved(4.0, 8)
    # 0.5 steps/s at 75% waiting: unstarved it would make 2 steps/s x 8 samples
    assert warning.startswith('simulators cannot keep up: the trainer waited 75%')
    assert 'it could use 16.0/s' in warning
    now[0] += 10.0
    assert meter.starved(4.0, 8) is None  # not again within warn_every_s
    now[0] += 25.0
    assert meter.starved(4.0, 8) is not None


def test_losses_on_perturbed_inputs_are_seeded_and_differ_from_the_plain_ones():
    import torch
    from keypoint_perception.core.model import BeliefMapNet, make_config
    from keypoint_perception.core.objects import load_object_class
    from keypoint_perception.training.data import ViewSet
    from keypoint_perception.training.stream_train import stereo_losses
    torch.manual_seed(0)
    oc = load_object_class('checkerboard')
    config = make_config('lite', oc.num_keypoints)
    model = BeliefMapNet(config)
    rng = np.random.default_rng(1)
    n, j = 4, oc.num_keypoints  # two stereo samples
    views = ViewSet(rng.integers(0, 256, (n, config.input_height, config.input_width, 3),
                                 dtype=np.uint8),
                    rng.uniform(40, 150, (n, j, 2)).astype(np.float32),
                    np.full((n, j), 2, np.uint8), np.ones((n, 2), np.float32),
                    np.full(n, 320.0, np.float32))
    before = views.images.copy()
    plain = stereo_losses(model, views, oc.symmetries, 1.5, 'bce')
    assert plain.shape == (2,) and np.all(np.isfinite(plain))
    np.testing.assert_array_equal(plain, stereo_losses(model, views, oc.symmetries, 1.5, 'bce'))
    first = stereo_losses(model, views, oc.symmetries, 1.5, 'bce', perturb_seed=(0, 1))
    again = stereo_losses(model, views, oc.symmetries, 1.5, 'bce', perturb_seed=(0, 1))
    other = stereo_losses(model, views, oc.symmetries, 1.5, 'bce', perturb_seed=(0, 2))
    np.testing.assert_array_equal(first, again)
    # (an untrained network: the losses differ in the 6th digit only)
    assert not np.allclose(first, plain, rtol=0, atol=1e-9)
    assert not np.allclose(first, other, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(views.images, before)  # the validation set is not changed
    assert model.training


def test_trainer_started_simulators_never_render_a_datasets_samples(tmp_path):
    """Seed s renders sample i as ``sim-datagen generate --seed s``: stream seeds are apart."""
    from keypoint_perception.training.stream_sources import SimulatorPool, STREAM_SEED_BASE
    pool = SimulatorPool(3, str(tmp_path), seed=1)
    assert list(pool.seeds.values()) == [STREAM_SEED_BASE + 1000 + k for k in range(3)]
    assert min(pool.seeds.values()) > 1_000_000 and max(pool.seeds.values()) < 2 ** 31 - 1
    assert pool.processes == {}  # nothing started by the constructor
    with pytest.raises(ValueError, match='seed'):
        SimulatorPool(1, str(tmp_path), seed=1_000_000)
