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
"""Mono keypoint node: one camera's image in, 2D keypoints out (robots watched by one camera).

Subscribed topics (relative, remappable):
  ``image`` (sensor_msgs/Image) and ``camera_info`` (sensor_msgs/CameraInfo),
  synchronized by stamp; sensor-data QoS unless ``reliable_qos``.

Published topics:
  ``keypoints_2d`` (keypoint_msgs/StereoKeypoints2D, the stereo node's 2D
  message): ``left`` holds this camera's keypoints (pixels of the input
  image, not undistorted; frame_id the camera's optical frame), ``right`` is
  empty (no objects, size 0).  Stamp = the image's stamp.

Parameters: the model and input parameters of the stereo node's table
(:class:`~keypoint_perception.core.config.PipelineConfig`): ``model``,
``device``, ``backend``, ``num_threads``, ``test_time_augmentation``,
``approximate_sync``, ``sync_slop``, ``queue_size``, ``reliable_qos``,
``peak_threshold``, ``roi_refinement``, ``roi_scale``, ``roi_augmentation``
(a second, zoomed look at the object, as in the stereo node),
``instance_id``; the last five can be changed while the node runs.
"""

from collections import Counter

from cv_bridge import CvBridge
from keypoint_msgs.msg import StereoKeypoints2D
import message_filters
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from . import conversions
from .parameters import declare_config_parameters, validated_changes
from .runner import run_node
from .stereo_input import (input_qos, InputFilter, InputMonitor, STALE, stamp_ns,
                           StampOrder, TIME_JUMP, WARN_PERIOD_S, WarningThrottle)
from ..core.config import PipelineConfig
from ..core.detector import KeypointDetector

#: The parameters of the stereo node's table that the mono node declares.
MONO_PARAMETERS = ('model', 'device', 'backend', 'num_threads', 'test_time_augmentation',
                   'approximate_sync', 'sync_slop', 'queue_size', 'reliable_qos',
                   'peak_threshold', 'roi_refinement', 'roi_scale', 'roi_augmentation',
                   'instance_id')


