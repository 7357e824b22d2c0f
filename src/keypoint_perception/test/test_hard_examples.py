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
"""Loss-prioritized view sampling (training/hard_examples.py)."""

import numpy as np
import pytest

from keypoint_perception.training.hard_examples import LossPrioritizedSampler


def test_probabilities_mix_uniform_and_loss_proportional():
    s = LossPrioritizedSampler(4, prioritized_share=0.5, rng=np.random.default_rng(0))
    np.testing.assert_allclose(s.probabilities(), 0.25)  # nothing seen: uniform
    s.update([0, 1, 2, 3], [1.0, 1.0, 1.0, 5.0])
    p = s.probabilities()
    np.testing.assert_allclose(p, 0.5 / 4 + 0.5 * np.array([1, 1, 1, 5]) / 8)
    assert p.sum() == pytest.approx(1.0)
    # the hard view is drawn about as often as its probability says
    draws = s.sample(20000)
    assert np.mean(draws == 3) == pytest.approx(p[3], abs=0.015)


def test_unseen_views_get_the_largest_seen_loss():
    s = LossPrioritizedSampler(3, prioritized_share=1.0)
    s.update([0, 1], [0.2, 0.6])
    np.testing.assert_allclose(s.probabilities(), np.array([0.2, 0.6, 0.6]) / 1.4)


def test_zero_share_or_exponent_is_uniform():
    for share, exponent in ((0.0, 1.0), (1.0, 0.0)):
        s = LossPrioritizedSampler(5, share, exponent, rng=np.random.default_rng(1))
        s.update([0, 1, 2, 3, 4], [9.0, 0.1, 0.1, 0.1, 0.1])
        np.testing.assert_allclose(s.probabilities(), 0.2)
    draws = LossPrioritizedSampler(5, 0.0, rng=np.random.default_rng(1)).sample(8)
    np.testing.assert_array_equal(draws, np.random.default_rng(1).integers(0, 5, 8))


def test_resize_state_and_bad_input():
    s = LossPrioritizedSampler(3, 0.5)
    s.update([2], [0.3])
    t = LossPrioritizedSampler(3, 0.5)
    t.load_state_dict(s.state_dict())
    np.testing.assert_allclose(t.probabilities(), s.probabilities())
    t.load_state_dict(LossPrioritizedSampler(7).state_dict())  # other view count: ignored
    np.testing.assert_allclose(t.probabilities(), s.probabilities())
    s.resize(6)
    assert len(s) == 6 and np.allclose(s.probabilities(), 1 / 6)
    with pytest.raises(ValueError):
        s.update([0, 1], [0.1])
    with pytest.raises(ValueError):
        s.update([0], [np.nan])
    with pytest.raises(ValueError):
        s.update([0], [-1.0])
    with pytest.raises(ValueError):
        LossPrioritizedSampler(0)
    with pytest.raises(ValueError):
        LossPrioritizedSampler(3, prioritized_share=1.5)
    with pytest.raises(ValueError):
        LossPrioritizedSampler(3, exponent=-1.0)
