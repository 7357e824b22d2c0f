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
"""Drive a ``stereo_keypoint_node`` in a subprocess over real DDS.

Shared by the node fault tests (test/test_node_faults.py), the fuzz test and
benchmark (test/test_fuzz.py, tools/benchmark_fuzz.py) and the soak
(tools/soak.py).  DDS traffic stays on this machine
(``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) in the caller's domain id; the
harness uses an rclpy context of its own, so it does not disturb other rclpy
users of the same process.

Valid input is a synthetic, rectified stereo pair: a textured plane seen by
two cameras 0.1 m apart (:func:`synthetic_rig`, :func:`synthetic_pair`),
``mono8`` so that messages stay small (no DDS fragmentation stalls).
"""

import os
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Tuple

from builtin_interfaces.msg import Time
from keypoint_msgs.msg import Keypoints3D
from keypoint_perception.core.camera import CameraModel
from keypoint_perception.demo import node_command
from keypoint_perception.nodes.conversions import camera_info_msg
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

#: The node's inputs, in the order they are published within one set.
TOPICS = ('left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info')
LEFT_FRAME = 'left_camera_optical_frame'
RIGHT_FRAME = 'right_camera_optical_frame'
#: Node parameters that make a pair cheap (the harness tests robustness, not accuracy).
FAST_PARAMS = {'reliable_qos': 'true', 'test_time_augmentation': 'none', 'num_threads': '1'}


