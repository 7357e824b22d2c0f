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
Minimal stand-in for the ROS 2 ``tf2_ros`` Python package (broadcasters only).

Only for the PyPI-wheel ROS 2 environment, where no ``tf2_ros`` wheel exists.
It provides :class:`TransformBroadcaster` and
:class:`StaticTransformBroadcaster` with upstream's signatures, topics and
default QoS. Buffers and listeners are not provided. On a real ROS 2
installation the real package is always present and found first.
"""

from .static_transform_broadcaster import StaticTransformBroadcaster
from .transform_broadcaster import TransformBroadcaster

__all__ = ['StaticTransformBroadcaster', 'TransformBroadcaster']
