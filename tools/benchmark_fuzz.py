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
"""Fuzz the stereo keypoint node with malformed input over real DDS.

Sends bursts of malformed stereo sets (the four input messages), one
category per burst, each burst followed by one valid set.  Counts, per
category: *crashes* (the node process ended; it is restarted) and *lost
valid pairs* (the valid set after the burst produced no ``keypoints_3d``
within the timeout).  Both must be 0.

Categories (:data:`CATEGORIES`): wrong or unsupported encodings, data and
step sizes, empty and big-endian images, images that disagree with their
CameraInfo or with each other, NaN/inf/zero/extreme calibration, unknown
distortion models, R that is not a rotation, CameraInfo sizes, ROI and
binning, negative and out-of-range stamps, stamp skews, missing topics,
empty frame ids, stale and duplicate sets, and well-formed alternatives
(other colour encodings, padded rows) that must simply work.

Run (about 5-10 minutes on 2 cores)::

    source tools/env.sh
    python tools/benchmark_fuzz.py --sets 2200

It runs the node with exact and with approximate sync (half of the sets
each), prints a table and rewrites its section of docs/benchmarks.md
(between ``<!-- fuzz:begin -->`` and ``<!-- fuzz:end -->``).  The test
``test/test_fuzz.py`` runs a few hundred sets of every category.
"""

import argparse
import collections
import dataclasses
import os
import sys
import tempfile
import time
from typing import Callable, Dict, List, Sequence

from benchmark_common import cpu_model, replace_section, ROOT
from keypoint_perception.nodes.conversions import camera_info_msg
import numpy as np
from stereo_harness import (image_msg, NodeHarness, synthetic_pair, synthetic_rig, to_stamp,
                            TOPICS, valid_set)

S = 1_000_000_000  # nanoseconds per second
BEGIN, END = '<!-- fuzz:begin -->', '<!-- fuzz:end -->'
#: Node parameters of a fuzz run: subscription and synchronizer queues deep enough
#: that DDS keeps every message of a burst (with reliable QoS, see FAST_PARAMS), so
#: the node sees every malformed set instead of only the last few.
FUZZ_PARAMS = {'queue_size': '30'}
IMAGES = ('left/image_rect', 'right/image_rect')
INFOS = ('left/camera_info', 'right/camera_info')


class FuzzInput:
    """Shared valid material (a synthetic grey pair and its rig) that categories distort."""

    def __init__(self):
        """Build the pair (240x320 uint8) and the rectified rig (left, right CameraModel)."""
        self.pair = synthetic_pair()
        self.rig = synthetic_rig()

    def valid(self, stamp_ns: int) -> Dict[str, object]:
        """Return a new valid set (topic -> message) stamped ``stamp_ns``."""
        return valid_set(stamp_ns, self.pair, self.rig)


def _image_bytes(msg) -> bytes:
    return bytes(msg.data)


def _unknown_encoding(rng, base, t):
    msgs = base.valid(t)
    msgs[rng.choice(IMAGES)].encoding = str(rng.choice(
        ['yuv999', '', 'RGB8', 'jpeg', 'mono9', '8UC0', 'bgr8; DROP TABLE']))
    return msgs


def _non_colour_encoding(rng, base, t):
    msgs = base.valid(t)
    msg = msgs[rng.choice(IMAGES)]
    encoding, size = [('16UC1', 2), ('32FC1', 4), ('8UC2', 2), ('64FC1', 8),
                      ('16SC1', 2)][rng.integers(5)]
    msg.encoding, msg.step = encoding, msg.width * size
    msg.data = bytes(msg.step * msg.height)
    return msgs


