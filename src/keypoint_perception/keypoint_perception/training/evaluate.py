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
"""Evaluate a keypoint model (``keypoints-eval``), without ROS.

``keypoints-eval real``: OpenCV's real stereo calibration sequence against the
corners ``cv2.findChessboardCorners`` finds (matched up to the board's
symmetries): per-view 2D error in pixels and percent of the image diagonal,
PCK, detection rate (stereo pairs with every keypoint triangulated), the
triangulated board side lengths against the template and the 3D error against
the triangulated ground-truth corners.

``keypoints-eval synthetic``: the same 2D figures on a synthetic test set
written by ``sim-datagen generate``.

``keypoints-eval validation``: the network's 2D figures on the held-out
validation shards of training folders (the views at network resolution, as
training scores them), the figure models are chosen by; only
``metrics.json`` is written.

Both write ``metrics.json``, a per-image CSV, an error histogram and annotated
images into ``--out`` and print a Markdown summary.
"""

import argparse
import csv
import dataclasses
import json
import os
from typing import Dict, List

import cv2
from matplotlib.figure import Figure
import numpy as np
import torch

from ..cli import (ArgumentParser, checked_input, command_line, InputError, non_negative_int,
                   repo_root)
from ..core.camera import CameraModel
from ..core.checkpoint import resolve_model_path
from ..core.config import (COMPLETION_SEARCHES, DEFAULT_COMPLETION_SEARCH, DEFAULT_ROI_SCALE,
                           PipelineConfig, ROI_REFINEMENTS, TEST_TIME_AUGMENTATIONS)
from ..core.dataset import camera_model_from_label, iter_shard, list_shards
from ..core.detector import KeypointDetector
from ..core.onnx_model import is_onnx_path, model_object_class
from ..core.pipeline import StereoKeypointPipeline
from ..core.symmetry import match_stereo_symmetry
from ..core.triangulation import triangulate_stereo
from ..core.visualization import draw_stereo
from .data import is_validation_shard
from .ground_truth import load_opencv_stereo_ground_truth
from .metrics import summarize_errors, symmetric_errors
from .shard_cache import ShardCache
from .loop import evaluate


