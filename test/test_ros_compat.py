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
"""
Tests of the PyPI-wheel compat overlay (tools/ros_compat) against upstream behaviour.

Covers message_filters (exact and approximate synchronisation, callback
arguments, Subscriber QoS), cv_bridge (every supported encoding, padded rows,
byte order, colour conversions, errors) and tf2_ros (broadcasters received
over real DDS by a plain rclpy subscriber in another process, with upstream's
QoS; a late subscriber still receives the latched static transforms).

DDS traffic stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST)
and uses a domain id of its own.
"""

import os
import subprocess
import sys
import textwrap
import time

import cv2
from cv_bridge import CvBridge, CvBridgeError
from geometry_msgs.msg import TransformStamped
import message_filters
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from tf2_msgs.msg import TFMessage
import tf2_ros

DOMAIN_ID = 61
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


# --------------------------------------------------------------------------- helpers


def stamped(t, msg_type=Image, frame='cam'):
    """Return a message of ``msg_type`` with header.stamp = ``t`` seconds."""
    msg = msg_type()
    msg.header = Header(frame_id=frame)
    msg.header.stamp.sec = int(t)
    msg.header.stamp.nanosec = int(round((t - int(t)) * 1e9))
    return msg


def stamp_s(msg):
    """Return a message's header stamp in seconds."""
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class Recorder:
    """Callback that records the stamps (or objects) of every emitted set."""

    def __init__(self):
        """Start with no calls."""
        self.calls = []

    def __call__(self, *args):
        """Record one call."""
        self.calls.append(args)

    def stamps(self):
        """Return the emitted sets as tuples of stamps in seconds (rounded to ns)."""
        return [tuple(round(stamp_s(m), 9) for m in call if hasattr(m, 'header'))
                for call in self.calls]


# --------------------------------------------------------------------------- message_filters


def test_simple_filter_register_callback_passes_extra_args():
    """registerCallback(cb, *args) calls cb(*msgs, *args), for every registration."""
    f = message_filters.SimpleFilter()
    rec1, rec2 = Recorder(), Recorder()
    c1 = f.registerCallback(rec1, 'extra', 7)
    c2 = f.registerCallback(rec2)
    assert c1 != c2
    f.signalMessage('a', 'b')
    assert rec1.calls == [('a', 'b', 'extra', 7)]
    assert rec2.calls == [('a', 'b')]


def test_time_synchronizer_pairs_only_equal_stamps():
    """Exact sync (TimeSynchronizer) emits only sets with equal stamps, in input order."""
    left, right = message_filters.SimpleFilter(), message_filters.SimpleFilter()
    sync = message_filters.TimeSynchronizer([left, right], 10)
    rec = Recorder()
    sync.registerCallback(rec, 'tag')
    for t in (1.0, 2.0, 3.0):
        left.signalMessage(stamped(t, frame='left'))
    right.signalMessage(stamped(2.0, frame='right'))
    assert rec.stamps() == [(2.0, 2.0)]
    assert rec.calls[0][0].header.frame_id == 'left'
    assert rec.calls[0][1].header.frame_id == 'right'
    assert rec.calls[0][2] == 'tag'
    right.signalMessage(stamped(2.5))  # no partner with exactly this stamp
    right.signalMessage(stamped(3.000000001))
    assert len(rec.calls) == 1
    right.signalMessage(stamped(3.0))
    assert rec.stamps()[-1] == (3.0, 3.0)
    # As upstream, 1.0 stays queued on the left although newer sets were emitted,
    # and a late partner completes it: emitted stamps are not monotonic.
    right.signalMessage(stamped(1.0))
    assert rec.stamps() == [(2.0, 2.0), (3.0, 3.0), (1.0, 1.0)]


def test_time_synchronizer_queue_size_limits_waiting_messages():
    """Only the newest queue_size messages per input wait for a partner."""
    a, b = message_filters.SimpleFilter(), message_filters.SimpleFilter()
    sync = message_filters.TimeSynchronizer([a, b], 2)
    rec = Recorder()
    sync.registerCallback(rec)
    for t in (1.0, 2.0, 3.0):
        a.signalMessage(stamped(t))
    b.signalMessage(stamped(1.0))  # 1.0 fell out of a's queue
    assert rec.calls == []
    b.signalMessage(stamped(2.0))
    assert rec.stamps() == [(2.0, 2.0)]


