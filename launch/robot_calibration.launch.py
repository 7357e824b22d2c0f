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
"""Launch markerless camera-to-robot calibration (mono or stereo).

    # one RGB camera: the mono keypoint node + the calibration node
    ros2 launch keypoint_perception robot_calibration.launch.py mode:=mono model:=panda \
        image:=/camera/color/image_raw camera_info:=/camera/color/camera_info

    # a stereo camera: start stereo_keypoints.launch.py model:=panda in the same
    # namespace; this launches the calibration node on its keypoints_2d (both views)
    # and the left/right camera_info (stereo_fit:=rigid: on its keypoints_3d)
    ros2 launch keypoint_perception robot_calibration.launch.py mode:=stereo

The robot's URDF comes from ``robot_description`` (the topic robot_state_publisher
latches) and its joint angles from ``joint_states``.  Output: TF
``base_frame`` -> ``camera_frame`` (on ``/tf_static`` unless ``static_tf:=false``)
and ``camera_pose``
(PoseWithCovarianceStamped) in the node's namespace; see
docs/robot_calibration.md.  Calibration-node parameters left empty here are
not passed (the node's defaults apply); the others are typed with
``ParameterValue(..., value_type=...)`` so that YAML never turns them into
another type.
"""

from keypoint_perception.core.config import RobotCalibrationConfig, table_specs
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'keypoint_perception'

#: Shipped robot models named after their object class (``model:=NAME``).
ROBOT_CLASSES = ('panda', 'kuka_iiwa')

#: (name, default, description) of the launch arguments.
ARGUMENTS = [
    ('namespace', '', 'Namespace of the nodes and their topics.'),
    ('mode', 'mono', '"mono" (starts the mono keypoint node on image + camera_info) or '
     '"stereo" (uses keypoints_2d and left/right camera_info, or keypoints_3d with '
     'stereo_fit:=rigid, of a running stereo keypoint node).'),
    ('model', 'panda', 'Mono: model of the mono keypoint node (shipped name or checkpoint); '
     'a shipped robot model (panda, kuka_iiwa) also sets object_class when that is not '
     'given, a checkpoint or ONNX path needs object_class.'),
    ('image', 'image', 'Mono: image topic (raw, or rectified with input_rectified:=true).'),
    ('camera_info', 'camera_info', 'Mono: CameraInfo topic of the image.'),
    ('left_camera_info', 'left/camera_info', 'Stereo (reprojection fit): CameraInfo of the '
     'left view, as the stereo keypoint node reads it.'),
    ('right_camera_info', 'right/camera_info', 'Stereo (reprojection fit): CameraInfo of the '
     'right view.'),
    ('joint_states', 'joint_states', 'JointState topic of the robot.'),
    ('robot_description', 'robot_description', 'Topic of the URDF (robot_state_publisher).'),
]

#: Calibration-node parameters exposed as arguments (type and description from the node's
#: table, RobotCalibrationConfig). Empty (the default) = not passed.
NODE_ARGUMENTS = ('object_class', 'stereo_fit', 'input_rectified', 'inlier_threshold_px',
                  'inlier_threshold_m', 'window_size', 'base_frame', 'camera_frame',
                  'static_tf')


def calibration_parameters(context) -> dict:
    """Return the calibration node's parameters: the mode and the arguments set.

    In mono mode without ``object_class``, a ``model`` that names a robot class
    (``kuka_iiwa``) is the class too: the node would otherwise look for its
    default class (``panda``) in the keypoints of another robot's model.
    """
    mode = LaunchConfiguration('mode').perform(context)
    params = {'mode': mode}
    specs = table_specs(RobotCalibrationConfig)
    for name in NODE_ARGUMENTS:
        if LaunchConfiguration(name).perform(context) != '':
            params[name] = ParameterValue(LaunchConfiguration(name),
                                          value_type=specs[name].python_type)
    model = LaunchConfiguration('model').perform(context)
    if mode == 'mono' and 'object_class' not in params and model in ROBOT_CLASSES:
        params['object_class'] = model
    return params


def launch_setup(context, *args, **kwargs):
    """Actions of the launch, built once the arguments are known (OpaqueFunction)."""
    namespace = LaunchConfiguration('namespace')
    mode = LaunchConfiguration('mode').perform(context)
    if mode not in ('mono', 'stereo'):
        raise ValueError(f'mode must be mono or stereo, got {mode!r}')
    actions = []
    remappings = [('joint_states', LaunchConfiguration('joint_states')),
                  ('robot_description', LaunchConfiguration('robot_description'))]
    if mode == 'mono':
        camera = [('image', LaunchConfiguration('image')),
                  ('camera_info', LaunchConfiguration('camera_info'))]
        actions.append(Node(
            package=PACKAGE, executable='mono_keypoint_node', name='mono_keypoint_node',
            namespace=namespace, output='screen',
            parameters=[{'model': ParameterValue(LaunchConfiguration('model'),
                                                 value_type=str)}],
            remappings=camera))
        remappings += camera[1:]
    else:
        remappings += [('left/camera_info', LaunchConfiguration('left_camera_info')),
                       ('right/camera_info', LaunchConfiguration('right_camera_info'))]
    actions.append(Node(
        package=PACKAGE, executable='robot_calibration_node', name='robot_calibration_node',
        namespace=namespace, output='screen', parameters=[calibration_parameters(context)],
        remappings=remappings))
    return actions


def generate_launch_description():
    """Declare the arguments; the nodes follow from their values (launch_setup)."""
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in ARGUMENTS]
    specs = table_specs(RobotCalibrationConfig)
    args += [DeclareLaunchArgument(name, default_value='', description=(
        f'{specs[name].description} Empty = the node\'s default '
        f'({"mode-dependent" if name == "input_rectified" else specs[name].default!r}).'))
        for name in NODE_ARGUMENTS]
    return LaunchDescription(args + [OpaqueFunction(function=launch_setup)])
