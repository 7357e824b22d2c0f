# Copyright 2026 The keypoint_perception authors
# Licensed under the Apache License, Version 2.0
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
