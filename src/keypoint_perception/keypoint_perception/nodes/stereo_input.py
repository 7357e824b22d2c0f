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
"""Guards between the stereo inputs and the pipeline: nothing a publisher sends ends the node.

The stereo keypoint node receives four topics (left/right image and
CameraInfo) through ``message_filters``.  Upstream ``message_filters``
(4-6, Python) has two properties a node must protect itself from:

* a message whose ``header.stamp.sec`` is negative raises ``ValueError``
  inside the synchronizer, i.e. outside the node's callback, which ends
  ``rclpy.spin`` (and the exact synchronizer keeps its lock);
* a late message can complete an older set after a newer one was emitted,
  so emitted stamps are not monotonic (e.g. 1, 11, 10): publishing them
  would send TF back in time.

This module holds the pieces the node puts around the synchronizer; none
needs a node or DDS, so each can be tested alone:

* :class:`InputFilter` -- a ``message_filters.SimpleFilter`` between each
  Subscriber and the synchronizer that drops messages with invalid stamps
  and records arrivals;
* :class:`InputMonitor` -- notices inputs that arrive without ever forming a
  synchronized pair and says which topics arrive and how their stamps are
  offset (issue 16 item 9);
* :class:`StampOrder` -- admits a pair only if its stamp is not older than
  the last one published (issue 16 item 4);
* :class:`WarningThrottle` -- rate-limits warnings by an explicit kind of
  problem (issue 16 item 10);
* :func:`input_qos` -- the inputs' QoS (``reliable_qos``, ``queue_size``);
* :class:`DroppedPair`, :func:`image_problem`, :func:`camera_info_problem`
  -- name why a pair is dropped, with a kind to throttle on.
"""

import math
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import message_filters
import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.camera import DISTORTION_LENGTHS

#: Seconds between two warnings of the same kind, and how long inputs may arrive
#: without a synchronized pair before the node says so.
WARN_PERIOD_S = 5.0

#: :meth:`StampOrder.admit` results.
ADMIT = 'admit'
STALE = 'stale'
TIME_JUMP = 'time_jump'


class DroppedPair(Exception):
    """A synchronized pair that cannot be processed; the node warns and skips it.

    Attributes:
        kind: the kind of problem, the key warnings are throttled and counted
            by (e.g. ``'image_encoding'``, ``'left/camera_info_k'``).
        text: the warning, naming the input and what is wrong with it.
    """

    def __init__(self, kind: str, text: str):
        """Create the exception for problem ``kind`` described by ``text``."""
        super().__init__(text)
        self.kind = kind
        self.text = text


class WarningThrottle:
    """Let one warning per kind of problem through every ``period_s`` seconds.

    Different kinds never hide each other; a stream of one kind gives one
    line per period however its text varies (sizes, encodings, values).
    """

    def __init__(self, period_s: float = WARN_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic):
        """Throttle with ``period_s`` seconds per kind, timed by ``clock`` (seconds)."""
        self.period_s = float(period_s)
        self.clock = clock
        self._last: Dict[str, float] = {}

    def ready(self, kind: str) -> bool:
        """Return True (and start a new period) if a warning of ``kind`` may be logged now."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.period_s:
            return False
        self._last[kind] = now
        return True


def stamp_problem(stamp) -> Tuple[str, str]:
    """Say what is wrong with a ``builtin_interfaces/Time`` stamp.

    Valid: ``sec >= 0`` (rclpy's ``Time`` refuses negative seconds, which is
    what makes upstream ``message_filters`` raise) and ``nanosec < 1e9``
    (the range ``builtin_interfaces/Time`` documents; larger values would
    alias another stamp).

    Returns:
        ``(kind, text)``: ``('', '')`` for a valid stamp, else the kind
        (``'negative_stamp'`` or ``'stamp_nanosec'``) and a description.
    """
    sec, nanosec = int(stamp.sec), int(stamp.nanosec)
    if sec < 0:
        return 'negative_stamp', f'negative header.stamp.sec ({sec})'
    if nanosec >= 1_000_000_000:
        return 'stamp_nanosec', f'header.stamp.nanosec {nanosec} is not below 1e9'
    return '', ''


def stamp_ns(stamp) -> int:
    """Return a valid ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def input_qos(reliable: bool, depth: int) -> QoSProfile:
    """Return the QoS of the keypoint nodes' image and camera_info subscriptions.

    Best effort (``reliable`` False): the sensor-data profile (best effort,
    volatile, keep last) with ``depth`` instead of its fixed 5, so that the
    ``queue_size`` parameter sizes the readers as it says.  Reliable: the
    same depth, reliable delivery; matches reliable publishers only.

    Args:
        reliable: the ``reliable_qos`` parameter.
        depth: the ``queue_size`` parameter (>= 1).
    """
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT)