def test_approximate_sync_pairs_within_slop_and_drops_out_of_slop():
    """Sets are emitted when stamps are within slop; farther ones never pair."""
    left, right = message_filters.SimpleFilter(), message_filters.SimpleFilter()
    sync = message_filters.ApproximateTimeSynchronizer([left, right], 10, 0.05)
    rec = Recorder()
    sync.registerCallback(rec)

    left.signalMessage(stamped(1.00))
    right.signalMessage(stamped(1.03))
    assert rec.stamps() == [(1.0, 1.03)]

    left.signalMessage(stamped(2.00))
    right.signalMessage(stamped(2.20))  # 0.2 s apart: out of slop
    assert len(rec.calls) == 1
    right.signalMessage(stamped(2.01))
    assert rec.stamps()[-1] == (2.0, 2.01)

    # The closest candidate wins.
    left.signalMessage(stamped(4.00))
    left.signalMessage(stamped(4.02))
    right.signalMessage(stamped(4.015))
    assert rec.stamps()[-1] == (4.02, 4.015)
    # As upstream, 4.00 (left) stays queued and a late partner still completes it.
    right.signalMessage(stamped(4.001))
    assert rec.stamps()[-1] == (4.0, 4.001)
    # The slop bound is upstream's: |t - t_new| <= slop for candidates, span < slop.
    left.signalMessage(stamped(6.0))
    right.signalMessage(stamped(6.05))  # span == slop: not emitted
    assert rec.stamps()[-1] == (4.0, 4.001)


def test_late_message_completes_an_older_set_after_a_newer_one():
    """Stamps [1, 11, 10]: upstream's exact and approximate sync emit a late-completed set."""
    for make in (lambda fs: message_filters.TimeSynchronizer(fs, 5),
                 lambda fs: message_filters.ApproximateTimeSynchronizer(fs, 5, 0.01)):
        fs = [message_filters.SimpleFilter() for _ in range(4)]
        rec = Recorder()
        make(fs).registerCallback(rec)
        for f in fs:
            f.signalMessage(stamped(1.0))
        for f in fs[:3]:  # right camera_info of 10 is late
            f.signalMessage(stamped(10.0))
        for f in fs:
            f.signalMessage(stamped(11.0))
        fs[3].signalMessage(stamped(10.0))
        assert [s[0] for s in rec.stamps()] == [1.0, 11.0, 10.0]


@pytest.mark.parametrize('approximate', [False, True])
def test_negative_stamp_raises_into_the_caller(approximate):
    """A negative header.stamp.sec raises ValueError out of add(), as upstream does."""
    fs = [message_filters.SimpleFilter() for _ in range(2)]
    if approximate:
        sync = message_filters.ApproximateTimeSynchronizer(fs, 5, 0.01)
    else:
        sync = message_filters.TimeSynchronizer(fs, 5)
    rec = Recorder()
    sync.registerCallback(rec)
    bad = stamped(1.0)
    bad.header.stamp.sec = -3
    with pytest.raises(ValueError, match='negative'):
        fs[0].signalMessage(bad)
    for f in fs:  # the synchronizer itself still works afterwards
        f.signalMessage(stamped(2.0))
    assert rec.stamps() == [(2.0, 2.0)]


def test_approximate_sync_three_inputs_need_all_within_slop():
    """With three inputs every pair of the set must lie within the slop."""
    fs = [message_filters.SimpleFilter() for _ in range(3)]
    sync = message_filters.ApproximateTimeSynchronizer(fs, 5, 0.1)
    rec = Recorder()
    sync.registerCallback(rec)
    fs[0].signalMessage(stamped(10.00))
    fs[1].signalMessage(stamped(10.08))
    fs[2].signalMessage(stamped(10.16))  # 0.16 from fs[0]: no set yet
    assert rec.calls == []
    fs[0].signalMessage(stamped(10.10))
    assert rec.stamps() == [(10.1, 10.08, 10.16)]


def test_approximate_sync_camera_info_and_images():
    """Four inputs of two types (a stereo pair with camera infos) synchronise."""
    fs = [message_filters.SimpleFilter() for _ in range(4)]
    sync = message_filters.ApproximateTimeSynchronizer(fs, 10, 0.02)
    rec = Recorder()
    sync.registerCallback(rec)
    fs[0].signalMessage(stamped(5.000, Image))
    fs[1].signalMessage(stamped(5.000, CameraInfo))
    fs[2].signalMessage(stamped(5.004, Image))
    assert rec.calls == []
    fs[3].signalMessage(stamped(5.004, CameraInfo))
    assert len(rec.calls) == 1
    assert [type(m) for m in rec.calls[0]] == [Image, CameraInfo, Image, CameraInfo]


