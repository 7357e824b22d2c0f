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
"""Latched publisher of static transforms on ``/tf_static`` (stand-in for upstream)."""

from rclpy.qos import DurabilityPolicy
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from .transform_broadcaster import as_transform_list


class StaticTransformBroadcaster:
    """
    Send static transforms on ``/tf_static`` with a latched (transient local) QoS.

    Like upstream's Python broadcaster, it accumulates transforms by
    ``child_frame_id`` and republishes the whole set on every send, so a late
    subscriber receives every static frame sent so far. As upstream's Python
    version does, a transform whose ``child_frame_id`` was already sent is
    ignored: a static frame keeps the first pose it was given (use ``/tf``
    for frames that can move).
    """

    def __init__(self, node, qos=None):
        """
        Create the ``/tf_static`` publisher on ``node``.

        :param node: the rclpy node that owns the publisher.
        :param qos: a QoSProfile or a history depth; default keep-last depth 1,
            reliable, transient local (as upstream).
        """
        if qos is None:
            qos = QoSProfile(
                depth=1,
                history=HistoryPolicy.KEEP_LAST,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_tf = node.create_publisher(TFMessage, '/tf_static', qos)
        self.net_message = TFMessage()
        self._child_frame_ids = set()

    def sendTransform(self, transform):
        """Add new child frames from one TransformStamped or a list and publish all."""
        for t_in in as_transform_list(transform):
            if t_in.child_frame_id not in self._child_frame_ids:
                self._child_frame_ids.add(t_in.child_frame_id)
                self.net_message.transforms.append(t_in)
        self.pub_tf.publish(self.net_message)
