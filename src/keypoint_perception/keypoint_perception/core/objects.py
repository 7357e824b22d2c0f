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
"""Object classes: keypoint names, skeleton, canonical 3D template, symmetries.

A class is one YAML file (see ``objects/checkerboard.yaml``)::

    name: checkerboard
    keypoints:
      - {name: corner_0, position: [x, y, z]}   # metres, object frame
    skeleton: [[0, 1], ...]                      # index pairs drawn as lines
    symmetries: [[2, 3, 0, 1]]                   # permutations, identity implied

Extra top-level keys (e.g. ``sim`` settings) are kept in ``extra``.
"""

from dataclasses import dataclass, field
import os
from typing import List, Optional, Tuple

import numpy as np
import yaml

from .symmetry import check_mirror, SymmetryGroup

#: Folder of the object classes shipped with the package.
OBJECTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'objects')


@dataclass
class ObjectClass:
    """One object class.

    Attributes:
        name: class name, e.g. ``'checkerboard'``.
        keypoint_names: J unique names, in output order.
        template: (J, 3) float64 canonical keypoint positions in the object
            frame, metres.
        skeleton: edges (i, j) between keypoint indices, for drawing.
        symmetries: permutations (J,) of keypoint indices under which the
            object looks the same (identity not included).
        mirror: (J,) keypoint permutation of a mirror image (YAML ``mirror``):
            in an image mirrored left to right, keypoint ``k`` looks like
            keypoint ``mirror[k]`` (the identity for keypoints on a
            robot's kinematic chain; pairs swap for left/right keypoints).
            None when the labels have no meaning in a mirror image (the
            chessboard's corner order has a handedness): then the ``hflip``
            test-time augmentation is refused.
        extra: remaining YAML keys.
    """

    name: str
    keypoint_names: List[str]
    template: np.ndarray
    skeleton: List[Tuple[int, int]] = field(default_factory=list)
    symmetries: List[List[int]] = field(default_factory=list)
    mirror: Optional[List[int]] = None
    extra: dict = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        """J, the number of keypoints."""
        return len(self.keypoint_names)

    @property
    def symmetry_group(self) -> SymmetryGroup:
        """Return the class's :class:`~.symmetry.SymmetryGroup` (identity, then ``symmetries``).

        Raises:
            ValueError: if a symmetry is not a permutation of the J keypoints.
        """
        return SymmetryGroup.from_permutations(self.symmetries, self.num_keypoints)

    @classmethod
    def from_dict(cls, d: dict) -> 'ObjectClass':
        """Build from a parsed YAML mapping.

        Raises:
            ValueError: on a missing name or keypoints, duplicate keypoint
                names, a template entry that is not 3 numbers, a skeleton
                index out of range, a symmetry that is not a permutation, or
                a ``mirror`` that is not an involutive permutation.
        """
        if not isinstance(d, dict) or 'name' not in d or not d.get('keypoints'):
            raise ValueError('object class needs "name" and a non-empty "keypoints" list')
        names, points = [], []
        for i, kp in enumerate(d['keypoints']):
            if 'name' not in kp:
                raise ValueError(f'keypoint {i} of {d["name"]!r} has no name')
            pos = kp.get('position', [np.nan] * 3)
            if len(pos) != 3:
                raise ValueError(f'keypoint {kp["name"]!r}: position must have 3 values')
            names.append(str(kp['name']))
            points.append([float(p) for p in pos])
        if len(set(names)) != len(names):
            raise ValueError(f'duplicate keypoint names in {d["name"]!r}')
        j = len(names)
        skeleton = [tuple(int(i) for i in e) for e in d.get('skeleton', [])]
        for e in skeleton:
            if len(e) != 2 or not all(0 <= i < j for i in e):
                raise ValueError(f'skeleton edge {e} out of range for {j} keypoints')
        symmetries = [list(map(int, p)) for p in d.get('symmetries', [])]
        SymmetryGroup.from_permutations(symmetries, j)  # raises on a non-permutation
        mirror = d.get('mirror')
        if mirror is not None:
            mirror = check_mirror(mirror, j).tolist()
        extra = {key: value for key, value in d.items()
                 if key not in ('name', 'keypoints', 'skeleton', 'symmetries', 'mirror')}
        return cls(str(d['name']), names, np.array(points, dtype=np.float64), skeleton,
                   symmetries, mirror, extra)

    @classmethod
    def from_yaml(cls, path: str) -> 'ObjectClass':
        """Load a class from a YAML file (errors as :meth:`from_dict`)."""
        with open(path, 'r', encoding='utf-8') as f:
            return cls.from_dict(yaml.safe_load(f))


def load_object_class(name_or_path: str) -> ObjectClass:
    """Load a shipped class by name (``'checkerboard'``) or any YAML path.

    Raises:
        FileNotFoundError: when neither a file nor a shipped class matches.
    """
    if os.path.isfile(name_or_path):
        return ObjectClass.from_yaml(name_or_path)
    path = os.path.join(OBJECTS_DIR, f'{name_or_path}.yaml')
    if not os.path.isfile(path):
        known = sorted(f[:-5] for f in os.listdir(OBJECTS_DIR) if f.endswith('.yaml'))
        raise FileNotFoundError(f'no object class {name_or_path!r}; shipped: {known}')
    return ObjectClass.from_yaml(path)
