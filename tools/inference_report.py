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
"""The Markdown of tools/benchmark_inference.py: its tables and issue 19's targets.

:func:`section` turns the measurements (network, stages, end to end through
ROS 2, batches) into the ``inference`` section of docs/benchmarks.md;
:func:`targets` states each target of issue 19 with the measured value.
The measurements' shapes are those :mod:`benchmark_inference` returns.
"""

import datetime
from typing import Sequence

from benchmark_common import cpu_model
from keypoint_perception.core import backends
import numpy as np
import onnxruntime
import torch

BEGIN, END = '<!-- BEGIN inference -->', '<!-- END inference -->'
#: The model measured, with its shipped test-time augmentation (rot180).
MODEL = 'checkerboard_lite'
#: Its shipped 8-bit copy (core/quantization.py).
INT8_MODEL = 'checkerboard_lite_int8'
#: The pipeline's stages in StereoResult.timings_ms.
STAGES = ('preprocess', 'network', 'decode', 'triangulate_fit', 'roi_pass')


def _ms(values: np.ndarray) -> str:
    return f'{values.mean():.1f} / {np.percentile(values, 95):.1f}'


def _setting_name(setting) -> str:
    backend, threads, spinning, model = setting
    if backend == 'torch':
        return f'PyTorch, {threads} thread{"s" if threads > 1 else ""}'
    return (f'ONNX Runtime{", 8-bit copy" if model == INT8_MODEL else ""}, {threads} '
            f'thread{"s" if threads > 1 else ""}, spinning {"on" if spinning else "off"}')


def _pair_names(indices: Sequence[int]) -> str:
    """'01, 07': the real pairs' file numbers (left01.jpg is index 0), or 'none'."""
    return ', '.join(f'{k + 1:02d}' for k in indices) or 'none'


def _verdict(ok: bool) -> str:
    return 'met' if ok else '**not met**'


def targets(network, ros, gmac: float = float('nan'), sgemm=None) -> list:
    """Markdown list: each target of issue 19 with the measured value and whether it is met."""
    lines = []
    quiet_network = {setting: quiet.mean() for setting, quiet, _ in network}
    busy_network = {setting: busy.mean() for setting, _, busy in network}
    torch_default = ('torch', torch.get_num_threads(), None, MODEL)
    policy = ('onnxruntime', backends.default_threads('onnxruntime', backends.available_cores()),
              False, MODEL)

    def speedups(model):
        """(quiet, busy, 1 thread each): PyTorch's default time over ONNX Runtime's with model."""
        ort = policy[:3] + (model,)
        return (quiet_network[torch_default] / quiet_network[ort],
                busy_network[torch_default] / busy_network[ort],
                quiet_network.get(('torch', 1, None, MODEL), np.nan)
                / quiet_network.get(('onnxruntime', 1, False, model), np.nan))

    if torch_default in quiet_network and policy in quiet_network:
        quiet, busy, single = speedups(MODEL)
        lines.append(f'- network >= 2x faster than PyTorch (its default, '
                     f'{torch_default[1]} threads, vs the ONNX Runtime default, {policy[1]} '
                     f'thread(s)): {quiet:.2f}x quiet, {busy:.2f}x with a busy '
                     f'neighbour; {single:.2f}x at 1 thread each: {_verdict(quiet >= 2)}')
        if sgemm and policy[1] in sgemm:
            ceiling = sgemm[policy[1]] / (8 * gmac / quiet_network[torch_default] * 1e3)
            lines.append(f'  (at most {ceiling:.2f}x for any float32 network: the float32 '
                         f'matrix product\'s speed on {policy[1]} thread(s), '
                         f'{sgemm[policy[1]]:.0f} GFLOP/s, over PyTorch\'s on the network)')
        if policy[:3] + (INT8_MODEL,) in quiet_network:
            quiet, busy, single = speedups(INT8_MODEL)
            lines.append(f'- the same with the 8-bit copy ({INT8_MODEL}): {quiet:.2f}x '
                         f'quiet, {busy:.2f}x with a busy neighbour; {single:.2f}x at 1 '
                         f'thread each: {_verdict(quiet >= 2)}')
        ratio = busy_network[policy] / quiet_network[policy]
        lines.append(f'- network latency with a busy neighbour <= 1.5x quiet (ONNX Runtime '
                     f'default): {ratio:.2f}x: {_verdict(ratio <= 1.5)}')
    for label, name in (('onnxruntime', 'node defaults'),
                        ('onnxruntime, second look without augmentation',
                         'roi_augmentation false'),
                        ('onnxruntime, 8-bit', f'node defaults, model {INT8_MODEL}'),
                        ('onnxruntime, 8-bit, second look without augmentation',
                         f'model {INT8_MODEL}, roi_augmentation false'),
                        ('onnxruntime, 8-bit, no second look',
                         f'model {INT8_MODEL}, roi_refinement off')):
        quiet = [(rate, r) for lab, rate, busy, r in ros if lab == label and not busy]
        if not quiet:
            continue
        # the most the node kept up with over the camera rates (a 15 Hz camera caps it at 15)
        best = max(r['pairs_per_s'] for _, r in quiet)
        # a camera that sends 15 pairs/s is kept up with when (almost) every pair comes back
        kept = [r for rate, r in quiet if rate >= 15 and r['processed'] >= 0.99 * r['sent']]
        lines.append(f'- >= 15 stereo pairs/s end to end through ROS 2 ({name}): {best:.1f} '
                     f'pairs/s at most over the camera rates; every pair of a 15 Hz or faster '
                     f'camera processed: {"yes" if kept else "no"}: '
                     f'{_verdict(best >= 15 or bool(kept))}')
        target = [(rate, r) for rate, r in quiet if rate == min(q[0] for q in quiet)]
        ratios = [r['latency_p95'] / r['latency_mean'] for _, r in target]
        steady = [r['steady_p95_ratio'] for _, r in target]
        lines.append(f'- p95 latency <= 1.5x the mean ({name}, quiet, {target[0][0]:g} Hz): '
                     f'{", ".join(f"{x:.2f}" for x in ratios)}: {_verdict(max(ratios) <= 1.5)} '
                     f'(steady scene: {", ".join(f"{x:.2f}" for x in steady)})')
        busy = {rate: r for lab, rate, b, r in ros if lab == label and b}
        growth = [busy[rate]['latency_mean'] / r['latency_mean'] for rate, r in target
                  if rate in busy]
        lines.append(f'- end-to-end latency with a busy neighbour <= 1.5x quiet ({name}, '
                     f'{target[0][0]:g} Hz): {", ".join(f"{x:.2f}" for x in growth)}x: '
                     f'{_verdict(max(growth, default=np.inf) <= 1.5)}')
    return lines


