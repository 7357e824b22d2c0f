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
"""Payloads, tools and cables attached to a robot (``scene: urdf``).

Real robots are watched while they carry tools, grippers and workpieces and
drag cables along their arms.  A URDF class config may declare, per class::

    attachments:
      payload:
        link: panda_hand          # the payload is rigid in this link's frame
        mount: [0, 0, 0.105]      # m, link frame
        anchor: centre            # centre: payload centred on the mount (held);
                                  # base: its -z face on the mount (a tool on the flange)
      cable:
        links: [panda_link8, panda_link6, panda_link4, panda_link0]   # flange .. base
      markers:
        links: [panda_link2, panda_link3, panda_link5]   # links markers are stuck on

with the scene variables ``payload`` (categorical, choices named from
:data:`PAYLOAD_KINDS`), ``payload_size`` (m, the payload's largest extent),
``cable`` (categorical, :data:`CABLE_KINDS`), ``cable_radius`` (m),
``n_markers`` (categorical: 0, 1, 2, ... markers) and ``marker_size`` (m).

Markers are what labs stick on robots: fiducial prints (ArUco / AprilTag
style, for marker-based calibration or tracking), coloured tape and dots.
Each is a thin body on the robot's surface where a ray towards the link's
origin first meets the robot's collision shape (``rayTest``), facing out.

The bodies are made after the joints are set and the robot is placed: a
payload's pose is ``T_world_link @ T_link_payload`` (the link frame from
PyBullet's forward kinematics, ``getLinkState``), so it is rigidly attached;
a cable is a chain of thin boxes (square section ``2 cable_radius``, a few px
wide in the images) through points fixed to the links: PyBullet builds a
capsule or cylinder shape ~8x slower than a box (0.6-0.9 ms vs 0.08 ms each),
and a cable has up to ~30 segments.  They are
neither part of the object nor keypoints (keypoint labels are unchanged);
they occlude keypoints like any other body (segmentation class
``SEG_ATTACHMENT``, see :mod:`sim_datagen.labels`).

Frames: world = the left camera's optical frame (metres); the object frame
(the robot's base link) has +z up, so gravity is its -z axis.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from typing import List, Mapping, Optional, Tuple

from keypoint_perception.core.rotations import matrix_from_quaternion
import numpy as np
import pybullet as p
import pybullet_data

from . import textures
from .camera import rot_z
from .layout import rigid_transform, rotation_towards
from .urdf_object import UrdfInstance
from .world import World
from ..config import ConfigError

#: payload kinds a config's ``payload`` choices may name
PAYLOAD_KINDS = ('none', 'box', 'cylinder', 'mesh', 'gripper')
#: cable kinds a config's ``cable`` choices may name
CABLE_KINDS = ('none', 'along_arm', 'hanging')
#: marker kinds and their probabilities (drawn per marker, not a scene variable)
MARKER_KINDS = (('fiducial', 0.6), ('tape', 0.2), ('dot', 0.2))
#: thickness of a marker body, m
MARKER_THICKNESS = 0.002
#: depth of a marker's back face inside the collision surface, m (collision
#: meshes are coarser than and enclose the visual ones); its front face
#: stands 1 mm proud of that surface
MARKER_SINK = 0.001
#: pybullet_data/random_urdfs meshes used as payloads (000 .. 999)
N_RANDOM_MESHES = 1000
#: (3, 3) rotation by 90 degrees about x
ROT_X_90 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class AttachmentConfig:
    """The validated ``attachments`` of a URDF class config.

    Attributes:
        payload_link: link the payload is fixed to, or None (no payload).
        payload_mount: (3,) float64 mount point in that link's frame, m.
        payload_anchor: ``'centre'`` or ``'base'`` (see the module docstring).
        payload_kinds: payload kind of each bin of the ``payload`` variable.
        cable_links: links the cable runs along (first: where it hangs
            from, last: the base), or empty (no cable).
        cable_kinds: cable kind of each bin of the ``cable`` variable.
        marker_links: links markers are stuck on, or empty (no markers).
    """

    payload_link: Optional[str]
    payload_mount: np.ndarray
    payload_anchor: str
    payload_kinds: Tuple[str, ...]
    cable_links: Tuple[str, ...]
    cable_kinds: Tuple[str, ...]
    marker_links: Tuple[str, ...] = ()

    @property
    def links(self) -> List[str]:
        """Return every link the attachments name (to check against the URDF)."""
        return (([self.payload_link] if self.payload_link else []) + list(self.cable_links)
                + list(self.marker_links))


def _kinds(variables: Mapping, name: str, known: Tuple[str, ...], where: str) -> Tuple[str, ...]:
    """Return the choice names of a categorical variable, each one of ``known``."""
    entry = variables.get(name)
    choices = entry.get('choices') if isinstance(entry, Mapping) else None
    if not isinstance(choices, list) or not all(c in known for c in choices):
        raise ConfigError(f'{where}: variables.{name}: expected {{choices: [names]}} with names '
                          f'from {list(known)}, got {entry!r}')
    return tuple(choices)


def parse_attachments(cfg: Mapping, where: str) -> Optional[AttachmentConfig]:
    """Validate a config's ``attachments`` (None when it has none).

    Raises:
        ConfigError: unknown keys, a malformed mount or link list, an
            anchor other than centre/base, or a missing / malformed
            ``payload``, ``payload_size``, ``cable`` or ``cable_radius``
            variable (the message names the config file and field).
    """
    raw = cfg.get('attachments')
    if raw is None:
        return None
    variables = cfg.get('variables', {}) or {}
    if not isinstance(raw, Mapping) or set(raw) - {'payload', 'cable', 'markers'}:
        raise ConfigError(f'{where}: attachments: expected a mapping with payload, cable '
                          'and/or markers')
    payload, cable = raw.get('payload'), raw.get('cable')
    link, mount, anchor, payload_kinds = None, np.zeros(3), 'centre', ()
    if payload is not None:
        mount = payload.get('mount', [0.0, 0.0, 0.0]) if isinstance(payload, Mapping) else None
        if (not isinstance(payload, Mapping) or set(payload) - {'link', 'mount', 'anchor'}
                or not isinstance(payload.get('link'), str)
                or not isinstance(mount, list) or len(mount) != 3
                or not all(isinstance(x, (int, float)) for x in mount)
                or payload.get('anchor', 'centre') not in ('centre', 'base')):
            raise ConfigError(f'{where}: attachments.payload: expected {{link: name, mount: '
                              f'[x, y, z] m, anchor: centre|base}}, got {payload!r}')
        link, anchor = payload['link'], payload.get('anchor', 'centre')
        mount = np.asarray(mount, np.float64)
        payload_kinds = _kinds(variables, 'payload', PAYLOAD_KINDS, where)
        if 'payload_size' not in variables:
            raise ConfigError(f'{where}: attachments.payload needs a payload_size variable (m)')
    cable_links, cable_kinds = (), ()
    if cable is not None:
        links = cable.get('links') if isinstance(cable, Mapping) else None
        if (not isinstance(links, list) or len(links) < 2
                or not all(isinstance(x, str) for x in links)):
            raise ConfigError(f'{where}: attachments.cable: expected {{links: [2 or more link '
                              f'names, first the one it hangs from]}}, got {cable!r}')
        cable_links = tuple(links)
        cable_kinds = _kinds(variables, 'cable', CABLE_KINDS, where)
        if 'cable_radius' not in variables:
            raise ConfigError(f'{where}: attachments.cable needs a cable_radius variable (m)')
    marker_links = ()
    markers = raw.get('markers')
    if markers is not None:
        links = markers.get('links') if isinstance(markers, Mapping) else None
        if (not isinstance(links, list) or not links or set(markers) - {'links'}
                or not all(isinstance(x, str) for x in links)):
            raise ConfigError(f'{where}: attachments.markers: expected {{links: [link names]}}, '
                              f'got {markers!r}')
        entry = variables.get('n_markers')
        if not isinstance(entry, Mapping) or not isinstance(entry.get('choices'), int):
            raise ConfigError(f'{where}: attachments.markers needs an n_markers variable '
                              f'{{choices: K}} (0 .. K-1 markers), got {entry!r}')
        if 'marker_size' not in variables:
            raise ConfigError(f'{where}: attachments.markers needs a marker_size variable (m)')
        marker_links = tuple(links)
    return AttachmentConfig(link, mount, anchor, payload_kinds, cable_links, cable_kinds,
                            marker_links)


def _appearance(world: World, rng: np.random.Generator, p_texture: float) -> tuple:
    """Random colour (4 floats) and, with probability ``p_texture``, a texture id."""
    rgba = list(textures.random_color(rng) / 255.0) + [1.0]
    tex = (world.object_tex[int(rng.integers(0, len(world.object_tex)))]
           if rng.random() < p_texture else None)
    return rgba, tex


def payload_shape(world: World, rng: np.random.Generator, kind: str, size: float,
                  T_link_mount: np.ndarray, anchor: str) -> Tuple[int, np.ndarray]:
    """Create a payload body of ``kind`` and return ``(body, T_link_payload)``.

    The body is created at the origin; the caller moves it to the link
    (:func:`add_payload`).  ``size`` (m) is the payload's largest extent:
    a box's longest edge, a cylinder's length, a mesh's bounding diameter, a
    gripper's palm width.  The payload is turned by a random angle about the
    link's z axis (a held cylinder may also lie across it); with anchor
    ``base`` its lowest point along the link's z axis sits on the mount.

    Returns:
        The body id and the (4, 4) float64 payload pose in the link frame.
    """
    rgba, tex = _appearance(world, rng, 0.4)
    R = rot_z(rng.uniform(0, 2 * np.pi))
    centre_to_low = size / 2  # from the body origin (its centre) down to its lowest point
    if kind == 'mesh':
        i = int(rng.integers(0, N_RANDOM_MESHES))
        path = os.path.join(pybullet_data.getDataPath(), 'random_urdfs', f'{i:03d}',
                            f'{i:03d}.obj')
        kind = kind if os.path.isfile(path) else 'box'
    if kind == 'box':
        half = rng.permutation(size / 2 * np.r_[1.0, rng.uniform(0.3, 1.0, 2)])
        body = world.add_box(np.eye(4), half, rgba, tex)
        centre_to_low = half[2]
    elif kind == 'cylinder':
        radius = size / 2 * rng.uniform(0.15, 0.6)
        if rng.random() < 0.5:  # across the link's z axis (a held bar, a bottle lying)
            R = R @ ROT_X_90
            centre_to_low = radius
        body = world.add_cylinder(np.eye(4), radius, size, rgba, tex)
    elif kind == 'mesh':
        R = matrix_from_quaternion(rng.normal(size=4))  # any orientation
        body = world.add_mesh_file(np.eye(4), path, size / 2, rgba, tex)
    elif kind == 'gripper':  # palm and two fingers (a parallel gripper on a bare flange)
        palm = np.array([size / 2, size * rng.uniform(0.1, 0.25), rng.uniform(0.01, 0.025)])
        finger = np.array([rng.uniform(0.005, 0.012), palm[1] * 0.8,
                           size * rng.uniform(0.2, 0.45)])        # half extents, m
        gap = rng.uniform(0.1, 0.8) * (palm[0] - finger[0])
        centre_to_low = palm[2] + finger[2]                     # half the total height
        parts = [('box', palm, rigid_transform(np.eye(3), [0, 0, palm[2] - centre_to_low]))]
        for side in (-1, 1):
            parts.append(('box', finger, rigid_transform(
                np.eye(3), [side * (gap + finger[0]), 0, 2 * palm[2] + finger[2]
                            - centre_to_low])))
        body = world.add_compound(np.eye(4), parts, rgba, tex)
    else:
        raise ValueError(f'unknown payload kind {kind!r}; known: {PAYLOAD_KINDS[1:]}')
    lift = centre_to_low if anchor == 'base' else 0.0
    return body, T_link_mount @ rigid_transform(R, [0.0, 0.0, lift])


def add_payload(world: World, rng: np.random.Generator, obj: UrdfInstance, config:
                AttachmentConfig, kind: str, size: float) -> Tuple[int, dict]:
    """Add a payload rigidly attached to ``config.payload_link`` of ``obj`` (joints set).

    Returns:
        ``(body id, label)``: ``label`` is ``{'kind', 'link', 'size' (m),
        'T_link_payload' (4x4 nested lists)}``.
    """
    T_link_mount = rigid_transform(np.eye(3), config.payload_mount * obj.scale)
    body, T_link_payload = payload_shape(world, rng, kind, size, T_link_mount,
                                         config.payload_anchor)
    world.set_pose(body, obj.link_frame(config.payload_link) @ T_link_payload)
    return body, {'kind': kind, 'link': config.payload_link, 'size': float(size),
                  'T_link_payload': T_link_payload.tolist()}


def cable_points(rng: np.random.Generator, obj: UrdfInstance, links: Tuple[str, ...],
                 kind: str) -> np.ndarray:
    """World points (N, 3) of a cable's centre line (m).

    ``along_arm``: from a point 5-9 cm beside the first link's origin past
    points 8-13 cm beside the next links' origins (outside most links) to
    the floor (the base link's xy plane) 10-40 cm from the base, sagging
    (up to 10 % of each span) under gravity.  ``hanging``: from beside the first link, 0.4-1.5 m
    down (gravity: the object frame's -z) with a sideways bow; it usually
    leaves the image.
    """
    frames = [obj.link_frame(link) for link in links]
    down = -frames[-1][:3, 2]

    def beside(T: np.ndarray, lo: float, hi: float) -> np.ndarray:
        a = rng.uniform(0, 2 * np.pi)
        return T[:3, :3] @ (rng.uniform(lo, hi) * np.array([np.cos(a), np.sin(a), 0.0])) \
            + T[:3, 3]

    start = beside(frames[0], 0.05, 0.09)
    if kind == 'hanging':
        side = np.cross(down, rng.normal(size=3))
        side /= max(np.linalg.norm(side), 1e-9)
        end = start + down * rng.uniform(0.4, 1.5) + side * rng.uniform(0.0, 0.3)
        bow = np.cross(down, side) * rng.uniform(-0.2, 0.2)
        t = np.linspace(0, 1, 13)[:, None]
        return start + (end - start) * t + bow * np.sin(np.pi * t)
    controls = [start] + [beside(T, 0.08, 0.13) for T in frames[1:-1]]
    a = rng.uniform(0, 2 * np.pi)
    base = frames[-1]
    controls.append(base[:3, :3] @ (rng.uniform(0.1, 0.4) * np.array([np.cos(a), np.sin(a), 0]))
                    + base[:3, 3])
    points = [controls[0]]
    for p0, p1 in zip(controls[:-1], controls[1:]):
        span = float(np.linalg.norm(p1 - p0))
        n = int(np.clip(np.ceil(span / 0.08), 1, 8))
        sag = rng.uniform(0.0, 0.1) * span
        for t in np.arange(1, n + 1) / n:
            points.append(p0 + (p1 - p0) * t + down * sag * 4 * t * (1 - t))
    return np.array(points)


def add_cable(world: World, rng: np.random.Generator, obj: UrdfInstance,
              config: AttachmentConfig, kind: str, radius: float) -> Tuple[int, dict]:
    """Add a cable: one body of thin boxes along :func:`cable_points`.

    Each segment is a box of square section ``2 radius`` reaching ``radius``
    beyond both of its points, so that segments overlap at the bends.

    Returns:
        ``(body id, label)``: ``label`` is ``{'kind', 'links', 'radius' (m)}``.
    """
    pts = cable_points(rng, obj, config.cable_links, kind)
    parts = []
    for p0, p1 in zip(pts[:-1], pts[1:]):
        d = p1 - p0
        length = float(np.linalg.norm(d))
        if length > 1e-6:
            parts.append(('box', (radius, radius, length / 2 + radius),
                          rigid_transform(rotation_towards(d), (p0 + p1) / 2)))
    grey = rng.uniform(0.02, 0.3)
    rgba = [grey, grey, grey, 1.0] if rng.random() < 0.6 else _appearance(world, rng, 0.0)[0]
    body = world.add_compound(np.eye(4), parts, rgba)
    return body, {'kind': kind, 'links': list(config.cable_links), 'radius': float(radius)}


def marker_pose(world: World, rng: np.random.Generator, obj: UrdfInstance, link: str,
                tries: int = 8) -> Optional[Tuple[str, np.ndarray]]:
    """Find a spot for a marker on the robot's surface near ``link``.

    Rays from 0.5 m away in random directions towards the link's origin
    (``rayTest`` on the collision shapes, joints set); the first that hits
    the robot gives the spot, the marker's z axis along the surface normal
    and a random turn about it.

    Returns:
        ``(hit link name, (4, 4) world pose of the marker's centre)``, its
        back face ``MARKER_SINK`` inside the collision surface, or None when
        no ray hit the robot (e.g. a link without a collision shape).
    """
    names = {index: name for name, index in obj.links.items()}
    origin = obj.link_frame(link)[:3, 3]
    p.performCollisionDetection(physicsClientId=world.cid)  # collision poses of the joints set
    for _ in range(tries):
        d = rng.normal(size=3)
        d /= max(np.linalg.norm(d), 1e-9)
        body, index, _, position, normal = p.rayTest(
            (origin + 0.5 * d).tolist(), origin.tolist(), physicsClientId=world.cid)[0]
        if body != obj.body or index not in names:
            continue
        n = np.asarray(normal, np.float64)
        if not np.isfinite(n).all() or np.linalg.norm(n) < 0.5:
            continue
        R = rotation_towards(n) @ rot_z(rng.uniform(0, 2 * np.pi))
        centre = np.asarray(position) + n * (MARKER_THICKNESS / 2 - MARKER_SINK)
        return names[index], rigid_transform(R, centre)
    return None


def add_markers(world: World, rng: np.random.Generator, obj: UrdfInstance,
                config: AttachmentConfig, count: int, size: float) -> Tuple[List[int], list]:
    """Stick ``count`` markers of side ``size`` (m) on the robot (:func:`marker_pose`).

    Kinds (:data:`MARKER_KINDS`): ``fiducial``, a square print on a white
    card; ``tape``, a coloured strip ``size`` long and a tenth as wide;
    ``dot``, a coloured disc of diameter ``size / 2``.

    Returns:
        ``(body ids, labels)``, a label ``{'kind', 'link', 'size' (m),
        'T_link_marker' (4x4 nested lists)}`` per marker placed (a marker
        whose rays all missed is left out).
    """
    kinds, weights = zip(*MARKER_KINDS)
    bodies, labels = [], []
    for _ in range(count):
        link = config.marker_links[int(rng.integers(0, len(config.marker_links)))]
        kind = kinds[int(rng.choice(len(kinds), p=weights))]
        placed = marker_pose(world, rng, obj, link)
        if placed is None:
            continue
        hit_link, T = placed
        half_t = MARKER_THICKNESS / 2
        if kind == 'fiducial':
            prints = world.marker_textures()
            tex = prints[int(rng.integers(0, len(prints)))]
            body = world.add_box(T, (size / 2, size / 2, half_t), [1.0, 1.0, 1.0, 1.0], tex)
        elif kind == 'tape':
            rgba = list(textures.random_color(rng) / 255.0) + [1.0]
            body = world.add_box(T, (size / 2, size / 20, half_t), rgba)
        else:
            rgba = list(textures.random_color(rng) / 255.0) + [1.0]
            body = world.add_cylinder(T, size / 4, MARKER_THICKNESS, rgba)
        bodies.append(body)
        labels.append({'kind': kind, 'link': hit_link, 'size': float(size),
                       'T_link_marker': (np.linalg.inv(obj.link_frame(hit_link)) @ T).tolist()})
    return bodies, labels


def add_attachments(world: World, rng: np.random.Generator, obj: UrdfInstance,
                    config: AttachmentConfig, values: Mapping) -> Tuple[Tuple[int, ...], dict]:
    """Add the sample's payload and cable to a placed robot with its joints set.

    Args:
        world: the PyBullet world (bodies are added, removed by ``clear``).
        rng: the sample's generator.
        obj: the robot instance (base pose and joints already set).
        config: the class's attachments.
        values: the sample's ``{variable name: value}`` (``payload``,
            ``payload_size``, ``cable``, ``cable_radius``, ``n_markers``,
            ``marker_size``).

    Returns:
        ``(body ids, labels)``: labels ``{'payload': ..., 'cable': ...,
        'markers': [...]}`` for the parts present (see :func:`add_payload`,
        :func:`add_cable`, :func:`add_markers`).
    """
    bodies, labels = [], {}
    if config.payload_link is not None:
        kind = config.payload_kinds[int(values['payload'])]
        if kind != 'none':
            body, labels['payload'] = add_payload(world, rng, obj, config, kind,
                                                  float(values['payload_size']))
            bodies.append(body)
    if config.cable_links:
        kind = config.cable_kinds[int(values['cable'])]
        if kind != 'none':
            body, labels['cable'] = add_cable(world, rng, obj, config, kind,
                                              float(values['cable_radius']))
            bodies.append(body)
    if config.marker_links and int(values['n_markers']) > 0:
        markers, labels['markers'] = add_markers(world, rng, obj, config,
                                                 int(values['n_markers']),
                                                 float(values['marker_size']))
        bodies.extend(markers)
    return tuple(bodies), labels