def error_histogram(errors_pct: np.ndarray, path: str, title: str, targets=(1.0,)) -> None:
    """Plot a histogram of 2D keypoint errors (% of the image diagonal) into a PNG.

    Args:
        errors_pct: (N,) errors, % of the diagonal; non-finite ones are left out.
        path: the PNG to write.
        title: the plot's title.
        targets: x positions of dashed target lines (% of the diagonal).
    """
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    e = errors_pct[np.isfinite(errors_pct)]
    ax.hist(e, bins=30, color='tab:blue', alpha=0.85)
    for t in targets:
        ax.axvline(t, color='tab:red', ls='--', label=f'{t:g}% of diagonal')
    ax.set(xlabel='2D keypoint error [% of image diagonal]', ylabel='keypoints', title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def contact_sheet(images: List[np.ndarray], path: str, cols: int = 2,
                  width: int = 640) -> None:
    """Tile (H, W, 3) uint8 RGB images, each resized to ``width`` px, into one image file.

    Rows of ``cols`` tiles, shorter tiles padded with black; the format
    follows ``path``'s extension (``cv2.imwrite``).
    """
    tiles = [cv2.resize(im, (width, int(im.shape[0] * width / im.shape[1]))) for im in images]
    h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, len(tiles), cols)]
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def evaluate_real(model: str, data_dir: str, left_info: str, right_info: str, out: str,
                  min_confidence: float = PipelineConfig.min_confidence,
                  localization_sigma: float = PipelineConfig.localization_sigma,
                  test_time_augmentation: str = 'auto',
                  roi_refinement: str = PipelineConfig.roi_refinement,
                  roi_scale: float = DEFAULT_ROI_SCALE,
                  completion_search: str = DEFAULT_COMPLETION_SEARCH,
                  roi_augmentation: bool = PipelineConfig.roi_augmentation) -> Dict:
    """Evaluate on OpenCV's stereo sequence; returns the metrics dict.

    ``localization_sigma`` (belief cells), ``roi_refinement``,
    ``roi_scale``, ``roi_augmentation`` and ``completion_search`` are the
    pipeline's options of those names
    (:class:`~..core.pipeline.StereoKeypointPipeline`),
    ``test_time_augmentation`` the detector's
    (:class:`~..core.detector.KeypointDetector`).
    """
    gt = load_opencv_stereo_ground_truth(data_dir)
    detector = KeypointDetector(model, test_time_augmentation=test_time_augmentation)
    oc = detector.object_class
    pipe = StereoKeypointPipeline(detector, PipelineConfig(
        input_rectified=False, min_confidence=min_confidence,
        localization_sigma=localization_sigma, roi_refinement=roi_refinement,
        roi_scale=roi_scale, completion_search=completion_search,
        roi_augmentation=roi_augmentation))
    lcam, rcam = CameraModel.from_yaml(left_info), CameraModel.from_yaml(right_info)
    os.makedirs(out, exist_ok=True)
    names = sorted({n[len('left'):] for n in gt if n.startswith('left')
                    and 'right' + n[len('left'):] in gt})
    rows, view_err, diags, side_err, err3d, sheets = [], [], [], [], [], []
    pairs_full = 0
    for suffix in names:
        lg, rg = gt['left' + suffix], gt['right' + suffix]
        limg = cv2.cvtColor(cv2.imread(lg.path), cv2.COLOR_BGR2RGB)
        rimg = cv2.cvtColor(cv2.imread(rg.path), cv2.COLOR_BGR2RGB)
        res = pipe.process(limg, rimg, lcam, rcam)
        for det, g, img in ((res.left, lg, limg), (res.right, rg, rimg)):
            e = symmetric_errors(det.uv, g.keypoints, oc.symmetries)  # NaN = not accepted
            view_err.append(e)
            diags.append(np.hypot(img.shape[1], img.shape[0]))
            rows.append({'image': g.image, 'keypoints_found': int(np.isfinite(e).sum()),
                         **{f'err_px_{j}': round(float(v), 3) for j, v in enumerate(e)}})
        full = bool(res.valid.all())
        pairs_full += full
        # 3D: triangulate the ground-truth corners with the same calibration
        tri_gt = triangulate_stereo(lcam, rcam, lg.keypoints, _match_right(lg, rg, lcam, rcam,
                                                                           oc))
        if full:
            side_err += _side_errors_pct(res.xyz, oc)
            err3d.append(_error_3d(res.xyz, tri_gt.xyz, oc))
        title = (f'{suffix.split(".")[0]}: {int(res.valid.sum())}/{oc.num_keypoints} in 3D, '
                 f'2D err L {np.nanmean(view_err[-2]):.1f} px R {np.nanmean(view_err[-1]):.1f} px')
        vis = draw_stereo(limg, rimg, res, oc, beliefs=True, title=title)
        for k, g in enumerate((lg, rg)):
            for p in g.keypoints:
                c = (int(round(p[0])) + k * limg.shape[1], int(round(p[1])))
                cv2.drawMarker(vis, c, (255, 255, 255), cv2.MARKER_CROSS, 14, 1)
        sheets.append(vis)
    errs = np.array(view_err)
    m = summarize_errors(errs, np.array(diags))
    m.update(pairs=len(names), pairs_all_triangulated=pairs_full,
             views=len(view_err),
             views_all_detected=int(np.isfinite(errs).all(axis=1).sum()),
             side_length_error_pct_mean=float(np.mean(np.abs(side_err))) if side_err else None,
             side_length_error_pct_max=float(np.max(np.abs(side_err))) if side_err else None,
             error_3d_mm_mean=float(1000 * np.mean(err3d)) if err3d else None,
             model=detector.model_path,
             test_time_augmentation=detector.test_time_augmentation)
    _write(out, m, rows)
    error_histogram(100 * errs.ravel() / np.repeat(diags, errs.shape[1]),
                    os.path.join(out, 'error_histogram.png'),
                    'Real stereo sequence (trained on synthetic data only)')
    contact_sheet(sheets, os.path.join(out, 'annotated_pairs.jpg'), cols=1, width=960)
    return m


def _match_right(lg, rg, lcam, rcam, oc):
    """Ground-truth right keypoints relabelled to agree with the left view."""
    perm = list(match_stereo_symmetry(lcam, rcam, lg.keypoints, rg.keypoints, oc.symmetries))
    return rg.keypoints[perm]


