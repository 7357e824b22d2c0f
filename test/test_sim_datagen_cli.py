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
"""End-to-end: the ``sim-datagen`` command line in a fresh process, no ROS."""

import json
import os
import subprocess
import sys

from _helpers import source_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, 'src', 'sim_datagen')
CONFIG = os.path.join(PKG, 'config', 'checkerboard.yaml')


def test_generate_and_preview_cli(tmp_path):
    out = tmp_path / 'ds'
    cmd = [sys.executable, '-m', 'sim_datagen.cli', 'generate', '--config', CONFIG,
           '--count', '3', '--out', str(out), '--workers', '1', '--seed', '0']
    r = subprocess.run(cmd, env=source_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ['meta.json', 'shard-000000.tar']
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['count'] == 3 and meta['object_class'] == 'checkerboard'
    sheet = tmp_path / 'sheet.png'
    r = subprocess.run([sys.executable, '-m', 'sim_datagen.cli', 'preview', '--data', str(out),
                        '--out', str(sheet), '--count', '3'],
                       env=source_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sheet.stat().st_size > 10000


def test_no_ros_imports():
    code = ('import sys; import sim_datagen.cli, sim_datagen.generator, sim_datagen.coco, '
            'sim_datagen.writer, sim_datagen.preview; '
            'print(any(m == "rclpy" or m.startswith("rclpy.") for m in sys.modules))')
    r = subprocess.run([sys.executable, '-c', code], env=source_env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'False'
