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
"""Publisher of dynamic transforms on ``/tf`` (stand-in for upstream tf2_ros)."""

from rclpy.qos import QoSProfile
from tf2_msgs.msg import TFMessage


def as_transform_list(transform):
    """Return ``transform`` (one TransformStamped or an iterable of them) as a list."""
    if isinstance(transform, list):
        return transform
    if hasattr(transform, '__iter__'):
        return list(transform)
    return [transform]


class TransformBroadcaster:
    """Send transforms on ``/tf`` as ``tf2_msgs/msg/TFMessage``."""

    def __init__(self, node, qos=None):
        """
        Create the ``/tf`` publisher on ``node``.

        :param node: the rclpy node that owns the publisher.
        :param qos: a QoSProfile or a history depth; default keep-last depth 100,
            reliable, volatile (as upstream).
        """
        if qos is None:
            qos = QoSProfile(depth=100)
        self.pub_tf = node.create_publisher(TFMessage, '/tf', qos)

    def sendTransform(self, transform):
        """Publish one ``geometry_msgs/TransformStamped`` or a list of them in one message."""
        self.pub_tf.publish(TFMessage(transforms=as_transform_list(transform)))
