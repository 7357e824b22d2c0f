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
"""Checkpoint I/O: find, write and read trained keypoint networks (no ROS).

A checkpoint describes itself: the network configuration
(:class:`~.model.BeliefNetConfig`), the object class it was trained for
(:class:`~.objects.ObjectClass`), the weights and provenance metadata.
"""

import os
from typing import Optional

import torch

from .model import BeliefMapNet, BeliefNetConfig
from .objects import ObjectClass

#: Folder of the weights shipped with the package.
MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'models')


def resolve_model_path(name_or_path: str) -> str:
    """Return a checkpoint path for a shipped model name or a file path.

    Raises:
        FileNotFoundError: when neither exists.
    """
    if os.path.isfile(name_or_path):
        return name_or_path
    path = os.path.join(MODELS_DIR, f'{name_or_path}.pt')
    if os.path.isfile(path):
        return path
    shipped = sorted(f[:-3] for f in os.listdir(MODELS_DIR) if f.endswith('.pt')) \
        if os.path.isdir(MODELS_DIR) else []
    raise FileNotFoundError(f'no model {name_or_path!r}; shipped models: {shipped}')


def save_checkpoint(path: str, model: BeliefMapNet, object_class: ObjectClass,
                    meta: Optional[dict] = None, extra: Optional[dict] = None) -> None:
    """Write a self-describing checkpoint atomically (temp file, then rename).

    The file holds ``config`` (dict), ``object_class`` (YAML-equivalent dict),
    ``state_dict``, ``meta`` (provenance and metrics) and any ``extra`` keys
    (e.g. optimizer state for resuming).
    """
    oc = {'name': object_class.name,
          'keypoints': [{'name': n, 'position': p.tolist()}
                        for n, p in zip(object_class.keypoint_names, object_class.template)],
          'skeleton': [list(e) for e in object_class.skeleton],
          'symmetries': [list(p) for p in object_class.symmetries]}
    oc.update(object_class.extra)
    payload = {'config': model.config.to_dict(), 'object_class': oc,
               'state_dict': model.state_dict(), 'meta': meta or {}}
    payload.update(extra or {})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, map_location='cpu'):
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns:
        (model in eval mode, ObjectClass, raw checkpoint dict).
    """
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    config = BeliefNetConfig.from_dict(ckpt['config'])
    model = BeliefMapNet(config)
    model.load_state_dict(ckpt['state_dict'])
    model.eval()
    return model, ObjectClass.from_dict(ckpt['object_class']), ckpt
