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
"""Train a belief-map network on synthetic stereo shards (``keypoints-train``).

Only synthetic data is used for training and model selection (validation on
held-out synthetic shards).  The run folder holds ``last.pt`` (resumable:
model, optimizer, scheduler, step, RNG state), ``best.pt`` (lowest validation
error), ``metrics.csv`` and ``training_curves.png``.  New shards written into
the dataset folders while training runs are picked up at each validation.
"""

import argparse
import collections
import csv
import multiprocessing
import os
import time
from typing import Dict, List, Sequence, Tuple

from matplotlib.figure import Figure
import numpy as np
import torch
from tqdm import tqdm

from ..cli import (ArgumentParser, checked_input, command_line, InputError, non_negative_float,
                   non_negative_int, positive_float, positive_int, unit_interval)
from ..core.checkpoint import load_checkpoint, resolve_model_path, save_checkpoint
from ..core.dataset import list_shards
from ..core.heatmaps import decode_keypoints
from ..core.model import (BeliefMapNet, make_config, normalize_images,
                          symmetric_belief_loss)
from ..core.objects import load_object_class
from .data import augment_view, is_validation_shard, symmetric_targets, ViewSet
from .hard_examples import LossPrioritizedSampler
from .metrics import summarize_errors, symmetric_errors
from .run_state import (random_states, restore_random_states, start_metrics,
                        truncate_metrics)
from .shard_cache import ShardCache


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


_WORKER_JOB: dict = {}


def _batch_from_job(job: dict, idx: np.ndarray, seed):
    return make_batch_arrays(job['views'], idx, job['symmetries'], job['config'], job['sigma'],
                             seed, distractor_prob=job['distractor_prob'])


def _worker_batch(idx: np.ndarray, seed):
    return _batch_from_job(_WORKER_JOB, idx, seed)


class BatchPrefetcher:
    """Makes augmented training batches ahead of the optimizer in worker processes.

    With ``workers == 0`` each batch is made in the calling process when it is
    asked for.  With ``workers > 0`` a forked pool (which inherits the views
    without copying them) keeps up to ``2 * workers`` batches in flight.
    Batches depend only on their view indices and seed, so the worker count
    changes speed, not results.
    """

    def __init__(self, views: ViewSet, symmetries, config, sigma: float,
                 distractor_prob: float, workers: int = 0):
        """Hold the job; start ``workers`` processes (fork) if > 0."""
        self.job = dict(views=views, symmetries=symmetries, config=config, sigma=sigma,
                        distractor_prob=distractor_prob)
        self.depth = 2 * workers if workers > 0 else 1
        self.pending = collections.deque()
        self.pool = None
        if workers > 0:  # (calling cv2.setNumThreads in a forked worker hangs it)
            _WORKER_JOB.clear()
            _WORKER_JOB.update(self.job)
            self.pool = multiprocessing.get_context('fork').Pool(workers)

    def __len__(self) -> int:
        """Batches submitted and not yet taken."""
        return len(self.pending)

    def full(self) -> bool:
        """Tell whether enough batches are in flight."""
        return len(self.pending) >= self.depth

    def submit(self, idx: np.ndarray, seed) -> None:
        """Queue the batch of views ``idx`` augmented with ``seed``."""
        if self.pool is None:
            self.pending.append((idx, seed, None))
        else:
            self.pending.append((idx, seed, self.pool.apply_async(_worker_batch, (idx, seed))))

    def queued(self) -> List[Tuple[np.ndarray, tuple]]:
        """(view indices, seed) of every batch submitted and not yet taken, oldest first."""
        return [(idx, seed) for idx, seed, _ in self.pending]

    def next(self):
        """Oldest queued batch: (idx, images (B,H,W,3) uint8, targets (B,P,J,h,w) float32)."""
        idx, seed, result = self.pending.popleft()
        images, targets = (_batch_from_job(self.job, idx, seed) if result is None
                           else result.get())
        return idx, images, targets

    def close(self) -> None:
        """Stop the workers."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
        self.pending.clear()


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


@torch.no_grad()
def evaluate(model: BeliefMapNet, views: ViewSet, symmetries, batch_size: int = 32,
             threshold: float = 0.1, forward=None) -> Dict[str, float]:
    """2D error statistics on (unaugmented) views, in original image pixels.

    Only keypoints inside the image (visibility > 0) are scored.  ``forward``
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
            errors.append(np.where(vis > 0, err, -1.0))
    errors = np.asarray(errors)
    scored = errors >= 0
    keep = scored.all(axis=1)
    model.train(was_training)
    out = summarize_errors(np.where(scored, errors, np.nan)[keep], views.diagonal[keep])
    out['views'] = int(keep.sum())
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


