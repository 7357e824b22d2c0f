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
"""Generator processes for ``sim-datagen generate`` that end with the process that started them.

Each pool worker holds one :class:`~sim_datagen.generator.SampleGenerator`
(one PyBullet client).  A worker must not outlive the generating process,
however that process ends (``kill -9`` included), so each worker

* asks the Linux kernel for ``SIGTERM`` when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, through ctypes),
* and, on every platform, watches ``os.getppid()`` from a daemon thread
  (every :data:`PARENT_POLL_S` seconds) and sends itself ``SIGTERM`` when
  the parent is gone;

its ``SIGTERM`` handler closes the PyBullet client, removes the worker's
temporary texture folder and exits at once.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import multiprocessing.pool
import os
import signal
import sys
import threading
import time
from typing import Dict, Optional, Tuple

from .config import load_config
from .generator import SampleGenerator
from .writer import encode_sample

#: ``prctl`` option: signal sent to this process when its parent thread dies (linux/prctl.h)
PR_SET_PDEATHSIG = 1
#: seconds between two checks of the parent process id
PARENT_POLL_S = 0.2

#: the worker process's generator and JPEG quality (set by :func:`_init_pool_worker`)
_WORKER: dict = {}


def _request_parent_death_signal(signum: int) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux only)."""
    if not sys.platform.startswith('linux'):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the parent watch below still applies
        pass


def _watch_parent(parent_pid: int) -> None:
    """Send SIGTERM to this process once ``parent_pid`` is no longer its parent."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)


def _close_worker_and_exit(signum, frame) -> None:
    """SIGTERM handler of a pool worker: close its generator, exit with 128 + signum."""
    generator = _WORKER.pop('generator', None)
    if generator is not None:
        try:
            generator.world.close()
        except Exception:  # noqa: B902 - exiting anyway; nothing to report to
            pass
    os._exit(128 + int(signum))


def bind_to_parent(parent_pid: int) -> None:
    """End this process (via SIGTERM) when the process ``parent_pid`` ends.

    Installs the SIGTERM handler, requests the parent-death signal and
    starts the parent watch (see the module docstring).  A parent that is
    already gone ends this process at once.
    """
    signal.signal(signal.SIGTERM, _close_worker_and_exit)
    _request_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent_pid:  # died before the request above took effect
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name='parent-watch').start()


def _jpeg_quality(cfg: dict) -> int:
    """JPEG quality of the stored images (``outputs.jpeg_quality``, default 95)."""
    return int(cfg.get('outputs', {}).get('jpeg_quality', 95))


def make_generator(config_path: str, sampler_state: Optional[dict]) -> Tuple[SampleGenerator,
                                                                             int]:
    """Build a generator from a config (and an optional sampler state_dict).

    Returns:
        ``(generator, JPEG quality of the stored images)``.

    Raises:
        ConfigError: a bad config (see :func:`sim_datagen.config.load_config`).
        ValueError: a sampler state whose bins do not match the config.
    """
    cfg = load_config(config_path)
    generator = SampleGenerator(cfg)
    if sampler_state:
        try:
            generator.sampler.load_state_dict(sampler_state)
        except BaseException:
            generator.world.close()
            raise
    return generator, _jpeg_quality(cfg)


def generate_encoded(generator: SampleGenerator, jpeg_quality: int, index: int, seed: int
                     ) -> Tuple[int, str, Dict[str, bytes], dict, dict]:
    """Generate sample ``index`` of run ``seed`` and encode it into tar members.

    Returns:
        ``(index, key, {suffix: bytes}, wall seconds per stage, CPU seconds per stage)``.
    """
    sample = generator.generate(index, seed)
    t, c = time.perf_counter(), time.process_time()
    members = encode_sample(sample, jpeg_quality)
    sample['timing']['encode'] = time.perf_counter() - t
    sample['cpu_timing']['encode'] = time.process_time() - c
    return index, sample['key'], members, sample['timing'], sample['cpu_timing']


def _init_pool_worker(config_path: str, sampler_state: Optional[dict], parent_pid: int) -> None:
    """Pool initializer: bind to the parent, then build this process's generator."""
    bind_to_parent(parent_pid)
    _WORKER['generator'], _WORKER['jpeg_quality'] = make_generator(config_path, sampler_state)


def _pool_job(job: Tuple[int, int]):
    """Pool task: ``(index, seed)`` -> :func:`generate_encoded` of this worker."""
    index, seed = job
    return generate_encoded(_WORKER['generator'], _WORKER['jpeg_quality'], index, seed)


def start_pool(workers: int, config_path: str, sampler_state: Optional[dict]
               ) -> multiprocessing.pool.Pool:
    """Start ``workers`` spawned generator processes bound to this process's life.

    Check the config in this process first (:func:`make_generator`): an
    initializer that fails makes a pool restart its workers forever.
    """
    context = mp.get_context('spawn')
    return context.Pool(workers, initializer=_init_pool_worker,
                        initargs=(config_path, sampler_state, os.getpid()))


def pool_results(pool: multiprocessing.pool.Pool, jobs, chunksize: int = 2):
    """Iterate over :func:`generate_encoded` results of ``jobs`` (``(index, seed)``), in order."""
    return pool.imap(_pool_job, jobs, chunksize=chunksize)
