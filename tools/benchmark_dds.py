#!/usr/bin/env python3
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
"""Colour stereo images over DDS between two processes: delivery and latency.

A publisher process sends a stereo pair of ``sensor_msgs/Image`` (``rgb8``,
``left/image_rect`` and ``right/image_rect``) at a fixed rate; a subscriber
process records when each image arrives.  Both run on this host (discovery
on localhost only, ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, and a domain
id of their own), with or without the project's Fast DDS profile
(``config/dds/fastdds_profile.xml`` through
``FASTDDS_DEFAULT_PROFILES_FILE``).

Reported per configuration (image size, QoS reliability, profile): the
fraction of sent images delivered, and the latency from the publisher's
``header.stamp`` (wall clock at publication) to the subscriber's callback in
ms (p50, p95, max over delivered images).

Usage (from the repository root, after ``source tools/env.sh``)::

    python tools/benchmark_dds.py [--sizes 640x480 1280x720] [--rates 30 2]
        [--duration 10] [--qos best_effort reliable] [--profile with without]
        [--domain-id 151] [--write-doc]

``--write-doc`` replaces the ``dds`` section of docs/benchmarks.md.  The
module's :func:`run_config` is also used by test/test_dds_large_images.py.
"""

import argparse
import array
import datetime
import json
import os
import select
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_common import cpu_model, replace_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'docs', 'benchmarks.md')
PROFILE = os.path.join(ROOT, 'config', 'dds', 'fastdds_profile.xml')
BEGIN, END = '<!-- dds:begin -->', '<!-- dds:end -->'
TOPICS = ('left/image_rect', 'right/image_rect')
#: Variables that change which Fast DDS configuration a process loads.
DDS_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'RMW_FASTRTPS_USE_QOS_FROM_XML',
                 'FASTDDS_BUILTIN_TRANSPORTS', 'RMW_FASTRTPS_PUBLICATION_MODE')