def train(args) -> str:
    """Run training; returns the path of ``best.pt``.

    With ``args.resume`` the run continues from ``OUT/last.pt`` exactly as
    if it had never stopped: weights, optimizer, schedule, every random
    state, the sampler's priorities and the batches already drawn are
    restored, and ``metrics.csv`` rows after the checkpoint's step (a kill
    between a metrics row and its checkpoint) are dropped and written again.

    Raises:
        InputError: a bad input, named: ``--data`` entries that do not exist
            or hold no shards and packs (or no validation views), an unknown
            or invalid ``--object``, a missing, corrupt or unsafe ``--init``
            or ``OUT/last.pt`` (also when ``--resume`` finds none), an
            unavailable ``--device``.
    """
    check_data_inputs(args.data)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    last_path = os.path.join(args.out, 'last.pt')
    best_path = os.path.join(args.out, 'best.pt')
    csv_path = os.path.join(args.out, 'metrics.csv')
    if args.resume and not os.path.isfile(last_path):
        raise InputError(f'--resume: no checkpoint to resume from ({last_path} does not exist)')
    os.makedirs(args.out, exist_ok=True)

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
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps,
                                                pct_start=0.05)
    if ckpt is not None:
        sched.load_state_dict(ckpt['scheduler'])

    cache = ShardCache(args.data, (config.input_width, config.input_height), is_validation_shard)
    with checked_input('--data ' + ' '.join(args.data)):
        cache.refresh()
        train_views, val_views = cache.split()
    print(f'{oc.name}: {len(train_views)} training views, {len(val_views)} validation views; '
          f'model {args.config} {config.input_width}x{config.input_height}')
    sampler = LossPrioritizedSampler(len(train_views), args.hard_examples, rng=rng)
    if ckpt is not None and 'sampler' in ckpt:
        sampler.load_state_dict(ckpt['sampler'])
    with checked_input(f'--device {args.device}'):
        device = resolve_device(args.device)
    batches = BatchPrefetcher(train_views, oc.symmetries, config, args.sigma, args.distractors,
                              args.workers)
    model.to(device)
    if ckpt is not None:  # optimizer state follows the parameters' device
        opt.load_state_dict(ckpt['optimizer'])
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    print(f'training on {device} with {args.workers} batch workers, batch {args.batch}')
    t_start = time.time() - (ckpt.get('elapsed_s', 0.0) if ckpt is not None else 0.0)
    losses = []
    submitted = step
    if ckpt is not None:
        for queued in ckpt.get('queued_batches', []):  # drawn before the checkpoint
            batches.submit(np.asarray(queued['views'], dtype=np.int64), tuple(queued['seed']))
            submitted += 1
        if 'random_states' in ckpt:
            restore_random_states(ckpt['random_states'], sampler.rng)
    pbar = tqdm(total=args.steps, initial=step, desc='train', unit='step', dynamic_ncols=True)
    try:  # the batch workers stop however the run ends
        while step < args.steps:
            while not batches.full() and submitted < args.steps:
                batches.submit(sampler.sample(args.batch), (args.seed, submitted))
                submitted += 1
            idx, images, targets = batches.next()
            images = normalize_images(torch.from_numpy(images).to(device, non_blocking=True))
            targets = torch.from_numpy(targets).to(device, non_blocking=True)
            per_sample = symmetric_belief_loss(model(images), targets, kind=args.loss,
                                               reduction='none')
            sampler.update(idx, per_sample.detach().cpu().numpy())
            loss = per_sample.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            pbar.update(1)
            pbar.set_postfix(loss=f'{np.mean(losses[-50:]):.4f}')
            if step % args.eval_every == 0 or step == args.steps:
                m = evaluate(model, val_views, oc.symmetries,
                             batch_size=128 if device.type == 'cuda' else 32)
                with open(csv_path, 'a') as f:
                    f.write(f'{step},{time.time() - t_start:.0f},{np.mean(losses):.5f},'
                            f'{m["mean_px"]:.3f},{m["mean_pct_diag"]:.4f},{m["max_px"]:.2f},'
                            f'{m["pck@0.5"]:.4f},{m["pck@1"]:.4f},{m["pck@2"]:.4f},'
                            f'{len(train_views)}\n')
                losses = []
                tqdm.write(f'step {step}: val mean {m["mean_px"]:.2f} px '
                           f'({m["mean_pct_diag"]:.3f}% diag), PCK@1% {m["pck@1"]:.3f}, '
                           f'detected {m["detected"]:.3f}')
                meta = {'object': oc.name, 'config_name': args.config, 'step': step,
                        'trained_on': 'synthetic only: ' + ', '.join(args.data),
                        'val': m}
                if m['mean_pct_diag'] < best:
                    best = m['mean_pct_diag']
                    save_checkpoint(best_path, model, oc, meta)
                save_checkpoint(last_path, model, oc, meta, extra={
                    'optimizer': opt.state_dict(), 'scheduler': sched.state_dict(), 'step': step,
                    'best_error': best, 'numpy_seed': args.seed, 'sampler': sampler.state_dict(),
                    'random_states': random_states(sampler.rng),
                    'queued_batches': [{'views': views, 'seed': list(seed)}
                                       for views, seed in batches.queued()],
                    'elapsed_s': time.time() - t_start})
                plot_curves(csv_path, os.path.join(args.out, 'training_curves.png'))
                if cache.refresh():
                    train_views, val_views = cache.split()
                    sampler.resize(len(train_views))
                    batches.close()  # the workers hold the old views
                    batches = BatchPrefetcher(train_views, oc.symmetries, config, args.sigma,
                                              args.distractors, args.workers)
                    submitted = step
                    tqdm.write(f'picked up new shards: {len(train_views)} training views')
                if args.minutes and time.time() - t_start > 60 * args.minutes:
                    tqdm.write(f'time budget of {args.minutes} min reached')
                    break
    finally:
        batches.close()
        pbar.close()
    return best_path