def to_stamp(ns: int) -> Time:
    """Return the ``builtin_interfaces/Time`` of ``ns`` nanoseconds (>= 0)."""
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def stamp_to_ns(stamp: Time) -> int:
    """Return a ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def synthetic_rig(width: int = 320, height: int = 240,
                  baseline: float = 0.1) -> Tuple[CameraModel, CameraModel]:
    """Return a rectified stereo rig (left, right camera models) without distortion.

    Focal length ``width`` pixels, principal point at the image centre;
    the right camera's ``P[0, 3] = -fx * baseline`` (metres).
    """
    f = float(width)
    K = np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
    cameras = []
    for frame, tx in ((LEFT_FRAME, 0.0), (RIGHT_FRAME, -f * baseline)):
        P = np.hstack([K, [[tx], [0.0], [0.0]]])
        cameras.append(CameraModel(width=width, height=height, K=K, D=np.zeros(5),
                                   distortion_model='plumb_bob', R=np.eye(3), P=P,
                                   frame_id=frame))
    return cameras[0], cameras[1]


def synthetic_pair(width: int = 320, height: int = 240, disparity: int = 16,
                   seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Return a (left, right) pair of (height, width) uint8 grey images.

    A random texture (blocks of 8 pixels) seen by the right camera shifted by
    ``disparity`` pixels, as a fronto-parallel plane would be.
    """
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(height // 8 + 1, (width + disparity) // 8 + 1))
    texture = np.kron(blocks, np.ones((8, 8))).astype(np.uint8)
    left = np.ascontiguousarray(texture[:height, disparity:disparity + width])
    right = np.ascontiguousarray(texture[:height, :width])
    return left, right


def image_msg(array: np.ndarray, stamp: Time, frame_id: str,
              encoding: Optional[str] = None) -> Image:
    """Return a ``sensor_msgs/Image`` of a uint8 array (mono8 if 2-D, rgb8 if 3-D)."""
    msg = Image()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    channels = array.shape[2] if array.ndim == 3 else 1
    msg.encoding = encoding or ('mono8' if channels == 1 else 'rgb8')
    msg.step = int(array.shape[1] * channels * array.dtype.itemsize)
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def valid_set(stamp_ns: int, pair=None, rig=None) -> Dict[str, object]:
    """Return the four messages of one valid stereo set stamped ``stamp_ns``, by topic."""
    left, right = pair if pair is not None else synthetic_pair()
    left_cam, right_cam = rig if rig is not None else synthetic_rig(left.shape[1],
                                                                    left.shape[0])
    # a stamp object per message: rclpy assigns by reference, and fuzz cases change one
    return {'left/image_rect': image_msg(left, to_stamp(stamp_ns), LEFT_FRAME),
            'left/camera_info': camera_info_msg(left_cam, to_stamp(stamp_ns)),
            'right/image_rect': image_msg(right, to_stamp(stamp_ns), RIGHT_FRAME),
            'right/camera_info': camera_info_msg(right_cam, to_stamp(stamp_ns))}


class NodeHarness:
    """A ``stereo_keypoint_node`` subprocess with publishers of its four inputs.

    Use as a context manager.  ``published`` maps each ``keypoints_3d`` stamp
    (ns) received to its message, ``received_at`` to its arrival time
    (``time.monotonic()``); ``published_order`` lists the stamps as they
    arrived.
    """

    def __init__(self, domain_id: int, log_path: str, params: Optional[Dict[str, str]] = None,
                 start_timeout: float = 180.0):
        """Prepare (not start) a node with ``params`` (``-p name:=value``) in ``domain_id``."""
        self.domain_id = int(domain_id)
        self.log_path = log_path
        self.params = dict(FAST_PARAMS, **(params or {}))
        self.start_timeout = start_timeout
        self.published: Dict[int, Keypoints3D] = {}
        self.published_order: List[int] = []
        self.received_at: Dict[int, float] = {}  # stamp -> time.monotonic() of receipt
        self.proc = None

    def __enter__(self):
        """Start the node and wait until it is connected to the harness."""
        env = dict(os.environ, ROS_DOMAIN_ID=str(self.domain_id),
                   ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', PYTHONUNBUFFERED='1',
                   RCUTILS_LOGGING_BUFFERED_STREAM='0')
        args = ['--ros-args'] + [a for k, v in self.params.items() for a in ('-p', f'{k}:={v}')]
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(node_command('stereo_keypoint_node') + args, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.node = rclpy.create_node('stereo_harness', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        # deep enough for a burst of sets sent faster than the node takes them
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {t: self.node.create_publisher(Image if 'image' in t else CameraInfo, t, qos)
                     for t in TOPICS}
        self.node.create_subscription(Keypoints3D, 'keypoints_3d', self._on_keypoints, 10)
        deadline = time.monotonic() + self.start_timeout
        while any(p.get_subscription_count() == 0 for p in self.pubs.values()) or \
                self.node.count_publishers('keypoints_3d') == 0:
            self.spin(0.1)
            if not self.alive():
                raise RuntimeError('node exited at start-up:\n' + self.log_text()[-3000:])
            if time.monotonic() > deadline:
                raise RuntimeError('node did not come up:\n' + self.log_text()[-3000:])
        self.spin(1.0)
        return self

    def __exit__(self, *exc):
        """Stop the node and the harness's rclpy context."""
        self.close()

    def close(self):
        """Stop the node (SIGTERM, then SIGKILL) and shut the context down."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, 'context', None) is not None and self.context.ok():
            self.executor.shutdown()
            self.node.destroy_node()
            rclpy.shutdown(context=self.context)
        if getattr(self, '_log', None) is not None:
            self._log.close()

    def _on_keypoints(self, msg: Keypoints3D):
        stamp = stamp_to_ns(msg.header.stamp)
        self.published[stamp] = msg
        self.published_order.append(stamp)
        self.received_at[stamp] = time.monotonic()

    def spin(self, seconds: float):
        """Process the harness's callbacks for ``seconds``."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.executor.spin_once(timeout_sec=min(left, 0.05))

    def alive(self) -> bool:
        """Return whether the node process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """Return everything the node has logged so far."""
        self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def send(self, messages: Dict[str, object], order: Sequence[str] = TOPICS):
        """Publish ``messages`` (topic -> message; topics missing from it are skipped)."""
        for topic in order:
            if messages.get(topic) is not None:
                self.pubs[topic].publish(messages[topic])

    def wait_published(self, stamp_ns: int, timeout: float = 30.0) -> Optional[Keypoints3D]:
        """Spin until ``keypoints_3d`` stamped ``stamp_ns`` arrives (None after ``timeout`` s)."""
        end = time.monotonic() + timeout
        while stamp_ns not in self.published and time.monotonic() < end and self.alive():
            self.spin(0.05)
        self.spin(0.05)
        return self.published.get(stamp_ns)

    def wait_log(self, text: str, timeout: float = 20.0) -> bool:
        """Spin until the node's log contains ``text``; False after ``timeout`` s."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log_text():
                return True
            self.spin(0.2)
        return text in self.log_text()
