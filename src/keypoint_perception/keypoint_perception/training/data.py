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
"""Training data: synthetic stereo shards -> per-view arrays, augmentation, targets.

Each stereo sample of a ``sim_datagen`` dataset gives two training views (left
and right image with their 2D keypoints and COCO visibility: 0 outside the
image, 1 occluded, 2 visible).  Views are resized once to the network input
size and kept in memory as uint8; augmentation and target rendering happen per
batch.
"""

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np

from ..core.heatmaps import gaussian_targets, image_to_heatmap
from .distractors import paste_distractors


@dataclass
class ViewSet:
    """Training views resized to the network input.

    Attributes:
        images: (N, h, w, 3) uint8 RGB.
        uv: (N, J, 2) float32 keypoints in input pixels.
        visibility: (N, J) uint8 COCO visibility (0 out of view, 1 occluded,
            2 visible).
        scale: (N, 2) float32 original/input pixel ratio (x, y), to express
            errors in original pixels.
        diagonal: (N,) float32 original image diagonal in pixels.
    """

    images: np.ndarray
    uv: np.ndarray
    visibility: np.ndarray
    scale: np.ndarray
    diagonal: np.ndarray

    def __len__(self) -> int:
        """Return the number of views."""
        return len(self.images)

    @staticmethod
    def concatenate(sets: Sequence['ViewSet']) -> 'ViewSet':
        """Stack several sets (all with the same input size and J)."""
        return ViewSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in
                         ('images', 'uv', 'visibility', 'scale', 'diagonal')))


def load_shard_views(shard_path: str, input_size: Tuple[int, int]) -> ViewSet:
    """Decode one shard into a :class:`ViewSet` (left and right views).

    Args:
        shard_path: path of a ``shard-*.tar`` written by ``sim_datagen``.
        input_size: (width, height) of the network input.
    """
    from sim_datagen.dataset_io import iter_shard
    w_in, h_in = input_size
    images, uvs, vis, scales, diags = [], [], [], [], []
    for sample in iter_shard(shard_path):
        for view in ('left', 'right'):
            img = sample[view]
            h0, w0 = img.shape[:2]
            images.append(cv2.resize(img, (w_in, h_in), interpolation=cv2.INTER_AREA))
            uvs.append(image_to_heatmap(sample[f'kp2d_{view}'], (w0, h0), (w_in, h_in)))
            vis.append(sample[f'vis_{view}'])
            scales.append((w0 / w_in, h0 / h_in))
            diags.append(np.hypot(w0, h0))
    return ViewSet(np.stack(images), np.asarray(uvs, np.float32), np.asarray(vis, np.uint8),
                   np.asarray(scales, np.float32), np.asarray(diags, np.float32))


class ShardCache:
    """Loads shards once; :meth:`refresh` picks up shards written since.

    An entry of ``dataset_dirs`` that ends in ``.npz`` is a view pack
    (:mod:`.view_pack`), read once, whose views keep their own
    training/validation split.
    """

    def __init__(self, dataset_dirs: Sequence[str], input_size: Tuple[int, int],
                 is_validation):
        """``is_validation(shard_path) -> bool`` splits train and validation."""
        self.dataset_dirs = list(dataset_dirs)
        self.input_size = input_size
        self.is_validation = is_validation
        self.loaded: Dict[str, ViewSet] = {}
        self.packs: Dict[str, Tuple[ViewSet, ViewSet]] = {}

    def refresh(self) -> int:
        """Load new complete shards and packs; returns how many were added.

        Raises:
            ValueError: if a pack's views are not of ``input_size``.
        """
        from .view_pack import load_view_pack
        is_pack = [d.endswith('.npz') for d in self.dataset_dirs]
        new_packs = [d for d, pack in zip(self.dataset_dirs, is_pack)
                     if pack and d not in self.packs]
        for d in new_packs:
            train, val = load_view_pack(d)
            shape = (train.images if len(train) else val.images).shape[1:3]
            if shape != (self.input_size[1], self.input_size[0]):
                raise ValueError(f'{d} holds {shape[1]}x{shape[0]} views, the model takes '
                                 f'{self.input_size[0]}x{self.input_size[1]}')
            self.packs[d] = (train, val)
        from sim_datagen.dataset_io import list_shards
        new = [p for d, pack in zip(self.dataset_dirs, is_pack) if not pack
               for p in list_shards(d) if p not in self.loaded]
        for p in new:
            self.loaded[p] = load_shard_views(p, self.input_size)
        return len(new) + len(new_packs)

    def split(self) -> Tuple[ViewSet, ViewSet]:
        """(train, validation) view sets over all loaded shards."""
        items = sorted(self.loaded.items())
        train = [v for p, v in items if not self.is_validation(p)]
        val = [v for p, v in items if self.is_validation(p)]
        for t, v in self.packs.values():
            train += [t] if len(t) else []
            val += [v] if len(v) else []
        if not val and len(train) > 1:  # small datasets: hold out the last shard
            val = [train.pop()]
        if not train or not val:
            raise RuntimeError(f'need training and validation shards, have {len(train)} and '
                               f'{len(val)} in {self.dataset_dirs}')
        return ViewSet.concatenate(train), ViewSet.concatenate(val)


