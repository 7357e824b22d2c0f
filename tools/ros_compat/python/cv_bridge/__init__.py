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
"""
Minimal pure-Python stand-in for the ROS 2 ``cv_bridge`` package.

Only for the PyPI-wheel ROS 2 environment, where no ``cv_bridge`` wheel
exists. :class:`CvBridge` converts between ``sensor_msgs/msg/Image`` and
NumPy/OpenCV arrays with upstream's signatures and conversion rules
(the colour conversions and 8/16-bit scaling of upstream's ``cvtColor``).
On a real ROS 2 installation the real package is always present and found
first.
"""

from .core import CvBridge, CvBridgeError, get_cv_type

__all__ = ['CvBridge', 'CvBridgeError', 'get_cv_type']
