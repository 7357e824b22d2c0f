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
"""robot_calibration.launch.py: which nodes start, with which topics and typed parameters.

``launch``/``launch_ros`` are not on PyPI: the launch file runs against
recording stand-ins of the classes it uses.
"""

import importlib.util
import os
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, 'launch', 'robot_calibration.launch.py')


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _expand(monkeypatch, arguments):
    """Run the launch file with ``arguments`` set; return the Node actions it builds."""
    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    class ParameterValue(_Recorded):
        pass

    modules = {
        'launch': types.ModuleType('launch'), 'launch.actions': types.ModuleType('a'),
        'launch.substitutions': types.ModuleType('s'), 'launch_ros': types.ModuleType('r'),
        'launch_ros.actions': types.ModuleType('ra'),
        'launch_ros.parameter_descriptions': types.ModuleType('rp')}
    modules['launch'].LaunchDescription = _Recorded
    modules['launch.actions'].DeclareLaunchArgument = _Recorded
    modules['launch.actions'].OpaqueFunction = _Recorded
    modules['launch.substitutions'].LaunchConfiguration = LaunchConfiguration
    modules['launch_ros.actions'].Node = _Recorded
    modules['launch_ros.parameter_descriptions'].ParameterValue = ParameterValue
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location('robot_calibration_launch', LAUNCH)
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)
    description = launch_file.generate_launch_description()
    declared = {a.args[0]: a.kwargs['default_value'] for a in description.args[0][:-1]}
    context = dict(declared, **arguments)
    return description.args[0][-1].kwargs['function'](context)


def test_mono_starts_the_mono_node_and_the_calibration_node(monkeypatch):
    nodes = _expand(monkeypatch, {'mode': 'mono', 'window_size': '1', 'image': '/cam/image'})
    assert [n.kwargs['executable'] for n in nodes] == ['mono_keypoint_node',
                                                       'robot_calibration_node']
    mono, calibration = nodes
    assert dict((a, b.name) for a, b in mono.kwargs['remappings'])['image'] == 'image'
    params = calibration.kwargs['parameters'][0]
    assert params['mode'] == 'mono'
    # only the arguments set are passed, typed (YAML would read 1 as an integer anyway,
    # but a double given as 1 must stay a double)
    # (and the default model, panda, names the class to calibrate)
    assert set(params) == {'mode', 'window_size', 'object_class'}
    assert params['object_class'] == 'panda'
    assert params['window_size'].kwargs['value_type'] is int
    remapped = dict((a, b.name) for a, b in calibration.kwargs['remappings'])
    assert set(remapped) == {'joint_states', 'robot_description', 'camera_info'}


@pytest.mark.parametrize('arguments, object_class', [
    ({'model': 'kuka_iiwa'}, 'kuka_iiwa'),  # it calibrated 'panda' with a KUKA model
    ({'model': 'kuka_iiwa', 'object_class': 'panda'}, 'given'),  # a given class wins
    ({'model': '/models/my_robot.onnx'}, None)])  # a path: the node's default
def test_a_shipped_robot_model_sets_the_class_to_calibrate(monkeypatch, arguments,
                                                           object_class):
    _, calibration = _expand(monkeypatch, dict(arguments, mode='mono'))
    params = calibration.kwargs['parameters'][0]
    if object_class == 'given':
        assert params['object_class'].args[0].name == 'object_class'  # the argument, typed
    else:
        assert params.get('object_class') == object_class


def test_stereo_starts_the_calibration_node_alone(monkeypatch):
    nodes = _expand(monkeypatch, {'mode': 'stereo', 'inlier_threshold_m': '1'})
    assert [n.kwargs['executable'] for n in nodes] == ['robot_calibration_node']
    params = nodes[0].kwargs['parameters'][0]
    assert params['inlier_threshold_m'].kwargs['value_type'] is float
    remapped = dict((a, b.name) for a, b in nodes[0].kwargs['remappings'])
    assert set(remapped) == {'joint_states', 'robot_description', 'left/camera_info',
                             'right/camera_info'}
    assert remapped['left/camera_info'] == 'left_camera_info'
    with pytest.raises(ValueError, match='mode'):
        _expand(monkeypatch, {'mode': 'trinocular'})
