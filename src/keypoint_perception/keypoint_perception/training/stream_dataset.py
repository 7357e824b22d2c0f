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
"""Trainer side of streaming: a PyTorch ``IterableDataset`` over streaming nodes.

Example::

    from keypoint_perception.training.stream_dataset import StreamDataset
    ds = StreamDataset(['/sim0', '/sim1'], max_samples=10000)   # one epoch
    for s in ds:                        # or torch.utils.data.DataLoader(ds, batch_size=None)
        s['left'], s['right']           # (H, W, 3) uint8 RGB
        s['kp2d_left'], s['vis_left']   # (J, 2) float32 px, (J,) int64 COCO 0/1/2
        s['bins']                       # {variable: bin}, for feedback
        s['namespace']                  # '/sim0' or '/sim1'
    ds.send_feedback('/sim0', {'tilt_x': [0, 0, 1, 3, 0, 0]})
    ds.close()

The dataset owns its own rclpy context, node and executor, spun in a
background thread, so it does not interfere with other ROS code of the
process.  Per source it subscribes to ``<ns>/left/image_raw``,
``<ns>/right/image_raw``, ``<ns>/left/camera_info``, ``<ns>/right/camera_info``
and ``<ns>/labels`` (reliable, keep last ``qos_depth``) and pairs the five
messages of a sample by their common header stamp; complete samples go into
a bounded per-source queue that drops the oldest sample when the trainer is
slower than the simulators.  Iteration takes samples round-robin over the
sources that have one waiting, so a fast simulator cannot crowd out a slow
one.  ``<ns>/sampler_state`` is followed (transient local) for
:meth:`StreamDataset.sampler_state`.

With ``DataLoader(num_workers=N)`` each worker process starts its own ROS
context and takes the sources ``i % N == worker_id`` (so no sample is
yielded twice; ``max_samples`` then counts per worker); there must be at
least as many sources as workers.  With one or few sources use
``num_workers=0``: decoding happens in the background thread anyway.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Union

from keypoint_msgs.msg import SampleLabels, SamplerFeedback, SamplerState
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
import torch.utils.data

from ..nodes.sample_messages import (camera_info_dict, feedback_msg, image_to_array,
                                     msg_to_labels, sampler_state_dict)

_PARTS = ('left', 'right', 'left_info', 'right_info', 'labels')


def normalize_namespace(ns: str) -> str:
    """Absolute namespace without a trailing slash (``'sim0/'`` -> ``'/sim0'``)."""
    ns = '/' + ns.strip().strip('/')
    return ns


class _Source:
    """Per-namespace state: subscriptions' partial samples and the ready queue."""

    def __init__(self, ns: str, queue_size: int, max_partial: int):
        self.ns = ns
        self.queue = collections.deque(maxlen=queue_size)
        self.partial: 'collections.OrderedDict[tuple, dict]' = collections.OrderedDict()
        self.max_partial = max_partial
        self.received = 0       # complete samples
        self.dropped = 0        # complete samples pushed out of the full queue
        self.incomplete = 0     # partial samples given up
        self.errors = 0         # samples that failed to decode
        self.collisions = 0     # partial samples dropped: two samples sent one stamp
        self.last_error = ''
        self.max_index = -1     # highest sample index received
        self.state = None       # latest sampler_state as a dict
        self.state_messages = 0  # sampler_state messages received (restarts included)
        self.feedback_pub = None

    def put(self, sample: dict) -> None:
        """Queue a complete sample, dropping the oldest when full (hold the lock)."""
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(sample)
        self.received += 1


