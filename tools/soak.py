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
"""Soak the stereo keypoint node: a camera stream at a fixed rate for many minutes.

Publishes the real OpenCV stereo sequence (13 grey 640x480 pairs and their
calibration, looped; a synthetic pair when the data is missing) at ``--rate``
Hz with fresh stamps to a ``stereo_keypoint_node`` subprocess running its
default parameters (sensor-data QoS, so a node slower than the camera skips
pairs, as with a real camera), over Fast DDS on localhost.

Reports:

* the node's resident memory (RSS, from /proc) after a warm-up (the first
  ``--warmup`` minutes) and at the end, and its growth in percent;
* latency from publishing a pair to receiving its ``keypoints_3d``
  (p50 / p95 / max, over the pairs the node processed) and the fraction of
  published pairs it processed;
* whether the node was alive at the end.

Run::

    source tools/env.sh
    python tools/soak.py --minutes 10

and rewrites its section of docs/benchmarks.md (between ``<!-- soak:begin -->``
and ``<!-- soak:end -->``) unless ``--no-doc``.  Exit status 1 when the node
died.
"""

import argparse
import glob
import os
import sys
import tempfile
import time
from typing import Dict, List

from benchmark_common import cpu_model, replace_section, ROOT
import cv2
from keypoint_perception.core.camera import CameraModel
from keypoint_perception.nodes.conversions import camera_info_msg
import numpy as np
from stereo_harness import (image_msg, NodeHarness, stamp_to_ns, synthetic_pair,
                            synthetic_rig, to_stamp)

BEGIN, END = '<!-- soak:begin -->', '<!-- soak:end -->'


def load_sets() -> (List[Dict[str, object]], str):
    """Return pre-built input sets (topic -> message, stamps set later) and their source."""
    data = os.path.join(ROOT, 'data', 'opencv_stereo')
    lefts = sorted(glob.glob(os.path.join(data, 'left[0-9]*.jpg')))
    rights = sorted(glob.glob(os.path.join(data, 'right[0-9]*.jpg')))
    if lefts and len(lefts) == len(rights):
        cal = os.path.join(ROOT, 'config', 'camera_info')
        rig = [CameraModel.from_yaml(os.path.join(cal, f'opencv_stereo_{s}.yaml'),
                                     frame_id=f'{s}_camera_optical_frame')
               for s in ('left', 'right')]
        pairs = [[cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in pr] for pr in zip(lefts, rights)]
        source = f'the real OpenCV stereo sequence ({len(pairs)} grey 640x480 pairs, looped)'
    else:
        rig, pairs = list(synthetic_rig()), [synthetic_pair()]
        source = 'a synthetic grey 320x240 pair (data/opencv_stereo missing)'
    sets = []
    stamp = to_stamp(0)
    for left, right in pairs:
        sets.append({'left/image_rect': image_msg(left, stamp, rig[0].frame_id),
                     'left/camera_info': camera_info_msg(rig[0], stamp),
                     'right/image_rect': image_msg(right, stamp, rig[1].frame_id),
                     'right/camera_info': camera_info_msg(rig[1], stamp)})
    return sets, source


