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
"""Streaming node: renders randomized stereo samples and publishes them over ROS 2.

Published topics (relative to the node's namespace, remappable):
  ``left/image_raw``, ``right/image_raw`` (sensor_msgs/Image, rgb8, the
  unrectified renders, lens distortion as in the camera info),
  ``left/camera_info``, ``right/camera_info`` (sensor_msgs/CameraInfo),
  ``labels`` (keypoint_msgs/SampleLabels: 2D keypoints with COCO visibility
  in both views, 3D keypoints and object pose in the left optical frame, the
  sampled scene variables with their bins) -- all five with the same stamp;
  ``sampler_state`` (keypoint_msgs/SamplerState, transient local): the
  Dirichlet parameters, at start-up and after every accepted feedback.

Subscribed topic:
  ``feedback`` (keypoint_msgs/SamplerFeedback): bin counts from a trainer,
  applied as the conjugate Dirichlet update ``alpha += counts``
  (Heindl et al. 2020).  Invalid messages are rejected with a warning.

Sample ``i`` is drawn from ``SeedSequence([seed, i])`` and the sampler's
parameters at that time, so instances with different seeds produce
different streams.  Run several instances under their own namespaces, e.g.
``sim_stream_node --ros-args -r __ns:=/sim0 -p seed:=0``.
"""

import json
import time
from typing import List, Tuple

from builtin_interfaces.msg import Time
from cv_bridge import CvBridge
from keypoint_msgs.msg import SampleLabels, SamplerFeedback, SamplerState
from keypoint_perception.core.parameter_table import ParameterSpec
from keypoint_perception.nodes.parameters import declare_spec
from keypoint_perception.nodes.runner import run_node
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from sensor_msgs.msg import CameraInfo, Image

from .. import ros_messages as rm
from ..config import load_config
from ..generator import SampleGenerator

WARN_THROTTLE_S = 5.0

#: The publishing rate parameter, Hz.
RATE = ParameterSpec('rate', float, 'double', 1.0, 'Target publishing rate in Hz; 0 = as fast '
                     'as samples render.', 'output', low=0.0, high=1000.0, read_only=True)

#: Timer period with ``rate`` 0 (a timer that is always due; the executor still serves
#: feedback in between), and while waiting for subscribers then (10 Hz, not a busy core).
FAST_PERIOD_NS = 100_000
WAIT_POLL_NS = 100_000_000


