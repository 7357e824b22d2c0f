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
"""StreamDataset queueing without DDS: round-robin fairness, drop-oldest, timeout."""

import threading

import pytest

import torch  # noqa: E402,F401


def _fake_runtime(ds, namespaces, queue_size):
    """Give ``ds`` a runtime whose queues the test fills by hand (no ROS)."""
    from keypoint_perception.training.stream_dataset import _Source
    sources = {ns: _Source(ns, queue_size, max_partial=8) for ns in namespaces}
    ds._rt = {'cond': threading.Condition(threading.RLock()), 'sources': sources, 'rr': 0}
    return sources


def test_round_robin_over_sources_with_data():
    from keypoint_perception.training.stream_dataset import StreamDataset
    ds = StreamDataset(['/fast', '/slow', '/idle'], queue_size=100, max_samples=12, timeout=1.0)
    src = _fake_runtime(ds, ds.namespaces, 100)
    for i in range(20):
        src['/fast'].put(('/fast', i))
    for i in range(3):
        src['/slow'].put(('/slow', i))
    got = list(ds)
    ds._rt = None
    # the slow source gets every other turn while it has data; the idle one is skipped
    assert got[:6] == [('/fast', 0), ('/slow', 0), ('/fast', 1), ('/slow', 1), ('/fast', 2),
                       ('/slow', 2)]
    assert got[6:] == [('/fast', i) for i in range(3, 9)]


def test_full_queue_drops_oldest_and_timeout():
    from keypoint_perception.training.stream_dataset import StreamDataset
    ds = StreamDataset('/a', queue_size=3, timeout=0.2)
    src = _fake_runtime(ds, ds.namespaces, 3)['/a']
    for i in range(5):
        src.put(i)
    it = iter(ds)
    assert [next(it) for _ in range(3)] == [2, 3, 4]
    assert (src.received, src.dropped) == (5, 2)
    assert ds.stats()['/a']['dropped'] == 2
    with pytest.raises(TimeoutError):
        next(it)
    ds._rt = None


def test_two_samples_with_one_stamp_are_dropped_not_mixed():
    """A part arriving twice for one stamp drops the partial sample and counts a collision."""
    from types import SimpleNamespace
    from keypoint_perception.training.stream_dataset import _PARTS, StreamDataset
    ds = StreamDataset('/a', queue_size=4, timeout=0.2)
    src = _fake_runtime(ds, ds.namespaces, 4)['/a']

    def msg(sec):
        return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=0)))

    first, second = _PARTS[0], _PARTS[1]
    ds._part_callback(src, first)(msg(7))
    ds._part_callback(src, second)(msg(7))
    ds._part_callback(src, first)(msg(7))  # another sample with the same stamp
    assert src.collisions == 1 and (7, 0) not in src.partial
    assert ds.stats()['/a']['collisions'] == 1 and src.received == 0
    ds._part_callback(src, first)(msg(8))  # other stamps are not affected
    assert list(src.partial) == [(8, 0)]
    ds._rt = None


def test_a_feedback_answer_is_told_apart_from_a_restarted_nodes_start_up_state(monkeypatch):
    """After feedback, only a newer state with an update confirms it (restarts reset the count)."""
    from keypoint_perception.training import stream_dataset
    from keypoint_perception.training.stream_dataset import StreamDataset
    monkeypatch.setattr(stream_dataset, 'sampler_state_dict', lambda msg: msg)
    ds = StreamDataset('/a', queue_size=4, timeout=0.2)
    src = _fake_runtime(ds, ds.namespaces, 4)['/a']
    publish = ds._state_callback(src)
    publish({'num_updates': 3})                   # the node before it died
    seen = ds.state_messages('/a')
    assert seen == 1
    # feedback sent now; the node restarts: its start-up state has num_updates 0
    publish({'num_updates': 0})
    assert ds.wait_for_sampler_state('/a', 1, timeout=0.05, newer_than=seen) is None
    assert ds.wait_for_sampler_state('/a', 4, timeout=0.05) is None   # the old rule waits on
    publish({'num_updates': 1})                   # the restarted node applied it
    assert ds.wait_for_sampler_state('/a', 1, timeout=0.05, newer_than=seen) == {
        'num_updates': 1}
    assert ds.state_messages('/a') == 3
    ds._rt = None


def test_a_late_answer_to_an_earlier_feedback_does_not_confirm_the_next(monkeypatch):
    """Only a state echoing this message's source confirms it, not a late earlier answer."""
    from keypoint_perception.training import stream_dataset
    from keypoint_perception.training.stream_dataset import StreamDataset
    from keypoint_perception.training.stream_train import feedback_tag
    monkeypatch.setattr(stream_dataset, 'sampler_state_dict', lambda msg: msg)
    ds = StreamDataset('/a', queue_size=4, timeout=0.2)
    src = _fake_runtime(ds, ds.namespaces, 4)['/a']
    publish = ds._state_callback(src)
    first, second = feedback_tag('round 1'), feedback_tag('round 2')
    assert first != second and first.startswith('keypoints-train ')
    publish({'num_updates': 0, 'last_feedback_source': ''})
    seen = ds.state_messages('/a')
    # round 1 timed out; round 2 is sent; now round 1's answer arrives
    publish({'num_updates': 1, 'last_feedback_source': first})
    assert ds.wait_for_sampler_state('/a', 1, timeout=0.05, newer_than=seen) is not None
    assert ds.wait_for_sampler_state('/a', 1, timeout=0.05, newer_than=seen,
                                     feedback_source=second) is None
    publish({'num_updates': 2, 'last_feedback_source': second})
    assert ds.wait_for_sampler_state('/a', 1, timeout=0.05, newer_than=seen,
                                     feedback_source=second)['num_updates'] == 2
    ds._rt = None
