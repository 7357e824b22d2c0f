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
With ``--stream`` the samples come from running simulators instead, which
the trainer steers with feedback (see :mod:`.stream_train`).
"""

import argparse
import collections
import multiprocessing
import os
import time
from typing import List, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ..cli import (ArgumentParser, checked_input, command_line, InputError, non_negative_float,
                   non_negative_int, positive_float, positive_int, unit_interval)
from ..core.checkpoint import save_checkpoint
from ..core.dataset import list_shards
from .data import is_validation_shard, ViewSet
from .hard_examples import LossPrioritizedSampler
from .loop import (evaluate, make_batch_arrays, one_cycle_schedule, optimizer_step,
                   plot_curves, resolve_device, start_run, write_metrics_row)
from .run_state import random_states, restore_random_states
from .shard_cache import ShardCache
from .stream_train import add_stream_arguments, train_stream


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

    model, oc, config, ckpt, step, best, rng = start_run(args, last_path, csv_path, rng)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = one_cycle_schedule(opt, args.lr, args.steps, ckpt)

    cache = ShardCache(args.data, (config.input_width, config.input_height), is_validation_shard,
                       args.object_crops)
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
        # batches drawn before the checkpoint, as view indices: valid only in the same views
        same_views = len(ckpt.get('sampler', {}).get('loss', ())) == len(train_views)
        if not same_views and ckpt.get('queued_batches'):
            print(f'the training views changed since the checkpoint (new shards): its '
                  f'{len(ckpt["queued_batches"])} queued batches are drawn again')
        for queued in ckpt.get('queued_batches', []) if same_views else []:
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
            per_sample, loss = optimizer_step(model, opt, sched, images, targets, device,
                                              args.loss)
            sampler.update(idx, per_sample)
            step += 1
            losses.append(loss)
            pbar.update(1)
            pbar.set_postfix(loss=f'{np.mean(losses[-50:]):.4f}')
            if step % args.eval_every == 0 or step == args.steps:
                m = evaluate(model, val_views, oc.symmetries,
                             batch_size=128 if device.type == 'cuda' else 32)
                write_metrics_row(csv_path, step, time.time() - t_start, losses, m,
                                  len(train_views))
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
                    old_val = val_views
                    train_views, val_views = cache.split()
                    if not np.array_equal(old_val.uv, val_views.uv):  # scores do not compare
                        best = float('inf')
                        tqdm.write(f'validation set changed ({len(old_val)} -> '
                                   f'{len(val_views)} views): best.pt is chosen anew from the '
                                   'next evaluation')
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
    p.add_argument('--data', nargs='+', default=[],
                   help='sim_datagen dataset folders (required without --stream; with '
                        '--stream: their validation shards are the validation set)')
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
    p.add_argument('--object-crops', type=non_negative_int, default=0,
                   help='zoomed crops around the labelled keypoints added per training view '
                        '(the view of the detector\'s second look; shard training), 0 = none')
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
    add_stream_arguments(p)
    return p.parse_args(argv)


@command_line('keypoints-train')
def main(argv=None):
    """Command-line entry point ``keypoints-train``."""
    args = parse_args(argv)
    if args.stream and args.object_crops:
        raise InputError('--object-crops: shard training only, not with --stream')
    if args.stream:
        best = train_stream(args)
    elif not args.data:
        raise InputError('--data: required (dataset folders or view packs) unless --stream')
    else:
        best = train(args)
    print(f'best checkpoint: {best}')


if __name__ == '__main__':
    raise SystemExit(main())
