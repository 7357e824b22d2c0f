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
"""Files of a streaming training run besides its checkpoints (keypoints-train --stream).

* ``stream_validation.npz``: the fixed validation set (views at the network
  input size and the scene-variable bins of each stereo sample),
  :func:`save_validation` / :func:`load_validation`, or read from the
  validation shards of datasets, :func:`validation_from_shards`;
* ``priors.csv`` and ``priors.png``: every source's Dirichlet parameters
  over training steps, :func:`log_priors` / :func:`plot_priors`;
* ``sources.csv``: per-source sample counters, :func:`write_sources`;
* what the progress bar shows and when the trainer says the simulators
  cannot keep up: :class:`ThroughputMeter`.

A resumed run first drops the rows of both CSV files that were written after
its checkpoint (:func:`truncate_rows`), as ``metrics.csv``'s are.
"""

import csv
import json
import os
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from matplotlib.figure import Figure
import numpy as np

from ..core.dataset import iter_shard, list_shards, read_meta
from ..core.files import atomic_open
from .data import is_validation_shard, views_of_samples, ViewSet


def save_validation(path: str, views: ViewSet, bins: Sequence[Mapping[str, int]],
                    num_bins: Mapping[str, int]) -> None:
    """Write the fixed validation set (views and bins of its samples) to ``path`` (.npz).

    Written to a temporary file and renamed (:func:`~..core.files.atomic_open`):
    a run killed while writing leaves no half-written set for ``--resume``.
    """
    with atomic_open(path, 'wb') as f:
        np.savez(f, images=views.images, uv=views.uv, visibility=views.visibility,
                 scale=views.scale, diagonal=views.diagonal,
                 bins=np.array(json.dumps({'bins': list(bins), 'num_bins': dict(num_bins)})))


def load_validation(path: str):
    """Read :func:`save_validation` output: (views, bins per sample, num_bins)."""
    with np.load(path, allow_pickle=False) as f:
        views = ViewSet(f['images'], f['uv'], f['visibility'], f['scale'], f['diagonal'])
        meta = json.loads(str(f['bins']))
    return views, meta['bins'], meta['num_bins']


def validation_from_shards(data_dirs: Sequence[str], input_size, max_samples: int):
    """Read a fixed validation set from the validation shards of sim_datagen datasets.

    Args:
        data_dirs: dataset folders (``shard-*.tar`` and ``meta.json``).
        input_size: (width, height) of the network input.
        max_samples: at most this many stereo samples, in shard order.

    Returns:
        (views, bins per sample ``{variable: bin}``, ``{variable: number of
        bins}`` from the datasets' ``meta.json`` sampler states).

    Raises:
        FileNotFoundError: a folder without ``meta.json``, or no validation
            shard (``is_validation_shard``) in any folder.
    """
    samples, bins, num_bins = [], [], {}
    for folder in data_dirs:
        state = read_meta(folder)['sampler_state']
        num_bins.update({n: int(v['bins']) for n, v in state['variables'].items()})
        for shard in filter(is_validation_shard, list_shards(folder)):
            for sample in iter_shard(shard):
                if len(samples) < max_samples:
                    samples.append(sample)
                    bins.append({n: int(v['bin'])
                                 for n, v in sample['labels']['variables'].items()})
    if not samples:
        raise FileNotFoundError('no validation shards (shard-000009.tar, shard-000019.tar, '
                                '...) to validate on')
    return views_of_samples(samples, input_size), bins, num_bins


def log_priors(path: str, step: int, states: Mapping[str, Mapping]) -> None:
    """Append every source's Dirichlet parameters to ``priors.csv``.

    Columns: ``step, namespace, num_updates, variable, alpha`` (space-separated
    concentrations, one per bin).
    """
    new = not os.path.isfile(path)
    with open(path, 'a', newline='') as f:
        w = csv.writer(f)
        if new:
            w.writerow(['step', 'namespace', 'num_updates', 'variable', 'alpha'])
        for ns, state in sorted(states.items()):
            for name, var in state['variables'].items():
                w.writerow([step, ns, state.get('num_updates', 0), name,
                            ' '.join(f'{a:g}' for a in var['theta'])])


def read_priors(csv_path: str) -> Dict[tuple, List[tuple]]:
    """Read the bin probabilities over training steps from a run's ``priors.csv``.

    Returns:
        ``{(namespace, variable): [(step, probabilities (B,) float64), ...]}``
        in file order, probabilities ``alpha / sum(alpha)`` (the mean of the
        Dirichlet prior); empty when the file has no rows.

    Raises:
        FileNotFoundError: no such file.
    """
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    series: Dict[tuple, List[tuple]] = {}
    for r in rows:
        alpha = np.array([float(a) for a in r['alpha'].split()])
        series.setdefault((r['namespace'], r['variable']), []).append(
            (int(r['step']), alpha / alpha.sum()))
    return series


def prior_movement(series: Mapping[tuple, Sequence[tuple]]) -> Dict[str, dict]:
    """Measure how far each variable's prior moved during a run (largest over sources).

    Args:
        series: :func:`read_priors` output.

    Returns:
        ``{variable: {'tv', 'first', 'last', 'namespace'}}``: ``tv`` the total
        variation distance ``0.5 * sum(|p_last - p_first|)`` in [0, 1] of the
        source where it is largest, ``first`` / ``last`` that source's bin
        probabilities (B,) at the first and last logged step.
    """
    moved: Dict[str, dict] = {}
    for (ns, name), points in series.items():
        first, last = points[0][1], points[-1][1]
        tv = 0.5 * float(np.abs(last - first).sum())
        if name not in moved or tv > moved[name]['tv']:
            moved[name] = {'tv': tv, 'first': first, 'last': last, 'namespace': ns}
    return moved


