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
"""The paired feedback experiment (tools/feedback_experiment.py), without training.

The steps-to-reach rule, the per-pair table and its summary are checked
against hand-computed curves; the trainer command of one arm is checked for
the options that make the two arms of a pair comparable (same seed, budget,
learning rate, warm start and validation set) and for resuming instead of
warm-starting again once a run has a checkpoint.
"""

import json
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tools'))

import feedback_experiment as fx  # noqa: E402


def _curve(steps, errors):
    return np.array(steps, int), np.array(errors, float)


def test_steps_to_reach_is_the_first_step_at_or_below_the_target():
    steps, errors = [30, 60, 90, 120], [1.2, 0.9, 0.8, 0.85]
    assert fx.steps_to_reach(steps, errors, 0.9) == 60   # equal counts as reached
    assert fx.steps_to_reach(steps, errors, 0.85) == 90  # not the last one
    assert fx.steps_to_reach(steps, errors, 0.5) is None


def test_pair_table_and_summary_against_hand_computed_curves():
    curves = {
        # pair 0: uniform ends at 0.8 (step 120); feedback is there at step 60 -> ratio 0.5
        (0, 'uniform'): _curve([30, 60, 90, 120], [1.0, 0.95, 0.9, 0.8]),
        (0, 'feedback'): _curve([30, 60, 90, 120], [0.9, 0.8, 0.7, 0.75]),
        # pair 1: uniform ends at 0.6; feedback reaches it at step 90 -> ratio 0.75
        (1, 'uniform'): _curve([30, 60, 90, 120], [1.0, 0.8, 0.7, 0.6]),
        (1, 'feedback'): _curve([30, 60, 90, 120], [1.0, 0.7, 0.6, 0.65]),
        # pair 2: feedback never gets to uniform's 0.5
        (2, 'uniform'): _curve([30, 60, 90, 120], [0.9, 0.7, 0.6, 0.5]),
        (2, 'feedback'): _curve([30, 60, 90, 120], [0.9, 0.8, 0.7, 0.6]),
        # pair 3: the feedback run has not started: left out of the table
        (3, 'uniform'): _curve([30], [1.0]),
        (3, 'feedback'): _curve([], []),
    }
    table = fx.pair_table(curves, 4)
    assert [r['pair'] for r in table] == [0, 1, 2]
    assert [r['feedback_steps'] for r in table] == [60, 90, None]
    assert table[0]['ratio'] == pytest.approx(0.5)
    assert table[1]['ratio'] == pytest.approx(0.75)
    assert table[2]['ratio'] is None
    assert [r['uniform_final'] for r in table] == pytest.approx([0.8, 0.6, 0.5])
    assert [r['feedback_final'] for r in table] == pytest.approx([0.75, 0.65, 0.6])
    # last 3 evaluations; first evaluation's difference (before any feedback)
    assert table[0]['uniform_tail'] == pytest.approx((0.95 + 0.9 + 0.8) / 3)
    assert table[0]['feedback_tail'] == pytest.approx((0.8 + 0.7 + 0.75) / 3)
    assert [r['first_diff'] for r in table] == pytest.approx([-0.1, 0.0, 0.0])
    # uniform runs reach their own final error at their last step here ...
    assert [r['uniform_self_ratio'] for r in table] == pytest.approx([1.0, 1.0, 1.0])
    # ... but a noisy one dips below it before the end
    noisy = {(0, 'uniform'): _curve([30, 60, 90, 120], [1.0, 0.7, 0.9, 0.8]),
             (0, 'feedback'): _curve([30, 60, 90, 120], [1.0, 0.9, 0.9, 0.9])}
    assert fx.pair_table(noisy, 1)[0]['uniform_self_ratio'] == pytest.approx(0.5)

    s = fx.summarize(table)
    assert (s['pairs'], s['reached']) == (3, 2)
    assert s['ratio_mean'] == pytest.approx(0.625)
    assert s['ratio_std'] == pytest.approx(np.std([0.5, 0.75], ddof=1))
    assert s['uniform_final_mean'] == pytest.approx(np.mean([0.8, 0.6, 0.5]))
    assert s['feedback_final_std'] == pytest.approx(np.std([0.75, 0.65, 0.6], ddof=1))
    assert s['first_diff_mean'] == pytest.approx(-0.1 / 3)
    assert s['uniform_tail_mean'] == pytest.approx(np.mean([2.65 / 3, 2.1 / 3, 1.8 / 3]))


def _commands(tmp_path, monkeypatch, extra=()):
    seen = []
    monkeypatch.setattr(fx.subprocess, 'run', lambda cmd, check: seen.append(cmd))
    args = fx.parse_args(['--out', str(tmp_path), '--steps', '40', '--lr', '5e-4',
                          '--init', 'checkerboard_lite', '--seed', '7', *extra])
    return args, seen


