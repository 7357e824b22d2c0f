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
"""One randomized stereo sample: the stages in order.

A sample is made by these stages, each in its own module:

1. scene variables (:mod:`sim_datagen.variables`): every scene-level
   variable drawn through the Dirichlet-binned sampler;
2. cameras (:mod:`sim_datagen.optics`): the stereo rig and lens;
3. scene (:mod:`sim_datagen.scene.board_scene`,
   :mod:`sim_datagen.scene.urdf_scene`): bodies added to the PyBullet world;
4. rendering (:mod:`sim_datagen.rendering`): both pinhole views;
5. labels (:mod:`sim_datagen.labels`): 2D keypoints, visibility, depth and
   segmentation outputs;
6. imaging (:mod:`sim_datagen.imaging`): background, camera response,
   lens distortion, sensor.

Frames: the world frame is the LEFT camera optical frame (+x right, +y
down, +z forward, metres).

Two scenes share the rig, placement, lighting, rendering, labels and
imaging: the chessboard (``scene: checkerboard``, the default) and URDF
objects (``scene: urdf``: sources, joints and keypoint links from the config
and the object-class YAML, see :mod:`sim_datagen.scene.urdf_object`).

Randomness: every scene-level variable is drawn through the
:class:`~keypoint_perception.core.scene_sampler.SceneSampler` (value and bin recorded in
the labels).  Per-instance details whose number varies (each distractor's
position, the shapes drawn into a procedural background, a finger's exact
length) come from the same per-sample generator, seeded from
``(seed, index)`` only, so a sample does not depend on the worker layout.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Tuple

import cv2
from keypoint_perception.core.scene_sampler import SceneSampler
import numpy as np

from .config import ConfigError
from .imaging import CameraImaging
from .labels import depth_output, keypoint_labels, segmentation_output
from .optics import LensRemap, sample_cameras
from .rendering import light_parameters, render_views, VIEWS
from .scene import textures
from .scene.board_scene import build_board_scene, preload_board_textures
from .scene.layout import BuiltScene
from .scene.urdf_scene import UrdfObjectClass
from .scene.world import World
from .variables import missing_variables, sample_scene_variables, SCENE_KINDS, SceneVariables


def image_size_choices(cfg: dict) -> Optional[List[Tuple[int, int]]]:
    """Return the ``[W, H]`` choices of a config's ``image_size`` variable (None: fixed size).

    Bin ``k`` of the categorical ``image_size`` variable renders the sample
    at ``choices[k]`` px.

    Raises:
        ConfigError: ``image_size`` is not ``{choices: [[W, H], ...]}`` with
            positive integers.
    """
    entry = (cfg.get('variables') or {}).get('image_size')
    if entry is None:
        return None
    choices = entry.get('choices') if isinstance(entry, dict) else None
    ok = isinstance(choices, list) and choices and all(
        isinstance(c, (list, tuple)) and len(c) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in c)
        for c in choices)
    if not ok:
        raise ConfigError(f'{cfg.get("config_file", "config")}: variables.image_size: expected '
                          f'{{choices: [[W, H], ...]}} with positive integers, got {entry!r}')
    return [(int(w), int(h)) for w, h in choices]


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """Return the generator of sample ``index`` of a run (worker independent)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


class Stopwatch:
    """Per-stage wall-clock and CPU (process) time, seconds.

    Attributes:
        wall: ``{stage: s}`` wall-clock time summed per stage.
        cpu: ``{stage: s}`` process CPU time summed per stage.
    """

    def __init__(self):
        self.wall, self.cpu = {}, {}
        self._t = (time.perf_counter(), time.process_time())

    def lap(self, name: str):
        """Add the time since the previous lap or the start to the stage called ``name``."""
        t = (time.perf_counter(), time.process_time())
        self.wall[name] = self.wall.get(name, 0.0) + t[0] - self._t[0]
        self.cpu[name] = self.cpu.get(name, 0.0) + t[1] - self._t[1]
        self._t = t


