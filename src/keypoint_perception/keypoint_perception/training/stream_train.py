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
"""Online adaptive training (``keypoints-train --stream``, Heindl et al. 2020).

Simulators stream labelled stereo renders to the trainer over DDS; the
trainer steers them.  Sources are local ``sim_stream_node`` processes the
trainer starts (``--sim-workers N``, see :class:`~.stream_sources.SimulatorPool`)
and/or nodes already running under given namespaces
(``--stream-namespaces /sim0 /sim1``, on this machine or others in the same
ROS domain).  Each step takes ``ceil(batch / 2)`` stereo samples (two views
each), round-robin over the sources that have one waiting
(:class:`~.stream_dataset.StreamDataset`), so a slow or dead source never
stalls the others; an exited local process is started again where it was,
and a node that comes back is used again.

The first ``--val-samples`` samples (rendered from the sources' initial
priors, before any feedback) are the fixed validation set, kept in
``OUT/stream_validation.npz``; ``--val-set`` takes another run's instead,
``--data`` the validation shards of datasets (the streams are then the only
training data).  Every ``--feedback-every`` steps the trainer
scores it (belief loss per stereo sample), counts the scene-variable bins of
the worst ``--feedback-quantile`` per variable and sends the counts to the
sources (all, or those of ``--feedback-to``), which add them to their
Dirichlet parameters.  Every source's parameters are logged
(``OUT/priors.csv``, plotted in ``OUT/priors.png``).  ``OUT/last.pt`` holds
the network, the optimizer and every source's parameters and next sample
index: ``--resume`` restarts local simulators from them and brings running
nodes back to them (feedback can only add, so a node ahead of the
checkpoint is reported).  The progress bar shows samples/s in, steps/s and
the queue depth, and the trainer says when the simulators cannot keep up.
"""

import argparse
import itertools
import os
import socket
import time
from typing import Dict, List, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..cli import (checked_input, InputError, non_negative_float, non_negative_int,
                   positive_float, positive_int, unit_interval)
from ..core.checkpoint import save_checkpoint
from ..core.model import BeliefMapNet, normalize_images, symmetric_belief_loss
from .data import views_of_samples, ViewSet
from .loop import (evaluate, make_batch_arrays, one_cycle_schedule, optimizer_step,
                   plot_curves, resolve_device, start_run, write_metrics_row)
from .run_state import random_states, restore_random_states
from .stream_dataset import normalize_namespace, StreamDataset
from .stream_records import (load_validation, log_priors, plot_priors, save_validation,
                             ThroughputMeter, truncate_rows, validation_from_shards,
                             write_sources)
from .stream_sources import (feedback_counts, pool_seed_problem, restoring_counts, SampleFeed,
                             SimulatorPool)

#: Wait share over the last steps above which the simulators "cannot keep up".
STARVED_SHARE = 0.5
#: Seconds between two "cannot keep up" or "silent source" warnings.
WARN_EVERY_S = 30.0
#: Seconds the sample feed blocks before it checks its sources again.
POLL_S = 1.0
#: numbers the feedback messages this process sends (see :func:`feedback_tag`)
_FEEDBACK_TAGS = itertools.count(1)


def _fraction(text: str) -> float:
    """Argparse type: a number in (0, 1]."""
    value = unit_interval(text)
    if value == 0.0:
        raise argparse.ArgumentTypeError('must be in (0, 1], got 0')
    return value


