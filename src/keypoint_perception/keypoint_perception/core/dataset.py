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
"""The on-disk dataset format: reading sharded stereo datasets (no ROS, no PyBullet).

A dataset folder holds ``meta.json`` and ``shard-NNNNNN.tar`` files written by
:mod:`sim_datagen.writer`; each sample of a shard is a group of tar members
sharing a key: ``<key>.json`` (labels), ``<key>.left.jpg``/``<key>.right.jpg``
and optionally ``<key>.depth.png``/``<key>.seg.png``.  The format is part of
the core so that the simulator (which writes it) and training (which reads
it) both depend on the core and not on each other.

Example::

    from keypoint_perception.core.dataset import iter_samples
    for s in iter_samples('/data/checkerboard_sim'):
        s['left']            # (H, W, 3) uint8 RGB
        s['kp2d_left']       # (J, 2) float32 px, OpenCV convention
        s['vis_left']        # (J,) int64 COCO visibility 0/1/2
"""

from __future__ import annotations

import glob
import json
import os
import tarfile
from typing import Dict, Iterator, List, Tuple

import cv2
import numpy as np

from .camera import CameraModel


def list_shards(dataset_dir: str) -> List[str]:
    """Complete shards (``shard-*.tar``; ``.tmp`` leftovers are ignored), sorted."""
    return sorted(glob.glob(os.path.join(dataset_dir, 'shard-*.tar')))


def read_meta(dataset_dir: str) -> dict:
    """Contents of ``meta.json``."""
    with open(os.path.join(dataset_dir, 'meta.json')) as f:
        return json.load(f)


def _decode(members: Dict[str, bytes], decode_images: bool) -> dict:
    labels = json.loads(members['json'])
    s = {'labels': labels}
    for n in ('left', 'right'):
        s[f'kp2d_{n}'] = np.asarray(labels['keypoints_2d'][n], np.float32)
        s[f'vis_{n}'] = np.asarray(labels['visibility'][n], np.int64)
        ci = labels['camera_info'][n]
        s[f'K_{n}'] = np.asarray(ci['K'], np.float64).reshape(3, 3)
        s[f'P_{n}'] = np.asarray(ci['P'], np.float64).reshape(3, 4)
        s[f'D_{n}'] = np.asarray(ci['D'], np.float64)
        if decode_images and f'{n}.jpg' in members:
            im = cv2.imdecode(np.frombuffer(members[f'{n}.jpg'], np.uint8), cv2.IMREAD_COLOR)
            s[n] = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
    s['kp3d'] = np.asarray(labels['keypoints_3d'], np.float32)
    s['pose'] = np.asarray(labels['object_pose'], np.float64)
    s['baseline'] = float(labels['baseline'])
    if decode_images:
        if 'depth.png' in members:
            s['depth'] = cv2.imdecode(np.frombuffer(members['depth.png'], np.uint8),
                                      cv2.IMREAD_UNCHANGED)
        if 'seg.png' in members:
            s['seg'] = cv2.imdecode(np.frombuffer(members['seg.png'], np.uint8),
                                    cv2.IMREAD_UNCHANGED)
    return s


def iter_raw(path: str, suffixes=None) -> Iterator[Tuple[str, Dict[str, bytes]]]:
    """Yield ``(key, {suffix: bytes})`` for each sample of a shard, undecoded.

    Args:
        path: shard file.
        suffixes: if given, only members with these suffixes (e.g. ``{'json'}``)
            are read.
    """
    with tarfile.open(path, 'r') as tar:
        key, members = None, {}
        for info in tar:
            if not info.isfile():
                continue
            k, _, suffix = info.name.partition('.')
            if k != key and members:
                yield key, members
                members = {}
            key = k
            if suffixes is None or suffix in suffixes:
                members[suffix] = tar.extractfile(info).read()
        if members:
            yield key, members


def iter_shard(path: str, decode_images: bool = True) -> Iterator[dict]:
    """Yield the samples of one shard in stored order (see :func:`iter_samples`)."""
    for key, members in iter_raw(path, None if decode_images else {'json'}):
        yield dict(key=key, **_decode(members, decode_images))


def iter_samples(dataset_dir: str, decode_images: bool = True) -> Iterator[dict]:
    """Yield every sample of a dataset directory.

    Each sample is a dict with ``key`` (str), ``labels`` (the raw JSON dict),
    ``left``/``right`` (H, W, 3) uint8 RGB (if ``decode_images``),
    ``kp2d_left``/``kp2d_right`` (J, 2) float32 pixels (pixel centres at
    integer coordinates), ``vis_left``/``vis_right`` (J,) int64 (0 outside,
    1 occluded, 2 visible), ``kp3d`` (J, 3) float32 m in the left optical
    frame, ``pose`` (4, 4) board pose in the left optical frame,
    ``K_*`` (3, 3), ``P_*`` (3, 4), ``D_*`` (5,), ``baseline`` (m), and
    optionally ``depth`` (H, W) uint16 mm / ``seg`` (H, W) uint8.
    """
    for path in list_shards(dataset_dir):
        yield from iter_shard(path, decode_images)


def camera_model_from_label(camera_info: dict) -> CameraModel:
    """Build the :class:`~.camera.CameraModel` of one view's ``camera_info`` label.

    Args:
        camera_info: the label's CameraInfo fields (``sensor_msgs/CameraInfo``
            names): ``width``, ``height`` (px), ``K`` (9,) or (3, 3), ``P``
            (12,) or (3, 4), and optional ``D`` (default zeros),
            ``distortion_model`` (default ``plumb_bob``), ``R`` (default
            identity), ``frame_id``.  Early datasets stored plumb_bob ``D``
            as (k1, k2) only; the missing coefficients are zero.

    Returns:
        a new CameraModel (raw image: ``K``, ``D``, ``R``, ``P`` as given).

    Raises:
        KeyError: ``width``, ``height``, ``K`` or ``P`` is missing.
        CalibrationError: a calibration the camera model refuses.
    """
    model = camera_info.get('distortion_model', 'plumb_bob')
    distortion = np.asarray(camera_info.get('D', np.zeros(5)), dtype=np.float64)
    if model == 'plumb_bob' and 0 < distortion.size < 5:
        distortion = np.pad(distortion, (0, 5 - distortion.size))
    return CameraModel(int(camera_info['width']), int(camera_info['height']),
                       np.reshape(camera_info['K'], (3, 3)), distortion, model,
                       np.reshape(camera_info.get('R', np.eye(3)), (3, 3)),
                       np.reshape(camera_info['P'], (3, 4)), camera_info.get('frame_id', ''))
