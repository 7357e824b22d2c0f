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
r"""A robot keypoint model on a synthetic test set: 2D, stereo 3D, camera-to-base, speed.

    source tools/env.sh && python tools/benchmark_robots.py --model panda \\
        --data DIR [DIR ...] [--max-samples N] [--threads N] [--validation-shards]
        [--roi-refinement off|incomplete|always] [--write-doc] [--json OUT]

For every stereo sample of the model's class in the ``sim_datagen`` shards of
``--data`` (issue 17, item 4):

* 2D: the mono detector (``keypoints-detect``'s, with the pipeline's
  ``roi_refinement``) on each view alone against the rendered labels: mean
  error in % of the image diagonal (visible keypoints; all in the image), PCK
  at 1/2/5% and the detection rate (a missed keypoint is incorrect);
* stereo 3D: :class:`StereoKeypointPipeline` with the node's defaults and
  the sample's two CameraInfos (raw images: ``input_rectified`` false),
  triangulated keypoints against the rendered 3D keypoints (left optical
  frame), millimetres;
* camera-to-base: ``T_camera_base`` by PnP + RANSAC on the left view (mono),
  by two-view PnP on both views' keypoints and by Umeyama + RANSAC on the
  triangulated ones (stereo), against forward kinematics of the sample's URDF
  and joints: translation and rotation errors, ADD AUC up to 100 mm (DREAM; no
  estimate or a dropped one = ADD inf); the same fits on the labels with 2D
  noise (:func:`~keypoint_perception.training.robot_metrics.calibration_error_budget`);
* speed: wall milliseconds per view, pair and frame, with the threads used.

Plots (error histogram, ADD curves, a contact sheet: predicted keypoints as
coloured dots, true ones as white crosses) go to ``--images`` (default
docs/images with ``--write-doc``), which replaces the ``robots_<class>``
section of docs/benchmarks.md; ``--json`` writes every figure.
"""

import argparse
import datetime
import json
import os
import shlex
import sys
import textwrap
import time

from benchmark_common import cpu_model, replace_section
import cv2
from keypoint_perception.calibrate_robot import default_urdf
from keypoint_perception.core.config import (PipelineConfig, ROI_REFINEMENTS,
                                             TEST_TIME_AUGMENTATIONS)
from keypoint_perception.core.dataset import camera_model_from_label, iter_shard, list_shards
from keypoint_perception.core.detector import KeypointDetector
from keypoint_perception.core.kinematics import keypoint_anchors, RobotKinematics
from keypoint_perception.core.onnx_model import file_sha256
from keypoint_perception.core.pipeline import StereoKeypointPipeline
from keypoint_perception.core.robot_calibration import (fit_camera_to_base_mono,
                                                        fit_camera_to_base_stereo,
                                                        MAX_RELATIVE_STD)
from keypoint_perception.core.two_view_calibration import fit_camera_to_base_stereo_views
from keypoint_perception.core.visualization import draw_view
from keypoint_perception.detect import detect_keypoints
from keypoint_perception.training.data import is_validation_shard
from keypoint_perception.training.evaluate import contact_sheet, error_histogram
from keypoint_perception.training.metrics import symmetric_errors
from keypoint_perception.training.robot_metrics import (add_curve, CALIBRATION_FITS,
                                                        calibration_error_budget,
                                                        camera_to_base_summary, json_ready,
                                                        keypoint_table, met,
                                                        ROBOT_PCK_THRESHOLDS, stereo_table)
from matplotlib.figure import Figure
import numpy as np
from sim_datagen.scene.urdf_object import resolve_urdf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'docs', 'benchmarks.md')
#: Targets of issue 17 (synthetic test set).
TARGET_2D_PCT = 1.0
TARGET_AUC = {'mono': 0.85, 'stereo': 0.9}
VIEWS = ('left', 'right')
#: Width of the prose lines written into docs/benchmarks.md.
WRAP = 79


#: The camera-to-base fits measured: name -> what it is.
FITS = dict(zip(CALIBRATION_FITS, (
    'mono: PnP + RANSAC on the left view',
    'stereo: both views\' 2D keypoints, reprojection error (two-view PnP)',
    'stereo: Umeyama + RANSAC on the triangulated keypoints')))
#: Mean 2D errors (% of the image diagonal) of the error budget table.
BUDGET_LEVELS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)


def markers(class_name: str):
    """(begin, end) markers of a class's section in docs/benchmarks.md."""
    return f'<!-- BEGIN robots_{class_name} -->', f'<!-- END robots_{class_name} -->'