class InputMonitor:
    """Record arrivals per input topic and notice when they never form a pair.

    Times are seconds of ``clock`` (monotonic wall time by default); stamps
    are integer nanoseconds of ``header.stamp``.
    """

    def __init__(self, topics: Sequence[str], sync_rule: str,
                 period_s: float = WARN_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic, what: str = 'stereo pair'):
        """Monitor ``topics`` (index 0: the left image, the stamp reference).

        Args:
            topics: resolved topic names, in the synchronizer's input order.
            sync_rule: what the synchronizer needs, quoted in the report
                (e.g. ``'exact sync needs identical stamps on all topics'``).
            period_s: how long inputs may arrive without a pair.
            clock: time source in seconds.
            what: the synchronized set's name in the report (``'stereo
                pair'``; the mono node: ``'image and camera_info pair'``).
        """
        self.topics = list(topics)
        self.sync_rule = sync_rule
        self.what = what
        self.period_s = float(period_s)
        self.clock = clock
        self.last_pair = clock()
        self.last_report = None
        self.pairs = 0
        self._arrival: List[Optional[float]] = [None] * len(self.topics)
        self._stamp: List[Optional[int]] = [None] * len(self.topics)
        self._count = [0] * len(self.topics)

    def record(self, index: int, stamp: int) -> None:
        """Note that a message with ``stamp`` (ns) arrived on input ``index``."""
        self._arrival[index] = self.clock()
        self._stamp[index] = stamp
        self._count[index] += 1

    def pair_formed(self) -> None:
        """Note that the synchronizer emitted a pair."""
        self.last_pair = self.clock()
        self.pairs += 1

    def report(self) -> str:
        """Return a warning when inputs arrive but no pair formed for ``period_s`` ('' else).

        The warning names the topics that arrived within the period with
        their message counts and the offset of their newest stamp from the
        newest left image stamp (from the first arriving topic when no left
        image arrives), and the topics that do not arrive.  At most one
        warning per ``period_s``; counts restart after each.
        """
        now = self.clock()
        idle = now - self.last_pair
        recent = [i for i, t in enumerate(self._arrival)
                  if t is not None and now - t <= self.period_s]
        if not recent or idle < self.period_s or (
                self.last_report is not None and now - self.last_report < self.period_s):
            return ''
        self.last_report = now
        ref = 0 if 0 in recent else recent[0]
        arriving = []
        for i in recent:
            offset = (self._stamp[i] - self._stamp[ref]) * 1e-9
            where = 'stamp reference' if i == ref else f'stamp offset {offset:+.3f} s'
            arriving.append(f'{self.topics[i]} ({self._count[i]} msgs, {where})')
        missing = [self.topics[i] for i in range(len(self.topics)) if i not in recent]
        self._count = [0] * len(self.topics)
        text = (f'no synchronized {self.what} for {idle:.1f} s although inputs arrive: '
                f'{", ".join(arriving)}')
        if missing:
            text += f'; not arriving: {", ".join(missing)}'
        return f'{text} ({self.sync_rule}; offsets are newest stamps)'


class InputFilter(message_filters.SimpleFilter):
    """Pass messages of one input on to the synchronizer only if their stamp is valid.

    Connected between a ``message_filters.Subscriber`` and the synchronizer,
    so that no message can make the synchronizer raise (see the module
    docstring).  Valid messages are recorded in the :class:`InputMonitor`;
    invalid ones go to ``on_invalid(index, msg, kind, text)`` instead (see
    :func:`stamp_problem`; ``'no_stamp'`` for a message without one).  An
    exception raised further down (the synchronizer or its callbacks) is
    passed to ``on_error(index, exc)`` instead of ending the executor.
    """

    def __init__(self, source, index: int, monitor: InputMonitor,
                 on_invalid: Callable, on_error: Callable):
        """Connect to filter ``source`` as input ``index`` of ``monitor``."""
        message_filters.SimpleFilter.__init__(self)
        self.index = index
        self.monitor = monitor
        self.on_invalid = on_invalid
        self.on_error = on_error
        self.incoming_connection = source.registerCallback(self.add)

    def add(self, msg) -> None:
        """Check one message and pass it on (or report it)."""
        header = getattr(msg, 'header', None)
        stamp = getattr(header, 'stamp', None)
        kind, text = ('no_stamp', 'no header.stamp') if stamp is None else \
            stamp_problem(stamp)
        if kind:
            self.on_invalid(self.index, msg, kind, text)
            return
        self.monitor.record(self.index, stamp_ns(stamp))
        try:
            self.signalMessage(msg)
        except Exception as exc:  # noqa: B902 -- nothing a publisher sends may end the node
            self.on_error(self.index, exc)


