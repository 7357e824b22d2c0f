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
"""Install rules of the keypoint_perception ament_python package."""

from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'keypoint_perception'


def files(pattern):
    """Regular files matching ``pattern`` (symlinked folders are followed)."""
    return [f for f in glob(pattern) if os.path.isfile(f)]


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['objects/*.yaml', 'models/*.pt', 'models/*.onnx',
                                 'models/*.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', files('launch/*.launch.py')),
        ('share/' + package_name + '/config', files('config/*.yaml')),
        ('share/' + package_name + '/config/camera_info', files('config/camera_info/*.yaml')),
        ('share/' + package_name + '/config/dds', files('config/dds/*.xml')),
        ('share/' + package_name + '/rviz', files('rviz/*.rviz')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='keypoint_perception maintainers',
    maintainer_email='maintainers@keypoint-perception.dev',
    description='Stereo keypoint detection, triangulation and pose for ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'stereo_keypoint_node = keypoint_perception.nodes.stereo_keypoint_node:main',
            'stereo_replay_node = keypoint_perception.nodes.stereo_replay_node:main',
            'keypoints-demo = keypoint_perception.demo:main',
            'keypoints-export = keypoint_perception.export:main',
            'keypoints-train = keypoint_perception.training.train:main',
            'keypoints-eval = keypoint_perception.training.evaluate:main',
            'keypoints-feedback = keypoint_perception.training.feedback:main',
            'keypoints-pack = keypoint_perception.training.view_pack:main',
            'keypoints-detect = keypoint_perception.detect:main',
            'keypoints-calibrate-robot = keypoint_perception.calibrate_robot:main',
            'mono_keypoint_node = keypoint_perception.nodes.mono_keypoint_node:main',
            'robot_calibration_node = keypoint_perception.nodes.robot_calibration_node:main',
        ],
    },
)
