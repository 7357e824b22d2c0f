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
"""Does sampler feedback help? Paired streaming trainings, feedback off and on (issue 18 item 2).

    source tools/env.sh && python tools/feedback_experiment.py --pairs 5 --steps 3000 \\
        --eval-every 100 --feedback-every 100 --sim-workers 2 --write-doc

The experiment of Heindl et al. 2020 (Fig. 8) on this project: ``--pairs``
K pairs of ``keypoints-train --stream`` runs.  Both runs of pair k use the
same seed (network initialization, augmentation, simulator seeds
``seed * 1000 + worker``), the same compute budget (``--steps`` of batch
``--batch``) and the same fixed validation set (rendered once from the
uniform prior by the first run and passed to all others with ``--val-set``);
one run keeps the uniform priors, the other sends feedback every
``--feedback-every`` steps (the worst ``--feedback-quantile`` of the
validation set by loss, or by the loss of perturbed copies with
``--feedback-score perturbed``; see keypoint_perception.training.stream_train).
Different selections are compared by rerunning with another ``--out``.

Reported (``OUT/summary.json``, ``OUT/feedback_experiment.png`` and, with
``--write-doc``, the section between the ``--section`` markers of
docs/benchmarks.md, default ``feedback_experiment``): the validation error
(mean 2D error, % of the image diagonal) against steps, mean and +-1 std
band over the pairs for each arm; for each pair the steps the feedback run
needs to reach its uniform run's final error and their ratio to the uniform
run's steps (not reached: no ratio, counted); the mean and std of the ratio
over the pairs that reached it and the final errors of both arms. The
issue's target: a mean ratio of at most 0.75 with no regression of the final
error.

Runs are sequential (each trainer starts its own simulators); a finished run
(its ``metrics.csv`` reaches ``--steps``) is not run again, so an interrupted
experiment continues where it stopped.
"""

import argparse
import csv
import datetime
import json
import os
import shlex
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from matplotlib.figure import Figure
import numpy as np

from benchmark_common import cpu_model, replace_section, ROOT
from keypoint_perception.training.stream_records import prior_movement, read_priors

DOC = os.path.join(ROOT, 'docs', 'benchmarks.md')
SECTION = 'feedback_experiment'


def markers(section: str = SECTION):
    """(begin, end) markers of a section of docs/benchmarks.md."""
    return f'<!-- BEGIN {section} -->', f'<!-- END {section} -->'


ARMS = ('uniform', 'feedback')
#: Evaluations averaged for the less noisy final error (``*_tail``).
TAIL = 3


def read_curve(run_dir: str) -> Tuple[np.ndarray, np.ndarray]:
    """(steps (N,) int, validation error (N,) float, % of the diagonal) of a run's metrics.csv."""
    path = os.path.join(run_dir, 'metrics.csv')
    if not os.path.isfile(path):
        return np.zeros(0, int), np.zeros(0)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return (np.array([int(r['step']) for r in rows], int),
            np.array([float(r['val_mean_pct_diag']) for r in rows]))


def steps_to_reach(steps: Sequence[int], errors: Sequence[float], target: float
                   ) -> Optional[int]:
    """First step whose validation error is <= ``target``; None if never reached."""
    for step, error in zip(steps, errors):
        if error <= target:
            return int(step)
    return None


def pair_table(curves: Dict[Tuple[int, str], Tuple[np.ndarray, np.ndarray]], pairs: int
               ) -> List[dict]:
    """Per pair: final errors of both arms, feedback's steps to reach uniform's final error.

    Returns:
        one dict per complete pair: ``pair``, ``uniform_final``,
        ``feedback_final`` (% of the diagonal), ``uniform_steps`` (last step),
        ``feedback_steps`` (None: not reached), ``ratio`` (None: not
        reached), ``uniform_tail`` / ``feedback_tail`` (mean of the last
        ``TAIL`` evaluations, less noisy than the last one) and
        ``first_diff`` (feedback minus uniform at the first evaluation: with
        ``--eval-every`` <= ``--feedback-every`` no feedback has been sent
        yet, so this is the run-to-run noise of streamed training, whose
        samples arrive in no fixed order) and ``uniform_self_ratio`` (the
        share of its steps the uniform run itself needs to first reach its
        final error: what the ratio is for a run with no gain at all, since
        a noisy curve dips below a noisy end point before the end).
    """
    table = []
    for k in range(pairs):
        (su, eu), (sf, ef) = curves[(k, 'uniform')], curves[(k, 'feedback')]
        if not len(su) or not len(sf):
            continue
        reach = steps_to_reach(sf, ef, eu[-1])
        table.append({'pair': k, 'uniform_final': float(eu[-1]),
                      'feedback_final': float(ef[-1]), 'uniform_steps': int(su[-1]),
                      'feedback_steps': reach,
                      'ratio': None if reach is None else reach / int(su[-1]),
                      'uniform_tail': float(np.mean(eu[-TAIL:])),
                      'feedback_tail': float(np.mean(ef[-TAIL:])),
                      'first_diff': float(ef[0] - eu[0]),
                      'uniform_self_ratio': steps_to_reach(su, eu, eu[-1]) / int(su[-1])})
    return table


