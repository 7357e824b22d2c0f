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
"""Install rules of the sim_datagen ament_python package."""

from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'sim_datagen'


def files(pattern):
    """Regular files matching ``pattern``."""
    return [f for f in glob(pattern) if os.path.isfile(f)]


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', files('config/*.yaml')),
        ('share/' + package_name + '/config/base', files('config/base/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='keypoint_perception maintainers',
    maintainer_email='maintainers@keypoint-perception.dev',
    description='Domain-randomized synthetic stereo keypoint data with PyBullet.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim-datagen = sim_datagen.cli:main',
            'sim_stream_node = sim_datagen.nodes.stream_node:main',
        ],
    },
)
