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
"""Stereo keypoint node: synchronized stereo pair in, 2D/3D keypoints, TF, markers out.

Subscribed topics (relative, remappable; sensor-data QoS):
  ``left/image_rect``, ``left/camera_info``, ``right/image_rect``,
  ``right/camera_info`` -- rectified or raw images; raw input is handled
  through the CameraInfo ``K``, ``D``, ``R``, ``P`` (points are undistorted
  before triangulation).

Published topics:
  ``keypoints_2d`` (keypoint_msgs/StereoKeypoints2D), ``keypoints_3d``
  (keypoint_msgs/Keypoints3D, left optical frame, metres),
  ``keypoint_markers`` (visualization_msgs/MarkerArray), ``debug/image``
  (sensor_msgs/Image, computed only while subscribed), and TF frames
  ``<tf_prefix>/<keypoint>`` and ``<tf_prefix>`` (object pose).
Output stamps are the input images' stamp.
"""

import time

from cv_bridge import CvBridge, CvBridgeError
from keypoint_msgs.msg import Keypoints3D, StereoKeypoints2D
import message_filters
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
import tf2_ros
from visualization_msgs.msg import MarkerArray

from . import conversions
from .parameters import declare_config_parameters, parameter_changes
from .runner import run_node
from ..core.camera import CalibrationError, CameraModel
from ..core.inference import KeypointDetector, StereoKeypointPipeline
from ..core.visualization import draw_stereo

WARN_THROTTLE_S = 5.0


