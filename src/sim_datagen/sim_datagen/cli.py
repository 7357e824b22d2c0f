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
r"""Command line: ``sim-datagen generate``, ``preview`` and ``export-coco``.

Examples::

    sim-datagen generate --config config/checkerboard.yaml --count 10000 \\
        --out /data/cb_sim --workers 2 --seed 0
    sim-datagen preview --data /data/cb_sim --out sheet.png --count 16
    sim-datagen export-coco --data /data/cb_sim --out /data/cb_coco/annotations.json

Sample ``i`` is generated from a seed derived from ``(seed, i)``, so a
dataset does not depend on ``--workers``.  Re-running the same command
resumes: complete shards are kept, leftover ``.tmp`` shards are discarded
and regenerated.  The same command gives byte-identical shard files.

Bad input (a count or size that is not positive, a config that does not
parse, an unknown object class, a missing dataset) ends the command with
one line naming the input and a non-zero exit status; ``--debug`` shows
the traceback.  Worker processes end with the command, also when it is
killed (see :mod:`sim_datagen.workers`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import signal
import sys
import threading
import time
from typing import Iterator, Optional

from keypoint_perception.cli import ArgumentParser, checked_input, command_line, InputError, \
    non_negative_float, non_negative_int, positive_int
from keypoint_perception.core.scene_sampler import SceneSampler
import numpy as np
from tqdm import tqdm

from .coco import export_coco
from .generator import image_size_choices
from .config import load_config, resolve_config
from .preview import contact_sheet, variable_histograms
from .workers import generate_encoded, make_generator, pool_results, start_pool
from .writer import shard_path, ShardWriter, write_meta

PROG = 'sim-datagen'


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises SystemExit(143) so that clean-up code runs.

    Only in the main thread (elsewhere Python cannot install handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _read_sampler_state(path: str) -> dict:
    """Read a SceneSampler state_dict (or a meta.json holding one) from a JSON file."""
    with open(path) as f:
        state = json.load(f)
    if not isinstance(state, dict):
        raise ValueError('expected a JSON object (a SceneSampler state_dict)')
    return state.get('sampler_state', state)


def _check_resumable(out: str, seed: int, shard_size: int, count: int) -> Optional[int]:
    """Refuse to add to a dataset folder made with another seed, shard size or a larger count.

    Returns:
        the index of a shard the earlier run wrote short (its ``count`` was
        not a multiple of the shard size) and this larger ``count`` must
        write again, whole; None when there is none (or no earlier run).

    Raises:
        InputError: naming ``--out`` and the differing setting.
    """
    meta_path = os.path.join(out, 'meta.json')
    if not os.path.exists(meta_path):
        return None
    with checked_input(f'--out {out}'):
        with open(meta_path) as f:
            old = json.load(f)
    for key, new in (('seed', seed), ('shard_size', shard_size)):
        if old.get(key) != new:
            raise InputError(f'--out {out}: was generated with {key}={old.get(key)}, '
                             f'not {new}; choose another folder')
    old_count = old.get('count')
    if not isinstance(old_count, int) or old_count == count:
        return None
    if old_count > count:
        raise InputError(f'--out {out}: holds {old_count} samples; --count {count} would '
                         'leave shards beyond it in the folder; choose another folder')
    return old_count // shard_size if old_count % shard_size else None


def _dataset_meta(cfg: dict, a, sampler: SceneSampler) -> dict:
    """Return the dataset's ``meta.json`` (class, keypoints, image size, run settings, sampler)."""
    od = cfg['object_def']
    outputs = cfg.get('outputs', {})
    return {
        'format': 'sim_datagen/webdataset-v1', 'object_class': od.get('name'),
        'object_yaml': cfg['object_yaml'], 'object_def': od,
        'keypoint_names': [k['name'] for k in od['keypoints']],
        'skeleton': od.get('skeleton', []), 'symmetries': od.get('symmetries', []),
        'image_size': [cfg['image']['width'], cfg['image']['height']],
        # per-sample sizes when the config draws them (each sample's CameraInfo has its own)
        'image_sizes': [list(wh) for wh in image_size_choices(cfg) or
                        [(cfg['image']['width'], cfg['image']['height'])]],
        'count': a.count, 'seed': a.seed, 'shard_size': a.shard_size,
        'config': {k: v for k, v in cfg.items() if k not in ('object_def',)},
        'config_path': os.path.abspath(resolve_config(a.config)),
        'sampler_state': sampler.state_dict(),
        'members': ['left.jpg', 'right.jpg', 'json']
        + (['depth.png'] if outputs.get('depth') else [])
        + (['seg.png'] if outputs.get('segmentation') else []),
    }