def rss_bytes(pid: int) -> int:
    """Return the resident set size of process ``pid`` in bytes (0 if unreadable)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def soak(harness: NodeHarness, sets, rate: float, minutes: float, warmup_minutes: float,
         log=print) -> dict:
    """Publish ``sets`` in a loop at ``rate`` Hz for ``minutes``; return the measurements."""
    period = 1.0 / rate
    sent: Dict[int, float] = {}
    rss_samples = []
    start = time.monotonic()
    end = start + 60.0 * minutes
    next_sample = start
    k = 0
    while time.monotonic() < end and harness.alive():
        due = start + k * period
        while time.monotonic() < due:
            harness.spin(min(0.005, max(0.0, due - time.monotonic())))
        msgs = sets[k % len(sets)]
        stamp = harness.node.get_clock().now().to_msg()
        for msg in msgs.values():
            msg.header.stamp = stamp
        sent[stamp_to_ns(stamp)] = time.monotonic()
        harness.send(msgs)
        k += 1
        if time.monotonic() >= next_sample:
            rss_samples.append((time.monotonic() - start, rss_bytes(harness.proc.pid)))
            next_sample += 10.0
            if len(rss_samples) % 6 == 1:
                log(f'{(time.monotonic() - start) / 60:.1f} min: {k} pairs sent, '
                    f'{len(harness.published)} processed, RSS '
                    f'{rss_samples[-1][1] / 2 ** 20:.0f} MiB')
    harness.spin(3.0)  # let the last pairs arrive
    alive = harness.alive()
    rss_samples.append((time.monotonic() - start, rss_bytes(harness.proc.pid)))
    latencies = []
    for stamp in harness.published_order:
        if stamp in sent and stamp in harness.received_at:
            latencies.append(harness.received_at[stamp] - sent[stamp])
    warm = [r for t, r in rss_samples if t >= 60.0 * warmup_minutes and r > 0]
    rss_warm = warm[0] if warm else 0
    rss_end = rss_samples[-1][1]
    lat_ms = np.asarray(latencies) * 1e3
    return {
        'minutes': (time.monotonic() - start) / 60.0, 'sent': len(sent),
        'processed': len(latencies), 'alive': alive,
        'rss_warm_mib': rss_warm / 2 ** 20, 'rss_end_mib': rss_end / 2 ** 20,
        'rss_max_mib': max(r for _, r in rss_samples) / 2 ** 20,
        'rss_growth_pct': 100.0 * (rss_end - rss_warm) / rss_warm if rss_warm else float('nan'),
        'latency_p50_ms': float(np.percentile(lat_ms, 50)) if latencies else float('nan'),
        'latency_p95_ms': float(np.percentile(lat_ms, 95)) if latencies else float('nan'),
        'latency_max_ms': float(lat_ms.max()) if latencies else float('nan'),
    }


def main(argv=None):
    """Run the soak (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0, help='soak duration')
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate (Hz)')
    parser.add_argument('--warmup', type=float, default=1.0,
                        help='minutes before the RSS reference sample')
    parser.add_argument('--domain-id', type=int,
                        default=int(os.environ.get('ROS_DOMAIN_ID', '124')))
    parser.add_argument('--doc', default=os.path.join(ROOT, 'docs', 'benchmarks.md'))
    parser.add_argument('--no-doc', action='store_true', help='do not rewrite the doc section')
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or not 0 <= args.warmup < args.minutes:
        parser.error('--minutes and --rate must be positive, 0 <= --warmup < --minutes')
    sets, source = load_sets()
    log_path = os.path.join(tempfile.mkdtemp(prefix='soak_'), 'node.log')
    # the node's defaults, as users run it (sensor-data QoS, test-time augmentation auto)
    params = {'reliable_qos': 'false', 'test_time_augmentation': 'auto', 'num_threads': '0'}
    print(f'soak: {args.minutes} min at {args.rate} Hz from {source}; node log {log_path}')
    with NodeHarness(args.domain_id, log_path, params) as harness:
        result = soak(harness, sets, args.rate, args.minutes, args.warmup)
    print(f'node alive at the end: {result["alive"]}')
    lines = [
        '| duration | pairs sent | processed | RSS after warm-up | RSS at end | RSS growth '
        '| latency p50 | p95 | max | node alive |',
        '|---|---|---|---|---|---|---|---|---|---|',
        f'| {result["minutes"]:.1f} min | {result["sent"]} | {result["processed"]} '
        f'({100.0 * result["processed"] / max(1, result["sent"]):.1f}%) '
        f'| {result["rss_warm_mib"]:.0f} MiB | {result["rss_end_mib"]:.0f} MiB '
        f'| {result["rss_growth_pct"]:+.1f}% | {result["latency_p50_ms"]:.0f} ms '
        f'| {result["latency_p95_ms"]:.0f} ms | {result["latency_max_ms"]:.0f} ms '
        f'| {"yes" if result["alive"] else "NO"} |']
    print('\n'.join(lines))
    if not args.no_doc:
        command = (f'python tools/soak.py --minutes {args.minutes:g} --rate {args.rate:g} '
                   f'--warmup {args.warmup:g}')
        section = '\n'.join([
            BEGIN, '## Soak: the node under a continuous camera stream', '',
            f'{source[:1].upper()}{source[1:]} published at {args.rate:g} Hz with fresh '
            'stamps to '
            '`stereo_keypoint_node` with its default parameters (sensor-data QoS: a node '
            'slower than the camera skips pairs), Fast DDS on localhost. RSS from '
            f'/proc after {args.warmup:g} min of warm-up and at the end; latency from '
            'publishing a pair to receiving its `keypoints_3d`, over the processed pairs.',
            '', f'Command: `{command}`. Machine: {cpu_model()} (shared with other jobs '
            'while measured).', '', *lines, '', END])
        replace_section(args.doc, BEGIN, END, section)
        print(f'wrote {args.doc}')
    return 0 if result['alive'] else 1


if __name__ == '__main__':
    sys.exit(main())
