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
"""Shared fixtures: the source tree on sys.path, one generator per session."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
SRC = os.path.dirname(PKG)
for p in (PKG, os.path.join(SRC, 'keypoint_perception')):
    if p not in sys.path:
        sys.path.insert(0, p)

CONFIG = os.path.join(PKG, 'config', 'checkerboard.yaml')

#: scene variables of a "clean" render: no occluders, blur, noise or distortion
CLEAN = {'hands': 0, 'bar': 0, 'n_distractors': 0, 'person': 0, 'blur_sigma': 0.0,
         'motion_blur': 0.0, 'noise_sigma': 0.0, 'distortion': 0, 'jpeg_quality': 95,
         'out_of_view': 0, 'shadow': 0, 'vignetting': 0.0, 'contrast': 1.0, 'gamma': 1.0,
         'exposure': 1.0, 'board_black': 20.0, 'light_ambient': 0.6, 'light_diffuse': 0.5}


@pytest.fixture(scope='session')
def config():
    from sim_datagen.config import load_config
    return load_config(CONFIG)


@pytest.fixture(scope='session')
def generator(config):
    from sim_datagen.generator import SampleGenerator
    g = SampleGenerator(config)
    yield g
    g.world.close()