class StreamDataset(torch.utils.data.IterableDataset):
    """Samples streamed by one or many ``sim_stream_node`` instances.

    Args:
        namespaces: namespace of a streaming node or a list of them.
        queue_size: complete samples buffered per source (oldest dropped).
        max_samples: samples per iteration (an "epoch"); ``None`` = endless.
        timeout: seconds to wait for the next sample before raising
            ``TimeoutError``; ``None`` waits forever.
        qos_depth: history depth of the reliable subscriptions (>= 5: large
            images to a depth-1 reader get lost with Fast DDS).
        domain_id: ROS domain id of the dataset's context (``None``: the
            ``ROS_DOMAIN_ID`` environment variable).
        node_name: name of the dataset's node.
    """

    def __init__(self, namespaces: Union[str, Sequence[str]], queue_size: int = 16,
                 max_samples: Optional[int] = None, timeout: Optional[float] = 60.0,
                 qos_depth: int = 10, domain_id: Optional[int] = None,
                 node_name: str = 'stream_dataset'):
        super().__init__()
        if isinstance(namespaces, str):
            namespaces = [namespaces]
        self.namespaces = [normalize_namespace(n) for n in namespaces]
        if not self.namespaces or len(set(self.namespaces)) != len(self.namespaces):
            raise ValueError(f'need distinct namespaces, got {namespaces}')
        if queue_size < 1:
            raise ValueError('queue_size must be >= 1')
        self.queue_size = int(queue_size)
        self.max_samples = max_samples
        self.timeout = timeout
        self.qos_depth = int(qos_depth)
        self.domain_id = domain_id
        self.node_name = node_name
        self._rt = None  # runtime: context, node, executor, thread (never pickled)

    # -- runtime --------------------------------------------------------------------

    def __getstate__(self):
        """Pickle the configuration only (DataLoader workers start their own ROS)."""
        d = dict(self.__dict__)
        d['_rt'] = None
        return d

    def start(self, namespaces: Optional[List[str]] = None) -> 'StreamDataset':
        """Create the context, node, subscriptions and background executor (idempotent).

        ``namespaces`` restricts the subscriptions to some sources (used by
        DataLoader workers); default: all.
        """
        if self._rt is not None:
            return self
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=self.domain_id)
        node = rclpy.create_node(self.node_name, context=ctx)
        data_qos = QoSProfile(depth=self.qos_depth, history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE)
        state_qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                               reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.TRANSIENT_LOCAL)
        fb_qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                            reliability=ReliabilityPolicy.RELIABLE)
        cond = threading.Condition(threading.RLock())
        sources: Dict[str, _Source] = {}
        for ns in namespaces if namespaces is not None else self.namespaces:
            src = _Source(ns, self.queue_size, max_partial=4 * self.qos_depth)
            sources[ns] = src
            for part, msg_type, topic in (('left', Image, 'left/image_raw'),
                                          ('right', Image, 'right/image_raw'),
                                          ('left_info', CameraInfo, 'left/camera_info'),
                                          ('right_info', CameraInfo, 'right/camera_info'),
                                          ('labels', SampleLabels, 'labels')):
                node.create_subscription(msg_type, f'{ns}/{topic}',
                                         self._part_callback(src, part), data_qos)
            node.create_subscription(SamplerState, f'{ns}/sampler_state',
                                     self._state_callback(src), state_qos)
            src.feedback_pub = node.create_publisher(SamplerFeedback, f'{ns}/feedback', fb_qos)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        stop = threading.Event()

        def spin():
            while not stop.is_set() and ctx.ok():
                try:
                    executor.spin_once(timeout_sec=0.05)
                except Exception:  # noqa: B902 - context shut down under us
                    if stop.is_set() or not ctx.ok():
                        break
                    raise

        thread = threading.Thread(target=spin, name='stream_dataset_executor', daemon=True)
        self._rt = {'ctx': ctx, 'node': node, 'executor': executor, 'thread': thread,
                    'stop': stop, 'cond': cond, 'sources': sources, 'rr': 0}
        thread.start()
        return self

    def close(self) -> None:
        """Stop the executor thread and shut the dataset's ROS context down."""
        rt, self._rt = self._rt, None
        if rt is None:
            return
        rt['stop'].set()
        rt['thread'].join(timeout=5.0)
        try:
            rt['executor'].shutdown()
            rt['node'].destroy_node()
        finally:
            if rt['ctx'].ok():
                rt['ctx'].try_shutdown()

    def __enter__(self):
        """Start on entering a ``with`` block."""
        return self.start()

    def __exit__(self, *exc):
        """Close on leaving a ``with`` block."""
        self.close()

    def __del__(self):
        """Close on garbage collection (best effort)."""
        try:
            self.close()
        except Exception:  # noqa: B902 - interpreter shutdown
            pass

    @property
    def node(self):
        """Return the dataset's rclpy node, starting the dataset if needed."""
        return self.start()._rt['node']

    # -- callbacks (executor thread) ------------------------------------------------

    def _part_callback(self, src: _Source, part: str):
        def cb(msg):
            st = msg.header.stamp
            key = (st.sec, st.nanosec)
            rt = self._rt
            if rt is None:
                return
            with rt['cond']:
                parts = src.partial.get(key)
                if parts is None:
                    parts = src.partial[key] = {}
                    while len(src.partial) > src.max_partial:
                        src.partial.popitem(last=False)
                        src.incomplete += 1
                if part in parts:  # a second sample with this stamp: neither can be trusted
                    del src.partial[key]
                    src.collisions += 1
                    return
                parts[part] = msg
                if len(parts) < len(_PARTS):
                    return
                del src.partial[key]
            try:
                sample = self._assemble(src.ns, parts)
            except Exception as e:  # noqa: B902 - a malformed sample is counted, not fatal
                with rt['cond']:
                    src.errors += 1
                    src.last_error = repr(e)
                return
            with rt['cond']:
                src.max_index = max(src.max_index, int(sample['labels']['index']))
                src.put(sample)
                rt['cond'].notify_all()
        return cb

    def _state_callback(self, src: _Source):

        def cb(msg):
            rt = self._rt
            if rt is None:
                return
            with rt['cond']:
                src.state = sampler_state_dict(msg)
                src.state_messages += 1
                rt['cond'].notify_all()
        return cb

    @staticmethod
    def _assemble(ns: str, parts: Mapping) -> dict:
        """Build the sample dict of one source's five messages (see :meth:`__iter__`)."""
        labels = msg_to_labels(parts['labels'])
        labels['camera_info'] = {'left': camera_info_dict(parts['left_info']),
                                 'right': camera_info_dict(parts['right_info'])}
        st = parts['labels'].header.stamp
        s = {'key': labels['key'], 'namespace': ns, 'stamp': st.sec + 1e-9 * st.nanosec,
             'labels': labels,
             'left': image_to_array(parts['left']), 'right': image_to_array(parts['right'])}
        for n in ('left', 'right'):
            s[f'kp2d_{n}'] = np.asarray(labels['keypoints_2d'][n], np.float32).reshape(-1, 2)
            s[f'vis_{n}'] = np.asarray(labels['visibility'][n], np.int64)
            ci = labels['camera_info'][n]
            s[f'K_{n}'] = np.asarray(ci['K'], np.float64).reshape(3, 3)
            s[f'P_{n}'] = np.asarray(ci['P'], np.float64).reshape(3, 4)
            s[f'D_{n}'] = np.asarray(ci['D'], np.float64)
        s['kp3d'] = np.asarray(labels['keypoints_3d'], np.float32).reshape(-1, 3)
        s['pose'] = np.asarray(labels['object_pose'], np.float64)
        s['baseline'] = labels['baseline']
        s['bins'] = {n: d['bin'] for n, d in labels['variables'].items()}
        return s

    # -- iteration ------------------------------------------------------------------

    def _my_namespaces(self) -> List[str]:
        info = torch.utils.data.get_worker_info()
        if info is None:
            return list(self.namespaces)
        if info.num_workers > len(self.namespaces):
            raise RuntimeError(f'{info.num_workers} DataLoader workers for '
                               f'{len(self.namespaces)} stream sources: use at most one '
                               'worker per source (or num_workers=0)')
        return [ns for i, ns in enumerate(self.namespaces) if i % info.num_workers == info.id]

    def __iter__(self) -> Iterator[dict]:
        """Yield samples, round-robin over the sources that have one waiting.

        Each sample is a dict with ``namespace`` (source), ``key`` (9-digit
        index), ``stamp`` (s), ``left``/``right`` (H, W, 3) uint8 RGB,
        ``labels`` (the on-disk JSON label format, see
        sim_datagen's writer, plus ``variables[*]['num_bins']``),
        ``kp2d_left``/``kp2d_right`` (J, 2) float32 px,
        ``vis_left``/``vis_right`` (J,) int64 COCO visibility 0/1/2, ``kp3d``
        (J, 3) float32 m in the left optical frame, ``pose`` (4, 4),
        ``K_*`` (3, 3), ``P_*`` (3, 4), ``D_*``, ``baseline`` (m) and
        ``bins`` ``{variable: bin}``.

        Raises:
            TimeoutError: no sample arrived within ``timeout`` seconds.
        """
        if self._rt is None:
            self.start(self._my_namespaces())
        rt = self._rt
        order = list(rt['sources'].values())
        n = 0
        while self.max_samples is None or n < self.max_samples:
            deadline = None if self.timeout is None else time.monotonic() + self.timeout
            with rt['cond']:
                while True:
                    src = self._pick(rt, order)
                    if src is not None:
                        sample = src.queue.popleft()
                        break
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(
                            f'no sample within {self.timeout} s from '
                            f'{[s.ns for s in order]}; stats: {self.stats()}')
                    rt['cond'].wait(timeout=0.5 if left is None else min(left, 0.5))
            n += 1
            yield sample

    @staticmethod
    def _pick(rt, order):
        """Next source with a waiting sample, round-robin (call with the lock held)."""
        k = len(order)
        for i in range(k):
            src = order[(rt['rr'] + i) % k]
            if src.queue:
                rt['rr'] = (rt['rr'] + i + 1) % k
                return src
        return None

    # -- feedback, state, statistics ------------------------------------------------

    def _source(self, namespace: str) -> _Source:
        ns = normalize_namespace(namespace)
        src = self.start()._rt['sources'].get(ns)
        if src is None:
            raise KeyError(f'{namespace!r} is not a source of this dataset '
                           f'({list(self._rt["sources"])})')
        return src

    def send_feedback(self, namespace: str, counts: Mapping[str, Sequence[float]],
                      source: str = '', wait: float = 5.0) -> bool:
        """Publish bin counts to the ``feedback`` topic of one streaming node.

        Args:
            namespace: the node's namespace (one of this dataset's sources).
            counts: ``{variable name: counts per bin}`` (non-negative; one
                entry per bin of the variable, see ``labels['variables']
                [name]['num_bins']``), e.g. from
                ``SceneSampler.counts_from_bins`` over the bins of the
                highest-loss validation samples.
            source: identifier of the sender, logged by the node and echoed
                in its ``sampler_state`` (``last_feedback_source``) once
                applied: make it unique to tell the answer apart (see
                :meth:`wait_for_sampler_state`).
            wait: seconds to wait for the node's subscription to be matched
                (a message published before that is lost).

        Returns:
            True when the node's subscription was matched and the message was
            published; the node may still reject invalid counts (it logs a
            warning and leaves ``sampler_state`` unchanged).
        """
        pub = self._source(namespace).feedback_pub
        deadline = time.monotonic() + wait
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        if pub.get_subscription_count() == 0:
            return False
        pub.publish(feedback_msg(counts, source))
        return True

    def sampler_state(self, namespace: str) -> Optional[dict]:
        """Latest ``sampler_state`` of a source (see ``nodes.sample_messages.sampler_state_dict``).

        ``None`` until one has arrived.  ``state['variables'][name]['theta']``
        are the current Dirichlet parameters.
        """
        src = self._source(namespace)
        with self._rt['cond']:
            return src.state

    def state_messages(self, namespace: str) -> int:
        """Return how many ``sampler_state`` messages a source has sent so far.

        Read it before sending feedback and pass it as ``newer_than`` to
        :meth:`wait_for_sampler_state`: the node's answer is then told apart
        from earlier states even when the node was restarted meanwhile (its
        ``num_updates`` starts again at 0).
        """
        src = self._source(namespace)
        with self._rt['cond']:
            return src.state_messages

    def wait_for_sampler_state(self, namespace: str, min_updates: int = 0,
                               timeout: float = 10.0,
                               newer_than: Optional[int] = None,
                               feedback_source: Optional[str] = None) -> Optional[dict]:
        """Wait for a ``sampler_state`` with ``num_updates >= min_updates``.

        Args:
            namespace: the source.
            min_updates: fewest feedback messages the node must have applied.
            timeout: seconds.
            newer_than: if given, only a state received after the first
                ``newer_than`` messages counts (see :meth:`state_messages`).
            feedback_source: if given, only a state whose last applied
                feedback had this ``source`` counts: a late answer to an
                earlier message does not confirm a later one.

        Returns:
            The state dict (see :meth:`sampler_state`), or None on timeout.
        """
        src = self._source(namespace)
        rt = self._rt
        deadline = time.monotonic() + timeout
        with rt['cond']:
            while (src.state is None or src.state['num_updates'] < min_updates
                   or (newer_than is not None and src.state_messages <= newer_than)
                   or (feedback_source is not None
                       and src.state.get('last_feedback_source') != feedback_source)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                rt['cond'].wait(timeout=min(left, 0.5))
            return src.state

    def wait_for_publishers(self, timeout: float = 30.0) -> bool:
        """Wait until every source's ``labels`` topic has a publisher."""
        node = self.node
        srcs = list(self._rt['sources'])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(node.count_publishers(f'{ns}/labels') > 0 for ns in srcs):
                return True
            time.sleep(0.05)
        return False

    def stats(self) -> Dict[str, dict]:
        """Return counters per source.

        ``received`` (complete samples), ``dropped`` (pushed out of a full
        queue), ``incomplete`` (partial samples given up), ``collisions``
        (partial samples dropped because two samples of the source shared a
        stamp), ``errors`` (failed to decode, with ``last_error``), ``queued``
        (waiting now) and ``max_index`` (highest sample index received, -1
        before any).
        """
        rt = self._rt
        if rt is None:
            return {}
        with rt['cond']:  # an RLock: also called with it held
            return {ns: {'received': s.received, 'dropped': s.dropped,
                         'incomplete': s.incomplete, 'collisions': s.collisions,
                         'errors': s.errors, 'last_error': s.last_error,
                         'queued': len(s.queue), 'max_index': s.max_index}
                    for ns, s in rt['sources'].items()}