def _qos(reliability: str, depth: int):
    """Image QoS: keep last ``depth``, volatile, ``reliability`` 'reliable' or 'best_effort'."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    policy = {'reliable': ReliabilityPolicy.RELIABLE,
              'best_effort': ReliabilityPolicy.BEST_EFFORT}[reliability]
    return QoSProfile(depth=depth, reliability=policy)


def _wall_ns() -> int:
    return time.time_ns()


def _subscriber(args) -> int:
    """Record (topic, index, latency ms) of every image until told to stop.

    Prints ``READY`` once subscribed; after a line ``done`` on stdin it waits
    up to ``--drain`` s for images still missing, then prints one JSON line
    ``{"latencies_ms": {topic: {index: ms}}}`` and exits.
    """
    import rclpy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('dds_benchmark_subscriber')
    received = {topic: {} for topic in TOPICS}

    def callback(topic):
        def on_image(msg):
            now = _wall_ns()
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            received[topic][int(msg.header.frame_id)] = (now - stamp) / 1e6
        return on_image

    for topic in TOPICS:
        node.create_subscription(Image, topic, callback(topic), _qos(args.qos, args.depth))
    print('READY', flush=True)
    done_at = None
    try:
        while True:
            rclpy.spin_once(node, timeout_sec=0.005)
            if done_at is None and select.select([sys.stdin], [], [], 0)[0]:
                if sys.stdin.readline().strip() == 'done':
                    done_at = time.monotonic()
            complete = all(len(r) >= args.count for r in received.values())
            if done_at is not None and (complete or time.monotonic() - done_at > args.drain):
                break
    finally:
        print(json.dumps({'latencies_ms': received}), flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _publisher(args) -> int:
    """Publish ``--count`` stereo pairs at ``--rate`` Hz once both topics are matched.

    Prints ``PUBLISHED <n>`` when done and stays alive (reliable writers
    resend from their history) until a line ``exit`` arrives on stdin.
    """
    import rclpy
    from sensor_msgs.msg import Image
    width, height = (int(s) for s in args.size.split('x'))
    rclpy.init()
    node = rclpy.create_node('dds_benchmark_publisher')
    publishers = [node.create_publisher(Image, topic, _qos(args.qos, args.depth))
                  for topic in TOPICS]
    rng = np.random.default_rng(0)
    messages = []
    for _ in TOPICS:
        msg = Image()
        msg.height, msg.width, msg.encoding, msg.step = height, width, 'rgb8', width * 3
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        msg.data = array.array('B', pixels.tobytes())
        messages.append(msg)
    t0 = time.monotonic()
    while any(p.get_subscription_count() == 0 for p in publishers):
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() - t0 > args.discovery_timeout:
            print('error: no subscriber matched', file=sys.stderr, flush=True)
            return 1
    time.sleep(0.5)  # let the reader side finish matching too
    period = 1.0 / args.rate
    start = time.monotonic()
    for index in range(args.count):
        delay = start + index * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamp_ns = _wall_ns()
        for publisher, msg in zip(publishers, messages):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
            msg.header.frame_id = str(index)
            publisher.publish(msg)
    print(f'PUBLISHED {args.count}', flush=True)
    while sys.stdin.readline().strip() not in ('exit', ''):
        pass
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def dds_environment(domain_id: int, use_profile: bool, profile: str = PROFILE) -> dict:
    """Environment of a benchmark process: localhost discovery, own domain id.

    Args:
        domain_id: ROS_DOMAIN_ID of both processes (0..101 or 215..232 are safe
            for Fast DDS' port mapping; this project uses 100..199 per user).
        use_profile: set FASTDDS_DEFAULT_PROFILES_FILE to ``profile``; when
            False every variable that changes Fast DDS' configuration is removed
            (the RMW's defaults).
        profile: path of the Fast DDS XML profile.

    Returns:
        A copy of ``os.environ`` with those changes.
    """
    env = dict(os.environ)
    for name in DDS_VARIABLES:
        env.pop(name, None)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env['RMW_IMPLEMENTATION'] = 'rmw_fastrtps_cpp'
    if use_profile:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = profile
    return env


def run_config(size: str, qos: str, use_profile: bool, *, rate: float = 30.0,
               duration: float = 10.0, domain_id: int = 151, drain: float = 10.0,
               depth: int = 5, profile: str = PROFILE) -> dict:
    """Send ``duration`` s of ``size`` rgb8 stereo pairs at ``rate`` Hz between two processes.

    Args:
        size: image size 'WIDTHxHEIGHT' in pixels (rgb8: 3 bytes per pixel).
        qos: 'reliable' or 'best_effort' (both sides; keep last ``depth``, volatile).
        use_profile: load the Fast DDS profile ``profile`` in both processes.
        rate: stereo pairs per second.
        duration: seconds of publishing (``round(rate * duration)`` pairs).
        domain_id: ROS_DOMAIN_ID of the two processes.
        drain: seconds the subscriber waits for missing images after the last
            one is sent (longer than Fast DDS' 3 s heartbeat period, so late
            repairs are measured as latency, not as losses).
        depth: history depth of both sides (5: the node's default queue_size;
            a reliable keep-last history still drops the oldest images when
            the subscriber falls behind by more than ``depth``).
        profile: path of the Fast DDS XML profile.

    Returns:
        dict with ``size``, ``rate``, ``qos``, ``profile`` (bool), ``sent`` (images, both
        topics), ``delivered`` (images), ``fraction`` (delivered / sent) and
        ``p50_ms``, ``p95_ms``, ``max_ms`` (latency over delivered images,
        NaN when none).

    Raises:
        RuntimeError: when a process fails or no subscriber matches in 20 s.
    """
    count = max(1, int(round(rate * duration)))
    env = dds_environment(domain_id, use_profile, profile)
    common = ['--size', size, '--qos', qos, '--count', str(count), '--rate', str(rate),
              '--drain', str(drain), '--depth', str(depth)]
    command = [sys.executable, os.path.abspath(__file__)]
    sub = subprocess.Popen(command + ['--role', 'subscriber'] + common, env=env,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pub = None
    try:
        if sub.stdout.readline().strip() != 'READY':
            raise RuntimeError('the subscriber process did not start')
        pub = subprocess.Popen(command + ['--role', 'publisher'] + common, env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = pub.stdout.readline().strip()
        if not line.startswith('PUBLISHED'):
            raise RuntimeError(f'the publisher process failed ({pub.wait()})')
        sub.stdin.write('done\n')
        sub.stdin.flush()
        result = json.loads(sub.stdout.readline())
    finally:
        for process in (pub, sub):
            if process is None:
                continue
            try:
                process.stdin.write('exit\n')
                process.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    latencies = [ms for per_topic in result['latencies_ms'].values()
                 for ms in per_topic.values()]
    sent = count * len(TOPICS)
    stats = np.percentile(latencies, [50, 95, 100]) if latencies else [float('nan')] * 3
    return {'size': size, 'rate': rate, 'qos': qos, 'profile': use_profile, 'sent': sent,
            'delivered': len(latencies), 'fraction': len(latencies) / sent,
            'p50_ms': float(stats[0]), 'p95_ms': float(stats[1]), 'max_ms': float(stats[2])}


def _table(rows) -> str:
    lines = ['| image (rgb8 stereo) | pairs/s | QoS | Fast DDS profile | delivered | '
             'latency p50 / p95 / max (ms) |', '|---|---|---|---|---|---|']
    for row in rows:
        width, height = (int(s) for s in row['size'].split('x'))
        lines.append(f"| {row['size']} ({width * height * 3 // 1000} kB each) | "
                     f"{row['rate']:g} | {row['qos'].replace('_', '-')} | "
                     f"{'shipped' if row['profile'] else 'none (RMW defaults)'} | "
                     f"{row['delivered']}/{row['sent']} ({100 * row['fraction']:.1f}%) | "
                     f"{row['p50_ms']:.1f} / {row['p95_ms']:.1f} / {row['max_ms']:.1f} |")
    return '\n'.join(lines)


def _orchestrate(args) -> int:
    load = os.getloadavg()[0]
    rows = []
    for rate in args.rates:
        for size in args.sizes:
            for qos in args.qos_list:
                for use_profile in [choice == 'with' for choice in args.profile]:
                    row = run_config(size, qos, use_profile, rate=rate,
                                     duration=args.duration, domain_id=args.domain_id,
                                     drain=args.drain, depth=args.depth)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    table = _table(rows)
    print(table)
    if args.write_doc:
        command = ('python tools/benchmark_dds.py --sizes ' + ' '.join(args.sizes)
                   + ' --rates ' + ' '.join(f'{rate:g}' for rate in args.rates)
                   + f' --duration {args.duration:g} --write-doc')
        section = '\n'.join([
            BEGIN, '## Colour stereo images over DDS', '',
            f'Measured {datetime.date.today().isoformat()} on {cpu_model()}, load average '
            f'{load:.1f} at the start (both processes on this host, Fast DDS from the ROS 2 '
            'Kilted wheels, discovery on localhost, QoS keep last '
            f'{args.depth}, {args.duration:g} s of publishing per row):', '',
            '```bash', 'source tools/env.sh', command, '```', '',
            table, '', 'Latency: publisher `header.stamp` (wall clock) to the subscriber\'s '
            'callback (Python executor included). Rows at a low rate send each pair on its '
            'own, as `keypoints-demo` does in lock-step: a lost fragment is then only '
            'repaired at the reliable writer\'s next heartbeat. Images missing from reliable '
            'rows with the profile are keep-last overwrites while the Python subscriber falls '
            f'more than {args.depth} images behind on the shared cores, not transport losses. '
            'The profile is '
            '`config/dds/fastdds_profile.xml`, applied by the launch file and '
            '`keypoints-demo` (see README, "DDS transport for colour images").', END])
        replace_section(DOC, BEGIN, END, section)
        print(f'wrote the dds section of {DOC}')
    return 0


def parse_args(argv=None):
    """Command-line options (``--role`` is internal: the two benchmark processes)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', nargs='+', default=['640x480', '1280x720'])
    parser.add_argument('--qos', dest='qos_list', nargs='+',
                        default=['best_effort', 'reliable'],
                        choices=['best_effort', 'reliable'])
    parser.add_argument('--profile', nargs='+', default=['without', 'with'],
                        choices=['with', 'without'])
    parser.add_argument('--rates', nargs='+', type=float, default=[30.0, 2.0],
                        help='stereo pairs per second (one set of rows per rate)')
    parser.add_argument('--rate', type=float, default=30.0, help=argparse.SUPPRESS)
    parser.add_argument('--duration', type=float, default=10.0, help='s of publishing per row')
    parser.add_argument('--depth', type=int, default=5, help='QoS history depth (keep last)')
    parser.add_argument('--drain', type=float, default=10.0,
                        help='s the subscriber waits for missing images at the end')
    parser.add_argument('--domain-id', type=int,
                        default=int(os.environ.get('ROS_DOMAIN_ID', '151')))
    parser.add_argument('--write-doc', action='store_true')
    parser.add_argument('--role', choices=['publisher', 'subscriber'], help=argparse.SUPPRESS)
    parser.add_argument('--size', help=argparse.SUPPRESS)
    parser.add_argument('--count', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--discovery-timeout', type=float, default=20.0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.qos = args.qos_list[0]
    return args


def main(argv=None) -> int:
    """Run the benchmark (or one of its two processes, with ``--role``)."""
    args = parse_args(argv)
    if args.role == 'subscriber':
        return _subscriber(args)
    if args.role == 'publisher':
        return _publisher(args)
    return _orchestrate(args)


if __name__ == '__main__':
    sys.exit(main())
