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
"""Scene layout shared by the object classes: placement, bars, distractors.

Frames: the world frame is the left camera's optical frame (+x right, +y
down, +z forward, metres).  Poses are (4, 4) float64 transforms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet, Optional, Sequence, Tuple

from keypoint_perception.core.rotations import matrix_from_quaternion
import numpy as np

from . import textures
from .camera import rot_z
from .urdf_object import UrdfInstance
from .world import World


def rigid_transform(R: np.ndarray, t) -> np.ndarray:
    """(4, 4) float64 transform from a (3, 3) rotation and a (3,) translation."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def rotation_towards(direction: np.ndarray) -> np.ndarray:
    """(3, 3) rotation whose z axis points along ``direction`` (3,), any x axis."""
    z = direction / np.linalg.norm(direction)
    a = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
    x = np.cross(a, z)
    x /= np.linalg.norm(x)
    return np.c_[x, np.cross(z, x), z]


@dataclass(frozen=True)
class SupportPlane:
    """A square plane (table, floor) under a URDF object.

    Attributes:
        T_top: (4, 4) pose of the plane's centre in the world; the plane is
            its xy plane, seen from the +z side.
        half_size: half the square's side, m.
        rgba: colour, 4 floats in [0, 1].
        texture: PyBullet texture id, or None.
    """

    T_top: np.ndarray
    half_size: float
    rgba: Sequence[float]
    texture: Optional[int]


@dataclass(frozen=True)
class BuiltScene:
    """The bodies and labels of one sample's scene (world = left optical frame).

    Attributes:
        object_ids: body ids of the labelled object.
        occluder_ids: occluder body ids (hands, bars).
        distractor_ids: distractor body ids.
        keypoints_3d: (J, 3) float64 keypoints, m.
        pose: (4, 4) object frame in the left optical frame.
        centre_uv: (u, v) pixel of the object's reference point (left view,
            pinhole render of the unrendered ``K``).
        depth: depth of the reference point, m.
        extra_labels: class-specific label entries.
        depth_tolerance: (J,) m for the depth visibility test, or None for
            the segmentation-only test.
        instance: the URDF instance (URDF classes).
        support: a support plane drawn into the renders by
            :func:`sim_datagen.scene.support_plane.draw_support_plane`
            (not a PyBullet body), or None.
        attachment_ids: body ids of payloads, tools and cables on the object
            (not the object: they occlude its keypoints), see
            :mod:`sim_datagen.scene.attachments`.
    """

    object_ids: FrozenSet[int]
    occluder_ids: Tuple[int, ...]
    distractor_ids: Tuple[int, ...]
    keypoints_3d: np.ndarray
    pose: np.ndarray
    centre_uv: Tuple[float, float]
    depth: float
    extra_labels: dict = field(default_factory=dict)
    depth_tolerance: Optional[np.ndarray] = None
    instance: Optional[UrdfInstance] = None
    support: Optional[SupportPlane] = None
    attachment_ids: Tuple[int, ...] = ()


def centre_in_view(extremes: np.ndarray, K: np.ndarray, width: int, height: int, placement
                   ) -> Tuple[float, float]:
    """Image position (u, v) of the object's reference point, from ``center_x/y``.

    Args:
        extremes: (N, 3) object extreme points in camera orientation with the
            reference point at (0, 0, Z), m.
        K: (3, 3) intrinsics, px.
        width: image width, px.
        height: image height, px.
        placement: the sample's :class:`~sim_datagen.variables.PlacementVariables`.

    Returns:
        ``(u, v)`` px.  The range of positions keeps the points 2 px inside
        the image (35 % of the object's extent beyond it when
        ``out_of_view``); ``center_x/y`` in [-1, 1] pick within it.
    """
    du = K[0, 0] * extremes[:, 0] / extremes[:, 2]
    dv = K[1, 1] * extremes[:, 1] / extremes[:, 2]
    centre = []
    for d, size, val in ((du, width, placement.center_x), (dv, height, placement.center_y)):
        lo, hi = -d.min() + 2, size - 1 - d.max() - 2
        if placement.out_of_view == 1:
            ext = 0.35 * (d.max() - d.min())
            lo, hi = lo - ext, hi + ext
        if hi < lo:
            lo = hi = 0.5 * (lo + hi)
        centre.append(lo + (val + 1) / 2 * (hi - lo))
    return centre[0], centre[1]


def add_bar(world: World, rng: np.random.Generator, T_object: np.ndarray, half_x: float,
            half_y: float) -> int:
    """Add a bar (stick, cable, arm) crossing the object in front of it; returns its body id.

    Args:
        world: the PyBullet world.
        rng: the sample's generator.
        T_object: (4, 4) frame whose xy plane the bar crosses, its -z side
            facing the camera.
        half_x: half extent of the object along that frame's x axis, m.
        half_y: half extent along its y axis, m.
    """
    length = 3 * np.hypot(half_x, half_y)
    he = [length / 2, rng.uniform(0.005, 0.025), rng.uniform(0.005, 0.015)]
    pos = [rng.uniform(-0.8, 0.8) * half_x, rng.uniform(-0.8, 0.8) * half_y,
           -(he[2] + rng.uniform(0.003, 0.15))]
    rgba = list(textures.random_color(rng) / 255.0) + [1.0]
    tex = world.object_tex[int(rng.integers(0, len(world.object_tex)))] \
        if rng.random() < 0.4 else None
    return world.add_box(T_object @ rigid_transform(rot_z(rng.uniform(0, np.pi)), pos), he,
                         rgba, tex)


def add_distractor(world: World, rng: np.random.Generator, K: np.ndarray, object_depth: float,
                   width: int, height: int) -> int:
    """Add a primitive or mesh at a random depth (in front of the object in 25%).

    Args:
        world: the PyBullet world.
        rng: the sample's generator.
        K: (3, 3) intrinsics of the left view, px.
        object_depth: depth of the object's reference point, m.
        width: image width, px.
        height: image height, px.

    Returns:
        The body id.
    """
    if rng.random() < 0.25 and object_depth > 0.35:
        z = rng.uniform(0.2, object_depth - 0.1)
    else:
        z = object_depth + rng.uniform(0.05, 3.0)
    u, v = rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height
    pos = z * np.linalg.solve(K, [u, v, 1.0])
    size_px = rng.uniform(12, 90)
    size = size_px * z / K[0, 0]
    n_kinds = 4 + len(world.mesh_shapes)
    kind = int(rng.integers(0, 4)) if rng.random() < 0.5 else int(rng.integers(4, n_kinds))
    if kind >= 4:  # fixed-size mesh: choose the depth that gives size_px
        radius = world.mesh_radii[(kind - 4) % len(world.mesh_radii)]
        z = float(np.clip(K[0, 0] * radius / size_px, 0.2, 8.0))
        pos = z * np.linalg.solve(K, [u, v, 1.0])
    R = matrix_from_quaternion(rng.normal(size=4))  # uniformly random rotation
    rgba = list(textures.random_color(rng) / 255.0) + [1.0]
    tex = world.object_tex[int(rng.integers(0, len(world.object_tex)))] \
        if rng.random() < 0.5 else None
    return world.add_primitive(kind, rigid_transform(R, pos), size, rgba, tex,
                               aspect=rng.uniform(0.3, 1.5, 3))
