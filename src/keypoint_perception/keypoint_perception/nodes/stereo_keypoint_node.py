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
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.executors import ExternalShutdownException
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from sensor_msgs.msg import CameraInfo, Image
import tf2_ros
from visualization_msgs.msg import MarkerArray

from . import conversions
from ..core.camera import CalibrationError, CameraModel
from ..core.inference import (COMPLETION_SEARCHES, DEFAULT_COMPLETION_SEARCH,
                              DEFAULT_ROI_SCALE, KeypointDetector, ROI_REFINEMENTS,
                              StereoKeypointPipeline)
from ..core.visualization import draw_stereo

WARN_THROTTLE_S = 5.0
#: String parameters with a fixed set of values, checked at start-up and on set.
CHOICES = {'roi_refinement': ROI_REFINEMENTS, 'completion_search': COMPLETION_SEARCHES}


def _choice_error(name: str, value) -> str:
    """Message for a value of a :data:`CHOICES` parameter that is not allowed ('' if ok)."""
    if name in CHOICES and value not in CHOICES[name]:
        return f'parameter {name} is {value!r}; must be one of {", ".join(CHOICES[name])}'
    return ''


def _float_range(lo, hi, step=0.0):
    return [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=float(step))]


class StereoKeypointNode(Node):
    """ROS glue around :class:`~keypoint_perception.core.inference.StereoKeypointPipeline`."""

    def __init__(self, **kwargs):
        """Declare parameters, load the model, wire subscriptions and publishers."""
        super().__init__('stereo_keypoint_node', **kwargs)
        p = self._declare
        model = p('model', 'checkerboard_lite',
                  'Shipped model name (keypoint_perception/models/<name>.pt) or checkpoint path.',
                  read_only=True)
        device = p('device', 'cpu', 'Torch device, e.g. "cpu" or "cuda:0".', read_only=True)
        threads = p('num_threads', 0, 'Torch intra-op threads; 0 keeps the default.',
                    read_only=True, int_range=(0, 256))
        tta = p('test_time_augmentation', 'auto',
                'Test-time augmentation: "none"; "rot180" (mean of the belief maps of each '
                'image and of its 180 degree rotation: steadier peaks, twice the network '
                'time); "auto" = what the checkpoint was validated with.', read_only=True)
        self.approximate_sync = p('approximate_sync', False,
                                  'Pair left/right with ApproximateTimeSynchronizer '
                                  '(unsynchronized cameras) instead of exact stamps.',
                                  read_only=True)
        slop = p('sync_slop', 0.01, 'Max stamp difference (s) for approximate sync.',
                 read_only=True, float_range=(0.0, 1.0))
        queue = p('queue_size', 5, 'Synchronizer and subscription queue size per input.',
                  read_only=True, int_range=(1, 100))
        reliable = p('reliable_qos', False,
                     'Subscribe reliably (keep last queue_size) instead of with sensor-data QoS '
                     '(best effort): no pair is lost, at the price of lag when the node is '
                     'slower than the cameras.', read_only=True)
        p('min_confidence', 0.3, 'Keypoints with a lower belief peak (either view) are not '
          'triangulated.', float_range=(0.0, 1.0))
        p('peak_threshold', 0.1, 'Minimum belief of a 2D detection.', float_range=(0.0, 1.0))
        p('max_reprojection_error', 4.0, 'Reject 3D points whose RMS reprojection error '
          '(pixels) exceeds this.', float_range=(0.0, 1000.0))
        p('min_depth', 0.05, 'Reject 3D points closer than this (m) to either camera.',
          float_range=(0.0, 100.0))
        p('input_rectified', True, 'Images are rectified (image_rect): pixels are used with '
          'P directly. Set false for raw images: keypoints are then undistorted and '
          'rectified with K, D, R, P before triangulation.')
        p('template_check', True, 'Choose among several belief peaks per keypoint those that '
          'agree across views (epipolar) and with the class template\'s shape.')
        p('template_completion', True, 'When at least 3 keypoints are triangulated, look for '
          'the missing ones where the fitted template predicts them (weaker belief accepted).')
        p('completion_min_belief', 0.05, 'Lowest belief (both views) of a keypoint found by '
          'template completion.', float_range=(0.0, 1.0))
        p('completion_radius', 20.0, 'Search radius (pixels) around the predicted position '
          'for template completion.', float_range=(1.0, 1000.0))
        p('completion_search', DEFAULT_COMPLETION_SEARCH, 'How template completion looks '
          'near the prediction: "stereo" (the 3D point whose projections have the highest '
          'product of the two views\' beliefs: epipolar-consistent by construction) or '
          '"views" (each view\'s own belief peak; their stereo match must then pass '
          'max_reprojection_error).')
        p('localization_sigma', 0.0, 'Standard deviation of a keypoint\'s image position '
          '(belief cells, per view). When > 0, the template shape checks allow for the '
          'triangulation noise this causes at the keypoints\' depth (far objects, short '
          'baselines); 0 keeps the fixed relative tolerance.', float_range=(0.0, 5.0))
        p('roi_refinement', 'always', 'Second, zoomed look at the object: the network runs '
          'again on a window around it in each view (from the first look\'s keypoints), so '
          'that a small or far object is seen at a higher resolution. "off"; "incomplete" '
          '(only when the first look left keypoints out of 3D); "always". Skipped when the '
          'object already fills most of the image; costs a second network pass when taken.')
        p('roi_scale', DEFAULT_ROI_SCALE, 'Side of the second look\'s window over the extent '
          'of the object\'s keypoints (> 1 keeps context around them).',
          float_range=(1.2, 10.0))
        p('refine_triangulation', True, 'Gauss-Newton refinement of the DLT points.')
        p('fit_pose', True, 'Fit the class template (Umeyama) for the object pose and TF.')
        p('publish_tf', True, 'Broadcast keypoint and object frames on /tf.')
        p('tf_prefix', '', 'Child frame prefix; empty = "<class>_<instance_id>".')
        p('instance_id', '0', 'Instance id reported for the detected object.')
        p('marker_scale', 0.01, 'Sphere diameter of keypoint markers (m).',
          float_range=(0.0001, 10.0))
        p('marker_lifetime', 0.5, 'Marker lifetime (s); 0 = forever.',
          float_range=(0.0, 3600.0))
        p('debug_heatmaps', True, 'Overlay belief maps on debug/image.')
        for name in CHOICES:
            error = _choice_error(name, self.get_parameter(name).value)
            if error:
                raise ValueError(error)

        self.detector = KeypointDetector(model, device=device, num_threads=threads,
                                         test_time_augmentation=tta)
        self.object_class = self.detector.object_class
        self.pipeline = StereoKeypointPipeline(self.detector)
        self.bridge = CvBridge()
        self._last_warning = {}
        self.add_on_set_parameters_callback(self._on_parameters)
        self._apply_parameters()

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

    def _declare(self, name, default, description, read_only=False, float_range=None,
                 int_range=None):
        desc = ParameterDescriptor(description=description, read_only=read_only)
        if float_range is not None:
            desc.floating_point_range = _float_range(*float_range)
        if int_range is not None:
            desc.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1],
                                               step=1)]
        return self.declare_parameter(name, default, desc).value

    def _on_parameters(self, params):
        from rcl_interfaces.msg import SetParametersResult
        for prm in params:
            if prm.name == 'tf_prefix' and prm.type_ == Parameter.Type.STRING and \
                    prm.value.startswith('/'):
                return SetParametersResult(successful=False,
                                           reason='tf_prefix must not start with "/"')
            error = _choice_error(prm.name, prm.value)
            if error:
                return SetParametersResult(successful=False, reason=error)
        return SetParametersResult(successful=True)

    def _apply_parameters(self):
        g = lambda n: self.get_parameter(n).value  # noqa: E731
        self.pipeline.min_confidence = g('min_confidence')
        self.detector.peak_threshold = g('peak_threshold')
        self.pipeline.max_reprojection_error_px = g('max_reprojection_error')
        self.pipeline.min_depth_m = g('min_depth')
        self.pipeline.refine = g('refine_triangulation')
        self.pipeline.input_rectified = g('input_rectified')
        self.pipeline.template_check = g('template_check')
        self.pipeline.template_completion = g('template_completion')
        self.pipeline.completion_min_belief = g('completion_min_belief')
        self.pipeline.completion_radius_px = g('completion_radius')
        self.pipeline.completion_search = g('completion_search')
        self.pipeline.localization_sigma_cells = g('localization_sigma')
        self.pipeline.roi_refinement = g('roi_refinement')
        self.pipeline.roi_scale = g('roi_scale')
        self.pipeline.fit_pose = g('fit_pose')

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
            self._apply_parameters()
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
        inst = self.get_parameter('instance_id').value
        prefix = self.get_parameter('tf_prefix').value or f'{oc.name}_{inst}'
        self.pub_2d.publish(conversions.stereo_keypoints_2d(
            header, right_msg.header.frame_id or right_info.header.frame_id, result, oc,
            (left.shape[1], left.shape[0]), (right.shape[1], right.shape[0]), inst))
        self.pub_3d.publish(conversions.keypoints_3d(header, result, oc, inst))
        if self.get_parameter('publish_tf').value:
            tfs = conversions.transforms(header, result, oc, prefix)
            if tfs:
                self.tf_broadcaster.sendTransform(tfs)
        if self.pub_markers.get_subscription_count() > 0:
            self.pub_markers.publish(conversions.markers(
                header, result, oc, prefix, self.get_parameter('marker_scale').value,
                self.get_parameter('marker_lifetime').value))
        if self.pub_debug.get_subscription_count() > 0:
            t0 = time.perf_counter()
            n_ok = int(result.valid.sum())
            dbg = draw_stereo(left, right, result, oc,
                              beliefs=self.get_parameter('debug_heatmaps').value,
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
    """Run the node until shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        node = StereoKeypointNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == '__main__':
    main()
