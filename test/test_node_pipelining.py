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
"""The perception node's pipelining (issue 19 item 4), in this process.

The node's synchronizer callback gets a burst of valid pairs faster than the
node can process them.  With best-effort inputs the newest pair wins: some
pairs are dropped and counted as ``behind`` (reported in the periodic log),
the rest is published in input order, never back in time; with
``reliable_qos`` every pair is published.  The network of one pair runs
while the previous one is post-processed.
"""

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tools'))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = '175'

from keypoint_perception.nodes.stereo_keypoint_node import StereoKeypointNode  # noqa: E402
import pytest  # noqa: E402
import rclpy  # noqa: E402
from stereo_harness import valid_set  # noqa: E402

S = 1_000_000_000  # nanoseconds per second
TOPICS = ('left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info')


@pytest.fixture
def make_node():
    made = []

    def make(*params, network_pause=0.0, rest_pause=0.0):
        """Build a node; its network and post-processing take at least the given seconds."""
        context = rclpy.Context()
        args = ['test', '--ros-args', '-p', 'test_time_augmentation:=none',
                '-p', 'roi_refinement:=off']
        for param in params:
            args += ['-p', param]
        rclpy.init(args=args, context=context)
        node = StereoKeypointNode(context=context)
        made.append((node, context))
        published, events, lock = [], [], threading.Lock()
        publish = node._publish

        def recorded_publish(config, header, *rest):
            publish(config, header, *rest)
            published.append(header.stamp.sec * S + header.stamp.nanosec)
        node._publish = recorded_publish
        pipeline = node.pipeline
        observe, process = pipeline.observe, pipeline.process

        def timed(name, function, pause):
            def run(*args, **kwargs):
                with lock:
                    events.append((name, 'start', time.monotonic()))
                try:
                    time.sleep(pause)
                    return function(*args, **kwargs)
                finally:
                    with lock:
                        events.append((name, 'end', time.monotonic()))
            return run
        pipeline.observe = timed('network', observe, network_pause)
        pipeline.process = timed('rest', process, rest_pause)
        return node, published, events

    yield make
    for node, context in made:
        node.destroy_node()
        rclpy.shutdown(context=context)


def _burst(node, count, first=10):
    """Hand ``count`` valid pairs, 1 s apart from ``first`` s, to the synchronizer callback."""
    stamps = [(first + k) * S for k in range(count)]
    for stamp in stamps:
        messages = valid_set(stamp)
        node.on_stereo(*(messages[topic] for topic in TOPICS))
    return stamps


def test_behind_the_newest_pair_wins_and_the_drops_are_counted_and_logged(make_node, capfd):
    node, published, _ = make_node('reliable_qos:=false', network_pause=0.05)
    stamps = _burst(node, 8)
    assert node.stages.wait_idle(60)
    assert published == sorted(set(published)) and set(published) <= set(stamps)
    # the newest pair is always published; whether the first one is depends on
    # whether the worker took it before the second arrived (not on a loaded machine)
    assert published[-1] == stamps[-1]
    assert node.drops['behind'] == len(stamps) - len(published) >= 1
    # the periodic log line reports them
    node.frames = 99
    _burst(node, 1, first=30)
    assert node.stages.wait_idle(60)
    log = capfd.readouterr().err
    assert 'frame 100:' in log and f'behind {node.drops["behind"]}' in log
    # a pair older than one already admitted is refused, not published back in time
    messages = valid_set(stamps[3])
    node.on_stereo(*(messages[topic] for topic in TOPICS))
    assert node.stages.wait_idle(60)
    assert node.drops['stale_stamp'] == 1 and stamps[3] not in published[-2:]


def test_reliable_inputs_are_all_published_in_order(make_node):
    node, published, _ = make_node('reliable_qos:=true')
    stamps = _burst(node, 5)
    assert node.stages.wait_idle(60)
    assert published == stamps and node.drops['behind'] == 0


def test_the_network_of_the_next_pair_runs_while_this_one_is_post_processed(make_node):
    node, published, events = make_node('reliable_qos:=true', rest_pause=0.1)
    _burst(node, 4)
    assert node.stages.wait_idle(60)
    assert len(published) == 4
    network, rest = _intervals(events, 'network'), _intervals(events, 'rest')
    # pairs 2..4's network passes run while the previous pair is post-processed
    assert all(rest[k][0] < network[k + 1][0] < rest[k][1] for k in range(3))
    assert all(network[k + 1][1] < rest[k][1] for k in range(3))


def _intervals(events, stage):
    """(start, end) times of a stage's calls, in order."""
    starts = [t for name, edge, t in events if name == stage and edge == 'start']
    ends = [t for name, edge, t in events if name == stage and edge == 'end']
    return list(zip(starts, ends))