def _alt_encoding(rng, base, t):
    """Use well-formed other encodings, which must be converted and processed."""
    msgs = base.valid(t)
    for topic in IMAGES:
        grey = np.frombuffer(_image_bytes(msgs[topic]), np.uint8).reshape(240, 320)
        encoding = str(rng.choice(['bgr8', 'rgba8', 'bgra8', 'mono16', 'rgb16',
                                   'bayer_rggb8']))
        if encoding == 'mono16':
            arr = grey.astype(np.uint16) * 257
        elif encoding == 'rgb16':
            arr = np.repeat(grey[..., None], 3, axis=2).astype(np.uint16) * 257
        elif encoding == 'bayer_rggb8':
            arr = grey
        else:
            arr = np.repeat(grey[..., None], 4 if 'a' in encoding else 3, axis=2)
        header = msgs[topic].header
        msgs[topic] = image_msg(np.ascontiguousarray(arr), header.stamp, header.frame_id,
                                encoding)
    return msgs


def _short_data(rng, base, t):
    msgs = base.valid(t)
    msg = msgs[rng.choice(IMAGES)]
    msg.data = _image_bytes(msg)[:-int(rng.integers(1, 5000))]
    return msgs


def _long_data(rng, base, t):
    msgs = base.valid(t)
    msg = msgs[rng.choice(IMAGES)]
    msg.data = _image_bytes(msg) + bytes(int(rng.integers(1, 5000)))
    return msgs


def _small_step(rng, base, t):
    msgs = base.valid(t)
    msg = msgs[rng.choice(IMAGES)]
    msg.step = int(rng.integers(0, msg.step))
    return msgs


def _padded_step(rng, base, t):
    """Pad the rows beyond the image width (valid: must be processed)."""
    msgs = base.valid(t)
    pad = int(rng.integers(1, 64))
    for topic in IMAGES:
        msg = msgs[topic]
        rows = np.frombuffer(_image_bytes(msg), np.uint8).reshape(msg.height, msg.step)
        padded = np.hstack([rows, np.full((msg.height, pad), 0xAB, np.uint8)])
        msg.step, msg.data = padded.shape[1], padded.tobytes()
    return msgs


def _empty_image(rng, base, t):
    msgs = base.valid(t)
    msg = msgs[rng.choice(IMAGES)]
    msg.encoding = str(rng.choice(['rgb8', 'mono8', 'bgr8']))
    msg.height, msg.width = [(0, 0), (0, 320), (240, 0)][rng.integers(3)]
    msg.step = msg.width * (1 if msg.encoding == 'mono8' else 3)
    msg.data = b''
    return msgs


def _big_endian(rng, base, t):
    msgs = base.valid(t)
    msgs[rng.choice(IMAGES)].is_bigendian = sys.byteorder == 'little'
    return msgs


def _image_info_size(rng, base, t):
    msgs = base.valid(t)
    topic = str(rng.choice(IMAGES))
    left, right = base.pair
    arr = left if topic.startswith('left') else right
    rows, cols = int(rng.integers(8, 240)), int(rng.integers(8, 320))
    header = msgs[topic].header
    msgs[topic] = image_msg(np.ascontiguousarray(arr[:rows, :cols]), header.stamp,
                            header.frame_id)
    return msgs


def _left_right_size(rng, base, t):
    msgs = base.valid(t)
    scale = float(rng.choice([0.5, 0.25]))
    right = base.pair[1][::int(1 / scale), ::int(1 / scale)]
    msgs['right/image_rect'] = image_msg(np.ascontiguousarray(right), to_stamp(t),
                                         base.rig[1].frame_id)
    msgs['right/camera_info'] = camera_info_msg(base.rig[1].scaled(scale, scale),
                                                to_stamp(t))
    return msgs


def _nan_calibration(rng, base, t):
    msgs = base.valid(t)
    info = msgs[rng.choice(INFOS)]
    field = str(rng.choice(['k', 'p', 'd', 'r']))
    values = list(getattr(info, field))
    values[int(rng.integers(len(values)))] = float(rng.choice([np.nan, np.inf, -np.inf]))
    setattr(info, field, values)
    return msgs


