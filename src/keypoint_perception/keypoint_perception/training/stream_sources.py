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
"""The simulators a streaming trainer learns from, and what it tells them.

* :class:`SimulatorPool`: local ``sim_stream_node`` processes started by the
  trainer (``keypoints-train --stream --sim-workers N``), one namespace and
  seed each.  The trainer talks to them only over DDS (keypoint_perception
  never imports sim_datagen, see test_dependencies), so the same code serves
  nodes started elsewhere (``--stream-namespaces``).  A process that exits is
  started again where it was: with its last known Dirichlet parameters
  (``sampler_state_file``) and the next sample index (``start_index``).
* :class:`SampleFeed`: the samples of all sources for the training loop,
  with silent sources reported and exited simulators restarted.
* :func:`feedback_counts`: the feedback of Heindl et al. 2020 (Sec. 3.3):
  the worst ``quantile`` of the fixed validation samples by loss, their
  scene-variable bins counted per variable -- the counts a simulator adds to
  its Dirichlet parameters (conjugate update ``alpha += counts``).
* :func:`restoring_counts`: the counts that bring a running node's
  parameters back to a checkpoint's (``--resume``).
"""

import json
import os
import shutil
import subprocess
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ament_index_python.packages import get_package_prefix, PackageNotFoundError
import numpy as np
from tqdm import tqdm

from ..core.scene_sampler import BinnedVariable, SceneSampler
from .feedback import hardest
from .stream_dataset import StreamDataset

#: Console script of the simulator's streaming node (package sim_datagen).
SIM_NODE = 'sim_stream_node'

#: Seeds of worker k of a run with seed s: ``STREAM_SEED_BASE + s * SEED_STRIDE + k``.
SEED_STRIDE = 1000

#: Offset of the seeds of the simulators a trainer starts.  A simulator with seed
#: s renders sample i exactly as ``sim-datagen generate --seed s`` does
#: (``SeedSequence([s, i])``), so seeds of the size datasets use (0, 1, 51,
#: 1000, ...) would stream a dataset's validation or test samples into training.
STREAM_SEED_BASE = 1_000_000_000

#: Run seeds stay below this, so that the simulators' seeds stay below
#: ``2 * STREAM_SEED_BASE`` and two runs' simulators never share one.
MAX_RUN_SEED = STREAM_SEED_BASE // SEED_STRIDE


def pool_seed_problem(count: int, seed: int) -> Optional[str]:
    """Return what is wrong with ``count`` simulators of a run with ``seed``, or None."""
    if 1 <= count <= SEED_STRIDE and 0 <= seed < MAX_RUN_SEED:
        return None
    return (f'need 1 <= simulators <= {SEED_STRIDE} and 0 <= seed < {MAX_RUN_SEED}, got '
            f'{count} simulators and seed {seed}')


#: Seconds between two checks of the sources while samples arrive.
CHECK_EVERY_S = 5.0
#: Longest wait (s) before a simulator that keeps exiting is started again.
MAX_RESTART_DELAY_S = 60.0


def sim_node_command() -> List[str]:
    """Command that starts a ``sim_stream_node``: on PATH, else from the ament index.

    Raises:
        FileNotFoundError: sim_datagen is not installed.
    """
    exe = shutil.which(SIM_NODE)
    if exe:
        return [exe]
    try:
        exe = os.path.join(get_package_prefix('sim_datagen'), 'lib', 'sim_datagen', SIM_NODE)
    except PackageNotFoundError:
        exe = ''
    if exe and os.access(exe, os.X_OK):
        return [exe]
    raise FileNotFoundError(f'{SIM_NODE} not found (on PATH or in the ament index): install '
                            'sim_datagen or use --stream-namespaces with nodes started elsewhere')


