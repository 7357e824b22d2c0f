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
"""WebDataset-style tar shards, written atomically.

Layout of a dataset directory::

    meta.json               class, image size, keypoint names, config, sampler state
    shard-000000.tar        samples 0 .. shard_size-1
    shard-000001.tar        ...

Each sample ``key`` (9-digit zero-padded sample index) has the members
``{key}.left.jpg`` and ``{key}.right.jpg`` (RGB JPEG), ``{key}.json``
(labels, see :mod:`sim_datagen.generator`) and optionally
``{key}.depth.png`` (uint16, mm, left view, 0 = no geometry) and
``{key}.seg.png`` (uint8 instance classes, left view).

A shard is written to ``shard-XXXXXX.tar.tmp`` and renamed with
``os.replace`` when complete, so an interrupted run never leaves a broken
``.tar``; leftover ``.tmp`` files are ignored by readers and deleted on
resume.

Shards are reproducible: the tar headers hold no write time, owner or
permissions of the writing process (mtime 0, uid/gid 0, no user or group
name, mode 0644, ustar format) and a sample's members are stored in a fixed
order (:data:`MEMBER_ORDER`), so the same samples give byte-identical
shard files.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from typing import Dict, Optional

import cv2
from keypoint_perception.core.files import atomic_open
import numpy as np

SHARD_FMT = 'shard-{:06d}.tar'
#: order of a sample's members in a shard (others follow, sorted by name)
MEMBER_ORDER = ('left.jpg', 'right.jpg', 'depth.png', 'seg.png', 'json')


def shard_path(out_dir: str, shard: int) -> str:
    """Return the final path of shard number ``shard``."""
    return os.path.join(out_dir, SHARD_FMT.format(shard))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def encode_sample(sample: dict, jpeg_quality: int = 95) -> Dict[str, bytes]:
    """Encode a generated sample into tar members ``{suffix: bytes}``.

    ``sample['left'/'right']`` are (H, W, 3) uint8 RGB; ``depth`` (H, W)
    uint16 and ``seg`` (H, W) uint8 are optional.
    """
    out = {}
    q = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    for n in ('left', 'right'):
        ok, buf = cv2.imencode('.jpg', cv2.cvtColor(sample[n], cv2.COLOR_RGB2BGR), q)
        if not ok:
            raise RuntimeError('JPEG encoding failed')
        out[f'{n}.jpg'] = buf.tobytes()
    for n in ('depth', 'seg'):
        if sample.get(n) is not None:
            ok, buf = cv2.imencode('.png', sample[n])
            out[f'{n}.png'] = buf.tobytes()
    out['json'] = json.dumps(sample['labels'], default=_json_default).encode()
    return out


class ShardWriter:
    """Writes one shard to ``.tmp`` and publishes it atomically on :meth:`close`."""

    def __init__(self, out_dir: str, shard: int):
        self.final = shard_path(out_dir, shard)
        self.tmp = self.final + '.tmp'
        self._tar: Optional[tarfile.TarFile] = tarfile.open(self.tmp, 'w',
                                                            format=tarfile.USTAR_FORMAT)
        self.count = 0

    def write(self, key: str, members: Dict[str, bytes]) -> None:
        """Append the members of sample ``key`` (``{suffix: bytes}``).

        Members are stored in :data:`MEMBER_ORDER`, with fixed headers (see
        the module docstring).
        """
        rank = {suffix: i for i, suffix in enumerate(MEMBER_ORDER)}
        for suffix in sorted(members, key=lambda s: (rank.get(s, len(rank)), s)):
            data = members[suffix]
            info = tarfile.TarInfo(f'{key}.{suffix}')
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ''
            self._tar.addfile(info, io.BytesIO(data))
        self.count += 1

    def close(self) -> str:
        """Flush, fsync and rename ``.tmp`` to the final name. Returns the path."""
        self._tar.close()
        self._tar = None
        with open(self.tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        """Drop the partial shard."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def write_meta(out_dir: str, meta: dict) -> None:
    """Write ``meta.json`` atomically."""
    with atomic_open(os.path.join(out_dir, 'meta.json')) as f:
        json.dump(meta, f, indent=1, default=_json_default)