class SampleGenerator:
    """Builds, renders and labels randomized stereo samples.

    Args:
        cfg: config from :func:`sim_datagen.config.load_config`.
        sampler: the scene sampler (``None``: built from ``cfg['variables']``).
        world: an existing :class:`World` (``None``: one is created; one
            PyBullet client per process).

    Image size: the config's ``image``, or per sample one of the ``[W, H]``
    choices of a categorical ``image_size`` variable (caches per size, see
    :meth:`size_caches`).

    Raises:
        ConfigError: an unknown ``scene``, a variable the scene needs that
            the config lacks, a malformed ``image_size``, or a bad URDF class (see
            :class:`~sim_datagen.scene.urdf_scene.UrdfObjectClass`).
    """

    def __init__(self, cfg: dict, sampler: Optional[SceneSampler] = None,
                 world: Optional[World] = None):
        where = cfg.get('config_file', 'config')
        self.cfg = cfg
        self.scene_kind = cfg.get('scene', 'checkerboard')
        if self.scene_kind not in SCENE_KINDS:
            raise ConfigError(f'{where}: scene: expected checkerboard or urdf, '
                              f'got {self.scene_kind!r}')
        self.sampler = sampler or SceneSampler.from_config(cfg['variables'])
        missing = missing_variables(self.scene_kind, list(self.sampler.variables))
        if missing:
            raise ConfigError(f'{where}: variables: missing {", ".join(missing)} '
                              f'(needed by scene: {self.scene_kind})')
        #: the config's ``image`` size, px: every sample's size unless ``image_size`` is drawn
        self.W = int(cfg['image']['width'])
        self.H = int(cfg['image']['height'])
        #: ``[(W, H), ...]`` choices of the ``image_size`` variable, or None (fixed size)
        self.image_sizes = image_size_choices(cfg)
        world_cfg = cfg.get('world', {})
        self.lib = (textures.TextureLibrary.from_pybullet_data()
                    if world_cfg.get('use_pybullet_data_textures', True)
                    else textures.TextureLibrary([]))
        self.world = world or World(n_object_textures=int(world_cfg.get('n_object_textures', 24)),
                                    n_meshes=int(world_cfg.get('n_meshes', 12)),
                                    texture_files=self.lib.files[:8],
                                    reset_every=int(world_cfg.get('reset_every', 250)))
        #: draw a shadowless support plane with numpy instead of TinyRenderer
        self.raycast_support = bool(world_cfg.get('raycast_support', True))
        #: with ``raycast_support``: also a support plane that receives shadows (own shadow map)
        self.raycast_shadow = bool(world_cfg.get('raycast_shadow', True))
        #: pixels (square) of that shadow map
        self.shadow_map_px = int(world_cfg.get('shadow_map_px', 256))
        object_def = cfg['object_def']
        self.object_name = object_def.get('name', 'checkerboard')
        self.kp_names = [k['name'] for k in object_def['keypoints']]
        #: (J, 3) m keypoints of the object class (board: for squares of template_square)
        self.kp_template = np.array([k.get('position', [np.nan] * 3)
                                     for k in object_def['keypoints']], dtype=np.float64)
        self.template_square = float(object_def.get('square_size', 0.025))
        self.near = float(cfg.get('near', 0.02))
        self.far = float(cfg.get('far', 20.0))
        self.frames = cfg.get('frame_ids', {'left': 'left_camera_optical_frame',
                                            'right': 'right_camera_optical_frame'})
        self.outputs = cfg.get('outputs', {})
        #: background pad at the config's size, px (scaled with the width at other sizes)
        self.background_pad = int(world_cfg.get('background_pad', 200))
        #: per image size ``(W, H)``: the lens remap and imaging caches (maps, noise bank,
        #: vignetting radii, padded background)
        self._size_caches: Dict[Tuple[int, int], Tuple[LensRemap, CameraImaging]] = {}
        cv2.setNumThreads(1)  # one core per worker process
        #: the URDF object class (``scene: urdf``), else None
        self.urdf_class: Optional[UrdfObjectClass] = None
        try:
            if self.scene_kind == 'urdf':
                self.urdf_class = UrdfObjectClass(cfg, self.world, self.kp_names)
            else:
                preload_board_textures(self.world, self.sampler)
        except BaseException:
            if world is None:  # ours: no PyBullet client or temp folder left behind
                self.world.close()
            raise

    def sample_size(self, variables: SceneVariables) -> Tuple[int, int]:
        """Return the sample's image size ``(W, H)``, px (``image_size`` or ``image``)."""
        if self.image_sizes is None or variables.rig.image_size is None:
            return self.W, self.H
        return self.image_sizes[int(variables.rig.image_size)]

    def size_caches(self, width: int, height: int) -> Tuple[LensRemap, CameraImaging]:
        """Return the lens remap and imaging of one image size (made once per size).

        The background pad is the config's ``background_pad`` at the
        config's image width and scales with the width otherwise (rounded
        up so that ``W + pad`` is a multiple of 8).
        """
        key = (int(width), int(height))
        if key not in self._size_caches:
            pad = self.background_pad
            if key[0] != self.W:  # scaled, and W + pad a multiple of 8 (procedural backgrounds)
                pad = int(round(self.background_pad * key[0] / self.W))
                pad += -(key[0] + pad) % 8
            self._size_caches[key] = (LensRemap(*key),
                                      CameraImaging(key[0], key[1], pad, self.lib))
        return self._size_caches[key]

    @property
    def sources(self) -> list:
        """Return the URDF class's sources; empty for the chessboard."""
        return self.urdf_class.sources if self.urdf_class is not None else []

    @property
    def anchors(self) -> list:
        """Return ``(name, link, position)`` per keypoint of a URDF class (empty: chessboard)."""
        return self.urdf_class.anchors if self.urdf_class is not None else []

    def _build_scene(self, rng: np.random.Generator, variables: SceneVariables,
                     cameras) -> BuiltScene:
        """Add the sample's bodies to the world (stage 3)."""
        width, height = cameras.rig.width, cameras.rig.height
        if self.urdf_class is not None:
            return self.urdf_class.build_scene(
                self.world, rng, variables, cameras.K, cameras.K_render, width, height,
                self.near, self.raycast_support, self.raycast_shadow)
        return build_board_scene(self.world, rng, variables.board, variables.placement,
                                 cameras.K, width, height, self.kp_template,
                                 self.template_square)

    def generate(self, index: int, seed: int, overrides: Optional[Dict[str, float]] = None,
                 scene_hook: Optional[Callable[[BuiltScene], BuiltScene]] = None) -> dict:
        """Make sample ``index`` of run ``seed``.

        Args:
            index: sample index.
            seed: run seed; the sample is a function of ``(seed, index)``.
            overrides: fixes scene variables ``{name: value}`` after sampling
                (their bin is recomputed; used by tests and for debugging).
            scene_hook: called with the built scene right before rendering;
                returns the scene to render (tests add bodies, e.g. an
                occluder, through it).

        Returns:
            dict with ``key`` (str), ``left``/``right`` (H, W, 3) uint8 RGB
            (the sample's size, see :meth:`sample_size`),
            ``labels`` (JSON-ready dict, see the package README), optional
            ``depth`` (H, W) uint16 mm and ``seg`` (H, W) uint8 of the left
            view, and ``timing`` / ``cpu_timing`` (seconds per stage).
        """
        stopwatch = Stopwatch()
        rng = sample_rng(seed, index)
        variables = sample_scene_variables(self.sampler, rng, self.scene_kind, overrides)
        width, height = self.sample_size(variables)
        cameras = sample_cameras(variables.rig, width, height, self.near, self.far, rng,
                                 (self.W, self.H))
        lens, imaging = self.size_caches(width, height)
        scene = self._build_scene(rng, variables, cameras)
        light = light_parameters(variables.light, rng)
        if scene_hook is not None:
            scene = scene_hook(scene)
        stopwatch.lap('scene')

        renders, scene = render_views(self.world, cameras, scene, light, self.near,
                                      self.shadow_map_px)
        stopwatch.lap('render')
        self.world.clear()  # removing the sample's bodies is scene work
        stopwatch.lap('scene')

        keypoints = keypoint_labels(cameras, scene, renders)
        stopwatch.lap('label')

        images = imaging.compose(rng, variables, cameras, renders, scene, lens)
        stopwatch.lap('imaging')

        labels = {
            'object_class': self.object_name,
            'keypoint_names': self.kp_names,
            'keypoints_2d': {n: keypoints.uv[n].tolist() for n in VIEWS},
            'visibility': {n: keypoints.visibility[n].tolist() for n in VIEWS},
            'keypoints_3d': scene.keypoints_3d.tolist(),
            'object_pose': scene.pose.tolist(),
            **scene.extra_labels,
            'camera_info': cameras.rig.camera_infos(self.frames['left'], self.frames['right'],
                                                    cameras.distortion),
            'baseline': cameras.rig.baseline,
            'variables': variables.to_labels(),
            'seed': int(seed), 'index': int(index),
        }
        out = {'key': f'{index:09d}', 'left': images['left'], 'right': images['right'],
               'labels': labels, 'timing': stopwatch.wall, 'cpu_timing': stopwatch.cpu}
        if self.outputs.get('depth'):
            out['depth'] = depth_output(cameras, renders['left'], lens)
        if self.outputs.get('segmentation'):
            out['seg'] = segmentation_output(cameras, scene, renders['left'], lens)
        stopwatch.lap('label')  # depth / segmentation outputs (same dicts as out['timing'])
        return out