class SimulatorPool:
    """Local ``sim_stream_node`` processes, one per namespace, restarted when they exit.

    Args:
        count: number of processes (>= 1).
        log_dir: folder of their log files (``<namespace>.log``), process ids
            (``<namespace>.pid``) and start states.
        seed: run seed (< 1,000,000); process k renders with seed
            ``STREAM_SEED_BASE + seed * SEED_STRIDE + k``.
        prefix: namespaces are ``<prefix><k>`` (absolute, e.g. ``/kp_sim0``).
        config: generator config (name or YAML path) of sim_datagen.
        width, height: image size in pixels (0: the config's).
        rate: publishing rate in Hz (0: as fast as samples render).
        env: environment of the processes (default: this process's, which
            carries ``ROS_DOMAIN_ID`` and ``ROS_AUTOMATIC_DISCOVERY_RANGE``).

    Raises:
        ValueError: ``count`` or ``seed`` out of range (:func:`pool_seed_problem`).
    """

    def __init__(self, count: int, log_dir: str, seed: int = 0, prefix: str = '/kp_sim',
                 config: str = 'checkerboard', width: int = 0, height: int = 0,
                 rate: float = 0.0, env: Optional[Mapping[str, str]] = None):
        problem = pool_seed_problem(count, seed)
        if problem:
            raise ValueError(problem)
        self.namespaces = [f'/{prefix.strip("/")}{k}' for k in range(count)]
        self.seeds = {ns: STREAM_SEED_BASE + seed * SEED_STRIDE + k
                      for k, ns in enumerate(self.namespaces)}
        self.log_dir = log_dir
        self.parameters = {'config': config, 'width': int(width), 'height': int(height),
                           'rate': float(rate)}
        self.env = dict(os.environ if env is None else env)
        self.command = sim_node_command()
        #: util-linux ``setpriv --pdeathsig``: a simulator gets SIGTERM when the
        #: trainer dies, even by SIGKILL, instead of rendering on as an orphan
        #: (and publishing into the namespace of a resumed run's simulator).
        setpriv = shutil.which('setpriv')
        self.die_with_trainer = [setpriv, '--pdeathsig', 'TERM', '--'] if setpriv else []
        self.processes: Dict[str, subprocess.Popen] = {}
        self.restarts = {ns: 0 for ns in self.namespaces}
        self._next_restart = {ns: 0.0 for ns in self.namespaces}  # time.monotonic()
        os.makedirs(log_dir, exist_ok=True)

    def start(self, namespace: str, state: Optional[Mapping] = None,
              start_index: int = 0) -> None:
        """Start (or start again) the process of ``namespace``.

        Args:
            namespace: one of :attr:`namespaces`.
            state: Dirichlet parameters to start from (a
                :meth:`~..core.scene_sampler.SceneSampler.state_dict` or
                ``sampler_state`` dict); None: the config's priors.
            start_index: index of its first sample (continues a stream
                without repeating samples).
        """
        name = namespace.strip('/')
        params = dict(self.parameters, seed=self.seeds[namespace], start_index=int(start_index))
        if state is not None:
            path = os.path.join(self.log_dir, f'{name}.sampler_state.json')
            with open(path, 'w') as f:
                json.dump({'sampler_state': {'variables': state['variables']}}, f)
            params['sampler_state_file'] = path
        args = ['--ros-args', '-r', f'__ns:={namespace}']
        for key, value in params.items():
            args += ['-p', f'{key}:={value}']
        log = open(os.path.join(self.log_dir, f'{name}.log'), 'a')
        try:
            process = subprocess.Popen(self.die_with_trainer + self.command + args, stdout=log,
                                       stderr=subprocess.STDOUT, env=self.env)
        finally:
            log.close()  # the child holds its own descriptor
        self.processes[namespace] = process
        with open(os.path.join(self.log_dir, f'{name}.pid'), 'w') as f:
            f.write(f'{process.pid}\n')

    def start_all(self, states: Optional[Mapping[str, Mapping]] = None,
                  next_indices: Optional[Mapping[str, int]] = None) -> None:
        """Start every process, each from its entry of ``states`` and ``next_indices``."""
        for ns in self.namespaces:
            self.start(ns, (states or {}).get(ns), (next_indices or {}).get(ns, 0))

    def dead(self) -> List[str]:
        """Namespaces whose process has exited."""
        return [ns for ns, p in self.processes.items() if p.poll() is not None]

    def restart_dead(self, states: Mapping[str, Mapping],
                     next_indices: Mapping[str, int]) -> List[str]:
        """Start the exited processes again from their last state and sample index.

        A process that keeps exiting is started again after a growing delay
        (2, 4, 8, ... up to :data:`MAX_RESTART_DELAY_S` seconds), not at
        every check.

        Returns:
            the namespaces restarted.
        """
        now = time.monotonic()
        restarted = [ns for ns in self.dead() if now >= self._next_restart[ns]]
        for ns in restarted:
            self.restarts[ns] += 1
            self._next_restart[ns] = now + min(MAX_RESTART_DELAY_S, 2.0 ** self.restarts[ns])
            self.start(ns, states.get(ns), next_indices.get(ns, 0))
        return restarted

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate every process (SIGTERM, then SIGKILL after ``timeout`` s)."""
        for p in self.processes.values():
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + timeout
        for p in self.processes.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.processes.clear()


class SampleFeed:
    """Samples from every source, with liveness, restarts and throughput bookkeeping.

    Args:
        dataset: the started :class:`StreamDataset` of all sources.
        pool: the local simulators (None: only external nodes).
        source_timeout: seconds of silence after which a source is reported.
        stream_timeout: seconds without any sample after which
            :meth:`take` raises ``TimeoutError``.
        next_indices: ``{namespace: next sample index}`` of a resumed run.
    """

    def __init__(self, dataset: StreamDataset, pool: Optional[SimulatorPool],
                 source_timeout: float, stream_timeout: float,
                 next_indices: Optional[Mapping[str, int]] = None):
        self.dataset = dataset
        self.pool = pool
        self.source_timeout = source_timeout
        self.stream_timeout = stream_timeout
        self.iterator = iter(dataset)
        now = time.monotonic()
        self.last_seen = {ns: now for ns in dataset.namespaces}
        self.silent = set()
        self.next_indices = {ns: 0 for ns in dataset.namespaces}
        self.next_indices.update(next_indices or {})
        self.states: Dict[str, dict] = {}
        self.waited_s = 0.0
        self.arrivals: List[float] = []  # monotonic times of the samples taken
        self.used = {ns: 0 for ns in dataset.namespaces}
        self.received: Dict[str, int] = {}
        self.last_check = now

    def _sample(self) -> dict:
        while True:
            try:
                return next(self.iterator)
            except (TimeoutError, StopIteration):
                self.iterator = iter(self.dataset)
                raise TimeoutError

    def check_sources(self) -> None:
        """Report silent sources and start exited local simulators again."""
        now = self.last_check = time.monotonic()
        for ns, counters in self.dataset.stats().items():
            if counters['received'] > self.received.get(ns, 0):
                self.received[ns] = counters['received']
                self.last_seen[ns] = now
        for ns in self.dataset.namespaces:
            state = self.dataset.sampler_state(ns)
            if state is not None:
                self.states[ns] = state
            if now - self.last_seen[ns] > self.source_timeout and ns not in self.silent:
                self.silent.add(ns)
                tqdm.write(f'source {ns}: no sample for {now - self.last_seen[ns]:.0f} s; '
                           'training goes on with the others')
        if self.pool is not None:
            # after the samples already received: those still queued are trained on later
            stats = self.dataset.stats()
            starts = {ns: max(self.next_indices.get(ns, 0),
                              stats.get(ns, {}).get('max_index', -1) + 1)
                      for ns in self.dataset.namespaces}
            for ns in self.pool.restart_dead(self.states, starts):
                tqdm.write(f'source {ns}: simulator process exited; started again at sample '
                           f'{starts[ns]} (restart {self.pool.restarts[ns]})')

    def take(self, count: int) -> List[dict]:
        """Next ``count`` samples, round-robin over the sources with one waiting.

        Raises:
            TimeoutError: no sample from any source for ``stream_timeout`` s.
        """
        out = []
        t0 = time.monotonic()
        last = t0
        if t0 - self.last_check > CHECK_EVERY_S:
            self.check_sources()
        while len(out) < count:
            try:
                sample = self._sample()
            except TimeoutError:
                self.check_sources()
                if time.monotonic() - last > self.stream_timeout:
                    raise TimeoutError(f'no sample from any source for {self.stream_timeout:g} '
                                       f's; sources: {self.dataset.stats()}')
                continue
            last = time.monotonic()
            ns = sample['namespace']
            if ns in self.silent:
                self.silent.discard(ns)
                tqdm.write(f'source {ns}: samples again')
            self.last_seen[ns] = last
            self.next_indices[ns] = max(self.next_indices.get(ns, 0),
                                        int(sample['labels']['index']) + 1)
            self.used[ns] += 1
            self.arrivals.append(last)
            out.append(sample)
        self.waited_s += time.monotonic() - t0
        self.arrivals = self.arrivals[-2000:]
        return out

    def rate(self, window_s: float = 20.0) -> float:
        """Return the samples per second taken over the last ``window_s`` seconds."""
        now = time.monotonic()
        recent = [t for t in self.arrivals if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def queued(self) -> int:
        """Return the number of samples waiting in all sources' queues."""
        return sum(s['queued'] for s in self.dataset.stats().values())


