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
"""Training and validation views of dataset folders and view packs, kept in memory.

:class:`ShardCache` is what ``keypoints-train`` reads: it loads every
complete shard of its dataset folders once (as :class:`~.data.ViewSet`
views at the network input size), picks up shards written since on
:meth:`ShardCache.refresh`, and splits the views into training and
validation sets by :func:`~.data.is_validation_shard`.
"""

from typing import Dict, Sequence, Tuple

from ..core.dataset import list_shards
from .data import load_shard_views_and_crops, ViewSet
from .view_pack import load_view_pack


class ShardCache:
    """Loads shards once; :meth:`refresh` picks up shards written since.

    An entry of ``dataset_dirs`` that ends in ``.npz`` is a view pack
    (:mod:`.view_pack`), read once, whose views keep their own
    training/validation split.
    """

    def __init__(self, dataset_dirs: Sequence[str], input_size: Tuple[int, int],
                 is_validation, object_crops: int = 0):
        """``is_validation(shard_path) -> bool`` splits train and validation.

        ``object_crops`` zoomed crops per view are added to the views of
        training shards (:func:`~.data.views_and_crops`), never to
        validation shards or packs.
        """
        self.dataset_dirs = list(dataset_dirs)
        self.object_crops = object_crops
        self.input_size = input_size
        self.is_validation = is_validation
        self.loaded: Dict[str, ViewSet] = {}
        self.crops: Dict[str, ViewSet] = {}
        self.packs: Dict[str, Tuple[ViewSet, ViewSet]] = {}

    def refresh(self) -> int:
        """Load new complete shards and packs; returns how many were added.

        Raises:
            ValueError: if a pack's views are not of ``input_size``.
        """
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
        new = [p for d, pack in zip(self.dataset_dirs, is_pack) if not pack
               for p in list_shards(d) if p not in self.loaded]
        for p in new:
            self.loaded[p], crops = load_shard_views_and_crops(
                p, self.input_size, 0 if self.is_validation(p) else self.object_crops)
            if crops is not None:
                self.crops[p] = crops
        return len(new) + len(new_packs)

    def split(self) -> Tuple[ViewSet, ViewSet]:
        """(train, validation) view sets over all loaded shards.

        The crops of a training shard follow the training views; validation
        views never include crops.
        """
        items = sorted(self.loaded.items())
        train = [v for p, v in items if not self.is_validation(p)]
        val = [v for p, v in items if self.is_validation(p)]
        for t, v in self.packs.values():
            train += [t] if len(t) else []
            val += [v] if len(v) else []
        if not val and len(train) > 1:  # small datasets: hold out the last shard
            val = [train.pop()]
        train_crops = [self.crops[p] for p, v in items
                       if p in self.crops and any(v is t for t in train)]
        if not train or not val:
            raise RuntimeError(f'need training and validation shards, have {len(train)} and '
                               f'{len(val)} in {self.dataset_dirs}')
        return ViewSet.concatenate(train + train_crops), ViewSet.concatenate(val)
