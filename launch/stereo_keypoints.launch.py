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
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

#: (name, default, description) of every launch argument.
ARGUMENTS = [
    ('namespace', '', 'Namespace of the node and its output topics.'),
    ('params_file', PathJoinSubstitution([FindPackageShare('keypoint_perception'), 'config',
                                          'stereo_keypoints.yaml']),
     'YAML file with the node parameters.'),
    ('model', 'checkerboard_lite', 'Shipped model name or checkpoint path.'),
    ('device', 'cpu', 'Torch device for the network, e.g. cpu or cuda:0.'),
    ('test_time_augmentation', 'auto',
     'none, rot180 (mean with the 180 degree rotated image: twice the network time) '
     'or auto (what the checkpoint was validated with).'),
    ('roi_refinement', 'always',
     'Second, zoomed look at the object for small or far objects: off, incomplete '
     '(only when keypoints are missing from 3D) or always (skipped when the object '
     'fills most of the image).'),
    ('approximate_sync', 'false',
     'Use approximate time sync (cameras without hardware trigger).'),
    ('sync_slop', '0.01', 'Approximate sync tolerance in seconds.'),
    ('left_image', 'left/image_rect', 'Left image topic (rectified or raw).'),
    ('left_camera_info', 'left/camera_info', 'Left CameraInfo topic.'),
    ('right_image', 'right/image_rect', 'Right image topic (rectified or raw).'),
    ('right_camera_info', 'right/camera_info', 'Right CameraInfo topic.'),
    ('use_rviz', 'false', 'Start RViz with the keypoint display configuration.'),
]


def generate_launch_description():
    """Declare the arguments and the node."""
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in ARGUMENTS]
    cfg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    node = Node(
        package='keypoint_perception',
        executable='stereo_keypoint_node',
        name='stereo_keypoint_node',
        namespace=cfg['namespace'],
        output='screen',
        parameters=[cfg['params_file'], {
            'model': cfg['model'], 'device': cfg['device'],
            'test_time_augmentation': cfg['test_time_augmentation'],
            'roi_refinement': cfg['roi_refinement'],
            'approximate_sync': cfg['approximate_sync'], 'sync_slop': cfg['sync_slop']}],
        remappings=[('left/image_rect', cfg['left_image']),
                    ('left/camera_info', cfg['left_camera_info']),
                    ('right/image_rect', cfg['right_image']),
                    ('right/camera_info', cfg['right_camera_info'])])
    rviz = Node(
        package='rviz2', executable='rviz2', name='rviz2', output='screen',
        arguments=['-d', PathJoinSubstitution([FindPackageShare('keypoint_perception'), 'rviz',
                                               'keypoints.rviz'])],
        condition=IfCondition(cfg['use_rviz']))
    return LaunchDescription(args + [node, rviz])