def check_data_inputs(data: Sequence[str]) -> None:
    """Check that ``--data`` names dataset folders with shards, or view packs.

    Raises:
        InputError: naming the first entry that does not exist, and when no
            entry holds a shard (``shard-*.tar``) or is a pack (``.npz``).
    """
    for entry in data:
        if not (os.path.isfile(entry) if entry.endswith('.npz') else os.path.isdir(entry)):
            kind = 'view pack' if entry.endswith('.npz') else 'dataset folder'
            raise InputError(f'--data {entry}: no such {kind}')
    if not any(entry.endswith('.npz') or list_shards(entry) for entry in data):
        raise InputError(f'--data {" ".join(data)}: no shards (shard-*.tar) to train on')


def parse_args(argv=None) -> argparse.Namespace:
    """Options of ``keypoints-train`` (``argv`` None: the command line).

    Raises:
        SystemExit: on a usage error (one line, status 2).
    """
    p = ArgumentParser(prog='keypoints-train', description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', nargs='+', required=True, help='sim_datagen dataset folders')
    p.add_argument('--object', default='checkerboard', help='object class name or YAML')
    p.add_argument('--config', default='lite', choices=['lite', 'paper'])
    p.add_argument('--out', required=True, help='run folder (checkpoints, curves)')
    p.add_argument('--steps', type=positive_int, default=3000,
                   help='optimizer steps (LR schedule)')
    p.add_argument('--minutes', type=non_negative_float, default=0,
                   help='stop after this wall time (0 = no limit)')
    p.add_argument('--batch', type=positive_int, default=16)
    p.add_argument('--lr', type=positive_float, default=2e-3)
    p.add_argument('--sigma', type=positive_float, default=1.5,
                   help='target sigma in belief cells')
    p.add_argument('--loss', default='bce', choices=['bce', 'mse'])
    p.add_argument('--distractors', type=unit_interval, default=0.5,
                   help='probability of pasting procedural clutter into a view')
    p.add_argument('--hard-examples', type=unit_interval, default=0.0,
                   help='share of loss-prioritized view sampling in [0, 1] (0 = uniform)')
    p.add_argument('--eval-every', type=positive_int, default=200)
    p.add_argument('--threads', type=positive_int, default=2, help='torch CPU threads')
    p.add_argument('--device', default='cpu',
                   help="'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available)")
    p.add_argument('--workers', type=non_negative_int, default=0,
                   help='processes making augmented batches (0 = in the training process)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--resume', action='store_true', help='continue from OUT/last.pt')
    p.add_argument('--init', default='',
                   help='start from the weights of this checkpoint or shipped model name')
    return p.parse_args(argv)


@command_line('keypoints-train')
def main(argv=None):
    """Command-line entry point ``keypoints-train``."""
    best = train(parse_args(argv))
    print(f'best checkpoint: {best}')


if __name__ == '__main__':
    raise SystemExit(main())
