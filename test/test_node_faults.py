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
"""The perception node under faulty input (issue 16 items 4, 5, 8, 9, 10, 11).

First the guards of ``nodes/stereo_input.py`` alone (no DDS), then the node
over real DDS (localhost only, a domain id of its own) fed by
``tools/stereo_harness.py``: late-completed sets, images that do not
convert, invalid stamps, inputs that never synchronize, warning throttling
by kind, empty frame ids.  After each fault the node must still be alive
and publish the next valid pair.
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'tools'))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
DOMAIN_ID = 121

from builtin_interfaces.msg import Time  # noqa: E402
from cv_bridge import CvBridge  # noqa: E402
from keypoint_perception.nodes import stereo_input  # noqa: E402
from keypoint_perception.nodes.conversions import camera_info_msg  # noqa: E402
import message_filters  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from stereo_harness import (NodeHarness, synthetic_pair, synthetic_rig,  # noqa: E402
                            to_stamp, valid_set)

S = 1_000_000_000  # nanoseconds per second


class FakeClock:
    """A settable clock (seconds) for the throttle and monitor."""

    def __init__(self):
        """Start at t = 100 s."""
        self.now = 100.0

    def __call__(self):
        """Return the current time."""
        return self.now


# --------------------------------------------------------------------------- guards alone


def test_warning_throttle_is_keyed_by_kind_not_text():
    """One line per kind and period; different kinds never hide each other."""
    clock = FakeClock()
    throttle = stereo_input.WarningThrottle(5.0, clock)
    assert throttle.ready('image_size')
    assert not throttle.ready('image_size')  # same kind, whatever the text says
    assert throttle.ready('left/camera_info_distortion_model')
    assert throttle.ready('left/camera_info_k')  # another calibration problem still shows
    clock.now += 5.0
    assert throttle.ready('image_size')


def test_stamp_order_drops_stale_pairs_and_accepts_a_time_jump():
    """Older than the last published: stale; many stale in a row: the input restarted."""
    order = stereo_input.StampOrder(reset_after=3)
    assert order.admit(1 * S) == stereo_input.ADMIT
    order.published(1 * S)
    order.published(11 * S)
    assert order.admit(10 * S) == stereo_input.STALE
    assert order.admit(11 * S) == stereo_input.ADMIT  # equal stamps are admitted
    order.published(12 * S)
    verdicts = [order.admit(t * S) for t in (2, 3, 4, 5)]
    assert verdicts == [stereo_input.STALE] * 3 + [stereo_input.TIME_JUMP]
    order.published(5 * S)
    assert order.admit(6 * S) == stereo_input.ADMIT and order.stale_in_row == 0


def test_stamp_problem():
    """Negative seconds and nanoseconds beyond 1e9 are invalid; zero is valid."""
    assert stereo_input.stamp_problem(Time(sec=0, nanosec=0)) == ('', '')
    kind, text = stereo_input.stamp_problem(Time(sec=-1, nanosec=5))
    assert kind == 'negative_stamp' and '(-1)' in text
    kind, text = stereo_input.stamp_problem(Time(sec=3, nanosec=1_000_000_000))
    assert kind == 'stamp_nanosec' and '1e9' in text


def _stamped(sec, nanosec=0):
    msg = Image()
    msg.header.stamp = Time(sec=sec, nanosec=nanosec)
    return msg


@pytest.mark.parametrize('approximate', [False, True])
def test_input_filter_keeps_invalid_stamps_away_from_the_synchronizer(approximate):
    """The synchronizer never sees an invalid stamp (upstream's would raise on a negative one)."""
    sources = [message_filters.SimpleFilter() for _ in range(2)]
    monitor = stereo_input.InputMonitor(['left', 'right'], 'rule')
    invalid, errors, pairs = [], [], []
    filters = [stereo_input.InputFilter(s, i, monitor,
                                        lambda i, m, kind, text: invalid.append((i, kind)),
                                        lambda i, e: errors.append(e))
               for i, s in enumerate(sources)]
    sync = (message_filters.ApproximateTimeSynchronizer(filters, 5, 0.01) if approximate
            else message_filters.TimeSynchronizer(filters, 5))
    sync.registerCallback(lambda a, b: pairs.append(a.header.stamp.sec))
    sources[0].signalMessage(_stamped(-2))
    sources[1].signalMessage(_stamped(4, 2_000_000_000))
    assert invalid == [(0, 'negative_stamp'), (1, 'stamp_nanosec')]
    for s in sources:
        s.signalMessage(_stamped(5))
    assert pairs == [5] and errors == []
    # an exception further down is reported, not raised into the executor
    sync.registerCallback(lambda a, b: 1 / 0)
    for s in sources:
        s.signalMessage(_stamped(6))
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)