def test_approximate_sync_headerless():
    """Headerless messages are dropped unless allow_headerless (then stamped now)."""
    a, b = message_filters.SimpleFilter(), message_filters.SimpleFilter()
    strict = message_filters.ApproximateTimeSynchronizer([a, b], 10, 1.0)
    rec = Recorder()
    strict.registerCallback(rec)
    a.signalMessage(String(data='x'))
    b.signalMessage(String(data='y'))
    assert rec.calls == []

    c, d = message_filters.SimpleFilter(), message_filters.SimpleFilter()
    loose = message_filters.ApproximateTimeSynchronizer([c, d], 10, 1.0, allow_headerless=True)
    rec2 = Recorder()
    loose.registerCallback(rec2, 'z')
    c.signalMessage(String(data='x'))
    d.signalMessage(String(data='y'))
    assert [(m1.data, m2.data, extra) for m1, m2, extra in rec2.calls] == [('x', 'y', 'z')]


def test_subscriber_creates_subscription_with_qos():
    """Subscriber(node, type, topic, qos_profile=...) subscribes and relays messages."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID + 1)
    try:
        node = rclpy.create_node('mf_sub_test', context=context)
        default = message_filters.Subscriber(node, Image, 'left/image')
        assert default.sub.qos_profile.depth == 10
        assert default.getTopic() == 'left/image'
        sensor = QoSProfile(depth=3, reliability=ReliabilityPolicy.BEST_EFFORT)
        sub = message_filters.Subscriber(node, Image, 'right/image', qos_profile=sensor)
        assert sub.sub.qos_profile.depth == 3
        assert sub.sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert sub.topic_name == '/right/image'  # attribute of the rclpy subscription
        rec = Recorder()
        sub.registerCallback(rec)
        sub.callback(stamped(1.0))
        assert rec.stamps() == [(1.0,)]
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


# --------------------------------------------------------------------------- cv_bridge

ENCODINGS = {
    'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1),
    'bgr8': (np.uint8, 3), 'rgb8': (np.uint8, 3),
    'bgra8': (np.uint8, 4), 'rgba8': (np.uint8, 4),
    '16UC1': (np.uint16, 1), '32FC1': (np.float32, 1),
    '8UC1': (np.uint8, 1), '8UC3': (np.uint8, 3),
}


def random_image(dtype, channels, height=5, width=7, seed=0):
    """Return a random image of the given type, shape (h, w) or (h, w, c)."""
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == 'f':
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_cv_bridge_round_trip(encoding):
    """cv2 -> Image -> (serialize, deserialize) -> cv2 gives back the same array."""
    dtype, channels = ENCODINGS[encoding]
    image = random_image(dtype, channels)
    bridge = CvBridge()
    header = Header(frame_id='left_optical')
    header.stamp.sec = 12
    msg = bridge.cv2_to_imgmsg(image, encoding=encoding, header=header)
    assert msg.encoding == encoding
    assert (msg.height, msg.width) == (5, 7)
    assert msg.step == 7 * np.dtype(dtype).itemsize * channels
    assert msg.header.frame_id == 'left_optical' and msg.header.stamp.sec == 12
    assert len(msg.data) == msg.step * msg.height
    msg = deserialize_message(serialize_message(msg), Image)
    back = bridge.imgmsg_to_cv2(msg)
    assert back.dtype == image.dtype and back.shape == image.shape
    np.testing.assert_array_equal(back, image)
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg, desired_encoding=encoding), image)


def test_cv_bridge_passthrough_encoding_names_the_array_type():
    """With encoding='passthrough' the message gets the array's OpenCV type name."""
    bridge = CvBridge()
    assert bridge.cv2_to_imgmsg(np.zeros((2, 3), np.float32)).encoding == '32FC1'
    assert bridge.cv2_to_imgmsg(np.zeros((2, 3, 3), np.uint8)).encoding == '8UC3'
    assert bridge.cv2_to_imgmsg(np.zeros((2, 3, 2), np.int16)).encoding == '16SC2'


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_cv_bridge_respects_padded_step(encoding):
    """Rows padded beyond width * pixel size (step) are read correctly."""
    dtype, channels = ENCODINGS[encoding]
    image = random_image(dtype, channels, seed=1)
    row = image.reshape(image.shape[0], -1).view(np.uint8).reshape(image.shape[0], -1)
    padding = np.full((image.shape[0], 6), 0xAB, np.uint8)
    padded = np.hstack([row, padding])
    msg = Image(height=image.shape[0], width=image.shape[1], encoding=encoding,
                is_bigendian=sys.byteorder == 'big', step=padded.shape[1])
    msg.data.frombytes(padded.tobytes())
    back = CvBridge().imgmsg_to_cv2(msg)
    np.testing.assert_array_equal(back, image)
    assert back.flags['C_CONTIGUOUS']


