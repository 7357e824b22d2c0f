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
Output stamps are the input images' stamp, never older than a stamp already
published; the frame is the left image's ``frame_id`` (else its CameraInfo's).

Nothing a publisher sends ends the node (see :mod:`.stereo_input`): a message
with an invalid stamp is dropped before the synchronizer; a pair that is
stale (completed late by the synchronizer), has no frame id, an unusable
calibration, or images that do not convert or disagree in size is dropped.
Each drop is counted by kind of problem and warned about at most once per
5 s per kind; the counts appear in the periodic ``frame N`` log line.  When
inputs arrive but form no synchronized pair for 5 s, a warning names the
arriving topics and their stamp offsets.

Pipelining (:class:`~.pipelining.TwoStageRunner`): a pair that passes the
checks goes to two worker threads, the network (observe stage) and the rest
of the pipeline with publishing, one pair apart, so that the network runs
pair t+1 while pair t is post-processed.  Between the input and the network
is a queue of one: with best-effort inputs (the default) the newest pair
wins when the node is behind and the pair it replaces is counted as
``behind`` (not warned about: it is how a node slower than its cameras keeps
up); with ``reliable_qos`` every pair is processed (the synchronizer's
callback waits instead).  Results are published in input order, and a pair
is admitted only if its stamp is not older than one already admitted, so no
stamp older than a published one is ever published.
"""

from collections import Counter
from dataclasses import dataclass
import threading
import time

from cv_bridge import CvBridge
from keypoint_msgs.msg import Keypoints3D, StereoKeypoints2D
import message_filters
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
import tf2_ros
from visualization_msgs.msg import MarkerArray

from . import conversions
from .parameters import declare_config_parameters, validated_changes
from .pipelining import TwoStageRunner
from .runner import run_node
from .stereo_input import (camera_info_problem, DroppedPair, image_problem, input_qos,
                           InputFilter, InputMonitor, stamp_ns, STALE, StampOrder, TIME_JUMP,
                           WARN_PERIOD_S, WarningThrottle)
from ..core.camera import CalibrationError, CameraModel
from ..core.detector import KeypointDetector
from ..core.pipeline import StereoKeypointPipeline
from ..core.visualization import draw_stereo


@dataclass(frozen=True, eq=False)
class PairJob:
    """One checked stereo pair on its way through the worker threads.

    Attributes:
        stamp: the left image's stamp, ns.
        header: stamp and left optical frame of the outputs.
        right_frame: the right optical frame.
        left, right: the image messages (converted by the first worker).
        left_camera, right_camera: their calibrations.
        config, pipeline: the parameters and pipeline of the pair (one
            config for the whole pair, even when parameters change meanwhile).
    """

    stamp: int
    header: Header
    right_frame: str
    left: Image
    right: Image
    left_camera: CameraModel
    right_camera: CameraModel
    config: object
    pipeline: StereoKeypointPipeline


class StereoKeypointNode(Node):
    """ROS glue around :class:`~keypoint_perception.core.pipeline.StereoKeypointPipeline`."""

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
                                         test_time_augmentation=cfg.test_time_augmentation,
                                         backend=cfg.backend)
        self.object_class = self.detector.object_class
        self.pipeline = StereoKeypointPipeline(self.detector, cfg)
        self.bridge = CvBridge()
        self._throttle = WarningThrottle(WARN_PERIOD_S)
        self.drops = Counter()  # dropped pairs (and messages) per kind of problem
        self._report_lock = threading.RLock()  # drops and warnings come from three threads
        # the network of pair t+1 runs while pair t is post-processed and published
        self.stages = TwoStageRunner(self._observe, self._finish, self._on_stage_error,
                                     self._on_behind, name='stereo_keypoint')
        self.add_on_set_parameters_callback(self._on_parameters)

        self.pub_2d = self.create_publisher(StereoKeypoints2D, 'keypoints_2d', 10)
        self.pub_3d = self.create_publisher(Keypoints3D, 'keypoints_3d', 10)
        self.pub_markers = self.create_publisher(MarkerArray, 'keypoint_markers', 10)
        self.pub_debug = self.create_publisher(Image, 'debug/image', 1)
        self.tf_broadcaster = tf2_ros.TransformBroadcaster(self)

        qos = input_qos(reliable, queue)
        inputs = ((Image, 'left/image_rect'), (CameraInfo, 'left/camera_info'),
                  (Image, 'right/image_rect'), (CameraInfo, 'right/camera_info'))
        subs = [message_filters.Subscriber(self, msg_type, topic, qos_profile=qos)
                for msg_type, topic in inputs]
        # Between each subscriber and the synchronizer: drop invalid stamps (upstream's
        # synchronizers raise on them, outside any callback of ours) and record arrivals.
        self.input_monitor = InputMonitor(
            [self.resolve_topic_name(topic) for _, topic in inputs],
            f'approximate sync needs the four stamps within sync_slop = {slop} s'
            if self.approximate_sync else 'exact sync needs identical stamps on all four topics')
        self._inputs = [InputFilter(sub, i, self.input_monitor, self._on_invalid_input,
                                    self._on_input_error) for i, sub in enumerate(subs)]
        if self.approximate_sync:
            self.sync = message_filters.ApproximateTimeSynchronizer(self._inputs, queue, slop)
        else:
            self.sync = message_filters.TimeSynchronizer(self._inputs, queue)
        self.sync.registerCallback(self.on_stereo)
        self._subs = subs
        # late-completed sets (at most one per queued message) are stale, not a time jump
        self.stamp_order = StampOrder(reset_after=queue + 1)
        self.input_timer = self.create_timer(1.0, self._check_inputs)
        note, warn = self.detector.quality_note()
        (self.get_logger().warning if warn else self.get_logger().info)(note)
        self.frames = 0
        self.get_logger().info(
            f'model {self.detector.model_path} ({self.object_class.name}, '
            f'{self.object_class.num_keypoints} keypoints, '
            f'{self.detector.config.input_width}x{self.detector.config.input_height} input, '
            f'test-time augmentation {self.detector.test_time_augmentation}; '
            f'{self.detector.backend.describe()}); '
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
        config, result = validated_changes(self.config, params)
        if config is not None:
            self.pipeline = StereoKeypointPipeline(self.detector, config)
            self.config = config
        return result

    # -- processing -----------------------------------------------------------------

    def _warn(self, kind: str, text: str):
        """Log ``text`` as a warning, at most once per ``WARN_PERIOD_S`` seconds per ``kind``.

        ``kind`` names the kind of problem (e.g. ``'image_encoding'``,
        ``'left/camera_info_k'``, ``'stale_stamp'``, ``'no_pair'``): different
        kinds never hide each other, and a stream of one kind gives one line
        per period however its text varies (sizes, encodings, values).
        """
        with self._report_lock:
            ready = self._throttle.ready(kind)
        if ready:
            self.get_logger().warning(text)

    def _drop(self, kind: str, text: str):
        """Count a dropped pair (or message) under ``kind`` and warn, throttled by kind."""
        with self._report_lock:
            self.drops[kind] += 1
            count = self.drops[kind]
        self._warn(kind, f'dropping stereo pair ({kind}, {count} so far): {text}')

    def _on_behind(self, job: PairJob):
        """Count a pair replaced by a newer one before its network pass (no warning)."""
        with self._report_lock:
            self.drops['behind'] += 1

    def _on_invalid_input(self, index: int, msg, kind: str, text: str):
        """Drop a message with an invalid stamp before it reaches the synchronizer."""
        topic = self.input_monitor.topics[index]
        key = f'{topic}:{kind}'
        with self._report_lock:
            self.drops[key] += 1
            count = self.drops[key]
        self._warn(key, f'dropping a message on {topic} ({kind}, {count} so far): {text}')

    def _on_input_error(self, index: int, error: Exception):
        """Report an exception of the synchronizer (or a callback) instead of dying."""
        kind = f'synchronizer_{type(error).__name__}'
        with self._report_lock:
            self.drops[kind] += 1
        self._warn(kind, f'message on {self.input_monitor.topics[index]} made the '
                   f'synchronizer raise {type(error).__name__}: {error}')

    def _check_inputs(self):
        """Warn when inputs arrive but no synchronized pair forms (timer callback)."""
        text = self.input_monitor.report()
        if text:
            self._warn('no_pair', text)

    def _image(self, msg: Image, side: str) -> np.ndarray:
        """Return an image message as a (height, width, 3) uint8 RGB array.

        Raises:
            DroppedPair: any failure of the conversion (cv_bridge raises
                CvBridgeError, TypeError, and upstream AttributeError for
                big-endian data with NumPy 2) or a result that is not a
                non-empty RGB image (upstream returns None for an empty one).
        """
        described = (f'{side} image ({msg.encoding!r}, {msg.width}x{msg.height}, '
                     f'step {msg.step}, {len(msg.data)} bytes'
                     f'{", big-endian" if msg.is_bigendian else ""})')
        try:
            img = self.bridge.imgmsg_to_cv2(msg, desired_encoding='rgb8')
        except Exception as e:  # noqa: B902 -- cv_bridge raises many types, see above
            raise DroppedPair(image_problem(msg, self.bridge),
                              f'{described}: cannot convert to rgb8: '
                              f'{type(e).__name__}: {e}') from e
        if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3
                and img.size > 0 and img.dtype == np.uint8):
            got = 'None' if img is None else \
                f'{type(img).__name__} of shape {getattr(img, "shape", "?")}'
            raise DroppedPair(image_problem(msg, self.bridge),
                              f'{described}: conversion to rgb8 gave {got}')
        return np.ascontiguousarray(img)

    @staticmethod
    def _camera(info: CameraInfo, side: str) -> CameraModel:
        """Return the camera model of a CameraInfo, or raise DroppedPair naming the problem."""
        try:
            return conversions.camera_model(info)
        except CalibrationError as e:
            raise DroppedPair(f'{side}/camera_info_{camera_info_problem(info)}',
                              f'{side} camera_info: {e}') from e

    def on_stereo(self, left_msg: Image, left_info: CameraInfo, right_msg: Image,
                  right_info: CameraInfo):
        """Process one synchronized pair; any problem drops it with a warning.

        Called by the synchronizer while it holds its lock: an exception here
        would leave upstream ``TimeSynchronizer``'s lock taken (and end
        ``spin``), so none escapes.
        """
        self.input_monitor.pair_formed()
        try:
            job = self._prepare(left_msg, left_info, right_msg, right_info)
        except DroppedPair as drop:
            self._drop(drop.kind, drop.text)
            return
        except Exception as e:  # noqa: B902 -- keep the node alive on any single-pair failure
            self._on_stage_error(None, e)
            return
        self.stages.submit(job, wait=job.config.reliable_qos)

    def _prepare(self, left_msg: Image, left_info: CameraInfo, right_msg: Image,
                 right_info: CameraInfo) -> PairJob:
        """Check one pair's stamp, frames and calibration (the images: :meth:`_observe`).

        The pair's stamp is recorded as admitted: no later pair with an
        older stamp is admitted, so the in-order workers never publish back
        in time.

        Raises:
            DroppedPair: a stamp older than the last admitted one, no frame
                id, unusable calibration.
        """
        config, pipeline = self.config, self.pipeline  # one config for the whole pair
        stamp = stamp_ns(left_msg.header.stamp)
        order = self.stamp_order.admit(stamp)
        if order == STALE:
            raise DroppedPair(
                'stale_stamp', f'stamp {stamp * 1e-9:.9f} s is older than the last published '
                f'{self.stamp_order.last * 1e-9:.9f} s (a set the synchronizer completed '
                'late); publishing it would send keypoints_3d and TF back in time')
        if order == TIME_JUMP:
            self._warn('time_jump', f'input stamps went back from '
                       f'{self.stamp_order.last * 1e-9:.9f} s to {stamp * 1e-9:.9f} s for '
                       f'{self.stamp_order.stale_in_row} pairs in a row (a bag or a '
                       'simulation restarted?): publishing again from the new time')
        left_frame = left_msg.header.frame_id or left_info.header.frame_id
        right_frame = right_msg.header.frame_id or right_info.header.frame_id
        for side, frame in (('left', left_frame), ('right', right_frame)):
            if not frame:
                raise DroppedPair('frame_id', f'{side} image and {side} camera_info both have '
                                  'an empty header.frame_id: no frame to publish in')
        left_cam = self._camera(left_info, 'left')
        right_cam = self._camera(right_info, 'right')
        self.stamp_order.published(stamp)  # admitted: nothing older may follow it
        return PairJob(stamp, Header(stamp=left_msg.header.stamp, frame_id=left_frame),
                       right_frame, left_msg, right_msg, left_cam, right_cam, config, pipeline)

    def _observe(self, job: PairJob):
        """First worker: convert the images, then the network on both views.

        The conversion is done here, not in the synchronizer's callback, so
        that a pair dropped because the node is behind costs no conversion.

        Returns:
            (left, right, observed): (H, W, 3) uint8 RGB images and the first
            look's observe stage.

        Raises:
            DroppedPair: images that do not convert or whose sizes disagree
                with their camera_info or with each other.
        """
        left = self._image(job.left, 'left')
        right = self._image(job.right, 'right')
        for side, img, cam in (('left', left, job.left_camera),
                               ('right', right, job.right_camera)):
            if (img.shape[1], img.shape[0]) != (cam.width, cam.height):
                raise DroppedPair('image_size', f'{side} image is {img.shape[1]}x{img.shape[0]} '
                                  f'but its camera_info says {cam.width}x{cam.height}')
        if left.shape != right.shape:
            raise DroppedPair('stereo_size', f'stereo pair of different sizes: left '
                              f'{left.shape[1]}x{left.shape[0]}, right '
                              f'{right.shape[1]}x{right.shape[0]}')
        return left, right, job.pipeline.observe(left, right)

    def _finish(self, job: PairJob, converted) -> None:
        """Second worker: the rest of the pipeline, then publish (in input order)."""
        left, right, observed = converted
        result = job.pipeline.process(left, right, job.left_camera, job.right_camera,
                                      observed=observed)
        self._publish(job.config, job.header, job.right_frame, left, right, result)

    def _on_stage_error(self, job, error: BaseException) -> None:
        """Drop a pair whose processing failed (any exception), with a throttled warning."""
        if not self.context.ok():
            return  # shutting down: publishing fails, nothing to report
        if isinstance(error, DroppedPair):
            self._drop(error.kind, error.text)
        else:
            self._drop(f'processing_{type(error).__name__}',
                       f'processing failed: {type(error).__name__}: {error}')

    def destroy_node(self):
        """Stop the worker threads (after the pairs they are on), then destroy the node."""
        self.stages.stop()
        return super().destroy_node()

    def _publish(self, config, header: Header, right_frame: str, left: np.ndarray,
                 right: np.ndarray, result):
        """Publish one result: 2D/3D keypoints, TF, markers and the debug image.

        ``header``: the left image's stamp and the left optical frame;
        ``right_frame``: the right optical frame; ``left``/``right``: the
        (height, width, 3) RGB images.
        """
        object_class = self.object_class
        inst = config.instance_id
        prefix = config.tf_prefix or f'{object_class.name}_{inst}'
        self.pub_2d.publish(conversions.stereo_keypoints_2d(
            header, right_frame, result, object_class,
            (left.shape[1], left.shape[0]), (right.shape[1], right.shape[0]), inst))
        self.pub_3d.publish(conversions.keypoints_3d(header, result, object_class, inst))
        if config.publish_tf:
            tfs = conversions.transforms(header, result, object_class, prefix)
            if tfs:
                self.tf_broadcaster.sendTransform(tfs)
        if self.pub_markers.get_subscription_count() > 0:
            self.pub_markers.publish(conversions.markers(
                header, result, object_class, prefix, config.marker_scale,
                config.marker_lifetime))
        timings_ms = dict(result.timings_ms)
        if self.pub_debug.get_subscription_count() > 0:
            t0 = time.perf_counter()
            n_ok = int(result.valid.sum())
            dbg = draw_stereo(left, right, result, object_class,
                              beliefs=config.debug_heatmaps,
                              title=f'{object_class.name}: {n_ok}/'
                                    f'{object_class.num_keypoints} keypoints in 3D')
            self.pub_debug.publish(self.bridge.cv2_to_imgmsg(dbg, encoding='rgb8',
                                                             header=header))
            timings_ms['debug_image'] = (time.perf_counter() - t0) * 1e3
        self.frames += 1
        if self.frames == 1 or self.frames % 100 == 0:
            t = ', '.join(f'{k} {v:.1f} ms' for k, v in timings_ms.items())
            with self._report_lock:
                dropped = ', '.join(f'{k} {n}' for k, n in sorted(self.drops.items()))
            self.get_logger().info(f'frame {self.frames}: {int(result.valid.sum())}/'
                                   f'{object_class.num_keypoints} keypoints triangulated ({t}); '
                                   f'dropped so far: {dropped or "none"}')


def main(args=None):
    """Run the node until shutdown (see :func:`~.runner.run_node`)."""
    return run_node(StereoKeypointNode, args, 'stereo_keypoint_node')


if __name__ == '__main__':
    main()