def sampler_from_state(state: Mapping) -> SceneSampler:
    """Build a :class:`SceneSampler` holding a state dict's variables and Dirichlet parameters.

    Args:
        state: ``{'variables': {name: {lo, hi, bins, categorical, theta0,
            theta}}}``, as :meth:`SceneSampler.state_dict` or a node's
            ``sampler_state`` (``StreamDataset.sampler_state``) give.
    """
    sampler = SceneSampler([BinnedVariable(n, d['lo'], d['hi'], d['bins'], d['theta0'],
                                           d['categorical'])
                            for n, d in state['variables'].items()])
    sampler.load_state_dict(state)
    return sampler


def feedback_counts(bins: Sequence[Mapping[str, int]], losses: Sequence[float],
                    num_bins: Mapping[str, int], quantile: float
                    ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """Bin counts of the highest-loss validation samples (Heindl et al. 2020, Sec. 3.3).

    Args:
        bins: per validation sample, ``{variable: bin index}`` of the scene
            variables it was rendered with.
        losses: (N,) loss of each sample (higher = worse); NaN never chosen.
        num_bins: ``{variable: K}``, the number of bins of each variable.
        quantile: share (0, 1] of the samples counted, highest loss first
            (``ceil(quantile * N)`` samples, see :func:`.feedback.hardest`).

    Returns:
        (indices of the chosen samples, worst first; ``{variable: (K,)
        float64 counts}``, one count per chosen sample and variable).

    Raises:
        ValueError: ``quantile`` outside (0, 1].
    """
    worst = hardest(np.asarray(losses, dtype=np.float64), quantile)
    counter = SceneSampler([BinnedVariable(n, 0, k, k, categorical=True)
                            for n, k in num_bins.items()])
    return worst, counter.counts_from_bins(bins[i] for i in worst)


def restoring_counts(current: Mapping, target: Mapping) -> Dict[str, np.ndarray]:
    """Feedback counts that move a node's Dirichlet parameters from ``current`` to ``target``.

    Feedback can only add (``alpha += counts``), so a node that has received
    less feedback than the checkpoint can be brought to it, one that has
    received more cannot.

    Args:
        current, target: sampler state dicts (``{'variables': {name:
            {'theta': [...]}}}``).

    Returns:
        ``{variable: (K,) float64 counts >= 0}`` for the variables that differ.

    Raises:
        ValueError: a variable's bin count differs, or ``target`` is below
            ``current`` in some bin (the node is ahead of the checkpoint).
    """
    counts = {}
    for name, var in target['variables'].items():
        if name not in current['variables']:
            continue
        now = np.asarray(current['variables'][name]['theta'], dtype=np.float64)
        want = np.asarray(var['theta'], dtype=np.float64)
        if now.shape != want.shape:
            raise ValueError(f'{name}: {now.size} bins on the node, {want.size} in the checkpoint')
        diff = want - now
        if np.any(diff < -1e-9):
            raise ValueError(f'{name}: the node has more feedback than the checkpoint '
                             f'(alpha {now.tolist()} > {want.tolist()})')
        if np.any(diff > 1e-9):
            counts[name] = np.maximum(diff, 0.0)
    return counts