def section(args, network, stages, ros, gpu, loads, gmac=float('nan'),
            sgemm=None) -> str:
    """Markdown of the ``inference`` section (the parts that were measured)."""
    lines = [
        BEGIN, '### Inference backends and threads (issue 19)', '',
        f'`source tools/env.sh && python tools/benchmark_inference.py --write-doc` on '
        f'{cpu_model()}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; '
        f'{datetime.date.today()}. Model `{MODEL}` with its test-time augmentation (`rot180`: '
        'the network sees 4 views per stereo pair). "Busy" = a separate process keeps one of '
        'the cores busy (`python -c "while True: pass"`) while the same measurement runs '
        'again. Other jobs shared the machine: 1-minute load average '
        f'{", ".join(loads)} during the parts below.']
    if network:
        lines += _network_part(args, network, gmac, sgemm)
    if stages:
        lines += _stages_part(args, stages)
    if ros:
        lines += _ros_part(args, ros)
    if network or ros:
        lines += ['', '**Targets** (issue 19, 2 CPU cores, lite model with rot180), from the '
                  'tables above:', ''] + targets(network, ros, gmac, sgemm)
    if gpu:
        lines += ['', f'**Batches** on {args.batch_device or "cuda:0"}, stereo pairs per '
                  'batch of the real sequence (rot180: 4 views per pair); "network": '
                  'preprocessing and the network; "pipeline": '
                  '`StereoKeypointPipeline.process_batch` with the node\'s defaults (both '
                  'looks batched, decoding, triangulation and fit on one CPU thread):', '',
                  '| backend | pairs per batch | network pairs/s | p50 / p95 ms | '
                  'pipeline pairs/s | p50 / p95 ms |', '|---|---|---|---|---|---|']
        lines += [f'| {b} | {n} | {rate:.0f} | {p50:.1f} / {p95:.1f} | {whole:.0f} | '
                  f'{w50:.1f} / {w95:.1f} |'
                  for b, n, rate, p50, p95, whole, w50, w95 in gpu]
    lines.append(END)
    return '\n'.join(lines) + '\n'