NUMPY_2 = int(np.__version__.split('.')[0]) >= 2


@pytest.mark.skipif(sys.byteorder != 'little', reason='big-endian data is native there')
def test_cv_bridge_big_endian_data():
    """is_bigendian=True: byte-swapped with NumPy 1; AttributeError with NumPy 2, as upstream."""
    image = random_image(np.uint16, 1, seed=2)
    msg = Image(height=5, width=7, encoding='mono16', is_bigendian=True, step=14)
    msg.data.frombytes(image.astype('>u2').tobytes())
    floats = random_image(np.float32, 1, seed=3)
    float_msg = Image(height=5, width=7, encoding='32FC1', is_bigendian=True, step=28)
    float_msg.data.frombytes(floats.astype('>f4').tobytes())
    rgb = random_image(np.uint8, 3, seed=4)
    rgb_msg = CvBridge().cv2_to_imgmsg(rgb, 'rgb8')
    rgb_msg.is_bigendian = True  # upstream swaps on the flag alone, even for 8-bit data
    if NUMPY_2:
        for m in (msg, float_msg, rgb_msg):
            with pytest.raises(AttributeError, match='newbyteorder'):
                CvBridge().imgmsg_to_cv2(m, 'passthrough')
        with pytest.raises(AttributeError):
            CvBridge().imgmsg_to_cv2(rgb_msg, 'rgb8')
        return
    back = CvBridge().imgmsg_to_cv2(msg)
    assert back.dtype == np.uint16 and back.dtype.isnative
    np.testing.assert_array_equal(back, image)
    np.testing.assert_array_equal(CvBridge().imgmsg_to_cv2(float_msg), floats)
    np.testing.assert_array_equal(CvBridge().imgmsg_to_cv2(rgb_msg, 'rgb8'), rgb)


@pytest.mark.parametrize('encoding, height, width', [
    ('rgb8', 0, 0), ('mono8', 0, 0), ('rgb8', 0, 640), ('bgr8', 480, 0)])
def test_cv_bridge_empty_image(encoding, height, width):
    """An empty image converts to None (any desired encoding) and to an empty array as is."""
    bridge = CvBridge()
    channels = ENCODINGS[encoding][1]
    msg = Image(height=height, width=width, encoding=encoding, step=width * channels)
    assert bridge.imgmsg_to_cv2(msg, desired_encoding='rgb8') is None
    assert bridge.imgmsg_to_cv2(msg, desired_encoding=encoding) is None
    passthrough = bridge.imgmsg_to_cv2(msg)
    assert isinstance(passthrough, np.ndarray) and passthrough.size == 0