def test_input_monitor_names_arriving_topics_and_stamp_offsets():
    """Inputs without pairs for a period: the report names topics, counts and offsets."""
    clock = FakeClock()
    topics = ['/left/image_rect', '/left/camera_info', '/right/image_rect',
              '/right/camera_info']
    monitor = stereo_input.InputMonitor(topics, 'exact sync needs identical stamps', 5.0, clock)
    for k in range(3):
        monitor.record(0, 10 * S + k * S // 10)
        monitor.record(1, 10 * S + k * S // 10)
        monitor.record(2, 10 * S + k * S // 10 + 250_000_000)
        clock.now += 1.0
    assert monitor.report() == ''  # not idle for a whole period yet
    clock.now += 2.5
    text = monitor.report()
    assert '/left/image_rect (3 msgs, stamp reference)' in text
    assert '/right/image_rect (3 msgs, stamp offset +0.250 s)' in text
    assert 'not arriving: /right/camera_info' in text and 'exact sync' in text
    assert monitor.report() == ''  # at most one report per period
    monitor.pair_formed()
    clock.now += 6.0
    assert monitor.report() == ''  # nothing arrived since


def test_problem_kinds():
    """Conversion and calibration failures get kinds that tell problems apart."""
    bridge = CvBridge()
    ok = Image(height=2, width=2, encoding='mono8', step=2, data=bytes(4))
    assert stereo_input.image_problem(ok, bridge) == 'image_conversion'
    cases = {'image_empty': dict(height=0, width=0, step=0, data=b''),
             'image_byte_order': dict(is_bigendian=sys.byteorder == 'little'),
             'image_encoding': dict(encoding='yuv999'),
             'image_step': dict(step=1, data=bytes(2)),
             'image_data_size': dict(data=bytes(3))}
    for kind, fields in cases.items():
        msg = Image(**dict(dict(height=2, width=2, encoding='mono8', step=2, data=bytes(4)),
                           **fields))
        assert stereo_input.image_problem(msg, bridge) == kind
    left, _ = synthetic_rig()
    info = camera_info_msg(left)
    assert stereo_input.camera_info_problem(info) == 'calibration'
    for kind, change in (('distortion_model', dict(distortion_model='fisheye9')),
                         ('d', dict(d=[0.0] * 3)), ('k', dict(k=[0.0] * 9)),
                         ('k', dict(k=[float('nan')] * 9)), ('p', dict(p=[0.0] * 12)),
                         ('r', dict(r=[1.0] * 8)), ('size', dict(width=0))):
        broken = camera_info_msg(left)
        for name, value in change.items():
            setattr(broken, name, value)
        assert stereo_input.camera_info_problem(broken) == kind, change


# --------------------------------------------------------------------------- the node over DDS


@pytest.fixture(scope='module')
def node(tmp_path_factory):
    """Start a node with exact sync; the stamps the tests use only ever increase."""
    log = str(tmp_path_factory.mktemp('faults') / 'node.log')
    with NodeHarness(DOMAIN_ID, log) as harness:
        yield harness


def _check_alive_and_next_pair_published(node, sec):
    assert node.alive(), 'the node died:\n' + node.log_text()[-3000:]
    node.send(valid_set(sec * S))
    assert node.wait_published(sec * S) is not None, node.log_text()[-3000:]


def test_late_completed_set_is_dropped_not_published(node):
    """Item 4: a set completed late ([1, 11, 10]) is counted and dropped, never published."""
    node.send(valid_set(1 * S))
    assert node.wait_published(1 * S) is not None, node.log_text()[-3000:]
    late = valid_set(10 * S)
    node.send(late, order=[t for t in late if t != 'right/camera_info'])
    node.send(valid_set(11 * S))
    assert node.wait_published(11 * S) is not None
    node.send({'right/camera_info': late['right/camera_info']})  # completes set 10
    assert node.wait_log('stale_stamp, 1 so far'), node.log_text()[-3000:]
    assert 10 * S not in node.published
    _check_alive_and_next_pair_published(node, 12)
    assert node.published_order == sorted(node.published_order)


@pytest.mark.parametrize('sec, fault, kind', [
    (21, 'empty_rgb8', 'image_empty'),
    (23, 'big_endian', 'image_byte_order'),
    (25, 'short_data', 'image_data_size'),
    (27, 'float_image', 'image_conversion'),
])
def test_image_conversion_failure_drops_the_pair_with_a_named_warning(node, sec, fault, kind):
    """Item 5: any conversion failure (None, AttributeError, CvBridgeError) drops the pair."""
    msgs = valid_set(sec * S)
    image = msgs['left/image_rect']
    if fault == 'empty_rgb8':
        image.height = image.width = image.step = 0
        image.encoding, image.data = 'rgb8', b''
    elif fault == 'big_endian':
        image.is_bigendian = sys.byteorder == 'little'
        if hasattr(np.ndarray, 'newbyteorder'):
            # NumPy 1 (apt ROS 2 users): cv_bridge swaps the bytes, as upstream
            # does there; one-byte rgb8 data is unchanged and the pair is used.
            node.send(msgs)
            assert node.wait_published(sec * S) is not None, node.log_text()[-3000:]
            return
    elif fault == 'short_data':
        image.data = bytes(image.data)[:-7]
    else:
        image.encoding, image.step = '32FC1', image.width * 4
        image.data = np.zeros((image.height, image.width), np.float32).tobytes()
    node.send(msgs)
    assert node.wait_log(f'dropping stereo pair ({kind}'), node.log_text()[-3000:]
    assert sec * S not in node.published
    _check_alive_and_next_pair_published(node, sec + 1)


@pytest.mark.parametrize('topic', ['left/image_rect', 'right/camera_info'])
def test_negative_stamp_never_ends_the_node(node, topic):
    """Item 8: a negative header.stamp.sec is dropped before the synchronizer, with a warning."""
    sec = 31 if topic == 'left/image_rect' else 33
    msgs = valid_set(sec * S)
    msgs[topic].header.stamp = Time(sec=-5, nanosec=0)
    node.send(msgs)
    assert node.wait_log(f'dropping a message on /{topic} (negative_stamp, 1 so far): '
                         'negative header.stamp.sec (-5)'), node.log_text()[-3000:]
    _check_alive_and_next_pair_published(node, sec + 1)


def test_empty_frame_id_falls_back_to_camera_info_or_drops(node):
    """Item 11: never publish an empty frame_id; take CameraInfo's, else drop with a warning."""
    msgs = valid_set(41 * S)
    msgs['left/image_rect'].header.frame_id = ''
    node.send(msgs)
    published = node.wait_published(41 * S)
    assert published is not None and published.header.frame_id == 'left_camera_optical_frame'
    msgs = valid_set(42 * S)
    msgs['left/image_rect'].header.frame_id = ''
    msgs['left/camera_info'].header.frame_id = ''
    node.send(msgs)
    assert node.wait_log('dropping stereo pair (frame_id'), node.log_text()[-3000:]
    assert 42 * S not in node.published
    _check_alive_and_next_pair_published(node, 43)


def test_warnings_are_throttled_by_kind(node):
    """Item 10: varying sizes give one line; two calibration problems both show."""
    left, right = synthetic_pair()
    left_cam, right_cam = synthetic_rig()
    for k in range(5):  # five pairs with different image sizes than their camera_info
        size = 200 + 8 * k
        small = (np.ascontiguousarray(left[:size // 2, :size]),
                 np.ascontiguousarray(right[:size // 2, :size]))
        node.send(valid_set((51 + k) * S, pair=small, rig=(left_cam, right_cam)))
    for sec, field, value in ((57, 'distortion_model', 'fisheye9'), (58, 'k', [0.0] * 9)):
        msgs = valid_set(sec * S)
        setattr(msgs['left/camera_info'], field, value)
        node.send(msgs)
    assert node.wait_log('K is all zeros'), node.log_text()[-3000:]
    log = node.log_text()
    assert "unsupported distortion model 'fisheye9'" in log
    assert len(re.findall(r'dropping stereo pair \(image_size', log)) == 1, log[-3000:]
    _check_alive_and_next_pair_published(node, 59)


def test_invalid_nanoseconds_dropped(node):
    """A stamp with nanosec >= 1e9 is not valid builtin_interfaces/Time: dropped, warned."""
    msgs = valid_set(61 * S)
    for msg in msgs.values():
        msg.header.stamp = Time(sec=61, nanosec=1_500_000_000)
    node.send(msgs)
    assert node.wait_log('(stamp_nanosec, 1 so far): header.stamp.nanosec 1500000000 is '
                         'not below 1e9'), node.log_text()[-3000:]
    _check_alive_and_next_pair_published(node, 63)


def test_inputs_that_never_synchronize_are_reported(node):
    """Item 9: skewed stamps: a warning names the arriving topics and their stamp offsets."""
    for k in range(12):
        sec = 71 + k
        msgs = valid_set(sec * S)
        for topic in ('right/image_rect', 'right/camera_info'):
            msgs[topic].header.stamp = to_stamp(sec * S + 250_000_000)
        node.send(msgs)
        node.spin(0.5)
    assert node.wait_log('no synchronized stereo pair', timeout=15.0), node.log_text()[-3000:]
    log = node.log_text()
    assert re.search(r'/right/image_rect \(\d+ msgs, stamp offset \+0\.250 s\)', log), log[-2000:]
    assert 'exact sync needs identical stamps' in log
    _check_alive_and_next_pair_published(node, 90)