def plot_priors(csv_path: str, png_path: str, top: int = 6) -> None:
    """Bin probabilities ``alpha / sum(alpha)`` against step, per source (columns).

    Rows are the ``top`` variables whose probabilities moved most
    (:func:`prior_movement`).
    """
    series = read_priors(csv_path)
    if not series:
        return
    moved = {name: m['tv'] for name, m in prior_movement(series).items()}
    names = sorted(moved, key=lambda n: -moved[n])[:top]
    sources = sorted({ns for ns, _ in series})[:4]
    fig = Figure(figsize=(3.4 * len(sources), 2.2 * len(names)))
    axes = fig.subplots(len(names), len(sources), squeeze=False)
    for i, name in enumerate(names):
        for j, ns in enumerate(sources):
            points = series.get((ns, name), [])
            ax = axes[i, j]
            if points:
                steps = [s for s, _ in points]
                probs = np.stack([p for _, p in points])
                for k in range(probs.shape[1]):
                    ax.plot(steps, probs[:, k], marker='.', label=f'bin {k}')
            ax.set_title(f'{ns}: {name}', fontsize=8)
            ax.set_ylim(0, 1)
            if i == len(names) - 1:
                ax.set_xlabel('step', fontsize=8)
            if j == 0:
                ax.set_ylabel('bin probability', fontsize=8)
    fig.suptitle('Dirichlet bin probabilities of the sources (variables that moved most)',
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


def write_sources(path: str, step: int, namespaces: Sequence[str],
                  stats: Mapping[str, Mapping], used: Mapping[str, int],
                  restarts: Mapping[str, int], last_seen: Mapping[str, float]) -> None:
    """Append per-source counters to ``sources.csv``.

    Columns: step, namespace, used (samples trained or validated on),
    received, dropped, queued (``StreamDataset.stats``), restarts (of a local
    simulator), silent_s (seconds since its last sample, from the
    ``time.monotonic`` times ``last_seen``).
    """
    new = not os.path.isfile(path)
    now = time.monotonic()
    with open(path, 'a', newline='') as f:
        w = csv.writer(f)
        if new:
            w.writerow(['step', 'namespace', 'used', 'received', 'dropped', 'queued',
                        'restarts', 'silent_s'])
        for ns in namespaces:
            s = stats.get(ns, {})
            w.writerow([step, ns, used.get(ns, 0), s.get('received', 0), s.get('dropped', 0),
                        s.get('queued', 0), restarts.get(ns, 0),
                        f'{now - last_seen.get(ns, now):.1f}'])


def truncate_rows(path: str, step: int) -> int:
    """Drop the rows of a CSV file with a ``step`` column after ``step`` (atomic rewrite).

    Returns:
        the number of rows dropped (0 for a missing file).
    """
    if not os.path.isfile(path):
        return 0
    with open(path, newline='') as f:
        lines = f.read().splitlines(keepends=True)
    keep = lines[:1] + [line for row, line in zip(csv.DictReader(lines), lines[1:])
                        if int(row['step']) <= step]
    with atomic_open(path) as f:
        f.writelines(keep)
    return len(lines) - len(keep)


class ThroughputMeter:
    """Steps/s and the share of wall time spent waiting for samples, over recent steps.

    Args:
        window: number of recent steps measured over.
        starved_share: wait share above which the simulators "cannot keep up".
        warn_every_s: seconds between two such warnings.
        clock: monotonic clock in seconds (a fake one in tests).
    """

    def __init__(self, window: int = 20, starved_share: float = 0.5,
                 warn_every_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.starved_share = starved_share
        self.warn_every_s = warn_every_s
        self.clock = clock
        self.times: List[float] = []
        self.waits: List[float] = []
        self.last_warning: Optional[float] = None

    def step(self, waited_s: float) -> None:
        """Record a finished step that waited ``waited_s`` seconds for its samples."""
        self.times = (self.times + [self.clock()])[-self.window:]
        self.waits = (self.waits + [waited_s])[-self.window:]

    def steps_per_s(self) -> float:
        """Return the steps per second over the window (0 before two steps)."""
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])

    def wait_share(self) -> float:
        """Return the share of the window's wall time spent waiting for samples."""
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return 0.0
        return min(1.0, sum(self.waits[1:]) / (self.times[-1] - self.times[0]))

    def starved(self, samples_in_per_s: float, samples_per_step: int) -> Optional[str]:
        """Return the "simulators cannot keep up" warning when due, else None.

        Due when the window is at least half full, the wait share is above
        ``starved_share`` and no warning was given for ``warn_every_s``.

        Args:
            samples_in_per_s: stereo samples/s the trainer receives now.
            samples_per_step: stereo samples one step takes.
        """
        share = self.wait_share()
        now = self.clock()
        if (len(self.times) < self.window // 2 or share <= self.starved_share
                or (self.last_warning is not None
                    and now - self.last_warning < self.warn_every_s)):
            return None
        self.last_warning = now
        could_use = self.steps_per_s() / max(1.0 - share, 1e-3) * samples_per_step
        return (f'simulators cannot keep up: the trainer waited {100 * share:.0f}% of the '
                f'last {len(self.times)} steps for samples (in {samples_in_per_s:.1f} samples/s, '
                f'it could use {could_use:.1f}/s); start more simulators (--sim-workers)')
