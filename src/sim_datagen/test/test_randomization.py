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
"""Dirichlet-binned sampler (Heindl et al. 2020): sampling, posterior update, state."""

from keypoint_perception.core.scene_sampler import BinnedVariable, SceneSampler
import numpy as np
import pytest


def test_values_fall_in_their_bin():
    v = BinnedVariable('x', -2.0, 6.0, 4)
    rng = np.random.default_rng(0)
    edges = v.edges
    for _ in range(500):
        x, k = v.sample(rng)
        assert edges[k] <= x <= edges[k + 1]
        assert v.bin_of(x) == k


def test_categorical_values_are_bin_indices():
    v = BinnedVariable.from_config('bg', {'choices': ['a', 'b', 'c']})
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        x, k = v.sample(rng)
        assert isinstance(x, int) and x == k
        seen.add(x)
    assert seen == {0, 1, 2}


def test_posterior_update_is_closed_form():
    v = BinnedVariable('x', 0, 1, 3, alpha0=[1.0, 2.0, 0.5])
    counts = np.array([4, 0, 7])
    v.update(counts)
    np.testing.assert_allclose(v.theta, [5.0, 2.0, 7.5])
    np.testing.assert_allclose(v.bin_probabilities(), np.array([5.0, 2.0, 7.5]) / 14.5)
    with pytest.raises(ValueError):
        v.update([1, 2])
    with pytest.raises(ValueError):
        v.update([-1, 0, 0])


def test_update_shifts_sampling_frequencies():
    s = SceneSampler([BinnedVariable('x', 0, 1, 4), BinnedVariable('y', 0, 1, 2)],
                     np.random.default_rng(2))
    n = 4000

    def freq():
        ks = np.array([s.sample()['x'][1] for _ in range(n)])
        return np.bincount(ks, minlength=4) / n

    f0 = freq()
    np.testing.assert_allclose(f0, 0.25, atol=0.03)
    # feedback: the hard samples were all in bin 3
    counts = s.counts_from_bins([{'x': 3, 'y': 0}] * 36)
    np.testing.assert_array_equal(counts['x'], [0, 0, 0, 36])
    s.update(counts)
    np.testing.assert_allclose(s['x'].theta, [1, 1, 1, 37])
    f1 = freq()
    expected = np.array([1, 1, 1, 37]) / 40  # marginal P(k) = theta_k / sum(theta)
    np.testing.assert_allclose(f1, expected, atol=0.02)
    assert f1[3] > 0.85 > f0[3]


def test_state_dict_roundtrip():
    a = SceneSampler([BinnedVariable('x', 0, 1, 3)], np.random.default_rng(0))
    a.update({'x': [1, 2, 3]})
    b = SceneSampler([BinnedVariable('x', 0, 1, 3)], np.random.default_rng(0))
    b.load_state_dict(a.state_dict())
    np.testing.assert_allclose(b['x'].theta, [2, 3, 4])
    c = SceneSampler([BinnedVariable('x', 0, 1, 5)])
    with pytest.raises(ValueError):
        c.load_state_dict(a.state_dict())


@pytest.mark.parametrize('state, words', [
    ({'variables': [{'name': 'x', 'alpha': [1, 1, 1]}]}, 'variables'),  # a message's layout
    ({'theta': [1, 1, 1]}, 'variables'),
    ({'variables': {'x': {'theta': [1, 0, 1]}}}, 'positive'),
    ({'variables': {'x': {'theta': [1, float('nan'), 1]}}}, 'finite'),
    ({'variables': {'x': {'theta': [1, 1, 1], 'bins': 3}, 'y': {'theta': [1, -1]}}},
     'positive')])
def test_a_refused_state_changes_nothing(state, words):
    s = SceneSampler([BinnedVariable('x', 0, 1, 3), BinnedVariable('y', 0, 1, 2)])
    with pytest.raises(ValueError, match=words):
        s.load_state_dict(state)
    np.testing.assert_allclose(s['x'].theta, [1, 1, 1])  # x was valid, but nothing applies


def test_sampling_is_reproducible_with_explicit_rng():
    s = SceneSampler([BinnedVariable('x', 0, 1, 3), BinnedVariable('c', 0, 2, 2)])
    a = s.sample(np.random.default_rng(5))
    b = s.sample(np.random.default_rng(5))
    assert a == b


def test_config_variables_all_build(config):
    s = SceneSampler.from_config(config['variables'])
    d = s.sample(np.random.default_rng(0))
    assert set(d) == set(config['variables'])
    for name, (val, k) in d.items():
        assert 0 <= k < s[name].bins