def _side_errors_pct(xyz: np.ndarray, oc) -> List[float]:
    """Signed relative errors (%) of the skeleton edge lengths of (J, 3) points."""
    out = []
    for a, b in oc.skeleton:
        ref = np.linalg.norm(oc.template[a] - oc.template[b])
        out.append(100 * (np.linalg.norm(xyz[a] - xyz[b]) - ref) / ref)
    return out


def _error_3d(xyz: np.ndarray, truth: np.ndarray, oc) -> float:
    """Mean distance (m) of (J, 3) points to the truth, best over the symmetries."""
    d = np.linalg.norm(xyz[:, None] - truth[None], axis=2)
    perms = [np.arange(oc.num_keypoints)] + [np.asarray(q) for q in oc.symmetries]
    return float(min(np.mean(d[np.arange(len(p)), p]) for p in perms))


def evaluate_synthetic(model: str, data_dir: str, out: str, max_samples: int = 0,
                       localization_sigma: float = PipelineConfig.localization_sigma,
                       test_time_augmentation: str = 'auto',
                       roi_refinement: str = PipelineConfig.roi_refinement,
                       roi_scale: float = DEFAULT_ROI_SCALE,
                       validation_shards: bool = False,
                       completion_search: str = DEFAULT_COMPLETION_SEARCH,
                       roi_augmentation: bool = PipelineConfig.roi_augmentation) -> Dict:
    """2D figures on a synthetic dataset, and the stereo pipeline's 3D figures.

    2D: the network's highest peaks (no stereo help) against the labels, on
    views where every keypoint is labelled inside the image.  3D: the full
    :class:`~..core.pipeline.StereoKeypointPipeline` (stereo selection,
    template completion) on pairs where every keypoint is labelled in both
    views, against the rendered 3D keypoints (left optical frame), and the
    pipeline's 2D keypoints on those pairs against the labels
    (``pipeline_*`` figures).  ``roi_refinement``, ``roi_scale``,
    ``roi_augmentation`` and ``completion_search`` are the pipeline's
    options.  With
    ``validation_shards`` only the shards that training holds out
    (:func:`~.train.is_validation_shard`) are read: pairs of a training
    folder that no model saw, for choosing pipeline options without touching
    the test set.
    """
    def iter_samples(folder):
        for path in list_shards(folder):
            if not validation_shards or is_validation_shard(path):
                yield from iter_shard(path)

    detector = KeypointDetector(model, test_time_augmentation=test_time_augmentation)
    oc = detector.object_class
    pipe = StereoKeypointPipeline(detector, PipelineConfig(
        input_rectified=False, localization_sigma=localization_sigma,
        roi_refinement=roi_refinement, roi_scale=roi_scale,
        completion_search=completion_search, roi_augmentation=roi_augmentation))
    os.makedirs(out, exist_ok=True)
    errs, diags, rows = [], [], []
    pairs = pairs_full = 0
    side_err, err3d, pipe_err = [], [], []
    for n, s in enumerate(iter_samples(data_dir)):
        if max_samples and n >= max_samples:
            break
        imgs = [s['left'], s['right']]
        for view, det, img in zip(('left', 'right'), detector.detect(imgs), imgs):
            vis = np.asarray(s[f'vis_{view}'])
            e = symmetric_errors(det.uv, s[f'kp2d_{view}'], oc.symmetries)
            e = np.where(vis > 0, e, np.nan)
            if (vis > 0).all():
                errs.append(e)
                diags.append(np.hypot(img.shape[1], img.shape[0]))
            rows.append({'sample': s.get('key', n), 'view': view,
                         **{f'err_px_{j}': round(float(v), 3) for j, v in enumerate(e)}})
        if (np.asarray(s['vis_left']) > 0).all() and (np.asarray(s['vis_right']) > 0).all():
            info = s['labels']['camera_info']
            cams = [camera_model_from_label(info[v]) for v in ('left', 'right')]
            # the rendered board's size varies: give the pipeline this sample's
            # template, as a user configures the size of their real object
            size, ref = s['labels'].get('square_size'), oc.extra.get('square_size')
            scaled = dataclasses.replace(oc, template=oc.template * (size / ref)) \
                if size and ref else oc
            detector.object_class = scaled
            res = pipe.process(imgs[0], imgs[1], *cams)
            detector.object_class = oc
            pipe_err += [symmetric_errors(d.uv, s[f'kp2d_{v}'], oc.symmetries)
                         for d, v in ((res.left, 'left'), (res.right, 'right'))]
            pairs += 1
            if res.valid.all():
                pairs_full += 1
                side_err += _side_errors_pct(res.xyz, scaled)
                err3d.append(_error_3d(res.xyz, np.asarray(s['kp3d']), oc))
    errs = np.array(errs)
    m = summarize_errors(errs, np.array(diags))
    m.update(views=len(errs), model=detector.model_path, dataset=data_dir,
             test_time_augmentation=detector.test_time_augmentation,
             pairs=pairs, pairs_all_triangulated=pairs_full,
             side_length_error_pct_mean=float(np.mean(np.abs(side_err))) if side_err else None,
             side_length_error_pct_median=(float(np.median(np.abs(side_err))) if side_err
                                           else None),
             error_3d_mm_mean=float(1000 * np.mean(err3d)) if err3d else None,
             error_3d_mm_median=float(1000 * np.median(err3d)) if err3d else None,
             error_3d_mm_p95=float(1000 * np.percentile(err3d, 95)) if err3d else None,
             error_3d_mm_max=float(1000 * np.max(err3d)) if err3d else None,
             roi_refinement=roi_refinement, roi_scale=roi_scale,
             completion_search=completion_search)
    if pipe_err:
        pe = np.array(pipe_err)
        found = pe[np.isfinite(pe)]
        m.update(pipeline_detected=float(found.size / pe.size),
                 pipeline_mean_px=float(found.mean()) if found.size else None,
                 pipeline_median_px=float(np.median(found)) if found.size else None)
    _write(out, m, rows)
    error_histogram(100 * errs.ravel() / np.repeat(diags, errs.shape[1]),
                    os.path.join(out, 'error_histogram.png'), 'Synthetic test set')
    return m


