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
"""Sampler feedback from a trained model: where in scene space it still fails.

``keypoints-feedback`` runs a model on a synthetic dataset (by default its
held-out validation shards), scores every stereo sample by its 2D keypoint
error, and folds the scene-variable bins of the worst samples into the
dataset's Dirichlet sampler with the conjugate update ``theta += counts``
(Heindl et al. 2020, see :mod:`~..core.scene_sampler`).  The written
sampler state is what ``sim-datagen generate --sampler-state`` (or the
stream node's ``sampler_state_file``) renders next: more of what the network
gets wrong, in proportion to how often it gets it wrong.  A table and a bar
chart of the mean error per bin show a person where the failures are.

Variables that do not matter keep their prior proportions in expectation
(the worst samples' bins of such a variable are distributed like all
samples'), so the update only shifts the variables that do.

Example::

    keypoints-feedback --data data/sim/checkerboard_train --out output/feedback
    sim-datagen generate --config checkerboard --count 2000 --out data/sim/checkerboard_hard
        --sampler-state output/feedback/sampler_state.json
"""

import argparse
import csv
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from matplotlib.figure import Figure
import numpy as np
from tqdm import tqdm

from ..cli import (ArgumentParser, checked_input, command_line, InputError, non_negative_int,
                   positive_float, unit_interval)
from ..core.checkpoint import load_checkpoint, resolve_model_path
from ..core.dataset import iter_shard, list_shards, read_meta
from ..core.detector import KeypointDetector
from ..core.scene_sampler import SceneSampler
from .data import is_validation_shard
from .metrics import symmetric_errors


def sample_score(errors_px: Sequence[np.ndarray], visibility: Sequence[np.ndarray],
                 diagonals_px: Sequence[float], miss_pct: float = 5.0) -> float:
    """Score one stereo sample by its views' 2D keypoint errors.

    Args:
        errors_px: per view, (J,) float pixel errors (NaN = not detected).
        visibility: per view, (J,) COCO visibility (0 = outside the image;
            such keypoints are not scored).
        diagonals_px: per view, the image diagonal in pixels.
        miss_pct: the score of a labelled keypoint that was not detected, and
            the cap of any error, in percent of the diagonal, so that one far
            outlier does not outweigh many moderate errors.

    Returns:
        mean over the labelled keypoints of both views of
        ``min(error / diagonal * 100, miss_pct)``; NaN when no keypoint is
        labelled.
    """
    scores = []
    for e, vis, diag in zip(errors_px, visibility, diagonals_px):
        e = np.asarray(e, dtype=np.float64)[np.asarray(vis) > 0]
        pct = np.where(np.isfinite(e), 100.0 * e / diag, miss_pct)
        scores.append(np.minimum(pct, miss_pct))
    scores = np.concatenate(scores) if scores else np.zeros(0)
    return float(scores.mean()) if scores.size else float('nan')