def _network_part(args, network, gmac, sgemm) -> list:
    """Markdown lines of the network table and the thread policy."""
    lines = [
        '', f'**Network**, one stereo pair (4 views, 256x192), mean / p95 ms over {args.repeats} '
        f'runs; "GFLOP/s": the float network\'s {gmac:.3f} GMAC per view x 4 views x 2 '
        'FLOP per MAC / quiet mean time (the 8-bit copy does the same arithmetic in '
        'integers):', '',
        '| backend, threads | quiet | busy neighbour | busy / quiet | GFLOP/s, quiet |',
        '|---|---|---|---|---|']
    for setting, quiet, busy in network:
        lines.append(f'| {_setting_name(setting)} | {_ms(quiet)} | {_ms(busy)} | '
                     f'{busy.mean() / quiet.mean():.2f} | '
                     f'{8 * gmac / quiet.mean() * 1e3:.0f} |')
    if sgemm:
        speeds = ', '.join(f'{g:.0f} GFLOP/s at {n} thread{"s" if n > 1 else ""}'
                           for n, g in sorted(sgemm.items()))
        lines += ['', 'For comparison, a float32 matrix product (2048 x 2048, ONNX Runtime) on '
                  f'this CPU: {speeds}: the speed float32 arithmetic reaches here.']
    return lines + [
        '', 'The node\'s defaults (`num_threads: 0`): ONNX Runtime with every core and spinning '
        'off (chosen on the end-to-end table: alone, 2 threads slow down more with a busy '
        'neighbour than 1, but in the node, whose post-processing shares the cores anyway, '
        'they keep a few more pairs per second, and the latency stays within 1.5x with a busy '
        'neighbour either way; `num_threads: 1` costs less CPU per pair); PyTorch keeps its '
        'own default (one thread per core).']


def _stages_part(args, stages) -> list:
    """Markdown lines of the per-stage table."""
    lines = [
        '', f'**Stages** of the core pipeline (no ROS; node defaults, `roi_refinement: always`), '
        f'mean / p95 ms over {args.stage_repeats} x 13 real pairs:', '',
        '| stage | ' + ' | '.join(f'{b}, {c}' for b in stages for c in ('quiet', 'busy'))
        + ' |', '|---|' + '---|' * (2 * len(stages))]
    for name in STAGES + ('total',):
        lines.append(f'| {name} | ' + ' | '.join(
            _ms(stages[b][busy][name]) for b in stages for busy in (False, True)) + ' |')
    return lines


def _ros_part(args, ros) -> list:
    """Markdown lines of the end-to-end table."""
    taken = [r['second_look_pairs'] for *_, r in ros if r['second_look_pairs']]
    lines = [
        '', '**End to end through ROS 2**: `stereo_keypoint_node` (own process, node '
        'defaults: best-effort inputs, the newest pair wins when the node is behind) fed the '
        f'13 real pairs (grey 640x480) at each camera rate for {args.seconds:g} s over DDS by '
        '`tools/stereo_harness.py` (a Python publisher on the same 2 cores); `keypoints_3d` '
        'messages per second and publish-to-`keypoints_3d` latency (mean / p50 / p95 ms). '
        '"Second look / first only": the mean latency of the pairs on which the run\'s '
        'settings take the second, zoomed look (pair '
        + ', '.join(sorted({_pair_names(t) for t in taken}) or ['none'])
        + ' of 13) and of the others. "Steady scene": p95 / mean of each pair\'s own '
        'latencies, the largest over the 13 pairs (what a camera that keeps looking at one '
        'scene sees):', '',
        '| backend | camera | load | pairs/s | latency mean / p50 / p95 | p95 / mean | '
        'second look / first only | steady scene, p95 / mean | sent / processed | '
        'node CPU per pair |', '|---|---|---|---|---|---|---|---|---|---|']
    for backend, rate, busy, r in ros:
        lines.append(f'| {backend} | {rate:g} Hz | {"busy neighbour" if busy else "quiet"} | '
                     f'{r["pairs_per_s"]:.1f} | {r["latency_mean"]:.0f} / '
                     f'{r["latency_p50"]:.0f} / {r["latency_p95"]:.0f} | '
                     f'{r["latency_p95"] / r["latency_mean"]:.2f} | '
                     f'{r["second_look_mean"]:.0f} / {r["first_look_mean"]:.0f} | '
                     f'{r["steady_p95_ratio"]:.2f} | '
                     f'{r["sent"]} / {r["processed"]} | {r["node_cpu_ms"]:.0f} ms |')
    return lines