class MonoKeypointNode(Node):
    """ROS glue around :class:`~..core.detector.KeypointDetector` for one camera."""

    def __init__(self, **kwargs):
        """Declare parameters, load the model, wire the synchronized subscriptions."""
        super().__init__('mono_keypoint_node', **kwargs)
        self.config = cfg = declare_config_parameters(self, PipelineConfig, MONO_PARAMETERS)
        self.detector = KeypointDetector(cfg.model, device=cfg.device,
                                         num_threads=cfg.num_threads,
                                         test_time_augmentation=cfg.test_time_augmentation,
                                         backend=cfg.backend)
        self.object_class = self.detector.object_class
        self.bridge = CvBridge()
        self._throttle = WarningThrottle(WARN_PERIOD_S)
        self.drops = Counter()
        self.frames = 0
        self.pub_2d = self.create_publisher(StereoKeypoints2D, 'keypoints_2d', 10)
        qos = input_qos(cfg.reliable_qos, cfg.queue_size)
        self._subs = [message_filters.Subscriber(self, Image, 'image', qos_profile=qos),
                      message_filters.Subscriber(self, CameraInfo, 'camera_info',
                                                 qos_profile=qos)]
        # as in the stereo node: invalid stamps never reach the synchronizer (upstream's
        # raise on them outside any callback), arrivals are recorded, and late-completed
        # pairs are not published back in time
        self.input_monitor = InputMonitor(
            [self.resolve_topic_name(topic) for topic in ('image', 'camera_info')],
            f'approximate sync needs both stamps within sync_slop = {cfg.sync_slop} s'
            if cfg.approximate_sync else 'exact sync needs identical stamps on both topics',
            what='image and camera_info pair')
        self._inputs = [InputFilter(sub, i, self.input_monitor, self._on_invalid_input,
                                    self._on_input_error) for i, sub in enumerate(self._subs)]
        if cfg.approximate_sync:
            self.sync = message_filters.ApproximateTimeSynchronizer(
                self._inputs, cfg.queue_size, cfg.sync_slop)
        else:
            self.sync = message_filters.TimeSynchronizer(self._inputs, cfg.queue_size)
        self.sync.registerCallback(self.on_image)
        self.stamp_order = StampOrder(reset_after=cfg.queue_size + 1)
        self.input_timer = self.create_timer(1.0, self._check_inputs)
        self.add_on_set_parameters_callback(self._on_parameters)
        note, warn = self.detector.quality_note()
        (self.get_logger().warning if warn else self.get_logger().info)(note)
        self.get_logger().info(
            f'model {self.detector.model_path} ({self.object_class.name}, '
            f'backend {self.detector.backend.name}, '
            f'{self.object_class.num_keypoints} keypoints); waiting for '
            f'{self.resolve_topic_name("image")} and {self.resolve_topic_name("camera_info")}')

    def _on_parameters(self, params) -> SetParametersResult:
        """Validate the new config and swap it in whole, or refuse with a reason.

        Read-only parameters are refused by rclpy before this runs; each
        image reads ``self.config`` once.
        """
        config, result = validated_changes(self.config, params)
        if config is not None:
            self.config = config
        return result

    def _drop(self, kind: str, text: str):
        """Count a dropped image under ``kind`` and warn, at most once per period per kind."""
        self.drops[kind] += 1
        if self._throttle.ready(kind):
            self.get_logger().warning(f'dropping image ({kind}, {self.drops[kind]} so far): '
                                      f'{text}')

    def _on_invalid_input(self, index: int, msg, kind: str, text: str):
        """Drop a message with an invalid stamp before it reaches the synchronizer."""
        self._drop(f'{self.input_monitor.topics[index]}:{kind}', text)

    def _on_input_error(self, index: int, error: Exception):
        """Report an exception of the synchronizer (or a callback) instead of dying."""
        self._drop(f'synchronizer_{type(error).__name__}',
                   f'message on {self.input_monitor.topics[index]} made the synchronizer '
                   f'raise {type(error).__name__}: {error}')

    def _check_inputs(self):
        """Warn when inputs arrive but no synchronized pair forms (timer callback)."""
        text = self.input_monitor.report()
        if text and self._throttle.ready('no_pair'):
            self.get_logger().warning(text)

    def on_image(self, image: Image, info: CameraInfo):
        """Detect the keypoints of one image and publish them; any problem drops it.

        Called by the synchronizer while it holds its lock: no exception
        escapes.
        """
        self.input_monitor.pair_formed()
        try:
            stamp = stamp_ns(image.header.stamp)
            order = self.stamp_order.admit(stamp)
            if order == STALE:
                self._drop('stale_stamp', f'stamp {stamp * 1e-9:.9f} s is older than the last '
                           f'published {self.stamp_order.last * 1e-9:.9f} s (a pair the '
                           'synchronizer completed late)')
                return
            if order == TIME_JUMP and self._throttle.ready('time_jump'):
                self.get_logger().warning('input stamps went back in time (a bag or a '
                                          'simulation restarted?): publishing again from '
                                          f'{stamp * 1e-9:.9f} s')
            frame = image.header.frame_id or info.header.frame_id
            if not frame:
                self._drop('frame_id', 'image and camera_info both have an empty frame_id')
                return
            expected = conversions.binned_image_size(info)
            if (image.width, image.height) != expected:
                self._drop('image_size', f'image is {image.width}x{image.height} but '
                           f'camera_info says {expected[0]}x{expected[1]} '
                           f'({info.width}x{info.height}, binning {info.binning_x}x'
                           f'{info.binning_y})')
                return
            try:
                rgb = self.bridge.imgmsg_to_cv2(image, desired_encoding='rgb8')
            except Exception as e:  # noqa: B902 -- cv_bridge raises many types
                self._drop('image_encoding', f'{image.encoding!r} image: cannot convert to '
                           f'rgb8: {type(e).__name__}: {e}')
                return
            if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.size == 0:
                self._drop('image_encoding', f'{image.encoding!r} image converted to nothing')
                return
            config = self.config
            detection = self.detector.detect([np.ascontiguousarray(rgb)],
                                             config.peak_threshold, config.roi_refinement,
                                             config.roi_scale, config.roi_augmentation)[0]
            header = Header(stamp=image.header.stamp, frame_id=frame)
            self.pub_2d.publish(conversions.mono_keypoints_2d(
                header, detection, self.object_class, (rgb.shape[1], rgb.shape[0]),
                config.instance_id))
            self.stamp_order.published(stamp)
            self.frames += 1
            if self.frames == 1 or self.frames % 100 == 0:
                found = int(detection.found.sum())
                self.get_logger().info(f'frame {self.frames}: {found}/'
                                       f'{self.object_class.num_keypoints} keypoints')
        except Exception as e:  # noqa: B902 -- keep the node alive on any single image
            self._drop(f'processing_{type(e).__name__}', f'{type(e).__name__}: {e}')


def main(args=None):
    """Run the node until shutdown (see :func:`~.runner.run_node`)."""
    return run_node(MonoKeypointNode, args, 'mono_keypoint_node')


if __name__ == '__main__':
    main()