def test_cv_bridge_colour_conversions():
    """Colour conversions follow upstream cvtColor rules (order, alpha, gray, depth)."""
    bridge = CvBridge()
    bgr = random_image(np.uint8, 3, seed=4)
    msg = bridge.cv2_to_imgmsg(bgr, 'bgr8')
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg, 'rgb8'), bgr[..., ::-1])
    rgb_msg = bridge.cv2_to_imgmsg(np.ascontiguousarray(bgr[..., ::-1]), 'rgb8')
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(rgb_msg, 'bgr8'), bgr)
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg, 'mono8'),
                                  cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    bgra = bridge.imgmsg_to_cv2(msg, 'bgra8')
    assert bgra.shape == (5, 7, 4)
    np.testing.assert_array_equal(bgra[..., :3], bgr)
    assert (bgra[..., 3] == 255).all()
    rgba = random_image(np.uint8, 4, seed=5)
    rgba_msg = bridge.cv2_to_imgmsg(rgba, 'rgba8')
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(rgba_msg, 'bgr8'), rgba[..., 2::-1])
    gray = random_image(np.uint8, 1, seed=6)
    gray_msg = bridge.cv2_to_imgmsg(gray, 'mono8')
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(gray_msg, 'bgr8'),
                                  np.repeat(gray[..., None], 3, axis=2))
    # 8 <-> 16 bit: scaled by 65535 / 255 = 257, as upstream.
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(gray_msg, 'mono16'),
                                  gray.astype(np.uint16) * 257)
    mono16 = gray.astype(np.uint16) * 257
    mono16_msg = bridge.cv2_to_imgmsg(mono16, 'mono16')
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(mono16_msg, 'mono8'), gray)
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg, 'bgr16'), bgr.astype(np.uint16) * 257)
    # Generic encodings change depth only, with the same number of channels.
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg, '8UC3'), bgr)
    depth = random_image(np.uint16, 1, seed=7)
    depth_msg = bridge.cv2_to_imgmsg(depth, '16UC1')
    as_float = bridge.imgmsg_to_cv2(depth_msg, '32FC1')
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float, depth.astype(np.float32))


def test_cv_bridge_errors():
    """Unknown encodings, size mismatches and impossible conversions raise CvBridgeError."""
    bridge = CvBridge()
    assert issubclass(CvBridgeError, TypeError)  # as upstream
    image = random_image(np.uint8, 3)
    msg = bridge.cv2_to_imgmsg(image, 'bgr8')

    short = Image(height=msg.height, width=msg.width, encoding='bgr8', step=msg.step)
    short.data.frombytes(bytes(msg.data)[:-1])
    with pytest.raises(CvBridgeError, match='height \\* step != size'):
        bridge.imgmsg_to_cv2(short)

    narrow = Image(height=msg.height, width=msg.width, encoding='bgr8', step=msg.step - 1)
    narrow.data.frombytes(bytes(msg.data)[:narrow.step * narrow.height])
    with pytest.raises(CvBridgeError, match='step <'):
        bridge.imgmsg_to_cv2(narrow)

    unknown = Image(height=1, width=1, encoding='fancy42', step=1)
    unknown.data.frombytes(b'\x00')
    with pytest.raises(CvBridgeError, match='fancy42'):
        bridge.imgmsg_to_cv2(unknown)
    with pytest.raises(CvBridgeError, match='fancy42'):
        bridge.imgmsg_to_cv2(msg, 'fancy42')
    with pytest.raises(CvBridgeError, match='incompatible'):
        bridge.cv2_to_imgmsg(np.zeros((2, 2), np.float32), 'bgr8')
    with pytest.raises(CvBridgeError, match='incompatible'):
        bridge.cv2_to_imgmsg(np.zeros((2, 2, 3), np.uint8), 'mono8')
    with pytest.raises(CvBridgeError):
        bridge.cv2_to_imgmsg([[1, 2], [3, 4]])
    with pytest.raises(CvBridgeError, match='not a color format'):
        bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(np.zeros((2, 2), np.uint16), '16UC1'), 'bgr8')
    with pytest.raises(CvBridgeError, match='same number of channel'):
        bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(np.zeros((2, 2), np.uint8), '8UC1'), '8UC3')


def test_cv_bridge_compressed_round_trip():
    """PNG compression round-trips exactly; decoding converts like upstream."""
    bridge = CvBridge()
    bgr = random_image(np.uint8, 3, seed=8)
    msg = bridge.cv2_to_compressed_imgmsg(bgr, 'png')
    assert msg.format == 'png'
    np.testing.assert_array_equal(bridge.compressed_imgmsg_to_cv2(msg), bgr)
    np.testing.assert_array_equal(bridge.compressed_imgmsg_to_cv2(msg, 'rgb8'), bgr[..., ::-1])


# --------------------------------------------------------------------------- tf2_ros