def _zero_calibration(rng, base, t):
    msgs = base.valid(t)
    info = msgs[rng.choice(INFOS)]
    field = str(rng.choice(['k', 'p']))
    setattr(info, field, [0.0] * len(getattr(info, field)))
    return msgs


def _bad_distortion(rng, base, t):
    msgs = base.valid(t)
    info = msgs[rng.choice(INFOS)]
    choice = int(rng.integers(4))
    if choice == 0:
        info.distortion_model = str(rng.choice(['fisheye9', 'PLUMB_BOB', 'none', 'kb4']))
    elif choice == 1:
        info.d = [0.01] * int(rng.choice([1, 3, 6, 14]))
    elif choice == 2:
        info.distortion_model, info.d = 'equidistant', [0.01] * 5
    else:
        info.distortion_model, info.d = '', [0.1] * 5
    return msgs


def _bad_rotation(rng, base, t):
    msgs = base.valid(t)
    msgs[rng.choice(INFOS)].r = [float(v) for v in rng.normal(size=9)]
    return msgs


def _bad_camera_size(rng, base, t):
    msgs = base.valid(t)
    info = msgs[rng.choice(INFOS)]
    choice = int(rng.integers(3))
    if choice == 0:
        info.width, info.height = [(0, 240), (320, 0), (0, 0)][rng.integers(3)]
    elif choice == 1:
        info.roi.x_offset, info.roi.width, info.roi.height = 10, 100, 100
    else:
        info.binning_x = info.binning_y = int(rng.integers(2, 5))
    return msgs


def _extreme_calibration(rng, base, t):
    msgs = base.valid(t)
    for topic in INFOS:
        info = msgs[topic]
        scale = float(rng.choice([1e-12, 1e-6, 1e6, 1e30]))
        info.k = [v * scale if i in (0, 4) else v for i, v in enumerate(info.k)]
        info.p = [v * scale if i in (0, 3, 5) else v for i, v in enumerate(info.p)]
    return msgs


def _negative_stamp(rng, base, t):
    msgs = base.valid(t)
    for topic in rng.choice(TOPICS, size=int(rng.integers(1, 5)), replace=False):
        msgs[str(topic)].header.stamp.sec = -int(rng.integers(1, 2 ** 31 - 1))
    return msgs


def _bad_nanosec(rng, base, t):
    msgs = base.valid(t)
    for topic in rng.choice(TOPICS, size=int(rng.integers(1, 5)), replace=False):
        msgs[str(topic)].header.stamp.nanosec = int(rng.integers(10 ** 9, 2 ** 32))
    return msgs


def _stamp_skew(rng, base, t):
    msgs = base.valid(t)
    skew = int(rng.integers(1, 45)) * S // 100 * int(rng.choice([-1, 1]))
    topics = (('right/image_rect', 'right/camera_info') if rng.integers(2)
              else (str(rng.choice(TOPICS)),))
    for topic in topics:
        msgs[topic].header.stamp = to_stamp(t + skew)
    return msgs


def _missing_topic(rng, base, t):
    msgs = base.valid(t)
    for topic in rng.choice(TOPICS, size=int(rng.integers(1, 4)), replace=False):
        msgs[str(topic)] = None
    return msgs


def _empty_frame_id(rng, base, t):
    msgs = base.valid(t)
    side = str(rng.choice(['left', 'right']))
    msgs[f'{side}/image_rect'].header.frame_id = ''
    msgs[f'{side}/camera_info'].header.frame_id = ''
    return msgs


def _stale_set(rng, base, t):
    """Build a complete valid set older than pairs already published (dropped as stale)."""
    return base.valid(max(0, t - int(rng.integers(40, 200)) * S))  # bursts are shorter


def _duplicate_set(rng, base, t):
    """Send one valid set twice (a driver that republishes): the node must go on."""
    msgs = base.valid(t)
    return [msgs, msgs]