class StereoKeypointNode(Node):
    """ROS glue around :class:`~keypoint_perception.core.inference.StereoKeypointPipeline`."""

    def __init__(self, **kwargs):
        """Declare parameters, load the model, wire subscriptions and publishers."""
        super().__init__('stereo_keypoint_node', **kwargs)
        # every parameter from the one table (core.config); model, device, threads,
        # test-time augmentation and the input group are read-only (restart needed)
        self.config = declare_config_parameters(self)
        cfg = self.config
        self.approximate_sync = cfg.approximate_sync
        queue, slop, reliable = cfg.queue_size, cfg.sync_slop, cfg.reliable_qos
        self.detector = KeypointDetector(cfg.model, device=cfg.device,
                                         num_threads=cfg.num_threads,
                                         test_time_augmentation=cfg.test_time_augmentation)
        self.object_class = self.detector.object_class
        self.pipeline = StereoKeypointPipeline(self.detector, cfg)
        self.bridge = CvBridge()
        self._last_warning = {}
        self.add_on_set_parameters_callback(self._on_parameters)

        self.pub_2d = self.create_publisher(StereoKeypoints2D, 'keypoints_2d', 10)
        self.pub_3d = self.create_publisher(Keypoints3D, 'keypoints_3d', 10)
        self.pub_markers = self.create_publisher(MarkerArray, 'keypoint_markers', 10)
        self.pub_debug = self.create_publisher(Image, 'debug/image', 1)
        self.tf_broadcaster = tf2_ros.TransformBroadcaster(self)

        qos = QoSProfile(depth=queue, reliability=ReliabilityPolicy.RELIABLE) if reliable \
            else qos_profile_sensor_data
        subs = [message_filters.Subscriber(self, msg_type, topic, qos_profile=qos)
                for msg_type, topic in ((Image, 'left/image_rect'),
                                        (CameraInfo, 'left/camera_info'),
                                        (Image, 'right/image_rect'),
                                        (CameraInfo, 'right/camera_info'))]
        if self.approximate_sync:
            self.sync = message_filters.ApproximateTimeSynchronizer(subs, queue, slop)
        else:
            self.sync = message_filters.TimeSynchronizer(subs, queue)
        self.sync.registerCallback(self.on_stereo)
        self._subs = subs
        self.frames = 0
        self.get_logger().info(
            f'model {self.detector.model_path} ({self.object_class.name}, '
            f'{self.object_class.num_keypoints} keypoints, '
            f'{self.detector.config.input_width}x{self.detector.config.input_height} input, '
            f'test-time augmentation {self.detector.test_time_augmentation}); '
            f'{"approximate" if self.approximate_sync else "exact"} sync; waiting for '
            f'{self.resolve_topic_name("left/image_rect")} and '
            f'{self.resolve_topic_name("right/image_rect")}')

    # -- parameters -----------------------------------------------------------------

    def _on_parameters(self, params) -> SetParametersResult:
        """Validate the whole new config and swap it in (with a new pipeline) atomically.

        Read-only parameters are refused by rclpy before this runs.  A value
        that is not allowed is refused with a reason naming the parameter and
        the allowed values; nothing changes then.  The runtime reads
        ``self.config`` and ``self.pipeline`` once per pair, so a pair is
        processed with either the old or the new config, never a mix.
        """
        try:
            config = self.config.validated(**parameter_changes(params))
        except ValueError as e:
            return SetParametersResult(successful=False, reason=str(e))
        self.pipeline = StereoKeypointPipeline(self.detector, config)
        self.config = config
        return SetParametersResult(successful=True)

    # -- processing -----------------------------------------------------------------

    def _warn(self, what: str):
        """Warn about a dropped pair, throttled per kind of problem.

        The kind is the text before the first ':' so that different problems
        (a bad encoding, then a bad calibration) are each reported at once,
        while a stream of the same problem gives one line per
        ``WARN_THROTTLE_S`` seconds.
        """
        kind = what.split(':', 1)[0]
        now = time.monotonic()
        if now - self._last_warning.get(kind, -1e9) >= WARN_THROTTLE_S:
            self._last_warning[kind] = now
            self.get_logger().warning(f'dropping stereo pair: {what}')

    def _image(self, msg: Image, side: str):
        try:
            img = self.bridge.imgmsg_to_cv2(msg, desired_encoding='rgb8')
        except (CvBridgeError, ValueError, TypeError) as e:
            raise ValueError(f'{side} image ({msg.encoding!r}, {msg.width}x{msg.height}, '
                             f'{len(msg.data)} bytes): {e}') from e
        return np.ascontiguousarray(img)

    @staticmethod
    def _camera(info: CameraInfo, side: str) -> CameraModel:
        try:
            return CameraModel.from_camera_info(info)
        except CalibrationError as e:
            raise CalibrationError(f'{side} camera_info: {e}') from e

    def on_stereo(self, left_msg: Image, left_info: CameraInfo, right_msg: Image,
                  right_info: CameraInfo):
        """Process one synchronized pair; bad input is warned about and skipped."""
        try:
            left_cam = self._camera(left_info, 'left')
            right_cam = self._camera(right_info, 'right')
            left = self._image(left_msg, 'left')
            right = self._image(right_msg, 'right')
            for side, img, cam in (('left', left, left_cam), ('right', right, right_cam)):
                if (img.shape[1], img.shape[0]) != (cam.width, cam.height):
                    raise ValueError(f'{side} image is {img.shape[1]}x{img.shape[0]} but its '
                                     f'camera_info says {cam.width}x{cam.height}')
            if left.shape != right.shape:
                raise ValueError(f'stereo pair of different sizes: left {left.shape[1]}x'
                                 f'{left.shape[0]}, right {right.shape[1]}x{right.shape[0]}')
        except (CalibrationError, ValueError) as e:
            self._warn(str(e))
            return
        try:
            result = self.pipeline.process(left, right, left_cam, right_cam)
        except Exception as e:  # keep the node alive on any single-frame failure
            self._warn(f'processing failed: {type(e).__name__}: {e}')
            return
        self._publish(left_msg, right_msg, left_info, right_info, left, right, result)

    def _publish(self, left_msg, right_msg, left_info, right_info, left, right, result):
        oc = self.object_class
        header = left_msg.header
        if not header.frame_id:
            header.frame_id = left_info.header.frame_id
        inst = self.config.instance_id
        prefix = self.config.tf_prefix or f'{oc.name}_{inst}'
        self.pub_2d.publish(conversions.stereo_keypoints_2d(
            header, right_msg.header.frame_id or right_info.header.frame_id, result, oc,
            (left.shape[1], left.shape[0]), (right.shape[1], right.shape[0]), inst))
        self.pub_3d.publish(conversions.keypoints_3d(header, result, oc, inst))
        if self.config.publish_tf:
            tfs = conversions.transforms(header, result, oc, prefix)
            if tfs:
                self.tf_broadcaster.sendTransform(tfs)
        if self.pub_markers.get_subscription_count() > 0:
            self.pub_markers.publish(conversions.markers(
                header, result, oc, prefix, self.config.marker_scale,
                self.config.marker_lifetime))
        if self.pub_debug.get_subscription_count() > 0:
            t0 = time.perf_counter()
            n_ok = int(result.valid.sum())
            dbg = draw_stereo(left, right, result, oc,
                              beliefs=self.config.debug_heatmaps,
                              title=f'{oc.name}: {n_ok}/{oc.num_keypoints} keypoints in 3D')
            self.pub_debug.publish(self.bridge.cv2_to_imgmsg(dbg, encoding='rgb8',
                                                             header=header))
            result.timings_ms['debug_image'] = (time.perf_counter() - t0) * 1e3
        self.frames += 1
        if self.frames == 1 or self.frames % 100 == 0:
            t = ', '.join(f'{k} {v:.1f} ms' for k, v in result.timings_ms.items())
            self.get_logger().info(f'frame {self.frames}: {int(result.valid.sum())}/'
                                   f'{oc.num_keypoints} keypoints triangulated ({t})')


def main(args=None):
    """Run the node until shutdown (see :func:`~.runner.run_node`)."""
    return run_node(StereoKeypointNode, args, 'stereo_keypoint_node')


if __name__ == '__main__':
    main()