def _write(out, metrics, rows):
    with open(os.path.join(out, 'metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=2)
    if rows:
        with open(os.path.join(out, 'per_image.csv'), 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


def markdown(metrics: Dict) -> str:
    """Metrics as a two-column Markdown table."""
    lines = ['| metric | value |', '|---|---|']
    for k, v in metrics.items():
        if isinstance(v, float):
            v = f'{v:.4g}'
        lines.append(f'| {k} | {v} |')
    return '\n'.join(lines)


def evaluate_validation(model: str, data_dirs: List[str], out: str,
                        test_time_augmentation: str = 'auto') -> Dict:
    """2D figures on the validation shards of ``data_dirs`` (model selection).

    The shards :func:`~.train.is_validation_shard` holds out (and the
    validation views of view packs) are scored as training scores them
    (:func:`~.loop.evaluate`), through the detector's test-time
    augmentation.
    """
    detector = KeypointDetector(model, test_time_augmentation=test_time_augmentation)
    cfg = detector.config
    cache = ShardCache(data_dirs, (cfg.input_width, cfg.input_height), is_validation_shard)
    cache.refresh()
    _, views = cache.split()
    with torch.no_grad():
        m = evaluate(detector.model, views, detector.object_class.symmetries,
                     forward=detector.forward)
    m.update(model=detector.model_path, datasets=list(data_dirs),
             test_time_augmentation=detector.test_time_augmentation)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'metrics.json'), 'w') as f:
        json.dump(m, f, indent=2)
    return m


def check_inputs(args: argparse.Namespace) -> None:
    """Read and check the inputs of ``keypoints-eval`` before any evaluation.

    Raises:
        InputError: naming the first bad input: a missing, corrupt or
            unsafe ``--model``; a ``--data`` that does not exist or holds no
            shards; a missing or invalid camera_info YAML; pipeline options
            out of their ranges.
    """
    with checked_input(f'--model {args.model}'):
        path = resolve_model_path(args.model)
        model_object_class(path)  # a checkpoint or an exported file
    if args.mode == 'validation' and is_onnx_path(path):
        raise InputError(f'--model {args.model}: validation scores a checkpoint as training '
                         'does; an exported .onnx file is measured with keypoints-eval real or '
                         'synthetic')
    data = args.data if isinstance(args.data, list) else [args.data]
    for entry in data:
        if not (os.path.isfile(entry) if entry.endswith('.npz') else os.path.isdir(entry)):
            raise InputError(f'--data {entry}: no such folder')
        if args.mode == 'synthetic' and not list_shards(entry):
            raise InputError(f'--data {entry}: no shards (shard-*.tar) in the folder')
    if args.mode == 'real':
        for option, path in (('--left-info', args.left_info),
                             ('--right-info', args.right_info)):
            with checked_input(f'{option} {path}'):
                CameraModel.from_yaml(path)
    if args.mode in ('real', 'synthetic'):
        with checked_input('pipeline options'):
            PipelineConfig(input_rectified=False, localization_sigma=args.localization_sigma,
                           roi_refinement=args.roi_refinement, roi_scale=args.roi_scale,
                           completion_search=args.completion_search,
                           roi_augmentation=args.roi_augmentation)


@command_line('keypoints-eval')
def main(argv=None):
    """Console entry point ``keypoints-eval``."""
    root = repo_root()
    p = ArgumentParser(prog='keypoints-eval', description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='mode', required=True)
    r = sub.add_parser('real', help='OpenCV real stereo sequence')
    r.add_argument('--data', default=os.path.join(root, 'data', 'opencv_stereo'))
    r.add_argument('--left-info', default=os.path.join(root, 'config', 'camera_info',
                                                       'opencv_stereo_left.yaml'))
    r.add_argument('--right-info', default=os.path.join(root, 'config', 'camera_info',
                                                        'opencv_stereo_right.yaml'))
    s = sub.add_parser('synthetic', help='synthetic test set')
    s.add_argument('--data', required=True)
    s.add_argument('--max-samples', type=non_negative_int, default=0, help='0 = all')
    s.add_argument('--validation-shards', action='store_true',
                   help='only the shards training holds out (for choosing options)')
    v = sub.add_parser('validation', help='validation shards of training folders')
    v.add_argument('--data', nargs='+', required=True, help='dataset folders or view packs')
    for q in (r, s, v):
        q.add_argument('--model', default='checkerboard_lite')
        q.add_argument('--out', default='')
        q.add_argument('--tta', default='auto', choices=('auto',) + TEST_TIME_AUGMENTATIONS,
                       help="test-time augmentation; auto = the checkpoint's")
    for q in (r, s):
        q.add_argument('--localization-sigma', type=float,
                       default=PipelineConfig.localization_sigma,
                       help='belief cells; > 0 widens the shape checks by stereo depth noise')
        q.add_argument('--roi-refinement', default=PipelineConfig.roi_refinement,
                       choices=ROI_REFINEMENTS,
                       help='second, zoomed look at the object: off, incomplete or always')
        q.add_argument('--roi-scale', type=float, default=DEFAULT_ROI_SCALE,
                       help="second look's window side over the keypoints' extent")
        q.add_argument('--roi-augmentation', choices=('on', 'off'),
                       default='on' if PipelineConfig.roi_augmentation else 'off',
                       help="the model's test-time augmentation in the second look too")
        q.add_argument('--completion-search', default=DEFAULT_COMPLETION_SEARCH,
                       choices=COMPLETION_SEARCHES,
                       help="template completion: each view's own peak (views) or the 3D "
                            "point both views' beliefs agree on most (stereo)")
    args = p.parse_args(argv)
    if args.mode != 'validation':
        args.roi_augmentation = args.roi_augmentation == 'on'  # the pipeline's boolean
    check_inputs(args)
    out = args.out or os.path.join(root, 'output', 'eval', args.mode)
    if args.mode == 'validation':
        m = evaluate_validation(args.model, args.data, out, args.tta)
    elif args.mode == 'real':
        m = evaluate_real(args.model, args.data, args.left_info, args.right_info, out,
                          localization_sigma=args.localization_sigma,
                          test_time_augmentation=args.tta, roi_refinement=args.roi_refinement,
                          roi_scale=args.roi_scale, completion_search=args.completion_search,
                          roi_augmentation=args.roi_augmentation)
    else:
        m = evaluate_synthetic(args.model, args.data, out, args.max_samples,
                               args.localization_sigma, args.tta, args.roi_refinement,
                               args.roi_scale, args.validation_shards,
                               args.completion_search, args.roi_augmentation)
    print(markdown(m))
    print(f'\nwrote {out}/')


if __name__ == '__main__':
    raise SystemExit(main())