def summarize(table: Sequence[dict]) -> dict:
    """Mean and std of the ratio (pairs that reached) and of the other columns of the table.

    Keys: ``pairs``, ``reached``, ``ratio_mean`` / ``ratio_std``, and
    ``<column>_mean`` / ``<column>_std`` for ``uniform_final``,
    ``feedback_final``, ``uniform_tail``, ``feedback_tail``, ``first_diff``
    and ``uniform_self_ratio`` (std with ddof 1; None where undefined).
    """
    ratios = np.array([r['ratio'] for r in table if r['ratio'] is not None], float)
    out = {'pairs': len(table), 'reached': int(len(ratios)),
           'ratio_mean': float(ratios.mean()) if len(ratios) else None,
           'ratio_std': float(ratios.std(ddof=1)) if len(ratios) > 1 else None}
    columns = ([f'{arm}_{kind}' for kind in ('final', 'tail') for arm in ARMS]
               + ['first_diff', 'uniform_self_ratio'])
    for column in columns:
        values = np.array([r[column] for r in table], float)
        out[f'{column}_mean'] = float(values.mean()) if len(values) else None
        out[f'{column}_std'] = float(values.std(ddof=1)) if len(values) > 1 else None
    return out


def validation_bin_counts(val_set: str) -> Dict[str, np.ndarray]:
    """Count the fixed validation set's samples per bin of each variable: ``{name: (B,) int}``."""
    with np.load(val_set, allow_pickle=False) as f:
        meta = json.loads(str(f['bins']))
    counts = {n: np.zeros(int(b), int) for n, b in meta['num_bins'].items()}
    for sample in meta['bins']:
        for name, b in sample.items():
            if name in counts and 0 <= int(b) < len(counts[name]):
                counts[name][int(b)] += 1
    return counts


def prior_table(movements: Sequence[Dict[str, dict]], val_counts: Dict[str, np.ndarray],
                top: int = 6) -> List[dict]:
    """Return the variables whose priors feedback moved most, over the feedback runs.

    Args:
        movements: one :func:`prior_movement` result per feedback run.
        val_counts: :func:`validation_bin_counts` of the shared validation set.
        top: number of variables returned, largest mean movement first.

    Returns:
        one dict per variable: ``variable``, ``tv_mean`` / ``tv_std`` (total
        variation between the first and last prior mean, over the runs),
        ``bin`` (the bin that gained most probability in most runs),
        ``p_first`` / ``p_last`` (that bin's probability, mean over runs) and
        ``val_counts`` (validation samples per bin, a list).
    """
    names = sorted({n for m in movements for n in m})
    rows = []
    for name in names:
        runs = [m[name] for m in movements if name in m]
        tv = np.array([r['tv'] for r in runs])
        gained = [int(np.argmax(r['last'] - r['first'])) for r in runs]
        b = max(set(gained), key=gained.count)
        rows.append({'variable': name, 'tv_mean': float(tv.mean()),
                     'tv_std': float(tv.std(ddof=1)) if len(tv) > 1 else 0.0, 'bin': b,
                     'p_first': float(np.mean([r['first'][b] for r in runs])),
                     'p_last': float(np.mean([r['last'][b] for r in runs])),
                     'val_counts': [int(c) for c in val_counts.get(name, [])]})
    rows.sort(key=lambda r: -r['tv_mean'])
    return rows[:top]