def random_affine(rng: np.random.Generator, size: Tuple[int, int], max_rotation_deg=20.0,
                  scale_range=(0.75, 1.25), max_shift=0.12) -> np.ndarray:
    """Random (2, 3) similarity about the image centre, ``size`` = (w, h)."""
    w, h = size
    angle = rng.uniform(-max_rotation_deg, max_rotation_deg)
    scale = np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1])))
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    m[:, 2] += rng.uniform(-max_shift, max_shift, 2) * (w, h)
    return m


def augment_view(image: np.ndarray, uv: np.ndarray, visibility: np.ndarray,
                 rng: np.random.Generator, distractor_prob: float = 0.0):
    """Geometric and photometric augmentation of one view.

    Args:
        image: (h, w, 3) uint8.
        uv: (J, 2) input pixels.
        visibility: (J,) uint8 COCO visibility.
        rng: random generator.
        distractor_prob: probability of pasting procedural clutter away from
            the keypoints (:func:`~.distractors.paste_distractors`).

    Returns:
        (image, uv, visibility) augmented; keypoints pushed outside the image
        get visibility 0.
    """
    h, w = image.shape[:2]
    m = random_affine(rng, (w, h))
    image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT101)
    uv = uv @ m[:, :2].T + m[:, 2]
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    visibility = np.where(inside, visibility, 0).astype(np.uint8)
    if distractor_prob > 0 and rng.random() < distractor_prob:
        image = paste_distractors(image, uv, visibility, rng)
    img = image.astype(np.float32)
    if rng.random() < 0.5:
        img = np.repeat(img @ np.float32([[0.299], [0.587], [0.114]]), 3, axis=2)
    img = img * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40)
    gamma = np.exp(rng.uniform(-0.4, 0.4))
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** gamma
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    img += rng.normal(0, rng.uniform(0, 6), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), uv.astype(np.float32), visibility


def symmetric_targets(uv: np.ndarray, visibility: np.ndarray, symmetries, heatmap_size,
                      stride: int, sigma: float) -> np.ndarray:
    """Gaussian targets for every labelling of a symmetric object (one view).

    Args:
        uv: (J, 2) input pixels; visibility: (J,) COCO visibility.
        symmetries: the object's symmetry permutations (identity implied).
        heatmap_size: (h, w) belief cells; stride: input pixels per cell.
        sigma: Gaussian sigma in cells.

    Returns:
        (P, J, h, w) float32, P = 1 + len(symmetries); entry 0 is the
        identity labelling.
    """
    h, w = heatmap_size
    cells = image_to_heatmap(uv, (w * stride, h * stride), (w, h))
    base = gaussian_targets(cells, visibility > 0, heatmap_size, sigma)
    perms = [np.arange(len(uv))] + [np.asarray(p, dtype=int) for p in symmetries]
    return np.stack([base[p] for p in perms])
