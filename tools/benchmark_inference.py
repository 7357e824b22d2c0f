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
"""Network and pipeline latency without ROS, on CPU and (when present) CUDA.

Runs the core pipeline (:class:`StereoKeypointPipeline`, no rclpy) on the 13
real OpenCV stereo pairs and times, per device:

* the shipped ``lite`` model: network on one stereo pair (batch 2, resize,
  forward, copy back) and the whole pipeline per pair;
* the ``paper`` configuration (random weights: speed only) on the same batch;
* batched network throughput (views per second at batch 32) for both.

Usage (from the repository root)::

    PYTHONPATH=src/keypoint_perception python tools/benchmark_inference.py \\
        [--devices cpu cuda] [--write-doc]

``--write-doc`` replaces the ``inference`` section of docs/benchmarks.md.
"""

import argparse
import datetime
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_common import cpu_model, load_real_pairs, replace_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'docs', 'benchmarks.md')
BEGIN, END = '<!-- BEGIN inference -->', '<!-- END inference -->'


def _sync(device):
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def _timed(fn, device, repeats, warmup=2):
    """Milliseconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(out)


def bench_device(device: str, pairs, cams, repeats: int) -> dict:
    """Latency figures for one torch device."""
    import torch
    from keypoint_perception.core.config import PipelineConfig
    from keypoint_perception.core.detector import KeypointDetector
    from keypoint_perception.core.pipeline import StereoKeypointPipeline
    from keypoint_perception.core.model import BeliefMapNet, make_config, normalize_images

    det = KeypointDetector('checkerboard_lite', device=device)
    pipe = StereoKeypointPipeline(det, PipelineConfig(input_rectified=False))
    res = {}
    res['lite_net_pair'] = _timed(lambda: det.infer(pairs[0]), device, repeats)
    full = []
    for _ in range(max(1, repeats // len(pairs))):
        for left, right in pairs:
            t0 = time.perf_counter()
            pipe.process(left, right, *cams)
            full.append((time.perf_counter() - t0) * 1e3)
    res['lite_pipeline_pair'] = np.asarray(full)
    big = det.preprocess([pairs[i % len(pairs)][i % 2] for i in range(32)])
    with torch.no_grad():
        t = _timed(lambda: det.model(big)[-1].float().cpu(), device, max(3, repeats // 4))
    res['lite_views_per_s'] = 32e3 / np.median(t)
    paper = BeliefMapNet(make_config('paper', det.config.num_keypoints)).to(device).eval()
    cfgp = paper.config
    size = (cfgp.input_width, cfgp.input_height)
    x2 = torch.from_numpy(np.stack([cv2.resize(im, size) for im in pairs[0]])).to(device)
    on_gpu = device.startswith('cuda')
    with torch.no_grad():  # on CPU the paper network takes seconds: one timed pair only
        res['paper_net_pair'] = _timed(lambda: paper(normalize_images(x2))[-1].float().cpu(),
                                       device, max(3, repeats // 2) if on_gpu else 1,
                                       2 if on_gpu else 1)
        xb = x2[[i % 2 for i in range(32)]]
        if on_gpu:
            t = _timed(lambda: paper(normalize_images(xb))[-1].float().cpu(), device, 3)
    res['paper_views_per_s'] = 32e3 / np.median(t) if on_gpu else float('nan')
    res['paper_input'] = f'{cfgp.input_width}x{cfgp.input_height}'
    res['lite_input'] = f'{det.config.input_width}x{det.config.input_height}'
    if device.startswith('cuda'):
        res['name'] = torch.cuda.get_device_name(0)
    else:
        res['name'] = f'CPU, {torch.get_num_threads()} torch threads'
    return res


def main(argv=None):
    """Measure, print and optionally write docs/benchmarks.md."""
    import torch
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--devices', nargs='+',
                   default=['cpu'] + (['cuda'] if torch.cuda.is_available() else []))
    p.add_argument('--repeats', type=int, default=39)
    p.add_argument('--write-doc', action='store_true')
    args = p.parse_args(argv)
    pairs, cams = load_real_pairs()
    rows = []
    for dev in args.devices:
        r = bench_device(dev, pairs, cams, args.repeats)
        rows.append((dev, r))
        print(f'{dev} ({r["name"]}): lite net {np.median(r["lite_net_pair"]):.2f} ms/pair, '
              f'pipeline {np.median(r["lite_pipeline_pair"]):.2f} ms/pair, '
              f'{r["lite_views_per_s"]:.0f} views/s at batch 32; paper net '
              f'{np.median(r["paper_net_pair"]):.2f} ms/pair, '
              f'{r["paper_views_per_s"]:.0f} views/s', flush=True)
    lines = [BEGIN, '### Inference without ROS, CPU and GPU', '',
             f'`PYTHONPATH=src/keypoint_perception python tools/benchmark_inference.py '
             f'--write-doc` on {cpu_model()}, torch {torch.__version__}; '
             f'{datetime.date.today()}. The 13 real pairs at 640x480; medians over '
             f'{args.repeats} runs. "net" is resize + forward + copy of the belief maps for '
             'one stereo pair (batch 2); "pipeline" adds decoding, matching, triangulation '
             'and the pose fit. The `paper` configuration has random weights here (speed '
             'only).', '',
             '| device | lite input | lite net, ms/pair | lite pipeline, ms/pair | '
             'lite views/s (batch 32) | paper input | paper net, ms/pair | '
             'paper views/s (batch 32) |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for dev, r in rows:
        pv = r['paper_views_per_s']
        lines.append(f'| {r["name"]} | {r["lite_input"]} | '
                     f'{np.median(r["lite_net_pair"]):.2f} | '
                     f'{np.median(r["lite_pipeline_pair"]):.2f} | '
                     f'{r["lite_views_per_s"]:.0f} | {r["paper_input"]} | '
                     f'{np.median(r["paper_net_pair"]):.0f} | '
                     f'{"-" if np.isnan(pv) else round(pv)} |')
    lines.append(END)
    section = '\n'.join(lines) + '\n'
    print(section)
    if args.write_doc:
        replace_section(DOC, BEGIN, END, section)
        print(f'updated {DOC}')


if __name__ == '__main__':
    main()