def _option(command, name):
    return command[command.index(name) + 1]


def test_both_arms_of_a_pair_share_seed_budget_lr_warm_start_and_validation_set(
        tmp_path, monkeypatch):
    args, seen = _commands(tmp_path, monkeypatch)
    fx.run_arm(args, 2, 'uniform', '')
    fx.run_arm(args, 2, 'feedback', '/v.npz')
    uniform, feedback = seen
    for command in seen:
        assert _option(command, '--seed') == '9'           # seed + pair index
        assert _option(command, '--steps') == '40'
        assert float(_option(command, '--lr')) == pytest.approx(5e-4)
        assert _option(command, '--init') == 'checkerboard_lite'
        assert '--resume' not in command
    assert '--feedback-every' not in uniform
    assert _option(feedback, '--feedback-every') == '100'
    assert _option(feedback, '--val-set') == '/v.npz'
    assert _option(uniform, '--out') == os.path.join(str(tmp_path), 'pair2', 'uniform')


def test_an_interrupted_run_resumes_instead_of_starting_from_the_weights_again(
        tmp_path, monkeypatch):
    args, seen = _commands(tmp_path, monkeypatch)
    run = tmp_path / 'pair0' / 'uniform'
    run.mkdir(parents=True)
    (run / 'last.pt').write_bytes(b'')
    (run / 'metrics.csv').write_text('step,val_mean_pct_diag\n20,1.5\n')
    fx.run_arm(args, 0, 'uniform', '')
    assert '--resume' in seen[0] and '--init' not in seen[0]
    # a finished run (its curve reaches --steps) is not started at all
    (run / 'metrics.csv').write_text('step,val_mean_pct_diag\n20,1.5\n40,1.2\n')
    fx.run_arm(args, 0, 'uniform', '')
    assert len(seen) == 1


def test_prior_table_reports_the_moved_variables_and_the_validation_coverage(tmp_path):
    from keypoint_perception.training.stream_records import (log_priors, prior_movement,
                                                             read_priors)

    def state(fx_alpha, k1_alpha):
        return {'/sim0': {'num_updates': 0, 'variables': {
            'fx': {'theta': fx_alpha}, 'k1': {'theta': k1_alpha}}}}

    movements = []
    for k, final_fx in enumerate(([1, 1, 1, 5], [1, 1, 1, 3])):
        path = str(tmp_path / f'priors{k}.csv')
        log_priors(path, 0, state([1, 1, 1, 1], [2, 2]))
        log_priors(path, 30, state(final_fx, [2, 2]))
        movements.append(prior_movement(read_priors(path)))
    # fx: (1,1,1,5)/8 from 1/4 each: TV = 0.5 * (3 * 0.125 + 0.375) = 0.375;
    #     (1,1,1,3)/6: TV = 0.5 * (3 * (0.25 - 1/6) + 0.25) = 0.25; k1 unchanged
    assert movements[0]['fx']['tv'] == pytest.approx(0.375)
    assert movements[1]['fx']['tv'] == pytest.approx(0.25)
    assert movements[0]['k1']['tv'] == 0

    val = tmp_path / 'val.npz'
    meta = {'bins': [{'fx': 3, 'k1': 0}, {'fx': 0, 'k1': 0}, {'fx': 3, 'k1': 1}],
            'num_bins': {'fx': 4, 'k1': 2}}
    np.savez(val, bins=np.array(json.dumps(meta)))
    counts = fx.validation_bin_counts(str(val))
    assert counts['fx'].tolist() == [1, 0, 0, 2] and counts['k1'].tolist() == [2, 1]

    rows = fx.prior_table(movements, counts, top=1)
    assert len(rows) == 1
    row = rows[0]
    assert row['variable'] == 'fx' and row['bin'] == 3
    assert row['tv_mean'] == pytest.approx(0.3125)
    assert row['tv_std'] == pytest.approx(np.std([0.375, 0.25], ddof=1))
    assert row['p_first'] == pytest.approx(0.25)
    assert row['p_last'] == pytest.approx((5 / 8 + 3 / 6) / 2)
    assert row['val_counts'] == [1, 0, 0, 2]
    section = fx.doc_section([], fx.summarize([]), 'cmd', 'fig.png', rows)
    assert '| `fx` | 0.312 +- 0.088 | 3 | 0.25 -> 0.56 | 1 / 0 / 0 / 2 |' in section
    assert section.startswith('<!-- BEGIN feedback_experiment -->')
    named = fx.doc_section([], fx.summarize([]), 'cmd', 'fig.png', rows, 'feedback_kuka')
    assert named.startswith('<!-- BEGIN feedback_kuka -->')
    assert named.endswith('<!-- END feedback_kuka -->')
