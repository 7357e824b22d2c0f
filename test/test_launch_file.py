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
"""stereo_keypoints.launch.py: arguments, typed parameters, params_file, RViz, DDS profile.

``launch``/``launch_ros`` are not on PyPI, so the launch file is executed
against small stand-ins of the few classes it uses (they record what the
launch file builds; :class:`_FakeLaunch`) and the result is checked:

* the node-parameter arguments are exactly ``core.config.launch_parameters()``
  with its descriptions, default '' (= not set);
* only the arguments set on the command line reach the node, after the
  ``params_file`` (issue 16 item 2), each typed with
  ``ParameterValue(..., value_type=...)`` (item 1: ``roi_refinement:=off``
  is the string 'off', ``sync_slop:=1`` the double 1.0);
* ``use_rviz:=true`` without rviz2 logs a warning and starts the node alone;
  RViz gets the namespace and the Fixed Frame argument (item 3);
* the shipped Fast DDS profile is set unless the user set one (item 16).

Where the real ``launch`` and ``launch_ros`` are importable (a ROS 2
install), :func:`test_real_launch_expands_typed_parameters` expands the
launch file with them too.
"""

import ast
import importlib.util
import os
import sys
import types

from keypoint_perception.core.config import launch_parameters, parameter_spec
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, 'launch', 'stereo_keypoints.launch.py')
README = os.path.join(ROOT, 'README.md')


class _FakeLaunch:
    """Stand-ins of the launch/launch_ros classes the launch file uses; they record."""

    def __init__(self):
        self.warnings = []
        fake = self

        class LaunchConfiguration:
            def __init__(self, name):
                self.name = name

            def perform(self, context):
                return context.launch_configurations[self.name]

        class DeclareLaunchArgument:
            def __init__(self, name, default_value='', description=''):
                self.name, self.default_value, self.description = \
                    name, default_value, description

        class OpaqueFunction:
            def __init__(self, function):
                self.function = function

        class SetEnvironmentVariable:
            def __init__(self, name, value):
                self.name, self.value = name, value

        class IfCondition:
            def __init__(self, predicate):
                self.predicate = predicate

            def evaluate(self, context):
                text = self.predicate.perform(context).lower()
                if text not in ('true', 'false', '1', '0'):
                    raise ValueError(f'not a boolean: {text}')
                return text in ('true', '1')

        class Logger:
            def warning(self, text):
                fake.warnings.append(text)

        class LaunchDescription(list):
            pass

        class Node:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

        class ParameterValue:
            def __init__(self, value, value_type=None):
                self.value, self.value_type = value, value_type

        self.modules = {
            'launch': types.SimpleNamespace(LaunchDescription=LaunchDescription),
            'launch.actions': types.SimpleNamespace(
                DeclareLaunchArgument=DeclareLaunchArgument, OpaqueFunction=OpaqueFunction,
                SetEnvironmentVariable=SetEnvironmentVariable),
            'launch.conditions': types.SimpleNamespace(IfCondition=IfCondition),
            'launch.logging': types.SimpleNamespace(get_logger=lambda name: Logger()),
            'launch.substitutions': types.SimpleNamespace(
                LaunchConfiguration=LaunchConfiguration),
            'launch_ros': types.SimpleNamespace(),
            'launch_ros.actions': types.SimpleNamespace(Node=Node),
            'launch_ros.parameter_descriptions': types.SimpleNamespace(
                ParameterValue=ParameterValue),
        }
        self.modules['launch'].logging = self.modules['launch.logging']
        self.Node, self.SetEnvironmentVariable = Node, SetEnvironmentVariable