def plot(curves, pairs: int, path: str) -> None:
    """Validation error against step, mean +-1 std over the pairs, one line per arm."""
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.subplots()
    for arm, color in zip(ARMS, ('tab:blue', 'tab:red')):
        runs = [curves[(k, arm)] for k in range(pairs) if len(curves[(k, arm)][0])]
        if not runs:
            continue
        n = min(len(s) for s, _ in runs)
        steps = runs[0][0][:n]
        errors = np.stack([e[:n] for _, e in runs])
        mean, std = errors.mean(axis=0), errors.std(axis=0)
        ax.plot(steps, mean, color=color, label=f'{arm} ({len(runs)} runs)')
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2)
    ax.set(xlabel='step', ylabel='validation error, % of diagonal', yscale='log',
           title='Sampler feedback off (uniform) and on: mean +-1 std over pairs')
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    fig.savefig(path, dpi=110)


def _fmt(value, spec='.3f') -> str:
    return '-' if value is None else format(value, spec)


def doc_section(table, summary, command: str, figure_rel: str,
                priors: Sequence[dict] = (), section: str = SECTION) -> str:
    """Markdown section (between the ``section`` markers) with the table, figure and command."""
    begin, end = markers(section)
    lines = [begin, '',
             f'Recorded {datetime.date.today()} on {cpu_model()} with', '',
             f'    {command}', '',
             f'![validation error against steps]({figure_rel})', '',
             '| pair | uniform final error (% diag) | feedback final error (% diag) | '
             'feedback steps to reach uniform final | ratio | '
             f'uniform / feedback, mean of last {TAIL} evaluations | '
             'feedback - uniform at the first evaluation | '
             'ratio of the uniform run to its own final error |',
             '|---|---|---|---|---|---|---|---|']
    for r in table:
        lines.append(f'| {r["pair"]} | {r["uniform_final"]:.3f} | {r["feedback_final"]:.3f} | '
                     f'{_fmt(r["feedback_steps"], "d")} / {r["uniform_steps"]} | '
                     f'{_fmt(r["ratio"], ".2f")} | {r["uniform_tail"]:.3f} / '
                     f'{r["feedback_tail"]:.3f} | {r["first_diff"]:+.3f} | '
                     f'{r["uniform_self_ratio"]:.2f} |')
    s = summary
    lines += ['', f'Ratio (pairs that reached, {s["reached"]} of {s["pairs"]}): mean '
              f'{_fmt(s["ratio_mean"], ".2f")}, std {_fmt(s["ratio_std"], ".2f")} (target: '
              f'mean <= 0.75).  Final error: uniform {_fmt(s["uniform_final_mean"])} +- '
              f'{_fmt(s["uniform_final_std"])}, feedback {_fmt(s["feedback_final_mean"])} +- '
              f'{_fmt(s["feedback_final_std"])} % of the diagonal; mean of the last {TAIL} '
              f'evaluations: uniform {_fmt(s["uniform_tail_mean"])} +- '
              f'{_fmt(s["uniform_tail_std"])}, feedback {_fmt(s["feedback_tail_mean"])} +- '
              f'{_fmt(s["feedback_tail_std"])}.  Run-to-run noise (the arms\' difference at the '
              f'first evaluation, before feedback when --eval-every <= --feedback-every): '
              f'{_fmt(s["first_diff_mean"], "+.3f")} +- {_fmt(s["first_diff_std"])}.  The '
              f'ratio of a run without any gain (each uniform run to its own final error): '
              f'{_fmt(s["uniform_self_ratio_mean"], ".2f")} +- '
              f'{_fmt(s["uniform_self_ratio_std"], ".2f")}.', '']
    if priors:
        lines += ['Where feedback moved the priors (feedback runs; total variation between the '
                  'first and last prior mean, 0 = unchanged, 1 = all mass moved; the bin that '
                  'gained most, its probability before and after; and how many samples of the '
                  'fixed validation set fall in each bin of the variable):', '',
                  '| variable | moved (TV), mean +- std | bin gained | its probability | '
                  'validation samples per bin |', '|---|---|---|---|---|']
        for r in priors:
            lines.append(f'| `{r["variable"]}` | {r["tv_mean"]:.3f} +- {r["tv_std"]:.3f} | '
                         f'{r["bin"]} | {r["p_first"]:.2f} -> {r["p_last"]:.2f} | '
                         f'{" / ".join(map(str, r["val_counts"]))} |')
        lines.append('')
    lines.append(end)
    return '\n'.join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--pairs', type=int, default=5, help='K paired runs (>= 5 for the report)')
    p.add_argument('--seed', type=int, default=0, help='seed of pair 0 (pair k: seed + k)')
    p.add_argument('--steps', type=int, default=3000, help='compute budget of every run')
    p.add_argument('--eval-every', type=int, default=100)
    p.add_argument('--feedback-every', type=int, default=100)
    p.add_argument('--feedback-quantile', type=float, default=0.25)
    p.add_argument('--feedback-score', choices=['loss', 'perturbed'], default='loss',
                   help="selection of the worst samples (keypoints-train's --feedback-score)")
    p.add_argument('--val-samples', type=int, default=200)
    p.add_argument('--sim-workers', type=int, default=2)
    p.add_argument('--sim-config', default='checkerboard', help='panda, kuka_iiwa, ...')
    p.add_argument('--object', default='checkerboard')
    p.add_argument('--sim-size', type=int, nargs=2, default=(640, 480), metavar=('W', 'H'))
    p.add_argument('--sim-rate', type=float, default=0.0,
                   help='samples/s of each simulator (0 = as fast as they render)')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--lr', type=float, default=2e-3, help="keypoints-train's --lr")
    p.add_argument('--init', default='',
                   help='start every run from these weights (shipped model name or checkpoint): '
                        'the fine-tuning regime, where the remaining errors are rare scenes')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--out', default=os.path.join(ROOT, 'output', 'feedback_experiment'))
    p.add_argument('--write-doc', action='store_true',
                   help='replace the --section section of --doc')
    p.add_argument('--doc', default=DOC)
    p.add_argument('--section', default=SECTION,
                   help='name of the doc section (its BEGIN / END markers) and, by default, '
                        'of the figure: one per class or selection rule')
    p.add_argument('--figure', default='',
                   help='figure of --write-doc (default docs/images/SECTION.png)')
    return p.parse_args(argv)


