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
"""docs/nodes.md: its generated tables equal what tools/gen_param_docs.py writes from the code."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOC = os.path.join(ROOT, 'docs', 'nodes.md')


def _check(doc):
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID='112')
    return subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'gen_param_docs.py'),
                           '--check', '--doc', doc], capture_output=True, text=True, env=env,
                          timeout=180)


def test_committed_tables_are_generated_from_the_code(tmp_path):
    proc = _check(DOC)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # and the check sees a stale table: a default changed by hand
    with open(DOC) as f:
        text = f.read()
    row = '| `roi_scale` | double | `1.75` |'
    assert row in text
    stale = tmp_path / 'nodes.md'
    stale.write_text(text.replace(row, '| `roi_scale` | double | `2.0` |'))
    proc = _check(str(stale))
    assert proc.returncode == 1 and 'out of date' in proc.stderr


def test_every_node_has_its_topic_and_parameter_tables():
    with open(DOC) as f:
        text = f.read()
    for node in ('stereo_keypoint_node', 'stereo_replay_node', 'sim_stream_node'):
        for table in ('topics', 'parameters'):
            begin, end = f'<!-- BEGIN {node} {table} -->', f'<!-- END {node} {table} -->'
            body = text.split(begin, 1)[1].split(end, 1)[0]
            assert body.count('\n|') >= 3, (node, table)
    assert '| subscribed | `left/image_rect` | `sensor_msgs/msg/Image` | best effort' in text
    assert '| published | `/tf` | `tf2_msgs/msg/TFMessage` |' in text