#: name -> builder(rng, FuzzInput, stamp ns) -> {topic: message or None} or a list of them
CATEGORIES: Dict[str, Callable] = {
    'unknown_encoding': _unknown_encoding,
    'non_colour_encoding': _non_colour_encoding,
    'alt_encoding (valid)': _alt_encoding,
    'short_data': _short_data,
    'long_data': _long_data,
    'small_step': _small_step,
    'padded_step (valid)': _padded_step,
    'empty_image': _empty_image,
    'big_endian': _big_endian,
    'image_vs_camera_info_size': _image_info_size,
    'left_right_size': _left_right_size,
    'nan_inf_calibration': _nan_calibration,
    'zero_k_or_p': _zero_calibration,
    'bad_distortion': _bad_distortion,
    'r_not_rotation': _bad_rotation,
    'camera_info_size_roi_binning': _bad_camera_size,
    'extreme_calibration': _extreme_calibration,
    'negative_stamp': _negative_stamp,
    'nanosec_over_1e9': _bad_nanosec,
    'stamp_skew': _stamp_skew,
    'missing_topic': _missing_topic,
    'empty_frame_id': _empty_frame_id,
    'stale_set': _stale_set,
    'duplicate_set': _duplicate_set,
}


@dataclasses.dataclass
class CategoryResult:
    """Outcome of one category: sets sent, bursts, crashes, lost valid pairs, seconds."""

    sets: int = 0
    bursts: int = 0
    crashes: int = 0
    lost_pairs: int = 0
    seconds: float = 0.0


def run_fuzz(harness_factory: Callable[[], NodeHarness], categories: Sequence[str],
             sets_per_category: int, burst: int, seed: int = 0,
             pair_timeout: float = 30.0, restart: bool = True,
             log: Callable[[str], None] = print) -> Dict[str, CategoryResult]:
    """Send bursts of malformed sets of each category, each followed by a valid set.

    Args:
        harness_factory: returns a new, not yet started :class:`NodeHarness`.
        categories: names of :data:`CATEGORIES`, in the order to run them.
        sets_per_category: malformed sets per category (rounded up to bursts).
        burst: malformed sets per burst.
        seed: seed of the random choices.
        pair_timeout: seconds to wait for the valid set's ``keypoints_3d``.
        restart: start a new node after a crash (else stop at the first).
        log: receives one progress line per category.

    Returns:
        ``{category: CategoryResult}``.
    """
    rng = np.random.default_rng(seed)
    base = FuzzInput()
    results = collections.OrderedDict((c, CategoryResult()) for c in categories)
    harness = harness_factory().__enter__()
    t = 1000 * S
    try:
        for category in categories:
            result = results[category]
            t0 = time.monotonic()
            while result.sets < sets_per_category:
                for _ in range(min(burst, sets_per_category - result.sets)):
                    t += S
                    built = CATEGORIES[category](rng, base, t)
                    for msgs in (built if isinstance(built, list) else [built]):
                        harness.send(msgs)
                    result.sets += 1
                t += S
                harness.send(base.valid(t))
                result.bursts += 1
                published = harness.wait_published(t, pair_timeout)
                if not harness.alive():
                    result.crashes += 1
                    log(f'CRASH in {category}:\n{harness.log_text()[-3000:]}')
                    harness.close()
                    if not restart:
                        return results
                    harness = harness_factory().__enter__()
                elif published is None:
                    result.lost_pairs += 1
                    log(f'lost valid pair after a burst of {category}')
            result.seconds = time.monotonic() - t0
            log(f'{category}: {result.sets} sets, {result.crashes} crashes, '
                f'{result.lost_pairs} lost valid pairs ({result.seconds:.1f} s)')
    finally:
        harness.close()
    return results