def run_arm(args, k: int, arm: str, val_set: str) -> str:
    """Run (or skip when finished) one training of the experiment; returns its folder."""
    out = os.path.join(args.out, f'pair{k}', arm)
    steps, _ = read_curve(out)
    if len(steps) and steps[-1] >= args.steps:
        return out
    command = [sys.executable, '-m', 'keypoint_perception.training.train', '--stream',
               '--sim-workers', str(args.sim_workers), '--sim-config', args.sim_config,
               '--object', args.object, '--sim-size', *map(str, args.sim_size),
               '--sim-rate', str(args.sim_rate),
               '--seed', str(args.seed + k), '--steps', str(args.steps),
               '--eval-every', str(args.eval_every), '--batch', str(args.batch),
               '--lr', str(args.lr),
               '--val-samples', str(args.val_samples), '--device', args.device,
               '--threads', str(args.threads), '--out', out]
    if os.path.isfile(os.path.join(out, 'last.pt')):
        command.append('--resume')
    elif args.init:
        command += ['--init', args.init]
    if val_set:
        command += ['--val-set', val_set]
    if arm == 'feedback':
        command += ['--feedback-every', str(args.feedback_every),
                    '--feedback-quantile', str(args.feedback_quantile),
                    '--feedback-score', args.feedback_score]
    print('$', ' '.join(shlex.quote(c) for c in command), flush=True)
    subprocess.run(command, check=True)
    return out


def main(argv=None) -> int:
    """Run the pairs, then write the summary, the figure and (optionally) the doc section."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    val_set = ''
    curves = {}
    for k in range(args.pairs):
        for arm in ARMS:
            out = run_arm(args, k, arm, val_set)
            val_set = val_set or os.path.join(out, 'stream_validation.npz')
            curves[(k, arm)] = read_curve(out)
    table = pair_table(curves, args.pairs)
    summary = summarize(table)
    movements = [prior_movement(read_priors(path)) for path in
                 (os.path.join(args.out, f'pair{k}', 'feedback', 'priors.csv')
                  for k in range(args.pairs)) if os.path.isfile(path)]
    priors = prior_table(movements, validation_bin_counts(val_set)) if movements else []
    with open(os.path.join(args.out, 'summary.json'), 'w') as f:
        json.dump({'pairs': table, 'summary': summary, 'priors': priors, 'args': vars(args)},
                  f, indent=1)
    plot(curves, args.pairs, os.path.join(args.out, 'feedback_experiment.png'))
    print(json.dumps(summary, indent=1))
    if args.write_doc:
        figure = args.figure or os.path.join(ROOT, 'docs', 'images', f'{args.section}.png')
        plot(curves, args.pairs, figure)
        command = 'python tools/feedback_experiment.py ' + ' '.join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        replace_section(args.doc, *markers(args.section), doc_section(
            table, summary, command,
            os.path.relpath(figure, os.path.dirname(os.path.abspath(args.doc))),
            priors, args.section))
        print(f'wrote {args.doc} and {figure}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
