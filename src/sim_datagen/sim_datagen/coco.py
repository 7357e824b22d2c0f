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
"""Export a sim_datagen dataset as COCO keypoints annotations (no ROS, no PyBullet).

Every view of every sample becomes one COCO image (the stored JPEG, copied
as ``<images-dir>/<key>_<view>.jpg``) with one annotation of the object:

* ``keypoints``: ``[x1, y1, v1, ..., xJ, yJ, vJ]`` in the class's keypoint
  order; ``v`` is the dataset's visibility, which already follows COCO
  (0 outside the image / not labelled, 1 occluded, 2 visible); ``x = y = 0``
  when ``v = 0`` as COCO requires.  Coordinates are the dataset's pixel
  coordinates (pixel centres at integer values, as COCO keypoints), the
  distorted projections when the sample's camera has lens distortion (the
  image is distorted too).
* ``num_keypoints``: number of keypoints with ``v > 0``.
* ``bbox`` ``[x, y, width, height]`` (pixels): from the object's pixels of
  the segmentation when the dataset has it for that view (``seg.png``,
  left view, value 1 = object), otherwise the box around the keypoints with
  ``v > 0`` enlarged by ``bbox_margin`` of its size on each side and clipped
  to the image; ``area`` is the mask's pixel count or the box area.
* Views where the object has no labelled keypoint and no mask pixel get no
  annotation (the image is still listed).

``categories`` holds the one object class with its keypoint names and the
skeleton converted to COCO's 1-based keypoint indices.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import List, Optional, Sequence, Tuple

import cv2
from keypoint_perception.core.dataset import iter_raw, list_shards, read_meta
from keypoint_perception.core.files import atomic_open
import numpy as np

#: segmentation value of the labelled object (sim_datagen.labels.SEG_BOARD)
SEG_OBJECT = 1


def skeleton_1based(skeleton: Sequence, names: Sequence[str]) -> List[List[int]]:
    """COCO skeleton: pairs of 1-based keypoint indices.

    ``skeleton`` holds pairs of 0-based indices (the object YAML format) or
    of keypoint names.
    """
    out = []
    for a, b in skeleton:
        ia = names.index(a) if isinstance(a, str) else int(a)
        ib = names.index(b) if isinstance(b, str) else int(b)
        for i in (ia, ib):
            if not 0 <= i < len(names):
                raise ValueError(f'skeleton edge {(a, b)}: index {i} out of range')
        out.append([ia + 1, ib + 1])
    return out


def coco_keypoints(uv: np.ndarray, vis: np.ndarray) -> Tuple[List[float], int]:
    """COCO keypoint triples of (J, 2) pixels and (J,) visibility 0/1/2.

    Returns:
        ``([x1, y1, v1, ...], num_keypoints)`` with ``x = y = 0`` where
        ``v = 0``.
    """
    out = []
    for (x, y), v in zip(np.asarray(uv, np.float64), np.asarray(vis, np.int64)):
        v = int(v)
        if v not in (0, 1, 2):
            raise ValueError(f'visibility {v} is not a COCO value')
        out += [float(x), float(y), v] if v > 0 else [0.0, 0.0, 0]
    return out, int(np.count_nonzero(np.asarray(vis) > 0))


def keypoint_bbox(uv: np.ndarray, vis: np.ndarray, width: int, height: int,
                  margin: float = 0.0) -> Optional[List[float]]:
    """``[x, y, w, h]`` around the labelled keypoints (pixels), or None if there are none."""
    pts = np.asarray(uv, np.float64)[np.asarray(vis) > 0]
    if len(pts) == 0:
        return None
    lo, hi = pts.min(0), pts.max(0)
    pad = margin * (hi - lo)
    lo = np.maximum(lo - pad, 0.0)
    hi = np.minimum(hi + pad, [width, height])
    return [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]


def mask_bbox(mask: np.ndarray) -> Optional[Tuple[List[float], int]]:
    """``([x, y, w, h], area)`` of a boolean (H, W) mask (pixels), or None when empty."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return None
    c0, c1, r0, r1 = cols.min(), cols.max(), rows.min(), rows.max()
    return [float(c0), float(r0), float(c1 - c0 + 1), float(r1 - r0 + 1)], int(len(rows))


