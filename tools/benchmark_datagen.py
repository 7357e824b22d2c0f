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
"""CPU cost of synthetic stereo data per class and stage (issue 3, throughput).

    source tools/env.sh && python tools/benchmark_datagen.py [--classes mug panda]
        [--count 30] [--seed 0] [--write-doc]

For each class config, one in-process generator (one worker, one PyBullet
client, TinyRenderer) makes ``--count`` 640x480 stereo samples with full
labels: the depth and segmentation outputs are switched on, and every sample
is encoded and written through the real :class:`sim_datagen.writer.ShardWriter`
into a temporary folder, as ``sim-datagen generate`` does.

Each stage is timed in **process CPU time** (``time.process_time``, the
generator's own ``Stopwatch``), not wall time: the figures are meant to hold
on a machine that is busy with other jobs (a training run shared the two cores
when they were recorded), where wall time measures the other jobs too.
Stages: ``scene`` (object placement, joints, URDF loading, removing the bodies),
``render`` (the two ``getCameraImage`` calls and, for URDF classes, the
ray-cast support plane), ``label`` (projection,
visibility from depth / segmentation, the depth and segmentation outputs),
``imaging`` (background, compositing, camera effects, sensor noise),
``encode`` (JPEG / PNG / JSON), ``write`` (tar shard).  ``--warmup`` samples
(other indices) are generated first and not counted.

With ``--write-doc`` the section between the ``datagen`` markers of
docs/benchmarks.md is replaced with the table, date, machine and command.
"""

import argparse
import datetime
import json
import os
import shlex
import sys
import tempfile

from benchmark_common import cpu_model, replace_section
import cv2
import pybullet
from sim_datagen.config import load_config
from sim_datagen.generator import SampleGenerator, Stopwatch
from sim_datagen.writer import encode_sample, ShardWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'docs', 'benchmarks.md')
BEGIN, END = '<!-- BEGIN datagen -->', '<!-- END datagen -->'
CLASSES = ['checkerboard', 'mug', 'drawer', 'kuka_iiwa', 'panda']
STAGES = ['scene', 'render', 'label', 'imaging', 'encode', 'write']
TARGET_MS = 160.0


def machine() -> str:
    """CPU model (from /proc/cpuinfo), core count and library versions."""
    return (f'{cpu_model()}, PyBullet API {pybullet.getAPIVersion()}, '
            f'OpenCV {cv2.__version__}')


def bench_class(name: str, count: int, seed: int, warmup: int, shard_size: int) -> dict:
    """Generate, encode and write ``count`` samples of one class; CPU ms per stage.

    Returns:
        ``{'stages': {stage: mean CPU ms per stereo sample}, 'total': ms,
        'count': n}``.
    """
    cfg = load_config(name)
    cfg['outputs'] = dict(cfg.get('outputs', {}), depth=True, segmentation=True)
    jpeg = int(cfg['outputs'].get('jpeg_quality', 95))
    gen = SampleGenerator(cfg)
    totals = {k: 0.0 for k in STAGES}
    try:
        with tempfile.TemporaryDirectory(prefix=f'bench_datagen_{name}_') as out:
            for i in range(warmup):
                gen.generate(10 ** 6 + i, seed)
            writer = None
            for i in range(count):
                s = gen.generate(i, seed)
                sw = Stopwatch()
                members = encode_sample(s, jpeg)
                sw.lap('encode')
                if writer is None:
                    writer = ShardWriter(out, i // shard_size)
                writer.write(s['key'], members)
                if (i + 1) % shard_size == 0 or i == count - 1:
                    writer.close()
                    writer = None
                sw.lap('write')
                for k, v in list(s['cpu_timing'].items()) + list(sw.cpu.items()):
                    totals[k] = totals.get(k, 0.0) + v
    finally:
        gen.world.close()
    stages = {k: 1000.0 * v / count for k, v in totals.items()}
    return {'stages': stages, 'total': sum(stages.values()), 'count': count}


def table(results: dict) -> list:
    """Markdown table lines: class, total and per-stage CPU ms, samples/s/core, target."""
    head = ['class', 'total CPU ms / stereo sample', *STAGES, 'stereo samples/s/core',
            f'<= {TARGET_MS:.0f} ms']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for name, r in results.items():
        st = r['stages']
        row = [f'`{name}`', f'**{r["total"]:.0f}**', *(f'{st.get(k, 0.0):.1f}' for k in STAGES),
               f'{1000.0 / r["total"]:.1f}', 'met' if r['total'] <= TARGET_MS else 'not met']
        lines.append('| ' + ' | '.join(row) + ' |')
    return lines


def write_doc(results: dict, command: str, args, load: str) -> str:
    """Replace the ``datagen`` marker section of docs/benchmarks.md; returns it."""
    lines = [
        BEGIN,
        f'Measured {datetime.date.today().isoformat()} on {machine()}',
        f'(load average {load} at the start), with',
        '',
        f'`{command}`',
        '',
        f'(one in-process worker, {args.count} samples per class after {args.warmup} '
        f'warm-up samples, seed {args.seed};',
        '640x480 stereo, TinyRenderer, full labels: depth and segmentation outputs',
        'on, encoded and written to a tar shard). Process CPU milliseconds per',
        'stereo sample (`time.process_time`; wall time is not meaningful here, a',
        'network was training on the same two cores):',
        '',
        *table(results),
        '',
        'Stages: scene = placement, joints, URDF loading and removal of the bodies;',
        'render = the two `getCameraImage` calls (+ the ray-cast support plane of',
        'the URDF classes); label = projection, visibility',
        'from depth / segmentation and the depth / segmentation outputs; imaging =',
        'background, compositing, camera effects, sensor noise; encode = JPEG / PNG /',
        f'JSON; write = tar shard. Target: <= {TARGET_MS:.0f} ms CPU per stereo sample per',
        'core (the published generator: 321 ms per 640x480 sample).',
        END,
    ]
    section = '\n'.join(lines)
    replace_section(DOC, BEGIN, END, section)
    return section


def main(argv=None) -> int:
    """Benchmark the classes, print the table, optionally update the docs."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--classes', nargs='+', default=CLASSES,
                    help='class configs (names in sim_datagen/config or paths)')
    ap.add_argument('--count', type=int, default=30, help='timed samples per class')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--warmup', type=int, default=2, help='untimed samples first')
    ap.add_argument('--shard-size', type=int, default=100)
    ap.add_argument('--json', help='also write the figures to this JSON file')
    ap.add_argument('--write-doc', action='store_true',
                    help='replace the datagen section of docs/benchmarks.md')
    a = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    command = ' '.join(['python tools/benchmark_datagen.py', *map(shlex.quote, argv)])
    load = ' / '.join(f'{x:.1f}' for x in os.getloadavg())
    print('CPU time per process (time.process_time), not wall time: other jobs may share '
          f'the cores (load average {load}), so wall time would measure them too.',
          file=sys.stderr)
    results = {}
    for name in a.classes:
        results[name] = bench_class(name, a.count, a.seed, a.warmup, a.shard_size)
        r = results[name]
        print(f'{name}: {r["total"]:.1f} CPU ms per stereo sample '
              f'({1000.0 / r["total"]:.2f} stereo samples/s/core)', file=sys.stderr, flush=True)
    print('\n'.join(table(results)))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'machine': machine(), 'command': command, 'results': results}, f,
                      indent=1)
    if a.write_doc:
        write_doc(results, command, a, load)
    return 0


if __name__ == '__main__':
    sys.exit(main())
