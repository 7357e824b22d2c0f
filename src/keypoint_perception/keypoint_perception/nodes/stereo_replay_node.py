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
"""Replay stereo image files as a ROS 2 camera pair (``stereo_replay_node``).

Publishes ``left/image_raw``, ``left/camera_info``, ``right/image_raw`` and
``right/camera_info`` with identical stamps per pair, the camera infos read
from ROS camera_info YAML files (the format camera_calibration writes).  Pairs
are taken in sorted order of two glob patterns; the node can run at a fixed
rate or be driven pair by pair through :meth:`publish_pair` (used by
``keypoints-demo``).
"""

import copy
import glob
import os
import re
from typing import List, Tuple

import cv2
from cv_bridge import CvBridge
import numpy as np
from rclpy.node import Node
from rcl_interfaces.msg import ParameterDescriptor
from sensor_msgs.msg import CameraInfo, Image

from .parameters import declare_spec
from .runner import run_node
from . import conversions
from ..core.camera import CameraModel
from ..core.parameter_table import ParameterSpec

#: The publishing rate parameter, Hz (0: the caller drives :meth:`publish_pair`).
RATE = ParameterSpec('rate', float, 'double', 0.0, 'Publishing rate in Hz (0 = driven by the '
                     'caller).', 'output', low=0.0, high=1000.0, read_only=True)


def natural_sort(paths: List[str]) -> List[str]:
    """Sort file names with embedded numbers numerically (left2 < left10)."""
    key = lambda s: [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', s)]  # noqa
    return sorted(paths, key=key)


def pair_files(left_glob: str, right_glob: str) -> List[Tuple[str, str]]:
    """Match left and right files by sorted order.

    Raises:
        FileNotFoundError: when a pattern matches nothing.
        ValueError: when the two patterns match different numbers of files.
    """
    left, right = natural_sort(glob.glob(left_glob)), natural_sort(glob.glob(right_glob))
    if not left or not right:
        raise FileNotFoundError(f'no images for {left_glob!r} / {right_glob!r}')
    if len(left) != len(right):
        raise ValueError(f'{len(left)} left but {len(right)} right images')
    return list(zip(left, right))


class StereoReplayNode(Node):
    """Publishes stereo pairs from image files with their calibration."""

    def __init__(self, **kwargs):
        """Declare parameters and publishers; start the timer when ``rate`` > 0."""
        super().__init__('stereo_replay_node', **kwargs)

        def declare(name, default, text, **kw):
            return self.declare_parameter(name, default,
                                          ParameterDescriptor(description=text, **kw)).value

        left_glob = declare('left_images', '', 'Glob of left image files.', read_only=True)
        right_glob = declare('right_images', '', 'Glob of right image files.', read_only=True)
        left_yaml = declare('left_camera_info', '', 'Left camera_info YAML file.',
                            read_only=True)
        right_yaml = declare('right_camera_info', '', 'Right camera_info YAML file.',
                             read_only=True)
        self.left_frame = declare('left_frame_id', 'left_camera_optical_frame',
                                  'frame_id of left images and camera_info.', read_only=True)
        self.right_frame = declare('right_frame_id', 'right_camera_optical_frame',
                                   'frame_id of right images and camera_info.',
                                   read_only=True)
        # dynamically typed (-p rate:=2 is YAML's integer), range checked by the spec
        rate = declare_spec(self, RATE)
        self.loop = declare('loop', False, 'Start again after the last pair.', read_only=True)
        self.pairs = pair_files(left_glob, right_glob)
        self.left_info = conversions.camera_info_msg(
            CameraModel.from_yaml(left_yaml, frame_id=self.left_frame))
        self.right_info = conversions.camera_info_msg(
            CameraModel.from_yaml(right_yaml, frame_id=self.right_frame))
        self.bridge = CvBridge()
        # reliable publishers match both reliable and best-effort (sensor-data) subscribers
        self.pub = {k: self.create_publisher(Image if 'image' in k else CameraInfo, k, 10)
                    for k in ('left/image_raw', 'left/camera_info', 'right/image_raw',
                              'right/camera_info')}
        self.index = 0
        self.get_logger().info(f'{len(self.pairs)} stereo pairs from '
                               f'{os.path.dirname(self.pairs[0][0])}')
        if rate > 0:
            self.timer = self.create_timer(1.0 / rate, self._on_timer)

    def load_pair(self, i: int):
        """Read pair ``i`` as (left, right) arrays: grey stays grey, colour becomes RGB.

        8- and 16-bit files keep their depth (published as ``mono8``/``mono16``,
        ``rgb8``/``rgb16``); an alpha channel is dropped.

        Raises:
            IOError: a file that cannot be read.
        """
        out = []
        for path in self.pairs[i]:
            img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if img is None:
                raise IOError(f'cannot read {path}')
            if img.ndim == 3:
                img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4
                                   else cv2.COLOR_BGR2RGB)
            out.append(img)
        return out

    def publish_pair(self, i: int, stamp=None, images=None):
        """Publish pair ``i`` (images optional, pre-loaded); returns the stamp used.

        Raises:
            IOError: an unreadable file.
            ValueError: an image whose size is not its camera_info's, or whose
                pixels are not 8 or 16 bit (nothing of the pair is published).
        """
        stamp = stamp or self.get_clock().now().to_msg()
        left, right = images if images is not None else self.load_pair(i)
        views = (('left', left, self.left_info, self.left_frame),
                 ('right', right, self.right_info, self.right_frame))
        for side, img, info, _ in views:  # both checked before anything is published
            if img.shape[:2] != (info.height, info.width):
                raise ValueError(f'{side} image is {img.shape[1]}x{img.shape[0]} but its '
                                 f'camera_info says {info.width}x{info.height}')
            if img.dtype not in (np.uint8, np.uint16):
                raise ValueError(f'{side} image has {img.dtype} pixels; 8 or 16 bit expected')
        for side, img, info, frame in views:
            depth = 8 if img.dtype == np.uint8 else 16
            enc = f'mono{depth}' if img.ndim == 2 else f'rgb{depth}'
            msg = self.bridge.cv2_to_imgmsg(img, encoding=enc)
            msg.header.stamp, msg.header.frame_id = stamp, frame
            info = copy.deepcopy(info)  # a message of its own: the loaded one stays as read
            info.header.stamp = stamp
            self.pub[f'{side}/image_raw'].publish(msg)
            self.pub[f'{side}/camera_info'].publish(info)
        return stamp

    def _on_timer(self):
        """Publish the next pair; an unreadable file is skipped with a warning."""
        if self.index >= len(self.pairs):
            if not self.loop:
                return
            self.index = 0
        try:
            self.publish_pair(self.index)
        except (IOError, ValueError) as e:
            self.get_logger().warning(f'pair {self.index} skipped: {e}')
        self.index += 1


def main(args=None):
    """Run the node until shutdown (see :func:`keypoint_perception.nodes.runner.run_node`)."""
    return run_node(StereoReplayNode, args, 'stereo_replay_node')


if __name__ == '__main__':
    main()