def _typed(parameter_value, context):
    """Return the value launch_ros writes for a ParameterValue (its coerce_to_type rules)."""
    text = parameter_value.value.perform(context)
    value_type = parameter_value.value_type
    if value_type is str:
        return text
    if value_type in (int, float):
        return value_type(text)
    assert value_type is bool, value_type
    value = yaml.safe_load({'1': 'true', '0': 'false'}.get(text, text))
    assert isinstance(value, bool), text
    return value


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Load the launch file against the stand-ins, with a share folder in tmp_path."""
    stand_ins = _FakeLaunch()
    for name, module in stand_ins.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location('stereo_keypoints_launch', LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    share = tmp_path / 'share' / 'keypoint_perception'
    (share / 'config' / 'dds').mkdir(parents=True)
    (share / 'config' / 'dds' / 'fastdds_profile.xml').write_text('<dds/>')
    (share / 'config' / 'stereo_keypoints.yaml').write_text('{}')
    packages = {'keypoint_perception': str(share)}

    def share_directory(package):
        if package not in packages:
            raise module.PackageNotFoundError(package)
        return packages[package]

    monkeypatch.setattr(module, 'get_package_share_directory', share_directory)
    monkeypatch.delenv('FASTDDS_DEFAULT_PROFILES_FILE', raising=False)
    stand_ins.launch_file, stand_ins.share, stand_ins.packages = module, share, packages
    return stand_ins


def _expand(fake, **command_line):
    """Run the launch file with ``name:=value`` arguments; return (context, actions)."""
    description = fake.launch_file.generate_launch_description()
    declared = [a for a in description if hasattr(a, 'default_value')]
    context = types.SimpleNamespace(launch_configurations={
        a.name: a.default_value for a in declared}, environment=dict(os.environ))
    unknown = set(command_line) - set(context.launch_configurations)
    assert not unknown, f'not launch arguments: {unknown}'
    context.launch_configurations.update(command_line)
    (opaque,) = [a for a in description if hasattr(a, 'function')]
    return context, opaque.function(context)


def _nodes(actions, fake):
    return {a.kwargs['package']: a.kwargs for a in actions if isinstance(a, fake.Node)}


def _node_parameters(context, node):
    """Return the node's parameter files and its typed command-line values, in order."""
    files, values = [], {}
    for entry in node['parameters']:
        if isinstance(entry, dict):
            values.update({name: _typed(v, context) for name, v in entry.items()})
        else:
            files.append(entry)
    return files, values


def test_arguments_are_documented_and_node_arguments_come_from_the_config(fake):
    description = fake.launch_file.generate_launch_description()
    declared = {a.name: a for a in description if hasattr(a, 'default_value')}
    assert len(declared) == len([a for a in description if hasattr(a, 'default_value')])
    for argument in declared.values():
        assert len(argument.description) > 20, argument.name
    assert {'namespace', 'params_file', 'left_image', 'right_image', 'left_camera_info',
            'right_camera_info', 'use_rviz', 'rviz_fixed_frame'} <= set(declared)
    for spec in launch_parameters():
        argument = declared[spec.name]
        assert argument.default_value == '', f'{spec.name}: must default to "not set"'
        assert spec.description in argument.description
        assert repr(spec.default) in argument.description
    assert declared['rviz_fixed_frame'].default_value == 'left_camera_optical_frame'


def test_without_arguments_the_node_gets_the_installed_parameter_file_only(fake):
    context, actions = _expand(fake)
    node = _nodes(actions, fake)['keypoint_perception']
    files, values = _node_parameters(context, node)
    assert files == [str(fake.share / 'config' / 'stereo_keypoints.yaml')]
    assert values == {}
    assert 'rviz2' not in _nodes(actions, fake)


def test_users_params_file_is_not_overridden_by_launch_defaults(fake):
    # issue 16 item 2: the old launch file passed its own model, device,
    # approximate_sync, sync_slop, roi_refinement and tta after the user's file
    context, actions = _expand(fake, params_file='/home/user/my_params.yaml')
    files, values = _node_parameters(context, _nodes(actions, fake)['keypoint_perception'])
    assert files == ['/home/user/my_params.yaml']
    assert values == {}


def test_command_line_values_follow_the_params_file_typed_as_the_node_declares_them(fake):
    context, actions = _expand(fake, params_file='/p.yaml', roi_refinement='off',
                               sync_slop='1', approximate_sync='true', model='123',
                               device='cuda:0', test_time_augmentation='none')
    node = _nodes(actions, fake)['keypoint_perception']
    assert node['parameters'][0] == '/p.yaml', 'params_file first, command line after'
    files, values = _node_parameters(context, node)
    assert values == {'roi_refinement': 'off', 'sync_slop': 1.0, 'approximate_sync': True,
                      'model': '123', 'device': 'cuda:0', 'test_time_augmentation': 'none'}
    assert type(values['sync_slop']) is float
    for entry in node['parameters'][1:]:
        for name, value in entry.items():
            assert value.value_type is parameter_spec(name).python_type, name
    # what launch_ros writes to the node's parameter file keeps those types
    for name, value in values.items():
        assert yaml.safe_load(yaml.dump({name: value}))[name] == value


