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
"""keypoints-demo end to end on two real stereo pairs (localhost DDS, own domain id)."""

import json
import math
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, 'data', 'opencv_stereo')
CAMERA_INFO = os.path.join(ROOT, 'config', 'camera_info')
#: ROS domain of the demo runs of the tests below (localhost discovery only)
FAULT_DOMAIN_ID = '133'


def _session_processes(session_id: int):
    """Command lines of the live processes in session ``session_id`` (Linux /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmdline = f.read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue  # exited meanwhile
        if int(fields[3]) == session_id and fields[0] != 'Z':  # field 6 of stat: session
            found.append(cmdline)
    return found


def _start_demo(args, tmp_path):
    """Start keypoints-demo in a session of its own (its children stay in that session)."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_DOMAIN_ID=FAULT_DOMAIN_ID)
    return subprocess.Popen(['keypoints-demo', '--output', str(tmp_path / 'out' / 'kp.jsonl'),
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _orphans_after(process, wait_s=15.0):
    """Return the processes left in a finished demo's session after ``wait_s`` of grace."""
    deadline = time.time() + wait_s
    while _session_processes(process.pid) and time.time() < deadline:
        time.sleep(0.2)
    left = _session_processes(process.pid)
    for pid in filter(str.isdigit, os.listdir('/proc')):  # do not leave them running
        try:
            if os.getsid(int(pid)) == process.pid:
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    return left


def _bad_yaml(tmp_path):
    path = tmp_path / 'left.yaml'
    path.write_text('image_width: 640\nimage_height: [480\ncamera_matrix: {rows: 3\n')
    return str(path)


def test_a_bad_camera_info_yaml_is_one_line_and_starts_nothing(tmp_path):
    """Issue 16 #12: the YAML used to be parsed after the node started, which then lived on."""
    bad = _bad_yaml(tmp_path)
    demo = _start_demo(['--left-info', bad], tmp_path)
    out, err = demo.communicate(timeout=120)
    assert demo.returncode == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'keypoints-demo: error: --left-info {bad}:')
    assert 'Traceback' not in err and 'starting perception node' not in out
    assert _orphans_after(demo, wait_s=1.0) == []


@pytest.mark.parametrize('args, message', [
    (['--object', 'no_such_object'], "--object no_such_object: no object class 'no_such_object'"),
    (['--object', 'panda', '--model', 'kuka_iiwa'], "detects 'kuka_iiwa', not --object 'panda'"),
    (['--model', '/nonexistent/model.pt'], '--model /nonexistent/model.pt: no model'),
    (['--right-info', '/nonexistent/right.yaml'], '--right-info /nonexistent/right.yaml:'),
    (['--left', '/nonexistent/left*.jpg'], 'no images for'),
    (['--timeout', '0'], 'argument --timeout: must be > 0'),
    (['--node-arg', 'roi_scale'], "--node-arg 'roi_scale': expected name:=value"),
])
def test_bad_demo_inputs_are_one_clear_line(tmp_path, args, message):
    demo = _start_demo(args, tmp_path)
    out, err = demo.communicate(timeout=120)
    assert demo.returncode == 2, out + err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert 'Traceback' not in err
    assert _orphans_after(demo, wait_s=1.0) == []


@pytest.mark.parametrize('args, model, object_name', [
    ([], 'checkerboard_lite', 'checkerboard'),
    (['--model', 'panda'], 'panda', 'panda'),             # the class comes from the model
    (['--object', 'kuka_iiwa'], 'kuka_iiwa', 'kuka_iiwa'),  # no kuka_iiwa_lite: kuka_iiwa
    (['--object', 'checkerboard'], 'checkerboard_lite', 'checkerboard'),
])
def test_the_model_and_the_object_class_follow_each_other(tmp_path, args, model, object_name):
    from keypoint_perception.demo import parse_args, validate_inputs
    inputs = validate_inputs(parse_args([*args, '--no-annotate',
                                         '--output', str(tmp_path / 'kp.jsonl')]))
    assert (inputs.model, inputs.object_class.name) == (model, object_name)
    assert len(inputs.pairs) == 13


def test_a_corrupt_model_file_is_one_clear_line(tmp_path):
    model = tmp_path / 'broken.pt'
    model.write_bytes(b'PK\x03\x04 not a zip archive')
    demo = _start_demo(['--model', str(model)], tmp_path)
    out, err = demo.communicate(timeout=120)
    assert demo.returncode == 2, out + err
    assert err.strip().startswith(f'keypoints-demo: error: --model {model}: ')
    assert 'not a readable checkpoint' in err and len(err.strip().splitlines()) == 1


def test_a_stopped_demo_stops_the_node_it_started(tmp_path):
    """SIGTERM while the node runs: the demo's clean-up terminates it (no orphan)."""
    for name in ('left01.jpg', 'right01.jpg'):
        shutil.copy(os.path.join(DATA, name), tmp_path / name)
    demo = _start_demo(['--left', str(tmp_path / 'left*.jpg'),
                        '--right', str(tmp_path / 'right*.jpg'), '--no-annotate'], tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and not any('stereo_keypoint_node' in c
                                             for c in _session_processes(demo.pid)):
        time.sleep(0.2)
    assert any('stereo_keypoint_node' in c for c in _session_processes(demo.pid))
    demo.send_signal(signal.SIGTERM)
    demo.communicate(timeout=60)
    assert demo.returncode != 0
    assert _orphans_after(demo) == []


def test_demo_writes_one_json_line_per_pair_in_input_order(tmp_path):
    for name in ('left03.jpg', 'right03.jpg', 'left01.jpg', 'right01.jpg'):
        shutil.copy(os.path.join(DATA, name), tmp_path / name)
    out = tmp_path / 'out' / 'kp.jsonl'
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID='72')
    proc = subprocess.run(
        ['keypoints-demo', '--left', str(tmp_path / 'left*.jpg'),
         '--right', str(tmp_path / 'right*.jpg'),
         '--left-info', os.path.join(ROOT, 'config', 'camera_info', 'opencv_stereo_left.yaml'),
         '--right-info', os.path.join(ROOT, 'config', 'camera_info',
                                      'opencv_stereo_right.yaml'),
         '--object', 'checkerboard', '--output', str(out)],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [json.loads(line) for line in open(out)]
    assert [r['index'] for r in lines] == [0, 1]
    assert [r['left_image'] for r in lines] == ['left01.jpg', 'left03.jpg']
    assert lines[0]['stamp'] < lines[1]['stamp']
    names = [k['name'] for k in yaml.safe_load(open(os.path.join(
        ROOT, 'src', 'keypoint_perception', 'keypoint_perception', 'objects',
        'checkerboard.yaml')))['keypoints']]
    assert names == ['corner_0', 'corner_1', 'corner_2', 'corner_3']
    for rec in lines:
        obj = rec['objects'][0]
        assert obj['class'] == 'checkerboard' and obj['instance'] == '0'
        assert [k['name'] for k in obj['keypoints']] == names
        for k in obj['keypoints']:
            assert set(k) == {'name', 'left_uv', 'right_uv', 'xyz', 'confidence',
                              'reprojection_error_px'}
            assert 0.0 <= k['confidence'] <= 1.0
            if k['xyz'] is not None:
                # in front of the left camera, within arm's reach (metres)
                assert 0.1 < k['xyz'][2] < 2.0
                assert k['reprojection_error_px'] >= 0
                assert all(math.isfinite(v) for v in k['left_uv'] + k['right_uv'])
        xyz = [k['xyz'] for k in obj['keypoints']]
        if all(x is not None for x in xyz):
            # a 9x6 board with 25 mm squares: 200 mm and 125 mm sides.  This
            # checks units, frames and calibration (a mm/m or baseline mix-up is
            # off by far more); the model's accuracy (mean side error, one
            # real pair at 13%) is measured in docs/benchmarks.md
            sides = sorted(np.linalg.norm(np.subtract(xyz[i], xyz[(i + 1) % 4]))
                           for i in range(4))
            assert np.allclose(sides, [0.125, 0.125, 0.2, 0.2], rtol=0.25), sides
    annotated = sorted(os.listdir(tmp_path / 'out' / 'annotated'))
    assert annotated == ['000_left01.jpg', '001_left03.jpg']
    assert 'stereo pairs with all 4 keypoints in 3D' in proc.stdout