def add_stream_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``--stream`` options to ``keypoints-train``'s parser."""
    g = p.add_argument_group('online training from simulators (--stream)')
    g.add_argument('--stream', action='store_true',
                   help='train on samples streamed by sim_stream_nodes instead of --data')
    g.add_argument('--sim-workers', type=non_negative_int, default=0,
                   help='local sim_stream_node processes to start (namespaces /kp_sim<k>)')
    g.add_argument('--stream-namespaces', nargs='+', default=[], metavar='NS',
                   help='namespaces of sim_stream_nodes already running (any machine)')
    g.add_argument('--sim-config', default='checkerboard',
                   help='generator config of the local simulators (name or YAML)')
    g.add_argument('--sim-size', type=positive_int, nargs=2, default=(0, 0),
                   metavar=('W', 'H'), help='image size of the local simulators (px)')
    g.add_argument('--sim-rate', type=non_negative_float, default=0.0,
                   help='samples/s of each local simulator (0 = as fast as they render)')
    g.add_argument('--val-samples', type=positive_int, default=64,
                   help='stereo samples of the fixed validation set (first ones streamed)')
    g.add_argument('--val-set', default='',
                   help='use this stream_validation.npz (of another run) as the fixed '
                        'validation set, e.g. the same one for paired runs')
    g.add_argument('--feedback-every', type=non_negative_int, default=0,
                   help='steps between feedback rounds (0 = no feedback, uniform priors)')
    g.add_argument('--feedback-quantile', type=_fraction, default=0.25,
                   help='share of the validation samples, highest loss first, whose bins '
                        'are sent')
    g.add_argument('--feedback-score', choices=['loss', 'perturbed'], default='loss',
                   help='rank the validation samples by their belief loss, or by the loss '
                        'of a perturbed copy (training augmentation, new each round)')
    g.add_argument('--feedback-to', nargs='+', default=None, metavar='NS',
                   help='sources that get feedback (default: all)')
    g.add_argument('--source-timeout', type=positive_float, default=20.0,
                   help='seconds without a sample after which a source is reported silent')
    g.add_argument('--stream-timeout', type=positive_float, default=600.0,
                   help='seconds without any sample after which training stops with an error')
    g.add_argument('--queue-size', type=positive_int, default=16,
                   help='samples buffered per source (oldest dropped)')