def _table(results_by_mode: Dict[str, Dict[str, CategoryResult]]) -> List[str]:
    modes = list(results_by_mode)
    lines = ['| category | ' + ' | '.join(f'{m}: sets / crashes / lost pairs' for m in modes)
             + ' |', '|---|' + '---|' * len(modes)]
    for category in CATEGORIES:
        cells = []
        for mode in modes:
            r = results_by_mode[mode].get(category)
            cells.append(f'{r.sets} / {r.crashes} / {r.lost_pairs}' if r else '-')
        lines.append(f'| {category} | ' + ' | '.join(cells) + ' |')
    total = [sum(r.sets for r in res.values()) for res in results_by_mode.values()]
    crashes = [sum(r.crashes for r in res.values()) for res in results_by_mode.values()]
    lost = [sum(r.lost_pairs for r in res.values()) for res in results_by_mode.values()]
    cells = [f'**{s} / {c} / {x}**' for s, c, x in zip(total, crashes, lost)]
    lines.append('| **all** | ' + ' | '.join(cells) + ' |')
    return lines


def main(argv=None):
    """Run the fuzz benchmark (see the module docstring); exit 1 on a crash or lost pair."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sets', type=int, default=2200,
                        help='malformed sets in all (split over modes and categories)')
    parser.add_argument('--burst', type=int, default=10, help='malformed sets per burst')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--domain-id', type=int,
                        default=int(os.environ.get('ROS_DOMAIN_ID', '123')))
    parser.add_argument('--modes', default='exact,approximate',
                        help='comma-separated sync modes: exact, approximate')
    parser.add_argument('--doc', default=os.path.join(ROOT, 'docs', 'benchmarks.md'))
    parser.add_argument('--no-doc', action='store_true', help='do not rewrite the doc section')
    args = parser.parse_args(argv)
    if args.sets < 1 or args.burst < 1:
        parser.error('--sets and --burst must be positive')
    modes = [m.strip() for m in args.modes.split(',') if m.strip()]
    if not modes or any(m not in ('exact', 'approximate') for m in modes):
        parser.error('--modes: exact and/or approximate')
    per_category = -(-args.sets // (len(modes) * len(CATEGORIES)))
    tmp = tempfile.mkdtemp(prefix='fuzz_')
    results_by_mode = {}
    t0 = time.monotonic()
    for mode in modes:
        params = dict(FUZZ_PARAMS)
        if mode == 'approximate':
            params.update(approximate_sync='true', sync_slop='0.05')
        log_path = os.path.join(tmp, f'node_{mode}.log')
        print(f'== {mode} sync, {per_category} sets per category; node log {log_path}')
        results_by_mode[mode] = run_fuzz(
            lambda: NodeHarness(args.domain_id, log_path, params), list(CATEGORIES),
            per_category, args.burst, seed=args.seed)
    minutes = (time.monotonic() - t0) / 60
    table = _table(results_by_mode)
    print('\n'.join(table))
    sets = sum(r.sets for res in results_by_mode.values() for r in res.values())
    bad = sum(r.crashes + r.lost_pairs for res in results_by_mode.values() for r in res.values())
    if not args.no_doc:
        command = (f'python tools/benchmark_fuzz.py --sets {args.sets} --burst {args.burst} '
                   f'--seed {args.seed} --modes {args.modes}')
        section = '\n'.join([
            BEGIN, '## Fuzzing the perception node', '',
            f'{sets} malformed stereo sets in {len(CATEGORIES)} categories, in bursts of '
            f'{args.burst} (one category per burst), each burst followed by a valid set; '
            'the node runs with reliable QoS and queues of 30 messages per input (it sees every '
            'set of a burst) over Fast DDS on localhost. *Crashes*: the node '
            'process ended; *lost pairs*: the valid set after a burst gave no '
            '`keypoints_3d` within 30 s. "(valid)" categories are well-formed alternatives '
            'that must be processed.', '',
            f'Command: `{command}` ({minutes:.1f} min). Machine: {cpu_model()}.', '',
            *table, '', END])
        replace_section(args.doc, BEGIN, END, section)
        print(f'wrote {args.doc}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