def export_coco(data_dir: str, out_json: str, images_dir: Optional[str] = None,
                views: Sequence[str] = ('left', 'right'), bbox_margin: float = 0.0,
                write_images: bool = True) -> dict:
    """Write COCO keypoints annotations (and the images) of a dataset directory.

    Args:
        data_dir: dataset written by ``sim-datagen generate``.
        out_json: path of the annotations JSON.
        images_dir: folder for the extracted JPEGs (``file_name`` is relative
            to it); default ``<folder of out_json>/images``.
        views: which views become images (``left``, ``right`` or both).
        bbox_margin: keypoint-derived boxes grow by this fraction of their
            size on each side.
        write_images: copy the JPEGs (False: annotations only).

    Returns:
        The COCO dict that was written.
    """
    for v in views:
        if v not in ('left', 'right'):
            raise ValueError(f'unknown view {v!r}')
    meta = read_meta(data_dir)
    names = list(meta['keypoint_names'])
    cls = meta.get('object_class') or 'object'
    images_dir = images_dir or os.path.join(os.path.dirname(os.path.abspath(out_json)),
                                            'images')
    if write_images:
        os.makedirs(images_dir, exist_ok=True)
    images, annotations = [], []
    for shard in list_shards(data_dir):
        for key, members in iter_raw(shard):
            labels = json.loads(members['json'])
            seg = None
            if 'seg.png' in members:
                seg = cv2.imdecode(np.frombuffer(members['seg.png'], np.uint8),
                                   cv2.IMREAD_UNCHANGED)
            for view in views:
                ci = labels['camera_info'][view]
                w, h = int(ci['width']), int(ci['height'])
                image_id = len(images) + 1
                file_name = f'{key}_{view}.jpg'
                images.append({'id': image_id, 'file_name': file_name, 'width': w, 'height': h,
                               'sample_key': key, 'view': view,
                               'frame_id': ci.get('frame_id', '')})
                if write_images:
                    with open(os.path.join(images_dir, file_name), 'wb') as f:
                        f.write(members[f'{view}.jpg'])
                uv = np.asarray(labels['keypoints_2d'][view], np.float64).reshape(-1, 2)
                vis = np.asarray(labels['visibility'][view], np.int64)
                kps, n_kp = coco_keypoints(uv, vis)
                mb = mask_bbox(seg == SEG_OBJECT) if (seg is not None and view == 'left') \
                    else None
                if mb is not None:
                    bbox, area = mb
                else:
                    bbox = keypoint_bbox(uv, vis, w, h, bbox_margin)
                    area = None if bbox is None else bbox[2] * bbox[3]
                if n_kp == 0 and mb is None:
                    continue
                annotations.append({'id': len(annotations) + 1, 'image_id': image_id,
                                    'category_id': 1, 'keypoints': kps, 'num_keypoints': n_kp,
                                    'bbox': bbox, 'area': float(area), 'iscrowd': 0})
    coco = {
        'info': {'description': f'sim_datagen {cls} dataset {os.path.abspath(data_dir)}',
                 'version': '1.0', 'year': datetime.date.today().year,
                 'contributor': 'sim_datagen',
                 'date_created': datetime.datetime.now().isoformat(timespec='seconds')},
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': [{'id': 1, 'name': cls, 'supercategory': cls, 'keypoints': names,
                        'skeleton': skeleton_1based(meta.get('skeleton', []), names)}],
    }
    out_dir = os.path.dirname(os.path.abspath(out_json))
    os.makedirs(out_dir, exist_ok=True)
    with atomic_open(out_json) as f:
        json.dump(coco, f)
    return coco