def stereo_losses(model: BeliefMapNet, views: ViewSet, symmetries, sigma: float, loss_kind: str,
                  batch_size: int = 16, perturb_seed=None,
                  distractor_prob: float = 0.0) -> np.ndarray:
    """Belief loss of every stereo sample of a validation set (mean of its two views).

    Args:
        views: 2N views, left and right of sample i at 2i and 2i + 1
            (:func:`~.data.views_of_samples`), unaugmented.
        sigma: target sigma in belief cells; ``loss_kind``: ``'bce'``/``'mse'``.
        perturb_seed: None scores the views as they are; a seed scores them
            perturbed by the training augmentation (:func:`~.data.augment_view`,
            keypoints moved with the image, clutter with ``distractor_prob``)
            drawn from that seed -- the "loss on perturbed inputs" selection
            Heindl et al. 2020 mention, which also finds samples the network
            only gets right in their exact rendering.

    Returns:
        (N,) float64 losses.  The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for s in range(0, len(views), batch_size):
            idx = np.arange(s, min(s + batch_size, len(views)))
            seed = 0 if perturb_seed is None else (*np.atleast_1d(perturb_seed).tolist(), s)
            images, targets = make_batch_arrays(views, idx, symmetries, model.config, sigma,
                                                seed, augment=perturb_seed is not None,
                                                distractor_prob=distractor_prob)
            images = normalize_images(torch.from_numpy(images).to(device))
            per_view = symmetric_belief_loss(model(images), torch.from_numpy(targets).to(device),
                                             kind=loss_kind, reduction='none')
            out.append(per_view.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out).reshape(-1, 2).mean(axis=1).astype(np.float64)


def _sources(args) -> List[str]:
    """Feedback and stream namespaces, checked (InputError on a bad choice)."""
    if not args.sim_workers and not args.stream_namespaces:
        raise InputError('--stream: no source; give --sim-workers N and/or '
                         '--stream-namespaces NS ...')
    problem = args.sim_workers and pool_seed_problem(args.sim_workers, args.seed)
    if problem:
        raise InputError(f'--seed {args.seed} --sim-workers {args.sim_workers}: {problem}')
    external = [normalize_namespace(n) for n in args.stream_namespaces]
    local = [f'/kp_sim{k}' for k in range(args.sim_workers)]
    names = local + external
    if len(set(names)) != len(names):
        raise InputError(f'--stream-namespaces {" ".join(args.stream_namespaces)}: '
                         'namespaces must be distinct (and not /kp_sim<k> of --sim-workers)')
    if args.feedback_to:
        unknown = [n for n in args.feedback_to if normalize_namespace(n) not in names]
        if unknown:
            raise InputError(f'--feedback-to {" ".join(args.feedback_to)}: {unknown} are not '
                             f'sources ({names})')
    return names


def _restore_external(dataset: StreamDataset, namespaces: Sequence[str],
                      states: Mapping[str, Mapping], timeout: float) -> None:
    """Bring running nodes' Dirichlet parameters to a checkpoint's (``--resume``)."""
    for ns in namespaces:
        if ns not in states:
            continue
        current = dataset.wait_for_sampler_state(ns, timeout=timeout)
        if current is None:
            tqdm.write(f'source {ns}: no sampler_state within {timeout:g} s; its prior is '
                       'not restored')
            continue
        try:
            counts = restoring_counts(current, states[ns])
        except ValueError as e:
            tqdm.write(f'source {ns}: prior not restored: {e}; restart the node with '
                       'sampler_state_file to continue exactly')
            continue
        seen, tag = dataset.state_messages(ns), feedback_tag('--resume')
        if counts and dataset.send_feedback(ns, counts, source=tag):
            if dataset.wait_for_sampler_state(ns, 1, timeout, newer_than=seen,
                                              feedback_source=tag) is None:
                tqdm.write(f'source {ns}: prior sent but not confirmed within {timeout:g} s '
                           '(see the node\'s log)')
            else:
                tqdm.write(f'source {ns}: prior restored from the checkpoint')


def train_stream(args) -> str:
    """Train on streamed samples, steering the sources; returns the path of ``best.pt``.

    Raises:
        InputError: no source, bad ``--feedback-to``, a missing or corrupt
            ``OUT/last.pt`` with ``--resume``, an unknown ``--object``, an
            unavailable ``--device`` or a missing ``sim_stream_node``.
        TimeoutError: no sample from any source for ``--stream-timeout`` s.
    """
    names = _sources(args)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    paths = {n: os.path.join(args.out, f) for n, f in (
        ('last', 'last.pt'), ('best', 'best.pt'), ('csv', 'metrics.csv'),
        ('priors', 'priors.csv'), ('val', 'stream_validation.npz'),
        ('sources', 'sources.csv'))}
    if args.resume and not os.path.isfile(paths['last']):
        raise InputError(f'--resume: no checkpoint to resume from ({paths["last"]} '
                         'does not exist)')
    os.makedirs(args.out, exist_ok=True)
    model, oc, config, ckpt, step, best, rng = start_run(args, paths['last'], paths['csv'], rng)
    resumed = ckpt.get('stream', {}) if ckpt is not None else {}
    for name in ('priors', 'sources'):  # rows written after the checkpoint, or a new run
        if ckpt is not None:
            truncate_rows(paths[name], step)
        elif os.path.isfile(paths[name]):
            os.remove(paths[name])
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = one_cycle_schedule(opt, args.lr, args.steps, ckpt)
    with checked_input(f'--device {args.device}'):
        device = resolve_device(args.device)
    model.to(device)
    if ckpt is not None:
        opt.load_state_dict(ckpt['optimizer'])
        if 'random_states' in ckpt:
            restore_random_states(ckpt['random_states'], rng)
    pool = None
    if args.sim_workers:
        with checked_input('--sim-workers'):
            pool = SimulatorPool(args.sim_workers, os.path.join(args.out, 'simulators'),
                                 args.seed, config=args.sim_config, width=args.sim_size[0],
                                 height=args.sim_size[1], rate=args.sim_rate)
    feedback_to = [normalize_namespace(n) for n in (args.feedback_to or names)]
    dataset = StreamDataset(names, queue_size=args.queue_size, timeout=POLL_S,
                            node_name='keypoints_train')
    pbar = None
    try:  # (keypoints-train turns SIGTERM into SystemExit: the finally stops the simulators)
        states = resumed.get('sampler_states', {})
        if pool is not None:
            pool.start_all(states, resumed.get('next_indices', {}))
        dataset.start()
        if states:
            _restore_external(dataset, [n for n in names if pool is None
                                        or n not in pool.namespaces], states,
                              args.source_timeout)
        feed = SampleFeed(dataset, pool, args.source_timeout, args.stream_timeout,
                          resumed.get('next_indices'))
        if os.path.isfile(paths['val']) and args.resume:
            val_views, val_bins, num_bins = load_validation(paths['val'])
        elif args.val_set:
            with checked_input(f'--val-set {args.val_set}'):
                val_views, val_bins, num_bins = load_validation(args.val_set)
            save_validation(paths['val'], val_views, val_bins, num_bins)
        elif args.data:
            with checked_input('--data ' + ' '.join(args.data)):
                val_views, val_bins, num_bins = validation_from_shards(
                    args.data, (config.input_width, config.input_height), args.val_samples)
            save_validation(paths['val'], val_views, val_bins, num_bins)
        else:
            tqdm.write(f'rendering the fixed validation set: {args.val_samples} samples '
                       f'from {names}')
            samples = feed.take(args.val_samples)
            val_views = views_of_samples(samples, (config.input_width, config.input_height))
            val_bins = [s['bins'] for s in samples]
            num_bins = {n: d['num_bins'] for s in samples
                        for n, d in s['labels']['variables'].items() if d['num_bins'] > 0}
            save_validation(paths['val'], val_views, val_bins, num_bins)
        # the parameters logged at the start: a resumed run renders no validation set, so
        # its simulators may still be starting (slow on a loaded machine)
        deadline = time.monotonic() + args.source_timeout
        for ns in names:
            dataset.wait_for_sampler_state(ns, timeout=max(0.1, deadline - time.monotonic()))
        feed.check_sources()
        log_priors(paths['priors'], step, feed.states)
        rounds = resumed.get('feedback_rounds', 0)
        print(f'{oc.name}: streaming from {len(names)} source(s) {names}; fixed validation set '
              f'of {len(val_views) // 2} samples; model {args.config} '
              f'{config.input_width}x{config.input_height} on {device}, batch {args.batch}; '
              + (f'feedback every {args.feedback_every} steps (worst '
                 f'{args.feedback_quantile:g}) to {feedback_to}' if args.feedback_every
                 else 'no feedback'))
        t_start = time.time() - (ckpt.get('elapsed_s', 0.0) if ckpt is not None else 0.0)
        losses: List[float] = []
        meter = ThroughputMeter(starved_share=STARVED_SHARE, warn_every_s=WARN_EVERY_S)
        pbar = tqdm(total=args.steps, initial=step, desc='train (stream)', unit='step',
                    dynamic_ncols=True)
        while step < args.steps:
            waited = feed.waited_s
            samples = feed.take((args.batch + 1) // 2)
            views = views_of_samples(samples, (config.input_width, config.input_height))
            images, targets = make_batch_arrays(
                views, np.arange(args.batch), oc.symmetries, config, args.sigma,
                (args.seed, step), distractor_prob=args.distractors)
            _, loss = optimizer_step(model, opt, sched, images, targets, device, args.loss)
            step += 1
            losses.append(loss)
            meter.step(feed.waited_s - waited)
            pbar.update(1)
            pbar.set_postfix(loss=f'{np.mean(losses[-50:]):.4f}',
                             samples_in=f'{feed.rate():.1f}/s',
                             steps=f'{meter.steps_per_s():.2f}/s', queue=feed.queued())
            warning = meter.starved(feed.rate(), (args.batch + 1) // 2)
            if warning:
                tqdm.write(warning)
            if args.feedback_every and step % args.feedback_every == 0:
                rounds += 1
                send_feedback(dataset, feed, model, oc, val_views, val_bins, num_bins, args,
                              feedback_to, step, rounds)
                log_priors(paths['priors'], step, feed.states)
                plot_priors(paths['priors'], os.path.join(args.out, 'priors.png'))
            if step % args.eval_every == 0 or step == args.steps:
                feed.check_sources()
                m = evaluate(model, val_views, oc.symmetries,
                             batch_size=128 if device.type == 'cuda' else 32)
                write_metrics_row(paths['csv'], step, time.time() - t_start, losses, m,
                                  sum(feed.used.values()))
                write_sources(paths['sources'], step, feed.dataset.namespaces,
                              feed.dataset.stats(), feed.used,
                              feed.pool.restarts if feed.pool is not None else {},
                              feed.last_seen)
                losses = []
                tqdm.write(f'step {step}: val mean {m["mean_px"]:.2f} px '
                           f'({m["mean_pct_diag"]:.3f}% diag), PCK@1% {m["pck@1"]:.3f}; '
                           f'samples used {feed.used}')
                meta = {'object': oc.name, 'config_name': args.config, 'step': step,
                        'trained_on': 'synthetic only: streamed from ' + ', '.join(names),
                        'val': m}
                if m['mean_pct_diag'] < best:
                    best = m['mean_pct_diag']
                    save_checkpoint(paths['best'], model, oc, meta)
                save_checkpoint(paths['last'], model, oc, meta, extra={
                    'optimizer': opt.state_dict(), 'scheduler': sched.state_dict(),
                    'step': step, 'best_error': best, 'numpy_seed': args.seed,
                    'random_states': random_states(rng), 'elapsed_s': time.time() - t_start,
                    'stream': {'sampler_states': dict(feed.states),
                               'next_indices': dict(feed.next_indices),
                               'feedback_rounds': rounds, 'namespaces': names}})
                plot_curves(paths['csv'], os.path.join(args.out, 'training_curves.png'))
                if args.minutes and time.time() - t_start > 60 * args.minutes:
                    tqdm.write(f'time budget of {args.minutes} min reached')
                    break
    finally:
        if pbar is not None:
            pbar.close()
        dataset.close()
        if pool is not None:
            pool.stop()
    return paths['best']


def feedback_tag(what: str) -> str:
    """Return a feedback ``source`` unique to this process and message.

    ``keypoints-train <host>:<pid> <what> #<n>``; the node echoes it in its
    ``sampler_state`` (``last_feedback_source``) once applied.
    """
    return (f'keypoints-train {socket.gethostname()}:{os.getpid()} {what} '
            f'#{next(_FEEDBACK_TAGS)}')


def send_feedback(dataset: StreamDataset, feed: SampleFeed, model: BeliefMapNet, oc,
                  val_views: ViewSet, val_bins, num_bins, args, feedback_to: Sequence[str],
                  step: int, round_index: int) -> Dict[str, np.ndarray]:
    """Score the validation set and send the worst samples' bin counts to ``feedback_to``.

    After sending, waits (up to ``--source-timeout``) for each fed source's
    new ``sampler_state`` so that the logged parameters include the update.

    Returns:
        the counts sent, ``{variable: (K,) float64}``.
    """
    losses = stereo_losses(model, val_views, oc.symmetries, args.sigma, args.loss,
                           perturb_seed=((args.seed, round_index)
                                         if args.feedback_score == 'perturbed' else None),
                           distractor_prob=args.distractors)
    worst, counts = feedback_counts(val_bins, losses, num_bins, args.feedback_quantile)
    if not len(worst):
        tqdm.write(f'feedback round {round_index} at step {step}: no finite validation loss; '
                   'nothing sent')
        return {}
    applied, unconfirmed = [], []
    for ns in feedback_to:
        before, seen = dataset.sampler_state(ns), dataset.state_messages(ns)
        # only the variables the source has, with its bin counts (a node refuses the whole
        # message on any mismatch, e.g. a validation set rendered with another config)
        known = counts if before is None else {
            n: c for n, c in counts.items()
            if n in before['variables'] and len(c) == before['variables'][n]['bins']}
        tag = feedback_tag(f'round {round_index} step {step}')
        if not (known and dataset.send_feedback(ns, known, source=tag, wait=1.0)):
            continue
        # the node's answer: a state after `seen` that echoes this message's tag (a
        # restarted node counts its updates from 0 again, and a late answer to an earlier
        # round would pass a count test)
        if dataset.wait_for_sampler_state(ns, 1, timeout=min(args.source_timeout, 5.0),
                                          newer_than=seen, feedback_source=tag) is None:
            unconfirmed.append(ns)
        else:
            applied.append(ns)
    feed.check_sources()
    missing = sorted(set(feedback_to) - set(applied) - set(unconfirmed))
    tqdm.write(f'feedback round {round_index} at step {step}: the {len(worst)} worst of '
               f'{len(losses)} validation samples (loss >= {losses[worst].min():.4f}) '
               f'applied by {applied}'
               + (f'; sent, not confirmed: {unconfirmed}' if unconfirmed else '')
               + (f'; not sent (unreachable or no matching variables): {missing}'
                  if missing else ''))
    return counts
