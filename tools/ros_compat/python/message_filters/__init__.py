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
Minimal stand-in for the ROS 2 ``message_filters`` Python package.

Only for the PyPI-wheel ROS 2 environment, where no ``message_filters`` wheel
exists. The public names and signatures follow upstream ``message_filters``:

* :class:`SimpleFilter` (``registerCallback(cb, *args)``, ``signalMessage``),
* :class:`Subscriber` (``Subscriber(node, msg_type, topic, qos_profile=10)``),
* :class:`Cache`,
* :class:`TimeSynchronizer` (``TimeSynchronizer(fs, queue_size)``, exact stamps),
* :class:`ApproximateTimeSynchronizer`
  (``ApproximateTimeSynchronizer(fs, queue_size, slop, allow_headerless=False)``,
  ``slop`` in seconds).

On a real ROS 2 installation the real package is always present and is found
first on ``PYTHONPATH``; this module is never used there.
"""

import itertools
import threading

from rclpy.clock import ROSClock
from rclpy.duration import Duration
import rclpy.logging
from rclpy.time import Time

__all__ = [
    'ApproximateTimeSynchronizer',
    'Cache',
    'SimpleFilter',
    'Subscriber',
    'TimeSynchronizer',
]


def _stamp_of(msg):
    """Return ``msg.header.stamp`` as :class:`rclpy.time.Time`, or None if headerless."""
    header = getattr(msg, 'header', None)
    stamp = getattr(header, 'stamp', None)
    if stamp is None:
        return None
    if isinstance(stamp, Time):
        return stamp
    return Time.from_msg(stamp)


def _warn_headerless(logger_name):
    """Log (once per call site) that a headerless message was dropped."""
    rclpy.logging.get_logger(logger_name).warning(
        'message without header.stamp dropped; pass allow_headerless=True to '
        'stamp headerless messages with the current ROS time instead',
        once=True)


class SimpleFilter:
    """Base class of all filters: keeps callbacks and calls them with the output."""

    def __init__(self):
        """Create a filter with no callbacks."""
        self.callbacks = {}

    def registerCallback(self, cb, *args):
        """
        Register ``cb`` to be called with this filter's output.

        The callback is called with the filter's output messages followed by
        ``args``. Returns a connection id (the key in :attr:`callbacks`).
        """
        conn = len(self.callbacks)
        while conn in self.callbacks:
            conn += 1
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msg):
        """Call every registered callback with ``msg`` followed by its extra args."""
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


class Subscriber(SimpleFilter):
    """
    Subscription filter: passes every message of one topic on to its callbacks.

    Takes the same arguments as :meth:`rclpy.node.Node.create_subscription`
    except the callback; ``qos_profile`` is a :class:`rclpy.qos.QoSProfile` or a
    history depth and defaults to 10, like upstream.
    """

    def __init__(self, node, msg_type, topic, qos_profile=10, **kwargs):
        """Create the subscription on ``node`` (extra kwargs go to create_subscription)."""
        SimpleFilter.__init__(self)
        self.node = node
        self.topic = topic
        self.sub = node.create_subscription(
            msg_type, topic, self.callback, qos_profile, **kwargs)

    def callback(self, msg):
        """Pass a received message to the registered callbacks."""
        self.signalMessage(msg)

    def getTopic(self):
        """Return the topic name given at construction."""
        return self.topic

    def __getattr__(self, key):
        """Delegate unknown attributes to the rclpy subscription, like upstream."""
        if key == 'sub':
            raise AttributeError(key)
        return getattr(self.sub, key)


class Cache(SimpleFilter):
    """Keep the last ``cache_size`` messages of one input with their stamps."""

    def __init__(self, f, cache_size=1, allow_headerless=False):
        """Connect to filter ``f`` and keep at most ``cache_size`` messages."""
        SimpleFilter.__init__(self)
        self.cache_size = cache_size
        self.allow_headerless = allow_headerless
        self.cache_msgs = []
        self.cache_times = []
        self.incoming_connection = f.registerCallback(self.add)

    def add(self, msg):
        """Store ``msg`` (dropping the oldest beyond the size) and pass it on."""
        stamp = _stamp_of(msg)
        if stamp is None:
            if not self.allow_headerless:
                _warn_headerless('message_filters_cache')
                return
            stamp = ROSClock().now()
        self.cache_times.append(stamp)
        self.cache_msgs.append(msg)
        while len(self.cache_msgs) > self.cache_size:
            del self.cache_msgs[0]
            del self.cache_times[0]
        self.signalMessage(msg)

    def getInterval(self, from_stamp, to_stamp):
        """Return the cached messages with ``from_stamp <= stamp <= to_stamp``."""
        return [m for m, t in zip(self.cache_msgs, self.cache_times)
                if from_stamp <= t <= to_stamp]

    def getElemAfterTime(self, stamp):
        """Return the oldest message with a stamp at or after ``stamp``, or None."""
        newer = [m for m, t in zip(self.cache_msgs, self.cache_times) if t >= stamp]
        return newer[0] if newer else None

    def getElemBeforeTime(self, stamp):
        """Return the newest message with a stamp at or before ``stamp``, or None."""
        older = [m for m, t in zip(self.cache_msgs, self.cache_times) if t <= stamp]
        return older[-1] if older else None

    def getLatestTime(self):
        """Return the newest stamp, or None when empty."""
        return self.cache_times[-1] if self.cache_times else None

    def getOldestTime(self):
        """Return the oldest stamp, or None when empty."""
        return self.cache_times[0] if self.cache_times else None

    def getLast(self):
        """Return the newest message, or None when empty."""
        return self.cache_msgs[-1] if self.cache_msgs else None


class TimeSynchronizer(SimpleFilter):
    """
    Emit one message from each input when all of them carry the same stamp.

    Same algorithm as upstream's Python implementation (message_filters 4-6):
    each input keeps up to ``queue_size`` messages keyed by ``header.stamp``
    (the oldest is dropped on overflow). After every arrival, each stamp now
    present in all queues is emitted, oldest first, as ``(msg_0, ..., msg_n-1)``
    in the order of ``fs``, and only those messages are removed. Older
    messages stay queued, so a late message can complete an older set after
    a newer one was emitted: emitted stamps are NOT monotonic (e.g. 1, 11, 10).
    ``header.stamp`` with a negative ``sec`` raises ValueError (from
    :meth:`rclpy.time.Time.from_msg`) into the caller, as upstream.
    """

    def __init__(self, fs, queue_size):
        """Connect to the filters ``fs``, keeping ``queue_size`` messages per input."""
        SimpleFilter.__init__(self)
        self.queue_size = queue_size
        self.lock = threading.Lock()
        self.connectInput(fs)

    def connectInput(self, fs):
        """Connect one queue to each input filter of ``fs``."""
        self.queues = [{} for _ in fs]
        self.input_connections = [
            f.registerCallback(self.add, q, i)
            for i, (f, q) in enumerate(zip(fs, self.queues))]

    def _insert(self, queue, stamp_ns, msg):
        """Store ``msg`` under ``stamp_ns`` and drop the oldest beyond the queue size."""
        queue[stamp_ns] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]

    def _emit(self, stamps_ns):
        """Signal the messages at ``stamps_ns`` (one per queue) and remove only those."""
        msgs = [q.pop(t) for q, t in zip(self.queues, stamps_ns)]
        self.signalMessage(*msgs)

    def add(self, msg, my_queue, my_queue_index=None):
        """Add a message of one input and emit every set whose stamp is complete."""
        stamp = _stamp_of(msg)
        if stamp is None:
            raise AttributeError(
                'TimeSynchronizer needs messages with header.stamp; use '
                'ApproximateTimeSynchronizer(..., allow_headerless=True)')
        with self.lock:
            self._insert(my_queue, stamp.nanoseconds, msg)
            common = set(self.queues[0]).intersection(*self.queues[1:])
            for t in sorted(common):
                self._emit([t] * len(self.queues))


class ApproximateTimeSynchronizer(TimeSynchronizer):
    """
    Emit one message from each input when their stamps lie within ``slop``.

    Same algorithm as upstream's Python implementation (message_filters 4-6):
    when a message arrives on input ``i``, the other inputs' queued messages
    whose stamps differ from it by at most ``slop`` seconds are candidates,
    tried closest first; the first combination whose stamps span strictly
    less than ``slop`` is emitted in the order of ``fs`` and only its
    messages are removed. Older messages stay queued until the queue
    overflows, so a late message can complete an older set after a newer
    one was emitted (emitted stamps are not monotonic). With
    ``allow_headerless=True`` messages without ``header.stamp`` are stamped
    with the current ROS time on arrival; otherwise they are dropped with a
    warning. A negative ``header.stamp.sec`` raises ValueError into the
    caller, as upstream.
    """

    def __init__(self, fs, queue_size, slop, allow_headerless=False):
        """Connect to ``fs``; ``slop`` is the allowed stamp spread in seconds."""
        TimeSynchronizer.__init__(self, fs, queue_size)
        self.slop = Duration(seconds=slop)
        self.allow_headerless = allow_headerless

    def add(self, msg, my_queue, my_queue_index=None):
        """Add a message of one input and emit the closest set within the slop."""
        stamp = _stamp_of(msg)
        if stamp is None:
            if not self.allow_headerless:
                _warn_headerless('message_filters_approx')
                return
            stamp = ROSClock().now()
        t_new = stamp.nanoseconds
        slop_ns = self.slop.nanoseconds
        with self.lock:
            self._insert(my_queue, t_new, msg)
            if t_new not in my_queue:
                return  # older than everything in a full queue: dropped
            if my_queue_index is None:
                my_queue_index = next(i for i, q in enumerate(self.queues) if q is my_queue)
            candidates = []
            for i, queue in enumerate(self.queues):
                if i == my_queue_index:
                    candidates.append([t_new])
                    continue
                # sorted() is stable: equal distances keep the queue's arrival order
                near = sorted((s for s in queue if abs(s - t_new) <= slop_ns),
                              key=lambda s: abs(s - t_new))
                if not near:
                    return
                candidates.append(near)
            for combo in itertools.product(*candidates):
                if max(combo) - min(combo) < slop_ns:
                    self._emit(list(combo))
                    return
