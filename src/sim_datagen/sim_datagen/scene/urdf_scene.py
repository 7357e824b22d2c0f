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
"""URDF object classes (``scene: urdf``): validating the sources, building a sample's scene.

Sources, joints and keypoint links come from the generator config and the
object-class YAML (see :mod:`sim_datagen.scene.urdf_object`).  World frame:
the left camera's optical frame (metres).
"""

from __future__ import annotations

import itertools
import os
from typing import List, Optional

import cv2
import numpy as np

from . import textures
from .attachments import add_attachments, AttachmentConfig, parse_attachments
from .camera import rot_z
from .decimate import decimated_urdf
from .layout import add_bar, add_distractor, BuiltScene, centre_in_view, rigid_transform, \
    SupportPlane
from .support_plane import add_support_plane
from .urdf_object import class_anchors, parse_sources, UrdfInstance, UrdfSource, \
    write_procedural
from .world import World
from ..config import ConfigError
from ..variables import ObjectViewVariables, SceneVariables


class UrdfObjectClass:
    """The validated sources of a URDF object class and the scenes built from them.

    Every source is loaded once (procedural ones with their default
    parameters) so that a wrong link or joint name fails here, naming the
    config and object files.

    Args:
        cfg: config from :func:`sim_datagen.config.load_config`.
        world: the PyBullet world (cleared again afterwards).
        keypoint_names: the object class's keypoint names, in order.

    Raises:
        ConfigError: a bad source, link, joint or visibility entry.
    """

    def __init__(self, cfg: dict, world: World, keypoint_names: List[str]):
        where = cfg.get('config_file', 'config')
        self.sources: List[UrdfSource] = parse_sources(cfg, where)
        #: payload / cable on the robot (``attachments``), or None
        self.attachments: Optional[AttachmentConfig] = parse_attachments(cfg, where)
        self.anchors = class_anchors(cfg['object_def'], cfg['object_yaml'])
        visibility = cfg.get('visibility', {}) or {}
        tolerance = visibility.get('depth_tolerance', 0.01)
        per_keypoint = visibility.get('keypoints', {}) or {}
        bad = sorted(set(per_keypoint) - set(keypoint_names))
        if bad or not isinstance(tolerance, (int, float)):
            raise ConfigError(f'{where}: visibility: unknown keypoint(s) {bad} or a '
                              f'depth_tolerance that is not a number')
        #: (J,) m: how far the object's own surface may lie in front of a visible keypoint
        self.depth_tolerance = np.array([float(per_keypoint.get(n, tolerance))
                                         for n in keypoint_names])
        self._procedural_count = itertools.count()
        #: {source name: URDF that is rendered}: a decimated copy when visual_decimation
        self._render_urdf = {}
        for src in self.sources:
            if src.kind == 'file' and src.visual_decimation > 0:
                self._render_urdf[src.name] = decimated_urdf(src.target, src.visual_decimation)
        for src in self.sources:
            anchors = self.source_anchors(src)
            if src.kind == 'procedural':
                path = write_procedural(src, None, world.tmp, f'check_{src.name}')
                body = world.load_urdf(path)
            else:
                body = world.load_urdf(self._render_urdf.get(src.name, src.target), 1.0,
                                       cached=src.cacheable and src.scale == 1.0)
            instance = UrdfInstance(body, world.cid)
            links = [a[0] for a in anchors if a[0] is not None]
            links += self.attachments.links if self.attachments is not None else []
            missing = sorted(set(links) - set(instance.links))
            if missing:
                raise ConfigError(f'{where} / {cfg["object_yaml"]}: source {src.name!r}: '
                                  f'link(s) {missing} not in the URDF; links: '
                                  f'{sorted(instance.links)}')
            try:
                instance.set_joints({n: 0.0 for n in src.joints})
            except KeyError as e:
                raise ConfigError(f'{where}: source {src.name!r}: joints: {e}') from None
        world.clear()

    def source_anchors(self, src: UrdfSource) -> list:
        """``(link, position)`` per keypoint for a source (class YAML + overrides)."""
        return [src.keypoints.get(n, (link, pos)) for n, link, pos in self.anchors]

    def _load(self, world: World, src: UrdfSource, variables: SceneVariables) -> tuple:
        """Load a sample's instance of ``src``; returns ``(body id, scale)``."""
        values = variables.by_name
        scale = float(values[src.scale]) if isinstance(src.scale, str) else src.scale
        if src.kind == 'procedural':
            stem = f'{src.target}_{next(self._procedural_count)}'
            path = write_procedural(src, values, world.tmp, stem)
            body = world.load_urdf(path, scale)
            for ext in ('.urdf', '.obj'):  # loaded; PyBullet keeps the meshes
                if os.path.exists(os.path.join(world.tmp, stem + ext)):
                    os.remove(os.path.join(world.tmp, stem + ext))
        else:
            body = world.load_urdf(self._render_urdf.get(src.name, src.target), scale,
                                   cached=src.cacheable)
        return body, scale

    def build_scene(self, world: World, rng: np.random.Generator, variables: SceneVariables,
                    K: np.ndarray, K_render: np.ndarray, width: int, height: int,
                    near: float, raycast_support: bool, raycast_shadow: bool) -> BuiltScene:
        """Add a URDF object's scene (source, joints, colours, view, occluders) to ``world``.

        The object's collision bounding box (object frame, after setting the
        joints) is seen from ``view_azimuth`` (deg about the object's +z,
        0 = from +x) and ``view_elevation`` (deg above its xy plane), rolled
        by ``view_roll``; ``object_size_frac`` is the larger of its image
        width / W and height / H; ``center_x/y`` and ``out_of_view`` place it
        as the board.  Optional: a support plane under it (``support``), a
        bar in front (``bar``), distractors, recolouring (``color_mode``),
        a payload and a cable on the robot (``attachments``, see
        :mod:`sim_datagen.scene.attachments`).

        Args:
            world: the PyBullet world (bodies are added).
            rng: the sample's generator.
            variables: the sample's scene variables.
            K: (3, 3) intrinsics of the left view (output camera), px.
            K_render: (3, 3) intrinsics that are rendered, px.
            width: image width, px.
            height: image height, px.
            near: near clip plane of the renders, m.
            raycast_support: draw the support plane into the renders
                (:func:`sim_datagen.scene.support_plane.draw_support_plane`)
                instead of adding it as a body.
            raycast_shadow: with ``raycast_support``: also when it receives shadows.
        """
        view = variables.object_view
        src = self.sources[int(view.source)] if view.source is not None else self.sources[0]
        body, scale = self._load(world, src, variables)
        obj = UrdfInstance(body, world.cid, scale)
        obj.set_base_pose(np.eye(4))
        joints = obj.set_joints({n: obj.joint_value(n, js, variables.by_name)
                                 for n, js in src.joints.items()})
        box = obj.aabb()
        c = box.mean(axis=0)
        corners = np.array(list(itertools.product(*box.T)))
        a = np.radians(view.view_azimuth)
        e = np.radians(np.clip(view.view_elevation, -85, 85))
        f = -np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
        r = np.cross(f, [0.0, 0.0, 1.0])
        r /= np.linalg.norm(r)
        R_obj_cam = np.c_[r, np.cross(f, r), f] @ rot_z(np.radians(view.view_roll))
        R = R_obj_cam.T                                  # object -> camera rotation
        q = (corners - c) @ R.T
        ext = q.max(axis=0) - q.min(axis=0)
        frac = view.object_size_frac
        Z = max(K[0, 0] * ext[0] / (frac * width), K[1, 1] * ext[1] / (frac * height), 0.15)
        Z = max(Z, 0.12 - q[:, 2].min())
        u_c, v_c = centre_in_view(q + [0, 0, Z], K, width, height, variables.placement)
        t_c = Z * np.linalg.solve(K, [u_c, v_c, 1.0])
        T_obj = rigid_transform(R, t_c - R @ c)
        obj.set_base_pose(T_obj)
        keypoints = obj.points(self.source_anchors(src))
        color_object(world, rng, view, obj, src)
        attached, attachment_labels = (), {}
        if self.attachments is not None:  # rigid at the link poses just set
            attached, attachment_labels = add_attachments(world, rng, obj, self.attachments,
                                                          variables.by_name)

        occluders: List[int] = []
        support: Optional[SupportPlane] = None
        if view.support == 1:  # table / floor under the object (segmentation: 0)
            half = max(3 * float(np.linalg.norm(box[1] - box[0])), 1.0)
            rgba = list(textures.random_color(rng, 0.5) / 255.0) + [1.0]
            tex = (world.object_tex[int(rng.integers(0, len(world.object_tex)))]
                   if rng.random() < 0.6 else None)
            plane = SupportPlane(T_obj @ rigid_transform(np.eye(3), [c[0], c[1], box[0, 2]]),
                                 half, rgba, tex)
            if not raycast_support or (int(variables.light.shadow) == 1 and not raycast_shadow):
                add_support_plane(world, plane, K_render, variables.rig.baseline, width, height,
                                  near)
            else:  # drawn into the renders (shadows: shadow_map)
                support = plane
        T_view = rigid_transform(np.eye(3), [t_c[0], t_c[1], Z + q[:, 2].min()])
        if view.bar == 1:
            occluders.append(add_bar(world, rng, T_view, ext[0] / 2, ext[1] / 2))
        distractors = [add_distractor(world, rng, K, Z, width, height)
                       for _ in range(int(view.n_distractors))]
        extra = {'object': {'source': src.name, 'urdf': src.spec, 'scale': scale,
                            'joints': joints}}
        if self.attachments is not None:
            extra['attachments'] = attachment_labels
        return BuiltScene(frozenset({body}), tuple(occluders), tuple(distractors), keypoints,
                          T_obj, (u_c, v_c), Z, extra, self.depth_tolerance, obj, support,
                          attached)


