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

The stored file was made with the PyTorch backend, which the 1e-6 comparison
runs explicitly (``--node-arg backend:=torch``).  The default on the CPU is
ONNX Runtime (issue 19), whose belief maps differ from PyTorch's by about
1e-6; its output must match the stored one within the backend tolerance
(:data:`BACKEND_TOLERANCES`: 0.01 px, 0.1 mm, confidence 1e-4).
"""

import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORED = os.path.join(ROOT, 'test', 'data', 'demo_keypoints_3d.jsonl')
TOLERANCE = 1e-6

#: Largest difference per record key between the ONNX Runtime and the PyTorch
#: backend (issue 19): pixels 0.01, metres 1e-4 (0.1 mm), millimetres 0.1,
#: beliefs and quaternion components 1e-4; other numbers (indices) exact.
BACKEND_TOLERANCES = {'left_uv': 0.01, 'right_uv': 0.01, 'reprojection_error_px': 0.01,
                      'xyz': 1e-4, 'position': 1e-4, 'fit_rmse_m': 1e-4, 'edges_mm': 0.1,
                      'confidence': 1e-4, 'orientation_xyzw': 1e-4}


def _differences(expected, actual, path='', tolerances=None, key=''):
    """List the places where two decoded JSON values differ.

    Numbers may differ by ``TOLERANCE``, or with ``tolerances`` by the
    tolerance of the dict key they are under (0 for keys not listed).
    """
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return [f'{path}: keys {sorted(expected)} != {sorted(actual)}']
        return [d for name in sorted(expected) if name != 'stamp'
                for d in _differences(expected[name], actual[name], f'{path}.{name}',
                                      tolerances, name)]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f'{path}: {len(expected)} items != {len(actual)}']
        return [d for i, (e, a) in enumerate(zip(expected, actual))
                for d in _differences(e, a, f'{path}[{i}]', tolerances, key)]
    numbers = (int, float)
    if (isinstance(expected, numbers) and isinstance(actual, numbers)
            and not isinstance(expected, bool) and not isinstance(actual, bool)):
        allowed = TOLERANCE if tolerances is None else tolerances.get(key, 0.0)
        return [] if abs(expected - actual) <= allowed else [f'{path}: {expected} != {actual}']
    return [] if expected == actual else [f'{path}: {expected!r} != {actual!r}']


def test_differences_finds_a_changed_number_and_ignores_stamps():
    record = {'stamp': 1.0, 'xyz': [0.1, 0.2, None], 'name': 'corner_0'}
    assert _differences(record, dict(record, stamp=2.0)) == []
    assert _differences(record, dict(record, xyz=[0.1, 0.2 + 2e-6, None])) == [
        '.xyz[1]: 0.2 != 0.200002']
    assert _differences(record, dict(record, xyz=[0.1, 0.2, 0.3])) != []
    # backend tolerances go by key: 0.1 mm for xyz, none for other numbers
    near = dict(record, xyz=[0.1 + 9e-5, 0.2, None])
    assert _differences(record, near, tolerances=BACKEND_TOLERANCES) == []
    assert _differences(record, dict(record, xyz=[0.1002, 0.2, None]),
                        tolerances=BACKEND_TOLERANCES) == ['.xyz[0]: 0.1 != 0.1002']
    assert _differences({'index': 1}, {'index': 2}, tolerances=BACKEND_TOLERANCES) != []


def _run_demo(tmp_path, *args):
    """Run keypoints-demo on the real sequence; return its records (one per pair)."""
    out = tmp_path / 'keypoints_3d.jsonl'
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID='73')
    proc = subprocess.run(['keypoints-demo', '--no-annotate', '--output', str(out), *args],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    actual = [json.loads(line) for line in open(out)]
    stamps = [record['stamp'] for record in actual]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    return actual, proc.stdout + proc.stderr


def test_demo_on_the_real_sequence_matches_the_stored_output(tmp_path):
    actual, log = _run_demo(tmp_path, '--node-arg', 'backend:=torch')
    assert 'on cpu' in log and 'onnxruntime' not in log  # the torch backend ran
    expected = [json.loads(line) for line in open(STORED)]
    assert len(expected) == 13
    assert _differences(expected, actual) == []


def test_the_default_backend_matches_the_stored_output_within_its_tolerance(tmp_path):
    actual, log = _run_demo(tmp_path)
    assert 'CPUExecutionProvider' in log  # ONNX Runtime is the default on the CPU
    expected = [json.loads(line) for line in open(STORED)]
    assert _differences(expected, actual, tolerances=BACKEND_TOLERANCES) == []


def test_an_exported_onnx_file_is_a_model_the_demo_and_node_accept(tmp_path):
    exported = str(tmp_path / 'board.onnx')
    proc = subprocess.run(['keypoints-export', '--model', 'checkerboard_lite', '--out', exported],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    actual, log = _run_demo(tmp_path, '--model', exported)
    assert f'model {exported}' in log
    expected = [json.loads(line) for line in open(STORED)]
    assert _differences(expected, actual, tolerances=BACKEND_TOLERANCES) == []
