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
"""Helpers shared by the integration tests in this folder (imported as ``_helpers``)."""

import os
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_env() -> dict:
    """This environment with both packages' sources first on ``PYTHONPATH`` (for subprocesses)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([os.path.join(ROOT, 'src', package) for package in
                                         ('sim_datagen', 'keypoint_perception')]
                                        + [env.get('PYTHONPATH', '')])
    return env


def wait_for_log(path: str, text: str, timeout: float = 20.0) -> bool:
    """Poll the log file ``path`` until it contains ``text``; False after ``timeout`` s."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        with open(path) as f:
            if text in f.read():
                return True
        time.sleep(0.2)
    return False
