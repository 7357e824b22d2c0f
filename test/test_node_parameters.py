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
"""The perception node's parameters: declared from PipelineConfig, parsed as ROS parses them.

Issue 16 item 1: ``-p roi_refinement:=off`` (YAML: the boolean false) and
``-p sync_slop:=1`` (YAML: an integer) killed the node at start-up.  Here
the arguments go through rcl's own parser (``rclpy.init(args=...)``, a
parameter YAML file) into the node, in this process (localhost only, own
domain id), and a bad value must stop the node's executable with one line.
"""

import os
import subprocess

import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = '112'

import rclpy  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from keypoint_perception.core.config import (parameter_specs, PipelineConfig,  # noqa: E402
                                             RobotCalibrationConfig)
from keypoint_perception.core.parameter_table import table_specs  # noqa: E402
from keypoint_perception.nodes.mono_keypoint_node import MonoKeypointNode  # noqa: E402
from keypoint_perception.nodes.robot_calibration_node import RobotCalibrationNode  # noqa: E402
from keypoint_perception.nodes.stereo_keypoint_node import StereoKeypointNode  # noqa: E402


def _node(ros_args, node_class=StereoKeypointNode, **kwargs):
    """Start rclpy with ``--ros-args`` ``ros_args`` in a context of its own; build the node."""
    context = rclpy.Context()
    rclpy.init(args=['test', '--ros-args', *ros_args], context=context)
    try:
        return node_class(context=context, **kwargs), context
    except BaseException:
        rclpy.shutdown(context=context)
        raise


@pytest.fixture
def make_node():
    made = []

    def make(ros_args=(), node_class=StereoKeypointNode, **kwargs):
        node, context = _node(list(ros_args), node_class, **kwargs)
        made.append((node, context))
        return node

    yield make
    for node, context in made:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_yaml_spellings_on_the_command_line_start_the_node(make_node):
    node = make_node(['-p', 'roi_refinement:=off', '-p', 'sync_slop:=1',
                      '-p', 'min_depth:=0', '-p', 'instance_id:=7', '-p', 'roi_scale:=2'])
    assert node.config.roi_refinement == 'off' and node.pipeline.config.roi_refinement == 'off'
    assert node.config.sync_slop == 1.0 and node.config.min_depth == 0.0
    assert node.config.instance_id == '7' and node.config.roi_scale == 2.0


def test_parameter_file_with_yaml_spellings(make_node, tmp_path):
    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters:\n    roi_refinement: off\n    sync_slop: 1\n'
                    '    approximate_sync: true\n    completion_radius: 30\n')
    node = make_node(['--params-file', str(path)])
    assert node.config.roi_refinement == 'off' and node.config.approximate_sync
    assert node.config.sync_slop == 1.0 and node.config.completion_radius == 30.0


def test_parameter_overrides_with_integers_for_doubles(make_node):
    node = make_node(parameter_overrides=[Parameter('sync_slop', value=1),
                                          Parameter('marker_lifetime', value=2),
                                          Parameter('roi_refinement', value=False)])
    assert node.config == PipelineConfig(sync_slop=1.0, marker_lifetime=2.0,
                                         roi_refinement='off')


def test_parameters_are_declared_from_the_table_with_descriptors(make_node):
    node = make_node()
    assert node.config == PipelineConfig()
    for spec in parameter_specs():
        desc = node.describe_parameter(spec.name)
        assert desc.description == spec.description and desc.read_only == spec.read_only
        if spec.low is not None and spec.python_type is float:
            rng = desc.floating_point_range[0]
            assert (rng.from_value, rng.to_value) == (spec.low, spec.high)
        if spec.low is not None and spec.python_type is int:
            rng = desc.integer_range[0]
            assert (rng.from_value, rng.to_value) == (spec.low, spec.high)
        if spec.choices:
            assert ', '.join(spec.choices) in desc.additional_constraints
    assert not hasattr(node, '_apply_parameters')  # nothing is re-read per frame


def test_set_parameters_swaps_the_whole_config_or_refuses_with_a_reason(make_node):
    node = make_node()
    before, pipeline = node.config, node.pipeline
    bad = node.set_parameters_atomically([Parameter('min_confidence', value=0.5),
                                          Parameter('roi_refinement', value='zoom')])
    assert not bad.successful and 'roi_refinement' in bad.reason
    assert 'off, incomplete, always' in bad.reason
    assert node.config is before and node.pipeline is pipeline  # nothing half-applied
    assert node.get_parameter('min_confidence').value == 0.3
    ok = node.set_parameters_atomically([Parameter('min_confidence', value=0.5),
                                         Parameter('roi_refinement', value=False),
                                         Parameter('completion_radius', value=25)])
    assert ok.successful
    assert node.config == before.validated(min_confidence=0.5, roi_refinement='off',
                                           completion_radius=25.0)
    assert node.pipeline is not pipeline and node.pipeline.config is node.config
    assert before == PipelineConfig()  # the old config is unchanged
    refused = node.set_parameters([Parameter('tf_prefix', value='/board')])[0]
    assert not refused.successful and 'tf_prefix' in refused.reason
    # restart-only parameters are read-only
    assert not node.set_parameters([Parameter('model', value='other')])[0].successful
    assert not node.set_parameters([Parameter('sync_slop', value=0.5)])[0].successful