def test_every_documented_value_of_every_launch_parameter_survives(fake):
    samples = {'bool': ['true', 'false'], 'double': ['1', '0.5', '0.001']}
    for spec in launch_parameters():
        values = spec.choices or samples.get(spec.ros_type, ['cpu', '123', 'on', 'no'])
        for text in values:
            context, actions = _expand(fake, **{spec.name: text})
            _, typed = _node_parameters(context, _nodes(actions, fake)['keypoint_perception'])
            spec.convert(typed[spec.name])  # the node accepts it (ValueError if not)
            assert isinstance(typed[spec.name], spec.python_type), (spec.name, text)


def test_use_rviz_without_rviz2_warns_and_keeps_the_node(fake):
    context, actions = _expand(fake, use_rviz='true')
    nodes = _nodes(actions, fake)
    assert set(nodes) == {'keypoint_perception'}
    assert any('rviz2' in text for text in fake.warnings), fake.warnings


def test_rviz_gets_the_namespace_config_and_fixed_frame(fake):
    fake.packages['rviz2'] = '/opt/ros/share/rviz2'
    context, actions = _expand(fake, use_rviz='true', namespace='cam1',
                               rviz_fixed_frame='stereo_base')
    rviz = _nodes(actions, fake)['rviz2']
    node = _nodes(actions, fake)['keypoint_perception']
    assert rviz['namespace'].perform(context) == 'cam1'
    assert node['namespace'].perform(context) == 'cam1'
    arguments = [a if isinstance(a, str) else a.perform(context) for a in rviz['arguments']]
    assert arguments[arguments.index('-d') + 1] == str(fake.share / 'rviz' / 'keypoints.rviz')
    assert arguments[arguments.index('-f') + 1] == 'stereo_base'
    assert not fake.warnings


def test_fastdds_profile_is_set_unless_the_user_set_one(fake, monkeypatch):
    _, actions = _expand(fake)
    settings = [a for a in actions if isinstance(a, fake.SetEnvironmentVariable)]
    assert [(s.name, s.value) for s in settings] == [
        ('FASTDDS_DEFAULT_PROFILES_FILE',
         str(fake.share / 'config' / 'dds' / 'fastdds_profile.xml'))]
    assert actions.index(settings[0]) == 0, 'before any process starts'
    monkeypatch.setenv('FASTDDS_DEFAULT_PROFILES_FILE', '/home/user/profile.xml')
    _, actions = _expand(fake)
    assert not [a for a in actions if isinstance(a, fake.SetEnvironmentVariable)]


def test_rviz_config_displays_relative_topics():
    with open(os.path.join(ROOT, 'rviz', 'keypoints.rviz')) as f:
        config = yaml.safe_load(f)
    topics = [d['Topic']['Value'] for d in config['Visualization Manager']['Displays']
              if 'Topic' in d]
    assert topics and all(not t.startswith('/') for t in topics), \
        'relative topics follow the namespace RViz is started in'


def test_readme_lists_every_launch_argument():
    with open(README) as f:
        readme = f.read()
    section = readme[readme.index('### Launch arguments'):]
    declared = [name for name, _, _ in _launch_argument_names()] + \
        [spec.name for spec in launch_parameters()]
    missing = [name for name in declared if f'`{name}`' not in section]
    assert not missing, f'README launch-argument table lacks {missing}'


def _launch_argument_names():
    tree = ast.parse(open(LAUNCH).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'ARGUMENTS':
            return ast.literal_eval(node.value)
    raise AssertionError('ARGUMENTS not found in the launch file')


def test_real_launch_expands_typed_parameters(tmp_path):
    """With the upstream launch/launch_ros: typed values after the user's file."""
    launch = pytest.importorskip('launch')
    pytest.importorskip('launch_ros')
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    from launch_ros.actions import Node
    user = tmp_path / 'user.yaml'
    user.write_text('/**:\n  ros__parameters:\n    roi_refinement: incomplete\n')
    description = get_launch_description_from_python_launch_file(LAUNCH)
    context = launch.LaunchContext()
    context.launch_configurations.update({'params_file': str(user), 'roi_refinement': 'off',
                                          'sync_slop': '1'})
    nodes = []
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)
        elif isinstance(entity, OpaqueFunction):
            nodes = [a for a in entity.visit(context) if isinstance(a, Node)]
    (node,) = nodes
    node._perform_substitutions(context)
    paths = [path for path, _ in node._Node__expanded_parameter_arguments]
    assert paths[0] == str(user)
    with open(paths[1]) as f:
        written = yaml.safe_load(f)
    assert list(written.values())[0]['ros__parameters'] == {'roi_refinement': 'off',
                                                            'sync_slop': 1.0}