def _write_shards(results, n_jobs: int, out: str, count: int, shard_size: int):
    """Write encoded samples into their shards; returns (wall totals, CPU totals, samples).

    A shard is published (renamed from ``.tmp``) when its last sample is
    written; any exception aborts the shard being written.
    """
    totals, cpu_totals, n_timed = {}, {}, 0
    writer, current = None, None
    try:
        with tqdm(total=n_jobs, unit='sample', dynamic_ncols=True) as bar:
            for index, key, members, timing, cpu in results:
                shard = index // shard_size
                if shard != current:
                    if writer is not None:
                        writer.close()
                    writer, current = ShardWriter(out, shard), shard
                t, c = time.perf_counter(), time.process_time()
                writer.write(key, members)
                if index == min((shard + 1) * shard_size, count) - 1:
                    writer.close()
                    writer, current = None, None
                timing['write'] = time.perf_counter() - t
                cpu['write'] = time.process_time() - c
                for stage, seconds in timing.items():
                    totals[stage] = totals.get(stage, 0.0) + seconds
                for stage, seconds in cpu.items():
                    cpu_totals[stage] = cpu_totals.get(stage, 0.0) + seconds
                n_timed += 1
                bar.update(1)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return totals, cpu_totals, n_timed


def cmd_generate(a) -> int:
    """``sim-datagen generate``: render ``--count`` samples into tar shards in ``--out``."""
    with checked_input('--config'):
        cfg = load_config(a.config)
        sampler = SceneSampler.from_config(cfg['variables'])
    state = None
    if a.sampler_state:
        with checked_input(f'--sampler-state {a.sampler_state}'):
            state = _read_sampler_state(a.sampler_state)
            sampler.load_state_dict(state)
    with checked_input(f'--out {a.out}'):
        os.makedirs(a.out, exist_ok=True)
    short_shard = _check_resumable(a.out, a.seed, a.shard_size, a.count)
    # the generator of this process: checks the whole config (URDF sources, links,
    # variables) before any worker starts
    with checked_input('--config'):
        generator, jpeg_quality = make_generator(a.config, state)
    for tmp in glob.glob(os.path.join(a.out, 'shard-*.tar.tmp')):
        os.remove(tmp)  # interrupted shard of a previous run
    n_shards = math.ceil(a.count / a.shard_size)
    done = {k for k in range(n_shards) if os.path.isfile(shard_path(a.out, k))} - {short_shard}
    meta = _dataset_meta(cfg, a, sampler)
    write_meta(a.out, meta)
    jobs = [(i, a.seed) for k in range(n_shards) if k not in done
            for i in range(k * a.shard_size, min((k + 1) * a.shard_size, a.count))]
    print(f'{len(done)} of {n_shards} shards complete, generating {len(jobs)} samples '
          f'with {a.workers} worker(s)', file=sys.stderr)
    pool = None
    t_start = time.perf_counter()
    try:
        with _sigterm_raises():
            if a.workers <= 1:
                results = (generate_encoded(generator, jpeg_quality, i, seed) for i, seed in jobs)
            else:
                generator.world.close()
                generator = None
                pool = start_pool(a.workers, a.config, state)
                results = pool_results(pool, jobs)
            totals, cpu_totals, n_timed = _write_shards(results, len(jobs), a.out, a.count,
                                                        a.shard_size)
            if pool is not None:
                pool.close()
                pool.join()
                pool = None
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if generator is not None:
            generator.world.close()
    wall = time.perf_counter() - t_start
    if n_timed:
        ms = {stage: round(1000 * s / n_timed, 1) for stage, s in totals.items()}
        ms['total'] = round(sum(totals.values()) * 1000 / n_timed, 1)
        ms['wall_per_sample_all_workers'] = round(1000 * wall / n_timed, 1)
        cms = {stage: round(1000 * s / n_timed, 1) for stage, s in cpu_totals.items()}
        cms['total'] = round(sum(cpu_totals.values()) * 1000 / n_timed, 1)
        print('mean wall ms per stereo sample per worker:', json.dumps(ms), file=sys.stderr)
        print('mean CPU ms per stereo sample (write: main process):', json.dumps(cms),
              file=sys.stderr)
        meta['timing_ms'] = ms
        meta['cpu_timing_ms'] = cms
        meta['workers'] = a.workers
        write_meta(a.out, meta)
    return 0


