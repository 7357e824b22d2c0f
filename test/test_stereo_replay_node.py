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
"""stereo_replay_node in this process: pairs in order, a bad file skipped, read-only rate."""

import os

import cv2
import numpy as np
import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = '113'

import rclpy  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from keypoint_perception.nodes.stereo_replay_node import StereoReplayNode  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFO = os.path.join(ROOT, 'config', 'camera_info', 'opencv_stereo_{}.yaml')


class Recorder:
    """Stands in for a publisher: keeps what is published."""

    def __init__(self):
        """Start empty."""
        self.messages = []

    def publish(self, msg):
        """Keep ``msg``."""
        self.messages.append(msg)


def _start(tmp_path, *extra):
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    node = StereoReplayNode(context=context, parameter_overrides=[
        Parameter('left_images', value=str(tmp_path / 'left*.png')),
        Parameter('right_images', value=str(tmp_path / 'right*.png')),
        Parameter('left_camera_info', value=INFO.format('left')),
        Parameter('right_camera_info', value=INFO.format('right')), *extra])
    node.pub = {topic: Recorder() for topic in node.pub}
    return node, context


@pytest.fixture
def replay(tmp_path):
    for n in (1, 3):  # pair 2's left file is not an image
        for side in ('left', 'right'):
            cv2.imwrite(str(tmp_path / f'{side}{n}.png'), np.full((480, 640), 10 * n, np.uint8))
    (tmp_path / 'left2.png').write_text('not an image')
    cv2.imwrite(str(tmp_path / 'right2.png'), np.zeros((480, 640), np.uint8))
    node, context = _start(tmp_path)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def test_pairs_in_order_and_an_unreadable_pair_is_skipped(replay):
    assert len(replay.pairs) == 3
    for _ in range(4):  # the fourth call is past the end (loop false): nothing
        replay._on_timer()
    images = replay.pub['left/image_raw'].messages
    assert [int(np.frombuffer(m.data, np.uint8)[0]) for m in images] == [10, 30]
    infos = replay.pub['right/camera_info'].messages
    assert [m.header.frame_id for m in infos] == ['right_camera_optical_frame'] * 2
    assert infos[0].header.stamp == replay.pub['right/image_raw'].messages[0].header.stamp
    assert replay.index == 3


def test_parameters_read_once_are_read_only(replay):
    for name, value in (('rate', 5.0), ('loop', True), ('left_frame_id', 'other')):
        assert not replay.set_parameters([Parameter(name, value=value)])[0].successful


def test_16_bit_and_wrongly_sized_images(tmp_path):
    """16-bit files go out as mono16; a pair whose size is not its camera_info's is skipped."""
    cv2.imwrite(str(tmp_path / 'left1.png'), np.full((480, 640), 4000, np.uint16))
    cv2.imwrite(str(tmp_path / 'right1.png'), np.full((480, 640), 4000, np.uint16))
    cv2.imwrite(str(tmp_path / 'left2.png'), np.zeros((48, 64), np.uint8))  # not 640x480
    cv2.imwrite(str(tmp_path / 'right2.png'), np.zeros((480, 640), np.uint8))
    node, context = _start(tmp_path, Parameter('rate', value=2))  # an integer rate
    try:
        node._on_timer()
        node._on_timer()
        (left,) = node.pub['left/image_raw'].messages
        assert left.encoding == 'mono16' and left.width == 640
        assert np.frombuffer(left.data, np.uint16)[0] == 4000
        assert len(node.pub['right/image_raw'].messages) == 1  # nothing of pair 2
        assert node.index == 2
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
