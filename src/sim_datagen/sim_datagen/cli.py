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
and regenerated.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import multiprocessing as mp
import os
import sys
import time
from typing import Optional

import numpy as np
from tqdm import tqdm

from .coco import export_coco
from .config import load_config, resolve_config
from .generator import SampleGenerator
from .preview import contact_sheet, variable_histograms
from .randomization import SceneSampler
from .writer import encode_sample, shard_path, ShardWriter, write_meta

_WORKER = {}


def _init_worker(config_path: str, sampler_state: Optional[dict]):
    # one PyBullet client per process, created lazily here
    cfg = load_config(config_path)
    if 'gen' in _WORKER:  # in-process re-use (workers=1 called twice)
        _WORKER.pop('gen').world.close()
    gen = SampleGenerator(cfg)
    if sampler_state:
        gen.sampler.load_state_dict(sampler_state)
    _WORKER['gen'] = gen
    _WORKER['jpeg'] = int(cfg.get('outputs', {}).get('jpeg_quality', 95))


def _work(args):
    index, seed = args
    gen = _WORKER['gen']
    s = gen.generate(index, seed)
    t, c = time.perf_counter(), time.process_time()
    members = encode_sample(s, _WORKER['jpeg'])
    s['timing']['encode'] = time.perf_counter() - t
    s['cpu_timing']['encode'] = time.process_time() - c
    return index, s['key'], members, s['timing'], s['cpu_timing']


def _complete_shards(out: str, n_shards: int):
    return {k for k in range(n_shards) if os.path.isfile(shard_path(out, k))}


def cmd_generate(a) -> int:
    cfg = load_config(a.config)
    os.makedirs(a.out, exist_ok=True)
    sampler = SceneSampler.from_config(cfg['variables'])
    state = None
    if a.sampler_state:
        with open(a.sampler_state) as f:
            state = json.load(f)
        state = state.get('sampler_state', state)
        sampler.load_state_dict(state)
    meta_path = os.path.join(a.out, 'meta.json')
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            old = json.load(f)
        for k, new in (('seed', a.seed), ('shard_size', a.shard_size)):
            if old.get(k) != new:
                print(f'error: {a.out} was generated with {k}={old.get(k)}, not {new}',
                      file=sys.stderr)
                return 2
    for tmp in glob.glob(os.path.join(a.out, 'shard-*.tar.tmp')):
        os.remove(tmp)  # interrupted shard of a previous run
    n_shards = math.ceil(a.count / a.shard_size)
    done = _complete_shards(a.out, n_shards)
    todo_shards = [k for k in range(n_shards) if k not in done]
    od = cfg['object_def']
    meta = {
        'format': 'sim_datagen/webdataset-v1', 'object_class': od.get('name'),
        'object_yaml': cfg['object_yaml'], 'object_def': od,
        'keypoint_names': [k['name'] for k in od['keypoints']],
        'skeleton': od.get('skeleton', []), 'symmetries': od.get('symmetries', []),
        'image_size': [cfg['image']['width'], cfg['image']['height']],
        'count': a.count, 'seed': a.seed, 'shard_size': a.shard_size,
        'config': {k: v for k, v in cfg.items() if k not in ('object_def',)},
        'config_path': os.path.abspath(resolve_config(a.config)),
        'sampler_state': sampler.state_dict(),
        'members': ['left.jpg', 'right.jpg', 'json']
        + (['depth.png'] if cfg.get('outputs', {}).get('depth') else [])
        + (['seg.png'] if cfg.get('outputs', {}).get('segmentation') else []),
    }
    write_meta(a.out, meta)
    jobs = [(i, a.seed) for k in todo_shards
            for i in range(k * a.shard_size, min((k + 1) * a.shard_size, a.count))]
    print(f'{len(done)} of {n_shards} shards complete, generating {len(jobs)} samples '
          f'with {a.workers} worker(s)', file=sys.stderr)
    totals, cpu_totals, n_timed = {}, {}, 0
    if a.workers <= 1:
        _init_worker(a.config, state)
        results = map(_work, jobs)
        pool = None
    else:
        ctx = mp.get_context('spawn')
        pool = ctx.Pool(a.workers, initializer=_init_worker, initargs=(a.config, state))
        results = pool.imap(_work, jobs, chunksize=2)
    writer, cur = None, None
    t_start = time.perf_counter()
    try:
        with tqdm(total=len(jobs), unit='sample', dynamic_ncols=True) as bar:
            for index, key, members, timing, cpu in results:
                shard = index // a.shard_size
                if shard != cur:
                    if writer is not None:
                        writer.close()
                    writer, cur = ShardWriter(a.out, shard), shard
                t, c = time.perf_counter(), time.process_time()
                writer.write(key, members)
                end = min((shard + 1) * a.shard_size, a.count)
                if index == end - 1:
                    writer.close()
                    writer, cur = None, None
                timing['write'] = time.perf_counter() - t
                cpu['write'] = time.process_time() - c
                for k, v in timing.items():
                    totals[k] = totals.get(k, 0.0) + v
                for k, v in cpu.items():
                    cpu_totals[k] = cpu_totals.get(k, 0.0) + v
                n_timed += 1
                bar.update(1)
    except BaseException:
        if writer is not None:
            writer.abort()
        if pool is not None:
            pool.terminate()
        raise
    if pool is not None:
        pool.close()
        pool.join()
    wall = time.perf_counter() - t_start
    if n_timed:
        ms = {k: round(1000 * v / n_timed, 1) for k, v in totals.items()}
        ms['total'] = round(sum(totals.values()) * 1000 / n_timed, 1)
        ms['wall_per_sample_all_workers'] = round(1000 * wall / n_timed, 1)
        cms = {k: round(1000 * v / n_timed, 1) for k, v in cpu_totals.items()}
        cms['total'] = round(sum(cpu_totals.values()) * 1000 / n_timed, 1)
        print('mean wall ms per stereo sample per worker:', json.dumps(ms), file=sys.stderr)
        print('mean CPU ms per stereo sample (write: main process):', json.dumps(cms),
              file=sys.stderr)
        meta['timing_ms'] = ms
        meta['cpu_timing_ms'] = cms
        meta['workers'] = a.workers
        write_meta(a.out, meta)
    return 0