def bin_error_table(bins: Sequence[Mapping[str, int]], scores: np.ndarray,
                    num_bins: Mapping[str, int]) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Mean score per bin of every scene variable.

    Args:
        bins: per sample, ``{variable: bin index}`` (the labels' ``variables``).
        scores: (N,) float sample scores (see :func:`sample_score`).
        num_bins: ``{variable: K}``.

    Returns:
        ``{variable: (mean (K,) float64, NaN for an empty bin; count (K,) int)}``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    out = {}
    for name, k in num_bins.items():
        idx = np.array([b.get(name, -1) for b in bins], dtype=int)
        ok = (idx >= 0) & (idx < k) & np.isfinite(scores)
        count = np.bincount(idx[ok], minlength=k)
        total = np.bincount(idx[ok], weights=scores[ok], minlength=k)
        with np.errstate(invalid='ignore', divide='ignore'):
            out[name] = (np.where(count > 0, total / np.maximum(count, 1), np.nan), count)
    return out


def hardest(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Return the indices of the ``fraction`` (0, 1] of samples with the highest scores.

    NaN scores are never chosen.

    Raises:
        ValueError: if ``fraction`` is not in (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f'fraction must be in (0, 1], got {fraction}')
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(scores))
    n = int(np.ceil(fraction * len(finite)))
    return finite[np.argsort(-scores[finite], kind='stable')[:n]]


def variable_spread(table: Mapping[str, Tuple[np.ndarray, np.ndarray]],
                    min_count: int = 10) -> List[Tuple[str, float]]:
    """Variables sorted by how much the error depends on them.

    The spread of a variable is the ratio of its worst to its best bin mean,
    over bins with at least ``min_count`` samples (1.0 when fewer than two
    such bins).

    Returns:
        [(variable, spread)] highest first.
    """
    out = []
    for name, (mean, count) in table.items():
        m = mean[(count >= min_count) & np.isfinite(mean)]
        out.append((name, float(m.max() / max(m.min(), 1e-9)) if len(m) >= 2 else 1.0))
    return sorted(out, key=lambda x: -x[1])


def bin_labels(variable: Mapping, bins: int) -> List[str]:
    """Tick labels of a variable's bins: the index (categorical) or the bin centre.

    Args:
        variable: a sampler state's variable entry (``lo``, ``hi``,
            ``categorical``; missing keys: 0 .. 1, continuous).
        bins: number of bins.

    Returns:
        ``bins`` strings; a centre that is zero up to rounding (``-0.05 +
        0.05``) reads ``0``, not ``6.94e-18``.
    """
    if variable.get('categorical'):
        return [str(k) for k in range(bins)]
    lo, hi = float(variable.get('lo', 0.0)), float(variable.get('hi', 1.0))
    centres = lo + (np.arange(bins) + 0.5) * (hi - lo) / bins
    centres[np.abs(centres) < 1e-9 * max(abs(lo), abs(hi))] = 0.0
    return [f'{c:.3g}' for c in centres]


def plot_bin_errors(table, spread, sampler_state: Mapping, path: str, top: int = 12) -> None:
    """Bar charts of the mean error per bin for the ``top`` variables by spread."""
    names = [n for n, _ in spread[:top]]
    ratio = dict(spread)
    cols = 4
    rows = max(1, int(np.ceil(len(names) / cols)))
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.axis('off')
    for ax, name in zip(axes.ravel(), names):
        mean, count = table[name]
        labels = bin_labels(sampler_state['variables'].get(name, {}), len(mean))
        ax.bar(range(len(mean)), np.nan_to_num(mean), color='tab:red')
        ax.set_xticks(range(len(mean)), labels, fontsize=7, rotation=45)
        ax.set_title(f'{name} (x{ratio[name]:.2f})', fontsize=9)
        ax.set_ylabel('error % diag', fontsize=7)
        for x, c in enumerate(count):
            ax.text(x, 0, str(int(c)), ha='center', va='bottom', fontsize=6, color='white')
    fig.suptitle('Mean 2D error per scene-variable bin (white: samples)', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def score_dataset(model: str, data_dir: str, validation_only: bool = True,
                  max_samples: int = 0, miss_pct: float = 5.0):
    """Run ``model`` on a synthetic dataset and score every stereo sample.

    Returns:
        (bins: list of ``{variable: bin}`` per sample, scores (N,) float64).
    """
    detector = KeypointDetector(model)
    sym = detector.object_class.symmetries
    shards = [p for p in list_shards(data_dir) if is_validation_shard(p) or not validation_only]
    if not shards:
        raise FileNotFoundError(f'no {"validation " if validation_only else ""}shards in '
                                f'{data_dir}')
    bins, scores = [], []
    bar = tqdm(total=max_samples or None, desc='scoring', unit='pair')
    for shard in shards:
        if max_samples and len(scores) >= max_samples:
            break
        for s in iter_shard(shard):
            if max_samples and len(scores) >= max_samples:
                break
            imgs = [s['left'], s['right']]
            dets = detector.detect(imgs)
            errs = [symmetric_errors(d.uv, s[f'kp2d_{v}'], sym)
                    for d, v in zip(dets, ('left', 'right'))]
            scores.append(sample_score(errs, [s['vis_left'], s['vis_right']],
                                       [np.hypot(*im.shape[:2]) for im in imgs], miss_pct))
            bins.append({n: int(d['bin']) for n, d in s['labels']['variables'].items()})
            bar.update(1)
    bar.close()
    return bins, np.asarray(scores)


def _fraction(text: str) -> float:
    """Argparse type: a number in (0, 1]."""
    value = unit_interval(text)
    if value == 0.0:
        raise argparse.ArgumentTypeError('must be in (0, 1], got 0')
    return value


@command_line('keypoints-feedback')
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point ``keypoints-feedback``; returns the exit status."""
    p = ArgumentParser(prog='keypoints-feedback', description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='checkerboard_lite', help='shipped name or checkpoint')
    p.add_argument('--data', required=True, help='sim_datagen dataset directory')
    p.add_argument('--all-shards', action='store_true',
                   help='score every shard, not only the held-out validation shards')
    p.add_argument('--max-samples', type=non_negative_int, default=0, help='0 = all')
    p.add_argument('--worst', type=_fraction, default=0.25,
                   help='fraction of the samples, highest error first, whose bins are counted')
    p.add_argument('--miss-pct', type=positive_float, default=5.0,
                   help='score (%% of the diagonal) of an undetected keypoint; cap of an error')
    p.add_argument('--out', required=True, help='output folder')
    a = p.parse_args(argv)
    with checked_input(f'--data {a.data}'):
        meta = read_meta(a.data)
        state = meta['sampler_state']
        sampler = SceneSampler.from_config(meta['config']['variables'])
        sampler.load_state_dict(state)
    with checked_input(f'--model {a.model}'):
        load_checkpoint(resolve_model_path(a.model))
    try:
        bins, scores = score_dataset(a.model, a.data, not a.all_shards, a.max_samples,
                                     a.miss_pct)
    except FileNotFoundError as e:  # no (validation) shards
        raise InputError(f'--data {a.data}: {e}') from e
    worst = hardest(scores, a.worst)
    if not len(worst):
        raise InputError(f'--data {a.data}: no sample with a labelled keypoint was scored')
    counts = sampler.counts_from_bins(bins[i] for i in worst)
    sampler.update(counts)
    new_state = sampler.state_dict()
    table = bin_error_table(bins, scores, {n: v.bins for n, v in sampler.variables.items()})
    spread = variable_spread(table)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, 'sampler_state.json'), 'w') as f:
        json.dump({'sampler_state': new_state, 'model': a.model, 'data': a.data,
                   'samples': int(len(scores)), 'hard_samples': int(len(worst)),
                   'mean_score_pct': float(np.nanmean(scores)),
                   'hard_score_threshold_pct': float(scores[worst].min())},
                  f, indent=1)
    with open(os.path.join(a.out, 'bin_errors.csv'), 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['variable', 'bin', 'samples', 'mean_error_pct', 'prior_p', 'posterior_p'])
        for name, (mean, count) in table.items():
            posterior = sampler.variables[name].bin_probabilities()
            prior = np.asarray(state['variables'][name]['theta'], float)
            prior = prior / prior.sum()
            for k in range(len(posterior)):
                w.writerow([name, k, int(count[k]), f'{mean[k]:.4f}',
                            f'{prior[k]:.4f}', f'{posterior[k]:.4f}'])
    plot_bin_errors(table, spread, new_state, os.path.join(a.out, 'bin_errors.png'))
    print(f'{len(scores)} samples, mean score {np.nanmean(scores):.3f}% of the diagonal; '
          f'{len(worst)} hardest counted (score >= {scores[worst].min():.3f}%)')
    print('variables whose bins matter most (worst/best bin mean error):')
    for name, s in spread[:8]:
        mean, count = table[name]
        v = sampler.variables[name]
        print(f'  {name:20s} x{s:.2f}  mean per bin {np.round(mean, 2).tolist()}  '
              f'p -> {np.round(v.bin_probabilities(), 3).tolist()}')
    print(f'wrote {a.out}/sampler_state.json, bin_errors.csv, bin_errors.png')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
