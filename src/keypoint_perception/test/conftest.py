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
"""Fixtures of the package tests: the real OpenCV stereo sequence, its rig, a random checkpoint."""

import os
import subprocess
import sys

try:
    import keypoint_perception  # noqa: F401
except ImportError:  # running from the source tree without an install
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from geometry_helpers import CONFIG_DIR, DATA_DIR, REPO_ROOT  # noqa: E402
from keypoint_perception.core.camera import CameraModel  # noqa: E402
from keypoint_perception.core.checkpoint import save_checkpoint  # noqa: E402
from keypoint_perception.core.model import BeliefMapNet, make_config  # noqa: E402
from keypoint_perception.core.objects import load_object_class  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope='session')
def opencv_data():
    """Make sure data/opencv_stereo holds the images and ground_truth.json.

    Fetches with tools/fetch_data.sh when missing (never skips silently); fails
    with a clear message when that is impossible.
    """
    needed = ['stereo_calib.xml', 'left01.jpg', 'right14.jpg']
    if not all(os.path.isfile(os.path.join(DATA_DIR, f)) for f in needed):
        script = os.path.join(REPO_ROOT, 'tools', 'fetch_data.sh')
        proc = subprocess.run(['bash', script], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail('OpenCV stereo data missing and tools/fetch_data.sh failed '
                        f'(rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}')
    if not os.path.isfile(os.path.join(DATA_DIR, 'ground_truth.json')):
        script = os.path.join(REPO_ROOT, 'tools', 'calibrate_opencv_stereo.py')
        proc = subprocess.run([sys.executable, script, '--ground-truth-only'],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail('tools/calibrate_opencv_stereo.py --ground-truth-only failed:\n'
                        f'{proc.stdout}\n{proc.stderr}')
    return DATA_DIR


@pytest.fixture(scope='session')
def real_rig():
    """Left and right models of the calibrated real rig (committed YAML files)."""
    left = CameraModel.from_yaml(os.path.join(CONFIG_DIR, 'opencv_stereo_left.yaml'),
                                 frame_id='left_optical')
    right = CameraModel.from_yaml(os.path.join(CONFIG_DIR, 'opencv_stereo_right.yaml'),
                                  frame_id='right_optical')
    return left, right


@pytest.fixture(scope='session', autouse=True)
def onnx_cache(tmp_path_factory):
    """Keep the ONNX exports of the tests' checkpoints out of the user's cache.

    The default backend on the CPU (ONNX Runtime) exports a checkpoint that
    has no ONNX file into ``$XDG_CACHE_HOME`` on first use
    (:func:`keypoint_perception.core.onnx_model.onnx_model_for`).
    """
    previous = os.environ.get('XDG_CACHE_HOME')
    os.environ['XDG_CACHE_HOME'] = str(tmp_path_factory.mktemp('xdg_cache'))
    yield os.environ['XDG_CACHE_HOME']
    if previous is None:
        del os.environ['XDG_CACHE_HOME']
    else:
        os.environ['XDG_CACHE_HOME'] = previous


@pytest.fixture()
def random_checkpoint(tmp_path):
    """Write a lite checkpoint with random weights (BatchNorm statistics made non-trivial)."""
    object_class = load_object_class('checkerboard')
    torch.manual_seed(3)
    model = BeliefMapNet(make_config('lite', object_class.num_keypoints))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / 'random.pt'
    save_checkpoint(str(path), model, object_class, meta={'test_time_augmentation': 'rot180',
                                                          'step': 7})
    return str(path)
