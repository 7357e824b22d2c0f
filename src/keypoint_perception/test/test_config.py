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
"""PipelineConfig: the one parameter table, its validation and the files checked against it."""

import dataclasses
import os

import pytest
import yaml

from keypoint_perception.core.config import (launch_parameters, parameter_spec, parameter_specs,
                                             PipelineConfig)

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The node's effective defaults before the table existed (its declare_parameter
#: calls): the table must keep them so that no result changes.
NODE_DEFAULTS = {
    'model': 'checkerboard_lite', 'device': 'cpu', 'backend': 'auto', 'num_threads': 0,
    'test_time_augmentation': 'auto', 'approximate_sync': False, 'sync_slop': 0.01,
    'queue_size': 5, 'reliable_qos': False, 'min_confidence': 0.3, 'peak_threshold': 0.1,
    'max_reprojection_error': 4.0, 'min_depth': 0.05, 'input_rectified': True,
    'template_check': True, 'template_completion': True, 'completion_min_belief': 0.05,
    'completion_radius': 20.0, 'completion_search': 'stereo', 'localization_sigma': 0.0,
    'roi_refinement': 'always', 'roi_scale': 1.75, 'roi_augmentation': True,
    'refine_triangulation': True,
    'fit_pose': True, 'publish_tf': True, 'tf_prefix': '', 'instance_id': '0',
    'marker_scale': 0.01, 'marker_lifetime': 0.5, 'debug_heatmaps': True}

#: Documented example values of the free-text parameters.
DOCUMENTED_TEXT = {'model': ['checkerboard_lite', '/data/models/board.pt',
                             '/data/models/board.onnx'],
                   'device': ['cpu', 'cuda', 'cuda:0'],
                   'tf_prefix': ['', 'board', 'robot/board_1'],
                   'instance_id': ['0', '12', 'left_board']}


def test_defaults_are_the_nodes():
    assert PipelineConfig().to_dict() == NODE_DEFAULTS
    for name, value in NODE_DEFAULTS.items():
        assert type(getattr(PipelineConfig(), name)) is type(value), name


def test_every_parameter_is_described_and_typed():
    for spec in parameter_specs():
        assert spec.description.endswith(('.', ')')) and len(spec.description) > 15, spec.name
        assert spec.ros_type in ('bool', 'integer', 'double', 'string')
        assert isinstance(spec.default, spec.python_type)
        if spec.low is not None:
            assert spec.low <= spec.default <= spec.high, spec.name
        if spec.choices:
            assert spec.default in spec.choices
    # restart-only parameters
    assert {s.name for s in parameter_specs() if s.read_only} == {
        'model', 'device', 'backend', 'num_threads', 'test_time_augmentation',
        'approximate_sync', 'sync_slop', 'queue_size', 'reliable_qos'}


@pytest.mark.parametrize('changes, words', [
    ({'roi_refinement': 'zoom'}, ['roi_refinement', 'off, incomplete, always']),
    ({'roi_refinement': True}, ['roi_refinement', 'booleans', 'off, incomplete, always']),
    ({'completion_search': 'both'}, ['completion_search', 'views, stereo']),
    ({'test_time_augmentation': 'flip'}, ['test_time_augmentation', 'auto, none, rot180']),
    ({'sync_slop': 2.0}, ['sync_slop', '[0.0001, 1]']),
    ({'sync_slop': 0.0}, ['sync_slop', '[0.0001, 1]']),
    ({'sync_slop': float('nan')}, ['sync_slop']),
    ({'sync_slop': '0.1'}, ['sync_slop', 'double']),
    ({'queue_size': 2.5}, ['queue_size', 'integer', '[1, 100]']),
    ({'queue_size': 0}, ['queue_size', '[1, 100]']),
    ({'fit_pose': 'yes'}, ['fit_pose', 'bool']),
    ({'fit_pose': 1}, ['fit_pose', 'bool']),
    ({'tf_prefix': '/board'}, ['tf_prefix', 'not starting']),
    ({'instance_id': 'x/'}, ['instance_id', 'TF frame name']),
    ({'instance_id': 'a b'}, ['instance_id', 'TF frame name']),
    ({'tf_prefix': 'a b//c/'}, ['tf_prefix', 'single "/"']),
    ({'instance_id': 1.5}, ['instance_id', 'string']),
    ({'no_such_parameter': 1}, ['unknown', 'no_such_parameter'])])
