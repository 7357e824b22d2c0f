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
"""Pieces shared by the shard trainer (train.py) and the streaming trainer (stream_train.py).

Run set-up (new, warm-started or resumed network), one optimizer step, the
validation of a view set, the metrics row and the training-curve plot: the
two trainers differ only in where their samples come from.
"""

import argparse
import csv
from typing import Dict, Optional, Sequence, Tuple

from matplotlib.figure import Figure
import numpy as np
import torch

from ..cli import checked_input, InputError
from ..core.checkpoint import load_checkpoint, resolve_model_path
from ..core.heatmaps import decode_keypoints
from ..core.model import (BeliefMapNet, make_config, normalize_images,
                          symmetric_belief_loss)
from ..core.objects import load_object_class
from .data import augment_view, symmetric_targets, ViewSet
from .metrics import summarize_errors, symmetric_errors
from .run_state import start_metrics, truncate_metrics


def refreshed_object_class(oc, name_or_path: str):
    """Return the class definition from ``name_or_path`` if it has the same keypoints.

    A warm start keeps the checkpoint's weights; the class YAML may have
    gained inference options since (e.g. ``visible_side``), which then reach
    the new checkpoint.  A YAML with other keypoints is ignored (the
    checkpoint's definition is kept).
    """
    try:
        new = load_object_class(name_or_path)
    except (FileNotFoundError, ValueError):
        return oc
    return new if new.keypoint_names == oc.keypoint_names else oc


def make_batch_arrays(views: ViewSet, idx: np.ndarray, symmetries, config, sigma: float,
                      seed, augment: bool = True, distractor_prob: float = 0.0):
    """Augmented images and belief-map targets for the views ``idx``, as arrays.

    The augmentation draws from ``np.random.default_rng(seed)`` alone, so a
    batch is the same whichever process makes it.

    Returns:
        images (B, H, W, 3) uint8 RGB and targets (B, P, J, h, w) float32,
        P being the number of labellings of the object (1 + its symmetries).
    """
    rng = np.random.default_rng(seed)
    imgs, tgts = [], []
    for i in idx:
        img, uv, vis = views.images[i], views.uv[i], views.visibility[i]
        if augment:
            img, uv, vis = augment_view(img, uv, vis, rng, distractor_prob)
        tgts.append(symmetric_targets(uv, vis, symmetries, config.heatmap_size, config.stride,
                                      sigma))
        imgs.append(img)
    return np.stack(imgs), np.stack(tgts)


def start_run(args: argparse.Namespace, last_path: str, csv_path: str,
              rng: np.random.Generator) -> Tuple:
    """Network, object class and run position of a new, warm-started or resumed run.

    ``args`` needs ``resume``, ``init``, ``object`` and ``config``.  A new run
    (re)starts ``metrics.csv``; a resumed one drops its rows after the
    checkpoint's step.

    Returns:
        ``(model, object_class, config, ckpt, step, best, rng)``: ``ckpt`` is
        the resumed checkpoint dict (None for a new run), ``best`` the lowest
        validation error so far (% of the diagonal) and ``rng`` the generator
        to draw with (re-seeded for a checkpoint without random states).

    Raises:
        InputError: a missing, corrupt or unsafe checkpoint, an unknown object.
    """
    if args.resume:
        with checked_input(f'--resume {last_path}'):
            model, oc, ckpt = load_checkpoint(last_path)
        config = model.config
        step, best = ckpt['step'], ckpt['best_error']
        if 'random_states' not in ckpt:  # written before random states were kept
            rng = np.random.default_rng(ckpt['numpy_seed'] + step)
            print('note: this checkpoint has no random states; the resumed run will not '
                  'repeat an uninterrupted one exactly')
        dropped = truncate_metrics(csv_path, step)
        print(f'resuming {last_path} at step {step} (best {best:.3f}% of diagonal)'
              + (f'; dropped {dropped} metrics rows written after it' if dropped else ''))
    else:
        if args.init:  # warm start: weights only, new optimizer and schedule
            with checked_input(f'--init {args.init}'):
                model, oc, _ = load_checkpoint(resolve_model_path(args.init))
            config = model.config
            oc = refreshed_object_class(oc, args.object)
            print(f'initialized from {args.init}')
        else:
            with checked_input(f'--object {args.object}'):
                oc = load_object_class(args.object)
            config = make_config(args.config, oc.num_keypoints)
            model = BeliefMapNet(config)
        step, best, ckpt = 0, float('inf'), None
        start_metrics(csv_path)
    return model, oc, config, ckpt, step, best, rng


def optimizer_step(model: BeliefMapNet, opt: torch.optim.Optimizer, sched, images: np.ndarray,
                   targets: np.ndarray, device: torch.device, loss_kind: str
                   ) -> Tuple[np.ndarray, float]:
    """One optimizer and LR-schedule step on a batch.

    Args:
        images: (B, H, W, 3) uint8 RGB at the network input size.
        targets: (B, P, J, h, w) float32 belief-map targets (P labellings).
        loss_kind: ``'bce'`` or ``'mse'`` (:func:`~..core.model.symmetric_belief_loss`).

    Returns:
        (per-sample losses (B,) float32 before the step, their mean).
    """
    images = normalize_images(torch.from_numpy(images).to(device, non_blocking=True))
    targets = torch.from_numpy(targets).to(device, non_blocking=True)
    per_sample = symmetric_belief_loss(model(images), targets, kind=loss_kind,
                                       reduction='none')
    loss = per_sample.mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return per_sample.detach().cpu().numpy(), loss.item()


