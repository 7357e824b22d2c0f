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
"""``make demo`` on the whole real sequence reproduces the stored output number for number.

``data/demo_keypoints_3d.jsonl`` is the ``output/demo/keypoints_3d.jsonl`` that
``keypoints-demo`` wrote with the shipped model before the pipeline was split
into stages (issue "One house").  A refactoring must not change any result:
every number (pixels, metres, confidences, reprojection errors) must agree to
1e-6.  Only ``stamp`` differs between runs (the replay stamps pairs with the
wall clock), so it is checked for order, not value.  Update the stored file
only together with a deliberate change of the model or the pipeline's results,
and say so in the commit.
"""

import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORED = os.path.join(ROOT, 'test', 'data', 'demo_keypoints_3d.jsonl')
TOLERANCE = 1e-6


def _differences(expected, actual, path=''):
    """List the places where two decoded JSON values differ (numbers beyond TOLERANCE)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return [f'{path}: keys {sorted(expected)} != {sorted(actual)}']
        return [d for key in sorted(expected) if key != 'stamp'
                for d in _differences(expected[key], actual[key], f'{path}.{key}')]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f'{path}: {len(expected)} items != {len(actual)}']
        return [d for i, (e, a) in enumerate(zip(expected, actual))
                for d in _differences(e, a, f'{path}[{i}]')]
    numbers = (int, float)
    if (isinstance(expected, numbers) and isinstance(actual, numbers)
            and not isinstance(expected, bool) and not isinstance(actual, bool)):
        return [] if abs(expected - actual) <= TOLERANCE else [f'{path}: {expected} != {actual}']
    return [] if expected == actual else [f'{path}: {expected!r} != {actual!r}']


def test_differences_finds_a_changed_number_and_ignores_stamps():
    record = {'stamp': 1.0, 'xyz': [0.1, 0.2, None], 'name': 'corner_0'}
    assert _differences(record, dict(record, stamp=2.0)) == []
    assert _differences(record, dict(record, xyz=[0.1, 0.2 + 2e-6, None])) == [
        '.xyz[1]: 0.2 != 0.200002']
    assert _differences(record, dict(record, xyz=[0.1, 0.2, 0.3])) != []


def test_demo_on_the_real_sequence_matches_the_stored_output(tmp_path):
    out = tmp_path / 'keypoints_3d.jsonl'
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID='73')
    proc = subprocess.run(['keypoints-demo', '--no-annotate', '--output', str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    expected = [json.loads(line) for line in open(STORED)]
    actual = [json.loads(line) for line in open(out)]
    assert len(expected) == 13
    assert _differences(expected, actual) == []
    stamps = [record['stamp'] for record in actual]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