class SimStreamNode(Node):
    """Publishes rendered samples at ``rate`` Hz and adapts its sampler from feedback."""

    def __init__(self, **kwargs):
        """Declare parameters, build the generator, publishers and the feedback subscription."""
        super().__init__('sim_stream_node', **kwargs)
        p = self._declare
        config = p('config', 'checkerboard',
                   'Generator config: a YAML path or a name in the sim_datagen config folder.',
                   read_only=True)
        self.seed = p('seed', 0, 'Seed of the run; sample i is drawn from '
                      'SeedSequence([seed, i]).', read_only=True, int_range=(0, 2 ** 31 - 1))
        # dynamically typed (-p rate:=2 is YAML's integer), range checked by the spec
        self.rate = rate = declare_spec(self, RATE)
        self.max_samples = p('max_samples', 0, 'Stop publishing after this many samples '
                             '(the node stays up for feedback); 0 = no limit.',
                             read_only=True, int_range=(0, 2 ** 31 - 1))
        self.index = p('start_index', 0, 'Index of the first sample (to continue a run).',
                       read_only=True, int_range=(0, 2 ** 31 - 1))
        width = p('width', 0, 'Image width in pixels; 0 = the config value.', read_only=True,
                  int_range=(0, 8192))
        height = p('height', 0, 'Image height in pixels; 0 = the config value.', read_only=True,
                   int_range=(0, 8192))
        left_frame = p('left_frame_id', '', 'Left optical frame (frame_id of the left images, '
                       'camera info and labels); empty = the config value.', read_only=True)
        right_frame = p('right_frame_id', '', 'Right optical frame; empty = the config value.',
                        read_only=True)
        depth = p('qos_depth', 10, 'History depth of the reliable image, camera-info and label '
                  'publishers (keep last).', read_only=True, int_range=(1, 1000))
        self.wait_for_subscribers = p(
            'wait_for_subscribers', True, 'Render only while each of the five data topics has '
            'a subscriber: no CPU is spent on samples nobody receives, and the first samples '
            'are not lost while DDS discovery is still matching the topics.', read_only=True)
        state_file = p('sampler_state_file', '', 'JSON with a SceneSampler state_dict '
                       '({"variables": {name: {"theta": [...]}}}, optionally under '
                       '"sampler_state", as a dataset\'s meta.json and the trainer write it) to '
                       'start from instead of the config priors.', read_only=True)

        cfg = load_config(config)
        if width or height:  # a fixed size: replaces a per-sample image_size of the config
            cfg['image'] = {'width': width or cfg['image']['width'],
                            'height': height or cfg['image']['height']}
            cfg['variables'] = {k: v for k, v in cfg['variables'].items() if k != 'image_size'}
        frames = dict(cfg.get('frame_ids') or {})
        frames['left'] = left_frame or frames.get('left', 'left_camera_optical_frame')
        frames['right'] = right_frame or frames.get('right', 'right_camera_optical_frame')
        cfg['frame_ids'] = frames
        self.frames = frames
        self.generator = SampleGenerator(cfg)
        self.sampler = self.generator.sampler
        if state_file:
            with open(state_file) as f:
                state = json.load(f)
            self.sampler.load_state_dict(state.get('sampler_state', state))
        self.bridge = CvBridge()
        self.published = 0
        self._last_stamp_ns = -1
        self.num_updates = 0
        self.last_feedback_source = ''  # source of the last applied feedback
        self._last_warning = {}
        self._waiting = False

        data_qos = QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE)
        self.pub = {}
        for side in ('left', 'right'):
            self.pub[f'{side}/image_raw'] = self.create_publisher(
                Image, f'{side}/image_raw', data_qos)
            self.pub[f'{side}/camera_info'] = self.create_publisher(
                CameraInfo, f'{side}/camera_info', data_qos)
        self.pub_labels = self.create_publisher(SampleLabels, 'labels', data_qos)
        state_qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                               reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_state = self.create_publisher(SamplerState, 'sampler_state', state_qos)
        fb_qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                            reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(SamplerFeedback, 'feedback', self.on_feedback, fb_qos)
        self.publish_state()

        # rate 0: a timer that is always due; the executor still serves feedback in between
        self.timer = self.create_timer(1.0 / rate if rate > 0 else FAST_PERIOD_NS * 1e-9,
                                       self.on_timer)
        self.get_logger().info(
            f'streaming {self.generator.object_name} samples '
            f'{self.generator.W}x{self.generator.H} from {cfg["object_yaml"]} on '
            f'{self.resolve_topic_name("left/image_raw")} (seed {self.seed}, '
            f'{"as fast as possible" if rate <= 0 else f"{rate:g} Hz"}'
            f'{f", {self.max_samples} samples" if self.max_samples else ""}); feedback on '
            f'{self.resolve_topic_name("feedback")}')

    # -- parameters -----------------------------------------------------------------

    def _declare(self, name, default, description, read_only=False, float_range=None,
                 int_range=None):
        desc = ParameterDescriptor(description=description, read_only=read_only)
        if float_range is not None:
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(float_range[0]), to_value=float(float_range[1]), step=0.0)]
        if int_range is not None:
            desc.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1],
                                               step=1)]
        return self.declare_parameter(name, default, desc).value

    def _warn(self, kind: str, text: str):
        """Log a warning, at most once per ``WARN_THROTTLE_S`` for the same ``kind``."""
        now = time.monotonic()
        if now - self._last_warning.get(kind, -1e9) >= WARN_THROTTLE_S:
            self._last_warning[kind] = now
            self.get_logger().warning(text)

    # -- publishing -----------------------------------------------------------------

    def render(self, index: int) -> dict:
        """Render sample ``index`` of this run (see ``SampleGenerator.generate``)."""
        return self.generator.generate(index, self.seed)

    def next_stamp(self):
        """Return now as builtin_interfaces/Time, later than every stamp published before.

        Subscribers match a sample's five messages by stamp, so two samples
        must never share one (simulated time may stand still or start at 0).
        """
        now_ns = max(self.get_clock().now().nanoseconds, self._last_stamp_ns + 1)
        self._last_stamp_ns = now_ns
        return Time(sec=now_ns // 10 ** 9, nanosec=now_ns % 10 ** 9)

    def sample_messages(self, sample: dict, stamp) -> List[Tuple[object, object]]:
        """Return the (publisher, message) pairs of ``sample``: images, camera infos, labels.

        Raises:
            keypoint_perception.core.camera.CalibrationError: a camera the
                CameraInfo message cannot hold.
        """
        labels = sample['labels']
        out = []
        for side in ('left', 'right'):
            info = rm.camera_info_msg(labels['camera_info'][side], stamp)
            info.header.frame_id = self.frames[side]
            img = self.bridge.cv2_to_imgmsg(sample[side], encoding='rgb8')
            img.header.stamp, img.header.frame_id = stamp, self.frames[side]
            out += [(self.pub[f'{side}/camera_info'], info), (self.pub[f'{side}/image_raw'], img)]
        out.append((self.pub_labels, rm.labels_to_msg(labels, self.sampler, stamp,
                                                      self.frames['left'])))
        return out

    def publish_sample(self, sample: dict, stamp=None):
        """Publish the images, camera infos and labels of ``sample`` with one stamp.

        All messages are built before the first is published, so a sample
        is published whole or not at all.

        Returns:
            The stamp used (builtin_interfaces/Time; default: :meth:`next_stamp`).

        Raises:
            keypoint_perception.core.camera.CalibrationError: see
                :meth:`sample_messages`.
        """
        stamp = stamp or self.next_stamp()
        for publisher, msg in self.sample_messages(sample, stamp):
            publisher.publish(msg)
        return stamp

    def has_subscribers(self) -> bool:
        """Whether every image, camera-info and label topic has a matched subscription."""
        return all(pub.get_subscription_count() > 0
                   for pub in list(self.pub.values()) + [self.pub_labels])

    def on_timer(self):
        """Render and publish the next sample; stop the timer after ``max_samples``."""
        if self.max_samples and self.published >= self.max_samples:
            self.timer.cancel()
            self.get_logger().info(f'published {self.published} samples (max_samples); idle, '
                                   'still accepting feedback')
            return
        if self.wait_for_subscribers and not self.has_subscribers():
            if not self._waiting:
                self._waiting = True
                if self.rate <= 0:  # as fast as possible: poll at 10 Hz while nobody listens
                    self.timer.timer_period_ns = WAIT_POLL_NS
                self.get_logger().info('waiting for subscribers on all of left/image_raw, '
                                       'left/camera_info, right/image_raw, right/camera_info, '
                                       'labels')
            return
        if self._waiting and self.rate <= 0:
            self.timer.timer_period_ns = FAST_PERIOD_NS
        self._waiting = False
        try:  # render and build every message first: a sample goes out whole or not at all
            messages = self.sample_messages(self.render(self.index), self.next_stamp())
        except Exception as e:  # noqa: B902 - a bad sample must not stop the stream
            self._warn('render', f'sample {self.index} failed, skipped: {e!r}')
            self.index += 1
            return
        for publisher, msg in messages:
            publisher.publish(msg)
        self.index += 1
        self.published += 1

    # -- feedback -------------------------------------------------------------------

    def publish_state(self):
        """Publish the current Dirichlet parameters on ``sampler_state``."""
        self.pub_state.publish(rm.sampler_state_msg(
            self.sampler, self.get_clock().now().to_msg(), self.seed, self.num_updates,
            self.index, self.last_feedback_source))

    def on_feedback(self, msg: SamplerFeedback):
        """Apply a feedback message (conjugate Dirichlet update) or reject it with a warning."""
        counts, problems = rm.check_feedback(msg, self.sampler)
        src = f' from {msg.source!r}' if msg.source else ''
        if problems:
            known = ''
            if any(p.startswith('unknown') for p in problems):
                known = '; known variables[bins]: ' + ', '.join(
                    f'{n}[{v.bins}]' for n, v in self.sampler.variables.items())
            self.get_logger().warning(f'rejected feedback{src} (nothing applied): '
                                      f'{"; ".join(problems)}{known}')
            return
        self.sampler.update(counts)
        self.num_updates += 1
        self.last_feedback_source = msg.source
        self.publish_state()
        total = sum(float(c.sum()) for c in counts.values())
        self.get_logger().info(f'feedback {self.num_updates}{src}: {len(counts)} variable(s), '
                               f'{total:g} counts added; applies from sample {self.index}')

    def destroy_node(self):
        """Close the PyBullet client, then destroy the node."""
        try:
            self.generator.world.close()
        except Exception:  # noqa: B902 - already closed
            pass
        return super().destroy_node()


def main(args=None):
    """Run the node until shutdown (see :func:`keypoint_perception.nodes.runner.run_node`)."""
    return run_node(SimStreamNode, args, 'sim_stream_node')


if __name__ == '__main__':
    main()
