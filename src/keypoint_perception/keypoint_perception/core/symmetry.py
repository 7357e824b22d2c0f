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
"""Symmetry groups of object classes and symmetry-consistent stereo labelling.

A symmetric object (e.g. a chessboard under a 180 degree rotation) has
several equally correct keypoint labellings.  :class:`SymmetryGroup` is the
one type that holds them (identity first); everything that tries each
labelling iterates over it.  No ROS import.
"""

from dataclasses import dataclass
from typing import Iterator, Sequence, Tuple, Union

import numpy as np

from .arrays import as_points
from .camera import camera_center, CameraModel
from .distortion import rectify_points


@dataclass(frozen=True)
class SymmetryGroup:
    """The keypoint permutations under which an object looks the same.

    Attributes:
        permutations: distinct permutations of ``range(num_keypoints)``, each
            a tuple of int, identity FIRST.  A permutation ``p`` relabels
            keypoints: ``uv[list(p)]`` is the labelling in which keypoint j
            is the original keypoint ``p[j]``.  An object without symmetries
            has the identity only.

    Build it with :meth:`from_permutations` (from an ``ObjectClass``'s
    ``symmetries`` list, identity implied) or :meth:`of`; the constructor
    checks that the entries are permutations of one size, identity first,
    without duplicates.

    Raises:
        ValueError: from the constructor, as described above.
    """

    permutations: Tuple[Tuple[int, ...], ...]

    def __post_init__(self):
        """Check the permutations (see the class docstring)."""
        perms = tuple(tuple(int(i) for i in perm) for perm in self.permutations)
        if not perms:
            raise ValueError('a symmetry group needs at least the identity permutation')
        num = len(perms[0])
        identity = tuple(range(num))
        if perms[0] != identity:
            raise ValueError(f'the first permutation must be the identity, got {list(perms[0])}')
        for perm in perms:
            if sorted(perm) != list(identity):
                raise ValueError(
                    f'symmetry {list(perm)} is not a permutation of {num} keypoints')
        if len(set(perms)) != len(perms):
            raise ValueError('symmetry permutations must be distinct')
        object.__setattr__(self, 'permutations', perms)

    @classmethod
    def from_permutations(cls, symmetries: Sequence[Sequence[int]],
                          num_keypoints: int) -> 'SymmetryGroup':
        """Build from the non-identity permutations of an object class.

        Args:
            symmetries: permutations of ``range(num_keypoints)`` (the
                ``symmetries`` of an ``ObjectClass`` or of its YAML file);
                identity implied, duplicates and an explicit identity are
                dropped (first occurrence kept); None means none.
            num_keypoints: J, the object's number of keypoints.

        Raises:
            ValueError: if an entry is not a permutation of ``range(num_keypoints)``.
        """
        identity = tuple(range(int(num_keypoints)))
        perms = [identity]
        for perm in symmetries or ():
            perm = tuple(int(i) for i in perm)
            if sorted(perm) != list(identity):
                raise ValueError(
                    f'symmetry {list(perm)} is not a permutation of {len(identity)} keypoints')
            if perm not in perms:
                perms.append(perm)
        return cls(tuple(perms))

    @classmethod
    def of(cls, symmetries: Union['SymmetryGroup', Sequence[Sequence[int]], None],
           num_keypoints: int) -> 'SymmetryGroup':
        """Return ``symmetries`` if it is a group, else :meth:`from_permutations` of it.

        Raises:
            ValueError: if a given group has another number of keypoints,
                or as :meth:`from_permutations`.
        """
        if isinstance(symmetries, SymmetryGroup):
            if symmetries.num_keypoints != int(num_keypoints):
                raise ValueError(f'symmetry group of {symmetries.num_keypoints} keypoints '
                                 f'used for {num_keypoints} keypoints')
            return symmetries
        return cls.from_permutations(symmetries, num_keypoints)

    @property
    def num_keypoints(self) -> int:
        """Return J, the length of every permutation."""
        return len(self.permutations[0])

    @property
    def identity(self) -> Tuple[int, ...]:
        """Return the identity permutation ``(0, 1, ..., J - 1)``."""
        return self.permutations[0]

    @property
    def non_identity(self) -> Tuple[Tuple[int, ...], ...]:
        """Return the permutations other than the identity (a class's ``symmetries``)."""
        return self.permutations[1:]

    @property
    def index_arrays(self) -> Tuple[np.ndarray, ...]:
        """Return the permutations as (J,) int arrays (for fancy indexing), identity first."""
        return tuple(np.asarray(perm, dtype=int) for perm in self.permutations)

    def __len__(self) -> int:
        """Return the number of labellings, identity included (>= 1)."""
        return len(self.permutations)

    def __iter__(self) -> Iterator[Tuple[int, ...]]:
        """Iterate over the permutations, identity first."""
        return iter(self.permutations)


