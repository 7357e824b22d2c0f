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
"""End-to-end: ``keypoints-export --int8`` calibrated on a rendered data set, no ROS.

Two Panda renders are made with ``sim-datagen generate``; the shipped
``panda`` network is exported as an 8-bit copy calibrated on both views of
both samples, and the copy runs in the detector on a render with keypoints
near the float network's.
"""

import subprocess
import sys

from _helpers import source_env
import numpy as np

from keypoint_perception.core.dataset import iter_samples
from keypoint_perception.core.detector import KeypointDetector
from keypoint_perception.core.onnx_model import read_onnx_model


def test_int8_export_of_the_shipped_panda_model(tmp_path):
    data = tmp_path / 'panda'
    r = subprocess.run([sys.executable, '-m', 'sim_datagen.cli', 'generate', '--config',
                        'panda', '--count', '2', '--out', str(data), '--workers', '1',
                        '--seed', '5'],
                       env=source_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = tmp_path / 'panda_int8.onnx'
    r = subprocess.run([sys.executable, '-m', 'keypoint_perception.export', '--model', 'panda',
                        '--out', str(out), '--int8', '--calibration-data', str(data),
                        '--calibration-samples', '2'],
                       env=source_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert 'calibrated on 4 views' in r.stdout
    info = read_onnx_model(str(out))
    assert info.object_class.name == 'panda' and info.quantization['calibration_views'] == 4
    assert info.test_time_augmentation == 'hflip'
    sample = next(iter_samples(str(data)))
    int8 = KeypointDetector(str(out), backend='onnxruntime').detect([sample['left']])[0]
    float32 = KeypointDetector('panda', backend='onnxruntime').detect([sample['left']])[0]
    both = int8.found & float32.found
    assert both.sum() >= len(both) // 2
    distance = np.linalg.norm(int8.uv[both] - float32.uv[both], axis=1)
    diagonal = np.hypot(*sample['left'].shape[:2])
    assert np.median(distance) < 0.01 * diagonal, distance