class StampOrder:
    """Admit a pair only if its stamp is not older than the last one published.

    Upstream synchronizers can emit a late-completed set after a newer one
    (see the module docstring); such a *stale* pair is refused.  Equal stamps
    are admitted.  When more than ``reset_after`` pairs in a row are stale,
    the input's time went back for good (a bag played again, a simulator
    restarted): the pair is admitted as a :data:`TIME_JUMP` and the order
    starts again from it.  With ``reset_after`` = queue size + 1, late sets
    (at most one per queued message) never reach that count.
    """

    def __init__(self, reset_after: int):
        """Start with nothing published; see the class docstring for ``reset_after``."""
        self.reset_after = int(reset_after)
        self.last: Optional[int] = None
        self.stale_in_row = 0

    def admit(self, stamp: int) -> str:
        """Return :data:`ADMIT`, :data:`STALE` or :data:`TIME_JUMP` for a pair at ``stamp`` ns."""
        if self.last is None or stamp >= self.last:
            return ADMIT
        self.stale_in_row += 1
        if self.stale_in_row > self.reset_after:
            return TIME_JUMP
        return STALE

    def published(self, stamp: int) -> None:
        """Record that a pair stamped ``stamp`` (ns) was published."""
        self.last = stamp
        self.stale_in_row = 0


def image_problem(msg, bridge) -> str:
    """Name the kind of problem of a ``sensor_msgs/Image`` that failed to convert.

    Only for throttling and counting (the conversion itself is ``bridge``'s,
    a ``cv_bridge.CvBridge``): ``'image_empty'`` (no pixels),
    ``'image_byte_order'`` (``is_bigendian`` differs from the host: upstream
    cv_bridge fails on it with NumPy 2), ``'image_encoding'`` (unknown),
    ``'image_step'`` (``step`` shorter than a row), ``'image_data_size'``
    (``len(data)`` is not ``step * height``), else ``'image_conversion'``
    (e.g. an encoding that has no rgb8 conversion, such as ``32FC1``).
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        return 'image_empty'
    if bool(msg.is_bigendian) != (sys.byteorder == 'big'):
        return 'image_byte_order'
    try:
        dtype, channels = bridge.encoding_to_dtype_with_channels(msg.encoding)
    except Exception:  # noqa: B902 -- CvBridgeError, or upstream's RuntimeError/KeyError
        return 'image_encoding'
    if step < width * np.dtype(dtype).itemsize * channels:
        return 'image_step'
    if len(msg.data) != step * height:
        return 'image_data_size'
    return 'image_conversion'


def camera_info_problem(info) -> str:
    """Name the kind of problem of a ``sensor_msgs/CameraInfo`` the camera model refused.

    Only for throttling and counting (validation itself is
    :class:`~keypoint_perception.core.camera.CameraModel`'s): the first of
    ``'distortion_model'`` (unknown), ``'d'``, ``'k'``, ``'r'``, ``'p'``
    (wrong length, NaN/inf or all zeros), ``'size'`` (width or height not
    positive), else ``'calibration'`` (e.g. non-positive focal length, R not
    a rotation, a region of interest).
    """
    model = str(info.distortion_model or '')
    if model not in DISTORTION_LENGTHS:
        return 'distortion_model'
    lengths = {'d': None, 'k': 9, 'r': 9, 'p': 12}
    for name, length in lengths.items():
        values = list(getattr(info, name))
        if length is not None and len(values) != length:
            return name
        if name == 'd' and values and (any(values) if not model else
                                       len(values) not in DISTORTION_LENGTHS[model]):
            return name
        if not all(math.isfinite(v) for v in values):
            return name
        if name in ('k', 'p') and not any(values):
            return name
    if int(info.width) <= 0 or int(info.height) <= 0:
        return 'size'
    return 'calibration'
