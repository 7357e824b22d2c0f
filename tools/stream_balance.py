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
"""How many simulators keep one streaming trainer fed? (issue 18 item 3).

    source tools/env.sh && python tools/stream_balance.py [--config checkerboard]
        [--size 640 480] [--duration 30] [--steps 10] [--batch 16] [--device cpu]
        [--write-doc]

1. **Simulator**: one ``sim_stream_node`` (``rate`` 0: as fast as it renders)
   streams to a :class:`~keypoint_perception.training.stream_dataset.StreamDataset`
   in this process for ``--duration`` s; measured are the stereo samples/s
   received and the node's CPU seconds per sample (``/proc/<pid>/stat``, so
   the figure holds on a busy machine).
2. **Trainer**: the node is stopped, then ``--steps`` training steps (after
   two warm-up steps) of the streaming trainer's work per step -- resize the
   stereo samples to the network input (``views_of_samples``), augment and
   make targets (``make_batch_arrays``), one optimizer step -- are timed on
   samples kept from the stream.  The trainer takes ``ceil(batch / 2)``
   stereo samples per step.

The ratio (trainer samples/s over one simulator's samples/s) is the number
of simulator processes (each on its own core) that keep one trainer fed.
Both are measured alone, so on a machine where simulators and trainer
share the cores, the figures are upper bounds.  With ``--write-doc`` the
section between the ``stream_balance`` markers of docs/benchmarks.md is
replaced.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

from benchmark_common import cpu_model, cpu_seconds, replace_section
from keypoint_perception.core.model import BeliefMapNet, make_config
from keypoint_perception.core.objects import load_object_class
from keypoint_perception.training.data import views_of_samples
from keypoint_perception.training.loop import make_batch_arrays, optimizer_step
from keypoint_perception.training.stream_dataset import StreamDataset
from keypoint_perception.training.stream_sources import sim_node_command
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'docs', 'benchmarks.md')
BEGIN, END = '<!-- BEGIN stream_balance -->', '<!-- END stream_balance -->'
NAMESPACE = '/balance_sim'


def measure_simulator(args) -> dict:
    """Stereo samples/s and CPU s per sample of one node; returns them and kept samples."""
    node = subprocess.Popen(
        sim_node_command() + ['--ros-args', '-r', f'__ns:={NAMESPACE}', '-p', 'rate:=0.0',
                              '-p', f'config:={args.config}', '-p', f'width:={args.size[0]}',
                              '-p', f'height:={args.size[1]}'],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    dataset = StreamDataset([NAMESPACE], queue_size=4, timeout=120.0)
    kept = []
    try:
        samples = iter(dataset)
        for _ in range(2):  # warm-up: discovery, first renders
            kept.append(next(samples))
        received0 = dataset.stats()[NAMESPACE]['received']
        cpu0, t0 = cpu_seconds(node.pid), time.monotonic()
        while time.monotonic() - t0 < args.duration:
            sample = next(samples)
            if len(kept) < (args.batch + 1) // 2 + 2:
                kept.append(sample)
        elapsed = time.monotonic() - t0
        count = dataset.stats()[NAMESPACE]['received'] - received0
        cpu = cpu_seconds(node.pid) - cpu0
    finally:
        dataset.close()
        node.terminate()
        node.wait(20)
    image_bytes = 2 * args.size[0] * args.size[1] * 3
    return {'samples_per_s': count / elapsed, 'cpu_s_per_sample': cpu / max(count, 1),
            'samples': count, 'seconds': elapsed, 'image_megabytes': image_bytes / 1e6,
            'megabits_per_sample_per_s': 8 * image_bytes / 1e6}, kept


def measure_trainer(args, samples) -> dict:
    """Training steps/s and stereo samples/s of the streaming trainer's per-step work."""
    torch.set_num_threads(args.threads)
    oc = load_object_class(args.object)
    config = make_config('lite', oc.num_keypoints)
    device = torch.device(args.device)
    model = BeliefMapNet(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    pairs = (args.batch + 1) // 2
    times = []
    for step in range(args.steps + 2):
        t0 = time.monotonic()
        chosen = [samples[(step * pairs + i) % len(samples)] for i in range(pairs)]
        views = views_of_samples(chosen, (config.input_width, config.input_height))
        images, targets = make_batch_arrays(views, np.arange(args.batch), oc.symmetries,
                                            config, 1.5, (0, step), distractor_prob=0.5)
        optimizer_step(model, opt, sched, images, targets, device, 'bce')
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.monotonic() - t0)
    step_s = float(np.mean(times[2:]))
    return {'steps_per_s': 1.0 / step_s, 'samples_per_s': pairs / step_s, 'batch': args.batch,
            'device': str(device), 'threads': args.threads}