def color_object(world: World, rng: np.random.Generator, view: ObjectViewVariables,
                 obj: UrdfInstance, src: UrdfSource) -> None:
    """Recolour the object's links from ``color_mode`` and ``color_hue/saturation/value``.

    Modes: 0 as loaded, 1 one colour, 2 one colour per link, 3 textured.
    Changes the body's colours in ``world`` (a textured cached body is
    removed after the sample).
    """
    mode = int(view.color_mode)
    original = world.urdf_rgba.get(obj.body, {})
    hsv = np.uint8([[[int(180 * view.color_hue) % 180,
                      int(255 * view.color_saturation),
                      int(255 * view.color_value)]]])
    base = list(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0) + [1.0]
    for i, link in enumerate(obj.visual_links()):
        tex = None
        if mode == 0:
            rgba = original.get(link, [1.0, 1.0, 1.0, 1.0])
        elif mode == 1 or (mode == 2 and i == 0):
            rgba = base
        elif mode == 2:
            rgba = list(textures.random_color(rng) / 255.0) + [1.0]
        else:
            rgba = list(np.clip(np.array(base[:3]) * 0.5 + 0.5, 0, 1)) + [1.0]
            tex = world.object_tex[int(rng.integers(0, len(world.object_tex)))]
        obj.set_color(link, rgba, tex)
    if mode == 3 and src.cacheable:
        world.uncache(obj.body)  # a texture cannot be taken off again