def cmd_preview(a) -> int:
    n = contact_sheet(a.data, a.out, a.count, a.cols, a.tile_width)
    hist = a.hist or os.path.splitext(a.out)[0] + '_hist.png'
    m = variable_histograms(a.data, hist)
    print(f'wrote {a.out} ({n} samples) and {hist} ({m} samples)', file=sys.stderr)
    return 0


def cmd_export_coco(a) -> int:
    images_dir = a.images_dir or os.path.join(os.path.dirname(os.path.abspath(a.out)), 'images')
    coco = export_coco(a.data, a.out, images_dir, a.views, a.bbox_margin,
                       write_images=not a.no_images)
    where = '' if a.no_images else f' (JPEGs in {images_dir})'
    print(f'wrote {a.out}: {len(coco["images"])} images, {len(coco["annotations"])} '
          f'keypoint annotations{where}', file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog='sim-datagen', description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    g = sub.add_parser('generate', help='render a dataset of tar shards')
    g.add_argument('--config', required=True,
                   help='generator config YAML, or a name in the package config folder '
                        '(e.g. checkerboard)')
    g.add_argument('--count', type=int, required=True, help='number of stereo samples')
    g.add_argument('--out', required=True, help='dataset directory')
    g.add_argument('--workers', type=int, default=1, help='processes (one PyBullet each)')
    g.add_argument('--seed', type=int, default=0)
    g.add_argument('--shard-size', type=int, default=100)
    g.add_argument('--sampler-state', default=None,
                   help='JSON with a SceneSampler state_dict (e.g. after feedback updates)')
    g.set_defaults(func=cmd_generate)
    pv = sub.add_parser('preview', help='contact sheet + variable histograms')
    pv.add_argument('--data', required=True)
    pv.add_argument('--out', required=True,
                    help='contact sheet image (.png, or .jpg at quality 85)')
    pv.add_argument('--count', type=int, default=16)
    pv.add_argument('--cols', type=int, default=4)
    pv.add_argument('--tile-width', type=int, default=320, help='px per view in the sheet')
    pv.add_argument('--hist', default=None, help='histogram PNG (default: <out>_hist.png)')
    pv.set_defaults(func=cmd_preview)
    ex = sub.add_parser('export-coco', help='COCO keypoints annotations + extracted JPEGs')
    ex.add_argument('--data', required=True, help='dataset directory')
    ex.add_argument('--out', required=True, help='annotations JSON to write')
    ex.add_argument('--images-dir', default=None,
                    help='folder for the JPEGs (default: <folder of --out>/images)')
    ex.add_argument('--views', nargs='+', default=['left', 'right'], choices=['left', 'right'],
                    help='views exported as images (default: both)')
    ex.add_argument('--bbox-margin', type=float, default=0.0,
                    help='keypoint boxes grow by this fraction of their size per side')
    ex.add_argument('--no-images', action='store_true', help='write the JSON only')
    ex.set_defaults(func=cmd_export_coco)
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    np.seterr(all='ignore')
    return a.func(a)


if __name__ == '__main__':
    sys.exit(main())
