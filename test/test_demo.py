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
import subprocess

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, 'data', 'opencv_stereo')


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