def iter_test_samples(folders, class_name: str, validation_only: bool, max_samples: int):
    """Yield the samples of ``class_name`` in the shards of ``folders``, at most ``max_samples``.

    Samples of other classes are skipped; 0 = no limit.
    """
    count = 0
    for folder in folders:
        for shard in list_shards(folder):
            if validation_only and not is_validation_shard(shard):
                continue
            for sample in iter_shard(shard):
                if sample['labels'].get('object_class', class_name) != class_name:
                    continue
                yield sample
                count += 1
                if max_samples and count >= max_samples:
                    return


class Kinematics:
    """Forward kinematics per URDF named by the labels (``object.urdf``), loaded once each."""

    def __init__(self, object_class):
        """Read the class's keypoint anchors (links) from its YAML."""
        self.object_class = object_class
        self.anchors = keypoint_anchors(object_class)
        self.models = {}

    def points_base(self, labels: dict) -> np.ndarray:
        """(J, 3) float64 keypoints in the base frame, metres, for a sample's joint angles."""
        obj = labels.get('object', {})
        spec = obj.get('urdf')
        path = (resolve_urdf(spec, ROOT, 'labels object')[1] if spec
                else default_urdf(self.object_class.name))
        if path not in self.models:
            self.models[path] = RobotKinematics(path)
        points = self.models[path].keypoint_positions(obj.get('joints', {}), self.anchors)
        # the renderer loads the URDF with PyBullet's globalScaling = object.scale, which
        # scales every link about the base origin
        return float(obj.get('scale', 1.0)) * points