def write_metrics_row(csv_path: str, step: int, elapsed_s: float, losses: Sequence[float],
                      m: Dict[str, float], train_views: int) -> None:
    """Append one validation row (:data:`~.run_state.METRICS_COLUMNS`) to ``metrics.csv``."""
    with open(csv_path, 'a') as f:
        f.write(f'{step},{elapsed_s:.0f},{np.mean(losses):.5f},'
                f'{m["mean_px"]:.3f},{m["mean_pct_diag"]:.4f},{m["max_px"]:.2f},'
                f'{m["pck@0.5"]:.4f},{m["pck@1"]:.4f},{m["pck@2"]:.4f},'
                f'{train_views}\n')


def resolve_device(name: str) -> torch.device:
    """``'auto'`` -> CUDA when available, else CPU; other names are passed to torch.

    Raises:
        ValueError: if CUDA is asked for and not available.
    """
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError('--device cuda: no CUDA device is available to torch')
    return torch.device(name)


def one_cycle_schedule(optimizer: torch.optim.Optimizer, lr: float, steps: int,
                       checkpoint: Optional[dict] = None
                       ) -> torch.optim.lr_scheduler.OneCycleLR:
    """Return the trainers' learning-rate schedule, restored from ``checkpoint`` on resume.

    One cycle (Smith & Topin 2019, ``torch.optim.lr_scheduler.OneCycleLR``):
    warm-up over 5% of ``steps`` but at least one and a half (torch divides
    by the warm-up's length less one, 0 at 20 steps with 5%), then cosine
    annealing to ``lr / 1e4`` at ``steps``.

    Args:
        optimizer: the optimizer whose learning rate it sets.
        lr: the peak learning rate (``--lr``).
        steps: the run's total steps (``--steps``, >= 1).
        checkpoint: a resumed run's checkpoint (its ``'scheduler'`` state;
            its ``'optimizer'`` state holds the peak learning rate), or None.

    Raises:
        InputError: the checkpoint's schedule was made for another number of
            steps (torch would follow the old one and raise past its end)
            or another peak learning rate.
    """
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps,
        pct_start=max(0.05, 1.5 / steps) if steps >= 2 else 0.5)
    if checkpoint is not None:
        saved = checkpoint['scheduler']
        if saved.get('total_steps', steps) != steps:
            raise InputError(f'--resume --steps {steps}: the run\'s learning-rate schedule '
                             f'was made for --steps {saved["total_steps"]}; resume with that, '
                             'or start a new run from these weights with --init '
                             'PATH/last.pt')
        groups = checkpoint.get('optimizer', {}).get('param_groups', [{}])
        saved_lr = groups[0].get('max_lr', lr)
        if not np.isclose(saved_lr, lr):
            raise InputError(f'--resume --lr {lr:g}: the run was started with --lr '
                             f'{saved_lr:g}; resume with that, or start a new run with --init')
        schedule.load_state_dict(saved)
    return schedule


@torch.no_grad()
def evaluate(model: BeliefMapNet, views: ViewSet, symmetries, batch_size: int = 32,
             threshold: float = 0.1, forward=None) -> Dict[str, float]:
    """2D error statistics on (unaugmented) views, in original image pixels.

    Every labelled keypoint (inside the image: visibility > 0) is scored, in
    every view: one the network misses counts as wrong in PCK and in the
    detection rate and is left out of the mean and median
    (:func:`~.metrics.summarize_errors`); keypoints outside the image are
    not scored.  ``views`` in the result counts the views with a labelled
    keypoint.  ``forward``
    maps a normalized (B, 3, h_in, w_in) float32 batch to (B, J, h, w)
    float32 last-stage belief maps; the default is ``model`` alone, a
    :meth:`~..core.detector.KeypointDetector.forward` adds its test-time
    augmentation.  The model's train/eval mode is restored on return.
    """
    was_training = model.training
    model.eval()
    if forward is None:
        def forward(batch):
            return model(batch)[-1].float().cpu().numpy()
    cfg = model.config
    device = next(model.parameters()).device
    errors = []
    for s in range(0, len(views), batch_size):
        sl = slice(s, s + batch_size)
        images = torch.from_numpy(views.images[sl]).to(device)
        beliefs = forward(normalize_images(images))
        for b, uv_gt, vis, scale in zip(beliefs, views.uv[sl], views.visibility[sl],
                                        views.scale[sl]):
            uv = decode_keypoints(b, (cfg.input_width, cfg.input_height), symmetries,
                                  threshold=threshold)[0][:, 0]
            err = symmetric_errors((uv + 0.5) * scale - 0.5, (uv_gt + 0.5) * scale - 0.5,
                                   symmetries)
            errors.append(err)
    model.train(was_training)
    errors = np.asarray(errors, dtype=np.float64).reshape(len(views), -1)
    labelled = np.asarray(views.visibility).reshape(errors.shape) > 0
    # one row per labelled keypoint, with its view's diagonal: a missed one stays NaN
    diagonals = np.broadcast_to(np.asarray(views.diagonal, np.float64)[:, None], errors.shape)
    out = summarize_errors(errors[labelled][:, None], diagonals[labelled])
    out['views'] = int(labelled.any(axis=1).sum())
    return out


def plot_curves(csv_path: str, png_path: str) -> None:
    """Loss and validation error against step (matplotlib, no GUI backend)."""
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    step = [int(r['step']) for r in rows]
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots(1, 2)
    ax[0].plot(step, [float(r['train_loss']) for r in rows])
    ax[0].set(xlabel='step', ylabel='belief loss (train)', yscale='log', title='Training loss')
    ax[1].plot(step, [float(r['val_mean_pct_diag']) for r in rows], label='mean error')
    ax[1].plot(step, [100 * (1 - float(r['val_pck@1'])) for r in rows], label='100 - PCK@1%')
    ax[1].set(xlabel='step', ylabel='% of image diagonal / %', yscale='log',
              title='Synthetic validation')
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