def test_mono_node_applies_changed_parameters(make_node):
    node = make_node(node_class=MonoKeypointNode)
    assert node.config == PipelineConfig()  # the mono subset with the table's defaults
    assert not node.has_parameter('min_confidence')  # a stereo-only parameter
    refused = node.set_parameters([Parameter('roi_scale', value=0.5)])[0]
    assert not refused.successful and 'roi_scale' in refused.reason
    assert node.set_parameters([Parameter('peak_threshold', value=0.2),
                                Parameter('roi_refinement', value='always')])[0].successful
    assert node.config == PipelineConfig(peak_threshold=0.2, roi_refinement='always')
    assert not node.set_parameters([Parameter('model', value='panda')])[0].successful


@pytest.mark.parametrize('mode, rectified', [('stereo', True), ('mono', False)])
def test_calibration_node_parameters_come_from_its_table(make_node, mode, rectified):
    node = make_node(['-p', f'mode:={mode}', '-p', 'window_size:=5'],
                     node_class=RobotCalibrationNode)
    # input_rectified defaults to what the keypoints' source node reads in that mode
    assert node.config == RobotCalibrationConfig(mode=mode, input_rectified=rectified,
                                                 window_size=5)
    names = node.list_parameters([], 0).names
    for spec in table_specs(RobotCalibrationConfig).values():
        assert spec.name in names
        desc = node.describe_parameter(spec.name)
        assert desc.description == spec.description and desc.read_only == spec.read_only
    before = node.config
    # doubles are dynamically typed (YAML may give 4 for 4.0): the table checks the type
    bad = node.set_parameters_atomically([Parameter('window_size', value=10),
                                          Parameter('inlier_threshold_m', value='far')])
    assert not bad.successful and 'inlier_threshold_m' in bad.reason
    assert 'double in [0.0001, 1]' in bad.reason
    assert node.config is before
    assert not node.set_parameters([Parameter('window_size', value=0)])[0].successful
    assert node.set_parameters([Parameter('inlier_threshold_px', value=4)])[0].successful
    assert node.config == before.validated(inlier_threshold_px=4.0)
    assert not node.set_parameters([Parameter('mode', value='stereo')])[0].successful
    assert not node.set_parameters([Parameter('input_rectified', value=True)])[0].successful
    # rclpy's own parameters pass through the callback
    assert node.set_parameters([Parameter('use_sim_time', value=True)])[0].successful
    # min_frames above window_size would never publish
    refused = node.set_parameters([Parameter('min_frames', value=6)])[0]
    assert not refused.successful and 'window_size (5)' in refused.reason
    # frame names tf2 would refuse
    refused = node.set_parameters([Parameter('base_frame', value='/world')])[0]
    assert not refused.successful and 'base_frame' in refused.reason
    assert node.set_parameters([Parameter('base_frame', value='world')])[0].successful
    refused = node.set_parameters([Parameter('camera_frame', value='world')])[0]
    assert not refused.successful and 'to itself' in refused.reason
    assert node.set_parameters([Parameter('base_frame', value='')])[0].successful
    # estimates made with another instance or inlier threshold leave the window
    node.window.extend(['estimate'] * 3)
    assert node.set_parameters([Parameter('window_size', value=4)])[0].successful
    assert len(node.window) == 3
    assert node.set_parameters([Parameter('instance_id', value='1')])[0].successful
    assert len(node.window) == 0


@pytest.mark.parametrize('args, words', [
    (['-p', 'roi_refinement:=on'], ['roi_refinement', 'off, incomplete, always']),
    (['-p', 'sync_slop:=5'], ['sync_slop', '[0.0001, 1]']),
    (['-p', "tf_prefix:='a b//c/'"], ['tf_prefix']),
    (['-p', 'model:=no_such_model'], ['no_such_model'])])
def test_bad_values_stop_the_executable_with_one_line(args, words):
    from keypoint_perception.demo import node_command
    proc = subprocess.run(node_command('stereo_keypoint_node') + ['--ros-args', *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'Traceback' not in proc.stderr, proc.stderr
    assert lines[0].startswith('stereo_keypoint_node: cannot start:')
    for word in words:
        assert word in lines[0], lines[0]