def annotate(image, detection, truth_uv, visibility, object_class, title):
    """Predicted keypoints (coloured, :func:`draw_view`) and true ones (white crosses, lines)."""
    out = draw_view(image, detection, object_class, beliefs=False)
    for (u, v), (pu, pv), vis in zip(truth_uv, detection.uv, visibility):
        if vis <= 0:
            continue
        cross = (int(round(u)), int(round(v)))
        cv2.drawMarker(out, cross, (255, 255, 255), cv2.MARKER_CROSS, 12, 1)
        if np.isfinite(pu) and np.isfinite(pv):
            cv2.line(out, cross, (int(round(pu)), int(round(pv))), (255, 255, 255), 1)
    (width, height), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(out, (0, 0), (width + 10, height + 10), (0, 0, 0), -1)
    cv2.putText(out, title, (5, height + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def measure(detector, config, folders, validation_only, max_samples, sheet_views):
    """Run detector, pipeline and fits on every test sample; returns the per-frame arrays.

    ``config`` (:class:`PipelineConfig`) sets the pipeline and the mono
    detector's ``peak_threshold``, ``roi_refinement`` and ``roi_scale``.
    """
    oc = detector.object_class
    kinematics = Kinematics(oc)
    pipeline = StereoKeypointPipeline(detector, config)
    r = {k: [] for k in ('err2d', 'vis', 'diag', 'outside_found', 'err3d', 'both', 'truth',
                         'base', 'mono', 'stereo', 'stereo_rigid', 'keys', 'cameras',
                         'labels')}
    times = {k: [] for k in ('detector_view', 'pipeline_pair', 'kinematics', 'fit_mono',
                             'fit_stereo', 'fit_stereo_rigid')}
    sheet = []
    for s in iter_test_samples(folders, oc.name, validation_only, max_samples):
        r['keys'].append(s['key'])
        cams = [camera_model_from_label(s['labels']['camera_info'][v]) for v in VIEWS]
        dets = {}
        for view in VIEWS:
            t0 = time.perf_counter()
            dets[view] = detect_keypoints(detector, s[view], config.peak_threshold,
                                          config.roi_refinement, config.roi_scale)
            times['detector_view'].append(time.perf_counter() - t0)
            image, vis = s[view], np.asarray(s[f'vis_{view}'])
            err = symmetric_errors(dets[view].uv, s[f'kp2d_{view}'], oc.symmetries)
            r['err2d'].append(err)
            r['vis'].append(vis)
            r['diag'].append(float(np.hypot(image.shape[1], image.shape[0])))
            r['outside_found'].append(dets[view].found & (vis == 0))
            if len(sheet) < sheet_views:
                scored = err[(vis > 0) & np.isfinite(err)]
                pct = 100 * scored.mean() / r['diag'][-1] if scored.size else float('nan')
                sheet.append(annotate(image, dets[view], s[f'kp2d_{view}'], vis, oc,
                                      f'{s["key"]} {view}: mean {pct:.2f}% of diagonal'))
        t0 = time.perf_counter()
        result = pipeline.process(s['left'], s['right'], *cams)
        times['pipeline_pair'].append(time.perf_counter() - t0)
        xyz = np.where(result.valid[:, None], result.xyz, np.nan)
        r['err3d'].append(np.linalg.norm(xyz - s['kp3d'], axis=1))
        r['both'].append((np.asarray(s['vis_left']) > 0) & (np.asarray(s['vis_right']) > 0))
        t0 = time.perf_counter()
        base = kinematics.points_base(s['labels'])
        times['kinematics'].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        mono = fit_camera_to_base_mono(dets['left'].uv, base, cams[0])
        times['fit_mono'].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        stereo = fit_camera_to_base_stereo_views(result.left.uv, result.right.uv, base, *cams)
        times['fit_stereo'].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rigid = fit_camera_to_base_stereo(xyz, base)
        times['fit_stereo_rigid'].append(time.perf_counter() - t0)
        r['truth'].append(s['pose'])
        r['base'].append(base)
        r['cameras'].append(cams)
        # the labels inside the image, for the error budget
        r['labels'].append([np.where((np.asarray(s[f'vis_{view}']) > 0)[:, None],
                                     np.asarray(s[f'kp2d_{view}'], dtype=np.float64), np.nan)
                            for view in VIEWS])
        r['mono'].append(None if mono is None else mono.T_camera_base)
        r['stereo'].append(None if stereo is None else stereo.T_camera_base)
        r['stereo_rigid'].append(None if rigid is None else rigid.T_camera_base)
        print(f'\r{len(r["keys"])} samples', end='', file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if not r['keys']:
        raise SystemExit(f'no {oc.name} samples in {folders}')
    return r, times, sheet


def summarize(r, times, names):
    """All figures of one run as a dict (see the module docstring)."""
    err2d, vis = np.array(r['err2d']), np.array(r['vis'])
    diag = np.array(r['diag'])
    ms = {k: {'mean_ms': 1000 * float(np.mean(v)), 'median_ms': 1000 * float(np.median(v)),
              'count': len(v)} for k, v in times.items()}
    return {
        'pairs': len(r['keys']), 'views': len(err2d),
        'keypoints_2d': {
            'visible': keypoint_table(err2d, diag, vis == 2, names),
            'in_image': keypoint_table(err2d, diag, vis > 0, names),
            'detected_outside_image': int(np.array(r['outside_found']).sum()),
            'labelled_outside_image': int((vis == 0).sum()),
            'pck_thresholds_pct_diag': list(ROBOT_PCK_THRESHOLDS)},
        'stereo_3d': stereo_table(np.array(r['err3d']), np.array(r['both']), names),
        'camera_to_base': {mode: camera_to_base_summary(r[mode], r['truth'], r['base'])
                           for mode in FITS},
        'speed': ms,
    }


def plots(figures, err_pct, class_name, folder):
    """Write the error histogram, ADD curves and return their paths (contact sheet added later)."""
    os.makedirs(folder, exist_ok=True)
    paths = {'histogram': os.path.join(folder, f'robots_{class_name}_error_histogram.png'),
             'add_curve': os.path.join(folder, f'robots_{class_name}_add_curve.png'),
             'contact_sheet': os.path.join(folder, f'robots_{class_name}_contact_sheet.jpg')}
    error_histogram(err_pct, paths['histogram'],
                    f'{class_name}: 2D error, keypoints labelled in the image', (TARGET_2D_PCT,))
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    for mode, colour in zip(FITS, ('tab:blue', 'tab:orange', 'tab:grey')):
        c2b = figures['camera_to_base'][mode]
        x, y = add_curve(np.asarray(c2b['add_mm']) / 1000.0)
        ax.plot(1000 * x, y, color=colour,
                label=f'{mode}: AUC {c2b["add_auc"]:.3f}, {c2b["failures"]} failures')
    ax.set(xlabel='ADD threshold [mm]', ylabel='fraction of frames', xlim=(0, 100),
           ylim=(0, 1.02), title=f'{class_name}: camera-to-base ADD ({figures["pairs"]} frames)')
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(paths['add_curve'], dpi=110)
    return paths


def fmt(value, digits=2):
    """Format a figure for the tables ('-' for None / NaN)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return '-'
    return f'{value:.{digits}f}'


def tables(figures, names):
    """Markdown lines: targets, 2D, 3D, camera-to-base and speed tables."""
    k2, s3 = figures['keypoints_2d'], figures['stereo_3d']
    c2b = figures['camera_to_base']
    mean2d = k2['in_image']['overall']['mean_pct_diag']
    lines = ['**Targets (issue 17, synthetic test set)**', '',
             '| target | measured | |', '|---|---|---|',
             f'| 2D mean error <= {TARGET_2D_PCT:g}% of the diagonal (labelled in the image) '
             f'| {fmt(mean2d)}% | {met(mean2d, TARGET_2D_PCT, False)} |']
    for mode, target in TARGET_AUC.items():
        auc = c2b[mode]['add_auc']
        lines.append(f'| ADD AUC {mode} >= {target:g} | {fmt(auc, 3)} | '
                     f'{met(auc, target, True)} |')
    pck = [f'PCK@{t:g}%' for t in ROBOT_PCK_THRESHOLDS]
    head = ['keypoint', 'mean % diag, visible', 'mean % diag, in image', 'mean px, in image',
            *pck, 'detected', 'labelled in image']
    lines += ['', '**2D: mono detector on each view**', '',
              '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for name in names + ['all']:
        vis_row, all_row = ((k2[k]['overall'] if name == 'all' else k2[k]['per_keypoint'][name])
                            for k in ('visible', 'in_image'))
        label = '**all**' if name == 'all' else f'`{name}`'
        lines.append(f'| {label} | {fmt(vis_row["mean_pct_diag"])} | '
                     f'{fmt(all_row["mean_pct_diag"])} | {fmt(all_row["mean_px"], 1)} | ' +
                     ' | '.join(fmt(all_row[f'pck@{t:g}'], 3) for t in ROBOT_PCK_THRESHOLDS) +
                     f' | {fmt(all_row["detected"], 3)} | {all_row["keypoints"]} |')
    lines += ['', '**Stereo 3D: triangulated keypoints, left optical frame**', '',
              '| keypoint | 3D mean mm | median mm | p95 mm | triangulated (labelled in '
              'both views) | 3D points |', '|---|---|---|---|---|---|']
    for name in names + ['all']:
        row = s3['overall'] if name == 'all' else s3['per_keypoint'][name]
        label = '**all**' if name == 'all' else f'`{name}`'
        lines.append(f'| {label} | {fmt(row["mean_mm"], 1)} | {fmt(row["median_mm"], 1)} | '
                     f'{fmt(row["p95_mm"], 1)} | {fmt(row["triangulated"], 3)} | '
                     f'{row["count"]} |')
    lines += ['', '**Camera to base (`T_camera_base`)**', '',
              '| fit | frames | failures (ADD = inf) | ADD AUC (<= 100 mm) | '
              'ADD mean / median mm | translation mean / median mm | rotation mean / median '
              'deg |', '|---|---|---|---|---|---|---|']
    for mode, label in FITS.items():
        c = c2b[mode]
        lines.append(f'| {label} | {c["frames"]} | {c["failures"]} | {fmt(c["add_auc"], 3)} | '
                     f'{fmt(c["add_mean_mm"], 1)} / {fmt(c["add_median_mm"], 1)} | '
                     f'{fmt(c["translation_mean_mm"], 1)} / '
                     f'{fmt(c["translation_median_mm"], 1)} | '
                     f'{fmt(c["rotation_mean_deg"])} / {fmt(c["rotation_median_deg"])} |')
    budget = figures.get('error_budget', [])
    if budget:
        lines += ['', '**Error budget: the same fits on the labels with 2D noise** (ADD AUC '
                  '/ median ADD mm over all frames)', '',
                  '| mean 2D error, % diag | ' + ' | '.join(FITS) + ' |',
                  '|---|' + '---|' * len(FITS)]
        for row in budget:
            lines.append(f'| {row["level_pct_diag"]:g} | ' + ' | '.join(
                f'{fmt(row[mode]["add_auc"], 3)} / {fmt(row[mode]["add_median_all_mm"], 1)}'
                for mode in FITS) + ' |')
    steps = {'detector_view': 'mono detector, one view',
             'pipeline_pair': 'stereo pipeline, one pair (both views, second look, '
                              'triangulation)',
             'kinematics': 'forward kinematics, one frame',
             'fit_mono': 'mono fit (PnP + RANSAC), one frame',
             'fit_stereo': 'stereo fit (two-view PnP), one frame',
             'fit_stereo_rigid': 'stereo fit (Umeyama + RANSAC), one frame'}
    lines += ['', '**Speed: wall milliseconds on this machine**', '',
              '| step | mean ms | median ms |', '|---|---|---|']
    for key, label in steps.items():
        t = figures['speed'][key]
        lines.append(f'| {label} | {fmt(t["mean_ms"], 1)} | {fmt(t["median_ms"], 1)} |')
    return lines


def write_doc(figures, info, paths, doc_path):
    """Replace the ``robots_<class>`` section of ``doc_path``; returns the section."""
    name = info['class']
    begin, end = markers(name)
    k2 = figures['keypoints_2d']
    rel = {k: os.path.relpath(p, os.path.dirname(os.path.abspath(doc_path)))
           for k, p in paths.items()}
    model = os.path.relpath(info['model'], ROOT) if info['model'].startswith(ROOT) \
        else info['model']
    if info.get('shipped'):
        model = f'{info["shipped"]}` = `models/{os.path.basename(info["model"])}'
    data = ', '.join(f'`{d}`' for d in info['data'])
    held_out = ' (validation shards only)' if info['validation_only'] else ''
    setup = (f'Model `{model}` (sha256 {info["sha256"]}..., test-time augmentation '
             f'`{info["test_time_augmentation"]}`); '
             f'{figures["pairs"]} stereo pairs ({figures["views"]} views) of `{name}` from '
             f'{data}{held_out}. Pipeline: the node\'s defaults (`PipelineConfig`) with '
             '`input_rectified: false` (the renders are raw images with their lens '
             'distortion) and each sample\'s two CameraInfos; `roi_refinement: '
             f'{info["roi_refinement"]}` (`roi_scale: {info["roi_scale"]:g}`) in the '
             'stereo pipeline and the mono detector alike.')
    notes = ('2D: the mono detector on each view alone, as `keypoints-detect` runs it (the '
             'highest peak per keypoint). The means are over the detected keypoints; PCK and '
             'the detection rate over every keypoint labelled inside the image (a missed one '
             'counts as incorrect). "visible": visibility 2 only; "in image": occluded ones '
             '(visibility 1) too, the figure the target is checked on. Keypoints labelled '
             f'outside the image but detected anyway: {k2["detected_outside_image"]} of '
             f'{k2["labelled_outside_image"]}. 3D: every triangulated keypoint against its '
             'rendered position. Camera to base: mono = PnP + RANSAC on the left view\'s '
             'detections; stereo = the pose minimizing the reprojection error of the stereo '
             'pipeline\'s keypoints in both views (`fit_camera_to_base_stereo_views`); '
             'stereo rigid = Umeyama + RANSAC on the triangulated keypoints, all against forward'
             ' kinematics of the sample\'s URDF and joint angles; ADD AUC up to 100 mm as DREAM '
             'reports it (a frame without an estimate, or whose estimate the uncertainty bound '
             f'drops (`max_relative_std`, {MAX_RELATIVE_STD:g}), is ADD = inf, a miss; '
             'translation, rotation and ADD means over the frames with an estimate). Error '
             'budget: the labelled keypoints inside the image with isotropic Gaussian noise of '
             'the given mean length (independent per view, seed 0) through the same fits (stereo'
             ' rigid: triangulated without a reprojection limit); 0 checks labels, kinematics '
             'and fits alone; ADD medians over all frames (inf when failures are half or more). '
             'It says what mean 2D error the ADD AUC targets need on these cameras and '
             'distances. Speed: wall time while other jobs may share the cores.')
    lines = [
        begin,
        f'## Robot keypoints: `{name}` (issue 17)',
        '',
        textwrap.fill(f'Measured {info["date"]} on {info["machine"]} (load average '
                      f'{info["load"]} at the start), network: {info["backend"]}, with',
                      WRAP),
        '',
        f'`{info["command"]}`',
        '',
        textwrap.fill(setup, WRAP),
        '',
        *tables(figures, info['keypoints']),
        '',
        textwrap.fill(notes, WRAP),
        '',
        f'![2D error histogram]({rel["histogram"]}) ![ADD curves]({rel["add_curve"]})',
        '',
        f'![annotated test views: predicted (colour) vs true (white crosses)]'
        f'({rel["contact_sheet"]})',
        end,
    ]
    section = '\n'.join(lines)
    replace_section(doc_path, begin, end, section)
    return section


def main(argv=None) -> int:
    """Measure the model, print the tables, optionally write plots, JSON and the doc section."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', required=True,
                    help='shipped model name (panda, kuka_iiwa) or checkpoint .pt / .onnx path')
    ap.add_argument('--data', nargs='+', required=True, help='sim_datagen dataset folders')
    ap.add_argument('--max-samples', type=int, default=0, help='stereo samples; 0 = all')
    ap.add_argument('--validation-shards', action='store_true',
                    help='only the shards training holds out (every 10th)')
    ap.add_argument('--threads', type=int, default=0,
                    help="network threads; 0 = the thread policy's choice")
    ap.add_argument('--backend', default='auto', help='auto, torch or onnxruntime')
    ap.add_argument('--tta', default='auto', choices=('auto',) + TEST_TIME_AUGMENTATIONS,
                    help="test-time augmentation (default: the checkpoint's choice)")
    ap.add_argument('--device', default='cpu', help='torch device (default cpu)')
    ap.add_argument('--roi-refinement', choices=ROI_REFINEMENTS,
                    default=PipelineConfig.roi_refinement,
                    help='second, zoomed look, mono and stereo (default %(default)s, as the '
                         'nodes and keypoints-detect)')
    ap.add_argument('--budget-levels', type=float, nargs='*', default=BUDGET_LEVELS,
                    help='mean 2D errors (%% of the diagonal) of the error budget; none: skip')
    ap.add_argument('--sheet-views', type=int, default=6, help='views in the contact sheet')
    ap.add_argument('--images', default='',
                    help='folder of the plots (default docs/images with --write-doc, else '
                         'output/benchmark_robots)')
    ap.add_argument('--doc', default=DOC, help='Markdown file of --write-doc')
    ap.add_argument('--json', help='write every figure to this JSON file')
    ap.add_argument('--write-doc', action='store_true',
                    help='replace the robots_<class> section of docs/benchmarks.md')
    a = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    command = ' '.join(['python tools/benchmark_robots.py', *map(shlex.quote, argv)])
    load = ' / '.join(f'{x:.1f}' for x in os.getloadavg())
    detector = KeypointDetector(a.model, device=a.device, num_threads=a.threads,
                                backend=a.backend, test_time_augmentation=a.tta)
    oc = detector.object_class
    config = PipelineConfig(input_rectified=False, roi_refinement=a.roi_refinement)
    r, times, sheet = measure(detector, config, a.data, a.validation_shards, a.max_samples,
                              a.sheet_views)
    figures = summarize(r, times, oc.keypoint_names)
    figures['error_budget'] = calibration_error_budget(r['labels'], r['cameras'], r['base'],
                                                       r['truth'], a.budget_levels)
    shipped = a.model if not os.path.exists(a.model) else None
    info = {'class': oc.name, 'model': detector.model_path, 'shipped': shipped,
            'sha256': file_sha256(detector.model_path)[:16], 'data': list(a.data),
            'validation_only': a.validation_shards, 'command': command, 'load': load,
            'date': datetime.date.today().isoformat(), 'machine': cpu_model(),
            'backend': detector.backend.describe(),
            'threads': detector.backend.num_threads, 'keypoints': list(oc.keypoint_names),
            'test_time_augmentation': detector.test_time_augmentation,
            'roi_refinement': config.roi_refinement, 'roi_scale': config.roi_scale,
            'samples': r['keys']}
    default_folder = ('docs', 'images') if a.write_doc else ('output', 'benchmark_robots')
    folder = a.images or os.path.join(ROOT, *default_folder)
    err2d, vis = np.array(r['err2d']), np.array(r['vis'])
    diagonals = np.broadcast_to(np.array(r['diag'])[:, None], err2d.shape)
    err_pct = 100 * err2d[vis > 0] / diagonals[vis > 0]
    paths = plots(figures, err_pct, oc.name, folder)
    contact_sheet(sheet, paths['contact_sheet'], cols=3, width=480)
    print('\n'.join(tables(figures, list(oc.keypoint_names))))
    print('\n' + '\n'.join(f'{k}: {p}' for k, p in paths.items()))
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, 'w') as f:
            json.dump(json_ready({'info': info, 'figures': figures, 'images': paths}), f,
                      indent=1, allow_nan=False)
    if a.write_doc:
        write_doc(figures, info, paths, a.doc)
        print(f'wrote the robots_{oc.name} section of {a.doc}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