def test_bad_values_are_refused_naming_the_parameter_and_the_allowed_values(changes, words):
    config = PipelineConfig()
    with pytest.raises(ValueError) as err:
        config.validated(**changes)
    for word in words:
        assert word in str(err.value)
    assert config == PipelineConfig()  # unchanged


def test_validated_returns_a_new_frozen_config():
    config = PipelineConfig()
    changed = config.validated(min_confidence=0.5, tf_prefix='robot/board_1')
    assert changed.min_confidence == 0.5 and changed.tf_prefix == 'robot/board_1'
    assert config.min_confidence == 0.3
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.min_confidence = 0.1
    with pytest.raises(ValueError, match='roi_scale'):
        PipelineConfig(roi_scale=0.5)


@pytest.mark.parametrize('spec', parameter_specs(), ids=lambda s: s.name)
def test_every_documented_value_survives_yaml_parsing(spec):
    """Issue 16 item 1: values given as ``-p name:=value`` or in YAML are parsed as YAML.

    ``off`` becomes the boolean false and ``1`` an integer; each
    documented value of each parameter must still be accepted and mean
    what it says.
    """
    if spec.choices:
        values = list(spec.choices)
    elif spec.python_type is float:
        values = [spec.low, spec.high, spec.default] + (
            [int(spec.high)] if spec.low <= int(spec.high) else [])
    elif spec.python_type is int:
        values = [spec.low, spec.high, spec.default]
    elif spec.python_type is bool:
        values = [True, False]
    else:
        values = DOCUMENTED_TEXT[spec.name]
    for value in values:
        text = value if isinstance(value, str) else yaml.safe_dump(value).split('\n')[0]
        parsed = yaml.safe_load(f'{spec.name}: {text}')[spec.name]
        if parsed is None:  # an empty string; ROS needs it quoted
            parsed = yaml.safe_load(f"{spec.name}: ''")[spec.name]
        converted = PipelineConfig().validated(**{spec.name: parsed})
        expected = value if spec.python_type is not float else float(value)
        assert getattr(converted, spec.name) == expected, (spec.name, text, parsed)


def test_yaml_spellings_of_off_and_integers():
    config = PipelineConfig.from_mapping(yaml.safe_load(
        'roi_refinement: off\nsync_slop: 1\nmin_depth: 0\ninstance_id: 7\nroi_scale: 2'))
    assert config.roi_refinement == 'off'
    assert config.sync_slop == 1.0 and isinstance(config.sync_slop, float)
    assert config.min_depth == 0.0 and isinstance(config.min_depth, float)
    assert config.instance_id == '7' and config.roi_scale == 2.0
    # the YAML spelling of "on" has no meaning for roi_refinement
    with pytest.raises(ValueError, match='roi_refinement'):
        PipelineConfig.from_mapping(yaml.safe_load('roi_refinement: on'))


def test_parameter_file_sets_exactly_the_tables_parameters_with_its_defaults():
    with open(os.path.join(PACKAGE_DIR, 'config', 'stereo_keypoints.yaml')) as f:
        params = yaml.safe_load(f)['/**']['ros__parameters']
    assert list(params) == [s.name for s in parameter_specs()]
    for spec in parameter_specs():
        assert isinstance(params[spec.name], spec.python_type), spec.name
        assert params[spec.name] == spec.default, spec.name


def test_launch_parameters_are_typed_entries_of_the_table():
    names = [s.name for s in launch_parameters()]
    assert names == ['model', 'device', 'backend', 'test_time_augmentation',
                     'approximate_sync', 'sync_slop', 'input_rectified', 'roi_refinement']
    assert {s.name: s.ros_type for s in launch_parameters()}['sync_slop'] == 'double'
    assert parameter_spec('roi_refinement').dynamic_typing
    assert not parameter_spec('fit_pose').dynamic_typing
