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
"""View packs: training views at network resolution in one compact file.

A ``sim_datagen`` dataset stores full-resolution stereo JPEGs (about 130 kB
per pair).  Training only ever sees the views resized to the network input
(:class:`~.data.ViewSet`), so a pack stores exactly that: every view
re-encoded as WebP at the input size (about 5 kB at quality 85), its labels,
and whether it came from a validation shard.  A pack lets a machine without
PyBullet (a rented GPU, say) train on data rendered elsewhere::

    keypoints-pack --data data/sim/checkerboard_train --out output/packs/cb.npz
    keypoints-train --data output/packs/cb.npz --device cuda --workers 12 ...

``keypoints-train --data`` takes packs (files ending in ``.npz``) and dataset
folders alike.  The file is written to a temporary name and renamed, so an
interrupted run never leaves a partial pack.
"""

import argparse
import os
from typing import List, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..cli import (ArgumentParser, checked_input, command_line, InputError, non_negative_int,
                   positive_int)
from ..core.checkpoint import load_checkpoint, resolve_model_path
from ..core.dataset import list_shards
from ..core.files import atomic_open
from .data import is_validation_shard, load_shard_views, ViewSet

PACK_FORMAT = 'keypoint_perception/view-pack-v1'


def encode_views(images: np.ndarray, quality: int) -> Tuple[np.ndarray, np.ndarray]:
    """WebP-encode RGB views into one byte buffer.

    Args:
        images: (N, h, w, 3) uint8 RGB.
        quality: WebP quality in [1, 100] (101 = lossless).

    Returns:
        (buffer, offsets): (B,) uint8 concatenated encodings and (N + 1,)
        int64 offsets, view ``i`` being ``buffer[offsets[i]:offsets[i + 1]]``.

    Raises:
        RuntimeError: if OpenCV cannot encode WebP.
    """
    chunks = []
    for img in images:
        ok, buf = cv2.imencode('.webp', np.ascontiguousarray(img[:, :, ::-1]),
                               [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError('OpenCV could not encode a view as WebP')
        chunks.append(buf.reshape(-1))
    offsets = np.zeros(len(chunks) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    buffer = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return buffer, offsets


def decode_views(buffer: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_views`: (N, h, w, 3) uint8 RGB.

    Raises:
        ValueError: if a view does not decode or the views differ in size.
    """
    images = []
    for i in range(len(offsets) - 1):
        img = cv2.imdecode(buffer[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f'view {i} of the pack does not decode')
        images.append(img[:, :, ::-1])
    if len({im.shape for im in images}) > 1:
        raise ValueError('views of a pack must all have the same size')
    return np.stack(images)


def save_view_pack(path: str, views: ViewSet, validation: np.ndarray, quality: int = 85,
                   object_class: str = '') -> int:
    """Write ``views`` to ``path`` (``.npz``), atomically.

    Args:
        path: output file; parent folders are created.
        views: the views (images at network input size).
        validation: (N,) bool, True for views held out for model selection.
        quality: WebP quality of the images.
        object_class: class name recorded in the pack.

    Returns:
        The size of the file in bytes.

    Raises:
        ValueError: if ``validation`` does not have one entry per view.
    """
    validation = np.asarray(validation, bool)
    if validation.shape != (len(views),):
        raise ValueError(f'validation flags have shape {validation.shape}, '
                         f'expected ({len(views)},)')
    buffer, offsets = encode_views(views.images, quality)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path, 'wb') as f:
        np.savez(f, format=np.array(PACK_FORMAT), object_class=np.array(object_class),
                 image_bytes=buffer, image_offsets=offsets, uv=views.uv,
                 visibility=views.visibility, scale=views.scale, diagonal=views.diagonal,
                 validation=validation)
    return os.path.getsize(path)


def load_view_pack(path: str) -> Tuple[ViewSet, ViewSet]:
    """Read a pack written by :func:`save_view_pack`: (training, validation) views.

    Raises:
        ValueError: if the file is not a view pack.
    """
    with np.load(path, allow_pickle=False) as z:  # a pack never runs code from the file
        if 'format' not in z or str(z['format']) != PACK_FORMAT:
            raise ValueError(f'{path} is not a {PACK_FORMAT} file')
        images = decode_views(z['image_bytes'], z['image_offsets'])
        views = ViewSet(images, z['uv'], z['visibility'], z['scale'], z['diagonal'])
        val = z['validation']

    def subset(mask):
        return ViewSet(*(getattr(views, f)[mask] for f in
                         ('images', 'uv', 'visibility', 'scale', 'diagonal')))
    return subset(~val), subset(val)


def pack_datasets(dataset_dirs: Sequence[str], input_size: Tuple[int, int], is_validation,
                  max_shards: int = 0) -> Tuple[ViewSet, np.ndarray]:
    """Load the shards of ``dataset_dirs`` into one view set with validation flags.

    Args:
        dataset_dirs: ``sim_datagen`` dataset folders or single shards (``.tar``).
        input_size: (width, height) of the network input.
        is_validation: ``is_validation(shard_path) -> bool``.
        max_shards: keep at most this many shards per folder (0 = all).

    Returns:
        The views and (N,) bool validation flags.  When no shard is a
        validation shard, the last one is held out, as ``keypoints-train``
        does for small datasets.

    Raises:
        FileNotFoundError: if the folders hold no shard.
    """
    sets: List[ViewSet] = []
    flags = []
    shards = []
    for d in dataset_dirs:
        found = [d] if d.endswith('.tar') else list_shards(d)
        shards += found[:max_shards] if max_shards else found
    for p in tqdm(shards, desc='pack', unit='shard'):
        v = load_shard_views(p, input_size)
        sets.append(v)
        flags.append(np.full(len(v), bool(is_validation(p))))
    if not sets:
        raise FileNotFoundError(f'no shards in {list(dataset_dirs)}')
    if len(flags) > 1 and not any(f.any() for f in flags):
        flags[-1][:] = True
    return ViewSet.concatenate(sets), np.concatenate(flags)


def _webp_quality(text: str) -> int:
    """Argparse type: a WebP quality in [1, 101]."""
    value = positive_int(text)
    if value > 101:
        raise argparse.ArgumentTypeError(f'must be in [1, 101], got {value}')
    return value


@command_line('keypoints-pack')
def main(argv=None):
    """Command-line entry point ``keypoints-pack``."""
    p = ArgumentParser(prog='keypoints-pack', description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', nargs='+', required=True,
                   help='sim_datagen dataset folders or shard files')
    p.add_argument('--out', required=True, help='pack file (.npz)')
    p.add_argument('--model', default='checkerboard_lite',
                   help='model whose input size the views are resized to')
    p.add_argument('--quality', type=_webp_quality, default=85,
                   help='WebP quality in [1, 101] (101 = lossless)')
    p.add_argument('--max-shards', type=non_negative_int, default=0, help='per folder (0 = all)')
    args = p.parse_args(argv)
    if not args.out.endswith('.npz'):
        p.error('--out must end in .npz')
    for entry in args.data:
        if not os.path.exists(entry):
            raise InputError(f'--data {entry}: no such folder or shard')
    if not any(entry.endswith('.tar') or list_shards(entry) for entry in args.data):
        raise InputError(f'--data {" ".join(args.data)}: no shards (shard-*.tar) to pack')
    with checked_input(f'--model {args.model}'):
        model, oc, _ = load_checkpoint(resolve_model_path(args.model))
    cfg = model.config
    try:
        views, val = pack_datasets(args.data, (cfg.input_width, cfg.input_height),
                                   is_validation_shard, args.max_shards)
    except FileNotFoundError as e:  # no shards in the folders
        raise InputError(f'--data {" ".join(args.data)}: {e}') from e
    size = save_view_pack(args.out, views, val, args.quality, oc.name)
    print(f'{args.out}: {len(views)} views ({int(val.sum())} validation), '
          f'{cfg.input_width}x{cfg.input_height}, {size / 2**20:.1f} MiB')


if __name__ == '__main__':
    raise SystemExit(main())