def match_stereo_symmetry(left: CameraModel, right: CameraModel, uv_left: np.ndarray,
                          uv_right: np.ndarray,
                          symmetries: Union[SymmetryGroup, Sequence[Sequence[int]]],
                          points_are_rectified: bool = False) -> Tuple[int, ...]:
    """Pick the labelling of the RIGHT view's keypoints that agrees with the LEFT view.

    A symmetric object's keypoints may be labelled differently in each view
    (e.g. a chessboard rotated by 180 degrees).  For each candidate
    permutation p (identity first, then ``symmetries``), keypoint j of the
    left view is paired with keypoint ``p[j]`` of the right view and scored
    by the epipolar constraint of the rectified pair:

    1. fewest pairs with non-positive disparity (the point would be at
       infinity or behind the rig), then
    2. smallest mean squared difference across the epipolar lines (rows for a
       horizontal rig, columns for a vertical one).

    Disparity is measured along the baseline direction, so it is positive for
    every point in front of the rig.  Ties keep the earlier candidate
    (identity first).

    Args:
        left, right: the cameras.
        uv_left, uv_right: (J, 2) keypoints of each view (raw pixels unless
            ``points_are_rectified``); NaN rows = missing.
        symmetries: a :class:`SymmetryGroup` of J keypoints, or permutations
            of range(J) that leave the object unchanged (identity implied).

    Returns:
        The permutation p as a tuple; ``uv_right[list(p)]`` is aligned with
        ``uv_left``.  Identity when no pair of keypoints is visible in both
        views.

    Raises:
        ValueError: on wrong shapes or a symmetry that is not a permutation.
    """
    uv_l = as_points('uv_left', uv_left)
    uv_r = as_points('uv_right', uv_right)
    if uv_l.shape != uv_r.shape:
        raise ValueError(f'uv_left {uv_l.shape} and uv_right {uv_r.shape} differ in shape')
    perms = SymmetryGroup.of(symmetries, uv_l.shape[0]).permutations
    if not points_are_rectified:
        uv_l, uv_r = rectify_points(left, uv_l), rectify_points(right, uv_r)
    # Direction of the baseline in the rectified frame: disparity axis and its sign.
    baseline_vector = camera_center(right.P) - camera_center(left.P)
    axis = 0 if abs(baseline_vector[0]) >= abs(baseline_vector[1]) else 1
    sign = 1.0 if baseline_vector[axis] > 0 else -1.0
    best, best_key = perms[0], None
    for perm in perms:
        relabelled = uv_r[list(perm)]
        ok = np.all(np.isfinite(uv_l), axis=1) & np.all(np.isfinite(relabelled), axis=1)
        if not np.any(ok):
            continue
        disparity = sign * (uv_l[ok, axis] - relabelled[ok, axis])
        across = uv_l[ok, 1 - axis] - relabelled[ok, 1 - axis]
        key = (int(np.sum(disparity <= 0)), float(np.mean(across ** 2)))
        if best_key is None or key < best_key:
            best, best_key = perm, key
    return best


def check_mirror(mirror: Sequence[int], num_keypoints: int) -> np.ndarray:
    """Return a mirror permutation as a (J,) int64 array after checking it.

    Raises:
        ValueError: not a permutation of ``range(num_keypoints)``, or not an
            involution (``mirror[mirror[k]] != k``).
    """
    m = np.asarray(mirror)
    if (m.shape != (num_keypoints,) or not np.issubdtype(m.dtype, np.integer)
            or sorted(m.tolist()) != list(range(num_keypoints))):
        raise ValueError(f'mirror must be a permutation of the {num_keypoints} keypoint '
                         f'indices, got {np.asarray(mirror).tolist()}')
    if np.any(m[m] != np.arange(num_keypoints)):
        raise ValueError(f'mirror {m.tolist()} is not an involution (mirroring twice must give '
                         'every keypoint back)')
    return m.astype(np.int64)
