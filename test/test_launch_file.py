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
"""The launch file and the parameters file agree with the node's parameters.

``launch``/``launch_ros`` are not on PyPI, so in the wheel environment the
launch file is checked statically: it compiles, declares every argument with a
description, passes only parameters the node declares, and the installed
parameters YAML sets exactly the declared parameters.
"""

import ast
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, 'launch', 'stereo_keypoints.launch.py')
PARAMS = os.path.join(ROOT, 'config', 'stereo_keypoints.yaml')
NODE = os.path.join(ROOT, 'src', 'keypoint_perception', 'keypoint_perception', 'nodes',
                    'stereo_keypoint_node.py')


def _declared_node_parameters():
    src = open(NODE).read()
    return set(re.findall(r"\bp\('([a-z_]+)'", src))


def _launch_arguments():
    tree = ast.parse(open(LAUNCH).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'ARGUMENTS':
            return node.value
    raise AssertionError('ARGUMENTS not found in the launch file')


def test_launch_file_compiles_and_documents_arguments():
    compile(open(LAUNCH).read(), LAUNCH, 'exec')
    args = _launch_arguments()
    names = []
    for elt in args.elts:
        name, _, text = elt.elts
        assert isinstance(text, ast.Constant) and len(text.value) > 10, ast.dump(elt)
        names.append(name.value)
    assert {'left_image', 'right_image', 'left_camera_info', 'right_camera_info', 'model',
            'approximate_sync', 'params_file', 'namespace', 'use_rviz'} <= set(names)
    assert len(names) == len(set(names))


def test_launch_parameters_are_declared_by_the_node():
    declared = _declared_node_parameters()
    assert {'model', 'approximate_sync', 'sync_slop', 'queue_size', 'input_rectified'} <= \
        declared
    src = open(LAUNCH).read()
    overrides = re.search(r"parameters=\[cfg\['params_file'\], \{(.*?)\}\]", src, re.S)
    keys = set(re.findall(r"'([a-z_]+)': cfg", overrides.group(1)))
    assert keys and keys <= declared, keys - declared


def test_parameter_file_sets_only_declared_parameters():
    with open(PARAMS) as f:
        params = yaml.safe_load(f)['/**']['ros__parameters']
    declared = _declared_node_parameters()
    assert set(params) <= declared, set(params) - declared
    assert set(params) == declared, f'not in the YAML: {declared - set(params)}'