def doc_section(sim: dict, train: dict, args, command: str, load: str) -> str:
    """Markdown section with both figures, the ratio and the network needs."""
    ratio = train['samples_per_s'] / max(sim['samples_per_s'], 1e-9)
    return '\n'.join([
        BEGIN, '',
        f'Recorded {datetime.date.today()} on {cpu_model()} with', '',
        f'    {command}', '',
        '| side | measured | figure |', '|---|---|---|',
        f'| one simulator ({args.config}, {args.size[0]}x{args.size[1]} stereo, rate 0) | '
        f'{sim["samples"]} samples in {sim["seconds"]:.0f} s | '
        f'**{sim["samples_per_s"]:.2f} samples/s**, {sim["cpu_s_per_sample"]:.2f} CPU s per '
        'sample |',
        f'| trainer (lite, batch {train["batch"]}, {train["device"]}, {train["threads"]} '
        f'threads) | {args.steps} steps | **{train["samples_per_s"]:.2f} samples/s** '
        f'({train["steps_per_s"]:.2f} steps/s, {(train["batch"] + 1) // 2} stereo samples '
        'per step) |', '',
        f'Simulator processes (each on its own core) that keep one such trainer fed: '
        f'**{ratio:.2f}**' + (' -- one is enough, the trainer is the bottleneck here'
                              if ratio <= 1 else '')
        + '.  Both sides were measured alone; where they share cores, each gets less.  '
        'The paper needed 8 simulators for one 4-GPU trainer.'
        + ('' if train['device'] != 'cpu' else '  A GPU trainer was not measured here: '
           'rerun with `--device cuda` on a GPU machine.'),
        f'Load average while recording: {load}.', '',
        f'Network: a {args.size[0]}x{args.size[1]} rgb8 stereo sample is '
        f'{sim["image_megabytes"]:.2f} MB of images (labels add a few kB), so each sample/s '
        f'a remote simulator streams needs about {sim["megabits_per_sample_per_s"]:.0f} '
        'Mbit/s; to keep this trainer fed from other machines: '
        f'{train["samples_per_s"] * sim["megabits_per_sample_per_s"]:.0f} Mbit/s.  '
        'Simulators on other machines are plain ROS 2: start `sim_stream_node` there under '
        'its own namespace in the same `ROS_DOMAIN_ID`, with '
        '`ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET` (the default) instead of `LOCALHOST` on both '
        'sides, and pass the namespaces to `keypoints-train --stream --stream-namespaces`.',
        '', END])


def main(argv=None) -> int:
    """Measure both sides, print them and (optionally) write the doc section."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='checkerboard', help='sim_datagen generator config')
    p.add_argument('--object', default='checkerboard', help='object class of the network')
    p.add_argument('--size', type=int, nargs=2, default=(640, 480), metavar=('W', 'H'))
    p.add_argument('--duration', type=float, default=30.0, help='seconds of streaming')
    p.add_argument('--steps', type=int, default=10, help='timed training steps')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    p.add_argument('--device', default='cpu')
    p.add_argument('--write-doc', action='store_true')
    p.add_argument('--doc', default=DOC)
    args = p.parse_args(argv)
    load = ', '.join(f'{x:.1f}' for x in os.getloadavg())
    sim, samples = measure_simulator(args)
    train = measure_trainer(args, samples)
    print(json.dumps({'simulator': sim, 'trainer': train}, indent=1))
    if args.write_doc:
        command = 'python tools/stream_balance.py ' + ' '.join(
            argv if argv is not None else sys.argv[1:])
        replace_section(args.doc, BEGIN, END, doc_section(sim, train, args, command, load))
        print(f'wrote {args.doc}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
