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
"""Launch the stereo keypoint node (and optionally RViz).

    ros2 launch keypoint_perception stereo_keypoints.launch.py \
        left_image:=/stereo/left/image_rect right_image:=/stereo/right/image_rect \
        left_camera_info:=/stereo/left/camera_info right_camera_info:=/stereo/right/camera_info

Inputs are rectified or raw images with their CameraInfo; outputs are
``keypoints_2d``, ``keypoints_3d``, ``keypoint_markers``, ``debug/image`` and TF,
in the node's namespace.

Node parameters come from ``params_file`` (default: the installed
``config/stereo_keypoints.yaml``), then from the node-parameter arguments given
on the command line (:data:`NODE_ARGUMENTS`, taken from
``keypoint_perception.core.config``): an argument left empty is not passed, so
it never overrides the user's file.  Each value is typed with
``ParameterValue(..., value_type=...)``: ``roi_refinement:=off`` stays the
string ``'off'`` and ``sync_slop:=1`` becomes the double 1.0 instead of
YAML's boolean and integer.

Colour images need the shipped Fast DDS profile (``config/dds``): it is set
in ``FASTDDS_DEFAULT_PROFILES_FILE`` for the launched processes unless that
variable is already set.  RViz starts only when ``use_rviz`` is true and the
``rviz2`` package is installed (otherwise a warning), in the node's namespace,
with ``rviz_fixed_frame`` as its Fixed Frame.
"""

import os

from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
from keypoint_perception.core.config import launch_parameters
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
import launch.logging
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'keypoint_perception'

#: Node parameters exposed as launch arguments (``ParameterSpec`` of
#: keypoint_perception.core.config: name, python_type, default, description).
NODE_ARGUMENTS = launch_parameters()

#: (name, default, description) of the launch arguments that are not node
#: parameters.  ``params_file`` '' = the installed config/stereo_keypoints.yaml.
ARGUMENTS = [
    ('namespace', '', 'Namespace of the node, its output topics and RViz.'),
    ('params_file', '', 'YAML file with the node parameters; empty = the installed '
     'config/stereo_keypoints.yaml. Node-parameter arguments given on the command line '
     'override it; those left empty do not.'),
    ('left_image', 'left/image_rect', 'Left image topic (rectified or raw).'),
    ('left_camera_info', 'left/camera_info', 'Left CameraInfo topic.'),
    ('right_image', 'right/image_rect', 'Right image topic (rectified or raw).'),
    ('right_camera_info', 'right/camera_info', 'Right CameraInfo topic.'),
    ('use_rviz', 'false', 'Start RViz with the keypoint display configuration (needs the '
     'rviz2 package; without it a warning is logged and the node runs alone).'),
    ('rviz_fixed_frame', 'left_camera_optical_frame', 'Fixed Frame of RViz: the left '
     'camera\'s optical frame (frame_id of the left CameraInfo).'),
]

#: Fast DDS profile for colour images, relative to the package's share folder.
FASTDDS_PROFILE = os.path.join('config', 'dds', 'fastdds_profile.xml')


def node_argument_description(spec) -> str:
    """Describe a node-parameter launch argument: the node's text, default and values."""
    return (f'{spec.description} Node default: {spec.default!r}; {spec.allowed()}. '
            'Empty (the default) = not set here: the value of params_file is used.')


def node_parameters(context, share: str) -> list:
    """Parameters of the node: the parameter file, then the arguments set on the command line.

    Args:
        context: the launch context (launch configurations resolved in it).
        share: share folder of keypoint_perception (default parameter file).

    Returns:
        ``[params_file]`` or ``[params_file, {name: ParameterValue}]`` with only
        the node-parameter arguments whose value is not empty, each typed
        with the parameter's ``python_type``.
    """
    params_file = LaunchConfiguration('params_file').perform(context) or os.path.join(
        share, 'config', 'stereo_keypoints.yaml')
    overrides = {}
    for spec in NODE_ARGUMENTS:
        if LaunchConfiguration(spec.name).perform(context) != '':
            overrides[spec.name] = ParameterValue(LaunchConfiguration(spec.name),
                                                  value_type=spec.python_type)
    return [params_file, overrides] if overrides else [params_file]


def _environment(context):
    """Environment of the launch: ``context.environment`` (launch >= 1.0) or ``os.environ``."""
    return getattr(context, 'environment', os.environ)


def launch_setup(context, *args, **kwargs):
    """Actions of the launch, built once the arguments are known (OpaqueFunction)."""
    logger = launch.logging.get_logger('stereo_keypoints.launch')
    share = get_package_share_directory(PACKAGE)
    actions = []
    profile = os.path.join(share, FASTDDS_PROFILE)
    if not _environment(context).get('FASTDDS_DEFAULT_PROFILES_FILE') and \
            os.path.isfile(profile):
        actions.append(SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', profile))
    namespace = LaunchConfiguration('namespace')
    actions.append(Node(
        package=PACKAGE,
        executable='stereo_keypoint_node',
        name='stereo_keypoint_node',
        namespace=namespace,
        output='screen',
        parameters=node_parameters(context, share),
        remappings=[('left/image_rect', LaunchConfiguration('left_image')),
                    ('left/camera_info', LaunchConfiguration('left_camera_info')),
                    ('right/image_rect', LaunchConfiguration('right_image')),
                    ('right/camera_info', LaunchConfiguration('right_camera_info'))]))
    if IfCondition(LaunchConfiguration('use_rviz')).evaluate(context):
        try:
            get_package_share_directory('rviz2')
        except PackageNotFoundError:
            logger.warning('use_rviz is true but the rviz2 package is not installed: '
                           'starting the keypoint node without RViz')
        else:
            actions.append(Node(
                package='rviz2', executable='rviz2', name='rviz2', namespace=namespace,
                output='screen',
                arguments=['-d', os.path.join(share, 'rviz', 'keypoints.rviz'),
                           '-f', LaunchConfiguration('rviz_fixed_frame')]))
    return actions


def generate_launch_description():
    """Declare the arguments; the node and RViz follow from their values (launch_setup)."""
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in ARGUMENTS]
    args += [DeclareLaunchArgument(spec.name, default_value='',
                                   description=node_argument_description(spec))
             for spec in NODE_ARGUMENTS]
    return LaunchDescription(args + [OpaqueFunction(function=launch_setup)])
