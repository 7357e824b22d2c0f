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
"""Rendering a sample's two pinhole views with PyBullet's TinyRenderer.

World frame: the left camera's optical frame (metres).  The views are
rendered with the pinhole intrinsics ``K_render`` of
:class:`~sim_datagen.optics.SampleCameras` (see :mod:`sim_datagen.optics`
for the lens distortion applied afterwards).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import numpy as np

from .optics import SampleCameras
from .scene.layout import BuiltScene
from .scene.support_plane import add_support_plane, draw_support_plane, light_above_plane, \
    Render, shadow_map
from .scene.world import World
from .variables import LightVariables

VIEWS = ('left', 'right')


def light_parameters(light: LightVariables, rng: np.random.Generator) -> dict:
    """``getCameraImage`` lighting kwargs from the light variables.

    The light direction is ``(sin(polar) cos(azimuth), sin(polar)
    sin(azimuth), -cos(polar))`` in the left optical frame (polar 0: from
    behind the camera); its colour blends warm (1, 0.85, 0.7) to cool
    (0.8, 0.9, 1) by ``light_temperature``; the shadow light's distance is
    drawn from ``rng`` (2 .. 5 m).
    """
    az, pol = np.radians(light.light_azimuth), np.radians(light.light_polar)
    ldir = [np.sin(pol) * np.cos(az), np.sin(pol) * np.sin(az), -np.cos(pol)]
    warm, cool = np.array([1.0, 0.85, 0.7]), np.array([0.8, 0.9, 1.0])
    temperature = light.light_temperature
    return dict(lightDirection=[float(x) for x in ldir],
                lightColor=[float(x) for x in (1 - temperature) * warm + temperature * cool],
                lightDistance=float(rng.uniform(2, 5)), shadow=int(light.shadow),
                lightAmbientCoeff=float(light.light_ambient),
                lightDiffuseCoeff=float(light.light_diffuse),
                lightSpecularCoeff=float(light.light_specular))


def render_views(world: World, cameras: SampleCameras, scene: BuiltScene, light: dict,
                 near: float, shadow_map_px: int) -> Tuple[Dict[str, Render], BuiltScene]:
    """Render both pinhole views of a scene (``cameras.render_rig``).

    A support plane of the scene is drawn into the renders
    (:func:`~sim_datagen.scene.support_plane.draw_support_plane`, shadows
    from a ``shadow_map_px`` square shadow map) unless the shadow light is
    below it: then the plane shadows the object and is added as a body for
    TinyRenderer to render.

    Args:
        world: the world holding the scene's bodies.
        cameras: the sample's cameras.
        scene: the scene.
        light: ``getCameraImage`` lighting kwargs (:func:`light_parameters`).
        near: near clip plane, m.
        shadow_map_px: size of the shadow map, px.

    Returns:
        ``({'left': render, 'right': render}, scene)``: each render is
        ``(rgb (H, W, 3) uint8, depth buffer (H, W) float32, segmentation
        (H, W) int32)``; the scene is returned without its support plane
        when the plane became a body.
    """
    render_cams = {'left': cameras.render_rig.left, 'right': cameras.render_rig.right}
    if scene.support is not None and light['shadow'] \
            and not light_above_plane(scene.support, light):
        # light below the plane: the plane shadows the object, let TinyRenderer do it
        add_support_plane(world, scene.support, cameras.K_render, cameras.rig.baseline,
                          cameras.rig.width, cameras.rig.height, near)
        scene = dataclasses.replace(scene, support=None)
    renders = {n: world.render(cam, light) for n, cam in render_cams.items()}
    if scene.support is not None:
        shadows = shadow_map(world, scene, light, shadow_map_px) if light['shadow'] else None
        renders = {n: draw_support_plane(r, render_cams[n], scene.support, light, world,
                                         shadows)
                   for n, r in renders.items()}
    return renders, scene