def _check_dataset(data: str) -> None:
    """Raise InputError unless ``data`` is a dataset folder (with ``meta.json``)."""
    if not os.path.isfile(os.path.join(data, 'meta.json')):
        raise InputError(f'--data {data}: not a sim_datagen dataset (no meta.json in it)')


def cmd_preview(a) -> int:
    """``sim-datagen preview``: contact sheet and variable histograms of a dataset."""
    _check_dataset(a.data)
    with checked_input(f'--data {a.data}'):
        n = contact_sheet(a.data, a.out, a.count, a.cols, a.tile_width)
        hist = a.hist or os.path.splitext(a.out)[0] + '_hist.png'
        m = variable_histograms(a.data, hist)
    print(f'wrote {a.out} ({n} samples) and {hist} ({m} samples)', file=sys.stderr)
    return 0


def cmd_export_coco(a) -> int:
    """``sim-datagen export-coco``: COCO keypoint annotations (+ JPEGs) of a dataset."""
    _check_dataset(a.data)
    images_dir = a.images_dir or os.path.join(os.path.dirname(os.path.abspath(a.out)), 'images')
    with checked_input(f'--data {a.data}'):
        coco = export_coco(a.data, a.out, images_dir, a.views, a.bbox_margin,
                           write_images=not a.no_images)
    where = '' if a.no_images else f' (JPEGs in {images_dir})'
    print(f'wrote {a.out}: {len(coco["images"])} images, {len(coco["annotations"])} '
          f'keypoint annotations{where}', file=sys.stderr)
    return 0


def build_parser() -> ArgumentParser:
    """Build the ``sim-datagen`` argument parser (subcommands generate, preview, export-coco)."""
    ap = ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    g = sub.add_parser('generate', help='render a dataset of tar shards')
    g.add_argument('--config', required=True,
                   help='generator config YAML, or a name in the package config folder '
                        '(e.g. checkerboard)')
    g.add_argument('--count', type=positive_int, required=True,
                   help='number of stereo samples')
    g.add_argument('--out', required=True, help='dataset directory')
    g.add_argument('--workers', type=positive_int, default=1,
                   help='processes (one PyBullet each)')
    g.add_argument('--seed', type=non_negative_int, default=0)
    g.add_argument('--shard-size', type=positive_int, default=100, help='samples per shard')
    g.add_argument('--sampler-state', default=None,
                   help='JSON with a SceneSampler state_dict (e.g. after feedback updates)')
    g.set_defaults(func=cmd_generate)
    pv = sub.add_parser('preview', help='contact sheet + variable histograms')
    pv.add_argument('--data', required=True)
    pv.add_argument('--out', required=True,
                    help='contact sheet image (.png, or .jpg at quality 85)')
    pv.add_argument('--count', type=positive_int, default=16)
    pv.add_argument('--cols', type=positive_int, default=4)
    pv.add_argument('--tile-width', type=positive_int, default=320,
                    help='px per view in the sheet')
    pv.add_argument('--hist', default=None, help='histogram PNG (default: <out>_hist.png)')
    pv.set_defaults(func=cmd_preview)
    ex = sub.add_parser('export-coco', help='COCO keypoints annotations + extracted JPEGs')
    ex.add_argument('--data', required=True, help='dataset directory')
    ex.add_argument('--out', required=True, help='annotations JSON to write')
    ex.add_argument('--images-dir', default=None,
                    help='folder for the JPEGs (default: <folder of --out>/images)')
    ex.add_argument('--views', nargs='+', default=['left', 'right'], choices=['left', 'right'],
                    help='views exported as images (default: both)')
    ex.add_argument('--bbox-margin', type=non_negative_float, default=0.0,
                    help='keypoint boxes grow by this fraction of their size per side')
    ex.add_argument('--no-images', action='store_true', help='write the JSON only')
    ex.set_defaults(func=cmd_export_coco)
    return ap


@command_line(PROG)
def main(argv: Optional[list] = None) -> int:
    """Run ``sim-datagen``; returns the exit status (see the module docstring)."""
    a = build_parser().parse_args(argv)
    np.seterr(all='ignore')
    return a.func(a)


if __name__ == '__main__':
    sys.exit(main())
