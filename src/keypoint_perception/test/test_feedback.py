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
"""Sampler feedback: sample scores, per-bin errors, hardest samples."""

import numpy as np
import pytest

from keypoint_perception.training.feedback import (bin_error_table, bin_labels, hardest,
                                                   sample_score, variable_spread)


def test_sample_score_caps_errors_counts_misses_and_skips_unlabelled():
    diag = 800.0
    left = np.array([8.0, 16.0, np.nan, 400.0])   # 1%, 2%, missed, 50%
    right = np.array([0.0, 8.0, 8.0, 8.0])
    vis_left = np.array([2, 2, 1, 2])
    vis_right = np.array([2, 0, 2, 2])             # keypoint 1 outside the right image
    s = sample_score([left, right], [vis_left, vis_right], [diag, diag], miss_pct=5.0)
    expected = np.mean([1.0, 2.0, 5.0, 5.0, 0.0, 1.0, 1.0])
    assert s == pytest.approx(expected)
    assert np.isnan(sample_score([left], [np.zeros(4)], [diag]))


def test_bin_error_table_means_and_counts():
    bins = [{'a': 0, 'b': 1}, {'a': 0, 'b': 0}, {'a': 2, 'b': 1}, {'a': 2}]
    scores = np.array([1.0, 3.0, 10.0, np.nan])
    table = bin_error_table(bins, scores, {'a': 3, 'b': 2})
    mean, count = table['a']
    np.testing.assert_array_equal(count, [2, 0, 1])   # the NaN score is not counted
    assert mean[0] == pytest.approx(2.0) and np.isnan(mean[1]) and mean[2] == pytest.approx(10.0)
    mean, count = table['b']
    np.testing.assert_array_equal(count, [1, 2])
    np.testing.assert_allclose(mean, [3.0, 5.5])


def test_hardest_takes_the_top_fraction_of_finite_scores():
    scores = np.array([0.5, np.nan, 3.0, 1.0, 2.0])
    np.testing.assert_array_equal(hardest(scores, 0.5), [2, 4])   # ceil(0.5 * 4) = 2
    np.testing.assert_array_equal(np.sort(hardest(scores, 1.0)), [0, 2, 3, 4])
    with pytest.raises(ValueError, match='fraction'):
        hardest(scores, 0.0)


def test_variable_spread_ranks_the_variable_that_matters_first():
    rng = np.random.default_rng(0)
    n = 400
    a = rng.integers(0, 2, n)          # matters: bin 1 doubles the error
    b = rng.integers(0, 3, n)          # does not
    scores = 1.0 + a + 0.05 * rng.standard_normal(n)
    table = bin_error_table([{'a': int(x), 'b': int(y)} for x, y in zip(a, b)], scores,
                            {'a': 2, 'b': 3})
    spread = variable_spread(table)
    assert spread[0][0] == 'a' and spread[0][1] == pytest.approx(2.0, rel=0.05)
    assert spread[1][1] < 1.1


def test_bin_labels_are_centres_with_an_exact_zero_or_indices():
    # k1 of the robot configs: -0.35 .. 0.05 in 4 bins; the last centre is 0 up to rounding
    assert bin_labels({'lo': -0.35, 'hi': 0.05}, 4) == ['-0.3', '-0.2', '-0.1', '0']
    assert bin_labels({'lo': 0.0, 'hi': 90.0}, 3) == ['15', '45', '75']
    assert bin_labels({'lo': 0.0, 'hi': 4.0, 'categorical': True}, 4) == ['0', '1', '2', '3']
    assert bin_labels({}, 2) == ['0.25', '0.75']