PUBLISHER_SCRIPT = textwrap.dedent("""
    import sys, time
    import rclpy
    from geometry_msgs.msg import TransformStamped
    import tf2_ros

    def tf(parent, child, x):
        t = TransformStamped()
        t.header.frame_id = parent
        t.header.stamp.sec = 5
        t.child_frame_id = child
        t.transform.translation.x = x
        t.transform.rotation.w = 1.0
        return t

    rclpy.init()
    node = rclpy.create_node('compat_tf_publisher')
    static = tf2_ros.StaticTransformBroadcaster(node)
    static.sendTransform(tf('base', 'left_optical', 0.1))
    static.sendTransform([tf('base', 'right_optical', 0.2), tf('base', 'left_optical', 9.0)])
    dynamic = tf2_ros.TransformBroadcaster(node)
    print('SENT', flush=True)
    end = time.monotonic() + 30.0
    while time.monotonic() < end:
        dynamic.sendTransform(tf('left_optical', 'mug_0', 0.5))
        rclpy.spin_once(node, timeout_sec=0.05)
""")


def test_broadcasters_default_qos():
    """Publishers use upstream's topics and default QoS."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID + 2)
    try:
        node = rclpy.create_node('tf_qos_test', context=context)
        dynamic = tf2_ros.TransformBroadcaster(node)
        static = tf2_ros.StaticTransformBroadcaster(node)
        assert dynamic.pub_tf.topic_name == '/tf'
        assert dynamic.pub_tf.qos_profile.depth == 100
        assert static.pub_tf.topic_name == '/tf_static'
        qos = static.pub_tf.qos_profile
        assert qos.depth == 1
        assert qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
        assert qos.reliability == ReliabilityPolicy.RELIABLE
        custom = tf2_ros.TransformBroadcaster(node, qos=7)
        assert custom.pub_tf.qos_profile.depth == 7
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_broadcasters_over_dds_with_late_static_subscriber():
    """A subscriber in this process, started after the sends, receives both topics."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    proc = subprocess.Popen([sys.executable, '-c', PUBLISHER_SCRIPT], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    context = rclpy.Context()
    try:
        assert proc.stdout.readline().strip() == 'SENT'
        time.sleep(0.5)  # the static transforms are sent well before we subscribe
        rclpy.init(context=context, domain_id=DOMAIN_ID)
        node = rclpy.create_node('compat_tf_listener', context=context)
        static_msgs, dynamic_msgs = [], []
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(TFMessage, '/tf_static', static_msgs.append, latched)
        node.create_subscription(TFMessage, '/tf', dynamic_msgs.append, 100)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not (static_msgs and dynamic_msgs):
            executor.spin_once(timeout_sec=0.1)
        assert static_msgs, 'late subscriber got no latched /tf_static message'
        assert dynamic_msgs, 'no /tf message received'
        frames = {t.child_frame_id: t for t in static_msgs[-1].transforms}
        assert set(frames) == {'left_optical', 'right_optical'}
        assert frames['left_optical'].transform.translation.x == pytest.approx(0.1)
        assert frames['right_optical'].transform.translation.x == pytest.approx(0.2)
        first = dynamic_msgs[0].transforms
        assert len(first) == 1 and first[0].child_frame_id == 'mug_0'
        assert first[0].header.frame_id == 'left_optical'
        assert first[0].header.stamp.sec == 5
        info = node.get_publishers_info_by_topic('/tf_static')
        assert info and info[0].qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
        assert info[0].qos_profile.reliability == ReliabilityPolicy.RELIABLE
        executor.shutdown()
        node.destroy_node()
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if context.ok():
            rclpy.shutdown(context=context)


def test_transform_broadcaster_accepts_single_list_and_tuple():
    """The sendTransform method takes one transform, a list or any iterable of them."""

    class FakePublisher:
        """Publisher that records what it is given."""

        def __init__(self):
            """Start with nothing sent."""
            self.sent = []

        def publish(self, msg):
            """Record one message."""
            self.sent.append(msg)

    class FakeNode:
        """Node whose only publisher is a FakePublisher."""

        def __init__(self):
            """Create the publisher."""
            self.publisher = FakePublisher()

        def create_publisher(self, msg_type, topic, qos):
            """Return the FakePublisher for TFMessage publishers."""
            assert msg_type is TFMessage
            return self.publisher

    node = FakeNode()
    broadcaster = tf2_ros.TransformBroadcaster(node)
    t = TransformStamped(child_frame_id='a')
    broadcaster.sendTransform(t)
    broadcaster.sendTransform([t, t])
    broadcaster.sendTransform((t,))
    assert [len(m.transforms) for m in node.publisher.sent] == [1, 2, 1]
