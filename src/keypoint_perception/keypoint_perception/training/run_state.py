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
"""What a resumable training run keeps besides its weights: random states and metrics rows.

``keypoints-train --resume`` must end with the same weights and the same
``metrics.csv`` as a run that was never interrupted.  That needs every random
state the run draws from restored, not re-seeded (:func:`random_states`,
:func:`restore_random_states`), and a metrics file that never runs ahead of
the checkpoint: a run killed after writing the metrics row of step N but
before its checkpoint resumes from an earlier step, so the rows after that
step are dropped (:func:`truncate_metrics`) and written again.
"""

import csv
import os
import random
from typing import Mapping

import numpy as np
import torch

from ..core.files import atomic_open

#: Columns of ``metrics.csv``, one row per validation.
METRICS_COLUMNS = ('step', 'elapsed_s', 'train_loss', 'val_mean_px', 'val_mean_pct_diag',
                   'val_max_px', 'val_pck@0.5', 'val_pck@1', 'val_pck@2', 'train_views')


def start_metrics(csv_path: str) -> None:
    """Create (or empty) ``metrics.csv`` with its header line."""
    with open(csv_path, 'w') as f:
        f.write(','.join(METRICS_COLUMNS) + '\n')


def truncate_metrics(csv_path: str, step: int) -> int:
    """Drop the rows of ``metrics.csv`` after ``step`` (rewritten atomically).

    A missing file is created with its header.

    Returns:
        The number of rows dropped.

    Raises:
        ValueError: if the file's header is not :data:`METRICS_COLUMNS`.
    """
    if not os.path.isfile(csv_path):
        start_metrics(csv_path)
        return 0
    with open(csv_path, newline='') as f:
        lines = f.read().splitlines(keepends=True)
    if not lines or tuple(lines[0].strip().split(',')) != METRICS_COLUMNS:
        raise ValueError(f'{csv_path} is not a metrics file of keypoints-train')
    keep = [lines[0]]
    for row, line in zip(csv.DictReader(lines), lines[1:]):
        if row['step'] and int(row['step']) <= step:
            keep.append(line)
    with atomic_open(csv_path) as f:
        f.writelines(keep)
    return len(lines) - len(keep)


def random_states(sampler_rng: np.random.Generator) -> dict:
    """Every random state a training run draws from, as plain data for a checkpoint.

    Args:
        sampler_rng: the generator the training views are drawn with
            (:class:`~.hard_examples.LossPrioritizedSampler`'s).

    Returns:
        ``{'python', 'numpy_global', 'torch', 'sampler'[, 'torch_cuda']}``:
        :func:`random.getstate`, :func:`numpy.random.get_state` (keys as a
        list), :func:`torch.get_rng_state` (uint8 tensor), the sampler's
        ``bit_generator.state`` dict and, with CUDA, every device's state.
    """
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {'python': random.getstate(),
              'numpy_global': (name, keys.tolist(), int(position), int(has_gauss),
                               float(cached_gaussian)),
              'torch': torch.get_rng_state(),
              'sampler': sampler_rng.bit_generator.state}
    if torch.cuda.is_available():
        states['torch_cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: Mapping, sampler_rng: np.random.Generator) -> None:
    """Set every random state from :func:`random_states` output.

    The process-wide generators (Python, numpy, torch) and ``sampler_rng``
    continue exactly where the checkpointed run was.

    Raises:
        ValueError: if ``sampler_rng`` is not of the checkpoint's bit
            generator type.
    """
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached_gaussian = states['numpy_global']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss,
                         cached_gaussian))
    torch.set_rng_state(torch.as_tensor(states['torch'], dtype=torch.uint8))
    if 'torch_cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['torch_cuda'])
    sampler_rng.bit_generator.state = states['sampler']
