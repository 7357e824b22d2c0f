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
"""Measure the perception pipeline and record the figures in docs/benchmarks.md.

    source tools/env.sh && python tools/benchmark_perception.py [--model checkerboard_lite]

Runs, on this machine:
1. ``keypoints-eval real``: accuracy on OpenCV's real stereo sequence;
2. ``keypoints-eval synthetic``: accuracy on a held-out synthetic test set
   (generated with a seed disjoint from training if missing);
3. per-stage latency of the core pipeline (no ROS) on the real pairs;
4. ``keypoints-demo --no-annotate``: end-to-end rate through ROS 2 (replay node
   -> DDS -> perception node process -> DDS -> recorder), lock-step.

The section between the ``perception`` markers of docs/benchmarks.md is
replaced; other sections are kept.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

from benchmark_common import cpu_model, load_real_pairs, replace_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'docs', 'benchmarks.md')
BEGIN, END = '<!-- BEGIN perception -->', '<!-- END perception -->'


def machine(model: str) -> str:
    """One line describing CPU, cores, library versions and the default inference backend."""
    import torch
    from keypoint_perception.core.detector import KeypointDetector
    backend = KeypointDetector(model).backend.describe()
    return (f'{cpu_model()}, torch {torch.__version__}, no GPU; network: {backend} '
            '(the node\'s default backend and threads)')


def run(cmd, **kw) -> str:
    """Run a command, echo and return its stdout (raises on failure)."""
    print('$', ' '.join(cmd), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout
    print(out[-3000:], flush=True)
    return out


def stage_latency(model: str, repeats: int = 3) -> dict:
    """Mean per-stage milliseconds of StereoKeypointPipeline on the real pairs."""
    from keypoint_perception.core.config import PipelineConfig
    from keypoint_perception.core.detector import KeypointDetector
    from keypoint_perception.core.pipeline import StereoKeypointPipeline
    pipe = StereoKeypointPipeline(KeypointDetector(model), PipelineConfig(input_rectified=False))
    pairs, (lc, rc) = load_real_pairs()
    pipe.process(*pairs[0], lc, rc)  # warm-up
    times, totals = {}, []
    for _ in range(repeats):
        for left, right in pairs:
            t0 = time.perf_counter()
            res = pipe.process(left, right, lc, rc)
            totals.append((time.perf_counter() - t0) * 1e3)
            for k, v in res.timings_ms.items():
                times.setdefault(k, []).append(v)
    out = {k: float(np.mean(v)) for k, v in times.items()}
    out['total'] = float(np.mean(totals))
    return out


def main(argv=None):
    """Run the benchmarks and update docs/benchmarks.md."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='checkerboard_lite')
    p.add_argument('--test-data', default=os.path.join(ROOT, 'data', 'sim', 'checkerboard_test'))
    p.add_argument('--test-count', type=int, default=300)
    args = p.parse_args(argv)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_DOMAIN_ID=os.environ.get('BENCH_DOMAIN_ID', '77'))
    out_dir = os.path.join(ROOT, 'output', 'benchmarks')

    real_cmd = ['keypoints-eval', 'real', '--model', args.model, '--out',
                os.path.join(out_dir, 'real')]
    run(real_cmd)
    real = json.load(open(os.path.join(out_dir, 'real', 'metrics.json')))

    gen_cmd = ['sim-datagen', 'generate', '--config', 'checkerboard', '--count',
               str(args.test_count), '--out', args.test_data, '--workers', '2',
               '--seed', '1000']
    run(gen_cmd, cwd=ROOT)
    syn_cmd = ['keypoints-eval', 'synthetic', '--model', args.model, '--data', args.test_data,
               '--out', os.path.join(out_dir, 'synthetic')]
    run(syn_cmd)
    syn = json.load(open(os.path.join(out_dir, 'synthetic', 'metrics.json')))

    stages = stage_latency(args.model)

    demo_cmd = ['keypoints-demo', '--no-annotate', '--model', args.model, '--output',
                os.path.join(out_dir, 'demo', 'keypoints_3d.jsonl')]
    demo_out = run(demo_cmd, env=env, cwd=ROOT)
    m = re.search(r'([\d.]+) pairs/s in lock-step \(median latency (\d+) ms\)', demo_out)
    rate, latency = (float(m.group(1)), int(m.group(2))) if m else (float('nan'), -1)

    def pct(v):
        return f'{v:.3f}%' if v is not None else 'n/a'

    lines = [
        BEGIN,
        '## Perception (issue 2)',
        '',
        f'Measured {datetime.date.today().isoformat()} on: {machine(args.model)}.',
        f'Model: `{args.model}` (trained on synthetic renders only), test-time '
        f'augmentation `{real.get("test_time_augmentation", "none")}` '
        '(`auto`: the checkpoint\'s choice).',
        'Regenerate with `source tools/env.sh && python tools/benchmark_perception.py`.',
        '',
        '### Real stereo sequence (OpenCV sample, 13 pairs / 26 views)',
        '',
        f'Command: `{" ".join(real_cmd)}`; ground truth: `cv2.findChessboardCorners` corners,',
        'matched up to the board\'s 180 degree symmetry; calibration from',
        '`cv2.stereoCalibrate` on the same images (25 mm squares assumed).',
        '',
        '| figure | value | target |',
        '|---|---|---|',
        f'| views with all 4 corners detected | {real["views_all_detected"]}/{real["views"]} '
        '| >= 24/26 |',
        f'| pairs with all 4 corners triangulated | {real["pairs_all_triangulated"]}/'
        f'{real["pairs"]} | >= 12/13 |',
        f'| mean 2D error | {real["mean_px"]:.2f} px = {pct(real["mean_pct_diag"])} of diagonal'
        ' | <= 1.0% |',
        f'| median / max 2D error | {real["median_px"]:.2f} / {real["max_px"]:.2f} px '
        f'({pct(real["max_pct_diag"])}) | |',
        f'| PCK@0.5% / 1% / 2% of diagonal | {real["pck@0.5"]:.3f} / {real["pck@1"]:.3f} / '
        f'{real["pck@2"]:.3f} | |',
        f'| board side length error, mean / max | {real["side_length_error_pct_mean"]:.2f}% / '
        f'{real["side_length_error_pct_max"]:.2f}% | <= 3% |'
        if real['side_length_error_pct_mean'] is not None else
        '| board side length error | n/a | <= 3% |',
        f'| 3D error vs triangulated ground truth | {real["error_3d_mm_mean"]:.1f} mm |  |'
        if real['error_3d_mm_mean'] is not None else '| 3D error | n/a | |',
        '',
        'Annotated pairs: `output/benchmarks/real/annotated_pairs.jpg`; histogram:',
        '`output/benchmarks/real/error_histogram.png` (copied to `docs/images/`).',
        '',
        '### Synthetic test set',
        '',
        f'Commands: `{" ".join(gen_cmd)}` (seed disjoint from training), then',
        f'`{" ".join(syn_cmd)}`. Views with all keypoints inside the image: {syn["views"]}.',
        '',
        '| figure | value |',
        '|---|---|',
        f'| keypoints detected | {syn["detected"]:.3f} |',
        f'| mean 2D error | {syn["mean_px"]:.2f} px = {pct(syn["mean_pct_diag"])} of diagonal |',
        f'| median / max 2D error | {syn["median_px"]:.2f} / {syn["max_px"]:.2f} px |',
        f'| PCK@0.5% / 1% / 2% | {syn["pck@0.5"]:.3f} / {syn["pck@1"]:.3f} / '
        f'{syn["pck@2"]:.3f} |',
        '',
        'The 2D figures are the network\'s highest peaks alone. The full stereo pipeline',
        '(peak selection, template verification and completion; template scaled to each',
        'sample\'s rendered board size) on the pairs with all four corners labelled in both',
        'views:',
        '',
        '| figure | value |',
        '|---|---|',
        f'| pairs with all 4 corners triangulated | {syn["pairs_all_triangulated"]}/'
        f'{syn["pairs"]} |',
        f'| board side length error, mean / median | '
        f'{syn["side_length_error_pct_mean"]:.2f}% / {syn["side_length_error_pct_median"]:.2f}% |'
        if syn.get('side_length_error_pct_mean') is not None else '| side length error | n/a |',
        f'| 3D error vs rendered keypoints (per pair), mean / median / p95 / max | '
        f'{syn["error_3d_mm_mean"]:.1f} / {syn["error_3d_mm_median"]:.1f} / '
        f'{syn["error_3d_mm_p95"]:.1f} / {syn["error_3d_mm_max"]:.1f} mm |'
        if syn.get('error_3d_mm_mean') is not None else '| 3D error | n/a |',
        f'| 2D keypoints of the pipeline: found, mean / median error | '
        f'{syn["pipeline_detected"]:.3f}, {syn["pipeline_mean_px"]:.2f} / '
        f'{syn["pipeline_median_px"]:.2f} px |'
        if syn.get('pipeline_mean_px') is not None else '| pipeline 2D error | n/a |',
        '',
        f'Second, zoomed look: `{syn.get("roi_refinement")}`, window '
        f'{syn.get("roi_scale")} x the keypoints\' extent; template completion search '
        f'`{syn.get("completion_search")}` (the node\'s defaults).',
        '',
        '### Speed (2 CPU cores, no GPU)',
        '',
        'Per-stage latency of the core pipeline, mean over 3 x 13 real pairs (both views in',
        'one batch; `tools/benchmark_perception.py`, function `stage_latency`):',
        '',
        '| stage | ms |',
        '|---|---|',
    ] + [f'| {k} | {v:.1f} |' for k, v in stages.items()] + [
        '',
        f'End to end through ROS 2 (`{" ".join(demo_cmd)}`): **{rate:.1f} stereo pairs/s**',
        'in lock-step (each pair published after the previous result arrived; median',
        f'publish-to-result latency {latency} ms; target >= 5 pairs/s).',
        END,
    ]
    section = '\n'.join(lines).replace(ROOT + '/', '') + '\n'
    replace_section(DOC, BEGIN, END, section)
    img_dir = os.path.join(ROOT, 'docs', 'images')
    os.makedirs(img_dir, exist_ok=True)
    import shutil
    shutil.copy(os.path.join(out_dir, 'real', 'error_histogram.png'),
                os.path.join(img_dir, 'real_error_histogram.png'))
    print(section)
    return 0


if __name__ == '__main__':
    sys.exit(main())
